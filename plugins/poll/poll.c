/*
 * poll.c - the schedule and failure handling every polling trigger shares (scalebus/poll.h).
 *
 * One read at a time. The next read is due `every` after the last one started (a slow source
 * does not drift the cadence), or after a back-off when it failed. A read that neither finishes
 * nor fails within `timeout` (plus a second for the HTTP client's own timeout to win) is
 * cancelled and counted as a failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalebus/poll.h"

#define POLL_MIN_EVERY_MS 10
#define POLL_TIMEOUT_GRACE_MS 1000
#define POLL_MAX_REQS 16 /* HTTP requests one read may have in flight at once */

typedef struct poll_req {
    sb_poller *p;
    sb_http *h;
    sb_http_cb cb;
    void *arg;
} poll_req;

struct sb_poller {
    sb_instance *inst;
    const sb_host *host;
    const sb_poll_ops *ops;
    void *self;
    uint64_t every_ms, timeout_ms, backoff_max_ms;
    sb_timer *next;     /* the next read */
    sb_timer *deadline; /* the read in flight's timeout */
    int running;
    int in_flight;
    int run_pending; /* "run" arrived during a read: read again right after */
    uint64_t read_started_ms;
    uint64_t read_started_ns; /* the same, finer, for the read's duration */
    uint64_t consecutive, total;
    int failing;
    char reason[512];
    sb_backoff backoff;
    poll_req *reqs[POLL_MAX_REQS];
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int read_rows(const sb_value *v, uint64_t *every, uint64_t *timeout, uint64_t *bmax,
                     char *err, size_t errlen)
{
    *every = v[0].is_set ? v[0].duration_ms : 15000;
    *timeout = v[1].is_set ? v[1].duration_ms : 10000;
    *bmax = v[2].is_set ? v[2].duration_ms : 60000;
    if (*every < POLL_MIN_EVERY_MS) {
        snprintf(err, errlen, "every: must be at least %dms", POLL_MIN_EVERY_MS);
        return -EINVAL;
    }
    if (*timeout == 0) {
        snprintf(err, errlen, "timeout: must be more than 0");
        return -EINVAL;
    }
    if (*bmax < *every)
        *bmax = *every; /* a back-off never reads more often than `every` */
    return 0;
}

int sb_poller_new(sb_instance *inst, const sb_host *host, const sb_value *rows,
                  const sb_poll_ops *ops, void *self, sb_poller **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!ops || !ops->read) {
        snprintf(err, errlen, "poller: no read function");
        return -EINVAL;
    }
    sb_poller *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int rc = read_rows(rows, &p->every_ms, &p->timeout_ms, &p->backoff_max_ms, err, errlen);
    if (rc != 0) {
        free(p);
        return rc;
    }
    p->inst = inst;
    p->host = host;
    p->ops = ops;
    p->self = self;
    sb_backoff_init(&p->backoff, p->every_ms, p->backoff_max_ms);
    *out = p;
    return 0;
}

int sb_poller_set_options(sb_poller *p, const sb_value *rows, char *err, size_t errlen)
{
    uint64_t every, timeout, bmax;
    int rc = read_rows(rows, &every, &timeout, &bmax, err, errlen);
    if (rc != 0)
        return rc;
    p->every_ms = every;
    p->timeout_ms = timeout;
    p->backoff_max_ms = bmax;
    uint32_t attempt = p->backoff.attempt;
    sb_backoff_init(&p->backoff, every, bmax);
    p->backoff.attempt = attempt;
    return 0;
}

static void timer_drop(sb_poller *p, sb_timer **t)
{
    if (*t) {
        p->host->timer_free(*t);
        *t = NULL;
    }
}

static void read_now(sb_poller *p);

static void next_fire(void *arg)
{
    sb_poller *p = arg;
    timer_drop(p, &p->next);
    read_now(p);
}

static void schedule_in(sb_poller *p, uint64_t delay_ms)
{
    timer_drop(p, &p->next);
    if (!p->running)
        return;
    p->next = p->host->timer_new(p->inst, delay_ms, 0, next_fire, p);
    if (!p->next)
        p->host->log(p->inst, SB_LOG_ERROR, "cannot arm the next read: out of memory");
}

