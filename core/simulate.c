/*
 * simulate.c - `scalebus simulate` (see simulate.h): replays a trace of readings through a
 * pipeline file's connectors on virtual time and writes every decision as CSV, and optionally an
 * SVG chart with one panel per scaler.
 *
 * The daemon runs in simulate mode: triggers and scalers are plugin-less instances that keep their
 * ids, bounds and edges, while connectors are the real plugins. Each trace row becomes its
 * trigger's reading stamped with the row's virtual time, and the bus is flushed at once, so every
 * decision happens at that virtual instant. Desired counts reach this file through the daemon's
 * sim_desired hook and drive a model of each scaler: instances it adds count as running after
 * --startup, instances it removes stop at once. Every change of the model's running count goes
 * back to the policies as the scaler's SB_TOPIC_INSTANCES event, as a real scaler's would.
 *
 * The whole trace is read and checked before anything runs (errors as TRACE:LINE: message); it is
 * parsed in place, so each row's labels point into the file's own buffer.
 */
#define _POSIX_C_SOURCE 200809L
#include "simulate.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"

/* Virtual time of time_s = 0. Far above any real CLOCK_MONOTONIC reading (31 years of uptime),
 * so an event stamped on virtual time is told apart from one stamped with the real clock, and
 * small enough that base + 4e9 s plus the bus's wall-clock offset stays inside int64_t. */
#define SIM_BASE_NS 1000000000000000000ull
#define SIM_MAX_TIME_S 4e9
#define SIM_MAX_ERRORS 20     /* trace errors printed before "... and N more" */
#define SIM_MAX_FIELDS 8      /* fields kept per CSV record (more are counted, then refused) */
#define SIM_MAX_LABELS 32     /* labels per trace row */
#define SIM_CHART_POINTS 2000 /* most points drawn per line */
#define SIM_CHART_INPUTS 12   /* most input lines drawn per panel */

/* ---- small containers --------------------------------------------------------------------- */

/* Grow an array to hold at least need items. Returns the new block (the old one is then gone), or
 * NULL with the old block and *cap unchanged. */
static void *grow(void *items, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return items;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / size)
            return NULL;
        ncap *= 2;
    }
    void *n = realloc(items, ncap * size);
    if (n)
        *cap = ncap;
    return n;
}

typedef struct point {
    uint64_t t;
    double v;
} point;

typedef struct points {
    point *p;
    size_t n, cap;
} points;

static int points_add(points *ps, uint64_t t, double v)
{
    if (ps->n == ps->cap) {
        point *n = grow(ps->p, &ps->cap, ps->n + 1, sizeof *n);
        if (!n)
            return -ENOMEM;
        ps->p = n;
    }
    ps->p[ps->n++] = (point){t, v};
    return 0;
}

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

/* ---- the simulation's state ---------------------------------------------------------------- */

typedef struct batch {
    uint64_t ready; /* virtual time the instances count as running */
    int64_t n;
} batch;

/* Scale-ups waiting for their startup, in the order they become ready (all share one startup
 * delay and decisions happen in time order, so this is a FIFO). */
typedef struct wake {
    uint64_t ready;
    uint32_t scaler;
} wake;

typedef struct sim_scaler {
    const config_component *c;
    int64_t desired;  /* last desired count delivered */
    int64_t running;  /* the model's running count */
    int64_t starting; /* added, not yet running: the sum of the batches */
    batch *b;         /* live batches: [bhead, bn) */
    size_t bhead, bn, bcap;
    points desired_pts, running_pts; /* change points, for the chart */
    uint64_t decisions, ups, downs;
} sim_scaler;

/* One (trigger, labels) combination of the trace: one input line in the chart. */
typedef struct sim_series {
    uint32_t trigger;         /* component index */
    uint32_t label0, nlabels; /* labels of the first row that has it */
    uint64_t hash;
    points pts;
} sim_series;

typedef struct trace_row {
    uint64_t t; /* virtual ns */
    double value;
    uint32_t trigger; /* component index */
    uint32_t series;
    uint32_t label0, nlabels;
} trace_row;

typedef struct sim {
    const simulate_options *o;
    FILE *err, *out;
    sb_daemon *d;
    config *cfg;
    uint64_t startup_ns;

    /* Components by id: slot = component index + 1, 0 empty. */
    uint32_t *ids;
    size_t ids_cap;
    int32_t *scaler_of; /* component index -> index in scalers, or -1 */
    sim_scaler *scalers;
    size_t nscalers;
    char trigger_list[256]; /* "queue, cpu" for error messages */

    /* The trace, parsed in place. */
    char *text;
    size_t text_len;
    trace_row *rows;
    size_t nrows, rows_cap;
    sb_label *labels;
    size_t nlabels, labels_cap;
    sim_series *series;
    size_t nseries, series_cap;
    uint32_t *series_map; /* slot = series index + 1 */
    size_t series_map_cap;
    size_t nerrors;

    wake *wq;
    size_t wq_head, wq_n, wq_cap;

    uint64_t now;    /* the virtual instant being simulated */
    uint64_t t0, t1; /* first and last row */
    int loading;
    int failed; /* out of memory or a write error while running */
} sim;

/* ---- components by id ---------------------------------------------------------------------- */

static uint64_t str_hash(const char *s)
{
    return hash_bytes(HASH_SEED, s, strlen(s));
}

static int index_components(sim *s)
{
    const config *cfg = s->cfg;
    size_t cap = 16;
    while (cap < cfg->ncomponents * 2 + 2)
        cap *= 2;
    s->ids = calloc(cap, sizeof *s->ids);
    s->scaler_of = calloc(cfg->ncomponents ? cfg->ncomponents : 1, sizeof *s->scaler_of);
    s->scalers = calloc(cfg->ncomponents ? cfg->ncomponents : 1, sizeof *s->scalers);
    if (!s->ids || !s->scaler_of || !s->scalers)
        return -ENOMEM;
    s->ids_cap = cap;
    size_t used = 0, ntrig = 0;
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        const config_component *c = &cfg->components[i];
        size_t k = str_hash(c->id) & (cap - 1);
        while (s->ids[k])
            k = (k + 1) & (cap - 1);
        s->ids[k] = (uint32_t)i + 1;
        s->scaler_of[i] = -1;
        if (c->kind == SB_KIND_SCALER) {
            s->scaler_of[i] = (int32_t)s->nscalers;
            s->scalers[s->nscalers++].c = c;
        } else if (c->kind == SB_KIND_TRIGGER) {
            /* "queue, cpu" for messages; a long list ends in ", ..." */
            size_t len = strlen(c->id) + (ntrig ? 2 : 0);
            if (used + len + 6 < sizeof s->trigger_list) {
                used += (size_t)snprintf(s->trigger_list + used, sizeof s->trigger_list - used,
                                         "%s%s", ntrig ? ", " : "", c->id);
            } else if (!strstr(s->trigger_list, ", ...")) {
                snprintf(s->trigger_list + used, sizeof s->trigger_list - used, ", ...");
                used = sizeof s->trigger_list;
            }
            ntrig++;
        }
    }
    return 0;
}

