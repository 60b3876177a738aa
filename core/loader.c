/*
 * loader.c - plugin discovery and loading (see loader.h).
 *
 * Checks, in order, each giving one line "PATH: reason":
 * - trust, as OpenSSH's StrictModes does it: a plugin runs with the daemon's rights, so its real
 *   path and every folder above it up to / must belong to root or to the user the daemon runs as,
 *   and be writable by no one else (no group or other write bit, sticky or not: /tmp is refused).
 *   This is checked before dlopen runs any of the file's code;
 * - dlopen fails, the entry symbol is missing, or it returns no descriptor;
 * - the descriptor: built for another ABI; .size, .option_spec_size or .value_size below the
 *   ABI-2 minimum (or too large to be a size at all); a bad kind or type name; a missing
 *   callback; an option of an unknown type;
 * - its type is already loaded from another file.
 *
 * What the rest of the daemon sees of a loaded plugin is a host-layout copy of its descriptor:
 * host-sized and zero past what the plugin's struct has, with the options table copied row by row
 * from the plugin's stride (option_spec_size) into an array of the host's sb_option_spec. So
 * config.c and main.c index d->options[i] with the host's sizeof whatever header the plugin was
 * built with; only the option values handed to create() need the plugin's own stride (value_size).
 */
#define _DEFAULT_SOURCE
#include "loader.h"
#include "option_more.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SB_PLUGIN_INSTALL_DIR
#define SB_PLUGIN_INSTALL_DIR "/usr/local/lib/scalebus/plugins"
#endif

/* END_OF(type, field): the size of a struct of that type that ends with field. */
#define END_OF(type, field) (offsetof(type, field) + sizeof(((type *)0)->field))

/* The smallest structs an ABI-2 plugin may hand over: the descriptor up to its last required
 * field (on_event; next_fire_times and reconfigure are optional and read as NULL when a plugin's
 * struct ends before them), and the whole ABI-2 options row and option value. */
#define MIN_DESCRIPTOR_SIZE END_OF(sb_plugin_descriptor, on_event)
#define MIN_OPTION_SPEC_SIZE END_OF(sb_option_spec, help)
#define MIN_VALUE_SIZE END_OF(sb_value, count)
/* More than any header will declare for these structs: a garbage size, not a newer plugin. */
#define MAX_STRUCT_SIZE 4096u

typedef struct loaded_plugin {
    char *path; /* real path */
    void *handle;
    sb_plugin_descriptor *desc; /* the host-layout copy (see the top of this file) */
    sb_option_spec *options;    /* desc->options: the host-layout copy of the table, or NULL */
    sb_option_more *more;       /* desc->options_more: its host-layout copy, or NULL */
} loaded_plugin;

struct loader {
    loaded_plugin *items;
    size_t count, cap;
};

/* The host-layout copy of options_more, and the nested tables its rows own. */
static void free_more(sb_option_more *m)
{
    for (sb_option_more *r = m; r && r->path; r++)
        free((void *)(uintptr_t)r->fields);
    free(m);
}

loader *loader_new(void)
{
    return calloc(1, sizeof(loader));
}

void loader_free(loader *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        /* Under ASan keep the objects mapped so leak reports can still name their frames. */
#if !defined(__SANITIZE_ADDRESS__)
        dlclose(l->items[i].handle);
#endif
        free(l->items[i].path);
        free(l->items[i].desc);
        free(l->items[i].options);
        free_more(l->items[i].more);
    }
    free(l->items);
    free(l);
}

const char *loader_kind_name(sb_kind kind)
{
    switch (kind) {
    case SB_KIND_TRIGGER:
        return "trigger";
    case SB_KIND_CONNECTOR:
        return "connector";
    case SB_KIND_SCALER:
        return "scaler";
    }
    return "unknown";
}

