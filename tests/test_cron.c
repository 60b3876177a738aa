/*
 * test_cron.c - tests for the cron trigger: schedule parsing and its error messages, next-fire
 * times (month ends, leap years, weekday names, the day-of-month/day-of-week OR rule, seconds,
 * DST gaps and overlaps in several zones, the TZif footer rule far in the future), the time zone
 * reader, and - when build/plugins/cron.so exists - the plugin itself against a fake host.
 *
 * Expected times were worked out by hand and checked against tzdata with other tools
 * (`TZ=... date -d @EPOCH`, `zdump -v`, Python's zoneinfo), not copied from this code's output.
 * Times are written as ISO 8601 with the UTC offset the firing happens at.
 */
#define _DEFAULT_SOURCE /* timegm, setenv, nanosleep */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scalebus/plugin.h>

#include "cron_expr.h"
#include "fake_host.h"
#include "tz.h"

/* ---- helpers --------------------------------------------------------------------------- */

/* "2026-03-29T03:00:00+02:00" or "...Z" -> Unix seconds (independent of tz.c: uses timegm). */
static int64_t iso_to_unix(const char *s)
{
    int y, mo, d, h, mi, sec, oh = 0, om = 0, n;
    char sign = 'Z';
    struct tm tm;
    n = sscanf(s, "%d-%d-%dT%d:%d:%d%c%d:%d", &y, &mo, &d, &h, &mi, &sec, &sign, &oh, &om);
    ck_assert_msg(n == 7 || n == 9, "bad ISO time in test table: %s", s);
    memset(&tm, 0, sizeof tm);
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    return (int64_t)timegm(&tm) - (sign == '-' ? -1 : 1) * (sign == 'Z' ? 0 : oh * 3600 + om * 60);
}

static void unix_to_iso(int64_t t, int32_t off, char *buf, size_t len)
{
    time_t local = (time_t)(t + off);
    struct tm tm;
    size_t n;
    int a = off < 0 ? -off : off;
    gmtime_r(&local, &tm);
    n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, "%c%02d:%02d", off < 0 ? '-' : '+', a / 3600, a % 3600 / 60);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static tz_zone *load_zone(const char *name)
{
    char err[256];
    tz_zone *z = NULL;
    int rc = tz_load(name, &z, err, sizeof err);
    ck_assert_msg(rc == 0, "tz_load(%s): %s", name, err);
    return z;
}

/* ---- next-fire table ---------------------------------------------------------------------- */

#define MAX_EXPECT 6

typedef struct next_case {
    const char *schedule;
    const char *zone;
    const char *after;
    const char *expect[MAX_EXPECT]; /* consecutive firings, NULL-terminated */
} next_case;

