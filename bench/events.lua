-- wrk script for bench/run.sh's events arm: every request POSTs one
-- Segment "Product Added" event to an omni_events location, as a browser
-- does: the visitor's signed cookie (picked at random from a file of
-- pre-minted cookies), no key, a unique messageId.  The answer is sent
-- once the event is committed and synced (docs/events.md, "Durability").
--
--   wrk -s bench/events.lua URL -- COOKIE_FILE TAG IDS_OUT
--
-- COOKIE_FILE: lines "<id hex> <cookie value>" (bench/mint-cookies.pl).
-- TAG: the messageId prefix of this run ("<TAG>-<n>"), unique per run.
-- IDS_OUT: done() writes there the messageId of every event answered
-- 200 with "status":"accepted", one a line, for the check that each of
-- them is in the store.
--
-- done() prints "BENCH key=value ..." as bench/wrk.lua does, latencies in
-- microseconds, plus accepted= (200 and accepted), other200= (200 but
-- another status, e.g. duplicate) and non200=.

local cookies = {}
local n = 0
local seq = 0
local tag
local ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 " ..
           "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
local products = {
    { "TRAIL-42", "Trail 42 running shoe", "shoes", "119.0" },
    { "SUMMIT-PRO", "Summit Pro jacket", "premium", "349.0" },
    { "JKT-7", "Ridge 7 jacket", "jackets", "189.0" },
    { "SOCK-3", "Merino socks (3 pairs)", "socks", "19.9" },
    { "TENT-2", "Trail Tent 2P", "tents", "199.0" },
    { "BAG-30", "Daypack 30 l", "bags", "79.5" },
    { "CAP-1", "Running cap", "accessories", "24.0" },
    { "BOT-9", "Water bottle 0.9 l", "accessories", "14.5" },
}

-- per thread (globals, for thread:get() in done()): what the answers said
ids_out = nil
answered = {}
accepted = 0
other200 = 0
non200 = 0

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    local file = args[1]
    tag = args[2]
    ids_out = args[3]

    if file == nil or tag == nil then
        error("usage: wrk -s events.lua URL -- COOKIE_FILE TAG IDS_OUT")
    end

    for line in io.lines(file) do
        local value = line:match("^%x+%s+(%S+)$")
        if value then
            n = n + 1
            cookies[n] = "omni=" .. value
        end
    end

    if n == 0 then
        error("no cookies in " .. file)
    end

    math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
    local p = products[math.random(#products)]
    seq = seq + 1
    local body = string.format(
        '{"type":"track","event":"Product Added","messageId":"%s-%d",' ..
        '"properties":{"sku":"%s","name":"%s","category":"%s",' ..
        '"price":%s,"quantity":1,"url":"/product/%s.html"}}',
        tag, seq, p[1], p[2], p[3], p[4], p[1]:lower())
    return wrk.format("POST", wrk.path, {
        ["Cookie"] = cookies[math.random(n)],
        ["User-Agent"] = ua,
        ["Content-Type"] = "application/json",
    }, body)
end

function response(status, headers, body)
    if status == 200 then
        local st = body:match('"status":"(%a+)"')
        if st == "accepted" then
            accepted = accepted + 1
            answered[accepted] = body:match('"messageId":"([^"]+)"') or "?"
        else
            other200 = other200 + 1
        end
    else
        non200 = non200 + 1
    end
end

function done(summary, latency, requests)
    local e = summary.errors
    local acc, o200, n200 = 0, 0, 0
    local f

    for _, t in ipairs(threads) do
        f = f or io.open(t:get("ids_out") or "/dev/null", "w")
        acc = acc + (t:get("accepted") or 0)
        o200 = o200 + (t:get("other200") or 0)
        n200 = n200 + (t:get("non200") or 0)
        local ids = t:get("answered") or {}
        for i = 1, #ids do
            f:write(ids[i], "\n")
        end
    end
    if f then
        f:close()
    end

    io.write(string.format(
        "BENCH requests=%d duration_us=%d bytes=%d " ..
        "err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d " ..
        "lat_p50=%d lat_p90=%d lat_p99=%d lat_max=%d lat_mean=%.1f " ..
        "accepted=%d other200=%d non200=%d\n",
        summary.requests, summary.duration, summary.bytes,
        e.connect, e.read, e.write, e.status, e.timeout,
        latency:percentile(50), latency:percentile(90),
        latency:percentile(99), latency.max, latency.mean,
        acc, o200, n200))
end
