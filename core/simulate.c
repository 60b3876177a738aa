/*
 * simulate.c - `scalebus simulate` (see simulate.h): replays a trace of readings through a
 * pipeline file's connectors on virtual time and writes every decision as CSV, and optionally an
 * SVG chart with one panel per scaler (drawn by chart.c).
 *
 * The daemon runs in simulate mode: triggers and scalers are plugin-less instances that keep their
 * ids, bounds and edges, while connectors are the real plugins. Each trace row becomes its
 * trigger's reading stamped with the row's virtual time, and the bus is flushed at once, so every
 * decision happens at that virtual instant. Desired counts reach this file through the daemon's
 * sim_desired hook and drive a model of each scaler: instances it adds count as running after
 * --startup, instances it removes stop at once. Every change of the model's running count goes
 * back to the policies as the scaler's SB_TOPIC_INSTANCES event, as a real scaler's would.
 *
 * The trace is a stream: it is read a chunk at a time, one record (a line, or lines inside
 * quotes) is parsed and replayed before the next is read, and a record longer than
 * SIMULATE_TRACE_MAX_LINE is refused. Nothing grows with the trace's length: the chart keeps
 * bounded series (chart_series), the (trigger, labels) combinations it tells apart are capped,
 * and a scaler model holds only its pending scale-ups. A regular file is read twice: once to
 * check every row (errors as TRACE:LINE: message), then to replay it, so a bad file simulates
 * nothing; a pipe is checked as it is replayed.
 */
#define _POSIX_C_SOURCE 200809L
#include "simulate.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "chart.h"
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
#define SIM_READ_CHUNK 65536  /* bytes read from the trace at a time */
#define SIM_MAX_SERIES 65536  /* (trigger, labels) combinations told apart for the chart */
#define SIM_MAX_BATCHES 65536 /* pending scale-ups per scaler model (see model_desired) */

static uint64_t hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *b = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

#define HASH_SEED 0xcbf29ce484222325ull

static uint64_t str_hash(const char *s)
{
    return hash_bytes(HASH_SEED, s, strlen(s));
}

/* "queue, cpu" for messages: add id; a long list ends in ", ...". */
static void id_list_add(char *buf, size_t cap, size_t *used, size_t *count, const char *id)
{
    size_t len = strlen(id) + (*count ? 2 : 0);
    if (*used + len + 6 < cap) {
        *used += (size_t)snprintf(buf + *used, cap - *used, "%s%s", *count ? ", " : "", id);
    } else if (!strstr(buf, ", ...")) {
        snprintf(buf + *used, cap - *used, ", ...");
        *used = cap;
    }
    (*count)++;
}

static const char *kind_name(sb_kind k)
{
    return k == SB_KIND_TRIGGER ? "trigger" : k == SB_KIND_CONNECTOR ? "connector" : "scaler";
}

/* ---- reading the trace: a stream of CSV records ------------------------------------------ */

/* Component index of a trigger id, or -1 with *kind the kind of a component that is no trigger
 * (left 0: no such component). */
typedef long (*trace_find_fn)(void *ctx, const char *id, sb_kind *kind);

typedef struct trace_row {
    uint64_t t; /* virtual ns */
    double value;
    uint32_t trigger;       /* component index */
    const sb_label *labels; /* valid until the next row is read */
    uint32_t nlabels;
} trace_row;

typedef struct trace {
    const char *name; /* in messages: the path, or "stdin" */
    FILE *err;

    /* The source: a file descriptor, or (fd < 0) data handed over chunk bytes at a time. */
    int fd;
    const unsigned char *data;
    size_t size, pos, chunk;

    unsigned char *buf; /* unread bytes: buf[head, tail) */
    size_t head, tail;
    int eof, read_errno, too_long;
    uint64_t total; /* bytes read */
    size_t raw;     /* bytes of the record being read */
    char *rec;      /* its fields, unquoted and NUL-terminated one after the other */
    unsigned long line;

    /* Checks. */
    int want; /* fields per row: 3 or 4, from the header */
    double prev_t;
    char prev_text[48];
    trace_find_fn find;
    void *find_ctx;
    const char *trigger_list;
    sb_label labels[SIM_MAX_LABELS];
    uint64_t nerrors, nrows;
    int stopped; /* an over-long line or a read error ended the reading (not in nerrors) */
} trace;

static int trace_init(trace *tr, const char *name, FILE *err, trace_find_fn find, void *ctx,
                      const char *trigger_list)
{
    memset(tr, 0, sizeof *tr);
    tr->name = name;
    tr->err = err;
    tr->fd = -1;
    tr->find = find;
    tr->find_ctx = ctx;
    tr->trigger_list = trigger_list;
    tr->buf = malloc(SIM_READ_CHUNK);
    tr->rec = malloc(SIMULATE_TRACE_MAX_LINE + 2);
    return tr->buf && tr->rec ? 0 : -ENOMEM;
}

static void trace_free(trace *tr)
{
    free(tr->buf);
    free(tr->rec);
}

/* Ready to read from the start (of the data; a file descriptor is where it is). */
static void trace_reset(trace *tr)
{
    tr->pos = 0;
    tr->head = tr->tail = 0;
    tr->eof = tr->read_errno = tr->too_long = 0;
    tr->total = 0;
    tr->line = 1;
    tr->want = 0;
    tr->prev_t = 0;
    snprintf(tr->prev_text, sizeof tr->prev_text, "0");
    tr->nerrors = tr->nrows = 0;
    tr->stopped = 0;
}

