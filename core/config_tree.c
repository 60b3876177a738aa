/*
 * config_tree.c - YAML text -> config_node tree (the first stage of config.c).
 *
 * libyaml's event parser feeds a small builder that makes our own config_node tree: every node
 * keeps its 1-based line:col, `${VAR}` is expanded per scalar after libyaml has read it (so marks
 * point at what the user wrote), and the hostile-file limits (depth, node count including alias
 * expansions) are enforced while the events stream in, so a bomb is never materialised. Aliases
 * share the anchored subtree instead of copying it: memory stays proportional to the file and
 * only the count grows.
 *
 * Merge keys (`<<: *base`, `<<: [*a, *b]`, YAML 1.1) are resolved when a mapping ends: the
 * mapping's own keys win, then the merged mappings' keys in the order given; the merged pairs
 * take the place of the `<<` key and keep the positions where they were written.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "strmap.h"
#include "textbuf.h"

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
    config_reporter *rep;
    int expand_env;
    const char *file; /* every node's file: NULL for the main file */
    frame frames[CONFIG_MAX_DEPTH];
    size_t depth;
    size_t nodes; /* counting the files read before this one */
    int stop; /* the rest of the input is not followed */
    int documents;
    config_node *root;
    strmap anchors; /* name -> anchor_def (in mem) */
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
    n->file = b->file;
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
        config_report(
            b->rep, line, col,
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
    anchor_def *d = arena_alloc(b->mem, sizeof *d);
    /* A redefined anchor replaces the old one for the aliases after it, as YAML says. */
    if (d == NULL || strmap_put(&b->anchors, name, d) != 0) {
        oom_stop(b);
        return;
    }
    *d = (anchor_def){n, weight};
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
        config_report_at(b->rep, n, "a NUL character is not allowed in a value");
        len = strlen(text);
    }
    n->scalar = b->expand_env
                    ? config_expand_env(b->mem, &b->scratch, b->rep, text, len, n->line, n->col)
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
        config_report(b->rep, line, col,
                      "nested deeper than %d levels: the rest of the file is not read",
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
    config_clipbuf cb;
    config_report_at(b->rep, dup, "duplicate key '%s' (first at %d:%d)",
                     config_clip(&cb, dup->scalar), first->line, first->col);
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

/* A plain `<<` key (a quoted '<<' is an ordinary key). */
static int is_merge_key(const config_node *key)
{
    return !key->quoted && strcmp(key->scalar, "<<") == 0;
}

/* Checks a `<<` value: a mapping, or a sequence of mappings; reports anything else. Returns how
 * many pairs it can bring at most. */
static size_t merge_check(builder *b, const config_node *v)
{
    config_clipbuf cb;
    if (v->kind == CONFIG_MAPPING)
        return v->count;
    if (v->kind != CONFIG_SEQUENCE) {
        config_report_at(b->rep, v,
                         "the merge key '<<' takes a mapping or a list of mappings (like "
                         "<<: *base), got %s",
                         config_describe(&cb, v));
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i]->kind == CONFIG_MAPPING)
            n += v->items[i]->count;
        else
            config_report_at(b->rep, v->items[i],
                             "the merge key '<<' takes a mapping or a list of mappings (like "
                             "<<: [*a, *b]), got %s in the list",
                             config_describe(&cb, v->items[i]));
    }
    return n;
}

/* Replaces m's `<<` pairs by the pairs of the mappings they name, leaving out every key the
 * mapping has itself or an earlier merged mapping gave. The merged mappings are complete
 * already (they ended before this one), so their own merges are resolved. */
