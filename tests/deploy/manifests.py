"""Deployment files: schema-valid, and the fleet's invariants hold in every way of running it.

Compose, Kubernetes, systemd and redis.conf (and the scaled topology under deploy/scaled: RabbitMQ and a Redis Cluster,
in compose and as a kustomize overlay of deploy/k8s) must agree: two kinds of worker (single-process ingest workers,
prefork flush workers) with the same command everywhere and a consumer for every queue, exactly one beat, a flush worker
stop grace period that covers a whole upload, soft shutdown on SIGTERM for flush workers, Redis durable and never
evicting, Flower always authenticated and bounded, one image reference, and no secret value in any file. Schemas come
bundled with PyPI packages (no network): the compose specification from ``check-jsonschema``'s vendored copy, Kubernetes
from ``kubernetes-validate``.

What the checks of tests/deploy share: where the files are, how each kind of worker runs, how to read them.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import subprocess
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


DEPLOY = ROOT / "deploy"


K8S = DEPLOY / "k8s"


SYSTEMD = DEPLOY / "systemd"


# Ingest workers: one process, the task runs where the message is decoded. Flush workers: prefork, whose hard time
# limit bounds an upload.
INGEST_ARGS = [
    "celery",
    "-A",
    "workers.app",
    "worker",
    "-Q",
    "ingest",
    "-P",
    "solo",
    "--without-gossip",
    "--without-mingle",
]


FLUSH_ARGS = [
    "celery",
    "-A",
    "workers.app",
    "worker",
    "-Q",
    "flush",
    "-P",
    "prefork",
    "-c",
    "2",
    "--without-gossip",
    "--without-mingle",
]


BEAT_ARGS = ["celery", "-A", "workers.app", "beat", "-s", "/var/lib/signal/celerybeat-schedule"]


QUEUES = {"ingest", "flush"}


# A flush worker must be allowed to finish one whole upload before SIGKILL.
MIN_FLUSH_GRACE_S = 330


# An ingest task takes milliseconds; the grace period covers the warm shutdown and the requeue of reserved messages.
MIN_INGEST_GRACE_S = 30


# compose service / Kubernetes Deployment / systemd template of each kind of worker
WORKERS = {
    "ingest": {
        "compose": "ingest",
        "k8s": "signal-ingest",
        "unit": "signal-ingest@.service",
        "args": INGEST_ARGS,
        "min_grace_s": MIN_INGEST_GRACE_S,
    },
    "flush": {
        "compose": "flush",
        "k8s": "signal-flush",
        "unit": "signal-flush@.service",
        "args": FLUSH_ARGS,
        "min_grace_s": MIN_FLUSH_GRACE_S,
    },
}


SECRET_NAMES = ("SIGNAL_SECRET_KEY", "SIGNAL_ADMIN_TOKEN", "FLOWER_BASIC_AUTH")


# Secrets of the scaled topology only: the broker's URL holds RabbitMQ's password.
BROKER_SECRET_NAMES = ("SIGNAL_BROKER_URL", "RABBITMQ_DEFAULT_PASS")


SIGNAL_IMAGE_REPOSITORY = "registry.example.com/signal/signal-s3"


REDIS_REQUIRED = {"appendonly": "yes", "appendfsync": "everysec", "maxmemory-policy": "noeviction"}


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


UNITS = (
    "signal-ingest@.service",
    "signal-flush@.service",
    "signal-beat.service",
    "signal-api.service",
    "signal-flower.service",
)


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


def compose_validator() -> Any:
    import jsonschema

    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema = json.loads(text)
    return jsonschema.validators.validator_for(schema)(schema)


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
        env=env,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )


def grace_periods_s(kind: str) -> dict[str, float]:
    """The stop grace period of one kind of worker in compose, Kubernetes and systemd."""
    names = WORKERS[kind]
    return {
        "compose": duration_s(load_compose()["services"][names["compose"]]["stop_grace_period"]),
        "kubernetes": float(
            objects_of("Deployment")[names["k8s"]]["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        ),
        "systemd": float(unit(names["unit"])["Service"]["TimeoutStopSec"]),
    }


def worker_deployments() -> dict[str, dict[str, Any]]:
    return {
        name: d for name, d in objects_of("Deployment").items() if any("worker" in command_of(c) for c in containers(d))
    }


def config_literals() -> dict[str, str]:
    (generator,) = kustomization()["configMapGenerator"]
    assert generator["name"] == "signal-config"
    return dict(item.split("=", 1) for item in generator["literals"])


def k8s_flower_script() -> str:
    (container,) = containers(objects_of("Deployment")["signal-flower"])
    assert container["command"][:2] == ["sh", "-c"]
    return str(container["command"][2])


def redis_conf() -> dict[str, str]:
    directives: dict[str, str] = {}
    for line in (DEPLOY / "redis.conf").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            assert key not in directives, f"redis.conf sets {key} twice"
            directives[key] = value.strip()
    return directives


SECRET_PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "Fernet key": re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}=(?![A-Za-z0-9_=-])"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    # a password in a URL, unless it is a placeholder (<password>) or a shell variable ($password)
    "credentials in a URL": re.compile(r"[a-z]+://[^/\s:@]*:(?![<$])[^/\s@]+@"),
}


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
    return (
        obj["kind"] == selector["kind"]
        and obj["metadata"]["name"] == selector["name"]
        and obj["apiVersion"].split("/")[0] == selector.get("group", obj["apiVersion"].split("/")[0])
    )


def build_kustomization(directory: Path) -> list[dict[str, Any]]:
    """What ``kubectl kustomize`` makes of ``directory``, for the features these manifests use: resources (files and
    directories), a configMapGenerator that creates or merges, patches that delete an object (``$patch: delete``) or
    replace fields of a target (JSON 6902). Anything else fails here, so nothing new passes unchecked. Generated
    names keep no hash suffix."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    assert set(kustomization) <= {
        "apiVersion",
        "kind",
        "labels",
        "resources",
        "images",
        "configMapGenerator",
        "patches",
    }, set(kustomization)
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        path = directory / resource
        objects.extend(build_kustomization(path) if path.is_dir() else k8s_docs(path))
    for generator in kustomization.get("configMapGenerator", []):
        literals = dict(item.split("=", 1) for item in generator["literals"])
        if generator.get("behavior") == "merge":
            (existing,) = [
                o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"] == generator["name"]
            ]
            existing["data"].update(literals)
        else:
            objects.append(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]}, "data": literals}
            )
    for patch in kustomization.get("patches", []):
        body = yaml.safe_load(patch["patch"])
        if isinstance(body, list):
            targets = [o for o in objects if _matches(o, patch["target"])]
            assert len(targets) == 1, patch["target"]
            _json_patch(targets[0], body)
        else:
            assert body.pop("$patch") == "delete", "this builder knows strategic-merge deletes only"
            selector = {
                "kind": body["kind"],
                "name": body["metadata"]["name"],
                "group": body["apiVersion"].split("/")[0],
            }
            before = len(objects)
            objects = [o for o in objects if not _matches(o, selector)]
            assert len(objects) == before - 1, f"the patch deletes nothing: {selector}"
    return objects


def scaled_objects(kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in build_kustomization(SCALED_K8S) if o["kind"] == kind}


def consumer_timeout_ms(config: str) -> int:
    (value,) = re.findall(r"^\s*consumer_timeout\s*=\s*(\d+)\s*$", config, flags=re.MULTILINE)
    return int(value)


def scaled_env() -> dict[str, str]:
    return env_file(SCALED / "signal.env.example")
