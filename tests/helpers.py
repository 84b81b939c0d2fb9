"""Small builders of event files for tests (the synthetic world is for bigger ones)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

VALID_ROW = {"event_id": "e1", "user_id": "u1", "item_id": "t1", "type": "play", "ts": "2024-03-01T12:00:00Z"}


def event(event_id: str, **fields: Any) -> dict[str, Any]:
    row = dict(VALID_ROW, event_id=event_id)
    row.update(fields)
    return row


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str] | None = None) -> Path:
    columns = columns or sorted({k for r in rows for k in r}, key=lambda c: (c not in VALID_ROW, c))
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return path


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path
