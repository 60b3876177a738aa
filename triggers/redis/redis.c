/*
 * redis.c - the `redis` trigger: the length of Redis lists, sorted sets and streams, or a stream
 * consumer group's lag, read every `every` through the polling SDK (scalebus/poll.h), one
 * coalescible reading per key labelled queue=<key>.
 *
 * One connection per trigger, kept between reads, on the daemon's loop: a libuv TCP or pipe
 * handle of our own, hiredis's command formatter for what we send and its reader (bounded:
 * redis_reply.c) for what comes back. A read writes one pipeline: AUTH and SELECT first on a new
 * connection, then one command per key, and ends when every reply is in. A failed read (refused,
 * lost, AUTH refused, a protocol error, a reply over 1 MiB, a timeout) closes the connection and
 * is reported with sb_poller_fail, so the poller's back-off paces the reconnects.
 *
 * Why not hiredis's async API and its libuv adapter (hiredis/adapters/libuv.h): in 0.14 the
 * async layer assert()s, aborting the daemon, when a server sends a reply nobody asked for; it
 * has no connect timeout; and the adapter frees its uv_poll_t in a close callback of its own, so
 * a plugin cannot know when the handle is gone. Here every handle is ours: stop() closes it and
 * returns SB_PENDING until its close callback has run, then calls host->stopped().
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include <scalebus/plugin.h>
#include <scalebus/poll.h>

#include "redis_reply.h"
#include "redis_url.h"

#define REDIS_MAX_KEYS 256
#define REDIS_MAX_KEY_BYTES 1024
#define REDIS_READ_CHUNK 16384

enum {
    OPT_URL,
    OPT_PASSWORD,
    OPT_USERNAME,
    OPT_KEY,
    OPT_KEYS,
    OPT_KIND,
    OPT_GROUP,
    OPT_MEASURE,
    OPT_EVERY, /* SB_POLL_OPTIONS: every, timeout, backoff_max */
};

