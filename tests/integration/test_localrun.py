"""``make run`` (``python -m workers.localrun``) prints the console's address and how to sign in, and the console
answers there."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx

from tests.support.processes import REPO_ROOT
from workers.localrun import banner


def test_the_banner_shows_a_generated_token_but_never_one_that_was_set():
    generated = banner("http://127.0.0.1:8084", "abc123", "iid", token_generated=True)
    assert generated.splitlines()[0] == "console   http://127.0.0.1:8084/  (sign in with the admin token abc123)"
    assert "Bearer abc123" in generated
    chosen = banner("http://127.0.0.1:8084", "my-own-secret-token", "iid", token_generated=False)
    assert "my-own-secret-token" not in chosen
    assert "sign in with your SIGNAL_ADMIN_TOKEN" in chosen and "Bearer $SIGNAL_ADMIN_TOKEN" in chosen


def test_make_run_prints_the_console_and_the_console_signs_in_with_the_printed_token(redis_server):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNAL_", "AWS_"))}
    env.update(RUN_SECONDS="2", PYTHONPATH=str(REPO_ROOT), SIGNAL_REDIS_URL=redis_server.url)
    redis_server.client().flushall()
    run = subprocess.Popen([sys.executable, "-m", "workers.localrun"], cwd=REPO_ROOT, env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    printed: list[str] = []
    try:
        deadline = time.monotonic() + 120
        found = None
        while found is None and time.monotonic() < deadline:
            line = run.stdout.readline()
            if not line:
                break
            printed.append(line)
            found = re.match(r"console   (http://127\.0\.0\.1:\d+)/  \(sign in with the admin token (\w+)\)", line)
        assert found, "".join(printed)
        url, token = found.groups()
        with httpx.Client(base_url=url) as browser:
            signed_in = browser.post("/signin", data={"token": token, "next": "/integrations"})
            assert signed_in.status_code == 303, signed_in.text
            page = browser.get("/integrations")
            assert page.status_code == 200 and "Amazon S3" in page.text and "signal-demo-events" in page.text
        rest, _ = run.communicate(timeout=180)
        printed.append(rest)
        assert run.returncode == 0, "".join(printed)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(timeout=60)