static int valid_type_name(const char *t)
{
    if (!t || !*t || strlen(t) > 64)
        return 0;
    for (const char *p = t; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return 0;
    return 1;
}

/* ---- trust: the file and every folder above it ------------------------------------------- */

/* Why the file or folder at p must not be trusted, into why: "is writable by its group (mode
 * 0775)", "is owned by uid 65534, not root (mode 0644)". Returns 0 when it may be trusted,
 * -EPERM when not, or -errno (with "cannot be examined: ...") when stat fails. */
static int untrusted(const char *p, char *why, size_t len)
{
    struct stat st;
    if (stat(p, &st) != 0) {
        int e = errno;
        snprintf(why, len, "cannot be examined: %s", strerror(e));
        return -e;
    }
    unsigned mode = (unsigned)(st.st_mode & 07777);
    uid_t me = geteuid();
    if (st.st_uid != 0 && st.st_uid != me) {
        if (me == 0)
            snprintf(why, len, "is owned by uid %u, not root (mode %04o)", (unsigned)st.st_uid,
                     mode);
        else
            snprintf(why, len,
                     "is owned by uid %u, neither root nor uid %u that scalebus runs as "
                     "(mode %04o)",
                     (unsigned)st.st_uid, (unsigned)me, mode);
        return -EPERM;
    }
    if (st.st_mode & (S_IWGRP | S_IWOTH)) {
        const char *who = !(st.st_mode & S_IWOTH)   ? "its group"
                          : !(st.st_mode & S_IWGRP) ? "others"
                                                    : "its group and others";
        snprintf(why, len, "is writable by %s (mode %04o)", who, mode);
        return -EPERM;
    }
    return 0;
}

/* Checks `real` (an absolute real path, the file or folder the caller named as `given`) and then
 * every folder above it up to /. On a refusal writes into why which one and why: "the file is
 * writable by its group (mode 0664)", "its folder /srv/p is ...", "the folder /srv above it is
 * ..." (the file or folder itself is named by its real path when the caller named it otherwise).
 * Returns 0 or untrusted()'s code. */
static int untrusted_chain(const char *given, const char *real, int is_file, char *why, size_t len)
{
    char reason[192];
    int rc = untrusted(real, reason, sizeof reason);
    if (rc) {
        const char *what = is_file ? "the file" : "the folder";
        if (strcmp(given, real) == 0)
            snprintf(why, len, "%s %s", what, reason);
        else
            snprintf(why, len, "%s %s %s", what, real, reason);
        return rc;
    }
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s", real);
    for (int up = 1; strcmp(p, "/") != 0; up++) {
        char *slash = strrchr(p, '/');
        if (!slash)
            break;                        /* not absolute: realpath never gives that */
        slash[slash == p ? 1 : 0] = '\0'; /* the folder above; "/" above "/srv" */
        if ((rc = untrusted(p, reason, sizeof reason)) != 0) {
            if (is_file && up == 1)
                snprintf(why, len, "its folder %s %s", p, reason);
            else
                snprintf(why, len, "the folder %s above it %s", p, reason);
            return rc;
        }
    }
    return 0;
}

int loader_check_dir(const char *dir, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", dir, strerror(e));
        return -e;
    }
    struct stat st;
    int e = stat(real, &st) != 0 ? errno : !S_ISDIR(st.st_mode) ? ENOTDIR : 0;
    if (e) {
        snprintf(err, errlen, "%s: %s", dir, strerror(e));
        return -e;
    }
    char why[PATH_MAX + 256];
    int rc = untrusted_chain(dir, real, 0, why, sizeof why);
    if (rc)
        snprintf(err, errlen, "%s: not loaded: %s", dir, why);
    return rc;
}

/* ---- the descriptor --------------------------------------------------------------------- */

/* One of the descriptor's size fields against the ABI-2 minimum and the plausible maximum. */
static int check_size(const char *path, const char *field, uint32_t size, size_t min, char *err,
                      size_t errlen)
{
    if (size < min) {
        snprintf(err, errlen, "%s: descriptor .%s %u is too small for ABI %d (at least %zu)", path,
                 field, size, SB_ABI_VERSION, min);
        return -EPROTO;
    }
    if (size > MAX_STRUCT_SIZE) {
        snprintf(err, errlen, "%s: descriptor .%s %u is not a plausible size (at most %u)", path,
                 field, size, MAX_STRUCT_SIZE);
        return -EPROTO;
    }
    return 0;
}

/* What must hold before anything past the descriptor's four size fields is read. */
static int check_header(const sb_plugin_descriptor *d, const char *path, char *err, size_t errlen)
{
    if (!d) {
        snprintf(err, errlen, "%s: sb_plugin_entry returned no descriptor", path);
        return -EINVAL;
    }
    if (d->abi_version != SB_ABI_VERSION) {
        snprintf(err, errlen, "%s: built for plugin ABI %u, this scalebus speaks ABI %u", path,
                 d->abi_version, SB_ABI_VERSION);
        return -EPROTO;
    }
    int rc = check_size(path, "size", d->size, MIN_DESCRIPTOR_SIZE, err, errlen);
    if (!rc)
        rc = check_size(path, "option_spec_size", d->option_spec_size, MIN_OPTION_SPEC_SIZE, err,
                        errlen);
    if (!rc)
        rc = check_size(path, "value_size", d->value_size, MIN_VALUE_SIZE, err, errlen);
    return rc;
}

