/*
 * router_tokens.c - services registered at run time (see router_tokens.h and the router's
 * README, "Tokens").
 *
 * Files, per token NAME in state_dir:
 *   NAME.yaml  the pipeline fragment the pipeline file includes (the source of truth the daemon
 *              runs: it is checked and applied like any file, and read again at every start)
 *   NAME.json  the request as it was posted, with created/updated times and a version count,
 *              for GET (the fragment alone would not say which fields the operator gave)
 * Both are written to a temporary name and renamed, so a crash never leaves half a file for the
 * next start to refuse. These are small files written on the loop thread: tokens are rare
 * operator actions, and the check that follows reads the whole configuration on the loop anyway.
 */
#define _GNU_SOURCE /* strdup */
#include "router_tokens.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int rt_token_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > RT_TOKEN_NAME_MAX || name[0] == '-' || name[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return 0;
    }
    return 1;
}

/* ---- the fragment (pure) ------------------------------------------------------------------ */

/* The service's own options a token may give, copied as they are into the router's services
 * entry (the configuration check validates them, at the fragment's file:line:col). */
static const char *const service_fields[] = {"queue_timeout",   "max_queue",      "idle_timeout",
                                             "health_path",     "health_interval", "health_timeout",
                                             NULL};
/* What the router fills in itself in the scaler and the policy. */
static const char *const reserved_fields[] = {"id", "type", "from", "to", "match", "min", "max",
                                              NULL};

static bool in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

/* A field of the request that must be a whole number in [lo, hi] (def when absent). */
static int whole_field(const cJSON *req, const char *key, long lo, long hi, long def, long *out,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(long)v->valuedouble ||
        v->valuedouble < (double)lo || v->valuedouble > (double)hi) {
        snprintf(err, errlen, "%s: must be a whole number from %ld to %ld", key, lo, hi);
        return -EINVAL;
    }
    *out = (long)v->valuedouble;
    return 0;
}

/* The fragment's strings go through the file's ${VAR} expansion: a literal $ is written $$, so
 * a value a client posted is never replaced by the daemon's environment. */
