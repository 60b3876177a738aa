/*
 * rabbitmq_amqp.c - a queue's counts over AMQP 0-9-1 with librabbitmq (rabbitmq-c).
 *
 * A passive queue.declare answers with the queue's ready-message and consumer counts at once,
 * straight from the queue process: no statistics lag, unlike the management API. The connection
 * and its one channel stay open between reads; a failure of the connection drops it and the next
 * read connects again, while a channel-level error (a missing queue: 404 NOT_FOUND) only closes
 * the channel, which the next read opens again. Every step is bounded by what is left of the
 * read's timeout (connect, login handshake, each RPC), so one read never blocks its worker
 * thread longer than the timeout. librabbitmq is blocking and not thread-safe per connection: the
 * plugin calls one function at a time, on a worker thread.
 */
#define _POSIX_C_SOURCE 200809L

#include "rabbitmq_amqp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>

#define READ_CHANNEL 1

struct sb_amqp_reader {
    char *url_buf; /* amqp_parse_url's copy of the URL; info's strings point into it */
    struct amqp_connection_info info;
    char *user, *password; /* given apart from the URL, or NULL */
    char *queue;
    char where[512]; /* amqp://host:port/vhost, no credentials */
    amqp_connection_state_t conn;
    int channel_open;
};

int sb_amqp_reader_new(const char *url, const char *user, const char *password, const char *queue,
                       sb_amqp_reader **out, char *err, size_t errlen)
{
    sb_amqp_reader *r;
    int rc;

    *out = NULL;
    if (strncmp(url, "amqps://", 8) == 0) {
        snprintf(err, errlen,
                 "url: amqps:// is not supported yet (use amqp://, or protocol: http "
                 "with an https:// url)");
        return -EINVAL;
    }
    if (strncmp(url, "amqp://", 7) != 0) {
        snprintf(err, errlen, "url: expected amqp://[user:password@]host[:port][/vhost]");
        return -EINVAL;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        goto nomem;
    r->url_buf = strdup(url);
    r->queue = strdup(queue);
    r->user = user ? strdup(user) : NULL;
    r->password = password ? strdup(password) : NULL;
    if (!r->url_buf || !r->queue || (user && !r->user) || (password && !r->password))
        goto nomem;
    amqp_default_connection_info(&r->info);
    rc = amqp_parse_url(r->url_buf, &r->info);
    if (rc != AMQP_STATUS_OK || !r->info.host[0]) {
        snprintf(err, errlen, "url: not an AMQP URL (amqp://[user:password@]host[:port][/vhost])");
        sb_amqp_reader_free(r);
        return -EINVAL;
    }
    /* "amqp://host/" leaves the vhost empty; nobody means the nameless vhost. */
    if (!r->info.vhost || !r->info.vhost[0])
        r->info.vhost = "/";
    if (r->user)
        r->info.user = r->user;
    if (r->password)
        r->info.password = r->password;
    snprintf(r->where, sizeof r->where, "amqp://%s:%d vhost %s", r->info.host, r->info.port,
             r->info.vhost);
    *out = r;
    return 0;
nomem:
    sb_amqp_reader_free(r);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

const char *sb_amqp_reader_where(const sb_amqp_reader *r)
{
    return r->where;
}

int sb_amqp_reader_connected(const sb_amqp_reader *r)
{
    return r->conn != NULL;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* What is left until deadline (at least 1 ms, so a step still gets a try and then times out). */
static struct timeval left(uint64_t deadline)
{
    uint64_t now = now_ms(), ms = deadline > now ? deadline - now : 1;
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000)};
    return tv;
}

static void drop_connection(sb_amqp_reader *r)
{
    if (r->conn)
        amqp_destroy_connection(r->conn); /* closes the socket */
    r->conn = NULL;
    r->channel_open = 0;
}

/* amqp_bytes_t text fit for one error line (bounded, control bytes replaced). */
static void bytes_text(amqp_bytes_t b, char *buf, size_t len)
{
    size_t i, n = b.len < len - 1 ? b.len : len - 1;
    for (i = 0; i < n; i++) {
        unsigned char c = ((const unsigned char *)b.bytes)[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    buf[i] = '\0';
}

static int library_error(sb_amqp_reader *r, int status, const char *step, char *err, size_t errlen)
{
    int rc = status == AMQP_STATUS_TIMEOUT ? -ETIMEDOUT : -EIO;
    snprintf(err, errlen, "%s: %s: %s", r->where, step, amqp_error_string2(status));
    drop_connection(r);
    return rc;
}

static int code_to_errno(int code)
{
    switch (code) {
    case AMQP_NOT_FOUND:
        return -ENOENT;
    case AMQP_ACCESS_REFUSED:
    case AMQP_NOT_ALLOWED:
        return -EACCES;
    default:
        return -EIO;
    }
}

/* An RPC's reply that is not a success: the line in err, the connection or channel closed as
 * AMQP requires (close-ok). */
static int rpc_error(sb_amqp_reader *r, amqp_rpc_reply_t reply, const char *step, char *err,
                     size_t errlen)
{
    char text[256];

    switch (reply.reply_type) {
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        return library_error(r, reply.library_error, step, err, errlen);
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            const amqp_channel_close_t *m = reply.reply.decoded;
            amqp_channel_close_ok_t ok = {0};
            bytes_text(m->reply_text, text, sizeof text);
            snprintf(err, errlen, "%s: %s: %s", r->where, step, text);
            r->channel_open = 0;
            /* Acknowledge, so the channel number can be opened again; on failure start afresh. */
            if (amqp_send_method(r->conn, READ_CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok) !=
                AMQP_STATUS_OK)
                drop_connection(r);
            return code_to_errno(m->reply_code);
        }
        if (reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_connection_close_t *m = reply.reply.decoded;
            amqp_connection_close_ok_t ok = {0};
            int rc = code_to_errno(m->reply_code);
            bytes_text(m->reply_text, text, sizeof text);
            snprintf(err, errlen, "%s: %s: %s", r->where, step, text);
            amqp_send_method(r->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
            drop_connection(r);
            return rc;
        }
        snprintf(err, errlen, "%s: %s: unexpected method 0x%08x from the server", r->where, step,
                 (unsigned)reply.reply.id);
        drop_connection(r);
        return -EIO;
    default:
        snprintf(err, errlen, "%s: %s: no reply", r->where, step);
        drop_connection(r);
        return -EIO;
    }
}

static int connect_and_login(sb_amqp_reader *r, uint64_t deadline, char *err, size_t errlen)
{
    amqp_socket_t *sock;
    amqp_rpc_reply_t reply;
    struct timeval tv;
    int status;

    r->conn = amqp_new_connection();
    if (!r->conn) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    sock = amqp_tcp_socket_new(r->conn);
    if (!sock) {
        drop_connection(r);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    tv = left(deadline);
    status = amqp_socket_open_noblock(sock, r->info.host, r->info.port, &tv);
    if (status == AMQP_STATUS_SOCKET_ERROR) {
        /* librabbitmq keeps no errno for a failed connect: say what it usually is. */
        snprintf(err, errlen, "%s: connect: cannot connect (connection refused or unreachable)",
                 r->where);
        drop_connection(r);
        return -ECONNREFUSED;
    }
    if (status != AMQP_STATUS_OK)
        return library_error(r, status, "connect", err, errlen);
    tv = left(deadline);
    amqp_set_handshake_timeout(r->conn, &tv);
    reply = amqp_login(r->conn, r->info.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, r->info.user,
                       r->info.password);
    if (reply.reply_type != AMQP_RESPONSE_NORMAL) {
        /* A refused login ends the connection; say which user, never the password. */
        char msg[400];
        int rc = rpc_error(r, reply, "login", msg, sizeof msg);
        if (rc == -EACCES || reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
            snprintf(err, errlen, "%s (user %s)", msg, r->info.user);
        else
            snprintf(err, errlen, "%s", msg);
        return rc;
    }
    return 0;
}

int sb_amqp_reader_read(sb_amqp_reader *r, uint64_t timeout_ms, uint32_t *messages,
                        uint32_t *consumers, char *err, size_t errlen)
{
    uint64_t deadline = now_ms() + (timeout_ms ? timeout_ms : 10000);
    amqp_queue_declare_ok_t *ok;
    struct timeval tv;
    int rc;

    if (!r->conn) {
        rc = connect_and_login(r, deadline, err, errlen);
        if (rc < 0)
            return rc;
    }
    tv = left(deadline);
    amqp_set_rpc_timeout(r->conn, &tv);
    if (!r->channel_open) {
        if (!amqp_channel_open(r->conn, READ_CHANNEL))
            return rpc_error(r, amqp_get_rpc_reply(r->conn), "channel.open", err, errlen);
        r->channel_open = 1;
        tv = left(deadline);
        amqp_set_rpc_timeout(r->conn, &tv);
    }
    ok = amqp_queue_declare(r->conn, READ_CHANNEL, amqp_cstring_bytes(r->queue), 1, 0, 0, 0,
                            amqp_empty_table);
    if (!ok) /* a missing queue: 404 in the server's own words, naming queue and vhost */
        return rpc_error(r, amqp_get_rpc_reply(r->conn), "queue.declare (passive)", err, errlen);
    *messages = ok->message_count;
    *consumers = ok->consumer_count;
    amqp_maybe_release_buffers(r->conn);
    return 0;
}

void sb_amqp_reader_close(sb_amqp_reader *r, uint64_t timeout_ms)
{
    struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                         .tv_usec = (suseconds_t)(timeout_ms % 1000 * 1000)};
    if (!r->conn)
        return;
    amqp_set_rpc_timeout(r->conn, &tv);
    /* connection.close closes its channels too. */
    amqp_connection_close(r->conn, AMQP_REPLY_SUCCESS);
    drop_connection(r);
}

void sb_amqp_reader_free(sb_amqp_reader *r)
{
    if (!r)
        return;
    drop_connection(r);
    free(r->url_buf);
    free(r->user);
    free(r->password);
    free(r->queue);
    free(r);
}
