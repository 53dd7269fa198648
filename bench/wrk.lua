-- wrk script for bench/run.sh: every request carries a cookie picked at random
-- from a file of pre-minted cookies, so a large store is touched all over, not
-- through one hot record.  The requests are formatted once, in init(), so the
-- per-request cost in wrk is one random pick, the same for every arm.
--
--   wrk -s bench/wrk.lua URL -- COOKIE_FILE [COOKIE_NAME]
--
-- COOKIE_FILE: lines "<id hex> <cookie value>" (bench/mint-cookies.pl).
-- COOKIE_NAME: "omni" by default.  The "new visitor" arm sends the same bytes
-- under another 4-letter name, so the module sees no visitor cookie while the
-- request size and the client's work stay identical.
--
-- done() prints one machine-readable line, "BENCH key=value ...", latencies
-- in microseconds.

local reqs = {}
local n = 0

function init(args)
    local file = args[1]
    local name = args[2] or "omni"

    if file == nil then
        error("usage: wrk -s wrk.lua URL -- COOKIE_FILE [COOKIE_NAME]")
    end

    for line in io.lines(file) do
        local value = line:match("^%x+%s+(%S+)$")
        if value then
            n = n + 1
            reqs[n] = wrk.format("GET", wrk.path,
                                 { ["Cookie"] = name .. "=" .. value })
        end
    end

    if n == 0 then
        error("no cookies in " .. file)
    end

    math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
    return reqs[math.random(n)]
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d " ..
        "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
        "lat_p50=%d lat_p90=%d lat_p99=%d lat_max=%d lat_mean=%.1f\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean))
end
