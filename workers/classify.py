"""The one function that decides what a failure means: ``classify(exc)`` turns any exception into a ``Failure``,
transient (retry with backoff) or permanent (hold the batch for the user), with the hint the user is shown.

A pure function over exception types and error codes: library errors (botocore, urllib3, redis) are translated here
and nowhere else. Every message a ``Failure`` carries is short (at most ``MESSAGE_MAX_CHARS``) and scrubbed of
anything that looks like a credential (``scrub``), because failures are shown to users, logged and stored with
dead-lettered batches.
"""

from __future__ import annotations

import re
from typing import Any, Final

import botocore.exceptions as boto_exc
import redis.exceptions as redis_exc
import urllib3.exceptions as urllib3_exc

from workers.errors import Failure, PermanentError, TransientError

MESSAGE_MAX_CHARS: Final = 300


# --- Hints shown next to a permanent failure --------------------------------------------------------------------

# The setup guide's Troubleshooting table, verbatim.
_SEED_GENERIC = "Verify the bucket name, region, and prefix are correct. Check that the bucket exists."
_SEED_WRONG_REGION = (
    "S3 bucket region must match the region config field. Check the bucket\u2019s actual region in the S3 console."
)

#: Hint used for every code without an entry of its own (the troubleshooting table's "Events not appearing in S3" row).
GENERIC_HINT: Final = _SEED_GENERIC

_EXPIRED_TOKEN_HINT = (
    "The STS session token has expired or is invalid. Temporary credentials stop working when their session ends: "
    "update session_token (and the matching key pair), or use a long-lived IAM user access key without a token."
)
_KMS_HINT = (
    "S3 could not encrypt the object with the configured server-side encryption. With aws:kms, kms_key_id must be "
    "the ARN of an enabled symmetric KMS key in the bucket's region, and the IAM user must be allowed to use it "
    "(kms:GenerateDataKey); otherwise choose server_side_encryption AES256."
)

HINTS: Final[dict[str, str]] = {
    "AccessDenied": "The IAM user lacks s3:PutObject permission on the bucket. Update the IAM policy.",
    "NoSuchBucket": (
        "The bucket does not exist. Verify the bucket name (names are case-sensitive and globally unique)."
    ),
    "InvalidAccessKeyId": "The access key ID is incorrect or the IAM user has been deleted. Verify credentials.",
    "SignatureDoesNotMatch": (
        "The secret access key does not match the access key ID. Check it for a typo or stray spaces and paste it "
        "again; regenerate the key pair only if the secret is lost."
    ),
    "PermanentRedirect": _SEED_WRONG_REGION,
    "AuthorizationHeaderMalformed": _SEED_WRONG_REGION,
    "IllegalLocationConstraintException": _SEED_WRONG_REGION,
    # Our own code: GetBucketLocation answered a region other than the configured one.
    "WrongRegion": _SEED_WRONG_REGION,
    "AccessDeniedException": (
        "The IAM identity lacks a Glue permission the Iceberg table needs (glue:GetDatabase, glue:CreateDatabase, "
        "glue:GetTable, glue:CreateTable, glue:UpdateTable on the catalog, database and table). Update the IAM "
        "policy (signal-s3 iam-policy shows it), then replay."
    ),
    "IcebergCatalogRefused": "Change iceberg_catalog / iceberg_catalog_uri to a catalog this fleet opens, then replay.",
    "IcebergTableMismatch": (
        "Point the integration at the table's bucket and prefix (or the settings it was made with), or choose a new "
        "prefix and iceberg_table for a new table (it is created there at the next flush), then replay."
    ),
    "ExpiredToken": _EXPIRED_TOKEN_HINT,
    "TokenRefreshRequired": _EXPIRED_TOKEN_HINT,
    "InvalidToken": _EXPIRED_TOKEN_HINT,
    "InvalidStorageClass": (
        "S3 rejected the storage class. Choose one of STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING, "
        "GLACIER_IR, GLACIER, DEEP_ARCHIVE or REDUCED_REDUNDANCY, as available in the bucket's region."
    ),
    "KMS": _KMS_HINT,
    "NoCredentials": (
        "No AWS credentials were available. Enter both the access key ID and the secret access key in the "
        "integration settings."
    ),
    # Credentials by role or by the fleet's identity (workers.sink.credentials).
    "AssumeRoleDenied": (
        "Check both: the role's trust policy must allow sts:AssumeRole for the fleet's principal, and its "
        "sts:ExternalId condition must equal this integration's external_id (the role must exist too). See Query & "
        "access for the trust policy, then replay the held batches."
    ),
    "NoFleetIdentity": (
        "The fleet has no AWS identity (no credentials in its environment, shared config, web identity / IRSA, ECS "
        "or EC2 role). Give the fleet one, or give the integration a key pair, then replay the held batches."
    ),
    "FleetCredentialsNotAllowed": (
        "This integration writes with the fleet's own identity, which the fleet does not allow "
        "(SIGNAL_ALLOW_FLEET_CREDENTIALS). Switch it to assume_role or access_key, then replay the held batches."
    ),
    # Failures of our own, not S3's.
    "IntegrationMissing": "The integration is no longer installed. Reinstall it, then replay the held batches.",
    "WorkerLost": (
        "The upload of this batch was interrupted every time (worker killed or out of memory). Check the workers' "
        "memory and time limits, then replay the held batch."
    ),
}


