/*
 * cron_expr.c - cron schedules for the cron trigger: the parser (text -> bit sets, with error
 * messages a user can act on) and the next-fire search.
 *
 * The search walks UTC time in spans of constant UTC offset (tz_span_at). Inside one span local
 * time runs in step with UTC, so the first matching wall time there is found by plain calendar
 * arithmetic (civil_next). Span boundaries carry the DST policy described in cron_expr.h: a
 * spring-forward boundary fires once if any wall time of the skipped hour matches; a fall-back
 * boundary skips the repeated wall times unless the hour field starts with `*`.
 */
#include "cron_expr.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CRON_HORIZON (50LL * 366 * 86400) /* give up after ~50 years without a match */
#define CRON_FIRST_TIME (-62135596800LL)  /* 0001-01-01T00:00:00Z */
#define CRON_LAST_TIME 253402300799LL     /* 9999-12-31T23:59:59Z */
#define CRON_MAX_SPANS 100000             /* guard against pathological zone data */
#define CRON_MAX_ITEM 64                  /* longest token quoted back in an error */

enum { F_SECOND, F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW };

typedef struct field_def {
    const char *name;
    int lo, hi;
    const char *const *names; /* names[i] is value lo + i, or NULL */
    const char *names_hint;
} field_def;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL",
                                          "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_def fields[] = {
    [F_SECOND] = {"second", 0, 59, NULL, NULL},
    [F_MINUTE] = {"minute", 0, 59, NULL, NULL},
    [F_HOUR] = {"hour", 0, 23, NULL, NULL},
    [F_DOM] = {"day-of-month", 1, 31, NULL, NULL},
    [F_MONTH] = {"month", 1, 12, month_names, "month name (JAN-DEC)"},
    [F_DOW] = {"day-of-week", 0, 7, day_names, "weekday name (SUN-SAT)"},
};

