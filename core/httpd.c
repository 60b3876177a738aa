/*
 * httpd.c - the HTTP/1.1 server shared by the admin API and the router (see httpd.h for what it
 * promises). One sb_httpd owns a listening uv_tcp_t (or none), an idle handle that continues
 * connections outside the handler's call stack, and a list of connections.
 *
 * A connection reads into one fixed buffer that llhttp parses in place; whatever llhttp has not
 * consumed when it pauses (the end of a request whose response is pending, a paused body) stays
 * there, and reading stops once the buffer is full, so a client that pipelines or floods costs at
 * most read_buffer_size bytes. The request line and headers are copied into a per-connection
 * head buffer that grows up to the limits; the request handed to the handler points into it and
 * stays valid until the response ends, because the next request is parsed only after that.
 *
 * One timer per connection serves every timeout: conn_arm_timer() computes the next deadline
 * from the connection's phase (idle, head, body, waiting for the handler, closing, lingering)
 * and its write queue, and the timer callback acts on whichever deadline passed.
 */
#define _GNU_SOURCE /* F_DUPFD_CLOEXEC, SOCK_CLOEXEC */
#include "httpd.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <llhttp.h>

#define LINGER_MS 2000 /* read and drop a closed client's remaining bytes for this long */
#define FEED_MAX_BUFFER (16u << 20)

enum conn_phase {
    PHASE_IDLE,    /* between requests (keep-alive) */
    PHASE_HEAD,    /* reading a request line and headers */
    PHASE_BODY,    /* the head is complete; reading the body */
    PHASE_WAIT,    /* the request is complete; its response has not ended */
    PHASE_CLOSING, /* the last response is being written, then shutdown */
    PHASE_LINGER   /* shut down; reading and dropping what the client still sends */
};

struct sb_httpd_exchange {
    sb_httpd_conn *conn;
    void *data;
    sb_httpd_request req;
    bool active;        /* begun (head complete) and the response has not ended */
    bool handed;        /* the handler has seen it (on_head or on_request) */
    bool stream;        /* SB_HTTPD_STREAM */
    bool has_body;      /* chunked or Content-Length > 0 */
    bool body_done;     /* llhttp's message complete has run */
    bool body_paused;   /* the handler paused the body */
    bool want_continue; /* Expect: 100-continue and the 100 has not gone out */
    bool started;       /* response head written */
    bool chunked_out;
    bool eof_out;     /* close-delimited response (HTTP/1.0 client, unknown length) */
    bool no_body_out; /* HEAD, 204, 304 */
    bool drain_wanted;
    int64_t out_remaining; /* known-length stream: bytes still owed; -1 otherwise */
    char *body;            /* buffered body */
    size_t body_len, body_cap;
};

struct sb_httpd_conn {
    sb_httpd *srv;
    sb_httpd_conn *prev, *next; /* the server's list */
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown_req;
    int handles_open;
    bool is_feed;
    void (*out)(void *arg, const char *data, size_t len);
    void *out_arg;
    bool rejected; /* over max_connections: answered 503 */
    bool closing;  /* handles closing (socket) or closed (feed) */
    bool failed;   /* a write failed: closed from the idle handle */
    bool kicked;   /* continue it from the idle handle */
    bool reading;
    bool in_parse;
    bool eof_seen;
    bool close_after; /* close once the current response is written */
    bool reset_after; /* an aborted close-delimited response: close with a reset, not a FIN */
    bool upgrade;
    enum conn_phase phase;
    char peer[64];
    llhttp_t parser;

    char *in; /* read buffer: [in_start, in_end) not parsed yet */
    size_t in_start, in_end, in_cap;

    char *head; /* URL and header fields, NUL-separated */
    size_t head_len, head_cap;
    size_t url_len, url_off;
    size_t header_bytes, trailer_bytes;
    size_t (*hdr_off)[2]; /* name and value offsets into head */
    size_t hdr_count, hdr_cap;
    int hdr_state; /* 0 between fields, 1 in a name, 2 in a value */
    sb_httpd_header *hdr_list;
    int reject_status;
    const char *reject_text;

    sb_httpd_exchange ex;
    uint64_t head_deadline, last_read, last_write;
    size_t write_queued;
    /* A streamed response's head, held back until its first body bytes (or its end, or the end
     * of the loop iteration) so both go out in one write. */
    char *held;
    size_t held_len, held_cap;
    uint64_t timer_due; /* when the connection's timer fires; 0: not armed */
};

struct sb_httpd {
    uv_loop_t *loop;
    sb_httpd_config cfg;
    sb_httpd_callbacks cb;
    void *arg;
    llhttp_settings_t settings;
    uv_tcp_t listener;
    bool listening;
    uv_idle_t idle;
    bool idle_running;
    int handles_open; /* listener and idle */
    sb_httpd_conn *conns;
    size_t active, rejecting, kicks;
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
    sb_httpd_stats stats;
};

/* ---- small helpers ------------------------------------------------------------------------ */

void sb_httpd_config_defaults(sb_httpd_config *cfg)
{
    *cfg = (sb_httpd_config){
        .max_request_line = 8192,
        .max_header_bytes = 16384,
        .max_headers = 100,
        .max_body = 1u << 20,
        .max_connections = 1024,
        .header_timeout_ms = 10000,
        .idle_timeout_ms = 60000,
        .write_timeout_ms = 30000,
        .write_queue_max = 256u << 10,
        .read_buffer_size = 16384,
        .backlog = 511,
    };
}

static void config_fill(sb_httpd_config *dst, const sb_httpd_config *src)
{
    sb_httpd_config d;
    sb_httpd_config_defaults(&d);
    *dst = src ? *src : d;
#define FILL(f)                                                                                    \
    if (!dst->f)                                                                                   \
    dst->f = d.f
    FILL(max_request_line);
    FILL(max_header_bytes);
    FILL(max_headers);
    FILL(max_body);
    FILL(max_connections);
    FILL(header_timeout_ms);
    FILL(idle_timeout_ms);
    FILL(write_timeout_ms);
    FILL(write_queue_max);
    FILL(read_buffer_size);
    FILL(backlog);
#undef FILL
    if (dst->read_buffer_size < 1024)
        dst->read_buffer_size = 1024;
}

static void srv_log(sb_httpd *srv, sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void srv_log(sb_httpd *srv, sb_log_level level, const char *fmt, ...)
{
    if (!srv || !srv->cb.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    for (char *p = line; *p; p++) /* our own text only, but never a control character */
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    srv->cb.log(srv->arg, level, line);
}

/* Copy s into out with control characters and non-ASCII replaced (for messages). */
static void clean_copy(char *out, size_t len, const char *s)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len; i++)
        out[i] = ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f) ? '?' : s[i];
    out[i] = '\0';
}

