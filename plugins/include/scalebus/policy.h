/*
 * scalebus/policy.h - what every scaling policy (connector) shares, in the plugin SDK.
 *
 * A policy plugin computes a raw recommendation from a reading (its own formula) and hands it to
 * sb_policy_decide(), which applies the limits every policy has, in this order, each one that
 * changes the value appending a step to the decision's reason chain:
 *
 *   raw (rounded up) -> activation (activate_above) -> idle_after -> stabilisation windows
 *   (stabilize_up / stabilize_down) -> rate limits (max_step_up / max_step_down per period)
 *   -> cooldowns (cooldown_up / cooldown_down) -> [min, max]
 *
 * e.g. "queue=13 per_instance=2 -> 7; max 5 -> 5". Time is the event's time (ev->mono_ns), never
 * the wall clock, so `scalebus simulate` replays the same decisions on virtual time; an event
 * older than one already seen counts as happening at the newest time seen.
 *
 * Two counts matter. The *current* count (sb_policy_current) is what the scaler reports running:
 * the ratio formulas multiply it. The *decided* count (sb_policy_decided) is what this policy last
 * asked for: "no change", the windows, rate limits and cooldowns are all relative to it, so a
 * scaler still starting instances does not make the policy take back its own decision.
 * When an input fails (a trigger publishes SB_TOPIC_ERROR events instead of readings) the policy
 * never reads that as 0: after `fail_after` consecutive failures of one input it holds its last
 * decision, or, with `fallback` set, decides the fallback count (KEDA's fallback), held to the
 * bounds only: "redis-jobs: 3 failures -> fallback 2". sb_policy_failures_on_event() does it;
 * the connector glue below calls it for every policy built on the glue.
 *
 * plugins/policy/README.md describes every step and option.
 *
 * The implementation is one static library (libscalebus_policy.a, PIC) that each policy plugin
 * links: one implementation, used by all. It calls the host only through sb_host.
 */
#ifndef SCALEBUS_POLICY_H
#define SCALEBUS_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The common options, as options-table rows. Put SB_POLICY_OPTIONS in a policy plugin's table,
 * after its own rows (so `scalebus plugins --describe` lists those first) or before them, and pass
 * sb_policy_options_read() a pointer to the sb_value of its first row, "min". */
/* clang-format off */
#define SB_POLICY_OPTIONS                                                                          \
    {"min", SB_OPT_INT, "0", 0, "fewest instances this policy asks for"},                          \
        {"max", SB_OPT_INT, NULL, 0,                                                               \
         "most instances this policy asks for (default: no limit "                                 \
         "here; the scaler's max still holds)"},                                                   \
        {"cooldown_up", SB_OPT_DURATION, "0s", 0, "after any change, no scale-up for this long"},  \
        {"cooldown_down", SB_OPT_DURATION, "0s", 0,                                                \
         "after any change, no scale-down for this long"},                                         \
        {"stabilize_up", SB_OPT_DURATION, "0s", 0,                                                 \
         "scale up only to the lowest recommendation seen in this window"},                        \
        {"stabilize_down", SB_OPT_DURATION, "300s", 0,                                             \
         "scale down only to the highest recommendation seen in this window (as the HPA)"},        \
        {"max_step_up", SB_OPT_STRING, NULL, 0,                                                    \
         "most instances (\"4\") or percent (\"100%\") added per period"},                         \
        {"max_step_down", SB_OPT_STRING, NULL, 0,                                                  \
         "most instances (\"1\") or percent (\"50%\") removed per period"},                        \
        {"period", SB_OPT_DURATION, "15s", 0, "the period of max_step_up and max_step_down"},      \
        {"activate_above", SB_OPT_NUMBER, NULL, 0,                                                 \
         "leave zero only when the reading is above this (KEDA's activation threshold)"},          \
        {"idle_after", SB_OPT_DURATION, "0s", 0,                                                   \
         "go to zero only after this long with zero demand"},                                      \
        {"fail_after", SB_OPT_INT, "3", 0,                                                         \
         "consecutive failures of one input before this policy holds its last decision, or "       \
         "moves to `fallback`"},                                                                   \
        {"fallback", SB_OPT_INT, NULL, 0,                                                          \
         "the count to ask for while an input has failed fail_after times (KEDA's fallback; "      \
         "default: hold the last decision)"}