static const sb_option_spec redis_options[] = {
    [OPT_URL] = {"url", SB_OPT_STRING, "redis://127.0.0.1:6379/0", 0,
                 "the server: redis://[[user]:password@]host[:port][/db] or "
                 "unix:/path/to/redis.sock[?db=N]"},
    [OPT_PASSWORD] = {"password", SB_OPT_STRING, NULL, 0,
                      "the AUTH password, instead of one in url (e.g. \"${REDIS_PASSWORD}\")"},
    [OPT_USERNAME] = {"username", SB_OPT_STRING, NULL, 0,
                      "the ACL user (Redis 6 and later) for AUTH, instead of one in url"},
    [OPT_KEY] = {"key", SB_OPT_STRING, NULL, 0, "the key to read (or give keys)"},
    [OPT_KEYS] = {"keys", SB_OPT_LIST, NULL, 0, "several keys: one reading each"},
    [OPT_KIND] = {"kind", SB_OPT_STRING, "list", 0,
                  "list (LLEN), zset (ZCARD) or stream (XLEN; with group, the group's lag)"},
    [OPT_GROUP] = {"group", SB_OPT_STRING, NULL, 0,
                   "kind stream: read this consumer group (XINFO GROUPS) instead of XLEN"},
    [OPT_MEASURE] = {"measure", SB_OPT_STRING, NULL, 0,
                     "with group: lag (entries not yet delivered, the default) or pending "
                     "(delivered, not acknowledged)"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef struct redis_trigger redis_trigger;

typedef enum conn_state { CONN_RESOLVING, CONN_CONNECTING, CONN_READY } conn_state;

/* One connection. Freed when its handle's close callback has run (or, while it was still
 * resolving the host name, when the resolver's callback has). */
typedef struct redis_conn {
    redis_trigger *t; /* NULL once the trigger is destroyed */
    struct redis_conn *next;
    union {
        uv_handle_t handle;
        uv_stream_t stream;
        uv_tcp_t tcp;
        uv_pipe_t pipe;
    } h;
    int has_handle; /* h is initialised: freed by its close callback */
    int resolving;  /* resolve_req is in flight: freed by its callback */
    uv_connect_t connect_req;
    uv_getaddrinfo_t resolve_req;
    conn_state state;
    int closing;
    int fresh; /* connected; AUTH/SELECT not yet sent */
    redisReader *reader;
    int over_limit; /* the reader's bound flag (redis_reply.c) */
    /* the read in flight on this connection */
    int reading;
    size_t expect, got, handshake; /* replies: all, so far, of which AUTH/SELECT */
    size_t bytes;                  /* received for this read */
} redis_conn;

/* One write: the request and the buffers (which point into the trigger's pipeline). */
typedef struct redis_write {
    uv_write_t req;
    redis_conn *conn;
} redis_write;

struct redis_trigger {
    sb_poller *poller; /* first member: see sb_poller_run_now */
    sb_instance *inst;
    const sb_host *host;
    uv_loop_t *loop;
    sb_redis_url url;
    char where[SB_REDIS_HOST_MAX + SB_REDIS_PATH_MAX + 48]; /* for messages, no password */
    sb_redis_query query;
    char **keys; /* copies */
    size_t nkeys;
    char *handshake; /* AUTH and SELECT, formatted once; NULL when neither is needed */
    size_t handshake_len, handshake_replies;
    int handshake_auth; /* the first handshake reply is AUTH's */
    char *pipeline;     /* one command per key, formatted once */
    size_t pipeline_len;
    char *identity; /* every option but the poll rows, to tell a reconfigure what changed */
    size_t identity_len;

    redis_conn *conn;  /* the connection reads use, or NULL */
    redis_conn *conns; /* every connection not yet freed (the one above, and closing ones) */
    size_t open;       /* connections not yet freed */
    int stopping;      /* stop() returned SB_PENDING: host->stopped() once open is 0 */

    /* the read in flight */
    double *values;
    char first_error[256];
    size_t errors;
    char handshake_error[200];
    int lag_fallback;       /* the last read took the pending count for a missing lag */
    int warned_unsolicited; /* data between reads was logged once as a warning */
};

/* ---- connections -------------------------------------------------------------------------- */

static void conn_free(redis_conn *c)
{
    redis_trigger *t = c->t;
    if (t) {
        for (redis_conn **pp = &t->conns; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        if (t->conn == c)
            t->conn = NULL;
        t->open--;
    }
    if (c->reader)
        redisReaderFree(c->reader);
    free(c);
    if (t && t->stopping && t->open == 0) {
        t->stopping = 0;
        t->host->stopped(t->inst);
    }
}

static void conn_on_close(uv_handle_t *h)
{
    conn_free(h->data);
}

/* Close a connection: it is no longer the trigger's, and is freed once libuv lets go of it. Its
 * read, if any, is over (the caller reports it). */
static void conn_close(redis_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    c->reading = 0;
    if (c->t && c->t->conn == c)
        c->t->conn = NULL;
    if (c->has_handle)
        uv_close(&c->h.handle, conn_on_close);
    else if (c->resolving)
        uv_cancel((uv_req_t *)&c->resolve_req); /* its callback frees c */
    else
        conn_free(c); /* nothing of libuv's holds it */
}

static redis_conn *conn_new(redis_trigger *t)
{
    redis_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->reader = sb_redis_reader_new(&c->over_limit);
    if (!c->reader) {
        free(c);
        return NULL;
    }
    c->t = t;
    c->next = t->conns;
    t->conns = c;
    t->open++;
    c->fresh = 1;
    return c;
}

/* ---- a read ------------------------------------------------------------------------------- */

static void read_fail(redis_trigger *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* End the read in flight as failed; the connection is closed (the next read reconnects). */
static void read_fail(redis_trigger *t, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (t->conn)
        conn_close(t->conn);
    sb_poller_fail(t->poller, 0, "%s", msg);
}

static void write_done(uv_write_t *req, int status)
{
    redis_write *w = req->data;
    redis_conn *c = w->conn;
    free(w);
    if (status < 0 && !c->closing && c->reading && c->t)
        read_fail(c->t, "%s: write failed: %s", c->t->where, uv_strerror(status));
}

/* Send this read's commands (AUTH/SELECT first on a new connection). */
static void conn_send(redis_conn *c)
{
    redis_trigger *t = c->t;
    uv_buf_t bufs[2];
    unsigned n = 0;
    c->reading = 1;
    c->got = 0;
    c->bytes = 0;
    c->handshake = 0;
    if (c->fresh && t->handshake) {
        bufs[n++] = uv_buf_init(t->handshake, (unsigned)t->handshake_len);
        c->handshake = t->handshake_replies;
    }
    c->fresh = 0;
    bufs[n++] = uv_buf_init(t->pipeline, (unsigned)t->pipeline_len);
    c->expect = c->handshake + t->nkeys;

    redis_write *w = calloc(1, sizeof *w);
    if (!w) {
        read_fail(t, "out of memory");
        return;
    }
    w->conn = c;
    w->req.data = w;
    int rc = uv_write(&w->req, &c->h.stream, bufs, n, write_done);
    if (rc < 0) {
        free(w);
        read_fail(t, "%s: write failed: %s", t->where, uv_strerror(rc));
    }
}

/* Every reply is in: publish what was read, then end the read. */
static void read_finish(redis_trigger *t, redis_conn *c)
{
    c->reading = 0;
    if (t->handshake_error[0]) {
        read_fail(t, "%s", t->handshake_error);
        return;
    }
    /* All or nothing: a key that cannot be read fails the read, and no reading is published,
     * so a policy sees one consistent failure rather than a partial picture. */
    if (t->errors == 1) {
        sb_poller_fail(t->poller, 0, "%s", t->first_error);
        return;
    }
    if (t->errors > 1) {
        sb_poller_fail(t->poller, 0, "%s (and %zu more key%s)", t->first_error, t->errors - 1,
                       t->errors == 2 ? "" : "s");
        return;
    }
    for (size_t i = 0; i < t->nkeys; i++) {
        sb_label label = {"queue", t->keys[i]};
        int rc = sb_poller_reading(t->poller, t->values[i], &label, 1);
        if (rc < 0 && rc != -ESHUTDOWN)
            t->host->log(t->inst, SB_LOG_WARN, "key '%s': the reading was not published (%s)",
                         t->keys[i], strerror(-rc));
    }
    sb_poller_done(t->poller);
}

static void note_handshake_error(redis_trigger *t, const char *what, const redisReply *r)
{
    if (t->handshake_error[0])
        return; /* the first one says why */
    char text[160];
    size_t o = 0;
    for (size_t i = 0; r->str && i < r->len && o + 1 < sizeof text; i++) {
        unsigned char ch = (unsigned char)r->str[i];
        text[o++] = ch >= 0x20 && ch != 0x7f ? (char)ch : '?';
    }
    text[o] = '\0';
    if (!o)
        snprintf(text, sizeof text, "an empty error reply");
    snprintf(t->handshake_error, sizeof t->handshake_error, "%s failed: %s", what, text);
}

static void note_key_error(redis_trigger *t, size_t k, int code, const char *msg)
{
    t->errors++;
    if (t->errors > 1)
        return;
    if (code == -EIO && strncmp(msg, "NOAUTH", 6) == 0)
        snprintf(t->first_error, sizeof t->first_error,
                 "%.100s wants a password (%.60s): give it in url (redis://:PASSWORD@host) or "
                 "password",
                 t->where, msg);
    else
        snprintf(t->first_error, sizeof t->first_error, "key '%.64s' (%s): %.150s", t->keys[k],
                 sb_redis_query_command(&t->query), msg);
}

static void handle_reply(redis_trigger *t, redis_conn *c, const redisReply *r)
{
    size_t i = c->got++;
    if (i < c->handshake) {
        if (r->type == REDIS_REPLY_ERROR) {
            if (t->handshake_auth && i == 0) {
                note_handshake_error(t, "AUTH", r);
            } else {
                char what[48];
                snprintf(what, sizeof what, "SELECT %ld", t->url.db);
                note_handshake_error(t, what, r);
            }
        }
        return;
    }
    size_t k = i - c->handshake;
    char msg[200];
    int fell_back = 0;
    int rc = sb_redis_reply_value(r, &t->query, &t->values[k], &fell_back, msg, sizeof msg);
    if (rc < 0) {
        note_key_error(t, k, rc, msg);
        return;
    }
    if (fell_back != t->lag_fallback) {
        t->lag_fallback = fell_back;
        if (fell_back)
            t->host->log(t->inst, SB_LOG_WARN,
                         "key '%s' group '%s': the server gives no lag (Redis before 7.0, or "
                         "entries were deleted): reading the pending count instead",
                         t->keys[k], t->query.group);
        else
            t->host->log(t->inst, SB_LOG_INFO, "group '%s': reading the lag again", t->query.group);
    }
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = malloc(REDIS_READ_CHUNK);
    buf->len = buf->base ? REDIS_READ_CHUNK : 0;
}

/* Feed what arrived to the reader and take every complete reply. */
static void conn_take_replies(redis_trigger *t, redis_conn *c, const char *data, size_t n)
{
    if (!c->reading) {
        /* Between reads: nothing was asked, and a pipeline out of step cannot be trusted. */
        t->host->log(t->inst, t->warned_unsolicited ? SB_LOG_DEBUG : SB_LOG_WARN,
                     "%s sent data between reads: reconnecting", t->where);
        t->warned_unsolicited = 1;
        conn_close(c);
        return;
    }
    c->bytes += n;
    if (c->bytes > SB_REDIS_REPLY_MAX_BYTES) {
        read_fail(t, "%s: replies larger than %d bytes", t->where, SB_REDIS_REPLY_MAX_BYTES);
        return;
    }
    if (redisReaderFeed(c->reader, data, n) != REDIS_OK) {
        read_fail(t, "%s: out of memory reading the reply", t->where);
        return;
    }
    while (c->got < c->expect) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            read_fail(t, "%s: protocol error: %s", t->where,
                      sb_redis_reader_error(c->reader, &c->over_limit));
            return;
        }
        if (!reply)
            return; /* wait for more */
        handle_reply(t, c, reply);
        freeReplyObject(reply);
    }
    /* Every reply is in; a byte more is one nobody asked for. */
    if (c->reader->pos < c->reader->len) {
        read_fail(t, "%s sent more replies than asked for", t->where);
        return;
    }
    read_finish(t, c);
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    redis_conn *c = s->data;
    redis_trigger *t = c->t;
    if (nread > 0 && t && !c->closing)
        conn_take_replies(t, c, buf->base, (size_t)nread);
    else if (nread < 0 && t && !c->closing) {
        if (c->reading)
            read_fail(t, "%s: %s", t->where,
                      nread == UV_EOF ? "the server closed the connection"
                                      : uv_strerror((int)nread));
        else {
            t->host->log(t->inst, SB_LOG_DEBUG, "%s: idle connection ended (%s)", t->where,
                         nread == UV_EOF ? "closed by the server" : uv_strerror((int)nread));
            conn_close(c);
        }
    }
    free(buf->base);
}

static void conn_on_connect(uv_connect_t *req, int status)
{
    redis_conn *c = req->data;
    redis_trigger *t = c->t;
    if (status == UV_ECANCELED || c->closing || !t)
        return; /* closed meanwhile: the close callback frees it */
    if (status < 0) {
        read_fail(t, "cannot connect to %s: %s", t->where, uv_strerror(status));
        return;
    }
    c->state = CONN_READY;
    int rc = uv_read_start(&c->h.stream, conn_alloc, conn_on_read);
    if (rc < 0) {
        read_fail(t, "%s: %s", t->where, uv_strerror(rc));
        return;
    }
    conn_send(c);
}

static void conn_connect_tcp(redis_conn *c, const struct sockaddr *addr)
{
    redis_trigger *t = c->t;
    int rc = uv_tcp_init(t->loop, &c->h.tcp);
    if (rc < 0) {
        read_fail(t, "cannot connect to %s: %s", t->where, uv_strerror(rc));
        return;
    }
    c->has_handle = 1;
    c->h.handle.data = c;
    c->state = CONN_CONNECTING;
    uv_tcp_nodelay(&c->h.tcp, 1);
    c->connect_req.data = c;
    rc = uv_tcp_connect(&c->connect_req, &c->h.tcp, addr, conn_on_connect);
    if (rc < 0)
        read_fail(t, "cannot connect to %s: %s", t->where, uv_strerror(rc));
}

static void conn_on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    redis_conn *c = req->data;
    redis_trigger *t = c->t;
    c->resolving = 0;
    if (c->closing || !t) {
        uv_freeaddrinfo(res);
        conn_free(c); /* it had no handle yet */
        return;
    }
    if (status < 0 || !res) {
        uv_freeaddrinfo(res);
        read_fail(t, "cannot resolve %s: %s", t->where,
                  uv_strerror(status < 0 ? status : UV_EAI_NONAME)); /* frees c */
        return;
    }
    conn_connect_tcp(c, res->ai_addr);
    uv_freeaddrinfo(res);
}

/* Open a connection for the read in flight; the read's commands go out once it is up. */
static void conn_open(redis_trigger *t)
{
    redis_conn *c = conn_new(t);
    if (!c) {
        sb_poller_fail(t->poller, 0, "out of memory");
        return;
    }
    t->conn = c;
    if (t->url.is_unix) {
        int rc = uv_pipe_init(t->loop, &c->h.pipe, 0);
        if (rc < 0) {
            read_fail(t, "cannot connect to %s: %s", t->where, uv_strerror(rc));
            return;
        }
        c->has_handle = 1;
        c->h.handle.data = c;
        c->state = CONN_CONNECTING;
        c->connect_req.data = c;
        uv_pipe_connect(&c->connect_req, &c->h.pipe, t->url.path, conn_on_connect);
        return;
    }
    struct sockaddr_storage ss;
    if (uv_ip4_addr(t->url.host, t->url.port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(t->url.host, t->url.port, (struct sockaddr_in6 *)&ss) == 0) {
        conn_connect_tcp(c, (const struct sockaddr *)&ss);
        return;
    }
    /* A host name: resolved on libuv's thread pool, never on the loop. */
    char port[8];
    snprintf(port, sizeof port, "%d", t->url.port);
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->state = CONN_RESOLVING;
    c->resolve_req.data = c;
    c->resolving = 1;
    int rc = uv_getaddrinfo(t->loop, &c->resolve_req, conn_on_resolved, t->url.host, port, &hints);
    if (rc < 0) {
        c->resolving = 0;
        read_fail(t, "cannot resolve %s: %s", t->where, uv_strerror(rc)); /* frees c */
    }
}

/* sb_poll_ops.read: one pipeline over the open connection, or a new one. */
static void redis_read(void *self, sb_poller *p)
{
    redis_trigger *t = self;
    (void)p;
    t->errors = 0;
    t->first_error[0] = '\0';
    t->handshake_error[0] = '\0';
    if (t->conn && t->conn->state == CONN_READY && !t->conn->closing) {
        conn_send(t->conn);
        return;
    }
    if (t->conn)
        conn_close(t->conn);
    conn_open(t);
}

/* sb_poll_ops.cancel: the read timed out, or the trigger stops. Replies may still be on their
 * way and a pipeline cannot be resumed, so the connection goes. */
static void redis_cancel(void *self)
{
    redis_trigger *t = self;
    if (t->conn)
        conn_close(t->conn);
}

static const sb_poll_ops redis_poll_ops = {.read = redis_read, .cancel = redis_cancel};

/* ---- options ------------------------------------------------------------------------------ */

static int fail_opt(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_opt(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static const char *opt_str(const sb_value *v)
{
    return v->is_set && v->str ? v->str : NULL;
}

/* Append one formatted command to *buf. */
static int append_command(char **buf, size_t *len, int argc, const char **argv)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, NULL);
    if (n < 0 || !cmd)
        return -ENOMEM;
    char *grown = realloc(*buf, *len + (size_t)n + 1);
    if (!grown) {
        redisFreeCommand(cmd);
        return -ENOMEM;
    }
    memcpy(grown + *len, cmd, (size_t)n);
    *len += (size_t)n;
    grown[*len] = '\0';
    *buf = grown;
    redisFreeCommand(cmd);
    return 0;
}

/* The options that need a new instance when they change, as one block of text. */
static char *options_identity(const sb_value *v, size_t *len)
{
    size_t cap = 64;
    const int rows[] = {OPT_URL,  OPT_PASSWORD, OPT_USERNAME, OPT_KEY,
                        OPT_KIND, OPT_GROUP,    OPT_MEASURE};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        cap += (opt_str(&v[rows[i]]) ? strlen(v[rows[i]].str) : 0) + 2;
    if (v[OPT_KEYS].is_set)
        for (size_t i = 0; i < v[OPT_KEYS].count; i++)
            cap += strlen(v[OPT_KEYS].items[i]) + 1;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *x = opt_str(&v[rows[i]]);
        s[o++] = x ? '+' : '-';
        if (x) {
            memcpy(s + o, x, strlen(x) + 1);
            o += strlen(x) + 1;
        }
    }
    s[o++] = v[OPT_KEYS].is_set ? '+' : '-';
    if (v[OPT_KEYS].is_set)
        for (size_t i = 0; i < v[OPT_KEYS].count; i++) {
            memcpy(s + o, v[OPT_KEYS].items[i], strlen(v[OPT_KEYS].items[i]) + 1);
            o += strlen(v[OPT_KEYS].items[i]) + 1;
        }
    *len = o;
    return s;
}

static int check_key(const char *opt, const char *key, char *err, size_t errlen)
{
    if (!key[0])
        return fail_opt(err, errlen, "%s: an empty key", opt);
    if (strlen(key) > REDIS_MAX_KEY_BYTES)
        return fail_opt(err, errlen, "%s: a key longer than %d bytes", opt, REDIS_MAX_KEY_BYTES);
    return 0;
}

static int read_keys(redis_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    const char *key = opt_str(&v[OPT_KEY]);
    const sb_value *keys = &v[OPT_KEYS];
    if (key && keys->is_set)
        return fail_opt(err, errlen, "key and keys: give one of them, not both");
    if (!key && !keys->is_set)
        return fail_opt(err, errlen, "key: required (or keys, a list)");
    size_t n = key ? 1 : keys->count;
    if (n == 0)
        return fail_opt(err, errlen, "keys: an empty list");
    if (n > REDIS_MAX_KEYS)
        return fail_opt(err, errlen, "keys: %zu keys, at most %d", n, REDIS_MAX_KEYS);
    t->keys = calloc(n, sizeof *t->keys);
    t->values = calloc(n, sizeof *t->values);
    if (!t->keys || !t->values)
        return fail_opt(err, errlen, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *k = key ? key : keys->items[i];
        int rc = check_key(key ? "key" : "keys", k, err, errlen);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(t->keys[j], k) == 0)
                return fail_opt(err, errlen, "keys: '%s' is listed twice", k);
        if (!(t->keys[i] = strdup(k)))
            return fail_opt(err, errlen, "out of memory");
        t->nkeys = i + 1;
    }
    return 0;
}

