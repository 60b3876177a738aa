/*
 * expr.h - the expression connector's arithmetic language: parse once, evaluate per event.
 *
 * An expression such as `ceil((scheduled + running) / 2)` is compiled at load into a short
 * bytecode program whose jumps only go forward, so an evaluation runs at most one step per
 * instruction: nothing loops, nothing allocates, nothing does I/O. Names are resolved when the
 * expression is evaluated: `value` is the event's value; any other name is a label of the event
 * read as a number, else a numeric field of its cJSON payload (`a.b` walks nested objects).
 *
 * Errors carry a 0-based character offset into the expression's text (UTF-8 code points; the
 * same as the byte offset for ASCII) and a one-line message, e.g. offset 7 and
 * "expected ')' to close '(' at 4".
 */
#ifndef SB_EXPR_H
#define SB_EXPR_H

#include <stddef.h>

#include "scalebus/plugin.h"

#define SB_EXPR_MAX_LENGTH 4096 /* bytes of source text */
#define SB_EXPR_MAX_DEPTH 64    /* nesting of '(', calls, unary operators and '?:' */
#define SB_EXPR_MAX_CODE 8192   /* instructions (never reached by a text within the length) */
#define SB_EXPR_MAX_STACK 512   /* values pending during an evaluation */

typedef struct sb_expr sb_expr;

typedef struct sb_expr_error {
    size_t offset;     /* 0-based character offset of the problem in the expression */
    char message[224]; /* one line, without the offset */
} sb_expr_error;

/* What an evaluation reads: the event's value, labels and payload (any may be empty). */
typedef struct sb_expr_env {
    double value;
    const sb_label *labels;
    size_t nlabels;
    const struct cJSON *payload;
} sb_expr_env;

/* Compile src[0..len) (no NUL terminator needed). Returns 0 and *out, or -EINVAL with err filled
 * (or -ENOMEM, message "out of memory"). */
int sb_expr_parse(const char *src, size_t len, sb_expr **out, sb_expr_error *err);
void sb_expr_free(sb_expr *e);

/* The distinct names the expression reads, in order of first appearance ("value" included). */
size_t sb_expr_var_count(const sb_expr *e);
const char *sb_expr_var_name(const sb_expr *e, size_t i);
/* Number of bytecode instructions (for tests and limits). */
size_t sb_expr_code_size(const sb_expr *e);

/* Evaluate. Returns 0 with *result (always a finite number), or -EINVAL with err filled: an
 * unknown name, a label that is not a number, division or modulo by zero, a result out of range.
 * vars and used, when not NULL, have sb_expr_var_count() entries: used[i] is set to 1 and
 * vars[i] to the name's value for each name the evaluation read (a branch not taken by `?:`,
 * `&&` or `||` reads nothing), and used[i] to 0 for the others. */
int sb_expr_eval(const sb_expr *e, const sb_expr_env *env, double *result, double *vars,
                 unsigned char *used, sb_expr_error *err);

#endif
