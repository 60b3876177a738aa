/*
 * test_expression.c - tests for the expression connector: the language (expr.c) from tables of
 * expressions and their values (precedence, associativity, functions, ?:, comparisons, && || !,
 * numbers, labels, payload fields), every parse and evaluation error with its offset, the limits
 * (length, nesting, stack), the names an evaluation reads, and - when build/plugins/expression.so
 * exists - the plugin itself against a fake host (its error form "expression@N: ...", the reason
 * of a decision, warnings logged once per distinct error, instance lists).
 *
 * Expected values are worked out by hand from C's rules (fmod for %, round half away from zero).
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <scalebus/plugin.h>

#include "expr.h"
#include "fake_host.h"

/* ---- helpers --------------------------------------------------------------------------- */

/* The standard event: value 10, these labels, this payload. */
static const sb_label std_labels[] = {
    {"scheduled", "3"}, {"running", "4"}, {"neg", "-2.5"},    {"text", "abc"}, {"empty", ""},
    {"app.x", "7"},     {"value", "99"},  {"plus", "+1.5e1"}, {"inf", "inf"},  {"nan", "nan"},
    {"hex", "0x10"},    {"spaced", " 1"}, {"trail", "1 "},    {"dot", "."},    {"zero", "0"},
};

static const char *std_payload_json =
    "{\"queue\":{\"depth\":12,\"inner\":{\"x\":0.5}},\"n\":5,\"flag\":true,\"off\":false,"
    "\"s\":\"x\",\"nil\":null,\"arr\":[1],\"scheduled\":100,\"big\":1e308,\"only\":42}";

static cJSON *std_payload;

static void setup_payload(void)
{
    std_payload = cJSON_Parse(std_payload_json);
    ck_assert_ptr_nonnull(std_payload);
}

static void teardown_payload(void)
{
    cJSON_Delete(std_payload);
    std_payload = NULL;
}

static sb_expr_env std_env(void)
{
    sb_expr_env env = {.value = 10,
                       .labels = std_labels,
                       .nlabels = sizeof std_labels / sizeof std_labels[0],
                       .payload = std_payload};
    return env;
}

static sb_expr *parse_ok(const char *src)
{
    sb_expr *e = NULL;
    sb_expr_error err;
    int rc = sb_expr_parse(src, strlen(src), &e, &err);
    ck_assert_msg(rc == 0, "parse '%.80s': at %zu: %s", src, err.offset, err.message);
    ck_assert_ptr_nonnull(e);
    return e;
}

/* "at N: message" of a parse that must fail. */
static void parse_error(const char *src, size_t len, char *out, size_t outlen)
{
    sb_expr *e = (sb_expr *)&e; /* must be reset to NULL */
    sb_expr_error err;
    int rc = sb_expr_parse(src, len, &e, &err);
    ck_assert_msg(rc == -EINVAL, "parse '%.80s' returned %d, expected -EINVAL", src, rc);
    ck_assert_ptr_null(e);
    snprintf(out, outlen, "at %zu: %s", err.offset, err.message);
}

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    ck_assert_ptr_nonnull(s);
    memcpy(s, head, hl);
    for (size_t i = 0; i < n; i++)
        memcpy(s + hl + i * ul, unit, ul);
    memcpy(s + hl + n * ul, tail, tl + 1);
    return s;
}

/* ---- values ---------------------------------------------------------------------------- */

typedef struct value_case {
    const char *src;
    double expect;
} value_case;