static int read_query(redis_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    const char *kind = opt_str(&v[OPT_KIND]);
    const char *group = opt_str(&v[OPT_GROUP]);
    const char *measure = opt_str(&v[OPT_MEASURE]);
    if (!kind || strcmp(kind, "list") == 0)
        t->query.kind = SB_REDIS_LIST;
    else if (strcmp(kind, "zset") == 0)
        t->query.kind = SB_REDIS_ZSET;
    else if (strcmp(kind, "stream") == 0)
        t->query.kind = SB_REDIS_STREAM;
    else
        return fail_opt(err, errlen, "kind: expected list, zset or stream, got '%s'", kind);
    if (group && t->query.kind != SB_REDIS_STREAM)
        return fail_opt(err, errlen, "group: only with kind stream (this trigger reads a %s)",
                        kind);
    if (group && !group[0])
        return fail_opt(err, errlen, "group: an empty name");
    if (measure && !group)
        return fail_opt(err, errlen, "measure: only with group (a stream's consumer group)");
    t->query.group = group ? strdup(group) : NULL;
    if (group && !t->query.group)
        return fail_opt(err, errlen, "out of memory");
    t->query.measure = SB_REDIS_LAG;
    if (measure && strcmp(measure, "pending") == 0)
        t->query.measure = SB_REDIS_PENDING;
    else if (measure && strcmp(measure, "lag") != 0)
        return fail_opt(err, errlen, "measure: expected lag or pending, got '%s'", measure);
    return 0;
}

