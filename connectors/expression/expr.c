/*
 * expr.c - the expression connector's language: a recursive-descent compiler to a small stack
 * bytecode, and its evaluator.
 *
 * The parser emits code as it reads (one pass, no tree): a left-associative chain such as
 * `a + b + c` becomes "a b ADD c ADD" and needs two stack slots however long it is, and
 * min/max fold their arguments pairwise ("a b MIN c MIN"), so the stack only grows with nesting,
 * which is limited to SB_EXPR_MAX_DEPTH. `?:`, `&&` and `||` compile to forward jumps; there is
 * no backward jump, so an evaluation takes at most one step per instruction. The compiler tracks
 * the stack height of every instruction and refuses a program that would need more than
 * SB_EXPR_MAX_STACK slots, so the evaluator runs on a fixed array on the C stack and never
 * allocates.
 *
 * Grammar (C precedence, lowest first; comparisons do not chain):
 *   expr     = or [ '?' expr ':' expr ]
 *   or       = and { '||' and }
 *   and      = equality { '&&' equality }
 *   equality = compare [ ('==' | '!=') compare ]
 *   compare  = additive [ ('<' | '<=' | '>' | '>=') additive ]
 *   additive = term { ('+' | '-') term }
 *   term     = unary { ('*' | '/' | '%') unary }
 *   unary    = ('-' | '+' | '!') unary | primary
 *   primary  = NUMBER | NAME | NAME '(' [ expr { ',' expr } ] ')' | '(' expr ')'
 */
#define _POSIX_C_SOURCE 200809L

#include "expr.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

/* ---- Program ------------------------------------------------------------------------------ */

typedef enum expr_op {
    OP_CONST, /* push a.k */
    OP_VAR,   /* push vars[a.index] */
    OP_NEG,
    OP_NOT,
    OP_TOBOOL, /* top = top != 0 */
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_MIN, /* two operands: min() and max() fold their arguments pairwise */
    OP_MAX,
    OP_CEIL,
    OP_FLOOR,
    OP_ROUND,
    OP_ABS,
    OP_JUMP,          /* to a.index */
    OP_JUMP_IF_FALSE, /* pop; jump when it was 0 */
    OP_AND,           /* top == 0: keep 0 and jump; else pop */
    OP_OR             /* top != 0: make it 1 and jump; else pop */
} expr_op;

typedef struct expr_instr {
    uint8_t op;
    uint32_t pos; /* byte offset in the source, for error messages */
    union {
        double k;
        uint32_t index;
    } a;
} expr_instr;

typedef struct expr_var {
    char *name; /* "queue.depth"; one allocation holding name and path */
    char *path; /* "queue\0depth\0": the payload path's segments */
    size_t nseg;
    int is_value; /* `value`: the event's value */
} expr_var;

struct sb_expr {
    char *src; /* a NUL-terminated copy of the text */
    size_t len;
    expr_instr *code;
    size_t ncode;
    expr_var *vars;
    size_t nvars;
};

