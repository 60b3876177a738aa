/*
 * test_policy.c - tests for the policy library (plugins/policy: the limits every scaling policy
 * shares) and the two policy connectors built on it, target and threshold.
 *
 * Table cases come from the published formulas and examples gathered in
 * shared/reference/autoscaling.md: the HPA's ceil(current x metric / target) with its 0.1
 * tolerance, its 300 s scale-down stabilisation on the highest recommendation and its rate
 * policies; Nomad's target-value (ceil(count x factor), from zero ceil(factor)) and threshold
 * strategies (within_bounds_trigger, delta / percentage / value); KEDA's activation threshold and
 * scale from and to zero. Expected counts and reason texts were worked out by hand from those
 * rules, step by step, not copied from this code's output.
 *
 * Property tests replay thousands of random traces (seeded; a failure prints the seed to rerun
 * with SB_TEST_SEED=N) and check what must hold whatever the options: the count never leaves
 * [min, max], never changes inside the tolerance, never goes down inside the stabilisation
 * window or a cooldown, and never moves faster than the rate limits allow. Under valgrind
 * (SB_UNDER_VALGRIND) they run a tenth as many traces.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>
#include <scalebus/policy.h>

#include "fake_host.h"
#include "target_core.h"
#include "threshold_core.h"

#define NS_PER_S 1000000000.0

static uint64_t secs(double s)
{
    return (uint64_t)llround(s * NS_PER_S);
}

/* ---- option values, as the host hands them to create() ------------------------------------- */

#define MAX_ROWS 40

static const sb_option_spec policy_rows[] = {SB_POLICY_OPTIONS, {NULL, 0, NULL, 0, NULL}};

typedef struct optset {
    sb_value v[MAX_ROWS];
    char buf[1024];
} optset;

/* "300s", "1.5s", "500ms", "2m", "1h" (a test-side reader, independent of core/config.c). */
static uint64_t parse_ms(const char *s)
{
    char *end;
    double d = strtod(s, &end);
    if (strcmp(end, "ms") == 0)
        return (uint64_t)llround(d);
    if (strcmp(end, "s") == 0 || *end == '\0')
        return (uint64_t)llround(d * 1000);
    if (strcmp(end, "m") == 0)
        return (uint64_t)llround(d * 60000);
    if (strcmp(end, "h") == 0)
        return (uint64_t)llround(d * 3600000);
    ck_abort_msg("bad duration in a test table: %s", s);
    return 0;
}

static void set_value(const sb_option_spec *spec, sb_value *v, const char *text)
{
    memset(v, 0, sizeof *v);
    v->is_set = 1;
    v->str = text;
    switch (spec->type) {
    case SB_OPT_INT:
        v->integer = strtoll(text, NULL, 10);
        v->number = (double)v->integer;
        break;
    case SB_OPT_NUMBER:
        v->number = strtod(text, NULL);
        break;
    case SB_OPT_DURATION:
        v->duration_ms = parse_ms(text);
        break;
    default:
        break;
    }
}

/* One value per row of `table`: the defaults, then "name=value ..." from spec. */
static void opts_fill(optset *o, const sb_option_spec *table, const char *spec)
{
    memset(o, 0, sizeof *o);
    size_t n = 0;
    for (; table[n].name; n++) {
        if (n >= MAX_ROWS)
            ck_abort_msg("options table longer than MAX_ROWS");
        if (table[n].default_value)
            set_value(&table[n], &o->v[n], table[n].default_value);
    }
    snprintf(o->buf, sizeof o->buf, "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(o->buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        if (!eq)
            ck_abort_msg("bad option in a test table: %s", tok);
        *eq = '\0';
        size_t i = 0;
        while (i < n && strcmp(table[i].name, tok) != 0)
            i++;
        if (i == n)
            ck_abort_msg("unknown option in a test table: %s", tok);
        set_value(&table[i], &o->v[i], eq + 1);
    }
}

static sb_policy *policy_from(const char *spec)
{
    optset o;
    sb_policy_options po;
    char err[256] = "";
    opts_fill(&o, policy_rows, spec);
    ck_assert_msg(sb_policy_options_read(o.v, &po, err, sizeof err) == 0, "%s: %s", spec, err);
    sb_policy *p = sb_policy_new(&po);
    ck_assert_ptr_nonnull(p);
    return p;
}

/* ---- the shared fake host (fake_host.c), one per test of the connectors -------------------- */

static fake_host *fh;

static void fake_host_setup(void)
{
    fh = fake_host_new("policy");
}

static void fake_host_teardown(void)
{
    fake_host_free(fh);
    fh = NULL;
}

static const fake_published *last_publish(void)
{
    return fake_host_last_publish(fh);
}

static const fake_log_line *last_log(void)
{
    return fake_host_last_log(fh);
}

/* ---- events ------------------------------------------------------------------------------- */

typedef struct event_buf {
    sb_event ev;
    sb_label label;
} event_buf;

/* A reading at t seconds whose first label names the metric (the reason's "cpu=..."). */
static const sb_event *reading(event_buf *b, double t, const char *name, double value)
{
    memset(b, 0, sizeof *b);
    b->label = (sb_label){"metric", name};
    b->ev.source_id = "trigger";
    b->ev.topic = SB_TOPIC_READING;
    b->ev.mono_ns = secs(t);
    b->ev.value = value;
    b->ev.labels = &b->label;
    b->ev.nlabels = name ? 1 : 0;
    return &b->ev;
}

static const sb_event *instances(event_buf *b, double t, double count)
{
    memset(b, 0, sizeof *b);
    b->ev.source_id = "pool";
    b->ev.topic = SB_TOPIC_INSTANCES;
    b->ev.mono_ns = secs(t);
    b->ev.value = count;
    return &b->ev;
}

/* A desired count from another connector in a chain: its labels carry its own reason. */
static const sb_event *upstream(event_buf *b, double t, double value)
{
    memset(b, 0, sizeof *b);
    b->label = (sb_label){"reason", "something upstream -> 7"};
    b->ev.source_id = "upstream";
    b->ev.topic = SB_TOPIC_DESIRED;
    b->ev.mono_ns = secs(t);
    b->ev.value = value;
    b->ev.labels = &b->label;
    b->ev.nlabels = 1;
    return &b->ev;
}

/* ---- small pieces ------------------------------------------------------------------------- */

START_TEST(test_option_rows_order)
{
    /* policy.c reads the values by position: the rows must stay in this order. */
    static const char *const names[] = {"min",          "max",
                                        "cooldown_up",  "cooldown_down",
                                        "stabilize_up", "stabilize_down",
                                        "max_step_up",  "max_step_down",
                                        "period",       "activate_above",
                                        "idle_after",   "fail_after",
                                        "fallback"};
    ck_assert_uint_eq(sizeof names / sizeof names[0], SB_POLICY_OPTION_COUNT);
    for (size_t i = 0; i < SB_POLICY_OPTION_COUNT; i++)
        ck_assert_str_eq(policy_rows[i].name, names[i]);
    ck_assert_ptr_null(policy_rows[SB_POLICY_OPTION_COUNT].name);
    /* Each connector's table carries the rows where its enum says. */
    ck_assert_str_eq(target_options[TARGET_OPT_POLICY].name, "min");
    ck_assert_str_eq(target_options[TARGET_OPT_COUNT - 1].name, "fallback");
    ck_assert_ptr_null(target_options[TARGET_OPT_COUNT].name);
    ck_assert_str_eq(threshold_options[THRESHOLD_OPT_POLICY].name, "min");
    ck_assert_str_eq(threshold_options[THRESHOLD_OPT_COUNT - 1].name, "fallback");
    ck_assert_ptr_null(threshold_options[THRESHOLD_OPT_COUNT].name);
}
END_TEST

START_TEST(test_options_defaults)
{
    optset o;
    sb_policy_options po;
    char err[128] = "";
    opts_fill(&o, policy_rows, NULL);
    ck_assert_int_eq(sb_policy_options_read(o.v, &po, err, sizeof err), 0);
    ck_assert_int_eq(po.min, 0);
    ck_assert_int_eq(po.max, -1);
    ck_assert_uint_eq(po.cooldown_up_ms, 0);
    ck_assert_uint_eq(po.cooldown_down_ms, 0);
    ck_assert_uint_eq(po.stabilize_up_ms, 0);
    ck_assert_uint_eq(po.stabilize_down_ms, 300000);
    ck_assert(po.max_step_up < 0 && po.max_step_down < 0);
    ck_assert_uint_eq(po.period_ms, 15000);
    ck_assert_int_eq(po.has_activation, 0);
    ck_assert_uint_eq(po.idle_after_ms, 0);
    ck_assert_int_eq(po.fail_after, 3);
    ck_assert_int_eq(po.has_fallback, 0);

    /* Nothing set at all (a host that fills no defaults): the same defaults. */
    sb_value none[SB_POLICY_OPTION_COUNT];
    memset(none, 0, sizeof none);
    ck_assert_int_eq(sb_policy_options_read(none, &po, err, sizeof err), 0);
    ck_assert_uint_eq(po.stabilize_down_ms, 300000);
    ck_assert_uint_eq(po.period_ms, 15000);
    ck_assert_int_eq(po.fail_after, 3);
    ck_assert_int_eq(po.has_fallback, 0);

    opts_fill(&o, policy_rows, "fail_after=1 fallback=0");
    ck_assert_int_eq(sb_policy_options_read(o.v, &po, err, sizeof err), 0);
    ck_assert_int_eq(po.fail_after, 1);
    ck_assert(po.has_fallback && po.fallback == 0);

    opts_fill(&o, policy_rows,
              "min=1 max=9 max_step_up=4 max_step_down=12.5% period=1m activate_above=0.5 "
              "idle_after=90s cooldown_up=5s cooldown_down=500ms stabilize_up=30s");
    ck_assert_int_eq(sb_policy_options_read(o.v, &po, err, sizeof err), 0);
    ck_assert_int_eq(po.min, 1);
    ck_assert_int_eq(po.max, 9);
    ck_assert(po.max_step_up == 4 && !po.step_up_percent);
    ck_assert(po.max_step_down == 12.5 && po.step_down_percent);
    ck_assert_uint_eq(po.period_ms, 60000);
    ck_assert(po.has_activation && po.activate_above == 0.5);
    ck_assert_uint_eq(po.idle_after_ms, 90000);
    ck_assert_uint_eq(po.cooldown_up_ms, 5000);
    ck_assert_uint_eq(po.cooldown_down_ms, 500);
    ck_assert_uint_eq(po.stabilize_up_ms, 30000);
}
END_TEST

typedef struct error_case {
    int table; /* 0 policy rows, 1 target, 2 threshold */
    const char *spec;
    const char *message; /* the whole message, or its start when it ends in '*' */
} error_case;

