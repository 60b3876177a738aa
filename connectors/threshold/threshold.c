/*
 * threshold.c - the `threshold` connector: a scaling policy with an upper and a lower band, each
 * with one action (add, add a percent, or set a count) after enough consecutive readings in it,
 * as Nomad's threshold strategy and AWS step scaling. The bands live in threshold_core.c, the
 * limits every policy shares in the policy library; this file is the descriptor and glue.
 */
#include <errno.h>
#include <stdlib.h>

#include "scalebus/plugin.h"
#include "threshold_core.h"

typedef struct threshold_state {
    sb_instance *inst;
    const sb_host *host;
    threshold_conn *conn;
} threshold_state;

static int threshold_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                            void **state, char *err, size_t errlen)
{
    threshold_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    int rc = threshold_conn_new(values, &s->conn, err, errlen);
    if (rc != 0) {
        free(s);
        return rc;
    }
    s->inst = inst;
    s->host = host;
    *state = s;
    return 0;
}

static void threshold_on_event(void *state, const sb_event *ev)
{
    threshold_state *s = state;
    threshold_conn_on_event(s->conn, s->host, s->inst, ev);
}

static void threshold_destroy(void *state)
{
    threshold_state *s = state;
    if (!s)
        return;
    threshold_conn_free(s->conn);
    free(s);
}

static const sb_plugin_descriptor threshold_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "threshold",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "upper and lower bands, each adding, adding a percent or setting a count "
                   "after `within` readings in it",
    .options = threshold_options,
    .create = threshold_create,
    .destroy = threshold_destroy,
    .on_event = threshold_on_event,
};

SB_PLUGIN_EXPORT(threshold_descriptor)
