/*
 * config_check.c - phase 1 of a pipeline file (a stage of config.c): the structure. The top
 * level's sections, plugins.path and log, then each component: id, type, a connector's from, to
 * and match, a scaler's min and max. Ids are indexed here; the edges they make are checked in
 * config_graph.c. Plugin options wait for phase 2 (config_options.c), once the plugins are
 * loaded.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "strmap.h"
#include "textbuf.h"

static int valid_id(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

/* A plugins.path entry relative to the file's folder. */
static char *resolve_plugin_path(config_checker *c, const char *p)
{
    const char *file = c->cfg->path;
    const char *slash = strrchr(file, '/');
    if (p[0] == '/' || slash == NULL)
        return arena_strdup(&c->store->mem, p);
    while (p[0] == '.' && p[1] == '/') /* "./x" next to the file reads better as "dir/x" */
        p += 2;
    size_t dirlen = (size_t)(slash - file);
    textbuf t = {0};
    textbuf_putn(&t, file, dirlen == 0 ? 1 : dirlen); /* "/x.yaml" lives in "/" */
    if (dirlen != 0)
        textbuf_putn(&t, "/", 1);
    textbuf_puts(&t, *p ? p : ".");
    char *out = t.oom ? NULL : arena_strndup(&c->store->mem, t.p, t.len);
    textbuf_free(&t);
    return out;
}

static void check_plugins(config_checker *c, const config_node *v)
{
    if (config_is_null(v))
        return;
    config_clipbuf cb;
    if (v->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, v,
                         "'plugins' must be a mapping like { path: [./plugins] }, got %s",
                         config_node_kind_phrase(v->kind));
        return;
    }
    const config_node *path = NULL;
    for (size_t i = 0; i < v->count; i++) {
        if (strcmp(v->keys[i]->scalar, "path") == 0)
            path = path ? path : v->items[i];
        else
            config_report_at(c->rep, v->keys[i], "unknown key '%s' in plugins (expected path)",
                             config_clip(&cb, v->keys[i]->scalar));
    }
    if (config_is_null(path))
        return;
    const config_node *const *items = &path;
    size_t n = 1;
    if (path->kind == CONFIG_SEQUENCE) {
        items = (const config_node *const *)path->items;
        n = path->count;
    } else if (path->kind != CONFIG_SCALAR) {
        config_report_at(c->rep, path, "plugins.path must be a folder or a list of folders, got %s",
                         config_node_kind_phrase(path->kind));
        return;
    }
    arena *mem = &c->store->mem;
    char **out = arena_alloc(mem, (n ? n : 1) * sizeof *out);
    const config_node **at = arena_alloc(mem, (n ? n : 1) * sizeof *at);
    if (out == NULL || at == NULL) {
        c->rep->oom = 1;
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const config_node *it = items[i];
        if (it->kind != CONFIG_SCALAR || it->scalar[0] == '\0') {
            config_report_at(c->rep, it, "plugins.path entries must be folder names, got %s",
                             it->kind == CONFIG_SCALAR ? "an empty string"
                                                       : config_node_kind_phrase(it->kind));
            continue;
        }
        if ((out[k] = resolve_plugin_path(c, it->scalar)) == NULL) {
            c->rep->oom = 1;
            return;
        }
        at[k++] = it;
    }
    c->cfg->plugin_paths = out;
    c->cfg->nplugin_paths = k;
    c->store->path_nodes = at;
}

static void check_log(config_checker *c, const config_node *v)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    static const sb_log_level levels[] = {SB_LOG_ERROR, SB_LOG_WARN, SB_LOG_INFO, SB_LOG_DEBUG};
    if (config_is_null(v))
        return;
    config_clipbuf cb;
    if (v->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, v, "'log' must be a mapping like { level: info }, got %s",
                         config_node_kind_phrase(v->kind));
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const config_node *val = v->items[i];
        int is_format = strcmp(v->keys[i]->scalar, "format") == 0;
        if (!is_format && strcmp(v->keys[i]->scalar, "level") != 0) {
            config_report_at(c->rep, v->keys[i],
                             "unknown key '%s' in log (expected level or format)",
                             config_clip(&cb, v->keys[i]->scalar));
            continue;
        }
        if (config_is_null(val))
            continue;
        if (is_format) {
            int json = val->kind == CONFIG_SCALAR && strcmp(val->scalar, "json") == 0;
            if (!json && !(val->kind == CONFIG_SCALAR && strcmp(val->scalar, "text") == 0))
                config_report_at(c->rep, val, "log.format must be text or json, got %s",
                                 config_describe(&cb, val));
            c->cfg->log_json = json;
            c->cfg->log_json_set = 1;
            continue;
        }
        int found = 0;
        for (size_t l = 0; l < 4 && val->kind == CONFIG_SCALAR; l++) {
            if (strcmp(val->scalar, names[l]) == 0) {
                c->cfg->log_level = levels[l];
                c->cfg->log_level_set = 1;
                found = 1;
            }
        }
        if (!found)
            config_report_at(c->rep, val, "log.level must be error, warn, info or debug, got %s",
                             config_describe(&cb, val));
    }
}

