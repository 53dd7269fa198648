-- wrk script for bench/run.sh: every request carries a cookie picked at random
-- from a file of pre-minted cookies, so a large store is touched all over, not
-- through one hot record.  The requests are formatted once, in init(), so the
-- per-request cost in wrk is one random pick, the same for every arm.
--
--   wrk -s bench/wrk.lua URL -- COOKIE_FILE [COOKIE_NAME [IP_FILE]]
--
-- COOKIE_FILE: lines "<id hex> <cookie value>" (bench/mint-cookies.pl).
-- COOKIE_NAME: "omni" by default.  The "new visitor" arm sends the same bytes
-- under another 4-letter name, so the module sees no visitor cookie while the
-- request size and the client's work stay identical.
-- IP_FILE: client addresses, one a line (bench/gen-geo.pl): the n-th cookie
-- always comes with the n-th address (modulo their number) in
-- X-Forwarded-For, which nginx's realip module makes the client address
-- that omni_geoip looks up.  Every request also carries a desktop browser's
-- User-Agent (wrk sends none, which the rules would class as a bot).
--
-- done() prints one machine-readable line, "BENCH key=value ...", latencies
-- in microseconds.

local reqs = {}
local n = 0
local ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 " ..
           "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"

function init(args)
    local file = args[1]
    local name = args[2] or "omni"
    local ips = {}

    if file == nil then
        error("usage: wrk -s wrk.lua URL -- COOKIE_FILE [COOKIE_NAME [IP_FILE]]")
    end

    if args[3] then
        for line in io.lines(args[3]) do
            local ip = line:match("^(%S+)$")
            if ip then
                ips[#ips + 1] = ip
            end
        end
    end

    for line in io.lines(file) do
        local value = line:match("^%x+%s+(%S+)$")
        if value then
            n = n + 1
            local headers = {
                ["Cookie"] = name .. "=" .. value,
                ["User-Agent"] = ua,
            }
            if #ips > 0 then
                headers["X-Forwarded-For"] = ips[(n - 1) % #ips + 1]
            end
            reqs[n] = wrk.format("GET", wrk.path, headers)
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