static void cancel_requests(sb_poller *p)
{
    for (size_t i = 0; i < POLL_MAX_REQS; i++) {
        poll_req *r = p->reqs[i];
        if (!r)
            continue;
        p->reqs[i] = NULL;
        if (SB_HOST_HAS(p->host, http_cancel))
            p->host->http_cancel(p->inst, r->h);
        free(r);
    }
}

/* Abandon the read in flight: no done/fail will be taken for it. */
static void read_abandon(sb_poller *p)
{
    if (!p->in_flight)
        return;
    p->in_flight = 0;
    timer_drop(p, &p->deadline);
    cancel_requests(p);
    if (p->ops->cancel)
        p->ops->cancel(p->self);
}

static void deadline_fire(void *arg)
{
    sb_poller *p = arg;
    timer_drop(p, &p->deadline);
    if (!p->in_flight)
        return;
    read_abandon(p);
    /* read_abandon cleared in_flight; fail() wants the read it ends. */
    p->in_flight = 1;
    sb_poller_fail(p, 0, "read timed out (timeout %llums, no answer after %llums)",
                   (unsigned long long)p->timeout_ms,
                   (unsigned long long)(mono_ms() - p->read_started_ms));
}

static void read_now(sb_poller *p)
{
    if (!p->running)
        return;
    if (p->in_flight) {
        p->run_pending = 1;
        return;
    }
    timer_drop(p, &p->next);
    p->in_flight = 1;
    p->run_pending = 0;
    p->read_started_ms = mono_ms();
    p->read_started_ns = mono_ns();
    p->deadline =
        p->host->timer_new(p->inst, p->timeout_ms + POLL_TIMEOUT_GRACE_MS, 0, deadline_fire, p);
    p->ops->read(p->self, p);
}

/* After a read ended: the next one is due `every` after this one started, at once on a pending
 * "run", or after the back-off when it failed. */
static void read_ended(sb_poller *p, int failed, uint64_t retry_after_ms)
{
    /* How long the read took, for the admin's read-latency histogram (SB_TOPIC_READ). */
    sb_label result = {"result", failed ? "failed" : "done"};
    sb_publish took = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READ,
                       .value = (double)(mono_ns() - p->read_started_ns) / 1e9,
                       .labels = &result, .nlabels = 1};
    p->host->publish(p->inst, &took);
    p->in_flight = 0;
    timer_drop(p, &p->deadline);
    cancel_requests(p);
    if (!p->running)
        return;
    if (p->run_pending) {
        p->run_pending = 0;
        schedule_in(p, 0);
        return;
    }
    if (failed) {
        uint64_t d = sb_backoff_next(&p->backoff, retry_after_ms);
        schedule_in(p, d < p->every_ms ? p->every_ms : d);
        return;
    }
    uint64_t due = p->read_started_ms + p->every_ms, now = mono_ms();
    schedule_in(p, due > now ? due - now : 0);
}

int sb_poller_start(sb_poller *p)
{
    p->running = 1;
    /* From the loop, not inside start(): a read may publish, and may fail. */
    schedule_in(p, 0);
    return p->next ? 0 : -ENOMEM;
}

void sb_poller_stop(sb_poller *p)
{
    if (!p)
        return;
    p->running = 0;
    timer_drop(p, &p->next);
    read_abandon(p);
}

void sb_poller_free(sb_poller *p)
{
    if (!p)
        return;
    sb_poller_stop(p);
    free(p);
}

void sb_poller_run_now(sb_poller *p)
{
    if (p)
        read_now(p);
}

int sb_poller_reading(sb_poller *p, double value, const sb_label *labels, size_t nlabels)
{
    if (!isfinite(value)) {
        p->host->log(p->inst, SB_LOG_WARN, "ignored a reading that is not a finite number");
        return -EINVAL;
    }
    sb_publish ev = {SB_PUBLISH_INIT,
                     .topic = SB_TOPIC_READING,
                     .flags = SB_EVENT_COALESCE,
                     .value = value,
                     .labels = labels,
                     .nlabels = nlabels};
    return p->host->publish(p->inst, &ev);
}

