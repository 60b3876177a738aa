/*
 * test_httpd.c - the HTTP/1.1 server (core/httpd.c) over real sockets on 127.0.0.1 ephemeral
 * ports. Each test runs the server's loop on the test's thread while a client thread speaks raw
 * HTTP with blocking sockets (every read bounded by a receive timeout), so what is asserted is
 * exactly what a client sees on the wire.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <uv.h>

#include "httpd.h"

/* ---- the server side: handlers -------------------------------------------------------------- */

typedef struct server_state {
    uv_loop_t loop;
    sb_httpd *srv;
    int port;
    int aborts;
    int closed;
    int log_lines;
    char last_log[512];
    /* /delay: answered from a timer */
    uv_timer_t delay_timer;
    sb_httpd_exchange *delayed;
    char delayed_path[64];
    /* /big: a streamed response of big_total bytes */
    sb_httpd_exchange *big;
    size_t big_sent, big_total;
    /* /stream: the echoed streamed body; /stream?pause: paused until resume_timer */
    bool stream_started;
    uv_timer_t resume_timer;
    sb_httpd_exchange *paused;
    int resumes;
} server_state;

static server_state S;

static void on_log(void *arg, sb_log_level level, const char *line)
{
    (void)arg;
    (void)level;
    S.log_lines++;
    if (getenv("HTTPD_TEST_LOG"))
        fprintf(stderr, "log: %s\n", line);
    snprintf(S.last_log, sizeof S.last_log, "%s", line);
    for (const char *p = line; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20, "control character in a log line");
}

static void delay_cb(uv_timer_t *t)
{
    (void)t;
    if (!S.delayed)
        return;
    char body[128];
    snprintf(body, sizeof body, "delayed %s", S.delayed_path);
    sb_httpd_respond_text(S.delayed, 200, body);
    S.delayed = NULL;
}

static void big_continue(sb_httpd_exchange *ex)
{
    static char block[65536];
    memset(block, 'b', sizeof block);
    while (S.big_sent < S.big_total) {
        size_t n =
            S.big_total - S.big_sent < sizeof block ? S.big_total - S.big_sent : sizeof block;
        int r = sb_httpd_stream_write(ex, block, n);
        ck_assert_int_ge(r, 0);
        S.big_sent += n;
        if (r == 1)
            return; /* wait for on_drain */
    }
    S.big = NULL;
    sb_httpd_stream_end(ex);
}

static void resume_cb(uv_timer_t *t)
{
    (void)t;
    if (!S.paused)
        return;
    S.resumes++;
    sb_httpd_body_resume(S.paused);
}

static sb_httpd_body_mode on_head(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    (void)arg;
    if (strcmp(req->path, "/stream") == 0) {
        S.stream_started = false;
        if (strcmp(req->query, "pause") == 0) { /* as a proxy waiting for its upstream */
            sb_httpd_body_pause(ex);
            S.paused = ex;
            uv_timer_start(&S.resume_timer, resume_cb, 50, 0);
        }
        return SB_HTTPD_STREAM;
    }
    if (strcmp(req->path, "/big") == 0) {
        ck_assert_int_eq(sb_httpd_stream_start(ex, 200, NULL, 0, -1), 0);
        S.big = ex;
        S.big_sent = 0;
        big_continue(ex);
        return SB_HTTPD_STREAM;
    }
    if (strncmp(req->path, "/cut", 4) == 0) { /* an answer that breaks after its head */
        bool known = strcmp(req->path, "/cut-length") == 0;
        ck_assert_int_eq(sb_httpd_stream_start(ex, 200, NULL, 0, known ? 10 : -1), 0);
        ck_assert_int_eq(sb_httpd_stream_write(ex, "part", 4), 0);
        ck_assert_int_eq(sb_httpd_stream_abort(ex), 0);
        ck_assert_int_eq(sb_httpd_stream_abort(ex), -EINVAL); /* ended */
        return SB_HTTPD_BUFFER;
    }
    if (strcmp(req->path, "/early") == 0) { /* answered before its body is read */
        sb_httpd_respond_text(ex, 401, "no");
        return SB_HTTPD_BUFFER;
    }
    return SB_HTTPD_BUFFER;
}

static void on_request(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req,
                       const char *body, size_t len)
{
    (void)arg;
    if (strncmp(req->path, "/delay", 6) == 0) {
        S.delayed = ex;
        snprintf(S.delayed_path, sizeof S.delayed_path, "%s", req->path);
        uv_timer_start(&S.delay_timer, delay_cb, 30, 0);
        return;
    }
    if (strcmp(req->path, "/hold") == 0) { /* never answered: the close test aborts it */
        S.delayed = ex;
        return;
    }
    const char *ua = sb_httpd_header_get(req, "x-test");
    char text[2048];
    snprintf(text, sizeof text,
             "method=%s path=%s query=%s v=1.%d peer=%.9s x-test=%s len=%zu body=%.*s", req->method,
             req->path, req->query, req->version_minor, req->peer, ua ? ua : "-", len,
             (int)(len < 1000 ? len : 1000), body);
    sb_httpd_header h[] = {{"X-Path", req->path}};
    ck_assert_int_eq(sb_httpd_respond(ex, 200, h, 1, text, strlen(text)), 0);
}

