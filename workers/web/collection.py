"""Event collection for websites and servers, in the shape of Segment's HTTP Tracking API and RudderStack's.

Paths: ``/v1/track|t``, ``/v1/page|p``, ``/v1/identify|i``, ``/v1/group|g``, ``/v1/alias|a``, ``/v1/screen|s``,
``/v1/batch|b`` (the short forms are analytics.js'), RudderStack's beacon ``/beacon/v1/batch``, and ``/v1/m``
(analytics.js' own metrics: answered, nothing stored). Bodies are JSON whatever the Content-Type says
(``application/json``, ``text/plain`` from analytics.js and beacons), optionally gzip.

The write key is the HTTP Basic username, else the ``writeKey`` query parameter (beacons cannot set headers), else the
body's ``writeKey``: a wrong or missing one is 401. Then, per source: a request from an origin the source does not allow
is 403 without CORS grant, and one over the source's rate limit is 429 with ``Retry-After`` (both counted per source).
Each request's events go to every enabled integration of the source: prepared here and published as ``signal.append``
through the micro-batcher (``workers.web.batcher``); the answer is 200 only once they are on the broker (503 when they
could not be published: the client retries).
Every answer is JSON with ``success``: ``{"success": true}``, or ``false`` with the ``error`` and ``message`` every
route's errors have (``workers.web.errors``).

``Endpoint`` serves POST and OPTIONS of these paths as a plain ASGI app, in front of FastAPI (``workers.web.app``): they
are most of the API's requests, and FastAPI's routing, dependency solving and request objects cost several times what
collecting an event does. ``router`` declares the same routes in FastAPI for the OpenAPI document and for every other
method (405; ``workers.web.collection_routes``). Errors are rendered by the app's exception handlers, so their bodies
are those of every other route. CORS: ``workers.web.cors`` (these routes only).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi.exceptions import RequestValidationError
from starlette.requests import ClientDisconnect, Request

from workers import clock
from workers.events import segment
from workers.events.envelope import EVENT_TYPES
from workers.integrations import sources
from workers.web import cors
from workers.web.client import client_ip
from workers.web.deps import collect_body, parse_json
from workers.web.errors import BROKER_UNAVAILABLE, COLLECTION_SCOPE_KEY, ApiError
from workers.web.state import State

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# path -> the call type it takes (None: a batch)
SHORT_PATHS: dict[str, str | None] = {
    "t": "track",
    "p": "page",
    "i": "identify",
    "g": "group",
    "a": "alias",
    "s": "screen",
    "b": None,
}
BEACON_PATH = "/beacon/v1/batch"
METRICS_PATH = "/v1/m"
# every collection path -> the call type it takes (None: a batch); METRICS_PATH is answered without reading
PATHS: dict[str, str | None] = {
    "/v1/batch": None,
    **{f"/v1/{t}": t for t in EVENT_TYPES},
    **{f"/v1/{short}": t for short, t in SHORT_PATHS.items()},
    BEACON_PATH: None,
}
WRITE_KEY_QUERY_MAX_CHARS = 500
CALL_MAX_DEPTH = 254  # orjson writes JSON at most this deep: a call nested deeper cannot be stored

_OK_BODY = b'{"success":true}'
_OK_HEADERS = [(b"content-length", str(len(_OK_BODY)).encode()), (b"content-type", b"application/json")]


def _write_key_error() -> ApiError:
    error = ApiError(
        401,
        "unauthorized",
        "a valid write key is required (HTTP Basic username with an empty "
        "password, the writeKey query parameter, or writeKey in the body)",
    )
    error.headers["WWW-Authenticate"] = 'Basic realm="signal"'
    return error


class _OriginNotAllowed(ApiError):
    """403 for an origin the source does not allow: answered without any CORS grant."""


def basic_username(authorization: bytes | None) -> str | None:
    """The username of an ``Authorization: Basic`` header, read as FastAPI's ``HTTPBasic`` reads it: None when there
    is no Basic header (the key may be elsewhere), 401 when it is malformed."""
    if not authorization:
        return None
    scheme, _, param = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        data = base64.b64decode(param.strip()).decode("ascii")
    except (ValueError, UnicodeDecodeError, binascii.Error):
        raise _write_key_error() from None
    username, separator, _ = data.partition(":")
    if not separator:
        raise _write_key_error()
    return username


def query_write_key(query_string: bytes) -> str | None:
    """The ``writeKey`` query parameter (the last one, as FastAPI reads a repeated parameter); 422 when too long."""
    if b"writeKey" not in query_string:
        return None
    found = None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "writeKey":
            found = value
    if found is not None and len(found) > WRITE_KEY_QUERY_MAX_CHARS:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("query", "writeKey"),
                    "input": None,
                    "msg": f"String should have at most {WRITE_KEY_QUERY_MAX_CHARS} characters",
                }
            ]
        )
    return found


async def _source_of(st: State, write_key: str | None) -> str:
    if not write_key:
        raise _write_key_error()
    digest = sources.write_key_digest(write_key)
    source_id = st.write_keys.get(digest)
    if source_id is None:
        source_id = await _lookup(st, ("write_key", digest), sources.source_for_write_key, st.r, write_key)
        if source_id is None:
            raise _write_key_error()
        st.write_keys.put(digest, source_id)
    return str(source_id)


async def _route_of(st: State, source_id: str) -> sources.Route:
    found = st.routes.get(source_id)
    if found is None:
        try:
            found = await _lookup(st, ("route", source_id), sources.route, st.r, source_id, st.settings)
        except sources.UnknownSource:
            raise _write_key_error() from None
        st.routes.put(source_id, found)
    return found  # type: ignore[no-any-return]


async def _lookup(st: State, key: tuple[str, str], function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` in a thread, once for every request of this event loop that asks for ``key`` meanwhile:
    when a cached entry expires under load, the requests waiting for it share one Redis lookup (its answer or its
    error) instead of each making its own."""
    loop = asyncio.get_running_loop()
    pending = st.lookups.get(key)
    if pending is None or pending.get_loop() is not loop:
        pending = st.lookups[key] = asyncio.ensure_future(asyncio.to_thread(function, *args))

        def forget(done: asyncio.Future[Any]) -> None:
            if st.lookups.get(key) is done:
                del st.lookups[key]

        pending.add_done_callback(forget)
    return await asyncio.shield(pending)


