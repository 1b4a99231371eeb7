"""How a worker takes a message off the Redis broker: off its list and into kombu's unacknowledged records in one
step (``lua/take.lua``, installed into kombu's Redis transport by ``workers.compat.take_and_record_in_one_step``), so
that no death of a worker, at any instant, leaves a taken message unrecorded."""

from __future__ import annotations

from pathlib import Path

from workers import compat
from workers.store import keys

SCRIPT = (Path(__file__).resolve().parent / "lua" / "take.lua").read_text()


def install() -> None:
    """Patch kombu's Redis transport in this process (idempotent)."""
    compat.take_and_record_in_one_step(SCRIPT, keys.BROKER_PAUSE)
