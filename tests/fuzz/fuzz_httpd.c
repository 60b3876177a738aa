/*
 * fuzz_httpd.c - libFuzzer target for the HTTP server (core/httpd.c with llhttp): arbitrary bytes
 * reach a feed connection, cut into pieces the input chooses, with small limits so that every
 * refusal (400, 405, 413, 414, 417, 431, 505) is reachable. The handler answers: buffered
 * requests with their body, "/s..." requests streamed (the body echoed chunk by chunk, with
 * pause and resume), "/h..." requests held until the next piece arrives (an asynchronous
 * answer). Besides the sanitizers' checks it traps when a promise breaks: the server's output
 * does not start with a status line, a connection is closed twice, or bytes are accepted after
 * the close.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON; run: tests/fuzz/run.sh BUILD_DIR SECONDS
 * httpd.
 */
#define _POSIX_C_SOURCE 200809L /* uv.h needs pthread_rwlock_t */

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <uv.h>

#include "httpd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct fuzz_state {
    sb_httpd_exchange *held;
    sb_httpd_exchange *streaming;
    char first[9];
    size_t first_len;
    int closes;
    int closed_server;
    unsigned pieces;
} fuzz_state;

static fuzz_state F;

static void out(void *arg, const char *d, size_t len)
{
    (void)arg;
    if (!d) {
        if (++F.closes > 1)
            __builtin_trap();
        return;
    }
    for (size_t i = 0; i < len && F.first_len < sizeof F.first; i++)
        F.first[F.first_len++] = d[i];
    if (F.first_len == sizeof F.first && memcmp(F.first, "HTTP/1.1 ", 9) != 0)
        __builtin_trap(); /* every output starts with a status line */
}

static void on_log(void *arg, sb_log_level level, const char *line)
{
    (void)arg;
    (void)level;
    for (const char *p = line; *p; p++)
        if ((unsigned char)*p < 0x20)
            __builtin_trap();
}

static sb_httpd_body_mode on_head(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    (void)arg;
    if (req->path[0] == '/' && req->path[1] == 's') {
        sb_httpd_header h[] = {{"X-Echo", req->method}};
        sb_httpd_stream_start(ex, 200, h, 1, req->query[0] ? -1 : req->content_length);
        F.streaming = ex;
        if (req->query[0] == 'p')
            sb_httpd_body_pause(ex); /* resumed at the next piece */
        return SB_HTTPD_STREAM;
    }
    if (req->path[0] == '/' && req->path[1] == 'e') { /* answered before the body */
        sb_httpd_respond_text(ex, 403, "early");
    }
    return SB_HTTPD_BUFFER;
}

static void on_request(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req,
                       const char *body, size_t len)
{
    (void)arg;
    if (req->path[0] == '/' && req->path[1] == 'h') {
        F.held = ex;
        return;
    }
    const char *host = sb_httpd_header_get(req, "host");
    sb_httpd_header h[] = {{"X-Host-Given", host ? "yes" : "no"}, {"Bad", "a\r\nb"}};
    if (sb_httpd_respond(ex, 200, h, 2, body, len) != -EINVAL) /* the CR LF is refused */
        __builtin_trap();
    sb_httpd_respond(ex, 200, h, 1, body, len);
}

static void on_body(void *arg, sb_httpd_exchange *ex, const char *d, size_t len)
{
    (void)arg;
    sb_httpd_stream_write(ex, d, len); /* may refuse past a known length: fine */
}

static void on_body_end(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    sb_httpd_stream_end(ex);
    F.streaming = NULL;
}

static void on_abort(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    if (F.held == ex)
        F.held = NULL;
    if (F.streaming == ex)
        F.streaming = NULL;
}

static void on_closed(void *arg)
{
    (void)arg;
    F.closed_server = 1;
}

static const sb_httpd_callbacks callbacks = {
    .on_head = on_head,
    .on_request = on_request,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_abort = on_abort,
    .log = on_log,
};

/* Between pieces: what a handler would do later (answer the held request, resume a body). */
static void between_pieces(void)
{
    if (F.held) {
        sb_httpd_exchange *ex = F.held;
        F.held = NULL;
        sb_httpd_respond_text(ex, 202, "later");
    }
    if (F.streaming)
        sb_httpd_body_resume(F.streaming);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uv_loop_t loop;
    static bool loop_ready;
    if (!loop_ready) {
        if (uv_loop_init(&loop) != 0)
            __builtin_trap();
        loop_ready = true;
    }
    memset(&F, 0, sizeof F);
    if (size < 2)
        return 0;
    /* byte 0: how the input is cut; byte 1: the limits */
    unsigned cut = data[0];
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    if (data[1] & 1) {
        cfg.max_request_line = 64;
        cfg.max_header_bytes = 256;
        cfg.max_headers = 4;
        cfg.max_body = 64;
    }
    cfg.read_buffer_size = 1024;
    data += 2;
    size -= 2;

    sb_httpd *srv = sb_httpd_new_detached(&loop, &cfg, &callbacks, NULL);
    if (!srv)
        return 0;
    sb_httpd_conn *c = sb_httpd_feed_conn_new(srv, "fuzz", out, NULL);
    if (!c)
        __builtin_trap();
    size_t off = 0;
    bool closed = false;
    while (off < size) {
        size_t piece;
        switch (cut & 3) {
        case 0:
            piece = size - off;
            break;
        case 1:
            piece = 1;
            break;
        case 2:
            piece = 1 + (cut >> 2);
            break;
        default:
            piece = 1 + (data[off] & 15);
            break;
        }
        if (piece > size - off)
            piece = size - off;
        int r = sb_httpd_feed(c, (const char *)data + off, piece);
        if (r == -EPIPE) {
            closed = true;
            if (F.closes != 1)
                __builtin_trap();
            if (sb_httpd_feed(c, "x", 1) != -EPIPE) /* nothing after the close */
                __builtin_trap();
            break;
        }
        if (F.closes)
            __builtin_trap();
        off += piece;
        between_pieces();
        uv_run(&loop, UV_RUN_NOWAIT); /* the idle handle's continuations */
    }
    if (!closed) {
        between_pieces();
        sb_httpd_feed(c, NULL, 0);
    }
    sb_httpd_feed_conn_free(c);
    sb_httpd_close(srv, on_closed, NULL);
    while (!F.closed_server)
        uv_run(&loop, UV_RUN_ONCE);
    return 0;
}
