/*
 * config.c - pipeline files, from bytes to validated components.
 *
 * libyaml's event parser feeds a small builder that makes our own config_node tree: every node
 * keeps its 1-based line:col, `${VAR}` is expanded per scalar after libyaml has read it (so marks
 * point at what the user wrote), and the hostile-file limits (size, depth, node count including
 * alias expansions) are enforced while the events stream in, so a bomb is never materialised.
 * Aliases share the anchored subtree instead of copying it: memory stays proportional to the
 * file and only the count grows.
 *
 * Phase 1 (config_parse_*) checks the structure: sections, ids, from/to edges (a connector's
 * `from` names triggers or other connectors: policies in a chain) and cycles through triggers
 * or connectors. Phase 2 (config_validate_plugins) checks each component's options against its
 * plugin's options table and fills sb_values and a fingerprint. Both phases report every error
 * they find, sorted by position, and go on.
 *
 * Memory: everything the tree owns lives in one arena (cfg->arena); what a plugin instance gets
 * (values, their strings, the fingerprint) lives in the component's own arena, so the daemon
 * can keep an instance's values alive across a reload without keeping the old tree.
 */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

/* ---- Arena ------------------------------------------------------------------------------ */

/* Under AddressSanitizer every allocation gets its own block, so an overrun is caught instead
 * of landing silently in the next object of a shared chunk. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_EXACT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_EXACT 1
#endif
#endif
#ifndef ARENA_EXACT
#define ARENA_EXACT 0
#endif

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
} arena_chunk;

typedef struct arena {
    arena_chunk *head;
    size_t grow; /* the next chunk's size: small at first, as a component's arena stays small */
} arena;

#define ARENA_ALIGN ((size_t)16)
#define ARENA_FIRST_CHUNK ((size_t)512)
#define ARENA_CHUNK_BYTES ((size_t)64 * 1024)
#define ARENA_HEADER ((sizeof(arena_chunk) + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1))

/* Zeroed memory that lives until the arena is freed; NULL when out of memory. */
static void *arena_alloc(arena *a, size_t n)
{
    if (n > SIZE_MAX / 4)
        return NULL;
    size_t need = ARENA_EXACT ? (n ? n : 1) : ((n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1));
    if (need == 0)
        need = ARENA_ALIGN;
    arena_chunk *c = a->head;
    if (ARENA_EXACT || c == NULL || c->cap - c->used < need) {
        int own = ARENA_EXACT || need > ARENA_CHUNK_BYTES / 4;
        size_t base = a->grow ? a->grow : ARENA_FIRST_CHUNK;
        size_t cap = own ? need : (need > base ? need : base);
        if (!own)
            a->grow = base * 2 > ARENA_CHUNK_BYTES ? ARENA_CHUNK_BYTES : base * 2;
        c = malloc(ARENA_HEADER + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        if (own && a->head != NULL && !ARENA_EXACT) {
            /* A big block goes behind the current chunk, which keeps serving small ones. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (char *)c + ARENA_HEADER + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
}

static char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static char *arena_strdup(arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

static void arena_release(arena *a)
{
    arena_chunk *c = a->head;
    while (c != NULL) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->grow = 0;
}

void config_component_arena_free(void *component_arena)
{
    arena *a = component_arena;
    if (a == NULL)
        return;
    arena_release(a);
    free(a);
}

/* ---- String map (open addressing) --------------------------------------------------------- */

typedef struct strmap_slot {
    const char *key; /* owned elsewhere (an arena) */
    uint64_t hash;
    size_t value;
} strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    size_t cap, count;
} strmap;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* The slot holding key, or the empty slot where it would go. Needs cap > count. */
static strmap_slot *strmap_slot_for(const strmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && strcmp(s->key, key) == 0))
            return s;
    }
}

static int strmap_grow(strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    strmap_slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return -ENOMEM;
    strmap old = *m;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key != NULL)
            *strmap_slot_for(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
    free(old.slots);
    return 0;
}

/* Adds key -> value. When key is there already: replaces the value if replace, else leaves it
 * and stores it in *old. Returns 1 (added), 0 (was there) or -ENOMEM. */
static int strmap_put(strmap *m, const char *key, size_t value, int replace, size_t *old)
{
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0)
        return -ENOMEM;
    uint64_t h = str_hash(key);
    strmap_slot *s = strmap_slot_for(m, key, h);
    if (s->key != NULL) {
        if (old != NULL)
            *old = s->value;
        if (replace)
            s->value = value;
        return 0;
    }
    s->key = key;
    s->hash = h;
    s->value = value;
    m->count++;
    return 1;
}

static int strmap_get(const strmap *m, const char *key, size_t *value)
{
    if (m->cap == 0)
        return 0;
    const strmap_slot *s = strmap_slot_for(m, key, str_hash(key));
    if (s->key == NULL)
        return 0;
    *value = s->value;
    return 1;
}

static void strmap_free(strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

/* ---- Text buffer -------------------------------------------------------------------------- */

typedef struct textbuf {
    char *p;
    size_t len, cap;
    int oom;
} textbuf;

static void tb_putn(textbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->cap - b->len <= n) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap - b->len <= n) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *np = realloc(b->p, ncap);
        if (np == NULL) {
            b->oom = 1;
            return;
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void tb_puts(textbuf *b, const char *s)
{
    tb_putn(b, s, strlen(s));
}

static void tb_printf(textbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(textbuf *b, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        tb_putn(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        b->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    tb_putn(b, big, (size_t)n);
    free(big);
}

/* ---- Errors ------------------------------------------------------------------------------- */

void config_errors_init(config_errors *errs)
{
    errs->items = NULL;
    errs->count = errs->cap = 0;
}

void config_errors_free(config_errors *errs)
{
    if (errs == NULL)
        return;
    for (size_t i = 0; i < errs->count; i++) {
        free(errs->items[i].file);
        free(errs->items[i].message);
    }
    free(errs->items);
    config_errors_init(errs);
}

static int errors_vadd(config_errors *errs, const char *file, int line, int col, const char *fmt,
                       va_list ap) __attribute__((format(printf, 5, 0)));
static int errors_vadd(config_errors *errs, const char *file, int line, int col, const char *fmt,
                       va_list ap)
{
    if (errs->count == errs->cap) {
        size_t ncap = errs->cap ? errs->cap * 2 : 8;
        config_error *ni = realloc(errs->items, ncap * sizeof *ni);
        if (ni == NULL)
            return -ENOMEM;
        errs->items = ni;
        errs->cap = ncap;
    }
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    char *msg = n >= 0 ? malloc((size_t)n + 1) : NULL;
    char *f = strdup(file != NULL ? file : "<config>");
    if (msg == NULL || f == NULL) {
        free(msg);
        free(f);
        return -ENOMEM;
    }
    vsnprintf(msg, (size_t)n + 1, fmt, ap);
    errs->items[errs->count++] =
        (config_error){.file = f, .line = line, .col = col, .message = msg};
    return 0;
}

void config_error_add(config_errors *errs, const char *file, int line, int col, const char *fmt,
                      ...)
{
    va_list ap;
    va_start(ap, fmt);
    (void)errors_vadd(errs, file, line, col, fmt, ap);
    va_end(ap);
}

void config_errors_print(const config_errors *errs, void *stdio_file)
{
    FILE *out = stdio_file != NULL ? stdio_file : stderr;
    for (size_t i = 0; i < errs->count; i++) {
        const config_error *e = &errs->items[i];
        fprintf(out, "%s:%d:%d: %s\n", e->file, e->line, e->col, e->message);
    }
}

typedef struct sorted_error {
    config_error e;
    size_t seq;
} sorted_error;

static int sorted_error_cmp(const void *pa, const void *pb)
{
    const sorted_error *a = pa, *b = pb;
    if (a->e.line != b->e.line)
        return a->e.line < b->e.line ? -1 : 1;
    if (a->e.col != b->e.col)
        return a->e.col < b->e.col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* Errors are found in the order of the checks, not of the file; a user reads them top down. */
static void sort_errors_from(config_errors *errs, size_t start)
{
    size_t n = errs->count - start;
    if (n < 2)
        return;
    sorted_error *tmp = malloc(n * sizeof *tmp);
    if (tmp == NULL)
        return; /* unsorted is still correct */
    for (size_t i = 0; i < n; i++)
        tmp[i] = (sorted_error){errs->items[start + i], i};
    qsort(tmp, n, sizeof *tmp, sorted_error_cmp);
    for (size_t i = 0; i < n; i++)
        errs->items[start + i] = tmp[i].e;
    free(tmp);
}

/* Where the errors of one call go, and whether memory ran out on the way. */
typedef struct reporter {
    config_errors *errs;
    const char *file;
    int oom;
} reporter;

static void report(reporter *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void report(reporter *r, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errors_vadd(r->errs, r->file, line, col, fmt, ap) != 0)
        r->oom = 1;
    va_end(ap);
}

static void report_at(reporter *r, const config_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report_at(reporter *r, const config_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errors_vadd(r->errs, r->file, n ? n->line : 0, n ? n->col : 0, fmt, ap) != 0)
        r->oom = 1;
    va_end(ap);
}

/* A user's text quoted in a message, cut short so one long scalar cannot flood the output. */
typedef struct clipbuf {
    char s[72];
} clipbuf;

static const char *clip(clipbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < sizeof b->s)
        return s;
    snprintf(b->s, sizeof b->s, "%.*s...", (int)sizeof b->s - 4, s);
    return b->s;
}

/* ---- Small helpers ------------------------------------------------------------------------ */

static const char *node_kind_phrase(config_node_kind k);

/* A value for "got ...": the scalar quoted (cut short), or "a mapping" / "a sequence". */
static const char *describe(clipbuf *b, const config_node *n)
{
    if (n->kind != CONFIG_SCALAR)
        return node_kind_phrase(n->kind);
    if (strlen(n->scalar) + 3 <= sizeof b->s)
        snprintf(b->s, sizeof b->s, "'%s'", n->scalar);
    else
        snprintf(b->s, sizeof b->s, "'%.*s...'", (int)sizeof b->s - 6, n->scalar);
    return b->s;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static const char *kind_word(sb_kind k)
{
    switch (k) {
    case SB_KIND_TRIGGER:
        return "trigger";
    case SB_KIND_CONNECTOR:
        return "connector";
    case SB_KIND_SCALER:
        return "scaler";
    }
    return "unknown-kind";
}

static const char *node_kind_phrase(config_node_kind k)
{
    switch (k) {
    case CONFIG_SCALAR:
        return "a scalar";
    case CONFIG_SEQUENCE:
        return "a sequence";
    case CONFIG_MAPPING:
        return "a mapping";
    }
    return "nothing";
}

/* YAML's null: an absent node, or a plain empty, ~ or null scalar. */
static int is_null(const config_node *n)
{
    if (n == NULL)
        return 1;
    if (n->kind != CONFIG_SCALAR || n->quoted)
        return 0;
    const char *s = n->scalar;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

static const config_node *map_get(const config_node *m, const char *key)
{
    if (m == NULL || m->kind != CONFIG_MAPPING)
        return NULL;
    for (size_t i = 0; i < m->count; i++)
        if (strcmp(m->keys[i]->scalar, key) == 0)
            return m->items[i];
    return NULL;
}

/* Optimal string alignment distance (a transposition counts 1: "mxa" is 1 from "max"). Long
 * words are not compared: nobody mistypes a 40-letter option into another one. */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXW = 32 };
    size_t la = strlen(a), lb = strlen(b);
    if (la > MAXW || lb > MAXW)
        return SIZE_MAX;
    unsigned char d[MAXW + 1][MAXW + 1];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (unsigned char)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (unsigned char)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            unsigned cost = a[i - 1] != b[j - 1];
            unsigned best = d[i - 1][j] + 1u;
            if (d[i][j - 1] + 1u < best)
                best = d[i][j - 1] + 1u;
            if (d[i - 1][j - 1] + cost < best)
                best = d[i - 1][j - 1] + cost;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1u < best)
                best = d[i - 2][j - 2] + 1u;
            d[i][j] = (unsigned char)best;
        }
    }
    return d[la][lb];
}