static const error_case error_cases[] = {
    {0, "min=-1", "min: expected 0 to 1000000000, got -1"},
    {0, "min=3 max=2", "max: expected 3 (min) to 1000000000, got 2"},
    {0, "max=-1", "max: expected 0 (min) to 1000000000, got -1"},
    {0, "max_step_up=x",
     "max_step_up: expected a whole count (\"4\") or a percent (\"50%\"), got 'x'"},
    {0, "max_step_up=1.5", "max_step_up: expected a whole count*"},
    {0, "max_step_down=-1", "max_step_down: expected a whole count*"},
    {0, "max_step_down=4%%", "max_step_down: expected a whole count*"},
    {0, "max_step_down=%", "max_step_down: expected a whole count*"},
    {0, "max_step_up=4 period=0s",
     "period: must be above 0 when max_step_up or max_step_down is set"},
    {0, "fail_after=0", "fail_after: expected 1 to 1000000000, got 0"},
    {0, "fail_after=-2", "fail_after: expected 1 to 1000000000, got -2"},
    {0, "fail_after=1000000001", "fail_after: expected 1 to 1000000000, got 1000000001"},
    {0, "fallback=-1", "fallback: expected 0 to 1000000000, got -1"},
    {0, "fallback=2000000000", "fallback: expected 0 to 1000000000, got 2000000000"},
    {1, "per_instance=2 fail_after=0", "fail_after: expected 1 to 1000000000, got 0"},
    {2, "upper=1 fallback=-3", "fallback: expected 0 to 1000000000, got -3"},
    {1, "mode=foo", "mode: expected total or ratio, got 'foo'"},
    {1, "mode=ratio", "target: required when mode is ratio"},
    {1, "mode=ratio target=0", "target: must be above 0, got 0"},
    {1, "target=50", "target: used in mode ratio only (set mode: ratio)"},
    {1, "mode=ratio target=5 per_instance=2", "per_instance: used in mode total only*"},
    {1, "per_instance=0", "per_instance: must be above 0, got 0"},
    {1, "tolerance=-0.1", "tolerance: must be 0 or more, got -0.1"},
    {1, "per_instance=2 max_step_up=fast", "max_step_up: expected a whole count*"},
    {1, "min=5 max=1", "max: expected 5 (min) to 1000000000, got 1"},
    {2, "", "upper: set upper, lower or both"},
    {2, "upper=10 lower=20", "lower: must not be above upper (10), got 20"},
    {2, "upper=1 upper_action=add", "upper_action: expected delta, percent or exact, got 'add'"},
    {2, "lower=1 lower_action=exact lower_amount=-2",
     "lower_amount: exact needs a count from 0 to 1000000000, got -2"},
    {2, "upper=1 upper_action=percent upper_amount=-150",
     "upper_amount: percent must be -100 or more, got -150"},
    {2, "upper=1 within=0", "within: must be 1 or more, got 0"},
    {2, "upper=1 max_step_down=abc", "max_step_down: expected a whole count*"},
};

START_TEST(test_option_errors)
{
    const error_case *c = &error_cases[_i];
    optset o;
    char err[256] = "";
    int rc;
    if (c->table == 0) {
        sb_policy_options po;
        opts_fill(&o, policy_rows, c->spec);
        rc = sb_policy_options_read(o.v, &po, err, sizeof err);
    } else if (c->table == 1) {
        target_conn *t = NULL;
        opts_fill(&o, target_options, c->spec);
        rc = target_conn_new(o.v, &t, err, sizeof err);
        ck_assert_ptr_null(t);
    } else {
        threshold_conn *t = NULL;
        opts_fill(&o, threshold_options, c->spec);
        rc = threshold_conn_new(o.v, &t, err, sizeof err);
        ck_assert_ptr_null(t);
    }
    ck_assert_msg(rc == -EINVAL, "%s: rc %d", c->spec, rc);
    size_t n = strlen(c->message);
    if (c->message[n - 1] == '*')
        ck_assert_msg(strncmp(err, c->message, n - 1) == 0, "%s: got '%s'", c->spec, err);
    else
        ck_assert_msg(strcmp(err, c->message) == 0, "%s: got '%s'", c->spec, err);
}
END_TEST

START_TEST(test_ceil_and_names)
{
    ck_assert_int_eq(sb_policy_ceil(6.5), 7);
    ck_assert_int_eq(sb_policy_ceil(7.0), 7);
    ck_assert_int_eq(sb_policy_ceil(7.0000000001), 7); /* float noise */
    ck_assert_int_eq(sb_policy_ceil(7.001), 8);
    ck_assert_int_eq(sb_policy_ceil(3 * 0.7 / 0.7), 3);
    ck_assert_int_eq(sb_policy_ceil(0.2), 1);
    ck_assert_int_eq(sb_policy_ceil(0), 0);
    ck_assert_int_eq(sb_policy_ceil(-3), 0);
    ck_assert_int_eq(sb_policy_ceil(NAN), 0);
    ck_assert_int_eq(sb_policy_ceil(INFINITY), SB_POLICY_COUNT_MAX);
    ck_assert_int_eq(sb_policy_ceil(1e300), SB_POLICY_COUNT_MAX);

    event_buf b;
    ck_assert_str_eq(sb_policy_metric_name(reading(&b, 0, "orders", 1)), "orders");
    /* No label, or an empty one: the trigger's id names the value. */
    ck_assert_str_eq(sb_policy_metric_name(reading(&b, 0, NULL, 1)), "trigger");
    ck_assert_str_eq(sb_policy_metric_name(reading(&b, 0, "", 1)), "trigger");
    ck_assert_str_eq(sb_policy_metric_name(upstream(&b, 0, 1)), "upstream");
}
END_TEST

START_TEST(test_reason_text)
{
    sb_reason r;
    sb_reason_init(&r);
    ck_assert_str_eq(r.text, "");
    sb_reason_addf(&r, "queue=%d", 13);
    sb_reason_addf(&r, " per_instance=%d -> %d", 2, 7);
    ck_assert_str_eq(r.text, "queue=13 per_instance=2 -> 7");
    ck_assert_uint_eq(r.len, strlen(r.text));
    /* Too long: cut, and the cut shows. */
    char big[700];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    sb_reason_addf(&r, "; %s", big);
    ck_assert_uint_eq(r.len, sizeof r.text - 1);
    ck_assert_uint_eq(strlen(r.text), r.len);
    ck_assert_str_eq(r.text + r.len - 3, "...");
    sb_reason_addf(&r, "more"); /* full: nothing happens */
    ck_assert_uint_eq(r.len, sizeof r.text - 1);
}
END_TEST

/* ---- the policy on its own: table cases ---------------------------------------------------- */

#define MAX_STEPS 16

typedef struct pstep {
    double t;           /* seconds */
    char op;            /* r raw, m raw with metric "queue", h hold, n raw NaN, i instances */
    double v;           /* raw, or the instance count */
    double metric;      /* op m */
    int64_t want;       /* the decided count */
    const char *reason; /* the policy's part of the reason, exactly */
} pstep;

typedef struct pcase {
    const char *name;
    const char *opts;
    pstep steps[MAX_STEPS];
} pcase;

static const pcase policy_cases[] = {
    {"bounds",
     "min=2 max=5 stabilize_down=0s",
     {{0, 'r', 7, 0, 5, "max 5 -> 5"},
      {1, 'r', 0, 0, 2, "min 2 -> 2"},
      {2, 'r', 3.2, 0, 4, ""},
      {3, 'r', 6.0000000001, 0, 5, "max 5 -> 5"},
      {4, 'r', 4.0000000001, 0, 4, ""},
      {5, 'r', -3, 0, 2, "min 2 -> 2"},
      {6, 'r', 1e12, 0, 5, "max 5 -> 5"}}},
    /* HPA: scale-down acts on the highest recommendation of the last 300 s; up at once. */
    {"hpa stabilize_down 300s",
     "",
     {{0, 'r', 7, 0, 7, ""},
      {60, 'r', 3, 0, 7, "stabilize_down 300s: highest 7 -> 7"},
      {120, 'r', 5, 0, 7, "stabilize_down 300s: highest 7 -> 7"},
      {299, 'r', 2, 0, 7, "stabilize_down 300s: highest 7 -> 7"},
      {300, 'r', 2, 0, 5, "stabilize_down 300s: highest 5 -> 5"},
      {420, 'r', 2, 0, 2, ""},
      {421, 'r', 9, 0, 9, ""}}},
    {"stabilize_up 60s: the lowest recommendation",
     "stabilize_down=0s stabilize_up=60s",
     {{0, 'r', 2, 0, 2, ""},
      {10, 'r', 8, 0, 2, "stabilize_up 60s: lowest 2 -> 2"},
      {30, 'r', 6, 0, 2, "stabilize_up 60s: lowest 2 -> 2"},
      {60, 'r', 9, 0, 6, "stabilize_up 60s: lowest 6 -> 6"},
      {71, 'r', 7, 0, 6, "stabilize_up 60s: lowest 6 -> 6"},
      {91, 'r', 10, 0, 7, "stabilize_up 60s: lowest 7 -> 7"},
      {92, 'r', 3, 0, 3, ""}}},
    /* HPA rate policy "type: Pods, value: 4, periodSeconds: 15" on a sliding window. */
    {"max_step_up 4 per 15s",
     "max_step_up=4 stabilize_down=0s",
     {{0, 'r', 20, 0, 4, "max_step_up 4 per 15s from 0 -> 4"},
      {5, 'r', 20, 0, 4, "max_step_up 4 per 15s from 0 -> 4"},
      {15, 'r', 20, 0, 8, "max_step_up 4 per 15s from 4 -> 8"},
      {20, 'r', 20, 0, 8, "max_step_up 4 per 15s from 4 -> 8"},
      {30, 'r', 20, 0, 12, "max_step_up 4 per 15s from 8 -> 12"},
      {31, 'r', 10, 0, 10, ""},
      {32, 'r', 20, 0, 12, "max_step_up 4 per 15s from 8 -> 12"}}},
    /* HPA "type: Percent, value: 100": doubles per period; from zero, one instance. */
    {"max_step_up 100% per 15s",
     "max_step_up=100% stabilize_down=0s",
     {{0, 'r', 10, 0, 1, "max_step_up 100% per 15s from 0 -> 1"},
      {15, 'r', 10, 0, 2, "max_step_up 100% per 15s from 1 -> 2"},
      {30, 'r', 10, 0, 4, "max_step_up 100% per 15s from 2 -> 4"},
      {45, 'r', 10, 0, 8, "max_step_up 100% per 15s from 4 -> 8"},
      {60, 'r', 10, 0, 10, ""}}},
    /* HPA docs: "Percent 10, periodSeconds 60" from 80 pods: 72, then 64 a minute later. */
    {"hpa max_step_down 10% per 60s",
     "max_step_down=10% period=60s stabilize_down=0s",
     {{0, 'r', 80, 0, 80, ""},
      {1, 'r', 0, 0, 72, "max_step_down 10% per 60s from 80 -> 72"},
      {30, 'r', 0, 0, 72, "max_step_down 10% per 60s from 80 -> 72"},
      {61, 'r', 0, 0, 64, "max_step_down 10% per 60s from 72 -> 64"}}},
    {"max_step_down 50%",
     "max_step_down=50% stabilize_down=0s",
     {{0, 'r', 10, 0, 10, ""},
      {1, 'r', 0, 0, 5, "max_step_down 50% per 15s from 10 -> 5"},
      {2, 'r', 0, 0, 5, "max_step_down 50% per 15s from 10 -> 5"},
      {16, 'r', 0, 0, 2, "max_step_down 50% per 15s from 5 -> 2"},
      {31, 'r', 0, 0, 1, "max_step_down 50% per 15s from 2 -> 1"},
      {46, 'r', 0, 0, 0, ""}}},
    /* HPA docs: "type: Pods, value: 4, periodSeconds: 60" for scale-down. */
    {"hpa max_step_down 4 per 60s",
     "max_step_down=4 period=60s stabilize_down=0s",
     {{0, 'r', 20, 0, 20, ""},
      {10, 'r', 1, 0, 16, "max_step_down 4 per 60s from 20 -> 16"},
      {70, 'r', 1, 0, 12, "max_step_down 4 per 60s from 16 -> 12"}}},
    {"cooldowns",
     "cooldown_up=60s cooldown_down=120s stabilize_down=0s",
     {{0, 'r', 5, 0, 5, ""},
      {30, 'r', 8, 0, 5, "cooldown_up 60s: changed 30s ago -> 5"},
      {60, 'r', 8, 0, 8, ""},
      {100, 'r', 2, 0, 8, "cooldown_down 120s: changed 40s ago -> 8"},
      {180, 'r', 2, 0, 2, ""},
      {181, 'r', 3, 0, 2, "cooldown_up 60s: changed 1s ago -> 2"},
      {181.5, 'r', 1, 0, 2, "cooldown_down 120s: changed 1.5s ago -> 2"}}},
    {"hold keeps the decided count",
     "stabilize_down=0s",
     {{0, 'i', 3, 0, 0, NULL},
      {0, 'h', 0, 0, 3, "hold 3"},
      {1, 'r', 4, 0, 4, ""},
      {2, 'h', 0, 0, 4, "hold 4"},
      {3, 'i', 2, 0, 0, NULL},
      {4, 'h', 0, 0, 4, "hold 4"},
      {5, 'n', 0, 0, 4, "not a number: hold 4"}}},
    {"hold under min",
     "min=5 stabilize_down=0s",
     {{0, 'h', 0, 0, 5, "hold 0; min 5 -> 5"}, {1, 'h', 0, 0, 5, "hold 5"}}},
    /* KEDA: activation threshold 0 (strict >): no demand at 0, from zero at once. */
    {"keda activation 0",
     "activate_above=0 stabilize_down=0s",
     {{0, 'm', 0, 0, 0, "queue=0 <= activate_above 0 -> 0"},
      {1, 'm', 0.2, 1, 1, ""},
      {2, 'm', 0, 0.5, 1, "queue=0.5 > activate_above 0 -> 1"},
      {3, 'm', 0, 0, 0, "queue=0 <= activate_above 0 -> 0"},
      {4, 'r', 3, 0, 3, ""}}},
    {"keda activation 5",
     "activate_above=5 stabilize_down=0s",
     {{0, 'm', 2, 4, 0, "queue=4 <= activate_above 5 -> 0"},
      {1, 'm', 2, 5, 0, "queue=5 <= activate_above 5 -> 0"},
      {2, 'm', 2, 6, 2, ""}}},
    /* KEDA ignores activation when min >= 1. */
    {"keda activation ignored above min 0",
     "min=1 activate_above=5 stabilize_down=0s",
     {{0, 'm', 0, 0, 1, "min 1 -> 1"}, {1, 'm', 3, 2, 3, ""}}},
    {"idle_after",
     "idle_after=60s stabilize_down=0s",
     {{0, 'r', 4, 0, 4, ""},
      {10, 'r', 0, 0, 1, "idle_after 60s: no demand for 0s -> 1"},
      {40, 'r', 0, 0, 1, "idle_after 60s: no demand for 30s -> 1"},
      {70, 'r', 0, 0, 0, ""},
      {80, 'r', 0, 0, 0, ""},
      {90, 'r', 3, 0, 3, ""},
      {95, 'r', 0, 0, 1, "idle_after 60s: no demand for 0s -> 1"},
      {100, 'r', 2, 0, 2, ""},
      {110, 'r', 0, 0, 1, "idle_after 60s: no demand for 0s -> 1"},
      {169.5, 'r', 0, 0, 1, "idle_after 60s: no demand for 59.5s -> 1"},
      {170, 'r', 0, 0, 0, ""}}},
    /* KEDA: to zero only after cooldownPeriod (300 s) with no active trigger. */
    {"keda scale to zero after cooldownPeriod",
     "activate_above=0 idle_after=300s stabilize_down=0s",
     {{0, 'm', 5, 5, 5, ""},
      {10, 'm', 0, 0, 1,
       "queue=0 <= activate_above 0 -> 0; idle_after 300s: no demand for 0s -> 1"},
      {200, 'm', 0, 0, 1,
       "queue=0 <= activate_above 0 -> 0; idle_after 300s: no demand for 190s -> 1"},
      {310, 'm', 0, 0, 0, "queue=0 <= activate_above 0 -> 0"},
      {311, 'm', 0.1, 0.1, 1, ""}}},
    {"the steps in order",
     "max=1 max_step_up=2 stabilize_down=0s",
     {{0, 'r', 13, 0, 1, "max_step_up 2 per 15s from 0 -> 2; max 1 -> 1"}}},
    {"time never runs backwards",
     "cooldown_down=10s stabilize_down=0s",
     {{10, 'r', 5, 0, 5, ""},
      {5, 'r', 1, 0, 5, "cooldown_down 10s: changed 0s ago -> 5"},
      {20, 'r', 1, 0, 1, ""}}},
    {"everything at once",
     "max=20 stabilize_down=60s max_step_up=50% max_step_down=1 period=30s cooldown_up=10s",
     {{0, 'r', 4, 0, 1, "max_step_up 50% per 30s from 0 -> 1"},
      {5, 'r', 30, 0, 1, "max_step_up 50% per 30s from 0 -> 1"},
      {30, 'r', 30, 0, 2, "max_step_up 50% per 30s from 1 -> 2"},
      {35, 'r', 30, 0, 2, "max_step_up 50% per 30s from 1 -> 2"},
      {60, 'r', 30, 0, 3, "max_step_up 50% per 30s from 2 -> 3"},
      {65, 'r', 1, 0, 3, "stabilize_down 60s: highest 30 -> 3"},
      {121, 'r', 1, 0, 2, "max_step_down 1 per 30s from 3 -> 2"},
      {122, 'r', 30, 0, 2,
       "max_step_up 50% per 30s from 2 -> 3; cooldown_up 10s: changed 1s ago -> 2"}}},
};

