/*
 * test_http_json_parse.c - tests for the http_json trigger's reply parser (sb_http_json_parse:
 * JSON pointers, "*" segments, sibling labels, count, numeric strings, every error naming its
 * path) and for the plugin's option errors. The replies are the published shapes of the APIs the
 * examples read: Buildkite's agent metrics, GitHub Actions' workflow runs, GitLab's jobs.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>

#include "fake_host.h"
#include "http_json_parse.h"

static sb_http_json_readings got;
static char err[300];

static int parse(const char *json, const char *select, const char *label, int count)
{
    sb_http_json_query q = {.select = select, .label = label, .count = count};
    err[0] = '\0';
    sb_http_json_readings_free(&got);
    return sb_http_json_parse(json, strlen(json), &q, &got, err, sizeof(err));
}

static void teardown(void)
{
    sb_http_json_readings_free(&got);
}

static const char *buildkite =
    "{\"agents\":{\"idle\":0,\"busy\":2,\"total\":2,\"queues\":{\"default\":{\"idle\":0,"
    "\"busy\":2,\"total\":2}}},\"jobs\":{\"scheduled\":7,\"running\":2,\"waiting\":1,"
    "\"total\":10,\"queues\":{\"default\":{\"scheduled\":7,\"running\":2,\"waiting\":1,"
    "\"total\":10}}},\"organization\":{\"slug\":\"acme\"}}";

START_TEST(pointer)
{
    ck_assert_int_eq(parse(buildkite, "/jobs/scheduled", NULL, 0), 0);
    ck_assert_uint_eq(got.n, 1);
    ck_assert_double_eq(got.items[0].value, 7);
    ck_assert_ptr_null(got.items[0].label);
    ck_assert_int_eq(parse(buildkite, "/jobs/queues/default/waiting", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, 1);
    /* The whole document, RFC 6901 escapes, array indexes. */
    ck_assert_int_eq(parse("42", "", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, 42);
    ck_assert_int_eq(parse("{\"a/b\":{\"m~n\":[5,6.5]}}", "/a~1b/m~0n/1", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, 6.5);
    ck_assert_int_eq(parse("{\"\":3}", "/", NULL, 0), 0); /* the member named "" */
    ck_assert_double_eq(got.items[0].value, 3);
}
END_TEST

START_TEST(numeric_strings)
{
    ck_assert_int_eq(parse("{\"n\":\"12\"}", "/n", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, 12);
    ck_assert_int_eq(parse("{\"n\":\"-3.5e1\"}", "/n", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, -35);
    ck_assert_int_eq(parse("{\"n\":\" 12\"}", "/n", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/n: expected a number, got the string \" 12\"");
    ck_assert_int_eq(parse("{\"n\":\"0x10\"}", "/n", NULL, 0), -EINVAL);
    ck_assert_int_eq(parse("{\"n\":\"nan\"}", "/n", NULL, 0), -EINVAL);
    ck_assert_int_eq(parse("{\"n\":\"\"}", "/n", NULL, 0), -EINVAL);
    ck_assert_int_eq(parse("{\"n\":\"1e999\"}", "/n", NULL, 0), -EINVAL);
}
END_TEST

START_TEST(wrong_types_and_missing)
{
    ck_assert_int_eq(parse(buildkite, "/jobs/scheduled/x", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/jobs/scheduled: is a number, not an object or array (select "
                          "/jobs/scheduled/x)");
    ck_assert_int_eq(parse(buildkite, "/jobs/pending", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/jobs/pending: missing");
    ck_assert_int_eq(parse(buildkite, "/organization/slug", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/organization/slug: expected a number, got the string \"acme\"");
    ck_assert_int_eq(parse(buildkite, "/jobs", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/jobs: expected a number, got an object");
    ck_assert_int_eq(parse("{\"a\":null}", "/a", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/a: expected a number, got null");
    ck_assert_int_eq(parse("{\"a\":true}", "/a", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/a: expected a number, got true");
    ck_assert_int_eq(parse("[1,2]", "/2", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/2: missing (the array has 2 elements)");
    ck_assert_int_eq(parse("[1,2]", "/01", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/01: '01' is not an array index (/ is an array)");
    ck_assert_int_eq(parse("{\"a\":[1]}", "/a/x", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/a/x: 'x' is not an array index (/a is an array)");
    ck_assert_int_eq(parse("\"text\"", "", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "/: expected a number, got the string \"text\"");
    ck_assert_uint_eq(got.n, 0);
}
END_TEST

START_TEST(wildcard_with_labels)
{
    const char *q = "{\"queues\":[{\"name\":\"build\",\"depth\":4},{\"name\":\"deploy\","
                    "\"depth\":\"2\"},{\"name\":7,\"depth\":0}]}";
    ck_assert_int_eq(parse(q, "/queues/*/depth", "name", 0), 0);
    ck_assert_uint_eq(got.n, 3);
    ck_assert_str_eq(got.items[0].label, "build");
    ck_assert_double_eq(got.items[0].value, 4);
    ck_assert_str_eq(got.items[1].label, "deploy");
    ck_assert_double_eq(got.items[1].value, 2);
    ck_assert_str_eq(got.items[2].label, "7");
    /* Without label: each reading is labelled with its own pointer. */
    ck_assert_int_eq(parse(q, "/queues/*/depth", NULL, 0), 0);
    ck_assert_str_eq(got.items[1].label, "/queues/1/depth");
    /* Over an object's members. */
    ck_assert_int_eq(parse(buildkite, "/jobs/queues/*/scheduled", NULL, 0), 0);
    ck_assert_uint_eq(got.n, 1);
    ck_assert_str_eq(got.items[0].label, "/jobs/queues/default/scheduled");
    /* Nothing to match: no reading, and no error. */
    ck_assert_int_eq(parse("{\"queues\":[]}", "/queues/*/depth", "name", 0), 0);
    ck_assert_uint_eq(got.n, 0);
}
END_TEST

START_TEST(label_errors)
{
    ck_assert_int_eq(parse("{\"queues\":[{\"name\":\"a\",\"depth\":1},{\"depth\":2}]}",
                           "/queues/*/depth", "name", 0),
                     -EINVAL);
    ck_assert_str_eq(err, "/queues/1/name: missing (the label of /queues/1/depth)");
    ck_assert_int_eq(
        parse("{\"queues\":[{\"name\":\"a\",\"depth\":1},{\"name\":\"a\",\"depth\":2}]}",
              "/queues/*/depth", "name", 0),
        -EINVAL);
    ck_assert_str_eq(err, "/queues/1/depth: label name=a is already the label of another match");
    ck_assert_int_eq(parse("{\"q\":[{\"name\":null,\"depth\":1}]}", "/q/*/depth", "name", 0),
                     -EINVAL);
    ck_assert_str_eq(err, "/q/0/name: a label must be a string, number or boolean, got null");
    ck_assert_int_eq(parse("{\"q\":[1,2]}", "/q/*", "name", 0), -EINVAL);
    ck_assert_str_eq(err, "/q/0: label 'name': the value is not a member of an object");
    ck_assert_int_eq(parse("{\"q\":[{\"name\":\"a\\nb\",\"d\":1}]}", "/q/*/d", "name", 0), -EINVAL);
    ck_assert_str_eq(err, "/q/0/name: a label with a control character");
}
END_TEST

START_TEST(count)
{
    /* GitLab: GET /projects/:id/jobs?scope=pending answers an array of jobs. */
    const char *gitlab = "[{\"id\":8,\"status\":\"pending\",\"stage\":\"test\",\"name\":\"rspec\"},"
                         "{\"id\":9,\"status\":\"pending\",\"stage\":\"test\",\"name\":\"lint\"}]";
    ck_assert_int_eq(parse(gitlab, "", NULL, 1), 0);
    ck_assert_double_eq(got.items[0].value, 2);
    ck_assert_int_eq(parse("[]", "", NULL, 1), 0);
    ck_assert_double_eq(got.items[0].value, 0);
    ck_assert_int_eq(parse(buildkite, "/jobs/queues", NULL, 1), 0);
    ck_assert_double_eq(got.items[0].value, 1);
    ck_assert_int_eq(parse(buildkite, "/jobs/total", NULL, 1), -EINVAL);
    ck_assert_str_eq(err, "/jobs/total: expected an array or object to count, got a number");
    ck_assert_int_eq(parse("{\"teams\":[{\"name\":\"a\",\"jobs\":[1,2,3]},{\"name\":\"b\","
                           "\"jobs\":[]}]}",
                           "/teams/*/jobs", "name", 1),
                     0);
    ck_assert_uint_eq(got.n, 2);
    ck_assert_double_eq(got.items[0].value, 3);
    ck_assert_double_eq(got.items[1].value, 0);
}
END_TEST

/* Found by fuzz_replies: a member name the remote chose is quoted in the path of an error; it
 * must not bring a line break (a forged log line) or a terminal escape with it. */
START_TEST(errors_stay_one_line)
{
    ck_assert_int_eq(parse("{\"a\\n2026 error [x] forged\\u001b\":\"many\"}", "/*", NULL, 0),
                     -EINVAL);
    ck_assert_str_eq(err, "/a?2026 error [x] forged?: expected a number, got the string \"many\"");
}
END_TEST

START_TEST(github_total_count)
{
    const char *gh = "{\"total_count\":3,\"workflow_runs\":[{\"id\":30433642,\"name\":\"Build\","
                     "\"status\":\"queued\"}]}";
    ck_assert_int_eq(parse(gh, "/total_count", NULL, 0), 0);
    ck_assert_double_eq(got.items[0].value, 3);
}
END_TEST

START_TEST(garbage_and_bounds)
{
    ck_assert_int_eq(parse("<html>502 Bad Gateway</html>", "/a", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "the reply is not JSON (28 bytes)");
    ck_assert_int_eq(parse("", "", NULL, 0), -EINVAL);
    ck_assert_int_eq(parse("{\"a\":1", "/a", NULL, 0), -EINVAL);
    ck_assert_int_eq(parse("{\"a\":1e999}", "/a", NULL, 0), -EINVAL);
    /* More matches than the bound. */
    static char many[8192];
    strcpy(many, "[");
    for (int i = 0; i < 300; i++)
        strcat(many, i ? ",1" : "1");
    strcat(many, "]");
    ck_assert_int_eq(parse(many, "/*", NULL, 0), -EINVAL);
    ck_assert_str_eq(err, "select matched more than 256 values");
    ck_assert_uint_eq(got.n, 0);
    /* Deep nesting is refused by cJSON's own limit, without a crash. */
    static char deep[20000];
    memset(deep, '[', 10000);
    deep[10000] = '\0';
    ck_assert_int_eq(parse(deep, "", NULL, 0), -EINVAL);
}
END_TEST

START_TEST(check_queries)
{
    sb_http_json_query q = {.select = "jobs/scheduled"};
    ck_assert_int_eq(sb_http_json_check(&q, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(
        err, "select: a JSON pointer starts with '/' (\"/data/count\"), got 'jobs/scheduled'");
    q = (sb_http_json_query){.select = "/a~2b"};
    ck_assert_int_eq(sb_http_json_check(&q, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "select: '~' must be followed by 0 or 1 (RFC 6901) in '/a~2b'");
    q = (sb_http_json_query){.select = "", .label = "name"};
    ck_assert_int_eq(sb_http_json_check(&q, err, sizeof(err)), -EINVAL);
    q = (sb_http_json_query){.select = "/q/*/depth", .label = "name"};
    ck_assert_int_eq(sb_http_json_check(&q, err, sizeof(err)), 0);
}
END_TEST

/* ---- the plugin's option errors --------------------------------------------------------- */

static int plugin_create(const char *opts)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d =
        test_plugin_load_if_built("http_json", SB_KIND_TRIGGER, &handle);
    if (!d)
        return 0;
    int rc = test_plugin_try_options(d, opts, err, sizeof(err));
    test_plugin_unload(handle);
    return rc;
}

START_TEST(plugin_options)
{
    ck_assert_int_eq(plugin_create("url: \"https://agent.buildkite.com/v3/metrics\", select: "
                                   "/jobs/scheduled, headers: {Authorization: \"Token x\"}"),
                     0);
    ck_assert_int_eq(plugin_create("url: \"ftp://x/\""), -EINVAL);
    ck_assert_str_eq(err, "url: expected an http:// or https:// URL");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", method: DELETE"), -EINVAL);
    ck_assert_str_eq(err, "method: 'DELETE' is not one of GET, POST, PUT, PATCH");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", body: \"{}\""), -EINVAL);
    ck_assert_str_eq(err, "body: a GET request has no body (set method: POST)");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", username: u"), -EINVAL);
    ck_assert_str_eq(err, "username: set together with password (HTTP basic authentication)");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", headers: {\"Bad Name\": v}"), -EINVAL);
    ck_assert_str_eq(err, "headers: 'Bad Name' is not a header name");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", headers: {X-A: \"a\\r\\nX-B: b\"}"),
                     -EINVAL);
    ck_assert_str_eq(err, "headers: X-A: the value holds a control character");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", select: count"), -EINVAL);
    ck_assert_int_eq(plugin_create("url: \"http://x/\", max_body: 1"), -EINVAL);
    ck_assert_str_eq(err, "max_body: between 2 and 67108864 bytes");
    ck_assert_int_eq(plugin_create("url: \"http://x/\", label: name"), -EINVAL);
    ck_assert_int_eq(plugin_create("url: \"http://x/\", every: 1ms"), -EINVAL);
    ck_assert_str_eq(err, "every: must be at least 10ms");
}
END_TEST

static Suite *http_json_suite(void)
{
    Suite *s = suite_create("http_json_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, pointer);
    tcase_add_test(tc, numeric_strings);
    tcase_add_test(tc, wrong_types_and_missing);
    tcase_add_test(tc, wildcard_with_labels);
    tcase_add_test(tc, label_errors);
    tcase_add_test(tc, count);
    tcase_add_test(tc, github_total_count);
    tcase_add_test(tc, errors_stay_one_line);
    tcase_add_test(tc, garbage_and_bounds);
    tcase_add_test(tc, check_queries);
    tcase_add_test(tc, plugin_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(http_json_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
