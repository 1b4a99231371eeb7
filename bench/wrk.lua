-- wrk script of the HTTP phases (bench/http.py writes the environment):
--   BENCH_PATH   request path (POST)        BENCH_BODY  file with the JSON body; every "@ID@" becomes a unique id
--   BENCH_AUTH   Authorization header value  BENCH_TAG   prefix of the ids (unique per run)
--   BENCH_FIXED  1: one body per thread, sent again and again (the limit is then the server's, not the rewriting of
--                every body on the same CPUs); 0: a unique id in every request (where correctness is checked)
--   BENCH_DELAY_MS  mean pause of each connection between its requests (0: as fast as answers come); each pause is
--                   drawn at random (exponential), so the connections do not fire in step (Poisson arrivals)
-- Prints one JSON line at the end: requests, duration, errors by kind and latency percentiles in microseconds.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + tid)
  local f = assert(io.open(os.getenv("BENCH_BODY"), "rb"))
  template = f:read("*a")
  f:close()
  path = os.getenv("BENCH_PATH")
  prefix = os.getenv("BENCH_TAG") .. "t" .. tid .. "r"
  delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
  headers = {["Content-Type"] = "application/json", ["Authorization"] = os.getenv("BENCH_AUTH")}
  if os.getenv("BENCH_FIXED") == "1" then
    fixed = wrk.format("POST", path, headers, (template:gsub("@ID@", prefix .. "0")))
  end
end

function request()
  if fixed then return fixed end
  counter = counter + 1
  local body = template:gsub("@ID@", prefix .. counter)
  return wrk.format("POST", path, headers, body)
end

if tonumber(os.getenv("BENCH_DELAY_MS") or "0") > 0 then
  function delay()
    return math.floor(-delay_ms * math.log(1 - math.random()))
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, ' ..
    '"timeout": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
