/*
 * marathon_api.c - Marathon's replies read and its request bodies written (marathon_api.h).
 * Pure: no host, no clock but what the caller passes, so the unit tests and the fuzzer drive it
 * with bytes alone.
 */
#define _DEFAULT_SOURCE /* timegm */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "marathon_api.h"

void sb_marathon_one_line(const char *s, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t k = 0;
    for (; s && *s && k + 1 < outlen; s++)
        out[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[k] = '\0';
}

/* ---- times ------------------------------------------------------------------------------- */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int64_t sb_marathon_parse_time(const char *s)
{
    if (!s || strlen(s) < 20)
        return 0;
    int y, mo, d, h, mi, se;
    if (digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &se))
        return 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return 0;
    const char *p = s + 19;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            ;
    int64_t offset = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return 0;
        offset = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return 0;
    }
    if (*p)
        return 0;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return 0;
    return (int64_t)t - offset;
}

/* ---- tasks ------------------------------------------------------------------------------- */

sb_member_state sb_marathon_task_state(const char *state, int health_checks, int healthy, int *live)
{
    *live = 0;
    if (!state)
        return SB_MEMBER_FAILED;
    if (strcmp(state, "TASK_STAGING") == 0 || strcmp(state, "TASK_STARTING") == 0) {
        *live = 1;
        return SB_MEMBER_STARTING;
    }
    if (strcmp(state, "TASK_RUNNING") == 0) {
        *live = 1;
        return !health_checks || healthy ? SB_MEMBER_READY : SB_MEMBER_STARTING;
    }
    if (strcmp(state, "TASK_KILLING") == 0 || strcmp(state, "TASK_KILLED") == 0 ||
        strcmp(state, "TASK_FINISHED") == 0)
        return SB_MEMBER_STOPPING;
    /* TASK_FAILED, TASK_LOST, TASK_ERROR, TASK_DROPPED, TASK_GONE, TASK_UNREACHABLE,
     * TASK_GONE_BY_OPERATOR, TASK_UNKNOWN, and any state this version does not know. */
    return SB_MEMBER_FAILED;
}

