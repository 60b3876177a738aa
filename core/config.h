/*
 * config.h - YAML pipeline files: parsing (libyaml, keeping every node's line:col), `${VAR}`
 * expansion, durations, the structure checks (ids, from/to, cycles) and validation of each
 * component's options against its plugin's options table.
 *
 * Two phases, because the plugin search path is itself in the file:
 *   config_parse_file()       syntax, limits, top-level structure, ids, edges, cycles
 *   config_validate_plugins() each component's type and options, using a lookup into the loader
 * Both append every error they find to a config_errors list and go on; neither stops at the first.
 * Between the two, the caller loads plugins.path and says which folders it could not use
 * (config_plugin_path_refused), so those are errors at their entries too.
 */
#ifndef SCALEBUS_CONFIG_H
#define SCALEBUS_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

/* Limits that keep a hostile file from being followed. */
#define CONFIG_MAX_FILE_BYTES (4u * 1024u * 1024u)
/* include: nesting (the main file is depth 0), files read in all, and their bytes in all. */
#define CONFIG_MAX_INCLUDE_DEPTH 8
#define CONFIG_MAX_INCLUDE_FILES 1000
#define CONFIG_MAX_TOTAL_BYTES (64u * 1024u * 1024u)
#define CONFIG_MAX_DEPTH 64
/* Nodes, counting every alias expansion: 10,000 pipelines shaped like the example file
 * (trigger, connector, scaler with a 3-item command) are ~320,000 nodes, so this leaves room for
 * them and still stops an alias bomb long before it costs much. */
#define CONFIG_MAX_NODES 1000000
/* The longest duration a file may give: 100 years. Whatever a plugin adds it to, in
 * milliseconds or in nanoseconds on a monotonic clock, stays far from overflowing 64 bits. */
#define CONFIG_MAX_DURATION_MS (36500ull * 86400u * 1000u)
#define CONFIG_MAX_DURATION_TEXT "36500d"

typedef enum config_node_kind {
    CONFIG_SCALAR = 1,
    CONFIG_SEQUENCE,
    CONFIG_MAPPING
} config_node_kind;

typedef struct config_node {
    config_node_kind kind;
    const char *file;           /* the included file it was read from (as messages name it);
                                 * NULL: the main file */
    int line, col;              /* 1-based, where the node starts in the file */
    char *scalar;               /* SCALAR: the text after ${VAR} expansion */
    int quoted;                 /* SCALAR: written with quotes (never null/bool by accident) */
    struct config_node **keys;  /* MAPPING: key scalars, parallel to items */
    struct config_node **items; /* SEQUENCE items, or MAPPING values */
    size_t count;
} config_node;

typedef struct config_error {
    char *file;
    int line, col; /* 1-based; a problem of the whole file (unreadable, too big) is at 1:1 */
    char *message;
} config_error;

typedef struct config_errors {
    config_error *items;
    size_t count, cap;
    char *main_file; /* printed first (set by config_parse_file/_string); NULL: the first
                      * error's file */
} config_errors;

typedef struct config_component {
    sb_kind kind;
    char *id;
    char *type;
    const char *file;        /* where it is declared: cfg->path, or an included file */
    int line, col;           /* of the component's mapping, in file */
    const config_node *node; /* the whole mapping, owned by the config's tree; with every
                              * `extend:` merged in (their nodes keep their own file) */

    /* Connectors: the edges. */
    char **from;
    size_t nfrom;
    char **to;
    size_t nto;
    char **match_keys; /* match: {label: value-or-glob} */
    char **match_values;
    size_t nmatch;

    /* Scalers: bounds, handled by the host for every scaler type. */
    int64_t min, max;

    /* Filled by config_validate_plugins(): one value per row of the plugin's options table. */
    const sb_plugin_descriptor *plugin;
    sb_value *values;
    size_t nvalues;

    /* Canonical text of kind, type, version and the plugin options (not min, max, from, to or
     * match, which a reload applies in place): equal fingerprints mean unchanged plugin options
     * across a reload. */
    char *fingerprint;

    void *arena; /* strings referenced by values, owned by the component */
} config_component;

/* The admin endpoint (core/admin.h, docs/admin.md): `admin: {listen, token, token_file}`. */
#define CONFIG_ADMIN_DEFAULT_LISTEN "127.0.0.1:9180"
#define CONFIG_ADMIN_TOKEN_MAX 4096
typedef struct config_admin {
    int off;            /* listen: off */
    int listen_set;     /* the file names an address (else the default) */
    const char *listen; /* "ADDR:PORT", numeric; CONFIG_ADMIN_DEFAULT_LISTEN by default */
    const char *token;  /* the bearer token (from token or token_file), or NULL: no auth */
    int line, col;      /* of admin.listen (or of admin, or 1:1), for errors at start */
} config_admin;

