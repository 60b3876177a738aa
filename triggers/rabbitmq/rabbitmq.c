/*
 * rabbitmq.c - the `rabbitmq` trigger plugin: a queue's depth (or consumers, or publish rate) as
 * readings, over one of two protocols.
 *
 * - protocol http (default): the management API, GET /api/queues/{vhost}/{queue} (an exact name)
 *   or GET /api/queues/{vhost} (a regular expression: one reading per matching queue), through
 *   the host's asynchronous HTTP client (sb_poller_http). The reply is read by rabbitmq_parse.c.
 * - protocol amqp: a passive queue.declare over AMQP 0-9-1 (rabbitmq_amqp.c, librabbitmq), which
 *   blocks: each read runs on a libuv worker thread (uv_queue_work) and reports on the loop thread
 *   in the after-work callback. The connection stays open between reads, owned by whichever side
 *   runs the work: only one work item exists at a time, so the reader is never shared.
 *
 * Readings are labelled queue=<name>. A failure is sb_poller_fail(), never a reading of 0.
 * The schedule, back-off and error events are the polling library's (scalebus/poll.h).
 */
#define _POSIX_C_SOURCE 200809L

#include <ctype.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <scalebus/plugin.h>
#include <scalebus/poll.h>

#include "rabbitmq_amqp.h"
#include "rabbitmq_parse.h"

enum {
    OPT_PROTOCOL,
    OPT_URL,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_VHOST,
    OPT_QUEUE,
    OPT_QUEUE_REGEX,
    OPT_MEASURE,
    OPT_TLS_VERIFY,
    OPT_EVERY, /* SB_POLL_OPTIONS: every, timeout, backoff_max */
};

static const sb_option_spec rabbitmq_options[] = {
    [OPT_PROTOCOL] = {"protocol", SB_OPT_STRING, "http", 0,
                      "http (the management API) or amqp (a passive queue.declare: fresh counts, "
                      "exact name, messages_ready or consumers)"},
    [OPT_URL] = {"url", SB_OPT_STRING, NULL, 1,
                 "http(s)://[user:password@]host:15672[/prefix] for http, "
                 "amqp://[user:password@]host:5672[/vhost] for amqp"},
    [OPT_USERNAME] = {"username", SB_OPT_STRING, NULL, 0,
                      "user to log in as, when the url has none (e.g. \"${RABBITMQ_USER}\")"},
    [OPT_PASSWORD] = {"password", SB_OPT_STRING, NULL, 0,
                      "its password, when the url has none (e.g. \"${RABBITMQ_PASSWORD}\")"},
    [OPT_VHOST] = {"vhost", SB_OPT_STRING, NULL, 0,
                   "http: the virtual host (default /); amqp: give it in the url"},
    [OPT_QUEUE] = {"queue", SB_OPT_STRING, NULL, 1,
                   "the queue's exact name, or a regular expression with queue_regex: true"},
    [OPT_QUEUE_REGEX] = {"queue_regex", SB_OPT_BOOL, "false", 0,
                         "http: queue is a POSIX extended regular expression, one reading per "
                         "queue it matches (anywhere in the name: anchor with ^ and $)"},
    [OPT_MEASURE] = {"measure", SB_OPT_STRING, "messages_ready", 0,
                     "messages_ready, messages, messages_unacknowledged, consumers or "
                     "publish_rate (amqp: messages_ready or consumers)"},
    [OPT_TLS_VERIFY] = {"tls_verify", SB_OPT_BOOL, "true", 0,
                        "https: verify the server's certificate and host name"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

enum { PROTO_HTTP, PROTO_AMQP };
enum { JOB_READ, JOB_CLOSE };

typedef struct rabbitmq_state {
    sb_poller *poller;
    sb_instance *inst;
    const sb_host *host;
    int protocol;
    sb_rabbitmq_measure measure;
    const char *queue; /* the option's value, alive until destroy */
    int use_regex;
    regex_t re;
    int re_compiled;

    /* http */
    char *api_url;   /* base + /api/queues/... + ?columns=... */
    char *shown_url; /* the same without the query, for error lines */
    char *vhost;     /* for error lines */
    char *username, *password;
    int insecure;

    /* amqp: the reader belongs to the worker while `busy` */
    sb_amqp_reader *reader;
    uv_work_t work;
    int busy;        /* a work item is queued or running */
    int job;         /* JOB_READ or JOB_CLOSE */
    int abandoned;   /* the poller cancelled the read in flight: report nothing */
    int read_wanted; /* a read came while an abandoned one still ran: start it after */
    int stopping;    /* stop() returned SB_PENDING: close, then host->stopped */
    uint64_t timeout_ms;
    int job_rc;
    uint32_t job_messages, job_consumers;
    char job_err[512];
} rabbitmq_state;

/* ---- URLs ---------------------------------------------------------------------------------- */

/* Percent-encode everything but RFC 3986's unreserved characters. NULL on allocation failure. */
static char *url_encode(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *o = out;
    if (!out)
        return NULL;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o = '\0';
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* n bytes of percent-encoded text, decoded into a new string; NULL for bad escapes or %00. */
static char *url_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            *o++ = s[i];
            continue;
        }
        int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
        int lo = i + 2 < n ? hexval(s[i + 2]) : -1;
        if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
            free(out);
            return NULL;
        }
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = '\0';
    return out;
}

