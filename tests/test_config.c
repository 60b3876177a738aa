/*
 * test_config.c - the pipeline file: parsing, structure checks, options validation against fake
 * plugins' tables, defaults, ${VAR}, durations, limits, fingerprints, policies in a chain
 * (connectors feeding connectors, their cycles) and a 30,000-component file. Every error case
 * asserts the exact printed "FILE:LINE:COL: message" lines, because those lines are the user's
 * interface.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "strmap.h"

/* ---- Fake plugins ------------------------------------------------------------------------- */

static const sb_option_spec cron_options[] = {
    {.name = "schedule", .type = SB_OPT_STRING, .required = 1, .help = "cron expression"},
    {.name = "value", .type = SB_OPT_NUMBER, .default_value = "1", .help = "reading value"},
    {.name = "timezone", .type = SB_OPT_STRING, .default_value = "UTC", .help = "zone"},
    {.name = "jitter", .type = SB_OPT_DURATION, .default_value = "0s", .help = "random delay"},
    {.name = "enabled", .type = SB_OPT_BOOL, .default_value = "true", .help = "on or off"},
    {.name = "labels", .type = SB_OPT_MAP, .default_value = "{}", .help = "event labels"},
    {.name = NULL}};

static const sb_option_spec direct_options[] = {
    {.name = "factor", .type = SB_OPT_NUMBER, .default_value = "1", .help = "multiplier"},
    {.name = "cooldown", .type = SB_OPT_DURATION, .default_value = "30s", .help = "between"},
    {.name = NULL}};

static const sb_option_spec process_options[] = {
    {.name = "command", .type = SB_OPT_LIST, .required = 1, .help = "argv"},
    {.name = "env", .type = SB_OPT_MAP, .help = "environment"},
    {.name = "stop_timeout", .type = SB_OPT_DURATION, .default_value = "10s", .help = "grace"},
    {.name = "restart", .type = SB_OPT_BOOL, .default_value = "on", .help = "restart"},
    {.name = "workdir", .type = SB_OPT_STRING, .help = "cwd"},
    {.name = "grace", .type = SB_OPT_INT, .default_value = "5", .help = "seconds"},
    {.name = "extra_args", .type = SB_OPT_LIST, .default_value = "[--verbose, -x]", .help = "more"},
    {.name = NULL}};

/* A plugin with a broken default, to see that the user hears of it. */
static const sb_option_spec badplug_options[] = {
    {.name = "period", .type = SB_OPT_DURATION, .default_value = "soon", .help = "broken"},
    {.name = NULL}};

/* A router-like plugin: a map of objects (host version 3). */
static const sb_option_spec svc_fields[] = {
    {.name = "backend", .type = SB_OPT_STRING, .required = 1, .help = "scaler id"},
    {.name = "slots", .type = SB_OPT_INT, .default_value = "4", .help = "per instance"},
    {.name = "hosts", .type = SB_OPT_LIST, .help = "Host names"},
    {.name = NULL}};
static const sb_option_spec proxy_options[] = {
    {.name = "services", .type = SB_OPT_OBJECTS, .help = "by name"},
    {.name = NULL}};
static const sb_option_more proxy_more[] = {{"services", svc_fields, 0}, {NULL, NULL, 0}};

static const sb_plugin_descriptor fake_plugins[] = {
    {SB_DESCRIPTOR_SIZES,
     .type = "cron",
     .kind = SB_KIND_TRIGGER,
     .version = "1.0.0",
     .options = cron_options},
    {SB_DESCRIPTOR_SIZES,
     .type = "direct",
     .kind = SB_KIND_CONNECTOR,
     .version = "1.0.0",
     .options = direct_options},
    {SB_DESCRIPTOR_SIZES,
     .type = "process",
     .kind = SB_KIND_SCALER,
     .version = "1.0.0",
     .options = process_options},
    {SB_DESCRIPTOR_SIZES,
     .type = "badplug",
     .kind = SB_KIND_TRIGGER,
     .version = "0.1",
     .options = badplug_options},
    {SB_DESCRIPTOR_SIZES,
     .type = "proxy",
     .kind = SB_KIND_TRIGGER,
     .version = "1.0.0",
     .options = proxy_options,
     SB_OPTIONS_MORE(proxy_more)},
};

static const sb_plugin_descriptor *fake_lookup(void *ctx, const char *type)
{
    size_t *calls = ctx;
    if (calls != NULL)
        (*calls)++;
    for (size_t i = 0; i < sizeof fake_plugins / sizeof fake_plugins[0]; i++)
        if (strcmp(fake_plugins[i].type, type) == 0)
            return &fake_plugins[i];
    return NULL;
}

/* ---- Helpers ------------------------------------------------------------------------------ */

static char *errors_text(const config_errors *errs)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    config_errors_print(errs, f);
    fclose(f);
    return buf;
}

/* Parses text as test.yaml and, when that gave a config, validates it: both phases' errors. */
static char *check_text(const char *text)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), "test.yaml", &errs);
    if (cfg != NULL)
        config_validate_plugins(cfg, fake_lookup, NULL, &errs);
    char *out = errors_text(&errs);
    config_free(cfg);
    config_errors_free(&errs);
    return out;
}

/* A config that must be valid in both phases. */
static config *load_ok(const char *text, const char *name)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), name, &errs);
    ck_assert_ptr_nonnull(cfg);
    int rc = config_validate_plugins(cfg, fake_lookup, NULL, &errs);
    char *out = errors_text(&errs);
    ck_assert_msg(errs.count == 0 && rc == 0, "unexpected errors:\n%s", out);
    free(out);
    config_errors_free(&errs);
    return cfg;
}

