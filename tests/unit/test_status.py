"""What status shows of batches on their way: in flight, retrying, held."""

from __future__ import annotations

import fakeredis

from tests.support.seed import install_body
from workers.integrations import registry, status
from workers.store import buffer, chunks, keys

T0 = 1_764_061_200_000
HOUR = "2026112509"


def sealed(r, iid, message_id):
    chunks.append(
        r,
        iid,
        chunks.Append(message_id=message_id, now_ms=T0, chunks_by_hour=chunks.chunks({HOUR: [b'{"event_id":"e"}']})),
        chunks.Limits(cap_bytes=10**6, batch_max_events=10, batch_max_bytes=10**6, seal_due_ms=T0, seen_ttl_ms=1000),
    )
    return buffer.seal(r, iid, HOUR, now_ms=T0, seal_due_ms=T0)


def test_status_counts_batches_in_flight_retrying_and_held():
    r = fakeredis.FakeRedis()
    iid = registry.install(r, install_body()).id
    in_flight, retrying, held = (sealed(r, iid, m) for m in ("a", "b", "c"))
    buffer.claim(r, iid, retrying, token="t", now_ms=T0, lease_ms=1000, key="k")
    buffer.fail(r, iid, retrying, token="t", now_ms=T0, retry_at_ms=T0 + 5, code="SlowDown", message="m")
    buffer.hold(r, iid, held, token="", now_ms=T0, code="AccessDenied", message="m", hint="h")
    st = status.integration_status(r, iid)
    assert (st["batches_in_flight"], st["retrying_batches"], st["dead_letter_batches"]) == (2, 1, 1)
    assert st["last_error"]["code"] == "AccessDenied" and st["dead_letter_events"] == 1
    [view] = status.dead_letter(r, iid)
    assert (view["batch_id"], view["code"], view["hint"], view["events"]) == (held, "AccessDenied", "h", 1)
    assert r.exists(keys.batch(iid, in_flight))


def test_the_last_error_counts_while_batches_wait_or_nothing_was_delivered_since():
    base = {
        "last_error": {"code": "AccessDenied", "at": "2026-01-01T10:00:00.000Z"},
        "dead_letter_batches": 0,
        "retrying_batches": 0,
        "last_success_at": None,
    }
    assert status.current_error(base)["code"] == "AccessDenied"
    assert status.current_error({**base, "last_success_at": "2026-01-01T09:00:00.000Z"})
    assert status.current_error({**base, "last_success_at": "2026-01-01T11:00:00.000Z"}) is None
    assert status.current_error({**base, "last_success_at": "2026-01-01T11:00:00.000Z", "dead_letter_batches": 1})
    assert status.current_error({**base, "last_success_at": "2026-01-01T11:00:00.000Z", "retrying_batches": 2})
    assert status.current_error({**base, "last_error": None}) is None
