/*
 * future_plugin.c - a trigger as a plugin built against a FUTURE plugin.h would look to today's
 * daemon: its descriptor, its options rows and its option values are all bigger than ours, grown
 * at their end as the ABI rules allow (fields appended; the sizes in the descriptor say how big).
 * The extra fields of the rows are set, so a host that walked the table with its own row size
 * would read them as names; the values handed to create() use the plugin's own, bigger stride,
 * and the fields today's host does not know must arrive zeroed.
 *
 * Type "future_abi". Options: level (int, required), scale (number, default 0.5), name (string,
 * default "future"). Every 20ms, and on each "run", it publishes level * scale with the label
 * name=NAME.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"

/* The future header's structs: today's, with fields appended. */
typedef struct future_option_spec {
    sb_option_spec current;
    const char *example; /* e.g. a line of YAML for --describe */
    int64_t since;       /* the plugin version that added the option */
} future_option_spec;

typedef struct future_value {
    sb_value current;
    const char *source_file; /* where the value was set (a future host fills it in) */
    int64_t source_line;
} future_value;

typedef struct future_descriptor {
    sb_plugin_descriptor current;
    int (*health)(void *state, char *buf, size_t len);
    const char *homepage;
} future_descriptor;

enum { OPT_LEVEL, OPT_SCALE, OPT_NAME, NOPTS };

static const future_option_spec future_options[] = {
    {{"level", SB_OPT_INT, NULL, 1, "base of each reading"}, "level: 4", 1},
    {{"scale", SB_OPT_NUMBER, "0.5", 0, "each reading is level * scale"}, "scale: 2", 2},
    {{"name", SB_OPT_STRING, "future", 0, "label name= on every reading"}, "name: web", 3},
    {{NULL, 0, NULL, 0, NULL}, NULL, 0},
};

typedef struct future_state {
    sb_instance *inst;
    const sb_host *host;
    double reading;
    char name[64];
    sb_timer *timer;
} future_state;

static int future_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    const future_value *v = (const future_value *)(const void *)values;
    for (int i = 0; i < NOPTS; i++) {
        if (v[i].source_file != NULL || v[i].source_line != 0) {
            snprintf(err, errlen, "option %d: fields this host does not know are not zero", i);
            return -EINVAL;
        }
    }
    if (!v[OPT_LEVEL].current.is_set) {
        snprintf(err, errlen, "option 'level' must be set");
        return -EINVAL;
    }
    future_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    s->reading = (double)v[OPT_LEVEL].current.integer * v[OPT_SCALE].current.number;
    snprintf(s->name, sizeof s->name, "%s", v[OPT_NAME].current.str ? v[OPT_NAME].current.str : "");
    *state = s;
    return SB_OK;
}

static void future_publish(future_state *s)
{
    sb_label label = {"name", s->name};
    sb_publish ev = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = s->reading,
                     .labels = &label, .nlabels = 1};
    int rc = s->host->publish(s->inst, &ev);
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not publish (error %d)", rc);
}

static void future_tick(void *arg)
{
    future_publish(arg);
}

static int future_start(void *state)
{
    future_state *s = state;
    s->timer = s->host->timer_new(s->inst, 20, 20, future_tick, s);
    return s->timer ? SB_OK : -ENOMEM;
}

static int future_stop(void *state)
{
    future_state *s = state;
    if (s->timer)
        s->host->timer_free(s->timer);
    s->timer = NULL;
    return SB_OK;
}

static void future_destroy(void *state)
{
    free(state);
}

static void future_on_event(void *state, const sb_event *ev)
{
    if (strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        future_publish(state);
}

static int future_health(void *state, char *buf, size_t len)
{
    (void)state;
    snprintf(buf, len, "ok");
    return 0;
}

static const future_descriptor future = {
    .current =
        {
            .abi_version = SB_ABI_VERSION,
            .size = sizeof(future_descriptor),
            .option_spec_size = sizeof(future_option_spec),
            .value_size = sizeof(future_value),
            .type = "future_abi",
            .kind = SB_KIND_TRIGGER,
            .version = "9.0.0",
            .description = "test-only trigger built against a bigger, future plugin.h",
            .options = (const sb_option_spec *)(const void *)future_options,
            .create = future_create,
            .start = future_start,
            .stop = future_stop,
            .destroy = future_destroy,
            .on_event = future_on_event,
        },
    .health = future_health,
    .homepage = "https://example.invalid/future_abi",
};

SB_PLUGIN_EXPORT(future.current)
