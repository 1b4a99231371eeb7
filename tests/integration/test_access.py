"""Access by role, by the fleet's own identity and by key pair, on a moto_server that enforces IAM, with every STS and
S3 request recorded on its way: the role assumed with its external ID, its credentials reused and refreshed, a
refused role held with what to check and replayed after the fix, checksums only where asked or needed (Object Lock),
tags on every object, and a connection check that names the step that fails."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs

import boto3
import pytest

from tests.support.aws_account import ACCOUNT, EXTERNAL_ID, AwsAccount, trust_policy
from tests.support.console import parse
from tests.support.faultproxy import FaultProxy
from tests.support.fleet import Bucket, assert_exactly_once, make_events, run_id
from tests.support.processes import venv_command, wait_until
from tests.support.s3_fixtures import TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, MotoServer, create_bucket, s3_client
from workers.errors import ConfigError
from workers.integrations import manage, registry, status
from workers.pipeline import replay
from workers.settings import get_settings
from workers.sink import clients, credentials
from workers.store import buffer, facts

# A role's credentials last the minimum STS allows and are refreshed 5 s after they were issued: the refresh happens
# within the test, as it would 45 minutes into a real session.
ROLE_SETTINGS = {"SIGNAL_STS_SESSION_DURATION_S": "900", "SIGNAL_STS_REFRESH_BEFORE_S": "895"}


@pytest.fixture
def account(fleet: Any, aws_account: AwsAccount, monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsAccount]:
    """The fleet (its processes and this one) with its own AWS identity, talking to STS and S3 through the proxy."""
    for name, value in {**aws_account.env(), **ROLE_SETTINGS}.items():
        fleet.env[name] = value
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    forget_clients()  # this process's clients and sessions of earlier tests knew other endpoints and identities
    yield aws_account
    forget_clients()


def forget_clients() -> None:
    """Start this process afresh, as a new worker process would (the caches never expect the endpoints or the
    fleet's identity to change under them)."""
    clients._reset_after_fork()
    credentials._reset_after_fork()


def install(fleet: Any, bucket: str, *, verify: bool = True, **config: Any) -> str:
    body = {
        "name": "Amazon S3",
        "verify": verify,
        "config": {"bucket": bucket, "region": "us-east-1", "prefix": f"{run_id('access')}/", **config},
    }
    return manage.install_integration(fleet.r, body, settings=get_settings()).id


def role(account: AwsAccount, **config: Any) -> dict[str, Any]:
    return {"role_arn": account.role_arn, "external_id": EXTERNAL_ID, **config}


def landed(fleet: Any, account: AwsAccount, iid: str, bucket: str | None = None) -> Bucket:
    """The objects of one integration (several may share a bucket, each under its own prefix)."""
    return Bucket(account.s3(), bucket or account.bucket, registry.get(fleet.r, iid).config.prefix)


def send(fleet: Any, iid: str, n: int, run: str) -> set[str]:
    events = make_events(n, run=run)
    fleet.sender.ingest(iid, events)
    return {e["event_id"] for e in events}


def test_a_role_is_assumed_with_its_external_id_and_its_credentials_are_reused_then_refreshed(
    fleet, account, start_worker, start_beat
):
    iid = install(fleet, account.bucket, **role(account))
    assert registry.get(fleet.r, iid).config.credentials == "assume_role"  # given a role_arn, nothing else
    # one worker process: assumed credentials are kept per process (each process of a fleet assumes the role once
    # per refresh), so with two the uploads could each ask STS once
    start_worker(concurrency=1)
    start_beat()
    account.proxy.reset()
    bucket = landed(fleet, account, iid)
    sent = send(fleet, iid, 30, run_id("role-1"))
    bucket.wait_for(sent, timeout_s=60)
    sent |= send(fleet, iid, 30, run_id("role-2"))
    bucket.wait_for(sent, timeout_s=60)
    calls = account.assume_role_calls()
    assert len(calls) == 1, calls  # one AssumeRole for both uploads: the credentials are reused
    assert (calls[0]["RoleArn"], calls[0]["ExternalId"], calls[0]["RoleSessionName"], calls[0]["DurationSeconds"]) == (
        account.role_arn,
        EXTERNAL_ID,
        "signal-s3",
        "900",
    )
    time.sleep(6)  # past the refresh point of the credentials (5 s after they were issued)
    sent |= send(fleet, iid, 30, run_id("role-3"))
    bucket.wait_for(sent, timeout_s=60)
    assert len(account.assume_role_calls()) == 2  # refreshed once, before they expired
    assert_exactly_once(fleet, iid, bucket, sent)
    puts = account.puts(account.bucket)
    assert puts and all(p.headers["authorization"].split("Credential=")[1].startswith("ASIA") for p in puts)


def test_a_refused_role_is_held_with_what_to_check_and_replayed_after_the_fix(fleet, account, start_worker, start_beat):
    account.trust(external_id="someone-elses-id")  # the customer's trust policy does not name this external ID
    with pytest.raises(manage.BucketCheckFailed) as refused:
        install(fleet, account.bucket, **role(account))
    assert refused.value.failure.code == "AssumeRoleDenied"
    iid = install(fleet, account.bucket, verify=False, **role(account))
    start_worker()
    start_worker()  # two workers of two processes each: the refusal is remembered for all of them
    start_beat()
    account.proxy.reset()
    sent: set[str] = set()
    for n in range(4):  # four batches, each refused
        sent |= send(fleet, iid, 10, run_id(f"refused-{n}"))
        expected = len(sent)
        wait_until(
            lambda expected=expected: status.integration_status(fleet.r, iid)["dead_letter_events"] == expected,
            60,
            message=lambda: str(status.integration_status(fleet.r, iid)),
        )
    held = status.dead_letter(fleet.r, iid)
    assert {b["code"] for b in held} == {"AssumeRoleDenied"}
    hint = held[0]["hint"]
    assert "Check both" in hint and account.role_arn in hint and account.fleet_arn in hint
    policy = json.loads(hint.split("Trust policy to apply: ", 1)[1].split(". Then replay", 1)[0])
    assert policy["Statement"][0]["Principal"] == {"AWS": account.fleet_arn}
    assert policy["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert len(account.assume_role_calls()) == 1  # four refused batches in four processes, one refused call: no storm

    account.trust()  # the customer applies the trust policy the hint shows
    report = replay.replay(fleet.r, iid, settings=get_settings())
    assert len(report.delivered) == 4 and not report.failed
    assert_exactly_once(fleet, iid, landed(fleet, account, iid), sent)


def test_the_fleets_own_identity_writes_only_where_the_fleet_allows_it(
    fleet, account, start_worker, start_beat, monkeypatch
):
    with pytest.raises(ConfigError) as refused:
        install(fleet, account.bucket, credentials="fleet")
    assert refused.value.errors[0]["field"] == "config.credentials"
    assert "SIGNAL_ALLOW_FLEET_CREDENTIALS" in refused.value.errors[0]["message"]
    account.client("iam").put_user_policy(
        UserName="signal-fleet",
        PolicyName="write",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": ["s3:PutObject", "s3:GetBucketLocation", "s3:GetObjectLockConfiguration"],
                        "Resource": [f"arn:aws:s3:::{account.bucket}", f"arn:aws:s3:::{account.bucket}/*"],
                    }
                ],
            }
        ),
    )
    monkeypatch.setenv("SIGNAL_ALLOW_FLEET_CREDENTIALS", "true")
    get_settings.cache_clear()
    iid = install(fleet, account.bucket, credentials="fleet")
    fleet.env["SIGNAL_ALLOW_FLEET_CREDENTIALS"] = "true"
    start_worker()
    start_beat()
    sent = send(fleet, iid, 20, run_id("fleet"))
    assert_exactly_once(fleet, iid, landed(fleet, account, iid), sent)
    puts = account.puts(account.bucket)
    assert puts and all(account.fleet.access_key_id in p.headers["authorization"] for p in puts)


