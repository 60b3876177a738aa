/*
 * fuzz_config.c - libFuzzer target for pipeline files (core/config.c): parses arbitrary bytes as
 * a pipeline file and validates it against three plugins whose options tables hold every option
 * type, then prints every error and (when valid) walks every component's values. A file must
 * never crash the daemon, hang it or make it leak; and every error must carry a message and a
 * position inside the text (line 0 only for whole-file problems).
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON; run: tests/fuzz/run.sh BUILD_DIR SECONDS config
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const sb_option_spec trigger_options[] = {
    {"schedule", SB_OPT_STRING, NULL, 1, "when"},
    {"value", SB_OPT_NUMBER, "1", 0, "value"},
    {"every", SB_OPT_DURATION, "10s", 0, "period"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec connector_options[] = {
    {"per_instance", SB_OPT_NUMBER, "1", 0, "share"},
    {"enabled", SB_OPT_BOOL, "true", 0, "on"},
    {"steps", SB_OPT_INT, "3", 0, "steps"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec scaler_options[] = {
    {"command", SB_OPT_LIST, NULL, 1, "argv"},
    {"env", SB_OPT_MAP, NULL, 0, "env"},
    {"tags", SB_OPT_LIST, "[a, b]", 0, "tags"},
    {"stop_grace", SB_OPT_DURATION, "10s", 0, "grace"},
    {NULL, 0, NULL, 0, NULL},
};

/* A map of objects two levels deep (a router's services and their health checks). */
static const sb_option_spec check_fields[] = {
    {"path", SB_OPT_STRING, "/", 0, "path"},
    {"every", SB_OPT_DURATION, "5s", 0, "period"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec service_fields[] = {
    {"backend", SB_OPT_STRING, NULL, 1, "scaler"},
    {"hosts", SB_OPT_LIST, NULL, 0, "names"},
    {"health", SB_OPT_OBJECTS, NULL, 0, "checks"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_spec router_options[] = {
    {"services", SB_OPT_OBJECTS, NULL, 0, "services"},
    {NULL, 0, NULL, 0, NULL},
};
static const sb_option_more router_more[] = {
    {"services", service_fields, 0},
    {"services.health", check_fields, 0},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor plugins[] = {
    {SB_DESCRIPTOR_SIZES, .type = "router", .kind = SB_KIND_TRIGGER,
     .options = router_options, SB_OPTIONS_MORE(router_more)},
    {SB_DESCRIPTOR_SIZES, .type = "cron", .kind = SB_KIND_TRIGGER,
     .options = trigger_options},
    {SB_DESCRIPTOR_SIZES, .type = "direct", .kind = SB_KIND_CONNECTOR,
     .options = connector_options},
    {SB_DESCRIPTOR_SIZES, .type = "process", .kind = SB_KIND_SCALER,
     .options = scaler_options},
};

static const sb_plugin_descriptor *lookup(void *ctx, const char *type)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++)
        if (strcmp(plugins[i].type, type) == 0)
            return &plugins[i];
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string((const char *)data, size, "fuzz.yaml", &errs);
    if (cfg)
        config_validate_plugins(cfg, lookup, NULL, &errs);
    for (size_t i = 0; i < errs.count; i++) {
        const config_error *e = &errs.items[i];
        if (!e->message || !e->message[0] || e->line < 0 || e->col < 0)
            __builtin_trap();
    }
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        config_errors_print(&errs, null);
        fclose(null);
    }
    if (cfg && errs.count == 0) {
        /* Touch every value a plugin would read. */
        volatile size_t sink = 0;
        for (size_t i = 0; i < cfg->ncomponents; i++) {
            const config_component *c = &cfg->components[i];
            if (!c->id || !c->type || !c->fingerprint)
                __builtin_trap();
            for (size_t v = 0; v < c->nvalues; v++) {
                const sb_value *val = &c->values[v];
                if (val->str)
                    sink += strlen(val->str);
                for (size_t k = 0; k < val->count; k++)
                    sink += strlen(val->items[k]) + (val->values ? strlen(val->values[k]) : 0);
                /* A map of objects (router.services): every object, every field, one level on. */
                for (size_t k = 0; val->objects && k < val->count; k++)
                    for (size_t f = 0; f < 3; f++) {
                        const sb_value *o = &val->objects[k][f];
                        sink += o->str ? strlen(o->str) : 0;
                        for (size_t h = 0; o->objects && h < o->count; h++)
                            sink += strlen(o->objects[h][0].str) + o->objects[h][1].duration_ms;
                    }
            }
            if (config_find(cfg, c->id) != c)
                __builtin_trap();
        }
        (void)sink;
    }
    config_free(cfg);
    config_errors_free(&errs);
    return 0;
}