static void on_body(void *arg, sb_httpd_exchange *ex, const char *data, size_t len)
{
    (void)arg;
    ck_assert_msg(S.paused != ex || S.resumes > 0, "body delivered while paused");
    if (!S.stream_started) {
        ck_assert_int_eq(sb_httpd_stream_start(ex, 200, NULL, 0, -1), 0);
        S.stream_started = true;
    }
    ck_assert_int_ge(sb_httpd_stream_write(ex, data, len), 0);
}

static void on_body_end(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    if (S.big == ex)
        return;
    if (S.paused == ex)
        S.paused = NULL;
    if (!S.stream_started)
        sb_httpd_stream_start(ex, 200, NULL, 0, -1);
    sb_httpd_stream_write(ex, "|end", 4);
    sb_httpd_stream_end(ex);
}

static void on_drain(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    if (S.big == ex)
        big_continue(ex);
}

static void on_abort(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    S.aborts++;
    if (getenv("HTTPD_TEST_LOG"))
        fprintf(stderr, "abort: %s\n", sb_httpd_exchange_request(ex)->path);
    if (S.big == ex)
        S.big = NULL;
    if (S.delayed == ex)
        S.delayed = NULL;
    if (S.paused == ex)
        S.paused = NULL;
}

static const sb_httpd_callbacks callbacks = {
    .on_head = on_head,
    .on_request = on_request,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_drain = on_drain,
    .on_abort = on_abort,
    .log = on_log,
};

static void server_start(const sb_httpd_config *cfg)
{
    memset(&S, 0, sizeof S);
    S.big_total = 4u << 20;
    ck_assert_int_eq(uv_loop_init(&S.loop), 0);
    uv_timer_init(&S.loop, &S.delay_timer);
    uv_timer_init(&S.loop, &S.resume_timer);
    char err[256] = "";
    S.srv = sb_httpd_new(&S.loop, "127.0.0.1:0", cfg, &callbacks, NULL, err, sizeof err);
    ck_assert_msg(S.srv != NULL, "%s", err);
    S.port = sb_httpd_port(S.srv);
    ck_assert_int_gt(S.port, 0);
}

static void on_closed(void *arg)
{
    (void)arg;
    S.closed = 1;
}

static void server_stop(void)
{
    if (S.srv)
        sb_httpd_close(S.srv, on_closed, NULL);
    uv_close((uv_handle_t *)&S.delay_timer, NULL);
    uv_close((uv_handle_t *)&S.resume_timer, NULL);
    for (int i = 0; i < 1000 && !S.closed; i++)
        uv_run(&S.loop, UV_RUN_ONCE);
    ck_assert_int_eq(S.closed, S.srv ? 1 : 0);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&S.loop), 0);
}

/* ---- the client side ------------------------------------------------------------------------- */

typedef struct client {
    void (*fn)(struct client *);
    int port;
    atomic_int done;
} client;

static int cl_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void cl_send(int fd, const char *s)
{
    size_t len = strlen(s), off = 0;
    while (off < len) {
        ssize_t n = send(fd, s + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return; /* the server may have closed: what it answered is asserted */
        off += (size_t)n;
    }
}

/* Read until needle has appeared count times, EOF, or the 5 s receive timeout. Returns the
 * bytes read (NUL-terminated in buf); *eof says whether the server closed. */
static size_t cl_read(int fd, char *buf, size_t cap, const char *needle, int count, bool *eof)
{
    size_t len = 0;
    if (eof)
        *eof = false;
    buf[0] = '\0';
    for (;;) {
        if (needle) {
            int seen = 0;
            for (const char *p = buf; (p = strstr(p, needle)); p += strlen(needle))
                seen++;
            if (seen >= count)
                return len;
        }
        if (len + 1 >= cap)
            return len;
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            if (eof)
                *eof = n == 0 || errno == ECONNRESET;
            return len;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
}

/* true when the server closes the connection within 5 s */
static bool cl_sees_close(int fd)
{
    char buf[4096];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n == 0 || (n < 0 && errno == ECONNRESET))
            return true;
        if (n < 0)
            return false;
    }
}

static void *client_main(void *arg)
{
    client *c = arg;
    c->fn(c);
    atomic_store(&c->done, 1);
    return NULL;
}

static void watch_cb(uv_timer_t *t)
{
    client *c = t->data;
    if (atomic_load(&c->done))
        uv_stop(t->loop);
}

/* Run fn on a client thread while this thread runs the server's loop. */
static void run_client(void (*fn)(client *))
{
    client c = {.fn = fn, .port = S.port};
    uv_timer_t watch;
    uv_timer_init(&S.loop, &watch);
    watch.data = &c;
    uv_timer_start(&watch, watch_cb, 5, 5);
    pthread_t th;
    ck_assert_int_eq(pthread_create(&th, NULL, client_main, &c), 0);
    while (!atomic_load(&c.done))
        uv_run(&S.loop, UV_RUN_DEFAULT);
    pthread_join(th, NULL);
    uv_close((uv_handle_t *)&watch, NULL);
    uv_run(&S.loop, UV_RUN_NOWAIT);
}

/* ---- tests ------------------------------------------------------------------------------------
 */

static void get_buffered(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "GET /hello?x=1&y=2 HTTP/1.1\r\nHost: t\r\nX-Test: yes\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "x-test=", 1, NULL);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "X-Path: /hello\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Content-Length: "));
    ck_assert_ptr_nonnull(strstr(buf, "method=GET path=/hello query=x=1&y=2 v=1.1 peer=127.0.0.1"));
    close(fd);
}

