/*
 * test_fleet.c - the scaler contract library (plugins/scaler, scalebus/scaler.h) against an
 * in-memory engine on the fake host: adoption, the floor, one call at a time with only the newest
 * desired count kept, busy and failed with back-off, idempotence, reconcile drift, a failed
 * member replaced, newest-first scale-down with drain, --dry-run, the instance list, on_stop.
 * Calls are answered by the test (the engine is asynchronous), timers are fired by hand.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "fake_host.h"
#include "scalebus/scaler.h"

/* The engine: members, and the call waiting for the test to answer it. */
typedef struct engine {
    sb_member m[32];
    char ids[32][32];
    size_t n;
    int next_id;
    int64_t clock;
    int lists, starts, stops;
    char last_stop[32];
    enum { NONE, LIST, START, STOP } pending;
    sb_fleet *f;
} engine;

static void eng_list(void *self, sb_fleet *f)
{
    engine *e = self;
    e->lists++;
    e->pending = LIST;
    e->f = f;
}
static void eng_start(void *self, sb_fleet *f)
{
    engine *e = self;
    e->starts++;
    e->pending = START;
    e->f = f;
}
static void eng_stop(void *self, sb_fleet *f, const char *id)
{
    engine *e = self;
    e->stops++;
    e->pending = STOP;
    snprintf(e->last_stop, sizeof e->last_stop, "%s", id);
    e->f = f;
}
static void eng_describe(void *self, sb_fleet_call call, const char *id, int64_t n, char *buf,
                         size_t len)
{
    snprintf(buf, len, "%s %s", call == SB_CALL_START ? "POST /start" : "POST /stop",
             id ? id : "");
}

static const sb_fleet_ops ops = {
    .list = eng_list, .start_one = eng_start, .stop_one = eng_stop, .describe = eng_describe};

static void eng_add(engine *e, sb_member_state st)
{
    size_t i = e->n++;
    snprintf(e->ids[i], sizeof e->ids[i], "c%d", ++e->next_id);
    e->m[i] = (sb_member){.id = e->ids[i], .state = st, .started_at = ++e->clock};
}
static void eng_remove(engine *e, const char *id)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->ids[i], id) == 0) {
            for (size_t k = i; k + 1 < e->n; k++) {
                memcpy(e->ids[k], e->ids[k + 1], sizeof e->ids[k]);
                e->m[k] = e->m[k + 1];
            }
            e->n--;
            break;
        }
    for (size_t i = 0; i < e->n; i++)
        e->m[i].id = e->ids[i];
}

/* Answer the pending call as the engine would, successfully. */
static void answer(engine *e)
{
    int p = e->pending;
    e->pending = NONE;
    if (p == LIST)
        sb_fleet_listed(e->f, e->m, e->n);
    else if (p == START) {
        eng_add(e, SB_MEMBER_READY);
        sb_fleet_action_done(e->f, SB_ACTION_DONE, "ok");
    } else if (p == STOP) {
        eng_remove(e, e->last_stop);
        sb_fleet_action_done(e->f, SB_ACTION_DONE, "ok");
    } else
        ck_abort_msg("no call pending");
}

/* Answer until the fleet makes no more calls. */
static void settle(engine *e)
{
    for (int i = 0; i < 200 && e->pending != NONE; i++)
        answer(e);
    ck_assert_int_eq(e->pending, NONE);
}

static fake_host *fh;
static engine eng;
static sb_fleet *fleet;
static sb_value rows[SB_FLEET_OPTION_COUNT];

static void make_fleet(const char *on_stop, uint64_t drain_ms)
{
    memset(rows, 0, sizeof rows);
    rows[0] = (sb_value){.is_set = 1, .duration_ms = 30000};
    rows[1] = (sb_value){.is_set = 1, .str = on_stop};
    rows[2] = (sb_value){.is_set = 1, .duration_ms = drain_ms};
    char err[128];
    ck_assert_int_eq(
        sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &eng, &fleet, err, sizeof err),
        0);
}

