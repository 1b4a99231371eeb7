"""The hour an event is partitioned under (``YYYY/MM/DD/HH`` of its object key), from the integration's config.

``partition_time``:
- ``received_at`` (default): the UTC hour the event arrived. Every object of an hour is written soon after it.
- ``timestamp``: the UTC hour of the event's own ``timestamp``, so a late event lands in the hour it happened. An
  event whose timestamp is more than ``partition_time_bound_s`` (default 7 days) before or after its
  ``received_at`` goes to its received hour instead and is reported as outside the bound, to be counted. An event
  without a timestamp goes to its received hour (not counted: it has no other time).

Both times are ISO-8601 date-times as the envelope writes them (``YYYY-MM-DDTHH:MM:SS.mmmZ``); other offsets are
converted to UTC.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

RECEIVED_AT = "received_at"
TIMESTAMP = "timestamp"


class PartitionConfig(Protocol):
    """The fields of an integration's config this module reads."""

    partition_time: str
    partition_time_bound_s: int


class PartitionHour(NamedTuple):
    hour: str  # YYYYMMDDHH, UTC
    outside_bound: bool  # partition_time timestamp: the timestamp was out of bound, the received hour is used


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _hour(moment: datetime) -> str:
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}"


def partition_hour_of(received_at: str, timestamp: str | None, *, partition_time: str,
                      bound_s: int) -> PartitionHour:
    """The partition hour from an event's ``received_at`` and ``timestamp`` texts; ValueError for a bad date-time or
    an unknown ``partition_time``."""
    received = _instant(received_at)
    if partition_time == RECEIVED_AT or (partition_time == TIMESTAMP and timestamp is None):
        return PartitionHour(_hour(received), False)
    if partition_time != TIMESTAMP:
        raise ValueError(f"partition_time must be {RECEIVED_AT} or {TIMESTAMP}, got {partition_time!r}")
    happened = _instant(timestamp)  # type: ignore[arg-type]  # None handled above
    if abs((happened - received).total_seconds()) > bound_s:
        return PartitionHour(_hour(received), True)
    return PartitionHour(_hour(happened), False)


def partition_hour(event: Mapping[str, Any], config: PartitionConfig) -> PartitionHour:
    """The partition hour of a validated envelope (it has ``received_at``; ``timestamp`` is optional)."""
    return partition_hour_of(event["received_at"], event.get("timestamp"), partition_time=config.partition_time,
                             bound_s=config.partition_time_bound_s)
