/*
 * marathon.c - the marathon scaler: the instance count of one Marathon app, through Marathon's
 * REST API on the host's HTTP client, on the fleet contract (scalebus/scaler.h) as an engine
 * that keeps its own count (set_count and sb_fleet_listed_count):
 *
 *   list       GET /v2/apps/{id}?embed=app.tasks: the app's `instances` is the count, its tasks
 *              are the members (id, host:first port, state and health, startedAt)
 *   set_count  GET /v2/apps/{id}?embed=app.tasks again (the app must still exist), then
 *              PUT /v2/apps/{id} {"instances": N} (?force=true with force), or, scaling down
 *              with kill_tasks: newest, POST /v2/tasks/delete?scale=true {"ids": [newest...]}
 *
 * A PUT on an id Marathon does not know creates an app: so no PUT is sent unless the last list
 * and a GET right before it found the app, and a 404 is a failure that says scalebus never
 * creates one. A 409 "locked
 * by deployment" is busy (retried by the fleet, not counted as a failure) unless force is set.
 * Replies are read by marathon_api.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "marathon_api.h"
#include "scalebus/plugin.h"
#include "scalebus/poll.h"
#include "scalebus/scaler.h"

enum {
    OPT_URL,
    OPT_APP,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_TOKEN,
    OPT_TOKEN_HEADER,
    OPT_TIMEOUT,
    OPT_FORCE,
    OPT_KILL_TASKS,
    OPT_TLS_VERIFY,
    OPT_RECONCILE_EVERY /* SB_FLEET_OPTIONS from here */
};

static const sb_option_spec marathon_options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "Marathon's base URL (\"http://marathon.mesos:8080\")"},
    {"app", SB_OPT_STRING, NULL, 1,
     "the app's id (\"/team/web\"); it must exist: scalebus never creates an app"},
    {"username", SB_OPT_STRING, NULL, 0, "HTTP basic authentication: the user"},
    {"password", SB_OPT_STRING, NULL, 0,
     "HTTP basic authentication: the password (use ${ENV} to keep it out of the file)"},
    {"token", SB_OPT_STRING, NULL, 0,
     "a token sent as the value of token_header, as given (\"token=${DCOS_TOKEN}\")"},
    {"token_header", SB_OPT_STRING, "Authorization", 0, "the header that carries the token"},
    {"timeout", SB_OPT_DURATION, "10s", 0, "how long one request may take"},
    {"force", SB_OPT_BOOL, "false", 0,
     "send ?force=true: a change overrides the deployment in progress instead of waiting"},
    {"kill_tasks", SB_OPT_STRING, "marathon", 0,
     "scaling down: marathon (it picks the tasks) or newest (the newest tasks, through "
     "/v2/tasks/delete?scale=true)"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify Marathon's TLS certificate and host name"},
    SB_FLEET_OPTIONS("keep"),
    {NULL, 0, NULL, 0, NULL}};

#define MARATHON_MAX_BODY (16u << 20) /* an app with thousands of tasks */
#define MARATHON_URL_MAX 2048

/* OP_CHECK: the GET that makes sure the app exists right before a change. */
typedef enum marathon_op { OP_NONE, OP_LIST, OP_CHECK, OP_PUT, OP_KILL } marathon_op;

typedef struct marathon {
    sb_fleet *fleet; /* first: sb_fleet_scaler_on_event */
    sb_instance *inst;
    const sb_host *host;
    char url[MARATHON_URL_MAX]; /* without a trailing '/' */
    char app[SB_MARATHON_ID_MAX];
    const char *username, *password;
    sb_label headers[3];
    size_t nheaders;
    uint64_t timeout_ms;
    int force, kill_newest, insecure;

    marathon_op op;
    sb_http *inflight;
    char what[MARATHON_URL_MAX + 700]; /* "PUT http://.../v2/apps/team/web", for messages */

    /* The last list: the app was there, its count and live tasks. */
    int app_present;
    sb_marathon_app last;
    int64_t want; /* the count set_count is making */
} marathon;

/* ---- requests ---------------------------------------------------------------------------- */

