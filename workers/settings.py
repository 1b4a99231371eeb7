"""The one settings object of the fleet, read from ``SIGNAL_*`` environment variables."""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")


def check_api_url(url: str) -> str:
    """The collection API's public base URL, normalised (no trailing slash); ValueError when it is not one."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(
            f"{url!r} is not a URL; give the API's public address, e.g. https://collect.example.com"
        ) from None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError(
            f"{url!r} is not an http(s) base URL; give the API's public address, e.g. https://collect.example.com"
        )
    return text.rstrip("/")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SIGNAL_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # The Celery broker: any Celery broker URL (amqp://... for RabbitMQ quorum queues); None means SIGNAL_REDIS_URL,
    # one Redis for the queues and the buffers.
    broker_url: str | None = None
    # SIGNAL_REDIS_URL is a startup node of a Redis Cluster that holds buffers, batches, registry, sources, counters.
    redis_cluster: bool = False
    # Replicas that must hold an append before its ingest message is acknowledged (Redis WAIT); 0 does not wait.
    redis_min_replicas: int = Field(0, ge=0)
    # How long an append waits for them; on a shortfall the ingest task is retried (the append is not repeated).
    redis_min_replicas_timeout_ms: int = Field(1000, ge=1, le=60_000)
    # RabbitMQ: deliveries of one message (each ending with its worker lost) before it goes to signal.dead-letter.
    broker_delivery_limit: int = Field(20, ge=1, le=1000)
    # Fernet key(s) for secrets at rest; comma-separated, newest first, for rotation.
    secret_key: SecretStr | None = None

    flush_interval_s: float = Field(60.0, gt=0)
    visibility_timeout_s: int = Field(300, ge=10, le=3600)
    max_retry_age_s: int = Field(24 * 3600, gt=0)
    retry_backoff_base_s: float = Field(2.0, gt=0)
    retry_backoff_max_s: float = Field(120.0, gt=0)
    # A batch claimed this many times without any recorded outcome (its worker died each time) is held.
    max_worker_losses: int = Field(5, ge=1)

    buffer_max_bytes: int = Field(512 * 1024 * 1024, gt=0)
    event_max_bytes: int = Field(32 * 1024, gt=0)
    ingest_dedup_ttl_s: int = Field(24 * 3600, gt=0)
    # How long a process uses an integration it read before reading it again (its config, blueprint, enabled): a
    # change reaches every worker and API process within this long. 0 reads it for every message.
    integration_cache_ttl_s: float = Field(1.0, ge=0, le=60)
    # How long the object ledger keeps the record of each object written (workers/store/ledger.py).
    ledger_retention_s: int = Field(7 * 24 * 3600, ge=3600, le=90 * 24 * 3600)

    # Credentials: whether an integration may write with the fleet's own AWS identity (credentials "fleet"); in a fleet
    # shared by several teams it would let any integration write with the fleet's rights.
    allow_fleet_credentials: bool = False
    # The fleet's principal as customers' trust policies name it (default: STS GetCallerIdentity of its identity).
    fleet_principal_arn: str | None = None
    # A role's temporary credentials last this long and are refreshed this long before they expire; a refused
    # AssumeRole is remembered this long per process before STS is asked again (a replay asks at once).
    sts_session_duration_s: int = Field(3600, ge=900, le=43200)
    sts_refresh_before_s: int = Field(900, ge=60)
    sts_refusal_hold_s: float = Field(300.0, ge=0)

    # botocore: one retry layer of its own, bounded; Celery/our store retry on top with longer backoff.
    s3_max_attempts: int = Field(3, ge=1)
    s3_connect_timeout_s: float = Field(5.0, gt=0)
    s3_read_timeout_s: float = Field(30.0, gt=0)
    # Soft time limit of one upload; the hard limit and the batch lease follow from it.
    upload_timeout_s: float = Field(240.0, gt=0)
    multipart_threshold_bytes: int = Field(16 * 1024 * 1024, ge=5 * 1024 * 1024)
    multipart_part_bytes: int = Field(8 * 1024 * 1024, ge=5 * 1024 * 1024)
    drain_chunk_events: int = Field(10_000, gt=0)

    # Iceberg (the iceberg variant): the fleet's SQLite catalog (an integration's iceberg_catalog sql without a URI;
    # any SQLite catalog must be a file in its directory), the commit lock, maintenance.
    iceberg_sqlite_path: str = "var/iceberg/catalog.db"
    # the lock's lease outlives a commit (a few requests); a worker waits for it at most a quarter of the upload's
    # time limit
    iceberg_lock_lease_s: float = Field(30.0, gt=0)
    iceberg_lock_wait_s: float = Field(30.0, gt=0)
    iceberg_maintenance_interval_s: int = Field(3600, ge=10)
    # a data file no snapshot references is removed only once older than this (a flush may be writing it)
    iceberg_orphan_age_s: int = Field(24 * 3600, ge=60)

    log_level: str = "INFO"
    # Worker and beat logs: ``json`` (one JSON object per line, workers/observe/logs.py) or ``text`` (Celery's own
    # format).
    log_format: Literal["json", "text"] = "json"

    # HTTP API (``signal-s3 api``): admin routes need this bearer token; without it they answer 503.
    admin_token: SecretStr | None = None
    api_host: str = "127.0.0.1"
    api_port: int = Field(8084, ge=1, le=65535)
    # One access-log line per request (uvicorn's): ~0.1 ms of CPU per collection request, a third of what a track
    # request costs otherwise, so off unless asked for (events and refusals are counted, errors logged, either way).
    api_access_log: bool = False
    # Collection: events are coalesced per integration into signal.ingest tasks of up to this many events, published
    # as soon as the integration's previous publish completed (what arrived meanwhile forms the next task).
    collect_batch_events: int = Field(500, ge=1, le=10_000)
    # Optional linger: events that find the broker free wait up to this long for more (0: publish at once).
    collect_batch_ms: int = Field(0, ge=0, le=10_000)
    # Largest request body, compressed and decompressed (Segment's limit for a batch request: 500 KB).
    api_max_body_bytes: int = Field(500 * 1024, ge=1024)
    # Events per second one source may send, shared by every API process (a source's own setting wins); 0: no limit.
    source_rate_limit_eps: int = Field(1000, ge=0, le=1_000_000)
    # Proxies whose X-Forwarded-For is believed (comma-separated IPs or CIDRs); others' connection address is used.
    trusted_proxies: Annotated[tuple[IpNetwork, ...], NoDecode] = ()
    # The collection API's address as websites reach it, for the snippets (default: http://SIGNAL_API_HOST:PORT).
    public_api_url: str | None = None

    # Web console (served by ``signal-s3 api`` at ``/``): sign-in lasts this long; this many failed sign-ins from one
    # client within the window lock that client out until the window ends.
    console_session_ttl_s: int = Field(8 * 3600, ge=60, le=7 * 24 * 3600)
    console_signin_max_failures: int = Field(5, ge=1)
    console_signin_window_s: int = Field(300, ge=1)
    # Flower's address, linked from the console's Fleet page when set (e.g. http://127.0.0.1:5555).
    flower_url: str | None = None

    @field_validator("retry_backoff_max_s")
    @classmethod
    def _backoff_below_visibility(cls, v: float, info):  # type: ignore[no-untyped-def]
        vt = info.data.get("visibility_timeout_s", 300)
        if v >= vt:
            raise ValueError(f"must stay below SIGNAL_VISIBILITY_TIMEOUT_S ({vt}s), or tasks run twice")
        return v

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, v: Any) -> Any:
        items = v.split(",") if isinstance(v, str) else v
        out = []
        for item in items or ():
            if isinstance(item, str) and not item.strip():
                continue
            try:
                out.append(ipaddress.ip_network(item.strip() if isinstance(item, str) else item, strict=False))
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or CIDR network (e.g. 10.0.0.0/8)") from None
        return tuple(out)

    @field_validator("public_api_url")
    @classmethod
    def _public_api_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        return check_api_url(v)

    @property
    def collection_url(self) -> str:
        """Where websites send events: ``SIGNAL_PUBLIC_API_URL``, else the API's own address."""
        return self.public_api_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or self.redis_url

    @property
    def broker_is_amqp(self) -> bool:
        return urlsplit(self.celery_broker_url).scheme in AMQP_SCHEMES

    @model_validator(mode="after")
    def _cluster_needs_another_broker(self) -> Settings:
        if not self.redis_cluster:
            return self
        if urlsplit(self.celery_broker_url).scheme in ("redis", "rediss", "redis+socket"):
            raise ValueError(
                "SIGNAL_REDIS_CLUSTER=true needs SIGNAL_BROKER_URL set to another broker (e.g. "
                "amqp://user:password@rabbitmq:5672/): Celery's Redis transport cannot use a Redis "
                "Cluster"
            )
        if urlsplit(self.redis_url).path not in ("", "/", "/0"):
            raise ValueError("SIGNAL_REDIS_URL of a Redis Cluster must use database 0 (a cluster has no other)")
        return self

    @property
    def secret_keys(self) -> list[str]:
        if self.secret_key is None:
            return []
        return [k.strip() for k in self.secret_key.get_secret_value().split(",") if k.strip()]

    @model_validator(mode="after")
    def _upload_timeout_above_botocore(self) -> Settings:
        worst = (self.s3_connect_timeout_s + self.s3_read_timeout_s) * self.s3_max_attempts
        if self.upload_timeout_s < worst:
            raise ValueError(
                f"SIGNAL_UPLOAD_TIMEOUT_S ({self.upload_timeout_s}s) must be at least botocore's worst case for one "
                f"request, (connect + read timeout) x attempts = {worst}s"
            )
        return self

    @model_validator(mode="after")
    def _refresh_within_the_session(self) -> Settings:
        if self.sts_refresh_before_s >= self.sts_session_duration_s:
            raise ValueError(
                f"SIGNAL_STS_REFRESH_BEFORE_S ({self.sts_refresh_before_s}s) must be shorter than "
                f"SIGNAL_STS_SESSION_DURATION_S ({self.sts_session_duration_s}s), or every request would assume the "
                "role again"
            )
        return self

    @property
    def _margin_s(self) -> float:
        return max(2.0, self.upload_timeout_s / 8)

    @property
    def upload_time_limit_s(self) -> float:
        """Hard limit: the worker child is killed, the message requeued, the lease keeps others off until it ends."""
        return self.upload_timeout_s + self._margin_s

    @property
    def lease_s(self) -> float:
        """How long a claimed batch belongs to its uploader before the sweep may hand it to another."""
        return self.upload_time_limit_s + self._margin_s


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
