"""The ``default`` variant's object body: NDJSON + gzip, one event per line, newline-terminated, compressed with isal.

The gzip output is a standard single-member gzip stream (readable by ``gzip.decompress``, ``zcat``, Athena, Spark).
Every encoder takes the batch's elements a few at a time (``write``; each element one or more lines joined by newlines,
as the buffer holds them), then ``finish`` once; the concatenation of everything they return is the object. Gzip
takes the elements' bytes as they are: it never looks at a line.
"""

from __future__ import annotations

import gzip
from typing import Final

from isal import isal_zlib

ISAL_LEVEL = 1
_GZIP_WBITS = 31  # gzip container, 32 KiB window
NDJSON_CONTENT_TYPE: Final = "application/x-ndjson"


class GzipNdjson:
    """Streaming compressor: ``write`` elements a few at a time, then ``finish`` once; concatenate everything returned.

    ``events`` counts lines written, ``raw_bytes`` the uncompressed NDJSON bytes, ``compressed_bytes`` the bytes
    returned so far (the full object size after ``finish``).
    """

    __slots__ = ("_compressor", "_finished", "events", "raw_bytes", "compressed_bytes")
    content_type = NDJSON_CONTENT_TYPE

    def __init__(self) -> None:
        self._compressor = isal_zlib.compressobj(level=ISAL_LEVEL, wbits=_GZIP_WBITS)
        self._finished = False
        self.events = 0
        self.raw_bytes = 0
        self.compressed_bytes = 0

    def write(self, elements: list[bytes]) -> bytes:
        """Compress ``elements`` (each compact JSON lines joined by newlines); returns the compressed bytes available
        so far."""
        if self._finished:
            raise ValueError("write after finish")
        if not elements:
            return b""
        data = b"\n".join(elements) + b"\n"
        if b"" in elements or data[:1] == b"\n":
            raise ValueError("every element must be non-empty lines")
        compressed = self._compressor.compress(data)
        self.events += data.count(b"\n")
        self.raw_bytes += len(data)
        self.compressed_bytes += len(compressed)
        return compressed

    def finish(self) -> bytes:
        """The remaining compressed bytes and the gzip trailer; the compressor cannot be used afterwards."""
        if self._finished:
            raise ValueError("finish called twice")
        self._finished = True
        tail = self._compressor.flush()
        self.compressed_bytes += len(tail)
        return tail


def encode(lines: list[bytes]) -> bytes:
    """One gzip NDJSON object holding ``lines``."""
    compressor = GzipNdjson()
    return compressor.write(lines) + compressor.finish()


def decode(blob: bytes) -> list[bytes]:
    """The lines of a gzip NDJSON object (stdlib gzip, independent of the encoder)."""
    data = gzip.decompress(blob)
    if not data:
        return []
    if not data.endswith(b"\n"):
        raise ValueError("NDJSON body is not newline-terminated")
    return data[:-1].split(b"\n")
