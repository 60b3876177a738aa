/*
 * test_combine.c - the combine connector (connectors/combine): each `by`, inputs keyed by source
 * and label set, stale inputs left out, nothing decided with none fresh, the explanation text,
 * the bounded input table, and a property over random traces checked against a brute-force
 * model (`max` is never below any fresh input's own value; every `by` equals the model's).
 *
 * When the plugin is built (SB_COMBINE_PLUGIN, it needs the policy SDK), it also runs through
 * combine.so itself: loaded with dlopen, its options read from YAML by core/config.c and driven
 * through the shared fake host (fake_host.c) that records what it publishes.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "combine_core.h"

#define S(x) ((uint64_t)(x)*1000000000ull)

static sb_combine *make(sb_combine_by by)
{
    sb_combine *c = sb_combine_new(by, S(60));
    ck_assert_ptr_nonnull(c);
    return c;
}

static void put(sb_combine *c, const char *src, double v, uint64_t t)
{
    ck_assert_int_eq(sb_combine_put(c, src, NULL, 0, v, t), 0);
}

static void put_label(sb_combine *c, const char *src, const char *k, const char *val, double v,
                      uint64_t t)
{
    sb_label l = {k, val};
    ck_assert_int_eq(sb_combine_put(c, src, &l, 1, v, t), 0);
}

/* ---- each `by` ------------------------------------------------------------------------------- */