/* clang-format off */
static const next_case next_cases[] = {
    /* Month ends: the 31st skips 30-day months and February. */
    {"0 0 31 * *", "UTC", "2026-04-01T00:00:00Z",
     {"2026-05-31T00:00:00+00:00", "2026-07-31T00:00:00+00:00", "2026-08-31T00:00:00+00:00",
      "2026-10-31T00:00:00+00:00", "2026-12-31T00:00:00+00:00", "2027-01-31T00:00:00+00:00"}},
    {"0 6 30 * *", "UTC", "2027-01-30T06:00:00Z",
     {"2027-03-30T06:00:00+00:00", "2027-04-30T06:00:00+00:00"}},
    {"59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", {"2027-12-31T23:59:00+00:00"}},
    /* Leap years: Feb 29 waits for the next leap year; 2000 is one, 2100 is not. */
    {"0 12 29 2 *", "UTC", "2024-03-01T00:00:00Z",
     {"2028-02-29T12:00:00+00:00", "2032-02-29T12:00:00+00:00"}},
    {"0 12 29 2 *", "UTC", "2096-03-01T00:00:00Z",
     {"2104-02-29T12:00:00+00:00", "2108-02-29T12:00:00+00:00"}},
    {"0 0 29 2 *", "UTC", "1999-06-01T00:00:00Z",
     {"2000-02-29T00:00:00+00:00", "2004-02-29T00:00:00+00:00"}},
    /* Macros. */
    {"@yearly", "UTC", "2025-06-15T10:00:00Z",
     {"2026-01-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"}},
    {"@annually", "UTC", "2026-01-01T00:00:00Z", {"2027-01-01T00:00:00+00:00"}},
    {"@monthly", "UTC", "2026-01-31T00:00:00Z",
     {"2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"}},
    {"@weekly", "UTC", "2026-01-01T00:00:00Z", /* a Thursday */
     {"2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"}},
    {"@daily", "UTC", "2026-02-28T00:00:00Z",
     {"2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00"}},
    {"@midnight", "UTC", "2028-02-28T12:00:00Z",
     {"2028-02-29T00:00:00+00:00", "2028-03-01T00:00:00+00:00"}},
    {"@HOURLY", "UTC", "2026-12-31T23:30:00Z",
     {"2027-01-01T00:00:00+00:00", "2027-01-01T01:00:00+00:00"}},
    /* Weekday and month names, any case; 0 and 7 are Sunday. 2026-01-02 is a Friday. */
    {"0 9 * * MON-FRI", "UTC", "2026-01-02T09:00:00Z",
     {"2026-01-05T09:00:00+00:00", "2026-01-06T09:00:00+00:00", "2026-01-07T09:00:00+00:00",
      "2026-01-08T09:00:00+00:00", "2026-01-09T09:00:00+00:00", "2026-01-12T09:00:00+00:00"}},
    {"30 18 * * sat,Sun", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-03T18:30:00+00:00", "2026-01-04T18:30:00+00:00", "2026-01-10T18:30:00+00:00"}},
    {"0 0 * * 7", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"}},
    {"0 0 * * 5-7", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
      "2026-01-09T00:00:00+00:00"}},
    {"0 0 * * FRI-SUN", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00",
      "2026-01-09T00:00:00+00:00"}},
    {"0 0 1 jan,JUL *", "UTC", "2026-02-01T00:00:00Z",
     {"2026-07-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"}},
    {"0 0 1 FEB-JUN/2 *", "UTC", "2026-01-01T00:00:00Z",
     {"2026-02-01T00:00:00+00:00", "2026-04-01T00:00:00+00:00", "2026-06-01T00:00:00+00:00",
      "2027-02-01T00:00:00+00:00"}},
    /* Both day fields restricted: either one matches (Jan 13 2026 is a Tuesday). */
    {"0 0 13 * FRI", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-02T00:00:00+00:00", "2026-01-09T00:00:00+00:00", "2026-01-13T00:00:00+00:00",
      "2026-01-16T00:00:00+00:00", "2026-01-23T00:00:00+00:00", "2026-01-30T00:00:00+00:00"}},
    {"0 0 31 2 MON", "UTC", "2026-02-01T00:00:00Z", /* OR: Mondays of February */
     {"2026-02-02T00:00:00+00:00", "2026-02-09T00:00:00+00:00", "2026-02-16T00:00:00+00:00",
      "2026-02-23T00:00:00+00:00", "2027-02-01T00:00:00+00:00"}},
    /* Day-of-month starting with '*' counts as unrestricted: both must match (Vixie cron).
     * Days 1, 11, 21, 31 that are Mondays. */
    {"0 0 */10 * MON", "UTC", "2026-05-01T00:00:00Z",
     {"2026-05-11T00:00:00+00:00", "2026-06-01T00:00:00+00:00", "2026-08-31T00:00:00+00:00",
      "2026-09-21T00:00:00+00:00"}},
    /* Lists, ranges and steps. */
    {"5,35 */6 * * *", "UTC", "2026-01-01T05:00:00Z",
     {"2026-01-01T06:05:00+00:00", "2026-01-01T06:35:00+00:00", "2026-01-01T12:05:00+00:00",
      "2026-01-01T12:35:00+00:00", "2026-01-01T18:05:00+00:00", "2026-01-01T18:35:00+00:00"}},
    {"10-50/20 9-10 * * *", "UTC", "2026-01-01T00:00:00Z",
     {"2026-01-01T09:10:00+00:00", "2026-01-01T09:30:00+00:00", "2026-01-01T09:50:00+00:00",
      "2026-01-01T10:10:00+00:00", "2026-01-01T10:30:00+00:00", "2026-01-01T10:50:00+00:00"}},
    {"45/10 0 * * *", "UTC", "2026-01-01T00:00:00Z", /* N/S runs to the end of the range */
     {"2026-01-01T00:45:00+00:00", "2026-01-01T00:55:00+00:00", "2026-01-02T00:45:00+00:00"}},
    {"*/5 * * * *", "UTC", "2026-01-01T23:58:00Z",
     {"2026-01-02T00:00:00+00:00", "2026-01-02T00:05:00+00:00"}},
    /* Six fields: seconds first. */
    {"*/15 * * * * *", "UTC", "2026-01-01T12:00:07Z",
     {"2026-01-01T12:00:15+00:00", "2026-01-01T12:00:30+00:00", "2026-01-01T12:00:45+00:00",
      "2026-01-01T12:01:00+00:00"}},
    {"30 0 12 * * *", "UTC", "2026-01-01T12:00:30Z",
     {"2026-01-02T12:00:30+00:00", "2026-01-03T12:00:30+00:00"}},
    {"10-50/20 * * * * *", "UTC", "2026-12-31T23:59:40Z",
     {"2026-12-31T23:59:50+00:00", "2027-01-01T00:00:10+00:00", "2027-01-01T00:00:30+00:00"}},
    {"0 0 0 29 2 *", "UTC", "2027-01-01T00:00:00Z", {"2028-02-29T00:00:00+00:00"}},

    /* Europe/Berlin spring forward, 2026-03-29 02:00 CET -> 03:00 CEST: gap times fire once at
     * the end of the gap, several of them collapse into that one firing. */
    {"30 2 * * *", "Europe/Berlin", "2026-03-28T03:00:00+01:00",
     {"2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"}},
    {"0,15,30,45 2 * * *", "Europe/Berlin", "2026-03-29T01:50:00+01:00",
     {"2026-03-29T03:00:00+02:00", "2026-03-30T02:00:00+02:00"}},
    {"*/20 * * * *", "Europe/Berlin", "2026-03-29T01:30:00+01:00",
     {"2026-03-29T01:40:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:20:00+02:00"}},
    {"*/5 * * * * *", "Europe/Berlin", "2026-03-29T01:59:50+01:00",
     {"2026-03-29T01:59:55+01:00", "2026-03-29T03:00:00+02:00", "2026-03-29T03:00:05+02:00"}},
    /* Europe/Berlin fall back, 2026-10-25 03:00 CEST -> 02:00 CET. `*` hours: both passes. */
    {"*/30 * * * *", "Europe/Berlin", "2026-10-25T01:45:00+02:00",
     {"2026-10-25T02:00:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-25T02:00:00+01:00",
      "2026-10-25T02:30:00+01:00", "2026-10-25T03:00:00+01:00"}},
    {"*/5 * * * * *", "Europe/Berlin", "2026-10-25T02:59:50+02:00",
     {"2026-10-25T02:59:55+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T02:00:05+01:00"}},
    {"@hourly", "Europe/Berlin", "2026-10-25T01:30:00+02:00",
     {"2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"}},
    /* Pinned hours: first pass only. */
    {"30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00+02:00",
     {"2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"}},
    {"45 2 * * *", "Europe/Berlin", "2026-10-25T02:30:00+01:00", /* after: in the second pass */
     {"2026-10-26T02:45:00+01:00"}},
    {"*/15 2 * * *", "Europe/Berlin", "2026-10-25T02:50:00+02:00",
     {"2026-10-26T02:00:00+01:00", "2026-10-26T02:15:00+01:00"}},
    {"0 2-3 * * *", "Europe/Berlin", "2026-10-25T01:00:00+02:00",
     {"2026-10-25T02:00:00+02:00", "2026-10-25T03:00:00+01:00", "2026-10-26T02:00:00+01:00"}},

    /* America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST. */
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00",
     {"2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00"}},
    {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00-04:00",
     {"2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"}},
    {"0,30 * * * *", "America/New_York", "2026-11-01T00:45:00-04:00",
     {"2026-11-01T01:00:00-04:00", "2026-11-01T01:30:00-04:00", "2026-11-01T01:00:00-05:00",
      "2026-11-01T01:30:00-05:00", "2026-11-01T02:00:00-05:00"}},

    /* Southern hemisphere. Australia/Sydney: 2026-04-05 03:00 AEDT -> 02:00 AEST, 2026-10-04
     * 02:00 AEST -> 03:00 AEDT. */
    {"30 2 * * *", "Australia/Sydney", "2026-10-03T12:00:00+10:00",
     {"2026-10-04T03:00:00+11:00", "2026-10-05T02:30:00+11:00"}},
    {"30 2 * * *", "Australia/Sydney", "2026-04-04T12:00:00+11:00",
     {"2026-04-05T02:30:00+11:00", "2026-04-06T02:30:00+10:00"}},
    {"0 * * * *", "Australia/Sydney", "2026-04-05T01:30:00+11:00",
     {"2026-04-05T02:00:00+11:00", "2026-04-05T02:00:00+10:00", "2026-04-05T03:00:00+10:00"}},
    /* America/Sao_Paulo history: DST began at midnight (2018-11-04 00:00 -> 01:00), ended at
     * midnight (2019-02-17 00:00 -> 2019-02-16 23:00), and was abolished after that. */
    {"0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00",
     {"2018-11-04T01:00:00-02:00", "2018-11-05T00:00:00-02:00"}},
    {"0 23 * * *", "America/Sao_Paulo", "2019-02-16T12:00:00-02:00",
     {"2019-02-16T23:00:00-02:00", "2019-02-17T23:00:00-03:00"}},
    {"30 * * * *", "America/Sao_Paulo", "2019-02-16T22:45:00-02:00",
     {"2019-02-16T23:30:00-02:00", "2019-02-16T23:30:00-03:00", "2019-02-17T00:30:00-03:00"}},
    {"0 0 * * *", "America/Sao_Paulo", "2019-11-02T12:00:00-03:00",
     {"2019-11-03T00:00:00-03:00", "2019-11-04T00:00:00-03:00"}},
    /* Half-hour zones: Asia/Kolkata (+05:30), Australia/Lord_Howe (30-minute DST shift:
     * 2026-10-04 02:00 -> 02:30, 2026-04-05 02:00 -> 01:30). */
    {"0 9 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
     {"2026-01-01T09:00:00+05:30", "2026-01-02T09:00:00+05:30"}},
    {"0 0 * * *", "Asia/Kolkata", "2026-06-30T20:00:00Z",
     {"2026-07-02T00:00:00+05:30", "2026-07-03T00:00:00+05:30"}},
    {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30",
     {"2026-10-04T02:30:00+11:00", "2026-10-05T02:15:00+11:00"}},
    {"45 1 * * *", "Australia/Lord_Howe", "2026-04-04T12:00:00+11:00",
     {"2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"}},
    /* Europe/Dublin: "winter time" is the DST of its rule (IST-1GMT0); offsets still agree. */
    {"30 1 * * *", "Europe/Dublin", "2026-03-28T12:00:00+00:00",
     {"2026-03-29T02:00:00+01:00", "2026-03-30T01:30:00+01:00"}},

    /* Far future: beyond the file's table, the footer rule CET-1CEST,M3.5.0,M10.5.0/3 applies
     * (2100-03-28 and 2100-10-31 are the last Sundays). */
    {"30 2 * * *", "Europe/Berlin", "2100-03-27T12:00:00+01:00",
     {"2100-03-28T03:00:00+02:00", "2100-03-29T02:30:00+02:00"}},
    {"30 2 * * *", "Europe/Berlin", "2100-10-30T12:00:00+02:00",
     {"2100-10-31T02:30:00+02:00", "2100-11-01T02:30:00+01:00"}},
    {"0 12 * * *", "Europe/Berlin", "2100-07-01T00:00:00Z", {"2100-07-01T12:00:00+02:00"}},
    {"30 2 * * *", "America/New_York", "2200-03-07T12:00:00-05:00", /* 2200-03-09: 2nd Sunday */
     {"2200-03-08T02:30:00-05:00", "2200-03-09T03:00:00-04:00", "2200-03-10T02:30:00-04:00"}},
    {"0 0 1 1 *", "Etc/UTC", "9998-06-01T00:00:00Z", {"9999-01-01T00:00:00+00:00"}},
};
/* clang-format on */

