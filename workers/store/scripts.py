"""The store's Lua scripts (``lua/``), loaded once per process; each call names the client it runs on.

Each script starts with its own ``#!lua`` line, where Redis reads its flags (with it, Redis Cluster refuses every
access to a key outside the slot of the declared KEYS), followed by ``lua/_lib.lua``, the helpers the buffer scripts
share. Every script documents its KEYS and ARGV in its header. redis-py retries EVALSHA with EVAL after a server
restart, so a registered script survives one.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from redis.commands.core import Script

NAMES = (
    "append",
    "seal",
    "claim",
    "ack",
    "fail",
    "hold",
    "release",
    "lower",
    "reschedule",
    "rate_take",
    "partition_values",
    "table_lock",
)


@cache
def source(name: str) -> str:
    """A script as Redis runs it: its ``#!lua`` line, then _lib.lua, then its body."""
    lua = resources.files(__package__) / "lua"
    lib = (lua / "_lib.lua").read_text()
    shebang, _, body = (lua / f"{name}.lua").read_text().partition("\n")
    if not shebang.startswith("#!lua"):
        raise ValueError(f"workers/store/lua/{name}.lua must start with a #!lua line")
    return f"{shebang}\n{lib}\n{body}"


class Scripts:
    """Every script of the store, one attribute per name. A script holds no client: each call names the client
    (``client=``) it runs on, and the server it reaches loads the script on first use (EVALSHA, then SCRIPT LOAD when
    that server does not know it yet, as after a restart). So nothing here grows with the clients a process makes."""

    append: Script
    seal: Script
    claim: Script
    ack: Script
    fail: Script
    hold: Script
    release: Script
    lower: Script
    reschedule: Script
    rate_take: Script
    partition_values: Script
    table_lock: Script

    def __init__(self) -> None:
        for name in NAMES:
            # bytes: the digest needs no client's encoder, and the script keeps no reference to a client
            setattr(self, name, Script(None, source(name).encode()))  # type: ignore[arg-type]


SCRIPTS = Scripts()