static const sb_value *option(const config_component *c, const char *name)
{
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(c->plugin);
    for (size_t i = 0; i < c->nvalues; i++)
        if (strcmp(c->plugin->options[i].name, name) == 0)
            return &c->values[i];
    ck_abort_msg("no option %s", name);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A temporary folder for the tests that need real files; removed by the caller. */
static char *make_tmpdir(void)
{
    char *dir = strdup("/tmp/sb_test_config_XXXXXX");
    ck_assert_ptr_nonnull(dir);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    return dir;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    ck_assert_ptr_nonnull(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

/* ---- A valid file ------------------------------------------------------------------------- */

static const char valid_file[] =
    "plugins: { path: [./my-plugins, /opt/sb/plugins] }\n"
    "log: { level: debug }\n"
    "triggers:\n"
    "  - { id: every-5s, type: cron, schedule: \"*/5 * * * * *\", value: 3 }\n"
    "  - id: nightly\n"
    "    type: cron\n"
    "    schedule: \"0 0 3 * * *\"\n"
    "    jitter: 1m30s\n"
    "    enabled: Off\n"
    "    labels: { team: data }\n"
    "connectors:\n"
    "  - { id: ticks-to-workers, type: direct, from: every-5s, to: [workers, nightly] }\n"
    "  - id: fan\n"
    "    type: direct\n"
    "    from: [every-5s, nightly]\n"
    "    to: [workers, single]\n"
    "    match: { queue: \"build-*\", env: prod }\n"
    "    factor: 2.5\n"
    "scalers:\n"
    "  - { id: workers, type: process, command: [\"./worker\", \"--queue\", \"jobs\"], min: 0, "
    "max: 10 }\n"
    "  - id: single\n"
    "    type: process\n"
    "    command: ./one\n"
    "    env: { A: \"1\", B: two }\n"
    "    grace: -3\n"
    "    stop_timeout: 0.5\n"
    "    workdir: 42\n"
    "    min: 2\n"
    "    max: 2\n";

START_TEST(test_valid_file)
{
    config *cfg = load_ok(valid_file, "/etc/scalebus/pipes.yaml");
    ck_assert_str_eq(cfg->path, "/etc/scalebus/pipes.yaml");
    ck_assert_uint_eq(cfg->nplugin_paths, 2);
    ck_assert_str_eq(cfg->plugin_paths[0], "/etc/scalebus/my-plugins");
    ck_assert_str_eq(cfg->plugin_paths[1], "/opt/sb/plugins");
    ck_assert_int_eq(cfg->log_level_set, 1);
    ck_assert_int_eq(cfg->log_level, SB_LOG_DEBUG);

    /* Triggers, then connectors, then scalers, each in file order. */
    ck_assert_uint_eq(cfg->ncomponents, 6);
    static const char *const order[] = {"every-5s", "nightly", "ticks-to-workers",
                                        "fan",      "workers", "single"};
    for (size_t i = 0; i < 6; i++) {
        ck_assert_str_eq(cfg->components[i].id, order[i]);
        ck_assert_ptr_eq(config_find(cfg, order[i]), &cfg->components[i]);
    }
    ck_assert_ptr_null(config_find(cfg, "nope"));

    const config_component *t = config_find(cfg, "every-5s");
    ck_assert_int_eq(t->kind, SB_KIND_TRIGGER);
    ck_assert_str_eq(t->type, "cron");
    ck_assert_int_eq(t->line, 4);
    ck_assert_int_eq(t->col, 5);
    ck_assert_ptr_eq(t->plugin, &fake_plugins[0]);
    ck_assert_uint_eq(t->nvalues, 6);
    ck_assert_str_eq(option(t, "schedule")->str, "*/5 * * * * *");
    ck_assert(option(t, "value")->number == 3.0);
    ck_assert_str_eq(option(t, "value")->str, "3");
    /* Defaults, parsed like a value in the file would be. */
    ck_assert_int_eq(option(t, "timezone")->is_set, 1);
    ck_assert_str_eq(option(t, "timezone")->str, "UTC");
    ck_assert_int_eq(option(t, "jitter")->is_set, 1);
    ck_assert_uint_eq(option(t, "jitter")->duration_ms, 0);
    ck_assert_int_eq(option(t, "enabled")->integer, 1);
    ck_assert_int_eq(option(t, "labels")->is_set, 1);
    ck_assert_uint_eq(option(t, "labels")->count, 0);
    ck_assert_ptr_nonnull(t->fingerprint);

    const config_component *n = config_find(cfg, "nightly");
    ck_assert_int_eq(n->line, 5);
    ck_assert_int_eq(n->col, 5);
    ck_assert_uint_eq(option(n, "jitter")->duration_ms, 90000);
    ck_assert_int_eq(option(n, "enabled")->integer, 0);
    ck_assert(option(n, "value")->number == 1.0);
    ck_assert_uint_eq(option(n, "labels")->count, 1);
    ck_assert_str_eq(option(n, "labels")->items[0], "team");
    ck_assert_str_eq(option(n, "labels")->values[0], "data");

    const config_component *c = config_find(cfg, "ticks-to-workers");
    ck_assert_int_eq(c->kind, SB_KIND_CONNECTOR);
    ck_assert_uint_eq(c->nfrom, 1);
    ck_assert_str_eq(c->from[0], "every-5s");
    ck_assert_uint_eq(c->nto, 2);
    ck_assert_str_eq(c->to[0], "workers");
    ck_assert_str_eq(c->to[1], "nightly"); /* trigger -> trigger, no cycle */
    ck_assert_uint_eq(c->nmatch, 0);
    ck_assert_uint_eq(option(c, "cooldown")->duration_ms, 30000);

    c = config_find(cfg, "fan");
    ck_assert_uint_eq(c->nfrom, 2);
    ck_assert_str_eq(c->from[1], "nightly");
    ck_assert_uint_eq(c->nto, 2);
    ck_assert_str_eq(c->to[1], "single");
    ck_assert_uint_eq(c->nmatch, 2);
    ck_assert_str_eq(c->match_keys[0], "queue");
    ck_assert_str_eq(c->match_values[0], "build-*");
    ck_assert_str_eq(c->match_keys[1], "env");
    ck_assert_str_eq(c->match_values[1], "prod");
    ck_assert(option(c, "factor")->number == 2.5);

    const config_component *w = config_find(cfg, "workers");
    ck_assert_int_eq(w->kind, SB_KIND_SCALER);
    ck_assert_int_eq(w->min, 0);
    ck_assert_int_eq(w->max, 10);
    const sb_value *cmd = option(w, "command");
    ck_assert_uint_eq(cmd->count, 3);
    ck_assert_str_eq(cmd->items[0], "./worker");
    ck_assert_str_eq(cmd->items[2], "jobs");
    ck_assert_ptr_null(cmd->items[3]); /* NULL-terminated for execvp */
    ck_assert_int_eq(option(w, "env")->is_set, 0);
    ck_assert_int_eq(option(w, "workdir")->is_set, 0);
    ck_assert_uint_eq(option(w, "stop_timeout")->duration_ms, 10000);
    ck_assert_int_eq(option(w, "restart")->integer, 1);
    ck_assert_int_eq(option(w, "grace")->integer, 5);
    const sb_value *extra = option(w, "extra_args"); /* a LIST default read as YAML */
    ck_assert_uint_eq(extra->count, 2);
    ck_assert_str_eq(extra->items[0], "--verbose");
    ck_assert_str_eq(extra->items[1], "-x");

    const config_component *s = config_find(cfg, "single");
    ck_assert_int_eq(s->min, 2);
    ck_assert_int_eq(s->max, 2);
    ck_assert_uint_eq(option(s, "command")->count, 1); /* one scalar: a one-item list */
    ck_assert_str_eq(option(s, "command")->items[0], "./one");
    ck_assert_uint_eq(option(s, "env")->count, 2);
    ck_assert_str_eq(option(s, "env")->items[1], "B");
    ck_assert_str_eq(option(s, "env")->values[1], "two");
    ck_assert_int_eq(option(s, "grace")->integer, -3);
    ck_assert(option(s, "grace")->number == -3.0);
    ck_assert_uint_eq(option(s, "stop_timeout")->duration_ms, 500);
    ck_assert_str_eq(option(s, "workdir")->str, "42"); /* STRING takes a number's text */
    config_free(cfg);
}
END_TEST

START_TEST(test_empty_and_defaults)
{
    config *cfg = load_ok("", "empty.yaml");
    ck_assert_uint_eq(cfg->ncomponents, 0);
    ck_assert_int_eq(cfg->log_level_set, 0);
    ck_assert_uint_eq(cfg->nplugin_paths, 0);
    config_free(cfg);
    cfg = load_ok("triggers:\nconnectors: []\nscalers: ~\n", "sections.yaml");
    ck_assert_uint_eq(cfg->ncomponents, 0);
    config_free(cfg);
}
END_TEST

START_TEST(test_validate_twice_and_keep_arena)
{
    config *cfg = load_ok(valid_file, "v.yaml");
    config_errors errs;
    config_errors_init(&errs);
    size_t calls = 0;
    ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, &calls, &errs), 0);
    ck_assert_uint_eq(calls, 6);
    ck_assert_uint_eq(errs.count, 0);

    /* The daemon keeps an unchanged instance's values across a reload by taking the arena. */
    config_component *w = &cfg->components[4];
    ck_assert_str_eq(w->id, "workers");
    void *kept = w->arena;
    sb_value *values = w->values;
    char *fp = w->fingerprint;
    w->arena = NULL;
    config_free(cfg);
    ck_assert_str_eq(values[0].items[0], "./worker");
    ck_assert_ptr_nonnull(strstr(fp, "command=[\"./worker\",\"--queue\",\"jobs\"]"));
    config_component_arena_free(kept);
    config_errors_free(&errs);
}
END_TEST

/* ---- Every error, with its exact position ------------------------------------------------- */

typedef struct error_case {
    const char *name;
    const char *yaml;
    const char *expect;
} error_case;

static const error_case error_cases[] = {
    {"unknown top-level key", "trigers: []\n",
     "test.yaml:1:1: unknown top-level key 'trigers' (did you mean 'triggers'?)\n"},
    {"unknown top-level key, no suggestion", "pipelines: []\n",
     "test.yaml:1:1: unknown top-level key 'pipelines' (expected plugins, log, admin, state, "
     "triggers, connectors or scalers)\n"},
    {"top level not a mapping", "- a\n",
     "test.yaml:1:1: the top level must be a mapping (plugins, log, admin, state, triggers, "
     "connectors, scalers), got a sequence\n"},
    {"section not a sequence", "triggers: {id: a}\n",
     "test.yaml:1:11: 'triggers' must be a sequence of mappings, got a mapping\n"},
    {"entry not a mapping", "triggers:\n  - just-a-string\n",
     "test.yaml:2:5: each entry of 'triggers' must be a mapping, got a scalar\n"},
    {"missing id", "triggers:\n  - {type: cron, schedule: x}\n",
     "test.yaml:2:5: trigger #1 has no id\n"},
    {"invalid id", "triggers:\n  - {id: \"a b\", type: cron, schedule: x}\n",
     "test.yaml:2:10: invalid id 'a b' (use letters, digits, '_', '.' and '-')\n"},
    {"missing type", "triggers:\n  - id: a\n    schedule: x\n",
     "test.yaml:2:5: trigger 'a': missing type\n"},
    {"unknown plugin type lists nothing else", "triggers:\n  - {id: a, type: foo, bogus: 1}\n",
     "test.yaml:2:19: unknown plugin type 'foo'\n"},
    {"wrong kind", "scalers:\n  - {id: w, type: cron, max: 1}\n",
     "test.yaml:2:19: 'cron' is a trigger plugin, not a scaler\n"},
    {"unknown option with suggestion", "triggers:\n  - {id: a, type: cron, schedul: x}\n",
     "test.yaml:2:5: cron 'a': missing required option 'schedule'\n"
     "test.yaml:2:25: unknown option 'schedul' for cron (did you mean 'schedule'?) in trigger "
     "'a'\n"},
    {"suggestion among common keys", "scalers:\n  - {id: w, type: process, command: x, mxa: 1}\n",
     "test.yaml:2:5: scaler 'w': missing required option 'max'\n"
     "test.yaml:2:40: unknown option 'mxa' for process (did you mean 'max'?) in scaler 'w'\n"},
    {"unknown option", "triggers:\n  - {id: a, type: cron, schedule: x, colour: red}\n",
     "test.yaml:2:38: unknown option 'colour' for cron in trigger 'a' (its options: schedule, "
     "value, timezone, jitter, enabled, labels)\n"},
    {"unknown option of a scaler lists the host's too",
     "scalers:\n  - {id: w, type: process, command: x, max: 1, colour: red}\n",
     "test.yaml:2:48: unknown option 'colour' for process in scaler 'w' (its options: command, "
     "env, stop_timeout, restart, workdir, grace, extra_args, min, max)\n"},
    {"unknown option close by its beginning",
     "scalers:\n  - {id: w, type: process, command: x, max: 1, restart_policy: always}\n",
     "test.yaml:2:48: unknown option 'restart_policy' for process (did you mean 'restart'?) in "
     "scaler 'w'\n"},
    {"unknown option of a component without an id",
     "triggers:\n  - {type: cron, schedule: x, valeu: 2}\n",
     "test.yaml:2:5: trigger #1 has no id\n"
     "test.yaml:2:31: unknown option 'valeu' for cron (did you mean 'value'?) in trigger at "
     "2:5\n"},
    {"a list given as one string with spaces",
     "scalers:\n  - {id: w, type: process, command: \"sleep 1000\", max: 1}\n",
     "test.yaml:2:37: option 'command' of process: expected a list of strings, got 'sleep 1000': "
     "write [\"sleep\", \"1000\"] (a single string with spaces is one item)\n"},
    {"a list given as one plain string with spaces, in block style",
     "scalers:\n  - id: w\n    type: process\n    max: 1\n    command: ./run  --port \"8080\"\n",
     "test.yaml:5:14: option 'command' of process: expected a list of strings, got './run  --port "
     "\"8080\"': write [\"./run\", \"--port\", \"\\\"8080\\\"\"] (a single string with spaces "
     "is one item)\n"},
    {"bounds out of range",
     "scalers:\n  - {id: w, type: process, command: x, min: -99999999999999999999, "
     "max: 99999999999999999999}\n",
     "test.yaml:2:45: scaler 'w': min must be an integer, got '-99999999999999999999' (out of "
     "range)\n"
     "test.yaml:2:73: scaler 'w': max must be an integer, got '99999999999999999999' (out of "
     "range)\n"},
    {"duration out of range",
     "scalers:\n  - {id: w, type: process, command: x, max: 1, stop_timeout: 99999999999d}\n",
     "test.yaml:2:62: option 'stop_timeout' of process: expected a duration like 500ms, 10s or "
     "1m30s, got '99999999999d' (out of range: at most 36500d)\n"},
    {"variable in a flow mapping",
     "scalers:\n  - {id: w, type: process, command: x, max: ${SB_TEST_MAX}}\n",
     "test.yaml:2:46: did not find expected ',' or '}' (while parsing a flow mapping at 2:5); "
     "inside { } or [ ], quote a ${VAR}: max: \"${MAX}\"\n"},
    {"merge key given a scalar",
     "triggers:\n  - {<<: base, id: a, type: cron, schedule: x}\n",
     "test.yaml:2:10: the merge key '<<' takes a mapping or a list of mappings (like <<: *base), "
     "got 'base'\n"},
    {"merge key given a list with a scalar",
     "x-base: &b {type: cron}\ntriggers:\n  - {<<: [*b, c], id: a, schedule: x}\n",
     "test.yaml:3:15: the merge key '<<' takes a mapping or a list of mappings (like <<: [*a, "
     "*b]), got 'c' in the list\n"},
    {"merge key twice",
     "x-a: &a {type: cron}\nx-b: &b {schedule: x}\ntriggers:\n  - {<<: *a, <<: *b, id: t}\n",
     "test.yaml:4:14: duplicate key '<<' (first at 4:6)\n"},
    {"a quoted '<<' is an ordinary key",
     "x-a: &a {type: cron}\ntriggers:\n  - {'<<': *a, id: t, type: cron, schedule: x}\n",
     "test.yaml:3:6: unknown option '<<' for cron in trigger 't' (its options: schedule, value, "
     "timezone, jitter, enabled, labels)\n"},
    {"wrong type", "triggers:\n  - {id: a, type: cron, schedule: x, value: abc}\n",
     "test.yaml:2:45: option 'value' of cron: expected a number, got 'abc'\n"},
    {"number must be finite", "triggers:\n  - {id: a, type: cron, schedule: x, value: inf}\n",
     "test.yaml:2:45: option 'value' of cron: expected a number, got 'inf'\n"},
    {"types in block style",
     "scalers:\n"
     "  - id: w\n"
     "    type: process\n"
     "    command: ./worker\n"
     "    max: 1\n"
     "    grace: 1.5\n"
     "    restart: maybe\n"
     "    stop_timeout: 10x\n"
     "    env: [a]\n",
     "test.yaml:6:12: option 'grace' of process: expected an integer, got '1.5'\n"
     "test.yaml:7:14: option 'restart' of process: expected true or false, got 'maybe'\n"
     "test.yaml:8:19: option 'stop_timeout' of process: expected a duration like 500ms, 10s or "
     "1m30s, got '10x'\n"
     "test.yaml:9:10: option 'env' of process: expected a mapping of strings, got a sequence\n"},
    {"int overflow",
     "scalers:\n  - {id: w, type: process, command: [x], max: 1, grace: 99999999999999999999}\n",
     "test.yaml:2:57: option 'grace' of process: expected an integer, got '99999999999999999999' "
     "(out of range)\n"},
    {"list item not a scalar", "scalers:\n  - {id: w, type: process, command: [a, [b]], max: 1}\n",
     "test.yaml:2:41: option 'command' of process: expected a list of strings, got a sequence in "
     "it\n"},
    {"list given a mapping", "scalers:\n  - {id: w, type: process, command: {a: b}, max: 1}\n",
     "test.yaml:2:37: option 'command' of process: expected a list of strings, got a mapping\n"},
    {"string given a list", "triggers:\n  - {id: a, type: cron, schedule: [x]}\n",
     "test.yaml:2:35: option 'schedule' of cron: expected a string, got a sequence\n"},
    {"missing required options", "scalers:\n  - {id: w, type: process}\n",
     "test.yaml:2:5: scaler 'w': missing required option 'max'\n"
     "test.yaml:2:5: process 'w': missing required option 'command'\n"},
    {"bounds below zero and one",
     "scalers:\n  - {id: w, type: process, command: x, min: -1, max: 0}\n",
     "test.yaml:2:45: scaler 'w': min must be >= 0, got -1\n"
     "test.yaml:2:54: scaler 'w': max must be >= 1, got 0\n"},
    {"max below min", "scalers:\n  - {id: w, type: process, command: x, min: 5, max: 2}\n",
     "test.yaml:2:53: scaler 'w': max (2) is less than min (5)\n"},
    {"bounds not integers",
     "scalers:\n  - {id: w, type: process, command: x, min: lots, max: [1]}\n",
     "test.yaml:2:45: scaler 'w': min must be an integer, got 'lots'\n"
     "test.yaml:2:56: scaler 'w': max must be an integer, got a sequence\n"},
    {"dangling and wrong-kind edges",
     "triggers:\n"
     "  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: c1, type: direct, from: nope, to: w}\n"
     "  - {id: c2, type: direct, from: [t, w], to: [c1, ghost]}\n"
     "scalers:\n"
     "  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:4:34: connector 'c1': from 'nope' is not a trigger or connector in this file\n"
     "test.yaml:5:38: connector 'c2': from 'w' is not a trigger or connector in this file (it is "
     "a scaler)\n"
     "test.yaml:5:47: connector 'c2': to 'c1' is not a scaler or trigger in this file (it is a "
     "connector)\n"
     "test.yaml:5:51: connector 'c2': to 'ghost' is not a scaler or trigger in this file\n"},
    {"missing from and to", "connectors:\n  - {id: c, type: direct}\n",
     "test.yaml:2:5: connector 'c': missing 'from' (a trigger or connector id, or a list of them)\n"
     "test.yaml:2:5: connector 'c' leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"},
    {"id listed twice",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {id: c, type: direct, from: [t, t], to: t}\n",
     "test.yaml:4:37: connector 'c': from lists 't' twice\n"
     "test.yaml:4:45: trigger cycle: t -> c -> t\n"},
    {"match not a mapping",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {id: c, type: direct, from: t, to: w, match: [a]}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:4:50: connector 'c': match must be a mapping of label: value, got a sequence\n"},
    {"duplicate id across sections",
     "triggers:\n  - {id: x, type: cron, schedule: a}\n"
     "scalers:\n  - {id: x, type: process, command: b, max: 1}\n",
     "test.yaml:4:10: duplicate id 'x' (first used at 2:10)\n"},
    {"duplicate key", "triggers:\n  - {id: a, type: cron, schedule: x, schedule: y}\n",
     "test.yaml:2:38: duplicate key 'schedule' (first at 2:25)\n"},
    {"trigger cycle",
     "triggers:\n"
     "  - {id: a, type: cron, schedule: x}\n"
     "  - {id: b, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: c, type: direct, from: a, to: b}\n"
     "  - {id: c2, type: direct, from: b, to: a}\n",
     "test.yaml:6:41: trigger cycle: a -> c -> b -> c2 -> a\n"},
    /* Policies in a chain: `from` may name connectors, `to` may be left out when another
     * connector takes the decisions, and cycles through connectors are errors too. */
    {"connector leads nowhere",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {id: c, type: direct, from: t}\n",
     "test.yaml:4:5: connector 'c' leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"},
    {"connector feeding only itself",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {id: a, type: direct, from: [t, a]}\n",
     "test.yaml:4:5: connector 'a' leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"
     "test.yaml:4:37: connector cycle: a -> a\n"},
    {"connector cycle",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: a, type: direct, from: [t, b], to: w}\n"
     "  - {id: b, type: direct, from: a}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:4:37: connector cycle: a -> b -> a\n"},
    {"connector cycle no trigger reaches",
     "connectors:\n"
     "  - {id: a, type: direct, from: b, to: w}\n"
     "  - {id: b, type: direct, from: c}\n"
     "  - {id: c, type: direct, from: a}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:2:33: connector cycle: a -> c -> b -> a\n"},
    {"trigger cycle through a chain",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: a, type: direct, from: t}\n"
     "  - {id: b, type: direct, from: a, to: t}\n",
     "test.yaml:5:40: trigger cycle: t -> a -> b -> t\n"},
    {"from a scaler, no to",
     "connectors:\n  - {id: c, type: direct, from: w}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:2:5: connector 'c' leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"
     "test.yaml:2:33: connector 'c': from 'w' is not a trigger or connector in this file (it is "
     "a scaler)\n"},
    {"a chain link named by a broken reference still leads nowhere",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: a, type: direct, from: t}\n"
     "  - {id: b, type: direct, from: [A], to: w}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:4:5: connector 'a' leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"
     "test.yaml:5:34: connector 'b': from 'A' is not a trigger or connector in this file\n"},
    {"empty to is not a left-out to",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {id: c, type: direct, from: t, to: []}\n",
     "test.yaml:4:40: connector 'c': 'to' is an empty list\n"},
    {"connector listed twice in from",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n"
     "  - {id: a, type: direct, from: t}\n"
     "  - {id: b, type: direct, from: [a, a], to: w}\n"
     "scalers:\n  - {id: w, type: process, command: x, max: 1}\n",
     "test.yaml:5:37: connector 'b': from lists 'a' twice\n"},
    {"connector without id leads nowhere",
     "triggers:\n  - {id: t, type: cron, schedule: x}\n"
     "connectors:\n  - {type: direct, from: t}\n",
     "test.yaml:4:5: connector #1 has no id\n"
     "test.yaml:4:5: connector #1 leads nowhere: give it `to` or name it in another connector's "
     "`from`\n"},
    {"unset variable", "triggers:\n  - {id: a, type: cron, schedule: \"${SB_TEST_UNSET_VAR}\"}\n",
     "test.yaml:2:35: environment variable 'SB_TEST_UNSET_VAR' is not set\n"},
    {"bad variable reference", "log: {level: \"${1X}\"}\n",
     "test.yaml:1:14: bad variable reference '${1X}' (use ${NAME} or ${NAME:-default}, or $$ for "
     "a literal $)\n"
     "test.yaml:1:14: log.level must be error, warn, info or debug, got ''\n"},
    {"unterminated variable", "log: {level: \"${LEVEL\"}\n",
     "test.yaml:1:14: unterminated '${' in '${LEVEL'\n"
     "test.yaml:1:14: log.level must be error, warn, info or debug, got ''\n"},
    {"log level", "log: {level: verbose}\n",
     "test.yaml:1:14: log.level must be error, warn, info or debug, got 'verbose'\n"},
    {"log format", "log: {format: yaml, colour: on}\n",
     "test.yaml:1:15: log.format must be text or json, got 'yaml'\n"
     "test.yaml:1:21: unknown key 'colour' in log (expected level or format)\n"},
    {"plugins key", "plugins: {paths: [x]}\n",
     "test.yaml:1:11: unknown key 'paths' in plugins (expected path)\n"},
    {"plugins path entry", "plugins: {path: [x, {a: b}, \"\"]}\n",
     "test.yaml:1:21: plugins.path entries must be folder names, got a mapping\n"
     "test.yaml:1:29: plugins.path entries must be folder names, got an empty string\n"},
    {"syntax error", "triggers: [a, b\nlog: {}\n",
     "test.yaml:2:4: did not find expected ',' or ']' (while parsing a flow sequence at 1:11)\n"},
    {"tab indentation", "triggers:\n\t- {id: a}\n",
     "test.yaml:2:1: found character that cannot start any token (while scanning for the next "
     "token at 2:1)\n"},
    {"two documents", "log: {level: info}\n---\nlog: {level: info}\n",
     "test.yaml:2:1: a pipeline file holds one YAML document, not several\n"},
    {"unknown anchor", "triggers: *nope\n",
     "test.yaml:1:11: unknown anchor 'nope' (an alias must follow its anchor)\n"},
    {"mapping key not a scalar", "? [a]\n: b\n",
     "test.yaml:1:3: a mapping key must be a scalar, not a sequence\n"},
    {"bad plugin default", "triggers:\n  - {id: a, type: badplug}\n",
     "test.yaml:2:19: plugin badplug: the default of option 'period' is invalid: expected a "
     "duration like 500ms, 10s or 1m30s, got 'soon'\n"},
    {"invalid utf-8", "log: {level: \"\xff\"}\n", "test.yaml:1:15: invalid leading UTF-8 octet\n"},
};

