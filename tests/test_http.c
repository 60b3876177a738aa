/*
 * test_http.c - the daemon's HTTP client (core/http.c) and the polling library
 * (plugins/poll: back-off, Retry-After, the poller's schedule and failures), against a real HTTP
 * server on loopback (tests/http/server.py, started once for the whole suite).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <uv.h>

#include <dlfcn.h>

#include "config.h"
#include "daemon.h"
#include "fake_host.h"
#include "http.h"
#include "scalebus/poll.h"

static int server_port;
static pid_t server_pid = -1, unix_server_pid = -1;
static char unix_dir[] = "/tmp/sb-http-test.XXXXXX";
static char unix_path[256];

/* Start tests/http/server.py with ARGS; its first stdout line (the port) into line. */
static pid_t start_server(const char *extra1, const char *extra2, char *line, size_t len)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/usr/bin/python3", "python3", SB_SOURCE_DIR "/tests/http/server.py", extra1, extra2,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t r = read(fds[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(fds[0]);
    return pid;
}

static void url_of(char *buf, size_t len, const char *path)
{
    snprintf(buf, len, "http://127.0.0.1:%d%s", server_port, path);
}

/* ---- the client, directly ------------------------------------------------------------------ */

typedef struct result {
    int done;
    int error;
    long status;
    char body[4096];
    size_t body_len;
    char header_x_test[32];
    char error_text[256];
} result;

static void on_done(void *arg, const sb_http_response *res)
{
    result *r = arg;
    r->done++;
    r->error = res->error;
    r->status = res->status;
    r->body_len = res->body_len;
    snprintf(r->body, sizeof r->body, "%s", res->body);
    snprintf(r->error_text, sizeof r->error_text, "%s", res->error_text);
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcmp(res->headers[i].key, "x-test") == 0)
            snprintf(r->header_x_test, sizeof r->header_x_test, "%s", res->headers[i].value);
}

static uv_loop_t loop;
static http_client *client;

static void client_setup(void)
{
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    char err[256];
    client = http_client_new(&loop, err, sizeof err);
    ck_assert_msg(client != NULL, "%s", err);
}

static void client_teardown(void)
{
    http_client_close(client);
    client = NULL;
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
}

/* Run the loop until r->done or about 10 s. */
static void run_until(result *r)
{
    for (int i = 0; i < 2000 && !r->done; i++) {
        uv_run(&loop, UV_RUN_ONCE);
        if (!r->done)
            usleep(1000);
    }
}

static int request(const sb_http_request *req, result *r, sb_http **h)
{
    char err[256];
    return http_client_request(client, NULL, req, on_done, r, h, err, sizeof err);
}

START_TEST(test_get_status_body_headers)
{
    char url[128];
    url_of(url, sizeof url, "/ok");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    ck_assert_int_eq(r.done, 0); /* never inside the call */
    run_until(&r);
    ck_assert_int_eq(r.done, 1);
    ck_assert_int_eq(r.error, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
    ck_assert_uint_eq(r.body_len, 5);
    ck_assert_str_eq(r.header_x_test, "1"); /* names lower-cased */
}
END_TEST

START_TEST(test_post_headers_body_method)
{
    char url[128];
    url_of(url, sizeof url, "/echo");
    sb_label hdrs[] = {{"X-Token", "abc"}, {"X-Empty", ""}};
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url, .method = "PUT", .headers = hdrs,
                           .nheaders = 2, .body = "{\"n\":1}", .body_len = 7};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.status, 200);
    cJSON *j = cJSON_Parse(r.body);
    ck_assert_ptr_nonnull(j);
    ck_assert_str_eq(cJSON_GetObjectItem(j, "method")->valuestring, "PUT");
    ck_assert_str_eq(cJSON_GetObjectItem(j, "body")->valuestring, "{\"n\":1}");
    cJSON *h = cJSON_GetObjectItem(j, "headers");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "x-token")->valuestring, "abc");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "x-empty")->valuestring, "");
    ck_assert_ptr_null(cJSON_GetObjectItem(h, "expect"));
    ck_assert_ptr_nonnull(strstr(cJSON_GetObjectItem(h, "user-agent")->valuestring, "scalebus/"));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_basic_auth_and_sigv4)
{
    char url[128];
    url_of(url, sizeof url, "/echo");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url, .username = "u", .password = "p"};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    cJSON *j = cJSON_Parse(r.body);
    cJSON *h = cJSON_GetObjectItem(j, "headers");
    ck_assert_str_eq(cJSON_GetObjectItem(h, "authorization")->valuestring, "Basic dTpw");
    cJSON_Delete(j);

    sb_http_request sig = {SB_HTTP_REQUEST_INIT, .url = url, .aws_sigv4 = "aws:amz:eu-west-1:sqs",
                           .username = "AKIDEXAMPLE", .password = "secret", .body = "Action=X",
                           .body_len = 8};
    result r2 = {0};
    ck_assert_int_eq(request(&sig, &r2, NULL), 0);
    run_until(&r2);
    j = cJSON_Parse(r2.body);
    h = cJSON_GetObjectItem(j, "headers");
    const char *auth = cJSON_GetObjectItem(h, "authorization")->valuestring;
    ck_assert_msg(strncmp(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40) == 0, "%s", auth);
    ck_assert_ptr_nonnull(strstr(auth, "/eu-west-1/sqs/aws4_request"));
    ck_assert_ptr_null(strstr(auth, "secret"));
    ck_assert_ptr_nonnull(cJSON_GetObjectItem(h, "x-amz-date"));
    cJSON_Delete(j);
}
END_TEST

