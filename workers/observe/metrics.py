"""Prometheus metrics of the fleet, read from Redis at scrape time.

Every counter already lives in Redis, per integration, updated by the Lua scripts that change the state it counts
(``sig:{I}:stats``, the dead-letter zset and its batch metadata, the two histogram hashes ``sig:{I}:hist:*``). A
scrape reads them, so each worker process of each host is counted exactly once, with no multiprocess directory and
nothing lost when a worker restarts; any process that can reach Redis serves the same numbers.

Two gauges say whether delivery keeps up, from when the events still waiting were appended (the open index's first
appends, the ``first_ms`` of each pending batch) and the last delivery (``sig:{I}:status``): how old the oldest
waiting event is, and how long events have waited with no object delivered. Held batches wait for a person, not for
delivery: they are counted apart (``signal_dead_letter_*``), not as buffered or waiting.

Histograms are kept the same way: one hash per integration of cumulative bucket counters ``le:<bound_s>`` plus
``count`` and ``sum_us`` (microseconds, so sums stay exact integers), incremented by ack.lua once per delivered batch.

Collection's refusals per source (over the rate limit, from an origin the source does not allow) are counted the
same way, in ``sig:src:{S}:stats`` (``workers.integrations.sources.Refusals``).

Served by ``signal-s3 metrics`` (HTTP, with this process's metrics) and ``render`` (for the admin API's /metrics).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import orjson
import redis
from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from workers import clock
from workers.integrations import registry, sources
from workers.settings import get_settings
from workers.store import keys
from workers.store.db import text
from workers.store.histograms import LATENCY_BUCKETS_S, UPLOAD_BUCKETS_S, Histogram

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9108
_CHUNK = 1000  # batch metadata (held and pending batches) read per pipeline round trip


def prometheus_buckets(h: Histogram, bounds_s: Sequence[float]) -> list[tuple[str, float]]:
    """A stored histogram as prometheus_client's buckets: cumulative counts per bound, then +Inf."""
    return [*((floatToGoString(b), n) for b, n in h.cumulative(bounds_s)), ("+Inf", h.count)]


@dataclass(frozen=True)
class IntegrationCounters:
    """One integration's numbers as stored in Redis.

    ``stats`` holds the raw counters of ``sig:{I}:stats``, whose ``buffered_*`` still include the held batches (ack.lua
    takes them off only on delivery); ``buffered_events`` / ``buffered_bytes`` are what waits for delivery.
    ``oldest_waiting_ms`` is when the oldest event waiting for delivery (open buffers and pending batches, never held
    ones) was appended, None when nothing waits; ``last_success_ms`` is when an object was last delivered.
    """

    integration_id: str
    stats: dict[str, int] = field(default_factory=dict)
    dead_letter_batches: int = 0
    dead_letter_events: int = 0
    upload: Histogram = Histogram({}, 0, 0)
    latency: Histogram = Histogram({}, 0, 0)
    dead_letter_bytes: int = 0
    oldest_waiting_ms: int | None = None
    last_success_ms: int | None = None
    flush_interval_s: float | None = None  # the integration's own; None: the fleet's SIGNAL_FLUSH_INTERVAL_S

    def by_prefix(self, prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: v for k, v in self.stats.items() if k.startswith(prefix)}

    @property
    def buffered_events(self) -> int:
        """Accepted events waiting for delivery: open buffers and sealed batches, held batches left out."""
        return max(self.stats.get("buffered_events", 0) - self.dead_letter_events, 0)

    @property
    def buffered_bytes(self) -> int:
        return max(self.stats.get("buffered_bytes", 0) - self.dead_letter_bytes, 0)

    def oldest_waiting_age_s(self, now_ms: int) -> float:
        """Seconds since the oldest event waiting for delivery was appended; 0 when nothing waits."""
        if self.oldest_waiting_ms is None:
            return 0.0
        return max(now_ms - self.oldest_waiting_ms, 0) / 1000

    def waiting_since_delivery_s(self, now_ms: int) -> float:
        """While events wait: seconds since the last delivery, or since the oldest waiting event was appended when
        that came later (an integration that was idle since its last object is not late). 0 when nothing waits."""
        if self.oldest_waiting_ms is None:
            return 0.0
        since_ms = max(self.last_success_ms or 0, self.oldest_waiting_ms)
        return max(now_ms - since_ms, 0) / 1000


