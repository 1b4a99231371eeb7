from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fakeredis.commands_mixins.scripting_mixin import ScriptingCommandsMixin

from workers import crypto
from workers.integrations import registry
from workers.settings import get_settings


@pytest.fixture(autouse=True)
def secret_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh SIGNAL_SECRET_KEY per test, with the settings and registry caches cleared around it."""
    key = crypto.generate_key()
    monkeypatch.setenv("SIGNAL_SECRET_KEY", key)
    get_settings.cache_clear()
    registry.clear_cache()
    yield key
    registry.clear_cache()
    get_settings.cache_clear()


@pytest.fixture(autouse=True)
def fakeredis_reads_script_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    """fakeredis compiles a script's ``#!lua`` first line (where Redis 7 reads the script's flags) as Lua and fails:
    hand it the script with that line commented out, as Redis itself strips it before compiling."""
    original = ScriptingCommandsMixin.eval

    def eval_with_flags_line(self: Any, script: bytes, numkeys: int, *keys_and_args: bytes) -> Any:
        if script.startswith(b"#!"):
            script = b"--" + script
        return original(self, script, numkeys, *keys_and_args)

    monkeypatch.setattr(ScriptingCommandsMixin, "eval", eval_with_flags_line)
