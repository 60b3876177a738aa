/*
 * loader.c - plugin discovery and loading (see loader.h).
 *
 * Checks, in order, each giving one line "PATH: reason": the file or its folder is writable by
 * other users (a plugin runs with the daemon's rights, so such a file is refused before dlopen),
 * dlopen fails, the entry symbol is missing, the descriptor is from another ABI, its kind or type
 * name is invalid, its options table is malformed, or its type is already loaded from elsewhere.
 */
#define _DEFAULT_SOURCE
#include "loader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef SB_PLUGIN_INSTALL_DIR
#define SB_PLUGIN_INSTALL_DIR "/usr/local/lib/scalebus/plugins"
#endif

typedef struct loaded_plugin {
    char *path; /* real path */
    void *handle;
    /* A copy, zero-filled past what the plugin's own (possibly older, shorter) descriptor has,
     * so fields added later read as NULL instead of past the end of the plugin's struct. */
    sb_plugin_descriptor *desc;
} loaded_plugin;

struct loader {
    loaded_plugin *items;
    size_t count, cap;
};

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

/* Refuse what other users could have replaced. Writes why into reason ("is writable by other
 * users (mode 0646)"), or the stat error; returns 0 when the path is safe. */
static int unsafe_reason(const char *path, char *reason, size_t len)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        int e = errno;
        snprintf(reason, len, "%s", strerror(e));
        return -e;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(reason, len, "is writable by other users (mode %04o)",
                 (unsigned)(st.st_mode & 07777));
        return -EPERM;
    }
    if (st.st_uid != 0 && st.st_uid != geteuid()) {
        snprintf(reason, len, "belongs to uid %u, not root or this user", (unsigned)st.st_uid);
        return -EPERM;
    }
    return 0;
}

static int check_descriptor(const sb_plugin_descriptor *d, const char *path, char *err,
                            size_t errlen)
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
    /* The descriptor may grow at its end; the fields up to on_event are the ABI 1 minimum. */
    if (d->size < offsetof(sb_plugin_descriptor, next_fire_times)) {
        snprintf(err, errlen, "%s: descriptor size %u is too small for ABI %u", path, d->size,
                 SB_ABI_VERSION);
        return -EPROTO;
    }
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
    for (const sb_option_spec *o = d->options; o && o->name; o++) {
        if (o->type < SB_OPT_STRING || o->type > SB_OPT_MAP) {
            snprintf(err, errlen, "%s: plugin '%s' option '%s' has bad type %d", path, d->type,
                     o->name, (int)o->type);
            return -EINVAL;
        }
    }
    return 0;
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

    char why[256];
    int rc = unsafe_reason(real, why, sizeof why);
    if (rc) {
        if (rc == -EPERM)
            snprintf(err, errlen, "%s: not loaded: the file %s", path, why);
        else
            snprintf(err, errlen, "%s: %s", path, why);
        return rc;
    }
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", real);
    char *slash = strrchr(dir, '/');
    if (slash)
        slash[slash == dir ? 1 : 0] = '\0'; /* a file right under / lives in "/" */
    if ((rc = unsafe_reason(dir, why, sizeof why)) != 0) {
        snprintf(err, errlen, "%s: not loaded: its folder %s %s", path, dir, why);
        return rc;
    }

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
    const sb_plugin_descriptor *d = entry();
    if ((rc = check_descriptor(d, path, err, errlen)) != 0) {
        dlclose(h);
        return rc;
    }
    for (size_t i = 0; i < l->count; i++) {
        if (strcmp(l->items[i].desc->type, d->type) == 0) {
            snprintf(err, errlen, "%s: type '%s' is already loaded from %s", path, d->type,
                     l->items[i].path);
            dlclose(h);
            return -EEXIST;
        }
    }
    if (l->count == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 8;
        loaded_plugin *n = realloc(l->items, ncap * sizeof *n);
        if (!n) {
            dlclose(h);
            snprintf(err, errlen, "%s: out of memory", path);
            return -ENOMEM;
        }
        l->items = n;
        l->cap = ncap;
    }
    char *p = strdup(real);
    sb_plugin_descriptor *copy = calloc(1, sizeof *copy);
    if (!p || !copy) {
        free(p);
        free(copy);
        dlclose(h);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    memcpy(copy, d, d->size < sizeof *copy ? d->size : sizeof *copy);
    l->items[l->count++] = (loaded_plugin){.path = p, .handle = h, .desc = copy};
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int loader_load_dir(loader *l, const char *dir, loader_report_fn report, void *arg)
{
    char err[PATH_MAX + 256];
    char why[256];
    int rc = unsafe_reason(dir, why, sizeof why);
    if (rc != 0) {
        if (rc == -EPERM)
            snprintf(err, sizeof err, "%s: not loaded: the folder %s", dir, why);
        else
            snprintf(err, sizeof err, "%s: %s", dir, why);
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
