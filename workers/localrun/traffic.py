"""The sample stream ``make run`` sends: visitors of a small shop browsing, tracking and signing up."""

from __future__ import annotations

import random
import uuid
from typing import Any

from workers import clock

PAGES = [
    ("/", "Home"),
    ("/pricing", "Pricing"),
    ("/blog/first-party-data", "First-party data"),
    ("/products/trail-shoe", "Trail Shoe"),
    ("/products/rain-jacket", "Rain Jacket"),
    ("/cart", "Cart"),
    ("/checkout", "Checkout"),
    ("/docs/getting-started", "Getting started"),
]
REFERRERS = ["", "https://www.google.com/", "https://news.example.org/"]
TRACKS = ["product_viewed", "product_added", "checkout_started", "order_completed", "signup_clicked"]
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
]


class SampleTraffic:
    """Page views, product events and identifies from a few hundred visitors, some of them signed in."""

    def __init__(self, visitors: int = 300, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.visitors = [
            {
                "anonymous_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "user_id": None,
                "agent": self.rng.choice(AGENTS),
                "ip": f"203.0.113.{self.rng.randrange(1, 255)}",
                "locale": self.rng.choice(["en-US", "en-GB", "de-DE", "fr-FR"]),
            }
            for _ in range(visitors)
        ]

    def event(self) -> dict[str, Any]:
        visitor = self.rng.choice(self.visitors)
        path, title = self.rng.choice(PAGES)
        now = clock.iso(clock.now())
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "anonymous_id": visitor["anonymous_id"],
            "timestamp": now,
            "sent_at": now,
            "context": {
                "page": {
                    "path": path,
                    "title": title,
                    "url": f"https://shop.example.com{path}",
                    "referrer": self.rng.choice(REFERRERS),
                },
                "userAgent": visitor["agent"],
                "ip": visitor["ip"],
                "locale": visitor["locale"],
            },
        }
        if visitor["user_id"]:
            event["user_id"] = visitor["user_id"]
        roll = self.rng.random()
        if roll < 0.55:
            event.update(type="page", name=title, properties={"path": path, "title": title})
        elif roll < 0.93:
            event.update(
                type="track",
                event=self.rng.choice(TRACKS),
                properties={
                    "product_id": f"sku-{self.rng.randrange(1000, 1100)}",
                    "currency": "USD",
                    "price": round(self.rng.uniform(9, 240), 2),
                    "quantity": self.rng.randint(1, 3),
                },
            )
        else:
            visitor["user_id"] = visitor["user_id"] or f"user_{self.rng.randrange(10_000, 99_999)}"
            event.update(
                type="identify",
                user_id=visitor["user_id"],
                traits={"email": f"{visitor['user_id']}@example.com", "plan": self.rng.choice(["free", "pro", "team"])},
            )
        return event

    def batch(self) -> list[dict[str, Any]]:
        return [self.event() for _ in range(self.rng.randint(80, 120))]
