"""How task messages look on the broker: plain JSON written and read by orjson, ``signal.ingest`` bodies compressed.

Imported by every process that publishes or consumes (``workers.app``, ``workers.broker``); ``install()`` registers
the codecs in kombu once per process. The bytes on the wire stay standard, so any Celery producer still works:

- ``json``: the same JSON any producer writes, produced and parsed by orjson (kombu's decoder calls a Python hook for
  every object, ~5 per event). Celery decodes a protocol-2 body twice (the consumer strategy reads
  ``message.payload``, then the task's trace decodes the same bytes again); the decoder remembers the last body it
  parsed and answers the second call for that same bytes object from it, so each message is parsed once.
- ``zlib`` compression (kombu's ``application/x-gzip`` content, zlib format), done by isal at level 1: kombu's Redis
  transport stores a message as JSON text with the body in base64, and a worker that takes a message re-serialises
  all of it into the unacked hash; compressed, those steps and the broker's memory handle ~1/8 of the bytes, for
  about 1 µs of compression per event at the producer. ``INGEST_COMPRESSION`` is what producers pass to
  ``send_task``; uncompressed messages are read as before.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import orjson
from isal import isal_zlib
from kombu import compression, serialization

JSON_CONTENT_TYPE = "application/json"
INGEST_COMPRESSION = "zlib"
_ZLIB_CONTENT_TYPE = "application/x-gzip"  # kombu's name for zlib-format bodies ("zlib", "gzip" are its aliases)
COMPRESSION_LEVEL = 1  # isal: ~1.5 GB/s, ratio ~8 on event batches (level 2 is twice as slow for ~1 % smaller)


class _DecodeOnce:
    """``orjson.loads`` that returns its previous result when given the very same bytes object again.

    Keeps a strong reference to the last body, so an identity match can only be that body (never a new object
    at a reused address). Bodies are immutable, and Celery only reads the first result before handing the second
    to the task, so sharing it is safe; one (body, result) pair is held until the next message.
    """

    __slots__ = ("_last",)

    def __init__(self) -> None:
        self._last: tuple[object, Any] = (None, None)

    def __call__(self, data: bytes | str) -> Any:
        last = self._last  # one read: safe against another thread replacing it meanwhile
        if last[0] is data:
            return last[1]
        result = orjson.loads(data)
        self._last = (data, result)
        return result


loads = _DecodeOnce()
dumps = orjson.dumps
compress = partial(isal_zlib.compress, level=COMPRESSION_LEVEL)
decompress = isal_zlib.decompress

_installed = False


def install() -> None:
    """Register the codecs in kombu (idempotent)."""
    global _installed
    if _installed:
        return
    serialization.register("json", dumps, loads, content_type=JSON_CONTENT_TYPE, content_encoding="utf-8")
    compression.register(compress, decompress, _ZLIB_CONTENT_TYPE, aliases=["gzip", "zlib"])
    _installed = True
