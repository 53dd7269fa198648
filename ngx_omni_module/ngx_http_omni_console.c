/*
 * The marketers' console (docs/console.md): one static page, served from
 * memory, and the JSON it reads.
 *
 *   location /omni/console/ { allow 10.0.0.0/8; deny all; omni_console; }
 *   location = /omni/console/decide {
 *       allow 10.0.0.0/8; deny all; omni_admin_decide;
 *   }
 *
 *   GET .../          the page (plain HTML and JS, no build step, no CDN)
 *   GET .../rules     {"dir", "loaded", "rules": [{id, campaign, slot,
 *                     priority, enabled, file, impressions_today,
 *                     holdouts_today, impressions, holdouts}],
 *                     "broken": bool, "errors": ["file:line:col: ...",
 *                     ...], "files": [{file, broken, serving}]}
 *   POST .../try      a draft rule file: its errors, or the decision it
 *                     would give (ngx_http_omni_try.c)
 *   GET .../feed      the touchpoint feed (omni_feed's lines): the last
 *                     ones, or those after=CURSOR, for the live view
 *   GET .../profile   {"profile": {...}}: a visitor's profile as omnictl
 *                     get prints it (profile=, customer=, email=,
 *                     cookie= or token=, as omni_admin_decide takes)
 *
 * The page asks .../decide (omni_admin_decide) for a profile's decision
 * on every channel, with the explanation of every rule.  Like the feed,
 * the console exists only where the configuration puts it: protect it
 * with allow/deny or auth_request.
 */

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <jansson.h>

#include "ngx_http_omni_module.h"
#include "ngx_http_omni_metrics.h"
#include "omni_json.h"


