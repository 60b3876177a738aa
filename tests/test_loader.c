/*
 * test_loader.c - the plugin loader against the test plugins of tests/plugins/ (one folder per
 * case under SB_BINARY_DIR/tests/plugins): every refused file gives exactly one line that names
 * the file and the reason, and the other files still load; a valid plugin is found by type under
 * its real path, loading a file twice is a no-op; ABI 2: a plugin built for ABI 1 is refused,
 * descriptors, options rows and values may grow but not shrink below ABI 2's, and the options
 * table a plugin built with another row size hands over is read into the host's layout; trust:
 * a file, its folder or any folder above it up to / that is writable by group or others, or
 * owned by someone other than root or this user, is refused (naming it, with its mode or owner);
 * and a loaded plugin runs its whole lifecycle against the shared fake host table (fake_host.c),
 * without any symbol from the daemon.
 *
 * The temporary folders live under the build tree, since a sticky /tmp is refused like any other
 * folder others can write to. When the build tree itself cannot be trusted, or the test does not
 * run as root (needed to give files to another owner), it says SKIP and exits 77.
 */
#define _DEFAULT_SOURCE /* mkdtemp, realpath, readlink */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "abi/trusted_dir.h"
#include "fake_host.h"
#include "loader.h"
#include "tmp_tree.h"

/* Room for a path in a temporary folder plus a file name. */
#define PATH_BUF (PATH_MAX + 64)
/* Room for a reason that names such a path. */
#define REASON_BUF (PATH_BUF + 256)

#define CASE_DIR(c) SB_BINARY_DIR "/tests/plugins/" c
#define GOOD_SO CASE_DIR("good") "/good_trigger.so"

/* The expected ABI lines below spell the numbers out. */
_Static_assert(SB_ABI_VERSION == 2, "update the ABI numbers in the expected messages");

/* The ABI-2 minimums, as the loader must work them out: the descriptor up to on_event, the whole
 * ABI-2 options row (up to help) and option value (up to count). */
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))
#define MIN_DESCRIPTOR END_OF(sb_plugin_descriptor, on_event)
#define MIN_OPTION_SPEC END_OF(sb_option_spec, help)
#define MIN_VALUE END_OF(sb_value, count)

/* The uid the foreign-owner tests give files to. */
#define NOBODY 65534

/* ---- helpers ---------------------------------------------------------------------------- */

#define MAX_REPORTS 8

/* The lines a loader_load_dir call reported. */
typedef struct reports {
    int n;
    char line[MAX_REPORTS][2 * REASON_BUF];
} reports;

static void collect(void *arg, const char *line)
{
    reports *r = arg;
    if (r->n < MAX_REPORTS)
        snprintf(r->line[r->n], sizeof r->line[0], "%s", line);
    r->n++;
}

/* One line, "PATH: ..." with the reason somewhere after the path. */
static void assert_line_names(const char *line, const char *path, const char *reason)
{
    size_t len = strlen(path);
    ck_assert_msg(strncmp(line, path, len) == 0 && strncmp(line + len, ": ", 2) == 0,
                  "\"%s\" does not start with \"%s: \"", line, path);
    ck_assert_msg(strstr(line + len, reason) != NULL, "\"%s\" does not say \"%s\"", line, reason);
    ck_assert_msg(strchr(line, '\n') == NULL, "\"%s\" is more than one line", line);
}

static void real_path_of(const char *path, char *out)
{
    ck_assert_msg(realpath(path, out) != NULL, "%s: %s", path, strerror(errno));
}

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
    ck_assert_int_eq(ferror(in), 0);
    fclose(in);
    ck_assert_int_eq(fclose(out), 0);
    ck_assert_int_eq(chmod(to, mode), 0);
}

/* Temporary folders: tmp_base lives as long as a test case (an unchecked fixture, so it is
 * removed even when a forked test fails); each test gets a fresh, empty tmp_dir inside it. Both
 * are real paths, so they match what the loader reports. */
static char tmp_base[PATH_MAX];
static char tmp_dir[PATH_MAX];

static void tmp_base_setup(void)
{
    char templ[PATH_MAX];
    snprintf(templ, sizeof templ, "%s/tests/sb-test-loader-XXXXXX", SB_BINARY_DIR);
    ck_assert_msg(mkdtemp(templ) != NULL, "mkdtemp %s: %s", templ, strerror(errno));
    real_path_of(templ, tmp_base);
}

static void tmp_base_teardown(void)
{
    tmp_tree_remove(tmp_base);
}

static void tmp_dir_setup(void)
{
    /* what a test before may have left changed (a forked test that failed cannot undo it) */
    ck_assert_int_eq(chmod(tmp_base, 0700), 0);
    if (geteuid() == 0)
        ck_assert_int_eq(chown(tmp_base, 0, 0), 0);
    char templ[PATH_BUF];
    snprintf(templ, sizeof templ, "%s/case-XXXXXX", tmp_base);
    ck_assert_msg(mkdtemp(templ) != NULL, "mkdtemp %s: %s", templ, strerror(errno));
    real_path_of(templ, tmp_dir);
    ck_assert_int_eq(chmod(tmp_dir, 0755), 0);
}

static void tmp_dir_teardown(void)
{
    tmp_tree_remove(tmp_dir);
}

/* tmp_dir/NAME, in buf[PATH_BUF] */
static const char *tmp_path(const char *name, char *buf)
{
    snprintf(buf, PATH_BUF, "%s/%s", tmp_dir, name);
    return buf;
}

