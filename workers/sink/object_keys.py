"""Object keys: ``<prefix>YYYY/MM/DD/HH/<batch-uuid><suffix>`` (Athena partition projection on date components).

The suffix names the object's format, one per variant: ``.json.gz`` (gzipped NDJSON, the default) or ``.parquet``.
A batch's key, suffix included, is fixed when it is first claimed; the uploader writes the format its key names.
"""

from __future__ import annotations

import re
from datetime import datetime

SUFFIXES: dict[str, str] = {"default": ".json.gz", "parquet": ".parquet"}
OBJECT_SUFFIX = SUFFIXES["default"]

_HOUR_RE = re.compile(r"[0-9]{10}")
_BATCH_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hour_path(hour: str) -> str:
    """``YYYYMMDDHH`` -> ``YYYY/MM/DD/HH``; ValueError unless ``hour`` is a real UTC hour."""
    _check_hour(hour)
    return f"{hour[0:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}"


def object_key(prefix: str, hour: str, batch_id: str, variant: str = "default") -> str:
    """The key of a batch: ``prefix`` is used as given (a folder prefix ends with ``/``)."""
    if not isinstance(prefix, str):
        raise ValueError("prefix must be a string")
    _check_batch_id(batch_id)
    return f"{prefix}{hour_path(hour)}/{batch_id}{suffix(variant)}"


def suffix(variant: str) -> str:
    try:
        return SUFFIXES[variant]
    except (KeyError, TypeError):
        raise ValueError(f"variant must be one of {', '.join(SUFFIXES)}, got {variant!r}") from None


def variant_of(key: str) -> str:
    """The variant (format) an object key names by its suffix; ValueError for any other key."""
    for variant, end in SUFFIXES.items():
        if isinstance(key, str) and key.endswith(end):
            return variant
    raise ValueError(f"object key {key!r} ends with none of {', '.join(SUFFIXES.values())}")


def _check_hour(hour: str) -> None:
    if not isinstance(hour, str) or _HOUR_RE.fullmatch(hour) is None:
        raise ValueError(f"hour must be 10 digits YYYYMMDDHH, got {hour!r}")
    try:
        datetime(int(hour[0:4]), int(hour[4:6]), int(hour[6:8]), int(hour[8:10]))
    except ValueError as error:
        raise ValueError(f"hour {hour!r} is not a valid UTC hour: {error}") from None


def _check_batch_id(batch_id: str) -> None:
    if not isinstance(batch_id, str) or _BATCH_ID_RE.fullmatch(batch_id) is None:
        raise ValueError(f"batch_id must be a canonical lowercase UUID string, got {batch_id!r}")
