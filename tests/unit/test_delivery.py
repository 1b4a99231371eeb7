"""Pure parts of delivery: the retry backoff."""

from __future__ import annotations

from workers.delivery import compute_backoff_s


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    lo = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 0.0) for a in range(1, 10)]
    hi = [compute_backoff_s(a, base_s=2, max_s=120, rand=lambda: 1.0) for a in range(1, 10)]
    assert lo[:4] == [1, 2, 4, 8]
    assert hi[:4] == [2, 4, 8, 16]
    assert max(hi) == 120 and max(lo) == 60
    assert all(a <= b for a, b in zip(hi, hi[1:]))
