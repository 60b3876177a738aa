/*
 * push.c - the `push` trigger plugin: a trigger whose readings are pushed to it, by a script or an
 * application, through the admin API (POST /triggers/ID/readings, docs/admin.md).
 *
 * The plugin reads nothing: the daemon's admin endpoint finds the instance by id, checks that its
 * type is "push", and publishes each reading on the bus as this instance's source (a reading,
 * coalescible, with the labels the request gave). Keeping the path in the daemon means a push is
 * one bus publish on the loop thread, with no plugin call in between, and the plugin needs no
 * host function of its own. A "run" from a connector has nothing to read and is ignored.
 */
#include <errno.h>
#include <stdlib.h>

#include "scalebus/plugin.h"

typedef struct push_state {
    sb_instance *inst;
} push_state;

static const sb_option_spec push_options[] = {{0}};

static int push_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                       void **state, char *err, size_t errlen)
{
    (void)host;
    (void)values;
    (void)err;
    (void)errlen;
    push_state *st = calloc(1, sizeof *st);
    if (!st)
        return -ENOMEM;
    st->inst = inst;
    *state = st;
    return 0;
}

static int push_start(void *state)
{
    (void)state;
    return 0;
}

static int push_stop(void *state)
{
    (void)state;
    return 0;
}

static void push_destroy(void *state)
{
    free(state);
}

/* Nothing to read on "run": readings come only when someone pushes them. */
static void push_on_event(void *state, const sb_event *ev)
{
    (void)state;
    (void)ev;
}

static const sb_plugin_descriptor descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "push",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "Readings pushed over the admin API (POST /triggers/ID/readings)",
    .options = push_options,
    .create = push_create,
    .start = push_start,
    .stop = push_stop,
    .destroy = push_destroy,
    .on_event = push_on_event,
};

SB_PLUGIN_EXPORT(descriptor)