/* ---- refused files ---------------------------------------------------------------------- */

typedef struct refusal {
    const char *dir;
    const char *file;
    const char *reason;
} refusal;

static const refusal refusals[] = {
    {CASE_DIR("nosym"), "nosym.so", "no sb_plugin_entry symbol (not a scalebus plugin?)"},
    {CASE_DIR("nulldesc"), "nulldesc.so", "sb_plugin_entry returned no descriptor"},
    {CASE_DIR("badabi"), "badabi.so", "built for plugin ABI 3, this scalebus speaks ABI 2"},
    {CASE_DIR("abi1"), "abi1.so", "built for plugin ABI 1, this scalebus speaks ABI 2"},
    {CASE_DIR("smalldesc"), "smalldesc.so", "descriptor .size "},
    {CASE_DIR("smallopts"), "smallopts.so", "descriptor .option_spec_size "},
    {CASE_DIR("smallvalue"), "smallvalue.so", "descriptor .value_size "},
    {CASE_DIR("hugevalue"), "hugevalue.so",
     "descriptor .value_size 100000 is not a plausible size (at most 4096)"},
    {CASE_DIR("badkind"), "badkind.so", "bad plugin kind 7"},
    {CASE_DIR("badtype"), "badtype.so", "bad type name 'Bad-Type!'"},
    {CASE_DIR("nocreate"), "nocreate.so", "plugin 'nocreate' has no create callback"},
    {CASE_DIR("nodestroy"), "nodestroy.so", "plugin 'nodestroy' has no destroy callback"},
    {CASE_DIR("noevent"), "noevent.so", "connector plugin 'noevent' has no on_event callback"},
    {CASE_DIR("badopt"), "badopt.so", "plugin 'badopt' option 'level' has bad type 99"},
    {CASE_DIR("undef"), "undef.so", "cannot load: "},
    {CASE_DIR("notelf"), "notaplugin.so", "cannot load: "},
};

/* Loading the folder refuses its one file with one line naming it; loading the file alone gives
 * a negative code and the same line. */
START_TEST(test_refused_with_one_line)
{
    const refusal *c = &refusals[_i];
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", c->dir, c->file);

    loader *l = loader_new();
    ck_assert_ptr_nonnull(l);
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, c->dir, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], path, c->reason);
    ck_assert_uint_eq(loader_count(l), 0);

    char err[PATH_MAX + 256] = "";
    ck_assert_int_lt(loader_load_file(l, path, err, sizeof err), 0);
    ck_assert_str_eq(err, r.line[0]);
    ck_assert_uint_eq(loader_count(l), 0);
    loader_free(l);
}
END_TEST

/* dlopen's own reason follows "cannot load": here the symbol the plugin wanted from the daemon. */
START_TEST(test_undefined_symbol_named)
{
    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_lt(loader_load_file(l, CASE_DIR("undef") "/undef.so", err, sizeof err), 0);
    assert_line_names(err, CASE_DIR("undef") "/undef.so", "cannot load: ");
    ck_assert_msg(strstr(err, "sb_daemon_internal_function") != NULL, "%s", err);
    loader_free(l);
}
END_TEST

START_TEST(test_report_is_optional)
{
    loader *l = loader_new();
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("badabi"), NULL, NULL), 1);
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("good"), NULL, NULL), 0);
    ck_assert_uint_eq(loader_count(l), 1);
    loader_free(l);
}
END_TEST

START_TEST(test_duplicate_type_refused)
{
    char first[PATH_MAX];
    real_path_of(CASE_DIR("dup") "/dup_a.so", first);
    char expected[PATH_MAX + 64];
    snprintf(expected, sizeof expected, "type 'dupe' is already loaded from %s", first);

    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("dup"), collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], CASE_DIR("dup") "/dup_b.so", expected);
    ck_assert_uint_eq(loader_count(l), 1);
    ck_assert_str_eq(loader_path_of(l, "dupe"), first);
    loader_free(l);
}
END_TEST

START_TEST(test_missing_file_and_folder)
{
    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    const char *file = CASE_DIR("good") "/no_such_plugin.so";
    ck_assert_int_eq(loader_load_file(l, file, err, sizeof err), -ENOENT);
    assert_line_names(err, file, strerror(ENOENT));

    reports r = {0};
    const char *dir = CASE_DIR("no_such_case");
    ck_assert_int_lt(loader_load_dir(l, dir, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], dir, strerror(ENOENT));

    /* a file where a folder should be */
    r.n = 0;
    ck_assert_int_lt(loader_load_dir(l, GOOD_SO, collect, &r), 0);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], GOOD_SO, strerror(ENOTDIR));
    ck_assert_uint_eq(loader_count(l), 0);
    loader_free(l);
}
END_TEST

/* ---- loaded plugins --------------------------------------------------------------------- */

