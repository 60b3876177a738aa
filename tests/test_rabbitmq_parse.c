/*
 * test_rabbitmq_parse.c - tests for the rabbitmq trigger: the management API reply parser
 * (triggers/rabbitmq/rabbitmq_parse.c) on real and hostile replies (counts missing or null right
 * after a declare, wrong types, out-of-range and huge numbers, regex matches, replies that are not
 * JSON or not the expected shape, limits), and - when build/plugins/rabbitmq.so exists - the
 * plugin's create(): every option error is one clear line.
 *
 * The "real" replies are what rabbitmq-server 3.10 answered to
 * GET /api/queues/%2F?columns=name,messages,...,message_stats.publish_details.rate.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>

#include "fake_host.h"
#include "rabbitmq_parse.h"

/* ---- helpers --------------------------------------------------------------------------- */

static char err[512];
static sb_rabbitmq_result res;

static int parse_exact(const char *json, sb_rabbitmq_measure m, const char *name)
{
    err[0] = '\0';
    return sb_rabbitmq_parse(json, strlen(json), m, name, NULL, &res, err, sizeof err);
}

static int parse_re(const char *json, sb_rabbitmq_measure m, const char *pattern)
{
    regex_t re;
    ck_assert_int_eq(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
    err[0] = '\0';
    int rc = sb_rabbitmq_parse(json, strlen(json), m, NULL, &re, &res, err, sizeof err);
    regfree(&re);
    return rc;
}

static void teardown(void)
{
    sb_rabbitmq_result_free(&res);
}

/* The reply right after `jobs` was declared and one message published (real, 3.10). */
static const char *real_list =
    "[{\"consumers\":0,\"message_stats\":{\"publish_details\":{\"rate\":0.0}},\"messages\":1,"
    "\"messages_ready\":1,\"messages_unacknowledged\":0,\"name\":\"jobs\"},"
    "{\"name\":\"fresh\"}]";

static const char *one_queue =
    "{\"consumers\":2,\"message_stats\":{\"publish_details\":{\"rate\":2.5}},\"messages\":10,"
    "\"messages_ready\":7,\"messages_unacknowledged\":3,\"name\":\"jobs\"}";

/* ---- measures -------------------------------------------------------------------------- */

START_TEST(test_measure_names)
{
    static const char *names[] = {"messages_ready", "messages", "messages_unacknowledged",
                                  "consumers", "publish_rate"};
    for (size_t i = 0; i < 5; i++) {
        sb_rabbitmq_measure m;
        ck_assert_int_eq(sb_rabbitmq_measure_from_name(names[i], &m), 0);
        ck_assert_int_eq((int)m, (int)i);
        ck_assert_str_eq(sb_rabbitmq_measure_name(m), names[i]);
    }
    sb_rabbitmq_measure m = SB_RABBITMQ_MESSAGES;
    ck_assert_int_eq(sb_rabbitmq_measure_from_name("depth", &m), -EINVAL);
    ck_assert_int_eq(sb_rabbitmq_measure_from_name(NULL, &m), -EINVAL);
    ck_assert_int_eq(sb_rabbitmq_measure_from_name("Messages", &m), -EINVAL);
}
END_TEST

/* ---- one exact queue ------------------------------------------------------------------- */

START_TEST(test_exact_each_measure)
{
    static const double want[] = {7, 10, 3, 2, 2.5};
    for (int m = 0; m < 5; m++) {
        ck_assert_int_eq(parse_exact(one_queue, (sb_rabbitmq_measure)m, "jobs"), 0);
        ck_assert_uint_eq(res.count, 1);
        ck_assert_str_eq(res.values[0].queue, "jobs");
        ck_assert_double_eq(res.values[0].value, want[m]);
        sb_rabbitmq_result_free(&res);
    }
}
END_TEST

START_TEST(test_exact_in_array)
{
    ck_assert_int_eq(parse_exact(real_list, SB_RABBITMQ_MESSAGES_READY, "jobs"), 0);
    ck_assert_uint_eq(res.count, 1);
    ck_assert_double_eq(res.values[0].value, 1);
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_exact(real_list, SB_RABBITMQ_MESSAGES_READY, "other"), -ENOENT);
    ck_assert_str_eq(err, "queue other: not in the reply");
    ck_assert_uint_eq(res.count, 0);
}
END_TEST

