"""Realistic ~800-byte events (page / track / identify with context.page, userAgent, ip and a few properties)."""

from __future__ import annotations

import random
import uuid
from typing import Any

AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
)
PAGES = (
    ("/", "Home"),
    ("/pricing", "Pricing"),
    ("/blog/first-party-data", "First-party data, explained"),
    ("/products/trail-shoe-x2", "Trail Shoe X2"),
    ("/products/rain-jacket", "Rain Jacket"),
    ("/cart", "Cart"),
    ("/checkout/payment", "Checkout - Payment"),
    ("/docs/getting-started", "Getting started"),
)
REFERRERS = ("", "https://www.google.com/", "https://news.example.org/articles/2026/outdoor-gear-review")
TRACKS = ("product_viewed", "product_added", "checkout_started", "order_completed", "signup_clicked")


def make_events(n: int, *, seed: int = 7, tag: str = "e") -> list[dict[str, Any]]:
    """``n`` distinct events; ``event_id`` is ``<tag>-<i>``."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        path, title = rng.choice(PAGES)
        kind = ("page", "track", "track", "identify")[i % 4]
        anon = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        e: dict[str, Any] = {
            "event_id": f"{tag}-{i}",
            "type": kind,
            "anonymous_id": anon,
            "user_id": f"user-{rng.randrange(100_000):06d}" if rng.random() < 0.4 else None,
            "timestamp": f"2026-11-25T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z",
            "sent_at": "2026-11-25T10:59:59.000Z",
            "context": {
                "page": {
                    "path": path,
                    "title": title,
                    "url": f"https://shop.example.com{path}?utm_source=news",
                    "referrer": rng.choice(REFERRERS),
                    "search": "?utm_source=news&utm_medium=email",
                },
                "userAgent": rng.choice(AGENTS),
                "ip": f"203.0.113.{rng.randrange(1, 255)}",
                "locale": rng.choice(("en-US", "en-GB", "de-DE", "fr-FR")),
                "library": {"name": "signal.js", "version": "4.2.1"},
                "campaign": {"source": "news", "medium": "email", "name": "autumn-sale"},
            },
            "properties": {
                "sku": f"SKU-{rng.randrange(10_000):05d}",
                "price": round(rng.uniform(5, 300), 2),
                "currency": "EUR",
                "quantity": rng.randrange(1, 4),
                "category": "outdoor",
            },
        }
        if e["user_id"] is None:
            del e["user_id"]
        if kind == "track":
            e["event"] = rng.choice(TRACKS)
        elif kind == "page":
            e["name"] = title
        else:
            e["traits"] = {"plan": "free", "email_domain": "example.com"}
            del e["properties"]
        out.append(e)
    return out


def with_ids(template: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """Shallow copies of ``template`` with fresh ``event_id``s ``<tag>-<i>``."""
    return [{**e, "event_id": f"{tag}-{i}"} for i, e in enumerate(template)]


ID_MARK = "@ID@"  # replaced per request by the load generator (bench/wrk.lua) with a unique request id

_SEGMENT_NAMES = {"event_id": "messageId", "anonymous_id": "anonymousId", "user_id": "userId"}


def segment_calls(n: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` realistic calls as a website sends them to the collection API (Segment's camelCase fields), with
    ``messageId`` ``@ID@-<i>``: unique once the load generator puts a request id in place of ``@ID@``."""
    calls = []
    for i, e in enumerate(make_events(n, seed=seed)):
        call = {_SEGMENT_NAMES.get(k, k): v for k, v in e.items() if k != "sent_at"}
        call["messageId"] = f"{ID_MARK}-{i}"
        calls.append(call)
    return calls
