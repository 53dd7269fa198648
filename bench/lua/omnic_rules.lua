-- Arm C (bench/run.sh): the rule engine of the OpenResty peer.  The rules
-- come as plain Lua tables (bench/gen-lua-rules.pl, from the same JSON
-- files arm B loads, in the module's rank order); compile() turns every
-- condition into a closure once, at init_by_lua, and decide() walks the
-- rules per request: a slot goes to its first matching, eligible rule,
-- pixel-only and header-only rules all apply, banners and pixel URLs are
-- rendered as the rule wins (its matched view, purchase or store bound).
-- The semantics are docs/rules.md's, for the conditions the bench uses.
local ffi = require "ffi"
local bit = require "bit"

local floor, min = math.floor, math.min
local find, sub, lower, format, byte = string.find, string.sub, string.lower,
                                         string.format, string.byte
local gsub = string.gsub
local concat = table.concat
local bxor, bor, lshift, rshift = bit.bxor, bit.bor, bit.lshift, bit.rshift
local sin, cos, asin, sqrt, rad = math.sin, math.cos, math.asin, math.sqrt,
                                  math.rad
local re_find = ngx and ngx.re and ngx.re.find

local M = {}
local DAY = 86400

-- ------------------------------------------------------------ SipHash

-- SipHash-2-4 (docs/rules.md "Experiments and holdouts") on uint64_t
-- cdata, key "omni-experiments": bucket = hash(pid16 .. id) % 10000.
local u64 = ffi.typeof("uint64_t")
local K0 = ffi.cast("const uint64_t *", "omni-experiments")[0]
local K1 = ffi.cast("const uint64_t *", "omni-experiments")[1]
local MSG = ffi.new("uint8_t[?]", 160)
local MSG64 = ffi.cast("const uint64_t *", MSG)
local function rotl(x, b) return bor(lshift(x, b), rshift(x, 64 - b)) end

local v0, v1, v2, v3
local function sipround()
    v0 = v0 + v1; v1 = rotl(v1, 13); v1 = bxor(v1, v0); v0 = rotl(v0, 32)
    v2 = v2 + v3; v3 = rotl(v3, 16); v3 = bxor(v3, v2)
    v0 = v0 + v3; v3 = rotl(v3, 21); v3 = bxor(v3, v0)
    v2 = v2 + v1; v1 = rotl(v1, 17); v1 = bxor(v1, v2); v2 = rotl(v2, 32)
end

local function siphash(s)
    local len = #s
    if len > 150 then error("omnic: experiment id too long") end
    ffi.fill(MSG, 160)
    ffi.copy(MSG, s, len)
    local nw = floor(len / 8)
    MSG[nw * 8 + 7] = len % 256
    v0 = bxor(K0, 0x736f6d6570736575ULL)
    v1 = bxor(K1, 0x646f72616e646f6dULL)
    v2 = bxor(K0, 0x6c7967656e657261ULL)
    v3 = bxor(K1, 0x7465646279746573ULL)
    for i = 0, nw do
        local m = MSG64[i]
        v3 = bxor(v3, m); sipround(); sipround(); v0 = bxor(v0, m)
    end
    v2 = bxor(v2, 0xffULL)
    sipround(); sipround(); sipround(); sipround()
    return bxor(bxor(v0, v1), bxor(v2, v3))
end

function M.bucket(pid16, id)
    return tonumber(siphash(pid16 .. id) % 10000ULL)
end

function M.selftest()
    local function unhex(h) return (h:gsub("..", function(x) return string.char(tonumber(x, 16)) end)) end
    assert(M.bucket(unhex("00112233445566778899aabbccddeeff"), "hero-test") == 2014,
           "omnic: SipHash bucket test vector 1")
    assert(M.bucket(unhex("abababababababababababababababab"), "exp-1") == 8939,
           "omnic: SipHash bucket test vector 2")
end

-- ------------------------------------------------------------ escaping

local HTML_ESC = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
                   ['"'] = "&quot;", ["'"] = "&#39;", ["`"] = "&#96;",
                   ["\0"] = "" }
local function esc_html(s)
    if not find(s, "[&<>\"'`%z]") then return s end
    return (gsub(s, "[&<>\"'`%z]", HTML_ESC))
end
local function pct(c) return format("%%%02X", byte(c)) end
local function esc_url_part(s)
    if not find(s, "[^%w%-%._~]") then return s end
    return (gsub(s, "[^%w%-%._~]", pct))
end
local function esc_url_full(s)
    return (gsub(s, "[%z\1- \127-\255\"'<>\\%^`{|}&]", function(c)
        return c == "&" and "&amp;" or pct(c)
    end))
