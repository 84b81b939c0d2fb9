"""The configuration reference, generated from the pydantic settings models (streamrec.settings and the monitoring
thresholds), so every key, type, default and description on the page is the code's own."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined


def type_name(annotation: Any) -> str:
    """A short, readable type: `"a" | "b"`, `int | None`, `list[str]`."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is Literal:
        return " \\| ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(type_name(a) for a in args)
    if origin in (list, dict, tuple, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation is SecretStr:
        return "secret string"
    if annotation is Path:
        return "path"
    return getattr(annotation, "__name__", str(annotation))


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, BaseModel):
        return "(table)"
    if value is PydanticUndefined:
        return "required"
    return "`" + json.dumps(value, default=str).replace("|", "\\|") + "`"


def models_in(annotation: Any) -> list[type[BaseModel]]:
    """The BaseModel classes a field holds directly (a table, a discriminated union of tables, a list of tables)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is typing.Annotated:
        return models_in(args[0])
    if origin in (typing.Union, types.UnionType, list):
        return [m for a in args for m in models_in(a)]
    return []


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def model_section(model: type[BaseModel], path: list[str], env: bool, level: int, title: str | None = None,
                  many: bool = False) -> list[str]:
    """A table of `model`'s scalar keys, then one subsection per nested table, depth first."""
    doc = (model.__doc__ or "").strip()
    key = ".".join(path)
    title = title or ((f"`[[{key}]]`" if many else f"`[{key}]`") if path else "Top level")
    variant = model.model_fields.get("type")
    if variant is not None and get_origin(variant.annotation) is Literal and len(models_in_parent(model)) != 1:
        title += f" with `type = \"{get_args(variant.annotation)[0]}\"`"
    lines = ["#" * level + " " + title, ""]
    if doc and not doc.startswith("Usage docs") and model.__module__.startswith("streamrec"):
        lines += [doc.split("\n\n")[0].replace("\n", " "), ""]
    rows, nested = [], []
    for name, field in model.model_fields.items():
        toml_key = field.alias or name
        inner = models_in(field.annotation)
        if inner:
            nested.append((toml_key, field, inner))
            continue
        env_name = "STREAMREC_" + "__".join([*path, toml_key]).upper() if env else ""
        rows.append(f"| `{toml_key}` | {type_name(field.annotation)} | {default_text(field)} | "
                    f"{_cell(field.description or '')} |" + (f" `{env_name}` |" if env else ""))
    if rows:
        header = "| key | type | default | description |" + (" environment variable |" if env else "")
        lines += [header, "|---" * (5 if env else 4) + "|", *rows, ""]
    for toml_key, field, inner in nested:
        many = get_origin(field.annotation) is list
        sub_path = [*path, toml_key]
        if many:
            lines += [f"`{'.'.join(sub_path)}` is a list of tables (`[[{'.'.join(sub_path)}]]` in TOML). "
                      f"{_cell(field.description or '')}", ""]
        for sub in dict.fromkeys(inner):
            _PARENTS[sub] = inner
            lines += model_section(sub, sub_path, env and not many, level + 1 if level < 4 else level, many=many)
    return lines


_PARENTS: dict[type[BaseModel], list[type[BaseModel]]] = {}


def models_in_parent(model: type[BaseModel]) -> list[type[BaseModel]]:
    return _PARENTS.get(model, [model])


def render() -> str:
    """The whole reference page (Markdown)."""
    from streamrec.monitoring.config import MonitoringConfig
    from streamrec.settings import Settings

    _PARENTS.clear()
    parts = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models in `src/streamrec/settings/` (and `streamrec/monitoring/config.py` "
        "for `streamrec monitor --thresholds`) on every build of this site, so it cannot drift from the code.",
        "",
        "Settings come from `streamrec.toml` in the working directory (or `--config FILE`, or `$STREAMREC_CONFIG`), "
        "the chosen profile (`--profile NAME` reads `[profile.NAME]` over the top level), then environment "
        "variables, which win: `STREAMREC_` plus the key path joined by `__`, e.g. "
        "`STREAMREC_SERVING__RANKED_TTL_S=0`. Values of lists and tables in a variable are JSON. Unknown keys are "
        "rejected with their name. A seam with several backends (`event_bus`, `online_store`) is chosen by its "
        "`type` key; each backend has its own table below.",
        "",
        *model_section(Settings, [], env=True, level=2),
        *model_section(MonitoringConfig, [], env=False, level=2,
                       title="Monitoring thresholds (`streamrec monitor --thresholds FILE`)"),
    ]
    return "\n".join(parts) + "\n"