static const struct {
    int status;
    const char *text;
} reason_phrases[] = {
    {100, "Continue"},
    {200, "OK"},
    {201, "Created"},
    {202, "Accepted"},
    {204, "No Content"},
    {206, "Partial Content"},
    {301, "Moved Permanently"},
    {302, "Found"},
    {303, "See Other"},
    {304, "Not Modified"},
    {307, "Temporary Redirect"},
    {308, "Permanent Redirect"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {411, "Length Required"},
    {413, "Content Too Large"},
    {414, "URI Too Long"},
    {415, "Unsupported Media Type"},
    {417, "Expectation Failed"},
    {422, "Unprocessable Content"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
    {505, "HTTP Version Not Supported"},
};

static const char *reason_phrase(int status)
{
    for (size_t i = 0; i < sizeof reason_phrases / sizeof *reason_phrases; i++)
        if (reason_phrases[i].status == status)
            return reason_phrases[i].text;
    return "Status";
}

/* A growing byte buffer for response heads. */
typedef struct obuf {
    char *p;
    size_t len, cap;
    bool oom;
} obuf;

static void ob_put(obuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void ob_puts(obuf *b, const char *s)
{
    ob_put(b, s, strlen(s));
}

/* ---- connection plumbing ---------------------------------------------------------------- */

static void conn_process(sb_httpd_conn *c);
static void conn_close(sb_httpd_conn *c);
static void conn_arm_timer(sb_httpd_conn *c);
static void conn_update_reading(sb_httpd_conn *c);
static void conn_finish_close(sb_httpd_conn *c);
static void conn_read_start(sb_httpd_conn *c);
static void conn_flush_held(sb_httpd_conn *c);

static void srv_idle_cb(uv_idle_t *h);

static void conn_kick(sb_httpd_conn *c)
{
    if (c->kicked || c->closing)
        return;
    c->kicked = true;
    c->srv->kicks++;
    if (!c->srv->idle_running && !c->srv->closing) {
        uv_idle_start(&c->srv->idle, srv_idle_cb);
        c->srv->idle_running = true;
    }
}

static void conn_unkick(sb_httpd_conn *c)
{
    if (c->kicked) {
        c->kicked = false;
        c->srv->kicks--;
    }
}

/* What a kick asks for: close a failed connection, finish a close that had to wait for
 * llhttp to return, or parse what the buffer holds. */
static void conn_continue(sb_httpd_conn *c)
{
    if (c->closing)
        return;
    conn_flush_held(c);
    if (c->failed)
        conn_close(c);
    else if (c->phase == PHASE_CLOSING && c->write_queued == 0)
        conn_finish_close(c);
    else
        conn_process(c);
}

static void srv_idle_cb(uv_idle_t *h)
{
    sb_httpd *srv = h->data;
    sb_httpd_conn *next;
    for (sb_httpd_conn *c = srv->conns; c && srv->kicks; c = next) {
        next = c->next;
        if (!c->kicked)
            continue;
        conn_unkick(c);
        conn_continue(c);
    }
    if (srv->kicks == 0 && srv->idle_running) {
        uv_idle_stop(&srv->idle);
        srv->idle_running = false;
    }
}

static void abort_exchange(sb_httpd_conn *c)
{
    sb_httpd_exchange *ex = &c->ex;
    if (!ex->active)
        return;
    ex->active = false;
    if (ex->handed && c->srv && c->srv->cb.on_abort)
        c->srv->cb.on_abort(c->srv->arg, ex);
}

static void srv_maybe_finish(sb_httpd *srv)
{
    if (!srv->closing || srv->handles_open > 0 || srv->conns)
        return;
    void (*cb)(void *) = srv->on_closed;
    void *arg = srv->closed_arg;
    free(srv);
    if (cb)
        cb(arg);
}

static void conn_unlink(sb_httpd_conn *c)
{
    sb_httpd *srv = c->srv;
    if (!srv)
        return;
    conn_unkick(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (!c->is_feed) {
        if (c->rejected)
            srv->rejecting--;
        else
            srv->active--;
    }
}

static void conn_free_memory(sb_httpd_conn *c)
{
    free(c->in);
    free(c->head);
    free(c->hdr_off);
    free(c->hdr_list);
    free(c->ex.body);
    free(c->held);
    free(c);
}

static void conn_handle_closed(uv_handle_t *h)
{
    sb_httpd_conn *c = h->data;
    if (--c->handles_open > 0)
        return;
    sb_httpd *srv = c->srv;
    conn_unlink(c);
    conn_free_memory(c);
    srv_maybe_finish(srv);
}

/* Close now (no lingering): the handler learns through on_abort if its exchange was active. */
static void conn_close(sb_httpd_conn *c)
{
    if (c->closing)
        return;
    abort_exchange(c);
    c->closing = true;
    c->held_len = 0; /* a held head is dropped with the connection */
    conn_unkick(c);
    if (c->is_feed) {
        if (c->out)
            c->out(c->out_arg, NULL, 0);
        return;
    }
    c->reading = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

typedef struct wreq {
    uv_write_t req;
    sb_httpd_conn *conn;
    size_t len;
    char data[];
} wreq;

static void conn_write_cb(uv_write_t *req, int status)
{
    wreq *w = (wreq *)req;
    sb_httpd_conn *c = w->conn;
    c->write_queued -= w->len;
    free(w);
    if (c->closing)
        return;
    if (status < 0) {
        srv_log(c->srv, SB_LOG_DEBUG, "httpd: %s: write failed: %s", c->peer, uv_strerror(status));
        conn_close(c);
        return;
    }
    c->last_write = uv_now(c->srv->loop);
    sb_httpd_exchange *ex = &c->ex;
    if (ex->active && ex->drain_wanted && c->write_queued <= c->srv->cfg.write_queue_max) {
        ex->drain_wanted = false;
        if (c->srv->cb.on_drain)
            c->srv->cb.on_drain(c->srv->arg, ex);
        if (c->closing)
            return;
    }
    if (c->phase == PHASE_CLOSING && c->write_queued == 0) {
        conn_finish_close(c);
        return;
    }
    if (c->phase == PHASE_IDLE && c->in_end > c->in_start)
        conn_kick(c);
    conn_update_reading(c);
    conn_arm_timer(c);
}

/* Queue a, b and d (any may be empty) as one write, after a held response head (see
 * write_head). Written at once with one writev when nothing is queued (no request, no copy, and
 * no epoll_ctl: libuv re-arms the watcher after each queued write it completes); only what the
 * socket did not take is copied and queued. 0, or a negative code (the connection is then marked
 * failed and closed from the idle handle, never from inside a handler's call). */
static int conn_write3(sb_httpd_conn *c, const char *a, size_t al, const char *b, size_t bl,
                       const char *d, size_t dl)
{
    if (c->closing || c->failed)
        return -EPIPE;
    uv_buf_t bufs[4];
    unsigned n = 0;
    if (c->held_len)
        bufs[n++] = uv_buf_init(c->held, (unsigned)c->held_len);
    if (al)
        bufs[n++] = uv_buf_init((char *)a, (unsigned)al);
    if (bl)
        bufs[n++] = uv_buf_init((char *)b, (unsigned)bl);
    if (dl)
        bufs[n++] = uv_buf_init((char *)d, (unsigned)dl);
    size_t len = c->held_len + al + bl + dl;
    c->held_len = 0; /* its bytes are in bufs until this returns */
    if (len == 0)
        return 0;
    if (c->is_feed) {
        if (c->out)
            for (unsigned i = 0; i < n; i++)
                c->out(c->out_arg, bufs[i].base, bufs[i].len);
        return 0;
    }
    size_t done = 0;
    if (c->write_queued == 0) {
        int r = uv_try_write((uv_stream_t *)&c->tcp, bufs, n);
        if (r >= 0)
            done = (size_t)r;
        else if (r != UV_EAGAIN) {
            /* as a queued write that fails: the handler hears on_abort from the idle handle */
            srv_log(c->srv, SB_LOG_DEBUG, "httpd: %s: write failed: %s", c->peer, uv_strerror(r));
            c->failed = true;
            conn_kick(c);
            return 0;
        }
        if (done == len) {
            c->last_write = uv_now(c->srv->loop);
            return 0;
        }
    }
    wreq *w = malloc(sizeof *w + (len - done));
    if (!w) {
        c->failed = true;
        conn_kick(c);
        return -ENOMEM;
    }
    w->conn = c;
    w->len = len - done;
    size_t at = 0, skip = done;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (skip >= l) {
            skip -= l;
            continue;
        }
        memcpy(w->data + at, bufs[i].base + skip, l - skip);
        at += l - skip;
        skip = 0;
    }
    uv_buf_t buf = uv_buf_init(w->data, (unsigned)w->len);
    if (c->write_queued == 0)
        c->last_write = uv_now(c->srv->loop); /* the write timeout counts from here */
    int r = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, conn_write_cb);
    if (r < 0) {
        free(w);
        c->failed = true;
        conn_kick(c);
        return r;
    }
    c->write_queued += w->len;
    return 0;
}

/* Write a held response head now (nothing followed it within the loop iteration). */
static void conn_flush_held(sb_httpd_conn *c)
{
    if (c->held_len)
        conn_write3(c, NULL, 0, NULL, 0, NULL, 0);
}

static void conn_shutdown_cb(uv_shutdown_t *req, int status)
{
    sb_httpd_conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0)
        conn_close(c);
}

/* Close with a reset: the client sees an error, not an end (an aborted close-delimited
 * response, whose FIN would read as complete). */
static void conn_reset(sb_httpd_conn *c)
{
    if (c->closing)
        return;
    abort_exchange(c);
    c->closing = true;
    c->held_len = 0;
    conn_unkick(c);
    c->reading = false;
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (uv_tcp_close_reset(&c->tcp, conn_handle_closed) != 0)
        uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

/* The last response has been written: FIN, then linger reading until EOF or LINGER_MS. */
static void conn_finish_close(sb_httpd_conn *c)
{
    if (c->closing)
        return;
    if (c->is_feed) {
        conn_close(c);
        return;
    }
    if (c->reset_after) {
        conn_reset(c);
        return;
    }
    c->shutdown_req.data = c;
    if (uv_shutdown(&c->shutdown_req, (uv_stream_t *)&c->tcp, conn_shutdown_cb) < 0) {
        conn_close(c);
        return;
    }
    c->phase = PHASE_LINGER;
    c->head_deadline = uv_now(c->srv->loop) + LINGER_MS;
    c->in_start = c->in_end = 0;
    conn_update_reading(c);
    conn_arm_timer(c);
}

/* A response of the server's own (400, 408, 413...), then close. */
static void conn_fail(sb_httpd_conn *c, int status, const char *text)
{
    if (c->closing)
        return;
    sb_httpd *srv = c->srv;
    if (!c->rejected)
        srv->stats.errors++;
    srv_log(srv, status >= 500 ? SB_LOG_WARN : SB_LOG_INFO, "httpd: %s: %d %s", c->peer, status,
            text);
    bool started = c->ex.started;
    abort_exchange(c);
    if (c->closing)
        return;
    if (started) { /* a response is on its way already: cutting it is all that is left */
        conn_close(c);
        return;
    }
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     status, reason_phrase(status), strlen(text) + 1);
    c->close_after = true;
    c->phase = PHASE_CLOSING;
    if (conn_write3(c, head, (size_t)n, text, strlen(text), "\n", 1) < 0) {
        conn_close(c);
        return;
    }
    if (c->write_queued == 0)
        conn_finish_close(c);
    else {
        conn_update_reading(c);
        conn_arm_timer(c);
    }
}

static bool conn_can_parse(const sb_httpd_conn *c)
{
    if (c->closing || c->failed)
        return false;
    switch (c->phase) {
    case PHASE_IDLE:
    case PHASE_HEAD:
        return c->write_queued <= c->srv->cfg.write_queue_max;
    case PHASE_BODY:
        return !(c->ex.stream && c->ex.body_paused);
    default:
        return false;
    }
}

static void conn_update_reading(sb_httpd_conn *c)
{
    if (c->closing || c->is_feed)
        return;
    if (!c->in_parse && c->in_start > 0) { /* llhttp holds no pointer between executes */
        memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
        c->in_end -= c->in_start;
        c->in_start = 0;
    }
    bool want;
    if (c->phase == PHASE_LINGER)
        want = true;
    else
        want = !c->eof_seen && c->phase != PHASE_CLOSING && c->in_end < c->in_cap &&
               c->write_queued <= c->srv->cfg.write_queue_max &&
               !(c->phase == PHASE_BODY && c->ex.stream && c->ex.body_paused);
    if (want == c->reading)
        return;
    c->reading = want;
    if (!want)
        uv_read_stop((uv_stream_t *)&c->tcp);
    else
        conn_read_start(c);
}

static void conn_timer_cb(uv_timer_t *t);

static void conn_arm_timer(sb_httpd_conn *c)
{
    if (c->closing || c->is_feed)
        return;
    const sb_httpd_config *cfg = &c->srv->cfg;
    uint64_t deadline = 0;
    if (c->phase == PHASE_LINGER)
        deadline = c->head_deadline;
    else if (c->write_queued > 0)
        deadline = c->last_write + cfg->write_timeout_ms;
    else if (c->phase == PHASE_IDLE)
        deadline = c->last_read + cfg->idle_timeout_ms;
    else if (c->phase == PHASE_HEAD)
        deadline = c->head_deadline;
    else if (c->phase == PHASE_BODY && !(c->ex.stream && c->ex.body_paused))
        deadline = c->last_read + cfg->idle_timeout_ms;
    /* Lazily: a timer due no later than the deadline stays as it is (it fires, finds nothing
     * passed, and is armed again for what is due then), so a request served within the
     * timeouts costs no timer operation. Without a deadline it is left to fire once. */
    if (deadline == 0 || (c->timer_due && c->timer_due <= deadline))
        return;
    uint64_t now = uv_now(c->srv->loop);
    c->timer_due = deadline;
    uv_timer_start(&c->timer, conn_timer_cb, deadline > now ? deadline - now : 0, 0);
}

static void conn_timer_cb(uv_timer_t *t)
{
    sb_httpd_conn *c = t->data;
    const sb_httpd_config *cfg = &c->srv->cfg;
    uint64_t now = uv_now(c->srv->loop);
    c->timer_due = 0;
    if (c->phase == PHASE_LINGER) {
        if (now >= c->head_deadline) {
            conn_close(c);
            return;
        }
    } else if (c->write_queued > 0) {
        if (now >= c->last_write + cfg->write_timeout_ms) {
            srv_log(c->srv, SB_LOG_INFO, "httpd: %s: write timeout (%llu ms without progress)",
                    c->peer, (unsigned long long)cfg->write_timeout_ms);
            conn_close(c);
            return;
        }
    } else if (c->phase == PHASE_IDLE) {
        if (now >= c->last_read + cfg->idle_timeout_ms) {
            conn_close(c); /* an idle keep-alive connection: nothing to say */
            return;
        }
    } else if (c->phase == PHASE_HEAD) {
        if (now >= c->head_deadline) {
            conn_fail(c, 408, "request head not received in time");
            return;
        }
    } else if (c->phase == PHASE_BODY && !(c->ex.stream && c->ex.body_paused)) {
        if (now >= c->last_read + cfg->idle_timeout_ms) {
            conn_fail(c, 408, "request body stopped arriving");
            return;
        }
    }
    conn_arm_timer(c);
}

static void conn_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sb_httpd_conn *c = h->data;
    (void)suggested;
    if (c->phase == PHASE_LINGER)
        c->in_start = c->in_end = 0;
    *buf = uv_buf_init(c->in + c->in_end, (unsigned)(c->in_cap - c->in_end));
}

static void conn_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    sb_httpd_conn *c = s->data;
    (void)buf;
    if (c->closing)
        return;
    if (nread > 0) {
        c->last_read = uv_now(c->srv->loop);
        if (c->phase == PHASE_LINGER) {
            c->in_start = c->in_end = 0;
            return;
        }
        c->in_end += (size_t)nread;
        conn_process(c);
        return;
    }
    if (nread == 0)
        return;
    if (nread == UV_ENOBUFS) { /* the buffer is full: wait for the parser */
        c->reading = false;
        uv_read_stop(s);
        return;
    }
    if (nread != UV_EOF)
        srv_log(c->srv, SB_LOG_DEBUG, "httpd: %s: read failed: %s", c->peer,
                uv_strerror((int)nread));
    c->eof_seen = true;
    switch (c->phase) {
    case PHASE_CLOSING:
        return;
    case PHASE_HEAD:
    case PHASE_BODY:
        if (c->in_end > c->in_start && nread == UV_EOF) { /* still bytes to parse first */
            conn_update_reading(c);
            return;
        }
        if (c->phase == PHASE_BODY || c->head_len > 0)
            srv_log(c->srv, SB_LOG_DEBUG, "httpd: %s: closed in the middle of a request", c->peer);
        conn_close(c);
        return;
    default:
        conn_close(c);
        return;
    }
}

