"""``python -m bench.memchild IID BATCH_ID``: upload one sealed batch in a fresh process, print its peak RSS (JSON)."""

from __future__ import annotations

import json
import sys
import time


def vm(field: str) -> int:
    """A /proc/self/status field in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def main() -> None:
    iid, batch_id = sys.argv[1], sys.argv[2]
    from workers.pipeline import upload
    from workers.settings import get_settings
    from workers.store.db import redis_client

    r = redis_client()
    r.ping()
    baseline_kib = vm("VmHWM")
    t0 = time.perf_counter()
    outcome = upload.upload(r, iid, batch_id, settings=get_settings())
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "state": outcome.state,
                "key": outcome.key,
                "seconds": elapsed,
                "baseline_hwm_mb": baseline_kib / 1024,
                "peak_hwm_mb": vm("VmHWM") / 1024,
            }
        )
    )


if __name__ == "__main__":
    main()