START_TEST(test_error_cases)
{
    const error_case *tc = &error_cases[_i];
    char *out = check_text(tc->yaml);
    ck_assert_msg(strcmp(out, tc->expect) == 0, "case '%s':\nexpected:\n%sgot:\n%s", tc->name,
                  tc->expect, out);
    free(out);
}
END_TEST

START_TEST(test_many_errors_together)
{
    static const char text[] = "trigger:\n"                                              /* 1 */
                               "triggers:\n"                                             /* 2 */
                               "  - {id: a, type: cron, schedule: x, value: high}\n"     /* 3 */
                               "  - {id: a, type: cron}\n"                               /* 4 */
                               "  - {id: b, type: cronn, schedule: x}\n"                 /* 5 */
                               "connectors:\n"                                           /* 6 */
                               "  - {id: c, type: direct, from: zzz, to: w, factr: 2}\n" /* 7 */
                               "scalers:\n"                                              /* 8 */
                               "  - {id: w, type: direct, max: 1}\n"                     /* 9 */
                               "  - {id: v, type: process, command: x, max: 0}\n";       /* 10 */
    char *out = check_text(text);
    /* Both phases' errors print in file order, as a user reads them. */
    ck_assert_str_eq(out,
                     "test.yaml:1:1: unknown top-level key 'trigger' (did you mean 'triggers'?)\n"
                     "test.yaml:3:45: option 'value' of cron: expected a number, got 'high'\n"
                     "test.yaml:4:5: cron 'a': missing required option 'schedule'\n"
                     "test.yaml:4:10: duplicate id 'a' (first used at 3:10)\n"
                     "test.yaml:5:19: unknown plugin type 'cronn'\n"
                     "test.yaml:7:33: connector 'c': from 'zzz' is not a trigger or connector in "
                     "this file\n"
                     "test.yaml:7:45: unknown option 'factr' for direct (did you mean 'factor'?) "
                     "in connector 'c'\n"
                     "test.yaml:9:19: 'direct' is a connector plugin, not a scaler\n"
                     "test.yaml:10:45: scaler 'v': max must be >= 1, got 0\n");
    free(out);
}
END_TEST