static void conn_read_start(sb_httpd_conn *c)
{
    if (uv_read_start((uv_stream_t *)&c->tcp, conn_alloc_cb, conn_read_cb) < 0) {
        c->reading = false;
        c->failed = true;
        conn_kick(c);
    }
}

/* ---- llhttp callbacks ------------------------------------------------------------------- */

static int reject(sb_httpd_conn *c, int status, const char *text)
{
    c->reject_status = status;
    c->reject_text = text;
    return HPE_USER;
}

/* Room for len more bytes and a NUL in the head buffer (bounded by the callers' limits). */
static int head_reserve(sb_httpd_conn *c, size_t len)
{
    if (c->head_len + len + 1 > c->head_cap) {
        size_t cap = c->head_cap ? c->head_cap : 512;
        while (cap < c->head_len + len + 1)
            cap *= 2;
        char *p = realloc(c->head, cap);
        if (!p)
            return reject(c, 503, "out of memory");
        c->head = p;
        c->head_cap = cap;
    }
    return 0;
}

/* Append bytes from outside the head buffer. */
static int head_put(sb_httpd_conn *c, const char *at, size_t len)
{
    int r = head_reserve(c, len);
    if (r)
        return r;
    memcpy(c->head + c->head_len, at, len);
    c->head_len += len;
    c->head[c->head_len] = '\0';
    return 0;
}

