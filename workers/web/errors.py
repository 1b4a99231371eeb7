"""How the HTTP API answers an error: every error is JSON ``{"error": <a stable code>, "message": <what to do>}``,
validation errors (422) add ``errors`` as ``[{"field", "message"}]``, and some add facts (``code``/``hint``,
counts); an answer of the collection routes also says ``"success": false``, as their 200 says true. No stack trace,
secret or write key ever appears in a response or a log line. The exception handlers of the app are installed here,
in one place.
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
# Set in the scope of a request of the collection routes (``workers.web.collection.Endpoint``): its errors say
# "success": false.
COLLECTION_SCOPE_KEY = "signal.collection"


class ApiError(SignalError):
    """An answer of the HTTP API other than success: its status, its JSON body and headers."""

    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers: dict[str, str] = {}


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def error_response(
    request: Request, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> JSONResponse:
    """An error answer: ``body`` as it is, with ``"success": false`` first on the collection routes."""
    if request.scope.get(COLLECTION_SCOPE_KEY):
        body = {"success": False, **body}
    return json_response(status, body, headers)


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.body, exc.headers)

    @app.exception_handler(ConfigError)
    async def config_error(request: Request, exc: ConfigError) -> JSONResponse:
        count = len(exc.errors)
        message = f"{count} invalid field{'s' if count != 1 else ''}"
        return error_response(request, 422, {"error": "invalid", "message": message, "errors": exc.errors})

    @app.exception_handler(manage.BucketCheckFailed)
    async def bucket_check(request: Request, exc: manage.BucketCheckFailed) -> JSONResponse:
        f = exc.failure
        body = {"error": "bucket_check_failed", "code": f.code, "message": f.message, "hint": f.hint}
        return error_response(request, 424, body)

    @app.exception_handler(manage.NotEmpty)
    async def not_empty(request: Request, exc: manage.NotEmpty) -> JSONResponse:
        return error_response(request, 409, {"error": "not_empty", "message": exc.message, **exc.counts})

    @app.exception_handler(segment.MalformedRequest)
    async def malformed(request: Request, exc: segment.MalformedRequest) -> JSONResponse:
        return error_response(request, exc.status, {"error": exc.reason, "message": exc.message})

    @app.exception_handler(registry.UnknownIntegration)
    async def unknown_integration(request: Request, exc: registry.UnknownIntegration) -> JSONResponse:
        return error_response(request, 404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(sources.UnknownSource)
    async def unknown_source(request: Request, exc: sources.UnknownSource) -> JSONResponse:
        return error_response(request, 404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(part) for part in e.get("loc", ()) if part not in ("query", "path", "body", "header")]
            field = ".".join(loc) or "request"
            errors.append({"field": field, "message": f"{field}: {e.get('msg', 'invalid value')}"})
        body = {"error": "invalid", "message": "invalid request parameters", "errors": errors}
        return error_response(request, 422, body)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        body = {"error": codes.get(exc.status_code, "http_error"), "message": detail}
        return error_response(request, exc.status_code, body, dict(exc.headers or {}))

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(request: Request, exc: BrokerUnavailable) -> JSONResponse:
        log.error("%s", exc)
        body = {"error": "broker_unavailable", "message": BROKER_UNAVAILABLE}
        return error_response(request, 503, body, {"Retry-After": "5"})

    @app.exception_handler(redis.RedisError)
    async def redis_error(request: Request, exc: redis.RedisError) -> JSONResponse:
        log.error("redis error: %s", type(exc).__name__)
        return error_response(request, 503, {"error": "unavailable", "message": "Redis is unavailable; try again"})

    @app.exception_handler(crypto.SecretKeyMissing)
    @app.exception_handler(crypto.SecretKeyInvalid)
    @app.exception_handler(crypto.SecretKeyMismatch)
    async def secret_key(request: Request, exc: Exception) -> JSONResponse:
        return error_response(request, 503, {"error": "secret_key", "message": str(exc)})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=False)
        return error_response(request, 500, {"error": "internal", "message": "internal error; see the API's log"})
