"""What one ingestion batch did: counts a person reads and a test can check exactly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class BatchReport:
    """Counts for one file: read = stored + duplicates + quarantined (always; checked by tests)."""

    source: str
    sha256: str
    batch_id: int | None = None
    skipped: bool = False  # the same file (by checksum) was ingested before: nothing done
    read: int = 0
    stored: int = 0
    duplicates: int = 0  # event_id already stored, or repeated inside the file (first one kept)
    quarantined: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step, for profiling
    quality: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class IngestSummary:
    """All batches of one `streamrec ingest` run."""

    batches: list[BatchReport] = field(default_factory=list)
    catalog: dict[str, int] = field(default_factory=dict)  # rows upserted per catalog table

    def total(self, name: str) -> int:
        return sum(getattr(b, name) for b in self.batches)

    def by_reason(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for batch in self.batches:
            for reason, n in batch.by_reason.items():
                out[reason] = out.get(reason, 0) + n
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))
