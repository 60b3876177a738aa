/*
 * direct.c - the `direct` connector: passes each reading's value on unchanged. The daemon turns it
 * into a desired count for a scaler target (rounded up, held to the scaler's min/max) or into
 * "run now" for a trigger target. Labels travel with it; the scaler's instance lists, which the
 * daemon sends to every connector of a scaler, are ignored.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"

typedef struct direct_state {
    sb_instance *inst;
    const sb_host *host;
} direct_state;

static const sb_option_spec direct_options[] = {
    {NULL, 0, NULL, 0, NULL},
};

static int direct_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    (void)values;
    (void)err;
    (void)errlen;
    direct_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->inst = inst;
    s->host = host;
    *state = s;
    return 0;
}

static void direct_on_event(void *state, const sb_event *ev)
{
    direct_state *s = state;
    /* A scaler's instance list (sent to every connector of it) is not a reading to pass on. */
    if (strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0)
        return;
    sb_publish out = {
        SB_PUBLISH_INIT,
        .topic = SB_TOPIC_DESIRED,
        .value = ev->value,
        .labels = ev->labels,
        .nlabels = ev->nlabels,
        .time_ns = ev->mono_ns, /* the reading's time: virtual time in `scalebus simulate` */
    };
    int rc = s->host->publish(s->inst, &out);
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not pass on %g from %s (error %d)", ev->value,
                     ev->source_id, rc);
}

static void direct_destroy(void *state)
{
    free(state);
}

static const sb_plugin_descriptor direct_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "direct",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description =
        "passes each reading on unchanged: a desired count to scalers, run-now to triggers",
    .options = direct_options,
    .create = direct_create,
    .destroy = direct_destroy,
    .on_event = direct_on_event,
};

SB_PLUGIN_EXPORT(direct_descriptor)