static void op_end(marathon *m, sb_action_result why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the call in flight: a list answers with sb_fleet_list_failed, an action with
 * sb_fleet_action_done. */
static void op_end(marathon *m, sb_action_result why, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    marathon_op op = m->op;
    m->op = OP_NONE;
    m->inflight = NULL;
    if (op == OP_LIST)
        sb_fleet_list_failed(m->fleet, why, "%s", msg);
    else if (op != OP_NONE)
        sb_fleet_action_done(m->fleet, why, "%s", msg);
}

static int send_req(marathon *m, const char *method, const char *path_query, const char *body,
                    sb_http_cb cb)
{
    char url[MARATHON_URL_MAX + 600];
    snprintf(url, sizeof url, "%s%s", m->url, path_query);
    snprintf(m->what, sizeof m->what, "%s %s", method, url);
    sb_label headers[5];
    size_t nh = 0;
    for (size_t i = 0; i < m->nheaders; i++)
        headers[nh++] = m->headers[i];
    if (body)
        headers[nh++] = (sb_label){"Content-Type", "application/json"};
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = method,
                           .url = url,
                           .headers = headers,
                           .nheaders = nh,
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .timeout_ms = m->timeout_ms,
                           .max_body = MARATHON_MAX_BODY,
                           .insecure = m->insecure,
                           .username = m->username,
                           .password = m->password};
    int rc = m->host->http_request(m->inst, &req, cb, m, &m->inflight);
    if (rc < 0) {
        m->inflight = NULL;
        op_end(m, SB_ACTION_FAILED, "%s: cannot send the request (%s)", m->what, strerror(-rc));
    }
    return rc;
}

/* A reply that is not a success: no reply at all, the deployment lock (busy), the app missing,
 * the credentials refused, or Marathon's own message. */
static void fail_reply(marathon *m, const sb_http_response *res)
{
    char msg[400], dep[128];
    if (res->error) {
        const char *why = res->error == -ECONNREFUSED           ? "connection refused"
                          : res->error == -ETIMEDOUT            ? "timed out"
                          : res->error_text && *res->error_text ? res->error_text
                                                                : strerror(-res->error);
        sb_marathon_one_line(why, msg, sizeof msg);
        return op_end(m, SB_ACTION_FAILED, "cannot reach Marathon at %s: %s", m->url, msg);
    }
    sb_marathon_error_message(res->body, res->body_len, msg, sizeof msg);
    if (sb_marathon_is_locked(res->status, res->body, res->body_len, dep, sizeof dep))
        return op_end(m, SB_ACTION_BUSY,
                      "app %s is locked by deployment %s (force: true overrides)", m->app,
                      dep[0] ? dep : "(unnamed)");
    if (res->status == 404 && (m->op == OP_LIST || m->op == OP_CHECK))
        return op_end(m, SB_ACTION_FAILED, "app %s does not exist (scalebus never creates one)",
                      m->app);
    if (res->status == 401)
        return op_end(m, SB_ACTION_FAILED, "%s: HTTP 401: the credentials were refused (%s): %s",
                      m->what,
                      m->username       ? "username, password"
                      : m->nheaders > 1 ? "token"
                                        : "Marathon wants credentials: username/password or token",
                      msg);
    if (res->status == 403)
        return op_end(m, SB_ACTION_FAILED, "%s: HTTP 403: access forbidden%s%s: %s", m->what,
                      m->username ? " to user " : "", m->username ? m->username : "", msg);
    op_end(m, SB_ACTION_FAILED, "%s: HTTP %ld: %s", m->what, res->status, msg);
}

/* ---- list -------------------------------------------------------------------------------- */

static void app_path(const marathon *m, char *out, size_t len)
{
    snprintf(out, len, "/v2/apps%s", m->app);
}

