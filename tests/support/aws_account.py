"""A customer's AWS account and the fleet's own identity, on a moto_server that checks every request against IAM,
with a recording proxy in front (what went over the wire: STS forms, checksum and tagging headers).

Arranged while moto still answers everyone, then ``/moto-api/reset-auth`` turns enforcement on:

- ``fleet``: the fleet's own IAM user (its keys are the fleet processes' AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY),
  allowed to call sts:AssumeRole;
- ``role_arn``: the customer's role, whose trust policy names the fleet's user with the ExternalId ``EXTERNAL_ID``
  and whose permissions allow writing to ``bucket`` and ``locked_bucket`` (moto authorises S3 by operation name, so
  the multipart operations are listed by theirs);
- ``locked_bucket``: Object Lock with a default retention: an upload without a checksum is refused;
- ``admin``: may do anything (arranging, reading back).
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest

from tests.support.faultproxy import FaultProxy
from tests.support.s3_fixtures import (
    TEST_ACCESS_KEY_ID,
    TEST_SECRET_ACCESS_KEY,
    Credentials,
    MotoServer,
    create_bucket,
    s3_client,
)

ACCOUNT = "123456789012"
EXTERNAL_ID = "signal-ext-" + uuid.uuid4().hex
ROLE_NAME = "signal-customer-writer"
WRITE_ACTIONS = [
    "s3:PutObject",
    "s3:CreateMultipartUpload",
    "s3:UploadPart",
    "s3:CompleteMultipartUpload",
    "s3:AbortMultipartUpload",
    "s3:GetBucketLocation",
    "s3:GetObjectLockConfiguration",
]


@dataclass
class AwsAccount:
    moto: MotoServer
    proxy: FaultProxy
    admin: Credentials
    fleet: Credentials
    fleet_arn: str
    role_arn: str
    bucket: str
    locked_bucket: str
    outside_bucket: str

    @property
    def endpoint(self) -> str:
        """What the fleet talks to (STS and S3): the recording proxy in front of moto."""
        return self.proxy.endpoint_url

    def client(self, service: str) -> Any:
        return boto3.session.Session().client(
            service,
            endpoint_url=self.moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.admin.access_key_id,
            aws_secret_access_key=self.admin.secret_access_key,
        )

    def s3(self) -> Any:
        return s3_client(self.moto.endpoint, self.admin.access_key_id, self.admin.secret_access_key)

    def trust(self, external_id: str = EXTERNAL_ID, principal: str | None = None) -> None:
        """Set the role's trust policy: ``principal`` (the fleet's user) may assume it with ``external_id``."""
        self.client("iam").update_assume_role_policy(
            RoleName=ROLE_NAME, PolicyDocument=json.dumps(trust_policy(principal or self.fleet_arn, external_id))
        )

    def assume_role_calls(self) -> list[dict[str, str]]:
        """The form of every AssumeRole request that went through the proxy, in order."""
        calls = []
        for seen in list(self.proxy.seen):
            form = {k: v[0] for k, v in parse_qs(seen.body.decode("utf-8", "replace")).items()}
            if form.get("Action") == "AssumeRole":
                calls.append(form)
        return calls

    def puts(self, bucket: str) -> list[Any]:
        """Every PutObject / UploadPart the proxy forwarded to ``bucket`` (path- or virtual-style)."""
        out = []
        for seen in list(self.proxy.seen):
            host = seen.headers.get("host", "")
            path = seen.target.split("?", 1)[0]
            if seen.method == "PUT" and (path.startswith(f"/{bucket}/") or host.startswith(f"{bucket}.")):
                out.append(seen)
        return out

    def env(self) -> dict[str, str]:
        """The fleet's environment: its own identity, and STS and S3 through the proxy."""
        return {
            "AWS_ACCESS_KEY_ID": self.fleet.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.fleet.secret_access_key,
            "AWS_ENDPOINT_URL_STS": self.endpoint,
            "AWS_ENDPOINT_URL_S3": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


def trust_policy(principal: str, external_id: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": principal},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": external_id}},
            }
        ],
    }


def _user(iam: Any, name: str, statements: list[dict[str, Any]]) -> tuple[Credentials, str]:
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    iam.put_user_policy(
        UserName=name,
        PolicyName=f"{name}-policy",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}),
    )
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return Credentials(key["AccessKeyId"], key["SecretAccessKey"]), arn


@pytest.fixture
def aws_account() -> Iterator[AwsAccount]:
    with MotoServer() as moto, FaultProxy(moto.endpoint) as proxy:
        setup = dict(
            endpoint_url=moto.endpoint,
            region_name="us-east-1",
            aws_access_key_id=TEST_ACCESS_KEY_ID,
            aws_secret_access_key=TEST_SECRET_ACCESS_KEY,
        )
        iam = boto3.session.Session().client("iam", **setup)
        admin, _ = _user(iam, "signal-admin", [{"Effect": "Allow", "Action": "*", "Resource": "*"}])
        fleet, fleet_arn = _user(
            iam, "signal-fleet", [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]
        )
        s3 = s3_client(moto.endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
        bucket = create_bucket(s3, f"signal-role-{uuid.uuid4().hex[:8]}")
        outside = create_bucket(s3, f"signal-outside-{uuid.uuid4().hex[:8]}")
        locked = f"signal-locked-{uuid.uuid4().hex[:8]}"
        s3.create_bucket(Bucket=locked, ObjectLockEnabledForBucket=True)
        s3.put_object_lock_configuration(
            Bucket=locked,
            ObjectLockConfiguration={
                "ObjectLockEnabled": "Enabled",
                "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 1}},
            },
        )
        role_arn = iam.create_role(
            RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust_policy(fleet_arn, EXTERNAL_ID))
        )["Role"]["Arn"]
        iam.put_role_policy(
            RoleName=ROLE_NAME,
            PolicyName="signal-write",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Action": WRITE_ACTIONS,
                            "Resource": [f"arn:aws:s3:::{b}" for b in (bucket, locked)]
                            + [f"arn:aws:s3:::{b}/*" for b in (bucket, locked)],
                        },
                    ],
                }
            ),
        )
        request = urllib.request.Request(
            f"{moto.endpoint}/moto-api/reset-auth", data=b"0", method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # from here on IAM decides every request
            assert response.status == 200
        yield AwsAccount(moto, proxy, admin, fleet, fleet_arn, role_arn, bucket, locked, outside)
