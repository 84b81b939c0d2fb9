"""The code blocks of the documentation (docs/**/*.md) and how each is checked, for tests/e2e/test_docs.py.

The convention (also stated on docs/contributing-docs.md):
- ```bash — run, in order with the page's other blocks, by `bash -euo pipefail` in a fresh folder per page, with
  `streamrec` on PATH and $PORT a free port (blocks that start a server in the background stop it themselves).
- ```python — run by the test's Python in the same folder, in the same order.
- ```toml — a settings file: written to the file named by a `<!-- docs-test: file NAME -->` line just before the
  fence (later blocks use it), else loaded with `load_settings` and must validate.
- A `<!-- docs-test: not run: REASON -->` line just before a bash block (needs a cluster, a download, minutes of
  CPU): its commands are checked instead: `streamrec ...` must name a real verb and only its options, `make X` a
  Makefile target, other programs must be installed or one of the documented external tools, repository paths
  must exist.
- A `<!-- docs-test: in repository -->` line before a bash block: it runs in the repository root instead (for commands
  that read repository files, such as rendering deploy/ manifests); it must not write there.
- ```text — a diagram or other non-code text, never run.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<kind>not run|file|in repository)\s*:?\s*(?P<arg>[^>]*?)\s*-->\s*$")
LANGUAGES = {"bash", "python", "toml", "text"}
EXTERNAL_TOOLS = {"kubectl", "docker", "helm", "kind", "minikube", "curl", "redis-server", "pip", "git", "wrk", "promtool"}
REPO_PATH = re.compile(r"^(deploy|docs|bench|examples|src|tests)/")


@dataclass
class Block:
    page: str  # path under docs/
    line: int
    language: str
    code: str
    marker: str | None  # "not run", "file" or "in repository"
    marker_arg: str

    @property
    def runs(self) -> bool:
        return self.language in ("bash", "python", "toml") and self.marker != "not run"


def pages() -> list[Path]:
    """The hand-written pages (generated ones are made by docs/gen at build time)."""
    return sorted(p for p in DOCS.rglob("*.md") if "gen" not in p.relative_to(DOCS).parts)


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = MARKER.search(before)
        found.append(Block(str(page.relative_to(DOCS)), text[:match.start()].count("\n") + 1, match.group(1),
                           match.group(2), marker.group("kind") if marker else None,
                           marker.group("arg") if marker else ""))
    return found


def commands(code: str) -> list[list[str]]:
    """The simple commands of a shell block: continuations joined, comments dropped, split at ;, &&, || and |."""
    joined = re.sub(r"\\\n", " ", code)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = shlex.split(line, comments=True)
        current: list[str] = []
        for word in words + [";"]:
            if word in (";", "&&", "||", "|", "&"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(word)
    return out


def makefile_targets() -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9_.-]+)\s*:(?!=)", (ROOT / "Makefile").read_text(), re.MULTILINE))


def check_streamrec_command(words: list[str]) -> str | None:
    """None when `streamrec WORDS` names a real verb with only its own options, else what is wrong."""
    import typer.main

    from streamrec.cli.app import app

    command = typer.main.get_command(app)
    globals_ = {o for p in command.params for o in getattr(p, "opts", [])}
    rest = words[1:]
    while rest and rest[0] in globals_:
        rest = rest[2:]
    path = []
    while rest and rest[0] in getattr(command, "commands", {}):
        path.append(rest[0])
        command = command.commands[rest[0]]
        rest = rest[1:]
    if getattr(command, "commands", None):
        return f"`streamrec {' '.join(path)}` needs a subcommand"
    known = {o for p in command.params for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
    unknown = [w.split("=")[0] for w in rest if w.startswith("-") and w.split("=")[0] not in known | {"--help"}]
    return f"`streamrec {' '.join(path)}` has no option {unknown}" if unknown else None


def check_not_run(block: Block) -> list[str]:
    """What is wrong with the commands of a block that is not run (empty: all fine)."""
    import shutil

    problems = []
    targets = makefile_targets()
    for words in commands(block.code):
        while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value prefixes
            words = words[1:]
        if not words:
            continue
        program = words[0]
        if program == "streamrec":
            problem = check_streamrec_command(words)
            if problem:
                problems.append(problem)
        elif program == "make":
            problems += [f"no Makefile target {w!r}" for w in words[1:]
                         if not w.startswith("-") and "=" not in w and w not in targets]
        elif program not in EXTERNAL_TOOLS and shutil.which(program) is None and program not in ("cd", "export"):
            problems.append(f"unknown program {program!r}")
        problems += [f"no such path in the repository: {w}" for w in words if REPO_PATH.match(w)
                     and not any((ROOT / p).exists() for p in {w, w.rstrip("/"), w.split(":")[0]})]
    return problems
