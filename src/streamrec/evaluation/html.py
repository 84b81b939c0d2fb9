"""Shared pieces of the self-contained HTML reports: escaping, embedded PNG charts, one stylesheet."""

from __future__ import annotations

import base64
import html
import io


def escape(text: str) -> str:
    return html.escape(str(text))


def png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)  # type: ignore[attr-defined]
    return buffer.getvalue()


def img(png: bytes) -> str:
    return f"<img alt=\"chart\" src=\"data:image/png;base64,{base64.b64encode(png).decode('ascii')}\">"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.kv td { text-align: left; }
img { max-width: 100%; }
"""
