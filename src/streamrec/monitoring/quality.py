"""Data quality of the latest ingestion batches, read from the event store, checked against thresholds.

Per batch: volume (read, stored, duplicates, quarantined), rejection rate and reasons (from `quarantine`), null rate
per column, late events and the share of events on titles never seen in earlier batches (from `events`, through
`streamrec.preprocess.quality.batch_quality`).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from datetime import datetime

import duckdb

from streamrec.errors import DataError
from streamrec.monitoring.alerts import Alert
from streamrec.monitoring.config import QualityThresholds
from streamrec.preprocess.quality import QualitySummary, batch_quality


@dataclass(frozen=True)
class BatchCheck:
    """What one ingestion batch brought and how clean it was."""

    batch_id: int
    source: str
    finished_at: datetime | None
    read: int
    stored: int
    duplicates: int
    quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)  # rejection reason → rows, most frequent first
    summary: QualitySummary | None = None  # None when the batch stored no events

    @property
    def rejection_rate(self) -> float:
        return self.quarantined / self.read if self.read else 0.0

    @property
    def late_share(self) -> float:
        return self.summary.late_events / self.summary.rows if self.summary and self.summary.rows else 0.0

    @property
    def label(self) -> str:
        return f"batch {self.batch_id} ({self.source})"


def check_batches(con: duckdb.DuckDBPyConnection, thresholds: QualityThresholds) -> list[BatchCheck]:
    """The latest `thresholds.batches` ingestion batches, oldest first, with their quality numbers.

    Raises:
        DataError: the store has no batches table (nothing was ever ingested into it).
    """
    has = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'batches' AND NOT temporary").fetchone()
    if not has or not has[0]:
        raise DataError("event store", "no ingestion batches table (run `streamrec ingest` first)")
    rows = con.execute(
        'SELECT batch_id, source, finished_at, "read", stored, duplicates, quarantined FROM batches '
        "ORDER BY batch_id DESC LIMIT ?", [thresholds.batches]).fetchall()
    checks: list[BatchCheck] = []
    for batch_id, source, finished_at, read, stored, duplicates, quarantined in reversed(rows):
        reasons = dict(con.execute(
            "SELECT reason, count(*) FROM quarantine WHERE batch_id = ? GROUP BY reason ORDER BY 2 DESC, 1",
            [batch_id]).fetchall())
        summary = None
        if stored:
            bid = int(batch_id)
            con.execute(f"CREATE OR REPLACE TEMP VIEW monitor_batch AS SELECT * FROM events WHERE batch_id = {bid}")
            earlier = con.execute(f"SELECT count(*) FROM events WHERE batch_id < {bid}").fetchone()
            known = None
            if earlier and earlier[0]:
                con.execute("CREATE OR REPLACE TEMP VIEW monitor_known AS "
                            f"SELECT DISTINCT item_id FROM events WHERE batch_id < {bid}")
                known = "monitor_known"
            summary = batch_quality(con, "monitor_batch", known_items=known, late_after_h=thresholds.late_after_h)
        checks.append(BatchCheck(int(batch_id), str(source), finished_at, int(read or 0), int(stored or 0),
                                 int(duplicates or 0), int(quarantined or 0), reasons, summary))
    con.execute("DROP VIEW IF EXISTS monitor_batch; DROP VIEW IF EXISTS monitor_known")
    return checks


def quality_alerts(checks: list[BatchCheck], thresholds: QualityThresholds) -> list[Alert]:
    """The alerts the batches' numbers raise."""
    alerts: list[Alert] = []
    for c in checks:
        if c.rejection_rate > thresholds.max_rejection_rate:
            top = ", ".join(f"{reason} {n}" for reason, n in list(c.reasons.items())[:3])
            alerts.append(Alert("rejection_rate", c.label, c.rejection_rate, thresholds.max_rejection_rate,
                                f"{c.quarantined:,} of {c.read:,} rows quarantined ({top})"))
        if c.stored < thresholds.min_rows:
            alerts.append(Alert("volume", c.label, c.stored, thresholds.min_rows,
                                f"stored {c.stored:,} events, fewer than {thresholds.min_rows:,}"))
        others = [o.stored for o in checks if o is not c]
        if others and c.stored >= thresholds.min_rows:
            median = statistics.median(others)
            if median > 0 and not (median / thresholds.volume_ratio <= c.stored <= median * thresholds.volume_ratio):
                alerts.append(Alert("volume", c.label, c.stored / median, thresholds.volume_ratio,
                                    f"stored {c.stored:,} events against a median of {median:,.0f} in the other "
                                    f"checked batches (more than ×{thresholds.volume_ratio:g} apart)"))
        s = c.summary
        if s is None:
            continue
        for column, limit in thresholds.max_null_rate.items():
            rate = s.null_rate.get(column)
            if rate is not None and rate > limit:
                alerts.append(Alert("null_rate", f"{c.label} {column}", rate, limit,
                                    f"{rate:.1%} of stored events have no {column}"))
        if c.late_share > thresholds.max_late_share:
            alerts.append(Alert("late_events", c.label, c.late_share, thresholds.max_late_share,
                                f"{s.late_events:,} of {s.rows:,} events more than {thresholds.late_after_h:g} h "
                                "older than the batch's newest"))
        if s.new_title_share is not None and s.new_title_share > thresholds.max_new_title_share:
            alerts.append(Alert("new_titles", c.label, s.new_title_share, thresholds.max_new_title_share,
                                f"{s.new_title_events:,} of {s.rows:,} events on {s.new_titles:,} titles "
                                "never seen in earlier batches"))
    return alerts
