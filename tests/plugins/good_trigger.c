/*
 * good_trigger.c - a small, valid trigger plugin for test_loader (type "good_trigger").
 *
 * Its options table has one option of each type, and it calls the host only through the sb_host
 * table handed to create(): it logs once in create(), publishes one reading in start() and then
 * one per timer tick or "run" event, and frees its timer in stop(). test_loader drives it with a
 * fake host table of its own, which shows that the plugin needs no symbols from the daemon.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"

/* Rows of the options table, in order: values[] handed to create() has the same layout. */
enum { OPT_NAME, OPT_LEVEL, OPT_SCALE, OPT_ENABLED, OPT_INTERVAL, OPT_COMMAND, OPT_ENV };

static const sb_option_spec good_options[] = {
    {"name", SB_OPT_STRING, NULL, 1, "label put on every reading"},
    {"level", SB_OPT_INT, "3", 0, "base value of each reading"},
    {"scale", SB_OPT_NUMBER, "1.5", 0, "each reading is level * scale"},
    {"enabled", SB_OPT_BOOL, "true", 0, "publish at all"},
    {"interval", SB_OPT_DURATION, "10s", 0, "time between readings"},
    {"command", SB_OPT_LIST, NULL, 0, "an argv, only counted"},
    {"env", SB_OPT_MAP, NULL, 0, "environment, only counted"},
    {NULL, 0, NULL, 0, NULL},
};

typedef struct good_state {
    sb_instance *inst;
    const sb_host *host;
    const char *name; /* host-owned, lives as long as the instance */
    double reading;
    int enabled;
    uint64_t interval_ms;
    sb_timer *timer;
} good_state;

static int good_create(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                       char *err, size_t errlen)
{
    const sb_value *name = &values[OPT_NAME];
    if (!name->is_set || !name->str || !*name->str) {
        snprintf(err, errlen, "option 'name' must be set to a non-empty string");
        return -EINVAL;
    }
    if (values[OPT_INTERVAL].duration_ms == 0) {
        snprintf(err, errlen, "option 'interval' must be more than 0");
        return -EINVAL;
    }
    good_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    s->name = name->str;
    s->reading = (double)values[OPT_LEVEL].integer * values[OPT_SCALE].number;
    s->enabled = values[OPT_ENABLED].integer != 0;
    s->interval_ms = values[OPT_INTERVAL].duration_ms;
    host->log(inst, SB_LOG_INFO,
              "good_trigger %s ready: reading %g every %" PRIu64 "ms, %s, %zu command words, "
              "%zu env entries",
              host->instance_id(inst), s->reading, s->interval_ms,
              s->enabled ? "enabled" : "disabled", values[OPT_COMMAND].count,
              values[OPT_ENV].count);
    *state = s;
    return SB_OK;
}

static void good_publish(good_state *s)
{
    sb_label label = {"name", s->name};
    sb_publish ev = {SB_PUBLISH_INIT,     .topic = SB_TOPIC_READING, .flags = SB_EVENT_COALESCE,
                     .value = s->reading, .labels = &label,          .nlabels = 1};
    int rc = s->host->publish(s->inst, &ev);
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not publish %g (error %d)", s->reading, rc);
}

static void good_tick(void *arg)
{
    good_publish(arg);
}

static int good_start(void *state)
{
    good_state *s = state;
    if (!s->enabled)
        return SB_OK;
    s->timer = s->host->timer_new(s->inst, s->interval_ms, s->interval_ms, good_tick, s);
    if (!s->timer)
        return -ENOMEM;
    good_publish(s);
    return SB_OK;
}

static int good_stop(void *state)
{
    good_state *s = state;
    if (s->timer) {
        s->host->timer_free(s->timer);
        s->timer = NULL;
    }
    return SB_OK;
}

static void good_destroy(void *state)
{
    free(state);
}

static void good_on_event(void *state, const sb_event *ev)
{
    good_state *s = state;
    if (s->enabled && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        good_publish(s);
}

static const sb_plugin_descriptor good_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "good_trigger",
    .kind = SB_KIND_TRIGGER,
    .version = "0.0.1",
    .description = "test-only trigger: publishes level * scale every interval",
    .options = good_options,
    .create = good_create,
    .start = good_start,
    .stop = good_stop,
    .destroy = good_destroy,
    .on_event = good_on_event,
};

SB_PLUGIN_EXPORT(good_descriptor)
