/*
 * http_json.c - the http_json trigger: any HTTP API that answers JSON (a CI system's queue, a
 * job scheduler's metrics). Each read sends one request through the host's HTTP client and
 * selects one or more numbers from the reply (http_json_parse.c): one reading per match,
 * labelled from a sibling field when `label` is set.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http_json_parse.h"
#include "scalebus/plugin.h"
#include "scalebus/poll.h"

enum {
    OPT_URL,
    OPT_METHOD,
    OPT_HEADERS,
    OPT_BODY,
    OPT_USERNAME,
    OPT_PASSWORD,
    OPT_TLS_VERIFY,
    OPT_SELECT,
    OPT_LABEL,
    OPT_COUNT,
    OPT_MAX_BODY,
    OPT_EVERY /* SB_POLL_OPTIONS from here */
};

static const sb_option_spec http_json_options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "the http:// or https:// URL to read"},
    {"method", SB_OPT_STRING, "GET", 0, "GET, POST, PUT or PATCH"},
    {"headers", SB_OPT_MAP, NULL, 0,
     "request headers (values may use ${ENV}: \"Token ${BUILDKITE_AGENT_TOKEN}\")"},
    {"body", SB_OPT_STRING, NULL, 0,
     "a request body (sent as application/json unless headers set Content-Type)"},
    {"username", SB_OPT_STRING, NULL, 0, "HTTP basic authentication's user"},
    {"password", SB_OPT_STRING, NULL, 0, "HTTP basic authentication's password"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify the server's TLS certificate"},
    {"select", SB_OPT_STRING, NULL, 0,
     "a JSON pointer to the number (\"/jobs/scheduled\"); a \"*\" segment matches every "
     "element (\"/queues/*/depth\"); unset: the whole reply"},
    {"label", SB_OPT_STRING, NULL, 0,
     "label each reading with this sibling field of the selected value (name=<its value>)"},
    {"count", SB_OPT_BOOL, "false", 0,
     "read the number of elements of the selected array or object instead of a number"},
    {"max_body", SB_OPT_INT, "1048576", 0, "the largest reply accepted, in bytes"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL}};

#define MAX_HEADERS 32

typedef struct http_json_trigger {
    sb_poller *poller;
    sb_instance *inst;
    const sb_host *host;
    const char *url, *method, *body, *username, *password; /* the option values (host-owned) */
    sb_label headers[MAX_HEADERS + 1];
    size_t nheaders;
    size_t max_body;
    int insecure;
    sb_http_json_query query;
} http_json_trigger;

