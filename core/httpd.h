/*
 * httpd.h - the HTTP/1.1 server the admin API and the router share: llhttp parsing on a libuv
 * loop, one sb_httpd per listening socket, built as its own static library (sb_httpd, PIC, no
 * dependency on the rest of the core) so that a plugin can link it too.
 *
 * What it does
 * - Listens on "ADDR:PORT" (an IPv4 literal or a bracketed IPv6 literal; port 0 picks a free
 *   one) or serves a socket that is already listening and belongs to someone else (a reload of
 *   the router must never close the host's socket): sb_httpd_new_fd() works on a dup() of the
 *   fd, so closing the server never closes the caller's fd. sb_httpd_stop_accepting() lets a
 *   server finish its connections while another one takes the new ones.
 * - One llhttp parser per connection. The handler sees each request once its head is complete
 *   (sb_httpd_request: method, target, path, query, version, headers, peer, keep-alive) and
 *   chooses how to take the body: SB_HTTPD_BUFFER (the whole body, at most max_body bytes, in
 *   on_request; beyond that the client gets 413) or SB_HTTPD_STREAM (on_body per chunk as it
 *   arrives, on_body_end at its end; sb_httpd_body_pause/resume for back-pressure: a paused
 *   body is not read from the socket; pausing in on_head holds the body, and its
 *   "100 Continue", until the resume, as a proxy waiting for an upstream does).
 * - Responses either whole (sb_httpd_respond: Content-Length set for the caller) or streamed
 *   (sb_httpd_stream_start with a known length, or chunked when the length is unknown (or
 *   close-delimited for an HTTP/1.0 client); sb_httpd_stream_write; sb_httpd_stream_end, or
 *   sb_httpd_stream_abort for an answer that broke: the client sees a cut, never an end).
 *   sb_httpd_stream_write returns 1 once the connection's write queue is over write_queue_max:
 *   the handler then waits for on_drain. While the queue is over that bound the connection
 *   reads nothing from its client. Bytes are written at once when nothing is queued (one
 *   writev; only what the socket does not take is copied and queued), and a streamed head is
 *   held until the first body bytes, the end, or the loop's next turn, so a small answer
 *   leaves in one write.
 * - Keep-alive; pipelined requests are answered strictly in order (the next request is parsed
 *   only once the current response has ended); HTTP/1.0 (keep-alive only when asked for);
 *   "Connection: close"; "Expect: 100-continue" (the 100 goes out when the body is first
 *   wanted, never when the handler answers without reading it); HEAD (headers only, the
 *   Content-Length of the body that would have been sent). A response that ends before its
 *   request body was read to its end closes the connection afterwards (it cannot be resynced).
 * - Limits (sb_httpd_config, each with a default): request line (414), header bytes and header
 *   count (431), buffered body (413), connections (beyond them a new one gets 503 and is
 *   closed), the time to receive a request's head from its first byte, or from the accept
 *   (slowloris: 408 and close), idle keep-alive time (closed silently), write time without
 *   progress (closed), and a body that stops arriving (idle_timeout_ms: closed). A request
 *   llhttp rejects gets 400 with a one-line plain body and the connection is closed; CONNECT
 *   and protocol upgrades are not served (405 for CONNECT; an Upgrade request is answered as a
 *   plain request and its connection closed). Error responses of the server itself end with a
 *   lingering close (FIN, then the client's remaining bytes are read and dropped for up to two
 *   seconds) so the client reads the status instead of a reset.
 * - A client that closes its side (EOF) is gone: a request it left waiting for its answer is
 *   aborted (on_abort), as nginx does. While the handler holds a complete request no timer
 *   runs: the handler owns that wait (the router's queue_timeout).
 * - Each problem reaches the owner as one line through the log callback; lines never hold a byte
 *   from the remote (the peer address is numeric; reasons are the server's own text).
 * - sb_httpd_feed_conn_new/sb_httpd_feed: a connection without a socket, fed raw bytes, its
 *   output handed to a callback (the fuzzer and unit tests). It has no timers.
 *
 * Threading: everything runs on the loop's thread; no function may be called from another one.
 * No global state: two servers on one loop (or on two loops in two threads) are independent.
 *
 * Lifetimes
 * - sb_httpd_new*() -> sb_httpd_close(srv, on_closed, arg): stops listening, closes every
 *   connection (each active exchange gets on_abort first), and once every libuv handle has been
 *   closed calls on_closed(arg) and frees the server. The loop must run until then.
 * - An sb_httpd_exchange is one request and its response. It is valid from on_head (or
 *   on_request) until the handler ends the response (sb_httpd_respond, sb_httpd_stream_end) or
 *   until on_abort tells it the connection is gone; the handler must not use it afterwards.
 *   The request and its strings live as long as the exchange.
 * - No callback is ever called from inside a function the handler called (responding,
 *   resuming a body): the server continues with the next request or body bytes from the loop.
 */
#ifndef SB_HTTPD_H
#define SB_HTTPD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "scalebus/plugin.h" /* sb_log_level */

typedef struct sb_httpd sb_httpd;
typedef struct sb_httpd_conn sb_httpd_conn;
typedef struct sb_httpd_exchange sb_httpd_exchange;