static const char *str_field(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Healthy: at least one result, and every result says alive: true. */
static int all_alive(const cJSON *task)
{
    const cJSON *hr = cJSON_GetObjectItemCaseSensitive(task, "healthCheckResults");
    if (!cJSON_IsArray(hr) || cJSON_GetArraySize(hr) == 0)
        return 0;
    const cJSON *r;
    cJSON_ArrayForEach(r, hr)
    {
        const cJSON *alive = cJSON_GetObjectItemCaseSensitive(r, "alive");
        if (!cJSON_IsTrue(alive))
            return 0;
    }
    return 1;
}

static int read_task(const cJSON *t, int health_checks, sb_marathon_task *out, size_t i, char *err,
                     size_t errlen)
{
    if (!cJSON_IsObject(t)) {
        snprintf(err, errlen, "app.tasks[%zu] is not an object", i);
        return -EINVAL;
    }
    const char *id = str_field(t, "id");
    if (!id || !*id || strlen(id) >= SB_MARATHON_ID_MAX) {
        snprintf(err, errlen, "app.tasks[%zu].id is not a task id", i);
        return -EINVAL;
    }
    sb_marathon_one_line(id, out->id, sizeof out->id);
    const char *host = str_field(t, "host");
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(t, "ports");
    const cJSON *port0 = cJSON_IsArray(ports) ? cJSON_GetArrayItem(ports, 0) : NULL;
    char h[256];
    sb_marathon_one_line(host ? host : "", h, sizeof h);
    if (h[0] && cJSON_IsNumber(port0) && port0->valuedouble >= 0 && port0->valuedouble <= 65535)
        snprintf(out->address, sizeof out->address, "%s:%d", h, (int)port0->valuedouble);
    else
        snprintf(out->address, sizeof out->address, "%s", h);
    out->state =
        sb_marathon_task_state(str_field(t, "state"), health_checks, all_alive(t), &out->live);
    out->started_at = sb_marathon_parse_time(str_field(t, "startedAt"));
    if (!out->started_at)
        out->started_at = sb_marathon_parse_time(str_field(t, "stagedAt"));
    return 0;
}

void sb_marathon_app_free(sb_marathon_app *app)
{
    if (!app)
        return;
    free(app->tasks);
    memset(app, 0, sizeof *app);
}

int sb_marathon_parse_app(const char *body, size_t len, sb_marathon_app *out, char *err,
                          size_t errlen)
{
    memset(out, 0, sizeof *out);
    cJSON *root = body ? cJSON_ParseWithLength(body, len) : NULL;
    if (!root) {
        char first[80];
        size_t k = 0; /* the body is len bytes, not a string */
        for (size_t i = 0; body && i < len && body[i] && k + 1 < sizeof first; i++)
            first[k++] = ((unsigned char)body[i] < 0x20 || body[i] == 0x7f) ? '?' : body[i];
        first[k] = '\0';
        snprintf(err, errlen, "the reply is not JSON (\"%s\")", first);
        return -EINVAL;
    }
    int rc = -EINVAL;
    const cJSON *app = cJSON_GetObjectItemCaseSensitive(root, "app");
    const cJSON *inst = cJSON_GetObjectItemCaseSensitive(app, "instances");
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(app, "tasks");
    const cJSON *hc = cJSON_GetObjectItemCaseSensitive(app, "healthChecks");
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(app, "deployments");
    if (!cJSON_IsObject(app)) {
        snprintf(err, errlen, "the reply has no \"app\" object");
        goto out;
    }
    if (!cJSON_IsNumber(inst) || !isfinite(inst->valuedouble) || inst->valuedouble < 0 ||
        inst->valuedouble > 1e9 || inst->valuedouble != floor(inst->valuedouble)) {
        snprintf(err, errlen, "app.instances is not a count");
        goto out;
    }
    if (tasks && !cJSON_IsArray(tasks)) {
        snprintf(err, errlen, "app.tasks is not a list");
        goto out;
    }
    if (hc && !cJSON_IsArray(hc) && !cJSON_IsNull(hc)) {
        snprintf(err, errlen, "app.healthChecks is not a list");
        goto out;
    }
    int n = tasks ? cJSON_GetArraySize(tasks) : 0;
    if (n > SB_MARATHON_TASKS_MAX) {
        snprintf(err, errlen, "app.tasks: %d tasks, more than the %d read", n,
                 SB_MARATHON_TASKS_MAX);
        goto out;
    }
    out->instances = (int64_t)inst->valuedouble;
    out->health_checks = cJSON_IsArray(hc) && cJSON_GetArraySize(hc) > 0;
    out->deployments = cJSON_IsArray(deps) ? cJSON_GetArraySize(deps) : 0;
    if (n > 0) {
        out->tasks = calloc((size_t)n, sizeof *out->tasks);
        if (!out->tasks) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
            goto out;
        }
    }
    size_t i = 0;
    const cJSON *t;
    cJSON_ArrayForEach(t, tasks)
    {
        if (read_task(t, out->health_checks, &out->tasks[i], i, err, errlen) != 0)
            goto out;
        i++;
    }
    out->ntasks = i;
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc != 0)
        sb_marathon_app_free(out);
    return rc;
}

/* ---- errors ------------------------------------------------------------------------------ */

void sb_marathon_error_message(const char *body, size_t len, char *out, size_t outlen)
{
    if (!outlen)
        return;
    out[0] = '\0';
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    const char *msg = str_field(root, "message");
    if (msg) {
        char m[300], detail[200] = "";
        sb_marathon_one_line(msg, m, sizeof m);
        /* 422: {"message":"Object is not valid","details":[{"path":"/instances","errors":[..]}]} */
        const cJSON *details = cJSON_GetObjectItemCaseSensitive(root, "details");
        const cJSON *d0 = cJSON_IsArray(details) ? cJSON_GetArrayItem(details, 0) : NULL;
        const char *path = str_field(d0, "path");
        const cJSON *errs = cJSON_GetObjectItemCaseSensitive(d0, "errors");
        const cJSON *e0 = cJSON_IsArray(errs) ? cJSON_GetArrayItem(errs, 0) : NULL;
        if (path && cJSON_IsString(e0)) {
            char p[80], e[100];
            sb_marathon_one_line(path, p, sizeof p);
            sb_marathon_one_line(e0->valuestring, e, sizeof e);
            snprintf(detail, sizeof detail, " (%s: %s)", p, e);
        }
        snprintf(out, outlen, "%s%s", m, detail);
    } else if (body && len) {
        char first[200];
        size_t k = 0;
        for (size_t i = 0;
             i < len && body[i] && body[i] != '\n' && body[i] != '\r' && k + 1 < sizeof first; i++)
            first[k++] = body[i];
        first[k] = '\0';
        sb_marathon_one_line(first, out, outlen);
    }
    cJSON_Delete(root);
    if (!out[0])
        snprintf(out, outlen, "no message");
}