/* Keeps the closest candidate within edit distance 2 (the first one on a tie). A distance as
 * long as the word itself would "correct" any short word into anything, so it does not count. */
static void suggest_consider(const char *word, const char *cand, const char **best, size_t *bestd)
{
    size_t d = edit_distance(word, cand);
    if (d <= 2 && d < strlen(word) && d < *bestd) {
        *best = cand;
        *bestd = d;
    }
}

static int parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p))
        return -EINVAL;
    for (const char *q = p; *q; q++)
        if (!is_digit(*q))
            return -EINVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

static int parse_number(const char *s, double *out)
{
    /* strtod skips leading white space and takes "inf"/"nan"; a number in a file does not. */
    if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' ||
        *s == '\f')
        return -EINVAL;
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(d))
        return -EINVAL;
    *out = d;
    return 0;
}

static int parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

int config_parse_duration(const char *text, uint64_t *ms)
{
    if (text == NULL || *text == '\0')
        return -EINVAL;
    const char *p = text;
    uint64_t total = 0;
    int parts = 0;
    while (*p != '\0') {
        if (!is_digit(*p))
            return -EINVAL; /* also rejects a sign, white space and ".5" */
        uint64_t whole = 0;
        for (; is_digit(*p); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (whole > (UINT64_MAX - d) / 10)
                return -EINVAL;
            whole = whole * 10 + d;
        }
        /* Up to 9 fraction digits count; finer than a nanosecond of a day cannot matter. */
        uint64_t frac = 0, scale = 1;
        if (*p == '.') {
            p++;
            if (!is_digit(*p))
                return -EINVAL;
            for (; is_digit(*p); p++) {
                if (scale < 1000000000u) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
            }
        }
        uint64_t unit;
        if (p[0] == 'm' && p[1] == 's') {
            unit = 1;
            p += 2;
        } else if (*p == 's') {
            unit = 1000;
            p++;
        } else if (*p == 'm') {
            unit = 60u * 1000;
            p++;
        } else if (*p == 'h') {
            unit = 3600u * 1000;
            p++;
        } else if (*p == 'd') {
            unit = 86400u * 1000;
            p++;
        } else if (*p == '\0' && parts == 0) {
            unit = 1000; /* the whole text is one bare number: seconds */
        } else {
            return -EINVAL;
        }
        if (whole > UINT64_MAX / unit)
            return -EINVAL;
        uint64_t v = whole * unit;
        uint64_t f = frac * unit / scale; /* frac < 1e9, unit <= 8.64e7: no overflow */
        if (v > UINT64_MAX - f || total > UINT64_MAX - (v + f))
            return -EINVAL;
        total += v + f;
        parts++;
    }
    *ms = total;
    return 0;
}

int config_glob_match(const char *pattern, const char *text)
{
    if (pattern == NULL || text == NULL)
        return 0;
    return fnmatch(pattern, text, 0) == 0;
}

/* ---- YAML -> node tree -------------------------------------------------------------------- */

/* One collection being read: its children so far (a mapping's alternate key, value). */
typedef struct frame {
    config_node *node;
    config_node **kids;
    size_t nkids, cap;
    size_t nodes_before; /* the node count when it started: its weight is the difference */
    const char *anchor;
} frame;

typedef struct anchor_def {
    const config_node *node;
    size_t weight; /* nodes it stands for, counting the aliases inside it */
} anchor_def;

typedef struct builder {
    arena *mem;
    reporter *rep;
    int expand_env;
    frame frames[CONFIG_MAX_DEPTH];
    size_t depth;
    size_t nodes;
    int stop; /* the rest of the input is not followed */
    int documents;
    config_node *root;
    strmap anchor_names; /* name -> index in anchors */
    anchor_def *anchors;
    size_t nanchors, anchors_cap;
    textbuf scratch;
} builder;

static void mark_pos(const yaml_mark_t *m, int *line, int *col)
{
    *line = (int)m->line + 1;
    *col = (int)m->column + 1;
}

static void oom_stop(builder *b)
{
    b->rep->oom = 1;
    b->stop = 1;
}

static config_node *node_new(builder *b, config_node_kind kind, const yaml_mark_t *mark)
{
    config_node *n = arena_alloc(b->mem, sizeof *n);
    if (n == NULL) {
        oom_stop(b);
        return NULL;
    }
    n->kind = kind;
    mark_pos(mark, &n->line, &n->col);
    return n;
}

/* Counts add more nodes; over the limit the file is refused here, before anything of that size
 * is built. */
static int count_nodes(builder *b, size_t add, const yaml_mark_t *mark)
{
    if (add > CONFIG_MAX_NODES || b->nodes + add > CONFIG_MAX_NODES) {
        int line, col;
        mark_pos(mark, &line, &col);
        report(b->rep, line, col,
               "more than %d nodes (counting alias expansions): the rest of the file is not read",
               CONFIG_MAX_NODES);
        b->stop = 1;
        return 0;
    }
    b->nodes += add;
    return 1;
}

static void attach(builder *b, config_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return;
    }
    frame *f = &b->frames[b->depth - 1];
    if (f->nkids == f->cap) {
        size_t ncap = f->cap ? f->cap * 2 : 16;
        config_node **nk = realloc(f->kids, ncap * sizeof *nk);
        if (nk == NULL) {
            oom_stop(b);
            return;
        }
        f->kids = nk;
        f->cap = ncap;
    }
    f->kids[f->nkids++] = n;
}

static void define_anchor(builder *b, const char *name, const config_node *n, size_t weight)
{
    if (b->nanchors == b->anchors_cap) {
        size_t ncap = b->anchors_cap ? b->anchors_cap * 2 : 16;
        anchor_def *na = realloc(b->anchors, ncap * sizeof *na);
        if (na == NULL) {
            oom_stop(b);
            return;
        }
        b->anchors = na;
        b->anchors_cap = ncap;
    }
    /* A redefined anchor replaces the old one for the aliases after it, as YAML says. */
    if (strmap_put(&b->anchor_names, name, b->nanchors, 1, NULL) < 0) {
        oom_stop(b);
        return;
    }
    b->anchors[b->nanchors++] = (anchor_def){n, weight};
}

static int is_env_name_char(char c)
{
    return is_alpha(c) || is_digit(c) || c == '_';
}

/* Expands ${VAR}, ${VAR:-default} (default when VAR is unset or empty) and $$ in one scalar.
 * Any other $ stays as written. Errors point at the scalar. */