/* Read more after the unread bytes. 1: there are unread bytes; 0: end of input or an error. */
static int rd_fill(trace *tr)
{
    if (tr->head == tr->tail)
        tr->head = tr->tail = 0;
    if (tr->tail == SIM_READ_CHUNK) {
        memmove(tr->buf, tr->buf + tr->head, tr->tail - tr->head);
        tr->tail -= tr->head;
        tr->head = 0;
    }
    while (!tr->eof && !tr->read_errno && tr->tail < SIM_READ_CHUNK) {
        size_t room = SIM_READ_CHUNK - tr->tail, got;
        if (tr->fd >= 0) {
            ssize_t n = read(tr->fd, tr->buf + tr->tail, room);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                tr->read_errno = errno;
                break;
            }
            got = (size_t)n;
        } else {
            got = tr->size - tr->pos;
            if (tr->chunk && got > tr->chunk)
                got = tr->chunk;
            if (got > room)
                got = room;
            if (got)
                memcpy(tr->buf + tr->tail, tr->data + tr->pos, got);
            tr->pos += got;
        }
        if (got == 0)
            tr->eof = 1;
        tr->tail += got;
        tr->total += got;
        if (got)
            break;
    }
    return tr->head < tr->tail;
}

/* The next byte, or -1 at the end of input, after a read error or past the line limit. */
static int rd_peek(trace *tr)
{
    if (tr->too_long || (tr->head == tr->tail && !rd_fill(tr)))
        return -1;
    return tr->buf[tr->head];
}

static int rd_get(trace *tr)
{
    int c = rd_peek(tr);
    if (c < 0)
        return -1;
    if (tr->raw == SIMULATE_TRACE_MAX_LINE) {
        tr->too_long = 1;
        return -1;
    }
    tr->raw++;
    tr->head++;
    return c;
}

/* Enough unread bytes for a look at the next n (fewer only at the end of input). */
static size_t rd_ensure(trace *tr, size_t n)
{
    while (tr->tail - tr->head < n && !tr->eof && !tr->read_errno) {
        if (tr->head > 0) {
            memmove(tr->buf, tr->buf + tr->head, tr->tail - tr->head);
            tr->tail -= tr->head;
            tr->head = 0;
        }
        size_t before = tr->tail;
        rd_fill(tr);
        if (tr->tail == before && !tr->eof && !tr->read_errno)
            break;
    }
    return tr->tail - tr->head;
}

/* The next CSV record (RFC 4180: a field in double quotes may hold commas, newlines and "" for
 * a quote), its fields unquoted into tr->rec; up to max are stored, all are counted. tr->line
 * moves past every newline read. Returns the field count; -1 with *why set (the rest of the line
 * is skipped); or -2 when the record is longer than the limit or the source failed (the reading
 * ends there). */
static int csv_record(trace *tr, char **fields, int max, const char **why)
{
    size_t len = 0, cap = SIMULATE_TRACE_MAX_LINE + 2;
    int n = 0;
    tr->raw = 0;
    for (;;) {
        size_t start = len;
        int c = rd_peek(tr);
        if (c == '"') {
            rd_get(tr);
            for (;;) {
                c = rd_get(tr);
                if (c < 0) {
                    if (tr->too_long || tr->read_errno)
                        return -2;
                    *why = "a quoted field is not closed";
                    return -1;
                }
                if (c == '"') {
                    if (rd_peek(tr) == '"') {
                        rd_get(tr);
                    } else {
                        break;
                    }
                } else if (c == '\n') {
                    tr->line++;
                }
                if (len + 1 < cap)
                    tr->rec[len++] = (char)c;
            }
            c = rd_peek(tr);
            if (c >= 0 && c != ',' && c != '\n' && c != '\r') {
                *why = "text after a closing quote (a quote inside a quoted field is written \"\")";
                while ((c = rd_get(tr)) >= 0 && c != '\n')
                    ;
                if (c == '\n')
                    tr->line++;
                return tr->too_long || tr->read_errno ? -2 : -1;
            }
        } else {
            while (c >= 0 && c != ',' && c != '\n' && c != '\r') {
                /* The bytes at hand up to a delimiter (or the limit), in one go. */
                const unsigned char *p = tr->buf + tr->head;
                size_t avail = tr->tail - tr->head, room = SIMULATE_TRACE_MAX_LINE - tr->raw;
                size_t k = 0, lim = avail < room ? avail : room;
                while (k < lim && p[k] != ',' && p[k] != '\n' && p[k] != '\r')
                    k++;
                if (k == 0) {
                    rd_get(tr); /* at the limit: refused */
                    break;
                }
                size_t space = len < cap - 1 ? cap - 1 - len : 0;
                size_t copy = k < space ? k : space;
                memcpy(tr->rec + len, p, copy);
                len += copy;
                tr->head += k;
                tr->raw += k;
                c = rd_peek(tr);
            }
        }
        if (tr->too_long || tr->read_errno)
            return -2;
        /* Each field's terminator stands for a delimiter read: the record always fits. */
        if (len == cap)
            len--;
        tr->rec[len++] = '\0';
        if (n < max)
            fields[n] = tr->rec + start;
        n++;
        if (c == ',') {
            rd_get(tr);
            continue;
        }
        if (c == '\r') {
            rd_get(tr);
            if (rd_peek(tr) == '\n')
                rd_get(tr);
            tr->line++;
        } else if (c == '\n') {
            rd_get(tr);
            tr->line++;
        }
        /* A line break may be what crosses the limit: the record is refused all the same. */
        return tr->too_long || tr->read_errno ? -2 : n;
    }
}