static void list_done(void *arg, const sb_http_response *res)
{
    marathon *m = arg;
    m->inflight = NULL;
    char err[300];
    if (res->error || res->status != 200) {
        if (res->status == 404)
            m->app_present = 0;
        return fail_reply(m, res);
    }
    sb_marathon_app app;
    if (sb_marathon_parse_app(res->body, res->body_len, &app, err, sizeof err) != 0)
        return op_end(m, SB_ACTION_FAILED, "%s: %s", m->what, err);
    sb_member *ms = app.ntasks ? calloc(app.ntasks, sizeof *ms) : NULL;
    if (app.ntasks && !ms) {
        sb_marathon_app_free(&app);
        return op_end(m, SB_ACTION_FAILED, "out of memory");
    }
    for (size_t i = 0; i < app.ntasks; i++)
        ms[i] = (sb_member){.id = app.tasks[i].id,
                            .address = app.tasks[i].address[0] ? app.tasks[i].address : NULL,
                            .state = app.tasks[i].state,
                            .started_at = app.tasks[i].started_at};
    sb_marathon_app_free(&m->last);
    m->last = app; /* kept for kill_tasks: newest */
    m->app_present = 1;
    m->op = OP_NONE;
    sb_fleet_listed_count(m->fleet, ms, app.ntasks, app.instances);
    free(ms);
}

static void marathon_list(void *self, sb_fleet *f)
{
    marathon *m = self;
    if (m->op != OP_NONE)
        return sb_fleet_list_failed(f, SB_ACTION_BUSY, "a call is still in flight");
    m->op = OP_LIST;
    m->app_present = 0; /* until this list says so */
    char path[SB_MARATHON_ID_MAX + 64];
    app_path(m, path, sizeof path);
    strcat(path, "?embed=app.tasks");
    send_req(m, "GET", path, NULL, list_done);
}

/* ---- set count --------------------------------------------------------------------------- */

static void change_done(void *arg, const sb_http_response *res)
{
    marathon *m = arg;
    m->inflight = NULL;
    if (!res->error && res->status == 201) /* never expected: the app was listed just before */
        return op_end(m, SB_ACTION_FAILED, "%s: HTTP 201: Marathon created app %s", m->what,
                      m->app);
    if (res->error || res->status < 200 || res->status > 299)
        return fail_reply(m, res);
    m->op = OP_NONE;
    sb_fleet_action_done(m->fleet, SB_ACTION_DONE, "done");
}

/* The newest live tasks to kill to reach n, or 0 when a PUT is the call: Marathon picks, the
 * count goes up, or no live task is beyond n (the rest are not launched yet). */
static size_t pick_kills(const marathon *m, int64_t n, size_t *idx, size_t cap)
{
    if (!m->kill_newest || n >= m->last.instances)
        return 0;
    size_t live = 0;
    for (size_t i = 0; i < m->last.ntasks; i++)
        live += m->last.tasks[i].live != 0;
    if ((int64_t)live <= n)
        return 0;
    size_t k = live - (size_t)n;
    /* Never below n: instances - k >= n since live <= instances, or the count drops further. */
    if ((int64_t)k > m->last.instances - n)
        k = (size_t)(m->last.instances - n);
    if (k > cap)
        k = cap;
    return sb_marathon_newest(m->last.tasks, m->last.ntasks, k, idx);
}

/* The call set_count(n) makes: method, path and query, body (malloc'd). */
static int plan(const marathon *m, int64_t n, const char **method, char *path, size_t plen,
                char **body)
{
    *body = NULL;
    size_t cap = m->last.ntasks ? m->last.ntasks : 1;
    size_t *idx = calloc(cap, sizeof *idx);
    const char **ids = calloc(cap, sizeof *ids);
    if (!idx || !ids) {
        free(idx);
        free(ids);
        return -ENOMEM;
    }
    size_t k = pick_kills(m, n, idx, cap);
    if (k) {
        for (size_t i = 0; i < k; i++)
            ids[i] = m->last.tasks[idx[i]].id;
        *method = "POST";
        snprintf(path, plen, "/v2/tasks/delete?scale=true%s", m->force ? "&force=true" : "");
        *body = sb_marathon_kill_body(ids, k);
    } else {
        *method = "PUT";
        char app[SB_MARATHON_ID_MAX + 16];
        app_path(m, app, sizeof app);
        snprintf(path, plen, "%s%s", app, m->force ? "?force=true" : "");
        *body = malloc(48);
        if (*body)
            snprintf(*body, 48, "{\"instances\":%lld}", (long long)n);
    }
    free(idx);
    free(ids);
    return *body ? 0 : -ENOMEM;
}

/* The app, read again right before the change: the fleet acts on a new desired count with the
 * list it made last (up to reconcile_every ago), and a PUT on an app deleted since would create
 * it again. What is left is one round trip between this GET and the PUT: Marathon's API has no
 * conditional update. */