static int escape_dollars(cJSON *n)
{
    if (cJSON_IsString(n) && n->valuestring && strchr(n->valuestring, '$')) {
        const char *s = n->valuestring;
        size_t extra = 0;
        for (const char *p = s; *p; p++)
            extra += *p == '$';
        char *out = malloc(strlen(s) + extra + 1);
        if (!out)
            return -ENOMEM;
        char *w = out;
        for (const char *p = s; *p; p++) {
            *w++ = *p;
            if (*p == '$')
                *w++ = '$';
        }
        *w = '\0';
        cJSON_free(n->valuestring);
        n->valuestring = out;
    }
    for (cJSON *c = n->child; c; c = c->next)
        if (escape_dollars(c) != 0)
            return -ENOMEM;
    return 0;
}

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Copy every field of src but those in skip into dst; a field in refuse is an error. */
static int copy_fields(cJSON *dst, const cJSON *src, const char *what, const char *const *skip,
                       const char *const *refuse, char *err, size_t errlen)
{
    for (const cJSON *c = src->child; c; c = c->next) {
        if (!c->string || !c->string[0] || has_control(c->string)) {
            snprintf(err, errlen, "%s: a field without a usable name", what);
            return -EINVAL;
        }
        if (skip && in_list(skip, c->string))
            continue;
        if (refuse && in_list(refuse, c->string)) {
            snprintf(err, errlen, "%s.%.40s: the router sets it itself", what, c->string);
            return -EINVAL;
        }
        if (cJSON_GetObjectItemCaseSensitive(dst, c->string)) {
            snprintf(err, errlen, "%s.%.40s: given twice", what, c->string);
            return -EINVAL;
        }
        cJSON *dup = cJSON_Duplicate(c, 1);
        if (!dup || !cJSON_AddItemToObject(dst, c->string, dup)) {
            cJSON_Delete(dup);
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

static const char *const request_fields[] = {
    "name",          "hosts",        "backend",     "min",            "max",
    "concurrency_level", "queue_timeout", "max_queue", "idle_timeout", "health_path",
    "health_interval", "health_timeout", "policy",    "drain",          NULL};

int rt_token_fragment(const cJSON *req, const char *router_id, char **yaml, const char **name_out,
                      char *err, size_t errlen)
{
    *yaml = NULL;
    if (!cJSON_IsObject(req)) {
        snprintf(err, errlen, "the body must be a JSON object");
        return -EINVAL;
    }
    for (const cJSON *c = req->child; c; c = c->next)
        if (!c->string || !in_list(request_fields, c->string)) {
            char clean[48];
            size_t k = 0;
            for (const char *p = c->string ? c->string : ""; *p && k + 1 < sizeof clean; p++)
                clean[k++] = ((unsigned char)*p < 0x20 || *p == 0x7f) ? '?' : *p;
            clean[k] = '\0';
            snprintf(err, errlen,
                     "unknown field '%s' (name, hosts, backend, min, max, concurrency_level, "
                     "queue_timeout, max_queue, idle_timeout, health_path, health_interval, "
                     "health_timeout, policy, drain)",
                     clean);
            return -EINVAL;
        }
    const cJSON *jname = cJSON_GetObjectItemCaseSensitive(req, "name");
    if (!cJSON_IsString(jname) || !rt_token_name_ok(jname->valuestring)) {
        snprintf(err, errlen, "name: 1 to %d lowercase letters, digits or '-', not starting or "
                 "ending with '-'", RT_TOKEN_NAME_MAX);
        return -EINVAL;
    }
    const char *name = jname->valuestring;
    const cJSON *hosts = cJSON_GetObjectItemCaseSensitive(req, "hosts");
    if (hosts) {
        if (!cJSON_IsArray(hosts)) {
            snprintf(err, errlen, "hosts: must be a list of host names");
            return -EINVAL;
        }
        for (const cJSON *h = hosts->child; h; h = h->next)
            if (!cJSON_IsString(h) || !h->valuestring[0] || strlen(h->valuestring) > 253 ||
                has_control(h->valuestring) || strpbrk(h->valuestring, " \t/")) {
                snprintf(err, errlen, "hosts: each must be a host name (no spaces, no '/')");
                return -EINVAL;
            }
    }
    const cJSON *backend = cJSON_GetObjectItemCaseSensitive(req, "backend");
    const cJSON *btype = cJSON_GetObjectItemCaseSensitive(backend, "type");
    if (!cJSON_IsObject(backend) || !cJSON_IsString(btype) || !btype->valuestring[0] ||
        strspn(btype->valuestring, "abcdefghijklmnopqrstuvwxyz0123456789_") !=
            strlen(btype->valuestring)) {
        snprintf(err, errlen, "backend: must be an object with a scaler type, e.g. "
                 "{\"type\": \"process\", \"command\": [...]}");
        return -EINVAL;
    }
    long min, max, slots;
    if (whole_field(req, "min", 0, 1000000, 0, &min, err, errlen) ||
        whole_field(req, "max", 1, 1000000, 1, &max, err, errlen) ||
        whole_field(req, "concurrency_level", 1, 100000, 1, &slots, err, errlen))
        return -EINVAL;
    if (min > max) {
        snprintf(err, errlen, "min %ld is above max %ld", min, max);
        return -EINVAL;
    }
    const cJSON *policy = cJSON_GetObjectItemCaseSensitive(req, "policy");
    if (policy && !cJSON_IsObject(policy)) {
        snprintf(err, errlen, "policy: must be an object of waiter options");
        return -EINVAL;
    }
    const cJSON *drain = cJSON_GetObjectItemCaseSensitive(req, "drain");
    if (drain && !cJSON_IsBool(drain)) {
        snprintf(err, errlen, "drain: must be true or false");
        return -EINVAL;
    }

    char scaler_id[sizeof RT_TOKEN_SCALER_PREFIX + RT_TOKEN_NAME_MAX];
    char policy_id[sizeof scaler_id + sizeof RT_TOKEN_POLICY_SUFFIX];
    snprintf(scaler_id, sizeof scaler_id, RT_TOKEN_SCALER_PREFIX "%s", name);
    snprintf(policy_id, sizeof policy_id, "%s" RT_TOKEN_POLICY_SUFFIX, scaler_id);

    int rc = -ENOMEM;
    char *sc_text = NULL, *po_text = NULL, *ex_text = NULL;
    cJSON *scaler = cJSON_CreateObject(), *pol = cJSON_CreateObject();
    cJSON *ext = cJSON_CreateObject();
    if (!scaler || !pol || !ext)
        goto oom;
    /* the scaler: the backend's options, with the id, bounds and drain the router owns */
    if (!cJSON_AddStringToObject(scaler, "id", scaler_id) ||
        !cJSON_AddStringToObject(scaler, "type", btype->valuestring) ||
        !cJSON_AddNumberToObject(scaler, "min", (double)min) ||
        !cJSON_AddNumberToObject(scaler, "max", (double)max))
        goto oom;
    static const char *const skip_type[] = {"type", NULL};
    if ((rc = copy_fields(scaler, backend, "backend", skip_type, reserved_fields, err, errlen)))
        goto fail;
    rc = -ENOMEM;
    if ((!drain || cJSON_IsTrue(drain)) && !cJSON_GetObjectItemCaseSensitive(scaler, "drain_from")) {
        const char *from[1] = {router_id};
        cJSON *list = cJSON_CreateStringArray(from, 1);
        if (!list || !cJSON_AddItemToObject(scaler, "drain_from", list)) {
            cJSON_Delete(list);
            goto oom;
        }
    }
    /* the policy: Waiter's, from this router's demand for the service to the scaler; up and down
     * at once (the router's idle_timeout keeps demand until the service is idle) */
    {
        const char *from[1] = {router_id};
        const char *to[1] = {scaler_id};
        cJSON *jfrom = cJSON_CreateStringArray(from, 1), *jto = cJSON_CreateStringArray(to, 1);
        cJSON *match = cJSON_CreateObject();
        if (!cJSON_AddStringToObject(pol, "id", policy_id) ||
            !cJSON_AddStringToObject(pol, "type", "waiter") || !jfrom || !jto || !match ||
            !cJSON_AddStringToObject(match, "service", name)) {
            cJSON_Delete(jfrom);
            cJSON_Delete(jto);
            cJSON_Delete(match);
            goto oom;
        }
        cJSON_AddItemToObject(pol, "from", jfrom);
        cJSON_AddItemToObject(pol, "to", jto);
        cJSON_AddItemToObject(pol, "match", match);
    }
    if (!cJSON_AddNumberToObject(pol, "concurrency_level", (double)slots) ||
        !cJSON_AddNumberToObject(pol, "min", (double)min) ||
        !cJSON_AddNumberToObject(pol, "max", (double)max))
        goto oom;
    static const char *const policy_refused[] = {"id",  "type", "from", "to", "match",
                                                 "min", "max",  "concurrency_level", NULL};
    if (policy && (rc = copy_fields(pol, policy, "policy", NULL, policy_refused, err, errlen)))
        goto fail;
    rc = -ENOMEM;
    if (!cJSON_GetObjectItemCaseSensitive(pol, "scale_up_factor") &&
        !cJSON_AddNumberToObject(pol, "scale_up_factor", 1))
        goto oom;
    if (!cJSON_GetObjectItemCaseSensitive(pol, "scale_down_factor") &&
        !cJSON_AddNumberToObject(pol, "scale_down_factor", 1))
        goto oom;
    if (!cJSON_GetObjectItemCaseSensitive(pol, "stabilize_down") &&
        !cJSON_AddStringToObject(pol, "stabilize_down", "0s"))
        goto oom;
    /* the service, added to the router by extend: */
    {
        cJSON *svc = cJSON_CreateObject(), *svcs = cJSON_CreateObject();
        if (!svc || !svcs) {
            cJSON_Delete(svc);
            cJSON_Delete(svcs);
            goto oom;
        }
        cJSON_AddItemToObject(svcs, name, svc);
        if (!cJSON_AddStringToObject(ext, "id", router_id)) {
            cJSON_Delete(svcs);
            goto oom;
        }
        cJSON_AddItemToObject(ext, "services", svcs);
        if (hosts) {
            cJSON *h = cJSON_Duplicate(hosts, 1);
            if (!h)
                goto oom;
            cJSON_AddItemToObject(svc, "hosts", h);
        }
        if (!cJSON_AddStringToObject(svc, "backend", scaler_id) ||
            !cJSON_AddNumberToObject(svc, "concurrency_level", (double)slots))
            goto oom;
        for (size_t i = 0; service_fields[i]; i++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, service_fields[i]);
            cJSON *dup = v ? cJSON_Duplicate(v, 1) : NULL;
            if (v && !dup)
                goto oom;
            if (dup)
                cJSON_AddItemToObject(svc, service_fields[i], dup);
        }
    }
    if (escape_dollars(scaler) || escape_dollars(pol) || escape_dollars(ext))
        goto oom;
    /* JSON is YAML: each component is one flow mapping, positions in errors stay exact */
    sc_text = cJSON_PrintUnformatted(scaler);
    po_text = cJSON_PrintUnformatted(pol);
    ex_text = cJSON_PrintUnformatted(ext);
    if (!sc_text || !po_text || !ex_text)
        goto oom;
    size_t need = strlen(sc_text) + strlen(po_text) + strlen(ex_text) + 2 * strlen(router_id) +
                  2 * strlen(name) + 512;
    char *out = malloc(need);
    if (!out)
        goto oom;
    snprintf(out, need,
             "# scalebus token '%s', written by router '%s' (POST /_scalebus/token).\n"
             "# The router rewrites and deletes this file: change it through /_scalebus/token.\n"
             "scalers:\n  - %s\nconnectors:\n  - %s\nextend:\n  - %s\n",
             name, router_id, sc_text, po_text, ex_text);
    *yaml = out;
    *name_out = name;
    rc = 0;
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
fail:
done:
    cJSON_free(sc_text);
    cJSON_free(po_text);
    cJSON_free(ex_text);
    cJSON_Delete(scaler);
    cJSON_Delete(pol);
    cJSON_Delete(ext);
    return rc;
}

/* ---- files -------------------------------------------------------------------------------- */

/* The whole of a small file, NUL-terminated; NULL with errno (ENOENT: absent; EFBIG). */
static char *read_small(const char *path, size_t max, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    char *buf = malloc(max + 1);
    size_t used = 0;
    ssize_t n = 0;
    while (buf && used <= max && (n = read(fd, buf + used, max + 1 - used)) > 0)
        used += (size_t)n;
    int e = !buf ? ENOMEM : n < 0 ? errno : used > max ? EFBIG : 0;
    close(fd);
    if (e) {
        free(buf);
        errno = e;
        return NULL;
    }
    buf[used] = '\0';
    if (len)
        *len = used;
    return buf;
}

/* Write dir/name atomically (a temporary name in dir, fsync, rename), mode 0600. */
static int write_atomic(const char *dir, const char *name, const char *text, char *err,
                        size_t errlen)
{
    char tmp[4096], path[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s/.%s.tmp", dir, name) >= sizeof tmp ||
        (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(err, errlen, "%s: path too long", dir);
        return -ENAMETOOLONG;
    }
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "cannot write %.400s: %s", tmp, strerror(e));
        return -e;
    }
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            close(fd);
            unlink(tmp);
            snprintf(err, errlen, "cannot write %.400s: %s", tmp, strerror(e));
            return -e;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        snprintf(err, errlen, "cannot write %.400s: %s", path, strerror(e));
        return -e;
    }
    return 0;
}