/* Replays one case; op 0 ends the steps. */
static void run_policy_case(const pcase *c)
{
    sb_policy *p = policy_from(c->opts);
    for (size_t i = 0; i < MAX_STEPS && c->steps[i].op; i++) {
        const pstep *s = &c->steps[i];
        if (s->op == 'i') {
            event_buf b;
            sb_policy_observe(p, instances(&b, s->t, s->v));
            continue;
        }
        sb_policy_input in;
        memset(&in, 0, sizeof in);
        in.now_ns = secs(s->t);
        in.raw = s->op == 'n' ? NAN : s->v;
        in.hold = s->op == 'h';
        if (s->op == 'm') {
            in.has_metric = 1;
            in.metric = s->metric;
            in.metric_name = "queue";
        }
        sb_reason r;
        sb_reason_init(&r);
        int64_t got = sb_policy_decide(p, &in, &r);
        ck_assert_msg(got == s->want, "%s, step %zu (t=%g): got %lld, want %lld (%s)", c->name, i,
                      s->t, (long long)got, (long long)s->want, r.text);
        if (s->reason)
            ck_assert_msg(strcmp(r.text, s->reason) == 0, "%s, step %zu: reason '%s', want '%s'",
                          c->name, i, r.text, s->reason);
        ck_assert_int_eq(sb_policy_decided(p), got);
    }
    sb_policy_free(p);
}

START_TEST(test_policy_cases)
{
    run_policy_case(&policy_cases[_i]);
}
END_TEST

/* ---- the connectors: table cases ----------------------------------------------------------- */

typedef struct cstep {
    double t;
    char op;  /* e reading, d desired count from "upstream", i instances */
    double v; /* the value, or the instance count */
    int64_t want;
    const char *reason; /* the whole reason, exactly */
} cstep;

typedef struct ccase {
    const char *name;
    int threshold; /* 0 target, 1 threshold */
    const char *metric;
    const char *opts;
    cstep steps[MAX_STEPS];
} ccase;

