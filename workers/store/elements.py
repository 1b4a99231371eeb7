"""What one buffer element holds: NDJSON lines joined by newlines, as text or as one gzip member of that text.

The API's producer compresses each hour's lines of a large message once (``workers.queue.wire``); the ingest worker
and Redis then move and keep the compressed bytes as they are (about a tenth of the lines' bytes), and whoever reads
the lines back (the flush, finding an event) inflates them here. An element is told apart by its first byte: a line
starts with ``{``, a gzip member with 0x1f 0x8b. Elements written as text (small messages, producers that send JSON,
buffers written before) are read as they always were.
"""

from __future__ import annotations

from isal import isal_zlib

from workers.errors import Failure, PermanentError

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


class DamagedBatch(PermanentError):
    """A batch whose elements do not hold what was counted into it (a compressed chunk that does not inflate to one
    whole gzip member, or fewer lines than its events): it is held at once, with this reason, instead of being
    retried for a day. Only a producer's fault or a damaged store can cause it."""

    def __init__(self, problem: str) -> None:
        super().__init__(
            Failure(
                code="DamagedBatch",
                message=problem,
                permanent=True,
                hint="The batch's buffered data is damaged, so it cannot be written as it is. Its events are kept "
                "here; report it with the batch id.",
                http_status=None,
            )
        )


def lines_text(element: bytes) -> bytes:
    """The element's lines joined by newlines (inflated when it is compressed: exactly one whole gzip member, or
    ``DamagedBatch``)."""
    if element[:2] != GZIP_MAGIC:
        return element
    inflate = isal_zlib.decompressobj(_GZIP_WBITS)
    try:
        text = inflate.decompress(element)
    except isal_zlib.error as exc:
        raise DamagedBatch(f"a compressed chunk does not inflate: {exc}") from None
    if not inflate.eof or inflate.unused_data:
        raise DamagedBatch("a compressed chunk is not one whole gzip member")
    return text


def text_size(element: bytes) -> int:
    """The byte length of the element's text, without inflating it: gzip's trailer holds it (modulo 2**32; an
    element is far below)."""
    if element[:2] == GZIP_MAGIC:
        return int.from_bytes(element[-4:], "little")
    return len(element)
