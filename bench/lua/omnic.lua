-- Arm C of bench/run.sh: what a competent OpenResty team would build
-- instead of ngx_omni_module, on Debian's libnginx-mod-http-lua and
-- lua-resty-core, doing the same work as arm B for every request:
--
--   access_by_lua   the signed cookie (docs/identity.md) checked with
--                   HMAC-SHA256 through FFI to libcrypto (CRYPTO_memcmp);
--                   the profile read from an LMDB store of the module's
--                   format through FFI to liblmdb, the way Kong's
--                   lua-resty-lmdb does (one environment per worker,
--                   opened in init_worker after mdb_reader_check, one
--                   read transaction per worker, renewed and reset
--                   around each request); geo through FFI to
--                   libmaxminddb, cached per address (lua-resty-lrucache);
--                   the rules (omnic_rules.lua) decided and rendered;
--   header_filter   Cache-Control: private, the rules' headers, no
--                   Content-Length (the body changes);
--   body_filter     banners at the slot markers, pixels before </body>,
--                   markers split across chunks held back and completed;
--   log_by_lua      the touch queued in a per-worker buffer, and a timer
--                   (ngx.timer.every) writes it: one LMDB write
--                   transaction per batch, a touchpoint per request in the
--                   feed and the profile's visit counters and impressions
--                   (its record spliced, omnic_record.lua).  One writer per
--                   worker: LMDB serialises them; the bench runs 1 worker.
--
-- Configured from nginx.conf (bench/run.sh writes it):
--   init_by_lua_block { require("omnic").init{ store = DIR, map_size = N,
--       secret = S, geoip = FILE, rules = FILE, flush = SECONDS } }
--   init_worker_by_lua_block { require("omnic").init_worker() }
local ffi = require "ffi"
local bit = require "bit"
local C = require "omnic_ffi"
local rec = require "omnic_record"
local rules = require "omnic_rules"
local lrucache = require "resty.lrucache"
local b64 = require "ngx.base64"

local ngx = ngx
local ngx_var, ngx_header, ngx_arg = ngx.var, ngx.header, ngx.arg
local ngx_now, ngx_log, ERR, INFO = ngx.now, ngx.log, ngx.ERR, ngx.INFO
local find, sub, byte, format, lower = string.find, string.sub, string.byte,
                                         string.format, string.lower
local concat = table.concat
local floor = math.floor
local crypto, lmdb, mmdb = C.crypto, C.lmdb, C.mmdb

local M = {}
local conf
local set                   -- the compiled rules

-- ------------------------------------------------------------ init

local function need(v, what)
    if v == nil or v == "" then error("omnic: init: \"" .. what .. "\" is required", 2) end
    return v
end

-- In init_by_lua (the master): validate and compile, open nothing that
-- a fork would share (LMDB environments must not cross fork()).
function M.init(c)
    conf = c
    need(c.store, "store"); need(c.secret, "secret"); need(c.rules, "rules")
    need(c.geoip, "geoip")
    if #c.secret < 32 then error("omnic: init: the secret is shorter than 32 bytes") end
    conf.map_size = tonumber(c.map_size) or error("omnic: init: map_size must be a number")
    conf.flush = tonumber(c.flush or 0.1)
    local f, err = loadfile(c.rules)
    if not f then error("omnic: init: cannot load the rules " .. c.rules .. ": " .. err) end
    set = rules.compile(f())
    local fh = io.open(c.store .. "/data.mdb", "rb")
    if not fh then error("omnic: init: no LMDB store in " .. c.store) end
    fh:close()
end

-- Per worker: the environment, the reused read transaction, the DBIs,
-- the MaxMind DB, the caches.
local env, rtxn, dbi_profiles, dbi_aliases, dbi_touchpoints, dbi_meta
local key, val = ffi.new("MDB_val[1]"), ffi.new("MDB_val[1]")
local mm = ffi.new("uint8_t[?]", C.MMDB_S_SIZE)
local mmp = ffi.cast("MMDB_s *", mm)
M._mm = mm      -- keeps the MMDB_s buffer alive (mmp is a bare pointer)
local geo_cache, ua_cache
local mac_in = ffi.new("uint8_t[34]")
local mac_out = ffi.new("uint8_t[32]")
local mac_len = ffi.new("unsigned int[1]")
local sha256

