"""The delivery overview's counters and the object ledger, written by the buffer's scripts in the steps they count:
appended, filtered and rejected once per message, delivered and recorded once per object, held and taken back by a
replay; the funnel adds up, the ledger's sums are the overview's."""

from __future__ import annotations

import uuid

import fakeredis
import pytest

from workers import clock
from workers.integrations import overview as views
from workers.store import buffer, chunks, keys, ledger, overview
from workers.store.histograms import LATENCY_BUCKETS_S

IID = "int-ov"
HOUR = "2026120705"
HOUR_PATH = "2026/12/07/05"
T0 = 1_796_619_600_000  # 2026-12-07T05:00:00Z
assert clock.hour_of_ms(T0) == HOUR


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


def append(r, n, *, now=T0, message_id="m1", rejected=None, removed=None, cap=1_000_000):
    return chunks.append(
        r,
        IID,
        chunks.Append(
            message_id=message_id,
            now_ms=now,
            chunks_by_hour=chunks.chunks({HOUR: [b'{"event_id":"e%d"}' % i for i in range(n)]}),
            rejection_counts=rejected or {},
            removed_counts=removed or {},
        ),
        chunks.Limits(cap_bytes=cap, batch_max_events=1000, batch_max_bytes=10**6, seal_due_ms=now, seen_ttl_ms=60_000),
    )


def counts(r, hour=HOUR) -> overview.Hour:
    return views.read_hours(r, [IID], [hour])[hour]


def deliver(r, batch_id, *, now, etag="0123456789abcdef0123456789abcdef"):
    c = buffer.claim(
        r, IID, batch_id, token="t", now_ms=now - 10, lease_ms=60_000, key=f"p/{HOUR_PATH}/{batch_id}.json.gz"
    )
    record = ledger.Record(
        key=c.key,
        hour=c.hour,
        events=c.events,
        raw_bytes=c.bytes,
        bytes=c.events * 3,
        first_ms=c.first_ms,
        last_ms=c.last_ms,
        written_ms=now,
        upload_ms=120,
        attempts=c.attempts,
        etag=etag,
        bucket="my-bucket",
    )
    return buffer.ack(
        r,
        IID,
        batch_id,
        now_ms=now,
        compressed_bytes=c.events * 3,
        key=c.key,
        ledger_record=ledger.pack(record, prefix="p/"),
    )


def test_one_message_counts_what_it_accepted_filtered_and_rejected_in_the_hour_it_arrived(r):
    append(r, 5, rejected={"invalid_type": 2}, removed={"consent_denied": 3})
    append(r, 5, message_id="m1")  # redelivered: counts nothing
    h = counts(r)
    assert (h.accepted, h.filtered, h.rejected, h.received) == (5, {"consent_denied": 3}, {"invalid_type": 2}, 10)
    assert r.ttl(keys.overview(IID, overview.block_of(HOUR))) > 7 * 86400


def test_events_over_the_buffer_cap_are_rejected_as_buffer_full_in_the_overview(r):
    append(r, 4, cap=len(b'{"event_id":"e0"}') * 5)
    append(r, 6, cap=len(b'{"event_id":"e0"}') * 5, message_id="m2")  # the message's chunk would pass the cap
    h = counts(r)
    assert (h.accepted, h.rejected) == (4, {"buffer_full": 6})


def test_a_delivery_counts_events_objects_bytes_and_latency_once_and_records_the_object_once(r):
    append(r, 4, now=T0 + 1000)
    append(r, 2, now=T0 + 7000, message_id="m2")
    batch = buffer.seal(r, IID, HOUR, now_ms=T0 + 60_000, seal_due_ms=T0 + 60_000)
    written = T0 + 3_600_000 + 90_000  # confirmed in the next hour
    assert deliver(r, batch, now=written) is True
    assert buffer.ack(r, IID, batch, now_ms=written + 1, compressed_bytes=1, key="x") is False  # again: nothing
    later = clock.hour_of_ms(written)
    h = counts(r, later)
    assert (h.delivered, h.objects, h.bytes) == (6, 1, 18)
    bucket = next(k for k, bound in enumerate(LATENCY_BUCKETS_S) if (written - (T0 + 1000)) / 1000 <= bound)
    assert h.latency[bucket] == 6 and sum(h.latency) == 6
    [rec] = ledger.records_between(r, IID, written, written)
    assert (rec.key, rec.hour, rec.events, rec.bytes, rec.attempts) == (
        f"p/{HOUR_PATH}/{batch}.json.gz",
        HOUR,
        6,
        18,
        1,
    )
    assert (rec.first_ms, rec.last_ms, rec.written_ms, rec.upload_ms) == (T0 + 1000, T0 + 7000, written, 120)
    assert rec.raw_bytes == 6 * len(b'{"event_id":"e0"}') and rec.etag == "0123456789abcdef0123456789abcdef"
    assert rec.batch_id == batch
    # the ledger's sums per hour are the overview's
    assert (rec.events, 1, rec.bytes) == (h.delivered, h.objects, h.bytes)