def test_a_fleet_that_stops_allowing_its_identity_holds_the_batches_with_the_reason(
    fleet, account, start_worker, start_beat, monkeypatch
):
    monkeypatch.setenv("SIGNAL_ALLOW_FLEET_CREDENTIALS", "true")
    get_settings.cache_clear()
    iid = install(fleet, account.bucket, verify=False, credentials="fleet")
    fleet.env["SIGNAL_ALLOW_FLEET_CREDENTIALS"] = "false"
    start_worker()  # its settings do not allow it
    start_beat()
    send(fleet, iid, 5, run_id("not-allowed"))
    wait_until(lambda: status.integration_status(fleet.r, iid)["dead_letter_batches"] == 1, 60)
    [held] = status.dead_letter(fleet.r, iid)
    assert held["code"] == "FleetCredentialsNotAllowed" and "SIGNAL_ALLOW_FLEET_CREDENTIALS" in held["hint"]


def checksum_headers(seen: Any) -> set[str]:
    return {
        h
        for h in seen.headers
        if h == "content-md5" or h.startswith("x-amz-checksum") or h == "x-amz-sdk-checksum-algorithm"
    }


def test_checksums_when_required_sends_none_and_auto_sends_them(fleet, account, start_worker, start_beat):
    # with an endpoint_url (an S3-compatible store) checksums default to when_required
    quiet = install(fleet, account.bucket, endpoint_url=account.endpoint, **role(account))
    loud = install(fleet, account.bucket, endpoint_url=account.endpoint, checksums="auto", **role(account))
    assert registry.get(fleet.r, quiet).config.effective_checksums == "when_required"
    start_worker()
    start_beat()
    account.proxy.reset()
    for iid in (quiet, loud):
        landed(fleet, account, iid).wait_for(send(fleet, iid, 10, run_id("sums")), timeout_s=60)
    prefixes = {iid: registry.get(fleet.r, iid).config.prefix for iid in (quiet, loud)}
    by_prefix = {iid: [p for p in account.puts(account.bucket) if prefixes[iid] in p.target] for iid in prefixes}
    assert by_prefix[quiet] and all(checksum_headers(p) == set() for p in by_prefix[quiet])
    assert by_prefix[loud] and all(
        {"content-md5", "x-amz-checksum-crc32"} <= checksum_headers(p) for p in by_prefix[loud]
    )