START_TEST(test_get_buffered)
{
    server_start(NULL);
    run_client(get_buffered);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.requests, 1);
    server_stop();
}
END_TEST

static void keep_alive(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    for (int i = 0; i < 5; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET /r%d HTTP/1.1\r\nHost: t\r\n\r\n", i);
        cl_send(fd, req);
        char want[32];
        snprintf(want, sizeof want, "path=/r%d ", i);
        cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
        ck_assert_msg(strstr(buf, want) != NULL, "%s", buf);
        ck_assert_ptr_null(strstr(buf, "Connection: close"));
    }
    close(fd);
}

START_TEST(test_keep_alive)
{
    server_start(NULL);
    run_client(keep_alive);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.requests, 5);
    server_stop();
}
END_TEST

static void pipelining(client *c)
{
    int fd = cl_connect(c->port);
    char buf[16384];
    /* the first is answered later (from a timer): the others must still come after it */
    cl_send(fd, "GET /delay1 HTTP/1.1\r\nHost: t\r\n\r\n"
                "GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
                "POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc");
    cl_read(fd, buf, sizeof buf, "HTTP/1.1 200", 3, NULL);
    char *a = strstr(buf, "delayed /delay1"), *b = strstr(buf, "path=/b "),
         *d = strstr(buf, "path=/c ");
    ck_assert_msg(a && b && d, "%s", buf);
    ck_assert(a < b && b < d);
    ck_assert_ptr_nonnull(strstr(buf, "body=abc"));
    close(fd);
}

START_TEST(test_pipelining)
{
    server_start(NULL);
    run_client(pipelining);
    server_stop();
}
END_TEST