def test_held_counts_the_events_still_held_in_the_hour_they_were_held(r):
    append(r, 3)
    batch = buffer.seal(r, IID, HOUR, now_ms=T0 + 1, seal_due_ms=T0 + 1)
    held_at = T0 + 2 * 3_600_000
    buffer.hold(r, IID, batch, token="", now_ms=held_at, code="AccessDenied", message="m", hint="h")
    buffer.hold(r, IID, batch, token="", now_ms=held_at + 5, code="AccessDenied", message="m", hint="h")  # retried
    held_hour = clock.hour_of_ms(held_at)
    assert counts(r, held_hour).held == 3
    first_failure = buffer.batch_meta(r, IID, batch)["first_failure_ms"]

    assert buffer.release(r, IID, batch, due_ms=held_at + 10) == "ok"  # a replay: back in line, not held
    assert counts(r, held_hour).held == 0
    assert buffer.batch_meta(r, IID, batch)["first_failure_ms"] == first_failure  # kept through the replay

    again = held_at + 3_600_000  # the replay fails again: held in that hour
    buffer.hold(r, IID, batch, token="", now_ms=again, code="AccessDenied", message="m", hint="h")
    assert counts(r, clock.hour_of_ms(again)).held == 3 and counts(r, held_hour).held == 0
    assert buffer.batch_meta(r, IID, batch)["first_failure_ms"] == first_failure


def test_a_replay_starts_the_retry_age_again_but_keeps_the_first_failure(r):
    append(r, 1)
    batch = buffer.seal(r, IID, HOUR, now_ms=T0, seal_due_ms=T0)
    c = buffer.claim(r, IID, batch, token="a", now_ms=T0, lease_ms=1000, key="k")
    buffer.fail(r, IID, batch, token="a", now_ms=T0 + 5, retry_at_ms=T0 + 10, code="SlowDown", message="m")
    buffer.hold(r, IID, batch, token="", now_ms=T0 + 20, code="AccessDenied", message="m", hint="h")
    buffer.release(r, IID, batch, due_ms=T0 + 30)
    c = buffer.claim(r, IID, batch, token="b", now_ms=T0 + 40, lease_ms=1000, key="k")
    assert c.retry_since_ms is None  # the retry age starts again
    assert buffer.batch_meta(r, IID, batch)["first_failure_ms"] == str(T0 + 5)


def test_the_funnel_adds_up_over_a_closed_window(r):
    append(r, 6, rejected={"invalid_type": 1}, removed={"filtered_out": 2})
    append(r, 4, message_id="m2", now=T0 + 10)
    delivered = buffer.seal(r, IID, HOUR, now_ms=T0 + 20, seal_due_ms=T0 + 20)
    deliver(r, delivered, now=T0 + 30)
    append(r, 5, message_id="m3", now=T0 + 40)
    held = buffer.seal(r, IID, HOUR, now_ms=T0 + 50, seal_due_ms=T0 + 50)
    buffer.hold(r, IID, held, token="", now_ms=T0 + 60, code="NoSuchBucket", message="m", hint="h")
    append(r, 3, message_id="m4", now=T0 + 70)  # still buffered
    pending = buffer.seal(r, IID, HOUR, now_ms=T0 + 80, seal_due_ms=T0 + 80)
    assert pending is not None
    append(r, 2, message_id="m5", now=T0 + 90)  # still in the open buffer

    total = overview.total(views.read_hours(r, [IID], [HOUR]).values())
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.stats(IID)).items()}
    held_events = 5
    buffered_now = stats["buffered_events"] - held_events
    assert total.received == 6 + 1 + 2 + 4 + 5 + 3 + 2
    assert total.received == (
        sum(total.filtered.values()) + sum(total.rejected.values()) + total.delivered + total.held + buffered_now
    )
    assert (total.delivered, total.held, buffered_now) == (10, 5, 5)


def test_blocks_hold_six_hours_each_and_parse_back_by_hour():
    assert overview.block_of("2026120705") == "20261207.0"
    assert overview.block_of("2026120706") == "20261207.1"
    assert overview.block_of("2026120723") == "20261207.3"
    parsed = overview.parse_block("20261207.0", {"05a": 3, "05f:consent_denied": 1, "04d": 2, "04l2": 2, "04l+": 1})
    assert parsed["2026120705"].accepted == 3 and parsed["2026120705"].filtered == {"consent_denied": 1}
    assert parsed["2026120704"].delivered == 2 and parsed["2026120704"].latency[2] == 2
    assert parsed["2026120704"].latency[len(LATENCY_BUCKETS_S)] == 1