static const value_case value_cases[] = {
    /* precedence */
    {"1 + 2 * 3", 7},
    {"(1 + 2) * 3", 9},
    {"2 * 3 % 4", 2},
    {"2 + 3 % 2", 3},
    {"-2 * 3", -6},
    {"-(2 + 3)", -5},
    {"- -2", 2},
    {"--2", 2},
    {"+5", 5},
    {"-2 + 3", 1},
    {"1 + 2 < 4", 1},
    {"1 < 2 == 1", 1},
    {"2 == 1 + 1", 1},
    {"1 || 0 && 0", 1},
    {"(1 || 0) && 0", 0},
    {"0 && 1 || 1", 1},
    {"!0 + 1", 2},
    {"!(0 + 1)", 0},
    {"1 + 1 ? 5 : 6", 5},
    {"0 || 0 ? 5 : 6", 6},
    {"1 < 2 ? 3 : 4", 3},
    /* associativity */
    {"10 - 4 - 3", 3},
    {"100 / 10 / 5", 2},
    {"2 * 3 / 4", 1.5},
    {"17 % 7 % 2", 1},
    {"0 ? 1 : 0 ? 2 : 3", 3},
    {"0 ? 1 : 1 ? 2 : 3", 2},
    {"1 ? 0 ? 4 : 5 : 6", 5},
    /* modulo follows C's fmod: the sign of the dividend */
    {"7 % 3", 1},
    {"-7 % 3", -1},
    {"7 % -3", 1},
    {"7.5 % 2", 1.5},
    /* functions */
    {"min(3, 1, 2)", 1},
    {"max(3, 1, 2)", 3},
    {"min(4)", 4},
    {"max(-1, -5)", -1},
    {"max(min(1, 2), 0)", 1},
    {"ceil(1.2)", 2},
    {"ceil(-1.2)", -1},
    {"ceil(-0.5)", 0},
    {"ceil(3)", 3},
    {"floor(1.8)", 1},
    {"floor(-1.2)", -2},
    {"round(2.5)", 3},
    {"round(-2.5)", -3},
    {"round(2.4)", 2},
    {"abs(-3)", 3},
    {"abs(3)", 3},
    {"ceil(7 / 2) + floor(7 / 2)", 7},
    /* comparisons and logic */
    {"1 < 2", 1},
    {"2 < 1", 0},
    {"2 <= 2", 1},
    {"3 <= 2", 0},
    {"3 > 4", 0},
    {"5 > 4", 1},
    {"4 >= 5", 0},
    {"5 >= 5", 1},
    {"1 == 1", 1},
    {"1 == 2", 0},
    {"1 != 1", 0},
    {"1 != 2", 1},
    {"2 && 3", 1},
    {"1 && 0", 0},
    {"0 || 0", 0},
    {"0 || 5", 1},
    {"!0", 1},
    {"!7", 0},
    {"!!7", 1},
    {"0 && nosuchname", 0},
    {"1 || nosuchname", 1},
    {"1 ? 2 : nosuchname", 2},
    {"0 ? 1 / 0 : 2", 2},
    /* numbers */
    {"42", 42},
    {".5", 0.5},
    {"5.", 5},
    {"1e3", 1000},
    {"1.5E-1", 0.15},
    {"2e+2", 200},
    {"0.1 + 0.2 > 0.3", 1},
    {"1e308", 1e308},
    {"1e-400", 0},
    /* names */
    {"value", 10},
    {"value * 2 + 1", 21},
    {"scheduled", 3},
    {"ceil((scheduled + running) / 2)", 4},
    {"(scheduled + running) / 2", 3.5},
    {"neg", -2.5},
    {"plus", 15},
    {"zero", 0},
    {"app.x", 7},
    {"queue.depth", 12},
    {"queue.inner.x", 0.5},
    {"n * queue.depth", 60},
    {"only", 42},
    {"flag", 1},
    {"off", 0},
    {"flag ? n : 0", 5},
    {"value > 5 ? value * 2 : 1", 20},
    {"max(scheduled, running, queue.depth / 4)", 4},
    /* white space of every kind, as a YAML block scalar gives it */
    {"\tceil(\n value / 3\r\n)  ", 4},
    {"ceil((scheduled+running)/2)", 4},
};

START_TEST(test_values)
{
    const value_case *c = &value_cases[_i];
    sb_expr *e = parse_ok(c->src);
    sb_expr_env env = std_env();
    sb_expr_error err;
    double r = NAN;
    int rc = sb_expr_eval(e, &env, &r, NULL, NULL, &err);
    ck_assert_msg(rc == 0, "'%s': at %zu: %s", c->src, err.offset, err.message);
    ck_assert_msg(r == c->expect, "'%s' = %.17g, expected %.17g", c->src, r, c->expect);
    ck_assert_msg(!signbit(r) || r != 0, "'%s' gave -0", c->src);
    sb_expr_free(e);
}
END_TEST

/* ---- parse errors ---------------------------------------------------------------------- */

typedef struct error_case {
    const char *src;
    const char *expect; /* "at N: message" */
} error_case;

