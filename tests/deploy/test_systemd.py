"""systemd: the units of deploy/systemd."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.manifests import (
    BEAT_ARGS,
    MIN_FLUSH_GRACE_S,
    MIN_INGEST_GRACE_S,
    ROOT,
    SYSTEMD,
    UNITS,
    WORKERS,
    queues_of,
    run_flower_script,
    unit,
)


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
    assert analyze, "systemd-analyze is missing: `make test` installs Debian's systemd package for it"
    venv_bin = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    assert (venv_bin / "celery").exists() and (venv_bin / "signal-s3").exists(), "the project is not installed"
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
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    complaints = [line for line in result.stderr.splitlines() if str(tmp_path) in line or "signal-" in line]
    assert result.returncode == 0, result.stderr
    assert complaints == []
