/*
 * kitchen.c - the project's own test web app (after Two Sigma Waiter's "kitchen"): a small
 * HTTP/1.1 server on sb_httpd and libuv that the router's tests and benchmark put behind a
 * proxy. Each behaviour a router must cope with can be asked for, at start or per request:
 *
 *   kitchen [--port N] [--address A] [--start-delay D] [--delay D] [--fail-rate F]
 *           [--fail-status N] [--crash-after N] [--drain-timeout D]
 *
 * Flags win over the environment: PORT, KITCHEN_ADDRESS, KITCHEN_START_DELAY, KITCHEN_DELAY,
 * KITCHEN_FAIL_RATE, KITCHEN_FAIL_STATUS, KITCHEN_CRASH_AFTER, KITCHEN_DRAIN_TIMEOUT. A
 * duration is a number with ms, s, m or us (a bare number is milliseconds).
 *
 * Per request (the query parameter wins over the header):
 *   ?delay=100ms   X-Kitchen-Delay   answer after this long (after the whole body arrived)
 *   ?status=503    X-Kitchen-Status  answer with this status (200..599)
 *   ?crash=1       X-Kitchen-Crash   exit the process (status 3) instead of answering, after
 *                                    the delay, cutting every request in flight
 *   ?size=N        X-Kitchen-Size    a body of N bytes, streamed with back-pressure
 *   ?chunked=1                       ... sent chunked instead of with a Content-Length
 * Paths:
 *   /echo     JSON: method, target, version, headers, body_bytes (the body is counted, never
 *             kept), in_flight
 *   /stats    JSON: pid, in_flight, max_in_flight, requests, failed, draining (?reset=1 sets
 *             max_in_flight back to what is in flight now); not counted as a request
 *   /healthz  200 "ok", 503 once draining; not counted as a request
 *   anything else: "hello from kitchen\n" (or the ?size body)
 * Every counted response carries X-Kitchen-In-Flight (the requests in flight when this one
 * started, itself included), X-Kitchen-Pid and X-Kitchen-Request (its number, from 1).
 *
 * On stdout, with a start-up delay, "kitchen: pid=P listens in D ms" once signals are handled,
 * and one line when it listens:
 *   kitchen: listening on 127.0.0.1:PORT pid=P start_ms=T0 listen_ms=T1 (after T1-T0 ms)
 * (wall-clock milliseconds; start_ms is taken first thing in main; the time after it to the
 * microsecond), so a benchmark can subtract the app's own time to listen from a cold start (the
 * exec and dynamic loading before main are not in it).
 *
 * SIGTERM (or SIGINT): stop listening at once (new connections are refused), answer what is in
 * flight (requests arriving meanwhile on open connections are still served), then exit 0; exit 1
 * if that takes longer than the drain timeout (30s).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#include "httpd.h"

#define KITCHEN_MAX_DELAY_MS (3600u * 1000u)
#define KITCHEN_MAX_SIZE ((uint64_t)1 << 40)
#define KITCHEN_CRASH_STATUS 3
#define KITCHEN_CHUNK 16384

typedef struct kitchen_options {
    const char *address;
    int port;
    uint64_t start_delay_ms;
    uint64_t delay_ms;
    double fail_rate;
    int fail_status;
    uint64_t crash_after;
    uint64_t drain_timeout_ms;
} kitchen_options;

typedef struct kitchen {
    uv_loop_t *loop;
    kitchen_options opt;
    sb_httpd *srv;
    int listen_fd;
    uv_timer_t start_timer;
    uv_timer_t drain_timer;
    uv_signal_t sigterm;
    uv_signal_t sigint;
    int64_t start_us; /* wall clock, first thing in main */
    uint64_t in_flight;
    uint64_t max_in_flight;
    uint64_t requests;
    uint64_t failed;
    bool draining;
    bool closing;
    int exit_code;
} kitchen;

typedef enum job_kind { JOB_PLAIN, JOB_ECHO, JOB_STATS, JOB_HEALTH } job_kind;

/* One request: what it asked for, and its timer while it waits. Freed once its response ended
 * (or it was aborted) and its timer, if any, is closed. */
