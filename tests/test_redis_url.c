/*
 * test_redis_url.c - the redis trigger's pure parts (triggers/redis, library sb_redis_parse):
 * its `url` parser on good and bad URLs with the exact messages, the reply reader on raw RESP
 * bytes (LLEN/ZCARD/XLEN integers, XINFO GROUPS with and without a lag, server errors, malformed
 * and hostile replies that must be refused, not crash), and, when redis.so is built, create()'s
 * option checks through the shared fake host.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "redis_reply.h"
#include "redis_url.h"

/* ---- url ----------------------------------------------------------------------------------- */

START_TEST(test_url_good)
{
    static const struct {
        const char *text;
        int is_unix;
        const char *host;
        int port;
        const char *path, *user, *password;
        long db;
        const char *described;
    } cases[] = {
        {"redis://127.0.0.1:6379/0", 0, "127.0.0.1", 6379, "", "", "", 0,
         "redis://127.0.0.1:6379/0"},
        {"redis://localhost", 0, "localhost", 6379, "", "", "", 0, "redis://localhost:6379/0"},
        {"redis://localhost/", 0, "localhost", 6379, "", "", "", 0, "redis://localhost:6379/0"},
        {"redis://cache.internal:6380/3", 0, "cache.internal", 6380, "", "", "", 3,
         "redis://cache.internal:6380/3"},
        {"redis://:s3cret@10.0.0.5:7000/15", 0, "10.0.0.5", 7000, "", "", "s3cret", 15,
         "redis://10.0.0.5:7000/15"},
        {"redis://ci:p%40ss%3Aword@h:1/2", 0, "h", 1, "", "ci", "p@ss:word", 2, "redis://h:1/2"},
        {"redis://:p@ss@h", 0, "h", 6379, "", "", "p@ss", 0, "redis://h:6379/0"},
        {"redis://[::1]:6390/1", 0, "::1", 6390, "", "", "", 1, "redis://[::1]:6390/1"},
        {"redis://[fe80::1]", 0, "fe80::1", 6379, "", "", "", 0, "redis://[fe80::1]:6379/0"},
        {"redis://h:65535/2147483647", 0, "h", 65535, "", "", "", 2147483647L,
         "redis://h:65535/2147483647"},
        {"unix:/run/redis/redis.sock", 1, "", 0, "/run/redis/redis.sock", "", "", 0,
         "unix:/run/redis/redis.sock?db=0"},
        {"unix:///tmp/r.sock?db=4", 1, "", 0, "/tmp/r.sock", "", "", 4, "unix:/tmp/r.sock?db=4"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_redis_url u;
        char err[256] = "";
        int rc = sb_redis_url_parse(cases[i].text, &u, err, sizeof err);
        ck_assert_msg(rc == 0, "%s: %s", cases[i].text, err);
        ck_assert_int_eq(u.is_unix, cases[i].is_unix);
        ck_assert_str_eq(u.host, cases[i].host);
        ck_assert_int_eq(u.port, cases[i].port);
        ck_assert_str_eq(u.path, cases[i].path);
        ck_assert_str_eq(u.username, cases[i].user);
        ck_assert_str_eq(u.password, cases[i].password);
        ck_assert_int_eq(u.db, cases[i].db);
        char d[512];
        sb_redis_url_describe(&u, d, sizeof d);
        ck_assert_str_eq(d, cases[i].described);
    }
}
END_TEST

START_TEST(test_url_bad)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"", "empty (expected redis://[[user]:password@]host[:port][/db] or "
             "unix:/path/to/socket[?db=N])"},
        {"localhost:6379", "unknown scheme 'localhost:' (expected redis://[[user]:password@]"
                           "host[:port][/db] or unix:/path/to/socket[?db=N])"},
        {"127.0.0.1", "no scheme (expected redis://[[user]:password@]host[:port][/db] or "
                      "unix:/path/to/socket[?db=N])"},
        {"http://h", "unknown scheme 'http:' (expected redis://[[user]:password@]host[:port][/db]"
                     " or unix:/path/to/socket[?db=N])"},
        {"rediss://h:6380", "rediss:// (TLS) is not supported: hiredis 0.14 has no TLS"},
        {"redis://", "no host (expected redis://[[user]:password@]host[:port][/db] or "
                     "unix:/path/to/socket[?db=N])"},
        {"redis://:6379/0", "no host (expected redis://[[user]:password@]host[:port][/db] or "
                            "unix:/path/to/socket[?db=N])"},
        {"redis://h:0", "port '0' is not a number 1-65535"},
        {"redis://h:65536", "port '65536' is not a number 1-65535"},
        {"redis://h:http", "port 'http' is not a number 1-65535"},
        {"redis://h:-1", "port '-1' is not a number 1-65535"},
        {"redis://h:99999999999999999999", "port '99999999999999999999' is not a number 1-65535"},
        {"redis://h:", "empty port after ':'"},
        {"redis://h/x", "database 'x' is not a number 0-2147483647"},
        {"redis://h/-1", "database '-1' is not a number 0-2147483647"},
        {"redis://h/2147483648", "database '2147483648' is not a number 0-2147483647"},
        {"redis://h/1/2", "unexpected '/2' after the database"},
        {"redis://h?db=2", "unexpected '?db=2': a redis:// URL gives the database as /N"},
        {"redis://h/0#frag", "unexpected '#frag' after the database"},
        {"redis://::1:6379", "'::1:6379' is not a host and port (write an IPv6 address in "
                             "brackets: [::1]:6379)"},
        {"redis://[::1", "an IPv6 address needs its closing ']'"},
        {"redis://[]:1", "empty IPv6 address '[]'"},
        {"redis://[::g]", "'::g' is not an IPv6 address"},
        {"redis://[::1]x", "unexpected 'x' after the IPv6 address"},
        {"redis://ho$t:1", "'ho$t' is not a host name or address"},
        {"redis://secret@h", "the part before '@' must be ':password' or 'user:password' (it has "
                             "no ':')"},
        {"redis://:p%zz@h", "bad percent-encoding in the password"},
        {"redis://:p%4@h", "bad percent-encoding in the password"},
        {"redis://:p%00@h", "bad percent-encoding in the password"},
        {"redis://u%g1:p@h", "bad percent-encoding in the user name"},
        {"redis://ci:@h", "user 'ci' has an empty password"},
        {"redis://c%08i:@h", "user 'c?i' has an empty password"},
        {"redis://h /0", "has a space or a control character (percent-encode it)"},
        {"redis://h\n", "has a space or a control character (percent-encode it)"},
        {"unix:run/redis.sock", "the socket path must be absolute (unix:/path/to/redis.sock)"},
        {"unix://host/run/redis.sock", "unix: takes no host: write unix:/path or unix:///path"},
        {"unix:/r.sock?database=1", "unknown query 'database=1': a unix: URL takes only ?db=N"},
        {"unix:/r.sock?db=", "database '' is not a number 0-2147483647"},
        {"unix:/r.sock#x", "unexpected '#' in a unix: URL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_redis_url u;
        char err[256] = "";
        int rc = sb_redis_url_parse(cases[i].text, &u, err, sizeof err);
        ck_assert_msg(rc == -EINVAL, "%s: accepted", cases[i].text);
        ck_assert_msg(strcmp(err, cases[i].err) == 0, "%s:\n  got  '%s'\n  want '%s'",
                      cases[i].text, err, cases[i].err);
    }
}
END_TEST