@pytest.mark.parametrize("verify", [True, False], ids=["found at install", "learned at the first upload"])
def test_a_bucket_with_object_lock_gets_a_checksum_whatever_checksums_says(
    fleet, account, start_worker, start_beat, verify
):
    iid = install(fleet, account.locked_bucket, verify=verify, endpoint_url=account.endpoint, **role(account))
    assert facts.object_lock(fleet.r, iid) is verify
    start_worker()
    start_beat()
    account.proxy.reset()
    sent = send(fleet, iid, 20, run_id("locked"))
    assert_exactly_once(fleet, iid, landed(fleet, account, iid, account.locked_bucket), sent)
    puts = account.puts(account.locked_bucket)
    assert checksum_headers(puts[-1]) == {"content-md5"}  # the one that landed carried Content-MD5
    assert len(puts) == (1 if verify else 2)  # learned: refused once without, then written with it at once
    assert facts.object_lock(fleet.r, iid)  # remembered for every worker


def test_every_object_carries_the_integrations_tags(fleet, account, start_worker, start_beat):
    tags = {"team": "analytics", "cost-center": "4711"}
    iid = install(fleet, account.bucket, object_tags="team=analytics, cost-center=4711", **role(account))
    assert registry.get(fleet.r, iid).config.object_tags == tags
    fleet.env["SIGNAL_MULTIPART_THRESHOLD_BYTES"] = str(5 * 1024 * 1024)
    start_worker()
    start_beat()
    sent = send(fleet, iid, 20, run_id("tags"))
    objects = assert_exactly_once(fleet, iid, landed(fleet, account, iid), sent)
    s3 = account.s3()
    for key in objects:
        got = s3.get_object_tagging(Bucket=account.bucket, Key=key)["TagSet"]
        assert {t["Key"]: t["Value"] for t in got} == tags