def read(r: redis.Redis) -> list[IntegrationCounters]:
    """Every installed integration's counters, in two pipelined round trips plus one per 1000 held or pending batches
    (their metadata: the held batches' events and bytes, the pending batches' first append)."""
    iids = sorted(registry.ids(r))
    pipe = r.pipeline(transaction=False)
    for iid in iids:
        pipe.hgetall(keys.stats(iid))
        pipe.zrange(keys.dead(iid), 0, -1)
        pipe.hgetall(keys.hist_upload(iid))
        pipe.hgetall(keys.hist_latency(iid))
        pipe.hget(keys.status(iid), "last_success_ms")
        # the open index before the pending batches: a buffer sealed in between is then seen at least once
        pipe.zrange(keys.open_index(iid), 0, 0, withscores=True)
        pipe.zrange(keys.pending(iid), 0, -1)
        pipe.get(keys.integration(iid))
    replies = pipe.execute()
    rows = []
    batches: list[tuple[int, str, bool]] = []  # (row index, batch id, held)
    oldest: list[int | None] = []
    for n, iid in enumerate(iids):
        stats_raw, dead, upload, latency, last_success, first_open, pending, record = replies[8 * n : 8 * n + 8]
        rows.append(
            IntegrationCounters(
                iid,
                {text(k): int(v) for k, v in stats_raw.items()},
                len(dead),
                0,
                Histogram.from_hash(upload),
                Histogram.from_hash(latency),
                last_success_ms=int(last_success) if last_success else None,
                flush_interval_s=_flush_interval_s(record),
            )
        )
        oldest.append(int(first_open[0][1]) if first_open else None)
        batches += [(n, text(b), True) for b in dead]
        batches += [(n, text(b), False) for b in pending]
    events, nbytes = [0] * len(rows), [0] * len(rows)
    for start in range(0, len(batches), _CHUNK):
        chunk = batches[start : start + _CHUNK]
        for n, batch_id, held in chunk:
            fields = ("events", "bytes") if held else ("first_ms", "sealed_ms")
            pipe.hmget(keys.batch_meta(rows[n].integration_id, batch_id), fields)
        for (n, _, held), meta in zip(chunk, pipe.execute(), strict=True):
            if held:
                held_events, held_bytes = meta
                events[n] += int(held_events or 0)
                nbytes[n] += int(held_bytes or 0)
                continue
            first_ms, sealed_ms = meta
            if first_ms is None and sealed_ms is None:  # no metadata: delivered since the index was read
                continue
            appended_ms, current = int(first_ms or sealed_ms), oldest[n]
            oldest[n] = appended_ms if current is None else min(current, appended_ms)
    return [
        replace(row, dead_letter_events=events[n], dead_letter_bytes=nbytes[n], oldest_waiting_ms=oldest[n])
        for n, row in enumerate(rows)
    ]


def _flush_interval_s(record: bytes | None) -> float | None:
    """An integration's own flush interval, read from its record's public part (no secret is decrypted)."""
    if not record:
        return None
    try:
        value = orjson.loads(record)["config"].get("flush_interval_s")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def read_refusals(r: redis.Redis) -> dict[str, dict[str, dict[str, int]]]:
    """Refused collection requests and events of every source, by reason."""
    return sources.refusals(r, sorted(text(m) for m in r.smembers(keys.SOURCES)))


