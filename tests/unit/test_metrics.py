"""The Prometheus collector reads the fleet's counters and histograms from Redis at scrape time."""

from __future__ import annotations

import fakeredis
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from tests.support.seed import install_body
from workers import clock
from workers.integrations import registry
from workers.observe import metrics
from workers.settings import get_settings
from workers.store import buffer, chunks, histograms, keys

A, B = "int-a", "int-b"
HOUR = "2026112509"
T0 = 1_764_061_200_000


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    client.sadd(keys.INTEGRATIONS, A, B)
    return client


def append(r, iid, n, *, now, message_id, rejections=None):
    lines = [f"{message_id}-{i:04d}".encode() for i in range(n)]
    return chunks.append(
        r,
        iid,
        chunks.Append(
            message_id=message_id,
            now_ms=now,
            chunks_by_hour=chunks.chunks({HOUR: lines}),
            rejection_counts=rejections or {},
        ),
        chunks.Limits(
            cap_bytes=1_000_000,
            batch_max_events=1000,
            batch_max_bytes=1_000_000,
            seal_due_ms=now + 300_000,
            seen_ttl_ms=60_000,
        ),
    )


def seal_and_claim(r, iid, *, now):
    batch_id = buffer.seal(r, iid, HOUR, now_ms=now, seal_due_ms=now + 300_000)
    assert batch_id
    claim = buffer.claim(r, iid, batch_id, token="t", now_ms=now, lease_ms=60_000, key=f"k/{batch_id}")
    assert claim.state == "ok"
    return batch_id


def hold(r, iid, batch_id, *, now):
    assert buffer.hold(r, iid, batch_id, token="t", now_ms=now, code="AccessDenied", message="no", hint="") == "ok"


def scrape(r, accept=None):
    body, content_type = metrics.render(r, accept)
    samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples, content_type


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def test_every_counter_of_every_integration_is_read_from_redis(r):
    append(r, A, 5, now=T0, message_id="m1", rejections={"invalid_type": 2, "missing_event": 1})
    append(r, A, 2, now=T0 + 10_000, message_id="m2")
    b1 = seal_and_claim(r, A, now=T0 + 30_000)
    buffer.fail(r, A, b1, token="t", now_ms=T0 + 31_000, retry_at_ms=T0 + 32_000, code="SlowDown", message="slow")
    buffer.claim(r, A, b1, token="t2", now_ms=T0 + 33_000, lease_ms=60_000, key="ignored")
    assert buffer.ack(r, A, b1, now_ms=T0 + 90_000, compressed_bytes=321, key=f"k/{b1}", upload_s=0.3)
    append(r, A, 3, now=T0 + 100_000, message_id="m3")
    b2 = seal_and_claim(r, A, now=T0 + 110_000)
    buffer.hold(r, A, b2, token="t", now_ms=T0 + 111_000, code="AccessDenied", message="no", hint="fix it")
    append(r, A, 4, now=T0 + 120_000, message_id="m4")  # still open

    samples, content_type = scrape(r)
    assert content_type.startswith("text/plain")
    a = {"integration_id": A}
    assert value(samples, "signal_events_ingested_total", **a) == 14
    assert value(samples, "signal_events_rejected_total", **a, reason="invalid_type") == 2
    assert value(samples, "signal_events_rejected_total", **a, reason="missing_event") == 1
    assert value(samples, "signal_events_buffered", **a) == 4  # open; the 3 held are signal_dead_letter_events
    assert value(samples, "signal_bytes_buffered", **a) == 4 * 7
    assert value(samples, "signal_objects_delivered_total", **a) == 1
    assert value(samples, "signal_events_delivered_total", **a) == 7
    assert value(samples, "signal_bytes_delivered_total", **a) == 321
    assert value(samples, "signal_upload_failures_total", **a, code="SlowDown") == 1
    assert value(samples, "signal_upload_failures_total", **a, code="AccessDenied") == 1
    assert value(samples, "signal_upload_retries_total", **a) == 1
    assert value(samples, "signal_dead_letter_batches", **a) == 1
    assert value(samples, "signal_dead_letter_events", **a) == 3

    # one upload of 0.3 s
    up = "signal_upload_duration_seconds"
    assert value(samples, f"{up}_bucket", **a, le="0.25") == 0
    assert value(samples, f"{up}_bucket", **a, le="0.5") == 1
    assert value(samples, f"{up}_bucket", **a, le="300.0") == 1
    assert value(samples, f"{up}_bucket", **a, le="+Inf") == 1
    assert value(samples, f"{up}_count", **a) == 1
    assert value(samples, f"{up}_sum", **a) == pytest.approx(0.3)
    # latency from the first append (T0), not the seal: 90 s
    lat = "signal_event_to_object_latency_seconds"
    assert value(samples, f"{lat}_bucket", **a, le="60.0") == 0
    assert value(samples, f"{lat}_bucket", **a, le="120.0") == 1
    assert value(samples, f"{lat}_bucket", **a, le="+Inf") == 1
    assert value(samples, f"{lat}_count", **a) == 1
    assert value(samples, f"{lat}_sum", **a) == 90.0

    # an integration without traffic has every series at zero, and no reason / code series
    b = {"integration_id": B}
    for name in (
        "signal_events_ingested_total",
        "signal_events_buffered",
        "signal_bytes_buffered",
        "signal_oldest_buffered_event_age_seconds",
        "signal_waiting_since_last_delivery_seconds",
        "signal_objects_delivered_total",
        "signal_events_delivered_total",
        "signal_bytes_delivered_total",
        "signal_upload_retries_total",
        "signal_dead_letter_batches",
        "signal_dead_letter_events",
        f"{up}_count",
        f"{lat}_count",
    ):
        assert value(samples, name, **b) == 0, name
    assert value(samples, f"{lat}_bucket", **b, le="+Inf") == 0
    assert not [k for k in samples if k[0] == "signal_events_rejected_total" and ("integration_id", B) in k[1]]


