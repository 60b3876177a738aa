/*
 * test_httpload_parse.c - the reply parsers of the HTTP-load triggers: sb_prometheus_parse
 * (triggers/prometheus), sb_haproxy_parse (triggers/haproxy) and sb_nginx_parse (triggers/nginx).
 *
 * Real replies come from tests/httpload/ (captured from Prometheus 2.42, HAProxy 2.6 and nginx
 * 1.22 as tests/test_httpload.sh runs them; see tests/httpload/README.md); around them, truncated
 * and garbage input, fields of the wrong type, huge numbers and CSV quoting.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy_parse.h"
#include "nginx_parse.h"
#include "prometheus_parse.h"

/* ---- Fixtures ----------------------------------------------------------------------------- */

static char *fixture(const char *name, size_t *len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tests/httpload/%s", SB_SOURCE_DIR, name);
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    char *buf = malloc(1 << 20);
    ck_assert_ptr_nonnull(buf);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* The parser sees exactly len bytes: a copy with no NUL after it, so a read past the end is
 * caught by ASan and valgrind. */
static char *exact(const char *s, size_t len)
{
    char *c = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(c);
    memcpy(c, s, len);
    return c;
}

static const char *label(const sb_prom_series *s, const char *key)
{
    for (size_t i = 0; i < s->nlabels; i++)
        if (strcmp(s->labels[i].key, key) == 0)
            return s->labels[i].value;
    return NULL;
}

/* ---- Prometheus --------------------------------------------------------------------------- */

static int prom(const char *text, sb_prom_result **r, char *err)
{
    char *c = exact(text, strlen(text));
    int rc = sb_prometheus_parse(c, strlen(text), r, err, 256);
    free(c);
    return rc;
}

static int prom_fixture(const char *name, sb_prom_result **r, char *err)
{
    size_t len;
    char *text = fixture(name, &len);
    char *c = exact(text, len);
    int rc = sb_prometheus_parse(c, len, r, err, 256);
    free(c);
    free(text);
    return rc;
}

START_TEST(test_prom_vector)
{
    sb_prom_result *r;
    char err[256];
    ck_assert_int_eq(prom_fixture("prom_vector.json", &r, err), 0);
    ck_assert_int_eq(r->is_scalar, 0);
    ck_assert_uint_eq(r->nseries, 2);
    const sb_prom_series *a = &r->series[0], *b = &r->series[1];
    ck_assert_uint_eq(a->nlabels, 5);
    ck_assert_uint_eq(a->labels_cut, 0);
    /* The reply's order: Prometheus sorts labels by name, __name__ first. */
    ck_assert_str_eq(a->labels[0].key, "__name__");
    ck_assert_str_eq(a->labels[0].value, "inflight");
    ck_assert_str_eq(label(a, "route"), "/a");
    ck_assert_str_eq(label(a, "method"), "GET");
    ck_assert_double_eq(a->value, 3);
    ck_assert_str_eq(label(b, "route"), "/b");
    ck_assert_double_eq(b->value, 7);
    sb_prom_result_free(r);
}
END_TEST

START_TEST(test_prom_no_labels_scalar_empty)
{
    sb_prom_result *r;
    char err[256];
    ck_assert_int_eq(prom_fixture("prom_vector_nolabels.json", &r, err), 0);
    ck_assert_uint_eq(r->nseries, 1);
    ck_assert_uint_eq(r->series[0].nlabels, 0);
    ck_assert_double_eq(r->series[0].value, 10);
    sb_prom_result_free(r);

    ck_assert_int_eq(prom_fixture("prom_scalar.json", &r, err), 0);
    ck_assert_int_eq(r->is_scalar, 1);
    ck_assert_uint_eq(r->nseries, 1);
    ck_assert_uint_eq(r->series[0].nlabels, 0);
    ck_assert_double_eq(r->series[0].value, 10);
    sb_prom_result_free(r);

    ck_assert_int_eq(prom_fixture("prom_empty.json", &r, err), 0);
    ck_assert_uint_eq(r->nseries, 0);
    sb_prom_result_free(r);
}
END_TEST

START_TEST(test_prom_special_values)
{
    sb_prom_result *r;
    char err[256];
    ck_assert_int_eq(prom_fixture("prom_nan.json", &r, err), 0);
    ck_assert(isnan(r->series[0].value));
    sb_prom_result_free(r);
    ck_assert_int_eq(prom_fixture("prom_inf.json", &r, err), 0);
    ck_assert_uint_eq(r->nseries, 2);
    ck_assert(isinf(r->series[0].value) && r->series[0].value > 0);
    /* A division drops __name__. */
    ck_assert_ptr_null(label(&r->series[0], "__name__"));
    sb_prom_result_free(r);
    ck_assert_int_eq(prom_fixture("prom_huge.json", &r, err), 0);
    ck_assert_double_eq(r->series[0].value, 1e308);
    sb_prom_result_free(r);

    /* Past a double: an infinity, for the caller to refuse. */
    ck_assert_int_eq(prom("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                          "\"result\":[1,\"1e999\"]}}",
                          &r, err),
                     0);
    ck_assert(isinf(r->series[0].value));
    sb_prom_result_free(r);
    ck_assert_int_eq(prom("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                          "\"result\":[1,\"-Inf\"]}}",
                          &r, err),
                     0);
    ck_assert(isinf(r->series[0].value) && r->series[0].value < 0);
    sb_prom_result_free(r);
    /* A number instead of a string (compatible servers) is taken. */
    ck_assert_int_eq(prom("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
                          "\"result\":[1,4.5]}}",
                          &r, err),
                     0);
    ck_assert_double_eq(r->series[0].value, 4.5);
    sb_prom_result_free(r);
}
END_TEST

START_TEST(test_prom_server_errors)
{
    sb_prom_result *r = (sb_prom_result *)1;
    char err[256];
    ck_assert_int_eq(prom_fixture("prom_bad_data.json", &r, err), -EREMOTEIO);
    ck_assert_ptr_null(r);
    ck_assert_str_eq(err, "bad_data: invalid parameter \"query\": 1:5: parse error: unclosed "
                          "left parenthesis");
    ck_assert_int_eq(prom_fixture("prom_exec_error.json", &r, err), -EREMOTEIO);
    ck_assert_msg(strncmp(err, "execution: found duplicate series", 33) == 0, "%s", err);
    /* Control characters in the server's words never reach a log line. */
    ck_assert_int_eq(
        prom("{\"status\":\"error\",\"errorType\":\"x\\ny\",\"error\":\"a\\r\\nb\"}", &r, err),
        -EREMOTEIO);
    ck_assert_str_eq(err, "x y: a  b");
    /* No type, no text. */
    ck_assert_int_eq(prom("{\"status\":\"error\",\"errorType\":5}", &r, err), -EREMOTEIO);
    ck_assert_str_eq(err, "error: (no error text)");
}
END_TEST

START_TEST(test_prom_wrong_results)
{
    sb_prom_result *r;
    char err[256];
    ck_assert_int_eq(prom_fixture("prom_matrix.json", &r, err), -EBADMSG);
    ck_assert_msg(strstr(err, "range vector") != NULL, "%s", err);
    ck_assert_int_eq(prom_fixture("prom_string.json", &r, err), -EBADMSG);
    ck_assert_str_eq(err, "the query returned a string, not a number");
}
END_TEST

START_TEST(test_prom_garbage_and_truncated)
{
    sb_prom_result *r;
    char err[256];
    ck_assert_int_eq(sb_prometheus_parse(NULL, 0, &r, err, sizeof err), -EBADMSG);
    ck_assert_str_eq(err, "empty reply");
    ck_assert_int_eq(prom("<html>502 Bad Gateway</html>", &r, err), -EBADMSG);
    ck_assert_msg(strncmp(err, "not JSON", 8) == 0, "%s", err);
    ck_assert_int_eq(prom("# HELP inflight x\ninflight 3\n", &r, err), -EBADMSG);
    ck_assert_int_eq(prom("[1,2,3]", &r, err), -EBADMSG);
    ck_assert_str_eq(err, "not a Prometheus API reply (no \"status\" field)");
    ck_assert_int_eq(prom("\"success\"", &r, err), -EBADMSG);
    ck_assert_int_eq(prom("{\"status\":\"maybe\"}", &r, err), -EBADMSG);
    ck_assert_int_eq(prom("{\"status\":\"success\"}", &r, err), -EBADMSG);
    ck_assert_int_eq(prom("{\"status\":\"success\",\"data\":{\"resultType\":\"tree\","
                          "\"result\":[]}}",
                          &r, err),
                     -EBADMSG);

    /* Every prefix of a real reply is refused cleanly (never read past its end). */
    size_t len;
    char *text = fixture("prom_vector.json", &len);
    for (size_t n = 0; n < len; n++) {
        char *c = exact(text, n);
        int rc = sb_prometheus_parse(c, n, &r, err, sizeof err);
        free(c);
        ck_assert_msg(rc == -EBADMSG, "prefix %zu: %d", n, rc);
    }
    free(text);

    /* Deep nesting stops at cJSON's limit, without a crash. */
    size_t depth = 100000;
    char *deep = malloc(depth);
    memset(deep, '[', depth);
    ck_assert_int_eq(sb_prometheus_parse(deep, depth, &r, err, sizeof err), -EBADMSG);
    free(deep);
}
END_TEST

START_TEST(test_prom_wrong_types)
{
    sb_prom_result *r;
    char err[256];
    static const char *const bad[] = {
        /* result not an array */
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":{}}}",
        /* a series not an object, or no metric */
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[5]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"value\":[1,"
        "\"1\"]}]}}",
        /* a label value that is not a string */
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{"
        "\"a\":1},\"value\":[1,\"1\"]}]}}",
        /* values: missing, not a pair, time not a number, value not a number */
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{}}"
        "]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[\"1\",\"1\"]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1,\"one\"]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1,\"\"]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1,\"0x10\"]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1,\" 1\"]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[{\"metric\":{},"
        "\"value\":[1,null]}]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":\"1\"}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\",\"result\":[1,\"2\",3]}}",
        "{\"status\":\"success\",\"data\":{\"resultType\":5,\"result\":[]}}",
        "{\"status\":\"success\",\"data\":[]}",
        "{\"status\":7}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = (sb_prom_result *)1;
        ck_assert_msg(prom(bad[i], &r, err) == -EBADMSG, "case %zu accepted", i);
        ck_assert_ptr_null(r);
        ck_assert_msg(err[0] != '\0' && strchr(err, '\n') == NULL, "case %zu: '%s'", i, err);
    }
}
END_TEST

START_TEST(test_prom_limits)
{
    sb_prom_result *r;
    char err[256];
    /* 20 labels: the first SB_MAX_LABELS are kept, the rest counted. */
    char buf[4096];
    size_t n = (size_t)snprintf(buf, sizeof buf,
                                "{\"status\":\"success\",\"data\":{\"resultType\":"
                                "\"vector\",\"result\":[{\"metric\":{");
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"l%02d\":\"v%d\"", i ? "," : "", i, i);
    snprintf(buf + n, sizeof buf - n, "},\"value\":[1,\"2\"]}]}}");
    ck_assert_int_eq(prom(buf, &r, err), 0);
    ck_assert_uint_eq(r->series[0].nlabels, SB_MAX_LABELS);
    ck_assert_uint_eq(r->series[0].labels_cut, 20 - SB_MAX_LABELS);
    ck_assert_str_eq(r->series[0].labels[SB_MAX_LABELS - 1].key, "l13");
    sb_prom_result_free(r);

    /* More series than SB_PROM_MAX_SERIES. */
    size_t cap = 64 * (SB_PROM_MAX_SERIES + 2) + 128;
    char *big = malloc(cap);
    n = (size_t)snprintf(
        big, cap, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":[");
    for (int i = 0; i <= SB_PROM_MAX_SERIES; i++)
        n += (size_t)snprintf(big + n, cap - n, "%s{\"metric\":{\"i\":\"%d\"},\"value\":[1,\"1\"]}",
                              i ? "," : "", i);
    snprintf(big + n, cap - n, "]}}");
    ck_assert_int_eq(prom(big, &r, err), -E2BIG);
    ck_assert_msg(strstr(err, "1001 series") != NULL, "%s", err);
    free(big);

    /* A long error text is cut, never overflowing err. */
    char *longerr = malloc(20000);
    n = (size_t)snprintf(longerr, 20000, "{\"status\":\"error\",\"errorType\":\"t\",\"error\":\"");
    memset(longerr + n, 'x', 15000);
    snprintf(longerr + n + 15000, 20000 - n - 15000, "\"}");
    char small[64];
    char *c = exact(longerr, strlen(longerr));
    ck_assert_int_eq(sb_prometheus_parse(c, strlen(longerr), &r, small, sizeof small), -EREMOTEIO);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
    free(c);
    free(longerr);
}
END_TEST

