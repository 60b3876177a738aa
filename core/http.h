/*
 * http.h - the daemon's asynchronous HTTP client: one libcurl multi handle driven by the libuv
 * loop (curl's sockets on uv_poll, its timer on a uv_timer), shared by every plugin through
 * host->http_request. Requests complete on the loop thread. Each request has an owner (the
 * instance that made it) so that everything an instance started can be cancelled at once.
 */
#ifndef SB_HTTP_H
#define SB_HTTP_H

#include <uv.h>

#include "scalebus/plugin.h"

typedef struct http_client http_client;

/* Bounds every request gets unless it asks for less. */
#define HTTP_DEFAULT_TIMEOUT_MS 10000
#define HTTP_DEFAULT_MAX_BODY (4u << 20)
#define HTTP_MAX_HEADER_BYTES (64u << 10)

/* NULL on allocation failure or when curl cannot be set up (err says why). */
http_client *http_client_new(uv_loop_t *loop, char *err, size_t errlen);

/* libcurl's global set-up, once: http_client_new() makes it when it has not been made. Where
 * libcurl's is not thread-safe (no CURL_VERSION_THREADSAFE), call it at the start of main before
 * any thread (http_global_init_needs_main() says so). A daemon with no HTTP plugin never makes it:
 * with OpenSSL's set-up, that is about 2 MB it never touches. */
int http_global_init(void);
int http_global_init_needs_main(void);
void http_global_cleanup(void);
/* Cancel every request (no callbacks), close curl's connections and the loop handles. The loop
 * must run afterwards until the handles' close callbacks have run; the client frees itself in
 * the last one. */
void http_client_close(http_client *c);

/* Start a request (req->size says how much of it the caller knows). cb runs later, once, on the
 * loop thread, unless the request is cancelled first. Returns 0 (handle in *out when out is not
 * NULL), -EINVAL with a reason in err, or -ENOMEM. */
int http_client_request(http_client *c, void *owner, const sb_http_request *req, sb_http_cb cb,
                        void *arg, sb_http **out, char *err, size_t errlen);
/* Cancel one request: no callback. */
void http_client_cancel(http_client *c, sb_http *h);
/* Cancel every request of one owner: no callbacks. Returns how many were cancelled. */
size_t http_client_cancel_owner(http_client *c, void *owner);
/* Requests in flight (for tests and the stop path). */
size_t http_client_in_flight(const http_client *c);

#endif
