"""Collection in the shape of Segment's HTTP Tracking API: request parsing and the camelCase -> canonical envelope
mapping (the routes are in ``workers.web.collection``, the micro-batcher in ``workers.web.batcher``).

Only malformed requests are refused here (not JSON, not an object, ``batch`` not a list, an event over
``event_max_bytes``, a body over the limit); each event's own validation is the envelope's
(``workers.events.prepared.prepare``), which rejects a bad event alone, with a reason, and counts it.

Mapping (Segment -> canonical; a canonical snake_case name is accepted when the camelCase one is absent):
  messageId -> event_id (a uuid4 when absent, so every integration stores the same id), type (the path's type for
  /v1/track etc.), anonymousId -> anonymous_id, userId -> user_id, groupId -> group_id, previousId -> previous_id,
  timestamp (else RudderStack's originalTimestamp, which then is not kept twice), sentAt -> sent_at (else the batch's
  sentAt), receivedAt -> received_at (else the time the API received the request), context (the batch's context
  merged under it; ``context.ip`` from the connection and ``context.userAgent`` from the User-Agent header when the
  client sent none, as Segment does), properties, traits, event, name. ``source_id`` is always the authenticated
  source; ``writeKey``, the SDKs' internal ``_metadata`` and any ``integration_id`` are dropped; other top-level
  fields are kept as they are.

The write key may also travel in the body (``writeKey``: analytics.js puts it in every call and in its batches);
``body_write_key`` finds it.
"""

from __future__ import annotations

import uuid
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from workers.errors import InvalidInput

# Segment name -> canonical name; both spellings of one field map to the same canonical field.
FIELD_MAP: dict[str, str] = {
    "messageId": "event_id",
    "type": "type",
    "anonymousId": "anonymous_id",
    "userId": "user_id",
    "groupId": "group_id",
    "previousId": "previous_id",
    "timestamp": "timestamp",
    "sentAt": "sent_at",
    "receivedAt": "received_at",
    "context": "context",
    "properties": "properties",
    "traits": "traits",
    "event": "event",
    "name": "name",
}
CANONICAL_FIELDS: frozenset[str] = frozenset(FIELD_MAP.values())
# Never taken from the client: stamped by the API (source_id) or by ingest (integration_id), or a credential.
DROPPED_FIELDS: frozenset[str] = frozenset(
    {"writeKey", "write_key", "integration_id", "integrationId", "source_id", "sourceId", "_metadata"}
)
ORIGINAL_TIMESTAMP = "originalTimestamp"  # RudderStack's client-side time of the call


class MalformedRequest(InvalidInput):
    """The request cannot be read as Segment calls; ``status`` is 400 or 413, ``reason`` a stable code."""

    def __init__(self, reason: str, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.status = status


# -- body ---------------------------------------------------------------------------------------------------------


def gunzip(data: bytes, *, max_bytes: int) -> bytes:
    """Decompress a gzip body, refusing (413) as soon as it would exceed ``max_bytes``: no gzip bomb is expanded."""
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = decompressor.decompress(data, max_bytes + 1)
        if len(out) > max_bytes or decompressor.unconsumed_tail:
            raise MalformedRequest(
                "body_too_large", f"the decompressed body is over the limit of {max_bytes} bytes", status=413
            )
        out += decompressor.flush()
    except zlib.error:
        raise MalformedRequest("invalid_gzip", "the body is not valid gzip (Content-Encoding: gzip)") from None
    if len(out) > max_bytes:
        raise MalformedRequest(
            "body_too_large", f"the decompressed body is over the limit of {max_bytes} bytes", status=413
        )
    if not decompressor.eof:
        raise MalformedRequest("invalid_gzip", "the gzip body is truncated")
    return out


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise MalformedRequest("empty_body", "the request body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise MalformedRequest("invalid_json", "the request body is not valid JSON") from None


@dataclass(frozen=True)
class Calls:
    """The calls of one request, with what a batch request says for all of them."""

    messages: list[Any]
    context: dict[str, Any] | None = None
    sent_at: Any = None


def read_calls(document: Any, event_type: str | None, *, event_max_bytes: int) -> Calls:
    """The calls of a request to ``/v1/<event_type>`` (None: ``/v1/batch``); each at most ``event_max_bytes``."""
    if not isinstance(document, dict):
        raise MalformedRequest("not_an_object", "the request body must be a JSON object")
    if event_type is None:
        messages = document.get("batch")
        if not isinstance(messages, list):
            raise MalformedRequest("invalid_batch", "batch must be a list of calls")
        context = document.get("context")
        calls = Calls(messages, context if isinstance(context, dict) else None, document.get("sentAt"))
    else:
        calls = Calls([document])
    for index, message in enumerate(calls.messages):
        size = len(orjson.dumps(message))
        if size > event_max_bytes:
            where = f"call {index} of the batch" if event_type is None else "the call"
            raise MalformedRequest(
                "event_too_large", f"{where} is {size} bytes, over the limit of {event_max_bytes} bytes per call"
            )
    return calls


# -- mapping ------------------------------------------------------------------------------------------------------


def to_envelope(
    message: Any,
    *,
    source_id: str,
    received_at: str,
    event_type: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: Any = None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> Any:
    """The canonical envelope of one Segment call; anything but an object is passed on for ingest to reject."""
    if not isinstance(message, dict):
        return message
    out: dict[str, Any] = {}
    for segment_name, canonical in FIELD_MAP.items():
        if segment_name in message:
            out[canonical] = message[segment_name]
        elif canonical in message:
            out[canonical] = message[canonical]
    for name, value in message.items():
        if name not in FIELD_MAP and name not in CANONICAL_FIELDS and name not in DROPPED_FIELDS:
            out[name] = value
    if out.get("timestamp") is None and out.get(ORIGINAL_TIMESTAMP) is not None:
        out["timestamp"] = out.pop(ORIGINAL_TIMESTAMP)
    if event_type is not None:
        out["type"] = event_type
    if out.get("event_id") is None:
        out["event_id"] = str(uuid.uuid4())
    if out.get("received_at") is None:
        out["received_at"] = received_at
    if out.get("sent_at") is None and batch_sent_at is not None:
        out["sent_at"] = batch_sent_at
    context = out.get("context")
    if batch_context:
        if context is None:
            context = out["context"] = dict(batch_context)
        elif isinstance(context, dict):
            context = out["context"] = {**batch_context, **context}
    if client_ip or user_agent:
        if context is None:
            context = out["context"] = {}
        if isinstance(context, dict):
            if client_ip and not context.get("ip"):
                context["ip"] = client_ip
            if user_agent and not context.get("userAgent"):
                context["userAgent"] = user_agent
    out["source_id"] = source_id
    return out


def envelopes(
    calls: Calls,
    *,
    source_id: str,
    received_at: str,
    event_type: str | None,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> list[Any]:
    return [
        to_envelope(
            m,
            source_id=source_id,
            received_at=received_at,
            event_type=event_type,
            batch_context=calls.context,
            batch_sent_at=calls.sent_at,
            client_ip=client_ip,
            user_agent=user_agent,
        )
        for m in calls.messages
    ]


def body_write_key(document: Any) -> str | None:
    """The write key a body carries: its own ``writeKey`` (a single call, or analytics.js' batch), else the first
    call's in a batch. None when there is none."""
    if not isinstance(document, dict):
        return None
    key = document.get("writeKey")
    if key is None and isinstance(document.get("batch"), list) and document["batch"]:
        first = document["batch"][0]
        key = first.get("writeKey") if isinstance(first, dict) else None
    return key if isinstance(key, str) and key else None
