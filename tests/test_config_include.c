/*
 * test_config_include.c - `include:` and `extend:` in pipeline files: globs (sorted, an empty one
 * fine), paths relative to the including file's folder at any depth, a missing plain file, keys
 * only the main file may set, ids unique across files, every error of an included file at that
 * file's own path:line:col (printed after the main file's), files read once whatever the route
 * (cycles included), the depth, file-count and string limits, and extend adding names to a map of
 * objects (existing or not yet there, duplicates, unknown ids, values that are not mappings,
 * options that are not maps), merged entries checked and fingerprinted as if written inline.
 * Each case writes real files in a temporary folder and asserts the exact printed lines.
 */
#define _DEFAULT_SOURCE /* realpath, mkdtemp */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "tmp_tree.h"

/* ---- Fake plugins ------------------------------------------------------------------------- */

static const sb_option_spec tick_options[] = {
    {.name = "schedule", .type = SB_OPT_STRING, .required = 1, .help = "cron expression"},
    {.name = "labels", .type = SB_OPT_MAP, .help = "event labels"},
    {.name = NULL}};

static const sb_option_spec direct_options[] = {
    {.name = "factor", .type = SB_OPT_NUMBER, .default_value = "1", .help = "multiplier"},
    {.name = NULL}};

static const sb_option_spec process_options[] = {
    {.name = "command", .type = SB_OPT_LIST, .required = 1, .help = "argv"},
    {.name = NULL}};

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
    {SB_DESCRIPTOR_SIZES, .type = "tick", .kind = SB_KIND_TRIGGER, .version = "1",
     .options = tick_options},
    {SB_DESCRIPTOR_SIZES, .type = "direct", .kind = SB_KIND_CONNECTOR, .version = "1",
     .options = direct_options},
    {SB_DESCRIPTOR_SIZES, .type = "process", .kind = SB_KIND_SCALER, .version = "1",
     .options = process_options},
    {SB_DESCRIPTOR_SIZES, .type = "proxy", .kind = SB_KIND_TRIGGER, .version = "1",
     .options = proxy_options, SB_OPTIONS_MORE(proxy_more)},
};

static const sb_plugin_descriptor *fake_lookup(void *ctx, const char *type)
{
    (void)ctx;
    for (size_t i = 0; i < sizeof fake_plugins / sizeof fake_plugins[0]; i++)
        if (strcmp(fake_plugins[i].type, type) == 0)
            return &fake_plugins[i];
    return NULL;
}

/* ---- A folder of files -------------------------------------------------------------------- */

static char dir[PATH_MAX]; /* this test's folder (real path), made fresh for each test */

static void setup(void)
{
    snprintf(dir, sizeof dir, "%s/sb-test-include-XXXXXX", SB_BINARY_DIR);
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char real[PATH_MAX];
    ck_assert_ptr_nonnull(realpath(dir, real));
    snprintf(dir, sizeof dir, "%s", real);
}

static void teardown(void)
{
    tmp_tree_remove(dir);
}

/* DIR/rel, in a static buffer (one of a few, so a message can use several). */
static const char *at(const char *rel)
{
    static char bufs[8][PATH_MAX + 64];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, rel);
    return b;
}

/* Writes DIR/rel, making its folders. */
static void put(const char *rel, const char *text)
{
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; (p = strchr(p, '/')) != NULL; p++) {
        *p = '\0';
        (void)mkdir(path, 0755);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

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

/* Both phases' errors for DIR/rel, printed. *out_cfg (when given) keeps the config. */
static char *check_file(const char *rel, config **out_cfg)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_file(at(rel), &errs);
    if (cfg != NULL)
        config_validate_plugins(cfg, fake_lookup, NULL, &errs);
    char *out = errors_text(&errs);
    config_errors_free(&errs);
    if (out_cfg != NULL)
        *out_cfg = cfg;
    else
        config_free(cfg);
    return out;
}

