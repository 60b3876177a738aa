/*
 * docker_api.c - the docker scaler's request bodies and reply parsers (see docker_api.h). Every
 * reply is untrusted: a missing or mistyped field is an error line, never a crash, and what is
 * quoted from a reply never carries a control character into a message.
 */
#define _DEFAULT_SOURCE /* timegm */
#include "docker_api.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

void sb_docker_one_line(const char *s, char *out, size_t len)
{
    size_t i = 0;
    if (!len)
        return;
    for (; s && *s && i + 1 < len; s++)
        out[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[i] = '\0';
}

static const char *json_string(const cJSON *obj, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int sb_docker_parse_version(const char *body, char *out, size_t outlen, char *err, size_t errlen)
{
    cJSON *doc = cJSON_Parse(body ? body : "");
    const char *v = doc ? json_string(doc, "ApiVersion") : NULL;
    unsigned major = 0, minor = 0;
    char tail = 0;
    int rc = 0;
    if (!v || sscanf(v, "%u.%u%c", &major, &minor, &tail) != 2) {
        char shown[64];
        sb_docker_one_line(v ? v : "", shown, sizeof shown);
        if (v)
            snprintf(err, errlen, "GET /version: ApiVersion '%s' is not a version", shown);
        else
            snprintf(err, errlen, "GET /version: the reply has no ApiVersion");
        rc = -EINVAL;
    } else if (major < 1 || (major == 1 && minor < SB_DOCKER_API_OLDEST_MINOR)) {
        snprintf(err, errlen,
                 "the engine speaks API %u.%u, older than 1.%d, the oldest this "
                 "plugin speaks",
                 major, minor, SB_DOCKER_API_OLDEST_MINOR);
        rc = -EINVAL;
    } else if (major > 1 || minor >= SB_DOCKER_API_NEWEST_MINOR) {
        snprintf(out, outlen, "1.%d", SB_DOCKER_API_NEWEST_MINOR);
    } else {
        snprintf(out, outlen, "1.%u", minor);
    }
    cJSON_Delete(doc);
    return rc;
}

void sb_docker_error_message(long status, const char *body, char *out, size_t len)
{
    cJSON *doc = cJSON_Parse(body ? body : "");
    const char *m = doc ? json_string(doc, "message") : NULL;
    if (m && *m) {
        sb_docker_one_line(m, out, len);
    } else if (body && *body) {
        char first[200];
        sb_docker_one_line(body, first, sizeof first);
        snprintf(out, len, "HTTP %ld: %s", status, first);
    } else {
        snprintf(out, len, "HTTP %ld", status);
    }
    cJSON_Delete(doc);
}

sb_action_result sb_docker_classify(long status, const char *body)
{
    if (status == 409)
        return SB_ACTION_BUSY;
    if (status >= 500) {
        cJSON *doc = cJSON_Parse(body ? body : "");
        const char *cause = doc ? json_string(doc, "cause") : NULL;
        int busy = cause && strcmp(cause, "container state improper") == 0;
        cJSON_Delete(doc);
        if (busy)
            return SB_ACTION_BUSY;
    }
    return SB_ACTION_FAILED;
}

int sb_docker_parse_list(const char *body, const char *scaler_id, sb_docker_listed **out, size_t *n,
                         char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    cJSON *doc = cJSON_Parse(body ? body : "");
    if (!cJSON_IsArray(doc)) {
        snprintf(err, errlen, "GET /containers/json: the reply is not a JSON array");
        cJSON_Delete(doc);
        return -EINVAL;
    }
    int count = cJSON_GetArraySize(doc);
    sb_docker_listed *items = count ? calloc((size_t)count, sizeof *items) : NULL;
    if (count && !items) {
        snprintf(err, errlen, "out of memory");
        cJSON_Delete(doc);
        return -ENOMEM;
    }
    size_t k = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, doc)
    {
        const char *id = json_string(c, "Id");
        const cJSON *labels = cJSON_GetObjectItemCaseSensitive(c, "Labels");
        const char *owner =
            cJSON_IsObject(labels) ? json_string(labels, SB_DOCKER_OWNER_LABEL) : NULL;
        /* Only ours, whatever the filter did: never touch another container. */
        if (!owner || strcmp(owner, scaler_id) != 0)
            continue;
        if (!id || !*id || strlen(id) >= SB_DOCKER_ID_MAX ||
            strspn(id, "0123456789abcdef") != strlen(id)) {
            snprintf(err, errlen, "GET /containers/json: a container without a valid Id");
            free(items);
            cJSON_Delete(doc);
            return -EINVAL;
        }
        snprintf(items[k].id, sizeof items[k].id, "%s", id);
        /* Names: ["/web-1-ab12cd"]; the first one, without its '/'. */
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(c, "Names");
        const cJSON *first = cJSON_IsArray(names) ? cJSON_GetArrayItem(names, 0) : NULL;
        const char *name = cJSON_IsString(first) ? first->valuestring : "";
        if (*name == '/')
            name++;
        sb_docker_one_line(*name ? name : id, items[k].name, sizeof items[k].name);
        k++;
    }
    cJSON_Delete(doc);
    if (!k) {
        free(items);
        items = NULL;
    }
    *out = items;
    *n = k;
    return 0;
}

int64_t sb_docker_parse_time(const char *s, int64_t *ns)
{
    struct tm tm = {0};
    int used = 0;
    int64_t frac = 0;
    if (ns)
        *ns = -1;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
        return -1;
    if (tm.tm_year <= 1) {
        if (ns)
            *ns = 0;
        return 0; /* Go's zero time: never */
    }
    if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60)
        return -1;
    const char *p = s + used;
    if (*p == '.') {
        int digits = 0;
        for (p++; isdigit((unsigned char)*p); p++, digits++)
            if (digits < 9)
                frac = frac * 10 + (*p - '0');
        for (; digits < 9; digits++)
            frac *= 10;
    }
    long offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int hh, mm, n = 0;
        if (sscanf(p + 1, "%2d:%2d%n", &hh, &mm, &n) != 2 || n != 5)
            return -1;
        offset = (hh * 3600L + mm * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return -1;
    }
    if (*p)
        return -1;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    int64_t t = (int64_t)timegm(&tm) - offset;
    /* Before 1970 or past 2262 (nanoseconds no longer fit): not a time a container has. */
    if (t < 0 || t > (INT64_MAX - 999999999) / 1000000000)
        return -1;
    if (ns)
        *ns = t * 1000000000 + frac;
    return t;
}