START_TEST(test_body_limit)
{
    char url[128];
    url_of(url, sizeof url, "/big?n=100000");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url, .max_body = 1000};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.error, -EMSGSIZE);
    ck_assert_str_eq(r.error_text, "reply body over the limit of 1000 bytes");
    ck_assert_int_eq(r.status, 0);
    /* At the limit exactly is fine. */
    url_of(url, sizeof url, "/big?n=1000");
    result r2 = {0};
    ck_assert_int_eq(request(&req, &r2, NULL), 0);
    run_until(&r2);
    ck_assert_int_eq(r2.error, 0);
    ck_assert_uint_eq(r2.body_len, 1000);
}
END_TEST

START_TEST(test_timeout)
{
    char url[128];
    url_of(url, sizeof url, "/slow?ms=3000");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url, .timeout_ms = 200};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.done, 1);
    ck_assert_int_eq(r.error, -ETIMEDOUT);
    ck_assert_msg(strstr(r.error_text, "imed out") != NULL, "%s", r.error_text);
}
END_TEST

START_TEST(test_refused_and_garbage)
{
    /* A port nobody listens on: bind one, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t al = sizeof a;
    getsockname(s, (struct sockaddr *)&a, &al);
    close(s);
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", ntohs(a.sin_port));
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.error, -ECONNREFUSED);

    url_of(url, sizeof url, "/garbage");
    result r2 = {0};
    ck_assert_int_eq(request(&req, &r2, NULL), 0);
    run_until(&r2);
    ck_assert_int_eq(r2.done, 1);
    ck_assert_msg(r2.error == -EPROTO || r2.error == -EIO, "error %d: %s", r2.error, r2.error_text);
}
END_TEST

START_TEST(test_refuses_bad_requests)
{
    char err[256];
    result r = {0};
    sb_http_request file = {SB_HTTP_REQUEST_INIT, .url = "file:///etc/passwd"};
    ck_assert_int_eq(http_client_request(client, NULL, &file, on_done, &r, NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "URL 'file:///etc/passwd' is not http:// or https://");
    char url[128];
    url_of(url, sizeof url, "/ok");
    sb_label evil = {"X-A", "1\r\nX-Injected: 2"};
    sb_http_request inj = {SB_HTTP_REQUEST_INIT, .url = url, .headers = &evil, .nheaders = 1};
    ck_assert_int_eq(http_client_request(client, NULL, &inj, on_done, &r, NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "bad HTTP header 'X-A'");
    sb_http_request meth = {SB_HTTP_REQUEST_INIT, .url = url, .method = "GET /x"};
    ck_assert_int_eq(http_client_request(client, NULL, &meth, on_done, &r, NULL, err, sizeof err),
                     -EINVAL);
    sb_http_request old = {.size = 8, .url = url};
    ck_assert_int_eq(http_client_request(client, NULL, &old, on_done, &r, NULL, err, sizeof err),
                     -EINVAL);
    ck_assert_int_eq(r.done, 0);
    ck_assert_uint_eq(http_client_in_flight(client), 0);
}
END_TEST

START_TEST(test_cancel_and_cancel_owner)
{
    char url[128];
    url_of(url, sizeof url, "/slow?ms=500");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url};
    result r1 = {0}, r2 = {0}, r3 = {0};
    sb_http *h1 = NULL;
    char err[256];
    int owner_a, owner_b;
    ck_assert_int_eq(http_client_request(client, &owner_a, &req, on_done, &r1, &h1, err, sizeof err), 0);
    ck_assert_int_eq(http_client_request(client, &owner_b, &req, on_done, &r2, NULL, err, sizeof err), 0);
    ck_assert_int_eq(http_client_request(client, &owner_b, &req, on_done, &r3, NULL, err, sizeof err), 0);
    ck_assert_uint_eq(http_client_in_flight(client), 3);
    uv_run(&loop, UV_RUN_NOWAIT);
    http_client_cancel(client, h1);
    ck_assert_uint_eq(http_client_cancel_owner(client, &owner_b), 2);
    ck_assert_uint_eq(http_client_in_flight(client), 0);
    /* Wait past the server's reply: no callback ever comes. */
    for (int i = 0; i < 80; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    ck_assert_int_eq(r1.done + r2.done + r3.done, 0);
}
END_TEST

START_TEST(test_connections_are_reused)
{
    char url[128];
    url_of(url, sizeof url, "/connections");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url};
    result first = {0};
    ck_assert_int_eq(request(&req, &first, NULL), 0);
    run_until(&first);
    long before = atol(first.body);
    for (int i = 0; i < 5; i++) {
        result r = {0};
        ck_assert_int_eq(request(&req, &r, NULL), 0);
        run_until(&r);
        ck_assert_int_eq(r.status, 200);
        /* The same connection each time: the count the server saw does not grow. */
        ck_assert_int_eq(atol(r.body), before);
    }
}
END_TEST

