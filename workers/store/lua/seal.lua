#!lua flags=allow-oom
-- Seal one open buffer into a batch (the beat flush). Safe to run twice at once: the second finds it empty; run
-- twice with the same batch id, the second changes nothing.
-- KEYS[1] open index  KEYS[2] openbytes  KEYS[3] pending
-- ARGV: hour, batch_id, now_ms, seal_due_ms, then the prefixes of _lib.lua (buffer, batch, meta, gen, sealed,
--       delivered, trace_ttl_ms, last, count)
-- Returns the number of events sealed (0: nothing was buffered).
-- allow-oom: sealing is how a full Redis drains (seal, upload, ack frees the memory).
return seal(prefixes(5), ARGV[1], ARGV[2], KEYS[1], KEYS[2], KEYS[3], tonumber(ARGV[3]), tonumber(ARGV[4]))