/* Component index of id, or -1. */
static long find_component(const sim *s, const char *id)
{
    for (size_t k = str_hash(id) & (s->ids_cap - 1); s->ids[k]; k = (k + 1) & (s->ids_cap - 1))
        if (strcmp(s->cfg->components[s->ids[k] - 1].id, id) == 0)
            return (long)s->ids[k] - 1;
    return -1;
}

static const char *kind_name(sb_kind k)
{
    return k == SB_KIND_TRIGGER ? "trigger" : k == SB_KIND_CONNECTOR ? "connector" : "scaler";
}

/* ---- reading the trace ------------------------------------------------------------------- */

static void trace_error(sim *s, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void trace_error(sim *s, unsigned line, const char *fmt, ...)
{
    if (++s->nerrors > SIM_MAX_ERRORS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(s->err, "%s:%u: ", s->o->trace, line);
    vfprintf(s->err, fmt, ap);
    fputc('\n', s->err);
    va_end(ap);
}

static int read_file(const char *path, char **text, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (cap - n < 65536 + 1) {
            char *nb = grow(buf, &cap, n + 65536 + 1, 1);
            if (!nb) {
                free(buf);
                fclose(f);
                return -ENOMEM;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return -EIO;
    }
    buf[n] = '\0'; /* one spare byte: the last field is terminated in place */
    *text = buf;
    *len = n;
    return 0;
}

/* One CSV record at *pp (RFC 4180: a field in double quotes may hold commas, newlines and ""
 * for a quote). Fields are unquoted in place and NUL-terminated; up to max are stored, all are
 * counted. *line moves past every newline read. Returns the field count, or -1 with *why set
 * (the rest of the line is skipped). */
static int csv_record(char **pp, char *end, char **fields, int max, unsigned *line,
                      const char **why)
{
    char *p = *pp;
    int n = 0;
    for (;;) {
        char *start = p, *w = p;
        if (p < end && *p == '"') {
            p++;
            for (;;) {
                if (p >= end) {
                    *why = "a quoted field is not closed";
                    *pp = end;
                    return -1;
                }
                if (*p == '"') {
                    if (p + 1 < end && p[1] == '"') {
                        *w++ = '"';
                        p += 2;
                        continue;
                    }
                    p++;
                    break;
                }
                if (*p == '\n')
                    (*line)++;
                *w++ = *p++;
            }
            if (p < end && *p != ',' && *p != '\n' && *p != '\r') {
                *why = "text after a closing quote (a quote inside a quoted field is written \"\")";
                while (p < end && *p != '\n')
                    p++;
                if (p < end) {
                    p++;
                    (*line)++;
                }
                *pp = p;
                return -1;
            }
        } else {
            while (p < end && *p != ',' && *p != '\n' && *p != '\r')
                p++;
            w = p;
        }
        char delim = p < end ? *p : '\0';
        *w = '\0';
        if (n < max)
            fields[n] = start;
        n++;
        if (delim == ',') {
            p++;
            continue;
        }
        if (delim == '\r') {
            p++;
            if (p < end && *p == '\n')
                p++;
            (*line)++;
        } else if (delim == '\n') {
            p++;
            (*line)++;
        }
        *pp = p;
        return n;
    }
}

static int parse_number(const char *text, double *out)
{
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return -EINVAL;
    char *end;
    double v = strtod(p, &end);
    if (end == p)
        return -EINVAL;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end || !isfinite(v))
        return -EINVAL;
    *out = v;
    return 0;
}

/* Split "k=v;k=v" in place into s->labels. Returns 0, -EINVAL (message written) or -ENOMEM. */
static int parse_labels(sim *s, unsigned line, char *text, uint32_t *label0, uint32_t *nlabels)
{
    *label0 = (uint32_t)s->nlabels;
    *nlabels = 0;
    char *p = text;
    while (*p) {
        char *item = p;
        char *semi = strchr(p, ';');
        if (semi) {
            *semi = '\0';
            p = semi + 1;
        } else {
            p += strlen(p);
        }
        if (!*item)
            continue; /* "a=1;" or ";;" */
        char *eq = strchr(item, '=');
        if (!eq || eq == item) {
            trace_error(s, line, "labels: expected key=value items separated by ';', got '%.60s'",
                        item);
            return -EINVAL;
        }
        if (*nlabels == SIM_MAX_LABELS) {
            trace_error(s, line, "labels: more than %d labels", SIM_MAX_LABELS);
            return -EINVAL;
        }
        *eq = '\0';
        if (s->nlabels == s->labels_cap) {
            sb_label *n = grow(s->labels, &s->labels_cap, s->nlabels + 1, sizeof *n);
            if (!n)
                return -ENOMEM;
            s->labels = n;
        }
        s->labels[s->nlabels++] = (sb_label){item, eq + 1};
        (*nlabels)++;
    }
    return 0;
}

static int labels_equal(const sim *s, uint32_t a0, uint32_t b0, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (strcmp(s->labels[a0 + i].key, s->labels[b0 + i].key) != 0 ||
            strcmp(s->labels[a0 + i].value, s->labels[b0 + i].value) != 0)
            return 0;
    return 1;
}

/* The series of a row's trigger and labels, added when new. Returns its index or -ENOMEM. */
static long series_of(sim *s, uint32_t trigger, uint32_t label0, uint32_t nlabels)
{
    uint64_t h = hash_bytes(HASH_SEED, &trigger, sizeof trigger);
    for (uint32_t i = 0; i < nlabels; i++) {
        const sb_label *l = &s->labels[label0 + i];
        h = hash_bytes(h, l->key, strlen(l->key) + 1);
        h = hash_bytes(h, l->value, strlen(l->value) + 1);
    }
    if ((s->nseries + 1) * 2 > s->series_map_cap) {
        size_t ncap = s->series_map_cap ? s->series_map_cap * 2 : 64;
        uint32_t *m = calloc(ncap, sizeof *m);
        if (!m)
            return -ENOMEM;
        for (size_t i = 0; i < s->nseries; i++) {
            size_t k = s->series[i].hash & (ncap - 1);
            while (m[k])
                k = (k + 1) & (ncap - 1);
            m[k] = (uint32_t)i + 1;
        }
        free(s->series_map);
        s->series_map = m;
        s->series_map_cap = ncap;
    }
    size_t k = h & (s->series_map_cap - 1);
    for (; s->series_map[k]; k = (k + 1) & (s->series_map_cap - 1)) {
        const sim_series *se = &s->series[s->series_map[k] - 1];
        if (se->hash == h && se->trigger == trigger && se->nlabels == nlabels &&
            labels_equal(s, se->label0, label0, nlabels))
            return (long)s->series_map[k] - 1;
    }
    if (s->nseries == s->series_cap) {
        sim_series *n = grow(s->series, &s->series_cap, s->nseries + 1, sizeof *n);
        if (!n)
            return -ENOMEM;
        s->series = n;
    }
    s->series[s->nseries] =
        (sim_series){.trigger = trigger, .label0 = label0, .nlabels = nlabels, .hash = h};
    s->series_map[k] = (uint32_t)s->nseries + 1;
    return (long)s->nseries++;
}

/* Check one data record and append it as a row. Returns 0, -EINVAL (reported) or -ENOMEM. */
static int trace_row_add(sim *s, unsigned line, char **f, int nf, int want, double *prev_t,
                         const char **prev_text)
{
    if (nf != want && !(want == 4 && nf == 3)) {
        trace_error(s, line, "expected %d fields (%s), got %d", want,
                    want == 4 ? "time_s,trigger,value,labels" : "time_s,trigger,value", nf);
        return -EINVAL;
    }
    double t, v;
    if (parse_number(f[0], &t) != 0) {
        trace_error(s, line, "time_s: '%.40s' is not a number of seconds", f[0]);
        return -EINVAL;
    }
    if (t < 0 || t > SIM_MAX_TIME_S) {
        trace_error(s, line, "time_s: %.40s is outside 0 to %.0f seconds", f[0], SIM_MAX_TIME_S);
        return -EINVAL;
    }
    if (t < *prev_t) {
        trace_error(s, line,
                    "time goes backwards: %.40s is before the previous row's %.40s "
                    "(rows must be in time order)",
                    f[0], *prev_text);
        return -EINVAL;
    }
    *prev_t = t;
    *prev_text = f[0];
    long ci = find_component(s, f[1]);
    if (ci < 0 || s->cfg->components[ci].kind != SB_KIND_TRIGGER) {
        if (ci < 0)
            trace_error(s, line, "unknown trigger '%.60s' (triggers in the file: %s)", f[1],
                        s->trigger_list[0] ? s->trigger_list : "none");
        else
            trace_error(s, line, "'%.60s' is a %s, not a trigger (triggers in the file: %s)", f[1],
                        kind_name(s->cfg->components[ci].kind),
                        s->trigger_list[0] ? s->trigger_list : "none");
        return -EINVAL;
    }
    if (parse_number(f[2], &v) != 0) {
        trace_error(s, line, "value: '%.40s' is not a number", f[2]);
        return -EINVAL;
    }
    uint32_t label0 = 0, nlabels = 0;
    if (nf == 4) {
        int rc = parse_labels(s, line, f[3], &label0, &nlabels);
        if (rc != 0)
            return rc;
    }
    if (s->nerrors > 0)
        return 0; /* the run will not happen: only look for more errors */
    long se = series_of(s, (uint32_t)ci, label0, nlabels);
    if (se < 0)
        return (int)se;
    if (s->nrows == s->rows_cap) {
        trace_row *n = grow(s->rows, &s->rows_cap, s->nrows + 1, sizeof *n);
        if (!n)
            return -ENOMEM;
        s->rows = n;
    }
    s->rows[s->nrows++] = (trace_row){
        .t = SIM_BASE_NS + (uint64_t)floor(t * 1e9 + 0.5),
        .value = v,
        .trigger = (uint32_t)ci,
        .series = (uint32_t)se,
        .label0 = label0,
        .nlabels = nlabels,
    };
    return 0;
}

/* Read and check the whole trace. Returns 0, or -1 after printing every error (up to a limit). */
static int trace_read(sim *s)
{
    int rc = read_file(s->o->trace, &s->text, &s->text_len);
    if (rc != 0) {
        fprintf(s->err, "%s: cannot read: %s\n", s->o->trace, strerror(-rc));
        return -1;
    }
    char *p = s->text, *end = s->text + s->text_len;
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* a UTF-8 byte order mark, as spreadsheets write */
    unsigned line = 1;
    char *f[SIM_MAX_FIELDS];
    const char *why = "";
    int nf = csv_record(&p, end, f, SIM_MAX_FIELDS, &line, &why);
    int want = 0;
    if (nf == 3 || nf == 4) {
        want = nf;
        static const char *const names[] = {"time_s", "trigger", "value", "labels"};
        for (int i = 0; i < nf; i++)
            if (strcmp(f[i], names[i]) != 0)
                want = 0;
    }
    if (!want) {
        char got[80] = "";
        for (int i = 0, len = 0; i < nf && i < SIM_MAX_FIELDS && len < (int)sizeof got; i++)
            len += snprintf(got + len, sizeof got - (size_t)len, "%s%s", i ? "," : "", f[i]);
        trace_error(s, 1,
                    "expected the header time_s,trigger,value (or time_s,trigger,value,labels), "
                    "got %s%.60s%s",
                    s->text_len == 0 ? "an empty file" : "'", got, s->text_len == 0 ? "" : "'");
        return -1;
    }
    double prev_t = 0;
    const char *prev_text = "0";
    while (p < end) {
        if (*p == '\n' || *p == '\r') { /* a blank line */
            p += (*p == '\r' && p + 1 < end && p[1] == '\n') ? 2 : 1;
            line++;
            continue;
        }
        unsigned at = line;
        nf = csv_record(&p, end, f, SIM_MAX_FIELDS, &line, &why);
        if (nf < 0) {
            trace_error(s, at, "%s", why);
            continue;
        }
        rc = trace_row_add(s, at, f, nf, want, &prev_t, &prev_text);
        if (rc == -ENOMEM) {
            fprintf(s->err, "%s: out of memory\n", s->o->trace);
            return -1;
        }
    }
    if (s->nerrors > SIM_MAX_ERRORS)
        fprintf(s->err, "%s: ... and %zu more error(s)\n", s->o->trace,
                s->nerrors - SIM_MAX_ERRORS);
    if (s->nerrors == 0 && s->nrows == 0) {
        fprintf(s->err, "%s:%u: no readings after the header\n", s->o->trace, line);
        return -1;
    }
    return s->nerrors ? -1 : 0;
}

/* ---- decisions ----------------------------------------------------------------------------- */

/* Seconds since time_s 0, exact: "12", "0.25". */
static void fmt_vtime(char *buf, size_t n, uint64_t ns)
{
    uint64_t rel = ns >= SIM_BASE_NS ? ns - SIM_BASE_NS : 0;
    unsigned long long sec = rel / 1000000000u, frac = rel % 1000000000u;
    if (!frac) {
        snprintf(buf, n, "%llu", sec);
        return;
    }
    int len = snprintf(buf, n, "%llu.%09llu", sec, frac);
    while (len > 0 && (size_t)len < n && buf[len - 1] == '0')
        buf[--len] = '\0';
}

/* The inside of a quoted CSV field: each quote doubled (RFC 4180). */
static void csv_body(FILE *f, const char *text)
{
    for (;;) {
        const char *q = strchr(text, '"');
        if (!q) {
            fputs(text, f);
            return;
        }
        fwrite(text, 1, (size_t)(q - text) + 1, f);
        fputc('"', f);
        text = q + 1;
    }
}

/* A CSV field: quoted when asked or when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *text, int always)
{
    if (!always && !text[strcspn(text, ",\"\r\n")]) {
        fputs(text, f);
        return;
    }
    fputc('"', f);
    csv_body(f, text);
    fputc('"', f);
}

static void model_publish(sim *s, sim_scaler *sc, uint64_t t)
{
    if (points_add(&sc->running_pts, t, (double)sc->running) != 0)
        s->failed = 1;
    sb_publish pub = {SB_PUBLISH_INIT, .topic = SB_TOPIC_INSTANCES, .value = (double)sc->running, .time_ns = t};
    if (daemon_inject(s->d, sc->c->id, &pub) != 0)
        s->failed = 1;
}

/* The model's answer to a desired count at virtual time t. */
static void model_desired(sim *s, sim_scaler *sc, int64_t want, uint64_t t)
{
    int64_t total = sc->running + sc->starting;
    if (want > total) {
        if (s->startup_ns == 0) {
            sc->running = want;
            model_publish(s, sc, t);
            return;
        }
        if (sc->bn == sc->bcap) {
            batch *n = grow(sc->b, &sc->bcap, sc->bn + 1, sizeof *n);
            if (!n) {
                s->failed = 1;
                return;
            }
            sc->b = n;
        }
        if (s->wq_n == s->wq_cap) {
            wake *n = grow(s->wq, &s->wq_cap, s->wq_n + 1, sizeof *n);
            if (!n) {
                s->failed = 1;
                return;
            }
            s->wq = n;
        }
        sc->b[sc->bn++] = (batch){t + s->startup_ns, want - total};
        sc->starting += want - total;
        s->wq[s->wq_n++] = (wake){t + s->startup_ns, (uint32_t)(sc - s->scalers)};
    } else if (want < total) {
        /* Instances still starting are cancelled first (newest first); then running ones stop. */
        int64_t cut = total - want;
        while (cut > 0 && sc->bn > sc->bhead) {
            batch *last = &sc->b[sc->bn - 1];
            int64_t take = last->n < cut ? last->n : cut;
            last->n -= take;
            sc->starting -= take;
            cut -= take;
            if (last->n == 0)
                sc->bn--;
        }
        if (sc->bn == sc->bhead)
            sc->bn = sc->bhead = 0;
        if (cut > 0) {
            sc->running -= cut;
            model_publish(s, sc, t);
        }
    }
}

/* sim_desired: a clamped desired count delivered to the scaler scaler_id. */
static void on_desired(void *arg, const char *scaler_id, const sb_event *ev)
{
    sim *s = arg;
    if (s->loading)
        return; /* the daemon's initial desired = min, before any reading */
    long ci = find_component(s, scaler_id);
    if (ci < 0 || s->scaler_of[ci] < 0)
        return;
    sim_scaler *sc = &s->scalers[s->scaler_of[ci]];
    int64_t want = (int64_t)ev->value;
    /* A policy stamps its decision with its reading's virtual time; `direct` leaves the bus to
     * stamp it with the real clock: that decision happened now, in virtual time. */
    uint64_t t = ev->mono_ns >= SIM_BASE_NS ? ev->mono_ns : s->now;
    const char *reason = NULL;
    for (size_t i = 0; i < ev->nlabels; i++)
        if (strcmp(ev->labels[i].key, "reason") == 0)
            reason = ev->labels[i].value;
    char tbuf[40];
    fmt_vtime(tbuf, sizeof tbuf, t);
    fputs(tbuf, s->out);
    fputc(',', s->out);
    csv_field(s->out, scaler_id, 0);
    fprintf(s->out, ",%lld,", (long long)want);
    if (reason) {
        csv_field(s->out, reason, 1);
    } else {
        fputs("\"direct from ", s->out);
        csv_body(s->out, ev->source_id ? ev->source_id : "?");
        fputc('"', s->out);
    }
    fputc('\n', s->out);

    sc->decisions++;
    if (want != sc->desired) {
        if (want > sc->desired)
            sc->ups++;
        else
            sc->downs++;
        sc->desired = want;
        if (points_add(&sc->desired_pts, s->now, (double)want) != 0)
            s->failed = 1;
    }
    model_desired(s, sc, want, s->now);
}

/* Bring every model up to virtual time t: batches whose startup has passed start running, each
 * published (and its consequences decided) at its own ready time. */
static void models_advance(sim *s, uint64_t t)
{
    while (s->wq_head < s->wq_n && s->wq[s->wq_head].ready <= t) {
        wake w = s->wq[s->wq_head++];
        sim_scaler *sc = &s->scalers[w.scaler];
        int64_t ready = 0;
        while (sc->bhead < sc->bn && sc->b[sc->bhead].ready <= w.ready)
            ready += sc->b[sc->bhead++].n;
        if (sc->bhead == sc->bn)
            sc->bhead = sc->bn = 0;
        if (ready > 0) {
            sc->starting -= ready;
            sc->running += ready;
            s->now = w.ready;
            model_publish(s, sc, w.ready);
            daemon_flush(s->d);
        }
    }
    if (s->wq_head == s->wq_n)
        s->wq_head = s->wq_n = 0;
}

static void replay(sim *s)
{
    s->t0 = s->rows[0].t;
    s->t1 = s->rows[s->nrows - 1].t;
    s->now = s->t0;
    /* Each scaler starts at its min (the daemon's desired count at start), and says so. */
    for (size_t i = 0; i < s->nscalers; i++) {
        sim_scaler *sc = &s->scalers[i];
        sc->desired = sc->running = sc->c->min;
        if (points_add(&sc->desired_pts, s->now, (double)sc->desired) != 0)
            s->failed = 1;
        model_publish(s, sc, s->now);
    }
    daemon_flush(s->d);
    for (size_t i = 0; i < s->nrows; i++) {
        const trace_row *r = &s->rows[i];
        models_advance(s, r->t);
        s->now = r->t;
        sb_publish pub = {
            SB_PUBLISH_INIT,
            .topic = SB_TOPIC_READING,
            .flags = SB_EVENT_COALESCE,
            .value = r->value,
            .labels = r->nlabels ? &s->labels[r->label0] : NULL,
            .nlabels = r->nlabels,
            .time_ns = r->t,
        };
        if (daemon_inject(s->d, s->cfg->components[r->trigger].id, &pub) != 0)
            s->failed = 1;
        daemon_flush(s->d);
        if (points_add(&s->series[r->series].pts, r->t, r->value) != 0)
            s->failed = 1;
    }
}

/* ---- the chart ------------------------------------------------------------------------------ */

#define CHART_W 960.0
#define CHART_ML 64.0  /* left margin: instance ticks and label */
#define CHART_MR 80.0  /* right margin: input ticks and label */
#define CHART_PH 230.0 /* plot height */
#define CHART_HEAD 64.0

static const char *const input_colors[] = {"#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                                           "#17becf", "#bcbd22", "#7f7f7f", "#d62728"};
#define COLOR_DESIRED "#1f77b4"
#define COLOR_RUNNING "#ff7f0e"

/* Text for XML: markup characters escaped, control characters and bytes that are not UTF-8
 * replaced with '?', so the file stays well-formed whatever the trace's labels hold. */
static void xml_text(FILE *f, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        unsigned char c = *p;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '"')
            fputs("&quot;", f);
        else if (c < 0x20)
            fputc('?', f);
        else if (c < 0x80)
            fputc(c, f);
        else {
            int n = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
            int ok = n > 0 && c >= 0xC2 && c <= 0xF4;
            for (int i = 1; ok && i <= n; i++)
                ok = (p[i] & 0xC0) == 0x80;
            if (!ok) {
                fputc('?', f);
            } else {
                fwrite(p, 1, (size_t)n + 1, f);
                p += n;
            }
        }
        p++;
    }
}

/* 1, 2 or 5 times a power of ten, at least x. */
static double nice125(double x)
{
    if (!(x > 0))
        return 1;
    double e = pow(10, floor(log10(x)));
    double m = x / e;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * e;
}

static void fmt_num(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (a >= 1e6)
        snprintf(buf, n, "%.4gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, n, "%.4gk", v / 1e3);
    else
        snprintf(buf, n, "%.4g", v);
}

/* "45s", "5m 20s", "2h 05m" */
static void fmt_dur(char *buf, size_t n, double sec)
{
    if (sec < 60) {
        if (sec != floor(sec) && sec < 10)
            snprintf(buf, n, "%.1fs", sec);
        else
            snprintf(buf, n, "%.0fs", sec);
    } else if (sec < 3600) {
        long m = (long)(sec / 60);
        snprintf(buf, n, "%ldm %02lds", m, (long)(sec - (double)m * 60));
    } else {
        long h = (long)(sec / 3600);
        snprintf(buf, n, "%ldh %02ldm", h, (long)((sec - (double)h * 3600) / 60));
    }
}

/* A moment of the trace as H:MM:SS from its start. */
static void fmt_clock(char *buf, size_t n, double sec)
{
    long s = (long)floor(sec);
    double frac = sec - (double)s;
    if (frac < 0.05) /* whole seconds, or a tenth when it has one */
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, n, "%ld:%02ld:%04.1f", s / 3600, (s / 60) % 60,
                 fmin((double)(s % 60) + frac, 59.9));
}

typedef struct chart {
    FILE *f;
    double x0, y0, w, h; /* plot area */
    uint64_t t0, t1;
    double ymax;       /* left axis: instances, from 0 */
    double rmin, rmax; /* right axis: input values */
    int clip;          /* id of the panel's clipPath */
} chart;

static double cx(const chart *c, uint64_t t)
{
    return c->x0 + (double)(t - c->t0) / (double)(c->t1 - c->t0) * c->w;
}

static double cy(const chart *c, double v)
{
    return c->y0 + c->h - v / c->ymax * c->h;
}

static double cyr(const chart *c, double v)
{
    return c->y0 + c->h - (v - c->rmin) / (c->rmax - c->rmin) * c->h;
}

static size_t bucket_of(const chart *c, uint64_t t, size_t nb)
{
    size_t b = (size_t)((double)(t - c->t0) / (double)(c->t1 - c->t0) * (double)nb);
    return b < nb ? b : nb - 1;
}

/* An input's values as a line on the right axis. Above SIM_CHART_POINTS points, the time axis is
 * cut into buckets and each bucket keeps its lowest and highest point, so peaks survive. */
static void svg_line(const chart *c, const points *ps, const char *color)
{
    if (ps->n == 0)
        return;
    fprintf(c->f,
            "<path clip-path=\"url(#clip%d)\" fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"1\" stroke-opacity=\"0.85\" d=\"",
            c->clip, color);
    if (ps->n <= SIM_CHART_POINTS) {
        for (size_t i = 0; i < ps->n; i++)
            fprintf(c->f, "%s%.1f %.1f", i ? " L" : "M", cx(c, ps->p[i].t), cyr(c, ps->p[i].v));
    } else {
        size_t nb = SIM_CHART_POINTS / 2, i = 0;
        int first = 1;
        while (i < ps->n) {
            size_t b = bucket_of(c, ps->p[i].t, nb), lo = i, hi = i;
            for (; i < ps->n && bucket_of(c, ps->p[i].t, nb) == b; i++) {
                if (ps->p[i].v < ps->p[lo].v)
                    lo = i;
                if (ps->p[i].v > ps->p[hi].v)
                    hi = i;
            }
            size_t a = lo < hi ? lo : hi, z = lo < hi ? hi : lo;
            fprintf(c->f, "%s%.1f %.1f", first ? "M" : " L", cx(c, ps->p[a].t), cyr(c, ps->p[a].v));
            if (z != a)
                fprintf(c->f, " L%.1f %.1f", cx(c, ps->p[z].t), cyr(c, ps->p[z].v));
            first = 0;
        }
    }
    fputs("\"/>\n", c->f);
}

/* A count over time as a step line on the left axis, drawn to the end of the trace. Above
 * SIM_CHART_POINTS / 2 changes, each time bucket draws the range of counts it held as one
 * vertical stroke and goes on at the count it ended with. */
static void svg_step(const chart *c, const points *ps, const char *color, const char *extra)
{
    if (ps->n == 0)
        return;
    fprintf(c->f, "<path clip-path=\"url(#clip%d)\" fill=\"none\" stroke=\"%s\" %s d=\"M%.1f %.1f",
            c->clip, color, extra, cx(c, ps->p[0].t), cy(c, ps->p[0].v));
    if (ps->n <= SIM_CHART_POINTS / 2) {
        for (size_t i = 1; i < ps->n; i++)
            fprintf(c->f, " H%.1f V%.1f", cx(c, ps->p[i].t), cy(c, ps->p[i].v));
    } else {
        size_t nb = SIM_CHART_POINTS / 4, i = 1;
        double cur = ps->p[0].v;
        while (i < ps->n) {
            size_t b = bucket_of(c, ps->p[i].t, nb);
            uint64_t tb = ps->p[i].t;
            double lo = cur, hi = cur;
            for (; i < ps->n && bucket_of(c, ps->p[i].t, nb) == b; i++) {
                cur = ps->p[i].v;
                lo = cur < lo ? cur : lo;
                hi = cur > hi ? cur : hi;
            }
            fprintf(c->f, " H%.1f V%.1f V%.1f V%.1f", cx(c, tb), cy(c, lo), cy(c, hi), cy(c, cur));
        }
    }
    fprintf(c->f, " H%.1f\"/>\n", cx(c, c->t1));
}

/* The time axis: unit (s, min or h) and a tick step in that unit. */
static void time_axis(double span_s, const char **unit, double *div, double *step)
{
    static const double sm[] = {1, 2, 5, 10, 15, 20, 30, 60, 120, 300};
    static const double hr[] = {1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336, 720, 1440};
    const double *cand = sm;
    size_t ncand = sizeof sm / sizeof sm[0];
    if (span_s <= 300) {
        *unit = "s";
        *div = 1;
    } else if (span_s <= 5 * 3600) {
        *unit = "min";
        *div = 60;
    } else {
        *unit = "h";
        *div = 3600;
        cand = hr;
        ncand = sizeof hr / sizeof hr[0];
    }
    double span = span_s / *div;
    if (span < 4) {
        *step = nice125(span / 5);
        return;
    }
    for (size_t i = 0; i < ncand; i++) {
        if (span / cand[i] <= 9) {
            *step = cand[i];
            return;
        }
    }
    *step = nice125(span / 8);
}

/* Which connectors' decisions reach scaler `target`, directly or through connectors in a chain. */
static int reaches(const sim *s, const config_component *conn, const char *target, int depth)
{
    if (depth > 64)
        return 0; /* config refuses cycles; this only bounds the walk */
    for (size_t t = 0; t < conn->nto; t++) {
        if (strcmp(conn->to[t], target) == 0)
            return 1;
    }
    /* Chains: another connector that names conn in its `from`. */
    for (size_t i = 0; i < s->cfg->ncomponents; i++) {
        const config_component *c = &s->cfg->components[i];
        if (c->kind != SB_KIND_CONNECTOR || c == conn)
            continue;
        for (size_t f = 0; f < c->nfrom; f++)
            if (strcmp(c->from[f], conn->id) == 0 && reaches(s, c, target, depth + 1))
                return 1;
    }
    return 0;
}

/* Is a trace series an input of the scaler: a connector takes its trigger (and its labels pass
 * the connector's match) and its decisions reach the scaler? */
static int series_feeds(const sim *s, const sim_series *se, const config_component *scaler)
{
    const char *tid = s->cfg->components[se->trigger].id;
    for (size_t i = 0; i < s->cfg->ncomponents; i++) {
        const config_component *c = &s->cfg->components[i];
        if (c->kind != SB_KIND_CONNECTOR)
            continue;
        int from = 0;
        for (size_t f = 0; f < c->nfrom && !from; f++)
            from = strcmp(c->from[f], tid) == 0;
        if (!from)
            continue;
        int match = 1;
        for (size_t m = 0; m < c->nmatch && match; m++) {
            const char *have = NULL;
            for (uint32_t l = 0; l < se->nlabels && !have; l++)
                if (strcmp(s->labels[se->label0 + l].key, c->match_keys[m]) == 0)
                    have = s->labels[se->label0 + l].value;
            match = have && config_glob_match(c->match_values[m], have);
        }
        if (match && reaches(s, c, scaler->id, 0))
            return 1;
    }
    return 0;
}

/* A series' name in the legend: "queue" or "queue {queue=build}". */
static void series_name(const sim *s, const sim_series *se, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "%s", s->cfg->components[se->trigger].id);
    for (uint32_t l = 0; l < se->nlabels && len < n; l++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s=%s", l ? "," : " {",
                                s->labels[se->label0 + l].key, s->labels[se->label0 + l].value);
    if (se->nlabels && len < n)
        snprintf(buf + len, n - len, "}");
}

/* Seconds the step function a spends at or above level (or, with b, below b). */
static double time_where(const points *a, const points *b, double level, uint64_t t1)
{
    double total = 0;
    size_t i = 0, j = 0;
    if (a->n == 0)
        return 0;
    uint64_t t = a->p[0].t;
    double va = a->p[0].v, vb = b && b->n ? b->p[0].v : 0;
    while (t < t1) {
        /* Values in force at t. */
        while (i + 1 < a->n && a->p[i + 1].t <= t)
            va = a->p[++i].v;
        while (b && j + 1 < b->n && b->p[j + 1].t <= t)
            vb = b->p[++j].v;
        uint64_t next = t1;
        if (i + 1 < a->n && a->p[i + 1].t < next)
            next = a->p[i + 1].t;
        if (b && j + 1 < b->n && b->p[j + 1].t < next)
            next = b->p[j + 1].t;
        if (b ? vb < va : va >= level)
            total += (double)(next - t) / 1e9;
        t = next;
    }
    return total;
}

typedef struct legend_item {
    const char *color;
    const char *dash; /* stroke-dasharray or NULL */
    double width;
    char text[160];
} legend_item;

/* Lay out (and with draw, draw) legend items from (x, y); returns the number of rows. */
static int legend(const chart *c, const legend_item *it, size_t n, double y, int draw)
{
    double x = c->x0, right = c->x0 + c->w;
    int rows = 1;
    for (size_t i = 0; i < n; i++) {
        double wi = 30 + (double)strlen(it[i].text) * 6.4 + 20;
        if (x > c->x0 && x + wi > right) {
            x = c->x0;
            y += 18;
            rows++;
        }
        if (draw) {
            fprintf(c->f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"%.1f\"%s%s%s/>\n",
                    x, y - 4, x + 24, y - 4, it[i].color, it[i].width,
                    it[i].dash ? " stroke-dasharray=\"" : "", it[i].dash ? it[i].dash : "",
                    it[i].dash ? "\"" : "");
            fprintf(c->f, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y);
            xml_text(c->f, it[i].text);
            fputs("</text>\n", c->f);
        }
        x += wi;
    }
    return rows;
}

typedef struct panel {
    const sim_scaler *sc;
    size_t *inputs; /* series indexes */
    size_t ninputs, nhidden;
    legend_item *items;
    size_t nitems;
    double height;
} panel;

#define PANEL_TOP 44.0  /* title and stats above the plot */
#define PANEL_AXIS 40.0 /* time ticks and label below it */

static int panel_prepare(const sim *s, const sim_scaler *sc, panel *p, const chart *geom)
{
    memset(p, 0, sizeof *p);
    p->sc = sc;
    p->inputs = calloc(SIM_CHART_INPUTS, sizeof *p->inputs);
    p->items = calloc(3 + SIM_CHART_INPUTS, sizeof *p->items);
    if (!p->inputs || !p->items)
        return -ENOMEM;
    for (size_t i = 0; i < s->nseries; i++) {
        if (!series_feeds(s, &s->series[i], sc->c))
            continue;
        if (p->ninputs < SIM_CHART_INPUTS)
            p->inputs[p->ninputs++] = i;
        else
            p->nhidden++;
    }
    char startup[32];
    fmt_dur(startup, sizeof startup, (double)s->startup_ns / 1e9);
    legend_item *it = p->items;
    it[0] = (legend_item){COLOR_DESIRED, NULL, 2.5, ""};
    snprintf(it[0].text, sizeof it[0].text, "desired count (decisions)");
    it[1] = (legend_item){COLOR_RUNNING, "6,4", 2, ""};
    snprintf(it[1].text, sizeof it[1].text, "running (model: new instances ready after %s)",
             startup);
    it[2] = (legend_item){"#555", "2,3", 1.2, ""};
    snprintf(it[2].text, sizeof it[2].text, "min %lld / max %lld (shaded: outside)",
             (long long)sc->c->min, (long long)sc->c->max);
    p->nitems = 3;
    for (size_t i = 0; i < p->ninputs; i++) {
        legend_item *li = &it[p->nitems++];
        char name[120];
        series_name(s, &s->series[p->inputs[i]], name, sizeof name);
        *li = (legend_item){input_colors[i % (sizeof input_colors / sizeof input_colors[0])], NULL,
                            1.5, ""};
        snprintf(li->text, sizeof li->text, "%s (right axis)", name);
    }
    int rows = legend(geom, p->items, p->nitems, 0, 0);
    p->height = PANEL_TOP + CHART_PH + PANEL_AXIS + 18.0 * rows + 16;
    return 0;
}

static void panel_free(panel *p)
{
    free(p->inputs);
    free(p->items);
}

static void panel_axes(const sim *s, chart *c, const panel *p)
{
    FILE *f = c->f;
    const sim_scaler *sc = p->sc;
    /* Left axis: instances, 0 .. a round number above the highest count (and the bounds when
     * they are near: a far-away max would flatten every line). */
    double top = (double)sc->c->min;
    for (size_t i = 0; i < sc->desired_pts.n; i++)
        top = fmax(top, sc->desired_pts.p[i].v);
    for (size_t i = 0; i < sc->running_pts.n; i++)
        top = fmax(top, sc->running_pts.p[i].v);
    int max_shown = (double)sc->c->max <= fmax(top, 1) * 1.5;
    if (max_shown)
        top = fmax(top, (double)sc->c->max);
    top = fmax(top * 1.12, 1);
    double ystep = fmax(1, nice125(top / 6));
    c->ymax = ceil(top / ystep) * ystep;

    /* Right axis: the inputs' values. */
    double lo = 0, hi = 0;
    for (size_t k = 0; k < p->ninputs; k++) {
        const points *ps = &s->series[p->inputs[k]].pts;
        for (size_t i = 0; i < ps->n; i++) {
            lo = fmin(lo, ps->p[i].v);
            hi = fmax(hi, ps->p[i].v);
        }
    }
    if (hi <= lo)
        hi = lo + 1;
    double rstep = nice125((hi - lo) * 1.08 / 6);
    c->rmin = floor(lo / rstep) * rstep;
    c->rmax = ceil(hi * 1.08 / rstep) * rstep;
    if (c->rmax <= c->rmin)
        c->rmax = c->rmin + rstep;

    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
            "stroke=\"#bbb\"/>\n",
            c->x0, c->y0, c->w, c->h);
    /* Outside the bounds: shaded. */
    if (sc->c->min > 0)
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" "
                "fill-opacity=\"0.06\"/>\n",
                c->x0, cy(c, (double)sc->c->min), c->w, c->y0 + c->h - cy(c, (double)sc->c->min));
    if (max_shown)
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" "
                "fill-opacity=\"0.06\"/>\n",
                c->x0, c->y0, c->w, cy(c, (double)sc->c->max) - c->y0);

    /* Instance ticks and grid. */
    fputs("<g font-size=\"11\" fill=\"#333\">\n", f);
    for (double v = 0; v <= c->ymax + 1e-9; v += ystep) {
        double y = cy(c, v);
        if (v > 0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    c->x0, y, c->x0 + c->w, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", c->x0 - 6,
                y + 4, v);
    }
    /* Input ticks. */
    for (int k = 0;; k++) {
        double v = c->rmin + k * rstep;
        if (v > c->rmax + rstep * 1e-6)
            break;
        char num[32];
        fmt_num(num, sizeof num, fabs(v) < rstep * 1e-6 ? 0 : v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%s</text>\n", c->x0 + c->w + 6,
                cyr(c, v) + 4, num);
    }
    /* Time ticks. */
    double span_s = (double)(c->t1 - c->t0) / 1e9;
    const char *unit;
    double div, step;
    time_axis(span_s, &unit, &div, &step);
    for (int k = 0;; k++) {
        double u = k * step;
        if (u * div > span_s + 1e-9)
            break;
        double x = c->x0 + u * div / span_s * c->w;
        if (k > 0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    x, c->y0, x, c->y0 + c->h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n", x,
                c->y0 + c->h, x, c->y0 + c->h + 4);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x,
                c->y0 + c->h + 16, u);
    }
    fputs("</g>\n", f);
    char t0[40];
    fmt_vtime(t0, sizeof t0, c->t0);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#333\">time (%s)%s%s"
            "</text>\n",
            c->x0 + c->w / 2, c->y0 + c->h + 33, unit, c->t0 > SIM_BASE_NS ? " after time_s " : "",
            c->t0 > SIM_BASE_NS ? t0 : "");
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
            "fill=\"#333\">instances</text>\n",
            c->x0 - 40, c->y0 + c->h / 2);
    /* The right axis is labelled with its inputs' trigger ids. */
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\" "
            "fill=\"#555\">",
            c->x0 + c->w + 58, c->y0 + c->h / 2);
    if (p->ninputs == 0)
        fputs("(no inputs in the trace)", f);
    for (size_t k = 0; k < p->ninputs; k++) {
        const sim_series *se = &s->series[p->inputs[k]];
        int dup = 0; /* one trigger with several label sets: name it once */
        for (size_t j = 0; j < k && !dup; j++)
            dup = s->series[p->inputs[j]].trigger == se->trigger;
        if (dup)
            continue;
        if (k)
            fputs(", ", f);
        xml_text(f, s->cfg->components[se->trigger].id);
    }
    fputs("</text>\n", f);
}

