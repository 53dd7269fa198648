-- Arm C (bench/run.sh): the module's binary profile record
-- (docs/store-format.md "The profile record"), read in place from LMDB's
-- memory map through FFI, the way an OpenResty team reading the same
-- store would: the fixed header at once, each section decoded into Lua
-- tables only when a rule asks for it, every read bounded by the record.
-- And the writer's side: a record with new visit counters and
-- impressions (the module's "touch fast path": header and IMPRESSIONS
-- rewritten, every other section copied).
local ffi = require "ffi"
local bit = require "bit"

local ffi_string, ffi_cast = ffi.string, ffi.cast
local band, bor, rshift = bit.band, bit.bor, bit.rshift
local char, byte, sub = string.char, string.byte, string.sub
local concat = table.concat
local u8p = ffi.typeof("const uint8_t *")
local f64p = ffi.typeof("const double *")

local M = {}

local S_ALIASES, S_SEGMENTS, S_ATTRS, S_CART = 1, 2, 3, 4
local S_PURCHASES, S_IMPRESSIONS, S_VIEWS, S_EVENTS = 5, 6, 7, 8
M.CHANNELS = { "web", "app", "email", "sms", "pos", "ads", "call", "other" }
M.CHANNEL_INDEX = {}
for i, c in ipairs(M.CHANNELS) do M.CHANNEL_INDEX[c] = i end

local function u16(p, o) return p[o] + p[o + 1] * 256 end
local function u32(p, o)
    return p[o] + p[o + 1] * 256 + p[o + 2] * 65536 + p[o + 3] * 16777216
end
local function f64(p, o) return ffi_cast(f64p, p + o)[0] end

-- A cursor over one item (one per worker: Lua is single-threaded here):
-- fields in order, a field cut short by the item's end reads as zero or
-- empty (store-format.md "Validation").
local P, O, E
local function cursor(p, o, e) P, O, E = p, o, e end
local function rstr()
    if O + 2 > E then O = E; return "" end
    local n = u16(P, O); O = O + 2
    if O + n > E then n = E - O end
    local s = ffi_string(P + O, n); O = O + n
    return s
end
local function ru8() if O + 1 > E then O = E; return 0 end O = O + 1; return P[O - 1] end
local function ru16() if O + 2 > E then O = E; return 0 end O = O + 2; return u16(P, O - 2) end
local function ru32() if O + 4 > E then O = E; return 0 end O = O + 4; return u32(P, O - 4) end
local function rf64() if O + 8 > E then O = E; return 0 end O = O + 8; return f64(P, O - 8) end

-- Items of a section: `local p, o, e = sect(view, T)`, then
-- `o, ie = item(p, o, e)` gives each item's bounds (nil at the end).  No
-- closures: LuaJIT 2.1 does not compile their creation (FNEW), and a
-- closure per section per request would keep the hot path interpreted.
local function sect(view, t)
    local s = view.sec[t]
    if not s then return nil, 0, 0 end
    return view.p, s[1], s[1] + s[2]
end
local function item(p, o, e)
    if not p or o + 2 > e then return nil end
    local ie = o + 2 + u16(p, o)
    if ie > e then return nil end
    cursor(p, o + 2, ie)
    return ie
end

local View = {}
View.__index = View

-- The header and section table of a record at p (len bytes), or nil and
-- why.  The view is valid while the read transaction lasts.
function M.view(ptr, len)
    local p = ffi_cast(u8p, ptr)
    if len < 24 or p[0] ~= 0x4f or p[1] ~= 0x4d or p[2] ~= 1 then
        return nil, "invalid record"
    end
    local h, n = u16(p, 4), u16(p, 6)
    if h < 24 or h > len or h + 12 * n > len then return nil, "invalid record" end
    local v = setmetatable({ p = p, len = len, sec = {} }, View)
    local function hdr32(o) return o + 4 <= h and u32(p, o) or 0 end
    v.created, v.updated = hdr32(24), hdr32(28)
    v.visits, v.visit_last, v.consent = hdr32(32), hdr32(36), hdr32(40)
    v.orders = hdr32(80)
    v.revenue = h >= 96 and f64(p, 88) or 0
    local ls = {}
    for i = 1, 8 do ls[i] = hdr32(48 + 4 * (i - 1)) end
    v.last_seen = ls
    for i = 0, n - 1 do
        local o = h + 12 * i
        local t, off, l = u16(p, o), u32(p, o + 4), u32(p, o + 8)
        if off + l > len then return nil, "invalid record" end
        if t >= 1 and t <= 8 then
            if v.sec[t] then return nil, "invalid record" end
            v.sec[t] = { off, l }
        end
    end
    return v
