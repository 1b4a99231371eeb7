"""The connection check: every step an upload takes, each reported as ok or failed with the hint of its cause.

1. ``credentials``: the credentials are obtained (the role assumed with its external ID; the fleet's own identity
   found; a key pair is used as given, and proven by the next steps).
2. ``bucket``: GetBucketLocation: the bucket exists, answers these credentials and lives in the configured region.
3. ``object_lock``: GetBucketObjectLockConfiguration: whether uploads need a checksum. Optional: when the policy does
   not allow reading it, the step says so and the first upload finds out instead.
4. ``write``: a PutObject of an empty object at ``<prefix>_signal/connection-check`` with the integration's storage
   class, encryption (KMS key, bucket key) and tags, so those permissions are proven as well. Athena's projected
   partitions and Hive-style readers never look under ``_signal/``.

A failed step stops the check: the steps after it are reported as not run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from workers.classify import AUTH_CODES, classify, hint_for
from workers.errors import Failure
from workers.settings import Settings
from workers.sink import credentials
from workers.sink.bucket import detect_object_lock, region_failure
from workers.sink.clients import S3Config, client_for, evict
from workers.sink.writer import body_checksum, object_params

PROBE_KEY = "_signal/connection-check"
STEPS = ("credentials", "bucket", "object_lock", "write")
TITLES = {
    "credentials": "Credentials obtained",
    "bucket": "Bucket found in its region (GetBucketLocation)",
    "object_lock": "Object Lock detected (GetBucketObjectLockConfiguration)",
    "write": "Test object written with the storage class, encryption and tags (PutObject)",
}


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool | None  # None: not run (an earlier step failed), or not permitted to find out
    detail: str = ""  # what was found
    failure: Failure | None = None
    ran: bool = True

    def view(self) -> dict[str, object]:
        f = self.failure
        return {
            "step": self.name,
            "title": TITLES[self.name],
            "ok": self.ok,
            "detail": self.detail,
            "code": f.code if f else None,
            "message": f.message if f else None,
            "hint": f.hint if f else None,
            "ran": self.ran,
        }


@dataclass
class Report:
    steps: list[Step] = field(default_factory=list)
    object_lock: bool | None = None  # None: not known

    @property
    def ok(self) -> bool:
        """Every step ran and none failed (the Object Lock step may not know)."""
        return all(step.ran and step.ok is not False for step in self.steps)

    @property
    def failure(self) -> Failure | None:
        """The first failed step's failure."""
        return next((s.failure for s in self.steps if s.ok is False), None)

    def view(self) -> dict[str, object]:
        return {"ok": self.ok, "object_lock": self.object_lock, "steps": [s.view() for s in self.steps]}


def check_connection(cfg: S3Config, *, settings: Settings) -> Report:
    """Run every step an upload takes, stopping at the first failure (``Report.ok``, each step's hint)."""
    report = Report()
    for name in STEPS:
        if report.failure is not None:
            report.steps.append(Step(name, None, "not run: an earlier step failed", ran=False))
            continue
        try:
            report.steps.append(_STEP[name](cfg, settings, report))
        except Exception as exc:  # noqa: BLE001 - every failure is reported, classified
            failure = classify(exc)
            if failure.code in AUTH_CODES:
                evict(cfg)
            report.steps.append(Step(name, False, "", failure))
    return report


def _credentials(cfg: S3Config, settings: Settings, report: Report) -> Step:
    if cfg.credentials == credentials.ASSUME_ROLE:
        evict(cfg)  # ask STS now, whatever it answered before
        client_for(cfg, settings=settings)  # the AssumeRole happens here
        return Step("credentials", True, f"assumed {cfg.role_arn} as session {credentials.session_name(cfg)}")
    if cfg.credentials == credentials.FLEET:
        principal = credentials.fleet_principal(settings)
        if principal is None:
            failure = Failure(
                "NoFleetIdentity", "the fleet has no AWS identity", True, hint_for("NoFleetIdentity"), None
            )
            return Step("credentials", False, "", failure)
        return Step("credentials", True, f"the fleet's own identity, {principal}")
    return Step("credentials", True, "the integration's key pair (proven by the next steps)")


def _bucket(cfg: S3Config, settings: Settings, report: Report) -> Step:
    failure = region_failure(cfg, settings=settings)
    if failure is not None:
        return Step("bucket", False, "", failure)
    return Step("bucket", True, f"{cfg.bucket} in {cfg.region}")


def _object_lock(cfg: S3Config, settings: Settings, report: Report) -> Step:
    report.object_lock = detect_object_lock(cfg, settings=settings)
    if report.object_lock is None:
        return Step(
            "object_lock",
            None,
            "not permitted to read (s3:GetBucketObjectLockConfiguration): the first upload finds out instead",
        )
    if report.object_lock:
        return Step("object_lock", True, "enabled: every upload carries a checksum")
    return Step("object_lock", True, "not enabled")


def _write(cfg: S3Config, settings: Settings, report: Report) -> Step:
    key = cfg.prefix + PROBE_KEY
    client = client_for(cfg, settings=settings)
    params = object_params(cfg, key, "text/plain")
    try:
        client.put_object(**params, Body=b"", **body_checksum(cfg, b"", required=bool(report.object_lock)))
    except Exception as exc:
        if classify(exc).code != "ObjectLockChecksumRequired":
            raise
        report.object_lock = True  # the store said so: a checksum from now on
        client.put_object(**params, Body=b"", **body_checksum(cfg, b"", required=True))
    return Step("write", True, f"s3://{cfg.bucket}/{key}")


_STEP = {"credentials": _credentials, "bucket": _bucket, "object_lock": _object_lock, "write": _write}
