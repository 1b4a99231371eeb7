"""Every Redis key name of the fleet.

All keys of one integration carry the Redis Cluster hash tag ``{<integration_id>}`` so one Lua script or RENAME
may touch any of them. Buffer hours are ``YYYYMMDDHH`` (UTC), or slots ``YYYYMMDDHH|name=value/...`` for an
integration with partition fields (``workers.events.partitions``): every ``<hour>`` below may be a slot. Batch ids are
uuid4 strings.

Per integration ``I``:
  sig:{I}:integration        string  the registry record (JSON; secrets encrypted)
  sig:{I}:buf:<hour>         list    open buffer: chunks, each the NDJSON lines of one message for that hour joined
                                     by newlines, no trailing one (a buffer written one event per element is a list
                                     of one-line chunks)
  sig:{I}:open               zset    index of open buffers: hour -> ms of first append
  sig:{I}:openbytes          hash    hour -> bytes in that open buffer (its lines, newlines not counted)
  sig:{I}:opencount          hash    hour -> events in that open buffer (absent: a buffer of one-line chunks, LLEN)
  sig:{I}:openlast           hash    hour -> ms of the last append to that open buffer (moved into the batch's meta)
  sig:{I}:batch:<id>         list    sealed batch, the chunks of a buffer, immutable once sealed
  sig:{I}:meta:<id>          hash    batch metadata (hour, events, bytes, state, attempts, lease, errors)
  sig:{I}:pending            zset    batch id -> ms when it may next be (re)claimed (lease expiry / retry due)
  sig:{I}:dead               zset    dead-letter index: batch id -> ms it was held
  sig:{I}:stats              hash    counters (buffered / delivered / rejected:<reason> / removed:<reason> /
                                     partition_fallback ...)
  sig:{I}:status             hash    last success and last error (code, message, hint, time)
  sig:{I}:seen:<message id>  string  ingest de-duplication marker for a delivered message
  sig:{I}:rejections         list    most recent rejected events with their reasons (capped)
  sig:{I}:live               list    most recent accepted events: id, type, hour, buffer generation; and events the
                                     blueprint removed: state filtered, reason (capped)
  sig:{I}:pvals:<hour>:<name> set    the values partition field <name> took in that hour (at most
                                     partition_max_values; workers/store/partition_values.py; expires)
  sig:{I}:gen:<hour>         string  generation of the open buffer of that hour (+1 at every seal; expires)
  sig:{I}:sealed:<hour>:<g>  string  batch id that generation <g> of the hour's buffer was sealed into (expires)
  sig:{I}:delivered:<id>     string  object key a delivered batch was written to (expires)
  sig:{I}:hist:upload_s      hash    upload duration histogram: cumulative le:<bound_s> counters, count, sum_us
  sig:{I}:hist:latency_s     hash    event-to-object latency histogram (first append -> ack), same fields
  sig:{I}:bucket             hash    what the fleet learned of the bucket: object_lock (1/0), checked_ms
  sig:{I}:ov:<YYYYMMDD>.<q>  hash    delivery overview of six UTC hours (q = hour // 6): counts per hour of the day
                                     (workers/store/overview.py; expires)
  sig:{I}:ledger:<YYYYMMDD>  list    object ledger: packed records of the objects confirmed that UTC day
                                     (workers/store/ledger.py; expires)
  sig:{I}:ledgerhead:<day>   string  the day's last header record (bucket, prefix, format), so it is written once
  sig:{I}:pinned             string  the test event Live Events keeps on top until it is delivered or failed (expires)
Global:
  sig:integrations           set     ids of every installed integration
  sig:{due}:index            zset    due index: integration id -> ms when the tick must next look at it
  (workers/store/due.py)
  sig:{due}:versions         hash    due index: integration id -> number of writes that lowered its time
  sig:due:checked            string  set while the due index was checked against every integration recently (expires)

Per source ``S`` (hash tag ``{<source_id>}`` after ``sig:src:``, so a source never shares a key with an integration):
  sig:src:{S}:source         string  the source record (JSON; write key encrypted)
  sig:src:{S}:integrations   set     ids of the integrations that receive the source's events (routing index)
  sig:src:{S}:rate           hash    the source's shared token bucket (tokens, ms of the last refill; expires)
  sig:src:{S}:stats          hash    refused collection requests and events by reason (<reason>:requests / :events)
Global:
  sig:sources                set     ids of every source
  sig:writekey:<sha256>      string  source id of a write key, found by the key's sha256 hex digest

Per Iceberg table ``T`` (the table's uuid, ``workers.store.table_lock``):
  sig:{ice:T}:lock           string  token of the worker committing to the table (expires)
  sig:{ice:T}:fence          string  fencing counter: +1 at every lock taken, recorded in each commit's snapshot
Per integration ``I`` of the iceberg variant:
  sig:{I}:iceberg            hash    the last maintenance (JSON under ``maintenance``)
  sig:{I}:iceberg:running    string  set while a maintenance run of the integration's table is under way (expires)

Fleet and console:
  sig:beat:last_tick_ms              string  ms when signal.flush_due last ran (beat's tick, run by a flush worker)
  sig:console:signin:<client>        string  failed console sign-ins of one client address in the current window
  sig:console:revoked:<sha256>       string  a signed-out console session (sha256 of its CSRF token), until it expires

On a Redis broker (besides kombu's own lists and hashes):
  sig:broker:pause                   list    never written: a worker whose BLMOVE Redis refused waits on it with a
                                             timed BLPOP (workers.queue.take)
"""