int sb_marathon_is_locked(long status, const char *body, size_t len, char *dep, size_t deplen)
{
    if (deplen)
        dep[0] = '\0';
    if (status != 409 || !body || !len)
        return 0;
    cJSON *root = cJSON_ParseWithLength(body, len);
    const char *msg = str_field(root, "message");
    const cJSON *deps = cJSON_GetObjectItemCaseSensitive(root, "deployments");
    int locked = (msg && strstr(msg, "locked by")) || cJSON_IsArray(deps);
    const cJSON *d0 = cJSON_IsArray(deps) ? cJSON_GetArrayItem(deps, 0) : NULL;
    const char *id = str_field(d0, "id");
    if (locked && id && deplen)
        sb_marathon_one_line(id, dep, deplen);
    cJSON_Delete(root);
    return locked;
}

/* ---- app ids, kill bodies ---------------------------------------------------------------- */

int sb_marathon_app_id(const char *in, char *out, size_t outlen, char *err, size_t errlen)
{
    char shown[80];
    sb_marathon_one_line(in ? in : "", shown, sizeof shown);
    if (!in || !*in || strcmp(in, "/") == 0) {
        snprintf(err, errlen, "app: an app id such as /team/web, got '%s'", shown);
        return -EINVAL;
    }
    size_t k = 0;
    if (*in != '/' && k + 1 < outlen)
        out[k++] = '/';
    const char *seg = NULL; /* the segment being read */
    for (const char *p = in; *p; p++) {
        char c = *p;
        if (c == '/') {
            if (seg && (p[-1] == '-' || p[-1] == '.')) {
                snprintf(err, errlen, "app: a segment of '%s' ends with '%c'", shown, p[-1]);
                return -EINVAL;
            }
            if (p != in && p[-1] == '/') {
                snprintf(err, errlen, "app: '%s' has an empty segment", shown);
                return -EINVAL;
            }
            seg = NULL;
        } else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
            seg = seg ? seg : p;
        } else if ((c == '-' || c == '.') && seg) {
            /* inside a segment only */
        } else {
            snprintf(err, errlen,
                     "app: '%s' is not an app id (segments of a-z, 0-9, '-' and '.', such as "
                     "/team/web)",
                     shown);
            return -EINVAL;
        }
        if (k + 1 >= outlen || k + 1 >= SB_MARATHON_ID_MAX) {
            snprintf(err, errlen, "app: '%s...' is too long", shown);
            return -EINVAL;
        }
        out[k++] = c;
    }
    while (k > 1 && out[k - 1] == '/')
        k--;
    out[k] = '\0';
    if (k > 1 && (out[k - 1] == '-' || out[k - 1] == '.')) {
        snprintf(err, errlen, "app: a segment of '%s' ends with '%c'", shown, out[k - 1]);
        return -EINVAL;
    }
    return 0;
}

typedef struct by_age {
    int64_t started_at;
    size_t index;
} by_age;

/* Newest first: the later start, then the later position in the list. */
static int newer_first(const void *a, const void *b)
{
    const by_age *x = a, *y = b;
    if (x->started_at != y->started_at)
        return x->started_at < y->started_at ? 1 : -1;
    return x->index < y->index ? 1 : x->index > y->index ? -1 : 0;
}

size_t sb_marathon_newest(const sb_marathon_task *tasks, size_t n, size_t k, size_t *idx)
{
    if (!n || !k)
        return 0;
    by_age *v = calloc(n, sizeof *v);
    if (!v)
        return 0;
    size_t live = 0;
    for (size_t i = 0; i < n; i++)
        if (tasks[i].live)
            v[live++] = (by_age){tasks[i].started_at, i};
    if (live > 1)
        qsort(v, live, sizeof *v, newer_first);
    size_t got = live < k ? live : k;
    for (size_t i = 0; i < got; i++)
        idx[i] = v[i].index;
    free(v);
    return got;
}

char *sb_marathon_kill_body(const char *const *ids, size_t n)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = root ? cJSON_AddArrayToObject(root, "ids") : NULL;
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *s = cJSON_CreateString(ids[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            arr = NULL;
        }
    }
    char *text = arr ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return text;
}