static void trace_error(trace *tr, unsigned long line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One error, on one line: control characters quoted from the trace (a line break inside quotes)
 * are shown as '?'. */
static void trace_error(trace *tr, unsigned long line, const char *fmt, ...)
{
    if (++tr->nerrors > SIM_MAX_ERRORS)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    fprintf(tr->err, "%s:%lu: %s\n", tr->name, line, msg);
}

/* The reading ended early: an over-long record or a failed read. */
static void trace_stop(trace *tr, unsigned long at)
{
    tr->stopped = 1;
    if (tr->too_long)
        fprintf(tr->err,
                "%s:%lu: a line longer than %d bytes; reading stopped (is this a CSV "
                "trace?)\n",
                tr->name, at, SIMULATE_TRACE_MAX_LINE);
    else
        fprintf(tr->err, "%s: cannot read: %s\n", tr->name, strerror(tr->read_errno));
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

/* Split "k=v;k=v" in place into tr->labels. Returns 0 or -EINVAL (message written). */
static int parse_labels(trace *tr, unsigned long line, char *text, uint32_t *nlabels)
{
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
            trace_error(tr, line, "labels: expected key=value items separated by ';', got '%.60s'",
                        item);
            return -EINVAL;
        }
        if (*nlabels == SIM_MAX_LABELS) {
            trace_error(tr, line, "labels: more than %d labels", SIM_MAX_LABELS);
            return -EINVAL;
        }
        *eq = '\0';
        tr->labels[(*nlabels)++] = (sb_label){item, eq + 1};
    }
    return 0;
}

/* Check one data record. Returns 0 with *row filled, or -EINVAL (reported). */
static int trace_check_row(trace *tr, unsigned long line, char **f, int nf, trace_row *row)
{
    int want = tr->want;
    if (nf != want && !(want == 4 && nf == 3)) {
        trace_error(tr, line, "expected %d fields (%s), got %d", want,
                    want == 4 ? "time_s,trigger,value,labels" : "time_s,trigger,value", nf);
        return -EINVAL;
    }
    double t, v;
    if (parse_number(f[0], &t) != 0) {
        trace_error(tr, line, "time_s: '%.40s' is not a number of seconds", f[0]);
        return -EINVAL;
    }
    if (t < 0 || t > SIM_MAX_TIME_S) {
        trace_error(tr, line, "time_s: %.40s is outside 0 to %.0f seconds", f[0], SIM_MAX_TIME_S);
        return -EINVAL;
    }
    if (t < tr->prev_t) {
        trace_error(tr, line,
                    "time goes backwards: %.40s is before the previous row's %s "
                    "(rows must be in time order)",
                    f[0], tr->prev_text);
        return -EINVAL;
    }
    tr->prev_t = t;
    size_t tlen = strnlen(f[0], 40); /* as printed: %.40s */
    memcpy(tr->prev_text, f[0], tlen);
    tr->prev_text[tlen] = '\0';
    sb_kind kind = 0;
    long ci = tr->find(tr->find_ctx, f[1], &kind);
    if (ci < 0) {
        if (!kind)
            trace_error(tr, line, "unknown trigger '%.60s' (triggers in the file: %s)", f[1],
                        tr->trigger_list[0] ? tr->trigger_list : "none");
        else
            trace_error(tr, line, "'%.60s' is a %s, not a trigger (triggers in the file: %s)", f[1],
                        kind_name(kind), tr->trigger_list[0] ? tr->trigger_list : "none");
        return -EINVAL;
    }
    if (parse_number(f[2], &v) != 0) {
        trace_error(tr, line, "value: '%.40s' is not a number", f[2]);
        return -EINVAL;
    }
    uint32_t nlabels = 0;
    if (nf == 4 && parse_labels(tr, line, f[3], &nlabels) != 0)
        return -EINVAL;
    *row = (trace_row){
        .t = SIM_BASE_NS + (uint64_t)floor(t * 1e9 + 0.5),
        .value = v,
        .trigger = (uint32_t)ci,
        .labels = nlabels ? tr->labels : NULL,
        .nlabels = nlabels,
    };
    return 0;
}

/* Read and check the header. 0, or -1 (reported). */
static int trace_header(trace *tr)
{
    if (rd_ensure(tr, 3) >= 3 && memcmp(tr->buf + tr->head, "\xEF\xBB\xBF", 3) == 0)
        tr->head += 3; /* a UTF-8 byte order mark, as spreadsheets write */
    char *f[SIM_MAX_FIELDS];
    const char *why = "";
    int nf = csv_record(tr, f, SIM_MAX_FIELDS, &why);
    if (nf == -2) {
        trace_stop(tr, 1);
        return -1;
    }
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
        trace_error(tr, 1,
                    "expected the header time_s,trigger,value (or time_s,trigger,value,labels), "
                    "got %s%.60s%s",
                    tr->total == 0 ? "an empty file" : "'", got, tr->total == 0 ? "" : "'");
        return -1;
    }
    tr->want = want;
    return 0;
}

/* The next good row. 1: *row is set; 0: the end of the trace; -1: the reading stopped (an
 * over-long line or a failed read, reported). A bad row is reported and skipped. */