def test_a_batch_acked_twice_is_counted_and_observed_once(r):
    append(r, A, 3, now=T0, message_id="m1")
    b = seal_and_claim(r, A, now=T0 + 1000)
    assert buffer.ack(r, A, b, now_ms=T0 + 2000, compressed_bytes=10, key="k", upload_s=0.01) is True
    assert buffer.ack(r, A, b, now_ms=T0 + 9000, compressed_bytes=10, key="k", upload_s=0.01) is False
    samples, _ = scrape(r)
    a = {"integration_id": A}
    assert value(samples, "signal_objects_delivered_total", **a) == 1
    assert value(samples, "signal_upload_duration_seconds_count", **a) == 1
    assert value(samples, "signal_event_to_object_latency_seconds_count", **a) == 1
    assert value(samples, "signal_event_to_object_latency_seconds_sum", **a) == 2.0


def test_every_batch_keeps_the_first_append_of_its_own_events(r):
    def add(n, now, message_id):
        return chunks.append(
            r,
            A,
            chunks.Append(message_id=message_id, now_ms=now, chunks_by_hour=chunks.chunks({HOUR: [b"x" * 10] * n})),
            chunks.Limits(
                cap_bytes=10_000, batch_max_events=2, batch_max_bytes=10_000, seal_due_ms=now + 1, seen_ttl_ms=60_000
            ),
        )

    full = add(3, T0, "m1").sealed  # two events sealed at once, the third opens the next buffer at T0
    full += add(1, T0 + 5000, "m2").sealed  # completes that buffer: sealed, first append still T0
    add(1, T0 + 9000, "m3")  # a fresh buffer
    last = buffer.seal(r, A, HOUR, now_ms=T0 + 10_000, seal_due_ms=T0 + 10_001)
    firsts = [int(buffer.batch_meta(r, A, b)["first_ms"]) for b in [*full, last]]
    assert firsts == [T0, T0, T0 + 9000]


