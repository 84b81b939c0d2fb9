"""Shared fixtures. Tests never read ../shared: they make their own data."""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world_store(tmp_path_factory) -> Path:
    """A tiny synthetic world (200 users, 300 titles, 14 days), ingested and preprocessed into a DuckDB store.
    Tests open it read-only or copy it; they must not change it."""
    from streamrec.data.synthetic import WorldConfig, generate_world
    from streamrec.events.runner import ingest_paths
    from streamrec.preprocess.pipeline import run_preprocess
    from streamrec.settings import DuckDBEventStoreConfig, IngestConfig, PreprocessConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    root = tmp_path_factory.mktemp("tiny_world")
    generate_world(WorldConfig.preset("tiny", seed=5), root / "world")
    with DuckDBEventStore(DuckDBEventStoreConfig(), root / "events.duckdb") as store:
        ingest_paths(store, [root / "world"], IngestConfig())
        run_preprocess(store.con, PreprocessConfig())
    return root / "events.duckdb"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One real redis-server for the whole session (tests/redis_helpers.py installs Debian's if missing).
    Tests share it: each uses keys of its own (or `redis_url`, which empties the database first)."""
    from tests.redis_helpers import RedisServer

    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server) -> str:
    """URL of the session's redis-server, database emptied for this test."""
    import redis

    with redis.Redis.from_url(redis_server.url) as client:
        client.flushall()
    return redis_server.url


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server for this test alone, which it may stop, kill and start again on the same port (fault tests);
    persistent (append-only file, fsync always) so data survive a restart. Stopped at the end."""
    from tests.redis_helpers import RedisServer

    server = RedisServer(tmp_path / "redis", persist=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def spark():
    """One local Spark session (2 cores, 2 shuffle partitions, no UI) for every Spark test; the engine's own
    `spark_session` finds it active and uses it. Tuned for tiny data: adaptive query execution, which pays off on
    big shuffles, is off (it halves the time of a small ingest)."""
    from streamrec.engines.spark.session import spark_session
    from streamrec.settings import SparkConfig

    session = spark_session(SparkConfig(master="local[2]", shuffle_partitions=2, conf={
        "spark.ui.enabled": "false", "spark.default.parallelism": "2", "spark.sql.adaptive.enabled": "false"}))
    yield session
    session.stop()
