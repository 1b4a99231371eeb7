"""The per-process cache of S3 clients: one botocore client per (credentials, region, endpoint, retry settings).

Clients are thread-safe but never cross a fork: a child process builds its own. The cache holds credentials only as
a sha256 fingerprint in its keys, and is bounded. botocore's S3 region redirector is removed from every client: a
bucket in another region must surface as PermanentRedirect / AuthorizationHeaderMalformed (shown to the user with the
region hint) instead of being followed silently on every request.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Final, Protocol

import botocore.session
import botocore.utils
from botocore.config import Config

from workers import compat
from workers.settings import Settings, get_settings

if TYPE_CHECKING:
    from pydantic import SecretStr

CLIENT_CACHE_SIZE: Final = 64
MAX_POOL_CONNECTIONS: Final = 10
# botocore registers its redirector's handlers on these events (S3RegionRedirectorv2, and the deprecated v1).
_REDIRECTOR_EVENTS: Final = (
    "needs-retry.s3",
    "before-parameter-build.s3",
    "before-endpoint-resolution.s3",
    "before-call.s3",
)


class S3Config(Protocol):
    """The fields of an integration's configuration this module reads."""

    bucket: str
    region: str
    access_key_id: SecretStr
    secret_access_key: SecretStr
    session_token: SecretStr | None
    prefix: str
    storage_class: str
    server_side_encryption: str | None
    kms_key_id: str | None
    endpoint_url: str | None


_ClientKey = tuple[int, str, str, str | None, int, float, float]

_lock = threading.Lock()
_clients: OrderedDict[_ClientKey, Any] = OrderedDict()
_session: botocore.session.Session | None = None


def _reset_after_fork() -> None:
    global _lock, _session
    # Clients and sessions never cross a fork: the child builds its own.
    _lock = threading.Lock()
    _clients.clear()
    _session = None


os.register_at_fork(after_in_child=_reset_after_fork)


def credentials_fingerprint(cfg: S3Config) -> str:
    """sha256 of the credentials: identifies them in the cache without holding them in a printable key."""
    token = cfg.session_token.get_secret_value() if cfg.session_token is not None else ""
    material = "\0".join((cfg.access_key_id.get_secret_value(), cfg.secret_access_key.get_secret_value(), token))
    return hashlib.sha256(material.encode()).hexdigest()


def _cache_key(cfg: S3Config, settings: Settings) -> _ClientKey:
    return (
        os.getpid(),
        credentials_fingerprint(cfg),
        cfg.region,
        cfg.endpoint_url or None,
        settings.s3_max_attempts,
        settings.s3_connect_timeout_s,
        settings.s3_read_timeout_s,
    )


def client_config(cfg: S3Config, settings: Settings) -> Config:
    options: dict[str, Any] = {
        "retries": {"mode": "standard", "total_max_attempts": settings.s3_max_attempts},
        "connect_timeout": settings.s3_connect_timeout_s,
        "read_timeout": settings.s3_read_timeout_s,
        "max_pool_connections": MAX_POOL_CONNECTIONS,
        "signature_version": "s3v4",
    }
    if cfg.endpoint_url:
        # S3-compatible stores (MinIO, R2, ...) reject the CRC32 checksums botocore sends by default since 1.36.
        options["request_checksum_calculation"] = "when_required"
        options["response_checksum_validation"] = "when_required"
    return Config(**options)


def client_for(cfg: S3Config, *, settings: Settings | None = None) -> Any:
    """The S3 client for these credentials, region and endpoint in this process (created on first use).

    Endpoint: ``cfg.endpoint_url`` when set, else botocore's own resolution (``AWS_ENDPOINT_URL_S3`` /
    ``AWS_ENDPOINT_URL``, then the regional AWS endpoint).
    """
    global _session
    settings = settings or get_settings()
    key = _cache_key(cfg, settings)
    with _lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        if _session is None:
            _session = botocore.session.get_session()
        kwargs: dict[str, Any] = {
            "region_name": cfg.region,
            "aws_access_key_id": cfg.access_key_id.get_secret_value(),
            "aws_secret_access_key": cfg.secret_access_key.get_secret_value(),
            "aws_session_token": cfg.session_token.get_secret_value() if cfg.session_token is not None else None,
            "config": client_config(cfg, settings),
        }
        if cfg.endpoint_url:
            kwargs["endpoint_url"] = cfg.endpoint_url
        client = _session.create_client("s3", **kwargs)
        disable_region_redirector(client)
        _clients[key] = client
        while len(_clients) > CLIENT_CACHE_SIZE:
            _clients.popitem(last=False)
        return client


def evict(cfg: S3Config) -> None:
    """Forget every cached client for these credentials, region and endpoint (after an auth error, so the next
    attempt starts from a fresh client)."""
    identity = (os.getpid(), credentials_fingerprint(cfg), cfg.region, cfg.endpoint_url or None)
    with _lock:
        for key in [key for key in _clients if key[:4] == identity]:
            del _clients[key]


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