/* clang-format on */
#define SB_POLICY_OPTION_COUNT 13

/* The largest count a policy decides: a formula's larger (or infinite) result is held here. */
#define SB_POLICY_COUNT_MAX 1000000000

typedef struct sb_policy_options {
    int64_t min;
    int64_t max; /* -1: no limit */
    uint64_t cooldown_up_ms, cooldown_down_ms;
    uint64_t stabilize_up_ms, stabilize_down_ms;
    double max_step_up, max_step_down;      /* -1: no limit */
    int step_up_percent, step_down_percent; /* 1: the step is a percent of the current count */
    uint64_t period_ms;
    int has_activation;
    double activate_above;
    uint64_t idle_after_ms;
    int64_t fail_after; /* consecutive failures of one input that make it failed (below 1: 1) */
    int has_fallback;   /* 0: a failed input holds the last decision */
    int64_t fallback;   /* the count decided while an input is failed */
} sb_policy_options;

/* Read the SB_POLICY_OPTION_COUNT common values, values[0] being "min". Returns 0, or -EINVAL
 * with a one-line message that starts with the option's name
 * ("max_step_up: expected a whole count ("4") or a percent ("50%"), got 'x'"). */
int sb_policy_options_read(const sb_value *values, sb_policy_options *out, char *err,
                           size_t errlen);

/* A decision's reason chain, e.g. "queue=13 per_instance=2 -> 7; max 5 -> 5". The connector
 * writes the formula's part with sb_reason_addf (appended as is); sb_policy_decide adds each of
 * its steps after "; ". Text that does not fit is cut and ends in "...". */
typedef struct sb_reason {
    char text[512];
    size_t len;
} sb_reason;

