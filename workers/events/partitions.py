"""Partition fields: the ``name=value/`` segments an integration's ``partition_fields`` put between the prefix and the
date of each key, as in ``<prefix>event=order_completed/consent_marketing=true/2026/12/07/05/<uuid>.json.gz``.

A field is one of ``event`` (the event name: a track call's ``event``, a page or screen call's ``name``, else the
type), ``type``, ``source_id``, ``consent.<category>`` (``true``, ``false`` or ``unknown``, read as blueprints read
consent: ``workers.events.rules.consent_of``), ``context.<path>`` or ``properties.<path>`` (a string, number or
boolean; an object or a list is ``__other__``). Its name in the key is the field with ``.`` and ``-`` as ``_``,
lower-cased.

A value is made safe for a key and for Athena (``encode``): lower-case ASCII letters, digits, ``_`` and ``-`` are
kept, every other character is percent-encoded as its UTF-8 bytes (``%2F`` for ``/``, ``%2E`` for ``.``, ``%41`` for
``A``), as is a leading ``_`` (so no value reads as ``__missing__`` or ``__other__``). A value longer than 64
characters once encoded keeps its first characters and ends with ``~`` and 10 hex digits of its SHA-256 (``~`` is
never kept, so no shortened value equals another one's encoding). An empty or missing value is ``__missing__``. So no
value adds a path segment, climbs (``..``) or collides with another.

An event's partition is carried with its hour as one *slot* (``slot``): ``YYYYMMDDHH`` alone without partition
fields, else ``YYYYMMDDHH|event=.../consent_marketing=...``. Everything that buffers, seals and uploads treats a slot
as it treated an hour; the uploader splits it back (``split_slot``) to build the key. How many values a field may have
per hour is bounded by the store (``workers.store.partition_values``): the values over it become ``__other__``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from workers.errors import InvalidInput
from workers.events.envelope import EVENT_TYPES
from workers.events.rules import consent_of

MAX_FIELDS = 3
VALUE_MAX_CHARS = 64
NAME_MAX_CHARS = 64
MISSING = "__missing__"
OTHER = "__other__"
CONSENT_VALUES = ("true", "false", "unknown")
SLOT_SEPARATOR = "|"
CLOSED_KINDS = frozenset({"type", "consent"})  # fields with a handful of values: never bounded
_KEEP = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-")
_DIGEST_CHARS = 10
_FIELD_RE = re.compile(
    r"(?P<whole>event|type|source_id)"
    r"|consent\.(?P<category>[A-Za-z0-9_-]{1,64})"
    r"|(?P<root>context|properties)\.(?P<path>[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,3})"
)
FIELDS_HELP = (
    "each one of event, type, source_id, consent.<category>, context.<path> or properties.<path> (a path of 1 to 4 "
    "names of letters, digits, _ and - joined by dots)"
)


@dataclass(frozen=True)
class Field:
    """One partition field: ``spec`` as configured, ``name`` as the key and the Athena table call it."""

    spec: str
    name: str
    kind: str  # event, type, source_id, consent, context, properties
    path: tuple[str, ...] = ()

    @property
    def column(self) -> str:
        """Its partition column in the Athena table: ``p_<name>`` (``event``, ``type``... are data columns too)."""
        return "p_" + self.name

    @property
    def enum(self) -> tuple[str, ...] | None:
        """Every value it can take, when they are few (an ``enum`` projection); None for open values."""
        if self.kind == "type":
            return EVENT_TYPES
        if self.kind == "consent":
            return CONSENT_VALUES
        return None

    def value(self, envelope: dict[str, Any]) -> str:
        """The encoded value of this field for ``envelope`` (an accepted, stamped event)."""
        if self.kind == "event":
            kind = envelope.get("type")
            name = envelope.get("event") if kind == "track" else envelope.get("name")
            return encode(name if isinstance(name, str) and name else str(kind))
        if self.kind == "consent":
            state = consent_of(envelope, self.path[0])
            return "unknown" if state is None else "true" if state else "false"
        if self.kind in ("type", "source_id"):
            return _scalar(envelope.get(self.kind))
        node: Any = envelope.get(self.kind)
        for step in self.path:
            if not isinstance(node, dict):
                return MISSING
            node = node.get(step)
        return _scalar(node)


class FieldsError(InvalidInput):
    """``partition_fields`` that cannot be used; the message names what is wrong."""


def parse_fields(specs: Any) -> tuple[Field, ...]:
    """The fields of a ``partition_fields`` value (a list of field names, or one text of names separated by
    commas); raises ``FieldsError``."""
    if isinstance(specs, str):
        specs = [s.strip() for s in specs.split(",") if s.strip()]
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, str) for s in specs):
        raise FieldsError(f"partition_fields must be a list of at most {MAX_FIELDS} field names, {FIELDS_HELP}")
    if len(specs) > MAX_FIELDS:
        raise FieldsError(f"partition_fields has {len(specs)} fields: at most {MAX_FIELDS}")
    out: list[Field] = []
    for spec in specs:
        found = _FIELD_RE.fullmatch(spec)
        if found is None:
            raise FieldsError(f"partition_fields: {spec[:80]!r} is not a field: {FIELDS_HELP}")
        if found["whole"]:
            field = Field(spec, spec, spec)
        elif found["category"]:
            field = Field(spec, _name(spec), "consent", (found["category"],))
        else:
            field = Field(spec, _name(spec), found["root"], tuple(found["path"].split(".")))
        if len(field.name) > NAME_MAX_CHARS:
            raise FieldsError(
                f"partition_fields: {spec[:80]!r} makes a folder name of {len(field.name)} characters: at most "
                f"{NAME_MAX_CHARS}"
            )
        if any(f.name == field.name for f in out):
            raise FieldsError(f"partition_fields: {spec!r} and another field are both named {field.name!r} in keys")
        out.append(field)
    return tuple(out)


@lru_cache(maxsize=1024)
def compiled(specs: tuple[str, ...]) -> tuple[Field, ...]:
    """``parse_fields`` of an integration's checked ``partition_fields``, once per process."""
    return parse_fields(list(specs))