START_TEST(test_good_plugin_loads)
{
    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("good"), collect, &r), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_uint_eq(loader_count(l), 1);

    const sb_plugin_descriptor *d = loader_find(l, "good_trigger");
    ck_assert_ptr_nonnull(d);
    ck_assert_ptr_eq(loader_at(l, 0), d);
    ck_assert_ptr_null(loader_at(l, 1));
    ck_assert_str_eq(d->type, "good_trigger");
    ck_assert_str_eq(loader_kind_name(d->kind), "trigger");
    ck_assert_uint_eq(d->abi_version, SB_ABI_VERSION);
    ck_assert_uint_eq(d->size, sizeof(sb_plugin_descriptor));

    /* one option of each type, in table order */
    static const char *const names[] = {"name",     "level",   "scale", "enabled",
                                        "interval", "command", "env"};
    size_t n = 0;
    for (const sb_option_spec *o = d->options; o->name; o++, n++) {
        ck_assert_uint_lt(n, 7);
        ck_assert_str_eq(o->name, names[n]);
        ck_assert_int_eq(o->type, SB_OPT_STRING + (int)n);
    }
    ck_assert_uint_eq(n, 7);

    char real[PATH_MAX];
    real_path_of(GOOD_SO, real);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), real);
    ck_assert_ptr_null(loader_find(l, "no_such_type"));
    ck_assert_ptr_null(loader_path_of(l, "no_such_type"));
    loader_free(l);
}
END_TEST

/* The path kept is the real one, whatever path the file was loaded by. */
START_TEST(test_path_of_is_real_path)
{
    const char *roundabout = CASE_DIR("nosym") "/../good/./good_trigger.so";
    char real[PATH_MAX];
    real_path_of(GOOD_SO, real);

    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, roundabout, err, sizeof err), 0);
    ck_assert_str_eq(err, "");
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), real);
    loader_free(l);
}
END_TEST

START_TEST(test_loading_twice_is_noop)
{
    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    const sb_plugin_descriptor *d = loader_find(l, "good_trigger");
    ck_assert_ptr_nonnull(d);

    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    ck_assert_int_eq(loader_load_file(l, CASE_DIR("good") "/./good_trigger.so", err, sizeof err),
                     0);
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("good"), collect, &r), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(loader_count(l), 1);
    ck_assert_ptr_eq(loader_find(l, "good_trigger"), d);
    loader_free(l);
}
END_TEST

/* A descriptor may grow at its end (a plugin built against a newer header) and may end after
 * on_event (the optional next_fire_times and reconfigure then read as NULL), but not earlier. */
START_TEST(test_descriptor_size)
{
    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("bigdesc"), collect, &r), 0);
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("olddesc"), collect, &r), 0);
    ck_assert_int_eq(r.n, 0);
    const sb_plugin_descriptor *big = loader_find(l, "bigdesc");
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_gt(big->size, sizeof(sb_plugin_descriptor));
    const sb_plugin_descriptor *old = loader_find(l, "olddesc");
    ck_assert_ptr_nonnull(old);
    ck_assert_uint_eq(old->size, MIN_DESCRIPTOR);
    ck_assert_uint_eq(old->size, offsetof(sb_plugin_descriptor, next_fire_times));
    /* Fields the older plugin does not have read as NULL, never past its struct. */
    ck_assert_ptr_null(old->next_fire_times);
    ck_assert_ptr_null(old->reconfigure);
    ck_assert_str_eq(old->options[0].name, "label");

    char expected[128];
    snprintf(expected, sizeof expected, "descriptor .size %u is too small for ABI 2 (at least %u)",
             (unsigned)offsetof(sb_plugin_descriptor, on_event), (unsigned)MIN_DESCRIPTOR);
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("smalldesc"), collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], CASE_DIR("smalldesc") "/smalldesc.so", expected);
    ck_assert_uint_eq(loader_count(l), 2);
    loader_free(l);
}
END_TEST

/* Options rows and option values below ABI 2's are refused, naming the field and both sizes. */
START_TEST(test_option_and_value_sizes)
{
    /* the "older" rows: no help field */
    size_t older_row = offsetof(sb_option_spec, help);
    ck_assert_uint_lt(older_row, MIN_OPTION_SPEC);
    char expected[128];
    snprintf(expected, sizeof expected,
             "descriptor .option_spec_size %u is too small for ABI 2 (at least %u)",
             (unsigned)older_row, (unsigned)MIN_OPTION_SPEC);
    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("smallopts"), collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], CASE_DIR("smallopts") "/smallopts.so", expected);

    snprintf(expected, sizeof expected,
             "descriptor .value_size %u is too small for ABI 2 (at least %u)",
             (unsigned)offsetof(sb_value, count), (unsigned)MIN_VALUE);
    r.n = 0;
    ck_assert_int_eq(loader_load_dir(l, CASE_DIR("smallvalue"), collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], CASE_DIR("smallvalue") "/smallvalue.so", expected);
    ck_assert_uint_eq(loader_count(l), 0);
    loader_free(l);
}
END_TEST

/* A plugin built against a newer header: its descriptor, options rows and option values are all
 * bigger than ours, the rows with extra fields set. What the host sees is its options table in
 * the host's layout, read row by row with the plugin's stride; the plugin's value_size is kept for
 * whoever builds the values handed to create(). */
