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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from workers.errors import SignalError
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

_SECRET_PROPERTIES: Final = ("access-key-id", "secret-access-key", "session-token")

_lock = threading.Lock()
# catalog identity (no secrets) -> (digest of every property, the catalog)
_catalogs: OrderedDict[str, tuple[str, Catalog]] = OrderedDict()


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
        # one attempt per call (pyiceberg hands it to botocore as max_attempts): a retried UpdateTable whose first
        # attempt landed fails as a conflict, and pyiceberg then deletes the manifests of the snapshot that is now
        # current. The fleet retries instead, after looking for its batch in the table.
        props["glue.max-retries"] = 1
    else:
        props["type"] = "sql"
        props["uri"] = sql_uri(cfg, settings)
        if props["uri"].startswith("sqlite:"):
            Path(settings.iceberg_sqlite_path).resolve().parent.mkdir(parents=True, exist_ok=True)
    return props


def _digest(props: dict[str, Any], *, secrets: bool) -> str:
    items = sorted((k, v) for k, v in props.items() if secrets or not k.endswith(_SECRET_PROPERTIES))
    return hashlib.sha256(repr(items).encode()).hexdigest()


def _close(catalog: Any) -> None:
    """Give back a SQL catalog's pooled connections (a catalog replaced when credentials rotate, or evicted)."""
    engine = getattr(catalog, "engine", None)
    if engine is not None:
        engine.dispose()


def open_catalog(cfg: Any, settings: Settings) -> Catalog:
    """The catalog of ``cfg``: one per process and catalog, replaced (its connections closed) when the credentials
    its file IO signs with change (a role's, refreshed)."""
    if cfg.iceberg_catalog not in KINDS:
        raise CatalogRefused(f"iceberg_catalog must be one of {', '.join(KINDS)}")
    props = properties(cfg, settings)
    key, version = _digest(props, secrets=False), _digest(props, secrets=True)
    with _lock:
        found = _catalogs.get(key)
        if found is not None and found[0] == version:
            _catalogs.move_to_end(key)
            return found[1]
    if props["type"] == GLUE:
        from pyiceberg.catalog.glue import GlueCatalog

        catalog: Any = GlueCatalog(CATALOG_NAME, **{k: v for k, v in props.items() if k != "type"})
    else:
        from pyiceberg.catalog.sql import SqlCatalog

        catalog = SqlCatalog(CATALOG_NAME, **{k: v for k, v in props.items() if k != "type"})
    closed = []
    with _lock:
        previous = _catalogs.get(key)
        if previous is not None and previous[0] == version:
            closed.append(catalog)  # another thread made it meanwhile
            catalog = previous[1]
        else:
            if previous is not None:
                closed.append(previous[1])
            _catalogs[key] = (version, catalog)
        while len(_catalogs) > _CACHE_SIZE:
            closed.append(_catalogs.popitem(last=False)[1][1])
    for old in closed:
        _close(old)
    return catalog


def _location_holds_metadata(cfg: Any, settings: Settings) -> bool:
    """Whether the table's location already has Iceberg metadata (a table the catalog does not know)."""
    s3 = clients.client_for(cfg, settings=settings)
    found = s3.list_objects_v2(Bucket=cfg.bucket, Prefix=f"{cfg.prefix}metadata/", MaxKeys=20)
    return any(o["Key"].endswith(".metadata.json") for o in found.get("Contents", []))


def open_table(
    cfg: Any,
    settings: Settings,
    *,
    create: bool = True,
    creating: Callable[[], AbstractContextManager[Any]] = nullcontext,
) -> tuple[Catalog, Table]:
    """The integration's catalog and table, created when missing if ``create`` (an upload, an install; a page or a
    maintenance run only reads), inside ``creating()`` (the fleet's lock on creating a table at its location). A
    catalog this fleet does not open raises ``CatalogRefused``, a table that cannot take the integration's events
    ``TableMismatch``: ``classify`` holds them (``IcebergCatalogRefused``, ``IcebergTableMismatch``) with a hint
    naming what to change. The catalog's own failures propagate as they are."""
    catalog = open_catalog(cfg, settings)
    return catalog, table.ensure(
        catalog,
        cfg,
        create=create,
        location_taken=lambda: _location_holds_metadata(cfg, settings),
        creating=creating,
    )


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
    """A SQLAlchemy URL without its password (nor its query, which may carry one)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        return "(a URL that could not be read)"
    return url.set(query={}).render_as_string(hide_password=True)