/* ---- Merge keys ---------------------------------------------------------------------------- */

static char *fingerprint_of(const char *text, const char *id);

START_TEST(test_merge_keys)
{
    static const char text[] =
        "x-defaults: &defaults {type: process, command: [./worker], max: 4, grace: 7}\n" /* 1 */
        "x-small: &small {max: 2, workdir: /small}\n"                                     /* 2 */
        "triggers:\n"                                                                     /* 3 */
        "  - &tick {id: tick, type: cron, schedule: \"*/5 * * * * *\"}\n"                 /* 4 */
        "  - {<<: *tick, id: tock, value: 2}\n"                                           /* 5 */
        "scalers:\n"                                                                      /* 6 */
        "  - {<<: *defaults, id: a}\n"                                                    /* 7 */
        "  - {id: b, max: 9, <<: *defaults}\n"                                            /* 8 */
        "  - <<: [*small, *defaults]\n"                                                   /* 9 */
        "    id: c\n"                                                                     /* 10 */
        "  - {<<: {<<: *small, max: 3}, id: d, type: process, command: y}\n";             /* 11 */
    config *cfg = load_ok(text, "merge.yaml");
    ck_assert_uint_eq(cfg->ncomponents, 6);
    const config_component *tock = config_find(cfg, "tock");
    ck_assert_str_eq(tock->type, "cron");
    ck_assert_str_eq(option(tock, "schedule")->str, "*/5 * * * * *");
    ck_assert(option(tock, "value")->number == 2.0);
    ck_assert(option(config_find(cfg, "tick"), "value")->number == 1.0);

    const config_component *a = config_find(cfg, "a");
    ck_assert_str_eq(a->type, "process");
    ck_assert_int_eq(a->max, 4);
    ck_assert_str_eq(option(a, "command")->items[0], "./worker");
    ck_assert_int_eq(option(a, "grace")->integer, 7);
    /* A mapping's own keys win, wherever they stand. */
    ck_assert_int_eq(config_find(cfg, "b")->max, 9);
    /* In a list of merges the first mapping wins. */
    const config_component *c = config_find(cfg, "c");
    ck_assert_int_eq(c->max, 2);
    ck_assert_str_eq(option(c, "workdir")->str, "/small");
    ck_assert_int_eq(option(c, "grace")->integer, 7);
    /* A merged mapping's own merges count. */
    const config_component *d = config_find(cfg, "d");
    ck_assert_int_eq(d->max, 3);
    ck_assert_str_eq(option(d, "workdir")->str, "/small");
    ck_assert_str_eq(option(d, "command")->items[0], "y");
    /* The same settings through a merge or written out: the same fingerprint. */
    char *fa = fingerprint_of("scalers:\n  - {id: a, type: process, command: [./worker], max: 4, "
                              "grace: 7}\n",
                              "a");
    ck_assert_str_eq(fa, a->fingerprint);
    free(fa);
    config_free(cfg);

    /* A merged value keeps the position where it was written. */
    char *out = check_text("x-bad: &bad {type: process, command: x, grace: soon}\n"
                           "scalers:\n  - {<<: *bad, id: w, max: 1}\n");
    ck_assert_str_eq(out, "test.yaml:1:48: option 'grace' of process: expected an integer, got "
                          "'soon'\n");
    free(out);

    /* A merged id is a repeated id. */
    out = check_text("triggers:\n  - &t {id: a, type: cron, schedule: x}\n  - {<<: *t}\n");
    ck_assert_str_eq(out, "test.yaml:3:5: duplicate id 'a' (first used at 2:13)\n");
    free(out);
}
END_TEST

/* ---- Plugin types and folders -------------------------------------------------------------- */

static const char *const fake_types[] = {"cron", "direct", "process", "badplug"};

static char *check_text_catalog(const char *text, void (*between)(config *, config_errors *))
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), "test.yaml", &errs);
    if (cfg != NULL) {
        if (between != NULL)
            between(cfg, &errs);
        config_catalog cat = {.lookup = fake_lookup,
                              .types = fake_types,
                              .ntypes = sizeof fake_types / sizeof fake_types[0]};
        config_validate_plugins_from(cfg, &cat, &errs);
    }
    char *out = errors_text(&errs);
    config_free(cfg);
    config_errors_free(&errs);
    return out;
}