/* ---- HAProxy ------------------------------------------------------------------------------ */

static int hap(const char *text, const char *px, const char *sv, const char *col, double *v,
               char *err)
{
    char *c = exact(text, strlen(text));
    int rc = sb_haproxy_parse(c, strlen(text), px, sv, col, v, err, 256);
    free(c);
    return rc;
}

START_TEST(test_hap_real)
{
    size_t len;
    char *csv = fixture("haproxy_stats.csv", &len);
    double v = -1;
    char err[256];
    /* slow,BACKEND,3,3,4,4,10,8,...: 3 queued, 4 current sessions. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "slow", NULL, "qcur", &v, err, sizeof err), 0);
    ck_assert_double_eq(v, 3);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "slow", NULL, "scur", &v, err, sizeof err), 0);
    ck_assert_double_eq(v, 4);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "slow", NULL, "stot", &v, err, sizeof err), 0);
    ck_assert_double_eq(v, 8);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "slow", "s1", "scur", &v, err, sizeof err), 0);
    ck_assert_double_eq(v, 1);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "web", "n1", "slim", &v, err, sizeof err), 0);
    ck_assert_double_eq(v, 2);
    /* A column far to the right, after the quoted field of checked/c1. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "checked", "c1", "check_rise", &v, err, sizeof err),
                     0);
    ck_assert_double_eq(v, 2);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "checked", "c1", "check_code", &v, err, sizeof err),
                     0);
    ck_assert_double_eq(v, 503);
    /* The quoted field itself is text. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "checked", "c1", "last_chk", &v, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strstr(err, "Bad, \"really\" down") != NULL, "%s", err);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "checked", NULL, "status", &v, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "checked/BACKEND: status=\"DOWN\" is not a number");
    /* Servers have no qcur limit: slim is empty for n2. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "web", "n2", "slim", &v, err, sizeof err),
                     -ENODATA);
    ck_assert_msg(strstr(err, "\"slim\" is empty") != NULL, "%s", err);
    /* No such row or column: the error names what there is. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "nope", NULL, "scur", &v, err, sizeof err),
                     -ENOENT);
    ck_assert_str_eq(err, "no backend \"nope\" in the stats (backends: web, slow, checked)");
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "web", "n9", "scur", &v, err, sizeof err), -ENOENT);
    ck_assert_str_eq(err, "no server web/n9 in the stats (servers of web: n1, n2)");
    /* The stats frontend has no BACKEND row. */
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "stats", NULL, "scur", &v, err, sizeof err),
                     -ENOENT);
    ck_assert_int_eq(sb_haproxy_parse(csv, len, "web", NULL, "sessions", &v, err, sizeof err),
                     -ENOENT);
    ck_assert_msg(strncmp(err, "no column \"sessions\"", 20) == 0, "%s", err);

    /* Every prefix: a clean answer, never a read past the end. */
    for (size_t n = 0; n < len; n += 7) {
        char *c = exact(csv, n);
        int rc = sb_haproxy_parse(c, n, "checked", NULL, "agg_check_status", &v, err, sizeof err);
        free(c);
        ck_assert_msg(rc == 0 || rc == -EBADMSG || rc == -ENOENT || rc == -ENODATA || rc == -EINVAL,
                      "prefix %zu: %d", n, rc);
    }
    free(csv);
}
END_TEST

