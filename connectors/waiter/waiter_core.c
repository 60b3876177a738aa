/*
 * waiter_core.c - Waiter's algorithm, one run at a time (see waiter_core.h for the formulas).
 *
 * Pure arithmetic on the caller's numbers and times: no clock, no allocation, no host. The
 * plugin (waiter.c) feeds it readings and the scaler's running count and hands the result to the
 * policy SDK; the tests feed it tables and random traces on virtual time.
 */
#include "waiter_core.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>

#define NS_PER_S 1000000000ull

/* A float target far above any count keeps every conversion to int64_t defined. */
#define WAITER_CEILING 1e15

void sb_waiter_params_default(sb_waiter_params *p)
{
    p->concurrency_level = 1;
    p->scale_factor = 1;
    p->scale_up_factor = 0.1;
    p->scale_down_factor = 0.001;
    p->jitter_threshold = 0.5;
    p->min = 0;
    p->max = -1;
}

static int bad(char *err, size_t errlen, const char *name, const char *rule, double got)
{
    snprintf(err, errlen, "%s: must be %s, got %g", name, rule, got);
    return -EINVAL;
}

int sb_waiter_params_check(const sb_waiter_params *p, char *err, size_t errlen)
{
    /* Written so that NaN fails every test. */
    if (!(p->concurrency_level > 0 && p->concurrency_level <= WAITER_CEILING))
        return bad(err, errlen, "concurrency_level", "more than 0", p->concurrency_level);
    if (!(p->scale_factor > 0 && p->scale_factor <= WAITER_CEILING))
        return bad(err, errlen, "scale_factor", "more than 0", p->scale_factor);
    if (!(p->scale_up_factor > 0 && p->scale_up_factor <= 1))
        return bad(err, errlen, "scale_up_factor", "more than 0 and at most 1", p->scale_up_factor);
    if (!(p->scale_down_factor > 0 && p->scale_down_factor <= 1))
        return bad(err, errlen, "scale_down_factor", "more than 0 and at most 1",
                   p->scale_down_factor);
    if (!(p->jitter_threshold >= 0 && p->jitter_threshold <= WAITER_CEILING))
        return bad(err, errlen, "jitter_threshold", "0 or more", p->jitter_threshold);
    if (p->min < 0)
        return bad(err, errlen, "min", "0 or more", (double)p->min);
    if (p->max >= 0 && p->max < p->min) {
        snprintf(err, errlen, "max: must not be less than min (%lld), got %lld", (long long)p->min,
                 (long long)p->max);
        return -EINVAL;
    }
    return 0;
}

void sb_waiter_init(sb_waiter *w, const sb_waiter_params *p)
{
    w->p = *p;
    w->has_run = 0;
    w->last_ns = 0;
    w->target = 0;
}

/* Whole seconds since the previous run; the remainder stays for the next one. */
static uint64_t take_ticks(sb_waiter *w, uint64_t now_ns)
{
    if (!w->has_run) {
        w->has_run = 1;
        w->last_ns = now_ns;
        return 1;
    }
    if (now_ns <= w->last_ns)
        return 0;
    uint64_t ticks = (now_ns - w->last_ns) / NS_PER_S;
    w->last_ns += ticks * NS_PER_S;
    return ticks;
}

static double clamp_target(const sb_waiter_params *p, double t)
{
    if (p->max >= 0 && t > (double)p->max)
        t = (double)p->max;
    if (t < (double)p->min)
        t = (double)p->min;
    return t > WAITER_CEILING ? WAITER_CEILING : t;
}

void sb_waiter_run(sb_waiter *w, uint64_t now_ns, double outstanding, int64_t total,
                   sb_waiter_step *out)
{
    const sb_waiter_params *p = &w->p;
    if (!(outstanding >= 0)) /* NaN or negative: no demand */
        outstanding = 0;
    if (total < 0)
        total = 0;
    if (total > (int64_t)WAITER_CEILING)
        total = (int64_t)WAITER_CEILING;
    if (!w->has_run)
        w->target = clamp_target(p, (double)total);
    uint64_t ticks = take_ticks(w, now_ns);

    /* (1 - f)^ticks: a run after 10 s moves the target as far as ten runs 1 s apart. A factor
     * of 1 goes straight to the ideal, also on a run within the same second (0^0 would be 1:
     * a router's first request after an idle reading would wait for the next second). */
    double up = p->scale_up_factor >= 1 ? 1.0 : 1.0 - pow(1.0 - p->scale_up_factor, (double)ticks);
    double down =
        p->scale_down_factor >= 1 ? 1.0 : 1.0 - pow(1.0 - p->scale_down_factor, (double)ticks);
    double ideal_f = ceil(outstanding * p->scale_factor / p->concurrency_level);
    if (ideal_f > WAITER_CEILING)
        ideal_f = WAITER_CEILING;
    double target = w->target;
    double su = up * ideal_f + (1.0 - up) * target;
    double sd = down * ideal_f + (1.0 - down) * target;
    double next = clamp_target(p, su >= target ? su : sd);

    *out = (sb_waiter_step){.ticks = ticks,
                            .ideal = (int64_t)ideal_f,
                            .target_before = target,
                            .target = next,
                            .total = total};
    w->target = next;
    double delta = next - (double)total;
    out->delta = delta;
    if (fabs(delta) < p->jitter_threshold)
        out->within_jitter = 1;
    else if (delta > 0 && (double)out->ideal <= (double)total && total >= p->min)
        out->enough = 1;
    else {
        out->act = 1;
        out->scale_by = (int64_t)ceil(delta - 0.01);
    }
    out->desired = total + out->scale_by;
}
