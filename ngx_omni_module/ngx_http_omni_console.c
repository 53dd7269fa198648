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
 *                     priority, enabled, file}], "broken": bool,
 *                     "errors": ["file:line:col: path: message", ...]}
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
#include "omni_json.h"


static ngx_int_t ngx_http_omni_console_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_omni_console_rules(ngx_http_request_t *r);


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
".errors { color: #a00; white-space: pre-wrap; }\n"
".ok { color: #070; }\n"
".channel { border: 1px solid #ccc; margin: .6em 0; padding: .4em .8em; }\n"
".explanation { font-family: monospace; font-size: 90%; color: #555; }\n"
"</style>\n"
"</head>\n"
"<body>\n"
"<h1>omni console</h1>\n"
"<h2>Rules</h2>\n"
"<p id=\"status\">loading...</p>\n"
"<div id=\"errors\" class=\"errors\"></div>\n"
"<table id=\"rules\"><thead><tr><th>id</th><th>campaign</th><th>slot</th>"
"<th>priority</th><th>enabled</th><th>file</th></tr></thead>"
"<tbody></tbody></table>\n"
"<h2>A visitor's decision</h2>\n"
"<form id=\"who\">\n"
"<label>profile id or customer id\n"
"<input id=\"visitor\" size=\"40\" placeholder=\"a11ce000... or cust-1001\">"
"</label>\n"
"<button type=\"submit\">Show</button>\n"
"</form>\n"
"<div id=\"decision\"></div>\n"
"<script>\n"
"'use strict';\n"
"var CHANNELS = ['web', 'app', 'email', 'sms'];\n"
"function el(tag, text, cls) {\n"
"  var e = document.createElement(tag);\n"
"  if (text !== undefined) e.textContent = String(text);\n"
"  if (cls) e.className = cls;\n"
"  return e;\n"
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
"      body.appendChild(tr);\n"
"    });\n"
"    var s = document.getElementById('status');\n"
"    s.textContent = d.loaded + ' rule(s) serving from ' + d.dir +\n"
"      (d.broken ? '; the last change does not compile, the previous '\n"
"                + 'rules keep serving:' : '');\n"
"    s.className = d.broken ? 'errors' : 'ok';\n"
"    document.getElementById('errors').textContent = d.errors.join('\\n');\n"
"  }).catch(function (e) {\n"
"    document.getElementById('status').textContent = 'rules: ' + e;\n"
"  });\n"
"}\n"
"function show(who) {\n"
"  var out = document.getElementById('decision');\n"
"  out.textContent = '';\n"
"  var arg = /^[0-9a-fA-F]{32}$|^[0-9a-fA-F-]{36}$/.test(who)\n"
"            ? 'profile=' : 'customer=';\n"
"  CHANNELS.forEach(function (ch) {\n"
"    var box = el('div', undefined, 'channel');\n"
"    box.id = 'channel-' + ch;\n"
"    box.appendChild(el('h3', ch));\n"
"    out.appendChild(box);\n"
"    fetch('decide?' + arg + encodeURIComponent(who) + '&channel=' + ch\n"
"          + '&explain=1', {cache: 'no-store'}).then(function (r) {\n"
"      return r.json();\n"
"    }).then(function (d) {\n"
"      if (d.error) { box.appendChild(el('p', d.error, 'errors')); return; }\n"
"      var slots = Object.keys(d.slots || {});\n"
"      if (!slots.length) box.appendChild(el('p', 'no banner'));\n"
"      slots.forEach(function (n) {\n"
"        var sl = d.slots[n];\n"
"        var p = el('p');\n"
"        p.className = 'slot';\n"
"        p.appendChild(el('strong', n + ': ' + sl.rule));\n"
"        p.appendChild(el('span', ' ' + (sl.text || '')));\n"
"        box.appendChild(p);\n"
"      });\n"
"      (d.explanation || []).forEach(function (line) {\n"
"        box.appendChild(el('div', line, 'explanation'));\n"
"      });\n"
"    }).catch(function (e) { box.appendChild(el('p', String(e), 'errors')); });\n"
"  });\n"
"}\n"
"document.getElementById('who').addEventListener('submit', function (e) {\n"
"  e.preventDefault();\n"
"  show(document.getElementById('visitor').value.trim());\n"
"});\n"
"var q = new URLSearchParams(location.search).get('visitor');\n"
"if (q) { document.getElementById('visitor').value = q; show(q); }\n"
"loadRules();\n"
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

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_omni_console_handler(ngx_http_request_t *r)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    if (r->uri.len >= 6
        && ngx_strncmp(r->uri.data + r->uri.len - 6, "/rules", 6) == 0)
    {
        return ngx_http_omni_console_rules(r);
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


/* The rules serving, and the errors of a change that did not compile. */
static ngx_int_t
ngx_http_omni_console_rules(ngx_http_request_t *r)
{
    char                       *text;
    size_t                      len;
    json_t                     *o, *rules, *errors, *x;
    unsigned                    i, n;
    ngx_str_t                   json;
    omni_ruleset_t             *set;
    omni_rule_info_t            info;
    omni_rules_report_t        *rep;
    const char                 *s;
    ngx_http_omni_main_conf_t  *mcf;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_omni_module);
    set = ngx_http_omni_rules_current();
    rep = ngx_http_omni_rules_failure();

    o = json_object();
    rules = json_array();
    errors = json_array();

    if (o == NULL || rules == NULL || errors == NULL) {
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

    text = json_dumps(o, JSON_COMPACT);

    json_decref(o);
    json_decref(rules);
    json_decref(errors);

    if (text == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    json.len = ngx_strlen(text);
    json.data = ngx_pnalloc(r->pool, json.len);

    if (json.data == NULL) {
        free(text);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memcpy(json.data, text, json.len);
    free(text);

    return ngx_http_omni_send_json_status(r, NGX_HTTP_OK, &json);

failed:

    json_decref(o);
    json_decref(rules);
    json_decref(errors);

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}