static const ccase connector_cases[] = {
    {"total with max",
     0,
     "queue",
     "per_instance=2 max=5",
     {{0, 'e', 13, 5, "queue=13 per_instance=2 -> 7; max 5 -> 5"}}},
    {"total with tolerance",
     0,
     "queue",
     "per_instance=2 stabilize_down=0s",
     {{0, 'e', 13, 7, "queue=13 per_instance=2 -> 7"},
      {1, 'e', 14, 7, "queue=14 per_instance=2 -> 7, within tolerance 0.1 of 7; hold 7"},
      {2, 'e', 15, 7, "queue=15 per_instance=2 -> 7.5, within tolerance 0.1 of 7; hold 7"},
      {3, 'e', 16, 8, "queue=16 per_instance=2 -> 8"},
      {4, 'e', 4, 2, "queue=4 per_instance=2 -> 2"},
      {5, 'e', 0, 0, "queue=0 per_instance=2 -> 0"},
      {6, 'e', 1, 1, "queue=1 per_instance=2 -> 1"}}},
    /* HPA docs: metric 200m for a target of 100m doubles the replicas, 50m halves them, and
     * within 0.1 of the target nothing changes. */
    {"hpa ratio",
     0,
     "cpu",
     "mode=ratio target=100 stabilize_down=0s",
     {{0, 'i', 4, 0, NULL},
      {0, 'e', 200, 8, "cpu=200 target=100 current=4 -> 8"},
      {1, 'i', 8, 0, NULL},
      {1, 'e', 50, 4, "cpu=50 target=100 current=8 -> 4"},
      {2, 'i', 4, 0, NULL},
      {2, 'e', 105, 4, "cpu=105 target=100 current=4: ratio 1.05 within tolerance 0.1; hold 4"},
      {3, 'e', 110, 4, "cpu=110 target=100 current=4: ratio 1.1 within tolerance 0.1; hold 4"},
      {4, 'e', 111, 5, "cpu=111 target=100 current=4 -> 5"},
      /* The scaler has not started the fifth yet: no change keeps the decided 5. */
      {5, 'e', 90, 5, "cpu=90 target=100 current=4: ratio 0.9 within tolerance 0.1; hold 5"}}},
    /* HPA: the 300 s scale-down window keeps the highest recommendation. */
    {"hpa ratio with the default window",
     0,
     "cpu",
     "mode=ratio target=50",
     {{0, 'i', 10, 0, NULL},
      {0, 'e', 100, 20, "cpu=100 target=50 current=10 -> 20"},
      {60, 'i', 20, 0, NULL},
      {60, 'e', 10, 20, "cpu=10 target=50 current=20 -> 4; stabilize_down 300s: highest 20 -> 20"},
      {300, 'e', 10, 4, "cpu=10 target=50 current=20 -> 4"}}},
    /* Nomad target-value: factor = metric / target; ceil(count x factor); from zero
     * ceil(factor); threshold 0.01. */
    {"nomad target-value",
     0,
     "cpu",
     "mode=ratio target=50 tolerance=0.01 stabilize_down=0s",
     {{0, 'i', 3, 0, NULL},
      {0, 'e', 75, 5, "cpu=75 target=50 current=3 -> 5"},
      {1, 'i', 5, 0, NULL},
      {1, 'e', 50.4, 5, "cpu=50.4 target=50 current=5: ratio 1.01 within tolerance 0.01; hold 5"},
      {2, 'e', 51, 6, "cpu=51 target=50 current=5 -> 6"},
      {3, 'i', 0, 0, NULL},
      {3, 'e', 120, 3, "cpu=120 target=50 current=0 -> 3"},
      {4, 'e', 50, 1, "cpu=50 target=50 current=0 -> 1"}}},
    /* KEDA: activation 0 and scale from zero at once. */
    {"keda activation",
     0,
     "queue",
     "per_instance=5 activate_above=0 stabilize_down=0s",
     {{0, 'e', 0, 0, "queue=0 per_instance=5 -> 0; queue=0 <= activate_above 0 -> 0"},
      {1, 'e', 3, 1, "queue=3 per_instance=5 -> 1"},
      {2, 'e', 0, 0, "queue=0 per_instance=5 -> 0; queue=0 <= activate_above 0 -> 0"}}},
    {"keda activation 10",
     0,
     "queue",
     "per_instance=5 activate_above=10 stabilize_down=0s",
     {{0, 'e', 8, 0, "queue=8 per_instance=5 -> 2; queue=8 <= activate_above 10 -> 0"},
      {1, 'e', 11, 3, "queue=11 per_instance=5 -> 3"}}},
    {"a chain: another connector's count",
     0,
     NULL,
     "stabilize_down=0s",
     {{0, 'd', 7, 7, "upstream=7 per_instance=1 -> 7"},
      {1, 'd', 3, 3, "upstream=3 per_instance=1 -> 3"}}},
    {"no labels",
     0,
     NULL,
     "per_instance=10 stabilize_down=0s",
     {{0, 'e', 25, 3, "trigger=25 per_instance=10 -> 3"}}},
    /* Nomad threshold: within_bounds_trigger readings in the band, then one action. */
    {"threshold delta within 3",
     1,
     "cpu",
     "upper=80 upper_amount=2 lower=20 within=3 "
     "stabilize_down=0s",
     {{0, 'i', 4, 0, NULL},
      {0, 'e', 91, 4, "cpu=91 >= upper 80 (1 of 3 readings); hold 4"},
      {1, 'e', 95, 4, "cpu=95 >= upper 80 (2 of 3 readings); hold 4"},
      {2, 'e', 85, 6, "cpu=85 >= upper 80 for 3 readings: delta +2 -> 6"},
      {3, 'e', 90, 6, "cpu=90 >= upper 80 (1 of 3 readings); hold 6"},
      {4, 'e', 50, 6, "cpu=50 between lower 20 and upper 80; hold 6"},
      {5, 'e', 10, 6, "cpu=10 < lower 20 (1 of 3 readings); hold 6"},
      {6, 'e', 10, 6, "cpu=10 < lower 20 (2 of 3 readings); hold 6"},
      {7, 'e', 10, 5, "cpu=10 < lower 20 for 3 readings: delta -1 -> 5"}}},
    {"threshold within 5 (nomad's default)",
     1,
     "cpu",
     "upper=80 within=5 stabilize_down=0s",
     {{0, 'e', 81, 0, "cpu=81 >= upper 80 (1 of 5 readings); hold 0"},
      {1, 'e', 81, 0, "cpu=81 >= upper 80 (2 of 5 readings); hold 0"},
      {2, 'e', 81, 0, "cpu=81 >= upper 80 (3 of 5 readings); hold 0"},
      {3, 'e', 81, 0, "cpu=81 >= upper 80 (4 of 5 readings); hold 0"},
      {4, 'e', 81, 1, "cpu=81 >= upper 80 for 5 readings: delta +1 -> 1"},
      {5, 'e', 81, 1, "cpu=81 >= upper 80 (1 of 5 readings); hold 1"}}},
    {"threshold: leaving the band counts again",
     1,
     "cpu",
     "upper=80 within=2 stabilize_down=0s",
     {{0, 'e', 90, 0, "cpu=90 >= upper 80 (1 of 2 readings); hold 0"},
      {1, 'e', 50, 0, "cpu=50 < upper 80; hold 0"},
      {2, 'e', 90, 0, "cpu=90 >= upper 80 (1 of 2 readings); hold 0"},
      {3, 'e', 90, 1, "cpu=90 >= upper 80 for 2 readings: delta +1 -> 1"}}},
    /* Nomad percentage: ceil(count x (1 + p/100)); down rounds down. */
    {"threshold percent",
     1,
     "cpu",
     "upper=80 upper_action=percent upper_amount=20 lower=20 lower_action=percent "
     "lower_amount=-25 stabilize_down=0s",
     {{0, 'i', 10, 0, NULL},
      {0, 'e', 85, 12, "cpu=85 >= upper 80 for 1 reading: percent +20% -> 12"},
      {1, 'e', 10, 9, "cpu=10 < lower 20 for 1 reading: percent -25% -> 9"},
      {2, 'e', 10, 6, "cpu=10 < lower 20 for 1 reading: percent -25% -> 6"},
      {3, 'e', 85, 8, "cpu=85 >= upper 80 for 1 reading: percent +20% -> 8"}}},
    {"threshold percent from zero",
     1,
     "cpu",
     "upper=80 upper_action=percent upper_amount=50 stabilize_down=0s",
     {{0, 'e', 90, 1, "cpu=90 >= upper 80 for 1 reading: percent +50% -> 1"},
      {1, 'e', 90, 2, "cpu=90 >= upper 80 for 1 reading: percent +50% -> 2"},
      {2, 'e', 90, 3, "cpu=90 >= upper 80 for 1 reading: percent +50% -> 3"},
      {3, 'e', 90, 5, "cpu=90 >= upper 80 for 1 reading: percent +50% -> 5"}}},
    /* Nomad value / AWS ExactCapacity. */
    {"threshold exact",
     1,
     "cpu",
     "upper=80 upper_action=exact upper_amount=10 lower=20 lower_action=exact lower_amount=2 "
     "stabilize_down=0s",
     {{0, 'e', 90, 10, "cpu=90 >= upper 80 for 1 reading: exact 10 -> 10"},
      {1, 'e', 10, 2, "cpu=10 < lower 20 for 1 reading: exact 2 -> 2"}}},
    {"threshold lower only",
     1,
     "cpu",
     "lower=20 stabilize_down=0s",
     {{0, 'i', 3, 0, NULL},
      {0, 'e', 50, 3, "cpu=50 >= lower 20; hold 3"},
      {1, 'e', 10, 2, "cpu=10 < lower 20 for 1 reading: delta -1 -> 2"}}},
    {"threshold edges",
     1,
     "cpu",
     "upper=80 lower=20 stabilize_down=0s",
     {{0, 'i', 2, 0, NULL},
      {0, 'e', 80, 3, "cpu=80 >= upper 80 for 1 reading: delta +1 -> 3"},
      {1, 'e', 20, 3, "cpu=20 between lower 20 and upper 80; hold 3"},
      {2, 'e', 19.9, 2, "cpu=19.9 < lower 20 for 1 reading: delta -1 -> 2"}}},
    {"threshold with the policy's limits",
     1,
     "cpu",
     "upper=80 upper_amount=10 max=5 cooldown_up=60s stabilize_down=0s",
     {{0, 'e', 90, 5, "cpu=90 >= upper 80 for 1 reading: delta +10 -> 10; max 5 -> 5"},
      {30, 'e', 90, 5,
       "cpu=90 >= upper 80 for 1 reading: delta +10 -> 15; cooldown_up 60s: changed 30s ago "
       "-> 5"}}},
};

typedef struct any_conn {
    target_conn *target;
    threshold_conn *threshold;
} any_conn;

static void conn_new(any_conn *c, int threshold, const char *spec)
{
    optset o;
    char err[256] = "";
    memset(c, 0, sizeof *c);
    if (threshold) {
        opts_fill(&o, threshold_options, spec);
        ck_assert_msg(threshold_conn_new(o.v, &c->threshold, err, sizeof err) == 0, "%s: %s", spec,
                      err);
    } else {
        opts_fill(&o, target_options, spec);
        ck_assert_msg(target_conn_new(o.v, &c->target, err, sizeof err) == 0, "%s: %s", spec, err);
    }
}

static void conn_free(any_conn *c)
{
    target_conn_free(c->target);
    threshold_conn_free(c->threshold);
}

static const sb_policy *conn_policy(const any_conn *c)
{
    return c->target ? target_conn_policy(c->target) : threshold_conn_policy(c->threshold);
}

static int conn_decide(any_conn *c, const sb_event *ev, int64_t *desired, sb_reason *r)
{
    if (c->target)
        return target_conn_decide(c->target, ev, desired, r);
    return threshold_conn_decide(c->threshold, ev, desired, r);
}

static void conn_on_event(any_conn *c, const sb_event *ev)
{
    if (c->target)
        target_conn_on_event(c->target, &fh->host, fake_host_instance(fh), ev);
    else
        threshold_conn_on_event(c->threshold, &fh->host, fake_host_instance(fh), ev);
}

START_TEST(test_connector_cases)
{
    const ccase *c = &connector_cases[_i];
    any_conn conn;
    conn_new(&conn, c->threshold, c->opts);
    for (size_t i = 0; i < MAX_STEPS && c->steps[i].op; i++) {
        const cstep *s = &c->steps[i];
        event_buf b;
        if (s->op == 'i') {
            fake_host_clear(fh);
            conn_on_event(&conn, instances(&b, s->t, s->v));
            ck_assert_uint_eq(fh->npub, 0);
            ck_assert_int_eq(sb_policy_current(conn_policy(&conn)), (int64_t)s->v);
            continue;
        }
        const sb_event *ev =
            s->op == 'd' ? upstream(&b, s->t, s->v) : reading(&b, s->t, c->metric, s->v);
        sb_reason r;
        int64_t got = -1;
        ck_assert_int_eq(conn_decide(&conn, ev, &got, &r), 0);
        ck_assert_msg(got == s->want, "%s, step %zu: got %lld, want %lld (%s)", c->name, i,
                      (long long)got, (long long)s->want, r.text);
        ck_assert_msg(strcmp(r.text, s->reason) == 0, "%s, step %zu: reason '%s', want '%s'",
                      c->name, i, r.text, s->reason);
    }
    conn_free(&conn);
}
END_TEST

/* ---- publishing and logging through the host ------------------------------------------------ */

START_TEST(test_publish_and_log)
{
    any_conn conn;
    event_buf b;
    conn_new(&conn, 0, "per_instance=2 max=5 stabilize_down=0s");
    fake_host_clear(fh);

    conn_on_event(&conn, reading(&b, 12.5, "queue", 13));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(last_publish()->topic, SB_TOPIC_DESIRED);
    ck_assert(last_publish()->value == 5);
    ck_assert_uint_eq(last_publish()->time_ns,
                      secs(12.5)); /* the reading's time: virtual time works */
    ck_assert_uint_eq(last_publish()->nlabels, 1);
    ck_assert_str_eq(last_publish()->labels[0].key, "reason");
    ck_assert_str_eq(last_publish()->labels[0].value, "queue=13 per_instance=2 -> 7; max 5 -> 5");
    ck_assert_int_eq(last_log()->level, SB_LOG_INFO);
    ck_assert_str_eq(last_log()->text, "desired 5: queue=13 per_instance=2 -> 7; max 5 -> 5");

    /* The same count for the same reason: debug only. */
    conn_on_event(&conn, reading(&b, 13, "queue", 13));
    ck_assert_uint_eq(fh->npub, 2);
    ck_assert_int_eq(last_log()->level, SB_LOG_DEBUG);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO], 1);

    /* The same count for another reason: info again. */
    conn_on_event(&conn, reading(&b, 14, "queue", 20));
    ck_assert_int_eq(last_log()->level, SB_LOG_INFO);
    ck_assert_str_eq(last_log()->text, "desired 5: queue=20 per_instance=2 -> 10; max 5 -> 5");

    /* Instance lists inform, they decide nothing; other topics are not for us. */
    conn_on_event(&conn, instances(&b, 15, 5));
    ck_assert_uint_eq(fh->npub, 3);
    ck_assert_int_eq(sb_policy_current(conn_policy(&conn)), 5);
    b.ev.topic = SB_TOPIC_RUN;
    conn_on_event(&conn, &b.ev);
    b.ev.topic = NULL;
    conn_on_event(&conn, &b.ev);
    ck_assert_uint_eq(fh->npub, 3);

    /* A value that is not a number: a warning, no decision. */
    int64_t d;
    sb_reason r;
    ck_assert_int_eq(conn_decide(&conn, reading(&b, 16, "queue", NAN), &d, &r), -EINVAL);
    conn_on_event(&conn, reading(&b, 16, "queue", NAN));
    ck_assert_uint_eq(fh->npub, 3);
    ck_assert_int_eq(last_log()->level, SB_LOG_WARN);
    ck_assert_str_eq(last_log()->text, "ignored a value that is not a number from trigger");
    conn_on_event(&conn, reading(&b, 16, "queue", INFINITY));
    ck_assert_uint_eq(fh->npub, 3);

    /* A refused publish is a warning, and the next success is news again. */
    fh->publish_rc = -ENOBUFS;
    conn_on_event(&conn, reading(&b, 17, "queue", 4));
    ck_assert_uint_eq(fh->npub, 4);
    ck_assert_int_eq(last_log()->level, SB_LOG_WARN);
    ck_assert_str_eq(last_log()->text, "desired 2 not published (error -105)");
    fh->publish_rc = 0;
    int info = fh->logs_at[SB_LOG_INFO];
    conn_on_event(&conn, reading(&b, 18, "queue", 4));
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO], info + 1);
    ck_assert_str_eq(last_log()->text,
                     "desired 2: queue=4 per_instance=2 -> 2, within tolerance 0.1 of 2; "
                     "hold 2");
    conn_free(&conn);

    /* The threshold connector publishes the same way. */
    conn_new(&conn, 1, "upper=10 stabilize_down=0s");
    fake_host_clear(fh);
    conn_on_event(&conn, instances(&b, 0, 2));
    conn_on_event(&conn, upstream(&b, 1, 12));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 3);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "upstream=12 >= upper 10 for 1 reading: delta +1 -> 3");
    conn_on_event(&conn, reading(&b, 2, "x", NAN));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_int_eq(last_log()->level, SB_LOG_WARN);
    conn_free(&conn);
}
END_TEST

