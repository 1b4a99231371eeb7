"""The one service that talks to S3: a per-process client cache, the object upload and the bucket check.

``put_object`` streams event lines through the variant's encoder (gzipped NDJSON or Parquet) and writes exactly one
object: a single PutObject when the encoded body stays below ``multipart_threshold_bytes``, else a multipart upload
(invisible until completed, so retrying the same key still yields one object). botocore errors are raised unchanged;
``workers.errors.classify`` decides what they mean.

botocore's S3 region redirector is removed from every client: a bucket in another region must surface as
PermanentRedirect / AuthorizationHeaderMalformed (shown to the user with the region hint) instead of being followed
silently on every request.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

import botocore.session
import botocore.utils
from botocore.config import Config

from workers import compat

from workers.sink.ndjson import encoder_for
from workers.classify import AUTH_CODES, HINTS, classify
from workers.errors import Failure
from workers.settings import Settings, get_settings

if TYPE_CHECKING:
    from pydantic import SecretStr

CLIENT_CACHE_SIZE: Final = 64
MAX_POOL_CONNECTIONS: Final = 10

MIN_PART_BYTES: Final = 5 * 1024 * 1024
MAX_PART_BYTES: Final = 5 * 1024 * 1024 * 1024
MAX_PARTS: Final = 10_000
# Parts double in size every this many parts, so an upload of unknown length never needs more than MAX_PARTS.
PARTS_PER_SIZE_STEP: Final = 1_000

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


@dataclass(frozen=True)
class UploadResult:
    key: str
    events: int
    raw_bytes: int
    compressed_bytes: int
    parts: int  # multipart parts; 0 for a single PutObject
    etag: str
    s3_s: float = 0.0  # time spent in S3 requests (the rest of an upload is reading and compressing the batch)


class _Stopwatch:
    """Adds up the time spent inside ``with`` blocks."""

    def __init__(self) -> None:
        self.total_s = 0.0

    def __enter__(self) -> None:
        self._t0 = time.perf_counter()

    def __exit__(self, *_: object) -> None:
        self.total_s += time.perf_counter() - self._t0


# --- Client cache ---------------------------------------------------------------------------------------------------

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


# --- Upload ---------------------------------------------------------------------------------------------------------


def content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii")


def part_bytes_for(part_number: int, base_part_bytes: int) -> int:
    """Size of multipart part ``part_number`` (1-based): the configured size, doubled every PARTS_PER_SIZE_STEP parts,
    within S3's 5 MiB..5 GiB."""
    if not 1 <= part_number <= MAX_PARTS:
        raise ValueError(f"an S3 multipart upload has at most {MAX_PARTS} parts")
    size = max(base_part_bytes, MIN_PART_BYTES) * 2 ** ((part_number - 1) // PARTS_PER_SIZE_STEP)
    return min(size, MAX_PART_BYTES)


def object_params(cfg: S3Config, key: str, content_type: str) -> dict[str, Any]:
    """Parameters shared by PutObject and CreateMultipartUpload."""
    params: dict[str, Any] = {
        "Bucket": cfg.bucket,
        "Key": key,
        "ContentType": content_type,
        "StorageClass": cfg.storage_class,
    }
    if cfg.server_side_encryption:
        params["ServerSideEncryption"] = cfg.server_side_encryption
    if cfg.kms_key_id:
        params["SSEKMSKeyId"] = cfg.kms_key_id
    return params


class _MultipartUpload:
    def __init__(self, client: Any, cfg: S3Config, key: str, content_type: str, base_part_bytes: int,
                 stopwatch: _Stopwatch) -> None:
        self._client = client
        self._stopwatch = stopwatch
        self._bucket = cfg.bucket
        self._key = key
        self._base_part_bytes = base_part_bytes
        self._parts: list[dict[str, Any]] = []
        with stopwatch:
            response = client.create_multipart_upload(**object_params(cfg, key, content_type))
        self._upload_id: str = response["UploadId"]

    @property
    def parts(self) -> int:
        return len(self._parts)

    def send_full_parts(self, buffer: bytearray) -> None:
        """Upload as many whole parts as ``buffer`` holds, removing them from it."""
        while len(buffer) >= (size := part_bytes_for(len(self._parts) + 1, self._base_part_bytes)):
            body = bytes(buffer[:size])
            del buffer[:size]
            self._send(body)

    def send_rest(self, buffer: bytearray) -> None:
        if buffer or not self._parts:
            body = bytes(buffer)
            buffer.clear()
            self._send(body)

    def _send(self, body: bytes) -> None:
        number = len(self._parts) + 1
        md5 = content_md5(body)
        with self._stopwatch:
            response = self._client.upload_part(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body,
                ContentMD5=md5,
            )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        # When botocore added a flexible checksum to the part, completion must repeat it.
        part.update({k: v for k, v in response.items() if k.startswith("Checksum") and k != "ChecksumType"})
        self._parts.append(part)

    def complete(self) -> str:
        with self._stopwatch:
            response = self._client.complete_multipart_upload(
                Bucket=self._bucket, Key=self._key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts},
            )
        return str(response.get("ETag", ""))

    def abort(self) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except Exception:  # noqa: BLE001 - the original failure is what matters; S3 lifecycle rules clean up the rest
            pass