START_TEST(test_next_table)
{
    const next_case *c = &next_cases[_i];
    cron_expr e;
    char err[256], got[64];
    tz_zone *z;
    int64_t after, times[MAX_EXPECT];
    int32_t offs[MAX_EXPECT];
    int want = 0, n;

    ck_assert_msg(cron_expr_parse(&e, c->schedule, err, sizeof err) == 0, "%s: %s", c->schedule,
                  err);
    z = load_zone(c->zone);
    after = iso_to_unix(c->after);
    while (want < MAX_EXPECT && c->expect[want])
        want++;
    n = cron_expr_next_n(&e, z, after, times, offs, want);
    ck_assert_msg(n == want, "'%s' %s after %s: %d firings, wanted %d", c->schedule, c->zone,
                  c->after, n, want);
    for (int i = 0; i < n; i++) {
        unix_to_iso(times[i], offs[i], got, sizeof got);
        ck_assert_msg(strcmp(got, c->expect[i]) == 0,
                      "'%s' %s after %s: firing %d is %s, wanted %s", c->schedule, c->zone,
                      c->after, i + 1, got, c->expect[i]);
        ck_assert_int_eq(times[i], iso_to_unix(c->expect[i]));
    }
    tz_free(z);
}
END_TEST

/* Nothing fires after the end of year 9999; a call there reports it instead of looping. */
START_TEST(test_next_end_of_range)
{
    cron_expr e;
    char err[128];
    int64_t t = 0;
    int32_t off = 0;
    tz_zone *z = load_zone("UTC");
    ck_assert_int_eq(cron_expr_parse(&e, "0 0 1 1 *", err, sizeof err), 0);
    ck_assert_int_eq(cron_expr_next(&e, z, iso_to_unix("9999-01-01T00:00:00Z"), &t, &off), -ENOENT);
    ck_assert_int_eq(cron_expr_next_n(&e, z, iso_to_unix("9998-06-01T00:00:00Z"), &t, &off, 1), 1);
    tz_free(z);
}
END_TEST

/* Through the 2026 Berlin fall-back hour, every firing of an every-5-seconds schedule comes
 * exactly 5 s of real time after the previous one: no pause, no burst. */
START_TEST(test_next_seconds_real_time)
{
    cron_expr e;
    char err[128];
    tz_zone *z = load_zone("Europe/Berlin");
    int64_t t = iso_to_unix("2026-10-25T01:00:00+02:00"), prev = t;
    int32_t off;
    ck_assert_int_eq(cron_expr_parse(&e, "*/5 * * * * *", err, sizeof err), 0);
    for (int i = 0; i < 3 * 3600 / 5; i++) {
        ck_assert_int_eq(cron_expr_next(&e, z, prev, &t, &off), 0);
        ck_assert_int_eq(t - prev, 5);
        prev = t;
    }
    tz_free(z);
}
END_TEST

/* ---- parse errors -------------------------------------------------------------------------- */

typedef struct error_case {
    const char *schedule;
    const char *message;
} error_case;