/* What survives a restart (core/state.h, docs/state.md): `state: {dir, every}`. */
#define CONFIG_STATE_DEFAULT_EVERY_MS 5000
typedef struct config_state {
    const char *dir;   /* resolved against the file's folder; NULL: no state kept */
    uint64_t every_ms; /* how often changed state is written */
    int line, col;     /* of state.dir (or of state), for errors at start */
} config_state;

typedef struct config {
    char *path;
    config_node *root; /* the main file's */
    /* Every file read: the main file, then each `include:`d one in the order read (depth
     * first, a glob's matches sorted), absolute and normalised (realpath), each once. */
    char **files;
    size_t nfiles;
    char **plugin_paths; /* plugins.path, resolved against the file's folder */
    size_t nplugin_paths;
    sb_log_level log_level;
    int log_level_set;
    int log_json;     /* log.format: json (one JSON object per line) */
    int log_json_set; /* log.format given */
    config_component *components; /* triggers, then connectors, then scalers, in file order */
    size_t ncomponents;
    void *arena; /* everything else the tree owns */
    config_admin admin;
    config_state state;
} config;

typedef const sb_plugin_descriptor *(*config_plugin_lookup)(void *ctx, const char *type);

/* Where phase 2 finds plugins: lookup (required) by type name; types, when given, names every
 * type lookup finds, so that an unknown type gets a "did you mean" ('dirct': 'direct'). */
typedef struct config_catalog {
    config_plugin_lookup lookup;
    void *ctx;
    const char *const *types;
    size_t ntypes;
} config_catalog;

void config_errors_init(config_errors *errs);
void config_errors_free(config_errors *errs);
/* A line or column below 1 is stored as 1: a problem of the whole file is at its start. */
void config_error_add(config_errors *errs, const char *file, int line, int col, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
/* Prints each error as "FILE:LINE:COL: message\n", sorted by file (errs->main_file first, then
 * the others by name) and then line and column (errors at the same position in the order they
 * were found), whatever order the stages found them in. */
void config_errors_print(const config_errors *errs, void *stdio_file);

/* Parse and check structure. Returns a config (possibly partial) or NULL when the file cannot be
 * read or parsed at all; errs gets every problem. A config with errs->count > 0 must not run.
 * config_parse_file() reads regular files only: a FIFO, a device or a folder is refused at once
 * (never waited on). An empty file is a valid pipeline with no components.
 *
 * config_parse_file() follows `include:` (paths or globs, relative to the including file's
 * folder; see the README), every error inside an included file is reported at that file's
 * path. config_parse_string() reads no file: `include:` there is an error (so a fuzzer or a test
 * never reads the disk); `extend:` works in both. */
config *config_parse_file(const char *path, config_errors *errs);
config *config_parse_string(const char *text, size_t len, const char *name, config_errors *errs);

/* Resolve each component's plugin and validate its options; fills values and fingerprint.
 * kind mismatches ("cron is a trigger, not a scaler") and unknown types are errors. */
int config_validate_plugins(config *cfg, config_plugin_lookup lookup, void *ctx,
                            config_errors *errs);
/* The same, with a catalog that can also list the types it knows. */
int config_validate_plugins_from(config *cfg, const config_catalog *cat, config_errors *errs);

/* The caller could not use plugins.path entry i (cfg->plugin_paths[i]): missing, or refused by
 * the loader's trust rules; why is one line, "DIR: not loaded: ...". Adds the error
 * "plugins.path: WHY" at that entry's position in the file, and makes phase 2's "unknown plugin
 * type" errors say that the folder's plugins were not loaded. */
void config_plugin_path_refused(config *cfg, size_t i, const char *why, config_errors *errs);

void config_free(config *cfg);

/* Frees a component's arena (its values, their strings and its fingerprint). config_free() frees
 * every component's arena; to keep an instance's values beyond it (a reload that keeps the
 * component), take comp->arena, set it to NULL, and free it later with this. */
void config_component_arena_free(void *component_arena);

const config_component *config_find(const config *cfg, const char *id);

/* "500ms", "10s", "5m", "1h", "1d", combinations like "1m30s", or a bare number of seconds.
 * Returns 0, -EINVAL (not a duration) or -ERANGE (longer than CONFIG_MAX_DURATION_MS). */
int config_parse_duration(const char *text, uint64_t *ms);

/* Glob with * ? and [...] as fnmatch(3); used by connectors' match. */
int config_glob_match(const char *pattern, const char *text);

#endif
