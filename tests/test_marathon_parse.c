/*
 * test_marathon_parse.c - the marathon scaler's reply parsers and bodies
 * (scalers/marathon/marathon_api.c), on replies shaped like Marathon 1.x's documented examples
 * (apps.raml, tasks.raml), hostile replies, and the plugin's option errors (marathon.so through
 * the fake host, when the build has made it).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_host.h"
#include "marathon_api.h"

static char err[512];

static int parse(const char *body, sb_marathon_app *app)
{
    return sb_marathon_parse_app(body, strlen(body), app, err, sizeof err);
}

/* ---- the app and its tasks ------------------------------------------------------------------- */

static const char *APP =
    "{\"app\":{\"id\":\"/team/web\",\"instances\":3,\"tasksRunning\":2,"
    "\"healthChecks\":[{\"protocol\":\"HTTP\",\"path\":\"/health\"}],"
    "\"deployments\":[{\"id\":\"5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43\"}],\"tasks\":["
    "{\"id\":\"team_web.instance-1._app.1\",\"host\":\"srv7.example.com\",\"ports\":[31756,31757],"
    "\"stagedAt\":\"2015-08-26T20:23:39.463Z\",\"startedAt\":\"2015-08-26T20:23:44.678Z\","
    "\"state\":\"TASK_RUNNING\",\"healthCheckResults\":[{\"alive\":true,"
    "\"consecutiveFailures\":0,\"taskId\":\"team_web.instance-1._app.1\"}]},"
    "{\"id\":\"team_web.instance-2._app.1\",\"host\":\"srv8.example.com\",\"ports\":[31001],"
    "\"stagedAt\":\"2015-08-26T20:24:00.000Z\",\"startedAt\":\"2015-08-26T20:24:05.000Z\","
    "\"state\":\"TASK_RUNNING\",\"healthCheckResults\":[{\"alive\":false}]},"
    "{\"id\":\"team_web.instance-3._app.1\",\"host\":\"srv9.example.com\",\"ports\":[],"
    "\"stagedAt\":\"2015-08-26T20:25:00.000Z\",\"startedAt\":null,\"state\":\"TASK_STAGING\"}"
    "]}}";

START_TEST(app_with_tasks)
{
    sb_marathon_app app;
    ck_assert_int_eq(parse(APP, &app), 0);
    ck_assert_int_eq(app.instances, 3);
    ck_assert_int_eq(app.health_checks, 1);
    ck_assert_int_eq(app.deployments, 1);
    ck_assert_uint_eq(app.ntasks, 3);
    ck_assert_str_eq(app.tasks[0].id, "team_web.instance-1._app.1");
    ck_assert_str_eq(app.tasks[0].address, "srv7.example.com:31756");
    ck_assert_int_eq(app.tasks[0].state, SB_MEMBER_READY);
    ck_assert_int_eq(app.tasks[0].started_at, 1440620624); /* 2015-08-26T20:23:44Z */
    ck_assert_int_eq(app.tasks[0].live, 1);
    /* Running but not healthy yet: starting. */
    ck_assert_int_eq(app.tasks[1].state, SB_MEMBER_STARTING);
    ck_assert_str_eq(app.tasks[1].address, "srv8.example.com:31001");
    /* Staged: starting, stagedAt stands for the start; no ports: the host alone. */
    ck_assert_int_eq(app.tasks[2].state, SB_MEMBER_STARTING);
    ck_assert_int_eq(app.tasks[2].started_at, 1440620700);
    ck_assert_str_eq(app.tasks[2].address, "srv9.example.com");
    sb_marathon_app_free(&app);

    /* Without embed: no tasks; without health checks, running is ready. */
    ck_assert_int_eq(parse("{\"app\":{\"instances\":0}}", &app), 0);
    ck_assert_int_eq(app.instances, 0);
    ck_assert_uint_eq(app.ntasks, 0);
    sb_marathon_app_free(&app);
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"healthChecks\":[],\"tasks\":[{\"id\":\"a\","
                           "\"state\":\"TASK_RUNNING\",\"host\":\"h\",\"ports\":[80]}]}}",
                           &app),
                     0);
    ck_assert_int_eq(app.tasks[0].state, SB_MEMBER_READY);
    ck_assert_int_eq(app.tasks[0].started_at, 0);
    sb_marathon_app_free(&app);
}
END_TEST

