"""CORS for the collection routes only (never the admin API, /metrics or the console).

Websites send events from the visitor's browser to another origin. A preflight (OPTIONS) carries no credentials, so
it cannot name a source: it is granted to any origin, for POST with whatever request headers it asks for (the SDKs
send ``Authorization``, ``Content-Type`` and their own, e.g. RudderStack's ``AnonymousId`` and ``SentAt``), cached by
the browser for ``MAX_AGE_S``. The POST itself is checked against its source's allowed origins: a refused one answers
403 *without* any CORS grant. Every other answer of a collection route (200, 400, 401, 413, 422, 429, 503) grants the
request's origin, and exposes ``Retry-After`` so an SDK can honour a 429. No credentials (cookies) are ever allowed.

Plain functions over ASGI header lists (``[(name, value)]``, lowercase byte names): the collection endpoint
(``workers.web.collection``) adds them to its answers.
"""

from __future__ import annotations

ALLOW_METHODS = "POST, OPTIONS"
DEFAULT_ALLOW_HEADERS = "Authorization, Content-Type, Content-Encoding, AnonymousId, SentAt, X-Retry-Count"
EXPOSE_HEADERS = "Retry-After"
MAX_AGE_S = 86400  # browsers cap it (Chromium at 2 hours)
_HEADER_LIST_MAX_CHARS = 2000

Headers = list[tuple[bytes, bytes]]


def grant(origin: bytes | None) -> Headers:
    """The headers that let the page at ``origin`` read an answer (none without an Origin header)."""
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin),
        (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
        (b"vary", b"Origin"),
    ]


def preflight(origin: bytes | None, asked: bytes | None) -> Headers:
    """The headers of the 204 answering a CORS preflight: any origin, POST, the asked-for request headers."""
    text = asked.decode("latin-1") if asked else ""
    allowed = (
        text
        if text and len(text) <= _HEADER_LIST_MAX_CHARS and all(c.isalnum() or c in "-_, " for c in text)
        else DEFAULT_ALLOW_HEADERS
    )
    headers = [
        (b"access-control-allow-methods", ALLOW_METHODS.encode()),
        (b"access-control-allow-headers", allowed.encode("latin-1")),
        (b"access-control-max-age", str(MAX_AGE_S).encode()),
        (b"vary", b"Origin, Access-Control-Request-Headers"),
    ]
    if origin is not None:
        headers += [
            (b"access-control-allow-origin", origin),
            (b"access-control-expose-headers", EXPOSE_HEADERS.encode()),
        ]
    return headers
