"""`{{ setting serving.ranked_ttl_s }}` in a page becomes that key's default from streamrec.settings, so design
parameters quoted in prose come from the code, like the benchmark numbers."""

from __future__ import annotations

import re

from pydantic import BaseModel

PLACEHOLDER = re.compile(r"(?<!`)\{\{\s*setting\s+(?P<path>[\w.]+)\s*\}\}")


def default_of(path: str):
    """The default of a dotted settings key (an unknown key fails the build)."""
    from streamrec.settings import Settings

    model: type[BaseModel] = Settings
    node = None
    for part in path.split("."):
        if part not in model.model_fields:
            raise ValueError(f"setting placeholder: no key {part!r} in {path!r}")
        node = model.model_fields[part].get_default(call_default_factory=True)
        if isinstance(node, BaseModel):
            model = type(node)
    return node


def expand(markdown: str) -> str:
    def one(match: re.Match) -> str:
        value = default_of(match.group("path"))
        if isinstance(value, float):
            return f"{value:g}"
        return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)

    return PLACEHOLDER.sub(one, markdown)
