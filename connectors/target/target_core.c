/*
 * target_core.c - the `target` connector's formula: how many instances a value asks for.
 *
 * mode total: the value is a total (a queue length); desired = ceil(value / per_instance).
 * mode ratio: the value is a per-instance average; desired = ceil(current x value / target), the
 * HPA's formula, and from zero instances ceil(value / target), as Nomad's target-value strategy.
 * Inside `tolerance` the formula says "hold". Everything after the formula (windows, rate limits,
 * cooldowns, bounds, the published reason) is the shared policy library's.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "target_core.h"

/* At exactly the edge of the tolerance, float noise (55 / 50 - 1 = 0.10000000000000009) must
 * not decide: the edge is inside. */
#define TOLERANCE_EPSILON 1e-9

const sb_option_spec target_options[TARGET_OPT_COUNT + 1] = {
    [TARGET_OPT_PER_INSTANCE] = {"per_instance", SB_OPT_NUMBER, NULL, 0,
                                 "mode total: one instance per this much of the value (default "
                                 "1): desired = ceil(value / per_instance)"},
    [TARGET_OPT_MODE] = {"mode", SB_OPT_STRING, "total", 0,
                         "total: the value is a total (a queue length); ratio: a per-instance "
                         "average, desired = ceil(current x value / target)"},
    [TARGET_OPT_TARGET] = {"target", SB_OPT_NUMBER, NULL, 0,
                           "mode ratio (required there): the per-instance average wanted"},
    [TARGET_OPT_TOLERANCE] = {"tolerance", SB_OPT_NUMBER, "0.1", 0,
                              "no change while the value is within this fraction of its target"},
    SB_POLICY_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

struct target_conn {
    int ratio;
    double per_instance, target, tolerance;
    sb_policy *policy;
};

static int read_options(const sb_value *v, target_conn *t, char *err, size_t errlen)
{
    const char *mode = v[TARGET_OPT_MODE].is_set ? v[TARGET_OPT_MODE].str : "total";
    if (strcmp(mode, "ratio") == 0) {
        t->ratio = 1;
    } else if (strcmp(mode, "total") != 0) {
        snprintf(err, errlen, "mode: expected total or ratio, got '%s'", mode);
        return -EINVAL;
    }
    const sb_value *pi = &v[TARGET_OPT_PER_INSTANCE], *tg = &v[TARGET_OPT_TARGET];
    const sb_value *tol = &v[TARGET_OPT_TOLERANCE];
    /* An option for the other mode is a mistake worth a message: `target: 50` without
     * `mode: ratio` would otherwise ask for 50 instances per unit of load. */
    if (t->ratio && pi->is_set) {
        snprintf(err, errlen, "per_instance: used in mode total only; mode ratio uses target");
        return -EINVAL;
    }
    if (!t->ratio && tg->is_set) {
        snprintf(err, errlen, "target: used in mode ratio only (set mode: ratio)");
        return -EINVAL;
    }
    t->per_instance = pi->is_set ? pi->number : 1;
    if (!(t->per_instance > 0) || !isfinite(t->per_instance)) {
        snprintf(err, errlen, "per_instance: must be above 0, got %g", t->per_instance);
        return -EINVAL;
    }
    if (t->ratio && !tg->is_set) {
        snprintf(err, errlen, "target: required when mode is ratio");
        return -EINVAL;
    }
    t->target = tg->is_set ? tg->number : 1;
    if (!(t->target > 0) || !isfinite(t->target)) {
        snprintf(err, errlen, "target: must be above 0, got %g", t->target);
        return -EINVAL;
    }
    t->tolerance = tol->is_set ? tol->number : 0.1;
    if (!(t->tolerance >= 0) || !isfinite(t->tolerance)) {
        snprintf(err, errlen, "tolerance: must be 0 or more, got %g", t->tolerance);
        return -EINVAL;
    }
    return 0;
}

int target_conn_new(const sb_value *values, target_conn **out, char *err, size_t errlen)
{
    *out = NULL;
    target_conn *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = read_options(values, t, err, errlen);
    if (rc == 0)
        rc = sb_policy_new_from_values(values + TARGET_OPT_POLICY, &t->policy, err, errlen);
    if (rc != 0) {
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

void target_conn_free(void *conn)
{
    target_conn *t = conn;
    if (!t)
        return;
    sb_policy_free(t->policy);
    free(t);
}

sb_policy *target_conn_policy(const target_conn *t)
{
    return t->policy;
}

static int within_tolerance(double ratio, double tolerance)
{
    return fabs(ratio - 1) <= tolerance + TOLERANCE_EPSILON;
}

/* The HPA's formula on the running count; from zero, Nomad's ceil(value / target). */
static void ratio_formula(const target_conn *t, const char *name, double value, sb_policy_input *in,
                          sb_reason *r)
{
    int64_t current = sb_policy_current(t->policy);
    double factor = value / t->target;
    if (current > 0 && within_tolerance(factor, t->tolerance)) {
        in->hold = 1;
        sb_reason_addf(r, "%s=%g target=%g current=%lld: ratio %.3g within tolerance %g", name,
                       value, t->target, (long long)current, factor, t->tolerance);
        return;
    }
    /* A per-instance average over no instances says nothing about a tolerance: act on it. */
    in->raw = current > 0 ? (double)current * factor : factor;
    sb_reason_addf(r, "%s=%g target=%g current=%lld -> %lld", name, value, t->target,
                   (long long)current, (long long)sb_policy_ceil(in->raw));
}

/* A total shared out; "no change" while it is within tolerance of the count already decided. */
static void total_formula(const target_conn *t, const char *name, double value, sb_policy_input *in,
                          sb_reason *r)
{
    int64_t decided = sb_policy_decided(t->policy);
    in->raw = value / t->per_instance;
    if (decided > 0 && within_tolerance(in->raw / (double)decided, t->tolerance)) {
        in->hold = 1;
        sb_reason_addf(r, "%s=%g per_instance=%g -> %g, within tolerance %g of %lld", name, value,
                       t->per_instance, in->raw, t->tolerance, (long long)decided);
        return;
    }
    sb_reason_addf(r, "%s=%g per_instance=%g -> %lld", name, value, t->per_instance,
                   (long long)sb_policy_ceil(in->raw));
}

int target_conn_decide(target_conn *t, const sb_event *ev, int64_t *desired, sb_reason *r)
{
    if (!isfinite(ev->value))
        return -EINVAL;
    const char *name = sb_policy_metric_name(ev);
    sb_policy_input in;
    memset(&in, 0, sizeof in);
    in.now_ns = ev->mono_ns;
    in.has_metric = 1;
    in.metric = ev->value;
    in.metric_name = name;
    sb_reason_init(r);
    if (t->ratio)
        ratio_formula(t, name, ev->value, &in, r);
    else
        total_formula(t, name, ev->value, &in, r);
    *desired = sb_policy_decide(t->policy, &in, r);
    return 0;
}

void target_conn_on_event(void *conn, const sb_host *host, sb_instance *inst,
                            const sb_event *ev)
{
    target_conn *t = conn;
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
    if (target_conn_decide(t, ev, &desired, &r) != 0) {
        host->log(inst, SB_LOG_WARN, "ignored a value that is not a number from %s",
                  ev->source_id ? ev->source_id : "?");
        return;
    }
    sb_policy_publish(t->policy, host, inst, ev->mono_ns, desired, &r);
}
