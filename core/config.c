/*
 * config.c - pipeline files, from bytes to validated components: the entry points, the error
 * list, and the words every message uses. The stages live in their own files (see
 * config_internal.h): config_tree.c reads YAML into a tree of nodes with positions, then phase 1
 * (config_check.c, config_graph.c) checks the structure and phase 2 (config_options.c) each
 * component's options. Every stage reports every error it finds, with its file:line:col, and goes
 * on; errors print sorted by position.
 *
 * Memory: everything the tree owns lives in one arena (the config_store behind cfg->arena); what
 * a plugin instance gets (values, their strings, the fingerprint) lives in the component's own
 * arena, so the daemon can keep an instance's values alive across a reload without the old tree.
 */
#define _DEFAULT_SOURCE /* realpath */
#define _POSIX_C_SOURCE 200809L

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "config_internal.h"
#include "strmap.h"
#include "textbuf.h"

/* ---- Errors ------------------------------------------------------------------------------- */

void config_errors_init(config_errors *errs)
{
    errs->items = NULL;
    errs->count = errs->cap = 0;
    errs->main_file = NULL;
}

/* The file whose errors print first: the one config_parse_file() or _string() was given. */
static void errors_set_main(config_errors *errs, const char *file)
{
    if (errs->main_file == NULL && file != NULL)
        errs->main_file = strdup(file); /* without it, the first error's file comes first */
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
    free(errs->main_file);
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
    /* A problem of the whole file is at its first character: an editor jumps there. */
    errs->items[errs->count++] = (config_error){
        .file = f, .line = line > 0 ? line : 1, .col = col > 0 ? col : 1, .message = msg};
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

typedef struct sorted_error {
    const config_error *e;
    int other_file; /* 0 for the main file (or the first error's): its errors come first */
    size_t seq;
} sorted_error;

static int sorted_error_cmp(const void *pa, const void *pb)
{
    const sorted_error *a = pa, *b = pb;
    if (a->other_file != b->other_file)
        return a->other_file - b->other_file;
    if (a->other_file) {
        int c = strcmp(a->e->file, b->e->file);
        if (c != 0)
            return c;
    }
    if (a->e->line != b->e->line)
        return a->e->line < b->e->line ? -1 : 1;
    if (a->e->col != b->e->col)
        return a->e->col < b->e->col ? -1 : 1;
    return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* The errors of items[start..] in reading order (file, line, column; equal positions in the
 * order they were found), or NULL when out of memory. */
static sorted_error *sorted_errors(const config_errors *errs, size_t start)
{
    size_t n = errs->count - start;
    sorted_error *tmp = malloc((n ? n : 1) * sizeof *tmp);
    if (tmp == NULL)
        return NULL;
    const char *first = errs->main_file != NULL ? errs->main_file
                        : n                     ? errs->items[start].file
                                                : NULL;
    for (size_t i = 0; i < n; i++) {
        const config_error *e = &errs->items[start + i];
        tmp[i] = (sorted_error){e, strcmp(e->file, first) != 0, i};
    }
    qsort(tmp, n, sizeof *tmp, sorted_error_cmp);
    return tmp;
}

void config_sort_errors_from(config_errors *errs, size_t start)
{
    if (errs->count - start < 2)
        return;
    size_t n = errs->count - start;
    sorted_error *tmp = sorted_errors(errs, start);
    config_error *copy = malloc(n * sizeof *copy);
    if (tmp != NULL && copy != NULL) { /* unsorted is still correct */
        for (size_t i = 0; i < n; i++)
            copy[i] = *tmp[i].e;
        memcpy(&errs->items[start], copy, n * sizeof *copy);
    }
    free(copy);
    free(tmp);
}

void config_errors_print(const config_errors *errs, void *stdio_file)
{
    FILE *out = stdio_file != NULL ? stdio_file : stderr;
    /* Several stages (and the daemon's create()) add errors; a user reads them top down. */
    sorted_error *order = sorted_errors(errs, 0);
    for (size_t i = 0; i < errs->count; i++) {
        const config_error *e = order != NULL ? order[i].e : &errs->items[i];
        fprintf(out, "%s:%d:%d: %s\n", e->file, e->line, e->col, e->message);
    }
    free(order);
}

void config_report(config_reporter *r, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errors_vadd(r->errs, r->file, line, col, fmt, ap) != 0)
        r->oom = 1;
    va_end(ap);
}

void config_report_at(config_reporter *r, const config_node *n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (errors_vadd(r->errs, config_node_file(r, n), n ? n->line : 1, n ? n->col : 1, fmt, ap) !=
        0)
        r->oom = 1;
    va_end(ap);
}

const char *config_node_file(const config_reporter *r, const config_node *n)
{
    return n != NULL && n->file != NULL ? n->file : r->file;
}

const char *config_where(config_wherebuf *b, const config_reporter *r, const config_node *n,
                         const config_node *from)
{
    const char *nf = config_node_file(r, n);
    if (from != NULL && strcmp(nf, config_node_file(r, from)) == 0)
        snprintf(b->s, sizeof b->s, "%d:%d", n->line, n->col);
    else
        snprintf(b->s, sizeof b->s, "%.250s:%d:%d", nf, n->line, n->col);
    return b->s;
}

/* ---- The words of messages ---------------------------------------------------------------- */

const char *config_clip(config_clipbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (n < sizeof b->s)
        return s;
    snprintf(b->s, sizeof b->s, "%.*s...", (int)sizeof b->s - 4, s);
    return b->s;
}

const char *config_describe(config_clipbuf *b, const config_node *n)
{
    if (n->kind != CONFIG_SCALAR)
        return config_node_kind_phrase(n->kind);
    if (strlen(n->scalar) + 3 <= sizeof b->s)
        snprintf(b->s, sizeof b->s, "'%s'", n->scalar);
    else
        snprintf(b->s, sizeof b->s, "'%.*s...'", (int)sizeof b->s - 6, n->scalar);
    return b->s;
}

const char *config_kind_word(sb_kind k)
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

const char *config_node_kind_phrase(config_node_kind k)
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

int config_is_null(const config_node *n)
{
    if (n == NULL)
        return 1;
    if (n->kind != CONFIG_SCALAR || n->quoted)
        return 0;
    const char *s = n->scalar;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

const config_node *config_map_get(const config_node *m, const char *key)
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

void config_suggest_start(config_suggestion *s, const char *word)
{
    *s = (config_suggestion){.word = word, .dist = SIZE_MAX};
}

/* The closest by edit distance within 2 wins (the first on a tie); a distance as long as the
 * word itself would "correct" any short word into anything, so it does not count. Failing that,
 * the longest shared beginning of 4 characters or more that covers at least half of the shorter
 * word. */
void config_suggest(config_suggestion *s, const char *cand)
{
    size_t lw = strlen(s->word), lc = strlen(cand);
    size_t d = edit_distance(s->word, cand);
    if (d <= 2 && d < lw && d < s->dist) {
        s->best = cand;
        s->dist = d;
    }
    size_t p = 0;
    while (s->word[p] != '\0' && s->word[p] == cand[p])
        p++;
    if (p >= 4 && 2 * p >= (lw < lc ? lw : lc) && p > s->prefix && p < lw) {
        s->by_prefix = cand;
        s->prefix = p;
    }
}

const char *config_suggested(const config_suggestion *s)
{
    return s->best != NULL ? s->best : s->by_prefix;
}

/* ---- Reading files ------------------------------------------------------------------------ */

/* "a FIFO", "a character device", ...: what a path is when it is not a regular file. */
static const char *file_kind_phrase(mode_t mode)
{
    if (S_ISFIFO(mode))
        return "a FIFO";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "something else";
}

typedef struct read_why {
    char s[160];
} read_why;

/* Opens a regular file for reading, or says why not and returns -1. A FIFO is opened without
 * waiting for a writer, then refused like any other file that is not regular: `check` must
 * answer, not hang on a pipe nobody writes to. */
static int open_regular(const char *path, struct stat *st, read_why *why)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        int err = errno;
        if (err == ENXIO && stat(path, st) == 0 && S_ISSOCK(st->st_mode))
            snprintf(why->s, sizeof why->s, "cannot read: a socket, not a regular file");
        else
            snprintf(why->s, sizeof why->s, "cannot read: %s", strerror(err));
        return -1;
    }
    int err = fstat(fd, st) != 0 ? errno : 0;
    if (err == 0 && S_ISDIR(st->st_mode))
        err = EISDIR;
    if (err != 0) {
        snprintf(why->s, sizeof why->s, "cannot read: %s", strerror(err));
    } else if (!S_ISREG(st->st_mode)) {
        snprintf(why->s, sizeof why->s, "cannot read: %s, not a regular file",
                 file_kind_phrase(st->st_mode));
        err = EINVAL;
    } else if (st->st_size > CONFIG_MAX_FILE_BYTES) {
        snprintf(why->s, sizeof why->s, "file is larger than %u bytes: not read",
                 CONFIG_MAX_FILE_BYTES);
        err = EFBIG;
    } else {
        int fl = fcntl(fd, F_GETFL);
        if (fl >= 0)
            (void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    }
    if (err != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* A regular file's bytes (malloc'd, *buf freed by the caller), or -1 with why. At most one byte
 * past the limit is read: a file growing while we read is refused the same way. */
static int read_regular(const char *path, char **buf_out, size_t *len_out, read_why *why)
{
    struct stat st;
    *buf_out = NULL;
    *len_out = 0;
    int fd = open_regular(path, &st, why);
    if (fd < 0)
        return -1;
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
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
    if (err == 0 && len > CONFIG_MAX_FILE_BYTES) {
        snprintf(why->s, sizeof why->s, "file is larger than %u bytes: not read",
                 CONFIG_MAX_FILE_BYTES);
        err = EFBIG;
    } else if (err != 0) {
        snprintf(why->s, sizeof why->s, "cannot read: %s", strerror(err));
    }
    if (err != 0) {
        free(buf);
        return -1;
    }
    *buf_out = buf;
    *len_out = len;
    return 0;
}

/* ---- include: ----------------------------------------------------------------------------- */

/* What reading the main file and its includes shares. */
typedef struct includer {
    config *cfg;
    config_store *st;
    config_reporter *rep;
    int from_disk;  /* config_parse_file: include: reads files; config_parse_string: refused */
    size_t nodes;   /* across all files */
    size_t bytes;   /* across all files */
    strmap seen;    /* real path -> its index + 1 in files, each file read once */
    char **files;   /* real paths (malloc'd while reading, then moved into the arena) */
    size_t nfiles, cap;
    int full;       /* a whole-set limit was reached: nothing more is read */
    int node_limit; /* the node limit was reached in some file */
} includer;

/* p beside file (in file's folder) unless absolute, in mem. With escape_dir, the folder's glob
 * characters are escaped, for glob(3). */
static char *path_beside(arena *mem, const char *file, const char *p, int escape_dir)
{
    const char *slash = strrchr(file, '/');
    if (p[0] == '/' || slash == NULL)
        return arena_strdup(mem, p);
    while (p[0] == '.' && p[1] == '/') /* "./x" next to the file reads better as "dir/x" */
        p += 2;
    size_t dirlen = (size_t)(slash - file);
    textbuf t = {0};
    if (dirlen == 0)
        dirlen = 1; /* "/x.yaml" lives in "/" */
    for (size_t i = 0; i < dirlen; i++) {
        if (escape_dir && strchr("*?[\\", file[i]) != NULL)
            textbuf_putn(&t, "\\", 1);
        textbuf_putn(&t, file + i, 1);
    }
    if (slash != file)
        textbuf_putn(&t, "/", 1);
    textbuf_puts(&t, p);
    char *out = t.oom ? NULL : arena_strndup(mem, t.p, t.len);
    textbuf_free(&t);
    return out;
}

/* Adds a file (its real path, taken over; its display name; its tree) to the set read. */
static int includer_add(includer *in, char *real, const char *display, config_node *root)
{
    if (in->nfiles == in->cap) {
        size_t ncap = in->cap ? in->cap * 2 : 8;
        char **nf = realloc(in->files, ncap * sizeof *nf);
        config_node **nr = nf ? realloc(in->st->roots, ncap * sizeof *nr) : NULL;
        if (nf != NULL)
            in->files = nf;
        if (nr != NULL)
            in->st->roots = nr;
        const char **nd = nr ? realloc(in->st->root_files, ncap * sizeof *nd) : NULL;
        if (nd == NULL) {
            free(real);
            return -1;
        }
        in->st->root_files = nd;
        in->cap = ncap;
    }
    in->files[in->nfiles] = real;
    in->st->roots[in->nfiles] = root;
    in->st->root_files[in->nfiles] = display;
    in->nfiles++;
    in->st->nroots = in->nfiles;
    if (strmap_put(&in->seen, real, (void *)(uintptr_t)in->nfiles) != 0)
        return -1;
    return 0;
}

static void follow_includes(includer *in, const config_node *root, const char *display,
                            int depth);

/* One file named by an include entry (at), depth deep (1: named by the main file): read once,
 * its tree built, its own includes followed. */
static void include_one(includer *in, const config_node *at, const char *path, int depth)
{
    config_clipbuf cb;
    config_reporter *rep = in->rep;
    if (in->full || rep->oom)
        return;
    if (depth > CONFIG_MAX_INCLUDE_DEPTH) {
        config_report_at(rep, at,
                         "include %s: includes nested more than %d deep (a file that includes "
                         "a file that includes ...): not read",
                         config_clip(&cb, path), CONFIG_MAX_INCLUDE_DEPTH);
        return;
    }
    char *real = realpath(path, NULL);
    if (real == NULL) {
        config_report_at(rep, at, "include %s: cannot read: %s", config_clip(&cb, path),
                         strerror(errno));
        return;
    }
    if (strmap_get(&in->seen, real) != NULL) { /* read once, whichever route names it again */
        free(real);
        return;
    }
    if (in->nfiles >= CONFIG_MAX_INCLUDE_FILES) {
        config_report_at(rep, at, "include %s: more than %d files in all: the rest are not read",
                         config_clip(&cb, path), CONFIG_MAX_INCLUDE_FILES);
        in->full = 1;
        free(real);
        return;
    }
    read_why why;
    char *buf = NULL;
    size_t len = 0;
    if (read_regular(real, &buf, &len, &why) != 0) {
        config_report_at(rep, at, "include %s: %s", config_clip(&cb, path), why.s);
        free(real);
        return;
    }
    if (in->bytes + len > CONFIG_MAX_TOTAL_BYTES) {
        config_report_at(rep, at,
                         "include %s: the files come to more than %u bytes in all: the rest are "
                         "not read",
                         config_clip(&cb, path), CONFIG_MAX_TOTAL_BYTES);
        in->full = 1;
        free(buf);
        free(real);
        return;
    }
    in->bytes += len;
    const char *display = arena_strdup(&in->st->mem, path);
    if (display == NULL) {
        rep->oom = 1;
        free(buf);
        free(real);
        return;
    }
    config_reporter sub = {rep->errs, display, 0};
    config_node *root = NULL;
    int rc = in->node_limit ? -1
                            : config_tree_build(&in->st->mem, &sub, 1, display, &in->nodes, buf,
                                                len, &root);
    free(buf);
    if (sub.oom) {
        rep->oom = 1;
        free(real);
        return;
    }
    if (rc != 0 && in->nodes >= CONFIG_MAX_NODES)
        in->node_limit = 1;
    if (includer_add(in, real, display, root) != 0) {
        rep->oom = 1;
        return;
    }
    follow_includes(in, root, display, depth);
}

/* The include: of one file's top level (a path or glob, or a list of them), each entry
 * relative to that file's folder. depth: the file's own (0 for the main file). */
static void follow_includes(includer *in, const config_node *root, const char *display,
                            int depth)
{
    if (root == NULL || root->kind != CONFIG_MAPPING)
        return;
    const config_node *key = NULL, *v = NULL;
    for (size_t i = 0; i < root->count && key == NULL; i++)
        if (strcmp(root->keys[i]->scalar, "include") == 0) {
            key = root->keys[i];
            v = root->items[i];
        }
    if (key == NULL || config_is_null(v))
        return;
    config_reporter *rep = in->rep;
    if (!in->from_disk) {
        config_report_at(rep, key,
                         "'include' is read only from a pipeline file on disk (this text was "
                         "not read from a file)");
        return;
    }
    const config_node *const *items = &v;
    size_t n = 1;
    if (v->kind == CONFIG_SEQUENCE) {
        items = (const config_node *const *)v->items;
        n = v->count;
    } else if (v->kind != CONFIG_SCALAR) {
        config_report_at(rep, v, "'include' must be a path or glob, or a list of them, got %s",
                         config_node_kind_phrase(v->kind));
        return;
    }
    config_clipbuf cb;
    for (size_t i = 0; i < n && !in->full && !rep->oom; i++) {
        const config_node *it = items[i];
        if (it->kind != CONFIG_SCALAR || it->scalar[0] == '\0') {
            config_report_at(rep, it, "include entries must be paths or globs, got %s",
                             it->kind == CONFIG_SCALAR ? "an empty string"
                                                       : config_node_kind_phrase(it->kind));
            continue;
        }
        int is_glob = strpbrk(it->scalar, "*?[") != NULL;
        char *path = path_beside(&in->st->mem, display, it->scalar, is_glob);
        if (path == NULL) {
            rep->oom = 1;
            return;
        }
        if (!is_glob) {
            include_one(in, it, path, depth + 1);
            continue;
        }
        glob_t g;
        int rc = glob(path, 0, NULL, &g);
        if (rc == GLOB_NOSPACE) {
            rep->oom = 1;
        } else if (rc == GLOB_ABORTED) {
            config_report_at(rep, it, "include %s: a folder could not be read",
                             config_clip(&cb, it->scalar));
        } else if (rc == 0) {
            /* Sorted by glob(3): conf.d/10-a.yaml before conf.d/20-b.yaml. */
            for (size_t k = 0; k < g.gl_pathc; k++)
                include_one(in, it, g.gl_pathv[k], depth + 1);
        } /* GLOB_NOMATCH: an empty conf.d is fine */
        globfree(&g); /* glob() set it up, whatever it returned */
    }
}

/* The set of files read, into cfg (in the arena). */
static int includer_finish(includer *in)
{
    config *cfg = in->cfg;
    cfg->files = arena_alloc(&in->st->mem, (in->nfiles ? in->nfiles : 1) * sizeof *cfg->files);
    if (cfg->files == NULL)
        return -1;
    for (size_t i = 0; i < in->nfiles; i++)
        if ((cfg->files[i] = arena_strdup(&in->st->mem, in->files[i])) == NULL)
            return -1;
    cfg->nfiles = in->nfiles;
    return 0;
}

static void includer_release(includer *in)
{
    strmap_free(&in->seen);
    for (size_t i = 0; i < in->nfiles; i++)
        free(in->files[i]);
    free(in->files);
    in->files = NULL;
    in->nfiles = 0;
}

/* ---- Entry points ------------------------------------------------------------------------- */

static config *parse_fail_oom(config *cfg, config_reporter *rep)
{
    config_free(cfg);
    config_report(rep, 1, 1, "out of memory");
    return NULL;
}

/* The main file's text, then (from_disk) the files it includes, then phase 1 over all of them. */
static config *parse_text(const char *text, size_t len, const char *name, int from_disk,
                          config_errors *errs)
{
    size_t before = errs->count;
    config_reporter rep = {errs, name != NULL ? name : "<string>", 0};
    errors_set_main(errs, rep.file);
    if (len > CONFIG_MAX_FILE_BYTES) {
        config_report(&rep, 1, 1, "file is larger than %u bytes: not read", CONFIG_MAX_FILE_BYTES);
        return NULL;
    }
    if (text == NULL)
        text = ""; /* libyaml asserts on a NULL input */
    config *cfg = calloc(1, sizeof *cfg);
    config_store *st = calloc(1, sizeof *st);
    if (cfg == NULL || st == NULL) {
        free(cfg);
        free(st);
        return parse_fail_oom(NULL, &rep);
    }
    cfg->arena = st;
    cfg->log_level = SB_LOG_INFO;
    if ((cfg->path = arena_strdup(&st->mem, rep.file)) == NULL)
        return parse_fail_oom(cfg, &rep);

    includer in = {.cfg = cfg, .st = st, .rep = &rep, .from_disk = from_disk, .bytes = len};
    int rc = config_tree_build(&st->mem, &rep, 1, NULL, &in.nodes, text, len, &cfg->root);
    if (rep.oom) {
        includer_release(&in);
        return parse_fail_oom(cfg, &rep);
    }
    if (rc != 0) {
        config_sort_errors_from(errs, before);
        config_free(cfg);
        return NULL;
    }
    char *real = from_disk ? realpath(rep.file, NULL) : NULL;
    if (real == NULL)
        real = strdup(rep.file);
    if (real == NULL || includer_add(&in, real, NULL, cfg->root) != 0) {
        includer_release(&in);
        return parse_fail_oom(cfg, &rep);
    }
    follow_includes(&in, cfg->root, rep.file, 0);
    if (rep.oom || includer_finish(&in) != 0) {
        includer_release(&in);
        return parse_fail_oom(cfg, &rep);
    }
    includer_release(&in);
    config_checker c = {.cfg = cfg, .store = st, .rep = &rep};
    config_check_roots(&c);
    if (rep.oom)
        return parse_fail_oom(cfg, &rep);
    config_sort_errors_from(errs, before);
    return cfg;
}

config *config_parse_string(const char *text, size_t len, const char *name, config_errors *errs)
{
    return parse_text(text, len, name, 0, errs);
}

config *config_parse_file(const char *path, config_errors *errs)
{
    read_why why;
    char *buf = NULL;
    size_t len = 0;
    errors_set_main(errs, path);
    if (read_regular(path, &buf, &len, &why) != 0) {
        config_error_add(errs, path, 1, 1, "%s", why.s);
        return NULL;
    }
    config *cfg = parse_text(buf, len, path, 1, errs);
    free(buf);
    return cfg;
}

void config_plugin_path_refused(config *cfg, size_t i, const char *why, config_errors *errs)
{
    if (cfg == NULL || i >= cfg->nplugin_paths || cfg->arena == NULL)
        return;
    config_store *st = cfg->arena;
    const config_node *at = st->path_nodes != NULL ? st->path_nodes[i] : NULL;
    if (why == NULL || *why == '\0')
        why = "cannot be used";
    config_error_add(errs, cfg->path, at ? at->line : 1, at ? at->col : 1, "plugins.path: %s", why);
    if (st->path_refused == NULL)
        st->path_refused = arena_alloc(&st->mem, cfg->nplugin_paths * sizeof *st->path_refused);
    if (st->path_refused != NULL && st->path_refused[i] == NULL)
        st->path_refused[i] = arena_strdup(&st->mem, why);
}

void config_free(config *cfg)
{
    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->ncomponents; i++)
        config_component_arena_free(cfg->components[i].arena);
    config_store *st = cfg->arena;
    if (st != NULL) {
        strmap_free(&st->ids);
        free(st->roots);
        free(st->root_files);
        arena_release(&st->mem);
        free(st);
    }
    free(cfg);
}

void config_component_arena_free(void *component_arena)
{
    arena *a = component_arena;
    if (a == NULL)
        return;
    arena_release(a);
    free(a);
}

const config_component *config_find(const config *cfg, const char *id)
{
    if (cfg == NULL || id == NULL || cfg->arena == NULL)
        return NULL;
    const config_store *st = cfg->arena;
    return strmap_get(&st->ids, id);
}
