/*
 * test_waiter.c - Waiter's algorithm (connectors/waiter): table cases worked by hand from the
 * formulas Waiter publishes (docs/autoscaling.md, src/waiter/scaling.clj), the normalisation of
 * its factors by elapsed ticks, jitter, slow scale-down, bounds, and a property over random
 * traces (the target and the decision never leave [min, max]).
 *
 * When the plugin is built (SB_WAITER_PLUGIN, it needs the policy SDK), the same cases also run
 * through waiter.so itself: loaded with dlopen, its options read from YAML by core/config.c and
 * driven through the shared fake host (fake_host.c) that records what it publishes and logs.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "waiter_core.h"

#define S(x) ((uint64_t)(x)*1000000000ull)
#define MS(x) ((uint64_t)(x)*1000000ull)

static sb_waiter make(double up, double down, double jitter, int64_t min, int64_t max)
{
    sb_waiter_params p;
    sb_waiter_params_default(&p);
    p.scale_up_factor = up;
    p.scale_down_factor = down;
    p.jitter_threshold = jitter;
    p.min = min;
    p.max = max;
    char err[128];
    ck_assert_int_eq(sb_waiter_params_check(&p, err, sizeof err), 0);
    sb_waiter w;
    sb_waiter_init(&w, &p);
    return w;
}

/* Runs once a second from t=0 with constant outstanding; the count follows each decision.
 * Writes the decisions into out[n]. */
static void ramp(sb_waiter *w, double outstanding, int64_t total, int64_t *out, int n)
{
    sb_waiter_step st;
    for (int i = 0; i < n; i++) {
        sb_waiter_run(w, S(i), outstanding, total, &st);
        out[i] = st.desired;
        total = st.desired;
    }
}

/* ---- the formulas, by hand ------------------------------------------------------------------- */

/* 10 outstanding, concurrency 1, from 1 instance, scale_up_factor 0.1, one run a second.
 * ideal = 10; after n ticks the target is 10 - 9 * 0.9^n (the first run counts one tick):
 *   n  target     total  delta   action
 *   1  1.9        1      0.9     ceil(0.89) = +1 -> 2
 *   2  2.71       2      0.71    +1 -> 3
 *   3  3.439      3      0.439   < 0.5: none -> 3
 *   4  4.0951     3      1.0951  ceil(1.0851) = +2 -> 5
 *   5  4.68559    5      -0.31   none -> 5
 *   6  5.217031   5      0.217   none -> 5
 *   7  5.6953279  5      0.695   +1 -> 6
 *   8  6.1257951  6      0.126   none -> 6
 *   9  6.5132156  6      0.513   ceil(0.503) = +1 -> 7
 *  10  6.8618940  7      -0.138  none -> 7
 * The last instance needs the target past 9.5 (jitter): 9 * 0.9^n <= 0.5, n >= 27.4: run 28. */
START_TEST(test_ramp_up)
{
    sb_waiter w = make(0.1, 0.001, 0.5, 0, -1);
    int64_t got[40];
    ramp(&w, 10, 1, got, 40);
    static const int64_t want[10] = {2, 3, 3, 5, 5, 5, 6, 6, 7, 7};
    for (int i = 0; i < 10; i++)
        ck_assert_msg(got[i] == want[i], "run %d: %lld, want %lld", i + 1, (long long)got[i],
                      (long long)want[i]);
    for (int i = 0; i < 40; i++)
        ck_assert_int_le(got[i], 10);
    ck_assert_int_eq(got[26], 9);
    ck_assert_int_eq(got[27], 10);
    ck_assert_int_eq(got[39], 10);
    ck_assert(fabs(w.target - (10 - 9 * pow(0.9, 40))) < 1e-9);
}
END_TEST

START_TEST(test_step_fields)
{
    sb_waiter w = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_step st;
    sb_waiter_run(&w, S(100), 10, 1, &st);
    ck_assert_uint_eq(st.ticks, 1);
    ck_assert_int_eq(st.ideal, 10);
    ck_assert(st.target_before == 1.0);
    ck_assert(fabs(st.target - 1.9) < 1e-12);
    ck_assert(fabs(st.delta - 0.9) < 1e-12);
    ck_assert_int_eq(st.act, 1);
    ck_assert_int_eq(st.scale_by, 1);
    ck_assert_int_eq(st.desired, 2);
    ck_assert_int_eq(st.within_jitter, 0);
    ck_assert_int_eq(st.enough, 0);
}
END_TEST