START_TEST(task_states)
{
    int live;
    ck_assert_int_eq(sb_marathon_task_state("TASK_STAGING", 0, 0, &live), SB_MEMBER_STARTING);
    ck_assert_int_eq(live, 1);
    ck_assert_int_eq(sb_marathon_task_state("TASK_STARTING", 1, 1, &live), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_marathon_task_state("TASK_RUNNING", 0, 0, &live), SB_MEMBER_READY);
    ck_assert_int_eq(sb_marathon_task_state("TASK_RUNNING", 1, 0, &live), SB_MEMBER_STARTING);
    ck_assert_int_eq(sb_marathon_task_state("TASK_RUNNING", 1, 1, &live), SB_MEMBER_READY);
    ck_assert_int_eq(live, 1);
    ck_assert_int_eq(sb_marathon_task_state("TASK_KILLING", 0, 0, &live), SB_MEMBER_STOPPING);
    ck_assert_int_eq(live, 0);
    ck_assert_int_eq(sb_marathon_task_state("TASK_FINISHED", 0, 0, &live), SB_MEMBER_STOPPING);
    const char *failed[] = {"TASK_FAILED",      "TASK_LOST", "TASK_ERROR",     "TASK_DROPPED",
                            "TASK_UNREACHABLE", "TASK_GONE", "TASK_NEW_THING", NULL};
    for (size_t i = 0; failed[i]; i++) {
        ck_assert_int_eq(sb_marathon_task_state(failed[i], 0, 0, &live), SB_MEMBER_FAILED);
        ck_assert_int_eq(live, 0);
    }
    ck_assert_int_eq(sb_marathon_task_state(NULL, 0, 0, &live), SB_MEMBER_FAILED);
}
END_TEST

START_TEST(app_errors)
{
    sb_marathon_app app;
    ck_assert_int_eq(parse("<html><body>502 Bad Gateway</body></html>", &app), -EINVAL);
    ck_assert_str_eq(err, "the reply is not JSON (\"<html><body>502 Bad Gateway</body></html>\")");
    ck_assert_int_eq(parse("", &app), -EINVAL);
    ck_assert_int_eq(parse("{\"apps\":[]}", &app), -EINVAL);
    ck_assert_str_eq(err, "the reply has no \"app\" object");
    ck_assert_int_eq(parse("{\"app\":{\"instances\":\"3\"}}", &app), -EINVAL);
    ck_assert_str_eq(err, "app.instances is not a count");
    ck_assert_int_eq(parse("{\"app\":{\"instances\":-1}}", &app), -EINVAL);
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1.5}}", &app), -EINVAL);
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1e300}}", &app), -EINVAL);
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"tasks\":{}}}", &app), -EINVAL);
    ck_assert_str_eq(err, "app.tasks is not a list");
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"tasks\":[3]}}", &app), -EINVAL);
    ck_assert_str_eq(err, "app.tasks[0] is not an object");
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"tasks\":[{\"id\":7}]}}", &app), -EINVAL);
    ck_assert_str_eq(err, "app.tasks[0].id is not a task id");
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"healthChecks\":\"x\"}}", &app), -EINVAL);
    /* Truncated. */
    ck_assert_int_eq(sb_marathon_parse_app(APP, strlen(APP) / 2, &app, err, sizeof err), -EINVAL);
    /* Fields of the wrong type are ignored, never trusted: a port of -1, a host that is a list,
     * control characters in an id. */
    ck_assert_int_eq(parse("{\"app\":{\"instances\":1,\"tasks\":[{\"id\":\"a\\nb\",\"host\":[1],"
                           "\"ports\":[-1],\"state\":5,\"startedAt\":7}]}}",
                           &app),
                     0);
    ck_assert_str_eq(app.tasks[0].id, "a?b");
    ck_assert_str_eq(app.tasks[0].address, "");
    ck_assert_int_eq(app.tasks[0].state, SB_MEMBER_FAILED);
    ck_assert_int_eq(app.tasks[0].started_at, 0);
    sb_marathon_app_free(&app);
    /* An id too long. */
    char big[600];
    snprintf(big, sizeof big, "{\"app\":{\"instances\":1,\"tasks\":[{\"id\":\"%0300d\"}]}}", 1);
    ck_assert_int_eq(parse(big, &app), -EINVAL);
}
END_TEST

