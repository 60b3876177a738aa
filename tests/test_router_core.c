/*
 * test_router_core.c - the router's pure parts (triggers/router/router_core.c): which service a
 * request is for, which headers cross the proxy and how forwarded ones are rewritten, and which
 * instance gets the next request.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "router_core.h"

static const char *const web_hosts[] = {"web.test", "www.example.com"};
static const char *const api_hosts[] = {"api.example.com:8443"};
static const rt_service_names svcs[] = {
    {"web", web_hosts, 2},
    {"api", api_hosts, 1},
    {"nohost", NULL, 0},
};

START_TEST(select_by_header_then_host)
{
    ck_assert_int_eq(rt_select_service(svcs, 3, "api", "web.test"), 1);
    ck_assert_int_eq(rt_select_service(svcs, 3, "nohost", NULL), 2);
    /* a header naming no service is a miss, not a fallback to Host */
    ck_assert_int_eq(rt_select_service(svcs, 3, "nope", "web.test"), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "web.test"), 0);
    ck_assert_int_eq(rt_select_service(svcs, 3, "", "WWW.Example.COM"), 0);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "web.test:8080"), 0);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "web.test."), 0);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "api.example.com:8443"), 1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "other.test"), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, NULL), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, ""), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "[::1]:80"), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, "["), -1);
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, ":"), -1);
    char longhost[1000];
    memset(longhost, 'a', sizeof longhost - 1);
    longhost[sizeof longhost - 1] = '\0';
    ck_assert_int_eq(rt_select_service(svcs, 3, NULL, longhost), -1);
}
END_TEST

START_TEST(hop_by_hop_headers)
{
    ck_assert(rt_hop_by_hop("Connection", NULL));
    ck_assert(rt_hop_by_hop("keep-alive", NULL));
    ck_assert(rt_hop_by_hop("Transfer-Encoding", NULL));
    ck_assert(rt_hop_by_hop("Upgrade", NULL));
    ck_assert(rt_hop_by_hop("TE", NULL));
    ck_assert(rt_hop_by_hop("Proxy-Authorization", NULL));
    ck_assert(!rt_hop_by_hop("Host", NULL));
    ck_assert(!rt_hop_by_hop("X-Secret", "close"));
    ck_assert(rt_hop_by_hop("X-Secret", "close, x-secret"));
    ck_assert(rt_hop_by_hop("x-secret", " X-Secret ,close"));
    ck_assert(!rt_hop_by_hop("X-Sec", "x-secret"));
    ck_assert(!rt_hop_by_hop("X-Secret", ",,,"));
}
END_TEST

START_TEST(idempotent_methods)
{
    ck_assert(rt_idempotent("GET"));
    ck_assert(rt_idempotent("HEAD"));
    ck_assert(rt_idempotent("PUT"));
    ck_assert(rt_idempotent("DELETE"));
    ck_assert(!rt_idempotent("POST"));
    ck_assert(!rt_idempotent("PATCH"));
    ck_assert(!rt_idempotent("get"));
}
END_TEST

START_TEST(peer_address)
{
    char ip[64];
    rt_peer_ip("127.0.0.1:5555", ip, sizeof ip);
    ck_assert_str_eq(ip, "127.0.0.1");
    rt_peer_ip("[::1]:80", ip, sizeof ip);
    ck_assert_str_eq(ip, "::1");
    rt_peer_ip("test", ip, sizeof ip);
    ck_assert_str_eq(ip, "test");
    rt_peer_ip(NULL, ip, sizeof ip);
    ck_assert_str_eq(ip, "");
}
END_TEST

START_TEST(request_head_rewritten)
{
    const rt_header in[] = {
        {"Host", "web.test"},
        {"Connection", "keep-alive, X-Drop"},
        {"X-Drop", "1"},
        {"Keep-Alive", "timeout=5"},
        {"X-Forwarded-For", "10.0.0.1"},
        {"X-Forwarded-For", "10.0.0.2"},
        {"X-Forwarded-Proto", "https"},
        {"Via", "1.0 edge"},
        {"Content-Length", "999"},
        {"Transfer-Encoding", "chunked"},
        {"Expect", "100-continue"},
        {"X-Scalebus-Service", "web"},
        {"Accept", "*/*"},
    };
    rt_buf b = {0};
    rt_request_head(&b, "POST", "/a?b=1", 1, in, sizeof in / sizeof in[0], "web", "127.0.0.1",
                    "http", RT_BODY_CHUNKED, -1);
    ck_assert(!b.oom);
    ck_assert_str_eq(b.p, "POST /a?b=1 HTTP/1.1\r\n"
                          "Host: web.test\r\n"
                          "Accept: */*\r\n"
                          "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 127.0.0.1\r\n"
                          "X-Forwarded-Proto: http\r\n"
                          "Via: 1.0 edge, 1.1 scalebus\r\n"
                          "Transfer-Encoding: chunked\r\n"
                          "\r\n");
    rt_buf_free(&b);

    /* an HTTP/1.0 client without Host: the service's name stands in */
    rt_request_head(&b, "PUT", "/", 0, NULL, 0, "web", "::1", "http", RT_BODY_LENGTH, 12);
    ck_assert_str_eq(b.p, "PUT / HTTP/1.1\r\n"
                          "Host: web\r\n"
                          "X-Forwarded-For: ::1\r\n"
                          "X-Forwarded-Proto: http\r\n"
                          "Via: 1.0 scalebus\r\n"
                          "Content-Length: 12\r\n"
                          "\r\n");
    rt_buf_free(&b);
}
END_TEST

