"""CORS for the collection routes only (never the admin API, /metrics or the console).

Websites send events from the visitor's browser to another origin. A preflight (OPTIONS) carries no credentials, so
it cannot name a source: it is granted to any origin, for POST with whatever request headers it asks for (the SDKs
send ``Authorization``, ``Content-Type`` and their own, e.g. RudderStack's ``AnonymousId`` and ``SentAt``), cached by
the browser for ``MAX_AGE_S``. The POST itself is checked against its source's allowed origins: a refused one answers
403 *without* any CORS grant. Every other answer of a collection route (200, 400, 401, 413, 429, 503) grants the
request's origin, and exposes ``Retry-After`` so an SDK can honour a 429. No credentials (cookies) are ever allowed.

``CorsRoute`` is the route class of the collection router: it renders errors with the app's handlers and adds the
grant, so errors carry it too. A handler refuses the grant with ``deny(request)``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

ALLOW_METHODS = "POST, OPTIONS"
DEFAULT_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, AnonymousId, SentAt, X-Retry-Count"
EXPOSE_HEADERS = "Retry-After"
MAX_AGE_S = 86400  # browsers cap it (Chromium at 2 hours)
_HEADER_LIST_MAX_CHARS = 2000


def deny(request: Request) -> None:
    """This answer grants no CORS: the browser will not let the page read it."""
    request.state.cors_denied = True


def grant(request: Request, response: Response) -> None:
    origin = request.headers.get("origin")
    if origin is None or getattr(request.state, "cors_denied", False):
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    response.headers.setdefault("Vary", "Origin")


def preflight(request: Request) -> Response:
    """The answer to a CORS preflight of a collection route: 204, any origin, POST, the asked-for headers."""
    asked = request.headers.get("access-control-request-headers", "")
    allowed = asked if asked and len(asked) <= _HEADER_LIST_MAX_CHARS and all(
        c.isalnum() or c in "-_, " for c in asked) else DEFAULT_ALLOW_HEADERS
    return Response(status_code=204, headers={
        "Access-Control-Allow-Methods": ALLOW_METHODS,
        "Access-Control-Allow-Headers": allowed,
        "Access-Control-Max-Age": str(MAX_AGE_S),
        "Vary": "Origin, Access-Control-Request-Headers",
    })


async def _render(request: Request, exc: Exception) -> Response:
    """The app's own answer to ``exc`` (its exception handlers, most specific class first)."""
    handlers = request.app.exception_handlers
    for cls in type(exc).__mro__:
        handler = handlers.get(cls)
        if handler is not None:
            return await handler(request, exc)  # type: ignore[no-any-return]
    raise exc


class CorsRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                response = await original(request)
            except Exception as exc:  # noqa: BLE001 - rendered by the app's handlers, then granted
                response = await _render(request, exc)
            grant(request, response)
            return response

        return handler
