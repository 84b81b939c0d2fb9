"""The one Spark session of a process, built from the [spark] settings (pyspark is imported here, not before)."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from streamrec.errors import BackendError, ConfigError
from streamrec.logs import get_logger
from streamrec.settings import SparkConfig

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

log = get_logger(__name__)

# Settings every query of the engine relies on, set on the session even when it was built elsewhere: times are
# UTC (the event store's convention), and Parquet timestamps without a zone stay TIMESTAMP_NTZ.
RUNTIME_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.parquet.inferTimestampNTZ.enabled": "true"}


@contextmanager
def pandas_notice_ignored() -> Iterator[None]:
    """pyspark's notice that it does not fully support pandas 3, given when some of its modules load, left out: the
    engine hands data over as Arrow, never through pandas. Only that notice; other warnings pass."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "PySpark does not yet fully support pandas", FutureWarning)
        yield


def spark_session(config: SparkConfig | None = None) -> "SparkSession":
    """The active session, or a new one on `config.master` (local[*] by default).

    Raises:
        ConfigError: pyspark is not installed. BackendError: the session cannot start (no Java, a bad master).
    """
    config = config or SparkConfig()
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise ConfigError("the Spark engine needs pyspark: pip install -e '.[spark]'") from exc
    session = SparkSession.getActiveSession()
    if session is None:
        local = config.master.startswith("local")
        if local:  # a laptop's session stays on the loopback interface; its Python workers run this interpreter
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (SparkSession.builder.master(config.master).appName(config.app_name)
                   .config("spark.sql.shuffle.partitions", str(config.shuffle_partitions))
                   .config("spark.ui.showConsoleProgress", "false"))
        if local:
            builder = builder.config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
        if config.driver_memory:
            builder = builder.config("spark.driver.memory", config.driver_memory)
        for key, value in {**config.conf, **RUNTIME_CONF}.items():
            builder = builder.config(key, value)
        try:
            with pandas_notice_ignored():
                session = builder.getOrCreate()
        except Exception as exc:  # py4j / Java start-up errors have no common base class
            raise BackendError(f"cannot start Spark on {config.master}: {str(exc).splitlines()[0]}") from exc
        session.sparkContext.setLogLevel("ERROR")
        log.info("spark.session", master=config.master, version=session.version)
    for key, value in RUNTIME_CONF.items():
        session.conf.set(key, value)
    return session