static void apply_merges(builder *b, config_node *m)
{
    size_t cap = 0;
    for (size_t i = 0; i < m->count; i++)
        cap += is_merge_key(m->keys[i]) ? merge_check(b, m->items[i]) : 1;
    config_node **keys = arena_alloc(b->mem, (cap ? cap : 1) * sizeof *keys);
    config_node **items = arena_alloc(b->mem, (cap ? cap : 1) * sizeof *items);
    strmap taken = {0};
    int oom = keys == NULL || items == NULL;
    for (size_t i = 0; i < m->count && !oom; i++)
        if (!is_merge_key(m->keys[i]) && strmap_put(&taken, m->keys[i]->scalar, m->keys[i]) != 0)
            oom = 1;
    size_t w = 0;
    for (size_t i = 0; i < m->count && !oom; i++) {
        if (!is_merge_key(m->keys[i])) {
            keys[w] = m->keys[i];
            items[w++] = m->items[i];
            continue;
        }
        const config_node *v = m->items[i];
        const config_node *const *srcs = &v;
        size_t ns = 1;
        if (v->kind == CONFIG_SEQUENCE) {
            srcs = (const config_node *const *)v->items;
            ns = v->count;
        } else if (v->kind != CONFIG_MAPPING) {
            ns = 0;
        }
        for (size_t s = 0; s < ns && !oom; s++) {
            const config_node *src = srcs[s];
            if (src->kind != CONFIG_MAPPING)
                continue;
            for (size_t k = 0; k < src->count && !oom; k++) {
                config_node *key = src->keys[k];
                if (strmap_get(&taken, key->scalar) != NULL)
                    continue;
                if (strmap_put(&taken, key->scalar, key) != 0) {
                    oom = 1;
                    break;
                }
                keys[w] = key;
                items[w++] = src->items[k];
            }
        }
    }
    strmap_free(&taken);
    if (oom) {
        oom_stop(b);
        return;
    }
    m->keys = keys;
    m->items = items;
    m->count = w;
}

static void finish_mapping(builder *b, frame *f)
{
    config_node *n = f->node;
    size_t npairs = f->nkids / 2, w = 0;
    int merges = 0;
    for (size_t i = 0; i < npairs; i++) {
        config_node *key = f->kids[2 * i];
        if (key->kind != CONFIG_SCALAR) {
            config_report_at(b->rep, key, "a mapping key must be a scalar, not %s",
                             config_node_kind_phrase(key->kind));
            continue;
        }
        merges |= is_merge_key(key);
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
    if (merges)
        apply_merges(b, n);
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
    const char *name = (const char *)ev->data.alias.anchor;
    const anchor_def *d = strmap_get(&b->anchors, name);
    if (d == NULL) {
        int line, col;
        mark_pos(&ev->start_mark, &line, &col);
        config_clipbuf cb;
        config_report(b->rep, line, col, "unknown anchor '%s' (an alias must follow its anchor)",
                      config_clip(&cb, name));
        b->stop = 1;
        return;
    }
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

/* Whether the lines first..last (0-based) of text hold a `${`. */
static int lines_hold_variable(const char *text, size_t len, size_t first, size_t last)
{
    size_t line = 0;
    for (size_t i = 0; i + 1 < len && line <= last; i++) {
        if (text[i] == '\n')
            line++;
        else if (line >= first && text[i] == '$' && text[i + 1] == '{')
            return 1;
    }
    return 0;
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
        config_report(b->rep, line, col, "%s", problem);
        return;
    }
    mark_pos(&p->problem_mark, &line, &col);
    /* Inside { } or [ ], a plain ${VAR} ends at its '{': the fix is quotes, so say so. */
    const char *hint = "";
    if (p->context != NULL && strstr(p->context, "flow") != NULL &&
        p->context_mark.line <= p->problem_mark.line &&
        lines_hold_variable(text, len, p->context_mark.line, p->problem_mark.line))
        hint = "; inside { } or [ ], quote a ${VAR}: max: \"${MAX}\"";
    if (p->context != NULL)
        config_report(b->rep, line, col, "%s (%s at %d:%d)%s", problem, p->context,
                      (int)p->context_mark.line + 1, (int)p->context_mark.column + 1, hint);
    else
        config_report(b->rep, line, col, "%s", problem);
}

static void builder_release(builder *b)
{
    for (size_t i = 0; i < CONFIG_MAX_DEPTH; i++)
        free(b->frames[i].kids);
    strmap_free(&b->anchors);
    textbuf_free(&b->scratch);
}

int config_tree_build(arena *mem, config_reporter *rep, int expand_env, const char *file,
                      size_t *nodes, const char *text, size_t len, config_node **root)
{
    *root = NULL;
    builder *b = calloc(1, sizeof *b);
    if (b == NULL) {
        rep->oom = 1;
        return -1;
    }
    b->mem = mem;
    b->rep = rep;
    b->expand_env = expand_env;
    b->file = file;
    b->nodes = nodes != NULL ? *nodes : 0;
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) {
        rep->oom = 1;
        free(b);
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
                config_report(b->rep, line, col,
                              "a pipeline file holds one YAML document, not several");
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
    int rc = done && !b->stop ? 0 : -1;
    if (rc == 0)
        *root = b->root;
    if (nodes != NULL)
        *nodes = b->nodes;
    builder_release(b);
    free(b);
    return rc;
}
