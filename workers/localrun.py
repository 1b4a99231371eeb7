"""Run the fleet on this machine: redis-server, moto S3, one worker, one beat, the HTTP API, a demo website, and a
stream of sample events.

``make run``; stops on Ctrl-C, or after ``RUN_SECONDS`` seconds when set. Every server binds 127.0.0.1; objects land
in the moto bucket ``signal-demo-events`` under ``events/``. With ``SIGNAL_REDIS_URL`` set, that Redis is used.

The demo website (static pages on http://localhost:<port>, another origin than the API on 127.0.0.1) loads the real
SDKs (``workers.websites.sdk``, fetched from the npm registry and checked) with the default source's snippet
(``workers.websites.snippet``): its buttons send page, track and identify events from the browser through the collection API.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from cryptography.fernet import Fernet

from workers import clock
from workers.websites import sdk, snippet

BUCKET = "signal-demo-events"
REGION = "us-east-1"
PREFIX = "events/"
SEND_INTERVAL_S = 0.5
POLL_INTERVAL_S = 1.0

PAGES = [("/", "Home"), ("/pricing", "Pricing"), ("/blog/first-party-data", "First-party data"),
         ("/products/trail-shoe", "Trail Shoe"), ("/products/rain-jacket", "Rain Jacket"), ("/cart", "Cart"),
         ("/checkout", "Checkout"), ("/docs/getting-started", "Getting started")]
REFERRERS = ["", "https://www.google.com/", "https://news.example.org/"]
TRACKS = ["product_viewed", "product_added", "checkout_started", "order_completed", "signup_clicked"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
          "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)",
          "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"]


class Processes:
    """The servers this program started, each in its own process group, output in ``<log_dir>/<name>.log``."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def log_has(self, name: str, text: str) -> bool:
        return text in (self.log_dir / f"{name}.log").read_text(errors="replace")

    def start(self, name: str, args: list[str], ready: Callable[[], bool], timeout_s: float) -> None:
        with open(self.log_dir / f"{name}.log", "ab") as log:
            self.running[name] = popen = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while not ready():
            if popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start; see {self.log_dir / name}.log")
            time.sleep(0.1)

    def exited(self) -> list[str]:
        return [name for name, popen in self.running.items() if popen.poll() is not None]

    def stop_all(self, timeout_s: float = 20.0) -> None:
        """SIGTERM each (last started first), wait, then SIGKILL whatever is left of its process group."""
        for popen in reversed(self.running.values()):
            if popen.poll() is None:
                popen.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    popen.wait(timeout=timeout_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tool(name: str) -> list[str]:
    """A console script of this environment (``celery``, ``moto_server``), else the one on PATH."""
    local = Path(sys.executable).parent / name
    found = local if local.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} is not installed: run `make install`")
    return [str(found)]