static void chunked_stream(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n");
    usleep(20000);
    cl_send(fd, "6\r\n world\r\n0\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "0\r\n\r\n", 1, NULL);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "5\r\nhello\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "6\r\n world\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "4\r\n|end\r\n0\r\n\r\n"));
    /* the connection is still usable */
    cl_send(fd, "GET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "path=/after "));
    close(fd);
}

START_TEST(test_chunked_stream)
{
    server_start(NULL);
    run_client(chunked_stream);
    server_stop();
}
END_TEST

static void paused_body(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    /* the 100 goes out only once the handler wants the body (after its resume) */
    cl_send(fd,
            "POST /stream?pause HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 10\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "\r\n\r\n", 1, NULL);
    ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    cl_send(fd, "0123456789");
    cl_read(fd, buf, sizeof buf, "0\r\n\r\n", 1, NULL);
    ck_assert_msg(strstr(buf, "a\r\n0123456789\r\n") != NULL, "%s", buf);
    /* paused with the body already sent: it waits in the buffer, then arrives whole */
    cl_send(fd, "POST /stream?pause HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde");
    cl_read(fd, buf, sizeof buf, "0\r\n\r\n", 1, NULL);
    ck_assert_msg(strstr(buf, "5\r\nabcde\r\n4\r\n|end\r\n0\r\n\r\n") != NULL, "%s", buf);
    close(fd);
}

START_TEST(test_paused_body)
{
    server_start(NULL);
    run_client(paused_body);
    ck_assert_int_eq(S.resumes, 2);
    server_stop();
}
END_TEST

static void content_length_body(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello");
    usleep(20000);
    cl_send(fd, " world");
    cl_read(fd, buf, sizeof buf, "world", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "method=POST path=/echo"));
    ck_assert_ptr_nonnull(strstr(buf, "len=11 body=hello world"));
    close(fd);
}

START_TEST(test_content_length_body)
{
    server_start(NULL);
    run_client(content_length_body);
    server_stop();
}
END_TEST

static void expect_continue(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd,
            "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "\r\n\r\n", 1, NULL);
    ck_assert_str_eq(buf, "HTTP/1.1 100 Continue\r\n\r\n");
    cl_send(fd, "data");
    cl_read(fd, buf, sizeof buf, "body=data", 1, NULL);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    /* answered before the body: no 100, and the connection closes after the answer */
    cl_send(fd,
            "POST /early HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n");
    bool eof;
    cl_read(fd, buf, sizeof buf, NULL, 0, &eof);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 401 Unauthorized\r\n", 27) == 0, "%s", buf);
    ck_assert_ptr_null(strstr(buf, "100 Continue"));
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
    ck_assert(eof);
    close(fd);
}

START_TEST(test_expect_continue)
{
    server_start(NULL);
    run_client(expect_continue);
    server_stop();
}
END_TEST

static void head_request(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "HEAD /h HTTP/1.1\r\nHost: t\r\n\r\nGET /g HTTP/1.1\r\nHost: t\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    /* the HEAD answer: headers only, with the length the GET would have */
    char *second = strstr(buf + 1, "HTTP/1.1 200 OK");
    ck_assert_msg(second != NULL, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Length: "));
    char *end_of_head = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_eq(end_of_head + 4, second);
    ck_assert_ptr_nonnull(strstr(second, "path=/g "));
    close(fd);
}

START_TEST(test_head)
{
    server_start(NULL);
    run_client(head_request);
    server_stop();
}
END_TEST

static void http10(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    bool eof;
    cl_send(fd, "GET /old HTTP/1.0\r\n\r\n");
    cl_read(fd, buf, sizeof buf, NULL, 0, &eof);
    ck_assert_ptr_nonnull(strstr(buf, "path=/old query= v=1.0"));
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
    ck_assert(eof);
    close(fd);
    /* HTTP/1.0 asking for keep-alive keeps it */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /ka HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "Connection: keep-alive\r\n"));
    cl_send(fd, "GET /ka2 HTTP/1.0\r\n\r\n");
    cl_read(fd, buf, sizeof buf, NULL, 0, &eof);
    ck_assert_ptr_nonnull(strstr(buf, "path=/ka2 "));
    ck_assert(eof);
    close(fd);
    /* and Connection: close on HTTP/1.1 closes */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /c HTTP/1.1\r\nConnection: close\r\n\r\n");
    cl_read(fd, buf, sizeof buf, NULL, 0, &eof);
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
    ck_assert(eof);
    close(fd);
}

START_TEST(test_http10)
{
    server_start(NULL);
    run_client(http10);
    server_stop();
}
END_TEST

/* Send req (a request the server refuses) and expect status, a one-line body, and a close. */
static void expect_refusal(int port, const char *req, const char *status)
{
    int fd = cl_connect(port);
    char buf[8192];
    bool eof;
    cl_send(fd, req);
    cl_read(fd, buf, sizeof buf, NULL, 0, &eof);
    ck_assert_msg(strncmp(buf, status, strlen(status)) == 0, "wanted %s, got %s (log: %s)", status,
                  buf, S.last_log);
    ck_assert_ptr_nonnull(strstr(buf, "Connection: close\r\n"));
    ck_assert_ptr_nonnull(strstr(buf, "Content-Type: text/plain"));
    char *body = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    body += 4;
    ck_assert_msg(strlen(body) > 1 && strchr(body, '\n') == body + strlen(body) - 1, "%s", body);
    ck_assert(eof);
    close(fd);
}

static void limits(client *c)
{
    static char req[65536];
    /* 414: a target over max_request_line */
    char *p = req + sprintf(req, "GET /");
    memset(p, 'a', 300);
    strcpy(p + 300, " HTTP/1.1\r\nHost: t\r\n\r\n");
    expect_refusal(c->port, req, "HTTP/1.1 414 ");
    /* 431 by size */
    p = req + sprintf(req, "GET / HTTP/1.1\r\nX-Big: ");
    memset(p, 'h', 1200);
    strcpy(p + 1200, "\r\n\r\n");
    expect_refusal(c->port, req, "HTTP/1.1 431 ");
    /* 431 by count */
    p = req + sprintf(req, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 12; i++)
        p += sprintf(p, "X-%d: v\r\n", i);
    strcpy(p, "\r\n");
    expect_refusal(c->port, req, "HTTP/1.1 431 ");
    /* 413 by Content-Length, and by a chunked body growing past the bound */
    expect_refusal(c->port, "POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n", "HTTP/1.1 413 ");
    p = req + sprintf(req, "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (int i = 0; i < 3; i++) {
        p += sprintf(p, "400\r\n");
        memset(p, 'x', 1024);
        p += 1024;
        p += sprintf(p, "\r\n");
    }
    strcpy(p, "0\r\n\r\n");
    expect_refusal(c->port, req, "HTTP/1.1 413 ");
    /* garbage */
    expect_refusal(c->port, "\x01\x02 this is not http\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal(c->port, "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                   "HTTP/1.1 400 ");
    expect_refusal(c->port, "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "HTTP/1.1 400 ");
    expect_refusal(c->port, "CONNECT a:1 HTTP/1.1\r\n\r\n", "HTTP/1.1 405 ");
    /* within the limits it still works */
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "POST /ok HTTP/1.1\r\nContent-Length: 2000\r\n\r\n");
    static char body[2001];
    memset(body, 'y', 2000);
    cl_send(fd, body);
    cl_read(fd, buf, sizeof buf, "yyyy", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "len=2000"));
    close(fd);
}

START_TEST(test_limits)
{
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.max_request_line = 256;
    cfg.max_header_bytes = 1024;
    cfg.max_headers = 10;
    cfg.max_body = 2048;
    server_start(&cfg);
    run_client(limits);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.errors, 9);
    ck_assert_int_ge(S.log_lines, 9);
    server_stop();
}
END_TEST

static void connection_limit(client *c)
{
    int a = cl_connect(c->port), b = cl_connect(c->port);
    char buf[8192];
    /* both served (so both have been accepted before the third connects) */
    cl_send(a, "GET /a HTTP/1.1\r\n\r\n");
    cl_read(a, buf, sizeof buf, "body=", 1, NULL);
    cl_send(b, "GET /b HTTP/1.1\r\n\r\n");
    cl_read(b, buf, sizeof buf, "body=", 1, NULL);
    expect_refusal(c->port, "GET /c HTTP/1.1\r\n\r\n", "HTTP/1.1 503 ");
    close(a);
    /* a slot is free again once the server has seen the close */
    for (int i = 0; i < 100; i++) {
        usleep(10000);
        int d = cl_connect(c->port);
        cl_send(d, "GET /d HTTP/1.1\r\n\r\n");
        cl_read(d, buf, sizeof buf, "body=", 1, NULL);
        close(d);
        if (strstr(buf, "path=/d "))
            break;
    }
    ck_assert_ptr_nonnull(strstr(buf, "path=/d "));
    close(b);
}

