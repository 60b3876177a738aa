/*
 * fuzz_expression.c - libFuzzer target for the expression connector's language (expr.c): parses
 * arbitrary bytes and evaluates whatever compiles against a fixed event (labels, including a
 * non-numeric one, and a nested payload with every JSON type), with no labels or payload, and
 * with a NaN value. Besides the sanitizers' checks it traps when a documented promise breaks:
 * an error without a message or with an offset past the input, an evaluation that succeeds
 * with a non-finite result, or two evaluations of one input that disagree.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON; run: tests/fuzz/run.sh BUILD_DIR SECONDS.
 */
#define _POSIX_C_SOURCE 200809L /* strnlen */

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "expr.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cJSON *payload; /* built once; freed at exit by the process ending */

static const sb_label labels[] = {
    {"scheduled", "3"}, {"running", "4"}, {"text", "abc"}, {"zero", "0"},
    {"neg", "-2.5"},    {"app.x", "7"},   {"value", "99"}, {"huge", "1e308"},
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    payload = cJSON_Parse("{\"queue\":{\"depth\":12,\"inner\":{\"x\":0.5}},\"n\":5,\"flag\":true,"
                          "\"off\":false,\"s\":\"x\",\"nil\":null,\"arr\":[1],\"big\":1e308,"
                          "\"tiny\":5e-324,\"scheduled\":100}");
    if (!payload)
        __builtin_trap();
    return 0;
}

static void check_error(const sb_expr_error *err, size_t size)
{
    if (err->message[0] == '\0' ||
        strnlen(err->message, sizeof err->message) == sizeof err->message)
        __builtin_trap();
    if (err->offset > size)
        __builtin_trap();
}

static void eval_twice(const sb_expr *e, const sb_expr_env *env, size_t size)
{
    double vars[SB_EXPR_MAX_CODE], vars2[SB_EXPR_MAX_CODE], r1 = 0, r2 = 0;
    unsigned char used[SB_EXPR_MAX_CODE], used2[SB_EXPR_MAX_CODE];
    sb_expr_error err, err2;
    size_t n = sb_expr_var_count(e);
    int rc1 = sb_expr_eval(e, env, &r1, vars, used, &err);
    int rc2 = sb_expr_eval(e, env, &r2, vars2, used2, &err2);
    if (rc1 != rc2)
        __builtin_trap();
    if (rc1 == 0) {
        if (!isfinite(r1) || memcmp(&r1, &r2, sizeof r1) != 0)
            __builtin_trap();
        for (size_t i = 0; i < n; i++)
            if (used[i] > 1 || used[i] != used2[i] || (used[i] && !isfinite(vars[i])))
                __builtin_trap();
    } else {
        if (rc1 != -EINVAL || err.offset != err2.offset || strcmp(err.message, err2.message) != 0)
            __builtin_trap();
        check_error(&err, size);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sb_expr *e = NULL;
    sb_expr_error err;
    int rc = sb_expr_parse((const char *)data, size, &e, &err);
    if (rc != 0) {
        if (e || (rc != -EINVAL && rc != -ENOMEM))
            __builtin_trap();
        check_error(&err, size);
        return 0;
    }
    size_t n = sb_expr_var_count(e);
    if (n > SB_EXPR_MAX_CODE || sb_expr_code_size(e) == 0 ||
        sb_expr_code_size(e) > SB_EXPR_MAX_CODE)
        __builtin_trap();
    for (size_t i = 0; i < n; i++)
        if (!sb_expr_var_name(e, i) || !sb_expr_var_name(e, i)[0])
            __builtin_trap();

    sb_expr_env full = {.value = 10,
                        .labels = labels,
                        .nlabels = sizeof labels / sizeof labels[0],
                        .payload = payload};
    sb_expr_env empty = {.value = -1.5};
    sb_expr_env nan_value = {.value = NAN, .labels = labels, .nlabels = 2};
    eval_twice(e, &full, size);
    eval_twice(e, &empty, size);
    eval_twice(e, &nan_value, size);
    /* Results without the optional outputs match those with them. */
    double r = 0, r_full = 0;
    double vars[SB_EXPR_MAX_CODE];
    int rc_plain = sb_expr_eval(e, &full, &r, NULL, NULL, &err);
    int rc_full = sb_expr_eval(e, &full, &r_full, vars, NULL, &err);
    if (rc_plain != rc_full || (rc_plain == 0 && memcmp(&r, &r_full, sizeof r) != 0))
        __builtin_trap();
    sb_expr_free(e);
    return 0;
}
