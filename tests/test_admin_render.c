/*
 * test_admin_render.c - the admin endpoint's pieces without a socket: request routing, the
 * bearer token check, the Prometheus text rendering, and the `admin:` section of a pipeline file
 * (defaults, off, errors at file:line:col, a token's text never in a message).
 */
#define _GNU_SOURCE
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "textbuf.h"

START_TEST(routes_get_paths)
{
    admin_route r;
    admin_route_of("GET", "/healthz", &r);
    ck_assert_int_eq(r.kind, ADMIN_HEALTHZ);
    admin_route_of("HEAD", "/readyz", &r);
    ck_assert_int_eq(r.kind, ADMIN_READYZ);
    admin_route_of("GET", "/metrics", &r);
    ck_assert_int_eq(r.kind, ADMIN_METRICS);
    admin_route_of("GET", "/pipelines", &r);
    ck_assert_int_eq(r.kind, ADMIN_PIPELINES);
    admin_route_of("POST", "/metrics", &r);
    ck_assert_int_eq(r.kind, ADMIN_BAD_METHOD);
    ck_assert_str_eq(r.allow, "GET, HEAD");
    admin_route_of("GET", "/metrics/", &r);
    ck_assert_int_eq(r.kind, ADMIN_NOT_FOUND);
    admin_route_of("GET", "/", &r);
    ck_assert_int_eq(r.kind, ADMIN_NOT_FOUND);
}
END_TEST

START_TEST(routes_ids)
{
    admin_route r;
    admin_route_of("POST", "/scalers/web-1.a_b/pause", &r);
    ck_assert_int_eq(r.kind, ADMIN_PAUSE);
    ck_assert_str_eq(r.id, "web-1.a_b");
    admin_route_of("POST", "/scalers/web/resume", &r);
    ck_assert_int_eq(r.kind, ADMIN_RESUME);
    admin_route_of("POST", "/scalers/web/scale", &r);
    ck_assert_int_eq(r.kind, ADMIN_SCALE);
    admin_route_of("POST", "/triggers/jobs/readings", &r);
    ck_assert_int_eq(r.kind, ADMIN_READINGS);
    ck_assert_str_eq(r.id, "jobs");
    admin_route_of("GET", "/triggers/jobs/readings", &r);
    ck_assert_int_eq(r.kind, ADMIN_BAD_METHOD);
    ck_assert_str_eq(r.allow, "POST");
    /* Not ids the file allows, or not one segment: no route. */
    const char *bad[] = {"/scalers//pause", "/scalers/a%2Fb/pause", "/scalers/a/b/pause",
                         "/scalers/web/stop", "/scalers/web/pause/", "/scalers/web",
                         "/triggers/jobs/reading", "/triggers/j\xc3\xa9/readings",
                         "/scalers/../pause"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        admin_route_of("POST", bad[i], &r);
        if (strcmp(bad[i], "/scalers/../pause") == 0) {
            /* ".." is made of id characters: it names a scaler that does not exist (404). */
            ck_assert_int_eq(r.kind, ADMIN_PAUSE);
            continue;
        }
        ck_assert_msg(r.kind == ADMIN_NOT_FOUND, "%s routed to %d", bad[i], r.kind);
    }
    /* An id longer than ADMIN_ID_MAX is refused, not cut. */
    char longpath[ADMIN_ID_MAX + 64];
    snprintf(longpath, sizeof longpath, "/scalers/%0*d/pause", ADMIN_ID_MAX + 1, 0);
    admin_route_of("POST", longpath, &r);
    ck_assert_int_eq(r.kind, ADMIN_NOT_FOUND);
}
END_TEST

START_TEST(token_checks)
{
    ck_assert(admin_token_matches("Bearer s3cret", "s3cret"));
    ck_assert(admin_token_matches("bearer s3cret", "s3cret"));
    ck_assert(!admin_token_matches("Bearer s3cre", "s3cret"));
    ck_assert(!admin_token_matches("Bearer s3cretX", "s3cret"));
    ck_assert(!admin_token_matches("Bearer ", "s3cret"));
    ck_assert(!admin_token_matches("Basic s3cret", "s3cret"));
    ck_assert(!admin_token_matches("s3cret", "s3cret"));
    ck_assert(!admin_token_matches(NULL, "s3cret"));
}
END_TEST

static daemon_view view(const char *id, const char *type, sb_kind kind)
{
    daemon_view v = {.id = id, .type = type, .kind = kind, .running = 1, .desired = NAN,
                     .running_count = NAN, .override_desired = NAN, .last_value = NAN,
                     .last_reason = "", .last_error = "", .last_action = ""};
    return v;
}

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return 1;
    return 0;
}

