/*
 * waiter.c - the `waiter` connector: Waiter's scaling algorithm on outstanding requests.
 *
 * Each reading's value is the number of outstanding requests (queued plus in flight). On each
 * reading the algorithm (waiter_core.c) moves a smoothed float target toward the ideal count,
 * fast up and slowly down, by as many one-second ticks as the event time has advanced, and says
 * by how many instances to scale. The result goes through the policy SDK's common limits
 * (sb_policy_decide: Waiter's min and max are the common `min`/`max`) and is published as a
 * desired count with its reason, e.g.
 *   "outstanding=40 concurrency_level=4 -> ideal 10; target 3.2 -> 4 (+1)".
 * The current instance count comes from the instance lists of the scalers in `to`. Error events
 * from an input go to the policy library's failure handling (fail_after, fallback).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"
#include "scalebus/policy.h"
#include "waiter_core.h"

enum { OPT_CONCURRENCY, OPT_SCALE, OPT_UP, OPT_DOWN, OPT_JITTER, OPT_OWN_COUNT };

static const sb_option_spec waiter_options[] = {
    {"concurrency_level", SB_OPT_NUMBER, "1", 0,
     "requests one instance serves at once: ideal = ceil(outstanding * scale_factor / this)"},
    {"scale_factor", SB_OPT_NUMBER, "1", 0, "multiplies the outstanding requests"},
    {"scale_up_factor", SB_OPT_NUMBER, "0.1", 0,
     "share of the way to the ideal count the target moves up per second (0 to 1)"},
    {"scale_down_factor", SB_OPT_NUMBER, "0.001", 0,
     "share of the way to the ideal count the target moves down per second (0 to 1)"},
    {"jitter_threshold", SB_OPT_NUMBER, "0.5", 0,
     "no change while the target is closer than this to the current count"},
    SB_POLICY_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef struct waiter_state {
    sb_instance *inst;
    const sb_host *host;
    sb_policy *policy;
    sb_waiter core;
} waiter_state;

static double number_or(const sb_value *v, double dflt)
{
    return v->is_set ? v->number : dflt;
}

static int waiter_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    sb_policy_options po;
    int rc = sb_policy_options_read(values + OPT_OWN_COUNT, &po, err, errlen);
    if (rc != 0)
        return rc;
    sb_waiter_params wp;
    sb_waiter_params_default(&wp);
    wp.concurrency_level = number_or(&values[OPT_CONCURRENCY], wp.concurrency_level);
    wp.scale_factor = number_or(&values[OPT_SCALE], wp.scale_factor);
    wp.scale_up_factor = number_or(&values[OPT_UP], wp.scale_up_factor);
    wp.scale_down_factor = number_or(&values[OPT_DOWN], wp.scale_down_factor);
    wp.jitter_threshold = number_or(&values[OPT_JITTER], wp.jitter_threshold);
    wp.min = po.min;
    wp.max = po.max;
    if ((rc = sb_waiter_params_check(&wp, err, errlen)) != 0)
        return rc;

    waiter_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->policy = sb_policy_new(&po);
    if (!s->policy) {
        free(s);
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    sb_waiter_init(&s->core, &wp);
    *state = s;
    return 0;
}

/* "3.2", "9.999", "10": three decimals at most, no trailing zeros. */
static const char *fmt_count(char *buf, size_t len, double v)
{
    snprintf(buf, len, "%.3f", v);
    char *dot = strchr(buf, '.');
    if (dot) {
        char *end = buf + strlen(buf);
        while (end > dot + 1 && end[-1] == '0')
            *--end = '\0';
        if (end == dot + 1)
            *dot = '\0';
    }
    if (strcmp(buf, "-0") == 0)
        snprintf(buf, len, "0");
    return buf;
}

/* The formula's part of the reason: "outstanding=40 concurrency_level=4 -> ideal 10; target
 * 3.2 -> 4 (+1)", or "target 3.439: no change (within jitter_threshold 0.5)". */
static void explain(sb_reason *r, const sb_waiter *w, double outstanding, const sb_waiter_step *st)
{
    char a[48], b[48];
    sb_reason_addf(r, "outstanding=%s", fmt_count(a, sizeof a, outstanding));
    if (w->p.scale_factor != 1)
        sb_reason_addf(r, " scale_factor=%g", w->p.scale_factor);
    sb_reason_addf(r, " concurrency_level=%g -> ideal %lld; target %s", w->p.concurrency_level,
                   (long long)st->ideal, fmt_count(b, sizeof b, st->target));
    if (st->scale_by != 0)
        sb_reason_addf(r, " -> %lld (%+lld)", (long long)st->desired, (long long)st->scale_by);
    else if (st->within_jitter)
        sb_reason_addf(r, ": no change (within jitter_threshold %g)", w->p.jitter_threshold);
    else if (st->enough)
        sb_reason_addf(r, ": no change (ideal %lld <= %lld running)", (long long)st->ideal,
                       (long long)st->total);
    else
        sb_reason_addf(r, ": no change (less than one instance away from %lld)",
                       (long long)st->total);
}

static void waiter_on_event(void *state, const sb_event *ev)
{
    waiter_state *s = state;
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        sb_policy_observe(s->policy, ev);
        /* Waiter keeps its float target inside [min, max]: the scaler's bounds count too. */
        sb_policy_bounds(s->policy, &s->core.p.min, &s->core.p.max);
        return;
    }
    /* An error event is never a count of requests: the policy library's failure handling
     * (fail_after, fallback) takes it, and a value while the fallback is in force. */
    if (sb_policy_failures_on_event(s->policy, s->host, s->inst, ev))
        return;
    /* A reading, or a desired count from a connector named in `from`: outstanding requests. */
    if (!isfinite(ev->value) || ev->value < 0) {
        s->host->log(s->inst, SB_LOG_WARN,
                     "ignored outstanding requests from %s: %g is not a count of requests",
                     ev->source_id ? ev->source_id : "?", ev->value);
        return;
    }
    sb_waiter_step st;
    sb_waiter_run(&s->core, ev->mono_ns, ev->value, sb_policy_current(s->policy), &st);

    sb_reason r;
    sb_reason_init(&r);
    explain(&r, &s->core, ev->value, &st);
    sb_policy_input in = {
        .now_ns = ev->mono_ns,
        .raw = (double)st.desired,
        .has_metric = 1,
        .metric = ev->value,
        .hold = st.scale_by == 0,
    };
    int64_t desired = sb_policy_decide(s->policy, &in, &r);
    sb_policy_publish(s->policy, s->host, s->inst, ev->mono_ns, desired, &r);
}

static void waiter_destroy(void *state)
{
    waiter_state *s = state;
    if (!s)
        return;
    sb_policy_free(s->policy);
    free(s);
}

SB_POLICY_STATE(waiter, waiter_state, policy)

static const sb_plugin_descriptor waiter_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "waiter",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "Waiter's algorithm: follows outstanding requests, fast up, slowly down",
    .options = waiter_options,
    .create = waiter_create,
    .destroy = waiter_destroy,
    .on_event = waiter_on_event,
    .snapshot = waiter_snapshot, /* windows, cooldowns, last decision across a restart */
    .restore = waiter_restore,
    .accepts = SB_ACCEPTS_ERRORS, /* the policy library holds or falls back on failures */
};

SB_PLUGIN_EXPORT(waiter_descriptor)