/* ---- HTTP --------------------------------------------------------------------------------- */

static int respond_json(sb_httpd_exchange *ex, int status, cJSON *doc)
{
    char *text = doc ? cJSON_Print(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        sb_httpd_respond_text(ex, 503, "503 service unavailable: out of memory");
        return 503;
    }
    size_t n = strlen(text);
    text[n] = '\n'; /* the NUL becomes the last line's end; the length says where it stops */
    sb_httpd_header h = {"Content-Type", "application/json"};
    sb_httpd_respond(ex, status, &h, 1, text, n + 1);
    cJSON_free(text);
    return status;
}

static int respond_text(sb_httpd_exchange *ex, int status, const char *text)
{
    sb_httpd_respond_text(ex, status, text);
    return status;
}

/* "Bearer TOKEN" against the configured token, in time independent of where they differ. */
static bool bearer_ok(const char *authorization, const char *token)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t a = strlen(given), b = strlen(token);
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(token[i] ^ (i < a ? given[i] : 0));
    return diff == 0;
}

static void iso_now(char *out, size_t len)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The name a request is about: from /_scalebus/token/NAME, else ?name=NAME; "" for none. */
static int name_of(const sb_httpd_request *req, char *out, size_t len)
{
    out[0] = '\0';
    const char *p = req->path + strlen("/_scalebus/token");
    if (*p == '/')
        p++;
    if (*p) {
        if (strlen(p) >= len)
            return -EINVAL;
        snprintf(out, len, "%s", p);
    } else {
        const char *q = req->query;
        while (q && *q) {
            const char *amp = strchr(q, '&');
            size_t n = amp ? (size_t)(amp - q) : strlen(q);
            if (n > 5 && strncmp(q, "name=", 5) == 0) {
                if (n - 5 >= len)
                    return -EINVAL;
                memcpy(out, q + 5, n - 5);
                out[n - 5] = '\0';
                break;
            }
            q = amp ? amp + 1 : NULL;
        }
    }
    return out[0] && !rt_token_name_ok(out) ? -EINVAL : 0;
}

