-- wrk script for bench/serving.py: each request takes a random path from the file $WRK_PATHS (one per line, e.g.
-- the same endpoint for many users); with $WRK_RATE > 0 requests follow a fixed schedule of that many per second
-- per wrk thread (wrk2's -R is not packaged in Debian): each request waits for the next free slot of the schedule,
-- and a late schedule catches up as soon as a connection is free. Ends by printing one JSON line:
-- requests, seconds, errors and latency percentiles in ms (latency counted from the moment the request is sent).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock_id, bench_timespec *tp);
]]
local now_ts = ffi.new("bench_timespec")
local function now_ms()
  ffi.C.clock_gettime(1, now_ts) -- CLOCK_MONOTONIC
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local paths = {}
for line in io.lines(os.getenv("WRK_PATHS")) do
  if #line > 0 then paths[#paths + 1] = line end
end
local rate = tonumber(os.getenv("WRK_RATE") or "0")

function init(args)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end

if rate > 0 then
  local interval, next_slot = 1000 / rate, nil
  function delay()
    local now = now_ms()
    local slot = next_slot or now
    next_slot = slot + interval
    if slot <= now then return 0 end
    return math.floor(slot - now)
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"p50_ms": %.3f, "p90_ms": %.3f, "p99_ms": %.3f, "p999_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000, latency.mean / 1000))
end
