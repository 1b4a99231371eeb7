"""How the HTTP API answers an error: every error is JSON with a ``message`` (and ``error``, a stable code; validation
errors list ``errors`` as ``{"field", "message"}``); no stack trace, secret or write key ever appears in a response
or a log line. The exception handlers of the app are installed here, in one place.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers import crypto
from workers.errors import ConfigError, SignalError
from workers.events import segment
from workers.integrations import manage, registry, sources
from workers.queue.producer import BrokerUnavailable

log = logging.getLogger(__name__)

BROKER_UNAVAILABLE = "the message broker is unavailable: nothing was queued; retry the request"


class ApiError(SignalError):
    """An answer of the HTTP API other than success: its status, its JSON body and headers."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers: dict[str, str] = {}


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return json_response(exc.status, exc.body, exc.headers)

    @app.exception_handler(ConfigError)
    async def config_error(_: Request, exc: ConfigError) -> JSONResponse:
        count = len(exc.errors)
        return json_response(
            422,
            {"error": "invalid", "message": f"{count} invalid field{'s' if count != 1 else ''}", "errors": exc.errors},
        )

    @app.exception_handler(manage.BucketCheckFailed)
    async def bucket_check(_: Request, exc: manage.BucketCheckFailed) -> JSONResponse:
        f = exc.failure
        return json_response(
            424, {"error": "bucket_check_failed", "code": f.code, "message": f.message, "hint": f.hint}
        )

    @app.exception_handler(manage.NotEmpty)
    async def not_empty(_: Request, exc: manage.NotEmpty) -> JSONResponse:
        return json_response(409, {"error": "not_empty", "message": exc.message, **exc.counts})

    @app.exception_handler(segment.MalformedRequest)
    async def malformed(_: Request, exc: segment.MalformedRequest) -> JSONResponse:
        return json_response(exc.status, {"success": False, "error": exc.reason, "message": exc.message})

    @app.exception_handler(registry.UnknownIntegration)
    async def unknown_integration(_: Request, exc: registry.UnknownIntegration) -> JSONResponse:
        return json_response(404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(sources.UnknownSource)
    async def unknown_source(_: Request, exc: sources.UnknownSource) -> JSONResponse:
        return json_response(404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(part) for part in e.get("loc", ()) if part not in ("query", "path", "body", "header")]
            field = ".".join(loc) or "request"
            errors.append({"field": field, "message": f"{field}: {e.get('msg', 'invalid value')}"})
        return json_response(422, {"error": "invalid", "message": "invalid request parameters", "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return json_response(
            exc.status_code,
            {"error": codes.get(exc.status_code, "http_error"), "message": detail},
            dict(exc.headers or {}),
        )

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        log.error("%s", exc)
        return json_response(503, {"error": "broker_unavailable", "message": BROKER_UNAVAILABLE}, {"Retry-After": "5"})

    @app.exception_handler(redis.RedisError)
    async def redis_error(_: Request, exc: redis.RedisError) -> JSONResponse:
        log.error("redis error: %s", type(exc).__name__)
        return json_response(503, {"error": "unavailable", "message": "Redis is unavailable; try again"})

    @app.exception_handler(crypto.SecretKeyMissing)
    @app.exception_handler(crypto.SecretKeyInvalid)
    @app.exception_handler(crypto.SecretKeyMismatch)
    async def secret_key(_: Request, exc: Exception) -> JSONResponse:
        return json_response(503, {"error": "secret_key", "message": str(exc)})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=False)
        return json_response(500, {"error": "internal", "message": "internal error; see the API's log"})