START_TEST(test_observe_ignores_nonsense)
{
    sb_policy *p = policy_from("stabilize_down=0s");
    event_buf b;
    ck_assert_int_eq(sb_policy_current(p), 0);
    ck_assert_int_eq(sb_policy_decided(p), 0);
    sb_policy_observe(p, instances(&b, 0, 3));
    ck_assert_int_eq(sb_policy_current(p), 3);
    ck_assert_int_eq(sb_policy_decided(p), 3);
    sb_policy_observe(p, instances(&b, 0, -1));
    sb_policy_observe(p, instances(&b, 0, NAN));
    ck_assert_int_eq(sb_policy_current(p), 3);
    sb_policy_observe(p, instances(&b, 0, 1e18));
    ck_assert_int_eq(sb_policy_current(p), SB_POLICY_COUNT_MAX);
    sb_policy_free(p);

    /* Without any instance list, the current count is the last decision. */
    p = policy_from("stabilize_down=0s");
    sb_policy_input in = {.now_ns = 0, .raw = 4};
    ck_assert_int_eq(sb_policy_decide(p, &in, NULL), 4);
    ck_assert_int_eq(sb_policy_current(p), 4);
    sb_policy_free(p);
    sb_policy_free(NULL);
}
END_TEST

/* The daemon sends a scaler's bounds with its instance list: decisions stay inside them, and
 * the reason says which bound held the count. */
START_TEST(test_scaler_bounds_from_instances)
{
    sb_policy *p = policy_from("stabilize_down=0s max=50");
    int64_t lo, hi;
    sb_policy_bounds(p, &lo, &hi);
    ck_assert_int_eq(lo, 0);
    ck_assert_int_eq(hi, 50);
    sb_label bounds[2] = {{"scaler_min", "2"}, {"scaler_max", "10"}};
    sb_event ev = {.source_id = "pool",
                   .topic = SB_TOPIC_INSTANCES,
                   .value = 3,
                   .labels = bounds,
                   .nlabels = 2};
    sb_policy_observe(p, &ev);
    sb_policy_bounds(p, &lo, &hi);
    ck_assert_int_eq(lo, 2);
    ck_assert_int_eq(hi, 10);
    sb_reason r;
    sb_reason_init(&r);
    sb_reason_addf(&r, "queue=400 per_instance=10 -> 40");
    sb_policy_input in = {.now_ns = secs(1), .raw = 40};
    ck_assert_int_eq(sb_policy_decide(p, &in, &r), 10);
    ck_assert_str_eq(r.text, "queue=400 per_instance=10 -> 40; scaler max 10 -> 10");
    sb_reason_init(&r);
    sb_reason_addf(&r, "queue=0 per_instance=10 -> 0");
    in = (sb_policy_input){.now_ns = secs(2), .raw = 0};
    ck_assert_int_eq(sb_policy_decide(p, &in, &r), 2);
    ck_assert_str_eq(r.text, "queue=0 per_instance=10 -> 0; scaler min 2 -> 2");
    /* Labels that are not counts change nothing. */
    sb_label junk[2] = {{"scaler_min", "x"}, {"scaler_max", "-4"}};
    ev.labels = junk;
    sb_policy_observe(p, &ev);
    sb_policy_bounds(p, &lo, &hi);
    ck_assert_int_eq(lo, 2);
    ck_assert_int_eq(hi, 10);
    sb_policy_free(p);
}
END_TEST

/* A long falling run fills the window queue past its cap: the count stays at or above the true
 * highest recommendation (merging only makes it stricter), and memory stays bounded. */
START_TEST(test_window_cap)
{
    sb_policy *p = policy_from("stabilize_down=1h");
    const int n = getenv("SB_UNDER_VALGRIND") ? 20000 : 100000;
    sb_policy_input in;
    memset(&in, 0, sizeof in);
    for (int i = 0; i < n; i++) {
        in.now_ns = secs(i * 0.01);
        in.raw = n - i;
        int64_t got = sb_policy_decide(p, &in, NULL);
        ck_assert_int_eq(got, n); /* the first (highest) is within the hour throughout */
    }
    /* Just under an hour after the first: still the first. */
    in.now_ns = secs(3599);
    in.raw = 0;
    ck_assert_int_eq(sb_policy_decide(p, &in, NULL), n);
    /* An hour after the middle one: the highest left is the one after it, or (merged entries
     * hold a value longer) something higher, never lower. */
    in.now_ns = secs(3600 + n * 0.005);
    int64_t got = sb_policy_decide(p, &in, NULL);
    ck_assert_int_ge(got, n - n / 2 - 1);
    ck_assert_int_le(got, n);
    sb_policy_free(p);
}
END_TEST

/* ---- the plugins, loaded as the daemon loads them ---------------------------------------- */

/* NULL (and a note on stderr) when the plugin is not built: the test then passes vacuously. */
static const sb_plugin_descriptor *plugin_load(const char *name, void **handle)
{
    const sb_plugin_descriptor *d = test_plugin_load_if_built(name, SB_KIND_CONNECTOR, handle);
    if (!d)
        return NULL;
    ck_assert_uint_eq(d->abi_version, SB_ABI_VERSION);
    ck_assert_int_eq(d->kind, SB_KIND_CONNECTOR);
    ck_assert_str_eq(d->type, name);
    ck_assert_ptr_nonnull(d->create);
    ck_assert_ptr_nonnull(d->destroy);
    ck_assert_ptr_nonnull(d->on_event);
    return d;
}

START_TEST(test_plugins)
{
    void *h;
    const sb_plugin_descriptor *d = plugin_load("target", &h);
    optset o;
    char err[256] = "";
    void *state = NULL;
    event_buf b;
    if (d) {
        ck_assert_str_eq(d->options[0].name, "per_instance");
        opts_fill(&o, d->options, "mode=sideways");
        ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, o.v, &state, err, sizeof err),
                         -EINVAL);
        ck_assert_str_eq(err, "mode: expected total or ratio, got 'sideways'");
        opts_fill(&o, d->options, "per_instance=2 max=5");
        ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, o.v, &state, err, sizeof err),
                         0);
        fake_host_clear(fh);
        d->on_event(state, instances(&b, 0, 1));
        d->on_event(state, reading(&b, 1, "queue", 13));
        ck_assert_uint_eq(fh->npub, 1);
        ck_assert(last_publish()->value == 5);
        ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                         "queue=13 per_instance=2 -> 7; max 5 -> 5");
        d->destroy(state);
        test_plugin_unload(h);
    }
    d = plugin_load("threshold", &h);
    if (d) {
        ck_assert_str_eq(d->options[0].name, "upper");
        opts_fill(&o, d->options, "");
        ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, o.v, &state, err, sizeof err),
                         -EINVAL);
        ck_assert_str_eq(err, "upper: set upper, lower or both");
        opts_fill(&o, d->options, "upper=80 upper_amount=2 within=2");
        ck_assert_int_eq(d->create(fake_host_instance(fh), &fh->host, o.v, &state, err, sizeof err),
                         0);
        fake_host_clear(fh);
        d->on_event(state, reading(&b, 1, "cpu", 91));
        d->on_event(state, reading(&b, 2, "cpu", 92));
        ck_assert_uint_eq(fh->npub, 2);
        ck_assert(last_publish()->value == 2);
        ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                         "cpu=92 >= upper 80 for 2 readings: delta +2 -> 2");
        d->destroy(state);
        test_plugin_unload(h);
    }
}
END_TEST

/* ---- failed inputs: fail_after and fallback ---------------------------------------------- */

/* An error event as a polling trigger publishes it: value = its consecutive failures. */
static const sb_event *failure(event_buf *b, double t, const char *source, double count)
{
    memset(b, 0, sizeof *b);
    b->label = (sb_label){"reason", "GET http://q/: connection refused"};
    b->ev.source_id = source;
    b->ev.topic = SB_TOPIC_ERROR;
    b->ev.mono_ns = secs(t);
    b->ev.value = count;
    b->ev.labels = &b->label;
    b->ev.nlabels = 1;
    return &b->ev;
}

/* A reading from `source` with no labels: the reason names the trigger by its id. */
static const sb_event *reading_from(event_buf *b, double t, const char *source, double value)
{
    reading(b, t, NULL, value);
    b->ev.source_id = source;
    return &b->ev;
}

/* A target connector behind the shared glue (sb_policy_connector_*), as target.so makes it. */
static int glue_target_new(const sb_value *values, void **conn, char *err, size_t errlen)
{
    target_conn *t = NULL;
    int rc = target_conn_new(values, &t, err, errlen);
    *conn = t;
    return rc;
}

static sb_policy *glue_target_policy(void *conn)
{
    return target_conn_policy(conn);
}

static const sb_policy_connector_ops glue_target_ops = {
    .create = glue_target_new,
    .on_event = target_conn_on_event,
    .destroy = target_conn_free,
    .policy = glue_target_policy,
};

/* Without .policy the glue hands every event to the connector as it is. */
static const sb_policy_connector_ops glue_target_ops_no_policy = {
    .create = glue_target_new,
    .on_event = target_conn_on_event,
    .destroy = target_conn_free,
};

static void *glue_new(const sb_policy_connector_ops *ops, const char *spec)
{
    optset o;
    char err[256] = "";
    void *state = NULL;
    opts_fill(&o, target_options, spec);
    ck_assert_msg(sb_policy_connector_create(ops, fake_host_instance(fh), &fh->host, o.v, &state,
                                             err, sizeof err) == 0,
                  "%s: %s", spec, err);
    return state;
}

static int log_count(const char *text)
{
    int n = 0;
    for (size_t i = 0; i < fh->nlog; i++)
        n += strcmp(fh->logs[i].text, text) == 0;
    return n;
}

static const char *info_lines(char *buf, size_t len)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < fh->nlog && at < len; i++)
        if (fh->logs[i].level <= SB_LOG_INFO)
            at += (size_t)snprintf(buf + at, len - at, "[%s] ", fh->logs[i].text);
    return buf;
}