static int sockets_without_cloexec(void)
{
    int bad = 0;
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        int fl = fcntl(fd, F_GETFD);
        if (!(fl & FD_CLOEXEC))
            bad++;
    }
    return bad;
}

START_TEST(test_sockets_close_on_exec)
{
    char url[128];
    url_of(url, sizeof url, "/ok");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = url};
    result r = {0};
    int before = sockets_without_cloexec();
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.status, 200);
    /* The kept-alive connection is open now, and close-on-exec. */
    ck_assert_int_eq(sockets_without_cloexec(), before);
}
END_TEST

START_TEST(test_unix_socket)
{
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = "http://localhost/ok",
                           .unix_socket = unix_path};
    result r = {0};
    ck_assert_int_eq(request(&req, &r, NULL), 0);
    run_until(&r);
    ck_assert_int_eq(r.error, 0);
    ck_assert_int_eq(r.status, 200);
    ck_assert_str_eq(r.body, "hello");
}
END_TEST

/* A callback that starts the next request from inside the previous one's completion. */
typedef struct chain {
    int left, done;
    char url[128];
} chain;

static void chain_cb(void *arg, const sb_http_response *res)
{
    chain *c = arg;
    ck_assert_int_eq(res->status, 200);
    c->done++;
    if (--c->left > 0) {
        sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = c->url};
        char err[256];
        ck_assert_int_eq(http_client_request(client, NULL, &req, chain_cb, c, NULL, err, sizeof err), 0);
    }
}

START_TEST(test_request_from_callback)
{
    chain c = {.left = 4};
    url_of(c.url, sizeof c.url, "/ok");
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = c.url};
    char err[256];
    ck_assert_int_eq(http_client_request(client, NULL, &req, chain_cb, &c, NULL, err, sizeof err), 0);
    for (int i = 0; i < 2000 && c.done < 4; i++)
        uv_run(&loop, UV_RUN_ONCE);
    ck_assert_int_eq(c.done, 4);
}
END_TEST

/* ---- back-off and Retry-After ---------------------------------------------------------------- */