/* Where the authority of scheme://authority/... ends, and its userinfo's '@' (or NULL). */
static const char *url_userinfo_at(const char *url, const char **authority)
{
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    size_t len = strcspn(a, "/?#");
    *authority = a;
    const char *at = NULL;
    for (size_t i = 0; i < len; i++)
        if (a[i] == '@')
            at = a + i; /* the last one: a password may hold an '@' only encoded, but be kind */
    return at;
}

/* http: split url into the API base (no credentials, no trailing '/') and its credentials. */
static int http_url_split(const char *url, char **base, char **user, char **password, char *err,
                          size_t errlen)
{
    const char *authority, *at;
    size_t slen;

    *base = *user = *password = NULL;
    if (strncmp(url, "http://", 7) == 0)
        slen = 7;
    else if (strncmp(url, "https://", 8) == 0)
        slen = 8;
    else {
        snprintf(err, errlen, "url: expected http:// or https:// with protocol http (got '%.*s')",
                 (int)strcspn(url, ":/"), url);
        return -EINVAL;
    }
    if (strpbrk(url, "?#")) {
        snprintf(err, errlen, "url: no query or fragment: the plugin adds /api/queues/... itself");
        return -EINVAL;
    }
    at = url_userinfo_at(url, &authority);
    if (at) {
        const char *colon = memchr(authority, ':', (size_t)(at - authority));
        size_t ulen = colon ? (size_t)(colon - authority) : (size_t)(at - authority);
        *user = url_decode(authority, ulen);
        *password = colon ? url_decode(colon + 1, (size_t)(at - colon - 1)) : strdup("");
        if (!*user || !*password) {
            free(*user);
            free(*password);
            *user = *password = NULL;
            snprintf(err, errlen, "url: bad percent-encoding in the user or password");
            return -EINVAL;
        }
    }
    const char *host = at ? at + 1 : authority;
    if (!*host || *host == '/' || *host == ':') {
        free(*user);
        free(*password);
        *user = *password = NULL;
        snprintf(err, errlen, "url: no host");
        return -EINVAL;
    }
    size_t rest = strlen(host);
    while (rest > 0 && host[rest - 1] == '/')
        rest--;
    *base = malloc(slen + rest + 1);
    if (!*base) {
        free(*user);
        free(*password);
        *user = *password = NULL;
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    memcpy(*base, url, slen);
    memcpy(*base + slen, host, rest);
    (*base)[slen + rest] = '\0';
    return 0;
}

/* The management API's URL for this queue (or the vhost's queues), with and without the query. */
static int http_build_urls(rabbitmq_state *st, const char *base, char *err, size_t errlen)
{
    char *ev = url_encode(st->vhost), *eq = st->use_regex ? NULL : url_encode(st->queue);
    size_t n;
    int rc = 0;

    if (!ev || (!st->use_regex && !eq)) {
        rc = -ENOMEM;
        goto out;
    }
    n = strlen(base) + strlen(ev) + (eq ? strlen(eq) : 0) + 32;
    st->shown_url = malloc(n);
    if (!st->shown_url) {
        rc = -ENOMEM;
        goto out;
    }
    snprintf(st->shown_url, n, "%s/api/queues/%s%s%s", base, ev, eq ? "/" : "", eq ? eq : "");
    n = strlen(st->shown_url) + sizeof "?columns=" SB_RABBITMQ_COLUMNS;
    st->api_url = malloc(n);
    if (!st->api_url) {
        rc = -ENOMEM;
        goto out;
    }
    snprintf(st->api_url, n, "%s?columns=%s", st->shown_url, SB_RABBITMQ_COLUMNS);
out:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    free(ev);
    free(eq);
    return rc;
}

/* ---- HTTP: the management API -------------------------------------------------------------- */

/* Up to 120 printable bytes of the body's error reason ({"error":..,"reason":..}), or its start. */
static void body_hint(const sb_http_response *res, char *out, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < res->body_len && n + 1 < len && n < 120; i++) {
        char c = res->body[i];
        if (c == '\n' || c == '\r')
            break;
        out[n++] = c >= 0x20 && c < 0x7f ? c : '?';
    }
    out[n] = '\0';
}

