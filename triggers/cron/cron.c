/*
 * cron.c - the `cron` trigger plugin: publishes a reading each time a cron schedule fires.
 *
 * The schedule and time zone are parsed once in create() (cron_expr.c, tz.c); triggers in the same
 * zone share one copy of it. While started, the
 * instance keeps exactly one one-shot host timer, armed for the next firing; the delay is taken
 * from CLOCK_REALTIME, since cron times are wall-clock times while host timers run on the loop's
 * monotonic clock. When the timer fires early (timer granularity, or the wall clock was stepped
 * back) the instance re-arms for the remainder instead of firing. A "run" event fires at once
 * and leaves the schedule alone. Everything here runs on the loop thread.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scalebus/plugin.h>

#include "cron_expr.h"
#include "tz.h"

enum { OPT_SCHEDULE, OPT_TIMEZONE, OPT_VALUE };

static const sb_option_spec cron_options[] = {
    [OPT_SCHEDULE] = {"schedule", SB_OPT_STRING, NULL, 1,
                      "when to fire: 5 cron fields (min hour dom month dow), 6 with seconds "
                      "first, or @hourly @daily @weekly @monthly @yearly"},
    [OPT_TIMEZONE] = {"timezone", SB_OPT_STRING, "UTC", 0,
                      "IANA time zone the schedule is read in, e.g. Europe/Berlin"},
    [OPT_VALUE] = {"value", SB_OPT_NUMBER, "1", 0, "the number each firing carries"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct cron_state {
    sb_instance *inst;
    const sb_host *host;
    cron_expr expr;
    tz_zone *zone;        /* shared with every trigger in that zone (tz_acquire) */
    const char *schedule; /* the option's value (it lives until destroy): the `schedule` label */
    double value;
    sb_timer *timer; /* the pending one-shot timer, or NULL */
    int64_t due;     /* Unix seconds of the firing the timer waits for */
    int running;
} cron_state;

static void cron_destroy(void *state)
{
    cron_state *st = state;
    if (!st)
        return;
    if (st->timer)
        st->host->timer_free(st->timer);
    tz_release(st->zone);
    free(st);
}

