/*
 * http_json_parse.c - the http_json trigger's reply parser (see http_json_parse.h): cJSON parses
 * the text, then the select expression (a JSON pointer whose "*" segments match every element)
 * is walked over the tree, collecting one reading per match with its label. All or nothing: a
 * reply with one bad match gives an error and no readings.
 */
#define _POSIX_C_SOURCE 200809L
#include "http_json_parse.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGMENTS 32
#define MAX_PATH 1024

typedef struct selector {
    char *seg[MAX_SEGMENTS]; /* decoded segments */
    int wild[MAX_SEGMENTS];
    int n;
    int has_wild;
    char *buf; /* one allocation holding the decoded segments */
} selector;

typedef struct walk_state {
    const sb_http_json_query *q;
    const selector *sel;
    sb_http_json_readings *out;
    size_t cap;
    char *err;
    size_t errlen;
} walk_state;

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* Split "/a/b~1c" (and * segments) into decoded segments; -EINVAL for a bad pointer. */
static int selector_parse(const char *select, selector *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof(*s));
    if (!select || !*select)
        return 0;
    size_t len = strlen(select);
    if (len > SB_HTTP_JSON_MAX_SELECT)
        return fail(err, errlen, -EINVAL, "select: longer than %d characters",
                    SB_HTTP_JSON_MAX_SELECT);
    if (select[0] != '/')
        return fail(err, errlen, -EINVAL,
                    "select: a JSON pointer starts with '/' (\"/data/count\"), got '%s'", select);
    s->buf = malloc(len + 1);
    if (!s->buf)
        return fail(err, errlen, -ENOMEM, "out of memory");
    char *w = s->buf;
    const char *p = select;
    while (*p == '/') {
        if (s->n == MAX_SEGMENTS) {
            free(s->buf);
            s->buf = NULL;
            return fail(err, errlen, -EINVAL, "select: more than %d segments", MAX_SEGMENTS);
        }
        p++;
        s->seg[s->n] = w;
        const char *segstart = p;
        while (*p && *p != '/') {
            if (*p == '~') {
                if (p[1] != '0' && p[1] != '1') {
                    free(s->buf);
                    s->buf = NULL;
                    return fail(err, errlen, -EINVAL,
                                "select: '~' must be followed by 0 or 1 (RFC 6901) in '%s'",
                                select);
                }
                *w++ = p[1] == '0' ? '~' : '/';
                p += 2;
            } else {
                *w++ = *p++;
            }
        }
        *w++ = '\0';
        s->wild[s->n] = (p - segstart == 1 && *segstart == '*');
        s->has_wild |= s->wild[s->n];
        s->n++;
    }
    return 0;
}

static const char *describe(const cJSON *v)
{
    if (cJSON_IsNumber(v))
        return "a number";
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsTrue(v))
        return "true";
    if (cJSON_IsFalse(v))
        return "false";
    if (cJSON_IsNull(v))
        return "null";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    return "something unknown";
}

/* Append one segment to the concrete pointer, re-encoded. */
static int path_push(char *path, size_t *plen, const char *seg)
{
    size_t n = *plen;
    if (n + 1 >= MAX_PATH)
        return -1;
    path[n++] = '/';
    for (const char *c = seg; *c; c++) {
        if (n + 3 >= MAX_PATH)
            return -1;
        if (*c == '~' || *c == '/') {
            path[n++] = '~';
            path[n++] = *c == '~' ? '0' : '1';
        } else {
            path[n++] = *c;
        }
    }
    path[n] = '\0';
    *plen = n;
    return 0;
}