/* Right after a declare the server has no counts: missing (3.10) or null. Never a 0. */
START_TEST(test_exact_no_statistics)
{
    static const char *replies[] = {
        "{\"name\":\"jobs\"}",
        "{\"name\":\"jobs\",\"messages_ready\":null,\"messages\":null}",
        "[{\"name\":\"fresh\"},{\"name\":\"jobs\",\"consumers\":null}]",
    };
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(parse_exact(replies[i], SB_RABBITMQ_MESSAGES_READY, "jobs"), -EAGAIN);
        ck_assert_str_eq(err, "queue jobs: no statistics yet");
        ck_assert_uint_eq(res.count, 0);
        ck_assert_int_eq(parse_exact(replies[i], SB_RABBITMQ_CONSUMERS, "jobs"), -EAGAIN);
        ck_assert_int_eq(parse_exact(replies[i], SB_RABBITMQ_PUBLISH_RATE, "jobs"), -EAGAIN);
    }
}
END_TEST

START_TEST(test_exact_other_queue)
{
    ck_assert_int_eq(parse_exact(one_queue, SB_RABBITMQ_MESSAGES_READY, "job"), -ENOENT);
    ck_assert_str_eq(err, "queue job: the reply is about queue jobs");
}
END_TEST

START_TEST(test_wrong_types)
{
    static const struct {
        const char *json;
        sb_rabbitmq_measure m;
        const char *err;
    } cases[] = {
        {"{\"name\":\"jobs\",\"messages_ready\":\"7\"}", SB_RABBITMQ_MESSAGES_READY,
         "queue jobs: messages_ready is a string, not a number"},
        {"{\"name\":\"jobs\",\"messages\":true}", SB_RABBITMQ_MESSAGES,
         "queue jobs: messages is a boolean, not a number"},
        {"{\"name\":\"jobs\",\"consumers\":[1]}", SB_RABBITMQ_CONSUMERS,
         "queue jobs: consumers is an array, not a number"},
        {"{\"name\":\"jobs\",\"messages_unacknowledged\":{}}", SB_RABBITMQ_MESSAGES_UNACKNOWLEDGED,
         "queue jobs: messages_unacknowledged is an object, not a number"},
        {"{\"name\":\"jobs\",\"messages\":1,\"message_stats\":[]}", SB_RABBITMQ_PUBLISH_RATE,
         "queue jobs: message_stats is an array, not an object"},
        {"{\"name\":\"jobs\",\"messages\":1,\"message_stats\":{\"publish_details\":3}}",
         SB_RABBITMQ_PUBLISH_RATE,
         "queue jobs: message_stats.publish_details is a number, not an object"},
        {"{\"name\":\"jobs\",\"messages\":1,\"message_stats\":{\"publish_details\":{\"rate\":"
         "\"fast\"}}}",
         SB_RABBITMQ_PUBLISH_RATE,
         "queue jobs: message_stats.publish_details.rate is a string, not a number"},
        {"{\"name\":7,\"messages_ready\":1}", SB_RABBITMQ_MESSAGES_READY,
         "queue #1 in the reply has no name (a number)"},
        {"{\"messages_ready\":1}", SB_RABBITMQ_MESSAGES_READY,
         "queue #1 in the reply has no name (missing)"},
        {"[1]", SB_RABBITMQ_MESSAGES_READY, "queue #1 in the reply is a number, not an object"},
        {"\"jobs\"", SB_RABBITMQ_MESSAGES_READY, "the reply is a string, not a queue object"},
        {"null", SB_RABBITMQ_MESSAGES_READY, "the reply is not a value, not a queue object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ck_assert_msg(parse_exact(cases[i].json, cases[i].m, "jobs") == -EPROTO, "case %zu: %s", i,
                      err);
        ck_assert_str_eq(err, cases[i].err);
        ck_assert_uint_eq(res.count, 0);
    }
}
END_TEST

