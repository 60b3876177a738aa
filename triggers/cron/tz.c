/*
 * tz.c - time zones for the cron trigger: a TZif (RFC 8536) reader and a POSIX TZ rule evaluator.
 *
 * Why not localtime_r()/mktime(): they read the process-wide TZ, and changing it (setenv+tzset)
 * is neither thread-safe nor per-instance. Each tz_zone here is private, immutable data.
 *
 * A zone is a table of transitions (UTC instant -> local time type) from the file's 64-bit
 * section, plus the file's footer, a POSIX TZ string such as "CET-1CEST,M3.5.0,M10.5.0/3", which
 * governs every instant after the last transition (Debian's "slim" files stop the table early,
 * "fat" ones in 2037). Everything is answered as spans of constant UTC offset (tz_span); local
 * wall times are resolved to UTC by looking at the spans within a day either side.
 */
#define _POSIX_C_SOURCE 200809L

#include "tz.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_MAX_FILE (4u << 20)    /* real files are a few KiB */
#define TZ_MAX_TIMES (1u << 20)   /* transitions */
#define TZ_MAX_TYPES 256u         /* RFC 8536 */
#define TZ_MAX_OFFSET (26 * 3600) /* |UTC offset| accepted from files and rules */
#define TZ_MAX_RULE_HOURS 167     /* RFC 8536 extension: rule times in -167..167 hours */
#define TZ_WINDOW (26 * 3600)     /* local_to_utc looks this far either side */
#define TZ_MAX_SPANS 16

typedef struct tz_ttinfo {
    int32_t utoff;
    uint8_t isdst;
} tz_ttinfo;

typedef enum tz_date_kind { TZ_DATE_JULIAN1 = 1, TZ_DATE_JULIAN0, TZ_DATE_MWD } tz_date_kind;

/* One end of a DST period in a POSIX TZ rule: a day of the year plus a local time of day. */
typedef struct tz_rule_date {
    tz_date_kind kind;
    int n;        /* JULIAN1: 1..365 (Feb 29 never counted); JULIAN0: 0..365 */
    int month;    /* MWD */
    int week;     /* MWD: 1..5, 5 = last */
    int wday;     /* MWD: 0 = Sunday */
    int32_t time; /* seconds after local midnight; -167h..167h */
} tz_rule_date;

typedef struct tz_rule {
    int present; /* the file had a non-empty footer */
    int has_dst;
    int32_t std_off; /* UTC offsets, east positive */
    int32_t dst_off;
    tz_rule_date start; /* DST starts (given in standard time) */
    tz_rule_date end;   /* DST ends (given in daylight time) */
} tz_rule;

struct tz_zone {
    /* tz_acquire's shared copies: how many hold it, the $TZDIR it was read from, the next one */
    size_t refs;
    char *dir;
    struct tz_zone *next_shared;
    char *name;
    size_t ntimes;
    int64_t *times; /* ascending transition instants */
    uint8_t *types; /* index into ttinfo for each transition */
    size_t ntypes;
    tz_ttinfo *ttinfo;
    tz_rule rule;
};

/* ---- calendar -------------------------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int tz_is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

int tz_days_in_month(int64_t year, int month)
{
    static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    return dim[month - 1] + (month == 2 && tz_is_leap(year));
}

/* Days since 1970-01-01. The year is counted from March so that the leap day comes last; a
 * 400-year era has 146097 days. */
int64_t tz_days_from_civil(int64_t year, int month, int day)
{
    int64_t y = year - (month <= 2);
    int64_t era = floor_div(y, 400);
    int64_t year_of_era = y - era * 400;         /* 0..399 */
    int64_t month_from_march = (month + 9) % 12; /* March = 0 */
    int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468; /* 719468: days from 0000-03-01 to 1970-01-01 */
}

void tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    int64_t z = days + 719468;
    int64_t era = floor_div(z, 146097);
    int64_t doe = z - era * 146097; /* 0..146096 */
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153; /* month from March */
    int d = (int)(doy - (153 * mp + 2) / 5 + 1);
    int m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (m <= 2);
    *month = m;
    *day = d;
}

