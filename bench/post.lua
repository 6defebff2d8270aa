-- wrk script: POST bodies read from a file (one JSON document per line), cycled per connection
-- thread, then a JSON summary line that bench/loadgen.py parses.
-- usage: wrk -s post.lua URL -- BODIES_FILE
local bodies = {}
local n, i = 0, 0

function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then
      n = n + 1
      bodies[n] = wrk.format("POST", nil, {["Content-Type"] = "application/json"}, line)
    end
  end
  i = math.random(n) - 1
end

function request()
  i = (i % n) + 1
  return bodies[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, "mean_us": %.1f, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.mean, latency.max))
end
