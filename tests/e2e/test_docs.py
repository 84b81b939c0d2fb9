"""The documentation site: `mkdocs build --strict` succeeds offline with the generated references complete, and every
code block on every page runs (or, where it cannot run here, names real verbs, options, targets and files); the
convention is in tests/docs_blocks.py."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from tests.docs_blocks import DOCS, LANGUAGES, ROOT, Block, blocks, check_not_run, pages

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")} | {"NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run([str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def html(site: Path, page: str) -> str:
    return (site / page / "index.html").read_text()


def test_the_site_builds_strict_and_offline(site):
    assert (site / "assets" / "dataflow.svg").read_text().startswith("<svg")
    for page in site.rglob("*.html"):
        text = page.read_text()
        external = re.findall(r'<(?:script|link)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not [u for u in external if not u.startswith("https://squidfunk.github.io")], (page, external)
        assert "fonts.googleapis" not in text and 'class="mermaid"' not in text, page


def test_the_cli_reference_names_every_verb_and_option(site):
    import typer.main

    from streamrec.cli.app import app

    text = html(site, "reference/cli")

    def walk(command, path):
        if getattr(command, "commands", None):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
            return
        assert f'id="streamrec-{"-".join(path)}"' in text, path
        for param in command.params:
            for option in getattr(param, "opts", []):
                if option.startswith("--") and option != "--help":
                    assert f"<code>{option}</code>" in text, (path, option)

    walk(typer.main.get_command(app), [])


def test_the_configuration_reference_names_every_key(site):
    from streamrec.settings import Settings

    text = html(site, "reference/configuration")
    for name, field in Settings.model_fields.items():
        assert f"<code>{field.alias or name}</code>" in text or f"[{name}]" in text or f"[[{name}]]" in text, name
    assert "STREAMREC_SERVING__RANKED_TTL_S" in text and "<code>[event_bus]</code> with" in text


def test_the_http_reference_has_every_route_of_the_schema(site):
    import json

    schema = json.loads((site / "reference" / "openapi.json").read_text())
    text = html(site, "reference/http-api")
    for path, methods in schema["paths"].items():
        for method in methods:
            assert f"{method.upper()} <code>{path}</code>" in text, (method, path)
    assert "/v1/users/{user_id}/recommendations" in schema["paths"]


def test_the_design_page_quotes_numbers_only_from_the_result_files(site):
    """Measurements in docs/design.md come from `{{ bench ... }}` placeholders, never typed by hand."""
    source = (DOCS / "design.md").read_text()
    prose = re.sub(r"\{\{.*?\}\}|`[^`]*`|^\|.*$", "", source, flags=re.MULTILINE)
    typed = re.findall(r"\b\d[\d,.]*\s?(?:ms|%|×|events/s|requests/s|GiB|MiB|s\b)", prose)
    assert not typed, f"numbers typed into design.md instead of rendered from bench/results: {typed}"
    assert "Measured by" in html(site, "design")


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in blocks(p)]


def test_every_block_follows_the_convention():
    found = all_blocks()
    assert len(found) > 20
    for block in found:
        assert block.language in LANGUAGES, f"{block.page}:{block.line}: fence language {block.language!r}"
        if block.marker == "not run":
            assert block.language == "bash" and block.marker_arg, f"{block.page}:{block.line}: give a reason"
            assert not check_not_run(block), (f"{block.page}:{block.line}", check_not_run(block))


def test_the_not_run_check_catches_wrong_commands():
    bad = Block("x.md", 1, "bash", "streamrec train --no-such-flag\nmake no-such-target\nkubectl apply -f deploy/nope/\n"
                "streamrec data\n", "not run", "example")
    problems = check_not_run(bad)
    assert len(problems) == 4, problems


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_block(block: Block, cwd: Path, env: dict[str, str], sessions: list[int]) -> None:
    where = f"{block.page}:{block.line}"
    if block.language == "toml":
        from streamrec.settings import load_settings

        target = cwd / (block.marker_arg if block.marker == "file" else ".docs-check.toml")
        target.write_text(block.code)
        if block.marker != "file" or target.name == "streamrec.toml":
            load_settings(target)  # raises ConfigError naming the bad key
        return
    argv = ["bash", "-euo", "pipefail", "-c", block.code] if block.language == "bash" else \
        [sys.executable, "-c", block.code]
    process = subprocess.Popen(argv, cwd=ROOT if block.marker == "in repository" else cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    sessions.append(process.pid)  # a server it starts in the background lives on, in this session, until the page ends
    try:
        output, _ = process.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError(f"{where} did not finish in 180 s:\n{block.code}") from None
    assert process.returncode == 0, f"{where} exited {process.returncode}:\n{block.code}\n---\n{output[-4000:]}"


def page_env(redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMREC_")}
    env |= {"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "PORT": str(free_port()), "COLUMNS": "160",
            "OPENBLAS_NUM_THREADS": "1", "NO_COLOR": "1"}
    return env | ({"REDIS_URL": redis_url} if redis_url else {})


def run_blocks(page_blocks: list[Block], work: Path, env: dict[str, str]) -> None:
    sessions: list[int] = []
    try:
        for block in page_blocks:
            run_block(block, work, env, sessions)
    finally:
        for session in sessions:  # whatever a block left running in the background goes with the page
            try:
                os.killpg(session, signal.SIGTERM)
            except ProcessLookupError:
                pass


def runnable_pages() -> list[str]:
    return [str(p.relative_to(DOCS)) for p in pages() if any(b.runs for b in blocks(p))]


@pytest.fixture(scope="module")
def page_failures(tmp_path_factory, request) -> dict[str, str | None]:
    """Every runnable page's blocks, run two pages at a time (most of the work is single-threaded CLI processes);
    a set-up block that opens several pages runs once and its folder is copied. page → failure (None: it ran)."""
    from concurrent.futures import ThreadPoolExecutor

    planned = {page: [b for b in blocks(DOCS / page) if b.runs] for page in runnable_pages()}
    redis_url = None
    if any("REDIS_URL" in b.code for bs in planned.values() for b in bs):
        redis_url = request.getfixturevalue("redis_server").url
    firsts = [bs[0].code for bs in planned.values() if bs[0].language == "bash" and bs[0].marker is None]
    shared: dict[str, Path] = {}
    for code in {c for c in firsts if firsts.count(c) > 1}:
        folder = tmp_path_factory.mktemp("docs-setup")
        block = next(bs[0] for bs in planned.values() if bs[0].code == code)
        run_blocks([block], folder, page_env(None))
        shared[code] = folder

    def run_page(page: str) -> str | None:
        page_blocks = planned[page]
        work = tmp_path_factory.mktemp("docs-page") / "work"
        if page_blocks[0].code in shared:
            shutil.copytree(shared[page_blocks[0].code], work)
            page_blocks = page_blocks[1:]
        else:
            work.mkdir()
        try:
            run_blocks(page_blocks, work, page_env(redis_url if any("REDIS_URL" in b.code for b in page_blocks)
                                                   else None))
        except Exception as exc:  # reported by the page's own test
            return f"{type(exc).__name__}: {exc}"
        return None

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(planned, pool.map(run_page, planned)))


@pytest.mark.parametrize("page", runnable_pages())
def test_the_page_runs(page, page_failures):
    assert page_failures[page] is None, page_failures[page]
