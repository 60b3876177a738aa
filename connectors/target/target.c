/*
 * target.c - the `target` connector: a scaling policy that asks for enough instances to hold a
 * value at its target, either a total shared out per instance (a queue length) or a per-instance
 * average held at `target` (the HPA's formula). The formula lives in target_core.c, the limits
 * every policy shares in the policy library; this file is the plugin's descriptor.
 */
#include "scalebus/plugin.h"
#include "scalebus/policy.h"
#include "target_core.h"

static int target_new(const sb_value *values, void **conn, char *err, size_t errlen)
{
    target_conn *c = NULL;
    int rc = target_conn_new(values, &c, err, errlen);
    *conn = c;
    return rc;
}

static sb_policy *target_policy(void *conn)
{
    return target_conn_policy(conn);
}

static const sb_policy_connector_ops target_ops = {
    .create = target_new,
    .on_event = target_conn_on_event,
    .destroy = target_conn_free,
    .policy = target_policy,
};

SB_POLICY_CONNECTOR_CREATE(target, target_ops)

static const sb_plugin_descriptor target_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "target",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "enough instances to hold a value at its target: ceil(value / per_instance), "
                   "or ceil(current x value / target)",
    .options = target_options,
    .create = target_create,
    .destroy = sb_policy_connector_destroy,
    .on_event = sb_policy_connector_on_event,
    SB_POLICY_CONNECTOR_STATE, /* windows, cooldowns, last decision across a restart */
    .accepts = SB_ACCEPTS_ERRORS, /* the policy library holds or falls back on failures */
};

SB_PLUGIN_EXPORT(target_descriptor)
