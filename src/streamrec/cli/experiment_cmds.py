"""`streamrec experiment`: the configured A/B tests (list), a user's assignment (assign), and the analysis with its
decision and report (analyze), which can promote a shipped variant's model to champion (guardrails passing)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console

app = typer.Typer(help="A/B tests: list, assign, analyze (and promote the winner).", no_args_is_help=True)


def plan_of(experiment, **overrides):
    """The analysis plan of a configured experiment (its first variant is the control)."""
    from streamrec.experiments.stats import AnalysisPlan, Guardrail

    g = experiment.guardrails
    guardrails = overrides.pop("guardrails", None)
    guardrails = guardrails if guardrails is not None else tuple(x for x in (
        Guardrail("latency_p99_ms", max=g.latency_p99_ms) if g.latency_p99_ms is not None else None,
        Guardrail("error_rate", max=g.error_rate) if g.error_rate is not None else None,
        Guardrail("coverage", min=g.coverage_min) if g.coverage_min is not None else None) if x is not None)
    return AnalysisPlan(name=experiment.name, variants=experiment.allocation(), primary_metric=experiment.primary_metric,
                        guardrails=guardrails, control=experiment.variants[0].name, start=experiment.start,
                        end=experiment.stop, **overrides)


def _experiment(settings, name: str):
    from streamrec.errors import NotFound

    found = next((e for e in settings.experiments if e.name == name), None)
    if found is None:
        raise NotFound("experiment", name, f"configured: {', '.join(e.name for e in settings.experiments) or 'none'}")
    return found


@app.command("list")
def list_experiments(ctx: typer.Context) -> None:
    """The configured experiments: layer, traffic, eligibility, window, variants."""
    from rich.table import Table

    settings = settings_of(ctx)
    table = Table(title="experiments")
    for column in ("name", "layer", "traffic", "eligible", "window", "variants (weight: model, diversity)", "primary"):
        table.add_column(column)
    for e in settings.experiments:
        eligible = ", ".join(filter(None, [f"regions {e.regions}" if e.regions else "",
                                           f"new users ({e.new_user_days:g} d)" if e.new_users_only else ""])) or "all"
        variants = "; ".join(f"{v.name} {share:.0%}: {v.model or 'served model'}"
                             + (f", diversity {v.diversity:g}" if v.diversity is not None else "")
                             for v, share in zip(e.variants, e.allocation().values()))
        table.add_row(e.name, e.layer, f"{e.traffic:.0%}", eligible, f"{e.start or '…'} → {e.stop or '…'}", variants,
                      e.primary_metric)
    console.print(table if settings.experiments else "no experiments configured ([[experiments]] in streamrec.toml)")


@app.command()
def assign(ctx: typer.Context, user: str, region: Optional[str] = typer.Option(None, help="the user's region")) -> None:
    """Which experiments and variants a user is in now (assignment is a pure function of the user)."""
    from streamrec.experiments.assign import Assigner

    found = Assigner(settings_of(ctx).experiments).assign(user, datetime.now(UTC).replace(tzinfo=None), region)
    for a in found:
        console.print(f"{user}: experiment [bold]{a.experiment}[/] (layer {a.layer}) → variant [bold]{a.variant}[/]")
    if not found:
        console.print(f"{user}: in no experiment (variant 'default')")


@app.command()
def analyze(
    ctx: typer.Context,
    name: str,
    at: Optional[datetime] = typer.Option(None, help="analysis time, UTC (default: just after the log's newest "
                                                     "row: a simulated or finished experiment as of its end)"),
    report: Optional[Path] = typer.Option(None, help="HTML report (default: DATA_DIR/reports/experiment-NAME.html)"),
    guardrail_values: Optional[Path] = typer.Option(None, help="JSON {variant: {metric: value}} measured by "
                                                               "serving (latency_p99_ms, error_rate, coverage)"),
    promote: bool = typer.Option(False, help="on a ship decision, make the winner's model the registry champion "
                                             "(the old one stays challenger)"),
) -> None:
    """Per-variant metrics with intervals, tests (naive and sequential), SRM, CUPED, Holm, the decision and why."""
    from streamrec.experiments.analysis import analyze as run_analysis
    from streamrec.experiments.exposure import read_log
    from streamrec.experiments.report import write_report
    from streamrec.experiments.stats import Verdict

    settings = settings_of(ctx)
    experiment = _experiment(settings, name)
    log = read_log(settings.data_dir / "experiments" / "exposures", name)
    values = json.loads(guardrail_values.read_text()) if guardrail_values else None
    result = run_analysis(log, plan_of(experiment), at, values)  # at None: as of the log's end
    print_analysis(result)
    path = write_report(result, report or settings.data_dir / "reports" / f"experiment-{name}.html")
    console.print(f"report: {path}")
    decision = result.decision
    if promote and decision.verdict == Verdict.SHIP and decision.winner:
        winner = next(v for v in experiment.variants if v.name == decision.winner)
        if not winner.model:
            console.print(f"{winner.name} serves the champion already (no model of its own): nothing to promote")
            return
        from streamrec.registry import open_registry

        change = open_registry(settings).promote(winner.model)
        console.print(f"promoted {winner.model} (v{change.champion}) to champion; challenger for rollback: "
                      f"v{change.challenger}")


def print_analysis(result) -> None:
    from rich.table import Table

    table = Table(title=f"experiment {result.plan.name} as of {result.at:%Y-%m-%d %H:%M} "
                        f"({len(result.looks)} looks of {result.planned_looks} planned)")
    for column in ("variant", "metric", "difference", "95% interval", "p (naive)", "p (sequential)", "CUPED"):
        table.add_column(column)
    for c in result.comparisons:
        table.add_row(c.variant, c.metric, f"{c.diff:+.4g}", f"[{c.low:.4g}, {c.high:.4g}]", f"{c.p_holm:.3g}",
                      f"{c.p_sequential_holm:.3g}",
                      f"-{c.cuped_reduction:.0%} var" if c.cuped_reduction is not None else "")
    console.print(table)
    console.print("users: " + ", ".join(f"{v} {n:,}" for v, n in result.users.items())
                  + f"; sample ratio check p = {result.srm.p_value:.3g}")
    console.print(f"decision: [bold]{result.decision.verdict.value}[/]"
                  + (f" ({result.decision.winner})" if result.decision.winner else ""))
    for reason in result.decision.reasons:
        console.print(f"  - {reason}")


def demo_ab(settings, control_model: str, treatment_model: str, world: Path, days: int = 3,
            viewers: int | None = None, seed: int = 0) -> None:
    """`make demo`'s A/B: two models as the variants of one experiment, simulated viewers with their true taste using
    the service in this process for `days`, then the analysis and the decision. Guardrails (latency, errors) come
    from monitoring, which the demo leaves out of its decision."""
    from streamrec.data.dataset import Dataset
    from streamrec.data.synthetic.taste import GroundTruth
    from streamrec.experiments.analysis import analyze as run_analysis
    from streamrec.experiments.config import ExperimentConfig
    from streamrec.serving import build_state
    from streamrec.simulation import InProcessTransport, SimulationConfig, simulate
    from streamrec.cli.simulate_cmds import day_table
    from streamrec.cli.ui import progress_bar

    experiment = ExperimentConfig(name="demo-ab", primary_metric="play_rate", variants=[
        {"name": "control", "model": control_model}, {"name": "treatment", "model": treatment_model}])
    state = build_state(settings.model_copy(update={"experiments": [experiment], "serving": settings.serving.model_copy(
        update={"clock": "data", "model": control_model})}))
    transport = InProcessTransport(state)
    try:
        with progress_bar("simulating viewers") as bar:
            result = simulate(GroundTruth.load(world), Dataset.open(world).table("users"), transport,
                              SimulationConfig(days=days, users=viewers, seed=seed), on_progress=bar)
    finally:
        transport.close()
    console.print(day_table(result, "in process, both variants"))
    looks = len({t.date() for t in result.log.column("ts").to_pylist()})  # late sessions spill past midnight
    analysis = run_analysis(result.log, plan_of(experiment, guardrails=(), min_users_per_variant=100,
                                                planned_days=looks))  # as of the log's end
    print_analysis(analysis)
