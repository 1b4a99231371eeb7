"""Object formats: one streaming encoder per variant (``default``: gzipped NDJSON, ``workers.sink.ndjson``;
``parquet``: ``workers.sink.parquet``). Every encoder takes the batch's elements (one or more lines joined by
newlines) a few at a time (``write``), then ``finish`` once; the concatenation of everything they return is the
object."""

from __future__ import annotations

from typing import Protocol

from workers.sink.ndjson import GzipNdjson


class Encoder(Protocol):
    """What the uploader needs of an encoder (``GzipNdjson``, ``workers.sink.parquet.ParquetEncoder``)."""

    content_type: str
    events: int
    raw_bytes: int
    compressed_bytes: int

    def write(self, elements: list[bytes]) -> bytes: ...

    def finish(self) -> bytes: ...


def encoder_for(variant: str) -> Encoder:
    """A fresh encoder for an integration variant (its object key's suffix names the same variant)."""
    if variant == "default":
        return GzipNdjson()
    if variant == "parquet":
        from workers.sink.parquet import ParquetEncoder  # pyarrow is loaded only by processes that write Parquet

        return ParquetEncoder()
    raise ValueError(f"no encoder for variant {variant!r}")
