/*
 * Event ingest's internals, shared by omni_event_parse.c (a call),
 * omni_event_fields.c (the field readers) and omni_event_traits.c
 * (identify's traits and consent).  Not an API.
 */

#ifndef OMNI_EVENT_INT_H
#define OMNI_EVENT_INT_H

#include <jansson.h>

#include "omni_event.h"

int omni_ev_fail(omni_event_err_t *err, int rc, const char *path,
    const char *field, const char *fmt, ...);

unsigned omni_ev_depth(json_t *v, unsigned limit);

int omni_ev_text_ok(const char *s, size_t len, size_t max);

int omni_ev_str(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, size_t max, const char **out, size_t *len);

int omni_ev_id(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, char *buf, size_t size);

int omni_ev_amount(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, double *out);

int omni_ev_product(omni_event_err_t *err, const char *path, json_t *obj,
    omni_event_product_t *pr, int need_sku);

void omni_ev_product_free(omni_event_product_t *pr);

int omni_ev_hex_id(omni_event_err_t *err, const char *path, json_t *obj,
    const char *key, omni_event_ident_t *id, unsigned kind);

int omni_ev_channel_name(const char *s, size_t len);

int omni_ev_email(const char *s, size_t len, omni_event_ident_t *email);

int omni_ev_consent(omni_event_t *ev, omni_event_err_t *err, const char *path,
    const char *field, json_t *o);

int omni_ev_traits(omni_event_t *ev, omni_event_err_t *err, const char *path,
    json_t *traits, int client, omni_event_ident_t *email);

#endif /* OMNI_EVENT_INT_H */
