from __future__ import annotations

from collections.abc import Iterator

import pytest

from workers import crypto, registry
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