START_TEST(test_hap_quotes)
{
    double v;
    char err[256];
    const char *csv = "# pxname,svname,desc,scur\n"
                      "\"we,b\",BACKEND,\"a, \"\"b\"\"\nline two\",5\n"
                      "web,BACKEND,\"\",7\r\n"
                      "\"q\"\"x\",\"s1\",x,\"12\"\n";
    ck_assert_int_eq(hap(csv, "we,b", NULL, "scur", &v, err), 0);
    ck_assert_double_eq(v, 5);
    ck_assert_int_eq(hap(csv, "web", NULL, "scur", &v, err), 0);
    ck_assert_double_eq(v, 7);
    ck_assert_int_eq(hap(csv, "q\"x", "s1", "scur", &v, err), 0);
    ck_assert_double_eq(v, 12);
    ck_assert_int_eq(hap(csv, "web", NULL, "desc", &v, err), -ENODATA);
    /* A quoted field that never ends. */
    ck_assert_int_eq(hap("# pxname,svname,scur\n\"web,BACKEND,3\n", "web", NULL, "scur", &v, err),
                     -EBADMSG);
    ck_assert_str_eq(err, "malformed stats CSV: a quoted field never ends");
    /* Blank lines and no final newline. */
    ck_assert_int_eq(hap("# pxname,svname,scur\n\n\nweb,BACKEND,3", "web", NULL, "scur", &v, err),
                     0);
    ck_assert_double_eq(v, 3);
    /* A row shorter than the header. */
    ck_assert_int_eq(hap("# pxname,svname,a,scur\nweb,BACKEND,1\n", "web", NULL, "scur", &v, err),
                     -EBADMSG);
    ck_assert_msg(strstr(err, "2 fields") == NULL && strstr(err, "3 fields") != NULL, "%s", err);
}
END_TEST