static char *expand_env(builder *b, const char *s, size_t len, int line, int col)
{
    if (memchr(s, '$', len) == NULL)
        return arena_strndup(b->mem, s, len);
    textbuf *t = &b->scratch;
    t->len = 0;
    tb_putn(t, "", 0);
    clipbuf cb;
    size_t i = 0;
    while (i < len) {
        if (s[i] != '$' || i + 1 >= len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            tb_putn(t, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            tb_putn(t, "$", 1);
            i += 2;
            continue;
        }
        const char *name = s + i + 2;
        const char *close = memchr(name, '}', len - (i + 2));
        if (close == NULL) {
            report(b->rep, line, col, "unterminated '${' in '%s'", clip(&cb, s));
            break;
        }
        size_t namelen = 0;
        while (name + namelen < close && is_env_name_char(name[namelen]))
            namelen++;
        const char *rest = name + namelen;
        const char *def = NULL;
        if (rest + 2 <= close && rest[0] == ':' && rest[1] == '-')
            def = rest + 2;
        char namebuf[256];
        if (namelen == 0 || is_digit(name[0]) || namelen >= sizeof namebuf ||
            (rest != close && def == NULL)) {
            report(b->rep, line, col,
                   "bad variable reference '%.*s' (use ${NAME} or ${NAME:-default}, or $$ for a "
                   "literal $)",
                   (int)(close - (s + i) + 1), s + i);
        } else {
            memcpy(namebuf, name, namelen);
            namebuf[namelen] = '\0';
            const char *val = getenv(namebuf);
            if (val != NULL && (*val != '\0' || def == NULL))
                tb_puts(t, val);
            else if (def != NULL)
                tb_putn(t, def, (size_t)(close - def));
            else
                report(b->rep, line, col, "environment variable '%s' is not set", namebuf);
        }
        i = (size_t)(close - s) + 1;
    }
    if (t->oom)
        return NULL;
    return arena_strndup(b->mem, t->p, t->len);
}

static void on_scalar(builder *b, const yaml_event_t *ev)
{
    if (!count_nodes(b, 1, &ev->start_mark))
        return;
    config_node *n = node_new(b, CONFIG_SCALAR, &ev->start_mark);
    if (n == NULL)
        return;
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    n->quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE &&
                ev->data.scalar.style != YAML_ANY_SCALAR_STYLE;
    if (memchr(text, '\0', len) != NULL) {
        /* "\0" in a double-quoted scalar: every consumer of the text is C. */
        report_at(b->rep, n, "a NUL character is not allowed in a value");
        len = strlen(text);
    }
    n->scalar = b->expand_env ? expand_env(b, text, len, n->line, n->col)
                              : arena_strndup(b->mem, text, len);
    if (n->scalar == NULL) {
        oom_stop(b);
        return;
    }
    attach(b, n);
    if (ev->data.scalar.anchor != NULL) {
        const char *name = arena_strdup(b->mem, (const char *)ev->data.scalar.anchor);
        if (name == NULL)
            oom_stop(b);
        else
            define_anchor(b, name, n, 1);
    }
}

static void on_start(builder *b, const yaml_event_t *ev, config_node_kind kind,
                     const yaml_char_t *anchor)
{
    if (b->depth >= CONFIG_MAX_DEPTH) {
        int line, col;
        mark_pos(&ev->start_mark, &line, &col);
        report(b->rep, line, col, "nested deeper than %d levels: the rest of the file is not read",
               CONFIG_MAX_DEPTH);
        b->stop = 1;
        return;
    }
    size_t before = b->nodes;
    if (!count_nodes(b, 1, &ev->start_mark))
        return;
    config_node *n = node_new(b, kind, &ev->start_mark);
    if (n == NULL)
        return;
    const char *name = NULL;
    if (anchor != NULL && (name = arena_strdup(b->mem, (const char *)anchor)) == NULL) {
        oom_stop(b);
        return;
    }
    frame *f = &b->frames[b->depth++];
    f->node = n;
    f->nkids = 0;
    f->nodes_before = before;
    f->anchor = name;
}

typedef struct keyref {
    const char *key;
    size_t at;
} keyref;

static int keyref_cmp(const void *pa, const void *pb)
{
    const keyref *a = pa, *b = pb;
    int c = strcmp(a->key, b->key);
    if (c != 0)
        return c;
    return a->at < b->at ? -1 : a->at > b->at;
}

static void report_duplicate_key(builder *b, const config_node *dup, const config_node *first)
{
    clipbuf cb;
    report_at(b->rep, dup, "duplicate key '%s' (first at %d:%d)", clip(&cb, dup->scalar),
              first->line, first->col);
}

/* Every repeated key is reported at its later occurrence. Big mappings are sorted rather than
 * compared pairwise, so a hostile 100,000-key mapping costs n log n. */
static void check_duplicate_keys(builder *b, const config_node *m)
{
    if (m->count < 2)
        return;
    if (m->count <= 16) {
        for (size_t i = 1; i < m->count; i++)
            for (size_t j = 0; j < i; j++)
                if (strcmp(m->keys[i]->scalar, m->keys[j]->scalar) == 0) {
                    report_duplicate_key(b, m->keys[i], m->keys[j]);
                    break;
                }
        return;
    }
    keyref *r = malloc(m->count * sizeof *r);
    if (r == NULL) {
        oom_stop(b);
        return;
    }
    for (size_t i = 0; i < m->count; i++)
        r[i] = (keyref){m->keys[i]->scalar, i};
    qsort(r, m->count, sizeof *r, keyref_cmp);
    size_t first = 0;
    for (size_t i = 1; i < m->count; i++) {
        if (strcmp(r[i].key, r[first].key) == 0)
            report_duplicate_key(b, m->keys[r[i].at], m->keys[r[first].at]);
        else
            first = i;
    }
    free(r);
}

static void finish_mapping(builder *b, frame *f)
{
    config_node *n = f->node;
    size_t npairs = f->nkids / 2, w = 0;
    for (size_t i = 0; i < npairs; i++) {
        config_node *key = f->kids[2 * i];
        if (key->kind != CONFIG_SCALAR) {
            report_at(b->rep, key, "a mapping key must be a scalar, not %s",
                      node_kind_phrase(key->kind));
            continue;
        }
        f->kids[2 * w] = key;
        f->kids[2 * w + 1] = f->kids[2 * i + 1];
        w++;
    }
    n->count = w;
    if (w == 0)
        return;
    n->keys = arena_alloc(b->mem, w * sizeof *n->keys);
    n->items = arena_alloc(b->mem, w * sizeof *n->items);
    if (n->keys == NULL || n->items == NULL) {
        oom_stop(b);
        return;
    }
    for (size_t i = 0; i < w; i++) {
        n->keys[i] = f->kids[2 * i];
        n->items[i] = f->kids[2 * i + 1];
    }
    check_duplicate_keys(b, n);
}

static void finish_sequence(builder *b, frame *f)
{
    config_node *n = f->node;
    n->count = f->nkids;
    if (f->nkids == 0)
        return;
    n->items = arena_alloc(b->mem, f->nkids * sizeof *n->items);
    if (n->items == NULL) {
        oom_stop(b);
        return;
    }
    memcpy(n->items, f->kids, f->nkids * sizeof *n->items);
}

static void on_end(builder *b)
{
    if (b->depth == 0)
        return; /* libyaml pairs start and end; nothing to close */
    frame *f = &b->frames[--b->depth];
    if (f->node->kind == CONFIG_MAPPING)
        finish_mapping(b, f);
    else
        finish_sequence(b, f);
    if (b->stop)
        return;
    attach(b, f->node);
    if (f->anchor != NULL)
        define_anchor(b, f->anchor, f->node, b->nodes - f->nodes_before);
}

/* An alias is a shallow copy of the anchored node at the alias's own position: it shares the
 * children, and counts as many nodes as the anchored subtree holds. */
static void on_alias(builder *b, const yaml_event_t *ev)
{
    size_t idx;
    const char *name = (const char *)ev->data.alias.anchor;
    if (!strmap_get(&b->anchor_names, name, &idx)) {
        int line, col;
        mark_pos(&ev->start_mark, &line, &col);
        clipbuf cb;
        report(b->rep, line, col, "unknown anchor '%s' (an alias must follow its anchor)",
               clip(&cb, name));
        b->stop = 1;
        return;
    }
    const anchor_def *d = &b->anchors[idx];
    if (!count_nodes(b, d->weight, &ev->start_mark))
        return;
    config_node *n = node_new(b, d->node->kind, &ev->start_mark);
    if (n == NULL)
        return;
    n->scalar = d->node->scalar;
    n->quoted = d->node->quoted;
    n->keys = d->node->keys;
    n->items = d->node->items;
    n->count = d->node->count;
    attach(b, n);
}

static void report_yaml_error(builder *b, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR) {
        oom_stop(b);
        return;
    }
    const char *problem = p->problem != NULL ? p->problem : "invalid YAML";
    int line = 1, col = 1;
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors (bad UTF-8, control characters) carry a byte offset, not a mark. */
        size_t end = p->problem_offset < len ? p->problem_offset : len;
        for (size_t i = 0; i < end; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        report(b->rep, line, col, "%s", problem);
        return;
    }
    mark_pos(&p->problem_mark, &line, &col);
    if (p->context != NULL)
        report(b->rep, line, col, "%s (%s at %d:%d)", problem, p->context,
               (int)p->context_mark.line + 1, (int)p->context_mark.column + 1);
    else
        report(b->rep, line, col, "%s", problem);
}

static void builder_release(builder *b)
{
    for (size_t i = 0; i < CONFIG_MAX_DEPTH; i++)
        free(b->frames[i].kids);
    strmap_free(&b->anchor_names);
    free(b->anchors);
    free(b->scratch.p);
}