static void http_reply(void *arg, const sb_http_response *res)
{
    rabbitmq_state *st = arg;
    sb_poller *p = st->poller;
    sb_rabbitmq_result result;
    char err[300], hint[128];
    int rc;

    if (res->error) {
        sb_poller_fail(p, 0, "GET %s: %s", st->shown_url, res->error_text);
        return;
    }
    if (res->status == 401) {
        sb_poller_fail(p, 0,
                       "GET %s: HTTP 401: login refused for user '%s' (wrong username or "
                       "password, or a user without a management tag)",
                       st->shown_url, st->username);
        return;
    }
    if (res->status == 404) {
        if (st->use_regex)
            sb_poller_fail(p, 0, "vhost %s not found (GET %s: HTTP 404)", st->vhost, st->shown_url);
        else
            sb_poller_fail(p, 0, "queue %s not found in vhost %s", st->queue, st->vhost);
        return;
    }
    if (res->status < 200 || res->status >= 300) {
        body_hint(res, hint, sizeof hint);
        sb_poller_fail(p, sb_http_retry_after_ms(res), "GET %s: HTTP %ld%s%s", st->shown_url,
                       res->status, hint[0] ? ": " : "", hint);
        return;
    }
    rc = sb_rabbitmq_parse(res->body, res->body_len, st->measure, st->use_regex ? NULL : st->queue,
                           st->use_regex ? &st->re : NULL, &result, err, sizeof err);
    if (rc == -EAGAIN) {
        sb_poller_fail(p, 0, "%s", err); /* "queue jobs: no statistics yet" */
        return;
    }
    if (rc == -ENOENT && st->use_regex) {
        sb_poller_fail(p, 0, "vhost %s: queue regex '%s': %s", st->vhost, st->queue, err);
        return;
    }
    if (rc < 0) {
        sb_poller_fail(p, 0, "GET %s: %s", st->shown_url, err);
        return;
    }
    for (size_t i = 0; i < result.count; i++) {
        sb_label label = {"queue", result.values[i].queue};
        st->host->log(st->inst, SB_LOG_DEBUG, "queue %s: %s %g", result.values[i].queue,
                      sb_rabbitmq_measure_name(st->measure), result.values[i].value);
        rc = sb_poller_reading(p, result.values[i].value, &label, 1);
        if (rc < 0 && rc != -ESHUTDOWN)
            st->host->log(st->inst, SB_LOG_WARN, "could not publish a reading (error %d)", rc);
    }
    if (result.no_stats)
        st->host->log(st->inst, SB_LOG_DEBUG, "%zu matching queue(s) have no statistics yet",
                      result.no_stats);
    sb_rabbitmq_result_free(&result);
    sb_poller_done(p);
}

static void http_read(rabbitmq_state *st, sb_poller *p)
{
    sb_label accept = {"Accept", "application/json"};
    sb_http_request req = {
        SB_HTTP_REQUEST_INIT,
        .method = "GET",
        .url = st->api_url,
        .headers = &accept,
        .nheaders = 1,
        .insecure = st->insecure,
        .username = st->username,
        .password = st->password,
    };
    int rc = sb_poller_http(p, &req, http_reply, st);
    if (rc < 0)
        sb_poller_fail(p, 0, "GET %s: cannot start the request: %s", st->shown_url,
                       rc == -ENOSYS ? "this daemon has no HTTP client" : strerror(-rc));
}

/* ---- AMQP: a passive declare on a worker thread -------------------------------------------- */