void sb_reason_init(sb_reason *r);
void sb_reason_addf(sb_reason *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct sb_policy sb_policy;

sb_policy *sb_policy_new(const sb_policy_options *o);
void sb_policy_free(sb_policy *p);

/* sb_policy_options_read() on the SB_POLICY_OPTIONS rows, then sb_policy_new(): 0 and the policy
 * in *out, or a negative code with one line in err. */
int sb_policy_new_from_values(const sb_value *policy_rows, sb_policy **out, char *err,
                              size_t errlen);

/* Feed an SB_TOPIC_INSTANCES event from a scaler this policy drives (ev->value: its running
 * count; a value that is negative or not a number is ignored). Until one arrives, the current
 * count is the policy's own last decision (0 at first). */
void sb_policy_observe(sb_policy *p, const sb_event *ev);
/* The bounds a decision is held to: the policy's own min/max narrowed by those of the scaler it
 * drives, which the daemon sends with each instance list (labels scaler_min, scaler_max; applied
 * by sb_policy_decide as "scaler max 10 -> 10"). max -1: no limit known. */
void sb_policy_bounds(const sb_policy *p, int64_t *min, int64_t *max);
int64_t sb_policy_current(const sb_policy *p);
/* The count this policy last decided; before its first decision, sb_policy_current(). */
int64_t sb_policy_decided(const sb_policy *p);

/* The rounding sb_policy_decide applies to a raw recommendation: up, ignoring float noise below
 * 1e-9 (3 x 0.7 / 0.7 is 3, not 4); below 0 is 0, above SB_POLICY_COUNT_MAX (or infinite) is
 * SB_POLICY_COUNT_MAX, not a number is 0. Connectors use it to print the same count. */
int64_t sb_policy_ceil(double raw);

/* The name a reason gives an event's value: the publishing connector's id for a desired count;
 * for a reading, its first label's value when that names what it is about (a queue's name; a
 * cron schedule label does not), else the trigger's id. */
const char *sb_policy_metric_name(const sb_event *ev);

typedef struct sb_policy_input {
    uint64_t now_ns; /* the reading's time (ev->mono_ns) */
    double raw;      /* the formula's recommendation; fractional values are rounded up */
    int has_metric;  /* 1: `metric` is compared with activate_above */
    double metric;   /* usually the reading's value */
    int hold;        /* 1: the formula says "no change" (inside a tolerance): the recommendation is
                        the decided count (sb_policy_decided), and the reason says "hold N" */
    const char *metric_name; /* names the metric in the activation step; NULL: "metric" */
} sb_policy_input;

/* Apply the common limits to a recommendation. Returns the decided count and appends each step
 * that changed the value to r (the caller has already written the formula's own part), plus
 * "hold N" for a hold, and the activation test whenever it sets the demand (0 at or below
 * activate_above, even when the formula said 0 already; 1 above it). r may be NULL. Never
 * fails: when memory for the windows runs short they merge their oldest entries, which only
 * ever makes the limits stricter. */
int64_t sb_policy_decide(sb_policy *p, const sb_policy_input *in, sb_reason *r);

/* Publish a decision: SB_TOPIC_DESIRED with value = desired, time_ns = now_ns and one label
 * "reason" = the chain, and log "desired N: <reason>" (info when the count or its reason changed
 * since the last successful publish, else debug; a refused publish is logged as a warning).
 * Returns host->publish()'s result. */
int sb_policy_publish(sb_policy *p, const sb_host *host, sb_instance *inst, uint64_t now_ns,
                      int64_t desired, const sb_reason *r);

/* ---- Failed inputs ---------------------------------------------------------------------- */

/* An input is the component an event comes from (ev->source_id): a trigger, or a connector
 * upstream. Failures are counted per input: an SB_TOPIC_ERROR event from it is one more
 * consecutive failure (its value, the trigger's own count, when that is a larger whole number),
 * and a value from it (a reading, or a desired count) resets the count. An input is *failed* once
 * its count reaches `fail_after`, until its next value. Then:
 *
 * - no `fallback`: the policy holds its last decision. It publishes nothing new and logs once
 *   "redis-jobs: 3 failures -> hold 4" (before any decision: "... -> hold (nothing decided
 *   yet)"). Values from the other inputs still decide as usual.
 * - `fallback: N`: the policy decides N at once, held to min/max and the scaler's bounds (each
 *   step in the reason) but not to the stabilisation windows, rate limits or cooldowns, as KEDA
 *   applies its fallback directly; it is published like any decision, its reason
 *   "redis-jobs: 3 failures -> fallback 2" (the input that failed first, and the count at which
 *   it did). While any input is failed, every event from an input (a value or an error) decides
 *   the fallback again, instead of its own decision. The fallback counts as a decision: the
 *   cooldowns and rate limits that follow start from it.
 *
 * A value from a failed input logs "redis-jobs: reading again after 5 failures" (info; debug
 * for an input that had not reached fail_after) and is then decided on as usual (or, with
 * `fallback`, still gives the fallback while another input is failed).
 *
 * Call it first in on_event, with every event. Returns 1 when the event is dealt with here and
 * the connector must decide nothing on it: every SB_TOPIC_ERROR event (never a value), and an
 * input's value while the fallback is in force (a connector may still remember that value, e.g.
 * combine does). Returns 0 otherwise (other topics too). At most SB_POLICY_INPUTS_MAX inputs with
 * failures are remembered. */
#define SB_POLICY_INPUTS_MAX 1024
int sb_policy_failures_on_event(sb_policy *p, const sb_host *host, sb_instance *inst,
                                const sb_event *ev);
/* The consecutive failures counted for input `source_id` (0: none since its last value), and the
 * number of inputs failed now. */
uint64_t sb_policy_input_failures(const sb_policy *p, const char *source_id);
size_t sb_policy_failed_inputs(const sb_policy *p);

/* ---- The connector glue every policy plugin shares --------------------------------------- */

/* A policy's own object behind its functions: made from the options (one value per options
 * row; a negative code and one line in err on failure), fed every event, freed; and the
 * sb_policy inside it, for the failure handling the glue does for it. */
typedef struct sb_policy_connector_ops {
    int (*create)(const sb_value *values, void **conn, char *err, size_t errlen);
    void (*on_event)(void *conn, const sb_host *host, sb_instance *inst, const sb_event *ev);
    void (*destroy)(void *conn);
    /* The connector's sb_policy. NULL: no failure handling, and error events reach on_event. */
    sb_policy *(*policy)(void *conn);
} sb_policy_connector_ops;

/* The descriptor's callbacks: create() through ops, then on_event() and destroy() for any
 * policy made so. on_event() hands each event to sb_policy_failures_on_event() first, and to
 * ops->on_event only when that returns 0: every policy on the glue gets fail_after and fallback
 * without code of its own. */
int sb_policy_connector_create(const sb_policy_connector_ops *ops, sb_instance *inst,
                               const sb_host *host, const sb_value *values, void **state,
                               char *err, size_t errlen);
void sb_policy_connector_on_event(void *state, const sb_event *ev);
void sb_policy_connector_destroy(void *state);

/* Defines NAME_create, a descriptor's create callback for the policy made by OPS:
 * SB_POLICY_CONNECTOR_CREATE(target, target_ops) then .create = target_create,
 * .on_event = sb_policy_connector_on_event, .destroy = sb_policy_connector_destroy. */
#define SB_POLICY_CONNECTOR_CREATE(name, ops)                                                      \
    static int name##_create(sb_instance *inst, const sb_host *host, const sb_value *values,      \
                             void **state, char *err, size_t errlen)                              \
    {                                                                                              \
        return sb_policy_connector_create(&(ops), inst, host, values, state, err, errlen);         \
    }

