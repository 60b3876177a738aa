/*
 * aws_creds.c - AWS credentials for AWS-facing plugins (scalebus/aws.h): the source is chosen once
 * (environment, shared credentials file, instance metadata service v2); metadata keys are fetched
 * on first use through host->http_request, fetched again before they expire, and a failed
 * refresh is retried with back-off while the old keys stay valid. Also sb_aws_sign(), which hands
 * SigV4 signing to the host's HTTP client (curl's CURLOPT_AWS_SIGV4).
 *
 * Secrets never reach a log line or an error: only the source and the access key id's last 4
 * characters are logged.
 */
#define _POSIX_C_SOURCE 200809L
#include "scalebus/aws.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws_parse.h"
#include "scalebus/poll.h"

#define DEFAULT_METADATA_URL "http://169.254.169.254"
#define IMDS_TIMEOUT_MS 5000
#define IMDS_TOKEN_TTL "21600"
#define MAX_IMDS_TOKEN 1024
#define MAX_URL 512

typedef struct creds_waiter {
    sb_aws_creds_cb cb;
    void *arg;
    struct creds_waiter *next;
} creds_waiter;

enum imds_step { IMDS_IDLE, IMDS_TOKEN, IMDS_ROLE, IMDS_KEYS };

struct sb_aws_creds {
    sb_instance *inst;
    const sb_host *host;
    int from_imds;       /* 0: static keys from the environment or the file */
    sb_aws_parsed keys;  /* the current keys (empty until the first metadata fetch) */
    char *metadata_url;  /* without a trailing '/' */
    enum imds_step step; /* the metadata request in flight, if any */
    sb_http *req;
    char *imds_token;
    char role[160];
    sb_timer *timer; /* the next refresh, or a retry after a failed one */
    sb_backoff backoff;
    creds_waiter *waiters;  /* waiting for the fetch in flight */
    creds_waiter *flushing; /* being called back now (cancel reaches them too) */
    int stopped;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return rc;
}

/* The last 4 characters of an access key id: all a log line ever shows of a key. */
static const char *key_tail(const char *id)
{
    size_t n = strlen(id);
    return n > 4 ? id + n - 4 : id;
}

static void format_time(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm))
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
    else
        snprintf(buf, len, "%lld", (long long)t);
}

/* ---- Choosing the source ---------------------------------------------------------------- */

static int take_env(sb_aws_creds *c, char *err, size_t errlen, int *found)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    const char *token = getenv("AWS_SESSION_TOKEN");
    *found = 0;
    if ((!id || !*id) && (!secret || !*secret))
        return 0;
    if (!id || !*id || !secret || !*secret)
        return fail(err, errlen, -EINVAL, "credentials: %s is set but %s is not",
                    id && *id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                    id && *id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
    c->keys.access_key_id = strdup(id);
    c->keys.secret_access_key = strdup(secret);
    c->keys.session_token = token && *token ? strdup(token) : NULL;
    if (!c->keys.access_key_id || !c->keys.secret_access_key ||
        (token && *token && !c->keys.session_token))
        return fail(err, errlen, -ENOMEM, "out of memory");
    *found = 1;
    c->host->log(c->inst, SB_LOG_INFO, "credentials from the environment (key ...%s%s)",
                 key_tail(id), c->keys.session_token ? ", with a session token" : "");
    return 0;
}