START_TEST(too_many_tasks)
{
    size_t n = SB_MARATHON_TASKS_MAX + 1;
    char *body = malloc(n * 12 + 64);
    ck_assert_ptr_nonnull(body);
    size_t k = (size_t)sprintf(body, "{\"app\":{\"instances\":1,\"tasks\":[");
    for (size_t i = 0; i < n; i++)
        k += (size_t)sprintf(body + k, "%s{\"id\":\"t\"}", i ? "," : "");
    strcpy(body + k, "]}}");
    sb_marathon_app app;
    ck_assert_int_eq(parse(body, &app), -EINVAL);
    ck_assert_str_eq(err, "app.tasks: 10001 tasks, more than the 10000 read");
    free(body);
}
END_TEST

START_TEST(times)
{
    ck_assert_int_eq(sb_marathon_parse_time("1970-01-01T00:00:00Z"), 0);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26T20:23:44.678Z"), 1440620624);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26T20:23:44Z"), 1440620624);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26T22:23:44.1+02:00"), 1440620624);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26T18:23:44-02:00"), 1440620624);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26 20:23:44"), 0);
    ck_assert_int_eq(sb_marathon_parse_time("2015-13-26T20:23:44Z"), 0);
    ck_assert_int_eq(sb_marathon_parse_time("2015-08-26T20:23:44Zjunk"), 0);
    ck_assert_int_eq(sb_marathon_parse_time("yesterday"), 0);
    ck_assert_int_eq(sb_marathon_parse_time(""), 0);
    ck_assert_int_eq(sb_marathon_parse_time(NULL), 0);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------------------
 */

static const char *LOCKED =
    "{\"message\":\"App is locked by one or more deployments. Override with the option "
    "'?force=true'. View details at '/v2/deployments/5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43'.\","
    "\"deployments\":[{\"id\":\"5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43\"}]}";

START_TEST(error_replies)
{
    char m[200], dep[64];
    ck_assert_int_eq(sb_marathon_is_locked(409, LOCKED, strlen(LOCKED), dep, sizeof dep), 1);
    ck_assert_str_eq(dep, "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43");
    ck_assert_int_eq(sb_marathon_is_locked(200, LOCKED, strlen(LOCKED), dep, sizeof dep), 0);
    const char *other = "{\"message\":\"something else\"}";
    ck_assert_int_eq(sb_marathon_is_locked(409, other, strlen(other), dep, sizeof dep), 0);
    ck_assert_int_eq(sb_marathon_is_locked(409, "<html>", 6, dep, sizeof dep), 0);
    ck_assert_int_eq(sb_marathon_is_locked(409, NULL, 0, dep, sizeof dep), 0);

    const char *nf = "{\"message\":\"App '/team/x' does not exist\"}";
    sb_marathon_error_message(nf, strlen(nf), m, sizeof m);
    ck_assert_str_eq(m, "App '/team/x' does not exist");
    const char *inv = "{\"message\":\"Object is not valid\",\"details\":[{\"path\":\"/instances\","
                      "\"errors\":[\"error.min\"]}]}";
    sb_marathon_error_message(inv, strlen(inv), m, sizeof m);
    ck_assert_str_eq(m, "Object is not valid (/instances: error.min)");
    const char *html = "<html><body><h1>503 Service Unavailable</h1>\nNo server</body></html>";
    sb_marathon_error_message(html, strlen(html), m, sizeof m);
    ck_assert_str_eq(m, "<html><body><h1>503 Service Unavailable</h1>");
    sb_marathon_error_message("", 0, m, sizeof m);
    ck_assert_str_eq(m, "no message");
    const char *ctl = "{\"message\":\"bad\\u001b[31m\\tthing\"}";
    sb_marathon_error_message(ctl, strlen(ctl), m, sizeof m);
    ck_assert_str_eq(m, "bad?[31m?thing");
    char small[8];
    sb_marathon_error_message(nf, strlen(nf), small, sizeof small);
    ck_assert_str_eq(small, "App '/t");
}
END_TEST

