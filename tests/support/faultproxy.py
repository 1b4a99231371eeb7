"""A loopback HTTP proxy in front of an S3 endpoint (moto_server) that injects S3 faults on chosen requests.

Requests are forwarded byte for byte: method, target (path and query), every header including the original Host
(SigV4 signs it) and the body as received (Content-Length, aws-chunked or chunked framing untouched). The plan, a
function ``plan(method, target, headers) -> Fault | None``, decides per request: None forwards it, a ``Fault``
answers an S3 XML error or drops the connection after reading the request. Two faults act after forwarding: the
upstream stores the request's effect (an object written), then the answer is delayed (``Fault.delay_response``) or
never sent (``Fault.drop_after_forward``), as when a client dies or times out after S3 did the work.

    with FaultProxy("http://127.0.0.1:5000") as proxy:
        proxy.set_plan(lambda method, target, headers: Fault.error(503, "SlowDown", "Reduce your request rate."))
        ...  # point the S3 client at proxy.endpoint_url
        assert proxy.faults == 3
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

Plan = Callable[[str, str, Mapping[str, str]], "Fault | None"]

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"})
_COPY_BYTES = 64 * 1024
SEEN_BODY_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class Fault:
    kind: str  # "error", "drop", "delay_response" or "drop_after_forward"
    status: int = 0
    code: str = ""
    message: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    fields: Mapping[str, str] = field(default_factory=dict)
    delay_s: float = 0.0

    @classmethod
    def error(
        cls,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        fields: Mapping[str, str] | None = None,
    ) -> Fault:
        """Answer ``<Error><Code/><Message/>{fields}<RequestId/></Error>`` with ``status`` and extra ``headers``."""
        return cls("error", status, code, message, dict(headers or {}), dict(fields or {}))

    @classmethod
    def drop(cls) -> Fault:
        """Read the request, then close the connection without answering."""
        return cls("drop")

    @classmethod
    def delay_response(cls, seconds: float) -> Fault:
        """Forward the request and read the upstream's whole answer, then wait ``seconds`` before answering."""
        return cls("delay_response", delay_s=seconds)

    @classmethod
    def drop_after_forward(cls) -> Fault:
        """Forward the request and read the upstream's whole answer, then close the connection without answering."""
        return cls("drop_after_forward")

    @property
    def forwards(self) -> bool:
        """True when the request reaches the upstream despite the fault."""
        return self.kind in ("delay_response", "drop_after_forward")

    @property
    def label(self) -> str:
        if self.kind == "delay_response":
            return f"delay {self.delay_s:g}s"
        if self.kind == "drop_after_forward":
            return "drop after forward"
        return "drop" if self.kind == "drop" else f"{self.status} {self.code}"

    def body(self, request_id: str) -> bytes:
        extra = "".join(f"<{name}>{escape(value)}</{name}>" for name, value in self.fields.items())
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(self.code)}</Code><Message>{escape(self.message)}</Message>{extra}"
            f"<RequestId>{request_id}</RequestId></Error>"
        ).encode()


def random_faults(rate: float = 0.25, seed: int = 0) -> Plan:
    """A plan failing a ``rate`` share of requests with 500 InternalError, 503 SlowDown or a dropped connection."""
    rng = random.Random(seed)
    lock = threading.Lock()
    choices = (
        Fault.error(500, "InternalError", "We encountered an internal error. Please try again."),
        Fault.error(503, "SlowDown", "Please reduce your request rate."),
        Fault.drop(),
    )

    def plan(method: str, target: str, headers: Mapping[str, str]) -> Fault | None:
        with lock:
            if rng.random() >= rate:
                return None
            return rng.choice(choices)

    return plan


def fail_first(count: int, fault: Fault, *, method: str | None = None) -> Plan:
    """A plan answering ``fault`` to the first ``count`` requests (of ``method``, if given), then forwarding."""
    remaining = [count]
    lock = threading.Lock()

    def plan(request_method: str, target: str, headers: Mapping[str, str]) -> Fault | None:
        if method is not None and request_method != method:
            return None
        with lock:
            if remaining[0] <= 0:
                return None
            remaining[0] -= 1
            return fault

    return plan


