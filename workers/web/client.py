"""Which address a request comes from: the connection's peer, or, behind trusted proxies, the nearest address in
X-Forwarded-For that is not one of them (``SIGNAL_TRUSTED_PROXIES``)."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address, proxies: Sequence[IpNetwork]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


@functools.lru_cache(maxsize=4096)
def _peer(peer: str) -> str:
    """A connection's peer address as ``client_ip`` writes it (parsed once per address, not once per request)."""
    address = _address(peer)
    return str(address) if address is not None else peer


def client_ip(peer: str | None, forwarded_for: str | None, trusted_proxies: Sequence[IpNetwork]) -> str | None:
    """The address a request comes from: the connection's peer, unless the peer is a trusted proxy; then the
    X-Forwarded-For entries are read from the right (the nearest hop) and the first one that is not a trusted proxy
    is the client. Anything unparsable stops the walk at the last address believed."""
    if peer and (not forwarded_for or not trusted_proxies):
        return _peer(peer)
    address = _address(peer) if peer else None
    if address is None:
        return peer or None
    if not forwarded_for or not trusted_proxies or not _trusted(address, trusted_proxies):
        return str(address)
    for hop in reversed(forwarded_for.split(",")):
        found = _address(hop)
        if found is None:
            break
        address = found
        if not _trusted(address, trusted_proxies):
            break
    return str(address)
