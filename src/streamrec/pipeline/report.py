"""The ranked pipeline's report: one self-contained HTML page with what each stage adds (NDCG@10 and genre diversity
per stage), candidate recall per source, the ranker's feature importance, the filter's removals and one explained
list."""

from __future__ import annotations

from pathlib import Path

from streamrec.evaluation.html import CSS, escape, img, png
from streamrec.pipeline.stages import PipelineReport


def write_pipeline_report(report: PipelineReport, path: Path | str, title: str = "Ranked pipeline") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    best, best_value = report.best_single
    ranked = report.ndcg.get("ranked pipeline", float("nan"))
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>Ranked pipeline NDCG@10 <b>{ranked:.4f}</b>, {ranked / best_value - 1:+.1%} over the best single "
            f"source ({escape(best)}, {best_value:.4f}), on the temporal test period.</p>",
            "<h2>Stage by stage</h2>",
            _table(["stage", "NDCG@10", "genre diversity@10", "catalog coverage@10", "novelty@10"],
                   [(name, f"{v:.4f}", f"{report.diversity[name]:.3f}" if name in report.diversity else "–",
                     f"{report.coverage.get(name, float('nan')):.3f}", f"{report.novelty.get(name, float('nan')):.2f}")
                    for name, v in report.ndcg.items()]),
            img(_bars(report.ndcg, "NDCG@10 per stage")),
            "<h2>Candidate recall</h2><p>Share of the test positives inside each source's candidates and their "
            "union (after the filters): the ranker can only order what the candidates contain.</p>",
            _table(["source", "recall"], [(k, f"{v:.3f}") for k, v in report.recall.items()]),
            "<h2>Ranker feature importance</h2><p>Total LightGBM gain per feature (top 10).</p>",
            img(_bars(report.importance, "gain", horizontal=True)),
            "<h2>Counts</h2>", _table(["what", "count"], [(k.replace("_", " "), f"{v:,}")
                                                          for k, v in report.counts.items()])]
    if report.example:
        user, explanations = report.example
        body += [f"<h2>Why: test user {escape(user)}</h2>",
                 _table(["title", "why"], [(e.item_id, e.text()) for e in explanations])]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>{CSS}</style>"
            f"</head><body>{''.join(body)}</body></html>")
    path.write_text(page, encoding="utf-8")
    return path


def _table(header: list[str], rows: list[tuple]) -> str:
    head = "<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def _bars(values: dict[str, float], label: str, horizontal: bool = False) -> bytes:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    names, heights = list(values), list(values.values())
    fig = Figure(figsize=(7.0, 0.35 * len(names) + 1.5) if horizontal else (max(6.0, 1.1 * len(names) + 2), 4.0),
                 layout="constrained")
    ax = fig.add_subplot()
    if horizontal:
        ax.barh(names[::-1], heights[::-1])
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    else:
        ax.bar(names, heights)
        ax.set_ylabel(label)
        ax.tick_params(axis="x", labelrotation=20)
        ax.grid(axis="y", alpha=0.3)
    return png(fig)
