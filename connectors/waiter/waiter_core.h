/*
 * waiter_core.h - Waiter's scaling algorithm (Two Sigma's Waiter, src/waiter/scaling.clj), kept
 * apart from the plugin so tests can drive it step by step on virtual time.
 *
 * Each run takes the outstanding requests and the current instance count ("total"):
 *   ticks  = whole seconds of event time since the previous run (1 on the first run)
 *   up     = 1 - (1 - scale_up_factor)^ticks,  down = 1 - (1 - scale_down_factor)^ticks
 *   ideal  = ceil(outstanding * scale_factor / concurrency_level)
 *   su     = up*ideal + (1-up)*target,          sd = down*ideal + (1-down)*target
 *   target = clamp(su >= target ? su : sd, min, max)      (scale-up dominates)
 *   delta  = target - total
 *   no action when |delta| < jitter_threshold, or delta > 0 with ideal <= total and
 *   total >= min; otherwise scale_by = ceil(delta - 0.01).
 * The float target lives between runs; it starts at the count of the first run.
 */
#ifndef SCALEBUS_WAITER_CORE_H
#define SCALEBUS_WAITER_CORE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_waiter_params {
    double concurrency_level; /* > 0 */
    double scale_factor;      /* > 0 */
    double scale_up_factor;   /* (0, 1] */
    double scale_down_factor; /* (0, 1] */
    double jitter_threshold;  /* >= 0 */
    int64_t min;              /* >= 0 */
    int64_t max;              /* -1: no limit */
} sb_waiter_params;

/* Waiter's own defaults (its code's, not its docs'), with no limit on max. */
void sb_waiter_params_default(sb_waiter_params *p);

/* Returns 0, or -EINVAL with one line that starts with the option's name
 * ("scale_up_factor: must be more than 0 and at most 1, got 0"). */
int sb_waiter_params_check(const sb_waiter_params *p, char *err, size_t errlen);

typedef struct sb_waiter {
    sb_waiter_params p;
    int has_run;
    uint64_t last_ns; /* time the previous run's ticks were counted up to */
    double target;    /* the smoothed float target */
} sb_waiter;

/* What one run found. */
typedef struct sb_waiter_step {
    uint64_t ticks;
    int64_t ideal;
    double target_before, target; /* the float target before and after this run */
    double delta;                 /* target - total */
    int64_t total;
    int64_t scale_by;  /* 0: no action */
    int64_t desired;   /* total + scale_by */
    int act;           /* 1: scale_by came from ceil(delta - 0.01) (it may still be 0) */
    int within_jitter; /* no action: |delta| < jitter_threshold */
    int enough;        /* no action: delta > 0 but ideal <= total and total >= min */
} sb_waiter_step;

/* p must have passed sb_waiter_params_check(). */
void sb_waiter_init(sb_waiter *w, const sb_waiter_params *p);

/* One run at event time now_ns with `outstanding` requests (>= 0, finite) and `total` running
 * instances (>= 0). Time that goes backwards counts as 0 ticks. The fraction of a second left
 * over is carried to the next run, so readings every 0.5 s still advance one tick a second. */
void sb_waiter_run(sb_waiter *w, uint64_t now_ns, double outstanding, int64_t total,
                   sb_waiter_step *out);

#endif
