"""Realtime processing: the event-bus consumer that keeps the online store fresh (`streamrec worker`)."""

from streamrec.realtime.apply import EventApplier
from streamrec.realtime.worker import Worker

__all__ = ["EventApplier", "Worker"]