START_TEST(metrics_text)
{
    daemon_view v[4];
    v[0] = view("jobs", "push", SB_KIND_TRIGGER);
    v[0].readings = 12;
    v[0].errors = 2;
    v[1] = view("per-one", "target", SB_KIND_CONNECTOR);
    v[1].decisions_up = 3;
    v[1].decisions_down = 1;
    v[2] = view("pool", "process", SB_KIND_SCALER);
    v[2].desired = 4;
    v[2].running_count = 3;
    v[2].actions_done = 5;
    v[2].actions_failed = 1;
    daemon_histogram h = {.count = 3, .sum = 0.25};
    h.bucket[1] = 1; /* <= 0.0025 */
    h.bucket[6] = 1; /* <= 0.1 */
    v[2].action_latency = &h; /* one more above every bound */
    v[2].paused = 1;
    v[3] = view("odd\"id\\x", "process", SB_KIND_SCALER); /* desired unknown: no sample */
    daemon_stats bus = {.published = 10, .delivered = 9, .coalesced = 1, .dropped = 0};
    daemon_admin_stats as = {.ready = 1, .components = 4, .started = 4, .reloads_ok = 2,
                             .reloads_refused = 1};
    textbuf t = {0};
    admin_render_metrics(&t, v, 4, &bus, &as, "1.2.3");
    ck_assert(!t.oom);
    textbuf_putn(&t, "", 1);
    const char *m = t.p;
    ck_assert(has_line(m, "scalebus_build_info{version=\"1.2.3\"} 1"));
    ck_assert(has_line(m, "# TYPE scalebus_trigger_readings_total counter"));
    ck_assert(has_line(m, "scalebus_trigger_readings_total{trigger=\"jobs\",type=\"push\"} 12"));
    ck_assert(has_line(m, "scalebus_trigger_errors_total{trigger=\"jobs\",type=\"push\"} 2"));
    ck_assert(has_line(m, "scalebus_connector_decisions_total{connector=\"per-one\",type=\"target\","
                          "direction=\"up\"} 3"));
    ck_assert(has_line(m, "scalebus_connector_decisions_total{connector=\"per-one\",type=\"target\","
                          "direction=\"hold\"} 0"));
    ck_assert(has_line(m, "scalebus_scaler_desired{scaler=\"pool\",type=\"process\"} 4"));
    ck_assert(has_line(m, "scalebus_scaler_running{scaler=\"pool\",type=\"process\"} 3"));
    ck_assert(has_line(m, "scalebus_scaler_paused{scaler=\"pool\",type=\"process\"} 1"));
    ck_assert(has_line(m, "scalebus_scaler_actions_total{scaler=\"pool\",type=\"process\","
                          "result=\"failed\"} 1"));
    ck_assert(has_line(m, "# TYPE scalebus_scaler_action_duration_seconds histogram"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_bucket{scaler=\"pool\","
                          "type=\"process\",le=\"0.001\"} 0"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_bucket{scaler=\"pool\","
                          "type=\"process\",le=\"0.0025\"} 1"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_bucket{scaler=\"pool\","
                          "type=\"process\",le=\"0.1\"} 2"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_bucket{scaler=\"pool\","
                          "type=\"process\",le=\"10\"} 2"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_bucket{scaler=\"pool\","
                          "type=\"process\",le=\"+Inf\"} 3"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_sum{scaler=\"pool\","
                          "type=\"process\"} 0.25"));
    ck_assert(has_line(m, "scalebus_scaler_action_duration_seconds_count{scaler=\"pool\","
                          "type=\"process\"} 3"));
    ck_assert(has_line(m, "# TYPE scalebus_trigger_read_duration_seconds histogram"));
    ck_assert_ptr_null(strstr(m, "scalebus_trigger_read_duration_seconds_bucket"));
    ck_assert(has_line(m, "scalebus_bus_events_coalesced_total 1"));
    ck_assert(has_line(m, "scalebus_reloads_total{result=\"refused\"} 1"));
    ck_assert(has_line(m, "scalebus_ready 1"));
    /* Label values escaped; no sample for a count nobody knows yet. */
    ck_assert(has_line(m, "scalebus_scaler_paused{scaler=\"odd\\\"id\\\\x\",type=\"process\"} 0"));
    ck_assert_ptr_null(strstr(m, "scalebus_scaler_desired{scaler=\"odd"));
    ck_assert_ptr_null(strstr(m, "NaN"));
    /* Each family's TYPE comes once, before its samples. */
    const char *type = strstr(m, "# TYPE scalebus_scaler_actions_total counter\n");
    const char *first = strstr(m, "\nscalebus_scaler_actions_total{");
    ck_assert(type && first && type < first);
    ck_assert_ptr_null(strstr(type + 1, "# TYPE scalebus_scaler_actions_total"));
    textbuf_free(&t);
}
END_TEST

static config *parse(const char *text, config_errors *errs)
{
    config_errors_init(errs);
    return config_parse_string(text, strlen(text), "p.yaml", errs);
}

static char *first_error(const config_errors *errs)
{
    static char buf[512];
    if (errs->count == 0)
        return "";
    snprintf(buf, sizeof buf, "%d:%d: %s", errs->items[0].line, errs->items[0].col,
             errs->items[0].message);
    return buf;
}

START_TEST(config_admin_section)
{
    config_errors errs;
    config *cfg = parse("triggers: []\n", &errs);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert_str_eq(cfg->admin.listen, "127.0.0.1:9180");
    ck_assert(!cfg->admin.off && !cfg->admin.listen_set && !cfg->admin.token);
    config_free(cfg);
    config_errors_free(&errs);

    cfg = parse("admin: { listen: off }\n", &errs);
    ck_assert_uint_eq(errs.count, 0);
    ck_assert(cfg->admin.off);
    config_free(cfg);
    config_errors_free(&errs);

    cfg = parse("admin: { listen: \"off\" }\n", &errs); /* quoted, the same */
    ck_assert_uint_eq(errs.count, 0);
    ck_assert(cfg->admin.off);
    config_free(cfg);
    config_errors_free(&errs);

    cfg = parse("admin: { listen: \"[::1]:9999\", token: abc.DEF-123 }\n", &errs);
    ck_assert_msg(errs.count == 0, "%s", first_error(&errs));
    ck_assert_str_eq(cfg->admin.listen, "[::1]:9999");
    ck_assert_str_eq(cfg->admin.token, "abc.DEF-123");
    config_free(cfg);
    config_errors_free(&errs);

    /* Off loopback: only with a token. */
    cfg = parse("admin:\n  listen: 0.0.0.0:9180\n", &errs);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_str_eq(first_error(&errs),
                     "2:11: admin.listen 0.0.0.0:9180 is off loopback: anyone who reaches it "
                     "could pause or scale; set admin.token (or token_file), or listen on "
                     "127.0.0.1");
    config_free(cfg);
    config_errors_free(&errs);
    cfg = parse("admin: { listen: 0.0.0.0:9180, token: t0k }\n", &errs);
    ck_assert_uint_eq(errs.count, 0);
    config_free(cfg);
    config_errors_free(&errs);

    /* Bad values, each at its position; a token's text is never shown. */
    const struct {
        const char *text, *want;
    } bad[] = {
        {"admin: { listen: localhost:9180 }\n", "1:18: admin.listen must be a numeric"},
        {"admin: { listen: \"127.0.0.1:99999\" }\n", "1:18: admin.listen must be a numeric"},
        {"admin: { listen: 127.0.0.1 }\n", "1:18: admin.listen must be a numeric"},
        {"admin: { lisen: off }\n", "1:10: unknown key 'lisen' in admin"},
        {"admin: { token: \"has space-SECRETX\" }\n", "1:17: admin.token must be printable"},
        {"admin: { token: a, token_file: /x }\n", "1:32: admin: give token or token_file"},
        {"admin: { token_file: /nonexistent/tok }\n", "1:22: admin.token_file /nonexistent/tok:"},
        {"admin: [1]\n", "1:8: 'admin' must be a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cfg = parse(bad[i].text, &errs);
        ck_assert_msg(errs.count >= 1, "no error for %s", bad[i].text);
        const char *got = first_error(&errs);
        ck_assert_msg(strncmp(got, bad[i].want, strlen(bad[i].want)) == 0, "%s: got %s",
                      bad[i].text, got);
        ck_assert_ptr_null(strstr(got, "SECRETX"));
        config_free(cfg);
        config_errors_free(&errs);
    }
}
END_TEST

START_TEST(config_token_file)
{
    char dir[] = "/tmp/sb-admin-unit.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256], yaml[512];
    snprintf(path, sizeof path, "%s/token", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("from-a-file  \nsecond line ignored\n", f);
    fclose(f);
    snprintf(yaml, sizeof yaml, "admin: { token_file: %s }\n", path);
    config_errors errs;
    config *cfg = parse(yaml, &errs);
    ck_assert_msg(errs.count == 0, "%s", first_error(&errs));
    ck_assert_str_eq(cfg->admin.token, "from-a-file");
    config_free(cfg);
    config_errors_free(&errs);
    /* An empty file is an error, not "no token". */
    f = fopen(path, "w");
    fclose(f);
    cfg = parse(yaml, &errs);
    ck_assert_uint_eq(errs.count, 1);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, ": empty"));
    config_free(cfg);
    config_errors_free(&errs);
    remove(path);
    rmdir(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("pieces");
    tcase_add_test(tc, routes_get_paths);
    tcase_add_test(tc, routes_ids);
    tcase_add_test(tc, token_checks);
    tcase_add_test(tc, metrics_text);
    tcase_add_test(tc, config_admin_section);
    tcase_add_test(tc, config_token_file);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