START_TEST(test_connection_limit)
{
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.max_connections = 2;
    server_start(&cfg);
    run_client(connection_limit);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_ge(st.rejected, 1);
    server_stop();
}
END_TEST

static void slowloris(client *c)
{
    int fd = cl_connect(c->port);
    const char *req =
        "GET / HTTP/1.1\r\nHost: t\r\nX-A: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    char buf[8192];
    bool closed = false;
    for (size_t i = 0; req[i] && !closed; i++) { /* one byte every 20 ms: ~1.4 s in all */
        char one[2] = {req[i], 0};
        if (send(fd, one, 1, MSG_NOSIGNAL) != 1)
            closed = true;
        usleep(20000);
    }
    cl_read(fd, buf, sizeof buf, NULL, 0, NULL);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 408 ", 13) == 0, "%s", buf);
    close(fd);
}

static void idle_timeout(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "GET /i HTTP/1.1\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "path=/i "));
    ck_assert(cl_sees_close(fd)); /* silently, after idle_timeout_ms */
    close(fd);
}

START_TEST(test_timeouts)
{
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.header_timeout_ms = 300;
    cfg.idle_timeout_ms = 200;
    server_start(&cfg);
    run_client(slowloris);
    run_client(idle_timeout);
    server_stop();
}
END_TEST

static void big_response(client *c)
{
    int fd = cl_connect(c->port);
    static char buf[1 << 16];
    cl_send(fd, "GET /big HTTP/1.1\r\n\r\n");
    size_t total = 0;
    bool end = false;
    char tail[8] = "";
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        total += (size_t)n;
        size_t keep = n >= 5 ? 5 : (size_t)n;
        memmove(tail, tail + keep, 5 - keep);
        memcpy(tail + 5 - keep, buf + n - keep, keep);
        if (memcmp(tail, "0\r\n\r\n", 5) == 0) {
            end = true;
            break;
        }
    }
    ck_assert(end);
    ck_assert_uint_gt(total, 4u << 20);
    close(fd);
}

static void vanish(client *c)
{
    /* mid-request: half a head, then gone */
    int fd = cl_connect(c->port);
    cl_send(fd, "GET /x HTTP/1.1\r\nHost: ");
    close(fd);
    /* mid-body of a streamed request */
    fd = cl_connect(c->port);
    cl_send(fd, "POST /stream HTTP/1.1\r\nContent-Length: 100\r\n\r\nabc");
    usleep(20000);
    close(fd);
    /* mid-response: a big streamed answer read only in part */
    fd = cl_connect(c->port);
    char buf[65536];
    cl_send(fd, "GET /big HTTP/1.1\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "bbbbbbbbbb", 1, NULL);
    struct linger lg = {.l_onoff = 1, .l_linger = 0}; /* a reset, as a crashed client */
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    /* a waiting request whose client leaves */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /hold HTTP/1.1\r\n\r\n");
    usleep(20000);
    close(fd);
    usleep(100000);
    /* the server still serves */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /alive HTTP/1.1\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "path=/alive "));
    close(fd);
}

START_TEST(test_streamed_response_and_vanishing_clients)
{
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.write_queue_max = 64u << 10;
    server_start(&cfg);
    run_client(big_response);
    ck_assert_int_eq(S.aborts, 0);
    /* more than the kernel's socket buffers hold, written at once when the client reads fast */
    S.big_total = 64u << 20;
    run_client(vanish);
    /* the streamed body, the big response and the held request were each aborted */
    ck_assert_int_ge(S.aborts, 3);
    ck_assert_ptr_null(S.big);
    ck_assert_ptr_null(S.delayed);
    server_stop();
}
END_TEST

static void never_reads(client *c)
{
    int fd = cl_connect(c->port);
    cl_send(fd, "GET /big HTTP/1.1\r\n\r\n");
    usleep(1000000); /* well past write_timeout_ms without reading a byte */
    static char buf[1 << 16];
    size_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0)
            break; /* EOF or reset: the server gave up (what the kernels held came first) */
        total += (size_t)n;
    }
    ck_assert_uint_lt(total, 32u << 20);
    close(fd);
}

START_TEST(test_write_timeout)
{
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    cfg.write_queue_max = 64u << 10;
    cfg.write_timeout_ms = 200;
    server_start(&cfg);
    S.big_total = 32u << 20;
    run_client(never_reads);
    ck_assert_int_eq(S.aborts, 1);
    ck_assert_ptr_null(S.big);
    server_stop();
}
END_TEST