static int trace_next(trace *tr, trace_row *row)
{
    char *f[SIM_MAX_FIELDS];
    for (;;) {
        int c = rd_peek(tr);
        if (c < 0)
            break;
        if (c == '\n' || c == '\r') { /* a blank line */
            tr->head++;
            if (c == '\r' && rd_peek(tr) == '\n')
                tr->head++;
            tr->line++;
            continue;
        }
        unsigned long at = tr->line;
        const char *why = "";
        int nf = csv_record(tr, f, SIM_MAX_FIELDS, &why);
        if (nf == -2) {
            trace_stop(tr, at);
            return -1;
        }
        if (nf < 0) {
            trace_error(tr, at, "%s", why);
            continue;
        }
        if (trace_check_row(tr, at, f, nf, row) == 0) {
            tr->nrows++;
            return 1;
        }
    }
    if (tr->read_errno) {
        trace_stop(tr, tr->line);
        return -1;
    }
    return 0;
}

/* After the last row: the count of errors not printed, and a trace without readings. 0 when the
 * whole trace was good, else -1. */
static int trace_finish(trace *tr)
{
    if (tr->nerrors > SIM_MAX_ERRORS)
        fprintf(tr->err, "%s: ... and %llu more error(s)\n", tr->name,
                (unsigned long long)(tr->nerrors - SIM_MAX_ERRORS));
    if (tr->nerrors == 0 && !tr->stopped && tr->nrows == 0) {
        fprintf(tr->err, "%s:%lu: no readings after the header\n", tr->name, tr->line);
        return -1;
    }
    return tr->nerrors || tr->stopped ? -1 : 0;
}

/* ---- checking a trace from memory (the fuzzer) ------------------------------------------ */

typedef struct id_table {
    const char *const *ids;
    const sb_kind *kinds;
    size_t n;
} id_table;

static long find_in_table(void *ctx, const char *id, sb_kind *kind)
{
    const id_table *t = ctx;
    for (size_t i = 0; i < t->n; i++) {
        if (strcmp(t->ids[i], id) != 0)
            continue;
        if (t->kinds[i] == SB_KIND_TRIGGER)
            return (long)i;
        *kind = t->kinds[i];
        return -1;
    }
    return -1;
}

static uint64_t row_digest(uint64_t h, const trace_row *r)
{
    h = hash_bytes(h, &r->t, sizeof r->t);
    h = hash_bytes(h, &r->value, sizeof r->value);
    h = hash_bytes(h, &r->trigger, sizeof r->trigger);
    for (uint32_t i = 0; i < r->nlabels; i++) {
        h = hash_bytes(h, r->labels[i].key, strlen(r->labels[i].key) + 1);
        h = hash_bytes(h, r->labels[i].value, strlen(r->labels[i].value) + 1);
    }
    return hash_bytes(h, "\n", 1);
}

int simulate_check_trace(const char *name, const void *data, size_t size, size_t chunk,
                         const char *const *ids, const sb_kind *kinds, size_t nids, FILE *err,
                         simulate_trace_summary *sum)
{
    id_table table = {ids, kinds, nids};
    char list[256] = "";
    size_t used = 0, count = 0;
    for (size_t i = 0; i < nids; i++)
        if (kinds[i] == SB_KIND_TRIGGER)
            id_list_add(list, sizeof list, &used, &count, ids[i]);
    trace tr;
    memset(sum, 0, sizeof *sum);
    if (trace_init(&tr, name, err, find_in_table, &table, list) != 0) {
        trace_free(&tr);
        return -ENOMEM;
    }
    tr.data = data;
    tr.size = size;
    tr.chunk = chunk;
    trace_reset(&tr);
    int rc = trace_header(&tr);
    uint64_t digest = HASH_SEED;
    trace_row row;
    while (rc == 0 && trace_next(&tr, &row) == 1)
        digest = row_digest(digest, &row);
    if (rc == 0)
        rc = trace_finish(&tr);
    *sum = (simulate_trace_summary){
        .rows = tr.nrows,
        .errors = tr.nerrors,
        .lines = tr.line,
        .digest = digest,
        .stopped = tr.stopped,
    };
    trace_free(&tr);
    return rc == 0 ? 0 : -EINVAL;
}

/* ---- the simulation's state ---------------------------------------------------------------- */

/* Instances added at one virtual instant, running once ready. */
typedef struct batch {
    uint64_t ready; /* virtual time the instances count as running */
    uint64_t seq;   /* order among batches ready at the same time (see models_advance) */
    int64_t n;
} batch;

/* Seconds a condition on the counts held: summed per interval between the counts' changes, up
 * to the end of the trace. */
typedef struct span {
    uint64_t t; /* the last change */
    int on;     /* the condition since then */
    double total;
} span;

typedef struct sim_scaler {
    const config_component *c;
    int64_t desired;  /* last desired count delivered */
    int64_t running;  /* the model's running count */
    int64_t starting; /* added, not yet running: the sum of the batches */
    batch *b;         /* pending batches, oldest first: [bhead, bn) */
    size_t bhead, bn, bcap;
    uint64_t wake_ready, wake_seq; /* the newest ready time given a sequence number */
    chart_series desired_pts, running_pts;
    uint64_t decisions, ups, downs;
    double peak; /* the highest desired count, first reached at peak_t */
    uint64_t peak_t;
    span at_max; /* desired at or above max */
    span under;  /* running below desired */
    /* The chart's inputs: series that reach this scaler, the first CHART_INPUTS drawn. */
    uint32_t inputs[CHART_INPUTS];
    size_t ninputs, nhidden;
    int nhidden_atleast;
} sim_scaler;

