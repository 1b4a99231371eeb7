"""Blueprints: which events an integration delivers and which of their fields it changes on the way (the model).

A blueprint is set at install (``"blueprint": {...}``) and replaced with a PATCH. Every section is optional; the
empty blueprint ``{}`` is the default and forwards all events unchanged::

    {"consent": {"require": ["analytics"], "missing": "deny"},
     "events": {"include": ["track", "page"]},          # or {"exclude": [...]}
     "drop_fields": ["context.ip"],
     "hash_fields": ["user_id", "traits.email"]}

``parse_blueprint`` validates user input into a ``Blueprint`` or raises ``ConfigError`` with one message per wrong
field (``blueprint.consent.require``, ``blueprint.drop_fields``, ...); ``describe`` says in plain sentences what a
blueprint does, and ``from_form`` / ``to_form`` convert to and from the flat fields of a form. What each rule does
to an event, and the order they run in, is ``workers.events.rules``.

Paths are dotted (``context.ip``): keys of nested JSON objects, without dots of their own. Fields the pipeline
relies on (``PROTECTED_FIELDS``) cannot be dropped or hashed; a path may not be listed twice or inside another.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from workers.errors import ConfigError

# Fields the pipeline, the object layout and the partitions rely on: never dropped or hashed.
PROTECTED_FIELDS: frozenset[str] = frozenset(
    {"event_id", "type", "event", "timestamp", "received_at", "sent_at", "source_id", "integration_id"}
)
SECTIONS: tuple[str, ...] = ("consent", "events", "drop_fields", "hash_fields")
CONSENT_PREFERENCES_KEY = "categoryPreferences"  # Segment's shape: context.consent.categoryPreferences.<category>

MAX_ENTRIES = 100  # per list
NAME_MAX_CHARS = 1024  # event names and types, as the envelope allows
CATEGORY_MAX_CHARS = 200
PATH_MAX_CHARS = 512
PATH_MAX_DEPTH = 10

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")

_ALLOWED: dict[str, str] = {
    "consent": 'consent must be an object such as {"require": ["analytics"]}, or null',
    "consent.require": 'consent.require must be a list of consent category names such as ["analytics"]',
    "consent.missing": "consent.missing must be deny (no consent information counts as not granted) or allow",
    "events": 'events must be an object such as {"include": ["track"]} or {"exclude": ["identify"]}, or null',
    "events.include": 'events.include must be a list of event types or event names such as ["track", "page"]',
    "events.exclude": 'events.exclude must be a list of event types or event names such as ["identify"]',
    "drop_fields": 'drop_fields must be a list of dotted field paths such as ["context.ip"]',
    "hash_fields": 'hash_fields must be a list of dotted field paths such as ["user_id", "traits.email"]',
}
_KNOWN_KEYS: dict[str, tuple[str, ...]] = {
    "": SECTIONS,
    "consent": ("require", "missing"),
    "events": ("include", "exclude"),
}


def _problem(message: str) -> PydanticCustomError:
    return PydanticCustomError("signal_blueprint", message)


# -- validation of the parts --------------------------------------------------------------------------------------


def _text_list(value: Any, field: str, *, what: str, max_chars: int) -> tuple[str, ...]:
    """A non-empty list of distinct non-empty strings without control characters (duplicates are dropped)."""
    if not isinstance(value, (list, tuple)):
        raise _problem(_ALLOWED[field])
    if not value:
        raise _problem(f"{field} must list at least one {what}; remove {field.split('.')[0]} to keep every event")
    if len(value) > MAX_ENTRIES:
        raise _problem(f"{field} may list at most {MAX_ENTRIES} entries (got {len(value)})")
    out: dict[str, None] = {}
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _problem(f"{field}[{position}] must be a non-empty string (a {what})")
        if len(item) > max_chars:
            raise _problem(f"{field}[{position}] is {len(item)} characters long, over the limit of {max_chars}")
        if _CONTROL_CHARS.search(item):
            raise _problem(f"{field}[{position}] must not contain control characters")
        out[item] = None
    return tuple(out)


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a dotted field path the blueprint may change, or None."""
    if len(path) > PATH_MAX_CHARS:
        return f"is {len(path)} characters long, over the limit of {PATH_MAX_CHARS}"
    if _CONTROL_CHARS.search(path):
        return "must not contain control characters"
    segments = path.split(".")
    if any(not s or s != s.strip() for s in segments):
        return (
            f"{path!r} is not a dotted path: write keys separated by single dots, without spaces around them, "
            "e.g. context.ip"
        )
    if len(segments) > PATH_MAX_DEPTH:
        return f"{path!r} is {len(segments)} keys deep, over the limit of {PATH_MAX_DEPTH}"
    if segments[0] in PROTECTED_FIELDS:
        return (
            f"{path!r} cannot be changed: {segments[0]} is needed to deliver and partition the event "
            f"(protected fields: {', '.join(sorted(PROTECTED_FIELDS))})"
        )
    return None