async def _admit(st: State, route: sources.Route, events: int) -> None:
    """Refuse (429, counted) a request over its source's rate limit; a request normally asks no Redis."""
    decision = st.limiter.admit_local(route.source_id, events, route.rate_limit_eps)
    if decision is None:
        decision = await asyncio.to_thread(st.limiter.take, route.source_id, events, route.rate_limit_eps)
    if decision.allowed:
        return
    st.refuse(route.source_id, sources.RATE_LIMITED, events)
    error = ApiError(
        429,
        "rate_limited",
        f"this source is over its rate limit of {route.rate_limit_eps} events per "
        f"second; retry after {decision.retry_after_header} s",
    )
    error.headers["Retry-After"] = decision.retry_after_header
    raise error


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body as it arrives (what Starlette's ``Request.stream`` yields)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def collect_request(
    st: State, scope: Scope, receive: Receive, headers: dict[bytes, bytes], event_type: str | None
) -> None:
    """Take one request's events: on the broker when this returns; raises what the client is answered otherwise."""
    header_key = basic_username(headers.get(b"authorization"))
    query_key = query_write_key(scope.get("query_string", b""))
    source_id = await _source_of(st, header_key or query_key) if header_key or query_key else None
    body = await collect_body(
        _chunks(receive),
        _text(headers.get(b"content-encoding")),
        _text(headers.get(b"content-length")),
        max_bytes=st.settings.api_max_body_bytes,
    )
    document = parse_json(body)
    if source_id is None:
        source_id = await _source_of(st, segment.body_write_key(document))
    route = await _route_of(st, source_id)
    origin = _text(headers.get(b"origin"))
    if origin is not None and not route.origins.allows(origin):
        st.refuse(source_id, sources.ORIGIN_NOT_ALLOWED, 0)
        raise _OriginNotAllowed(
            403,
            "origin_not_allowed",
            f"this source does not accept events from {origin[:200]}; add it to the source's allowed_origins",
        )
    try:
        calls = segment.read_calls(document, event_type, event_max_bytes=st.settings.event_max_bytes)
    except orjson.JSONEncodeError as exc:  # measuring a call's size writes it as JSON
        if "recursion" not in str(exc).lower():
            raise
        raise segment.MalformedRequest(
            "json_too_deep", f"a call is nested deeper than {CALL_MAX_DEPTH} levels"
        ) from None
    await _admit(st, route, len(calls.messages))
    client = scope.get("client")
    events = segment.envelopes(
        calls,
        source_id=source_id,
        received_at=clock.iso(clock.now()),
        event_type=event_type,
        client_ip=client_ip(
            client[0] if client else None, _text(headers.get(b"x-forwarded-for")), st.settings.trusted_proxies
        ),
        user_agent=_text(headers.get(b"user-agent")),
    )
    if events and route.integration_ids:
        batcher = st.batcher()
        try:
            if len(route.integration_ids) == 1:
                await batcher.submit(route.integration_ids[0], events)
            else:
                await asyncio.gather(*(batcher.submit(iid, events) for iid in route.integration_ids))
        except Exception as exc:  # noqa: BLE001 - the broker could not take the events: the client retries
            log.error("could not publish %d events of source=%s: %s", len(events), source_id, type(exc).__name__)
            error = ApiError(503, "broker_unavailable", BROKER_UNAVAILABLE)
            error.headers["Retry-After"] = "5"
            raise error from None


