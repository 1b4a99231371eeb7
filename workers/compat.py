"""Every use of a private name of kombu, Celery or botocore, in one place.

Each function here leans on something its library does not promise to keep. Each has a test in
``tests/unit/test_compat.py`` that fails loudly, naming the assumption, when an upgrade breaks it: read those tests
before upgrading celery, kombu, botocore or pyiceberg.

- ``reuse_kombu_redis_clients``: kombu's Redis ``Channel._create_client``, to keep one redis-py client per channel.
- ``write_kombu_redis_envelopes_with_orjson``: kombu's Redis ``dumps`` (the module's name for its JSON encoder).
- ``take_and_record_in_one_step``: kombu's Redis ``Channel._brpop_start`` / ``_brpop_read`` and ``QoS.append``, so
  that a consumer takes a message and records it as unacknowledged in one server-side step.
- ``current_task``: ``celery._state.get_current_task``, the task the current thread runs (for log records).
- ``remove_handlers``: botocore's ``HierarchicalEmitter._handlers``, to find handlers bound to a class.
- ``KOMBU_REDIS_PRIORITY_SUFFIXES`` and ``KOMBU_REDIS_UNACKED``: how kombu's Redis transport names the lists of a
  queue's priority steps and the hash of messages taken but not acknowledged.
- ``iceberg_statistics``: pyiceberg's ``io.pyarrow`` helpers that turn a Parquet footer into a data file's column
  statistics (what its ``add_files`` uses), for data files written by our own streaming encoder.
"""

from __future__ import annotations

import logging
import math
from typing import Any

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's messages of priority steps 3, 6 and 9 in lists of their own, named
# <queue> + sep + step with sep "\x06\x16" (kombu.transport.redis.Channel.sep, priority_steps [0, 3, 6, 9]) ...
KOMBU_REDIS_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
# ... and messages a worker took but did not acknowledge in one hash (Channel.unacked_key), until the visibility
# timeout gives them back.
KOMBU_REDIS_UNACKED = "unacked"
# A consumer whose BLMOVE Redis refused waits by polling this often, for this long before it tries BLMOVE again.
PAUSE_S = 0.2
PAUSED_S = 10
# A consumer of several queues waits on each of them in turn for this long.
TURN_S = 0.05


def reuse_kombu_redis_clients() -> None:
    """kombu's Redis transport builds a new redis-py client for every command a producer sends (``conn_or_acquire``),
    and a client's constructor registers ~170 response callbacks: a third of the CPU of publishing a task. Each
    channel keeps one client per connection pool instead (redis-py clients are thread-safe; the connections stay in
    the channel's pool, which redis-py resets in a forked child); a consumer's blocking client (``asynchronous``)
    stays kombu's own. Idempotent."""
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


def _plain(obj: object) -> bool:
    """Whether ``obj`` is made of exact JSON types only (a subclass or another type may have a kombu encoding of its
    own; a float that is not finite has no JSON form), so orjson writes what kombu's JSON would mean."""
    t = type(obj)
    if t is dict:
        return all(type(k) is str and _plain(v) for k, v in obj.items())  # type: ignore[attr-defined]
    if t is list or t is tuple:
        return all(map(_plain, obj))  # type: ignore[call-overload]
    if t is float:
        return math.isfinite(obj)  # type: ignore[arg-type]
    return t is str or t is int or t is bool or obj is None


def write_kombu_redis_envelopes_with_orjson() -> None:
    """kombu's Redis transport writes each message's envelope (its body in base64, headers, properties) as JSON with
    the standard library's encoder, whose escaping of the base64 body cost ~4.4k instructions per event. Envelopes
    of plain JSON types are written by orjson instead (the same JSON, read by kombu as before); anything else (a
    datetime, a UUID, NaN, an integer beyond 64 bits, a subclass) goes to kombu's encoder as before. Idempotent."""
    import orjson
    from kombu.transport import redis as kombu_redis

    if getattr(kombu_redis, "_signal_orjson_envelopes", False):
        return
    fallback = kombu_redis.dumps

    def dumps(obj: Any) -> Any:
        if _plain(obj):
            try:
                return orjson.dumps(obj)
            except orjson.JSONEncodeError:  # an integer beyond 64 bits
                pass
        return fallback(obj)

    kombu_redis.dumps = dumps
    kombu_redis._signal_orjson_envelopes = True


