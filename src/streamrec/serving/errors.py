"""The only place that maps errors to HTTP: every error is a JSON body that says what was wrong and where; bad input
is a 4xx, never a 5xx; no stack trace ever leaves the server (it goes to the log, under the request id)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from streamrec.errors import BackendError, ConfigError, NotFound, StreamrecError, ValidationError
from streamrec.logs import REQUEST_ID, get_logger  # the request id lives in logs: every log line carries it
from streamrec.serving.schemas import VARIANT

log = get_logger(__name__)

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          406: "not_acceptable", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          422: "invalid_request"}


def error_response(request: Request, status: int, error: str, message: str,
                   problems: list[dict[str, str]] | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    state = getattr(request.app.state, "serving", None)
    current = state.holder.current if state is not None else None
    body = {"request_id": REQUEST_ID.get(), "model_version": current.version if current else None,
            "variant": VARIANT, "error": error, "message": message, "problems": problems or []}
    return JSONResponse(body, status_code=status, headers=headers)


def _where(loc) -> str:
    return ".".join(str(part) for part in loc) or "request"


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": _where(e.get("loc", ())), "what": str(e.get("msg", "invalid"))} for e in exc.errors()]
        summary = "; ".join(f"{p['where']}: {p['what']}" for p in problems[:5])
        return error_response(request, 422, "invalid_request", summary or "invalid request", problems)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        where = {401: "header.x-api-key", 404: "path", 405: "method", 413: "body"}.get(exc.status_code, "request")
        if exc.status_code in (401, 403):  # refused callers are worth a line (never the key they sent)
            log.warning("http.refused", status=exc.status_code, method=request.method, path=request.url.path)
        return error_response(request, exc.status_code, _CODES.get(exc.status_code, "error"), detail,
                              [{"where": where, "what": detail}], getattr(exc, "headers", None))

    @app.exception_handler(NotFound)
    async def _not_found(request: Request, exc: NotFound) -> JSONResponse:
        return error_response(request, 404, "not_found", str(exc), [{"where": exc.kind, "what": str(exc)}])

    @app.exception_handler(ValidationError)
    async def _invalid(request: Request, exc: ValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", str(exc), [{"where": exc.field, "what": exc.reason}])

    @app.exception_handler(ConfigError)
    async def _config(request: Request, exc: ConfigError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", str(exc), [{"where": "body", "what": str(exc)}])

    @app.exception_handler(BackendError)
    async def _backend(request: Request, exc: BackendError) -> JSONResponse:
        # a backend that is down or full (the event bus's backpressure): the client may retry; nothing was accepted
        log.warning("http.unavailable", path=request.url.path, error=str(exc)[:300])
        return error_response(request, 503, "unavailable", str(exc), [{"where": "backend", "what": str(exc)}],
                              {"Retry-After": "1"})

    @app.exception_handler(StreamrecError)
    async def _domain(request: Request, exc: StreamrecError) -> JSONResponse:
        return error_response(request, 422, "refused", str(exc), [{"where": "request", "what": str(exc)}])


def internal_error_body(model_version: str | None) -> dict:
    """The body of a 500: no detail, no trace (those go to the log under the request id)."""
    return {"request_id": REQUEST_ID.get(), "model_version": model_version, "variant": VARIANT, "error": "internal",
            "message": "internal error; the server log has it under this request_id", "problems": []}
