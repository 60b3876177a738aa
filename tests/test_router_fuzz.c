/*
 * test_router_fuzz.c - the router's own handling of remote bytes (triggers/router/router_core.c)
 * under arbitrary input, on both sides of the proxy:
 *   first byte even: a client's request, split at NULs into a service name, a Host, a method, a
 *     target and header name/value pairs: service selection, the hop-by-hop filter and the head
 *     sent upstream (which must stay one head: no CR or LF but its own);
 *   first byte odd: an instance's answer through llhttp (as the router parses it) with the head
 *     collected by rt_resp_* and filtered by rt_response_headers.
 * Built two ways: with libFuzzer (SB_FUZZ, clang: fuzz_router), and as a plain program
 * (test_router_fuzz, a unit test run under valgrind) that replays the corpus in
 * tests/router/fuzz-corpus and 20000 inputs from a fixed seed.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <llhttp.h>

#include "router_core.h"

static const char *const web_hosts[] = {"web.test", "www.example.com:8080"};
static const char *const api_hosts[] = {"api.test"};
static const rt_service_names services[] = {{"web", web_hosts, 2}, {"api", api_hosts, 1}};

#define MAX_FIELDS 64

static void check_head(const rt_buf *b)
{
    if (b->oom)
        return;
    /* the head ends with its one blank line and holds no line break of a field's own */
    if (b->len < 4 || memcmp(b->p + b->len - 4, "\r\n\r\n", 4) != 0)
        abort();
    for (size_t i = 0; i < b->len; i++)
        if ((b->p[i] == '\n' && (i == 0 || b->p[i - 1] != '\r')) ||
            (b->p[i] == '\r' && (i + 1 >= b->len || b->p[i + 1] != '\n')))
            abort();
}

static void request_side(const char *data, size_t size)
{
    /* fields split at NULs; the httpd hands the router no CR, LF or NUL inside a field */
    char *copy = malloc(size + 1);
    if (!copy)
        return;
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (size_t i = 0; i < size; i++)
        if (copy[i] == '\r' || copy[i] == '\n')
            copy[i] = ' ';
    const char *field[4 + 2 * MAX_FIELDS];
    size_t n = 0;
    for (char *p = copy; n < sizeof field / sizeof field[0] && p <= copy + size;) {
        field[n++] = p;
        p += strlen(p) + 1;
    }
    while (n < 4)
        field[n++] = "";
    int k = rt_select_service(services, 2, field[0][0] ? field[0] : NULL, field[1]);
    if (k < -1 || k >= 2)
        abort();
    rt_header hs[MAX_FIELDS];
    size_t nh = 0;
    for (size_t i = 4; i + 1 < n && nh < MAX_FIELDS; i += 2)
        hs[nh++] = (rt_header){field[i], field[i + 1]};
    char ip[64];
    rt_peer_ip(field[1], ip, sizeof ip);
    for (int kind = RT_BODY_NONE; kind <= RT_BODY_CHUNKED; kind++) {
        rt_buf b = {0};
        rt_request_head(&b, field[2][0] ? field[2] : "GET", field[3][0] ? field[3] : "/",
                        (int)(size & 1), hs, nh, "web", ip, "http", (rt_body_kind)kind,
                        (int64_t)size);
        check_head(&b);
        rt_buf_free(&b);
    }
    rt_header out[MAX_FIELDS + 1];
    char via[256];
    size_t m = rt_response_headers(hs, nh, out, via, sizeof via);
    if (m > nh + 1 || strlen(via) >= sizeof via)
        abort();
    char clean[32];
    rt_clean(field[0], clean, sizeof clean);
    for (size_t i = 0; clean[i]; i++)
        if ((unsigned char)clean[i] < 0x20)
            abort();
    free(copy);
}

typedef struct resp_state {
    rt_resp_head head;
    int heads;
} resp_state;

static int on_field(llhttp_t *p, const char *at, size_t len)
{
    return rt_resp_field(&((resp_state *)p->data)->head, at, len);
}

static int on_value(llhttp_t *p, const char *at, size_t len)
{
    return rt_resp_value(&((resp_state *)p->data)->head, at, len);
}

static int on_headers_complete(llhttp_t *p)
{
    resp_state *st = p->data;
    rt_header in[RT_MAX_RESP_HEADERS], out[RT_MAX_RESP_HEADERS + 1];
    int n = rt_resp_finish(&st->head, in);
    if (n < 0)
        return -1;
    if (n > RT_MAX_RESP_HEADERS)
        abort();
    char via[512];
    size_t k = rt_response_headers(in, (size_t)n, out, via, sizeof via);
    if (k > (size_t)n + 1)
        abort();
    for (size_t i = 0; i < k; i++)
        if (!out[i].name || !out[i].value)
            abort();
    st->heads++;
    return 0;
}

static int on_message_complete(llhttp_t *p)
{
    rt_resp_reset(&((resp_state *)p->data)->head);
    return 0;
}

static void response_side(const char *data, size_t size)
{
    llhttp_settings_t settings;
    llhttp_settings_init(&settings);
    settings.on_header_field = on_field;
    settings.on_header_value = on_value;
    settings.on_headers_complete = on_headers_complete;
    settings.on_message_complete = on_message_complete;
    llhttp_t parser;
    llhttp_init(&parser, HTTP_RESPONSE, &settings);
    resp_state st = {0};
    parser.data = &st;
    /* in two reads, cut where the input says, as a socket would hand them over */
    size_t cut = size ? (unsigned char)data[0] % (size + 1) : 0;
    llhttp_errno_t err = llhttp_execute(&parser, data, cut);
    if (err == HPE_OK)
        err = llhttp_execute(&parser, data + cut, size - cut);
    if (err == HPE_OK)
        llhttp_finish(&parser);
    rt_buf_free(&st.head.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] % 2 == 0)
        request_side((const char *)data + 1, size - 1);
    else
        response_side((const char *)data + 1, size - 1);
    return 0;
}

#ifndef SB_LIBFUZZER
static size_t replay_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    size_t n = 0;
    struct dirent *e;
    static char buf[1 << 20];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf, f);
        fclose(f);
        LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
        n++;
    }
    closedir(d);
    return n;
}

int main(void)
{
    size_t files = replay_dir(SB_SOURCE_DIR "/tests/router/fuzz-corpus");
    /* a fixed seed: a failure replays */
    uint64_t x = 0x9e3779b97f4a7c15u;
    static uint8_t in[4096];
    static const char *const pieces[] = {
        "HTTP/1.1 200 OK\r\n", "Content-Length: 5\r\n", "Transfer-Encoding: chunked\r\n",
        "Connection: close, X-A\r\n", "Via: 1.0 a\r\n", "\r\n", "5\r\nhello\r\n0\r\n\r\n",
        "X-A: b\r\n", " folded\r\n", ":", "\0", "web.test", "HTTP/1.0 304 x\r\n"};
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        in[len++] = (uint8_t)round;
        while (len < sizeof in - 64) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if (x % 11 == 0)
                break;
            if (x % 3 == 0) {
                in[len++] = (uint8_t)(x >> 24);
            } else {
                const char *p = pieces[(x >> 8) % (sizeof pieces / sizeof pieces[0])];
                size_t pl = strlen(p) ? strlen(p) : 1;
                memcpy(in + len, p, pl);
                len += pl;
            }
        }
        LLVMFuzzerTestOneInput(in, len);
    }
    printf("test_router_fuzz: %zu corpus files and 20000 generated inputs, no failure\n", files);
    return 0;
}
#endif