def test_the_connection_check_names_the_step_that_fails_with_its_hint(fleet, account):
    iid = install(fleet, account.bucket, **role(account))
    report = manage.check_connection(fleet.r, iid, settings=get_settings())
    assert report["ok"] and [s["step"] for s in report["steps"]] == ["credentials", "bucket", "object_lock", "write"]
    assert all(s["ok"] for s in report["steps"]) and report["object_lock"] is False
    prefix = registry.get(fleet.r, iid).config.prefix
    probe = account.s3().head_object(Bucket=account.bucket, Key=f"{prefix}_signal/connection-check")
    assert probe["ContentLength"] == 0

    def failed(report: dict[str, Any]) -> tuple[str, str]:
        [step] = [s for s in report["steps"] if s["ok"] is False]
        assert all(not s["ran"] for s in report["steps"][report["steps"].index(step) + 1 :])
        assert step["hint"]
        return step["step"], step["code"]

    account.trust(external_id="changed")
    assert failed(manage.check_connection(fleet.r, iid, settings=get_settings())) == ("credentials", "AssumeRoleDenied")
    account.trust()
    registry.update(
        fleet.r, iid, config=registry.get(fleet.r, iid).config.model_copy(update={"bucket": account.outside_bucket})
    )  # the role may not touch it
    assert failed(manage.check_connection(fleet.r, iid, settings=get_settings())) == ("bucket", "AccessDenied")

    iam = account.client("iam")
    iam.create_user(UserName="read-only")
    iam.put_user_policy(
        UserName="read-only",
        PolicyName="p",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Action": "s3:GetBucketLocation", "Resource": f"arn:aws:s3:::{account.bucket}"}
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="read-only")["AccessKey"]
    keys_only = install(
        fleet, account.bucket, access_key_id=key["AccessKeyId"], secret_access_key=key["SecretAccessKey"]
    )
    report = manage.check_connection(fleet.r, keys_only, settings=get_settings())
    assert failed(report) == ("write", "AccessDenied")
    lock = next(s for s in report["steps"] if s["step"] == "object_lock")
    assert lock["ok"] is None and lock["ran"] and "not permitted" in lock["detail"]  # may not read it: unknown


def test_no_secret_or_temporary_credential_reaches_redis(fleet, account, start_worker, start_beat):
    iid = install(
        fleet,
        account.bucket,
        access_key_id=account.fleet.access_key_id,
        secret_access_key=account.fleet.secret_access_key,
        **role(account),
    )
    start_worker()
    start_beat()
    landed(fleet, account, iid).wait_for(send(fleet, iid, 5, run_id("secrets")), timeout_s=60)
    dump = b"".join(fleet.r.dump(k) or b"" for k in fleet.r.scan_iter("*"))
    assert account.fleet.secret_access_key.encode() not in dump
    assert account.fleet.access_key_id.encode() not in dump
    temporary = {p.headers["authorization"].split("Credential=")[1].split("/")[0] for p in account.puts(account.bucket)}
    assert temporary and all(t.startswith("ASIA") and t.encode() not in dump for t in temporary)
    assert buffer.held_batches(fleet.r, iid) == []


