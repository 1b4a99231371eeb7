"""Deployment files: schema-valid, and the fleet's invariants hold in every way of running it.

Compose, Kubernetes, systemd and redis.conf (and the scaled topology under deploy/scaled: RabbitMQ and a Redis
Cluster, in compose and as a kustomize overlay of deploy/k8s) must agree: two kinds of worker (single-process ingest workers, prefork
flush workers) with the same command everywhere and a consumer for every queue, exactly one beat, a flush worker stop
grace period that covers a whole upload, soft shutdown on SIGTERM for flush workers, Redis durable and never
evicting, Flower always authenticated and bounded, one image reference, and no secret value in any file. Schemas come
bundled with PyPI packages (no network): the compose specification from
``check-jsonschema``'s vendored copy, Kubernetes from ``kubernetes-validate``.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
import yaml

from workers.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
SYSTEMD = DEPLOY / "systemd"

# Ingest workers: one process, the task runs where the message is decoded. Flush workers: prefork, whose hard time
# limit bounds an upload.
INGEST_ARGS = ["celery", "-A", "workers.app", "worker", "-Q", "ingest", "-P", "solo",
               "--without-gossip", "--without-mingle"]
FLUSH_ARGS = ["celery", "-A", "workers.app", "worker", "-Q", "flush", "-P", "prefork", "-c", "2",
              "--without-gossip", "--without-mingle"]
BEAT_ARGS = ["celery", "-A", "workers.app", "beat", "-s", "/var/lib/signal/celerybeat-schedule"]
QUEUES = {"ingest", "flush"}
# A flush worker must be allowed to finish one whole upload before SIGKILL.
MIN_FLUSH_GRACE_S = 330
# An ingest task takes milliseconds; the grace period covers the warm shutdown and the requeue of reserved messages.
MIN_INGEST_GRACE_S = 30
# compose service / Kubernetes Deployment / systemd template of each kind of worker
WORKERS = {
    "ingest": {"compose": "ingest", "k8s": "signal-ingest", "unit": "signal-ingest@.service", "args": INGEST_ARGS,
               "min_grace_s": MIN_INGEST_GRACE_S},
    "flush": {"compose": "flush", "k8s": "signal-flush", "unit": "signal-flush@.service", "args": FLUSH_ARGS,
              "min_grace_s": MIN_FLUSH_GRACE_S},
}
SECRET_NAMES = ("SIGNAL_SECRET_KEY", "SIGNAL_ADMIN_TOKEN", "FLOWER_BASIC_AUTH")
# Secrets of the scaled topology only: the broker's URL holds RabbitMQ's password.
BROKER_SECRET_NAMES = ("SIGNAL_BROKER_URL", "RABBITMQ_DEFAULT_PASS")
SIGNAL_IMAGE_REPOSITORY = "registry.example.com/signal/signal-s3"
REDIS_REQUIRED = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


# -- helpers --------------------------------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def k8s_files() -> list[Path]:
    return sorted(K8S.glob("*.yaml"))


def k8s_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def applied_objects() -> list[dict[str, Any]]:
    """Every object ``kubectl apply -k`` creates from the listed resources."""
    objects: list[dict[str, Any]] = []
    for name in kustomization()["resources"]:
        objects.extend(k8s_docs(K8S / name))
    return objects


def objects_of(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in applied_objects() if o["kind"] == kind}


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def command_of(container: dict[str, Any]) -> list[str]:
    return list(container.get("command", [])) + list(container.get("args", []))


def flag_pairs(args: list[str]) -> dict[str, str]:
    """``["--a", "1", "--b", "2"]`` -> ``{"a": "1", "b": "2"}`` (redis-server style options)."""
    pairs: dict[str, str] = {}
    for i, arg in enumerate(args):
        if arg.startswith("--") and i + 1 < len(args):
            pairs[arg[2:]] = args[i + 1]
    return pairs


def duration_s(value: str | int) -> float:
    """Compose durations: ``330s``, ``5m30s``, ``1h``, or a bare number of seconds."""
    if isinstance(value, int):
        return float(value)
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 0.000001}
    parts = re.findall(r"([0-9.]+)(h|ms|us|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(n) * units[u] for n, u in parts)


def env_file(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=value: {line!r}"
        assert key not in values, f"{path.name}: {key} set twice"
        values[key] = value
    return values


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((SYSTEMD / name).read_text())
    return parser


UNITS = ("signal-ingest@.service", "signal-flush@.service", "signal-beat.service", "signal-api.service",
         "signal-flower.service")


def queues_of(args: list[str]) -> set[str]:
    """The queues a ``celery worker`` command consumes (its ``-Q`` value)."""
    assert args.count("-Q") == 1, args
    return set(args[args.index("-Q") + 1].split(","))


def pool_of(args: list[str]) -> str:
    assert args.count("-P") == 1, args
    return args[args.index("-P") + 1]


def all_deploy_files() -> Iterator[Path]:
    for path in sorted(DEPLOY.rglob("*")):
        if path.is_file():
            yield path


# -- compose --------------------------------------------------------------------------------------------------------


def compose_validator() -> Any:
    pytest.importorskip("check_jsonschema", reason="check-jsonschema ships the compose-spec JSON schema")
    import jsonschema

    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


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
    consumers = {name: queues_of(svc["command"]) for name, svc in services.items()
                 if "worker" in svc.get("command", [])}
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


def compose_flower_script() -> str:
    command = load_compose()["services"]["flower"]["command"]
    assert command[:2] == ["sh", "-c"]
    return command[2].replace("$$", "$")  # compose's escape for a literal $


def run_flower_script(script: str, auth: str | None) -> subprocess.CompletedProcess[str]:
    """Run the start script with ``celery`` replaced by ``printf``: one line per argument Flower would get."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if auth is not None:
        env["FLOWER_BASIC_AUTH"] = auth
    return subprocess.run(
        ["sh", "-c", script.replace("exec celery", "exec printf '%s\\n' celery")],
        env=env, capture_output=True, text=True, timeout=10, check=False,
    )


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


