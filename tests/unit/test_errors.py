"""classify(exc): which failures are retried, which are held for the user, and what the user is told."""

from __future__ import annotations

import dataclasses

import botocore.exceptions as boto_exc
import pytest
import redis.exceptions as redis_exc
import urllib3.exceptions as urllib3_exc

from workers.classify import GENERIC_HINT, HINTS, MESSAGE_MAX_CHARS, classify, hint_for, scrub
from workers.errors import Failure, PermanentError, SignalError, TransientError

SEED_ACCESS_DENIED = "The IAM user lacks s3:PutObject permission on the bucket. Update the IAM policy."
SEED_NO_SUCH_BUCKET = (
    "The bucket does not exist. Verify the bucket name (names are case-sensitive and globally unique)."
)
SEED_INVALID_KEY = "The access key ID is incorrect or the IAM user has been deleted. Verify credentials."
SEED_SIGNATURE = (
    "The secret access key does not match the access key ID. Check it for a typo or stray spaces and paste it "
    "again; regenerate the key pair only if the secret is lost."
)
SEED_WRONG_REGION = (
    "S3 bucket region must match the region config field. Check the bucket\u2019s actual region in the S3 console."
)
SEED_GENERIC = "Verify the bucket name, region, and prefix are correct. Check that the bucket exists."

ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def client_error(code: str, status: int | None, message: str = "msg", **extra: str) -> boto_exc.ClientError:
    response: dict = {"Error": {"Code": code, "Message": message, **extra}}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status, "HTTPHeaders": {}}
    return boto_exc.ClientError(response, "PutObject")


TRANSIENT_CLIENT_ERRORS = [
    ("SlowDown", 503),
    ("InternalError", 500),
    ("ServiceUnavailable", 503),
    ("RequestTimeout", 400),
    ("RequestTimeTooSkewed", 403),
    ("TemporaryRedirect", 307),
    ("Throttling", 400),
    ("ThrottlingException", 400),
    ("TooManyRequestsException", 429),
    ("RequestLimitExceeded", 503),
    ("KMS.ThrottlingException", 400),
    ("429", 429),
    ("SomethingNew", 429),
    ("SomethingNew", 500),
    ("SomethingNew", 502),
    ("SomethingNew", 504),
    ("NotImplemented", 501),
]


@pytest.mark.parametrize(("code", "status"), TRANSIENT_CLIENT_ERRORS)
def test_transient_client_errors_are_retried_without_a_hint(code: str, status: int) -> None:
    failure = classify(client_error(code, status))
    assert failure == Failure(code=code, message="PutObject: msg", permanent=False, hint=None, http_status=status)


PERMANENT_CLIENT_ERRORS = [
    ("AccessDenied", 403, SEED_ACCESS_DENIED),
    ("NoSuchBucket", 404, SEED_NO_SUCH_BUCKET),
    ("InvalidAccessKeyId", 403, SEED_INVALID_KEY),
    ("SignatureDoesNotMatch", 403, SEED_SIGNATURE),
    ("PermanentRedirect", 301, SEED_WRONG_REGION),
    ("AuthorizationHeaderMalformed", 400, SEED_WRONG_REGION),
    ("IllegalLocationConstraintException", 400, SEED_WRONG_REGION),
    ("ExpiredToken", 400, HINTS["ExpiredToken"]),
    ("TokenRefreshRequired", 400, HINTS["ExpiredToken"]),
    ("InvalidToken", 400, HINTS["ExpiredToken"]),
    ("InvalidStorageClass", 400, HINTS["InvalidStorageClass"]),
    ("KMS.NotFoundException", 400, HINTS["KMS"]),
    ("KMS.DisabledException", 400, HINTS["KMS"]),
    ("KMS.KMSInvalidStateException", 400, HINTS["KMS"]),
    ("KMS.AccessDeniedException", 403, HINTS["KMS"]),
    ("KMS.InvalidKeyUsageException", 400, HINTS["KMS"]),
    ("KMS.SomeFutureException", 400, HINTS["KMS"]),
    ("KMSKeyNotAccessible", 400, HINTS["KMS"]),
    ("InvalidArgument", 400, SEED_GENERIC),
    ("EntityTooLarge", 400, SEED_GENERIC),
    ("InvalidBucketName", 400, SEED_GENERIC),
    ("MethodNotAllowed", 405, SEED_GENERIC),
    ("PreconditionFailed", 412, SEED_GENERIC),
    ("SomethingNew", 418, SEED_GENERIC),
    ("SomethingNew", None, SEED_GENERIC),
]