void sb_poller_done(sb_poller *p)
{
    if (!p->in_flight)
        return; /* a read already abandoned (timed out, stopped) */
    if (p->failing)
        p->host->log(p->inst, SB_LOG_INFO, "reading again after %llu failure%s",
                     (unsigned long long)p->consecutive, p->consecutive == 1 ? "" : "s");
    p->failing = 0;
    p->consecutive = 0;
    p->reason[0] = '\0';
    sb_backoff_reset(&p->backoff);
    read_ended(p, 0, 0);
}

void sb_poller_fail(sb_poller *p, uint64_t retry_after_ms, const char *fmt, ...)
{
    if (!p->in_flight)
        return;
    char reason[sizeof p->reason];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    /* One line whatever a remote put in it: no forged log lines, no terminal escapes. */
    for (char *c = reason; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    p->consecutive++;
    p->total++;
    /* Logged once per change of state: the first failure, and each new reason. */
    int changed = !p->failing || strcmp(reason, p->reason) != 0;
    p->failing = 1;
    snprintf(p->reason, sizeof p->reason, "%s", reason);
    p->host->log(p->inst, changed ? SB_LOG_WARN : SB_LOG_DEBUG,
                 "read failed: %s (%llu in a row, %llu in all)", reason,
                 (unsigned long long)p->consecutive, (unsigned long long)p->total);
    sb_label lab = {"reason", reason};
    sb_publish ev = {SB_PUBLISH_INIT,
                     .topic = SB_TOPIC_ERROR,
                     .value = (double)p->consecutive,
                     .labels = &lab,
                     .nlabels = 1};
    p->host->publish(p->inst, &ev);
    read_ended(p, 1, retry_after_ms);
}

uint64_t sb_poller_failures(const sb_poller *p, uint64_t *total)
{
    if (total)
        *total = p->total;
    return p->consecutive;
}

uint64_t sb_poller_timeout_ms(const sb_poller *p)
{
    return p->timeout_ms;
}

const sb_host *sb_poller_host(const sb_poller *p)
{
    return p->host;
}

sb_instance *sb_poller_instance(const sb_poller *p)
{
    return p->inst;
}

static void poll_req_done(void *arg, const sb_http_response *res)
{
    poll_req *r = arg;
    sb_poller *p = r->p;
    for (size_t i = 0; i < POLL_MAX_REQS; i++)
        if (p->reqs[i] == r)
            p->reqs[i] = NULL;
    sb_http_cb cb = r->cb;
    void *cb_arg = r->arg;
    free(r);
    cb(cb_arg, res);
}

int sb_poller_http(sb_poller *p, const sb_http_request *req, sb_http_cb cb, void *arg)
{
    if (!SB_HOST_HAS(p->host, http_request))
        return -ENOSYS;
    size_t slot = POLL_MAX_REQS;
    for (size_t i = 0; i < POLL_MAX_REQS; i++)
        if (!p->reqs[i]) {
            slot = i;
            break;
        }
    if (slot == POLL_MAX_REQS)
        return -EBUSY;
    poll_req *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    r->p = p;
    r->cb = cb;
    r->arg = arg;
    sb_http_request copy;
    memset(&copy, 0, sizeof copy);
    memcpy(&copy, req, req->size < sizeof copy ? req->size : sizeof copy);
    copy.size = sizeof copy;
    if (!copy.timeout_ms)
        copy.timeout_ms = p->timeout_ms;
    int rc = p->host->http_request(p->inst, &copy, poll_req_done, r, &r->h);
    if (rc != 0) {
        free(r);
        return rc;
    }
    p->reqs[slot] = r;
    return 0;
}

static void first_line(const char *body, size_t len, char *out, size_t outlen)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < outlen && n < 120; i++) {
        char ch = body[i];
        if (ch == '\n' || ch == '\r') {
            if (n)
                break;
            continue;
        }
        out[n++] = (ch >= 0x20 && ch < 0x7f) ? ch : '?';
    }
    out[n] = '\0';
}

