/*
 * policy.c - the limits every scaling policy shares (scalebus/policy.h), linked into each policy
 * connector as libscalebus_policy.a.
 *
 * A connector turns a reading into a raw recommendation with its own formula; sb_policy_decide()
 * then applies, in order: rounding up, activation, idle_after, the stabilisation windows, the rate
 * limits, the cooldowns and [min, max], writing each step that changed the count into the
 * decision's reason. All time is the events' own time, so a simulation on virtual time decides
 * exactly as the daemon would. plugins/policy/README.md describes the semantics.
 *
 * Failed inputs (sb_policy_failures_on_event) are kept in a small array of the inputs with at least
 * one failure since their last value; a policy hears from few inputs, and a value from an input
 * that never failed costs one test of the array's length.
 *
 * The windows are monotonic queues: the stabilisation windows keep only the recommendations that
 * can still be the highest (or lowest) before they age out, and the rate limits keep the earlier
 * decided counts the same way, keyed by the time each stopped being the decided count. Each queue
 * holds at most one entry per distinct count, and never more than WINDOW_CAP entries.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_internal.h"
#include "scalebus/policy.h"

#define NS_PER_MS 1000000u
/* Float noise below this is not a reason to ask for one more instance. */
#define ROUND_EPSILON 1e-9
/* A queue that would grow past this merges its two oldest entries instead (see window_push). */
#define WINDOW_CAP 4096u
#define WINDOW_FIRST_CAP 8u

enum {
    OPT_MIN,
    OPT_MAX,
    OPT_COOLDOWN_UP,
    OPT_COOLDOWN_DOWN,
    OPT_STABILIZE_UP,
    OPT_STABILIZE_DOWN,
    OPT_MAX_STEP_UP,
    OPT_MAX_STEP_DOWN,
    OPT_PERIOD,
    OPT_ACTIVATE_ABOVE,
    OPT_IDLE_AFTER,
    OPT_FAIL_AFTER,
    OPT_FALLBACK,
    OPT_END
};
_Static_assert(OPT_END == SB_POLICY_OPTION_COUNT, "policy.h rows and this enum must agree");

/* ---- monotonic window queues --------------------------------------------------------------- */

static window_entry *window_at(const window *w, size_t i)
{
    return &w->e[(w->head + i) % w->cap];
}

/* An entry the new value makes irrelevant: it leaves the window no later and is no more extreme. */
static int window_dominated(const window *w, int64_t old, int64_t v)
{
    return w->keep_max ? old <= v : old >= v;
}

static int window_grow(window *w)
{
    size_t ncap = w->cap ? w->cap * 2 : WINDOW_FIRST_CAP;
    if (ncap > WINDOW_CAP)
        return -ENOMEM;
    window_entry *n = malloc(ncap * sizeof *n);
    if (!n)
        return -ENOMEM;
    for (size_t i = 0; i < w->len; i++)
        n[i] = *window_at(w, i);
    free(w->e);
    w->e = n;
    w->cap = ncap;
    w->head = 0;
    return 0;
}

void policy_window_push(window *w, uint64_t t, int64_t v)
{
    while (w->len > 0 && window_dominated(w, window_at(w, w->len - 1)->v, v))
        w->len--;
    if (w->len == w->cap && window_grow(w) != 0) {
        if (w->cap < 2)
            return; /* no memory at all (sb_policy_new prevents it): this value is forgotten */
        /* Full: the oldest entry's (more extreme) value stays until the second one's time.
         * That holds a value longer than asked, which only makes the limits stricter. */
        window_entry oldest = *window_at(w, 0);
        w->head = (w->head + 1) % w->cap;
        w->len--;
        window_at(w, 0)->v = oldest.v;
    }
    *window_at(w, w->len) = (window_entry){t, v};
    w->len++;
}

/* Drops the entries at least `span` old at `now` (now never goes below an entry's time). */
static void window_expire(window *w, uint64_t now, uint64_t span)
{
    while (w->len > 0 && now - window_at(w, 0)->t >= span) {
        w->head = (w->head + 1) % w->cap;
        w->len--;
    }
}