static ngx_int_t ngx_http_omni_console_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_console_rules(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_console_feed(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_console_profile(ngx_http_request_t *r);
static ngx_uint_t ngx_http_omni_console_is(ngx_http_request_t *r,
    const char *suffix);


static const char  ngx_http_omni_console_page[] =
"<!DOCTYPE html>\n"
"<html lang=\"en\">\n"
"<head>\n"
"<meta charset=\"utf-8\">\n"
"<title>omni console</title>\n"
"<link rel=\"icon\" href=\"data:,\">\n"
"<style>\n"
"body { font-family: sans-serif; margin: 1.5em; color: #222; }\n"
"table { border-collapse: collapse; }\n"
"td, th { border: 1px solid #ccc; padding: .2em .6em; text-align: left; }\n"
"td.n { text-align: right; }\n"
".errors { color: #a00; white-space: pre-wrap; }\n"
".ok { color: #070; }\n"
".channel { border: 1px solid #ccc; margin: .6em 0; padding: .4em .8em; }\n"
".explanation { font-family: monospace; font-size: 90%; color: #555; }\n"
"textarea { width: 100%; max-width: 60em; font-family: monospace; }\n"
"#profile { max-height: 16em; overflow: auto; background: #f6f6f6; }\n"
"#feed { font-family: monospace; font-size: 90%; list-style: none;\n"
"        padding: 0; max-height: 20em; overflow: auto; }\n"
"</style>\n"
"</head>\n"
"<body>\n"
"<h1>omni console</h1>\n"
"<h2>Rules</h2>\n"
"<p id=\"status\">loading...</p>\n"
"<div id=\"errors\" class=\"errors\"></div>\n"
"<ul id=\"files\" class=\"errors\"></ul>\n"
"<table id=\"rules\"><thead><tr><th>id</th><th>campaign</th><th>slot</th>\n"
"<th>priority</th><th>enabled</th><th>file</th>\n"
"<th>impressions today</th><th>holdouts today</th></tr></thead>\n"
"<tbody></tbody></table>\n"
"<h2>A visitor's decision</h2>\n"
"<form id=\"who\">\n"
"<label>profile id, customer id, email, cookie or app token\n"
"<input id=\"visitor\" size=\"60\"\n"
"  placeholder=\"a11ce000..., cust-1001, ana@example.com, a cookie...\">\n"
"</label>\n"
"<button type=\"submit\">Show</button>\n"
"</form>\n"
"<pre id=\"profile\"></pre>\n"
"<div id=\"decision\"></div>\n"
"<h2>Try this rule</h2>\n"
"<p>Paste a draft rule file: it is checked with the rules serving, as if\n"
"it were in the rules directory under the name below, and shows what it\n"
"would give the visitor above. Nothing goes live.</p>\n"
"<form id=\"try\">\n"
"<label>file name <input id=\"draft-file\" value=\"draft.json\"></label><br>\n"
"<textarea id=\"draft\" rows=\"10\" spellcheck=\"false\"></textarea><br>\n"
"<button type=\"submit\">Try</button>\n"
"</form>\n"
"<div id=\"try-result\"></div>\n"
"<h2>Feed, live</h2>\n"
"<p id=\"feed-status\"></p>\n"
"<ul id=\"feed\"></ul>\n"
"<script>\n"
"'use strict';\n"
"var CHANNELS = ['web', 'app', 'email', 'sms'];\n"
"function el(tag, text, cls) {\n"
"  var e = document.createElement(tag);\n"
"  if (text !== undefined) e.textContent = String(text);\n"
"  if (cls) e.className = cls;\n"
"  return e;\n"
"}\n"
"function who(v) {\n"
"  var k = /^[0-9a-fA-F]{32}$|^[0-9a-fA-F-]{36}$/.test(v) ? 'profile='\n"
"          : v.indexOf('@') > 0 ? 'email='\n"
"          : /^[A-Za-z0-9_-]{56}$/.test(v) ? 'cookie=' : 'customer=';\n"
"  return k + encodeURIComponent(v);\n"
"}\n"
"function loadRules() {\n"
"  fetch('rules', {cache: 'no-store'}).then(function (r) {\n"
"    return r.json();\n"
"  }).then(function (d) {\n"
"    var body = document.querySelector('#rules tbody');\n"
"    body.textContent = '';\n"
"    d.rules.forEach(function (x) {\n"
"      var tr = el('tr');\n"
"      [x.id, x.campaign, x.slot, x.priority, x.enabled ? 'yes' : 'no',\n"
"       x.file].forEach(function (v) { tr.appendChild(el('td', v)); });\n"
"      tr.appendChild(el('td', x.impressions_today, 'n'));\n"
"      tr.appendChild(el('td', x.holdouts_today, 'n'));\n"
"      body.appendChild(tr);\n"
"    });\n"
"    var s = document.getElementById('status');\n"
"    s.textContent = d.loaded + ' rule(s) serving from ' + d.dir +\n"
"      (d.broken ? '; some changes do not compile:' : '');\n"
"    s.className = d.broken ? 'errors' : 'ok';\n"
"    document.getElementById('errors').textContent = d.errors.join('\\n');\n"
"    var files = document.getElementById('files');\n"
"    files.textContent = '';\n"
"    d.files.forEach(function (f) {\n"
"      if (!f.broken) return;\n"
"      files.appendChild(el('li', f.file + ' does not compile; serving '\n"
"                               + f.serving));\n"
"    });\n"
"  }).catch(function (e) {\n"
"    document.getElementById('status').textContent = 'rules: ' + e;\n"
"  });\n"
"}\n"
"function render(box, d) {\n"
"  if (d.error) { box.appendChild(el('p', d.error, 'errors')); return; }\n"
"  var slots = Object.keys(d.slots || {});\n"
"  if (!slots.length) box.appendChild(el('p', 'no banner'));\n"
"  slots.forEach(function (n) {\n"
"    var sl = d.slots[n];\n"
"    var p = el('p');\n"
"    p.className = 'slot';\n"
"    p.appendChild(el('strong', n + ': ' + sl.rule));\n"
"    p.appendChild(el('span', ' ' + (sl.text || '')));\n"
"    box.appendChild(p);\n"
"  });\n"
"  (d.explanation || []).forEach(function (line) {\n"
"    box.appendChild(el('div', line, 'explanation'));\n"
"  });\n"
"}\n"
"function channelBox(out, id, ch) {\n"
"  var box = el('div', undefined, 'channel');\n"
"  box.id = id + ch;\n"
"  box.appendChild(el('h3', ch));\n"
"  out.appendChild(box);\n"
"  return box;\n"
"}\n"
"function show(v) {\n"
"  var out = document.getElementById('decision');\n"
"  var prof = document.getElementById('profile');\n"
"  out.textContent = '';\n"
"  prof.textContent = '';\n"
"  fetch('profile?' + who(v), {cache: 'no-store'}).then(function (r) {\n"
"    return r.json();\n"
"  }).then(function (d) {\n"
"    prof.textContent = d.profile ? JSON.stringify(d.profile, null, 1)\n"
"                                 : 'profile: ' + d.error;\n"
"  }).catch(function (e) { prof.textContent = String(e); });\n"
"  CHANNELS.forEach(function (ch) {\n"
"    var box = channelBox(out, 'channel-', ch);\n"
"    fetch('decide?' + who(v) + '&channel=' + ch + '&explain=1',\n"
"          {cache: 'no-store'}).then(function (r) {\n"
"      return r.json();\n"
"    }).then(function (d) { render(box, d); }).catch(function (e) {\n"
"      box.appendChild(el('p', String(e), 'errors'));\n"
"    });\n"
"  });\n"
"}\n"
"function tryRule() {\n"
"  var out = document.getElementById('try-result');\n"
"  var v = document.getElementById('visitor').value.trim();\n"
"  var draft = document.getElementById('draft').value;\n"
"  var base = 'try?file='\n"
"    + encodeURIComponent(document.getElementById('draft-file').value);\n"
"  out.textContent = '';\n"
"  var post = function (q) {\n"
"    return fetch(base + q, {method: 'POST', body: draft,\n"
"                            cache: 'no-store'}).then(function (r) {\n"
"      return r.json();\n"
"    });\n"
"  };\n"
"  post(v ? '&' + who(v) + '&channel=web' : '').then(function (d) {\n"
"    if (!d.ok) {\n"
"      out.appendChild(el('p', d.error ? d.error + ' (' + d.field + ')'\n"
"                                 : 'The draft does not compile:',\n"
"                         'errors'));\n"
"      var ul = el('ul', undefined, 'errors');\n"
"      ul.id = 'try-errors';\n"
"      (d.errors || []).forEach(function (e) {\n"
"        ul.appendChild(el('li', e));\n"
"      });\n"
"      out.appendChild(ul);\n"
"      return;\n"
"    }\n"
"    var p = el('p', 'The draft compiles: ' + d.rules\n"
"                  + ' rule(s) with it, as ' + d.file\n"
"                  + (v ? '. What it would give ' + v + ':'\n"
"                       : '. Name a visitor above to see a decision.'),\n"
"               'ok');\n"
"    p.id = 'try-ok';\n"
"    out.appendChild(p);\n"
"    if (!v) return;\n"
"    CHANNELS.forEach(function (ch) {\n"
"      var box = channelBox(out, 'try-channel-', ch);\n"
"      var got = ch === 'web' ? Promise.resolve(d)\n"
"                             : post('&' + who(v) + '&channel=' + ch);\n"
"      got.then(function (x) {\n"
"        render(box, x.decision || x);\n"
"      }).catch(function (e) {\n"
"        box.appendChild(el('p', String(e), 'errors'));\n"
"      });\n"
"    });\n"
"  }).catch(function (e) { out.appendChild(el('p', String(e), 'errors')); });\n"
"}\n"
"var cursor = null;\n"
"function feedLine(t) {\n"
"  var who = t.userId || t.anonymousId || t.profileId || '';\n"
"  var what = t.event || t.type;\n"
"  var where = (t.properties && t.properties.path) || '';\n"
"  var rules = (t.context && t.context.rules || []).join(',');\n"
"  return [t.seq, t.timestamp, t.channel, what, who, where,\n"
"          rules ? 'shown: ' + rules : ''].join('  ').trim();\n"
"}\n"
"function pollFeed() {\n"
"  var url = cursor === null ? 'feed' : 'feed?after=' + cursor;\n"
"  fetch(url, {cache: 'no-store'}).then(function (r) {\n"
"    if (r.status === 410) {\n"
"      return r.json().then(function (e) {\n"
"        cursor = e.first - 1;\n"
"        return '';\n"
"      });\n"
"    }\n"
"    if (!r.ok) throw new Error('feed: HTTP ' + r.status);\n"
"    var c = r.headers.get('X-Omni-Cursor');\n"
"    if (c !== null) cursor = c;\n"
"    return r.text();\n"
"  }).then(function (text) {\n"
"    var ul = document.getElementById('feed');\n"
"    text.split('\\n').forEach(function (line) {\n"
"      if (!line) return;\n"
"      var li = el('li', feedLine(JSON.parse(line)));\n"
"      li.className = 'touch';\n"
"      ul.insertBefore(li, ul.firstChild);\n"
"    });\n"
"    while (ul.children.length > 100) ul.removeChild(ul.lastChild);\n"
"    document.getElementById('feed-status').textContent =\n"
"      'following the feed, cursor ' + cursor;\n"
"  }).catch(function (e) {\n"
"    document.getElementById('feed-status').textContent = String(e);\n"
"  }).then(function () { setTimeout(pollFeed, 2000); });\n"
"}\n"
"document.getElementById('who').addEventListener('submit', function (e) {\n"
"  e.preventDefault();\n"
"  show(document.getElementById('visitor').value.trim());\n"
"});\n"
"document.getElementById('try').addEventListener('submit', function (e) {\n"
"  e.preventDefault();\n"
"  tryRule();\n"
"});\n"
"var q = new URLSearchParams(location.search);\n"
"if (q.get('visitor')) {\n"
"  document.getElementById('visitor').value = q.get('visitor');\n"
"  show(q.get('visitor'));\n"
"}\n"
"if (q.get('draft')) {\n"
"  document.getElementById('draft').value = q.get('draft');\n"
"  tryRule();\n"
"}\n"
"loadRules();\n"
"setInterval(loadRules, 10000);\n"
"pollFeed();\n"
"</script>\n"
"</body>\n"
"</html>\n";


char *
ngx_http_omni_console(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler != NULL) {
        return "is duplicate, or the location has another handler";
    }

    clcf->handler = ngx_http_omni_console_handler;

    /* drafts posted to .../try stay in memory (merge raises the buffer) */
    ((ngx_http_omni_loc_conf_t *) conf)->console = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_omni_console_handler(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (ngx_http_omni_console_is(r, "/try")) {
        return ngx_http_omni_console_try(r);
    }

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (ngx_http_omni_console_is(r, "/rules")) {
        return ngx_http_omni_console_rules(r);
    }

    if (ngx_http_omni_console_is(r, "/feed")) {
        return ngx_http_omni_console_feed(r);
    }

    if (ngx_http_omni_console_is(r, "/profile")) {
        return ngx_http_omni_console_profile(r);
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = sizeof(ngx_http_omni_console_page) - 1;
    ngx_str_set(&r->headers_out.content_type, "text/html");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    /* the page only reads; nothing of it may be framed or cached */
    if (ngx_http_omni_add_header(r, "Cache-Control", "no-store") != NGX_OK
        || ngx_http_omni_add_header(r, "X-Frame-Options", "DENY") != NGX_OK
        || ngx_http_omni_add_header(r, "Content-Security-Policy",
                                    "default-src 'self'; img-src data:; "
                                    "script-src 'unsafe-inline'; "
                                    "style-src 'unsafe-inline'")
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) ngx_http_omni_console_page;
    b->last = b->pos + sizeof(ngx_http_omni_console_page) - 1;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_uint_t
ngx_http_omni_console_is(ngx_http_request_t *r, const char *suffix)
{
    size_t  n;

    n = ngx_strlen(suffix);

    return r->uri.len >= n
           && ngx_strncmp(r->uri.data + r->uri.len - n, suffix, n) == 0;
}


/*
 * The live feed: omni_feed's lines after=CURSOR, or without a cursor the
 * last limit= ones (default 20, at most 1000), so the page starts at the
 * end of the log however long it is.
 */
static ngx_int_t
ngx_http_omni_console_feed(ngx_http_request_t *r)
{
    off_t       v;
    uint64_t    after;
    ngx_str_t   arg;
    ngx_uint_t  limit;

    after = (uint64_t) -1;
    limit = 20;

    if (ngx_http_arg(r, (u_char *) "after", 5, &arg) == NGX_OK) {
        v = ngx_atoof(arg.data, arg.len);
        if (v == NGX_ERROR) {
            return ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "after",
                                             "expected a cursor (a seq)");
        }

        after = (uint64_t) v;
        limit = 100;
    }

    if (ngx_http_arg(r, (u_char *) "limit", 5, &arg) == NGX_OK) {
        v = ngx_atoof(arg.data, arg.len);
        if (v < 1 || v > 1000) {
            return ngx_http_omni_admin_error(r, NGX_HTTP_BAD_REQUEST, "limit",
                                             "expected 1..1000");
        }

        limit = (ngx_uint_t) v;
    }

    return ngx_http_omni_feed_answer(r, after, limit);
}


/* A visitor's profile, as "omnictl get" prints it. */
static ngx_int_t
ngx_http_omni_console_profile(ngx_http_request_t *r)
{
    int                   rc;
    json_t               *o, *p;
    ngx_int_t             ret;
    ngx_str_t             json;
    omni_rec_t            rec;
    omni_store_t         *st;
    omni_profile_t        prof;
    ngx_http_omni_ctx_t  *ctx;

    ctx = ngx_http_omni_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_omni_admin_visitor(r, ctx, &ret) != NGX_OK) {
        return ret;
    }

    st = ngx_http_omni_worker_store();

    if (st == NULL || ngx_http_omni_read_begin(r, st) != NGX_OK) {
        return ngx_http_omni_admin_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                         "store", "store unavailable");
    }

    /* copied out of the read window: the record points into it */
    omni_profile_init(&prof, ctx->pid);

    rc = omni_store_get_profile(st, ctx->pid, &rec);

    if (rc == OMNI_OK) {
        rc = omni_profile_from_rec(&prof, &rec);
    }

    omni_store_read_end(st);

    if (rc == OMNI_NOTFOUND) {
        omni_profile_free(&prof);
        return ngx_http_omni_admin_error(r, NGX_HTTP_NOT_FOUND, "profile",
                                         "no profile yet");
    }

    p = rc == OMNI_OK ? omni_profile_to_json(&prof) : NULL;
    omni_profile_free(&prof);

    o = p ? json_object() : NULL;

    if (o == NULL) {
        json_decref(p);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* o owns p from here, whatever happens */
    if (json_object_set_new(o, "profile", p) != 0) {
        json_decref(o);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_omni_json_pool(r, o, JSON_COMPACT, &json);
    json_decref(o);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_omni_send_json_status(r, NGX_HTTP_OK, &json);
}


/* The rules serving, their counts, and the errors of the directory. */
static ngx_int_t
ngx_http_omni_console_rules(ngx_http_request_t *r)
{
    size_t                       len;
    ngx_int_t                    rc;
    json_t                      *o, *rules, *errors, *files, *x;
    unsigned                     i, n;
    ngx_str_t                    json;
    omni_ruleset_t              *set;
    omni_rule_info_t             info;
    omni_rules_report_t         *rep;
    const char                  *s;
    const omni_rules_file_t     *f;
    const omni_rules_files_t    *fs;
    ngx_http_omni_main_conf_t   *mcf;
    ngx_http_omni_rule_counts_t  cnt;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    set = ngx_http_omni_rules_current();
    rep = ngx_http_omni_rules_failure();

    fs = ngx_http_omni_rules_files();

    o = json_object();
    rules = json_array();
    errors = json_array();
    files = json_array();

    if (o == NULL || rules == NULL || errors == NULL || files == NULL) {
        goto failed;
    }

    n = set ? omni_rules_count(set) : 0;

    for (i = 0; i < n; i++) {
        if (omni_rules_rule_info(set, i, &info) != OMNI_OK) {
            continue;
        }

        x = json_object();
        if (x == NULL || json_array_append_new(rules, x) != 0) {
            json_decref(x);
            goto failed;
        }

        s = omni_rules_rule_id(set, i, &len);
        json_object_set_new(x, "id", json_stringn(s, len));
        s = omni_rules_rule_campaign(set, i, &len);
        json_object_set_new(x, "campaign", json_stringn(s, len));
        json_object_set_new(x, "slot",
                            json_stringn(info.slot, info.slot_len));
        json_object_set_new(x, "priority", json_integer(info.priority));
        json_object_set_new(x, "enabled", json_boolean(info.enabled));
        json_object_set_new(x, "file", omni_json_string(info.file));

        /* what it did: today (UTC) and since the start */
        s = omni_rules_rule_id(set, i, &len);
        ngx_http_omni_metrics_rule(s, len, &cnt);
        json_object_set_new(x, "impressions_today",
                            json_integer(cnt.impressions_today));
        json_object_set_new(x, "holdouts_today",
                            json_integer(cnt.holdouts_today));
        json_object_set_new(x, "impressions", json_integer(cnt.impressions));
        json_object_set_new(x, "holdouts", json_integer(cnt.holdouts));
    }

    /* every file, and what of a broken one serves */
    for (i = 0; fs && i < fs->n; i++) {
        f = &fs->files[i];

        x = json_object();
        if (x == NULL || json_array_append_new(files, x) != 0) {
            json_decref(x);
            goto failed;
        }

        json_object_set_new(x, "file", omni_json_string(f->path));
        json_object_set_new(x, "broken", json_boolean(f->broken));
        json_object_set_new(x, "serving",
                            json_string(!f->broken ? "this version"
                                        : f->text ? "its last good version"
                                        : "nothing"));
    }

    if (rep != NULL) {
        n = rep->nerrors < OMNI_RULES_MAX_ERRORS ? rep->nerrors
                                                 : OMNI_RULES_MAX_ERRORS;

        for (i = 0; i < n; i++) {
            json_array_append_new(errors, omni_json_string(rep->errors[i]));
        }
    }

    json_object_set_new(o, "dir",
                        json_stringn((char *) mcf->rules_dir.data,
                                           mcf->rules_dir.len));
    json_object_set_new(o, "loaded",
                        json_integer(set ? omni_rules_count(set) : 0));
    json_object_set_new(o, "broken", json_boolean(rep != NULL));
    json_object_set(o, "errors", errors);
    json_object_set(o, "rules", rules);
    json_object_set(o, "files", files);

    rc = ngx_http_omni_json_pool(r, o, JSON_COMPACT, &json);

    json_decref(o);
    json_decref(rules);
    json_decref(errors);
    json_decref(files);

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return ngx_http_omni_send_json_status(r, NGX_HTTP_OK, &json);

failed:

    json_decref(o);
    json_decref(rules);
    json_decref(errors);
    json_decref(files);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}