static int read_url(redis_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    char msg[200];
    const char *url = opt_str(&v[OPT_URL]);
    const char *password = opt_str(&v[OPT_PASSWORD]);
    const char *username = opt_str(&v[OPT_USERNAME]);
    if (sb_redis_url_parse(url ? url : "redis://127.0.0.1:6379/0", &t->url, msg, sizeof msg) < 0)
        return fail_opt(err, errlen, "url: %s", msg);
    if (password) {
        if (!password[0])
            return fail_opt(err, errlen, "password: empty (leave it out for no AUTH)");
        if (strlen(password) > SB_REDIS_PASSWORD_MAX)
            return fail_opt(err, errlen, "password: longer than %d bytes", SB_REDIS_PASSWORD_MAX);
        snprintf(t->url.password, sizeof t->url.password, "%s", password);
    }
    if (username) {
        if (!username[0] || strlen(username) > SB_REDIS_USER_MAX)
            return fail_opt(err, errlen, "username: expected 1 to %d bytes", SB_REDIS_USER_MAX);
        snprintf(t->url.username, sizeof t->url.username, "%s", username);
    }
    if (t->url.username[0] && !t->url.password[0])
        return fail_opt(err, errlen, "username: needs a password (in url or password)");
    sb_redis_url_describe(&t->url, t->where, sizeof t->where);
    return 0;
}

