/*
 * instances_recorder.c - a test-only trigger that writes each instance list a scaler publishes
 * (SB_TOPIC_INSTANCES, its cJSON payload) to a file, one line per event: "<active count> <JSON>".
 * tests/test_marathon.sh loads it with --plugin-dir to see the instances event as any subscriber
 * does (id, address, state, started_at). It publishes nothing.
 *
 *   - { id: seen, type: instances_recorder, scaler: web, file: /tmp/x/instances.jsonl }
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "scalebus/plugin.h"

static const sb_option_spec recorder_options[] = {
    {"scaler", SB_OPT_STRING, NULL, 1, "the id of the scaler whose instance lists to write"},
    {"file", SB_OPT_STRING, NULL, 1, "the file each list is appended to, one line each"},
    {NULL, 0, NULL, 0, NULL}};

typedef struct recorder {
    const char *file;
} recorder;

static void on_instances(void *arg, const sb_event *ev)
{
    recorder *r = arg;
    char *text = ev->payload ? cJSON_PrintUnformatted(ev->payload) : NULL;
    FILE *f = fopen(r->file, "a");
    if (f) {
        fprintf(f, "%g %s\n", ev->value, text ? text : "null");
        fclose(f);
    }
    free(text);
}

static int recorder_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                           void **state, char *err, size_t errlen)
{
    recorder *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->file = values[1].str;
    int64_t h = host->subscribe(inst, values[0].str, SB_TOPIC_INSTANCES, on_instances, r);
    if (h < 0) {
        snprintf(err, errlen, "scaler: no component '%s'", values[0].str);
        free(r);
        return (int)h;
    }
    *state = r;
    return 0;
}

static int recorder_start(void *state)
{
    (void)state;
    return 0;
}

static int recorder_stop(void *state)
{
    (void)state;
    return 0;
}

static void recorder_destroy(void *state)
{
    free(state); /* the subscription goes with the instance */
}

static const sb_plugin_descriptor recorder_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "instances_recorder",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "test only: writes a scaler's instance lists to a file",
    .options = recorder_options,
    .create = recorder_create,
    .start = recorder_start,
    .stop = recorder_stop,
    .destroy = recorder_destroy,
};

SB_PLUGIN_EXPORT(recorder_descriptor)