START_TEST(test_hap_garbage_numbers)
{
    double v;
    char err[256];
    ck_assert_int_eq(
        hap("<html><body>Statistics Report</body></html>", "web", NULL, "scur", &v, err), -EBADMSG);
    ck_assert_msg(strstr(err, ";csv") != NULL, "%s", err);
    ck_assert_int_eq(hap("", "web", NULL, "scur", &v, err), -EBADMSG);
    ck_assert_int_eq(hap("# a,b,c\nweb,BACKEND,1\n", "web", NULL, "c", &v, err), -EBADMSG);
    ck_assert_int_eq(hap("# pxname,svname,scur", "web", NULL, "scur", &v, err), -ENOENT);
    ck_assert_str_eq(err, "no backend \"web\" in the stats (backends: none)");

    const char *h = "# pxname,svname,scur\nweb,BACKEND,";
    char buf[512];
    static const struct {
        const char *field;
        int rc;
        double v;
    } cases[] = {
        {"18446744073709551615", 0, 18446744073709551615.0},
        {"99999999999999999999999999999999", 0, 1e32},
        {"1e999", -ERANGE, 0},
        {"-3", 0, -3},
        {"2.5", 0, 2.5},
        {"nan", -EINVAL, 0},
        {"inf", -EINVAL, 0},
        {"0x10", -EINVAL, 0},
        {"12abc", -EINVAL, 0},
        {" 1", -EINVAL, 0},
        {"-", -EINVAL, 0},
        {"1-2", -EINVAL, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        snprintf(buf, sizeof buf, "%s%s\n", h, cases[i].field);
        v = -12345;
        int rc = hap(buf, "web", NULL, "scur", &v, err);
        ck_assert_msg(rc == cases[i].rc, "%s: %d (%s)", cases[i].field, rc, err);
        if (rc == 0)
            ck_assert_double_eq_tol(v, cases[i].v, fabs(cases[i].v) * 1e-12);
    }
    /* A field longer than a name is never a number, and a name that long matches nothing. */
    char *huge = malloc(100000);
    size_t n = (size_t)snprintf(huge, 100000, "%s", h);
    memset(huge + n, '9', 90000);
    huge[n + 90000] = '\0';
    ck_assert_int_eq(hap(huge, "web", NULL, "scur", &v, err), -EINVAL);
    ck_assert_uint_lt(strlen(err), 256);
    free(huge);
}
END_TEST

/* ---- nginx -------------------------------------------------------------------------------- */

static int ngx(const char *text, sb_nginx_status *st, char *err)
{
    char *c = exact(text, strlen(text));
    int rc = sb_nginx_parse(c, strlen(text), st, err, 256);
    free(c);
    return rc;
}

START_TEST(test_ngx_real)
{
    size_t len;
    char *text = fixture("nginx_status.txt", &len);
    sb_nginx_status st;
    char err[256];
    char *c = exact(text, len);
    ck_assert_int_eq(sb_nginx_parse(c, len, &st, err, sizeof err), 0);
    free(c);
    /* Active connections: 2 / 23 23 267 / Reading: 0 Writing: 1 Waiting: 1 */
    ck_assert_uint_eq(st.active, 2);
    ck_assert_uint_eq(st.accepts, 23);
    ck_assert_uint_eq(st.handled, 23);
    ck_assert_uint_eq(st.requests, 267);
    ck_assert_uint_eq(st.reading, 0);
    ck_assert_uint_eq(st.writing, 1);
    ck_assert_uint_eq(st.waiting, 1);
    /* Every shorter prefix that cuts a word or drops one is refused. */
    for (size_t n = 0; n + 2 < len; n++) {
        c = exact(text, n);
        int rc = sb_nginx_parse(c, n, &st, err, sizeof err);
        free(c);
        ck_assert_msg(rc == -EBADMSG, "prefix %zu: %d", n, rc);
    }
    free(text);
}
END_TEST

START_TEST(test_ngx_variants)
{
    sb_nginx_status st;
    char err[256];
    /* CRLF, tabs, no final newline. */
    ck_assert_int_eq(ngx("Active connections: 1\r\nserver accepts handled requests\r\n\t5 6 7\r\n"
                         "Reading: 1 Writing: 2 Waiting: 3",
                         &st, err),
                     0);
    ck_assert_uint_eq(st.requests, 7);
    ck_assert_uint_eq(st.waiting, 3);
    /* A fork's extra column (Tengine's request_time). */
    ck_assert_int_eq(ngx("Active connections: 1 \nserver accepts handled requests request_time\n"
                         " 5 6 7 99\nReading: 0 Writing: 1 Waiting: 0 \n",
                         &st, err),
                     0);
    ck_assert_uint_eq(st.handled, 6);
    ck_assert_uint_eq(st.requests, 7);
    /* Huge numbers: the largest 64-bit count, and one past it. */
    ck_assert_int_eq(ngx("Active connections: 18446744073709551615\nserver accepts handled "
                         "requests\n 1 1 18446744073709551615\nReading: 0 Writing: 0 Waiting: 0\n",
                         &st, err),
                     0);
    ck_assert_uint_eq(st.active, UINT64_MAX);
    ck_assert_uint_eq(st.requests, UINT64_MAX);
    ck_assert_int_eq(ngx("Active connections: 18446744073709551616\nserver accepts handled "
                         "requests\n 1 1 1\nReading: 0 Writing: 0 Waiting: 0\n",
                         &st, err),
                     -ERANGE);
    ck_assert_str_eq(err, "stub_status: the active count 18446744073709551616 is out of range");
}
END_TEST

START_TEST(test_ngx_garbage)
{
    sb_nginx_status st;
    char err[256];
    static const struct {
        const char *text;
        const char *err;
    } cases[] = {
        {"", "not an nginx stub_status page: it is empty"},
        {"<html>\n<head><title>404 Not Found</title>",
         "not an nginx stub_status page (it starts \"<html> <head><title>404 \")"},
        {"Active connections: -1\n", NULL},
        {"Active connections: 1\nserver accepts handled\n 1 2\n", NULL},
        {"Active connections: 1\nserver accepts handled requests\n 1 2 x\n", NULL},
        {"Active connections: 1\nserver accepts handled requests\n 1 2 3\nReading: 0 Writing: 0 "
         "Waiting: 0\ntrailing words",
         "not an nginx stub_status page: unexpected \"trailing\" at byte 94 after the last count"},
        {"Active connections: 1\nserver handled accepts requests\n 1 2 3\n", NULL},
        {"Active connections: 1\nserver accepts handled requests\n 1 2 3\nWriting: 0\n",
         "not an nginx stub_status page: expected \"Reading:\" at byte 61, found \"Writing:\""},
        {"Active connections: 1\nserver accepts handled requests a b c d e f g h i j k l m n o p"
         " q\n",
         "not an nginx stub_status page: too many columns after \"server\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = ngx(cases[i].text, &st, err);
        ck_assert_msg(rc == -EBADMSG, "case %zu: %d", i, rc);
        if (cases[i].err)
            ck_assert_str_eq(err, cases[i].err);
        else
            ck_assert_msg(strncmp(err, "not an nginx stub_status page", 29) == 0, "%zu: %s", i,
                          err);
    }
    /* A NUL in the page is not a blank. */
    static const char nul[] = "Active connections: 1\0\nserver accepts handled requests\n 1 2 3\n"
                              "Reading: 0 Writing: 0 Waiting: 0\n";
    char *c = exact(nul, sizeof nul - 1);
    ck_assert_int_eq(sb_nginx_parse(c, sizeof nul - 1, &st, err, sizeof err), -EBADMSG);
    free(c);
    /* A megabyte of digits: a clean range error. */
    char *big = malloc(1 << 20);
    memcpy(big, "Active connections: ", 20);
    memset(big + 20, '7', (1 << 20) - 20);
    ck_assert_int_eq(sb_nginx_parse(big, 1 << 20, &st, err, sizeof err), -ERANGE);
    ck_assert_uint_lt(strlen(err), 256);
    free(big);
}
END_TEST

/* Words quoted from a reply never bring a line break or a control character into an error. */
START_TEST(test_errors_one_line)
{
    char err[256];
    sb_prom_result *r;
    ck_assert_int_eq(prom("{\"status\":\"a\\nb\\u0001\"}", &r, err), -EBADMSG);
    ck_assert_str_eq(err, "unknown status \"a?b?\"");
    ck_assert_int_eq(prom("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
                          "[{\"metric\":{\"x\\ny\":1},\"value\":[1,\"1\"]}]}}",
                          &r, err),
                     -EBADMSG);
    ck_assert_str_eq(err, "series 1: the label \"x?y\" is not a string");
    double v;
    ck_assert_int_eq(
        hap("# pxname,svname,scur\nweb,BACKEND,\"1\n2\"\n", "web", NULL, "scur", &v, err), -EINVAL);
    ck_assert_str_eq(err, "web/BACKEND: scur=\"1?2\" is not a number");
    ck_assert_int_eq(
        hap("# pxname,svname,scur\n\"a\tb\",BACKEND,1\n", "web", NULL, "scur", &v, err), -ENOENT);
    ck_assert_str_eq(err, "no backend \"web\" in the stats (backends: a?b)");
    sb_nginx_status st;
    ck_assert_int_eq(ngx("Active connections: 1\x01\n", &st, err), -EBADMSG);
    ck_assert_str_eq(err,
                     "not an nginx stub_status page: the active count \"1?\" at byte 20 is not "
                     "a number");
}
END_TEST

static Suite *httpload_parse_suite(void)
{
    Suite *s = suite_create("httpload_parse");
    TCase *p = tcase_create("prometheus");
    tcase_add_test(p, test_prom_vector);
    tcase_add_test(p, test_prom_no_labels_scalar_empty);
    tcase_add_test(p, test_prom_special_values);
    tcase_add_test(p, test_prom_server_errors);
    tcase_add_test(p, test_prom_wrong_results);
    tcase_add_test(p, test_prom_garbage_and_truncated);
    tcase_add_test(p, test_prom_wrong_types);
    tcase_add_test(p, test_prom_limits);
    suite_add_tcase(s, p);
    TCase *h = tcase_create("haproxy");
    tcase_add_test(h, test_hap_real);
    tcase_add_test(h, test_hap_quotes);
    tcase_add_test(h, test_hap_garbage_numbers);
    suite_add_tcase(s, h);
    TCase *n = tcase_create("nginx");
    tcase_add_test(n, test_ngx_real);
    tcase_add_test(n, test_ngx_variants);
    tcase_add_test(n, test_ngx_garbage);
    suite_add_tcase(s, n);
    TCase *e = tcase_create("errors");
    tcase_add_test(e, test_errors_one_line);
    suite_add_tcase(s, e);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(httpload_parse_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