static int on_message_begin(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    if (c->phase == PHASE_IDLE) {
        c->phase = PHASE_HEAD;
        c->head_deadline = uv_now(c->srv->loop) + c->srv->cfg.header_timeout_ms;
    }
    c->head_len = 0;
    c->url_len = 0;
    c->url_off = 0;
    c->header_bytes = 0;
    c->trailer_bytes = 0;
    c->hdr_count = 0;
    c->hdr_state = 0;
    sb_httpd_exchange *ex = &c->ex;
    char *body = ex->body;
    size_t body_cap = ex->body_cap;
    if (body_cap > 65536) {
        free(body);
        body = NULL;
        body_cap = 0;
    }
    *ex = (sb_httpd_exchange){.conn = c, .body = body, .body_cap = body_cap, .out_remaining = -1};
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len)
{
    sb_httpd_conn *c = p->data;
    c->url_len += len;
    if (c->url_len + 16 > c->srv->cfg.max_request_line)
        return reject(c, 414, "request line too long");
    return head_put(c, at, len);
}

static int on_url_complete(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    return head_put(c, "", 1); /* the NUL ends the URL */
}

static int count_header_bytes(sb_httpd_conn *c, size_t len)
{
    const sb_httpd_config *cfg = &c->srv->cfg;
    if (c->phase != PHASE_HEAD) { /* trailers of a chunked body: counted, never kept */
        c->trailer_bytes += len;
        if (c->trailer_bytes > cfg->max_header_bytes)
            return reject(c, 431, "trailer fields too large");
        return 1;
    }
    c->header_bytes += len;
    if (c->header_bytes > cfg->max_header_bytes)
        return reject(c, 431, "header fields too large");
    return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len)
{
    sb_httpd_conn *c = p->data;
    int r = count_header_bytes(c, len + (c->hdr_state != 1 ? 4 : 0));
    if (r != 0)
        return r == HPE_USER ? r : 0;
    if (c->hdr_state != 1) {
        if (c->hdr_count >= c->srv->cfg.max_headers)
            return reject(c, 431, "too many header fields");
        if (c->hdr_count == c->hdr_cap) {
            size_t cap = c->hdr_cap ? c->hdr_cap * 2 : 16;
            size_t(*o)[2] = realloc(c->hdr_off, cap * sizeof *o);
            if (!o)
                return reject(c, 503, "out of memory");
            c->hdr_off = o;
            c->hdr_cap = cap;
        }
        c->hdr_off[c->hdr_count][0] = c->head_len;
        c->hdr_state = 1;
    }
    return head_put(c, at, len);
}

static int on_header_field_complete(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    if (c->phase != PHASE_HEAD)
        return 0;
    if (c->hdr_state != 1) /* an empty name: llhttp refuses those; be safe anyway */
        return reject(c, 400, "empty header name");
    return head_put(c, "", 1);
}

static int on_header_value(llhttp_t *p, const char *at, size_t len)
{
    sb_httpd_conn *c = p->data;
    int r = count_header_bytes(c, len);
    if (r != 0)
        return r == HPE_USER ? r : 0;
    if (c->hdr_state == 0)
        return reject(c, 400, "header value without a name");
    if (c->hdr_state != 2) {
        c->hdr_off[c->hdr_count][1] = c->head_len;
        c->hdr_state = 2;
    }
    return head_put(c, at, len);
}

static int on_header_value_complete(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    if (c->phase != PHASE_HEAD)
        return 0;
    if (c->hdr_state == 1) { /* an empty value */
        c->hdr_off[c->hdr_count][1] = c->head_len;
    } else if (c->hdr_state != 2) {
        return reject(c, 400, "header value without a name");
    }
    int r = head_put(c, "", 1);
    if (r)
        return r;
    c->hdr_count++;
    c->hdr_state = 0;
    return 0;
}

static bool token_in_list(const char *list, const char *token)
{
    size_t tl = strlen(token);
    const char *s = list;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        const char *e = s;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > s && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - s) == tl && strncasecmp(s, token, tl) == 0)
            return true;
        s = e;
    }
    return false;
}

