/*
 * admin.c - the admin HTTP endpoint (see admin.h and docs/admin.md).
 *
 * Every request is answered at once on the loop thread, from what the daemon keeps
 * (daemon_foreach_view, daemon_get_admin_stats) or by one daemon call (pause, override, push):
 * nothing here waits, so no exchange outlives its callback. Bodies are buffered by sb_httpd
 * (at most ADMIN_MAX_BODY bytes: 413 beyond).
 */
#define _GNU_SOURCE
#include "admin.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cjson/cJSON.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "bus.h"
#include "dashboard/dashboard.h"
#include "httpd.h"

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif

#define ADMIN_MAX_BODY (1024u * 1024u)
#define ADMIN_MAX_BATCH 1000
#define ADMIN_LABEL_KEY_MAX 128
#define ADMIN_LABEL_VALUE_MAX 1024

struct admin {
    uv_loop_t *loop;
    sb_daemon *d;
    const sb_logger *logger;
    sb_httpd *srv;       /* serving now, or NULL */
    char *listen;        /* its address as the file gave it */
    char *token;         /* NULL: no auth */
    /* Prepared by admin_prepare, installed by admin_commit. */
    int prepared;
    sb_httpd *next_srv;  /* a newly bound server, or NULL (keep srv, or none when off) */
    int next_off;
    char *next_listen, *next_token;
};

#define alog(a, level, ...) log_write((a)->logger, level, "admin", __VA_ARGS__)

/* ---- routing ----------------------------------------------------------------------------- */

static int id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

/* "/PREFIX/ID/ACTION": copies ID and returns ACTION, or NULL. */
static const char *split_id(const char *path, const char *prefix, char *id)
{
    size_t plen = strlen(prefix);
    if (strncmp(path, prefix, plen) != 0)
        return NULL;
    const char *p = path + plen;
    size_t n = 0;
    while (id_char(p[n]) && n < ADMIN_ID_MAX)
        n++;
    if (n == 0 || p[n] != '/')
        return NULL;
    memcpy(id, p, n);
    id[n] = '\0';
    return p + n + 1;
}

void admin_route_of(const char *method, const char *path, admin_route *out)
{
    memset(out, 0, sizeof *out);
    int get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int post = strcmp(method, "POST") == 0;
    static const struct {
        const char *path;
        admin_route_kind kind;
    } gets[] = {{"/healthz", ADMIN_HEALTHZ},
                {"/readyz", ADMIN_READYZ},
                {"/metrics", ADMIN_METRICS},
                {"/pipelines", ADMIN_PIPELINES}};
    for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
        if (strcmp(path, gets[i].path) == 0) {
            out->kind = get ? gets[i].kind : ADMIN_BAD_METHOD;
            out->allow = "GET, HEAD";
            return;
        }
    }
    const char *action;
    admin_route_kind kind = ADMIN_NOT_FOUND;
    if ((action = split_id(path, "/scalers/", out->id)) != NULL) {
        if (strcmp(action, "pause") == 0)
            kind = ADMIN_PAUSE;
        else if (strcmp(action, "resume") == 0)
            kind = ADMIN_RESUME;
        else if (strcmp(action, "scale") == 0)
            kind = ADMIN_SCALE;
    } else if ((action = split_id(path, "/triggers/", out->id)) != NULL) {
        if (strcmp(action, "readings") == 0)
            kind = ADMIN_READINGS;
    }
    if (kind == ADMIN_NOT_FOUND) {
        out->id[0] = '\0';
        return;
    }
    out->kind = post ? kind : ADMIN_BAD_METHOD;
    out->allow = "POST";
}

int admin_token_matches(const char *authorization, const char *token)
{
    if (!authorization || !token || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 0;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    size_t glen = strlen(given), tlen = strlen(token);
    /* Every byte of the token is compared whatever the given one holds: the time says nothing
     * about how much of it matched. */
    unsigned char diff = glen != tlen;
    for (size_t i = 0; i < tlen; i++)
        diff |= (unsigned char)token[i] ^ (unsigned char)(i < glen ? given[i] : 0);
    return diff == 0;
}

/* ---- /metrics ------------------------------------------------------------------------------ */

/* A label value in the exposition format: backslash, quote and newline escaped. */
static void put_label_value(textbuf *t, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            textbuf_puts(t, "\\\\");
        else if (*s == '"')
            textbuf_puts(t, "\\\"");
        else if (*s == '\n')
            textbuf_puts(t, "\\n");
        else
            textbuf_putn(t, s, 1);
    }
}

