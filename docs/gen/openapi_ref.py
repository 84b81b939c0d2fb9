"""The HTTP API reference, generated from the serving app's own OpenAPI schema (FastAPI builds it from the routes and
pydantic schemas in streamrec.serving), so paths, parameters, bodies and status codes are the code's."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any


def openapi_schema() -> dict[str, Any]:
    """The schema of an app built as `streamrec serve` builds it, with default settings, over an empty event store
    in a temporary folder (no model is needed to describe the routes)."""
    import structlog

    from streamrec.serving.app import create_app
    from streamrec.settings import DuckDBEventStoreConfig, load_settings
    from streamrec.storage.events.duckdb import DuckDBEventStore

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))  # no model: expected
    with tempfile.TemporaryDirectory() as tmp:
        with DuckDBEventStore(DuckDBEventStoreConfig(), Path(tmp) / "events.duckdb"):
            pass
        settings = load_settings(config=None, data_dir=Path(tmp), serving={"model": str(Path(tmp) / "no-model")})
        return create_app(settings).openapi()


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " \\| ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"object of {_type(schema['additionalProperties'])}" if isinstance(
            schema["additionalProperties"], dict) else "object"
    limits = [f"{k} {schema[k]}" for k in ("minimum", "maximum", "minLength", "maxLength", "maxItems")
              if k in schema]
    return kind + (f" ({', '.join(limits)})" if limits else "")


def _cell(text: Any) -> str:
    return " ".join(str(text or "").split()).replace("|", "\\|")


def render(schema: dict[str, Any] | None = None) -> str:
    """The whole reference page (Markdown)."""
    schema = schema or openapi_schema()
    info = schema["info"]
    parts = [
        "# HTTP API reference",
        "",
        f"Generated on every build of this site from the OpenAPI schema of the serving app (`{info['title']}` "
        f"version {info['version']}, OpenAPI {schema['openapi']}); a running `streamrec serve` shows the same "
        "schema at `/openapi.json` and an interactive page at `/docs`. The schema itself: "
        "[openapi.json](openapi.json).",
        "",
        _cell(info.get("description")),
        "",
        "Every response carries `X-Request-ID` (the caller's, when well formed, else a new one), `X-Model-Version` "
        "and `X-Experiment-Variant` (and `X-Experiment` inside an experiment). Endpoints marked *API key* need a key "
        "of `serving.api_keys` in the `X-API-Key` header.",
        "",
        "| method | path | summary |",
        "|---|---|---|",
    ]
    ops = [(path, method, op) for path, methods in schema["paths"].items() for method, op in methods.items()]
    for path, method, op in ops:
        parts.append(f"| {method.upper()} | [`{path}`](#{op['operationId'].lower()}) | {_cell(op.get('summary'))} |")
    parts.append("")
    for path, method, op in ops:
        parts += [f"## {method.upper()} `{path}` {{#{op['operationId'].lower()}}}", ""]
        if op.get("security"):
            parts += ["*API key* (`X-API-Key`).", ""]
        parts += [(op.get("description") or op.get("summary", "")).strip(), ""]
        params = op.get("parameters", [])
        if params:
            parts += ["| parameter | in | type | required | default | description |", "|---|---|---|---|---|---|"]
            for p in params:
                s = p.get("schema", {})
                default = f"`{json.dumps(s['default'])}`" if "default" in s else ""
                parts.append(f"| `{p['name']}` | {p['in']} | {_type(s)} | {'yes' if p.get('required') else ''} | "
                             f"{default} | {_cell(p.get('description') or s.get('description'))} |")
            parts.append("")
        body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
        if body:
            parts += [f"Request body: {_type(body)}.", ""]
        parts += ["| status | meaning | body |", "|---|---|---|"]
        for code, response in op.get("responses", {}).items():
            content = response.get("content", {})
            shown = next(iter(content), "")
            body_schema = content.get(shown, {}).get("schema") if shown else None
            body_text = _type(body_schema) if body_schema else (f"`{shown}`" if shown else "")
            parts.append(f"| {code} | {_cell(response.get('description'))} | {body_text} |")
        parts.append("")
    parts += ["## Schemas", ""]
    for name, s in sorted(schema.get("components", {}).get("schemas", {}).items()):
        parts += [f"### {name} {{#{name.lower()}}}", ""]
        if s.get("description"):
            parts += [_cell(s["description"]), ""]
        props = s.get("properties", {})
        if props:
            required = set(s.get("required", []))
            parts += ["| field | type | required | default | description |", "|---|---|---|---|---|"]
            for field, fs in props.items():
                default = f"`{json.dumps(fs['default'])}`" if "default" in fs else ""
                parts.append(f"| `{field}` | {_type(fs)} | {'yes' if field in required else ''} | {default} | "
                             f"{_cell(fs.get('description'))} |")
            parts.append("")
        elif s.get("type") or s.get("enum"):
            parts += [f"Type: {_type(s)}.", ""]
    return "\n".join(parts) + "\n"
