"""streamrec end to end from Python, without a notebook: make (or take) events, ingest, train, serve, and use the
service through the typed client (streamrec.client).

    python examples/quickstart.py                       # a tiny synthetic world in a temporary folder
    python examples/quickstart.py --events my-data/     # your events: a data set folder or event files
    python examples/quickstart.py --workdir out --keep  # keep the data, models and reports in ./out

Ingest and training run as `streamrec` commands (the CLI is the stable interface of each stage); the service is
`streamrec serve` in a subprocess, and everything after that goes over HTTP through `streamrec.client.Client`:
health, a user's recommendations, a play event that changes the next list, and the experiments. Exit code 0 when
every step did what it said; 1 (with the reason) when one did not."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from streamrec.client import Client, Recommendations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=Path, help="events to ingest (default: generate a synthetic world)")
    parser.add_argument("--workdir", type=Path, help="where data, models and reports go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (a temporary one is removed)")
    parser.add_argument("--users", type=int, default=200, help="synthetic world: profiles")
    parser.add_argument("--titles", type=int, default=300, help="synthetic world: titles")
    parser.add_argument("--days", type=int, default=14, help="synthetic world: days of events")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--models", default="popularity,ease", help="models `streamrec train` compares (the best "
                                                                   "is registered and served)")
    parser.add_argument("--port", type=int, help="port of the server (default: a free one)")
    args = parser.parse_args(argv)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="streamrec-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run(args, work)
    except Failed as exc:
        print(f"quickstart FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.workdir is None and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept: {work}")
    print("quickstart: every step did what it said")
    return 0


class Failed(Exception):
    """A step did not do what it said."""


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def streamrec(work: Path, *args: str) -> None:
    """One `streamrec` command on the work folder's data; its table of what it did goes to our output."""
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "streamrec", "--data-dir", str(work / "data"), "--log-level",
                           "warning", *args], cwd=work, capture_output=True, text=True)
    command = f"streamrec {' '.join(args)}"
    if done.returncode != 0:
        raise Failed(f"{command} exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    print(f"$ {command}   ({time.monotonic() - began:.1f} s)")
    print("\n".join([line for line in done.stdout.splitlines() if line.strip()][-14:]))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def most_active_user(work: Path) -> str:
    """The user with the most interactions in the event store (read before the server opens it)."""
    from streamrec.settings import DuckDBEventStoreConfig
    from streamrec.storage.events.duckdb import DuckDBEventStore

    with DuckDBEventStore(DuckDBEventStoreConfig(), work / "data" / "events.duckdb", read_only=True) as store:
        row = store.con.execute("SELECT user_id FROM interactions GROUP BY 1 ORDER BY count(*) DESC, 1 "
                                "LIMIT 1").fetchone()
    if row is None:
        raise Failed("no interactions after preprocessing: too few events to train on")
    return str(row[0])


def show(recs: Recommendations) -> str:
    return ", ".join(f"{t.item_id} ({t.source}, {t.score:.3f})" if t.score is not None else t.item_id
                     for t in recs.items)


def run(args: argparse.Namespace, work: Path) -> None:
    step("1. events")
    events = args.events
    if events is None:
        events = work / "world"
        streamrec(work, "data", "generate", "--out", str(events), "--users", str(args.users), "--titles",
                  str(args.titles), "--days", str(args.days), "--seed", str(args.seed), "--overwrite")
    step("2. ingest (validated, deduplicated, invalid rows quarantined) and preprocess")
    streamrec(work, "ingest", str(events))
    streamrec(work, "preprocess")
    step("3. train: compare models, register the best as champion")
    streamrec(work, "train", "--models", args.models)
    user = most_active_user(work)

    step("4. serve: `streamrec serve` in a subprocess")
    port, key = args.port or free_port(), secrets.token_hex(16)
    env = {**os.environ, "STREAMREC_SERVING__API_KEYS": json.dumps([key])}  # admin calls and events need a key
    log = open(work / "serve.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "streamrec", "--data-dir", str(work / "data"), "--log-level",
                               "warning", "serve", "--port", str(port), "--clock", "data"],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        with Client(f"http://127.0.0.1:{port}", api_key=key, timeout=30) as api:
            use_the_service(api, user, server)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
    how = "cleanly" if server.returncode in (0, -signal.SIGTERM) else f"with exit code {server.returncode}"
    print(f"server stopped {how}; its log: {work / 'serve.log'}")


def use_the_service(api: Client, user: str, server: subprocess.Popen) -> None:
    began = time.monotonic()
    try:
        api.wait_until_healthy(timeout_s=60)
    except Exception as exc:
        raise Failed(f"the server did not come up (exit code {server.poll()}): {exc}") from exc
    ready = api.ready()
    print(f"healthz ok after {time.monotonic() - began:.1f} s; readyz: {ready.status}, model version "
          f"{ready.model_version} {ready.reasons or ''}")
    if ready.status != "ready":
        raise Failed(f"the server is {ready.status}: {ready.reasons}")

    step("5. recommendations through the client")
    before = api.recommendations(user, k=5)
    print(f"{user} ({before.region}), model {before.model_version}, request {before.request_id}:\n  {show(before)}")
    if not before.items or before.fallback is not None:
        raise Failed(f"expected a ranked list, got fallback={before.fallback} with {len(before.items)} titles")

    step("6. a play event, then the next list")
    top = before.items[0].item_id
    played = {"event_id": f"quickstart-{secrets.token_hex(8)}", "user_id": user, "item_id": top, "type": "play",
              "ts": datetime.now(UTC), "request_id": before.request_id}  # the request id ties the play to the list
    accepted = api.post_events([played])
    print(f"POST /v1/events: accepted {accepted.accepted}, duplicates {accepted.duplicates}, "
          f"rejected {[r.reason for r in accepted.rejected]}")
    after = api.recommendations(user, k=5)
    print(f"next list:\n  {show(after)}")
    if accepted.accepted != 1 or top in {t.item_id for t in after.items}:
        raise Failed(f"the title just played ({top}) should have left the list")
    print(f"{top} was played, so it left the list at once (the worker beside the API applied the event)")

    step("7. experiments")
    print(f"served now: {[e.name for e in api.experiments().experiments] or 'none'}")
    api.set_experiments([{"name": "quickstart-diversity", "variants": [{"name": "control"},
                                                                       {"name": "diverse", "diversity": 0.8}]}])
    listed = api.experiments().experiments
    print("after PUT /v1/admin/experiments: " + "; ".join(
        f"{e.name} (variants {', '.join(f'{v.name} {w:.0%}' for v, w in zip(e.variants, e.allocation().values()))})"
        for e in listed))
    assigned = api.recommendations(user, k=5)
    print(f"{user} is in experiment {assigned.experiment}, variant {assigned.variant}")
    if [e.name for e in listed] != ["quickstart-diversity"] or assigned.experiment != "quickstart-diversity":
        raise Failed("the experiment was not listed or not applied")
    models = api.models()
    served = f"{models.served.version} ({models.served.kind})" if models.served else f"none ({models.problem})"
    registered = [(v.version, v.model, v.aliases) for v in models.registry or []]
    print(f"served model: {served}; registry versions: {registered}")


if __name__ == "__main__":
    sys.exit(main())
