/*
 * config_options.c - phase 2 of a pipeline file (a stage of config.c): each component's options
 * against its plugin's options table, once the plugins are loaded. Unknown options, types that
 * do not fit, required options and defaults (read like the same text in the file) are checked
 * for every component; each value is converted into an sb_value in the component's own arena,
 * with a fingerprint of the plugin options so a reload can tell what changed.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "option_more.h"
#include "textbuf.h"

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
    case SB_OPT_OBJECTS:
        return "a mapping of names to objects";
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
    config_reporter *rep;
    const config_catalog *cat;
    const config *cfg;
    const config_node **given; /* per options row: the value the file gave */
    size_t given_cap;
    textbuf fp; /* fingerprint scratch, reused */
    default_tree *defaults;
    size_t ndefaults, defaults_cap;
    arena default_mem; /* the default trees */
} validator;

static int scalar_misfit(misfit *mf, const config_node *n, sb_option_type type, const char *extra)
{
    config_clipbuf cb;
    snprintf(mf->why, sizeof mf->why, "expected %s, got %s%s", type_phrase(type),
             config_describe(&cb, n), extra);
    mf->at = n;
    return 0;
}

/* A scalar given for a LIST: one word is a one-item list, but words with white space between
 * them are a command line written as one string, which no exec can start. The message shows
 * the list it probably means ("sleep 1000" -> ["sleep", "1000"]). Returns 0 (mf filled). */
static int spaced_list_misfit(misfit *mf, const config_node *n)
{
    textbuf t = {0};
    textbuf_putn(&t, "[", 1);
    const char *p = n->scalar;
    for (int first = 1;; first = 0) {
        p += strspn(p, " \t\r\n");
        if (*p == '\0')
            break;
        size_t len = strcspn(p, " \t\r\n");
        textbuf_puts(&t, first ? "\"" : ", \"");
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '"' || p[i] == '\\')
                textbuf_putn(&t, "\\", 1);
            textbuf_putn(&t, p + i, 1);
        }
        textbuf_putn(&t, "\"", 1);
        p += len;
    }
    textbuf_putn(&t, "]", 1);
    config_clipbuf cb, lb;
    snprintf(mf->why, sizeof mf->why,
             "expected a list of strings, got %s: write %s (a single string with spaces is "
             "one item)",
             config_describe(&cb, n), t.oom ? "a list like [a, b]" : config_clip(&lb, t.p));
    textbuf_free(&t);
    mf->at = n;
    return 0;
}

static int has_space(const char *s)
{
    return strpbrk(s, " \t\r\n") != NULL;
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
            if (has_space(n->scalar))
                return spaced_list_misfit(mf, n);
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
                     config_node_kind_phrase(n->kind));
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
                         type_phrase(spec->type), config_node_kind_phrase(it->kind));
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
                 config_node_kind_phrase(n->kind));
        return 0;
    }
    const char *s = n->scalar;
    int rc;
    switch (spec->type) {
    case SB_OPT_INT:
        rc = config_parse_int64(s, &out->integer);
        if (rc != 0)
            return scalar_misfit(mf, n, spec->type, rc == -ERANGE ? " (out of range)" : "");
        out->number = (double)out->integer;
        break;
    case SB_OPT_NUMBER:
        if (config_parse_number(s, &out->number) != 0)
            return scalar_misfit(mf, n, spec->type, "");
        break;
    case SB_OPT_BOOL:
        if (config_parse_bool(s, &out->integer) != 0)
            return scalar_misfit(mf, n, spec->type, "");
        break;
    case SB_OPT_DURATION:
        rc = config_parse_duration(s, &out->duration_ms);
        if (rc != 0)
            return scalar_misfit(
                mf, n, spec->type,
                rc == -ERANGE ? " (out of range: at most " CONFIG_MAX_DURATION_TEXT ")" : "");
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
    config_reporter rep = {&errs, "default", 0};
    config_node *root = NULL;
    int rc = config_tree_build(&v->default_mem, &rep, 0, NULL, NULL, spec->default_value,
                               strlen(spec->default_value), &root);
    if (!rep.oom) {
        d->ok = rc == 0 && errs.count == 0;
        d->root = d->ok ? root : NULL;
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
    if (spec->type == SB_OPT_OBJECTS) {
        /* A map of objects defaults to none: its objects' own defaults apply per object. */
        memset(out, 0, sizeof *out);
        out->items = string_array(a, 0);
        out->is_set = 1;
        mf->at = NULL;
        return out->items ? 1 : -1;
    }
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
        } else if (config_is_null(d->root)) {
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
    textbuf_putn(t, "\"", 1);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            textbuf_putn(t, "\\", 1);
            textbuf_putn(t, s, 1);
        } else if (ch < 0x20) {
            textbuf_printf(t, "\\x%02x", ch);
        } else {
            textbuf_putn(t, s, 1);
        }
    }
    textbuf_putn(t, "\"", 1);
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
    textbuf_puts(t, v ? "{" : "[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            textbuf_putn(t, ",", 1);
        fp_string(t, p[i].k);
        if (v) {
            textbuf_putn(t, ":", 1);
            fp_string(t, p[i].v);
        }
    }
    textbuf_puts(t, v ? "}" : "]");
    free(p);
    return 0;
}

