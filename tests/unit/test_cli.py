from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from cryptography.fernet import Fernet

from tests.support.seed import ACCESS_KEY_ID, INSTALL_BODY_TEXT, SECRET_ACCESS_KEY
from workers import cli, crypto
from workers.integrations import registry
from workers.settings import get_settings

SEED_INSTALL_BODY = INSTALL_BODY_TEXT


@pytest.fixture
def r(monkeypatch: pytest.MonkeyPatch) -> fakeredis.FakeRedis:
    client = fakeredis.FakeRedis()
    monkeypatch.setattr(cli.common, "redis_client", lambda: client)
    # No S3 here: the bucket check of install passes (tests/unit/test_sources.py covers its failures).
    monkeypatch.setattr("workers.sink.bucket.verify_bucket", lambda cfg, settings=None: None)
    return client


@pytest.fixture
def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "install.json"
    path.write_text(SEED_INSTALL_BODY)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert ACCESS_KEY_ID not in text
        assert SECRET_ACCESS_KEY not in text


def install_seed(capsys: pytest.CaptureFixture[str], seed_file: Path) -> dict[str, Any]:
    code, out, _ = run(capsys, "install", "amazon_s3", "--file", str(seed_file))
    assert code == 0
    return json.loads(out)


# -- install ----------------------------------------------------------------------------------------------------


def test_install_from_file(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path) -> None:
    code, out, err = run(capsys, "install", "amazon_s3", "--file", str(seed_file))
    assert code == 0
    created = json.loads(out)
    assert registry.ids(r) == [created["id"]]
    assert created["name"] == "Amazon S3"
    assert created["variant"] == "default"
    assert created["delivery_mode"] == "server_side"
    assert created["enabled"] is True
    assert created["config"]["bucket"] == "datafly-events-production"
    assert created["config"]["access_key_id"] == "****MPLE"
    assert created["config"]["secret_access_key"] == "****EKEY"
    assert_no_secret(out, err)
    stored = registry.get(r, created["id"])
    assert stored.config.secret_access_key.get_secret_value() == SECRET_ACCESS_KEY


def test_install_from_stdin(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SEED_INSTALL_BODY))
    code, out, err = run(capsys, "install", "amazon_s3")
    assert code == 0
    created = json.loads(out)
    assert registry.ids(r) == [created["id"]]
    assert_no_secret(out, err)


def test_install_from_stdin_dash(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(SEED_INSTALL_BODY))
    code, out, _ = run(capsys, "install", "amazon_s3", "--file", "-")
    assert code == 0
    assert registry.ids(r) == [json.loads(out)["id"]]


def test_install_validation_errors_exit_2_and_store_nothing(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    document = json.loads(SEED_INSTALL_BODY)
    document["config"]["region"] = "moon-1"
    document["config"]["server_side_encryption"] = "aws:kms"
    document["name"] = ""
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(document))
    code, out, err = run(capsys, "install", "amazon_s3", "--file", str(path))
    assert code == 2
    errors = json.loads(out)["errors"]
    assert [e["field"] for e in errors] == ["name", "config.region", "config.kms_key_id"]
    assert all(e["message"] for e in errors)
    assert r.keys("*") == []
    assert_no_secret(out, err)


