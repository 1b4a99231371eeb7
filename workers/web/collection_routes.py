"""The collection routes as FastAPI declares them: for the OpenAPI document (their bodies and their write key), and
for the 405 every other method gets. ``workers.web.collection.Endpoint`` serves their POST and OPTIONS before FastAPI
sees them, so no handler here is ever reached."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Security
from fastapi.security import HTTPBasic, HTTPBasicCredentials

from workers.events.envelope import EVENT_TYPES
from workers.web.collection import METRICS_PATH, PATHS, WRITE_KEY_QUERY_MAX_CHARS

_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "messageId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "userId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "context": {"type": "object"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "event": {"type": "string"},
        "name": {"type": "string"},
        "groupId": {"type": "string"},
        "previousId": {"type": "string"},
        "writeKey": {"type": "string"},
    },
}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    content = {"schema": schema}
    return {"requestBody": {"required": True, "content": {"application/json": content, "text/plain": content}}}


CALL_BODY = _body(_CALL_SCHEMA)
BATCH_BODY = _body(
    {
        "type": "object",
        "required": ["batch"],
        "properties": {
            "batch": {
                "type": "array",
                "items": {
                    **_CALL_SCHEMA,
                    "properties": {**_CALL_SCHEMA["properties"], "type": {"type": "string", "enum": list(EVENT_TYPES)}},
                },
            },
            "context": {"type": "object"},
            "sentAt": {"type": "string", "format": "date-time"},
            "writeKey": {"type": "string"},
        },
    }
)


ANSWER = (
    'Answers {"success": true} once the events are on the broker; an error is {"success": false, "error", '
    '"message"}. The body is JSON whatever the Content-Type says, optionally gzip.'
)
_basic = HTTPBasic(
    auto_error=False, scheme_name="writeKey", description="A source's write key as the Basic username, empty password"
)
WriteKeyQuery = Query(
    None,
    alias="writeKey",
    max_length=WRITE_KEY_QUERY_MAX_CHARS,
    description="the write key, for clients that cannot set headers (beacons)",
)


async def _served_by_endpoint(
    credentials: HTTPBasicCredentials | None = Security(_basic), write_key: str | None = WriteKeyQuery
) -> None:
    # declares a collection route's parameters (no docstring: it would become the OpenAPI description)
    raise RuntimeError("collection requests are served by workers.web.collection.Endpoint")


async def _metrics() -> None:
    """analytics.js' own metrics: accepted and dropped (nothing of the site's events is in them)."""
    raise RuntimeError("collection requests are served by workers.web.collection.Endpoint")


def _declared() -> APIRouter:
    """The collection routes as FastAPI knows them (``Endpoint`` serves them): for the OpenAPI document and the 405
    answers to other methods."""
    out = APIRouter(tags=["collect"])
    for path, event_type in PATHS.items():
        in_schema = path == "/v1/batch" or path.removeprefix("/v1/") in EVENT_TYPES
        out.add_api_route(
            path,
            _served_by_endpoint,
            methods=["POST"],
            name=path,
            summary=f"Collect one {event_type} call" if event_type else "Collect a batch of calls",
            description=ANSWER,
            include_in_schema=in_schema,
            openapi_extra=BATCH_BODY if event_type is None else CALL_BODY,
        )
    out.add_api_route(METRICS_PATH, _metrics, methods=["POST"], include_in_schema=False)
    return out


router = _declared()