/* Reads one YAML text into b->root (NULL for an empty text). Returns 0, or -1 when the text
 * could not be followed to its end: syntax errors, limits, out of memory. */
static int build_tree(builder *b, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        oom_stop(b);
        builder_release(b);
        return -1;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int done = 0;
    while (!done && !b->stop) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            report_yaml_error(b, &p, text, len);
            b->stop = 1;
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (b->documents++ > 0) {
                int line, col;
                mark_pos(&ev.start_mark, &line, &col);
                report(b->rep, line, col, "a pipeline file holds one YAML document, not several");
                b->stop = 1;
            }
            break;
        case YAML_SCALAR_EVENT:
            on_scalar(b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            on_start(b, &ev, CONFIG_SEQUENCE, ev.data.sequence_start.anchor);
            break;
        case YAML_MAPPING_START_EVENT:
            on_start(b, &ev, CONFIG_MAPPING, ev.data.mapping_start.anchor);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            on_end(b);
            break;
        case YAML_ALIAS_EVENT:
            on_alias(b, &ev);
            break;
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        default:
            break;
        }
        if (b->rep->oom)
            b->stop = 1;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    builder_release(b);
    return done && !b->stop ? 0 : -1;
}

/* ---- Phase 1: structure ------------------------------------------------------------------- */

/* What phase 1 knows about a component beyond the public struct. */
typedef struct comp_side {
    const char *label; /* "connector 'c1'", or "connector #3" without a usable id */
    const config_node *id_node;
    const config_node **from_nodes, **to_nodes;
    size_t *from_idx, *to_idx; /* resolved component index, or NO_COMP */
    int has_to;                /* connectors: the file gives `to` (it may be left out when
                                * another connector names this one in its `from`) */
} comp_side;

#define NO_COMP SIZE_MAX

typedef struct config_internal {
    arena mem;
    strmap ids; /* id -> index in components (the first one with that id) */
} config_internal;

typedef struct checker {
    config *cfg;
    arena *mem;
    reporter *rep;
    comp_side *side;
    strmap *ids;
} checker;

static int valid_id(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!is_alpha(*s) && !is_digit(*s) && *s != '_' && *s != '.' && *s != '-')
            return 0;
    return 1;
}

static char *resolve_plugin_path(checker *c, const char *p)
{
    const char *file = c->cfg->path;
    const char *slash = strrchr(file, '/');
    if (p[0] == '/' || slash == NULL)
        return arena_strdup(c->mem, p);
    while (p[0] == '.' && p[1] == '/') /* "./x" next to the file reads better as "dir/x" */
        p += 2;
    size_t dirlen = (size_t)(slash - file);
    textbuf t = {0};
    tb_putn(&t, file, dirlen == 0 ? 1 : dirlen); /* "/x.yaml" lives in "/" */
    if (dirlen != 0)
        tb_putn(&t, "/", 1);
    tb_puts(&t, *p ? p : ".");
    char *out = t.oom ? NULL : arena_strndup(c->mem, t.p, t.len);
    free(t.p);
    return out;
}

static void check_plugins(checker *c, const config_node *v)
{
    if (is_null(v))
        return;
    clipbuf cb;
    if (v->kind != CONFIG_MAPPING) {
        report_at(c->rep, v, "'plugins' must be a mapping like { path: [./plugins] }, got %s",
                  node_kind_phrase(v->kind));
        return;
    }
    const config_node *path = NULL;
    for (size_t i = 0; i < v->count; i++) {
        if (strcmp(v->keys[i]->scalar, "path") == 0)
            path = path ? path : v->items[i];
        else
            report_at(c->rep, v->keys[i], "unknown key '%s' in plugins (expected path)",
                      clip(&cb, v->keys[i]->scalar));
    }
    if (is_null(path))
        return;
    const config_node *const *items = &path;
    size_t n = 1;
    if (path->kind == CONFIG_SEQUENCE) {
        items = (const config_node *const *)path->items;
        n = path->count;
    } else if (path->kind != CONFIG_SCALAR) {
        report_at(c->rep, path, "plugins.path must be a folder or a list of folders, got %s",
                  node_kind_phrase(path->kind));
        return;
    }
    char **out = arena_alloc(c->mem, (n ? n : 1) * sizeof *out);
    if (out == NULL) {
        c->rep->oom = 1;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const config_node *it = items[i];
        if (it->kind != CONFIG_SCALAR || it->scalar[0] == '\0') {
            report_at(c->rep, it, "plugins.path entries must be folder names, got %s",
                      it->kind == CONFIG_SCALAR ? "an empty string" : node_kind_phrase(it->kind));
            continue;
        }
        if ((out[k] = resolve_plugin_path(c, it->scalar)) == NULL) {
            c->rep->oom = 1;
            return;
        }
        k++;
    }
    c->cfg->plugin_paths = out;
    c->cfg->nplugin_paths = k;
}

static void check_log(checker *c, const config_node *v)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const sb_log_level levels[] = {SB_LOG_ERROR, SB_LOG_WARN, SB_LOG_INFO, SB_LOG_DEBUG};
    if (is_null(v))
        return;
    clipbuf cb;
    if (v->kind != CONFIG_MAPPING) {
        report_at(c->rep, v, "'log' must be a mapping like { level: info }, got %s",
                  node_kind_phrase(v->kind));
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const config_node *val = v->items[i];
        if (strcmp(v->keys[i]->scalar, "level") != 0) {
            report_at(c->rep, v->keys[i], "unknown key '%s' in log (expected level)",
                      clip(&cb, v->keys[i]->scalar));
            continue;
        }
        if (is_null(val))
            continue;
        int found = 0;
        for (size_t l = 0; l < 4 && val->kind == CONFIG_SCALAR; l++) {
            if (strcmp(val->scalar, names[l]) == 0) {
                c->cfg->log_level = levels[l];
                c->cfg->log_level_set = 1;
                found = 1;
            }
        }
        if (!found)
            report_at(c->rep, val, "log.level must be error, warn, info or debug, got %s",
                      describe(&cb, val));
    }
}

/* A connector's from or to: one id or a list of ids. `from` is required; `to` may be left out
 * (resolve_edges then checks that another connector takes this one's decisions). Returns -1
 * when out of memory. */
static int load_refs(checker *c, const comp_side *s, const config_node *m, const char *what,
                     char ***names, const config_node ***nodes, size_t *n)
{
    const config_node *v = map_get(m, what);
    if (is_null(v)) {
        if (strcmp(what, "from") == 0)
            report_at(c->rep, m,
                      "%s: missing 'from' (a trigger or connector id, or a list of them)",
                      s->label);
        return 0;
    }
    if (v->kind == CONFIG_MAPPING) {
        report_at(c->rep, v, "%s: '%s' must be an id or a list of ids, got a mapping", s->label,
                  what);
        return 0;
    }
    const config_node *const *items = &v;
    size_t count = 1;
    if (v->kind == CONFIG_SEQUENCE) {
        items = (const config_node *const *)v->items;
        count = v->count;
        if (count == 0) {
            report_at(c->rep, v, "%s: '%s' is an empty list", s->label, what);
            return 0;
        }
    }
    *names = arena_alloc(c->mem, count * sizeof **names);
    *nodes = arena_alloc(c->mem, count * sizeof **nodes);
    if (*names == NULL || *nodes == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        if (items[i]->kind != CONFIG_SCALAR) {
            report_at(c->rep, items[i], "%s: each entry of '%s' must be an id, got %s", s->label,
                      what, node_kind_phrase(items[i]->kind));
            continue;
        }
        (*names)[k] = items[i]->scalar;
        (*nodes)[k] = items[i];
        k++;
    }
    *n = k;
    return 0;
}

static int load_match(checker *c, config_component *comp, const comp_side *s)
{
    const config_node *v = map_get(comp->node, "match");
    if (is_null(v))
        return 0;
    if (v->kind != CONFIG_MAPPING) {
        report_at(c->rep, v, "%s: match must be a mapping of label: value, got %s", s->label,
                  node_kind_phrase(v->kind));
        return 0;
    }
    if (v->count == 0)
        return 0;
    comp->match_keys = arena_alloc(c->mem, v->count * sizeof *comp->match_keys);
    comp->match_values = arena_alloc(c->mem, v->count * sizeof *comp->match_values);
    if (comp->match_keys == NULL || comp->match_values == NULL)
        return -1;
    clipbuf cb;
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i]->kind != CONFIG_SCALAR) {
            report_at(c->rep, v->items[i], "%s: match value for '%s' must be a scalar, got %s",
                      s->label, clip(&cb, v->keys[i]->scalar), node_kind_phrase(v->items[i]->kind));
            continue;
        }
        comp->match_keys[comp->nmatch] = v->keys[i]->scalar;
        comp->match_values[comp->nmatch] = v->items[i]->scalar;
        comp->nmatch++;
    }
    return 0;
}