static const error_case parse_cases[] = {
    {"", "at 0: empty expression"},
    {"   ", "at 0: empty expression"},
    {"1 + (2 3", "at 7: expected ')' to close '(' at 4"},
    {"ceil((a + b", "at 11: expected ')' to close '(' at 5"},
    {"(1", "at 2: expected ')' to close '(' at 0"},
    {"min(1 2)", "at 6: expected ')' to close '(' at 3"},
    {"min(1, 2", "at 8: expected ')' to close '(' at 3"},
    {"1 +", "at 3: expected a number, a name or '(', got the end of the expression"},
    {")", "at 0: expected a number, a name or '(', got ')'"},
    {"()", "at 1: expected a number, a name or '(', got ')'"},
    {"1 * * 2", "at 4: expected a number, a name or '(', got '*'"},
    {"min(1, )", "at 7: expected a number, a name or '(', got ')'"},
    {"1 ? : 2", "at 4: expected a number, a name or '(', got ':'"},
    {"1 2", "at 2: expected an operator or the end of the expression, got '2'"},
    {"a b", "at 2: expected an operator or the end of the expression, got 'b'"},
    {"1 : 2", "at 2: expected an operator or the end of the expression, got ':'"},
    {"(1))", "at 3: unmatched ')'"},
    {"1 ? 2", "at 5: expected ':' for the '?' at 2, got the end of the expression"},
    {"1 ? 2 3", "at 6: expected ':' for the '?' at 2, got '3'"},
    {"1 = 2", "at 2: '=' is not an operator; use '==' to compare"},
    {"a & b", "at 2: '&' is not an operator; use '&&'"},
    {"a | b", "at 2: '|' is not an operator; use '||'"},
    {"a # b", "at 2: unexpected character '#'"},
    {"2 ^ 3", "at 2: unexpected character '^'"},
    {"[1]", "at 0: unexpected character '['"},
    {".", "at 0: unexpected character '.'"},
    {"'a'", "at 0: strings are not supported; names are written bare: label_name"},
    {"\"a\"", "at 0: strings are not supported; names are written bare: label_name"},
    {"2 \xc3\x97 3", "at 2: unexpected character '\xc3\x97'"},
    {"\x01", "at 0: unexpected byte 0x01"},
    {"1 + \xff", "at 4: unexpected byte 0xff"},
    {"\xc3", "at 0: unexpected byte 0xc3"},
    {"1e", "at 0: malformed number '1e'"},
    {"1e+", "at 0: malformed number '1e'"},
    {"1.2.3", "at 0: malformed number '1.2.3'"},
    {"2x", "at 0: malformed number '2x'"},
    {"1 + 0x10", "at 4: malformed number '0x10'"},
    {"1e999", "at 0: number out of range '1e999'"},
    {"a.", "at 2: expected a name after '.'"},
    {"a.1", "at 2: expected a name after '.'"},
    {"a..b", "at 2: expected a name after '.'"},
    {"foo(1)", "at 0: unknown function 'foo'; the functions are min, max, ceil, floor, round, abs"},
    {"value(1)",
     "at 0: unknown function 'value'; the functions are min, max, ceil, floor, round, abs"},
    {"ceil(1, 2)", "at 0: ceil() takes 1 argument, got 2"},
    {"1 + abs()", "at 4: abs() takes 1 argument, got 0"},
    {"min()", "at 0: min() takes at least 1 argument, got 0"},
    {"1 < 2 < 3", "at 6: comparisons do not chain; write 'a < b && b < c' or use parentheses"},
    {"1 <= 2 > 0", "at 7: comparisons do not chain; write 'a < b && b < c' or use parentheses"},
    {"1 == 1 != 0", "at 7: comparisons do not chain; write 'a == b && b == c' or use parentheses"},
};

START_TEST(test_parse_errors)
{
    const error_case *c = &parse_cases[_i];
    char got[320];
    parse_error(c->src, strlen(c->src), got, sizeof got);
    ck_assert_str_eq(got, c->expect);
}
END_TEST

/* A NUL byte is a character like another: the length, not the terminator, ends the text. */
START_TEST(test_parse_nul_byte)
{
    char got[320];
    parse_error("1 +\0 2", 6, got, sizeof got);
    ck_assert_str_eq(got, "at 3: unexpected byte 0x00");
    sb_expr *e = NULL;
    sb_expr_error err;
    ck_assert_int_eq(sb_expr_parse("1 + 2 junk", 5, &e, &err), 0); /* only "1 + 2" */
    double r;
    sb_expr_env env = {.value = 0};
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), 0);
    ck_assert(r == 3);
    sb_expr_free(e);
}
END_TEST