/* clang-format off */
static const error_case error_cases[] = {
    {"", "empty schedule"},
    {"   \t ", "empty schedule"},
    {"* * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 (seconds "
                "first), or a macro such as @daily; got 4"},
    {"* * * * * * *", "expected 5 fields (minute hour day-of-month month day-of-week) or 6 "
                      "(seconds first), or a macro such as @daily; got 7"},
    {"60 * * * *", "field 1 (minute): 60 is out of range 0-59"},
    {"0 25 * * *", "field 2 (hour): 25 is out of range 0-23"},
    {"0 0 0 * *", "field 3 (day-of-month): 0 is out of range 1-31"},
    {"0 0 32 * *", "field 3 (day-of-month): 32 is out of range 1-31"},
    {"0 0 * 13 *", "field 4 (month): 13 is out of range 1-12"},
    {"0 0 * 0 *", "field 4 (month): 0 is out of range 1-12"},
    {"0 0 * * 8", "field 5 (day-of-week): 8 is out of range 0-7"},
    {"0 0 * * 1-9", "field 5 (day-of-week): 9 is out of range 0-7"},
    {"99999999999999999999 * * * *", "field 1 (minute): 99999999999999999999 is out of range 0-59"},
    {"0 0 * JANUARY *", "field 4 (month): 'JANUARY' is not a number or month name (JAN-DEC)"},
    {"0 0 * * FUN", "field 5 (day-of-week): 'FUN' is not a number or weekday name (SUN-SAT)"},
    {"0 0 MON * *", "field 3 (day-of-month): 'MON' is not a number"},
    {"x * * * *", "field 1 (minute): 'x' is not a number"},
    {"0 0 L * *", "field 3 (day-of-month): 'L' is not a number"},
    {"*/0 * * * *", "field 1 (minute): step must be at least 1"},
    {"*/x * * * *", "field 1 (minute): step 'x' is not a number"},
    {"*/ * * * *", "field 1 (minute): missing step after '/'"},
    {"5-1 * * * *", "field 1 (minute): range 5-1 is reversed (the start must not exceed the end)"},
    {"0 0 * * FRI-MON", "field 5 (day-of-week): range 5-1 is reversed (the start must not exceed "
                        "the end)"},
    {"1,,2 * * * *", "field 1 (minute): empty list item"},
    {"1, * * * *", "field 1 (minute): empty list item"},
    {"1- * * * *", "field 1 (minute): missing value"},
    {"*-5 * * * *", "field 1 (minute): unexpected '-' after '*'"},
    {"1-2-3 * * * *", "field 1 (minute): unexpected '-'"},
    {"1/2/3 * * * *", "field 1 (minute): step '2/3' is not a number"},
    {"60 * * * * *", "field 1 (second): 60 is out of range 0-59"},
    {"0 60 * * * *", "field 2 (minute): 60 is out of range 0-59"},
    {"0 0 24 * * *", "field 3 (hour): 24 is out of range 0-23"},
    {"0 0 0 * * SUNDAY", "field 6 (day-of-week): 'SUNDAY' is not a number or weekday name "
                         "(SUN-SAT)"},
    {"@fortnightly", "unknown macro '@fortnightly' (expected @hourly, @daily, @midnight, "
                     "@weekly, @monthly, @yearly or @annually)"},
    {"@reboot", "unknown macro '@reboot' (expected @hourly, @daily, @midnight, @weekly, "
                "@monthly, @yearly or @annually)"},
    {"@daily 5", "unknown macro '@daily 5' (expected @hourly, @daily, @midnight, @weekly, "
                 "@monthly, @yearly or @annually)"},
    {"0 0 31 2 *", "never fires: none of the selected months has any of the selected days of "
                   "the month"},
    {"0 0 30,31 2 *", "never fires: none of the selected months has any of the selected days "
                      "of the month"},
    {"0 0 31 APR,JUN,SEP,NOV *", "never fires: none of the selected months has any of the "
                                 "selected days of the month"},
};
/* clang-format on */