/* AUTH and SELECT for a new connection, and the per-read pipeline, formatted once. */
static int build_commands(redis_trigger *t, char *err, size_t errlen)
{
    if (t->url.password[0]) {
        /* AUTH [username] password */
        const char *auth[3] = {"AUTH", t->url.username, t->url.password};
        int argc = 3;
        if (!t->url.username[0]) {
            auth[1] = t->url.password;
            argc = 2;
        }
        if (append_command(&t->handshake, &t->handshake_len, argc, auth))
            return fail_opt(err, errlen, "out of memory");
        t->handshake_auth = 1;
        t->handshake_replies++;
    }
    if (t->url.db != 0) {
        char db[24];
        snprintf(db, sizeof db, "%ld", t->url.db);
        const char *select[2] = {"SELECT", db};
        if (append_command(&t->handshake, &t->handshake_len, 2, select))
            return fail_opt(err, errlen, "out of memory");
        t->handshake_replies++;
    }
    for (size_t i = 0; i < t->nkeys; i++) {
        const char *argv[3];
        int argc = sb_redis_query_argv(&t->query, t->keys[i], argv);
        if (append_command(&t->pipeline, &t->pipeline_len, argc, argv))
            return fail_opt(err, errlen, "out of memory");
    }
    return 0;
}