static void setup(void)
{
    memset(&eng, 0, sizeof eng);
    fh = fake_host_new("web");
    fh->bounds_min = 1;
    fh->bounds_max = 10;
    fleet = NULL;
}

static void teardown(void)
{
    sb_fleet_free(fleet);
    fake_host_free(fh);
}

static void desired(double v)
{
    sb_event ev = {.size = sizeof ev, .topic = SB_TOPIC_DESIRED, .value = v};
    sb_fleet_on_event(fleet, &ev);
}

static void initial_desired(double v)
{
    sb_label l = {SB_LABEL_INITIAL, "min"};
    sb_event ev = {.size = sizeof ev, .topic = SB_TOPIC_DESIRED, .value = v, .labels = &l,
                   .nlabels = 1};
    sb_fleet_on_event(fleet, &ev);
}

static size_t logs_with(sb_log_level lvl, const char *needle)
{
    size_t n = 0;
    for (size_t i = 0; i < fh->nlog; i++)
        if (fh->logs[i].level == lvl && strstr(fh->logs[i].text, needle))
            n++;
    return n;
}

START_TEST(test_adopts_and_never_assumes)
{
    /* Three run from before (a daemon restart); min is 1: nothing is stopped. */
    eng_add(&eng, SB_MEMBER_READY);
    eng_add(&eng, SB_MEMBER_READY);
    eng_add(&eng, SB_MEMBER_READY);
    make_fleet("keep", 0);
    ck_assert_int_eq(sb_fleet_start(fleet), 0);
    initial_desired(1); /* the daemon's min, at start */
    settle(&eng);
    ck_assert_int_eq(eng.starts + eng.stops, 0);
    ck_assert_uint_eq(eng.n, 3);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "adopted 3 running instance(s)"), 1);
    /* The instance list was published with the three. */
    ck_assert_uint_ge(fh->npub, 1);
    ck_assert_str_eq(fh->pubs[fh->npub - 1].topic, SB_TOPIC_INSTANCES);
    ck_assert(fh->pubs[fh->npub - 1].value == 3);
    ck_assert_int_eq(cJSON_GetArraySize(fh->pubs[fh->npub - 1].payload), 3);
}
END_TEST

START_TEST(test_raises_to_min_and_holds_max)
{
    fh->bounds_min = 2;
    fh->bounds_max = 4;
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    sb_timer *reconcile = fh->last_timer;
    settle(&eng);
    ck_assert_uint_eq(eng.n, 2); /* below min, with no policy yet: raised to min */
    /* Ten added by hand (with our mark): drift from what was asked (min, as no policy has
     * decided), repaired at the next reconcile. */
    for (int i = 0; i < 10; i++)
        eng_add(&eng, SB_MEMBER_READY);
    reconcile->cb(reconcile->arg);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 2);
    /* A policy asks for more than max: held to max. */
    desired(9);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 4);
}
END_TEST

START_TEST(test_one_call_at_a_time_newest_desired)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    answer(&eng); /* list: empty; min 1 -> start */
    ck_assert_int_eq(eng.pending, START);
    desired(4);
    desired(7);
    desired(5); /* while the start is in flight: only the newest is kept */
    ck_assert_int_eq(eng.starts, 1);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 5);
    ck_assert_int_eq(eng.starts, 5);
    ck_assert_int_eq(eng.stops, 0);
    /* Idempotent: the same count again makes no call. */
    int calls = eng.lists + eng.starts + eng.stops;
    desired(5);
    ck_assert_int_eq(eng.pending, NONE);
    ck_assert_int_eq(eng.lists + eng.starts + eng.stops, calls);
}
END_TEST

START_TEST(test_scale_down_newest_first)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    desired(4);
    settle(&eng);
    char newest[32];
    snprintf(newest, sizeof newest, "%s", eng.ids[3]);
    desired(3);
    /* A new count is acted on from a fresh list, not the last one. */
    ck_assert_int_eq(eng.pending, LIST);
    answer(&eng);
    ck_assert_int_eq(eng.pending, STOP);
    ck_assert_str_eq(eng.last_stop, newest);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 3);
}
END_TEST