/* Build the request the handler sees; every pointer is taken after the last growth. */
static int build_request(sb_httpd_conn *c)
{
    size_t target_off = c->url_off;
    /* path\0query\0 after the headers */
    size_t path_off = c->head_len;
    int r = head_reserve(c, c->url_len + 1); /* first: the copy's source is in this buffer */
    if (r)
        return r;
    memcpy(c->head + path_off, c->head + target_off, c->url_len);
    c->head_len += c->url_len;
    c->head[c->head_len++] = '\0';
    if (!c->hdr_list || c->hdr_count > 0) {
        sb_httpd_header *l = realloc(c->hdr_list, (c->hdr_count + 1) * sizeof *l);
        if (!l)
            return reject(c, 503, "out of memory");
        c->hdr_list = l;
    }
    char *path = c->head + path_off;
    char *q = strchr(path, '?');
    const char *query = "";
    if (q) {
        *q = '\0';
        query = q + 1;
    }
    for (size_t i = 0; i < c->hdr_count; i++) {
        c->hdr_list[i].name = c->head + c->hdr_off[i][0];
        c->hdr_list[i].value = c->head + c->hdr_off[i][1];
    }
    llhttp_t *p = &c->parser;
    sb_httpd_request *req = &c->ex.req;
    *req = (sb_httpd_request){
        .method = llhttp_method_name((llhttp_method_t)p->method),
        .target = c->head + target_off,
        .path = path,
        .query = query,
        .version_major = p->http_major,
        .version_minor = p->http_minor,
        .headers = c->hdr_list,
        .header_count = c->hdr_count,
        .peer = c->peer,
        .keep_alive = llhttp_should_keep_alive(p) != 0,
        .head = p->method == HTTP_HEAD,
        .chunked = (p->flags & F_CHUNKED) != 0,
        .content_length = (p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED)
                              ? (int64_t)p->content_length
                              : -1,
    };
    return 0;
}

static void send_continue(sb_httpd_exchange *ex)
{
    if (!ex->want_continue || ex->started)
        return;
    ex->want_continue = false;
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    conn_write3(ex->conn, cont, sizeof cont - 1, NULL, 0, NULL, 0);
}

static int on_headers_complete(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    sb_httpd *srv = c->srv;
    sb_httpd_exchange *ex = &c->ex;
    if (p->http_major != 1)
        return reject(c, 505, "HTTP version not supported");
    if (p->method == HTTP_CONNECT)
        return reject(c, 405, "CONNECT is not supported");
    int r = build_request(c);
    if (r)
        return r;
    if (p->upgrade) { /* never switched to: answer as a plain request, then close */
        c->upgrade = true;
        ex->req.keep_alive = false;
    }
    const char *expect = sb_httpd_header_get(&ex->req, "expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return reject(c, 417, "unsupported expectation");
        ex->want_continue = p->http_minor >= 1;
    }
    ex->has_body = ex->req.chunked || ex->req.content_length > 0;
    ex->active = true;
    c->phase = PHASE_BODY;
    srv->stats.requests++;
    sb_httpd_body_mode mode = SB_HTTPD_BUFFER;
    if (srv->cb.on_head) {
        ex->handed = true;
        mode = srv->cb.on_head(srv->arg, ex, &ex->req);
        if (c->closing)
            return HPE_USER;
        if (!ex->active) /* answered already: the body (if any) is never read */
            return HPE_PAUSED;
    }
    ex->stream = mode == SB_HTTPD_STREAM;
    if (!ex->stream && ex->req.content_length > (int64_t)srv->cfg.max_body)
        return reject(c, 413, "request body too large");
    if (ex->has_body && !(ex->stream && ex->body_paused))
        send_continue(ex);
    if (ex->stream && ex->body_paused)
        return HPE_PAUSED;
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len)
{
    sb_httpd_conn *c = p->data;
    sb_httpd *srv = c->srv;
    sb_httpd_exchange *ex = &c->ex;
    if (!ex->active)
        return 0; /* answered before its body: dropped (the connection closes) */
    if (!ex->stream) {
        if (ex->body_len + len > srv->cfg.max_body)
            return reject(c, 413, "request body too large");
        if (ex->body_len + len + 1 > ex->body_cap) {
            size_t cap = ex->body_cap ? ex->body_cap : 1024;
            while (cap < ex->body_len + len + 1)
                cap *= 2;
            char *b = realloc(ex->body, cap);
            if (!b)
                return reject(c, 503, "out of memory");
            ex->body = b;
            ex->body_cap = cap;
        }
        memcpy(ex->body + ex->body_len, at, len);
        ex->body_len += len;
        return 0;
    }
    if (srv->cb.on_body)
        srv->cb.on_body(srv->arg, ex, at, len);
    if (c->closing)
        return HPE_USER;
    if (!ex->active || ex->body_paused)
        return HPE_PAUSED;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    sb_httpd_conn *c = p->data;
    sb_httpd *srv = c->srv;
    sb_httpd_exchange *ex = &c->ex;
    ex->body_done = true;
    if (!ex->active)
        return HPE_PAUSED; /* answered already */
    c->phase = PHASE_WAIT;
    if (ex->stream) {
        if (srv->cb.on_body_end)
            srv->cb.on_body_end(srv->arg, ex);
    } else {
        if (ex->body)
            ex->body[ex->body_len] = '\0';
        ex->handed = true;
        if (srv->cb.on_request)
            srv->cb.on_request(srv->arg, ex, &ex->req, ex->body ? ex->body : "", ex->body_len);
        else
            sb_httpd_respond_text(ex, 404, "no handler");
    }
    return c->closing ? HPE_USER : HPE_PAUSED;
}

static void settings_init(llhttp_settings_t *s)
{
    llhttp_settings_init(s);
    s->on_message_begin = on_message_begin;
    s->on_url = on_url;
    s->on_url_complete = on_url_complete;
    s->on_header_field = on_header_field;
    s->on_header_field_complete = on_header_field_complete;
    s->on_header_value = on_header_value;
    s->on_header_value_complete = on_header_value_complete;
    s->on_headers_complete = on_headers_complete;
    s->on_body = on_body;
    s->on_message_complete = on_message_complete;
}

/* Parse what the buffer holds, as far as the connection's state allows. */
static void conn_process(sb_httpd_conn *c)
{
    if (c->in_parse)
        return;
    while (c->in_end > c->in_start && conn_can_parse(c)) {
        const char *data = c->in + c->in_start;
        size_t len = c->in_end - c->in_start;
        c->in_parse = true;
        llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
        c->in_parse = false;
        if (c->closing)
            return;
        if (err == HPE_OK) {
            c->in_start = c->in_end;
            break;
        }
        if (err == HPE_PAUSED) {
            const char *pos = llhttp_get_error_pos(&c->parser);
            size_t used = pos && pos >= data && pos <= data + len ? (size_t)(pos - data) : len;
            c->in_start += used;
            llhttp_resume(&c->parser);
            continue;
        }
        if (c->reject_status) { /* ours (HPE_USER, or HPE_CB_* from a non-span callback) */
            conn_fail(c, c->reject_status, c->reject_text);
        } else if (err == HPE_PAUSED_UPGRADE) {
            conn_fail(c, 400, "protocol upgrade after a request is not served");
        } else {
            char reason[96];
            clean_copy(reason, sizeof reason,
                       llhttp_get_error_reason(&c->parser) ? llhttp_get_error_reason(&c->parser)
                                                           : llhttp_errno_name(err));
            srv_log(c->srv, SB_LOG_DEBUG, "httpd: %s: llhttp: %s", c->peer, reason);
            conn_fail(c, 400, "bad request");
        }
        return;
    }
    if (c->in_start == c->in_end)
        c->in_start = c->in_end = 0;
    if (c->eof_seen && !c->closing && c->in_start == c->in_end && c->phase != PHASE_CLOSING &&
        c->phase != PHASE_LINGER) { /* nobody left to answer (as nginx, a closed client's
                                        pending request is abandoned) */
        conn_close(c);
        return;
    }
    conn_update_reading(c);
    conn_arm_timer(c);
}

