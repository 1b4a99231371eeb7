"""``celery -A tests.support.poison worker``: the fleet's app plus one task that kills the process running it, the
way a message that crashes (or runs out of memory in) every worker that takes it does."""

from __future__ import annotations

import os
import signal

from workers.app import app

__all__ = ["app", "crash"]


@app.task(name="signal.test.crash", acks_late=True, ignore_result=True)
def crash() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