/* The window's highest (or lowest) value into *v; 0 when it is empty. */
static int window_front(const window *w, int64_t *v)
{
    if (w->len == 0)
        return 0;
    *v = window_at(w, 0)->v;
    return 1;
}

static void window_free(window *w)
{
    free(w->e);
    w->e = NULL;
    w->len = w->cap = w->head = 0;
}

/* ---- options ------------------------------------------------------------------------------- */

static uint64_t ms_to_ns(uint64_t ms)
{
    return ms > UINT64_MAX / NS_PER_MS ? UINT64_MAX : ms * NS_PER_MS;
}

static uint64_t duration_or(const sb_value *v, uint64_t dflt_ms)
{
    return v->is_set ? v->duration_ms : dflt_ms;
}

/* "4" (instances, a whole number) or "50%" (percent of the count at the period's start). */
static int parse_step(const char *name, const sb_value *v, double *amount, int *percent, char *err,
                      size_t errlen)
{
    *amount = -1;
    *percent = 0;
    if (!v->is_set || !v->str)
        return 0;
    const char *s = v->str;
    char *end = NULL;
    double d = -1;
    if (*s >= '0' && *s <= '9') {
        errno = 0;
        d = strtod(s, &end);
        if (errno != 0)
            end = NULL;
    }
    int pct = end && *end == '%';
    if (pct)
        end++;
    if (!end || *end != '\0' || !isfinite(d) || d < 0 || (!pct && d != floor(d)) ||
        d > (double)SB_POLICY_COUNT_MAX) {
        snprintf(err, errlen,
                 "%s: expected a whole count (\"4\") or a percent (\"50%%\"), got '%s'", name, s);
        return -EINVAL;
    }
    *amount = d;
    *percent = pct;
    return 0;
}

int sb_policy_options_read(const sb_value *values, sb_policy_options *out, char *err, size_t errlen)
{
    sb_policy_options o;
    memset(&o, 0, sizeof o);
    o.min = values[OPT_MIN].is_set ? values[OPT_MIN].integer : 0;
    o.max = values[OPT_MAX].is_set ? values[OPT_MAX].integer : -1;
    if (o.min < 0 || o.min > SB_POLICY_COUNT_MAX) {
        snprintf(err, errlen, "min: expected 0 to %d, got %lld", SB_POLICY_COUNT_MAX,
                 (long long)o.min);
        return -EINVAL;
    }
    if (values[OPT_MAX].is_set && (o.max < o.min || o.max > SB_POLICY_COUNT_MAX)) {
        snprintf(err, errlen, "max: expected %lld (min) to %d, got %lld", (long long)o.min,
                 SB_POLICY_COUNT_MAX, (long long)o.max);
        return -EINVAL;
    }
    o.cooldown_up_ms = duration_or(&values[OPT_COOLDOWN_UP], 0);
    o.cooldown_down_ms = duration_or(&values[OPT_COOLDOWN_DOWN], 0);
    o.stabilize_up_ms = duration_or(&values[OPT_STABILIZE_UP], 0);
    o.stabilize_down_ms = duration_or(&values[OPT_STABILIZE_DOWN], 300000);
    o.period_ms = duration_or(&values[OPT_PERIOD], 15000);
    o.idle_after_ms = duration_or(&values[OPT_IDLE_AFTER], 0);
    int rc = parse_step("max_step_up", &values[OPT_MAX_STEP_UP], &o.max_step_up, &o.step_up_percent,
                        err, errlen);
    if (rc == 0)
        rc = parse_step("max_step_down", &values[OPT_MAX_STEP_DOWN], &o.max_step_down,
                        &o.step_down_percent, err, errlen);
    if (rc != 0)
        return rc;
    if ((o.max_step_up >= 0 || o.max_step_down >= 0) && o.period_ms == 0) {
        snprintf(err, errlen, "period: must be above 0 when max_step_up or max_step_down is set");
        return -EINVAL;
    }
    if (values[OPT_ACTIVATE_ABOVE].is_set) {
        if (!isfinite(values[OPT_ACTIVATE_ABOVE].number)) {
            snprintf(err, errlen, "activate_above: expected a finite number");
            return -EINVAL;
        }
        o.has_activation = 1;
        o.activate_above = values[OPT_ACTIVATE_ABOVE].number;
    }
    o.fail_after = values[OPT_FAIL_AFTER].is_set ? values[OPT_FAIL_AFTER].integer : 3;
    if (o.fail_after < 1 || o.fail_after > SB_POLICY_COUNT_MAX) {
        snprintf(err, errlen, "fail_after: expected 1 to %d, got %lld", SB_POLICY_COUNT_MAX,
                 (long long)o.fail_after);
        return -EINVAL;
    }
    if (values[OPT_FALLBACK].is_set) {
        o.has_fallback = 1;
        o.fallback = values[OPT_FALLBACK].integer;
        if (o.fallback < 0 || o.fallback > SB_POLICY_COUNT_MAX) {
            snprintf(err, errlen, "fallback: expected 0 to %d, got %lld", SB_POLICY_COUNT_MAX,
                     (long long)o.fallback);
            return -EINVAL;
        }
    }
    *out = o;
    return 0;
}