static int fp_values(textbuf *t, const sb_plugin_descriptor *d, const char *opath,
                     const sb_option_spec *table, const sb_value *vals, size_t n);

/* A map of objects: its names in sorted order, each with its object's values. */
static int fp_objects(textbuf *t, const sb_plugin_descriptor *d, const char *opath,
                      const sb_value *val)
{
    const sb_option_spec *fields = option_more_fields(d, opath);
    size_t nrows = 0;
    while (fields && fields[nrows].name)
        nrows++;
    size_t *order = malloc((val->count ? val->count : 1) * sizeof *order);
    if (order == NULL)
        return -1;
    for (size_t i = 0; i < val->count; i++)
        order[i] = i;
    for (size_t i = 1; i < val->count; i++) /* insertion sort by name: maps are small */
        for (size_t k = i; k > 0 && strcmp(val->items[order[k - 1]], val->items[order[k]]) > 0; k--) {
            size_t x = order[k];
            order[k] = order[k - 1];
            order[k - 1] = x;
        }
    textbuf_putn(t, "{", 1);
    int rc = 0;
    for (size_t i = 0; i < val->count && rc == 0; i++) {
        fp_string(t, val->items[order[i]]);
        textbuf_putn(t, ":{", 2);
        rc = fp_values(t, d, opath, fields, val->objects[order[i]], nrows);
        textbuf_putn(t, "}", 1);
    }
    textbuf_putn(t, "}", 1);
    free(order);
    return rc;
}

/* Each set value as name=canonical text, one per line. opath: the table's option path. */
static int fp_values(textbuf *t, const sb_plugin_descriptor *d, const char *opath,
                     const sb_option_spec *table, const sb_value *vals, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const sb_option_spec *spec = &table[i];
        const sb_value *val = &vals[i];
        if (!val->is_set)
            continue;
        textbuf_printf(t, "%s=", spec->name);
        switch (spec->type) {
        case SB_OPT_INT:
        case SB_OPT_BOOL:
            textbuf_printf(t, "%" PRId64, val->integer);
            break;
        case SB_OPT_NUMBER:
            textbuf_printf(t, "%.17g", val->number);
            break;
        case SB_OPT_DURATION:
            textbuf_printf(t, "%" PRIu64 "ms", val->duration_ms);
            break;
        case SB_OPT_LIST:
            textbuf_putn(t, "[", 1);
            for (size_t k = 0; k < val->count; k++) {
                if (k)
                    textbuf_putn(t, ",", 1);
                fp_string(t, val->items[k]);
            }
            textbuf_putn(t, "]", 1);
            break;
        case SB_OPT_MAP:
            if (fp_sorted(t, val->items, val->values, val->count) != 0)
                return -1;
            break;
        case SB_OPT_OBJECTS: {
            char sub[256];
            option_more_path(sub, sizeof sub, opath, spec->name);
            if (fp_objects(t, d, sub, val) != 0)
                return -1;
            break;
        }
        default:
            fp_string(t, val->str ? val->str : "");
            break;
        }
        textbuf_putn(t, "\n", 1);
    }
    return 0;
}