/* A connector's from or to: one id or a list of ids. `from` is required; `to` may be left out
 * (config_graph.c then checks that another connector takes this one's decisions). Returns -1
 * when out of memory. */
static int load_refs(config_checker *c, const config_side *s, const config_node *m,
                     const char *what, char ***names, const config_node ***nodes, size_t *n)
{
    const config_node *v = config_map_get(m, what);
    if (config_is_null(v)) {
        if (strcmp(what, "from") == 0)
            config_report_at(c->rep, m,
                             "%s: missing 'from' (a trigger or connector id, or a list of them)",
                             s->label);
        return 0;
    }
    if (v->kind == CONFIG_MAPPING) {
        config_report_at(c->rep, v, "%s: '%s' must be an id or a list of ids, got a mapping",
                         s->label, what);
        return 0;
    }
    const config_node *const *items = &v;
    size_t count = 1;
    if (v->kind == CONFIG_SEQUENCE) {
        items = (const config_node *const *)v->items;
        count = v->count;
        if (count == 0) {
            config_report_at(c->rep, v, "%s: '%s' is an empty list", s->label, what);
            return 0;
        }
    }
    *names = arena_alloc(&c->store->mem, count * sizeof **names);
    *nodes = arena_alloc(&c->store->mem, count * sizeof **nodes);
    if (*names == NULL || *nodes == NULL)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        if (items[i]->kind != CONFIG_SCALAR) {
            config_report_at(c->rep, items[i], "%s: each entry of '%s' must be an id, got %s",
                             s->label, what, config_node_kind_phrase(items[i]->kind));
            continue;
        }
        (*names)[k] = items[i]->scalar;
        (*nodes)[k] = items[i];
        k++;
    }
    *n = k;
    return 0;
}

static int load_match(config_checker *c, config_component *comp, const config_side *s)
{
    const config_node *v = config_map_get(comp->node, "match");
    if (config_is_null(v))
        return 0;
    if (v->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, v, "%s: match must be a mapping of label: value, got %s", s->label,
                         config_node_kind_phrase(v->kind));
        return 0;
    }
    if (v->count == 0)
        return 0;
    comp->match_keys = arena_alloc(&c->store->mem, v->count * sizeof *comp->match_keys);
    comp->match_values = arena_alloc(&c->store->mem, v->count * sizeof *comp->match_values);
    if (comp->match_keys == NULL || comp->match_values == NULL)
        return -1;
    config_clipbuf cb;
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i]->kind != CONFIG_SCALAR) {
            config_report_at(
                c->rep, v->items[i], "%s: match value for '%s' must be a scalar, got %s", s->label,
                config_clip(&cb, v->keys[i]->scalar), config_node_kind_phrase(v->items[i]->kind));
            continue;
        }
        comp->match_keys[comp->nmatch] = v->keys[i]->scalar;
        comp->match_values[comp->nmatch] = v->items[i]->scalar;
        comp->nmatch++;
    }
    return 0;
}

/* One bound's integer, or 0 with the error reported (saying so when it does not fit). */
static int read_bound(config_checker *c, const config_side *s, const config_node *v,
                      const char *name, int64_t *x)
{
    int rc = v->kind == CONFIG_SCALAR ? config_parse_int64(v->scalar, x) : -EINVAL;
    if (rc != 0) {
        config_clipbuf cb;
        config_report_at(c->rep, v, "%s: %s must be an integer, got %s%s", s->label, name,
                         config_describe(&cb, v), rc == -ERANGE ? " (out of range)" : "");
        return 0;
    }
    return 1;
}

/* min and max are the host's, the same for every scaler type. */
static void load_bounds(config_checker *c, config_component *comp, const config_side *s)
{
    int min_ok = 1;
    int64_t x;
    comp->min = 0;
    const config_node *v = config_map_get(comp->node, "min");
    if (!config_is_null(v)) {
        if (!read_bound(c, s, v, "min", &x)) {
            min_ok = 0;
        } else if (x < 0) {
            config_report_at(c->rep, v, "%s: min must be >= 0, got %" PRId64, s->label, x);
            min_ok = 0;
        } else {
            comp->min = x;
        }
    }
    v = config_map_get(comp->node, "max");
    if (config_is_null(v)) {
        config_report_at(c->rep, comp->node, "%s: missing required option 'max'", s->label);
        return;
    }
    if (!read_bound(c, s, v, "max", &x))
        return;
    if (x < 1)
        config_report_at(c->rep, v, "%s: max must be >= 1, got %" PRId64, s->label, x);
    else if (min_ok && x < comp->min)
        config_report_at(c->rep, v, "%s: max (%" PRId64 ") is less than min (%" PRId64 ")",
                         s->label, x, comp->min);
    else
        comp->max = x;
}