START_TEST(test_parse_errors)
{
    const error_case *c = &error_cases[_i];
    cron_expr e;
    char err[512] = "";
    ck_assert_int_eq(cron_expr_parse(&e, c->schedule, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, c->message);
}
END_TEST

START_TEST(test_parse_error_small_buffer)
{
    cron_expr e;
    char err[8];
    memset(err, 'x', sizeof err);
    ck_assert_int_eq(cron_expr_parse(&e, "0 25 * * *", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "field 2");
    ck_assert_int_eq(cron_expr_parse(&e, "0 25 * * *", NULL, 0), -EINVAL);
}
END_TEST

/* The bit sets and flags behind a few accepted forms. */
START_TEST(test_parse_sets)
{
    cron_expr e;
    char err[256];
    ck_assert_int_eq(cron_expr_parse(&e, "1-10/3 */6 1,15 */4 MON-SUN", err, sizeof err), 0);
    ck_assert_uint_eq(e.minutes, (1u << 1) | (1u << 4) | (1u << 7) | (1u << 10));
    ck_assert_uint_eq(e.hours, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    ck_assert_uint_eq(e.days, (1u << 1) | (1u << 15));
    ck_assert_uint_eq(e.months, (1u << 1) | (1u << 5) | (1u << 9));
    ck_assert_uint_eq(e.weekdays, 0x7f);
    ck_assert_uint_eq(e.seconds, 1);
    ck_assert_int_eq(e.has_seconds, 0);
    ck_assert_int_eq(e.hour_star, 1);
    ck_assert_int_eq(e.dom_star, 0);
    ck_assert_int_eq(e.dow_star, 0);

    ck_assert_int_eq(cron_expr_parse(&e, "  5/20 0 * * 7  ", err, sizeof err), 0);
    ck_assert_uint_eq(e.minutes, (1u << 5) | (1u << 25) | ((uint64_t)1 << 45));
    ck_assert_uint_eq(e.weekdays, 1); /* 7 is Sunday */
    ck_assert_int_eq(e.hour_star, 0);
    ck_assert_int_eq(e.dom_star, 1);

    ck_assert_int_eq(cron_expr_parse(&e, "*/20 0 0 * * *", err, sizeof err), 0);
    ck_assert_int_eq(e.has_seconds, 1);
    ck_assert_uint_eq(e.seconds, (1u << 0) | (1u << 20) | ((uint64_t)1 << 40));
    ck_assert_uint_eq(e.hours, 1);

    ck_assert_int_eq(cron_expr_parse(&e, "*/100 * * * *", err, sizeof err), 0);
    ck_assert_uint_eq(e.minutes, 1); /* a step past the range keeps only its start */

    ck_assert_int_eq(cron_expr_parse(&e, "@Weekly", err, sizeof err), 0);
    ck_assert_uint_eq(e.weekdays, 1);
    ck_assert_int_eq(e.hour_star, 0);
    ck_assert_int_eq(cron_expr_parse(&e, "\t@hourly\n", err, sizeof err), 0);
    ck_assert_int_eq(e.hour_star, 1);
}
END_TEST

/* ---- time zones ---------------------------------------------------------------------------- */

START_TEST(test_tz_utc_to_local)
{
    tz_zone *z = load_zone("Europe/Berlin");
    tz_civil c;
    int32_t off;
    /* 2026-03-29T01:00:00Z is the first second of CEST. */
    tz_utc_to_local(z, 1774745999, &c, &off);
    ck_assert_int_eq(off, 3600);
    ck_assert(c.year == 2026 && c.month == 3 && c.day == 29 && c.hour == 1 && c.min == 59 &&
              c.sec == 59 && c.wday == 0);
    tz_utc_to_local(z, 1774746000, &c, &off);
    ck_assert_int_eq(off, 7200);
    ck_assert(c.hour == 3 && c.min == 0 && c.sec == 0);
    ck_assert_str_eq(tz_name(z), "Europe/Berlin");
    tz_free(z);

    z = load_zone("Asia/Kolkata");
    ck_assert_int_eq(tz_offset_at(z, iso_to_unix("2026-01-01T00:00:00Z")), 19800);
    tz_free(z);
    z = load_zone("America/Sao_Paulo"); /* slim footer "<-03>3" after the last transition */
    ck_assert_int_eq(tz_offset_at(z, iso_to_unix("2030-01-15T00:00:00Z")), -10800);
    ck_assert_int_eq(tz_offset_at(z, iso_to_unix("2019-01-15T00:00:00Z")), -7200);
    tz_free(z);
}
END_TEST

/* Triggers share one copy per zone: the same name gives the same zone until its last holder lets
 * go; another name, or another $TZDIR, gives another one. */
START_TEST(test_tz_shared)
{
    char err[256];
    tz_zone *a, *b, *c, *d;
    ck_assert_int_eq(tz_acquire("Europe/Berlin", &a, err, sizeof err), 0);
    ck_assert_int_eq(tz_acquire("Europe/Berlin", &b, err, sizeof err), 0);
    ck_assert_int_eq(tz_acquire("Asia/Kolkata", &c, err, sizeof err), 0);
    ck_assert_ptr_eq(a, b);
    ck_assert_ptr_ne(a, c);
    ck_assert_int_eq(tz_offset_at(c, iso_to_unix("2026-01-01T00:00:00Z")), 19800);
    tz_release(a);
    ck_assert_int_eq(tz_offset_at(b, iso_to_unix("2026-01-01T00:00:00Z")), 3600); /* still held */
    ck_assert_int_eq(tz_acquire("Nowhere/Atlantis", &d, err, sizeof err), -ENOENT);
    ck_assert_ptr_null(d);
    setenv("TZDIR", "/nonexistent-zoneinfo", 1);
    ck_assert_int_eq(tz_acquire("UTC", &d, err, sizeof err), 0); /* built in */
    ck_assert_int_eq(tz_acquire("Europe/Berlin", &a, err, sizeof err), -ENOENT);
    unsetenv("TZDIR");
    tz_release(d);
    tz_release(b);
    tz_release(c);
}
END_TEST

START_TEST(test_tz_local_to_utc)
{
    tz_zone *z = load_zone("Europe/Berlin");
    tz_resolution r;
    tz_civil c = {2026, 3, 29, 2, 30, 0, 0};
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_GAP);
    ck_assert_int_eq(r.first, iso_to_unix("2026-03-29T03:00:00+02:00"));
    ck_assert_int_eq(r.first_offset, 7200);

    c = (tz_civil){2026, 10, 25, 2, 30, 0, 0};
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_OVERLAP);
    ck_assert_int_eq(r.first, iso_to_unix("2026-10-25T02:30:00+02:00"));
    ck_assert_int_eq(r.first_offset, 7200);
    ck_assert_int_eq(r.second, iso_to_unix("2026-10-25T02:30:00+01:00"));
    ck_assert_int_eq(r.second_offset, 3600);

    c = (tz_civil){2026, 7, 1, 12, 0, 0, 0};
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_UNIQUE);
    ck_assert_int_eq(r.first, iso_to_unix("2026-07-01T12:00:00+02:00"));

    c = (tz_civil){2100, 3, 28, 2, 0, 0, 0}; /* footer rule: gap starts exactly here */
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_GAP);
    ck_assert_int_eq(r.first, iso_to_unix("2100-03-28T03:00:00+02:00"));
    c = (tz_civil){2100, 3, 28, 1, 59, 59, 0};
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_UNIQUE);
    tz_free(z);

    z = load_zone("America/Sao_Paulo"); /* a gap at midnight */
    c = (tz_civil){2018, 11, 4, 0, 0, 0, 0};
    ck_assert_int_eq(tz_local_to_utc(z, tz_civil_to_seconds(&c), &r), 0);
    ck_assert_int_eq(r.kind, TZ_LOCAL_GAP);
    ck_assert_int_eq(r.first, iso_to_unix("2018-11-04T01:00:00-02:00"));
    tz_free(z);
}
END_TEST

/* Calendar arithmetic against the C library's timegm/gmtime_r over 800 years, day by day in
 * steps of 7 and 1 (covering every weekday and all the leap rules). */
START_TEST(test_tz_calendar)
{
    for (int64_t d = tz_days_from_civil(1700, 1, 1); d < tz_days_from_civil(2500, 1, 1); d += 3) {
        time_t t = (time_t)(d * 86400);
        struct tm tm;
        int64_t y;
        int m, day;
        gmtime_r(&t, &tm);
        tz_civil_from_days(d, &y, &m, &day);
        ck_assert(y == tm.tm_year + 1900 && m == tm.tm_mon + 1 && day == tm.tm_mday);
        ck_assert_int_eq(tz_weekday(d), tm.tm_wday);
        ck_assert_int_eq(tz_days_from_civil(y, m, day), d);
    }
    ck_assert_int_eq(tz_days_in_month(2100, 2), 28);
    ck_assert_int_eq(tz_days_in_month(2000, 2), 29);
    ck_assert_int_eq(tz_days_in_month(2024, 2), 29);
    ck_assert_int_eq(tz_days_in_month(2026, 4), 30);
}
END_TEST