/* ---- the plugin --------------------------------------------------------------------------- */

static void redis_destroy(void *state)
{
    redis_trigger *t = state;
    if (!t)
        return;
    sb_poller_free(t->poller);
    /* Connections still closing (only when stop was not waited for) outlive us on their own. */
    for (redis_conn *c = t->conns, *next; c; c = next) {
        next = c->next; /* conn_close may free c */
        c->t = NULL;
        if (!c->closing)
            conn_close(c);
    }
    for (size_t i = 0; i < t->nkeys; i++)
        free(t->keys[i]);
    free(t->keys);
    free(t->values);
    free((char *)t->query.group);
    free(t->handshake);
    free(t->pipeline);
    free(t->identity);
    /* The password was in these. */
    memset(&t->url, 0, sizeof t->url);
    free(t);
}

static int redis_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                        void **state, char *err, size_t errlen)
{
    *state = NULL;
    redis_trigger *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->inst = inst;
    t->host = host;
    t->loop = host->loop(inst);
    int rc = read_url(t, values, err, errlen);
    if (rc == 0)
        rc = read_query(t, values, err, errlen);
    if (rc == 0)
        rc = read_keys(t, values, err, errlen);
    if (rc == 0)
        rc = build_commands(t, err, errlen);
    if (rc == 0 && !(t->identity = options_identity(values, &t->identity_len)))
        rc = fail_opt(err, errlen, "out of memory");
    if (rc == 0)
        rc = sb_poller_new(inst, host, &values[OPT_EVERY], &redis_poll_ops, t, &t->poller, err,
                           errlen);
    if (rc < 0) {
        redis_destroy(t);
        return rc;
    }
    *state = t;
    return 0;
}