def hint_for(code: str) -> str:
    """The hint shown to the user for an error code: its own entry, the KMS hint for any ``KMS...`` code, else the
    generic "Events not appearing in S3" advice."""
    if code in HINTS:
        return HINTS[code]
    if code.startswith("KMS"):
        return HINTS["KMS"]
    return GENERIC_HINT


# --- Classification ---------------------------------------------------------------------------------------------

#: Error codes retried even though S3 may send them with a 4xx status.
TRANSIENT_CODES: Final = frozenset(
    {
        "SlowDown",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        # The signing clock of this fleet is off: our problem, not the user's; it heals when the clock is fixed.
        "RequestTimeTooSkewed",
        # A bucket created minutes ago in another region answers this until DNS has propagated.
        "TemporaryRedirect",
    }
)

#: Throttling codes (botocore's list plus S3's), always retried; KMS throttling included.
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "RequestThrottled",
        "SlowDown",
        "KMS.ThrottlingException",
        "429",
    }
)

#: Codes that mean "the credentials are wrong": callers evict the cached client on these.
AUTH_CODES: Final = frozenset(
    {
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidToken",
        "NoCredentials",
    }
)

#: Connection-level failures: nothing (or nothing complete) came back from S3.
TRANSIENT_EXCEPTIONS: Final[tuple[type[BaseException], ...]] = (
    boto_exc.EndpointConnectionError,
    boto_exc.ConnectTimeoutError,
    boto_exc.ReadTimeoutError,
    boto_exc.ConnectionClosedError,
    boto_exc.ResponseStreamingError,
    boto_exc.IncompleteReadError,
    boto_exc.ConnectionError,
    boto_exc.HTTPClientError,
    urllib3_exc.ProtocolError,
    redis_exc.ConnectionError,
    redis_exc.TimeoutError,
    ConnectionError,
    TimeoutError,
    OSError,
)

_NO_CREDENTIALS: Final[tuple[type[BaseException], ...]] = (
    boto_exc.NoCredentialsError,
    boto_exc.PartialCredentialsError,
)

_SSE_WORDS = re.compile(r"encrypt|kms|sse|x-amz-server-side", re.IGNORECASE)
_NUMERIC_CODES = {"301": "PermanentRedirect", "403": "AccessDenied"}


# A bucket with Object Lock refuses an upload without Content-MD5 or a checksum header (AWS: InvalidRequest; some
# stores: their own code). The uploader adds one and tries again at once.
OBJECT_LOCK_CODES: Final = frozenset({"MissingUploadObjectWithObjectLockHeaders", "ObjectLockChecksumRequired"})
_OBJECT_LOCK_WORDS = re.compile(r"object lock", re.IGNORECASE)
_CHECKSUM_WORDS = re.compile(r"content-md5|checksum", re.IGNORECASE)
#: The credentials expired: permanent for a session token the user gave, transient when the fleet refreshes them.
EXPIRED_CODES: Final = frozenset({"ExpiredToken", "TokenRefreshRequired", "InvalidToken"})