@pytest.mark.parametrize(("code", "status", "hint"), PERMANENT_CLIENT_ERRORS)
def test_permanent_client_errors_are_held_with_a_hint(code: str, status: int | None, hint: str) -> None:
    failure = classify(client_error(code, status))
    assert failure == Failure(code=code, message="PutObject: msg", permanent=True, hint=hint, http_status=status)


def test_head_requests_numeric_codes_get_named() -> None:
    assert classify(client_error("301", 301)).code == "PermanentRedirect"
    assert classify(client_error("301", 301)).hint == SEED_WRONG_REGION
    assert classify(client_error("403", 403)).code == "AccessDenied"
    assert classify(client_error("403", 403)).hint == SEED_ACCESS_DENIED


def test_invalid_argument_about_encryption_gets_the_kms_hint() -> None:
    exc = client_error(
        "InvalidArgument",
        400,
        "Server Side Encryption with AWS Key Management Service is not supported for this request.",
        ArgumentName="x-amz-server-side-encryption",
    )
    failure = classify(exc)
    assert failure.permanent
    assert failure.code == "InvalidArgument"
    assert failure.hint == HINTS["KMS"]


def test_client_error_without_status_or_code() -> None:
    failure = classify(boto_exc.ClientError({}, "PutObject"))
    assert failure.permanent
    assert failure.code == "Unknown"
    assert failure.http_status is None


TRANSIENT_EXCEPTIONS = [
    ("EndpointConnectionError", boto_exc.EndpointConnectionError(endpoint_url="https://s3.us-east-1.amazonaws.com")),
    ("ConnectTimeoutError", boto_exc.ConnectTimeoutError(endpoint_url="https://s3.us-east-1.amazonaws.com")),
    ("ReadTimeoutError", boto_exc.ReadTimeoutError(endpoint_url="https://s3.us-east-1.amazonaws.com")),
    ("ConnectionClosedError", boto_exc.ConnectionClosedError(endpoint_url="https://s3.us-east-1.amazonaws.com")),
    ("ResponseStreamingError", boto_exc.ResponseStreamingError(error="reset")),
    ("IncompleteReadError", boto_exc.IncompleteReadError(actual_bytes=1, expected_bytes=2)),
    ("ProxyConnectionError", boto_exc.ProxyConnectionError(proxy_url="http://proxy:3128", error="refused")),
    ("ProtocolError", urllib3_exc.ProtocolError("Connection aborted.")),
    ("ConnectionError", redis_exc.ConnectionError("Error 111 connecting to 127.0.0.1:6379")),
    ("TimeoutError", redis_exc.TimeoutError("Timeout reading from socket")),
    ("ConnectionResetError", ConnectionResetError(104, "Connection reset by peer")),
    ("ConnectionError", ConnectionError("gone")),
    ("TimeoutError", TimeoutError("timed out")),
    ("OSError", OSError(113, "No route to host")),
]


@pytest.mark.parametrize(
    ("code", "exc"), TRANSIENT_EXCEPTIONS, ids=[f"{type(e).__module__}.{c}" for c, e in TRANSIENT_EXCEPTIONS]
)
def test_connection_failures_are_transient(code: str, exc: BaseException) -> None:
    failure = classify(exc)
    assert failure.code == code
    assert failure.permanent is False
    assert failure.hint is None
    assert failure.http_status is None
    assert failure.message


