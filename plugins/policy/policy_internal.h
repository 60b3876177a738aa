/*
 * policy_internal.h - the policy's own state, shared by policy.c (the decisions) and
 * policy_state.c (its snapshot and restore across a restart of the daemon). Not in the SDK.
 *
 * policy_state.c is its own object in the static library so that a plugin that never calls
 * sb_policy_snapshot/sb_policy_restore does not need libcjson at link time.
 */
#ifndef SCALEBUS_POLICY_INTERNAL_H
#define SCALEBUS_POLICY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/policy.h"

/* ---- monotonic window queues (policy.c) ---- */

typedef struct window_entry {
    uint64_t t; /* when the entry stops counting: plus the window length */
    int64_t v;
} window_entry;

typedef struct window {
    window_entry *e; /* ring buffer */
    size_t head, len, cap;
    int keep_max; /* 1: the front is the highest value; 0: the lowest */
} window;

static inline window_entry *policy_window_entry(const window *w, size_t i)
{
    return &w->e[(w->head + i) % w->cap];
}

/* Append (t, v), dropping the entries it makes irrelevant; entries must come in time order. */
void policy_window_push(window *w, uint64_t t, int64_t v);

/* ---- the policy ---- */

/* An input with failures since its last value. */
typedef struct failing_input {
    char *id;
    uint64_t failures;  /* consecutive */
    uint64_t failed_at; /* the count at which it reached fail_after; 0: not failed yet */
    uint64_t order;     /* which failed first: the fallback's reason names that one */
} failing_input;

struct sb_policy {
    sb_policy_options o;
    uint64_t stabilize_up_ns, stabilize_down_ns, cooldown_up_ns, cooldown_down_ns;
    uint64_t period_ns, idle_after_ns;

    int has_observed;
    int64_t observed;               /* the running count the scaler last reported */
    int64_t scaler_min, scaler_max; /* its bounds, from the same report (-1: not known) */
    int has_decided;
    int64_t decided; /* the count this policy last decided */
    int has_change;
    uint64_t change_ns; /* when the decided count last changed (cooldowns) */

    int has_now;
    uint64_t now_ns; /* the newest event time seen: time never runs backwards here */
    int zero_streak;
    uint64_t zero_since_ns; /* start of the current run of zero demand (idle_after) */

    window rec_high, rec_low; /* recommendations: stabilize_down, stabilize_up */
    window dec_high, dec_low; /* earlier decided counts, by the time they ended: rate limits */

    int has_published;
    int64_t published;
    char published_reason[sizeof(((sb_reason *)0)->text)];

    failing_input *inputs; /* inputs with failures since their last value */
    size_t ninputs, inputs_cap;
    size_t nfailed;      /* of them, those at fail_after or more */
    uint64_t next_order; /* for failing_input.order */
    int warned_full;     /* the "too many failing inputs" line has been written */
};

/* The connector glue's state (sb_policy_connector_create). */
typedef struct policy_connector {
    const sb_policy_connector_ops *ops;
    sb_instance *inst;
    const sb_host *host;
    void *conn;
} policy_connector;

#endif