/* ---- State across a restart of the daemon (state.dir) -------------------------------------- */

/* What the policy keeps, as a JSON object for the descriptor's snapshot(): the stabilisation and
 * rate-limit windows with their times, the last decision and its time, the time of the last change
 * (cooldowns) and the start of a run of zero demand (idle_after). Times are written as wall-clock
 * milliseconds and put back by their age on the wall clock, so a restart after N seconds ages
 * each window by N seconds. NULL when out of memory. These two need libcjson at link time. */
struct cJSON *sb_policy_snapshot(const sb_policy *p);
/* Put a snapshot back into a policy just made (before its first event): every field is checked
 * before anything changes, unknown fields are ignored, entries older than their window are
 * dropped, and the policy's own options (window lengths, cooldowns) decide what still counts.
 * Returns 0, or -EINVAL with one line in err (a newer format, a field of the wrong type). */
int sb_policy_restore(sb_policy *p, const struct cJSON *snap, char *err, size_t errlen);

/* The descriptor's snapshot and restore for a policy made by the connector glue:
 * .snapshot = sb_policy_connector_snapshot, .restore = sb_policy_connector_restore
 * (SB_POLICY_CONNECTOR_STATE does both). */
struct cJSON *sb_policy_connector_snapshot(void *state);
int sb_policy_connector_restore(void *state, const struct cJSON *snap, char *err, size_t errlen);
#define SB_POLICY_CONNECTOR_STATE                                                                  \
    .snapshot = sb_policy_connector_snapshot, .restore = sb_policy_connector_restore

/* Defines NAME_snapshot and NAME_restore for a connector whose state (TYPE) holds its sb_policy
 * in FIELD, not made by the glue: SB_POLICY_STATE(waiter, waiter_state, policy) then
 * .snapshot = waiter_snapshot, .restore = waiter_restore. */
#define SB_POLICY_STATE(name, type, field)                                                         \
    static struct cJSON *name##_snapshot(void *state)                                              \
    {                                                                                              \
        return sb_policy_snapshot(((type *)state)->field);                                         \
    }                                                                                              \
    static int name##_restore(void *state, const struct cJSON *snap, char *err, size_t errlen)     \
    {                                                                                              \
        return sb_policy_restore(((type *)state)->field, snap, err, errlen);                       \
    }

#ifdef __cplusplus
}
#endif
#endif