/* min and max are the host's, the same for every scaler type. */
static void load_bounds(checker *c, config_component *comp, const comp_side *s)
{
    clipbuf cb;
    int min_ok = 1;
    comp->min = 0;
    const config_node *v = map_get(comp->node, "min");
    if (!is_null(v)) {
        int64_t x;
        if (v->kind != CONFIG_SCALAR || parse_int64(v->scalar, &x) != 0) {
            report_at(c->rep, v, "%s: min must be an integer, got %s", s->label, describe(&cb, v));
            min_ok = 0;
        } else if (x < 0) {
            report_at(c->rep, v, "%s: min must be >= 0, got %" PRId64, s->label, x);
            min_ok = 0;
        } else {
            comp->min = x;
        }
    }
    v = map_get(comp->node, "max");
    if (is_null(v)) {
        report_at(c->rep, comp->node, "%s: missing required option 'max'", s->label);
        return;
    }
    int64_t x;
    if (v->kind != CONFIG_SCALAR || parse_int64(v->scalar, &x) != 0) {
        report_at(c->rep, v, "%s: max must be an integer, got %s", s->label, describe(&cb, v));
    } else if (x < 1) {
        report_at(c->rep, v, "%s: max must be >= 1, got %" PRId64, s->label, x);
    } else if (min_ok && x < comp->min) {
        report_at(c->rep, v, "%s: max (%" PRId64 ") is less than min (%" PRId64 ")", s->label, x,
                  comp->min);
    } else {
        comp->max = x;
    }
}

static int load_component(checker *c, config_component *comp, comp_side *s, sb_kind kind,
                          const config_node *m, size_t ordinal)
{
    clipbuf cb;
    comp->kind = kind;
    comp->node = m;
    comp->line = m->line;
    comp->col = m->col;
    const config_node *id = map_get(m, "id");
    if (is_null(id))
        report_at(c->rep, m, "%s #%zu has no id", kind_word(kind), ordinal);
    else if (id->kind != CONFIG_SCALAR)
        report_at(c->rep, id, "%s #%zu: id must be a scalar, got %s", kind_word(kind), ordinal,
                  node_kind_phrase(id->kind));
    else if (!valid_id(id->scalar))
        report_at(c->rep, id, "invalid id '%s' (use letters, digits, '_', '.' and '-')",
                  clip(&cb, id->scalar));
    else {
        comp->id = id->scalar;
        s->id_node = id;
    }
    textbuf t = {0};
    if (comp->id != NULL)
        tb_printf(&t, "%s '%s'", kind_word(kind), comp->id);
    else
        tb_printf(&t, "%s #%zu", kind_word(kind), ordinal);
    s->label = t.oom ? NULL : arena_strndup(c->mem, t.p, t.len);
    free(t.p);
    if (s->label == NULL)
        return -1;

    const config_node *type = map_get(m, "type");
    if (is_null(type))
        report_at(c->rep, m, "%s: missing type", s->label);
    else if (type->kind != CONFIG_SCALAR)
        report_at(c->rep, type, "%s: type must be a plugin name, got %s", s->label,
                  node_kind_phrase(type->kind));
    else
        comp->type = type->scalar;

    if (kind == SB_KIND_CONNECTOR) {
        if (load_refs(c, s, m, "from", &comp->from, &s->from_nodes, &comp->nfrom) != 0 ||
            load_refs(c, s, m, "to", &comp->to, &s->to_nodes, &comp->nto) != 0 ||
            load_match(c, comp, s) != 0)
            return -1;
        s->has_to = !is_null(map_get(m, "to"));
        s->from_idx = arena_alloc(c->mem, (comp->nfrom + 1) * sizeof *s->from_idx);
        s->to_idx = arena_alloc(c->mem, (comp->nto + 1) * sizeof *s->to_idx);
        if (s->from_idx == NULL || s->to_idx == NULL)
            return -1;
    } else if (kind == SB_KIND_SCALER) {
        load_bounds(c, comp, s);
    }
    return 0;
}

static void index_ids(checker *c)
{
    config *cfg = c->cfg;
    clipbuf cb;
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        const config_component *comp = &cfg->components[i];
        if (comp->id == NULL)
            continue;
        size_t first;
        int r = strmap_put(c->ids, comp->id, i, 0, &first);
        if (r < 0) {
            c->rep->oom = 1;
            return;
        }
        if (r == 0) {
            const config_node *fn = c->side[first].id_node;
            /* An alias repeats the anchored id node itself: point at the component then. */
            const config_node *at = c->side[i].id_node == fn ? comp->node : c->side[i].id_node;
            report_at(c->rep, at, "duplicate id '%s' (first used at %d:%d)", clip(&cb, comp->id),
                      fn->line, fn->col);
        }
    }
}

/* Resolves every connector's from and to; marks with stamps (one per connector and direction)
 * catch an id listed twice without comparing lists pairwise. A connector in `from` feeds its
 * decisions to this one; a connector without `to` must feed another (check_leads_somewhere). */
static void resolve_edges(checker *c)
{
    config *cfg = c->cfg;
    size_t *stamp = calloc(cfg->ncomponents + 1, sizeof *stamp);
    if (stamp == NULL) {
        c->rep->oom = 1;
        return;
    }
    clipbuf cb;
    for (size_t ci = 0; ci < cfg->ncomponents; ci++) {
        const config_component *conn = &cfg->components[ci];
        comp_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            size_t t = NO_COMP;
            const char *name = conn->from[j];
            s->from_idx[j] = NO_COMP;
            if (!strmap_get(c->ids, name, &t))
                report_at(c->rep, s->from_nodes[j],
                          "%s: from '%s' is not a trigger or connector in this file", s->label,
                          clip(&cb, name));
            else if (cfg->components[t].kind == SB_KIND_SCALER)
                report_at(c->rep, s->from_nodes[j],
                          "%s: from '%s' is not a trigger or connector in this file (it is a %s)",
                          s->label, clip(&cb, name), kind_word(cfg->components[t].kind));
            else if (stamp[t] == 2 * ci + 1)
                report_at(c->rep, s->from_nodes[j], "%s: from lists '%s' twice", s->label,
                          clip(&cb, name));
            else {
                stamp[t] = 2 * ci + 1;
                s->from_idx[j] = t;
            }
        }
        for (size_t j = 0; j < conn->nto; j++) {
            size_t t = NO_COMP;
            const char *name = conn->to[j];
            s->to_idx[j] = NO_COMP;
            if (!strmap_get(c->ids, name, &t))
                report_at(c->rep, s->to_nodes[j],
                          "%s: to '%s' is not a scaler or trigger in this file", s->label,
                          clip(&cb, name));
            else if (cfg->components[t].kind == SB_KIND_CONNECTOR)
                report_at(c->rep, s->to_nodes[j],
                          "%s: to '%s' is not a scaler or trigger in this file (it is a "
                          "connector)",
                          s->label, clip(&cb, name));
            else if (stamp[t] == 2 * ci + 2)
                report_at(c->rep, s->to_nodes[j], "%s: to lists '%s' twice", s->label,
                          clip(&cb, name));
            else {
                stamp[t] = 2 * ci + 2;
                s->to_idx[j] = t;
            }
        }
    }
    free(stamp);
}

/* A connector without `to` must hand its decisions to another connector (one that names it in
 * its `from`); otherwise nothing would ever act on them. Feeding only itself does not count. */
static void check_leads_somewhere(checker *c)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents;
    int needed = 0;
    for (size_t ci = 0; ci < n && !needed; ci++)
        needed = cfg->components[ci].kind == SB_KIND_CONNECTOR && !c->side[ci].has_to;
    if (!needed)
        return;
    unsigned char *fed = calloc(n, 1);
    if (fed == NULL) {
        c->rep->oom = 1;
        return;
    }
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            size_t t = c->side[ci].from_idx[j];
            if (t != NO_COMP && t != ci && cfg->components[t].kind == SB_KIND_CONNECTOR)
                fed[t] = 1;
        }
    }
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        if (conn->kind == SB_KIND_CONNECTOR && !c->side[ci].has_to && !fed[ci])
            report_at(c->rep, conn->node,
                      "%s leads nowhere: give it `to` or name it in another connector's `from`",
                      c->side[ci].label);
    }
    free(fed);
}

/* The run graph: trigger -> connector and connector -> connector (the connector's from), and
 * connector -> trigger (its to, when it names a trigger). Edges in compressed rows; each
 * remembers the scalar that made it, for the error's position. */
typedef struct run_graph {
    size_t *first; /* ncomponents + 1 offsets */
    size_t *to;
    const config_node **at;
} run_graph;

static int build_run_graph(checker *c, run_graph *g, size_t *nedges)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents, e = 0;
    g->first = calloc(n + 2, sizeof *g->first);
    if (g->first == NULL)
        return -1;
    int any_back = 0; /* an edge into a trigger or a connector: only those can close a cycle */
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        const comp_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++)
            if (s->from_idx[j] != NO_COMP) {
                g->first[s->from_idx[j] + 1]++;
                if (cfg->components[s->from_idx[j]].kind == SB_KIND_CONNECTOR)
                    any_back = 1;
            }
        for (size_t j = 0; j < conn->nto; j++)
            if (s->to_idx[j] != NO_COMP && cfg->components[s->to_idx[j]].kind == SB_KIND_TRIGGER) {
                g->first[ci + 1]++;
                any_back = 1;
            }
    }
    *nedges = 0;
    if (!any_back)
        return 0; /* no connector runs a trigger or feeds a connector: no cycle is possible */
    for (size_t i = 1; i <= n; i++)
        g->first[i] += g->first[i - 1];
    e = g->first[n];
    g->to = malloc((e ? e : 1) * sizeof *g->to);
    g->at = malloc((e ? e : 1) * sizeof *g->at);
    size_t *fill = malloc((n + 1) * sizeof *fill);
    if (g->to == NULL || g->at == NULL || fill == NULL) {
        free(fill);
        return -1;
    }
    memcpy(fill, g->first, (n + 1) * sizeof *fill);
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        const comp_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            size_t t = s->from_idx[j];
            if (t != NO_COMP) {
                g->to[fill[t]] = ci;
                g->at[fill[t]++] = s->from_nodes[j];
            }
        }
        for (size_t j = 0; j < conn->nto; j++) {
            size_t t = s->to_idx[j];
            if (t != NO_COMP && cfg->components[t].kind == SB_KIND_TRIGGER) {
                g->to[fill[ci]] = t;
                g->at[fill[ci]++] = s->to_nodes[j];
            }
        }
    }
    free(fill);
    *nedges = e;
    return 0;
}