START_TEST(test_numbers)
{
    /* Out of range: not finite (cJSON reads 1e400 as infinity) or negative. */
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages_ready\":1e400}",
                                 SB_RABBITMQ_MESSAGES_READY, "jobs"),
                     -EPROTO);
    ck_assert_str_eq(err, "queue jobs: messages_ready is out of range (inf)");
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages_ready\":-1}",
                                 SB_RABBITMQ_MESSAGES_READY, "jobs"),
                     -EPROTO);
    ck_assert_str_eq(err, "queue jobs: messages_ready is out of range (-1)");
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages_ready\":-1e400}",
                                 SB_RABBITMQ_MESSAGES_READY, "jobs"),
                     -EPROTO);
    /* Huge but finite: taken as it is (the policy bounds what it decides). */
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages_ready\":18446744073709551617}",
                                 SB_RABBITMQ_MESSAGES_READY, "jobs"),
                     0);
    ck_assert_double_eq_tol(res.values[0].value, 1.8446744073709552e19, 1e4);
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages_ready\":1.5e300}",
                                 SB_RABBITMQ_MESSAGES_READY, "jobs"),
                     0);
    sb_rabbitmq_result_free(&res);
    /* A long run of digits. */
    char big[700];
    int n = snprintf(big, sizeof big, "{\"name\":\"jobs\",\"messages_ready\":");
    memset(big + n, '9', 600);
    snprintf(big + n + 600, sizeof big - (size_t)n - 600, "}");
    ck_assert_int_eq(parse_exact(big, SB_RABBITMQ_MESSAGES_READY, "jobs"), -EPROTO);
    ck_assert_str_eq(err, "queue jobs: messages_ready is out of range (inf)");
    /* Zero is a value (a reading of 0), not "no statistics". */
    ck_assert_int_eq(
        parse_exact("{\"name\":\"jobs\",\"messages_ready\":0}", SB_RABBITMQ_MESSAGES_READY, "jobs"),
        0);
    ck_assert_double_eq(res.values[0].value, 0);
}
END_TEST

/* publish_rate: 0 for a queue that has statistics but never saw a publish. */
START_TEST(test_publish_rate)
{
    ck_assert_int_eq(
        parse_exact("{\"name\":\"jobs\",\"messages\":0}", SB_RABBITMQ_PUBLISH_RATE, "jobs"), 0);
    ck_assert_double_eq(res.values[0].value, 0);
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"messages\":0,\"message_stats\":{}}",
                                 SB_RABBITMQ_PUBLISH_RATE, "jobs"),
                     0);
    ck_assert_double_eq(res.values[0].value, 0);
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_exact("{\"name\":\"jobs\",\"message_stats\":{\"publish_details\":{"
                                 "\"rate\":0.4}}}",
                                 SB_RABBITMQ_PUBLISH_RATE, "jobs"),
                     0);
    ck_assert_double_eq(res.values[0].value, 0.4);
}
END_TEST

/* ---- a regular expression -------------------------------------------------------------- */

static const char *three =
    "[{\"name\":\"build-linux\",\"messages_ready\":4},{\"name\":\"deploy\",\"messages_ready\":9},"
    "{\"name\":\"build-mac\",\"messages_ready\":0}]";

START_TEST(test_regex_matches)
{
    ck_assert_int_eq(parse_re(three, SB_RABBITMQ_MESSAGES_READY, "^build-"), 0);
    ck_assert_uint_eq(res.count, 2);
    ck_assert_str_eq(res.values[0].queue, "build-linux");
    ck_assert_double_eq(res.values[0].value, 4);
    ck_assert_str_eq(res.values[1].queue, "build-mac");
    ck_assert_double_eq(res.values[1].value, 0);
    ck_assert_uint_eq(res.no_stats, 0);
    sb_rabbitmq_result_free(&res);
    /* Anywhere in the name, unless anchored. */
    ck_assert_int_eq(parse_re(three, SB_RABBITMQ_MESSAGES_READY, "ep"), 0);
    ck_assert_uint_eq(res.count, 1);
    ck_assert_str_eq(res.values[0].queue, "deploy");
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_re(three, SB_RABBITMQ_MESSAGES_READY, "^(deploy|build-mac)$"), 0);
    ck_assert_uint_eq(res.count, 2);
    ck_assert_str_eq(res.values[0].queue, "deploy");
    sb_rabbitmq_result_free(&res);
    /* An exact name on the same reply picks that one. */
    ck_assert_int_eq(parse_exact(three, SB_RABBITMQ_MESSAGES_READY, "deploy"), 0);
    ck_assert_double_eq(res.values[0].value, 9);
}
END_TEST