def refusal_families(refused: dict[str, dict[str, dict[str, int]]]) -> list[Metric]:
    labels = ["source_id", "reason"]
    requests = CounterMetricFamily(
        "signal_collect_refused_requests",
        "Collection requests refused per source: rate_limited (429) or origin_not_allowed (403).",
        labels=labels,
    )
    events = CounterMetricFamily(
        "signal_collect_refused_events",
        "Events in the collection requests refused per source, by reason.",
        labels=labels,
    )
    for source_id, reasons in sorted(refused.items()):
        for reason, counts in sorted(reasons.items()):
            requests.add_metric([source_id, reason], counts["requests"])
            events.add_metric([source_id, reason], counts["events"])
    return [requests, events]


def families(
    rows: Iterable[IntegrationCounters], *, now_ms: int | None = None, default_flush_interval_s: float = 60.0
) -> list[Metric]:
    """The metric families of the fleet, one labelled series per integration (and reason / error code).

    ``now_ms`` is the time the ages are measured at (default: the clock's now).
    """
    now_ms = clock.now_ms() if now_ms is None else now_ms
    iid = ["integration_id"]
    ingested = CounterMetricFamily("signal_events_ingested", "Events accepted into the buffers.", labels=iid)
    rejected = CounterMetricFamily("signal_events_rejected", "Events rejected, by reason.", labels=[*iid, "reason"])
    removed = CounterMetricFamily(
        "signal_events_removed",
        "Valid events the integration's blueprint removed "
        "(never written to S3), by reason: filtered_out, consent_denied.",
        labels=[*iid, "reason"],
    )
    fallback = CounterMetricFamily(
        "signal_events_partition_fallback",
        "Events of a partition_time timestamp "
        "integration whose timestamp was outside partition_time_bound_s, partitioned by "
        "their received hour.",
        labels=iid,
    )
    other = CounterMetricFamily(
        "signal_events_partition_other",
        "Events written under __other__: a value of a partition field beyond partition_max_values in its hour.",
        labels=iid,
    )
    buffered_events = GaugeMetricFamily(
        "signal_events_buffered",
        "Accepted events waiting for delivery (open buffers and sealed batches; held batches are in "
        "signal_dead_letter_events).",
        labels=iid,
    )
    buffered_bytes = GaugeMetricFamily(
        "signal_bytes_buffered",
        "Bytes of the events counted in signal_events_buffered (uncompressed JSON lines).",
        labels=iid,
    )
    oldest_age = GaugeMetricFamily(
        "signal_oldest_buffered_event_age_seconds",
        "Seconds since the oldest event waiting for delivery (open buffers and sealed batches, not held ones) was "
        "appended; 0 when nothing waits.",
        labels=iid,
    )
    interval = GaugeMetricFamily(
        "signal_flush_interval_seconds",
        "How old a buffer gets before it is written: the integration's flush_interval_s, else the fleet's "
        "SIGNAL_FLUSH_INTERVAL_S (the alert on stalled delivery scales with it).",
        labels=iid,
    )
    waiting = GaugeMetricFamily(
        "signal_waiting_since_last_delivery_seconds",
        "While events wait for delivery: seconds since the last object was delivered, or since the oldest waiting "
        "event was appended if that came later; 0 when nothing waits (an idle integration).",
        labels=iid,
    )
    objects = CounterMetricFamily("signal_objects_delivered", "Objects written to S3.", labels=iid)
    events = CounterMetricFamily("signal_events_delivered", "Events written to S3.", labels=iid)
    nbytes = CounterMetricFamily("signal_bytes_delivered", "Bytes written to S3 (gzipped object sizes).", labels=iid)
    failures = CounterMetricFamily(
        "signal_upload_failures", "Failed upload attempts, by AWS error code.", labels=[*iid, "code"]
    )
    retries = CounterMetricFamily(
        "signal_upload_retries", "Upload attempts that failed transiently and are retried.", labels=iid
    )
    dead_batches = GaugeMetricFamily("signal_dead_letter_batches", "Batches held in the dead-letter store.", labels=iid)
    dead_events = GaugeMetricFamily(
        "signal_dead_letter_events", "Events in the batches held in the dead-letter store.", labels=iid
    )
    upload = HistogramMetricFamily(
        "signal_upload_duration_seconds",
        "Duration of the successful upload attempt of each delivered batch.",
        labels=iid,
    )
    latency = HistogramMetricFamily(
        "signal_event_to_object_latency_seconds",
        "From the append of a batch's first event to its object confirmed by S3.",
        labels=iid,
    )
    for row in rows:
        label = [row.integration_id]
        ingested.add_metric(label, row.stats.get("ingested_events", 0))
        for reason, count in sorted(row.by_prefix("rejected:").items()):
            rejected.add_metric([*label, reason], count)
        for reason, count in sorted(row.by_prefix("removed:").items()):
            removed.add_metric([*label, reason], count)
        fallback.add_metric(label, row.stats.get(keys.STAT_PARTITION_FALLBACK, 0))
        other.add_metric(label, row.stats.get(keys.STAT_PARTITION_OTHER, 0))
        buffered_events.add_metric(label, row.buffered_events)
        buffered_bytes.add_metric(label, row.buffered_bytes)
        oldest_age.add_metric(label, row.oldest_waiting_age_s(now_ms))
        waiting.add_metric(label, row.waiting_since_delivery_s(now_ms))
        interval.add_metric(label, row.flush_interval_s or default_flush_interval_s)
        objects.add_metric(label, row.stats.get("delivered_objects", 0))
        events.add_metric(label, row.stats.get("delivered_events", 0))
        nbytes.add_metric(label, row.stats.get("delivered_bytes", 0))
        for code, count in sorted(row.by_prefix("failures:").items()):
            failures.add_metric([*label, code], count)
        retries.add_metric(label, row.stats.get("retries", 0))
        dead_batches.add_metric(label, row.dead_letter_batches)
        dead_events.add_metric(label, row.dead_letter_events)
        upload.add_metric(label, prometheus_buckets(row.upload, UPLOAD_BUCKETS_S), row.upload.sum_us / 1e6)
        latency.add_metric(label, prometheus_buckets(row.latency, LATENCY_BUCKETS_S), row.latency.sum_us / 1e6)
    return [
        ingested,
        rejected,
        removed,
        fallback,
        other,
        buffered_events,
        buffered_bytes,
        oldest_age,
        waiting,
        interval,
        objects,
        events,
        nbytes,
        failures,
        retries,
        dead_batches,
        dead_events,
        upload,
        latency,
    ]


