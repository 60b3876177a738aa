/*
 * test_state_policy.c - the policy library's snapshot and restore (plugins/policy/policy_state.c):
 * a stabilisation window and a cooldown survive a restart, aged by the downtime; a snapshot the
 * library cannot take is refused and leaves the policy as new.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <scalebus/policy.h>

static uint64_t mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static sb_policy_options options(uint64_t stabilize_down_ms, uint64_t cooldown_down_ms)
{
    sb_policy_options o;
    memset(&o, 0, sizeof o);
    o.max = -1;
    o.max_step_up = o.max_step_down = -1;
    o.period_ms = 15000;
    o.fail_after = 3;
    o.stabilize_down_ms = stabilize_down_ms;
    o.cooldown_down_ms = cooldown_down_ms;
    return o;
}

/* Every time in the snapshot moved `seconds` into the past: a restart that many seconds later. */
static void age(cJSON *node, double seconds)
{
    for (cJSON *c = node ? node->child : NULL; c; c = c->next) {
        if (c->string && strstr(c->string, "_ms") && cJSON_IsNumber(c))
            cJSON_SetNumberValue(c, c->valuedouble - seconds * 1000);
        else if (c->string && strcmp(c->string, "windows") == 0)
            for (cJSON *w = c->child; w; w = w->next)
                for (cJSON *pair = w->child; pair; pair = pair->next)
                    cJSON_SetNumberValue(pair->child, pair->child->valuedouble - seconds * 1000);
    }
}

/* A policy that decided `first`, restarted `downtime` seconds later, then asked for `then`. */
static int64_t after_restart(sb_policy_options o, double first, double downtime, double then,
                             sb_reason *r)
{
    sb_policy *p = sb_policy_new(&o);
    sb_policy_input in = {.now_ns = mono_now(), .raw = first};
    ck_assert_int_eq(sb_policy_decide(p, &in, NULL), (int64_t)first);
    cJSON *snap = sb_policy_snapshot(p);
    ck_assert_ptr_nonnull(snap);
    sb_policy_free(p);
    age(snap, downtime);
    /* Through text, as the state file carries it. */
    char *text = cJSON_PrintUnformatted(snap);
    cJSON_Delete(snap);
    snap = cJSON_Parse(text);
    free(text);

    sb_policy *q = sb_policy_new(&o);
    char err[256] = "";
    ck_assert_msg(sb_policy_restore(q, snap, err, sizeof err) == 0, "%s", err);
    cJSON_Delete(snap);
    ck_assert_int_eq(sb_policy_decided(q), (int64_t)first);
    sb_reason_init(r);
    sb_policy_input in2 = {.now_ns = mono_now(), .raw = then};
    int64_t v = sb_policy_decide(q, &in2, r);
    sb_policy_free(q);
    return v;
}

START_TEST(test_window_survives)
{
    sb_reason r;
    int64_t v = after_restart(options(60000, 0), 5, 20, 1, &r);
    ck_assert_int_eq(v, 5);
    ck_assert_msg(strstr(r.text, "stabilize_down 60s: highest 5 -> 5"), "%s", r.text);
}
END_TEST

START_TEST(test_window_aged_out)
{
    sb_reason r;
    ck_assert_int_eq(after_restart(options(60000, 0), 5, 70, 1, &r), 1);
}
END_TEST

START_TEST(test_cooldown_survives)
{
    sb_reason r;
    int64_t v = after_restart(options(0, 30000), 5, 10, 1, &r);
    ck_assert_int_eq(v, 5);
    ck_assert_msg(strstr(r.text, "cooldown_down 30s: changed 10"), "%s", r.text);
}
END_TEST

START_TEST(test_cooldown_aged_out)
{
    sb_reason r;
    ck_assert_int_eq(after_restart(options(0, 30000), 5, 40, 1, &r), 1);
}
END_TEST

START_TEST(test_refused_snapshots)
{
    sb_policy_options o = options(60000, 0);
    const char *bad[] = {
        "[]",
        "{\"format\": 2}",
        "{\"format\": 1, \"decided\": -1}",
        "{\"format\": 1, \"decided\": 2.5}",
        "{\"format\": 1, \"windows\": {\"stabilize_down\": [[1, 2, 3]]}}",
        "{\"format\": 1, \"windows\": {\"stabilize_down\": [[5, 1], [4, 1]]}}",
        "{\"format\": 1, \"reason\": 3}",
    };
    const char *why[] = {"expected an object", "newer", "decided", "decided", "stabilize_down[0]",
                         "out of time order", "reason"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_policy *p = sb_policy_new(&o);
        cJSON *snap = cJSON_Parse(bad[i]);
        char err[256] = "";
        ck_assert_int_lt(sb_policy_restore(p, snap, err, sizeof err), 0);
        ck_assert_msg(strstr(err, why[i]), "%s: %s", bad[i], err);
        /* Left as new: nothing decided, no window. */
        ck_assert_int_eq(sb_policy_decided(p), 0);
        sb_policy_input in = {.now_ns = mono_now(), .raw = 1};
        ck_assert_int_eq(sb_policy_decide(p, &in, NULL), 1);
        cJSON_Delete(snap);
        sb_policy_free(p);
    }
    /* Unknown fields are ignored. */
    sb_policy *p = sb_policy_new(&o);
    cJSON *snap = cJSON_Parse("{\"format\": 1, \"decided\": 3, \"later\": {\"x\": 1}}");
    char err[256] = "";
    ck_assert_int_eq(sb_policy_restore(p, snap, err, sizeof err), 0);
    ck_assert_int_eq(sb_policy_decided(p), 3);
    cJSON_Delete(snap);
    sb_policy_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state_policy");
    TCase *tc = tcase_create("snapshot");
    tcase_add_test(tc, test_window_survives);
    tcase_add_test(tc, test_window_aged_out);
    tcase_add_test(tc, test_cooldown_survives);
    tcase_add_test(tc, test_cooldown_aged_out);
    tcase_add_test(tc, test_refused_snapshots);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
