from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = [
    "tests.support.redis_fixtures",
    "tests.support.scaled_fixtures",
    "tests.support.postgres",
    "tests.support.s3_fixtures",
    "tests.support.aws_account",
    "tests.support.celery_fixtures",
    "tests.support.browser",
    "tests.support.api",
    "tests.support.website",
]

INTEGRATION_DIR = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test under tests/integration runs real processes: mark it ``integration``."""
    for item in items:
        if INTEGRATION_DIR in item.path.parents:
            item.add_marker(pytest.mark.integration)