/* Canonical text from the parsed values, not the file's spelling: "10s" and "10000ms", or a
 * default written out, give the same fingerprint. A LIST keeps its order (an argv's order
 * matters); a MAP and a map of objects are sets. It covers the plugin's own options only: min,
 * max, from, to and match are the host's, and a reload applies their changes in place. */
static char *make_fingerprint(validator *v, arena *a, const config_component *c)
{
    textbuf *t = &v->fp;
    t->len = 0;
    const sb_plugin_descriptor *d = c->plugin;
    textbuf_printf(t, "%s %s %s\n", config_kind_word(c->kind), c->type,
                   d->version ? d->version : "-");
    if (fp_values(t, d, "", d->options, c->values, c->nvalues) != 0 || t->oom)
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

/* "trigger 'a'", or "trigger at 4:5" for one without a usable id (reported in phase 1). */
static const char *component_label(char *buf, size_t n, const config_component *comp)
{
    config_clipbuf cb;
    if (comp->id != NULL)
        snprintf(buf, n, "%s '%s'", config_kind_word(comp->kind), config_clip(&cb, comp->id));
    else
        snprintf(buf, n, "%s at %d:%d", config_kind_word(comp->kind), comp->line, comp->col);
    return buf;
}

/* Option names for a message, cut short after LIST_MAX characters. */
typedef struct option_list {
    textbuf text;
    size_t shown, total;
} option_list;

static void option_list_add(option_list *l, const char *name)
{
    enum { LIST_MAX = 160 };
    l->total++;
    if (l->text.len >= LIST_MAX)
        return;
    textbuf_puts(&l->text, l->shown++ ? ", " : "");
    textbuf_puts(&l->text, name);
}

/* Names the option that comes closest, or else every option the component takes (the plugin's,
 * then the host's), so the user never has to look them up to fix a typo. */
static void unknown_option(validator *v, const config_component *comp,
                           const sb_plugin_descriptor *d, size_t nrows, const config_node *key)
{
    config_clipbuf cb;
    char label[128];
    component_label(label, sizeof label, comp);
    config_suggestion sg;
    config_suggest_start(&sg, key->scalar);
    for (size_t r = 0; r < nrows; r++)
        config_suggest(&sg, d->options[r].name);
    for (const char *const *p = common_keys(comp->kind); *p; p++)
        config_suggest(&sg, *p);
    if (config_suggested(&sg) != NULL) {
        config_report_at(v->rep, key, "unknown option '%s' for %s (did you mean '%s'?) in %s",
                         config_clip(&cb, key->scalar), d->type, config_suggested(&sg), label);
        return;
    }
    option_list list = {{0}, 0, 0};
    for (size_t r = 0; r < nrows; r++)
        option_list_add(&list, d->options[r].name);
    for (const char *const *p = common_keys(comp->kind) + 2; *p; p++) /* past id and type */
        option_list_add(&list, *p);
    if (list.text.oom)
        v->rep->oom = 1;
    else if (list.total == 0)
        config_report_at(v->rep, key, "unknown option '%s' for %s in %s (it takes no options)",
                         config_clip(&cb, key->scalar), d->type, label);
    else if (list.shown < list.total)
        config_report_at(v->rep, key,
                         "unknown option '%s' for %s in %s (its options: %s, ...: see scalebus "
                         "plugins --describe %s)",
                         config_clip(&cb, key->scalar), d->type, label, list.text.p, d->type);
    else
        config_report_at(v->rep, key, "unknown option '%s' for %s in %s (its options: %s)",
                         config_clip(&cb, key->scalar), d->type, label, list.text.p);
    textbuf_free(&list.text);
}

/* "unknown plugin type 'dirct' (did you mean 'direct'?)": the closest loaded type of the same
 * kind; and when plugins.path folders could not be used, that their plugins were not loaded. */
static void unknown_type(validator *v, const config_component *comp, const config_node *at)
{
    config_clipbuf cb;
    const config_catalog *cat = v->cat;
    config_suggestion sg;
    config_suggest_start(&sg, comp->type);
    for (size_t i = 0; i < cat->ntypes; i++) {
        const sb_plugin_descriptor *d = cat->types[i] ? cat->lookup(cat->ctx, cat->types[i]) : NULL;
        if (d != NULL && d->kind == comp->kind)
            config_suggest(&sg, cat->types[i]);
    }
    textbuf t = {0};
    textbuf_printf(&t, "unknown plugin type '%s'", config_clip(&cb, comp->type));
    if (config_suggested(&sg) != NULL)
        textbuf_printf(&t, " (did you mean '%s'?)", config_suggested(&sg));
    const config_store *st = v->cfg->arena;
    size_t refused = 0, first = 0;
    for (size_t i = 0; st->path_refused != NULL && i < v->cfg->nplugin_paths; i++)
        if (st->path_refused[i] != NULL && refused++ == 0)
            first = i;
    if (refused == 1) {
        const config_node *pn = st->path_nodes[first];
        textbuf_printf(&t,
                       "; the plugins.path folder %s (%d:%d) was refused, so none of its "
                       "plugins were loaded",
                       v->cfg->plugin_paths[first], pn->line, pn->col);
    } else if (refused > 1) {
        textbuf_printf(&t,
                       "; %zu plugins.path folders were refused (the first at %d:%d), so none "
                       "of their plugins were loaded",
                       refused, st->path_nodes[first]->line, st->path_nodes[first]->col);
    }
    if (t.oom)
        v->rep->oom = 1;
    else
        config_report_at(v->rep, at, "%s", t.p);
    textbuf_free(&t);
}

/* ---- maps of objects (SB_OPT_OBJECTS) ------------------------------------------------------ */

static int convert_objects(validator *v, arena *a, const sb_plugin_descriptor *d, const char *where,
                           const char *opath, const config_node *n, sb_value *out);

/* "unknown option 'heath' in services.web of router (did you mean 'health'?)". */
static void unknown_nested(validator *v, const sb_plugin_descriptor *d, const char *where,
                           const sb_option_spec *table, size_t nrows, const config_node *key)
{
    config_clipbuf cb;
    config_suggestion sg;
    config_suggest_start(&sg, key->scalar);
    for (size_t r = 0; r < nrows; r++)
        config_suggest(&sg, table[r].name);
    if (config_suggested(&sg) != NULL) {
        config_report_at(v->rep, key, "unknown option '%s' in %s of %s (did you mean '%s'?)",
                         config_clip(&cb, key->scalar), where, d->type, config_suggested(&sg));
        return;
    }
    option_list list = {{0}, 0, 0};
    for (size_t r = 0; r < nrows; r++)
        option_list_add(&list, table[r].name);
    if (list.text.oom)
        v->rep->oom = 1;
    else
        config_report_at(v->rep, key, "unknown option '%s' in %s of %s (its options: %s%s)",
                         config_clip(&cb, key->scalar), where, d->type, list.text.p,
                         list.shown < list.total ? ", ..." : "");
    textbuf_free(&list.text);
}

/* One object: its mapping against the nested table, each problem reported at its own place
 * (file:line:col). `at` is the object's name in the file. Returns 1 when everything fits, 0 when
 * something was reported, -1 out of memory. */
static int convert_object(validator *v, arena *a, const sb_plugin_descriptor *d, const char *where,
                          const char *opath, const sb_option_spec *table, const config_node *n,
                          const config_node *at, const sb_value **out)
{
    size_t nrows = 0;
    while (table[nrows].name != NULL)
        nrows++;
    sb_value *vals = arena_alloc(a, (nrows ? nrows : 1) * sizeof *vals);
    if (vals == NULL)
        return -1;
    memset(vals, 0, (nrows ? nrows : 1) * sizeof *vals);
    *out = vals;
    if (!config_is_null(n) && n->kind != CONFIG_MAPPING) {
        config_report_at(v->rep, n, "%s of %s: expected a mapping of options, got %s", where,
                         d->type, config_node_kind_phrase(n->kind));
        return 0;
    }
    const config_node **given = calloc(nrows ? nrows : 1, sizeof *given);
    if (given == NULL)
        return -1;
    int ok = 1;
    for (size_t i = 0; !config_is_null(n) && i < n->count; i++) {
        size_t r = 0;
        while (r < nrows && strcmp(table[r].name, n->keys[i]->scalar) != 0)
            r++;
        if (r == nrows) {
            unknown_nested(v, d, where, table, nrows, n->keys[i]);
            ok = 0;
        } else if (given[r] == NULL) {
            given[r] = n->items[i];
        }
    }
    for (size_t r = 0; r < nrows; r++) {
        const sb_option_spec *spec = &table[r];
        char sub[256];
        snprintf(sub, sizeof sub, "%.120s.%.120s", where, spec->name);
        misfit mf = {.at = NULL};
        int rc = 1;
        if (!config_is_null(given[r])) {
            if (spec->type == SB_OPT_OBJECTS) {
                char osub[256];
                option_more_path(osub, sizeof osub, opath, spec->name);
                rc = convert_objects(v, a, d, sub, osub, given[r], &vals[r]);
            } else {
                rc = convert_value(a, spec, given[r], &vals[r], &mf);
                if (rc == 0)
                    config_report_at(v->rep, mf.at, "option '%s' of %s: %s", sub, d->type, mf.why);
            }
        } else if (spec->required) {
            config_report_at(v->rep, at, "%s: %s: missing required option '%s'", d->type, where,
                             spec->name);
            rc = 0;
        } else if (spec->default_value != NULL || spec->type == SB_OPT_OBJECTS) {
            rc = convert_default(v, a, spec, &vals[r], &mf);
            if (rc == 0)
                config_report_at(v->rep, at,
                                 "plugin %s: the default of option '%s' is invalid: %s", d->type,
                                 sub, mf.why);
        }
        if (rc < 0) {
            free(given);
            return -1;
        }
        ok &= rc;
    }
    free(given);
    return ok;
}

/* A mapping of names to objects. Returns 1, 0 (reported) or -1 out of memory. */
static int convert_objects(validator *v, arena *a, const sb_plugin_descriptor *d, const char *where,
                           const char *opath, const config_node *n, sb_value *out)
{
    memset(out, 0, sizeof *out);
    const sb_option_spec *fields = option_more_fields(d, opath);
    if (fields == NULL) { /* the loader refuses such a plugin; a fake one in a test may not */
        config_report_at(v->rep, n, "option '%s' of %s: the plugin has no table for its objects",
                         where, d->type);
        return 0;
    }
    if (n->kind != CONFIG_MAPPING) {
        config_report_at(v->rep, n, "option '%s' of %s: expected %s, got %s", where, d->type,
                         type_phrase(SB_OPT_OBJECTS), config_node_kind_phrase(n->kind));
        return 0;
    }
    const char **items = string_array(a, n->count);
    const sb_value **objects = arena_alloc(a, (n->count + 1) * sizeof *objects);
    if (items == NULL || objects == NULL)
        return -1;
    int ok = 1;
    for (size_t i = 0; i < n->count; i++) {
        if ((items[i] = arena_strdup(a, n->keys[i]->scalar)) == NULL)
            return -1;
        char sub[256];
        config_clipbuf cb;
        snprintf(sub, sizeof sub, "%.120s.%.120s", where, config_clip(&cb, n->keys[i]->scalar));
        int rc = convert_object(v, a, d, sub, opath, fields, n->items[i], n->keys[i], &objects[i]);
        if (rc < 0)
            return -1;
        ok &= rc;
    }
    items[n->count] = NULL;
    objects[n->count] = NULL;
    out->items = items;
    out->objects = objects;
    out->count = n->count;
    out->is_set = 1;
    return ok;
}

/* Stands in v->given for an option that extend: added to but the plugin does not take as a map
 * (reported once, at the extend, not again as a type mismatch). */
static const config_node extend_refused;

/* extend: adds names to a map; an option the plugin does not take as a map of objects (or of
 * strings) is reported at the first extend that added to it. Returns 1 when one was. */
static int extended_not_maps(validator *v, const config_component *comp,
                             const sb_plugin_descriptor *d, size_t nrows)
{
    const config_store *st = v->cfg->arena;
    size_t ci = (size_t)(comp - v->cfg->components);
    int found = 0;
    size_t lo = 0, hi = st->nextensions; /* the first of ci's (sorted by component) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (st->extensions[mid].comp < ci)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = lo; i < st->nextensions && st->extensions[i].comp == ci; i++) {
        const config_extension *e = &st->extensions[i];
        size_t r = 0;
        while (r < nrows && strcmp(d->options[r].name, e->option) != 0)
            r++;
        if (r == nrows) /* reported as an unknown option, at the key the extend added */
            continue;
        if (d->options[r].type == SB_OPT_OBJECTS || d->options[r].type == SB_OPT_MAP)
            continue;
        config_clipbuf cb, ib;
        config_report_at(v->rep, e->at,
                         "'%s' of '%s' (%s) is not a map of objects: extend adds only to those",
                         config_clip(&cb, e->option), config_clip(&ib, comp->id), d->type);
        v->given[r] = &extend_refused;
        found = 1;
    }
    return found;
}

