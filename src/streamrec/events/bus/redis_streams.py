"""The event bus on Redis Streams: XADD with MAXLEN ~ behind a backpressure check, consumer groups (XREADGROUP, XACK),
take-over of idle entries (XAUTOCLAIM), and a dead-letter stream. The redis driver is imported here only.

Each entry holds one field `e`: the event as JSON (streamrec.events.bus.base.encode_event). A publish is one Lua
script, so the check "no group would hold more than maxlen unacknowledged entries" and the XADDs are atomic.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from streamrec.errors import BackendError, ConfigError, Unavailable
from streamrec.events.bus.base import (
    BaseConsumer,
    DeadLetter,
    Entry,
    Handler,
    call_subscribers,
    check_batch_size,
    encode_batch,
    entry_from_payload,
    full_error,
)
from streamrec.logs import get_logger

if TYPE_CHECKING:
    from streamrec.settings import RedisEventBusConfig

log = get_logger(__name__)

# KEYS[1]: the stream. ARGV[1]: maxlen. ARGV[2..]: one payload per entry.
# Adds the payloads unless a consumer group would then hold more than maxlen entries it has not acknowledged
# (pending + not yet delivered): then adds nothing and returns {0, group, pending, lag}. Else {1, ids}.
_PUBLISH = """
local maxlen = tonumber(ARGV[1])
local n = #ARGV - 1
if redis.call('EXISTS', KEYS[1]) == 1 then
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local info = {}
    for i = 1, #g, 2 do info[g[i]] = g[i + 1] end
    local lag = info['lag']
    if not lag then
      lag = #redis.call('XRANGE', KEYS[1], '(' .. info['last-delivered-id'], '+', 'COUNT', maxlen + 1)
    end
    if info['pending'] + lag + n > maxlen then
      return {0, info['name'], info['pending'], lag}
    end
  end
end
local ids = {}
for i = 2, #ARGV do
  ids[i - 1] = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'e', ARGV[i])
