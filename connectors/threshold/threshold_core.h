/*
 * threshold_core.h - the `threshold` connector's options, bands and state, kept apart from its
 * descriptor (threshold.c) so tests/test_policy can drive it directly against a fake host.
 */
#ifndef SCALEBUS_THRESHOLD_CORE_H
#define SCALEBUS_THRESHOLD_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"
#include "scalebus/policy.h"

enum {
    THRESHOLD_OPT_UPPER,
    THRESHOLD_OPT_UPPER_ACTION,
    THRESHOLD_OPT_UPPER_AMOUNT,
    THRESHOLD_OPT_LOWER,
    THRESHOLD_OPT_LOWER_ACTION,
    THRESHOLD_OPT_LOWER_AMOUNT,
    THRESHOLD_OPT_WITHIN,
    THRESHOLD_OPT_POLICY, /* the SB_POLICY_OPTIONS rows start here */
    THRESHOLD_OPT_COUNT = THRESHOLD_OPT_POLICY + SB_POLICY_OPTION_COUNT
};

/* The options table: THRESHOLD_OPT_COUNT rows and the NULL row that ends it. */
extern const sb_option_spec threshold_options[THRESHOLD_OPT_COUNT + 1];

typedef struct threshold_conn threshold_conn;

/* Builds a connector from one value per options row. Returns 0, -ENOMEM, or -EINVAL with a
 * one-line message starting with the option's name. */
int threshold_conn_new(const sb_value *values, threshold_conn **out, char *err, size_t errlen);
void threshold_conn_free(void *conn); /* a threshold_conn */

/* Decides on one reading (or another connector's desired count): writes the count and its
 * reason. Returns 0, or -EINVAL (nothing decided, nothing counted) when the value is not a
 * finite number. */
int threshold_conn_decide(threshold_conn *t, const sb_event *ev, int64_t *desired, sb_reason *r);

/* The connector's on_event: an instance list updates the current count; a reading or a desired
 * count is decided on and published. */
void threshold_conn_on_event(void *conn, const sb_host *host, sb_instance *inst,
                               const sb_event *ev); /* conn: a threshold_conn */

/* The policy inside: for sb_policy_current() and sb_policy_decided(), and for the glue's
 * failure handling (sb_policy_connector_ops.policy). */
sb_policy *threshold_conn_policy(const threshold_conn *t);

#endif
