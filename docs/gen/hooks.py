"""MkDocs hooks: the generated pages (configuration, CLI and HTTP API references, the benchmarks page, the data-flow
diagram) are rebuilt from the code on every build, and `{{ bench ... }}` / `{{ setting ... }}` placeholders are
filled from bench/results and the settings models. Plain Python, nothing fetched: the site builds offline."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tables
import cli_ref
import diagram
import domain_tables
import openapi_ref
import settings_ref
import settings_values
from mkdocs.structure.files import File

OPTIONAL_PAGES = {"capacity.md": "Capacity plan"}  # written by the scale benchmark; in the nav once it exists
_LINK = re.compile(r"\[(?P<text>[^\]]+)\]\((?P<page>capacity\.md)(?P<anchor>#[^)]*)?\)")


def on_config(config):
    docs = Path(config["docs_dir"])
    for page, title in OPTIONAL_PAGES.items():
        if (docs / page).is_file():
            at = next(i for i, entry in enumerate(config["nav"]) if "Benchmarks" in entry)
            config["nav"].insert(at + 1, {title: page})
    return config


def on_files(files, config):
    """Add the generated files before the navigation is built (the nav names them like any page)."""
    schema = openapi_ref.openapi_schema()
    generated = {
        "reference/configuration.md": settings_ref.render(),
        "reference/cli.md": cli_ref.render(),
        "reference/http-api.md": openapi_ref.render(schema),
        "reference/openapi.json": json.dumps(schema, indent=2) + "\n",
        "benchmarks.md": bench_tables.benchmarks_page(),
        "assets/dataflow.svg": diagram.render_svg(),
    }
    for src_uri, content in generated.items():
        files.append(File.generated(config, src_uri, content=content))
    for path in bench_tables.repository_files(generated["benchmarks.md"]):  # plots the sections link to
        files.append(File.generated(config, path, abs_src_path=str(bench_tables.ROOT / path)))
    return files


def on_page_markdown(markdown, page, config, files):
    depth = page.file.src_uri.count("/")
    missing = [p for p in OPTIONAL_PAGES if files.get_file_from_path(p) is None]
    if missing:  # a link to a page not written yet becomes its text
        markdown = _LINK.sub(lambda m: m.group("text") if m.group("page") in missing else m.group(0), markdown)
    markdown = bench_tables.expand(markdown, "../" * depth + "benchmarks.md")
    return domain_tables.expand(settings_values.expand(markdown))