def _route_path(scope: Scope) -> str:
    """The path the routes are matched against: the request's, less the root path it was mounted at (as Starlette's
    router reads it)."""
    path: str = scope["path"]
    root = scope.get("root_path")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] == "/":
        return path[len(root) :]
    return path


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


class Endpoint:
    """POST and OPTIONS of the collection paths, as a plain ASGI app (``takes`` says which requests are its own)."""

    def __init__(self, st: State) -> None:
        self.st = st

    @staticmethod
    def takes(scope: Scope) -> bool:
        """Whether this request is one of ours: POST or OPTIONS of exactly a collection path (no trailing slash).
        Anything else goes to FastAPI."""
        path = _route_path(scope)
        return (path in PATHS or path == METRICS_PATH) and scope["method"] in ("POST", "OPTIONS")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(reversed(scope["headers"]))  # the first of a repeated header, as Starlette's Headers.get
        origin = headers.get(b"origin")
        if scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": cors.preflight(origin, headers.get(b"access-control-request-headers")),
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        path = _route_path(scope)
        try:
            if path != METRICS_PATH:
                await collect_request(self.st, scope, receive, headers, PATHS[path])
        except ClientDisconnect:
            return  # nobody to answer
        except Exception as exc:  # noqa: BLE001 - answered as every route answers it
            await self._answer_error(scope, receive, send, exc, origin)
            return
        await send({"type": "http.response.start", "status": 200, "headers": _OK_HEADERS + cors.grant(origin)})
        await send({"type": "http.response.body", "body": _OK_BODY})

    @staticmethod
    async def _answer_error(scope: Scope, receive: Receive, send: Send, exc: Exception, origin: bytes | None) -> None:
        """The app's own answer to ``exc`` (its exception handlers, most specific class first, with
        ``"success": false`` as every error of these routes), granted CORS unless the origin was refused."""
        scope[COLLECTION_SCOPE_KEY] = True
        request = Request(scope, receive)
        handlers = request.app.exception_handlers
        handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
        response = await handler(request, exc)
        if not isinstance(exc, _OriginNotAllowed):
            response.raw_headers.extend(cors.grant(origin))
        await response(scope, receive, send)
