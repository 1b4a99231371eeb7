"""The HTTP limit: a bare ASGI app on the same server stack as the API (uvicorn with its ``SERVER_OPTIONS``: uvloop,
httptools) that reads the whole body and answers 200 like the collection API does (``{"success": true}``), with no
authentication, parsing or publishing. ``uvicorn bench.bare:app``."""

from __future__ import annotations

from typing import Any

BODY = b'{"success":true}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
