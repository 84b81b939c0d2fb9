"""`streamrec serve`: the HTTP API (streamrec.serving) under uvicorn, with the configured model (default: the
registry's champion), on 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import socket
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


def run_server(settings) -> None:
    """Build the app (stores read, model loaded), print where it listens, and serve until interrupted."""
    import uvicorn

    cfg = settings.serving
    base = f"http://{cfg.host}:{cfg.port}"
    if cfg.workers == 1:
        from streamrec.serving import create_app

        app = create_app(settings)
        user = next(iter(app.state.serving.world.profiles), "u000001")
        print_urls(base, user, app.state.serving.holder.current, app.state.serving.holder.problem)
        uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False)
        return
    # Several processes: each builds its own app from the same settings, passed through the environment.
    os.environ.update({"STREAMREC_DATA_DIR": str(settings.data_dir), "STREAMREC_PROFILE": settings.profile,
                       "STREAMREC_SERVING__MODEL": cfg.model, "STREAMREC_SERVING__CLOCK": cfg.clock})
    print_urls(base, "u000001", None, None)
    serve_workers(uvicorn.Config("streamrec.serving.app:app_from_environment", factory=True, host=cfg.host,
                                 port=cfg.port, workers=cfg.workers, log_level="warning", access_log=False))


def serve_workers(config) -> None:
    """uvicorn's several-worker run, with a listening socket that says it is TCP.

    uvicorn binds `socket.socket(family)`, whose proto is 0, and asyncio sets TCP_NODELAY only on connections of a
    socket whose proto is IPPROTO_TCP: without it each response (headers and body are two writes) waited for the
    client's delayed ACK, about 40 ms per request on a kept-alive connection. The same file descriptor reopened
    without a proto is detected as TCP (and a spawned worker's copy keeps that)."""
    from uvicorn.supervisors import Multiprocess

    bound = config.bind_socket()
    sock = socket.socket(fileno=bound.detach())
    sock.set_inheritable(True)
    try:
        Multiprocess(config, sockets=[sock]).run()
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()


def print_urls(base: str, user: str, model, problem: str | None) -> None:
    served = f"model version {model.version} ({model.kind})" if model else f"no model ({problem})"
    console.print(f"serving {served} on {base}")
    console.print(f"  docs:            {base}/docs")
    console.print(f"  recommendations: {base}/v1/users/{user}/recommendations?k=10&explain=true")
    console.print(f"  homepage:        {base}/v1/users/{user}/home")
    console.print(f"  health:          {base}/healthz  {base}/readyz  {base}/metrics")
    console.print(f"  try:  curl -s '{base}/v1/users/{user}/recommendations?k=5'")
    console.print("  (Ctrl-C stops)")
