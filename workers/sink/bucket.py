"""The bucket check: the bucket exists and lives in the configured region (GetBucketLocation, which the least
privilege policy allows)."""

from __future__ import annotations

from workers.classify import AUTH_CODES, HINTS, classify
from workers.errors import Failure
from workers.settings import Settings
from workers.sink.clients import S3Config, client_for, evict


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