START_TEST(test_regex_no_match)
{
    ck_assert_int_eq(parse_re(three, SB_RABBITMQ_MESSAGES_READY, "^test$"), -ENOENT);
    ck_assert_str_eq(err, "no queue matches (3 in the reply)");
    ck_assert_int_eq(parse_re("[]", SB_RABBITMQ_MESSAGES_READY, "."), -ENOENT);
    ck_assert_str_eq(err, "no queue matches (0 in the reply)");
}
END_TEST

/* A matching queue without statistics yet is skipped; only all of them missing is an error. */
START_TEST(test_regex_no_statistics)
{
    ck_assert_int_eq(parse_re(real_list, SB_RABBITMQ_MESSAGES_READY, "."), 0);
    ck_assert_uint_eq(res.count, 1);
    ck_assert_str_eq(res.values[0].queue, "jobs");
    ck_assert_uint_eq(res.no_stats, 1);
    sb_rabbitmq_result_free(&res);
    ck_assert_int_eq(parse_re(real_list, SB_RABBITMQ_MESSAGES_READY, "^fresh$"), -EAGAIN);
    ck_assert_str_eq(err, "queue fresh: no statistics yet");
    ck_assert_int_eq(parse_re("[{\"name\":\"a\"},{\"name\":\"b\",\"messages_ready\":null}]",
                              SB_RABBITMQ_MESSAGES_READY, "."),
                     -EAGAIN);
    ck_assert_str_eq(err, "queue a and the other matching queues: no statistics yet");
}
END_TEST

START_TEST(test_regex_shapes)
{
    ck_assert_int_eq(parse_re(one_queue, SB_RABBITMQ_MESSAGES_READY, "."), -EPROTO);
    ck_assert_str_eq(err, "the reply is an object, not an array of queues");
    ck_assert_int_eq(parse_re("{\"error\":\"Object Not Found\",\"reason\":\"Not Found\"}",
                              SB_RABBITMQ_MESSAGES_READY, "."),
                     -EPROTO);
    /* A bad element anywhere fails the whole read (no half readings). */
    ck_assert_int_eq(
        parse_re("[{\"name\":\"a\",\"messages_ready\":1},\"b\"]", SB_RABBITMQ_MESSAGES_READY, "."),
        -EPROTO);
    ck_assert_str_eq(err, "queue #2 in the reply is a string, not an object");
    ck_assert_uint_eq(res.count, 0);
    ck_assert_int_eq(parse_re("[{\"name\":\"a\",\"messages_ready\":1},{\"name\":\"b\","
                              "\"messages_ready\":\"x\"}]",
                              SB_RABBITMQ_MESSAGES_READY, "."),
                     -EPROTO);
    ck_assert_uint_eq(res.count, 0);
    /* A queue the regex does not match still needs a name, but its fields are not read. */
    ck_assert_int_eq(parse_re("[{\"name\":\"a\",\"messages_ready\":\"x\"},{\"name\":\"b\","
                              "\"messages_ready\":1}]",
                              SB_RABBITMQ_MESSAGES_READY, "^b$"),
                     0);
    ck_assert_uint_eq(res.count, 1);
}
END_TEST

