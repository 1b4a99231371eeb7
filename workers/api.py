"""The fleet's HTTP API (FastAPI on uvicorn): ``signal-s3 api``, 127.0.0.1:8084 by default.

Two powers, never interchangeable:
  * the admin token (``SIGNAL_ADMIN_TOKEN``, ``Authorization: Bearer``) for ``/v1/admin/...``: installing and managing
    integrations and sources. Without the setting the admin routes answer 503; a missing or wrong token 401.
  * a source's write key (HTTP Basic username, empty password) for the Segment-compatible collection routes
    ``/v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``, ``/v1/group``, ``/v1/alias``.

Every error is JSON with a ``message`` (and ``error``, a stable code; validation errors list ``errors`` as
``{"field", "message"}``); no stack trace, secret or write key ever appears in a response or a log line. Request bodies
are read with a size limit before any parsing, gzip bodies are decompressed up to the same limit.

A failed bucket check on install or update answers **424** with the seed's troubleshooting row: ``code``,
``message``, ``hint``; nothing is stored.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import redis
from celery import Celery
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from workers import buffer, clock, collect, crypto, delivery, metrics, registry, s3, sources, status
from workers.config import (
    AWS_REGIONS,
    SSE_ALGORITHMS,
    STORAGE_CLASSES,
    ConfigError,
    IntegrationConfig,
    parse_config,
)
from workers.settings import Settings, get_settings

log = logging.getLogger(__name__)

INTEGRATION_TYPE = "amazon_s3"
DEFAULT_BLUEPRINT: dict[str, Any] = {"name": "default", "forward": "all_events"}
TEST_EVENT_TIMEOUT_S = 30.0
FLUSH_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.1
ID_MAX_CHARS = 200
PUBLISH_THREADS = 8

# -- the catalog --------------------------------------------------------------------------------------------------

CATALOG_ENTRY: dict[str, Any] = {
    "id": INTEGRATION_TYPE,
    "name": "Amazon S3",
    "category": "Cloud Storage",
    "description": (
        "Writes batches of first-party events as objects into an S3 bucket, ready for query with Athena, Glue, "
        "Spark, Presto, or any downstream lakehouse tooling."
    ),
    "variants": [{"id": "default", "name": "Default", "description": "Gzipped NDJSON objects, one per batch"}],
    "delivery_modes": list(registry.DELIVERY_MODES),
    "default_blueprint": DEFAULT_BLUEPRINT,
    "object_key_pattern": "<prefix>YYYY/MM/DD/HH/<batch-uuid>.json.gz",
    "fields": [
        {"name": "bucket", "type": "string", "required": True, "aliases": ["bucket_name"],
         "description": "The S3 bucket name. Also accepts bucket_name."},
        {"name": "region", "type": "select", "required": True, "allowed_values": sorted(AWS_REGIONS),
         "description": "The AWS region of the bucket (e.g. us-east-1)."},
        {"name": "access_key_id", "type": "secret", "required": True,
         "description": "AWS access key ID with s3:PutObject on the bucket."},
        {"name": "secret_access_key", "type": "secret", "required": True,
         "description": "Secret access key matching the access key ID."},
        {"name": "session_token", "type": "secret", "required": False,
         "description": "Optional STS session token for temporary credentials."},
        {"name": "prefix", "type": "string", "required": False, "default": "",
         "description": "Optional prefix (folder path) prepended to all object keys. Include a trailing slash "
                        "(e.g. events/)."},
        {"name": "storage_class", "type": "select", "required": False, "allowed_values": list(STORAGE_CLASSES),
         "default": "STANDARD",
         "description": "Optional S3 storage class (e.g. STANDARD, STANDARD_IA, INTELLIGENT_TIERING). Defaults to "
                        "STANDARD."},
        {"name": "server_side_encryption", "type": "select", "required": False,
         "allowed_values": list(SSE_ALGORITHMS), "description": "Optional SSE algorithm: AES256 or aws:kms."},
        {"name": "kms_key_id", "type": "string", "required": False,
         "description": "KMS key ARN \u2014 required when server_side_encryption is aws:kms."},
        {"name": "batch_max_events", "type": "integer", "required": False, "default": 100_000, "advanced": True,
         "description": "Most events in one object."},
        {"name": "batch_max_bytes", "type": "integer", "required": False, "default": 64 * 1024 * 1024,
         "advanced": True, "description": "Most uncompressed bytes in one object."},
        {"name": "flush_interval_s", "type": "number", "required": False, "advanced": True,
         "description": "How old a buffer gets before it is written (default: the fleet's flush interval)."},
        {"name": "buffer_max_bytes", "type": "integer", "required": False, "advanced": True,
         "description": "Cap on buffered and held bytes of this integration (default: the fleet's)."},
        {"name": "endpoint_url", "type": "string", "required": False, "advanced": True,
         "description": "S3-compatible endpoint (MinIO, R2, ...); leave empty for Amazon S3."},
    ],
}

# -- OpenAPI request bodies (the routes read and validate bodies themselves, with size limits) ---------------------

_JSON_TYPES = {"string": "string", "select": "string", "secret": "string", "integer": "integer", "number": "number"}


def _config_schema(*, partial: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for f in CATALOG_ENTRY["fields"]:
        prop: dict[str, Any] = {"type": _JSON_TYPES[f["type"]], "description": f["description"]}
        if "allowed_values" in f:
            prop["enum"] = f["allowed_values"]
        if f["type"] == "secret":
            prop["writeOnly"] = True
        properties[f["name"]] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if not partial:
        schema["required"] = [f["name"] for f in CATALOG_ENTRY["fields"] if f["required"]]
    return schema


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


INSTALL_BODY = _body({
    "type": "object",
    "required": ["name", "config"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": registry.NAME_MAX_CHARS},
        "variant": {"type": "string", "enum": list(registry.VARIANTS)},
        "config": _config_schema(partial=False),
        "delivery_mode": {"type": "string", "enum": list(registry.DELIVERY_MODES)},
        "enabled": {"type": "boolean"},
        "source_id": {"type": "string"},
        "verify": {"type": "boolean", "description": "check the bucket with GetBucketLocation first (default true)"},
    },
})
PATCH_BODY = _body({
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": registry.NAME_MAX_CHARS},
        "config": _config_schema(partial=True),
        "verify": {"type": "boolean"},
    },
})
SOURCE_BODY = _body({"type": "object", "required": ["name"],
                     "properties": {"name": {"type": "string", "minLength": 1, "maxLength": sources.NAME_MAX_CHARS}}})
REPLAY_BODY = _body({"type": "object", "properties": {"batch_id": {"type": "string"}}}, required=False)
_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "messageId": {"type": "string"}, "anonymousId": {"type": "string"}, "userId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"}, "sentAt": {"type": "string", "format": "date-time"},
        "context": {"type": "object"}, "properties": {"type": "object"}, "traits": {"type": "object"},
        "event": {"type": "string"}, "name": {"type": "string"}, "groupId": {"type": "string"},
        "previousId": {"type": "string"},
    },
}
CALL_BODY = _body(_CALL_SCHEMA)
BATCH_BODY = _body({
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": {**_CALL_SCHEMA, "properties": {
            **_CALL_SCHEMA["properties"], "type": {"type": "string", "enum": list(collect.EVENT_TYPES)}}}},
        "context": {"type": "object"},
        "sentAt": {"type": "string", "format": "date-time"},
    },
})

# -- errors -------------------------------------------------------------------------------------------------------


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": error, "message": message, **extra}
        self.headers: dict[str, str] = {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _json(exc.status, exc.body, exc.headers)

    @app.exception_handler(ConfigError)
    async def config_error(_: Request, exc: ConfigError) -> JSONResponse:
        count = len(exc.errors)
        return _json(422, {"error": "invalid", "message": f"{count} invalid field{'s' if count != 1 else ''}",
                           "errors": exc.errors})

    @app.exception_handler(sources.BucketCheckFailed)
    async def bucket_check(_: Request, exc: sources.BucketCheckFailed) -> JSONResponse:
        f = exc.failure
        return _json(424, {"error": "bucket_check_failed", "code": f.code, "message": f.message, "hint": f.hint})

    @app.exception_handler(collect.MalformedRequest)
    async def malformed(_: Request, exc: collect.MalformedRequest) -> JSONResponse:
        return _json(exc.status, {"success": False, "error": exc.reason, "message": exc.message})

    @app.exception_handler(registry.UnknownIntegration)
    async def unknown_integration(_: Request, exc: registry.UnknownIntegration) -> JSONResponse:
        return _json(404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(sources.UnknownSource)
    async def unknown_source(_: Request, exc: sources.UnknownSource) -> JSONResponse:
        return _json(404, {"error": "not_found", "message": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for e in exc.errors():
            loc = [str(part) for part in e.get("loc", ()) if part not in ("query", "path", "body", "header")]
            field = ".".join(loc) or "request"
            errors.append({"field": field, "message": f"{field}: {e.get('msg', 'invalid value')}"})
        return _json(422, {"error": "invalid", "message": "invalid request parameters", "errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
        detail = exc.detail if isinstance(exc.detail, str) else "request refused"
        return _json(exc.status_code, {"error": codes.get(exc.status_code, "http_error"), "message": detail},
                     dict(exc.headers or {}))

    @app.exception_handler(redis.RedisError)
    async def redis_error(_: Request, exc: redis.RedisError) -> JSONResponse:
        log.error("redis error: %s", type(exc).__name__)
        return _json(503, {"error": "unavailable", "message": "Redis is unavailable; try again"})

    @app.exception_handler(crypto.SecretKeyMissing)
    @app.exception_handler(crypto.SecretKeyInvalid)
    @app.exception_handler(crypto.SecretKeyMismatch)
    async def secret_key(_: Request, exc: Exception) -> JSONResponse:
        return _json(503, {"error": "secret_key", "message": str(exc)})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected %s while serving a request", type(exc).__name__, exc_info=False)
        return _json(500, {"error": "internal", "message": "internal error; see the API's log"})


# -- broker -------------------------------------------------------------------------------------------------------


class Broker:
    """Publishes ``signal.ingest`` / ``signal.upload`` messages; their shown arguments are ids and counts only."""

    def __init__(self, redis_url: str, *, visibility_timeout_s: int = 300) -> None:
        self.app = Celery("signal-api", broker=redis_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry_on_startup=True,
                             broker_transport_options={"visibility_timeout": visibility_timeout_s})

    def ingest(self, integration_id: str, events: list[Any]) -> str:
        task_id = str(uuid.uuid4())
        self.app.send_task("signal.ingest", args=[integration_id, events], queue="ingest", task_id=task_id,
                           argsrepr=repr((integration_id, f"<{len(events)} items>")), kwargsrepr="{}")
        return task_id

    def upload(self, integration_id: str, batch_id: str) -> None:
        self.app.send_task("signal.upload", args=[integration_id, batch_id], queue="flush",
                           argsrepr=repr((integration_id, batch_id)), kwargsrepr="{}")

    def close(self) -> None:
        self.app.close()


# -- test event and flush: shared with the CLI ---------------------------------------------------------------------


def run_test_event(r: redis.Redis, broker: Broker, integration_id: str, *, settings: Settings,
               timeout_s: float = TEST_EVENT_TIMEOUT_S) -> tuple[int, dict[str, Any]]:
    """Send one test track event through the real path (ingest task, seal, upload task) and wait for its outcome.

    Returns (HTTP status, body): 200 delivered with the object key, 424 failed with code/message/hint, 409 when the
    integration is disabled, 504 with the state reached when ``timeout_s`` ran out.
    """
    integ = registry.get(r, integration_id)
    if not integ.enabled:
        return 409, {"error": "disabled", "message": f"integration {integration_id} is disabled; enable it first"}
    event_id = f"test-{uuid.uuid4()}"
    event = {"event_id": event_id, "type": "track", "event": "Signal Test Event", "anonymous_id": "signal-test-event",
             "properties": {"test": True}, "context": {"library": {"name": "signal-s3", "test_event": True}}}
    if integ.source_id:
        event["source_id"] = integ.source_id
    started = time.monotonic()
    broker.ingest(integration_id, [event])
    deadline = started + timeout_s
    state, flushed, view = "queued", False, None
    while True:
        view = next((v for v in status.live_events(r, integration_id, limit=buffer.LIST_MAX)
                     if v["event_id"] == event_id), None)
        if view is not None:
            state = view["state"]
            if state == "buffered" and not flushed:
                for batch_id in delivery.flush_now(r, integration_id, settings=settings):
                    broker.upload(integration_id, batch_id)
                flushed = True
                continue
            if state == "delivered":
                return 200, {"event_id": event_id, "state": "delivered", "bucket": integ.config.bucket,
                             "object_key": view.get("object_key"), "batch_id": view.get("batch_id"),
                             "elapsed_ms": int((time.monotonic() - started) * 1000)}
            if state == "failed":
                meta = buffer.batch_meta(r, integration_id, view["batch_id"])
                return 424, {"error": "delivery_failed", "event_id": event_id, "state": "failed",
                             "code": view.get("code"), "message": meta.get("error_message") or "delivery failed",
                             "hint": view.get("hint"), "batch_id": view.get("batch_id")}
        if time.monotonic() >= deadline:
            body = {"error": "timeout", "event_id": event_id, "state": state,
                    "message": f"the test event was not delivered within {timeout_s:g}s (last state: {state}); "
                               "are the workers running?"}
            if view is not None and view.get("code"):
                body["code"] = view["code"]
            return 504, body
        time.sleep(POLL_INTERVAL_S)


def flush_and_wait(r: redis.Redis, broker: Broker, integration_id: str, *, settings: Settings,
                   timeout_s: float) -> dict[str, int]:
    """Seal and dispatch every buffer of an integration, then wait until only held events (if any) remain."""
    for batch_id in delivery.flush_now(r, integration_id, settings=settings):
        broker.upload(integration_id, batch_id)
    deadline = time.monotonic() + timeout_s
    while True:
        counts = _counts(r, integration_id)
        if counts["buffered_events"] <= counts["dead_letter_events"] or time.monotonic() >= deadline:
            return counts
        time.sleep(POLL_INTERVAL_S)


def _counts(r: redis.Redis, integration_id: str) -> dict[str, int]:
    st = status.integration_status(r, integration_id)
    return {"buffered_events": st["buffered_events"], "dead_letter_events": st["dead_letter_events"],
            "dead_letter_batches": st["dead_letter_batches"]}


# -- the app ------------------------------------------------------------------------------------------------------


class State:
    def __init__(self, settings: Settings, broker: Broker | None) -> None:
        self.settings = settings
        self.r = redis.Redis.from_url(settings.redis_url)
        self.broker = broker or Broker(settings.redis_url, visibility_timeout_s=settings.visibility_timeout_s)
        self.executor = ThreadPoolExecutor(max_workers=PUBLISH_THREADS, thread_name_prefix="publish")
        self.write_keys = sources.TtlCache(sources.WRITE_KEY_CACHE_TTL_S)
        self.routes = sources.TtlCache(sources.ROUTES_CACHE_TTL_S)
        self._batchers: dict[int, tuple[asyncio.AbstractEventLoop, collect.Batcher]] = {}

    def batcher(self) -> collect.Batcher:
        """The batcher of the running event loop (one per loop: a batcher's futures and timers belong to it)."""
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is None or entry[0] is not loop:
            batcher = collect.Batcher(self.broker.ingest, max_events=self.settings.collect_batch_events,
                                      max_delay_s=self.settings.collect_batch_ms / 1000, executor=self.executor)
            self._batchers = {k: v for k, v in self._batchers.items() if not v[0].is_closed()}
            self._batchers[id(loop)] = (loop, batcher)
            return batcher
        return entry[1]

    async def drain(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._batchers.get(id(loop))
        if entry is not None and entry[0] is loop:
            await entry[1].drain()

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        self.broker.close()
        self.r.close()


_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                     description="SIGNAL_ADMIN_TOKEN, as Authorization: Bearer <token>")
_basic = HTTPBasic(auto_error=False, scheme_name="writeKey",
                   description="A source's write key as the Basic username, empty password")


def _state(request: Request) -> State:
    return request.app.state.signal  # type: ignore[no-any-return]


def require_admin(request: Request,
                  credentials: HTTPAuthorizationCredentials | None = Security(_bearer)) -> None:
    expected = _state(request).settings.admin_token
    if expected is None or not expected.get_secret_value():
        raise ApiError(503, "admin_disabled",
                       "the admin API is disabled: set SIGNAL_ADMIN_TOKEN to enable it")
    given = credentials.credentials if credentials is not None else ""
    if not hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        error = ApiError(401, "unauthorized", "a valid admin token is required (Authorization: Bearer <token>)")
        error.headers["WWW-Authenticate"] = "Bearer"
        raise error


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds ``max_bytes``, compressed or decompressed."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be gzip or absent")
    too_large = collect.MalformedRequest("body_too_large", f"the request body is over the limit of {max_bytes} bytes",
                                         status=413)
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes:
        raise too_large
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > max_bytes:
            raise too_large
    if encoding == "gzip":
        return collect.gunzip(bytes(data), max_bytes=max_bytes)
    return bytes(data)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    body = await read_body(request, max_bytes=_state(request).settings.api_max_body_bytes)
    if optional and not body.strip():
        return {}
    try:
        return collect.parse_json(body)
    except collect.MalformedRequest as exc:
        raise ApiError(400, exc.reason, exc.message) from None