def _name(spec: str) -> str:
    return spec.replace(".", "_").replace("-", "_").lower()


def _scalar(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, str):
        return encode(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return encode(orjson.dumps(value).decode())
    return OTHER


def encode(text: str) -> str:
    """A value as a key segment (see the module's rules); ``__missing__`` for an empty one. Short values (event names,
    flags, plans: the values partitions are for) are remembered per process."""
    if len(text) <= _CACHED_MAX_CHARS:
        return _encode_cached(text)
    return _encode(text)


_CACHED_MAX_CHARS = 256


@lru_cache(maxsize=8192)
def _encode_cached(text: str) -> str:
    return _encode(text)


def _encode(text: str) -> str:
    if not text:
        return MISSING
    pieces = []
    for i, ch in enumerate(text):
        if ch in _KEEP and not (i == 0 and ch == "_"):
            pieces.append(ch)
        else:
            pieces.append("".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass")))
    out = "".join(pieces)
    if len(out) <= VALUE_MAX_CHARS:
        return out
    room = VALUE_MAX_CHARS - 1 - _DIGEST_CHARS
    kept: list[str] = []
    used = 0
    for piece in pieces:
        if used + len(piece) > room:
            break
        kept.append(piece)
        used += len(piece)
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:_DIGEST_CHARS]
    return "".join(kept) + "~" + digest


_SEGMENT = r"[a-z0-9_]{1,300}=[A-Za-z0-9_%~-]{1,64}"
_SLOT_RE = re.compile(rf"[0-9]{{10}}\|{_SEGMENT}(?:/{_SEGMENT}){{0,{MAX_FIELDS - 1}}}")


def is_slot(text: str) -> bool:
    """Whether ``text`` is an hour with partition values (what ``slot`` makes)."""
    return _SLOT_RE.fullmatch(text) is not None


def slot(hour: str, fields: tuple[Field, ...], envelope: dict[str, Any]) -> str:
    """The slot of an event: its hour, with its partition values when there are partition fields."""
    if not fields:
        return hour
    return hour + SLOT_SEPARATOR + "/".join(f"{f.name}={f.value(envelope)}" for f in fields)


def split_slot(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``(hour, ((name, value), ...))`` of a slot."""
    hour, _, path = text.partition(SLOT_SEPARATOR)
    if not path:
        return hour, ()
    return hour, tuple(tuple(segment.split("=", 1)) for segment in path.split("/"))  # type: ignore[misc]


def join_slot(hour: str, values: tuple[tuple[str, str], ...]) -> str:
    if not values:
        return hour
    return hour + SLOT_SEPARATOR + "/".join(f"{name}={value}" for name, value in values)


def values_of(fields: tuple[Field, ...], envelope: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """``((name, value), ...)`` of an event for these fields, as a slot holds them."""
    return tuple((f.name, f.value(envelope)) for f in fields)


def key_path(values: tuple[tuple[str, str], ...]) -> str:
    """The key's partition folders of a slot's values: ``event=x/consent_marketing=true/`` (empty without)."""
    return "".join(f"{name}={value}/" for name, value in values)


def folders_max_bytes(fields: tuple[Field, ...]) -> int:
    """The most bytes the partition folders of these fields can add to a key (every value at its longest)."""
    return sum(len(f.name) + 2 + VALUE_MAX_CHARS for f in fields)