static void amqp_work(uv_work_t *w)
{
    rabbitmq_state *st = w->data;
    if (st->job == JOB_CLOSE) {
        sb_amqp_reader_close(st->reader, st->timeout_ms);
        return;
    }
    st->job_err[0] = '\0';
    st->job_rc = sb_amqp_reader_read(st->reader, st->timeout_ms, &st->job_messages,
                                     &st->job_consumers, st->job_err, sizeof st->job_err);
}

static void amqp_after_work(uv_work_t *w, int status);

static int amqp_queue_job(rabbitmq_state *st, int job)
{
    st->job = job;
    st->work.data = st;
    int rc = uv_queue_work(st->host->loop(st->inst), &st->work, amqp_work, amqp_after_work);
    if (rc == 0)
        st->busy = 1;
    return rc;
}

static void amqp_start_read(rabbitmq_state *st)
{
    st->abandoned = 0;
    st->timeout_ms = sb_poller_timeout_ms(st->poller);
    int rc = amqp_queue_job(st, JOB_READ);
    if (rc < 0)
        sb_poller_fail(st->poller, 0, "%s: cannot queue the read: %s",
                       sb_amqp_reader_where(st->reader), uv_strerror(rc));
}

static void amqp_report(rabbitmq_state *st)
{
    sb_poller *p = st->poller;
    if (st->job_rc < 0) {
        sb_poller_fail(p, 0, "%s", st->job_err);
        return;
    }
    double value = st->measure == SB_RABBITMQ_CONSUMERS ? st->job_consumers : st->job_messages;
    sb_label label = {"queue", st->queue};
    st->host->log(st->inst, SB_LOG_DEBUG, "queue %s: %s %g", st->queue,
                  sb_rabbitmq_measure_name(st->measure), value);
    int rc = sb_poller_reading(p, value, &label, 1);
    if (rc < 0 && rc != -ESHUTDOWN)
        st->host->log(st->inst, SB_LOG_WARN, "could not publish a reading (error %d)", rc);
    sb_poller_done(p);
}

static void amqp_after_work(uv_work_t *w, int status)
{
    rabbitmq_state *st = w->data;
    int job = st->job;
    st->busy = 0;
    if (st->stopping) {
        /* stop() is waiting: close the connection on the worker, then tell the host. */
        if (job == JOB_READ && sb_amqp_reader_connected(st->reader) &&
            amqp_queue_job(st, JOB_CLOSE) == 0)
            return;
        st->stopping = 0;
        st->host->stopped(st->inst);
        return;
    }
    if (job != JOB_READ)
        return;
    if (status == UV_ECANCELED)
        st->job_rc = -ECANCELED;
    if (!st->abandoned)
        amqp_report(st);
    st->abandoned = 0;
    if (st->read_wanted) {
        st->read_wanted = 0;
        amqp_start_read(st);
    }
}

/* ---- The poller's read and cancel ---------------------------------------------------------- */

static void rabbitmq_read(void *self, sb_poller *p)
{
    rabbitmq_state *st = self;
    if (st->protocol == PROTO_HTTP) {
        http_read(st, p);
        return;
    }
    if (st->busy) {
        /* The worker still runs a read the poller gave up on (timed out): this one follows it.
         * Never two at a time on one connection. */
        st->read_wanted = 1;
        return;
    }
    amqp_start_read(st);
}

static void rabbitmq_cancel(void *self)
{
    rabbitmq_state *st = self;
    /* HTTP requests are the poller's to cancel. A worker read cannot be interrupted: it ends
     * within its timeout, and its result is dropped. */
    if (st->protocol == PROTO_AMQP) {
        if (st->busy)
            st->abandoned = 1;
        st->read_wanted = 0;
    }
}

static const sb_poll_ops rabbitmq_poll_ops = {.read = rabbitmq_read, .cancel = rabbitmq_cancel};

/* ---- Lifecycle ----------------------------------------------------------------------------- */

static void rabbitmq_destroy(void *state)
{
    rabbitmq_state *st = state;
    if (!st)
        return;
    sb_poller_free(st->poller);
    sb_amqp_reader_free(st->reader);
    if (st->re_compiled)
        regfree(&st->re);
    free(st->api_url);
    free(st->shown_url);
    free(st->vhost);
    free(st->username);
    free(st->password);
    free(st);
}

