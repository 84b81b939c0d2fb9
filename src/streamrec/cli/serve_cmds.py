"""`streamrec serve`: the HTTP API (streamrec.serving) under uvicorn, with the configured model (default: the
registry's champion), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Optional

import typer

from streamrec.cli.context import settings_of
from streamrec.cli.ui import console


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        ctx: typer.Context,
        host: Optional[str] = typer.Option(None, help="interface (default serving.host, 127.0.0.1)"),
        port: Optional[int] = typer.Option(None, min=1, max=65535, help="port (default serving.port, 8000)"),
        model: Optional[str] = typer.Option(None, help="registry alias or version, or a saved model folder "
                                                       "(default serving.model, champion)"),
        workers: Optional[int] = typer.Option(None, min=1, max=64, help="worker processes (default 1)"),
        clock: Optional[str] = typer.Option(None, help="'now' or 'data' (just after the newest stored event)"),
    ) -> None:
        """Serve recommendations over HTTP (OpenAPI docs at /docs)."""
        settings = settings_of(ctx)
        overrides = {k: v for k, v in {"host": host, "port": port, "model": model, "workers": workers,
                                       "clock": clock}.items() if v is not None}
        serving = settings.serving.model_validate({**settings.serving.model_dump(), **overrides})
        run_server(settings.model_copy(update={"serving": serving}))


def run_server(settings, state=None) -> None:
    """Build the app (stores read, model loaded; or over `state`, already built), print where it listens, and serve
    until interrupted."""
    import uvicorn

    cfg = settings.serving
    base = f"http://{cfg.host}:{cfg.port}"
    if cfg.workers == 1:
        from streamrec.serving import create_app
        from streamrec.serving.app import settle

        app = settle(create_app(settings, state))
        user = next(iter(app.state.serving.world.profiles), "u000001")
        print_urls(base, user, app.state.serving.holder.current, app.state.serving.holder.problem)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
        return
    # Several processes: each builds its own app from the same settings (file, profile, environment and options
    # already merged here), passed whole through the environment.
    from streamrec.serving.app import SETTINGS_VARIABLE
    from streamrec.settings import dump_settings

    os.environ[SETTINGS_VARIABLE] = dump_settings(settings)
    print_urls(base, "u000001", None, None)
    with metrics_folder():
        serve_workers(uvicorn.Config("streamrec.serving.app:app_from_environment", factory=True, host=cfg.host,
                                     port=cfg.port, log_level="warning", access_log=False), cfg.workers)


@contextlib.contextmanager
def metrics_folder() -> Iterator[Path]:
    """PROMETHEUS_MULTIPROC_DIR for the workers about to start (the caller's, emptied; else a new temporary folder,
    removed at the end): each worker counts into its files there and /metrics adds up every worker's."""
    from streamrec.serving.metrics import MULTIPROC_VARIABLE

    given = os.environ.get(MULTIPROC_VARIABLE)
    folder = Path(given) if given else Path(tempfile.mkdtemp(prefix="streamrec-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):  # values of an earlier run would be added to this one's
        stale.unlink()
    os.environ[MULTIPROC_VARIABLE] = str(folder)
    try:
        yield folder
    finally:
        if given is None:
            os.environ.pop(MULTIPROC_VARIABLE, None)
            shutil.rmtree(folder, ignore_errors=True)


def serve_workers(config, workers: int) -> None:
    """`workers` uvicorn processes, each with its own listening socket on the same port (SO_REUSEPORT), restarted
    when one dies; Ctrl-C (SIGINT to the process group) or SIGTERM stops them all.

    Why not uvicorn's own several-worker mode: its workers share one socket, and asyncio accepts every pending
    connection in one go, so the kept-alive connections a client (a proxy, a load generator) opens together mostly
    land in one worker while the other idles; with a socket each, the kernel spreads connections over the workers.
    And its socket's proto is 0, so asyncio did not set TCP_NODELAY: each response (headers and body are two
    writes) waited for the client's delayed ACK, ~40 ms per request on a kept-alive connection."""
    import multiprocessing
    import signal
    import time

    _listener(config.host, config.port).close()  # the address is free (else: the error now, not in every worker)
    spawn = multiprocessing.get_context("spawn")
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    procs = [(spawn.Process(target=_worker, args=(config,)), time.monotonic()) for _ in range(workers)]
    for proc, _ in procs:
        proc.start()
    try:
        while not stop:
            time.sleep(0.5)
            for i, (proc, started) in enumerate(procs):
                if proc.is_alive() or stop:
                    continue
                if time.monotonic() - started < 10:
                    console.print(f"a worker exited at start (code {proc.exitcode}): stopping")
                    return
                _forget_metrics_of(proc.pid)
                procs[i] = (spawn.Process(target=_worker, args=(config,)), time.monotonic())
                procs[i][0].start()
    finally:
        deadline = time.monotonic() + 5  # workers that got the same Ctrl-C are already finishing their requests
        for proc, _ in procs:
            proc.join(max(deadline - time.monotonic(), 0))
        for proc, _ in procs:
            if proc.is_alive():
                proc.terminate()  # SIGTERM: uvicorn finishes the requests in flight
            proc.join(30)
            if proc.is_alive():
                proc.kill()


def _forget_metrics_of(pid: int | None) -> None:
    """A dead worker's gauges no longer count (its counters and histograms still add up)."""
    from streamrec.serving.metrics import MULTIPROC_VARIABLE

    if pid is not None and os.environ.get(MULTIPROC_VARIABLE):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def _listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (proto IPPROTO_TCP, so asyncio sets TCP_NODELAY on its connections)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _worker(config) -> None:
    import uvicorn

    uvicorn.Server(config).run(sockets=[_listener(config.host, config.port)])


def print_urls(base: str, user: str, model, problem: str | None) -> None:
    served = f"model version {model.version} ({model.kind})" if model else f"no model ({problem})"
    console.print(f"serving {served} on {base}")
    console.print(f"  docs:            {base}/docs")
    console.print(f"  recommendations: {base}/v1/users/{user}/recommendations?k=10&explain=true")
    console.print(f"  homepage:        {base}/v1/users/{user}/home")
    console.print(f"  health:          {base}/healthz  {base}/readyz  {base}/metrics")
    console.print(f"  dashboard:       {base}/dashboard  (overview, models, experiments, data)")
    console.print(f"  try:  curl -s '{base}/v1/users/{user}/recommendations?k=5'")
    console.print("  (Ctrl-C stops)")