static void check_done(void *arg, const sb_http_response *res)
{
    marathon *m = arg;
    m->inflight = NULL;
    char err[300];
    if (res->error || res->status != 200) {
        m->app_present = 0;
        return fail_reply(m, res);
    }
    sb_marathon_app app;
    if (sb_marathon_parse_app(res->body, res->body_len, &app, err, sizeof err) != 0)
        return op_end(m, SB_ACTION_FAILED, "%s: %s", m->what, err);
    sb_marathon_app_free(&m->last);
    m->last = app;
    m->app_present = 1;
    if (app.instances == m->want) { /* someone made it already: no second change */
        m->op = OP_NONE;
        return sb_fleet_action_done(m->fleet, SB_ACTION_DONE, "done");
    }
    const char *method;
    char path[SB_MARATHON_ID_MAX + 64];
    char *body;
    if (plan(m, m->want, &method, path, sizeof path, &body) != 0)
        return op_end(m, SB_ACTION_FAILED, "out of memory");
    m->op = strcmp(method, "PUT") == 0 ? OP_PUT : OP_KILL;
    send_req(m, method, path, body, change_done);
    free(body);
}

static void marathon_set_count(void *self, sb_fleet *f, int64_t n)
{
    marathon *m = self;
    if (m->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    /* A PUT on an unknown id creates the app: never without a list that found it, and a GET
     * right before. */
    if (!m->app_present)
        return sb_fleet_action_done(f, SB_ACTION_FAILED,
                                    "app %s does not exist (scalebus never creates one)", m->app);
    m->op = OP_CHECK;
    m->want = n;
    char path[SB_MARATHON_ID_MAX + 64];
    app_path(m, path, sizeof path);
    strcat(path, "?embed=app.tasks");
    send_req(m, "GET", path, NULL, check_done);
}

/* ---- describe, cancel -------------------------------------------------------------------- */

static void marathon_describe(void *self, sb_fleet_call call, const char *id, int64_t n, char *buf,
                              size_t len)
{
    marathon *m = self;
    (void)call;
    (void)id;
    const char *method;
    char path[SB_MARATHON_ID_MAX + 64];
    char *body;
    if (plan(m, n, &method, path, sizeof path, &body) != 0) {
        snprintf(buf, len, "set count %lld", (long long)n);
        return;
    }
    snprintf(buf, len, "%s %s%s %s", method, m->url, path, body);
    free(body);
}

static void marathon_cancel(void *self)
{
    marathon *m = self;
    if (m->inflight)
        m->host->http_cancel(m->inst, m->inflight);
    m->inflight = NULL;
    m->op = OP_NONE;
}

static const sb_fleet_ops marathon_ops = {
    .list = marathon_list,
    .set_count = marathon_set_count,
    .describe = marathon_describe,
    .cancel = marathon_cancel,
};

/* ---- create, lifecycle ------------------------------------------------------------------- */

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* An HTTP header name: an RFC 9110 token. */
static int header_name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return 0;
    return 1;
}

