"""The per-process cache of S3 clients: one botocore client per (credentials, region, endpoint, retry settings).

Clients are thread-safe but never cross a fork: a child process builds its own. The cache holds credentials only as
a sha256 fingerprint in its keys, and is bounded. botocore's S3 region redirector is removed from every client: a
bucket in another region must surface as PermanentRedirect / AuthorizationHeaderMalformed (shown to the user with the
region hint) instead of being followed silently on every request.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from typing import Any, Final, Protocol

import botocore.utils
from botocore.config import Config

from workers import compat
from workers.settings import Settings, get_settings
from workers.sink import credentials
from workers.sink.credentials import CredentialsConfig

CLIENT_CACHE_SIZE: Final = 64
MAX_POOL_CONNECTIONS: Final = 10
# botocore registers its redirector's handlers on these events (S3RegionRedirectorv2, and the deprecated v1).
_REDIRECTOR_EVENTS: Final = (
    "needs-retry.s3",
    "before-parameter-build.s3",
    "before-endpoint-resolution.s3",
    "before-call.s3",
)


class S3Config(CredentialsConfig, Protocol):
    """The fields of an integration's configuration the sink reads."""

    bucket: str
    prefix: str
    storage_class: str
    server_side_encryption: str | None
    kms_key_id: str | None
    bucket_key_enabled: bool
    object_tags: dict[str, str]
    endpoint_url: str | None
    addressing_style: str

    @property
    def effective_checksums(self) -> str: ...


_ClientKey = tuple[int, str, str, str | None, str, str, int, float, float]

_lock = threading.Lock()
_clients: OrderedDict[_ClientKey, Any] = OrderedDict()


def _reset_after_fork() -> None:
    global _lock
    # Clients never cross a fork: the child builds its own.
    _lock = threading.Lock()
    _clients.clear()


os.register_at_fork(after_in_child=_reset_after_fork)


def _identity(cfg: S3Config) -> tuple[int, str, str, str | None]:
    """What a cached client belongs to: this process, where its credentials come from, its region and endpoint."""
    return (os.getpid(), credentials.fingerprint(cfg), cfg.region, cfg.endpoint_url or None)


def _cache_key(cfg: S3Config, settings: Settings) -> _ClientKey:
    return (
        *_identity(cfg),
        cfg.addressing_style,
        cfg.effective_checksums,
        settings.s3_max_attempts,
        settings.s3_connect_timeout_s,
        settings.s3_read_timeout_s,
    )


def client_config(cfg: S3Config, settings: Settings) -> Config:
    """botocore's settings of a client: bounded retries and timeouts, and the store's own needs (checksums, path-style
    buckets)."""
    # when_required: S3-compatible stores (MinIO, R2, Ceph, GCS interop) reject the CRC32 checksums botocore sends
    # on every upload by default since 1.36
    checksums = "when_required" if cfg.effective_checksums == "when_required" else "when_supported"
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
        "connect_timeout": settings.s3_connect_timeout_s,
        "read_timeout": settings.s3_read_timeout_s,
        "max_pool_connections": MAX_POOL_CONNECTIONS,
        "signature_version": "s3v4",
        "request_checksum_calculation": checksums,
        "response_checksum_validation": checksums,
    }
    if cfg.addressing_style != "auto":
        options["s3"] = {"addressing_style": cfg.addressing_style}
    return Config(**options)


def client_for(cfg: S3Config, *, settings: Settings | None = None) -> Any:
    """The S3 client of these credentials, region and endpoint in this process (created on first use).

    Credentials: the key pair, the role's refreshing credentials (the first AssumeRole happens here, and a refusal is
    raised here as a ``PermanentError``) or the fleet's own identity (``workers.sink.credentials``). Endpoint:
    ``cfg.endpoint_url`` when set, else botocore's own resolution (``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``,
    then the regional AWS endpoint).
    """
    settings = settings or get_settings()
    key = _cache_key(cfg, settings)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
    kwargs: dict[str, Any] = {"region_name": cfg.region, "config": client_config(cfg, settings)}
    if cfg.endpoint_url:
        kwargs["endpoint_url"] = cfg.endpoint_url
    if cfg.credentials == credentials.ASSUME_ROLE:
        session = credentials.role_session(cfg, settings)
    else:
        session = credentials.fleet_session()
        if cfg.credentials == credentials.ACCESS_KEY:
            kwargs.update(
                aws_access_key_id=cfg.access_key_id.get_secret_value() if cfg.access_key_id is not None else None,
                aws_secret_access_key=(
                    cfg.secret_access_key.get_secret_value() if cfg.secret_access_key is not None else None
                ),
                aws_session_token=cfg.session_token.get_secret_value() if cfg.session_token is not None else None,
            )
    client = session.create_client("s3", **kwargs)
    disable_region_redirector(client)
    with _lock:
        client = _clients.setdefault(key, client)
        while len(_clients) > CLIENT_CACHE_SIZE:
            _clients.popitem(last=False)
    return client


def evict(cfg: S3Config) -> None:
    """Forget every cached client of these credentials, region and endpoint, and a role's session (after an auth
    error, a check or a replay: the next attempt starts afresh, and asks STS again for a role it refused)."""
    identity = _identity(cfg)
    with _lock:
        for key in [key for key in _clients if key[:4] == identity]:
            del _clients[key]
    credentials.forget(cfg)


def disable_region_redirector(client: Any) -> int:
    """Remove botocore's S3 region redirector handlers from ``client``; returns how many were removed.

    botocore exposes no switch for the redirector, so its handlers are found in the client's own emitter by the class
    they are bound to (``compat.remove_handlers``).
    """
    names = ("S3RegionRedirectorv2", "S3RegionRedirector")
    redirector_classes = tuple(cls for name in names if (cls := getattr(botocore.utils, name, None)) is not None)
    removed = compat.remove_handlers(client, _REDIRECTOR_EVENTS, redirector_classes)
    if not removed:
        raise RuntimeError("botocore's S3 region redirector was not found; wrong regions would be followed silently")
    return removed