end

function View:segments()
    local s = self._seg
    if s then return s end
    s = {}
    local p, o, e = sect(self, S_SEGMENTS)
    local ie = item(p, o, e)
    while ie do s[rstr()] = true; ie = item(p, ie, e) end
    self._seg = s
    return s
end

function View:attrs()
    local a = self._attr
    if a then return a end
    a = {}
    local p, o, e = sect(self, S_ATTRS)
    local ie = item(p, o, e)
    while ie do
        local k, t = rstr(), ru8()
        if t == 1 then a[k] = rstr() elseif t == 2 then a[k] = rf64() end
        ie = item(p, ie, e)
    end
    self._attr = a
    return a
end

-- A customer (u) or email (e) alias: an account.
function View:account()
    if self._acct ~= nil then return self._acct end
    local acct = false
    local p, o, e = sect(self, S_ALIASES)
    local ie = item(p, o, e)
    while ie do
        local k = ru8()
        if k == 117 or k == 101 then acct = true end
        ie = item(p, ie, e)
    end
    self._acct = acct
    return acct
end

function View:cart()
    local c = self._cart
    if c then return c end
    c = { updated_at = 0, lines = {} }
    local p, o, e = sect(self, S_CART)
    local ie = item(p, o, e)
    if ie then c.updated_at = ru32(); ie = item(p, ie, e) end
    while ie do
        local sku, name, cat = rstr(), rstr(), rstr()
        local qty, price = ru32(), rf64()
        local url, image = rstr(), rstr()
        c.lines[#c.lines + 1] = { sku = sku, name = name, category = cat,
            qty = qty, price = price, url = url, image = image }
        ie = item(p, ie, e)
    end
    self._cart = c
    return c
end

function View:purchases()
    local l = self._pur
    if l then return l end
    l = {}
    local p, o, e = sect(self, S_PURCHASES)
    local ie = item(p, o, e)
    while ie do
        local sku, oid, ch, t = rstr(), rstr(), ru8(), ru32()
        local cat, price, qty = rstr(), rf64(), ru32()
        l[#l + 1] = { sku = sku, order_id = oid, channel = ch, time = t,
                      category = cat, price = price, qty = qty }
        ie = item(p, ie, e)
    end
    self._pur = l
    return l
end