def put_object(cfg: S3Config, key: str, chunks: Iterable[list[bytes]], *, settings: Settings,
               variant: str = "default") -> UploadResult:
    """Write the event lines of ``chunks`` as one object at ``key`` in the variant's format (overwriting any object
    there): gzipped NDJSON (``default``) or Parquet.

    Memory stays bounded to about one part (or the multipart threshold, whichever is larger) plus what the encoder
    holds (one chunk; for Parquet one row group). Raises ValueError for an object without events; botocore errors
    propagate unchanged.
    """
    client = client_for(cfg, settings=settings)
    encoder = encoder_for(variant)
    buffer = bytearray()
    stopwatch = _Stopwatch()
    upload: _MultipartUpload | None = None
    try:
        for lines in chunks:
            buffer += encoder.write(lines)
            if upload is None and len(buffer) >= settings.multipart_threshold_bytes:
                upload = _MultipartUpload(client, cfg, key, encoder.content_type, settings.multipart_part_bytes,
                                          stopwatch)
            if upload is not None:
                upload.send_full_parts(buffer)
        buffer += encoder.finish()
        if encoder.events == 0:
            raise ValueError("refusing to write an object without events")
        if upload is None and len(buffer) < settings.multipart_threshold_bytes:
            body = bytes(buffer)
            buffer.clear()
            md5 = content_md5(body)
            with stopwatch:
                response = client.put_object(**object_params(cfg, key, encoder.content_type), Body=body,
                                             ContentMD5=md5)
            etag = str(response.get("ETag", ""))
            parts = 0
        else:
            if upload is None:
                upload = _MultipartUpload(client, cfg, key, encoder.content_type, settings.multipart_part_bytes,
                                          stopwatch)
            upload.send_full_parts(buffer)
            upload.send_rest(buffer)
            etag = upload.complete()
            parts = upload.parts
    except BaseException:
        if upload is not None:
            upload.abort()
        raise
    return UploadResult(
        key=key,
        events=encoder.events,
        raw_bytes=encoder.raw_bytes,
        compressed_bytes=encoder.compressed_bytes,
        parts=parts,
        etag=etag,
        s3_s=stopwatch.total_s,
    )


# --- Bucket check ---------------------------------------------------------------------------------------------------


def bucket_region(cfg: S3Config, *, settings: Settings | None = None) -> str:
    """The bucket's region according to GetBucketLocation (allowed by the seed's IAM policy)."""
    response = client_for(cfg, settings=settings).get_bucket_location(Bucket=cfg.bucket)
    location = response.get("LocationConstraint")
    if not location:
        return "us-east-1"
    if location == "EU":
        return "eu-west-1"
    return str(location)


def verify_bucket(cfg: S3Config, *, settings: Settings | None = None) -> Failure | None:
    """None when the bucket exists and lives in ``cfg.region``; else the classified failure (``WrongRegion`` for a
    region mismatch). Evicts the cached client after an auth failure."""
    try:
        actual = bucket_region(cfg, settings=settings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, classified
        failure = classify(exc)
        if failure.code in AUTH_CODES:
            evict(cfg)
        return failure
    if actual != cfg.region:
        return Failure(
            code="WrongRegion",
            message=f"bucket {cfg.bucket} is in {actual}, but the configured region is {cfg.region}",
            permanent=True,
            hint=HINTS["WrongRegion"],
            http_status=None,
        )
    return None
