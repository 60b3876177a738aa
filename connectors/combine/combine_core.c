/*
 * combine_core.c - the inputs of a `combine` connector and how they combine (combine_core.h).
 *
 * Inputs live in one array in the order they were first heard from, which is also the order the
 * explanation lists them in. Each is found by its key: the source id and the sorted labels, each
 * string length-prefixed so that no choice of characters in a label can make two inputs one.
 * Every decision walks all inputs anyway (to combine them), so a linear search with a hash check
 * costs nothing more; the table is bounded by SB_COMBINE_MAX_INPUTS.
 */
#include "combine_core.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct input {
    uint64_t hash;
    char *key; /* one allocation: the key's bytes, then the name */
    size_t keylen;
    const char *name; /* "by-queue" or "queues{queue=jobs}", inside key's block */
    double value;
    uint64_t t_ns;
} input;

struct sb_combine {
    sb_combine_by by;
    uint64_t stale_ns, forget_ns;
    input *in;
    size_t n, cap;
    int has_newest;
    uint64_t newest_ns;
};

static const char *const by_names[] = {"max", "min", "sum", "avg"};

int sb_combine_by_parse(const char *text, sb_combine_by *out)
{
    for (size_t i = 0; i < sizeof by_names / sizeof by_names[0]; i++) {
        if (text && strcmp(text, by_names[i]) == 0) {
            *out = (sb_combine_by)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *sb_combine_by_name(sb_combine_by by)
{
    return (size_t)by < sizeof by_names / sizeof by_names[0] ? by_names[by] : "?";
}

sb_combine *sb_combine_new(sb_combine_by by, uint64_t stale_after_ns)
{
    if (stale_after_ns == 0 || (size_t)by >= sizeof by_names / sizeof by_names[0])
        return NULL;
    sb_combine *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->by = by;
    c->stale_ns = stale_after_ns;
    c->forget_ns = stale_after_ns > UINT64_MAX / SB_COMBINE_FORGET_FACTOR
                       ? UINT64_MAX
                       : stale_after_ns * SB_COMBINE_FORGET_FACTOR;
    return c;
}

void sb_combine_free(sb_combine *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        free(c->in[i].key);
    free(c->in);
    free(c);
}

size_t sb_combine_count(const sb_combine *c)
{
    return c->n;
}

/* ---- keys ------------------------------------------------------------------------------------ */

typedef struct buf {
    char *p;
    size_t len, cap;
    int oom;
} buf;

static void buf_put(buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 64;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *p = realloc(b->p, ncap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(buf *b, const char *s)
{
    buf_put(b, s, strlen(s));
}

/* "5:queue" */
static void buf_field(buf *b, const char *s)
{
    char len[24];
    size_t n = strlen(s);
    snprintf(len, sizeof len, "%zu:", n);
    buf_str(b, len);
    buf_put(b, s, n);
}

static int label_less(const sb_label *a, const sb_label *b)
{
    int c = strcmp(a->key, b->key);
    return c != 0 ? c < 0 : strcmp(a->value, b->value) < 0;
}

static int is_identity_label(const sb_label *l)
{
    return l->key != NULL && l->value != NULL && strcmp(l->key, "reason") != 0;
}

/* The key (length-prefixed source and sorted labels) into k, the name into name. */
static int make_key(const char *source_id, const sb_label *labels, size_t nlabels, buf *k,
                    buf *name)
{
    enum { LOCAL = 16 };
    const sb_label *local[LOCAL];
    const sb_label **order = local;
    if (nlabels > LOCAL) {
        order = malloc(nlabels * sizeof *order);
        if (!order)
            return -ENOMEM;
    }
    size_t m = 0;
    for (size_t i = 0; i < nlabels; i++) {
        if (!is_identity_label(&labels[i]))
            continue;
        size_t j = m++;
        while (j > 0 && label_less(&labels[i], order[j - 1])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = &labels[i];
    }
    buf_field(k, source_id);
    buf_str(name, source_id);
    for (size_t i = 0; i < m; i++) {
        buf_field(k, order[i]->key);
        buf_field(k, order[i]->value);
        buf_str(name, i == 0 ? "{" : ",");
        buf_str(name, order[i]->key);
        buf_str(name, "=");
        buf_str(name, order[i]->value);
    }
    if (m > 0)
        buf_str(name, "}");
    if (order != local)
        free(order);
    return k->oom || name->oom ? -ENOMEM : 0;
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- inputs ---------------------------------------------------------------------------------- */

static void remove_at(sb_combine *c, size_t i)
{
    free(c->in[i].key);
    memmove(&c->in[i], &c->in[i + 1], (c->n - i - 1) * sizeof *c->in);
    c->n--;
}

/* Room for one more input: grow, or let the one heard from longest ago go. */
static int make_room(sb_combine *c)
{
    if (c->n >= SB_COMBINE_MAX_INPUTS) {
        size_t oldest = 0;
        for (size_t i = 1; i < c->n; i++)
            if (c->in[i].t_ns < c->in[oldest].t_ns)
                oldest = i;
        remove_at(c, oldest);
    }
    if (c->n < c->cap)
        return 0;
    size_t ncap = c->cap ? c->cap * 2 : 4;
    if (ncap > SB_COMBINE_MAX_INPUTS)
        ncap = SB_COMBINE_MAX_INPUTS;
    input *n = realloc(c->in, ncap * sizeof *n);
    if (!n)
        return -ENOMEM;
    c->in = n;
    c->cap = ncap;
    return 0;
}

int sb_combine_put(sb_combine *c, const char *source_id, const sb_label *labels, size_t nlabels,
                   double value, uint64_t t_ns)
{
    if (!isfinite(value))
        return -EINVAL;
    buf k = {0}, name = {0};
    int rc = make_key(source_id ? source_id : "", labels, labels ? nlabels : 0, &k, &name);
    if (rc != 0)
        goto out;
    uint64_t h = hash_bytes(k.p, k.len);
    if (!c->has_newest || t_ns > c->newest_ns) {
        c->has_newest = 1;
        c->newest_ns = t_ns;
    }
    for (size_t i = 0; i < c->n; i++) {
        input *in = &c->in[i];
        if (in->hash == h && in->keylen == k.len && memcmp(in->key, k.p, k.len) == 0) {
            /* An older value arriving late does not replace a newer one. */
            if (t_ns >= in->t_ns) {
                in->value = value;
                in->t_ns = t_ns;
            }
            goto out;
        }
    }
    if ((rc = make_room(c)) != 0)
        goto out;
    char *block = malloc(k.len + name.len + 1);
    if (!block) {
        rc = -ENOMEM;
        goto out;
    }
    memcpy(block, k.p, k.len);
    memcpy(block + k.len, name.p, name.len + 1);
    c->in[c->n++] = (input){.hash = h,
                            .key = block,
                            .keylen = k.len,
                            .name = block + k.len,
                            .value = value,
                            .t_ns = t_ns};
out:
    free(k.p);
    free(name.p);
    return rc;
}

/* ---- combining ------------------------------------------------------------------------------- */

/* Appends to a fixed buffer; remembers when something did not fit. */
typedef struct text {
    char *p;
    size_t len, cap;
} text;

static void text_addf(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void text_addf(text *t, const char *fmt, ...)
{
    if (t->cap == 0 || t->len + 1 >= t->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(t->p + t->len, t->cap - t->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        t->p[t->len] = '\0';
    else if ((size_t)n >= t->cap - t->len)
        t->len = t->cap - 1;
    else
        t->len += (size_t)n;
}

/* Room kept for the end of the explanation ("(+N more) ... -> value"), so it always shows. */
#define TEXT_TAIL 96

/* Lists the names (with values when `values`) of the fresh (or stale) inputs while they fit. */
static void list_inputs(const sb_combine *c, text *t, int want_fresh, const unsigned char *fresh,
                        int values, const char *sep)
{
    size_t shown = 0, left = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (fresh[i] != want_fresh)
            continue;
        const input *in = &c->in[i];
        char piece[64];
        int pn = values ? snprintf(piece, sizeof piece, "=%.10g", in->value) : 0;
        size_t need = strlen(in->name) + (size_t)(pn > 0 ? pn : 0) + strlen(sep);
        if (left > 0 || t->cap < TEXT_TAIL || t->len + need + TEXT_TAIL >= t->cap) {
            left++;
            continue;
        }
        text_addf(t, "%s%s%s", shown ? sep : "", in->name, values ? piece : "");
        shown++;
    }
    if (left > 0)
        text_addf(t, "%s(+%zu more)", shown ? " " : "", left);
}

size_t sb_combine_compute(sb_combine *c, uint64_t now_ns, double *value, char *textbuf,
                          size_t textlen)
{
    if (c->has_newest && c->newest_ns > now_ns)
        now_ns = c->newest_ns;
    /* Forget the inputs not heard from for a long time. */
    for (size_t i = c->n; i-- > 0;)
        if (now_ns - c->in[i].t_ns > c->forget_ns)
            remove_at(c, i);

    unsigned char fresh_local[64];
    unsigned char *fresh = c->n <= sizeof fresh_local ? fresh_local : malloc(c->n);
    size_t nfresh = 0, nstale = 0;
    double acc = 0;
    for (size_t i = 0; i < c->n; i++) {
        const input *in = &c->in[i];
        int f = now_ns - in->t_ns <= c->stale_ns;
        if (fresh)
            fresh[i] = (unsigned char)f;
        if (!f) {
            nstale++;
            continue;
        }
        double v = in->value;
        if (nfresh == 0)
            acc = v;
        else if (c->by == SB_COMBINE_MAX)
            acc = v > acc ? v : acc;
        else if (c->by == SB_COMBINE_MIN)
            acc = v < acc ? v : acc;
        else
            acc += v;
        nfresh++;
    }
    if (nfresh > 0 && c->by == SB_COMBINE_AVG)
        acc /= (double)nfresh;

    if (textbuf && textlen > 0) {
        text t = {textbuf, 0, textlen};
        textbuf[0] = '\0';
        text_addf(&t, "%s of ", sb_combine_by_name(c->by));
        if (fresh == NULL) /* no memory for the list: the counts still tell the story */
            text_addf(&t, "%zu inputs", nfresh);
        else if (nfresh > 0)
            list_inputs(c, &t, 1, fresh, 1, " ");
        else
            text_addf(&t, "nothing fresh");
        if (nstale > 0 && fresh != NULL) {
            text_addf(&t, " (stale: ");
            list_inputs(c, &t, 0, fresh, 0, ", ");
            text_addf(&t, ")");
        } else if (nstale > 0) {
            text_addf(&t, " (%zu stale)", nstale);
        }
        if (nfresh > 0)
            text_addf(&t, " -> %.10g", acc);
    }
    if (fresh != fresh_local)
        free(fresh);
    if (nfresh > 0)
        *value = acc;
    return nfresh;
}