START_TEST(test_tz_bad_names)
{
    static const char *const bad[] = {
        "../etc/passwd", "/etc/passwd", "Europe/../../etc/passwd", "", "Europe/Ber lin", "..",
        "Europe/.."};
    char err[256];
    tz_zone *z = (tz_zone *)&err; /* must be reset to NULL */
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char want[128];
        ck_assert_int_eq(tz_load(bad[i], &z, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(z);
        snprintf(want, sizeof want, "'%s' is not a valid time zone name", bad[i]);
        ck_assert_str_eq(err, want);
    }
    ck_assert_int_eq(tz_load("Mars/Olympus_Mons", &z, err, sizeof err), -ENOENT);
    ck_assert_ptr_null(z);
    ck_assert_msg(starts_with(err, "unknown time zone 'Mars/Olympus_Mons' (no file "), "%s", err);
    ck_assert_int_eq(tz_load("Europe", &z, err, sizeof err), -ENOENT); /* a directory */
    ck_assert_ptr_null(z);
}
END_TEST

/* UTC works without any zoneinfo files; TZDIR is honoured. */
START_TEST(test_tz_builtin_utc_and_tzdir)
{
    char err[256];
    tz_zone *z = NULL;
    const char *old = getenv("TZDIR");
    char *saved = old ? strdup(old) : NULL;
    ck_assert_int_eq(setenv("TZDIR", "/nonexistent-zoneinfo", 1), 0);
    ck_assert_int_eq(tz_load("UTC", &z, err, sizeof err), 0);
    ck_assert_int_eq(tz_offset_at(z, 1774746000), 0);
    tz_free(z);
    ck_assert_int_eq(tz_load("Etc/UTC", &z, err, sizeof err), 0);
    ck_assert_int_eq(tz_offset_at(z, -1000000000), 0);
    tz_free(z);
    ck_assert_int_eq(tz_load("Europe/Berlin", &z, err, sizeof err), -ENOENT);
    ck_assert_str_eq(
        err, "unknown time zone 'Europe/Berlin' (no file /nonexistent-zoneinfo/Europe/Berlin)");
    ck_assert_int_eq(setenv("TZDIR", "/usr/share/zoneinfo/Europe", 1), 0);
    ck_assert_int_eq(tz_load("Berlin", &z, err, sizeof err), 0);
    ck_assert_int_eq(tz_offset_at(z, 1774746000), 7200);
    tz_free(z);
    if (saved) {
        setenv("TZDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TZDIR");
    }
}
END_TEST

/* A TZif v2 image with no transitions, one type and the given footer: like a "slim" file. */
static size_t make_tzif(const char *footer, unsigned char *buf, size_t cap)
{
    size_t n = 0, flen = strlen(footer);
    ck_assert(cap >= 2 * (44 + 6 + 4) + flen + 2);
    for (int part = 0; part < 2; part++) {
        static const unsigned char counts[24] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                                 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4};
        memcpy(buf + n, "TZif2", 5);
        memset(buf + n + 5, 0, 15);
        memcpy(buf + n + 20, counts, 24);
        n += 44;
        memset(buf + n, 0, 6); /* type 0: UTC+0, not DST, abbreviation at 0 */
        n += 6;
        memcpy(buf + n, "XXX", 4);
        n += 4;
    }
    buf[n++] = '\n';
    memcpy(buf + n, footer, flen);
    n += flen;
    buf[n++] = '\n';
    return n;
}

/* The footer rule evaluator must reproduce zic's own tables: for each zone, the transitions
 * of a footer-only zone built from its rule equal the real file's, over years the rule held. */
typedef struct footer_case {
    const char *zone;
    const char *footer;
    const char *from, *to;
} footer_case;

/* clang-format off */
static const footer_case footer_cases[] = {
    {"Europe/Berlin", "CET-1CEST,M3.5.0,M10.5.0/3", "1996-11-01T00:00:00Z", "2037-12-31T00:00:00Z"},
    {"America/New_York", "EST5EDT,M3.2.0,M11.1.0", "2007-12-01T00:00:00Z", "2037-12-31T00:00:00Z"},
    {"Australia/Sydney", "AEST-10AEDT,M10.1.0,M4.1.0/3", "2008-06-01T00:00:00Z",
     "2037-12-31T00:00:00Z"},
    {"Europe/Dublin", "IST-1GMT0,M10.5.0,M3.5.0/1", "1996-11-01T00:00:00Z", "2037-12-31T00:00:00Z"},
    {"Asia/Jerusalem", "IST-2IDT,M3.4.4/26,M10.5.0", "2013-11-01T00:00:00Z",
     "2037-12-31T00:00:00Z"},
    {"Australia/Lord_Howe", "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0", "2008-06-01T00:00:00Z",
     "2037-12-31T00:00:00Z"},
    {"America/Nuuk", "<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2023-11-01T00:00:00Z",
     "2037-12-31T00:00:00Z"},
    {"Asia/Kolkata", "IST-5:30", "1946-01-01T00:00:00Z", "2037-12-31T00:00:00Z"},
};
/* clang-format on */

START_TEST(test_tz_footer_matches_table)
{
    const footer_case *c = &footer_cases[_i];
    unsigned char buf[256];
    size_t len = make_tzif(c->footer, buf, sizeof buf);
    char err[256];
    tz_zone *synth = NULL, *real = load_zone(c->zone);
    int64_t t = iso_to_unix(c->from), end = iso_to_unix(c->to);
    int spans = 0;

    ck_assert_msg(tz_parse("synthetic", buf, len, &synth, err, sizeof err) == 0, "%s", err);
    while (t < end) {
        tz_span a, b;
        tz_span_at(real, t, &a);
        tz_span_at(synth, t, &b);
        ck_assert_msg(a.offset == b.offset, "%s at %lld: offset %d vs rule %d", c->zone,
                      (long long)t, a.offset, b.offset);
        if (a.end >= end)
            break;
        ck_assert_msg(a.end == b.end, "%s: transition at %lld vs rule %lld", c->zone,
                      (long long)a.end, (long long)b.end);
        t = a.end;
        spans++;
    }
    ck_assert(spans > 0 || strcmp(c->zone, "Asia/Kolkata") == 0);
    tz_free(synth);
    tz_free(real);
}
END_TEST

