"""The settings of each seam between an embedded default and a production backend: the event store (DuckDB | Spark),
the compute engine, the event bus (in-process | Redis Streams) and the online store (memory | Redis). Each seam is a
discriminated config on `type`; a table or environment variables without one mean the embedded default."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Discriminator, Field, Tag


class DuckDBEventStoreConfig(BaseModel, extra="forbid"):
    type: Literal["duckdb"] = "duckdb"
    path: str | None = Field(None, description="database file; default DATA_DIR/events.duckdb")
    memory_limit: str | None = Field(None, description="DuckDB memory_limit, e.g. '4GB'")
    threads: int | None = Field(None, ge=1, description="DuckDB threads (default: all cores)")


class SparkEventStoreConfig(BaseModel, extra="forbid"):
    """Events as date-partitioned Parquet in a folder, written by Spark (the session from [spark])."""

    type: Literal["spark"] = "spark"
    path: str | None = Field(None, description="the store's folder; default DATA_DIR/lake")


class SparkConfig(BaseModel, extra="forbid"):
    """The Spark session of the Spark event store and the Spark engine (pyspark is imported only when chosen)."""

    master: str = Field("local[*]", min_length=1, description="local[N], spark://HOST:PORT, yarn, k8s://...")
    app_name: str = Field("streamrec", min_length=1)
    shuffle_partitions: int = Field(8, ge=1, description="spark.sql.shuffle.partitions")
    driver_memory: str | None = Field(None, description="spark.driver.memory, e.g. '4g' (local mode: all memory)")
    conf: dict[str, str] = Field(default_factory=dict, description="any other spark.* settings")


class EngineConfig(BaseModel, extra="forbid"):
    """Which engine computes features, trains ALS and scores in batch: in-process numpy/DuckDB, or Spark."""

    type: Literal["embedded", "spark"] = "embedded"


class _EventBusCommon(BaseModel, extra="forbid"):
    """What every event bus backend shares: its bound, backpressure and delivery rules."""

    maxlen: int = Field(10_000, ge=1, description="the bus keeps about this many newest entries (Redis: MAXLEN ~); a "
                                                    "consumer group holding this many unacknowledged entries makes "
                                                    "publishers wait (backpressure)")
    publish_timeout_s: float = Field(5.0, ge=0, description="how long a publish waits for room before it fails "
                                                            "(BackendError)")
    group: str = Field("workers", min_length=1, max_length=200, description="consumer group of `streamrec worker`")
    claim_idle_ms: int = Field(30_000, ge=1, description="an entry delivered but not acknowledged for this long is "
                                                         "delivered again, to any consumer of its group (its "
                                                         "consumer died, or its handler failed)")
    max_deliveries: int = Field(5, ge=1, description="an entry whose handler failed on this many deliveries goes to "
                                                     "the dead letters with the reason")


class InProcessEventBusConfig(_EventBusCommon):
    """Queue and consumer groups in this process's memory (the embedded default)."""

    type: Literal["inprocess"] = "inprocess"


class RedisEventBusConfig(_EventBusCommon):
    """Redis Streams: XADD MAXLEN ~, consumer groups (XREADGROUP/XACK), XAUTOCLAIM, a dead-letter stream."""

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (password inside)")
    stream: str = Field("streamrec:events", min_length=1, description="the stream key")
    dead_letter_stream: str | None = Field(None, description="stream of dead letters (default: STREAM:dead)")
    socket_timeout_s: float = Field(10.0, gt=0, description="a Redis command fails after this long (a consumer "
                                                            "waits at most half of it for new entries per poll)")

    @property
    def dead_stream(self) -> str:
        return self.dead_letter_stream or f"{self.stream}:dead"


def _type_or(default: str):
    """A seam's discriminator: its `type`, where a table or environment variables without one mean `default`."""

    def type_of(value: Any) -> str:
        return str(value.get("type", default) if isinstance(value, dict) else getattr(value, "type", default))

    return type_of


EventStoreConfig = Annotated[
    Annotated[DuckDBEventStoreConfig, Tag("duckdb")] | Annotated[SparkEventStoreConfig, Tag("spark")],
    Discriminator(_type_or("duckdb")),
]

EventBusConfig = Annotated[
    Annotated[InProcessEventBusConfig, Tag("inprocess")] | Annotated[RedisEventBusConfig, Tag("redis")],
    Discriminator(_type_or("inprocess")),
]


class MemoryOnlineStoreConfig(BaseModel, extra="forbid"):
    """Online store in the serving process's memory (the embedded default): one process, gone when it stops."""

    type: Literal["memory"] = "memory"
    history_length: int = Field(200, ge=1, description="engagements kept per user, newest")
    max_ranked: int = Field(200_000, ge=1, description="ranked pools kept; past it the least recently used go")


class RedisOnlineStoreConfig(BaseModel, extra="forbid"):
    """Online store on Redis: shared by serving processes and realtime workers, survives their restarts."""

    type: Literal["redis"] = "redis"
    url: str = Field("redis://127.0.0.1:6379/0", description="redis:// or rediss:// URL (password inside)")
    namespace: str = Field("streamrec", min_length=1, max_length=100, pattern=r"^[^\s*?\[\]]+$",
                           description="prefix of every key (NAMESPACE:...), so stores can share one Redis")
    history_length: int = Field(200, ge=1, description="engagements kept per user, newest")
    seen_ttl_s: int = Field(7 * 86_400, ge=1, description="an event_id is remembered this long: a replay within it "
                                                           "changes nothing")
    history_ttl_s: int | None = Field(None, ge=1, description="a user's history expires this long after its last "
                                                              "change (default: kept)")
    title_counts_ttl_s: int = Field(35 * 86_400, ge=1, description="a day's per-title counts expire this long after "
                                                                   "its last event (keep it above trending_days)")
    socket_timeout_s: float = Field(5.0, gt=0, description="a Redis command (or connecting) fails after this long")


OnlineStoreConfig = Annotated[
    Annotated[MemoryOnlineStoreConfig, Tag("memory")] | Annotated[RedisOnlineStoreConfig, Tag("redis")],
    Discriminator(_type_or("memory")),
]