class FleetCollector(Collector):
    """A prometheus_client collector reading the fleet's counters from Redis at every scrape."""

    def __init__(self, r: redis.Redis) -> None:
        self._r = r

    def describe(self) -> list[Metric]:
        return []  # registering must not touch Redis

    def collect(self) -> Iterator[Metric]:
        yield from families(read(self._r), default_flush_interval_s=get_settings().flush_interval_s)
        yield from refusal_families(read_refusals(self._r))


def fleet_registry(r: redis.Redis, *, process_metrics: bool = False) -> CollectorRegistry:
    """A registry holding only the fleet's metrics (and this process's, when asked)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(FleetCollector(r))
    if process_metrics:
        ProcessCollector(registry=reg)
    return reg


def render(r: redis.Redis, accept: str | None = None) -> tuple[bytes, str]:
    """The fleet's metrics as an HTTP body and its Content-Type, for GET /metrics.

    ``accept`` is the request's Accept header (OpenMetrics when asked for, else the Prometheus text format). Any
    replica serves the same numbers: the process's own metrics are left out.
    """
    encoder, content_type = choose_encoder(accept or "")
    return encoder(fleet_registry(r)), content_type


def serve(
    r: redis.Redis, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, on_ready: Callable[[str], None] | None = None
) -> None:
    """Serve the fleet's and this process's metrics over HTTP until SIGTERM or SIGINT (``signal-s3 metrics``).

    ``on_ready`` gets the URL once the port is bound; OSError when it cannot be bound.
    """
    server, thread = start_http_server(port, addr=host, registry=fleet_registry(r, process_metrics=True))
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    if on_ready is not None:
        on_ready(f"http://{host}:{server.server_port}/metrics")
    try:
        stop.wait()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