static int set_string(char **dst, const char *src, char *err, size_t errlen)
{
    *dst = strdup(src);
    if (*dst)
        return 0;
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

/* Credentials from the url or from username/password, never both; required for http. Takes
 * url_user and url_password (freed on an error). */
static int take_credentials(rabbitmq_state *st, const sb_value *values, char *url_user,
                            char *url_password, char *err, size_t errlen)
{
    const sb_value *user = &values[OPT_USERNAME], *password = &values[OPT_PASSWORD];
    int opt_user = user->is_set && user->str, opt_password = password->is_set && password->str;

    if (url_user && (opt_user || opt_password)) {
        free(url_user);
        free(url_password);
        snprintf(err, errlen, "%s: the url already has credentials: give them in one place",
                 opt_user ? "username" : "password");
        return -EINVAL;
    }
    if (url_user) {
        st->username = url_user;
        st->password = url_password;
        return 0;
    }
    if (!opt_user || !opt_password) {
        snprintf(err, errlen, "%s: required (the url has no user:password@)",
                 !opt_user ? "username" : "password");
        return -EINVAL;
    }
    if (!*user->str) {
        snprintf(err, errlen, "username: empty");
        return -EINVAL;
    }
    if (set_string(&st->username, user->str, err, errlen) < 0 ||
        set_string(&st->password, password->str, err, errlen) < 0)
        return -ENOMEM;
    return 0;
}

static int create_http(rabbitmq_state *st, const sb_value *values, char *err, size_t errlen)
{
    char *base, *url_user, *url_password;
    const sb_value *vhost = &values[OPT_VHOST];
    int rc = http_url_split(values[OPT_URL].str, &base, &url_user, &url_password, err, errlen);
    if (rc < 0)
        return rc;
    rc = take_credentials(st, values, url_user, url_password, err, errlen);
    if (rc < 0) {
        free(base);
        return rc;
    }
    rc = set_string(&st->vhost, vhost->is_set && vhost->str ? vhost->str : "/", err, errlen);
    if (rc == 0 && !*st->vhost) {
        snprintf(err, errlen, "vhost: empty (the default vhost is /)");
        rc = -EINVAL;
    }
    if (rc == 0)
        rc = http_build_urls(st, base, err, errlen);
    free(base);
    st->insecure = !values[OPT_TLS_VERIFY].integer;
    return rc;
}

static int create_amqp(rabbitmq_state *st, const sb_value *values, char *err, size_t errlen)
{
    const char *url = values[OPT_URL].str, *authority;
    const sb_value *user = &values[OPT_USERNAME], *password = &values[OPT_PASSWORD];
    int url_has_user = url_userinfo_at(url, &authority) != NULL;

    if (strncmp(url, "amqp://", 7) != 0 && strncmp(url, "amqps://", 8) != 0) {
        snprintf(err, errlen, "url: expected amqp://[user:password@]host[:port][/vhost]");
        return -EINVAL;
    }
    if (values[OPT_VHOST].is_set && values[OPT_VHOST].str) {
        snprintf(err, errlen,
                 "vhost: with protocol amqp the vhost is the url's path "
                 "(amqp://host:5672/%%2F for /)");
        return -EINVAL;
    }
    if (st->use_regex) {
        snprintf(err, errlen,
                 "queue_regex: protocol amqp reads one queue by its exact name "
                 "(use protocol http for a regular expression)");
        return -EINVAL;
    }
    if (st->measure != SB_RABBITMQ_MESSAGES_READY && st->measure != SB_RABBITMQ_CONSUMERS) {
        snprintf(err, errlen,
                 "measure: protocol amqp reads messages_ready or consumers, not %s "
                 "(use protocol http)",
                 sb_rabbitmq_measure_name(st->measure));
        return -EINVAL;
    }
    if (url_has_user && ((user->is_set && user->str) || (password->is_set && password->str))) {
        snprintf(err, errlen, "%s: the url already has credentials: give them in one place",
                 user->is_set && user->str ? "username" : "password");
        return -EINVAL;
    }
    if (!url_has_user && (!(user->is_set && user->str) || !(password->is_set && password->str))) {
        snprintf(err, errlen, "%s: required (the url has no user:password@)",
                 !(user->is_set && user->str) ? "username" : "password");
        return -EINVAL;
    }
    return sb_amqp_reader_new(url, url_has_user ? NULL : user->str,
                              url_has_user ? NULL : password->str, st->queue, &st->reader, err,
                              errlen);
}

static int rabbitmq_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                           void **state, char *err, size_t errlen)
{
    const char *protocol = values[OPT_PROTOCOL].str ? values[OPT_PROTOCOL].str : "http";
    const char *measure = values[OPT_MEASURE].str ? values[OPT_MEASURE].str : "messages_ready";
    const char *url = values[OPT_URL].str, *queue = values[OPT_QUEUE].str;
    rabbitmq_state *st;
    int rc;

    *state = NULL;
    if (!values[OPT_URL].is_set || !url || !*url) {
        snprintf(err, errlen, "url: required");
        return -EINVAL;
    }
    if (!values[OPT_QUEUE].is_set || !queue || !*queue) {
        snprintf(err, errlen, "queue: required");
        return -EINVAL;
    }
    if (strlen(queue) > SB_RABBITMQ_MAX_NAME) {
        snprintf(err, errlen, "queue: longer than %d bytes", SB_RABBITMQ_MAX_NAME);
        return -EINVAL;
    }
    st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->inst = inst;
    st->host = host;
    st->queue = queue;
    st->use_regex = values[OPT_QUEUE_REGEX].integer != 0;
    if (strcmp(protocol, "http") == 0) {
        st->protocol = PROTO_HTTP;
    } else if (strcmp(protocol, "amqp") == 0) {
        st->protocol = PROTO_AMQP;
    } else {
        snprintf(err, errlen, "protocol: expected http or amqp, not '%s'", protocol);
        rc = -EINVAL;
        goto fail;
    }
    if (sb_rabbitmq_measure_from_name(measure, &st->measure) < 0) {
        snprintf(err, errlen,
                 "measure: expected messages_ready, messages, "
                 "messages_unacknowledged, consumers or publish_rate, not '%s'",
                 measure);
        rc = -EINVAL;
        goto fail;
    }
    if (st->protocol == PROTO_HTTP && strncmp(url, "amqp", 4) == 0) {
        snprintf(err, errlen, "url: an amqp:// url needs protocol: amqp");
        rc = -EINVAL;
        goto fail;
    }
    if (st->use_regex) {
        char msg[160];
        rc = regcomp(&st->re, queue, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            regerror(rc, &st->re, msg, sizeof msg);
            snprintf(err, errlen, "queue: not a regular expression: %s", msg);
            rc = -EINVAL;
            goto fail;
        }
        st->re_compiled = 1;
    }
    rc = st->protocol == PROTO_HTTP ? create_http(st, values, err, errlen)
                                    : create_amqp(st, values, err, errlen);
    if (rc < 0)
        goto fail;
    if (st->protocol == PROTO_HTTP && !SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "protocol http needs a daemon with an HTTP client (host version 3)");
        rc = -ENOTSUP;
        goto fail;
    }
    rc = sb_poller_new(inst, host, &values[OPT_EVERY], &rabbitmq_poll_ops, st, &st->poller, err,
                       errlen);
    if (rc < 0)
        goto fail;
    *state = st;
    return 0;