end
return {1, ids}
"""


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class RedisEventBus:
    """Event bus on one Redis stream (`config.stream`) and its dead-letter stream.

    Args:
        config: URL, stream names, bound and delivery settings.

    Raises:
        ConfigError: the redis package is not installed (`pip install 'streamrec[redis]'`).
    """

    def __init__(self, config: RedisEventBusConfig) -> None:
        try:
            import redis
        except ImportError as exc:
            raise ConfigError("event_bus.type = 'redis' needs the redis package: pip install 'streamrec[redis]'") \
                from exc
        self.config = config
        self._redis_errors: tuple[type[Exception], ...] = (redis.RedisError,)
        # the server cannot be reached (refused, reset, timed out, still loading its data after a restart)
        self._unreachable: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError)
        self.client = redis.Redis.from_url(config.url, socket_timeout=config.socket_timeout_s,
                                           socket_connect_timeout=config.socket_timeout_s)
        self._publish = self.client.register_script(_PUBLISH)
        self._handlers: list[Handler] = []
        self.where = f"{redact(config.url)} stream '{config.stream}'"

    @contextmanager
    def errors(self, doing: str) -> Iterator[None]:
        """Redis failures as BackendError naming the server (no password), the stream and the operation; Unavailable
        when the server cannot be reached."""
        try:
            yield
        except self._redis_errors as exc:
            kind = Unavailable if isinstance(exc, self._unreachable) else BackendError
            raise kind(f"event bus {self.where}: {doing}: {type(exc).__name__}: {exc}") from exc

    # --- producers -------------------------------------------------------------------------------------------------
    def publish(self, events: Sequence[Mapping[str, Any]]) -> int:
        n = len(events)
        if not n:
            return 0
        maxlen = self.config.maxlen
        check_batch_size(n, maxlen)
        payloads = encode_batch(events)
        start = time.monotonic()
        pause = 0.001
        while True:
            with self.errors("publish"):
                reply = self._publish(keys=[self.config.stream], args=[maxlen, *payloads])
            if reply[0] == 1:
                break
            waited = time.monotonic() - start
            if waited >= self.config.publish_timeout_s:
                raise full_error(self.where, _text(reply[1]), int(reply[2]), int(reply[3]), maxlen, waited)
            time.sleep(min(pause, self.config.publish_timeout_s - waited))
            pause = min(pause * 2, 0.05)
        call_subscribers(list(self._handlers), events)
        return n

    def subscribe(self, handler: Handler) -> None:
        self._handlers.append(handler)

    # --- consumers -------------------------------------------------------------------------------------------------
    def consumer(self, name: str, handler: Handler, *, group: str | None = None, count: int = 100) -> RedisConsumer:
        consumer = RedisConsumer(self, group or self.config.group, name, handler, count)
        consumer.ensure_group()
        return consumer

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        with self.errors("read dead letters"):
            rows = self.client.xrange(self.config.dead_stream, count=limit)
        out = []
        for _, f in rows or []:
            get = {_text(k): _text(v) for k, v in (f or {}).items()}
            out.append(DeadLetter(get.get("entry_id", ""), get.get("reason", "undecodable"),  # type: ignore[arg-type]
                                  get.get("detail", ""), get.get("group", ""), get.get("consumer", ""),
                                  int(get.get("deliveries", 0)), get.get("payload", "")))
        return out

    def backlog(self, group: str | None = None) -> int:
        group = group or self.config.group
        with self.errors("read the consumer groups"):
            if not self.client.exists(self.config.stream):
                return 0
            for info in self.client.xinfo_groups(self.config.stream):
                if _text(info.get("name")) != group:
                    continue
                lag = info.get("lag")
                if lag is None:  # Redis before 7, or a lag it cannot tell after trimming: count what follows
                    lag = len(self.client.xrange(self.config.stream, "(" + _text(info["last-delivered-id"]), "+",
                                                 count=self.config.maxlen + 1))
                return int(info.get("pending") or 0) + int(lag)
        return 0

    def close(self) -> None:
        self._handlers.clear()
        self.client.close()


class RedisConsumer(BaseConsumer):
    """A member of a consumer group on the bus's stream."""

    def __init__(self, bus: RedisEventBus, group: str, name: str, handler: Handler, count: int):
        config = bus.config
        super().__init__(group, name, handler, count, config.claim_idle_ms, config.max_deliveries)
        self._bus, self._r, self._stream = bus, bus.client, config.stream
        self._max_block_ms = max(1, int(config.socket_timeout_s * 500))  # a blocked read must not hit the timeout
        self._cursor = "0-0"  # where the next XAUTOCLAIM scan of the pending entries starts

    def ensure_group(self) -> None:
        """Create the group (and the stream) unless it exists; a new group starts at the oldest entry held."""
        import redis

        with self._bus.errors(f"create consumer group '{self.group}'"):
            try:
                self._r.xgroup_create(self._stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    @contextmanager
    def _group_call(self, doing: str) -> Iterator[None]:
        import redis

        try:
            with self._bus.errors(doing):
                yield
        except BackendError as exc:
            # the server lost the group (restarted without persistence, stream deleted): recreate it for the next try
            if isinstance(exc.__cause__, redis.ResponseError) and "NOGROUP" in str(exc.__cause__):
                self.ensure_group()
            raise

    def _entries(self, rows: Sequence[Any], deliveries: Mapping[str, int] | None) -> list[Entry]:
        out = []
        for raw_id, fields in rows:
            entry_id = _text(raw_id)
            n = deliveries.get(entry_id, 1) if deliveries is not None else 1
            payload = fields.get(b"e") if fields else None
            if payload is None:
                names = ", ".join(sorted(_text(k) for k in (fields or {}))) or "none"
                out.append(Entry(entry_id, n, None, _fields_text(fields), f"no 'e' field (fields: {names})"))
                continue
            out.append(entry_from_payload(entry_id, n, payload))
        return out

    def _claim(self, count: int) -> tuple[list[Entry], list[str], bool]:
        with self._group_call("take over idle entries (XAUTOCLAIM)"):
            reply = self._r.xautoclaim(self._stream, self.group, self.name, self.claim_idle_ms,
                                       start_id=self._cursor, count=count)
        self._cursor = _text(reply[0])
        more = self._cursor != "0-0"  # XAUTOCLAIM scans at most 10 x count pending entries per call
        rows = [row for row in reply[1] if row and row[0] is not None]
        lost = [_text(i) for i in reply[2]] if len(reply) > 2 else []
        if not rows:
            return [], lost, more
        ids = [_text(r[0]) for r in rows]
        with self._group_call("read delivery counts (XPENDING)"):
            pipe = self._r.pipeline(transaction=False)
            for i in ids:  # one entry each: the count is exact whatever else this consumer holds
                pipe.xpending_range(self._stream, self.group, min=i, max=i, count=1)
            counts = {_text(p["message_id"]): int(p["times_delivered"]) for reply_ in pipe.execute() for p in reply_}
        return self._entries(rows, counts), lost, more

    def _read(self, count: int, block_ms: int) -> list[Entry]:
        block = min(block_ms, self._max_block_ms) or None  # 0 would block for ever
        with self._group_call("read new entries (XREADGROUP)"):
            reply = self._r.xreadgroup(self.group, self.name, {self._stream: ">"}, count=count, block=block)
        if not reply:
            return []
        rows = reply[self._stream.encode()] if isinstance(reply, dict) else reply[0][1]
        if isinstance(rows, list) and rows and isinstance(rows[0], list) and len(rows[0]) == 1:
            rows = rows[0]  # RESP3 wraps the entries once more
        return self._entries(rows, None)

    def _ack(self, ids: list[str]) -> None:
        with self._bus.errors("acknowledge (XACK)"):
            self._r.xack(self._stream, self.group, *ids)

    def _bury(self, letters: list[DeadLetter]) -> None:
        with self._bus.errors("dead-letter (XADD + XACK)"):
            pipe = self._r.pipeline(transaction=True)
            for d in letters:
                pipe.xadd(self._bus.config.dead_stream, {
                    "entry_id": d.entry_id, "reason": d.reason, "detail": d.detail, "group": d.group,
                    "consumer": d.consumer, "deliveries": d.deliveries, "payload": d.payload})
            pipe.xack(self._stream, self.group, *[d.entry_id for d in letters])
            pipe.execute()


def _fields_text(fields: Mapping[bytes, bytes] | None) -> str:
    return " ".join(f"{_text(k)}={_text(v)}" for k, v in (fields or {}).items())