from __future__ import annotations

PREFIX = "sig"
INTEGRATIONS = f"{PREFIX}:integrations"
DUE = f"{PREFIX}:{{due}}:index"  # one hash tag: the index and its versions are updated by one script
DUE_VERSIONS = f"{PREFIX}:{{due}}:versions"
DUE_CHECKED = f"{PREFIX}:due:checked"
BROKER_PAUSE = f"{PREFIX}:broker:pause"
# stats field: events of a partition_time timestamp integration whose timestamp was outside partition_time_bound_s,
# partitioned by their received hour instead
STAT_PARTITION_FALLBACK = "partition_fallback"
# stats field: events written under __other__, their partition value over partition_max_values in its hour
STAT_PARTITION_OTHER = "partition_other"


def tag(integration_id: str) -> str:
    return f"{PREFIX}:{{{integration_id}}}"


def integration(integration_id: str) -> str:
    return f"{tag(integration_id)}:integration"


def buffer(integration_id: str, hour: str) -> str:
    return f"{tag(integration_id)}:buf:{hour}"


def buffer_prefix(integration_id: str) -> str:
    return f"{tag(integration_id)}:buf:"


def open_index(integration_id: str) -> str:
    return f"{tag(integration_id)}:open"


def open_bytes(integration_id: str) -> str:
    return f"{tag(integration_id)}:openbytes"


def open_count(integration_id: str) -> str:
    return f"{tag(integration_id)}:opencount"


def open_last(integration_id: str) -> str:
    return f"{tag(integration_id)}:openlast"


def batch(integration_id: str, batch_id: str) -> str:
    return f"{tag(integration_id)}:batch:{batch_id}"


def batch_meta(integration_id: str, batch_id: str) -> str:
    return f"{tag(integration_id)}:meta:{batch_id}"


def pending(integration_id: str) -> str:
    return f"{tag(integration_id)}:pending"


def dead(integration_id: str) -> str:
    return f"{tag(integration_id)}:dead"


def stats(integration_id: str) -> str:
    return f"{tag(integration_id)}:stats"


def status(integration_id: str) -> str:
    return f"{tag(integration_id)}:status"


def seen(integration_id: str, message_id: str) -> str:
    return f"{tag(integration_id)}:seen:{message_id}"


def rejections(integration_id: str) -> str:
    return f"{tag(integration_id)}:rejections"


def live(integration_id: str) -> str:
    return f"{tag(integration_id)}:live"


def partition_values(integration_id: str, hour: str, name: str) -> str:
    return f"{tag(integration_id)}:pvals:{hour}:{name}"


def generation(integration_id: str, hour: str) -> str:
    return f"{tag(integration_id)}:gen:{hour}"


def sealed(integration_id: str, hour: str, generation: int | str) -> str:
    return f"{tag(integration_id)}:sealed:{hour}:{generation}"


def delivered(integration_id: str, batch_id: str) -> str:
    return f"{tag(integration_id)}:delivered:{batch_id}"


def hist_upload(integration_id: str) -> str:
    return f"{tag(integration_id)}:hist:upload_s"


def hist_latency(integration_id: str) -> str:
    return f"{tag(integration_id)}:hist:latency_s"


def bucket_facts(integration_id: str) -> str:
    return f"{tag(integration_id)}:bucket"


def overview(integration_id: str, block: str) -> str:
    """One block of the delivery overview (``workers.store.overview.block_of``); ``block=""`` gives the prefix."""
    return f"{tag(integration_id)}:ov:{block}"


def ledger(integration_id: str, day: str) -> str:
    return f"{tag(integration_id)}:ledger:{day}"


def ledger_head(integration_id: str, day: str) -> str:
    return f"{tag(integration_id)}:ledgerhead:{day}"


def pinned(integration_id: str) -> str:
    return f"{tag(integration_id)}:pinned"


SOURCES = f"{PREFIX}:sources"


def iceberg(integration_id: str) -> str:
    return f"{tag(integration_id)}:iceberg"


def iceberg_maintenance_running(integration_id: str) -> str:
    return f"{tag(integration_id)}:iceberg:running"


def table_lock(table_id: str) -> tuple[str, str]:
    """The lock and the fence counter of one Iceberg table (one hash tag: one script takes both)."""
    base = f"{PREFIX}:{{ice:{table_id}}}"
    return f"{base}:lock", f"{base}:fence"


def source_tag(source_id: str) -> str:
    return f"{PREFIX}:src:{{{source_id}}}"


def source(source_id: str) -> str:
    return f"{source_tag(source_id)}:source"


def source_integrations(source_id: str) -> str:
    return f"{source_tag(source_id)}:integrations"


def source_rate(source_id: str) -> str:
    return f"{source_tag(source_id)}:rate"


def source_stats(source_id: str) -> str:
    return f"{source_tag(source_id)}:stats"


def write_key(digest: str) -> str:
    return f"{PREFIX}:writekey:{digest}"


BEAT_LAST_TICK = f"{PREFIX}:beat:last_tick_ms"


def signin_failures(client: str) -> str:
    return f"{PREFIX}:console:signin:{client}"


def revoked_session(digest: str) -> str:
    return f"{PREFIX}:console:revoked:{digest}"
