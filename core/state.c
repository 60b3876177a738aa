/*
 * state.c - the daemon's state file (state.h): read once at start, checked as untrusted input,
 * and written atomically (temporary file, fsync, rename, fsync of the folder).
 */
#define _GNU_SOURCE

#include "state.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "strmap.h"

struct state_saved {
    cJSON *root;
    strmap components; /* id -> its entry in "components" */
    strmap scalers;    /* id -> its entry in "scalers" */
    size_t count;
    const char *daemon;
};

static int path_in(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

/* The whole file, NUL-terminated, or NULL with errno (EFBIG: bigger than STATE_FILE_MAX). */
static char *read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return NULL;
    struct stat sb;
    char *buf = NULL;
    if (fstat(fd, &sb) != 0)
        goto fail;
    if (!S_ISREG(sb.st_mode)) {
        errno = EINVAL;
        goto fail;
    }
    if ((uint64_t)sb.st_size > STATE_FILE_MAX) {
        errno = EFBIG;
        goto fail;
    }
    size_t cap = (size_t)sb.st_size + 1, n = 0;
    if (!(buf = malloc(cap)))
        goto fail;
    for (;;) {
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            goto fail;
        if (r == 0 || n + (size_t)r == cap - 1) {
            n += (size_t)r;
            break;
        }
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    *len = n;
    return buf;
fail: {
    int e = errno;
    free(buf);
    close(fd);
    errno = e;
    return NULL;
}
}

static int entry_key_ok(const cJSON *entry, const char **id)
{
    const cJSON *i = cJSON_GetObjectItemCaseSensitive(entry, "id");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(entry, "type");
    if (!cJSON_IsObject(entry) || !cJSON_IsString(i) || !cJSON_IsString(t) || !*i->valuestring)
        return 0;
    *id = i->valuestring;
    return 1;
}

/* Index an array of entries by id; entries without an id and type are skipped (a later daemon
 * may write more kinds of entries). */
static int index_entries(state_saved *s, const cJSON *arr, strmap *map, const char *name,
                         char *why, size_t whylen, const char *path)
{
    if (!arr)
        return 0;
    if (!cJSON_IsArray(arr)) {
        snprintf(why, whylen, "%s: '%s' is not an array; ignored", path, name);
        return -EINVAL;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        const char *id;
        if (!entry_key_ok(e, &id))
            continue;
        if (strmap_put(map, id, (void *)e) != 0) {
            snprintf(why, whylen, "%s: out of memory; ignored", path);
            return -ENOMEM;
        }
        s->count++;
    }
    return 0;
}

state_saved *state_read(const char *dir, char *why, size_t whylen)
{
    char path[4096];
    why[0] = '\0';
    if (path_in(path, sizeof path, dir, STATE_FILE_NAME) != 0) {
        snprintf(why, whylen, "%s/%s: path too long; ignored", dir, STATE_FILE_NAME);
        return NULL;
    }
    size_t len = 0;
    char *text = read_all(path, &len);
    if (!text) {
        if (errno != ENOENT)
            snprintf(why, whylen, "%s: %s; ignored", path,
                     errno == EFBIG ? "larger than 256 MiB" : strerror(errno));
        return NULL;
    }
    const char *end = NULL;
    /* len + 1: the NUL read_all put after the text ends it (one inside it is an error). */
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, 1);
    size_t at = end && end >= text ? (size_t)(end - text) : 0;
    free(text);
    if (!root) {
        snprintf(why, whylen, "%s: corrupt: not JSON (at byte %zu); ignored", path, at);
        return NULL;
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *daemon = cJSON_GetObjectItemCaseSensitive(root, "daemon");
    state_saved *s = NULL;
    if (!cJSON_IsObject(root) || !cJSON_IsString(format) ||
        strcmp(format->valuestring, STATE_FORMAT_NAME) != 0) {
        snprintf(why, whylen, "%s: not a scalebus state file (no \"format\": \"%s\"); ignored",
                 path, STATE_FORMAT_NAME);
        goto fail;
    }
    if (!cJSON_IsNumber(version) || !isfinite(version->valuedouble) || version->valuedouble < 1) {
        snprintf(why, whylen, "%s: corrupt: \"version\" is not a number from 1; ignored", path);
        goto fail;
    }
    if (version->valuedouble > STATE_FORMAT_VERSION) {
        snprintf(why, whylen,
                 "%s: written in state format %.0f by scalebus %s, newer than this daemon's %d; "
                 "ignored",
                 path, version->valuedouble,
                 cJSON_IsString(daemon) && strlen(daemon->valuestring) < 32 ? daemon->valuestring
                                                                            : "?",
                 STATE_FORMAT_VERSION);
        goto fail;
    }
    if (!(s = calloc(1, sizeof *s))) {
        snprintf(why, whylen, "%s: out of memory; ignored", path);
        goto fail;
    }
    s->root = root;
    s->daemon = cJSON_IsString(daemon) ? daemon->valuestring : "";
    if (index_entries(s, cJSON_GetObjectItemCaseSensitive(root, "components"), &s->components,
                      "components", why, whylen, path) != 0 ||
        index_entries(s, cJSON_GetObjectItemCaseSensitive(root, "scalers"), &s->scalers,
                      "scalers", why, whylen, path) != 0) {
        state_saved_free(s);
        return NULL;
    }
    return s;
fail:
    cJSON_Delete(root);
    return NULL;
}

void state_saved_free(state_saved *s)
{
    if (!s)
        return;
    strmap_free(&s->components);
    strmap_free(&s->scalers);
    cJSON_Delete(s->root);
    free(s);
}

const char *state_saved_daemon(const state_saved *s)
{
    return s->daemon;
}

size_t state_saved_count(const state_saved *s)
{
    return s ? s->count : 0;
}

static const cJSON *find(const strmap *m, const char *id, const char *type)
{
    const cJSON *e = strmap_get(m, id);
    if (!e)
        return NULL;
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(e, "type");
    return strcmp(t->valuestring, type) == 0 ? e : NULL;
}

const cJSON *state_saved_component(const state_saved *s, const char *id, const char *type,
                                   const char **version)
{
    const cJSON *e = s ? find(&s->components, id, type) : NULL;
    if (!e)
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "version");
    if (version)
        *version = cJSON_IsString(v) ? v->valuestring : "";
    return cJSON_GetObjectItemCaseSensitive(e, "snapshot");
}