/* A series a panel draws (one may be drawn in several). */
typedef struct sim_drawn {
    chart_series values;
    uint32_t trigger;
    char name[120]; /* "queue {queue=build}" */
} sim_drawn;

/* One (trigger, labels) combination of the trace: one input line in the chart. */
typedef struct sim_series {
    uint64_t hash; /* of the trigger and the labels */
    uint32_t trigger, nlabels;
    int32_t drawn; /* index in sim.drawn, or -1 when no panel draws it */
} sim_series;

typedef struct sim {
    const simulate_options *o;
    FILE *err, *out;
    sb_daemon *d;
    config *cfg;
    uint64_t startup_ns;
    trace tr;

    /* Components by id: slot = component index + 1, 0 empty. */
    uint32_t *ids;
    size_t ids_cap;
    int32_t *scaler_of; /* component index -> index in scalers, or -1 */
    sim_scaler *scalers;
    size_t nscalers;
    char trigger_list[256]; /* "queue, cpu" for error messages */

    /* The trace's series, by hash (slot = series index + 1), at most SIM_MAX_SERIES. */
    sim_series *series;
    size_t nseries, series_cap;
    uint32_t *series_map;
    size_t series_map_cap;
    sim_drawn *drawn; /* the series panels draw */
    size_t ndrawn, drawn_cap;

    uint64_t seq;    /* batches' sequence numbers */
    uint64_t now;    /* the virtual instant being simulated */
    uint64_t t0, t1; /* first and last row */
    uint64_t nrows;
    int started;
    int loading;
    int failed; /* out of memory or a write error while running */
} sim;

/* ---- components by id ---------------------------------------------------------------------- */

static int index_components(sim *s)
{
    const config *cfg = s->cfg;
    size_t cap = 16;
    while (cap < cfg->ncomponents * 2 + 2)
        cap *= 2;
    size_t n = cfg->ncomponents ? cfg->ncomponents : 1;
    s->ids = calloc(cap, sizeof *s->ids);
    s->scaler_of = calloc(n, sizeof *s->scaler_of);
    s->scalers = calloc(n, sizeof *s->scalers);
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
            sim_scaler *sc = &s->scalers[s->nscalers];
            s->scaler_of[i] = (int32_t)s->nscalers++;
            sc->c = c;
            chart_series_init(&sc->desired_pts, 1);
            chart_series_init(&sc->running_pts, 1);
        } else if (c->kind == SB_KIND_TRIGGER) {
            id_list_add(s->trigger_list, sizeof s->trigger_list, &used, &ntrig, c->id);
        }
    }
    /* Every panel draws at most CHART_INPUTS series. */
    s->drawn_cap = s->nscalers * CHART_INPUTS;
    s->drawn = calloc(s->drawn_cap ? s->drawn_cap : 1, sizeof *s->drawn);
    return s->drawn ? 0 : -ENOMEM;
}

/* Component index of id, or -1. */
static long find_component(const sim *s, const char *id)
{
    for (size_t k = str_hash(id) & (s->ids_cap - 1); s->ids[k]; k = (k + 1) & (s->ids_cap - 1))
        if (strcmp(s->cfg->components[s->ids[k] - 1].id, id) == 0)
            return (long)s->ids[k] - 1;
    return -1;
}

static long find_trigger(void *ctx, const char *id, sb_kind *kind)
{
    const sim *s = ctx;
    long ci = find_component(s, id);
    if (ci >= 0 && s->cfg->components[ci].kind != SB_KIND_TRIGGER) {
        *kind = s->cfg->components[ci].kind;
        return -1;
    }
    return ci;
}

/* ---- the chart's inputs --------------------------------------------------------------------- */

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

/* Is a row's (trigger, labels) an input of the scaler: a connector takes its trigger (and its
 * labels pass the connector's match) and its decisions reach the scaler? */
static int row_feeds(const sim *s, const trace_row *r, const config_component *scaler)
{
    const char *tid = s->cfg->components[r->trigger].id;
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
            for (uint32_t l = 0; l < r->nlabels && !have; l++)
                if (strcmp(r->labels[l].key, c->match_keys[m]) == 0)
                    have = r->labels[l].value;
            match = have && config_glob_match(c->match_values[m], have);
        }
        if (match && reaches(s, c, scaler->id, 0))
            return 1;
    }
    return 0;
}

/* A series' name in the legend: "queue" or "queue {queue=build}". */
static void series_name(const sim *s, const trace_row *r, char *buf, size_t n)
{
    size_t len = (size_t)snprintf(buf, n, "%s", s->cfg->components[r->trigger].id);
    for (uint32_t l = 0; l < r->nlabels && len < n; l++)
        len += (size_t)snprintf(buf + len, n - len, "%s%s=%s", l ? "," : " {", r->labels[l].key,
                                r->labels[l].value);
    if (r->nlabels && len < n)
        snprintf(buf + len, n - len, "}");
}

/* A new series: the panels it reaches draw it while they have room, and count it otherwise.
 * Returns 0 or -ENOMEM. */
static int series_place(sim *s, sim_series *se, const trace_row *r)
{
    se->drawn = -1;
    for (size_t i = 0; i < s->nscalers; i++) {
        sim_scaler *sc = &s->scalers[i];
        if (!row_feeds(s, r, sc->c))
            continue;
        if (sc->ninputs == CHART_INPUTS) {
            sc->nhidden++;
            continue;
        }
        if (se->drawn < 0) {
            if (s->ndrawn == s->drawn_cap)
                return -ENOMEM; /* cannot happen: each panel draws at most CHART_INPUTS */
            sim_drawn *dr = &s->drawn[s->ndrawn];
            se->drawn = (int32_t)s->ndrawn++;
            chart_series_init(&dr->values, 0);
            dr->trigger = r->trigger;
            series_name(s, r, dr->name, sizeof dr->name);
        }
        sc->inputs[sc->ninputs++] = (uint32_t)se->drawn;
    }
    return 0;
}

