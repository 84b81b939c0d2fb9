"""API keys (constant-time comparison, never logged) and the request-body size limit."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Security
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from streamrec.logs import never_log

API_KEY_HEADER = APIKeyHeader(name="X-API-Key", auto_error=False, description="a key of serving.api_keys")


def key_checker(keys: list[SecretStr]):
    """A FastAPI dependency that lets a request through only with one of `keys` in X-API-Key."""
    encoded = [k.get_secret_value().encode() for k in keys if k.get_secret_value()]
    never_log(*(k.decode() for k in encoded))

    def require_api_key(key: str | None = Security(API_KEY_HEADER)) -> None:
        given = (key or "").encode()
        ok = False
        for expected in encoded:  # every key compared, in constant time each: no early exit to time
            ok |= hmac.compare_digest(given, expected)
        if not ok:
            raise HTTPException(401, "missing or invalid API key in header X-API-Key",
                                headers={"WWW-Authenticate": "X-API-Key"})

    return require_api_key


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` (declared or streamed) is answered 413, unread."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            return await _too_large(send, self.max_bytes)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(send, self.max_bytes)


class _TooLarge(Exception):
    pass


async def _too_large(send, limit: int) -> None:
    import json

    from streamrec.serving.errors import REQUEST_ID

    body = json.dumps({"request_id": REQUEST_ID.get(), "model_version": None, "variant": "control", "error": "too_large",
                       "message": f"request body over the limit of {limit} bytes (serving.max_body_bytes)",
                       "problems": [{"where": "body", "what": f"more than {limit} bytes"}]}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
