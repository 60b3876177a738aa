/*
 * router_core.h - the router's pure parts, without a socket or a loop (unit-tested by
 * tests/test_router_core.c): which service a request is for, which headers cross the proxy and
 * how the forwarded ones are rewritten, and which instance gets the next request.
 */
#ifndef SB_ROUTER_CORE_H
#define SB_ROUTER_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer: oom is set once an allocation failed (then len stops growing). */
typedef struct rt_buf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
} rt_buf;

void rt_buf_put(rt_buf *b, const char *s, size_t n);
void rt_buf_puts(rt_buf *b, const char *s);
void rt_buf_free(rt_buf *b);

/* A header as both sides hand it over. */
typedef struct rt_header {
    const char *name;
    const char *value;
} rt_header;

/* A service as far as selection is concerned: its name and its Host names. */
typedef struct rt_service_names {
    const char *name;
    const char *const *hosts;
    size_t nhosts;
} rt_service_names;

/* The index of the service a request is for: by its X-Scalebus-Service value when it has one
 * (service may be NULL), else by its Host (host may be NULL; compared without case, with or
 * without its ":port"). -1 when none matches. */
int rt_select_service(const rt_service_names *svcs, size_t n, const char *service,
                      const char *host);

/* True for a header that belongs to one hop only (RFC 9110 7.6.1: Connection and the fields it
 * names, Keep-Alive, Proxy-Connection, TE, Trailer, Transfer-Encoding, Upgrade, and the
 * Proxy-Authenticate/-Authorization pair). connection: the message's Connection value (or NULL). */
bool rt_hop_by_hop(const char *name, const char *connection);

/* True for GET, HEAD, PUT, DELETE, OPTIONS, TRACE: safe to send again. */
bool rt_idempotent(const char *method);

/* The address part of an httpd peer ("127.0.0.1:5555" -> "127.0.0.1", "[::1]:80" -> "::1")
 * into out (at most outlen-1 characters). */
void rt_peer_ip(const char *peer, char *out, size_t outlen);

/* How the request body goes upstream. */
typedef enum rt_body_kind { RT_BODY_NONE = 0, RT_BODY_LENGTH, RT_BODY_CHUNKED } rt_body_kind;

/* The request head sent upstream, into b: "METHOD TARGET HTTP/1.1", the client's headers but the
 * hop-by-hop ones, Content-Length, Expect, X-Scalebus-Service and the forwarded ones (and
 * "Host: default_host" when the client sent no Host, as an HTTP/1.0 client may);
 * X-Forwarded-For with the client's address appended, X-Forwarded-Proto: proto, Via with
 * "1.x scalebus" appended; then the body's framing. */
void rt_request_head(rt_buf *b, const char *method, const char *target, int version_minor,
                     const rt_header *h, size_t n, const char *default_host,
                     const char *client_ip, const char *proto, rt_body_kind body,
                     int64_t content_length);

/* The response headers passed to the client, in out (room for n + 1): the backend's but the
 * hop-by-hop ones and Content-Length (the server frames the body), with Via extended (via_buf
 * holds the new value, via_len its size). Returns how many. */
size_t rt_response_headers(const rt_header *h, size_t n, rt_header *out, char *via_buf,
                           size_t via_len);

/* The head of a response from an instance, collected from llhttp's header callbacks (a name or a
 * value may come in several pieces). Bounded: RT_MAX_RESP_HEADERS fields, RT_MAX_RESP_HEAD_BYTES
 * of names and values. */
#define RT_MAX_RESP_HEADERS 128
#define RT_MAX_RESP_HEAD_BYTES (64 * 1024)
typedef struct rt_resp_head {
    rt_buf buf; /* "name\0value\0..." */
    size_t n;
    size_t name_off[RT_MAX_RESP_HEADERS];
    size_t value_off[RT_MAX_RESP_HEADERS]; /* (size_t)-1: no value */
    int last; /* 0 none, 1 a name, 2 a value */
} rt_resp_head;

/* Start over (the buffer is kept for the next response). */
void rt_resp_reset(rt_resp_head *h);
/* A piece of a field name or value: 0, or -1 past a bound (or out of memory). */
int rt_resp_field(rt_resp_head *h, const char *at, size_t len);
int rt_resp_value(rt_resp_head *h, const char *at, size_t len);
/* The head is complete: out (room for RT_MAX_RESP_HEADERS) gets each field, pointing into h.
 * Returns how many, or -1 out of memory. */
int rt_resp_finish(rt_resp_head *h, rt_header *out);

/* One instance as the balancer sees it. */
typedef struct rt_candidate {
    bool usable;           /* listed ready, not stopping, its address known */
    int in_flight;         /* requests it serves now */
    uint64_t ejected_until; /* loop ms; 0 when not ejected */
} rt_candidate;

/* The usable instance with the fewest in flight below slots, not ejected at now; ties go to the
 * first from start (round robin over equals). -1 when none has a free slot. */
int rt_pick(const rt_candidate *c, size_t n, int slots, uint64_t now, size_t start);

/* The back-off after the n-th failure in a row (n >= 1): 1 s doubling up to 30 s. */
uint64_t rt_backoff_ms(unsigned n);

/* Copy s into out (at most outlen-1 bytes), control characters and quotes replaced by '?', so a
 * value from a remote can be shown in a message. */
void rt_clean(const char *s, char *out, size_t outlen);

#endif
