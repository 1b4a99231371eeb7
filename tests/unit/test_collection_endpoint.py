"""The collection routes' plain ASGI endpoint: which requests it takes from FastAPI, and how it reads the write key
(as FastAPI's HTTPBasic and Query read it)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from workers.web import collection, collection_routes, cors
from workers.web.errors import ApiError

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


def scope(method: str, path: str, root_path: str = "") -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": root_path, "headers": [], "query_string": b""}


@pytest.mark.parametrize("path", COLLECTION_PATHS)
def test_post_and_options_of_every_collection_path_are_taken(path: str) -> None:
    assert collection.Endpoint.takes(scope("POST", path))
    assert collection.Endpoint.takes(scope("OPTIONS", path))
    assert collection.Endpoint.takes(scope("POST", "/api" + path, root_path="/api"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/track"),
        ("HEAD", "/v1/track"),
        ("PUT", "/v1/batch"),
        ("DELETE", "/v1/m"),
        ("GET", "/v1/m"),
        ("POST", "/v1/track/"),
        ("POST", "/v1/Track"),
        ("POST", "/v1/trackx"),
        ("POST", "/v1"),
        ("POST", "/v1/"),
        ("POST", "/beacon/v1/batch/"),
        ("POST", "/v1/admin/sources"),
        ("OPTIONS", "/v1/admin/sources"),
        ("POST", "/metrics"),
        ("GET", "/openapi.json"),
        ("POST", "/"),
        ("POST", "//v1/track"),
    ],
)
def test_everything_else_goes_to_fastapi(method: str, path: str) -> None:
    assert not collection.Endpoint.takes(scope(method, path))


def test_every_route_fastapi_declares_for_collection_is_answered_by_the_endpoint() -> None:
    """FastAPI keeps the routes for the OpenAPI document and for 405: none of its collection handlers is reachable."""
    routes = collection_routes.router.routes
    declared = {route.path for route in routes}  # type: ignore[attr-defined]
    assert declared == set(COLLECTION_PATHS)
    for route in routes:
        for method in route.methods:  # type: ignore[attr-defined]
            assert collection.Endpoint.takes(scope(method, route.path)), (method, route.path)  # type: ignore


def basic(text: bytes) -> bytes:
    return b"Basic " + base64.b64encode(text)


def test_the_basic_username_is_read_as_httpbasic_reads_it() -> None:
    assert collection.basic_username(basic(b"wk_key:")) == "wk_key"
    assert collection.basic_username(basic(b"wk_key:ignored")) == "wk_key"
    assert collection.basic_username(b"basic " + base64.b64encode(b"wk_key:")) == "wk_key"  # any case
    assert collection.basic_username(basic(b":")) == ""  # empty: the key may be elsewhere
    assert collection.basic_username(None) is None
    assert collection.basic_username(b"") is None
    assert collection.basic_username(b"Bearer token") is None  # not Basic: the key may be elsewhere
    for malformed in (b"Basic !!!", basic(b"no-colon"), basic("é:".encode()), b"Basic"):
        with pytest.raises(ApiError) as refused:
            collection.basic_username(malformed)
        assert refused.value.status == 401 and refused.value.body["error"] == "unauthorized"
        assert refused.value.headers["WWW-Authenticate"] == 'Basic realm="signal"'


def test_the_write_key_query_parameter_is_read_as_fastapis_query_reads_it() -> None:
    assert collection.query_write_key(b"") is None
    assert collection.query_write_key(b"a=1") is None
    assert collection.query_write_key(b"writeKey=wk_a") == "wk_a"
    assert collection.query_write_key(b"writeKey=wk_a&writeKey=wk_b") == "wk_b"  # the last one
    assert collection.query_write_key(b"writeKey=wk_a&writeKey=") == ""
    assert collection.query_write_key(b"writeKey=wk%2Ba+b") == "wk+a b"
    assert collection.query_write_key(b"writekey=wk_a") is None  # names are case-sensitive
    assert collection.query_write_key(b"writeKey=" + b"x" * 500) == "x" * 500
    with pytest.raises(RequestValidationError) as refused:
        collection.query_write_key(b"writeKey=" + b"x" * 501)
    [error] = refused.value.errors()
    assert error["loc"] == ("query", "writeKey")
    assert error["msg"] == "String should have at most 500 characters"


def test_cors_headers() -> None:
    assert cors.grant(None) == []
    assert dict(cors.grant(b"https://a.example")) == {
        b"access-control-allow-origin": b"https://a.example",
        b"access-control-expose-headers": b"Retry-After",
        b"vary": b"Origin",
    }
    asked = dict(cors.preflight(b"https://a.example", b"authorization, content-type, anonymousid"))
    assert asked[b"access-control-allow-headers"] == b"authorization, content-type, anonymousid"
    assert asked[b"access-control-allow-methods"] == b"POST, OPTIONS"
    assert asked[b"access-control-allow-origin"] == b"https://a.example"
    assert b"access-control-allow-credentials" not in asked
    for odd in (None, b"", b"x;y", b"a" * 2001):
        assert dict(cors.preflight(None, odd))[b"access-control-allow-headers"] == cors.DEFAULT_ALLOW_HEADERS.encode()
    assert b"access-control-allow-origin" not in dict(cors.preflight(None, None))


def test_requests_that_miss_the_cache_together_share_one_lookup() -> None:
    import asyncio
    import threading
    import types

    calls: list[str] = []
    release = threading.Event()

    def look_up(source_id: str) -> str:
        calls.append(source_id)
        release.wait(5)
        if source_id == "gone":
            raise LookupError(source_id)
        return f"route of {source_id}"

    async def main() -> None:
        st: Any = types.SimpleNamespace(lookups={})
        many = [asyncio.ensure_future(collection._lookup(st, ("route", "s1"), look_up, "s1")) for _ in range(50)]
        other = asyncio.ensure_future(collection._lookup(st, ("route", "s2"), look_up, "s2"))
        failing = [asyncio.ensure_future(collection._lookup(st, ("route", "gone"), look_up, "gone")) for _ in range(3)]
        await asyncio.sleep(0.05)
        release.set()
        assert await asyncio.gather(*many) == ["route of s1"] * 50
        assert await other == "route of s2"
        for waiting in failing:  # the error reaches every request that waited for it
            with pytest.raises(LookupError):
                await waiting
        assert sorted(calls) == ["gone", "s1", "s2"]
        assert st.lookups == {}  # nothing kept: the next miss looks up again
        assert await collection._lookup(st, ("route", "s1"), look_up, "s1") == "route of s1"
        assert len(calls) == 4

    asyncio.run(main())


def test_each_api_process_collects_cyclic_garbage_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from workers.web import app

    before = gc.get_threshold()
    monkeypatch.setattr(app, "create_app", lambda settings: "app")
    try:
        assert app.served_app() == "app"
        assert gc.get_threshold() == app.GC_THRESHOLDS
        assert app.GC_THRESHOLDS[0] >= 10 * 700  # CPython's default first threshold
    finally:
        gc.set_threshold(*before)


def test_json_nested_too_deep_is_told_apart_from_json_that_is_not_valid() -> None:
    from workers.events import segment
    from workers.web import deps

    inner = b"[" * (deps.JSON_MAX_DEPTH - 1) + b"]" * (deps.JSON_MAX_DEPTH - 1)
    assert isinstance(deps.parse_json(b'{"batch": ' + inner + b"}")["batch"], list)  # 1024 deep: read
    for body, reason, message in (
        (
            b"[" * (deps.JSON_MAX_DEPTH + 1) + b"]" * (deps.JSON_MAX_DEPTH + 1),
            "json_too_deep",
            "nested deeper than 1024",
        ),
        (b'{"a":' * 5000, "json_too_deep", "nested deeper than 1024 levels"),
        (b"{nope", "invalid_json", "not valid JSON"),
        (b"  ", "empty_body", "empty"),
    ):
        with pytest.raises(segment.MalformedRequest) as caught:
            deps.parse_json(body)
        assert caught.value.reason == reason and message in caught.value.message and caught.value.status == 400
