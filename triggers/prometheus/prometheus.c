/*
 * prometheus.c - the prometheus trigger: runs an instant query (GET /api/v1/query) every `every`
 * on the daemon's HTTP client and publishes one reading per series of the result, labelled with
 * the series' labels. A query that returns no series fails the read, unless empty_as_zero.
 *
 * The schedule, failures, back-off and the "run" topic are the polling SDK's (scalebus/poll.h);
 * the reply is read by sb_prometheus_parse (prometheus_parse.c).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>
#include <scalebus/poll.h>

#include "prometheus_parse.h"

/* A reply longer than this fails the read (-EMSGSIZE); SB_PROM_MAX_SERIES series fit easily. */
#define PROM_MAX_BODY (8u << 20)
#define PROM_MAX_HEADERS 32

enum {
    OPT_URL,
    OPT_QUERY,
    OPT_HEADERS,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_TLS_VERIFY,
    OPT_EMPTY_AS_ZERO,
    OPT_EVERY, /* SB_POLL_OPTIONS */
};

static const sb_option_spec prom_options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "the Prometheus server's base URL (http:// or https://)"},
    {"query", SB_OPT_STRING, NULL, 1, "a PromQL instant query; one reading per series"},
    {"headers", SB_OPT_MAP, NULL, 0, "extra request headers (e.g. Authorization: Bearer ...)"},
    {"username", SB_OPT_STRING, NULL, 0, "HTTP basic auth user name"},
    {"password", SB_OPT_STRING, NULL, 0, "HTTP basic auth password (with username)"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify an https:// server's certificate and name"},
    {"empty_as_zero", SB_OPT_BOOL, "false", 0,
     "a query that returns no series is one reading of 0 (default: a failed read)"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef struct prom_trigger {
    sb_poller *poller; /* first: the polling SDK's on_event convention */
    const sb_host *host;
    sb_instance *inst;
    char *query_url;   /* base + /api/v1/query?query=ENCODED */
    char *display_url; /* base + /api/v1/query, for messages */
    sb_label *headers;
    size_t nheaders;
    sb_http_request req;
    int empty_as_zero;
    int labels_cut_logged;     /* "labels were cut" is said once */
    size_t nonfinite_reported; /* non-finite series in the last read, to log each change once */
} prom_trigger;

/* ---- Options shared in shape by the HTTP-load triggers -------------------------------------- */

static int prom_check_url(const char *url, char *err, size_t errlen)
{
    int rc = sb_http_url_check("url", url, err, errlen);
    if (rc == 0 && strpbrk(url, "?#")) {
        snprintf(err, errlen,
                 "url: the server's base URL only, without ?query or #fragment (e.g. "
                 "http://127.0.0.1:9090)");
        rc = -EINVAL;
    }
    return rc;
}

static int prom_check_auth(const sb_value *v, char *err, size_t errlen)
{
    if (v[OPT_PASSWORD].is_set && !v[OPT_USERNAME].is_set) {
        snprintf(err, errlen, "password: set username too");
        return -EINVAL;
    }
    return 0;
}

/* Header names are HTTP tokens; values carry no line breaks (no header of our own making). */
static int prom_headers(prom_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    if (!v->is_set || v->count == 0)
        return 0;
    if (v->count > PROM_MAX_HEADERS) {
        snprintf(err, errlen, "headers: at most %d", PROM_MAX_HEADERS);
        return -EINVAL;
    }
    t->headers = calloc(v->count, sizeof *t->headers);
    if (t->headers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < v->count; i++) {
        const char *k = v->items[i], *val = v->values[i];
        if (k[0] == '\0' || k[strspn(k, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ")] != '\0') {
            snprintf(err, errlen, "headers: \"%.64s\" is not a header name", k);
            return -EINVAL;
        }
        if (strpbrk(val, "\r\n")) {
            snprintf(err, errlen, "headers: the value of %.64s has a line break", k);
            return -EINVAL;
        }
        t->headers[i].key = k;
        t->headers[i].value = val;
    }
    t->nheaders = v->count;
    return 0;
}

/* base + "/api/v1/query", and the same with "?query=" and the query percent-encoded. */
static int prom_urls(prom_trigger *t, const char *base, const char *query)
{
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    static const char path[] = "/api/v1/query";
    t->display_url = malloc(blen + sizeof path);
    t->query_url = malloc(blen + sizeof path + 7 + 3 * strlen(query));
    if (t->display_url == NULL || t->query_url == NULL)
        return -ENOMEM;
    memcpy(t->display_url, base, blen);
    memcpy(t->display_url + blen, path, sizeof path);
    char *o = t->query_url + sprintf(t->query_url, "%s?query=", t->display_url);
    for (const unsigned char *c = (const unsigned char *)query; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
            strchr("-._~", *c))
            *o++ = (char)*c;
        else
            o += sprintf(o, "%%%02X", *c);
    }
    *o = '\0';
    return 0;
}

/* ---- Reading -------------------------------------------------------------------------------- */

/* A failed reply's reason: Prometheus' own errorType and error when the body has them, a plain
 * word for refused credentials, else the SDK's usual line. */
static void prom_fail_reply(prom_trigger *t, const sb_http_response *res)
{
    /* Prometheus explains a refused query in its body: its own words are the reason. */
    if (res->error == 0 && res->status != 401 && res->status != 403) {
        sb_prom_result *r = NULL;
        char why[512];
        if (sb_prometheus_parse(res->body, res->body_len, &r, why, sizeof why) == -EREMOTEIO) {
            sb_poller_fail(t->poller, sb_http_retry_after_ms(res), "GET %s: HTTP %ld: %s",
                           t->display_url, res->status, why);
            return;
        }
        sb_prom_result_free(r);
    }
    sb_poller_fail_reply(t->poller, &t->req, t->display_url, res,
                         "the server wants credentials (username, password or headers)");
}

/* "{k="v", ...}" of a series, cut to fit, for messages. */
static void prom_series_text(const sb_prom_series *s, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "{");
    for (size_t i = 0; i < s->nlabels && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s=\"%s\"", i ? ", " : "", s->labels[i].key,
                              s->labels[i].value);
    if (n < len)
        snprintf(buf + n, len - n, "}");
}

static void prom_publish(prom_trigger *t, const sb_prom_result *r)
{
    size_t finite = 0, nonfinite = 0;
    const sb_prom_series *bad = NULL;
    for (size_t i = 0; i < r->nseries; i++) {
        const sb_prom_series *s = &r->series[i];
        if (s->labels_cut && !t->labels_cut_logged) {
            t->labels_cut_logged = 1;
            t->host->log(t->inst, SB_LOG_WARN,
                         "a series has %zu labels; readings carry the first %d (the rest are "
                         "cut: aggregate with sum by (...) to choose them)",
                         s->nlabels + s->labels_cut, SB_MAX_LABELS);
        }
        if (!isfinite(s->value)) {
            nonfinite++;
            if (bad == NULL)
                bad = s;
            continue;
        }
        sb_poller_reading(t->poller, s->value, s->labels, s->nlabels);
        finite++;
    }
    char series[200];
    if (bad)
        prom_series_text(bad, series, sizeof series);
    if (finite == 0 && bad) {
        t->nonfinite_reported = 0;
        sb_poller_fail(t->poller, 0, "the query's value is %s%s%s (not a number)",
                       isnan(bad->value) ? "NaN"
                       : bad->value > 0  ? "+Inf"
                                         : "-Inf",
                       r->is_scalar ? "" : " for ", r->is_scalar ? "" : series);
        return;
    }
    if (nonfinite != t->nonfinite_reported) {
        if (nonfinite)
            t->host->log(t->inst, SB_LOG_WARN,
                         "%zu of %zu series have no number (NaN or Inf) and give no reading, "
                         "e.g. %s",
                         nonfinite, r->nseries, series);
        else
            t->host->log(t->inst, SB_LOG_INFO, "every series has a number again");
        t->nonfinite_reported = nonfinite;
    }
    sb_poller_done(t->poller);
}

static void prom_reply(void *arg, const sb_http_response *res)
{
    prom_trigger *t = arg;
    if (res->error != 0 || res->status < 200 || res->status > 299) {
        prom_fail_reply(t, res);
        return;
    }
    sb_prom_result *r = NULL;
    char why[512];
    int rc = sb_prometheus_parse(res->body, res->body_len, &r, why, sizeof why);
    if (rc != 0) {
        sb_poller_fail(t->poller, 0, "GET %s: %s", t->display_url, why);
        return;
    }
    if (r->nseries == 0) {
        if (t->empty_as_zero) {
            sb_poller_reading(t->poller, 0, NULL, 0);
            sb_poller_done(t->poller);
        } else {
            sb_poller_fail(t->poller, 0, "query returned no series");
        }
    } else {
        prom_publish(t, r);
    }
    sb_prom_result_free(r);
}

static void prom_read(void *self, sb_poller *p)
{
    prom_trigger *t = self;
    int rc = sb_poller_http(p, &t->req, prom_reply, t);
    if (rc < 0)
        sb_poller_fail(p, 0, "GET %s: cannot start the request: %s", t->display_url, strerror(-rc));
}

static const sb_poll_ops prom_poll_ops = {.read = prom_read};

/* ---- Plugin --------------------------------------------------------------------------------- */

static void prom_destroy(void *state)
{
    prom_trigger *t = state;
    if (t == NULL)
        return;
    sb_poller_free(t->poller);
    free(t->query_url);
    free(t->display_url);
    free(t->headers);
    free(t);
}

static int prom_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                       char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "this daemon has no HTTP client (host version %u, 3 needed)",
                 host->version);
        return -ENOSYS;
    }
    int rc = prom_check_url(v[OPT_URL].str, err, errlen);
    if (rc == 0)
        rc = prom_check_auth(v, err, errlen);
    if (rc == 0 && v[OPT_QUERY].str[strspn(v[OPT_QUERY].str, " \t\r\n")] == '\0') {
        snprintf(err, errlen, "query: empty");
        rc = -EINVAL;
    }
    if (rc != 0)
        return rc;
    prom_trigger *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->host = host;
    t->inst = inst;
    t->empty_as_zero = v[OPT_EMPTY_AS_ZERO].integer != 0;
    rc = prom_headers(t, &v[OPT_HEADERS], err, errlen);
    if (rc == 0 && prom_urls(t, v[OPT_URL].str, v[OPT_QUERY].str) != 0) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0)
        rc = sb_poller_new(inst, host, &v[OPT_EVERY], &prom_poll_ops, t, &t->poller, err, errlen);
    if (rc != 0) {
        prom_destroy(t);
        return rc;
    }
    t->req = (sb_http_request){SB_HTTP_REQUEST_INIT,
                               .url = t->query_url,
                               .headers = t->headers,
                               .nheaders = t->nheaders,
                               .max_body = PROM_MAX_BODY,
                               .insecure = v[OPT_TLS_VERIFY].integer == 0,
                               .username = v[OPT_USERNAME].is_set ? v[OPT_USERNAME].str : NULL,
                               .password = v[OPT_PASSWORD].is_set ? v[OPT_PASSWORD].str : ""};
    if (t->req.username == NULL)
        t->req.password = NULL;
    *state = t;
    return 0;
}




/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {"headers", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor prom_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "prometheus",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "reads a Prometheus instant query: one reading per series",
    .options = prom_options,
    .create = prom_create,
    .start = sb_poll_trigger_start,
    .stop = sb_poll_trigger_stop,
    .destroy = prom_destroy,
    .on_event = sb_poll_trigger_on_event,
};

SB_PLUGIN_EXPORT(prom_descriptor)
