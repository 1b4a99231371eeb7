"""Blueprint rules and partition_time on the ingest path: what ``prepared.prepare`` costs per event with them,
against ``prepare`` alone (validate, stamp, serialise), in the same run.

The table sets the difference against what the ingest path already costs per event (the product's ingest worker CPU
per event, measured in the same run). Measured: every kind of rule at once (the costliest per delivered event: two
keyed hashes), consent and filter only, the default blueprint with ``received_at`` partitioning (compiles to no
rules at all: it should cost nothing), and ``partition_time`` ``timestamp`` without rules.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.events import make_events
from workers import clock
from workers.events import blueprint, prepared, rules

# Every kind of rule at once, letting every event through (consent information is missing and allowed), so the
# drop and the two hashes run on each event: the costliest blueprint per delivered event.
TYPICAL: dict[str, Any] = {
    "consent": {"require": ["analytics"], "missing": "allow"},
    "events": {"exclude": ["Heartbeat"]},
    "drop_fields": ["context.ip"],
    "hash_fields": ["user_id", "anonymous_id"],
}
LIGHT: dict[str, Any] = {
    "consent": {"require": ["analytics"], "missing": "allow"},
    "events": {"exclude": ["Heartbeat"]},
}
CHUNK = 500
REPEATS = 7


def _best_s(runs: dict[str, Callable[[], object]]) -> dict[str, float]:
    """The best time of each run over ``REPEATS`` rounds, the runs interleaved in each round (a shared machine's
    drift then hits them alike)."""
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(REPEATS):
        for name, run in runs.items():
            gc.collect()  # each run starts on a clean heap: no run pays for the garbage of the one before
            t0 = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


@dataclass
class _Partition:
    partition_time: str
    partition_time_bound_s: int = 7 * 86_400


def run(n: int) -> dict[str, Any]:
    events = make_events(n, seed=17)
    now = clock.now()

    def prepare(rules_: rules.Rules | None = None, partition: _Partition | None = None) -> Callable[[], None]:
        def go() -> None:
            for i in range(0, n, CHUNK):
                prepared.prepare(
                    events[i : i + CHUNK],
                    "bench",
                    received_at=now,
                    event_max_bytes=32 * 1024,
                    rules=rules_,
                    partition=partition,
                )

        return go

    key = bytes.fromhex(rules.new_hash_key())
    full = rules.compile_rules(blueprint.parse_blueprint(TYPICAL), key)
    light = rules.compile_rules(blueprint.parse_blueprint(LIGHT), key)
    assert full is not None and light is not None
    default = rules.compile_rules(blueprint.DEFAULT, None)
    kept = prepared.prepare(events, "bench", received_at=now, event_max_bytes=32 * 1024, rules=full).accepted
    best = _best_s(
        {
            "prepare": prepare(),
            "full": prepare(full),
            "light": prepare(light),
            "default": prepare(default, _Partition("received_at")),
            "timestamp": prepare(None, _Partition("timestamp")),
        }
    )
    prepare_s, full_s, light_s, default_s, timestamp_s = (
        best[k] for k in ("prepare", "full", "light", "default", "timestamp")
    )
    per_event = 1e6 / n
    return {
        "events": n,
        "kept": kept,
        "blueprint": TYPICAL,
        "light_blueprint": LIGHT,
        "prepare_us_per_event": prepare_s * per_event,
        # what each adds to prepare per event (the default may come out slightly negative: noise)
        "rules_us_per_event": (full_s - prepare_s) * per_event,
        "light_us_per_event": (light_s - prepare_s) * per_event,
        "default_us_per_event": (default_s - prepare_s) * per_event,
        "timestamp_us_per_event": (timestamp_s - prepare_s) * per_event,
    }