def _view(integ: registry.Integration) -> dict[str, Any]:
    return {**integ.public(), "type": INTEGRATION_TYPE, "blueprint": DEFAULT_BLUEPRINT}


def _merged_config(current: IntegrationConfig, patch: Any) -> dict[str, Any]:
    if not isinstance(patch, dict):
        raise ConfigError([{"field": "config", "message": "config must be an object of settings"}])
    merged: dict[str, Any] = {}
    for name, value in current.model_dump(mode="python").items():
        merged[name] = value.get_secret_value() if hasattr(value, "get_secret_value") else value
    if "bucket_name" in patch:
        merged.pop("bucket", None)
    merged.update(patch)
    return merged


def admin_router() -> APIRouter:
    router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_admin)], tags=["admin"])

    @router.get("/integration-catalog")
    def catalog(category: str | None = Query(None, max_length=100)) -> dict[str, Any]:
        entries = [CATALOG_ENTRY]
        if category is not None:
            entries = [e for e in entries if e["category"].lower() == category.strip().lower()]
        return {"integrations": entries}

    @router.post("/integration-catalog/{integration_type}/install", status_code=201, openapi_extra=INSTALL_BODY)
    async def install(request: Request, integration_type: str = Path(..., max_length=100)) -> JSONResponse:
        if integration_type != INTEGRATION_TYPE:
            raise ApiError(404, "not_found", f"unknown integration type {integration_type!r}; "
                                             f"the catalog has {INTEGRATION_TYPE}")
        body = await read_json(request)
        st = _state(request)
        integ = await asyncio.to_thread(sources.install_integration, st.r, body, settings=st.settings)
        log.info("installed integration=%s source=%s bucket=%s", integ.id, integ.source_id, integ.config.bucket)
        return _json(201, _view(integ))

    @router.get("/integrations")
    def list_integrations(request: Request, source_id: str | None = Query(None, max_length=ID_MAX_CHARS)
                          ) -> dict[str, Any]:
        found = registry.list_all(_state(request).r)
        if source_id is not None:
            found = [i for i in found if i.source_id == source_id]
        return {"integrations": [_view(i) for i in found]}

    @router.get("/integrations/{integration_id}")
    def get_integration(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        return _view(registry.get(_state(request).r, integration_id))

    @router.patch("/integrations/{integration_id}", openapi_extra=PATCH_BODY)
    async def patch_integration(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        body = await read_json(request)
        st = _state(request)
        return await asyncio.to_thread(_patch, st, integration_id, body)

    @router.delete("/integrations/{integration_id}")
    def delete_integration(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS),
                           flush: bool = Query(False, description="seal and deliver buffered events first"),
                           timeout_s: float = Query(FLUSH_TIMEOUT_S, gt=0, le=300)) -> dict[str, Any]:
        st = _state(request)
        integ = registry.get(st.r, integration_id)
        counts = _counts(st.r, integration_id)
        if counts["dead_letter_events"]:
            raise ApiError(409, "not_empty", f"{counts['dead_letter_events']} events are held in the dead-letter "
                           "store; fix the cause and replay them before deleting the integration", **counts)
        if counts["buffered_events"] and not flush:
            raise ApiError(409, "not_empty", f"{counts['buffered_events']} events are buffered and not yet "
                           "delivered; delete with ?flush=true to deliver them first", **counts)
        if counts["buffered_events"]:
            registry.set_enabled(st.r, integration_id, False)  # no new events while it drains
            counts = flush_and_wait(st.r, st.broker, integration_id, settings=st.settings, timeout_s=timeout_s)
            if counts["buffered_events"]:
                if integ.enabled:
                    registry.set_enabled(st.r, integration_id, True)
                raise ApiError(409, "not_empty", f"{counts['buffered_events']} events were still not delivered after "
                               f"{timeout_s:g}s; see the status and try again", **counts)
        registry.delete(st.r, integration_id)
        log.info("deleted integration=%s", integration_id)
        return {"deleted": True, "id": integration_id}

    @router.post("/integrations/{integration_id}/enable")
    def enable(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        return _view(registry.set_enabled(_state(request).r, integration_id, True))

    @router.post("/integrations/{integration_id}/disable")
    def disable(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        return _view(registry.set_enabled(_state(request).r, integration_id, False))

    @router.post("/integrations/{integration_id}/test-event")
    def send_test_event(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS),
                        timeout_s: float = Query(TEST_EVENT_TIMEOUT_S, gt=0, le=120)) -> JSONResponse:
        st = _state(request)
        code, body = run_test_event(st.r, st.broker, integration_id, settings=st.settings, timeout_s=timeout_s)
        if code != 200 and "message" not in body:
            body["message"] = "test event failed"
        return _json(code, body)

    @router.get("/integrations/{integration_id}/status")
    def get_status(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        return status.integration_status(_state(request).r, integration_id)

    @router.get("/integrations/{integration_id}/live-events")
    def live(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS),
             limit: int = Query(20, ge=1, le=100)) -> dict[str, Any]:
        return {"events": status.live_events(_state(request).r, integration_id, limit=limit)}

    @router.get("/integrations/{integration_id}/dead-letter")
    def dead_letter(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        return {"batches": status.dead_letter(_state(request).r, integration_id)}

    @router.post("/integrations/{integration_id}/dead-letter/replay", openapi_extra=REPLAY_BODY)
    async def replay(request: Request, integration_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
        body = await read_json(request, optional=True)
        if not isinstance(body, dict) or set(body) - {"batch_id"}:
            raise ConfigError([{"field": "body", "message": 'the body must be {} or {"batch_id": "..."}'}])
        batch_id = body.get("batch_id")
        if batch_id is not None and (not isinstance(batch_id, str) or not 0 < len(batch_id) <= ID_MAX_CHARS):
            raise ConfigError([{"field": "batch_id", "message": "batch_id must be the id of a held batch"}])
        st = _state(request)
        try:
            report = await asyncio.to_thread(delivery.replay, st.r, integration_id, settings=st.settings,
                                             batch_id=batch_id)
        except registry.UnknownIntegration:
            raise
        except LookupError as exc:
            raise ApiError(404, "not_found", str(exc)) from None
        return report.summary()

    @router.post("/sources", status_code=201, openapi_extra=SOURCE_BODY)
    async def create_source(request: Request) -> JSONResponse:
        body = await read_json(request)
        if not isinstance(body, dict):
            raise ConfigError([{"field": "body", "message": 'the body must be {"name": "..."}'}])
        unknown = sorted(str(k) for k in body if k != "name")
        if unknown:
            raise ConfigError([{"field": k, "message": f"{k} is not a known field; the only field is name"}
                               for k in unknown])
        if "name" not in body:
            raise ConfigError([{"field": "name", "message": "name is required"}])
        source = await asyncio.to_thread(sources.create, _state(request).r, body["name"])
        log.info("created source=%s", source.id)
        return _json(201, source.public())

    @router.get("/sources")
    def list_sources(request: Request) -> dict[str, Any]:
        r = _state(request).r
        return {"sources": [{**s.public(), "integrations": sources.integration_ids(r, s.id)}
                            for s in sources.list_all(r)]}

    @router.get("/sources/{source_id}")
    def get_source(request: Request, source_id: str = Path(..., min_length=1, max_length=ID_MAX_CHARS)
                   ) -> dict[str, Any]:
        r = _state(request).r
        source = sources.get(r, source_id)
        return {**source.public(), "integrations": sources.integration_ids(r, source.id)}

    return router


def _patch(st: State, integration_id: str, body: Any) -> dict[str, Any]:
    current = registry.get(st.r, integration_id)
    body, verify = registry.pop_verify(body)
    if not isinstance(body, dict):
        raise ConfigError([{"field": "body", "message": 'the body must be {"config": {...}, "name": "..."}'}])
    errors: list[dict[str, str]] = [
        {"field": str(k), "message": f"{k} cannot be changed here; the fields are config, name and verify"}
        for k in body if k not in ("config", "name")
    ]
    name = None
    if "name" in body:
        try:
            name = registry.check_name(body["name"])
        except ConfigError as exc:
            errors.extend(exc.errors)
    config = None
    if "config" in body:
        try:
            config = parse_config(_merged_config(current.config, body["config"]), field_prefix="config")
        except ConfigError as exc:
            errors.extend(exc.errors)
    if errors:
        raise ConfigError(errors)
    if config is not None and verify:
        failure = s3.verify_bucket(config, settings=st.settings)
        if failure is not None:
            raise sources.BucketCheckFailed(failure)
    return _view(registry.update(st.r, integration_id, config=config, name=name))


def collect_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["collect"])

    async def source_of(request: Request, credentials: HTTPBasicCredentials | None) -> str:
        st = _state(request)
        write_key = credentials.username if credentials is not None else ""
        if not write_key:
            raise _write_key_error()
        digest = sources.write_key_digest(write_key)
        source_id = st.write_keys.get(digest)
        if source_id is None:
            source_id = await asyncio.to_thread(sources.source_for_write_key, st.r, write_key)
            if source_id is None:
                raise _write_key_error()
            st.write_keys.put(digest, source_id)
        return str(source_id)

    async def routes_of(st: State, source_id: str) -> list[str]:
        found = st.routes.get(source_id)
        if found is None:
            found = await asyncio.to_thread(sources.enabled_integrations, st.r, source_id)
            st.routes.put(source_id, found)
        return list(found)

    async def handle(request: Request, credentials: HTTPBasicCredentials | None, event_type: str | None
                     ) -> JSONResponse:
        st = _state(request)
        source_id = await source_of(request, credentials)
        document = collect.parse_json(await read_body(request, max_bytes=st.settings.api_max_body_bytes))
        calls = collect.read_calls(document, event_type, event_max_bytes=st.settings.event_max_bytes)
        events = collect.envelopes(calls, source_id=source_id, received_at=clock.iso(clock.now()),
                                   event_type=event_type)
        integration_ids = await routes_of(st, source_id)
        if events and integration_ids:
            batcher = st.batcher()
            try:
                await asyncio.gather(*(batcher.submit(iid, events) for iid in integration_ids))
            except Exception as exc:  # noqa: BLE001 - the broker could not take the events: the client retries
                log.error("could not publish %d events of source=%s: %s", len(events), source_id,
                          type(exc).__name__)
                raise ApiError(503, "unavailable", "the events could not be queued; retry the request",
                               success=False) from None
        return _json(200, {"success": True})

    @router.post("/batch", openapi_extra=BATCH_BODY)
    async def batch(request: Request, credentials: HTTPBasicCredentials | None = Security(_basic)) -> JSONResponse:
        return await handle(request, credentials, None)

    def single(event_type: str) -> None:
        async def call(request: Request, credentials: HTTPBasicCredentials | None = Security(_basic)
                       ) -> JSONResponse:
            return await handle(request, credentials, event_type)

        router.add_api_route(f"/{event_type}", call, methods=["POST"], name=event_type, openapi_extra=CALL_BODY)

    for event_type in collect.EVENT_TYPES:
        single(event_type)
    return router


def _write_key_error() -> ApiError:
    error = ApiError(401, "unauthorized", "a valid write key is required (HTTP Basic username, empty password)",
                     success=False)
    error.headers["WWW-Authenticate"] = 'Basic realm="signal"'
    return error


def create_app(settings: Settings | None = None, *, broker: Broker | None = None) -> FastAPI:
    settings = settings or get_settings()
    state = State(settings, broker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await state.drain()  # nothing accepted stays behind in memory
        await asyncio.to_thread(state.close)

    app = FastAPI(title="Signal S3 destination", version="0.1.0", lifespan=lifespan,
                  description="Admin API of the Amazon S3 destination and Segment-compatible event collection.")
    app.state.signal = state
    _install_handlers(app)
    app.include_router(admin_router())
    app.include_router(collect_router())

    @app.get("/metrics", dependencies=[Depends(require_admin)], tags=["admin"],
             response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def fleet_metrics(request: Request) -> Response:
        """The fleet's Prometheus metrics (read from Redis: any API replica serves the same numbers)."""
        body, content_type = await asyncio.to_thread(metrics.render, state.r, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return app


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM (pending events are published before it exits)."""
    import uvicorn

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.admin_token is None:
        log.warning("SIGNAL_ADMIN_TOKEN is not set: the admin routes answer 503")
    uvicorn.run(create_app(settings), host=host or settings.api_host, port=port or settings.api_port,
                log_level=settings.log_level.lower(), server_header=False, proxy_headers=False)
