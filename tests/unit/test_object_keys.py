"""Object keys: ``<prefix>YYYY/MM/DD/HH/<batch-uuid>.json.gz``."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from workers.clock import hour_of
from workers.sink.object_keys import SUFFIXES, _check_hour, hour_path, object_key, variant_of

# Reading a key back, the layout written plainly: what a reader of the bucket (Athena, a script) relies on.
_KEY_TAIL_RE = re.compile(
    r"([0-9]{4})/([0-9]{2})/([0-9]{2})/([0-9]{2})/"
    r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"(" + "|".join(re.escape(suffix) for suffix in SUFFIXES.values()) + ")"
)


def parse_object_key(prefix: str, key: str) -> tuple[str, str]:
    """``(hour, batch_id)`` of a key made by ``object_key(prefix, ...)`` (any variant); ValueError otherwise."""
    if not isinstance(prefix, str) or not isinstance(key, str):
        raise ValueError("prefix and key must be strings")
    if not key.startswith(prefix):
        raise ValueError(f"object key {key!r} does not start with the prefix {prefix!r}")
    match = _KEY_TAIL_RE.fullmatch(key, len(prefix))
    if match is None:
        raise ValueError(
            f"object key {key!r} is not <prefix>YYYY/MM/DD/HH/<batch-uuid> followed by {' or '.join(SUFFIXES.values())}"
        )
    year, month, day, hh, batch_id, _ = match.groups()
    hour = f"{year}{month}{day}{hh}"
    _check_hour(hour)
    return hour, batch_id


BATCH_ID = "0b6f5a4e-2d1c-4f3e-9a8b-7c6d5e4f3a2b"


def test_hour_path() -> None:
    assert hour_path("2026051210") == "2026/05/12/10"


@pytest.mark.parametrize(
    ("hour", "path"),
    [
        ("2026010100", "2026/01/01/00"),
        ("2025123123", "2025/12/31/23"),
        ("2024022923", "2024/02/29/23"),
        ("1000010100", "1000/01/01/00"),
        ("9999123123", "9999/12/31/23"),
    ],
)
def test_hour_path_boundaries(hour: str, path: str) -> None:
    assert hour_path(hour) == path


def test_hour_path_agrees_with_the_clock_across_a_day() -> None:
    start = datetime(2025, 12, 31, 22, 59, 59, 999_000, tzinfo=UTC)
    for step in range(4):
        instant = start + timedelta(hours=step)
        expected = instant.strftime("%Y/%m/%d/%H")
        assert hour_path(hour_of(instant)) == expected


@pytest.mark.parametrize(
    "hour",
    [
        "",
        "202605121",
        "20260512100",
        "2026-05-12",
        "2026051224",
        "2026130110",
        "2026000110",
        "2026050010",
        "2025022910",
        "0000010100",
        "２０２６051210",
        "2026051210\n",
        " 2026051210",
        None,
        2026051210,
    ],
)
def test_invalid_hours_are_refused(hour: Any) -> None:
    with pytest.raises(ValueError):
        hour_path(hour)
    with pytest.raises(ValueError):
        object_key("events/", hour, BATCH_ID)


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ("", f"2026/05/12/10/{BATCH_ID}.json.gz"),
        ("events/", f"events/2026/05/12/10/{BATCH_ID}.json.gz"),
        ("team/prod/events/", f"team/prod/events/2026/05/12/10/{BATCH_ID}.json.gz"),
        ("raw-", f"raw-2026/05/12/10/{BATCH_ID}.json.gz"),
    ],
)
def test_object_key_with_and_without_prefix(prefix: str, key: str) -> None:
    assert object_key(prefix, "2026051210", BATCH_ID) == key
    assert parse_object_key(prefix, key) == ("2026051210", BATCH_ID)


def test_the_suffix_names_the_variant() -> None:
    assert object_key("events/", "2026051210", BATCH_ID, "parquet") == f"events/2026/05/12/10/{BATCH_ID}.parquet"
    assert object_key("events/", "2026051210", BATCH_ID, "default") == object_key("events/", "2026051210", BATCH_ID)
    for variant in SUFFIXES:
        key = object_key("p/", "2026051210", BATCH_ID, variant)
        assert variant_of(key) == variant
        assert parse_object_key("p/", key) == ("2026051210", BATCH_ID)
    for bad in ("orc", None, ""):
        with pytest.raises(ValueError, match="variant"):
            object_key("events/", "2026051210", BATCH_ID, bad)  # type: ignore[arg-type]
    for key in (f"{BATCH_ID}.json", f"{BATCH_ID}.parquet.tmp", "", None):
        with pytest.raises(ValueError):
            variant_of(key)  # type: ignore[arg-type]


def test_round_trip_with_random_batch_ids() -> None:
    for hour in ("2025123123", "2026010100", "2026051210"):
        batch_id = str(uuid.uuid4())
        assert parse_object_key("events/", object_key("events/", hour, batch_id)) == (hour, batch_id)


@pytest.mark.parametrize(
    "batch_id",
    [
        BATCH_ID.upper(),
        BATCH_ID.replace("-", ""),
        "{" + BATCH_ID + "}",
        "urn:uuid:" + BATCH_ID,
        BATCH_ID[:-1],
        BATCH_ID + "0",
        BATCH_ID[:-1] + "g",
        "../../etc/passwd",
        "",
        None,
        uuid.UUID(BATCH_ID),
    ],
)
def test_non_canonical_batch_ids_are_refused(batch_id: Any) -> None:
    with pytest.raises(ValueError, match="batch_id"):
        object_key("events/", "2026051210", batch_id)


@pytest.mark.parametrize(
    ("prefix", "key"),
    [
        ("events/", f"other/2026/05/12/10/{BATCH_ID}.json.gz"),  # wrong prefix
        ("events/", f"2026/05/12/10/{BATCH_ID}.json.gz"),  # missing prefix
        ("", f"events/2026/05/12/10/{BATCH_ID}.json.gz"),  # unexpected prefix
        ("events/", f"events/2026/05/12/10/{BATCH_ID}.json"),  # wrong suffix
        ("events/", f"events/2026/05/12/10/{BATCH_ID}.json.gz.tmp"),
        ("events/", f"events/2026/05/12/10/{BATCH_ID}.parquet.gz"),
        ("events/", f"events/2026/05/12/10/{BATCH_ID}.json.parquet"),
        ("events/", f"events/2026/05/12/{BATCH_ID}.json.gz"),  # missing hour
        ("events/", f"events/2026/05/12/24/{BATCH_ID}.json.gz"),  # impossible hour
        ("events/", f"events/2026/02/30/10/{BATCH_ID}.json.gz"),  # impossible date
        ("events/", f"events/2026/5/12/10/{BATCH_ID}.json.gz"),
        ("events/", f"events/2026/05/12/10/{BATCH_ID.upper()}.json.gz"),
        ("events/", "events/2026/05/12/10/not-a-uuid.json.gz"),
        ("events/", f"events/2026/05/12/10/x/{BATCH_ID}.json.gz"),
    ],
)
def test_parse_refuses_foreign_keys(prefix: str, key: str) -> None:
    with pytest.raises(ValueError):
        parse_object_key(prefix, key)


def test_the_hive_date_layout_writes_name_value_folders() -> None:
    assert hour_path("2026120705", "hive") == "dt=2026-12-07/hr=05"
    key = object_key("events/", "2026120705", BATCH_ID, "parquet", "hive")
    assert key == f"events/dt=2026-12-07/hr=05/{BATCH_ID}.parquet"
    assert variant_of(key) == "parquet"
    assert object_key("events/", "2026120705", BATCH_ID, "default", "path") == object_key(
        "events/", "2026120705", BATCH_ID
    )
    for bad in ("flat", "", None, "HIVE"):
        with pytest.raises(ValueError, match="date_layout"):
            object_key("events/", "2026120705", BATCH_ID, "default", bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="hour"):
        hour_path("2026023005", "hive")  # February 30th