START_TEST(test_backoff_doubles_with_jitter_and_cap)
{
    sb_backoff b;
    sb_backoff_init(&b, 100, 1000);
    uint64_t steps[] = {100, 200, 400, 800, 1000, 1000};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        uint64_t d = sb_backoff_next(&b, 0);
        ck_assert_msg(d >= steps[i] / 2 && d <= steps[i], "step %zu: %llu not in [%llu, %llu]", i,
                      (unsigned long long)d, (unsigned long long)steps[i] / 2,
                      (unsigned long long)steps[i]);
    }
    sb_backoff_reset(&b);
    ck_assert_uint_le(sb_backoff_next(&b, 0), 100);
    /* Retry-After wins when longer, even past the cap. */
    ck_assert_uint_eq(sb_backoff_next(&b, 7000), 7000);
    /* Jitter: 50 draws of the same step are not all equal. */
    sb_backoff c;
    sb_backoff_init(&c, 1000, 1000);
    uint64_t first = sb_backoff_next(&c, 0);
    int differ = 0;
    for (int i = 0; i < 50; i++)
        differ |= sb_backoff_next(&c, 0) != first;
    ck_assert(differ);
}
END_TEST

START_TEST(test_retry_after_parse)
{
    ck_assert_uint_eq(sb_retry_after_ms("120", 0), 120000);
    ck_assert_uint_eq(sb_retry_after_ms(" 7 ", 0), 7000);
    ck_assert_uint_eq(sb_retry_after_ms("7s", 0), 0);
    ck_assert_uint_eq(sb_retry_after_ms("-1", 0), 0);
    ck_assert_uint_eq(sb_retry_after_ms("", 0), 0);
    ck_assert_uint_eq(sb_retry_after_ms(NULL, 0), 0);
    ck_assert_uint_eq(sb_retry_after_ms("99999999999999999999", 0), 3600u * 1000u);
    /* 1445412480 = Wed, 21 Oct 2015 07:28:00 GMT */
    ck_assert_uint_eq(sb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 - 30), 30000);
    ck_assert_uint_eq(sb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT", 1445412480 + 5), 0);
    ck_assert_uint_eq(sb_retry_after_ms("Wed, 21 Foo 2015 07:28:00 GMT", 0), 0);
    ck_assert_uint_eq(sb_retry_after_ms("Wed, 21 Oct 2015 07:28:00 PST", 0), 0);
}
END_TEST

/* ---- the poller, on the fake host ------------------------------------------------------------- */

typedef struct reader {
    int reads, cancels;
    sb_poller *p;
} reader;

static void reader_read(void *self, sb_poller *p)
{
    reader *r = self;
    r->reads++;
    r->p = p;
}

static void reader_cancel(void *self)
{
    ((reader *)self)->cancels++;
}

static const sb_poll_ops reader_ops = {.read = reader_read, .cancel = reader_cancel};

static sb_value poll_rows[SB_POLL_OPTION_COUNT];

static void rows_set(uint64_t every, uint64_t timeout, uint64_t bmax)
{
    memset(poll_rows, 0, sizeof poll_rows);
    poll_rows[0] = (sb_value){.is_set = 1, .duration_ms = every};
    poll_rows[1] = (sb_value){.is_set = 1, .duration_ms = timeout};
    poll_rows[2] = (sb_value){.is_set = 1, .duration_ms = bmax};
}

/* Fire the poller's next-read timer (the newest one armed). */
static void fire_last(fake_host *fh)
{
    sb_timer *t = fh->last_timer;
    ck_assert_ptr_nonnull(t);
    t->cb(t->arg);
}

static size_t count_logs(fake_host *fh, sb_log_level lvl, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < fh->nlog; i++)
        if (fh->logs[i].level == lvl && strstr(fh->logs[i].text, needle))
            n++;
    return n;
}

/* The k-th publish on topic, and how many there were. */
static const fake_published *pub_on(const fake_host *fh, const char *topic, size_t k)
{
    for (size_t i = 0; i < fh->npub; i++)
        if (strcmp(fh->pubs[i].topic, topic) == 0 && k-- == 0)
            return &fh->pubs[i];
    return NULL;
}

static size_t pubs_on(const fake_host *fh, const char *topic)
{
    size_t n = 0;
    while (pub_on(fh, topic, n))
        n++;
    return n;
}