START_TEST(response_headers_filtered)
{
    const rt_header in[] = {
        {"Content-Type", "text/plain"},
        {"Connection", "close, X-Hop"},
        {"X-Hop", "1"},
        {"Content-Length", "5"},
        {"Transfer-Encoding", "chunked"},
        {"Via", "1.1 app"},
        {"Set-Cookie", "a=1"},
    };
    rt_header out[8];
    char via[64];
    size_t n = rt_response_headers(in, 7, out, via, sizeof via);
    ck_assert_uint_eq(n, 3);
    ck_assert_str_eq(out[0].name, "Content-Type");
    ck_assert_str_eq(out[1].name, "Via");
    ck_assert_str_eq(out[1].value, "1.1 app, 1.1 scalebus");
    ck_assert_str_eq(out[2].name, "Set-Cookie");

    n = rt_response_headers(NULL, 0, out, via, sizeof via);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(out[0].value, "1.1 scalebus");

    /* a Via too long for the buffer: still one bounded value */
    char big[200];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const rt_header longvia[] = {{"Via", big}};
    n = rt_response_headers(longvia, 1, out, via, sizeof via);
    ck_assert_uint_eq(n, 1);
    ck_assert(strlen(out[0].value) < sizeof via);
}
END_TEST

START_TEST(balancing_least_in_flight)
{
    rt_candidate c[] = {
        {true, 2, 0},
        {true, 1, 0},
        {false, 0, 0}, /* not ready */
        {true, 0, 5000}, /* ejected until 5000 */
        {true, 1, 0},
    };
    ck_assert_int_eq(rt_pick(c, 5, 2, 1000, 0), 1);
    ck_assert_int_eq(rt_pick(c, 5, 2, 1000, 2), 4); /* ties: the first from start */
    ck_assert_int_eq(rt_pick(c, 5, 2, 6000, 0), 3); /* the ejection is over */
    /* slots: nobody below 1 in flight but the ejected and the not-ready ones */
    ck_assert_int_eq(rt_pick(c, 5, 1, 1000, 0), -1);
    ck_assert_int_eq(rt_pick(c, 0, 1, 1000, 0), -1);
    rt_candidate full[] = {{true, 3, 0}, {true, 3, 0}};
    ck_assert_int_eq(rt_pick(full, 2, 3, 0, 0), -1);
    ck_assert_int_eq(rt_pick(full, 2, 4, 0, 1), 1);
}
END_TEST

START_TEST(backoff_and_clean)
{
    ck_assert_uint_eq(rt_backoff_ms(1), 1000);
    ck_assert_uint_eq(rt_backoff_ms(2), 2000);
    ck_assert_uint_eq(rt_backoff_ms(5), 16000);
    ck_assert_uint_eq(rt_backoff_ms(6), 30000);
    ck_assert_uint_eq(rt_backoff_ms(1000), 30000);
    char out[8];
    rt_clean("a\r\nb\"c\x7f", out, sizeof out);
    ck_assert_str_eq(out, "a??b?c?");
    rt_clean("abcdefghij", out, sizeof out);
    ck_assert_str_eq(out, "abcdefg");
    rt_clean(NULL, out, sizeof out);
    ck_assert_str_eq(out, "");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router_core");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, select_by_header_then_host);
    tcase_add_test(tc, hop_by_hop_headers);
    tcase_add_test(tc, idempotent_methods);
    tcase_add_test(tc, peer_address);
    tcase_add_test(tc, request_head_rewritten);
    tcase_add_test(tc, response_headers_filtered);
    tcase_add_test(tc, balancing_least_in_flight);
    tcase_add_test(tc, backoff_and_clean);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
