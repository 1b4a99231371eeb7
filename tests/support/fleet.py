"""Talking to a running fleet from a test: install, send events, read back what landed in the bucket."""

from __future__ import annotations

import gzip
import io
import uuid
from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson
from celery import Celery

from workers import clock, registry


def install(r, bucket: str, *, endpoint_url: str | None = None, variant: str = "default",
            blueprint: dict | None = None, **config) -> str:
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
    """A producer process's view: publishes ``signal.ingest`` messages to the broker."""

    def __init__(self, redis_url: str) -> None:
        self.app = Celery("test-sender", broker=redis_url, set_as_current=False)
        self.app.conf.update(task_serializer="json", accept_content=["json"], broker_connection_retry=False)

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
            "context": {"page": {"url": f"https://shop.example/p/{i % 50}"}, "userAgent": "Mozilla/5.0",
                        "ip": "203.0.113.7"},
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


def chunks(seq: list, n: int) -> Iterable[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]
