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
 * the wall clock, so `scalebus simulate` replays the same decisions on virtual time.
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

/* The common options, as options-table rows. Put SB_POLICY_OPTIONS first in a policy plugin's
 * table: the first SB_POLICY_OPTION_COUNT sb_value entries handed to create() are then theirs,
 * for sb_policy_options_read(values, ...). */
#define SB_POLICY_OPTIONS                                                                          \
    {"min", SB_OPT_INT, "0", 0, "fewest instances this policy asks for"},                          \
        {"max", SB_OPT_INT, NULL, 0, "most instances this policy asks for (default: no limit "     \
                                     "here; the scaler's max still holds)"},                       \
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
         "go to zero only after this long with zero demand"}
#define SB_POLICY_OPTION_COUNT 11

typedef struct sb_policy_options {
    int64_t min;
    int64_t max; /* -1: no limit */
    uint64_t cooldown_up_ms, cooldown_down_ms;
    uint64_t stabilize_up_ms, stabilize_down_ms;
    double max_step_up, max_step_down; /* -1: no limit */
    int step_up_percent, step_down_percent; /* 1: the step is a percent of the current count */
    uint64_t period_ms;
    int has_activation;
    double activate_above;
    uint64_t idle_after_ms;
} sb_policy_options;

/* Read the SB_POLICY_OPTION_COUNT common values. Returns 0, or -EINVAL with a one-line message
 * that starts with the option's name ("max_step_up: expected a count or a percent, got 'x'"). */
int sb_policy_options_read(const sb_value *values, sb_policy_options *out, char *err,
                           size_t errlen);

/* A decision's reason chain, e.g. "queue=13 per_instance=2 -> 7; max 5 -> 5". */
typedef struct sb_reason {
    char text[512];
    size_t len;
} sb_reason;

void sb_reason_init(sb_reason *r);
void sb_reason_addf(sb_reason *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef struct sb_policy sb_policy;

sb_policy *sb_policy_new(const sb_policy_options *o);
void sb_policy_free(sb_policy *p);

/* Feed an SB_TOPIC_INSTANCES event from a scaler this policy drives (ev->value: its running
 * count). Until one arrives, the current count is the policy's own last decision (0 at first). */
void sb_policy_observe(sb_policy *p, const sb_event *ev);
int64_t sb_policy_current(const sb_policy *p);

typedef struct sb_policy_input {
    uint64_t now_ns; /* the reading's time (ev->mono_ns) */
    double raw;      /* the formula's recommendation; fractional values are rounded up */
    int has_metric;  /* 1: `metric` is compared with activate_above */
    double metric;   /* usually the reading's value */
    int hold;        /* 1: the formula says "no change" (inside a tolerance): keep current */
} sb_policy_input;

/* Apply the common limits to a recommendation. Returns the decided count and appends each step
 * that changed the value to r (the caller has already written the formula's own part). */
int64_t sb_policy_decide(sb_policy *p, const sb_policy_input *in, sb_reason *r);

/* Publish a decision: SB_TOPIC_DESIRED with value = desired, time_ns = now_ns and one label
 * "reason" = the chain, and log it (info when the count or its reason changed, else debug). */
int sb_policy_publish(sb_policy *p, const sb_host *host, sb_instance *inst, uint64_t now_ns,
                      int64_t desired, const sb_reason *r);

#ifdef __cplusplus
}
#endif
#endif
