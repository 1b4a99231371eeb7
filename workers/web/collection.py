"""Event collection for websites and servers, in the shape of Segment's HTTP Tracking API and RudderStack's.

Paths: ``/v1/track|t``, ``/v1/page|p``, ``/v1/identify|i``, ``/v1/group|g``, ``/v1/alias|a``, ``/v1/screen|s``,
``/v1/batch|b`` (the short forms are analytics.js'), RudderStack's beacon ``/beacon/v1/batch``, and ``/v1/m``
(analytics.js' own metrics: answered, nothing stored). Bodies are JSON whatever the Content-Type says
(``application/json``, ``text/plain`` from analytics.js and beacons), optionally gzip.

The write key is the HTTP Basic username, else the ``writeKey`` query parameter (beacons cannot set headers), else
the body's ``writeKey``: a wrong or missing one is 401. Then, per source: a request from an origin the source does not
allow is 403 without CORS grant, and one over the source's rate limit is 429 with ``Retry-After`` (both counted per
source). Each request's events go to every enabled integration of the source, as ``signal.ingest`` tasks; the answer
is 200 only once they are on the broker (503 when they could not be published: the client retries).

CORS: ``workers.web.cors`` (these routes only).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials
from starlette.requests import HTTPConnection

from workers import clock, collect, sources
from workers.web import cors
from workers.web.common import BROKER_UNAVAILABLE, ApiError, State, json_response, read_body, state

log = logging.getLogger(__name__)

class _WriteKeyBasic(HTTPBasic):
    """HTTP Basic for the write key: absent is None (the key may be elsewhere), malformed is a wrong key (401)."""

    async def __call__(self, request: HTTPConnection) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            raise _write_key_error() from None


_basic = _WriteKeyBasic(auto_error=False, scheme_name="writeKey",
                        description="A source's write key as the Basic username, empty password")

# path -> the call type it takes (None: a batch)
SHORT_PATHS: dict[str, str | None] = {"t": "track", "p": "page", "i": "identify", "g": "group", "a": "alias",
                                      "s": "screen", "b": None}
BEACON_PATH = "/beacon/v1/batch"
METRICS_PATH = "/v1/m"

_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "messageId": {"type": "string"}, "anonymousId": {"type": "string"}, "userId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"}, "sentAt": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "context": {"type": "object"}, "properties": {"type": "object"}, "traits": {"type": "object"},
        "event": {"type": "string"}, "name": {"type": "string"}, "groupId": {"type": "string"},
        "previousId": {"type": "string"}, "writeKey": {"type": "string"},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    content = {"schema": schema}
    return {"requestBody": {"required": True, "content": {"application/json": content, "text/plain": content}}}


CALL_BODY = _body(_CALL_SCHEMA)
BATCH_BODY = _body({
    "type": "object",
    "required": ["batch"],
    "properties": {
        "batch": {"type": "array", "items": {**_CALL_SCHEMA, "properties": {
            **_CALL_SCHEMA["properties"], "type": {"type": "string", "enum": list(collect.EVENT_TYPES)}}}},
        "context": {"type": "object"},
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
    },
})
WriteKeyQuery = Query(None, alias="writeKey", max_length=500,
                      description="the write key, for clients that cannot set headers (beacons)")


def _write_key_error() -> ApiError:
    error = ApiError(401, "unauthorized", "a valid write key is required (HTTP Basic username with an empty "
                     "password, the writeKey query parameter, or writeKey in the body)", success=False)
    error.headers["WWW-Authenticate"] = 'Basic realm="signal"'
    return error


async def _source_of(st: State, write_key: str | None) -> str:
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


async def _route_of(st: State, source_id: str) -> sources.Route:
    found = st.routes.get(source_id)
    if found is None:
        try:
            found = await asyncio.to_thread(sources.route, st.r, source_id, st.settings)
        except sources.UnknownSource:
            raise _write_key_error() from None
        st.routes.put(source_id, found)
    return found  # type: ignore[no-any-return]


async def _admit(st: State, route: sources.Route, events: int) -> None:
    """Refuse (429, counted) a request over its source's rate limit; a request normally asks no Redis."""
    decision = st.limiter.admit_local(route.source_id, events, route.rate_limit_eps)
    if decision is None:
        decision = await asyncio.to_thread(st.limiter.take, route.source_id, events, route.rate_limit_eps)
    if decision.allowed:
        return
    st.refuse(route.source_id, sources.RATE_LIMITED, events)
    error = ApiError(429, "rate_limited", f"this source is over its rate limit of {route.rate_limit_eps} events per "
                     f"second; retry after {decision.retry_after_header} s", success=False)
    error.headers["Retry-After"] = decision.retry_after_header
    raise error