/* A count as the daemon keeps it: a whole number in [0, 1e9]. */
static int count_ok(const cJSON *n)
{
    return cJSON_IsNumber(n) && isfinite(n->valuedouble) && n->valuedouble >= 0 &&
           n->valuedouble <= 1e9 && n->valuedouble == floor(n->valuedouble);
}

int state_saved_scaler(const state_saved *s, const char *id, const char *type, state_scaler *out)
{
    const cJSON *e = s ? find(&s->scalers, id, type) : NULL;
    if (!e)
        return 0;
    state_scaler r = {.last_desired = NAN, .override_desired = NAN};
    const cJSON *last = cJSON_GetObjectItemCaseSensitive(e, "last_desired");
    const cJSON *paused = cJSON_GetObjectItemCaseSensitive(e, "paused");
    const cJSON *ov = cJSON_GetObjectItemCaseSensitive(e, "override");
    if ((last && !count_ok(last)) || (paused && !cJSON_IsBool(paused)))
        return 0;
    if (last)
        r.last_desired = last->valuedouble;
    r.paused = cJSON_IsTrue(paused);
    if (ov) {
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(ov, "desired");
        const cJSON *until = cJSON_GetObjectItemCaseSensitive(ov, "until_ms");
        if (!cJSON_IsObject(ov) || !count_ok(d) || !cJSON_IsNumber(until) ||
            !isfinite(until->valuedouble) || until->valuedouble < 0 || until->valuedouble > 1e15)
            return 0;
        r.has_override = 1;
        r.override_desired = d->valuedouble;
        r.override_until_ms = (int64_t)until->valuedouble;
    }
    *out = r;
    return 1;
}