START_TEST(test_options_in_host_layout)
{
    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, CASE_DIR("bigopts") "/bigopts.so", err, sizeof err), 0);
    const sb_plugin_descriptor *d = loader_find(l, "bigopts");
    ck_assert_ptr_nonnull(d);
    ck_assert_uint_gt(d->size, sizeof(sb_plugin_descriptor));
    ck_assert_uint_eq(d->option_spec_size, sizeof(sb_option_spec));
    /* the newer sb_value has a pointer and an int64_t more */
    ck_assert_uint_eq(d->value_size, sizeof(sb_value) + sizeof(char *) + sizeof(int64_t));

    static const struct {
        const char *name;
        sb_option_type type;
        const char *def;
        int required;
        const char *help;
    } want[] = {
        {"label", SB_OPT_STRING, "x", 0, "a label"},
        {"count", SB_OPT_INT, NULL, 1, "how many"},
        {"period", SB_OPT_DURATION, "10s", 0, "how often"},
        {"args", SB_OPT_LIST, NULL, 0, "an argv"},
    };
    size_t n = 0;
    for (const sb_option_spec *o = d->options; o->name; o++, n++) {
        ck_assert_uint_lt(n, 4);
        ck_assert_str_eq(o->name, want[n].name);
        ck_assert_int_eq(o->type, want[n].type);
        if (want[n].def)
            ck_assert_str_eq(o->default_value, want[n].def);
        else
            ck_assert_ptr_null(o->default_value);
        ck_assert_int_eq(o->required, want[n].required);
        ck_assert_str_eq(o->help, want[n].help);
    }
    ck_assert_uint_eq(n, 4);
    loader_free(l);
}
END_TEST

/* The copy is the loader's own: same rows as the plugin's table, another array. */
START_TEST(test_options_copied)
{
    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    const sb_plugin_descriptor *d = loader_find(l, "good_trigger");
    ck_assert_ptr_nonnull(d);

    void *h = dlopen(GOOD_SO, RTLD_NOW | RTLD_NOLOAD);
    ck_assert_msg(h != NULL, "%s", dlerror());
    void *sym = dlsym(h, SB_PLUGIN_ENTRY_SYMBOL);
    ck_assert_ptr_nonnull(sym);
    sb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const sb_plugin_descriptor *own = entry();
    ck_assert_ptr_ne(d, own);
    ck_assert_ptr_ne(d->options, own->options);
    ck_assert_uint_eq(d->value_size, own->value_size);
    size_t i = 0;
    for (; own->options[i].name; i++)
        ck_assert_int_eq(memcmp(&d->options[i], &own->options[i], sizeof(sb_option_spec)), 0);
    ck_assert_ptr_null(d->options[i].name);
    dlclose(h);
    loader_free(l);
}
END_TEST

START_TEST(test_builtin_dir)
{
    /* <exe dir>/plugins, else <exe dir>/../lib/scalebus/plugins, else the install folder */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    ck_assert_int_gt(n, 0);
    exe[n] = '\0';
    *strrchr(exe, '/') = '\0';
    char beside[PATH_MAX + 32], lib[PATH_MAX + 32];
    snprintf(beside, sizeof beside, "%s/plugins", exe);
    snprintf(lib, sizeof lib, "%s/../lib/scalebus/plugins", exe);
    struct stat st;

    char buf[PATH_MAX];
    ck_assert_ptr_eq(loader_builtin_dir(buf, sizeof buf), buf);
    if (stat(beside, &st) == 0 && S_ISDIR(st.st_mode))
        ck_assert_str_eq(buf, beside);
    else if (stat(lib, &st) == 0 && S_ISDIR(st.st_mode))
        ck_assert_str_eq(buf, lib);
    else
        ck_assert_msg(buf[0] == '/' && strlen(buf) > 17 &&
                          strcmp(buf + strlen(buf) - 17, "/scalebus/plugins") == 0,
                      "install folder \"%s\"", buf);

    char small[6];
    ck_assert_ptr_eq(loader_builtin_dir(small, sizeof small), small);
    ck_assert_uint_lt(strlen(small), sizeof small);
}
END_TEST

START_TEST(test_kind_names)
{
    ck_assert_str_eq(loader_kind_name(SB_KIND_TRIGGER), "trigger");
    ck_assert_str_eq(loader_kind_name(SB_KIND_CONNECTOR), "connector");
    ck_assert_str_eq(loader_kind_name(SB_KIND_SCALER), "scaler");
    ck_assert_str_eq(loader_kind_name((sb_kind)0), "unknown");
    ck_assert_str_eq(loader_kind_name((sb_kind)7), "unknown");
}
END_TEST

START_TEST(test_empty_loader)
{
    loader_free(NULL);
    loader *l = loader_new();
    ck_assert_uint_eq(loader_count(l), 0);
    ck_assert_ptr_null(loader_at(l, 0));
    ck_assert_ptr_null(loader_find(l, "good_trigger"));
    ck_assert_ptr_null(loader_path_of(l, "good_trigger"));
    loader_free(l);
}
END_TEST

/* ---- trust: files and folders in a temporary folder ---------------------------------------- */

/* loader_load_file(so) is refused with -EPERM and one line: "SO: not loaded: REASON". */
static void assert_file_refused(loader *l, const char *so, const char *reason)
{
    char err[2 * REASON_BUF] = "", expected[REASON_BUF + 16];
    snprintf(expected, sizeof expected, "not loaded: %s", reason);
    ck_assert_int_eq(loader_load_file(l, so, err, sizeof err), -EPERM);
    assert_line_names(err, so, expected);
}

/* loader_load_dir(dir) refuses the folder as a whole, with -EPERM and one line "DIR: not loaded:
 * REASON", and loader_check_dir(dir) says the same. */
static void assert_dir_refused(loader *l, const char *dir, const char *reason)
{
    char expected[REASON_BUF + 16];
    snprintf(expected, sizeof expected, "not loaded: %s", reason);
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, dir, collect, &r), -EPERM);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], dir, expected);
    char err[2 * REASON_BUF] = "";
    ck_assert_int_eq(loader_check_dir(dir, err, sizeof err), -EPERM);
    ck_assert_str_eq(err, r.line[0]);
}

