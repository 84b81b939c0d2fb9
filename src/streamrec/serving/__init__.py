"""The serving API (FastAPI): lists, homepages, similar titles, events, models, health; hot model swap, fallbacks,
API keys, error mapping. Build it with `create_app(settings)`."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from streamrec.serving.app import create_app
    from streamrec.serving.state import ServingState, build_state

__all__ = ["ServingState", "build_state", "create_app"]
_HOMES = {"create_app": "streamrec.serving.app", "ServingState": "streamrec.serving.state",
          "build_state": "streamrec.serving.state"}


def __getattr__(name: str) -> Any:
    # imported on first use, so `streamrec.serving.schemas` (the HTTP client's models) loads without FastAPI
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'streamrec.serving' has no attribute '{name}'")