/* Every prefix of a valid expression either compiles or fails with an offset inside it. */
START_TEST(test_parse_prefixes)
{
    const char *srcs[] = {"ceil((scheduled + running) / 2)", "value > 5 ? min(a, b.c) : -2e3",
                          "!(x <= 1) && y != 2 || z % 3"};
    for (size_t k = 0; k < sizeof srcs / sizeof srcs[0]; k++) {
        for (size_t n = 0; n <= strlen(srcs[k]); n++) {
            sb_expr *e = NULL;
            sb_expr_error err;
            int rc = sb_expr_parse(srcs[k], n, &e, &err);
            if (rc == 0) {
                sb_expr_free(e);
                continue;
            }
            ck_assert_int_eq(rc, -EINVAL);
            ck_assert_msg(err.offset <= n, "'%.*s': offset %zu", (int)n, srcs[k], err.offset);
            ck_assert(err.message[0] != '\0');
        }
    }
}
END_TEST

/* ---- evaluation errors ------------------------------------------------------------------- */

static const error_case eval_cases[] = {
    {"nosuchname + 1", "at 0: unknown name 'nosuchname': no such label or payload field"},
    {"1 + queue.depth.x", "at 4: unknown name 'queue.depth.x': no such label or payload field"},
    {"queue.nope", "at 0: unknown name 'queue.nope': no such label or payload field"},
    {"min", "at 0: unknown name 'min': no such label or payload field"},
    {"text * 2", "at 0: label 'text' is not a number: 'abc'"},
    {"empty", "at 0: label 'empty' is not a number: ''"},
    {"inf", "at 0: label 'inf' is not a number: 'inf'"},
    {"nan", "at 0: label 'nan' is not a number: 'nan'"},
    {"hex", "at 0: label 'hex' is not a number: '0x10'"},
    {"spaced", "at 0: label 'spaced' is not a number: ' 1'"},
    {"trail", "at 0: label 'trail' is not a number: '1 '"},
    {"dot", "at 0: label 'dot' is not a number: '.'"},
    {"s", "at 0: payload field 's' is a string, not a number"},
    {"queue", "at 0: payload field 'queue' is an object, not a number"},
    {"arr", "at 0: payload field 'arr' is an array, not a number"},
    {"nil", "at 0: payload field 'nil' is null, not a number"},
    {"1 / 0", "at 2: division by zero"},
    {"value / (scheduled - 3)", "at 6: division by zero"},
    {"1 / -0", "at 2: division by zero"},
    {"5 % (2 - 2)", "at 2: modulo by zero"},
    {"zero % zero", "at 5: modulo by zero"},
    {"1 ? 1 / 0 : 2", "at 6: division by zero"},
    {"1 && 1 % 0", "at 7: modulo by zero"},
    {"big * 10", "at 4: 1e+308 * 10 is out of range"},
    {"big + big", "at 4: 1e+308 + 1e+308 is out of range"},
    {"-big - big", "at 5: -1e+308 - 1e+308 is out of range"},
    {"big / 0.1", "at 4: 1e+308 / 0.1 is out of range"},
};

START_TEST(test_eval_errors)
{
    const error_case *c = &eval_cases[_i];
    sb_expr *e = parse_ok(c->src);
    sb_expr_env env = std_env();
    sb_expr_error err;
    double r = 0;
    char got[320];
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    snprintf(got, sizeof got, "at %zu: %s", err.offset, err.message);
    ck_assert_str_eq(got, c->expect);
    sb_expr_free(e);
}
END_TEST

START_TEST(test_eval_without_payload)
{
    sb_expr *e = parse_ok("2 * only");
    sb_expr_env env = {.value = 1, .labels = std_labels, .nlabels = 2};
    sb_expr_error err;
    double r;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    ck_assert_uint_eq(err.offset, 4);
    ck_assert_str_eq(err.message,
                     "unknown name 'only': no such label, and the event has no payload");
    /* the same program, given a payload, finds it */
    env = std_env();
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), 0);
    ck_assert(r == 84);
    sb_expr_free(e);

    /* a payload that is not an object has no fields */
    cJSON *arr = cJSON_Parse("[1, 2]");
    e = parse_ok("x");
    env = (sb_expr_env){.payload = arr};
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.message, "unknown name 'x': no such label or payload field");
    sb_expr_free(e);
    cJSON_Delete(arr);
}
END_TEST

