"""Applying a blueprint: compiled ``Rules`` and the pure function that decides for one event.

``compile_rules(blueprint, hash_key)`` returns ``None`` for the default blueprint, so forwarding all events costs
nothing: the caller skips the rules entirely. ``Rules.apply(event)`` returns the event to store (the very same object
when nothing changed, else a changed copy: the input is never modified, objects are copied only along changed paths)
or, when the blueprint removes the event, the reason. The rules run in this order:

1. ``events``: ``include`` keeps an event whose ``type`` or ``event`` name is listed; ``exclude`` removes it.
   Names are matched exactly (case-sensitive). Removed: ``filtered_out``.
2. ``consent``: every required category must be granted, read from ``context.consent.<category>`` or
   ``context.consent.categoryPreferences.<category>`` (Segment's shape). ``true`` or ``"granted"`` (any case)
   grant; any other value (``false``, ``"denied"``, ...) denies, and a denial in either place wins. A category with
   no value in either place (absent or ``null``) is missing: it counts as not granted unless ``"missing": "allow"``.
   Removed: ``consent_denied``.
3. ``drop_fields``: each dotted path (``context.ip``) is removed where present.
4. ``hash_fields``: each value at a dotted path is replaced by the lowercase hex HMAC-SHA-256 of its text under the
   integration's own key (a string as its UTF-8 bytes, any other value as its compact JSON with sorted keys), so the
   same value hashes the same way in every event of the integration while a dictionary of likely values cannot
   reverse it. ``null`` and absent values stay as they are.

A dotted path walks JSON objects by key; a path that meets anything but an object (or a missing key) changes
nothing. ``Rules`` hold the hash key: their repr never shows it.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from workers.events.blueprint import CONSENT_PREFERENCES_KEY, Blueprint

# Why a blueprint removed an event: stable snake_case codes, used as metric labels.
CONSENT_DENIED = "consent_denied"
FILTERED_OUT = "filtered_out"
REASONS: tuple[str, ...] = (CONSENT_DENIED, FILTERED_OUT)
GRANTED_TEXT = "granted"
HASH_KEY_BYTES = 32


def new_hash_key() -> str:
    """A fresh per-integration HMAC key (hex); stored encrypted with the other secrets, never shown."""
    return secrets.token_hex(HASH_KEY_BYTES)


_DROP = "drop"
_HASH = "hash"
_SHA256_BLOCK = 64
_Tree = dict[str, Any]  # key -> _DROP | _HASH | subtree


def _tree(drop_fields: Iterable[str], hash_fields: Iterable[str]) -> _Tree:
    root: _Tree = {}
    for paths, action in ((drop_fields, _DROP), (hash_fields, _HASH)):
        for path in paths:
            *parents, leaf = path.split(".")
            node = root
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = action
    return root


def _consent_state(value: Any) -> bool | None:
    """True granted, False denied, None no information."""
    if value is None:
        return None
    if value is True:
        return True
    if isinstance(value, str) and value.lower() == GRANTED_TEXT:
        return True
    return False


class Rules:
    """A compiled blueprint: ``apply`` one event at a time. Holds the hash key: never printed."""

    __slots__ = ("include", "exclude", "require", "allow_missing", "tree", "_inner", "_outer")

    def __init__(self, bp: Blueprint, hash_key: bytes) -> None:
        events = bp.events
        self.include = frozenset(events.include) if events is not None and events.include is not None else None
        self.exclude = frozenset(events.exclude) if events is not None and events.exclude is not None else None
        self.require = bp.consent.require if bp.consent is not None else ()
        self.allow_missing = bp.consent is not None and bp.consent.missing == "allow"
        self.tree = _tree(bp.drop_fields, bp.hash_fields) or None
        if bp.hash_fields and len(hash_key) < 16:
            raise ValueError("hash_fields need the integration's hash key")
        # HMAC (RFC 2104) with its two keyed SHA-256 states prepared once: a value then costs two state copies,
        # about a third of the stdlib's hmac.copy() per value.
        block = hash_key if len(hash_key) <= _SHA256_BLOCK else hashlib.sha256(hash_key).digest()
        block = block.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def __repr__(self) -> str:
        return (
            f"Rules(include={self.include!r}, exclude={self.exclude!r}, require={self.require!r}, "
            f"allow_missing={self.allow_missing!r}, tree={self.tree!r})"
        )

    def hash_value(self, value: Any) -> str:
        """Lowercase hex HMAC-SHA-256 of a value's text (a string's UTF-8, else its compact sorted JSON)."""
        data = value.encode("utf-8") if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def apply(self, event: dict[str, Any]) -> dict[str, Any] | str:
        """The event to store (the same object when nothing changed, else a changed copy) or, when the blueprint
        removes it, the reason (``filtered_out`` or ``consent_denied``)."""
        if self.include is not None:
            kind, name = event.get("type"), event.get("event")
            if not (
                (isinstance(kind, str) and kind in self.include) or (isinstance(name, str) and name in self.include)
            ):
                return FILTERED_OUT
        elif self.exclude is not None:
            kind, name = event.get("type"), event.get("event")
            if (isinstance(kind, str) and kind in self.exclude) or (isinstance(name, str) and name in self.exclude):
                return FILTERED_OUT
        if self.require and not self._consented(event):
            return CONSENT_DENIED
        if self.tree is not None:
            return _transform(event, self.tree, self.hash_value)
        return event

    def _consented(self, event: dict[str, Any]) -> bool:
        for category in self.require:
            state = consent_of(event, category)
            if state is False or (state is None and not self.allow_missing):
                return False
        return True


def consent_of(event: dict[str, Any], category: str) -> bool | None:
    """An event's consent for ``category``: False when ``context.consent`` or Segment's
    ``context.consent.categoryPreferences`` denies it, else True when either grants it, else None (no information)."""
    context = event.get("context")
    consent = context.get("consent") if isinstance(context, dict) else None
    if not isinstance(consent, dict):
        return None
    direct = _consent_state(consent.get(category))
    prefs = consent.get(CONSENT_PREFERENCES_KEY)
    segment = _consent_state(prefs.get(category)) if isinstance(prefs, dict) else None
    if direct is False or segment is False:
        return False
    return True if direct or segment else None


def _transform(obj: dict[str, Any], tree: _Tree, hash_value: Callable[[Any], str]) -> dict[str, Any]:
    """``obj`` with the tree's drops and hashes applied: ``obj`` itself when nothing changed, else a copy (nested
    objects copied only along changed paths)."""
    out: dict[str, Any] | None = None
    for key, action in tree.items():
        if key not in obj:
            continue
        value = obj[key]
        if action is _DROP:
            if out is None:
                out = dict(obj)
            del out[key]
        elif action is _HASH:
            if value is not None:
                if out is None:
                    out = dict(obj)
                out[key] = hash_value(value)
        elif isinstance(value, dict):
            changed = _transform(value, action, hash_value)
            if changed is not value:
                if out is None:
                    out = dict(obj)
                out[key] = changed
    return obj if out is None else out


def compile_rules(bp: Blueprint, hash_key: bytes | None) -> Rules | None:
    """The rules to apply on the ingest path, or None when the blueprint forwards all events (skip it entirely)."""
    if bp.is_default:
        return None
    return Rules(bp, hash_key or b"")


def apply(rules: Rules | None, event: dict[str, Any]) -> dict[str, Any] | str:
    """``rules.apply(event)``; with no rules (the default blueprint) the event itself."""
    return event if rules is None else rules.apply(event)
