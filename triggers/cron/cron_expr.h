/*
 * cron_expr.h - cron schedules: parsing, and the next firing time in a time zone.
 *
 * Grammar: five fields "minute hour day-of-month month day-of-week", or six with seconds first;
 * each field is a comma list of `*`, `N` or `A-B`, each optionally followed by a step `/S`
 * (`N/S` runs from N to the end of the range); months and weekdays also by name (JAN-DEC,
 * SUN-SAT, any case); weekday 0 and 7 are Sunday. Macros: @hourly @daily @midnight @weekly
 * @monthly @yearly @annually.
 *
 * Day rule (as in Vixie cron): a day matches when its month matches and, if both day-of-month
 * and day-of-week are restricted (the field does not start with `*`), EITHER of them matches;
 * otherwise both must match.
 *
 * DST rule: a wall time that falls in a spring-forward gap fires once, at the instant the gap
 * ends (several gap times collapse into that one firing). In a fall-back overlap a schedule whose
 * hour field starts with `*` fires by real time in both passes; any other schedule fires only in
 * the first pass.
 */
#ifndef SB_CRON_EXPR_H
#define SB_CRON_EXPR_H

#include <stddef.h>
#include <stdint.h>

#include "tz.h"

typedef struct cron_expr {
    uint64_t seconds;  /* bit s set: second s (0..59) matches; only bit 0 for 5-field schedules */
    uint64_t minutes;  /* bits 0..59 */
    uint32_t hours;    /* bits 0..23 */
    uint32_t days;     /* bits 1..31 */
    uint32_t months;   /* bits 1..12 */
    uint32_t weekdays; /* bits 0..6, Sunday = 0 */
    int has_seconds;   /* six fields */
    int dom_star;      /* day-of-month field starts with `*` */
    int dow_star;      /* day-of-week field starts with `*` */
    int hour_star;     /* hour field starts with `*` (fires in both passes of a DST overlap) */
} cron_expr;

/* Parse text into e. Returns 0, or -EINVAL with one line in err such as
 * "field 2 (hour): 25 is out of range 0-23" (no "schedule: " prefix; the caller adds it). */
int cron_expr_parse(cron_expr *e, const char *text, char *err, size_t errlen);

/* The first firing strictly after `after` (Unix seconds) in zone z: writes the instant and the
 * UTC offset in effect then. Returns 0, or -ENOENT when nothing fires within the search horizon
 * (about 50 years) or before the end of year 9999. */
int cron_expr_next(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *when,
                   int32_t *utc_offset);

/* Up to n firings strictly after `after`, in order; returns how many it wrote. */
int cron_expr_next_n(const cron_expr *e, const tz_zone *z, int64_t after, int64_t *times,
                     int32_t *utc_offsets, int n);

#endif
