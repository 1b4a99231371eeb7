"""Blueprint rules on the ingest path: the cost per event of ``Rules.apply``.

The table sets it against what the ingest path already costs per event (the product's ingest worker CPU per event,
measured in the same run) and against ``envelope.prepare`` alone (validate, stamp, serialise). Measured: every kind
of rule at once (the costliest per delivered event: two keyed hashes), consent and filter only, and the default
blueprint, which compiles to no rules at all (it should cost nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from bench.events import make_events
from workers import blueprint, clock, envelope, rules

# Every kind of rule at once, letting every event through (consent information is missing and allowed), so the
# drop and the two hashes run on each event: the costliest blueprint per delivered event.
TYPICAL: dict[str, Any] = {
    "consent": {"require": ["analytics"], "missing": "allow"},
    "events": {"exclude": ["Heartbeat"]},
    "drop_fields": ["context.ip"],
    "hash_fields": ["user_id", "anonymous_id"],
}
LIGHT: dict[str, Any] = {"consent": {"require": ["analytics"], "missing": "allow"},
                         "events": {"exclude": ["Heartbeat"]}}
CHUNK = 500
REPEATS = 5


def _each(apply: Callable[[dict[str, Any]], object], events: list[dict[str, Any]]) -> Callable[[], None]:
    """Apply to every event, keeping nothing (as ingest serialises each result at once): kept results would only
    measure the garbage collector walking them."""

    def run() -> None:
        for event in events:
            apply(event)

    return run


def _best_s(run: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def run(n: int) -> dict[str, Any]:
    events = make_events(n, seed=17)
    now = clock.now()

    def prepare() -> None:
        for i in range(0, n, CHUNK):
            envelope.prepare(events[i:i + CHUNK], "bench", received_at=now, event_max_bytes=32 * 1024)

    prepared = envelope.prepare(events, "bench", received_at=now, event_max_bytes=32 * 1024)
    validated = [orjson.loads(line) for lines in prepared.lines_by_hour.values() for line in lines]
    key = bytes.fromhex(rules.new_hash_key())
    full = rules.compile_rules(blueprint.parse_blueprint(TYPICAL), key)
    light = rules.compile_rules(blueprint.parse_blueprint(LIGHT), key)
    assert full is not None and light is not None
    default = rules.compile_rules(blueprint.DEFAULT, None)
    kept = sum(isinstance(full.apply(e), dict) for e in validated)
    prepare_s = _best_s(prepare)
    rules_s = _best_s(_each(full.apply, validated))
    light_s = _best_s(_each(light.apply, validated))
    default_s = _best_s(_each(lambda e: rules.apply(default, e), validated))
    return {"events": n, "kept": kept, "blueprint": TYPICAL, "light_blueprint": LIGHT,
            "prepare_us_per_event": prepare_s / n * 1e6, "rules_us_per_event": rules_s / n * 1e6,
            "light_us_per_event": light_s / n * 1e6, "default_us_per_event": default_s / n * 1e6}
