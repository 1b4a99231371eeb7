"""Where an integration's credentials come from (workers.sink.credentials), without AWS: the names a trust policy
uses, what tells identities apart, and a refused role remembered instead of asked again."""

from __future__ import annotations

from typing import Any

import botocore.exceptions as boto_exc
import pytest

from workers.errors import PermanentError, TransientError
from workers.integrations.config import parse_config
from workers.settings import Settings
from workers.sink import clients, credentials

ROLE = {
    "bucket": "b-1",
    "region": "eu-west-1",
    "role_arn": "arn:aws:iam::123456789012:role/writer",
    "external_id": "ext-0123",
}


def test_an_assumed_roles_session_is_named_by_its_role_in_a_trust_policy():
    assert (
        credentials.role_of_session("arn:aws:sts::111122223333:assumed-role/fleet-role/i-0abc")
        == "arn:aws:iam::111122223333:role/fleet-role"
    )
    assert credentials.role_of_session("arn:aws:iam::111122223333:user/fleet") == "arn:aws:iam::111122223333:user/fleet"
    policy = credentials.trust_policy("arn:aws:iam::111122223333:role/fleet-role", "ext-0123")
    assert policy["Statement"] == [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/fleet-role"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "ext-0123"}},
        }
    ]


def test_identities_are_told_apart_by_everything_that_makes_them():
    role = parse_config(ROLE)
    prints = {
        credentials.fingerprint(role),
        credentials.fingerprint(parse_config({**ROLE, "external_id": "ext-other"})),
        credentials.fingerprint(parse_config({**ROLE, "role_session_name": "team-b"})),
        credentials.fingerprint(
            parse_config({**ROLE, "access_key_id": "AKIAEXAMPLEEXAMPLE", "secret_access_key": "s" * 40})
        ),
        credentials.fingerprint(parse_config({"bucket": "b-1", "region": "eu-west-1", "credentials": "fleet"})),
    }
    assert len(prints) == 5
    assert "ext-0123" not in credentials.fingerprint(role)


class RefusingSts:
    def __init__(self, code: str) -> None:
        self.calls = 0
        self.code = code

    def assume_role(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        raise boto_exc.ClientError(
            {"Error": {"Code": self.code, "Message": "not authorized"}, "ResponseMetadata": {"HTTPStatusCode": 403}},
            "AssumeRole",
        )


@pytest.fixture
def sts(monkeypatch: pytest.MonkeyPatch) -> RefusingSts:
    fake = RefusingSts("AccessDenied")
    monkeypatch.setattr(credentials, "_sts", lambda cfg, settings: fake)
    monkeypatch.setattr(credentials, "fleet_principal", lambda settings: "arn:aws:iam::111122223333:role/fleet")
    credentials._reset_after_fork()
    return fake


def test_a_refused_role_is_remembered_not_asked_again_until_forgotten(sts: RefusingSts):
    cfg, settings = parse_config(ROLE), Settings(sts_refusal_hold_s=300)
    for _ in range(3):
        with pytest.raises(PermanentError) as refused:
            credentials.role_session(cfg, settings)
    assert sts.calls == 1
    failure = refused.value.failure
    assert failure.code == "AssumeRoleDenied" and "Check both" in failure.hint
    assert '"sts:ExternalId":"ext-0123"' in failure.hint and "arn:aws:iam::111122223333:role/fleet" in failure.hint
    credentials.forget(cfg)  # a replay: the customer says it is fixed
    with pytest.raises(PermanentError):
        credentials.role_session(cfg, settings)
    assert sts.calls == 2


def test_sts_failing_for_a_moment_is_transient_and_not_remembered(sts: RefusingSts):
    sts.code = "Throttling"
    cfg, settings = parse_config(ROLE), Settings()
    for _ in range(2):
        with pytest.raises(TransientError):
            credentials.role_session(cfg, settings)
    assert sts.calls == 2


def test_the_refresh_point_must_lie_within_the_session():
    with pytest.raises(ValueError, match="SIGNAL_STS_REFRESH_BEFORE_S"):
        Settings(sts_session_duration_s=900, sts_refresh_before_s=900)


def test_sts_is_asked_in_the_integrations_region_at_the_standard_endpoint(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFLEETEXAMPLE0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fleet-secret")
    credentials._reset_after_fork()
    cfg = parse_config({**ROLE, "region": "eu-central-1"})
    sts = credentials._sts(cfg, Settings())
    assert sts.meta.region_name == "eu-central-1"
    assert sts.meta.endpoint_url == "https://sts.eu-central-1.amazonaws.com"
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:4566")
    credentials._reset_after_fork()  # botocore reads the variable when a session is made
    assert credentials._sts(cfg, Settings()).meta.endpoint_url == "http://127.0.0.1:4566"
    credentials._reset_after_fork()


@pytest.mark.parametrize(
    ("style", "url"),
    [
        ("path", "https://store.example.com:9000/my-bucket/events/a.json.gz"),
        ("virtual", "https://my-bucket.store.example.com:9000/events/a.json.gz"),
    ],
)
def test_the_addressing_style_decides_where_the_bucket_goes(style: str, url: str):
    cfg = parse_config(
        {
            "bucket": "my-bucket",
            "region": "us-east-1",
            "access_key_id": "AKIAIOSFODNN7EXAMPLE",
            "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "endpoint_url": "https://store.example.com:9000",
            "addressing_style": style,
        }
    )
    client = clients.client_for(cfg, settings=Settings())
    signed = client.generate_presigned_url("put_object", Params={"Bucket": "my-bucket", "Key": "events/a.json.gz"})
    assert signed.split("?")[0] == url
