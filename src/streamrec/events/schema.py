"""The versioned event schema: one table layout for every event type, typed per column.

Events are stored long and narrow: the common fields plus nullable per-type fields. The schema version is
stored with every row so a later version can be read side by side with an older one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import StrEnum
from typing import Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = 1


class EventType(StrEnum):
    IMPRESSION = "impression"
    PLAY = "play"
    PROGRESS = "progress"
    COMPLETE = "complete"
    RATING = "rating"
    ADD_TO_LIST = "add_to_list"


EVENT_TYPES: tuple[str, ...] = tuple(t.value for t in EventType)


@dataclass(frozen=True)
class Column:
    """One event column: its name, its SQL type (DuckDB and Spark spell these the same) and its limits."""

    name: str
    sql_type: str
    required: bool = False
    max_len: int | None = None  # strings only
    min_value: float | None = None
    max_value: float | None = None
    doc: str = ""


# The canonical layout. Order matters: it is the column order of the events table and of exported Parquet.
EVENT_COLUMNS: tuple[Column, ...] = (
    Column("event_id", "VARCHAR", required=True, max_len=128, doc="unique id, used for dedup"),
    Column("user_id", "VARCHAR", required=True, max_len=128, doc="profile id"),
    Column("item_id", "VARCHAR", required=True, max_len=128, doc="title id"),
    Column("type", "VARCHAR", required=True, max_len=16, doc="one of " + ", ".join(EVENT_TYPES)),
    Column("ts", "TIMESTAMP", required=True, doc="event time, UTC"),
    Column("request_id", "VARCHAR", max_len=128, doc="the recommendation request that showed the title"),
    Column("position", "INTEGER", min_value=0, max_value=10_000, doc="impression: slot in its row"),
    Column("row", "VARCHAR", max_len=64, doc="impression: the homepage row"),
    Column("device", "VARCHAR", max_len=32, doc="tv, mobile, web, tablet ..."),
    Column("watched_s", "DOUBLE", min_value=0, max_value=7 * 24 * 3600, doc="progress/complete: seconds watched"),
    Column("fraction", "DOUBLE", min_value=0, max_value=1, doc="progress/complete: share of the runtime watched"),
    Column("rating", "DOUBLE", min_value=0, max_value=10, doc="rating: the value given"),
)
COLUMN_BY_NAME: dict[str, Column] = {c.name: c for c in EVENT_COLUMNS}
EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)
REQUIRED_COLUMNS: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS if c.required)

# Per-type fields that must be present (beyond the always-required ones).
TYPE_REQUIRES: dict[str, tuple[str, ...]] = {
    EventType.IMPRESSION: ("position",),
    EventType.PLAY: (),
    EventType.PROGRESS: ("fraction",),
    EventType.COMPLETE: (),
    EventType.RATING: ("rating",),
    EventType.ADD_TO_LIST: (),
}

_ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
}

EVENT_ARROW_SCHEMA = pa.schema(
    [pa.field(c.name, _ARROW_TYPES[c.sql_type], nullable=not c.required) for c in EVENT_COLUMNS]
)


def events_table_ddl(table: str) -> str:
    """CREATE TABLE statement for a table of canonical events (plus the schema version)."""
    cols = ",\n  ".join(f'"{c.name}" {c.sql_type}{" NOT NULL" if c.required else ""}' for c in EVENT_COLUMNS)
    return f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols},\n  schema_version SMALLINT NOT NULL DEFAULT {SCHEMA_VERSION}\n)"


class Event(BaseModel):
    """One event, for code that handles events one at a time (API, worker, tests).

    Batch ingestion does not use this model: it validates whole files with the same rules in SQL
    (streamrec.events.rules), so the two paths cannot drift apart.
    """

    model_config = ConfigDict(extra="forbid")

    event_id: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    item_id: str = Field(min_length=1, max_length=128)
    type: Literal["impression", "play", "progress", "complete", "rating", "add_to_list"]
    ts: datetime
    request_id: str | None = Field(None, max_length=128)
    position: int | None = Field(None, ge=0, le=10_000)
    row: str | None = Field(None, max_length=64)
    device: str | None = Field(None, max_length=32)
    watched_s: float | None = Field(None, ge=0, le=7 * 24 * 3600)
    fraction: float | None = Field(None, ge=0, le=1)
    rating: float | None = Field(None, ge=0, le=10)

    @field_validator("ts")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
