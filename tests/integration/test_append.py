"""Events the API's producer prepared (``signal.append``) on real processes: appended once, rejections counted,
refused for a disabled integration, a malformed message counted instead of buffered."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest

from tests.support.fleet import Bucket, assert_exactly_once, make_events, run_id, slices
from tests.support.processes import wait_until
from workers import clock
from workers.events import prepared
from workers.events.message import encode_message
from workers.integrations import registry, status
from workers.pipeline import ingest
from workers.queue import wire
from workers.queue.producer import Broker
from workers.settings import get_settings
from workers.store import buffer, keys

BAD = [{"type": "explode", "user_id": "u"}, "not an object", {"type": "page", "anonymous_id": "a", "timestamp": "x"}]


class Producer:
    """What the API does with a request's events: prepares them here and publishes ``signal.append``."""

    def __init__(self, r: Any) -> None:
        self.r, self.settings = r, get_settings()
        self.broker = Broker(self.settings)
        self.app = self.broker.app

    def publish(self, integration_id: str, events: list[Any]) -> str:
        return ingest.publish(self.r, self.broker, integration_id, events, settings=self.settings)


@pytest.fixture
def producer(fleet: Any) -> Iterator[Producer]:
    made = Producer(fleet.r)
    yield made
    made.broker.close()


def runs(worker: Any, task_id: str) -> list[str]:
    return re.findall(rf"signal\.append\[{re.escape(task_id)}\] succeeded in [^\n]*", worker.log_text())


@pytest.mark.parametrize("topology", ["redis", "scaled"], indirect=True)
def test_events_the_api_prepared_land_exactly_once_and_invalid_ones_are_rejected_alone(
    fleet, producer, make_bucket, start_worker, start_beat
):
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    worker = start_worker()
    start_beat()
    events = make_events(1500, run=run_id("api"))
    task_ids = [producer.publish(iid, batch[:100] + BAD + batch[100:]) for batch in slices(events, 500)]
    wait_until(lambda: all(runs(worker, t) for t in task_ids), 30, message=lambda: worker.log_tail())

    assert_exactly_once(fleet, iid, bucket, {e["event_id"] for e in events})
    stats = fleet.stats(iid)
    assert stats["ingested_events"] == 1500
    assert (stats["rejected:invalid_type"], stats["rejected:not_an_object"], stats["rejected:invalid_timestamp"]) == (
        3,
        3,
        3,
    )
    rejections = [orjson.loads(x) for x in fleet.r.lrange(keys.rejections(iid), 0, -1)]
    assert sorted(r["index"] for r in rejections) == [100, 100, 100, 101, 101, 101, 102, 102, 102]
    live = status.live_events(fleet.r, iid, limit=buffer.LIST_MAX)
    assert len(live) == buffer.LIST_MAX and {v["event_id"] for v in live} <= {e["event_id"] for e in events}


def test_a_prepared_message_delivered_twice_is_appended_once(fleet, producer, make_bucket, start_worker, start_beat):
    bucket = Bucket(fleet.s3, make_bucket())
    iid = fleet.install(bucket.name)
    worker = start_worker(concurrency=2)
    start_beat()
    events = make_events(500, run=run_id("twice"))
    message = encode_message(prepared.prepare(events + BAD, iid, received_at=clock.now(), event_max_bytes=32768))
    task_id = str(uuid.uuid4())
    for serializer in ("json", wire.PREPARED):  # the same message twice (a redelivery), in either form
        producer.app.send_task(
            "signal.append", args=[iid, message], queue="ingest", task_id=task_id, serializer=serializer
        )
    wait_until(lambda: len(runs(worker, task_id)) == 2, 30, message=lambda: worker.log_tail())

    assert sum("'duplicate': True" in run for run in runs(worker, task_id)) == 1, runs(worker, task_id)
    assert_exactly_once(fleet, iid, bucket, {e["event_id"] for e in events})
    stats = fleet.stats(iid)
    assert stats["ingested_events"] == 500 and stats["rejected:invalid_type"] == 1


def test_a_disabled_integration_is_refused_whichever_form_its_events_come_in(
    fleet, producer, make_bucket, start_worker
):
    iid = fleet.install(make_bucket())
    message = encode_message(prepared.prepare(make_events(10), iid, received_at=clock.now(), event_max_bytes=32768))
    registry.set_enabled(fleet.r, iid, False)
    worker = start_worker()
    producer.app.send_task("signal.append", args=[iid, message], queue="ingest")  # prepared before it was disabled
    producer.publish(iid, make_events(10))  # the producer sees it disabled: sent as it came
    wait_until(lambda: worker.log_text().count("is disabled") >= 2, 30, message=lambda: worker.log_tail())
    assert buffer.open_buffers(fleet.r, [iid]) == {}
    assert fleet.stats(iid).get("ingested_events", 0) == 0


@pytest.mark.parametrize("serializer", ["json", wire.PREPARED])
def test_a_malformed_prepared_message_is_counted_with_its_error_and_buffers_nothing(
    fleet, producer, make_bucket, start_worker, serializer
):
    iid = fleet.install(make_bucket())
    message = encode_message(prepared.prepare(make_events(10), iid, received_at=clock.now(), event_max_bytes=32768))
    message["indexes"] = {hour: idx[:-1] for hour, idx in message["indexes"].items()}  # one line without its index
    worker = start_worker()
    producer.app.send_task("signal.append", args=[iid, message], queue="ingest", serializer=serializer)
    wait_until(lambda: fleet.stats(iid).get("rejected:ingest_failed"), 30, message=lambda: worker.log_tail())
    assert fleet.stats(iid)["rejected:ingest_failed"] == 9
    latest = orjson.loads(fleet.r.lindex(keys.rejections(iid), 0))
    assert "BadMessage" in latest["detail"] and "indexes" in latest["detail"]
    assert buffer.open_buffers(fleet.r, [iid]) == {}