/* Everything in dir loads, with no line. */
static void assert_dir_loads(loader *l, const char *dir, int nfiles)
{
    reports r = {0};
    size_t before = loader_count(l);
    ck_assert_int_eq(loader_load_dir(l, dir, collect, &r), 0);
    ck_assert_msg(r.n == 0, "unexpected: %s", r.line[0]);
    ck_assert_uint_eq(loader_count(l), before + (size_t)nfiles);
    char err[PATH_MAX + 512] = "";
    ck_assert_int_eq(loader_check_dir(dir, err, sizeof err), 0);
}

START_TEST(test_world_writable_file_refused)
{
    char so[PATH_BUF];
    tmp_path("good_trigger.so", so);
    copy_file(GOOD_SO, so, 0646);

    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], so, "not loaded: the file is writable by others (mode 0646)");
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, so, err, sizeof err), -EPERM);
    ck_assert_str_eq(err, r.line[0]);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(so, 0644), 0);
    assert_dir_loads(l, tmp_dir, 1);
    ck_assert_ptr_nonnull(loader_find(l, "good_trigger"));
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), so);
    loader_free(l);
}
END_TEST

/* A 0664 file in a 0755 folder: group write is as bad as world write. */
START_TEST(test_group_writable_file_refused)
{
    char so[PATH_BUF];
    copy_file(GOOD_SO, tmp_path("good_trigger.so", so), 0664);

    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], so, "not loaded: the file is writable by its group (mode 0664)");
    assert_file_refused(l, so, "the file is writable by its group (mode 0664)");
    ck_assert_int_eq(chmod(so, 0666), 0);
    assert_file_refused(l, so, "the file is writable by its group and others (mode 0666)");
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(so, 0644), 0);
    assert_dir_loads(l, tmp_dir, 1);
    loader_free(l);
}
END_TEST

/* A 0644 file in a 0775 folder: the folder is refused as a whole, the file names its folder. */
START_TEST(test_group_writable_folder_refused)
{
    char so[PATH_BUF], reason[REASON_BUF];
    copy_file(GOOD_SO, tmp_path("good_trigger.so", so), 0644);
    ck_assert_int_eq(chmod(tmp_dir, 0775), 0);

    loader *l = loader_new();
    assert_dir_refused(l, tmp_dir, "the folder is writable by its group (mode 0775)");
    snprintf(reason, sizeof reason, "its folder %s is writable by its group (mode 0775)", tmp_dir);
    assert_file_refused(l, so, reason);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(tmp_dir, 0755), 0);
    assert_dir_loads(l, tmp_dir, 1);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), so);
    loader_free(l);
}
END_TEST

START_TEST(test_world_writable_folder_refused)
{
    char so[PATH_BUF], reason[REASON_BUF];
    tmp_path("good_trigger.so", so);
    copy_file(GOOD_SO, so, 0644);
    ck_assert_int_eq(chmod(tmp_dir, 0757), 0);

    loader *l = loader_new();
    assert_dir_refused(l, tmp_dir, "the folder is writable by others (mode 0757)");
    snprintf(reason, sizeof reason, "its folder %s is writable by others (mode 0757)", tmp_dir);
    assert_file_refused(l, so, reason);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(tmp_dir, 0755), 0);
    assert_dir_loads(l, tmp_dir, 1);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), so);
    loader_free(l);
}
END_TEST

/* A file in a 0755 folder whose parent is 0777 (or 1777, sticky like /tmp): whoever can write to
 * the parent can swap the folder, so the file and the folder are both refused, naming the
 * parent. Any level above counts, not just the first. */
START_TEST(test_folder_above_refused)
{
    char so[PATH_BUF], reason[REASON_BUF];
    copy_file(GOOD_SO, tmp_path("good_trigger.so", so), 0644);

    loader *l = loader_new();
    ck_assert_int_eq(chmod(tmp_base, 0777), 0);
    snprintf(reason, sizeof reason,
             "the folder %s above it is writable by its group and others (mode 0777)", tmp_base);
    assert_file_refused(l, so, reason);
    assert_dir_refused(l, tmp_dir, reason);

    ck_assert_int_eq(chmod(tmp_base, 01777), 0);
    snprintf(reason, sizeof reason,
             "the folder %s above it is writable by its group and others (mode 1777)", tmp_base);
    assert_file_refused(l, so, reason);
    assert_dir_refused(l, tmp_dir, reason);
    ck_assert_int_eq(chmod(tmp_base, 0700), 0);

    /* three levels down, the group-writable one two levels up */
    char deep[PATH_BUF], deep_so[PATH_BUF + 32];
    ck_assert_int_eq(mkdir(tmp_path("a", deep), 0755), 0);
    ck_assert_int_eq(mkdir(tmp_path("a/b", deep), 0755), 0);
    snprintf(deep_so, sizeof deep_so, "%s/good_trigger.so", deep);
    copy_file(GOOD_SO, deep_so, 0644);
    char a[PATH_BUF];
    ck_assert_int_eq(chmod(tmp_path("a", a), 0775), 0);
    snprintf(reason, sizeof reason, "the folder %s above it is writable by its group (mode 0775)",
             a);
    assert_file_refused(l, deep_so, reason);
    assert_dir_refused(l, deep, reason);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(a, 0755), 0);
    assert_dir_loads(l, deep, 1);
    loader_free(l);
}
END_TEST

/* What counts is the real path: a symlink in a trusted folder to a file in an untrusted one is
 * refused, naming the real folder; a symlink to a group-writable file names the real file. */