START_TEST(test_each_by)
{
    static const struct {
        sb_combine_by by;
        double want;
        const char *text;
    } cases[] = {
        {SB_COMBINE_MAX, 7, "max of by-queue=7 by-cpu=4 by-latency=2.5 -> 7"},
        {SB_COMBINE_MIN, 2.5, "min of by-queue=7 by-cpu=4 by-latency=2.5 -> 2.5"},
        {SB_COMBINE_SUM, 13.5, "sum of by-queue=7 by-cpu=4 by-latency=2.5 -> 13.5"},
        {SB_COMBINE_AVG, 4.5, "avg of by-queue=7 by-cpu=4 by-latency=2.5 -> 4.5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        sb_combine *c = make(cases[i].by);
        put(c, "by-queue", 7, S(0));
        put(c, "by-cpu", 4, S(1));
        put(c, "by-latency", 2.5, S(2));
        double v = -1;
        char text[256];
        ck_assert_uint_eq(sb_combine_compute(c, S(2), &v, text, sizeof text), 3);
        ck_assert_msg(v == cases[i].want, "%s: %g", sb_combine_by_name(cases[i].by), v);
        ck_assert_str_eq(text, cases[i].text);
        sb_combine_free(c);
    }
}
END_TEST

START_TEST(test_by_names)
{
    static const char *const ok[] = {"max", "min", "sum", "avg"};
    for (int i = 0; i < 4; i++) {
        sb_combine_by by = SB_COMBINE_MAX;
        ck_assert_int_eq(sb_combine_by_parse(ok[i], &by), 0);
        ck_assert_int_eq(by, i);
        ck_assert_str_eq(sb_combine_by_name(by), ok[i]);
    }
    static const char *const bad[] = {"MAX", "mean", "", "max ", "average"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_combine_by by = SB_COMBINE_SUM;
        ck_assert_int_eq(sb_combine_by_parse(bad[i], &by), -EINVAL);
        ck_assert_int_eq(by, SB_COMBINE_SUM);
    }
    sb_combine_by by;
    ck_assert_int_eq(sb_combine_by_parse(NULL, &by), -EINVAL);
    ck_assert_ptr_null(sb_combine_new(SB_COMBINE_MAX, 0)); /* stale_after must be > 0 */
}
END_TEST

/* ---- freshness ------------------------------------------------------------------------------- */

/* stale_after 60 s: at 70 s, the value from 0 s is stale and left out; one exactly 60 s old is
 * still fresh. The newest value of an input counts, not the highest. */
START_TEST(test_stale_left_out)
{
    sb_combine *c = make(SB_COMBINE_MAX);
    put(c, "by-queue", 7, S(10));
    put(c, "by-latency", 9, S(0));
    put(c, "by-cpu", 4, S(30));
    double v = 0;
    char text[256];
    ck_assert_uint_eq(sb_combine_compute(c, S(60), &v, text, sizeof text), 3);
    ck_assert(v == 9);
    ck_assert_uint_eq(sb_combine_compute(c, S(70), &v, text, sizeof text), 2);
    ck_assert(v == 7);
    ck_assert_str_eq(text, "max of by-queue=7 by-cpu=4 (stale: by-latency) -> 7");
    put(c, "by-queue", 3, S(80));
    ck_assert_uint_eq(sb_combine_compute(c, S(80), &v, text, sizeof text), 2);
    ck_assert(v == 4);
    ck_assert_str_eq(text, "max of by-queue=3 by-cpu=4 (stale: by-latency) -> 4");
    ck_assert_uint_eq(sb_combine_compute(c, S(91), &v, text, sizeof text), 1);
    ck_assert_str_eq(text, "max of by-queue=3 (stale: by-latency, by-cpu) -> 3");
    sb_combine_free(c);
}
END_TEST

/* With none fresh, nothing is decided and the value is left alone. */
START_TEST(test_none_fresh)
{
    sb_combine *c = make(SB_COMBINE_SUM);
    double v = 42;
    char text[256];
    ck_assert_uint_eq(sb_combine_compute(c, S(0), &v, text, sizeof text), 0);
    ck_assert_str_eq(text, "sum of nothing fresh");
    put(c, "a", 1, S(0));
    put(c, "b", 2, S(5));
    ck_assert_uint_eq(sb_combine_compute(c, S(200), &v, text, sizeof text), 0);
    ck_assert(v == 42);
    ck_assert_str_eq(text, "sum of nothing fresh (stale: a, b)");
    ck_assert_uint_eq(sb_combine_compute(c, S(200), &v, NULL, 0), 0);
    sb_combine_free(c);
}
END_TEST

/* Time never runs backwards: a computation "now" earlier than a value already put counts at
 * that value's time, and an older value arriving late does not replace a newer one. */
START_TEST(test_out_of_order)
{
    sb_combine *c = make(SB_COMBINE_MAX);
    put(c, "a", 5, S(100));
    put(c, "b", 9, S(10)); /* late: 90 s older than the newest time seen */
    double v = 0;
    ck_assert_uint_eq(sb_combine_compute(c, S(10), &v, NULL, 0), 1);
    ck_assert(v == 5);
    put(c, "a", 1, S(50)); /* older than a's 100 s value: ignored */
    ck_assert_uint_eq(sb_combine_compute(c, S(100), &v, NULL, 0), 1);
    ck_assert(v == 5);
    ck_assert_int_eq(sb_combine_put(c, "a", NULL, 0, NAN, S(101)), -EINVAL);
    ck_assert_int_eq(sb_combine_put(c, "a", NULL, 0, INFINITY, S(101)), -EINVAL);
    ck_assert_uint_eq(sb_combine_compute(c, S(101), &v, NULL, 0), 1);
    ck_assert(v == 5);
    sb_combine_free(c);
}
END_TEST

/* ---- what an input is ------------------------------------------------------------------------ */

/* One source with several label sets is several inputs; label order does not matter; the
 * "reason" label a policy puts on each decision is not part of the identity. */
START_TEST(test_inputs_by_labels)
{
    sb_combine *c = make(SB_COMBINE_SUM);
    put_label(c, "queues", "queue", "jobs", 3, S(0));
    put_label(c, "queues", "queue", "mail", 4, S(0));
    sb_label ab[] = {{"b", "2"}, {"a", "1"}}, ba[] = {{"a", "1"}, {"b", "2"}};
    ck_assert_int_eq(sb_combine_put(c, "multi", ab, 2, 10, S(0)), 0);
    ck_assert_int_eq(sb_combine_put(c, "multi", ba, 2, 20, S(1)), 0); /* the same input */
    put_label(c, "by-queue", "reason", "queue=13 per_instance=2 -> 7", 7, S(1));
    put_label(c, "by-queue", "reason", "queue=15 per_instance=2 -> 8", 8, S(2));
    ck_assert_uint_eq(sb_combine_count(c), 4);
    double v = 0;
    char text[256];
    ck_assert_uint_eq(sb_combine_compute(c, S(2), &v, text, sizeof text), 4);
    ck_assert(v == 3 + 4 + 20 + 8);
    ck_assert_str_eq(text, "sum of queues{queue=jobs}=3 queues{queue=mail}=4 multi{a=1,b=2}=20 "
                           "by-queue=8 -> 35");
    sb_combine_free(c);
}
END_TEST

/* Keys are length-prefixed: no choice of characters makes two inputs one. */
START_TEST(test_key_ambiguity)
{
    sb_combine *c = make(SB_COMBINE_SUM);
    sb_label one[] = {{"k", "a,b=c"}};
    sb_label two[] = {{"k", "a"}, {"b", "c"}};
    sb_label three[] = {{"k=a", "b"}};
    ck_assert_int_eq(sb_combine_put(c, "s", one, 1, 1, S(0)), 0);
    ck_assert_int_eq(sb_combine_put(c, "s", two, 2, 2, S(0)), 0);
    ck_assert_int_eq(sb_combine_put(c, "s", three, 1, 4, S(0)), 0);
    put(c, "s{k=a}", 8, S(0));
    put(c, "1:s", 16, S(0));
    put(c, "s", 32, S(0));
    ck_assert_uint_eq(sb_combine_count(c), 6);
    double v = 0;
    ck_assert_uint_eq(sb_combine_compute(c, S(0), &v, NULL, 0), 6);
    ck_assert(v == 63);
    sb_combine_free(c);
}
END_TEST

/* At most SB_COMBINE_MAX_INPUTS inputs: a new one replaces the one heard from longest ago;
 * an input stale for 10 x stale_after is forgotten. */
START_TEST(test_bounded_inputs)
{
    sb_combine *c = make(SB_COMBINE_MAX);
    char id[32];
    for (int i = 0; i < SB_COMBINE_MAX_INPUTS; i++) {
        snprintf(id, sizeof id, "in%d", i);
        put(c, id, i == 0 ? 1000 : 1, S(1) + (uint64_t)i);
    }
    ck_assert_uint_eq(sb_combine_count(c), SB_COMBINE_MAX_INPUTS);
    double v = 0;
    ck_assert_uint_eq(sb_combine_compute(c, S(2), &v, NULL, 0), SB_COMBINE_MAX_INPUTS);
    ck_assert(v == 1000);
    put(c, "newcomer", 2, S(2)); /* in0 (the oldest) goes */
    ck_assert_uint_eq(sb_combine_count(c), SB_COMBINE_MAX_INPUTS);
    ck_assert_uint_eq(sb_combine_compute(c, S(2), &v, NULL, 0), SB_COMBINE_MAX_INPUTS);
    ck_assert(v == 2);
    sb_combine_free(c);

    c = make(SB_COMBINE_MAX);
    put(c, "old", 1, S(0));
    put(c, "new", 1, S(500));
    ck_assert_uint_eq(sb_combine_compute(c, S(600), &v, NULL, 0), 0);
    ck_assert_uint_eq(sb_combine_count(c), 2); /* 600 s: stale, not yet forgotten */
    ck_assert_uint_eq(sb_combine_compute(c, S(601), &v, NULL, 0), 0);
    ck_assert_uint_eq(sb_combine_count(c), 1);
    sb_combine_free(c);
}
END_TEST

/* Many inputs: the explanation is cut with a count of what it leaves out, and always ends in
 * the result. */
START_TEST(test_long_text)
{
    sb_combine *c = make(SB_COMBINE_MAX);
    char id[32];
    for (int i = 0; i < 300; i++) {
        snprintf(id, sizeof id, "input-number-%03d", i);
        put(c, id, i, S(100) + (uint64_t)(i < 100 ? 0 : S(100)));
    }
    char text[512];
    double v = 0;
    ck_assert_uint_eq(sb_combine_compute(c, S(200), &v, text, sizeof text), 200);
    ck_assert(v == 299);
    ck_assert_uint_lt(strlen(text), sizeof text);
    ck_assert_msg(strstr(text, " more)") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "(stale: ") != NULL, "%s", text);
    const char *tail = " -> 299";
    ck_assert_msg(strcmp(text + strlen(text) - strlen(tail), tail) == 0, "%s", text);
    ck_assert(strncmp(text, "max of input-number-100=100 ", 28) == 0);

    /* A small buffer still gets a terminated prefix. */
    char tiny[8];
    ck_assert_uint_eq(sb_combine_compute(c, S(200), &v, tiny, sizeof tiny), 200);
    ck_assert_uint_lt(strlen(tiny), sizeof tiny);
    sb_combine_free(c);
}
END_TEST