/* ---- Characters and offsets ------------------------------------------------------------- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_name_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(int c)
{
    return is_name_start(c) || is_digit(c);
}

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Byte position -> 0-based character (UTF-8 code point) offset. */
static size_t char_offset(const char *s, size_t pos)
{
    size_t n = 0;
    for (size_t i = 0; i < pos; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* The end of the longest decimal number (digits, optional fraction, optional exponent) starting
 * at s[i], or i when there is none. */
static size_t scan_decimal(const char *s, size_t i, size_t n)
{
    size_t start = i, digits = 0;
    while (i < n && is_digit(s[i]))
        i++, digits++;
    if (i < n && s[i] == '.') {
        size_t j = i + 1;
        while (j < n && is_digit(s[j]))
            j++, digits++;
        if (digits == 0)
            return start;
        i = j;
    }
    if (digits == 0)
        return start;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1;
        if (j < n && (s[j] == '+' || s[j] == '-'))
            j++;
        if (j < n && is_digit(s[j])) {
            while (j < n && is_digit(s[j]))
                j++;
            i = j;
        }
    }
    return i;
}

/* Length of a valid UTF-8 sequence at s[i], or 0. */
static size_t utf8_len(const char *s, size_t i, size_t n)
{
    unsigned char c = (unsigned char)s[i];
    size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
    if (c >= 0xF5 || len == 0 || i + len > n)
        return 0;
    for (size_t k = 1; k < len; k++)
        if (((unsigned char)s[i + k] & 0xC0) != 0x80)
            return 0;
    return len;
}

/* ---- Parser state and errors -------------------------------------------------------------- */

typedef enum tok_type {
    T_END,
    T_NUM,
    T_NAME,
    T_LPAREN,
    T_RPAREN,
    T_COMMA,
    T_QUESTION,
    T_COLON,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_EQ,
    T_NE,
    T_NOT,
    T_AND,
    T_OR
} tok_type;

typedef struct token {
    tok_type type;
    size_t start, end; /* byte range */
    double num;
} token;

typedef struct parser {
    const char *s; /* the expression's NUL-terminated copy */
    size_t len;
    size_t pos; /* where the lexer reads next */
    token tok;  /* the current token */
    int depth;
    sb_expr *e;
    size_t code_cap, vars_cap;
    size_t height, max_height; /* stack height after the last instruction emitted */
    sb_expr_error *err;
    char what[64]; /* describe()'s buffer */
} parser;

static int fail(parser *p, size_t pos, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(parser *p, size_t pos, const char *fmt, ...)
{
    va_list ap;
    p->err->offset = char_offset(p->s, pos);
    va_start(ap, fmt);
    vsnprintf(p->err->message, sizeof p->err->message, fmt, ap);
    va_end(ap);
    return -1;
}

/* "'text'" of a token (shortened), or "the end of the expression". */
static const char *describe(parser *p, const token *t)
{
    size_t n = t->end - t->start;
    if (t->type == T_END)
        return "the end of the expression";
    if (n > 32)
        snprintf(p->what, sizeof p->what, "'%.32s...'", p->s + t->start);
    else
        snprintf(p->what, sizeof p->what, "'%.*s'", (int)n, p->s + t->start);
    return p->what;
}

/* ---- Lexer ----------------------------------------------------------------------------- */

static int lex_number(parser *p, size_t i)
{
    const char *s = p->s;
    size_t n = p->len, end = scan_decimal(s, i, n);
    if (end < n && (is_name_char(s[end]) || s[end] == '.')) {
        while (end < n && (is_name_char(s[end]) || s[end] == '.'))
            end++;
        if (end - i > 32)
            return fail(p, i, "malformed number '%.32s...'", s + i);
        return fail(p, i, "malformed number '%.*s'", (int)(end - i), s + i);
    }
    char *stop;
    double v = strtod(s + i, &stop);
    if (stop != s + end) /* a locale whose decimal point is not '.' */
        return fail(p, i, "malformed number '%.*s'", (int)(end - i > 32 ? 32 : end - i), s + i);
    if (!isfinite(v))
        return fail(p, i, "number out of range '%.*s'", (int)(end - i > 32 ? 32 : end - i), s + i);
    p->tok.type = T_NUM;
    p->tok.end = end;
    p->tok.num = v;
    p->pos = end;
    return 0;
}

static int lex_name(parser *p, size_t i)
{
    const char *s = p->s;
    size_t n = p->len;
    for (;;) {
        while (i < n && is_name_char(s[i]))
            i++;
        if (i < n && s[i] == '.') {
            if (i + 1 < n && is_name_start(s[i + 1])) {
                i++;
                continue;
            }
            return fail(p, i + 1, "expected a name after '.'");
        }
        break;
    }
    p->tok.type = T_NAME;
    p->tok.end = i;
    p->pos = i;
    return 0;
}

static int lex_unexpected(parser *p, size_t i)
{
    unsigned char c = (unsigned char)p->s[i];
    size_t u;
    if (c == '=')
        return fail(p, i, "'=' is not an operator; use '==' to compare");
    if (c == '&')
        return fail(p, i, "'&' is not an operator; use '&&'");
    if (c == '|')
        return fail(p, i, "'|' is not an operator; use '||'");
    if (c == '"' || c == '\'')
        return fail(p, i, "strings are not supported; names are written bare: label_name");
    if (c > 0x20 && c < 0x7F)
        return fail(p, i, "unexpected character '%c'", c);
    if (c >= 0x80 && (u = utf8_len(p->s, i, p->len)) != 0)
        return fail(p, i, "unexpected character '%.*s'", (int)u, p->s + i);
    return fail(p, i, "unexpected byte 0x%02x", c);
}

/* Operators and punctuation, the two-character ones first. */
static const struct {
    const char *text;
    tok_type type;
} expr_punct[] = {
    {"<=", T_LE},     {">=", T_GE},    {"==", T_EQ},    {"!=", T_NE},   {"&&", T_AND},
    {"||", T_OR},     {"(", T_LPAREN}, {")", T_RPAREN}, {",", T_COMMA}, {"?", T_QUESTION},
    {":", T_COLON},   {"+", T_PLUS},   {"-", T_MINUS},  {"*", T_STAR},  {"/", T_SLASH},
    {"%", T_PERCENT}, {"<", T_LT},     {">", T_GT},     {"!", T_NOT},
};

/* Read the next token into p->tok. */
static int lex(parser *p)
{
    const char *s = p->s;
    size_t n = p->len, i = p->pos;
    while (i < n && is_space(s[i]))
        i++;
    p->tok.start = i;
    if (i >= n) {
        p->tok.type = T_END;
        p->tok.end = p->pos = i;
        return 0;
    }
    if (is_digit(s[i]) || (s[i] == '.' && i + 1 < n && is_digit(s[i + 1])))
        return lex_number(p, i);
    if (is_name_start(s[i]))
        return lex_name(p, i);
    for (size_t k = 0; k < sizeof expr_punct / sizeof expr_punct[0]; k++) {
        size_t w = strlen(expr_punct[k].text);
        if (i + w <= n && memcmp(s + i, expr_punct[k].text, w) == 0) {
            p->tok.type = expr_punct[k].type;
            p->tok.end = p->pos = i + w;
            return 0;
        }
    }
    return lex_unexpected(p, i);
}

/* ---- Code emission ------------------------------------------------------------------------ */

/* Append one instruction that changes the stack height by delta; returns its index or -1. */
static long emit(parser *p, expr_op op, size_t pos, int delta)
{
    sb_expr *e = p->e;
    if (e->ncode >= SB_EXPR_MAX_CODE)
        return fail(p, pos, "expression too large (more than %d steps)", SB_EXPR_MAX_CODE);
    if (e->ncode == p->code_cap) {
        size_t cap = p->code_cap ? p->code_cap * 2 : 16;
        expr_instr *c = realloc(e->code, cap * sizeof *c);
        if (!c)
            return fail(p, pos, "out of memory");
        e->code = c;
        p->code_cap = cap;
    }
    p->height = (size_t)((long)p->height + delta);
    if (p->height > p->max_height)
        p->max_height = p->height;
    if (p->max_height > SB_EXPR_MAX_STACK)
        return fail(p, pos, "expression too complex (more than %d pending values)",
                    SB_EXPR_MAX_STACK);
    expr_instr *in = &e->code[e->ncode];
    memset(in, 0, sizeof *in);
    in->op = (uint8_t)op;
    in->pos = (uint32_t)pos;
    return (long)e->ncode++;
}

/* Point the jump at index j to the next instruction to be emitted. */
static void patch(parser *p, long j)
{
    p->e->code[j].a.index = (uint32_t)p->e->ncode;
}

/* The index of the variable named s[start..end), added on first use; -1 on failure. */
static long var_index(parser *p, size_t start, size_t end)
{
    sb_expr *e = p->e;
    size_t n = end - start;
    for (size_t i = 0; i < e->nvars; i++)
        if (strlen(e->vars[i].name) == n && memcmp(e->vars[i].name, p->s + start, n) == 0)
            return (long)i;
    if (e->nvars == p->vars_cap) {
        size_t cap = p->vars_cap ? p->vars_cap * 2 : 8;
        expr_var *v = realloc(e->vars, cap * sizeof *v);
        if (!v)
            return fail(p, start, "out of memory");
        e->vars = v;
        p->vars_cap = cap;
    }
    char *buf = malloc(2 * (n + 1));
    if (!buf)
        return fail(p, start, "out of memory");
    expr_var *v = &e->vars[e->nvars];
    v->name = buf;
    v->path = buf + n + 1;
    memcpy(v->name, p->s + start, n);
    v->name[n] = '\0';
    memcpy(v->path, v->name, n + 1);
    v->nseg = 1;
    for (size_t i = 0; i < n; i++)
        if (v->path[i] == '.') {
            v->path[i] = '\0';
            v->nseg++;
        }
    v->is_value = strcmp(v->name, "value") == 0;
    return (long)e->nvars++;
}

/* ---- Parser ------------------------------------------------------------------------------ */

static int parse_expr(parser *p);

static int enter(parser *p, size_t pos)
{
    if (++p->depth > SB_EXPR_MAX_DEPTH)
        return fail(p, pos, "nested too deeply (more than %d levels)", SB_EXPR_MAX_DEPTH);
    return 0;
}

typedef struct expr_func {
    const char *name;
    expr_op op;
    int variadic; /* min, max: one or more arguments; the others take exactly one */
} expr_func;

static const expr_func expr_funcs[] = {
    {"min", OP_MIN, 1},     {"max", OP_MAX, 1},     {"ceil", OP_CEIL, 0},
    {"floor", OP_FLOOR, 0}, {"round", OP_ROUND, 0}, {"abs", OP_ABS, 0},
};

static int parse_call(parser *p, size_t name_start, size_t name_end)
{
    const expr_func *f = NULL;
    size_t n = name_end - name_start, lparen = p->tok.start;
    for (size_t i = 0; i < sizeof expr_funcs / sizeof expr_funcs[0]; i++)
        if (strlen(expr_funcs[i].name) == n &&
            memcmp(expr_funcs[i].name, p->s + name_start, n) == 0)
            f = &expr_funcs[i];
    if (!f)
        return fail(p, name_start,
                    "unknown function '%.*s'; the functions are min, max, ceil, floor, round, abs",
                    (int)(n > 32 ? 32 : n), p->s + name_start);
    if (enter(p, lparen) || lex(p))
        return -1;
    int argc = 0;
    if (p->tok.type != T_RPAREN) {
        for (;;) {
            size_t at = p->tok.start;
            if (parse_expr(p))
                return -1;
            if (++argc > 1 && f->variadic && emit(p, f->op, at, -1) < 0)
                return -1;
            if (p->tok.type != T_COMMA)
                break;
            if (lex(p))
                return -1;
        }
    }
    if (p->tok.type != T_RPAREN)
        return fail(p, p->tok.start, "expected ')' to close '(' at %zu", char_offset(p->s, lparen));
    if (f->variadic && argc == 0)
        return fail(p, name_start, "%s() takes at least 1 argument, got 0", f->name);
    if (!f->variadic && argc != 1)
        return fail(p, name_start, "%s() takes 1 argument, got %d", f->name, argc);
    if (!f->variadic && emit(p, f->op, name_start, 0) < 0)
        return -1;
    p->depth--;
    return lex(p);
}

static int parse_primary(parser *p)
{
    token t = p->tok;
    long i;
    switch (t.type) {
    case T_NUM:
        if ((i = emit(p, OP_CONST, t.start, 1)) < 0)
            return -1;
        p->e->code[i].a.k = t.num;
        return lex(p);
    case T_NAME:
        if (lex(p))
            return -1;
        if (p->tok.type == T_LPAREN)
            return parse_call(p, t.start, t.end);
        long v = var_index(p, t.start, t.end);
        if (v < 0 || (i = emit(p, OP_VAR, t.start, 1)) < 0)
            return -1;
        p->e->code[i].a.index = (uint32_t)v;
        return 0;
    case T_LPAREN:
        if (enter(p, t.start) || lex(p) || parse_expr(p))
            return -1;
        if (p->tok.type != T_RPAREN)
            return fail(p, p->tok.start, "expected ')' to close '(' at %zu",
                        char_offset(p->s, t.start));
        p->depth--;
        return lex(p);
    default:
        return fail(p, t.start, "expected a number, a name or '(', got %s", describe(p, &t));
    }
}

static int parse_unary(parser *p)
{
    token t = p->tok;
    if (t.type != T_MINUS && t.type != T_PLUS && t.type != T_NOT)
        return parse_primary(p);
    if (enter(p, t.start) || lex(p) || parse_unary(p))
        return -1;
    if (t.type != T_PLUS && emit(p, t.type == T_MINUS ? OP_NEG : OP_NOT, t.start, 0) < 0)
        return -1;
    p->depth--;
    return 0;
}

static int parse_term(parser *p)
{
    if (parse_unary(p))
        return -1;
    while (p->tok.type == T_STAR || p->tok.type == T_SLASH || p->tok.type == T_PERCENT) {
        token op = p->tok;
        if (lex(p) || parse_unary(p))
            return -1;
        expr_op code = op.type == T_STAR ? OP_MUL : op.type == T_SLASH ? OP_DIV : OP_MOD;
        if (emit(p, code, op.start, -1) < 0)
            return -1;
    }
    return 0;
}

static int parse_additive(parser *p)
{
    if (parse_term(p))
        return -1;
    while (p->tok.type == T_PLUS || p->tok.type == T_MINUS) {
        token op = p->tok;
        if (lex(p) || parse_term(p))
            return -1;
        if (emit(p, op.type == T_PLUS ? OP_ADD : OP_SUB, op.start, -1) < 0)
            return -1;
    }
    return 0;
}

static int is_compare(tok_type t)
{
    return t == T_LT || t == T_LE || t == T_GT || t == T_GE;
}

static int parse_compare(parser *p)
{
    if (parse_additive(p))
        return -1;
    if (!is_compare(p->tok.type))
        return 0;
    token op = p->tok;
    if (lex(p) || parse_additive(p))
        return -1;
    expr_op code = op.type == T_LT   ? OP_LT
                   : op.type == T_LE ? OP_LE
                   : op.type == T_GT ? OP_GT
                                     : OP_GE;
    if (emit(p, code, op.start, -1) < 0)
        return -1;
    if (is_compare(p->tok.type))
        return fail(p, p->tok.start,
                    "comparisons do not chain; write 'a < b && b < c' or use parentheses");
    return 0;
}

static int parse_equality(parser *p)
{
    if (parse_compare(p))
        return -1;
    if (p->tok.type != T_EQ && p->tok.type != T_NE)
        return 0;
    token op = p->tok;
    if (lex(p) || parse_compare(p))
        return -1;
    if (emit(p, op.type == T_EQ ? OP_EQ : OP_NE, op.start, -1) < 0)
        return -1;
    if (p->tok.type == T_EQ || p->tok.type == T_NE)
        return fail(p, p->tok.start,
                    "comparisons do not chain; write 'a == b && b == c' or use parentheses");
    return 0;
}

/* `a && b` and `a || b`: a; AND/OR (jump over b with the answer); b; TOBOOL. */
static int parse_logic(parser *p, tok_type t, int (*operand)(parser *))
{
    if (operand(p))
        return -1;
    while (p->tok.type == t) {
        long j = emit(p, t == T_AND ? OP_AND : OP_OR, p->tok.start, -1);
        if (j < 0 || lex(p) || operand(p) || emit(p, OP_TOBOOL, p->tok.start, 0) < 0)
            return -1;
        patch(p, j);
    }
    return 0;
}

static int parse_and(parser *p)
{
    return parse_logic(p, T_AND, parse_equality);
}

static int parse_or(parser *p)
{
    return parse_logic(p, T_OR, parse_and);
}

static int parse_expr(parser *p)
{
    if (parse_or(p))
        return -1;
    if (p->tok.type != T_QUESTION)
        return 0;
    size_t q = p->tok.start;
    long jf = emit(p, OP_JUMP_IF_FALSE, q, -1);
    if (jf < 0 || enter(p, q) || lex(p) || parse_expr(p))
        return -1;
    if (p->tok.type != T_COLON)
        return fail(p, p->tok.start, "expected ':' for the '?' at %zu, got %s",
                    char_offset(p->s, q), describe(p, &p->tok));
    long j = emit(p, OP_JUMP, p->tok.start, 0);
    if (j < 0 || lex(p))
        return -1;
    patch(p, jf);
    p->height--; /* the else branch starts where the then branch did */
    if (parse_expr(p))
        return -1;
    patch(p, j);
    p->depth--;
    return 0;
}

/* ---- Public API: parse ------------------------------------------------------------------- */

void sb_expr_free(sb_expr *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->nvars; i++)
        free(e->vars[i].name);
    free(e->vars);
    free(e->code);
    free(e->src);
    free(e);
}

static int parse_all(parser *p)
{
    if (lex(p))
        return -1;
    if (p->tok.type == T_END)
        return fail(p, 0, "empty expression");
    if (parse_expr(p))
        return -1;
    if (p->tok.type == T_RPAREN)
        return fail(p, p->tok.start, "unmatched ')'");
    if (p->tok.type != T_END)
        return fail(p, p->tok.start, "expected an operator or the end of the expression, got %s",
                    describe(p, &p->tok));
    return 0;
}

int sb_expr_parse(const char *src, size_t len, sb_expr **out, sb_expr_error *err)
{
    *out = NULL;
    memset(err, 0, sizeof *err);
    if (len > SB_EXPR_MAX_LENGTH) {
        err->offset = char_offset(src, SB_EXPR_MAX_LENGTH);
        snprintf(err->message, sizeof err->message, "expression longer than %d bytes (%zu)",
                 SB_EXPR_MAX_LENGTH, len);
        return -EINVAL;
    }
    sb_expr *e = calloc(1, sizeof *e);
    if (e)
        e->src = malloc(len + 1);
    if (!e || !e->src) {
        free(e);
        snprintf(err->message, sizeof err->message, "out of memory");
        return -ENOMEM;
    }
    memcpy(e->src, src, len);
    e->src[len] = '\0';
    e->len = len;

    parser p = {.s = e->src, .len = len, .e = e, .err = err};
    if (parse_all(&p)) {
        sb_expr_free(e);
        return strcmp(err->message, "out of memory") == 0 ? -ENOMEM : -EINVAL;
    }
    /* Give back what the doubling left over (a failure keeps the larger block). */
    expr_instr *c = realloc(e->code, e->ncode * sizeof *c);
    if (c)
        e->code = c;
    *out = e;
    return 0;
}

size_t sb_expr_var_count(const sb_expr *e)
{
    return e->nvars;
}

const char *sb_expr_var_name(const sb_expr *e, size_t i)
{
    return i < e->nvars ? e->vars[i].name : NULL;
}

size_t sb_expr_code_size(const sb_expr *e)
{
    return e->ncode;
}

/* ---- Evaluation -------------------------------------------------------------------------- */

static int eval_fail(const sb_expr *e, const expr_instr *in, sb_expr_error *err, const char *fmt,
                     ...) __attribute__((format(printf, 4, 5)));

static int eval_fail(const sb_expr *e, const expr_instr *in, sb_expr_error *err, const char *fmt,
                     ...)
{
    va_list ap;
    if (!err)
        return -EINVAL;
    err->offset = char_offset(e->src, in->pos);
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A label's text as a number: an optional sign and a decimal number, nothing else. */
static int label_number(const char *s, double *out)
{
    size_t n = strlen(s), i = (n > 0 && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
    if (n == 0 || scan_decimal(s, i, n) != n || i == n)
        return -1;
    char *end;
    double v = strtod(s, &end);
    if (end != s + n || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static const char *json_kind(const cJSON *j)
{
    if (cJSON_IsString(j))
        return "a string";
    if (cJSON_IsObject(j))
        return "an object";
    if (cJSON_IsArray(j))
        return "an array";
    if (cJSON_IsNull(j))
        return "null";
    return "not a number";
}

/* The value of a name: `value`, else a label, else a payload field. */
static int lookup(const sb_expr *e, const sb_expr_env *env, const expr_instr *in, double *out,
                  sb_expr_error *err)
{
    const expr_var *v = &e->vars[in->a.index];
    if (v->is_value) {
        if (!isfinite(env->value))
            return eval_fail(e, in, err, "the event's value is not a finite number");
        *out = env->value;
        return 0;
    }
    for (size_t i = 0; i < env->nlabels; i++) {
        const sb_label *l = &env->labels[i];
        if (!l->key || strcmp(l->key, v->name) != 0)
            continue;
        if (!l->value || label_number(l->value, out) != 0)
            return eval_fail(e, in, err, "label '%.64s' is not a number: '%.40s'", v->name,
                             l->value ? l->value : "");
        return 0;
    }
    const cJSON *j = env->payload;
    const char *seg = v->path;
    for (size_t k = 0; k < v->nseg && j; k++) {
        j = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, seg) : NULL;
        seg += strlen(seg) + 1;
    }
    if (!j)
        return eval_fail(e, in, err, "unknown name '%.64s': no such label%s", v->name,
                         env->payload ? " or payload field" : ", and the event has no payload");
    if (cJSON_IsBool(j)) {
        *out = cJSON_IsTrue(j) ? 1.0 : 0.0;
        return 0;
    }
    if (!cJSON_IsNumber(j))
        return eval_fail(e, in, err, "payload field '%.64s' is %s, not a number", v->name,
                         json_kind(j));
    if (!isfinite(j->valuedouble))
        return eval_fail(e, in, err, "payload field '%.64s' is not a finite number", v->name);
    *out = j->valuedouble;
    return 0;
}

static const char *op_text(uint8_t op)
{
    switch (op) {
    case OP_ADD:
        return "+";
    case OP_SUB:
        return "-";
    case OP_MUL:
        return "*";
    default:
        return "/";
    }
}

/* a OP b for the two-operand instructions; -1 on division by zero or overflow. */
static int binary(const sb_expr *e, const expr_instr *in, double a, double b, double *r,
                  sb_expr_error *err)
{
    switch (in->op) {
    case OP_ADD:
        *r = a + b;
        break;
    case OP_SUB:
        *r = a - b;
        break;
    case OP_MUL:
        *r = a * b;
        break;
    case OP_DIV:
        if (b == 0.0)
            return eval_fail(e, in, err, "division by zero");
        *r = a / b;
        break;
    case OP_MOD:
        if (b == 0.0)
            return eval_fail(e, in, err, "modulo by zero");
        *r = fmod(a, b);
        break;
    case OP_LT:
        *r = a < b;
        break;
    case OP_LE:
        *r = a <= b;
        break;
    case OP_GT:
        *r = a > b;
        break;
    case OP_GE:
        *r = a >= b;
        break;
    case OP_EQ:
        *r = a == b;
        break;
    case OP_NE:
        *r = a != b;
        break;
    case OP_MIN:
        *r = a < b ? a : b;
        break;
    default: /* OP_MAX */
        *r = a > b ? a : b;
        break;
    }
    if (!isfinite(*r))
        return eval_fail(e, in, err, "%g %s %g is out of range", a, op_text(in->op), b);
    return 0;
}

int sb_expr_eval(const sb_expr *e, const sb_expr_env *env, double *result, double *vars,
                 unsigned char *used, sb_expr_error *err)
{
    double st[SB_EXPR_MAX_STACK];
    size_t sp = 0, pc = 0;
    if (used)
        memset(used, 0, e->nvars);
    /* The compiler proved the stack bounds and that every jump goes forward. */
    while (pc < e->ncode) {
        const expr_instr *in = &e->code[pc++];
        double *top = sp ? &st[sp - 1] : NULL;
        switch (in->op) {
        case OP_CONST:
            st[sp++] = in->a.k;
            break;
        case OP_VAR:
            if (lookup(e, env, in, &st[sp], err))
                return -EINVAL;
            if (vars)
                vars[in->a.index] = st[sp];
            if (used)
                used[in->a.index] = 1;
            sp++;
            break;
        case OP_NEG:
            *top = -*top;
            break;
        case OP_NOT:
            *top = *top == 0.0;
            break;
        case OP_TOBOOL:
            *top = *top != 0.0;
            break;
        case OP_CEIL:
            *top = ceil(*top);
            break;
        case OP_FLOOR:
            *top = floor(*top);
            break;
        case OP_ROUND:
            *top = round(*top);
            break;
        case OP_ABS:
            *top = fabs(*top);
            break;
        case OP_JUMP:
            pc = in->a.index;
            break;
        case OP_JUMP_IF_FALSE:
            if (st[--sp] == 0.0)
                pc = in->a.index;
            break;
        case OP_AND:
            if (*top == 0.0)
                pc = in->a.index;
            else
                sp--;
            break;
        case OP_OR:
            if (*top != 0.0) {
                *top = 1.0;
                pc = in->a.index;
            } else {
                sp--;
            }
            break;
        default:
            sp--;
            if (binary(e, in, st[sp - 1], st[sp], &st[sp - 1], err))
                return -EINVAL;
            break;
        }
    }
    /* -0 (e.g. ceil(-0.5)) reads as 0 in a reason. */
    *result = st[0] == 0.0 ? 0.0 : st[0];
    return 0;
}
