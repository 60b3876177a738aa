/*
 * sqs.c - the sqs trigger: the number of messages in an Amazon SQS queue, read with the Query
 * API's GetQueueAttributes (POST, form body, Version 2012-11-05) signed with SigV4 by the host's
 * HTTP client, with credentials from scalebus/aws.h. One reading per read, labelled
 * queue=<name>: ApproximateNumberOfMessages, plus NotVisible and Delayed when `include` asks.
 * AWS's error code and message become the failure's reason.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scalebus/aws.h"
#include "scalebus/plugin.h"
#include "scalebus/poll.h"
#include "sqs_parse.h"

enum {
    OPT_QUEUE_URL,
    OPT_REGION,
    OPT_ENDPOINT,
    OPT_INCLUDE,
    OPT_PROFILE,
    OPT_METADATA_URL,
    OPT_TLS_VERIFY,
    OPT_EVERY /* SB_POLL_OPTIONS from here */
};

static const sb_option_spec sqs_options[] = {
    {"queue_url", SB_OPT_STRING, NULL, 1,
     "the queue's URL: https://sqs.REGION.amazonaws.com/ACCOUNT/NAME"},
    {"region", SB_OPT_STRING, NULL, 0,
     "the AWS region (default: from queue_url's host sqs.REGION.amazonaws.com)"},
    {"endpoint", SB_OPT_STRING, NULL, 0,
     "send requests here instead of queue_url's host (a VPC endpoint, a test double)"},
    {"include", SB_OPT_LIST, NULL, 0,
     "add these counts to ApproximateNumberOfMessages: not_visible, delayed"},
    {"profile", SB_OPT_STRING, NULL, 0,
     "the shared credentials file's profile (default: $AWS_PROFILE, else default)"},
    {"metadata_url", SB_OPT_STRING, "http://169.254.169.254", 0,
     "the instance metadata service, for credentials from an instance role"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify the endpoint's TLS certificate"},
    SB_POLL_OPTIONS,
    {NULL, 0, NULL, 0, NULL}};

#define MAX_QUEUE_NAME 80

typedef struct sqs_trigger {
    sb_poller *poller;
    sb_instance *inst;
    const sb_host *host;
    sb_aws_creds *creds;
    char *url;  /* where requests go: endpoint + the queue's path, or queue_url */
    char *body; /* the form body */
    char region[64];
    char queue[MAX_QUEUE_NAME + 1];
    const char *attrs[3]; /* the attributes summed */
    size_t nattrs;
    int insecure;
} sqs_trigger;

/* ---- Options -------------------------------------------------------------------------- */

/* queue_url's host, path and queue name; -EINVAL with err. */
static int split_queue_url(const char *url, const char **host, size_t *hostlen, const char **path,
                           char *queue, char *err, size_t errlen)
{
    const char *rest = strncmp(url, "https://", 8) == 0  ? url + 8
                       : strncmp(url, "http://", 7) == 0 ? url + 7
                                                         : NULL;
    if (!rest) {
        snprintf(err, errlen, "queue_url: expected https://sqs.REGION.amazonaws.com/ACCOUNT/NAME");
        return -EINVAL;
    }
    const char *slash = strchr(rest, '/');
    if (!slash || slash == rest) {
        snprintf(err, errlen, "queue_url: no /ACCOUNT/NAME path after the host");
        return -EINVAL;
    }
    *host = rest;
    *hostlen = (size_t)(slash - rest);
    *path = slash;
    /* /ACCOUNT/NAME exactly */
    const char *acct = slash + 1, *s2 = strchr(acct, '/');
    const char *name = s2 ? s2 + 1 : NULL;
    size_t nl = name ? strlen(name) : 0;
    if (!s2 || s2 == acct || nl == 0 || strchr(name, '/') || strpbrk(url, "?#")) {
        snprintf(err, errlen, "queue_url: expected the path /ACCOUNT/NAME, got '%s'", slash);
        return -EINVAL;
    }
    if (nl > MAX_QUEUE_NAME) {
        snprintf(err, errlen, "queue_url: the queue name is longer than %d characters",
                 MAX_QUEUE_NAME);
        return -EINVAL;
    }
    for (size_t i = 0; i < nl; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.')) {
            snprintf(err, errlen, "queue_url: '%s' is not a queue name ([A-Za-z0-9_-], .fifo)",
                     name);
            return -EINVAL;
        }
    }
    memcpy(queue, name, nl + 1);
    return 0;
}

