"""Allowed origins of a source: which entries are accepted, how they are normalised, which Origin headers match."""

from __future__ import annotations

import pytest

from workers.integrations import origins


@pytest.mark.parametrize(
    ("entry", "normalised"),
    [
        ("https://www.example.com", "https://www.example.com"),
        ("  HTTPS://WWW.Example.COM  ", "https://www.example.com"),
        ("https://shop.example.com:443", "https://shop.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("*.example.com", "*.example.com"),
        ("https://*.example.com", "https://*.example.com"),
        ("http://*.example.com:8080", "http://*.example.com:8080"),
    ],
)
def test_entries_are_normalised_to_what_browsers_send(entry, normalised):
    assert origins.normalise(entry) == normalised


@pytest.mark.parametrize(
    "entry",
    [
        "example.com",
        "www.example.com",
        "ftp://example.com",
        "https://example.com/shop",
        "https://example.com?x=1",
        "https://user@example.com",
        "https://",
        "*",
        "*.com",
        "https://*.com",
        "*.*.example.com",
        "https://a.*.example.com",
        "*example.com",
        "*.example.com:8080",
        "https://exa mple.com",
        "https://example.com:99999",
        "javascript:alert(1)",
    ],
)
def test_anything_else_is_not_an_origin(entry):
    with pytest.raises(origins.InvalidOrigin):
        origins.normalise(entry)


def test_check_reports_each_wrong_entry_by_position_and_drops_duplicates():
    entries, errors = origins.check(["https://a.example", 3, "nope", "*", "HTTPS://A.example", ""])
    assert entries == ["https://a.example"]
    assert [e["field"] for e in errors] == [
        "allowed_origins[1]",
        "allowed_origins[2]",
        "allowed_origins[3]",
        "allowed_origins[5]",
    ]
    assert "'nope' is not an origin" in errors[1]["message"] and "*.example.com" in errors[1]["message"]
    assert "empty to allow any origin" in errors[2]["message"]
    assert origins.check("https://a.example")[1][0]["field"] == "allowed_origins"
    assert origins.check(["https://a.example"] * 101)[1][0]["message"].endswith("at most 100 entries")


def test_an_empty_policy_allows_any_origin():
    policy = origins.OriginPolicy(())
    assert policy.any_origin
    assert policy.allows("https://anything.example") and policy.allows("null")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://www.example.com", True),
        ("https://WWW.EXAMPLE.COM:443", True),
        ("http://www.example.com", False),  # another scheme is another origin
        ("https://www.example.com:8443", False),
        ("https://example.com", False),
        ("https://a.shop.io", True),  # *.shop.io: any subdomain, http or https, default port
        ("http://deep.a.shop.io", True),
        ("https://shop.io", False),  # never the domain itself
        ("https://evilshop.io", False),
        ("https://a.shop.io.evil.example", False),
        ("https://a.shop.io:444", False),
        ("https://x.corp.example:8443", True),  # https://*.corp.example:8443: that scheme and port only
        ("http://x.corp.example:8443", False),
        ("https://x.corp.example", False),
        ("http://localhost:3000", True),
        ("http://localhost:3001", False),
        ("null", False),
        ("", False),
        ("not an origin", False),
    ],
)
def test_a_policy_matches_exact_origins_and_subdomain_patterns(origin, allowed):
    entries, errors = origins.check(
        ["https://www.example.com", "*.shop.io", "https://*.corp.example:8443", "http://localhost:3000"]
    )
    assert errors == []
    assert origins.OriginPolicy(entries).allows(origin) is allowed