local function lmdb_err(what, rc)
    return format("omnic: %s: %s", what, ffi.string(lmdb.mdb_strerror(rc)))
end

local writer_tick

function M.init_worker()
    local pe = ffi.new("MDB_env *[1]")
    local rc = lmdb.mdb_env_create(pe)
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_env_create", rc)); return end
    env = pe[0]
    lmdb.mdb_env_set_maxdbs(env, 16)
    lmdb.mdb_env_set_maxreaders(env, 126)
    lmdb.mdb_env_set_mapsize(env, conf.map_size)
    rc = lmdb.mdb_env_open(env, conf.store, bit.bor(C.MDB_NOTLS, C.MDB_NOMETASYNC), tonumber("660", 8))
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_env_open " .. conf.store, rc)); return end
    local dead = ffi.new("int[1]")
    lmdb.mdb_reader_check(env, dead)

    local pt = ffi.new("MDB_txn *[1]")
    rc = lmdb.mdb_txn_begin(env, nil, 0, pt)
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_txn_begin", rc)); return end
    local d = ffi.new("MDB_dbi[1]")
    local function open(name)
        local r = lmdb.mdb_dbi_open(pt[0], name, 0, d)
        if r ~= 0 then error(lmdb_err("mdb_dbi_open " .. name, r)) end
        return d[0]
    end
    local ok, err = pcall(function()
        dbi_profiles, dbi_aliases = open("profiles"), open("aliases")
        dbi_touchpoints, dbi_meta = open("touchpoints"), open("meta")
    end)
    if not ok then lmdb.mdb_txn_abort(pt[0]); ngx_log(ERR, err); env = nil; return end
    rc = lmdb.mdb_txn_commit(pt[0])
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_txn_commit", rc)); return end

    rc = lmdb.mdb_txn_begin(env, nil, C.MDB_RDONLY, pt)
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_txn_begin (read)", rc)); return end
    rtxn = pt[0]
    lmdb.mdb_txn_reset(rtxn)

    rc = mmdb.MMDB_open(conf.geoip, C.MMDB_MODE_MMAP, mmp)
    if rc ~= 0 then
        ngx_log(ERR, "omnic: MMDB_open ", conf.geoip, ": ", ffi.string(mmdb.MMDB_strerror(rc)))
        return
    end
    geo_cache = lrucache.new(16384)
    ua_cache = lrucache.new(256)
    sha256 = crypto.EVP_sha256()
    ffi.copy(mac_in, "omni/v1/", 8)

    local ok2, terr = ngx.timer.every(conf.flush, writer_tick)
    if not ok2 then ngx_log(ERR, "omnic: timer: ", terr) end
end

-- ------------------------------------------------------------ identity

local secret_len
-- The visitor id (16 bytes) of a valid cookie, or nil.
local function verify_cookie(v)
    if not v or #v ~= 56 then return nil end
    local raw = b64.decode_base64url(v)
    if not raw or #raw ~= 42 or byte(raw, 1) ~= 1 or byte(raw, 2) ~= 99 then
        return nil
    end
    ffi.copy(mac_in + 8, raw, 26)
    secret_len = secret_len or #conf.secret
    crypto.HMAC(sha256, conf.secret, secret_len, mac_in, 34, mac_out, mac_len)
    if crypto.CRYPTO_memcmp(mac_out, ffi.cast("const uint8_t *", raw) + 26, 16) ~= 0 then
        return nil
    end
    return sub(raw, 3, 18)
end

local HEX = {}
for i = 0, 255 do HEX[i] = format("%02x", i) end
local function hex16(s)
    local t = {}
    for i = 1, 16 do t[i] = HEX[byte(s, i)] end
    return concat(t)
end

