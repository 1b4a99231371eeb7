"""Partition fields end to end on real processes (redis-server, a Celery worker and beat, moto_server over HTTP):
events spread over event names and consent values land under the right ``name=value/`` folders, once each, in both
variants; hostile names stay one segment; values over the bound go under ``__other__`` and are counted; held
batches replay into their own partitions; the blueprint runs first."""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tests.support.fleet import read_objects
from tests.support.processes import wait_until
from tests.support.s3_fixtures import arrow_dataset, unique_bucket
from workers.events import partitions
from workers.events.partitions import MISSING, OTHER, encode
from workers.integrations import find, registry, status
from workers.pipeline import replay
from workers.settings import get_settings
from workers.sink import athena
from workers.store import buffer

PREFIX = "events/"
HOSTILE = ("a/b", "../x", "x=y", "with spaces", "ünï©ødé", "n" * 500, "UPPER", "__other__", "%2F", ".", "_")


def track(event_id: str, name: str, consent: Any = None) -> dict[str, Any]:
    context = {"consent": {"categoryPreferences": {"marketing": consent}}} if consent is not None else {}
    return {"event_id": event_id, "type": "track", "event": name, "anonymous_id": "a-1", "context": context}


def by_event(objects: dict[str, list[dict]]) -> dict[str, str]:
    """event id -> the key of the one object holding it."""
    out: dict[str, str] = {}
    for key, events in objects.items():
        for e in events:
            assert e["event_id"] not in out, f"{e['event_id']} delivered twice"
            out[e["event_id"]] = key
    return out


def folders(key: str) -> dict[str, str]:
    """The partition folders of a key, in order: name -> value."""
    rest = key.removeprefix(PREFIX)
    found = re.fullmatch(
        r"((?:[a-z_]+=[^/]+/)*)(\d{4}/\d{2}/\d{2}/\d{2}|dt=[\d-]+/hr=\d{2})/[0-9a-f-]{36}\.[a-z.]+", rest
    )
    assert found is not None, key
    return dict(segment.split("=", 1) for segment in found.group(1).split("/") if segment)


def settled(fleet: Any, iid: str, delivered: int) -> dict[str, Any]:
    def done() -> bool:
        st = status.integration_status(fleet.r, iid)
        return st["delivered_events"] >= delivered and st["buffered_events"] == 0

    wait_until(done, 90, message=lambda: f"status: {status.integration_status(fleet.r, iid)}")
    return status.integration_status(fleet.r, iid)