/* Read a whole small file; -ENOENT when it does not exist. */
static int read_file(const char *path, char **text, size_t *len, char *why, size_t whylen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(why, whylen, "%s", strerror(e));
        return -e;
    }
    char *buf = malloc(SB_AWS_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        snprintf(why, whylen, "out of memory");
        return -ENOMEM;
    }
    size_t n = fread(buf, 1, SB_AWS_MAX_FILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || n > SB_AWS_MAX_FILE) {
        free(buf);
        snprintf(why, whylen, bad ? "read error" : "larger than 1 MiB");
        return -EIO;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

static int take_file(sb_aws_creds *c, const sb_aws_creds_options *opt, char *err, size_t errlen,
                     int *found)
{
    *found = 0;
    const char *profile = opt->profile;
    int explicit_profile = profile != NULL;
    if (!profile) {
        profile = getenv("AWS_PROFILE");
        explicit_profile = profile && *profile;
        if (!explicit_profile)
            profile = "default";
    }
    char path[1024];
    const char *file = opt->credentials_file;
    if (!file || !*file)
        file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    if (!file || !*file) {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            if (explicit_profile)
                return fail(err, errlen, -ENOENT,
                            "profile '%s': no credentials file (HOME is not set)", profile);
            return 0;
        }
        snprintf(path, sizeof(path), "%s/.aws/credentials", home);
        file = path;
    }
    char *text = NULL, why[160];
    size_t len = 0;
    int rc = read_file(file, &text, &len, why, sizeof(why));
    if (rc == -ENOENT && !explicit_profile)
        return 0;
    if (rc)
        return fail(err, errlen, rc, "profile '%s': %s: %s", profile, file, why);
    rc = sb_aws_parse_credentials_file(text, len, profile, &c->keys, why, sizeof(why));
    /* The file is gone from memory at once: it may hold other profiles' secrets. */
    memset(text, 0, len);
    free(text);
    if (rc == -ENOENT && !explicit_profile)
        return 0;
    if (rc)
        return fail(err, errlen, rc, "profile '%s': %s: %s", profile, file, why);
    *found = 1;
    c->host->log(c->inst, SB_LOG_INFO, "credentials from %s, profile %s (key ...%s%s)", file,
                 profile, key_tail(c->keys.access_key_id),
                 c->keys.session_token ? ", with a session token" : "");
    return 0;
}

