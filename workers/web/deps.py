"""What the routes of the HTTP API depend on, declared once: the admin token check and reading request bodies with
their limits (a body is refused, 413, as soon as it exceeds the limit, compressed or decompressed; gzip bodies are
decompressed up to the same limit).

Two powers, never interchangeable: the admin token (``SIGNAL_ADMIN_TOKEN``, ``Authorization: Bearer``) for
``/v1/admin/...``, ``/metrics`` and ``/openapi.json`` (without the setting those routes answer 503; a missing or wrong
token 401), and a source's write key for the collection routes.

Wrong admin tokens are counted per client address in the one count the console's sign-in keeps
(``workers.web.session``): once an address is locked, every admin route answers it 429 with ``Retry-After``, even
with the right token, until the window ends.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from workers.events import segment
from workers.settings import Settings
from workers.web import session
from workers.web.client import client_ip
from workers.web.errors import ApiError
from workers.web.state import state

log = logging.getLogger(__name__)

ID_MAX_CHARS = 200
JSON_MAX_DEPTH = 1024  # orjson's own limit on nested arrays and objects


admin_bearer = HTTPBearer(
    auto_error=False, scheme_name="adminToken", description="SIGNAL_ADMIN_TOKEN, as Authorization: Bearer <token>"
)


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


def client_address(request: Request) -> str:
    """The address a request comes from, read as collection reads it (``SIGNAL_TRUSTED_PROXIES`` honoured)."""
    peer = request.client.host if request.client else None
    found = client_ip(peer, request.headers.get("x-forwarded-for"), state(request).settings.trusted_proxies)
    return found or "unknown"


def locked_out(wait_s: int) -> ApiError:
    error = ApiError(
        429,
        "too_many_failures",
        f"too many wrong admin tokens from this address; retry after {wait_s} s",
    )
    error.headers["Retry-After"] = str(wait_s)
    return error


def check_admin_token(request: Request, given: str | None) -> None:
    """Raises unless ``given`` (a Bearer token, None when none was sent) is the admin token and the client's address
    is not locked out. A wrong token counts against the address; a missing one does not."""
    st = state(request)
    if not admin_enabled(st.settings):
        raise ApiError(503, "admin_disabled", ADMIN_DISABLED)
    client = client_address(request)
    wait_s = session.locked_out_s(st.r, st.settings, client)
    if wait_s:
        raise locked_out(wait_s)
    if given is not None and admin_token_matches(st.settings, given):
        return
    if given is not None:
        session.record_failure(st.r, st.settings, client)
        log.warning("wrong admin token from %s on %s", client, request.url.path)
    error = ApiError(401, "unauthorized", "a valid admin token is required (Authorization: Bearer <token>)")
    error.headers["WWW-Authenticate"] = "Bearer"
    raise error


def require_admin(request: Request, credentials: HTTPAuthorizationCredentials | None = Security(admin_bearer)) -> None:
    check_admin_token(request, credentials.credentials if credentials is not None else None)


async def read_body(request: Request, *, max_bytes: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds ``max_bytes``, compressed or decompressed."""
    return await collect_body(
        request.stream(),
        request.headers.get("content-encoding"),
        request.headers.get("content-length"),
        max_bytes=max_bytes,
    )


async def collect_body(
    chunks: AsyncIterator[bytes], content_encoding: str | None, content_length: str | None, *, max_bytes: int
) -> bytes:
    """A body from its chunks and its Content-Encoding and Content-Length headers: 415 for an encoding other than
    gzip, 413 as soon as it exceeds ``max_bytes`` (announced, received or decompressed)."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding not in ("", "identity", "gzip"):
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be gzip or absent")
    too_large = segment.MalformedRequest(
        "body_too_large", f"the request body is over the limit of {max_bytes} bytes", status=413
    )
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


def parse_json(body: bytes) -> Any:
    """A request body as JSON (``segment.parse_json``), with JSON nested too deep told apart from JSON that is not
    valid."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if exc.msg.startswith("depth limit"):
            raise segment.MalformedRequest(
                "json_too_deep", f"the JSON is nested deeper than {JSON_MAX_DEPTH} levels"
            ) from None
    return segment.parse_json(body)  # the reason it is refused (empty, not valid JSON)


async def read_json(request: Request, *, optional: bool = False) -> Any:
    body = await read_body(request, max_bytes=state(request).settings.api_max_body_bytes)
    if optional and not body.strip():
        return {}
    try:
        return parse_json(body)
    except segment.MalformedRequest as exc:
        raise ApiError(400, exc.reason, exc.message) from None