static int load_component(config_checker *c, config_component *comp, config_side *s, sb_kind kind,
                          const config_node *m, size_t ordinal)
{
    config_clipbuf cb;
    comp->kind = kind;
    comp->node = m;
    comp->line = m->line;
    comp->col = m->col;
    const char *kw = config_kind_word(kind);
    const config_node *id = config_map_get(m, "id");
    if (config_is_null(id))
        config_report_at(c->rep, m, "%s #%zu has no id", kw, ordinal);
    else if (id->kind != CONFIG_SCALAR)
        config_report_at(c->rep, id, "%s #%zu: id must be a scalar, got %s", kw, ordinal,
                         config_node_kind_phrase(id->kind));
    else if (!valid_id(id->scalar))
        config_report_at(c->rep, id, "invalid id '%s' (use letters, digits, '_', '.' and '-')",
                         config_clip(&cb, id->scalar));
    else {
        comp->id = id->scalar;
        s->id_node = id;
    }
    textbuf t = {0};
    if (comp->id != NULL)
        textbuf_printf(&t, "%s '%s'", kw, comp->id);
    else
        textbuf_printf(&t, "%s #%zu", kw, ordinal);
    s->label = t.oom ? NULL : arena_strndup(&c->store->mem, t.p, t.len);
    textbuf_free(&t);
    if (s->label == NULL)
        return -1;

    const config_node *type = config_map_get(m, "type");
    if (config_is_null(type))
        config_report_at(c->rep, m, "%s: missing type", s->label);
    else if (type->kind != CONFIG_SCALAR)
        config_report_at(c->rep, type, "%s: type must be a plugin name, got %s", s->label,
                         config_node_kind_phrase(type->kind));
    else
        comp->type = type->scalar;

    if (kind == SB_KIND_CONNECTOR) {
        if (load_refs(c, s, m, "from", &comp->from, &s->from_nodes, &comp->nfrom) != 0 ||
            load_refs(c, s, m, "to", &comp->to, &s->to_nodes, &comp->nto) != 0 ||
            load_match(c, comp, s) != 0)
            return -1;
        s->has_to = !config_is_null(config_map_get(m, "to"));
        s->from_idx = arena_alloc(&c->store->mem, (comp->nfrom + 1) * sizeof *s->from_idx);
        s->to_idx = arena_alloc(&c->store->mem, (comp->nto + 1) * sizeof *s->to_idx);
        if (s->from_idx == NULL || s->to_idx == NULL)
            return -1;
    } else if (kind == SB_KIND_SCALER) {
        load_bounds(c, comp, s);
    }
    return 0;
}

/* Every id into the store's map; a repeated one is reported at the later component. */
static void index_ids(config_checker *c)
{
    config *cfg = c->cfg;
    config_clipbuf cb;
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        config_component *comp = &cfg->components[i];
        if (comp->id == NULL)
            continue;
        const config_component *first = strmap_get(&c->store->ids, comp->id);
        if (first == NULL) {
            if (strmap_put(&c->store->ids, comp->id, comp) != 0) {
                c->rep->oom = 1;
                return;
            }
            continue;
        }
        const config_node *fn = c->side[first - cfg->components].id_node;
        /* An alias repeats the anchored id node itself: point at the component then. */
        const config_node *at = c->side[i].id_node == fn ? comp->node : c->side[i].id_node;
        config_wherebuf wb;
        config_report_at(c->rep, at, "duplicate id '%s' (first used at %s)",
                         config_clip(&cb, comp->id), config_where(&wb, c->rep, fn, at));
    }
}

static size_t count_entries(const config_node *sec)
{
    size_t n = 0;
    if (sec != NULL && sec->kind == CONFIG_SEQUENCE)
        for (size_t i = 0; i < sec->count; i++)
            n += sec->items[i]->kind == CONFIG_MAPPING;
    return n;
}

static int load_section(config_checker *c, const config_node *sec, const char *name, sb_kind kind,
                        size_t *next)
{
    if (config_is_null(sec))
        return 0;
    if (sec->kind != CONFIG_SEQUENCE) {
        config_report_at(c->rep, sec, "'%s' must be a sequence of mappings, got %s", name,
                         config_node_kind_phrase(sec->kind));
        return 0;
    }
    for (size_t i = 0; i < sec->count; i++) {
        const config_node *item = sec->items[i];
        if (item->kind != CONFIG_MAPPING) {
            config_report_at(c->rep, item, "each entry of '%s' must be a mapping, got %s", name,
                             config_node_kind_phrase(item->kind));
            continue;
        }
        if (load_component(c, &c->cfg->components[*next], &c->side[*next], kind, item, i + 1) != 0)
            return -1;
        (*next)++;
    }
    return 0;
}


/* ---- admin ---------------------------------------------------------------------------------- */

/* "ADDR:PORT" with a numeric IPv4 address or a bracketed IPv6 one, as sb_httpd takes it. Returns
 * 1 when valid; *loopback says whether the address is on loopback (127.0.0.0/8 or ::1). */
