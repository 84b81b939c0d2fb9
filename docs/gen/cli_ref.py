"""The CLI reference, generated from the Typer app (streamrec.cli.app): every verb, argument and option with its
help text and default, walked from the same command tree `streamrec --help` prints."""

from __future__ import annotations

import re
from typing import Any


def command_tree() -> list[tuple[list[str], Any]]:
    """(path, command) for the root and every verb, groups included, in the order the app declares them."""
    import typer.main

    from streamrec.cli.app import app

    found: list[tuple[list[str], Any]] = []

    def walk(command: Any, path: list[str]) -> None:
        found.append((path, command))
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return found


def _plain(text: str | None) -> str:
    """Help text without Rich markup escapes or Click's no-rewrap markers."""
    text = (text or "").replace("\\[", "[").replace("\b", "")
    return re.sub(r"\[/?(bold|red|green|yellow|dim|cyan)\]", "", text).strip()


def _cell(text: str) -> str:
    return " ".join(_plain(text).split()).replace("|", "\\|")


def _default(param: Any) -> str:
    default = param.default
    if callable(default) or default is None or default == () or getattr(param, "required", False):
        return ""
    if getattr(param, "is_flag", False) and getattr(param, "secondary_opts", None):
        return f"`{param.opts[0] if default else param.secondary_opts[0]}`"
    if getattr(param, "is_flag", False):
        return "off" if not default else "on"
    return f"`{default}`"


def _type(param: Any) -> str:
    if getattr(param, "is_flag", False):
        return "flag"
    import enum
    import typing

    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if args and typing.get_origin(annotation) is not list:
        annotation = args[0]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return " \\| ".join(str(m.value) for m in annotation)
    names = {"str": "text", "Path": "path", "int": "integer", "float": "number", "datetime": "time (ISO 8601)"}
    if typing.get_origin(annotation) is list:
        return "list of " + names.get(getattr(args[0], "__name__", ""), "values") if args else "list"
    return names.get(getattr(annotation, "__name__", ""), getattr(annotation, "__name__", ""))


def usage(path: list[str], command: Any) -> str:
    args = []
    for p in command.params:
        if getattr(p, "param_type_name", "") == "argument":
            shown = p.name.upper() + ("..." if p.nargs == -1 else "")
            args.append(shown if p.required else f"[{shown}]")
    has_options = any(getattr(p, "param_type_name", "") == "option" for p in command.params)
    return " ".join(["streamrec", *path, *(["[OPTIONS]"] if has_options else []), *args])


def render() -> str:
    """The whole reference page (Markdown)."""
    tree = command_tree()
    parts = [
        "# CLI reference",
        "",
        "Generated from the Typer app in `src/streamrec/cli/app.py` on every build of this site. `streamrec VERB "
        "--help` prints the same text in the terminal. Global options go before the verb "
        "(`streamrec --data-dir DIR train`); a domain error prints one line and exits with code 2.",
        "",
    ]
    for path, command in tree:
        is_group = bool(getattr(command, "commands", None))
        if is_group and path:
            parts += [f"{'#' * (len(path) + 1)} streamrec {' '.join(path)}", "", _plain(command.help).split("\n\n")[0], "",
                      "Subcommands: " + ", ".join(f"[`{n}`](#streamrec-{'-'.join([*path, n])})"
                                                  for n in command.commands), ""]
            continue
        title = "Global options" if not path else f"streamrec {' '.join(path)}"
        level = "#" * (max(len(path), 1) + 1)
        anchor = "streamrec-" + "-".join(path) if path else "global-options"
        parts += [f"{level} {title} {{#{anchor}}}", ""]
        if path:
            parts += ["`" + usage(path, command) + "`", ""]
        parts += [_plain(command.help).replace("\n\n", "\n\n").strip(), ""]
        rows = []
        for p in command.params:
            kind = getattr(p, "param_type_name", "")
            if kind == "argument":
                rows.append(f"| `{p.name.upper()}` | argument | {_type(p)} | {'required' if p.required else ''} | "
                            f"{_cell(getattr(p, 'help', ''))} |")
            elif kind == "option" and "--help" not in p.opts:
                names = ", ".join(f"`{o}`" for o in [*p.opts, *p.secondary_opts])
                rows.append(f"| {names} | option | {_type(p)} | {_default(p)} | {_cell(getattr(p, 'help', ''))} |")
        if rows:
            parts += ["| name | kind | type | default | description |", "|---|---|---|---|---|", *rows, ""]
    return "\n".join(parts) + "\n"