/* ---- the exchange's side: responses -------------------------------------------------------- */

void sb_httpd_exchange_set_data(sb_httpd_exchange *ex, void *data)
{
    ex->data = data;
}

void *sb_httpd_exchange_data(const sb_httpd_exchange *ex)
{
    return ex->data;
}

const sb_httpd_request *sb_httpd_exchange_request(const sb_httpd_exchange *ex)
{
    return &ex->req;
}

const char *sb_httpd_header_get(const sb_httpd_request *req, const char *name)
{
    for (size_t i = 0; i < req->header_count; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

static bool field_ok(const char *s, bool name)
{
    if (!s || (name && !*s))
        return false;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '\r' || ch == '\n')
            return false;
        if (name && (ch <= ' ' || ch == ':' || ch >= 0x7f))
            return false;
    }
    return true;
}

/* The response has ended (from the handler's side): continue or close the connection. */
static void exchange_end(sb_httpd_exchange *ex)
{
    sb_httpd_conn *c = ex->conn;
    ex->active = false;
    ex->drain_wanted = false;
    bool body_read = ex->body_done || !ex->has_body;
    if (!body_read || !ex->req.keep_alive || c->upgrade || c->eof_seen)
        c->close_after = true;
    if (c->close_after) {
        c->phase = PHASE_CLOSING;
        if (c->write_queued == 0 && !c->in_parse)
            conn_finish_close(c);
        else if (c->write_queued == 0)
            conn_kick(c); /* finished from the idle handle, outside llhttp */
    } else {
        c->phase = PHASE_IDLE;
        c->last_read = c->srv ? uv_now(c->srv->loop) : 0;
        if (!c->in_parse)
            conn_kick(c);
    }
    conn_update_reading(c);
    conn_arm_timer(c);
}

/* The response head. length: >= 0 known, -1 chunked or close-delimited. */
static int write_head(sb_httpd_exchange *ex, int status, const sb_httpd_header *headers, size_t n,
                      int64_t length, bool whole, const char *body, size_t body_len)
{
    sb_httpd_conn *c = ex->conn;
    if (status < 200 || status > 599)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!field_ok(headers[i].name, true) || !field_ok(headers[i].value, false))
            return -EINVAL;
    ex->no_body_out = ex->req.head || status == 204 || status == 304;
    obuf b = {.p = c->held, .cap = c->held_cap};
    /* by hand, not printf: this runs for every answer */
    char status_line[16] = "HTTP/1.1 000 ";
    status_line[9] = (char)('0' + status / 100);
    status_line[10] = (char)('0' + status / 10 % 10);
    status_line[11] = (char)('0' + status % 10);
    ob_put(&b, status_line, 13);
    ob_puts(&b, reason_phrase(status));
    ob_put(&b, "\r\n", 2);
    for (size_t i = 0; i < n; i++) {
        const char *name = headers[i].name;
        size_t name_len = strlen(name); /* one comparison at most, by length */
        if ((name_len == 14 && strcasecmp(name, "content-length") == 0) ||
            (name_len == 17 && strcasecmp(name, "transfer-encoding") == 0))
            continue;
        if (name_len == 10 && strcasecmp(name, "connection") == 0) {
            if (token_in_list(headers[i].value, "close"))
                c->close_after = true;
            continue;
        }
        ob_put(&b, name, name_len);
        ob_put(&b, ": ", 2);
        ob_puts(&b, headers[i].value);
        ob_put(&b, "\r\n", 2);
    }
    if (status != 204 && status != 304) {
        if (length >= 0) {
            char digits[24];
            size_t d = sizeof digits;
            uint64_t v = (uint64_t)length;
            do
                digits[--d] = (char)('0' + v % 10);
            while ((v /= 10) && d > 0);
            ob_put(&b, "Content-Length: ", 16);
            ob_put(&b, digits + d, sizeof digits - d);
            ob_put(&b, "\r\n", 2);
        }
        else if (length < 0 && !ex->no_body_out) {
            if (ex->req.version_minor >= 1)
                ex->chunked_out = true;
            else
                ex->eof_out = true;
        } else if (length < 0 && ex->req.head && ex->req.version_minor >= 1) {
            ob_puts(&b, "Transfer-Encoding: chunked\r\n"); /* what a GET would have got */
        }
    }
    if (ex->chunked_out)
        ob_puts(&b, "Transfer-Encoding: chunked\r\n");
    /* A whole response while the body is unread: the connection cannot be reused. A stream may
     * still see the body out (else exchange_end closes the connection after it). */
    bool unread = whole && ex->has_body && !ex->body_done;
    if (ex->eof_out || unread || !ex->req.keep_alive || c->upgrade)
        c->close_after = true;
    if (c->close_after)
        ob_puts(&b, "Connection: close\r\n");
    else if (ex->req.version_minor == 0)
        ob_puts(&b, "Connection: keep-alive\r\n");
    ob_put(&b, "\r\n", 2);
    if (b.oom) {
        free(b.p);
        c->held = NULL;
        c->held_cap = 0;
        c->failed = true; /* nothing was sent: the connection cannot go on */
        conn_kick(c);
        return -ENOMEM;
    }
    ex->started = true;
    ex->want_continue = false;
    c->held = b.p; /* the buffer is kept for the next head */
    c->held_cap = b.cap;
    if (!whole) { /* held until the body's first bytes, its end, or the loop's next turn */
        if (!c->closing && !c->failed) {
            c->held_len = b.len;
            conn_kick(c);
        }
        return 0;
    }
    int r = conn_write3(c, b.p, b.len, body, ex->no_body_out ? 0 : body_len, NULL, 0);
    if (c->held_cap > 65536) { /* an unusually large head: do not keep its buffer */
        free(c->held);
        c->held = NULL;
        c->held_cap = 0;
    }
    return r == -EPIPE ? 0 : r;
}

int sb_httpd_respond(sb_httpd_exchange *ex, int status, const sb_httpd_header *headers, size_t n,
                     const void *body, size_t len)
{
    if (!ex->active || ex->started)
        return -EINVAL;
    int r = write_head(ex, status, headers, n, (int64_t)len, true, body, len);
    if (r == -EINVAL)
        return r;
    exchange_end(ex);
    return r;
}