def _path_list(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        raise _problem(_ALLOWED[field])
    if len(value) > MAX_ENTRIES:
        raise _problem(f"{field} may list at most {MAX_ENTRIES} paths (got {len(value)})")
    seen: dict[str, None] = {}
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item:
            raise _problem(f"{field}[{position}] must be a non-empty dotted path such as context.ip")
        problem = path_problem(item)
        if problem:
            raise _problem(f"{field}[{position}] {problem}")
        seen[item] = None
    paths = tuple(seen)
    overlap = _first_overlap(paths)
    if overlap:
        inner, outer = overlap
        raise _problem(f"{field} lists {inner!r} inside {outer!r}; list only one of them")
    return paths


def _inside(path: str, other: str) -> bool:
    """``path`` is ``other`` or lies within it (``context.ip`` inside ``context``)."""
    return path == other or path.startswith(other + ".")


def _first_overlap(paths: tuple[str, ...], others: tuple[str, ...] | None = None) -> tuple[str, str] | None:
    """The first (inner, outer) pair where one path lies within the other: among ``paths`` themselves, or between
    ``paths`` and ``others``."""
    pairs = (
        ((a, b) for i, a in enumerate(paths) for b in paths[i + 1 :])
        if others is None
        else ((a, b) for a in paths for b in others)
    )
    for a, b in pairs:
        if _inside(a, b):
            return a, b
        if _inside(b, a):
            return b, a
    return None


# -- the model ----------------------------------------------------------------------------------------------------


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Consent(_Section):
    require: tuple[str, ...]
    missing: Literal["deny", "allow"] = "deny"

    @field_validator("require", mode="before")
    @classmethod
    def _check_require(cls, v: Any) -> tuple[str, ...]:
        categories = _text_list(v, "consent.require", what="consent category", max_chars=CATEGORY_MAX_CHARS)
        if CONSENT_PREFERENCES_KEY in categories:
            raise _problem(
                f"consent.require lists {CONSENT_PREFERENCES_KEY!r}, which holds the categories in "
                "Segment's shape; list the category names themselves"
            )
        return categories

    @field_validator("missing", mode="before")
    @classmethod
    def _check_missing(cls, v: Any) -> Any:
        if v not in ("deny", "allow"):
            raise _problem(_ALLOWED["consent.missing"])
        return v


class Events(_Section):
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None

    @field_validator("include", "exclude", mode="before")
    @classmethod
    def _check_names(cls, v: Any, info: Any) -> tuple[str, ...] | None:
        if v is None:
            return None
        return _text_list(v, f"events.{info.field_name}", what="event type or event name", max_chars=NAME_MAX_CHARS)

    @model_validator(mode="after")
    def _one_of(self) -> Events:
        if (self.include is None) == (self.exclude is None):
            raise _problem(
                'events must give either include or exclude (not both, not neither), e.g. {"include": ["track"]}'
            )
        return self


class Blueprint(_Section):
    """One integration's rules. The default (every section empty) forwards all events unchanged."""

    consent: Consent | None = None
    events: Events | None = None
    drop_fields: tuple[str, ...] = ()
    hash_fields: tuple[str, ...] = ()

    @field_validator("drop_fields", "hash_fields", mode="before")
    @classmethod
    def _check_paths(cls, v: Any, info: Any) -> tuple[str, ...]:
        if v is None:
            return ()
        return _path_list(v, info.field_name)

    @model_validator(mode="after")
    def _hash_outside_drop(self) -> Blueprint:
        overlap = _first_overlap(self.hash_fields, self.drop_fields)
        if overlap:
            inner, outer = overlap
            where = "" if inner == outer else f" (inside {outer!r})"
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=_problem(
                            f"hash_fields and drop_fields both change {inner!r}{where}; list it in only one of them"
                        ),
                        loc=("hash_fields",),
                        input=self.hash_fields,
                    )
                ],
            )
        return self

    @property
    def is_default(self) -> bool:
        """Forwards all events unchanged: nothing to apply on the ingest path."""
        return self.consent is None and self.events is None and not self.drop_fields and not self.hash_fields

    def public(self) -> dict[str, Any]:
        """The JSON form, every section present (``null`` / ``[]`` when unused); ``parse_blueprint`` accepts it."""
        return {
            "consent": None
            if self.consent is None
            else {"require": list(self.consent.require), "missing": self.consent.missing},
            "events": None
            if self.events is None
            else (
                {"include": list(self.events.include)}
                if self.events.include is not None
                else {"exclude": list(self.events.exclude or ())}
            ),
            "drop_fields": list(self.drop_fields),
            "hash_fields": list(self.hash_fields),
        }