/* Every limit; sb_httpd_config_defaults() fills the defaults shown. A 0 in a field given to
 * sb_httpd_new*() means "the default" too. */
typedef struct sb_httpd_config {
    size_t max_request_line;    /* 8192: method, target and version (414 beyond) */
    size_t max_header_bytes;    /* 16384: names and values of all header fields (431) */
    size_t max_headers;         /* 100 header fields (431) */
    size_t max_body;            /* 1 MiB: a body taken with SB_HTTPD_BUFFER (413) */
    size_t max_connections;     /* 1024 open at once (503 beyond) */
    uint64_t header_timeout_ms; /* 10000: from a request's first byte (or the accept) to its
                                   last header byte (408) */
    uint64_t idle_timeout_ms;   /* 60000: a keep-alive connection between requests; a request
                                   body that stops arriving */
    uint64_t write_timeout_ms;  /* 30000: queued response bytes that make no progress */
    size_t write_queue_max;     /* 262144 bytes queued before back-pressure */
    size_t read_buffer_size;    /* 16384 per connection */
    int backlog;                /* 511 */
} sb_httpd_config;

void sb_httpd_config_defaults(sb_httpd_config *cfg);

typedef struct sb_httpd_header {
    const char *name; /* as sent (case kept); compare with strcasecmp */
    const char *value;
} sb_httpd_header;

typedef struct sb_httpd_request {
    const char *method; /* "GET" */
    const char *target; /* as sent: "/a/b?x=1" */
    const char *path;   /* "/a/b" (not percent-decoded) */
    const char *query;  /* "x=1", or "" without one */
    int version_major;  /* 1 */
    int version_minor;  /* 0 or 1 */
    const sb_httpd_header *headers;
    size_t header_count;
    const char *peer;       /* "127.0.0.1:5555", "[::1]:5555", or a feed connection's name */
    bool keep_alive;        /* the connection stays open after this response (so far) */
    bool head;              /* a HEAD request: responses carry no body */
    bool chunked;           /* the body is chunked */
    int64_t content_length; /* of the body; -1 when chunked or absent */
} sb_httpd_request;

typedef enum sb_httpd_body_mode {
    SB_HTTPD_BUFFER = 0, /* on_request with the whole body */
    SB_HTTPD_STREAM = 1  /* on_body per chunk, then on_body_end */
} sb_httpd_body_mode;

typedef struct sb_httpd_callbacks {
    /* A request's head is complete. Return how the body is taken. NULL: every request is
     * buffered. The handler may respond right here (then the body is never read). */
    sb_httpd_body_mode (*on_head)(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req);
    /* SB_HTTPD_BUFFER: the request and its whole body (NUL-terminated; body_len excludes it). */
    void (*on_request)(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req,
                       const char *body, size_t body_len);
    /* SB_HTTPD_STREAM: the next bytes of the body (dechunked), valid during the call. */
    void (*on_body)(void *arg, sb_httpd_exchange *ex, const char *data, size_t len);
    /* SB_HTTPD_STREAM: the body has ended (also for a request without one). */
    void (*on_body_end)(void *arg, sb_httpd_exchange *ex);
    /* The write queue went back under the bound after sb_httpd_stream_write returned 1. */
    void (*on_drain)(void *arg, sb_httpd_exchange *ex);
    /* The connection is gone before the response ended: forget ex. */
    void (*on_abort)(void *arg, sb_httpd_exchange *ex);
    /* One line per problem (no newline, no remote bytes). NULL: silent. */
    void (*log)(void *arg, sb_log_level level, const char *line);
} sb_httpd_callbacks;

/* Listen on "ADDR:PORT". NULL with a one-line reason in err ("cannot listen on 127.0.0.1:80:
 * address already in use", "bad listen address '...'"). cfg may be NULL (defaults). */
sb_httpd *sb_httpd_new(uv_loop_t *loop, const char *listen, const sb_httpd_config *cfg,
                       const sb_httpd_callbacks *cb, void *arg, char *err, size_t errlen);
/* Serve fd, a socket already listening (or bound: listen() is called) that stays the caller's:
 * the server works on a dup() of it and never closes fd itself. */
sb_httpd *sb_httpd_new_fd(uv_loop_t *loop, int fd, const sb_httpd_config *cfg,
                          const sb_httpd_callbacks *cb, void *arg, char *err, size_t errlen);
/* A server with no socket at all, for feed connections only. */
sb_httpd *sb_httpd_new_detached(uv_loop_t *loop, const sb_httpd_config *cfg,
                                const sb_httpd_callbacks *cb, void *arg);
/* Open, bind and listen on "ADDR:PORT" (SO_REUSEADDR, close-on-exec, non-blocking) and return
 * the fd (>= 0) for a caller that keeps the socket beyond any one server; -1 with err. */
