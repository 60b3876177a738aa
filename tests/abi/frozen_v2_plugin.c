/*
 * frozen_v2_plugin.c - a trigger built against a frozen copy of the ABI-2 header
 * (tests/abi/v2/scalebus/plugin.h, never edited), as a plugin built when ABI 2 came out and never
 * rebuilt would be. test_abi loads it into today's daemon: it must keep loading, get its options,
 * and have what it publishes reach a subscriber, however plugin.h has grown since.
 *
 * Type "frozen_v2". Options: level (int, required), name (string, default "frozen"), interval
 * (duration, default 20ms). Every interval, and on each "run", it publishes a reading of value
 * `level` with the label name=NAME. It includes the frozen header by its path relative to this
 * file, so no include folder can hand it the live one.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "v2/scalebus/plugin.h"

_Static_assert(SB_ABI_VERSION == 2, "the frozen header is the ABI-2 one");

enum { OPT_LEVEL, OPT_NAME, OPT_INTERVAL };

static const sb_option_spec frozen_options[] = {
    {"level", SB_OPT_INT, NULL, 1, "the value of every reading"},
    {"name", SB_OPT_STRING, "frozen", 0, "label name= on every reading"},
    {"interval", SB_OPT_DURATION, "20ms", 0, "time between readings"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct frozen_state {
    sb_instance *inst;
    const sb_host *host;
    double level;
    char name[64]; /* a copy: option values live until destroy(), but copying is the habit */
    uint64_t interval_ms;
    sb_timer *timer;
} frozen_state;

static int frozen_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    if (!values[OPT_LEVEL].is_set) {
        snprintf(err, errlen, "option 'level' must be set");
        return -EINVAL;
    }
    frozen_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    s->level = (double)values[OPT_LEVEL].integer;
    snprintf(s->name, sizeof s->name, "%s", values[OPT_NAME].str ? values[OPT_NAME].str : "");
    s->interval_ms = values[OPT_INTERVAL].duration_ms ? values[OPT_INTERVAL].duration_ms : 20;
    *state = s;
    return SB_OK;
}

static void frozen_publish(frozen_state *s)
{
    sb_label label = {"name", s->name};
    sb_publish ev = {SB_PUBLISH_INIT,   .topic = SB_TOPIC_READING, .flags = SB_EVENT_COALESCE,
                     .value = s->level, .labels = &label,          .nlabels = 1};
    int rc = s->host->publish(s->inst, &ev);
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not publish (error %d)", rc);
}

static void frozen_tick(void *arg)
{
    frozen_publish(arg);
}

static int frozen_start(void *state)
{
    frozen_state *s = state;
    s->timer = s->host->timer_new(s->inst, s->interval_ms, s->interval_ms, frozen_tick, s);
    return s->timer ? SB_OK : -ENOMEM;
}

static int frozen_stop(void *state)
{
    frozen_state *s = state;
    if (s->timer)
        s->host->timer_free(s->timer);
    s->timer = NULL;
    return SB_OK;
}

static void frozen_destroy(void *state)
{
    free(state);
}

static void frozen_on_event(void *state, const sb_event *ev)
{
    if (SB_EVENT_HAS(ev, payload) && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        frozen_publish(state);
}

static const sb_plugin_descriptor frozen_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "frozen_v2",
    .kind = SB_KIND_TRIGGER,
    .version = "2.0.0",
    .description = "test-only trigger built against the frozen ABI-2 header",
    .options = frozen_options,
    .create = frozen_create,
    .start = frozen_start,
    .stop = frozen_stop,
    .destroy = frozen_destroy,
    .on_event = frozen_on_event,
};

SB_PLUGIN_EXPORT(frozen_descriptor)