/* A string safe to show: printable ASCII, cut at 40 characters. */
static void shown(const char *s, char *out, size_t outlen)
{
    size_t n = 0;
    for (; *s && n + 4 < outlen && n < 40; s++)
        out[n++] = ((unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f) ? *s : '?';
    if (*s && n + 4 < outlen) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* A decimal number in a string: digits, sign, point, exponent; all of it; finite. */
static int numeric_string(const char *s, double *out)
{
    if (!*s || strlen(s) > 64)
        return -1;
    for (const char *c = s; *c; c++)
        if (!strchr("0123456789+-.eE", *c))
            return -1;
    char *end;
    double v = strtod(s, &end);
    if (*end || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int leaf_value(walk_state *st, const cJSON *v, const char *path, double *out)
{
    char txt[64];
    if (st->q->count) {
        if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
            return fail(st->err, st->errlen, -EINVAL,
                        "%s: expected an array or object to count, got %s", path[0] ? path : "/",
                        describe(v));
        *out = (double)cJSON_GetArraySize(v);
        return 0;
    }
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return fail(st->err, st->errlen, -EINVAL, "%s: the number is out of range",
                        path[0] ? path : "/");
        *out = v->valuedouble;
        return 0;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        if (numeric_string(v->valuestring, out) == 0)
            return 0;
        shown(v->valuestring, txt, sizeof(txt));
        return fail(st->err, st->errlen, -EINVAL, "%s: expected a number, got the string \"%s\"",
                    path[0] ? path : "/", txt);
    }
    return fail(st->err, st->errlen, -EINVAL, "%s: expected a number, got %s", path[0] ? path : "/",
                describe(v));
}

/* The label of a match: the sibling named q->label in parent, or the concrete path. */
static int leaf_label(walk_state *st, const cJSON *parent, const char *path, char **label)
{
    *label = NULL;
    const char *name = st->q->label;
    char buf[SB_HTTP_JSON_MAX_LABEL + 1];
    if (!name || !*name) {
        if (!st->sel->has_wild)
            return 0;
        *label = strdup(path);
        return *label ? 0 : fail(st->err, st->errlen, -ENOMEM, "out of memory");
    }
    /* The holder of the value: where the last '/' of the path cuts it. */
    const char *cut = strrchr(path, '/');
    int holder_len = cut ? (int)(cut - path) : 0;
    if (!parent || !cJSON_IsObject(parent))
        return fail(st->err, st->errlen, -EINVAL,
                    "%s: label '%s': the value is not a member of an object", path, name);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(parent, name);
    if (!l)
        return fail(st->err, st->errlen, -EINVAL, "%.*s/%s: missing (the label of %s)", holder_len,
                    path, name, path);
    if (cJSON_IsString(l) && l->valuestring) {
        size_t n = strlen(l->valuestring);
        if (n == 0 || n > SB_HTTP_JSON_MAX_LABEL)
            return fail(st->err, st->errlen, -EINVAL, "%.*s/%s: a label must be 1 to %d bytes long",
                        holder_len, path, name, SB_HTTP_JSON_MAX_LABEL);
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)l->valuestring[i] < 0x20 || l->valuestring[i] == 0x7f)
                return fail(st->err, st->errlen, -EINVAL,
                            "%.*s/%s: a label with a control character", holder_len, path, name);
        snprintf(buf, sizeof(buf), "%s", l->valuestring);
    } else if (cJSON_IsNumber(l) && isfinite(l->valuedouble)) {
        double d = l->valuedouble;
        if (d == floor(d) && fabs(d) < 1e15)
            snprintf(buf, sizeof(buf), "%.0f", d);
        else
            snprintf(buf, sizeof(buf), "%.17g", d);
    } else if (cJSON_IsBool(l)) {
        snprintf(buf, sizeof(buf), "%s", cJSON_IsTrue(l) ? "true" : "false");
    } else {
        return fail(st->err, st->errlen, -EINVAL,
                    "%.*s/%s: a label must be a string, number or boolean, got %s", holder_len,
                    path, name, describe(l));
    }
    *label = strdup(buf);
    return *label ? 0 : fail(st->err, st->errlen, -ENOMEM, "out of memory");
}

static int add_reading(walk_state *st, const cJSON *v, const cJSON *parent, const char *path)
{
    if (st->out->n == SB_HTTP_JSON_MAX_READINGS)
        return fail(st->err, st->errlen, -EINVAL, "select matched more than %d values",
                    SB_HTTP_JSON_MAX_READINGS);
    double value = 0;
    int rc = leaf_value(st, v, path, &value);
    char *label = NULL;
    if (rc == 0)
        rc = leaf_label(st, parent, path, &label);
    if (rc)
        return rc;
    if (label && st->q->label) {
        for (size_t i = 0; i < st->out->n; i++) {
            if (strcmp(st->out->items[i].label, label) == 0) {
                char txt[64];
                shown(label, txt, sizeof(txt));
                free(label);
                return fail(st->err, st->errlen, -EINVAL,
                            "%s: label %s=%s is already the label of another match", path,
                            st->q->label, txt);
            }
        }
    }
    if (st->out->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4;
        sb_http_json_reading *items = realloc(st->out->items, cap * sizeof(*items));
        if (!items) {
            free(label);
            return fail(st->err, st->errlen, -ENOMEM, "out of memory");
        }
        st->out->items = items;
        st->cap = cap;
    }
    st->out->items[st->out->n].value = value;
    st->out->items[st->out->n].label = label;
    st->out->n++;
    return 0;
}

/* Is seg an array index (RFC 6901: "0" or no leading zero)? */
static int array_index(const char *seg, int *out)
{
    size_t n = strlen(seg);
    if (n == 0 || n > 9 || (n > 1 && seg[0] == '0'))
        return -1;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (seg[i] < '0' || seg[i] > '9')
            return -1;
        v = v * 10 + (seg[i] - '0');
    }
    *out = v;
    return 0;
}