/* The URL without a password in it ("http://user:secret@h/" -> "http://user:***@h/"): secrets
 * never reach a log line. */
static void url_redacted(const char *url, char *out, size_t outlen)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    size_t hostpart = strcspn(host, "/?#");
    const char *at = memchr(host, '@', hostpart);
    const char *colon = at ? memchr(host, ':', (size_t)(at - host)) : NULL;
    if (!colon)
        snprintf(out, outlen, "%s", url);
    else
        snprintf(out, outlen, "%.*s:***%s", (int)(colon - url), url, at);
}

const char *sb_http_failure(const sb_http_request *req, const sb_http_response *res, char *buf,
                            size_t len)
{
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    char url[512];
    url_redacted(req->url, url, sizeof url);
    if (res->error) {
        snprintf(buf, len, "%s %s: %s", method, url, res->error_text);
        return buf;
    }
    if (res->status >= 200 && res->status < 300)
        return NULL;
    char line[128];
    first_line(res->body, res->body_len, line, sizeof line);
    if (line[0])
        snprintf(buf, len, "%s %s: HTTP %ld: %s", method, url, res->status, line);
    else
        snprintf(buf, len, "%s %s: HTTP %ld", method, url, res->status);
    return buf;
}

int sb_poller_fail_reply(sb_poller *p, const sb_http_request *req, const char *shown_url,
                         const sb_http_response *res, const char *missing_credentials)
{
    if (res->error == 0 && res->status >= 200 && res->status < 300)
        return 0;
    sb_http_request shown = *req;
    if (shown_url)
        shown.url = shown_url;
    const char *method = req->method ? req->method : (req->body ? "POST" : "GET");
    char url[512];
    url_redacted(shown.url, url, sizeof url);
    uint64_t retry = sb_http_retry_after_ms(res);
    if (res->error == 0 && res->status == 401) {
        sb_poller_fail(p, retry, "%s %s: HTTP 401: %s", method, url,
                       req->username ? "the credentials were refused (username, password)"
                                     : missing_credentials);
        return 1;
    }
    if (res->error == 0 && res->status == 403) {
        sb_poller_fail(p, retry, "%s %s: HTTP 403: access forbidden%s%s%s", method, url,
                       req->username ? " to user '" : "", req->username ? req->username : "",
                       req->username ? "'" : "");
        return 1;
    }
    char buf[512];
    const char *line = sb_http_failure(&shown, res, buf, sizeof buf);
    sb_poller_fail(p, retry, "%s", line ? line : "the request failed");
    return 1;
}

int sb_http_url_check(const char *option, const char *url, char *err, size_t errlen)
{
    const char *rest;
    if (strncmp(url, "http://", 7) == 0)
        rest = url + 7;
    else if (strncmp(url, "https://", 8) == 0)
        rest = url + 8;
    else {
        snprintf(err, errlen, "%s: must start with http:// or https://, got \"%.64s\"", option,
                 url);
        return -EINVAL;
    }
    size_t host_len = strcspn(rest, "/?#");
    if (host_len == 0) {
        snprintf(err, errlen, "%s: no host in \"%.64s\"", option, url);
        return -EINVAL;
    }
    if (memchr(rest, '@', host_len)) {
        snprintf(err, errlen, "%s: put credentials in username and password, not in the URL",
                 option);
        return -EINVAL;
    }
    for (const char *c = url; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(err, errlen, "%s: a space or control character at position %zu", option,
                     (size_t)(c - url) + 1);
            return -EINVAL;
        }
    return 0;
}

int sb_poll_trigger_start(void *state)
{
    return sb_poller_start(*(sb_poller **)state);
}

int sb_poll_trigger_stop(void *state)
{
    sb_poller_stop(*(sb_poller **)state);
    return 0;
}

void sb_poll_trigger_on_event(void *state, const sb_event *ev)
{
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        sb_poller_run_now(*(sb_poller **)state);
}