/* ideal = ceil(outstanding * scale_factor / concurrency_level). */
START_TEST(test_ideal)
{
    static const struct {
        double outstanding, scale_factor, concurrency;
        int64_t ideal;
    } cases[] = {
        {40, 1, 4, 10}, {41, 1, 4, 11}, {41, 0.5, 4, 6}, {0, 1, 4, 0},   {1, 1, 100, 1},
        {7, 2, 1, 14},  {3, 1, 1.5, 2}, {-5, 1, 1, 0},   {NAN, 1, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_waiter_params p;
        sb_waiter_params_default(&p);
        p.scale_factor = cases[i].scale_factor;
        p.concurrency_level = cases[i].concurrency;
        sb_waiter w;
        sb_waiter_init(&w, &p);
        sb_waiter_step st;
        sb_waiter_run(&w, 0, cases[i].outstanding, 0, &st);
        ck_assert_msg(st.ideal == cases[i].ideal, "case %zu: ideal %lld, want %lld", i,
                      (long long)st.ideal, (long long)cases[i].ideal);
    }
}
END_TEST

/* One run after 10 s moves the target as far as ten runs 1 s apart:
 * 1 - (1 - 0.1)^10 = 0.6513; from 1.9 toward 10: 10 - 8.1 * 0.9^10 = 10 - 9 * 0.9^11. */
START_TEST(test_ticks_normalisation)
{
    sb_waiter a = make(0.1, 0.001, 0.5, 0, -1), b = a;
    sb_waiter_step st;
    sb_waiter_run(&a, S(0), 10, 1, &st);
    sb_waiter_run(&a, S(10), 10, 1, &st);
    ck_assert_uint_eq(st.ticks, 10);
    for (int t = 0; t <= 10; t++)
        sb_waiter_run(&b, S(t), 10, 1, &st);
    double want = 10 - 9 * pow(0.9, 11);
    ck_assert(fabs(a.target - want) < 1e-9);
    ck_assert(fabs(b.target - want) < 1e-9);
    ck_assert_int_eq(st.desired, 8); /* 7.1757 with 1 running: ceil(6.1657) = +7 -> 8 */

    /* Scale-down the same way: 105 s at once is 105 one-second runs. */
    sb_waiter c = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_run(&c, S(0), 0, 10, &st); /* 10 -> 9.99 */
    sb_waiter_run(&c, S(104), 0, 10, &st);
    ck_assert_uint_eq(st.ticks, 104);
    ck_assert(fabs(c.target - 10 * pow(0.999, 105)) < 1e-9);
    ck_assert_int_eq(st.desired, 9);

    /* A fraction of a second is carried: runs at 0, 0.4, 0.8, 1.2, 2.0 and 2.1 s count 1, 0, 0,
     * 1, 1 and 0 ticks; a run back in time counts none. */
    sb_waiter d = make(0.1, 0.001, 0.5, 0, -1);
    static const uint64_t at[] = {0, MS(400), MS(800), MS(1200), MS(2000), MS(2100), MS(1500)};
    static const uint64_t ticks[] = {1, 0, 0, 1, 1, 0, 0};
    double before = 0;
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        sb_waiter_run(&d, at[i], 10, 1, &st);
        ck_assert_msg(st.ticks == ticks[i], "run %zu: %llu ticks", i, (unsigned long long)st.ticks);
        if (ticks[i] == 0)
            ck_assert(st.target == before); /* no time, no movement */
        before = st.target;
    }

    /* Except with a factor of 1 (straight to the ideal): a burst 0.2 s after an idle reading is
     * acted on at once, not at the next second (the router's cold start). */
    sb_waiter e = make(1, 1, 0.5, 0, -1);
    sb_waiter_run(&e, S(0), 0, 0, &st);
    sb_waiter_run(&e, MS(200), 5, 0, &st);
    ck_assert_uint_eq(st.ticks, 0);
    ck_assert(st.target == 5);
    ck_assert_int_eq(st.desired, 5);
}
END_TEST

