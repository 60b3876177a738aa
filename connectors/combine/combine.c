/*
 * combine.c - the `combine` connector: several inputs into one desired count.
 *
 * Its inputs are the readings of the triggers in `from` (one input per trigger and label set,
 * so a trigger reporting several queues gives several) and the decisions of the connectors in
 * `from` (policies in a chain). On each one it combines the inputs heard from within
 * `stale_after` by `by` (max, min, sum or avg; combine_core.c), passes the result through the
 * policy SDK's common limits and publishes it with its reason, e.g.
 *   "max of by-queue=7 by-cpu=4 (stale: by-latency) -> 7".
 * With no fresh input it decides nothing. Error events from an input go to the policy library's
 * failure handling (fail_after, fallback); a failed input's last value counts until it is stale.
 * Time is the events' own (ev->mono_ns), so `scalebus simulate` gives the same decisions on
 * virtual time.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combine_core.h"
#include "scalebus/plugin.h"
#include "scalebus/policy.h"

enum { OPT_BY, OPT_STALE_AFTER, OPT_OWN_COUNT };

static const sb_option_spec combine_options[] = {
    {"by", SB_OPT_STRING, "max", 0, "how the inputs combine: max (the safest), min, sum or avg"},
    {"stale_after", SB_OPT_DURATION, "60s", 0, "an input not heard from for this long is left out"},
    SB_POLICY_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef struct combine_state {
    sb_instance *inst;
    const sb_host *host;
    sb_policy *policy;
    sb_combine *core;
} combine_state;

#define NS_PER_MS 1000000ull

static int combine_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                          void **state, char *err, size_t errlen)
{
    sb_combine_by by = SB_COMBINE_MAX;
    if (values[OPT_BY].is_set && sb_combine_by_parse(values[OPT_BY].str, &by) != 0) {
        snprintf(err, errlen, "by: expected max, min, sum or avg, got '%s'",
                 values[OPT_BY].str ? values[OPT_BY].str : "");
        return -EINVAL;
    }
    uint64_t stale_ms =
        values[OPT_STALE_AFTER].is_set ? values[OPT_STALE_AFTER].duration_ms : 60000;
    if (stale_ms == 0) {
        snprintf(err, errlen, "stale_after: must be more than 0s");
        return -EINVAL;
    }
    if (stale_ms > UINT64_MAX / NS_PER_MS)
        stale_ms = UINT64_MAX / NS_PER_MS;
    sb_policy_options po;
    int rc = sb_policy_options_read(values + OPT_OWN_COUNT, &po, err, errlen);
    if (rc != 0)
        return rc;

    combine_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->policy = sb_policy_new(&po);
    s->core = sb_combine_new(by, stale_ms * NS_PER_MS);
    if (!s->policy || !s->core) {
        sb_policy_free(s->policy);
        sb_combine_free(s->core);
        free(s);
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    *state = s;
    return 0;
}

static void combine_on_event(void *state, const sb_event *ev)
{
    combine_state *s = state;
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        sb_policy_observe(s->policy, ev);
        return;
    }
    /* Failed inputs (fail_after, fallback): an error event is never a value; a value while the
     * fallback is in force is still remembered, so the inputs are fresh when the fallback ends. */
    int handled = sb_policy_failures_on_event(s->policy, s->host, s->inst, ev);
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_ERROR) == 0)
        return;
    /* A reading from a trigger, or a decided count from a connector named in `from`. */
    const char *source = ev->source_id ? ev->source_id : "?";
    int rc = sb_combine_put(s->core, source, ev->labels, ev->nlabels, ev->value, ev->mono_ns);
    if (rc == -EINVAL) {
        s->host->log(s->inst, SB_LOG_WARN, "ignored a value from %s that is not a number (%g)",
                     source, ev->value);
        return;
    }
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not remember a value from %s (error %d)", source,
                     rc);
    if (handled)
        return;

    char why[sizeof(((sb_reason *)0)->text)];
    double combined = 0;
    if (sb_combine_compute(s->core, ev->mono_ns, &combined, why, sizeof why) == 0) {
        s->host->log(s->inst, SB_LOG_DEBUG, "nothing decided: %s", why);
        return;
    }
    sb_reason r;
    sb_reason_init(&r);
    sb_reason_addf(&r, "%s", why);
    sb_policy_input in = {
        .now_ns = ev->mono_ns,
        .raw = combined,
        .has_metric = 1,
        .metric = combined,
    };
    int64_t desired = sb_policy_decide(s->policy, &in, &r);
    sb_policy_publish(s->policy, s->host, s->inst, ev->mono_ns, desired, &r);
}

static void combine_destroy(void *state)
{
    combine_state *s = state;
    if (!s)
        return;
    sb_policy_free(s->policy);
    sb_combine_free(s->core);
    free(s);
}

SB_POLICY_STATE(combine, combine_state, policy)

static const sb_plugin_descriptor combine_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "combine",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "several inputs into one desired count by max (the safest), min, sum or avg",
    .options = combine_options,
    .create = combine_create,
    .destroy = combine_destroy,
    .on_event = combine_on_event,
    .snapshot = combine_snapshot, /* windows, cooldowns, last decision across a restart */
    .restore = combine_restore,
    .accepts = SB_ACCEPTS_ERRORS, /* the policy library holds or falls back on failures */
};

SB_PLUGIN_EXPORT(combine_descriptor)