START_TEST(test_real_path_checked)
{
    char safe[PATH_BUF], unsafe[PATH_BUF], p[PATH_BUF], reason[REASON_BUF];
    ck_assert_int_eq(mkdir(tmp_path("safe", safe), 0755), 0);
    ck_assert_int_eq(mkdir(tmp_path("unsafe", unsafe), 0755), 0);
    ck_assert_int_eq(chmod(unsafe, 0777), 0);
    copy_file(GOOD_SO, tmp_path("unsafe/good_trigger.so", p), 0644);
    ck_assert_int_eq(symlink("../unsafe/good_trigger.so", tmp_path("safe/link.so", p)), 0);

    loader *l = loader_new();
    snprintf(reason, sizeof reason,
             "not loaded: its folder %s is writable by its group and others (mode 0777)", unsafe);
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, safe, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], tmp_path("safe/link.so", p), reason);

    /* a folder reached through a symlink: the real folder is named */
    char dirlink[PATH_BUF];
    ck_assert_int_eq(symlink("unsafe", tmp_path("dirlink", dirlink)), 0);
    snprintf(reason, sizeof reason, "the folder %s is writable by its group and others (mode 0777)",
             unsafe);
    assert_dir_refused(l, dirlink, reason);

    ck_assert_int_eq(chmod(unsafe, 0755), 0);
    char real_so[PATH_BUF];
    tmp_path("unsafe/good_trigger.so", real_so);
    ck_assert_int_eq(chmod(real_so, 0664), 0);
    snprintf(reason, sizeof reason, "the file %s is writable by its group (mode 0664)", real_so);
    assert_file_refused(l, tmp_path("safe/link.so", p), reason);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chmod(real_so, 0644), 0);
    assert_dir_loads(l, safe, 1);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), real_so);
    loader_free(l);
}
END_TEST

/* Files and folders owned by someone other than root or this user are refused, the file itself
 * and every folder above it (needs root to set up: main() says SKIP otherwise). */
START_TEST(test_foreign_owner_refused)
{
    if (geteuid() != 0)
        return;
    char so[PATH_BUF], reason[REASON_BUF];
    tmp_path("good_trigger.so", so);
    copy_file(GOOD_SO, so, 0644);
    ck_assert_int_eq(chown(so, NOBODY, NOBODY), 0);

    loader *l = loader_new();
    assert_file_refused(l, so, "the file is owned by uid 65534, not root (mode 0644)");
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    assert_line_names(r.line[0], so, "not loaded: the file is owned by uid 65534, not root");

    /* the file is fine, its folder is not */
    ck_assert_int_eq(chown(so, 0, 0), 0);
    ck_assert_int_eq(chown(tmp_dir, NOBODY, NOBODY), 0);
    snprintf(reason, sizeof reason, "its folder %s is owned by uid 65534, not root (mode 0755)",
             tmp_dir);
    assert_file_refused(l, so, reason);
    assert_dir_refused(l, tmp_dir, "the folder is owned by uid 65534, not root (mode 0755)");

    /* the folder is fine, the one above it is not */
    ck_assert_int_eq(chown(tmp_dir, 0, 0), 0);
    ck_assert_int_eq(chown(tmp_base, NOBODY, NOBODY), 0);
    snprintf(reason, sizeof reason,
             "the folder %s above it is owned by uid 65534, not root (mode 0700)", tmp_base);
    assert_file_refused(l, so, reason);
    assert_dir_refused(l, tmp_dir, reason);
    ck_assert_uint_eq(loader_count(l), 0);

    ck_assert_int_eq(chown(tmp_base, 0, 0), 0);
    assert_dir_loads(l, tmp_dir, 1);
    loader_free(l);
}
END_TEST

/* Trusted layouts load: 0644 or 0444 or 0755 files, 0755 or 0700 folders. */
START_TEST(test_good_layouts_load)
{
    static const struct {
        mode_t file, dir;
    } layouts[] = {{0644, 0755}, {0444, 0755}, {0755, 0755}, {0600, 0700}, {0644, 0555}};
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        char so[PATH_BUF];
        ck_assert_int_eq(chmod(tmp_dir, 0755), 0);
        copy_file(GOOD_SO, tmp_path("good_trigger.so", so), layouts[i].file);
        ck_assert_int_eq(chmod(tmp_dir, layouts[i].dir), 0);
        loader *l = loader_new();
        assert_dir_loads(l, tmp_dir, 1);
        ck_assert_str_eq(loader_path_of(l, "good_trigger"), so);
        loader_free(l);
        ck_assert_int_eq(chmod(tmp_dir, 0755), 0);
        ck_assert_int_eq(unlink(so), 0);
    }
}
END_TEST

/* loader_check_dir, the check `scalebus plugins --plugin-dir` uses for its exit code. */
START_TEST(test_check_dir)
{
    char err[PATH_MAX + 512] = "";
    ck_assert_int_eq(loader_check_dir(tmp_dir, err, sizeof err), 0);
    ck_assert_str_eq(err, "");

    char missing[PATH_BUF];
    ck_assert_int_eq(loader_check_dir(tmp_path("missing", missing), err, sizeof err), -ENOENT);
    assert_line_names(err, missing, strerror(ENOENT));

    char file[PATH_BUF];
    copy_file(GOOD_SO, tmp_path("good_trigger.so", file), 0644);
    ck_assert_int_eq(loader_check_dir(file, err, sizeof err), -ENOTDIR);
    assert_line_names(err, file, strerror(ENOTDIR));

    ck_assert_int_eq(chmod(tmp_dir, 0775), 0);
    ck_assert_int_eq(loader_check_dir(tmp_dir, err, sizeof err), -EPERM);
    assert_line_names(err, tmp_dir, "not loaded: the folder is writable by its group (mode 0775)");
}
END_TEST

