"""The partition hour of an event: its arrival hour, or its own timestamp's hour within a bound."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workers.clock import hour_of, iso
from workers.events.partition_time import RECEIVED_AT, TIMESTAMP, PartitionConfig, TimestampHours
from workers.integrations.config import parse_config

# The reference the fast TimestampHours is checked against: the rule written plainly, one datetime at a time.


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


def partition_hour_of(received_at: str, timestamp: str | None, *, partition_time: str, bound_s: int) -> PartitionHour:
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
    return partition_hour_of(
        event["received_at"],
        event.get("timestamp"),
        partition_time=config.partition_time,
        bound_s=config.partition_time_bound_s,
    )


DAY_S = 24 * 3600
RECEIVED = "2026-05-12T10:30:00.000Z"


def cfg(partition_time: str = "timestamp", bound_s: int = 7 * DAY_S) -> SimpleNamespace:
    return SimpleNamespace(partition_time=partition_time, partition_time_bound_s=bound_s)


def event(timestamp: str | None = None, received_at: str = RECEIVED) -> dict[str, str]:
    e = {"event_id": "e-1", "type": "track", "received_at": received_at}
    if timestamp is not None:
        e["timestamp"] = timestamp
    return e


def test_received_at_is_the_default_and_ignores_the_timestamp() -> None:
    config = parse_config(
        {"bucket": "my-bucket", "region": "us-east-1", "access_key_id": "a", "secret_access_key": "b"}
    )
    assert partition_hour(event("2026-05-01T03:00:00.000Z"), config) == PartitionHour("2026051210", False)
    assert partition_hour(event("1999-01-01T00:00:00.000Z"), cfg("received_at")) == ("2026051210", False)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        ("2026-05-12T10:29:59.999Z", ("2026051210", False)),
        ("2026-05-11T23:59:59.999Z", ("2026051123", False)),  # a late event lands in the hour it happened
        ("2026-05-05T10:30:00.000Z", ("2026050510", False)),  # exactly 7 days before: inside
        ("2026-05-05T10:29:59.999Z", ("2026051210", True)),  # just outside: the received hour, counted
        ("2026-05-19T10:30:00.000Z", ("2026051910", False)),  # ahead by the bound: inside
        ("2026-05-19T10:30:00.001Z", ("2026051210", True)),
        ("1970-01-01T00:00:00.000Z", ("2026051210", True)),
        ("2026-05-12T12:30:00+02:00", ("2026051210", False)),  # other offsets count in UTC
    ],
)
def test_timestamp_within_the_bound(timestamp: str, expected: tuple[str, bool]) -> None:
    assert partition_hour(event(timestamp), cfg()) == expected


def test_an_event_without_timestamp_uses_its_received_hour_uncounted() -> None:
    assert partition_hour(event(), cfg()) == ("2026051210", False)


def test_the_bound_is_configurable() -> None:
    assert partition_hour(event("2026-05-12T09:59:00.000Z"), cfg(bound_s=3600)) == ("2026051209", False)
    assert partition_hour(event("2026-05-12T09:29:59.000Z"), cfg(bound_s=3600)) == ("2026051210", True)


def test_bad_input_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        partition_hour_of("yesterday", None, partition_time="received_at", bound_s=60)
    with pytest.raises(ValueError):
        partition_hour_of(RECEIVED, RECEIVED, partition_time="event_time", bound_s=60)


@settings(max_examples=300, deadline=None)
@given(
    received=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
    offset_s=st.integers(-30 * DAY_S, 30 * DAY_S),
    bound_s=st.integers(60, 14 * DAY_S),
)
def test_agrees_with_the_clock(received: datetime, offset_s: int, bound_s: int) -> None:
    received = received.replace(microsecond=received.microsecond // 1000 * 1000)
    happened = received + timedelta(seconds=offset_s)
    got = partition_hour_of(iso(received), iso(happened), partition_time="timestamp", bound_s=bound_s)
    inside = abs(offset_s) <= bound_s
    assert got == (hour_of(happened if inside else received), not inside)
    assert partition_hour_of(iso(received), iso(happened), partition_time="received_at", bound_s=bound_s) == (
        hour_of(received),
        False,
    )


# -- TimestampHours: the ingest path's shortcut for canonical texts ---------------------------------------------------

_MOMENTS = st.datetimes(
    min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(UTC)
)


def _text(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@given(
    received=_MOMENTS,
    offset_ms=st.integers(-40 * 86_400_000, 40 * 86_400_000),
    bound_s=st.sampled_from([60, 3600, 86_400, 7 * 86_400, 31_622_400]),
)
def test_timestamp_hours_agree_with_partition_hour_of(received: datetime, offset_ms: int, bound_s: int) -> None:
    received_at = _text(received)
    try:
        timestamp = _text(datetime.fromisoformat(received_at) + timedelta(milliseconds=offset_ms))
    except OverflowError:
        return
    if timestamp[0] == "0" or len(timestamp) != 24:
        return  # the envelope refuses years before 1000
    expected = partition_hour_of(received_at, timestamp, partition_time="timestamp", bound_s=bound_s)
    hours = TimestampHours(bound_s)
    assert hours.hour(received_at, timestamp) == expected
    assert hours.hour(received_at, timestamp) == expected  # from the remembered window


def test_timestamp_hours_at_the_exact_bound_and_the_ends_of_time() -> None:
    hours = TimestampHours(3600)
    received_at = "2026-05-12T10:30:15.123Z"
    assert hours.hour(received_at, "2026-05-12T09:30:15.123Z") == ("2026051209", False)
    assert hours.hour(received_at, "2026-05-12T09:30:15.122Z") == ("2026051210", True)
    assert hours.hour(received_at, "2026-05-12T11:30:15.123Z") == ("2026051211", False)
    assert hours.hour(received_at, "2026-05-12T11:30:15.124Z") == ("2026051210", True)
    assert TimestampHours(86_400).hour("9999-12-31T23:00:00.000Z", "9999-12-31T23:59:59.999Z") == ("9999123123", False)
    assert TimestampHours(86_400).hour("1000-01-01T00:30:00.000Z", "1000-01-01T00:00:00.000Z") == ("1000010100", False)
