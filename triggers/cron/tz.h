/*
 * tz.h - IANA time zones for the cron trigger, without touching the process-wide TZ.
 *
 * A tz_zone is loaded once from a TZif file (/usr/share/zoneinfo/NAME, or $TZDIR/NAME) and is
 * read-only afterwards, so one zone may be shared by any number of threads (tz_acquire shares
 * one copy per name). It answers two
 * questions: what is the local wall time at a UTC instant, and which UTC instant(s) does a local
 * wall time name (one, none because it falls in a gap, or two because it falls in an overlap).
 *
 * Local wall times are handled as "local seconds": the seconds since 1970-01-01T00:00:00 of the
 * proleptic Gregorian calendar, read off the wall clock (so local = utc + utc_offset).
 */
#ifndef SB_CRON_TZ_H
#define SB_CRON_TZ_H

#include <stddef.h>
#include <stdint.h>

/* Instants handled by this module: years 0000..9999, with room to spare. Arguments outside are
 * clamped to this range. */
#define TZ_TIME_MIN (-62167219200LL - 2LL * 86400 * 366) /* a little before 0000-01-01 */
#define TZ_TIME_MAX (253402300799LL + 2LL * 86400 * 366) /* a little after 9999-12-31 */

typedef struct tz_zone tz_zone;

/* A broken-down civil date and time (proleptic Gregorian). */
typedef struct tz_civil {
    int64_t year;
    int month; /* 1..12 */
    int day;   /* 1..31 */
    int hour;  /* 0..23 */
    int min;   /* 0..59 */
    int sec;   /* 0..59 */
    int wday;  /* 0 = Sunday .. 6 = Saturday */
} tz_civil;

/* The stretch of UTC time around an instant during which the zone's offset does not change. */
typedef struct tz_span {
    int64_t start;       /* first second of the span (a transition), or INT64_MIN */
    int64_t end;         /* first second after the span (the next transition), or INT64_MAX */
    int32_t offset;      /* UTC offset in seconds during the span (east positive) */
    int32_t prev_offset; /* offset just before `start` (== offset when start is INT64_MIN) */
    int is_dst;
} tz_span;

typedef enum tz_local_kind {
    TZ_LOCAL_UNIQUE = 0, /* the wall time happens once: `first` */
    TZ_LOCAL_GAP,        /* skipped (spring forward): `first` is the instant the gap ends */
    TZ_LOCAL_OVERLAP     /* happens twice (fall back): `first` then `second` */
} tz_local_kind;

typedef struct tz_resolution {
    tz_local_kind kind;
    int64_t first;
    int32_t first_offset;
    int64_t second; /* OVERLAP only */
    int32_t second_offset;
} tz_resolution;

/* Load zone NAME ("Europe/Berlin", "UTC"). Names containing ".." or starting with '/' are
 * refused. "UTC" and "Etc/UTC" (and GMT spellings) work even without a zoneinfo file. Returns 0,
 * or -EINVAL/-ENOENT/-ENOMEM with one line in err. */
int tz_load(const char *name, tz_zone **out, char *err, size_t errlen);
/* Parse a TZif image already in memory (used by tz_load and by tests). `name` is copied. */
int tz_parse(const char *name, const unsigned char *data, size_t len, tz_zone **out, char *err,
             size_t errlen);
void tz_free(tz_zone *z);
const char *tz_name(const tz_zone *z);

/* A zone loaded once and shared by everyone who asks for the same name (with the same $TZDIR),
 * thread-safe: tz_acquire loads it on first use (errors as tz_load) and counts each holder;
 * tz_release lets go of it, and the last holder's release frees it (the next tz_acquire reads the
 * file again, so an updated zone is picked up once nothing holds the old one). Never tz_free a
 * zone from tz_acquire. */
int tz_acquire(const char *name, tz_zone **out, char *err, size_t errlen);
void tz_release(tz_zone *z);

/* The span of constant offset containing UTC instant t. */
void tz_span_at(const tz_zone *z, int64_t t, tz_span *span);
/* UTC offset (seconds, east positive) in effect at UTC instant t. */
int32_t tz_offset_at(const tz_zone *z, int64_t t);
/* Local wall time at UTC instant t, and the offset used. */
void tz_utc_to_local(const tz_zone *z, int64_t t, tz_civil *local, int32_t *offset);
/* Resolve local seconds to UTC instant(s), reporting gaps and overlaps. Returns 0, or -ERANGE
 * when the zone's data is too irregular around that time to answer. */
int tz_local_to_utc(const tz_zone *z, int64_t local_seconds, tz_resolution *res);

/* Calendar helpers (proleptic Gregorian; days counted from 1970-01-01). */
int64_t tz_days_from_civil(int64_t year, int month, int day);
void tz_civil_from_days(int64_t days, int64_t *year, int *month, int *day);
int tz_is_leap(int64_t year);
int tz_days_in_month(int64_t year, int month);
int tz_weekday(int64_t days); /* 0 = Sunday */
/* Local seconds <-> civil. */
int64_t tz_civil_to_seconds(const tz_civil *c);
void tz_seconds_to_civil(int64_t seconds, tz_civil *c);

#endif