/* ---- app ids, kill bodies, the newest tasks -----------------------------------------------------
 */

START_TEST(app_ids)
{
    char id[SB_MARATHON_ID_MAX];
    ck_assert_int_eq(sb_marathon_app_id("/team/web", id, sizeof id, err, sizeof err), 0);
    ck_assert_str_eq(id, "/team/web");
    ck_assert_int_eq(sb_marathon_app_id("team/web-1.v2/", id, sizeof id, err, sizeof err), 0);
    ck_assert_str_eq(id, "/team/web-1.v2");
    ck_assert_int_eq(sb_marathon_app_id("/web", id, sizeof id, err, sizeof err), 0);
    const char *bad[] = {"",           "/",          "/Team/web",  "/team//web",
                         "/team/-web", "/team/web-", "/team/../x", "/a b",
                         "/a?x=1",     "/a%2F",      "/a/b.",      NULL};
    for (size_t i = 0; bad[i]; i++) {
        ck_assert_msg(sb_marathon_app_id(bad[i], id, sizeof id, err, sizeof err) == -EINVAL,
                      "'%s' accepted", bad[i]);
        ck_assert_msg(strncmp(err, "app: ", 5) == 0, "%s", err);
    }
    char longid[400];
    memset(longid, 'a', sizeof longid - 1);
    longid[0] = '/';
    longid[sizeof longid - 1] = '\0';
    ck_assert_int_eq(sb_marathon_app_id(longid, id, sizeof id, err, sizeof err), -EINVAL);
}
END_TEST

START_TEST(kill_body_and_newest)
{
    const char *ids[] = {"a.1", "b\"2"};
    char *body = sb_marathon_kill_body(ids, 2);
    ck_assert_str_eq(body, "{\"ids\":[\"a.1\",\"b\\\"2\"]}");
    free(body);
    body = sb_marathon_kill_body(NULL, 0);
    ck_assert_str_eq(body, "{\"ids\":[]}");
    free(body);

    sb_marathon_task t[5] = {
        {.id = "old", .started_at = 100, .live = 1},
        {.id = "newest", .started_at = 300, .live = 1},
        {.id = "dead", .started_at = 400, .live = 0},
        {.id = "mid", .started_at = 200, .live = 1},
        {.id = "mid-later", .started_at = 200, .live = 1}, /* same second, later in the list */
    };
    size_t idx[5];
    ck_assert_uint_eq(sb_marathon_newest(t, 5, 3, idx), 3);
    ck_assert_str_eq(t[idx[0]].id, "newest");
    ck_assert_str_eq(t[idx[1]].id, "mid-later");
    ck_assert_str_eq(t[idx[2]].id, "mid");
    ck_assert_uint_eq(sb_marathon_newest(t, 5, 9, idx), 4); /* the dead one never */
    ck_assert_uint_eq(sb_marathon_newest(t, 5, 0, idx), 0);
    ck_assert_uint_eq(sb_marathon_newest(t, 0, 2, idx), 0);
}
END_TEST

