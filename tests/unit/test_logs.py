"""Service logs: JSON lines, the request id on every line logged while a request is served, user ids hashed, no
secrets (API keys, passwords, URL passwords) in any line, level by setting. The app tests scan what a real app
logged while it served requests."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from streamrec.errors import BackendError
from streamrec.logs import REDACTED, HashUserIds, configure_logging, get_logger, never_log, redacted
from streamrec.serving import build_state, create_app
from streamrec.settings import load_settings

from tests.helpers import served_world, most_active_users

KEY = "log-test-key-8c1f2e"
WRONG_KEY = "wrong-key-5d07aa"
REDIS_PASSWORD = "hunter2-redis-pw"
REDIS_URL = f"redis://default:{REDIS_PASSWORD}@redis.internal:6379/0"
SALT = "test-salt"


@pytest.fixture(autouse=True)
def _restore_logging():
    yield
    configure_logging()


def lines(text: str) -> list[dict]:
    out = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in out]


def mentions(text: str, value: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", text) is not None


# ---------------------------------------------------------------- the processors, one by one


def test_secret_keys_and_url_passwords_are_redacted_at_any_depth():
    event = {"event": "x", "api_key": "k1", "X-API-Key": "k2", "password": "p", "redis_token": "t",
             "nested": {"client_secret": "s", "urls": [REDIS_URL, "https://example.org/a?b=c"]},
             "error": f"cannot reach {REDIS_URL}: refused", "count": 3, "token_ttl_s": None}
    out = redacted(event)
    assert out["api_key"] == out["X-API-Key"] == out["password"] == out["redis_token"] == REDACTED
    assert out["nested"]["client_secret"] == REDACTED
    assert out["nested"]["urls"] == ["redis://default:***@redis.internal:6379/0", "https://example.org/a?b=c"]
    assert out["error"] == "cannot reach redis://default:***@redis.internal:6379/0: refused"
    assert out["count"] == 3 and out["token_ttl_s"] is None
    assert REDIS_PASSWORD not in json.dumps(out)


def test_a_secret_the_process_holds_is_masked_even_inside_free_text():
    never_log("held-secret-91ab", "ab")
    assert redacted({"detail": "sent held-secret-91ab twice: held-secret-91ab"}) == {"detail": "sent *** twice: ***"}
    assert redacted({"detail": "a b ab"}) == {"detail": "a b ab"}, "too short to mask"


def test_user_ids_are_hashed_stably_with_the_salt():
    hasher = HashUserIds(SALT)
    out = hasher(None, "info", {"event": "x", "user_id": "u42", "user": 7, "user_ids": ["u1", "u2"],
                                "path": "/v1/users/u42/recommendations?k=5", "users": 200})
    assert out["user_id"] == hasher.hashed("u42") != "u42" and re.fullmatch(r"u:[0-9a-f]{16}", out["user_id"])
    assert out["user"] == hasher.hashed(7) and out["user_ids"] == [hasher.hashed("u1"), hasher.hashed("u2")]
    assert out["path"] == f"/v1/users/{hasher.hashed('u42')}/recommendations?k=5"
    assert out["users"] == 200, "a count of users is not a user id"
    assert HashUserIds("other-salt").hashed("u42") != hasher.hashed("u42")


def test_the_salt_comes_from_the_environment_by_default(monkeypatch, capsys):
    monkeypatch.setenv("STREAMREC_LOG_SALT", "from-env")
    configure_logging("info", json_logs=True)
    get_logger("t").info("who", user_id="u42")
    assert lines(capsys.readouterr().err)[0]["user_id"] == HashUserIds("from-env").hashed("u42")


@pytest.mark.parametrize("json_logs", [True, False])
def test_level_by_setting_and_console_lines_are_scrubbed_too(json_logs, capsys):
    configure_logging("warning", json_logs=json_logs, user_salt=SALT)
    log = get_logger("t")
    log.info("quiet", user_id="u42")
    log.warning("loud", user_id="u42", password="pw-123", url=REDIS_URL)
    err = capsys.readouterr().err
    assert "quiet" not in err and "loud" in err
    assert not mentions(err, "u42") and "pw-123" not in err and REDIS_PASSWORD not in err
    if json_logs:
        (line,) = lines(err)
        assert line["level"] == "warning" and line["user_id"] == HashUserIds(SALT).hashed("u42")


def test_a_failure_trace_is_redacted(capsys):
    configure_logging("info", json_logs=True, user_salt=SALT)
    try:
        raise ConnectionError(f"Error connecting to {REDIS_URL}")
    except ConnectionError as exc:
        get_logger("t").error("store.down", exc_info=exc)
    (line,) = lines(capsys.readouterr().err)
    assert "ConnectionError" in line["exception"] and REDIS_PASSWORD not in line["exception"]


# ---------------------------------------------------------------- what a real app logs while it serves


@pytest.fixture(scope="module")
def world(tiny_world_store, tmp_path_factory):
    root = tmp_path_factory.mktemp("logs")
    served_world(tiny_world_store, root, {"v1": 5})
    users = most_active_users(root / "events.duckdb", 3)
    settings = load_settings(data_dir=root, serving={"clock": "data", "api_keys": [KEY], "model": str(root / "v1")})
    return {"settings": settings, "users": users}


def served(world, capsys) -> tuple[list[dict], str, set[str], str]:
    """Serve a round of requests (recommendations, events with no key, a wrong key and the right one, a backend
    failure, a crash, a handler that logs a user id and secrets); what was logged meanwhile, raw and parsed."""
    configure_logging("info", json_logs=True, user_salt=SALT)
    state = build_state(world["settings"])
    app = create_app(world["settings"], state)
    log = get_logger("test.route")

    @app.get("/test/log/{user_id}")
    def logs_secrets(user_id: str) -> dict:
        log.info("test.secrets", user_id=user_id, api_key=KEY, redis_url=REDIS_URL,
                 detail=f"connected to {REDIS_URL} with key {KEY}")
        return {}

    @app.get("/test/backend")
    def backend_down() -> dict:
        raise BackendError(f"online store at {REDIS_URL} is unreachable")

    @app.get("/test/crash")
    def crash() -> dict:
        raise RuntimeError(f"bug while talking to {REDIS_URL}")

    client = TestClient(app, raise_server_exceptions=False)
    capsys.readouterr()  # what was logged at start is not request-time
    user = world["users"][0]
    ids: set[str] = set()

    def call(method: str, url: str, **kw) -> None:
        r = client.request(method, url, **kw)
        ids.add(r.headers["x-request-id"])

    call("GET", f"/v1/users/{user}/recommendations", params={"k": 5})
    item = client.get(f"/v1/users/{user}/recommendations", params={"k": 1}).json()["items"][0]["item_id"]
    ts = (state.world.clock() - timedelta(seconds=5)).isoformat() + "Z"
    event = {"event_id": "log-e1", "user_id": user, "item_id": item, "type": "complete", "ts": ts, "fraction": 1}
    call("POST", "/v1/events", json={"events": [event]})
    call("POST", "/v1/events", json={"events": [event]}, headers={"X-API-Key": WRONG_KEY})
    call("POST", "/v1/events", json={"events": [event]}, headers={"X-API-Key": KEY})
    call("GET", f"/test/log/{user}", headers={"X-Request-ID": "given-id-1"})
    call("GET", "/test/backend")
    call("GET", "/test/crash")
    err = capsys.readouterr().err
    return lines(err), err, ids, user


def test_served_requests_log_json_lines_each_with_its_request_id(world, capsys):
    parsed, _raw, ids, _user = served(world, capsys)
    events = [line["event"] for line in parsed]
    assert {"http.refused", "test.secrets", "http.unavailable", "http.internal_error"} <= set(events), events
    assert events.count("http.refused") == 2, "no key and a wrong key: two refusals logged"
    for line in parsed:
        assert line["request_id"] in ids, line
        assert line["level"] in {"info", "warning", "error"} and line["timestamp"]
    assert next(line for line in parsed if line["event"] == "test.secrets")["request_id"] == "given-id-1"


def test_served_requests_log_no_user_id_and_no_secret(world, capsys):
    parsed, raw, _ids, user = served(world, capsys)
    assert parsed and not mentions(raw, user), "a raw user id was logged"
    secrets = next(line for line in parsed if line["event"] == "test.secrets")
    assert secrets["user_id"] == HashUserIds(SALT).hashed(user)
    for secret in (KEY, WRONG_KEY, REDIS_PASSWORD):
        assert secret not in raw, f"{secret} was logged"
    assert "redis://default:***@redis.internal:6379/0" in raw
    crash = next(line for line in parsed if line["event"] == "http.internal_error")
    assert "RuntimeError" in crash["exception"]


# ---------------------------------------------------------------- the settings' logging section, through the CLI


@pytest.mark.parametrize("in_file, env, expected", [("file-salt", "env-salt", "file-salt"),
                                                     (None, "env-salt", "env-salt")])
def test_the_cli_takes_level_and_salt_from_the_settings(tmp_path, monkeypatch, capsys, in_file, env, expected):
    from typer.testing import CliRunner

    from streamrec.cli.app import app

    monkeypatch.setenv("STREAMREC_LOG_SALT", env)
    config = tmp_path / "streamrec.toml"
    config.write_text('[logging]\nlevel = "warning"\njson = true\n'
                      + (f'user_salt = "{in_file}"\n' if in_file else ""))
    result = CliRunner().invoke(app, ["--config", str(config), "--data-dir", str(tmp_path), "monitor"])
    assert result.exception is not None  # nothing ingested there; the root callback configured logging first
    capsys.readouterr()
    log = get_logger("test")
    log.info("below.the.level", user_id="u42")
    log.warning("at.the.level", user_id="u42")
    [line] = lines(capsys.readouterr().err)
    assert line["event"] == "at.the.level" and line["user_id"] == HashUserIds(expected).hashed("u42")
