"""`make run` (workers.localrun) as a newcomer uses it: it prints the console's address and how to sign in, the
console answers there, and a demo website on another origin sends page views and clicks from the browser through the
collection API into the local bucket."""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from typing import Any

import boto3
import httpx
import orjson
import pytest
from botocore.config import Config

from tests.support.browser import screenshot
from tests.support.celery_fixtures import watch_process
from tests.support.processes import REPO_ROOT, ManagedProcess, wait_until
from tests.support.website import visit
from workers.localrun import run as localrun
from workers.localrun.run import banner


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
    run = subprocess.Popen(
        [sys.executable, "-m", "workers.localrun"],
        cwd=REPO_ROOT,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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
        # the demo table received the same events as the bucket, each once
        out = "".join(printed)
        accepted = re.search(r"accepted: (\d+)  delivered: (\d+)", out)
        table = re.search(r"iceberg table signal\.events at s3://signal-demo-lake/events: (\d+) rows", out)
        assert accepted and table, out
        assert int(table.group(1)) == int(accepted.group(1)) == int(accepted.group(2)) > 0
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
            run.wait(timeout=60)


def bucket_events(endpoint: str) -> list[dict[str, Any]]:
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=localrun.REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(request_checksum_calculation="when_required"),
    )
    out = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=localrun.BUCKET):
        for obj in page.get("Contents", []):
            body = gzip.decompress(s3.get_object(Bucket=localrun.BUCKET, Key=obj["Key"])["Body"].read())
            out += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return out


def test_make_run_serves_a_demo_website_whose_events_land_in_the_bucket(
    tmp_path: Any, browser: Any, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNAL_")}
    env.update(RUN_SECONDS="300", SIGNAL_ADMIN_TOKEN="demo-" + uuid.uuid4().hex, PYTHONUNBUFFERED="1")
    process = ManagedProcess(
        [sys.executable, "-m", "workers.localrun"], name="localrun", env=env, log_dir=tmp_path, cwd=REPO_ROOT
    )
    watch_process(request.node, process)
    process.start()
    try:
        site = process.wait_for_log(r"demo website (http://localhost:\d+/) ", 180).group(1)
        endpoint = process.wait_for_log(r" s3 (http://127\.0\.0\.1:\d+) ", 30).group(1)
        api = process.wait_for_log(r"admin API (http://127\.0\.0\.1:\d+)/", 5).group(1)
        assert site.split(":")[2] != api.split(":")[2]  # another origin than the API

        tab = visit(browser, site)
        tab.page.get_by_role("button", name="Add to cart").click()
        tab.page.get_by_role("button", name="Sign in as demo-user").click()
        tab.page.get_by_text("identify demo-user").wait_for()
        screenshot(tab.page, "localrun-demo-site")
        tab.page.get_by_role("link", name="RudderStack JS v3").click()
        tab.page.wait_for_url(re.compile(r".*/rudderstack\.html$"))
        tab.page.get_by_role("button", name="Complete order").click()
        tab.page.get_by_text("track Order Completed").wait_for()

        def demo_events() -> list[dict[str, Any]]:
            found = [
                e
                for e in bucket_events(endpoint)
                if e.get("context", {}).get("page", {}).get("url", "").startswith(site)
            ]
            return found if len(found) >= 5 else []

        found = wait_until(demo_events, 60, interval_s=1.0, message=lambda: f"{process.describe()}")
        tab.close()
        assert tab.errors == [] and tab.external == []
        kinds = sorted((e["type"], e.get("event"), e["context"]["library"]["name"]) for e in found)
        assert kinds == [
            ("identify", None, "analytics.js"),
            ("page", None, "RudderLabs JavaScript SDK"),
            ("page", None, "analytics.js"),
            ("track", "Order Completed", "RudderLabs JavaScript SDK"),
            ("track", "Product Added", "analytics.js"),
        ]
        assert {e["source_id"] for e in found} == {"default"}
        assert [e["user_id"] for e in found if e["type"] == "identify"] == ["demo-user"]
    finally:
        process.stop(signal.SIGINT, timeout=90)
    log = process.log_text()
    assert "stopped" in log
    # the closing account covers every accepted event, the website's too: delivered, or said to be still on its way
    summary = re.search(r"accepted: (\d+)  delivered: (\d+)  in bucket: (\d+)", log)
    assert summary is not None, log[-2000:]
    accepted, delivered, in_bucket = (int(n) for n in summary.groups())
    late = re.search(r"not delivered yet: (\d+) buffered, (\d+) messages waiting for a worker, (\d+) held", log)
    buffered, held = (int(late.group(1)), int(late.group(3))) if late else (0, 0)
    assert accepted == delivered + buffered + held, log[-2000:]
    if late is None:
        assert in_bucket == delivered  # every delivered event is in the bucket once