/* The address of a container reached through a published port: the first binding of PORT/tcp. */
static void published_address(const cJSON *net, int port, char *out, size_t len)
{
    char key[16];
    snprintf(key, sizeof key, "%d/tcp", port);
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(net, "Ports");
    const cJSON *bindings =
        cJSON_IsObject(ports) ? cJSON_GetObjectItemCaseSensitive(ports, key) : NULL;
    const cJSON *b = cJSON_IsArray(bindings) ? cJSON_GetArrayItem(bindings, 0) : NULL;
    const char *hport = b ? json_string(b, "HostPort") : NULL;
    const char *hip = b ? json_string(b, "HostIp") : NULL;
    if (!hport || !*hport || strspn(hport, "0123456789") != strlen(hport) || strlen(hport) > 5)
        return;
    /* Bound to every address (or to none said): loopback reaches it. */
    if (!hip || !*hip || strcmp(hip, "0.0.0.0") == 0 || strcmp(hip, "::") == 0)
        hip = "127.0.0.1";
    char ip[48];
    sb_docker_one_line(hip, ip, sizeof ip);
    if (strchr(ip, ':'))
        snprintf(out, len, "[%s]:%s", ip, hport);
    else
        snprintf(out, len, "%s:%s", ip, hport);
}

static void member_address(const cJSON *doc, const sb_docker_where *where, char *out, size_t len)
{
    out[0] = '\0';
    if (!where || where->port <= 0)
        return;
    const cJSON *net = cJSON_GetObjectItemCaseSensitive(doc, "NetworkSettings");
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(doc, "HostConfig");
    const char *mode = cJSON_IsObject(hc) ? json_string(hc, "NetworkMode") : NULL;
    if ((where->network && strcmp(where->network, "host") == 0) ||
        (mode && strcmp(mode, "host") == 0)) {
        snprintf(out, len, "127.0.0.1:%d", where->port);
        return;
    }
    if (!cJSON_IsObject(net))
        return;
    if (where->network) {
        const cJSON *nets = cJSON_GetObjectItemCaseSensitive(net, "Networks");
        const cJSON *mine =
            cJSON_IsObject(nets) ? cJSON_GetObjectItemCaseSensitive(nets, where->network) : NULL;
        const char *ip = mine ? json_string(mine, "IPAddress") : NULL;
        if (ip && *ip) {
            char shown[48];
            sb_docker_one_line(ip, shown, sizeof shown);
            if (strchr(shown, ':'))
                snprintf(out, len, "[%s]:%d", shown, where->port);
            else
                snprintf(out, len, "%s:%d", shown, where->port);
            return;
        }
    }
    published_address(net, where->port, out, len);
}