int sb_aws_creds_new(sb_instance *inst, const sb_host *host, const sb_aws_creds_options *opt,
                     sb_aws_creds **out, char *err, size_t errlen)
{
    static const sb_aws_creds_options none = {0};
    if (!opt)
        opt = &none;
    *out = NULL;
    const char *url =
        opt->metadata_url && *opt->metadata_url ? opt->metadata_url : DEFAULT_METADATA_URL;
    size_t ulen = strlen(url);
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        ulen >= MAX_URL - 64)
        return fail(err, errlen, -EINVAL,
                    "metadata_url: expected an http:// or https:// URL (at most %d characters)",
                    MAX_URL - 64);
    sb_aws_creds *c = calloc(1, sizeof(*c));
    if (!c)
        return fail(err, errlen, -ENOMEM, "out of memory");
    c->inst = inst;
    c->host = host;
    c->metadata_url = strdup(url);
    if (!c->metadata_url) {
        free(c);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    while (ulen > 0 && c->metadata_url[ulen - 1] == '/')
        c->metadata_url[--ulen] = '\0';
    sb_backoff_init(&c->backoff, 1000, 60000);
    int found = 0;
    int rc = take_env(c, err, errlen, &found);
    if (rc == 0 && !found)
        rc = take_file(c, opt, err, errlen, &found);
    if (rc == 0 && !found) {
        if (!SB_HOST_HAS(host, http_request)) {
            rc = fail(err, errlen, -ENOSYS,
                      "credentials: none in the environment or the credentials file, and this "
                      "daemon cannot reach the instance metadata service (no HTTP client)");
        } else {
            c->from_imds = 1;
            host->log(inst, SB_LOG_INFO,
                      "credentials: none in the environment or the credentials file; from the "
                      "instance metadata service at %s on first use",
                      c->metadata_url);
        }
    }
    if (rc) {
        sb_aws_creds_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- Waiters ------------------------------------------------------------------------------ */

static void free_list(creds_waiter *w)
{
    while (w) {
        creds_waiter *next = w->next;
        free(w);
        w = next;
    }
}

/* Call every waiter back. A callback may get() again (joining a new list) or cancel others. */
static void flush_waiters(sb_aws_creds *c, const sb_aws_keys *keys, const char *error)
{
    c->flushing = c->waiters;
    c->waiters = NULL;
    while (c->flushing) {
        creds_waiter *w = c->flushing;
        c->flushing = w->next;
        sb_aws_creds_cb cb = w->cb;
        void *arg = w->arg;
        free(w);
        cb(arg, keys, error);
        if (c->stopped)
            break;
    }
}

static void current_keys(const sb_aws_creds *c, sb_aws_keys *k)
{
    k->access_key_id = c->keys.access_key_id;
    k->secret_access_key = c->keys.secret_access_key;
    k->session_token = c->keys.session_token;
    k->expires_s = c->keys.expires_s;
}

static int have_valid_keys(const sb_aws_creds *c)
{
    return c->keys.access_key_id && sb_aws_keys_valid((int64_t)time(NULL), c->keys.expires_s);
}

/* ---- The metadata service ------------------------------------------------------------- */

static void imds_start(sb_aws_creds *c);

static void on_timer(void *arg)
{
    sb_aws_creds *c = arg;
    c->host->timer_free(c->timer);
    c->timer = NULL;
    if (c->step == IMDS_IDLE)
        imds_start(c);
}

static void arm_timer(sb_aws_creds *c, uint64_t delay_ms)
{
    if (c->timer)
        c->host->timer_free(c->timer);
    c->timer = c->host->timer_new(c->inst, delay_ms, 0, on_timer, c);
    if (!c->timer)
        c->host->log(c->inst, SB_LOG_WARN,
                     "credentials: cannot arm the refresh timer; fetching on the next use");
}

static void imds_failed(sb_aws_creds *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void imds_failed(sb_aws_creds *c, const char *fmt, ...)
{
    char why[512];
    int n = snprintf(why, sizeof(why), "instance metadata service: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + n, sizeof(why) - (size_t)n, fmt, ap);
    va_end(ap);
    c->step = IMDS_IDLE;
    free(c->imds_token);
    c->imds_token = NULL;
    uint64_t delay = sb_backoff_next(&c->backoff, 0);
    if (have_valid_keys(c)) {
        char until[40];
        format_time(c->keys.expires_s, until, sizeof(until));
        c->host->log(c->inst, SB_LOG_WARN,
                     "credentials: refresh failed (%s); the current ones stay valid until %s; "
                     "retrying in %llu ms",
                     why, until, (unsigned long long)delay);
        arm_timer(c, delay);
        sb_aws_keys k;
        current_keys(c, &k);
        flush_waiters(c, &k, NULL);
        return;
    }
    if (!c->waiters)
        c->host->log(c->inst, SB_LOG_WARN, "credentials: %s; retrying in %llu ms", why,
                     (unsigned long long)delay);
    arm_timer(c, delay);
    flush_waiters(c, NULL, why);
}

static int imds_send(sb_aws_creds *c, const char *method, const char *path, const sb_label *hdr,
                     sb_http_cb cb)
{
    char url[MAX_URL + 160];
    snprintf(url, sizeof(url), "%s%s", c->metadata_url, path);
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = method,
                           .url = url,
                           .headers = hdr,
                           .nheaders = 1,
                           .timeout_ms = IMDS_TIMEOUT_MS,
                           .max_body = SB_AWS_MAX_REPLY};
    int rc = c->host->http_request(c->inst, &req, cb, c, &c->req);
    if (rc) {
        c->req = NULL;
        imds_failed(c, "%s %s: cannot start the request (%s)", method, url, strerror(-rc));
    }
    return rc;
}

/* A reply that is not a 2xx (or no reply), as one line; NULL for a 2xx. */
static const char *imds_reply_error(sb_aws_creds *c, const char *method, const char *path,
                                    const sb_http_response *res, char *buf, size_t len)
{
    char url[MAX_URL + 160];
    snprintf(url, sizeof(url), "%s%s", c->metadata_url, path);
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .method = method, .url = url};
    return sb_http_failure(&req, res, buf, len);
}

#define PATH_TOKEN "/latest/api/token"
#define PATH_ROLES "/latest/meta-data/iam/security-credentials/"

static void on_keys_reply(void *arg, const sb_http_response *res)
{
    sb_aws_creds *c = arg;
    c->req = NULL;
    char path[sizeof(PATH_ROLES) + sizeof(c->role)], buf[400];
    snprintf(path, sizeof(path), PATH_ROLES "%s", c->role);
    const char *bad = imds_reply_error(c, "GET", path, res, buf, sizeof(buf));
    if (bad) {
        imds_failed(c, "%s", bad);
        return;
    }
    sb_aws_parsed k;
    char why[200];
    if (sb_aws_parse_imds_credentials(res->body, res->body_len, &k, why, sizeof(why)) != 0) {
        imds_failed(c, "role %s: %s", c->role, why);
        return;
    }
    int64_t now = (int64_t)time(NULL);
    if (!sb_aws_keys_valid(now, k.expires_s)) {
        sb_aws_parsed_clear(&k);
        imds_failed(c, "role %s: the credentials handed out have already expired", c->role);
        return;
    }
    sb_aws_parsed_clear(&c->keys);
    c->keys = k;
    c->step = IMDS_IDLE;
    free(c->imds_token);
    c->imds_token = NULL;
    sb_backoff_reset(&c->backoff);
    char until[40];
    format_time(k.expires_s, until, sizeof(until));
    uint64_t next = sb_aws_refresh_delay_ms(now, k.expires_s);
    c->host->log(c->inst, SB_LOG_INFO,
                 "credentials from the instance metadata service (role %s), key ...%s, expire "
                 "%s; next refresh in %llu s",
                 c->role, key_tail(k.access_key_id), until, (unsigned long long)(next / 1000));
    arm_timer(c, next);
    sb_aws_keys pub;
    current_keys(c, &pub);
    flush_waiters(c, &pub, NULL);
}

static void on_role_reply(void *arg, const sb_http_response *res)
{
    sb_aws_creds *c = arg;
    c->req = NULL;
    char buf[400];
    if (res->error == 0 && res->status == 404) {
        imds_failed(c, "no IAM role is attached to this instance (GET %s" PATH_ROLES ": 404)",
                    c->metadata_url);
        return;
    }
    const char *bad = imds_reply_error(c, "GET", PATH_ROLES, res, buf, sizeof(buf));
    if (bad) {
        imds_failed(c, "%s", bad);
        return;
    }
    char why[160];
    if (sb_aws_parse_imds_role(res->body, res->body_len, c->role, sizeof(c->role), why,
                               sizeof(why)) != 0) {
        imds_failed(c, "%s", why);
        return;
    }
    char path[sizeof(PATH_ROLES) + sizeof(c->role)];
    snprintf(path, sizeof(path), PATH_ROLES "%s", c->role);
    sb_label hdr = {"X-aws-ec2-metadata-token", c->imds_token};
    c->step = IMDS_KEYS;
    imds_send(c, "GET", path, &hdr, on_keys_reply);
}

static void on_token_reply(void *arg, const sb_http_response *res)
{
    sb_aws_creds *c = arg;
    c->req = NULL;
    char buf[400];
    const char *bad = imds_reply_error(c, "PUT", PATH_TOKEN, res, buf, sizeof(buf));
    if (bad) {
        imds_failed(c, "%s", bad);
        return;
    }
    size_t n = res->body_len;
    while (n > 0 && (res->body[n - 1] == '\n' || res->body[n - 1] == '\r'))
        n--;
    int okay = n > 0 && n <= MAX_IMDS_TOKEN;
    for (size_t i = 0; okay && i < n; i++)
        okay = (unsigned char)res->body[i] > 0x20 && (unsigned char)res->body[i] < 0x7f;
    if (!okay) {
        imds_failed(c, "PUT %s" PATH_TOKEN ": the token is empty, too long or not printable",
                    c->metadata_url);
        return;
    }
    free(c->imds_token);
    c->imds_token = malloc(n + 1);
    if (!c->imds_token) {
        imds_failed(c, "out of memory");
        return;
    }
    memcpy(c->imds_token, res->body, n);
    c->imds_token[n] = '\0';
    sb_label hdr = {"X-aws-ec2-metadata-token", c->imds_token};
    c->step = IMDS_ROLE;
    imds_send(c, "GET", PATH_ROLES, &hdr, on_role_reply);
}

/* A fresh session token each time: refreshes are minutes or hours apart. */
static void imds_start(sb_aws_creds *c)
{
    if (c->stopped || c->step != IMDS_IDLE)
        return;
    if (c->timer) {
        c->host->timer_free(c->timer);
        c->timer = NULL;
    }
    sb_label hdr = {"X-aws-ec2-metadata-token-ttl-seconds", IMDS_TOKEN_TTL};
    c->step = IMDS_TOKEN;
    imds_send(c, "PUT", PATH_TOKEN, &hdr, on_token_reply);
}

/* ---- The API ------------------------------------------------------------------------------ */

int sb_aws_creds_get(sb_aws_creds *c, sb_aws_creds_cb cb, void *arg)
{
    if (c->stopped)
        return -ESHUTDOWN;
    if (have_valid_keys(c)) {
        sb_aws_keys k;
        current_keys(c, &k);
        cb(arg, &k, NULL);
        return 0;
    }
    creds_waiter *w = malloc(sizeof(*w));
    if (!w)
        return -ENOMEM;
    w->cb = cb;
    w->arg = arg;
    w->next = c->waiters;
    c->waiters = w;
    /* No keys (none yet, or expired): fetch at once, past any retry timer, since someone waits. */
    if (c->step == IMDS_IDLE)
        imds_start(c);
    return 0;
}

static void cancel_in(creds_waiter **list, sb_aws_creds_cb cb, void *arg)
{
    while (*list) {
        creds_waiter *w = *list;
        if (w->cb == cb && w->arg == arg) {
            *list = w->next;
            free(w);
        } else {
            list = &w->next;
        }
    }
}

void sb_aws_creds_cancel(sb_aws_creds *c, sb_aws_creds_cb cb, void *arg)
{
    cancel_in(&c->waiters, cb, arg);
    cancel_in(&c->flushing, cb, arg);
}

void sb_aws_creds_stop(sb_aws_creds *c)
{
    if (!c)
        return;
    c->stopped = 1;
    if (c->req) {
        c->host->http_cancel(c->inst, c->req);
        c->req = NULL;
    }
    c->step = IMDS_IDLE;
    if (c->timer) {
        c->host->timer_free(c->timer);
        c->timer = NULL;
    }
    free_list(c->waiters);
    c->waiters = NULL;
    free_list(c->flushing);
    c->flushing = NULL;
}

void sb_aws_creds_free(sb_aws_creds *c)
{
    if (!c)
        return;
    sb_aws_creds_stop(c);
    if (c->keys.secret_access_key)
        memset(c->keys.secret_access_key, 0, strlen(c->keys.secret_access_key));
    sb_aws_parsed_clear(&c->keys);
    free(c->imds_token);
    free(c->metadata_url);
    free(c);
}

static int name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 48)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    }
    return 1;
}

int sb_aws_sign(sb_http_request *req, const sb_aws_keys *keys, const char *region,
                const char *service, sb_aws_signing *scratch)
{
    if (!name_ok(region) || !name_ok(service) || req->nheaders > SB_AWS_MAX_HEADERS ||
        !keys->access_key_id || !keys->secret_access_key)
        return -EINVAL;
    snprintf(scratch->sigv4, sizeof(scratch->sigv4), "aws:amz:%s:%s", region, service);
    size_t n = 0;
    for (size_t i = 0; i < req->nheaders; i++)
        scratch->headers[n++] = req->headers[i];
    if (keys->session_token)
        scratch->headers[n++] = (sb_label){"X-Amz-Security-Token", keys->session_token};
    req->headers = scratch->headers;
    req->nheaders = n;
    req->aws_sigv4 = scratch->sigv4;
    req->username = keys->access_key_id;
    req->password = keys->secret_access_key;
    return 0;
}
