"""The least-privilege IAM policy for one destination: what the uploader calls, on exactly its objects.

- ``s3:PutObject`` on ``<bucket>/<prefix>*``: single PUTs, and CreateMultipartUpload / UploadPart /
  CompleteMultipartUpload, which IAM authorises as ``s3:PutObject``.
- ``s3:AbortMultipartUpload`` and ``s3:ListMultipartUploadParts`` on the same objects when multipart uploads are used
  (an abandoned upload is aborted so its parts stop costing storage).
- ``s3:GetBucketLocation`` on the bucket: the region check behind the "wrong region" hint.
- ``s3:PutObjectTagging`` on the same objects when the integration tags them (``object_tags``).
- With ``server_side_encryption == "aws:kms"``: ``kms:GenerateDataKey`` (every encrypted write) and ``kms:Decrypt``
  (S3 decrypts the data key to complete a multipart upload) on the configured key.

- The ``iceberg`` variant also reads and deletes (its metadata, manifests and data files: commits, compaction, removal
  of orphans) and lists the table's folder: ``s3:GetObject``, ``s3:DeleteObject`` on the same objects,
  ``s3:ListBucket`` on the bucket limited to the prefix; and with ``iceberg_catalog`` glue, the Glue actions of a
  table's life (``GLUE_ACTIONS``) on the catalog, its database and its table.

With no prefix, no multipart and no KMS the result is exactly the policy shown in the destination's setup guide.
A role the fleet assumes also needs a trust policy naming the fleet (``workers.sink.credentials.trust_policy``).
"""

from __future__ import annotations

import re
from typing import Any, Protocol

POLICY_VERSION = "2012-10-17"
MULTIPART_ACTIONS: tuple[str, ...] = ("s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
KMS_ACTIONS: tuple[str, ...] = ("kms:GenerateDataKey", "kms:Decrypt")
ICEBERG_OBJECT_ACTIONS: tuple[str, ...] = ("s3:GetObject", "s3:DeleteObject")
GLUE_ACTIONS: tuple[str, ...] = (
    "glue:GetDatabase",
    "glue:CreateDatabase",
    "glue:GetTable",
    "glue:CreateTable",
    "glue:UpdateTable",
)

_KMS_ARN_RE = re.compile(
    r"arn:(?P<partition>[a-z-]+):kms:(?P<region>[a-z0-9-]+):(?P<account>[0-9]{12}):(?P<kind>key|alias)/(?P<name>.+)"
)


class _Destination(Protocol):
    @property
    def bucket(self) -> str: ...

    @property
    def prefix(self) -> str: ...

    @property
    def region(self) -> str: ...

    @property
    def server_side_encryption(self) -> str | None: ...

    @property
    def kms_key_id(self) -> str | None: ...

    @property
    def object_tags(self) -> dict[str, str]: ...


def partition_of(region: str) -> str:
    """The ARN partition of a region: ``aws-cn`` for ``cn-*``, ``aws-us-gov`` for ``us-gov-*``, else ``aws``."""
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


def escape_resource(text: str) -> str:
    """A literal for an IAM resource ARN: ``*``, ``?`` and ``$`` written as ``${*}``, ``${?}``, ``${$}``.

    Without this a prefix such as ``a*/`` would grant every key starting with ``a``.
    """
    return "".join("${" + ch + "}" if ch in "*?$" else ch for ch in text)


def iam_policy(cfg: _Destination, *, multipart: bool = True, variant: str = "default") -> dict[str, Any]:
    """The policy document for the destination ``cfg`` (a dict; ``json.dumps(policy, indent=2)`` to show it)."""
    partition = partition_of(cfg.region)
    bucket = escape_resource(cfg.bucket)
    iceberg = variant == "iceberg"
    object_actions = [
        "s3:PutObject",
        *(MULTIPART_ACTIONS if multipart else ()),
        *(ICEBERG_OBJECT_ACTIONS if iceberg else ()),
    ]
    if cfg.object_tags:
        object_actions.append("s3:PutObjectTagging")  # x-amz-tagging on PutObject and CreateMultipartUpload
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": object_actions,
            "Resource": f"arn:{partition}:s3:::{bucket}/{escape_resource(cfg.prefix)}*",
        },
        {
            "Effect": "Allow",
            "Action": ["s3:GetBucketLocation"],
            "Resource": f"arn:{partition}:s3:::{bucket}",
        },
    ]
    if iceberg:
        statements.append(
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": f"arn:{partition}:s3:::{bucket}",
                "Condition": {"StringLike": {"s3:prefix": [f"{cfg.prefix}*"]}},
            }
        )
        if getattr(cfg, "iceberg_catalog", "sql") == "glue":
            statements.append(_glue_statement(cfg, partition))
    if cfg.server_side_encryption == "aws:kms":
        if not cfg.kms_key_id:
            raise ValueError("kms_key_id is required when server_side_encryption is aws:kms")
        statements.append(_kms_statement(cfg.kms_key_id, partition, cfg.region))
    return {"Version": POLICY_VERSION, "Statement": statements}


def _glue_statement(cfg: Any, partition: str) -> dict[str, Any]:
    base = f"arn:{partition}:glue:{cfg.region}:*"
    return {
        "Effect": "Allow",
        "Action": list(GLUE_ACTIONS),
        "Resource": [
            f"{base}:catalog",
            f"{base}:database/{cfg.iceberg_namespace}",
            f"{base}:table/{cfg.iceberg_namespace}/{cfg.iceberg_table}",
        ],
    }


def _kms_statement(kms_key_id: str, partition: str, region: str) -> dict[str, Any]:
    """Key ARNs are used as given; an alias (IAM cannot name a key by alias) becomes "keys carrying this alias"."""
    statement: dict[str, Any] = {"Effect": "Allow", "Action": list(KMS_ACTIONS)}
    match = _KMS_ARN_RE.fullmatch(kms_key_id)
    if match is not None and match["kind"] == "key":
        statement["Resource"] = kms_key_id
        return statement
    if match is not None:  # alias ARN
        prefix = f"arn:{match['partition']}:kms:{match['region']}:{match['account']}"
        alias = f"alias/{match['name']}"
    elif kms_key_id.startswith("alias/"):
        prefix = f"arn:{partition}:kms:{region}:*"
        alias = kms_key_id
    else:  # a bare key id (uuid or mrk-...)
        statement["Resource"] = f"arn:{partition}:kms:{region}:*:key/{kms_key_id}"
        return statement
    statement["Resource"] = f"{prefix}:key/*"
    statement["Condition"] = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": [alias]}}
    return statement