/* Rule strings the reader must handle, probed at instants checked with `zdump -v`. */
START_TEST(test_tz_footer_forms)
{
    static const struct {
        const char *footer;
        const char *at;
        int32_t offset;
    } cases[] = {
        {"<+0530>-5:30", "2050-01-01T00:00:00Z", 19800},
        {"EST5EDT", "2050-07-01T00:00:00Z", -14400}, /* no rule: the US default */
        {"EST5EDT", "2050-01-01T00:00:00Z", -18000},
        {"EST5EDT4,0/0,J365/25", "2050-01-01T00:00:00Z", -14400}, /* DST all year */
        {"EST5EDT4,0/0,J365/25", "2050-07-01T00:00:00Z", -14400},
        {"XXX3YYY,J60/2,J300/2", "2051-03-01T04:59:59Z", -10800}, /* J60 = March 1 always */
        {"XXX3YYY,J60/2,J300/2", "2051-03-01T05:00:00Z", -7200},
        {"XXX3YYY,J60/2,J300/2", "2052-03-01T05:00:00Z", -7200},
        {"XXX3YYY,J60/2,J300/2", "2052-02-29T12:00:00Z", -10800},
        {"XXX3YYY,59/2,300/2", "2052-02-29T05:00:00Z", -7200}, /* zero-based: day 59 = Feb 29 */
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2050-03-27T01:00:00Z", -3600},
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2050-03-27T00:59:59Z", -7200},
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2050-10-30T00:59:59Z", -3600},
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2050-10-30T01:00:00Z", -7200},
        {"UTC0", "2050-01-01T00:00:00Z", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char buf[256];
        size_t len = make_tzif(cases[i].footer, buf, sizeof buf);
        char err[256];
        tz_zone *z = NULL;
        ck_assert_msg(tz_parse("synthetic", buf, len, &z, err, sizeof err) == 0, "%s: %s",
                      cases[i].footer, err);
        ck_assert_msg(tz_offset_at(z, iso_to_unix(cases[i].at)) == cases[i].offset, "%s at %s: %d",
                      cases[i].footer, cases[i].at, tz_offset_at(z, iso_to_unix(cases[i].at)));
        tz_free(z);
    }
}
END_TEST

START_TEST(test_tz_bad_data)
{
    static const char *const bad_footers[] = {"CET",
                                              "CET-1CEST,M3.5.0",
                                              "CET-1CEST,M13.5.0,M10.5.0",
                                              "CET-1CEST,M3.6.0,M10.5.0",
                                              "CE-1",
                                              "CET-1x",
                                              "CET-25",
                                              "CET-1CEST,J0,J365",
                                              "<CET-1"};
    unsigned char buf[256];
    char err[256];
    tz_zone *z = NULL;
    FILE *f;
    unsigned char *data;
    long size;

    for (size_t i = 0; i < sizeof bad_footers / sizeof bad_footers[0]; i++) {
        size_t len = make_tzif(bad_footers[i], buf, sizeof buf);
        ck_assert_msg(tz_parse("synthetic", buf, len, &z, err, sizeof err) == -EINVAL, "%s",
                      bad_footers[i]);
        ck_assert_ptr_null(z);
        ck_assert_str_eq(err, "synthetic: unsupported TZ rule in footer");
    }
    ck_assert_int_eq(tz_parse("x", (const unsigned char *)"TZjf", 4, &z, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "x: not a valid TZif file");

    /* Every truncation of a real file is rejected cleanly (or, at full length, accepted). */
    f = fopen("/usr/share/zoneinfo/Europe/Berlin", "rb");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    size = ftell(f);
    ck_assert(size > 0);
    rewind(f);
    data = malloc((size_t)size);
    ck_assert_ptr_nonnull(data);
    ck_assert_uint_eq(fread(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    for (long len = 0; len < size; len++) {
        ck_assert_msg(tz_parse("Europe/Berlin", data, (size_t)len, &z, err, sizeof err) < 0,
                      "accepted a file cut at %ld bytes", len);
        ck_assert_ptr_null(z);
    }
    ck_assert_int_eq(tz_parse("Europe/Berlin", data, (size_t)size, &z, err, sizeof err), 0);
    tz_free(z);
    /* Flipping bytes must never crash or read out of bounds. */
    for (long i = 0; i < size; i++) {
        unsigned char saved = data[i];
        data[i] ^= 0xa5;
        if (tz_parse("Europe/Berlin", data, (size_t)size, &z, err, sizeof err) == 0) {
            (void)tz_offset_at(z, 4000000000LL);
            tz_free(z);
        }
        data[i] = saved;
    }
    free(data);
}
END_TEST

/* ---- the plugin, loaded like the daemon loads it, against the shared fake host ----------------
 */

static fake_host *fh;
static void *plugin_handle;
static const sb_plugin_descriptor *plugin;

/* Returns 0 when cron.so is not built (the core-only build): the plugin tests then pass
 * vacuously, saying so on stderr. */
static int plugin_load(void)
{
    plugin = test_plugin_load_if_built("cron", SB_KIND_TRIGGER, &plugin_handle);
    if (!plugin)
        return 0;
    fh = fake_host_new("nightly");
    return 1;
}

static void plugin_unload(void)
{
    test_plugin_unload(plugin_handle);
    plugin_handle = NULL;
    plugin = NULL;
    fake_host_free(fh);
    fh = NULL;
}

/* values[] in options-table order: schedule, timezone, value. */
static void make_values(sb_value *v, const char *schedule, const char *zone, const char *value)
{
    memset(v, 0, 3 * sizeof *v);
    v[0].is_set = schedule != NULL;
    v[0].str = schedule;
    v[1].is_set = 1;
    v[1].str = zone ? zone : "UTC";
    v[2].is_set = 1;
    v[2].str = value ? value : "1";
    v[2].number = strtod(v[2].str, NULL);
}

START_TEST(test_plugin_descriptor)
{
    const sb_option_spec *o;
    if (!plugin_load())
        return;
    ck_assert_uint_eq(plugin->abi_version, SB_ABI_VERSION);
    ck_assert_uint_eq(plugin->size, sizeof(sb_plugin_descriptor));
    ck_assert_str_eq(plugin->type, "cron");
    ck_assert_int_eq(plugin->kind, SB_KIND_TRIGGER);
    ck_assert_str_eq(plugin->version, "1.0.0");
    ck_assert_ptr_nonnull(plugin->description);
    ck_assert_ptr_null(strchr(plugin->description, '\n'));
    ck_assert(plugin->create && plugin->start && plugin->stop && plugin->destroy &&
              plugin->on_event && plugin->next_fire_times);
    o = plugin->options;
    ck_assert_str_eq(o[0].name, "schedule");
    ck_assert_int_eq(o[0].type, SB_OPT_STRING);
    ck_assert_int_eq(o[0].required, 1);
    ck_assert_ptr_null(o[0].default_value);
    ck_assert_str_eq(o[1].name, "timezone");
    ck_assert_int_eq(o[1].type, SB_OPT_STRING);
    ck_assert_str_eq(o[1].default_value, "UTC");
    ck_assert_str_eq(o[2].name, "value");
    ck_assert_int_eq(o[2].type, SB_OPT_NUMBER);
    ck_assert_str_eq(o[2].default_value, "1");
    ck_assert_ptr_null(o[3].name);
    for (int i = 0; i < 3; i++)
        ck_assert(o[i].help && o[i].help[0]);
    plugin_unload();
}
END_TEST

START_TEST(test_plugin_create_errors)
{
    sb_value v[3];
    char err[256];
    void *state = (void *)&err;
    if (!plugin_load())
        return;
    make_values(v, "0 25 * * *", NULL, NULL);
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "schedule: field 2 (hour): 25 is out of range 0-23");
    ck_assert_ptr_null(state);
    make_values(v, "@daily", "Mars/Base", NULL);
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(starts_with(err, "timezone: unknown time zone 'Mars/Base' (no file "), "%s", err);
    make_values(v, "@daily", "../../etc/passwd", NULL);
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "timezone: '../../etc/passwd' is not a valid time zone name");
    make_values(v, NULL, NULL, NULL);
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "schedule: required");
    ck_assert_int_eq(fh->timers_live, 0);
    plugin_unload();
}
END_TEST

START_TEST(test_plugin_lifecycle)
{
    sb_value v[3];
    char err[256];
    void *state = NULL;
    sb_timer *armed;
    sb_event run;
    int64_t times[3];
    int32_t offs[3];
    char got[64];

    if (!plugin_load())
        return;
    make_values(v, "@yearly", "Europe/Berlin", "3.5");
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     0);
    ck_assert_ptr_nonnull(state);

    /* `scalebus check --next`: strictly after, with offsets. */
    ck_assert_int_eq(
        plugin->next_fire_times(state, iso_to_unix("2026-01-01T00:00:00+01:00"), times, offs, 3),
        3);
    unix_to_iso(times[0], offs[0], got, sizeof got);
    ck_assert_str_eq(got, "2027-01-01T00:00:00+01:00");
    unix_to_iso(times[2], offs[2], got, sizeof got);
    ck_assert_str_eq(got, "2029-01-01T00:00:00+01:00");
    ck_assert_int_eq(plugin->next_fire_times(state, 0, times, offs, 0), 0);

    /* start arms one one-shot timer, at most a year (and a day) away. */
    ck_assert_int_eq(plugin->start(state), 0);
    ck_assert_int_eq(fh->timers_live, 1);
    armed = fh->last_timer;
    ck_assert_ptr_nonnull(armed);
    ck_assert_uint_eq(armed->repeat_ms, 0); /* one-shot: each firing arms the next */
    ck_assert(armed->timeout_ms > 0 && armed->timeout_ms <= 367ull * 86400 * 1000);

    /* A timer that fires long before the due wall time re-arms instead of publishing. */
    armed->cb(armed->arg);
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_int_eq(fh->timers_live, 1);
    armed = fh->last_timer;
    ck_assert_ptr_nonnull(armed);
    ck_assert_uint_eq(armed->repeat_ms, 0);

    /* "run" publishes once at once, and leaves the timer alone. */
    memset(&run, 0, sizeof run);
    run.topic = SB_TOPIC_RUN;
    plugin->on_event(state, &run);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(fake_host_last_publish(fh)->topic, SB_TOPIC_READING);
    ck_assert_uint_eq(fake_host_last_publish(fh)->flags, SB_EVENT_COALESCE);
    ck_assert(fake_host_last_publish(fh)->value == 3.5);
    ck_assert_uint_eq(fake_host_last_publish(fh)->nlabels, 1);
    ck_assert_str_eq(fake_host_last_publish(fh)->labels[0].key, "schedule");
    ck_assert_str_eq(fake_host_last_publish(fh)->labels[0].value, "@yearly");
    ck_assert_int_eq(fh->timers_live, 1);
    ck_assert_ptr_eq(fh->last_timer, armed);
    run.topic = SB_TOPIC_DESIRED; /* anything else is ignored */
    plugin->on_event(state, &run);
    ck_assert_uint_eq(fh->npub, 1);

    ck_assert_int_eq(plugin->stop(state), 0);
    ck_assert_int_eq(fh->timers_live, 0);
    plugin->destroy(state);
    plugin_unload();
}
END_TEST