@pytest.mark.parametrize(
    "exc", [KeyError("boom"), ValueError("bad"), RuntimeError("?"), boto_exc.WaiterError("w", "r", {})]
)
def test_unknown_exceptions_are_retried_until_the_age_limit(exc: BaseException) -> None:
    failure = classify(exc)
    assert failure.code == "Unexpected"
    assert failure.permanent is False
    assert failure.message.startswith(type(exc).__name__)


@pytest.mark.parametrize(
    "exc", [boto_exc.NoCredentialsError(), boto_exc.PartialCredentialsError(provider="env", cred_var="secret")]
)
def test_missing_credentials_are_permanent(exc: BaseException) -> None:
    failure = classify(exc)
    assert failure.code == "NoCredentials"
    assert failure.permanent is True
    assert failure.hint == HINTS["NoCredentials"]


def test_parameter_validation_is_permanent() -> None:
    failure = classify(boto_exc.ParamValidationError(report='Invalid bucket name "a b"'))
    assert failure.code == "InvalidParameter"
    assert failure.permanent is True
    assert failure.hint == SEED_GENERIC


def test_signal_errors_keep_their_failure() -> None:
    held = Failure("WrongRegion", "bucket b is in eu-west-1", True, HINTS["WrongRegion"], None)
    assert classify(PermanentError(held)) is held
    later = Failure("SlowDown", "x", False, None, 503)
    assert classify(TransientError(later)) is later
    assert issubclass(PermanentError, SignalError) and issubclass(TransientError, SignalError)


def test_transient_error_carries_the_chosen_retry_delay() -> None:
    failure = classify(client_error("SlowDown", 503))
    error = TransientError(failure, retry_in_s=4.5)
    assert error.retry_in_s == 4.5
    assert error.failure is failure
    assert str(error) == "SlowDown: PutObject: msg"


# --- hints ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("AccessDenied", SEED_ACCESS_DENIED),
        ("NoSuchBucket", SEED_NO_SUCH_BUCKET),
        ("InvalidAccessKeyId", SEED_INVALID_KEY),
        ("SignatureDoesNotMatch", SEED_SIGNATURE),
        ("PermanentRedirect", SEED_WRONG_REGION),
        ("AuthorizationHeaderMalformed", SEED_WRONG_REGION),
        ("IllegalLocationConstraintException", SEED_WRONG_REGION),
        ("WrongRegion", SEED_WRONG_REGION),
        ("Whatever", SEED_GENERIC),
        ("KMS.NotFoundException", HINTS["KMS"]),
    ],
)
def test_hint_for_uses_the_seed_troubleshooting_text(code: str, hint: str) -> None:
    assert hint_for(code) == hint


def test_own_hints_are_specific() -> None:
    assert GENERIC_HINT == SEED_GENERIC
    assert "session_token" in HINTS["ExpiredToken"]
    assert "STANDARD_IA" in HINTS["InvalidStorageClass"]
    assert "kms_key_id" in HINTS["KMS"] and "AES256" in HINTS["KMS"]
    assert "access key ID" in HINTS["NoCredentials"]
    assert "Reinstall" in hint_for("IntegrationMissing")
    assert "out of memory" in hint_for("WorkerLost")
    for hint in HINTS.values():
        assert len(hint) <= MESSAGE_MAX_CHARS


# --- messages never carry credentials ------------------------------------------------------------------------------


