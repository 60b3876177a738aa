/*
 * threshold.c - the `threshold` connector: a scaling policy with an upper and a lower band, each
 * with one action (add, add a percent, or set a count) after enough consecutive readings in it,
 * as Nomad's threshold strategy and AWS step scaling. The bands live in threshold_core.c, the
 * limits every policy shares in the policy library; this file is the plugin's descriptor.
 */
#include "scalebus/plugin.h"
#include "scalebus/policy.h"
#include "threshold_core.h"

static int threshold_new(const sb_value *values, void **conn, char *err, size_t errlen)
{
    threshold_conn *c = NULL;
    int rc = threshold_conn_new(values, &c, err, errlen);
    *conn = c;
    return rc;
}

static sb_policy *threshold_policy(void *conn)
{
    return threshold_conn_policy(conn);
}

static const sb_policy_connector_ops threshold_ops = {
    .create = threshold_new,
    .on_event = threshold_conn_on_event,
    .destroy = threshold_conn_free,
    .policy = threshold_policy,
};

SB_POLICY_CONNECTOR_CREATE(threshold, threshold_ops)

static const sb_plugin_descriptor threshold_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "threshold",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "upper and lower bands, each adding, adding a percent or setting a count "
                   "after `within` readings in it",
    .options = threshold_options,
    .create = threshold_create,
    .destroy = sb_policy_connector_destroy,
    .on_event = sb_policy_connector_on_event,
    SB_POLICY_CONNECTOR_STATE, /* windows, cooldowns, last decision across a restart */
    .accepts = SB_ACCEPTS_ERRORS, /* the policy library holds or falls back on failures */
};

SB_PLUGIN_EXPORT(threshold_descriptor)
