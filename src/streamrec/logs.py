"""structlog set-up. Library code only calls `get_logger`; only cli/ and serving/ call `configure_logging`."""

from __future__ import annotations

import logging
import sys

import structlog

get_logger = structlog.get_logger


def configure_logging(level: str = "info", json_logs: bool = False) -> None:
    """Key-value logs to stderr: colourless console lines for people, JSON lines for services."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(getattr(logging, level.upper())),
        # sys.stderr is looked up per logger, not bound once: test runners swap (and close) it.
        logger_factory=lambda *args: structlog.PrintLogger(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
