"""What one buffer element holds: NDJSON lines joined by newlines, as text or as one gzip member of that text.

The API's producer compresses each hour's lines of a large message once (``workers.queue.wire``); the ingest worker
and Redis then move and keep the compressed bytes as they are (about a tenth of the lines' bytes), and whoever reads
the lines back (the flush, finding an event) inflates them here. An element is told apart by its first byte: a line
starts with ``{``, a gzip member with 0x1f 0x8b. Elements written as text (small messages, producers that send JSON,
buffers written before) are read as they always were.
"""

from __future__ import annotations

from isal import isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
LEVEL = 1  # isal level 1: ~1 GB/s on event lines, ~11x smaller
MIN_BYTES = 4096  # smaller texts stay text: a gzip member's 18 bytes of frame and a call each would not pay
_GZIP_WBITS = 31


def compress(text: bytes) -> bytes:
    """``text`` as one gzip member, if it is large enough to gain; else as it is."""
    if len(text) < MIN_BYTES or not text.startswith(b"{"):
        return text
    return isal_zlib.compress(text, LEVEL, _GZIP_WBITS)


def is_compressed(element: bytes) -> bool:
    return element[:2] == GZIP_MAGIC


def lines_text(element: bytes) -> bytes:
    """The element's lines joined by newlines (inflated when it is compressed; a corrupt member raises
    ``isal_zlib.error``)."""
    if element[:2] == GZIP_MAGIC:
        return isal_zlib.decompress(element, _GZIP_WBITS)
    return element


def text_size(element: bytes) -> int:
    """The byte length of the element's text, without inflating it: gzip's trailer holds it (modulo 2**32; an
    element is far below)."""
    if element[:2] == GZIP_MAGIC:
        return int.from_bytes(element[-4:], "little")
    return len(element)
