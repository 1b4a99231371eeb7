"""Every use of a private name of kombu, Celery or botocore, in one place.

Each function here leans on something its library does not promise to keep. Each has a test in
``tests/unit/test_compat.py`` that fails loudly, naming the assumption, when an upgrade breaks it: read those tests
before upgrading celery, kombu, botocore or pyiceberg.

- ``reuse_kombu_redis_clients``: kombu's Redis ``Channel._create_client``, to keep one redis-py client per channel.
- ``current_task``: ``celery._state.get_current_task``, the task the current thread runs (for log records).
- ``remove_handlers``: botocore's ``HierarchicalEmitter._handlers``, to find handlers bound to a class.
- ``KOMBU_REDIS_PRIORITY_SUFFIXES`` and ``KOMBU_REDIS_UNACKED``: how kombu's Redis transport names the lists of a
  queue's priority steps and the hash of messages taken but not acknowledged.
- ``iceberg_statistics``: pyiceberg's ``io.pyarrow`` helpers that turn a Parquet footer into a data file's column
  statistics (what its ``add_files`` uses), for data files written by our own streaming encoder.
"""

from __future__ import annotations

from typing import Any

# kombu's Redis transport keeps a queue's messages of priority steps 3, 6 and 9 in lists of their own, named
# <queue> + sep + step with sep "\x06\x16" (kombu.transport.redis.Channel.sep, priority_steps [0, 3, 6, 9]) ...
KOMBU_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
# ... and messages a worker took but did not acknowledge in one hash (Channel.unacked_key), until the visibility
# timeout gives them back.
KOMBU_REDIS_UNACKED = "unacked"


def reuse_kombu_redis_clients() -> None:
    """kombu's Redis transport builds a new redis-py client for every command a producer sends (``conn_or_acquire``),
    and a client's constructor registers ~170 response callbacks: a third of the CPU of publishing a task. Each
    channel keeps one client per connection pool instead (redis-py clients are thread-safe; the connections stay in
    the channel's pool). For producers only: workers keep kombu's own clients for the bookkeeping of the messages they
    take. Idempotent."""
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    if getattr(channel, "_signal_reuses_clients", False):
        return
    create = channel._create_client

    def _create_client(self: Any, asynchronous: bool = False) -> Any:
        if asynchronous:
            return create(self, asynchronous)
        pool = self.pool
        cached = self.__dict__.get("_signal_client")
        if cached is None or cached[0] is not pool:
            cached = self.__dict__["_signal_client"] = (pool, create(self, False))
        return cached[1]

    channel._create_client = _create_client
    channel._signal_reuses_clients = True


def current_task() -> Any | None:
    """The Celery task the current thread is running, or None (``celery.current_task`` without its proxy)."""
    from celery._state import get_current_task

    return get_current_task()


def remove_handlers(client: Any, event_names: tuple[str, ...], bound_to: tuple[type, ...]) -> int:
    """Unregister from a botocore client's event emitter every handler of ``event_names`` (and their sub-events) that
    is a method of an instance of ``bound_to``; returns how many were removed. Each client owns a copy of the emitter,
    so no other client is affected. botocore has no public way to list a client's handlers."""
    events = client.meta.events
    emitter = getattr(events, "_emitter", events)
    removed = 0
    for event_name in event_names:
        for handler in list(emitter._handlers.prefix_search(event_name)):
            if isinstance(getattr(handler, "__self__", None), bound_to):
                events.unregister(event_name, handler)
                removed += 1
    return removed


def iceberg_statistics(table: Any, metadata: Any) -> dict[str, Any]:
    """The column statistics of a Parquet data file for its manifest entry, from the file's footer ``metadata``
    (``pyarrow.parquet.FileMetaData``): pyiceberg's own helpers of ``add_files``, which live in its ``io.pyarrow``
    module without being named in its documentation."""
    from pyiceberg.io.pyarrow import (
        compute_statistics_plan,
        data_file_statistics_from_parquet_metadata,
        parquet_path_to_id_mapping,
    )

    schema = table.schema()
    statistics = data_file_statistics_from_parquet_metadata(
        parquet_metadata=metadata,
        stats_columns=compute_statistics_plan(schema, table.metadata.properties),
        parquet_column_mapping=parquet_path_to_id_mapping(schema),
    )
    return statistics.to_serialized_dict()