/* ---- property -------------------------------------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}

/* Random traces (2 to 8 inputs, some sharing a source with different labels, gaps of 0 to 40 s,
 * stale_after 5 to 60 s, values from -5 to 1000 with fractions) checked after every value
 * against a brute-force model of freshness: the number of fresh inputs matches, and with
 * `max` the result is never below any fresh input's own value (and is one of them); min, sum
 * and avg match the model too. */
START_TEST(test_property_random_traces)
{
    enum { MAXIN = 8 };
    static const char *const src[MAXIN] = {"a", "b", "c", "q", "q", "q", "d", "e"};
    static const char *const lab[MAXIN] = {NULL, NULL, NULL, "jobs", "mail", "img", NULL, NULL};
    rng_state = 0xc0ffee01u;
    for (int trace = 0; trace < 4000; trace++) {
        sb_combine_by by = (sb_combine_by)(rnd() % 4);
        uint64_t stale = S(5 + rnd() % 56);
        sb_combine *c = sb_combine_new(by, stale);
        ck_assert_ptr_nonnull(c);
        int nin = 2 + (int)(rnd() % (MAXIN - 1));
        int seen[MAXIN] = {0};
        double val[MAXIN] = {0};
        uint64_t at[MAXIN] = {0}, now = S(1000);
        for (int step = 0; step < 60; step++) {
            now += (uint64_t)(rnd() % 40001) * 1000000ull;
            int k = (int)(rnd() % (uint32_t)nin);
            double v = (double)(rnd() % 100501) / 100.0 - 5.0;
            sb_label l = {"queue", lab[k] ? lab[k] : ""};
            /* Checked with plain ifs: Check records every ck_assert, and there are millions. */
            if (sb_combine_put(c, src[k], lab[k] ? &l : NULL, lab[k] ? 1 : 0, v, now) != 0)
                ck_abort_msg("trace %d: put failed", trace);
            seen[k] = 1;
            val[k] = v;
            at[k] = now;

            size_t nfresh = 0;
            double mx = -INFINITY, mn = INFINITY, sum = 0;
            for (int i = 0; i < nin; i++) {
                if (!seen[i] || now - at[i] > stale)
                    continue;
                nfresh++;
                mx = val[i] > mx ? val[i] : mx;
                mn = val[i] < mn ? val[i] : mn;
                sum += val[i];
            }
            double got = NAN;
            size_t n = sb_combine_compute(c, now, &got, NULL, 0);
            if (n != nfresh || nfresh < 1) /* the value just put is always fresh */
                ck_abort_msg("trace %d step %d: %zu fresh, model %zu", trace, step, n, nfresh);
            int ok;
            if (by == SB_COMBINE_MAX) {
                ok = got == mx;
                for (int i = 0; i < nin; i++)
                    if (seen[i] && now - at[i] <= stale && got < val[i])
                        ck_abort_msg("trace %d: max %g below fresh %g", trace, got, val[i]);
            } else if (by == SB_COMBINE_MIN) {
                ok = got == mn;
            } else if (by == SB_COMBINE_SUM) {
                ok = fabs(got - sum) < 1e-6;
            } else {
                ok = fabs(got - sum / (double)nfresh) < 1e-6;
            }
            if (!ok)
                ck_abort_msg("trace %d step %d: %s %g, model max %g min %g sum %g", trace, step,
                             sb_combine_by_name(by), got, mx, mn, sum);
        }
        /* Long after the last value: nothing fresh, nothing decided. */
        double got = 7;
        ck_assert_uint_eq(sb_combine_compute(c, now + stale + 1, &got, NULL, 0), 0);
        ck_assert(got == 7);
        sb_combine_free(c);
    }
}
END_TEST