static int walk(walk_state *st, const cJSON *node, const cJSON *parent, int i, char *path,
                size_t plen)
{
    if (i == st->sel->n)
        return add_reading(st, node, parent, path);
    const char *seg = st->sel->seg[i];
    if (!cJSON_IsArray(node) && !cJSON_IsObject(node)) {
        return fail(st->err, st->errlen, -EINVAL, "%s: is %s, not an object or array (select %s)",
                    plen ? path : "/", describe(node), st->q->select);
    }
    if (st->sel->wild[i]) {
        int k = 0;
        for (const cJSON *c = node->child; c; c = c->next, k++) {
            char idx[16];
            const char *name = c->string;
            if (cJSON_IsArray(node) || !name) {
                snprintf(idx, sizeof(idx), "%d", k);
                name = idx;
            }
            size_t nl = plen;
            if (path_push(path, &nl, name) != 0)
                return fail(st->err, st->errlen, -EINVAL, "a path longer than %d bytes", MAX_PATH);
            int rc = walk(st, c, node, i + 1, path, nl);
            path[plen] = '\0';
            if (rc)
                return rc;
        }
        return 0;
    }
    size_t nl = plen;
    if (path_push(path, &nl, seg) != 0)
        return fail(st->err, st->errlen, -EINVAL, "a path longer than %d bytes", MAX_PATH);
    const cJSON *child;
    if (cJSON_IsArray(node)) {
        int idx;
        if (array_index(seg, &idx) != 0)
            return fail(st->err, st->errlen, -EINVAL,
                        "%s: '%s' is not an array index (%.*s is an array)", path, seg,
                        plen ? (int)plen : 1, plen ? path : "/");
        child = cJSON_GetArrayItem(node, idx);
        if (!child)
            return fail(st->err, st->errlen, -EINVAL, "%s: missing (the array has %d elements)",
                        path, cJSON_GetArraySize(node));
    } else {
        child = cJSON_GetObjectItemCaseSensitive(node, seg);
        if (!child)
            return fail(st->err, st->errlen, -EINVAL, "%s: missing", path);
    }
    int rc = walk(st, child, node, i + 1, path, nl);
    path[plen] = '\0';
    return rc;
}

int sb_http_json_check(const sb_http_json_query *q, char *err, size_t errlen)
{
    selector s;
    int rc = selector_parse(q->select, &s, err, errlen);
    if (rc)
        return rc;
    free(s.buf);
    if (q->label) {
        if (!*q->label || strlen(q->label) > 64)
            return fail(err, errlen, -EINVAL, "label: a member name of 1 to 64 characters");
        if (s.n == 0)
            return fail(err, errlen, -EINVAL,
                        "label: the whole document (select \"\") has no sibling to take a label "
                        "from");
    }
    return 0;
}

int sb_http_json_parse(const char *text, size_t len, const sb_http_json_query *q,
                       sb_http_json_readings *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    selector s;
    int rc = selector_parse(q->select, &s, err, errlen);
    if (rc)
        return rc;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        free(s.buf);
        return fail(err, errlen, -EINVAL, "the reply is not JSON (%zu bytes)", len);
    }
    char *path = malloc(MAX_PATH);
    if (!path) {
        cJSON_Delete(root);
        free(s.buf);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    path[0] = '\0';
    walk_state st = {.q = q, .sel = &s, .out = out, .err = err, .errlen = errlen};
    rc = walk(&st, root, NULL, 0, path, 0);
    free(path);
    cJSON_Delete(root);
    free(s.buf);
    if (rc) {
        sb_http_json_readings_free(out);
        /* Paths quote the reply's member names: one line, whatever bytes the remote put there. */
        for (char *c = err; errlen && *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return rc;
}

void sb_http_json_readings_free(sb_http_json_readings *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->items[i].label);
    free(r->items);
    r->items = NULL;
    r->n = 0;
}
