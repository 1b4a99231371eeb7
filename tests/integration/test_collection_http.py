"""What websites' SDKs send, over HTTP to the real API process: CORS on the collection routes only, the write key in
any of its three places, text/plain and beacon bodies, Segment's short paths, allowed origins, the shared per-source
rate limit, and the client's address."""

from __future__ import annotations

import base64
import gzip
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import pytest

from tests.support.api import Api
from tests.support.fleet import read_objects
from tests.support.processes import wait_until
from workers import clock
from workers.store import keys, ratelimit

ORIGIN = "https://www.shop.example"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "anonymousid,authorization,content-type,sentat",
}
COLLECTION_PATHS = [
    "/v1/batch",
    "/v1/b",
    "/v1/track",
    "/v1/t",
    "/v1/page",
    "/v1/p",
    "/v1/identify",
    "/v1/i",
    "/v1/group",
    "/v1/g",
    "/v1/alias",
    "/v1/a",
    "/v1/screen",
    "/v1/s",
    "/beacon/v1/batch",
    "/v1/m",
]


def basic(write_key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def stored(api: Api, s3: Any, integration_id: str, bucket: str, count: int) -> dict[str, dict[str, Any]]:
    """The bucket's events by event id, once ``count`` were delivered."""
    wait_until(
        lambda: api.status(integration_id)["delivered_events"] >= count,
        60,
        message=lambda: f"status: {api.status(integration_id)}",
    )
    return {e["event_id"]: e for events in read_objects(s3, bucket).values() for e in events}


# -- CORS ---------------------------------------------------------------------------------------------------------


def test_preflights_are_answered_on_collection_routes_only(api: Api) -> None:
    for path in COLLECTION_PATHS:
        response = api.anon.options(path, headers=PREFLIGHT)
        assert response.status_code == 204, (path, response.text)
        headers = response.headers
        assert headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in headers["access-control-allow-methods"]
        assert headers["access-control-allow-headers"] == PREFLIGHT["Access-Control-Request-Headers"]
        assert int(headers["access-control-max-age"]) >= 600
        assert "access-control-allow-credentials" not in headers  # never cookies
    asked_nothing = api.anon.options("/v1/t", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"})
    assert "Authorization" in asked_nothing.headers["access-control-allow-headers"]

    source = api.source()
    for method, path in (
        ("OPTIONS", "/v1/admin/sources"),
        ("OPTIONS", "/metrics"),
        ("GET", "/v1/admin/sources"),
        ("POST", "/v1/admin/sources"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ):
        response = api.admin.request(method, path, headers=PREFLIGHT, json={"name": "x"} if method == "POST" else None)
        assert "access-control-allow-origin" not in response.headers, (method, path)
    accepted = api.anon.post(
        "/v1/t", headers={"Origin": ORIGIN, **basic(source["write_key"])}, json={"event": "e", "anonymousId": "a"}
    )
    assert accepted.status_code == 200
    assert accepted.headers["access-control-allow-origin"] == ORIGIN
    assert accepted.headers["access-control-expose-headers"] == "Retry-After"
    assert "Origin" in accepted.headers["vary"]
    refused = api.anon.post("/v1/t", headers={"Origin": ORIGIN, **basic("wk_wrong")}, json={"event": "e"})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ORIGIN  # readable
    server_side = api.anon.post("/v1/t", headers=basic(source["write_key"]), json={"event": "e", "anonymousId": "a"})
    assert server_side.status_code == 200 and "access-control-allow-origin" not in server_side.headers


# -- write keys, bodies, paths, mapping -------------------------------------------------------------------------------


def test_every_form_of_the_write_key_and_every_body_lands_in_the_canonical_envelope(
    api: Api, make_bucket: Callable[..., str], start_worker: Callable, start_beat: Callable, s3_admin: Any
) -> None:
    source = api.source()
    bucket = make_bucket()
    integration_id = api.install(bucket, source_id=source["id"])["id"]
    start_worker()
    start_beat()
    key = source["write_key"]
    run = uuid.uuid4().hex[:8]
    text = {"Content-Type": "text/plain"}
    sent = [
        # analytics-next, one call: text/plain, Basic and the key in the body
        (
            "/v1/t",
            {**text, **basic(key)},
            {
                "type": "track",
                "event": "Clicked",
                "anonymousId": "a-1",
                "writeKey": key,
                "messageId": f"{run}-t",
                "_metadata": {"bundled": ["Segment.io"]},
                "timestamp": "2026-05-12T10:00:00.000Z",
            },
        ),
        # the key only in the body
        ("/v1/p", text, {"name": "Home", "anonymousId": "a-1", "writeKey": key, "messageId": f"{run}-p"}),
        # analytics-next batching: {batch, sentAt, writeKey}
        (
            "/v1/b",
            text,
            {
                "writeKey": key,
                "sentAt": "2026-05-12T10:00:02.000Z",
                "batch": [
                    {
                        "type": "identify",
                        "userId": "u-1",
                        "anonymousId": "a-1",
                        "traits": {"plan": "pro"},
                        "messageId": f"{run}-b1",
                    },
                    {"type": "group", "userId": "u-1", "groupId": "g-1", "messageId": f"{run}-b2"},
                ],
            },
        ),
        # RudderStack over XHR: JSON, Basic, its own headers, originalTimestamp
        (
            "/v1/screen",
            {
                "Content-Type": "application/json;charset=UTF-8",
                "AnonymousId": "YS0x",
                "SentAt": "2026-05-12T10:00:03.000Z",
                **basic(key),
            },
            {
                "name": "Settings",
                "anonymousId": "a-1",
                "messageId": f"{run}-s",
                "channel": "web",
                "originalTimestamp": "2026-05-12T10:00:01.500Z",
                "sentAt": "2026-05-12T10:00:03.000Z",
            },
        ),
        # RudderStack beacon: the key in the query, a text/plain blob
        (
            f"/beacon/v1/batch?writeKey={key}",
            text,
            {
                "sentAt": "2026-05-12T10:00:04.000Z",
                "batch": [
                    {
                        "type": "alias",
                        "userId": "u-2",
                        "previousId": "u-1",
                        "messageId": f"{run}-a",
                        "originalTimestamp": "2026-05-12T10:00:03.900Z",
                    }
                ],
            },
        ),
    ]
    for path, headers, body in sent:
        response = api.anon.post(path, headers={**headers, "User-Agent": "TestBrowser/1.0"}, content=orjson.dumps(body))
        assert response.status_code == 200 and response.json() == {"success": True}, (path, response.text)
    gzipped = gzip.compress(orjson.dumps({"event": "Zipped", "userId": "u-1", "messageId": f"{run}-z"}))
    response = api.anon.post("/v1/track", content=gzipped, headers={**text, **basic(key), "Content-Encoding": "gzip"})
    assert response.status_code == 200
    for short, _event_type in (("i", "identify"), ("g", "group"), ("a", "alias"), ("s", "screen")):
        response = api.anon.post(
            f"/v1/{short}",
            headers=basic(key),
            json={"userId": "u-1", "messageId": f"{run}-{short}{short}", "groupId": "g", "previousId": "p"},
        )
        assert response.status_code == 200, short
    metrics = api.anon.post(
        "/v1/m",
        content=b'{"series": [{"type": "Counter", "metric": "analytics_js.invoke"}]}',
        headers={**text, "Origin": ORIGIN},
    )
    assert metrics.status_code == 200 and metrics.headers["access-control-allow-origin"] == ORIGIN

    events = stored(api, s3_admin, integration_id, bucket, 11)
    assert len(events) == 11  # /v1/m stored nothing
    log = api.process.log_text()
    assert "/beacon/v1/batch?writeKey=**** " in log and key not in log  # the access log hides the key
    for event in events.values():
        assert event["source_id"] == source["id"] and event["integration_id"] == integration_id
        assert "writeKey" not in event and "_metadata" not in event
        assert event["context"]["ip"] == "127.0.0.1"
    track = events[f"{run}-t"]
    assert track["type"] == "track" and track["event"] == "Clicked" and track["anonymous_id"] == "a-1"
    assert track["timestamp"] == "2026-05-12T10:00:00.000Z"
    assert track["context"]["userAgent"] == "TestBrowser/1.0"
    assert events[f"{run}-p"]["type"] == "page" and events[f"{run}-p"]["name"] == "Home"
    assert events[f"{run}-b1"]["type"] == "identify" and events[f"{run}-b1"]["traits"] == {"plan": "pro"}
    assert events[f"{run}-b1"]["sent_at"] == "2026-05-12T10:00:02.000Z"
    assert events[f"{run}-b2"]["group_id"] == "g-1"
    screen = events[f"{run}-s"]
    assert screen["type"] == "screen" and screen["timestamp"] == "2026-05-12T10:00:01.500Z"
    assert "originalTimestamp" not in screen and screen["channel"] == "web"
    alias = events[f"{run}-a"]
    assert alias["type"] == "alias" and alias["previous_id"] == "u-1"
    assert alias["timestamp"] == "2026-05-12T10:00:03.900Z" and alias["sent_at"] == "2026-05-12T10:00:04.000Z"
    assert events[f"{run}-z"]["event"] == "Zipped"
    assert [events[f"{run}-{s}{s}"]["type"] for s in "igas"] == ["identify", "group", "alias", "screen"]


@pytest.mark.parametrize(
    ("path", "headers", "body"),
    [
        ("/v1/t", {}, {"event": "e", "userId": "u"}),  # no key anywhere
        ("/v1/t", basic("wk_wrong"), {"event": "e", "userId": "u"}),
        ("/v1/t", {"Content-Type": "text/plain"}, {"event": "e", "userId": "u", "writeKey": "wk_wrong"}),
        ("/v1/b", {"Content-Type": "text/plain"}, {"batch": [{"type": "track", "event": "e"}], "writeKey": ""}),
        ("/beacon/v1/batch?writeKey=wk_wrong", {"Content-Type": "text/plain"}, {"batch": []}),
        ("/beacon/v1/batch", {"Content-Type": "text/plain"}, {"batch": []}),
        ("/v1/t", {"Authorization": "Basic !!!"}, {"event": "e", "userId": "u"}),
        ("/v1/t", {"Authorization": "Bearer something"}, {"event": "e", "userId": "u"}),
    ],
)
def test_a_wrong_or_missing_write_key_is_401_with_a_json_reason(
    api: Api, path: str, headers: dict[str, str], body: dict[str, Any]
) -> None:
    response = api.anon.post(path, headers=headers, content=orjson.dumps(body))
    assert response.status_code == 401, response.text
    reply = response.json()
    assert reply["success"] is False and reply["error"] == "unauthorized" and "write key" in reply["message"]


def test_the_body_limits_hold_for_text_plain_and_beacon_bodies(api: Api) -> None:
    key = api.source()["write_key"]
    big = orjson.dumps({"batch": [{"type": "track", "event": "e", "userId": "u", "p": "x" * 20_000}] * 30})
    response = api.anon.post(f"/beacon/v1/batch?writeKey={key}", content=big, headers={"Content-Type": "text/plain"})
    assert response.status_code == 413 and response.json()["error"] == "body_too_large"
    response = api.anon.post("/v1/t", content=b"not json", headers={"Content-Type": "text/plain", **basic(key)})
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    one = orjson.dumps({"event": "e", "userId": "u", "writeKey": key, "p": "x" * 33_000})
    response = api.anon.post("/v1/t", content=one, headers={"Content-Type": "text/plain"})
    assert response.status_code == 400 and response.json()["error"] == "event_too_large"


# -- a source's settings: allowed origins, rate limit ------------------------------------------------------------------


def test_allowed_origins_refuse_other_sites_with_403_and_count_them(api: Api) -> None:
    source = api.source()
    response = api.admin.patch(
        f"/v1/admin/sources/{source['id']}", json={"allowed_origins": [ORIGIN, "*.blog.example"]}
    )
    assert response.status_code == 200 and response.json()["allowed_origins"] == [ORIGIN, "*.blog.example"]
    call = {"event": "e", "anonymousId": "a", "writeKey": source["write_key"]}
    for origin, status in (
        (ORIGIN, 200),
        ("https://news.blog.example", 200),
        ("https://evil.example", 403),
        ("http://www.shop.example", 403),
        ("null", 403),
    ):
        response = api.anon.post(
            "/v1/t", content=orjson.dumps(call), headers={"Origin": origin, "Content-Type": "text/plain"}
        )
        assert response.status_code == status, (origin, response.text)
        if status == 200:
            assert response.headers["access-control-allow-origin"] == origin
        else:
            assert "access-control-allow-origin" not in response.headers  # no CORS grant: the page cannot read it
            assert response.json()["error"] == "origin_not_allowed" and origin in response.json()["message"]
    assert api.anon.post("/v1/t", json=call).status_code == 200  # no Origin: a server, not a browser
    wait_until(
        lambda: api.source_view(source["id"])["refused"]["origin_not_allowed"]["requests"] == 3,
        10,
        message=lambda: str(api.source_view(source["id"])),
    )
    scraped = api.admin.get("/metrics").text
    assert (
        f'signal_collect_refused_requests_total{{reason="origin_not_allowed",source_id="{source["id"]}"}} 3.0'
        in scraped
    )


def test_source_settings_are_validated_one_message_per_wrong_field(api: Api) -> None:
    source = api.source()
    response = api.admin.patch(
        f"/v1/admin/sources/{source['id']}",
        json={
            "allowed_origins": ["https://ok.example", "www.nope.example"],
            "rate_limit_eps": -5,
            "name": "",
            "color": "red",
        },
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [e["field"] for e in errors] == ["color", "name", "rate_limit_eps", "allowed_origins[1]"]
    assert all(e["message"] for e in errors)
    assert api.source_view(source["id"])["allowed_origins"] == []  # nothing changed
    response = api.admin.post("/v1/admin/sources", json={"name": "Shop", "rate_limit_eps": "fast"})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "rate_limit_eps"
    assert api.admin.patch("/v1/admin/sources/nope", json={"name": "x"}).status_code == 404
    response = api.admin.patch(f"/v1/admin/sources/{source['id']}", json={"rate_limit_eps": 0})
    assert response.status_code == 200
    assert response.json()["rate_limit_eps"] == 0 and response.json()["effective_rate_limit_eps"] == 0
    response = api.admin.patch(f"/v1/admin/sources/{source['id']}", json={"rate_limit_eps": None})
    assert response.json()["effective_rate_limit_eps"] == 1000  # SIGNAL_SOURCE_RATE_LIMIT_EPS


def test_the_rate_limit_is_shared_by_every_api_process_and_spares_what_was_accepted(
    api: Api, start_api: Callable[..., Api], make_bucket: Callable[..., str], start_worker: Callable, fleet: Any
) -> None:
    rate = 20
    source = api.source("Busy", rate_limit_eps=rate)
    integration_id = api.install(make_bucket(), source_id=source["id"])["id"]
    other = start_api()
    start_worker()
    for process in (api, other):  # each process's first request is slow (its first publish): not part of the load
        response = httpx.post(
            f"{process.base_url}/v1/t", auth=(source["write_key"], ""), json={"event": "Warm", "anonymousId": "a"}
        )
        assert response.status_code == 200
    time.sleep(3 * ratelimit.slice_of(rate) / rate)  # the bucket is full again (the warm-up took two slices)
    outcomes: list[tuple[int, int, httpx.Response]] = []  # (status, events, response)
    lock = threading.Lock()
    clients = [
        httpx.Client(base_url=(api, other)[n % 2].base_url, auth=(source["write_key"], ""), timeout=30)
        for n in range(8)
    ]  # 8 senders, 4 on each API process, for 2 s
    started, first_sent_ms = time.monotonic(), [clock.now_ms() + 60_000]

    def send(sender: int) -> None:
        n = 0
        with lock:
            first_sent_ms[0] = min(first_sent_ms[0], clock.now_ms())
        while time.monotonic() - started < 2.0:
            events = 1 + n % 3
            response = clients[sender].post(
                "/v1/batch",
                json={
                    "batch": [
                        {"type": "track", "event": "Tick", "anonymousId": "a", "messageId": f"{sender}-{n}-{i}"}
                        for i in range(events)
                    ]
                },
            )
            n += 1
            with lock:
                outcomes.append((response.status_code, events, response))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(send, range(8)))
    for client in clients:
        client.close()
    elapsed = time.monotonic() - started
    bucket = {k.decode(): float(v) for k, v in fleet.r.hgetall(keys.source_rate(source["id"])).items()}
    accepted = sum(events for status, events, _ in outcomes if status == 200)
    refusals = [(events, response) for status, events, response in outcomes if status != 200]
    refused, refused_events = len(refusals), sum(events for events, _ in refusals)
    for _, response in refusals:
        assert response.status_code == 429, response.text
        assert response.json()["error"] == "rate_limited" and str(rate) in response.json()["message"]
        assert response.headers["retry-after"].isdigit() and int(response.headers["retry-after"]) >= 1
    burst, slice_ = ratelimit.burst_of(rate), ratelimit.slice_of(rate)
    held_before = 2 * (slice_ - 1)  # what the warm-up left in each process's slice
    assert refused > 0, (accepted, len(outcomes), elapsed)
    # never more than the bucket gives (its burst and its rate) ...
    assert accepted <= burst + rate * elapsed + held_before, (accepted, elapsed)
    # ... and the processes lose nothing they take from it, but what each still holds of its last slice (and the
    # refill of the moments before the first request arrived, while the bucket was full)
    taken = burst + rate * (bucket["ms"] - first_sent_ms[0]) / 1000 - bucket["tokens"]
    assert accepted >= taken - 2 * slice_ - 2, (accepted, taken, bucket)
    accepted += 2  # the warm-up

    # everything accepted is ingested, nothing refused is
    wait_until(
        lambda: api.status(integration_id)["ingested_events"] == accepted,
        30,
        message=lambda: f"accepted {accepted}, status {api.status(integration_id)}",
    )
    view = wait_until(
        lambda: (v := api.source_view(source["id"]))["refused"]["rate_limited"]["requests"] == refused and v,
        10,
        message=lambda: f"refused {refused}: {api.source_view(source['id'])}",
    )
    assert view["refused"]["rate_limited"]["events"] == refused_events
    assert view["effective_rate_limit_eps"] == rate
    scraped = api.admin.get("/metrics").text
    assert (
        f'signal_collect_refused_events_total{{reason="rate_limited",source_id="{source["id"]}"}} '
        f"{float(refused_events)}" in scraped
    )
    # the budget refills: the source is accepted again
    wait_until(
        lambda: (
            httpx.post(
                f"{api.base_url}/v1/t", auth=(source["write_key"], ""), json={"event": "Again", "anonymousId": "a"}
            ).status_code
            == 200
        ),
        5,
    )


def test_x_forwarded_for_is_believed_only_from_trusted_proxies(
    api: Api,
    start_api: Callable[..., Api],
    make_bucket: Callable[..., str],
    start_worker: Callable,
    start_beat: Callable,
    s3_admin: Any,
) -> None:
    behind_proxy = start_api(SIGNAL_TRUSTED_PROXIES="10.0.0.0/8,127.0.0.1")
    source = api.source()
    bucket = make_bucket()
    integration_id = api.install(bucket, source_id=source["id"])["id"]
    start_worker()
    start_beat()
    forwarded = {"X-Forwarded-For": "192.0.2.1, 198.51.100.7, 10.1.2.3"}
    for client, event_id in ((api, "direct"), (behind_proxy, "proxied")):
        response = httpx.post(
            f"{client.base_url}/v1/track",
            auth=(source["write_key"], ""),
            headers=forwarded,
            json={"event": "e", "anonymousId": "a", "messageId": event_id},
        )
        assert response.status_code == 200
    response = httpx.post(
        f"{behind_proxy.base_url}/v1/track",
        auth=(source["write_key"], ""),
        headers=forwarded,
        json={"event": "e", "anonymousId": "a", "messageId": "own", "context": {"ip": "203.0.113.9"}},
    )
    assert response.status_code == 200
    events = stored(api, s3_admin, integration_id, bucket, 3)
    assert events["direct"]["context"]["ip"] == "127.0.0.1"  # the header of an untrusted peer is ignored
    assert events["proxied"]["context"]["ip"] == "198.51.100.7"  # the first hop left of the trusted proxies
    assert events["own"]["context"]["ip"] == "203.0.113.9"  # the client's own value is kept


# -- the collection endpoint in front of FastAPI: what it does not take, and the answers it gives -------------------


def test_other_methods_and_neighbouring_paths_are_answered_by_fastapi_as_before(api: Api) -> None:
    for method in ("GET", "HEAD", "PUT", "DELETE", "PATCH"):
        for path in ("/v1/track", "/v1/b", "/beacon/v1/batch", "/v1/m"):
            response = api.anon.request(method, path, headers={"Origin": ORIGIN})
            assert response.status_code == 405, (method, path, response.text)
            assert response.headers["allow"] == "POST"
            assert "access-control-allow-origin" not in response.headers
            if method != "HEAD":
                assert response.json() == {"error": "method_not_allowed", "message": "Method Not Allowed"}
    moved = api.anon.post("/v1/track/", json={"event": "e"}, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"].endswith("/v1/track")
    for path in ("/v1/trackx", "/v1/Track", "/beacon/v1/batchx"):
        response = api.anon.post(path, json={"event": "e"})
        assert response.status_code == 404 and response.json() == {"error": "not_found", "message": "Not Found"}
    assert api.anon.get("/openapi.json").status_code == 401  # the document is the admin's
    schema = api.admin.get("/openapi.json").json()
    for path in ("/v1/batch", "/v1/track", "/v1/page", "/v1/identify", "/v1/group", "/v1/alias", "/v1/screen"):
        operation = schema["paths"][path]["post"]
        assert operation["tags"] == ["collect"] and operation["security"] == [{"writeKey": []}], path
        assert [(p["name"], p["in"]) for p in operation["parameters"]] == [("writeKey", "query")], path
        body = operation["requestBody"]["content"]
        assert set(body) == {"application/json", "text/plain"}, path
        assert ("batch" in body["application/json"]["schema"]["properties"]) == (path == "/v1/batch")
    for hidden in ("/v1/t", "/v1/b", "/beacon/v1/batch", "/v1/m"):
        assert hidden not in schema["paths"]
    assert schema["components"]["securitySchemes"]["writeKey"]["scheme"] == "basic"


def test_collection_errors_keep_their_json_bodies_and_stay_readable_by_the_page(api: Api) -> None:
    key = api.source()["write_key"]
    browser = {"Origin": ORIGIN, **basic(key)}
    track = orjson.dumps({"event": "e", "anonymousId": "a"})
    cases: list[tuple[str, dict[str, str], bytes, int, dict[str, Any]]] = [
        (
            f"/v1/track?writeKey={'x' * 501}",
            {"Origin": ORIGIN},
            track,
            422,
            {
                "success": False,
                "error": "invalid",
                "message": "invalid request parameters",
                "errors": [{"field": "writeKey", "message": "writeKey: String should have at most 500 characters"}],
            },
        ),
        (
            "/v1/track",
            {**browser, "Content-Encoding": "br"},
            track,
            415,
            {"success": False, "error": "unsupported_encoding", "message": "Content-Encoding must be gzip or absent"},
        ),
        (
            "/v1/track",
            {**browser, "Content-Encoding": "gzip"},
            b"not gzip",
            400,
            {
                "success": False,
                "error": "invalid_gzip",
                "message": "the body is not valid gzip (Content-Encoding: gzip)",
            },
        ),
        (
            "/v1/track",
            {**browser, "Content-Encoding": "gzip"},
            gzip.compress(b" " * 600_000),
            413,
            {
                "success": False,
                "error": "body_too_large",
                "message": "the decompressed body is over the limit of 512000 bytes",
            },
        ),
        (
            "/v1/track",
            browser,
            b" ",
            400,
            {"success": False, "error": "empty_body", "message": "the request body is empty; send a JSON object"},
        ),
        (
            "/v1/track",
            browser,
            b"[1]",
            400,
            {"success": False, "error": "not_an_object", "message": "the request body must be a JSON object"},
        ),
        (
            "/v1/batch",
            browser,
            b'{"batch": 3}',
            400,
            {"success": False, "error": "invalid_batch", "message": "batch must be a list of calls"},
        ),
        (
            "/v1/track",
            browser,
            b'{"event": "e", "properties": ' + b'{"a": ' * 1100 + b"1" + b"}" * 1100 + b"}",
            400,
            {"success": False, "error": "json_too_deep", "message": "the JSON is nested deeper than 1024 levels"},
        ),
        (
            "/v1/batch",
            browser,
            b'{"batch": [{"type": "track", "event": "e", "properties": ' + b"[" * 300 + b"]" * 300 + b"}]}",
            400,
            {"success": False, "error": "json_too_deep", "message": "a call is nested deeper than 254 levels"},
        ),
        (
            "/v1/track",
            browser,
            b'{"event": "e"',
            400,
            {"success": False, "error": "invalid_json", "message": "the request body is not valid JSON"},
        ),
        (
            "/v1/track",
            {"Origin": ORIGIN, **basic("wk_wrong")},
            track,
            401,
            {
                "error": "unauthorized",
                "success": False,
                "message": "a valid write key is required (HTTP Basic username "
                "with an empty password, the writeKey query parameter, or writeKey in the body)",
            },
        ),
    ]
    for path, headers, body, status, expected in cases:
        response = api.anon.post(path, headers=headers, content=body)
        assert response.status_code == status, (path, headers, response.text)
        assert response.json() == expected
        assert list(response.json())[:3] == ["success", "error", "message"]  # every error, the same fields
        assert response.headers["content-type"] == "application/json"
        assert response.headers["access-control-allow-origin"] == ORIGIN, (path, headers)
    unauthorized = api.anon.post("/v1/track", headers=basic("wk_wrong"), content=track)
    assert unauthorized.headers["www-authenticate"] == 'Basic realm="signal"'
    # a repeated writeKey parameter: the last one counts, as FastAPI reads a query parameter
    assert api.anon.post(f"/v1/track?writeKey=wk_wrong&writeKey={key}", content=track).status_code == 200
    assert api.anon.post(f"/v1/track?writeKey={key}&writeKey=wk_wrong", content=track).status_code == 401
    metrics = api.anon.post("/v1/m", headers={"Origin": ORIGIN}, content=b"anything")
    assert metrics.status_code == 200 and metrics.json() == {"success": True}
    assert metrics.headers["access-control-allow-origin"] == ORIGIN