/* ---- through the plugin ---------------------------------------------------------------------- */
#ifdef SB_COMBINE_PLUGIN
#include "fake_host.h"

/* Each instance: component "pick" of this file, in a chain (two policies feed it, and a trigger),
 * its options spliced in where the head ends. */
static test_connector plug = {
    .id = "pick",
    .pipeline_head = "triggers:\n  - {id: q, type: t}\n"
                     "connectors:\n"
                     "  - {id: pick, type: combine, from: [by-queue, by-cpu, q], to: s1",
    .pipeline_tail = "}\n"
                     "  - {id: by-queue, type: combine, from: q}\n"
                     "  - {id: by-cpu, type: combine, from: q}\n"
                     "scalers:\n  - {id: s1, type: s, max: 1000}\n",
};

/* The value of decision i. */
static double decided(size_t i)
{
    return fake_host_publish_at(plug.fh, i)->value;
}

/* A decision from a connector in `from`, with the reason label each policy puts on. */
static void decision(void *state, const char *from, double value, uint64_t t)
{
    sb_label l = {"reason", "some formula -> whatever"};
    sb_event ev = {.source_id = from,
                   .topic = SB_TOPIC_DESIRED,
                   .mono_ns = t,
                   .value = value,
                   .labels = &l,
                   .nlabels = 1};
    plug.plugin->on_event(state, &ev);
}

