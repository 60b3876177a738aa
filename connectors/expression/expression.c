/*
 * expression.c - the `expression` connector: a scaling policy whose formula is an arithmetic
 * expression over the event's value, its labels (read as numbers) and its payload's fields,
 * e.g. `ceil((scheduled + running) / 2)`.
 *
 * The expression is compiled once in create() (expr.c); a syntax error is reported as
 * "expression@OFFSET: message", which the daemon places at that character of the option's value.
 * Each reading (or desired count from a connector in `from`) is evaluated; the result is the raw
 * recommendation that the shared policy library (scalebus/policy.h) limits, explains and
 * publishes. The reason starts with the expression and the names it read, e.g.
 * "ceil((scheduled + running) / 2) with scheduled=3 running=4 -> 4". An event the expression
 * cannot be evaluated on (an unknown name, division by zero) decides nothing and logs a warning,
 * once per distinct message. Instance lists from the scalers in `to` feed the policy's current
 * count. Error events from an input go to the policy library's failure handling (fail_after,
 * fallback), as they do for the connectors on its glue.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "expr.h"
#include "scalebus/plugin.h"
#include "scalebus/policy.h"

#define SHOWN_MAX 120 /* bytes of the expression quoted in a reason */
#define WARNED_MAX 16 /* distinct evaluation errors remembered (each logged once) */

typedef struct expr_state {
    sb_instance *inst;
    const sb_host *host;
    sb_expr *expr;
    sb_policy *policy;
    char *shown;         /* the expression on one line, shortened, as reasons quote it */
    double *vars;        /* per-name values of the last evaluation (sb_expr_var_count) */
    unsigned char *used; /* which names the last evaluation read */
    uint64_t warned[WARNED_MAX];
    size_t nwarned;
    int warned_full; /* the "not logging more" line has been written */
} expr_state;

static const sb_option_spec expression_options[] = {
    {"expression", SB_OPT_STRING, NULL, 1,
     "the formula, e.g. \"ceil((scheduled + running) / 2)\": value, labels, payload fields, "
     "+ - * / %, min max ceil floor round abs, comparisons, && || !, ?:"},
    SB_POLICY_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

/* The expression on one line (runs of white space become one space), at most SHOWN_MAX bytes. */
static char *shown_text(const char *src)
{
    size_t n = strlen(src), o = 0, i;
    char *out = malloc(SHOWN_MAX + 4);
    if (!out)
        return NULL;
    int space = 0;
    for (i = 0; i < n; i++) {
        char c = src[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            space = o > 0;
            continue;
        }
        if (o + (size_t)space >= SHOWN_MAX)
            break;
        if (space)
            out[o++] = ' ';
        space = 0;
        out[o++] = c;
    }
    memcpy(out + o, i < n ? "..." : "", i < n ? 4 : 1);
    return out;
}

static void expression_destroy(void *state)
{
    expr_state *s = state;
    if (!s)
        return;
    sb_policy_free(s->policy);
    sb_expr_free(s->expr);
    free(s->shown);
    free(s->vars);
    free(s->used);
    free(s);
}

static int expression_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                             void **state, char *err, size_t errlen)
{
    const sb_value *text = &values[0];
    sb_policy_options o;
    sb_expr_error pe;
    int rc;

    if (!text->is_set || !text->str) {
        snprintf(err, errlen, "expression: required, e.g. \"ceil(value / 10)\"");
        return -EINVAL;
    }
    expr_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    rc = sb_expr_parse(text->str, strlen(text->str), &s->expr, &pe);
    if (rc != 0) {
        snprintf(err, errlen, "expression@%zu: %s", pe.offset, pe.message);
        expression_destroy(s);
        return rc;
    }
    rc = sb_policy_options_read(values + 1, &o, err, errlen);
    if (rc != 0) {
        expression_destroy(s);
        return rc;
    }
    size_t nvars = sb_expr_var_count(s->expr);
    s->policy = sb_policy_new(&o);
    s->shown = shown_text(text->str);
    s->vars = calloc(nvars ? nvars : 1, sizeof *s->vars);
    s->used = calloc(nvars ? nvars : 1, 1);
    if (!s->policy || !s->shown || !s->vars || !s->used) {
        snprintf(err, errlen, "out of memory");
        expression_destroy(s);
        return -ENOMEM;
    }
    *state = s;
    return 0;
}