@pytest.mark.parametrize("variant", ["default", "parquet"])
def test_events_land_under_their_event_and_consent_folders_once(variant, fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(
        bucket, prefix=PREFIX, variant=variant, partition_fields=["event", "consent.marketing"], date_layout="hive"
    )
    start_worker()
    start_beat()
    names = ["order_completed", "product_viewed", *HOSTILE]
    consents = [True, False, None, "granted"]
    events = [track(f"e{i}", names[i % len(names)], consents[i % len(consents)]) for i in range(240)]
    # a page without a name (empty or absent) is partitioned by its type
    pages = [{**track(f"p{i}", "", None), "type": "page", "name": ("", None)[i % 2]} for i in range(4)]
    for page in pages:
        del page["event"]
    events += pages
    for start in range(0, len(events), 60):
        fleet.sender.ingest(iid, events[start : start + 60])
    st = settled(fleet, iid, len(events))
    assert st["delivered_events"] == len(events) and st["partition_other_events"] == 0

    objects = read_objects(fleet.s3, bucket)
    keys = by_event(objects)
    assert set(keys) == {e["event_id"] for e in events}
    expected_consent = {True: "true", False: "false", None: "unknown", "granted": "true"}
    for e in events:
        parts = folders(keys[e["event_id"]])
        assert list(parts) == ["event", "consent_marketing"]
        given = e["context"].get("consent", {}).get("categoryPreferences", {}).get("marketing")
        name = e["event"] if e["type"] == "track" else "page"
        assert parts == {"event": encode(name), "consent_marketing": expected_consent[given]}
    segments = {folders(k)["event"] for k in keys.values()}
    assert len(segments) == len(names) + 1  # no two names share a folder, none splits into more
    assert {"page", "%5F_other__", "%5F", "%2E", "%2E%2E%2Fx"} <= segments and MISSING not in segments
    for key in objects:  # each hostile name is one segment: nothing climbs or adds a folder
        assert ".." not in key and key.count("/") == len(PREFIX.split("/")) - 1 + 2 + 2

    # pyarrow reads the folders as Hive partition columns (segment values as written: no decoding); the event folder
    # is left out of its schema, so that the data's own event column is read, not the folder's
    partitioning = ds.HivePartitioning(
        pa.schema([(name, pa.string()) for name in ("consent_marketing", "dt", "hr")]), segment_encoding="none"
    )
    dataset = arrow_dataset(fleet.endpoint, bucket, PREFIX, variant, ("event_id", "event"), partitioning)
    fragments = list(dataset.get_fragments())
    assert sorted(f.path for f in fragments) == sorted(f"{bucket}/{key}" for key in objects)
    for fragment in fragments:
        parts = ds.get_partition_keys(fragment.partition_expression)
        assert parts["consent_marketing"] == folders(fragment.path.split("/", 1)[1])["consent_marketing"]
    if variant == "parquet":  # (pyarrow's JSON reader refuses a nested field whose type differs between lines)
        rows = dataset.to_table().to_pylist()
        sent = {e["event_id"]: e for e in events}
        assert sorted(row["event_id"] for row in rows) == sorted(sent)
        assert all(row["event"] == sent[row["event_id"]].get("event") for row in rows)  # the 500-character name too
        assert all(folders(keys[row["event_id"]])["consent_marketing"] == row["consent_marketing"] for row in rows)

    # the DDL's projection template, with the values filled in, is each object's folder
    cfg = registry.get(fleet.r, iid).config
    ddl = athena.athena_ddl(iid, cfg, variant=variant, fields=cfg.partition_by)
    assert "'projection.p_event.type'='injected'" in ddl
    assert "'projection.p_consent_marketing.type'='enum'" in ddl
    assert "'projection.p_consent_marketing.values'='true,false,unknown'" in ddl
    template = re.search(r"'storage\.location\.template'='([^']+)'", ddl).group(1)
    for key in objects:
        parts = folders(key)
        dt, hr = re.search(r"dt=([\d-]+)/hr=(\d{2})/", key).groups()
        filled = template
        for name, value in {**{f"p_{n}": v for n, v in parts.items()}, "dt": dt, "hr": hr}.items():
            filled = filled.replace("${" + name + "}", value)
        assert f"s3://{bucket}/{key}".startswith(filled) and "${" not in filled, (key, filled)


def test_values_over_the_bound_go_under_other_and_are_counted(fleet, make_bucket, start_worker, start_beat):
    bucket = make_bucket()
    iid = fleet.install(bucket, prefix=PREFIX, partition_fields=["event"], partition_max_values=100)
    start_worker()
    start_beat()
    events = [track(f"n{i}", f"name_{i:03d}") for i in range(101)]
    events += [track("again-0", "name_000"), track("again-100", "name_100")]
    fleet.sender.ingest(iid, events[:50])
    fleet.sender.ingest(iid, events[50:])
    st = settled(fleet, iid, len(events))
    keys = by_event(read_objects(fleet.s3, bucket))
    values = {e["event_id"]: folders(keys[e["event_id"]])["event"] for e in events}
    # the two messages may be appended in either order: which name is the 101st differs, never how many
    over = [e["event_id"] for e in events if values[e["event_id"]] == OTHER]
    assert len({values[e["event_id"]] for e in events} - {OTHER}) == 100 and over
    assert st["partition_other_events"] == len(over)
    assert st["delivered_events"] == len(events)
    # a value keeps the folder it was given, whichever message brought it
    assert values["again-0"] == values["n0"] and values["again-100"] == values["n100"]


def test_held_batches_replay_into_their_own_partitions_and_the_blueprint_runs_first(
    fleet, make_bucket, start_worker, start_beat
):
    bucket = unique_bucket()  # not created yet: every upload is refused (NoSuchBucket) and held
    iid = fleet.install(
        bucket,
        prefix=PREFIX,
        partition_fields=["event", "consent.marketing"],
        blueprint={"consent": {"require": ["marketing"]}},
    )
    start_worker()
    start_beat()
    events = [track(f"h{i}", ("signup", "purchase")[i % 2], (True, False, None)[i % 3]) for i in range(60)]
    fleet.sender.ingest(iid, events)
    granted = [e for e in events if e["context"].get("consent", {}).get("categoryPreferences", {}).get("marketing")]
    wait_until(
        lambda: status.integration_status(fleet.r, iid)["dead_letter_events"] == len(granted),
        60,
        message=lambda: f"status: {status.integration_status(fleet.r, iid)}",
    )
    held = buffer.held_batches(fleet.r, iid)
    assert len(held) == 2  # one per partition: signup and purchase, consent true
    assert {b["partition"] for b in status.dead_letter(fleet.r, iid)} == {
        "event=signup/consent_marketing=true",
        "event=purchase/consent_marketing=true",
    }
    make_bucket(name=bucket)
    report = replay.replay(fleet.r, iid, settings=get_settings())
    assert report.failed == [] and len(report.delivered) + len(report.skipped) == 2
    st = settled(fleet, iid, len(granted))
    keys = by_event(read_objects(fleet.s3, bucket))
    assert set(keys) == {e["event_id"] for e in granted}  # the denied and unknown never reach any partition
    for e in granted:
        assert folders(keys[e["event_id"]]) == {"event": e["event"], "consent_marketing": "true"}
    assert st["removed_events"] == {"consent_denied": len(events) - len(granted)}


def test_live_events_and_finding_an_event_name_its_partition(fleet, make_bucket, start_worker):
    iid = fleet.install(make_bucket(), prefix=PREFIX, partition_fields=["event"], flush_interval_s=3600)
    start_worker()  # no beat: the events wait in their buffers
    fleet.sender.ingest(iid, [track("w1", "Sign Up"), track("w2", "a/b")])
    wait_until(lambda: status.integration_status(fleet.r, iid)["buffered_events"] == 2, 30)
    live = {e["event_id"]: e for e in status.live_events(fleet.r, iid)}
    assert (live["w1"]["state"], live["w1"]["partition"]) == ("buffered", "event=%53ign%20%55p")
    assert live["w2"]["partition"] == "event=a%2Fb" and len(live["w2"]["hour"]) == 10
    found = find.find_event(fleet.r, iid, "w2", at=None, settings=get_settings())
    assert (found["state"], found["partition"], found["hour"]) == ("buffered", "event=a%2Fb", live["w2"]["hour"])
    assert '"event":"a/b"' in found["line"]


def test_the_api_takes_partition_fields_as_a_list_or_text_and_names_a_bad_one(start_api, make_bucket):
    api = start_api()
    body = api.install(
        make_bucket(), config={"partition_fields": ["event", "consent.marketing"], "date_layout": "hive"}
    )
    assert body["config"]["partition_fields"] == ["event", "consent.marketing"]
    assert (body["config"]["partition_max_values"], body["config"]["date_layout"]) == (100, "hive")
    url = f"/v1/admin/integrations/{body['id']}"
    changed = api.admin.patch(url, json={"config": {"partition_fields": "type, context.page.path"}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["config"]["partition_fields"] == ["type", "context.page.path"]
    refused = api.admin.patch(url, json={"config": {"partition_fields": ["event", "../x"]}})
    assert refused.status_code == 422
    assert refused.json()["errors"] == [
        {
            "field": "config.partition_fields",
            "message": "partition_fields: '../x' is not a field: " + partitions.FIELDS_HELP,
        }
    ]