START_TEST(test_unknown_type_suggestion)
{
    char *out = check_text_catalog("triggers:\n  - {id: t, type: cron, schedule: x}\n"
                                   "connectors:\n  - {id: c, type: dirct, from: t, to: w}\n"
                                   "scalers:\n  - {id: w, type: proces, command: x, max: 1}\n"
                                   "  - {id: v, type: cronn, command: x, max: 1}\n"
                                   "  - {id: u, type: zzz, command: x, max: 1}\n",
                                   NULL);
    /* Only a type of the component's own kind is suggested ('cron' is a trigger). */
    ck_assert_str_eq(out, "test.yaml:4:19: unknown plugin type 'dirct' (did you mean 'direct'?)\n"
                          "test.yaml:6:19: unknown plugin type 'proces' (did you mean "
                          "'process'?)\n"
                          "test.yaml:7:19: unknown plugin type 'cronn'\n"
                          "test.yaml:8:19: unknown plugin type 'zzz'\n");
    free(out);
}
END_TEST

static void refuse_second(config *cfg, config_errors *errs)
{
    config_plugin_path_refused(cfg, 1, "/srv/p/hello: No such file or directory", errs);
}

static void refuse_both(config *cfg, config_errors *errs)
{
    config_plugin_path_refused(cfg, 0, "/srv/p/a: not loaded: the folder is writable by its "
                                       "group (mode 0775)",
                               errs);
    config_plugin_path_refused(cfg, 1, "/srv/p/hello: No such file or directory", errs);
    config_plugin_path_refused(cfg, 7, "no such entry: ignored", errs);
}

START_TEST(test_plugin_path_refused)
{
    static const char text[] = "plugins:\n"
                               "  path:\n"
                               "    - a\n"
                               "    - \"hello\"\n"
                               "triggers:\n  - {id: t, type: hello}\n";
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), "/srv/p/pipes.yaml", &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->nplugin_paths, 2);
    ck_assert_str_eq(cfg->plugin_paths[1], "/srv/p/hello");
    config_free(cfg);
    config_errors_free(&errs);

    /* The refusal is an error at the entry, and the unknown type says why it is unknown. */
    char *out = check_text_catalog(text, refuse_second);
    ck_assert_str_eq(out, "test.yaml:4:7: plugins.path: /srv/p/hello: No such file or directory\n"
                          "test.yaml:6:19: unknown plugin type 'hello'; the plugins.path folder "
                          "hello (4:7) was refused, so none of its plugins were loaded\n");
    free(out);
    out = check_text_catalog(text, refuse_both);
    ck_assert_str_eq(out, "test.yaml:3:7: plugins.path: /srv/p/a: not loaded: the folder is "
                          "writable by its group (mode 0775)\n"
                          "test.yaml:4:7: plugins.path: /srv/p/hello: No such file or directory\n"
                          "test.yaml:6:19: unknown plugin type 'hello'; 2 plugins.path folders "
                          "were refused (the first at 3:7), so none of their plugins were "
                          "loaded\n");
    free(out);
}
END_TEST

/* ---- ${VAR} ------------------------------------------------------------------------------- */

START_TEST(test_env_expansion)
{
    setenv("SB_T_QUEUE", "jobs", 1);
    setenv("SB_T_EMPTY", "", 1);
    setenv("SB_T_MAX", "7", 1);
    unsetenv("SB_T_MISSING");
    static const char text[] = "scalers:\n"
                               "  - id: w\n"
                               "    type: process\n"
                               "    max: ${SB_T_MAX}\n"
                               "    command:\n"
                               "      - ${SB_T_QUEUE}\n"
                               "      - pre-${SB_T_QUEUE}-post\n"
                               "      - ${SB_T_MISSING:-fall back}\n"
                               "      - ${SB_T_EMPTY:-empty means default}\n"
                               "      - \"$${SB_T_QUEUE} costs $5 or $$5\"\n"
                               "      - '${SB_T_EMPTY}'\n"
                               "      - ${SB_T_QUEUE}${SB_T_QUEUE}\n";
    config *cfg = load_ok(text, "env.yaml");
    const config_component *w = config_find(cfg, "w");
    ck_assert_int_eq(w->max, 7);
    const sb_value *cmd = option(w, "command");
    ck_assert_uint_eq(cmd->count, 7);
    ck_assert_str_eq(cmd->items[0], "jobs");
    ck_assert_str_eq(cmd->items[1], "pre-jobs-post");
    ck_assert_str_eq(cmd->items[2], "fall back");
    ck_assert_str_eq(cmd->items[3], "empty means default");
    ck_assert_str_eq(cmd->items[4], "${SB_T_QUEUE} costs $5 or $5");
    ck_assert_str_eq(cmd->items[5], "");
    ck_assert_str_eq(cmd->items[6], "jobsjobs");
    config_free(cfg);

    /* Inside { } a ${VAR} is quoted (README, "Pipeline files"). */
    cfg = load_ok("scalers:\n  - {id: w, type: process, command: x, max: \"${SB_T_MAX}\"}\n",
                  "flow.yaml");
    ck_assert_int_eq(config_find(cfg, "w")->max, 7);
    config_free(cfg);

    /* Every unset variable is reported, each at its own scalar. */
    char *out = check_text("scalers:\n"
                           "  - id: w\n"
                           "    type: process\n"
                           "    max: 1\n"
                           "    command: [\"${SB_T_MISSING}\", ok, \"${SB_T_MISSING}x\"]\n");
    ck_assert_str_eq(out, "test.yaml:5:15: environment variable 'SB_T_MISSING' is not set\n"
                          "test.yaml:5:38: environment variable 'SB_T_MISSING' is not set\n");
    free(out);
}
END_TEST

/* ---- Durations ---------------------------------------------------------------------------- */

START_TEST(test_durations)
{
    static const struct {
        const char *text;
        uint64_t ms;
    } good[] = {
        {"500ms", 500},
        {"10s", 10000},
        {"5m", 300000},
        {"1h", 3600000},
        {"1d", 86400000},
        {"1m30s", 90000},
        {"1h1m1s1ms", 3661001},
        {"0", 0},
        {"0s", 0},
        {"10", 10000},
        {"0.5", 500},
        {"1.5h", 5400000},
        {"0.25s", 250},
        {"2d12h", 216000000},
        {"007s", 7000},
        {"1.0005", 1000},
        {"36500d", CONFIG_MAX_DURATION_MS}, /* 100 years: the longest */
        {"36499d23h59m59.999s", CONFIG_MAX_DURATION_MS - 1},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        uint64_t ms = 12345;
        ck_assert_msg(config_parse_duration(good[i].text, &ms) == 0, "%s refused", good[i].text);
        ck_assert_msg(ms == good[i].ms, "%s gave %llu", good[i].text, (unsigned long long)ms);
    }
    static const char *const bad[] = {
        "",
        "-5s",
        "+5s",
        " 5s",
        "5s ",
        "5 s",
        "s",
        "ms",
        "5x",
        "5sec",
        "1m30",
        "1.s",
        ".5s",
        "1e3",
        "5S",
        "1..5s",
        "--1s",
        "1m-30s",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t ms = 777;
        ck_assert_msg(config_parse_duration(bad[i], &ms) == -EINVAL, "'%s' accepted", bad[i]);
        ck_assert_uint_eq(ms, 777);
    }
    /* Well formed, but longer than 100 years: out of range, however far out. */
    static const char *const too_long[] = {
        "36500d1ms",          "36501d",
        "99999999999d",       "18446744073709551s",
        "18446744073709552s", "99999999999999999999",
        "213503982335d",      "18446744073709551615ms1ms",
        "3153600000001ms",    "876000h0.001s",
    };
    for (size_t i = 0; i < sizeof too_long / sizeof too_long[0]; i++) {
        uint64_t ms = 777;
        ck_assert_msg(config_parse_duration(too_long[i], &ms) == -ERANGE, "'%s' not -ERANGE",
                      too_long[i]);
        ck_assert_uint_eq(ms, 777);
    }
    /* A typo stays a typo however long the number before it. */
    uint64_t ms;
    ck_assert_int_eq(config_parse_duration("99999999999999999999x", &ms), -EINVAL);
    ck_assert_int_eq(config_parse_duration(NULL, &ms), -EINVAL);
}
END_TEST

START_TEST(test_option_types)
{
    static const char text[] =
        "triggers:\n"
        "  - {id: a, type: cron, schedule: 5, value: -1.5e3, enabled: YES, jitter: 2}\n"
        "  - {id: b, type: cron, schedule: x, value: 7, enabled: on, timezone: ~}\n"
        "  - {id: c, type: cron, schedule: x, enabled: False, labels: {k: \"\", j: ~}}\n";
    config *cfg = load_ok(text, "types.yaml");
    const config_component *a = config_find(cfg, "a");
    ck_assert_str_eq(option(a, "schedule")->str, "5");
    ck_assert(option(a, "value")->number == -1500.0);
    ck_assert_int_eq(option(a, "enabled")->integer, 1);
    ck_assert_uint_eq(option(a, "jitter")->duration_ms, 2000);
    const config_component *b = config_find(cfg, "b");
    ck_assert(option(b, "value")->number == 7.0);
    ck_assert_int_eq(option(b, "enabled")->integer, 1);
    ck_assert_str_eq(option(b, "timezone")->str, "UTC"); /* null: not set, so the default */
    const config_component *c = config_find(cfg, "c");
    ck_assert_int_eq(option(c, "enabled")->integer, 0);
    ck_assert_uint_eq(option(c, "labels")->count, 2);
    ck_assert_str_eq(option(c, "labels")->values[0], "");
    config_free(cfg);
}
END_TEST

