"""`streamrec serve --workers 2` as a real process tree: both workers start and answer on one port, one /metrics
scrape counts the requests of every worker (prometheus_client's multi-process mode), and SIGTERM stops them all (no
orphans, exit code 0)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

LIST = "/v1/users/{user_id}/recommendations"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid: int) -> set[int]:
    out = set()
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            out.add(int(status.parent.name))
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return "(gone)"


def get(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, json.loads(response.read())


def list_requests(base: str) -> dict[str, float]:
    """Requests to the list route by status, as one scrape of /metrics says."""
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {s.labels["status"]: s.value for f in text_string_to_metric_families(text) for s in f.samples
            if s.name == "streamrec_http_requests_total" and s.labels["route"] == LIST}


def test_two_workers_answer_on_one_port_and_stop_on_sigterm(tiny_world_store, tmp_path):
    shutil.copy(tiny_world_store, tmp_path / "events.duckdb")
    port = free_port()
    config = tmp_path / "elsewhere.toml"  # not ./streamrec.toml: the workers see it only if serve passes it on
    config.write_text("[serving]\nmax_k = 7\n")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_1.db").write_bytes(b"left by an earlier run")  # emptied before the workers start
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamrec", "--config", str(config), "--data-dir", str(tmp_path), "serve",
         "--workers", "2", "--port", str(port), "--clock", "data", "--model", str(tmp_path / "no-model-yet")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, body = get(f"{base}/healthz")
                break
            except OSError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.5)
        assert status == 200
        workers = children(proc.pid)
        assert len(workers) >= 2, f"expected two worker processes, found {workers}"
        for _ in range(20):  # without a model every known user gets trending, from whichever worker answers
            status, body = get(f"{base}/v1/users/u000001/recommendations?k=5")
            assert status == 200 and body["fallback"] in ("trending", "cold_start") and body["items"]
        for _ in range(10):  # every worker has the settings file's limit
            try:
                get(f"{base}/v1/users/u000001/recommendations?k=8")
                raise AssertionError("k=8 was accepted over the file's max_k = 7")
            except urllib.error.HTTPError as refused:
                assert refused.code == 422
        for _ in range(4):  # every scrape, whichever worker answers it, counts the requests of both
            assert list_requests(base) == {"200": 20, "422": 10}
        pids = {int(f.stem.rsplit("_", 1)[1]) for f in metrics_dir.glob("*.db")}
        assert len(pids & workers) == 2, (pids, workers)  # both workers answered and counted
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    deadline = time.monotonic() + 15
    while (alive := {pid: cmdline(pid) for pid in workers if Path(f"/proc/{pid}").exists()}) and \
            time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, f"outlived the server: {alive}"