START_TEST(test_failures_hold)
{
    char lines[2048];
    event_buf b;
    void *c = glue_new(&glue_target_ops, "per_instance=2 stabilize_down=0s");
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, reading_from(&b, 0, "redis-jobs", 8));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 4);

    /* Two failures: counted, nothing decided, nothing at info. */
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 1, "redis-jobs", 1));
    sb_policy_connector_on_event(c, failure(&b, 2, "redis-jobs", 2));
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO] + fh->logs_at[SB_LOG_WARN], 0);
    /* The third: hold the last decision, said once; never a decision from the error's value. */
    sb_policy_connector_on_event(c, failure(&b, 3, "redis-jobs", 3));
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO], 1);
    ck_assert_int_eq(last_log()->level, SB_LOG_INFO);
    ck_assert_str_eq(last_log()->text, "redis-jobs: 3 failures -> hold 4");
    for (int i = 4; i <= 5; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "redis-jobs", i));
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_msg(fh->logs_at[SB_LOG_INFO] == 1, "%s", info_lines(lines, sizeof lines));

    /* Reading again: said once, then decided as usual. */
    sb_policy_connector_on_event(c, reading_from(&b, 6, "redis-jobs", 2));
    ck_assert_int_eq(log_count("redis-jobs: reading again after 5 failures"), 1);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 1);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs=2 per_instance=2 -> 1");
    sb_policy_connector_on_event(c, reading_from(&b, 7, "redis-jobs", 2));
    ck_assert_int_eq(log_count("redis-jobs: reading again after 5 failures"), 1);

    /* A failure below fail_after and a reading: debug only. */
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 8, "redis-jobs", 1));
    sb_policy_connector_on_event(c, reading_from(&b, 9, "redis-jobs", 2));
    ck_assert_int_eq(log_count("redis-jobs: reading again after 1 failure"), 1);
    ck_assert_int_eq(last_log()->level, SB_LOG_DEBUG);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO] + fh->logs_at[SB_LOG_WARN], 0);
    sb_policy_connector_destroy(c);
}
END_TEST

/* fail_after counts per input; the counter follows the trigger's own count when it is larger. */
START_TEST(test_failures_fail_after)
{
    event_buf b;
    sb_instance *inst = fake_host_instance(fh);
    sb_policy *p = policy_from("fail_after=1 stabilize_down=0s");
    sb_policy_input in = {.now_ns = 0, .raw = 2};
    sb_policy_decide(p, &in, NULL);
    ck_assert_int_eq(sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 1, "q", 1)), 1);
    ck_assert_str_eq(last_log()->text, "q: 1 failure -> hold 2");
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 1);
    ck_assert_uint_eq(fh->npub, 0);
    ck_assert_int_eq(sb_policy_failures_on_event(p, &fh->host, inst, reading_from(&b, 2, "q", 1)),
                     0);
    ck_assert_str_eq(last_log()->text, "q: reading again after 1 failure");
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 0);
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 0);
    sb_policy_free(p);

    p = policy_from("fail_after=5");
    sb_policy_decide(p, &in, NULL);
    fake_host_clear(fh);
    for (int i = 1; i <= 4; i++)
        sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, i, "q", i));
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 4);
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 0);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO], 0);
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 5, "q", 5));
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 1);
    ck_assert_str_eq(last_log()->text, "q: 5 failures -> hold 2");
    sb_policy_free(p);

    /* A policy newer than the failures (a reload): the trigger's count of 7 is taken at once. A
     * count that is not a number, or goes back (the trigger was replaced), counts one more. */
    p = policy_from("");
    fake_host_clear(fh);
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 1, "q", 7));
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 7);
    ck_assert_str_eq(last_log()->text, "q: 7 failures -> hold (nothing decided yet)");
    ck_assert_uint_eq(fh->npub, 0); /* before any decision a hold publishes nothing */
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 2, "q", NAN));
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 8);
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 3, "q", 1));
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 9);
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 3, "q", 1e300));
    ck_assert_uint_eq(sb_policy_input_failures(p, "q"), 1000000000000ull);
    ck_assert_int_eq(fh->logs_at[SB_LOG_INFO], 1);
    ck_assert_uint_eq(fh->npub, 0);

    /* Other topics are not the failure handling's business. */
    ck_assert_int_eq(sb_policy_failures_on_event(p, &fh->host, inst, instances(&b, 4, 3)), 0);
    b.ev.topic = NULL;
    ck_assert_int_eq(sb_policy_failures_on_event(p, &fh->host, inst, &b.ev), 0);
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 1);
    sb_policy_free(p);
}
END_TEST

START_TEST(test_failures_fallback)
{
    char lines[2048];
    event_buf b;
    /* The windows, rate limits and cooldowns would all hold 4: the fallback passes them. */
    void *c = glue_new(&glue_target_ops,
                       "per_instance=2 fallback=1 cooldown_down=1h max_step_down=1");
    sb_policy_connector_on_event(c, reading_from(&b, 0, "redis-jobs", 8));
    ck_assert(last_publish()->value == 4);
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 1, "redis-jobs", 1));
    sb_policy_connector_on_event(c, failure(&b, 2, "redis-jobs", 2));
    ck_assert_uint_eq(fh->npub, 0);
    sb_policy_connector_on_event(c, failure(&b, 3, "redis-jobs", 3));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(last_publish()->topic, SB_TOPIC_DESIRED);
    ck_assert(last_publish()->value == 1);
    ck_assert_uint_eq(last_publish()->time_ns, secs(3));
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 3 failures -> fallback 1");
    ck_assert_int_eq(last_log()->level, SB_LOG_INFO);
    ck_assert_str_eq(last_log()->text, "desired 1: redis-jobs: 3 failures -> fallback 1");
    /* Each further failure publishes the fallback again, logged at debug only. */
    for (int i = 4; i <= 10; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "redis-jobs", i));
    ck_assert_uint_eq(fh->npub, 8);
    ck_assert(last_publish()->value == 1);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 3 failures -> fallback 1");
    ck_assert_msg(fh->logs_at[SB_LOG_INFO] == 1, "%s", info_lines(lines, sizeof lines));

    /* Reading again: the fallback was a decision, so the cooldown and the rate limit now run
     * from it (up is free; the scale-down to 1 has happened). */
    sb_policy_connector_on_event(c, reading_from(&b, 11, "redis-jobs", 12));
    ck_assert_int_eq(log_count("redis-jobs: reading again after 10 failures"), 1);
    ck_assert(last_publish()->value == 6);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs=12 per_instance=2 -> 6");
    ck_assert_msg(fh->logs_at[SB_LOG_INFO] == 3, "%s", info_lines(lines, sizeof lines));
    sb_policy_connector_destroy(c);

    /* Before any decision the fallback is still decided and published. */
    c = glue_new(&glue_target_ops, "fallback=2");
    fake_host_clear(fh);
    for (int i = 1; i <= 3; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "redis-jobs", i));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 2);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 3 failures -> fallback 2");
    sb_policy_connector_destroy(c);
}
END_TEST

START_TEST(test_failures_fallback_bounds)
{
    event_buf b;
    void *c = glue_new(&glue_target_ops, "fallback=10 max=5 fail_after=2");
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 1, "redis-jobs", 1));
    sb_policy_connector_on_event(c, failure(&b, 2, "redis-jobs", 2));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 5);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 2 failures -> fallback 10; max 5 -> 5");
    sb_policy_connector_destroy(c);

    /* The scaler's own max, from its instance list. */
    c = glue_new(&glue_target_ops, "fallback=10 min=1");
    sb_label bounds[2] = {{"scaler_min", "0"}, {"scaler_max", "3"}};
    sb_event inst_ev = {.source_id = "pool",
                        .topic = SB_TOPIC_INSTANCES,
                        .value = 2,
                        .labels = bounds,
                        .nlabels = 2};
    sb_policy_connector_on_event(c, &inst_ev);
    fake_host_clear(fh);
    for (int i = 1; i <= 3; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "redis-jobs", i));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 3);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 3 failures -> fallback 10; scaler max 3 -> 3");
    sb_policy_connector_destroy(c);

    /* And min. */
    c = glue_new(&glue_target_ops, "fallback=0 min=2 fail_after=1");
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 1, "redis-jobs", 1));
    ck_assert(last_publish()->value == 2);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "redis-jobs: 1 failure -> fallback 0; min 2 -> 2");
    sb_policy_connector_destroy(c);
}
END_TEST

/* Two inputs: without fallback the other still decides; with it the fallback wins while any is
 * failed, and its reason names the input that failed first among those still failed. */
START_TEST(test_failures_two_inputs)
{
    char lines[2048];
    event_buf b;
    void *c = glue_new(&glue_target_ops, "per_instance=2 stabilize_down=0s");
    sb_policy_connector_on_event(c, reading_from(&b, 0, "a", 8));
    fake_host_clear(fh);
    for (int i = 1; i <= 3; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "a", i));
    ck_assert_str_eq(last_log()->text, "a: 3 failures -> hold 4");
    ck_assert_uint_eq(fh->npub, 0);
    sb_policy_connector_on_event(c, reading_from(&b, 4, "b", 2));
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(last_publish()->value == 1);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"), "b=2 per_instance=2 -> 1");
    /* b's one failure and a's fourth change nothing. */
    sb_policy_connector_on_event(c, failure(&b, 5, "b", 1));
    sb_policy_connector_on_event(c, failure(&b, 5, "a", 4));
    ck_assert_uint_eq(fh->npub, 1);
    sb_policy_connector_on_event(c, reading_from(&b, 6, "a", 6));
    ck_assert_int_eq(log_count("a: reading again after 4 failures"), 1);
    ck_assert(last_publish()->value == 3);
    sb_policy_connector_destroy(c);

    c = glue_new(&glue_target_ops, "per_instance=2 stabilize_down=0s fallback=2");
    sb_policy_connector_on_event(c, reading_from(&b, 0, "a", 8));
    fake_host_clear(fh);
    for (int i = 1; i <= 3; i++)
        sb_policy_connector_on_event(c, failure(&b, i, "a", i));
    ck_assert(last_publish()->value == 2);
    ck_assert_uint_eq(fh->npub, 1);
    /* b's readings decide the fallback again, not their own count. */
    sb_policy_connector_on_event(c, reading_from(&b, 4, "b", 20));
    ck_assert_uint_eq(fh->npub, 2);
    ck_assert(last_publish()->value == 2);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "a: 3 failures -> fallback 2");
    for (int i = 1; i <= 3; i++)
        sb_policy_connector_on_event(c, failure(&b, 4 + i, "b", i));
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "a: 3 failures -> fallback 2");
    ck_assert_msg(fh->logs_at[SB_LOG_INFO] == 1, "%s", info_lines(lines, sizeof lines));
    /* a reads again, b is still failed: still the fallback, now for b. */
    sb_policy_connector_on_event(c, reading_from(&b, 8, "a", 12));
    ck_assert_int_eq(log_count("a: reading again after 3 failures"), 1);
    ck_assert(last_publish()->value == 2);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                     "b: 3 failures -> fallback 2");
    ck_assert_str_eq(last_log()->text, "desired 2: b: 3 failures -> fallback 2");
    ck_assert_int_eq(last_log()->level, SB_LOG_INFO);
    /* b reads again: decisions as usual. */
    sb_policy_connector_on_event(c, reading_from(&b, 9, "b", 10));
    ck_assert_int_eq(log_count("b: reading again after 3 failures"), 1);
    ck_assert(last_publish()->value == 5);
    ck_assert_str_eq(fake_published_label(last_publish(), "reason"), "b=10 per_instance=2 -> 5");
    sb_policy_connector_destroy(c);
}
END_TEST

/* The glue without ops->policy hands the error to the connector, which ignores the topic; a
 * connector never reads an error's value as a reading. Many failing inputs stay bounded. */
