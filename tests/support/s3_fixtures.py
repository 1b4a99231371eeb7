"""pytest fixtures for S3: a real moto_server over HTTP, a fault proxy in front of it, and an IAM-enforcing moto.

Listed in ``tests/conftest.py`` ``pytest_plugins``; defines fixtures and the small process helpers they use.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.faultproxy import FaultProxy

TEST_ACCESS_KEY_ID = "testing"
TEST_SECRET_ACCESS_KEY = "testing"
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def moto_server_binary() -> Path:
    binary = Path(sys.executable).parent / "moto_server"
    if not binary.exists():
        raise RuntimeError(f"moto_server not found next to {sys.executable}: install moto[server] into the venv")
    return binary


class MotoServer:
    """``moto_server -H 127.0.0.1 -p <free port>`` as a subprocess; ``env`` adds variables such as
    ``INITIAL_NO_AUTH_ACTION_COUNT`` for IAM enforcement."""

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env or {}
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        for _ in range(3):  # another process may grab the free port between probe and bind
            self.port = free_port()
            env = {**os.environ, **self.env}
            self.process = subprocess.Popen(
                [str(moto_server_binary()), "-H", "127.0.0.1", "-p", str(self.port)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError("moto_server did not start")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=1) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def reset_moto(endpoint: str) -> None:
    """Forget every bucket, object and IAM entity of the moto_server at ``endpoint``."""
    request = urllib.request.Request(f"{endpoint}/moto-api/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def s3_client(endpoint: str, access_key_id: str, secret_access_key: str, region: str = "us-east-1") -> Any:
    """A plain boto3 S3 client (region redirector and all), for arranging and inspecting test state."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        config=Config(request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )


def unique_bucket(prefix: str = "signal-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_bucket(client: Any, name: str, region: str = "us-east-1") -> str:
    if region == "us-east-1":
        client.create_bucket(Bucket=name)
    else:
        client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})
    return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """A plain moto_server (no auth) shared by the session; tests use their own buckets."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def s3_admin(moto_server: MotoServer) -> Any:
    return s3_client(moto_server.endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)


def arrow_dataset(
    endpoint: str, bucket: str, prefix: str, variant: str, names: tuple[str, ...], partitioning: Any
) -> Any:
    """The objects under ``prefix`` as one pyarrow dataset: the string columns ``names`` (NDJSON or Parquet, as
    ``variant`` says) plus the partition columns of the key."""
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.json as pajson

    columns = pa.schema([(name, pa.string()) for name in names])
    fmt: Any = ds.ParquetFileFormat()
    if variant == "default":
        fmt = ds.JsonFileFormat(
            parse_options=pajson.ParseOptions(explicit_schema=columns, unexpected_field_behavior="ignore")
        )
    return ds.dataset(
        f"{bucket}/{prefix.rstrip('/')}",
        filesystem=arrow_s3(endpoint),
        format=fmt,
        partitioning=partitioning,
        schema=pa.schema([*columns, *partitioning.schema]),
    )


def arrow_s3(endpoint: str) -> Any:
    """pyarrow's S3 filesystem on the test moto_server (as Athena, Spark or DuckDB would read the bucket)."""
    from urllib.parse import urlsplit

    import pyarrow.fs as pafs

    url = urlsplit(endpoint)
    return pafs.S3FileSystem(
        access_key=TEST_ACCESS_KEY_ID,
        secret_key=TEST_SECRET_ACCESS_KEY,
        region="us-east-1",
        endpoint_override=url.netloc,
        scheme=url.scheme,
    )


@pytest.fixture
def make_bucket(s3_admin: Any) -> Callable[..., str]:
    """``make_bucket(region="us-east-1", name=None) -> name``: a fresh bucket on the session moto_server."""

    def make(region: str = "us-east-1", name: str | None = None) -> str:
        return create_bucket(s3_admin, name or unique_bucket(), region)

    return make


@pytest.fixture
def fault_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    """A FaultProxy in front of the session moto_server; forwards everything until the test sets a plan."""
    with FaultProxy(moto_server.endpoint) as proxy:
        yield proxy


# --- IAM enforcement ------------------------------------------------------------------------------------------------

# Requests served without auth while bootstrapping: create the admin user, its policy and its access key.
_BOOTSTRAP_REQUESTS = 3


def seed_policy(bucket: str) -> dict[str, Any]:
    """The IAM policy of the seed documentation, for ``bucket``."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": f"arn:aws:s3:::{bucket}/*"},
            {"Effect": "Allow", "Action": ["s3:GetBucketLocation"], "Resource": f"arn:aws:s3:::{bucket}"},
        ],
    }


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str


@dataclass(frozen=True)
class MotoIam:
    """A moto_server that checks every request against IAM: ``bucket`` exists, ``other_bucket`` exists outside the
    limited user's policy, ``admin`` may do anything, ``limited`` holds exactly the seed's policy on ``bucket``."""

    endpoint: str
    bucket: str
    other_bucket: str
    admin: Credentials
    limited: Credentials


def _iam_client(endpoint: str, creds: Credentials | None = None) -> Any:
    creds = creds or Credentials(TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
    return boto3.session.Session().client(
        "iam",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds.access_key_id,
        aws_secret_access_key=creds.secret_access_key,
    )


def _user_with_policy(iam: Any, name: str, policy: dict[str, Any]) -> Credentials:
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName=f"{name}-policy", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def moto_iam() -> Iterator[MotoIam]:
    admin_policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
    with MotoServer(env={"INITIAL_NO_AUTH_ACTION_COUNT": str(_BOOTSTRAP_REQUESTS)}) as server:
        admin = _user_with_policy(_iam_client(server.endpoint), "signal-admin", admin_policy)
        # From here on every request is authenticated: the rest is arranged with the admin key.
        s3 = s3_client(server.endpoint, admin.access_key_id, admin.secret_access_key)
        bucket = create_bucket(s3, unique_bucket("signal-iam"))
        other_bucket = create_bucket(s3, unique_bucket("signal-other"))
        limited = _user_with_policy(_iam_client(server.endpoint, admin), "signal-s3", seed_policy(bucket))
        yield MotoIam(server.endpoint, bucket, other_bucket, admin, limited)