static sb_member_state member_state(const char *status, const char *health, int64_t created,
                                    int64_t now_s)
{
    if (strcmp(status, "running") == 0) {
        if (!health || !*health || strcmp(health, "healthy") == 0 || strcmp(health, "none") == 0)
            return SB_MEMBER_READY;
        /* Its check failed `retries` times in a row: the engine leaves it running, so the
         * fleet removes and replaces it rather than count it as serving. */
        if (strcmp(health, "unhealthy") == 0)
            return SB_MEMBER_FAILED;
        return SB_MEMBER_STARTING; /* health starting: not serving yet */
    }
    if (strcmp(status, "exited") == 0 || strcmp(status, "dead") == 0 ||
        strcmp(status, "stopped") == 0 /* Podman */)
        return SB_MEMBER_FAILED;
    if (strcmp(status, "removing") == 0 || strcmp(status, "stopping") == 0 /* Podman */)
        return SB_MEMBER_STOPPING;
    /* created (Podman: configured, initialized): left over when it is old. */
    if ((strcmp(status, "created") == 0 || strcmp(status, "configured") == 0 ||
         strcmp(status, "initialized") == 0) &&
        created > 0 && now_s - created > SB_DOCKER_CREATED_STALE_S)
        return SB_MEMBER_FAILED;
    return SB_MEMBER_STARTING; /* created, restarting, paused, anything new */
}

/* The last health check run (State.Health.Log, oldest first): "exit N" and its output, in one
 * line without its trailing white space. */
static void last_check(const cJSON *health, char *out, size_t len)
{
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(health, "Log");
    int n = cJSON_IsArray(log) ? cJSON_GetArraySize(log) : 0;
    const cJSON *last = n > 0 ? cJSON_GetArrayItem(log, n - 1) : NULL;
    const cJSON *code = last ? cJSON_GetObjectItemCaseSensitive(last, "ExitCode") : NULL;
    const char *output = last ? json_string(last, "Output") : NULL;
    out[0] = '\0';
    if (!cJSON_IsNumber(code))
        return;
    char shown[140] = "";
    sb_docker_one_line(output ? output : "", shown, sizeof shown);
    size_t k = strlen(shown);
    while (k && (shown[k - 1] == ' ' || shown[k - 1] == '?')) /* '?': a trailing newline */
        shown[--k] = '\0';
    double c = code->valuedouble;
    long exit_code = c > -1e6 && c < 1e6 ? (long)c : -1;
    if (*shown)
        snprintf(out, len, "exit %ld: %s", exit_code, shown);
    else
        snprintf(out, len, "exit %ld", exit_code);
}

int sb_docker_parse_inspect(const char *body, const sb_docker_where *where, int64_t now_s,
                            sb_docker_inspected *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *doc = cJSON_Parse(body ? body : "");
    const cJSON *state = doc ? cJSON_GetObjectItemCaseSensitive(doc, "State") : NULL;
    const char *status = cJSON_IsObject(state) ? json_string(state, "Status") : NULL;
    if (!status) {
        snprintf(err, errlen, "GET /containers/ID/json: the reply has no State.Status");
        cJSON_Delete(doc);
        return -EINVAL;
    }
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(state, "Health");
    const char *health = cJSON_IsObject(h) ? json_string(h, "Status") : NULL;
    int64_t created_ns, started_ns;
    int64_t created = sb_docker_parse_time(json_string(doc, "Created"), &created_ns);
    int64_t started = sb_docker_parse_time(json_string(state, "StartedAt"), &started_ns);
    out->started_at = started > 0 ? started : (created > 0 ? created : 0);
    out->started_ns = started > 0 ? started_ns : (created > 0 ? created_ns : 0);
    out->state = member_state(status, health, created, now_s);
    char st[16], he[16];
    sb_docker_one_line(status, st, sizeof st);
    sb_docker_one_line(health ? health : "", he, sizeof he);
    if (*he)
        snprintf(out->status, sizeof out->status, "%s (%s)", st, he);
    else
        snprintf(out->status, sizeof out->status, "%s", st);
    snprintf(out->health, sizeof out->health, "%s", he);
    if (cJSON_IsObject(h)) {
        const cJSON *streak = cJSON_GetObjectItemCaseSensitive(h, "FailingStreak");
        if (cJSON_IsNumber(streak) && streak->valuedouble >= 0 && streak->valuedouble < 1e6)
            out->health_streak = (int)streak->valuedouble;
        last_check(h, out->health_last, sizeof out->health_last);
    }
    member_address(doc, where, out->address, sizeof out->address);
    cJSON_Delete(doc);
    return 0;
}