int sb_httpd_listen_socket(const char *listen, int backlog, char *err, size_t errlen);
/* The local address as "ADDR:PORT" (after port 0, the port chosen); 0 or a negative uv code. */
int sb_httpd_local_address(const sb_httpd *srv, char *buf, size_t len);
int sb_httpd_port(const sb_httpd *srv); /* the local port, or -1 */
/* See "Lifetimes" above. on_closed may be NULL. */
void sb_httpd_close(sb_httpd *srv, void (*on_closed)(void *arg), void *arg);
/* Stop accepting: close the listening handle and keep serving the connections already accepted
 * (a router replaced by a reload, so only its successor accepts on the shared socket). With
 * sb_httpd_new_fd only the dup() closes: connections still in the socket's backlog go to the
 * other servers on it; with sb_httpd_new the socket closes and new connections are refused.
 * Afterwards sb_httpd_port() is -1. Idempotent; sb_httpd_close() is still needed. */
void sb_httpd_stop_accepting(sb_httpd *srv);

typedef struct sb_httpd_stats {
    size_t connections; /* open now, rejected ones not counted */
    uint64_t accepted;  /* connections served since the start */
    uint64_t rejected;  /* connections answered 503 (over max_connections) */
    uint64_t requests;  /* requests handed to the handler */
    uint64_t errors;    /* requests answered by the server itself (400, 408, 413, 414, 431...) */
} sb_httpd_stats;
void sb_httpd_get_stats(const sb_httpd *srv, sb_httpd_stats *out);

/* ---- one exchange (a request and its response) ----------------------------------------- */

/* The handler's own pointer for this exchange (NULL until set). */
void sb_httpd_exchange_set_data(sb_httpd_exchange *ex, void *data);
void *sb_httpd_exchange_data(const sb_httpd_exchange *ex);
const sb_httpd_request *sb_httpd_exchange_request(const sb_httpd_exchange *ex);
/* The first header called name (case-insensitive), or NULL. */
const char *sb_httpd_header_get(const sb_httpd_request *req, const char *name);

/* A whole response: status, headers (NULL when n == 0), body (may be NULL when len == 0).
 * Content-Length and Connection are the server's: such headers in the list are ignored, as are
 * Transfer-Encoding ones. A header name or value with CR, LF or NUL, or a status outside
 * 200..599, is refused with -EINVAL (nothing sent). Ends the exchange: 0, or -ENOMEM. */
int sb_httpd_respond(sb_httpd_exchange *ex, int status, const sb_httpd_header *headers, size_t n,
                     const void *body, size_t len);
/* A plain-text response ("text/plain; charset=utf-8") of one line: text plus a newline. */
int sb_httpd_respond_text(sb_httpd_exchange *ex, int status, const char *text);
/* Start a streamed response: content_length >= 0 when known (then exactly that many bytes must
 * follow), -1 for chunked (close-delimited for an HTTP/1.0 client). 0, -EINVAL, -ENOMEM. */
int sb_httpd_stream_start(sb_httpd_exchange *ex, int status, const sb_httpd_header *headers,
                          size_t n, int64_t content_length);
/* Queue len bytes of the body: 0, or 1 when the write queue is over write_queue_max (wait for
 * on_drain before writing more) or the connection broke (on_abort follows from the loop instead
 * of on_drain), -EINVAL (more than the announced length, or not started), -ENOMEM. len == 0
 * writes nothing. */
int sb_httpd_stream_write(sb_httpd_exchange *ex, const void *data, size_t len);
/* End a streamed response (the last chunk; a known length must have been written in full, else
 * the connection is closed after what was written). Ends the exchange: 0 or -ENOMEM. */
int sb_httpd_stream_end(sb_httpd_exchange *ex);
/* Abort a response (a proxy whose upstream broke mid-answer): no last chunk, nothing more; the
 * connection is closed once what was written has gone, so the client sees a cut, never a
 * complete answer: a chunked one lacks its last chunk, a known length is short, and a
 * close-delimited one (HTTP/1.0 client), or one not started, ends with a reset instead of a FIN.
 * Ends the exchange (no on_abort follows): 0, or -EINVAL when it is not active. */
int sb_httpd_stream_abort(sb_httpd_exchange *ex);
/* Stop and restart reading a streamed request body (back-pressure toward the client). */
void sb_httpd_body_pause(sb_httpd_exchange *ex);
void sb_httpd_body_resume(sb_httpd_exchange *ex);

/* ---- connections without a socket (fuzzer, unit tests) --------------------------------- */

/* out(arg, bytes, len) receives every byte the server writes; out(arg, NULL, 0) once when the
 * server closes the connection. peer names it in requests (e.g. "test"). NULL on ENOMEM. */
sb_httpd_conn *sb_httpd_feed_conn_new(sb_httpd *srv, const char *peer,
                                      void (*out)(void *arg, const char *data, size_t len),
                                      void *arg);
/* Hand the connection bytes as if read from its socket; len == 0 with data == NULL is the end
 * of the client's input. Requests are handled (and answered, when the handler answers at once)
 * before it returns. Returns 0, or -EPIPE once the connection is closed. */
int sb_httpd_feed(sb_httpd_conn *conn, const char *data, size_t len);
/* Free a feed connection (an active exchange gets on_abort first). */
void sb_httpd_feed_conn_free(sb_httpd_conn *conn);

#endif
