"""workers.sink (clients, writer, bucket) against a real moto_server over HTTP, with a fault proxy for what moto does
not emulate."""

from __future__ import annotations

import base64
import gzip
import http.client
import os
import re
from collections.abc import Callable, Iterator, Mapping
from types import SimpleNamespace
from typing import Any

import botocore.exceptions
import botocore.utils
import orjson
import pytest
from botocore.stub import Stubber

from tests.support.faultproxy import Fault, FaultProxy, fail_first, random_faults
from tests.support.s3_fixtures import (
    TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
    MotoIam,
    MotoServer,
    s3_client,
)
from workers.classify import HINTS, classify
from workers.integrations.config import IntegrationConfig
from workers.settings import Settings
from workers.sink import clients, writer
from workers.sink.bucket import bucket_region, verify_bucket

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
SEED_WRONG_REGION = (
    "S3 bucket region must match the region config field. Check the bucket\u2019s actual region in the S3 console."
)


def make_cfg(
    endpoint: str | None,
    bucket: str,
    *,
    region: str = "us-east-1",
    access_key_id: str = TEST_ACCESS_KEY_ID,
    secret_access_key: str = TEST_SECRET_ACCESS_KEY,
    session_token: str | None = None,
    storage_class: str = "STANDARD",
    server_side_encryption: str | None = None,
    kms_key_id: str | None = None,
    checksums: str | None = "auto",  # the moto endpoint plays Amazon S3 here, where every body carries its MD5
) -> IntegrationConfig:
    return IntegrationConfig.model_validate(
        {
            "bucket": bucket,
            "region": region,
            "access_key_id": access_key_id,
            "secret_access_key": secret_access_key,
            "session_token": session_token,
            "prefix": "events/",
            "server_side_encryption": server_side_encryption,
            "kms_key_id": kms_key_id,
            "endpoint_url": endpoint,
            "checksums": checksums,
        }
    ).model_copy(update={"storage_class": storage_class})  # unchecked: S3 itself must refuse a bogus class


def fast_settings(**overrides: Any) -> Settings:
    return Settings(**{"s3_max_attempts": 3, "s3_connect_timeout_s": 2.0, "s3_read_timeout_s": 10.0, **overrides})


def event_lines(count: int, start: int = 0) -> list[bytes]:
    return [b'{"event_id":"e-%d","type":"track","event":"order_completed"}' % i for i in range(start, start + count)]


def in_chunks(lines: list[bytes], size: int) -> Iterator[list[bytes]]:
    for i in range(0, len(lines), size):
        yield lines[i : i + size]


def read_lines(admin: Any, bucket: str, key: str) -> list[bytes]:
    body = admin.get_object(Bucket=bucket, Key=key)["Body"].read()
    return gzip.decompress(body).splitlines()


def keys_in(admin: Any, bucket: str) -> list[str]:
    return [o["Key"] for o in admin.list_objects_v2(Bucket=bucket).get("Contents", [])]


# --- single PutObject -----------------------------------------------------------------------------------------------

KMS_KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


