"""Following a registry alias: every API process (each pod, each `--workers` process) looks up where the alias of its
served model points every `serving.follow_alias_s` seconds and swaps in a version it does not serve yet, exactly as
POST /v1/admin/reload does, so a champion promoted by training (or by hand) reaches every process by itself.

A model chosen by version number or folder is not followed. A failed load keeps the old model (the holder's problem,
shown by /readyz and /v1/models); that version is tried again after 2, 4, 8 ... intervals (at most
`MAX_RETRY_S` apart) and logged once. A registry that cannot be read is logged once when it goes and once when it is
back; the loop itself never stops on an error."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from streamrec.logs import get_logger
from streamrec.registry.versions import alias_of
from streamrec.serving.models import ReloadFailed
from streamrec.serving.state import ServingState

log = get_logger(__name__)
MAX_RETRY_S = 600.0


@dataclass(frozen=True)
class _Failed:
    """A version whose load failed: how many times in a row, when it is due again (monotonic seconds), and the
    problem the holder kept."""

    version: int
    attempts: int
    retry_at: float
    problem: str


class AliasFollower:
    """Checks the alias of the served model every `interval_s` seconds in a daemon thread (`start` / `stop`);
    `check` is one look, for tests and the thread alike."""

    def __init__(self, state: ServingState, interval_s: float, clock: Callable[[], float] = time.monotonic):
        self.state, self.interval_s, self.clock = state, interval_s, clock
        self._failed: _Failed | None = None
        self._unreadable = False  # the registry could not be read at the last look (logged when it changes)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def alias(self) -> str | None:
        """The alias followed: the served model's ref (a reload may have changed it), else the configured model's."""
        current = self.state.holder.current
        return alias_of(current.ref if current is not None else self.state.settings.serving.model)

    def check(self) -> str | None:
        """Look where the alias points and load that version when it is not the one served.

        Returns:
            The outcome counted in streamrec_model_follow_checks, or None when the served model follows no alias.
        """
        alias = self.alias()
        if alias is None:
            return None
        try:
            target = self.state.registry().resolve(alias)
        except Exception as exc:  # MLflow down, the alias not set yet, a broken store: the next look tries again
            if not self._unreadable:
                log.warning("model.follow_registry_error", alias=alias, error=type(exc).__name__,
                            detail=str(exc)[:300])
            self._unreadable = True
            return self._counted("registry_error")
        if self._unreadable:
            log.info("model.follow_registry_back", alias=alias, version=target)
            self._unreadable = False
        current = self.state.holder.current
        if current is not None and current.version == str(target):
            if self._failed is not None and self.state.holder.problem == self._failed.problem:
                self.state.holder.problem = None  # the alias is back on the served version (a rollback): not a problem
            self._failed = None
            return self._counted("current")
        failed = self._failed if self._failed is not None and self._failed.version == target else None
        if failed is not None and self.clock() < failed.retry_at:
            return self._counted("waiting")
        try:
            served = self.state.reload(alias, log_failure=False)
        except ReloadFailed as exc:
            attempts = failed.attempts + 1 if failed is not None else 1
            if failed is None:
                log.error("model.follow_failed", alias=alias, version=target,
                          kept=current.version if current is not None else None, problem=str(exc)[:500])
            delay = min(self.interval_s * 2 ** min(attempts, 30), max(self.interval_s, MAX_RETRY_S))
            self._failed = _Failed(target, attempts, self.clock() + delay, str(exc))
            return self._counted("failed")
        self._failed = None
        log.info("model.followed", alias=alias, version=served.version,
                 replaced=current.version if current is not None else None)
        return self._counted("reloaded")

    def _counted(self, outcome: str) -> str:
        self.state.metrics.follow_checks.labels(outcome).inc()
        return outcome

    def start(self) -> None:
        """Check every `interval_s` seconds in a daemon thread until `stop` (nothing when the interval is 0)."""
        if self.interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="alias-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)  # a load under way may outlast this; the daemon thread ends with the process
            self._thread = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        last_error = None
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
                last_error = None
            except Exception as exc:  # a bug here must not stop following for the life of the process
                error = f"{type(exc).__name__}: {str(exc)[:300]}"
                if error != last_error:  # once, not every tick
                    log.error("model.follow_check_failed", error=error, exc_info=exc)
                last_error = error