START_TEST(test_poller_schedule_readings_failures)
{
    fake_host *fh = fake_host_new("jobs");
    reader rd = {0};
    sb_poller *p;
    char err[128];
    rows_set(1000, 500, 8000);
    ck_assert_int_eq(sb_poller_new(fake_host_instance(fh), &fh->host, poll_rows, &reader_ops, &rd,
                                   &p, err, sizeof err),
                     0);
    ck_assert_int_eq(sb_poller_start(p), 0);
    ck_assert_int_eq(rd.reads, 0); /* not inside start() */
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 0);
    fire_last(fh); /* the first read */
    ck_assert_int_eq(rd.reads, 1);
    /* The read's deadline: timeout plus the grace for the HTTP client's own timeout. */
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 1500);
    sb_label q = {"queue", "a"};
    ck_assert_int_eq(sb_poller_reading(p, 7, &q, 1), 0);
    ck_assert_int_eq(sb_poller_reading(p, NAN, NULL, 0), -EINVAL);
    sb_poller_done(p);
    ck_assert_uint_eq(pubs_on(fh, SB_TOPIC_READING), 1);
    const fake_published *r = pub_on(fh, SB_TOPIC_READING, 0);
    ck_assert_uint_eq(r->flags, SB_EVENT_COALESCE);
    ck_assert(r->value == 7);
    ck_assert_str_eq(r->labels[0].value, "a");
    /* And how long the read took, for the admin's read-latency histogram. */
    ck_assert_uint_eq(pubs_on(fh, SB_TOPIC_READ), 1);
    ck_assert_str_eq(pub_on(fh, SB_TOPIC_READ, 0)->labels[0].value, "done");
    ck_assert(pub_on(fh, SB_TOPIC_READ, 0)->value >= 0);
    ck_assert_uint_le(fh->last_timer->timeout_ms, 1000);
    ck_assert_uint_ge(fh->last_timer->timeout_ms, 900);

    /* Three failures with one reason: one warning, then debug lines; error events count up. */
    for (int i = 0; i < 3; i++) {
        fire_last(fh);
        sb_poller_fail(p, 0, "GET http://x/: connection refused");
    }
    ck_assert_uint_eq(count_logs(fh, SB_LOG_WARN, "read failed: GET http://x/: connection refused"), 1);
    ck_assert_uint_eq(count_logs(fh, SB_LOG_DEBUG, "read failed"), 2);
    ck_assert_uint_eq(pubs_on(fh, SB_TOPIC_ERROR), 3);
    ck_assert_uint_eq(pubs_on(fh, SB_TOPIC_READING), 1);
    for (size_t i = 0; i < 3; i++) {
        const fake_published *e = pub_on(fh, SB_TOPIC_ERROR, i);
        ck_assert(e->value == (double)i + 1);
        ck_assert_str_eq(e->labels[0].key, "reason");
        ck_assert_str_eq(e->labels[0].value, "GET http://x/: connection refused");
        ck_assert_uint_eq(e->flags, 0); /* never coalesced away */
        ck_assert_str_eq(pub_on(fh, SB_TOPIC_READ, 1 + i)->labels[0].value, "failed");
    }
    /* The back-off grew: after the third failure the wait is in [2000, 4000]. */
    ck_assert_uint_ge(fh->last_timer->timeout_ms, 2000);
    ck_assert_uint_le(fh->last_timer->timeout_ms, 4000);
    /* A new reason is a change of state: a warning. */
    fire_last(fh);
    sb_poller_fail(p, 0, "GET http://x/: HTTP 500");
    ck_assert_uint_eq(count_logs(fh, SB_LOG_WARN, "read failed: GET http://x/: HTTP 500"), 1);
    uint64_t total;
    ck_assert_uint_eq(sb_poller_failures(p, &total), 4);
    ck_assert_uint_eq(total, 4);
    /* A reason stays one line whatever a remote put in it. */
    fire_last(fh);
    sb_poller_fail(p, 0, "bad reply: \"x\r\n2026-01-01 error [other] forged\x1b[31m\"");
    ck_assert_uint_eq(count_logs(fh, SB_LOG_WARN,
                                 "bad reply: \"x??2026-01-01 error [other] forged?[31m\""), 1);
    /* Recovery is logged once, and the schedule is back to `every`. */
    fire_last(fh);
    sb_poller_done(p);
    ck_assert_uint_eq(count_logs(fh, SB_LOG_INFO, "reading again after 5 failures"), 1);
    ck_assert_uint_eq(sb_poller_failures(p, &total), 0);
    ck_assert_uint_le(fh->last_timer->timeout_ms, 1000);
    /* A Retry-After longer than the back-off is honoured. */
    fire_last(fh);
    sb_poller_fail(p, 30000, "HTTP 429");
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 30000);
    sb_poller_free(p);
    ck_assert_int_eq(fh->timers_live, 0);
    fake_host_free(fh);
}
END_TEST

