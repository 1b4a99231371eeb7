"""Segment-compatible collection: ``/v1/batch``, ``/v1/track``, ``/v1/identify``, ``/v1/page``, ``/v1/screen``,
``/v1/group``, ``/v1/alias``, authorised by a source's write key (HTTP Basic username, empty password).

Each request's events go to every enabled integration of the source, as ``signal.ingest`` tasks; the answer is 200
only once they are on the broker (503 when they could not be published: the client retries).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from workers import clock, collect, sources
from workers.web.common import BROKER_UNAVAILABLE, ApiError, State, json_response, read_body, state

log = logging.getLogger(__name__)

_basic = HTTPBasic(auto_error=False, scheme_name="writeKey",
                   description="A source's write key as the Basic username, empty password")

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


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


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


def _write_key_error() -> ApiError:
    error = ApiError(401, "unauthorized", "a valid write key is required (HTTP Basic username, empty password)",
                     success=False)
    error.headers["WWW-Authenticate"] = 'Basic realm="signal"'
    return error


async def _source_of(st: State, credentials: HTTPBasicCredentials | None) -> str:
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


async def _routes_of(st: State, source_id: str) -> list[str]:
    found = st.routes.get(source_id)
    if found is None:
        found = await asyncio.to_thread(sources.enabled_integrations, st.r, source_id)
        st.routes.put(source_id, found)
    return list(found)


async def _handle(request: Request, credentials: HTTPBasicCredentials | None, event_type: str | None
                  ) -> JSONResponse:
    st = state(request)
    source_id = await _source_of(st, credentials)
    document = collect.parse_json(await read_body(request, max_bytes=st.settings.api_max_body_bytes))
    calls = collect.read_calls(document, event_type, event_max_bytes=st.settings.event_max_bytes)
    events = collect.envelopes(calls, source_id=source_id, received_at=clock.iso(clock.now()), event_type=event_type)
    integration_ids = await _routes_of(st, source_id)
    if events and integration_ids:
        batcher = st.batcher()
        try:
            await asyncio.gather(*(batcher.submit(iid, events) for iid in integration_ids))
        except Exception as exc:  # noqa: BLE001 - the broker could not take the events: the client retries
            log.error("could not publish %d events of source=%s: %s", len(events), source_id, type(exc).__name__)
            error = ApiError(503, "broker_unavailable", BROKER_UNAVAILABLE, success=False)
            error.headers["Retry-After"] = "5"
            raise error from None
    return json_response(200, {"success": True})


def router() -> APIRouter:
    out = APIRouter(prefix="/v1", tags=["collect"])

    @out.post("/batch", openapi_extra=BATCH_BODY)
    async def batch(request: Request, credentials: HTTPBasicCredentials | None = Security(_basic)) -> JSONResponse:
        return await _handle(request, credentials, None)

    def single(event_type: str) -> None:
        async def call(request: Request, credentials: HTTPBasicCredentials | None = Security(_basic)
                       ) -> JSONResponse:
            return await _handle(request, credentials, event_type)

        out.add_api_route(f"/{event_type}", call, methods=["POST"], name=event_type, openapi_extra=CALL_BODY)

    for event_type in collect.EVENT_TYPES:
        single(event_type)
    return out
