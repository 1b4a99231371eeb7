"""Object keys: ``<prefix><date>/<batch-uuid><suffix>``, the date by the integration's ``date_layout``:
``path`` (the default) ``YYYY/MM/DD/HH``, or ``hive`` ``dt=YYYY-MM-DD/hr=HH`` (Hive-style ``name=value`` folders,
which Glue crawlers, ``MSCK REPAIR TABLE`` and Spark read as partition columns). Athena projects either
(``workers.sink.athena``).

The suffix names the object's format, one per variant: ``.json.gz`` (gzipped NDJSON, the default), ``.parquet``, or
``.iceberg.parquet`` (a data file of the integration's Iceberg table, ``<prefix>data/<folders>dt=.../hr=.../``).
A batch's key, suffix included, is fixed when it is first claimed; the uploader writes the format its key names.
"""

from __future__ import annotations

import re
from datetime import datetime

# iceberg: the data files of an Iceberg table (under <prefix>data/), committed to it by the uploader
SUFFIXES: dict[str, str] = {"default": ".json.gz", "parquet": ".parquet", "iceberg": ".iceberg.parquet"}
DATE_LAYOUTS: tuple[str, ...] = ("path", "hive")
OBJECT_SUFFIX = SUFFIXES["default"]

_HOUR_RE = re.compile(r"[0-9]{10}")
_BATCH_ID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def hour_path(hour: str, date_layout: str = "path") -> str:
    """``YYYYMMDDHH`` -> ``YYYY/MM/DD/HH`` (``path``) or ``dt=YYYY-MM-DD/hr=HH`` (``hive``); ValueError unless
    ``hour`` is a real UTC hour and the layout one of ``DATE_LAYOUTS``."""
    _check_hour(hour)
    if date_layout == "path":
        return f"{hour[0:4]}/{hour[4:6]}/{hour[6:8]}/{hour[8:10]}"
    if date_layout == "hive":
        return f"dt={hour[0:4]}-{hour[4:6]}-{hour[6:8]}/hr={hour[8:10]}"
    raise ValueError(f"date_layout must be one of {', '.join(DATE_LAYOUTS)}, got {date_layout!r}")


def object_key(prefix: str, hour: str, batch_id: str, variant: str = "default", date_layout: str = "path") -> str:
    """The key of a batch: ``prefix`` is used as given (a folder prefix ends with ``/``)."""
    if not isinstance(prefix, str):
        raise ValueError("prefix must be a string")
    _check_batch_id(batch_id)
    return f"{prefix}{hour_path(hour, date_layout)}/{batch_id}{suffix(variant)}"


def batch_key(
    prefix: str, folders: str, hour: str, batch_id: str, variant: str = "default", date_layout: str = "path"
) -> str:
    """The key of a batch with its partition ``folders`` (``name=value/...``): ``<prefix><folders><date>/<uuid>``;
    an Iceberg data file's under the table's ``data/`` folder, its date always Hive-style."""
    if variant == "iceberg":
        return object_key(f"{prefix}data/{folders}", hour, batch_id, variant, "hive")
    return object_key(prefix + folders, hour, batch_id, variant, date_layout)


def suffix(variant: str) -> str:
    try:
        return SUFFIXES[variant]
    except (KeyError, TypeError):
        raise ValueError(f"variant must be one of {', '.join(SUFFIXES)}, got {variant!r}") from None


def variant_of(key: str) -> str:
    """The variant (format) an object key names by its suffix; ValueError for any other key."""
    for variant, end in sorted(SUFFIXES.items(), key=lambda item: -len(item[1])):
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