START_TEST(test_poller_run_now_and_timeout)
{
    fake_host *fh = fake_host_new("jobs");
    reader rd = {0};
    sb_poller *p;
    char err[128];
    rows_set(60000, 200, 60000);
    ck_assert_int_eq(sb_poller_new(fake_host_instance(fh), &fh->host, poll_rows, &reader_ops, &rd,
                                   &p, err, sizeof err),
                     0);
    sb_poller_start(p);
    fire_last(fh);
    ck_assert_int_eq(rd.reads, 1);
    /* "run" during a read: no second read at once, but right after this one. */
    sb_poller_run_now(p);
    ck_assert_int_eq(rd.reads, 1);
    sb_poller_done(p);
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 0);
    fire_last(fh);
    ck_assert_int_eq(rd.reads, 2);
    sb_poller_done(p);
    ck_assert_uint_ge(fh->last_timer->timeout_ms, 59000);
    /* "run" between reads: at once. */
    sb_poller_run_now(p);
    ck_assert_int_eq(rd.reads, 3);
    /* The read never ends: its deadline cancels it and counts a failure. */
    fire_last(fh);
    ck_assert_int_eq(rd.cancels, 1);
    ck_assert_uint_eq(count_logs(fh, SB_LOG_WARN, "read failed: read timed out (timeout 200ms, no answer after "), 1);
    /* A late done() of the abandoned read is ignored. */
    sb_poller_done(p);
    ck_assert_uint_eq(count_logs(fh, SB_LOG_INFO, "reading again"), 0);
    /* Stop cancels the read in flight. */
    fire_last(fh);
    ck_assert_int_eq(rd.reads, 4);
    sb_poller_stop(p);
    ck_assert_int_eq(rd.cancels, 2);
    ck_assert_int_eq(fh->timers_live, 0);
    sb_poller_free(p);
    fake_host_free(fh);
}
END_TEST

START_TEST(test_poller_rejects_bad_rows)
{
    fake_host *fh = fake_host_new("x");
    reader rd = {0};
    sb_poller *p;
    char err[128];
    rows_set(5, 100, 100);
    ck_assert_int_eq(sb_poller_new(fake_host_instance(fh), &fh->host, poll_rows, &reader_ops, &rd,
                                   &p, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "every: must be at least 10ms");
    rows_set(100, 0, 100);
    ck_assert_int_eq(sb_poller_new(fake_host_instance(fh), &fh->host, poll_rows, &reader_ops, &rd,
                                   &p, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "timeout: must be more than 0");
    fake_host_free(fh);
}
END_TEST

/* sb_poller_http: the request is the read's, and stop cancels it. */
typedef struct http_reader {
    sb_poller *p;
    char url[128];
    int replies;
    long status;
    char failure[256];
} http_reader;

static void http_reader_reply(void *arg, const sb_http_response *res)
{
    http_reader *h = arg;
    h->replies++;
    h->status = res->status;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = h->url};
    const char *f = sb_http_failure(&req, res, h->failure, sizeof h->failure);
    if (f)
        sb_poller_fail(h->p, sb_http_retry_after_ms(res), "%s", f);
    else
        sb_poller_done(h->p);
}

static void http_reader_read(void *self, sb_poller *p)
{
    http_reader *h = self;
    h->p = p;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = h->url};
    ck_assert_int_eq(sb_poller_http(p, &req, http_reader_reply, h), 0);
}

static const sb_poll_ops http_reader_ops = {.read = http_reader_read};

