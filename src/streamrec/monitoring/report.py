"""The monitoring report: batch quality, feature and score drift, online quality (play rate per variant, concentration,
coverage) and the alerts they raise, as Rich tables."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from streamrec.monitoring.alerts import Alert, firing
from streamrec.monitoring.drift import FeatureDrift
from streamrec.monitoring.online import Concentration, PlayRate
from streamrec.monitoring.quality import BatchCheck

EXIT_QUIET, EXIT_ALERT = 0, 1  # and 2: an error (bad flags, a missing store), as every streamrec command


@dataclass
class MonitoringReport:
    """Everything one `streamrec monitor` run found."""

    batches: list[BatchCheck] = field(default_factory=list)
    drift: list[FeatureDrift] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    drift_checked: bool = False
    drift_note: str = "give --reference and --current feature snapshots, or train a model (it saves a reference)"
    reference: str | None = None  # what the drift was measured against (a training-time reference, or a path)
    scores: FeatureDrift | None = None  # served scores against the reference's
    scores_note: str = "no training-time reference scores"
    play_rates: list[PlayRate] = field(default_factory=list)
    concentration: list[Concentration] = field(default_factory=list)

    @property
    def firing(self) -> list[Alert]:
        return firing(self.alerts)

    @property
    def exit_code(self) -> int:
        """1 when an alert fires (warnings do not count), else 0 (2 is left to errors)."""
        return EXIT_ALERT if self.firing else EXIT_QUIET


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def batches_table(checks: list[BatchCheck]) -> Table:
    table = Table(title="data quality: latest ingestion batches", title_justify="left")
    for col in ("batch", "source", "finished", "read", "stored", "dup", "rejected", "reasons", "late",
                "new titles", "max null"):
        table.add_column(col, justify="right" if col in {"batch", "read", "stored", "dup"} else "left")
    for c in checks:
        s = c.summary
        max_null = "-"
        if s is not None and s.null_rate:
            column, rate = max(s.null_rate.items(), key=lambda kv: kv[1])
            max_null = f"{column} {rate:.0%}"
        table.add_row(str(c.batch_id), c.source, c.finished_at.isoformat(sep=" ", timespec="seconds")
                      if c.finished_at else "-", f"{c.read:,}", f"{c.stored:,}", f"{c.duplicates:,}",
                      _pct(c.rejection_rate), ", ".join(f"{r} {n}" for r, n in c.reasons.items()) or "-",
                      _pct(c.late_share) if s else "-", _pct(s.new_title_share) if s else "-", max_null)
    return table


def drift_table(drifts: list[FeatureDrift], alerts: list[Alert]) -> Table:
    status = {}
    for a in alerts:
        if a.kind in ("psi", "ks"):
            status[a.name] = "ALERT" if a.severity == "alert" or status.get(a.name) == "ALERT" else "warn"
    table = Table(title="drift: reference → current feature snapshot", title_justify="left")
    for col in ("feature", "n ref", "n cur", "PSI", "KS stat", "KS p", "status"):
        table.add_column(col, justify="left" if col in ("feature", "status") else "right")
    for d in drifts:
        table.add_row(d.name, f"{d.n_reference:,}", f"{d.n_current:,}",
                      "-" if d.psi is None else f"{d.psi:.3f}",
                      "-" if d.ks_statistic is None else f"{d.ks_statistic:.3f}",
                      "-" if d.ks_p is None else f"{d.ks_p:.2g}",
                      "skipped (few values)" if d.psi is None else status.get(d.name, "ok"))
    return table


def scores_table(d: FeatureDrift, alerts: list[Alert]) -> Table:
    table = drift_table([d], alerts)
    table.title = "score drift: training-time reference → served lists (top 10, the model's own answers)"
    table.columns[0].header = "scores"
    return table


def play_rate_table(rates: list[PlayRate]) -> Table:
    table = Table(title="online quality: play rate of served lists per variant (plays by request_id)",
                  title_justify="left")
    for col in ("day", "experiment", "variant", "responses", "played", "play rate", "plays", "impressions"):
        table.add_column(col, justify="left" if col in ("day", "experiment", "variant") else "right")
    for r in rates:
        table.add_row(str(r.day), r.experiment, r.variant, f"{r.responses:,}", f"{r.played:,}", _pct(r.play_rate),
                      f"{r.plays:,}", f"{r.impressions:,}")
    return table


def concentration_table(days: list[Concentration]) -> Table:
    table = Table(title="what was recommended per day: popularity concentration and catalog coverage",
                  title_justify="left")
    for col in ("day", "lists", "slots", "titles", "coverage", "Gini", "top 1% share"):
        table.add_column(col, justify="left" if col == "day" else "right")
    for c in days:
        table.add_row(str(c.day) + (f" {c.variant}" if c.variant else ""), f"{c.lists:,}", f"{c.slots:,}",
                      f"{c.titles:,}", _pct(c.coverage), f"{c.gini:.3f}", _pct(c.top_share))
    return table


def alerts_table(alerts: list[Alert]) -> Table:
    table = Table(title="alerts", title_justify="left")
    for col in ("severity", "kind", "name", "value", "threshold", "detail"):
        table.add_column(col)
    for a in sorted(alerts, key=lambda a: (a.severity != "alert", a.kind, a.name)):
        table.add_row(Text(a.severity.upper(), style="bold red" if a.severity == "alert" else "yellow"),
                      a.kind, a.name, f"{a.value:.4g}", f"{a.threshold:g}", a.detail)
    return table


def render(report: MonitoringReport) -> RenderableType:
    """The report as one Rich renderable: batches, drift (or why it was not checked), alerts, a verdict line."""
    parts: list[RenderableType] = [batches_table(report.batches)]
    if report.reference:
        parts.append(Text(f"reference: {report.reference}", style="dim"))
    parts.append(drift_table(report.drift, report.alerts) if report.drift_checked else
                 Text(f"drift: not checked ({report.drift_note})", style="dim"))
    parts.append(scores_table(report.scores, report.alerts) if report.scores is not None else
                 Text(f"score drift: not checked ({report.scores_note})", style="dim"))
    parts.append(play_rate_table(report.play_rates) if report.play_rates else
                 Text("play rate per variant: no exposures logged (serve an experiment)", style="dim"))
    parts.append(concentration_table(report.concentration) if report.concentration else
                 Text("concentration and coverage: no served lists logged (serving.served_sample)", style="dim"))
    if report.alerts:
        parts.append(alerts_table(report.alerts))
    n_fire, n_warn = len(report.firing), len(report.alerts) - len(report.firing)
    verdict = (Text(f"{n_fire} alert(s) firing, {n_warn} warning(s)", style="bold red") if n_fire else
               Text(f"no alerts ({n_warn} warning(s))", style="bold green"))
    parts.append(verdict)
    return Group(*parts)
