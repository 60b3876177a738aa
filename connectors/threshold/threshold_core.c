/*
 * threshold_core.c - the `threshold` connector's bands: Nomad's threshold strategy and AWS step
 * scaling. A reading at or above `upper` is in the upper band, one below `lower` in the lower
 * band; after `within` consecutive readings in one band that band's action runs once (delta,
 * percent or exact, applied to the count this policy last decided) and the count starts again.
 * Readings between the bands, and in a band not yet `within` long, hold. Everything after the
 * action (windows, rate limits, cooldowns, bounds, the published reason) is the policy library's.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "threshold_core.h"

#define ROUND_EPSILON 1e-9

const sb_option_spec threshold_options[THRESHOLD_OPT_COUNT + 1] = {
    [THRESHOLD_OPT_UPPER] = {"upper", SB_OPT_NUMBER, NULL, 0,
                             "readings at or above this are in the upper band"},
    [THRESHOLD_OPT_UPPER_ACTION] = {"upper_action", SB_OPT_STRING, "delta", 0,
                                    "delta (add upper_amount), percent (add upper_amount "
                                    "percent) or exact (ask for upper_amount)"},
    [THRESHOLD_OPT_UPPER_AMOUNT] = {"upper_amount", SB_OPT_NUMBER, "1", 0,
                                    "the upper band's instances, percent or count"},
    [THRESHOLD_OPT_LOWER] = {"lower", SB_OPT_NUMBER, NULL, 0,
                             "readings below this are in the lower band"},
    [THRESHOLD_OPT_LOWER_ACTION] = {"lower_action", SB_OPT_STRING, "delta", 0,
                                    "delta, percent or exact, as upper_action"},
    [THRESHOLD_OPT_LOWER_AMOUNT] = {"lower_amount", SB_OPT_NUMBER, "-1", 0,
                                    "the lower band's instances, percent or count"},
    [THRESHOLD_OPT_WITHIN] = {"within", SB_OPT_INT, "1", 0,
                              "consecutive readings in a band before its action runs; counted "
                              "afresh after each action"},
    SB_POLICY_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef enum band_action { ACTION_DELTA, ACTION_PERCENT, ACTION_EXACT } band_action;

typedef struct band {
    int set;
    double edge;
    band_action action;
    double amount;
} band;

struct threshold_conn {
    band upper, lower;
    int64_t within;
    int streak_band; /* 1 upper, -1 lower, 0 between */
    int64_t streak;  /* consecutive readings in streak_band since the last action */
    sb_policy *policy;
};

static int read_band(const sb_value *v, const char *name, band *b, char *err, size_t errlen)
{
    const sb_value *edge = &v[0], *action = &v[1], *amount = &v[2];
    b->set = edge->is_set;
    b->edge = edge->number;
    const char *a = action->is_set ? action->str : "delta";
    if (strcmp(a, "delta") == 0) {
        b->action = ACTION_DELTA;
    } else if (strcmp(a, "percent") == 0) {
        b->action = ACTION_PERCENT;
    } else if (strcmp(a, "exact") == 0) {
        b->action = ACTION_EXACT;
    } else {
        snprintf(err, errlen, "%s_action: expected delta, percent or exact, got '%s'", name, a);
        return -EINVAL;
    }
    b->amount = amount->is_set ? amount->number : (strcmp(name, "upper") == 0 ? 1 : -1);
    if (!isfinite(b->amount)) {
        snprintf(err, errlen, "%s_amount: expected a finite number", name);
        return -EINVAL;
    }
    if (b->action == ACTION_EXACT && (b->amount < 0 || b->amount > SB_POLICY_COUNT_MAX)) {
        snprintf(err, errlen, "%s_amount: exact needs a count from 0 to %d, got %g", name,
                 SB_POLICY_COUNT_MAX, b->amount);
        return -EINVAL;
    }
    if (b->action == ACTION_PERCENT && b->amount < -100) {
        snprintf(err, errlen, "%s_amount: percent must be -100 or more, got %g", name, b->amount);
        return -EINVAL;
    }
    return 0;
}

static int read_options(const sb_value *v, threshold_conn *t, char *err, size_t errlen)
{
    int rc = read_band(v + THRESHOLD_OPT_UPPER, "upper", &t->upper, err, errlen);
    if (rc == 0)
        rc = read_band(v + THRESHOLD_OPT_LOWER, "lower", &t->lower, err, errlen);
    if (rc != 0)
        return rc;
    if (!t->upper.set && !t->lower.set) {
        snprintf(err, errlen, "upper: set upper, lower or both");
        return -EINVAL;
    }
    if (t->upper.set && t->lower.set && t->lower.edge > t->upper.edge) {
        snprintf(err, errlen, "lower: must not be above upper (%g), got %g", t->upper.edge,
                 t->lower.edge);
        return -EINVAL;
    }
    t->within = v[THRESHOLD_OPT_WITHIN].is_set ? v[THRESHOLD_OPT_WITHIN].integer : 1;
    if (t->within < 1) {
        snprintf(err, errlen, "within: must be 1 or more, got %lld", (long long)t->within);
        return -EINVAL;
    }
    return 0;
}