static void panel_draw(const sim *s, chart *c, const panel *p, double top)
{
    FILE *f = c->f;
    const sim_scaler *sc = p->sc;
    c->y0 = top + PANEL_TOP;
    fprintf(f,
            "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n",
            c->clip, c->x0, c->y0 - 2, c->w, c->h + 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">scaler ", c->x0,
            top + 16);
    xml_text(f, sc->c->id);
    fputs(" <tspan font-weight=\"normal\" fill=\"#555\">(", f);
    xml_text(f, sc->c->type);
    fprintf(f, ", min %lld, max %lld)</tspan></text>\n", (long long)sc->c->min,
            (long long)sc->c->max);

    /* Figures to tune from. */
    double peak = (double)sc->c->min;
    uint64_t peak_t = c->t0;
    for (size_t i = 0; i < sc->desired_pts.n; i++)
        if (sc->desired_pts.p[i].v > peak) {
            peak = sc->desired_pts.p[i].v;
            peak_t = sc->desired_pts.p[i].t;
        }
    char at_peak[32], at_max[32], under[32];
    fmt_clock(at_peak, sizeof at_peak, (double)(peak_t - c->t0) / 1e9);
    fmt_dur(at_max, sizeof at_max, time_where(&sc->desired_pts, NULL, (double)sc->c->max, s->t1));
    fmt_dur(under, sizeof under, time_where(&sc->desired_pts, &sc->running_pts, 0, s->t1));
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\">%llu decisions, "
            "%llu changes (%llu up, %llu down); peak %.0f at %s; at max %s; running below "
            "desired %s</text>\n",
            c->x0, top + 34, (unsigned long long)sc->decisions,
            (unsigned long long)(sc->ups + sc->downs), (unsigned long long)sc->ups,
            (unsigned long long)sc->downs, peak, at_peak, at_max, under);

    panel_axes(s, c, p);

    /* Bounds, inputs, the counts, then the bounds' labels on top (with a white halo). */
    const double bounds[2] = {(double)sc->c->min, (double)sc->c->max};
    for (int k = 0; k < 2; k++)
        if (bounds[k] <= c->ymax)
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
                    "stroke-width=\"1.2\" stroke-dasharray=\"2,3\"/>\n",
                    c->x0, cy(c, bounds[k]), c->x0 + c->w, cy(c, bounds[k]));
    for (size_t k = 0; k < p->ninputs; k++)
        svg_line(c, &s->series[p->inputs[k]].pts,
                 input_colors[k % (sizeof input_colors / sizeof input_colors[0])]);
    svg_step(c, &sc->desired_pts, COLOR_DESIRED, "stroke-width=\"2.5\"");
    svg_step(c, &sc->running_pts, COLOR_RUNNING, "stroke-width=\"2\" stroke-dasharray=\"6,4\"");
    fputs("<g font-size=\"11\" fill=\"#333\" stroke=\"#fff\" stroke-width=\"3\" "
          "paint-order=\"stroke\" text-anchor=\"end\">\n",
          f);
    for (int k = 0; k < 2; k++) {
        if (bounds[k] > c->ymax)
            continue;
        double y = cy(c, bounds[k]);
        /* max above its line, min below it, unless that leaves the plot */
        double ty = k == 1 ? y - 4 : y + 13;
        if (ty > c->y0 + c->h - 2)
            ty = y - 4;
        if (ty < c->y0 + 12)
            ty = y + 13;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s %lld</text>\n", c->x0 + c->w - 4, ty,
                k == 0 ? "min" : "max", (long long)bounds[k]);
    }
    if (bounds[1] > c->ymax)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">max %lld (above this scale)</text>\n",
                c->x0 + c->w - 4, c->y0 + 13, (long long)bounds[1]);
    fputs("</g>\n", f);
    legend(c, p->items, p->nitems, c->y0 + c->h + PANEL_AXIS + 14, 1);
    if (p->nhidden)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\" "
                "text-anchor=\"end\">%zu more input(s) not drawn</text>\n",
                c->x0 + c->w, top + 34, p->nhidden);
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static int write_svg(const sim *s, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(s->err, "%s: cannot write: %s\n", path, strerror(errno));
        return -1;
    }
    chart c = {.f = f,
               .x0 = CHART_ML,
               .w = CHART_W - CHART_ML - CHART_MR,
               .h = CHART_PH,
               .t0 = s->t0,
               /* a little room after the last row, so a change there shows */
               .t1 = s->t1 > s->t0 ? s->t1 + (s->t1 - s->t0) / 50 : s->t0 + 1000000000u};
    panel *panels = calloc(s->nscalers ? s->nscalers : 1, sizeof *panels);
    int rc = panels ? 0 : -ENOMEM;
    double height = CHART_HEAD;
    for (size_t i = 0; rc == 0 && i < s->nscalers; i++) {
        rc = panel_prepare(s, &s->scalers[i], &panels[i], &c);
        height += panels[i].height;
    }
    if (s->nscalers == 0)
        height += 30;
    if (rc == 0) {
        fprintf(f,
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
                "<title>scalebus simulate: ",
                CHART_W, height, CHART_W, height);
        xml_text(f, base_name(s->o->file));
        fprintf(f, "</title>\n<rect width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", CHART_W,
                height);
        fprintf(f,
                "<text x=\"%.1f\" y=\"24\" font-size=\"18\" font-weight=\"bold\">"
                "scalebus simulate: ",
                c.x0);
        xml_text(f, base_name(s->o->file));
        char span[32], startup[32];
        fmt_dur(span, sizeof span, (double)(s->t1 - s->t0) / 1e9);
        fmt_dur(startup, sizeof startup, (double)s->startup_ns / 1e9);
        fprintf(f, "</text>\n<text x=\"%.1f\" y=\"44\" fill=\"#444\">trace ", c.x0);
        xml_text(f, base_name(s->o->trace));
        fprintf(f,
                ": %zu readings over %s; scaler model: added instances run after %s, removed "
                "ones stop at once</text>\n",
                s->nrows, span, startup);
        double top = CHART_HEAD;
        for (size_t i = 0; i < s->nscalers; i++) {
            c.clip = (int)i;
            panel_draw(s, &c, &panels[i], top);
            top += panels[i].height;
        }
        if (s->nscalers == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">the file has no scalers</text>\n", c.x0,
                    top + 16);
        fputs("</svg>\n", f);
    }
    for (size_t i = 0; panels && i < s->nscalers; i++)
        panel_free(&panels[i]);
    free(panels);
    if (rc != 0)
        fprintf(s->err, "%s: out of memory\n", path);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) {
        fprintf(s->err, "%s: write failed\n", path);
        return -1;
    }
    return rc == 0 ? 0 : -1;
}

