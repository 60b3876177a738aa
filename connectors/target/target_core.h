/*
 * target_core.h - the `target` connector's options, formula and state, kept apart from its
 * descriptor (target.c) so tests/test_policy can drive it directly against a fake host.
 */
#ifndef SCALEBUS_TARGET_CORE_H
#define SCALEBUS_TARGET_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"
#include "scalebus/policy.h"

enum {
    TARGET_OPT_PER_INSTANCE,
    TARGET_OPT_MODE,
    TARGET_OPT_TARGET,
    TARGET_OPT_TOLERANCE,
    TARGET_OPT_POLICY, /* the SB_POLICY_OPTIONS rows start here */
    TARGET_OPT_COUNT = TARGET_OPT_POLICY + SB_POLICY_OPTION_COUNT
};

/* The options table: TARGET_OPT_COUNT rows and the NULL row that ends it. */
extern const sb_option_spec target_options[TARGET_OPT_COUNT + 1];

typedef struct target_conn target_conn;

/* Builds a connector from one value per options row. Returns 0, -ENOMEM, or -EINVAL with a
 * one-line message starting with the option's name. */
int target_conn_new(const sb_value *values, target_conn **out, char *err, size_t errlen);
void target_conn_free(void *conn); /* a target_conn */

/* Decides on one reading (or another connector's desired count): writes the count and its
 * reason. Returns 0, or -EINVAL (nothing decided) when the value is not a finite number. */
int target_conn_decide(target_conn *t, const sb_event *ev, int64_t *desired, sb_reason *r);

/* The connector's on_event: an instance list updates the current count; a reading or a desired
 * count is decided on and published. */
void target_conn_on_event(void *conn, const sb_host *host, sb_instance *inst,
                            const sb_event *ev); /* conn: a target_conn */

/* The policy inside: for sb_policy_current() and sb_policy_decided(), and for the glue's
 * failure handling (sb_policy_connector_ops.policy). */
sb_policy *target_conn_policy(const target_conn *t);

#endif
