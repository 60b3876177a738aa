/*
 * probe.c - test-only plugins for test_daemon: `probe_trigger` (a trigger that counts the "run
 * now" events it receives) and `probe_scaler` (a scaler that records every desired count it is
 * given). Their records live in one exported struct that the test reads through dlsym, so the
 * test sees exactly what the daemon delivered to a plugin.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"

#include "probe.h"

__attribute__((visibility("default"))) probe_results probe_stats;

typedef struct probe_state {
    probe_record *rec;
} probe_state;

static probe_record *probe_find(const char *id)
{
    for (int i = 0; i < probe_stats.n; i++)
        if (strcmp(probe_stats.rec[i].id, id) == 0)
            return &probe_stats.rec[i];
    if (probe_stats.n == PROBE_MAX)
        return NULL;
    probe_record *r = &probe_stats.rec[probe_stats.n++];
    memset(r, 0, sizeof *r);
    strncpy(r->id, id, sizeof r->id - 1);
    return r;
}

static const sb_option_spec probe_options[] = {
    {"tag", SB_OPT_STRING, "none", 0, "any text; changing it changes the component"},
    {NULL, 0, NULL, 0, NULL},
};

static int probe_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                        char *err, size_t errlen)
{
    probe_record *r = probe_find(host->instance_id(inst));
    if (!r)
        return -ENOSPC;
    probe_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->rec = r;
    r->creates++;
    strncpy(r->last_option, v[0].str ? v[0].str : "", sizeof r->last_option - 1);
    *state = s;
    return 0;
}

static int probe_start(void *state)
{
    ((probe_state *)state)->rec->starts++;
    return 0;
}

static int probe_stop(void *state)
{
    ((probe_state *)state)->rec->stops++;
    return 0;
}

static void probe_destroy(void *state)
{
    probe_state *s = state;
    s->rec->destroys++;
    free(s);
}

static void probe_on_event(void *state, const sb_event *ev)
{
    probe_record *r = ((probe_state *)state)->rec;
    if (strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        r->runs++;
    else if (r->nvalues < PROBE_VALUES)
        r->values[r->nvalues++] = ev->value;
}

#ifdef PROBE_TRIGGER
#define PROBE_TYPE "probe_trigger"
#define PROBE_KIND SB_KIND_TRIGGER
#define PROBE_DESCRIPTION "test trigger: counts run-now events"
#else
#define PROBE_TYPE "probe_scaler"
#define PROBE_KIND SB_KIND_SCALER
#define PROBE_DESCRIPTION "test scaler: records desired counts"
#endif

static const sb_plugin_descriptor probe_descriptor = {
    .abi_version = SB_ABI_VERSION,
    .size = sizeof(sb_plugin_descriptor),
    .type = PROBE_TYPE,
    .kind = PROBE_KIND,
    .version = "1.0.0",
    .description = PROBE_DESCRIPTION,
    .options = probe_options,
    .create = probe_create,
    .start = probe_start,
    .stop = probe_stop,
    .destroy = probe_destroy,
    .on_event = probe_on_event,
};
SB_PLUGIN_EXPORT(probe_descriptor)
