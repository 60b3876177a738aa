/*
 * haproxy_parse.c - a number from HAProxy's stats CSV.
 *
 *   # pxname,svname,qcur,qmax,scur,smax,slim,stot,...
 *   web,FRONTEND,,,4,5,100,7,...
 *   web,n1,0,0,0,1,2,2,...
 *   web,BACKEND,0,0,0,1,10,3,...
 *
 * One pass over the text with a small RFC 4180 field reader (HAProxy quotes fields that hold a
 * comma, a quote or a line break: "Bad, ""really"" down"). Only the three fields a row needs are
 * kept, each in a fixed buffer, so the input's size bounds the time and nothing else grows.
 */
#include "haproxy_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct csv_reader {
    const char *p, *end;
    int in_record; /* a comma was read: a field follows even at the end of the input */
} csv_reader;

typedef struct csv_field {
    char text[SB_HAPROXY_NAME_MAX + 1]; /* unquoted, cut to SB_HAPROXY_NAME_MAX bytes */
    size_t len;                         /* the field's whole length */
    int last;                           /* it ended its record */
} csv_field;

/* The text of a row's list of names, for an error that says what there is. */
typedef struct name_list {
    char text[200];
    size_t len;
    int more;
} name_list;

static int hap_error(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int hap_error(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* Names and words quoted from the reply stay on this one line. */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return code;
}

static void field_put(csv_field *f, char c)
{
    if (f->len < SB_HAPROXY_NAME_MAX)
        f->text[f->len] = c;
    f->len++;
}

static void field_end(csv_field *f)
{
    size_t n = f->len < SB_HAPROXY_NAME_MAX ? f->len : SB_HAPROXY_NAME_MAX;
    f->text[n] = '\0';
}

/* Read the next field into f. Returns 1, 0 at the end of the input, or -1 for a quoted field
 * that never ends. */
static int csv_next(csv_reader *r, csv_field *f)
{
    f->len = 0;
    f->last = 0;
    if (r->p >= r->end && !r->in_record)
        return 0;
    if (r->p < r->end && *r->p == '"') {
        r->p++;
        for (;;) {
            if (r->p >= r->end)
                return -1;
            char c = *r->p++;
            if (c == '"') {
                if (r->p < r->end && *r->p == '"') {
                    field_put(f, '"');
                    r->p++;
                    continue;
                }
                break;
            }
            field_put(f, c);
        }
        /* Anything between the closing quote and the separator is kept as text. */
    }
    for (;;) {
        if (r->p >= r->end) {
            f->last = 1;
            break;
        }
        char c = *r->p++;
        if (c == ',')
            break;
        if (c == '\n') {
            f->last = 1;
            break;
        }
        field_put(f, c);
    }
    /* CRLF line ends. */
    if (f->last && f->len > 0 && f->len <= SB_HAPROXY_NAME_MAX && f->text[f->len - 1] == '\r')
        f->len--;
    r->in_record = !f->last;
    field_end(f);
    return 1;
}

static int field_is(const csv_field *f, const char *s)
{
    return f->len <= SB_HAPROXY_NAME_MAX && strcmp(f->text, s) == 0;
}

static void list_add(name_list *l, const char *name)
{
    size_t n = strlen(name);
    if (l->more || l->len + n + 2 >= sizeof l->text) {
        l->more = 1;
        return;
    }
    if (l->len) {
        memcpy(l->text + l->len, ", ", 2);
        l->len += 2;
    }
    memcpy(l->text + l->len, name, n);
    l->len += n;
    l->text[l->len] = '\0';
}

/* HAProxy's numbers: integers, sometimes with a fraction. No "nan", "inf" or hex. */
static int hap_number(const csv_field *f, double *out)
{
    if (f->len > SB_HAPROXY_NAME_MAX)
        return -EINVAL;
    int digits = 0;
    for (size_t i = 0; i < f->len; i++) {
        char c = f->text[i];
        if (c >= '0' && c <= '9')
            digits++;
        else if (!strchr("+-.eE", c))
            return -EINVAL;
    }
    if (digits == 0)
        return -EINVAL;
    char *end = NULL;
    double d = strtod(f->text, &end);
    if (end != f->text + f->len)
        return -EINVAL;
    if (!isfinite(d))
        return -ERANGE;
    *out = d;
    return 0;
}

typedef struct hap_columns {
    size_t pxname, svname, want, count;
} hap_columns;

static int hap_header(csv_reader *r, const char *column, hap_columns *cols, char *err,
                      size_t errlen)
{
    static const char no_header[] = "not HAProxy stats CSV: no \"# pxname,svname,...\" header "
                                    "line (does the url end in ;csv?)";
    csv_field f;
    size_t i = 0;
    int found_px = 0, found_sv = 0, found_want = 0;
    for (;; i++) {
        int rc = csv_next(r, &f);
        if (rc <= 0)
            return hap_error(-EBADMSG, err, errlen, "%s", no_header);
        const char *name = f.text;
        if (i == 0) {
            if (f.text[0] != '#')
                return hap_error(-EBADMSG, err, errlen, "%s", no_header);
            name++;
            while (*name == ' ')
                name++;
        }
        if (f.len <= SB_HAPROXY_NAME_MAX) {
            if (!found_px && strcmp(name, "pxname") == 0)
                cols->pxname = i, found_px = 1;
            if (!found_sv && strcmp(name, "svname") == 0)
                cols->svname = i, found_sv = 1;
            if (!found_want && strcmp(name, column) == 0)
                cols->want = i, found_want = 1;
        }
        if (f.last)
            break;
    }
    cols->count = i + 1;
    if (!found_px || !found_sv)
        return hap_error(-EBADMSG, err, errlen, "%s", no_header);
    if (!found_want)
        return hap_error(-ENOENT, err, errlen,
                         "no column \"%.64s\" in the stats CSV header (e.g. scur, qcur, rate, "
                         "stot, req_rate)",
                         column);
    return 0;
}

static int hap_found(const csv_field *v, const char *row, const char *column, double *value,
                     char *err, size_t errlen)
{
    if (v->len == 0)
        return hap_error(-ENODATA, err, errlen,
                         "%s: the column \"%s\" is empty (HAProxy has no such figure for this "
                         "row)",
                         row, column);
    int rc = hap_number(v, value);
    if (rc == -ERANGE)
        return hap_error(rc, err, errlen, "%s: %s=%.40s is out of range", row, column, v->text);
    if (rc != 0)
        return hap_error(rc, err, errlen, "%s: %s=\"%.40s%s\" is not a number", row, column,
                         v->text, v->len > 40 ? "..." : "");
    return 0;
}

int sb_haproxy_parse(const char *csv, size_t len, const char *proxy, const char *server,
                     const char *column, double *value, char *err, size_t errlen)
{
    const char *sv_want = server ? server : "BACKEND";
    char row[2 * 64 + 8];
    snprintf(row, sizeof row, "%.64s/%.64s", proxy, sv_want);
    csv_reader r = {.p = csv, .end = csv + (csv ? len : 0)};
    hap_columns cols = {0};
    int rc = hap_header(&r, column, &cols, err, errlen);
    if (rc != 0)
        return rc;

    csv_field f, px, sv, v;
    name_list backends = {{0}, 0, 0}, servers = {{0}, 0, 0};
    int proxy_seen = 0;
    for (;;) {
        size_t i = 0;
        int got = 0;
        px.len = sv.len = v.len = 0;
        px.text[0] = sv.text[0] = v.text[0] = '\0';
        for (;; i++) {
            rc = csv_next(&r, &f);
            if (rc < 0)
                return hap_error(-EBADMSG, err, errlen,
                                 "malformed stats CSV: a quoted field never ends");
            if (rc == 0)
                break;
            got = 1;
            if (i == cols.pxname)
                px = f;
            if (i == cols.svname)
                sv = f;
            if (i == cols.want)
                v = f;
            if (f.last)
                break;
        }
        if (!got)
            break;
        if (i == 0 && f.len == 0)
            continue; /* a blank line */
        int is_backend = field_is(&sv, "BACKEND");
        if (is_backend && px.len <= SB_HAPROXY_NAME_MAX)
            list_add(&backends, px.text);
        if (!field_is(&px, proxy))
            continue;
        proxy_seen = 1;
        if (!is_backend && !field_is(&sv, "FRONTEND") && sv.len <= SB_HAPROXY_NAME_MAX)
            list_add(&servers, sv.text);
        if (!field_is(&sv, sv_want))
            continue;
        if (i < cols.want)
            return hap_error(-EBADMSG, err, errlen,
                             "%s: the row has %zu fields, the header %zu (no \"%s\")", row, i + 1,
                             cols.count, column);
        return hap_found(&v, row, column, value, err, errlen);
    }
    if (server && proxy_seen)
        return hap_error(-ENOENT, err, errlen, "no server %s in the stats (servers of %.64s: %s%s)",
                         row, proxy, servers.len ? servers.text : "none",
                         servers.more ? ", ..." : "");
    return hap_error(-ENOENT, err, errlen, "no backend \"%.64s\" in the stats (backends: %s%s)",
                     proxy, backends.len ? backends.text : "none", backends.more ? ", ..." : "");
}
