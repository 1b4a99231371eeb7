"""The console's sign-in: a signed session cookie, its CSRF token, sign-out, and the throttle on wrong admin tokens.

The cookie ``signal_session`` is ``<payload>.<signature>``, both base64url: the payload is JSON
``{"signed_in": true, "iat": <issue time, s>, "csrf": <random token>}``, the signature HMAC-SHA256 over it. It holds no
secret (the admin token never leaves the sign-in request); it is HttpOnly, SameSite=Strict, ``Secure`` when the
request came over https, and valid for ``SIGNAL_CONSOLE_SESSION_TTL_S``. The signing key is derived from the newest
``SIGNAL_SECRET_KEY`` and the admin token, so changing either signs everyone out. Signing out revokes the session in
Redis until it would have expired (a copied cookie stops working too).

Every state-changing request carries the session's CSRF token (a hidden form field) and, when the browser says where
it came from (``Origin``, ``Sec-Fetch-Site``), must come from the console's own origin.

Wrong admin tokens are counted per client address (``deps.client_address``, trusted proxies honoured) in one count
in Redis, so every API process shares it: a failed sign-in and a wrong Bearer token on an admin route
(``workers.web.deps``) both add to it. After ``SIGNAL_CONSOLE_SIGNIN_MAX_FAILURES`` within
``SIGNAL_CONSOLE_SIGNIN_WINDOW_S`` the address is refused (429) by the sign-in and by the admin API until the window
ends, even with the right token. A successful sign-in clears the count.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
import redis
from fastapi import Request
from fastapi.responses import Response

from workers import crypto
from workers.settings import Settings
from workers.store import keys

COOKIE = "signal_session"
FLASH_COOKIE = "signal_flash"
FLASH_TTL_S = 120
VERSION = 1
CLOCK_SKEW_S = 60
_KEY_LABEL = b"signal-console-session\x00"


@dataclass(frozen=True)
class Session:
    csrf: str
    issued_at_s: int

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.csrf.encode()).hexdigest()


def signing_key(settings: Settings) -> bytes:
    """HMAC key of the console's cookies: the newest SIGNAL_SECRET_KEY and the admin token, mixed by HMAC-SHA256."""
    secret_keys = settings.secret_keys
    if not secret_keys:
        raise crypto.SecretKeyMissing()
    token = settings.admin_token.get_secret_value() if settings.admin_token is not None else ""
    return hmac.new(secret_keys[0].encode(), _KEY_LABEL + token.encode(), hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(key: bytes, payload: dict[str, Any]) -> str:
    body = _b64(orjson.dumps(payload))
    return f"{body}.{_b64(hmac.new(key, body.encode(), hashlib.sha256).digest())}"


def decode(key: bytes, value: str) -> dict[str, Any] | None:
    """The payload of a value made by ``encode`` with ``key``; None when it was not, or was changed since."""
    body, _, signature = value.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not signature or not hmac.compare_digest(signature, expected):
        return None
    try:
        payload = orjson.loads(_unb64(body))
    except (ValueError, orjson.JSONDecodeError):
        return None
    return payload if isinstance(payload, dict) else None


# -- the session ------------------------------------------------------------------------------------------------


def issue(now_s: int) -> Session:
    return Session(csrf=secrets.token_urlsafe(32), issued_at_s=now_s)


def cookie_value(settings: Settings, session: Session) -> str:
    return encode(
        signing_key(settings), {"v": VERSION, "signed_in": True, "iat": session.issued_at_s, "csrf": session.csrf}
    )


def load(settings: Settings, r: redis.Redis, value: str | None, now_s: int) -> Session | None:
    """The session of a cookie value: signed with the current key, signed in, not expired, not signed out."""
    if not value:
        return None
    payload = decode(signing_key(settings), value)
    if payload is None or payload.get("v") != VERSION or payload.get("signed_in") is not True:
        return None
    iat, csrf = payload.get("iat"), payload.get("csrf")
    if not isinstance(iat, int) or not isinstance(csrf, str) or not csrf:
        return None
    if not -CLOCK_SKEW_S <= now_s - iat < settings.console_session_ttl_s:
        return None
    session = Session(csrf=csrf, issued_at_s=iat)
    if r.exists(keys.revoked_session(session.digest)):
        return None
    return session


def revoke(r: redis.Redis, settings: Settings, session: Session, now_s: int) -> None:
    """Sign a session out for good: remembered until it would have expired anyway."""
    remaining_s = session.issued_at_s + settings.console_session_ttl_s - now_s + CLOCK_SKEW_S
    r.set(keys.revoked_session(session.digest), 1, ex=max(1, remaining_s))


def csrf_matches(session: Session, given: str) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), given.encode())


def same_origin(request: Request) -> bool:
    """False when the browser says the request came from another origin (or another site)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return origin == f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"


# -- cookies ------------------------------------------------------------------------------------------------------


def set_cookie(response: Response, request: Request, name: str, value: str, max_age_s: int) -> None:
    response.set_cookie(
        name, value, max_age=max_age_s, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https")


def set_session(response: Response, request: Request, settings: Settings, session: Session) -> None:
    set_cookie(response, request, COOKIE, cookie_value(settings, session), settings.console_session_ttl_s)


def set_flash(response: Response, request: Request, settings: Settings, flash: dict[str, Any]) -> None:
    """A message for the next page (what an action did), signed like the session."""
    set_cookie(response, request, FLASH_COOKIE, encode(signing_key(settings), flash), FLASH_TTL_S)


def read_flash(request: Request, settings: Settings) -> dict[str, Any] | None:
    value = request.cookies.get(FLASH_COOKIE)
    return decode(signing_key(settings), value) if value else None


# -- wrong admin tokens ---------------------------------------------------------------------------------------------


def locked_out_s(r: redis.Redis, settings: Settings, client: str) -> int:
    """Seconds until ``client`` may present the admin token again (sign-in or API); 0 when it may now."""
    key = keys.signin_failures(client)
    pipe = r.pipeline(transaction=False)
    pipe.get(key)
    pipe.ttl(key)
    count, ttl = pipe.execute()
    if count is None or int(count) < settings.console_signin_max_failures:
        return 0
    return max(int(ttl), 1)


def record_failure(r: redis.Redis, settings: Settings, client: str) -> None:
    """One more wrong admin token from ``client`` (a failed sign-in or a wrong Bearer token)."""
    key = keys.signin_failures(client)
    pipe = r.pipeline(transaction=True)
    pipe.set(key, 0, ex=settings.console_signin_window_s, nx=True)  # the window starts at the first failure
    pipe.incr(key)
    pipe.execute()


def clear_failures(r: redis.Redis, client: str) -> None:
    r.delete(keys.signin_failures(client))