/* "trigger cycle: a -> c -> b -> c2 -> a", or "connector cycle: a -> b -> a" when no trigger is
 * on it; a very long cycle keeps its ends and elides the middle. */
static void report_cycle(checker *c, const size_t *stack, size_t from, size_t top,
                         const config_node *at)
{
    const config *cfg = c->cfg;
    textbuf t = {0};
    size_t len = top - from + 1;
    int through_trigger = 0;
    for (size_t k = from; k <= top; k++)
        through_trigger |= cfg->components[stack[k]].kind == SB_KIND_TRIGGER;
    for (size_t k = from; k <= top; k++) {
        if (len > 16 && k == from + 8) {
            tb_puts(&t, "... -> ");
            k = top - 7;
        }
        /* A component whose id is missing (already reported) still has its edges. */
        const char *id = cfg->components[stack[k]].id;
        tb_puts(&t, id ? id : "(no id)");
        tb_puts(&t, " -> ");
    }
    const char *first = cfg->components[stack[from]].id;
    tb_puts(&t, first ? first : "(no id)");
    if (t.oom)
        c->rep->oom = 1;
    else
        report_at(c->rep, at, "%s cycle: %s", through_trigger ? "trigger" : "connector", t.p);
    free(t.p);
}

/* Depth-first search without recursion (a chain can be 30,000 components long); every edge
 * back into the current path is a cycle, reported at the scalar that closes it. */
static void check_cycles(checker *c)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents, nedges = 0;
    run_graph g = {0};
    if (build_run_graph(c, &g, &nedges) != 0) {
        c->rep->oom = 1;
        goto out;
    }
    if (nedges == 0)
        goto out;
    unsigned char *color = calloc(n, 1); /* 0 unseen, 1 on the path, 2 done */
    size_t *next = malloc(n * sizeof *next);
    size_t *stack = malloc(n * sizeof *stack);
    size_t *pos = malloc(n * sizeof *pos);
    if (color == NULL || next == NULL || stack == NULL || pos == NULL) {
        c->rep->oom = 1;
    } else {
        for (size_t root = 0; root < n; root++) {
            /* Triggers first (they come first in the array), then connectors a trigger does not
             * reach: a cycle of connectors alone has no trigger to start from. */
            if (color[root] != 0 || cfg->components[root].kind == SB_KIND_SCALER)
                continue;
            size_t top = 0;
            stack[0] = root;
            pos[root] = 0;
            color[root] = 1;
            next[root] = g.first[root];
            for (;;) {
                size_t u = stack[top];
                if (next[u] < g.first[u + 1]) {
                    size_t e = next[u]++;
                    size_t v = g.to[e];
                    if (color[v] == 0) {
                        color[v] = 1;
                        next[v] = g.first[v];
                        stack[++top] = v;
                        pos[v] = top;
                    } else if (color[v] == 1) {
                        report_cycle(c, stack, pos[v], top, g.at[e]);
                    }
                    continue;
                }
                color[u] = 2;
                if (top == 0)
                    break;
                top--;
            }
        }
    }
    free(color);
    free(next);
    free(stack);
    free(pos);
out:
    free(g.first);
    free(g.to);
    free(g.at);
}

static size_t count_entries(const config_node *sec)
{
    size_t n = 0;
    if (sec != NULL && sec->kind == CONFIG_SEQUENCE)
        for (size_t i = 0; i < sec->count; i++)
            n += sec->items[i]->kind == CONFIG_MAPPING;
    return n;
}

static int load_section(checker *c, const config_node *sec, const char *name, sb_kind kind,
                        size_t *next)
{
    if (is_null(sec))
        return 0;
    if (sec->kind != CONFIG_SEQUENCE) {
        report_at(c->rep, sec, "'%s' must be a sequence of mappings, got %s", name,
                  node_kind_phrase(sec->kind));
        return 0;
    }
    for (size_t i = 0; i < sec->count; i++) {
        const config_node *item = sec->items[i];
        if (item->kind != CONFIG_MAPPING) {
            report_at(c->rep, item, "each entry of '%s' must be a mapping, got %s", name,
                      node_kind_phrase(item->kind));
            continue;
        }
        if (load_component(c, &c->cfg->components[*next], &c->side[*next], kind, item, i + 1) != 0)
            return -1;
        (*next)++;
    }
    return 0;
}

static void check_root(checker *c, const config_node *root)
{
    static const char *const top[] = {"plugins", "log", "triggers", "connectors", "scalers"};
    enum { NTOP = 5 };
    const config_node *val[NTOP] = {0};
    if (is_null(root))
        return; /* an empty file is an empty pipeline */
    if (root->kind != CONFIG_MAPPING) {
        report_at(c->rep, root,
                  "the top level must be a mapping (plugins, log, triggers, connectors, scalers), "
                  "got %s",
                  node_kind_phrase(root->kind));
        return;
    }
    clipbuf cb;
    for (size_t i = 0; i < root->count; i++) {
        const char *key = root->keys[i]->scalar;
        size_t k = 0;
        while (k < NTOP && strcmp(key, top[k]) != 0)
            k++;
        if (k < NTOP) {
            if (val[k] == NULL) /* a repeated key was reported while reading */
                val[k] = root->items[i];
            continue;
        }
        const char *best = NULL;
        size_t bestd = SIZE_MAX;
        for (size_t j = 0; j < NTOP; j++)
            suggest_consider(key, top[j], &best, &bestd);
        if (best != NULL)
            report_at(c->rep, root->keys[i], "unknown top-level key '%s' (did you mean '%s'?)",
                      clip(&cb, key), best);
        else
            report_at(c->rep, root->keys[i],
                      "unknown top-level key '%s' (expected plugins, log, triggers, connectors "
                      "or scalers)",
                      clip(&cb, key));
    }
    check_plugins(c, val[0]);
    check_log(c, val[1]);

    size_t total = count_entries(val[2]) + count_entries(val[3]) + count_entries(val[4]);
    if (total > 0) {
        c->cfg->components = arena_alloc(c->mem, total * sizeof *c->cfg->components);
        c->side = arena_alloc(c->mem, total * sizeof *c->side);
        if (c->cfg->components == NULL || c->side == NULL) {
            c->rep->oom = 1;
            return;
        }
    }
    size_t next = 0;
    if (load_section(c, val[2], "triggers", SB_KIND_TRIGGER, &next) != 0 ||
        load_section(c, val[3], "connectors", SB_KIND_CONNECTOR, &next) != 0 ||
        load_section(c, val[4], "scalers", SB_KIND_SCALER, &next) != 0) {
        c->rep->oom = 1;
        return;
    }
    c->cfg->ncomponents = next;
    index_ids(c);
    if (c->rep->oom)
        return;
    resolve_edges(c);
    if (c->rep->oom)
        return;
    check_leads_somewhere(c);
    if (c->rep->oom)
        return;
    check_cycles(c);
}

static config *parse_fail_oom(config *cfg, reporter *rep)
{
    config_free(cfg);
    report(rep, 0, 0, "out of memory");
    return NULL;
}

config *config_parse_string(const char *text, size_t len, const char *name, config_errors *errs)
{
    size_t before = errs->count;
    reporter rep = {errs, name != NULL ? name : "<string>", 0};
    if (len > CONFIG_MAX_FILE_BYTES) {
        report(&rep, 0, 0, "file is larger than %u bytes: not read", CONFIG_MAX_FILE_BYTES);
        return NULL;
    }
    if (text == NULL)
        text = ""; /* libyaml asserts on a NULL input */
    config *cfg = calloc(1, sizeof *cfg);
    config_internal *in = calloc(1, sizeof *in);
    if (cfg == NULL || in == NULL) {
        free(cfg);
        free(in);
        return parse_fail_oom(NULL, &rep);
    }
    cfg->arena = in;
    cfg->log_level = SB_LOG_INFO;
    if ((cfg->path = arena_strdup(&in->mem, rep.file)) == NULL)
        return parse_fail_oom(cfg, &rep);

    builder b = {.mem = &in->mem, .rep = &rep, .expand_env = 1};
    int rc = build_tree(&b, text, len);
    if (rep.oom)
        return parse_fail_oom(cfg, &rep);
    if (rc != 0) {
        sort_errors_from(errs, before);
        config_free(cfg);
        return NULL;
    }
    cfg->root = b.root;

    checker c = {.cfg = cfg, .mem = &in->mem, .rep = &rep, .ids = &in->ids};
    check_root(&c, cfg->root);
    if (rep.oom)
        return parse_fail_oom(cfg, &rep);
    sort_errors_from(errs, before);
    return cfg;
}

