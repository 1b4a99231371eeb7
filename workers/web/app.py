"""The HTTP API's app factory and server: ``signal-s3 api``, 127.0.0.1:8084 by default."""

from __future__ import annotations

import asyncio
import gc
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from workers.queue.producer import Broker
from workers.settings import Settings, get_settings
from workers.web import (
    admin,
    collection,
    collection_routes,
    console,
    delivery_pages,
    integration_pages,
    reference,
)
from workers.web.errors import install_handlers
from workers.web.pages import Static
from workers.web.state import State

log = logging.getLogger(__name__)
# uvicorn on uvloop (libuv's event loop) and httptools (llhttp, Node's HTTP parser): the standard fast pair, in C,
# instead of asyncio's pure-Python event loop and h11's pure-Python parser. The bench's bare ASGI app runs on the same.
SERVER_OPTIONS: dict[str, Any] = {"loop": "uvloop", "http": "httptools", "server_header": False, "proxy_headers": False}
# A /v1/batch request of 20 events allocates ~2,000 short-lived objects (the parsed JSON, the envelopes), all freed by
# reference counting. With CPython's default first threshold (700 allocations) the cyclic collector ran every
# request or two and a full collection of the whole process every ~70,000 allocations: about a third of the CPU of a
# batch request. The API's garbage has no cycles, so it runs far less often.
GC_THRESHOLDS = (10_000, 10, 10)
_WRITE_KEY_IN_QUERY = re.compile(r"([?&]writeKey=)[^&\s]*")


class RedactWriteKeys(logging.Filter):
    """Beacons carry the write key in the query string: the access log shows ``writeKey=****`` instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(isinstance(a, str) and "writeKey=" in a for a in args):
            record.args = tuple(_WRITE_KEY_IN_QUERY.sub(r"\1****", a) if isinstance(a, str) else a for a in args)
        return True


def _redact_access_log() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactWriteKeys) for f in access.filters):
        access.addFilter(RedactWriteKeys())


class Api(FastAPI):
    """The FastAPI app, with the collection routes' POST and OPTIONS sent straight to their plain ASGI endpoint
    (``collection.Endpoint``) and everything else (admin API, console, OpenAPI document, other methods) to FastAPI."""

    collection: collection.Endpoint

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.collection.takes(scope):
            scope["app"] = self  # its errors are rendered by this app's exception handlers
            await self.collection(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def create_app(settings: Settings | None = None, *, broker: Broker | None = None) -> Api:
    settings = settings or get_settings()
    st = State(settings, broker)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _redact_access_log()  # after the server configured its logging
        yield
        await st.drain()  # nothing accepted stays behind in memory
        await asyncio.to_thread(st.close)

    app = Api(
        title="Signal S3 destination",
        version="0.1.0",
        lifespan=lifespan,
        description="Admin API of the Amazon S3 destination and Segment-compatible event collection. "
        "The web console is served at /, and this reference at /api inside it.",
        # FastAPI's /docs and /redoc load Swagger UI and ReDoc from a CDN: off. The document is served by
        # workers.web.reference (admin token or console session), and the console's /api page renders it.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.signal = st
    app.collection = collection.Endpoint(st)
    install_handlers(app)
    app.include_router(admin.router)
    app.include_router(admin.metrics_router)
    app.include_router(collection_routes.router)
    app.include_router(reference.router)
    app.include_router(console.router)
    # an integration's own pages after the console's: /integrations/library is not an integration id
    app.include_router(delivery_pages.router)
    app.include_router(integration_pages.router)
    app.mount("/static", Static(), name="static")
    return app


def served_app() -> Api:
    """The app as each ``signal-s3 api`` process builds it (uvicorn's factory, also in every worker process)."""
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if settings.admin_token is None:
        log.warning("SIGNAL_ADMIN_TOKEN is not set: the admin routes answer 503")
    gc.set_threshold(*GC_THRESHOLDS)
    return create_app(settings)


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    """Run the API with uvicorn until SIGINT/SIGTERM (pending events are published before it exits).

    ``workers`` > 1 starts that many processes on the same socket, sharing nothing but Redis (uvicorn's supervisor
    replaces one that dies); each has its own broker connection and batcher.
    """
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "workers.web.app:served_app",
        factory=True,
        workers=workers,
        host=host or settings.api_host,
        port=port or settings.api_port,
        log_level=settings.log_level.lower(),
        access_log=settings.api_access_log,
        **SERVER_OPTIONS,
    )