START_TEST(test_poller_http_failure_text_and_cancel)
{
    fake_host *fh = fake_host_new("web");
    uv_loop_t l;
    uv_loop_init(&l);
    fh->loop = &l;
    http_reader h = {0};
    snprintf(h.url, sizeof h.url, "http://user:hunter2@127.0.0.1:%d/retry", server_port);
    sb_poller *p;
    char err[128];
    rows_set(1000, 2000, 60000);
    ck_assert_int_eq(sb_poller_new(fake_host_instance(fh), &fh->host, poll_rows, &http_reader_ops,
                                   &h, &p, err, sizeof err),
                     0);
    sb_poller_start(p);
    fire_last(fh);
    for (int i = 0; i < 2000 && !h.replies; i++)
        uv_run(&l, UV_RUN_ONCE);
    ck_assert_int_eq(h.status, 503);
    char want[256];
    snprintf(want, sizeof want,
             "GET http://user:***@127.0.0.1:%d/retry: HTTP 503: busy, come back later",
             server_port);
    ck_assert_str_eq(h.failure, want); /* no password, first line of the body */
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 7000); /* Retry-After: 7 */
    for (size_t i = 0; i < fh->nlog; i++)
        ck_assert_ptr_null(strstr(fh->logs[i].text, "hunter2"));
    /* A read in flight at stop: its request is cancelled and never answers. */
    snprintf(h.url, sizeof h.url, "http://127.0.0.1:%d/slow?ms=300", server_port);
    fire_last(fh);
    ck_assert_int_eq(fh->http_requests, 2);
    sb_poller_stop(p);
    ck_assert_int_eq(fh->http_cancels, 1);
    for (int i = 0; i < 50; i++) {
        uv_run(&l, UV_RUN_NOWAIT);
        usleep(10000);
    }
    ck_assert_int_eq(h.replies, 1);
    sb_poller_free(p);
    fake_host_free(fh);
    uv_run(&l, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&l), 0);
}
END_TEST

/* ---- through the daemon's host table ---------------------------------------------------------- */

typedef struct http_probe_stats {
    int starts, stops, requests, replies, late;
    long last_status;
} http_probe_stats;

static http_probe_stats *probe_stats;
static void *probe_handle;
static sb_daemon *dmn;
static char dmn_dir[] = "/tmp/sb-http-daemon.XXXXXX";

static void daemon_setup(void)
{
    ck_assert_ptr_nonnull(mkdtemp(dmn_dir));
    probe_handle = dlopen(SB_HTTP_PROBE_DIR "/http_probe.so", RTLD_NOW);
    ck_assert_msg(probe_handle != NULL, "%s", dlerror());
    probe_stats = dlsym(probe_handle, "http_probe_stats_v");
    ck_assert_ptr_nonnull(probe_stats);
    memset(probe_stats, 0, sizeof *probe_stats);
    uv_loop_init(&loop);
    static const char *dirs[] = {SB_HTTP_PROBE_DIR};
    daemon_options o = {.plugin_dirs = dirs, .nplugin_dirs = 1, .log_level = SB_LOG_ERROR,
                        .log_level_set = 1};
    dmn = daemon_new(&loop, &o);
    ck_assert_ptr_nonnull(dmn);
}

static void set_flag(void *arg)
{
    *(int *)arg = 1;
}

static int daemon_stopped_by_test;