def test_dead_letter_events_are_summed_over_many_held_batches(r, monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK", 2)
    for n in range(5):
        append(r, B, n + 1, now=T0 + n, message_id=f"m{n}")
        b = seal_and_claim(r, B, now=T0 + n)
        buffer.hold(r, B, b, token="t", now_ms=T0 + n, code="NoSuchBucket", message="gone", hint="")
    samples, _ = scrape(r)
    assert value(samples, "signal_dead_letter_batches", integration_id=B) == 5
    assert value(samples, "signal_dead_letter_events", integration_id=B) == 1 + 2 + 3 + 4 + 5
    assert value(samples, "signal_upload_failures_total", integration_id=B, code="NoSuchBucket") == 5


def test_openmetrics_is_served_when_asked_for(r):
    body, content_type = metrics.render(r, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    assert b"signal_events_ingested_total" in body


def test_registering_the_collector_does_not_touch_redis():
    server = fakeredis.FakeServer()
    server.connected = False
    reg = metrics.fleet_registry(fakeredis.FakeRedis(server=server), process_metrics=True)
    with pytest.raises(redis.ConnectionError):  # a scrape fails visibly (HTTP 500: the target is down)
        list(reg.collect())


def test_histogram_bucket_fields_match_the_lua_arguments():
    args = histograms.lua_buckets((0.5, 1, 300))
    assert args == [3, "le:0.5", 500_000, "le:1", 1_000_000, "le:300", 300_000_000]


def test_collection_refusals_are_counted_per_source_and_reason(r):
    from workers.integrations import sources

    r.sadd(keys.SOURCES, "src-1", "src-2")
    counter = sources.Refusals()
    for _ in range(3):
        counter.add("src-1", sources.RATE_LIMITED, 10)
    counter.add("src-2", sources.ORIGIN_NOT_ALLOWED, 0)
    counter.flush(r)
    samples, _ = scrape(r)
    assert value(samples, "signal_collect_refused_requests_total", source_id="src-1", reason="rate_limited") == 3
    assert value(samples, "signal_collect_refused_events_total", source_id="src-1", reason="rate_limited") == 30
    assert value(samples, "signal_collect_refused_requests_total", source_id="src-2", reason="origin_not_allowed") == 1
    assert value(samples, "signal_collect_refused_requests_total", source_id="src-2", reason="rate_limited") == 0


def test_held_events_are_not_buffered_until_a_replay_puts_them_back_in_line(r):
    append(r, A, 3, now=T0, message_id="m1")
    held = seal_and_claim(r, A, now=T0 + 1000)
    hold(r, A, held, now=T0 + 2000)
    append(r, A, 2, now=T0 + 3000, message_id="m2")
    a = {"integration_id": A}

    samples, _ = scrape(r)
    assert value(samples, "signal_events_buffered", **a) == 2
    assert value(samples, "signal_bytes_buffered", **a) == 2 * 7
    assert value(samples, "signal_dead_letter_events", **a) == 3

    assert buffer.release(r, A, held, due_ms=T0 + 4000) == "ok"  # replayed: waiting for delivery again
    samples, _ = scrape(r)
    assert value(samples, "signal_events_buffered", **a) == 5
    assert value(samples, "signal_bytes_buffered", **a) == 5 * 7
    assert value(samples, "signal_dead_letter_events", **a) == 0

    assert buffer.ack(r, A, held, now_ms=T0 + 5000, compressed_bytes=10, key="k")
    samples, _ = scrape(r)
    assert value(samples, "signal_events_buffered", **a) == 2


def ages(r, monkeypatch, now):
    """The two waiting gauges of integration A, scraped at ``now``."""
    monkeypatch.setattr(clock, "now_ms", lambda: now)
    samples, _ = scrape(r)
    a = {"integration_id": A}
    return (
        value(samples, "signal_oldest_buffered_event_age_seconds", **a),
        value(samples, "signal_waiting_since_last_delivery_seconds", **a),
    )


def test_the_oldest_waiting_event_is_found_in_open_buffers_and_pending_batches_but_not_held_ones(r, monkeypatch):
    assert ages(r, monkeypatch, T0) == (0, 0)  # nothing was ever sent
    append(r, A, 1, now=T0, message_id="m1")
    hold(r, A, seal_and_claim(r, A, now=T0 + 1000), now=T0 + 2000)
    assert ages(r, monkeypatch, T0 + 600_000) == (0, 0)  # held events wait for a person, not for delivery

    append(r, A, 2, now=T0 + 10_000, message_id="m2")
    assert ages(r, monkeypatch, T0 + 70_000) == (60, 60)  # an open buffer: its first append

    seal_and_claim(r, A, now=T0 + 80_000)  # sealed and uploading: still waiting
    append(r, A, 1, now=T0 + 90_000, message_id="m3")  # a newer open buffer
    assert ages(r, monkeypatch, T0 + 310_000) == (300, 300)


def test_a_pending_batch_without_its_first_append_counts_from_its_seal(r, monkeypatch):
    append(r, A, 2, now=T0, message_id="m1")
    batch_id = buffer.seal(r, A, HOUR, now_ms=T0 + 30_000, seal_due_ms=T0 + 60_000)
    r.hdel(keys.batch_meta(A, batch_id), "first_ms")  # a batch sealed before first_ms was recorded
    assert ages(r, monkeypatch, T0 + 90_000) == (60, 60)


def test_waiting_since_the_last_delivery_is_zero_while_idle_and_grows_while_nothing_is_delivered(r, monkeypatch):
    append(r, A, 2, now=T0, message_id="m1")
    delivered = seal_and_claim(r, A, now=T0 + 60_000)
    assert buffer.ack(r, A, delivered, now_ms=T0 + 61_000, compressed_bytes=10, key="k")
    later = T0 + 10 * 86_400_000
    assert ages(r, monkeypatch, later) == (0, 0)  # idle for ten days: nothing waits, nothing is late

    # an event after the idle days: late from its own append, not from the last delivery ten days ago
    append(r, A, 1, now=later, message_id="m2")
    assert ages(r, monkeypatch, later + 30_000) == (30, 30)

    # S3 fails: the batch retries and nothing is delivered, so both grow
    stuck = seal_and_claim(r, A, now=later + 60_000)
    outcome = buffer.fail(
        r, A, stuck, token="t", now_ms=later + 61_000, retry_at_ms=later + 120_000, code="SlowDown", message="slow"
    )
    assert outcome == "ok"
    append(r, A, 1, now=later + 100_000, message_id="m3")
    assert ages(r, monkeypatch, later + 3_600_000) == (3600, 3600)

    # the retried batch is delivered; the newer event still waits, but an object came 100 s ago
    assert buffer.ack(r, A, stuck, now_ms=later + 3_500_000, compressed_bytes=10, key="k2")
    assert ages(r, monkeypatch, later + 3_600_000) == (3500, 100)


def test_a_scrape_reads_every_batch_in_bounded_round_trips(r, monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK", 2)
    firsts = [T0 + 5000, T0 + 1000, T0 + 9000]
    for n, first in enumerate(firsts):  # three pending batches, the oldest in the middle
        append(r, A, 1, now=first, message_id=f"p{n}")
        seal_and_claim(r, A, now=T0 + 20_000)
    for n in range(2):  # two held ones, older still
        append(r, A, 1, now=T0 - 1000, message_id=f"h{n}")
        hold(r, A, seal_and_claim(r, A, now=T0), now=T0)
    r.zadd(keys.pending(A), {"delivered-meanwhile": T0})  # its metadata is gone: skipped
    executes = []
    pipeline = r.pipeline

    def counting_pipeline(*args, **kwargs):
        pipe = pipeline(*args, **kwargs)
        execute = pipe.execute
        pipe.execute = lambda *a, **k: executes.append(1) or execute(*a, **k)
        return pipe

    monkeypatch.setattr(r, "pipeline", counting_pipeline)
    (row,) = [c for c in metrics.read(r) if c.integration_id == A]
    assert row.oldest_waiting_ms == T0 + 1000
    assert (row.dead_letter_batches, row.dead_letter_events, row.dead_letter_bytes) == (2, 2, 2 * 7)
    assert len(executes) == 1 + 3  # the counters, then 6 batches' metadata 2 at a time


def test_the_flush_interval_each_integration_waits_is_served_for_the_stall_alert():
    r = fakeredis.FakeRedis()
    hourly = registry.install(r, {**install_body(), "config": {**install_body()["config"], "flush_interval_s": 3600}})
    default = registry.install(r, install_body())
    body, _ = metrics.render(r)
    served = {
        s.labels["integration_id"]: s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "signal_flush_interval_seconds"
    }
    assert served == {hourly.id: 3600.0, default.id: get_settings().flush_interval_s}