START_TEST(test_regex_too_many)
{
    size_t n = SB_RABBITMQ_MAX_QUEUES + 1, cap = n * 40 + 8, len = 0;
    char *json = malloc(cap);
    ck_assert_ptr_nonnull(json);
    json[len++] = '[';
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(json + len, cap - len, "%s{\"name\":\"q%zu\",\"messages\":1}",
                                i ? "," : "", i);
    json[len++] = ']';
    json[len] = '\0';
    ck_assert_int_eq(parse_re(json, SB_RABBITMQ_MESSAGES, "^q"), -E2BIG);
    ck_assert_str_eq(err, "more than 10000 queues match");
    ck_assert_uint_eq(res.count, 0);
    /* Exactly the limit is fine. */
    ck_assert_int_eq(
        parse_re(json, SB_RABBITMQ_MESSAGES, "^q([0-9]{1,3}|[0-8][0-9]{3}|9[0-9]{3})$"), 0);
    ck_assert_uint_eq(res.count, 10000);
    free(json);
}
END_TEST

START_TEST(test_long_name)
{
    char json[400], name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(json, sizeof json, "[{\"name\":\"%s\",\"messages\":1}]", name);
    ck_assert_int_eq(parse_re(json, SB_RABBITMQ_MESSAGES, "."), -EPROTO);
    ck_assert_str_eq(err, "queue #1 in the reply has a name longer than 255 bytes");
    name[255] = '\0';
    snprintf(json, sizeof json, "[{\"name\":\"%s\",\"messages\":1}]", name);
    ck_assert_int_eq(parse_re(json, SB_RABBITMQ_MESSAGES, "."), 0);
    ck_assert_uint_eq(strlen(res.values[0].queue), 255);
}
END_TEST

/* Control bytes in a name never reach an error line as they are. */
START_TEST(test_error_names_printable)
{
    ck_assert_int_eq(parse_exact("{\"name\":\"a\\nb\\u001b\"}", SB_RABBITMQ_MESSAGES, "a\nb\x1b"),
                     -EAGAIN);
    ck_assert_str_eq(err, "queue a?b?: no statistics yet");
}
END_TEST

/* ---- not JSON ---------------------------------------------------------------------------- */

START_TEST(test_not_json)
{
    static const char *bad[] = {
        "",         "   ",  "<html>502 Bad Gateway</html>",          "{\"name\":\"jobs\"",
        "[{}]]",    "[] x", "{\"name\":\"jobs\",\"messages\":1} {}", "nul",
        "\xff\xfe",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(parse_exact(bad[i], SB_RABBITMQ_MESSAGES, "jobs") == -EPROTO, "case %zu", i);
        ck_assert_msg(strncmp(err, "the reply is not JSON", 21) == 0, "case %zu: %s", i, err);
        ck_assert_uint_eq(res.count, 0);
    }
    /* White space after the value is fine. */
    ck_assert_int_eq(
        parse_exact("{\"name\":\"jobs\",\"messages\":1}\r\n", SB_RABBITMQ_MESSAGES, "jobs"), 0);
}
END_TEST

/* len bounds the read: the buffer need not end with a NUL, and a NUL inside it is not the end. */
START_TEST(test_length_bounds)
{
    const char *json = "{\"name\":\"jobs\",\"messages\":12}GARBAGE";
    size_t len = strlen("{\"name\":\"jobs\",\"messages\":12}");
    char *exact = malloc(len); /* no NUL: ASan/valgrind see any read past len */
    ck_assert_ptr_nonnull(exact);
    memcpy(exact, json, len);
    ck_assert_int_eq(
        sb_rabbitmq_parse(exact, len, SB_RABBITMQ_MESSAGES, "jobs", NULL, &res, err, sizeof err),
        0);
    ck_assert_double_eq(res.values[0].value, 12);
    sb_rabbitmq_result_free(&res);
    /* Cut short inside the number: "1" */
    ck_assert_int_eq(sb_rabbitmq_parse(exact, len - 2, SB_RABBITMQ_MESSAGES, "jobs", NULL, &res,
                                       err, sizeof err),
                     -EPROTO);
    free(exact);
    const char with_nul[] = "{\"name\":\"jobs\",\"messages\":1}\0{}";
    ck_assert_int_eq(sb_rabbitmq_parse(with_nul, sizeof with_nul - 1, SB_RABBITMQ_MESSAGES, "jobs",
                                       NULL, &res, err, sizeof err),
                     -EPROTO);
    ck_assert_int_eq(
        sb_rabbitmq_parse(NULL, 0, SB_RABBITMQ_MESSAGES, "jobs", NULL, &res, err, sizeof err),
        -EPROTO);
    ck_assert_int_eq(
        sb_rabbitmq_parse("{}", 2, SB_RABBITMQ_MESSAGES, NULL, NULL, &res, err, sizeof err),
        -EINVAL);
}
END_TEST

