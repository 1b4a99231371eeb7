"""Talking to a running fleet from a test: install, send events, read back what landed in the bucket."""

from __future__ import annotations

import gzip
import io
import re
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from celery import Celery

from tests.support.processes import wait_until
from workers import clock
from workers.events import partitions
from workers.integrations import registry
from workers.queue.config import broker_config
from workers.settings import Settings
from workers.store import buffer, keys
from workers.store.elements import lines_text

KEY_TAIL = (
    r"(\d{4})/(\d{2})/(\d{2})/(\d{2})/"
    r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.json\.gz$"
)
KEY_PATTERN = re.compile(r"^events/" + KEY_TAIL)


def install(
    r,
    bucket: str,
    *,
    endpoint_url: str | None = None,
    variant: str = "default",
    blueprint: dict | None = None,
    **config,
) -> str:
    body = {
        "name": "Amazon S3",
        "variant": variant,
        **({"blueprint": blueprint} if blueprint is not None else {}),
        "delivery_mode": "server_side",
        "config": {
            "bucket": bucket,
            "region": "us-east-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "prefix": "events/",
            **({"endpoint_url": endpoint_url} if endpoint_url else {}),
            **config,
        },
    }
    return registry.install(r, body).id


class Sender:
    """A producer process's view: publishes ``signal.ingest`` messages to the broker (declaring its queues as the
    fleet does)."""

    def __init__(self, settings: Settings) -> None:
        self.app = Celery("test-sender", set_as_current=False)
        self.app.conf.update(**broker_config(settings), broker_connection_retry=False)

    def ingest(self, integration_id: str, events: list[dict], *, task_id: str | None = None) -> str:
        task_id = task_id or str(uuid.uuid4())
        self.app.send_task("signal.ingest", args=[integration_id, events], queue="ingest", task_id=task_id)
        return task_id

    def close(self) -> None:
        self.app.close()


def make_events(n: int, *, start: int = 0, run: str | None = None) -> list[dict]:
    run = run or uuid.uuid4().hex[:8]
    types = ("track", "page", "identify")
    out = []
    for i in range(start, start + n):
        t = types[i % 3]
        e = {
            "event_id": f"{run}-{i}",
            "type": t,
            "anonymous_id": f"anon-{i % 97}",
            "user_id": f"user-{i % 13}",
            "timestamp": "2026-11-25T10:00:00.000Z",
            "context": {
                "page": {"url": f"https://shop.example/p/{i % 50}"},
                "userAgent": "Mozilla/5.0",
                "ip": "203.0.113.7",
            },
            "properties": {"order_id": i, "revenue": i * 1.5, "currency": "EUR"},
        }
        if t == "track":
            e["event"] = "order_completed"
        out.append(e)
    return out


def read_objects(s3, bucket: str, prefix: str = "") -> dict[str, list[dict]]:
    """Every object under ``prefix``: key -> its events. ``.json.gz`` objects are decoded with the standard library's
    gzip; ``.parquet`` objects with pyarrow, each row turned back into the envelope it was written from."""
    out: dict[str, list[dict]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            if obj["Key"].endswith(".parquet"):
                out[obj["Key"]] = [envelope_of(row) for row in parquet_rows(body)]
                continue
            text = gzip.decompress(body)
            assert text.endswith(b"\n"), f"{obj['Key']} is not newline-terminated"
            out[obj["Key"]] = [orjson.loads(line) for line in text.split(b"\n")[:-1]]
    return out


def parquet_rows(body: bytes) -> list[dict[str, Any]]:
    """The rows of a Parquet object as pyarrow reads them (times are aware datetimes, JSON columns are text)."""
    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(body)).to_pylist()