/* The region in sqs.REGION.amazonaws.com[.cn] or REGION.queue.amazonaws.com (legacy); 0 when
 * found. */
static int region_from_host(const char *host, size_t len, char *region, size_t rlen)
{
    char h[256];
    if (len >= sizeof(h))
        return -1;
    memcpy(h, host, len);
    h[len] = '\0';
    const char *b = NULL, *e = NULL;
    if (strncmp(h, "sqs.", 4) == 0) {
        b = h + 4;
        e = strstr(b, ".amazonaws.com");
    } else {
        e = strstr(h, ".queue.amazonaws.com");
        b = h;
    }
    if (!e || e == b || (size_t)(e - b) >= rlen || memchr(b, '.', (size_t)(e - b)))
        return -1;
    memcpy(region, b, (size_t)(e - b));
    region[e - b] = '\0';
    return 0;
}

static int region_ok(const char *r)
{
    size_t n = strlen(r);
    if (n == 0 || n > 40)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((r[i] >= 'a' && r[i] <= 'z') || (r[i] >= '0' && r[i] <= '9') || r[i] == '-'))
            return 0;
    return 1;
}

static int read_include(sqs_trigger *t, const sb_value *v, char *err, size_t errlen)
{
    t->attrs[t->nattrs++] = "ApproximateNumberOfMessages";
    if (!v->is_set)
        return 0;
    for (size_t i = 0; i < v->count; i++) {
        const char *a;
        if (strcmp(v->items[i], "not_visible") == 0)
            a = "ApproximateNumberOfMessagesNotVisible";
        else if (strcmp(v->items[i], "delayed") == 0)
            a = "ApproximateNumberOfMessagesDelayed";
        else {
            snprintf(err, errlen, "include: unknown count '%s' (expected not_visible, delayed)",
                     v->items[i]);
            return -EINVAL;
        }
        for (size_t j = 0; j < t->nattrs; j++) {
            if (t->attrs[j] == a) {
                snprintf(err, errlen, "include: '%s' is listed twice", v->items[i]);
                return -EINVAL;
            }
        }
        t->attrs[t->nattrs++] = a;
    }
    return 0;
}