/* The plugin's options table (rows of option_spec_size bytes) as a host-layout array: each row
 * copied up to the smaller of the two sizes, the rest zero, ending in a zero row. Returns 0 with
 * *out NULL when the plugin has no table, or -ENOMEM. */
static int copy_options(const sb_option_spec *table, size_t stride, sb_option_spec **out)
{
    *out = NULL;
    if (!table)
        return 0;
    const unsigned char *rows = (const unsigned char *)table;
    size_t n = 0;
    for (;; n++) {
        const char *name; /* the first field of every layout; memcpy: the stride may be odd */
        memcpy(&name, rows + n * stride + offsetof(sb_option_spec, name), sizeof name);
        if (!name)
            break;
    }
    sb_option_spec *o = calloc(n + 1, sizeof *o);
    if (!o)
        return -ENOMEM;
    size_t take = stride < sizeof *o ? stride : sizeof *o;
    for (size_t i = 0; i < n; i++)
        memcpy(&o[i], rows + i * stride, take);
    *out = o;
    return 0;
}

/* options_more (rows of option_more_size bytes) as a host-layout array, each row's nested table
 * copied like the top-level one. Returns 0 (*out NULL when there is none), -EPROTO with err
 * filled for an implausible row size, or -ENOMEM. */
static int copy_more(const sb_plugin_descriptor *d, const char *path, sb_option_more **out,
                     char *err, size_t errlen)
{
    *out = NULL;
    if (d->size < END_OF(sb_plugin_descriptor, option_more_size) || !d->options_more)
        return 0;
    size_t stride = d->option_more_size;
    if (stride < END_OF(sb_option_more, flags) || stride > MAX_STRUCT_SIZE) {
        snprintf(err, errlen, "%s: descriptor .option_more_size %zu is not plausible (at least %zu)",
                 path, stride, (size_t)END_OF(sb_option_more, flags));
        return -EPROTO;
    }
    const unsigned char *rows = (const unsigned char *)d->options_more;
    size_t n = 0;
    for (;; n++) {
        const char *p;
        memcpy(&p, rows + n * stride + offsetof(sb_option_more, path), sizeof p);
        if (!p)
            break;
    }
    sb_option_more *m = calloc(n + 1, sizeof *m);
    if (!m)
        return -ENOMEM;
    size_t take = stride < sizeof *m ? stride : sizeof *m;
    for (size_t i = 0; i < n; i++) {
        memcpy(&m[i], rows + i * stride, take);
        sb_option_spec *nested = NULL;
        if (copy_options(m[i].fields, d->option_spec_size, &nested) != 0) {
            m[i].fields = NULL;
            free_more(m);
            return -ENOMEM;
        }
        m[i].fields = nested;
    }
    *out = m;
    return 0;
}