@pytest.mark.parametrize("text", ["{not json", "", "   \n"])
def test_install_malformed_json_exit_2(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    code, out, err = run(capsys, "install", "amazon_s3", "--file", str(path))
    assert code == 2
    assert out == ""
    assert str(path) in err
    assert ("not valid JSON" in err) or ("is empty" in err)
    assert r.keys("*") == []


def test_install_missing_file_exit_2(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(capsys, "install", "amazon_s3", "--file", str(tmp_path / "missing.json"))
    assert code == 2
    assert "cannot read" in err


def test_install_json_that_is_not_an_object_exit_2(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]")
    code, out, _ = run(capsys, "install", "amazon_s3", "--file", str(path))
    assert code == 2
    assert json.loads(out) == {"errors": [{"field": "body", "message": "the install body must be a JSON object"}]}


def test_install_other_type_exit_2(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path) -> None:
    code, out, err = run(capsys, "install", "google_cloud_storage", "--file", str(seed_file))
    assert code == 2
    assert "unknown integration type 'google_cloud_storage'" in err
    assert "amazon_s3" in err
    assert r.keys("*") == []


def test_install_without_secret_key_exit_1(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SIGNAL_SECRET_KEY")
    get_settings.cache_clear()
    code, out, err = run(capsys, "install", "amazon_s3", "--file", str(seed_file))
    assert code == 1
    assert "SIGNAL_SECRET_KEY" in err
    assert "signal-s3 keygen" in err
    assert r.keys("*") == []
    assert_no_secret(out, err)


# -- list / show ------------------------------------------------------------------------------------------------


def test_list(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path) -> None:
    code, out, _ = run(capsys, "list")
    assert (code, json.loads(out)) == (0, [])
    first = install_seed(capsys, seed_file)
    second = install_seed(capsys, seed_file)
    code, out, err = run(capsys, "list")
    assert code == 0
    listed = json.loads(out)
    assert {i["id"] for i in listed} == {first["id"], second["id"]}
    assert all(i["config"]["secret_access_key"] == "****EKEY" for i in listed)
    assert_no_secret(out, err)


def test_show(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path) -> None:
    created = install_seed(capsys, seed_file)
    code, out, err = run(capsys, "show", created["id"])
    assert code == 0
    assert json.loads(out) == created
    assert_no_secret(out, err)


def test_show_unknown_exit_1(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "show", "nope")
    assert code == 1
    assert out == ""
    assert "integration nope is not installed" in err


def test_show_with_the_wrong_key_exit_1(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = install_seed(capsys, seed_file)
    registry.clear_cache()
    monkeypatch.setenv("SIGNAL_SECRET_KEY", crypto.generate_key())
    get_settings.cache_clear()
    code, _, err = run(capsys, "show", created["id"])
    assert code == 1
    assert "cannot decrypt stored secrets with SIGNAL_SECRET_KEY" in err


# -- update / enable / disable ----------------------------------------------------------------------------------

NEW_CONFIG = {
    "bucket": "other-bucket",
    "region": "eu-west-1",
    "access_key_id": "AKIANEWKEY000000ABCD",
    "secret_access_key": "newsecret/abcdefghijklmnopqrstuvwxyz0123",
    "prefix": "raw/",
}


@pytest.mark.parametrize("wrapped", [False, True])
def test_update(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path, tmp_path: Path, wrapped: bool
) -> None:
    created = install_seed(capsys, seed_file)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"config": NEW_CONFIG} if wrapped else NEW_CONFIG))
    code, out, err = run(capsys, "update", created["id"], "--file", str(path))
    assert code == 0
    updated = json.loads(out)
    assert updated["id"] == created["id"]
    assert updated["config"]["bucket"] == "other-bucket"
    assert updated["config"]["prefix"] == "raw/"
    assert updated["config"]["secret_access_key"] == "****0123"
    assert "newsecret/abcdefghijklmnopqrstuvwxyz0123" not in out + err
    assert registry.get(r, created["id"]).config.bucket == "other-bucket"


def test_update_invalid_exit_2(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path, tmp_path: Path
) -> None:
    created = install_seed(capsys, seed_file)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(dict(NEW_CONFIG, storage_class="COLD")))
    code, out, _ = run(capsys, "update", created["id"], "--file", str(path))
    assert code == 2
    assert [e["field"] for e in json.loads(out)["errors"]] == ["config.storage_class"]
    assert registry.get(r, created["id"]).config.bucket == "datafly-events-production"


