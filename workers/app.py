"""The Celery app of the fleet: ``celery -A workers.app worker|beat``.

Its configuration (``workers.queue.config``) is read from the settings when Celery first needs it, so importing this
module reads nothing; what its worker and beat processes do at start is in ``workers.queue.worker``.
"""

from __future__ import annotations

from celery import Celery

from workers.queue import worker
from workers.settings import get_settings

app = Celery("signal", include=["tasks.ingest", "tasks.flush"])
worker.configure(app, get_settings)
