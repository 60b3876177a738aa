/*
 * config_internal.h - what the stages of the pipeline-file reader share; nothing outside
 * core/config*.c includes it. The stages, in the order a file goes through them:
 *
 *   config.c          entry points: bytes in, errors out (sorted), the helpers every message uses
 *   config_tree.c     YAML -> config_node tree: positions, limits, anchors, aliases, merge keys
 *   config_scalar.c   one scalar's text: ${VAR}, integers, numbers, booleans, durations, globs
 *   config_check.c    phase 1: top level, plugins, log, components, ids, bounds, from/to/match
 *   config_graph.c    phase 1: edges resolved, connectors that lead nowhere, cycles
 *   config_options.c  phase 2: options against each plugin's table, defaults, fingerprints
 */
#ifndef SCALEBUS_CONFIG_INTERNAL_H
#define SCALEBUS_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "strmap.h"
#include "textbuf.h"

/* ---- config.c: where errors go, and the words of every message ---------------------------- */

/* Where the errors of one call go, and whether memory ran out on the way. file: the main file
 * (a node read from an included file carries its own, which config_report_at uses). */
typedef struct config_reporter {
    config_errors *errs;
    const char *file;
    int oom;
} config_reporter;

void config_report(config_reporter *r, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* At a node's position (1:1 without a node). */
void config_report_at(config_reporter *r, const config_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sorts errs->items[start..] by file, line and column, keeping the order of equal positions. */
void config_sort_errors_from(config_errors *errs, size_t start);

/* The file a node was read from, as messages name it. */
const char *config_node_file(const config_reporter *r, const config_node *n);

/* Where a node is, for a message about another node (`from`): "3:5" in the same file,
 * "conf.d/a.yaml:3:5" in another. */
typedef struct config_wherebuf {
    char s[300];
} config_wherebuf;
const char *config_where(config_wherebuf *b, const config_reporter *r, const config_node *n,
                         const config_node *from);

/* A user's text quoted in a message, cut short so one long scalar cannot flood the output. */
typedef struct config_clipbuf {
    char s[72];
} config_clipbuf;

const char *config_clip(config_clipbuf *b, const char *s);
/* A value for "got ...": the scalar quoted (cut short), or "a mapping" / "a sequence". */
const char *config_describe(config_clipbuf *b, const config_node *n);
const char *config_kind_word(sb_kind k);
const char *config_node_kind_phrase(config_node_kind k);
/* YAML's null: an absent node, or a plain empty, ~ or null scalar. */
int config_is_null(const config_node *n);
/* The value of key in mapping m (the first, when a key is repeated), or NULL. */
const config_node *config_map_get(const config_node *m, const char *key);

/* "Did you mean": the closest candidate to a mistyped word. Close is within edit distance 2
 * (a transposition counts 1), or failing that a long shared beginning ("stop_timeout" and
 * "stop_grace"). Start with config_suggest_start, offer each candidate, read best (or NULL). */
typedef struct config_suggestion {
    const char *word;
    const char *best;
    size_t dist;           /* of best by edit distance, SIZE_MAX when none is that close */
    const char *by_prefix; /* the best by shared beginning */
    size_t prefix;         /* its shared length */
} config_suggestion;

void config_suggest_start(config_suggestion *s, const char *word);
void config_suggest(config_suggestion *s, const char *candidate);
/* The suggestion, or NULL. */
const char *config_suggested(const config_suggestion *s);

/* What cfg->arena points at: the tree's memory and what only the stages need. */
typedef struct config_store {
    arena mem;
    strmap ids;                     /* id -> config_component * (the first with that id) */
    const config_node **path_nodes; /* plugins.path entries, parallel to cfg->plugin_paths */
    const char **path_refused;      /* NULL, or why the caller could not use that folder */
    config_node **roots;            /* each file's tree, parallel to cfg->files (NULL: empty) */
    const char **root_files;        /* each file's name in messages (NULL: the main file) */
    size_t nroots, roots_cap;
    struct config_extension *extensions; /* what extend: merged, for phase 2, by component */
    size_t nextensions;
} config_store;

/* One option of one component that `extend:` added to: phase 2 checks that the plugin takes a
 * map there, and reports at the first extend's key otherwise. */
typedef struct config_extension {
    size_t comp;
    const char *option;
    const config_node *at; /* the first extend's key for it */
} config_extension;

/* ---- config_tree.c ------------------------------------------------------------------------ */

/* Reads one YAML text into *root (NULL for an empty text), in mem. With expand_env, ${VAR} is
 * expanded in every scalar. file: what every node's file is (NULL: the main file; rep->file
 * should name the same). nodes: the node count so far across files (CONFIG_MAX_NODES holds for
 * all of them), updated; NULL counts this text alone. Returns 0, or -1 when the text could not
 * be followed to its end (syntax errors, limits, out of memory: rep->oom); every problem is
 * reported. */
int config_tree_build(arena *mem, config_reporter *rep, int expand_env, const char *file,
                      size_t *nodes, const char *text, size_t len, config_node **root);

/* ---- config_scalar.c ---------------------------------------------------------------------- */

/* ${VAR}, ${VAR:-default} and $$ in one scalar's text, errors reported at line:col. Returns the
 * text in mem, or NULL when out of memory. scratch is reused between calls. */
char *config_expand_env(arena *mem, textbuf *scratch, config_reporter *rep, const char *s,
                        size_t len, int line, int col);
/* 0, -EINVAL (not an integer) or -ERANGE (does not fit in 64 bits). */
int config_parse_int64(const char *s, int64_t *out);
/* A finite decimal number: 0 or -EINVAL. */
int config_parse_number(const char *s, double *out);
/* true/yes/on, false/no/off in any case: 0 or -EINVAL. */
int config_parse_bool(const char *s, int64_t *out);

/* ---- config_check.c and config_graph.c: phase 1 ------------------------------------------- */

#define CONFIG_NO_COMP SIZE_MAX

/* What phase 1 knows about a component beyond the public struct. */
typedef struct config_side {
    const char *label; /* "connector 'c1'", or "connector #3" without a usable id */
    const config_node *id_node;
    const config_node **from_nodes, **to_nodes;
    size_t *from_idx, *to_idx; /* resolved component index, or CONFIG_NO_COMP */
    int has_to;                /* connectors: the file gives `to` (it may be left out when
                                * another connector names this one in its `from`) */
} config_side;

typedef struct config_checker {
    config *cfg;
    config_store *store;
    config_reporter *rep;
    config_side *side;
} config_checker;

/* The whole structure check of the parsed trees (c->store->roots: the main file's, then the
 * included ones): fills cfg's components, plugin paths and log, and merges `extend:`. */
void config_check_roots(config_checker *c);
/* After the components are read and their ids indexed: from/to resolved, connectors that lead
 * nowhere, cycles. */
void config_check_graph(config_checker *c);

#endif
