/*
 * nginx.c - the nginx trigger: reads nginx's stub_status page every `every` on the daemon's HTTP
 * client and publishes one of its figures: open connections (active, the default), those reading
 * a request, writing a reply or waiting idle, or the request rate (requests_per_second), worked
 * out from two successive `requests` totals and the time between the two replies.
 *
 * The schedule, failures, back-off and the "run" topic are the polling SDK's (scalebus/poll.h);
 * the page is read by sb_nginx_parse (nginx_parse.c).
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scalebus/plugin.h>
#include <scalebus/poll.h>

#include "nginx_parse.h"

/* The page is about 110 bytes: anything much longer is not it. */
#define NGX_MAX_BODY (64u << 10)

enum {
    OPT_URL,
    OPT_MEASURE,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_TLS_VERIFY,
    OPT_EVERY, /* SB_POLL_OPTIONS */
};

static const sb_option_spec ngx_options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "the stub_status page (http://127.0.0.1/nginx_status)"},
    {"measure", SB_OPT_STRING, "active", 0,
     "active, reading, writing, waiting (connections) or requests_per_second"},
    {"username", SB_OPT_STRING, NULL, 0, "HTTP basic auth user name"},
    {"password", SB_OPT_STRING, NULL, 0, "HTTP basic auth password (with username)"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify an https:// server's certificate and name"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef enum ngx_measure {
    NGX_ACTIVE,
    NGX_READING,
    NGX_WRITING,
    NGX_WAITING,
    NGX_RPS,
} ngx_measure;

static const char *const ngx_measure_names[] = {"active", "reading", "writing", "waiting",
                                                "requests_per_second"};

typedef struct ngx_trigger {
    sb_poller *poller; /* first: the polling SDK's on_event convention */
    const sb_host *host;
    sb_instance *inst;
    sb_http_request req;
    ngx_measure measure;
    /* requests_per_second: the last total and when its reply came; none after a failure. */
    int have_last;
    uint64_t last_requests;
    uint64_t last_ns;
} ngx_trigger;

static uint64_t ngx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int ngx_check_url(const char *url, char *err, size_t errlen)
{
    return sb_http_url_check("url", url, err, errlen);
}

static void ngx_fail(ngx_trigger *t, uint64_t retry_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void ngx_fail(ngx_trigger *t, uint64_t retry_ms, const char *fmt, ...)
{
    /* A failed read may hide a restart: the rate starts again from the next good read. */
    t->have_last = 0;
    char line[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    sb_poller_fail(t->poller, retry_ms, "%s", line);
}

/* requests_per_second: the rate since the last read, without this trigger's own read (each
 * read is one request: the page counts the request that reads it). */
static void ngx_rate(ngx_trigger *t, uint64_t requests)
{
    uint64_t now = ngx_now_ns();
    int had = t->have_last;
    uint64_t last = t->last_requests, last_ns = t->last_ns;
    t->have_last = 1;
    t->last_requests = requests;
    t->last_ns = now;
    if (!had) {
        t->host->log(t->inst, SB_LOG_DEBUG,
                     "requests=%llu: the rate needs a second read, no reading yet",
                     (unsigned long long)requests);
        return;
    }
    if (requests < last) {
        t->host->log(t->inst, SB_LOG_INFO,
                     "requests went down from %llu to %llu (nginx restarted?): the rate starts "
                     "again",
                     (unsigned long long)last, (unsigned long long)requests);
        return;
    }
    if (now <= last_ns)
        return;
    uint64_t delta = requests - last;
    if (delta > 0)
        delta--; /* our own read */
    double rps = (double)delta / ((double)(now - last_ns) / 1e9);
    sb_poller_reading(t->poller, rps, NULL, 0);
}

static void ngx_reply(void *arg, const sb_http_response *res)
{
    ngx_trigger *t = arg;
    if (sb_poller_fail_reply(t->poller, &t->req, NULL, res,
                             "the page wants credentials (username, password)")) {
        t->have_last = 0; /* a failed read may hide a restart */
        return;
    }
    sb_nginx_status st;
    char why[300];
    if (sb_nginx_parse(res->body, res->body_len, &st, why, sizeof why) != 0) {
        ngx_fail(t, 0, "GET %s: %s", t->req.url, why);
        return;
    }
    switch (t->measure) {
    case NGX_ACTIVE:
        sb_poller_reading(t->poller, (double)st.active, NULL, 0);
        break;
    case NGX_READING:
        sb_poller_reading(t->poller, (double)st.reading, NULL, 0);
        break;
    case NGX_WRITING:
        sb_poller_reading(t->poller, (double)st.writing, NULL, 0);
        break;
    case NGX_WAITING:
        sb_poller_reading(t->poller, (double)st.waiting, NULL, 0);
        break;
    case NGX_RPS:
        ngx_rate(t, st.requests);
        break;
    }
    sb_poller_done(t->poller);
}

static void ngx_read(void *self, sb_poller *p)
{
    ngx_trigger *t = self;
    int rc = sb_poller_http(p, &t->req, ngx_reply, t);
    if (rc < 0)
        ngx_fail(t, 0, "GET %s: cannot start the request: %s", t->req.url, strerror(-rc));
}

static const sb_poll_ops ngx_poll_ops = {.read = ngx_read};

static void ngx_destroy(void *state)
{
    ngx_trigger *t = state;
    if (t == NULL)
        return;
    sb_poller_free(t->poller);
    free(t);
}

static int ngx_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                      char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "this daemon has no HTTP client (host version %u, 3 needed)",
                 host->version);
        return -ENOSYS;
    }
    int rc = ngx_check_url(v[OPT_URL].str, err, errlen);
    if (rc != 0)
        return rc;
    if (v[OPT_PASSWORD].is_set && !v[OPT_USERNAME].is_set) {
        snprintf(err, errlen, "password: set username too");
        return -EINVAL;
    }
    int measure = -1;
    for (size_t i = 0; i < sizeof ngx_measure_names / sizeof *ngx_measure_names; i++)
        if (strcmp(v[OPT_MEASURE].str, ngx_measure_names[i]) == 0)
            measure = (int)i;
    if (measure < 0) {
        snprintf(err, errlen,
                 "measure: expected active, reading, writing, waiting or requests_per_second, "
                 "got \"%.64s\"",
                 v[OPT_MEASURE].str);
        return -EINVAL;
    }
    ngx_trigger *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->host = host;
    t->inst = inst;
    t->measure = (ngx_measure)measure;
    rc = sb_poller_new(inst, host, &v[OPT_EVERY], &ngx_poll_ops, t, &t->poller, err, errlen);
    if (rc != 0) {
        ngx_destroy(t);
        return rc;
    }
    t->req =
        (sb_http_request){SB_HTTP_REQUEST_INIT, .url = v[OPT_URL].str, .max_body = NGX_MAX_BODY,
                          .insecure = v[OPT_TLS_VERIFY].integer == 0};
    if (v[OPT_USERNAME].is_set) {
        t->req.username = v[OPT_USERNAME].str;
        t->req.password = v[OPT_PASSWORD].is_set ? v[OPT_PASSWORD].str : "";
    }
    *state = t;
    return 0;
}




/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor ngx_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "nginx",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "reads nginx's stub_status: connections, or the request rate",
    .options = ngx_options,
    .create = ngx_create,
    .start = sb_poll_trigger_start,
    .stop = sb_poll_trigger_stop,
    .destroy = ngx_destroy,
    .on_event = sb_poll_trigger_on_event,
};

SB_PLUGIN_EXPORT(ngx_descriptor)