START_TEST(test_failures_glue_and_limits)
{
    event_buf b;
    void *c = glue_new(&glue_target_ops_no_policy, "per_instance=2 fallback=2 fail_after=1");
    fake_host_clear(fh);
    sb_policy_connector_on_event(c, failure(&b, 1, "a", 1));
    sb_policy_connector_on_event(c, failure(&b, 2, "a", 2));
    ck_assert_uint_eq(fh->npub, 0);
    sb_policy_connector_destroy(c);

    sb_policy *p = policy_from("fail_after=1");
    sb_instance *inst = fake_host_instance(fh);
    char id[32];
    fake_host_clear(fh);
    for (int i = 0; i < SB_POLICY_INPUTS_MAX; i++) {
        snprintf(id, sizeof id, "t%d", i);
        sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 1, id, 1));
    }
    ck_assert_uint_eq(sb_policy_failed_inputs(p), SB_POLICY_INPUTS_MAX);
    ck_assert_int_eq(fh->logs_at[SB_LOG_WARN], 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(
            sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 2, "one-more", 1)), 1);
    ck_assert_int_eq(fh->logs_at[SB_LOG_WARN], 1);
    ck_assert_str_eq(last_log()->text,
                     "one-more: failure not counted: 1024 inputs are failing already (or no "
                     "memory)");
    ck_assert_uint_eq(sb_policy_input_failures(p, "one-more"), 0);
    /* One reads again: room for the newcomer. */
    sb_policy_failures_on_event(p, &fh->host, inst, reading_from(&b, 3, "t7", 1));
    sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 4, "one-more", 1));
    ck_assert_uint_eq(sb_policy_input_failures(p, "one-more"), 1);
    ck_assert_uint_eq(sb_policy_failed_inputs(p), SB_POLICY_INPUTS_MAX);
    sb_policy_free(p);

    /* A full table of inputs below fail_after makes room by forgetting one of them. */
    p = policy_from("fail_after=2");
    for (int i = 0; i < SB_POLICY_INPUTS_MAX + 5; i++) {
        snprintf(id, sizeof id, "t%d", i);
        sb_policy_failures_on_event(p, &fh->host, inst, failure(&b, 1, id, 1));
    }
    ck_assert_uint_eq(sb_policy_input_failures(p, id), 1);
    ck_assert_uint_eq(sb_policy_failed_inputs(p), 0);
    sb_policy_free(p);
}
END_TEST

/* Every policy plugin, loaded as the daemon loads it, takes error events the same way: the
 * fallback with its reason, or a hold with its one log line, and never a decision from the
 * error's value. */
typedef struct plugin_case {
    const char *type, *opts;
    double first; /* the decision on a reading of 8 */
} plugin_case;

static const plugin_case failure_plugins[] = {
    {"target", "per_instance=2", 4},
    {"threshold", "upper=5 upper_action=exact upper_amount=4", 4},
    {"expression", "expression=ceil(value/2)", 4},
    {"waiter", "concurrency_level=2 scale_up_factor=1", 4},
    {"combine", "", 8},
};

START_TEST(test_failures_every_plugin)
{
    const plugin_case *pc = &failure_plugins[_i];
    void *h;
    const sb_plugin_descriptor *d = plugin_load(pc->type, &h);
    if (!d)
        return;
    for (int with_fallback = 0; with_fallback <= 1; with_fallback++) {
        optset o;
        char spec[256], err[256] = "";
        void *state = NULL;
        event_buf b;
        snprintf(spec, sizeof spec, "%s stabilize_down=0s%s", pc->opts,
                 with_fallback ? " fallback=1" : "");
        opts_fill(&o, d->options, spec);
        ck_assert_msg(
            d->create(fake_host_instance(fh), &fh->host, o.v, &state, err, sizeof err) == 0,
            "%s: %s", spec, err);
        fake_host_clear(fh);
        d->on_event(state, reading_from(&b, 1, "jobs", 8));
        ck_assert_msg(fh->npub == 1, "%s: %zu publishes", pc->type, fh->npub);
        ck_assert_msg(last_publish()->value == pc->first, "%s: first decision %g", pc->type,
                      last_publish()->value);
        for (int i = 1; i <= 3; i++)
            d->on_event(state, failure(&b, 1 + i, "jobs", i));
        if (with_fallback) {
            ck_assert_msg(fh->npub == 2, "%s: %zu publishes", pc->type, fh->npub);
            ck_assert(last_publish()->value == 1);
            ck_assert_str_eq(fake_published_label(last_publish(), "reason"),
                             "jobs: 3 failures -> fallback 1");
        } else {
            ck_assert_msg(fh->npub == 1, "%s: %zu publishes", pc->type, fh->npub);
            char hold[64];
            snprintf(hold, sizeof hold, "jobs: 3 failures -> hold %g", pc->first);
            ck_assert_int_eq(log_count(hold), 1);
        }
        d->on_event(state, reading_from(&b, 5, "jobs", 8));
        ck_assert_int_eq(log_count("jobs: reading again after 3 failures"), 1);
        ck_assert_msg(fh->npub == (size_t)(2 + with_fallback), "%s: %zu publishes", pc->type,
                      fh->npub);
        ck_assert_msg(strstr(fake_published_label(last_publish(), "reason"), "failure") == NULL,
                      "%s: %s", pc->type, fake_published_label(last_publish(), "reason"));
        d->destroy(state);
    }
    test_plugin_unload(h);
}
END_TEST

/* ---- property tests over random traces ----------------------------------------------------- */

static uint64_t base_seed(void)
{
    const char *s = getenv("SB_TEST_SEED");
    return s ? strtoull(s, NULL, 10) : 20260301u;
}

static int traces(int normal)
{
    return getenv("SB_UNDER_VALGRIND") ? normal / 10 : normal;
}

typedef struct rng {
    uint64_t s;
} rng;

/* splitmix64: small, fast, and good enough to shake out edge cases. */
static uint64_t rng_next(rng *g)
{
    uint64_t z = (g->s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static int64_t rng_below(rng *g, int64_t n)
{
    return (int64_t)(rng_next(g) % (uint64_t)n);
}

static int rng_chance(rng *g, int percent)
{
    return rng_below(g, 100) < percent;
}

static uint64_t random_span_ms(rng *g, int percent_set, int64_t most_s)
{
    return rng_chance(g, percent_set) ? (uint64_t)(1 + rng_below(g, most_s * 1000)) : 0;
}

static void random_options(rng *g, sb_policy_options *o)
{
    static const int percents[] = {10, 25, 50, 100, 200};
    memset(o, 0, sizeof *o);
    o->min = rng_below(g, 4);
    o->max = rng_chance(g, 60) ? o->min + rng_below(g, 25) : -1;
    o->cooldown_up_ms = random_span_ms(g, 30, 120);
    o->cooldown_down_ms = random_span_ms(g, 30, 120);
    o->stabilize_up_ms = random_span_ms(g, 30, 120);
    o->stabilize_down_ms = random_span_ms(g, 70, 300);
    o->period_ms = (uint64_t)(1 + rng_below(g, 60000));
    o->max_step_up = o->max_step_down = -1;
    if (rng_chance(g, 40)) {
        o->step_up_percent = rng_chance(g, 50);
        o->max_step_up = o->step_up_percent ? percents[rng_below(g, 5)] : (double)rng_below(g, 6);
    }
    if (rng_chance(g, 40)) {
        o->step_down_percent = rng_chance(g, 50);
        o->max_step_down =
            o->step_down_percent ? percents[rng_below(g, 4)] : (double)rng_below(g, 6);
    }
}

/* Time steps: often the same instant, often a little, sometimes a long quiet spell. */
static uint64_t random_gap(rng *g)
{
    int k = (int)rng_below(g, 100);
    if (k < 10)
        return 0;
    if (k < 70)
        return (uint64_t)rng_below(g, 3000) * 1000000u;
    if (k < 95)
        return (uint64_t)rng_below(g, 30000) * 1000000u;
    return (uint64_t)rng_below(g, 400000) * 1000000u;
}

#define TRACE_LEN 160

typedef struct timed {
    int64_t t;
    int64_t v;
} timed;

/* What a trace has done so far, kept independently of the library to check it against. */
typedef struct history {
    timed recs[TRACE_LEN];     /* every recommendation */
    timed segs[TRACE_LEN + 1]; /* decided counts from their start; segs[0] the count before */
    size_t nrecs, nsegs;
    int has_change;
    int64_t change_t;
} history;

static int64_t test_ceil(double raw)
{
    return raw <= 0 ? 0 : (int64_t)ceil(raw - 1e-9);
}

static int64_t clamp_count(const sb_policy_options *o, int64_t v)
{
    if (v < o->min)
        return o->min;
    if (o->max >= 0 && v > o->max)
        return o->max;
    return v;
}

/* Lowest (or highest) decided count in effect at any time within (now - period, now]. */
static int64_t segs_extreme(const history *h, int64_t now, int64_t period, int want_max)
{
    int64_t best = h->segs[h->nsegs - 1].v;
    for (size_t i = 0; i + 1 < h->nsegs; i++) {
        if (h->segs[i + 1].t <= now - period) /* ended before the window */
            continue;
        if (want_max ? h->segs[i].v > best : h->segs[i].v < best)
            best = h->segs[i].v;
    }
    return best;
}

/* The HPA's rate rules, in integer arithmetic (the library computes in doubles). */
static int64_t up_limit(const sb_policy_options *o, int64_t base)
{
    if (!o->step_up_percent)
        return base + (int64_t)o->max_step_up;
    int64_t p = (int64_t)o->max_step_up;
    int64_t lim = (base * (100 + p) + 99) / 100;
    return p > 0 && lim < base + 1 ? base + 1 : lim;
}

static int64_t down_limit(const sb_policy_options *o, int64_t base)
{
    if (!o->step_down_percent) {
        int64_t lim = base - (int64_t)o->max_step_down;
        return lim < 0 ? 0 : lim;
    }
    int64_t p = (int64_t)o->max_step_down;
    return p >= 100 ? 0 : base * (100 - p) / 100;
}

/* A property check; the message names the seed, trace and step to replay it. Plain `if` rather
 * than ck_assert: Check records every passing assertion, which would dominate the run time. */
#define PROP(cond, fmt, ...)                                                                       \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg("seed %llu (rerun with SB_TEST_SEED=%llu), trace %d, step %d: " fmt,      \
                         seed, seed, trace, step, __VA_ARGS__);                                    \
    } while (0)

/* Every property of one decision, given what came before. */
static void check_decision(const sb_policy_options *o, const history *h, int64_t now, int hold,
                           int64_t ref, int first, int64_t d, unsigned long long seed, int trace,
                           int step, const char *reason)
{
    PROP(d >= o->min && (o->max < 0 || d <= o->max), "%lld outside [%lld, %lld] (%s)", (long long)d,
         (long long)o->min, (long long)o->max, reason);
    if (hold)
        PROP(d == clamp_count(o, ref), "changed inside the tolerance: %lld -> %lld (%s)",
             (long long)ref, (long long)d, reason);
    int64_t down_ns = (int64_t)o->stabilize_down_ms * 1000000,
            up_ns = (int64_t)o->stabilize_up_ms * 1000000;
    /* Down (not by max): no lower than any recommendation in the window. */
    if (d < ref && (o->max < 0 || d < o->max)) {
        for (size_t i = 0; i < h->nrecs; i++) {
            const timed *rc = &h->recs[i];
            if (now - rc->t < down_ns || i + 1 == h->nrecs)
                PROP(d >= rc->v,
                     "down to %lld inside stabilize_down below %lld from %.3fs ago (%s)",
                     (long long)d, (long long)rc->v, (double)(now - rc->t) / NS_PER_S, reason);
        }
    }
    /* Up (not by min): no higher than any recommendation in the up window. */
    if (d > ref && d > o->min) {
        for (size_t i = 0; i < h->nrecs; i++) {
            const timed *rc = &h->recs[i];
            if (now - rc->t < up_ns || i + 1 == h->nrecs)
                PROP(d <= rc->v, "up to %lld inside stabilize_up above %lld (%s)", (long long)d,
                     (long long)rc->v, reason);
        }
    }
    if (first)
        return; /* the bounds may move the very first decision past any limit */
    if (h->has_change && d > ref)
        PROP(now - h->change_t >= (int64_t)o->cooldown_up_ms * 1000000,
             "up %lld -> %lld inside cooldown_up (%s)", (long long)ref, (long long)d, reason);
    if (h->has_change && d < ref)
        PROP(now - h->change_t >= (int64_t)o->cooldown_down_ms * 1000000,
             "down %lld -> %lld inside cooldown_down (%s)", (long long)ref, (long long)d, reason);
    int64_t period = (int64_t)o->period_ms * 1000000;
    if (d > ref && o->max_step_up >= 0) {
        int64_t base = segs_extreme(h, now, period, 0), lim = up_limit(o, base);
        PROP(d <= (lim > ref ? lim : ref), "up %lld -> %lld past max_step_up from %lld (%s)",
             (long long)ref, (long long)d, (long long)base, reason);
    }
    if (d < ref && o->max_step_down >= 0) {
        int64_t base = segs_extreme(h, now, period, 1), lim = down_limit(o, base);
        PROP(d >= (lim < ref ? lim : ref), "down %lld -> %lld past max_step_down from %lld (%s)",
             (long long)ref, (long long)d, (long long)base, reason);
    }
}

