"""What the fleet checks of a bucket: it exists, answers the integration's credentials and lives in the configured
region (GetBucketLocation, which the least privilege policy allows), and whether it has Object Lock (then every
upload carries a checksum)."""

from __future__ import annotations

import re

import botocore.exceptions as boto_exc

from workers.classify import AUTH_CODES, HINTS, classify
from workers.errors import Failure
from workers.settings import Settings
from workers.sink.clients import S3Config, client_for, evict

# The shape of an AWS region code (us-east-1, us-gov-west-1, cn-north-1); a compatible store answers its own names
# (R2 "auto", B2 "us-west-004", GCS "US"), which say nothing about the region to sign with.
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-[0-9]")


def bucket_region(cfg: S3Config, *, settings: Settings | None = None) -> str:
    """The bucket's region according to GetBucketLocation (allowed by the setup guide's IAM policy)."""
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
        return region_failure(cfg, settings=settings)
    except Exception as exc:  # noqa: BLE001 - every failure is reported, classified
        failure = classify(exc)
        if failure.code in AUTH_CODES:
            evict(cfg)
        return failure


def region_failure(cfg: S3Config, *, settings: Settings | None = None) -> Failure | None:
    """``WrongRegion`` when the bucket lives in another region than ``cfg.region``, else None; raises what
    GetBucketLocation raised. On an S3-compatible store the answer is compared only when both it and ``cfg.region``
    are AWS region codes (MinIO, Ceph): other stores name locations that are not signing regions."""
    actual = bucket_region(cfg, settings=settings)
    if cfg.endpoint_url and not (_AWS_REGION.fullmatch(actual) and _AWS_REGION.fullmatch(cfg.region)):
        return None
    if actual != cfg.region:
        return Failure(
            code="WrongRegion",
            message=f"bucket {cfg.bucket} is in {actual}, but the configured region is {cfg.region}",
            permanent=True,
            hint=HINTS["WrongRegion"],
            http_status=None,
        )
    return None


def detect_object_lock(cfg: S3Config, *, settings: Settings | None = None) -> bool | None:
    """Whether the bucket has Object Lock enabled (then a PutObject or UploadPart needs Content-MD5 or a checksum);
    None when the credentials may not read it (the first upload finds out instead)."""
    try:
        answer = client_for(cfg, settings=settings).get_object_lock_configuration(Bucket=cfg.bucket)
    except boto_exc.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code") or "")
        if code == "ObjectLockConfigurationNotFoundError":
            return False
        if code == "NotImplemented" or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 501:
            return None  # a compatible store without Object Lock
        if classify(exc).permanent:
            return None  # AccessDenied, or a store that does not know the call: not known
        raise
    return answer.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
