"""Benchmark numbers in the docs, rendered from bench/results/*.json by the same functions that write BENCHMARKS.md
(bench/render.py and bench/render_*.py), so a number is computed in one place and never typed into a page.

In a page, a line `{{ bench NAME table=1,2 para="Target" }}` becomes the named section's tables (1-based) and the
paragraphs that start with the quoted text, followed by the command that measured them and a link to the whole
section on the benchmarks page; with `optional`, a section whose results do not exist yet is left out. NAME is a section of bench/render.py (ingest, generate, movielens) or the NAME of a
bench/render_NAME.py.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
from pathlib import Path

from markdown.extensions.toc import slugify

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
PLACEHOLDER = re.compile(r"^\{\{\s*bench\s+(?P<name>\w+)(?P<args>[^}]*)\}\}[ \t]*$", re.MULTILINE)


def _render_module():
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))  # the render_*.py modules import `render` by name
    import render

    return render


def sections() -> dict[str, str]:
    """Every benchmark section as Markdown, by name, in BENCHMARKS.md's order (empty ones left out)."""
    render = _render_module()
    found: dict[str, str] = {}
    for function in render.SECTIONS:
        found[function.__name__] = function()
    for path in sorted(BENCH.glob("render_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module  # dataclasses in a render module look their module up by name
        spec.loader.exec_module(module)
        found[path.stem.removeprefix("render_")] = module.section()
    return {name: site_links(text) for name, text in found.items() if text}


LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<target>[^)#\s]+)(?P<rest>[^)]*)\)")


def repository_files(text: str) -> list[str]:
    """Files of the repository that a section links to (a plot beside its results), to be copied into the site."""
    return sorted({m.group("target") for m in LINK.finditer(text) if "://" not in m.group("target")
                   and not m.group("target").endswith(".md") and (ROOT / m.group("target")).is_file()})


def site_links(text: str) -> str:
    """Links written for BENCHMARKS.md (relative to the repository root) as the site needs them: docs/ pages by their
    path in the site, other Markdown files as plain text; repository files stay (the hooks copy them in)."""

    def one(m: re.Match) -> str:
        target = m.group("target")
        if "://" in target or not target.endswith(".md"):
            return m.group(0)
        if target.startswith("docs/"):
            return f"{m.group('bang')}[{m.group('text')}]({target.removeprefix('docs/')}{m.group('rest')})"
        return m.group("text")

    return LINK.sub(one, text)


def benchmarks_page() -> str:
    """The benchmarks page: BENCHMARKS.md's introduction and every section, rendered now from the result files."""
    intro = (ROOT / "BENCHMARKS.md").read_text().split("\n## ", 1)[0].strip()
    return "\n\n".join([intro, *(text.strip() for text in sections().values())]) + "\n"


def _blocks(text: str) -> list[str]:
    return [b.strip() for b in re.split(r"\n\s*\n", text) if b.strip()]


def heading_anchor(text: str) -> str:
    """The anchor MkDocs gives the section's `## ` heading (the toc extension's default slugify)."""
    heading = next(line for line in text.splitlines() if line.startswith("## "))
    return slugify(heading[3:].strip(), "-")


def command_of(text: str) -> str:
    """The command that made the section's numbers: the backticked text that opens its first paragraph."""
    first = _blocks(text)[1]
    found = re.match(r"`([^`]+)`", first)
    return found.group(1) if found else ""


def expand(markdown: str, benchmarks_link: str) -> str:
    """Replace every bench placeholder in `markdown`; an unknown section, table or paragraph fails the build."""
    if not PLACEHOLDER.search(markdown):
        return markdown
    available = sections()

    def one(match: re.Match) -> str:
        name = match.group("name")
        args = shlex.split(match.group("args"))
        if name not in available and "optional" in args:  # a section still being written: left out, not failed
            return ""
        if name not in available:
            raise ValueError(f"bench placeholder: no section {name!r} (have: {', '.join(available)}); "
                             "its bench/results file may be missing")
        text = available[name]
        blocks = _blocks(text)
        tables = [b for b in blocks if b.startswith("|")]
        out: list[str] = []
        for arg in args:
            key, _, value = arg.partition("=")
            if key == "optional":
                continue
            if key == "table":
                for index in value.split(","):
                    if not 1 <= int(index) <= len(tables):
                        raise ValueError(f"bench {name}: no table {index} (the section has {len(tables)})")
                    out.append(tables[int(index) - 1])
            elif key == "para":
                chosen = [b for b in blocks if not b.startswith(("|", "#")) and b.lstrip("*- ").startswith(value)]
                if not chosen:
                    raise ValueError(f"bench {name}: no paragraph starting with {value!r}")
                out += chosen
            else:
                raise ValueError(f"bench {name}: unknown argument {arg!r} (table=N,M or para=\"Start of text\")")
        command = command_of(text)
        source = f"[benchmarks: {name}]({benchmarks_link}#{heading_anchor(text)})"
        out.append(f"*Measured by `{command}`; rendered from `bench/results` at build time — {source}.*"
                   if command else f"*Rendered from `bench/results` at build time — {source}.*")
        return "\n\n".join(out)

    return PLACEHOLDER.sub(one, markdown)
