"""What a monitoring check raises: one Alert per threshold crossed (severity "alert" fails `streamrec monitor`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["alert", "warn"]


@dataclass(frozen=True)
class Alert:
    """One threshold crossed.

    kind: the check ("psi", "ks", "rejection_rate", "null_rate", "late_events", "new_titles", "volume").
    name: what was checked (a feature such as "title.plays_7d", or a batch such as "batch 3 (file.csv)").
    value: the measured number; threshold: the limit it crossed; detail: a human sentence.
    severity: "alert" makes `streamrec monitor` exit non-zero, "warn" is only reported.
    """

    kind: str
    name: str
    value: float
    threshold: float
    detail: str
    severity: Severity = "alert"


def firing(alerts: list[Alert]) -> list[Alert]:
    """The alerts of severity "alert" (warnings left out)."""
    return [a for a in alerts if a.severity == "alert"]