int tz_weekday(int64_t days)
{
    return (int)((days % 7 + 11) % 7); /* 1970-01-01 was a Thursday (4) */
}

int64_t tz_civil_to_seconds(const tz_civil *c)
{
    return tz_days_from_civil(c->year, c->month, c->day) * 86400 + c->hour * 3600 + c->min * 60 +
           c->sec;
}

void tz_seconds_to_civil(int64_t seconds, tz_civil *c)
{
    int64_t days = floor_div(seconds, 86400);
    int64_t rem = seconds - days * 86400;
    tz_civil_from_days(days, &c->year, &c->month, &c->day);
    c->hour = (int)(rem / 3600);
    c->min = (int)(rem / 60 % 60);
    c->sec = (int)(rem % 60);
    c->wday = tz_weekday(days);
}

static int64_t clamp_time(int64_t t)
{
    if (t < TZ_TIME_MIN)
        return TZ_TIME_MIN;
    if (t > TZ_TIME_MAX)
        return TZ_TIME_MAX;
    return t;
}

/* ---- POSIX TZ rule strings --------------------------------------------------------------- */

typedef struct rule_reader {
    const char *p;
    const char *end;
} rule_reader;

static int rr_peek(const rule_reader *r)
{
    return r->p < r->end ? (unsigned char)*r->p : -1;
}

static int rr_is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int rr_is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A zone abbreviation: three or more letters, or <...> of letters, digits, '+' and '-'. */
static int rr_name(rule_reader *r)
{
    size_t n = 0;
    if (rr_peek(r) == '<') {
        r->p++;
        while (rr_peek(r) != '>') {
            int c = rr_peek(r);
            if (c < 0 || !(rr_is_alpha(c) || rr_is_digit(c) || c == '+' || c == '-'))
                return -1;
            r->p++;
            n++;
        }
        r->p++;
    } else {
        while (rr_is_alpha(rr_peek(r))) {
            r->p++;
            n++;
        }
    }
    return n >= 3 ? 0 : -1;
}

/* [+-]hh[:mm[:ss]] with hh at most max_hours; returns seconds. */
static int rr_hms(rule_reader *r, int max_hours, int32_t *out)
{
    int sign = 1;
    int32_t parts[3] = {0, 0, 0};
    int c = rr_peek(r);
    if (c == '+' || c == '-') {
        sign = c == '-' ? -1 : 1;
        r->p++;
    }
    for (int i = 0; i < 3; i++) {
        int digits = 0;
        if (i > 0) {
            if (rr_peek(r) != ':')
                break;
            r->p++;
        }
        while (rr_is_digit(rr_peek(r))) {
            if (++digits > 3)
                return -1;
            parts[i] = parts[i] * 10 + (rr_peek(r) - '0');
            r->p++;
        }
        if (digits == 0)
            return -1;
    }
    if (parts[0] > max_hours || parts[1] > 59 || parts[2] > 59)
        return -1;
    *out = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return 0;
}

