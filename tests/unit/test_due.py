"""The due index and the tick that reads it: a tick looks at the integrations whose time has come, and no buffer or
batch is ever forgotten, whatever order the tick and the writers run in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import fakeredis
import pytest

from workers import clock
from workers.integrations import manage, registry
from workers.pipeline import flush, replay, upload
from workers.pipeline import ingest as ingesting
from workers.settings import Settings
from workers.store import buffer, due, keys

T0 = 1_764_061_200_000  # 2025-11-25 09:00 UTC
SETTINGS = Settings(flush_interval_s=60)


@pytest.fixture
def r() -> fakeredis.FakeRedis:
    return fakeredis.FakeRedis()


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], None]:
    """``at(ms)``: the one clock reads ``ms`` from now on."""

    def set_now(ms: int) -> None:
        monkeypatch.setattr(clock, "now_ms", lambda: ms)
        monkeypatch.setattr(clock, "now", lambda: datetime.fromtimestamp(ms / 1000, UTC))

    set_now(T0)
    return set_now


def install(r: fakeredis.FakeRedis, **config: object) -> str:
    return registry.install(
        r,
        {
            "name": "S3",
            "config": {
                "bucket": "signal-events",
                "region": "us-east-1",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                **config,
            },
        },
    ).id


def ingest(r: fakeredis.FakeRedis, iid: str, n: int = 3, message_id: str = "m") -> ingesting.IngestResult:
    events = [{"type": "track", "event": "e", "user_id": "u"} for _ in range(n)]
    return ingesting.ingest(r, iid, events, message_id=message_id, settings=SETTINGS)


def score(r: fakeredis.FakeRedis, iid: str) -> float | None:
    return r.zscore(keys.DUE, iid)


def looked_at(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The integrations the next ticks look at."""
    seen: list[str] = []
    original = flush._flush_chunk

    def spy(r: object, candidates: list[tuple[str, float | None]], *args: object, **kwargs: object) -> object:
        seen.extend(iid for iid, _ in candidates)
        return original(r, candidates, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flush, "_flush_chunk", spy)
    return seen


# -- the index ------------------------------------------------------------------------------------------------------


def test_writers_only_ever_lower_a_score(r):
    due.lower(r, "a", 500)
    due.lower(r, "a", 900)
    assert score(r, "a") == 500
    due.lower(r, "a", 100)
    assert score(r, "a") == 100


def test_the_tick_moves_what_it_read_and_only_lowers_what_was_written_meanwhile(r):
    for iid in ("unchanged", "written", "gone"):
        due.lower(r, iid, 100)
    read = dict(due.due(r, 100))
    # between the tick's read and its update, an append opened a buffer due later than the score the tick read:
    # the score does not change, the version does
    due.lower(r, "written", 700)
    assert score(r, "written") == 100
    due.reschedule(
        r,
        [
            ("unchanged", read["unchanged"], due.IDLE_MS),
            ("written", read["written"], due.IDLE_MS),
            ("gone", read["gone"], None),
        ],
    )
    assert score(r, "unchanged") == due.IDLE_MS  # the tick may move what it read later
    assert score(r, "written") == 100  # but never past a write it did not see: lowered only
    assert score(r, "gone") is None
    due.lower(r, "unchanged", 700)
    assert score(r, "unchanged") == 700  # an idle integration comes back with its next buffer
    due.reschedule(r, [("unchanged", None, 900)])  # not read: only lowered
    assert score(r, "unchanged") == 700


def test_buffer_due_time_follows_the_integrations_interval():
    assert due.buffer_due_ms(T0, 60_000, 60_000) == T0  # at the tick's pace: the next tick
    assert due.buffer_due_ms(T0, 300_000, 60_000) == T0 + 270_000  # as old as its interval, within half a tick


# -- the tick -------------------------------------------------------------------------------------------------------


def test_a_tick_looks_only_at_what_is_due(r, at, monkeypatch):
    busy = install(r)
    idle = [install(r) for _ in range(40)]
    assert due.claim_check(r)  # the periodic check of every integration is not due
    seen = looked_at(monkeypatch)
    ingest(r, busy)
    work = flush.flush_due(r, settings=SETTINGS)
    assert seen == [busy] and [iid for iid, _ in work] == [busy]
    seen.clear()
    at(T0 + 60_000)
    assert flush.flush_due(r, settings=SETTINGS) == [] and seen == []  # its batch is not due before its lease
    assert set(r.zrange(keys.DUE, 0, -1)) == {busy.encode()}
    assert not any(score(r, i) for i in idle)


def test_a_slow_integrations_buffer_is_sealed_once_it_is_as_old_as_its_interval(r, at):
    due.claim_check(r)
    iid = install(r, flush_interval_s=300)
    assert ingest(r, iid).accepted == 3
    assert score(r, iid) == T0 + 270_000
    at(T0 + 269_999)
    assert flush.flush_due(r, settings=SETTINGS) == []
    at(T0 + 270_000)
    [(got, batch_id)] = flush.flush_due(r, settings=SETTINGS)
    assert got == iid and int(buffer.batch_meta(r, iid, batch_id)["events"]) == 3
    assert score(r, iid) == T0 + 270_000 + int(SETTINGS.lease_s * 1000)  # the sweep's time for the batch