static void put_family(textbuf *t, const char *name, const char *type, const char *help)
{
    textbuf_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* NAME{KIND="ID",type="TYPE"[,EXTRA="VALUE"]} */
static void put_sample_start(textbuf *t, const char *name, const char *kind, const daemon_view *v,
                             const char *extra, const char *extra_value)
{
    textbuf_printf(t, "%s{%s=\"", name, kind);
    put_label_value(t, v->id);
    textbuf_puts(t, "\",type=\"");
    put_label_value(t, v->type);
    textbuf_puts(t, "\"");
    if (extra) {
        textbuf_printf(t, ",%s=\"", extra);
        put_label_value(t, extra_value);
        textbuf_puts(t, "\"");
    }
    textbuf_puts(t, "} ");
}

static void put_number(textbuf *t, double v)
{
    if (isnan(v))
        textbuf_puts(t, "NaN\n");
    else if (isinf(v))
        textbuf_puts(t, v > 0 ? "+Inf\n" : "-Inf\n");
    else if (v == floor(v) && fabs(v) < 1e15)
        textbuf_printf(t, "%.0f\n", v + 0.0);
    else
        textbuf_printf(t, "%.9g\n", v);
}

/* NAME_bucket{...,le="B"} (cumulative), NAME_sum, NAME_count, for each component of the kind that
 * reported one. */
static void put_histograms(textbuf *t, const daemon_view *views, size_t n, sb_kind kind,
                           const char *name, const char *help)
{
    char bucket[96], sum[96], count[96], le[32];
    snprintf(bucket, sizeof bucket, "%s_bucket", name);
    snprintf(sum, sizeof sum, "%s_sum", name);
    snprintf(count, sizeof count, "%s_count", name);
    const char *label = kind == SB_KIND_TRIGGER ? "trigger" : "scaler";
    put_family(t, name, "histogram", help);
    for (size_t i = 0; i < n; i++) {
        const daemon_histogram *h =
            kind == SB_KIND_TRIGGER ? views[i].read_latency : views[i].action_latency;
        if (views[i].kind != kind || !h)
            continue;
        uint64_t cum = 0;
        for (size_t b = 0; b < DAEMON_HIST_BUCKETS; b++) {
            cum += h->bucket[b];
            snprintf(le, sizeof le, "%g", daemon_hist_bounds[b]);
            put_sample_start(t, bucket, label, &views[i], "le", le);
            textbuf_printf(t, "%llu\n", (unsigned long long)cum);
        }
        put_sample_start(t, bucket, label, &views[i], "le", "+Inf");
        textbuf_printf(t, "%llu\n", (unsigned long long)h->count);
        put_sample_start(t, sum, label, &views[i], NULL, NULL);
        put_number(t, h->sum);
        put_sample_start(t, count, label, &views[i], NULL, NULL);
        textbuf_printf(t, "%llu\n", (unsigned long long)h->count);
    }
}

void admin_render_metrics(textbuf *t, const daemon_view *views, size_t n, const daemon_stats *counters,
                          const daemon_admin_stats *as, const char *version)
{
    put_family(t, "scalebus_build_info", "gauge", "The running scalebus's version (always 1).");
    textbuf_puts(t, "scalebus_build_info{version=\"");
    put_label_value(t, version);
    textbuf_puts(t, "\"} 1\n");
    put_family(t, "scalebus_ready", "gauge",
               "1 when a file is loaded and every component has started.");
    textbuf_printf(t, "scalebus_ready %d\n", as->ready ? 1 : 0);
    put_family(t, "scalebus_components", "gauge", "Components in the running pipelines.");
    textbuf_printf(t, "scalebus_components %zu\n", as->components);
    put_family(t, "scalebus_reloads_total", "counter", "Reloads of the pipeline file by result.");
    textbuf_printf(t, "scalebus_reloads_total{result=\"ok\"} %llu\n",
                   (unsigned long long)as->reloads_ok);
    textbuf_printf(t, "scalebus_reloads_total{result=\"refused\"} %llu\n",
                   (unsigned long long)as->reloads_refused);

    static const struct {
        const char *name, *help;
        size_t offset;
    } bus_counters[] = {
        {"scalebus_bus_events_published_total", "Events the bus accepted.",
         offsetof(daemon_stats, published)},
        {"scalebus_bus_events_delivered_total", "Events the bus delivered to subscribers.",
         offsetof(daemon_stats, delivered)},
        {"scalebus_bus_events_coalesced_total",
         "Events replaced by a newer one before delivery.", offsetof(daemon_stats, coalesced)},
        {"scalebus_bus_events_dropped_total", "Events refused because a ring was full.",
         offsetof(daemon_stats, dropped)},
    };
    for (size_t i = 0; i < sizeof bus_counters / sizeof bus_counters[0]; i++) {
        put_family(t, bus_counters[i].name, "counter", bus_counters[i].help);
        uint64_t v;
        memcpy(&v, (const char *)counters + bus_counters[i].offset, sizeof v);
        textbuf_printf(t, "%s %llu\n", bus_counters[i].name, (unsigned long long)v);
    }

    /* One family at a time, as the format wants each family's samples together. */
    put_family(t, "scalebus_trigger_readings_total", "counter",
               "Readings a trigger published (delivered by the bus).");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_TRIGGER)
            continue;
        put_sample_start(t, "scalebus_trigger_readings_total", "trigger", &views[i], NULL, NULL);
        textbuf_printf(t, "%llu\n", (unsigned long long)views[i].readings);
    }
    put_family(t, "scalebus_trigger_errors_total", "counter", "Failed reads of a trigger.");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_TRIGGER)
            continue;
        put_sample_start(t, "scalebus_trigger_errors_total", "trigger", &views[i], NULL, NULL);
        textbuf_printf(t, "%llu\n", (unsigned long long)views[i].errors);
    }
    put_family(t, "scalebus_connector_decisions_total", "counter",
               "A connector's decisions by direction against its previous one.");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_CONNECTOR)
            continue;
        const char *dirs[] = {"up", "down", "hold"};
        uint64_t counts[] = {views[i].decisions_up, views[i].decisions_down,
                             views[i].decisions_hold};
        for (size_t k = 0; k < 3; k++) {
            put_sample_start(t, "scalebus_connector_decisions_total", "connector", &views[i],
                             "direction", dirs[k]);
            textbuf_printf(t, "%llu\n", (unsigned long long)counts[k]);
        }
    }
    put_family(t, "scalebus_scaler_desired", "gauge",
               "The count a scaler was last told (after its bounds).");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_SCALER || isnan(views[i].desired))
            continue;
        put_sample_start(t, "scalebus_scaler_desired", "scaler", &views[i], NULL, NULL);
        put_number(t, views[i].desired);
    }
    put_family(t, "scalebus_scaler_running", "gauge",
               "The running count a scaler last published.");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_SCALER || isnan(views[i].running_count))
            continue;
        put_sample_start(t, "scalebus_scaler_running", "scaler", &views[i], NULL, NULL);
        put_number(t, views[i].running_count);
    }
    put_family(t, "scalebus_scaler_paused", "gauge", "1 while a scaler is paused.");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_SCALER)
            continue;
        put_sample_start(t, "scalebus_scaler_paused", "scaler", &views[i], NULL, NULL);
        textbuf_printf(t, "%d\n", views[i].paused ? 1 : 0);
    }
    put_family(t, "scalebus_scaler_actions_total", "counter", "A scaler's actions by result.");
    for (size_t i = 0; i < n; i++) {
        if (views[i].kind != SB_KIND_SCALER)
            continue;
        const char *results[] = {"done", "busy", "failed"};
        uint64_t counts[] = {views[i].actions_done, views[i].actions_busy,
                             views[i].actions_failed};
        for (size_t k = 0; k < 3; k++) {
            put_sample_start(t, "scalebus_scaler_actions_total", "scaler", &views[i], "result",
                             results[k]);
            textbuf_printf(t, "%llu\n", (unsigned long long)counts[k]);
        }
    }
    put_histograms(t, views, n, SB_KIND_TRIGGER, "scalebus_trigger_read_duration_seconds",
                   "How long a trigger's reads took.");
    put_histograms(t, views, n, SB_KIND_SCALER, "scalebus_scaler_action_duration_seconds",
                   "How long a scaler's actions took.");
}

