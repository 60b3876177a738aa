/*
 * nginx_parse.c - nginx's stub_status page as numbers: a walk over its words, each checked
 * against what the page says at that place (ngx_http_stub_status_module.c prints it with one
 * format string). Numbers are decimal, up to 2^64-1.
 */
#include "nginx_parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* More column names after "server" than this is not a status page. */
#define NGINX_MAX_COLUMNS 16

typedef struct ngx_words {
    const char *start, *p, *end;
    const char *word; /* the current word, not NUL-terminated */
    size_t len;
} ngx_words;

static int ngx_error(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int ngx_error(int code, char *err, size_t errlen, const char *fmt, ...)
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

static int ngx_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The next word; 0 at the end of the text. */
static int ngx_next(ngx_words *w)
{
    while (w->p < w->end && ngx_blank(*w->p))
        w->p++;
    w->word = w->p;
    while (w->p < w->end && !ngx_blank(*w->p))
        w->p++;
    w->len = (size_t)(w->p - w->word);
    return w->len > 0;
}

static int ngx_is(const ngx_words *w, const char *s)
{
    return w->len == strlen(s) && memcmp(w->word, s, w->len) == 0;
}

static int ngx_is_number(const ngx_words *w)
{
    for (size_t i = 0; i < w->len; i++)
        if (w->word[i] < '0' || w->word[i] > '9')
            return 0;
    return w->len > 0;
}

/* The word as a number: 0, -EBADMSG (not digits) or -ERANGE. */
static int ngx_number(const ngx_words *w, uint64_t *out)
{
    if (!ngx_is_number(w))
        return -EBADMSG;
    uint64_t v = 0;
    for (size_t i = 0; i < w->len; i++) {
        unsigned d = (unsigned)(w->word[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

/* What the page starts with, printable, for "not a status page" errors. */
static void ngx_preview(const char *text, size_t len, char *buf, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap && n < 24; i++)
        buf[n++] = isprint((unsigned char)text[i]) ? text[i] : ' ';
    buf[n] = '\0';
}

static int ngx_expect(ngx_words *w, const char *word, char *err, size_t errlen)
{
    if (ngx_next(w) && ngx_is(w, word))
        return 0;
    if (w->len == 0)
        return ngx_error(-EBADMSG, err, errlen,
                         "not an nginx stub_status page: it ends before \"%s\"", word);
    return ngx_error(-EBADMSG, err, errlen,
                     "not an nginx stub_status page: expected \"%s\" at byte %zu, found "
                     "\"%.*s\"",
                     word, (size_t)(w->word - w->start), (int)(w->len > 24 ? 24 : w->len), w->word);
}

static int ngx_read_number(ngx_words *w, const char *what, uint64_t *out, char *err, size_t errlen)
{
    if (!ngx_next(w))
        return ngx_error(-EBADMSG, err, errlen,
                         "not an nginx stub_status page: it ends before the %s count", what);
    int rc = ngx_number(w, out);
    if (rc == -ERANGE)
        return ngx_error(rc, err, errlen, "stub_status: the %s count %.*s is out of range", what,
                         (int)(w->len > 24 ? 24 : w->len), w->word);
    if (rc != 0)
        return ngx_error(rc, err, errlen,
                         "not an nginx stub_status page: the %s count \"%.*s\" at byte %zu is "
                         "not a number",
                         what, (int)(w->len > 24 ? 24 : w->len), w->word,
                         (size_t)(w->word - w->start));
    return 0;
}

/* "server accepts handled requests [more]" then as many numbers. */
static int ngx_totals(ngx_words *w, sb_nginx_status *st, char *err, size_t errlen)
{
    static const char *const want[] = {"accepts", "handled", "requests"};
    int rc = ngx_expect(w, "server", err, errlen);
    if (rc != 0)
        return rc;
    size_t columns = 0;
    while (ngx_next(w) && !ngx_is_number(w)) {
        if (columns < 3 && !ngx_is(w, want[columns]))
            return ngx_error(-EBADMSG, err, errlen,
                             "not an nginx stub_status page: expected \"%s\" at byte %zu",
                             want[columns], (size_t)(w->word - w->start));
        if (++columns > NGINX_MAX_COLUMNS)
            return ngx_error(-EBADMSG, err, errlen,
                             "not an nginx stub_status page: too many columns after "
                             "\"server\"");
    }
    if (columns < 3)
        return ngx_error(-EBADMSG, err, errlen, "not an nginx stub_status page: expected \"%s\"",
                         want[columns]);
    uint64_t *slot[] = {&st->accepts, &st->handled, &st->requests};
    uint64_t ignored;
    w->p = w->word; /* the first number again, read through ngx_read_number */
    for (size_t i = 0; i < columns; i++) {
        rc = ngx_read_number(w, i < 3 ? want[i] : "extra", i < 3 ? slot[i] : &ignored, err, errlen);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int sb_nginx_parse(const char *text, size_t len, sb_nginx_status *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (text == NULL || len == 0)
        return ngx_error(-EBADMSG, err, errlen, "not an nginx stub_status page: it is empty");
    ngx_words w = {.start = text, .p = text, .end = text + len};
    if (!ngx_next(&w) || !ngx_is(&w, "Active")) {
        char head[32];
        ngx_preview(text, len, head, sizeof head);
        return ngx_error(-EBADMSG, err, errlen, "not an nginx stub_status page (it starts \"%s\")",
                         head);
    }
    int rc;
    if ((rc = ngx_expect(&w, "connections:", err, errlen)) != 0 ||
        (rc = ngx_read_number(&w, "active", &out->active, err, errlen)) != 0 ||
        (rc = ngx_totals(&w, out, err, errlen)) != 0 ||
        (rc = ngx_expect(&w, "Reading:", err, errlen)) != 0 ||
        (rc = ngx_read_number(&w, "reading", &out->reading, err, errlen)) != 0 ||
        (rc = ngx_expect(&w, "Writing:", err, errlen)) != 0 ||
        (rc = ngx_read_number(&w, "writing", &out->writing, err, errlen)) != 0 ||
        (rc = ngx_expect(&w, "Waiting:", err, errlen)) != 0 ||
        (rc = ngx_read_number(&w, "waiting", &out->waiting, err, errlen)) != 0)
        return rc;
    if (ngx_next(&w))
        return ngx_error(-EBADMSG, err, errlen,
                         "not an nginx stub_status page: unexpected \"%.*s\" at byte %zu after "
                         "the last count",
                         (int)(w.len > 24 ? 24 : w.len), w.word, (size_t)(w.word - w.start));
    return 0;
}