static int listen_address_ok(const char *s, int *loopback)
{
    char host[64];
    const char *colon;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':' || (size_t)(close - s - 1) >= sizeof host)
            return 0;
        memcpy(host, s + 1, (size_t)(close - s - 1));
        host[close - s - 1] = '\0';
        colon = close + 1;
        struct in6_addr a6;
        if (inet_pton(AF_INET6, host, &a6) != 1)
            return 0;
        *loopback = IN6_IS_ADDR_LOOPBACK(&a6);
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            return 0;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = '\0';
        struct in_addr a4;
        if (inet_pton(AF_INET, host, &a4) != 1)
            return 0;
        *loopback = (ntohl(a4.s_addr) >> 24) == 127;
    }
    const char *p = colon + 1;
    if (!*p || strlen(p) > 5)
        return 0;
    for (const char *q = p; *q; q++)
        if (*q < '0' || *q > '9')
            return 0;
    return atoi(p) <= 65535;
}

/* A token_file's first line (trailing blanks dropped). Regular files only, so a FIFO is never
 * waited on. Returns the token in the arena, or NULL with why (never the file's bytes). */
static char *read_token_file(config_checker *c, const char *path, const char **why)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        *why = strerror(errno);
        return NULL;
    }
    struct stat sb;
    char buf[CONFIG_ADMIN_TOKEN_MAX + 1];
    ssize_t n = -1;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        *why = "not a regular file";
    else if (sb.st_size > CONFIG_ADMIN_TOKEN_MAX)
        *why = "longer than 4096 bytes";
    else if ((n = read(fd, buf, CONFIG_ADMIN_TOKEN_MAX)) < 0)
        *why = strerror(errno);
    close(fd);
    if (n < 0)
        return NULL;
    const char *nl = memchr(buf, '\n', (size_t)n);
    size_t len = nl ? (size_t)(nl - buf) : (size_t)n;
    while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t' || buf[len - 1] == '\r'))
        len--;
    if (len == 0) {
        *why = "empty";
        return NULL;
    }
    char *out = arena_strndup(&c->store->mem, buf, len);
    if (!out)
        c->rep->oom = 1;
    *why = "out of memory";
    return out;
}

/* A token is sent in a header: printable ASCII without spaces. */
static int token_ok(const char *t)
{
    if (!*t || strlen(t) > CONFIG_ADMIN_TOKEN_MAX)
        return 0;
    for (; *t; t++)
        if (*t <= ' ' || *t > '~')
            return 0;
    return 1;
}

/* admin: {listen: ADDR:PORT | off, token: SECRET, token_file: PATH}. A token's text never
 * appears in a message. */
static void check_admin(config_checker *c, const config_node *v)
{
    config_admin *a = &c->cfg->admin;
    a->listen = CONFIG_ADMIN_DEFAULT_LISTEN;
    a->line = a->col = 1;
    if (config_is_null(v))
        return;
    config_clipbuf cb;
    a->line = v->line;
    a->col = v->col;
    if (v->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, v,
                         "'admin' must be a mapping like { listen: 127.0.0.1:9180 }, got %s",
                         config_node_kind_phrase(v->kind));
        return;
    }
    const config_node *listen = NULL, *token = NULL, *token_file = NULL;
    for (size_t i = 0; i < v->count; i++) {
        const char *k = v->keys[i]->scalar;
        if (strcmp(k, "listen") == 0)
            listen = v->items[i];
        else if (strcmp(k, "token") == 0)
            token = v->items[i];
        else if (strcmp(k, "token_file") == 0)
            token_file = v->items[i];
        else
            config_report_at(c->rep, v->keys[i],
                             "unknown key '%s' in admin (expected listen, token or token_file)",
                             config_clip(&cb, k));
    }
    int loopback = 1;
    if (listen && !config_is_null(listen)) {
        a->line = listen->line;
        a->col = listen->col;
        int64_t on;
        if (listen->kind != CONFIG_SCALAR) {
            config_report_at(c->rep, listen, "admin.listen must be ADDR:PORT or off, got %s",
                             config_node_kind_phrase(listen->kind));
            return;
        }
        /* off, unquoted (YAML's false) or quoted: "off" is no address anyone means. */
        if ((!listen->quoted && config_parse_bool(listen->scalar, &on) == 0 && !on) ||
            strcmp(listen->scalar, "off") == 0) {
            a->off = 1;
        } else if (!listen_address_ok(listen->scalar, &loopback)) {
            config_report_at(c->rep, listen,
                             "admin.listen must be a numeric ADDR:PORT (127.0.0.1:9180, "
                             "[::1]:9180) or off, got %s",
                             config_describe(&cb, listen));
            return;
        } else {
            a->listen = listen->scalar;
            a->listen_set = 1;
        }
    }
    if (token && !config_is_null(token) && token_file && !config_is_null(token_file)) {
        config_report_at(c->rep, token_file, "admin: give token or token_file, not both");
        return;
    }
    if (token && !config_is_null(token)) {
        if (token->kind != CONFIG_SCALAR || !token_ok(token->scalar)) {
            config_report_at(c->rep, token,
                             "admin.token must be printable ASCII without spaces, at most 4096 "
                             "bytes (its text is not shown)");
            return;
        }
        a->token = token->scalar;
    } else if (token_file && !config_is_null(token_file)) {
        if (token_file->kind != CONFIG_SCALAR) {
            config_report_at(c->rep, token_file, "admin.token_file must be a file name, got %s",
                             config_node_kind_phrase(token_file->kind));
            return;
        }
        char *path = resolve_plugin_path(c, token_file->scalar);
        const char *why = "out of memory";
        char *t = path ? read_token_file(c, path, &why) : NULL;
        if (!t) {
            config_report_at(c->rep, token_file, "admin.token_file %s: %s",
                             config_clip(&cb, path ? path : token_file->scalar), why);
            return;
        }
        if (!token_ok(t)) {
            config_report_at(c->rep, token_file,
                             "admin.token_file %s: the token must be printable ASCII without "
                             "spaces (its text is not shown)",
                             config_clip(&cb, path));
            return;
        }
        a->token = t;
    }
    if (!a->off && !loopback && !a->token)
        config_report_at(c->rep, listen,
                         "admin.listen %s is off loopback: anyone who reaches it could pause or "
                         "scale; set admin.token (or token_file), or listen on 127.0.0.1",
                         config_clip(&cb, a->listen));
}