cJSON *state_doc_new(const char *daemon_version, int64_t now_ms)
{
    cJSON *doc = cJSON_CreateObject();
    if (!doc || !cJSON_AddStringToObject(doc, "format", STATE_FORMAT_NAME) ||
        !cJSON_AddNumberToObject(doc, "version", STATE_FORMAT_VERSION) ||
        !cJSON_AddStringToObject(doc, "daemon", daemon_version) ||
        !cJSON_AddNumberToObject(doc, "written_at_ms", (double)now_ms) ||
        !cJSON_AddArrayToObject(doc, "components") || !cJSON_AddArrayToObject(doc, "scalers")) {
        cJSON_Delete(doc);
        return NULL;
    }
    return doc;
}

static cJSON *new_entry(cJSON *doc, const char *array, const char *id, const char *type)
{
    cJSON *e = cJSON_CreateObject();
    if (!e || !cJSON_AddStringToObject(e, "id", id) || !cJSON_AddStringToObject(e, "type", type) ||
        !cJSON_AddItemToArray(cJSON_GetObjectItemCaseSensitive(doc, array), e)) {
        cJSON_Delete(e);
        return NULL;
    }
    return e;
}

int state_doc_add_component(cJSON *doc, const char *id, const char *type, const char *version,
                            cJSON *snapshot)
{
    cJSON *e = new_entry(doc, "components", id, type);
    if (!e || !cJSON_AddStringToObject(e, "version", version ? version : "") ||
        !cJSON_AddItemToObject(e, "snapshot", snapshot)) {
        cJSON_Delete(snapshot);
        return -ENOMEM;
    }
    return 0;
}

int state_doc_add_scaler(cJSON *doc, const char *id, const char *type, const state_scaler *s)
{
    cJSON *e = new_entry(doc, "scalers", id, type);
    if (!e)
        return -ENOMEM;
    int ok = 1;
    if (!isnan(s->last_desired))
        ok = cJSON_AddNumberToObject(e, "last_desired", s->last_desired) != NULL;
    if (ok && s->paused)
        ok = cJSON_AddBoolToObject(e, "paused", 1) != NULL;
    if (ok && s->has_override) {
        cJSON *ov = cJSON_AddObjectToObject(e, "override");
        ok = ov && cJSON_AddNumberToObject(ov, "desired", s->override_desired) &&
             cJSON_AddNumberToObject(ov, "until_ms", (double)s->override_until_ms);
    }
    return ok ? 0 : -ENOMEM;
}

static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int state_write(const char *dir, const char *text, size_t len, char *err, size_t errlen)
{
    /* A name of its own per write: a write still running on a worker and the final one at a
     * stop never share a temporary file. */
    static atomic_uint seq;
    char path[4096], tmp[4096], name[96];
    snprintf(name, sizeof name, ".%s.%ld.%u.tmp", STATE_FILE_NAME, (long)getpid(),
             atomic_fetch_add(&seq, 1));
    if (path_in(path, sizeof path, dir, STATE_FILE_NAME) != 0 ||
        path_in(tmp, sizeof tmp, dir, name) != 0) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", tmp, strerror(e));
        return -e;
    }
    int rc = write_all(fd, text, len);
    const char *step = "write";
    if (rc == 0 && fsync(fd) != 0) {
        rc = -errno;
        step = "fsync";
    }
    if (close(fd) != 0 && rc == 0) {
        rc = -errno;
        step = "close";
    }
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = -errno;
        step = "rename";
    }
    if (rc != 0) {
        snprintf(err, errlen, "%s: %s: %s", path, step, strerror(-rc));
        unlink(tmp);
        return rc;
    }
    /* The rename itself is durable only once the folder is. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        rc = -errno;
        snprintf(err, errlen, "%s: fsync: %s", dir, strerror(-rc));
    }
    if (dfd >= 0)
        close(dfd);
    return rc;
}