START_TEST(test_drain_lists_stopping_first)
{
    make_fleet("keep", 5000);
    sb_fleet_start(fleet);
    desired(2);
    settle(&eng);
    fake_host_clear(fh);
    desired(1);
    answer(&eng); /* the fresh list */
    /* No stop yet: the member is published as stopping, and a timer waits drain_timeout. */
    ck_assert_int_eq(eng.pending, NONE);
    ck_assert_uint_eq(fh->npub, 1);
    char *text = cJSON_PrintUnformatted(fh->pubs[0].payload);
    ck_assert_ptr_nonnull(strstr(text, "\"state\":\"stopping\""));
    free(text);
    ck_assert(fh->pubs[0].value == 1);
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 5000);
    fh->last_timer->cb(fh->last_timer->arg);
    ck_assert_int_eq(eng.pending, STOP);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 1);
}
END_TEST

START_TEST(test_busy_is_retried_not_counted)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    answer(&eng); /* list, then start (min 1) */
    ck_assert_int_eq(eng.pending, START);
    eng.pending = NONE;
    sb_fleet_action_done(fleet, SB_ACTION_BUSY, "app is locked by deployment");
    ck_assert_uint_eq(sb_fleet_failures(fleet), 0);
    /* The call's end is published for the admin's metrics: its result, reason and duration. */
    const fake_published *act = &fh->pubs[fh->npub - 1];
    ck_assert_str_eq(act->topic, SB_TOPIC_ACTION);
    ck_assert_str_eq(act->labels[0].value, "busy");
    ck_assert_str_eq(act->labels[1].value, "app is locked by deployment");
    ck_assert(act->value >= 0 && act->value < 60);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "start busy: app is locked by deployment"), 1);
    /* Retried after the back-off timer: list, then the start again. */
    ck_assert_uint_le(fh->last_timer->timeout_ms, 500);
    fh->last_timer->cb(fh->last_timer->arg);
    ck_assert_int_eq(eng.pending, LIST);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 1);
}
END_TEST

START_TEST(test_failed_is_counted_logged_once_and_retried)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    answer(&eng);
    for (int i = 0; i < 3; i++) {
        ck_assert_int_eq(eng.pending, START);
        eng.pending = NONE;
        sb_fleet_action_done(fleet, SB_ACTION_FAILED, "No such image: test/nope\r\nforged");
        fh->last_timer->cb(fh->last_timer->arg); /* back-off over: list again */
        answer(&eng);                            /* the list; the start comes again */
    }
    ck_assert_uint_eq(sb_fleet_failures(fleet), 3);
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, "start failed: No such image: test/nope??forged"), 1);
    settle(&eng);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "the engine acts again after 3 failure(s)"), 1);
}
END_TEST

START_TEST(test_unreachable_engine_then_back)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    ck_assert_int_eq(eng.pending, LIST);
    eng.pending = NONE;
    sb_fleet_list_failed(fleet, SB_ACTION_FAILED, "cannot reach docker at /run/d.sock: refused");
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, "list failed: cannot reach docker"), 1);
    fh->last_timer->cb(fh->last_timer->arg);
    settle(&eng);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "the engine answers again after 1 failure(s)"), 1);
    ck_assert_uint_eq(eng.n, 1);
}
END_TEST

/* The reconcile timer: the first timer the fleet armed, repeating. */
static void fire_reconcile(void)
{
    /* The fake host keeps only the newest timer; reconcile is armed in start with a repeat. */
    ck_assert_ptr_nonnull(fh->last_timer);
    ck_assert_uint_eq(fh->last_timer->repeat_ms, 30000);
    fh->last_timer->cb(fh->last_timer->arg);
}

