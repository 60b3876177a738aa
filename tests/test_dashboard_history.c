/*
 * test_dashboard_history.c - the dashboard's pieces without a browser: a scaler's history ring
 * (one point per change, at most one per 10 s step, bounded at 360, oldest dropped), its JSON,
 * the dashboard's routes, and the files built into the binary.
 */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dashboard/dashboard.h"
#include "dashboard/history.h"
#include "textbuf.h"

#define S(n) ((int64_t)(n) * 1000000000LL)

START_TEST(history_records_changes_only)
{
    history h = {0};
    history_record(&h, S(100), NAN, NAN); /* nothing known: no point */
    ck_assert_uint_eq(history_count(&h), 0);
    history_record(&h, S(100), 2, NAN);
    history_record(&h, S(200), 2, NAN); /* unchanged: no point */
    ck_assert_uint_eq(history_count(&h), 1);
    history_record(&h, S(300), 2, 2);
    ck_assert_uint_eq(history_count(&h), 2);
    const history_point *p = history_at(&h, 1);
    ck_assert(p->t_ns == S(300) && p->desired == 2 && p->running == 2);
    ck_assert(isnan(history_at(&h, 0)->running));
    history_free(&h);
    ck_assert_uint_eq(history_count(&h), 0);
}
END_TEST

START_TEST(history_one_point_per_step)
{
    history h = {0};
    history_record(&h, S(1000), 1, 1);
    history_record(&h, S(1003), 2, 1); /* within the step: the step's point takes it */
    history_record(&h, S(1009), 3, 2);
    ck_assert_uint_eq(history_count(&h), 1);
    const history_point *p = history_at(&h, 0);
    ck_assert(p->t_ns == S(1000) && p->desired == 3 && p->running == 2);
    history_record(&h, S(1010), 4, 2); /* the next step */
    ck_assert_uint_eq(history_count(&h), 2);
    history_record(&h, S(900), 5, 2); /* a wall clock set back: still the same point */
    ck_assert_uint_eq(history_count(&h), 2);
    ck_assert(history_at(&h, 1)->desired == 5);
    history_free(&h);
}
END_TEST

START_TEST(history_is_bounded)
{
    history h = {0};
    /* Changes every 10 s for 2 hours: 720 points, of which the newest 360 stay. */
    for (int i = 0; i < 720; i++)
        history_record(&h, S(10 * i), i, i % 2);
    ck_assert_uint_eq(history_count(&h), HISTORY_MAX_POINTS);
    ck_assert_uint_le(h.cap, HISTORY_MAX_POINTS);
    for (size_t i = 0; i < HISTORY_MAX_POINTS; i++) {
        const history_point *p = history_at(&h, i);
        ck_assert(p->desired == (double)(360 + i));
        ck_assert(p->t_ns == S(10 * (360 + (int64_t)i)));
    }
    history_free(&h);
}
END_TEST

START_TEST(history_json)
{
    history h = {0};
    history_record(&h, S(1700000000), 3, NAN);
    history_record(&h, S(1700000020), 3, 2.5);
    textbuf t = {0};
    history_render_json(&t, "pool\"<b>", &h, S(1700000030) + 123456789);
    ck_assert(!t.oom);
    cJSON *doc = cJSON_Parse(t.p);
    ck_assert_ptr_nonnull(doc);
    ck_assert_str_eq(cJSON_GetObjectItem(doc, "scaler")->valuestring, "pool\"<b>");
    ck_assert(cJSON_GetObjectItem(doc, "now")->valuedouble == 1700000030123.0);
    ck_assert_int_eq(cJSON_GetObjectItem(doc, "step_s")->valueint, 10);
    cJSON *points = cJSON_GetObjectItem(doc, "points");
    ck_assert_int_eq(cJSON_GetArraySize(points), 2);
    cJSON *p0 = cJSON_GetArrayItem(points, 0), *p1 = cJSON_GetArrayItem(points, 1);
    ck_assert(cJSON_GetArrayItem(p0, 0)->valuedouble == 1700000000000.0);
    ck_assert(cJSON_IsNull(cJSON_GetArrayItem(p0, 2)));
    ck_assert(cJSON_GetArrayItem(p1, 2)->valuedouble == 2.5);
    cJSON_Delete(doc);
    textbuf_reset(&t);
    history_render_json(&t, "idle", NULL, S(5));
    ck_assert_str_eq(t.p, "{\"scaler\":\"idle\",\"now\":5000,\"step_s\":10,\"points\":[]}");
    textbuf_free(&t);
    history_free(&h);
}
END_TEST

START_TEST(routes)
{
    dashboard_route r;
    dashboard_route_of("GET", "/", &r);
    ck_assert_int_eq(r.kind, DASHBOARD_ASSET);
    ck_assert_str_eq(r.asset->content_type, "text/html; charset=utf-8");
    dashboard_route_of("HEAD", "/dashboard.js", &r);
    ck_assert_int_eq(r.kind, DASHBOARD_ASSET);
    dashboard_route_of("POST", "/", &r);
    ck_assert_int_eq(r.kind, DASHBOARD_BAD_METHOD);
    dashboard_route_of("GET", "/scalers/pool-1.a_b/history", &r);
    ck_assert_int_eq(r.kind, DASHBOARD_HISTORY);
    ck_assert_str_eq(r.id, "pool-1.a_b");
    dashboard_route_of("POST", "/scalers/pool/history", &r);
    ck_assert_int_eq(r.kind, DASHBOARD_BAD_METHOD);
    const char *none[] = {"/scalers//history", "/scalers/a b/history", "/scalers/pool/history/",
                          "/scalers/pool", "/index.html", "/dashboard.js/", "/scalers/%3c/history"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        dashboard_route_of("GET", none[i], &r);
        ck_assert_msg(r.kind == DASHBOARD_NONE, "%s", none[i]);
    }
    char longpath[600];
    snprintf(longpath, sizeof longpath, "/scalers/%0300d/history", 0);
    dashboard_route_of("GET", longpath, &r);
    ck_assert_int_eq(r.kind, DASHBOARD_NONE); /* an id over 256 bytes */
}
END_TEST

START_TEST(assets_built_in)
{
    ck_assert_uint_eq(dashboard_nassets, 3);
    const dashboard_asset *page = dashboard_asset_of("/");
    ck_assert_ptr_nonnull(page);
    ck_assert_uint_eq(strlen((const char *)page->data), page->len);
    ck_assert_ptr_nonnull(strstr((const char *)page->data, "<script src=\"dashboard.js\">"));
    /* Nothing from outside: no absolute URL in any file. */
    for (size_t i = 0; i < dashboard_nassets; i++) {
        const char *text = (const char *)dashboard_assets[i].data;
        ck_assert_msg(!strstr(text, "http://") || strstr(text, "http://www.w3.org/2000/svg"),
                      "%s", dashboard_assets[i].path);
        ck_assert_msg(!strstr(text, "https://"), "%s", dashboard_assets[i].path);
        ck_assert_msg(!strstr(text, "innerHTML"), "%s", dashboard_assets[i].path);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dashboard");
    TCase *tc = tcase_create("history");
    tcase_add_test(tc, history_records_changes_only);
    tcase_add_test(tc, history_one_point_per_step);
    tcase_add_test(tc, history_is_bounded);
    tcase_add_test(tc, history_json);
    tcase_add_test(tc, routes);
    tcase_add_test(tc, assets_built_in);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