/* ---- state ---------------------------------------------------------------------------------- */

/* state: {dir: PATH, every: DURATION}. No dir: nothing is kept. */
static void check_state(config_checker *c, const config_node *v)
{
    config_state *st = &c->cfg->state;
    st->every_ms = CONFIG_STATE_DEFAULT_EVERY_MS;
    st->line = st->col = 1;
    if (config_is_null(v))
        return;
    config_clipbuf cb;
    st->line = v->line;
    st->col = v->col;
    if (v->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, v,
                         "'state' must be a mapping like { dir: /var/lib/scalebus }, got %s",
                         config_node_kind_phrase(v->kind));
        return;
    }
    for (size_t i = 0; i < v->count; i++) {
        const char *k = v->keys[i]->scalar;
        const config_node *val = v->items[i];
        int is_dir = strcmp(k, "dir") == 0;
        if (!is_dir && strcmp(k, "every") != 0) {
            config_report_at(c->rep, v->keys[i], "unknown key '%s' in state (expected dir or every)",
                             config_clip(&cb, k));
            continue;
        }
        if (config_is_null(val))
            continue;
        if (val->kind != CONFIG_SCALAR || !*val->scalar) {
            config_report_at(c->rep, val, "state.%s must be %s, got %s", k,
                             is_dir ? "a folder" : "a duration like 5s",
                             config_describe(&cb, val));
            continue;
        }
        if (is_dir) {
            st->line = val->line;
            st->col = val->col;
            if ((st->dir = resolve_plugin_path(c, val->scalar)) == NULL)
                c->rep->oom = 1;
            continue;
        }
        uint64_t ms;
        if (config_parse_duration(val->scalar, &ms) != 0 || ms < 100 || ms > 86400000)
            config_report_at(c->rep, val, "state.every must be a duration from 100ms to 24h, got %s",
                             config_describe(&cb, val));
        else
            st->every_ms = ms;
    }
}

/* ---- the top level of each file ------------------------------------------------------------ */

enum { TOP_PLUGINS, TOP_LOG, TOP_TRIGGERS, TOP_CONNECTORS, TOP_SCALERS, TOP_ADMIN, TOP_STATE,
       TOP_INCLUDE, TOP_EXTEND, NTOP };
static const char *const top_keys[NTOP] = {"plugins", "log",   "triggers", "connectors", "scalers",
                                           "admin",   "state", "include",  "extend"};

static int top_in_included(size_t k)
{
    return k == TOP_TRIGGERS || k == TOP_CONNECTORS || k == TOP_SCALERS || k == TOP_INCLUDE ||
           k == TOP_EXTEND;
}

/* One file's top-level keys into val (NTOP slots). An included file may give only components,
 * include and extend. */
static void read_top(config_checker *c, const config_node *root, int main_file,
                     const config_node **val)
{
    if (root->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, root,
                         main_file ? "the top level must be a mapping (plugins, log, admin, state, "
                                     "triggers, connectors, scalers), got %s"
                                   : "the top level of an included file must be a mapping "
                                     "(include, triggers, connectors, scalers, extend), got %s",
                         config_node_kind_phrase(root->kind));
        return;
    }
    config_clipbuf cb;
    for (size_t i = 0; i < root->count; i++) {
        const char *key = root->keys[i]->scalar;
        /* x-... keys are the file's own, as in Compose files: a place for anchors that merge
         * keys (<<: *defaults) repeat into components. */
        if (strncmp(key, "x-", 2) == 0)
            continue;
        size_t k = 0;
        while (k < NTOP && strcmp(key, top_keys[k]) != 0)
            k++;
        if (k < NTOP && !main_file && !top_in_included(k)) {
            config_report_at(c->rep, root->keys[i], "only the main file may set '%s'", key);
            continue;
        }
        if (k < NTOP) {
            if (val[k] == NULL) /* a repeated key was reported while reading */
                val[k] = root->items[i];
            continue;
        }
        config_suggestion sg;
        config_suggest_start(&sg, key);
        for (size_t j = 0; j < NTOP; j++)
            if (main_file || top_in_included(j))
                config_suggest(&sg, top_keys[j]);
        if (config_suggested(&sg) != NULL)
            config_report_at(c->rep, root->keys[i],
                             "unknown top-level key '%s' (did you mean '%s'?)",
                             config_clip(&cb, key), config_suggested(&sg));
        else if (main_file)
            config_report_at(c->rep, root->keys[i],
                             "unknown top-level key '%s' (expected plugins, log, admin, "
                             "state, triggers, connectors or scalers)",
                             config_clip(&cb, key));
        else
            config_report_at(c->rep, root->keys[i],
                             "unknown top-level key '%s' (an included file may give include, "
                             "triggers, connectors, scalers and extend)",
                             config_clip(&cb, key));
    }
}

