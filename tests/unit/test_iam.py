"""The least-privilege IAM policy of a destination."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

import pytest

from workers.integrations.config import parse_config
from workers.sink.iam import escape_resource, iam_policy, partition_of

KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# The policy of the destination's setup guide, verbatim.
SEED_POLICY = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": "arn:aws:s3:::datafly-events-production/*"},
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": "arn:aws:s3:::datafly-events-production",
        },
    ],
}


@dataclass(frozen=True)
class Destination:
    bucket: str = "datafly-events-production"
    prefix: str = ""
    region: str = "us-east-1"
    server_side_encryption: str | None = None
    kms_key_id: str | None = None
    object_tags: dict[str, str] = dataclasses.field(default_factory=dict)


def test_objects_tagged_by_the_integration_need_put_object_tagging_too() -> None:
    tagged = iam_policy(Destination(prefix="events/", object_tags={"team": "analytics"}), multipart=False)
    assert tagged["Statement"][0]["Action"] == ["s3:PutObject", "s3:PutObjectTagging"]
    assert tagged["Statement"][0]["Resource"] == "arn:aws:s3:::datafly-events-production/events/*"
    assert "s3:PutObjectTagging" not in str(iam_policy(Destination(prefix="events/")))


def test_no_prefix_single_put_is_exactly_the_documented_policy() -> None:
    assert iam_policy(Destination(), multipart=False) == SEED_POLICY


def test_multipart_adds_abort_and_list_parts_on_the_same_objects() -> None:
    assert iam_policy(Destination(prefix="events/")) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
                "Resource": "arn:aws:s3:::datafly-events-production/events/*",
            },
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation"],
                "Resource": "arn:aws:s3:::datafly-events-production",
            },
        ],
    }


def test_multipart_is_the_default() -> None:
    assert iam_policy(Destination()) == iam_policy(Destination(), multipart=True)


def test_prefix_narrows_the_object_resource() -> None:
    policy = iam_policy(Destination(prefix="a/b/"), multipart=False)
    assert policy["Statement"][0]["Resource"] == "arn:aws:s3:::datafly-events-production/a/b/*"
    assert policy["Statement"][1]["Resource"] == "arn:aws:s3:::datafly-events-production"


def test_wildcards_in_a_prefix_are_literal() -> None:
    policy = iam_policy(Destination(prefix="a*b?$/"), multipart=False)
    assert policy["Statement"][0]["Resource"] == "arn:aws:s3:::datafly-events-production/a${*}b${?}${$}/*"
    assert escape_resource("plain/") == "plain/"


@pytest.mark.parametrize(
    ("region", "partition"),
    [
        ("us-east-1", "aws"),
        ("eu-west-1", "aws"),
        ("cn-north-1", "aws-cn"),
        ("cn-northwest-1", "aws-cn"),
        ("us-gov-west-1", "aws-us-gov"),
        ("us-gov-east-1", "aws-us-gov"),
    ],
)
def test_partition_follows_the_region(region: str, partition: str) -> None:
    assert partition_of(region) == partition
    policy = iam_policy(Destination(region=region, prefix="p/"))
    assert policy["Statement"][0]["Resource"] == f"arn:{partition}:s3:::datafly-events-production/p/*"
    assert policy["Statement"][1]["Resource"] == f"arn:{partition}:s3:::datafly-events-production"


@pytest.mark.parametrize("sse", [None, "AES256"])
def test_no_kms_statement_without_aws_kms(sse: str | None) -> None:
    policy = iam_policy(Destination(server_side_encryption=sse))
    assert len(policy["Statement"]) == 2
    assert "kms" not in json.dumps(policy)


def test_kms_statement_with_a_key_arn() -> None:
    policy = iam_policy(Destination(prefix="events/", server_side_encryption="aws:kms", kms_key_id=KEY_ARN))
    assert len(policy["Statement"]) == 3
    assert policy["Statement"][2] == {
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": KEY_ARN,
    }


def test_kms_statement_with_an_alias_arn_is_limited_to_keys_with_that_alias() -> None:
    alias_arn = "arn:aws-cn:kms:cn-north-1:111122223333:alias/signal-events"
    policy = iam_policy(Destination(region="cn-north-1", server_side_encryption="aws:kms", kms_key_id=alias_arn))
    assert policy["Statement"][2] == {
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": "arn:aws-cn:kms:cn-north-1:111122223333:key/*",
        "Condition": {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/signal-events"]}},
    }


def test_kms_statement_with_a_bare_alias_or_key_id() -> None:
    alias = iam_policy(Destination(region="us-gov-west-1", server_side_encryption="aws:kms", kms_key_id="alias/x"))
    assert alias["Statement"][2]["Resource"] == "arn:aws-us-gov:kms:us-gov-west-1:*:key/*"
    assert alias["Statement"][2]["Condition"] == {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/x"]}}
    key_id = "1234abcd-12ab-34cd-56ef-1234567890ab"
    bare = iam_policy(Destination(region="eu-west-1", server_side_encryption="aws:kms", kms_key_id=key_id))
    assert bare["Statement"][2]["Resource"] == f"arn:aws:kms:eu-west-1:*:key/{key_id}"
    assert "Condition" not in bare["Statement"][2]


def test_aws_kms_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="kms_key_id"):
        iam_policy(Destination(server_side_encryption="aws:kms"))


def test_works_with_an_integration_config_and_dumps_as_json() -> None:
    cfg = parse_config(
        {
            "bucket": "datafly-events-production",
            "region": "eu-central-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "prefix": "events/",
            "server_side_encryption": "aws:kms",
            "kms_key_id": KEY_ARN,
        }
    )
    text = json.dumps(iam_policy(cfg), indent=2)
    assert json.loads(text)["Statement"][0]["Resource"] == "arn:aws:s3:::datafly-events-production/events/*"
    assert "AKIA" not in text and "EXAMPLEKEY" not in text