START_TEST(test_port_in_use_and_bad_address)
{
    server_start(NULL);
    char listen[64], err[256] = "";
    snprintf(listen, sizeof listen, "127.0.0.1:%d", S.port);
    sb_httpd *second = sb_httpd_new(&S.loop, listen, NULL, &callbacks, NULL, err, sizeof err);
    ck_assert_ptr_null(second);
    char want[128];
    snprintf(want, sizeof want, "cannot listen on 127.0.0.1:%d: address already in use", S.port);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(sb_httpd_listen_socket(listen, 16, err, sizeof err), -1);
    ck_assert_str_eq(err, want);
    const char *bad[] = {"127.0.0.1", "localhost:80", "1.2.3.4:99999", "[::1:80",
                         "::1:80",    "1.2.3.4:",     "1.2.3.4:8a",    "\x1b[31m:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_ptr_null(sb_httpd_new(&S.loop, bad[i], NULL, &callbacks, NULL, err, sizeof err));
        ck_assert_msg(strncmp(err, "bad listen address '", 20) == 0, "%s", err);
        for (const char *p = err; *p; p++)
            ck_assert((unsigned char)*p >= 0x20);
    }
    /* IPv6 works where the machine has ::1 */
    sb_httpd *v6 = sb_httpd_new(&S.loop, "[::1]:0", NULL, &callbacks, NULL, err, sizeof err);
    if (v6) {
        char addr[80];
        ck_assert_int_eq(sb_httpd_local_address(v6, addr, sizeof addr), 0);
        ck_assert_msg(strncmp(addr, "[::1]:", 6) == 0, "%s", addr);
        sb_httpd_close(v6, NULL, NULL);
    }
    server_stop();
}
END_TEST

static void one_get(client *c)
{
    int fd = cl_connect(c->port);
    char buf[8192];
    cl_send(fd, "GET /fd HTTP/1.1\r\n\r\n");
    cl_read(fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "path=/fd "));
    close(fd);
}

START_TEST(test_serve_fd)
{
    memset(&S, 0, sizeof S);
    ck_assert_int_eq(uv_loop_init(&S.loop), 0);
    uv_timer_init(&S.loop, &S.delay_timer);
    uv_timer_init(&S.loop, &S.resume_timer);
    char err[256];
    int fd = sb_httpd_listen_socket("127.0.0.1:0", 64, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    for (int round = 0; round < 2; round++) { /* the second server gets the same socket */
        S.closed = 0;
        S.srv = sb_httpd_new_fd(&S.loop, fd, NULL, &callbacks, NULL, err, sizeof err);
        ck_assert_msg(S.srv != NULL, "%s", err);
        S.port = sb_httpd_port(S.srv);
        run_client(one_get);
        sb_httpd_close(S.srv, on_closed, NULL);
        while (!S.closed)
            uv_run(&S.loop, UV_RUN_ONCE);
        int type;
        socklen_t tl = sizeof type;
        ck_assert_int_eq(getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl), 0); /* still ours */
    }
    ck_assert_ptr_null(
        sb_httpd_new_fd(&S.loop, 0 /* stdin */, NULL, &callbacks, NULL, err, sizeof err));
    ck_assert_msg(strstr(err, "not a stream socket") != NULL, "%s", err);
    close(fd);
    S.srv = NULL;
    S.closed = 0;
    server_stop();
}
END_TEST

static int held[2];

static void hold_two(client *c)
{
    held[0] = cl_connect(c->port);
    held[1] = cl_connect(c->port);
    cl_send(held[0], "GET /hold HTTP/1.1\r\n\r\n");
    cl_send(held[1], "GET /partial HTTP/1.1\r\n");
    usleep(100000); /* both stay open: the server closes them */
}

START_TEST(test_close_with_connections_open)
{
    server_start(NULL);
    run_client(hold_two);
    ck_assert_ptr_nonnull(S.delayed);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.connections, 2);
    sb_httpd_close(S.srv, on_closed, NULL);
    ck_assert_int_eq(S.aborts, 1); /* the held exchange, at once */
    ck_assert_ptr_null(S.delayed);
    S.srv = NULL;
    uv_close((uv_handle_t *)&S.delay_timer, NULL);
    uv_close((uv_handle_t *)&S.resume_timer, NULL);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(S.closed, 1);
    ck_assert_int_eq(uv_loop_close(&S.loop), 0);
    ck_assert(cl_sees_close(held[0]));
    ck_assert(cl_sees_close(held[1]));
    close(held[0]);
    close(held[1]);
}
END_TEST

/* ---- aborted answers, and a server that stops accepting ------------------------------------ */

/* Read everything until the server closes; *reset says whether it ended with a reset. */
static size_t cl_read_all(int fd, char *buf, size_t cap, bool *reset)
{
    size_t len = 0;
    *reset = false;
    buf[0] = '\0';
    while (len + 1 < cap) {
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0) {
            *reset = n < 0 && errno == ECONNRESET;
            ck_assert_msg(n == 0 || *reset, "no close within 5 s: %s", strerror(errno));
            break;
        }
        len += (size_t)n;
        buf[len] = '\0';
    }
    return len;
}