static int build_request(sqs_trigger *t, const sb_value *values, const char *path, char *err,
                         size_t errlen)
{
    const char *base = values[OPT_QUEUE_URL].str;
    char *url;
    if (values[OPT_ENDPOINT].is_set && values[OPT_ENDPOINT].str[0]) {
        const char *ep = values[OPT_ENDPOINT].str;
        size_t el = strlen(ep);
        while (el > 0 && ep[el - 1] == '/')
            el--;
        if ((strncmp(ep, "http://", 7) != 0 && strncmp(ep, "https://", 8) != 0) ||
            memchr(ep, '?', el) || el > 400) {
            snprintf(err, errlen, "endpoint: expected an http:// or https:// URL, no query");
            return -EINVAL;
        }
        url = malloc(el + strlen(path) + 1);
        if (url)
            sprintf(url, "%.*s%s", (int)el, ep, path);
    } else {
        if (strncmp(base, "https://", 8) != 0) {
            snprintf(err, errlen,
                     "queue_url: SQS is reached over https:// (use `endpoint` for "
                     "anything else)");
            return -EINVAL;
        }
        url = strdup(base);
    }
    char body[512];
    int n = snprintf(body, sizeof(body), "Action=GetQueueAttributes");
    for (size_t i = 0; i < t->nattrs; i++)
        n += snprintf(body + n, sizeof(body) - (size_t)n, "&AttributeName.%zu=%s", i + 1,
                      t->attrs[i]);
    snprintf(body + n, sizeof(body) - (size_t)n, "&Version=2012-11-05");
    t->url = url;
    t->body = strdup(body);
    if (!t->url || !t->body) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

/* ---- Reading ---------------------------------------------------------------------------- */

static void sqs_on_reply(void *arg, const sb_http_response *res);

static void sqs_on_keys(void *arg, const sb_aws_keys *keys, const char *error)
{
    sqs_trigger *t = arg;
    if (!keys) {
        sb_poller_fail(t->poller, 0, "credentials: %s", error);
        return;
    }
    sb_label hdr[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = "POST",
                           .url = t->url,
                           .headers = hdr,
                           .nheaders = 1,
                           .body = t->body,
                           .body_len = strlen(t->body),
                           .max_body = SB_SQS_MAX_REPLY,
                           .insecure = t->insecure};
    sb_aws_signing sig;
    int rc = sb_aws_sign(&req, keys, t->region, "sqs", &sig);
    if (rc == 0)
        rc = sb_poller_http(t->poller, &req, sqs_on_reply, t);
    if (rc)
        sb_poller_fail(t->poller, 0, "GetQueueAttributes: cannot start the request: %s",
                       strerror(-rc));
}

/* AWS's throttling codes: back off (the poller doubles its delay), and say so. */
static int is_throttling(const char *code)
{
    return strcmp(code, "Throttling") == 0 || strcmp(code, "ThrottlingException") == 0 ||
           strcmp(code, "RequestThrottled") == 0 ||
           strcmp(code, "AWS.SimpleQueueService.RequestThrottled") == 0;
}

/* A count: decimal digits only, at most 15 of them (exact in a double). */
static int parse_count(const char *s, double *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 15)
        return -1;
    double v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static void sqs_on_reply(void *arg, const sb_http_response *res)
{
    sqs_trigger *t = arg;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .method = "POST", .url = t->url};
    char buf[400];
    if (res->error) {
        sb_poller_fail(t->poller, 0, "GetQueueAttributes: %s",
                       sb_http_failure(&req, res, buf, sizeof(buf)));
        return;
    }
    sb_sqs_reply *r = malloc(sizeof(*r));
    if (!r) {
        sb_poller_fail(t->poller, 0, "GetQueueAttributes: out of memory");
        return;
    }
    char why[200];
    int rc = sb_sqs_parse(res->body, res->body_len, r, why, sizeof(why));
    int ok_status = res->status >= 200 && res->status < 300;
    uint64_t retry = sb_http_retry_after_ms(res);
    if (rc == 0 && r->is_error) {
        sb_poller_fail(t->poller, retry, "GetQueueAttributes: %s: %s (HTTP %ld%s)", r->code,
                       r->message[0] ? r->message : "(no message)", res->status,
                       is_throttling(r->code) ? "; backing off" : "");
    } else if (!ok_status) {
        sb_poller_fail(t->poller, retry, "GetQueueAttributes: %s",
                       sb_http_failure(&req, res, buf, sizeof(buf)));
    } else if (rc != 0) {
        sb_poller_fail(t->poller, 0,
                       "GetQueueAttributes: a malformed reply (HTTP %ld, %zu bytes): %s",
                       res->status, res->body_len, why);
    } else {
        double total = 0;
        for (size_t i = 0; i < t->nattrs; i++) {
            const char *v = sb_sqs_attr_value(r, t->attrs[i]);
            double x;
            if (!v) {
                sb_poller_fail(t->poller, 0, "GetQueueAttributes: the reply has no %s",
                               t->attrs[i]);
                free(r);
                return;
            }
            if (parse_count(v, &x) != 0) {
                sb_poller_fail(t->poller, 0, "GetQueueAttributes: %s is '%.40s', not a count",
                               t->attrs[i], v);
                free(r);
                return;
            }
            total += x;
        }
        sb_label lab = {"queue", t->queue};
        sb_poller_reading(t->poller, total, &lab, 1);
        sb_poller_done(t->poller);
    }
    free(r);
}