def test_the_check_and_the_policies_answer_alike_through_the_api_the_cli_and_the_console(
    fleet, account, start_api, console
):
    iid = install(fleet, account.bucket, object_tags="team=analytics", **role(account))
    api = start_api()
    checked = api.admin.post(f"/v1/admin/integrations/{iid}/check")
    assert checked.status_code == 200, checked.text
    answer = checked.json()
    assert answer["ok"] is True and answer["integration_id"] == iid
    assert [(s["step"], s["ok"]) for s in answer["steps"]] == [
        ("credentials", True),
        ("bucket", True),
        ("object_lock", True),
        ("write", True),
    ]
    policies = api.admin.get(f"/v1/admin/integrations/{iid}/access-policies").json()
    assert policies["trust_policy"]["Statement"][0]["Principal"] == {"AWS": account.fleet_arn}  # GetCallerIdentity
    assert policies["trust_policy"]["Statement"][0]["Condition"] == {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
    assert "s3:PutObjectTagging" in policies["permissions_policy"]["Statement"][0]["Action"]

    cli_env = {**os.environ, **fleet.env}
    cli = subprocess.run([*venv_command("signal-s3"), "iam-policy", iid], env=cli_env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == policies
    cli = subprocess.run([*venv_command("signal-s3"), "check", iid], env=cli_env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert [s["ok"] for s in json.loads(cli.stdout)["steps"]] == [True, True, True, True]

    page = console.page(f"/integrations/{iid}/settings")
    assert page.find("form", action=f"/integrations/{iid}/check")
    shown = parse(console.post(f"/integrations/{iid}/check").text).by_id("connection-check")
    assert shown.find("h2").text == "Connection works"
    assert [row.get("class") for row in shown.find("tbody").find_all("tr")] == ["check-ok"] * 4

    account.trust(external_id="changed")  # the customer's trust policy no longer names this external ID
    failed = api.admin.post(f"/v1/admin/integrations/{iid}/check").json()
    assert failed["ok"] is False and failed["steps"][0]["code"] == "AssumeRoleDenied"
    cli = subprocess.run([*venv_command("signal-s3"), "check", iid], env=cli_env, capture_output=True, text=True)
    assert cli.returncode == 1 and json.loads(cli.stdout)["steps"][0]["code"] == "AssumeRoleDenied"
    shown = parse(console.post(f"/integrations/{iid}/check").text).by_id("connection-check")
    assert shown.get("role") == "alert" and shown.find("h2").text == "The connection check failed"
    rows = shown.find("tbody").find_all("tr")
    assert [row.get("class") for row in rows] == ["check-failed", "check-skipped", "check-skipped", "check-skipped"]
    assert "AssumeRoleDenied" in rows[0].text and "Check both" in rows[0].text
    for text in (checked.text, cli.stdout, cli.stderr, console.get(f"/integrations/{iid}/query").text):
        assert account.fleet.secret_access_key not in text


def test_a_fleet_on_eks_assumes_customer_roles_with_its_web_identity(
    fleet, start_worker, start_beat, monkeypatch, tmp_path
):
    """IRSA: the fleet's identity is a role obtained with a web identity token (AWS_ROLE_ARN,
    AWS_WEB_IDENTITY_TOKEN_FILE), found by botocore's standard chain; trust policies name that role, not its session.
    (moto_server cannot enforce IAM on the unsigned AssumeRoleWithWebIdentity, so this account does not enforce.)"""
    with MotoServer() as moto, FaultProxy(moto.endpoint) as proxy:
        admin = {
            "endpoint_url": moto.endpoint,
            "region_name": "us-east-1",
            "aws_access_key_id": TEST_ACCESS_KEY_ID,
            "aws_secret_access_key": TEST_SECRET_ACCESS_KEY,
        }
        iam = boto3.session.Session().client("iam", **admin)
        federated = {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EX"}
        fleet_role = iam.create_role(
            RoleName="signal-fleet",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Principal": federated, "Action": "sts:AssumeRoleWithWebIdentity"}
                    ],
                }
            ),
        )["Role"]["Arn"]
        customer_role = iam.create_role(
            RoleName="customer-writer",
            AssumeRolePolicyDocument=json.dumps(trust_policy(fleet_role, EXTERNAL_ID)),
        )["Role"]["Arn"]
        s3 = s3_client(moto.endpoint, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY)
        bucket = create_bucket(s3, f"signal-irsa-{uuid.uuid4().hex[:8]}")
        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6c2lnbmFsOnNpZ25hbC1mbGVldCJ9.x")
        env = {
            "AWS_ROLE_ARN": fleet_role,
            "AWS_WEB_IDENTITY_TOKEN_FILE": str(token),
            "AWS_ENDPOINT_URL_STS": proxy.endpoint_url,
            "AWS_ENDPOINT_URL_S3": proxy.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        for name, value in env.items():
            fleet.env[name] = value
            monkeypatch.setenv(name, value)
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            fleet.env.pop(name, None)
            monkeypatch.delenv(name, raising=False)
        get_settings.cache_clear()
        forget_clients()
        try:
            iid = install(fleet, bucket, role_arn=customer_role, external_id=EXTERNAL_ID)
            [statement] = manage.access_policies(registry.get(fleet.r, iid), settings=get_settings())["trust_policy"][
                "Statement"
            ]
            assert statement["Principal"] == {"AWS": fleet_role}  # the role, as GetCallerIdentity's session names it
            start_worker()
            start_beat()
            sent = send(fleet, iid, 20, run_id("irsa"))
            assert_exactly_once(fleet, iid, Bucket(s3, bucket, registry.get(fleet.r, iid).config.prefix), sent)
        finally:
            forget_clients()
        actions = [parse_qs(seen.body.decode()).get("Action", [""])[0] for seen in proxy.seen if seen.method == "POST"]
        assert "AssumeRoleWithWebIdentity" in actions  # the fleet's own identity came from the token
        assert "AssumeRole" in actions  # and assumed the customer's role