/* ---- the command ---------------------------------------------------------------------------- */

static void stopped(void *arg)
{
    *(int *)arg = 1;
}

static void sim_free(sim *s)
{
    for (size_t i = 0; s->scalers && i < s->nscalers; i++) {
        free(s->scalers[i].b);
        free(s->scalers[i].desired_pts.p);
        free(s->scalers[i].running_pts.p);
    }
    for (size_t i = 0; i < s->nseries; i++)
        free(s->series[i].pts.p);
    free(s->scalers);
    free(s->scaler_of);
    free(s->ids);
    free(s->series);
    free(s->series_map);
    free(s->rows);
    free(s->labels);
    free(s->text);
    free(s->wq);
    if (s->cfg)
        config_free(s->cfg);
}

/* Check the file the way `check` does, then take its components. 0 or -1 (errors printed). */
static int sim_config(sim *s)
{
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_check(s->d, s->o->file, 0, NULL, &errs);
    if (rc == 0) {
        s->cfg = config_parse_file(s->o->file, &errs);
        if (s->cfg && errs.count == 0 && index_components(s) != 0) {
            fprintf(s->err, "scalebus: out of memory\n");
            rc = -1;
        }
    }
    if (errs.count > 0 || !s->cfg)
        rc = -1;
    config_errors_print(&errs, s->err);
    config_errors_free(&errs);
    return rc == 0 ? 0 : -1;
}

