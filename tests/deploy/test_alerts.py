"""Alert rules: deploy/prometheus/signal-alerts.yaml is valid, its promtool unit tests pass, every metric it reads is
one the fleet serves, and the PrometheusRule of deploy/k8s carries the same groups."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import fakeredis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.manifests import DEPLOY, K8S, k8s_docs, kustomization
from workers.observe import metrics
from workers.store import keys

RULES = DEPLOY / "prometheus" / "signal-alerts.yaml"
RULE_TESTS = DEPLOY / "prometheus" / "signal-alerts.test.yaml"
PROMETHEUS_RULE = K8S / "prometheus-rule.yaml"
SEVERITIES = {"warning", "critical"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    """Run promtool; a machine without it fails the test (``make test`` installs Debian's prometheus package)."""
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: `make promtool-bin` (run by `make test`) installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, check=False)


def rule_groups() -> list[dict[str, Any]]:
    return yaml.safe_load(RULES.read_text())["groups"]


def alerting_rules() -> list[dict[str, Any]]:
    return [rule for group in rule_groups() for rule in group["rules"] if "alert" in rule]


def test_the_rules_file_is_valid() -> None:
    result = promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_fires_when_it_should_and_stays_silent_otherwise() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_unit_tests_cover_every_alert() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    assert tests["rule_files"] == [RULES.name]
    cases = [case for test in tests["tests"] for case in test["alert_rule_test"]]
    tested = {case["alertname"] for case in cases if case["exp_alerts"]}
    silent = {case["alertname"] for case in cases if not case["exp_alerts"]}
    names = {rule["alert"] for rule in alerting_rules()}
    assert tested == names, "every alert is seen firing"
    assert silent == names, "every alert is seen staying silent"


def test_every_alert_names_its_integration_with_a_severity_and_what_to_do() -> None:
    rules = alerting_rules()
    assert {r["alert"] for r in rules} == {"SignalDeliveryStalled", "SignalBatchesHeld", "SignalEventsRejected"}
    for rule in rules:
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert set(rule["annotations"]) == {"summary", "description"}, rule["alert"]
        for text in rule["annotations"].values():
            assert "{{ $labels.integration_id }}" in text, rule["alert"]
        assert "signal-s3 " in rule["annotations"]["description"], f"{rule['alert']}: no command to run"
        assert "troubleshooting.md" in rule["annotations"]["description"], rule["alert"]


def test_every_metric_the_rules_read_is_served() -> None:
    """Names as prometheus_client exposes them (counters with ``_total``), rendered from a fleet with traffic."""
    r = fakeredis.FakeRedis()
    r.sadd(keys.INTEGRATIONS, "int-a")
    r.hset(keys.stats("int-a"), mapping={"ingested_events": 10, "rejected:invalid_type": 1})  # as append.lua counts
    body, _ = metrics.render(r)
    served = {s.name for family in text_string_to_metric_families(body.decode()) for s in family.samples}
    read = {name for rule in alerting_rules() for name in re.findall(r"\bsignal_\w+", rule["expr"])}
    assert read == {
        "signal_waiting_since_last_delivery_seconds",
        "signal_flush_interval_seconds",
        "signal_dead_letter_batches",
        "signal_events_rejected_total",
        "signal_events_ingested_total",
    }
    assert read <= served, sorted(read - served)


def test_the_prometheus_rule_carries_the_same_groups_and_is_applied() -> None:
    (rule,) = k8s_docs(PROMETHEUS_RULE)
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["kind"] == "PrometheusRule"
    assert rule["metadata"]["name"] == "signal-alerts"
    assert rule["spec"]["groups"] == rule_groups()
    assert PROMETHEUS_RULE.name in kustomization()["resources"]
