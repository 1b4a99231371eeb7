"""The HTTP API on real processes: `signal-s3 api` (uvicorn) + celery worker (+ beat) + moto_server, over HTTP."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support.api import TOKEN, Api, start_api_process
from tests.support.fleet import event_counts, read_objects
from tests.support.processes import REPO_ROOT, child_pids, pid_alive, venv_command, wait_until
from tests.support.s3_fixtures import unique_bucket
from tests.support.seed import ACCESS_KEY_ID, BUCKET, INSTALL_BODY_TEXT, SECRET_ACCESS_KEY
from workers.classify import HINTS
from workers.store import keys

SEED_BODY = INSTALL_BODY_TEXT
SEED_BUCKET = BUCKET


def assert_no_secret(text: str) -> None:
    assert ACCESS_KEY_ID not in text
    assert SECRET_ACCESS_KEY not in text
    assert TOKEN not in text


def segment_calls(n: int, run: str) -> list[dict[str, Any]]:
    types = ("track", "page", "identify", "screen", "group", "alias")
    out = []
    for i in range(n):
        t = types[i % len(types)]
        call: dict[str, Any] = {
            "type": t,
            "messageId": f"{run}-{i}",
            "anonymousId": f"anon-{i % 7}",
            "userId": f"user-{i % 5}",
            "timestamp": "2026-05-12T10:00:00Z",
            "context": {"ip": "203.0.113.7"},
            "properties": {"i": i},
        }
        if t == "track":
            call["event"] = "Order Completed"
        if t in ("page", "screen"):
            call["name"] = "Home"
        if t == "group":
            call["groupId"] = "g-1"
            call["traits"] = {"plan": "pro"}
        if t == "alias":
            call["previousId"] = f"anon-{i % 7}"
        out.append(call)
    return out


# -- install ------------------------------------------------------------------------------------------------------


def test_the_seed_curl_installs_over_http_with_redacted_secrets(api: Api, s3_admin: Any) -> None:
    try:
        s3_admin.create_bucket(Bucket=SEED_BUCKET)
    except s3_admin.exceptions.BucketAlreadyOwnedByYou:
        pass
    url = f"{api.base_url}/v1/admin/integration-catalog/amazon_s3/install"
    if shutil.which("curl"):
        done = subprocess.run(
            [
                "curl",
                "-sS",
                "-X",
                "POST",
                url,
                "-H",
                f"Authorization: Bearer {TOKEN}",
                "-H",
                "Content-Type: application/json",
                "-d",
                SEED_BODY,
                "-w",
                "\n%{http_code}",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        body_text, code = done.stdout.rsplit("\n", 1)
        assert code == "201", done.stdout
    else:
        response = api.admin.post(url, content=SEED_BODY, headers={"Content-Type": "application/json"})
        body_text = response.text
        assert response.status_code == 201, body_text
    created = json.loads(body_text)
    assert_no_secret(body_text)
    assert created["id"]
    assert created["name"] == "Amazon S3" and created["enabled"] is True
    assert created["config"]["access_key_id"] == "****MPLE"
    assert created["config"]["secret_access_key"] == "****EKEY"
    assert created["config"]["server_side_encryption"] == "AES256"
    assert created["blueprint"] == {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}
    assert created["source_id"] == "default"

    shown = api.admin.get(f"/v1/admin/integrations/{created['id']}")
    assert shown.status_code == 200 and shown.json() == created
    listed = api.admin.get("/v1/admin/integrations").json()["integrations"]
    assert [i["id"] for i in listed] == [created["id"]]
    assert_no_secret(shown.text + json.dumps(listed))


def test_the_catalog_lists_amazon_s3_under_cloud_storage_with_its_fields(api: Api) -> None:
    response = api.admin.get("/v1/admin/integration-catalog", params={"category": "Cloud Storage"})
    assert response.status_code == 200
    (entry,) = response.json()["integrations"]
    assert entry["id"] == "amazon_s3" and entry["category"] == "Cloud Storage"
    assert [v["id"] for v in entry["variants"]] == ["default", "parquet", "iceberg"]
    assert all(v["description"] for v in entry["variants"])
    assert entry["blueprint"]["default"] == {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}
    assert {f["name"] for f in entry["blueprint"]["fields"]} >= {"consent.require", "hash_fields"}
    fields = {f["name"]: f for f in entry["fields"]}
    assert fields["bucket"]["type"] == "string" and fields["bucket"]["required"] is True
    assert fields["region"]["type"] == "select" and "us-east-1" in fields["region"]["allowed_values"]
    assert fields["secret_access_key"]["type"] == "secret"
    assert fields["storage_class"]["allowed_values"][0] == "STANDARD"
    assert fields["server_side_encryption"]["allowed_values"] == ["AES256", "aws:kms"]
    assert fields["kms_key_id"]["description"].startswith("KMS key ARN")
    assert api.admin.get("/v1/admin/integration-catalog", params={"category": "Analytics"}).json() == {
        "integrations": []
    }


def test_install_refuses_bad_bodies_and_failed_bucket_checks_storing_nothing(api: Api, make_bucket: Callable) -> None:
    url = "/v1/admin/integration-catalog/amazon_s3/install"
    good = {
        "bucket": make_bucket(),
        "region": "us-east-1",
        "access_key_id": ACCESS_KEY_ID,
        "secret_access_key": SECRET_ACCESS_KEY,
    }

    response = api.admin.post(
        url,
        json={"name": "", "config": {**good, "region": "moon-1", "prefix": "/x", "server_side_encryption": "aws:kms"}},
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["name", "config.region", "config.prefix", "config.kms_key_id"]
    assert all(e["message"] for e in errors)
    assert_no_secret(response.text)

    missing = unique_bucket()
    response = api.admin.post(url, json={"name": "S3", "config": {**good, "bucket": missing}})
    assert response.status_code == 424, response.text
    body = response.json()
    assert body["code"] == "NoSuchBucket" and body["hint"] == HINTS["NoSuchBucket"] and body["message"]

    elsewhere = make_bucket(region="eu-west-1")
    response = api.admin.post(url, json={"name": "S3", "config": {**good, "bucket": elsewhere}})
    assert response.status_code == 424, response.text
    body = response.json()
    assert body["code"] == "WrongRegion" and body["hint"] == HINTS["WrongRegion"]
    assert "eu-west-1" in body["message"]

    assert api.admin.get("/v1/admin/integrations").json() == {"integrations": []}

    response = api.admin.post(url, json={"name": "S3", "config": {**good, "bucket": missing}, "verify": False})
    assert response.status_code == 201
    assert api.admin.post("/v1/admin/integration-catalog/gcs/install", json={}).status_code == 404
    response = api.admin.post(url, content=b"{nope", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json()["message"]
    response = api.admin.post(url, json={"name": "S3", "config": good, "source_id": "nope"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "source_id"


def test_install_and_patch_a_variant_and_a_blueprint_over_http(api: Api, make_bucket: Callable, fleet: Any) -> None:
    from workers.integrations import registry

    wanted = {
        "consent": {"require": ["analytics"], "missing": "deny"},
        "events": {"exclude": ["identify"]},
        "drop_fields": ["context.ip"],
        "hash_fields": ["user_id", "traits.email"],
    }
    created = api.install(make_bucket(), variant="parquet", blueprint=wanted)
    assert created["variant"] == "parquet" and created["blueprint"] == wanted
    base = f"/v1/admin/integrations/{created['id']}"
    assert api.admin.get(base).json()["blueprint"] == wanted
    key = registry.get(fleet.r, created["id"]).hash_key
    assert key is not None

    narrowed = {"consent": None, "events": {"include": ["track"]}, "drop_fields": [], "hash_fields": []}
    response = api.admin.patch(base, json={"blueprint": {"events": {"include": ["track"]}}})
    assert response.status_code == 200, response.text
    assert response.json()["blueprint"] == narrowed and response.json()["config"] == created["config"]

    response = api.admin.patch(
        base, json={"blueprint": {"consent": {"require": []}, "hash_fields": ["type"]}, "variant": "default"}
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["variant", "blueprint.consent.require", "blueprint.hash_fields"]
    assert all(e["message"] for e in errors)
    assert api.admin.get(base).json()["blueprint"] == narrowed  # nothing changed

    response = api.admin.post(
        "/v1/admin/integration-catalog/amazon_s3/install",
        json={"name": "S3", "variant": "orc", "config": created["config"], "blueprint": {"drop_fields": "context.ip"}},
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]][:1] == ["variant"]
    assert "blueprint.drop_fields" in [e["field"] for e in response.json()["errors"]]

    every_text = api.admin.get(base).text + api.admin.get("/v1/admin/integrations").text
    assert key.get_secret_value() not in every_text and "hash_key" not in every_text
    schema = api.admin.get("/openapi.json").json()
    assert "blueprint" in json.dumps(schema) and '"parquet"' in json.dumps(schema)


# -- auth ---------------------------------------------------------------------------------------------------------


def test_admin_token_and_write_keys_are_distinct_powers(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOg=="}):
        for path in ("/v1/admin/integration-catalog", "/metrics"):
            response = api.anon.get(path, headers=headers)
            assert response.status_code == 401 and response.json()["message"]
    source = api.source()
    with api.collector(source["write_key"]) as as_source:
        assert as_source.get("/v1/admin/integration-catalog").status_code == 401
        assert as_source.post("/v1/admin/sources", json={"name": "x"}).status_code == 401
        assert as_source.post("/v1/track", json={"event": "e", "userId": "u"}).status_code == 200
    with api.collector(TOKEN) as token_as_key:
        response = token_as_key.post("/v1/track", json={"event": "e", "userId": "u"})
        assert response.status_code == 401 and response.json() == {
            "success": False,
            "error": "unauthorized",
            "message": response.json()["message"],
        }
    assert api.anon.post("/v1/batch", json={"batch": []}).status_code == 401
    response = api.anon.post("/v1/batch", json={"batch": []}, headers={"Authorization": "Basic !!!"})
    assert response.status_code == 401 and "Traceback" not in response.text


def test_guessing_the_admin_token_locks_the_address_out_of_every_admin_route_and_the_sign_in(
    start_api: Callable[..., Api], fleet: Any
) -> None:
    """Wrong Bearer tokens count per address in the sign-in's own count, shared by every API process: once it is
    full, the admin API and the console's sign-in answer 429 with Retry-After, even to the right token."""
    limits = {"SIGNAL_CONSOLE_SIGNIN_MAX_FAILURES": "3", "SIGNAL_CONSOLE_SIGNIN_WINDOW_S": "120"}
    one, two = start_api(**limits), start_api(**limits)
    statuses = [
        (one if i % 2 else two).anon.get("/v1/admin/sources", headers={"Authorization": f"Bearer guess-{i}"})
        for i in range(20)
    ]
    assert [r.status_code for r in statuses] == [401] * 3 + [429] * 17
    assert one.anon.get("/v1/admin/sources").status_code == 429  # no token, locked all the same
    for client, path in (
        (one.admin, "/v1/admin/sources"),
        (two.admin, "/v1/admin/integration-catalog"),
        (one.admin, "/metrics"),
        (two.admin, "/openapi.json"),
    ):
        refused = client.get(path)
        assert refused.status_code == 429, (path, refused.text)
        wait_s = refused.headers["retry-after"]
        assert 0 < int(wait_s) <= 120
        assert refused.json() == {
            "error": "too_many_failures",
            "message": f"too many wrong admin tokens from this address; retry after {wait_s} s",
        }
    signin = httpx.post(
        f"{two.base_url}/signin", data={"token": TOKEN, "next": "/integrations"}, headers={"Origin": two.base_url}
    )
    assert signin.status_code == 429 and "set-cookie" not in signin.headers and int(signin.headers["retry-after"]) > 0
    assert "Too many wrong admin tokens from this address. Try again in" in signin.text
    key = keys.signin_failures("127.0.0.1")
    assert int(fleet.r.get(key)) == 3 and 0 < fleet.r.ttl(key) <= 120  # refusals while locked never extend it
    fleet.r.delete(key)  # the window ends
    assert one.admin.get("/v1/admin/sources").status_code == 200
    assert "wrong admin token from 127.0.0.1" in one.process.log_text()


