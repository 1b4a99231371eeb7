"""The admin API, ``/v1/admin/...`` and ``/metrics``, behind the admin token (``Authorization: Bearer``).

Routes are thin: each calls one plain function (``workers.integrations.manage``, ``registry``, ``status``, ``delivery``,
``sources``) that the console and the CLI call too. A failed bucket check on install or update answers **424** with the
the troubleshooting row (``code``, ``message``, ``hint``); nothing is stored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from workers.errors import ConfigError
from workers.integrations import (
    blueprint_fields,
    bodies,
    catalog,
    find,
    manage,
    origins,
    overview,
    registry,
    schema,
    sources,
    status,
)
from workers.observe import fleet, metrics
from workers.pipeline import replay
from workers.web.deps import ID_MAX_CHARS, read_json, require_admin
from workers.web.errors import ApiError, json_response
from workers.web.state import state

log = logging.getLogger(__name__)

# -- OpenAPI request bodies (the routes read and validate bodies themselves, with size limits) ---------------------


def _body(schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}


INSTALL_BODY = _body(
    {
        "type": "object",
        "required": ["name", "config"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": bodies.NAME_MAX_CHARS},
            "variant": {
                "type": "string",
                "enum": list(bodies.VARIANTS),
                "description": "output format, fixed for the integration's life: "
                + "; ".join(f"{v['id']}: {v['description']}" for v in catalog.VARIANTS),
            },
            "config": schema.config_schema(partial=False),
            "blueprint": blueprint_fields.blueprint_schema(),
            "delivery_mode": {"type": "string", "enum": list(bodies.DELIVERY_MODES)},
            "enabled": {"type": "boolean"},
            "source_id": {"type": "string"},
            "verify": {
                "type": "boolean",
                "description": "check the bucket with GetBucketLocation first (default true)",
            },
        },
    }
)
PATCH_BODY = _body(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": bodies.NAME_MAX_CHARS},
            "config": schema.config_schema(partial=True),
            "blueprint": blueprint_fields.blueprint_schema(),
            "verify": {"type": "boolean"},
        },
    }
)
_SOURCE_FIELDS: dict[str, Any] = {
    "name": {"type": "string", "minLength": 1, "maxLength": sources.NAME_MAX_CHARS},
    "allowed_origins": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "maxItems": origins.MAX_ENTRIES,
        "description": "origins that may send events from a browser: https://www.example.com or "
        "*.example.com; empty: any",
    },
    "rate_limit_eps": {
        "type": ["integer", "null"],
        "minimum": 0,
        "maximum": sources.RATE_LIMIT_MAX_EPS,
        "description": "events per second; null: SIGNAL_SOURCE_RATE_LIMIT_EPS, 0: no limit",
    },
}
SOURCE_BODY = _body({"type": "object", "required": ["name"], "properties": _SOURCE_FIELDS})
SOURCE_PATCH_BODY = _body({"type": "object", "properties": _SOURCE_FIELDS})
SourceId = Path(..., min_length=1, max_length=ID_MAX_CHARS)
REPLAY_BODY = _body({"type": "object", "properties": {"batch_id": {"type": "string"}}}, required=False)

IntegrationId = Path(..., min_length=1, max_length=ID_MAX_CHARS)


router = APIRouter(prefix="/v1/admin", dependencies=[Depends(require_admin)], tags=["admin"])


@router.get("/integration-catalog")
def catalog_entries(category: str | None = Query(None, max_length=100)) -> dict[str, Any]:
    return {"integrations": catalog.entries(category)}


@router.post("/integration-catalog/{integration_type}/install", status_code=201, openapi_extra=INSTALL_BODY)
async def install(request: Request, integration_type: str = Path(..., max_length=100)) -> JSONResponse:
    if catalog.find(integration_type) is None:
        raise ApiError(
            404,
            "not_found",
            f"unknown integration type {integration_type!r}; the catalog has {catalog.INTEGRATION_TYPE}",
        )
    body = await read_json(request)
    st = state(request)
    integ = await asyncio.to_thread(manage.install_integration, st.r, body, settings=st.settings)
    log.info("installed integration=%s source=%s bucket=%s", integ.id, integ.source_id, integ.config.bucket)
    return json_response(201, manage.view(integ))


@router.get("/integrations")
def list_integrations(request: Request, source_id: str | None = Query(None, max_length=ID_MAX_CHARS)) -> dict[str, Any]:
    found = registry.list_all(state(request).r)
    if source_id is not None:
        found = [i for i in found if i.source_id == source_id]
    return {"integrations": [manage.view(i) for i in found]}


@router.get("/integrations/{integration_id}")
def get_integration(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    return manage.view(registry.get(state(request).r, integration_id))


@router.patch("/integrations/{integration_id}", openapi_extra=PATCH_BODY)
async def patch_integration(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    body = await read_json(request)
    st = state(request)
    integ = await asyncio.to_thread(manage.update_integration, st.r, integration_id, body, settings=st.settings)
    return manage.view(integ)


@router.delete("/integrations/{integration_id}")
def delete_integration(
    request: Request,
    integration_id: str = IntegrationId,
    flush: bool = Query(False, description="seal and deliver buffered events first"),
    timeout_s: float = Query(manage.FLUSH_TIMEOUT_S, gt=0, le=300),
) -> dict[str, Any]:
    st = state(request)
    manage.delete_integration(st.r, st.broker, integration_id, settings=st.settings, flush=flush, timeout_s=timeout_s)
    log.info("deleted integration=%s", integration_id)
    return {"deleted": True, "id": integration_id}


@router.post("/integrations/{integration_id}/enable")
def enable(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    return manage.view(registry.set_enabled(state(request).r, integration_id, True))


@router.post("/integrations/{integration_id}/disable")
def disable(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    return manage.view(registry.set_enabled(state(request).r, integration_id, False))


@router.post("/integrations/{integration_id}/test-event")
def send_test_event(
    request: Request,
    integration_id: str = IntegrationId,
    timeout_s: float = Query(manage.TEST_EVENT_TIMEOUT_S, gt=0, le=120),
) -> JSONResponse:
    st = state(request)
    code, body = manage.run_test_event(st.r, st.broker, integration_id, settings=st.settings, timeout_s=timeout_s)
    if code != 200 and "message" not in body:
        body["message"] = "test event failed"
    return json_response(code, body)


@router.post("/integrations/{integration_id}/check")
def check_connection(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    """Every step an upload takes (credentials, bucket and region, Object Lock, a test object written with the
    storage class, encryption and tags), each ok or failed with its hint."""
    st = state(request)
    return manage.check_connection(st.r, integration_id, settings=st.settings)


@router.get("/integrations/{integration_id}/access-policies")
def access_policies(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    """The IAM permissions policy to grant, and for a role the trust policy that lets the fleet assume it."""
    st = state(request)
    return manage.access_policies(registry.get(st.r, integration_id), settings=st.settings)


@router.get("/integrations/{integration_id}/status")
def get_status(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    return status.integration_status(state(request).r, integration_id)


@router.get("/integrations/{integration_id}/live-events")
def live(
    request: Request,
    integration_id: str = IntegrationId,
    limit: int = Query(20, ge=1, le=100),
    state_: str | None = Query(None, alias="state", pattern="^(" + "|".join(status.LIVE_STATES) + ")$"),
    type_: str | None = Query(None, alias="type", max_length=20),
    event: str | None = Query(None, max_length=200, description="a part of the event name, any case"),
) -> dict[str, Any]:
    """The latest events with their state (and the line as stored); the test event sent last is ``pinned``."""
    r = state(request).r
    events = status.live_events(r, integration_id, limit=limit, state=state_, type_=type_, event=event)
    return {"events": events, "pinned": status.pinned_event(r, integration_id)}


@router.get("/overview")
def fleet_overview(request: Request, hours: int = Query(24, ge=1, le=overview.MAX_HOURS)) -> dict[str, Any]:
    """The fleet's delivery per UTC hour: received, filtered and rejected (by reason), delivered, held, objects,
    bytes and event-to-object latency p50 / p95, summed over every integration; with the events buffered now."""
    st = state(request)
    now = fleet.totals(st.r)
    return overview.fleet_overview(st.r, hours=hours, buffered=now["buffered_events"], held=now["held_events"])


@router.get("/integrations/{integration_id}/overview")
def integration_overview(
    request: Request, integration_id: str = IntegrationId, hours: int = Query(24, ge=1, le=overview.MAX_HOURS)
) -> dict[str, Any]:
    """The integration's delivery per UTC hour of the last ``hours`` (at most 168): the funnel received ->
    filtered -> rejected -> delivered -> held, objects, bytes, latency p50 / p95; with the events buffered now."""
    return overview.integration_overview(state(request).r, integration_id, hours=hours)


@router.get("/integrations/{integration_id}/objects")
def list_objects(
    request: Request,
    integration_id: str = IntegrationId,
    since: str | None = Query(None, max_length=40, description="ISO 8601; default: 24 hours before until"),
    until: str | None = Query(None, max_length=40, description="ISO 8601; default: now"),
    cursor: str | None = Query(None, max_length=20, description="next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
) -> dict[str, Any]:
    """The object ledger: every object written in the window, newest first (key, events, bytes, first and last
    event time, written at, upload time, attempts, ETag, the aws s3 cp line)."""
    try:
        since_at = overview.parse_time(since, "since")
        until_at = overview.parse_time(until, "until")
        return overview.objects(
            state(request).r, integration_id, since=since_at, until=until_at, cursor=cursor, limit=limit
        )
    except ValueError as exc:
        raise ConfigError([{"field": str(exc).split(" ", 1)[0], "message": str(exc)}]) from None


@router.get("/integrations/{integration_id}/events/{event_id:path}")
def find_event(
    request: Request,
    integration_id: str = IntegrationId,
    event_id: str = Path(..., min_length=1, max_length=200),
    at: str | None = Query(None, max_length=40, description="about when it was sent (ISO 8601): search that hour"),
) -> dict[str, Any]:
    """Where one event is: buffered, uploading / retrying, delivered (object key and line number), held (batch and
    error), filtered or rejected (reason); 404 says what was searched."""
    try:
        when = overview.parse_time(at, "at")
    except ValueError as exc:
        raise ConfigError([{"field": "at", "message": str(exc)}]) from None
    st = state(request)
    try:
        return find.find_event(st.r, integration_id, event_id, at=when, settings=st.settings)
    except find.EventNotFound as exc:
        hint = "" if when is not None else " Give at= (about when it was sent) to search the objects of that hour."
        raise ApiError(404, "not_found", f"{exc}.{hint}", searched=exc.searched) from None


@router.get("/integrations/{integration_id}/dead-letter")
def dead_letter(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    return {"batches": status.dead_letter(state(request).r, integration_id)}


@router.post("/integrations/{integration_id}/dead-letter/replay", openapi_extra=REPLAY_BODY)
async def replay_held(request: Request, integration_id: str = IntegrationId) -> dict[str, Any]:
    body = await read_json(request, optional=True)
    if not isinstance(body, dict) or set(body) - {"batch_id"}:
        raise ConfigError([{"field": "body", "message": 'the body must be {} or {"batch_id": "..."}'}])
    batch_id = body.get("batch_id")
    if batch_id is not None and (not isinstance(batch_id, str) or not 0 < len(batch_id) <= ID_MAX_CHARS):
        raise ConfigError([{"field": "batch_id", "message": "batch_id must be the id of a held batch"}])
    st = state(request)
    try:
        report = await asyncio.to_thread(replay.replay, st.r, integration_id, settings=st.settings, batch_id=batch_id)
    except registry.UnknownIntegration:
        raise
    except LookupError as exc:
        raise ApiError(404, "not_found", str(exc)) from None
    return report.summary()


@router.post("/sources", status_code=201, openapi_extra=SOURCE_BODY)
async def create_source(request: Request) -> JSONResponse:
    body = await read_json(request)
    st = state(request)
    source = await asyncio.to_thread(sources.create_from, st.r, body)
    log.info("created source=%s", source.id)
    return json_response(201, sources.view(st.r, source, st.settings))


@router.get("/sources")
def list_sources(request: Request) -> dict[str, Any]:
    st = state(request)
    return {"sources": [sources.view(st.r, s, st.settings) for s in sources.list_all(st.r)]}


@router.get("/sources/{source_id}")
def get_source(request: Request, source_id: str = SourceId) -> dict[str, Any]:
    st = state(request)
    return sources.view(st.r, sources.get(st.r, source_id), st.settings)


@router.patch("/sources/{source_id}", openapi_extra=SOURCE_PATCH_BODY)
async def patch_source(request: Request, source_id: str = SourceId) -> dict[str, Any]:
    body = await read_json(request)
    st = state(request)
    source = await asyncio.to_thread(sources.update, st.r, source_id, body)
    st.routes.clear()  # this process applies it at once; the others within sources.ROUTES_CACHE_TTL_S
    log.info("updated source=%s fields=%s", source.id, ",".join(sorted(body)))
    return sources.view(st.r, source, st.settings)


metrics_router = APIRouter(dependencies=[Depends(require_admin)], tags=["admin"])


@metrics_router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def fleet_metrics(request: Request) -> Response:
    """The fleet's Prometheus metrics (read from Redis: any API replica serves the same numbers)."""
    body, content_type = await asyncio.to_thread(metrics.render, state(request).r, request.headers.get("accept"))
    return Response(body, media_type=content_type)
