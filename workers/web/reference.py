"""The API's reference, served by the API itself and fetching nothing from anywhere else: the OpenAPI document at
``/openapi.json`` (for the admin token or a console session, with the console's security headers) and the rows of
the console's API page (``/api``, a route of ``workers.web.console``), read from the same document.

FastAPI's own ``/docs`` and ``/redoc`` are switched off (``workers.web.app``): they load Swagger UI and ReDoc from a
CDN.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Depends, Request, Security
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials

from workers.web import session
from workers.web.deps import admin_bearer, admin_enabled, check_admin_token
from workers.web.errors import ApiError, json_response
from workers.web.pages import SECURITY_HEADERS
from workers.web.state import state

OPENAPI_PATH = "/openapi.json"
METHODS = ("get", "post", "put", "patch", "delete")
FIELD_MAX_DEPTH = 3  # config.server_side_encryption, blueprint.consent.require
ALLOWED_SHOWN = 12  # a longer enum (the regions) is summarised
AUTH = {"adminToken": "Admin token (Authorization: Bearer)", "writeKey": "A source's write key"}
GROUPS = (("admin", "Admin API"), ("collect", "Collection"))


@dataclass(frozen=True)
class Row:
    """One parameter or one body field, as the API page shows it."""

    name: str
    type: str
    required: bool
    description: str
    where: str = ""  # path or query, for a parameter
    allowed: str = ""


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    summary: str
    description: str
    auth: str
    parameters: tuple[Row, ...]
    body: tuple[Row, ...]

    @property
    def anchor(self) -> str:
        slug = "".join(c if c.isalnum() else "-" for c in self.path.strip("/"))
        return f"op-{self.method.lower()}-{slug}".replace("--", "-").rstrip("-")


# -- the document --------------------------------------------------------------------------------------------------


class SecuredJsonRoute(APIRoute):
    """A JSON route with the console's security headers on every answer, its refusals included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                response = await handler(request)
            except ApiError as exc:
                response = json_response(exc.status, exc.body, exc.headers)
            response.headers.update(SECURITY_HEADERS)
            return response

        return route


def admin_or_console(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Security(admin_bearer)
) -> None:
    """A signed-in console session, else the admin token (throttled like every admin route)."""
    st = state(request)
    cookie = request.cookies.get(session.COOKIE)
    if credentials is None and cookie and admin_enabled(st.settings):
        if session.load(st.settings, st.r, cookie, int(time.time())) is not None:
            return
    check_admin_token(request, credentials.credentials if credentials is not None else None)


router = APIRouter(route_class=SecuredJsonRoute, include_in_schema=False)


@router.get(OPENAPI_PATH, dependencies=[Depends(admin_or_console)])
def openapi_document(request: Request) -> JSONResponse:
    return JSONResponse(request.app.openapi(), headers={"Cache-Control": "no-store"})


# -- the API page --------------------------------------------------------------------------------------------------


def groups(document: dict[str, Any]) -> list[tuple[str, list[Operation]]]:
    """The operations of an OpenAPI document by tag (admin, then collection), in the document's order."""
    found = operations(document)
    return [(title, [op for tag, op in found if tag == wanted]) for wanted, title in GROUPS]


def operations(document: dict[str, Any]) -> list[tuple[str, Operation]]:
    """(tag, operation) of every operation of ``document``."""
    out = []
    for path, item in document.get("paths", {}).items():
        for method in METHODS:
            op = item.get(method)
            if op is None:
                continue
            schemes = [name for requirement in op.get("security", []) for name in requirement]
            out.append(
                (
                    (op.get("tags") or [""])[0],
                    Operation(
                        method=method.upper(),
                        path=path,
                        summary=op.get("summary", ""),
                        description=op.get("description", ""),
                        auth=", ".join(AUTH.get(s, s) for s in schemes) or "none",
                        parameters=tuple(_parameter(document, p) for p in op.get("parameters", [])),
                        body=tuple(_body_rows(document, op.get("requestBody"))),
                    ),
                )
            )
    return out


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    found: Any = document
    for part in ref[2:].split("/"):
        found = found.get(part, {}) if isinstance(found, dict) else {}
    return found if isinstance(found, dict) else {}