def classify(exc: BaseException, *, refreshing_credentials: bool = False) -> Failure:
    """Translate any exception into a ``Failure``: transient (retry with backoff) or permanent (hold for the user).

    Transient:
      * a ``ClientError`` whose code is in ``TRANSIENT_CODES`` (SlowDown, InternalError, ServiceUnavailable,
        RequestTimeout, RequestTimeoutException, PriorRequestNotComplete, RequestTimeTooSkewed -- our clock, not the
        user's config -- and TemporaryRedirect) or ``THROTTLING_CODES`` (Throttling, ThrottlingException,
        ThrottledException, RequestThrottledException, TooManyRequestsException, RequestLimitExceeded,
        BandwidthLimitExceeded, RequestThrottled, KMS.ThrottlingException, 429), or whose HTTP status is 429 or 5xx;
      * connection failures (``TRANSIENT_EXCEPTIONS``): botocore EndpointConnectionError, ConnectTimeoutError,
        ReadTimeoutError, ConnectionClosedError, ResponseStreamingError, IncompleteReadError and every other botocore
        connection/HTTP client error, urllib3 ProtocolError, redis ConnectionError/TimeoutError, and the builtin
        ConnectionError/TimeoutError/OSError;
      * any other exception we do not know (a bug or an unforeseen library error): retried, and the retry age limit
        dead-letters it if it never heals. Code ``Unexpected``.

    Permanent (the batch is held until the user fixes the configuration and replays it):
      * every other ``ClientError``, i.e. any 3xx/4xx answer: AccessDenied, NoSuchBucket, InvalidAccessKeyId,
        SignatureDoesNotMatch, PermanentRedirect, AuthorizationHeaderMalformed, IllegalLocationConstraintException,
        ExpiredToken, TokenRefreshRequired, InvalidToken, InvalidStorageClass, the KMS codes (KMS.NotFoundException,
        KMS.DisabledException, KMS.KMSInvalidStateException, KMS.AccessDeniedException,
        KMS.InvalidKeyUsageException, any other ``KMS...`` code), InvalidArgument (about SSE/KMS or not), and any
        code we have never heard of;
      * botocore NoCredentialsError / PartialCredentialsError (code ``NoCredentials``);
      * botocore ParamValidationError (code ``InvalidParameter``): the request cannot be built from the config;
      * ``SignalError`` subclasses keep the ``Failure`` they carry.

    The hint is ``hint_for(code)`` for permanent failures (an InvalidArgument about encryption gets the KMS hint) and
    None for transient ones, which heal without the user.

    Two codes depend on the situation: an upload a bucket with Object Lock refused for want of a checksum is
    ``ObjectLockChecksumRequired`` (transient: the uploader adds one), and expired credentials (``EXPIRED_CODES``) are
    transient when the fleet refreshes them itself (``refreshing_credentials``: a role's, or the fleet's own).
    """
    if isinstance(exc, TransientError | PermanentError):
        return exc.failure
    if isinstance(exc, boto_exc.ClientError):
        failure = _classify_client_error(exc)
        if refreshing_credentials and failure.code in EXPIRED_CODES:
            return Failure(failure.code, failure.message, False, None, failure.http_status)
        return failure
    if isinstance(exc, _NO_CREDENTIALS):
        return _failure("NoCredentials", exc, permanent=True)
    if isinstance(exc, boto_exc.ParamValidationError):
        return _failure("InvalidParameter", exc, permanent=True)
    table = _classify_table_error(exc)
    if table is not None:
        return table
    if isinstance(exc, TRANSIENT_EXCEPTIONS):
        return _failure(type(exc).__name__, exc, permanent=False)
    return Failure(
        code="Unexpected",
        message=scrub(f"{type(exc).__name__}: {exc}"),
        permanent=False,
        hint=None,
        http_status=None,
    )


# Iceberg catalogs (pyiceberg, SQLAlchemy), the sink's own refusals of a catalog or a table, and pyarrow's S3 file
# system, by exception class name (no import of them here): the code each becomes, and whether it is permanent.
_TABLE_ERRORS: Final[dict[str, tuple[str, bool]]] = {
    "CommitFailedException": ("IcebergCommitConflict", False),
    "CommitStateUnknownException": ("IcebergCommitUnknown", False),
    "StaleFence": ("IcebergLockExpired", False),
    "ForeignWriter": ("IcebergForeignWriter", True),
    "NoSuchTableError": ("IcebergTableMissing", False),
    "NoSuchNamespaceError": ("IcebergTableMissing", False),
    "OperationalError": ("IcebergCatalogUnavailable", False),
    "InterfaceError": ("IcebergCatalogUnavailable", False),
    "DisconnectionError": ("IcebergCatalogUnavailable", False),
    "TimeoutError": ("IcebergCatalogUnavailable", False),
    "ArgumentError": ("IcebergCatalogRefused", True),
    "NoSuchModuleError": ("IcebergCatalogRefused", True),
    "CatalogRefused": ("IcebergCatalogRefused", True),
    "TableMismatch": ("IcebergTableMismatch", True),
}
_TABLE_MODULES: Final = ("pyiceberg", "sqlalchemy", "workers.sink.iceberg")
# pyarrow's S3 file system (Iceberg metadata) reports the store's answer as an OSError whose text names the error.
_ARROW_S3_CODES: Final = (
    (re.compile(r"ACCESS_DENIED|AccessDenied|HTTP response code: 403"), "AccessDenied"),
    (re.compile(r"NO_SUCH_BUCKET|NoSuchBucket"), "NoSuchBucket"),
)