START_TEST(test_eval_value_not_finite)
{
    sb_expr *e = parse_ok("1 + value");
    sb_expr_env env = {.value = NAN};
    sb_expr_error err;
    double r;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    ck_assert_uint_eq(err.offset, 4);
    ck_assert_str_eq(err.message, "the event's value is not a finite number");
    env.value = INFINITY;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    sb_expr_free(e);
    /* an expression that does not read the value does not mind */
    e = parse_ok("scheduled");
    env = (sb_expr_env){.value = NAN, .labels = std_labels, .nlabels = 1};
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), 0);
    ck_assert(r == 3);
    sb_expr_free(e);
}
END_TEST

/* `value` is always the event's value, even when a label is called "value"; a label wins over
 * a payload field of the same name; a NULL label key or value is handled. */
START_TEST(test_name_resolution)
{
    sb_expr *e = parse_ok("value + scheduled");
    sb_expr_env env = std_env();
    sb_expr_error err;
    double r;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), 0);
    ck_assert(r == 13); /* 10 + label 3, not label "value" 99 or payload 100 */
    sb_expr_free(e);

    const sb_label odd[] = {{NULL, "1"}, {"a", NULL}, {"b", "2"}};
    env = (sb_expr_env){.labels = odd, .nlabels = 3};
    e = parse_ok("b");
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), 0);
    ck_assert(r == 2);
    sb_expr_free(e);
    e = parse_ok("a");
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    ck_assert_str_eq(err.message, "label 'a' is not a number: ''");
    sb_expr_free(e);
}
END_TEST

/* ---- the names an evaluation read ---------------------------------------------------------- */

START_TEST(test_vars_used)
{
    sb_expr *e = parse_ok("value > 100 ? scheduled : running + queue.depth + running");
    ck_assert_uint_eq(sb_expr_var_count(e), 4);
    ck_assert_str_eq(sb_expr_var_name(e, 0), "value");
    ck_assert_str_eq(sb_expr_var_name(e, 1), "scheduled");
    ck_assert_str_eq(sb_expr_var_name(e, 2), "running");
    ck_assert_str_eq(sb_expr_var_name(e, 3), "queue.depth");
    ck_assert_ptr_null(sb_expr_var_name(e, 4));
    double vars[4] = {0, 0, 0, 0}, r;
    unsigned char used[4] = {9, 9, 9, 9};
    sb_expr_env env = std_env();
    sb_expr_error err;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, vars, used, &err), 0);
    ck_assert(r == 20);
    ck_assert_int_eq(used[0], 1);
    ck_assert_int_eq(used[1], 0); /* the branch not taken reads nothing */
    ck_assert_int_eq(used[2], 1);
    ck_assert_int_eq(used[3], 1);
    ck_assert(vars[0] == 10 && vars[2] == 4 && vars[3] == 12);

    env.value = 1000;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, vars, used, &err), 0);
    ck_assert(r == 3);
    ck_assert(used[0] == 1 && used[1] == 1 && used[2] == 0 && used[3] == 0);
    sb_expr_free(e);

    e = parse_ok("2 * 3");
    ck_assert_uint_eq(sb_expr_var_count(e), 0);
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, NULL), 0);
    ck_assert(r == 6);
    sb_expr_free(e);
}
END_TEST

/* ---- limits ------------------------------------------------------------------------------- */

static double eval_std(const char *src)
{
    sb_expr *e = parse_ok(src);
    sb_expr_env env = std_env();
    sb_expr_error err;
    double r = NAN;
    int rc = sb_expr_eval(e, &env, &r, NULL, NULL, &err);
    ck_assert_msg(rc == 0, "at %zu: %s", err.offset, err.message);
    sb_expr_free(e);
    return r;
}