/* A row's series, added when new (see series_place); NULL when there are too many to tell apart
 * (its panels then say their hidden count is a lower bound) or out of memory (s->failed). Series
 * are told apart by trigger and a 64-bit hash of their labels. */
static sim_series *series_of(sim *s, const trace_row *r)
{
    uint64_t h = hash_bytes(HASH_SEED, &r->trigger, sizeof r->trigger);
    for (uint32_t i = 0; i < r->nlabels; i++) {
        h = hash_bytes(h, r->labels[i].key, strlen(r->labels[i].key) + 1);
        h = hash_bytes(h, r->labels[i].value, strlen(r->labels[i].value) + 1);
    }
    if (s->series_map_cap) {
        for (size_t k = h & (s->series_map_cap - 1); s->series_map[k];
             k = (k + 1) & (s->series_map_cap - 1)) {
            sim_series *se = &s->series[s->series_map[k] - 1];
            if (se->hash == h && se->trigger == r->trigger && se->nlabels == r->nlabels)
                return se;
        }
    }
    if (s->nseries == SIM_MAX_SERIES) {
        /* Not one of the series known: at least one more input for the panels it reaches. */
        for (size_t i = 0; i < s->nscalers; i++) {
            sim_scaler *sc = &s->scalers[i];
            if (!sc->nhidden_atleast && row_feeds(s, r, sc->c)) {
                sc->nhidden++;
                sc->nhidden_atleast = 1;
            }
        }
        return NULL;
    }
    if ((s->nseries + 1) * 2 > s->series_map_cap) {
        size_t ncap = s->series_map_cap ? s->series_map_cap * 2 : 64;
        uint32_t *m = calloc(ncap, sizeof *m);
        if (!m)
            goto oom;
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
    if (s->nseries == s->series_cap) {
        size_t ncap = s->series_cap ? s->series_cap * 2 : 16;
        sim_series *n = realloc(s->series, ncap * sizeof *n);
        if (!n)
            goto oom;
        s->series = n;
        s->series_cap = ncap;
    }
    sim_series *se = &s->series[s->nseries];
    *se = (sim_series){.hash = h, .trigger = r->trigger, .nlabels = r->nlabels};
    if (series_place(s, se, r) != 0)
        goto oom;
    size_t k = h & (s->series_map_cap - 1);
    while (s->series_map[k])
        k = (k + 1) & (s->series_map_cap - 1);
    s->series_map[k] = (uint32_t)++s->nseries;
    return se;
oom:
    s->failed = 1;
    return NULL;
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

/* A change of the counts at t: close the interval since the last one. */
static void span_at(span *sp, uint64_t t, int on)
{
    if (t > sp->t) {
        if (sp->on)
            sp->total += (double)(t - sp->t) / 1e9;
        sp->t = t;
    }
    sp->on = on;
}

/* The total up to t1, the end of the trace. */
static double span_total(const span *sp, uint64_t t1)
{
    return sp->on && t1 > sp->t ? sp->total + (double)(t1 - sp->t) / 1e9 : sp->total;
}

static void model_publish(sim *s, sim_scaler *sc, uint64_t t)
{
    if (chart_series_add(&sc->running_pts, t, (double)sc->running) != 0)
        s->failed = 1;
    span_at(&sc->under, t, sc->running < sc->desired);
    sb_publish pub = {SB_PUBLISH_INIT, .topic = SB_TOPIC_INSTANCES, .value = (double)sc->running,
                      .time_ns = t};
    if (daemon_inject(s->d, sc->c->id, &pub) != 0)
        s->failed = 1;
}

/* Room for one more batch: the pending ones moved to the front when they fill at most half the
 * array (so each batch is moved a bounded number of times), else a larger array. */
static int batch_room(sim_scaler *sc)
{
    if (sc->bn < sc->bcap)
        return 0;
    if (sc->bhead > 0 && sc->bhead >= sc->bcap / 2) {
        memmove(sc->b, sc->b + sc->bhead, (sc->bn - sc->bhead) * sizeof *sc->b);
        sc->bn -= sc->bhead;
        sc->bhead = 0;
        return 0;
    }
    size_t ncap = sc->bcap ? sc->bcap * 2 : 16;
    batch *n = realloc(sc->b, ncap * sizeof *n);
    if (!n)
        return -ENOMEM;
    sc->b = n;
    sc->bcap = ncap;
    return 0;
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
        uint64_t ready = t + s->startup_ns;
        /* Batches ready at the same time start together, under the sequence number of the
         * first (models_advance): one batch. Each pending batch holds at least one instance, so
         * there are at most max of them; beyond SIM_MAX_BATCHES (a huge max) the newest takes
         * the new instances, which then run a little early. */
        size_t pending = sc->bn - sc->bhead;
        if (pending > 0 && (sc->b[sc->bn - 1].ready == ready || pending >= SIM_MAX_BATCHES)) {
            sc->b[sc->bn - 1].n += want - total;
        } else {
            if (batch_room(sc) != 0) {
                s->failed = 1;
                return;
            }
            if (sc->wake_ready != ready || sc->wake_seq == 0) {
                sc->wake_ready = ready;
                sc->wake_seq = ++s->seq;
            }
            sc->b[sc->bn++] = (batch){ready, sc->wake_seq, want - total};
        }
        sc->starting += want - total;
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
        if (chart_series_add(&sc->desired_pts, s->now, (double)want) != 0)
            s->failed = 1;
        if ((double)want > sc->peak) {
            sc->peak = (double)want;
            sc->peak_t = s->now;
        }
        span_at(&sc->at_max, s->now, want >= sc->c->max);
        span_at(&sc->under, s->now, sc->running < want);
    }
    model_desired(s, sc, want, s->now);
}

/* Bring every model up to virtual time t: batches whose startup has passed start running, each
 * published (and its consequences decided) at its own ready time. Batches ready at the same time
 * in several scalers start in the order they were decided (their sequence numbers). */
static void models_advance(sim *s, uint64_t t)
{
    for (;;) {
        sim_scaler *next = NULL;
        const batch *nb = NULL;
        for (size_t i = 0; i < s->nscalers; i++) {
            sim_scaler *sc = &s->scalers[i];
            if (sc->bhead == sc->bn)
                continue;
            const batch *b = &sc->b[sc->bhead];
            if (b->ready <= t &&
                (!nb || b->ready < nb->ready || (b->ready == nb->ready && b->seq < nb->seq))) {
                next = sc;
                nb = b;
            }
        }
        if (!next)
            return;
        uint64_t ready_t = nb->ready;
        int64_t ready = 0;
        while (next->bhead < next->bn && next->b[next->bhead].ready <= ready_t)
            ready += next->b[next->bhead++].n;
        if (next->bhead == next->bn)
            next->bhead = next->bn = 0;
        next->starting -= ready;
        next->running += ready;
        s->now = ready_t;
        model_publish(s, next, ready_t);
        daemon_flush(s->d);
    }
}

/* Before the first row: each scaler starts at its min (the daemon's desired count at start), and
 * says so. */
static void replay_start(sim *s, uint64_t t0)
{
    s->started = 1;
    s->t0 = s->t1 = s->now = t0;
    for (size_t i = 0; i < s->nscalers; i++) {
        sim_scaler *sc = &s->scalers[i];
        sc->desired = sc->running = sc->c->min;
        if (chart_series_add(&sc->desired_pts, s->now, (double)sc->desired) != 0)
            s->failed = 1;
        sc->peak = (double)sc->c->min;
        sc->peak_t = t0;
        sc->at_max = (span){t0, sc->desired >= sc->c->max, 0};
        sc->under = (span){t0, 0, 0};
        model_publish(s, sc, s->now);
    }
    daemon_flush(s->d);
}

static void replay_row(sim *s, const trace_row *r)
{
    if (!s->started)
        replay_start(s, r->t);
    sim_series *se = series_of(s, r);
    models_advance(s, r->t);
    s->now = s->t1 = r->t;
    s->nrows++;
    sb_publish pub = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .time_ns = r->t};
    pub.flags = SB_EVENT_COALESCE;
    pub.value = r->value;
    pub.labels = r->labels;
    pub.nlabels = r->nlabels;
    if (daemon_inject(s->d, s->cfg->components[r->trigger].id, &pub) != 0)
        s->failed = 1;
    daemon_flush(s->d);
    if (se && se->drawn >= 0 && chart_series_add(&s->drawn[se->drawn].values, r->t, r->value) != 0)
        s->failed = 1;
}