int sb_docker_parse_created(const char *body, char *id, size_t idlen, char *err, size_t errlen)
{
    cJSON *doc = cJSON_Parse(body ? body : "");
    const char *v = doc ? json_string(doc, "Id") : NULL;
    int rc = 0;
    if (!v || !*v || strlen(v) >= idlen || strspn(v, "0123456789abcdef") != strlen(v)) {
        snprintf(err, errlen, "POST /containers/create: the reply has no valid Id");
        rc = -EINVAL;
    } else {
        snprintf(id, idlen, "%s", v);
    }
    cJSON_Delete(doc);
    return rc;
}

int sb_docker_pull_error(const char *body, char *msg, size_t len)
{
    const char *line = body ? body : "";
    int found = 0;
    while (*line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        cJSON *doc = cJSON_ParseWithLength(line, n);
        const char *e = doc ? json_string(doc, "error") : NULL;
        if (e) {
            sb_docker_one_line(e, msg, len);
            found = 1;
        }
        cJSON_Delete(doc);
        line += n;
        if (*line)
            line++;
    }
    return found;
}

int sb_docker_parse_memory(const char *s, int64_t *bytes)
{
    char *end;
    if (!s || !isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno)
        return -EINVAL;
    unsigned shift = 0;
    switch (tolower((unsigned char)*end)) {
    case '\0':
    case 'b':
        break;
    case 'k':
        shift = 10;
        break;
    case 'm':
        shift = 20;
        break;
    case 'g':
        shift = 30;
        break;
    default:
        return -EINVAL;
    }
    if (*end && end[1] && !(tolower((unsigned char)end[1]) == 'b' && !end[2] && shift))
        return -EINVAL; /* "256m" and "256mb" only */
    if (v > ((unsigned long long)INT64_MAX >> shift))
        return -EINVAL;
    *bytes = (int64_t)(v << shift);
    return 0;
}

int sb_docker_socket_path(const char *what, const char *value, char *path, size_t len, char *err,
                          size_t errlen)
{
    const char *p = value;
    if (strncmp(p, "unix://", 7) == 0)
        p += 7;
    else if (strstr(p, "://")) {
        snprintf(err, errlen, "%s: only a unix socket is supported (unix:///path), got '%s'", what,
                 value);
        return -EINVAL;
    }
    if (*p != '/') {
        snprintf(err, errlen, "%s: the socket must be an absolute path, got '%s'", what, value);
        return -EINVAL;
    }
    if (strlen(p) >= len || strlen(p) >= 108) {
        snprintf(err, errlen, "%s: the socket path is too long", what);
        return -EINVAL;
    }
    snprintf(path, len, "%s", p);
    return 0;
}

static int add_pairs(cJSON *obj, const char *const *keys, const char *const *values, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!cJSON_AddStringToObject(obj, keys[i], values[i]))
            return -1;
    return 0;
}

/* One item with white space or a shell character is a shell line (as HEALTHCHECK CMD <line>);
 * otherwise the items are an argv, run without a shell (an image need not have one). */
static int is_shell_line(const sb_docker_health *h)
{
    return h->ncmd == 1 && strpbrk(h->cmd[0], " \t\n|&;<>()$`\\\"'*?[#~") != NULL;
}

static int add_healthcheck(cJSON *body, const sb_docker_health *h)
{
    cJSON *hc = cJSON_AddObjectToObject(body, "Healthcheck");
    cJSON *test = hc ? cJSON_AddArrayToObject(hc, "Test") : NULL;
    if (!test)
        return -1;
    int shell = is_shell_line(h);
    cJSON *kind = cJSON_CreateString(shell ? "CMD-SHELL" : "CMD");
    if (!kind)
        return -1;
    cJSON_AddItemToArray(test, kind);
    for (size_t i = 0; i < h->ncmd; i++) {
        cJSON *item = cJSON_CreateString(h->cmd[i]);
        if (!item)
            return -1;
        cJSON_AddItemToArray(test, item);
    }
    /* Nanoseconds; 0 would mean "the image's", so the options' defaults are always sent. */
    if (!cJSON_AddNumberToObject(hc, "Interval", (double)h->interval_ns) ||
        !cJSON_AddNumberToObject(hc, "Timeout", (double)h->timeout_ns) ||
        !cJSON_AddNumberToObject(hc, "Retries", h->retries) ||
        !cJSON_AddNumberToObject(hc, "StartPeriod", (double)h->start_period_ns))
        return -1;
    return 0;
}

