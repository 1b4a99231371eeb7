"""``make run``: start everything, install the demo integration, send sample events, show each object as it lands,
and at the end wait for every accepted event and say what happened."""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from cryptography.fernet import Fernet

from workers.localrun.demo import start_demo_site
from workers.localrun.processes import Processes, free_port, tool
from workers.localrun.traffic import SampleTraffic

BUCKET = "signal-demo-events"
LAKE_BUCKET = "signal-demo-lake"  # the demo Iceberg table (the iceberg variant, SQLite catalog)
REGION = "us-east-1"
PREFIX = "events/"
SEND_INTERVAL_S = 0.5
POLL_INTERVAL_S = 1.0


def start_servers(procs: Processes) -> str:
    """Start Redis (unless SIGNAL_REDIS_URL is set) and moto; return the S3 endpoint URL."""
    if not procs.env.get("SIGNAL_REDIS_URL"):
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not on PATH: `make run` installs it (as root), or set SIGNAL_REDIS_URL")
        port = free_port()
        procs.start(
            "redis",
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(procs.log_dir),
            ],
            lambda: procs.log_has("redis", "Ready to accept connections"),
            15,
        )
        procs.env["SIGNAL_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    port = free_port()
    procs.start(
        "moto",
        [*tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        lambda: procs.log_has("moto", "Running on"),
        30,
    )
    return f"http://127.0.0.1:{port}"


def poll_bucket(s3: Any, seen: dict[str, int]) -> None:
    """Print every object not seen before: key, events (lines of the gunzipped body), bytes."""
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=PREFIX):
        for obj in page.get("Contents", []):
            if obj["Key"] not in seen:
                body = gzip.decompress(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
                seen[obj["Key"]] = sum(1 for line in body.splitlines() if line.strip())
                print(f"  s3://{BUCKET}/{obj['Key']}  {seen[obj['Key']]} events  {obj['Size']} bytes", flush=True)


def banner(api: str, token: str, integration_id: str, *, token_generated: bool) -> str:
    """Where the console and the admin API are and how to sign in. A generated development token is shown; a token
    set in SIGNAL_ADMIN_TOKEN is not."""
    shown = token if token_generated else "$SIGNAL_ADMIN_TOKEN"
    how = f"sign in with the admin token {token}" if token_generated else "sign in with your SIGNAL_ADMIN_TOKEN"
    return (
        f"console   {api}/  ({how})\n"
        f"admin API {api}/v1/admin/\n"
        f"  curl -H 'Authorization: Bearer {shown}' "
        f"{api}/v1/admin/integrations/{integration_id}/live-events?limit=5"
    )


def run(procs: Processes, run_seconds: float | None) -> None:
    """Start everything, install the demo integration, send sample events until the time is up (or Ctrl-C), then
    wait for every accepted event to land and say what happened."""
    token_generated = development_settings(procs.env)
    endpoint = start_servers(procs)
    procs.env["AWS_ENDPOINT_URL_S3"] = endpoint
    os.environ.update(procs.env)  # this process installs the integration and publishes with the same settings
    s3 = demo_bucket(endpoint)
    integration_id = install_demo_integration()
    table_id = install_demo_integration(iceberg=True)
    start_fleet(procs)
    api = f"http://127.0.0.1:{procs.env['SIGNAL_API_PORT']}"
    procs.start("api", [*tool("signal-s3"), "api"], lambda: procs.log_has("api", "Uvicorn running"), 30)
    print(banner(api, procs.env["SIGNAL_ADMIN_TOKEN"], integration_id, token_generated=token_generated))
    site = start_demo_site(procs, api)
    if site:
        print(
            f"demo website {site}  (open it: its buttons send page, track and identify events from your browser "
            "through the collection API)"
        )
    print(
        f"redis {procs.env['SIGNAL_REDIS_URL']}  s3 {endpoint}  integration {integration_id}  "
        f"flush every {float(procs.env['SIGNAL_FLUSH_INTERVAL_S']):g}s  logs {procs.log_dir}"
    )
    print(
        f"the same events also go to an Iceberg table (integration {table_id}, s3://{LAKE_BUCKET}/{PREFIX}, "
        f"SQLite catalog {procs.env['SIGNAL_ICEBERG_SQLITE_PATH']}): see its Query & access tab"
    )
    print(
        "sending ~200 events/s; objects appear below as they land"
        + (f"; stopping after {run_seconds:g}s" if run_seconds else "; Ctrl-C to stop"),
        flush=True,
    )
    seen: dict[str, int] = {}
    sent = send_sample_traffic(procs, s3, seen, [integration_id, table_id], run_seconds)
    drain(procs, s3, seen, [integration_id, table_id], sent)
    print(describe_table(table_id))


def development_settings(env: dict[str, str]) -> bool:
    """Fill in what a development fleet needs and was not given; True when the admin token was generated here."""
    if not env.get("SIGNAL_SECRET_KEY"):
        env["SIGNAL_SECRET_KEY"] = Fernet.generate_key().decode()
        print("development key generated; set SIGNAL_SECRET_KEY in production")
    env.setdefault("SIGNAL_FLUSH_INTERVAL_S", "5")
    env.setdefault("SIGNAL_ICEBERG_SQLITE_PATH", str(Path(tempfile.mkdtemp(prefix="signal-iceberg-")) / "catalog.db"))
    token_generated = not env.get("SIGNAL_ADMIN_TOKEN")
    if token_generated:
        env["SIGNAL_ADMIN_TOKEN"] = uuid.uuid4().hex
        print("development admin token generated; set SIGNAL_ADMIN_TOKEN in production")
    env.setdefault("SIGNAL_API_PORT", str(free_port()))
    return token_generated


def demo_bucket(endpoint: str) -> Any:
    """An S3 client of the local endpoint, with the demo bucket created."""
    checksums = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="localrun",
        aws_secret_access_key="localrun",
        config=checksums,
    )
    s3.create_bucket(Bucket=BUCKET)
    s3.create_bucket(Bucket=LAKE_BUCKET)
    return s3


def install_demo_integration(*, iceberg: bool = False) -> str:
    """The demo integration, installed as the install call of the docs does it: validated, bucket checked, in the
    default source; or (``iceberg``) the demo table, partitioned by event type, in the fleet's SQLite catalog.
    Returns its id."""
    from workers.integrations import manage
    from workers.settings import get_settings
    from workers.store.db import redis_client

    config: dict[str, Any] = {
        "bucket": LAKE_BUCKET if iceberg else BUCKET,
        "region": REGION,
        "access_key_id": "AKIALOCALRUNEXAMPLE",
        "secret_access_key": "localrun/not/a/real/secret/access/key",
        "prefix": PREFIX,
        "storage_class": "STANDARD",
        "server_side_encryption": "AES256",
    }
    if iceberg:
        config["partition_fields"] = ["type"]
    return manage.install_integration(
        redis_client(),
        {
            "name": "Events table (Iceberg)" if iceberg else "Amazon S3",
            "variant": "iceberg" if iceberg else "default",
            "delivery_mode": "server_side",
            "config": config,
        },
        settings=get_settings(),
    ).id


def describe_table(integration_id: str) -> str:
    """One line on the demo table: where, how many rows and snapshots (read through its catalog)."""
    from workers.pipeline import tables
    from workers.settings import get_settings
    from workers.store.db import redis_client

    view = tables.table_view(redis_client(), integration_id, settings=get_settings(), snapshots=1)
    if "error" in view:
        return f"iceberg table {view['namespace']}.{view['table']}: {view['error']['code']}: {view['error']['message']}"
    rows = view["snapshots"][0]["total_rows"] if view["snapshots"] else 0
    return (
        f"iceberg table {view['namespace']}.{view['table']} at {view['location']}: {rows} rows in "
        f"{view['snapshot_count']} snapshots ({view['catalog']} catalog {view['where']})"
    )


def start_fleet(procs: Processes) -> None:
    celery = [*tool("celery"), "-A", "workers.app"]
    procs.start(
        "worker",
        [
            *celery,
            "worker",
            "-Q",
            "ingest,flush",
            "-c",
            "2",
            "-n",
            "localrun@%h",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        lambda: procs.log_has("worker", " ready."),
        60,
    )
    procs.start(
        "beat",
        [*celery, "beat", "-s", str(procs.log_dir / "celerybeat-schedule"), "--loglevel", "INFO"],
        lambda: procs.log_has("beat", "beat: Starting..."),
        30,
    )


def send_sample_traffic(
    procs: Processes, s3: Any, seen: dict[str, int], integration_ids: list[str], run_seconds: float | None
) -> int:
    """Send the sample stream and print each object as it lands, until the time is up or Ctrl-C; returns how many
    events were sent."""
    from workers.app import app

    traffic, sent = SampleTraffic(), 0
    started = next_send = next_poll = time.monotonic()
    try:
        while (run_seconds is None or time.monotonic() - started < run_seconds) and not procs.exited():
            if time.monotonic() >= next_send:
                events = traffic.batch()
                for integration_id in integration_ids:
                    app.send_task("signal.ingest", args=[integration_id, events], queue="ingest")
                sent += len(events)
                next_send += SEND_INTERVAL_S
            if time.monotonic() >= next_poll:
                poll_bucket(s3, seen)
                next_poll += POLL_INTERVAL_S
            time.sleep(max(0.0, min(next_send, next_poll) - time.monotonic()))
    except KeyboardInterrupt:
        print()
    if procs.exited():
        print(f"{', '.join(procs.exited())} exited; see {procs.log_dir}")
    return sent


def drain(procs: Processes, s3: Any, seen: dict[str, int], integration_ids: list[str], sent: int) -> None:
    """Wait until every event the integration accepted (from the sample stream, the demo website or anywhere else)
    has landed, or is held, or the wait is over; then say so, with what is still buffered."""
    from workers.integrations import status
    from workers.queue import topology
    from workers.settings import get_settings
    from workers.store.db import redis_client

    settings, r = get_settings(), redis_client()
    drain_s = 3 * settings.flush_interval_s + 10
    print(f"stopped sending; waiting up to {drain_s:g}s for accepted events to land (Ctrl-C to skip)", flush=True)

    def waiting() -> tuple[int, int]:
        """(messages not yet done: waiting in the ingest queue or taken by a worker, events buffered)."""
        buffered = sum(status.integration_status(r, iid)["buffered_events"] for iid in integration_ids)
        try:
            depths = topology.queue_depths(settings, timeout_s=2.0)
            queued = depths.get("ingest", 0) + depths.get("unacked", 0)
        except Exception:  # noqa: BLE001 - a stopped broker holds nothing more we could wait for
            queued = 0
        return queued, buffered  # held events are not buffered: they are reported apart

    try:
        deadline = time.monotonic() + drain_s
        while waiting() != (0, 0) and time.monotonic() < deadline and not procs.exited():
            time.sleep(POLL_INTERVAL_S)
            poll_bucket(s3, seen)
        poll_bucket(s3, seen)
    except KeyboardInterrupt:
        print()
    st = status.integration_status(r, integration_ids[0])
    queued, buffered = waiting()
    print(
        f"sample events sent: {sent}  accepted: {st['ingested_events']}  delivered: {st['delivered_events']}  "
        f"in bucket: {sum(seen.values())} in {len(seen)} objects"
    )
    if buffered or queued or st["dead_letter_events"]:
        print(
            f"not delivered yet: {buffered} buffered, {queued} messages waiting for a worker, "
            f"{st['dead_letter_events']} held (see the console's Dead letter tab)"
        )