static void stream_abort(client *c)
{
    char buf[8192];
    bool reset;
    /* chunked: what was written, then the close, without the last chunk */
    int fd = cl_connect(c->port);
    cl_send(fd, "GET /cut HTTP/1.1\r\nHost: t\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\n\r\n");
    cl_read_all(fd, buf, sizeof buf, &reset);
    ck_assert_msg(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", buf);
    ck_assert_ptr_nonnull(strstr(buf, "Transfer-Encoding: chunked\r\n"));
    ck_assert_msg(strstr(buf, "\r\n\r\n4\r\npart\r\n") != NULL, "%s", buf);
    ck_assert_msg(strstr(buf, "0\r\n\r\n") == NULL, "a complete chunked answer: %s", buf);
    ck_assert_msg(strstr(buf, "/after") == NULL, "the next request was served: %s", buf);
    close(fd);
    /* a known length: short, then the close */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /cut-length HTTP/1.1\r\nHost: t\r\n\r\n");
    cl_read_all(fd, buf, sizeof buf, &reset);
    ck_assert_ptr_nonnull(strstr(buf, "Content-Length: 10\r\n"));
    char *body = strstr(buf, "\r\n\r\n");
    ck_assert_ptr_nonnull(body);
    ck_assert_str_eq(body + 4, "part");
    close(fd);
    /* HTTP/1.0, close-delimited: a FIN would read as the end, so the close is a reset */
    fd = cl_connect(c->port);
    cl_send(fd, "GET /cut HTTP/1.0\r\n\r\n");
    cl_read_all(fd, buf, sizeof buf, &reset);
    ck_assert_msg(reset, "an HTTP/1.0 client saw a clean end: %s", buf);
    ck_assert_ptr_null(strstr(buf, "Transfer-Encoding"));
    close(fd);
}

START_TEST(test_stream_abort)
{
    server_start(NULL);
    run_client(stream_abort);
    ck_assert_int_eq(S.aborts, 0); /* the handler ended them itself */
    server_stop();
}
END_TEST

static int kept_fd;

static void keep_one(client *c)
{
    kept_fd = cl_connect(c->port);
    char buf[8192];
    cl_send(kept_fd, "GET /first HTTP/1.1\r\n\r\n");
    cl_read(kept_fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_ptr_nonnull(strstr(buf, "path=/first "));
}

static int refused_port;

static void refused_then_kept(client *c)
{
    (void)c;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)refused_port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int r = connect(fd, (struct sockaddr *)&a, sizeof a);
    ck_assert_msg(r != 0 && errno == ECONNREFUSED, "a new connection was not refused");
    close(fd);
    /* the connection accepted before still serves */
    char buf[8192];
    cl_send(kept_fd, "GET /second HTTP/1.1\r\n\r\n");
    cl_read(kept_fd, buf, sizeof buf, "body=", 1, NULL);
    ck_assert_msg(strstr(buf, "path=/second ") != NULL, "%s", buf);
    close(kept_fd);
}

static void five_gets(client *c)
{
    for (int i = 0; i < 5; i++)
        one_get(c);
}

START_TEST(test_stop_accepting)
{
    /* its own socket: closed, so a new connection is refused; the open one carries on */
    server_start(NULL);
    run_client(keep_one);
    refused_port = S.port;
    sb_httpd_stop_accepting(S.srv);
    sb_httpd_stop_accepting(S.srv); /* idempotent */
    ck_assert_int_eq(sb_httpd_port(S.srv), -1);
    run_client(refused_then_kept);
    sb_httpd_stats st;
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.accepted, 1);
    ck_assert_uint_eq(st.requests, 2);
    server_stop();

    /* a shared socket (a reload's old and new router): every new connection goes to the one
     * still accepting, none is refused */
    memset(&S, 0, sizeof S);
    ck_assert_int_eq(uv_loop_init(&S.loop), 0);
    uv_timer_init(&S.loop, &S.delay_timer);
    uv_timer_init(&S.loop, &S.resume_timer);
    char err[256];
    int fd = sb_httpd_listen_socket("127.0.0.1:0", 64, err, sizeof err);
    ck_assert_msg(fd >= 0, "%s", err);
    sb_httpd *old_srv = sb_httpd_new_fd(&S.loop, fd, NULL, &callbacks, NULL, err, sizeof err);
    ck_assert_msg(old_srv != NULL, "%s", err);
    S.srv = sb_httpd_new_fd(&S.loop, fd, NULL, &callbacks, NULL, err, sizeof err);
    ck_assert_msg(S.srv != NULL, "%s", err);
    S.port = sb_httpd_port(S.srv);
    sb_httpd_stop_accepting(old_srv);
    run_client(five_gets);
    sb_httpd_get_stats(old_srv, &st);
    ck_assert_uint_eq(st.accepted, 0);
    sb_httpd_get_stats(S.srv, &st);
    ck_assert_uint_eq(st.accepted, 5);
    sb_httpd_close(old_srv, on_closed, NULL);
    while (!S.closed)
        uv_run(&S.loop, UV_RUN_ONCE);
    S.closed = 0;
    server_stop();
    close(fd);
}
END_TEST

/* ---- feed connections ----------------------------------------------------------------------- */

typedef struct sink {
    char buf[16384];
    size_t len;
    int closes;
} sink;

static void sink_out(void *arg, const char *data, size_t len)
{
    sink *s = arg;
    if (!data) {
        s->closes++;
        return;
    }
    if (s->len + len < sizeof s->buf) {
        memcpy(s->buf + s->len, data, len);
        s->len += len;
        s->buf[s->len] = '\0';
    }
}

