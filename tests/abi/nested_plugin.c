/*
 * nested_plugin.c - a trigger with a map of objects (SB_OPT_OBJECTS, host version 3), two levels
 * deep, and a secret option, for test_abi. Built three ways (NESTED_CASE):
 *   0  valid: type "nested_opts"
 *   1  options_more names an option it does not have: type "nested_badpath", refused
 *   2  a map of objects without its table in options_more: type "nested_notable", refused
 *
 * Options: services (required): name -> {backend (string, required), slots (int, default 4),
 * health: name -> {path (string, default "/"), interval (duration, default 5s)}}; token (string,
 * secret). At start it publishes one reading per service: value = slots, labels service,
 * backend, checks (how many health objects), path and interval_ms (of the first, or "-").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/plugin.h"

#ifndef NESTED_CASE
#define NESTED_CASE 0
#endif

enum { OPT_SERVICES, OPT_TOKEN, NOPTS };
enum { SVC_BACKEND, SVC_SLOTS, SVC_HEALTH, NSVC };
enum { HC_PATH, HC_INTERVAL, NHC };

static const sb_option_spec health_fields[] __attribute__((unused)) = {
    [HC_PATH] = {"path", SB_OPT_STRING, "/", 0, "path to probe"},
    [HC_INTERVAL] = {"interval", SB_OPT_DURATION, "5s", 0, "how often"},
    [NHC] = {NULL, 0, NULL, 0, NULL},
};

static const sb_option_spec service_fields[] = {
    [SVC_BACKEND] = {"backend", SB_OPT_STRING, NULL, 1, "the scaler behind it"},
    [SVC_SLOTS] = {"slots", SB_OPT_INT, "4", 0, "requests per instance"},
    [SVC_HEALTH] = {"health", SB_OPT_OBJECTS, NULL, 0, "health checks by name"},
    [NSVC] = {NULL, 0, NULL, 0, NULL},
};

static const sb_option_spec nested_options[] = {
    [OPT_SERVICES] = {"services", SB_OPT_OBJECTS, NULL, 1, "services by name"},
    [OPT_TOKEN] = {"token", SB_OPT_STRING, NULL, 0, "a secret"},
    [NOPTS] = {NULL, 0, NULL, 0, NULL},
};

static const sb_option_more nested_more[] = {
    {"services", service_fields, 0},
#if NESTED_CASE != 2
    {"services.health", health_fields, 0},
#endif
    {"token", NULL, SB_OPTION_SECRET},
#if NESTED_CASE == 1
    {"services.nope", NULL, SB_OPTION_SECRET},
#endif
    {NULL, NULL, 0},
};

typedef struct nested_state {
    sb_instance *inst;
    const sb_host *host;
    const sb_value *values;
} nested_state;

static int nested_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    nested_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->inst = inst;
    st->host = host;
    st->values = values; /* they live until destroy() */
    *state = st;
    return 0;
}

static int nested_start(void *state)
{
    nested_state *st = state;
    const sb_value *svc = &st->values[OPT_SERVICES];
    for (size_t i = 0; i < svc->count; i++) {
        const sb_value *o = svc->objects[i];
        const sb_value *hc = &o[SVC_HEALTH];
        char checks[16], interval[32];
        snprintf(checks, sizeof checks, "%zu", hc->count);
        snprintf(interval, sizeof interval, "%llu",
                 hc->count ? (unsigned long long)hc->objects[0][HC_INTERVAL].duration_ms : 0ull);
        sb_label labels[] = {
            {"service", svc->items[i]},
            {"backend", o[SVC_BACKEND].str},
            {"checks", checks},
            {"path", hc->count ? hc->objects[0][HC_PATH].str : "-"},
            {"interval_ms", hc->count ? interval : "-"},
        };
        sb_publish ev = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING,
                         .value = (double)o[SVC_SLOTS].integer, .labels = labels, .nlabels = 5};
        st->host->publish(st->inst, &ev);
    }
    return 0;
}

static int nested_stop(void *state)
{
    (void)state;
    return 0;
}

static void nested_destroy(void *state)
{
    free(state);
}

#if NESTED_CASE == 1
#define NESTED_TYPE "nested_badpath"
#elif NESTED_CASE == 2
#define NESTED_TYPE "nested_notable"
#else
#define NESTED_TYPE "nested_opts"
#endif

static const sb_plugin_descriptor nested_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = NESTED_TYPE,
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "test: a map of objects, two levels deep",
    .options = nested_options,
    .create = nested_create,
    .start = nested_start,
    .stop = nested_stop,
    .destroy = nested_destroy,
    SB_OPTIONS_MORE(nested_more),
};

SB_PLUGIN_EXPORT(nested_descriptor)