int sb_httpd_respond_text(sb_httpd_exchange *ex, int status, const char *text)
{
    size_t len = strlen(text);
    char *body = malloc(len + 2);
    if (!body) {
        if (ex->active && !ex->started) {
            ex->conn->failed = true;
            conn_kick(ex->conn);
        }
        return -ENOMEM;
    }
    memcpy(body, text, len);
    body[len] = '\n';
    static const sb_httpd_header h[] = {{"Content-Type", "text/plain; charset=utf-8"}};
    int r = sb_httpd_respond(ex, status, h, 1, body, len + 1);
    free(body);
    return r;
}

int sb_httpd_stream_start(sb_httpd_exchange *ex, int status, const sb_httpd_header *headers,
                          size_t n, int64_t content_length)
{
    if (!ex->active || ex->started)
        return -EINVAL;
    ex->out_remaining = content_length >= 0 ? content_length : -1;
    return write_head(ex, status, headers, n, content_length < 0 ? -1 : content_length, false, NULL,
                      0);
}

int sb_httpd_stream_write(sb_httpd_exchange *ex, const void *data, size_t len)
{
    if (!ex->active || !ex->started)
        return -EINVAL;
    sb_httpd_conn *c = ex->conn;
    if (ex->out_remaining >= 0) {
        if ((int64_t)len > ex->out_remaining)
            return -EINVAL;
        ex->out_remaining -= (int64_t)len;
    }
    if (len == 0 || ex->no_body_out)
        return 0;
    int r;
    if (ex->chunked_out) {
        char size[24];
        int sl = snprintf(size, sizeof size, "%zx\r\n", len);
        r = conn_write3(c, size, (size_t)sl, data, len, "\r\n", 2);
    } else {
        r = conn_write3(c, data, len, NULL, 0, NULL, 0);
    }
    if (r < 0 && r != -EPIPE)
        return r;
    if (c->failed || c->closing)
        return 1; /* the connection broke: no on_drain, on_abort follows from the loop */
    if (c->write_queued > c->srv->cfg.write_queue_max) {
        ex->drain_wanted = true;
        conn_update_reading(c);
        return 1;
    }
    return 0;
}

int sb_httpd_stream_end(sb_httpd_exchange *ex)
{
    if (!ex->active || !ex->started)
        return -EINVAL;
    int r = 0;
    if (ex->chunked_out && !ex->no_body_out)
        r = conn_write3(ex->conn, "0\r\n\r\n", 5, NULL, 0, NULL, 0);
    if (ex->out_remaining > 0) /* the client was promised more: it can only see a cut */
        ex->conn->close_after = true;
    conn_flush_held(ex->conn);
    exchange_end(ex);
    return r == -EPIPE ? 0 : r;
}

int sb_httpd_stream_abort(sb_httpd_exchange *ex)
{
    if (!ex->active)
        return -EINVAL;
    sb_httpd_conn *c = ex->conn;
    /* No last chunk and no more bytes: a chunked or known-length answer is visibly cut by the
     * close; a close-delimited one (HTTP/1.0) would read as complete after a FIN: reset. */
    c->close_after = true;
    if (ex->eof_out || !ex->started)
        c->reset_after = true;
    conn_flush_held(c);
    exchange_end(ex);
    return 0;
}

void sb_httpd_body_pause(sb_httpd_exchange *ex)
{
    if (!ex->active || ex->body_done) /* in on_head too, before the mode is known */
        return;
    ex->body_paused = true;
    if (!ex->conn->in_parse) {
        conn_update_reading(ex->conn);
        conn_arm_timer(ex->conn);
    }
}

void sb_httpd_body_resume(sb_httpd_exchange *ex)
{
    if (!ex->active || !ex->body_paused)
        return;
    ex->body_paused = false;
    sb_httpd_conn *c = ex->conn;
    c->last_read = uv_now(c->srv->loop);
    send_continue(ex);
    if (!c->in_parse) {
        conn_kick(c);
        conn_update_reading(c);
        conn_arm_timer(c);
    }
}

/* ---- the server --------------------------------------------------------------------------- */

static sb_httpd_conn *conn_new(sb_httpd *srv, bool feed)
{
    sb_httpd_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->in_cap = srv->cfg.read_buffer_size;
    c->in = malloc(c->in_cap);
    if (!c->in) {
        free(c);
        return NULL;
    }
    c->srv = srv;
    c->is_feed = feed;
    llhttp_init(&c->parser, HTTP_REQUEST, &srv->settings);
    c->parser.data = c;
    c->ex.conn = c;
    c->ex.out_remaining = -1;
    c->phase = PHASE_HEAD;
    uint64_t now = uv_now(srv->loop);
    c->last_read = c->last_write = now;
    c->head_deadline = now + srv->cfg.header_timeout_ms;
    c->next = srv->conns;
    if (srv->conns)
        srv->conns->prev = c;
    srv->conns = c;
    return c;
}

static void format_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        uv_ip6_name(a, ip, sizeof ip);
        snprintf(buf, len, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    } else if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        uv_ip4_name(a, ip, sizeof ip);
        snprintf(buf, len, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else {
        snprintf(buf, len, "unknown");
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    sb_httpd *srv = server->data;
    if (status < 0) {
        srv_log(srv, SB_LOG_WARN, "httpd: accept failed: %s", uv_strerror(status));
        return;
    }
    if (srv->closing)
        return;
    sb_httpd_conn *c = conn_new(srv, false);
    if (!c) {
        srv_log(srv, SB_LOG_ERROR, "httpd: out of memory accepting a connection");
        return;
    }
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    bool over = srv->active >= srv->cfg.max_connections;
    c->rejected = over;
    if (over)
        srv->rejecting++;
    else
        srv->active++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0)
        format_addr(&ss, c->peer, sizeof c->peer);
    else
        snprintf(c->peer, sizeof c->peer, "unknown");
    if (over) {
        srv->stats.rejected++;
        if (srv->rejecting > srv->cfg.max_connections) { /* even the refusals are too many */
            conn_close(c);
            return;
        }
        srv_log(srv, SB_LOG_WARN, "httpd: %s: refused, %zu connections open already", c->peer,
                srv->active);
        conn_fail(c, 503, "too many connections");
        return;
    }
    srv->stats.accepted++;
    c->reading = true;
    conn_read_start(c);
    conn_arm_timer(c);
}

/* "ADDR:PORT" into a socket address; false when it is not one. */
static bool parse_listen(const char *s, struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *port;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            return false;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(s, ':');
        if (!colon || strchr(s, ':') != colon || (size_t)(colon - s) >= sizeof host)
            return false;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        port = colon + 1;
    }
    if (!*port || strlen(port) > 5)
        return false;
    for (const char *p = port; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    long pn = strtol(port, NULL, 10);
    if (pn > 65535)
        return false;
    if (s[0] == '[')
        return uv_ip6_addr(host, (int)pn, (struct sockaddr_in6 *)ss) == 0;
    return uv_ip4_addr(host, (int)pn, (struct sockaddr_in *)ss) == 0;
}

static void bad_address(char *err, size_t errlen, const char *address)
{
    char shown[80];
    clean_copy(shown, sizeof shown, address ? address : "");
    snprintf(err, errlen,
             "bad listen address '%s' (expected ADDR:PORT, e.g. 127.0.0.1:9180 or [::1]:9180)",
             shown);
}