static void reading(void *state, const char *from, const char *queue, double value, uint64_t t)
{
    sb_label l = {"queue", queue};
    sb_event ev = {.source_id = from,
                   .topic = SB_TOPIC_READING,
                   .mono_ns = t,
                   .value = value,
                   .labels = &l,
                   .nlabels = queue ? 1 : 0};
    plug.plugin->on_event(state, &ev);
}

START_TEST(test_plugin_chain)
{
    test_connector_open(&plug, SB_COMBINE_PLUGIN, "combine");
    void *st = test_connector_create_ok(&plug, "");
    decision(st, "by-queue", 7, S(0));
    ck_assert_uint_eq(plug.fh->npub, 1);
    ck_assert(decided(0) == 7);
    ck_assert_str_eq(fake_host_reason(plug.fh, 0), "max of by-queue=7 -> 7");
    decision(st, "by-cpu", 4, S(1));
    ck_assert(decided(1) == 7);
    ck_assert_str_eq(fake_host_reason(plug.fh, 1), "max of by-queue=7 by-cpu=4 -> 7");
    decision(st, "by-latency", 2, S(2));
    decision(st, "by-queue", 7, S(61)); /* by-latency's 2 is kept fresh by stale_after 60s... */
    ck_assert_str_eq(fake_host_reason(plug.fh, 3), "max of by-queue=7 by-cpu=4 by-latency=2 -> 7");
    decision(st, "by-cpu", 5, S(63)); /* ...until 62 s */
    ck_assert_str_eq(fake_host_reason(plug.fh, 4),
                     "max of by-queue=7 by-cpu=5 (stale: by-latency) -> 7");
    ck_assert(decided(4) == 7);
    /* Instance lists from the scaler decide nothing. */
    sb_event inst_ev = {
        .source_id = "s1", .topic = SB_TOPIC_INSTANCES, .mono_ns = S(64), .value = 3};
    plug.plugin->on_event(st, &inst_ev);
    ck_assert_uint_eq(plug.fh->npub, 5);
    /* Not a number: ignored, with a warning. */
    decision(st, "by-cpu", NAN, S(65));
    ck_assert_uint_eq(plug.fh->npub, 5);
    ck_assert_int_eq(plug.fh->logs_at[SB_LOG_WARN], 1);
    /* Going down: the policy's stabilize_down (300 s by default) holds the highest. */
    decision(st, "by-queue", 1, S(70));
    ck_assert(decided(5) == 7);
    ck_assert_str_eq(fake_host_reason(plug.fh, 5),
                     "max of by-queue=1 by-cpu=5 (stale: by-latency) -> 5; "
                     "stabilize_down 300s: highest 7 -> 7");
    plug.plugin->destroy(st);
    test_connector_close(&plug);
}
END_TEST

/* A trigger reporting several queues is several inputs; stale ones are left out. */
START_TEST(test_plugin_labels_and_none_fresh)
{
    test_connector_open(&plug, SB_COMBINE_PLUGIN, "combine");
    void *st = test_connector_create_ok(&plug, "by: sum, stale_after: 10s, stabilize_down: 0s");
    reading(st, "q", "jobs", 3, S(100));
    reading(st, "q", "mail", 4.5, S(101));
    ck_assert_uint_eq(plug.fh->npub, 2);
    ck_assert(decided(1) == 8); /* 7.5, rounded up */
    ck_assert_str_eq(fake_host_reason(plug.fh, 1),
                     "sum of q{queue=jobs}=3 q{queue=mail}=4.5 -> 7.5");
    reading(st, "q", "jobs", 1, S(111)); /* mail: 10 s old, still fresh */
    ck_assert(decided(2) == 6);
    reading(st, "q", "jobs", 1, S(112));
    ck_assert(decided(3) == 1);
    ck_assert_str_eq(fake_host_reason(plug.fh, 3),
                     "sum of q{queue=jobs}=1 (stale: q{queue=mail}) -> 1");
    /* A value arriving late, already older than the window: left out (time never runs
     * backwards, so "now" stays at 112 s). With no input fresh at all nothing would be decided
     * (test_none_fresh); through events that cannot happen, as the newest value is fresh. */
    reading(st, "late", NULL, 50, S(90));
    ck_assert_uint_eq(plug.fh->npub, 5);
    ck_assert(decided(4) == 1);
    ck_assert_str_eq(fake_host_reason(plug.fh, 4),
                     "sum of q{queue=jobs}=1 (stale: q{queue=mail}, late) -> 1");
    plug.plugin->destroy(st);

    st = test_connector_create_ok(&plug, "by: avg, stabilize_down: 0s, max: 4");
    reading(st, "q", "a", 10, S(0));
    reading(st, "q", "b", 2, S(0));
    ck_assert(decided(1) == 4);
    ck_assert_str_eq(fake_host_reason(plug.fh, 1),
                     "avg of q{queue=a}=10 q{queue=b}=2 -> 6; max 4 -> 4");
    plug.plugin->destroy(st);
    test_connector_close(&plug);
}
END_TEST

