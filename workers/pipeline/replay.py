"""Replay: held batches re-uploaded on the user's word, after they fixed the cause; same object key, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from workers import clock
from workers.classify import hint_for
from workers.errors import Failure, NotFound, PermanentError, TransientError
from workers.integrations import registry
from workers.pipeline.upload import upload
from workers.settings import Settings
from workers.sink import clients
from workers.store import buffer, due, facts


class NotHeld(NotFound):
    """The batch named is not held in the dead-letter store (delivered meanwhile, or never held)."""


@dataclass
class ReplayReport:
    delivered: list[str] = field(default_factory=list)
    failed: list[tuple[str, Failure]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        """What a user is shown: delivered batches, batches already delivered, and what still fails and why."""
        return {
            "delivered": self.delivered,
            "already_delivered": self.skipped,
            "still_failing": [
                {"batch_id": b, "code": f.code, "message": f.message, "hint": f.hint} for b, f in self.failed
            ],
        }


def replay(
    r: redis.Redis,
    integration_id: str,
    *,
    settings: Settings,
    batch_id: str | None = None,
    on_progress: Callable[[str, str], None] | None = None,
) -> ReplayReport:
    """Re-upload held batches now (after the user fixed the cause): same hour path, exactly once. The user's fix may
    be in their AWS account (a trust policy): a role refused before is asked again."""
    integ = registry.get(r, integration_id, max_age_s=0)
    clients.evict(integ.config)
    facts.forget_role_refused(r, integration_id)
    held = [b["batch_id"] for b in buffer.held_batches(r, integration_id)]
    if batch_id is not None:
        if batch_id not in held:
            raise NotHeld(f"batch {batch_id} is not held for integration {integration_id}")
        held = [batch_id]
    report = ReplayReport()
    for b in held:
        # the sweep stays off it for one lease: this process uploads it right now
        due_ms = clock.now_ms() + int(settings.lease_s * 1000)
        buffer.release(r, integration_id, b, due_ms=due_ms)
        due.lower(r, integration_id, due_ms)
        try:
            outcome = upload(r, integration_id, b, settings=settings)
        except (PermanentError, TransientError) as exc:
            report.failed.append((b, exc.failure))
            if isinstance(exc, TransientError):
                # keep it visible and waiting: back to the dead-letter store, not into silent retries
                buffer.hold(
                    r,
                    integration_id,
                    b,
                    token="",
                    now_ms=clock.now_ms(),
                    code=exc.failure.code,
                    message=exc.failure.message,
                    hint=exc.failure.hint or hint_for(exc.failure.code),
                )
            state = "failed"
        else:
            (report.delivered if outcome.state == "delivered" else report.skipped).append(b)
            state = outcome.state
        if on_progress:
            on_progress(b, state)
    return report
