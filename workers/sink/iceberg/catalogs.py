"""The catalog of an ``iceberg`` integration, opened with the integration's own credentials.

``iceberg_catalog``:
- ``sql``: pyiceberg's ``SqlCatalog`` on ``iceberg_catalog_uri``, a SQLAlchemy URL: ``sqlite:///<path>`` (one machine;
  blank means the fleet's own file, ``SIGNAL_ICEBERG_SQLITE_PATH``) or ``postgresql://...`` (a fleet on several
  machines). A SQLite file must lie in the directory of the fleet's own file: an integration cannot make workers
  write elsewhere on their disks.
- ``glue``: ``GlueCatalog`` in the bucket's region and account; ``iceberg_catalog_uri``, when given, is the Glue
  endpoint (a VPC endpoint, or a test server).

Data and metadata files go through pyiceberg's PyArrow FileIO with the same credentials, region and endpoint the
integration's S3 client resolves (``workers.sink.clients``). A role's credentials are read afresh at every open (the
session refreshes them) and a catalog is cached per process only for as long as they stay the same.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from workers.classify import hint_for
from workers.errors import Failure, PermanentError, SignalError
from workers.settings import Settings
from workers.sink import clients, credentials
from workers.sink.iceberg import table

if TYPE_CHECKING:
    from pyiceberg.catalog import Catalog
    from pyiceberg.table import Table

SQL: Final = "sql"
GLUE: Final = "glue"
KINDS: Final = (SQL, GLUE)
CATALOG_NAME: Final = "signal"
_CACHE_SIZE: Final = 32

_lock = threading.Lock()
_catalogs: OrderedDict[str, Catalog] = OrderedDict()


def _reset_after_fork() -> None:
    global _lock
    _lock = threading.Lock()
    _catalogs.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


class CatalogRefused(SignalError, ValueError):
    """The integration names a catalog this fleet does not open (the message says why)."""


def sql_uri(cfg: Any, settings: Settings) -> str:
    """The SQLAlchemy URL of a ``sql`` catalog: the integration's, else the fleet's SQLite file."""
    uri = cfg.iceberg_catalog_uri.get_secret_value() if cfg.iceberg_catalog_uri is not None else ""
    if not uri:
        return f"sqlite:///{Path(settings.iceberg_sqlite_path).resolve()}"
    if uri.startswith("sqlite:"):
        from sqlalchemy.engine import make_url

        path = Path(make_url(uri).database or "").resolve()
        allowed = Path(settings.iceberg_sqlite_path).resolve().parent
        if allowed not in path.parents:
            raise CatalogRefused(
                f"a SQLite catalog must be a file in {allowed} on this fleet; use PostgreSQL for a catalog elsewhere"
            )
    if uri.startswith("postgresql://"):
        return "postgresql+psycopg2://" + uri.removeprefix("postgresql://")  # the driver this fleet installs
    return uri


def _aws(cfg: Any, settings: Settings) -> tuple[dict[str, str], str]:
    """The credentials (as pyiceberg properties, prefix left to the caller) and the S3 endpoint of ``cfg``."""
    client = clients.client_for(cfg, settings=settings)
    endpoint = str(client.meta.endpoint_url)
    if cfg.credentials == credentials.ACCESS_KEY:
        found = (
            cfg.access_key_id.get_secret_value() if cfg.access_key_id else None,
            cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None,
            cfg.session_token.get_secret_value() if cfg.session_token else None,
        )
    else:
        session = (
            credentials.role_session(cfg, settings)
            if cfg.credentials == credentials.ASSUME_ROLE
            else credentials.fleet_session()
        )
        frozen = session.get_credentials()
        frozen = frozen.get_frozen_credentials() if frozen is not None else None
        found = (frozen.access_key, frozen.secret_key, frozen.token) if frozen is not None else (None, None, None)
    names = ("access-key-id", "secret-access-key", "session-token")
    return {name: value for name, value in zip(names, found, strict=True) if value}, endpoint


def properties(cfg: Any, settings: Settings) -> dict[str, Any]:
    """Every property the catalog of ``cfg`` is opened with (secrets included: never log them)."""
    secrets, endpoint = _aws(cfg, settings)
    props = {"s3.region": cfg.region, "s3.endpoint": endpoint, **{f"s3.{k}": v for k, v in secrets.items()}}
    props["s3.force-virtual-addressing"] = str(cfg.addressing_style == "virtual").lower()
    props["s3.connect-timeout"] = str(settings.s3_connect_timeout_s)
    props["s3.request-timeout"] = str(settings.s3_read_timeout_s)
    if cfg.iceberg_catalog == GLUE:
        props["type"] = "glue"
        props["glue.region"] = cfg.region
        props.update({f"glue.{k}": v for k, v in secrets.items()})
        if cfg.iceberg_catalog_uri is not None and cfg.iceberg_catalog_uri.get_secret_value():
            props["glue.endpoint"] = cfg.iceberg_catalog_uri.get_secret_value()
        props["glue.max-retries"] = settings.s3_max_attempts  # pyiceberg hands it to botocore as it is: a number
    else:
        props["type"] = "sql"
        props["uri"] = sql_uri(cfg, settings)
        if props["uri"].startswith("sqlite:"):
            Path(settings.iceberg_sqlite_path).resolve().parent.mkdir(parents=True, exist_ok=True)
    return props


def open_catalog(cfg: Any, settings: Settings) -> Catalog:
    """The catalog of ``cfg`` (cached per process while its properties, credentials included, stay the same)."""
    if cfg.iceberg_catalog not in KINDS:
        raise CatalogRefused(f"iceberg_catalog must be one of {', '.join(KINDS)}")
    props = properties(cfg, settings)
    key = hashlib.sha256(repr(sorted(props.items())).encode()).hexdigest()
    with _lock:
        catalog = _catalogs.get(key)
        if catalog is not None:
            _catalogs.move_to_end(key)
            return catalog
    if props["type"] == GLUE:
        from pyiceberg.catalog.glue import GlueCatalog

        catalog = GlueCatalog(CATALOG_NAME, **{k: v for k, v in props.items() if k != "type"})
    else:
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog(CATALOG_NAME, **{k: v for k, v in props.items() if k != "type"})
    with _lock:
        catalog = _catalogs.setdefault(key, catalog)
        while len(_catalogs) > _CACHE_SIZE:
            _catalogs.popitem(last=False)
    return catalog


def open_table(cfg: Any, settings: Settings) -> tuple[Catalog, Table]:
    """The integration's catalog and table (created when missing). A catalog this fleet does not open, or a table
    that cannot take the integration's events, is a ``PermanentError`` (``IcebergCatalogRefused``,
    ``IcebergTableMismatch``) naming what to change; the catalog's own failures propagate (``classify``)."""
    try:
        catalog = open_catalog(cfg, settings)
    except CatalogRefused as exc:
        failure = Failure("IcebergCatalogRefused", str(exc), True, hint_for("IcebergCatalogRefused"), None)
        raise PermanentError(failure) from None
    try:
        return catalog, table.ensure(catalog, cfg)
    except table.TableMismatch as exc:
        raise PermanentError(
            Failure("IcebergTableMismatch", str(exc), True, hint_for("IcebergTableMismatch"), None)
        ) from None


def describe(cfg: Any, settings: Settings) -> dict[str, str]:
    """What the console and CLI show of the catalog: its kind and where it is, a password never included."""
    if cfg.iceberg_catalog == GLUE:
        return {"catalog": GLUE, "where": f"AWS Glue Data Catalog, {cfg.region}"}
    try:
        uri = sql_uri(cfg, settings)
    except CatalogRefused as exc:
        return {"catalog": SQL, "where": str(exc)}
    return {"catalog": SQL, "where": redact_url(uri)}


def redact_url(uri: str) -> str:
    """A SQLAlchemy URL without its password."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
