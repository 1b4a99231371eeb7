"""Writing one object: ``put_object`` streams event lines through the variant's encoder (gzipped NDJSON or Parquet)
and writes exactly one object, a single PutObject when the encoded body stays below ``multipart_threshold_bytes``,
else a multipart upload (invisible until completed, so retrying the same key still yields one object). Every request
carries a Content-MD5. botocore errors are raised unchanged; ``workers.classify.classify`` decides what they mean.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from workers.settings import Settings
from workers.sink.clients import S3Config, client_for
from workers.sink.formats import Encoder, encoder_for

MIN_PART_BYTES: Final = 5 * 1024 * 1024
MAX_PART_BYTES: Final = 5 * 1024 * 1024 * 1024
MAX_PARTS: Final = 10_000
# Parts double in size every this many parts, so an upload of unknown length never needs more than MAX_PARTS.
PARTS_PER_SIZE_STEP: Final = 1_000


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
    """Parameters shared by PutObject and CreateMultipartUpload: type, storage class, encryption, tags."""
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
    if cfg.bucket_key_enabled:
        params["BucketKeyEnabled"] = True
    if cfg.object_tags:
        params["Tagging"] = urlencode(cfg.object_tags)  # x-amz-tagging: needs s3:PutObjectTagging
    return params


def body_checksum(cfg: S3Config, body: bytes, *, required: bool) -> dict[str, str]:
    """The Content-MD5 of a PutObject or UploadPart body: always with ``checksums`` auto, and with when_required only
    when the bucket needs one (``required``: it has Object Lock)."""
    if required or cfg.effective_checksums == "auto":
        return {"ContentMD5": content_md5(body)}
    return {}


class _MultipartUpload:
    def __init__(
        self,
        client: Any,
        cfg: S3Config,
        key: str,
        content_type: str,
        base_part_bytes: int,
        stopwatch: _Stopwatch,
        *,
        checksum: bool,
    ) -> None:
        self._client = client
        self._cfg = cfg
        self._checksum = checksum
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
        with self._stopwatch:
            response = self._client.upload_part(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
                **body_checksum(self._cfg, body, required=self._checksum),
            )
        part = {"PartNumber": number, "ETag": response["ETag"]}
        # When botocore added a flexible checksum to the part, completion must repeat it.
        part.update({k: v for k, v in response.items() if k.startswith("Checksum") and k != "ChecksumType"})
        self._parts.append(part)

    def complete(self) -> str:
        with self._stopwatch:
            response = self._client.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        return str(response.get("ETag", ""))

    def abort(self) -> None:
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self._upload_id)
        except Exception:  # noqa: BLE001 - the original failure is what matters; S3 lifecycle rules clean up the rest
            pass


def put_object(
    cfg: S3Config,
    key: str,
    chunks: Iterable[list[bytes]],
    *,
    settings: Settings,
    variant: str = "default",
    checksum: bool = False,
    encoder: Encoder | None = None,
) -> UploadResult:
    """Write the event lines of ``chunks`` as one object at ``key`` in the variant's format (overwriting any object
    there): gzipped NDJSON (``default``) or Parquet. ``checksum``: a Content-MD5 on every request whatever
    ``checksums`` says (a bucket with Object Lock needs one). ``encoder``: one made for this object (an Iceberg data
    file's), instead of the variant's own.

    Memory stays bounded to about one part (or the multipart threshold, whichever is larger) plus what the encoder
    holds (one chunk; for Parquet one row group). Raises ValueError for an object without events; botocore errors
    propagate unchanged.
    """
    client = client_for(cfg, settings=settings)
    encoder = encoder if encoder is not None else encoder_for(variant)
    buffer = bytearray()
    stopwatch = _Stopwatch()
    upload: _MultipartUpload | None = None
    try:
        for lines in chunks:
            buffer += encoder.write(lines)
            if upload is None and len(buffer) >= settings.multipart_threshold_bytes:
                upload = _MultipartUpload(
                    client, cfg, key, encoder.content_type, settings.multipart_part_bytes, stopwatch, checksum=checksum
                )
            if upload is not None:
                upload.send_full_parts(buffer)
        buffer += encoder.finish()
        if encoder.events == 0:
            raise ValueError("refusing to write an object without events")
        if upload is None and len(buffer) < settings.multipart_threshold_bytes:
            body = bytes(buffer)
            buffer.clear()
            with stopwatch:
                response = client.put_object(
                    **object_params(cfg, key, encoder.content_type),
                    Body=body,
                    **body_checksum(cfg, body, required=checksum),
                )
            etag = str(response.get("ETag", ""))
            parts = 0
        else:
            if upload is None:
                upload = _MultipartUpload(
                    client, cfg, key, encoder.content_type, settings.multipart_part_bytes, stopwatch, checksum=checksum
                )
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
