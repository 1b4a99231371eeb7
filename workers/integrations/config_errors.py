"""How a pydantic validation error of a config becomes one message per wrong field, in our own words."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from workers.integrations.checks import ALLOWED


def join(field_prefix: str, name: str) -> str:
    return f"{field_prefix}.{name}" if field_prefix else name


def _message(field: str, error: Any, known: tuple[str, ...]) -> str:
    kind = error["type"]
    if kind == "signal_config":
        return str(error["msg"])
    if kind == "missing":
        return f"{field} is required"
    if kind == "extra_forbidden":
        if field == "bucket_name":
            return "give the bucket name as bucket or bucket_name, not both"
        allowed = ", ".join(known)
        return f"{field} is not a known setting; allowed settings are {allowed}"
    return ALLOWED.get(field, f"{field} is not valid")


def errors_from(exc: ValidationError, *, known: tuple[str, ...], field_prefix: str = "config") -> list[dict[str, str]]:
    """One ``{"field", "message"}`` per wrong field of a pydantic error, in the order pydantic reported them.

    Built only from our own wording, never from pydantic's messages, which may echo the input (a secret).
    """
    by_field: dict[str, str] = {}
    for error in exc.errors(include_input=False, include_url=False):
        loc = error["loc"]
        name = str(loc[0]) if loc else "config"
        if name not in by_field:
            by_field[name] = _message(name, error, known)
    return [{"field": join(field_prefix, name), "message": msg} for name, msg in by_field.items()]