/* ---- reasons ------------------------------------------------------------------------------- */

void sb_reason_init(sb_reason *r)
{
    r->text[0] = '\0';
    r->len = 0;
}

static void reason_vaddf(sb_reason *r, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void reason_vaddf(sb_reason *r, const char *fmt, va_list ap)
{
    if (!r)
        return;
    size_t room = sizeof r->text - r->len;
    if (room <= 1)
        return;
    int n = vsnprintf(r->text + r->len, room, fmt, ap);
    if (n < 0)
        return;
    if ((size_t)n >= room) {
        /* Cut: say so rather than end mid-word without a sign. */
        r->len = sizeof r->text - 1;
        memcpy(r->text + r->len - 3, "...", 3);
        return;
    }
    r->len += (size_t)n;
}

void sb_reason_addf(sb_reason *r, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    reason_vaddf(r, fmt, ap);
    va_end(ap);
}

/* One step of the chain, after "; " when something came before it. */
static void reason_step(sb_reason *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void reason_step(sb_reason *r, const char *fmt, ...)
{
    if (!r)
        return;
    if (r->len > 0)
        sb_reason_addf(r, "; ");
    va_list ap;
    va_start(ap, fmt);
    reason_vaddf(r, fmt, ap);
    va_end(ap);
}

/* Seconds as "300s", "1.5s" or "0.25s": short, exact to the millisecond. */
static const char *fmt_secs(char *buf, size_t len, uint64_t ns)
{
    uint64_t ms = ns / NS_PER_MS;
    if (ms % 1000 == 0) {
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
        return buf;
    }
    snprintf(buf, len, "%llu.%03llu", (unsigned long long)(ms / 1000),
             (unsigned long long)(ms % 1000));
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '0')
        buf[--n] = '\0';
    if (n + 1 < len) {
        buf[n] = 's';
        buf[n + 1] = '\0';
    }
    return buf;
}

/* ---- the policy ---------------------------------------------------------------------------- */

int sb_policy_new_from_values(const sb_value *policy_rows, sb_policy **out, char *err,
                              size_t errlen)
{
    sb_policy_options o;
    *out = NULL;
    int rc = sb_policy_options_read(policy_rows, &o, err, errlen);
    if (rc != 0)
        return rc;
    if ((*out = sb_policy_new(&o)) == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

sb_policy *sb_policy_new(const sb_policy_options *o)
{
    sb_policy *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->o = *o;
    if (p->o.fail_after < 1)
        p->o.fail_after = 1; /* options made by hand, not read: the least that means anything */
    p->scaler_min = p->scaler_max = -1;
    p->stabilize_up_ns = ms_to_ns(o->stabilize_up_ms);
    p->stabilize_down_ns = ms_to_ns(o->stabilize_down_ms);
    p->cooldown_up_ns = ms_to_ns(o->cooldown_up_ms);
    p->cooldown_down_ns = ms_to_ns(o->cooldown_down_ms);
    p->period_ns = ms_to_ns(o->period_ms);
    p->idle_after_ns = ms_to_ns(o->idle_after_ms);
    p->rec_high.keep_max = 1;
    p->dec_high.keep_max = 1;
    /* Memory up front, so a policy that was created can always remember something. */
    window *all[] = {&p->rec_high, &p->rec_low, &p->dec_high, &p->dec_low};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
        if (window_grow(all[i]) != 0) {
            sb_policy_free(p);
            return NULL;
        }
    }
    return p;
}

void sb_policy_free(sb_policy *p)
{
    if (!p)
        return;
    window_free(&p->rec_high);
    window_free(&p->rec_low);
    window_free(&p->dec_high);
    window_free(&p->dec_low);
    for (size_t i = 0; i < p->ninputs; i++)
        free(p->inputs[i].id);
    free(p->inputs);
    free(p);
}

void sb_policy_observe(sb_policy *p, const sb_event *ev)
{
    if (!isfinite(ev->value) || ev->value < 0)
        return;
    p->observed = ev->value > SB_POLICY_COUNT_MAX ? SB_POLICY_COUNT_MAX : (int64_t)ev->value;
    p->has_observed = 1;
    for (size_t i = 0; i < ev->nlabels; i++) {
        int64_t *to = strcmp(ev->labels[i].key, "scaler_min") == 0   ? &p->scaler_min
                      : strcmp(ev->labels[i].key, "scaler_max") == 0 ? &p->scaler_max
                                                                     : NULL;
        char *end;
        long long v = to ? strtoll(ev->labels[i].value, &end, 10) : -1;
        if (to && *end == '\0' && v >= 0 && v <= SB_POLICY_COUNT_MAX)
            *to = v;
    }
}

void sb_policy_bounds(const sb_policy *p, int64_t *min, int64_t *max)
{
    int64_t lo = p->o.min, hi = p->o.max;
    if (p->scaler_min > lo)
        lo = p->scaler_min;
    if (p->scaler_max >= 0 && (hi < 0 || p->scaler_max < hi))
        hi = p->scaler_max;
    if (hi >= 0 && lo > hi) /* bounds that disagree: the scaler's max wins, as it will clamp */
        lo = hi;
    *min = lo;
    *max = hi;
}

int64_t sb_policy_current(const sb_policy *p)
{
    if (p->has_observed)
        return p->observed;
    return p->has_decided ? p->decided : 0;
}

int64_t sb_policy_decided(const sb_policy *p)
{
    return p->has_decided ? p->decided : sb_policy_current(p);
}

int64_t sb_policy_ceil(double raw)
{
    if (isnan(raw) || raw <= 0)
        return 0;
    if (raw >= (double)SB_POLICY_COUNT_MAX)
        return SB_POLICY_COUNT_MAX;
    return (int64_t)ceil(raw - ROUND_EPSILON);
}

const char *sb_policy_metric_name(const sb_event *ev)
{
    const char *src = ev->source_id && *ev->source_id ? ev->source_id : "value";
    if (ev->topic && strcmp(ev->topic, SB_TOPIC_DESIRED) == 0)
        return src;
    /* A label that says which queue or service the reading is about names it; a cron trigger's
     * schedule label does not, and then the trigger's id does. */
    if (ev->nlabels > 0 && ev->labels && ev->labels[0].value && *ev->labels[0].value &&
        strcmp(ev->labels[0].key, "schedule") != 0)
        return ev->labels[0].value;
    return src;
}

/* KEDA's activation: at or below the threshold there is no demand; above it, at least 1. */
static int64_t apply_activation(const sb_policy *p, const sb_policy_input *in, int64_t v,
                                sb_reason *r)
{
    if (!p->o.has_activation || p->o.min != 0 || !in->has_metric || isnan(in->metric))
        return v;
    const char *name = in->metric_name ? in->metric_name : "metric";
    if (in->metric <= p->o.activate_above) {
        reason_step(r, "%s=%g <= activate_above %g -> 0", name, in->metric, p->o.activate_above);
        return 0;
    }
    if (v < 1) {
        reason_step(r, "%s=%g > activate_above %g -> 1", name, in->metric, p->o.activate_above);
        return 1;
    }
    return v;
}

/* Zero only after idle_after of zero demand; until then 1 (the other limits bring it there). */
static int64_t apply_idle(sb_policy *p, int64_t v, int64_t ref, uint64_t now, sb_reason *r)
{
    if (v != 0) {
        p->zero_streak = 0;
        return v;
    }
    if (!p->zero_streak) {
        p->zero_streak = 1;
        p->zero_since_ns = now;
    }
    uint64_t idle = now - p->zero_since_ns;
    if (ref > 0 && idle < p->idle_after_ns) {
        char a[32], b[32];
        reason_step(r, "idle_after %s: no demand for %s -> 1",
                    fmt_secs(a, sizeof a, p->idle_after_ns), fmt_secs(b, sizeof b, idle));
        return 1;
    }
    return v;
}

/* The HPA's rule: the decided count moves toward the recommendation, but down no lower than the
 * highest recommendation within stabilize_down, and up no higher than the lowest within
 * stabilize_up. */
static int64_t apply_stabilisation(sb_policy *p, int64_t rec, int64_t ref, uint64_t now,
                                   sb_reason *r)
{
    int64_t high = rec, low = rec;
    if (p->stabilize_down_ns > 0) {
        window_expire(&p->rec_high, now, p->stabilize_down_ns);
        policy_window_push(&p->rec_high, now, rec);
        window_front(&p->rec_high, &high);
        if (high < rec)
            high = rec;
    }
    if (p->stabilize_up_ns > 0) {
        window_expire(&p->rec_low, now, p->stabilize_up_ns);
        policy_window_push(&p->rec_low, now, rec);
        window_front(&p->rec_low, &low);
        if (low > rec)
            low = rec;
    }
    int64_t v = ref;
    if (v < low)
        v = low;
    if (v > high)
        v = high;
    char a[32];
    if (v != rec && rec < ref)
        reason_step(r, "stabilize_down %s: highest %lld -> %lld",
                    fmt_secs(a, sizeof a, p->stabilize_down_ns), (long long)high, (long long)v);
    else if (v != rec)
        reason_step(r, "stabilize_up %s: lowest %lld -> %lld",
                    fmt_secs(a, sizeof a, p->stabilize_up_ns), (long long)low, (long long)v);
    return v;
}

static void step_text(char *buf, size_t len, double amount, int percent)
{
    if (percent)
        snprintf(buf, len, "%g%%", amount);
    else
        snprintf(buf, len, "%.0f", amount);
}

/* Per period, up to `step` above the lowest count decided within it (HPA-like, on a sliding
 * window), and down to `step` below the highest; never past the decided count the other way. */
static int64_t apply_rate(sb_policy *p, int64_t v, int64_t ref, uint64_t now, sb_reason *r)
{
    char a[32], b[32];
    if (v > ref && p->o.max_step_up >= 0) {
        int64_t base = ref, earlier;
        window_expire(&p->dec_low, now, p->period_ns);
        if (window_front(&p->dec_low, &earlier) && earlier < base)
            base = earlier;
        double limit;
        if (p->o.step_up_percent) {
            limit = (double)sb_policy_ceil((double)base * (100.0 + p->o.max_step_up) / 100.0);
            if (p->o.max_step_up > 0 && limit < (double)base + 1)
                limit = (double)base + 1; /* a percent of 0 is 0: still let it leave zero */
        } else {
            limit = (double)base + p->o.max_step_up;
        }
        if (limit < (double)ref)
            limit = (double)ref;
        if ((double)v > limit) {
            v = (int64_t)limit;
            step_text(a, sizeof a, p->o.max_step_up, p->o.step_up_percent);
            reason_step(r, "max_step_up %s per %s from %lld -> %lld", a,
                        fmt_secs(b, sizeof b, p->period_ns), (long long)base, (long long)v);
        }
    } else if (v < ref && p->o.max_step_down >= 0) {
        int64_t base = ref, earlier;
        window_expire(&p->dec_high, now, p->period_ns);
        if (window_front(&p->dec_high, &earlier) && earlier > base)
            base = earlier;
        double limit;
        if (p->o.step_down_percent)
            limit = floor((double)base * (100.0 - p->o.max_step_down) / 100.0 + ROUND_EPSILON);
        else
            limit = (double)base - p->o.max_step_down;
        if (limit < 0)
            limit = 0;
        if (limit > (double)ref)
            limit = (double)ref;
        if ((double)v < limit) {
            v = (int64_t)limit;
            step_text(a, sizeof a, p->o.max_step_down, p->o.step_down_percent);
            reason_step(r, "max_step_down %s per %s from %lld -> %lld", a,
                        fmt_secs(b, sizeof b, p->period_ns), (long long)base, (long long)v);
        }
    }
    return v;
}

/* After a change of the decided count, no move up for cooldown_up and none down for
 * cooldown_down. */
static int64_t apply_cooldown(const sb_policy *p, int64_t v, int64_t ref, uint64_t now,
                              sb_reason *r)
{
    if (!p->has_change || v == ref)
        return v;
    uint64_t age = now - p->change_ns;
    uint64_t span = v > ref ? p->cooldown_up_ns : p->cooldown_down_ns;
    if (age >= span)
        return v;
    char a[32], b[32];
    reason_step(r, "%s %s: changed %s ago -> %lld", v > ref ? "cooldown_up" : "cooldown_down",
                fmt_secs(a, sizeof a, span), fmt_secs(b, sizeof b, age), (long long)ref);
    return ref;
}

static int64_t apply_bounds(const sb_policy *p, int64_t v, sb_reason *r)
{
    if (v < p->o.min) {
        reason_step(r, "min %lld -> %lld", (long long)p->o.min, (long long)p->o.min);
        v = p->o.min;
    }
    if (p->o.max >= 0 && v > p->o.max) {
        reason_step(r, "max %lld -> %lld", (long long)p->o.max, (long long)p->o.max);
        v = p->o.max;
    }
    /* The scaler's own bounds, once it has reported them: a decision it cannot carry out would
     * only hold windows and rate limits at a count that never runs. */
    if (p->scaler_min >= 0 && v < p->scaler_min) {
        reason_step(r, "scaler min %lld -> %lld", (long long)p->scaler_min,
                    (long long)p->scaler_min);
        v = p->scaler_min;
    }
    if (p->scaler_max >= 0 && v > p->scaler_max) {
        reason_step(r, "scaler max %lld -> %lld", (long long)p->scaler_max,
                    (long long)p->scaler_max);
        v = p->scaler_max;
    }
    return v;
}

/* Remembers the decision: its time for the cooldowns, and the count it replaces for the rate
 * limits (that count, before the first decision the current one, was in effect until now). */
static void record_decision(sb_policy *p, int64_t v, int64_t ref, uint64_t now)
{
    if (v != ref) {
        p->has_change = 1;
        p->change_ns = now;
        if (p->o.max_step_up >= 0) {
            window_expire(&p->dec_low, now, p->period_ns);
            policy_window_push(&p->dec_low, now, ref);
        }
        if (p->o.max_step_down >= 0) {
            window_expire(&p->dec_high, now, p->period_ns);
            policy_window_push(&p->dec_high, now, ref);
        }
    }
    p->has_decided = 1;
    p->decided = v;
}

/* The decision's time: an event from a slower ring cannot be earlier than what we saw. */
static uint64_t advance_clock(sb_policy *p, uint64_t t)
{
    if (p->has_now && t < p->now_ns)
        t = p->now_ns;
    p->now_ns = t;
    p->has_now = 1;
    return t;
}

int64_t sb_policy_decide(sb_policy *p, const sb_policy_input *in, sb_reason *r)
{
    uint64_t now = advance_clock(p, in->now_ns);

    int64_t ref = sb_policy_decided(p);
    int64_t v;
    if (in->hold || isnan(in->raw)) {
        v = ref;
        reason_step(r, "%shold %lld", in->hold ? "" : "not a number: ", (long long)v);
    } else {
        v = sb_policy_ceil(in->raw);
    }
    v = apply_activation(p, in, v, r);
    if (p->idle_after_ns > 0)
        v = apply_idle(p, v, ref, now, r);
    v = apply_stabilisation(p, v, ref, now, r);
    v = apply_rate(p, v, ref, now, r);
    v = apply_cooldown(p, v, ref, now, r);
    v = apply_bounds(p, v, r);
    record_decision(p, v, ref, now);
    return v;
}

int sb_policy_publish(sb_policy *p, const sb_host *host, sb_instance *inst, uint64_t now_ns,
                      int64_t desired, const sb_reason *r)
{
    const char *text = r ? r->text : "";
    sb_label label = {"reason", text};
    sb_publish pub;
    memset(&pub, 0, sizeof pub);
    pub.size = sizeof pub;
    pub.topic = SB_TOPIC_DESIRED;
    pub.value = (double)desired;
    pub.labels = &label;
    pub.nlabels = 1;
    pub.time_ns = now_ns;
    int rc = host->publish(inst, &pub);
    int changed =
        !p->has_published || desired != p->published || strcmp(text, p->published_reason) != 0;
    host->log(inst, changed ? SB_LOG_INFO : SB_LOG_DEBUG, "desired %lld: %s", (long long)desired,
              text);
    if (rc != 0) {
        host->log(inst, SB_LOG_WARN, "desired %lld not published (error %d)", (long long)desired,
                  rc);
        return rc;
    }
    p->has_published = 1;
    p->published = desired;
    snprintf(p->published_reason, sizeof p->published_reason, "%s", text);
    return rc;
}

/* ---- failed inputs ------------------------------------------------------------------------ */

/* The most failures counted: a trigger's count larger than this (or not a number) is held here. */
#define FAILURES_MAX 1000000000000ull

static const char *input_name(const sb_event *ev)
{
    return ev->source_id && *ev->source_id ? ev->source_id : "?";
}

static failing_input *input_find(sb_policy *p, const char *id)
{
    for (size_t i = 0; i < p->ninputs; i++)
        if (strcmp(p->inputs[i].id, id) == 0)
            return &p->inputs[i];
    return NULL;
}

static void input_remove(sb_policy *p, failing_input *in)
{
    if (in->failed_at)
        p->nfailed--;
    free(in->id);
    *in = p->inputs[--p->ninputs];
}

/* A new entry for `id`; NULL when out of memory, or when the table is full of failed inputs. A
 * full table first lets go of an input that has not reached fail_after (it may count from 1
 * again: only ever later, never sooner). */
static failing_input *input_add(sb_policy *p, const char *id)
{
    if (p->ninputs == SB_POLICY_INPUTS_MAX) {
        size_t i = 0;
        while (i < p->ninputs && p->inputs[i].failed_at)
            i++;
        if (i == p->ninputs)
            return NULL;
        input_remove(p, &p->inputs[i]);
    }
    if (p->ninputs == p->inputs_cap) {
        size_t ncap = p->inputs_cap ? p->inputs_cap * 2 : 4;
        failing_input *n = realloc(p->inputs, ncap * sizeof *n);
        if (!n)
            return NULL;
        p->inputs = n;
        p->inputs_cap = ncap;
    }
    char *copy = strdup(id);
    if (!copy)
        return NULL;
    failing_input *in = &p->inputs[p->ninputs++];
    *in = (failing_input){.id = copy};
    return in;
}

/* The fallback, decided and published: held to the bounds, past the windows, rate limits and
 * cooldowns (KEDA applies its fallback directly), and remembered as a decision like any other. */
static void publish_fallback(sb_policy *p, const sb_host *host, sb_instance *inst, uint64_t t)
{
    const failing_input *first = NULL;
    for (size_t i = 0; i < p->ninputs; i++)
        if (p->inputs[i].failed_at && (!first || p->inputs[i].order < first->order))
            first = &p->inputs[i];
    if (!first)
        return;
    uint64_t now = advance_clock(p, t);
    sb_reason r;
    sb_reason_init(&r);
    sb_reason_addf(&r, "%s: %llu failure%s -> fallback %lld", first->id,
                   (unsigned long long)first->failed_at, first->failed_at == 1 ? "" : "s",
                   (long long)p->o.fallback);
    int64_t ref = sb_policy_decided(p);
    int64_t v = apply_bounds(p, p->o.fallback, &r);
    record_decision(p, v, ref, now);
    sb_policy_publish(p, host, inst, now, v, &r);
}

/* One more failure of the input that sent ev. */
static void input_failed(sb_policy *p, const sb_host *host, sb_instance *inst, const sb_event *ev)
{
    const char *id = input_name(ev);
    failing_input *in = input_find(p, id);
    if (!in && (in = input_add(p, id)) == NULL) {
        if (!p->warned_full)
            host->log(inst, SB_LOG_WARN,
                      "%s: failure not counted: %d inputs are failing already (or no memory)", id,
                      SB_POLICY_INPUTS_MAX);
        p->warned_full = 1;
        return;
    }
    /* The trigger's own count is the truth when it is larger (this policy may be newer than the
     * failures, after a reload); counting the events keeps a count that went back honest. */
    uint64_t n = in->failures + 1;
    if (isfinite(ev->value) && ev->value > (double)n)
        n = ev->value >= (double)FAILURES_MAX ? FAILURES_MAX : (uint64_t)ev->value;
    if (n > FAILURES_MAX)
        n = FAILURES_MAX;
    in->failures = n;
    if (in->failed_at || n < (uint64_t)p->o.fail_after) {
        host->log(inst, SB_LOG_DEBUG, "%s: %llu failure%s", id, (unsigned long long)n,
                  n == 1 ? "" : "s");
        return;
    }
    in->failed_at = n;
    in->order = p->next_order++;
    p->nfailed++;
    if (p->o.has_fallback)
        return; /* the caller publishes the fallback */
    if (p->has_decided)
        host->log(inst, SB_LOG_INFO, "%s: %llu failure%s -> hold %lld", id, (unsigned long long)n,
                  n == 1 ? "" : "s", (long long)p->decided);
    else
        host->log(inst, SB_LOG_INFO, "%s: %llu failure%s -> hold (nothing decided yet)", id,
                  (unsigned long long)n, n == 1 ? "" : "s");
}

/* A value from the input that sent ev: its failures are over. */
static void input_recovered(sb_policy *p, const sb_host *host, sb_instance *inst,
                            const sb_event *ev)
{
    failing_input *in = input_find(p, input_name(ev));
    if (!in)
        return;
    host->log(inst, in->failed_at ? SB_LOG_INFO : SB_LOG_DEBUG,
              "%s: reading again after %llu failure%s", in->id, (unsigned long long)in->failures,
              in->failures == 1 ? "" : "s");
    input_remove(p, in);
}

int sb_policy_failures_on_event(sb_policy *p, const sb_host *host, sb_instance *inst,
                                const sb_event *ev)
{
    if (!ev->topic)
        return 0;
    int error = strcmp(ev->topic, SB_TOPIC_ERROR) == 0;
    if (error)
        input_failed(p, host, inst, ev);
    else if (strcmp(ev->topic, SB_TOPIC_READING) == 0 || strcmp(ev->topic, SB_TOPIC_DESIRED) == 0)
        input_recovered(p, host, inst, ev);
    else
        return 0;
    if (p->nfailed > 0 && p->o.has_fallback) {
        publish_fallback(p, host, inst, ev->mono_ns);
        return 1;
    }
    return error;
}

uint64_t sb_policy_input_failures(const sb_policy *p, const char *source_id)
{
    for (size_t i = 0; i < p->ninputs; i++)
        if (strcmp(p->inputs[i].id, source_id) == 0)
            return p->inputs[i].failures;
    return 0;
}

size_t sb_policy_failed_inputs(const sb_policy *p)
{
    return p->nfailed;
}

/* ---- connector glue ----------------------------------------------------------------------- */


int sb_policy_connector_create(const sb_policy_connector_ops *ops, sb_instance *inst,
                               const sb_host *host, const sb_value *values, void **state,
                               char *err, size_t errlen)
{
    policy_connector *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int rc = ops->create(values, &c->conn, err, errlen);
    if (rc != 0) {
        free(c);
        return rc;
    }
    c->ops = ops;
    c->inst = inst;
    c->host = host;
    *state = c;
    return 0;
}

void sb_policy_connector_on_event(void *state, const sb_event *ev)
{
    policy_connector *c = state;
    sb_policy *p = c->ops->policy ? c->ops->policy(c->conn) : NULL;
    if (p && sb_policy_failures_on_event(p, c->host, c->inst, ev))
        return;
    c->ops->on_event(c->conn, c->host, c->inst, ev);
}

void sb_policy_connector_destroy(void *state)
{
    policy_connector *c = state;
    if (!c)
        return;
    c->ops->destroy(c->conn);
    free(c);
}