/* ---- /pipelines ---------------------------------------------------------------------------- */

/* /pipelines is written straight into one buffer: 10,000 pipelines are 8 MB of JSON, which as a
 * cJSON tree first cost ten times that. */

static void put_json_string(textbuf *t, const char *s)
{
    textbuf_putn(t, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            textbuf_putn(t, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            textbuf_printf(t, "\\u%04x", c);
        } else {
            textbuf_putn(t, s, 1);
        }
    }
    textbuf_putn(t, "\"", 1);
}

/* ,"key": */
static void put_key(textbuf *t, const char *key)
{
    textbuf_printf(t, ",\"%s\":", key);
}

/* RFC 3339 UTC with microseconds (a push's reaction is well under a millisecond), or null for 0
 * ("never"). */
static void put_time(textbuf *t, const char *key, int64_t ns)
{
    put_key(t, key);
    if (ns <= 0) {
        textbuf_puts(t, "null");
        return;
    }
    time_t secs = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    textbuf_printf(t, "\"%04d-%02d-%02dT%02d:%02d:%02d.%06dZ\"", tm.tm_year + 1900, tm.tm_mon + 1,
                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)((ns / 1000) % 1000000));
}

static void put_json_number(textbuf *t, const char *key, double v)
{
    put_key(t, key);
    if (!isfinite(v))
        textbuf_puts(t, "null");
    else if (v == floor(v) && fabs(v) < 1e15)
        textbuf_printf(t, "%.0f", v + 0.0);
    else
        textbuf_printf(t, "%.17g", v);
}

static void put_json_count(textbuf *t, const char *key, uint64_t v)
{
    put_key(t, key);
    textbuf_printf(t, "%llu", (unsigned long long)v);
}

static void put_json_text(textbuf *t, const char *key, const char *s)
{
    put_key(t, key);
    if (s && *s)
        put_json_string(t, s);
    else
        textbuf_puts(t, "null");
}