/* The row of the table named name, or NULL. */
static const sb_option_spec *row_named(const sb_option_spec *table, const char *name, size_t len)
{
    for (const sb_option_spec *o = table; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* Types in a table; each OBJECTS row has its nested table in options_more (path prefix.name),
 * checked the same way, at most SB_MAX_OPTION_DEPTH levels deep. */
static int check_option_rows(const sb_plugin_descriptor *d, const sb_option_spec *table,
                             const char *prefix, int depth, const char *path, char *err,
                             size_t errlen)
{
    for (const sb_option_spec *o = table; o && o->name; o++) {
        if (o->type < SB_OPT_STRING || o->type > SB_OPT_OBJECTS) {
            snprintf(err, errlen, "%s: plugin '%s' option '%s' has bad type %d", path, d->type,
                     o->name, (int)o->type);
            return -EINVAL;
        }
        if (o->type != SB_OPT_OBJECTS)
            continue;
        char full[256];
        option_more_path(full, sizeof full, prefix, o->name);
        const sb_option_spec *fields = option_more_fields(d, full);
        if (!fields || !fields->name) {
            snprintf(err, errlen, "%s: plugin '%s' option '%s' is a map of objects without a "
                     "table of their options in options_more", path, d->type, full);
            return -EINVAL;
        }
        if (d->value_size < END_OF(sb_value, objects)) {
            snprintf(err, errlen, "%s: plugin '%s' option '%s' is a map of objects, but its "
                     "sb_value (%u bytes) has no objects field", path, d->type, full,
                     d->value_size);
            return -EINVAL;
        }
        if (depth >= SB_MAX_OPTION_DEPTH) {
            snprintf(err, errlen, "%s: plugin '%s' option '%s': options nested deeper than %d "
                     "levels", path, d->type, full, SB_MAX_OPTION_DEPTH);
            return -EINVAL;
        }
        int rc = check_option_rows(d, fields, full, depth + 1, path, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every options_more row names an option that exists; nested tables only for OBJECTS. */
static int check_more_paths(const sb_plugin_descriptor *d, const char *path, char *err,
                            size_t errlen)
{
    for (const sb_option_more *m = d->options_more; m && m->path; m++) {
        const sb_option_spec *table = d->options, *row = NULL;
        char prefix[256] = "";
        for (const char *seg = m->path;;) {
            size_t len = strcspn(seg, ".");
            row = row_named(table, seg, len);
            if (!row || !seg[len])
                break;
            if (row->type != SB_OPT_OBJECTS) {
                row = NULL;
                break;
            }
            char next[256];
            snprintf(next, sizeof next, "%.*s", (int)len, seg);
            char joined[256];
            option_more_path(joined, sizeof joined, prefix, next);
            snprintf(prefix, sizeof prefix, "%s", joined);
            table = option_more_fields(d, prefix);
            seg += len + 1;
        }
        if (!row) {
            snprintf(err, errlen, "%s: plugin '%s' options_more names '%s', which is not one of "
                     "its options", path, d->type, m->path);
            return -EINVAL;
        }
        if (m->fields && row->type != SB_OPT_OBJECTS) {
            snprintf(err, errlen, "%s: plugin '%s' options_more gives '%s' a nested table, but "
                     "it is not a map of objects", path, d->type, m->path);
            return -EINVAL;
        }
    }
    return 0;
}

/* The rest of the checks, on the host-layout copy. */
static int check_fields(const sb_plugin_descriptor *d, const char *path, char *err, size_t errlen)
{
    if (d->kind != SB_KIND_TRIGGER && d->kind != SB_KIND_CONNECTOR && d->kind != SB_KIND_SCALER) {
        snprintf(err, errlen, "%s: bad plugin kind %d (expected trigger, connector or scaler)",
                 path, (int)d->kind);
        return -EINVAL;
    }
    if (!valid_type_name(d->type)) {
        snprintf(err, errlen, "%s: bad type name '%s' (expected [a-z0-9_]+)", path,
                 d->type ? d->type : "(null)");
        return -EINVAL;
    }
    if (!d->create || !d->destroy) {
        snprintf(err, errlen, "%s: plugin '%s' has no %s callback", path, d->type,
                 d->create ? "destroy" : "create");
        return -EINVAL;
    }
    if (d->kind != SB_KIND_TRIGGER && !d->on_event) {
        snprintf(err, errlen, "%s: %s plugin '%s' has no on_event callback", path,
                 loader_kind_name(d->kind), d->type);
        return -EINVAL;
    }
    int rc = check_option_rows(d, d->options, "", 1, path, err, errlen);
    return rc ? rc : check_more_paths(d, path, err, errlen);
}

/* Checks the plugin's descriptor and builds its host-layout copy into *lp (desc, options). */
static int adopt_descriptor(const sb_plugin_descriptor *d, const char *path, loaded_plugin *lp,
                            char *err, size_t errlen)
{
    int rc = check_header(d, path, err, errlen);
    if (rc)
        return rc;
    sb_plugin_descriptor *copy = calloc(1, sizeof *copy);
    sb_option_spec *options = NULL;
    sb_option_more *more = NULL;
    rc = copy ? copy_options(d->options, d->option_spec_size, &options) : -ENOMEM;
    if (rc == 0)
        rc = copy_more(d, path, &more, err, errlen);
    if (rc != 0) {
        free(copy);
        free(options);
        if (rc == -ENOMEM)
            snprintf(err, errlen, "%s: out of memory", path);
        return rc;
    }
    memcpy(copy, d, d->size < sizeof *copy ? d->size : sizeof *copy);
    copy->options = options;
    copy->option_spec_size = sizeof(sb_option_spec); /* the rows of the copied table */
    copy->options_more = more;
    copy->option_more_size = sizeof(sb_option_more);
    /* copy->value_size stays the plugin's: the stride of the values create() takes */
    if ((rc = check_fields(copy, path, err, errlen)) != 0) {
        free(options);
        free_more(more);
        free(copy);
        return rc;
    }
    lp->desc = copy;
    lp->options = options;
    lp->more = more;
    return 0;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* Opens the trusted file and adopts its descriptor into *lp (handle, desc, options). */
static int open_plugin(const char *path, const char *real, loaded_plugin *lp, char *err,
                       size_t errlen)
{
    void *h = dlopen(real, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *dl = dlerror();
        snprintf(err, errlen, "%s: cannot load: %s", path, dl ? dl : "unknown dlopen error");
        return -ENOEXEC;
    }
    dlerror();
    void *sym = dlsym(h, SB_PLUGIN_ENTRY_SYMBOL);
    if (!sym) {
        snprintf(err, errlen, "%s: no %s symbol (not a scalebus plugin?)", path,
                 SB_PLUGIN_ENTRY_SYMBOL);
        dlclose(h);
        return -ENOENT;
    }
    sb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry); /* object pointer to function pointer, portably */
    int rc = adopt_descriptor(entry(), path, lp, err, errlen);
    if (rc) {
        dlclose(h);
        return rc;
    }
    lp->handle = h;
    return 0;
}

static void close_plugin(loaded_plugin *lp)
{
    dlclose(lp->handle);
    free(lp->path);
    free(lp->desc);
    free(lp->options);
    free_more(lp->more);
}

int loader_load_file(loader *l, const char *path, char *err, size_t errlen)
{
    char real[PATH_MAX];
    if (!realpath(path, real)) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].path, real) == 0)
            return 0;

    char why[PATH_MAX + 256];
    int rc = untrusted_chain(path, real, 1, why, sizeof why);
    if (rc) {
        snprintf(err, errlen, "%s: not loaded: %s", path, why);
        return rc;
    }
    loaded_plugin lp = {0};
    if ((rc = open_plugin(path, real, &lp, err, errlen)) != 0)
        return rc;
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].desc->type, lp.desc->type) == 0) {
            snprintf(err, errlen, "%s: type '%s' is already loaded from %s", path, lp.desc->type,
                     l->items[i].path);
            close_plugin(&lp);
            return -EEXIST;
        }
    }
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        loaded_plugin *n = realloc(l->items, ncap * sizeof *n);
        if (!n) {
            close_plugin(&lp);
            snprintf(err, errlen, "%s: out of memory", path);
            return -ENOMEM;
        }
        l->items = n;
        l->cap = ncap;
    }
    if (!(lp.path = strdup(real))) {
        close_plugin(&lp);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    l->items[l->count++] = lp;
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int loader_load_dir(loader *l, const char *dir, loader_report_fn report, void *arg)
{
    char err[PATH_MAX + 512];
    int rc = loader_check_dir(dir, err, sizeof err);
    if (rc != 0) {
        if (report)
            report(arg, err);
        return rc;
    }
    DIR *dp = opendir(dir);
    if (!dp) {
        rc = -errno;
        snprintf(err, sizeof err, "%s: %s", dir, strerror(-rc));
        if (report)
            report(arg, err);
        return rc;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 4 || strcmp(de->d_name + len - 3, ".so") != 0 || de->d_name[0] == '.')
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char **nn = realloc(names, ncap * sizeof *nn);
            if (!nn) {
                if (report)
                    report(arg, "out of memory listing plugins; some were not loaded");
                break;
            }
            names = nn;
            cap = ncap;
        }
        if ((names[n] = strdup(de->d_name)) != NULL)
            n++;
    }
    closedir(dp);
    if (n)
        qsort(names, n, sizeof *names, name_cmp);
    int refused = 0;
    for (size_t i = 0; i < n; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (loader_load_file(l, path, err, sizeof err) != 0) {
            refused++;
            if (report)
                report(arg, err);
        }
        free(names[i]);
    }
    free(names);
    return refused;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

const char *loader_builtin_dir(char *buf, size_t buflen)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash)
            *slash = '\0';
        snprintf(buf, buflen, "%s/plugins", exe);
        if (is_dir(buf))
            return buf;
        snprintf(buf, buflen, "%s/../lib/scalebus/plugins", exe);
        if (is_dir(buf))
            return buf;
    }
    snprintf(buf, buflen, "%s", SB_PLUGIN_INSTALL_DIR);
    return buf;
}

const sb_plugin_descriptor *loader_find(const loader *l, const char *type)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].desc->type, type) == 0)
            return l->items[i].desc;
    return NULL;
}

const char *loader_path_of(const loader *l, const char *type)
{
    for (size_t i = 0; i < l->count; i++)
        if (strcmp(l->items[i].desc->type, type) == 0)
            return l->items[i].path;
    return NULL;
}

size_t loader_count(const loader *l)
{
    return l->count;
}

const sb_plugin_descriptor *loader_at(const loader *l, size_t i)
{
    return i < l->count ? l->items[i].desc : NULL;
}
