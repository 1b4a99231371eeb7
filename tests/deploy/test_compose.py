"""Compose: the docker compose file of one machine."""

from __future__ import annotations

import pytest

from tests.deploy.manifests import (
    BEAT_ARGS,
    DEPLOY,
    REDIS_REQUIRED,
    WORKERS,
    compose_flower_script,
    compose_validator,
    duration_s,
    flag_pairs,
    load_compose,
    queues_of,
    run_flower_script,
)


def test_compose_file_follows_the_compose_specification() -> None:
    validator = compose_validator()
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load_compose())]
    assert errors == []


def test_the_compose_schema_rejects_a_broken_file() -> None:
    validator = compose_validator()
    broken = load_compose()
    broken["services"]["flush"]["stop_grace_period"] = ["330s"]
    broken["services"]["beat"]["not_a_compose_key"] = True
    assert len(list(validator.iter_errors(broken))) >= 2


def test_compose_runs_exactly_one_beat() -> None:
    services = load_compose()["services"]
    beats = [name for name, svc in services.items() if "beat" in svc.get("command", [])]
    assert beats == ["beat"]
    assert services["beat"]["command"] == BEAT_ARGS
    assert services["beat"]["deploy"]["replicas"] == 1


@pytest.mark.parametrize("kind", WORKERS)
def test_compose_workers_scale_and_stop_softly(kind: str) -> None:
    worker = load_compose()["services"][WORKERS[kind]["compose"]]
    assert worker["command"] == WORKERS[kind]["args"]
    assert worker["deploy"]["replicas"] >= 1
    assert worker["stop_signal"] == "SIGTERM"
    assert duration_s(worker["stop_grace_period"]) >= WORKERS[kind]["min_grace_s"]


def test_compose_workers_consume_every_queue_and_only_workers_consume() -> None:
    services = load_compose()["services"]
    consumers = {
        name: queues_of(svc["command"]) for name, svc in services.items() if "worker" in svc.get("command", [])
    }
    assert set(consumers) == {"ingest", "flush"}
    assert consumers == {"ingest": {"ingest"}, "flush": {"flush"}}


def test_compose_redis_is_durable_and_never_evicts() -> None:
    redis = load_compose()["services"]["redis"]
    assert redis["image"].split(":")[0] == "redis"
    assert redis["image"].split(":")[1].startswith("7")
    assert redis["command"][0] == "redis-server"
    options = flag_pairs(redis["command"])
    assert {k: options.get(k) for k in REDIS_REQUIRED} == REDIS_REQUIRED
    assert "maxmemory" in options
    assert any(v.endswith(":/data") for v in redis["volumes"])


def test_compose_uses_one_image_from_one_place() -> None:
    compose = load_compose()
    signal_services = {name: svc for name, svc in compose["services"].items() if name != "redis"}
    assert set(signal_services) == {"ingest", "flush", "beat", "api", "flower"}
    images = {svc["image"] for svc in signal_services.values()}
    assert images == {compose["x-signal-image"]["image"]}
    raw = (DEPLOY / "compose.yaml").read_text()
    assert raw.count("image: ${SIGNAL_IMAGE") == 1
    assert raw.count("dockerfile: deploy/Dockerfile") == 1
    assert compose["x-signal-image"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / "Dockerfile").is_file()


def test_compose_settings_come_from_the_env_file_only() -> None:
    compose = load_compose()
    for name, svc in compose["services"].items():
        if name == "redis":
            continue
        assert svc["env_file"] == ["signal.env"], name
        # the only inline variable is how the worker process treats SIGTERM, which is not a setting
        allowed = {"REMAP_SIGTERM": "SIGQUIT"} if name == "flush" else {}
        assert svc.get("environment", {}) == allowed, f"{name}: settings belong in signal.env"


def test_compose_publishes_ports_on_loopback_only() -> None:
    for name, svc in load_compose()["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    assert load_compose()["services"]["api"]["ports"] == ["127.0.0.1:8084:8084"]


@pytest.mark.parametrize("auth", [None, "", "admin", ":secret", "admin:"])
def test_compose_flower_refuses_to_start_without_basic_auth(auth: str | None) -> None:
    result = run_flower_script(compose_flower_script(), auth)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr
    assert result.stdout == ""


def test_compose_flower_starts_with_basic_auth_and_bounded_memory() -> None:
    result = run_flower_script(compose_flower_script(), "admin:s3cret pass")
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert argv[:4] == ["celery", "-A", "workers.app", "flower"]
    assert "--basic-auth=admin:s3cret pass" in argv
    assert "--max_tasks=10000" in argv