# -- kubernetes -----------------------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in k8s_files()} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert all(o["kind"] != "Secret" for o in applied_objects())


def test_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate ships the Kubernetes schemas")
    version = kv.latest_version()
    checked: list[str] = []
    for path in k8s_files():
        if path.name == "kustomization.yaml":
            continue
        for doc in k8s_docs(path):
            if doc["apiVersion"].startswith("keda.sh/"):
                continue  # a CRD: checked by test_keda_scales_workers_on_both_queues
            kv.validate(doc, version, strict=True)
            checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
    assert {"Deployment/signal-ingest", "Deployment/signal-flush", "Deployment/signal-beat", "Deployment/signal-api",
            "Deployment/signal-flower", "Service/signal-api", "Service/signal-flower",
            "StatefulSet/signal-redis", "Service/signal-redis", "PodDisruptionBudget/signal-ingest",
            "PodDisruptionBudget/signal-flush", "Secret/signal-secrets"} <= set(checked)


def test_the_kubernetes_schema_rejects_a_broken_manifest() -> None:
    kv = pytest.importorskip("kubernetes_validate")
    broken = objects_of("Deployment")["signal-flush"]
    broken["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "330"
    with pytest.raises(kv.ValidationError):
        kv.validate(broken, kv.latest_version(), strict=True)


def test_manifests_are_namespace_agnostic() -> None:
    assert "namespace" not in kustomization()
    for path in k8s_files():
        for doc in k8s_docs(path):
            assert "namespace" not in doc.get("metadata", {}), f"{path.name}: {doc['kind']} sets a namespace"


def test_kubernetes_runs_exactly_one_beat_and_never_two_during_a_rollout() -> None:
    deployments = objects_of("Deployment")
    beats = [n for n, d in deployments.items() if any("beat" in command_of(c) for c in containers(d))]
    assert beats == ["signal-beat"]
    beat = deployments["signal-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert command_of(containers(beat)[0]) == BEAT_ARGS


@pytest.mark.parametrize("kind", WORKERS)
def test_kubernetes_workers_stop_softly(kind: str) -> None:
    worker = objects_of("Deployment")[WORKERS[kind]["k8s"]]
    pod = worker["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= WORKERS[kind]["min_grace_s"]
    (container,) = pod["containers"]
    assert command_of(container) == WORKERS[kind]["args"]
    assert "lifecycle" not in container  # SIGTERM itself starts the soft shutdown
    assert "livenessProbe" not in container
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]["memory"]
    probe = container["readinessProbe"]
    assert "inspect ping -d \"celery@$HOSTNAME\"" in probe["exec"]["command"][-1]
    assert probe["periodSeconds"] >= 60
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in worker["spec"]  # KEDA owns the count


def grace_periods_s(kind: str) -> dict[str, float]:
    """The stop grace period of one kind of worker in compose, Kubernetes and systemd."""
    names = WORKERS[kind]
    return {
        "compose": duration_s(load_compose()["services"][names["compose"]]["stop_grace_period"]),
        "kubernetes": float(objects_of("Deployment")[names["k8s"]]["spec"]["template"]["spec"][
            "terminationGracePeriodSeconds"]),
        "systemd": float(unit(names["unit"])["Service"]["TimeoutStopSec"]),
    }


def test_flush_worker_grace_period_covers_a_whole_upload_everywhere() -> None:
    upload_timeout_s = float(env_file(DEPLOY / "signal.env.example")["SIGNAL_UPLOAD_TIMEOUT_S"])
    settings = Settings(upload_timeout_s=upload_timeout_s)
    soft_shutdown_s = settings.upload_timeout_s / 4
    for where, grace_s in grace_periods_s("flush").items():
        assert grace_s >= MIN_FLUSH_GRACE_S, where
        assert grace_s >= settings.upload_time_limit_s, where
        assert grace_s > soft_shutdown_s, where


def test_ingest_worker_grace_period_is_the_same_everywhere() -> None:
    """An ingest task takes milliseconds and a redelivered one appends nothing twice: a short grace is enough."""
    grace = grace_periods_s("ingest")
    assert len(set(grace.values())) == 1, grace
    assert all(MIN_INGEST_GRACE_S <= g <= MIN_FLUSH_GRACE_S for g in grace.values()), grace


def test_ingest_workers_run_one_process_and_flush_workers_prefork() -> None:
    """Uploads need prefork's hard time limit; ingest runs in the process that decodes the message."""
    assert pool_of(INGEST_ARGS) == "solo" and "-c" not in INGEST_ARGS
    assert pool_of(FLUSH_ARGS) == "prefork"
    assert queues_of(INGEST_ARGS) == {"ingest"} and queues_of(FLUSH_ARGS) == {"flush"}


def worker_deployments() -> dict[str, dict[str, Any]]:
    return {name: d for name, d in objects_of("Deployment").items()
            if any("worker" in command_of(c) for c in containers(d))}


def test_kubernetes_workers_consume_every_queue() -> None:
    consumers = {name: queues_of(command_of(containers(d)[0])) for name, d in worker_deployments().items()}
    assert consumers == {"signal-ingest": {"ingest"}, "signal-flush": {"flush"}}


def test_worker_disruption_budgets_select_each_kind_of_worker() -> None:
    pdbs = objects_of("PodDisruptionBudget")
    deployments = worker_deployments()
    assert len(pdbs) == len(deployments) == 2
    for name, worker in deployments.items():
        selecting = [p for p in pdbs.values() if p["spec"]["selector"]["matchLabels"] ==
                     worker["spec"]["selector"]["matchLabels"]]
        assert len(selecting) == 1, name
        assert selecting[0]["spec"]["maxUnavailable"] == 1
    selectors = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in deployments.values()]
    assert len(set(selectors)) == len(selectors), "each kind of worker has its own selector"


def test_keda_scales_each_kind_of_worker_on_its_own_queue() -> None:
    scaled_objects = objects_of("ScaledObject")
    deployments = worker_deployments()
    targets = {s["spec"]["scaleTargetRef"]["name"]: s for s in scaled_objects.values()}
    assert set(targets) == set(deployments) and len(scaled_objects) == len(deployments)
    literals = config_literals()
    for name, scaled in targets.items():
        assert scaled["apiVersion"] == "keda.sh/v1alpha1"
        assert scaled["spec"]["scaleTargetRef"] == {"name": name}
        # never zero: beat's ticks and every upload need a flush worker, every accepted event an ingest worker
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        triggers = scaled["spec"]["triggers"]
        assert [t["type"] for t in triggers] == ["redis"]
        (container,) = containers(deployments[name])
        assert {t["metadata"]["listName"] for t in triggers} == queues_of(command_of(container))
        for trigger in triggers:
            meta = trigger["metadata"]
            assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
            assert int(meta["listLength"]) > 0
            assert "address" not in meta
            assert re.fullmatch(r"[^:/]+:[0-9]+", literals[meta["addressFromEnv"]])
            assert meta["databaseIndex"] == literals["SIGNAL_REDIS_URL"].rsplit("/", 1)[1]
        # the worker's containers carry the variable KEDA reads
        assert {"configMapRef": {"name": "signal-config"}} in container["envFrom"]


def config_literals() -> dict[str, str]:
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["name"] == "signal-config"
    return dict(item.split("=", 1) for item in generator["literals"])


def test_config_map_holds_the_non_secret_settings() -> None:
    literals = config_literals()
    assert literals["SIGNAL_FLUSH_INTERVAL_S"] == "60"
    assert literals["SIGNAL_VISIBILITY_TIMEOUT_S"] == "300"
    assert literals["SIGNAL_UPLOAD_TIMEOUT_S"] == "240"
    assert literals["SIGNAL_REDIS_URL"].startswith("redis://")
    assert not set(literals) & set(SECRET_NAMES)


def test_kubernetes_redis_is_durable_and_never_evicts() -> None:
    redis = objects_of("StatefulSet")["signal-redis"]
    (container,) = containers(redis)
    assert container["image"].startswith("redis:7")
    args = command_of(container)
    assert args[0] == "redis-server"
    options = flag_pairs(args)
    assert {k: options.get(k) for k in REDIS_REQUIRED} == REDIS_REQUIRED
    assert "maxmemory" in options
    assert redis["spec"]["replicas"] == 1
    assert redis["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    service = objects_of("Service")["signal-redis"]
    assert redis["spec"]["serviceName"] == "signal-redis"
    assert service["spec"]["selector"] == redis["spec"]["selector"]["matchLabels"]


def k8s_flower_script() -> str:
    (container,) = containers(objects_of("Deployment")["signal-flower"])
    assert container["command"][:2] == ["sh", "-c"]
    return str(container["command"][2])


@pytest.mark.parametrize("auth", [None, "", "admin"])
def test_kubernetes_flower_refuses_to_start_without_basic_auth(auth: str | None) -> None:
    result = run_flower_script(k8s_flower_script(), auth)
    assert result.returncode != 0
    assert "FLOWER_BASIC_AUTH" in result.stderr


def test_kubernetes_flower_has_basic_auth_from_the_secret_and_bounded_memory() -> None:
    flower = objects_of("Deployment")["signal-flower"]
    assert flower["spec"]["replicas"] == 1
    (container,) = containers(flower)
    (auth,) = [e for e in container["env"] if e["name"] == "FLOWER_BASIC_AUTH"]
    assert auth["valueFrom"]["secretKeyRef"] == {"name": "signal-secrets", "key": "FLOWER_BASIC_AUTH"}
    result = run_flower_script(k8s_flower_script(), "admin:pw")
    assert result.returncode == 0, result.stderr
    argv = result.stdout.splitlines()
    assert "--basic-auth=admin:pw" in argv and "--max_tasks=10000" in argv
    assert objects_of("Service")["signal-flower"]["spec"]["type"] == "ClusterIP"


def test_api_is_exposed_on_8084() -> None:
    api = objects_of("Deployment")["signal-api"]
    (container,) = containers(api)
    assert command_of(container)[:2] == ["signal-s3", "api"]
    assert container["ports"] == [{"name": "http", "containerPort": 8084}]
    service = objects_of("Service")["signal-api"]
    assert service["spec"]["ports"][0]["port"] == 8084
    assert service["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]


def test_workload_selectors_match_their_pods() -> None:
    for kind in ("Deployment", "StatefulSet"):
        for name, workload in objects_of(kind).items():
            labels = workload["spec"]["template"]["metadata"]["labels"]
            for key, value in workload["spec"]["selector"]["matchLabels"].items():
                assert labels.get(key) == value, f"{kind}/{name}"


def test_kubernetes_uses_one_image_set_in_one_place() -> None:
    (image,) = kustomization()["images"]
    assert image["name"] == "signal-s3"
    assert image["newName"] == SIGNAL_IMAGE_REPOSITORY and image["newTag"]
    workloads = [*objects_of("Deployment").values(), *objects_of("StatefulSet").values()]
    signal_images = {c["image"] for w in workloads for c in containers(w) if not c["image"].startswith("redis")}
    assert signal_images == {"signal-s3"}
    for path in k8s_files():
        if path.name != "kustomization.yaml":
            assert SIGNAL_IMAGE_REPOSITORY not in path.read_text(), path.name


def test_secrets_reach_pods_only_through_secret_refs() -> None:
    for kind in ("Deployment", "StatefulSet"):
        for name, workload in objects_of(kind).items():
            for container in containers(workload):
                for source in container.get("envFrom", []):
                    assert "configMapRef" in source, f"{name}: only the ConfigMap is imported whole"
                for var in container.get("env", []):
                    if var["name"] in (*SECRET_NAMES, *BROKER_SECRET_NAMES):
                        assert "value" not in var, f"{name}: {var['name']} written inline"
                        assert var["valueFrom"]["secretKeyRef"]["name"] == "signal-secrets"


def test_secret_template_holds_placeholders_only() -> None:
    (secret,) = k8s_docs(K8S / "secret.example.yaml")
    assert secret["kind"] == "Secret"
    assert set(secret["stringData"]) == set(SECRET_NAMES)
    assert "data" not in secret
    for key, value in secret["stringData"].items():
        assert re.fullmatch(r"<[a-z-]+>(:<[a-z-]+>)?", value), f"{key} is not a placeholder"


# -- systemd --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", UNITS)
def test_systemd_units_share_the_stop_and_restart_rules(name: str) -> None:
    service = unit(name)["Service"]
    assert service["User"] == "signal"
    assert service["KillSignal"] == "SIGTERM"
    assert service["KillMode"] == "mixed"  # SIGTERM to Celery's main process, not its pool children
    assert service["Restart"] == "always"
    min_grace_s = MIN_INGEST_GRACE_S if name == WORKERS["ingest"]["unit"] else MIN_FLUSH_GRACE_S
    assert int(service["TimeoutStopSec"]) >= min_grace_s
    assert service["EnvironmentFile"] == "/etc/signal/signal.env"
    assert unit(name)["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.parametrize("kind", WORKERS)
def test_systemd_workers_are_templates_with_a_node_name_per_instance(kind: str) -> None:
    exec_start = shlex.split(unit(WORKERS[kind]["unit"])["Service"]["ExecStart"])
    assert exec_start[0].endswith("/celery")
    assert ["celery", *exec_start[1:-1]] == WORKERS[kind]["args"]
    assert exec_start[-1] == f"--hostname={kind}%i@%H"


def test_systemd_workers_consume_every_queue_and_the_old_unit_is_gone() -> None:
    consumers = {}
    for path in sorted(SYSTEMD.glob("*.service")):
        exec_start = shlex.split(unit(path.name)["Service"]["ExecStart"])
        if "worker" in exec_start:
            consumers[path.name] = queues_of(exec_start)
    assert consumers == {"signal-flush@.service": {"flush"}, "signal-ingest@.service": {"ingest"}}
    assert not (SYSTEMD / "signal-worker@.service").exists()


def test_systemd_has_one_beat_unit_that_is_not_a_template() -> None:
    beat_units = [p.name for p in SYSTEMD.glob("*.service") if " beat " in unit(p.name)["Service"]["ExecStart"]]
    assert beat_units == ["signal-beat.service"]
    exec_start = shlex.split(unit("signal-beat.service")["Service"]["ExecStart"])
    assert ["celery", *exec_start[1:]] == BEAT_ARGS


def test_systemd_flower_is_loopback_only_with_auth_and_bounded_memory() -> None:
    service = unit("signal-flower.service")["Service"]
    exec_start = shlex.split(service["ExecStart"])
    assert "--address=127.0.0.1" in exec_start
    assert "--basic-auth=${FLOWER_BASIC_AUTH}" in exec_start
    assert "--max_tasks=10000" in exec_start
    guard = shlex.split(service["ExecStartPre"])
    assert guard[:2] == ["/bin/sh", "-c"]
    script = guard[2].replace("$$", "$")  # systemd's escape for a literal $
    assert run_flower_script(script, None).returncode != 0
    assert run_flower_script(script, "admin").returncode != 0
    assert run_flower_script(script, "admin:pw").returncode == 0


def test_systemd_api_listens_on_loopback_8084() -> None:
    exec_start = shlex.split(unit("signal-api.service")["Service"]["ExecStart"])
    assert exec_start[0].endswith("/signal-s3")
    assert exec_start[1:] == ["api", "--host", "127.0.0.1", "--port", "8084"]


def test_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    if not (venv_bin / "celery").exists() or not (venv_bin / "signal-s3").exists():
        pytest.skip("the celery and signal-s3 scripts are not installed")
    names = []
    for name in UNITS:
        text = (SYSTEMD / name).read_text()
        text = text.replace("/opt/signal/venv/bin/", f"{venv_bin}/")
        text = text.replace("/etc/signal/signal.env", str(SYSTEMD / "signal.env.example"))
        target = name.replace("@.service", "@1.service")
        (tmp_path / target).write_text(text)
        names.append(target)
    result = subprocess.run(
        [analyze, "verify", "--man=no", *names],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    complaints = [line for line in result.stderr.splitlines() if str(tmp_path) in line or "signal-" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []


# -- settings files, redis.conf, secrets ----------------------------------------------------------------------------


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
    known = {k[len("SIGNAL_"):].lower(): v for k, v in values.items() if k.startswith("SIGNAL_") and v}
    settings = Settings(**known)
    assert settings.flush_interval_s == 60.0
    assert settings.visibility_timeout_s == 300
    assert settings.upload_timeout_s == 240.0


def redis_conf() -> dict[str, str]:
    directives: dict[str, str] = {}
    for line in (DEPLOY / "redis.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            assert key not in directives, f"redis.conf sets {key} twice"
            directives[key] = value.strip()
    return directives


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
    assert sorted(configuring) == ["compose.yaml", "k8s/redis.yaml", "redis.conf", "scaled/compose.yaml",
                                   "scaled/k8s/redis-cluster.yaml"]


SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Fernet key": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # a password in a URL, unless it is a placeholder (<password>) or a shell variable ($password)
    "credentials in a URL": re.compile(r"[a-z]+://[^/\s:@]*:(?![<$])[^/\s@]+@"),
}


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


def worker_environments(kind: str) -> dict[str, dict[str, str | None]]:
    """The inline environment of one kind of worker in compose, Kubernetes and systemd."""
    names = WORKERS[kind]
    (container,) = objects_of("Deployment")[names["k8s"]]["spec"]["template"]["spec"]["containers"]
    systemd_lines = unit(names["unit"])["Service"].get("Environment", "")
    return {
        "compose": dict(load_compose()["services"][names["compose"]].get("environment", {})),
        "kubernetes": {e["name"]: e.get("value") for e in container.get("env", [])},
        "systemd": dict(item.split("=", 1) for item in shlex.split(systemd_lines)),
    }


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


# -- the scaled topology: RabbitMQ quorum queues and a Redis Cluster ---------------------------------------------------

SCALED = DEPLOY / "scaled"
SCALED_K8S = SCALED / "k8s"
SIGNAL_SERVICES = ("ingest", "flush", "beat", "api", "flower")
# Redis Cluster: three masters with one replica each.
CLUSTER_MASTERS, CLUSTER_REPLICAS = 3, 1


def load_scaled_compose() -> dict[str, Any]:
    return yaml.safe_load((SCALED / "compose.yaml").read_text())


def _json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> None:
    for op in ops:
        assert op["op"] == "replace", f"this builder knows JSON 6902 'replace' only, not {op['op']}"
        *parents, last = op["path"].strip("/").split("/")
        target = obj
        for part in parents:
            target = target[part]
        assert last in target, f"replace of a missing field {op['path']}"
        target[last] = op["value"]


def _matches(obj: dict[str, Any], selector: dict[str, Any]) -> bool:
    return (obj["kind"] == selector["kind"] and obj["metadata"]["name"] == selector["name"]
            and obj["apiVersion"].split("/")[0] == selector.get("group", obj["apiVersion"].split("/")[0]))


def build_kustomization(directory: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` makes of ``directory``, for the features these manifests use: resources (files and
    directories), a configMapGenerator that creates or merges, patches that delete an object (``$patch: delete``) or
    replace fields of a target (JSON 6902). Anything else fails here, so nothing new passes unchecked. Generated
    names keep no hash suffix."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {"apiVersion", "kind", "labels", "resources", "images", "configMapGenerator",
                                  "patches"}, set(kustomization)
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects.extend(build_kustomization(path) if path.is_dir() else k8s_docs(path))
    for generator in kustomization.get("configMapGenerator", []):
        literals = dict(item.split("=", 1) for item in generator["literals"])
        if generator.get("behavior") == "merge":
            (existing,) = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == generator["name"]]
            existing["data"].update(literals)
        else:
            objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
                            "data": literals})
    for patch in kustomization.get("patches", []):
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, list):
            targets = [o for o in objects if _matches(o, patch["target"])]
            assert len(targets) == 1, patch["target"]
            _json_patch(targets[0], body)
        else:
            assert body.pop("$patch") == "delete", "this builder knows strategic-merge deletes only"
            selector = {"kind": body["kind"], "name": body["metadata"]["name"], "group": body["apiVersion"].split("/")[0]}
            before = len(objects)
            objects = [o for o in objects if not _matches(o, selector)]
            assert len(objects) == before - 1, f"the patch deletes nothing: {selector}"
    return objects


def scaled_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in build_kustomization(SCALED_K8S) if o["kind"] == kind}


def consumer_timeout_ms(config: str) -> int:
    (value,) = re.findall(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", config, flags=re.MULTILINE)
    return int(value)


def test_the_scaled_compose_file_follows_the_compose_specification() -> None:
    validator = compose_validator()
    assert [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load_scaled_compose())] == []


def test_the_scaled_compose_file_runs_the_same_fleet() -> None:
    base, scaled = load_compose()["services"], load_scaled_compose()["services"]
    for name in SIGNAL_SERVICES:
        for field in ("command", "stop_signal", "stop_grace_period", "environment", "ports"):
            assert scaled[name].get(field) == base[name].get(field), (name, field)
        assert scaled[name]["env_file"] == ["signal.env"]
        assert scaled[name]["depends_on"] == {"rabbitmq": {"condition": "service_healthy"},
                                              "redis-cluster-create": {"condition": "service_completed_successfully"}}
    assert scaled["beat"]["deploy"]["replicas"] == 1
    beats = [name for name, svc in scaled.items() if "beat" in svc.get("command", [])]
    assert beats == ["beat"]
    for name, service in scaled.items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_the_scaled_compose_redis_is_a_durable_cluster_of_three_masters_with_replicas() -> None:
    services = load_scaled_compose()["services"]
    nodes = sorted(name for name in services if re.fullmatch(r"redis-\d+", name))
    assert len(nodes) == CLUSTER_MASTERS * (1 + CLUSTER_REPLICAS)
    for name in nodes:
        node = services[name]
        assert node["image"].startswith("redis:7") and node["hostname"] == name
        script = node["command"][2]
        for option in ("--cluster-enabled yes", "--appendonly yes", "--appendfsync everysec",
                       "--maxmemory-policy noeviction", "--cluster-preferred-endpoint-type hostname"):
            assert option in script, (name, option)
        assert any(v.endswith(":/data") for v in node["volumes"]), name
    create = services["redis-cluster-create"]
    assert set(create["depends_on"]) == set(nodes)
    script = create["command"][2].replace("$$", "$")
    assert f"--cluster-replicas {CLUSTER_REPLICAS}" in script and "for n in 1 2 3 4 5 6;" in script
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True, timeout=10).returncode == 0


def scaled_env() -> dict[str, str]:
    return env_file(SCALED / "signal.env.example")


def test_the_scaled_env_example_selects_rabbitmq_and_the_cluster_and_needs_the_broker_secret() -> None:
    from pydantic import ValidationError

    values = scaled_env()
    for name in (*SECRET_NAMES, *BROKER_SECRET_NAMES):
        assert values[name] == "", f"{name} must be empty in an example"
    assert values["SIGNAL_REDIS_CLUSTER"] == "true" and values["SIGNAL_REDIS_MIN_REPLICAS"] == "1"
    assert values["SIGNAL_REDIS_URL"] == "redis://redis-1:6379/0"
    known = {k[len("SIGNAL_"):].lower(): v for k, v in values.items() if k.startswith("SIGNAL_") and v}
    with pytest.raises(ValidationError, match="SIGNAL_BROKER_URL"):
        Settings(**known)  # the broker URL is a secret, and a Redis Cluster cannot be the broker
    settings = Settings(**known, broker_url="amqp://signal@rabbitmq:5672/%2F")
    assert settings.redis_cluster and settings.broker_is_amqp
    assert (SCALED / ".gitignore").read_text().splitlines()[-1] == "signal.env"


def test_rabbitmq_redelivers_nothing_an_upload_still_holds_everywhere() -> None:
    """RabbitMQ's consumer_timeout must stay above an upload's hard time limit, or a slow upload is delivered twice."""
    upload_timeout_s = float(env_file(DEPLOY / "signal.env.example")["SIGNAL_UPLOAD_TIMEOUT_S"])
    limit_ms = Settings(upload_timeout_s=upload_timeout_s).upload_time_limit_s * 1000
    compose_conf = (SCALED / "rabbitmq.conf").read_text()
    (cluster,) = scaled_objects("RabbitmqCluster").values()
    operator_conf = cluster["spec"]["rabbitmq"]["additionalConfig"]
    for where, config in (("compose", compose_conf), ("kubernetes", operator_conf)):
        assert consumer_timeout_ms(config) >= 2 * limit_ms, where
    rabbitmq = load_scaled_compose()["services"]["rabbitmq"]
    assert "./rabbitmq.conf:/etc/rabbitmq/conf.d/20-signal.conf:ro" in rabbitmq["volumes"]
    assert any(v.endswith(":/var/lib/rabbitmq") for v in rabbitmq["volumes"])


def test_the_scaled_overlay_swaps_the_single_redis_for_a_cluster_and_adds_rabbitmq() -> None:
    built = build_kustomization(SCALED_K8S)
    names = {(o["kind"], o["metadata"]["name"]) for o in built}
    assert ("StatefulSet", "signal-redis") not in names and ("Service", "signal-redis") not in names
    assert {("StatefulSet", "signal-redis-cluster"), ("Service", "signal-redis-cluster"),
            ("Job", "signal-redis-cluster-create"), ("PodDisruptionBudget", "signal-redis-cluster"),
            ("RabbitmqCluster", "signal-rabbitmq"), ("TriggerAuthentication", "signal-rabbitmq")} <= names
    # the fleet itself is the base's, unchanged
    base = {(o["kind"], o["metadata"]["name"]): o for o in applied_objects() if o["kind"] == "Deployment"}
    assert {k: o for k, o in ((("Deployment", n), d) for n, d in scaled_objects("Deployment").items())} == base
    (cluster,) = scaled_objects("RabbitmqCluster").values()
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert cluster["spec"]["replicas"] >= 3 and cluster["spec"]["replicas"] % 2 == 1  # a quorum survives one loss
    assert "namespace" not in yaml.safe_load((SCALED_K8S / "kustomization.yaml").read_text())


def test_the_scaled_overlays_objects_follow_the_kubernetes_schemas() -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate ships the Kubernetes schemas")
    version = kv.latest_version()
    checked = []
    for obj in build_kustomization(SCALED_K8S):
        if obj["apiVersion"].split("/")[0] in ("keda.sh", "rabbitmq.com"):
            continue  # custom resources: checked field by field in the tests of this section
        kv.validate(obj, version, strict=True)
        checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
    assert {"StatefulSet/signal-redis-cluster", "Service/signal-redis-cluster", "Job/signal-redis-cluster-create",
            "PodDisruptionBudget/signal-redis-cluster", "ConfigMap/signal-config"} <= set(checked)
    (secret,) = k8s_docs(SCALED_K8S / "secret.example.yaml")
    kv.validate(secret, version, strict=True)


def test_the_scaled_settings_select_the_cluster_and_take_the_broker_from_the_secret() -> None:
    (config,) = scaled_objects("ConfigMap").values()
    literals = config["data"]
    assert literals["SIGNAL_REDIS_CLUSTER"] == "true" and literals["SIGNAL_REDIS_MIN_REPLICAS"] == "1"
    host = literals["SIGNAL_REDIS_URL"].split("//", 1)[1].split(":", 1)[0]
    assert host == scaled_objects("StatefulSet")["signal-redis-cluster"]["spec"]["serviceName"]
    assert "SIGNAL_BROKER_URL" not in literals  # it holds a password
    known = {k[len("SIGNAL_"):].lower(): v for k, v in literals.items() if k.startswith("SIGNAL_")}
    known.pop("redis_address")
    assert Settings(**known, broker_url="amqp://signal@signal-rabbitmq:5672/%2F").redis_cluster
    (secret,) = k8s_docs(SCALED_K8S / "secret.example.yaml")
    assert set(secret["stringData"]) == {*SECRET_NAMES, "SIGNAL_BROKER_URL"}
    for key, value in secret["stringData"].items():
        assert re.fullmatch(r"<[a-z-]+>(:<[a-z-]+>)?", value), f"{key} is not a placeholder"


def test_every_signal_pod_takes_the_broker_url_from_the_secret_when_there_is_one() -> None:
    for name, deployment in objects_of("Deployment").items():
        for container in containers(deployment):
            (var,) = [e for e in container["env"] if e["name"] == "SIGNAL_BROKER_URL"]
            # optional: on one Redis there is no such key, and the broker is SIGNAL_REDIS_URL
            assert var["valueFrom"]["secretKeyRef"] == {"name": "signal-secrets", "key": "SIGNAL_BROKER_URL",
                                                        "optional": True}, name


def test_keda_scales_each_kind_of_worker_on_its_rabbitmq_queue() -> None:
    deployments = worker_deployments()
    scaled_objects_ = scaled_objects("ScaledObject")
    assert set(scaled_objects_) == set(deployments)
    (auth,) = scaled_objects("TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"] == [{"parameter": "host", "name": "signal-secrets",
                                                "key": "SIGNAL_BROKER_URL"}]
    for name, scaled in scaled_objects_.items():
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
        triggers = scaled["spec"]["triggers"]
        assert [t["type"] for t in triggers] == ["rabbitmq"]
        (container,) = containers(deployments[name])
        assert {t["metadata"]["queueName"] for t in triggers} == queues_of(command_of(container))
        for trigger in triggers:
            meta = trigger["metadata"]
            assert all(isinstance(v, str) for v in meta.values()), "KEDA metadata values are strings"
            assert meta["protocol"] == "amqp" and meta["mode"] == "QueueLength" and int(meta["value"]) > 0
            assert "host" not in meta and trigger["authenticationRef"] == {"name": auth["metadata"]["name"]}


def test_the_kubernetes_redis_cluster_is_durable_and_created_as_three_masters_with_replicas() -> None:
    cluster = scaled_objects("StatefulSet")["signal-redis-cluster"]
    assert cluster["spec"]["replicas"] == CLUSTER_MASTERS * (1 + CLUSTER_REPLICAS)
    (container,) = containers(cluster)
    options = flag_pairs(command_of(container))
    assert {k: options.get(k) for k in REDIS_REQUIRED} == REDIS_REQUIRED
    assert options["cluster-enabled"] == "yes" and options["cluster-preferred-endpoint-type"] == "hostname"
    assert options["cluster-announce-hostname"] == "$(POD_NAME).signal-redis-cluster"
    assert options["cluster-config-file"].startswith("/data/")  # the node's identity survives a restart
    assert [e["name"] for e in container["env"]] == ["POD_NAME"]
    service = scaled_objects("Service")["signal-redis-cluster"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == cluster["spec"]["selector"]["matchLabels"]
    assert scaled_objects("PodDisruptionBudget")["signal-redis-cluster"]["spec"]["maxUnavailable"] == 1
    job = scaled_objects("Job")["signal-redis-cluster-create"]
    (create,) = containers(job)
    script = create["command"][2]
    assert f"--cluster-replicas {CLUSTER_REPLICAS}" in script
    assert f"for i in {' '.join(str(i) for i in range(cluster['spec']['replicas']))}; do" in script
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True, timeout=10).returncode == 0