START_TEST(test_deep_nesting)
{
    size_t depth = 100000;
    char *json = malloc(depth * 2 + 1);
    ck_assert_ptr_nonnull(json);
    memset(json, '[', depth);
    memset(json + depth, ']', depth);
    json[depth * 2] = '\0';
    ck_assert_int_eq(parse_re(json, SB_RABBITMQ_MESSAGES, "."), -EPROTO);
    free(json);
}
END_TEST

/* A small error buffer truncates, never overflows. */
START_TEST(test_small_err_buffer)
{
    char small[8];
    ck_assert_int_eq(
        sb_rabbitmq_parse("x", 1, SB_RABBITMQ_MESSAGES, "jobs", NULL, &res, small, sizeof small),
        -EPROTO);
    ck_assert_str_eq(small, "the rep");
}
END_TEST

/* ---- the plugin's create(): option errors ------------------------------------------------ */

static const sb_plugin_descriptor *plugin;
static void *plugin_handle;

static void setup_plugin(void)
{
    plugin = test_plugin_load_if_built("rabbitmq", SB_KIND_TRIGGER, &plugin_handle);
}

static void teardown_plugin(void)
{
    test_plugin_unload(plugin_handle);
    plugin = NULL;
    plugin_handle = NULL;
}

/* create() with these options (YAML flow-mapping entries); returns its result, err as it left it.
 */
static int create_with(const char *opts, char *msg, size_t len)
{
    return test_plugin_try_options(plugin, opts, msg, len);
}