static int rr_number(rule_reader *r, int lo, int hi, int *out)
{
    int v = 0, digits = 0;
    while (rr_is_digit(rr_peek(r))) {
        if (++digits > 3)
            return -1;
        v = v * 10 + (rr_peek(r) - '0');
        r->p++;
    }
    if (digits == 0 || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int rr_date(rule_reader *r, tz_rule_date *d)
{
    int c = rr_peek(r);
    memset(d, 0, sizeof *d);
    if (c == 'J') {
        r->p++;
        d->kind = TZ_DATE_JULIAN1;
        if (rr_number(r, 1, 365, &d->n) < 0)
            return -1;
    } else if (c == 'M') {
        r->p++;
        d->kind = TZ_DATE_MWD;
        if (rr_number(r, 1, 12, &d->month) < 0 || rr_peek(r) != '.')
            return -1;
        r->p++;
        if (rr_number(r, 1, 5, &d->week) < 0 || rr_peek(r) != '.')
            return -1;
        r->p++;
        if (rr_number(r, 0, 6, &d->wday) < 0)
            return -1;
    } else {
        d->kind = TZ_DATE_JULIAN0;
        if (rr_number(r, 0, 365, &d->n) < 0)
            return -1;
    }
    d->time = 2 * 3600; /* POSIX default: 02:00:00 */
    if (rr_peek(r) == '/') {
        r->p++;
        if (rr_hms(r, TZ_MAX_RULE_HOURS, &d->time) < 0)
            return -1;
    }
    return 0;
}

/* Parse "std offset [dst [offset] [,start[/time],end[/time]]]". */
static int rule_parse(const char *s, size_t len, tz_rule *rule)
{
    rule_reader r = {s, s + len};
    int32_t off;
    memset(rule, 0, sizeof *rule);
    if (rr_name(&r) < 0 || rr_hms(&r, 24, &off) < 0)
        return -1;
    rule->std_off = -off; /* POSIX counts west positive */
    rule->dst_off = rule->std_off;
    if (rr_peek(&r) >= 0) {
        if (rr_name(&r) < 0)
            return -1;
        rule->has_dst = 1;
        rule->dst_off = rule->std_off + 3600;
        if (rr_peek(&r) >= 0 && rr_peek(&r) != ',') {
            if (rr_hms(&r, 24, &off) < 0)
                return -1;
            rule->dst_off = -off;
        }
        if (rr_peek(&r) == ',') {
            r.p++;
            if (rr_date(&r, &rule->start) < 0 || rr_peek(&r) != ',')
                return -1;
            r.p++;
            if (rr_date(&r, &rule->end) < 0)
                return -1;
        } else {
            /* No rule: the customary US default, M3.2.0,M11.1.0. */
            rule->start = (tz_rule_date){TZ_DATE_MWD, 0, 3, 2, 0, 2 * 3600};
            rule->end = (tz_rule_date){TZ_DATE_MWD, 0, 11, 1, 0, 2 * 3600};
        }
    }
    if (r.p != r.end)
        return -1;
    if (rule->std_off < -TZ_MAX_OFFSET || rule->std_off > TZ_MAX_OFFSET ||
        rule->dst_off < -TZ_MAX_OFFSET || rule->dst_off > TZ_MAX_OFFSET)
        return -1;
    rule->present = 1;
    return 0;
}

/* Local seconds at which a rule date falls in `year`. */
static int64_t rule_date_local(const tz_rule_date *d, int64_t year)
{
    int64_t jan1 = tz_days_from_civil(year, 1, 1);
    int64_t day;
    switch (d->kind) {
    case TZ_DATE_JULIAN1: /* 1..365, February 29 is never counted */
        day = jan1 + d->n - 1 + (tz_is_leap(year) && d->n >= 60);
        break;
    case TZ_DATE_JULIAN0:
        day = jan1 + d->n;
        break;
    case TZ_DATE_MWD:
    default: {
        int64_t first = tz_days_from_civil(year, d->month, 1);
        int dom = 1 + (d->wday - tz_weekday(first) + 7) % 7 + (d->week - 1) * 7;
        if (dom > tz_days_in_month(year, d->month))
            dom -= 7; /* week 5 means "the last" */
        day = first + dom - 1;
        break;
    }
    }
    return day * 86400 + d->time;
}

typedef struct rule_event {
    int64_t at;
    int to_dst;
} rule_event;

static void rule_span(const tz_rule *rule, int64_t t, tz_span *s)
{
    rule_event ev[6];
    int64_t year;
    int month, day, n = 0, last = -1;

    if (!rule->has_dst) {
        *s = (tz_span){INT64_MIN, INT64_MAX, rule->std_off, rule->std_off, 0};
        return;
    }
    tz_civil_from_days(floor_div(t + rule->std_off, 86400), &year, &month, &day);
    for (int64_t y = year - 1; y <= year + 1; y++) {
        ev[n++] = (rule_event){rule_date_local(&rule->start, y) - rule->std_off, 1};
        ev[n++] = (rule_event){rule_date_local(&rule->end, y) - rule->dst_off, 0};
    }
    /* Sort by instant; on a tie the end of DST goes first, so "DST all year" rules stay DST. */
    for (int i = 1; i < n; i++) {
        rule_event e = ev[i];
        int j = i - 1;
        while (j >= 0 && (ev[j].at > e.at || (ev[j].at == e.at && ev[j].to_dst > e.to_dst))) {
            ev[j + 1] = ev[j];
            j--;
        }
        ev[j + 1] = e;
    }
    for (int i = 0; i < n; i++)
        if (ev[i].at <= t)
            last = i;
    if (last < 0) {
        int dst = !ev[0].to_dst;
        int32_t off = dst ? rule->dst_off : rule->std_off;
        *s = (tz_span){INT64_MIN, ev[0].at, off, off, dst};
        return;
    }
    {
        int dst = ev[last].to_dst;
        int prev_dst = last > 0 ? ev[last - 1].to_dst : !dst;
        s->start = ev[last].at;
        s->end = last + 1 < n ? ev[last + 1].at : INT64_MAX;
        s->offset = dst ? rule->dst_off : rule->std_off;
        s->prev_offset = prev_dst ? rule->dst_off : rule->std_off;
        s->is_dst = dst;
    }
}

/* ---- TZif files -------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static int64_t be64(const unsigned char *p)
{
    uint64_t v = (uint64_t)be32(p) << 32 | be32(p + 4);
    return (int64_t)v; /* two's complement on every platform we build for */
}

typedef struct tzif_header {
    int version; /* 0 for version 1, else '2', '3', ... */
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
} tzif_header;

#define TZIF_HEADER_LEN 44

static int tzif_header_read(const unsigned char *p, size_t len, tzif_header *h)
{
    if (len < TZIF_HEADER_LEN || memcmp(p, "TZif", 4) != 0)
        return -1;
    h->version = p[4];
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    if (h->typecnt == 0 || h->typecnt > TZ_MAX_TYPES || h->timecnt > TZ_MAX_TIMES ||
        h->leapcnt > TZ_MAX_TIMES || h->charcnt > 65536 ||
        (h->isutcnt != 0 && h->isutcnt != h->typecnt) ||
        (h->isstdcnt != 0 && h->isstdcnt != h->typecnt))
        return -1;
    return 0;
}

/* Length of the data block after a header; time_size is 4 (v1) or 8 (v2+). */
static size_t tzif_block_len(const tzif_header *h, size_t time_size)
{
    return (size_t)h->timecnt * time_size + h->timecnt + (size_t)h->typecnt * 6 + h->charcnt +
           (size_t)h->leapcnt * (time_size + 4) + h->isstdcnt + h->isutcnt;
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

/* Fill z's tables from one data block. */
static int tzif_block_read(tz_zone *z, const tzif_header *h, const unsigned char *p,
                           size_t time_size)
{
    const unsigned char *idx = p + (size_t)h->timecnt * time_size;
    const unsigned char *tt = idx + h->timecnt;

    z->ntimes = h->timecnt;
    z->ntypes = h->typecnt;
    z->times = calloc(h->timecnt ? h->timecnt : 1, sizeof *z->times);
    z->types = calloc(h->timecnt ? h->timecnt : 1, sizeof *z->types);
    z->ttinfo = calloc(h->typecnt, sizeof *z->ttinfo);
    if (!z->times || !z->types || !z->ttinfo)
        return -ENOMEM;
    for (size_t i = 0; i < h->typecnt; i++) {
        int32_t off = (int32_t)be32(tt + i * 6);
        if (off < -TZ_MAX_OFFSET || off > TZ_MAX_OFFSET || tt[i * 6 + 4] > 1)
            return -EINVAL;
        z->ttinfo[i].utoff = off;
        z->ttinfo[i].isdst = tt[i * 6 + 4];
    }
    for (size_t i = 0; i < h->timecnt; i++) {
        int64_t t = time_size == 8 ? be64(p + i * 8) : (int64_t)(int32_t)be32(p + i * 4);
        if (i > 0 && t <= z->times[i - 1])
            return -EINVAL;
        if (idx[i] >= h->typecnt)
            return -EINVAL;
        z->times[i] = t;
        z->types[i] = idx[i];
    }
    return 0;
}

static tz_zone *zone_new(const char *name)
{
    tz_zone *z = calloc(1, sizeof *z);
    size_t n = strlen(name) + 1;
    if (!z)
        return NULL;
    z->name = malloc(n);
    if (!z->name) {
        free(z);
        return NULL;
    }
    memcpy(z->name, name, n);
    return z;
}

void tz_free(tz_zone *z)
{
    if (!z)
        return;
    free(z->name);
    free(z->dir);
    free(z->times);
    free(z->types);
    free(z->ttinfo);
    free(z);
}

const char *tz_name(const tz_zone *z)
{
    return z->name;
}

int tz_parse(const char *name, const unsigned char *data, size_t len, tz_zone **out, char *err,
             size_t errlen)
{
    tzif_header h;
    size_t time_size = 4, block;
    const unsigned char *p = data;
    tz_zone *z;
    int rc;

    *out = NULL;
    if (tzif_header_read(p, len, &h) < 0) {
        set_err(err, errlen, "%s: not a valid TZif file", name);
        return -EINVAL;
    }
    block = tzif_block_len(&h, 4);
    if (block > len - TZIF_HEADER_LEN) {
        set_err(err, errlen, "%s: truncated TZif file", name);
        return -EINVAL;
    }
    if (h.version >= '2') { /* skip the 32-bit data; use the 64-bit section and the footer */
        p += TZIF_HEADER_LEN + block;
        len -= TZIF_HEADER_LEN + block;
        if (tzif_header_read(p, len, &h) < 0) {
            set_err(err, errlen, "%s: bad second TZif header", name);
            return -EINVAL;
        }
        time_size = 8;
        block = tzif_block_len(&h, 8);
        if (block > len - TZIF_HEADER_LEN) {
            set_err(err, errlen, "%s: truncated TZif file", name);
            return -EINVAL;
        }
    }
    z = zone_new(name);
    if (!z) {
        set_err(err, errlen, "%s: out of memory", name);
        return -ENOMEM;
    }
    rc = tzif_block_read(z, &h, p + TZIF_HEADER_LEN, time_size);
    if (rc < 0) {
        set_err(err, errlen, rc == -ENOMEM ? "%s: out of memory" : "%s: corrupt TZif data", name);
        tz_free(z);
        return rc;
    }
    if (time_size == 8) { /* footer: "\n" TZ-string "\n" */
        const unsigned char *f = p + TZIF_HEADER_LEN + block;
        size_t flen = len - TZIF_HEADER_LEN - block;
        const unsigned char *nl = flen > 1 ? memchr(f + 1, '\n', flen - 1) : NULL;
        if (flen < 2 || f[0] != '\n' || !nl) { /* required from version 2 on */
            set_err(err, errlen, "%s: bad TZif footer", name);
            tz_free(z);
            return -EINVAL;
        }
        if (nl && nl > f + 1 &&
            rule_parse((const char *)f + 1, (size_t)(nl - f - 1), &z->rule) < 0) {
            set_err(err, errlen, "%s: unsupported TZ rule in footer", name);
            tz_free(z);
            return -EINVAL;
        }
    }
    *out = z;
    return 0;
}

/* A zone with one time type, UTC, and no transitions. */
static tz_zone *zone_utc(const char *name)
{
    tz_zone *z = zone_new(name);
    if (!z)
        return NULL;
    z->ttinfo = calloc(1, sizeof *z->ttinfo);
    if (!z->ttinfo) {
        tz_free(z);
        return NULL;
    }
    z->ntypes = 1;
    return z;
}

/* UTC under any of its usual names, for systems without zoneinfo files. */
static int is_utc_name(const char *name)
{
    static const char *const names[] = {"UTC",       "Etc/UTC",      "UCT", "Etc/UCT",
                                        "Zulu",      "Etc/Zulu",     "GMT", "Etc/GMT",
                                        "Universal", "Etc/Universal"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return 1;
    return 0;
}

static int name_is_safe(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || name[0] == '/' || strstr(name, "..") != NULL)
        return 0;
    for (const char *c = name; *c; c++)
        if (!(rr_is_alpha((unsigned char)*c) || rr_is_digit((unsigned char)*c) || *c == '/' ||
              *c == '_' || *c == '-' || *c == '+' || *c == '.'))
            return 0;
    return 1;
}

/* Read a whole (small) file. Returns 0, -ENOENT when it cannot be opened, -EIO when it cannot
 * be read (a directory, say) or is implausibly large, -ENOMEM. */
static int read_file(const char *path, unsigned char **data, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n = 0;
    int rc = 0;

    if (!f)
        return -ENOENT;
    for (;;) {
        if (n == cap) {
            unsigned char *bigger;
            if (cap >= TZ_MAX_FILE) {
                rc = -EIO;
                break;
            }
            cap = cap ? cap * 2 : 16384;
            bigger = realloc(buf, cap);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            buf = bigger;
        }
        n += fread(buf + n, 1, cap - n, f);
        if (ferror(f)) {
            rc = -EIO;
            break;
        }
        if (feof(f))
            break;
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

int tz_load(const char *name, tz_zone **out, char *err, size_t errlen)
{
    const char *dir = getenv("TZDIR");
    char path[4096];
    unsigned char *data = NULL;
    size_t len = 0;
    int rc, n;

    *out = NULL;
    if (!name || !name_is_safe(name)) {
        set_err(err, errlen, "'%s' is not a valid time zone name", name ? name : "");
        return -EINVAL;
    }
    if (!dir || !*dir)
        dir = TZ_DEFAULT_DIR;
    n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= sizeof path) {
        set_err(err, errlen, "time zone path too long: %s/%s", dir, name);
        return -EINVAL;
    }
    rc = read_file(path, &data, &len);
    if (rc < 0) {
        if (rc != -ENOMEM && is_utc_name(name)) { /* works without zoneinfo */
            *out = zone_utc(name);
            if (*out)
                return 0;
            rc = -ENOMEM;
        }
        if (rc == -ENOENT)
            set_err(err, errlen, "unknown time zone '%s' (no file %s)", name, path);
        else if (rc == -ENOMEM)
            set_err(err, errlen, "%s: out of memory", name);
        else
            set_err(err, errlen, "unknown time zone '%s' (cannot read %s)", name, path);
        return rc == -ENOMEM ? -ENOMEM : -ENOENT;
    }
    rc = tz_parse(name, data, len, out, err, errlen);
    free(data);
    return rc;
}

/* ---- shared zones ------------------------------------------------------------------------ */

/* Every cron trigger of a file usually reads its schedule in one or two zones: 10,000 triggers
 * share one copy of each, not 10,000. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static tz_zone *shared_zones;

static const char *zone_dir(void)
{
    const char *dir = getenv("TZDIR");
    return dir && *dir ? dir : TZ_DEFAULT_DIR;
}

int tz_acquire(const char *name, tz_zone **out, char *err, size_t errlen)
{
    const char *dir = zone_dir();
    *out = NULL;
    pthread_mutex_lock(&shared_lock);
    for (tz_zone *z = shared_zones; z && name; z = z->next_shared) {
        if (strcmp(z->name, name) == 0 && strcmp(z->dir, dir) == 0) {
            z->refs++;
            *out = z;
            pthread_mutex_unlock(&shared_lock);
            return 0;
        }
    }
    int rc = tz_load(name, out, err, errlen);
    if (rc == 0) {
        size_t n = strlen(dir) + 1;
        if (!((*out)->dir = malloc(n))) {
            tz_free(*out);
            *out = NULL;
            set_err(err, errlen, "%s: out of memory", name);
            rc = -ENOMEM;
        } else {
            memcpy((*out)->dir, dir, n);
            (*out)->refs = 1;
            (*out)->next_shared = shared_zones;
            shared_zones = *out;
        }
    }
    pthread_mutex_unlock(&shared_lock);
    return rc;
}

void tz_release(tz_zone *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&shared_lock);
    int last = --z->refs == 0;
    if (last) {
        tz_zone **link = &shared_zones;
        while (*link != z)
            link = &(*link)->next_shared;
        *link = z->next_shared;
    }
    pthread_mutex_unlock(&shared_lock);
    if (last)
        tz_free(z);
}

/* ---- queries ----------------------------------------------------------------------------- */

/* Index of the last transition at or before t; -1 when t is before the first. */
static ptrdiff_t transition_index(const tz_zone *z, int64_t t)
{
    size_t lo = 0, hi = z->ntimes; /* first index with times[i] > t is in [lo, hi] */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (z->times[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

void tz_span_at(const tz_zone *z, int64_t t, tz_span *s)
{
    const tz_ttinfo *ti;
    ptrdiff_t i;

    t = clamp_time(t);
    if (z->ntimes == 0) {
        if (z->rule.present) {
            rule_span(&z->rule, t, s);
        } else {
            ti = &z->ttinfo[0];
            *s = (tz_span){INT64_MIN, INT64_MAX, ti->utoff, ti->utoff, ti->isdst};
        }
        return;
    }
    i = transition_index(z, t);
    if (i < 0) { /* before the first transition: time type 0 (RFC 8536 3.2) */
        ti = &z->ttinfo[0];
        *s = (tz_span){INT64_MIN, z->times[0], ti->utoff, ti->utoff, ti->isdst};
        return;
    }
    if ((size_t)i == z->ntimes - 1 && z->rule.present) { /* after the table: the footer rule */
        rule_span(&z->rule, t, s);
        if (s->start < z->times[i]) {
            s->start = z->times[i];
            s->prev_offset = z->ttinfo[i > 0 ? z->types[i - 1] : 0].utoff;
        }
        return;
    }
    ti = &z->ttinfo[z->types[i]];
    s->start = z->times[i];
    s->end = (size_t)i + 1 < z->ntimes ? z->times[i + 1] : INT64_MAX;
    s->offset = ti->utoff;
    s->prev_offset = z->ttinfo[i > 0 ? z->types[i - 1] : 0].utoff;
    s->is_dst = ti->isdst;
}

int32_t tz_offset_at(const tz_zone *z, int64_t t)
{
    tz_span s;
    tz_span_at(z, t, &s);
    return s.offset;
}

void tz_utc_to_local(const tz_zone *z, int64_t t, tz_civil *local, int32_t *offset)
{
    int32_t off;
    t = clamp_time(t);
    off = tz_offset_at(z, t);
    tz_seconds_to_civil(t + off, local);
    if (offset)
        *offset = off;
}

int tz_local_to_utc(const tz_zone *z, int64_t local, tz_resolution *res)
{
    tz_span spans[TZ_MAX_SPANS];
    int nspans = 0, nsol = 0;
    int64_t t;

    local = clamp_time(local);
    memset(res, 0, sizeof *res);
    /* Every UTC instant that could show this wall time lies within TZ_WINDOW of it. */
    t = local - TZ_WINDOW;
    for (;;) {
        if (nspans == TZ_MAX_SPANS)
            return -ERANGE;
        tz_span_at(z, t, &spans[nspans]);
        if (spans[nspans].end == INT64_MAX || spans[nspans].end > local + TZ_WINDOW) {
            nspans++;
            break;
        }
        t = spans[nspans++].end;
    }
    for (int i = 0; i < nspans; i++) {
        int64_t u = local - spans[i].offset;
        if (u < spans[i].start || u >= spans[i].end)
            continue;
        if (nsol == 0) {
            res->first = u;
            res->first_offset = spans[i].offset;
        } else if (nsol == 1) {
            res->second = u;
            res->second_offset = spans[i].offset;
        }
        nsol++;
    }
    if (nsol == 1) {
        res->kind = TZ_LOCAL_UNIQUE;
        return 0;
    }
    if (nsol >= 2) {
        res->kind = TZ_LOCAL_OVERLAP;
        return 0;
    }
    for (int i = 0; i < nspans; i++) { /* a gap: which transition skipped this wall time? */
        const tz_span *s = &spans[i];
        if (s->start == INT64_MIN)
            continue;
        if (s->start + s->prev_offset <= local && local < s->start + s->offset) {
            res->kind = TZ_LOCAL_GAP;
            res->first = s->start;
            res->first_offset = s->offset;
            return 0;
        }
    }
    return -ERANGE;
}