/* An HTTP header name: an RFC 9110 token. */
static int header_name_ok(const char *s)
{
    if (!*s || strlen(s) > 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return 0;
    return 1;
}

/* A header value: no CR, LF or other control character (no header injection). */
static int header_value_ok(const char *s)
{
    for (; *s; s++)
        if (((unsigned char)*s < 0x20 && *s != '\t') || *s == 0x7f)
            return 0;
    return 1;
}

static int read_headers(http_json_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    int has_type = 0;
    if (v->is_set) {
        if (v->count > MAX_HEADERS) {
            snprintf(err, errlen, "headers: at most %d", MAX_HEADERS);
            return -EINVAL;
        }
        for (size_t i = 0; i < v->count; i++) {
            if (!header_name_ok(v->items[i])) {
                snprintf(err, errlen, "headers: '%s' is not a header name", v->items[i]);
                return -EINVAL;
            }
            if (!header_value_ok(v->values[i])) {
                snprintf(err, errlen, "headers: %s: the value holds a control character",
                         v->items[i]);
                return -EINVAL;
            }
            if (strcasecmp(v->items[i], "Content-Type") == 0)
                has_type = 1;
            t->headers[t->nheaders++] = (sb_label){v->items[i], v->values[i]};
        }
    }
    if (t->body && !has_type)
        t->headers[t->nheaders++] = (sb_label){"Content-Type", "application/json"};
    return 0;
}

static int read_options(http_json_trigger *t, const sb_value *values, char *err, size_t errlen)
{
    t->url = values[OPT_URL].str;
    if (strncmp(t->url, "http://", 7) != 0 && strncmp(t->url, "https://", 8) != 0) {
        snprintf(err, errlen, "url: expected an http:// or https:// URL");
        return -EINVAL;
    }
    t->method = values[OPT_METHOD].is_set ? values[OPT_METHOD].str : "GET";
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH"};
    int known = 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        known |= strcmp(t->method, methods[i]) == 0;
    if (!known) {
        snprintf(err, errlen, "method: '%s' is not one of GET, POST, PUT, PATCH", t->method);
        return -EINVAL;
    }
    t->body = values[OPT_BODY].is_set ? values[OPT_BODY].str : NULL;
    if (t->body && strcmp(t->method, "GET") == 0) {
        snprintf(err, errlen, "body: a GET request has no body (set method: POST)");
        return -EINVAL;
    }
    t->username = values[OPT_USERNAME].is_set ? values[OPT_USERNAME].str : NULL;
    t->password = values[OPT_PASSWORD].is_set ? values[OPT_PASSWORD].str : NULL;
    if (!t->username != !t->password) {
        snprintf(err, errlen, "%s: set together with %s (HTTP basic authentication)",
                 t->username ? "username" : "password", t->username ? "password" : "username");
        return -EINVAL;
    }
    t->insecure = values[OPT_TLS_VERIFY].is_set && !values[OPT_TLS_VERIFY].integer;
    int64_t mb = values[OPT_MAX_BODY].is_set ? values[OPT_MAX_BODY].integer : 1048576;
    if (mb < 2 || mb > 64 * 1024 * 1024) {
        snprintf(err, errlen, "max_body: between 2 and 67108864 bytes");
        return -EINVAL;
    }
    t->max_body = (size_t)mb;
    t->query.select = values[OPT_SELECT].is_set ? values[OPT_SELECT].str : "";
    t->query.label = values[OPT_LABEL].is_set ? values[OPT_LABEL].str : NULL;
    t->query.count = values[OPT_COUNT].is_set && values[OPT_COUNT].integer;
    int rc = sb_http_json_check(&t->query, err, errlen);
    if (rc)
        return rc;
    return read_headers(t, &values[OPT_HEADERS], err, errlen);
}

static void http_json_on_reply(void *arg, const sb_http_response *res)
{
    http_json_trigger *t = arg;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .method = t->method, .url = t->url};
    char buf[400];
    const char *bad = sb_http_failure(&req, res, buf, sizeof(buf));
    if (bad) {
        sb_poller_fail(t->poller, sb_http_retry_after_ms(res), "%s", bad);
        return;
    }
    sb_http_json_readings r;
    char why[256];
    if (sb_http_json_parse(res->body, res->body_len, &t->query, &r, why, sizeof(why)) != 0) {
        sb_poller_fail(t->poller, 0, "reply: %s", why);
        return;
    }
    const char *key = t->query.label ? t->query.label : "path";
    for (size_t i = 0; i < r.n; i++) {
        sb_label lab = {key, r.items[i].label};
        sb_poller_reading(t->poller, r.items[i].value, &lab, r.items[i].label ? 1 : 0);
    }
    sb_http_json_readings_free(&r);
    sb_poller_done(t->poller);
}

static void http_json_read(void *self, sb_poller *p)
{
    http_json_trigger *t = self;
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = t->method,
                           .url = t->url,
                           .headers = t->headers,
                           .nheaders = t->nheaders,
                           .body = t->body,
                           .body_len = t->body ? strlen(t->body) : 0,
                           .max_body = t->max_body,
                           .insecure = t->insecure,
                           .username = t->username,
                           .password = t->password};
    int rc = sb_poller_http(p, &req, http_json_on_reply, t);
    if (rc)
        sb_poller_fail(p, 0, "%s: cannot start the request: %s", t->method, strerror(-rc));
}

static const sb_poll_ops http_json_poll_ops = {.read = http_json_read};

static void http_json_destroy(void *state)
{
    http_json_trigger *t = state;
    if (!t)
        return;
    sb_poller_free(t->poller);
    free(t);
}

static int http_json_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                            void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "this daemon has no HTTP client (host version 3 needed)");
        return -ENOSYS;
    }
    http_json_trigger *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->inst = inst;
    t->host = host;
    int rc = read_options(t, values, err, errlen);
    if (rc == 0)
        rc = sb_poller_new(inst, host, &values[OPT_EVERY], &http_json_poll_ops, t, &t->poller, err,
                           errlen);
    if (rc) {
        http_json_destroy(t);
        return rc;
    }
    *state = t;
    return 0;
}




/* Values never shown (scalebus/plugin.h, SB_OPTION_SECRET). */
static const sb_option_more secret_options[] = {
    {"password", NULL, SB_OPTION_SECRET},
    {"headers", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

static const sb_plugin_descriptor http_json_descriptor = {
    SB_OPTIONS_MORE(secret_options),
    SB_DESCRIPTOR_SIZES,
    .type = "http_json",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "numbers selected from a JSON HTTP API's reply (one reading per match)",
    .options = http_json_options,
    .create = http_json_create,
    .start = sb_poll_trigger_start,
    .stop = sb_poll_trigger_stop,
    .destroy = http_json_destroy,
    .on_event = sb_poll_trigger_on_event,
};

SB_PLUGIN_EXPORT(http_json_descriptor)
