"""Prepared events: ``prepare`` turns the events of one message into what the append needs.

``prepare`` checks each event (``workers.events.envelope.check``), applies the integration's compiled blueprint
(``rules``: a removed event is reported as ``Removed``, not an error; a changed one is serialised as changed), picks
its hour (``partition_time`` ``timestamp``: the hour of its own timestamp, within the bound,
``workers.events.partition_time``), serialises it with orjson and groups the lines by hour. A bad event is reported
as a ``Rejection`` and never affects the others. Its loop is the one place where each event of an integration passes
as a parsed object. How a prepared message travels to the ingest worker is ``workers.events.message``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from workers.clock import hour_of, iso
from workers.events import partition_time
from workers.events.envelope import MIN_YEAR, NOT_SERIALIZABLE, TOO_LARGE, Invalid, check, client_event_id, short

if TYPE_CHECKING:
    from workers.events.rules import Rules

_dumps = orjson.dumps
_JSONEncodeError = orjson.JSONEncodeError


class Rejection(NamedTuple):
    """Why the event at ``index`` of the input was not accepted."""

    index: int
    reason: str
    detail: str
    event_id: str | None


class Removed(NamedTuple):
    """A valid event the integration's blueprint removed (not an error): ``reason`` is ``filtered_out`` or
    ``consent_denied``; ``envelope`` is the stamped event as it arrived."""

    index: int
    reason: str
    envelope: dict[str, Any]


@dataclass(slots=True)
class Prepared:
    """Accepted lines (compact JSON, no newline) grouped by ``YYYYMMDDHH`` hour, plus the rejections, the events the
    blueprint removed and how many events fell outside ``partition_time_bound_s`` (partitioned by received hour)."""

    lines_by_hour: dict[str, list[bytes]] = field(default_factory=dict)
    # the caller's index of each line, in the same grouping and order as ``lines_by_hour``
    indexes_by_hour: dict[str, list[int]] = field(default_factory=dict)
    # the envelope (a dict) each line was serialised from, in the same grouping and order
    envelopes_by_hour: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)
    removed: list[Removed] = field(default_factory=list)
    accepted: int = 0
    partition_fallback: int = 0




def prepare(
    events: list[Any],
    integration_id: str,
    *,
    received_at: datetime,
    event_max_bytes: int,
    rules: Rules | None = None,
    partition: partition_time.PartitionConfig | None = None,
) -> Prepared:
    """Check, stamp and serialise ``events`` (``envelope.check`` on each); ``received_at`` (aware) stamps every event
    that has none.

    ``rules`` (the integration's compiled blueprint, None for the default one) run on each valid, stamped event: an
    event they remove goes to ``removed`` with its reason, a changed one is serialised as changed. With a
    ``partition`` config whose ``partition_time`` is ``timestamp``, an event's hour is that of its timestamp (within
    the bound; ``partition_fallback`` counts those outside it). Neither costs anything when not asked for.
    """
    if not isinstance(integration_id, str) or not integration_id:
        raise ValueError("integration_id must be a non-empty string")
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be an aware datetime")
    if received_at.astimezone(UTC).year < MIN_YEAR:
        raise ValueError("received_at must have a four-digit year")
    if event_max_bytes <= 0:
        raise ValueError("event_max_bytes must be positive")

    default_received_at = iso(received_at)
    default_hour = hour_of(received_at)
    prepared = Prepared()
    lines_by_hour = prepared.lines_by_hour
    indexes_by_hour = prepared.indexes_by_hour
    envelopes_by_hour = prepared.envelopes_by_hour
    rejected = prepared.rejected
    removed = prepared.removed
    by_timestamp = None
    if partition is not None and partition.partition_time == partition_time.TIMESTAMP:
        by_timestamp = partition_time.TimestampHours(partition.partition_time_bound_s)
    partition_fallback = 0
    times: set[str] = set()  # canonical date-times already checked in this call
    accepted = 0

    for index, event in enumerate(events):
        try:
            envelope, hour = check(event, integration_id, default_received_at, default_hour, times)
        except Invalid as invalid:
            rejected.append(Rejection(index, invalid.reason, invalid.detail,
                                      client_event_id(event) if isinstance(event, dict) else None))
            continue
        if rules is not None:
            try:
                kept = rules.apply(envelope)
            except (_JSONEncodeError, UnicodeEncodeError) as error:  # a value to hash with no JSON or UTF-8 text
                rejected.append(Rejection(index, NOT_SERIALIZABLE,
                                          f"event cannot be serialised as JSON: {short(str(error))}",
                                          envelope["event_id"]))
                continue
            if type(kept) is str:
                removed.append(Removed(index, kept, envelope))
                continue
            envelope = kept  # type: ignore[assignment]
        try:
            line = _dumps(envelope)
        except _JSONEncodeError as error:
            rejected.append(
                Rejection(
                    index,
                    NOT_SERIALIZABLE,
                    f"event cannot be serialised as JSON: {short(str(error))}",
                    envelope["event_id"],
                )
            )
            continue
        if len(line) > event_max_bytes:
            rejected.append(
                Rejection(
                    index,
                    TOO_LARGE,
                    f"event is {len(line)} bytes as JSON, over the limit of {event_max_bytes} bytes",
                    envelope["event_id"],
                )
            )
            continue
        if by_timestamp is not None:
            timestamp = envelope.get("timestamp")
            if timestamp is not None:
                hour, outside = by_timestamp.hour(envelope["received_at"], timestamp)
                partition_fallback += outside
        bucket = lines_by_hour.get(hour)
        if bucket is None:
            lines_by_hour[hour] = [line]
            indexes_by_hour[hour] = [index]
            envelopes_by_hour[hour] = [envelope]
        else:
            bucket.append(line)
            indexes_by_hour[hour].append(index)
            envelopes_by_hour[hour].append(envelope)
        accepted += 1

    prepared.accepted = accepted
    prepared.partition_fallback = partition_fallback
    return prepared
