"""Kubernetes: the manifests of deploy/k8s."""

from __future__ import annotations

import re

import pytest

from tests.deploy.manifests import (
    BEAT_ARGS,
    BROKER_SECRET_NAMES,
    DEPLOY,
    FLUSH_ARGS,
    INGEST_ARGS,
    K8S,
    MIN_FLUSH_GRACE_S,
    MIN_INGEST_GRACE_S,
    REDIS_REQUIRED,
    SECRET_NAMES,
    SIGNAL_IMAGE_REPOSITORY,
    WORKERS,
    applied_objects,
    command_of,
    config_literals,
    containers,
    env_file,
    flag_pairs,
    grace_periods_s,
    k8s_docs,
    k8s_files,
    k8s_flower_script,
    kustomization,
    objects_of,
    pool_of,
    queues_of,
    run_flower_script,
    worker_deployments,
)
from workers.settings import Settings


def test_kustomization_lists_every_manifest_but_the_secret_template() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in k8s_files()} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == on_disk
    assert all(o["kind"] != "Secret" for o in applied_objects())


def test_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    import kubernetes_validate as kv

    version = kv.latest_version()
    checked: list[str] = []
    for path in k8s_files():
        if path.name == "kustomization.yaml":
            continue
        for doc in k8s_docs(path):
            if doc["apiVersion"].startswith(("keda.sh/", "monitoring.coreos.com/")):
                continue  # CRDs: checked by test_keda_scales_workers_on_both_queues and tests/deploy/test_alerts.py
            kv.validate(doc, version, strict=True)
            checked.append(f"{doc['kind']}/{doc['metadata']['name']}")
    assert {
        "Deployment/signal-ingest",
        "Deployment/signal-flush",
        "Deployment/signal-beat",
        "Deployment/signal-api",
        "Deployment/signal-flower",
        "Service/signal-api",
        "Service/signal-flower",
        "StatefulSet/signal-redis",
        "Service/signal-redis",
        "PodDisruptionBudget/signal-ingest",
        "PodDisruptionBudget/signal-flush",
        "Secret/signal-secrets",
    } <= set(checked)


def test_the_kubernetes_schema_rejects_a_broken_manifest() -> None:
    import kubernetes_validate as kv

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
    assert 'inspect ping -d "celery@$HOSTNAME"' in probe["exec"]["command"][-1]
    assert probe["periodSeconds"] >= 60
    assert worker["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "replicas" not in worker["spec"]  # KEDA owns the count


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


def test_kubernetes_workers_consume_every_queue() -> None:
    consumers = {name: queues_of(command_of(containers(d)[0])) for name, d in worker_deployments().items()}
    assert consumers == {"signal-ingest": {"ingest"}, "signal-flush": {"flush"}}


def test_worker_disruption_budgets_select_each_kind_of_worker() -> None:
    pdbs = objects_of("PodDisruptionBudget")
    deployments = worker_deployments()
    assert len(pdbs) == len(deployments) == 2
    for name, worker in deployments.items():
        selecting = [
            p
            for p in pdbs.values()
            if p["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
        ]
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


def test_only_the_processes_that_talk_to_aws_carry_the_fleets_aws_identity() -> None:
    (account,) = objects_of("ServiceAccount").values()
    assert account["metadata"]["name"] == "signal-fleet" and account["automountServiceAccountToken"] is False
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")
    identity = {
        name: d["spec"]["template"]["spec"].get("serviceAccountName") for name, d in objects_of("Deployment").items()
    }
    assert identity == {
        "signal-flush": "signal-fleet",  # uploads
        "signal-api": "signal-fleet",  # bucket and connection checks
        "signal-ingest": None,
        "signal-beat": None,
        "signal-flower": None,
    }