def test_update_with_other_install_fields_exit_2(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path
) -> None:
    created = install_seed(capsys, seed_file)
    code, out, _ = run(capsys, "update", created["id"], "--file", str(seed_file))
    assert code == 2
    errors = json.loads(out)["errors"]
    assert len(errors) == 1
    assert "update replaces only the config" in errors[0]["message"]


def test_update_the_blueprint_alone_or_with_the_config(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path, tmp_path: Path
) -> None:
    created = install_seed(capsys, seed_file)
    assert created["blueprint"] == {"consent": None, "events": None, "drop_fields": [], "hash_fields": []}
    wanted = {
        "consent": {"require": ["analytics"], "missing": "deny"},
        "events": {"exclude": ["identify"]},
        "drop_fields": ["context.ip"],
        "hash_fields": ["user_id"],
    }
    path = tmp_path / "update.json"
    path.write_text(json.dumps({"blueprint": wanted}))
    code, out, err = run(capsys, "update", created["id"], "--file", str(path))
    assert code == 0, err
    updated = json.loads(out)
    assert updated["blueprint"] == wanted and updated["config"] == created["config"]
    code, out, _ = run(capsys, "show", created["id"])
    assert json.loads(out)["blueprint"] == wanted
    key = registry.get(r, created["id"]).hash_key
    assert key is not None and key.get_secret_value() not in out

    path.write_text(json.dumps({"config": NEW_CONFIG, "blueprint": {}}))
    code, out, _ = run(capsys, "update", created["id"], "--file", str(path))
    assert code == 0
    assert json.loads(out)["blueprint"]["consent"] is None and json.loads(out)["config"]["bucket"] == "other-bucket"

    path.write_text(json.dumps({"config": dict(NEW_CONFIG, region="moon-1"), "blueprint": {"drop_fields": [""]}}))
    code, out, _ = run(capsys, "update", created["id"], "--file", str(path))
    assert code == 2
    assert [e["field"] for e in json.loads(out)["errors"]] == ["config.region", "blueprint.drop_fields"]


def test_update_unknown_exit_1(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(NEW_CONFIG))
    code, _, err = run(capsys, "update", "nope", "--file", str(path))
    assert code == 1
    assert "integration nope is not installed" in err


def test_enable_disable(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], seed_file: Path) -> None:
    created = install_seed(capsys, seed_file)
    code, out, err = run(capsys, "disable", created["id"])
    assert code == 0
    assert json.loads(out)["enabled"] is False
    assert registry.get(r, created["id"]).enabled is False
    assert_no_secret(out, err)
    code, out, _ = run(capsys, "enable", created["id"])
    assert code == 0
    assert json.loads(out)["enabled"] is True
    assert registry.get(r, created["id"]).enabled is True