START_TEST(test_jitter)
{
    /* 5 running, 6 wanted: 0.1 * 6 + 0.9 * 5 = 5.1, 0.1 from 5: no action. */
    sb_waiter w = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_step st;
    sb_waiter_run(&w, S(0), 6, 5, &st);
    ck_assert(fabs(st.target - 5.1) < 1e-12);
    ck_assert_int_eq(st.within_jitter, 1);
    ck_assert_int_eq(st.act, 0);
    ck_assert_int_eq(st.desired, 5);

    /* jitter_threshold 2, 10 wanted from 1: targets 1.9, 2.71 and 3.439 are 0.9, 1.71 and
     * 2.439 above 1, so the first action is at run 3: ceil(2.429) = +3 -> 4; then 4 holds until
     * the target passes 6 (run 8: 6.1258 -> ceil(2.1158) = +3 -> 7). */
    sb_waiter j = make(0.1, 0.001, 2, 0, -1);
    int64_t got[10];
    ramp(&j, 10, 1, got, 10);
    static const int64_t want[10] = {1, 1, 4, 4, 4, 4, 4, 7, 7, 7};
    for (int i = 0; i < 10; i++)
        ck_assert_msg(got[i] == want[i], "run %d: %lld, want %lld", i + 1, (long long)got[i],
                      (long long)want[i]);
}
END_TEST

/* 10 running, nothing outstanding, scale_down_factor 0.001: the target is 10 * 0.999^n. An
 * instance goes when ceil(delta - 0.01) <= -1, i.e. when the target is at most 9.01:
 * 0.999^n <= 0.901, n >= 104.2: run 105 (at run 104 the target is 9.0118: delta -0.988, past the
 * jitter threshold, yet ceil(-0.998) = 0). The next goes at 8.01: n >= 221.8, run 222. Up is
 * ten times faster than that at once: 9 -> 10 with 10 wanted takes one run. */
START_TEST(test_scale_down_slow)
{
    sb_waiter w = make(0.1, 0.001, 0.5, 0, -1);
    int64_t got[230];
    ramp(&w, 0, 10, got, 230);
    for (int i = 0; i < 104; i++)
        ck_assert_msg(got[i] == 10, "run %d: %lld", i + 1, (long long)got[i]);
    ck_assert_int_eq(got[104], 9);
    for (int i = 105; i < 221; i++)
        ck_assert_int_eq(got[i], 9);
    ck_assert_int_eq(got[221], 8);

    sb_waiter a = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_step st;
    sb_waiter_run(&a, S(0), 0, 10, &st);
    sb_waiter_run(&a, S(103), 0, 10, &st); /* run 104 */
    ck_assert(fabs(st.delta - (10 * pow(0.999, 104) - 10)) < 1e-9);
    ck_assert(st.delta < -0.5);
    ck_assert_int_eq(st.act, 1);
    ck_assert_int_eq(st.scale_by, 0);
    ck_assert_int_eq(st.desired, 10);

    sb_waiter u = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_run(&u, S(0), 100, 9, &st); /* ideal 100: 0.1 * 100 + 0.9 * 9 = 18.1 */
    ck_assert(fabs(st.target - 18.1) < 1e-12);
    ck_assert_int_eq(st.desired, 19);
}
END_TEST

/* Scale-up dominates: when the up-smoothed target is not below the old one it wins, even if
 * the down-smoothed one differs; otherwise the down-smoothed one is taken. */
START_TEST(test_up_dominates)
{
    sb_waiter w = make(0.5, 0.5, 0.5, 0, -1);
    sb_waiter_step st;
    sb_waiter_run(&w, S(0), 4, 4, &st); /* target 4, ideal 4: both give 4 */
    ck_assert(st.target == 4.0);
    sb_waiter_run(&w, S(1), 0, 4, &st); /* su = sd = 2: down */
    ck_assert(st.target == 2.0);
    sb_waiter_run(&w, S(2), 10, 4, &st); /* su = 6 >= 2 */
    ck_assert(st.target == 6.0);
}
END_TEST

/* "No action when delta > 0 but ideal <= total and total >= min": the target is above the count
 * only because it has not come down yet. Below min, act. */