def envelope_of(row: dict[str, Any]) -> dict[str, Any]:
    """The envelope a Parquet row holds: null columns left out, times as ISO text, JSON columns and extra parsed."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if value is None:
            continue
        if name in ("timestamp", "received_at", "sent_at"):
            out[name] = clock.iso(value)
        elif name in ("context", "properties", "traits"):
            out[name] = orjson.loads(value)
        elif name == "extra":
            out.update(orjson.loads(value))
        else:
            out[name] = value
    return out


def event_counts(objects: dict[str, list[dict]]) -> Counter:
    return Counter(e["event_id"] for events in objects.values() for e in events)


def delivered_ids(objects: dict[str, list[dict]]) -> set[str]:
    return set(event_counts(objects))


def duplicates(objects: dict[str, list[dict]]) -> dict[str, int]:
    return {k: v for k, v in event_counts(objects).items() if v > 1}


def lines_of(elements: list[bytes]) -> list[bytes]:
    """The lines of buffer or batch elements (chunks; one-line chunks for a buffer written one event per element)."""
    return [line for element in elements for line in lines_text(element).split(b"\n")]


def slices(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


class Bucket:
    """What landed in a bucket, read incrementally (an object is fetched again only when its ETag changes)."""

    def __init__(self, s3: Any, name: str, prefix: str = "") -> None:
        self.s3 = s3
        self.name = name
        self.prefix = prefix  # only the objects under it (one integration's, when several share the bucket)
        self._cache: dict[str, tuple[str, list[dict]]] = {}

    def objects(self) -> dict[str, list[dict]]:
        listed: dict[str, str] = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                listed[obj["Key"]] = obj["ETag"]
        for key, etag in listed.items():
            if key in self._cache and self._cache[key][0] == etag:
                continue
            text = gzip.decompress(self.s3.get_object(Bucket=self.name, Key=key)["Body"].read())
            assert text.endswith(b"\n"), f"{key} is not newline-terminated"
            self._cache[key] = (etag, [orjson.loads(line) for line in text.split(b"\n")[:-1]])
        for key in set(self._cache) - set(listed):
            del self._cache[key]
        return {key: events for key, (_, events) in self._cache.items()}

    def counts(self) -> Counter[str]:
        return Counter(e["event_id"] for events in self.objects().values() for e in events)

    def wait_for(self, sent: set[str], timeout_s: float) -> dict[str, list[dict]]:
        """Wait until the delivered event ids are exactly ``sent`` (an unexpected id fails at once)."""

        def complete() -> bool:
            delivered = set(self.counts())
            unexpected = delivered - sent
            assert not unexpected, f"events nobody sent were delivered: {sorted(unexpected)[:5]}"
            return delivered == sent

        wait_until(complete, timeout_s, interval_s=0.25, message=lambda: self.describe_missing(sent))
        return self.objects()

    def describe_missing(self, sent: set[str]) -> str:
        missing = sent - set(self.counts())
        return f"{len(missing)} of {len(sent)} events never landed in {self.name} (e.g. {sorted(missing)[:5]})"


def run_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def assert_exactly_once(fleet: Any, iid: str, bucket: Bucket, sent: set[str]) -> dict[str, list[dict]]:
    """Every sent event in exactly one object, objects at the layout's keys, nothing left or held in Redis."""
    objects = bucket.wait_for(sent, timeout_s=5)
    counts = Counter(e["event_id"] for events in objects.values() for e in events)
    doubled = {event_id: n for event_id, n in counts.items() if n > 1}
    assert not doubled, f"{len(doubled)} events delivered more than once, e.g. {sorted(doubled.items())[:5]}"
    assert set(counts) == sent
    cfg = registry.get(fleet.r, iid).config
    layout = re.compile("^" + re.escape(cfg.prefix) + KEY_TAIL)
    for key, events in objects.items():
        folders = partitions.key_path(partitions.values_of(cfg.partition_by, events[0])) if events else ""
        assert layout.match(key.replace(folders, "", 1)), f"object key outside the layout: {key}"
        assert events, f"empty object {key}"
        assert all(e["integration_id"] == iid for e in events), key
        # with partition fields, every event of an object is of the object's partition
        assert all(partitions.key_path(partitions.values_of(cfg.partition_by, e)) == folders for e in events), key
    assert buffer.held_batches(fleet.r, iid) == [], "batches were held in the dead-letter store"
    # the last ack follows the last PUT: wait for Redis to settle, then nothing may be left behind
    wait_until(
        lambda: fleet.stats(iid).get("buffered_events") == 0 and not buffer.pending_batches(fleet.r, iid),
        15,
        message=lambda: f"stats {fleet.stats(iid)}, pending {buffer.pending_batches(fleet.r, iid)}",
    )
    stats = fleet.stats(iid)
    assert stats["ingested_events"] == len(sent), stats
    assert stats["delivered_events"] == len(sent), stats
    assert stats["delivered_objects"] == len(objects), stats
    assert stats["buffered_bytes"] == 0, stats
    assert not any(k.startswith("failures:WorkerLost") for k in stats), stats
    assert buffer.open_buffers(fleet.r, [iid]) == {}
    assert not list(fleet.r.scan_iter(match=f"{keys.tag(iid)}:batch:*"))
    assert not list(fleet.r.scan_iter(match=f"{keys.tag(iid)}:meta:*"))
    return objects
