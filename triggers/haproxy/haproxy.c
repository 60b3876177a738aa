/*
 * haproxy.c - the haproxy trigger: reads HAProxy's stats CSV (the stats URI with ";csv") every
 * `every` on the daemon's HTTP client and publishes one column of one row: a backend's BACKEND
 * row, or one server's row. Current sessions (scur) by default; queued requests (qcur), the
 * session rate (rate) or any other column of the CSV header on request.
 *
 * The schedule, failures, back-off and the "run" topic are the polling SDK's (scalebus/poll.h);
 * the CSV is read by sb_haproxy_parse (haproxy_parse.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>
#include <scalebus/poll.h>

#include "haproxy_parse.h"

/* The stats of a few thousand servers fit well inside this. */
#define HAP_MAX_BODY (16u << 20)
#define HAP_NAME_MAX 128

enum {
    OPT_URL,
    OPT_BACKEND,
    OPT_SERVER,
    OPT_MEASURE,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_TLS_VERIFY,
    OPT_EVERY, /* SB_POLL_OPTIONS */
};

static const sb_option_spec hap_options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "the stats URI with ;csv (http://127.0.0.1:8404/stats;csv)"},
    {"backend", SB_OPT_STRING, NULL, 0, "a backend's name: its BACKEND row (or set server)"},
    {"server", SB_OPT_STRING, NULL, 0, "BACKEND/SERVER: that server's row (or set backend)"},
    {"measure", SB_OPT_STRING, "scur", 0,
     "the column to read: scur (current sessions), qcur (queued), rate (sessions/s), or any "
     "column of the CSV header"},
    {"username", SB_OPT_STRING, NULL, 0, "HTTP basic auth user name (stats auth)"},
    {"password", SB_OPT_STRING, NULL, 0, "HTTP basic auth password (with username)"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify an https:// server's certificate and name"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL},
};

typedef struct hap_trigger {
    sb_poller *poller; /* first: the polling SDK's on_event convention */
    const sb_host *host;
    sb_instance *inst;
    sb_http_request req;
    char backend[HAP_NAME_MAX + 1];
    char server[HAP_NAME_MAX + 1]; /* "" for the BACKEND row */
    const char *measure;
    sb_label labels[2];
    size_t nlabels;
} hap_trigger;

static int hap_check_url(const char *url, char *err, size_t errlen)
{
    return sb_http_url_check("url", url, err, errlen);
}

/* A proxy, server or column name: no separator of the CSV, not too long. */
static int hap_check_name(const char *what, const char *name, size_t len, char *err, size_t errlen)
{
    if (len == 0 || len > HAP_NAME_MAX) {
        snprintf(err, errlen, "%s: %s", what, len ? "longer than 128 characters" : "empty");
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)name[i] < ' ' || name[i] == ',' || name[i] == '"') {
            snprintf(err, errlen, "%s: a comma, quote or control character in \"%.*s\"", what,
                     (int)len, name);
            return -EINVAL;
        }
    return 0;
}

/* backend: NAME or server: BACKEND/SERVER, exactly one. */
static int hap_row(hap_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    int has_b = v[OPT_BACKEND].is_set, has_s = v[OPT_SERVER].is_set;
    if (has_b == has_s) {
        snprintf(err, errlen, "%s",
                 has_b ? "set backend or server, not both"
                       : "set backend (a backend's name) or server "
                         "(BACKEND/SERVER)");
        return -EINVAL;
    }
    if (has_b) {
        const char *b = v[OPT_BACKEND].str;
        int rc = hap_check_name("backend", b, strlen(b), err, errlen);
        if (rc != 0)
            return rc;
        snprintf(t->backend, sizeof t->backend, "%s", b);
        return 0;
    }
    const char *s = v[OPT_SERVER].str, *slash = strchr(s, '/');
    if (slash == NULL || strchr(slash + 1, '/')) {
        snprintf(err, errlen, "server: expected BACKEND/SERVER (e.g. web/s1), got \"%.64s\"", s);
        return -EINVAL;
    }
    int rc = hap_check_name("server", s, (size_t)(slash - s), err, errlen);
    if (rc == 0)
        rc = hap_check_name("server", slash + 1, strlen(slash + 1), err, errlen);
    if (rc != 0)
        return rc;
    snprintf(t->backend, sizeof t->backend, "%.*s", (int)(slash - s), s);
    snprintf(t->server, sizeof t->server, "%s", slash + 1);
    return 0;
}