START_TEST(test_feed)
{
    memset(&S, 0, sizeof S);
    ck_assert_int_eq(uv_loop_init(&S.loop), 0);
    uv_timer_init(&S.loop, &S.delay_timer);
    S.srv = sb_httpd_new_detached(&S.loop, NULL, &callbacks, NULL);
    ck_assert_ptr_nonnull(S.srv);
    ck_assert_int_eq(sb_httpd_port(S.srv), -1);
    sink out = {0};
    sb_httpd_conn *c = sb_httpd_feed_conn_new(S.srv, "fuzz\x01", sink_out, &out);
    ck_assert_ptr_nonnull(c);
    const char *req = "GET /one HTTP/1.1\r\n\r\nPOST /two HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
    for (const char *p = req; *p; p++) /* byte by byte */
        ck_assert_int_eq(sb_httpd_feed(c, p, 1), 0);
    ck_assert_msg(strstr(out.buf, "path=/one ") && strstr(out.buf, "body=hi"), "%s", out.buf);
    ck_assert_ptr_nonnull(strstr(out.buf, "peer=fuzz?"));
    ck_assert_int_eq(sb_httpd_feed(c, "BAD\r\n\r\n", 7), -EPIPE);
    ck_assert_ptr_nonnull(strstr(out.buf, "HTTP/1.1 400 "));
    ck_assert_int_eq(out.closes, 1);
    sb_httpd_feed_conn_free(c);
    /* one left open when the server closes: closed for its owner, who still frees it */
    sink out2 = {0};
    c = sb_httpd_feed_conn_new(S.srv, "f2", sink_out, &out2);
    ck_assert_int_eq(sb_httpd_feed(c, "GET /hold HTTP/1.1\r\n\r\n", 22), 0);
    ck_assert_ptr_nonnull(S.delayed);
    sb_httpd_close(S.srv, on_closed, NULL);
    ck_assert_int_eq(S.aborts, 1);
    ck_assert_int_eq(out2.closes, 1);
    ck_assert_int_eq(sb_httpd_feed(c, "x", 1), -EPIPE);
    sb_httpd_feed_conn_free(c);
    S.srv = NULL;
    uv_close((uv_handle_t *)&S.delay_timer, NULL);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(S.closed, 1);
    ck_assert_int_eq(uv_loop_close(&S.loop), 0);
}
END_TEST

START_TEST(test_respond_refuses_header_injection)
{
    memset(&S, 0, sizeof S);
    ck_assert_int_eq(uv_loop_init(&S.loop), 0);
    uv_timer_init(&S.loop, &S.delay_timer);
    S.srv = sb_httpd_new_detached(&S.loop, NULL, &callbacks, NULL);
    sink out = {0};
    sb_httpd_conn *c = sb_httpd_feed_conn_new(S.srv, "t", sink_out, &out);
    ck_assert_int_eq(sb_httpd_feed(c, "GET /hold HTTP/1.1\r\n\r\n", 22), 0);
    sb_httpd_exchange *ex = S.delayed;
    ck_assert_ptr_nonnull(ex);
    sb_httpd_header evil[] = {{"X-A", "1\r\nSet-Cookie: x"}};
    ck_assert_int_eq(sb_httpd_respond(ex, 200, evil, 1, "a", 1), -EINVAL);
    sb_httpd_header evil_name[] = {{"X A", "1"}};
    ck_assert_int_eq(sb_httpd_respond(ex, 200, evil_name, 1, "a", 1), -EINVAL);
    ck_assert_int_eq(sb_httpd_respond(ex, 99, NULL, 0, "a", 1), -EINVAL);
    ck_assert_uint_eq(out.len, 0);
    /* a known-length stream refuses more than it announced */
    ck_assert_int_eq(sb_httpd_stream_start(ex, 200, NULL, 0, 3), 0);
    ck_assert_int_eq(sb_httpd_stream_write(ex, "abcd", 4), -EINVAL);
    ck_assert_int_eq(sb_httpd_stream_write(ex, "abc", 3), 0);
    ck_assert_int_eq(sb_httpd_stream_end(ex), 0);
    S.delayed = NULL;
    ck_assert_ptr_nonnull(strstr(out.buf, "Content-Length: 3\r\n\r\nabc"));
    sb_httpd_feed_conn_free(c);
    sb_httpd_close(S.srv, on_closed, NULL);
    S.srv = NULL;
    uv_close((uv_handle_t *)&S.delay_timer, NULL);
    uv_run(&S.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(S.closed, 1);
    ck_assert_int_eq(uv_loop_close(&S.loop), 0);
}
END_TEST

static Suite *httpd_suite(void)
{
    Suite *s = suite_create("httpd");
    TCase *tc = tcase_create("server");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_get_buffered);
    tcase_add_test(tc, test_keep_alive);
    tcase_add_test(tc, test_pipelining);
    tcase_add_test(tc, test_chunked_stream);
    tcase_add_test(tc, test_paused_body);
    tcase_add_test(tc, test_content_length_body);
    tcase_add_test(tc, test_expect_continue);
    tcase_add_test(tc, test_head);
    tcase_add_test(tc, test_http10);
    tcase_add_test(tc, test_limits);
    tcase_add_test(tc, test_connection_limit);
    tcase_add_test(tc, test_timeouts);
    tcase_add_test(tc, test_streamed_response_and_vanishing_clients);
    tcase_add_test(tc, test_write_timeout);
    tcase_add_test(tc, test_port_in_use_and_bad_address);
    tcase_add_test(tc, test_serve_fd);
    tcase_add_test(tc, test_close_with_connections_open);
    tcase_add_test(tc, test_feed);
    tcase_add_test(tc, test_respond_refuses_header_injection);
    tcase_add_test(tc, test_stream_abort);
    tcase_add_test(tc, test_stop_accepting);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(httpd_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
