"""The serving API (FastAPI): lists, homepages, similar titles, events, models, health; hot model swap, fallbacks,
API keys, error mapping. Build it with `create_app(settings)`."""

from streamrec.serving.app import create_app
from streamrec.serving.state import ServingState, build_state

__all__ = ["ServingState", "build_state", "create_app"]