START_TEST(test_reconcile_repairs_drift_and_replaces_failed)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    sb_timer *reconcile = fh->last_timer;
    desired(3);
    settle(&eng);
    /* One killed behind our back, one failed. */
    char gone[32], dead[32];
    snprintf(gone, sizeof gone, "%s", eng.ids[0]);
    snprintf(dead, sizeof dead, "%s", eng.ids[1]);
    eng_remove(&eng, gone);
    eng.m[0].state = SB_MEMBER_FAILED; /* was ids[1] */
    fh->last_timer = reconcile;
    fire_reconcile();
    settle(&eng);
    char want[96];
    snprintf(want, sizeof want, "changed outside scalebus: %s is gone", gone);
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, want), 1);
    snprintf(want, sizeof want, "changed outside scalebus: %s failed", dead);
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, want), 1);
    ck_assert_uint_eq(eng.n, 3);
    for (size_t i = 0; i < eng.n; i++) {
        ck_assert_int_eq(eng.m[i].state, SB_MEMBER_READY);
        ck_assert_str_ne(eng.ids[i], dead);
    }
    /* One added by hand with our mark: adopted, then the count is repaired (newest goes). */
    eng_add(&eng, SB_MEMBER_READY);
    char added[32];
    snprintf(added, sizeof added, "%s", eng.ids[eng.n - 1]);
    fh->last_timer = reconcile;
    fire_reconcile();
    ck_assert_int_eq(eng.pending, LIST);
    answer(&eng);
    ck_assert_int_eq(eng.pending, STOP);
    ck_assert_str_eq(eng.last_stop, added);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 3);
}
END_TEST

START_TEST(test_dry_run_changes_nothing)
{
    fh->dry_run = 1;
    make_fleet("stop", 0);
    sb_fleet_start(fleet);
    settle(&eng);
    desired(3);
    desired(3);
    settle(&eng);
    ck_assert_int_eq(eng.starts + eng.stops, 0);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "would POST /start  (toward 1)"), 1); /* min */
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "would POST /start  (toward 3)"), 1);
    /* on_stop: stop is not acted on either. */
    ck_assert_int_eq(sb_fleet_stop(fleet), 0);
    ck_assert_int_eq(eng.stops, 0);
}
END_TEST

START_TEST(test_on_stop_keep_and_stop)
{
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    desired(3);
    settle(&eng);
    ck_assert_int_eq(sb_fleet_stop(fleet), 0);
    ck_assert_uint_eq(eng.n, 3); /* the fleet outlives the daemon */
    ck_assert_int_eq(fh->timers_live, 0);
    sb_fleet_free(fleet);

    /* A reload replacing the scaler: the new instance adopts this fleet, nothing is stopped. */
    make_fleet("stop", 0);
    sb_fleet_start(fleet);
    settle(&eng);
    fh->stop_reason = SB_STOP_REPLACED;
    ck_assert_int_eq(sb_fleet_stop(fleet), 0);
    ck_assert_uint_eq(eng.n, 3);
    sb_fleet_free(fleet);

    fh->stop_reason = SB_STOP_SHUTDOWN;
    make_fleet("stop", 0);
    sb_fleet_start(fleet);
    settle(&eng); /* adopts the three */
    ck_assert_int_eq(sb_fleet_stop(fleet), SB_PENDING);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 0);
    ck_assert_int_eq(fh->stopped, 1);
}
END_TEST

START_TEST(test_option_errors)
{
    memset(rows, 0, sizeof rows);
    rows[1] = (sb_value){.is_set = 1, .str = "later"};
    char err[128];
    ck_assert_int_eq(
        sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &eng, &fleet, err, sizeof err),
        -EINVAL);
    ck_assert_str_eq(err, "on_stop: keep or stop, got 'later'");
    rows[1].str = "keep";
    rows[0] = (sb_value){.is_set = 1, .duration_ms = 10};
    ck_assert_int_eq(
        sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &eng, &fleet, err, sizeof err),
        -EINVAL);
    ck_assert_str_eq(err, "reconcile_every: at least 100ms");
    fleet = NULL;
}
END_TEST

