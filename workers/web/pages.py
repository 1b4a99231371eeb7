"""How the console answers: Jinja2 pages with security headers, the sign-in check, form posts, errors as pages.

Every console route uses ``ConsoleRoute``: whatever the handler returns or raises becomes a page (or a redirect to
the sign-in page) carrying the security headers, a Content-Security-Policy that allows only the console's own
script and stylesheet (no inline script, no inline event handler, no frame). Templates are autoescaped: anything a
user or a website sent is shown as text.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from workers import crypto
from workers.errors import NotFound, Refused
from workers.integrations import catalog, registry, sources
from workers.web import forms, session
from workers.web.deps import CONSOLE_DISABLED, admin_enabled, read_body
from workers.web.errors import ApiError
from workers.web.state import state

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
FORM_MAX_BYTES = 64 * 1024
# Sent by console.js when it refreshes part of a page: answered 401 instead of a redirect to the sign-in page.
FRAGMENT_HEADER = "x-console-fragment"


class SignInRequired(Refused):
    pass


class ConsoleDisabled(Refused):
    pass


class Forbidden(Refused):
    pass


class PageNotFound(NotFound):
    pass


# -- templates ------------------------------------------------------------------------------------------------------


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def when(value: str | None) -> str:
    """An ISO time as ``YYYY-MM-DD HH:MM:SS UTC``."""
    return _parse_iso(value).strftime("%Y-%m-%d %H:%M:%S UTC") if value else "\u2014"


def ago(value: str | None) -> str:
    """An ISO time as how long ago it was (``12 s ago``, ``3 min ago``)."""
    if not value:
        return "never"
    seconds = max(0, int(time.time() - _parse_iso(value).timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def human_bytes(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def plural(word: str, n: int | None, many: str | None = None) -> str:
    """``word`` for one, its plural (``many``, or ``word`` + s) for any other count."""
    return word if n == 1 else (many or word + "s")


def variant_name(variant_id: str) -> str:
    """A variant as the catalog names it (``NDJSON (gzip)``), else its id."""
    found = catalog.variant(variant_id)
    return found["name"] if found else variant_id


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=when,
        ago=ago,
        bytes=human_bytes,
        plural=plural,
        number=lambda n: f"{int(n or 0):,}",
        variant_name=variant_name,
    )
    return env


TEMPLATES = _environment()


def render(request: Request, template: str, *, status_code: int = 200, nav: str = "", **context: Any) -> Response:
    """A whole page. Signed-in pages get the CSRF token for their forms and the flash an action left for them."""
    st = state(request)
    signed = getattr(request.state, "session", None)
    flash = session.read_flash(request, st.settings) if signed is not None else None
    html = TEMPLATES.get_template(template).render(
        request=request,
        nav=nav,
        signed_in=signed is not None,
        csrf=signed.csrf if signed else "",
        flash=flash,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})
    if flash is not None:
        session.clear_cookie(response, request, session.FLASH_COOKIE)
    return response


def fragment(request: Request, template: str, **context: Any) -> Response:
    """A part of a page, refreshed in place by console.js."""
    html = TEMPLATES.get_template(template).render(request=request, **context)
    return HTMLResponse(html, headers={"Cache-Control": "no-store"})


def redirect(request: Request, url: str, flash: dict[str, Any] | None = None) -> Response:
    """303 to ``url`` (a console path), leaving ``flash`` for the page it lands on."""
    response = RedirectResponse(url, status_code=303)
    if flash is not None:
        session.set_flash(response, request, state(request).settings, flash)
    return response


def message_page(request: Request, status_code: int, title: str, message: str) -> Response:
    return render(request, "message.html", status_code=status_code, title=title, message=message)


# -- dependencies -----------------------------------------------------------------------------------------------


def signed_in(request: Request) -> session.Session:
    """The request's console session; raises ``SignInRequired`` (or ``ConsoleDisabled`` without an admin token)."""
    st = state(request)
    if not admin_enabled(st.settings):
        raise ConsoleDisabled()
    found = session.load(st.settings, st.r, request.cookies.get(session.COOKIE), int(time.time()))
    if found is None:
        raise SignInRequired()
    request.state.session = found
    return found


async def read_form(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise Forbidden("the console accepts forms only (application/x-www-form-urlencoded)")
    try:
        return forms.parse(await read_body(request, max_bytes=FORM_MAX_BYTES))
    except ValueError:  # more fields than any console form has
        raise Forbidden("the form has too many fields; nothing was changed") from None


async def posted(request: Request, current: session.Session = Depends(signed_in)) -> dict[str, str]:
    """The submitted form of a state-changing request, refused unless it comes from the console itself: the
    browser's Origin / Sec-Fetch-Site say so (when sent) and it carries the session's CSRF token."""
    if not session.same_origin(request):
        raise Forbidden("a form posted from another site was refused; nothing was changed")
    form = await read_form(request)
    if not session.csrf_matches(current, form.get("csrf_token", "")):
        raise Forbidden(
            "the form's security token is missing or expired: reload the page and try again (nothing was changed)"
        )
    return form


def local_path(value: str | None, default: str = "/integrations") -> str:
    """``value`` when it is a path of this site (never another host), else ``default``."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


# -- errors as pages --------------------------------------------------------------------------------------------


def error_response(request: Request, exc: Exception) -> Response:
    if isinstance(exc, SignInRequired):
        if request.headers.get(FRAGMENT_HEADER):
            return Response("sign in again", status_code=401, media_type="text/plain")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            target = "/integrations"
        return RedirectResponse(f"/signin?next={quote(target, safe='/')}", status_code=303)
    if isinstance(exc, ConsoleDisabled):
        return message_page(request, 503, "Console disabled", CONSOLE_DISABLED)
    if isinstance(exc, Forbidden):
        return message_page(request, 403, "Refused", str(exc))
    if isinstance(exc, registry.UnknownIntegration | sources.UnknownSource | PageNotFound):
        return message_page(request, 404, "Not found", str(exc))
    if isinstance(exc, RequestValidationError):
        return message_page(request, 404, "Not found", "this address is not a page of the console")
    if isinstance(exc, ApiError):
        return message_page(request, exc.status, "Refused", exc.body["message"])
    if isinstance(exc, StarletteHTTPException):
        return message_page(request, exc.status_code, "Refused", str(exc.detail))
    if isinstance(exc, redis.RedisError):
        log.error("redis error: %s", type(exc).__name__)
        return message_page(request, 503, "Unavailable", "Redis is unavailable; try again")
    if isinstance(exc, crypto.SecretKeyMissing | crypto.SecretKeyInvalid | crypto.SecretKeyMismatch):
        return message_page(request, 503, "Unavailable", str(exc))
    log.error("unexpected %s while serving a console page", type(exc).__name__)
    return message_page(request, 500, "Something went wrong", "internal error; see the API's log")


class ConsoleRoute(APIRoute):
    """Turns every outcome of a console route into a page with the security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a page, never a stack trace
                try:
                    response = error_response(request, exc)
                except Exception as again:  # noqa: BLE001 - e.g. the flash of a broken key: a bare page
                    log.error("could not render the error page: %s", type(again).__name__)
                    response = HTMLResponse(
                        "<!doctype html><title>Error</title><p>internal error; see the log", status_code=500
                    )
            response.headers.update(SECURITY_HEADERS)
            return response

        return route


class Static(StaticFiles):
    """The console's stylesheet and script, with the same security headers as its pages."""

    def __init__(self) -> None:
        super().__init__(directory=HERE / "static")

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response