char *sb_docker_create_body(const sb_docker_spec *s)
{
    cJSON *b = cJSON_CreateObject();
    cJSON *hc = cJSON_CreateObject();
    cJSON *labels = cJSON_CreateObject();
    char *text = NULL;
    if (!b || !hc || !labels) {
        cJSON_Delete(b);
        cJSON_Delete(hc);
        cJSON_Delete(labels);
        return NULL;
    }
    int labels_in = 0, hc_in = 0; /* attached to b, which then frees them */
    if (!cJSON_AddStringToObject(b, "Image", s->image))
        goto out;
    if (s->ncmd) {
        cJSON *cmd = cJSON_CreateStringArray(s->cmd, (int)s->ncmd);
        if (!cmd)
            goto out;
        cJSON_AddItemToObject(b, "Cmd", cmd);
    }
    if (s->nenv) {
        cJSON *env = cJSON_AddArrayToObject(b, "Env");
        for (size_t i = 0; env && i < s->nenv; i++) {
            size_t n = strlen(s->env_keys[i]) + strlen(s->env_values[i]) + 2;
            char *kv = malloc(n);
            if (!kv)
                goto out;
            snprintf(kv, n, "%s=%s", s->env_keys[i], s->env_values[i]);
            cJSON *item = cJSON_CreateString(kv);
            free(kv);
            if (!item)
                goto out;
            cJSON_AddItemToArray(env, item);
        }
        if (!env)
            goto out;
    }
    if (add_pairs(labels, s->label_keys, s->label_values, s->nlabels) != 0 ||
        !cJSON_AddStringToObject(labels, SB_DOCKER_OWNER_LABEL, s->scaler_id))
        goto out;
    cJSON_AddItemToObject(b, "Labels", labels);
    labels_in = 1;
    if (s->port > 0) {
        char key[16];
        snprintf(key, sizeof key, "%d/tcp", s->port);
        cJSON *exposed = cJSON_AddObjectToObject(b, "ExposedPorts");
        if (!exposed || !cJSON_AddObjectToObject(exposed, key))
            goto out;
        if (!s->network) {
            /* HostPort "": Docker picks a free one; inspect tells which. */
            cJSON *pb = cJSON_AddObjectToObject(hc, "PortBindings");
            cJSON *list = pb ? cJSON_AddArrayToObject(pb, key) : NULL;
            cJSON *bind = cJSON_CreateObject();
            if (!list || !bind) {
                cJSON_Delete(bind);
                goto out;
            }
            cJSON_AddItemToArray(list, bind);
            if (!cJSON_AddStringToObject(bind, "HostIp", s->host_ip ? s->host_ip : "") ||
                !cJSON_AddStringToObject(bind, "HostPort", ""))
                goto out;
        }
    }
    cJSON_AddItemToObject(b, "HostConfig", hc);
    hc_in = 1;
    if (s->network && !cJSON_AddStringToObject(hc, "NetworkMode", s->network))
        goto out;
    if (s->memory > 0 && !cJSON_AddNumberToObject(hc, "Memory", (double)s->memory))
        goto out;
    if (s->nano_cpus > 0 && !cJSON_AddNumberToObject(hc, "NanoCpus", (double)s->nano_cpus))
        goto out;
    if (!cJSON_AddBoolToObject(hc, "Init", s->init ? 1 : 0))
        goto out;
    if (s->health.ncmd && add_healthcheck(b, &s->health) != 0)
        goto out;
    text = cJSON_PrintUnformatted(b);
out:
    if (!labels_in)
        cJSON_Delete(labels);
    if (!hc_in)
        cJSON_Delete(hc);
    cJSON_Delete(b);
    return text;
}

void sb_docker_image_ref(const char *image, char *from, size_t fromlen, char *tag, size_t taglen)
{
    const char *slash = strrchr(image, '/');
    const char *name = slash ? slash + 1 : image;
    const char *colon = strrchr(name, ':');
    if (strchr(image, '@')) {
        snprintf(from, fromlen, "%s", image);
        snprintf(tag, taglen, "%s", "");
    } else if (colon) {
        snprintf(from, fromlen, "%.*s", (int)(colon - image), image);
        snprintf(tag, taglen, "%s", colon + 1);
    } else {
        snprintf(from, fromlen, "%s", image);
        snprintf(tag, taglen, "%s", "latest");
    }
}

int sb_docker_name_index(const char *name, const char *prefix)
{
    size_t pl = strlen(prefix);
    if (strncmp(name, prefix, pl) != 0 || name[pl] != '-' || !isdigit((unsigned char)name[pl + 1]))
        return -1;
    char *end;
    long v = strtol(name + pl + 1, &end, 10);
    if (*end != '-' || v < 0 || v > 1000000)
        return -1;
    return (int)v;
}
