"""Every Redis key of an integration shares one Redis Cluster hash slot; nothing scans the keyspace."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from workers.store import keys

ROOT = Path(__file__).resolve().parents[2]


def integration_keys(iid: str) -> list[str]:
    out = []
    for name, fn in inspect.getmembers(keys, inspect.isfunction):
        params = list(inspect.signature(fn).parameters)
        if params and params[0] == "integration_id" and name != "tag":
            args = [iid] + ["x"] * (len(params) - 1)
            out.append(fn(*args))
    return out


def test_every_key_of_an_integration_carries_its_hash_tag():
    found = integration_keys("abc-123")
    assert len(found) >= 12
    for key in found:
        assert re.fullmatch(r"sig:\{abc-123\}:.+", key), key


# The one exception: ``signal-s3 copy-store`` copies the whole store of a stopped fleet, once, and only the CLI
# calls it.
ONE_OFF = {"workers/store/migrate.py"}


def test_no_code_scans_the_keyspace():
    sources = [*ROOT.glob("workers/**/*.py"), *ROOT.glob("workers/store/lua/*.lua"), *ROOT.glob("tasks/*.py")]
    # (``tbl.scan(``: an Iceberg table's scan of its own files, not Redis)
    pattern = re.compile(r"""(?<!tbl)\.(keys|scan|scan_iter)\(|['"](KEYS|SCAN)['"]""")
    offenders = [str(p.relative_to(ROOT)) for p in sources if pattern.search(p.read_text())]
    assert set(offenders) <= ONE_OFF, offenders
    uses = re.compile(r"\bmigrate\b")
    callers = {str(p.relative_to(ROOT)) for p in sources if uses.search(p.read_text())} - ONE_OFF
    assert callers == {"workers/cli/fleet.py"}, callers
