"""The store as the fleet wrote it before buffers held chunks: one Redis element per event, no event count beside the
list. ``append`` and ``seal`` run that code's own Lua (copied here unchanged, ``legacy/*.lua``), so an upgrade test
starts from a store written by it, not from an imitation of one."""

from __future__ import annotations

import uuid
from importlib import resources
from typing import Any

from redis.commands.core import Script

from workers import clock
from workers.store import buffer, keys, overview

OLD_PREFIXES = 8  # _lib.lua's prefixes then: buffer, batch, meta, gen, sealed, delivered, trace_ttl_ms, last


def _script(name: str) -> Script:
    here = resources.files(__package__)
    shebang, _, body = (here / f"{name}.lua").read_text().partition("\n")
    return Script(None, f"{shebang}\n{(here / '_lib.lua').read_text()}\n{body}".encode())  # type: ignore[arg-type]


APPEND, SEAL = _script("append"), _script("seal")


def append(r: Any, iid: str, message_id: str, lines_by_hour: dict[str, list[bytes]], *, now_ms: int) -> int:
    """Today's append of prepared lines, one element per line; returns the events accepted."""
    hour_now = clock.hour_of_ms(now_ms)
    args: list[object] = [
        now_ms, 600_000, 10**12, 10**6, 10**9, now_ms + 60_000, buffer.LIST_MAX,
        overview.field_prefix(hour_now), overview.RETENTION_S, 0, buffer.PIN_TTL_MS,
        *buffer.prefixes(iid)[:OLD_PREFIXES], 0, 0, 0, 0, len(lines_by_hour),
    ]  # fmt: skip
    for hour, lines in lines_by_hour.items():
        args += [hour, 2, str(uuid.uuid4()), str(uuid.uuid4()), len(lines), *lines]
    script_keys = [
        keys.seen(iid, message_id), keys.open_index(iid), keys.open_bytes(iid), keys.stats(iid), keys.pending(iid),
        keys.rejections(iid), keys.live(iid), keys.overview(iid, overview.block_of(hour_now)), keys.pinned(iid),
    ]  # fmt: skip
    return int(APPEND(keys=script_keys, args=args, client=r)[1])


def seal(r: Any, iid: str, hour: str, *, now_ms: int) -> str:
    """Today's seal of an hour's buffer into a pending batch; returns its id."""
    batch_id = str(uuid.uuid4())
    n = SEAL(
        keys=[keys.open_index(iid), keys.open_bytes(iid), keys.pending(iid)],
        args=[hour, batch_id, now_ms, now_ms, *buffer.prefixes(iid)[:OLD_PREFIXES]],
        client=r,
    )
    assert int(n) > 0, "nothing to seal"
    return batch_id
