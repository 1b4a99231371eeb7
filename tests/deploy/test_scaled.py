"""The scaled topology (deploy/scaled): RabbitMQ quorum queues and a Redis Cluster, in compose and as a kustomize
overlay."""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml

from tests.deploy.manifests import (
    BROKER_SECRET_NAMES,
    CLUSTER_MASTERS,
    CLUSTER_REPLICAS,
    DEPLOY,
    REDIS_REQUIRED,
    SCALED,
    SCALED_K8S,
    SECRET_NAMES,
    SIGNAL_SERVICES,
    applied_objects,
    build_kustomization,
    command_of,
    compose_validator,
    consumer_timeout_ms,
    containers,
    env_file,
    flag_pairs,
    k8s_docs,
    load_compose,
    load_scaled_compose,
    objects_of,
    queues_of,
    scaled_env,
    scaled_objects,
    worker_deployments,
)
from workers.settings import Settings


def test_the_scaled_compose_file_follows_the_compose_specification() -> None:
    validator = compose_validator()
    assert [f"{e.json_path}: {e.message}" for e in validator.iter_errors(load_scaled_compose())] == []


def test_the_scaled_compose_file_runs_the_same_fleet() -> None:
    base, scaled = load_compose()["services"], load_scaled_compose()["services"]
    for name in SIGNAL_SERVICES:
        for field in ("command", "stop_signal", "stop_grace_period", "environment", "ports"):
            assert scaled[name].get(field) == base[name].get(field), (name, field)
        assert scaled[name]["env_file"] == ["signal.env"]
        assert scaled[name]["depends_on"] == {
            "rabbitmq": {"condition": "service_healthy"},
            "redis-cluster-create": {"condition": "service_completed_successfully"},
        }
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
        for option in (
            "--cluster-enabled yes",
            "--appendonly yes",
            "--appendfsync everysec",
            "--maxmemory-policy noeviction",
            "--cluster-preferred-endpoint-type hostname",
        ):
            assert option in script, (name, option)
        assert any(v.endswith(":/data") for v in node["volumes"]), name
    create = services["redis-cluster-create"]
    assert set(create["depends_on"]) == set(nodes)
    script = create["command"][2].replace("$$", "$")
    assert f"--cluster-replicas {CLUSTER_REPLICAS}" in script and "for n in 1 2 3 4 5 6;" in script
    assert subprocess.run(["sh", "-n", "-c", script], capture_output=True, timeout=10).returncode == 0


def test_the_scaled_env_example_selects_rabbitmq_and_the_cluster_and_needs_the_broker_secret() -> None:
    from pydantic import ValidationError

    values = scaled_env()
    for name in (*SECRET_NAMES, *BROKER_SECRET_NAMES):
        assert values[name] == "", f"{name} must be empty in an example"
    assert values["SIGNAL_REDIS_CLUSTER"] == "true" and values["SIGNAL_REDIS_MIN_REPLICAS"] == "1"
    assert values["SIGNAL_REDIS_URL"] == "redis://redis-1:6379/0"
    known = {k[len("SIGNAL_") :].lower(): v for k, v in values.items() if k.startswith("SIGNAL_") and v}
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
    assert {
        ("StatefulSet", "signal-redis-cluster"),
        ("Service", "signal-redis-cluster"),
        ("Job", "signal-redis-cluster-create"),
        ("PodDisruptionBudget", "signal-redis-cluster"),
        ("RabbitmqCluster", "signal-rabbitmq"),
        ("TriggerAuthentication", "signal-rabbitmq"),
    } <= names
    # the fleet itself is the base's, unchanged
    base = {(o["kind"], o["metadata"]["name"]): o for o in applied_objects() if o["kind"] == "Deployment"}
    assert {k: o for k, o in ((("Deployment", n), d) for n, d in scaled_objects("Deployment").items())} == base
    (cluster,) = scaled_objects("RabbitmqCluster").values()
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert cluster["spec"]["replicas"] >= 3 and cluster["spec"]["replicas"] % 2 == 1  # a quorum survives one loss
    assert "namespace" not in yaml.safe_load((SCALED_K8S / "kustomization.yaml").read_text())


def test_the_scaled_overlays_objects_follow_the_kubernetes_schemas() -> None:
    import kubernetes_validate as kv

    version = kv.latest_version()
    checked = []
    for obj in build_kustomization(SCALED_K8S):
        if obj["apiVersion"].split("/")[0] in ("keda.sh", "rabbitmq.com", "monitoring.coreos.com"):
            continue  # custom resources: checked field by field in the tests of this section
        kv.validate(obj, version, strict=True)
        checked.append(f"{obj['kind']}/{obj['metadata']['name']}")
    assert {
        "StatefulSet/signal-redis-cluster",
        "Service/signal-redis-cluster",
        "Job/signal-redis-cluster-create",
        "PodDisruptionBudget/signal-redis-cluster",
        "ConfigMap/signal-config",
    } <= set(checked)
    (secret,) = k8s_docs(SCALED_K8S / "secret.example.yaml")
    kv.validate(secret, version, strict=True)


def test_the_scaled_settings_select_the_cluster_and_take_the_broker_from_the_secret() -> None:
    (config,) = scaled_objects("ConfigMap").values()
    literals = config["data"]
    assert literals["SIGNAL_REDIS_CLUSTER"] == "true" and literals["SIGNAL_REDIS_MIN_REPLICAS"] == "1"
    host = literals["SIGNAL_REDIS_URL"].split("//", 1)[1].split(":", 1)[0]
    assert host == scaled_objects("StatefulSet")["signal-redis-cluster"]["spec"]["serviceName"]
    assert "SIGNAL_BROKER_URL" not in literals  # it holds a password
    known = {k[len("SIGNAL_") :].lower(): v for k, v in literals.items() if k.startswith("SIGNAL_")}
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
            assert var["valueFrom"]["secretKeyRef"] == {
                "name": "signal-secrets",
                "key": "SIGNAL_BROKER_URL",
                "optional": True,
            }, name


def test_keda_scales_each_kind_of_worker_on_its_rabbitmq_queue() -> None:
    deployments = worker_deployments()
    scaled_objects_ = scaled_objects("ScaledObject")
    assert set(scaled_objects_) == set(deployments)
    (auth,) = scaled_objects("TriggerAuthentication").values()
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "signal-secrets", "key": "SIGNAL_BROKER_URL"}
    ]
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
