"""Blueprint rules applied to one event at a time: filter, consent, dropped and keyed-hash fields (with property tests
of the dotted paths against a reference model)."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from workers.events import rules as rules_module
from workers.events.blueprint import PROTECTED_FIELDS, parse_blueprint
from workers.events.rules import CONSENT_DENIED, FILTERED_OUT, Rules, compile_rules

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def rules(body: dict[str, Any], key: bytes = KEY) -> Rules:
    compiled = compile_rules(parse_blueprint(body), key)
    assert compiled is not None
    return compiled


def track(**fields: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "type": "track",
        "event": "Order Completed",
        "anonymous_id": "a-1",
        "received_at": "2026-05-12T10:00:00.000Z",
        "integration_id": "i-1",
        **fields,
    }


def hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()


def test_without_rules_the_event_itself_is_stored() -> None:
    event = track()
    assert rules_module.apply(None, event) is event
    assert rules_module.REASONS == (CONSENT_DENIED, FILTERED_OUT) == ("consent_denied", "filtered_out")


# -- events filter ------------------------------------------------------------------------------------------------


def test_include_keeps_listed_types_and_event_names() -> None:
    r = rules({"events": {"include": ["page", "Order Completed"]}})
    kept = [track(), {"type": "page", "anonymous_id": "a"}]
    for event in kept:
        assert r.apply(event) is event
    for event in (
        track(event="Signed Up"),
        {"type": "identify", "user_id": "u"},
        {"type": "track"},
        {"type": "track", "event": ["Order Completed"]},
        {"event": {"x": 1}},
    ):
        assert r.apply(event) == FILTERED_OUT
    assert r.apply(track(event="order completed")) == FILTERED_OUT  # exact, case-sensitive


def test_exclude_removes_listed_types_and_event_names() -> None:
    r = rules({"events": {"exclude": ["identify", "Heartbeat"]}})
    assert r.apply({"type": "identify", "user_id": "u"}) == FILTERED_OUT
    assert r.apply(track(event="Heartbeat")) == FILTERED_OUT
    for event in (track(), {"type": "page"}, {"type": ["identify"]}, {}):
        assert r.apply(event) is event


# -- consent ------------------------------------------------------------------------------------------------------


def with_consent(consent: Any) -> dict[str, Any]:
    return track(context={"consent": consent, "ip": "203.0.113.7"})


@pytest.mark.parametrize(
    ("consent", "delivered"),
    [
        ({"analytics": True, "ads": True}, True),  # the seed's shape
        ({"categoryPreferences": {"analytics": True, "ads": True}}, True),  # Segment's shape
        ({"analytics": True, "categoryPreferences": {"ads": True}}, True),  # each category from either place
        ({"analytics": "granted", "ads": "GRANTED"}, True),
        ({"analytics": True, "ads": False}, False),
        ({"analytics": True, "ads": "denied"}, False),
        ({"analytics": True, "ads": "yes"}, False),  # only true or "granted" grant
        ({"analytics": True, "ads": 1}, False),
        ({"categoryPreferences": {"analytics": True, "ads": False}}, False),
        ({"analytics": True, "ads": True, "categoryPreferences": {"ads": False}}, False),  # a denial anywhere wins
        ({"analytics": True}, False),  # ads missing
        ({"analytics": True, "ads": None}, False),  # null is missing
        ({}, False),
        ("granted", False),
        ({"categoryPreferences": "all"}, False),
    ],
)
def test_every_required_category_must_be_granted(consent: Any, delivered: bool) -> None:
    r = rules({"consent": {"require": ["analytics", "ads"]}})
    event = with_consent(consent)
    out = r.apply(event)
    assert (out is event) if delivered else (out == CONSENT_DENIED)


@pytest.mark.parametrize(
    "event",
    [
        track(),
        track(context={}),
        track(context={"consent": None}),
        track(context="nope"),
        track(context={"consent": {"categoryPreferences": {}}}),
        track(context={"consent": {"other": True}}),
    ],
)
def test_missing_consent_information_is_denied_unless_allowed(event: dict[str, Any]) -> None:
    assert rules({"consent": {"require": ["analytics"]}}).apply(event) == CONSENT_DENIED
    assert rules({"consent": {"require": ["analytics"], "missing": "deny"}}).apply(event) == CONSENT_DENIED
    assert rules({"consent": {"require": ["analytics"], "missing": "allow"}}).apply(event) is event


def test_allow_missing_still_honours_a_denial_and_mixes_per_category() -> None:
    r = rules({"consent": {"require": ["analytics", "ads"], "missing": "allow"}})
    assert r.apply(with_consent({"analytics": False})) == CONSENT_DENIED
    event = with_consent({"analytics": True})
    assert r.apply(event) is event


def test_the_filter_runs_before_consent() -> None:
    r = rules({"events": {"exclude": ["identify"]}, "consent": {"require": ["analytics"]}})
    assert r.apply({"type": "identify", "user_id": "u"}) == FILTERED_OUT
    assert r.apply(track()) == CONSENT_DENIED


# -- drop and hash ------------------------------------------------------------------------------------------------


def test_drop_and_hash_change_only_their_paths_and_never_the_input() -> None:
    r = rules(
        {
            "drop_fields": ["context.ip", "properties.card.number", "name"],
            "hash_fields": ["user_id", "traits.email", "properties.card.holder"],
        }
    )
    event = track(
        user_id="u-42",
        name="checkout",
        context={"ip": "203.0.113.7", "locale": "en"},
        traits={"email": "ada@example.com", "plan": "pro"},
        properties={"card": {"number": "4111", "holder": {"first": "Ada"}}, "revenue": 12},
    )
    before = copy.deepcopy(event)
    out = r.apply(event)
    assert event == before
    assert isinstance(out, dict)
    assert "name" not in out
    assert out["user_id"] == hmac_hex(KEY, "u-42")
    assert out["context"] == {"locale": "en"}
    assert out["traits"] == {"email": hmac_hex(KEY, "ada@example.com"), "plan": "pro"}
    assert out["properties"] == {"card": {"holder": hmac_hex(KEY, '{"first":"Ada"}')}, "revenue": 12}
    assert {k: v for k, v in out.items() if k not in ("user_id", "context", "traits", "properties")} == {
        k: v for k, v in before.items() if k not in ("user_id", "context", "traits", "properties", "name")
    }


def test_hashes_are_keyed_stable_and_join_across_fields() -> None:
    body = {"hash_fields": ["user_id", "traits.email"]}
    a, b = rules(body), rules(body, OTHER_KEY)
    event = track(user_id="ada@example.com", traits={"email": "ada@example.com"})
    out_a, out_b = a.apply(event), a.apply(copy.deepcopy(event))
    assert isinstance(out_a, dict) and isinstance(out_b, dict)
    assert out_a == out_b  # stable
    assert out_a["user_id"] == out_a["traits"]["email"]  # the same value joins across fields
    assert len(out_a["user_id"]) == 64 and int(out_a["user_id"], 16) >= 0
    other = b.apply(event)
    assert isinstance(other, dict) and other["user_id"] != out_a["user_id"]  # per-integration key
    assert out_a["user_id"] != hashlib.sha256(b"ada@example.com").hexdigest()  # not a plain (dictionary) hash


@pytest.mark.parametrize(
    ("value", "text"), [(42, "42"), (True, "true"), ([1, "a"], '[1,"a"]'), ({"b": 1, "a": "é"}, '{"a":"é","b":1}')]
)
def test_non_string_values_hash_as_their_compact_sorted_json(value: Any, text: str) -> None:
    out = rules({"hash_fields": ["properties.v"]}).apply(track(properties={"v": value}))
    assert isinstance(out, dict) and out["properties"]["v"] == hmac_hex(KEY, text)


def test_null_absent_and_unreachable_values_are_left_alone() -> None:
    r = rules({"hash_fields": ["user_id", "context.ip.v4"], "drop_fields": ["traits.address.street"]})
    for event in (
        track(user_id=None),
        track(),
        track(context={"ip": "203.0.113.7"}),
        track(context=[1]),
        track(traits={"address": "Main Street 1"}),
        track(traits={"address": None}),
    ):
        assert r.apply(event) is event


@pytest.mark.parametrize("length", [16, 32, 63, 64, 65, 200])
def test_the_keyed_hash_is_standard_hmac_sha256_for_any_key_length(length: int) -> None:
    key = bytes((i * 7 + 3) % 256 for i in range(length))
    r = rules({"hash_fields": ["user_id"]}, key)
    for value in ("", "ada@example.com", "é" * 100, "x" * 1000):
        assert r.hash_value(value) == hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def test_hash_fields_need_a_key() -> None:
    with pytest.raises(ValueError):
        compile_rules(parse_blueprint({"hash_fields": ["user_id"]}), None)
    assert compile_rules(parse_blueprint({"drop_fields": ["context.ip"]}), None) is not None


def test_the_key_is_never_printed() -> None:
    r = rules({"hash_fields": ["user_id"]})
    assert KEY.hex() not in repr(r) and str(list(KEY)) not in repr(r)
    assert len(rules_module.new_hash_key()) == 64 and rules_module.new_hash_key() != rules_module.new_hash_key()


# -- property tests of the dotted paths ---------------------------------------------------------------------------

KEYS = ("a", "b", "ip", "email", "context", "x")  # never a protected field
assert not set(KEYS) & PROTECTED_FIELDS

json_leaf = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | st.text(max_size=8)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=12,
)
events = st.dictionaries(st.sampled_from(KEYS), json_value, max_size=5).map(
    lambda fields: {"event_id": "e-1", "type": "track", "event": "x", **fields}
)
paths = st.lists(st.sampled_from(KEYS), min_size=1, max_size=4).map(".".join)


def ref_drop(event: dict[str, Any], path: str) -> dict[str, Any]:
    """The reference model: a deep copy with the key at ``path`` deleted when every step is an object."""
    out = copy.deepcopy(event)
    *parents, leaf = path.split(".")
    node: Any = out
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(leaf, None)
    return out


def ref_hash(event: dict[str, Any], path: str, key: bytes) -> dict[str, Any]:
    out = copy.deepcopy(event)
    *parents, leaf = path.split(".")
    node: Any = out
    for k in parents:
        node = node.get(k) if isinstance(node, dict) else None
    if isinstance(node, dict) and node.get(leaf) is not None:
        value = node[leaf]
        text = (
            value
            if isinstance(value, str)
            else json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        )
        node[leaf] = hmac_hex(key, text)
    return out


@settings(max_examples=300, deadline=None)
@given(event=events, path=paths)
def test_drop_matches_the_reference_model(event: dict[str, Any], path: str) -> None:
    before = copy.deepcopy(event)
    out = rules({"drop_fields": [path]}).apply(event)
    assert event == before  # the input is never modified
    assert out == ref_drop(before, path)
    if out == before:
        assert out is event  # nothing to change: no copy
    assert rules({"drop_fields": [path]}).apply(out) == out  # dropping twice is dropping once


@settings(max_examples=300, deadline=None)
@given(event=events, path=paths)
def test_hash_matches_the_reference_model(event: dict[str, Any], path: str) -> None:
    before = copy.deepcopy(event)
    out = rules({"hash_fields": [path]}).apply(event)
    assert event == before
    assert out == ref_hash(before, path, KEY)


@settings(max_examples=200, deadline=None)
@given(event=events, drop=st.lists(paths, max_size=3, unique=True), hashed=st.lists(paths, max_size=3, unique=True))
def test_many_paths_at_once_equal_one_after_another(event: dict[str, Any], drop: list[str], hashed: list[str]) -> None:
    every = drop + hashed
    assume(
        all(
            not (a == b or a.startswith(b + ".") or b.startswith(a + "."))
            for i, a in enumerate(every)
            for b in every[i + 1 :]
        )
    )
    before = copy.deepcopy(event)
    out = rules(
        {"drop_fields": drop, "hash_fields": hashed} if every else {"consent": {"require": ["a"], "missing": "allow"}}
    ).apply(event)
    expected = before
    for path in drop:
        expected = ref_drop(expected, path)
    for path in hashed:
        expected = ref_hash(expected, path, KEY)
    assert out == expected
    assert event == before
