"""Reports: the self-contained HTML page and the markdown table."""

from __future__ import annotations

import base64
import re

import pytest

from streamrec.evaluation import EvaluationResult, markdown_table, write_report
from streamrec.evaluation.bootstrap import Estimate
from streamrec.evaluation.runner import ModelResult


def _model(name: str, ndcg: float, ms: float) -> ModelResult:
    metrics = {}
    for k in (10, 20):
        metrics[f"ndcg@{k}"] = Estimate(ndcg, ndcg - 0.02, ndcg + 0.02, 100)
        metrics[f"recall@{k}"] = Estimate(ndcg / 2, ndcg / 2 - 0.01, ndcg / 2 + 0.01, 100)
        metrics[f"coverage@{k}"] = Estimate(0.3, None, None, 100)
    segments = {"new": {"ndcg@10": Estimate(ndcg - 0.1, ndcg - 0.2, ndcg, 20)},
                "heavy": {"ndcg@10": Estimate(ndcg + 0.1, ndcg, ndcg + 0.2, 80)}}
    latency = {"batch_ms_per_user_p50": ms / 10, "batch_ms_per_user_p99": ms / 5, "throughput_users_per_s": 1e4 / ms,
               "single_ms_p50": ms, "single_ms_p99": 2 * ms}
    return ModelResult(name, name, {"l2": 1.0}, 0.5, metrics, segments, latency, Estimate(0.0, 0.0, 0.0, 100))


@pytest.fixture
def result() -> EvaluationResult:
    split = {"name": "stratified_item", "params": {"ratio": 0.75, "seed": 42}, "dropped": {},
             "train": {"rows": 75, "users": 10, "items": 20}, "test": {"rows": 25, "users": 10, "items": 15}}
    settings = {"exclude_seen": True, "n_boot": 100, "level": 0.95, "seed": 0,
                "segments": {"names": ["new", "heavy"], "labels": ["new (0–9)", "heavy (≥10)"]}}
    out = EvaluationResult(split, 10, (10, 20), 100, 20, {"test_rows": 25}, settings)
    out.models = {"slow<good>": _model("slow<good>", 0.4, 30.0), "fast": _model("fast", 0.2, 0.1)}
    return out


def test_html_report_is_self_contained_with_charts_and_tables(result, tmp_path):
    path = write_report(result, tmp_path / "sub" / "report.html", title="Bench")
    page = path.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 2
    assert all(base64.b64decode(img).startswith(b"\x89PNG\r\n\x1a\n") for img in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "slow&lt;good&gt;" in page and "slow<good>" not in page  # names are escaped
    assert "0.4000 [0.3800, 0.4200]" in page  # mean with its interval
    assert "heavy (≥10)" in page and "stratified_item" in page
    assert page.index("slow&lt;good&gt;") < page.index("<td>fast</td>")  # best model first


def test_markdown_table_ranks_models_and_shows_intervals(result):
    text = markdown_table(result)
    lines = text.splitlines()
    assert lines[0].startswith("| model | ndcg@10 | recall@10 | coverage@10 |")
    assert len(lines) == 4
    assert lines[2].startswith("| slow<good> | 0.4000 [0.3800, 0.4200]")
    assert lines[3].startswith("| fast |")
    assert "| 0.3000 |" in lines[2]  # coverage: no interval
    assert "ndcg@20" in markdown_table(result, k=20).splitlines()[0]


def test_report_round_trips_through_json(result, tmp_path):
    result.to_json(tmp_path / "r.json")
    loaded = EvaluationResult.load(tmp_path / "r.json")
    assert markdown_table(loaded) == markdown_table(result)
    assert write_report(loaded, tmp_path / "r.html").stat().st_size > 1000


def test_several_results_share_one_page_side_by_side(result, tmp_path):
    other = EvaluationResult.from_dict(result.to_dict())
    other.models.pop("fast")
    page = write_report({"MovieLens": result, "Synthetic <temporal>": other}, tmp_path / "both.html").read_text()
    assert page.count("data:image/png;base64,") == 4
    summary = page[page.index("Side by side"):page.index('class="section"')]
    assert "MovieLens: ndcg@10" in summary and "Synthetic &lt;temporal&gt;: ndcg@10" in summary
    fast_row = summary[summary.index("<td>fast</td>"):].split("</tr>")[0]
    assert fast_row.endswith("<td></td>")  # absent from the second result
