"""What every face of the HTTP API shares: the process state, the admin check, errors as JSON, reading bodies.

Every error is JSON with a ``message`` (and ``error``, a stable code; validation errors list ``errors`` as
``{"field", "message"}``); no stack trace, secret or write key ever appears in a response or a log line. Request bodies
are read with a size limit before any parsing; gzip bodies are decompressed up to the same limit.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers import crypto
from workers.events import segment
from workers.integrations import manage, registry, sources
from workers.pipeline import ingest
from workers.store import db, ratelimit
from workers.queue.producer import Broker, BrokerUnavailable
from workers.errors import ConfigError
from workers.settings import Settings
from workers.web.batcher import Batcher

log = logging.getLogger(__name__)

ID_MAX_CHARS = 200
BROKER_UNAVAILABLE = "the message broker is unavailable: nothing was queued; retry the request"
PUBLISH_THREADS = 8
REFUSALS_FLUSH_S = 1.0  # refused requests reach the source's counters in Redis within about this long


class State:
    """One API process's connections and caches, at ``app.state.signal``."""

    def __init__(self, settings: Settings, broker: Broker | None) -> None:
        self.settings = settings
        self.r = db.connect(settings)
        self.broker = broker or Broker(settings)
        self.executor = ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="publish")
        self.write_keys = sources.TtlCache(sources.WRITE_KEY_CACHE_TTL_S)
        self.routes = sources.TtlCache(sources.ROUTES_CACHE_TTL_S)
        self.lookups: dict[tuple[str, str], asyncio.Future[Any]] = {}  # collection's cache misses being looked up
        self.limiter = ratelimit.Limiter(self.r)
        self.refusals = sources.Refusals()
        self._batchers: dict[int, tuple[asyncio.AbstractEventLoop, Batcher]] = {}

    def batcher(self) -> Batcher:
        """The batcher of the running event loop (one per loop: a batcher's futures and timers belong to it)."""
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is None or entry[0] is not loop:
            batcher = Batcher(self.publish, max_events=self.settings.collect_batch_events,
                              linger_s=self.settings.collect_batch_ms / 1000, executor=self.executor)
            self._batchers = {k: v for k, v in self._batchers.items() if not v[0].is_closed()}
            self._batchers[id(loop)] = (loop, batcher)
            return batcher
        return entry[1]

    def publish(self, integration_id: str, events: list[Any]) -> str:
        """Prepare one request's events for an integration and put them on the broker (in a publish thread)."""
        return ingest.publish(self.r, self.broker, integration_id, events, settings=self.settings)

    def refuse(self, source_id: str, reason: str, events: int) -> None:
        """Count a refused request of a source; the counts go to Redis in one round trip about a second later."""
        if self.refusals.add(source_id, reason, events):
            loop = asyncio.get_running_loop()
            loop.call_later(REFUSALS_FLUSH_S, loop.run_in_executor, self.executor, self.flush_refusals)

    def flush_refusals(self) -> None:
        try:
            self.refusals.flush(self.r)
        except redis.RedisError as exc:
            log.warning("could not count refused requests yet (%s); they are kept for the next flush",
                        type(exc).__name__)

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is not None and entry[0] is loop:
            await entry[1].drain()

    def close(self) -> None:
        self.flush_refusals()
        self.executor.shutdown(wait=True)
        self.broker.close()
        self.r.close()


def state(request: Request) -> State:
    return request.app.state.signal  # type: ignore[no-any-return]


# -- errors -------------------------------------------------------------------------------------------------------


class ApiError(Exception):
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
        return json_response(422, {"error": "invalid", "message": f"{count} invalid field{'s' if count != 1 else ''}",
                                   "errors": exc.errors})

    @app.exception_handler(manage.BucketCheckFailed)
    async def bucket_check(_: Request, exc: manage.BucketCheckFailed) -> JSONResponse:
        f = exc.failure
        return json_response(424, {"error": "bucket_check_failed", "code": f.code, "message": f.message,
                                   "hint": f.hint})

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
        return json_response(exc.status_code, {"error": codes.get(exc.status_code, "http_error"), "message": detail},
                             dict(exc.headers or {}))

    @app.exception_handler(BrokerUnavailable)
    async def broker_unavailable(_: Request, exc: BrokerUnavailable) -> JSONResponse:
        log.error("%s", exc)
        return json_response(503, {"error": "broker_unavailable", "message": BROKER_UNAVAILABLE},
                             {"Retry-After": "5"})

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


# -- the admin token ------------------------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                     description="SIGNAL_ADMIN_TOKEN, as Authorization: Bearer <token>")


def admin_token_matches(settings: Settings, given: str) -> bool:
    """Whether ``given`` is the admin token (constant time); False when none is configured."""
    expected = settings.admin_token
    if expected is None or not expected.get_secret_value():
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def admin_enabled(settings: Settings) -> bool:
    return settings.admin_token is not None and bool(settings.admin_token.get_secret_value())


ADMIN_DISABLED = "the admin API is disabled: set SIGNAL_ADMIN_TOKEN to enable it"
CONSOLE_DISABLED = "the console is disabled: set SIGNAL_ADMIN_TOKEN to enable it (you sign in with that token)"


def require_admin(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    settings = state(request).settings
    if not admin_enabled(settings):
        raise ApiError(503, "admin_disabled", ADMIN_DISABLED)
    if not admin_token_matches(settings, credentials.credentials if credentials is not None else ""):
        error = ApiError(401, "unauthorized", "a valid admin token is required (Authorization: Bearer <token>)")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error


# -- bodies -----------------------------------------------------------------------------------------------------------


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds ``max_bytes``, compressed or decompressed."""
    return await collect_body(request.stream(), request.headers.get("content-encoding"),
                              request.headers.get("content-length"), max_bytes=max_bytes)


async def collect_body(chunks: AsyncIterator[bytes], content_encoding: str | None, content_length: str | None, *,
                       max_bytes: int) -> bytes:
    """A body from its chunks and its Content-Encoding and Content-Length headers: 415 for an encoding other than
    gzip, 413 as soon as it exceeds ``max_bytes`` (announced, received or decompressed)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be gzip or absent")
    too_large = segment.MalformedRequest("body_too_large", f"the request body is over the limit of {max_bytes} bytes",
                                         status=413)
    length = content_length or ""
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    data = b""
    async for chunk in chunks:
        data += chunk
        if len(data) > max_bytes:
            raise too_large
    if encoding == "gzip":
        return segment.gunzip(data, max_bytes=max_bytes)
    return data


async def read_json(request: Request, *, optional: bool = False) -> Any:
    body = await read_body(request, max_bytes=state(request).settings.api_max_body_bytes)
    if optional and not body.strip():
        return {}
    try:
        return segment.parse_json(body)
    except segment.MalformedRequest as exc:
        raise ApiError(400, exc.reason, exc.message) from None