START_TEST(test_drained_event_stops_before_the_timeout)
{
    fh->subscribable = "router";
    memset(rows, 0, sizeof rows);
    const char *from[] = {"router"};
    rows[0] = (sb_value){.is_set = 1, .duration_ms = 30000};
    rows[1] = (sb_value){.is_set = 1, .str = "keep"};
    rows[2] = (sb_value){.is_set = 1, .duration_ms = 60000};
    rows[3] = (sb_value){.is_set = 1, .items = from, .count = 1};
    char err[128];
    ck_assert_int_eq(
        sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &eng, &fleet, err, sizeof err),
        0);
    ck_assert_uint_eq(fh->nsubs, 1);
    ck_assert_str_eq(fh->subs[0].topic, SB_TOPIC_DRAINED);
    sb_fleet_start(fleet);
    desired(3);
    settle(&eng);
    char newest[32], other[32];
    snprintf(newest, sizeof newest, "%s", eng.ids[2]);
    snprintf(other, sizeof other, "%s", eng.ids[1]);
    desired(2);
    answer(&eng);                        /* the fresh list */
    ck_assert_int_eq(eng.pending, NONE); /* draining: waits up to a minute */
    /* Another scaler's member, or another member of ours: nothing happens. */
    sb_label wrong[2] = {{"instance", newest}, {"scaler", "api"}};
    sb_event ev = {.size = sizeof ev, .topic = SB_TOPIC_DRAINED, .source_id = "router",
                   .labels = wrong, .nlabels = 2};
    fh->subs[0].cb(fh->subs[0].arg, &ev);
    sb_label not_it[1] = {{"instance", other}};
    ev.labels = not_it;
    ev.nlabels = 1;
    fh->subs[0].cb(fh->subs[0].arg, &ev);
    ck_assert_int_eq(eng.pending, NONE);
    /* The router says the newest has no request left: it is stopped now. */
    sb_label it[2] = {{"instance", newest}, {"scaler", "web"}};
    ev.labels = it;
    ev.nlabels = 2;
    fh->subs[0].cb(fh->subs[0].arg, &ev);
    ck_assert_int_eq(eng.pending, STOP);
    ck_assert_str_eq(eng.last_stop, newest);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 2);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "drained (router says so)"), 1);

    /* Wanted again while draining: kept, listed ready again, no stop and no extra start. */
    desired(1);
    answer(&eng); /* the fresh list */
    ck_assert_int_eq(eng.pending, NONE);
    int starts = eng.starts;
    desired(2);
    answer(&eng); /* the fresh list */
    ck_assert_int_eq(eng.pending, NONE);
    ck_assert_int_eq(eng.starts, starts);
    ck_assert_int_eq(eng.stops, 1);
    ck_assert_uint_eq(logs_with(SB_LOG_INFO, "is wanted again; no longer draining it"), 1);
    char *text = cJSON_PrintUnformatted(fh->pubs[fh->npub - 1].payload);
    ck_assert_ptr_null(strstr(text, "stopping"));
    free(text);
    sb_fleet_free(fleet);
    fleet = NULL;
    ck_assert_int_eq(fh->subs[0].live, 0); /* unsubscribed */

    /* An id that names nothing is a config error. */
    from[0] = "nope";
    ck_assert_int_eq(
        sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &eng, &fleet, err, sizeof err),
        -ENOENT);
    ck_assert_str_eq(err, "drain_from: no component with the id 'nope'");
    fleet = NULL;
}
END_TEST

START_TEST(test_reconcile_before_any_policy_holds_the_adopted_count)
{
    eng_add(&eng, SB_MEMBER_READY);
    eng_add(&eng, SB_MEMBER_READY);
    eng_add(&eng, SB_MEMBER_READY);
    make_fleet("keep", 0);
    sb_fleet_start(fleet);
    sb_timer *reconcile = fh->last_timer;
    settle(&eng);
    ck_assert_int_eq(sb_fleet_desired(fleet), -1);
    eng_remove(&eng, eng.ids[0]); /* killed behind our back before any policy decided */
    fh->last_timer = reconcile;
    fire_reconcile();
    settle(&eng);
    ck_assert_uint_eq(eng.n, 3);
    ck_assert_int_eq(eng.starts, 1);
}
END_TEST