START_TEST(test_glob)
{
    ck_assert_int_eq(config_glob_match("build-*", "build-42"), 1);
    ck_assert_int_eq(config_glob_match("build-*", "test-42"), 0);
    ck_assert_int_eq(config_glob_match("b?ild", "build"), 1);
    ck_assert_int_eq(config_glob_match("[ab]x", "bx"), 1);
    ck_assert_int_eq(config_glob_match("[ab]x", "cx"), 0);
    ck_assert_int_eq(config_glob_match("prod", "prod"), 1);
    ck_assert_int_eq(config_glob_match("prod", "production"), 0);
    ck_assert_int_eq(config_glob_match(NULL, "x"), 0);
}
END_TEST

/* ---- Limits ------------------------------------------------------------------------------- */

static char *repeat(const char *prefix, const char *unit, size_t n, const char *suffix)
{
    size_t len = strlen(prefix) + strlen(unit) * n + strlen(suffix) + 1;
    char *s = malloc(len);
    ck_assert_ptr_nonnull(s);
    char *p = s;
    p += sprintf(p, "%s", prefix);
    for (size_t i = 0; i < n; i++)
        p += sprintf(p, "%s", unit);
    sprintf(p, "%s", suffix);
    return s;
}

START_TEST(test_deep_nesting)
{
    /* The root mapping is level 1, so 63 brackets are fine and the 64th is one too many. */
    char *ok = repeat("a: ", "[", 63, "");
    char *tail = repeat(ok, "]", 63, "\n");
    char *out = check_text(tail);
    ck_assert_str_eq(out, "test.yaml:1:1: unknown top-level key 'a' (expected plugins, log, "
                          "admin, state, triggers, connectors or scalers)\n");
    free(out);
    free(ok);
    free(tail);

    char *deep = repeat("a: ", "[", 100000, "\n"); /* never closed: nothing after it is read */
    out = check_text(deep);
    ck_assert_str_eq(out, "test.yaml:1:67: nested deeper than 64 levels: the rest of the file "
                          "is not read\n");
    free(out);
    free(deep);
}
END_TEST

START_TEST(test_alias_bomb)
{
    /* Each level is ten of the one before: g alone would stand for 10^7 strings. */
    static const char bomb[] = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                               "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                               "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                               "triggers: [*g]\n";
    char *out = check_text(bomb);
    /* Weights: a 11, b 111, ... e 111,111: after a..e and f's key and bracket the count is
     * 123,463, so f's eighth *e (column 36) is the one that goes over 1,000,000. */
    ck_assert_str_eq(out, "test.yaml:6:36: more than 1000000 nodes (counting alias "
                          "expansions): the rest of the file is not read\n");
    free(out);

    /* Below the limit, aliases work and share the anchored nodes. */
    static const char shared[] = "triggers:\n"
                                 "  - &base {id: a, type: cron, schedule: &s \"0 * * * * *\"}\n"
                                 "  - {id: b, type: cron, schedule: *s}\n";
    config *cfg = load_ok(shared, "alias.yaml");
    ck_assert_str_eq(option(config_find(cfg, "b"), "schedule")->str, "0 * * * * *");
    config_free(cfg);

    /* An alias repeating a whole component repeats its id too. */
    out = check_text("triggers:\n  - &t {id: a, type: cron, schedule: x}\n  - *t\n");
    ck_assert_str_eq(out, "test.yaml:3:5: duplicate id 'a' (first used at 2:13)\n");
    free(out);
}
END_TEST

START_TEST(test_too_many_plain_nodes)
{
    /* Two bytes a node: 1,000,001 of them fit in the size limit but not in the node limit. The
     * root mapping, its key and the sequence are 3 nodes, so scalar 999,998 is one too many. */
    char *text = repeat("log: [", "1,", 1000001, "1]\n");
    char *out = check_text(text);
    ck_assert_str_eq(out, "test.yaml:1:2000001: more than 1000000 nodes (counting alias "
                          "expansions): the rest of the file is not read\n");
    free(out);
    free(text);
}
END_TEST

START_TEST(test_huge_file)
{
    size_t n = CONFIG_MAX_FILE_BYTES + 1;
    char *text = malloc(n);
    ck_assert_ptr_nonnull(text);
    memset(text, '#', n); /* one long comment: valid YAML, just too much of it */
    config_errors errs;
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_string(text, n, "big.yaml", &errs));
    char *out = errors_text(&errs);
    ck_assert_str_eq(out, "big.yaml:1:1: file is larger than 4194304 bytes: not read\n");
    free(out);
    config_errors_free(&errs);

    char *dir = make_tmpdir();
    char *path = path_in(dir, "big.yaml");
    write_file(path, text, n);
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_file(path, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0].file, path);
    ck_assert_int_eq(errs.items[0].line, 1);
    ck_assert_int_eq(errs.items[0].col, 1);
    ck_assert_str_eq(errs.items[0].message, "file is larger than 4194304 bytes: not read");
    config_errors_free(&errs);

    /* Exactly at the limit is read. */
    write_file(path, text, n - 1);
    config_errors_init(&errs);
    config *cfg = config_parse_file(path, &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.count, 0);
    config_free(cfg);
    config_errors_free(&errs);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    free(text);
}
END_TEST

/* ---- Files -------------------------------------------------------------------------------- */

START_TEST(test_unreadable_file)
{
    config_errors errs;
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_file("/nonexistent/sb/pipes.yaml", &errs));
    char *out = errors_text(&errs);
    ck_assert_str_eq(out, "/nonexistent/sb/pipes.yaml:1:1: cannot read: No such file or "
                          "directory\n");
    free(out);
    config_errors_free(&errs);

    char *dir = make_tmpdir();
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_file(dir, &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0].message, "cannot read: Is a directory");
    config_errors_free(&errs);

    /* A FIFO is refused at once, not waited on (no one ever writes to this one); so is a
     * device. Should the open block after all, the alarm ends the test run. */
    char *fifo = path_in(dir, "pipes.yaml");
    ck_assert_int_eq(mkfifo(fifo, 0600), 0);
    alarm(20);
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_file(fifo, &errs));
    alarm(0);
    char *out2 = errors_text(&errs);
    char want[512];
    snprintf(want, sizeof want, "%s:1:1: cannot read: a FIFO, not a regular file\n", fifo);
    ck_assert_str_eq(out2, want);
    free(out2);
    config_errors_free(&errs);
    config_errors_init(&errs);
    ck_assert_ptr_null(config_parse_file("/dev/null", &errs));
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0].message, "cannot read: a character device, not a regular file");
    config_errors_free(&errs);
    unlink(fifo);
    free(fifo);

    /* An empty regular file is an empty pipeline. */
    char *empty = path_in(dir, "empty.yaml");
    write_file(empty, "", 0);
    config_errors_init(&errs);
    config *cfg = config_parse_file(empty, &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(cfg->ncomponents, 0);
    config_free(cfg);
    config_errors_free(&errs);
    unlink(empty);
    free(empty);
    rmdir(dir);
    free(dir);
}
END_TEST

START_TEST(test_file_and_plugin_paths)
{
    char *dir = make_tmpdir();
    char *path = path_in(dir, "pipes.yaml");
    static const char text[] = "plugins: { path: [./my-plugins, /abs/plugins, sub/dir] }\n"
                               "triggers:\n"
                               "  - { id: t, type: cron, schedule: x, value: nope }\n";
    write_file(path, text, strlen(text));
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_file(path, &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(cfg->nplugin_paths, 3);
    char *want = path_in(dir, "my-plugins");
    ck_assert_str_eq(cfg->plugin_paths[0], want);
    free(want);
    ck_assert_str_eq(cfg->plugin_paths[1], "/abs/plugins");
    want = path_in(dir, "sub/dir");
    ck_assert_str_eq(cfg->plugin_paths[2], want);
    free(want);
    /* Phase 2 errors name the file too. */
    ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, NULL, &errs), -EINVAL);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0].file, path);
    ck_assert_int_eq(errs.items[0].line, 3);
    ck_assert_int_eq(errs.items[0].col, 46);
    config_free(cfg);
    config_errors_free(&errs);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);

    /* A single string, and a file named without a folder. */
    config_errors_init(&errs);
    cfg = config_parse_string("plugins: {path: x}\n", 19, "conf/p.yaml", &errs);
    ck_assert_str_eq(cfg->plugin_paths[0], "conf/x");
    config_free(cfg);
    cfg = config_parse_string("plugins: {path: ./x}\n", 21, "p.yaml", &errs);
    ck_assert_str_eq(cfg->plugin_paths[0], "./x");
    config_free(cfg);
    ck_assert_uint_eq(errs.count, 0);
    config_errors_free(&errs);
}
END_TEST

START_TEST(test_error_add_and_print)
{
    config_errors errs;
    config_errors_init(&errs);
    for (int i = 0; i < 100; i++)
        config_error_add(&errs, "f.yaml", i + 1, 2, "problem %d of %s", i, "many");
    ck_assert_uint_eq(errs.count, 100);
    ck_assert_str_eq(errs.items[99].message, "problem 99 of many");
    ck_assert_int_eq(errs.items[99].line, 100);
    config_errors_free(&errs);
    ck_assert_uint_eq(errs.count, 0);
    config_error_add(&errs, "x.yaml", 3, 4, "%s", "one");
    char *out = errors_text(&errs);
    ck_assert_str_eq(out, "x.yaml:3:4: one\n");
    free(out);
    config_errors_free(&errs);

    /* Printed by position, whatever order they came in; equal positions keep their order; a
     * position below 1 is the file's start. */
    config_error_add(&errs, "x.yaml", 10, 1, "ten");
    config_error_add(&errs, "x.yaml", 2, 9, "two-nine");
    config_error_add(&errs, "x.yaml", 2, 3, "two-three, first");
    config_error_add(&errs, "x.yaml", 0, 0, "whole file");
    config_error_add(&errs, "x.yaml", 2, 3, "two-three, second");
    config_error_add(&errs, "y.yaml", 1, 1, "another file comes after");
    out = errors_text(&errs);
    ck_assert_str_eq(out, "x.yaml:1:1: whole file\n"
                          "x.yaml:2:3: two-three, first\n"
                          "x.yaml:2:3: two-three, second\n"
                          "x.yaml:2:9: two-nine\n"
                          "x.yaml:10:1: ten\n"
                          "y.yaml:1:1: another file comes after\n");
    free(out);
    ck_assert_str_eq(errs.items[0].message, "ten"); /* the list itself is left as it was */
    config_errors_free(&errs);
}
END_TEST