static cJSON *read_token(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    char *text = read_small(path, RT_TOKEN_BODY_MAX * 2, NULL);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    free(text);
    if (doc && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    return doc;
}

static int serve_list(const rt_tokens_conf *conf, sb_httpd_exchange *ex)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(doc, "tokens");
    if (!list) {
        cJSON_Delete(doc);
        return respond_text(ex, 503, "503 service unavailable: out of memory");
    }
    DIR *dir = opendir(conf->state_dir);
    struct dirent *e;
    while (dir && (e = readdir(dir))) {
        size_t n = strlen(e->d_name);
        if (n <= 5 || strcmp(e->d_name + n - 5, ".json") != 0 || n - 5 > RT_TOKEN_NAME_MAX)
            continue;
        char name[RT_TOKEN_NAME_MAX + 1];
        memcpy(name, e->d_name, n - 5);
        name[n - 5] = '\0';
        cJSON *t = rt_token_name_ok(name) ? read_token(conf->state_dir, name) : NULL;
        if (t)
            cJSON_AddItemToArray(list, t);
    }
    if (dir)
        closedir(dir);
    return respond_json(ex, 200, doc);
}

/* After a refused check: the fragment as it was (prev, or none). */
static void restore_fragment(const rt_tokens_conf *conf, const char *name, const char *prev)
{
    char file[RT_TOKEN_NAME_MAX + 8], err[256], path[4096];
    snprintf(file, sizeof file, "%s.yaml", name);
    if (prev) {
        if (write_atomic(conf->state_dir, file, prev, err, sizeof err) != 0)
            conf->host->log(conf->inst, SB_LOG_ERROR, "token %s: %s", name, err);
    } else {
        snprintf(path, sizeof path, "%s/%s", conf->state_dir, file);
        unlink(path);
    }
}

