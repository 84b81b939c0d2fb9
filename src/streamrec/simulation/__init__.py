"""The closed-loop viewer simulator: synthetic viewers with their ground-truth taste ask the running service for
lists, answer them (impressions, plays, watching) and post what they did, day after day (`streamrec simulate`)."""

from streamrec.simulation.client import HttpTransport, InProcessTransport, Posted, Served, SimulatedClock, Transport
from streamrec.simulation.loop import (
    LOG_SCHEMA,
    DaySummary,
    SimulationConfig,
    SimulationResult,
    simulate,
    world_end,
    write_log,
)
from streamrec.simulation.respond import Reaction, respond
from streamrec.simulation.viewers import Viewers, draw_sessions, load_viewers

__all__ = [
    "LOG_SCHEMA", "DaySummary", "HttpTransport", "InProcessTransport", "Posted", "Reaction", "Served",
    "SimulatedClock", "SimulationConfig", "SimulationResult", "Transport", "Viewers", "draw_sessions",
    "load_viewers", "respond", "simulate", "world_end", "write_log",
]