def _classify_table_error(exc: BaseException) -> Failure | None:
    for cls in type(exc).__mro__:
        found = _TABLE_ERRORS.get(cls.__name__)
        if found is not None and cls.__module__.startswith(_TABLE_MODULES):
            code, permanent = found
            return _failure(code, exc, permanent=permanent)
    if isinstance(exc, OSError) and "AWS Error" in str(exc):
        for pattern, code in _ARROW_S3_CODES:
            if pattern.search(str(exc)):
                return _failure(code, exc, permanent=True)
    return None


def _classify_client_error(exc: boto_exc.ClientError) -> Failure:
    response: dict[str, Any] = exc.response or {}
    error: dict[str, Any] = response.get("Error") or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    http_status = int(status) if status is not None else None
    code = str(error.get("Code") or (http_status if http_status is not None else "Unknown"))
    code = _NUMERIC_CODES.get(code, code)
    raw_message = str(error.get("Message") or "")
    message = f"{exc.operation_name}: {raw_message}" if raw_message else f"{exc.operation_name}: {code}"
    if code in OBJECT_LOCK_CODES or (
        code == "InvalidRequest" and _OBJECT_LOCK_WORDS.search(raw_message) and _CHECKSUM_WORDS.search(raw_message)
    ):
        return Failure("ObjectLockChecksumRequired", scrub(message), False, None, http_status)

    transient = (
        code in TRANSIENT_CODES
        or code in THROTTLING_CODES
        or (http_status is not None and (http_status == 429 or http_status >= 500))
    )
    if transient:
        return Failure(code=code, message=scrub(message), permanent=False, hint=None, http_status=http_status)
    hint = hint_for(code)
    if code == "InvalidArgument" and _SSE_WORDS.search(raw_message):
        hint = HINTS["KMS"]
    return Failure(code=code, message=scrub(message), permanent=True, hint=hint, http_status=http_status)


def _failure(code: str, exc: BaseException, *, permanent: bool) -> Failure:
    text = str(exc) or type(exc).__name__
    return Failure(
        code=code,
        message=scrub(text),
        permanent=permanent,
        hint=hint_for(code) if permanent else None,
        http_status=None,
    )


# --- Scrubbing --------------------------------------------------------------------------------------------------

# Fields AWS and moto echo back for SignatureDoesNotMatch; everything after them is signing material.
_ECHOED_FIELDS = re.compile(
    r"\b(StringToSign(Bytes)?|CanonicalRequest(Bytes)?|SignatureProvided|AWSAccessKeyId)\b.*", re.IGNORECASE | re.S
)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA|AIDA|AROA|ANPA|ANVA|AGPA|AIPA|ABIA|ACCA)[A-Z0-9]{12,}\b")
_SIGNING_PARAMS = re.compile(
    r"(X-Amz-(Credential|Signature|Security-Token)=|Credential=|Signature=|aws_secret_access_key\s*[=:]\s*)"
    r"[^\s&,\"']*",
    re.IGNORECASE,
)
# The password of a URL (a catalog's postgresql://user:password@host/db), up to the last @ before the host.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/@]+:)\S*@(?=[^\s@]*(?:\s|$))", re.IGNORECASE)
_PASSWORD_PARAM = re.compile(r"(\bpassword=)[^\s&]*", re.IGNORECASE)
# A 40-character secret access key, or any long base64 run (session tokens, signatures, hashes).
_LONG_SECRET = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40,}={0,2}(?![A-Za-z0-9/+=])")


def scrub(text: str) -> str:
    """``text`` without credentials or signing material, on one line, at most ``MESSAGE_MAX_CHARS`` characters."""
    text = _ECHOED_FIELDS.sub("", text)
    text = _URL_PASSWORD.sub(lambda m: m.group(1) + "****@", text)
    text = _PASSWORD_PARAM.sub(lambda m: m.group(1) + "****", text)
    text = _SIGNING_PARAMS.sub(lambda m: m.group(1) + "****", text)
    text = _ACCESS_KEY_ID.sub("****", text)
    text = _LONG_SECRET.sub("****", text)
    text = " ".join(text.split())
    if len(text) > MESSAGE_MAX_CHARS:
        text = text[: MESSAGE_MAX_CHARS - 3].rstrip() + "..."
    return text