/* Ask the host to check everything and reload; answers the client itself on a refusal. */
static int apply(const rt_tokens_conf *conf, sb_httpd_exchange *ex, const char *name,
                 const char *must_include, const char *prev_yaml, const char *what)
{
    char err[4096] = "";
    int rc = conf->host->request_reload(conf->inst, must_include, err, sizeof err);
    if (rc == 0)
        return 0;
    restore_fragment(conf, name, prev_yaml);
    conf->host->log(conf->inst, SB_LOG_WARN, "token %s: %s refused", name, what);
    char text[4400];
    int status = rc == -EINVAL ? 400 : rc == -ENOENT ? 409 : 503;
    snprintf(text, sizeof text, "%d %s: token '%s' not %s: %s", status,
             status == 400 ? "bad request" : status == 409 ? "conflict" : "service unavailable",
             name, what, err);
    sb_httpd_respond(ex, status, &(sb_httpd_header){"Content-Type", "text/plain; charset=utf-8"},
                     1, text, strlen(text));
    return status;
}

static int serve_post(const rt_tokens_conf *conf, sb_httpd_exchange *ex, const char *path_name,
                      const char *body, size_t len)
{
    if (len > RT_TOKEN_BODY_MAX)
        return respond_text(ex, 413, "413 content too large: a token is at most 64 KiB of JSON");
    cJSON *req = cJSON_ParseWithLength(body, len);
    if (!cJSON_IsObject(req)) {
        cJSON_Delete(req);
        return respond_text(ex, 400, "400 bad request: the body must be a JSON object");
    }
    if (path_name[0]) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(req, "name");
        if (!n)
            cJSON_AddStringToObject(req, "name", path_name);
        else if (!cJSON_IsString(n) || strcmp(n->valuestring, path_name) != 0) {
            cJSON_Delete(req);
            return respond_text(ex, 400, "400 bad request: the body's name differs from the path's");
        }
    }
    char *yaml = NULL;
    const char *name = NULL;
    char err[512];
    if (rt_token_fragment(req, conf->router_id, &yaml, &name, err, sizeof err) != 0) {
        char text[600];
        snprintf(text, sizeof text, "400 bad request: %s", err);
        cJSON_Delete(req);
        return respond_text(ex, 400, text);
    }
    char file[RT_TOKEN_NAME_MAX + 8], path[4096];
    snprintf(file, sizeof file, "%s.yaml", name);
    snprintf(path, sizeof path, "%s/%s", conf->state_dir, file);
    if (mkdir(conf->state_dir, 0700) != 0 && errno != EEXIST) {
        char text[600];
        snprintf(text, sizeof text, "503 service unavailable: cannot make %s: %s",
                 conf->state_dir, strerror(errno));
        cJSON_Delete(req);
        free(yaml);
        return respond_text(ex, 503, text);
    }
    char *prev = read_small(path, RT_TOKEN_BODY_MAX * 8, NULL);
    cJSON *old = read_token(conf->state_dir, name);
    int status;
    if (prev && strcmp(prev, yaml) == 0 && old) {
        /* the same token again: nothing to check or reload */
        status = 200;
        cJSON_AddStringToObject(old, "status", "unchanged");
        free(yaml);
        free(prev);
        cJSON_Delete(req);
        return respond_json(ex, status, old);
    }
    if (write_atomic(conf->state_dir, file, yaml, err, sizeof err) != 0) {
        char text[600];
        snprintf(text, sizeof text, "503 service unavailable: %s", err);
        status = respond_text(ex, 503, text);
        goto done;
    }
    if ((status = apply(conf, ex, name, path, prev, prev ? "updated" : "created")) != 0)
        goto done;
    /* what GET shows: the request, when and how often it changed */
    char now[32];
    iso_now(now, sizeof now);
    const cJSON *created = cJSON_GetObjectItemCaseSensitive(old, "created");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(old, "version");
    cJSON_AddStringToObject(req, "created",
                            cJSON_IsString(created) ? created->valuestring : now);
    cJSON_AddStringToObject(req, "updated", now);
    cJSON_AddNumberToObject(req, "version",
                            cJSON_IsNumber(version) ? version->valuedouble + 1 : 1);
    char scaler_id[sizeof RT_TOKEN_SCALER_PREFIX + RT_TOKEN_NAME_MAX];
    snprintf(scaler_id, sizeof scaler_id, RT_TOKEN_SCALER_PREFIX "%s", name);
    cJSON_AddStringToObject(req, "scaler", scaler_id);
    cJSON_AddStringToObject(req, "file", path);
    char *desc = cJSON_Print(req);
    char jfile[RT_TOKEN_NAME_MAX + 8];
    snprintf(jfile, sizeof jfile, "%s.json", name);
    if (!desc || write_atomic(conf->state_dir, jfile, desc, err, sizeof err) != 0)
        conf->host->log(conf->inst, SB_LOG_WARN, "token %s: applied, but its description was "
                        "not written (GET will not show it): %s", name,
                        desc ? err : "out of memory");
    cJSON_free(desc);
    conf->host->log(conf->inst, SB_LOG_INFO, "token %s %s (version %d): reloading", name,
                    prev ? "updated" : "created",
                    cJSON_IsNumber(version) ? (int)version->valuedouble + 1 : 1);
    cJSON_AddStringToObject(req, "status", prev ? "updated" : "created");
    status = respond_json(ex, prev ? 200 : 201, req);
    req = NULL;
