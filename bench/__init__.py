"""``make bench``: throughput, memory, latency and cost of the pipeline, each next to the limit of the same work.

Run ``python -m bench`` (``BENCH_QUICK=1`` for a scaled-down run). Everything runs on this machine: a private
redis-server, moto_server and Celery processes on free loopback ports, stopped by PID at the end. Prints a table and
writes ``bench/results.json``.
"""