static int read_options(marathon *m, const sb_value *v, char *err, size_t errlen)
{
    const char *url = v[OPT_URL].str;
    int rc = sb_http_url_check("url", url, err, errlen);
    if (rc < 0)
        return rc;
    size_t ul = strlen(url);
    if (ul >= sizeof m->url) {
        snprintf(err, errlen, "url: longer than %zu characters", sizeof m->url - 1);
        return -EINVAL;
    }
    memcpy(m->url, url, ul + 1);
    while (ul > 0 && m->url[ul - 1] == '/')
        m->url[--ul] = '\0';
    if (strchr(m->url, '?') || strchr(m->url, '#')) {
        snprintf(err, errlen, "url: Marathon's base URL, without a query (\"%s\")", m->url);
        return -EINVAL;
    }
    rc = sb_marathon_app_id(v[OPT_APP].str, m->app, sizeof m->app, err, errlen);
    if (rc < 0)
        return rc;

    int user = v[OPT_USERNAME].is_set, pass = v[OPT_PASSWORD].is_set;
    if (user != pass) {
        snprintf(err, errlen, "%s: required with %s", user ? "password" : "username",
                 user ? "username" : "password");
        return -EINVAL;
    }
    if (user && v[OPT_TOKEN].is_set) {
        snprintf(err, errlen, "token: either username and password, or a token, not both");
        return -EINVAL;
    }
    if (user && (has_control(v[OPT_USERNAME].str) || strchr(v[OPT_USERNAME].str, ':'))) {
        snprintf(err, errlen, "username: no ':' or control characters");
        return -EINVAL;
    }
    m->username = user ? v[OPT_USERNAME].str : NULL;
    m->password = user ? v[OPT_PASSWORD].str : NULL;
    m->nheaders = 0;
    m->headers[m->nheaders++] = (sb_label){"Accept", "application/json"};
    const char *th = v[OPT_TOKEN_HEADER].is_set ? v[OPT_TOKEN_HEADER].str : "Authorization";
    if (!header_name_ok(th)) {
        snprintf(err, errlen, "token_header: '%s' is not a header name", th);
        return -EINVAL;
    }
    if (v[OPT_TOKEN].is_set) {
        const char *tok = v[OPT_TOKEN].str;
        if (!*tok || has_control(tok)) {
            snprintf(err, errlen, "token: %s",
                     *tok ? "the value holds a control character" : "empty (is its ${VAR} set?)");
            return -EINVAL;
        }
        m->headers[m->nheaders++] = (sb_label){th, tok};
    }
    m->timeout_ms = v[OPT_TIMEOUT].is_set ? v[OPT_TIMEOUT].duration_ms : 10000;
    if (m->timeout_ms < 100) {
        snprintf(err, errlen, "timeout: at least 100ms");
        return -EINVAL;
    }
    m->force = v[OPT_FORCE].is_set && v[OPT_FORCE].integer;
    const char *kt = v[OPT_KILL_TASKS].is_set ? v[OPT_KILL_TASKS].str : "marathon";
    if (strcmp(kt, "marathon") != 0 && strcmp(kt, "newest") != 0) {
        snprintf(err, errlen, "kill_tasks: marathon or newest, got '%s'", kt);
        return -EINVAL;
    }
    m->kill_newest = strcmp(kt, "newest") == 0;
    m->insecure = v[OPT_TLS_VERIFY].is_set && !v[OPT_TLS_VERIFY].integer;
    return 0;
}

static void marathon_destroy(void *state);

static int marathon_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                           void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request) || !SB_HOST_HAS(host, http_cancel)) {
        snprintf(err, errlen, "marathon: this daemon has no HTTP client (host version 3 needed)");
        return -ENOTSUP;
    }
    marathon *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    m->inst = inst;
    m->host = host;
    int rc = read_options(m, values, err, errlen);
    if (rc == 0)
        rc = sb_fleet_new(inst, host, &values[OPT_RECONCILE_EVERY], &marathon_ops, m, &m->fleet,
                          err, errlen);
    if (rc != 0) {
        marathon_destroy(m);
        return rc;
    }
    *state = m;
    return 0;
}

static int marathon_start(void *state)
{
    marathon *m = state;
    m->host->log(m->inst, SB_LOG_DEBUG, "Marathon at %s, app %s%s%s", m->url, m->app,
                 m->force ? ", force" : "", m->kill_newest ? ", kill_tasks newest" : "");
    return sb_fleet_start(m->fleet);
}

static int marathon_stop(void *state)
{
    return sb_fleet_stop(((marathon *)state)->fleet);
}

static void marathon_destroy(void *state)
{
    marathon *m = state;
    if (!m)
        return;
    sb_fleet_free(m->fleet); /* cancels the call in flight */
    if (m->inflight)
        m->host->http_cancel(m->inst, m->inflight);
    sb_marathon_app_free(&m->last);
    free(m);
}

/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {"token", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor marathon_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "marathon",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "the instance count of one Marathon app (Mesos), through Marathon's REST API",
    .options = marathon_options,
    .create = marathon_create,
    .start = marathon_start,
    .stop = marathon_stop,
    .destroy = marathon_destroy,
    .on_event = sb_fleet_scaler_on_event,
};

SB_PLUGIN_EXPORT(marathon_descriptor)