static void daemon_teardown(void)
{
    int done = daemon_stopped_by_test;
    daemon_stopped_by_test = 0;
    if (!done)
        daemon_stop(dmn, set_flag, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(done, 1);
    daemon_free(dmn);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    dlclose(probe_handle);
    char path[128];
    snprintf(path, sizeof path, "%s/p.yaml", dmn_dir);
    unlink(path);
    rmdir(dmn_dir);
    snprintf(dmn_dir, sizeof dmn_dir, "/tmp/sb-http-daemon.XXXXXX");
}

static void load_probe(const char *path_and_query)
{
    char path[128], text[256];
    snprintf(path, sizeof path, "%s/p.yaml", dmn_dir);
    snprintf(text, sizeof text,
             "triggers:\n  - { id: web, type: http_probe, url: \"http://127.0.0.1:%d%s\" }\n",
             server_port, path_and_query);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(dmn, path, &errs);
    if (rc != 0)
        config_errors_print(&errs, stderr);
    config_errors_free(&errs);
    ck_assert_int_eq(rc, 0);
}

static void run_for_ms(int ms)
{
    for (int i = 0; i < ms / 10; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
}

START_TEST(test_daemon_request_completes)
{
    load_probe("/ok");
    for (int i = 0; i < 1000 && !probe_stats->replies; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(5000);
    }
    ck_assert_int_eq(probe_stats->requests, 1);
    ck_assert_int_eq(probe_stats->replies, 1);
    ck_assert_int_eq(probe_stats->last_status, 200);
}
END_TEST

START_TEST(test_daemon_cancels_at_stop)
{
    load_probe("/slow?ms=400");
    run_for_ms(50);
    ck_assert_int_eq(probe_stats->requests, 1);
    int done = 0;
    daemon_stop(dmn, set_flag, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(done, 1);
    daemon_stopped_by_test = 1;
    /* Past the server's reply: the stopped instance never hears it. */
    run_for_ms(600);
    ck_assert_int_eq(probe_stats->stops, 1);
    ck_assert_int_eq(probe_stats->replies, 0);
    ck_assert_int_eq(probe_stats->late, 0);
}
END_TEST

START_TEST(test_daemon_cancels_at_reload)
{
    load_probe("/slow?ms=400");
    run_for_ms(50);
    /* A changed url replaces the instance: the old request goes with it, the new one answers. */
    load_probe("/ok");
    for (int i = 0; i < 200 && !probe_stats->replies; i++)
        run_for_ms(10);
    run_for_ms(600);
    ck_assert_int_eq(probe_stats->starts, 2);
    ck_assert_int_eq(probe_stats->requests, 2);
    ck_assert_int_eq(probe_stats->replies, 1);
    ck_assert_int_eq(probe_stats->last_status, 200);
    ck_assert_int_eq(probe_stats->late, 0);
}
END_TEST

static Suite *http_suite(void)
{
    Suite *s = suite_create("http");
    TCase *c = tcase_create("client");
    tcase_add_checked_fixture(c, client_setup, client_teardown);
    tcase_set_timeout(c, 60);
    tcase_add_test(c, test_get_status_body_headers);
    tcase_add_test(c, test_post_headers_body_method);
    tcase_add_test(c, test_basic_auth_and_sigv4);
    tcase_add_test(c, test_body_limit);
    tcase_add_test(c, test_timeout);
    tcase_add_test(c, test_refused_and_garbage);
    tcase_add_test(c, test_refuses_bad_requests);
    tcase_add_test(c, test_cancel_and_cancel_owner);
    tcase_add_test(c, test_connections_are_reused);
    tcase_add_test(c, test_sockets_close_on_exec);
    tcase_add_test(c, test_unix_socket);
    tcase_add_test(c, test_request_from_callback);
    suite_add_tcase(s, c);
    TCase *b = tcase_create("poll");
    tcase_set_timeout(b, 60);
    tcase_add_test(b, test_backoff_doubles_with_jitter_and_cap);
    tcase_add_test(b, test_retry_after_parse);
    tcase_add_test(b, test_poller_schedule_readings_failures);
    tcase_add_test(b, test_poller_run_now_and_timeout);
    tcase_add_test(b, test_poller_rejects_bad_rows);
    tcase_add_test(b, test_poller_http_failure_text_and_cancel);
    suite_add_tcase(s, b);
    TCase *dc = tcase_create("daemon");
    tcase_add_checked_fixture(dc, daemon_setup, daemon_teardown);
    tcase_set_timeout(dc, 60);
    tcase_add_test(dc, test_daemon_request_completes);
    tcase_add_test(dc, test_daemon_cancels_at_stop);
    tcase_add_test(dc, test_daemon_cancels_at_reload);
    suite_add_tcase(s, dc);
    return s;
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char line[64];
    server_pid = start_server(NULL, NULL, line, sizeof line);
    server_port = atoi(line);
    if (server_pid < 0 || server_port <= 0) {
        fprintf(stderr, "test_http: tests/http/server.py did not start (needs /usr/bin/python3)\n");
        return 1;
    }
    if (!mkdtemp(unix_dir))
        return 1;
    snprintf(unix_path, sizeof unix_path, "%s/http.sock", unix_dir);
    unix_server_pid = start_server("--unix", unix_path, line, sizeof line);
    SRunner *sr = srunner_create(http_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    kill(server_pid, SIGTERM);
    kill(unix_server_pid, SIGTERM);
    waitpid(server_pid, NULL, 0);
    waitpid(unix_server_pid, NULL, 0);
    unlink(unix_path);
    rmdir(unix_dir);
    curl_global_cleanup();
    return failed ? 1 : 0;
}