/* One bad file does not stop the others; refusals come in name order, one line each. */
START_TEST(test_mixed_folder)
{
    char p[PATH_BUF];
    copy_file(GOOD_SO, tmp_path("good_trigger.so", p), 0644);
    copy_file(CASE_DIR("badabi") "/badabi.so", tmp_path("c_badabi.so", p), 0644);
    copy_file(CASE_DIR("nosym") "/nosym.so", tmp_path("a_nosym.so", p), 0644);
    copy_file(CASE_DIR("notelf") "/notaplugin.so", tmp_path("z_notaplugin.so", p), 0644);

    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 3);
    ck_assert_int_eq(r.n, 3);
    assert_line_names(r.line[0], tmp_path("a_nosym.so", p), "no sb_plugin_entry symbol");
    assert_line_names(r.line[1], tmp_path("c_badabi.so", p), "built for plugin ABI 3");
    assert_line_names(r.line[2], tmp_path("z_notaplugin.so", p), "cannot load: ");
    ck_assert_uint_eq(loader_count(l), 1);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), tmp_path("good_trigger.so", p));
    loader_free(l);
}
END_TEST

/* Only visible *.so files are plugins: the rest of the folder is never opened. */
START_TEST(test_other_names_skipped)
{
    char p[PATH_BUF];
    const char *junk = CASE_DIR("notelf") "/notaplugin.so";
    copy_file(junk, tmp_path(".hidden.so", p), 0644);
    copy_file(junk, tmp_path(".so", p), 0644);
    copy_file(junk, tmp_path("README.txt", p), 0644);
    copy_file(junk, tmp_path("plugin.so.1", p), 0644);
    copy_file(junk, tmp_path("plugin.so~", p), 0644);

    loader *l = loader_new();
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 0);
    ck_assert_int_eq(r.n, 0);
    ck_assert_uint_eq(loader_count(l), 0);
    loader_free(l);
}
END_TEST

/* A second file of a loaded type is refused with the first one's path; a symlink to a loaded file
 * is the same file. */
START_TEST(test_copy_refused_symlink_skipped)
{
    char real[PATH_MAX], p[PATH_BUF];
    real_path_of(GOOD_SO, real);
    copy_file(GOOD_SO, tmp_path("copy.so", p), 0644);
    ck_assert_int_eq(symlink(real, tmp_path("link.so", p)), 0);

    loader *l = loader_new();
    char err[PATH_MAX + 256] = "";
    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    reports r = {0};
    ck_assert_int_eq(loader_load_dir(l, tmp_dir, collect, &r), 1);
    ck_assert_int_eq(r.n, 1);
    char expected[PATH_MAX + 64];
    snprintf(expected, sizeof expected, "type 'good_trigger' is already loaded from %s", real);
    assert_line_names(r.line[0], tmp_path("copy.so", p), expected);
    ck_assert_uint_eq(loader_count(l), 1);
    ck_assert_str_eq(loader_path_of(l, "good_trigger"), real);
    loader_free(l);
}
END_TEST

/* ---- a loaded plugin against the shared fake host table (fake_host.c) ----------------------- */

static const char *const command_words[] = {"/bin/true", "--quiet"};
static const char *const env_keys[] = {"LANG"};
static const char *const env_values[] = {"C"};

/* Parsed values for good_trigger's options table, as the host would build them. */
static void good_values(sb_value v[7])
{
    v[0] = (sb_value){.is_set = 1, .str = "alpha"};
    v[1] = (sb_value){.is_set = 1, .str = "4", .integer = 4, .number = 4.0};
    v[2] = (sb_value){.is_set = 1, .str = "2.5", .number = 2.5};
    v[3] = (sb_value){.is_set = 1, .str = "yes", .integer = 1};
    v[4] = (sb_value){.is_set = 1, .str = "250ms", .duration_ms = 250};
    v[5] = (sb_value){.is_set = 1, .items = command_words, .count = 2};
    v[6] = (sb_value){.is_set = 1, .items = env_keys, .values = env_values, .count = 1};
}

START_TEST(test_plugin_runs_on_fake_host)
{
    loader *l = loader_new();
    char err[256] = "";
    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    const sb_plugin_descriptor *d = loader_find(l, "good_trigger");
    ck_assert_ptr_nonnull(d);

    fake_host *fh = fake_host_new("t1");
    sb_value values[7];
    good_values(values);
    void *state = NULL;
    ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, values, &state, err, sizeof err),
                     0);
    ck_assert_ptr_nonnull(state);
    ck_assert_str_eq(err, "");
    ck_assert_uint_eq(fh->nlog, 1);
    ck_assert_str_eq(fake_host_last_log(fh)->text,
                     "good_trigger t1 ready: reading 10 every 250ms, enabled, "
                     "2 command words, 1 env entries");
    ck_assert_uint_eq(fh->npub, 0);

    /* start publishes one reading at once and arms a repeating timer */
    ck_assert_int_eq(d->start(state), 0);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(fake_host_last_publish(fh)->topic, SB_TOPIC_READING);
    ck_assert_double_eq(fake_host_last_publish(fh)->value, 10.0);
    ck_assert_str_eq(fake_published_label(fake_host_last_publish(fh), "name"), "alpha");
    ck_assert_int_eq(fh->timers_live, 1);
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 250);
    ck_assert_uint_eq(fh->last_timer->repeat_ms, 250);

    fh->last_timer->cb(fh->last_timer->arg);
    ck_assert_uint_eq(fh->npub, 2);
    sb_event run = {.source_id = "c1", .topic = SB_TOPIC_RUN, .value = 1};
    d->on_event(state, &run);
    ck_assert_uint_eq(fh->npub, 3);
    sb_event other = {.source_id = "c1", .topic = SB_TOPIC_DESIRED, .value = 1};
    d->on_event(state, &other);
    ck_assert_uint_eq(fh->npub, 3);

    ck_assert_int_eq(d->stop(state), 0);
    ck_assert_int_eq(fh->timers_live, 0);
    d->destroy(state);
    fake_host_free(fh);
    loader_free(l);
}
END_TEST