START_TEST(test_limit_depth)
{
    char got[320];
    /* 64 levels of each kind of nesting compile; 65 do not, and say where */
    char *s = repeat("", "(", 64, "1");
    char *t = repeat(s, ")", 64, "");
    ck_assert(eval_std(t) == 1);
    free(s);
    free(t);
    s = repeat("", "(", 65, "1");
    t = repeat(s, ")", 65, "");
    parse_error(t, strlen(t), got, sizeof got);
    ck_assert_str_eq(got, "at 64: nested too deeply (more than 64 levels)");
    free(s);
    free(t);

    s = repeat("", "-", 64, "1");
    ck_assert(eval_std(s) == 1);
    free(s);
    s = repeat("", "!", 65, "1");
    parse_error(s, strlen(s), got, sizeof got);
    ck_assert_str_eq(got, "at 64: nested too deeply (more than 64 levels)");
    free(s);

    s = repeat("", "abs(", 64, "1");
    t = repeat(s, ")", 64, "");
    ck_assert(eval_std(t) == 1);
    free(s);
    free(t);
    s = repeat("", "ceil(", 65, "1");
    t = repeat(s, ")", 65, "");
    parse_error(t, strlen(t), got, sizeof got);
    ck_assert_str_eq(got, "at 324: nested too deeply (more than 64 levels)"); /* 64 * 5 + 4 */
    free(s);
    free(t);

    /* a right-nested ?: chain: 64 deep is fine, then one more is refused */
    s = repeat("", "0 ? 1 : ", 64, "7");
    ck_assert(eval_std(s) == 7);
    free(s);
    s = repeat("", "0 ? 1 : ", 65, "7");
    parse_error(s, strlen(s), got, sizeof got);
    ck_assert_str_eq(got, "at 514: nested too deeply (more than 64 levels)"); /* 64 * 8 + 2 */
    free(s);

    /* a deep stack: four pending operands (==, <, +, *) per level, 64 levels */
    s = repeat("", "1 || 1 && 1 == 1 < 1 + 1 * (", 64, "1");
    t = repeat(s, ")", 64, "");
    ck_assert(eval_std(t) == 1);
    free(s);
    free(t);
}
END_TEST

START_TEST(test_limit_length)
{
    char got[320];
    /* "1+1+...+1": 4095 bytes, then one space: 4096 bytes compile (2048 terms) */
    char *s = repeat("1", "+1", 2047, " ");
    ck_assert_uint_eq(strlen(s), 4096);
    ck_assert(eval_std(s) == 2048);
    free(s);
    s = repeat("1", "+1", 2048, "");
    ck_assert_uint_eq(strlen(s), 4097);
    parse_error(s, strlen(s), got, sizeof got);
    ck_assert_str_eq(got, "at 4096: expression longer than 4096 bytes (4097)");
    free(s);
    /* the offset counts characters: 2100 two-byte characters pass 4096 bytes at the 2048th */
    s = repeat("", "\xc3\x97", 2100, "");
    parse_error(s, strlen(s), got, sizeof got);
    ck_assert_str_eq(got, "at 2048: expression longer than 4096 bytes (4200)");
    free(s);

    /* long flat chains stay within the instruction limit and need a small stack */
    s = repeat("1", "&&1", 1365, "");
    ck_assert(eval_std(s) == 1);
    free(s);
    s = repeat("0", "||0", 1365, "");
    ck_assert(eval_std(s) == 0);
    free(s);
    s = repeat("max(0", ",1", 2045, ")");
    ck_assert(eval_std(s) == 1);
    free(s);
    s = repeat("n", "*1", 2047, "");
    sb_expr *e = parse_ok(s);
    ck_assert_uint_eq(sb_expr_var_count(e), 1);
    ck_assert_uint_le(sb_expr_code_size(e), SB_EXPR_MAX_CODE);
    sb_expr_free(e);
    free(s);
    /* a very long name compiles; its message quotes the start of it */
    s = repeat("", "a", 4000, "");
    e = parse_ok(s);
    sb_expr_env env = std_env();
    sb_expr_error err;
    double r;
    ck_assert_int_eq(sb_expr_eval(e, &env, &r, NULL, NULL, &err), -EINVAL);
    ck_assert_uint_eq(strlen(err.message),
                      strlen("unknown name '': no such label or payload field") + 64);
    sb_expr_free(e);
    free(s);
}
END_TEST

/* ---- the plugin, against the shared fake host (fake_host.c) --------------------------------- */

static fake_host *fh;
static void *plugin_so;
static const sb_plugin_descriptor *plugin; /* NULL when expression.so is not built */

static void setup_plugin(void)
{
    fh = fake_host_new("policy");
    setup_payload();
    plugin = test_plugin_load_if_built("expression", SB_KIND_CONNECTOR, &plugin_so);
}

static void teardown_plugin(void)
{
    test_plugin_unload(plugin_so);
    plugin_so = NULL;
    plugin = NULL;
    teardown_payload();
    fake_host_free(fh);
    fh = NULL;
}