@pytest.mark.parametrize(
    ("storage_class", "sse", "kms_key_id"),
    [
        ("STANDARD", None, None),
        ("STANDARD_IA", "AES256", None),
        ("INTELLIGENT_TIERING", "aws:kms", KMS_KEY_ARN),
    ],
)
def test_single_put_stores_one_gzip_ndjson_object_with_its_settings(
    moto_server: MotoServer,
    s3_admin: Any,
    make_bucket: Callable[..., str],
    storage_class: str,
    sse: str | None,
    kms_key_id: str | None,
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(
        moto_server.endpoint, bucket, storage_class=storage_class, server_side_encryption=sse, kms_key_id=kms_key_id
    )
    lines = event_lines(2_500)
    key = "events/2026/05/12/10/batch-1.json.gz"

    result = writer.put_object(cfg, key, in_chunks(lines, 1_000), settings=fast_settings())

    assert result.key == key
    assert result.parts == 0
    assert result.events == 2_500
    assert result.raw_bytes == sum(len(line) + 1 for line in lines)
    head = s3_admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == result.compressed_bytes
    assert head["ETag"] == result.etag
    assert head["ContentType"] == "application/x-ndjson"
    assert head.get("StorageClass", "STANDARD") == storage_class
    assert head.get("ServerSideEncryption") == sse
    assert head.get("SSEKMSKeyId") == kms_key_id
    assert read_lines(s3_admin, bucket, key) == lines
    assert keys_in(s3_admin, bucket) == [key]


def test_put_refuses_an_object_without_events(
    moto_server: MotoServer, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(moto_server.endpoint, bucket)
    with pytest.raises(ValueError, match="without events"):
        writer.put_object(cfg, "events/empty.json.gz", iter([[]]), settings=fast_settings())
    assert keys_in(s3_admin, bucket) == []


def test_bogus_storage_class_is_a_permanent_failure(moto_server: MotoServer, make_bucket: Callable[..., str]) -> None:
    cfg = make_cfg(moto_server.endpoint, make_bucket(), storage_class="NOT_A_CLASS")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        writer.put_object(cfg, "events/k.json.gz", [event_lines(3)], settings=fast_settings())
    failure = classify(raised.value)
    assert failure.code == "InvalidStorageClass"
    assert failure.permanent
    assert failure.hint == HINTS["InvalidStorageClass"]


def test_retry_to_the_same_key_overwrites_the_one_object(
    moto_server: MotoServer, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(moto_server.endpoint, bucket)
    key = "events/2026/05/12/10/batch-2.json.gz"

    writer.put_object(cfg, key, [event_lines(10)], settings=fast_settings())
    writer.put_object(cfg, key, [event_lines(10)], settings=fast_settings())

    assert keys_in(s3_admin, bucket) == [key]
    assert read_lines(s3_admin, bucket, key) == event_lines(10)


# --- multipart ------------------------------------------------------------------------------------------------------


def incompressible_lines(total_bytes: int, line_bytes: int = 4_000) -> list[bytes]:
    """JSON lines of base64 noise: gzip barely shrinks them, so the compressed body stays large."""
    count = total_bytes // line_bytes
    noise = base64.b64encode(os.urandom(count * line_bytes * 3 // 4))
    return [b'{"n":"%s"}' % noise[i * line_bytes : (i + 1) * line_bytes] for i in range(count)]


MULTIPART = {"multipart_threshold_bytes": 5 * MiB, "multipart_part_bytes": 5 * MiB}


def test_large_batch_is_uploaded_in_parts_and_reads_back_identical(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket, storage_class="STANDARD_IA", server_side_encryption="AES256")
    lines = incompressible_lines(15 * MiB)
    key = "events/2026/05/12/10/big.json.gz"

    result = writer.put_object(cfg, key, in_chunks(lines, 250), settings=fast_settings(**MULTIPART))

    assert result.compressed_bytes > 10 * MiB
    assert result.parts == -(-result.compressed_bytes // (5 * MiB))
    assert result.etag.strip('"').endswith(f"-{result.parts}")
    assert result.events == len(lines)
    head = s3_admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == result.compressed_bytes
    assert head["ContentType"] == "application/x-ndjson"
    assert head["StorageClass"] == "STANDARD_IA"
    assert head["ServerSideEncryption"] == "AES256"
    assert read_lines(s3_admin, bucket, key) == lines
    assert keys_in(s3_admin, bucket) == [key]

    # Every part but the last is exactly one part size, and each carries the MD5 of its bytes.
    uploads = [seen for seen in fault_proxy.seen if seen.method == "PUT" and "partNumber=" in seen.target]
    assert [seen.body_bytes for seen in uploads[:-1]] == [5 * MiB] * (result.parts - 1)
    assert 0 < uploads[-1].body_bytes <= 5 * MiB
    assert all(seen.headers["content-md5"] == seen.body_md5 for seen in uploads)
    assert not any(seen.method == "PUT" and "partNumber=" not in seen.target for seen in fault_proxy.seen)


def test_single_put_carries_the_md5_of_its_body(fault_proxy: FaultProxy, make_bucket: Callable[..., str]) -> None:
    cfg = make_cfg(fault_proxy.endpoint_url, make_bucket())
    result = writer.put_object(cfg, "events/k.json.gz", [event_lines(100)], settings=fast_settings())
    (put,) = [seen for seen in fault_proxy.seen if seen.method == "PUT"]
    assert put.body_bytes == result.compressed_bytes
    assert put.headers["content-md5"] == put.body_md5
    assert put.headers["content-type"] == "application/x-ndjson"


# --- Parquet variant ------------------------------------------------------------------------------------------------


def parquet_lines(count: int, *, noise_bytes: int = 0) -> list[bytes]:
    noise = base64.b64encode(os.urandom(count * noise_bytes * 3 // 4 + 3)) if noise_bytes else b""
    return [
        b'{"event_id":"e-%d","type":"track","event":"order_completed","anonymous_id":"a-%d",'
        b'"received_at":"2026-05-12T10:00:00.000Z","properties":{"n":"%s"},"integration_id":"i"}'
        % (i, i % 7, noise[i * noise_bytes : (i + 1) * noise_bytes])
        for i in range(count)
    ]


def read_parquet(admin: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    import io

    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(admin.get_object(Bucket=bucket, Key=key)["Body"].read())).to_pylist()


def test_parquet_variant_single_put_with_its_settings_and_md5(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(
        fault_proxy.endpoint_url,
        bucket,
        storage_class="STANDARD_IA",
        server_side_encryption="aws:kms",
        kms_key_id=KMS_KEY_ARN,
    )
    lines = parquet_lines(2_500)
    key = "events/2026/05/12/10/batch-1.parquet"
    result = writer.put_object(cfg, key, in_chunks(lines, 1_000), settings=fast_settings(), variant="parquet")
    assert result.parts == 0 and result.events == 2_500
    assert result.raw_bytes == sum(len(line) + 1 for line in lines)
    head = s3_admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == result.compressed_bytes and head["ETag"] == result.etag
    assert head["ContentType"] == "application/vnd.apache.parquet"
    assert head["StorageClass"] == "STANDARD_IA" and head["SSEKMSKeyId"] == KMS_KEY_ARN
    (put,) = [seen for seen in fault_proxy.seen if seen.method == "PUT"]
    assert put.headers["content-md5"] == put.body_md5 and put.headers["content-type"] == head["ContentType"]
    rows = read_parquet(s3_admin, bucket, key)
    assert [r["event_id"] for r in rows] == [f"e-{i}" for i in range(2_500)]
    assert {r["properties"] for r in rows} == {'{"n":""}'}
    assert keys_in(s3_admin, bucket) == [key]


def test_parquet_variant_large_batch_goes_multipart_and_reads_back_row_by_row(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket)
    lines = parquet_lines(12_000, noise_bytes=1_500)  # base64 noise: zstd keeps ~3/4 of it
    key = "events/2026/05/12/10/big.parquet"
    result = writer.put_object(
        cfg, key, in_chunks(lines, 1_000), settings=fast_settings(**MULTIPART), variant="parquet"
    )
    assert result.compressed_bytes > 10 * MiB
    assert result.parts == -(-result.compressed_bytes // (5 * MiB))
    head = s3_admin.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == result.compressed_bytes
    assert head["ContentType"] == "application/vnd.apache.parquet"
    uploads = [seen for seen in fault_proxy.seen if seen.method == "PUT" and "partNumber=" in seen.target]
    assert len(uploads) == result.parts and all(seen.headers["content-md5"] == seen.body_md5 for seen in uploads)
    rows = read_parquet(s3_admin, bucket, key)
    assert len(rows) == len(lines)
    for line, row in zip(lines, rows, strict=True):
        event = orjson.loads(line)
        assert row["event_id"] == event["event_id"] and row["anonymous_id"] == event["anonymous_id"]
        assert orjson.loads(row["properties"]) == event["properties"]
    assert keys_in(s3_admin, bucket) == [key]


def test_failed_multipart_upload_is_aborted_and_leaves_nothing(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket)
    second_part = re.compile(r"[?&]partNumber=2(&|$)")

    def plan(method: str, target: str, headers: Mapping[str, str]) -> Fault | None:
        if method == "PUT" and second_part.search(target):
            return Fault.error(400, "InvalidArgument", "Part rejected.")
        return None

    fault_proxy.set_plan(plan)
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        chunks = in_chunks(incompressible_lines(11 * MiB), 250)
        writer.put_object(cfg, "events/big.json.gz", chunks, settings=fast_settings(**MULTIPART))

    assert raised.value.response["Error"]["Code"] == "InvalidArgument"
    assert fault_proxy.faults == 1
    assert any(seen.method == "DELETE" and "uploadId=" in seen.target for seen in fault_proxy.seen)
    assert s3_admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert keys_in(s3_admin, bucket) == []


def test_part_sizes_grow_to_fit_ten_thousand_parts() -> None:
    assert writer.part_bytes_for(1, 8 * MiB) == 8 * MiB
    assert writer.part_bytes_for(1_000, 8 * MiB) == 8 * MiB
    assert writer.part_bytes_for(1_001, 8 * MiB) == 16 * MiB
    assert writer.part_bytes_for(1, 1 * MiB) == 5 * MiB
    assert writer.part_bytes_for(10_000, 1024 * MiB) == 5 * 1024 * MiB
    with pytest.raises(ValueError):
        writer.part_bytes_for(10_001, 8 * MiB)


# --- faults: transient errors are retried by botocore, then classified --------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(500, "InternalError", "We encountered an internal error. Please try again."),
        Fault.error(503, "SlowDown", "Please reduce your request rate."),
    ],
    ids=["500-InternalError", "503-SlowDown"],
)
def test_server_errors_are_retried_then_classified_transient(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str], fault: Fault
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket)
    fault_proxy.set_plan(lambda method, target, headers: fault if method == "PUT" else None)

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        writer.put_object(cfg, "events/k.json.gz", [event_lines(5)], settings=fast_settings())

    assert fault_proxy.faults == 3  # s3_max_attempts
    failure = classify(raised.value)
    assert failure.code == fault.code
    assert failure.permanent is False
    assert failure.http_status == fault.status
    assert keys_in(s3_admin, bucket) == []


@pytest.mark.parametrize(
    "fault",
    [Fault.error(503, "SlowDown", "Please reduce your request rate."), Fault.drop()],
    ids=["503-SlowDown", "drop"],
)
def test_botocore_retries_through_a_few_faults(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str], fault: Fault
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket)
    fault_proxy.set_plan(fail_first(2, fault, method="PUT"))

    writer.put_object(cfg, "events/k.json.gz", [event_lines(5)], settings=fast_settings())

    assert fault_proxy.faults == 2
    assert keys_in(s3_admin, bucket) == ["events/k.json.gz"]
    assert read_lines(s3_admin, bucket, "events/k.json.gz") == event_lines(5)


def test_dropped_connections_are_classified_transient(fault_proxy: FaultProxy, make_bucket: Callable[..., str]) -> None:
    cfg = make_cfg(fault_proxy.endpoint_url, make_bucket())
    fault_proxy.set_plan(lambda method, target, headers: Fault.drop())
    with pytest.raises(botocore.exceptions.BotoCoreError) as raised:
        writer.put_object(cfg, "events/k.json.gz", [event_lines(5)], settings=fast_settings())
    assert fault_proxy.faults == 3
    failure = classify(raised.value)
    assert failure.permanent is False
    assert failure.code == "ConnectionClosedError"


def test_random_faults_are_survived_with_enough_attempts(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    cfg = make_cfg(fault_proxy.endpoint_url, bucket)
    fault_proxy.set_plan(random_faults(rate=0.25, seed=7))
    settings = fast_settings(s3_max_attempts=10)
    for i in range(20):
        writer.put_object(cfg, f"events/{i:02d}.json.gz", [event_lines(3, start=i)], settings=settings)
    fault_proxy.set_plan(None)
    assert fault_proxy.faults > 0
    assert sorted(keys_in(s3_admin, bucket)) == [f"events/{i:02d}.json.gz" for i in range(20)]


def test_fault_proxy_forwards_chunked_bodies_unchanged(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket()
    conn = http.client.HTTPConnection("127.0.0.1", fault_proxy.port, timeout=10)
    try:
        conn.putrequest("PUT", f"/{bucket}/chunked")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for piece in (b"abc", b"defg"):
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        response = conn.getresponse()
        response.read()
    finally:
        conn.close()
    assert response.status == 200
    assert fault_proxy.seen[-1].body_bytes == len(b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
    assert s3_admin.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"abcdefg"


# --- wrong region ---------------------------------------------------------------------------------------------------

_SCOPE_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request")


def region_enforcing_plan(bucket_region: str) -> Callable[[str, str, Mapping[str, str]], Fault | None]:
    """S3's answer to a request signed for another region than the bucket's: 301 PermanentRedirect naming the right
    region (GetBucketLocation is answered from any region)."""

    def plan(method: str, target: str, headers: Mapping[str, str]) -> Fault | None:
        match = _SCOPE_REGION.search(headers.get("Authorization", ""))
        if match is None or match.group(1) == bucket_region or target.endswith("?location"):
            return None
        return Fault.error(
            301,
            "PermanentRedirect",
            "The bucket you are attempting to access must be addressed using the specified endpoint. "
            "Please send all future requests to this endpoint.",
            headers={"x-amz-bucket-region": bucket_region},
            fields={"Endpoint": f"s3.{bucket_region}.amazonaws.com"},
        )

    return plan


def test_region_redirector_is_removed_from_our_clients_only(moto_server: MotoServer) -> None:
    cfg = make_cfg(moto_server.endpoint, "any-bucket")
    ours = clients.client_for(cfg, settings=fast_settings())
    plain = s3_client(moto_server.endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)

    def redirector_handlers(client: Any) -> list[Any]:
        handlers = client.meta.events._emitter._handlers.prefix_search("needs-retry.s3.PutObject")
        return [h for h in handlers if isinstance(getattr(h, "__self__", None), botocore.utils.S3RegionRedirectorv2)]

    assert redirector_handlers(ours) == []
    assert len(redirector_handlers(plain)) == 1


def test_wrong_region_surfaces_as_permanent_redirect_with_the_region_hint(
    fault_proxy: FaultProxy, s3_admin: Any, make_bucket: Callable[..., str]
) -> None:
    bucket = make_bucket(region="eu-west-1")
    fault_proxy.set_plan(region_enforcing_plan("eu-west-1"))
    # The emulation is faithful: botocore's own redirector follows it and the plain client's write lands.
    plain = s3_client(fault_proxy.endpoint_url, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, region="us-east-1")
    plain.put_object(Bucket=bucket, Key="followed", Body=b"x")
    assert fault_proxy.faults == 1

    cfg = make_cfg(fault_proxy.endpoint_url, bucket, region="us-east-1")
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        writer.put_object(cfg, "events/k.json.gz", [event_lines(5)], settings=fast_settings())

    assert fault_proxy.faults == 2  # one answer, not followed, not retried
    failure = classify(raised.value)
    assert failure.code == "PermanentRedirect"
    assert failure.permanent is True
    assert failure.http_status == 301
    assert failure.hint == SEED_WRONG_REGION
    assert keys_in(s3_admin, bucket) == ["followed"]

    wrong = verify_bucket(cfg, settings=fast_settings())
    assert wrong is not None
    assert wrong.code == "WrongRegion"
    assert wrong.permanent is True
    assert "eu-west-1" in wrong.message and "us-east-1" in wrong.message
    assert wrong.hint == SEED_WRONG_REGION

    right = make_cfg(fault_proxy.endpoint_url, bucket, region="eu-west-1")
    assert verify_bucket(right, settings=fast_settings()) is None
    writer.put_object(right, "events/k.json.gz", [event_lines(5)], settings=fast_settings())
    assert sorted(keys_in(s3_admin, bucket)) == ["events/k.json.gz", "followed"]


# --- bucket check ---------------------------------------------------------------------------------------------------


def test_verify_bucket(moto_server: MotoServer, make_bucket: Callable[..., str]) -> None:
    here = make_bucket()
    there = make_bucket(region="ap-southeast-2")
    settings = fast_settings()

    assert bucket_region(make_cfg(moto_server.endpoint, here), settings=settings) == "us-east-1"
    assert verify_bucket(make_cfg(moto_server.endpoint, here), settings=settings) is None
    assert bucket_region(make_cfg(moto_server.endpoint, there), settings=settings) == "ap-southeast-2"
    assert verify_bucket(make_cfg(moto_server.endpoint, there, region="ap-southeast-2"), settings=settings) is None

    wrong = verify_bucket(make_cfg(moto_server.endpoint, there), settings=settings)
    assert wrong is not None
    assert (wrong.code, wrong.permanent, wrong.hint) == ("WrongRegion", True, SEED_WRONG_REGION)
    assert wrong.message == f"bucket {there} is in ap-southeast-2, but the configured region is us-east-1"

    missing = verify_bucket(make_cfg(moto_server.endpoint, "signal-test-does-not-exist"), settings=settings)
    assert missing is not None
    assert (missing.code, missing.permanent, missing.http_status) == ("NoSuchBucket", True, 404)
    assert missing.hint == HINTS["NoSuchBucket"]


@pytest.mark.parametrize(("location", "region"), [(None, "us-east-1"), ("", "us-east-1"), ("EU", "eu-west-1")])
def test_bucket_region_maps_legacy_locations(location: str | None, region: str) -> None:
    cfg = make_cfg("http://127.0.0.1:9", "legacy-bucket")
    client = clients.client_for(cfg, settings=fast_settings())
    with Stubber(client) as stub:
        answer = {"LocationConstraint": location} if location is not None else {}
        stub.add_response("get_bucket_location", answer, {"Bucket": "legacy-bucket"})
        assert bucket_region(cfg, settings=fast_settings()) == region


# --- IAM enforcement (moto checks every request against IAM users and policies) ----------------------------------


def iam_cfg(
    moto_iam: MotoIam,
    *,
    bucket: str | None = None,
    access_key_id: str | None = None,
    secret: str | None = None,
    admin: bool = False,
) -> SimpleNamespace:
    creds = moto_iam.admin if admin else moto_iam.limited
    return make_cfg(
        moto_iam.endpoint,
        bucket or moto_iam.bucket,
        access_key_id=access_key_id or creds.access_key_id,
        secret_access_key=secret or creds.secret_access_key,
    )


def test_seed_policy_allows_the_write_and_the_bucket_check(moto_iam: MotoIam) -> None:
    cfg = iam_cfg(moto_iam)
    result = writer.put_object(cfg, "events/2026/05/12/10/ok.json.gz", [event_lines(4)], settings=fast_settings())
    assert result.events == 4
    assert verify_bucket(cfg, settings=fast_settings()) is None
    admin = s3_client(moto_iam.endpoint, moto_iam.admin.access_key_id, moto_iam.admin.secret_access_key)
    assert read_lines(admin, moto_iam.bucket, "events/2026/05/12/10/ok.json.gz") == event_lines(4)


def _iam_failure_cases(moto_iam: MotoIam) -> dict[str, SimpleNamespace]:
    return {
        "SignatureDoesNotMatch": iam_cfg(moto_iam, secret="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        "InvalidAccessKeyId": iam_cfg(moto_iam, access_key_id="AKIAIOSFODNN7EXAMPLE"),
        "AccessDenied": iam_cfg(moto_iam, bucket=moto_iam.other_bucket),
        "NoSuchBucket": iam_cfg(moto_iam, bucket="signal-iam-does-not-exist", admin=True),
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [("SignatureDoesNotMatch", 403), ("InvalidAccessKeyId", 403), ("AccessDenied", 403), ("NoSuchBucket", 404)],
)
def test_auth_failures_are_permanent_with_the_seed_hint(moto_iam: MotoIam, code: str, status: int) -> None:
    cfg = _iam_failure_cases(moto_iam)[code]
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        writer.put_object(cfg, "events/k.json.gz", [event_lines(2)], settings=fast_settings())

    failure = classify(raised.value)
    assert failure.code == code
    assert failure.permanent is True
    assert failure.http_status == status
    assert failure.hint == HINTS[code]
    secret = cfg.secret_access_key.get_secret_value()
    assert secret not in failure.message and cfg.access_key_id.get_secret_value() not in failure.message
    assert "StringToSign" not in failure.message and "CanonicalRequest" not in failure.message

    checked = verify_bucket(cfg, settings=fast_settings())
    assert checked is not None
    assert checked.permanent is True
    expected_check = "AccessDenied" if code == "AccessDenied" else code  # GetBucketLocation on the other bucket
    assert checked.code == expected_check


# --- client cache ---------------------------------------------------------------------------------------------------


def test_clients_are_cached_per_credentials_region_and_endpoint(moto_server: MotoServer) -> None:
    settings = fast_settings()
    cfg = make_cfg(moto_server.endpoint, "bkt", secret_access_key="secret-one-" + "x" * 29)
    same = make_cfg(moto_server.endpoint, "other-bucket", secret_access_key="secret-one-" + "x" * 29)
    other_secret = make_cfg(moto_server.endpoint, "bkt", secret_access_key="secret-two-" + "x" * 29)
    other_region = make_cfg(moto_server.endpoint, "bkt", region="eu-west-1", secret_access_key="secret-one-" + "x" * 29)

    client = clients.client_for(cfg, settings=settings)
    assert clients.client_for(same, settings=settings) is client
    assert clients.client_for(other_secret, settings=settings) is not client
    assert clients.client_for(other_region, settings=settings) is not client
    assert clients.client_for(cfg, settings=fast_settings(s3_max_attempts=5)) is not client

    assert "secret-one" not in repr(clients._clients.keys())
    retried = clients.client_for(cfg, settings=fast_settings(s3_max_attempts=5))
    clients.evict(same)
    assert clients.client_for(cfg, settings=settings) is not client
    assert clients.client_for(cfg, settings=fast_settings(s3_max_attempts=5)) is not retried
    assert clients.client_for(other_secret, settings=settings) is clients.client_for(other_secret, settings=settings)


def test_client_cache_is_bounded() -> None:
    settings = fast_settings()
    for i in range(clients.CLIENT_CACHE_SIZE + 5):
        clients.client_for(make_cfg("http://127.0.0.1:9", "bkt", access_key_id=f"key-{i}"), settings=settings)
    assert len(clients._clients) == clients.CLIENT_CACHE_SIZE


def test_client_configuration(moto_server: MotoServer) -> None:
    settings = fast_settings(s3_max_attempts=4, s3_connect_timeout_s=1.5, s3_read_timeout_s=7.0)
    custom = clients.client_for(make_cfg(moto_server.endpoint, "bkt", checksums=None), settings=settings)
    config = custom.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}
    assert (config.connect_timeout, config.read_timeout) == (1.5, 7.0)
    assert config.max_pool_connections == 10
    assert config.signature_version == "s3v4"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert custom.meta.endpoint_url == moto_server.endpoint

    aws = clients.client_for(make_cfg(None, "bkt", region="eu-central-1", checksums=None), settings=settings)
    assert aws.meta.region_name == "eu-central-1"
    assert aws.meta.config.request_checksum_calculation == "when_supported"