/* ---- extend: -------------------------------------------------------------------------------- */

/* What every extend of one option of one component adds, merged once at the end. */
typedef struct ext_target {
    size_t comp;
    const char *option;
    const config_node *base; /* the component's own mapping for it, or NULL */
    const config_node *first_key;
    const config_node *first_val;
    int refused; /* the component's own value is not a mapping: reported, nothing merged */
    config_node **keys, **items; /* what the extends add (malloc'd) */
    size_t n, cap;
    strmap names; /* name -> the key node that declared it */
} ext_target;

typedef struct ext_state {
    ext_target **targets; /* malloc'd, each malloc'd */
    size_t n, cap;
    strmap by_key; /* "COMP\x1fOPTION" (in the arena) -> target */
} ext_state;

static void ext_state_free(ext_state *es)
{
    for (size_t i = 0; i < es->n; i++) {
        free(es->targets[i]->keys);
        free(es->targets[i]->items);
        strmap_free(&es->targets[i]->names);
        free(es->targets[i]);
    }
    free(es->targets);
    strmap_free(&es->by_key);
}

/* Keys phase 1 reads for the host (of any kind): extend never adds to them. */
static int is_host_key(const char *key)
{
    static const char *const host[] = {"id", "type", "from", "to", "match", "min", "max"};
    for (size_t i = 0; i < sizeof host / sizeof *host; i++)
        if (strcmp(host[i], key) == 0)
            return 1;
    return 0;
}

/* The target for (comp, option), made on first use; NULL when out of memory. */
static ext_target *ext_target_for(config_checker *c, ext_state *es, size_t ci,
                                  const config_node *key, const config_node *val)
{
    textbuf t = {0};
    textbuf_printf(&t, "%zu\x1f%s", ci, key->scalar);
    char *name = t.oom ? NULL : arena_strndup(&c->store->mem, t.p, t.len);
    textbuf_free(&t);
    if (name == NULL)
        return NULL;
    ext_target *tg = strmap_get(&es->by_key, name);
    if (tg != NULL)
        return tg;
    if (es->n == es->cap) {
        size_t ncap = es->cap ? es->cap * 2 : 8;
        ext_target **nt = realloc(es->targets, ncap * sizeof *nt);
        if (nt == NULL)
            return NULL;
        es->targets = nt;
        es->cap = ncap;
    }
    if ((tg = calloc(1, sizeof *tg)) == NULL)
        return NULL;
    es->targets[es->n++] = tg;
    tg->comp = ci;
    tg->option = key->scalar;
    tg->first_key = key;
    tg->first_val = val;
    const config_component *comp = &c->cfg->components[ci];
    const config_node *base = config_map_get(comp->node, key->scalar);
    if (strmap_put(&es->by_key, name, tg) != 0)
        return NULL;
    if (config_is_null(base))
        return tg;
    if (base->kind != CONFIG_MAPPING) {
        config_wherebuf wb;
        config_clipbuf cb;
        config_report_at(c->rep, key,
                         "extend: '%s' of '%s' is %s where it is declared (%s), not a mapping: "
                         "extend adds only to a map of objects",
                         config_clip(&cb, key->scalar), comp->id, config_node_kind_phrase(base->kind),
                         config_where(&wb, c->rep, base, NULL));
        tg->refused = 1;
        return tg;
    }
    tg->base = base;
    for (size_t i = 0; i < base->count; i++)
        if (strmap_get(&tg->names, base->keys[i]->scalar) == NULL &&
            strmap_put(&tg->names, base->keys[i]->scalar, base->keys[i]) != 0)
            return NULL;
    return tg;
}

/* Adds one extend's entries (val, a mapping) to its target; a name already there is reported at
 * the later one. Returns -1 out of memory. */