static void hap_reply(void *arg, const sb_http_response *res)
{
    hap_trigger *t = arg;
    if (sb_poller_fail_reply(t->poller, &t->req, NULL, res,
                             "the stats page wants credentials (username, password)"))
        return;
    double value;
    char why[400];
    int rc = sb_haproxy_parse(res->body, res->body_len, t->backend, t->server[0] ? t->server : NULL,
                              t->measure, &value, why, sizeof why);
    if (rc != 0) {
        sb_poller_fail(t->poller, 0, "GET %s: %s", t->req.url, why);
        return;
    }
    sb_poller_reading(t->poller, value, t->labels, t->nlabels);
    sb_poller_done(t->poller);
}

static void hap_read(void *self, sb_poller *p)
{
    hap_trigger *t = self;
    int rc = sb_poller_http(p, &t->req, hap_reply, t);
    if (rc < 0)
        sb_poller_fail(p, 0, "GET %s: cannot start the request: %s", t->req.url, strerror(-rc));
}

static const sb_poll_ops hap_poll_ops = {.read = hap_read};

static void hap_destroy(void *state)
{
    hap_trigger *t = state;
    if (t == NULL)
        return;
    sb_poller_free(t->poller);
    free(t);
}

static int hap_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                      char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "this daemon has no HTTP client (host version %u, 3 needed)",
                 host->version);
        return -ENOSYS;
    }
    int rc = hap_check_url(v[OPT_URL].str, err, errlen);
    if (rc != 0)
        return rc;
    if (v[OPT_PASSWORD].is_set && !v[OPT_USERNAME].is_set) {
        snprintf(err, errlen, "password: set username too");
        return -EINVAL;
    }
    rc = hap_check_name("measure", v[OPT_MEASURE].str, strlen(v[OPT_MEASURE].str), err, errlen);
    if (rc != 0)
        return rc;
    hap_trigger *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->host = host;
    t->inst = inst;
    t->measure = v[OPT_MEASURE].str;
    rc = hap_row(t, v, err, errlen);
    if (rc == 0)
        rc = sb_poller_new(inst, host, &v[OPT_EVERY], &hap_poll_ops, t, &t->poller, err, errlen);
    if (rc != 0) {
        hap_destroy(t);
        return rc;
    }
    t->labels[0] = (sb_label){"backend", t->backend};
    t->labels[1] = (sb_label){"server", t->server};
    t->nlabels = t->server[0] ? 2 : 1;
    t->req =
        (sb_http_request){SB_HTTP_REQUEST_INIT, .url = v[OPT_URL].str, .max_body = HAP_MAX_BODY,
                          .insecure = v[OPT_TLS_VERIFY].integer == 0};
    if (v[OPT_USERNAME].is_set) {
        t->req.username = v[OPT_USERNAME].str;
        t->req.password = v[OPT_PASSWORD].is_set ? v[OPT_PASSWORD].str : "";
    }
    *state = t;
    return 0;
}




/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor hap_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "haproxy",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "reads a backend's or server's figure from HAProxy's stats CSV",
    .options = hap_options,
    .create = hap_create,
    .start = sb_poll_trigger_start,
    .stop = sb_poll_trigger_stop,
    .destroy = hap_destroy,
    .on_event = sb_poll_trigger_on_event,
};

SB_PLUGIN_EXPORT(hap_descriptor)