typedef struct job {
    kitchen *k;
    sb_httpd_exchange *ex;
    job_kind kind;
    bool counted;
    bool crash;
    bool chunked;
    bool reset_stats;
    bool status_asked;
    int status;
    uint64_t delay_ms;
    uint64_t size;
    uint64_t sent;
    uint64_t body_bytes;
    uint64_t number;
    uint64_t in_flight_at_start;
    bool timer_open;
    uv_timer_t timer;
} job;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* "100ms", "1.5s", "2m", "250us", "250" (ms): 0 or -1. */
static int parse_duration_ms(const char *text, uint64_t *out)
{
    if (!text || !*text)
        return -1;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno || end == text || !(v >= 0) || v > 1e12)
        return -1;
    double ms;
    if (*end == '\0' || strcmp(end, "ms") == 0)
        ms = v;
    else if (strcmp(end, "s") == 0)
        ms = v * 1000;
    else if (strcmp(end, "m") == 0)
        ms = v * 60000;
    else if (strcmp(end, "us") == 0)
        ms = v / 1000;
    else
        return -1;
    if (ms > KITCHEN_MAX_DELAY_MS)
        return -1;
    *out = (uint64_t)(ms + 0.5);
    return 0;
}

static int parse_u64(const char *text, uint64_t max, uint64_t *out)
{
    if (!text || *text < '0' || *text > '9')
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* The value of name in an a=1&b=2 query, copied into buf (empty for "a" or "a="); NULL when
 * absent. No percent-decoding: the values asked for are plain. */
static const char *query_get(const char *query, const char *name, char *buf, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = query;
    while (p && *p) {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);
        if (plen >= nlen && strncmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
            size_t vlen = plen > nlen ? plen - nlen - 1 : 0;
            if (vlen >= len)
                vlen = len - 1;
            memcpy(buf, p + nlen + (plen > nlen ? 1 : 0), vlen);
            buf[vlen] = '\0';
            return buf;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/* A per-request setting: the query parameter, else the header, else NULL. */
static const char *ask(const sb_httpd_request *req, const char *param, const char *header,
                       char *buf, size_t len)
{
    const char *v = query_get(req->query, param, buf, len);
    if (v)
        return v;
    return header ? sb_httpd_header_get(req, header) : NULL;
}

static bool truthy(const char *v)
{
    return v && (strcmp(v, "") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
                 strcasecmp(v, "yes") == 0);
}

/* ---- a growable text buffer for the JSON answers ------------------------------------------ */

typedef struct text {
    char *data;
    size_t len, cap;
    bool failed;
} text;

static void text_reserve(text *t, size_t more)
{
    if (t->failed || t->len + more + 1 <= t->cap)
        return;
    size_t cap = t->cap ? t->cap : 1024;
    while (cap < t->len + more + 1)
        cap *= 2;
    char *d = realloc(t->data, cap);
    if (!d) {
        t->failed = true;
        return;
    }
    t->data = d;
    t->cap = cap;
}

static void text_add(text *t, const char *s, size_t n)
{
    text_reserve(t, n);
    if (t->failed)
        return;
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_printf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(text *t, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        text_add(t, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

/* A JSON string; bytes beyond ASCII are written as \u00XX (Latin-1), so the answer is valid
 * JSON whatever a client sent. */
static void text_json_string(text *t, const char *s)
{
    text_add(t, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            text_add(t, esc, 2);
        } else if (*p < 0x20 || *p >= 0x7f) {
            text_printf(t, "\\u%04x", *p);
        } else {
            text_add(t, (const char *)p, 1);
        }
    }
    text_add(t, "\"", 1);
}

/* ---- requests ------------------------------------------------------------------------------ */

static void kitchen_maybe_finish(kitchen *k);

static void job_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* The response ended or the exchange is gone: uncount it and free the job. */
static void job_done(job *j)
{
    kitchen *k = j->k;
    if (j->counted)
        k->in_flight--;
    j->ex = NULL;
    if (j->timer_open)
        uv_close((uv_handle_t *)&j->timer, job_timer_closed);
    else
        free(j);
    kitchen_maybe_finish(k);
}

static void job_headers(job *j, sb_httpd_header *h, char bufs[3][32], const char *content_type,
                        size_t *n)
{
    *n = 0;
    h[(*n)++] = (sb_httpd_header){"Content-Type", content_type};
    if (!j->counted)
        return;
    snprintf(bufs[0], 32, "%" PRIu64, j->in_flight_at_start);
    snprintf(bufs[1], 32, "%ld", (long)getpid());
    snprintf(bufs[2], 32, "%" PRIu64, j->number);
    h[(*n)++] = (sb_httpd_header){"X-Kitchen-In-Flight", bufs[0]};
    h[(*n)++] = (sb_httpd_header){"X-Kitchen-Pid", bufs[1]};
    h[(*n)++] = (sb_httpd_header){"X-Kitchen-Request", bufs[2]};
}

static void respond_whole(job *j, const char *content_type, const char *body, size_t len)
{
    sb_httpd_header h[4];
    char bufs[3][32];
    size_t n;
    job_headers(j, h, bufs, content_type, &n);
    if (sb_httpd_respond(j->ex, j->status, h, n, body, len) != 0)
        sb_httpd_respond_text(j->ex, 500, "kitchen: cannot answer (out of memory)");
    job_done(j);
}

static void respond_echo(job *j)
{
    const sb_httpd_request *req = sb_httpd_exchange_request(j->ex);
    text t = {0};
    text_add(&t, "{\"method\":", 10);
    text_json_string(&t, req->method);
    text_add(&t, ",\"target\":", 10);
    text_json_string(&t, req->target);
    text_printf(&t, ",\"version\":\"%d.%d\",\"headers\":[", req->version_major, req->version_minor);
    for (size_t i = 0; i < req->header_count; i++) {
        text_add(&t, i ? ",[" : "[", i ? 2 : 1);
        text_json_string(&t, req->headers[i].name);
        text_add(&t, ",", 1);
        text_json_string(&t, req->headers[i].value);
        text_add(&t, "]", 1);
    }
    text_printf(&t, "],\"body_bytes\":%" PRIu64 ",\"in_flight\":%" PRIu64 "}\n", j->body_bytes,
                j->in_flight_at_start);
    if (t.failed) {
        sb_httpd_respond_text(j->ex, 500, "kitchen: cannot answer (out of memory)");
        job_done(j);
    } else {
        respond_whole(j, "application/json", t.data, t.len);
    }
    free(t.data);
}

static void respond_stats(job *j)
{
    kitchen *k = j->k;
    if (j->reset_stats)
        k->max_in_flight = k->in_flight;
    char body[512];
    int n = snprintf(body, sizeof body,
                     "{\"pid\":%ld,\"in_flight\":%" PRIu64 ",\"max_in_flight\":%" PRIu64
                     ",\"requests\":%" PRIu64 ",\"failed\":%" PRIu64 ",\"draining\":%s}\n",
                     (long)getpid(), k->in_flight, k->max_in_flight, k->requests, k->failed,
                     k->draining ? "true" : "false");
    respond_whole(j, "application/json", body, (size_t)n);
}

/* Write the ?size body until it is all queued or the queue is full (then on_drain resumes). */
static void job_stream_more(job *j)
{
    static char pattern[KITCHEN_CHUNK];
    if (!pattern[0])
        for (size_t i = 0; i < sizeof pattern; i++)
            pattern[i] = (char)('a' + i % 26);
    while (j->sent < j->size) {
        uint64_t left = j->size - j->sent;
        size_t len = left < sizeof pattern ? (size_t)left : sizeof pattern;
        int r = sb_httpd_stream_write(j->ex, pattern, len);
        if (r < 0) {
            sb_httpd_stream_end(j->ex); /* the length is not met: the server closes */
            job_done(j);
            return;
        }
        j->sent += len;
        if (r == 1)
            return;
    }
    sb_httpd_stream_end(j->ex);
    job_done(j);
}

static void respond_stream(job *j)
{
    sb_httpd_header h[4];
    char bufs[3][32];
    size_t n;
    job_headers(j, h, bufs, "application/octet-stream", &n);
    if (sb_httpd_stream_start(j->ex, j->status, h, n, j->chunked ? -1 : (int64_t)j->size) != 0) {
        sb_httpd_respond_text(j->ex, 500, "kitchen: cannot answer (out of memory)");
        job_done(j);
        return;
    }
    if (sb_httpd_exchange_request(j->ex)->head) {
        sb_httpd_stream_end(j->ex);
        job_done(j);
        return;
    }
    job_stream_more(j);
}

static void job_answer(job *j)
{
    if (j->crash) {
        printf("kitchen: crashing as request %" PRIu64 " asked (pid %ld)\n", j->number,
               (long)getpid());
        fflush(stdout);
        _exit(KITCHEN_CRASH_STATUS);
    }
    switch (j->kind) {
    case JOB_STATS:
        respond_stats(j);
        return;
    case JOB_HEALTH:
        j->status = j->k->draining ? 503 : 200;
        respond_whole(j, "text/plain; charset=utf-8", j->k->draining ? "draining\n" : "ok\n",
                      j->k->draining ? 9 : 3);
        return;
    case JOB_ECHO:
        respond_echo(j);
        return;
    case JOB_PLAIN:
        if (j->size > 0 || j->chunked)
            respond_stream(j);
        else
            respond_whole(j, "text/plain; charset=utf-8", "hello from kitchen\n", 19);
        return;
    }
}

static void job_timer_fired(uv_timer_t *t)
{
    job *j = t->data;
    job_answer(j);
}

/* The failing status of --fail-rate: request n fails when floor(n * rate) grows, so exactly that
 * share fails, evenly spread (rate 0.25: requests 4, 8, 12...). */
static bool fail_by_rate(const kitchen *k, uint64_t n)
{
    if (k->opt.fail_rate <= 0)
        return false;
    return floor((double)n * k->opt.fail_rate) > floor((double)(n - 1) * k->opt.fail_rate);
}

/* Read the request's asks; an ask that does not parse is answered 400 at once (returns false). */
static bool job_read_asks(job *j, const sb_httpd_request *req)
{
    char buf[64];
    const char *v;
    if ((v = ask(req, "delay", "X-Kitchen-Delay", buf, sizeof buf)) &&
        parse_duration_ms(v, &j->delay_ms) != 0) {
        sb_httpd_respond_text(j->ex, 400, "kitchen: bad delay (e.g. 100ms, 2s)");
        return false;
    }
    uint64_t status;
    if ((v = ask(req, "status", "X-Kitchen-Status", buf, sizeof buf))) {
        if (parse_u64(v, 599, &status) != 0 || status < 200) {
            sb_httpd_respond_text(j->ex, 400, "kitchen: bad status (200..599)");
            return false;
        }
        j->status = (int)status;
        j->status_asked = true;
    }
    if ((v = ask(req, "size", "X-Kitchen-Size", buf, sizeof buf)) &&
        parse_u64(v, KITCHEN_MAX_SIZE, &j->size) != 0) {
        sb_httpd_respond_text(j->ex, 400, "kitchen: bad size (bytes, up to 2^40)");
        return false;
    }
    j->crash = truthy(ask(req, "crash", "X-Kitchen-Crash", buf, sizeof buf));
    j->chunked = truthy(ask(req, "chunked", NULL, buf, sizeof buf));
    j->reset_stats = truthy(query_get(req->query, "reset", buf, sizeof buf));
    return true;
}

static sb_httpd_body_mode on_head(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    kitchen *k = arg;
    job *j = calloc(1, sizeof *j);
    if (!j) {
        sb_httpd_respond_text(ex, 503, "kitchen: out of memory");
        return SB_HTTPD_STREAM;
    }
    j->k = k;
    j->ex = ex;
    j->status = 200;
    j->delay_ms = k->opt.delay_ms;
    if (strcmp(req->path, "/stats") == 0)
        j->kind = JOB_STATS;
    else if (strcmp(req->path, "/healthz") == 0)
        j->kind = JOB_HEALTH;
    else if (strcmp(req->path, "/echo") == 0)
        j->kind = JOB_ECHO;
    else
        j->kind = JOB_PLAIN;
    if (j->kind == JOB_STATS || j->kind == JOB_HEALTH) {
        j->delay_ms = 0; /* probes answer at once and are not counted */
        char buf[16];
        j->reset_stats =
            j->kind == JOB_STATS && truthy(query_get(req->query, "reset", buf, sizeof buf));
    } else {
        j->counted = true;
        j->number = ++k->requests;
        j->in_flight_at_start = ++k->in_flight;
        if (k->in_flight > k->max_in_flight)
            k->max_in_flight = k->in_flight;
        if (!job_read_asks(j, req)) {
            job_done(j);
            return SB_HTTPD_STREAM;
        }
        if (!j->status_asked && fail_by_rate(k, j->number))
            j->status = k->opt.fail_status;
        if (k->opt.crash_after && j->number >= k->opt.crash_after)
            j->crash = true;
        if (j->status >= 500)
            k->failed++;
    }
    sb_httpd_exchange_set_data(ex, j);
    return SB_HTTPD_STREAM;
}

static void on_body(void *arg, sb_httpd_exchange *ex, const char *data, size_t len)
{
    (void)arg;
    (void)data;
    job *j = sb_httpd_exchange_data(ex);
    if (j)
        j->body_bytes += len;
}

static void on_body_end(void *arg, sb_httpd_exchange *ex)
{
    kitchen *k = arg;
    job *j = sb_httpd_exchange_data(ex);
    if (!j)
        return;
    if (j->delay_ms == 0) {
        job_answer(j);
        return;
    }
    uv_timer_init(k->loop, &j->timer);
    j->timer.data = j;
    j->timer_open = true;
    uv_timer_start(&j->timer, job_timer_fired, j->delay_ms, 0);
}

static void on_drain(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    job *j = sb_httpd_exchange_data(ex);
    if (j && j->ex)
        job_stream_more(j);
}

static void on_abort(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    job *j = sb_httpd_exchange_data(ex);
    if (!j)
        return;
    if (j->timer_open)
        uv_timer_stop(&j->timer);
    job_done(j);
}

static void on_log(void *arg, sb_log_level level, const char *line)
{
    (void)arg;
    if (level <= SB_LOG_WARN)
        fprintf(stderr, "kitchen: %s\n", line);
}

/* ---- start, drain, stop -------------------------------------------------------------------- */

static void kitchen_server_closed(void *arg)
{
    kitchen *k = arg;
    k->srv = NULL;
    uv_close((uv_handle_t *)&k->drain_timer, NULL);
    uv_close((uv_handle_t *)&k->sigterm, NULL);
    uv_close((uv_handle_t *)&k->sigint, NULL);
    uv_close((uv_handle_t *)&k->start_timer, NULL);
}

static void kitchen_close(kitchen *k)
{
    if (k->closing)
        return;
    k->closing = true;
    if (k->srv)
        sb_httpd_close(k->srv, kitchen_server_closed, k);
    else
        kitchen_server_closed(k);
}

static void kitchen_maybe_finish(kitchen *k)
{
    if (k->draining && k->in_flight == 0)
        kitchen_close(k);
}

/* sb_httpd has no call to stop accepting while its connections carry on, and it listens on its
 * own dup() of our socket. So: find that dup (the other fd on the same socket) and put a
 * listening socket nobody can reach (an autobound abstract unix socket: accept says EAGAIN) in
 * its place, then close ours. The real socket is then closed (new connections are refused) and
 * the server's watcher, which only ever calls accept on that fd number, stays harmless. */
static void kitchen_stop_listening(kitchen *k)
{
    struct stat mine;
    if (k->listen_fd < 0 || fstat(k->listen_fd, &mine) != 0)
        return;
    int server_fd = -1;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        uint64_t fd;
        struct stat st;
        if (parse_u64(e->d_name, INT32_MAX, &fd) != 0 || (int)fd == k->listen_fd ||
            (int)fd == dirfd(d) || fstat((int)fd, &st) != 0)
            continue;
        if (S_ISSOCK(st.st_mode) && st.st_ino == mine.st_ino && st.st_dev == mine.st_dev)
            server_fd = (int)fd;
    }
    if (d)
        closedir(d);
    int sink = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    bool ready = sink >= 0 && bind(sink, (struct sockaddr *)&sun, sizeof(sa_family_t)) == 0 &&
                 listen(sink, 1) == 0;
    if (server_fd < 0 || !ready || dup3(sink, server_fd, O_CLOEXEC) < 0)
        fprintf(stderr, "kitchen: cannot stop listening (new connections are still accepted "
                        "while in-flight requests finish)\n");
    if (sink >= 0)
        close(sink);
    close(k->listen_fd);
    k->listen_fd = -1;
}

static void drain_timed_out(uv_timer_t *t)
{
    kitchen *k = t->data;
    fprintf(stderr, "kitchen: %" PRIu64 " request(s) still in flight after the drain timeout\n",
            k->in_flight);
    k->exit_code = 1;
    kitchen_close(k);
}

static void on_signal(uv_signal_t *s, int signum)
{
    kitchen *k = s->data;
    if (k->draining || k->closing)
        return;
    printf("kitchen: signal %d: draining %" PRIu64 " request(s) in flight\n", signum, k->in_flight);
    fflush(stdout);
    k->draining = true;
    if (!k->srv) { /* still in the start-up delay */
        kitchen_close(k);
        return;
    }
    kitchen_stop_listening(k);
    uv_timer_start(&k->drain_timer, drain_timed_out, k->opt.drain_timeout_ms, 0);
    kitchen_maybe_finish(k);
}

static void kitchen_listen(uv_timer_t *t)
{
    kitchen *k = t->data;
    char addr[128], err[256];
    snprintf(addr, sizeof addr, "%s:%d", k->opt.address, k->opt.port);
    k->listen_fd = sb_httpd_listen_socket(addr, 511, err, sizeof err);
    sb_httpd_callbacks cb = {.on_head = on_head,
                             .on_body = on_body,
                             .on_body_end = on_body_end,
                             .on_drain = on_drain,
                             .on_abort = on_abort,
                             .log = on_log};
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.max_connections = 4096;
    if (k->listen_fd >= 0)
        k->srv = sb_httpd_new_fd(k->loop, k->listen_fd, &cfg, &cb, k, err, sizeof err);
    if (!k->srv) {
        fprintf(stderr, "kitchen: %s\n", err);
        k->exit_code = 1;
        kitchen_close(k);
        return;
    }
    char local[128] = "?";
    sb_httpd_local_address(k->srv, local, sizeof local);
    int64_t now = wall_us();
    printf("kitchen: listening on %s pid=%ld start_ms=%" PRId64 " listen_ms=%" PRId64
           " (after %.3f ms)\n",
           local, (long)getpid(), k->start_us / 1000, now / 1000,
           (double)(now - k->start_us) / 1000.0);
    fflush(stdout);
}

/* ---- options ------------------------------------------------------------------------------- */

static void usage(FILE *to)
{
    fprintf(to, "usage: kitchen [--port N] [--address A] [--start-delay D] [--delay D]\n"
                "               [--fail-rate F] [--fail-status N] [--crash-after N]\n"
                "               [--drain-timeout D]\n"
                "environment: PORT KITCHEN_ADDRESS KITCHEN_START_DELAY KITCHEN_DELAY\n"
                "             KITCHEN_FAIL_RATE KITCHEN_FAIL_STATUS KITCHEN_CRASH_AFTER\n"
                "             KITCHEN_DRAIN_TIMEOUT (flags win)\n"
                "per request: ?delay=100ms ?status=503 ?crash=1 ?size=N ?chunked=1 (or the\n"
                "             X-Kitchen-Delay/-Status/-Crash/-Size headers); GET /echo, /stats,\n"
                "             /healthz\n");
}

/* One option's value: 0, or -1 with a line on stderr. */
static int set_option(kitchen_options *o, const char *name, const char *value)
{
    uint64_t u;
    if (strcmp(name, "port") == 0) {
        if (parse_u64(value, 65535, &u) != 0)
            goto bad;
        o->port = (int)u;
    } else if (strcmp(name, "address") == 0) {
        o->address = value;
    } else if (strcmp(name, "start-delay") == 0) {
        if (parse_duration_ms(value, &o->start_delay_ms) != 0)
            goto bad;
    } else if (strcmp(name, "delay") == 0) {
        if (parse_duration_ms(value, &o->delay_ms) != 0)
            goto bad;
    } else if (strcmp(name, "drain-timeout") == 0) {
        if (parse_duration_ms(value, &o->drain_timeout_ms) != 0)
            goto bad;
    } else if (strcmp(name, "fail-rate") == 0) {
        char *end = NULL;
        double r = strtod(value, &end);
        if (end == value || *end || !(r >= 0 && r <= 1))
            goto bad;
        o->fail_rate = r;
    } else if (strcmp(name, "fail-status") == 0) {
        if (parse_u64(value, 599, &u) != 0 || u < 200)
            goto bad;
        o->fail_status = (int)u;
    } else if (strcmp(name, "crash-after") == 0) {
        if (parse_u64(value, UINT64_MAX, &o->crash_after) != 0)
            goto bad;
    } else {
        fprintf(stderr, "kitchen: unknown option --%s\n", name);
        return -1;
    }
    return 0;
bad:
    fprintf(stderr, "kitchen: bad value for %s: '%s'\n", name, value);
    return -1;
}

static int read_options(kitchen_options *o, int argc, char **argv)
{
    static const struct {
        const char *env, *name;
    } envs[] = {{"PORT", "port"},
                {"KITCHEN_ADDRESS", "address"},
                {"KITCHEN_START_DELAY", "start-delay"},
                {"KITCHEN_DELAY", "delay"},
                {"KITCHEN_FAIL_RATE", "fail-rate"},
                {"KITCHEN_FAIL_STATUS", "fail-status"},
                {"KITCHEN_CRASH_AFTER", "crash-after"},
                {"KITCHEN_DRAIN_TIMEOUT", "drain-timeout"}};
    *o = (kitchen_options){
        .address = "127.0.0.1", .port = -1, .fail_status = 500, .drain_timeout_ms = 30000};
    for (size_t i = 0; i < sizeof envs / sizeof envs[0]; i++) {
        const char *v = getenv(envs[i].env);
        if (v && *v && set_option(o, envs[i].name, v) != 0)
            return -1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        if (strncmp(argv[i], "--", 2) != 0) {
            usage(stderr);
            return -1;
        }
        char name[32];
        const char *eq = strchr(argv[i], '=');
        const char *value;
        size_t nlen = eq ? (size_t)(eq - argv[i] - 2) : strlen(argv[i] + 2);
        if (nlen >= sizeof name) {
            fprintf(stderr, "kitchen: unknown option %s\n", argv[i]);
            return -1;
        }
        memcpy(name, argv[i] + 2, nlen);
        name[nlen] = '\0';
        if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "kitchen: --%s needs a value\n", name);
            return -1;
        }
        if (set_option(o, name, value) != 0)
            return -1;
    }
    if (o->port < 0) {
        fprintf(stderr, "kitchen: no port (set PORT or --port; 0 picks a free one)\n");
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    kitchen k = {.start_us = wall_us(), .listen_fd = -1};
    if (read_options(&k.opt, argc, argv) != 0)
        return 2;
    k.loop = uv_default_loop();
    uv_timer_init(k.loop, &k.start_timer);
    uv_timer_init(k.loop, &k.drain_timer);
    uv_signal_init(k.loop, &k.sigterm);
    uv_signal_init(k.loop, &k.sigint);
    k.start_timer.data = k.drain_timer.data = k.sigterm.data = k.sigint.data = &k;
    uv_signal_start(&k.sigterm, on_signal, SIGTERM);
    uv_signal_start(&k.sigint, on_signal, SIGINT);
    uv_timer_start(&k.start_timer, kitchen_listen, k.opt.start_delay_ms, 0);
    if (k.opt.start_delay_ms > 0) {
        printf("kitchen: pid=%ld listens in %" PRIu64 " ms\n", (long)getpid(),
               k.opt.start_delay_ms);
        fflush(stdout);
    }
    uv_run(k.loop, UV_RUN_DEFAULT);
    if (k.listen_fd >= 0)
        close(k.listen_fd);
    uv_loop_close(k.loop);
    if (k.exit_code == 0) {
        printf("kitchen: stopped after %" PRIu64 " request(s)\n", k.requests);
        fflush(stdout);
    }
    return k.exit_code;
}
