"""The one clock: aware UTC datetimes and integer milliseconds (what Redis stores)."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def from_ms(ms: int | float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def iso(dt: datetime) -> str:
    """ISO-8601 in UTC with millisecond precision and a Z suffix."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hour_of(dt: datetime) -> str:
    """The buffer hour of an instant: ``YYYYMMDDHH`` in UTC."""
    return dt.astimezone(UTC).strftime("%Y%m%d%H")


def hour_of_ms(ms: int) -> str:
    """``hour_of`` of an instant in milliseconds since the epoch."""
    return hour_of(from_ms(ms))