START_TEST(test_enough_instances)
{
    sb_waiter w = make(0.1, 0.001, 0.5, 0, -1);
    sb_waiter_step st;
    sb_waiter_run(&w, S(0), 5, 5, &st); /* target 5 */
    sb_waiter_run(&w, S(1), 2, 3, &st); /* ideal 2: sd = 0.002 + 4.995 = 4.997, 3 running */
    ck_assert(fabs(st.target - 4.997) < 1e-12);
    ck_assert_int_eq(st.enough, 1);
    ck_assert_int_eq(st.desired, 3);

    sb_waiter m = make(0.1, 0.001, 0.5, 4, -1);
    sb_waiter_run(&m, S(0), 5, 5, &st);
    sb_waiter_run(&m, S(1), 2, 3, &st); /* 3 < min 4: act, ceil(1.987) = +2 */
    ck_assert_int_eq(st.enough, 0);
    ck_assert_int_eq(st.scale_by, 2);
    ck_assert_int_eq(st.desired, 5);
}
END_TEST

START_TEST(test_bounds)
{
    sb_waiter w = make(0.1, 0.001, 0.5, 0, 3);
    int64_t got[50];
    ramp(&w, 100, 1, got, 50);
    for (int i = 0; i < 50; i++)
        ck_assert_int_le(got[i], 3);
    ck_assert_int_eq(got[49], 3);
    ck_assert(w.target == 3.0);

    /* The target starts at the count, held to min: from 0 with min 2, at once to 2. */
    sb_waiter m = make(0.1, 0.001, 0.5, 2, 10);
    sb_waiter_step st;
    sb_waiter_run(&m, S(0), 0, 0, &st);
    ck_assert(st.target == 2.0);
    ck_assert_int_eq(st.desired, 2);
}
END_TEST

