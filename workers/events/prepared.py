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
from workers.events import partition_time, partitions
from workers.events.envelope import MIN_YEAR, check, client_event_id
from workers.events.reasons import NOT_SERIALIZABLE, TOO_LARGE, Invalid, short

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
    partition_other: int = 0  # events whose partition value was over the bound, written under __other__

    def add(self, hour: str, line: bytes, index: int, envelope: dict[str, Any]) -> None:
        """One accepted line, in its hour's group."""
        bucket = self.lines_by_hour.get(hour)
        if bucket is None:
            self.lines_by_hour[hour] = [line]
            self.indexes_by_hour[hour] = [index]
            self.envelopes_by_hour[hour] = [envelope]
        else:
            bucket.append(line)
            self.indexes_by_hour[hour].append(index)
            self.envelopes_by_hour[hour].append(envelope)
        self.accepted += 1


def regroup(prepared: Prepared, renamed: dict[str, str]) -> None:
    """Move the groups of the slots ``renamed`` names to their new slots (merging groups that meet, in order), and
    count their events in ``partition_other``."""
    lines, indexes, envelopes = prepared.lines_by_hour, prepared.indexes_by_hour, prepared.envelopes_by_hour
    prepared.lines_by_hour, prepared.indexes_by_hour, prepared.envelopes_by_hour = {}, {}, {}
    for old, group in lines.items():
        new = renamed.get(old, old)
        if new != old:
            prepared.partition_other += len(group)
        if new in prepared.lines_by_hour:
            prepared.lines_by_hour[new] += group
            prepared.indexes_by_hour[new] += indexes[old]
            prepared.envelopes_by_hour[new] += envelopes[old]
        else:
            prepared.lines_by_hour[new] = group
            prepared.indexes_by_hour[new] = indexes[old]
            prepared.envelopes_by_hour[new] = envelopes[old]


def prepare(
    events: list[Any],
    integration_id: str,
    *,
    received_at: datetime,
    event_max_bytes: int,
    rules: Rules | None = None,
    partition: partition_time.PartitionConfig | None = None,
    fields: tuple[partitions.Field, ...] = (),
) -> Prepared:
    """Check, stamp and serialise ``events`` (``envelope.check`` on each); ``received_at`` (aware) stamps every event
    that has none.

    ``rules`` (the integration's compiled blueprint, None for the default one) run on each valid, stamped event: an
    event they remove goes to ``removed`` with its reason, a changed one is serialised as changed. With a
    ``partition`` config whose ``partition_time`` is ``timestamp``, an event's hour is that of its timestamp (within
    the bound; ``partition_fallback`` counts those outside it). With partition ``fields``, lines are grouped by slot
    (the hour with the event's partition values, ``workers.events.partitions``) instead of by hour. None of these
    costs anything when not asked for.
    """
    _check_arguments(integration_id, received_at, event_max_bytes)
    default_received_at, default_hour = iso(received_at), hour_of(received_at)
    prepared = Prepared()
    rejected = prepared.rejected
    by_timestamp = _timestamp_hours(partition)
    times: set[str] = set()  # canonical date-times already checked in this call
    for index, event in enumerate(events):
        envelope = None
        try:
            envelope, hour = check(event, integration_id, default_received_at, default_hour, times)
            if rules is not None:
                kept = rules.apply(envelope)
                if type(kept) is str:
                    prepared.removed.append(Removed(index, kept, envelope))
                    continue
                envelope = kept  # type: ignore[assignment]
            line = _dumps(envelope)
        except Invalid as invalid:
            rejected.append(
                Rejection(
                    index, invalid.reason, invalid.detail, client_event_id(event) if isinstance(event, dict) else None
                )
            )
            continue
        except (_JSONEncodeError, UnicodeEncodeError) as error:  # a value (to hash) with no JSON or UTF-8 text
            rejected.append(
                Rejection(
                    index,
                    NOT_SERIALIZABLE,
                    f"event cannot be serialised as JSON: {short(str(error))}",
                    envelope["event_id"] if envelope is not None else None,
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
        if by_timestamp is not None and (timestamp := envelope.get("timestamp")) is not None:
            hour, outside = by_timestamp.hour(envelope["received_at"], timestamp)
            prepared.partition_fallback += outside
        prepared.add(partitions.slot(hour, fields, envelope) if fields else hour, line, index, envelope)
    return prepared


def _check_arguments(integration_id: str, received_at: datetime, event_max_bytes: int) -> None:
    if not isinstance(integration_id, str) or not integration_id:
        raise ValueError("integration_id must be a non-empty string")
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be an aware datetime")
    if received_at.astimezone(UTC).year < MIN_YEAR:
        raise ValueError("received_at must have a four-digit year")
    if event_max_bytes <= 0:
        raise ValueError("event_max_bytes must be positive")


def _timestamp_hours(partition: partition_time.PartitionConfig | None) -> partition_time.TimestampHours | None:
    """What picks an event's hour from its timestamp, when the config asks for it (None: the received hour)."""
    if partition is not None and partition.partition_time == partition_time.TIMESTAMP:
        return partition_time.TimestampHours(partition.partition_time_bound_s)
    return None