/* Returns -1 when out of memory. */
static int validate_component(validator *v, config_component *comp)
{
    drop_validation(comp);
    if (comp->type == NULL)
        return 0; /* phase 1 reported it */
    config_clipbuf cb;
    const config_node *tnode = config_map_get(comp->node, "type");
    const sb_plugin_descriptor *d = v->cat->lookup(v->cat->ctx, comp->type);
    if (d == NULL) {
        unknown_type(v, comp, tnode);
        return 0;
    }
    if (d->kind != comp->kind) {
        config_report_at(v->rep, tnode, "'%s' is a %s plugin, not a %s",
                         config_clip(&cb, comp->type), config_kind_word(d->kind),
                         config_kind_word(comp->kind));
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
    if (extended_not_maps(v, comp, d, nrows) != 0)
        ok = 0;
    for (size_t r = 0; r < nrows; r++) {
        const sb_option_spec *spec = &d->options[r];
        const config_node *n = v->given[r];
        misfit mf = {.at = NULL};
        int rc = 1;
        if (n == &extend_refused) {
            continue; /* reported at the extend */
        } else if (!config_is_null(n) && spec->type == SB_OPT_OBJECTS) {
            rc = convert_objects(v, a, d, spec->name, spec->name, n, &vals[r]);
        } else if (!config_is_null(n)) {
            rc = convert_value(a, spec, n, &vals[r], &mf);
            if (rc == 0)
                config_report_at(v->rep, mf.at, "option '%s' of %s: %s", spec->name, d->type,
                                 mf.why);
        } else if (spec->required) {
            config_report_at(v->rep, m, "%s '%s': missing required option '%s'", d->type,
                             comp->id ? config_clip(&cb, comp->id) : "(no id)", spec->name);
            rc = 0;
        } else if (spec->default_value != NULL || spec->type == SB_OPT_OBJECTS) {
            rc = convert_default(v, a, spec, &vals[r], &mf);
            if (rc == 0) /* the plugin's bug, but the user needs to hear of it */
                config_report_at(v->rep, tnode,
                                 "plugin %s: the default of option '%s' is invalid: %s", d->type,
                                 spec->name, mf.why);
        }
        if (rc < 0)
            return -1;
        ok &= rc;
    }
    if (ok && (comp->fingerprint = make_fingerprint(v, a, comp)) == NULL)
        return -1;
    return 0;
}

int config_validate_plugins_from(config *cfg, const config_catalog *cat, config_errors *errs)
{
    if (cfg == NULL || cat == NULL || cat->lookup == NULL || cfg->arena == NULL)
        return -EINVAL;
    size_t before = errs->count;
    config_reporter rep = {errs, cfg->path, 0};
    validator v = {.rep = &rep, .cat = cat, .cfg = cfg};
    int rc = 0;
    for (size_t i = 0; i < cfg->ncomponents && rc == 0; i++)
        if (validate_component(&v, &cfg->components[i]) != 0 || rep.oom)
            rc = -ENOMEM;
    free(v.given);
    textbuf_free(&v.fp);
    free(v.defaults);
    arena_release(&v.default_mem);
    if (rc != 0) {
        config_report(&rep, 1, 1, "out of memory");
        return rc;
    }
    config_sort_errors_from(errs, before);
    return errs->count > before ? -EINVAL : 0;
}

int config_validate_plugins(config *cfg, config_plugin_lookup lookup, void *ctx,
                            config_errors *errs)
{
    config_catalog cat = {.lookup = lookup, .ctx = ctx};
    return config_validate_plugins_from(cfg, &cat, errs);
}