function View:views()
    local l = self._views
    if l then return l end
    l = {}
    local p, o, e = sect(self, S_VIEWS)
    local ie = item(p, o, e)
    while ie do
        local sku, cat, t, price = rstr(), rstr(), ru32(), rf64()
        l[#l + 1] = { sku = sku, category = cat, time = t, price = price }
        ie = item(p, ie, e)
    end
    self._views = l
    return l
end

function View:events()
    local m = self._ev
    if m then return m end
    m = {}
    local p, o, e = sect(self, S_EVENTS)
    local ie = item(p, o, e)
    while ie do
        local name, count, last = rstr(), ru32(), ru32()
        m[name] = { count = count, last = last }
        ie = item(p, ie, e)
    end
    self._ev = m
    return m
end

-- campaign -> { total, last, buckets = { hour, count, hour, count ... } }
function View:impressions()
    local m = self._imp
    if m then return m end
    m = {}
    local p, o, e = sect(self, S_IMPRESSIONS)
    local ie = item(p, o, e)
    while ie do
        local name, total, last = rstr(), ru32(), ru32()
        local b, n = {}, ru8()
        for i = 1, n do b[2 * i - 1] = ru32(); b[2 * i] = ru16() end
        m[name] = { campaign = name, total = total, last = last, buckets = b }
        ie = item(p, ie, e)
    end
    self._imp = m
    return m
end

-- The journey stage, derived at decision time (docs/rules.md).
function View:stage()
    if self.orders >= 5 then return "loyal" end
    if self.orders >= 1 then return "customer" end
    if #self:cart().lines > 0 then return "cart" end
    if self.visits >= 2 or #self:views() > 0 then return "browsing" end
    return "new"
end

-- ---------------------------------------------------------- the writer

local function le16(n) return char(band(n, 255), band(rshift(n, 8), 255)) end
local function le32(n)
    return char(band(n, 255), band(rshift(n, 8), 255),
                band(rshift(n, 16), 255), band(rshift(n, 24), 255))
end
local function rd16(s, o) local a, b = byte(s, o + 1, o + 2); return a + b * 256 end
local function rd32(s, o)
    local a, b, c, d = byte(s, o + 1, o + 4)
    return a + b * 256 + c * 65536 + d * 16777216
end

local VISIT_TIMEOUT = 1800    -- the module's default (omni_update.h)
local MAX_BUCKETS, MAX_CAMPAIGNS = 16, 64

-- The record S (a Lua string, copied out of the write transaction) after
-- the page views T = { {time, {campaign, ...}}, ... } of one visitor: the
-- visit counters and web last seen in the header, impressions counted in
-- hour buckets.  Returns the new record, or nil and why.
function M.touch(s, touches)
    local len = #s
    local h, n = rd16(s, 4), rd16(s, 6)
    if len < 96 or h ~= 96 or h + 12 * n > len then return nil, "invalid record" end
    local visits, vlast = rd32(s, 32), rd32(s, 36)
    local web, updated = rd32(s, 48), rd32(s, 28)
    local secs, imp = {}, nil
    for i = 0, n - 1 do
        local o = h + 12 * i
        local t, off, l = rd16(s, o), rd32(s, o + 4), rd32(s, o + 8)
        if off + l > len then return nil, "invalid record" end
        secs[#secs + 1] = { t, rd16(s, o + 2), sub(s, off + 1, off + l) }
        if t == S_IMPRESSIONS then imp = secs[#secs] end
    end

    -- Impressions, decoded from the Lua string.
    local camps, order = {}, {}
    if imp then
        local d, o = imp[3], 0
        while o + 2 <= #d do
            local il = rd16(d, o)
            local q = o + 2
            local cl = rd16(d, q)
            local c = { name = sub(d, q + 3, q + 2 + cl) }
            q = q + 2 + cl
            c.total, c.last = rd32(d, q), rd32(d, q + 4)
            local nb = byte(d, q + 9)
            q = q + 9
            c.b = {}
            for k = 1, nb do
                c.b[#c.b + 1] = { rd32(d, q), rd16(d, q + 4) }
                q = q + 6
            end
            camps[c.name] = c
            order[#order + 1] = c
            o = o + 2 + il
        end
    end

    for _, t in ipairs(touches) do
        local now = t[1]
        if now - vlast >= VISIT_TIMEOUT or visits == 0 then visits = visits + 1 end
        vlast, web, updated = now, now, now
        local hour = math.floor(now / 3600)
        for _, name in ipairs(t[2]) do
            local c = camps[name]
            if not c then
                c = { name = name, total = 0, last = 0, b = {} }
                camps[name] = c
                order[#order + 1] = c
            end
            c.total = math.min(c.total + 1, 4294967295)
            c.last = now
            local lb = c.b[#c.b]
            if lb and lb[1] == hour then
                lb[2] = math.min(lb[2] + 1, 65535)
            else
                c.b[#c.b + 1] = { hour, 1 }
                if #c.b > MAX_BUCKETS then table.remove(c.b, 1) end
            end
        end
    end
    -- At most 64 campaigns: the one shown least recently goes first.
    while #order > MAX_CAMPAIGNS do
        local lo = 1
        for i = 2, #order do if order[i].last < order[lo].last then lo = i end end
        camps[order[lo].name] = nil
        table.remove(order, lo)
    end

    local ib = {}
    for _, c in ipairs(order) do
        local it = { le16(#c.name), c.name, le32(c.total), le32(c.last), char(#c.b) }
        for _, b in ipairs(c.b) do it[#it + 1] = le32(b[1]); it[#it + 1] = le16(b[2]) end
        local body = concat(it)
        ib[#ib + 1] = le16(#body) .. body
    end
    if #order > 0 then
        if imp then imp[2], imp[3] = #order, concat(ib)
        else
            secs[#secs + 1] = { S_IMPRESSIONS, #order, concat(ib) }
            table.sort(secs, function(a, b) return a[1] < b[1] end)
        end
    end

    -- Header (its first 96 bytes with the new fields), table, sections.
    local hdr = sub(s, 1, 6) .. le16(#secs) .. sub(s, 9, 28) .. le32(updated)
        .. le32(visits) .. le32(vlast) .. sub(s, 41, 48) .. le32(web)
        .. sub(s, 53, 96)
    local off = 96 + 12 * #secs
    local tab, body = {}, {}
    for i, x in ipairs(secs) do
        tab[i] = le16(x[1]) .. le16(x[2]) .. le32(off) .. le32(#x[3])
        body[i] = x[3]
        off = off + #x[3]
    end
    return hdr .. concat(tab) .. concat(body)
end

return M