START_TEST(test_plugin_create_error_on_fake_host)
{
    loader *l = loader_new();
    char err[256] = "";
    ck_assert_int_eq(loader_load_file(l, GOOD_SO, err, sizeof err), 0);
    const sb_plugin_descriptor *d = loader_find(l, "good_trigger");
    ck_assert_ptr_nonnull(d);

    fake_host *fh = fake_host_new("t2");
    sb_value values[7];
    good_values(values);
    values[0] = (sb_value){.is_set = 0};
    void *state = NULL;
    ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, values, &state, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "option 'name' must be set to a non-empty string");
    ck_assert_ptr_null(state);
    ck_assert_uint_eq(fh->nlog, 0);

    /* disabled: starts and stops without a timer or a reading */
    good_values(values);
    values[3] = (sb_value){.is_set = 1, .str = "off", .integer = 0};
    ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, values, &state, err, sizeof err),
                     0);
    ck_assert_int_eq(d->start(state), 0);
    ck_assert_int_eq(d->stop(state), 0);
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_int_eq(fh->timers_live, 0);
    d->destroy(state);
    fake_host_free(fh);
    loader_free(l);
}
END_TEST

static Suite *loader_suite(void)
{
    Suite *s = suite_create("loader");

    TCase *tc = tcase_create("refused");
    tcase_add_loop_test(tc, test_refused_with_one_line, 0,
                        (int)(sizeof refusals / sizeof refusals[0]));
    tcase_add_test(tc, test_undefined_symbol_named);
    tcase_add_test(tc, test_report_is_optional);
    tcase_add_test(tc, test_duplicate_type_refused);
    tcase_add_test(tc, test_missing_file_and_folder);
    suite_add_tcase(s, tc);

    tc = tcase_create("loaded");
    tcase_add_test(tc, test_good_plugin_loads);
    tcase_add_test(tc, test_path_of_is_real_path);
    tcase_add_test(tc, test_loading_twice_is_noop);
    tcase_add_test(tc, test_descriptor_size);
    tcase_add_test(tc, test_option_and_value_sizes);
    tcase_add_test(tc, test_options_in_host_layout);
    tcase_add_test(tc, test_options_copied);
    tcase_add_test(tc, test_builtin_dir);
    tcase_add_test(tc, test_kind_names);
    tcase_add_test(tc, test_empty_loader);
    suite_add_tcase(s, tc);

    tc = tcase_create("folders");
    tcase_add_unchecked_fixture(tc, tmp_base_setup, tmp_base_teardown);
    tcase_add_checked_fixture(tc, tmp_dir_setup, tmp_dir_teardown);
    tcase_add_test(tc, test_world_writable_file_refused);
    tcase_add_test(tc, test_group_writable_file_refused);
    tcase_add_test(tc, test_group_writable_folder_refused);
    tcase_add_test(tc, test_world_writable_folder_refused);
    tcase_add_test(tc, test_folder_above_refused);
    tcase_add_test(tc, test_real_path_checked);
    tcase_add_test(tc, test_foreign_owner_refused);
    tcase_add_test(tc, test_good_layouts_load);
    tcase_add_test(tc, test_check_dir);
    tcase_add_test(tc, test_mixed_folder);
    tcase_add_test(tc, test_other_names_skipped);
    tcase_add_test(tc, test_copy_refused_symlink_skipped);
    suite_add_tcase(s, tc);

    tc = tcase_create("lifecycle");
    tcase_add_test(tc, test_plugin_runs_on_fake_host);
    tcase_add_test(tc, test_plugin_create_error_on_fake_host);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (access(GOOD_SO, R_OK) != 0) {
        fprintf(stderr, "test_loader: %s: %s (build the sb_test_plugins target first)\n", GOOD_SO,
                strerror(errno));
        return EXIT_FAILURE;
    }
    /* Every test loads plugins from the build tree: when the loader cannot trust it, none of them
     * can say anything. */
    char why[PATH_MAX + 128];
    if (!test_dir_trusted(SB_BINARY_DIR, why, sizeof why)) {
        printf("test_loader: SKIP (every test): the loader cannot trust the build tree: %s. "
               "Build under a folder only root or you can write to.\n",
               why);
        return TEST_SKIP_EXIT;
    }
    SRunner *sr = srunner_create(loader_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    if (failed)
        return EXIT_FAILURE;
    if (geteuid() != 0) {
        printf("test_loader: SKIP test_foreign_owner_refused: it needs root to give files to "
               "another owner; every other test passed.\n");
        return TEST_SKIP_EXIT;
    }
    return EXIT_SUCCESS;
}
