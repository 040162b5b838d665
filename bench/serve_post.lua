-- serve_post.lua: wrk script for bench/serve_load.sh: POST the image in
-- $SKELEX_BENCH_IMAGE as the request body of every request.
local path = os.getenv("SKELEX_BENCH_IMAGE")
local f = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/octet-stream"


done = function(summary, latency, requests)
  io.write(string.format("requests=%d duration_s=%.1f rps=%.1f\n", summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6)))
  io.write(string.format("latency_ms p50=%.1f p90=%.1f p99=%.1f max=%.1f\n", latency:percentile(50) / 1e3,
    latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
  io.write(string.format("errors connect=%d read=%d write=%d timeout=%d status(non-2xx/3xx)=%d\n",
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout, summary.errors.status))
end