static void put_json_bool(textbuf *t, const char *key, int v)
{
    put_key(t, key);
    textbuf_puts(t, v ? "true" : "false");
}

static const char *kind_name(sb_kind k)
{
    return k == SB_KIND_TRIGGER ? "trigger" : k == SB_KIND_CONNECTOR ? "connector" : "scaler";
}

typedef struct json_list {
    textbuf *t;
    size_t n;
} json_list;

static void view_to_json(void *arg, const daemon_view *v)
{
    json_list *l = arg;
    textbuf *t = l->t;
    textbuf_puts(t, l->n++ ? ",{\"id\":" : "{\"id\":");
    put_json_string(t, v->id);
    put_json_text(t, "kind", kind_name(v->kind));
    put_json_text(t, "type", v->type);
    put_json_bool(t, "running", v->running);
    if (v->kind == SB_KIND_TRIGGER) {
        put_json_count(t, "readings", v->readings);
        put_json_count(t, "errors", v->errors);
        put_json_number(t, "last_value", v->last_value);
        put_time(t, "last_value_at", v->last_value_ns);
    } else if (v->kind == SB_KIND_CONNECTOR) {
        textbuf_printf(t, ",\"decisions\":{\"up\":%llu,\"down\":%llu,\"hold\":%llu}",
                       (unsigned long long)v->decisions_up, (unsigned long long)v->decisions_down,
                       (unsigned long long)v->decisions_hold);
        put_json_number(t, "last_decision", v->last_value);
        put_json_text(t, "last_reason", v->last_reason);
        put_time(t, "last_decision_at", v->last_value_ns);
    } else {
        put_json_number(t, "min", (double)v->min);
        put_json_number(t, "max", (double)v->max);
        put_json_number(t, "desired", v->desired);
        put_time(t, "desired_at", v->last_desired_ns);
        put_json_number(t, "running_count", v->running_count);
        put_json_bool(t, "paused", v->paused);
        put_key(t, "override");
        if (!isnan(v->override_desired)) {
            textbuf_puts(t, "{\"desired\":");
            textbuf_printf(t, "%.0f", v->override_desired + 0.0);
            put_time(t, "until", v->override_until_ns);
            textbuf_puts(t, "}");
        } else {
            textbuf_puts(t, "null");
        }
        textbuf_printf(t, ",\"actions\":{\"done\":%llu,\"busy\":%llu,\"failed\":%llu}",
                       (unsigned long long)v->actions_done, (unsigned long long)v->actions_busy,
                       (unsigned long long)v->actions_failed);
        put_json_text(t, "last_action", v->last_action);
        put_time(t, "last_action_at", v->last_action_ns);
    }
    put_json_text(t, "last_error", v->last_error);
    put_time(t, "last_error_at", v->last_error_ns);
    textbuf_puts(t, "}");
}

static void edge_to_json(void *arg, const char *from, const char *to)
{
    json_list *l = arg;
    textbuf_puts(l->t, l->n++ ? ",{\"from\":" : "{\"from\":");
    put_json_string(l->t, from);
    put_json_text(l->t, "to", to);
    textbuf_puts(l->t, "}");
}

void admin_render_pipelines(textbuf *t, sb_daemon *d)
{
    daemon_admin_stats as;
    daemon_get_admin_stats(d, &as);
    textbuf_printf(t, "{\"ready\":%s,\"components\":[", as.ready ? "true" : "false");
    json_list l = {t, 0};
    daemon_foreach_view(d, view_to_json, &l);
    textbuf_puts(t, "],\"edges\":[");
    l.n = 0;
    daemon_foreach_edge(d, edge_to_json, &l);
    textbuf_puts(t, "]}");
}

/* ---- answering ------------------------------------------------------------------------------ */

static void respond_json(sb_httpd_exchange *ex, int status, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        sb_httpd_respond_text(ex, 500, "out of memory");
        return;
    }
    sb_httpd_header h = {"Content-Type", "application/json"};
    sb_httpd_respond(ex, status, &h, 1, text, strlen(text));
    free(text);
}

typedef struct views_buf {
    daemon_view *v;
    size_t n, cap;
    int oom;
} views_buf;

static void collect_view(void *arg, const daemon_view *v)
{
    views_buf *b = arg;
    if (b->oom)
        return;
    if (b->n == b->cap) {
        size_t ncap = b->cap ? b->cap * 2 : 64;
        daemon_view *nv = realloc(b->v, ncap * sizeof *nv);
        if (!nv) {
            b->oom = 1;
            return;
        }
        b->v = nv;
        b->cap = ncap;
    }
    b->v[b->n++] = *v; /* strings stay valid: nothing runs until the rendering is done */
}

/* A large response's buffer lay in the heap among what stays: hand its pages back. */
static void release_heap(size_t len)
{
#ifdef __GLIBC__
    if (len >= 1024 * 1024)
        malloc_trim(0);
#else
    (void)len;
#endif
}