/* Bounds: the longest of each part is taken, one byte more is refused with its own message, and
 * a password never reaches a message. */
START_TEST(test_url_bounds)
{
    char text[2048], err[256];
    sb_redis_url u;
    char host[SB_REDIS_HOST_MAX + 2], pw[SB_REDIS_PASSWORD_MAX + 2], path[SB_REDIS_PATH_MAX + 2];

    memset(host, 'h', SB_REDIS_HOST_MAX);
    host[SB_REDIS_HOST_MAX] = '\0';
    snprintf(text, sizeof text, "redis://%s:1", host);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), 0);
    snprintf(text, sizeof text, "redis://%sh:1", host);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "the host is longer than 255 bytes");

    memset(pw, 'p', SB_REDIS_PASSWORD_MAX);
    pw[SB_REDIS_PASSWORD_MAX] = '\0';
    snprintf(text, sizeof text, "redis://:%s@h", pw);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), 0);
    ck_assert_uint_eq(strlen(u.password), SB_REDIS_PASSWORD_MAX);
    snprintf(text, sizeof text, "redis://:%sp@h", pw);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "the password is longer than 511 bytes");

    path[0] = '/';
    memset(path + 1, 's', SB_REDIS_PATH_MAX - 1);
    path[SB_REDIS_PATH_MAX] = '\0';
    snprintf(text, sizeof text, "unix:%s", path);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), 0);
    snprintf(text, sizeof text, "unix:%ss", path);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "the socket path is longer than 107 bytes");

    /* Errors after the user info never quote it. */
    ck_assert_int_eq(sb_redis_url_parse("redis://:hunter2@h:99999", &u, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(strstr(err, "hunter2"));
    ck_assert_int_eq(sb_redis_url_parse("redis://:hunter2@", &u, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(strstr(err, "hunter2"));
    /* A long bad part is cut in the message. */
    snprintf(text, sizeof text, "redis://h/%s", host);
    ck_assert_int_eq(sb_redis_url_parse(text, &u, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "database 'hhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhhh...' is not a "
                          "number 0-2147483647");
}
END_TEST

/* ---- replies ------------------------------------------------------------------------------- */

static const sb_redis_query LIST = {SB_REDIS_LIST, NULL, SB_REDIS_LAG};
static const sb_redis_query ZSET = {SB_REDIS_ZSET, NULL, SB_REDIS_LAG};
static const sb_redis_query STREAM = {SB_REDIS_STREAM, NULL, SB_REDIS_LAG};
static const sb_redis_query GROUP_LAG = {SB_REDIS_STREAM, "workers", SB_REDIS_LAG};
static const sb_redis_query GROUP_PENDING = {SB_REDIS_STREAM, "workers", SB_REDIS_PENDING};

/* XINFO GROUPS as Redis 7.0 answers it: two groups, the second one ours. */
#define GROUP_OTHER                                                                                \
    "*12\r\n$4\r\nname\r\n$6\r\nbackup\r\n$9\r\nconsumers\r\n:0\r\n$7\r\npending\r\n:0\r\n"        \
    "$17\r\nlast-delivered-id\r\n$3\r\n0-0\r\n$12\r\nentries-read\r\n$-1\r\n$3\r\nlag\r\n:9\r\n"
#define GROUP_WORKERS(lag)                                                                         \
    "*12\r\n$4\r\nname\r\n$7\r\nworkers\r\n$9\r\nconsumers\r\n:2\r\n$7\r\npending\r\n:4\r\n"       \
    "$17\r\nlast-delivered-id\r\n$15\r\n1700000000000-0\r\n$12\r\nentries-read\r\n:5\r\n"          \
    "$3\r\nlag\r\n" lag "\r\n"
/* As Redis 6 answers it: no entries-read, no lag. */
#define GROUP_WORKERS_V6                                                                           \
    "*8\r\n$4\r\nname\r\n$7\r\nworkers\r\n$9\r\nconsumers\r\n:2\r\n$7\r\npending\r\n:4\r\n"        \
    "$17\r\nlast-delivered-id\r\n$3\r\n1-0\r\n"

static int parse(const char *bytes, size_t len, const sb_redis_query *q, double *v, int *fb,
                 char *err)
{
    return sb_redis_reply_parse(bytes, len, q, v, fb, err, 256);
}
#define PARSE(lit, q, v, fb, err) parse(lit, sizeof(lit) - 1, q, v, fb, err)

START_TEST(test_reply_counts)
{
    double v = -1;
    int fb = -1;
    char err[256] = "";
    ck_assert_int_eq(PARSE(":42\r\n", &LIST, &v, &fb, err), 0);
    ck_assert(v == 42 && fb == 0);
    ck_assert_int_eq(PARSE(":0\r\n", &ZSET, &v, &fb, err), 0);
    ck_assert(v == 0);
    ck_assert_int_eq(PARSE(":9007199254740992\r\n", &STREAM, &v, &fb, err), 0);
    ck_assert(v == 9007199254740992.0);

    ck_assert_int_eq(PARSE("-WRONGTYPE Operation against a key holding the wrong kind of "
                           "value\r\n",
                           &LIST, &v, &fb, err),
                     -EIO);
    ck_assert_str_eq(err, "WRONGTYPE Operation against a key holding the wrong kind of value");
    ck_assert_int_eq(PARSE("-NOAUTH Authentication required.\r\n", &ZSET, &v, &fb, err), -EIO);
    ck_assert_str_eq(err, "NOAUTH Authentication required.");
    ck_assert_int_eq(PARSE("$3\r\n123\r\n", &LIST, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "LLEN returned a string, expected an integer");
    ck_assert_int_eq(PARSE("*0\r\n", &ZSET, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "ZCARD returned an array, expected an integer");
    ck_assert_int_eq(PARSE("$-1\r\n", &STREAM, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "XLEN returned nil, expected an integer");
    ck_assert_int_eq(PARSE("+OK\r\n", &LIST, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "LLEN returned a status, expected an integer");
    ck_assert_int_eq(PARSE(":-3\r\n", &LIST, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "LLEN returned -3, expected a count");
}
END_TEST

START_TEST(test_reply_groups)
{
    double v = -1;
    int fb = -1;
    char err[256] = "";
    static const char v7[] = "*2\r\n" GROUP_OTHER GROUP_WORKERS(":7");
    ck_assert_int_eq(PARSE(v7, &GROUP_LAG, &v, &fb, err), 0);
    ck_assert(v == 7 && fb == 0);
    ck_assert_int_eq(PARSE(v7, &GROUP_PENDING, &v, &fb, err), 0);
    ck_assert(v == 4 && fb == 0);

    /* Redis cannot compute the lag (nil): the pending count, said so. */
    static const char nil_lag[] = "*1\r\n" GROUP_WORKERS("$-1");
    ck_assert_int_eq(PARSE(nil_lag, &GROUP_LAG, &v, &fb, err), 0);
    ck_assert(v == 4 && fb == 1);
    /* Redis 6: no lag field at all. */
    static const char v6[] = "*1\r\n" GROUP_WORKERS_V6;
    ck_assert_int_eq(PARSE(v6, &GROUP_LAG, &v, &fb, err), 0);
    ck_assert(v == 4 && fb == 1);
    ck_assert_int_eq(PARSE(v6, &GROUP_PENDING, &v, &fb, err), 0);
    ck_assert(v == 4 && fb == 0);

    static const char other_only[] = "*1\r\n" GROUP_OTHER;
    ck_assert_int_eq(PARSE(other_only, &GROUP_LAG, &v, &fb, err), -ENOENT);
    ck_assert_str_eq(err, "the stream has no consumer group 'workers'");
    ck_assert_int_eq(PARSE("*0\r\n", &GROUP_LAG, &v, &fb, err), -ENOENT);
    ck_assert_int_eq(PARSE("-ERR no such key\r\n", &GROUP_LAG, &v, &fb, err), -EIO);
    ck_assert_str_eq(err, "ERR no such key");

    ck_assert_int_eq(PARSE(":3\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "XINFO GROUPS returned an integer, expected an array of groups");
    ck_assert_int_eq(PARSE("*1\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "XINFO GROUPS: group 1 is not a list of field-value pairs");
    ck_assert_int_eq(PARSE("*1\r\n*3\r\n$4\r\nname\r\n$1\r\nx\r\n:1\r\n", &GROUP_LAG, &v, &fb, err),
                     -EPROTO);
    ck_assert_str_eq(err, "XINFO GROUPS: group 1 is not a list of field-value pairs");
    ck_assert_int_eq(PARSE("*1\r\n*2\r\n$4\r\nname\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "XINFO GROUPS: group 1 has no name");
    ck_assert_int_eq(
        PARSE("*1\r\n*2\r\n$4\r\nname\r\n$7\r\nworkers\r\n", &GROUP_PENDING, &v, &fb, err),
        -EPROTO);
    ck_assert_str_eq(err, "group 'workers': no pending count in the reply");
    ck_assert_int_eq(PARSE("*1\r\n*4\r\n$4\r\nname\r\n$7\r\nworkers\r\n$3\r\nlag\r\n$1\r\n5\r\n",
                           &GROUP_LAG, &v, &fb, err),
                     -EPROTO);
    ck_assert_str_eq(err, "group 'workers': lag is a string, expected an integer or nil");
    ck_assert_int_eq(PARSE("*1\r\n*4\r\n$4\r\nname\r\n$7\r\nworkers\r\n$3\r\nlag\r\n:-2\r\n",
                           &GROUP_LAG, &v, &fb, err),
                     -EPROTO);
    ck_assert_str_eq(err, "group 'workers': lag -2 is negative");
    /* A name that is only a prefix, or longer, is another group. */
    ck_assert_int_eq(PARSE("*1\r\n*4\r\n$4\r\nname\r\n$8\r\nworkers2\r\n$7\r\npending\r\n:1\r\n",
                           &GROUP_PENDING, &v, &fb, err),
                     -ENOENT);
}
END_TEST

/* Replies no real server sends: each is refused with a reason, none crashes (the unit tests run
 * under valgrind and the sanitizers). */
START_TEST(test_reply_hostile)
{
    double v = -1;
    int fb;
    char err[256] = "";
    /* Counts an int cannot hold (hiredis 0.14.1 refuses them itself), negative ones, and more
     * elements than the bound. */
    ck_assert_int_eq(PARSE("*4294967296\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "Multi-bulk length out of range");
    ck_assert_int_eq(PARSE("*4294967297\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_int_eq(PARSE("*2147483648\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_int_eq(PARSE("*-2\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_int_eq(PARSE("*65537\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "reply refused: an array's element count is negative, inconsistent "
                          "or over 65536");
    ck_assert_int_eq(PARSE("*1\r\n*4294967296\r\n:1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_int_eq(PARSE("*-1\r\n", &GROUP_LAG, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "XINFO GROUPS returned nil, expected an array of groups");
    /* Not RESP at all. */
    ck_assert_int_eq(PARSE("HTTP/1.1 400 Bad Request\r\n", &LIST, &v, &fb, err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error, got \"H\" as reply type byte");
    /* Nested deeper than hiredis reads. */
    ck_assert_int_eq(
        PARSE("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", &LIST, &v, &fb, err),
        -EPROTO);
    ck_assert_str_eq(err, "No support for nested multi bulk replies with depth > 7");
    /* Incomplete: waits for more. */
    ck_assert_int_eq(PARSE(":12", &LIST, &v, &fb, err), -EAGAIN);
    ck_assert_int_eq(PARSE("$100000000\r\nabc", &LIST, &v, &fb, err), -EAGAIN);
    /* Control characters in a server's error stay out of the log line. */
    ck_assert_int_eq(PARSE("-ERR a\x1b[31mred\x07\r\n", &LIST, &v, &fb, err), -EIO);
    ck_assert_str_eq(err, "ERR a?[31mred?");
    /* An empty error still says something. */
    ck_assert_int_eq(PARSE("-\r\n", &LIST, &v, &fb, err), -EIO);
    ck_assert_str_eq(err, "an empty error reply");
    /* A long error is cut. */
    char big[600];
    big[0] = '-';
    memset(big + 1, 'E', 500);
    memcpy(big + 501, "\r\n", 3);
    ck_assert_int_eq(parse(big, strlen(big), &LIST, &v, &fb, err), -EIO);
    ck_assert_uint_eq(strlen(err), 203);
    /* Over the byte bound. */
    size_t n = SB_REDIS_REPLY_MAX_BYTES + 1;
    char *huge = malloc(n);
    ck_assert_ptr_nonnull(huge);
    memset(huge, ':', n);
    ck_assert_int_eq(parse(huge, n, &LIST, &v, &fb, err), -EMSGSIZE);
    ck_assert_str_eq(err, "reply larger than 1048576 bytes");
    free(huge);
}
END_TEST

START_TEST(test_query_commands)
{
    const char *argv[3];
    ck_assert_int_eq(sb_redis_query_argv(&LIST, "jobs", argv), 2);
    ck_assert_str_eq(argv[0], "LLEN");
    ck_assert_str_eq(argv[1], "jobs");
    ck_assert_int_eq(sb_redis_query_argv(&ZSET, "z", argv), 2);
    ck_assert_str_eq(argv[0], "ZCARD");
    ck_assert_int_eq(sb_redis_query_argv(&STREAM, "s", argv), 2);
    ck_assert_str_eq(argv[0], "XLEN");
    ck_assert_int_eq(sb_redis_query_argv(&GROUP_LAG, "s", argv), 3);
    ck_assert_str_eq(argv[0], "XINFO");
    ck_assert_str_eq(argv[1], "GROUPS");
    ck_assert_str_eq(argv[2], "s");
    ck_assert_str_eq(sb_redis_query_command(&GROUP_PENDING), "XINFO GROUPS");
}
END_TEST

/* ---- create()'s option checks, through redis.so -------------------------------------------- */

static const sb_plugin_descriptor *plugin;
static void *plugin_handle;

static void setup_plugin(void)
{
    plugin = test_plugin_load_if_built("redis", SB_KIND_TRIGGER, &plugin_handle);
}

static void teardown_plugin(void)
{
    test_plugin_unload(plugin_handle);
    plugin = NULL;
    plugin_handle = NULL;
}

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
        {"key: jobs", NULL},
        {"url: \"redis://:pw@127.0.0.1:6380/2\", keys: [a, b, c], every: 1s", NULL},
        {"url: \"unix:/run/redis.sock?db=1\", key: z, kind: zset", NULL},
        {"url: \"redis://ci:pw@h\", key: s, kind: stream, group: g, measure: pending", NULL},
        {"url: \"redis://h\", password: pw, username: ci, key: s, kind: stream", NULL},
        {"kind: list", "key: required (or keys, a list)"},
        {"key: a, keys: [b]", "key and keys: give one of them, not both"},
        {"keys: []", "keys: an empty list"},
        {"keys: [a, b, a]", "keys: 'a' is listed twice"},
        {"key: \"\"", "key: an empty key"},
        {"keys: [a, \"\"]", "keys: an empty key"},
        {"key: a, kind: hash", "kind: expected list, zset or stream, got 'hash'"},
        {"key: a, group: g", "group: only with kind stream (this trigger reads a list)"},
        {"key: a, kind: stream, measure: lag", "measure: only with group (a stream's consumer "
                                               "group)"},
        {"key: a, kind: stream, group: g, measure: idle", "measure: expected lag or pending, got "
                                                          "'idle'"},
        {"key: a, url: \"redis://h:99999\"", "url: port '99999' is not a number 1-65535"},
        {"key: a, url: \"redis://:s3cret@h:0\"", "url: port '0' is not a number 1-65535"},
        {"key: a, username: ci", "username: needs a password (in url or password)"},
        {"key: a, password: \"\"", "password: empty (leave it out for no AUTH)"},
        {"key: a, every: 1ms", "every: must be at least 10ms"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char msg[256];
        int rc = create_with(cases[i].opts, msg, sizeof msg);
        if (!cases[i].err) {
            ck_assert_msg(rc == 0, "%s: refused: %s", cases[i].opts, msg);
            continue;
        }
        ck_assert_msg(rc < 0, "%s: accepted", cases[i].opts);
        ck_assert_msg(strcmp(msg, cases[i].err) == 0, "%s:\n  got  '%s'\n  want '%s'",
                      cases[i].opts, msg, cases[i].err);
        ck_assert_ptr_null(strstr(msg, "s3cret"));
    }
    /* 257 keys: over the bound. */
    char opts[4096] = "keys: [";
    for (int i = 0; i < 257; i++)
        snprintf(opts + strlen(opts), sizeof opts - strlen(opts), "%sk%d", i ? ", " : "", i);
    strcat(opts, "]");
    char msg[256];
    ck_assert_int_lt(create_with(opts, msg, sizeof msg), 0);
    ck_assert_str_eq(msg, "keys: 257 keys, at most 256");
}
END_TEST

static Suite *redis_suite(void)
{
    Suite *s = suite_create("redis");
    TCase *tc = tcase_create("url");
    tcase_add_test(tc, test_url_good);
    tcase_add_test(tc, test_url_bad);
    tcase_add_test(tc, test_url_bounds);
    suite_add_tcase(s, tc);
    tc = tcase_create("reply");
    tcase_add_test(tc, test_reply_counts);
    tcase_add_test(tc, test_reply_groups);
    tcase_add_test(tc, test_reply_hostile);
    tcase_add_test(tc, test_query_commands);
    suite_add_tcase(s, tc);
    tc = tcase_create("plugin");
    tcase_add_checked_fixture(tc, setup_plugin, teardown_plugin);
    tcase_add_test(tc, test_plugin_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(redis_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