/* The expected text, with every "@" replaced by DIR. */
static char *expect(const char *fmt)
{
    size_t n = strlen(fmt) + 1;
    for (const char *p = fmt; *p; p++)
        n += *p == '@' ? strlen(dir) : 0;
    char *s = malloc(n), *w = s;
    ck_assert_ptr_nonnull(s);
    for (const char *p = fmt; *p; p++) {
        if (*p == '@') {
            strcpy(w, dir);
            w += strlen(dir);
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
    return s;
}

static void assert_errors(const char *rel, const char *want_fmt)
{
    char *got = check_file(rel, NULL);
    char *want = expect(want_fmt);
    ck_assert_msg(strcmp(got, want) == 0, "expected:\n%sgot:\n%s", want, got);
    free(got);
    free(want);
}

static config *load_ok(const char *rel)
{
    config *cfg = NULL;
    char *got = check_file(rel, &cfg);
    ck_assert_msg(got[0] == '\0', "unexpected errors:\n%s", got);
    free(got);
    ck_assert_ptr_nonnull(cfg);
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

/* The object named name in a map of objects, or NULL. */
static const sb_value *object(const sb_value *map, const char *name)
{
    for (size_t i = 0; i < map->count; i++)
        if (strcmp(map->items[i], name) == 0)
            return map->objects[i];
    return NULL;
}

#define SCALER(id) "  - {id: " id ", type: process, command: [sleep, '1'], max: 1}\n"

/* ---- include ------------------------------------------------------------------------------ */

START_TEST(test_glob_sorted_and_files)
{
    put("main.yaml", "include: [conf.d/*.yaml]\nscalers:\n" SCALER("m"));
    put("conf.d/20-b.yaml", "scalers:\n" SCALER("b"));
    put("conf.d/10-a.yaml", "scalers:\n" SCALER("a"));
    put("conf.d/README", "not yaml: [\n"); /* not matched by the glob */
    config *cfg = load_ok("main.yaml");
    ck_assert_uint_eq(cfg->ncomponents, 3);
    ck_assert_str_eq(cfg->components[0].id, "m");
    ck_assert_str_eq(cfg->components[1].id, "a");
    ck_assert_str_eq(cfg->components[2].id, "b");
    ck_assert_str_eq(cfg->components[0].file, at("main.yaml"));
    ck_assert_str_eq(cfg->components[1].file, at("conf.d/10-a.yaml"));
    ck_assert_uint_eq(cfg->nfiles, 3);
    ck_assert_str_eq(cfg->files[0], at("main.yaml"));
    ck_assert_str_eq(cfg->files[1], at("conf.d/10-a.yaml"));
    ck_assert_str_eq(cfg->files[2], at("conf.d/20-b.yaml"));
    config_free(cfg);
}
END_TEST

/* Components of one kind from every file, then the next kind: triggers first, whatever file. */
START_TEST(test_kinds_across_files)
{
    put("main.yaml", "include: one.yaml\nscalers:\n" SCALER("s1"));
    put("one.yaml", "triggers:\n  - {id: t, type: tick, schedule: x}\n"
                    "connectors:\n  - {id: c, type: direct, from: t, to: s1}\n");
    config *cfg = load_ok("main.yaml");
    ck_assert_uint_eq(cfg->ncomponents, 3);
    ck_assert_int_eq(cfg->components[0].kind, SB_KIND_TRIGGER);
    ck_assert_int_eq(cfg->components[1].kind, SB_KIND_CONNECTOR);
    ck_assert_int_eq(cfg->components[2].kind, SB_KIND_SCALER);
    ck_assert_str_eq(config_find(cfg, "c")->file, at("one.yaml"));
    config_free(cfg);
}
END_TEST

START_TEST(test_relative_nested)
{
    put("etc/main.yaml", "include: conf.d/web.yaml\n");
    put("etc/conf.d/web.yaml", "include: [./more/*.yaml, ../other.yaml]\nscalers:\n" SCALER("web"));
    put("etc/conf.d/more/x.yaml", "scalers:\n" SCALER("x"));
    put("etc/other.yaml", "scalers:\n" SCALER("other"));
    config *cfg = load_ok("etc/main.yaml");
    ck_assert_uint_eq(cfg->nfiles, 4);
    ck_assert_str_eq(cfg->files[1], at("etc/conf.d/web.yaml"));
    ck_assert_str_eq(cfg->files[2], at("etc/conf.d/more/x.yaml"));
    ck_assert_str_eq(cfg->files[3], at("etc/other.yaml"));
    ck_assert_ptr_nonnull(config_find(cfg, "x"));
    ck_assert_ptr_nonnull(config_find(cfg, "other"));
    config_free(cfg);
}
END_TEST

START_TEST(test_missing_plain_file)
{
    put("main.yaml", "include:\n  - conf.d/*.yaml\n  - nope.yaml\n");
    assert_errors("main.yaml",
                  "@/main.yaml:3:5: include @/nope.yaml: cannot read: No such file or directory\n");
}
END_TEST

START_TEST(test_empty_glob)
{
    put("main.yaml", "include: [conf.d/*.yaml, /nonexistent-sb-folder/*.yaml]\nscalers:\n" SCALER("m"));
    config *cfg = load_ok("main.yaml");
    ck_assert_uint_eq(cfg->nfiles, 1);
    ck_assert_uint_eq(cfg->ncomponents, 1);
    config_free(cfg);
}
END_TEST

START_TEST(test_not_regular)
{
    put("main.yaml", "include: [conf.d, fifo.yaml]\n");
    put("conf.d/a.yaml", "");
    ck_assert_int_eq(mkfifo(at("fifo.yaml"), 0600), 0);
    assert_errors("main.yaml",
                  "@/main.yaml:1:11: include @/conf.d: cannot read: Is a directory\n"
                  "@/main.yaml:1:19: include @/fifo.yaml: cannot read: a FIFO, not a regular "
                  "file\n");
}
END_TEST

START_TEST(test_only_main_keys)
{
    put("main.yaml", "include: [c/*.yaml]\n");
    put("c/a.yaml", "triggers: []\n"
                    "admin: {listen: off}\n"
                    "log: {level: debug}\n"
                    "scalrs: []\n"
                    "pipelines: []\n"
                    "x-defaults: &d {max: 1}\n");
    assert_errors("main.yaml",
                  "@/c/a.yaml:2:1: only the main file may set 'admin'\n"
                  "@/c/a.yaml:3:1: only the main file may set 'log'\n"
                  "@/c/a.yaml:4:1: unknown top-level key 'scalrs' (did you mean 'scalers'?)\n"
                  "@/c/a.yaml:5:1: unknown top-level key 'pipelines' (an included file may give "
                  "include, triggers, connectors, scalers and extend)\n");
}
END_TEST

START_TEST(test_duplicate_id_across_files)
{
    put("main.yaml", "include: [c/*.yaml]\nscalers:\n" SCALER("web"));
    put("c/a.yaml", "scalers:\n" SCALER("shop") SCALER("web"));
    put("c/b.yaml", "scalers:\n" SCALER("shop"));
    assert_errors("main.yaml",
                  "@/c/a.yaml:3:10: duplicate id 'web' (first used at @/main.yaml:3:10)\n"
                  "@/c/b.yaml:2:10: duplicate id 'shop' (first used at @/c/a.yaml:2:10)\n");
}
END_TEST

/* Phase 1, phase 2, YAML syntax and ${VAR} errors of included files at their own positions;
 * the main file's errors print first, then each file's in order of name. */
START_TEST(test_errors_in_included_files)
{
    put("main.yaml", "include: [c/*.yaml]\n"
                     "triggers:\n  - {id: t, type: tick, schedule: x}\n"
                     "scalers:\n  - {id: m, type: process, max: 1}\n");
    put("c/a.yaml", "connectors:\n"
                    "  - {id: c1, type: direct, from: t, to: nowhere, factor: big}\n");
    put("c/b.yaml", "scalers:\n  - {id: b, type: process, command: [x], max: [\n");
    put("c/c.yaml", "triggers:\n  - {id: t2, type: tikc, schedule: \"${NO_SUCH_VAR_SB}\"}\n");
    assert_errors(
        "main.yaml",
        "@/main.yaml:5:5: process 'm': missing required option 'command'\n"
        "@/c/a.yaml:2:41: connector 'c1': to 'nowhere' is not a scaler or trigger in this file\n"
        "@/c/a.yaml:2:58: option 'factor' of direct: expected a number, got 'big'\n"
        "@/c/b.yaml:3:1: did not find expected node content (while parsing a flow node at 3:1)\n"
        "@/c/c.yaml:2:20: unknown plugin type 'tikc'\n"
        "@/c/c.yaml:2:36: environment variable 'NO_SUCH_VAR_SB' is not set\n");
}
END_TEST

START_TEST(test_read_once_and_cycle)
{
    put("main.yaml", "include: [a.yaml, b.yaml, ./a.yaml]\nscalers:\n" SCALER("m"));
    put("a.yaml", "include: [b.yaml, main.yaml]\nscalers:\n" SCALER("a"));
    put("b.yaml", "include: a.yaml\nscalers:\n" SCALER("b"));
    config *cfg = load_ok("main.yaml");
    ck_assert_uint_eq(cfg->nfiles, 3);
    ck_assert_str_eq(cfg->files[1], at("a.yaml"));
    ck_assert_str_eq(cfg->files[2], at("b.yaml"));
    ck_assert_uint_eq(cfg->ncomponents, 3);
    config_free(cfg);
}
END_TEST

START_TEST(test_depth_cap)
{
    /* main -> f1 -> ... -> f9: f9 is 9 deep, one past the limit. */
    put("main.yaml", "include: f1.yaml\n");
    for (int i = 1; i <= 9; i++) {
        char name[32], text[64];
        snprintf(name, sizeof name, "f%d.yaml", i);
        snprintf(text, sizeof text, "include: f%d.yaml\n", i + 1);
        put(name, text);
    }
    assert_errors("main.yaml",
                  "@/f8.yaml:1:10: include @/f9.yaml: includes nested more than 8 deep (a file "
                  "that includes a file that includes ...): not read\n");
}
END_TEST

START_TEST(test_file_count_cap)
{
    put("main.yaml", "include: d/*.yaml\n");
    char name[32];
    for (int i = 0; i < CONFIG_MAX_INCLUDE_FILES; i++) {
        snprintf(name, sizeof name, "d/%04d.yaml", i);
        put(name, "");
    }
    assert_errors("main.yaml", "@/main.yaml:1:10: include @/d/0999.yaml: more than 1000 files in "
                               "all: the rest are not read\n");
}
END_TEST

START_TEST(test_include_shapes)
{
    put("main.yaml", "include: {a: b}\n");
    put("two.yaml", "include: [[x], '']\n");
    assert_errors("main.yaml",
                  "@/main.yaml:1:10: 'include' must be a path or glob, or a list of them, got a "
                  "mapping\n");
    assert_errors("two.yaml", "@/two.yaml:1:11: include entries must be paths or globs, got a "
                              "sequence\n"
                              "@/two.yaml:1:16: include entries must be paths or globs, got an "
                              "empty string\n");
}
END_TEST

/* A string reads no files: include is refused there (the fuzzer parses strings). */
START_TEST(test_string_refuses_include)
{
    const char *text = "include: [/etc/*.yaml]\n";
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), "s.yaml", &errs);
    char *out = errors_text(&errs);
    ck_assert_str_eq(out, "s.yaml:1:1: 'include' is read only from a pipeline file on disk (this "
                          "text was not read from a file)\n");
    ck_assert_uint_eq(cfg->nfiles, 1);
    free(out);
    config_free(cfg);
    config_errors_free(&errs);
}
END_TEST

/* ---- extend ------------------------------------------------------------------------------- */

static const char proxy_main[] = "include: [conf.d/*.yaml]\n"
                                 "triggers:\n"
                                 "  - id: router\n"
                                 "    type: proxy\n"
                                 "    services:\n"
                                 "      web: {backend: web}\n"
                                 "scalers:\n" SCALER("web");

START_TEST(test_extend_adds)
{
    put("main.yaml", proxy_main);
    put("conf.d/shop.yaml", "scalers:\n" SCALER("shop-v1") "extend:\n"
                            "  - id: router\n"
                            "    services:\n"
                            "      shop: {hosts: [shop.local], backend: shop-v1, slots: 2}\n");
    put("conf.d/tick.yaml", "triggers:\n  - {id: t, type: tick, schedule: x}\n"
                            "extend:\n  - {id: t, labels: {a: '1'}}\n"
                            "  - {id: t, labels: {b: '2'}}\n");
    config *cfg = load_ok("main.yaml");
    const sb_value *svc = option(config_find(cfg, "router"), "services");
    ck_assert_uint_eq(svc->count, 2);
    ck_assert_ptr_nonnull(object(svc, "web"));
    const sb_value *shop = object(svc, "shop");
    ck_assert_ptr_nonnull(shop);
    ck_assert_str_eq(shop[0].str, "shop-v1");
    ck_assert_int_eq(shop[1].integer, 2);
    ck_assert_str_eq(shop[2].items[0], "shop.local");
    /* A map the component did not have: the extends make it. */
    const sb_value *labels = option(config_find(cfg, "t"), "labels");
    ck_assert_uint_eq(labels->count, 2);
    ck_assert_str_eq(labels->items[0], "a");
    ck_assert_str_eq(labels->values[1], "2");
    config_free(cfg);
}
END_TEST

START_TEST(test_extend_creates_map)
{
    put("main.yaml", "include: [conf.d/*.yaml]\n"
                     "triggers:\n  - {id: router, type: proxy}\n");
    put("conf.d/a.yaml", "extend:\n  - {id: router, services: {a: {backend: x}}}\n");
    put("conf.d/b.yaml", "extend:\n  - {id: router, services: {b: {backend: y}}}\n");
    config *cfg = load_ok("main.yaml");
    const sb_value *svc = option(config_find(cfg, "router"), "services");
    ck_assert_uint_eq(svc->count, 2);
    ck_assert_str_eq(object(svc, "a")[0].str, "x");
    ck_assert_str_eq(object(svc, "b")[0].str, "y");
    config_free(cfg);
}
END_TEST

START_TEST(test_extend_errors)
{
    put("main.yaml", proxy_main);
    put("conf.d/a.yaml", "extend:\n"
                         "  - id: router\n"
                         "    services:\n"
                         "      web: {backend: again}\n"
                         "      shop: {backend: shop, slots: many, colour: red}\n"
                         "  - id: routr\n"
                         "    services: {x: {backend: y}}\n"
                         "  - id: web\n"
                         "    command: {a: b}\n"
                         "  - id: router\n"
                         "    services: [a]\n"
                         "  - id: router\n"
                         "    from: {a: b}\n"
                         "  - {services: {}}\n"
                         "  - just text\n");
    put("conf.d/b.yaml", "extend:\n"
                         "  - id: router\n"
                         "    services:\n"
                         "      shop: {backend: two}\n");
    assert_errors(
        "main.yaml",
        "@/conf.d/a.yaml:4:7: services 'web' of 'router' is already declared at @/main.yaml:6:7\n"
        "@/conf.d/a.yaml:5:36: option 'services.shop.slots' of proxy: expected an integer, got "
        "'many'\n"
        "@/conf.d/a.yaml:5:42: unknown option 'colour' in services.shop of proxy (its options: "
        "backend, slots, hosts)\n"
        "@/conf.d/a.yaml:6:9: extend: no component 'routr' (did you mean 'router'?)\n"
        "@/conf.d/a.yaml:9:5: extend: 'command' of 'web' is a sequence where it is declared "
        "(@/main.yaml:8:39), not a mapping: extend adds only to a map of objects\n"
        "@/conf.d/a.yaml:11:15: extend: 'services' must be a mapping of names to objects, got a "
        "sequence\n"
        "@/conf.d/a.yaml:13:5: extend: 'from' is the host's, not a plugin option: extend adds "
        "only to a plugin's maps of objects\n"
        "@/conf.d/a.yaml:14:5: extend: give the id of the component it adds to (id: router)\n"
        "@/conf.d/a.yaml:15:5: each entry of 'extend' must be a mapping like {id: router, "
        "services: {...}}, got a scalar\n"
        "@/conf.d/b.yaml:4:7: services 'shop' of 'router' is already declared at "
        "@/conf.d/a.yaml:5:7\n");
}
END_TEST

/* An option the plugin does not take as a map: reported at the extend, once. */
START_TEST(test_extend_not_a_map_option)
{
    put("main.yaml", "include: x.yaml\n"
                     "scalers:\n  - {id: web, type: process, max: 1}\n"
                     "extend: {a: b}\n");
    put("x.yaml", "extend:\n  - {id: web, command: {a: b}}\n");
    assert_errors("main.yaml",
                  "@/main.yaml:4:9: 'extend' must be a list of mappings like - {id: router, "
                  "services: {...}}, got a mapping\n"
                  "@/x.yaml:2:15: 'command' of 'web' (process) is not a map of objects: extend "
                  "adds only to those\n");
}
END_TEST

/* The fingerprint covers merged entries: a fragment that adds a service changes it. */
START_TEST(test_extend_fingerprint)
{
    put("main.yaml", proxy_main);
    config *before = load_ok("main.yaml");
    put("conf.d/shop.yaml", "extend:\n  - {id: router, services: {shop: {backend: s}}}\n");
    config *after = load_ok("main.yaml");
    const char *fa = config_find(before, "router")->fingerprint;
    const char *fb = config_find(after, "router")->fingerprint;
    ck_assert_ptr_nonnull(fa);
    ck_assert_ptr_nonnull(fb);
    ck_assert_str_ne(fa, fb);
    ck_assert_str_eq(config_find(before, "web")->fingerprint, config_find(after, "web")->fingerprint);
    config_free(before);
    config_free(after);
}
END_TEST

/* extend works in a string too (it reads no file). */
START_TEST(test_extend_in_string)
{
    const char *text = "triggers:\n  - {id: r, type: proxy, services: {a: {backend: x}}}\n"
                       "extend:\n  - {id: r, services: {b: {backend: y}}}\n";
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(text, strlen(text), "s.yaml", &errs);
    ck_assert_int_eq(config_validate_plugins(cfg, fake_lookup, NULL, &errs), 0);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_uint_eq(option(config_find(cfg, "r"), "services")->count, 2);
    config_free(cfg);
    config_errors_free(&errs);
}
END_TEST

static Suite *include_suite(void)
{
    Suite *s = suite_create("config_include");
    TCase *tc = tcase_create("include");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_glob_sorted_and_files);
    tcase_add_test(tc, test_kinds_across_files);
    tcase_add_test(tc, test_relative_nested);
    tcase_add_test(tc, test_missing_plain_file);
    tcase_add_test(tc, test_empty_glob);
    tcase_add_test(tc, test_not_regular);
    tcase_add_test(tc, test_only_main_keys);
    tcase_add_test(tc, test_duplicate_id_across_files);
    tcase_add_test(tc, test_errors_in_included_files);
    tcase_add_test(tc, test_read_once_and_cycle);
    tcase_add_test(tc, test_depth_cap);
    tcase_add_test(tc, test_file_count_cap);
    tcase_add_test(tc, test_include_shapes);
    tcase_add_test(tc, test_string_refuses_include);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("extend");
    tcase_add_checked_fixture(te, setup, teardown);
    tcase_add_test(te, test_extend_adds);
    tcase_add_test(te, test_extend_creates_map);
    tcase_add_test(te, test_extend_errors);
    tcase_add_test(te, test_extend_not_a_map_option);
    tcase_add_test(te, test_extend_fingerprint);
    tcase_add_test(te, test_extend_in_string);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(include_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