static void serve_metrics(admin *a, sb_httpd_exchange *ex)
{
    views_buf b = {0};
    daemon_foreach_view(a->d, collect_view, &b);
    daemon_stats bs;
    daemon_get_stats(a->d, &bs);
    daemon_admin_stats as;
    daemon_get_admin_stats(a->d, &as);
    textbuf t = {0};
    if (!b.oom)
        admin_render_metrics(&t, b.v, b.n, &bs, &as, SB_VERSION);
    free(b.v);
    if (b.oom || t.oom) {
        textbuf_free(&t);
        sb_httpd_respond_text(ex, 500, "out of memory");
        return;
    }
    sb_httpd_header h = {"Content-Type", "text/plain; version=0.0.4; charset=utf-8"};
    sb_httpd_respond(ex, 200, &h, 1, t.p, t.len);
    size_t len = t.len;
    textbuf_free(&t);
    release_heap(len);
}

static void serve_pipelines(admin *a, sb_httpd_exchange *ex)
{
    textbuf t = {0};
    admin_render_pipelines(&t, a->d);
    if (t.oom) {
        textbuf_free(&t);
        sb_httpd_respond_text(ex, 500, "out of memory");
        return;
    }
    sb_httpd_header h = {"Content-Type", "application/json"};
    sb_httpd_respond(ex, 200, &h, 1, t.p, t.len);
    size_t len = t.len;
    textbuf_free(&t);
    release_heap(len);
}

/* Content-Type application/json (parameters allowed). */
static int is_json(const sb_httpd_request *req)
{
    const char *ct = sb_httpd_header_get(req, "Content-Type");
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* The body as JSON, or NULL once the response (415, 400) has gone out. */
static cJSON *json_body(sb_httpd_exchange *ex, const sb_httpd_request *req, const char *body,
                        size_t len)
{
    if (!is_json(req)) {
        sb_httpd_respond_text(ex, 415, "the body must be JSON (Content-Type: application/json)");
        return NULL;
    }
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!doc) {
        char msg[96];
        size_t at = end && end >= body && end <= body + len ? (size_t)(end - body) : 0;
        snprintf(msg, sizeof msg, "bad JSON: cannot parse the body (near byte %zu)", at);
        sb_httpd_respond_text(ex, 400, msg);
        return NULL;
    }
    return doc;
}

static void control_done(admin *a, sb_httpd_exchange *ex, const char *id, int rc,
                         const char *what)
{
    if (rc == -ENOENT) {
        char msg[ADMIN_ID_MAX + 40];
        snprintf(msg, sizeof msg, "no running scaler '%s'", id);
        sb_httpd_respond_text(ex, 404, msg);
        return;
    }
    if (rc != 0) {
        sb_httpd_respond_text(ex, 500, "out of memory");
        return;
    }
    alog(a, SB_LOG_INFO, "scaler '%s': %s", id, what);
    cJSON *doc = cJSON_CreateObject();
    if (doc) {
        cJSON_AddStringToObject(doc, "scaler", id);
        cJSON_AddStringToObject(doc, "done", what);
    }
    respond_json(ex, 200, doc);
}

static void serve_scale(admin *a, sb_httpd_exchange *ex, const sb_httpd_request *req,
                        const char *id, const char *body, size_t len)
{
    cJSON *doc = json_body(ex, req, body, len);
    if (!doc)
        return;
    const cJSON *desired = cJSON_GetObjectItemCaseSensitive(doc, "desired");
    const cJSON *hold = cJSON_GetObjectItemCaseSensitive(doc, "hold");
    uint64_t hold_ms = 0;
    const char *bad = NULL;
    if (!cJSON_IsObject(doc))
        bad = "the body must be an object like {\"desired\": 3, \"hold\": \"10m\"}";
    else if (!cJSON_IsNumber(desired) || !isfinite(desired->valuedouble))
        bad = "\"desired\" must be a number";
    else if (hold && cJSON_IsString(hold)) {
        if (config_parse_duration(hold->valuestring, &hold_ms) != 0)
            bad = "\"hold\" must be a duration like \"90s\", \"10m\" or \"1h\"";
    } else if (hold && cJSON_IsNumber(hold)) {
        if (!(hold->valuedouble >= 0 && hold->valuedouble <= 36500.0 * 86400))
            bad = "\"hold\" in seconds must be between 0 and 100 years";
        else
            hold_ms = (uint64_t)(hold->valuedouble * 1000);
    } else if (hold && !cJSON_IsNull(hold)) {
        bad = "\"hold\" must be a duration like \"10m\" (or seconds)";
    }
    for (const cJSON *f = cJSON_IsObject(doc) ? doc->child : NULL; f && !bad; f = f->next)
        if (strcmp(f->string, "desired") != 0 && strcmp(f->string, "hold") != 0)
            bad = "unknown field (expected desired and hold)";
    if (bad) {
        cJSON_Delete(doc);
        sb_httpd_respond_text(ex, 400, bad);
        return;
    }
    double applied = NAN;
    int rc = daemon_scaler_override(a->d, id, desired->valuedouble, hold_ms, &applied);
    cJSON_Delete(doc);
    char what[96];
    snprintf(what, sizeof what, "override %.0f held %llums", applied,
             (unsigned long long)hold_ms);
    if (rc != 0) {
        control_done(a, ex, id, rc, what);
        return;
    }
    alog(a, SB_LOG_INFO, "scaler '%s': %s", id, what);
    cJSON *out = cJSON_CreateObject();
    if (out) {
        cJSON_AddStringToObject(out, "scaler", id);
        cJSON_AddNumberToObject(out, "desired", applied);
        cJSON_AddNumberToObject(out, "hold_ms", (double)hold_ms);
    }
    respond_json(ex, 200, out);
}