START_TEST(test_params)
{
    static const struct {
        int field;
        double value;
        const char *msg;
    } cases[] = {
        {0, 0, "concurrency_level: must be more than 0, got 0"},
        {0, NAN, "concurrency_level: must be more than 0, got nan"},
        {1, -1, "scale_factor: must be more than 0, got -1"},
        {2, 0, "scale_up_factor: must be more than 0 and at most 1, got 0"},
        {2, 1.5, "scale_up_factor: must be more than 0 and at most 1, got 1.5"},
        {3, 0, "scale_down_factor: must be more than 0 and at most 1, got 0"},
        {4, -0.1, "jitter_threshold: must be 0 or more, got -0.1"},
        {5, -1, "min: must be 0 or more, got -1"},
        {6, 1, "max: must not be less than min (2), got 1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_waiter_params p;
        sb_waiter_params_default(&p);
        double *f[] = {&p.concurrency_level, &p.scale_factor, &p.scale_up_factor,
                       &p.scale_down_factor, &p.jitter_threshold};
        if (cases[i].field < 5)
            *f[cases[i].field] = cases[i].value;
        else if (cases[i].field == 5)
            p.min = (int64_t)cases[i].value;
        else {
            p.min = 2;
            p.max = (int64_t)cases[i].value;
        }
        char err[128] = "";
        ck_assert_int_eq(sb_waiter_params_check(&p, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, cases[i].msg);
    }
    sb_waiter_params p;
    sb_waiter_params_default(&p);
    char err[128];
    ck_assert_int_eq(sb_waiter_params_check(&p, err, sizeof err), 0);
    p.scale_up_factor = 1; /* 1: straight to the ideal count */
    p.jitter_threshold = 0;
    ck_assert_int_eq(sb_waiter_params_check(&p, err, sizeof err), 0);
}
END_TEST

/* ---- property -------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

static double rnd_unit(void)
{
    return (double)rnd() / 2147483648.0; /* [0, 1) */
}

/* Thousands of random traces (random factors, bounds, outstanding, gaps of 0 to 30 s, counts
 * that follow the decisions or wander inside the bounds): the float target and the decided
 * count never leave [min, max], and "no action" never changes the count. */
START_TEST(test_property_bounds)
{
    rng_state = 0x5eed0001u;
    for (int trace = 0; trace < 3000; trace++) {
        sb_waiter_params p;
        sb_waiter_params_default(&p);
        p.concurrency_level = 1 + rnd() % 8;
        p.scale_factor = 0.25 + rnd_unit() * 2;
        p.scale_up_factor = 0.01 + rnd_unit() * 0.99;
        p.scale_down_factor = 0.0005 + rnd_unit() * 0.5;
        p.jitter_threshold = rnd_unit() * 2;
        p.min = rnd() % 6;
        p.max = rnd() % 4 == 0 ? -1 : p.min + (int64_t)(rnd() % 40);
        char err[128];
        ck_assert_int_eq(sb_waiter_params_check(&p, err, sizeof err), 0);
        sb_waiter w;
        sb_waiter_init(&w, &p);
        int64_t hi = p.max >= 0 ? p.max : p.min + 100;
        int64_t total = p.min + (int64_t)(rnd() % (uint32_t)(hi - p.min + 1));
        uint64_t now = 0;
        int follow = rnd() % 2;
        for (int step = 0; step < 200; step++) {
            now += (uint64_t)(rnd() % 30001) * 1000000ull;
            double outstanding = rnd() % 5 == 0 ? 0 : rnd_unit() * 500;
            sb_waiter_step st;
            sb_waiter_run(&w, now, outstanding, total, &st);
            /* Checked with plain ifs: Check records every ck_assert, and there are millions. */
            int ok = st.target >= (double)p.min && (p.max < 0 || st.target <= (double)p.max) &&
                     st.desired >= p.min && (p.max < 0 || st.desired <= p.max) &&
                     (st.act || st.desired == total);
            if (!ok)
                ck_abort_msg("trace %d step %d: target %g desired %lld total %lld [%lld, %lld]",
                             trace, step, st.target, (long long)st.desired, (long long)total,
                             (long long)p.min, (long long)p.max);
            total = follow ? st.desired : p.min + (int64_t)(rnd() % (uint32_t)(hi - p.min + 1));
        }
    }
}
END_TEST

/* ---- through the plugin ---------------------------------------------------------------------- */
#ifdef SB_WAITER_PLUGIN
#include "fake_host.h"

/* Each instance: component "w" of this file, its options spliced in where the head ends. */
static test_connector plug = {
    .id = "w",
    .pipeline_head = "triggers:\n  - {id: q, type: t}\n"
                     "connectors:\n  - {id: w, type: waiter, from: q, to: s1",
    .pipeline_tail = "}\nscalers:\n  - {id: s1, type: s, max: 1000}\n",
};

static void deliver(void *state, const char *topic, double value, uint64_t t)
{
    sb_label l = {"queue", "jobs"};
    sb_event ev = {.source = 1,
                   .source_id = strcmp(topic, SB_TOPIC_INSTANCES) == 0 ? "s1" : "q",
                   .topic = topic,
                   .mono_ns = t,
                   .value = value,
                   .labels = &l,
                   .nlabels = 1};
    plug.plugin->on_event(state, &ev);
}

/* The value of decision i. */
static double decided(size_t i)
{
    return fake_host_publish_at(plug.fh, i)->value;
}

/* The hand-worked ramp again, through waiter.so, the policy SDK and the scaler's feedback
 * (stabilize_down 0s: Waiter's own smoothing only). */
START_TEST(test_plugin_ramp)
{
    test_connector_open(&plug, SB_WAITER_PLUGIN, "waiter");
    void *st = test_connector_create_ok(&plug, "stabilize_down: 0s");
    static const int64_t want[10] = {2, 3, 3, 5, 5, 5, 6, 6, 7, 7};
    deliver(st, SB_TOPIC_INSTANCES, 1, 0);
    double running = 1;
    for (int i = 0; i < 10; i++) {
        deliver(st, SB_TOPIC_READING, 10, S(i));
        ck_assert_uint_eq(plug.fh->npub, (size_t)i + 1);
        ck_assert_msg(decided(i) == (double)want[i], "run %d: %g (%s)", i + 1, decided(i),
                      fake_host_reason(plug.fh, i));
        ck_assert_uint_eq(fake_host_publish_at(plug.fh, i)->time_ns, S(i));
        running = decided(i);
        deliver(st, SB_TOPIC_INSTANCES, running, S(i));
    }
    ck_assert_uint_eq(plug.fh->npub, 10); /* instance lists decide nothing */
    ck_assert_str_eq(fake_host_reason(plug.fh, 0),
                     "outstanding=10 concurrency_level=1 -> ideal 10; target 1.9 "
                     "-> 2 (+1)");
    ck_assert_str_eq(fake_host_reason(plug.fh, 3),
                     "outstanding=10 concurrency_level=1 -> ideal 10; target "
                     "4.095 -> 5 (+2)");
    ck_assert_str_eq(fake_host_reason(plug.fh, 2),
                     "outstanding=10 concurrency_level=1 -> ideal 10; target "
                     "3.439: no change (within jitter_threshold 0.5); hold 3");
    plug.plugin->destroy(st);
    test_connector_close(&plug);
}
END_TEST

START_TEST(test_plugin_reasons)
{
    test_connector_open(&plug, SB_WAITER_PLUGIN, "waiter");
    /* 40 outstanding, concurrency 4: ideal 10; from 2 running, 0.1 * 10 + 0.9 * 2 = 2.8. */
    void *st = test_connector_create_ok(&plug, "concurrency_level: 4");
    deliver(st, SB_TOPIC_INSTANCES, 2, 0);
    deliver(st, SB_TOPIC_READING, 40, S(5));
    ck_assert_uint_eq(plug.fh->npub, 1);
    ck_assert(decided(0) == 3);
    ck_assert_str_eq(fake_host_reason(plug.fh, 0),
                     "outstanding=40 concurrency_level=4 -> ideal 10; target 2.8 -> 3 (+1)");
    plug.plugin->destroy(st);

    /* scale_factor shows when it is not 1; "enough instances" says why it holds. */
    st = test_connector_create_ok(&plug, "scale_factor: 0.5, stabilize_down: 0s");
    deliver(st, SB_TOPIC_INSTANCES, 5, 0);
    deliver(st, SB_TOPIC_READING, 10, S(0)); /* ideal 5, target 5 */
    deliver(st, SB_TOPIC_INSTANCES, 3, S(0));
    deliver(st, SB_TOPIC_READING, 4, S(1)); /* ideal 2: 4.997 above 3 running, yet enough */
    ck_assert_uint_eq(plug.fh->npub, 2);
    ck_assert_str_eq(fake_host_reason(plug.fh, 1),
                     "outstanding=4 scale_factor=0.5 concurrency_level=1 -> "
                     "ideal 2; target 4.997: no change (ideal 2 <= 3 running); "
                     "hold 5");
    ck_assert(decided(1) == 5); /* a hold keeps the decided count */

    /* Not a count of requests: ignored with a warning. */
    deliver(st, SB_TOPIC_READING, NAN, S(2));
    deliver(st, SB_TOPIC_READING, -3, S(2));
    ck_assert_uint_eq(plug.fh->npub, 2);
    ck_assert_int_eq(plug.fh->logs_at[SB_LOG_WARN], 2);
    plug.plugin->destroy(st);

    /* Scale-down, slowly: 10 running, nothing outstanding; run 104 is past the jitter threshold
     * but less than one instance away, run 105 removes one. */
    st = test_connector_create_ok(&plug, "stabilize_down: 0s");
    deliver(st, SB_TOPIC_INSTANCES, 10, 0);
    for (int i = 0; i < 105; i++)
        deliver(st, SB_TOPIC_READING, 0, S(i));
    ck_assert_uint_eq(plug.fh->npub, 105);
    ck_assert(decided(103) == 10);
    ck_assert_str_eq(fake_host_reason(plug.fh, 103),
                     "outstanding=0 concurrency_level=1 -> ideal 0; target "
                     "9.012: no change (less than one instance away from 10); "
                     "hold 10");
    ck_assert(decided(104) == 9);
    ck_assert_str_eq(fake_host_reason(plug.fh, 104),
                     "outstanding=0 concurrency_level=1 -> ideal 0; target 9.003 -> 9 (-1)");
    plug.plugin->destroy(st);

    /* Waiter's max is the policy's: the target stays at 4. */
    st = test_connector_create_ok(&plug, "max: 4, stabilize_down: 0s");
    for (int i = 0; i < 60; i++)
        deliver(st, SB_TOPIC_READING, 1000, S(i));
    for (size_t i = 0; i < plug.fh->npub; i++)
        ck_assert(decided(i) <= 4);
    ck_assert(decided(plug.fh->npub - 1) == 4);
    plug.plugin->destroy(st);
    test_connector_close(&plug);
}
END_TEST

START_TEST(test_plugin_bad_options)
{
    test_connector_open(&plug, SB_WAITER_PLUGIN, "waiter");
    static const struct {
        const char *opts, *msg;
    } cases[] = {
        {"concurrency_level: 0", "concurrency_level: must be more than 0, got 0"},
        {"scale_up_factor: 2", "scale_up_factor: must be more than 0 and at most 1, got 2"},
        {"scale_down_factor: -0.5",
         "scale_down_factor: must be more than 0 and at most 1, got -0.5"},
        {"jitter_threshold: -1", "jitter_threshold: must be 0 or more, got -1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        void *state;
        char err[256];
        ck_assert_int_eq(test_connector_create(&plug, cases[i].opts, &state, err, sizeof err),
                         -EINVAL);
        ck_assert_ptr_null(state);
        ck_assert_str_eq(err, cases[i].msg);
    }
    /* The common options are checked by the policy SDK, messages starting with the name. */
    void *state;
    char err[256];
    ck_assert_int_eq(test_connector_create(&plug, "max_step_up: lots", &state, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strncmp(err, "max_step_up:", 12) == 0, "%s", err);
    test_connector_close(&plug);
}
END_TEST

/* Random traces through the plugin, with random limits: every published count is in
 * [min, max]. */
START_TEST(test_plugin_property_bounds)
{
    test_connector_open(&plug, SB_WAITER_PLUGIN, "waiter");
    rng_state = 0x5eed0002u;
    for (int trace = 0; trace < 1000; trace++) {
        int64_t min = rnd() % 5, max = min + 1 + rnd() % 30;
        char opts[256];
        snprintf(opts, sizeof opts,
                 "min: %lld, max: %lld, scale_up_factor: %.3f, scale_down_factor: %.3f, "
                 "stabilize_down: %us, max_step_up: \"%u\"",
                 (long long)min, (long long)max, 0.01 + rnd_unit() * 0.99, 0.001 + rnd_unit() * 0.5,
                 rnd() % 60, 1 + rnd() % 5);
        void *st = test_connector_create_ok(&plug, opts);
        uint64_t now = 0;
        for (int step = 0; step < 100; step++) {
            now += (uint64_t)(rnd() % 20001) * 1000000ull;
            if (rnd() % 3 == 0)
                deliver(st, SB_TOPIC_INSTANCES, (double)(rnd() % 50), now);
            deliver(st, SB_TOPIC_READING, rnd() % 4 == 0 ? 0 : rnd_unit() * 300, now);
        }
        ck_assert_uint_eq(plug.fh->npub, 100);
        for (size_t i = 0; i < plug.fh->npub; i++)
            if (!(decided(i) >= (double)min && decided(i) <= (double)max))
                ck_abort_msg("trace %d: %g outside [%lld, %lld]: %s", trace, decided(i),
                             (long long)min, (long long)max, fake_host_reason(plug.fh, i));
        plug.plugin->destroy(st);
    }
    test_connector_close(&plug);
}
END_TEST
#endif

static Suite *waiter_suite(void)
{
    Suite *s = suite_create("waiter");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_ramp_up);
    tcase_add_test(tc, test_step_fields);
    tcase_add_test(tc, test_ideal);
    tcase_add_test(tc, test_ticks_normalisation);
    tcase_add_test(tc, test_jitter);
    tcase_add_test(tc, test_scale_down_slow);
    tcase_add_test(tc, test_up_dominates);
    tcase_add_test(tc, test_enough_instances);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_params);
    tcase_add_test(tc, test_property_bounds);
    suite_add_tcase(s, tc);
#ifdef SB_WAITER_PLUGIN
    TCase *tp = tcase_create("plugin");
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, test_plugin_ramp);
    tcase_add_test(tp, test_plugin_reasons);
    tcase_add_test(tp, test_plugin_bad_options);
    tcase_add_test(tp, test_plugin_property_bounds);
    suite_add_tcase(s, tp);
#endif
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(waiter_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
