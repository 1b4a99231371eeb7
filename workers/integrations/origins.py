"""Allowed origins of a source: which websites may send its events from a browser.

An entry is an exact origin, ``scheme://host[:port]`` (``https://www.example.com``, ``http://localhost:3000``), or a
subdomain pattern, ``*.example.com`` (any subdomain, http or https, default port) or ``https://*.example.com`` (one
scheme). A pattern never matches the domain itself: list ``https://example.com`` too. Entries are normalised (lower
case, default ports dropped), so they compare with the ``Origin`` header browsers send. An empty list allows any
origin, like Segment and RudderStack: a write key is public in every page that uses it.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from workers.errors import InvalidInput

MAX_ENTRIES = 100
MAX_CHARS = 300
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_IPV6 = re.compile(r"^\[[0-9a-f:.]+\]$")
HELP = "use scheme://host[:port] (e.g. https://www.example.com) or *.example.com / https://*.example.com for subdomains"


class InvalidOrigin(InvalidInput):
    pass


def _split(origin: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a normalised origin string; InvalidOrigin when it is not one."""
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        raise InvalidOrigin(origin) from None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if (
        scheme not in DEFAULT_PORTS
        or not host
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
    ):
        raise InvalidOrigin(origin)
    if ":" in host:
        host = f"[{host}]"
        if not _IPV6.match(host):
            raise InvalidOrigin(origin)
    elif not _HOST.match(host):
        raise InvalidOrigin(origin)
    return scheme, host, port if port is not None else DEFAULT_PORTS[scheme]


def _render(scheme: str, host: str, port: int) -> str:
    return f"{scheme}://{host}" if DEFAULT_PORTS[scheme] == port else f"{scheme}://{host}:{port}"


def normalise(entry: str) -> str:
    """The canonical form of one allowed-origins entry; InvalidOrigin when it is neither form."""
    text = entry.strip().lower()
    if "*" not in text:
        return _render(*_split(text))
    scheme = None
    rest = text
    if "://" in text:
        scheme, rest = text.split("://", 1)
        if scheme not in DEFAULT_PORTS:
            raise InvalidOrigin(entry)
    if not rest.startswith("*.") or "*" in rest[2:]:
        raise InvalidOrigin(entry)
    scheme_, host, port = _split(f"{scheme or 'https'}://{rest[2:]}")
    if host.startswith("[") or "." not in host and host != "localhost":
        raise InvalidOrigin(entry)  # *.com would allow a whole top-level domain
    if scheme is None:
        if port != DEFAULT_PORTS[scheme_]:
            raise InvalidOrigin(entry)  # with a port, say which scheme it belongs to
        return f"*.{host}"
    return f"{scheme}://*.{_render(scheme, host, port)[len(scheme) + 3 :]}"


def check(value: Any, field: str = "allowed_origins") -> tuple[list[str], list[dict[str, str]]]:
    """Validate a list of entries: (normalised entries without duplicates, one error per wrong entry)."""
    if not isinstance(value, list):
        return [], [{"field": field, "message": f"{field} must be a list of origins ({HELP}); [] allows any origin"}]
    if len(value) > MAX_ENTRIES:
        return [], [{"field": field, "message": f"{field} holds at most {MAX_ENTRIES} entries"}]
    out: list[str] = []
    errors = []
    for n, entry in enumerate(value):
        where = f"{field}[{n}]"
        if not isinstance(entry, str) or not entry.strip() or len(entry) > MAX_CHARS:
            errors.append(
                {
                    "field": where,
                    "message": f"{where} must be a non-empty string of at most {MAX_CHARS} characters; {HELP}",
                }
            )
            continue
        if entry.strip() == "*":
            errors.append({"field": where, "message": f"{where}: leave {field} empty to allow any origin"})
            continue
        try:
            normalised = normalise(entry)
        except InvalidOrigin:
            errors.append({"field": where, "message": f"{where}: {entry.strip()!r} is not an origin; {HELP}"})
            continue
        if normalised not in out:
            out.append(normalised)
    return out, errors


class OriginPolicy:
    """Which ``Origin`` headers a source accepts: ``allows(origin)``; any origin when ``entries`` is empty."""

    def __init__(self, entries: tuple[str, ...] | list[str] = ()) -> None:
        self.entries = tuple(entries)
        self._exact = frozenset(e for e in self.entries if "*." not in e)
        self._patterns: list[tuple[str | None, str, int | None]] = []  # (scheme or any, .domain, port or default)
        for entry in self.entries:
            if "*." in entry:
                scheme, _, domain = entry.rpartition("*.")
                host, _, port = domain.partition(":")
                self._patterns.append((scheme[:-3] or None, "." + host, int(port) if port else None))

    @property
    def any_origin(self) -> bool:
        return not self.entries

    def allows(self, origin: str) -> bool:
        if not self.entries:
            return True
        try:
            scheme, host, port = _split(origin.strip().lower())
        except InvalidOrigin:
            return False  # "null" (sandboxed frames, file://) and anything malformed
        if _render(scheme, host, port) in self._exact:
            return True
        for pattern_scheme, domain, pattern_port in self._patterns:
            if (
                pattern_scheme in (None, scheme)
                and host.endswith(domain)
                and port == (pattern_port or DEFAULT_PORTS[scheme])
            ):
                return True
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OriginPolicy) and other.entries == self.entries

    def __repr__(self) -> str:
        return f"OriginPolicy({list(self.entries)!r})"
