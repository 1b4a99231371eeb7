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

from datetime import UTC, datetime, timedelta
from typing import Protocol

RECEIVED_AT = "received_at"
TIMESTAMP = "timestamp"


class PartitionConfig(Protocol):
    """The fields of an integration's config this module reads."""

    partition_time: str
    partition_time_bound_s: int


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _hour(moment: datetime) -> str:
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}"


_EARLIEST = "0001-01-01T00:00:00.000Z"
_LATEST = "9999-12-31T23:59:59.999Z"


def _canonical(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TimestampHours:
    """``partition_hour_of(received_at, timestamp, partition_time="timestamp", bound_s=...)`` for the canonical texts
    of an envelope (``YYYY-MM-DDTHH:MM:SS.mmmZ``, UTC), at the cost of two string comparisons per event: the bound's
    window around each ``received_at`` is computed once (the events of a request share it), and canonical texts of
    one format compare like the instants they name."""

    __slots__ = ("bound", "_windows")

    def __init__(self, bound_s: int) -> None:
        self.bound = timedelta(seconds=bound_s)
        self._windows: dict[str, tuple[str, str, str]] = {}

    def hour(self, received_at: str, timestamp: str) -> tuple[str, bool]:
        """(hour, outside_bound), as ``PartitionHour`` (a plain tuple: this runs once per event)."""
        window = self._windows.get(received_at)
        if window is None:
            received = _instant(received_at)
            try:
                earliest = _canonical(received - self.bound)
            except OverflowError:
                earliest = _EARLIEST
            try:
                latest = _canonical(received + self.bound)
            except OverflowError:
                latest = _LATEST
            window = self._windows[received_at] = (earliest, latest, _hour(received))
        earliest, latest, received_hour = window
        if earliest <= timestamp <= latest:
            return timestamp[0:4] + timestamp[5:7] + timestamp[8:10] + timestamp[11:13], False
        return received_hour, True