fail:
    rabbitmq_destroy(st);
    return rc;
}

static int rabbitmq_start(void *state)
{
    rabbitmq_state *st = state;
    st->stopping = 0;
    return sb_poller_start(st->poller);
}

static int rabbitmq_stop(void *state)
{
    rabbitmq_state *st = state;
    sb_poller_stop(st->poller); /* cancels the read in flight (rabbitmq_cancel) */
    if (st->protocol != PROTO_AMQP)
        return 0;
    if (st->busy) {
        st->stopping = 1; /* amqp_after_work closes the connection and calls stopped() */
        return SB_PENDING;
    }
    if (sb_amqp_reader_connected(st->reader)) {
        st->timeout_ms = sb_poller_timeout_ms(st->poller);
        st->stopping = 1;
        if (amqp_queue_job(st, JOB_CLOSE) == 0)
            return SB_PENDING;
        st->stopping = 0; /* no worker: the connection is dropped without a goodbye in destroy */
    }
    return 0;
}

static void rabbitmq_on_event(void *state, const sb_event *ev)
{
    rabbitmq_state *st = state;
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        sb_poller_run_now(st->poller);
}

/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor rabbitmq_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "rabbitmq",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "RabbitMQ queue depth, consumers or publish rate (management API or AMQP)",
    .options = rabbitmq_options,
    .create = rabbitmq_create,
    .start = rabbitmq_start,
    .stop = rabbitmq_stop,
    .destroy = rabbitmq_destroy,
    .on_event = rabbitmq_on_event,
};

SB_PLUGIN_EXPORT(rabbitmq_descriptor)