done:
    cJSON_Delete(req);
    cJSON_Delete(old);
    free(prev);
    free(yaml);
    return status;
}

static int serve_delete(const rt_tokens_conf *conf, sb_httpd_exchange *ex, const char *name)
{
    char path[4096], jpath[4096];
    snprintf(path, sizeof path, "%s/%s.yaml", conf->state_dir, name);
    snprintf(jpath, sizeof jpath, "%s/%s.json", conf->state_dir, name);
    char *prev = read_small(path, RT_TOKEN_BODY_MAX * 8, NULL);
    if (!prev) {
        char text[200];
        snprintf(text, sizeof text, "404 not found: no token '%s'", name);
        return respond_text(ex, 404, text);
    }
    int status;
    if (unlink(path) != 0) {
        char text[600];
        snprintf(text, sizeof text, "503 service unavailable: cannot remove %.400s: %s", path,
                 strerror(errno));
        status = respond_text(ex, 503, text);
    } else if ((status = apply(conf, ex, name, NULL, prev, "deleted")) == 0) {
        unlink(jpath);
        conf->host->log(conf->inst, SB_LOG_INFO, "token %s deleted: reloading", name);
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "deleted", name);
        status = respond_json(ex, 200, doc);
    }
    free(prev);
    return status;
}

int rt_tokens_serve(const rt_tokens_conf *conf, sb_httpd_exchange *ex,
                    const sb_httpd_request *req, const char *body, size_t len)
{
    if (!conf->state_dir || !conf->token_auth)
        return respond_text(ex, 403, "403 forbidden: tokens are off (the router needs "
                                     "token_auth and state_dir)");
    if (!bearer_ok(sb_httpd_header_get(req, "authorization"), conf->token_auth)) {
        sb_httpd_header h = {"WWW-Authenticate", "Bearer realm=\"scalebus\""};
        const char *text = "401 unauthorized: send Authorization: Bearer <token_auth>\n";
        sb_httpd_respond(ex, 401, &h, 1, text, strlen(text));
        return 401;
    }
    if (!SB_HOST_HAS(conf->host, request_reload))
        return respond_text(ex, 501, "501 not implemented: tokens need a daemon with "
                                     "host->request_reload (host version 5)");
    char name[RT_TOKEN_NAME_MAX + 1];
    if (name_of(req, name, sizeof name) != 0)
        return respond_text(ex, 400, "400 bad request: a token name is 1 to 63 of a-z, 0-9 "
                                     "and '-'");
    const char *m = req->method;
    if (strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0) {
        if (!name[0])
            return serve_list(conf, ex);
        cJSON *t = read_token(conf->state_dir, name);
        if (!t) {
            char text[200];
            snprintf(text, sizeof text, "404 not found: no token '%s'", name);
            return respond_text(ex, 404, text);
        }
        return respond_json(ex, 200, t);
    }
    if (strcmp(m, "POST") == 0)
        return serve_post(conf, ex, name, body ? body : "", body ? len : 0);
    if (strcmp(m, "DELETE") == 0) {
        if (!name[0])
            return respond_text(ex, 400, "400 bad request: DELETE /_scalebus/token/NAME");
        return serve_delete(conf, ex, name);
    }
    sb_httpd_header h = {"Allow", "GET, HEAD, POST, DELETE"};
    const char *text = "405 method not allowed: tokens take GET, POST and DELETE\n";
    sb_httpd_respond(ex, 405, &h, 1, text, strlen(text));
    return 405;
}