def test_behind_a_trusted_proxy_the_lock_holds_the_visitors_address_not_the_proxys(
    start_api: Callable[..., Api], fleet: Any
) -> None:
    api = start_api(SIGNAL_CONSOLE_SIGNIN_MAX_FAILURES="2", SIGNAL_TRUSTED_PROXIES="127.0.0.1/32")
    guesser = {"X-Forwarded-For": "203.0.113.7"}
    for _ in range(2):
        assert api.anon.get("/metrics", headers={**guesser, "Authorization": "Bearer guess"}).status_code == 401
    assert api.admin.get("/metrics", headers=guesser).status_code == 429
    assert api.admin.get("/metrics", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    assert fleet.r.exists(keys.signin_failures("203.0.113.7"))
    assert not fleet.r.exists(keys.signin_failures("127.0.0.1"))
    page = httpx.get(f"{api.base_url}/signin", headers=guesser)  # the sign-in reads the same address
    assert page.status_code == 429 and "Try again in" in page.text


def test_admin_errors_share_one_shape(api: Api) -> None:
    """Every refusal of the admin API is {"error", "message"} (plus its own facts), never a collection body."""
    refusals = [
        (api.anon.get("/v1/admin/sources"), 401, "unauthorized"),
        (api.admin.get("/v1/admin/integrations/nope"), 404, "not_found"),
        (api.admin.put("/v1/admin/sources"), 405, "method_not_allowed"),
        (api.admin.post("/v1/admin/sources", content=b"{nope"), 400, "invalid_json"),
        (
            api.admin.post("/v1/admin/sources", content=b'{"name": ' + b"[" * 1100 + b"]" * 1100 + b"}"),
            400,
            "json_too_deep",
        ),
        (api.admin.post("/v1/admin/sources", content=b"x" * 600_000), 413, "body_too_large"),
        (api.admin.post("/v1/admin/sources", content=b"{}", headers={"Content-Encoding": "br"}), 415, None),
        (api.admin.post("/v1/admin/sources", json={"name": ""}), 422, "invalid"),
        (api.admin.get("/v1/admin/integrations/x/live-events", params={"limit": 0}), 422, "invalid"),
    ]
    for response, status, error in refusals:
        body = response.json()
        assert response.status_code == status, response.text
        assert isinstance(body["error"], str) and isinstance(body["message"], str) and body["message"]
        assert "success" not in body, body
        if error is not None:
            assert body["error"] == error, body
    assert refusals[4][0].json()["message"] == "the JSON is nested deeper than 1024 levels"
    assert refusals[6][0].json()["error"] == "unsupported_encoding"


def test_admin_routes_answer_503_without_an_admin_token(
    request: pytest.FixtureRequest, fleet: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    env = {k: v for k, v in fleet.env.items() if k != "SIGNAL_ADMIN_TOKEN"}
    process, base_url = start_api_process(request, env, tmp_path_factory)
    try:
        for headers in ({}, {"Authorization": "Bearer x"}, {"Authorization": "Bearer anything"}):
            response = httpx.get(f"{base_url}/v1/admin/integration-catalog", headers=headers)
            assert response.status_code == 503
            assert "SIGNAL_ADMIN_TOKEN" in response.json()["message"]
    finally:
        process.stop(timeout=15)


# -- managing an integration ----------------------------------------------------------------------------------------


def test_patch_enable_disable_status_live_events_and_dead_letter(api: Api, make_bucket: Callable) -> None:
    bucket = make_bucket()
    iid = api.install(bucket)["id"]
    base = f"/v1/admin/integrations/{iid}"

    response = api.admin.patch(base, json={"config": {"prefix": "other/"}, "name": "Renamed"})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["config"]["prefix"] == "other/" and patched["name"] == "Renamed"
    assert patched["config"]["bucket"] == bucket and patched["config"]["secret_access_key"] == "****EKEY"

    response = api.admin.patch(base, json={"config": {"region": "moon-1", "storage_class": "COLD"}})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["config.region", "config.storage_class"]
    response = api.admin.patch(base, json={"config": {"bucket": unique_bucket()}})
    assert response.status_code == 424 and response.json()["code"] == "NoSuchBucket"
    assert api.admin.get(base).json()["config"]["bucket"] == bucket  # nothing changed
    response = api.admin.patch(base, json={"config": {"bucket": unique_bucket()}, "verify": False})
    assert response.status_code == 200
    response = api.admin.patch(base, json={"config": {"bucket": bucket}, "enabled": False})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "enabled"

    assert api.admin.post(f"{base}/disable").json()["enabled"] is False
    assert api.admin.get(base).json()["enabled"] is False
    assert api.admin.post(f"{base}/enable").json()["enabled"] is True

    st = api.status(iid)
    assert st["buffered_events"] == 0 and st["delivered_objects"] == 0 and st["last_error"] is None
    assert api.admin.get(f"{base}/live-events", params={"limit": 5}).json() == {"events": [], "pinned": None}
    for bad in (0, 101, "x"):
        response = api.admin.get(f"{base}/live-events", params={"limit": bad})
        assert response.status_code == 422 and response.json()["errors"][0]["field"] == "limit"
    assert api.admin.get(f"{base}/dead-letter").json() == {"batches": []}
    response = api.admin.post(f"{base}/dead-letter/replay")
    assert response.json() == {"delivered": [], "already_delivered": [], "still_failing": []}
    assert api.admin.post(f"{base}/dead-letter/replay", json={"batch_id": "nope"}).status_code == 404

    for method, path in (
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("POST", "/enable"),
        ("GET", "/status"),
        ("GET", "/live-events"),
        ("GET", "/dead-letter"),
        ("POST", "/test-event"),
    ):
        response = api.admin.request(method, f"/v1/admin/integrations/nope{path}", json={})
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["message"]


def test_held_batches_show_in_dead_letter_and_replay_after_the_fix(
    api: Api, make_bucket: Callable, start_worker: Callable, s3_admin: Any
) -> None:
    missing = unique_bucket()
    iid = api.install(missing, verify=False)["id"]
    start_worker()
    response = api.admin.post(f"/v1/admin/integrations/{iid}/test-event", params={"timeout_s": 30})
    assert response.status_code == 424, response.text
    failed = response.json()
    assert failed["code"] == "NoSuchBucket" and failed["hint"] == HINTS["NoSuchBucket"]
    (held,) = api.admin.get(f"/v1/admin/integrations/{iid}/dead-letter").json()["batches"]
    assert held["code"] == "NoSuchBucket" and held["events"] == 1
    assert api.status(iid)["dead_letter_batches"] == 1
    response = api.admin.delete(f"/v1/admin/integrations/{iid}", params={"flush": "true"})
    assert response.status_code == 409 and response.json()["dead_letter_events"] == 1

    s3_admin.create_bucket(Bucket=missing)
    report = api.admin.post(f"/v1/admin/integrations/{iid}/dead-letter/replay", json={}).json()
    assert report["delivered"] == [held["batch_id"]] and report["still_failing"] == []
    assert set(read_objects(s3_admin, missing)) == {held["object_key"]}


# -- collection end to end ------------------------------------------------------------------------------------------


def test_segment_calls_land_in_the_bucket_exactly_once(
    api: Api, make_bucket: Callable, start_worker: Callable, start_beat: Callable, s3_admin: Any
) -> None:
    source = api.source("Website")
    bucket_a, bucket_b = make_bucket(), make_bucket()
    iid_a = api.install(bucket_a, source_id=source["id"])["id"]
    iid_b = api.install(bucket_b, source_id=source["id"])["id"]
    other = api.install(make_bucket())["id"]  # default source: receives nothing from this write key
    start_worker()
    start_beat()
    run = uuid.uuid4().hex[:8]
    calls = segment_calls(1200, run)
    with api.collector(source["write_key"]) as client:
        for start in range(0, 600, 200):
            response = client.post(
                "/v1/batch", json={"batch": calls[start : start + 200], "context": {"library": {"name": "test"}}}
            )
            assert response.status_code == 200 and response.json() == {"success": True}
        for start in range(600, 1150, 275):
            body = gzip.compress(orjson.dumps({"batch": calls[start : start + 275]}))
            response = client.post(
                "/v1/batch", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
            )
            assert response.status_code == 200, response.text
        for call in calls[1150:]:
            kind = call.pop("type")
            assert client.post(f"/v1/{kind}", json=call).status_code == 200
            call["type"] = kind

    for iid, bucket in ((iid_a, bucket_a), (iid_b, bucket_b)):
        wait_until(
            lambda iid=iid: api.status(iid)["delivered_events"] >= len(calls),
            60,
            message=lambda iid=iid: f"status: {api.status(iid)}",
        )
        objects = read_objects(s3_admin, bucket)
        counts = event_counts(objects)
        assert counts == {c["messageId"]: 1 for c in calls}
        by_id = {e["event_id"]: e for events in objects.values() for e in events}
        track = by_id[f"{run}-0"]
        assert track["type"] == "track" and track["event"] == "Order Completed"
        assert track["anonymous_id"] == "anon-0" and track["user_id"] == "user-0"
        assert track["source_id"] == source["id"] and track["integration_id"] == iid
        assert track["context"] == {
            "ip": "203.0.113.7",
            "library": {"name": "test"},  # the client's own ip
            "userAgent": f"python-httpx/{httpx.__version__}",
        }  # from User-Agent
        assert by_id[f"{run}-4"]["group_id"] == "g-1" and by_id[f"{run}-5"]["previous_id"] == "anon-5"
        assert "messageId" not in track and "anonymousId" not in track

        live = api.admin.get(f"/v1/admin/integrations/{iid}/live-events", params={"limit": 100}).json()["events"]
        assert len(live) == 100
        for view in live:
            assert view["state"] == "delivered", view
            assert view["event_id"] in {e["event_id"] for e in objects[view["object_key"]]}
    assert api.status(other)["ingested_events"] == 0

    scraped = api.admin.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    for iid in (iid_a, iid_b):
        assert f'signal_events_delivered_total{{integration_id="{iid}"}} {float(len(calls))}' in scraped.text


def test_request_limits_are_enforced_before_parsing(api: Api) -> None:
    source = api.source()
    with api.collector(source["write_key"]) as client:
        big = {"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 33_000}}
        response = client.post("/v1/batch", json={"batch": [big]})
        assert response.status_code == 400 and response.json()["error"] == "event_too_large"
        response = client.post("/v1/track", json=big)
        assert response.status_code == 400 and "32768" in response.json()["message"]

        calls = [{"type": "track", "event": "e", "userId": "u", "properties": {"blob": "x" * 20_000}}] * 30
        response = client.post("/v1/batch", json={"batch": calls})
        assert response.status_code == 413 and response.json()["error"] == "body_too_large"

        bomb = gzip.compress(b'{"batch": [' + b" " * 20_000_000 + b"]}")
        response = client.post("/v1/batch", content=bomb, headers={"Content-Encoding": "gzip"})
        assert response.status_code == 413 and "decompressed" in response.json()["message"]

        for body, reason in ((b"{nope", "invalid_json"), (b"[]", "not_an_object"), (b'{"batch": 3}', "invalid_batch")):
            response = client.post("/v1/batch", content=body)
            assert response.status_code == 400 and response.json()["error"] == reason
        response = client.post("/v1/batch", content=b"xx", headers={"Content-Encoding": "gzip"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_gzip"
        response = client.post("/v1/batch", content=b"{}", headers={"Content-Encoding": "br"})
        assert response.status_code == 415
        assert api.admin.post("/v1/admin/sources", content=b"x" * 600_000).status_code == 413


# -- test event and delete ------------------------------------------------------------------------------------------


def test_test_event_answers_with_an_object_key_that_exists(
    api: Api, make_bucket: Callable, start_worker: Callable, s3_admin: Any, fleet: Any
) -> None:
    bucket = make_bucket()
    iid = api.install(bucket, config={"flush_interval_s": 3600})["id"]
    start_worker()
    response = api.admin.post(f"/v1/admin/integrations/{iid}/test-event")
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["state"] == "delivered" and result["bucket"] == bucket
    objects = read_objects(s3_admin, bucket)
    assert [e["event_id"] for e in objects[result["object_key"]]] == [result["event_id"]]

    live = api.admin.get(f"/v1/admin/integrations/{iid}/live-events").json()["events"]
    assert live[0]["event_id"] == result["event_id"] and live[0]["object_key"] == result["object_key"]

    done = subprocess.run(
        [*venv_command("signal-s3"), "test", iid],
        capture_output=True,
        text=True,
        timeout=90,
        env={**os.environ, **fleet.env, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["state"] == "delivered" and printed["object_key"] in read_objects(s3_admin, bucket)

    api.admin.post(f"/v1/admin/integrations/{iid}/disable")
    response = api.admin.post(f"/v1/admin/integrations/{iid}/test-event")
    assert response.status_code == 409 and "disabled" in response.json()["message"]


def test_delete_refuses_while_events_are_buffered_and_flush_delivers_them(
    api: Api, make_bucket: Callable, start_worker: Callable, s3_admin: Any
) -> None:
    source = api.source()
    bucket = make_bucket()
    iid = api.install(bucket, source_id=source["id"], config={"flush_interval_s": 3600})["id"]
    start_worker()  # no beat: nothing flushes on its own
    calls = segment_calls(50, uuid.uuid4().hex[:8])
    with api.collector(source["write_key"]) as client:
        assert client.post("/v1/batch", json={"batch": calls}).status_code == 200
    wait_until(lambda: api.status(iid)["buffered_events"] == 50, 30, message=lambda: str(api.status(iid)))

    response = api.admin.delete(f"/v1/admin/integrations/{iid}")
    assert response.status_code == 409
    assert response.json()["buffered_events"] == 50 and "flush=true" in response.json()["message"]
    assert api.admin.get(f"/v1/admin/integrations/{iid}").status_code == 200

    response = api.admin.delete(f"/v1/admin/integrations/{iid}", params={"flush": "true"})
    assert response.status_code == 200, response.text
    assert api.admin.get(f"/v1/admin/integrations/{iid}").status_code == 404
    assert event_counts(read_objects(s3_admin, bucket)) == {c["messageId"]: 1 for c in calls}
    shown = api.admin.get(f"/v1/admin/sources/{source['id']}").json()
    assert shown["integrations"] == []

    listed = api.admin.get("/v1/admin/sources").json()["sources"]
    assert source["write_key"] in {s["write_key"] for s in listed}


# -- schemathesis over the OpenAPI document ---------------------------------------------------------------------------


def test_no_operation_answers_a_server_error(fleet: Any) -> None:
    """Schemathesis generates requests for every operation of /openapi.json (in-process ASGI transport, both
    valid and invalid data); none may answer 5xx."""
    import base64

    from workers.integrations import sources
    from workers.settings import Settings
    from workers.web.app import create_app

    app = create_app(Settings(admin_token=TOKEN))
    write_key = sources.create(fleet.r, "Fuzz").write_key
    admin = {"Authorization": f"Bearer {TOKEN}"}
    collector = {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=admin)  # the document is the admin's
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()
        labels.append(operation.label)
        check = _fuzz(operation, admin if operation.path.startswith("/v1/admin") else collector)
        check()
    assert len(labels) >= 20


def _fuzz(operation: Any, headers: dict[str, str]) -> Callable[[], None]:
    from hypothesis import given
    from schemathesis.checks import not_a_server_error

    @given(case=operation.as_strategy())
    @settings(max_examples=6, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    return check


def test_several_api_processes_share_the_port_and_every_event_reaches_the_buffers(
    request: pytest.FixtureRequest,
    fleet: Any,
    tmp_path_factory: pytest.TempPathFactory,
    make_bucket: Callable,
    start_worker: Callable,
) -> None:
    process, base_url = start_api_process(
        request, {**fleet.env, "SIGNAL_ADMIN_TOKEN": TOKEN}, tmp_path_factory, "--workers", "2"
    )
    api = Api(process, base_url)

    def servers() -> list[int]:
        found = []
        for pid in child_pids(process.pid):
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            except OSError:
                continue
            if "spawn_main" in cmdline:
                found.append(pid)
        return found

    wait_until(lambda: len(servers()) == 2, 30, message=lambda: f"API processes: {servers()}")
    source = api.source("Website")
    iid = api.install(make_bucket(), source_id=source["id"])["id"]
    start_worker(queues="ingest")
    run = uuid.uuid4().hex[:8]
    calls = segment_calls(400, run)
    sent = 0
    for start in range(0, len(calls), 20):
        with api.collector(source["write_key"]) as client:  # a new connection each time: either process takes it
            response = client.post("/v1/batch", json={"batch": calls[start : start + 20]})
            assert response.status_code == 200, response.text
            sent += 20
        if start == 200:
            os.kill(servers()[0], 9)  # one process dies: the other keeps answering, and it is replaced
    wait_until(lambda: api.status(iid)["ingested_events"] >= sent, 60, message=lambda: f"{api.status(iid)}")
    assert api.status(iid)["ingested_events"] == sent
    wait_until(lambda: len(servers()) == 2, 30, message=lambda: f"API processes: {servers()}")
    workers = servers()
    api.close()
    assert process.stop(timeout=20) is not None
    wait_until(lambda: not any(pid_alive(pid) for pid in workers), 20, message=lambda: "API processes left behind")