START_TEST(test_plugin_options)
{
    if (!plugin)
        return;
    static const struct {
        const char *opts, *err; /* err NULL: accepted */
    } cases[] = {
        {"url: \"http://127.0.0.1:15672\", queue: jobs, username: u, password: p", NULL},
        {"url: \"http://u:p%40ss@127.0.0.1:15672/\", queue: jobs", NULL},
        {"url: \"https://u:p@mq.example:443/rabbitmq\", queue: \"build-.*\", queue_regex: true, "
         "measure: publish_rate, vhost: ci, tls_verify: false",
         NULL},
        {"protocol: amqp, url: \"amqp://u:p@127.0.0.1:5672/%2F\", queue: jobs, measure: consumers",
         NULL},
        {"protocol: amqp, url: \"amqp://127.0.0.1\", queue: jobs, username: u, password: p", NULL},
        {"url: \"http://127.0.0.1:15672\", queue: jobs",
         "username: required (the url has no user:password@)"},
        {"url: \"http://127.0.0.1:15672\", queue: jobs, username: u",
         "password: required (the url has no user:password@)"},
        {"url: \"http://u:p@127.0.0.1:15672\", queue: jobs, username: u",
         "username: the url already has credentials: give them in one place"},
        {"url: \"http://u:p%zz@127.0.0.1:15672\", queue: jobs",
         "url: bad percent-encoding in the user or password"},
        {"url: \"ftp://127.0.0.1\", queue: jobs, username: u, password: p",
         "url: expected http:// or https:// with protocol http (got 'ftp')"},
        {"url: \"http://127.0.0.1:15672/?x=1\", queue: jobs, username: u, password: p",
         "url: no query or fragment: the plugin adds /api/queues/... itself"},
        {"url: \"http://\", queue: jobs, username: u, password: p", "url: no host"},
        {"url: \"amqp://u:p@127.0.0.1\", queue: jobs", "url: an amqp:// url needs protocol: amqp"},
        {"protocol: amqps, url: \"amqp://u:p@h\", queue: jobs",
         "protocol: expected http or amqp, not 'amqps'"},
        {"url: \"http://u:p@h\", queue: jobs, measure: depth",
         "measure: expected messages_ready, messages, messages_unacknowledged, consumers or "
         "publish_rate, not 'depth'"},
        {"url: \"http://u:p@h\", queue: \"(\", queue_regex: true",
         "queue: not a regular expression: "},
        {"url: \"http://u:p@h\", queue: \"\"", "queue: required"},
        {"url: \"http://u:p@h\", queue: jobs, vhost: \"\"",
         "vhost: empty (the default vhost is /)"},
        {"url: \"http://u:p@h\", queue: jobs, every: 1ms", "every: must be at least 10ms"},
        {"protocol: amqp, url: \"amqp://u:p@h\", queue: jobs, measure: messages",
         "measure: protocol amqp reads messages_ready or consumers, not messages (use protocol "
         "http)"},
        {"protocol: amqp, url: \"amqp://u:p@h\", queue: \"j.*\", queue_regex: true",
         "queue_regex: protocol amqp reads one queue by its exact name (use protocol http for a "
         "regular expression)"},
        {"protocol: amqp, url: \"amqp://u:p@h\", queue: jobs, vhost: x",
         "vhost: with protocol amqp the vhost is the url's path (amqp://host:5672/%2F for /)"},
        {"protocol: amqp, url: \"amqp://h\", queue: jobs",
         "username: required (the url has no user:password@)"},
        {"protocol: amqp, url: \"amqp://u:p@h\", queue: jobs, password: x",
         "password: the url already has credentials: give them in one place"},
        {"protocol: amqp, url: \"amqps://u:p@h\", queue: jobs",
         "url: amqps:// is not supported yet (use amqp://, or protocol: http with an https:// "
         "url)"},
        {"protocol: amqp, url: \"http://u:p@h\", queue: jobs",
         "url: expected amqp://[user:password@]host[:port][/vhost]"},
        {"protocol: amqp, url: \"amqp://u:p@h:notaport\", queue: jobs",
         "url: not an AMQP URL (amqp://[user:password@]host[:port][/vhost])"},
    };
    char msg[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = create_with(cases[i].opts, msg, sizeof msg);
        if (!cases[i].err) {
            ck_assert_msg(rc == 0, "case %zu (%s): %s", i, cases[i].opts, msg);
            continue;
        }
        ck_assert_msg(rc < 0, "case %zu (%s) was accepted", i, cases[i].opts);
        ck_assert_msg(strncmp(msg, cases[i].err, strlen(cases[i].err)) == 0,
                      "case %zu: got '%s', want '%s'", i, msg, cases[i].err);
        ck_assert_msg(!strchr(msg, '\n'), "case %zu: more than one line", i);
    }
    /* A long name is refused (AMQP's limit). */
    char opts[600], name[300];
    memset(name, 'q', 256);
    name[256] = '\0';
    snprintf(opts, sizeof opts, "url: \"http://u:p@h\", queue: %s", name);
    ck_assert_int_lt(create_with(opts, msg, sizeof msg), 0);
    ck_assert_str_eq(msg, "queue: longer than 255 bytes");
}
END_TEST

static Suite *rabbitmq_suite(void)
{
    Suite *s = suite_create("rabbitmq");
    TCase *tc = tcase_create("parse");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_measure_names);
    tcase_add_test(tc, test_exact_each_measure);
    tcase_add_test(tc, test_exact_in_array);
    tcase_add_test(tc, test_exact_no_statistics);
    tcase_add_test(tc, test_exact_other_queue);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_numbers);
    tcase_add_test(tc, test_publish_rate);
    tcase_add_test(tc, test_regex_matches);
    tcase_add_test(tc, test_regex_no_match);
    tcase_add_test(tc, test_regex_no_statistics);
    tcase_add_test(tc, test_regex_shapes);
    tcase_add_test(tc, test_regex_too_many);
    tcase_add_test(tc, test_long_name);
    tcase_add_test(tc, test_error_names_printable);
    tcase_add_test(tc, test_not_json);
    tcase_add_test(tc, test_length_bounds);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_small_err_buffer);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("plugin");
    tcase_add_checked_fixture(tp, setup_plugin, teardown_plugin);
    tcase_add_test(tp, test_plugin_options);
    tcase_set_timeout(tp, 60);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rabbitmq_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