config *config_parse_file(const char *path, config_errors *errs)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        config_error_add(errs, path, 0, 0, "cannot read: %s", strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > CONFIG_MAX_FILE_BYTES) {
        close(fd);
        config_error_add(errs, path, 0, 0, "file is larger than %u bytes: not read",
                         CONFIG_MAX_FILE_BYTES);
        return NULL;
    }
    /* Read at most one byte past the limit: a pipe or a growing file is refused the same way. */
    size_t cap = S_ISREG(st.st_mode) && st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    size_t len = 0;
    char *buf = malloc(cap);
    int err = buf == NULL ? ENOMEM : 0;
    while (err == 0 && len <= CONFIG_MAX_FILE_BYTES) {
        if (len == cap) {
            size_t ncap = cap * 2 > (size_t)CONFIG_MAX_FILE_BYTES + 1
                              ? (size_t)CONFIG_MAX_FILE_BYTES + 1
                              : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                err = ENOMEM;
                break;
            }
            buf = nb;
            cap = ncap;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            err = errno;
        else if (r == 0)
            break;
        else
            len += (size_t)r;
    }
    close(fd);
    config *cfg = NULL;
    if (err != 0)
        config_error_add(errs, path, 0, 0, "cannot read: %s", strerror(err));
    else if (len > CONFIG_MAX_FILE_BYTES)
        config_error_add(errs, path, 0, 0, "file is larger than %u bytes: not read",
                         CONFIG_MAX_FILE_BYTES);
    else
        cfg = config_parse_string(buf, len, path, errs);
    free(buf);
    return cfg;
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ncomponents; i++)
        config_component_arena_free(cfg->components[i].arena);
    config_internal *in = cfg->arena;
    if (in != NULL) {
        strmap_free(&in->ids);
        arena_release(&in->mem);
        free(in);
    }
    free(cfg);
}

const config_component *config_find(const config *cfg, const char *id)
{
    if (cfg == NULL || id == NULL || cfg->arena == NULL)
        return NULL;
    const config_internal *in = cfg->arena;
    size_t idx;
    if (!strmap_get(&in->ids, id, &idx))
        return NULL;
    return &cfg->components[idx];
}

/* ---- Phase 2: options against the plugin's table ----------------------------------------- */

static const char *const common_trigger[] = {"id", "type", NULL};
static const char *const common_connector[] = {"id", "type", "from", "to", "match", NULL};
static const char *const common_scaler[] = {"id", "type", "min", "max", NULL};

static const char *const *common_keys(sb_kind k)
{
    return k == SB_KIND_CONNECTOR ? common_connector
           : k == SB_KIND_SCALER  ? common_scaler
                                  : common_trigger;
}

static int is_common(sb_kind k, const char *key)
{
    for (const char *const *p = common_keys(k); *p; p++)
        if (strcmp(*p, key) == 0)
            return 1;
    return 0;
}

static const char *type_phrase(sb_option_type t)
{
    switch (t) {
    case SB_OPT_STRING:
        return "a string";
    case SB_OPT_INT:
        return "an integer";
    case SB_OPT_NUMBER:
        return "a number";
    case SB_OPT_BOOL:
        return "true or false";
    case SB_OPT_DURATION:
        return "a duration like 500ms, 10s or 1m30s";
    case SB_OPT_LIST:
        return "a list of strings";
    case SB_OPT_MAP:
        return "a mapping of strings";
    }
    return "a value";
}

#define MISFIT_WHY 200

/* Why a value does not fit its option: the text, and the node to point at. */
typedef struct misfit {
    char why[MISFIT_WHY];
    const config_node *at;
} misfit;

/* A LIST or MAP default read once per validation, not once per component using it. */
typedef struct default_tree {
    const sb_option_spec *spec;
    const config_node *root;
    int ok;
    char why[MISFIT_WHY];
} default_tree;

typedef struct validator {
    reporter *rep;
    config_plugin_lookup lookup;
    void *ctx;
    const config_node **given; /* per options row: the value the file gave */
    size_t given_cap;
    textbuf fp; /* fingerprint scratch, reused */
    default_tree *defaults;
    size_t ndefaults, defaults_cap;
    arena default_mem; /* the default trees */
} validator;

static int scalar_misfit(misfit *mf, const config_node *n, sb_option_type type, const char *extra)
{
    clipbuf cb;
    snprintf(mf->why, sizeof mf->why, "expected %s, got %s%s", type_phrase(type), describe(&cb, n),
             extra);
    mf->at = n;
    return 0;
}

/* Copies of a list's or map's strings, NULL-terminated, in the component's arena. */
static const char **string_array(arena *a, size_t n)
{
    return arena_alloc(a, (n + 1) * sizeof(const char *));
}

/* Converts n to the option's type into out, copying every string into a (the component's
 * arena). Returns 1, 0 with mf filled when the value does not fit, or -1 out of memory. */
static int convert_value(arena *a, const sb_option_spec *spec, const config_node *n, sb_value *out,
                         misfit *mf)
{
    memset(out, 0, sizeof *out);
    mf->at = n;
    if (spec->type == SB_OPT_LIST || spec->type == SB_OPT_MAP) {
        int is_list = spec->type == SB_OPT_LIST;
        if (is_list && n->kind == CONFIG_SCALAR) {
            const char **items = string_array(a, 1); /* one scalar: a one-item list */
            if (items == NULL || (items[0] = arena_strdup(a, n->scalar)) == NULL)
                return -1;
            out->items = items;
            out->count = 1;
            out->is_set = 1;
            return 1;
        }
        if (n->kind != (is_list ? CONFIG_SEQUENCE : CONFIG_MAPPING)) {
            snprintf(mf->why, sizeof mf->why, "expected %s, got %s", type_phrase(spec->type),
                     node_kind_phrase(n->kind));
            return 0;
        }
        const char **items = string_array(a, n->count);
        const char **values = is_list ? NULL : string_array(a, n->count);
        if (items == NULL || (!is_list && values == NULL))
            return -1;
        for (size_t i = 0; i < n->count; i++) {
            const config_node *it = n->items[i];
            if (it->kind != CONFIG_SCALAR) {
                snprintf(mf->why, sizeof mf->why, "expected %s, got %s in it",
                         type_phrase(spec->type), node_kind_phrase(it->kind));
                mf->at = it;
                return 0;
            }
            if ((items[i] = arena_strdup(a, is_list ? it->scalar : n->keys[i]->scalar)) == NULL)
                return -1;
            if (!is_list && (values[i] = arena_strdup(a, it->scalar)) == NULL)
                return -1;
        }
        out->items = items;
        out->values = values;
        out->count = n->count;
        out->is_set = 1;
        return 1;
    }

    if (n->kind != CONFIG_SCALAR) {
        snprintf(mf->why, sizeof mf->why, "expected %s, got %s", type_phrase(spec->type),
                 node_kind_phrase(n->kind));
        return 0;
    }
    const char *s = n->scalar;
    int rc;
    switch (spec->type) {
    case SB_OPT_INT:
        rc = parse_int64(s, &out->integer);
        if (rc != 0)
            return scalar_misfit(mf, n, spec->type, rc == -ERANGE ? " (out of range)" : "");
        out->number = (double)out->integer;
        break;
    case SB_OPT_NUMBER:
        if (parse_number(s, &out->number) != 0)
            return scalar_misfit(mf, n, spec->type, "");
        break;
    case SB_OPT_BOOL:
        if (parse_bool(s, &out->integer) != 0)
            return scalar_misfit(mf, n, spec->type, "");
        break;
    case SB_OPT_DURATION:
        if (config_parse_duration(s, &out->duration_ms) != 0)
            return scalar_misfit(mf, n, spec->type, "");
        break;
    default: /* SB_OPT_STRING, and a type this host does not know: kept as text */
        break;
    }
    if ((out->str = arena_strdup(a, s)) == NULL)
        return -1;
    out->is_set = 1;
    return 1;
}

/* Reads a LIST or MAP default with the same YAML reader as the file (without ${VAR}), once. */
static const default_tree *default_tree_for(validator *v, const sb_option_spec *spec)
{
    for (size_t i = 0; i < v->ndefaults; i++)
        if (v->defaults[i].spec == spec)
            return &v->defaults[i];
    if (v->ndefaults == v->defaults_cap) {
        size_t ncap = v->defaults_cap ? v->defaults_cap * 2 : 8;
        default_tree *nd = realloc(v->defaults, ncap * sizeof *nd);
        if (nd == NULL)
            return NULL;
        v->defaults = nd;
        v->defaults_cap = ncap;
    }
    default_tree *d = &v->defaults[v->ndefaults];
    memset(d, 0, sizeof *d);
    d->spec = spec;
    config_errors errs;
    config_errors_init(&errs);
    reporter rep = {&errs, "default", 0};
    builder b = {.mem = &v->default_mem, .rep = &rep, .expand_env = 0};
    int rc = build_tree(&b, spec->default_value, strlen(spec->default_value));
    if (!rep.oom) {
        d->ok = rc == 0 && errs.count == 0;
        d->root = d->ok ? b.root : NULL;
        if (!d->ok)
            snprintf(d->why, sizeof d->why, "not valid YAML: %s",
                     errs.count ? errs.items[0].message : "unreadable");
    }
    config_errors_free(&errs);
    if (rep.oom)
        return NULL;
    v->ndefaults++;
    return d;
}

/* A default is written in YAML scalar form and converted like the same text in the file;
 * a LIST or MAP default ("[a, b]", "{}") is read as YAML, so it means what it would there. */