static void sqs_read(void *self, sb_poller *p)
{
    sqs_trigger *t = self;
    int rc = sb_aws_creds_get(t->creds, sqs_on_keys, t);
    if (rc)
        sb_poller_fail(p, 0, "credentials: %s", strerror(-rc));
}

static void sqs_cancel(void *self)
{
    sqs_trigger *t = self;
    sb_aws_creds_cancel(t->creds, sqs_on_keys, t);
}

static const sb_poll_ops sqs_poll_ops = {.read = sqs_read, .cancel = sqs_cancel};

/* ---- Lifecycle ------------------------------------------------------------------------ */

static void sqs_destroy(void *state)
{
    sqs_trigger *t = state;
    if (!t)
        return;
    sb_poller_free(t->poller);
    sb_aws_creds_free(t->creds);
    free(t->url);
    free(t->body);
    free(t);
}

static int sqs_create(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                      char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "this daemon has no HTTP client (host version 3 needed)");
        return -ENOSYS;
    }
    sqs_trigger *t = calloc(1, sizeof(*t));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->inst = inst;
    t->host = host;
    t->insecure = values[OPT_TLS_VERIFY].is_set && !values[OPT_TLS_VERIFY].integer;
    const char *qhost, *path;
    size_t qhostlen;
    int rc =
        split_queue_url(values[OPT_QUEUE_URL].str, &qhost, &qhostlen, &path, t->queue, err, errlen);
    if (rc == 0) {
        if (values[OPT_REGION].is_set) {
            snprintf(t->region, sizeof(t->region), "%s", values[OPT_REGION].str);
            if (!region_ok(t->region)) {
                snprintf(err, errlen, "region: '%s' is not a region name (like eu-west-1)",
                         values[OPT_REGION].str);
                rc = -EINVAL;
            }
        } else if (region_from_host(qhost, qhostlen, t->region, sizeof(t->region)) != 0 ||
                   !region_ok(t->region)) {
            snprintf(err, errlen,
                     "region: required (queue_url's host '%.*s' is not sqs.REGION.amazonaws.com)",
                     (int)qhostlen, qhost);
            rc = -EINVAL;
        }
    }
    if (rc == 0)
        rc = read_include(t, &values[OPT_INCLUDE], err, errlen);
    if (rc == 0)
        rc = build_request(t, values, path, err, errlen);
    if (rc == 0)
        rc = sb_poller_new(inst, host, &values[OPT_EVERY], &sqs_poll_ops, t, &t->poller, err,
                           errlen);
    if (rc == 0) {
        sb_aws_creds_options co = {
            .profile = values[OPT_PROFILE].is_set ? values[OPT_PROFILE].str : NULL,
            .metadata_url = values[OPT_METADATA_URL].is_set ? values[OPT_METADATA_URL].str : NULL,
        };
        rc = sb_aws_creds_new(inst, host, &co, &t->creds, err, errlen);
    }
    if (rc) {
        sqs_destroy(t);
        return rc;
    }
    *state = t;
    return 0;
}

static int sqs_start(void *state)
{
    sqs_trigger *t = state;
    return sb_poller_start(t->poller);
}

static int sqs_stop(void *state)
{
    sqs_trigger *t = state;
    sb_poller_stop(t->poller);
    sb_aws_creds_stop(t->creds);
    return 0;
}

static void sqs_on_event(void *state, const sb_event *ev)
{
    sqs_trigger *t = state;
    if (strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        sb_poller_run_now(t->poller);
}

static const sb_plugin_descriptor sqs_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "sqs",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "the number of messages in an Amazon SQS queue (GetQueueAttributes)",
    .options = sqs_options,
    .create = sqs_create,
    .start = sqs_start,
    .stop = sqs_stop,
    .destroy = sqs_destroy,
    .on_event = sqs_on_event,
};

SB_PLUGIN_EXPORT(sqs_descriptor)
