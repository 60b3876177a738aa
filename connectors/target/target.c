/*
 * target.c - the `target` connector: a scaling policy that asks for enough instances to hold a
 * value at its target, either a total shared out per instance (a queue length) or a per-instance
 * average held at `target` (the HPA's formula). The formula lives in target_core.c, the limits
 * every policy shares in the policy library; this file is the plugin's descriptor and glue.
 */
#include <errno.h>
#include <stdlib.h>

#include "scalebus/plugin.h"
#include "target_core.h"

typedef struct target_state {
    sb_instance *inst;
    const sb_host *host;
    target_conn *conn;
} target_state;

static int target_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    target_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = target_conn_new(values, &s->conn, err, errlen);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->inst = inst;
    s->host = host;
    *state = s;
    return 0;
}

static void target_on_event(void *state, const sb_event *ev)
{
    target_state *s = state;
    target_conn_on_event(s->conn, s->host, s->inst, ev);
}

static void target_destroy(void *state)
{
    target_state *s = state;
    if (!s)
        return;
    target_conn_free(s->conn);
    free(s);
}

static const sb_plugin_descriptor target_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "target",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "enough instances to hold a value at its target: ceil(value / per_instance), "
                   "or ceil(current x value / target)",
    .options = target_options,
    .create = target_create,
    .destroy = target_destroy,
    .on_event = target_on_event,
};

SB_PLUGIN_EXPORT(target_descriptor)