/* An engine that keeps its own count (Marathon, an Auto Scaling group): members come later. */
static int64_t counted, count_calls;
static void cnt_list(void *self, sb_fleet *f)
{
    engine *e = self;
    e->lists++;
    e->pending = LIST;
    e->f = f;
}
static void cnt_set(void *self, sb_fleet *f, int64_t n)
{
    (void)self;
    count_calls++;
    counted = n;
    sb_fleet_action_done(f, SB_ACTION_DONE, "ok");
}
static const sb_fleet_ops count_ops = {.list = cnt_list, .set_count = cnt_set};

START_TEST(test_engine_count_is_compared_not_the_members)
{
    counted = 4;
    count_calls = 0;
    make_fleet("keep", 0);
    sb_fleet_free(fleet);
    char err[128];
    ck_assert_int_eq(sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &count_ops, &eng,
                                  &fleet, err, sizeof err),
                     0);
    sb_fleet_start(fleet);
    sb_timer *reconcile = fh->last_timer;
    /* Adopted: the engine says 4, two tasks run so far (a deployment in progress). */
    eng_add(&eng, SB_MEMBER_READY);
    eng_add(&eng, SB_MEMBER_STARTING);
    eng.pending = NONE;
    sb_fleet_listed_count(fleet, eng.m, eng.n, counted);
    ck_assert_int_eq(count_calls, 0); /* not asked again while the engine deploys */
    desired(6);
    eng.pending = NONE; /* the fresh list: still 4 asked */
    sb_fleet_listed_count(fleet, eng.m, eng.n, 4);
    ck_assert_int_eq(count_calls, 1);
    ck_assert_int_eq(counted, 6);
    eng.pending = NONE;
    sb_fleet_listed_count(fleet, eng.m, eng.n, counted);
    ck_assert_int_eq(count_calls, 1);
    /* Someone sets 9 behind our back: logged and repaired at the reconcile. */
    fh->last_timer = reconcile;
    fire_reconcile();
    eng.pending = NONE;
    sb_fleet_listed_count(fleet, eng.m, eng.n, 9);
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, "changed outside scalebus: the count went from 6 to 9"),
                      1);
    ck_assert_int_eq(count_calls, 2);
    ck_assert_int_eq(counted, 6);
}
END_TEST

/* Fleets of one host and period share one reconcile timer: a file of 10,000 scalers has one, not
 * 10,000. It is handed to another fleet when its owner goes, and every fleet is still listed on
 * each tick; another period has a timer of its own. */
START_TEST(test_reconcile_timer_is_shared)
{
    engine e2, e3;
    memset(&e2, 0, sizeof e2);
    memset(&e3, 0, sizeof e3);
    make_fleet("keep", 0);
    sb_fleet *f2 = NULL, *f3 = NULL;
    char err[128];
    ck_assert_int_eq(sb_fleet_new(fake_host_instance(fh), &fh->host, rows, &ops, &e2, &f2, err,
                                  sizeof err),
                     0);
    ck_assert_int_eq(sb_fleet_start(fleet), 0);
    settle(&eng);
    sb_timer *shared = fh->last_timer;
    ck_assert_int_eq(sb_fleet_start(f2), 0);
    settle(&e2);
    ck_assert_int_eq(fh->timers_live, 1);
    ck_assert_ptr_eq(fh->last_timer, shared);

    /* One tick lists both. */
    int lists1 = eng.lists, lists2 = e2.lists;
    fire_reconcile();
    ck_assert_int_eq(eng.pending, LIST);
    ck_assert_int_eq(e2.pending, LIST);
    settle(&eng);
    settle(&e2);
    ck_assert_int_eq(eng.lists, lists1 + 1);
    ck_assert_int_eq(e2.lists, lists2 + 1);

    /* Another period: a timer of its own. */
    sb_value rows3[SB_FLEET_OPTION_COUNT];
    memcpy(rows3, rows, sizeof rows3);
    rows3[0].duration_ms = 5000;
    ck_assert_int_eq(sb_fleet_new(fake_host_instance(fh), &fh->host, rows3, &ops, &e3, &f3, err,
                                  sizeof err),
                     0);
    ck_assert_int_eq(sb_fleet_start(f3), 0);
    settle(&e3);
    ck_assert_int_eq(fh->timers_live, 2);
    ck_assert_uint_eq(fh->last_timer->repeat_ms, 5000);
    sb_timer *own = fh->last_timer;

    /* The owner of the shared timer goes: the other fleet is still reconciled, on a new timer
     * due within the period. */
    sb_fleet_free(fleet);
    fleet = NULL;
    ck_assert_int_eq(fh->timers_live, 2);
    ck_assert_ptr_nonnull(fh->last_timer);
    ck_assert_ptr_ne(fh->last_timer, own);
    ck_assert_uint_le(fh->last_timer->timeout_ms, 30000);
    lists2 = e2.lists;
    int lists3 = e3.lists;
    fire_reconcile();
    ck_assert_int_eq(e2.pending, LIST);
    ck_assert_int_eq(e3.pending, NONE);
    settle(&e2);
    ck_assert_int_eq(e2.lists, lists2 + 1);
    ck_assert_int_eq(e3.lists, lists3);

    sb_fleet_free(f2);
    ck_assert_int_eq(fh->timers_live, 1);
    sb_fleet_free(f3);
    ck_assert_int_eq(fh->timers_live, 0);
}
END_TEST