def _parameter(document: dict[str, Any], parameter: dict[str, Any]) -> Row:
    schema = _resolve(document, parameter.get("schema", {}))
    return Row(
        name=parameter["name"],
        where=parameter.get("in", ""),
        type=type_of(schema),
        required=bool(parameter.get("required")),
        description=_description(parameter.get("description") or schema.get("description", ""), schema),
        allowed=allowed_of(schema),
    )


def _body_rows(document: dict[str, Any], body: dict[str, Any] | None) -> list[Row]:
    if not body:
        return []
    content = body.get("content", {})
    media = content.get("application/json") or next(iter(content.values()), {})
    return _fields(document, _resolve(document, media.get("schema", {})), "", 1)


def _fields(document: dict[str, Any], schema: dict[str, Any], prefix: str, depth: int) -> list[Row]:
    """The fields of an object schema, nested ones named by their path (``config.bucket``, ``batch[].event``)."""
    rows = []
    required = set(schema.get("required", []))
    for name, raw in schema.get("properties", {}).items():
        field = _resolve(document, raw)
        path = prefix + name
        rows.append(
            Row(
                name=path,
                type=type_of(field),
                required=name in required,
                description=_description(field.get("description", ""), field),
                allowed=allowed_of(field),
            )
        )
        if depth >= FIELD_MAX_DEPTH:
            continue
        items = _resolve(document, field.get("items", {})) if "array" in _types(field) else {}
        if field.get("properties"):
            rows += _fields(document, field, path + ".", depth + 1)
        elif items.get("properties"):
            rows += _fields(document, items, path + "[].", depth + 1)
    return rows


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, list):
        return [str(k) for k in kind]
    if isinstance(kind, str):
        return [kind]
    out = []
    for option in schema.get("anyOf", []) + schema.get("oneOf", []):
        out += _types(option) if isinstance(option, dict) else []
    return out


def type_of(schema: dict[str, Any]) -> str:
    """A schema's type as a person reads it: ``string``, ``array of string``, ``integer or null``."""
    names = []
    for kind in _types(schema) or ["any"]:
        if kind == "array":
            items = _types(schema.get("items", {})) or [
                t for option in schema.get("anyOf", []) for t in _types(option.get("items", {}))
            ]
            kind = f"array of {' or '.join(items)}" if items else "array"
        elif kind == "string" and schema.get("format"):
            kind = f"string ({schema['format']})"
        if kind not in names:
            names.append(kind)
    nullable = "null" in names
    names = [n for n in names if n != "null"] or ["null"]
    return " or ".join(names) + (" or null" if nullable and names != ["null"] else "")


def allowed_of(schema: dict[str, Any]) -> str:
    values = schema.get("enum")
    if not values:
        return ""
    shown = ", ".join(str(v) for v in values[:ALLOWED_SHOWN])
    return shown + (f", \u2026 ({len(values)} values)" if len(values) > ALLOWED_SHOWN else "")


def _description(text: str, schema: dict[str, Any]) -> str:
    limits = []
    for key, label in (("minimum", "at least"), ("exclusiveMinimum", "over"), ("maximum", "at most")):
        if isinstance(schema.get(key), int | float) and not isinstance(schema.get(key), bool):
            limits.append(f"{label} {schema[key]:g}")
    if isinstance(schema.get("maxLength"), int):
        limits.append(f"at most {schema['maxLength']} characters")
    if "default" in schema and schema["default"] is not None:
        limits.append(f"default {_text(schema['default'])}")
    extra = "; ".join(limits)
    if not extra:
        return text
    return f"{text.rstrip('.')} ({extra})" if text else extra[0].upper() + extra[1:]


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