/* Option values as the daemon hands them over: the table's defaults, then these settings. */
typedef struct opt_set {
    const char *name, *text;
} opt_set;

static void fill_value(sb_value *v, const sb_option_spec *spec, const char *text)
{
    memset(v, 0, sizeof *v);
    if (!text)
        return;
    v->is_set = 1;
    v->str = text;
    switch (spec->type) {
    case SB_OPT_INT:
    case SB_OPT_BOOL:
        v->integer = strtoll(text, NULL, 10);
        v->number = (double)v->integer;
        break;
    case SB_OPT_NUMBER:
        v->number = strtod(text, NULL);
        break;
    case SB_OPT_DURATION: {
        char *end;
        double n = strtod(text, &end);
        double unit = strcmp(end, "ms") == 0 ? 1 : strcmp(end, "m") == 0 ? 60000 : 1000;
        v->duration_ms = (uint64_t)(n * unit);
        break;
    }
    default:
        break;
    }
}

static int create_with(const opt_set *set, size_t nset, void **state, char *err, size_t errlen)
{
    sb_value values[32];
    size_t n = 0;
    for (; plugin->options[n].name; n++) {
        ck_assert_uint_lt(n, 32);
        const char *text = plugin->options[n].default_value;
        for (size_t k = 0; k < nset; k++)
            if (strcmp(set[k].name, plugin->options[n].name) == 0)
                text = set[k].text;
        fill_value(&values[n], &plugin->options[n], text);
    }
    err[0] = '\0';
    return plugin->create(fake_host_instance(fh), &fh->host, values, state, err, errlen);
}

static void send(void *state, const char *topic, double value, const sb_label *labels,
                 size_t nlabels, uint64_t t_s)
{
    sb_event ev = {.source = 1,
                   .source_id = "queue",
                   .topic = topic,
                   .mono_ns = t_s * 1000000000ULL,
                   .value = value,
                   .labels = labels,
                   .nlabels = nlabels,
                   .payload = std_payload};
    plugin->on_event(state, &ev);
}