def take_and_record_in_one_step(script: str, pause_key: str) -> None:
    """Close the window in which kombu's Redis transport loses a message: it takes one with BRPOP and records it as
    unacknowledged (``QoS.append``: ZADD unacked_index, HSET unacked) in a second command, after parsing it, so a
    consumer that dies in between leaves it nowhere. Here a channel's poll alternates two commands instead:

    - take: ``script`` (``workers/queue/lua/take.lua``) pops the oldest message of the channel's lists and writes
      kombu's own unacked record of it in the same step; ``QoS.append`` then only does the in-memory bookkeeping for
      a message recorded so;
    - wait, when the take found nothing: ``BLMOVE list list RIGHT LEFT`` on the first list, which blocks like BRPOP
      but leaves the message on its list (it moves to the other end), and wakes the channel to take again. A full
      Redis (``noeviction``) refuses BLMOVE, which may allocate, where it still runs the take (whose first write is
      a pop): the channel then waits with BLPOP of ``pause_key``, a list nothing is pushed to, for ``PAUSE_S`` at a
      time, and tries BLMOVE again after ``PAUSED_S``. So does one on a Redis older than 6.2.

    A channel of one queue waits on its list (``brpop_timeout``, 1 s by default, at a time); one of several queues
    waits on each queue's list in turn for ``TURN_S`` (BLMOVE watches one list): an idle worker of several queues
    asks Redis ~40 times a second, and a message waits at most about ``TURN_S`` times the number of queues. A message
    on a priority list is taken at the next poll. Channels with a key prefix or with a consumer that does not
    acknowledge (``no_ack``: Celery's control replies) keep kombu's BRPOP.
    A message the take recorded and nobody can parse has its record removed and is reported as kombu reports it.
    Idempotent; for consumers (the fleet's worker, beat and monitoring processes)."""
    from queue import Empty
    from time import monotonic, time

    from kombu.transport import redis as kombu_redis
    from kombu.transport import virtual
    from kombu.utils.encoding import bytes_to_str
    from kombu.utils.json import loads
    from redis.exceptions import ResponseError

    channel_class, qos_class = kombu_redis.Channel, kombu_redis.QoS
    if getattr(channel_class, "_signal_takes_in_one_step", False):
        return
    stock_start, stock_read, stock_append = channel_class._brpop_start, channel_class._brpop_read, qos_class.append
    stock_consume = channel_class.basic_consume

    def basic_consume(self: Any, queue: str, no_ack: bool = False, *args: Any, **kwargs: Any) -> Any:
        if no_ack:
            self.__dict__.setdefault("_signal_no_ack", set()).add(queue)
        return stock_consume(self, queue, no_ack, *args, **kwargs)

    def eligible(channel: Any) -> bool:
        no_ack = channel.__dict__.get("_signal_no_ack")
        return not channel.global_keyprefix and not (no_ack and no_ack.intersection(channel.active_queues))

    def _brpop_start(self: Any, timeout: float | None = None) -> None:
        if not eligible(self):
            self.__dict__["_signal_command"] = None
            return stock_start(self, timeout)
        if timeout is None:
            timeout = self.brpop_timeout
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return None
        keys = [self._q_for_pri(queue, pri) for pri in self.priority_steps for queue in queues]
        if not self.__dict__.get("_signal_wait"):
            command = ["EVAL", script, len(keys) + 2, *keys, self.unacked_index_key, self.unacked_key, repr(time())]
        elif monotonic() >= self.__dict__.get("_signal_pause_until", 0.0):
            if len(queues) == 1:
                command = ["BLMOVE", keys[0], keys[0], "RIGHT", "LEFT", timeout or 0]
            else:  # one list at a time, briefly each, in turn
                turn = self.__dict__.get("_signal_turn", 0) % len(queues)
                self.__dict__["_signal_turn"] = turn + 1
                command = ["BLMOVE", queues[turn], queues[turn], "RIGHT", "LEFT", TURN_S]
        else:  # BLMOVE was refused: a timed wait on a list that stays empty, which no full Redis refuses
            command = ["BLPOP", pause_key, min(timeout or PAUSE_S, PAUSE_S)]
        self.__dict__["_signal_command"] = command[0]
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(*command)
        return None

    def _brpop_read(self: Any, **options: Any) -> bool:
        command = self.__dict__.pop("_signal_command", None)
        if command is None:
            return stock_read(self, **options)  # type: ignore[no-any-return]
        try:
            try:
                reply = self.client.parse_response(self.client.connection, command, **options)
            except ResponseError as exc:
                if command == "EVAL":
                    raise
                reply = exc  # BLMOVE refused (a full Redis with noeviction, or one older than 6.2)
            except self.connection_errors:
                self.client.connection.disconnect()  # the next poll reconnects (as kombu's BRPOP read)
                raise
            if command != "EVAL":  # woken, timed out, or refused: take next
                self.__dict__["_signal_wait"] = False
                if isinstance(reply, ResponseError):
                    refused(self, reply)
                raise Empty()
            if not reply:  # nothing to take: wait next
                self.__dict__["_signal_wait"] = True
                raise Empty()
            key, item, tag = reply
            queue = bytes_to_str(key).rsplit(self.sep, 1)[0]
            self._queue_cycle.rotate(queue)
            tag = bytes_to_str(tag)
            try:
                payload = loads(bytes_to_str(item))
            except ValueError:
                if tag:  # a record of what nobody can read would come back every visibility timeout
                    self.qos._remove_from_indices(tag).execute()
                raise
            if tag:
                self.qos.__dict__.setdefault("_signal_recorded", set()).add(tag)
            try:
                self.connection._deliver(payload, queue)
            finally:
                if tag:
                    self.qos.__dict__["_signal_recorded"].discard(tag)
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()

    def refused(self: Any, error: ResponseError) -> None:
        if not self.__dict__.get("_signal_pause_until"):
            log.warning(
                "Redis refused BLMOVE (%s): waiting for messages by polling every %.2f s for %d s",
                error,
                PAUSE_S,
                PAUSED_S,
            )
        self.__dict__["_signal_pause_until"] = monotonic() + PAUSED_S

    def append(self: Any, message: Any, delivery_tag: str) -> None:
        recorded = self.__dict__.get("_signal_recorded")
        if recorded and delivery_tag in recorded:
            recorded.discard(delivery_tag)  # the take recorded it
            virtual.QoS.append(self, message, delivery_tag)
            return
        stock_append(self, message, delivery_tag)

    channel_class._signal_stock = {"start": stock_start, "read": stock_read, "append": stock_append}
    channel_class.basic_consume = basic_consume
    channel_class._brpop_start = _brpop_start
    channel_class._brpop_read = _brpop_read
    qos_class.append = append
    channel_class._signal_takes_in_one_step = True


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