/* ---- the plugin's option errors ------------------------------------------------------------- */

static int plugin_create(const char *opts)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d = test_plugin_load_if_built("marathon", SB_KIND_SCALER, &handle);
    if (!d)
        return 0;
    char all[512];
    snprintf(all, sizeof all, "max: 3, %s", opts);
    int rc = test_plugin_try_options(d, all, err, sizeof(err));
    test_plugin_unload(handle);
    return rc;
}

START_TEST(plugin_options)
{
    ck_assert_int_eq(plugin_create("url: \"http://127.0.0.1:8080/\", app: /team/web"), 0);
    ck_assert_int_eq(plugin_create("url: \"https://m.example.com\", app: team/web, username: u, "
                                   "password: p, force: true, kill_tasks: newest, "
                                   "tls_verify: false, timeout: 2s"),
                     0);
    ck_assert_int_eq(plugin_create("url: \"http://m\", app: /a, token: \"token=abc\", "
                                   "token_header: X-Auth"),
                     0);
    struct {
        const char *opts, *err;
    } bad[] = {
        {"url: \"ftp://m\", app: /a", "url: "},
        {"url: \"http://u:p@m\", app: /a", "url: "},
        {"url: \"http://m?x=1\", app: /a", "url: Marathon's base URL, without a query"},
        {"url: \"http://m\", app: /A", "app: "},
        {"url: \"http://m\", app: /a, username: u", "password: required with username"},
        {"url: \"http://m\", app: /a, password: p", "username: required with password"},
        {"url: \"http://m\", app: /a, username: u, password: p, token: t",
         "token: either username and password, or a token, not both"},
        {"url: \"http://m\", app: /a, token: \"\"", "token: empty (is its ${VAR} set?)"},
        {"url: \"http://m\", app: /a, token: t, token_header: \"X Auth\"",
         "token_header: 'X Auth' is not a header name"},
        {"url: \"http://m\", app: /a, kill_tasks: oldest", "kill_tasks: marathon or newest, got "},
        {"url: \"http://m\", app: /a, timeout: 10ms", "timeout: at least 100ms"},
        {"url: \"http://m\", app: /a, on_stop: later", "on_stop: keep or stop"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = plugin_create(bad[i].opts);
        if (rc == 0 && !err[0])
            continue; /* not built */
        ck_assert_msg(rc < 0, "%s: accepted", bad[i].opts);
        ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0, "%s: '%s'", bad[i].opts,
                      err);
    }
}
END_TEST

/* Every prefix of a good reply, and of an error reply: never a crash, never a partial app. */
START_TEST(every_prefix)
{
    char m[200], dep[64];
    for (size_t len = 0; len < strlen(APP); len++) {
        char *copy = malloc(len + 1); /* exactly len bytes, so a read past them is caught */
        memcpy(copy, APP, len);
        sb_marathon_app app;
        ck_assert_int_eq(sb_marathon_parse_app(copy, len, &app, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(app.tasks);
        sb_marathon_error_message(copy, len, m, sizeof m);
        free(copy);
    }
    for (size_t len = 0; len < strlen(LOCKED); len++) {
        char *copy = malloc(len + 1);
        memcpy(copy, LOCKED, len);
        ck_assert_int_eq(sb_marathon_is_locked(409, copy, len, dep, sizeof dep), 0);
        free(copy);
    }
}
END_TEST

static Suite *marathon_suite(void)
{
    Suite *s = suite_create("marathon_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, app_with_tasks);
    tcase_add_test(tc, task_states);
    tcase_add_test(tc, app_errors);
    tcase_add_test(tc, too_many_tasks);
    tcase_add_test(tc, times);
    tcase_add_test(tc, error_replies);
    tcase_add_test(tc, app_ids);
    tcase_add_test(tc, kill_body_and_newest);
    tcase_add_test(tc, every_prefix);
    tcase_add_test(tc, plugin_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(marathon_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