/* A member id longer than any fixed buffer is drained and stopped by its whole id. */
START_TEST(test_long_member_id_drained_and_stopped)
{
    make_fleet("keep", 5000);
    sb_fleet_start(fleet);
    desired(2);
    settle(&eng);
    ck_assert_uint_eq(eng.n, 2);
    /* The newest member gets an id of 600 characters (an engine's long name). */
    static char long_id[601];
    memset(long_id, 'x', 600);
    long_id[600] = '\0';
    eng.m[1].id = long_id;
    sb_fleet_changed(fleet);
    settle(&eng);
    desired(1);
    settle(&eng);
    ck_assert_int_eq(eng.stops, 0); /* draining first */
    ck_assert_uint_eq(fh->last_timer->timeout_ms, 5000);
    fh->last_timer->cb(fh->last_timer->arg);
    ck_assert_int_eq(eng.pending, STOP);
    ck_assert_int_eq(eng.stops, 1);
    eng.pending = NONE;
    sb_fleet_action_done(fleet, SB_ACTION_FAILED, "engine said no");
    char want[64];
    snprintf(want, sizeof want, "stop %.20s", long_id);
    ck_assert_uint_eq(logs_with(SB_LOG_WARN, want), 1);
    eng.m[1].id = eng.ids[1];
}
END_TEST

static Suite *fleet_suite(void)
{
    Suite *s = suite_create("fleet");
    TCase *c = tcase_create("contract");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_add_test(c, test_adopts_and_never_assumes);
    tcase_add_test(c, test_raises_to_min_and_holds_max);
    tcase_add_test(c, test_one_call_at_a_time_newest_desired);
    tcase_add_test(c, test_scale_down_newest_first);
    tcase_add_test(c, test_drain_lists_stopping_first);
    tcase_add_test(c, test_busy_is_retried_not_counted);
    tcase_add_test(c, test_failed_is_counted_logged_once_and_retried);
    tcase_add_test(c, test_unreachable_engine_then_back);
    tcase_add_test(c, test_reconcile_repairs_drift_and_replaces_failed);
    tcase_add_test(c, test_dry_run_changes_nothing);
    tcase_add_test(c, test_on_stop_keep_and_stop);
    tcase_add_test(c, test_option_errors);
    tcase_add_test(c, test_drained_event_stops_before_the_timeout);
    tcase_add_test(c, test_reconcile_before_any_policy_holds_the_adopted_count);
    tcase_add_test(c, test_engine_count_is_compared_not_the_members);
    tcase_add_test(c, test_reconcile_timer_is_shared);
    tcase_add_test(c, test_long_member_id_drained_and_stopped);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fleet_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