-- A new visitor: a random id and its signed cookie.
local function mint_cookie()
    local b = ffi.new("uint8_t[42]")
    b[0], b[1] = 1, 99
    crypto.RAND_bytes(b + 2, 16)
    local now = floor(ngx_now())
    for i = 0, 3 do b[18 + i] = bit.band(bit.rshift(now, 24 - 8 * i), 255) end
    ffi.copy(mac_in + 8, b, 26)
    crypto.HMAC(sha256, conf.secret, #conf.secret, mac_in, 34, mac_out, mac_len)
    ffi.copy(b + 26, mac_out, 16)
    local raw = ffi.string(b, 42)
    return sub(raw, 3, 18), b64.encode_base64url(raw)
end

-- ------------------------------------------------------------ geo, UA

local gai, merr = ffi.new("int[1]"), ffi.new("int[1]")
local ed = ffi.new("MMDB_entry_data_s[1]")
-- A NULL-terminated lookup path; the strings stay referenced (a cdata
-- array of char pointers does not keep Lua strings alive).
local path_refs = {}
M._path_refs = path_refs
local function path(...)
    local n = select("#", ...)
    local p = ffi.new("const char *[?]", n + 1, ...)
    path_refs[#path_refs + 1] = { p, ... }
    return p
end
local P_COUNTRY = path("country", "iso_code")
local P_REGION = path("subdivisions", "0", "iso_code")
local P_CITY = path("city", "names", "en")
local P_LAT = path("location", "latitude")
local P_LON = path("location", "longitude")
local ent = ffi.new("MMDB_entry_s[1]")

local function mm_str(p)
    if mmdb.MMDB_aget_value(ent, ed, p) == 0 and ed[0].has_data
       and ed[0].type == C.MMDB_UTF8 then
        return ffi.string(ed[0].utf8_string, ed[0].data_size)
    end
end
local function mm_num(p)
    if mmdb.MMDB_aget_value(ent, ed, p) == 0 and ed[0].has_data
       and ed[0].type == C.MMDB_DOUBLE then
        return tonumber(ed[0].double_value)
    end
end

local geo_lookup
function M._geo(a) return geo_lookup(a) end
geo_lookup = function(addr)
    local g = geo_cache:get(addr)
    if g ~= nil then return g or nil end
    local r = mmdb.MMDB_lookup_string(mmp, addr, gai, merr)
    if gai[0] ~= 0 or merr[0] ~= 0 or not r.found_entry then
        geo_cache:set(addr, false)
        return nil
    end
    ent[0] = r.entry
    g = { country = mm_str(P_COUNTRY), region = mm_str(P_REGION),
          city = mm_str(P_CITY), lat = mm_num(P_LAT), lon = mm_num(P_LON) }
    if g.lat and g.lon then
        g.rlat, g.rlon = math.rad(g.lat), math.rad(g.lon)
        g.coslat = math.cos(g.rlat)
    end
    geo_cache:set(addr, g)
    return g
end

local BOT = { "bot", "crawl", "spider", "slurp", "facebookexternalhit",
    "mediapartners", "headless", "lighthouse", "pingdom", "preview", "curl/",
    "wget/", "python-", "python/", "go-http-client", "java/", "httpclient",
    "libwww", "scrapy", "phantomjs", "feedfetcher", "ia_archiver",
    "node-fetch", "axios/", "monitor", "uptime" }
local TABLET = { "ipad", "tablet", "kindle", "silk/", "playbook", "nexus 7",
    "nexus 9", "nexus 10", "sm-t" }
local MOBILE = { "mobi", "iphone", "ipod", "android", "windows phone",
    "blackberry", "bb10", "opera mini", "webos" }
local function any_of(s, l)
    for i = 1, #l do if find(s, l[i], 1, true) then return true end end
    return false
end
-- docs/rules.md "Device classes", cached per User-Agent.
local function device_class(ua)
    ua = ua or ""
    local c = ua_cache:get(ua)
    if c then return c end
    local s = lower(sub(ua, 1, 512))
    if s == "" or any_of(s, BOT) then c = "bot"
    elseif any_of(s, TABLET) or (find(s, "android", 1, true) and not find(s, "mobi", 1, true)) then
        c = "tablet"
    elseif any_of(s, MOBILE) then c = "mobile"
    else c = "desktop" end
    ua_cache:set(ua, c)
    return c
end

-- ------------------------------------------------------------ the request

-- The evaluation context handed to the rules.
local Ctx = {}
Ctx.__index = Ctx
function Ctx:pid_hex()
    local h = self._hex
    if not h then h = hex16(self.pid); self._hex = h end
    return h
end
function Ctx:geo()
    if self._geo == nil then self._geo = geo_lookup(ngx_var.remote_addr) or false end
    return self._geo or nil
end
function Ctx:device() return device_class(ngx_var.http_user_agent) end
function Ctx:arg(name) return ngx_var["arg_" .. name] end
function Ctx:referrer() return ngx_var.http_referer end
function Ctx:bucket(id)
    local b = self._b
    if not b then b = {}; self._b = b end
    local v = b[id]
    if not v then v = rules.bucket(self.pid, id); b[id] = v end
    return v
end

-- Impressions decided but not committed yet (this worker's buffer), per
-- profile and campaign: caps and cooldowns count them.
local pending = {}
local NONE = {}
function Ctx:pending(campaign)
    local p = pending[self.pid]
    return p and p[campaign] or NONE
end

local queue, nqueue = {}, 0
local QUEUE_MAX = 100000

function M.access()
    if not env then return end
    local now = ngx_now()
    local vid = verify_cookie(ngx_var.cookie_omni)
    local ctx = setmetatable({ now = floor(now), channel = "web",
                               path = ngx_var.uri }, Ctx)
    if not vid then
        local cookie
        vid, cookie = mint_cookie()
        ngx_header["Set-Cookie"] = "omni=" .. cookie
            .. "; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax"
        ctx.new = true
    end
    ctx.vid = vid
    ngx.ctx.omnic = ctx
    if device_class(ngx_var.http_user_agent) == "bot" then return end
    ctx.no_ads = ngx_var.http_sec_gpc == "1" or ngx_var.http_dnt == "1"

    -- The profile: alias "c" + hex id, else the visitor is its own.
    local rc = lmdb.mdb_txn_renew(rtxn)
    if rc ~= 0 then ngx_log(ERR, lmdb_err("mdb_txn_renew", rc)); return end
    local pid = vid
    ctx.pid = vid
    if not ctx.new then
        local k = "c" .. ctx:pid_hex()
        key[0].mv_size, key[0].mv_data = #k, ffi.cast("void *", k)
        rc = lmdb.mdb_get(rtxn, dbi_aliases, key, val)
        if rc == 0 and val[0].mv_size == 16 then
            pid = ffi.string(val[0].mv_data, 16)
            ctx._hex = nil
        end
        key[0].mv_size, key[0].mv_data = 16, ffi.cast("void *", pid)
        rc = lmdb.mdb_get(rtxn, dbi_profiles, key, val)
        if rc == 0 then
            local v, err = rec.view(val[0].mv_data, val[0].mv_size)
            if v then ctx.prof = v else ngx_log(ERR, "omnic: profile: ", err) end
        elseif rc ~= C.MDB_NOTFOUND then
            ngx_log(ERR, lmdb_err("mdb_get", rc))
        end
    end
    ctx.pid = pid

    -- Decide and render while the record is mapped; then reset.
    local ok, d = pcall(rules.decide, set, ctx)
    lmdb.mdb_txn_reset(rtxn)
    ctx.prof = nil
    if not ok then ngx_log(ERR, "omnic: decide: ", d); return end
    ctx.d = d
    if d then
        -- Count the impressions at once, for the next request's caps.
        local p = pending[pid]
        if not p then p = {}; pending[pid] = p end
        for _, c in ipairs(d.campaigns) do
            local l = p[c]
            if not l then l = {}; p[c] = l end
            l[#l + 1] = ctx.now
        end
    end
end

function M.header_filter()
    local ctx = ngx.ctx.omnic
    if not ctx then return end
    local d = ctx.d
    if not d or ngx.status ~= 200 then ctx.inject = false; return end
    local ct = ngx_header["Content-Type"]
    if not ct or not find(ct, "text/html", 1, true) then ctx.inject = false; return end
    ctx.inject = true
    ngx_header["Content-Length"] = nil
    ngx_header["ETag"] = nil
    ngx_header["Last-Modified"] = nil
    ngx_header["Cache-Control"] = "private, no-cache"
    for _, h in ipairs(d.headers) do ngx_header[h[1]] = h[2] end
end

-- The markers, and how long a held-back tail may be: a chunk ending in
-- a prefix of one of them keeps that prefix for the next chunk.
local SLOT, BODY = "<!--omni:slot ", "</body"
local MAX_MARK = 64

local function prefix_of_marker(s)
    local n = #s
    return sub(SLOT, 1, n) == s or sub(BODY, 1, n) == s
        or (n > #SLOT and n <= MAX_MARK and sub(s, 1, #SLOT) == SLOT
            and not find(s, ">", 1, true))
end

function M.body_filter()
    local ctx = ngx.ctx.omnic
    if not ctx or not ctx.inject then return end
    local d = ctx.d
    local chunk, eof = ngx_arg[1], ngx_arg[2]
    local data = chunk
    if ctx.hold then data = ctx.hold .. chunk; ctx.hold = nil end
    local out, n, pos, len = {}, 0, 1, #data
    while pos <= len do
        local a = find(data, "<", pos, true)
        if not a then break end
        if sub(data, a, a + 13) == SLOT then
            local e = find(data, "-->", a + 14, true)
            if not e then
                if not eof and len - a < MAX_MARK then
                    n = n + 1; out[n] = sub(data, pos, a - 1)
                    ctx.hold = sub(data, a); pos = len + 1
                    break
                end
                pos = a + 1
            else
                n = n + 1; out[n] = sub(data, pos, a - 1)
                local html = d.slots[sub(data, a + 14, e - 1)]
                n = n + 1; out[n] = html or sub(data, a, e + 2)
                pos = e + 3
            end
        elseif not ctx.body_done and sub(data, a, a + 5) == BODY then
            n = n + 1; out[n] = sub(data, pos, a - 1)
            n = n + 1; out[n] = d.pixels
            ctx.body_done = true
            pos = a
            n = n + 1; out[n] = BODY
            pos = a + 6
        elseif not eof and len - a < MAX_MARK and prefix_of_marker(sub(data, a)) then
            n = n + 1; out[n] = sub(data, pos, a - 1)
            ctx.hold = sub(data, a); pos = len + 1
            break
        else
            -- Not a marker: copy through this '<' and go on.
            n = n + 1; out[n] = sub(data, pos, a)
            pos = a + 1
        end
    end
    if pos <= len then n = n + 1; out[n] = sub(data, pos) end
    ngx_arg[1] = concat(out, "", 1, n)
end

-- ------------------------------------------------------------ the writer

local function iso(t)
    return os.date("!%Y-%m-%dT%H:%M:%SZ", t)
end

local function json_str(s)
    return '"' .. s:gsub('[%c"\\]', function(c)
        return c == '"' and '\\"' or c == "\\" and "\\\\" or format("\\u%04x", byte(c))
    end) .. '"'
end

local function json_list(l)
    local t = {}
    for i, s in ipairs(l) do t[i] = json_str(s) end
    return "[" .. concat(t, ",") .. "]"
end

function M.log()
    local ctx = ngx.ctx.omnic
    if not ctx or not ctx.pid then return end
    if nqueue >= QUEUE_MAX then
        M.dropped = (M.dropped or 0) + 1
        return
    end
    local d = ctx.d
    local g = d and ctx._geo
    nqueue = nqueue + 1
    queue[nqueue] = { ctx.pid, ctx.vid, ctx.now, ctx.path,
                      d and d.rules, d and d.campaigns, g and g.country }
end

M.committed, M.dropped, M.failed, M.batches, M.batch_ms = 0, 0, 0, 0, 0

local function be32(n)
    return string.char(bit.band(bit.rshift(n, 24), 255), bit.band(bit.rshift(n, 16), 255),
                       bit.band(bit.rshift(n, 8), 255), bit.band(n, 255))
end
local function be64(n)
    return be32(floor(n / 4294967296)) .. be32(n % 4294967296)
end
local function rd_be64(p)
    local hi, lo = 0, 0
    for i = 0, 3 do hi = hi * 256 + p[i] end
    for i = 4, 7 do lo = lo * 256 + p[i] end
    return hi * 4294967296 + lo
end

local wkey, wval = ffi.new("MDB_val[1]"), ffi.new("MDB_val[1]")
local function put(txn, dbi, k, v)
    wkey[0].mv_size, wkey[0].mv_data = #k, ffi.cast("void *", k)
    wval[0].mv_size, wval[0].mv_data = #v, ffi.cast("void *", v)
    local rc = lmdb.mdb_put(txn, dbi, wkey, wval, 0)
    if rc ~= 0 then error(lmdb_err("mdb_put", rc)) end
end
local function get(txn, dbi, k)
    wkey[0].mv_size, wkey[0].mv_data = #k, ffi.cast("void *", k)
    local rc = lmdb.mdb_get(txn, dbi, wkey, wval)
    if rc == C.MDB_NOTFOUND then return nil end
    if rc ~= 0 then error(lmdb_err("mdb_get", rc)) end
    return wval[0].mv_data, wval[0].mv_size
end

-- One batch: every queued touch as a touchpoint of the feed (key: the
-- u64 BE sequence number; value: profile id, u32 BE time, the JSON line),
-- then each profile touched rewritten once with its visits and
-- impressions.  One transaction, committed with the data pages synced
-- (MDB_NOMETASYNC), as the module's writer does.
local function flush(batch, n)
    local pt = ffi.new("MDB_txn *[1]")
    local rc = lmdb.mdb_txn_begin(env, nil, 0, pt)
    if rc ~= 0 then error(lmdb_err("mdb_txn_begin (write)", rc)) end
    local txn = pt[0]
    local ok, err = pcall(function()
        local p = get(txn, dbi_meta, "tp_next")
        local seq = p and rd_be64(ffi.cast("const uint8_t *", p)) or 1
        local per = {}
        for i = 1, n do
            local t = batch[i]
            local pid, vid, now, path, rl, cl, cc = t[1], t[2], t[3], t[4], t[5], t[6], t[7]
            local ctxs = {}
            if cl then ctxs[#ctxs + 1] = '"campaigns":' .. json_list(cl) end
            if rl then ctxs[#ctxs + 1] = '"rules":' .. json_list(rl) end
            if cc then ctxs[#ctxs + 1] = '"country":' .. json_str(cc) end
            local line = '{"type":"page","event":"Page Viewed","timestamp":"'
                .. iso(now) .. '","anonymousId":"' .. hex16(vid)
                .. '","profileId":"' .. hex16(pid) .. '","channel":"web",'
                .. '"properties":{"path":' .. json_str(path) .. '}'
                .. (#ctxs > 0 and ',"context":{' .. concat(ctxs, ",") .. '}' or '')
                .. '}'
            put(txn, dbi_touchpoints, be64(seq), pid .. be32(now) .. line)
            seq = seq + 1
            local l = per[pid]
            if not l then l = {}; per[pid] = l end
            l[#l + 1] = { now, cl or NONE }
        end
        put(txn, dbi_meta, "tp_next", be64(seq))
        for pid, touches in pairs(per) do
            local rp, rn = get(txn, dbi_profiles, pid)
            if rp then
                local new, e = rec.touch(ffi.string(rp, rn), touches)
                if new then put(txn, dbi_profiles, pid, new)
                else ngx_log(ERR, "omnic: writer: ", e) end
            end
        end
    end)
    if not ok then
        lmdb.mdb_txn_abort(txn)
        error(err)
    end
    rc = lmdb.mdb_txn_commit(txn)
    if rc ~= 0 then error(lmdb_err("mdb_txn_commit", rc)) end
end

writer_tick = function(premature)
    if nqueue == 0 then
        if premature then
            ngx_log(ngx.NOTICE, format("omnic: exit: %d touches committed, %d dropped, %d failed, %d batches in %.0f ms",
                                       M.committed, M.dropped, M.failed, M.batches, M.batch_ms))
        end
        return
    end
    local batch, n = queue, nqueue
    queue, nqueue = {}, 0
    ngx.update_time()
    local t0 = ngx_now()
    local ok, err = pcall(flush, batch, n)
    ngx.update_time()
    M.batches = M.batches + 1
    M.batch_ms = M.batch_ms + (ngx_now() - t0) * 1000
    if ok then
        M.committed = M.committed + n
        pending = {}     -- the store has them now
    else
        M.failed = M.failed + n
        ngx_log(ERR, "omnic: writer: ", err)
    end
    if premature then
        ngx_log(ngx.NOTICE, format("omnic: exit: %d touches committed, %d dropped, %d failed, %d batches in %.0f ms",
                                   M.committed, M.dropped, M.failed, M.batches, M.batch_ms))
    end
end

return M
