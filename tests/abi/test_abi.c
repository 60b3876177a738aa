/*
 * test_abi.c - plugins built for other headers, loaded by today's daemon through pipeline files
 * (the public daemon API of core/daemon.h):
 * - frozen_v2.so, built against the frozen ABI-2 header (tests/abi/v2/scalebus/plugin.h, whose
 *   SHA-256 is checked here so that nobody edits it), is created with its options and what it
 *   publishes reaches a subscriber;
 * - future_abi.so, built like a plugin of a future header whose descriptor, options rows and
 *   option values have grown, gets its options right: required, defaults and values, in its own
 *   bigger stride with the fields today's host does not know zeroed;
 * - a plugin built for ABI 1 is refused with exactly one line naming the file and both ABIs, and
 *   a file using its type is refused;
 * - plugins.path folders of a pipeline file are held to the loader's trust rules.
 *
 * Everything lives under the build tree, which must be trusted for plugins to load from it at
 * all; when it is not (a build under a sticky /tmp), the test says SKIP and exits 77.
 */
#define _DEFAULT_SOURCE /* mkdtemp, realpath, usleep */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "abi/trusted_dir.h"
#include "config.h"
#include "daemon.h"
#include "tmp_tree.h"

#define FROZEN_DIR SB_ABI_PLUGIN_DIR "/frozen_v2"
#define FUTURE_DIR SB_ABI_PLUGIN_DIR "/future_abi"
#define ABI1_DIR SB_BINARY_DIR "/tests/plugins/abi1"
#define PATH_BUF (PATH_MAX + 64)

/* The frozen ABI-2 header's SHA-256 when it was copied: it must never change. */
#define FROZEN_V2_SHA256 "0e8c3ca1512a9ef20ce01ca3295492e7924533bd16b19b51da18bbc7f0679b49"

/* ---- a daemon in a temporary folder ----------------------------------------------------- */

/* tmp_base lives as long as a test case (an unchecked fixture, so it is removed even when a
 * forked test fails); each test gets a fresh folder tmp inside it. Real paths, in the build tree.
 */
static char tmp_base[PATH_MAX];
static char tmp[PATH_MAX];
static uv_loop_t loop;
static sb_daemon *d;

static void base_setup(void)
{
    char templ[PATH_MAX];
    snprintf(templ, sizeof templ, "%s/tests/sb-test-abi-XXXXXX", SB_BINARY_DIR);
    ck_assert_msg(mkdtemp(templ) != NULL, "mkdtemp %s: %s", templ, strerror(errno));
    ck_assert_ptr_nonnull(realpath(templ, tmp_base));
}

static void base_teardown(void)
{
    tmp_tree_remove(tmp_base);
}

static void setup(void)
{
    char templ[PATH_BUF];
    snprintf(templ, sizeof templ, "%s/case-XXXXXX", tmp_base);
    ck_assert_msg(mkdtemp(templ) != NULL, "mkdtemp %s: %s", templ, strerror(errno));
    ck_assert_ptr_nonnull(realpath(templ, tmp));
    ck_assert_int_eq(chmod(tmp, 0755), 0);
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    d = NULL;
}

static void on_stopped(void *arg)
{
    *(int *)arg = 1;
}