static void history_decided(history *h, int64_t now, int64_t ref, int64_t d)
{
    if (h->nsegs == 0)
        h->segs[h->nsegs++] = (timed){INT64_MIN / 2, ref};
    if (d != ref) {
        h->has_change = 1;
        h->change_t = now;
        h->segs[h->nsegs++] = (timed){now, d};
    }
}

/* The policy alone: random options, raw recommendations, holds and instance lists. */
START_TEST(test_property_policy)
{
    unsigned long long seed = base_seed();
    int n = traces(10000);
    for (int trace = 0; trace < n; trace++) {
        rng g = {seed + (uint64_t)trace * 7919u};
        sb_policy_options o;
        random_options(&g, &o);
        sb_policy *p = sb_policy_new(&o);
        ck_assert_ptr_nonnull(p);
        static history h;
        memset(&h, 0, sizeof h);
        int64_t now = 0, observed = -1, decided = 0;
        int has_decided = 0;
        for (int step = 0; step < TRACE_LEN; step++) {
            now += (int64_t)random_gap(&g);
            if (rng_chance(&g, 10)) {
                event_buf b;
                observed = rng_below(&g, 30);
                sb_policy_observe(p, instances(&b, (double)now / NS_PER_S, (double)observed));
                continue;
            }
            int64_t ref = has_decided ? decided : (observed >= 0 ? observed : 0);
            sb_policy_input in;
            memset(&in, 0, sizeof in);
            in.now_ns = (uint64_t)now;
            in.hold = rng_chance(&g, 25);
            in.raw = rng_chance(&g, 5) ? 0 : (double)rng_below(&g, 4000) / 100.0;
            int64_t rec = in.hold ? ref : test_ceil(in.raw);
            h.recs[h.nrecs++] = (timed){now, rec};
            sb_reason r;
            sb_reason_init(&r);
            int64_t d = sb_policy_decide(p, &in, &r);
            check_decision(&o, &h, now, in.hold, ref, !has_decided, d, seed, trace, step, r.text);
            PROP(sb_policy_decided(p) == d, "decided %lld, returned %lld",
                 (long long)sb_policy_decided(p), (long long)d);
            history_decided(&h, now, ref, d);
            decided = d;
            has_decided = 1;
        }
        sb_policy_free(p);
    }
}
END_TEST

/* Activation and idle_after on top of everything else: zero only after idle_after of no demand,
 * and never out of zero while the metric is at or below activate_above. */
START_TEST(test_property_activation_idle)
{
    unsigned long long seed = base_seed();
    int n = traces(5000);
    for (int trace = 0; trace < n; trace++) {
        rng g = {seed + 1 + (uint64_t)trace * 104729u};
        sb_policy_options o;
        random_options(&g, &o);
        o.min = rng_chance(&g, 80) ? 0 : 1;
        if (o.max >= 0 && o.max < o.min)
            o.max = o.min;
        o.has_activation = rng_chance(&g, 70);
        o.activate_above = (double)rng_below(&g, 5);
        o.idle_after_ms = random_span_ms(&g, 70, 200);
        sb_policy *p = sb_policy_new(&o);
        ck_assert_ptr_nonnull(p);
        int64_t now = 0, decided = 0, zero_since = 0;
        int zero = 0;
        for (int step = 0; step < TRACE_LEN; step++) {
            now += (int64_t)random_gap(&g);
            sb_policy_input in;
            memset(&in, 0, sizeof in);
            in.now_ns = (uint64_t)now;
            in.has_metric = 1;
            in.metric = rng_chance(&g, 40) ? 0 : (double)rng_below(&g, 1000) / 100.0;
            in.raw = rng_chance(&g, 30) ? 0 : in.metric / 2;
            in.hold = rng_chance(&g, 10);
            int64_t demand = in.hold ? decided : test_ceil(in.raw);
            int applies = o.has_activation && o.min == 0;
            if (applies && in.metric <= o.activate_above)
                demand = 0;
            else if (applies && demand < 1)
                demand = 1;
            if (demand == 0 && !zero) {
                zero = 1;
                zero_since = now;
            } else if (demand != 0) {
                zero = 0;
            }
            sb_reason r;
            sb_reason_init(&r);
            int64_t d = sb_policy_decide(p, &in, &r);
            PROP(d >= o.min && (o.max < 0 || d <= o.max), "%lld outside the bounds (%s)",
                 (long long)d, r.text);
            if (decided > 0 && d == 0)
                PROP(zero && now - zero_since >= (int64_t)o.idle_after_ms * 1000000,
                     "to zero before idle_after (%s)", r.text);
            if (applies && decided == 0 && d > 0)
                PROP(in.metric > o.activate_above, "left zero at or below activate_above (%s)",
                     r.text);
            decided = d;
        }
        sb_policy_free(p);
    }
}
END_TEST

/* The connectors: inside their tolerance (target) or between or before `within` (threshold)
 * nothing changes, whatever the policy options say. */
START_TEST(test_property_connectors)
{
    unsigned long long seed = base_seed();
    int n = traces(5000);
    for (int trace = 0; trace < n; trace++) {
        rng g = {seed + 2 + (uint64_t)trace * 15485863u};
        sb_policy_options po;
        random_options(&g, &po);
        int kind = (int)rng_below(&g, 3); /* 0 total, 1 ratio, 2 threshold */
        double target = (double)(1 + rng_below(&g, 100));
        double tolerance = (double)rng_below(&g, 30) / 100.0;
        double upper = (double)(50 + rng_below(&g, 50)), lower = (double)rng_below(&g, 50);
        char spec[512];
        int len;
        if (kind == 2)
            len = snprintf(spec, sizeof spec,
                           "upper=%g lower=%g within=%lld upper_action=%s upper_amount=%lld", upper,
                           lower, (long long)(1 + rng_below(&g, 4)),
                           rng_chance(&g, 50) ? "percent" : "delta",
                           (long long)(1 + rng_below(&g, 60)));
        else if (kind == 1)
            len =
                snprintf(spec, sizeof spec, "mode=ratio target=%g tolerance=%g", target, tolerance);
        else
            len = snprintf(spec, sizeof spec, "per_instance=%g tolerance=%g", target, tolerance);
        len +=
            snprintf(spec + len, sizeof spec - (size_t)len,
                     " min=%lld stabilize_down=%llums stabilize_up=%llums cooldown_up=%llums "
                     "cooldown_down=%llums",
                     (long long)po.min, (unsigned long long)po.stabilize_down_ms,
                     (unsigned long long)po.stabilize_up_ms, (unsigned long long)po.cooldown_up_ms,
                     (unsigned long long)po.cooldown_down_ms);
        if (po.max >= 0)
            snprintf(spec + len, sizeof spec - (size_t)len, " max=%lld", (long long)po.max);
        any_conn conn;
        conn_new(&conn, kind == 2, spec);
        int64_t streak = 0, last_band = 0, within = 1;
        if (kind == 2) {
            const char *w = strstr(spec, "within=");
            within = strtoll(w + 7, NULL, 10);
        }
        double now = 0;
        for (int step = 0; step < TRACE_LEN; step++) {
            now += (double)random_gap(&g) / NS_PER_S;
            event_buf b;
            if (rng_chance(&g, 15)) {
                conn_on_event(&conn, instances(&b, now, (double)rng_below(&g, 20)));
                continue;
            }
            double value = kind == 2 ? (double)rng_below(&g, 12000) / 100.0
                                     : target * (double)rng_below(&g, 300) / 100.0;
            const sb_policy *pol = conn_policy(&conn);
            int64_t current = sb_policy_current(pol), decided = sb_policy_decided(pol);
            int hold = 0;
            if (kind == 1)
                hold = current > 0 && fabs(value / target - 1) <= tolerance;
            else if (kind == 0)
                hold = decided > 0 && fabs(value / target / (double)decided - 1) <= tolerance;
            else {
                int64_t band = value >= upper ? 1 : value < lower ? -1 : 0;
                streak = band == last_band ? streak + 1 : 1;
                last_band = band;
                hold = band == 0 || streak < within;
                if (!hold)
                    streak = 0;
            }
            int64_t d = -1;
            sb_reason r;
            int rc = conn_decide(&conn, reading(&b, now, "m", value), &d, &r);
            PROP(rc == 0, "decide returned %d", rc);
            PROP(d >= po.min && (po.max < 0 || d <= po.max), "%lld outside the bounds (%s; %s)",
                 (long long)d, spec, r.text);
            if (hold)
                PROP(d == clamp_count(&po, decided), "changed %lld -> %lld on a hold (%s; %s)",
                     (long long)decided, (long long)d, spec, r.text);
        }
        conn_free(&conn);
    }
}
END_TEST

static Suite *policy_suite(void)
{
    Suite *s = suite_create("policy");
    TCase *tc = tcase_create("library");
    tcase_add_test(tc, test_option_rows_order);
    tcase_add_test(tc, test_options_defaults);
    tcase_add_loop_test(tc, test_option_errors, 0,
                        (int)(sizeof error_cases / sizeof error_cases[0]));
    tcase_add_test(tc, test_ceil_and_names);
    tcase_add_test(tc, test_reason_text);
    tcase_add_loop_test(tc, test_policy_cases, 0,
                        (int)(sizeof policy_cases / sizeof policy_cases[0]));
    tcase_add_test(tc, test_observe_ignores_nonsense);
    tcase_add_test(tc, test_scaler_bounds_from_instances);
    tcase_add_test(tc, test_window_cap);
    suite_add_tcase(s, tc);

    tc = tcase_create("connectors");
    tcase_add_checked_fixture(tc, fake_host_setup, fake_host_teardown);
    tcase_add_loop_test(tc, test_connector_cases, 0,
                        (int)(sizeof connector_cases / sizeof connector_cases[0]));
    tcase_add_test(tc, test_publish_and_log);
    tcase_add_test(tc, test_plugins);
    suite_add_tcase(s, tc);

    tc = tcase_create("failures");
    tcase_add_checked_fixture(tc, fake_host_setup, fake_host_teardown);
    tcase_add_test(tc, test_failures_hold);
    tcase_add_test(tc, test_failures_fail_after);
    tcase_add_test(tc, test_failures_fallback);
    tcase_add_test(tc, test_failures_fallback_bounds);
    tcase_add_test(tc, test_failures_two_inputs);
    tcase_add_test(tc, test_failures_glue_and_limits);
    tcase_add_loop_test(tc, test_failures_every_plugin, 0,
                        (int)(sizeof failure_plugins / sizeof failure_plugins[0]));
    suite_add_tcase(s, tc);

    tc = tcase_create("properties");
    tcase_add_checked_fixture(tc, fake_host_setup, fake_host_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_property_policy);
    tcase_add_test(tc, test_property_activation_idle);
    tcase_add_test(tc, test_property_connectors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(policy_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