int threshold_conn_new(const sb_value *values, threshold_conn **out, char *err, size_t errlen)
{
    *out = NULL;
    threshold_conn *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = read_options(values, t, err, errlen);
    if (rc == 0)
        rc = sb_policy_new_from_values(values + THRESHOLD_OPT_POLICY, &t->policy, err, errlen);
    if (rc != 0) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void threshold_conn_free(void *conn)
{
    threshold_conn *t = conn;
    if (!t)
        return;
    sb_policy_free(t->policy);
    free(t);
}

sb_policy *threshold_conn_policy(const threshold_conn *t)
{
    return t->policy;
}

/* The band's action on the decided count. A percent rounds away from the count (up when it
 * grows, down when it shrinks), so any non-zero percent moves by at least one instance; a
 * positive percent of 0 is 1, so the upper band can leave zero. */
static double band_apply(const band *b, int64_t base, char *text, size_t len)
{
    switch (b->action) {
    case ACTION_DELTA:
        snprintf(text, len, "delta %+g", b->amount);
        return (double)base + b->amount;
    case ACTION_PERCENT: {
        snprintf(text, len, "percent %+g%%", b->amount);
        double x = (double)base * (100.0 + b->amount) / 100.0;
        if (b->amount < 0)
            return floor(x + ROUND_EPSILON);
        if (b->amount > 0 && base == 0)
            return 1;
        return (double)sb_policy_ceil(x);
    }
    case ACTION_EXACT:
    default:
        snprintf(text, len, "exact %g", b->amount);
        return b->amount;
    }
}

/* "cpu=91 >= upper 80", "cpu=12 < lower 20", or where a reading between the bands stands. */
static void describe_reading(const threshold_conn *t, int which, const char *name, double v,
                             sb_reason *r)
{
    if (which > 0)
        sb_reason_addf(r, "%s=%g >= upper %g", name, v, t->upper.edge);
    else if (which < 0)
        sb_reason_addf(r, "%s=%g < lower %g", name, v, t->lower.edge);
    else if (t->upper.set && t->lower.set)
        sb_reason_addf(r, "%s=%g between lower %g and upper %g", name, v, t->lower.edge,
                       t->upper.edge);
    else if (t->upper.set)
        sb_reason_addf(r, "%s=%g < upper %g", name, v, t->upper.edge);
    else
        sb_reason_addf(r, "%s=%g >= lower %g", name, v, t->lower.edge);
}

int threshold_conn_decide(threshold_conn *t, const sb_event *ev, int64_t *desired, sb_reason *r)
{
    double v = ev->value;
    if (!isfinite(v))
        return -EINVAL;
    const char *name = sb_policy_metric_name(ev);
    int which = 0;
    if (t->upper.set && v >= t->upper.edge)
        which = 1;
    else if (t->lower.set && v < t->lower.edge)
        which = -1;
    if (which != t->streak_band) {
        t->streak_band = which;
        t->streak = 0;
    }

    sb_policy_input in;
    memset(&in, 0, sizeof in);
    in.now_ns = ev->mono_ns;
    in.has_metric = 1;
    in.metric = v;
    in.metric_name = name;
    sb_reason_init(r);
    describe_reading(t, which, name, v, r);
    if (which == 0) {
        in.hold = 1;
    } else if (++t->streak < t->within) {
        in.hold = 1;
        sb_reason_addf(r, " (%lld of %lld readings)", (long long)t->streak, (long long)t->within);
    } else {
        t->streak = 0;
        char action[64];
        in.raw = band_apply(which > 0 ? &t->upper : &t->lower, sb_policy_decided(t->policy), action,
                            sizeof action);
        sb_reason_addf(r, " for %lld reading%s: %s -> %lld", (long long)t->within,
                       t->within == 1 ? "" : "s", action, (long long)sb_policy_ceil(in.raw));
    }
    *desired = sb_policy_decide(t->policy, &in, r);
    return 0;
}

void threshold_conn_on_event(void *conn, const sb_host *host, sb_instance *inst,
                               const sb_event *ev)
{
    threshold_conn *t = conn;
    if (!ev->topic)
        return;
    if (strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        sb_policy_observe(t->policy, ev);
        return;
    }
    if (strcmp(ev->topic, SB_TOPIC_READING) != 0 && strcmp(ev->topic, SB_TOPIC_DESIRED) != 0)
        return;
    sb_reason r;
    int64_t desired;
    if (threshold_conn_decide(t, ev, &desired, &r) != 0) {
        host->log(inst, SB_LOG_WARN, "ignored a value that is not a number from %s",
                  ev->source_id ? ev->source_id : "?");
        return;
    }
    sb_policy_publish(t->policy, host, inst, ev->mono_ns, desired, &r);
}