static int ext_add(config_checker *c, ext_target *tg, const config_node *val)
{
    const config_component *comp = &c->cfg->components[tg->comp];
    for (size_t i = 0; i < val->count; i++) {
        config_node *k = val->keys[i];
        const config_node *first = strmap_get(&tg->names, k->scalar);
        if (first != NULL) {
            if (first == k)
                continue; /* an alias repeating the same mapping: reported while reading */
            config_clipbuf cb;
            config_wherebuf wb;
            config_report_at(c->rep, k, "%s '%s' of '%s' is already declared at %s", tg->option,
                             config_clip(&cb, k->scalar), comp->id,
                             config_where(&wb, c->rep, first, NULL));
            continue;
        }
        if (strmap_put(&tg->names, k->scalar, k) != 0)
            return -1;
        if (tg->n == tg->cap) {
            size_t ncap = tg->cap ? tg->cap * 2 : 8;
            config_node **nk = realloc(tg->keys, ncap * sizeof *nk);
            if (nk == NULL)
                return -1;
            tg->keys = nk;
            config_node **ni = realloc(tg->items, ncap * sizeof *ni);
            if (ni == NULL)
                return -1;
            tg->items = ni;
            tg->cap = ncap;
        }
        tg->keys[tg->n] = k;
        tg->items[tg->n++] = val->items[i];
    }
    return 0;
}

/* One entry of an extend list: {id: COMPONENT, OPTION: {NAME: OBJECT, ...}, ...}. */
static int ext_entry(config_checker *c, ext_state *es, const config_node *e)
{
    config_clipbuf cb;
    if (e->kind != CONFIG_MAPPING) {
        config_report_at(c->rep, e,
                         "each entry of 'extend' must be a mapping like {id: router, services: "
                         "{...}}, got %s",
                         config_node_kind_phrase(e->kind));
        return 0;
    }
    const config_node *id = config_map_get(e, "id");
    size_t ci = CONFIG_NO_COMP;
    if (config_is_null(id) || id->kind != CONFIG_SCALAR) {
        config_report_at(c->rep, config_is_null(id) ? e : id,
                         "extend: give the id of the component it adds to (id: router)");
    } else {
        const config_component *comp = strmap_get(&c->store->ids, id->scalar);
        if (comp != NULL) {
            ci = (size_t)(comp - c->cfg->components);
        } else {
            config_suggestion sg;
            config_suggest_start(&sg, id->scalar);
            for (size_t i = 0; i < c->cfg->ncomponents; i++)
                if (c->cfg->components[i].id != NULL)
                    config_suggest(&sg, c->cfg->components[i].id);
            if (config_suggested(&sg) != NULL)
                config_report_at(c->rep, id, "extend: no component '%s' (did you mean '%s'?)",
                                 config_clip(&cb, id->scalar), config_suggested(&sg));
            else
                config_report_at(c->rep, id, "extend: no component '%s' in any file",
                                 config_clip(&cb, id->scalar));
        }
    }
    for (size_t i = 0; i < e->count; i++) {
        const config_node *key = e->keys[i], *val = e->items[i];
        if (strcmp(key->scalar, "id") == 0)
            continue;
        if (is_host_key(key->scalar)) {
            config_report_at(c->rep, key,
                             "extend: '%s' is the host's, not a plugin option: extend adds only "
                             "to a plugin's maps of objects",
                             key->scalar);
            continue;
        }
        if (val->kind != CONFIG_MAPPING) {
            config_report_at(c->rep, val,
                             "extend: '%s' must be a mapping of names to objects, got %s",
                             config_clip(&cb, key->scalar), config_node_kind_phrase(val->kind));
            continue;
        }
        if (ci == CONFIG_NO_COMP)
            continue;
        ext_target *tg = ext_target_for(c, es, ci, key, val);
        if (tg == NULL)
            return -1;
        if (!tg->refused && ext_add(c, tg, val) != 0)
            return -1;
    }
    return 0;
}

/* The component's mapping with one option's value replaced (or added): new nodes in the arena,
 * as the old ones may be shared by aliases. */
static int ext_merge(config_checker *c, const ext_target *tg)
{
    arena *mem = &c->store->mem;
    config_component *comp = &c->cfg->components[tg->comp];
    size_t nbase = tg->base ? tg->base->count : 0, n = nbase + tg->n;
    config_node *merged = arena_alloc(mem, sizeof *merged);
    if (merged == NULL)
        return -1;
    *merged = tg->base ? *tg->base : *tg->first_val;
    merged->kind = CONFIG_MAPPING;
    merged->count = n;
    merged->keys = arena_alloc(mem, (n ? n : 1) * sizeof *merged->keys);
    merged->items = arena_alloc(mem, (n ? n : 1) * sizeof *merged->items);
    if (merged->keys == NULL || merged->items == NULL)
        return -1;
    for (size_t i = 0; i < nbase; i++) {
        merged->keys[i] = tg->base->keys[i];
        merged->items[i] = tg->base->items[i];
    }
    for (size_t i = 0; i < tg->n; i++) {
        merged->keys[nbase + i] = tg->keys[i];
        merged->items[nbase + i] = tg->items[i];
    }
    const config_node *old = comp->node;
    size_t at = old->count;
    for (size_t i = 0; i < old->count && at == old->count; i++)
        if (strcmp(old->keys[i]->scalar, tg->option) == 0)
            at = i;
    size_t m = old->count + (at == old->count);
    config_node *node = arena_alloc(mem, sizeof *node);
    if (node == NULL)
        return -1;
    *node = *old;
    node->count = m;
    node->keys = arena_alloc(mem, m * sizeof *node->keys);
    node->items = arena_alloc(mem, m * sizeof *node->items);
    if (node->keys == NULL || node->items == NULL)
        return -1;
    for (size_t i = 0; i < old->count; i++) {
        node->keys[i] = old->keys[i];
        node->items[i] = old->items[i];
    }
    if (at == old->count)
        node->keys[at] = (config_node *)tg->first_key;
    node->items[at] = merged;
    comp->node = node;
    return 0;
}