end
local function esc_text(s) return (gsub(s, "[%z\1-\31\127]", "")) end
local ESC = { html = esc_html, url_part = esc_url_part,
              url_full = esc_url_full, text = esc_text }

-- Only http(s) URLs and paths (not "//", not "/\") get out.
local function url_allowed(v)
    local s = lower(gsub(v, "[\t\n\r]", ""):gsub("^[%z\1- ]+", ""):sub(1, 8))
    if sub(s, 1, 1) == "/" then
        local c = sub(s, 2, 2)
        return c ~= "/" and c ~= "\\"
    end
    return sub(s, 1, 7) == "http://" or sub(s, 1, 8) == "https://"
end

-- ------------------------------------------------------------ variables

local function money(x) return format("%.2f", x) end
local function num(x)
    if x == floor(x) and x > -1e15 and x < 1e15 then return format("%d", x) end
    return format("%.17g", x)
end

local function item_field(it, f, catalog)
    if not it then return nil end
    if f == "price" then return money(it.price) end
    if f == "qty" then return it.qty and format("%d", it.qty) end
    if f == "name" or f == "url" or f == "image" then
        if it[f] and it[f] ~= "" then return it[f] end
        local c = catalog[it.sku]
        return c and c[f]
    end
    return it[f]
end

local function cart_totals(c)
    local items, value = 0, 0
    for _, l in ipairs(c.lines) do items = items + l.qty; value = value + l.price * l.qty end
    return items, value
end

-- The value of a template variable for this rule's evaluation R.
local function value(name, R, ctx, set)
    local P = ctx.prof
    local kind, rest = name:match("^(%a+)%.(.+)$")
    if name == "channel" then return ctx.channel end
    if kind == "attr" then
        local v = P and P:attrs()[rest]
        if type(v) == "number" then return num(v) end
        return v
    elseif kind == "profile" then
        if rest == "id" then return ctx:pid_hex() end
        if not P then return nil end
        if rest == "visits" then return format("%d", P.visits) end
        if rest == "orders" then return format("%d", P.orders) end
        if rest == "revenue" then return money(P.revenue) end
        if rest == "stage" then return P:stage() end
    elseif kind == "cart" then
        if not P then return nil end
        local c = P:cart()
        if rest == "count" then return format("%d", #c.lines) end
        local items, v = cart_totals(c)
        if rest == "items" then return format("%d", items) end
        if rest == "value" then return money(v) end
        local which, f = rest:match("^(%a+_item)%.(%a+)$")
        local it
        if which == "top_item" then
            local best
            for _, l in ipairs(c.lines) do
                if not best or l.price * l.qty > best.price * best.qty then best = l end
            end
            it = best
        elseif which == "last_item" then
            it = c.lines[#c.lines]
        end
        return item_field(it, f, set.catalog)
    elseif kind == "viewed" or kind == "purchased" then
        if not P then return nil end
        local it = R[kind]
        if not it then
            local l = kind == "viewed" and P:views() or P:purchases()
            it = l[#l]
            if kind == "purchased" then
                for _, x in ipairs(l) do if x.time >= it.time then it = x end end
            end
        end
        return item_field(it, rest, set.catalog)
    elseif kind == "geo" then
        if rest == "country" or rest == "region" or rest == "city" then
            local g = ctx:geo()
            return g and g[rest]
        end
        local s = R.store
        if not s then return nil end
        local f = rest:match("^store%.(.+)$")
        if f == "distance_km" then return format("%.1f", R.distance) end
        return s[f]
    elseif kind == "rule" then
        return R.rule[rest]
    end
    return nil
end

-- Renders a template (a list of literals, variables and URL groups).
local function render(t, R, ctx, set)
    if #t == 1 and type(t[1]) == "string" then return t[1] end
    local out = {}
    for i = 1, #t do
        local p = t[i]
        if type(p) == "string" then
            out[i] = p
        elseif p.url then
            local v = render(p.url, R, ctx, set)
            out[i] = url_allowed(v) and v or "#"
        else
            local v = value(p.v, R, ctx, set)
            if v == nil or v == "" then v = p.d or "" end
            out[i] = ESC[p.m](v)
        end
    end
    return concat(out)
end
M.render = render

-- ------------------------------------------------------------ conditions

local function cmp(op, a, b)
    if op == "gt" then return a > b elseif op == "gte" then return a >= b
    elseif op == "lt" then return a < b elseif op == "lte" then return a <= b
    elseif op == "eq" then return a == b else return a ~= b end
end
local function cmps(ops, a)
    for _, o in ipairs(ops) do if not cmp(o[1], a, o[2]) then return false end end
    return true
end
local function days(now, t) return floor((now - t) / DAY) end

local NUMF = {
    orders = function(P) return P.orders end,
    visits = function(P) return P.visits end,
    revenue = function(P) return P.revenue end,
    days_since_first_seen = function(P, now) return days(now, P.created) end,
    days_since_last_seen = function(P, now)
        local m = 0
        for i = 1, 8 do if P.last_seen[i] > m then m = P.last_seen[i] end end
        return m > 0 and days(now, m) or nil
    end,
    days_since_purchase = function(P, now)
        local m
        for _, x in ipairs(P:purchases()) do if not m or x.time > m then m = x.time end end
        return m and days(now, m) or nil
    end,
    days_since_engagement = function(P, now)
        local m = P:cart().updated_at
        for _, x in ipairs(P:views()) do if x.time > m then m = x.time end end
        for _, x in ipairs(P:purchases()) do if x.time > m then m = x.time end end
        for _, x in pairs(P:events()) do if x.last > m then m = x.last end end
        if m == 0 then m = P.created end
        return days(now, m)
    end,
}

local function attr_eq(v, x)
    if v == nil then return false end
    if type(x) == "number" then return tonumber(v) == x end
    return v == x
end

local compile

-- Each builder returns fn(ctx, R) -> boolean; R holds this rule's
-- bindings (the matched view, purchase, store).
local B = {}
function B.all(c)
    local f = {}
    for i = 2, #c do f[#f + 1] = compile(c[i]) end
    return function(ctx, R)
        for i = 1, #f do if not f[i](ctx, R) then return false end end
        return true
    end
end
function B.any(c)
    local f = {}
    for i = 2, #c do f[#f + 1] = compile(c[i]) end
    return function(ctx, R)
        for i = 1, #f do if f[i](ctx, R) then return true end end
        return false
    end
end
B["not"] = function(c)
    local f = compile(c[2])
    return function(ctx, R) return not f(ctx, R) end
end
function B.channel(c)
    local s = c[2]
    return function(ctx) return s[ctx.channel] == true end
end
function B.segment(c)
    local l = c[2]
    return function(ctx)
        local P = ctx.prof
        if not P then return false end
        local s = P:segments()
        for i = 1, #l do if s[l[i]] then return true end end
        return false
    end
end
function B.stage(c)
    local s = c[2]
    return function(ctx)
        return s[ctx.prof and ctx.prof:stage() or "new"] == true
    end
end
function B.account(c)
    local want = c[2]
    return function(ctx)
        return (ctx.prof ~= nil and ctx.prof:account()) == want
    end
end
function B.num(c)
    local get, op, x = NUMF[c[2]], c[3], c[4]
    return function(ctx)
        local P = ctx.prof
        if not P then return false end
        local v = get(P, ctx.now)
        return v ~= nil and cmp(op, v, x)
    end
end
function B.attr(c)
    local key, op, x = c[2], c[3], c[4]
    return function(ctx)
        local P = ctx.prof
        local v = P and P:attrs()[key]
        if op == "exists" then return (v ~= nil) == x end
        if v == nil then return false end
        if op == "eq" then return attr_eq(v, x) end
        if op == "ne" then return not attr_eq(v, x) end
        if op == "in" then
            for i = 1, #x do if attr_eq(v, x[i]) then return true end end
            return false
        end
        if op == "prefix" then
            if type(v) ~= "string" then return false end
            for i = 1, #x do if sub(v, 1, #x[i]) == x[i] then return true end end
            return false
        end
        local n = tonumber(v)
        return n ~= nil and cmp(op, n, x)
    end
end
function B.last_seen(c)
    local ch, mode, w = c[2], c[3], c[4]
    local idx = ch ~= "" and require("omnic_record").CHANNEL_INDEX[ch]
    return function(ctx)
        local P = ctx.prof
        local t = 0
        if P then
            if idx then t = P.last_seen[idx]
            else for i = 1, 8 do if P.last_seen[i] > t then t = P.last_seen[i] end end end
        end
        local within = t > 0 and ctx.now - t <= w
        if mode == "within" then return within end
        return not within
    end
end
function B.cart(c)
    local what, a, b = c[2], c[3], c[4]
    return function(ctx)
        local P = ctx.prof
        if not P then return false end
        local cart = P:cart()
        if what == "non_empty" then return (#cart.lines > 0) == a end
        if what == "idle" then
            if cart.updated_at == 0 then return false end
            return cmp(a, ctx.now - cart.updated_at, b)
        end
        if what == "items" or what == "value" then
            local items, value = cart_totals(cart)
            return cmp(a, what == "items" and items or value, b)
        end
        local f = what == "contains_sku" and "sku" or "category"
        for _, l in ipairs(cart.lines) do if a[l[f]] then return true end end
        return false
    end
end
function B.purchased(c)
    local skus, cats, within, older = c[2], c[3], c[4], c[5]
    return function(ctx, R)
        local P = ctx.prof
        if not P then return false end
        local best
        for _, x in ipairs(P:purchases()) do
            if (not skus and not cats) or (skus and skus[x.sku])
               or (cats and cats[x.category]) then
                if not best or x.time >= best.time then best = x end
            end
        end
        if not best then return false end
        local age = ctx.now - best.time
        if within >= 0 and age > within then return false end
        if older >= 0 and age <= older then return false end
        R.purchased = best
        return true
    end
end
function B.viewed(c)
    local skus, cats, within, prices = c[2], c[3], c[4], c[5]
    return function(ctx, R)
        local P = ctx.prof
        if not P then return false end
        local l = P:views()
        for i = #l, 1, -1 do
            local x = l[i]
            if ((not skus and not cats) or (skus and skus[x.sku])
                or (cats and cats[x.category]))
               and (within < 0 or ctx.now - x.time <= within)
               and cmps(prices, x.price) then
                R.viewed = x
                return true
            end
        end
        return false
    end
end
function B.event(c)
    local name, within, ops = c[2], c[3], c[4]
    return function(ctx)
        local P = ctx.prof
        local e = P and P:events()[name]
        local n = e and e.count or 0
        if e and within >= 0 and ctx.now - e.last > within then n = 0 end
        return cmps(ops, n)
    end
end
function B.path(c)
    local op, x = c[2], c[3]
    return function(ctx)
        local p = ctx.path
        if op == "regex" then return re_find(p, x, "jo") ~= nil end
        for i = 1, #x do
            if op == "eq" and p == x[i] then return true end
            if op == "prefix" and sub(p, 1, #x[i]) == x[i] then return true end
        end
        return false
    end
end
function B.query(c)
    local arg, op, x = c[2], c[3], c[4]
    return function(ctx)
        local v = ctx:arg(arg)
        if op == "exists" then return (v ~= nil) == x end
        if v == nil then return false end
        for i = 1, #x do
            if op == "eq" and v == x[i] then return true end
            if op == "prefix" and sub(v, 1, #x[i]) == x[i] then return true end
        end
        return false
    end
end
function B.referrer(c)
    local op, x = c[2], c[3]
    return function(ctx)
        local r = ctx:referrer()
        if op == "exists" then return (r ~= nil) == x end
        if r == nil then return false end
        if op == "prefix" then
            for i = 1, #x do if sub(r, 1, #x[i]) == x[i] then return true end end
            return false
        end
        local host = lower(r:match("^%a[%w+.-]*://([^/:?#]+)") or "")
        for i = 1, #x do
            local h = lower(x[i])
            if host == h or sub(host, -#h - 1) == "." .. h then return true end
        end
        return false
    end
end
function B.device(c)
    local s = c[2]
    return function(ctx) return s[ctx:device()] == true end
end
function B.geo(c)
    local f, s = c[2], c[3]
    return function(ctx)
        local g = ctx:geo()
        local v = g and g[f]
        return v ~= nil and s[lower(v)] == true
    end
end
function B.near(c)
    local km, stores = c[2], c[3]
    for _, s in ipairs(stores) do
        s.rlat, s.rlon = rad(s.lat), rad(s.lon)
        s.coslat = cos(s.rlat)
    end
    return function(ctx, R)
        local g = ctx:geo()
        if not g or not g.lat then return false end
        local rlat, rlon, coslat = g.rlat, g.rlon, g.coslat
        local best, bd
        for _, s in ipairs(stores) do
            -- further than km in latitude alone: no trigonometry
            if math.abs(s.lat - g.lat) * 111.19508 <= km then
                local a = sin((s.rlat - rlat) / 2)
                local b = sin((s.rlon - rlon) / 2)
                local h = min(a * a + coslat * s.coslat * b * b, 1)
                local d = 2 * 6371.0088 * asin(sqrt(h))
                if d <= km and (not bd or d < bd) then best, bd = s, d end
            end
        end
        if not best then return false end
        R.store, R.distance = best, bd
        return true
    end
end
function B.time(c)
    local off, wd, from, to, after, before = c[2], c[3], c[4], c[5], c[6], c[7]
    return function(ctx)
        local now = ctx.now
        if after >= 0 and now < after then return false end
        if before >= 0 and now >= before then return false end
        local lt = now + off
        if wd and not wd[(floor(lt / DAY) + 4) % 7] then return false end
        if from >= 0 then
            local m = floor((lt % DAY) / 60)
            if from <= to then
                if m < from or m >= to then return false end
            elseif m < from and m >= to then
                return false
            end
        end
        return true
    end
end
function B.experiment(c)
    local id, from, to = c[2], c[3], c[4]
    return function(ctx)
        local b = ctx:bucket(id)
        return b >= from and b < to
    end
end

compile = function(c)
    local b = B[c[1]]
    if not b then error("omnic: unknown condition kind " .. tostring(c[1])) end
    return b(c)
end

-- ------------------------------------------------------------ the set

M._R = {}

function M.compile(t)
    M.selftest()
    local set = { catalog = t.catalog or {}, holdout = t.holdout, rules = {} }
    for i, r in ipairs(t.rules) do
        r.rank = i
        r.test = r.when and compile(r.when) or function() return true end
        set.rules[i] = r
    end
    return set
end

-- Eligibility after the conditions hold (docs/rules.md "Eligibility").
local function eligible(r, ctx)
    local P, now = ctx.prof, ctx.now
    if r.holdout and ctx:bucket(r.holdout.id) < r.holdout.bp then return false end
    if r.suppress and P then
        local s = r.suppress
        for _, x in ipairs(P:purchases()) do
            if (s.skus[x.sku] or s.cats[x.category])
               and (s.within < 0 or now - x.time <= s.within) then
                return false
            end
        end
    end
    if r.cap or r.cooldown then
        local imp = P and P:impressions()[r.campaign]
        local pend = ctx:pending(r.campaign)
        if r.cap then
            local n = #pend
            if imp then
                if r.cap.per < 0 then n = n + imp.total
                else
                    local b = imp.buckets
                    for i = 1, #b, 2 do
                        if b[i] * 3600 > now - r.cap.per then n = n + b[i + 1] end
                    end
                end
            end
            if n >= r.cap.max then return false end
        end
        if r.cooldown then
            local last = pend[#pend] or (imp and imp.last) or 0
            if imp and imp.last > last then last = imp.last end
            if last > 0 and now - last < r.cooldown then return false end
        end
    end
    return true
end

-- The decision: { slots = {name = html}, pixels = html, headers = {{n,v}},
-- rules = {ids}, campaigns = {names} }, or nil when nothing shows.
function M.decide(set, ctx)
    local now = ctx.now
    if set.holdout and ctx:bucket(set.holdout.id) < set.holdout.bp then
        return nil
    end
    local P = ctx.prof
    local no_ads = ctx.no_ads
    if P and P.consent >= 0x80000000 then
        if bit.band(P.consent, 0x02) == 0 then return nil end
        if bit.band(P.consent, 0x04) == 0 then no_ads = true end
    end
    local slots, px, seen, hdrs, hseen = {}, {}, {}, {}, {}
    local rules, camps = {}, {}
    local any = false
    local rs = set.rules
    -- One binding table for every rule (no table per rule per request).
    local R = M._R
    for i = 1, #rs do
        local r = rs[i]
        local banner = r.banner
        if r.enabled and not (banner and slots[banner.slot])
           and not (not banner and no_ads and r.pixels and not r.headers)
           and (not r.start or now >= r.start) and (not r.stop or now < r.stop) then
            R.rule, R.viewed, R.purchased, R.store, R.distance = r, nil, nil, nil, nil
            if r.test(ctx, R) and eligible(r, ctx) then
                any = true
                if banner then slots[banner.slot] = render(banner.html, R, ctx, set) end
                rules[#rules + 1] = r.id
                camps[#camps + 1] = r.campaign
                if r.pixels and not no_ads then
                    for _, p in ipairs(r.pixels) do
                        local url = render(p.url, R, ctx, set)
                        local k = p.type .. url
                        if url ~= "" and not seen[k] then
                            seen[k] = true
                            px[#px + 1] = p.type == "img"
                                and '<img src="' .. esc_html(url) .. '" width="1" height="1" alt="">'
                                or '<script async src="' .. esc_html(url) .. '"></script>'
                        end
                    end
                end
                if r.headers then
                    for _, h in ipairs(r.headers) do
                        local n = lower(h.name)
                        if not hseen[n] then
                            hseen[n] = true
                            hdrs[#hdrs + 1] = { h.name, render(h.value, R, ctx, set) }
                        end
                    end
                end
            end
        end
    end
    if not any then return nil end
    return { slots = slots, pixels = concat(px), headers = hdrs,
             rules = rules, campaigns = camps }
end

return M