/* ---- The string map the core shares ---------------------------------------------------------- */

START_TEST(test_strmap)
{
    enum { N = 3000 };
    static char keys[N][8];
    static int present[N];
    int vals[N];
    strmap m = {0};
    ck_assert_ptr_null(strmap_get(&m, "a"));
    ck_assert_ptr_null(strmap_del(&m, "a"));
    ck_assert_int_eq(strmap_put(&m, "a", NULL), -EINVAL);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        vals[i] = i;
        present[i] = 0;
    }
    /* Random puts and deletions against a plain array: deletion keeps every probe run whole. */
    unsigned seed = 12345;
    for (int step = 0; step < 200000; step++) {
        seed = seed * 1103515245u + 12345u;
        int k = (int)((seed >> 8) % N);
        if ((seed >> 4) % 3 == 0) {
            void *old = strmap_del(&m, keys[k]);
            ck_assert_ptr_eq(old, present[k] ? &vals[k] : NULL);
            present[k] = 0;
        } else {
            ck_assert_int_eq(strmap_put(&m, keys[k], &vals[k]), 0);
            present[k] = 1;
        }
        if (step % 5000 == 0) {
            size_t count = 0;
            for (int i = 0; i < N; i++) {
                ck_assert_ptr_eq(strmap_get(&m, keys[i]), present[i] ? &vals[i] : NULL);
                count += (size_t)present[i];
            }
            ck_assert_uint_eq(m.count, count);
        }
    }
    /* Replacing an entry takes the new key pointer too: the old one may be freed after. */
    char *k1 = strdup("same"), *k2 = strdup("same");
    ck_assert_int_eq(strmap_put(&m, k1, &vals[1]), 0);
    ck_assert_int_eq(strmap_put(&m, k2, &vals[2]), 0);
    free(k1);
    ck_assert_ptr_eq(strmap_get(&m, "same"), &vals[2]);
    ck_assert_ptr_eq(strmap_del(&m, "same"), &vals[2]);
    free(k2);
    strmap_free(&m);
    ck_assert_uint_eq(m.count, 0);
    ck_assert_ptr_null(strmap_get(&m, "k1"));
}
END_TEST

/* ---- Fingerprints ------------------------------------------------------------------------- */

static char *fingerprint_of(const char *text, const char *id)
{
    config *cfg = load_ok(text, "fp.yaml");
    const config_component *c = config_find(cfg, id);
    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_nonnull(c->fingerprint);
    char *fp = strdup(c->fingerprint);
    config_free(cfg);
    return fp;
}

/* A map of objects is a set: reordering its objects (or a default written out) keeps the
 * fingerprint, so a reload keeps the component; a changed value inside an object changes it. */
START_TEST(test_objects_fingerprint)
{
    char *a = fingerprint_of("triggers:\n  - id: p\n    type: proxy\n    services:\n"
                             "      web: {backend: w, hosts: [a, b]}\n      api: {backend: x}\n",
                             "p");
    char *b = fingerprint_of("triggers:\n  - id: p\n    type: proxy\n    services:\n"
                             "      api: {backend: x, slots: 4}\n      web: {hosts: [a, b], backend: w}\n",
                             "p");
    char *c = fingerprint_of("triggers:\n  - id: p\n    type: proxy\n    services:\n"
                             "      api: {backend: x, slots: 5}\n      web: {hosts: [a, b], backend: w}\n",
                             "p");
    char *e = fingerprint_of("triggers:\n  - id: p\n    type: proxy\n    services:\n"
                             "      api: {backend: x}\n      web: {hosts: [b, a], backend: w}\n",
                             "p");
    ck_assert_str_eq(a, b);
    ck_assert_str_ne(a, c);
    ck_assert_str_ne(a, e); /* a list inside keeps its order */
    /* No services at all: set, and empty. */
    char *none = fingerprint_of("triggers:\n  - {id: p, type: proxy}\n", "p");
    ck_assert_ptr_nonnull(strstr(none, "services={}"));
    free(a);
    free(b);
    free(c);
    free(e);
    free(none);
}
END_TEST

#define FP_TRIGGERS                                                                                \
    "triggers:\n  - {id: t, type: cron, schedule: x}\n  - {id: u, type: cron, schedule: y}\n"
#define FP_SCALERS                                                                                 \
    "scalers:\n  - {id: w, type: process, command: x, max: 1}\n  - {id: v, type: process, "        \
    "command: x, max: 1}\n"

START_TEST(test_fingerprints)
{
    static const struct {
        const char *a, *b, *id;
        int equal;
    } cases[] = {
        /* Same meaning, different spelling: unchanged. */
        {"scalers:\n  - {id: w, type: process, command: [./w, -q], max: 3, stop_timeout: 10s}\n",
         "scalers:\n  - id: w\n    max: 3\n    stop_timeout: 10000ms\n    type: process\n"
         "    command: [\"./w\", '-q']\n",
         "w", 1},
        {"scalers:\n  - {id: w, type: process, command: x, max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: [x], max: 3, min: 0, restart: yes, grace: "
         "05}\n",
         "w", 1},
        {"scalers:\n  - {id: w, type: process, command: x, max: 3, env: {A: 1, B: 2}}\n",
         "scalers:\n  - {id: w, type: process, command: x, max: 3, env: {B: 2, A: 1}}\n", "w", 1},
        {FP_TRIGGERS
         "connectors:\n  - {id: c, type: direct, from: [t, u], to: [w, v]}\n" FP_SCALERS,
         FP_TRIGGERS
         "connectors:\n  - {id: c, type: direct, from: [u, t], to: [v, w]}\n" FP_SCALERS,
         "c", 1},
        {"triggers:\n  - {id: t, type: cron, schedule: x, value: 3}\n",
         "triggers:\n  - {id: t, type: cron, schedule: x, value: 3.0}\n", "t", 1},
        /* The host's own settings (min, max, from, to, match) are applied in place on a reload:
         * they are not part of the plugin options' fingerprint. */
        {"scalers:\n  - {id: w, type: process, command: x, max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: x, max: 4}\n", "w", 1},
        {"scalers:\n  - {id: w, type: process, command: x, max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: x, max: 3, min: 1}\n", "w", 1},
        {FP_TRIGGERS "connectors:\n  - {id: c, type: direct, from: t, to: w}\n" FP_SCALERS,
         FP_TRIGGERS "connectors:\n  - {id: c, type: direct, from: u, to: w}\n" FP_SCALERS, "c", 1},
        {FP_TRIGGERS "connectors:\n  - {id: c, type: direct, from: t, to: w}\n" FP_SCALERS,
         FP_TRIGGERS "connectors:\n  - {id: c, type: direct, from: t, to: [w, v]}\n" FP_SCALERS,
         "c", 1},
        {FP_TRIGGERS
         "connectors:\n  - {id: c, type: direct, from: t, to: w, match: {q: a}}\n" FP_SCALERS,
         FP_TRIGGERS
         "connectors:\n  - {id: c, type: direct, from: t, to: w, match: {q: b}}\n" FP_SCALERS,
         "c", 1},
        /* Any plugin option changed: changed. */
        {"scalers:\n  - {id: w, type: process, command: [a, b], max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: [b, a], max: 3}\n", "w", 0},
        {"scalers:\n  - {id: w, type: process, command: x, max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: x, max: 3, workdir: /srv}\n", "w", 0},
        {"scalers:\n  - {id: w, type: process, command: x, max: 3, env: {A: 1}}\n",
         "scalers:\n  - {id: w, type: process, command: x, max: 3, env: {A: 2}}\n", "w", 0},
        {"triggers:\n  - {id: t, type: cron, schedule: x}\n",
         "triggers:\n  - {id: t, type: cron, schedule: \"x \"}\n", "t", 0},
        /* A value with a quote in it cannot pass for a list of two. */
        {"scalers:\n  - {id: w, type: process, command: ['a\",\"b'], max: 3}\n",
         "scalers:\n  - {id: w, type: process, command: [a, b], max: 3}\n", "w", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *fa = fingerprint_of(cases[i].a, cases[i].id);
        char *fb = fingerprint_of(cases[i].b, cases[i].id);
        ck_assert_msg((strcmp(fa, fb) == 0) == cases[i].equal, "case %zu:\n%s\nvs\n%s", i, fa, fb);
        free(fa);
        free(fb);
    }
    /* Two components of a file with equal settings have equal fingerprints whatever their id. */
    config *cfg = load_ok(FP_SCALERS, "two.yaml");
    ck_assert_str_eq(config_find(cfg, "w")->fingerprint, config_find(cfg, "v")->fingerprint);
    config_free(cfg);
}
END_TEST

/* A component that failed validation gets no fingerprint: it must not look "unchanged". */
START_TEST(test_no_fingerprint_on_error)
{
    config_errors errs;
    config_errors_init(&errs);
    const char *text = "triggers:\n  - {id: t, type: cron, schedule: x, value: abc}\n";
    config *cfg = config_parse_string(text, strlen(text), "e.yaml", &errs);
    ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, NULL, &errs), -EINVAL);
    ck_assert_ptr_null(config_find(cfg, "t")->fingerprint);
    config_free(cfg);
    config_errors_free(&errs);
}
END_TEST