@pytest.mark.parametrize("command", ["enable", "disable"])
def test_enable_disable_unknown_exit_1(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    code, _, err = run(capsys, command, "nope")
    assert code == 1
    assert "integration nope is not installed" in err


# -- keygen, reencrypt, usage -----------------------------------------------------------------------------------


def test_keygen_prints_a_fernet_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNAL_SECRET_KEY")
    get_settings.cache_clear()
    code, out, _ = run(capsys, "keygen")
    assert code == 0
    Fernet(out.strip().encode())


def test_reencrypt(
    r: fakeredis.FakeRedis,
    capsys: pytest.CaptureFixture[str],
    seed_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    secret_key: str,
) -> None:
    created = install_seed(capsys, seed_file)
    new_key = crypto.generate_key()
    monkeypatch.setenv("SIGNAL_SECRET_KEY", f"{new_key},{secret_key}")
    get_settings.cache_clear()
    code, out, _ = run(capsys, "reencrypt")
    assert (code, json.loads(out)) == (0, {"reencrypted": 1})
    monkeypatch.setenv("SIGNAL_SECRET_KEY", new_key)
    get_settings.cache_clear()
    registry.clear_cache()
    code, _, _ = run(capsys, "show", created["id"])
    assert code == 0


@pytest.mark.parametrize("argv", [[], ["frobnicate"], ["show"], ["install"]])
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "usage: signal-s3" in err


def test_help_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for name in cli.COMMANDS:
        assert name in out


def test_commands_table() -> None:
    assert set(cli.COMMANDS) >= {"install", "list", "show", "update", "enable", "disable", "keygen"}


def test_unreachable_redis_exit_1_without_password(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNAL_REDIS_URL", "redis://:hunter2secret@127.0.0.1:1/0")
    get_settings.cache_clear()
    code, out, err = run(capsys, "list")
    assert code == 1
    assert "Redis at 127.0.0.1:1/0" in err
    assert "hunter2secret" not in out + err


def test_athena_ddl_and_iam_policy_for_an_installed_integration(r, capsys):
    import orjson as _orjson

    from workers.integrations import registry as _registry

    integ = _registry.install(
        r,
        {
            "name": "S3",
            "config": {
                "bucket": "datafly-events-production",
                "region": "eu-west-1",
                "access_key_id": "AKIAIOSFODNN7EXAMPLE",
                "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                "prefix": "events/",
                "server_side_encryption": "aws:kms",
                "kms_key_id": "arn:aws:kms:eu-west-1:111122223333:key/abcd",
            },
        },
    )
    assert cli.main(["athena-ddl", integ.id]) == 0
    ddl = capsys.readouterr().out
    assert (
        "CREATE EXTERNAL TABLE" in ddl
        and "s3://datafly-events-production/events/${year}/${month}/${day}/${hour}/" in ddl
    )
    assert cli.main(["iam-policy", integ.id]) == 0
    policy = _orjson.loads(capsys.readouterr().out)
    actions = {a for st in policy["Statement"] for a in st["Action"]}
    assert {"s3:PutObject", "s3:GetBucketLocation", "kms:GenerateDataKey"} <= actions
    assert "wJalrXUtnFEMI" not in ddl


# -- sources ------------------------------------------------------------------------------------------------------


def test_sources_create_update_show_and_list(r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "sources",
        "create",
        "Shop",
        "--allowed-origins",
        "https://www.shop.example, *.shop.io",
        "--rate-limit",
        "50",
    )
    assert code == 0
    created = json.loads(out)
    assert created["allowed_origins"] == ["https://www.shop.example", "*.shop.io"]
    assert created["rate_limit_eps"] == 50 and created["effective_rate_limit_eps"] == 50
    assert created["write_key"].startswith("wk_") and created["refused"]["rate_limited"] == {"requests": 0, "events": 0}
    code, out, _ = run(capsys, "sources", "update", created["id"], "--rate-limit", "default", "--allowed-origins", "")
    assert code == 0
    updated = json.loads(out)
    assert updated["rate_limit_eps"] is None and updated["allowed_origins"] == []
    assert updated["effective_rate_limit_eps"] == get_settings().source_rate_limit_eps
    code, out, _ = run(capsys, "sources", "update", created["id"], "--name", "Renamed")
    assert code == 0 and json.loads(out)["name"] == "Renamed"
    code, out, _ = run(capsys, "sources", "show", created["id"])
    assert code == 0 and json.loads(out)["name"] == "Renamed"
    code, out, _ = run(capsys, "sources", "list")
    assert code == 0 and [s["id"] for s in json.loads(out)] == [created["id"]]


def test_sources_invalid_settings_exit_2_with_one_message_per_field(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(
        capsys, "sources", "create", "Shop", "--allowed-origins", "nope,https://ok.example", "--rate-limit", "-3"
    )
    assert code == 2
    assert [e["field"] for e in json.loads(out)["errors"]] == ["rate_limit_eps", "allowed_origins[0]"]
    assert r.keys("*") == []
    code, out, err = run(capsys, "sources", "update", "whatever")
    assert code == 2 and "nothing to change" in err
    code, out, err = run(capsys, "sources", "show", "nope")
    assert code == 1 and "source nope does not exist" in err


def test_sources_snippet_prints_both_setups_for_the_public_api_url(
    r: fakeredis.FakeRedis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = run(capsys, "sources", "create", "Shop")
    source = json.loads(out)
    code, out, _ = run(capsys, "sources", "snippet", source["id"], "--api-url", "https://collect.shop.example")
    assert code == 0
    assert out.count("<script src=") == 2 and out.count(source["write_key"]) == 3
    assert '"apiHost": "collect.shop.example/v1"' in out and '"https://collect.shop.example"' in out
    assert "serve /signal-sdk/analytics-next/bundles/" in out and "signal-s3 sdk-files DIR" in out

    monkeypatch.setenv("SIGNAL_PUBLIC_API_URL", "https://events.shop.example/")
    get_settings.cache_clear()
    code, out, _ = run(
        capsys,
        "sources",
        "snippet",
        source["id"],
        "--sdk",
        "rudderstack",
        "--sdk-url",
        "https://static.shop.example/js",
    )
    assert code == 0 and "AnalyticsNext" not in out
    assert '"https://events.shop.example", {' in out
    assert '<script src="https://static.shop.example/js/rudderstack/rsa.js">' in out
    code, _, err = run(capsys, "sources", "snippet", source["id"], "--api-url", "collect.shop.example")
    assert code == 2 and "https://collect.example.com" in err


def test_sdk_files_writes_the_pinned_files_and_reports_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from workers.websites import sdk

    def install(dest: Path) -> dict[str, Path]:
        return {p.key: dest / p.script for p in sdk.PACKAGES}

    monkeypatch.setattr(sdk, "install", install)
    code, out, _ = run(capsys, "sdk-files", str(tmp_path))
    assert code == 0
    shown = json.loads(out)
    assert shown["analytics-next"]["package"] == "@segment/analytics-next@1.84.3"
    assert shown["rudderstack"]["script"] == str(tmp_path / "rudderstack/rsa.js")
    assert shown["rudderstack"]["integrity"].startswith("sha512-")

    def offline(dest: Path) -> dict[str, Path]:
        raise sdk.SdkFetchError("cannot download @segment/analytics-next@1.84.3: offline")

    monkeypatch.setattr(sdk, "install", offline)
    code, _, err = run(capsys, "sdk-files", str(tmp_path))
    assert code == 1 and "offline" in err


def test_athena_ddl_follows_the_integration_s_variant(r, capsys, seed_file):
    body = json.loads(SEED_INSTALL_BODY)
    seed_file.write_text(json.dumps({**body, "variant": "parquet"}))
    created = install_seed(capsys, seed_file)
    assert created["variant"] == "parquet"
    assert cli.main(["athena-ddl", created["id"]]) == 0
    ddl = capsys.readouterr().out
    assert "STORED AS PARQUET" in ddl and "JsonSerDe" not in ddl and "`received_at`    timestamp" in ddl
    seed_file.write_text(json.dumps(body))
    plain = install_seed(capsys, seed_file)
    assert cli.main(["athena-ddl", plain["id"]]) == 0
    assert "JsonSerDe" in capsys.readouterr().out


@pytest.mark.parametrize("given", ["0", "-1", "two"])
def test_api_workers_must_be_a_positive_whole_number(capsys: pytest.CaptureFixture[str], given: str) -> None:
    from workers import cli

    assert cli.main(["api", "--workers", given]) == 2
    assert "--workers" in capsys.readouterr().err


def test_api_passes_the_number_of_processes_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from workers import cli
    from workers.web import app

    seen: list[tuple] = []
    monkeypatch.setattr(app, "serve", lambda host, port, workers: seen.append((host, port, workers)))
    assert cli.main(["api", "--port", "9000", "--workers", "3"]) == 0
    assert seen == [(None, 9000, 3)]
