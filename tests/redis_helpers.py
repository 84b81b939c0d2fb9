"""A real redis-server for the tests: installed from Debian when missing, started on a free loopback port in a
temporary folder, stopped (or killed) and started again on the same port for fault tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

INSTALL = "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server"


def redis_server_binary() -> str:
    """The path of redis-server; installs Debian's package first when it is missing and we are root (as in CI).

    Raises:
        RuntimeError: missing and cannot be installed here (says the command to run).
    """
    found = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.access(p, os.X_OK)), None)
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise RuntimeError(f"redis-server is missing; install it (as root: {INSTALL}), or run `make test`")
    done = subprocess.run(["bash", "-c", INSTALL], check=False, capture_output=True, text=True, timeout=900)
    found = shutil.which("redis-server") or ("/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK)
                                             else None)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"installing redis-server failed ({done.returncode}): {done.stderr[-2000:]}")
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process on 127.0.0.1.

    Args:
        folder: its working folder (log, and the append-only file when `persist`).
        port: fixed port (default: a free one, chosen at the first start and kept for restarts).
        persist: append-only file, fsync on every write: data survive `stop()` / `kill()` and `start()`.
    """

    def __init__(self, folder: Path, port: int | None = None, persist: bool = False):
        self.folder, self.persist = Path(folder), persist
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.binary = redis_server_binary()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> RedisServer:
        """Start it (on the same port as before, if it ran) and wait until it answers PING."""
        if self.running:
            return self
        for attempt in range(5):  # a free port can be taken between choosing and binding it
            port = self.port or free_port()
            args = [self.binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                    "--save", "", "--daemonize", "no", "--protected-mode", "no",
                    "--logfile", str(self.folder / "redis.log")]
            args += ["--appendonly", "yes", "--appendfsync", "always"] if self.persist else ["--appendonly", "no"]
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL)
            if self._wait_ready(port, timeout_s):
                self.port = port
                return self
            self._reap()
            if self.port is not None and attempt >= 2:
                break
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:{self.port}; log:\n{self.log_tail()}")

    def _wait_ready(self, port: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.02)
        return False

    def stop(self, timeout_s: float = 20.0) -> None:
        """Shut it down cleanly (SIGTERM) and wait; the port is free again afterwards."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
        self._reap()

    def kill(self) -> None:
        """Crash it (SIGKILL): no shutdown work at all."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self._reap()

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def _reap(self) -> None:
        if self._proc is not None:
            try:
                self._proc.wait(20)
            finally:
                self._proc = None

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return (self.folder / "redis.log").read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