def test_signature_mismatch_echo_is_scrubbed() -> None:
    string_to_sign = "AWS4-HMAC-SHA256\n20260512T100000Z\n20260512/us-east-1/s3/aws4_request\n" + "ab" * 32
    exc = client_error(
        "SignatureDoesNotMatch",
        403,
        "The request signature we calculated does not match the signature you provided. Check your key and signing "
        f"method. StringToSign: {string_to_sign} CanonicalRequest: PUT /b/k ... AWSAccessKeyId {ACCESS_KEY_ID}",
        AWSAccessKeyId=ACCESS_KEY_ID,
        StringToSign=string_to_sign,
        CanonicalRequest="PUT\n/b/k\n\nhost:s3.amazonaws.com",
        SignatureProvided="f" * 64,
    )
    failure = classify(exc)
    assert failure.message == (
        "PutObject: The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )
    assert failure.hint == SEED_SIGNATURE
    text = repr(failure) + str(PermanentError(failure))
    for secret in (ACCESS_KEY_ID, "StringToSign", "CanonicalRequest", "aws4_request", "f" * 64):
        assert secret not in text


@pytest.mark.parametrize(
    "text",
    [
        f"The AWS Access Key Id you provided does not exist in our records: {ACCESS_KEY_ID}",
        f"secret {SECRET_ACCESS_KEY} leaked",
        f"aws_secret_access_key = {SECRET_ACCESS_KEY}",
        "token IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDexampleexampleexampleexampleexample== end",
        "https://b.s3.amazonaws.com/k?X-Amz-Credential=ASIAIOSFODNN7EXAMPLE%2F20260512&X-Amz-Signature=deadbeef&x=1",
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260512/us-east-1/s3/aws4_request, "
        "SignedHeaders=host, Signature=0123456789abcdef0123456789abcdef",
    ],
)
def test_scrub_removes_credentials(text: str) -> None:
    cleaned = scrub(text)
    secrets = (ACCESS_KEY_ID, "ASIAIOSFODNN7EXAMPLE", SECRET_ACCESS_KEY, "IQoJb3JpZ2lu", "deadbeef", "0123456789ab")
    for secret in secrets:
        assert secret not in cleaned
    assert "****" in cleaned


def test_messages_are_short_single_lines() -> None:
    failure = classify(client_error("InternalError", 500, "We encountered an internal error.\n" + "x " * 500))
    assert len(failure.message) <= MESSAGE_MAX_CHARS
    assert "\n" not in failure.message
    assert failure.message.endswith("...")
    assert len(classify(RuntimeError("y " * 1000)).message) <= MESSAGE_MAX_CHARS


def test_secret_in_unexpected_exception_is_scrubbed() -> None:
    failure = classify(RuntimeError(f"cannot use {ACCESS_KEY_ID}:{SECRET_ACCESS_KEY}"))
    assert ACCESS_KEY_ID not in failure.message
    assert SECRET_ACCESS_KEY not in failure.message


def test_failure_is_frozen() -> None:
    failure = classify(client_error("AccessDenied", 403))
    with pytest.raises(dataclasses.FrozenInstanceError):
        failure.code = "x"  # type: ignore[misc]


def test_an_upload_a_locked_bucket_refused_for_want_of_a_checksum_is_retried_with_one():
    aws = client_error("InvalidRequest", 400)
    aws.response["Error"]["Message"] = (
        "Content-MD5 OR x-amz-checksum- HTTP header is required for Put Object requests with Object Lock parameters"
    )
    for exc in (aws, client_error("MissingUploadObjectWithObjectLockHeaders", 400)):
        failure = classify(exc)
        assert (failure.code, failure.permanent) == ("ObjectLockChecksumRequired", False)
    assert classify(client_error("InvalidRequest", 400)).permanent  # any other InvalidRequest is the user's to fix


def test_expired_credentials_are_transient_only_when_the_fleet_refreshes_them():
    for code in ("ExpiredToken", "TokenRefreshRequired", "InvalidToken"):
        assert classify(client_error(code, 400)).permanent  # a session token the user gave: they must renew it
        renewed = classify(client_error(code, 400), refreshing_credentials=True)
        assert not renewed.permanent and renewed.hint is None
    assert classify(client_error("AccessDenied", 403), refreshing_credentials=True).permanent
