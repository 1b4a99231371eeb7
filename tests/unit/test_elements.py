"""Buffer elements: NDJSON text, or one gzip member of it that any gzip reader inflates."""

from __future__ import annotations

import gzip

from workers.store import elements

LINES = b"\n".join(b'{"event_id":"e%d","type":"track"}' % i for i in range(400))


def test_large_text_becomes_one_standard_gzip_member_that_knows_its_size():
    packed = elements.compress(LINES)
    assert elements.is_compressed(packed) and len(packed) < len(LINES) / 5
    assert gzip.decompress(packed) == LINES == elements.lines_text(packed)
    assert elements.text_size(packed) == len(LINES)


def test_small_text_and_anything_not_lines_stay_as_they_are():
    small = LINES[: elements.MIN_BYTES - 1]
    assert elements.compress(small) is small and elements.text_size(small) == len(small)
    packed = elements.compress(LINES)
    assert elements.compress(packed) is packed  # a retry's bytes are not compressed twice
    assert elements.lines_text(LINES) is LINES
