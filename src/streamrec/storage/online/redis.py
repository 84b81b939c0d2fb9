"""The online store on Redis (redis-py, imported when this backend is opened): shared by every serving process and
realtime worker, and it survives their restarts.

Keys, all under the configured namespace NS:
  NS:feat:ENTITY          hash: "\\x00schema" → the feature names (JSON); each key → packed float64 as_of + float32
                          vector. The schema sits in the same hash, so a read is one HMGET that sees one schema and
                          its vectors together; a write with a new schema replaces the hash in the same Lua call.
  NS:hist:USER            sorted set scored by the event time (µs); member = 16 hex digits of a store-wide sequence
                          (ties keep arrival order) + the entry as JSON. Trimmed to history_length, optional TTL.
  NS:ranked:USER:KEY      string: the ranked pool as JSON, with a Redis TTL (SET PX).
  NS:seen:EVENT_ID        string, SET NX EX seen_ttl_s: the event was recorded (idempotence of `record`).
  NS:day:YYYY-MM-DD       hash: title → engagements recorded on that UTC day, expiring title_counts_ttl_s after its
                          last write.
  NS:hidden:USER          set of the user's hidden titles.
  NS:seq                  the sequence behind history members.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from streamrec.errors import BackendError, DataError
from streamrec.storage.online.base import FeatureRows, HistoryEntry, LiveEvent, RankedPool

if TYPE_CHECKING:
    from streamrec.settings import RedisOnlineStoreConfig

SCHEMA_FIELD = b"\x00schema"  # ids never hold control characters (ingest rejects them)
_EPOCH, _NAIVE_EPOCH, _MICRO = datetime(1970, 1, 1, tzinfo=UTC), datetime(1970, 1, 1), timedelta(microseconds=1)
_WRITE_CHUNK = 2_000  # feature vectors per Lua call (one atomic step); events per pipeline

# KEYS: the entity's hash. ARGV: schema field, schema JSON, then key, packed vector pairs.
_PUT_FEATURES = """
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
end
for i = 3, #ARGV, 400 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 399, #ARGV)))
end
return (#ARGV - 2) / 2
"""

# KEYS: history, sequence. ARGV: history_length, history_ttl_s (0: none), then score, entry JSON pairs.
_ADD_HISTORY = """
for i = 3, #ARGV, 2 do
  local known = false
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[i], ARGV[i])) do
    if string.sub(member, 17) == ARGV[i + 1] then known = true end
  end
  if not known then
    local n = redis.call('INCR', KEYS[2])
    redis.call('ZADD', KEYS[1], ARGV[i], string.format('%016x', n) .. ARGV[i + 1])
  end
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -(tonumber(ARGV[1]) + 1))
if tonumber(ARGV[2]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 1
"""

# One event, atomically and once. KEYS: seen marker, history, sequence, day hash.
# ARGV: seen_ttl_s, history_length, history_ttl_s (0: none), score, entry JSON, item_id, day hash TTL.
_RECORD = """
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local n = redis.call('INCR', KEYS[3])
redis.call('ZADD', KEYS[2], ARGV[4], string.format('%016x', n) .. ARGV[5])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -(tonumber(ARGV[2]) + 1))
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[2], ARGV[3]) end
redis.call('HINCRBY', KEYS[4], ARGV[6], 1)
redis.call('EXPIRE', KEYS[4], ARGV[7])
return 1
"""


def _sha(script: str) -> str:
    return hashlib.sha1(script.encode()).hexdigest()


def redacted_url(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _micros(ts: datetime) -> int:
    """Epoch microseconds (naive times are UTC), exact in a Redis score (below 2**53)."""
    aware = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts
    return (aware - _EPOCH) // _MICRO


def _entry_json(entry: HistoryEntry) -> str:
    return json.dumps([entry.item_id, entry.type, entry.fraction, _micros(entry.ts), entry.ts.tzinfo is None],
                      separators=(",", ":"), ensure_ascii=False)


def _utc_day(ts: datetime) -> date:
    return (ts if ts.tzinfo is None else ts.astimezone(UTC)).date()


class RedisOnlineStore:
    """The OnlineStore on Redis (see OnlineStore and this module's key layout). Thread-safe: redis-py's connection
    pool serves concurrent callers; several processes may share one namespace. Connects on the first call.

    Args:
        config: url, namespace, history length and TTLs, socket timeout.

    Raises (from every method):
        BackendError: Redis is unreachable or failed; names the URL (without password) and the operation.
    """

    def __init__(self, config: RedisOnlineStoreConfig):
        import redis  # the driver only when this backend is chosen

        self.config = config
        self.url = redacted_url(config.url)
        self.history_length = config.history_length
        self._errors: tuple[type[Exception], ...] = (redis.exceptions.RedisError,)
        self._no_script = redis.exceptions.NoScriptError
        self._client = redis.Redis.from_url(config.url, socket_timeout=config.socket_timeout_s,
                                            socket_connect_timeout=config.socket_timeout_s)
        self._scripts = {name: (script, _sha(script)) for name, script in
                         (("put_features", _PUT_FEATURES), ("add_history", _ADD_HISTORY), ("record", _RECORD))}
        ns = config.namespace
        self._feat, self._hist, self._ranked = f"{ns}:feat:", f"{ns}:hist:", f"{ns}:ranked:"
        self._seen, self._day, self._hidden, self._seq = f"{ns}:seen:", f"{ns}:day:", f"{ns}:hidden:", f"{ns}:seq"
        self._history_ttl = config.history_ttl_s or 0

    @contextmanager
    def _op(self, operation: str) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise BackendError(f"online store {self.url}: {operation} failed: {type(exc).__name__}: {exc}") from exc

    def _run_scripts(self, name: str, calls: Sequence[tuple[Sequence[str], Sequence[Any]]]) -> list[Any]:
        """EVALSHA of one registered script per call, pipelined; loads the script once where Redis lacks it (first
        use, or after a restart) and runs those calls again (each script is safe to repeat after NOSCRIPT: it did
        nothing)."""
        script, sha = self._scripts[name]
        results: list[Any] = [None] * len(calls)
        todo = list(range(len(calls)))
        for attempt in range(2):
            pipe = self._client.pipeline(transaction=False)
            for i in todo:
                keys, args = calls[i]
                pipe.evalsha(sha, len(keys), *keys, *args)
            out = pipe.execute(raise_on_error=False)
            missing = []
            for i, value in zip(todo, out, strict=True):
                if isinstance(value, self._no_script) and attempt == 0:
                    missing.append(i)
                elif isinstance(value, Exception):
                    raise value
                else:
                    results[i] = value
            if not missing:
                break
            self._client.script_load(script)
            todo = missing
        return results

    # features

    def put_features(self, entity: str, names: Sequence[str], keys: Sequence[str], values: np.ndarray,
                     as_of: datetime) -> int:
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (len(keys), len(names)):
            raise DataError("online features", f"{values.shape} values for {len(keys)} keys × {len(names)} names")
        rows = np.empty(len(keys), dtype=[("as_of", "<f8"), ("v", "<f4", (len(names),))])
        rows["as_of"] = (as_of.replace(tzinfo=UTC) if as_of.tzinfo is None else as_of).timestamp()  # naive = UTC
        rows["v"] = values
        packed, width = rows.tobytes(), rows.dtype.itemsize
        schema = json.dumps(list(names), separators=(",", ":"), ensure_ascii=False)
        calls = []
        for start in range(0, max(len(keys), 1), _WRITE_CHUNK):
            args: list[Any] = [SCHEMA_FIELD, schema]
            for i in range(start, min(start + _WRITE_CHUNK, len(keys))):
                args += (keys[i], packed[i * width:(i + 1) * width])
            calls.append(([self._feat + entity], args))
        with self._op(f"put_features({entity!r}, {len(keys)} keys)"):
            self._run_scripts("put_features", calls)
        return len(keys)

    def get_features(self, entity: str, keys: Sequence[str]) -> FeatureRows:
        with self._op(f"get_features({entity!r}, {len(keys)} keys)"):
            got = cast(list[bytes | None], self._client.hmget(self._feat + entity, [SCHEMA_FIELD, *keys]))
        if got[0] is None:
            return FeatureRows((), np.full((len(keys), 0), np.nan, np.float32), np.full(len(keys), np.nan))
        names = tuple(json.loads(got[0]))
        dtype = np.dtype([("as_of", "<f8"), ("v", "<f4", (len(names),))])
        values = np.full((len(keys), len(names)), np.nan, np.float32)
        as_of = np.full(len(keys), np.nan)
        found = [i for i, v in enumerate(got[1:]) if v is not None]
        if found:
            blob = b"".join(cast(bytes, got[i + 1]) for i in found)
            if len(blob) != len(found) * dtype.itemsize:
                raise BackendError(f"online store {self.url}: get_features({entity!r}): stored vectors do not match "
                                   f"the schema of {len(names)} features")
            rows = np.frombuffer(blob, dtype=dtype)
            values[found] = rows["v"]
            as_of[found] = rows["as_of"]
        return FeatureRows(names, values, as_of)

    # histories and live events

    def add_history(self, user: str, entries: Sequence[HistoryEntry]) -> None:
        if not entries:
            return
        args: list[Any] = [self.history_length, self._history_ttl]
        for entry in sorted(entries, key=lambda e: _micros(e.ts)):
            args += (_micros(entry.ts), _entry_json(entry))
        with self._op(f"add_history({user!r}, {len(entries)} entries)"):
            self._run_scripts("add_history", [([self._hist + user, self._seq], args)])

    def history(self, user: str) -> list[HistoryEntry]:
        with self._op(f"history({user!r})"):
            members = cast(list[bytes], self._client.zrange(self._hist + user, 0, -1))
        if not members:
            return []
        rows = json.loads(b"[" + b",".join([m[16:] for m in members]) + b"]")  # one parse for all the entries
        return [HistoryEntry(item_id, (_NAIVE_EPOCH if naive else _EPOCH) + _MICRO * micros, kind, fraction)
                for item_id, kind, fraction, micros, naive in rows]

    def record(self, events: Sequence[LiveEvent]) -> int:
        cfg = self.config
        new = 0
        for start in range(0, len(events), _WRITE_CHUNK):
            calls = []
            for event in events[start:start + _WRITE_CHUNK]:
                entry = event.entry
                calls.append(([self._seen + event.event_id, self._hist + event.user_id, self._seq,
                               self._day + _utc_day(entry.ts).isoformat()],
                              [cfg.seen_ttl_s, self.history_length, self._history_ttl, _micros(entry.ts),
                               _entry_json(entry), entry.item_id, cfg.title_counts_ttl_s]))
            with self._op(f"record({len(events)} events)"):
                new += sum(self._run_scripts("record", calls))
        return new

    def title_counts(self, days: Sequence[date]) -> Mapping[str, float]:
        unique = sorted(set(days))
        with self._op(f"title_counts({len(unique)} days)"):
            pipe = self._client.pipeline(transaction=False)
            for day in unique:
                pipe.hgetall(self._day + day.isoformat())
            per_day = pipe.execute()
        out: dict[str, float] = {}
        for counts in per_day:
            for item, n in counts.items():
                key = item.decode()
                out[key] = out.get(key, 0.0) + float(n)
        return out

    # hidden titles

    def hide(self, user: str, item_id: str) -> None:
        with self._op(f"hide({user!r})"):
            self._client.sadd(self._hidden + user, item_id)

    def hidden(self, user: str) -> frozenset[str]:
        with self._op(f"hidden({user!r})"):
            members = cast(set[bytes], self._client.smembers(self._hidden + user))
        return frozenset(m.decode() for m in members)

    # ranked pools

    def _ranked_key(self, user: str, key: str) -> str:
        if ":" in user or "%" in user:  # the user part cannot run into the pool key
            user = user.replace("%", "%25").replace(":", "%3A")
        return f"{self._ranked}{user}:{key}"

    def put_ranked(self, user: str, key: str, pool: RankedPool, ttl_s: float) -> None:
        name = self._ranked_key(user, key)
        ttl_ms = round(ttl_s * 1000)
        with self._op(f"put_ranked({user!r}, {key!r})"):
            if ttl_ms <= 0:  # kept for no time at all: as if it expired at once
                self._client.delete(name)
                return
            body = json.dumps([list(pool.items), list(pool.scores), list(pool.sources), pool.stamp, pool.as_of,
                               pool.fallback, list(pool.picks)], separators=(",", ":"), ensure_ascii=False)
            self._client.set(name, body, px=ttl_ms)

    def get_ranked(self, user: str, key: str) -> RankedPool | None:
        with self._op(f"get_ranked({user!r}, {key!r})"):
            body = self._client.get(self._ranked_key(user, key))
        if body is None:
            return None
        items, scores, sources, stamp, as_of, fallback, picks = json.loads(body)
        return RankedPool(tuple(items), tuple(scores), tuple(sources), stamp, as_of, fallback, tuple(picks))

    def close(self) -> None:
        self._client.close()

    # for tests and operations

    def keys(self) -> list[str]:
        """Every key of this store's namespace (SCAN; for tests and debugging, not the request path)."""
        with self._op("keys"):
            return sorted(k.decode() for k in self._client.scan_iter(match=f"{self.config.namespace}:*", count=1000))