static int convert_default(validator *v, arena *a, const sb_option_spec *spec, sb_value *out,
                           misfit *mf)
{
    int rc;
    if (spec->type != SB_OPT_LIST && spec->type != SB_OPT_MAP) {
        config_node n = {.kind = CONFIG_SCALAR, .line = 0, .col = 0};
        if ((n.scalar = arena_strdup(a, spec->default_value)) == NULL)
            return -1;
        rc = convert_value(a, spec, &n, out, mf);
    } else {
        const default_tree *d = default_tree_for(v, spec);
        if (d == NULL)
            return -1;
        if (!d->ok) {
            snprintf(mf->why, sizeof mf->why, "%s", d->why);
            rc = 0;
        } else if (is_null(d->root)) {
            memset(out, 0, sizeof *out); /* "" or "~": set, and empty */
            out->items = string_array(a, 0);
            out->values = spec->type == SB_OPT_MAP ? string_array(a, 0) : NULL;
            out->is_set = 1;
            rc = out->items == NULL || (spec->type == SB_OPT_MAP && out->values == NULL) ? -1 : 1;
        } else {
            rc = convert_value(a, spec, d->root, out, mf);
        }
    }
    mf->at = NULL;
    return rc;
}

static void fp_string(textbuf *t, const char *s)
{
    tb_putn(t, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            tb_putn(t, "\\", 1);
            tb_putn(t, s, 1);
        } else if (ch < 0x20) {
            tb_printf(t, "\\x%02x", ch);
        } else {
            tb_putn(t, s, 1);
        }
    }
    tb_putn(t, "\"", 1);
}

typedef struct strpair {
    const char *k, *v;
} strpair;

static int strpair_cmp(const void *pa, const void *pb)
{
    const strpair *a = pa, *b = pb;
    int c = strcmp(a->k, b->k);
    return c != 0 ? c : strcmp(a->v ? a->v : "", b->v ? b->v : "");
}

/* A set of strings (keys, or keys with values) in sorted order, so that reordering the file's
 * list or mapping does not make a component look changed. Returns -1 out of memory. */
static int fp_sorted(textbuf *t, const char *const *k, const char *const *v, size_t n)
{
    strpair *p = malloc((n ? n : 1) * sizeof *p);
    if (p == NULL)
        return -1;
    for (size_t i = 0; i < n; i++)
        p[i] = (strpair){k[i], v ? v[i] : NULL};
    qsort(p, n, sizeof *p, strpair_cmp);
    tb_puts(t, v ? "{" : "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            tb_putn(t, ",", 1);
        fp_string(t, p[i].k);
        if (v) {
            tb_putn(t, ":", 1);
            fp_string(t, p[i].v);
        }
    }
    tb_puts(t, v ? "}" : "]");
    free(p);
    return 0;
}

/* Canonical text from the parsed values, not the file's spelling: "10s" and "10000ms", or a
 * default written out, give the same fingerprint. A LIST keeps its order (an argv's order
 * matters); a MAP is a set. It covers the plugin's own options only: min, max, from, to and
 * match are the host's, and a reload applies their changes in place. */
static char *make_fingerprint(validator *v, arena *a, const config_component *c)
{
    textbuf *t = &v->fp;
    t->len = 0;
    const sb_plugin_descriptor *d = c->plugin;
    tb_printf(t, "%s %s %s\n", kind_word(c->kind), c->type, d->version ? d->version : "-");
    for (size_t i = 0; i < c->nvalues; i++) {
        const sb_option_spec *spec = &d->options[i];
        const sb_value *val = &c->values[i];
        if (!val->is_set)
            continue;
        tb_printf(t, "%s=", spec->name);
        switch (spec->type) {
        case SB_OPT_INT:
        case SB_OPT_BOOL:
            tb_printf(t, "%" PRId64, val->integer);
            break;
        case SB_OPT_NUMBER:
            tb_printf(t, "%.17g", val->number);
            break;
        case SB_OPT_DURATION:
            tb_printf(t, "%" PRIu64 "ms", val->duration_ms);
            break;
        case SB_OPT_LIST:
            tb_putn(t, "[", 1);
            for (size_t k = 0; k < val->count; k++) {
                if (k)
                    tb_putn(t, ",", 1);
                fp_string(t, val->items[k]);
            }
            tb_putn(t, "]", 1);
            break;
        case SB_OPT_MAP:
            if (fp_sorted(t, val->items, val->values, val->count) != 0)
                return NULL;
            break;
        default:
            fp_string(t, val->str ? val->str : "");
            break;
        }
        tb_putn(t, "\n", 1);
    }
    if (t->oom)
        return NULL;
    return arena_strndup(a, t->p, t->len);
}

/* Forgets what an earlier validation filled, so validating twice is safe. */
static void drop_validation(config_component *comp)
{
    config_component_arena_free(comp->arena);
    comp->arena = NULL;
    comp->plugin = NULL;
    comp->values = NULL;
    comp->nvalues = 0;
    comp->fingerprint = NULL;
}

static void unknown_option(validator *v, const config_component *comp,
                           const sb_plugin_descriptor *d, size_t nrows, const config_node *key)
{
    clipbuf cb;
    const char *best = NULL;
    size_t bestd = SIZE_MAX;
    for (size_t r = 0; r < nrows; r++)
        suggest_consider(key->scalar, d->options[r].name, &best, &bestd);
    for (const char *const *p = common_keys(comp->kind); *p; p++)
        suggest_consider(key->scalar, *p, &best, &bestd);
    if (best != NULL)
        report_at(v->rep, key, "unknown option '%s' for %s (did you mean '%s'?)",
                  clip(&cb, key->scalar), d->type, best);
    else
        report_at(v->rep, key, "unknown option '%s' for %s", clip(&cb, key->scalar), d->type);
}

/* Returns -1 when out of memory. */
static int validate_component(validator *v, config_component *comp)
{
    drop_validation(comp);
    if (comp->type == NULL)
        return 0; /* phase 1 reported it */
    clipbuf cb;
    const config_node *tnode = map_get(comp->node, "type");
    const sb_plugin_descriptor *d = v->lookup(v->ctx, comp->type);
    if (d == NULL) {
        report_at(v->rep, tnode, "unknown plugin type '%s'", clip(&cb, comp->type));
        return 0;
    }
    if (d->kind != comp->kind) {
        report_at(v->rep, tnode, "'%s' is a %s plugin, not a %s", clip(&cb, comp->type),
                  kind_word(d->kind), kind_word(comp->kind));
        return 0;
    }
    size_t nrows = 0;
    while (d->options != NULL && d->options[nrows].name != NULL)
        nrows++;
    if (nrows > v->given_cap) {
        const config_node **ng = realloc(v->given, nrows * sizeof *ng);
        if (ng == NULL)
            return -1;
        v->given = ng;
        v->given_cap = nrows;
    }
    if (nrows > 0)
        memset(v->given, 0, nrows * sizeof *v->given);
    arena *a = calloc(1, sizeof *a);
    if (a == NULL)
        return -1;
    comp->arena = a;
    sb_value *vals = arena_alloc(a, (nrows ? nrows : 1) * sizeof *vals);
    if (vals == NULL)
        return -1;
    comp->plugin = d;
    comp->values = vals;
    comp->nvalues = nrows;

    int ok = 1;
    const config_node *m = comp->node;
    for (size_t i = 0; i < m->count; i++) {
        const char *key = m->keys[i]->scalar;
        if (is_common(comp->kind, key))
            continue;
        size_t r = 0;
        while (r < nrows && strcmp(d->options[r].name, key) != 0)
            r++;
        if (r == nrows) {
            unknown_option(v, comp, d, nrows, m->keys[i]);
            ok = 0;
        } else if (v->given[r] == NULL) { /* a repeated key was reported while reading */
            v->given[r] = m->items[i];
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        const sb_option_spec *spec = &d->options[r];
        const config_node *n = v->given[r];
        misfit mf = {.at = NULL};
        int rc = 1;
        if (!is_null(n)) {
            rc = convert_value(a, spec, n, &vals[r], &mf);
            if (rc == 0)
                report_at(v->rep, mf.at, "option '%s' of %s: %s", spec->name, d->type, mf.why);
        } else if (spec->required) {
            report_at(v->rep, m, "%s '%s': missing required option '%s'", d->type,
                      comp->id ? clip(&cb, comp->id) : "(no id)", spec->name);
            rc = 0;
        } else if (spec->default_value != NULL) {
            rc = convert_default(v, a, spec, &vals[r], &mf);
            if (rc == 0) /* the plugin's bug, but the user needs to hear of it */
                report_at(v->rep, tnode, "plugin %s: the default of option '%s' is invalid: %s",
                          d->type, spec->name, mf.why);
        }
        if (rc < 0)
            return -1;
        ok &= rc;
    }
    if (ok && (comp->fingerprint = make_fingerprint(v, a, comp)) == NULL)
        return -1;
    return 0;
}

int config_validate_plugins(config *cfg, config_plugin_lookup lookup, void *ctx,
                            config_errors *errs)
{
    if (cfg == NULL || lookup == NULL)
        return -EINVAL;
    size_t before = errs->count;
    reporter rep = {errs, cfg->path, 0};
    validator v = {.rep = &rep, .lookup = lookup, .ctx = ctx};
    int rc = 0;
    for (size_t i = 0; i < cfg->ncomponents && rc == 0; i++)
        if (validate_component(&v, &cfg->components[i]) != 0 || rep.oom)
            rc = -ENOMEM;
    free(v.given);
    free(v.fp.p);
    free(v.defaults);
    arena_release(&v.default_mem);
    if (rc != 0) {
        report(&rep, 0, 0, "out of memory");
        return rc;
    }
    sort_errors_from(errs, before);
    return errs->count > before ? -EINVAL : 0;
}