/* One reading's problem, or NULL; fills labels (pointing into the document). */
static const char *check_reading(const cJSON *r, sb_label *labels, size_t *nlabels)
{
    if (!cJSON_IsObject(r))
        return "a reading must be an object like {\"value\": 12, \"labels\": {...}}";
    const cJSON *value = NULL, *lab = NULL;
    for (const cJSON *f = r->child; f; f = f->next) {
        if (strcmp(f->string, "value") == 0)
            value = f;
        else if (strcmp(f->string, "labels") == 0)
            lab = f;
        else
            return "unknown field in a reading (expected value and labels)";
    }
    if (!cJSON_IsNumber(value) || !isfinite(value->valuedouble))
        return "\"value\" must be a finite number";
    *nlabels = 0;
    if (lab && !cJSON_IsNull(lab)) {
        if (!cJSON_IsObject(lab))
            return "\"labels\" must be an object of strings";
        for (const cJSON *l = lab->child; l; l = l->next) {
            if (*nlabels == SB_MAX_LABELS)
                return "too many labels (at most 14)";
            if (!cJSON_IsString(l))
                return "label values must be strings";
            size_t kl = strlen(l->string), vl = strlen(l->valuestring);
            if (kl == 0 || kl > ADMIN_LABEL_KEY_MAX || vl > ADMIN_LABEL_VALUE_MAX)
                return "a label name must be 1 to 128 bytes, a value at most 1024";
            for (const char *p = l->string; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    return "label names must not hold control characters";
            for (const char *p = l->valuestring; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == 0x7f)
                    return "label values must not hold control characters";
            labels[*nlabels] = (sb_label){l->string, l->valuestring};
            ++*nlabels;
        }
    }
    return NULL;
}

static void serve_readings(admin *a, sb_httpd_exchange *ex, const sb_httpd_request *req,
                           const char *id, const char *body, size_t len)
{
    cJSON *doc = json_body(ex, req, body, len);
    if (!doc)
        return;
    int batch = cJSON_IsArray(doc);
    int n = batch ? cJSON_GetArraySize(doc) : 1;
    char msg[ADMIN_ID_MAX + 160];
    const char *bad = NULL;
    sb_label labels[SB_MAX_LABELS];
    size_t nlabels;
    if (batch && (n < 1 || n > ADMIN_MAX_BATCH))
        bad = "a batch holds 1 to 1000 readings";
    /* Every reading is checked before any is published: a batch goes through whole or not. */
    int i = 0;
    for (const cJSON *r = batch ? doc->child : doc; r && !bad; r = batch ? r->next : NULL, i++) {
        const char *why = check_reading(r, labels, &nlabels);
        if (why) {
            if (batch)
                snprintf(msg, sizeof msg, "reading %d: %s", i, why);
            else
                snprintf(msg, sizeof msg, "%s", why);
            bad = msg;
        }
    }
    if (bad) {
        cJSON_Delete(doc);
        sb_httpd_respond_text(ex, 400, bad);
        return;
    }
    int published = 0, rc = 0;
    for (const cJSON *r = batch ? doc->child : doc; r; r = batch ? r->next : NULL) {
        check_reading(r, labels, &nlabels);
        rc = daemon_push_reading(a->d, id, cJSON_GetObjectItemCaseSensitive(r, "value")->valuedouble,
                                 labels, nlabels);
        if (rc != 0)
            break;
        published++;
    }
    cJSON_Delete(doc);
    if (rc == -ENOENT || rc == -EPERM) {
        snprintf(msg, sizeof msg, rc == -ENOENT ? "no running trigger '%s'"
                                                : "'%s' is not a push trigger",
                 id);
        sb_httpd_respond_text(ex, rc == -ENOENT ? 404 : 409, msg);
        return;
    }
    if (rc != 0) {
        snprintf(msg, sizeof msg, "published %d of %d: the bus refused the rest (%s)", published,
                 n, strerror(-rc));
        sb_httpd_respond_text(ex, 503, msg);
        return;
    }
    cJSON *out = cJSON_CreateObject();
    if (out)
        cJSON_AddNumberToObject(out, "published", published);
    respond_json(ex, 200, out);
}

/* ---- the dashboard (core/dashboard) -------------------------------------------------------- */

static void serve_dashboard_asset(sb_httpd_exchange *ex, const dashboard_asset *asset)
{
    sb_httpd_header h[] = {{"Content-Type", asset->content_type},
                           {"Content-Security-Policy", DASHBOARD_CSP},
                           {"X-Content-Type-Options", "nosniff"},
                           {"Referrer-Policy", "no-referrer"},
                           {"Cache-Control", "no-cache"}};
    sb_httpd_respond(ex, 200, h, sizeof h / sizeof h[0], (const char *)asset->data, asset->len);
}

static void serve_history(admin *a, sb_httpd_exchange *ex, const char *id)
{
    int found = 0;
    const history *hist = daemon_scaler_history(a->d, id, &found);
    if (!found) {
        char msg[DASHBOARD_ID_MAX + 40];
        snprintf(msg, sizeof msg, "no running scaler '%s'", id);
        sb_httpd_respond_text(ex, 404, msg);
        return;
    }
    textbuf t = {0};
    history_render_json(&t, id, hist, bus_now_wall_ns());
    if (t.oom) {
        textbuf_free(&t);
        sb_httpd_respond_text(ex, 500, "out of memory");
        return;
    }
    sb_httpd_header h[] = {{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}};
    sb_httpd_respond(ex, 200, h, 2, t.p, t.len);
    textbuf_free(&t);
}

/* The dashboard's paths (answered here, in on_head: none takes a body). Returns 1 when answered.
 * The page and its files hold no data: they need no token, so a browser can load them and then
 * ask its user for the token the data wants. */
static int answer_dashboard(admin *a, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    dashboard_route dr;
    dashboard_route_of(req->method, req->path, &dr);
    if (dr.kind == DASHBOARD_NONE)
        return 0;
    if (dr.kind == DASHBOARD_ASSET) {
        serve_dashboard_asset(ex, dr.asset);
        return 1;
    }
    if (a->token &&
        !admin_token_matches(sb_httpd_header_get(req, "Authorization"), a->token)) {
        sb_httpd_header h = {"WWW-Authenticate", "Bearer realm=\"scalebus\""};
        const char *text = "a valid bearer token is required (Authorization: Bearer TOKEN)\n";
        sb_httpd_respond(ex, 401, &h, 1, text, strlen(text));
        return 1;
    }
    if (dr.kind == DASHBOARD_BAD_METHOD) {
        sb_httpd_header h = {"Allow", "GET, HEAD"};
        const char *text = "method not allowed\n";
        sb_httpd_respond(ex, 405, &h, 1, text, strlen(text));
        return 1;
    }
    serve_history(a, ex, dr.id);
    return 1;
}

static void serve_readyz(admin *a, sb_httpd_exchange *ex)
{
    daemon_admin_stats as;
    daemon_get_admin_stats(a->d, &as);
    char msg[96];
    if (as.ready) {
        snprintf(msg, sizeof msg, "ready: %zu component(s) started", as.components);
        sb_httpd_respond_text(ex, 200, msg);
    } else {
        snprintf(msg, sizeof msg, "not ready: %zu of %zu component(s) started", as.started,
                 as.components);
        sb_httpd_respond_text(ex, 503, msg);
    }
}

/* Auth and routing; answers what needs no body. Returns 1 when answered. */
static int answer_early(admin *a, sb_httpd_exchange *ex, const sb_httpd_request *req,
                        admin_route *route)
{
    admin_route_of(req->method, req->path, route);
    if (route->kind == ADMIN_HEALTHZ) {
        sb_httpd_respond_text(ex, 200, "ok");
        return 1;
    }
    if (route->kind == ADMIN_NOT_FOUND && answer_dashboard(a, ex, req))
        return 1;
    if (a->token &&
        !admin_token_matches(sb_httpd_header_get(req, "Authorization"), a->token)) {
        sb_httpd_header h = {"WWW-Authenticate", "Bearer realm=\"scalebus\""};
        const char *text = "a valid bearer token is required (Authorization: Bearer TOKEN)\n";
        sb_httpd_respond(ex, 401, &h, 1, text, strlen(text));
        return 1;
    }
    if (route->kind == ADMIN_NOT_FOUND) {
        sb_httpd_respond_text(ex, 404, "no such endpoint (see docs/admin.md)");
        return 1;
    }
    if (route->kind == ADMIN_BAD_METHOD) {
        sb_httpd_header h = {"Allow", route->allow};
        const char *text = "method not allowed\n";
        sb_httpd_respond(ex, 405, &h, 1, text, strlen(text));
        return 1;
    }
    return 0;
}

static sb_httpd_body_mode on_head(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    admin_route route;
    answer_early(arg, ex, req, &route);
    return SB_HTTPD_BUFFER;
}

static void on_request(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req,
                       const char *body, size_t body_len)
{
    admin *a = arg;
    admin_route route;
    /* on_head answered what needed no body; those exchanges never reach here. */
    admin_route_of(req->method, req->path, &route);
    int rc;
    switch (route.kind) {
    case ADMIN_READYZ:
        serve_readyz(a, ex);
        break;
    case ADMIN_METRICS:
        serve_metrics(a, ex);
        break;
    case ADMIN_PIPELINES:
        serve_pipelines(a, ex);
        break;
    case ADMIN_PAUSE:
    case ADMIN_RESUME:
        rc = daemon_scaler_pause(a->d, route.id, route.kind == ADMIN_PAUSE);
        control_done(a, ex, route.id, rc, route.kind == ADMIN_PAUSE ? "paused" : "resumed");
        break;
    case ADMIN_SCALE:
        serve_scale(a, ex, req, route.id, body, body_len);
        break;
    case ADMIN_READINGS:
        serve_readings(a, ex, req, route.id, body, body_len);
        break;
    default:
        sb_httpd_respond_text(ex, 404, "no such endpoint (see docs/admin.md)");
        break;
    }
}

static void on_abort(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    (void)ex; /* every exchange is answered within its callback: nothing is held */
}

static void on_log(void *arg, sb_log_level level, const char *line)
{
    admin *a = arg;
    alog(a, level, "%s", line);
}

static const sb_httpd_callbacks admin_callbacks = {
    .on_head = on_head,
    .on_request = on_request,
    .on_abort = on_abort,
    .log = on_log,
};

/* ---- settings across loads ----------------------------------------------------------------- */

admin *admin_new(uv_loop_t *loop, sb_daemon *d, const sb_logger *logger)
{
    admin *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->loop = loop;
    a->d = d;
    a->logger = logger;
    return a;
}

static void free_secret(char *s)
{
    if (!s)
        return;
    /* A token does not linger in freed memory. */
    volatile char *p = s;
    while (*p)
        *p++ = 0;
    free(s);
}

static void drop_prepared(admin *a)
{
    if (a->next_srv)
        sb_httpd_close(a->next_srv, NULL, NULL);
    a->next_srv = NULL;
    free(a->next_listen);
    free_secret(a->next_token);
    a->next_listen = a->next_token = NULL;
    a->prepared = 0;
}

int admin_prepare(admin *a, const config_admin *cfg, char *err, size_t errlen)
{
    drop_prepared(a);
    a->prepared = 1;
    a->next_off = cfg->off;
    if (cfg->token && !(a->next_token = strdup(cfg->token))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->off)
        return 0;
    if (!(a->next_listen = strdup(cfg->listen))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (a->srv && a->listen && strcmp(a->listen, cfg->listen) == 0)
        return 0; /* the same address: the server carries on */
    sb_httpd_config hc;
    sb_httpd_config_defaults(&hc);
    hc.max_body = ADMIN_MAX_BODY;
    hc.max_connections = 256;
    char why[256];
    a->next_srv = sb_httpd_new(a->loop, cfg->listen, &hc, &admin_callbacks, a, why, sizeof why);
    if (!a->next_srv) {
        snprintf(err, errlen, "%s", why);
        free(a->next_listen);
        a->next_listen = NULL;
        a->next_off = 1; /* a default address that is taken: serve nothing */
        return -1;
    }
    return 0;
}

int admin_commit(admin *a)
{
    if (!a->prepared)
        return a->srv != NULL;
    if (a->next_off || a->next_srv) {
        if (a->srv) {
            sb_httpd_close(a->srv, NULL, NULL);
            alog(a, SB_LOG_INFO, "no longer listening on %s", a->listen);
        }
        a->srv = a->next_srv;
        free(a->listen);
        a->listen = a->srv ? a->next_listen : NULL;
        if (!a->srv)
            free(a->next_listen);
        if (a->srv)
            alog(a, SB_LOG_INFO, "listening on http://%s (%s)", a->listen,
                 a->next_token ? "a bearer token is required" : "no token");
    } else {
        free(a->next_listen);
        if (a->srv && (a->token != NULL) != (a->next_token != NULL))
            alog(a, SB_LOG_INFO, "token %s", a->next_token ? "now required" : "no longer required");
    }
    free_secret(a->token);
    a->token = a->next_token;
    a->next_srv = NULL;
    a->next_listen = a->next_token = NULL;
    a->prepared = 0;
    return a->srv != NULL;
}

void admin_abort(admin *a)
{
    if (a)
        drop_prepared(a);
}

static void admin_closed(void *arg)
{
    free(arg);
}

void admin_free(admin *a)
{
    if (!a)
        return;
    drop_prepared(a);
    free(a->listen);
    free_secret(a->token);
    sb_httpd *srv = a->srv;
    a->srv = NULL;
    a->listen = a->token = NULL;
    if (srv)
        sb_httpd_close(srv, admin_closed, a); /* its log callback may still run until then */
    else
        free(a);
}

const char *admin_address(const admin *a)
{
    return a && a->srv && a->listen ? a->listen : "";
}