/* ---- Scale -------------------------------------------------------------------------------- */

START_TEST(test_30000_components)
{
    enum { PIPELINES = 10000 };
    size_t cap = (size_t)PIPELINES * 300 + 64, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    len += (size_t)snprintf(text + len, cap - len, "triggers:\n");
    for (int i = 0; i < PIPELINES; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - { id: t%05d, type: cron, schedule: \"*/5 * * * * *\", "
                                "value: 3 }\n",
                                i);
    len += (size_t)snprintf(text + len, cap - len, "connectors:\n");
    for (int i = 0; i < PIPELINES; i++)
        len +=
            (size_t)snprintf(text + len, cap - len,
                             "  - { id: c%05d, type: direct, from: t%05d, to: w%05d }\n", i, i, i);
    len += (size_t)snprintf(text + len, cap - len, "scalers:\n");
    for (int i = 0; i < PIPELINES; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - { id: w%05d, type: process, command: [\"./worker\", "
                                "\"--queue\", \"jobs\"], min: 0, max: 10 }\n",
                                i);
    ck_assert_uint_lt(len, CONFIG_MAX_FILE_BYTES);

    config_errors errs;
    config_errors_init(&errs);
    double t0 = now_s();
    config *cfg = config_parse_string(text, len, "big.yaml", &errs);
    double t1 = now_s();
    ck_assert_ptr_nonnull(cfg);
    ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, NULL, &errs), 0);
    double t2 = now_s();
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(cfg->ncomponents, 3 * PIPELINES);

    char id[16];
    for (int i = 0; i < PIPELINES; i++) {
        snprintf(id, sizeof id, "w%05d", i);
        const config_component *w = config_find(cfg, id);
        ck_assert_ptr_nonnull(w);
        ck_assert_str_eq(w->id, id);
        ck_assert_int_eq(w->max, 10);
    }
    double t3 = now_s();
    fprintf(stderr,
            "test_config: %d components (%zu bytes): parse %.3f s, validate %.3f s, "
            "%d lookups %.3f s\n",
            3 * PIPELINES, len, t1 - t0, t2 - t1, PIPELINES, t3 - t2);
    /* A figure, not a bound: a test asserts what happens, not how fast on this machine
     * (tests/bench/bench_config prints the same figures as a benchmark). */
    config_free(cfg);
    config_errors_free(&errs);
    free(text);
}
END_TEST

/* A 10,000-long chain of trigger -> connector -> trigger runs, closed into one cycle: the
 * search must not recurse, and the message stays short. */
START_TEST(test_long_cycle)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 120 + 64, len = 0;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    len += (size_t)snprintf(text + len, cap - len, "triggers:\n");
    for (int i = 0; i < N; i++)
        len +=
            (size_t)snprintf(text + len, cap - len, "  - {id: t%d, type: cron, schedule: x}\n", i);
    len += (size_t)snprintf(text + len, cap - len, "connectors:\n");
    for (int i = 0; i < N; i++)
        len += (size_t)snprintf(text + len, cap - len,
                                "  - {id: c%d, type: direct, from: t%d, to: t%d}\n", i, i,
                                (i + 1) % N);
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, len, "chain.yaml", &errs);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(errs.items[0].message,
                     "trigger cycle: t0 -> c0 -> t1 -> c1 -> t2 -> c2 -> "
                     "t3 -> c3 -> ... -> t9996 -> c9996 -> t9997 -> c9997 -> t9998 "
                     "-> c9998 -> t9999 -> c9999 -> t0");
    config_free(cfg);
    config_errors_free(&errs);
    free(text);
}
END_TEST

/* Policies in a chain: a connector's `from` names connectors (in any order in the file), a
 * connector that feeds another needs no `to`, and one may do both (fan-out). */
START_TEST(test_policy_chain)
{
    static const char text[] = "triggers:\n"
                               "  - {id: q, type: cron, schedule: x}\n"
                               "  - {id: cpu, type: cron, schedule: x}\n"
                               "connectors:\n"
                               "  - {id: pick, type: direct, from: [by-queue, by-cpu], to: w}\n"
                               "  - {id: by-queue, type: direct, from: q}\n"
                               "  - {id: by-cpu, type: direct, from: cpu, to: w}\n"
                               "  - {id: mixed, type: direct, from: [q, pick], to: [w, v]}\n"
                               "scalers:\n"
                               "  - {id: w, type: process, command: x, max: 3}\n"
                               "  - {id: v, type: process, command: x, max: 3}\n";
    config *cfg = load_ok(text, "chain.yaml");
    const config_component *pick = config_find(cfg, "pick");
    ck_assert_uint_eq(pick->nfrom, 2);
    ck_assert_str_eq(pick->from[0], "by-queue");
    ck_assert_str_eq(pick->from[1], "by-cpu");
    ck_assert_uint_eq(pick->nto, 1);
    const config_component *bq = config_find(cfg, "by-queue");
    ck_assert_uint_eq(bq->nfrom, 1);
    ck_assert_uint_eq(bq->nto, 0);
    ck_assert_ptr_nonnull(bq->fingerprint);
    const config_component *bc = config_find(cfg, "by-cpu");
    ck_assert_uint_eq(bc->nto, 1);
    const config_component *mixed = config_find(cfg, "mixed");
    ck_assert_uint_eq(mixed->nfrom, 2);
    ck_assert_uint_eq(mixed->nto, 2);
    config_free(cfg);

    /* A chain link's `from` is the host's, like any connector's: a reload applies it in place,
     * so it is not part of the plugin options' fingerprint. */
    char *a = fingerprint_of("triggers:\n  - {id: t, type: cron, schedule: x}\n"
                             "connectors:\n  - {id: a, type: direct, from: t}\n"
                             "  - {id: b, type: direct, from: a, to: w}\n" FP_SCALERS,
                             "b");
    char *b = fingerprint_of("triggers:\n  - {id: t, type: cron, schedule: x}\n"
                             "connectors:\n  - {id: a, type: direct, from: t}\n"
                             "  - {id: b, type: direct, from: [a, t], to: w}\n" FP_SCALERS,
                             "b");
    ck_assert_str_eq(a, b);
    free(a);
    free(b);
}
END_TEST

/* 10,000 connectors in one chain (c0 from a trigger, each next from the one before, only the
 * last with `to`): valid; then closed into a loop: one connector cycle, found without
 * recursion, the message kept short. */
START_TEST(test_long_connector_chain)
{
    enum { N = 10000 };
    size_t cap = (size_t)N * 80 + 256;
    char *text = malloc(cap);
    ck_assert_ptr_nonnull(text);
    for (int closed = 0; closed < 2; closed++) {
        size_t len = 0;
        len += (size_t)snprintf(text + len, cap - len,
                                "triggers:\n  - {id: t, type: cron, schedule: x}\n"
                                "scalers:\n  - {id: w, type: process, command: x, max: 1}\n"
                                "connectors:\n");
        len += (size_t)snprintf(text + len, cap - len, "  - {id: c0, type: direct, from: %s}\n",
                                closed ? "[t, c9999]" : "t");
        for (int i = 1; i < N; i++)
            len += (size_t)snprintf(text + len, cap - len,
                                    "  - {id: c%d, type: direct, from: c%d%s}\n", i, i - 1,
                                    i == N - 1 ? ", to: w" : "");
        ck_assert_uint_lt(len, cap);
        config_errors errs;
        config_errors_init(&errs);
        config *cfg = config_parse_string(text, len, "chain.yaml", &errs);
        ck_assert_ptr_nonnull(cfg);
        if (!closed) {
            ck_assert_uint_eq(errs.count, 0);
            ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, NULL, &errs), 0);
            ck_assert_uint_eq(errs.count, 0);
        } else {
            ck_assert_uint_eq(errs.count, 1);
            ck_assert_int_eq(errs.items[0].line, 6);
            ck_assert_int_eq(errs.items[0].col, 38);
            ck_assert_str_eq(errs.items[0].message,
                             "connector cycle: c0 -> c1 -> c2 -> c3 -> c4 -> c5 -> c6 -> c7 -> "
                             "... -> c9992 -> c9993 -> c9994 -> c9995 -> c9996 -> c9997 -> c9998 "
                             "-> c9999 -> c0");
        }
        config_free(cfg);
        config_errors_free(&errs);
    }
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("parse");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_valid_file);
    tcase_add_test(tc, test_empty_and_defaults);
    tcase_add_test(tc, test_validate_twice_and_keep_arena);
    tcase_add_loop_test(tc, test_error_cases, 0, (int)(sizeof error_cases / sizeof error_cases[0]));
    tcase_add_test(tc, test_many_errors_together);
    tcase_add_test(tc, test_merge_keys);
    tcase_add_test(tc, test_unknown_type_suggestion);
    tcase_add_test(tc, test_plugin_path_refused);
    tcase_add_test(tc, test_env_expansion);
    tcase_add_test(tc, test_durations);
    tcase_add_test(tc, test_option_types);
    tcase_add_test(tc, test_glob);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_alias_bomb);
    tcase_add_test(tc, test_too_many_plain_nodes);
    tcase_add_test(tc, test_huge_file);
    tcase_add_test(tc, test_unreadable_file);
    tcase_add_test(tc, test_file_and_plugin_paths);
    tcase_add_test(tc, test_error_add_and_print);
    tcase_add_test(tc, test_strmap);
    tcase_add_test(tc, test_fingerprints);
    tcase_add_test(tc, test_no_fingerprint_on_error);
    tcase_add_test(tc, test_30000_components);
    tcase_add_test(tc, test_long_cycle);
    tcase_add_test(tc, test_policy_chain);
    tcase_add_test(tc, test_long_connector_chain);
    tcase_add_test(tc, test_objects_fingerprint);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