/* ---- the chart ------------------------------------------------------------------------------ */

static int write_chart(const sim *s, const char *path)
{
    int to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (!f) {
        fprintf(s->err, "%s: cannot write: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = s->nscalers ? s->nscalers : 1;
    chart_panel *panels = calloc(n, sizeof *panels);
    chart_input *inputs = calloc(n * CHART_INPUTS, sizeof *inputs);
    int rc = panels && inputs ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < s->nscalers; i++) {
        const sim_scaler *sc = &s->scalers[i];
        chart_input *in = &inputs[i * CHART_INPUTS];
        for (size_t k = 0; k < sc->ninputs; k++) {
            const sim_drawn *dr = &s->drawn[sc->inputs[k]];
            in[k] = (chart_input){s->cfg->components[dr->trigger].id, dr->name, &dr->values};
        }
        panels[i] = (chart_panel){
            .id = sc->c->id,
            .type = sc->c->type,
            .min = (long long)sc->c->min,
            .max = (long long)sc->c->max,
            .desired = &sc->desired_pts,
            .running = &sc->running_pts,
            .inputs = in,
            .ninputs = sc->ninputs,
            .nhidden = sc->nhidden,
            .nhidden_atleast = sc->nhidden_atleast,
            .decisions = sc->decisions,
            .ups = sc->ups,
            .downs = sc->downs,
            .peak = sc->peak,
            .peak_t = sc->peak_t,
            .at_max_s = span_total(&sc->at_max, s->t1),
            .under_s = span_total(&sc->under, s->t1),
        };
    }
    char t0[40];
    fmt_vtime(t0, sizeof t0, s->t0);
    chart_info ci = {
        .file = s->o->file,
        .trace = s->tr.name,
        .nrows = s->nrows,
        .t0 = s->t0,
        .t1 = s->t1,
        .t0_text = s->t0 > SIM_BASE_NS ? t0 : NULL,
        .startup_ns = s->startup_ns,
        .panels = panels,
        .npanels = s->nscalers,
    };
    if (rc == 0)
        rc = chart_write_svg(f, &ci);
    free(panels);
    free(inputs);
    if (rc != 0)
        fprintf(s->err, "%s: out of memory\n", path);
    int bad = ferror(f);
    if ((to_stdout ? fflush(f) : fclose(f)) != 0 || bad) {
        fprintf(s->err, "%s: write failed\n", to_stdout ? "stdout" : path);
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
        chart_series_free(&s->scalers[i].desired_pts);
        chart_series_free(&s->scalers[i].running_pts);
    }
    for (size_t i = 0; i < s->ndrawn; i++)
        chart_series_free(&s->drawn[i].values);
    free(s->drawn);
    free(s->scalers);
    free(s->scaler_of);
    free(s->ids);
    free(s->series);
    free(s->series_map);
    trace_free(&s->tr);
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

/* Open the trace. *twice: a regular file, read once to check it and again to replay it, from
 * offset *start. 0 or -1 (reported). */
static int trace_open(sim *s, int *twice, off_t *start)
{
    const char *path = s->o->trace;
    int is_stdin = strcmp(path, "-") == 0;
    if (trace_init(&s->tr, is_stdin ? "stdin" : path, s->err, find_trigger, s, s->trigger_list) !=
        0) {
        fprintf(s->err, "scalebus: out of memory\n");
        return -1;
    }
    s->tr.fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (s->tr.fd < 0) {
        fprintf(s->err, "%s: cannot read: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    *start = 0;
    *twice = fstat(s->tr.fd, &st) == 0 && S_ISREG(st.st_mode) &&
             (*start = lseek(s->tr.fd, 0, SEEK_CUR)) >= 0;
    trace_reset(&s->tr);
    return 0;
}

/* A whole pass over a regular file, checking only. 0 when it is good, else -1 (reported). */
static int trace_check_pass(sim *s)
{
    if (trace_header(&s->tr) != 0)
        return -1;
    trace_row row;
    int rc;
    while ((rc = trace_next(&s->tr, &row)) == 1)
        ;
    int fin = trace_finish(&s->tr);
    return rc < 0 ? -1 : fin;
}

/* Replay the rows, each as it is read. A bad row stops the replay (the rest is still checked).
 * 0 when every row was good and replayed, else -1 (reported). */
static int replay(sim *s)
{
    trace_row row;
    int rc;
    while ((rc = trace_next(&s->tr, &row)) == 1) {
        if (s->tr.nerrors == 0 && !s->failed)
            replay_row(s, &row);
    }
    int fin = trace_finish(&s->tr);
    return rc < 0 ? -1 : fin;
}

static FILE *open_out(const sim *s)
{
    const char *out = s->o->out;
    if (!out || strcmp(out, "-") == 0)
        return stdout;
    FILE *f = fopen(out, "w");
    if (!f) {
        fprintf(s->err, "%s: cannot write: %s\n", out, strerror(errno));
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 16);
    return f;
}

/* Load the file into the daemon, open the outputs and replay the trace. 0 or 1. */
static int simulate(sim *s, int *loaded)
{
    int twice;
    off_t start;
    if (trace_open(s, &twice, &start) != 0)
        return 1;
    if (twice) {
        if (trace_check_pass(s) != 0)
            return 1;
        if (lseek(s->tr.fd, start, SEEK_SET) < 0) {
            fprintf(s->err, "%s: cannot read: %s\n", s->tr.name, strerror(errno));
            return 1;
        }
        trace_reset(&s->tr);
    }
    if (trace_header(&s->tr) != 0)
        return 1;
    s->out = open_out(s);
    if (!s->out)
        return 1;
    config_errors errs;
    config_errors_init(&errs);
    s->loading = 1;
    int lrc = daemon_load(s->d, s->o->file, &errs);
    s->loading = 0;
    *loaded = 1;
    if (lrc != 0)
        config_errors_print(&errs, s->err);
    config_errors_free(&errs);
    if (lrc != 0)
        return 1;

    fputs("time_s,scaler,desired,reason\n", s->out);
    int rc = replay(s) == 0 ? 0 : 1;
    if (s->failed) {
        fprintf(s->err, "scalebus: out of memory during the simulation\n");
        rc = 1;
    }
    int bad = ferror(s->out);
    if (s->out != stdout ? fclose(s->out) != 0 : fflush(s->out) != 0)
        bad = 1;
    s->out = NULL;
    if (bad) {
        fprintf(s->err, "%s: write failed\n",
                s->o->out && strcmp(s->o->out, "-") != 0 ? s->o->out : "stdout");
        rc = 1;
    }
    if (rc == 0 && s->o->svg && write_chart(s, s->o->svg) != 0)
        rc = 1;
    return rc;
}

int simulate_run(const simulate_options *o, FILE *err)
{
    int out_stdout = !o->out || strcmp(o->out, "-") == 0;
    if (o->svg && strcmp(o->svg, "-") == 0 && out_stdout) {
        fprintf(err, "scalebus: --svg - and the decisions cannot both go to standard output\n");
        return 1;
    }
    sim s = {.o = o, .err = err, .startup_ns = o->startup_ms * 1000000u};
    s.tr.fd = -1;
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
    if (!s.d)
        fprintf(err, "scalebus: out of memory\n");
    else if (sim_config(&s) == 0)
        rc = simulate(&s, &loaded);
    if (s.out && s.out != stdout)
        fclose(s.out);
    if (s.tr.fd > STDIN_FILENO)
        close(s.tr.fd);
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
