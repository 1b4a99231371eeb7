"""`signal-s3 metrics` serves what the fleet did, exactly: scraped over HTTP after real traffic into the bucket."""

from __future__ import annotations

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.support.fleet import make_events, read_objects, slices
from tests.support.processes import ManagedProcess, _merged_env, free_port, venv_command, wait_until
from workers.store import buffer


def scrape(url: str) -> dict[tuple[str, tuple], float] | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except (urllib.error.URLError, ConnectionError):
        return None
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_scraped_counts_match_the_bucket_and_the_dead_letter_store(
    fleet, make_bucket, start_worker, start_beat, tmp_path
):
    bucket = make_bucket()
    iid = fleet.install(bucket, batch_max_events=150)
    missing = fleet.install(f"{bucket}-missing")  # NoSuchBucket: permanent, held
    start_worker()
    start_beat()
    events = make_events(600)
    bad = [{"type": "explode", "user_id": "u"}, {"type": "track", "user_id": "u"}, "not an object"]
    for batch in slices(events, 200):
        fleet.sender.ingest(iid, batch[:100] + bad + batch[100:])
    fleet.sender.ingest(missing, make_events(40))
    fleet.wait_delivered(iid, len(events))
    wait_until(
        lambda: sum(int(b["events"]) for b in buffer.held_batches(fleet.r, missing)) == 40,
        60,
        message=lambda: f"held: {buffer.held_batches(fleet.r, missing)}",
    )

    port = free_port()
    server = ManagedProcess(
        [*venv_command("signal-s3"), "metrics", "--port", str(port)],
        name="metrics",
        log_dir=tmp_path,
        env=_merged_env(fleet.env),
    ).start()
    try:
        samples = wait_until(
            lambda: scrape(f"http://127.0.0.1:{port}/metrics"),
            30,
            message=lambda: f"no metrics served: {server.describe()}",
        )
    finally:
        server.stop()

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    listed = [
        o
        for page in fleet.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for o in page.get("Contents", [])
    ]
    objects = read_objects(fleet.s3, bucket)
    a = {"integration_id": iid}
    assert value("signal_objects_delivered_total", **a) == len(listed) >= 4
    assert value("signal_events_delivered_total", **a) == sum(len(v) for v in objects.values()) == 600
    assert value("signal_bytes_delivered_total", **a) == sum(o["Size"] for o in listed)
    assert value("signal_events_ingested_total", **a) == 600
    assert value("signal_events_rejected_total", **a, reason="invalid_type") == 3
    assert value("signal_events_rejected_total", **a, reason="missing_event") == 3
    assert value("signal_events_rejected_total", **a, reason="not_an_object") == 3
    assert value("signal_events_buffered", **a) == 0 and value("signal_bytes_buffered", **a) == 0
    # everything was delivered: nothing waits, so neither is late
    assert value("signal_oldest_buffered_event_age_seconds", **a) == 0
    assert value("signal_waiting_since_last_delivery_seconds", **a) == 0
    assert value("signal_dead_letter_batches", **a) == 0
    assert value("signal_upload_retries_total", **a) == fleet.stats(iid).get("retries", 0)
    for hist in ("signal_upload_duration_seconds", "signal_event_to_object_latency_seconds"):
        assert value(f"{hist}_count", **a) == len(listed), hist
        assert value(f"{hist}_bucket", **a, le="+Inf") == len(listed), hist
        assert value(f"{hist}_sum", **a) > 0, hist

    held = buffer.held_batches(fleet.r, missing)
    m = {"integration_id": missing}
    assert value("signal_dead_letter_batches", **m) == len(held) >= 1
    assert value("signal_dead_letter_events", **m) == 40
    assert value("signal_upload_failures_total", **m, code="NoSuchBucket") == len(held)
    assert value("signal_objects_delivered_total", **m) == 0
    # held events wait for a replay, not for delivery: counted as dead-letter events, neither buffered nor late
    assert value("signal_events_buffered", **m) == 0 and value("signal_bytes_buffered", **m) == 0
    assert value("signal_oldest_buffered_event_age_seconds", **m) == 0
    assert value("signal_waiting_since_last_delivery_seconds", **m) == 0
    assert value("signal_upload_duration_seconds_count", **m) == 0
    assert ("process_cpu_seconds_total", ()) in samples  # the serving process's own metrics
