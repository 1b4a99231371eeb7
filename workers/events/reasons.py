"""Why an event is rejected: ``Invalid`` with a stable reason code (a metric label) and a message naming what is
wrong, never a whole payload (values are shortened, ``short_value``)."""

from __future__ import annotations

from typing import Any

from workers.errors import InvalidInput

# Reasons: stable snake_case codes, used as metric labels.
NOT_AN_OBJECT = "not_an_object"
INVALID_TYPE = "invalid_type"
MISSING_EVENT = "missing_event"
MISSING_IDENTITY = "missing_identity"
INVALID_TIMESTAMP = "invalid_timestamp"
INVALID_FIELD = "invalid_field"
TOO_LARGE = "too_large"
NOT_SERIALIZABLE = "not_serializable"
REASONS: tuple[str, ...] = (
    NOT_AN_OBJECT,
    INVALID_TYPE,
    MISSING_EVENT,
    MISSING_IDENTITY,
    INVALID_TIMESTAMP,
    INVALID_FIELD,
    TOO_LARGE,
    NOT_SERIALIZABLE,
)
_DETAIL_VALUE_CHARS = 40


class Invalid(InvalidInput):
    """The event breaks a rule: ``reason`` is its stable code, ``detail`` says what is wrong."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__}"


def short(text: str) -> str:
    if len(text) <= _DETAIL_VALUE_CHARS * 2:
        return text
    return text[: _DETAIL_VALUE_CHARS * 2] + "..."


def short_value(value: Any) -> str:
    """A bounded repr for messages: never a whole payload."""
    if isinstance(value, str):
        text = value if len(value) <= _DETAIL_VALUE_CHARS else value[:_DETAIL_VALUE_CHARS] + "..."
        return repr(text)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)[:_DETAIL_VALUE_CHARS]
    return json_type(value)
