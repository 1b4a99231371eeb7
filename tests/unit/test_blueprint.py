"""Blueprints, the model: validation with one message per wrong field, the public form, descriptions, form fields."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from workers.errors import ConfigError
from workers.events import blueprint, rules
from workers.events.blueprint import DEFAULT, PROTECTED_FIELDS, Blueprint, parse_blueprint


def errors_of(data: Any) -> list[dict[str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_blueprint(data)
    return caught.value.errors


# -- the default --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body", [None, {}, {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}, {"drop_fields": None}]
)
def test_an_empty_blueprint_is_the_default_and_compiles_to_nothing(body: Any) -> None:
    bp = parse_blueprint(body)
    assert bp == DEFAULT and bp.is_default
    assert rules.compile_rules(bp, bytes(32)) is None  # nothing to apply on the ingest path
    assert bp.public() == {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}
    assert blueprint.describe(bp) == ["Forwards all events unchanged."]


def test_public_form_round_trips() -> None:
    body = {
        "consent": {"require": ["analytics", "ads"], "missing": "allow"},
        "events": {"exclude": ["identify"]},
        "drop_fields": ["context.ip"],
        "hash_fields": ["user_id", "traits.email"],
    }
    bp = parse_blueprint(body)
    assert bp.public() == body
    assert parse_blueprint(bp.public()) == bp
    assert parse_blueprint({"events": {"include": ["page"]}}).public()["events"] == {"include": ["page"]}


def test_duplicates_are_dropped_keeping_order() -> None:
    bp = parse_blueprint({"consent": {"require": ["ads", "analytics", "ads"]}, "drop_fields": ["a.b", "c", "a.b"]})
    assert bp.consent is not None and bp.consent.require == ("ads", "analytics")
    assert bp.drop_fields == ("a.b", "c")


# -- validation ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            [],
            [
                {
                    "field": "blueprint",
                    "message": "blueprint must be an object such as "
                    '{"consent": {"require": ["analytics"]}}; {} forwards all events',
                }
            ],
        ),
        (
            {"consent": "yes"},
            [
                {
                    "field": "blueprint.consent",
                    "message": 'consent must be an object such as {"require": ["analytics"]}, or null',
                }
            ],
        ),
        (
            {"consent": {}},
            [
                {
                    "field": "blueprint.consent.require",
                    "message": 'consent.require is required: a list of consent category names such as ["analytics"]',
                }
            ],
        ),
        (
            {"consent": {"require": []}},
            [
                {
                    "field": "blueprint.consent.require",
                    "message": "consent.require must list at least one consent category; remove consent to keep every "
                    "event",
                }
            ],
        ),
        (
            {"consent": {"require": "analytics"}},
            [
                {
                    "field": "blueprint.consent.require",
                    "message": 'consent.require must be a list of consent category names such as ["analytics"]',
                }
            ],
        ),
        (
            {"consent": {"require": ["analytics", 3]}},
            [
                {
                    "field": "blueprint.consent.require",
                    "message": "consent.require[1] must be a non-empty string (a consent category)",
                }
            ],
        ),
        (
            {"consent": {"require": ["categoryPreferences"]}},
            [
                {
                    "field": "blueprint.consent.require",
                    "message": "consent.require lists 'categoryPreferences', which holds the categories in Segment's "
                    "shape; "
                    "list the category names themselves",
                }
            ],
        ),
        (
            {"consent": {"require": ["a"], "missing": "maybe"}},
            [
                {
                    "field": "blueprint.consent.missing",
                    "message": "consent.missing must be deny (no consent information counts as not granted) or allow",
                }
            ],
        ),
        (
            {"consent": {"require": ["a"], "mode": "x"}},
            [
                {
                    "field": "blueprint.consent.mode",
                    "message": "mode is not a known key of the consent section; allowed keys are require, missing",
                }
            ],
        ),
        (
            {"events": {}},
            [
                {
                    "field": "blueprint.events",
                    "message": "events must give either include or exclude (not both, not "
                    'neither), e.g. {"include": ["track"]}',
                }
            ],
        ),
        (
            {"events": {"include": ["track"], "exclude": ["page"]}},
            [
                {
                    "field": "blueprint.events",
                    "message": "events must give either include or exclude (not both, not "
                    'neither), e.g. {"include": ["track"]}',
                }
            ],
        ),
        (
            {"events": {"include": "track"}},
            [
                {
                    "field": "blueprint.events.include",
                    "message": 'events.include must be a list of event types or event names such as ["track", "page"]',
                }
            ],
        ),
        (
            {"events": {"exclude": ["ok", ""]}},
            [
                {
                    "field": "blueprint.events.exclude",
                    "message": "events.exclude[1] must be a non-empty string (a event type or event name)",
                }
            ],
        ),
        (
            {"events": {"include": ["x" * 1025]}},
            [
                {
                    "field": "blueprint.events.include",
                    "message": "events.include[0] is 1025 characters long, over the limit of 1024",
                }
            ],
        ),
        (
            {"events": {"include": [f"e{i}" for i in range(101)]}},
            [{"field": "blueprint.events.include", "message": "events.include may list at most 100 entries (got 101)"}],
        ),
        (
            {"drop_fields": "context.ip"},
            [
                {
                    "field": "blueprint.drop_fields",
                    "message": 'drop_fields must be a list of dotted field paths such as ["context.ip"]',
                }
            ],
        ),
        (
            {"drop_fields": ["context..ip"]},
            [
                {
                    "field": "blueprint.drop_fields",
                    "message": "drop_fields[0] 'context..ip' is not a dotted path: write keys separated by single "
                    "dots, "
                    "without spaces around them, e.g. context.ip",
                }
            ],
        ),
        (
            {"hash_fields": ["context. ip"]},
            [
                {
                    "field": "blueprint.hash_fields",
                    "message": "hash_fields[0] 'context. ip' is not a dotted path: write keys separated by single "
                    "dots, "
                    "without spaces around them, e.g. context.ip",
                }
            ],
        ),
        (
            {"drop_fields": ["ok", "context\nip"]},
            [{"field": "blueprint.drop_fields", "message": "drop_fields[1] must not contain control characters"}],
        ),
        (
            {"drop_fields": [".".join("a" * 11)]},
            [
                {
                    "field": "blueprint.drop_fields",
                    "message": "drop_fields[0] 'a.a.a.a.a.a.a.a.a.a.a' is 11 keys deep, over the limit of 10",
                }
            ],
        ),
        (
            {"hash_fields": ["event_id"]},
            [
                {
                    "field": "blueprint.hash_fields",
                    "message": "hash_fields[0] 'event_id' cannot be changed: event_id is needed to deliver and "
                    "partition the "
                    "event (protected fields: event, event_id, integration_id, received_at, sent_at, source_id, "
                    "timestamp, type)",
                }
            ],
        ),
        (
            {"drop_fields": ["context", "context.ip"]},
            [
                {
                    "field": "blueprint.drop_fields",
                    "message": "drop_fields lists 'context.ip' inside 'context'; list only one of them",
                }
            ],
        ),
        (
            {"drop_fields": ["context"], "hash_fields": ["context.ip"]},
            [
                {
                    "field": "blueprint.hash_fields",
                    "message": "hash_fields and drop_fields both change 'context.ip' (inside 'context'); list it in "
                    "only one "
                    "of them",
                }
            ],
        ),
        (
            {"drop_fields": ["traits.email"], "hash_fields": ["traits.email"]},
            [
                {
                    "field": "blueprint.hash_fields",
                    "message": "hash_fields and drop_fields both change 'traits.email'; list it in only one of them",
                }
            ],
        ),
        (
            {"filters": []},
            [
                {
                    "field": "blueprint.filters",
                    "message": "filters is not a known key of a blueprint; allowed keys are "
                    "consent, events, drop_fields, hash_fields",
                }
            ],
        ),
    ],
)
def test_one_clear_message_per_wrong_field(body: Any, expected: list[dict[str, str]]) -> None:
    assert errors_of(body) == expected


def test_every_wrong_field_is_reported_at_once() -> None:
    errors = errors_of(
        {
            "consent": {"require": [], "missing": "x"},
            "events": {"include": 1},
            "drop_fields": ["type"],
            "hash_fields": [""],
            "extra": 1,
        }
    )
    assert [e["field"] for e in errors] == [
        "blueprint.consent.require",
        "blueprint.consent.missing",
        "blueprint.events.include",
        "blueprint.drop_fields",
        "blueprint.hash_fields",
        "blueprint.extra",
    ]


def test_messages_never_echo_long_input() -> None:
    secretish = "s3cr3t-" + "x" * 2000
    for body in ({"events": {"include": [secretish]}}, {"drop_fields": [secretish]}, {"consent": secretish}):
        assert secretish not in str(errors_of(body))


def test_error_field_names_follow_the_prefix() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_blueprint({"drop_fields": 1}, field_prefix="body.blueprint")
    assert caught.value.errors[0]["field"] == "body.blueprint.drop_fields"


# -- dotted paths ---------------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    path=st.lists(
        st.text(
            alphabet=st.characters(blacklist_characters=".", blacklist_categories=("Cc",)), min_size=1, max_size=6
        ).filter(lambda s: s == s.strip()),
        min_size=1,
        max_size=10,
    ).map(".".join)
)
def test_every_dotted_path_of_plain_keys_validates_and_round_trips(path: str) -> None:
    assume(path.split(".")[0] not in PROTECTED_FIELDS)
    bp = parse_blueprint({"drop_fields": [path]})
    assert bp.drop_fields == (path,)
    assert parse_blueprint(bp.public()) == bp
    nested: dict[str, Any] = {"v": 1}
    for key in reversed(path.split(".")):
        nested = {key: nested}
    rules_ = rules.compile_rules(bp, None)
    assert rules_ is not None
    out = rules_.apply({"type": "track", **nested})
    assert isinstance(out, dict)
    parents = path.split(".")[:-1]
    walk: Any = out
    for key in parents:
        walk = walk[key]
    assert walk == ({} if parents else {"type": "track"})  # the leaf is gone, every object on the way is kept


# -- describe and form helpers ------------------------------------------------------------------------------------


def test_describe_says_what_each_rule_does() -> None:
    bp = parse_blueprint(
        {
            "consent": {"require": ["analytics", "ads"], "missing": "allow"},
            "events": {"include": ["track", "page"]},
            "drop_fields": ["context.ip"],
            "hash_fields": ["user_id", "traits.email"],
        }
    )
    assert blueprint.describe(bp) == [
        "Delivers only events whose type or event name is track or page.",
        "Delivers an event only when consent is granted for analytics and ads; an event without consent "
        "information is delivered.",
        "Removes context.ip.",
        "Replaces user_id and traits.email with a keyed hash (HMAC-SHA-256).",
    ]


def test_form_fields_round_trip() -> None:
    form = {
        "consent.require": "analytics, ads",
        "consent.missing": "allow",
        "events.include": "",
        "events.exclude": "identify\nHeartbeat",
        "drop_fields": "context.ip",
        "hash_fields": "",
    }
    body = blueprint.from_form(form)
    assert body == {
        "consent": {"require": ["analytics", "ads"], "missing": "allow"},
        "events": {"exclude": ["identify", "Heartbeat"]},
        "drop_fields": ["context.ip"],
    }
    bp = parse_blueprint(body)
    assert blueprint.to_form(bp) == {**form, "events.exclude": "identify, Heartbeat"}
    assert blueprint.from_form({}) == {} and parse_blueprint(blueprint.from_form({})) == DEFAULT
    assert blueprint.to_form(DEFAULT)["consent.missing"] == "deny"
    # both lists filled in: validation names the problem instead of guessing
    with pytest.raises(ConfigError):
        parse_blueprint(blueprint.from_form({"events.include": "a", "events.exclude": "b"}))


def test_blueprint_is_immutable() -> None:
    bp = parse_blueprint({"drop_fields": ["context.ip"]})
    with pytest.raises(ValidationError):  # pydantic's frozen models refuse the assignment
        bp.drop_fields = ()  # type: ignore[misc]
    assert isinstance(bp, Blueprint)