START_TEST(test_plugin_options)
{
    if (!plugin)
        return; /* not built (test_plugin_load_if_built said so) */
    ck_assert_str_eq(plugin->type, "expression");
    ck_assert_int_eq(plugin->kind, SB_KIND_CONNECTOR);
    ck_assert_str_eq(plugin->options[0].name, "expression");
    ck_assert_int_eq(plugin->options[0].required, 1);
    ck_assert_str_eq(plugin->options[1].name, "min"); /* then SB_POLICY_OPTIONS */

    void *state = NULL;
    char err[256];
    opt_set bad[] = {{"expression", "1 + (2 3"}};
    ck_assert_int_eq(create_with(bad, 1, &state, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "expression@7: expected ')' to close '(' at 4");
    opt_set empty[] = {{"expression", "  "}};
    ck_assert_int_eq(create_with(empty, 1, &state, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "expression@0: empty expression");
    opt_set step[] = {{"expression", "value"}, {"max_step_up", "x"}};
    ck_assert_int_eq(create_with(step, 2, &state, err, sizeof err), -EINVAL);
    ck_assert_msg(strncmp(err, "max_step_up", 11) == 0, "%s", err);
}
END_TEST

START_TEST(test_plugin_decisions)
{
    if (!plugin)
        return; /* not built (test_plugin_load_if_built said so) */
    void *state = NULL;
    char err[256];
    opt_set set[] = {{"expression", "ceil((scheduled + running) / 2)"}, {"stabilize_down", "0s"}};
    ck_assert_msg(create_with(set, 2, &state, err, sizeof err) == 0, "%s", err);

    sb_label l1[] = {{"scheduled", "3"}, {"running", "4"}};
    send(state, SB_TOPIC_READING, 0, l1, 2, 10);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert_str_eq(fake_host_publish_at(fh, 0)->topic, SB_TOPIC_DESIRED);
    ck_assert(fake_host_publish_at(fh, 0)->value == 4);
    ck_assert_msg(strncmp(fake_host_reason(fh, 0),
                          "ceil((scheduled + running) / 2) with scheduled=3 running=4 -> 4",
                          62) == 0,
                  "reason: %s", fake_host_reason(fh, 0));

    /* a desired count from another connector is evaluated too */
    sb_label l2[] = {{"scheduled", "10"}, {"running", "1"}, {"reason", "from upstream"}};
    send(state, SB_TOPIC_DESIRED, 5, l2, 3, 20);
    ck_assert_uint_eq(fh->npub, 2);
    ck_assert(fake_host_publish_at(fh, 1)->value == 6);

    /* an instance list feeds the policy and decides nothing; other topics are ignored */
    send(state, SB_TOPIC_INSTANCES, 6, NULL, 0, 21);
    send(state, SB_TOPIC_RUN, 1, NULL, 0, 22);
    send(state, SB_TOPIC_DECISION, 1, NULL, 0, 23);
    ck_assert_uint_eq(fh->npub, 2);

    /* an evaluation error decides nothing and is logged once per distinct message */
    sb_label only_s[] = {{"scheduled", "3"}};
    sb_label text[] = {{"scheduled", "x"}, {"running", "1"}};
    int warn0 = fh->logs_at[SB_LOG_WARN];
    send(state, SB_TOPIC_READING, 0, only_s, 1, 30);
    send(state, SB_TOPIC_READING, 0, only_s, 1, 31);
    ck_assert_int_eq(fh->logs_at[SB_LOG_WARN], warn0 + 1);
    ck_assert_msg(strstr(fake_host_last_log(fh)->text, "at 18: unknown name 'running'") != NULL,
                  "%s", fake_host_last_log(fh)->text);
    send(state, SB_TOPIC_READING, 0, text, 2, 32);
    send(state, SB_TOPIC_READING, 0, text, 2, 33);
    ck_assert_int_eq(fh->logs_at[SB_LOG_WARN], warn0 + 2);
    ck_assert_msg(strstr(fake_host_last_log(fh)->text, "label 'scheduled' is not a number: 'x'") !=
                      NULL,
                  "%s", fake_host_last_log(fh)->text);
    ck_assert_uint_eq(fh->npub, 2);
    plugin->destroy(state);
}
END_TEST

START_TEST(test_plugin_reason_payload)
{
    if (!plugin)
        return; /* not built (test_plugin_load_if_built said so) */
    void *state = NULL;
    char err[256];
    /* white space of a block scalar is shown as single spaces; only names read are listed */
    opt_set set[] = {{"expression", "value > 100\n  ? queue.depth\n  : n * 2 / 3"},
                     {"stabilize_down", "0s"}};
    ck_assert_msg(create_with(set, 2, &state, err, sizeof err) == 0, "%s", err);
    send(state, SB_TOPIC_READING, 7, NULL, 0, 10);
    ck_assert_uint_eq(fh->npub, 1);
    ck_assert(fake_host_publish_at(fh, 0)->value == 4); /* 10 / 3 rounded up */
    const char *want = "value > 100 ? queue.depth : n * 2 / 3 with value=7 n=5 = 3.333333333 -> 4";
    ck_assert_msg(strncmp(fake_host_reason(fh, 0), want, strlen(want)) == 0, "reason: %s",
                  fake_host_reason(fh, 0));
    plugin->destroy(state);
}
END_TEST

/* ---- suite ------------------------------------------------------------------------------- */

static Suite *expression_suite(void)
{
    Suite *s = suite_create("expression");
    TCase *tc = tcase_create("language");
    tcase_add_checked_fixture(tc, setup_payload, teardown_payload);
    tcase_add_loop_test(tc, test_values, 0, sizeof value_cases / sizeof value_cases[0]);
    tcase_add_loop_test(tc, test_parse_errors, 0, sizeof parse_cases / sizeof parse_cases[0]);
    tcase_add_test(tc, test_parse_nul_byte);
    tcase_add_test(tc, test_parse_prefixes);
    tcase_add_loop_test(tc, test_eval_errors, 0, sizeof eval_cases / sizeof eval_cases[0]);
    tcase_add_test(tc, test_eval_without_payload);
    tcase_add_test(tc, test_eval_value_not_finite);
    tcase_add_test(tc, test_name_resolution);
    tcase_add_test(tc, test_vars_used);
    tcase_add_test(tc, test_limit_depth);
    tcase_add_test(tc, test_limit_length);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("plugin");
    tcase_add_checked_fixture(tp, setup_plugin, teardown_plugin);
    tcase_add_test(tp, test_plugin_options);
    tcase_add_test(tp, test_plugin_decisions);
    tcase_add_test(tp, test_plugin_reason_payload);
    suite_add_tcase(s, tp);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(expression_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