class SampleTraffic:
    """Page views, product events and identifies from a few hundred visitors, some of them signed in."""

    def __init__(self, visitors: int = 300, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.visitors = [{"anonymous_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)), "user_id": None,
                          "agent": self.rng.choice(AGENTS), "ip": f"203.0.113.{self.rng.randrange(1, 255)}",
                          "locale": self.rng.choice(["en-US", "en-GB", "de-DE", "fr-FR"])} for _ in range(visitors)]

    def event(self) -> dict[str, Any]:
        visitor = self.rng.choice(self.visitors)
        path, title = self.rng.choice(PAGES)
        now = clock.iso(clock.now())
        event: dict[str, Any] = {
            "event_id": str(uuid.uuid4()), "anonymous_id": visitor["anonymous_id"], "timestamp": now, "sent_at": now,
            "context": {"page": {"path": path, "title": title, "url": f"https://shop.example.com{path}",
                                 "referrer": self.rng.choice(REFERRERS)},
                        "userAgent": visitor["agent"], "ip": visitor["ip"], "locale": visitor["locale"]},
        }
        if visitor["user_id"]:
            event["user_id"] = visitor["user_id"]
        roll = self.rng.random()
        if roll < 0.55:
            event.update(type="page", name=title, properties={"path": path, "title": title})
        elif roll < 0.93:
            event.update(type="track", event=self.rng.choice(TRACKS),
                         properties={"product_id": f"sku-{self.rng.randrange(1000, 1100)}", "currency": "USD",
                                     "price": round(self.rng.uniform(9, 240), 2), "quantity": self.rng.randint(1, 3)})
        else:
            visitor["user_id"] = visitor["user_id"] or f"user_{self.rng.randrange(10_000, 99_999)}"
            event.update(type="identify", user_id=visitor["user_id"], traits={
                "email": f"{visitor['user_id']}@example.com", "plan": self.rng.choice(["free", "pro", "team"])})
        return event

    def batch(self) -> list[dict[str, Any]]:
        return [self.event() for _ in range(self.rng.randint(80, 120))]


DEMO_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><link rel="icon" href="data:,">
{snippet}<style>body{{font:16px system-ui,sans-serif;margin:2rem auto;max-width:44rem}}
button{{margin:.2rem;padding:.4rem .8rem}} pre{{background:#f4f4f4;padding:.6rem;min-height:4rem}}</style></head>
<body><h1>{title}</h1>
<p>This page sends its events with {sdk} to the collection API at <code>{api_url}</code> (another origin). A page view
was sent when the page loaded; each button sends one more event. Watch them arrive in Live Events.</p>
<p><button data-track="Product Viewed">View product</button><button data-track="Product Added">Add to cart</button>
<button data-track="Order Completed">Complete order</button><button id="identify">Sign in as demo-user</button></p>
<p>Other SDK: <a href="{other}">{other_name}</a></p><pre id="sent">page</pre>
<script>
  var sdk = {sdk_object};
  function sent(text) {{ document.getElementById("sent").textContent += "\\n" + text; }}
  document.querySelectorAll("[data-track]").forEach(function (button) {{
    button.addEventListener("click", function () {{
      var name = button.getAttribute("data-track");
      sdk().track(name, {{product_id: "sku-1042", price: 42.5, currency: "EUR"}});
      sent("track " + name);
    }});
  }});
  document.getElementById("identify").addEventListener("click", function () {{
    sdk().identify("demo-user", {{plan: "pro"}});
    sent("identify demo-user");
  }});
</script></body></html>
"""


def write_demo_site(site: Path, write_key: str, api_url: str, cache_dir: Path | None = None) -> None:
    """The demo website: index.html (analytics.js) and rudderstack.html, with the SDK files under /signal-sdk."""
    sdk.install(site / "signal-sdk", cache_dir=cache_dir)
    pages = [("index.html", "analytics.js (analytics-next)", "window.analytics",
              snippet.analytics_next(write_key, api_url=api_url)),
             ("rudderstack.html", "RudderStack JS v3", "window.rudderanalytics",
              snippet.rudderstack(write_key, api_url=api_url))]
    for (name, sdk_name, sdk_object, html), (other, other_name, _, _) in zip(pages, reversed(pages), strict=True):
        (site / name).write_text(DEMO_PAGE.format(
            title=f"Signal demo shop: {sdk_name}", snippet=html, sdk=sdk_name, api_url=api_url, other=other,
            other_name=other_name, sdk_object=f"function () {{ return {sdk_object}; }}"))


def start_demo_site(procs: Processes, api_url: str) -> str | None:
    """Serve the demo website on http://localhost:<port>; its address, or None when the SDKs cannot be fetched."""
    from workers.integrations import sources
    from workers.store.db import redis_client

    site = procs.log_dir / "demo-site"
    try:
        write_demo_site(site, sources.ensure_default(redis_client()).write_key, api_url)
    except sdk.SdkFetchError as exc:
        print(f"no demo website: {exc}")
        return None
    port = free_port()
    procs.start("demo-site", [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory",
                              str(site)], lambda: procs.log_has("demo-site", "Serving HTTP"), 15)
    return f"http://localhost:{port}/"


def start_servers(procs: Processes) -> str:
    """Start Redis (unless SIGNAL_REDIS_URL is set) and moto; return the S3 endpoint URL."""
    if not procs.env.get("SIGNAL_REDIS_URL"):
        if shutil.which("redis-server") is None:
            raise SystemExit("redis-server is not on PATH: `make run` installs it (as root), or set SIGNAL_REDIS_URL")
        port = free_port()
        procs.start("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(procs.log_dir)],
                    lambda: procs.log_has("redis", "Ready to accept connections"), 15)
        procs.env["SIGNAL_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"
    port = free_port()
    procs.start("moto", [*tool("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                lambda: procs.log_has("moto", "Running on"), 30)
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
    return (f"console   {api}/  ({how})\n"
            f"admin API {api}/v1/admin/\n"
            f"  curl -H 'Authorization: Bearer {shown}' "
            f"{api}/v1/admin/integrations/{integration_id}/live-events?limit=5")


def run(procs: Processes, run_seconds: float | None) -> None:
    """Start everything, install the demo integration, send sample events until the time is up (or Ctrl-C), then
    wait for every accepted event to land and say what happened."""
    token_generated = development_settings(procs.env)
    endpoint = start_servers(procs)
    procs.env["AWS_ENDPOINT_URL_S3"] = endpoint
    os.environ.update(procs.env)  # this process installs the integration and publishes with the same settings
    s3 = demo_bucket(endpoint)
    integration_id = install_demo_integration()
    start_fleet(procs)
    api = f"http://127.0.0.1:{procs.env['SIGNAL_API_PORT']}"
    procs.start("api", [*tool("signal-s3"), "api"], lambda: procs.log_has("api", "Uvicorn running"), 30)
    print(banner(api, procs.env["SIGNAL_ADMIN_TOKEN"], integration_id, token_generated=token_generated))
    site = start_demo_site(procs, api)
    if site:
        print(f"demo website {site}  (open it: its buttons send page, track and identify events from your browser "
              "through the collection API)")
    print(f"redis {procs.env['SIGNAL_REDIS_URL']}  s3 {endpoint}  integration {integration_id}  "
          f"flush every {float(procs.env['SIGNAL_FLUSH_INTERVAL_S']):g}s  logs {procs.log_dir}")
    print("sending ~200 events/s; objects appear below as they land"
          + (f"; stopping after {run_seconds:g}s" if run_seconds else "; Ctrl-C to stop"), flush=True)
    seen: dict[str, int] = {}
    sent = send_sample_traffic(procs, s3, seen, integration_id, run_seconds)
    drain(procs, s3, seen, integration_id, sent)


def development_settings(env: dict[str, str]) -> bool:
    """Fill in what a development fleet needs and was not given; True when the admin token was generated here."""
    if not env.get("SIGNAL_SECRET_KEY"):
        env["SIGNAL_SECRET_KEY"] = Fernet.generate_key().decode()
        print("development key generated; set SIGNAL_SECRET_KEY in production")
    env.setdefault("SIGNAL_FLUSH_INTERVAL_S", "5")
    token_generated = not env.get("SIGNAL_ADMIN_TOKEN")
    if token_generated:
        env["SIGNAL_ADMIN_TOKEN"] = uuid.uuid4().hex
        print("development admin token generated; set SIGNAL_ADMIN_TOKEN in production")
    env.setdefault("SIGNAL_API_PORT", str(free_port()))
    return token_generated


def demo_bucket(endpoint: str) -> Any:
    """An S3 client of the local endpoint, with the demo bucket created."""
    checksums = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="localrun",
                      aws_secret_access_key="localrun", config=checksums)
    s3.create_bucket(Bucket=BUCKET)
    return s3


def install_demo_integration() -> str:
    """The demo integration, installed as the install call of the docs does it: validated, bucket checked, in the
    default source. Returns its id."""
    from workers.integrations import manage
    from workers.settings import get_settings
    from workers.store.db import redis_client

    return manage.install_integration(redis_client(), {
        "name": "Amazon S3", "variant": "default", "delivery_mode": "server_side",
        "config": {"bucket": BUCKET, "region": REGION, "access_key_id": "AKIALOCALRUNEXAMPLE",
                   "secret_access_key": "localrun/not/a/real/secret/access/key", "prefix": PREFIX,
                   "storage_class": "STANDARD", "server_side_encryption": "AES256"},
    }, settings=get_settings()).id


def start_fleet(procs: Processes) -> None:
    celery = [*tool("celery"), "-A", "workers.app"]
    procs.start("worker", [*celery, "worker", "-Q", "ingest,flush", "-c", "2", "-n", "localrun@%h", "--without-mingle",
                           "--without-gossip", "--loglevel", "INFO"], lambda: procs.log_has("worker", " ready."), 60)
    procs.start("beat", [*celery, "beat", "-s", str(procs.log_dir / "celerybeat-schedule"), "--loglevel", "INFO"],
                lambda: procs.log_has("beat", "beat: Starting..."), 30)


def send_sample_traffic(procs: Processes, s3: Any, seen: dict[str, int], integration_id: str,
                        run_seconds: float | None) -> int:
    """Send the sample stream and print each object as it lands, until the time is up or Ctrl-C; returns how many
    events were sent."""
    from workers.app import app

    traffic, sent = SampleTraffic(), 0
    started = next_send = next_poll = time.monotonic()
    try:
        while (run_seconds is None or time.monotonic() - started < run_seconds) and not procs.exited():
            if time.monotonic() >= next_send:
                events = traffic.batch()
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


def drain(procs: Processes, s3: Any, seen: dict[str, int], integration_id: str, sent: int) -> None:
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
        """(messages not yet appended, events buffered and not held)."""
        st = status.integration_status(r, integration_id)
        try:
            queued = topology.queue_depths(settings, timeout_s=2.0).get("ingest", 0)
        except Exception:  # noqa: BLE001 - a stopped broker holds nothing more we could wait for
            queued = 0
        return queued, st["buffered_events"] - st["dead_letter_events"]

    try:
        deadline = time.monotonic() + drain_s
        while waiting() != (0, 0) and time.monotonic() < deadline and not procs.exited():
            time.sleep(POLL_INTERVAL_S)
            poll_bucket(s3, seen)
        poll_bucket(s3, seen)
    except KeyboardInterrupt:
        print()
    st = status.integration_status(r, integration_id)
    queued, buffered = waiting()
    print(f"sample events sent: {sent}  accepted: {st['ingested_events']}  delivered: {st['delivered_events']}  "
          f"in bucket: {sum(seen.values())} in {len(seen)} objects")
    if buffered or queued or st["dead_letter_events"]:
        print(f"not delivered yet: {buffered} buffered, {queued} messages waiting in the ingest queue, "
              f"{st['dead_letter_events']} held (see the console's Dead letter tab)")


def main() -> int:
    run_seconds = float(os.environ["RUN_SECONDS"]) if os.environ.get("RUN_SECONDS") else None
    procs = Processes(dict(os.environ, PYTHONUNBUFFERED="1", AWS_EC2_METADATA_DISABLED="true"),
                      Path(tempfile.mkdtemp(prefix="signal-localrun-")))
    for signum in (signal.SIGINT, signal.SIGTERM):  # even when started with SIGINT ignored (in the background)
        signal.signal(signum, signal.default_int_handler)
    try:
        run(procs, run_seconds)
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave servers behind
        procs.stop_all()
        print(f"stopped {len(procs.running)} processes; logs in {procs.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