async def _handle(request: Request, credentials: HTTPBasicCredentials | None, query_key: str | None,
                  event_type: str | None) -> JSONResponse:
    st = state(request)
    header_key = credentials.username if credentials is not None else None
    source_id = await _source_of(st, header_key or query_key) if header_key or query_key else None
    document = collect.parse_json(await read_body(request, max_bytes=st.settings.api_max_body_bytes))
    if source_id is None:
        source_id = await _source_of(st, collect.body_write_key(document))
    route = await _route_of(st, source_id)
    origin = request.headers.get("origin")
    if origin is not None and not route.origins.allows(origin):
        cors.deny(request)
        st.refuse(source_id, sources.ORIGIN_NOT_ALLOWED, 0)
        raise ApiError(403, "origin_not_allowed", f"this source does not accept events from {origin[:200]}; add it "
                       "to the source's allowed_origins", success=False)
    calls = collect.read_calls(document, event_type, event_max_bytes=st.settings.event_max_bytes)
    await _admit(st, route, len(calls.messages))
    client = request.client
    events = collect.envelopes(
        calls, source_id=source_id, received_at=clock.iso(clock.now()), event_type=event_type,
        client_ip=collect.client_ip(client.host if client else None, request.headers.get("x-forwarded-for"),
                                    st.settings.trusted_proxies),
        user_agent=request.headers.get("user-agent"))
    if events and route.integration_ids:
        batcher = st.batcher()
        try:
            await asyncio.gather(*(batcher.submit(iid, events) for iid in route.integration_ids))
        except Exception as exc:  # noqa: BLE001 - the broker could not take the events: the client retries
            log.error("could not publish %d events of source=%s: %s", len(events), source_id, type(exc).__name__)
            error = ApiError(503, "broker_unavailable", BROKER_UNAVAILABLE, success=False)
            error.headers["Retry-After"] = "5"
            raise error from None
    return json_response(200, {"success": True})


def router() -> APIRouter:
    out = APIRouter(tags=["collect"], route_class=cors.CorsRoute)

    def collect_route(path: str, event_type: str | None, *, in_schema: bool = True) -> None:
        async def call(request: Request, credentials: HTTPBasicCredentials | None = Security(_basic),
                       write_key: str | None = WriteKeyQuery) -> JSONResponse:
            return await _handle(request, credentials, write_key, event_type)

        out.add_api_route(path, call, methods=["POST"], name=path, include_in_schema=in_schema,
                          openapi_extra=BATCH_BODY if event_type is None else CALL_BODY)
        out.add_api_route(path, cors.preflight, methods=["OPTIONS"], include_in_schema=False)

    collect_route("/v1/batch", None)
    for event_type in collect.EVENT_TYPES:
        collect_route(f"/v1/{event_type}", event_type)
    for short, event_type in SHORT_PATHS.items():
        collect_route(f"/v1/{short}", event_type, in_schema=False)
    collect_route(BEACON_PATH, None, in_schema=False)

    @out.post(METRICS_PATH, include_in_schema=False)
    async def sdk_metrics() -> JSONResponse:
        """analytics.js' own metrics: accepted and dropped (nothing of the site's events is in them)."""
        return json_response(200, {"success": True})

    out.add_api_route(METRICS_PATH, cors.preflight, methods=["OPTIONS"], include_in_schema=False)
    return out