@dataclass(frozen=True)
class Seen:
    """One request as the proxy received it: header names lower-cased, ``body_md5`` the base64 MD5 of the body."""

    method: str
    target: str
    headers: Mapping[str, str]
    body_bytes: int
    body_md5: str
    fault: str | None  # label of the injected fault, None when forwarded
    body: bytes = b""  # the body itself when it is small (an STS form, a probe object): up to SEEN_BODY_MAX_BYTES


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raw = bytearray()
            while True:
                size_line = self.rfile.readline()
                raw += size_line
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self.rfile.readline()
                        raw += line
                        if line in (b"\r\n", b"\n", b""):
                            return bytes(raw)
                raw += self.rfile.read(size + 2)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _proxy(self) -> None:
        proxy = self.server.owner
        body = self._read_body()
        fault = proxy._decide(self.command, self.path, self.headers, body)
        if fault is not None and fault.forwards:
            self._forward_then(body, fault)
            return
        if fault is not None and fault.kind == "drop":
            self._drop_connection()
            return
        if fault is not None:
            payload = fault.body(uuid.uuid4().hex.upper()[:16])
            self.send_response(fault.status)
            self.send_header("Content-Type", "application/xml")
            for name, value in fault.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
            return
        self._forward(body)

    def _drop_connection(self) -> None:
        """Close without answering, as a failing network or a crashed load balancer would."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_upstream(self, upstream: http.client.HTTPConnection, body: bytes) -> http.client.HTTPResponse:
        upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in self.headers.items():
            if name.lower() in ("connection", "keep-alive", "proxy-connection", "expect"):
                continue
            upstream.putheader(name, value)
        upstream.endheaders(body if body else None)
        return upstream.getresponse()

    def _forward_then(self, body: bytes, fault: Fault) -> None:
        """Forward the request, read the whole answer, then delay it or drop the connection (``fault``)."""
        owner = self.server.owner
        upstream = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=60)
        try:
            response = self._send_upstream(upstream, body)
            payload = response.read()
            owner._forwarded_with_fault(fault)
            if fault.kind == "drop_after_forward":
                self._drop_connection()
                return
            time.sleep(fault.delay_s)
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() in _HOP_BY_HOP or name.lower() == "content-length":
                    continue
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)
        finally:
            upstream.close()

    def _forward(self, body: bytes) -> None:
        owner = self.server.owner
        upstream = http.client.HTTPConnection(owner.upstream_host, owner.upstream_port, timeout=60)
        try:
            response = self._send_upstream(upstream, body)
            self.send_response_only(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() in _HOP_BY_HOP:
                    continue
                self.send_header(name, value)
            length = response.getheader("Content-Length")
            chunked = self.command != "HEAD" and length is None and response.status not in (204, 304)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                return
            while block := response.read(_COPY_BYTES):
                if chunked:
                    self.wfile.write(f"{len(block):x}\r\n".encode() + block + b"\r\n")
                else:
                    self.wfile.write(block)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
        finally:
            upstream.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, owner: FaultProxy) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that went away mid-request is a normal event for a fault proxy.
        pass


class FaultProxy:
    """Threaded loopback proxy to ``upstream`` (``http://host:port``) with a fault plan and fault counters."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream_host: str = parts.hostname
        self.upstream_port: int = parts.port
        self._lock = threading.Lock()
        self._plan: Plan | None = None
        self.requests = 0
        self.faults_by_kind: Counter[str] = Counter()
        self.seen: list[Seen] = []
        # requests a forwarding fault (delay_response, drop_after_forward) let through, once the upstream answered
        self.forwarded_faults: Counter[str] = Counter()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------------

    def start(self) -> Self:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- plan and counters -------------------------------------------------------------------------------------------

    def set_plan(self, plan: Plan | None) -> None:
        with self._lock:
            self._plan = plan

    def reset(self) -> None:
        """Forward everything again and zero the counters."""
        with self._lock:
            self._plan = None
            self.requests = 0
            self.faults_by_kind.clear()
            self.seen.clear()
            self.forwarded_faults.clear()

    @property
    def faults(self) -> int:
        with self._lock:
            return sum(self.faults_by_kind.values())

    def _forwarded_with_fault(self, fault: Fault) -> None:
        with self._lock:
            self.forwarded_faults[fault.label] += 1

    def _decide(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Fault | None:
        with self._lock:
            plan = self._plan
        fault = plan(method, target, headers) if plan is not None else None
        md5 = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode("ascii")
        label = fault.label if fault is not None else None
        small = body if len(body) <= SEEN_BODY_MAX_BYTES else b""
        seen = Seen(method, target, {k.lower(): v for k, v in headers.items()}, len(body), md5, label, small)
        with self._lock:
            self.requests += 1
            self.seen.append(seen)
            if fault is not None:
                self.faults_by_kind[fault.label] += 1
        return fault
