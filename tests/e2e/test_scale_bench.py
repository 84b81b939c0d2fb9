"""bench/scale.py at its smoke size: every stage of the embedded pipeline runs as its own process end to end and the
result file has the shape BENCHMARKS.md and docs/capacity.md read; the growth exponent is the log-log slope."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "scale.py"


def load_scale():
    spec = importlib.util.spec_from_file_location("bench_scale", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_world_runs_every_stage_and_writes_the_result(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--sizes", "tiny", "--out", str(out), "--work", str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["machine"]["cores"] >= 1 and report["growth"] == []
    (result,) = report["results"]
    assert result["size"] == "tiny" and result["events"] > 10_000 and result["users"] == 300
    scale = load_scale()
    assert set(result["stages"]) == {*scale.STAGES, "peer_ingest"}
    for name, stage in result["stages"].items():
        assert stage["seconds"] > 0 and stage["cpu_seconds"] > 0, name
        assert 50 < stage["peak_rss_mib"] < 4096, name
        assert stage["other_cores"] >= 0, name
    assert result["stages"]["ingest"]["stored"] == result["events"]
    assert result["stages"]["peer_ingest"]["rows"] == result["events"]
    assert result["stages"]["export"]["parquet_bytes_per_event"] > 1
    assert result["peak_rss_mib"] == max(s["peak_rss_mib"] for s in result["stages"].values())
    assert result["total_seconds"] >= sum(s["seconds"] for s in result["stages"].values()) - 0.1  # each rounded
    evaluate = result["stages"]["evaluate"]
    assert 0 < evaluate["ndcg@10"]["ranked pipeline"] <= 1
    serve = result["stages"]["serve"]
    assert serve["refresh_users"] > 0 and serve["histories"] > 0
    for path in ("request_path", "full_pipeline"):
        assert serve[path]["requests"] > 0 and 0 < serve[path]["p50_ms"] <= serve[path]["p99_ms"]
    assert not list(tmp_path.glob("bench-scale-*")), "the data folder is removed without --keep"


def test_growth_exponent_is_the_log_log_slope():
    scale = load_scale()

    def result(size: str, events: int, seconds: float, rss: float, p99: float) -> dict:
        stage = {"seconds": seconds, "cpu_seconds": seconds / 2, "peak_rss_mib": rss, "request_path": {"p99_ms": p99},
                 "full_pipeline": {"p99_ms": p99}}
        return {"size": size, "events": events, "total_seconds": seconds * len(scale.STAGES),
                "stages": {name: stage for name in scale.STAGES}}

    small = result("a", 1_000, 2.0, 100.0, 1.0)
    linear = result("b", 4_000, 8.0, 400.0, 1.0)
    quadratic = result("c", 8_000, 32.0, 400.0, 2.0)
    first, second = scale.growth([quadratic, small, linear])  # sorted by events
    assert (first["from"], first["to"], second["to"]) == ("a", "b", "c")
    assert all(v == 1.0 for v in first["seconds"].values()) and first["request_path_p99"] == 0.0
    assert all(v == 2.0 for v in second["seconds"].values()) and all(v == 2.0 for v in second["cpu_seconds"].values())
    assert second["peak_rss"]["train"] == 0.0
    assert math.isclose(second["full_pipeline_p99"], 1.0)