static int extension_cmp(const void *pa, const void *pb)
{
    const config_extension *a = pa, *b = pb;
    if (a->comp != b->comp)
        return a->comp < b->comp ? -1 : 1;
    return strcmp(a->option, b->option);
}

/* Every file's extend list, in file order, merged into the components' mappings; what phase 2
 * must check is kept in the store. */
static void check_extends(config_checker *c, const config_node *const *ext, size_t nroots)
{
    ext_state es = {0};
    int oom = 0;
    for (size_t r = 0; r < nroots && !oom; r++) {
        const config_node *v = ext[r];
        if (config_is_null(v))
            continue;
        if (v->kind != CONFIG_SEQUENCE) {
            config_report_at(c->rep, v,
                             "'extend' must be a list of mappings like - {id: router, services: "
                             "{...}}, got %s",
                             config_node_kind_phrase(v->kind));
            continue;
        }
        for (size_t i = 0; i < v->count && !oom; i++)
            oom = ext_entry(c, &es, v->items[i]) != 0;
    }
    if (!oom && es.n > 0) {
        c->store->extensions = arena_alloc(&c->store->mem, es.n * sizeof *c->store->extensions);
        oom = c->store->extensions == NULL;
    }
    for (size_t i = 0; i < es.n && !oom; i++) {
        const ext_target *tg = es.targets[i];
        if (tg->refused)
            continue;
        c->store->extensions[c->store->nextensions++] =
            (config_extension){tg->comp, tg->option, tg->first_key};
        oom = ext_merge(c, tg) != 0;
    }
    ext_state_free(&es);
    if (oom) {
        c->rep->oom = 1;
        return;
    }
    /* By component, so phase 2 finds a component's own with a binary search. */
    if (c->store->nextensions > 1)
        qsort(c->store->extensions, c->store->nextensions, sizeof *c->store->extensions,
              extension_cmp);
}

void config_check_roots(config_checker *c)
{
    config_store *st = c->store;
    config *cfg = c->cfg;
    cfg->admin.listen = CONFIG_ADMIN_DEFAULT_LISTEN;
    cfg->admin.line = cfg->admin.col = 1;
    cfg->state.every_ms = CONFIG_STATE_DEFAULT_EVERY_MS;
    size_t nroots = st->nroots;
    if (nroots == 0)
        return;
    const config_node **val = calloc(nroots * NTOP, sizeof *val);
    const config_node **ext = calloc(nroots, sizeof *ext);
    if (val == NULL || ext == NULL) {
        free(val);
        free(ext);
        c->rep->oom = 1;
        return;
    }
    for (size_t r = 0; r < nroots; r++)
        if (!config_is_null(st->roots[r]))
            read_top(c, st->roots[r], r == 0, &val[r * NTOP]);
    check_plugins(c, val[TOP_PLUGINS]);
    check_log(c, val[TOP_LOG]);
    check_admin(c, val[TOP_ADMIN]);
    check_state(c, val[TOP_STATE]);

    size_t total = 0;
    for (size_t r = 0; r < nroots; r++) {
        total += count_entries(val[r * NTOP + TOP_TRIGGERS]) +
                 count_entries(val[r * NTOP + TOP_CONNECTORS]) +
                 count_entries(val[r * NTOP + TOP_SCALERS]);
        ext[r] = val[r * NTOP + TOP_EXTEND];
    }
    if (total > 0) {
        cfg->components = arena_alloc(&st->mem, total * sizeof *cfg->components);
        c->side = arena_alloc(&st->mem, total * sizeof *c->side);
        if (cfg->components == NULL || c->side == NULL) {
            c->rep->oom = 1;
            goto out;
        }
    }
    /* Triggers, then connectors, then scalers; each kind in file order (main file first). */
    static const char *const names[] = {"triggers", "connectors", "scalers"};
    static const sb_kind kinds[] = {SB_KIND_TRIGGER, SB_KIND_CONNECTOR, SB_KIND_SCALER};
    size_t next = 0;
    for (size_t k = 0; k < 3; k++)
        for (size_t r = 0; r < nroots; r++)
            if (load_section(c, val[r * NTOP + TOP_TRIGGERS + k], names[k], kinds[k], &next) != 0) {
                c->rep->oom = 1;
                goto out;
            }
    cfg->ncomponents = next;
    for (size_t i = 0; i < next; i++)
        cfg->components[i].file = config_node_file(c->rep, cfg->components[i].node);
    index_ids(c);
    if (!c->rep->oom)
        check_extends(c, ext, nroots);
    if (!c->rep->oom)
        config_check_graph(c);
out:
    free(val);
    free(ext);
}