def test_a_batch_whose_lease_ran_out_is_swept_and_a_delivered_one_parks_the_integration(r, at):
    due.claim_check(r)
    iid = install(r)
    ingest(r, iid)
    [(_, batch_id)] = flush.flush_due(r, settings=SETTINGS)
    lease_ms = int(SETTINGS.lease_s * 1000)
    buffer.claim(r, iid, batch_id, token="t", now_ms=T0 + 1000, lease_ms=lease_ms, key="k")  # its worker dies
    at(T0 + lease_ms)
    assert flush.flush_due(r, settings=SETTINGS) == []  # looked at, the lease still runs: moved to its end
    assert score(r, iid) == T0 + 1000 + lease_ms
    at(T0 + 1000 + lease_ms)
    assert flush.flush_due(r, settings=SETTINGS) == [(iid, batch_id)]
    assert flush.flush_due(r, settings=SETTINGS) == [(iid, batch_id)]  # again, until a worker claims it
    buffer.claim(r, iid, batch_id, token="t2", now_ms=T0 + 1000 + lease_ms, lease_ms=lease_ms, key="k")
    buffer.ack(r, iid, batch_id, now_ms=T0 + 2000 + lease_ms, compressed_bytes=1, key="k")
    at(T0 + 1000 + 2 * lease_ms)
    assert flush.flush_due(r, settings=SETTINGS) == []
    assert score(r, iid) == due.IDLE_MS


def test_an_append_during_the_tick_is_never_forgotten(r, at, monkeypatch):
    """The tick reads the integration, then an append opens a new buffer, then the tick updates the index."""
    due.claim_check(r)
    iid = install(r, flush_interval_s=300)
    ingest(r, iid, message_id="first")
    at(T0 + 270_000)
    original_reschedule = due.reschedule

    def append_in_between(r_: object, updates: list) -> None:
        at(T0 + 280_000)
        ingest(r, iid, message_id="second")  # opens a buffer due at T0 + 280_000 + 270_000
        original_reschedule(r_, updates)  # type: ignore[arg-type]

    monkeypatch.setattr(due, "reschedule", append_in_between)
    [(got, _)] = flush.flush_due(r, settings=SETTINGS)
    assert got == iid
    assert score(r, iid) <= T0 + 550_000  # not moved to the sealed batch's later sweep time, past the new buffer
    monkeypatch.setattr(due, "reschedule", original_reschedule)
    assert flush.flush_due(r, settings=SETTINGS) == []  # looked at again: nothing due yet
    assert score(r, iid) == T0 + 550_000  # the new buffer's due time


def test_a_duplicate_append_makes_its_integration_due_now(r, at):
    """The first run of a message may have opened a buffer and died before telling the index."""
    due.claim_check(r)
    iid = install(r, flush_interval_s=300)
    ingest(r, iid, message_id="m")
    r.delete(keys.DUE)  # as if the process died between the append and the index
    at(T0 + 5)
    assert ingest(r, iid, message_id="m").duplicate
    assert score(r, iid) == T0 + 5


def test_the_periodic_check_finds_what_the_index_lost(r, at):
    iid = install(r)
    ingest(r, iid)
    r.delete(keys.DUE)  # lost with a Redis master, or a fleet upgraded from a version without the index
    assert flush.flush_due(r, settings=SETTINGS) != []  # the first tick checks every integration
    r.delete(keys.DUE)
    ingest(r, iid, message_id="again")
    r.delete(keys.DUE)
    assert flush.flush_due(r, settings=SETTINGS) == []  # within CHECK_EVERY_S: not found yet
    r.delete(keys.DUE_CHECKED)  # CHECK_EVERY_S later
    assert [i for i, _ in flush.flush_due(r, settings=SETTINGS)] == [iid]


def test_flush_now_and_a_replay_tell_the_index(r, at, monkeypatch):
    due.claim_check(r)
    iid = install(r, flush_interval_s=300)
    ingest(r, iid)
    r.delete(keys.DUE)
    [batch_id] = manage.flush_now(r, iid, settings=SETTINGS)
    lease_ms = int(SETTINGS.lease_s * 1000)
    assert score(r, iid) == T0 + lease_ms  # if its upload message gets lost, the sweep still finds it
    buffer.hold(r, iid, batch_id, token="", now_ms=T0, code="AccessDenied", message="m", hint="h")
    r.delete(keys.DUE)
    at(T0 + 10)
    # the replaying process dies before its upload: the released batch waits for the sweep
    monkeypatch.setattr(replay, "upload", lambda *a, **k: upload.UploadOutcome("skipped"))
    assert replay.replay(r, iid, settings=SETTINGS).skipped == [batch_id]
    assert score(r, iid) == T0 + 10 + lease_ms


def test_a_deleted_integration_leaves_the_index(r, at):
    due.claim_check(r)
    iid = install(r)
    due.lower(r, iid, T0)
    registry.delete(r, iid)
    assert score(r, iid) is None
    due.lower(r, iid, T0)  # a write that came after the delete
    assert flush.flush_due(r, settings=SETTINGS) == []
    assert score(r, iid) is None  # the tick finds nothing of it left and removes it
