/*
 * nginx_parse.h - the page of nginx's stub_status module as numbers. A pure function: bytes in,
 * numbers out; no host, no I/O.
 *
 *   Active connections: 4
 *   server accepts handled requests
 *    11 11 46
 *   Reading: 0 Writing: 1 Waiting: 3
 *
 *   sb_nginx_status st; char err[256];
 *   if (sb_nginx_parse(body, len, &st, err, sizeof err) == 0) use(st.active, st.requests, ...);
 */
#ifndef SB_NGINX_PARSE_H
#define SB_NGINX_PARSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_nginx_status {
    uint64_t active;   /* open client connections, the waiting ones included */
    uint64_t accepts;  /* connections accepted since start */
    uint64_t handled;  /* connections handled since start */
    uint64_t requests; /* requests since start (the read of this page included) */
    uint64_t reading;  /* connections whose request header is being read */
    uint64_t writing;  /* connections whose reply is being written */
    uint64_t waiting;  /* idle keep-alive connections */
} sb_nginx_status;

/* Parse len bytes (need not be NUL-terminated). Whitespace between the words may be any amount
 * of blanks and line breaks; extra columns after "requests" (as some nginx forks print) are
 * read and ignored. Returns 0 with *out filled, or -EBADMSG with one line in err ("not an nginx
 * stub_status page: expected "Reading:" at byte 61"), or -ERANGE for a number over 2^64-1. */
int sb_nginx_parse(const char *text, size_t len, sb_nginx_status *out, char *err, size_t errlen);

#endif
