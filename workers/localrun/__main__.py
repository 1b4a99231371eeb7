"""``python -m workers.localrun`` (``make run``); stops on Ctrl-C, or after ``RUN_SECONDS`` seconds when set."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

from workers.localrun.processes import Processes
from workers.localrun.run import run


def main() -> int:
    run_seconds = float(os.environ["RUN_SECONDS"]) if os.environ.get("RUN_SECONDS") else None
    procs = Processes(
        dict(os.environ, PYTHONUNBUFFERED="1", AWS_EC2_METADATA_DISABLED="true"),
        Path(tempfile.mkdtemp(prefix="signal-localrun-")),
    )
    for signum in (signal.SIGINT, signal.SIGTERM):  # even when started with SIGINT ignored (in the background)
        signal.signal(signum, signal.default_int_handler)
    try:
        run(procs, run_seconds)
    except KeyboardInterrupt:
        print("\ninterrupted")
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave servers behind
        procs.stop_all()
        print(f"stopped {len(procs.running)} processes; logs in {procs.log_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
