/*
 * test_log.c - the daemon's log lines (core/log.c): the text format, and log.format json (one
 * JSON object per line, valid JSON whatever a message holds: quotes, control characters, bytes
 * that are not UTF-8, a message longer than a line).
 */
#define _GNU_SOURCE
#include <check.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Writes one line with the logger and returns it (malloc'd, without its newline). */
static char *one_line(int json, sb_log_level level, const char *who, const char *msg)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ck_assert_ptr_nonnull(f);
    sb_logger lg;
    log_init(&lg, SB_LOG_DEBUG, f);
    lg.json = json;
    log_write(&lg, level, who, "%s", msg);
    fclose(f);
    ck_assert_uint_gt(len, 0);
    ck_assert_int_eq(buf[len - 1], '\n');
    ck_assert_ptr_null(memchr(buf, '\n', len - 1)); /* one line */
    buf[len - 1] = '\0';
    return buf;
}

START_TEST(test_text_line)
{
    char *l = one_line(0, SB_LOG_WARN, "web", "started 3");
    ck_assert_msg(strlen(l) > 24 && strcmp(l + 24, " warn  [web] started 3") == 0, "%s", l);
    free(l);
}
END_TEST

START_TEST(test_json_line)
{
    static const char *const messages[] = {
        "plain", "a \"quoted\" \\ path", "tab\there\x01\x7f", "caf\xc3\xa9 \xe2\x82\xac",
        "bad \xff\xfe utf-8 \xc3", "cut \xe2\x82",
    };
    static const char *const expected[] = {
        "plain", "a \"quoted\" \\ path", "tab\there\x01\x7f", "caf\xc3\xa9 \xe2\x82\xac",
        "bad \xef\xbf\xbd\xef\xbf\xbd utf-8 \xef\xbf\xbd", "cut \xef\xbf\xbd\xef\xbf\xbd",
    };
    for (size_t i = 0; i < sizeof messages / sizeof messages[0]; i++) {
        char *l = one_line(1, SB_LOG_INFO, "router \"a\"", messages[i]);
        cJSON *o = cJSON_Parse(l);
        ck_assert_msg(o != NULL, "not JSON: %s", l);
        ck_assert_str_eq(cJSON_GetObjectItem(o, "level")->valuestring, "info");
        ck_assert_str_eq(cJSON_GetObjectItem(o, "component")->valuestring, "router \"a\"");
        ck_assert_str_eq(cJSON_GetObjectItem(o, "message")->valuestring, expected[i]);
        const char *t = cJSON_GetObjectItem(o, "time")->valuestring;
        ck_assert_msg(strlen(t) == 24 && t[10] == 'T' && t[23] == 'Z', "time %s", t);
        cJSON_Delete(o);
        free(l);
    }
    /* Longer than a line: cut, still one valid JSON object. */
    char *big = malloc(10000);
    memset(big, '"', 9999);
    big[9999] = '\0';
    char *l = one_line(1, SB_LOG_ERROR, NULL, big);
    cJSON *o = cJSON_Parse(l);
    ck_assert_msg(o != NULL, "a long line is not JSON");
    ck_assert_str_eq(cJSON_GetObjectItem(o, "component")->valuestring, "scalebus");
    cJSON_Delete(o);
    free(l);
    free(big);
}
END_TEST

static void write_fields(sb_logger *lg, const log_field *f, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void write_fields(sb_logger *lg, const log_field *f, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite_fields(lg, SB_LOG_INFO, "workers", f, n, fmt, ap);
    va_end(ap);
}

/* A decision's line carries its fields: numbers as numbers, text escaped, absent text left out;
 * the text format shows the message only. */
START_TEST(test_json_fields)
{
    log_field f[] = {{"desired", NULL, 3, 1},
                     {"from", "per-two", 0, 0},
                     {"reason", "tick=7 \"quoted\" -> 4", 0, 0},
                     {"none", NULL, 0, 0},
                     {"inf", NULL, INFINITY, 1}};
    for (int json = 0; json <= 1; json++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *out = open_memstream(&buf, &len);
        sb_logger lg;
        log_init(&lg, SB_LOG_DEBUG, out);
        lg.json = json;
        write_fields(&lg, f, sizeof f / sizeof f[0], "desired %d from %s", 3, "per-two");
        fclose(out);
        if (!json) {
            ck_assert_ptr_nonnull(strstr(buf, "[workers] desired 3 from per-two\n"));
            ck_assert_ptr_null(strstr(buf, "reason"));
        } else {
            cJSON *o = cJSON_Parse(buf);
            ck_assert_msg(o != NULL, "not JSON: %s", buf);
            ck_assert_str_eq(cJSON_GetObjectItem(o, "message")->valuestring, "desired 3 from per-two");
            ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(o, "desired")));
            ck_assert(cJSON_GetObjectItem(o, "desired")->valuedouble == 3);
            ck_assert_str_eq(cJSON_GetObjectItem(o, "from")->valuestring, "per-two");
            ck_assert_str_eq(cJSON_GetObjectItem(o, "reason")->valuestring, "tick=7 \"quoted\" -> 4");
            ck_assert_ptr_null(cJSON_GetObjectItem(o, "none"));
            ck_assert(cJSON_IsNull(cJSON_GetObjectItem(o, "inf")));
            cJSON_Delete(o);
        }
        free(buf);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("log");
    tcase_add_test(tc, test_text_line);
    tcase_add_test(tc, test_json_line);
    tcase_add_test(tc, test_json_fields);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