static int redis_start(void *state)
{
    redis_trigger *t = state;
    return sb_poller_start(t->poller);
}

static int redis_stop(void *state)
{
    redis_trigger *t = state;
    sb_poller_stop(t->poller); /* cancels the read in flight (redis_cancel) */
    for (redis_conn *c = t->conns, *next; c; c = next) {
        next = c->next; /* conn_close may free c */
        conn_close(c);
    }
    if (t->open == 0)
        return 0;
    t->stopping = 1; /* conn_free calls host->stopped() when the last one is gone */
    return SB_PENDING;
}

static void redis_on_event(void *state, const sb_event *ev)
{
    redis_trigger *t = state;
    if (ev && ev->topic && strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        sb_poller_run_now(t->poller);
}

/* Changes to every/timeout/backoff_max are taken in place; anything else makes a new one. */
static int redis_reconfigure(void *state, const sb_value *values, char *err, size_t errlen)
{
    redis_trigger *t = state;
    size_t len = 0;
    char *identity = options_identity(values, &len);
    if (!identity)
        return SB_RECONFIGURE_REPLACE;
    int same = len == t->identity_len && memcmp(identity, t->identity, len) == 0;
    free(identity);
    if (!same)
        return SB_RECONFIGURE_REPLACE;
    return sb_poller_set_options(t->poller, &values[OPT_EVERY], err, errlen);
}

/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "redis",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "Reads the length of Redis lists, sorted sets or streams, or a stream consumer "
                   "group's lag, one reading per key",
    .options = redis_options,
    .create = redis_create,
    .start = redis_start,
    .stop = redis_stop,
    .destroy = redis_destroy,
    .on_event = redis_on_event,
    .reconfigure = redis_reconfigure,
};

SB_PLUGIN_EXPORT(descriptor)