int simulate_run(const simulate_options *o, FILE *err)
{
    sim s = {.o = o, .err = err, .startup_ns = o->startup_ms * 1000000u};
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(err, "scalebus: cannot create an event loop\n");
        return 1;
    }
    daemon_options dopts = {
        .log_level = o->log_level_set ? o->log_level : SB_LOG_WARN,
        .log_level_set = 1,
        .plugin_dirs = o->plugin_dirs,
        .nplugin_dirs = o->nplugin_dirs,
        .simulate = 1,
        .sim_desired = on_desired,
        .sim_arg = &s,
    };
    s.d = daemon_new(&loop, &dopts);
    int rc = 1, loaded = 0;
    if (!s.d) {
        fprintf(err, "scalebus: out of memory\n");
        goto done;
    }
    if (sim_config(&s) != 0 || trace_read(&s) != 0)
        goto done;
    s.out = o->out ? fopen(o->out, "w") : stdout;
    if (!s.out) {
        fprintf(err, "%s: cannot write: %s\n", o->out, strerror(errno));
        goto done;
    }
    if (s.out != stdout)
        setvbuf(s.out, NULL, _IOFBF, 1 << 16);
    config_errors errs;
    config_errors_init(&errs);
    s.loading = 1;
    int lrc = daemon_load(s.d, o->file, &errs);
    s.loading = 0;
    loaded = 1;
    if (lrc != 0) {
        config_errors_print(&errs, err);
        config_errors_free(&errs);
        goto done;
    }
    config_errors_free(&errs);

    fputs("time_s,scaler,desired,reason\n", s.out);
    replay(&s);
    if (s.failed)
        fprintf(err, "scalebus: out of memory during the simulation\n");
    int bad = ferror(s.out);
    if (s.out != stdout ? fclose(s.out) != 0 : fflush(s.out) != 0)
        bad = 1;
    if (bad)
        fprintf(err, "%s: write failed\n", o->out ? o->out : "stdout");
    s.out = NULL;
    rc = (s.failed || bad) ? 1 : 0;
    if (o->svg && write_svg(&s, o->svg) != 0)
        rc = 1;
done:
    if (s.out && s.out != stdout)
        fclose(s.out);
    if (s.d) {
        if (loaded) {
            int done_flag = 0;
            daemon_stop(s.d, stopped, &done_flag);
            for (int i = 0; i < 1000 && !done_flag; i++)
                uv_run(&loop, UV_RUN_NOWAIT);
        }
        daemon_free(s.d);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    sim_free(&s);
    return rc;
}