DEFAULT = Blueprint()


# -- user input ---------------------------------------------------------------------------------------------------


def _field_of(loc: tuple[Any, ...]) -> str:
    names = [str(part) for part in loc if isinstance(part, str)]
    if len(names) >= 2 and names[0] in ("consent", "events"):
        return f"{names[0]}.{names[1]}"
    return names[0] if names else ""


def _message(field: str, error: Any) -> str:
    kind = error["type"]
    if kind == "signal_blueprint":
        return str(error["msg"])
    if kind == "missing":
        return f"{field} is required: " + _ALLOWED.get(field, "").split(" must be ", 1)[-1]
    if kind == "extra_forbidden":
        section, _, key = field.rpartition(".")
        allowed = ", ".join(_KNOWN_KEYS.get(section, ()))
        where = f"the {section} section" if section else "a blueprint"
        return f"{key} is not a known key of {where}; allowed keys are {allowed}"
    return _ALLOWED.get(field, f"{field} is not valid")


def parse_blueprint(data: Any, *, field_prefix: str = "blueprint") -> Blueprint:
    """Validate user input into a ``Blueprint`` or raise ``ConfigError`` (one entry per wrong field).

    ``None`` is the default blueprint. Messages are our own wording and never echo the input beyond a path or name.
    """
    if data is None:
        return DEFAULT
    if not isinstance(data, dict):
        raise ConfigError(
            [
                {
                    "field": field_prefix,
                    "message": "blueprint must be an object such as "
                    '{"consent": {"require": ["analytics"]}}; {} forwards all events',
                }
            ]
        )
    try:
        return Blueprint.model_validate(data)
    except ValidationError as exc:
        by_field: dict[str, str] = {}
        for error in exc.errors(include_input=False, include_url=False):
            field = _field_of(error["loc"])
            by_field.setdefault(field, _message(field, error))
        raise ConfigError(
            [{"field": f"{field_prefix}.{f}" if f else field_prefix, "message": m} for f, m in by_field.items()]
        ) from None


def describe(bp: Blueprint) -> list[str]:
    """What the blueprint does, one plain sentence per rule (for the console and the CLI)."""
    if bp.is_default:
        return ["Forwards all events unchanged."]
    out: list[str] = []
    if bp.events is not None:
        if bp.events.include is not None:
            out.append("Delivers only events whose type or event name is " + _or(bp.events.include) + ".")
        else:
            out.append("Removes events whose type or event name is " + _or(bp.events.exclude or ()) + ".")
    if bp.consent is not None:
        sentence = "Delivers an event only when consent is granted for " + _and(bp.consent.require) + "; "
        sentence += (
            "an event without consent information is delivered."
            if bp.consent.missing == "allow"
            else "an event without consent information is not delivered."
        )
        out.append(sentence)
    if bp.drop_fields:
        out.append("Removes " + _and(bp.drop_fields) + ".")
    if bp.hash_fields:
        out.append("Replaces " + _and(bp.hash_fields) + " with a keyed hash (HMAC-SHA-256).")
    return out


def _and(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _or(items: Iterable[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# Flat field names of a form (the console's install and settings pages), as in
# ``workers.integrations.blueprint_fields.BLUEPRINT_FIELDS``.
FORM_LISTS: tuple[str, ...] = ("consent.require", "events.include", "events.exclude", "drop_fields", "hash_fields")


def from_form(values: Mapping[str, str]) -> dict[str, Any]:
    """A blueprint body from flat text fields: lists are comma- or newline-separated; empty fields are left out.

    The result goes through ``parse_blueprint`` like any other input.
    """

    def items(name: str) -> list[str]:
        return [part.strip() for part in re.split(r"[,\n]", values.get(name) or "") if part.strip()]

    body: dict[str, Any] = {}
    require = items("consent.require")
    if require:
        body["consent"] = {"require": require, "missing": (values.get("consent.missing") or "deny").strip()}
    include, exclude = items("events.include"), items("events.exclude")
    if include or exclude:
        body["events"] = {**({"include": include} if include else {}), **({"exclude": exclude} if exclude else {})}
    for name in ("drop_fields", "hash_fields"):
        if items(name):
            body[name] = items(name)
    return body


def to_form(bp: Blueprint) -> dict[str, str]:
    """The flat text fields of ``from_form`` for a stored blueprint (to prefill a form)."""
    return {
        "consent.require": ", ".join(bp.consent.require) if bp.consent else "",
        "consent.missing": bp.consent.missing if bp.consent else "deny",
        "events.include": ", ".join(bp.events.include or ()) if bp.events else "",
        "events.exclude": ", ".join(bp.events.exclude or ()) if bp.events else "",
        "drop_fields": ", ".join(bp.drop_fields),
        "hash_fields": ", ".join(bp.hash_fields),
    }
