"""examples/quickstart.py runs end to end on a small world: events, ingest, train, `streamrec serve` in a
subprocess, and the client's calls (health, a list, a play that changes the next list, experiments); exit code 0,
every step printed, and the server stopped afterwards (its port is free again)."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_quickstart_example_ingests_trains_serves_and_queries_through_the_client(tmp_path):
    port = free_port()
    done = subprocess.run([sys.executable, str(EXAMPLE), "--workdir", str(tmp_path / "work"), "--users", "100",
                           "--titles", "150", "--days", "10", "--port", str(port)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for said in ("== 1. events", "$ streamrec ingest", "$ streamrec train --models popularity,ease",
                 "readyz: ready", "POST /v1/events: accepted 1", "left the list at once",
                 "is in experiment quickstart-diversity", "server stopped cleanly",
                 "quickstart: every step did what it said"):
        assert said in out, f"missing {said!r} in:\n{out[-3000:]}"
    assert (tmp_path / "work" / "data" / "events.duckdb").exists() and (tmp_path / "work" / "serve.log").exists()
    with socket.socket() as s:  # the server is gone: nothing listens on its port (TIME_WAIT left aside)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen()