/* An every-second schedule: once the due wall time has passed, the timer publishes and
 * re-arms for the next second. */
START_TEST(test_plugin_fires)
{
    sb_value v[3];
    char err[256];
    void *state = NULL;
    sb_timer *armed;
    struct timespec nap;

    if (!plugin_load())
        return;
    make_values(v, "* * * * * *", NULL, NULL);
    ck_assert_int_eq(plugin->create(fake_host_instance(fh), &fh->host, v, &state, err, sizeof err),
                     0);
    ck_assert_int_eq(plugin->start(state), 0);
    armed = fh->last_timer;
    ck_assert_ptr_nonnull(armed);
    ck_assert_uint_eq(armed->repeat_ms, 0);
    ck_assert(armed->timeout_ms >= 1 && armed->timeout_ms <= 1000);
    nap.tv_sec = (time_t)((armed->timeout_ms + 20) / 1000);
    nap.tv_nsec = (long)((armed->timeout_ms + 20) % 1000) * 1000000L;
    nanosleep(&nap, NULL);
    armed->cb(armed->arg);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(fake_host_last_publish(fh)->topic, SB_TOPIC_READING);
    ck_assert(fake_host_last_publish(fh)->value == 1.0);
    ck_assert_str_eq(fake_published_label(fake_host_last_publish(fh), "schedule"), "* * * * * *");
    ck_assert_int_eq(fh->timers_live, 1);
    ck_assert_ptr_nonnull(fh->last_timer);
    ck_assert_uint_eq(fh->last_timer->repeat_ms, 0);
    ck_assert(fh->last_timer->timeout_ms <= 1000);
    ck_assert_int_eq(plugin->stop(state), 0);
    ck_assert_int_eq(fh->timers_live, 0);
    plugin->destroy(state);
    plugin_unload();
}
END_TEST

/* ---- suite ----------------------------------------------------------------------------------- */

static Suite *cron_suite(void)
{
    Suite *s = suite_create("cron");
    TCase *tc = tcase_create("next");
    tcase_add_loop_test(tc, test_next_table, 0, (int)(sizeof next_cases / sizeof next_cases[0]));
    tcase_add_test(tc, test_next_end_of_range);
    tcase_add_test(tc, test_next_seconds_real_time);
    suite_add_tcase(s, tc);

    tc = tcase_create("parse");
    tcase_add_loop_test(tc, test_parse_errors, 0,
                        (int)(sizeof error_cases / sizeof error_cases[0]));
    tcase_add_test(tc, test_parse_error_small_buffer);
    tcase_add_test(tc, test_parse_sets);
    suite_add_tcase(s, tc);

    tc = tcase_create("tz");
    tcase_set_timeout(tc, 120); /* the byte-flipping test is slow under valgrind */
    tcase_add_test(tc, test_tz_utc_to_local);
    tcase_add_test(tc, test_tz_local_to_utc);
    tcase_add_test(tc, test_tz_shared);
    tcase_add_test(tc, test_tz_calendar);
    tcase_add_test(tc, test_tz_bad_names);
    tcase_add_test(tc, test_tz_builtin_utc_and_tzdir);
    tcase_add_loop_test(tc, test_tz_footer_matches_table, 0,
                        (int)(sizeof footer_cases / sizeof footer_cases[0]));
    tcase_add_test(tc, test_tz_footer_forms);
    tcase_add_test(tc, test_tz_bad_data);
    suite_add_tcase(s, tc);

    tc = tcase_create("plugin");
    tcase_add_test(tc, test_plugin_descriptor);
    tcase_add_test(tc, test_plugin_create_errors);
    tcase_add_test(tc, test_plugin_lifecycle);
    tcase_add_test(tc, test_plugin_fires);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cron_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
