/*
 * bench_config.c - how long a big pipeline file takes to read: N pipelines (a cron trigger, a
 * direct connector, a process scaler with a three-item command each; 10,000 by default, so
 * 30,000 components) parsed, checked and validated against fake options tables like the real
 * plugins', then every scaler found by id. Prints the figures; it never fails on them (a test
 * asserts what happens, a benchmark says how fast on this machine).
 *
 *   build/tests/bench_config [PIPELINES]
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

static const sb_option_spec cron_options[] = {
    {"schedule", SB_OPT_STRING, NULL, 1, "cron expression"},
    {"value", SB_OPT_NUMBER, "1", 0, "reading value"},
    {"timezone", SB_OPT_STRING, "UTC", 0, "zone"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec direct_options[] = {
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec process_options[] = {
    {"command", SB_OPT_LIST, NULL, 1, "argv"},
    {"env", SB_OPT_MAP, NULL, 0, "environment"},
    {"stop_grace", SB_OPT_DURATION, "10s", 0, "grace"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_plugin_descriptor plugins[] = {
    {SB_DESCRIPTOR_SIZES, .type = "cron", .kind = SB_KIND_TRIGGER, .version = "1",
     .options = cron_options},
    {SB_DESCRIPTOR_SIZES, .type = "direct", .kind = SB_KIND_CONNECTOR, .version = "1",
     .options = direct_options},
    {SB_DESCRIPTOR_SIZES, .type = "process", .kind = SB_KIND_SCALER, .version = "1",
     .options = process_options},
};

static const sb_plugin_descriptor *lookup(void *ctx, const char *type)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
        if (strcmp(plugins[i].type, type) == 0)
            return &plugins[i];
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
    if (n < 1 || n > 12000) {
        fprintf(stderr, "usage: bench_config [PIPELINES: 1 to 12000, the 4 MiB file limit]\n");
        return 2;
    }
    size_t cap = (size_t)n * 300 + 64, len = 0;
    char *text = malloc(cap);
    if (text == NULL)
        return 1;
    len += (size_t)snprintf(text + len, cap - len, "triggers:\n");
    for (long i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - { id: t%05ld, type: cron, schedule: \"*/5 * * * * *\", "
                                "value: 3 }\n",
                                i);
    len += (size_t)snprintf(text + len, cap - len, "connectors:\n");
    for (long i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - { id: c%05ld, type: direct, from: t%05ld, to: w%05ld }\n", i,
                                i, i);
    len += (size_t)snprintf(text + len, cap - len, "scalers:\n");
    for (long i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - { id: w%05ld, type: process, command: [\"./worker\", "
                                "\"--queue\", \"jobs\"], min: 0, max: 10 }\n",
                                i);

    config_errors errs;
    config_errors_init(&errs);
    double t0 = now_s();
    config *cfg = config_parse_string(text, len, "bench.yaml", &errs);
    double t1 = now_s();
    int rc = cfg != NULL ? config_validate_plugins(cfg, lookup, NULL, &errs) : -1;
    double t2 = now_s();
    size_t found = 0;
    char id[24];
    for (long i = 0; cfg != NULL && i < n; i++) {
        snprintf(id, sizeof id, "w%05ld", i);
        found += config_find(cfg, id) != NULL;
    }
    double t3 = now_s();
    if (rc != 0 || errs.count != 0 || found != (size_t)n) {
        config_errors_print(&errs, stderr);
        fprintf(stderr, "bench_config: the generated file did not load\n");
    } else {
        printf("bench_config: %ld components (%zu bytes): parse + structure %.3f s, options "
               "%.3f s, total %.3f s (%.0f components/s); %ld lookups by id %.3f s\n",
               3 * n, len, t1 - t0, t2 - t1, t2 - t0, (double)(3 * n) / (t2 - t0), n, t3 - t2);
    }
    config_free(cfg);
    config_errors_free(&errs);
    free(text);
    return rc == 0 && found == (size_t)n ? 0 : 1;
}
