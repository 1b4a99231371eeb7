"""Settings files, redis.conf and secrets, and the invariants every way of running the fleet shares."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.deploy.manifests import (
    BROKER_SECRET_NAMES,
    DEPLOY,
    INGEST_ARGS,
    REDIS_REQUIRED,
    ROOT,
    SECRET_NAMES,
    SECRET_PATTERNS,
    SYSTEMD,
    WORKERS,
    all_deploy_files,
    command_of,
    containers,
    env_file,
    load_compose,
    objects_of,
    redis_conf,
    unit,
    worker_environments,
)
from workers.settings import Settings


def test_env_examples_hold_the_same_settings_and_no_secrets() -> None:
    compose_env = env_file(DEPLOY / "signal.env.example")
    systemd_env = env_file(SYSTEMD / "signal.env.example")
    assert set(compose_env) == set(systemd_env)
    for values in (compose_env, systemd_env):
        for name in SECRET_NAMES:
            assert values[name] == "", f"{name} must be empty in an example"
        assert values["SIGNAL_FLUSH_INTERVAL_S"] == "60"
        assert values["SIGNAL_VISIBILITY_TIMEOUT_S"] == "300"
        assert values["SIGNAL_UPLOAD_TIMEOUT_S"] == "240"
    assert compose_env["SIGNAL_REDIS_URL"] == "redis://redis:6379/0"
    assert systemd_env["SIGNAL_REDIS_URL"] == "redis://127.0.0.1:6379/0"
    assert (DEPLOY / ".gitignore").read_text().splitlines()[-1] == "signal.env"


def test_env_example_settings_are_accepted_by_the_settings_model() -> None:
    values = env_file(DEPLOY / "signal.env.example")
    known = {k[len("SIGNAL_") :].lower(): v for k, v in values.items() if k.startswith("SIGNAL_") and v}
    settings = Settings(**known)
    assert settings.flush_interval_s == 60.0
    assert settings.visibility_timeout_s == 300
    assert settings.upload_timeout_s == 240.0


def test_redis_conf_is_durable_and_never_evicts() -> None:
    conf = redis_conf()
    assert {k: conf.get(k) for k in REDIS_REQUIRED} == REDIS_REQUIRED
    assert re.fullmatch(r"[0-9]+(gb|mb)", conf["maxmemory"])
    assert conf["bind"].startswith("127.0.0.1")


def test_every_redis_in_the_repository_is_configured_the_same_way() -> None:
    """Any file under deploy/ that starts a Redis server states all three settings."""
    configuring = []
    for path in all_deploy_files():
        text = path.read_text()
        if re.search(r"redis-server(?!\.service)", text) or path.name == "redis.conf":
            configuring.append(path.relative_to(DEPLOY).as_posix())
            for key, value in REDIS_REQUIRED.items():
                assert re.search(rf"{key}\W+{value}", text), f"{path.relative_to(ROOT)}: no {key} {value}"
    assert sorted(configuring) == [
        "compose.yaml",
        "k8s/redis.yaml",
        "redis.conf",
        "scaled/compose.yaml",
        "scaled/k8s/redis-cluster.yaml",
    ]


def test_no_secret_values_in_any_deployment_file() -> None:
    for path in all_deploy_files():
        text = path.read_text()
        for what, pattern in SECRET_PATTERNS.items():
            assert not pattern.search(text), f"{path.relative_to(ROOT)} contains a {what}"
        for name in (*SECRET_NAMES, *BROKER_SECRET_NAMES):
            for match in re.finditer(rf"^[ \t]*{name}[ \t]*[=:][ \t]*(\S*)", text, flags=re.MULTILINE):
                value = match.group(1).strip("\"'")
                assert value == "" or value.startswith("<") or name in value or value.startswith("valueFrom"), (
                    f"{path.relative_to(ROOT)} sets {name}"
                )


def test_the_secret_scan_would_notice_a_secret() -> None:
    from cryptography.fernet import Fernet

    samples = {
        "AWS access key id": "aws_access_key_id=AKIAIOSFODNN7EXAMPLE",
        "Fernet key": f"SIGNAL_SECRET_KEY={Fernet.generate_key().decode()}",
        "credentials in a URL": "SIGNAL_BROKER_URL=amqp://signal:hunter2@rabbitmq:5672/%2F",
    }
    for what, sample in samples.items():
        assert SECRET_PATTERNS[what].search(sample), what
    assert not SECRET_PATTERNS["credentials in a URL"].search("amqp://<user>:<password>@rabbitmq:5672/%2F")


@pytest.mark.parametrize("kind", WORKERS)
def test_one_command_per_kind_of_worker_everywhere(kind: str) -> None:
    names = WORKERS[kind]
    compose = load_compose()["services"][names["compose"]]["command"]
    kubernetes = command_of(containers(objects_of("Deployment")[names["k8s"]])[0])
    systemd = shlex.split(unit(names["unit"])["Service"]["ExecStart"])
    assert compose == kubernetes == ["celery", *systemd[1:-1]] == names["args"]


def test_the_image_runs_an_ingest_worker_by_default() -> None:
    """A bare ``docker run`` gets the worker whose stop needs no long timeout (docker stop waits 10 s)."""
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"CMD {json.dumps(INGEST_ARGS)}" in dockerfile
    assert len(re.findall(r"^CMD ", dockerfile, flags=re.MULTILINE)) == 1


def test_sigterm_starts_celerys_soft_shutdown_on_flush_workers_everywhere() -> None:
    """Celery treats plain SIGTERM as a warm shutdown with no time bound; REMAP_SIGTERM=SIGQUIT makes it soft."""
    for where, env in worker_environments("flush").items():
        assert env.get("REMAP_SIGTERM") == "SIGQUIT", where


def test_ingest_workers_stop_warm_on_sigterm_everywhere() -> None:
    """A solo worker runs its task in the process that handles SIGTERM: a soft shutdown (REMAP_SIGTERM=SIGQUIT) would
    stall the running task for the whole soft-shutdown timeout and then fail to cancel it. Plain SIGTERM lets the
    millisecond task finish and stops."""
    for where, env in worker_environments("ingest").items():
        assert "REMAP_SIGTERM" not in env, where
    assert load_compose()["services"]["ingest"]["stop_signal"] == "SIGTERM"
    assert unit(WORKERS["ingest"]["unit"])["Service"]["KillSignal"] == "SIGTERM"