def test_latency_quantiles_interpolate_within_their_bucket():
    h = overview.Hour("x")
    assert h.latency_quantile(0.5) is None
    h.latency[LATENCY_BUCKETS_S.index(60)] = 10  # 10 events in (30 s, 60 s]
    assert h.latency_quantile(0.5) == pytest.approx(45.0)
    assert h.latency_quantile(0.95) == pytest.approx(58.5)
    h.latency[len(LATENCY_BUCKETS_S)] = 90  # most beyond the last bound
    assert h.latency_quantile(0.95) == LATENCY_BUCKETS_S[-1]


def test_the_ledger_pages_newest_first_with_a_cursor(r):
    recs = [
        ledger.Record(f"p/{HOUR_PATH}/{uuid.uuid4()}.json.gz", HOUR, n, n, n, T0, T0, T0 + n * 3 * 3_600_000, 1, 1, "e")
        for n in range(1, 13)
    ]  # a day and a half of records, three hours apart
    for rec in recs:
        day = clock.hour_of_ms(rec.written_ms)[:8]
        header, body = ledger.pack(rec, prefix="p/")
        r.rpush(keys.ledger(IID, day), header, body)
    seen: list[str] = []
    cursor = None
    while True:
        page = ledger.read(r, IID, since_ms=T0, until_ms=T0 + 40 * 3_600_000, cursor=cursor, limit=5)
        seen += [rec.key for rec in page.records]
        cursor = page.cursor
        if cursor is None:
            break
    assert seen == [rec.key for rec in reversed(recs)]
    window = ledger.read(r, IID, since_ms=T0 + 6 * 3_600_000, until_ms=T0 + 12 * 3_600_000, limit=100)
    assert [rec.events for rec in window.records] == [4, 3, 2]


@pytest.mark.parametrize(
    ("key", "etag"),
    [
        (f"events/{HOUR_PATH}/{uuid.UUID(int=7)}.json.gz", "0123456789abcdef0123456789abcdef"),
        (f"events/{HOUR_PATH}/{uuid.UUID(int=8)}.parquet", "0123456789abcdef0123456789abcdef-12"),
        (f"events/dt={HOUR[0:4]}-{HOUR[4:6]}-{HOUR[6:8]}/hr={HOUR[8:10]}/{uuid.UUID(int=9)}.parquet", "0" * 32),
        ("événements/elsewhere/odd-name.json.gz", "not-an-md5"),  # kept whole
    ],
)
def test_a_record_round_trips_with_its_key_rebuilt_or_kept_whole(key: str, etag: str):
    rec = ledger.Record(key, HOUR, 1, 2, 3, T0 - 5000, T0 - 10, T0, 7, 8, etag, "my.bucket-1")
    header, body = ledger.pack(rec, prefix="events/")
    assert list(ledger.unpack(header + body + body, clock.hour_of_ms(T0)[:8])) == [rec, rec]
    assert len(body) <= 60 + (len(key.encode()) + 2 if "odd" in key else 0)  # binary uuid and MD5, no key


def test_the_header_is_written_once_a_day_until_it_changes(r):
    append(r, 2)
    first = buffer.seal(r, IID, HOUR, now_ms=T0 + 1, seal_due_ms=T0 + 1)
    deliver(r, first, now=T0 + 100)
    append(r, 2, message_id="m2")
    second = buffer.seal(r, IID, HOUR, now_ms=T0 + 200, seal_due_ms=T0 + 200)
    deliver(r, second, now=T0 + 300)
    elements = r.lrange(keys.ledger(IID, HOUR[:8]), 0, -1)
    assert len(elements) == 3 and elements[0].count(b"my-bucket") == 1  # the header once, then two objects
    assert [rec.batch_id for rec in ledger.unpack(b"".join(elements), HOUR[:8])] == [first, second]


def test_a_day_whose_layout_changes_rebuilds_each_key_in_its_own_layout():
    path_key = f"events/{HOUR_PATH}/{uuid.UUID(int=10)}.json.gz"
    hive_key = f"events/dt={HOUR[0:4]}-{HOUR[4:6]}-{HOUR[6:8]}/hr={HOUR[8:10]}/{uuid.UUID(int=11)}.json.gz"
    recs = [ledger.Record(k, HOUR, 1, 2, 3, T0 - 5, T0 - 1, T0, 7, 1, "0" * 32, "b") for k in (path_key, hive_key)]
    (h1, b1), (h2, b2) = (ledger.pack(rec, prefix="events/") for rec in recs)
    assert h1 != h2 and b"K" not in (b1[2:3], b2[2:3])
    assert list(ledger.unpack(h1 + b1 + h2 + b2 + h1 + b1, clock.hour_of_ms(T0)[:8])) == [*recs, recs[0]]