/* FNV-1a of an error, to log each distinct one once. */
static uint64_t error_hash(const sb_expr_error *e)
{
    uint64_t h = 1469598103934665603ULL ^ (uint64_t)e->offset;
    for (const char *c = e->message; *c; c++)
        h = (h ^ (unsigned char)*c) * 1099511628211ULL;
    return h;
}

static void warn_once(expr_state *s, const sb_event *ev, const sb_expr_error *e)
{
    uint64_t h = error_hash(e);
    for (size_t i = 0; i < s->nwarned; i++)
        if (s->warned[i] == h)
            return;
    if (s->nwarned == WARNED_MAX) {
        if (!s->warned_full)
            s->host->log(s->inst, SB_LOG_WARN,
                         "more distinct evaluation errors: not logging them any more");
        s->warned_full = 1;
        return;
    }
    s->warned[s->nwarned++] = h;
    s->host->log(s->inst, SB_LOG_WARN,
                 "cannot evaluate the expression on an event from %s: at %zu: %s "
                 "(nothing decided; this error is logged once)",
                 ev->source_id ? ev->source_id : "?", e->offset, e->message);
}

static void expression_on_event(void *state, const sb_event *ev)
{
    expr_state *s = state;
    if (!ev->topic)
        return;
    if (strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        sb_policy_observe(s->policy, ev);
        return;
    }
    /* Failed inputs (fail_after, fallback), as the policy glue does for target and threshold. */
    if (sb_policy_failures_on_event(s->policy, s->host, s->inst, ev))
        return;
    if (strcmp(ev->topic, SB_TOPIC_READING) != 0 && strcmp(ev->topic, SB_TOPIC_DESIRED) != 0)
        return;

    sb_expr_env env = {
        .value = ev->value, .labels = ev->labels, .nlabels = ev->nlabels, .payload = ev->payload};
    sb_expr_error e;
    double raw;
    if (sb_expr_eval(s->expr, &env, &raw, s->vars, s->used, &e) != 0) {
        warn_once(s, ev, &e);
        return;
    }

    sb_reason r;
    sb_reason_init(&r);
    sb_reason_addf(&r, "%s", s->shown);
    const char *sep = " with ";
    for (size_t i = 0; i < sb_expr_var_count(s->expr); i++) {
        if (!s->used[i])
            continue;
        sb_reason_addf(&r, "%s%s=%.10g", sep, sb_expr_var_name(s->expr, i), s->vars[i]);
        sep = " ";
    }
    /* "-> 4", or "= 3.5 -> 4" when the result is not already the count the policy starts from */
    char shown_raw[32], count[32];
    snprintf(shown_raw, sizeof shown_raw, "%.10g", raw);
    snprintf(count, sizeof count, "%lld", (long long)sb_policy_ceil(raw));
    if (strcmp(shown_raw, count) != 0)
        sb_reason_addf(&r, " = %s", shown_raw);
    sb_reason_addf(&r, " -> %s", count);

    sb_policy_input in = {
        .now_ns = ev->mono_ns,
        .raw = raw,
        .has_metric = isfinite(ev->value),
        .metric = ev->value,
        .metric_name = sb_policy_metric_name(ev),
    };
    int64_t desired = sb_policy_decide(s->policy, &in, &r);
    int rc = sb_policy_publish(s->policy, s->host, s->inst, ev->mono_ns, desired, &r);
    if (rc != 0)
        s->host->log(s->inst, SB_LOG_WARN, "could not publish %lld (error %d)", (long long)desired,
                     rc);
}

SB_POLICY_STATE(expression, expr_state, policy)

static const sb_plugin_descriptor expression_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "expression",
    .kind = SB_KIND_CONNECTOR,
    .version = "1.0.0",
    .description = "a scaling policy given as a safe arithmetic expression over the reading's "
                   "value, labels and payload fields",
    .options = expression_options,
    .create = expression_create,
    .destroy = expression_destroy,
    .on_event = expression_on_event,
    .snapshot = expression_snapshot, /* windows, cooldowns, last decision across a restart */
    .restore = expression_restore,
    .accepts = SB_ACCEPTS_ERRORS, /* the policy library holds or falls back on failures */
};

SB_PLUGIN_EXPORT(expression_descriptor)