static int cron_create(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                       char *err, size_t errlen)
{
    const sb_value *sched = &values[OPT_SCHEDULE];
    const sb_value *zone = &values[OPT_TIMEZONE];
    const sb_value *value = &values[OPT_VALUE];
    char msg[256];
    cron_state *st;
    int rc;

    *state = NULL;
    if (!sched->is_set || !sched->str) {
        snprintf(err, errlen, "schedule: required");
        return -EINVAL;
    }
    if (value->is_set && !isfinite(value->number)) {
        snprintf(err, errlen, "value: must be a finite number");
        return -EINVAL;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->inst = inst;
    st->host = host;
    st->value = value->is_set ? value->number : 1.0;
    rc = cron_expr_parse(&st->expr, sched->str, msg, sizeof msg);
    if (rc < 0) {
        snprintf(err, errlen, "schedule: %s", msg);
        cron_destroy(st);
        return rc;
    }
    rc = tz_acquire(zone->is_set && zone->str ? zone->str : "UTC", &st->zone, msg, sizeof msg);
    if (rc < 0) {
        snprintf(err, errlen, "timezone: %s", msg);
        cron_destroy(st);
        return rc == -ENOMEM ? rc : -EINVAL;
    }
    st->schedule = sched->str;
    *state = st;
    return 0;
}

/* Publish one reading. */
static void cron_fire(cron_state *st)
{
    sb_label label = {"schedule", st->schedule};
    sb_publish ev = {
        SB_PUBLISH_INIT,
        .topic = SB_TOPIC_READING,
        .flags = SB_EVENT_COALESCE,
        .value = st->value,
        .labels = &label,
        .nlabels = 1,
        .payload = NULL,
    };
    int rc = st->host->publish(st->inst, &ev);
    if (rc < 0)
        st->host->log(st->inst, SB_LOG_WARN, "could not publish a reading (error %d)", rc);
}

static void cron_on_timer(void *arg);

/* Arm the one-shot timer for the next firing after the current wall-clock second. */
static int cron_arm(cron_state *st)
{
    struct timespec now;
    int64_t when, diff;
    int32_t off;
    uint64_t delay_ms;
    tz_civil c;
    int changed;

    if (clock_gettime(CLOCK_REALTIME, &now) < 0)
        return -errno;
    if (cron_expr_next(&st->expr, st->zone, (int64_t)now.tv_sec, &when, &off) < 0) {
        st->host->log(st->inst, SB_LOG_WARN, "schedule '%s' has no further firings", st->schedule);
        return -ENOENT;
    }
    changed = when != st->due;
    st->due = when;
    /* Round up to whole milliseconds so the timer is not early by design. */
    diff = when - (int64_t)now.tv_sec;
    delay_ms = (uint64_t)diff * 1000u - (uint64_t)(now.tv_nsec / 1000000);
    st->timer = st->host->timer_new(st->inst, delay_ms, 0, cron_on_timer, st);
    if (!st->timer) {
        st->host->log(st->inst, SB_LOG_ERROR, "could not create a timer");
        return -ENOMEM;
    }
    if (!changed)
        return 0; /* re-armed for the same firing after an early wake-up */
    tz_seconds_to_civil(when + off, &c);
    st->host->log(st->inst, SB_LOG_DEBUG,
                  "next firing %04lld-%02d-%02dT%02d:%02d:%02d%c%02d:%02d (in %llu ms)",
                  (long long)c.year, c.month, c.day, c.hour, c.min, c.sec, off < 0 ? '-' : '+',
                  abs(off) / 3600, abs(off) % 3600 / 60, (unsigned long long)delay_ms);
    return 0;
}

static void cron_on_timer(void *arg)
{
    cron_state *st = arg;
    struct timespec now;

    st->host->timer_free(st->timer); /* one-shot: done with it */
    st->timer = NULL;
    if (!st->running)
        return;
    if (clock_gettime(CLOCK_REALTIME, &now) == 0 && (int64_t)now.tv_sec < st->due) {
        cron_arm(st); /* early: wait for the rest (recomputed, in case the clock went back) */
        return;
    }
    cron_fire(st);
    cron_arm(st); /* next firing strictly after now: missed ones are not replayed */
}

static int cron_start(void *state)
{
    cron_state *st = state;
    int rc;
    if (st->timer) {
        st->host->timer_free(st->timer);
        st->timer = NULL;
    }
    st->running = 1;
    rc = cron_arm(st);
    if (rc == -ENOENT)
        return 0; /* nothing left to fire; "run" events still work */
    if (rc < 0)
        st->running = 0;
    return rc;
}

static int cron_stop(void *state)
{
    cron_state *st = state;
    st->running = 0;
    if (st->timer) {
        st->host->timer_free(st->timer);
        st->timer = NULL;
    }
    return 0;
}

static void cron_on_event(void *state, const sb_event *ev)
{
    cron_state *st = state;
    if (ev && ev->topic && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        cron_fire(st); /* the timer and its due time are untouched */
}

static int cron_next_fire_times(void *state, int64_t after, int64_t *times, int32_t *utc_offsets,
                                int n)
{
    cron_state *st = state;
    if (!st || !times || !utc_offsets || n <= 0)
        return 0;
    return cron_expr_next_n(&st->expr, st->zone, after, times, utc_offsets, n);
}

static const sb_plugin_descriptor descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "cron",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "Publishes a reading each time a cron schedule fires, in any IANA time zone",
    .options = cron_options,
    .create = cron_create,
    .start = cron_start,
    .stop = cron_stop,
    .destroy = cron_destroy,
    .on_event = cron_on_event,
    .next_fire_times = cron_next_fire_times,
};

SB_PLUGIN_EXPORT(descriptor)