static void teardown(void)
{
    if (d) {
        int done = 0;
        daemon_stop(d, on_stopped, &done);
        for (int i = 0; i < 5000 && !done; i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
            if (!done)
                usleep(1000);
        }
        ck_assert_int_eq(done, 1);
        daemon_free(d);
        d = NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    tmp_tree_remove(tmp);
}

static void new_daemon(const char *const *dirs, size_t ndirs)
{
    daemon_options o = {
        .plugin_dirs = dirs, .nplugin_dirs = ndirs, .log_level = SB_LOG_WARN, .log_level_set = 1};
    d = daemon_new(&loop, &o);
    ck_assert_ptr_nonnull(d);
}

/* tmp/NAME, in buf[PATH_BUF] */
static const char *tmp_path(const char *name, char *buf)
{
    snprintf(buf, PATH_BUF, "%s/%s", tmp, name);
    return buf;
}

static const char *write_pipeline(const char *text)
{
    static char path[PATH_BUF];
    FILE *f = fopen(tmp_path("pipeline.yaml", path), "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
    return path;
}

/* daemon_load's result; the errors, one per line, into text (when not NULL). */
static int load(const char *yaml, char *text, size_t len)
{
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(d, write_pipeline(yaml), &errs);
    if (text) {
        text[0] = '\0';
        FILE *f = fmemopen(text, len, "w");
        ck_assert_ptr_nonnull(f);
        config_errors_print(&errs, f);
        fclose(f);
    }
    config_errors_free(&errs);
    return rc;
}

static void load_ok(const char *yaml)
{
    char errs[4096];
    int rc = load(yaml, errs, sizeof errs);
    ck_assert_msg(rc == 0, "daemon_load: %d\n%s", rc, errs);
}

/* ---- readings as a subscriber sees them --------------------------------------------------- */

typedef struct seen {
    int n;
    double value;
    char source_id[64];
    char name[64]; /* its label name= */
} seen;

static void on_reading(void *arg, const sb_event *ev)
{
    seen *s = arg;
    s->n++;
    s->value = ev->value;
    snprintf(s->source_id, sizeof s->source_id, "%s", ev->source_id ? ev->source_id : "");
    s->name[0] = '\0';
    for (size_t i = 0; i < ev->nlabels; i++)
        if (strcmp(ev->labels[i].key, "name") == 0)
            snprintf(s->name, sizeof s->name, "%s", ev->labels[i].value);
}

/* Runs the loop until *n reaches want (5 s at most). */
static void run_until(const int *n, int want)
{
    for (int i = 0; i < 5000 && *n < want; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (*n < want)
            usleep(1000);
    }
    ck_assert_int_ge(*n, want);
}

/* ---- what the daemon writes to stderr ------------------------------------------------------ */

typedef struct capture {
    int saved;
    char path[PATH_BUF];
} capture;

static void capture_begin(capture *c)
{
    tmp_path("stderr.txt", c->path);
    fflush(stderr);
    c->saved = dup(2);
    ck_assert_int_ge(c->saved, 0);
    int fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
}

/* Stops capturing; the text written meanwhile into buf. */
static void capture_end(capture *c, char *buf, size_t len)
{
    fflush(stderr);
    ck_assert_int_eq(dup2(c->saved, 2), 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    ck_assert_ptr_nonnull(f);
    size_t n = fread(buf, 1, len - 1, f);
    buf[n] = '\0';
    fclose(f);
    fputs(buf, stderr); /* still shown */
}

/* How many lines of text contain needle. */
static int lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        const char *hit = strstr(line, needle);
        if (hit && hit < line + len)
            n++;
        line += len + (end ? 1 : 0);
    }
    return n;
}

/* ---- the frozen ABI-2 plugin ----------------------------------------------------------------- */

/* The frozen header is the ABI-2 header as it was: nobody may edit it. */
START_TEST(test_frozen_header_unchanged)
{
    ck_assert_msg(strcmp(SB_FROZEN_V2_SHA256, FROZEN_V2_SHA256) == 0,
                  "%s was edited (SHA-256 %s, frozen as %s): it must stay as ABI 2 shipped; a "
                  "plugin built against it must keep loading",
                  SB_FROZEN_V2_HEADER, SB_FROZEN_V2_SHA256, FROZEN_V2_SHA256);
}
END_TEST

/* Created with its options, it publishes on its timer and on "run"; a subscriber gets both. */
START_TEST(test_frozen_v2_plugin_runs)
{
    static const char *const dirs[] = {FROZEN_DIR};
    new_daemon(dirs, 1);
    load_ok("triggers:\n"
            "  - { id: old, type: frozen_v2, level: 7, name: web, interval: 10ms }\n");
    seen s = {0};
    ck_assert_int_eq(daemon_subscribe(d, "old", SB_TOPIC_READING, on_reading, &s), 0);
    run_until(&s.n, 1);
    ck_assert_double_eq(s.value, 7);
    ck_assert_str_eq(s.source_id, "old");
    ck_assert_str_eq(s.name, "web");

    /* on_event: "run" publishes at once */
    int before = s.n;
    ck_assert_int_eq(daemon_send(d, "old", SB_TOPIC_RUN, 1), 0);
    run_until(&s.n, before + 1);
    ck_assert_double_eq(s.value, 7);
}
END_TEST

/* Its options table is read as it was built: a missing required option and an unknown one are
 * refused; the default fills name. */
START_TEST(test_frozen_v2_options)
{
    static const char *const dirs[] = {FROZEN_DIR};
    new_daemon(dirs, 1);
    char errs[4096];
    ck_assert_int_eq(load("triggers:\n  - { id: old, type: frozen_v2 }\n", errs, sizeof errs),
                     -EINVAL);
    ck_assert_msg(strstr(errs, "level") != NULL, "%s", errs);
    ck_assert_int_eq(
        load("triggers:\n  - { id: old, type: frozen_v2, level: 1, size: 3 }\n", errs, sizeof errs),
        -EINVAL);
    ck_assert_msg(strstr(errs, "size") != NULL, "%s", errs);

    load_ok("triggers:\n  - { id: old, type: frozen_v2, level: 2 }\n");
    seen s = {0};
    ck_assert_int_eq(daemon_subscribe(d, "old", SB_TOPIC_READING, on_reading, &s), 0);
    run_until(&s.n, 1);
    ck_assert_double_eq(s.value, 2);
    ck_assert_str_eq(s.name, "frozen");
}
END_TEST

/* ---- a plugin of a future header ------------------------------------------------------------- */

START_TEST(test_future_plugin_options)
{
    static const char *const dirs[] = {FROZEN_DIR, FUTURE_DIR};
    new_daemon(dirs, 2);
    char errs[4096];
    /* "level" is required: read from the second field of a row in the plugin's stride */
    ck_assert_int_eq(load("triggers:\n  - { id: new, type: future_abi }\n", errs, sizeof errs),
                     -EINVAL);
    ck_assert_msg(strstr(errs, "level") != NULL, "%s", errs);
    /* the rows' extra fields are no options */
    ck_assert_int_eq(load("triggers:\n  - { id: new, type: future_abi, level: 1, example: x }\n",
                          errs, sizeof errs),
                     -EINVAL);
    ck_assert_msg(strstr(errs, "example") != NULL, "%s", errs);

    load_ok("triggers:\n"
            "  - { id: new, type: future_abi, level: 8, scale: 0.25, name: far }\n"
            "  - { id: dflt, type: future_abi, level: 6 }\n"
            "  - { id: old, type: frozen_v2, level: 3 }\n");
    seen s_new = {0}, s_dflt = {0}, s_old = {0};
    ck_assert_int_eq(daemon_subscribe(d, "new", SB_TOPIC_READING, on_reading, &s_new), 0);
    ck_assert_int_eq(daemon_subscribe(d, "dflt", SB_TOPIC_READING, on_reading, &s_dflt), 0);
    ck_assert_int_eq(daemon_subscribe(d, "old", SB_TOPIC_READING, on_reading, &s_old), 0);
    run_until(&s_new.n, 1);
    run_until(&s_dflt.n, 1);
    run_until(&s_old.n, 1);
    ck_assert_double_eq(s_new.value, 2.0);
    ck_assert_str_eq(s_new.name, "far");
    ck_assert_double_eq(s_dflt.value, 3.0); /* 6 * the default 0.5 */
    ck_assert_str_eq(s_dflt.name, "future");
    ck_assert_double_eq(s_old.value, 3.0);
    ck_assert_str_eq(s_old.name, "frozen");
}
END_TEST

/* ---- a plugin built for ABI 1 -------------------------------------------------------------- */

START_TEST(test_abi1_plugin_refused)
{
    static const char *const dirs[] = {ABI1_DIR, FROZEN_DIR};
    new_daemon(dirs, 2);
    capture c;
    capture_begin(&c);
    char errs[4096];
    int rc = load("triggers:\n  - { id: ancient, type: abi1 }\n", errs, sizeof errs);
    char out[16384];
    capture_end(&c, out, sizeof out);
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_msg(strstr(errs, "abi1") != NULL, "%s", errs);

    ck_assert_int_eq(lines_with(out, "abi1.so"), 1);
    ck_assert_int_eq(lines_with(out, ABI1_DIR "/abi1.so: built for plugin ABI 1, this scalebus "
                                              "speaks ABI 2"),
                     1);
    /* the other folder still loads */
    load_ok("triggers:\n  - { id: old, type: frozen_v2, level: 1 }\n");
}
END_TEST

/* ---- plugins.path and the loader's trust rules ------------------------------------------------
 */

static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    ck_assert_msg(in != NULL, "%s: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    ck_assert_msg(out != NULL, "%s: %s", to, strerror(errno));
    char buf[8192];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(chmod(to, mode), 0);
}

/* A plugins.path folder writable by its group is refused with one line and its plugins are
 * unknown; once it is 0755 the same file loads. */
START_TEST(test_plugins_path_trusted)
{
    char dir[PATH_BUF], so[PATH_BUF + 16];
    ck_assert_int_eq(mkdir(tmp_path("plugins", dir), 0755), 0);
    snprintf(so, sizeof so, "%s/frozen_v2.so", dir);
    copy_file(FROZEN_DIR "/frozen_v2.so", so, 0644);
    ck_assert_int_eq(chmod(dir, 0775), 0);

    char yaml[PATH_BUF + 256];
    snprintf(yaml, sizeof yaml,
             "plugins: { path: [\"%s\"] }\n"
             "triggers:\n  - { id: old, type: frozen_v2, level: 5 }\n",
             dir);
    new_daemon(NULL, 0);
    capture c;
    capture_begin(&c);
    char errs[4096];
    int rc = load(yaml, errs, sizeof errs);
    char out[16384];
    capture_end(&c, out, sizeof out);
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_msg(strstr(errs, "frozen_v2") != NULL, "%s", errs);
    char line[PATH_BUF + 128];
    snprintf(line, sizeof line, "%s: not loaded: the folder is writable by its group (mode 0775)",
             dir);
    ck_assert_msg(lines_with(out, line) == 1, "no line \"%s\" in:\n%s", line, out);

    /* a group-writable file in a trusted folder */
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(chmod(so, 0664), 0);
    capture_begin(&c);
    rc = load(yaml, errs, sizeof errs);
    capture_end(&c, out, sizeof out);
    ck_assert_int_eq(rc, -EINVAL);
    snprintf(line, sizeof line, "%s: not loaded: the file is writable by its group (mode 0664)",
             so);
    ck_assert_msg(lines_with(out, line) == 1, "no line \"%s\" in:\n%s", line, out);

    ck_assert_int_eq(chmod(so, 0644), 0);
    load_ok(yaml);
    seen s = {0};
    ck_assert_int_eq(daemon_subscribe(d, "old", SB_TOPIC_READING, on_reading, &s), 0);
    run_until(&s.n, 1);
    ck_assert_double_eq(s.value, 5);
}
END_TEST

/* ---- maps of objects (SB_OPT_OBJECTS) ------------------------------------------------------- */

#define NESTED_DIR(n) SB_ABI_PLUGIN_DIR "/nested" #n

typedef struct service_seen {
    int n;
    struct {
        double value;
        char service[32], backend[32], checks[8], path[32], interval[16];
    } r[4];
} service_seen;

static void label_copy(const sb_event *ev, const char *key, char *out, size_t len)
{
    out[0] = '\0';
    for (size_t i = 0; i < ev->nlabels; i++)
        if (strcmp(ev->labels[i].key, key) == 0)
            snprintf(out, len, "%s", ev->labels[i].value);
}

static void on_service(void *arg, const sb_event *ev)
{
    service_seen *s = arg;
    if (s->n == 4)
        return;
    s->r[s->n].value = ev->value;
    label_copy(ev, "service", s->r[s->n].service, sizeof s->r[s->n].service);
    label_copy(ev, "backend", s->r[s->n].backend, sizeof s->r[s->n].backend);
    label_copy(ev, "checks", s->r[s->n].checks, sizeof s->r[s->n].checks);
    label_copy(ev, "path", s->r[s->n].path, sizeof s->r[s->n].path);
    label_copy(ev, "interval_ms", s->r[s->n].interval, sizeof s->r[s->n].interval);
    s->n++;
}

/* The plugin gets every object with its own options, defaults filled in, two levels deep. */
START_TEST(test_nested_options_reach_the_plugin)
{
    static const char *const dirs[] = {NESTED_DIR(0)};
    new_daemon(dirs, 1);
    load_ok("triggers:\n"
            "  - id: router\n"
            "    type: nested_opts\n"
            "    token: s3cret\n"
            "    services:\n"
            "      web: {backend: w, slots: 2, health: {main: {path: /hz, interval: 1500ms}}}\n"
            "      api: {backend: a}\n");
    service_seen s = {0};
    ck_assert_int_eq(daemon_subscribe(d, "router", SB_TOPIC_READING, on_service, &s), 0);
    run_until(&s.n, 2);
    ck_assert_str_eq(s.r[0].service, "web");
    ck_assert_double_eq(s.r[0].value, 2);
    ck_assert_str_eq(s.r[0].backend, "w");
    ck_assert_str_eq(s.r[0].checks, "1");
    ck_assert_str_eq(s.r[0].path, "/hz");
    ck_assert_str_eq(s.r[0].interval, "1500");
    ck_assert_str_eq(s.r[1].service, "api");
    ck_assert_double_eq(s.r[1].value, 4); /* the nested table's default */
    ck_assert_str_eq(s.r[1].backend, "a");
    ck_assert_str_eq(s.r[1].checks, "0");
    ck_assert_str_eq(s.r[1].path, "-");
}
END_TEST

/* Each mistake inside an object is reported at its own file:line:col, naming the object. */
START_TEST(test_nested_options_errors)
{
    static const char *const dirs[] = {NESTED_DIR(0)};
    new_daemon(dirs, 1);
    char errs[4096];
    ck_assert_int_eq(load("triggers:\n"
                          "  - id: router\n"
                          "    type: nested_opts\n"
                          "    services:\n"
                          "      web: {backnd: w}\n"
                          "      api: {backend: a, slots: many}\n"
                          "      db: {backend: d, health: {main: {path: [x], intervl: 1s}}}\n",
                          errs, sizeof errs),
                     -EINVAL);
    ck_assert_msg(strstr(errs, ":5:13: unknown option 'backnd' in services.web of nested_opts "
                               "(did you mean 'backend'?)") != NULL,
                  "%s", errs);
    ck_assert_msg(strstr(errs, ":5:7: nested_opts: services.web: missing required option "
                               "'backend'") != NULL,
                  "%s", errs);
    ck_assert_msg(strstr(errs, ":6:32: option 'services.api.slots' of nested_opts: expected an "
                               "integer") != NULL,
                  "%s", errs);
    ck_assert_msg(strstr(errs, "option 'services.db.health.main.path' of nested_opts: expected "
                               "a string") != NULL,
                  "%s", errs);
    ck_assert_msg(strstr(errs, "unknown option 'intervl' in services.db.health.main of "
                               "nested_opts (did you mean 'interval'?)") != NULL,
                  "%s", errs);
    ck_assert_int_eq(load("triggers:\n"
                          "  - { id: router, type: nested_opts, services: [web, api] }\n",
                          errs, sizeof errs),
                     -EINVAL);
    ck_assert_msg(strstr(errs, "option 'services' of nested_opts: expected a mapping of names "
                               "to objects, got a sequence") != NULL,
                  "%s", errs);
}
END_TEST

/* options_more that names no option, or a map of objects without a table: refused at load. */
START_TEST(test_nested_options_refused)
{
    static const char *const dirs[] = {NESTED_DIR(1), NESTED_DIR(2), NESTED_DIR(0)};
    new_daemon(dirs, 3);
    capture c;
    capture_begin(&c);
    char errs[4096];
    int rc = load("triggers:\n  - { id: a, type: nested_badpath }\n", errs, sizeof errs);
    char out[16384];
    capture_end(&c, out, sizeof out);
    ck_assert_int_eq(rc, -EINVAL);
    ck_assert_int_eq(lines_with(out, "plugin 'nested_badpath' options_more names 'services.nope', "
                                     "which is not one of its options"),
                     1);
    ck_assert_int_eq(lines_with(out, "plugin 'nested_notable' option 'services.health' is a map "
                                     "of objects without a table of their options in "
                                     "options_more"),
                     1);
    /* the valid one in the same daemon loads */
    load_ok("triggers:\n  - { id: r, type: nested_opts, services: {web: {backend: w}} }\n");
}
END_TEST

static Suite *abi_suite(void)
{
    Suite *s = suite_create("abi");
    TCase *tc = tcase_create("abi2");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_frozen_header_unchanged);
    tcase_add_test(tc, test_frozen_v2_plugin_runs);
    tcase_add_test(tc, test_frozen_v2_options);
    tcase_add_test(tc, test_future_plugin_options);
    tcase_add_test(tc, test_abi1_plugin_refused);
    tcase_add_test(tc, test_nested_options_reach_the_plugin);
    tcase_add_test(tc, test_nested_options_errors);
    tcase_add_test(tc, test_nested_options_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("trust");
    tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_plugins_path_trusted);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    char why[PATH_MAX + 128];
    if (!test_dir_trusted(SB_BINARY_DIR, why, sizeof why)) {
        printf("test_abi: SKIP (every test): the loader cannot trust the build tree: %s. Build "
               "under a folder only root or you can write to.\n",
               why);
        return TEST_SKIP_EXIT;
    }
    SRunner *sr = srunner_create(abi_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
