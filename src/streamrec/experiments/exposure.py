"""The exposure and outcome log of experiments: one row per (event, experiment the user is in) — exposures written by
serving when it answers a request under an experiment, and impressions, plays, progress and completes as they arrive
on the event bus, attributed to the user's variant (assignment is a pure function of the user, so the log needs no
join with serving's memory). Buffered and written as Parquet parts under FOLDER/date=YYYY-MM-DD/ (never rewritten,
so several processes can share the folder); `read_log` gives it back as one table for the analysis."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from streamrec.experiments.assign import Assigner
from streamrec.storage.partlog import PartitionedLog, read_parts

OUTCOME_TYPES = ("impression", "play", "progress", "complete")
SCHEMA = pa.schema([("ts", pa.timestamp("us")), ("user_id", pa.string()), ("experiment", pa.string()),
                    ("variant", pa.string()), ("type", pa.string()), ("item_id", pa.string()),
                    ("request_id", pa.string()), ("watched_s", pa.float64())])


class ExposureLog(PartitionedLog):
    """Append-only, thread-safe; flushed every `flush_rows` rows or `flush_s` seconds and on `close()`."""

    def __init__(self, folder: Path | str, assigner: Assigner, flush_rows: int = 5000, flush_s: float = 5.0,
                 profile: Callable[[str], tuple[str | None, datetime | None]] = lambda user: (None, None)):
        """`profile(user)` gives (region, signup time) for the experiments' eligibility rules."""
        super().__init__(folder, SCHEMA, flush_rows, flush_s)
        self.assigner, self.profile = assigner, profile

    def exposure(self, ts: datetime, user_id: str, experiment: str, variant: str, request_id: str | None) -> None:
        self._add([{"ts": ts, "user_id": user_id, "experiment": experiment, "variant": variant, "type": "exposure",
                    "item_id": None, "request_id": request_id, "watched_s": None}])

    def __call__(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Bus subscriber: outcome events of users in experiments, one row per experiment they are in."""
        rows = []
        for e in events:
            if e.get("type") not in OUTCOME_TYPES:
                continue
            ts = e["ts"]
            region, signup = self.profile(str(e["user_id"]))
            for a in self.assigner.assign(str(e["user_id"]), ts, region, signup):
                rows.append({"ts": ts, "user_id": str(e["user_id"]), "experiment": a.experiment, "variant": a.variant,
                             "type": e["type"], "item_id": e.get("item_id"), "request_id": e.get("request_id"),
                             "watched_s": e.get("watched_s")})
        if rows:
            self._add(rows)


def read_log(folder: Path | str, experiment: str | None = None) -> pa.Table:
    """Every row written under `folder` (of one experiment when named), oldest first."""
    table = read_parts(folder, SCHEMA)
    if experiment is not None:
        table = table.filter(pc.equal(table["experiment"], experiment))
    return table.sort_by("ts")