static sb_httpd *srv_alloc(uv_loop_t *loop, const sb_httpd_config *cfg,
                           const sb_httpd_callbacks *cb, void *arg)
{
    sb_httpd *srv = calloc(1, sizeof *srv);
    if (!srv)
        return NULL;
    srv->loop = loop;
    config_fill(&srv->cfg, cfg);
    if (cb)
        srv->cb = *cb;
    srv->arg = arg;
    settings_init(&srv->settings);
    uv_idle_init(loop, &srv->idle);
    srv->idle.data = srv;
    srv->handles_open = 1;
    return srv;
}

static void srv_handle_closed(uv_handle_t *h)
{
    sb_httpd *srv = h->data;
    srv->handles_open--;
    srv_maybe_finish(srv);
}

/* Undo srv_alloc plus an initialised listener after a failed start (no callback to anyone). */
static void srv_abandon(sb_httpd *srv)
{
    srv->closing = true;
    uv_close((uv_handle_t *)&srv->idle, srv_handle_closed);
    if (srv->listening)
        uv_close((uv_handle_t *)&srv->listener, srv_handle_closed);
}

sb_httpd *sb_httpd_new(uv_loop_t *loop, const char *address, const sb_httpd_config *cfg,
                       const sb_httpd_callbacks *cb, void *arg, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (!address || !parse_listen(address, &ss)) {
        bad_address(err, errlen, address);
        return NULL;
    }
    sb_httpd *srv = srv_alloc(loop, cfg, cb, arg);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listening = true;
    srv->handles_open++;
    int r = uv_tcp_bind(&srv->listener, (const struct sockaddr *)&ss, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, srv->cfg.backlog, on_connection);
    if (r < 0) {
        char shown[80];
        clean_copy(shown, sizeof shown, address);
        snprintf(err, errlen, "cannot listen on %s: %s", shown, uv_strerror(r));
        srv_abandon(srv);
        return NULL;
    }
    return srv;
}

sb_httpd *sb_httpd_new_fd(uv_loop_t *loop, int fd, const sb_httpd_config *cfg,
                          const sb_httpd_callbacks *cb, void *arg, char *err, size_t errlen)
{
    int type = 0;
    socklen_t tl = sizeof type;
    if (fd < 0 || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
        snprintf(err, errlen, "cannot serve fd %d: not a stream socket", fd);
        return NULL;
    }
    int dupfd = fcntl(fd, F_DUPFD_CLOEXEC, 0); /* closing the server must not close fd */
    if (dupfd < 0) {
        snprintf(err, errlen, "cannot serve fd %d: %s", fd, strerror(errno));
        return NULL;
    }
    sb_httpd *srv = srv_alloc(loop, cfg, cb, arg);
    if (!srv) {
        close(dupfd);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listening = true;
    srv->handles_open++;
    int r = uv_tcp_open(&srv->listener, dupfd);
    if (r < 0)
        close(dupfd); /* not taken by the handle */
    else
        r = uv_listen((uv_stream_t *)&srv->listener, srv->cfg.backlog, on_connection);
    if (r < 0) {
        snprintf(err, errlen, "cannot serve fd %d: %s", fd, uv_strerror(r));
        srv_abandon(srv);
        return NULL;
    }
    return srv;
}

sb_httpd *sb_httpd_new_detached(uv_loop_t *loop, const sb_httpd_config *cfg,
                                const sb_httpd_callbacks *cb, void *arg)
{
    return srv_alloc(loop, cfg, cb, arg);
}

int sb_httpd_listen_socket(const char *address, int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    if (!address || !parse_listen(address, &ss)) {
        bad_address(err, errlen, address);
        return -1;
    }
    char shown[80];
    clean_copy(shown, sizeof shown, address);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", shown,
                 uv_strerror(uv_translate_sys_error(errno)));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t sl =
        ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, backlog > 0 ? backlog : 511) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "cannot listen on %s: %s", shown,
                 uv_strerror(uv_translate_sys_error(e)));
        return -1;
    }
    return fd;
}

int sb_httpd_local_address(const sb_httpd *srv, char *buf, size_t len)
{
    if (!srv->listening)
        return UV_ENOTCONN;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    int r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &sl);
    if (r < 0)
        return r;
    format_addr(&ss, buf, len);
    return 0;
}

int sb_httpd_port(const sb_httpd *srv)
{
    if (!srv->listening)
        return -1;
    struct sockaddr_storage ss;
    int sl = sizeof ss;
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &sl) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

void sb_httpd_get_stats(const sb_httpd *srv, sb_httpd_stats *out)
{
    *out = srv->stats;
    out->connections = srv->active;
}

void sb_httpd_stop_accepting(sb_httpd *srv)
{
    if (srv->closing || !srv->listening)
        return;
    /* Only this server's handle (a dup() for sb_httpd_new_fd) closes: connections waiting in a
     * shared socket's backlog are left to the other servers on it. */
    srv->listening = false;
    uv_close((uv_handle_t *)&srv->listener, srv_handle_closed);
}

void sb_httpd_close(sb_httpd *srv, void (*on_closed)(void *arg), void *arg)
{
    if (srv->closing)
        return;
    srv->closing = true;
    srv->on_closed = on_closed;
    srv->closed_arg = arg;
    if (srv->listening)
        uv_close((uv_handle_t *)&srv->listener, srv_handle_closed);
    uv_close((uv_handle_t *)&srv->idle, srv_handle_closed);
    srv->idle_running = false;
    sb_httpd_conn *next;
    for (sb_httpd_conn *c = srv->conns; c; c = next) {
        next = c->next;
        if (c->is_feed) { /* its owner frees it; it no longer has a server */
            conn_close(c);
            conn_unlink(c);
            c->srv = NULL;
        } else {
            conn_close(c);
        }
    }
}

/* ---- feed connections ------------------------------------------------------------------- */

sb_httpd_conn *sb_httpd_feed_conn_new(sb_httpd *srv, const char *peer,
                                      void (*out)(void *arg, const char *data, size_t len),
                                      void *arg)
{
    if (srv->closing)
        return NULL;
    sb_httpd_conn *c = conn_new(srv, true);
    if (!c)
        return NULL;
    c->out = out;
    c->out_arg = arg;
    clean_copy(c->peer, sizeof c->peer, peer ? peer : "feed");
    return c;
}

int sb_httpd_feed(sb_httpd_conn *c, const char *data, size_t len)
{
    if (c->closing || !c->srv)
        return -EPIPE;
    if (!data && len == 0) {
        c->eof_seen = true;
    } else if (len > 0) {
        if (c->in_start > 0) {
            memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
            c->in_end -= c->in_start;
            c->in_start = 0;
        }
        if (c->in_end + len > c->in_cap) {
            if (c->in_end + len > FEED_MAX_BUFFER)
                return -ENOBUFS;
            size_t cap = c->in_cap;
            while (cap < c->in_end + len)
                cap *= 2;
            char *p = realloc(c->in, cap);
            if (!p)
                return -ENOMEM;
            c->in = p;
            c->in_cap = cap;
        }
        memcpy(c->in + c->in_end, data, len);
        c->in_end += len;
    }
    conn_process(c);
    /* what the handler's answers made possible, without waiting for the loop */
    while (!c->closing && c->kicked) {
        conn_unkick(c);
        conn_continue(c);
    }
    return c->closing ? -EPIPE : 0;
}

void sb_httpd_feed_conn_free(sb_httpd_conn *c)
{
    if (!c)
        return;
    if (!c->closing)
        conn_close(c);
    conn_unlink(c);
    conn_free_memory(c);
}