START_TEST(test_plugin_bad_options)
{
    test_connector_open(&plug, SB_COMBINE_PLUGIN, "combine");
    void *state;
    char err[256];
    ck_assert_int_eq(test_connector_create(&plug, "by: mean", &state, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(state);
    ck_assert_str_eq(err, "by: expected max, min, sum or avg, got 'mean'");
    ck_assert_int_eq(test_connector_create(&plug, "stale_after: 0s", &state, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "stale_after: must be more than 0s");
    ck_assert_int_eq(test_connector_create(&plug, "max_step_down: -1", &state, err, sizeof err),
                     -EINVAL);
    ck_assert_msg(strncmp(err, "max_step_down:", 14) == 0, "%s", err);
    test_connector_close(&plug);
}
END_TEST

/* Random traces through the plugin with its default limits: each published count is at least
 * every fresh input's own value (max), rounded up. */
START_TEST(test_plugin_property_max)
{
    test_connector_open(&plug, SB_COMBINE_PLUGIN, "combine");
    static const char *const src[] = {"by-queue", "by-cpu", "by-latency", "q"};
    rng_state = 0xc0ffee02u;
    for (int trace = 0; trace < 1000; trace++) {
        void *st = test_connector_create_ok(&plug, "stale_after: 20s");
        double val[4] = {0};
        uint64_t at[4] = {0}, now = S(10);
        int seen[4] = {0};
        for (int step = 0; step < 50; step++) {
            now += (uint64_t)(rnd() % 15001) * 1000000ull;
            int k = (int)(rnd() % 4);
            double v = (double)(rnd() % 5001) / 100.0;
            if (k == 3)
                reading(st, src[k], NULL, v, now);
            else
                decision(st, src[k], v, now);
            seen[k] = 1;
            val[k] = v;
            at[k] = now;
            if (plug.fh->npub != (size_t)step + 1)
                ck_abort_msg("trace %d step %d: %zu decisions", trace, step, plug.fh->npub);
            double got = decided(plug.fh->npub - 1);
            for (int i = 0; i < 4; i++)
                if (seen[i] && now - at[i] <= S(20) && got < ceil(val[i] - 1e-9))
                    ck_abort_msg("trace %d: %g below %s=%g: %s", trace, got, src[i], val[i],
                                 fake_host_reason(plug.fh, plug.fh->npub - 1));
        }
        plug.plugin->destroy(st);
    }
    test_connector_close(&plug);
}
END_TEST
#endif

static Suite *combine_suite(void)
{
    Suite *s = suite_create("combine");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_each_by);
    tcase_add_test(tc, test_by_names);
    tcase_add_test(tc, test_stale_left_out);
    tcase_add_test(tc, test_none_fresh);
    tcase_add_test(tc, test_out_of_order);
    tcase_add_test(tc, test_inputs_by_labels);
    tcase_add_test(tc, test_key_ambiguity);
    tcase_add_test(tc, test_bounded_inputs);
    tcase_add_test(tc, test_long_text);
    tcase_add_test(tc, test_property_random_traces);
    suite_add_tcase(s, tc);
#ifdef SB_COMBINE_PLUGIN
    TCase *tp = tcase_create("plugin");
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, test_plugin_chain);
    tcase_add_test(tp, test_plugin_labels_and_none_fresh);
    tcase_add_test(tp, test_plugin_bad_options);
    tcase_add_test(tp, test_plugin_property_max);
    suite_add_tcase(s, tp);
#endif
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(combine_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
