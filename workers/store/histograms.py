"""The two histograms the store keeps per integration, as hashes of cumulative counters that ack.lua increments.

``keys.hist_upload`` (duration of the successful upload attempt) and ``keys.hist_latency`` (from the append of a
batch's first event to its object confirmed by S3): one field ``le:<bound_s>`` per bucket counting observations at
or below the bound, plus ``count`` and ``sum_us`` (microseconds, so sums stay exact integers). Each delivered batch
is observed once, in the same script that deletes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workers.store.db import text

# Upload of one batch (single PUT or multipart), seconds.
UPLOAD_BUCKETS_S: tuple[float, ...] = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
# First append of a batch's oldest event -> its object confirmed by S3, seconds (flush interval, retries, replays).
LATENCY_BUCKETS_S: tuple[float, ...] = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600, 86400)


def bucket_field(bound_s: float) -> str:
    """The histogram hash field counting observations <= ``bound_s`` seconds."""
    return f"le:{bound_s:g}"


def lua_buckets(bounds_s: Sequence[float]) -> list[object]:
    """A histogram's buckets as ARGV for _lib.lua ``observe``: n, then (field, bound in microseconds) per bucket."""
    out: list[object] = [len(bounds_s)]
    for bound in bounds_s:
        out += [bucket_field(bound), round(bound * 1_000_000)]
    return out


@dataclass(frozen=True)
class Histogram:
    """One histogram hash as read from Redis."""

    buckets: dict[str, int]  # field -> cumulative count
    count: int
    sum_us: int

    @classmethod
    def from_hash(cls, raw: dict[bytes | str, bytes | str]) -> Histogram:
        h = {text(k): int(v) for k, v in raw.items()}
        return cls({k: v for k, v in h.items() if k.startswith("le:")}, h.get("count", 0), h.get("sum_us", 0))

    def cumulative(self, bounds_s: Sequence[float]) -> list[tuple[float, int]]:
        """(bound, observations at or below it) per bucket, in the order of ``bounds_s``."""
        return [(b, self.buckets.get(bucket_field(b), 0)) for b in bounds_s]