static const struct {
    const char *name;
    const char *expansion;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* ---- parsing ----------------------------------------------------------------------------- */

typedef struct parse_ctx {
    char *err;
    size_t errlen;
    int position; /* 1-based field number in the text */
    const field_def *def;
} parse_ctx;

static int fail(const parse_ctx *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Write "field N (name): <message>" and return -EINVAL. */
static int fail(const parse_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    int n;
    if (!ctx->err || ctx->errlen == 0)
        return -EINVAL;
    n = snprintf(ctx->err, ctx->errlen, "field %d (%s): ", ctx->position, ctx->def->name);
    if (n >= 0 && (size_t)n < ctx->errlen) {
        va_start(ap, fmt);
        vsnprintf(ctx->err + n, ctx->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int upper(int c)
{
    return c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static int same_ci(const char *a, size_t alen, const char *b)
{
    size_t blen = strlen(b);
    if (alen != blen)
        return 0;
    for (size_t i = 0; i < alen; i++)
        if (upper((unsigned char)a[i]) != upper((unsigned char)b[i]))
            return 0;
    return 1;
}

/* One value: a number or a name. tok/len is the token (no ',', '-', '/'). */
static int parse_value(const parse_ctx *ctx, const char *tok, size_t len, int *out)
{
    const field_def *d = ctx->def;
    int shown = len > CRON_MAX_ITEM ? CRON_MAX_ITEM : (int)len;
    long v = 0;
    size_t i;

    if (len == 0)
        return fail(ctx, "missing value");
    if (d->names) {
        for (i = 0; d->names[i]; i++)
            if (same_ci(tok, len, d->names[i])) {
                *out = d->lo + (int)i;
                return 0;
            }
    }
    for (i = 0; i < len; i++) {
        if (tok[i] < '0' || tok[i] > '9') {
            if (d->names)
                return fail(ctx, "'%.*s' is not a number or %s", shown, tok, d->names_hint);
            return fail(ctx, "'%.*s' is not a number", shown, tok);
        }
        if (v <= 1000000)
            v = v * 10 + (tok[i] - '0');
    }
    if (v < d->lo || v > d->hi)
        return fail(ctx, "%.*s is out of range %d-%d", shown, tok, d->lo, d->hi);
    *out = (int)v;
    return 0;
}

static size_t token_len(const char *s, const char *end)
{
    size_t n = 0;
    while (s + n < end && s[n] != ',' && s[n] != '-' && s[n] != '/')
        n++;
    return n;
}

/* One list item: ('*' | value ['-' value]) ['/' step]. Sets bits lo..hi of *bits. */
static int parse_item(const parse_ctx *ctx, const char *s, const char *end, uint64_t *bits)
{
    const field_def *d = ctx->def;
    int first, last, step = 1;
    size_t n;

    if (s == end)
        return fail(ctx, "empty list item");
    if (*s == '*') {
        first = d->lo;
        last = d->hi;
        s++;
        if (s < end && *s != '/')
            return fail(ctx, "unexpected '%c' after '*'", *s);
    } else {
        int rc;
        n = token_len(s, end);
        if ((rc = parse_value(ctx, s, n, &first)) < 0)
            return rc;
        s += n;
        last = first;
        if (s < end && *s == '-') {
            s++;
            n = token_len(s, end);
            if ((rc = parse_value(ctx, s, n, &last)) < 0)
                return rc;
            s += n;
            if (d == &fields[F_DOW] && last == 0 && first > 0)
                last = 7; /* MON-SUN: Sunday as the end of a range is day 7 */
            if (last < first)
                return fail(ctx, "range %d-%d is reversed (the start must not exceed the end)",
                            first, last);
        } else if (s < end && *s == '/') {
            last = d->hi; /* N/S: from N to the end of the range */
        }
    }
    if (s < end && *s == '/') {
        long v = 0;
        s++;
        n = (size_t)(end - s);
        if (n == 0)
            return fail(ctx, "missing step after '/'");
        for (size_t i = 0; i < n; i++) {
            if (s[i] < '0' || s[i] > '9')
                return fail(ctx, "step '%.*s' is not a number",
                            n > CRON_MAX_ITEM ? CRON_MAX_ITEM : (int)n, s);
            if (v <= 1000000)
                v = v * 10 + (s[i] - '0');
        }
        if (v < 1)
            return fail(ctx, "step must be at least 1");
        step = v > d->hi ? d->hi + 1 : (int)v; /* larger steps only select the start */
        s = end;
    }
    if (s != end)
        return fail(ctx, "unexpected '%c'", *s);
    for (int v = first; v <= last; v += step)
        *bits |= (uint64_t)1 << v;
    return 0;
}

static int parse_field(parse_ctx *ctx, const char *s, size_t len, uint64_t *bits)
{
    const char *end = s + len;
    *bits = 0;
    for (;;) {
        const char *comma = memchr(s, ',', (size_t)(end - s));
        const char *item_end = comma ? comma : end;
        int rc = parse_item(ctx, s, item_end, bits);
        if (rc < 0)
            return rc;
        if (!comma)
            return 0;
        s = comma + 1;
    }
}

/* Can the day rule ever match? Only the AND case can fail (e.g. "31 in February"). */
static int can_fire(const cron_expr *e)
{
    static const int max_days[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (!e->dom_star && !e->dow_star)
        return 1; /* OR: every weekday occurs in every month */
    for (int m = 1; m <= 12; m++) {
        if (!(e->months >> m & 1))
            continue;
        for (int d = 1; d <= max_days[m]; d++)
            if (e->days >> d & 1)
                return 1;
    }
    return 0;
}

static int parse_fields(cron_expr *e, const char *text, char *err, size_t errlen)
{
    const char *start[6];
    size_t len[6];
    int count = 0, base;
    const char *p = text;
    uint64_t bits[6] = {1, 0, 0, 0, 0, 0}; /* 5 fields: second 0 */
    parse_ctx ctx = {err, errlen, 0, NULL};

    for (;;) {
        while (*p && is_space((unsigned char)*p))
            p++;
        if (!*p)
            break;
        if (count < 6) {
            start[count] = p;
            len[count] = 0;
        }
        while (*p && !is_space((unsigned char)*p))
            p++;
        if (count < 6)
            len[count] = (size_t)(p - start[count]);
        count++;
    }
    if (count != 5 && count != 6) {
        set_err(err, errlen,
                "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds "
                "first), or a macro such as @daily; got %d",
                count);
        return -EINVAL;
    }
    base = count == 6 ? F_SECOND : F_MINUTE;
    for (int i = 0; i < count; i++) {
        int rc;
        ctx.position = i + 1;
        ctx.def = &fields[base + i];
        if ((rc = parse_field(&ctx, start[i], len[i], &bits[base + i])) < 0)
            return rc;
    }
    memset(e, 0, sizeof *e);
    e->has_seconds = count == 6;
    e->seconds = bits[F_SECOND];
    e->minutes = bits[F_MINUTE];
    e->hours = (uint32_t)bits[F_HOUR];
    e->days = (uint32_t)bits[F_DOM];
    e->months = (uint32_t)bits[F_MONTH];
    e->weekdays = (uint32_t)((bits[F_DOW] | bits[F_DOW] >> 7) & 0x7f); /* 7 is Sunday too */
    e->hour_star = start[F_HOUR - base][0] == '*';
    e->dom_star = start[F_DOM - base][0] == '*';
    e->dow_star = start[F_DOW - base][0] == '*';
    if (!can_fire(e)) {
        set_err(err, errlen,
                "never fires: none of the selected months has any of the selected days of the "
                "month");
        return -EINVAL;
    }
    return 0;
}

int cron_expr_parse(cron_expr *e, const char *text, char *err, size_t errlen)
{
    const char *p = text ? text : "";
    size_t n;

    while (is_space((unsigned char)*p))
        p++;
    if (!*p) {
        set_err(err, errlen, "empty schedule");
        return -EINVAL;
    }
    if (*p != '@')
        return parse_fields(e, p, err, errlen);
    n = strlen(p);
    while (n > 0 && is_space((unsigned char)p[n - 1]))
        n--;
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
        if (same_ci(p, n, macros[i].name))
            return parse_fields(e, macros[i].expansion, err, errlen);
    set_err(err, errlen,
            "unknown macro '%.*s' (expected @hourly, @daily, @midnight, @weekly, @monthly, "
            "@yearly or @annually)",
            n > CRON_MAX_ITEM ? CRON_MAX_ITEM : (int)n, p);
    return -EINVAL;
}

/* ---- next-fire search -------------------------------------------------------------------- */

/* Smallest set bit of mask in from..hi, or -1. */
static int next_bit(uint64_t mask, int from, int hi)
{
    for (int i = from; i <= hi; i++)
        if (mask >> i & 1)
            return i;
    return -1;
}

static int day_matches(const cron_expr *e, const tz_civil *c)
{
    int wday = tz_weekday(tz_days_from_civil(c->year, c->month, c->day));
    int dom = (int)(e->days >> c->day & 1);
    int dow = (int)(e->weekdays >> wday & 1);
    if (e->dom_star || e->dow_star)
        return dom && dow;
    return dom || dow;
}

static void next_day(tz_civil *c)
{
    c->hour = c->min = c->sec = 0;
    if (++c->day > tz_days_in_month(c->year, c->month)) {
        c->day = 1;
        if (++c->month > 12) {
            c->month = 1;
            c->year++;
        }
    }
}

static void next_hour(tz_civil *c)
{
    c->min = c->sec = 0;
    if (++c->hour > 23)
        next_day(c);
}

static void next_minute(tz_civil *c)
{
    c->sec = 0;
    if (++c->min > 59)
        next_hour(c);
}

/* The first matching wall time in local seconds [lo, hi). Each step moves forward to the next
 * candidate month, day, hour, minute or second, so the loop ends. */
static int civil_next(const cron_expr *e, int64_t lo, int64_t hi, int64_t *out)
{
    tz_civil c;
    tz_seconds_to_civil(lo, &c);
    while (tz_civil_to_seconds(&c) < hi) {
        int v;
        if (!(e->months >> c.month & 1)) {
            v = next_bit(e->months, c.month + 1, 12);
            if (v < 0) {
                c.year++;
                v = next_bit(e->months, 1, 12);
            }
            c.month = v;
            c.day = 1;
            c.hour = c.min = c.sec = 0;
            continue;
        }
        if (!day_matches(e, &c)) {
            next_day(&c);
            continue;
        }
        if ((v = next_bit(e->hours, c.hour, 23)) < 0) {
            next_day(&c);
            continue;
        }
        if (v != c.hour) {
            c.hour = v;
            c.min = c.sec = 0;
        }
        if ((v = next_bit(e->minutes, c.min, 59)) < 0) {
            next_hour(&c);
            continue;
        }
        if (v != c.min) {
            c.min = v;
            c.sec = 0;
        }
        if ((v = next_bit(e->seconds, c.sec, 59)) < 0) {
            next_minute(&c);
            continue;
        }
        c.sec = v;
        *out = tz_civil_to_seconds(&c);
        return *out < hi ? 0 : -1;
    }
    return -1;
}

int cron_expr_next(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *when,
                   int32_t *utc_offset)
{
    int64_t t, horizon, local;

    if (after >= CRON_LAST_TIME)
        return -ENOENT;
    if (after < CRON_FIRST_TIME)
        after = CRON_FIRST_TIME;
    t = after + 1;
    horizon = after + CRON_HORIZON;
    if (horizon > CRON_LAST_TIME)
        horizon = CRON_LAST_TIME;
    for (int i = 0; i < CRON_MAX_SPANS && t <= horizon; i++) {
        tz_span s;
        int64_t lo, hi;
        tz_span_at(z, t, &s);
        /* Spring forward at the start of this span: the skipped wall times [start+prev, start+off)
         * fire once, at the first instant of the span. */
        if (t == s.start && s.offset > s.prev_offset &&
            civil_next(e, s.start + s.prev_offset, s.start + s.offset, &local) == 0) {
            *when = s.start;
            *utc_offset = s.offset;
            return 0;
        }
        lo = t + s.offset;
        /* Fall back at the start of this span: wall times before start+prev were already shown
         * in the first pass; only schedules with `*` hours fire again in the second. */
        if (!e->hour_star && s.start != INT64_MIN && s.offset < s.prev_offset &&
            lo < s.start + s.prev_offset)
            lo = s.start + s.prev_offset;
        hi = (s.end > horizon ? horizon + 1 : s.end) + s.offset;
        if (lo < hi && civil_next(e, lo, hi, &local) == 0) {
            *when = local - s.offset;
            *utc_offset = s.offset;
            return 0;
        }
        if (s.end > horizon)
            break;
        t = s.end;
    }
    return -ENOENT;
}

int cron_expr_next_n(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *times,
                     int32_t *utc_offsets, int n)
{
    int count = 0;
    while (count < n) {
        int64_t when;
        int32_t off;
        if (cron_expr_next(e, z, after, &when, &off) < 0)
            break;
        times[count] = when;
        utc_offsets[count] = off;
        count++;
        after = when;
    }
    return count;
}
