/*
 * test_aws.c - tests for the AWS library (plugins/aws: the credentials file parser, the metadata
 * service's replies, times and the refresh schedule, the credentials object's asynchronous path
 * against an in-process metadata service, SigV4 request set-up) and for the sqs trigger's XML
 * reply parser and its option errors.
 *
 * The in-process metadata service answers host->http_request() as IMDSv2 does (token PUT, role
 * listing, role credentials); the end-to-end test (tests/test_sqs.sh) runs the same path through
 * the daemon's real HTTP client against tests/aws/imds_double.py.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <scalebus/aws.h>
#include <scalebus/plugin.h>

#include "aws_parse.h"
#include "fake_host.h"
#include "sqs_parse.h"

static void no_aws_env(void)
{
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/scalebus-test/credentials", 1);
}

/* ---- the shared credentials file ---------------------------------------------------------- */

static const char *creds_file = "# keys\n"
                                "[default]\n"
                                "aws_access_key_id = AKIADEFAULT0001\n"
                                "aws_secret_access_key=default-secret\n"
                                "\n"
                                "; another\n"
                                "[ ci ]\n"
                                "  aws_access_key_id\t=  AKIACI000000002  \r\n"
                                "aws_secret_access_key = ci/secret+key\n"
                                "aws_security_token = old-name-token\n"
                                "region = eu-west-1\n"
                                "[nosecret]\n"
                                "aws_access_key_id = AKIANOSECRET\n";

START_TEST(file_default_and_named_profiles)
{
    sb_aws_parsed k;
    char err[200];
    ck_assert_int_eq(sb_aws_parse_credentials_file(creds_file, strlen(creds_file), "default", &k,
                                                   err, sizeof(err)),
                     0);
    ck_assert_str_eq(k.access_key_id, "AKIADEFAULT0001");
    ck_assert_str_eq(k.secret_access_key, "default-secret");
    ck_assert_ptr_null(k.session_token);
    ck_assert_int_eq(k.expires_s, 0);
    sb_aws_parsed_clear(&k);
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(creds_file, strlen(creds_file), "ci", &k, err, sizeof(err)),
        0);
    ck_assert_str_eq(k.access_key_id, "AKIACI000000002");
    ck_assert_str_eq(k.secret_access_key, "ci/secret+key");
    ck_assert_str_eq(k.session_token, "old-name-token");
    sb_aws_parsed_clear(&k);
}
END_TEST

START_TEST(file_errors)
{
    sb_aws_parsed k;
    char err[200];
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(creds_file, strlen(creds_file), "prod", &k, err, sizeof(err)),
        -ENOENT);
    ck_assert_str_eq(err, "no [prod] section");
    ck_assert_int_eq(sb_aws_parse_credentials_file(creds_file, strlen(creds_file), "nosecret", &k,
                                                   err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "section [nosecret] has no aws_secret_access_key");
    const char *bad = "[default]\naws_access_key_id = A\nthis line is wrong\n";
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(bad, strlen(bad), "default", &k, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "line 3: expected 'key = value' or '[section]'");
    const char *twice = "[default]\naws_access_key_id=A\n[default]\naws_secret_access_key=B\n";
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(twice, strlen(twice), "default", &k, err, sizeof(err)),
        -EINVAL);
    ck_assert_str_eq(err, "line 3: section [default] appears twice");
    /* A secret with a space inside: refused, and the message never shows the secret. */
    const char *spaced = "[default]\naws_access_key_id=A\naws_secret_access_key=top secret\n";
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(spaced, strlen(spaced), "default", &k, err, sizeof(err)),
        -EINVAL);
    ck_assert_ptr_null(strstr(err, "top"));
    ck_assert_ptr_nonnull(strstr(err, "aws_secret_access_key"));
    const char nul[] = "[default]\naws_access_key_id=A\0B\n";
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(nul, sizeof(nul) - 1, "default", &k, err, sizeof(err)),
        -EINVAL);
    const char *noclose = "[default\n";
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(noclose, strlen(noclose), "default", &k, err, sizeof(err)),
        -EINVAL);
    /* A value longer than any key is refused. */
    char big[2000];
    int n = snprintf(big, sizeof(big), "[default]\naws_secret_access_key=");
    memset(big + n, 'x', 400);
    big[n + 400] = '\0';
    ck_assert_int_eq(
        sb_aws_parse_credentials_file(big, strlen(big), "default", &k, err, sizeof(err)), -EINVAL);
}
END_TEST

/* ---- times, validity, refresh ------------------------------------------------------------ */

START_TEST(iso_times)
{
    int64_t t;
    ck_assert_int_eq(sb_aws_parse_time("1970-01-01T00:00:00Z", &t), 0);
    ck_assert_int_eq(t, 0);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27T18:00:00Z", &t), 0);
    ck_assert_int_eq(t, 1795802400);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27T18:00:00.123Z", &t), 0);
    ck_assert_int_eq(t, 1795802400);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27T19:30:00+01:30", &t), 0);
    ck_assert_int_eq(t, 1795802400);
    ck_assert_int_eq(sb_aws_parse_time("2024-02-29T00:00:00Z", &t), 0);
    ck_assert_int_eq(t, 1709164800);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27 18:00:00Z", &t), -EINVAL);
    ck_assert_int_eq(sb_aws_parse_time("2026-13-27T18:00:00Z", &t), -EINVAL);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27T18:00:00", &t), -EINVAL);
    ck_assert_int_eq(sb_aws_parse_time("2026-11-27T18:00:00Zjunk", &t), -EINVAL);
    ck_assert_int_eq(sb_aws_parse_time("", &t), -EINVAL);
    ck_assert_int_eq(sb_aws_parse_time(NULL, &t), -EINVAL);
}
END_TEST

START_TEST(validity_and_refresh)
{
    int64_t now = 1795802400;
    ck_assert(sb_aws_keys_valid(now, 0)); /* no expiry: environment, file */
    ck_assert(sb_aws_keys_valid(now, now + 6));
    ck_assert(!sb_aws_keys_valid(now, now + 5));
    ck_assert(!sb_aws_keys_valid(now, now - 1));
    /* Six hours: 5 minutes before they expire. */
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now + 6 * 3600), (6 * 3600 - 300) * 1000ULL);
    /* 11 minutes: still 5 minutes before. */
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now + 660), 360000);
    /* Short lives: half-way. */
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now + 600), 300000);
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now + 20), 10000);
    /* Expired or about to: at least a second, never a busy loop. */
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now + 1), 1000);
    ck_assert_uint_eq(sb_aws_refresh_delay_ms(now, now - 100), 1000);
}
END_TEST

/* ---- the metadata service's replies --------------------------------------------------------- */

START_TEST(imds_replies)
{
    char role[160], err[200];
    ck_assert_int_eq(sb_aws_parse_imds_role("my-role\n", 8, role, sizeof(role), err, sizeof(err)),
                     0);
    ck_assert_str_eq(role, "my-role");
    ck_assert_int_eq(sb_aws_parse_imds_role("", 0, role, sizeof(role), err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "no IAM role is attached to this instance");
    ck_assert_int_eq(sb_aws_parse_imds_role("../x", 4, role, sizeof(role), err, sizeof(err)),
                     -EINVAL);
    ck_assert_int_eq(sb_aws_parse_imds_role("a?b", 3, role, sizeof(role), err, sizeof(err)),
                     -EINVAL);

    sb_aws_parsed k;
    const char *good = "{\"Code\":\"Success\",\"LastUpdated\":\"2026-11-27T12:00:00Z\","
                       "\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAEXAMPLE1234\","
                       "\"SecretAccessKey\":\"s3cr3t\",\"Token\":\"tok\","
                       "\"Expiration\":\"2026-11-27T18:00:00Z\"}";
    ck_assert_int_eq(sb_aws_parse_imds_credentials(good, strlen(good), &k, err, sizeof(err)), 0);
    ck_assert_str_eq(k.access_key_id, "ASIAEXAMPLE1234");
    ck_assert_str_eq(k.secret_access_key, "s3cr3t");
    ck_assert_str_eq(k.session_token, "tok");
    ck_assert_int_eq(k.expires_s, 1795802400);
    sb_aws_parsed_clear(&k);

    const char *bad_code = "{\"Code\":\"AssumeRoleUnauthorizedAccess\"}";
    ck_assert_int_eq(
        sb_aws_parse_imds_credentials(bad_code, strlen(bad_code), &k, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "Code is AssumeRoleUnauthorizedAccess, not Success");
    /* Found by fuzz_replies: what the service sent stays one line in the message. */
    const char *tab_code = "{\"Code\":\"Su\\tx\\n2026 forged\"}";
    ck_assert_int_eq(
        sb_aws_parse_imds_credentials(tab_code, strlen(tab_code), &k, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "Code is Su?x?2026 forged, not Success");
    const char *no_token = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s3cr3t\"}";
    ck_assert_int_eq(
        sb_aws_parse_imds_credentials(no_token, strlen(no_token), &k, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "no Token in the reply");
    ck_assert_ptr_null(k.access_key_id); /* nothing half-filled is left */
    const char *num = "{\"AccessKeyId\":5}";
    ck_assert_int_eq(sb_aws_parse_imds_credentials(num, strlen(num), &k, err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "AccessKeyId is not a string");
    const char *bad_time = "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s3cr3t\","
                           "\"Token\":\"t\",\"Expiration\":\"tomorrow\"}";
    ck_assert_int_eq(
        sb_aws_parse_imds_credentials(bad_time, strlen(bad_time), &k, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_null(strstr(err, "s3cr3t"));
    ck_assert_int_eq(sb_aws_parse_imds_credentials("[1,2", 4, &k, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "the reply is not JSON");
    ck_assert_int_eq(sb_aws_parse_imds_credentials("[]", 2, &k, err, sizeof(err)), -EINVAL);
}
END_TEST

/* ---- the credentials object, asynchronously, against an in-process metadata service -------- */

typedef struct fake_imds {
    int pending;
    char method[8], url[256], token_hdr[64];
    int ttl_hdr;
    sb_http_cb cb;
    void *arg;
    int lifetime_s; /* of the keys handed out */
    int fail;       /* 1: answer 500 */
    int fetches;    /* credentials handed out */
    int cancels;
    char secret[64]; /* the last secret handed out */
} fake_imds;

static fake_imds imds;

static int imds_request(sb_instance *inst, const sb_http_request *req, sb_http_cb cb, void *arg,
                        sb_http **out)
{
    ck_assert(!imds.pending); /* one at a time */
    imds.pending = 1;
    snprintf(imds.method, sizeof(imds.method), "%s", req->method ? req->method : "GET");
    snprintf(imds.url, sizeof(imds.url), "%s", req->url);
    imds.token_hdr[0] = '\0';
    imds.ttl_hdr = 0;
    for (size_t i = 0; i < req->nheaders; i++) {
        if (strcmp(req->headers[i].key, "X-aws-ec2-metadata-token") == 0)
            snprintf(imds.token_hdr, sizeof(imds.token_hdr), "%s", req->headers[i].value);
        if (strcmp(req->headers[i].key, "X-aws-ec2-metadata-token-ttl-seconds") == 0)
            imds.ttl_hdr = atoi(req->headers[i].value);
    }
    ck_assert_uint_gt(req->timeout_ms, 0);
    imds.cb = cb;
    imds.arg = arg;
    if (out)
        *out = (sb_http *)&imds;
    return 0;
}

static void imds_cancel(sb_instance *inst, sb_http *h)
{
    ck_assert_ptr_eq(h, &imds);
    ck_assert(imds.pending);
    imds.pending = 0;
    imds.cancels++;
}

static void imds_reply(long status, const char *body)
{
    sb_http_response res = {.size = sizeof(res),
                            .status = status,
                            .body = body,
                            .body_len = strlen(body),
                            .error_text = ""};
    imds.pending = 0;
    imds.cb(imds.arg, &res);
}

/* Answer the request in flight as IMDSv2 does. */
static void imds_answer(void)
{
    ck_assert(imds.pending);
    if (imds.fail) {
        imds_reply(500, "Internal Server Error");
        return;
    }
    if (strcmp(imds.url, "http://imds.test/latest/api/token") == 0) {
        ck_assert_str_eq(imds.method, "PUT");
        ck_assert_int_gt(imds.ttl_hdr, 0);
        imds_reply(200, "TOKEN-1");
        return;
    }
    ck_assert_str_eq(imds.method, "GET");
    if (strcmp(imds.token_hdr, "TOKEN-1") != 0) {
        imds_reply(401, "");
        return;
    }
    if (strcmp(imds.url, "http://imds.test/latest/meta-data/iam/security-credentials/") == 0) {
        imds_reply(200, "role-a");
        return;
    }
    ck_assert_str_eq(imds.url, "http://imds.test/latest/meta-data/iam/security-credentials/role-a");
    imds.fetches++;
    time_t exp = time(NULL) + imds.lifetime_s;
    struct tm tm;
    gmtime_r(&exp, &tm);
    char when[32], body[512];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(imds.secret, sizeof(imds.secret), "imds-secret-%d", imds.fetches);
    snprintf(body, sizeof(body),
             "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAFAKE%04d\","
             "\"SecretAccessKey\":\"%s\",\"Token\":\"session-%d\",\"Expiration\":\"%s\"}",
             imds.fetches, imds.secret, imds.fetches, when);
    imds_reply(200, body);
}

typedef struct got_keys {
    int calls;
    char id[64], error[512];
} got_keys;

static void on_keys(void *arg, const sb_aws_keys *k, const char *error)
{
    got_keys *g = arg;
    g->calls++;
    if (k) {
        snprintf(g->id, sizeof(g->id), "%s", k->access_key_id);
        g->error[0] = '\0';
    } else {
        g->id[0] = '\0';
        snprintf(g->error, sizeof(g->error), "%s", error);
    }
}

static int log_has(const fake_host *fh, const char *text)
{
    for (size_t i = 0; i < fh->nlog; i++)
        if (strstr(fh->logs[i].text, text))
            return 1;
    return 0;
}

typedef struct imds_env {
    fake_host *fh;
    sb_host host; /* the fake host's table, HTTP answered by the in-process service */
    sb_aws_creds *creds;
} imds_env;

static void imds_env_open(imds_env *e, int lifetime_s)
{
    no_aws_env();
    memset(&imds, 0, sizeof(imds));
    imds.lifetime_s = lifetime_s;
    e->fh = fake_host_new("queue");
    e->host = e->fh->host;
    e->host.http_request = imds_request;
    e->host.http_cancel = imds_cancel;
    sb_aws_creds_options o = {.metadata_url = "http://imds.test/"};
    char err[200] = "";
    ck_assert_msg(
        sb_aws_creds_new(fake_host_instance(e->fh), &e->host, &o, &e->creds, err, sizeof(err)) == 0,
        "%s", err);
    ck_assert(
        log_has(e->fh, "from the instance metadata service at http://imds.test on first use"));
}

static void imds_env_close(imds_env *e)
{
    sb_aws_creds_free(e->creds);
    ck_assert_int_eq(e->fh->timers_live, 0);
    ck_assert(!imds.pending);
    fake_host_free(e->fh);
}

static void assert_no_secret_logged(const fake_host *fh)
{
    for (size_t i = 0; i < fh->nlog; i++) {
        ck_assert_msg(!strstr(fh->logs[i].text, "imds-secret-"), "a secret in: %s",
                      fh->logs[i].text);
        ck_assert_msg(!strstr(fh->logs[i].text, "session-"), "a token in: %s", fh->logs[i].text);
    }
}

START_TEST(imds_fetch_then_immediate)
{
    imds_env e;
    imds_env_open(&e, 3600);
    ck_assert(!imds.pending); /* nothing fetched before it is needed */
    got_keys a = {0}, b = {0};
    ck_assert_int_eq(sb_aws_creds_get(e.creds, on_keys, &a), 0);
    ck_assert_int_eq(sb_aws_creds_get(e.creds, on_keys, &b), 0); /* joins the same fetch */
    ck_assert_int_eq(a.calls, 0);
    imds_answer(); /* token */
    imds_answer(); /* role */
    ck_assert_int_eq(a.calls, 0);
    imds_answer(); /* keys */
    ck_assert_int_eq(a.calls, 1);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_str_eq(a.id, "ASIAFAKE0001");
    ck_assert_int_eq(imds.fetches, 1);
    ck_assert(log_has(e.fh, "credentials from the instance metadata service (role role-a), key "
                            "...0001, expire "));
    assert_no_secret_logged(e.fh);
    /* Fresh keys: handed over inside the call, no request. */
    got_keys c = {0};
    ck_assert_int_eq(sb_aws_creds_get(e.creds, on_keys, &c), 0);
    ck_assert_int_eq(c.calls, 1);
    ck_assert(!imds.pending);
    /* The refresh is armed 5 minutes before they expire. */
    ck_assert_ptr_nonnull(e.fh->last_timer);
    ck_assert_uint_ge(e.fh->last_timer->timeout_ms, (3600 - 300 - 2) * 1000ULL);
    ck_assert_uint_le(e.fh->last_timer->timeout_ms, (3600 - 300) * 1000ULL);
    imds_env_close(&e);
}
END_TEST

START_TEST(imds_refresh_failure_keeps_valid_keys_then_recovers)
{
    imds_env e;
    imds_env_open(&e, 20); /* a short life: refreshed half-way, after 10 s */
    got_keys a = {0};
    sb_aws_creds_get(e.creds, on_keys, &a);
    imds_answer();
    imds_answer();
    imds_answer();
    ck_assert_str_eq(a.id, "ASIAFAKE0001");
    ck_assert_uint_eq(e.fh->last_timer->timeout_ms, 10000);
    /* The refresh fails: the old keys stay in use, and it is retried after a back-off. */
    imds.fail = 1;
    sb_timer *t = e.fh->last_timer;
    t->cb(t->arg);
    ck_assert(imds.pending);
    imds_answer();
    ck_assert(log_has(e.fh, "credentials: refresh failed (instance metadata service: PUT "
                            "http://imds.test/latest/api/token: HTTP 500: Internal Server Error);"
                            " the current ones stay valid until "));
    ck_assert_ptr_nonnull(e.fh->last_timer);
    ck_assert_uint_ge(e.fh->last_timer->timeout_ms, 500);
    ck_assert_uint_le(e.fh->last_timer->timeout_ms, 1000);
    got_keys b = {0};
    sb_aws_creds_get(e.creds, on_keys, &b);
    ck_assert_int_eq(b.calls, 1);
    ck_assert_str_eq(b.id, "ASIAFAKE0001");
    /* Failing again doubles the back-off (with jitter in [d/2, d]). */
    t = e.fh->last_timer;
    t->cb(t->arg);
    imds_answer();
    ck_assert_uint_ge(e.fh->last_timer->timeout_ms, 1000);
    ck_assert_uint_le(e.fh->last_timer->timeout_ms, 2000);
    /* The service is back: new keys. */
    imds.fail = 0;
    t = e.fh->last_timer;
    t->cb(t->arg);
    imds_answer();
    imds_answer();
    imds_answer();
    got_keys c = {0};
    sb_aws_creds_get(e.creds, on_keys, &c);
    ck_assert_str_eq(c.id, "ASIAFAKE0002");
    ck_assert_int_eq(imds.fetches, 2);
    assert_no_secret_logged(e.fh);
    imds_env_close(&e);
}
END_TEST

START_TEST(imds_failure_without_keys_reaches_waiters)
{
    imds_env e;
    imds_env_open(&e, 3600);
    imds.fail = 1;
    got_keys a = {0};
    sb_aws_creds_get(e.creds, on_keys, &a);
    imds_answer();
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.error, "instance metadata service: PUT http://imds.test/latest/api/token: "
                              "HTTP 500: Internal Server Error");
    /* A new get() does not wait for the retry timer: someone needs keys now. */
    imds.fail = 0;
    got_keys b = {0};
    sb_aws_creds_get(e.creds, on_keys, &b);
    ck_assert(imds.pending);
    imds_answer();
    imds_answer();
    imds_answer();
    ck_assert_str_eq(b.id, "ASIAFAKE0001");
    imds_env_close(&e);
}
END_TEST

START_TEST(imds_expired_keys_are_refused)
{
    imds_env e;
    imds_env_open(&e, 3); /* within the 5 s margin: useless */
    got_keys a = {0};
    sb_aws_creds_get(e.creds, on_keys, &a);
    imds_answer();
    imds_answer();
    imds_answer();
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.error, "instance metadata service: role role-a: the credentials handed "
                              "out have already expired");
    imds_env_close(&e);
}
END_TEST

START_TEST(imds_cancel_and_stop)
{
    imds_env e;
    imds_env_open(&e, 3600);
    got_keys a = {0}, b = {0};
    sb_aws_creds_get(e.creds, on_keys, &a);
    sb_aws_creds_get(e.creds, on_keys, &b);
    sb_aws_creds_cancel(e.creds, on_keys, &a);
    imds_answer();
    imds_answer();
    imds_answer();
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(b.calls, 1);
    /* Stopped with a refresh in flight: the request is cancelled, the timer freed. */
    sb_timer *t = e.fh->last_timer;
    t->cb(t->arg);
    ck_assert(imds.pending);
    sb_aws_creds_get(e.creds, on_keys, &a); /* valid keys still: immediate */
    ck_assert_int_eq(a.calls, 1);
    sb_aws_creds_stop(e.creds);
    ck_assert_int_eq(imds.cancels, 1);
    ck_assert(!imds.pending);
    ck_assert_int_eq(sb_aws_creds_get(e.creds, on_keys, &a), -ESHUTDOWN);
    imds_env_close(&e);
}
END_TEST

START_TEST(imds_wrong_role_listing_and_401)
{
    imds_env e;
    imds_env_open(&e, 3600);
    got_keys a = {0};
    sb_aws_creds_get(e.creds, on_keys, &a);
    imds_reply(200, "TOKEN-WRONG"); /* a token the service then refuses */
    imds_answer();
    ck_assert_int_eq(a.calls, 1);
    ck_assert_str_eq(a.error, "instance metadata service: GET "
                              "http://imds.test/latest/meta-data/iam/security-credentials/: "
                              "HTTP 401");
    got_keys b = {0};
    sb_aws_creds_get(e.creds, on_keys, &b);
    imds_answer();
    imds_reply(404, "");
    ck_assert_str_eq(b.error, "instance metadata service: no IAM role is attached to this "
                              "instance (GET http://imds.test/latest/meta-data/iam/"
                              "security-credentials/: 404)");
    imds_env_close(&e);
}
END_TEST

/* ---- the environment and the file ------------------------------------------------------- */

static int new_creds(fake_host *fh, const char *profile, sb_aws_creds **c, char *err, size_t errlen)
{
    sb_aws_creds_options o = {.profile = profile, .metadata_url = "http://imds.test"};
    return sb_aws_creds_new(fake_host_instance(fh), &fh->host, &o, c, err, errlen);
}

START_TEST(env_and_file_sources)
{
    no_aws_env();
    fake_host *fh = fake_host_new("queue");
    sb_aws_creds *c = NULL;
    char err[300] = "";
    setenv("AWS_ACCESS_KEY_ID", "AKIAENVIRONMENT9", 1);
    ck_assert_int_eq(new_creds(fh, NULL, &c, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "credentials: AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not");
    setenv("AWS_SECRET_ACCESS_KEY", "env-secret", 1);
    ck_assert_int_eq(new_creds(fh, NULL, &c, err, sizeof(err)), 0);
    ck_assert(log_has(fh, "credentials from the environment (key ...ENT9)"));
    got_keys g = {0};
    sb_aws_creds_get(c, on_keys, &g);
    ck_assert_int_eq(g.calls, 1);
    ck_assert_str_eq(g.id, "AKIAENVIRONMENT9");
    sb_aws_creds_free(c);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");

    char dir[] = "/tmp/sb-test-aws.XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof(path), "%s/credentials", dir);
    FILE *f = fopen(path, "w");
    fputs(creds_file, f);
    fclose(f);
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    ck_assert_int_eq(new_creds(fh, "ci", &c, err, sizeof(err)), 0);
    ck_assert(log_has(fh, ", profile ci (key ...0002, with a session token)"));
    sb_aws_creds_get(c, on_keys, &g);
    ck_assert_str_eq(g.id, "AKIACI000000002");
    sb_aws_creds_free(c);
    setenv("AWS_PROFILE", "default", 1);
    ck_assert_int_eq(new_creds(fh, NULL, &c, err, sizeof(err)), 0);
    sb_aws_creds_get(c, on_keys, &g);
    ck_assert_str_eq(g.id, "AKIADEFAULT0001");
    sb_aws_creds_free(c);
    /* A profile asked for by name must be there. */
    ck_assert_int_eq(new_creds(fh, "prod", &c, err, sizeof(err)), -ENOENT);
    char want[400];
    snprintf(want, sizeof(want), "profile 'prod': %s: no [prod] section", path);
    ck_assert_str_eq(err, want);
    ck_assert_int_eq(new_creds(fh, "nosecret", &c, err, sizeof(err)), -EINVAL);
    /* No such file and no profile asked for: the metadata service. */
    unsetenv("AWS_PROFILE");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/x", 1);
    ck_assert_int_eq(new_creds(fh, NULL, &c, err, sizeof(err)), 0);
    sb_aws_creds_free(c);
    ck_assert_int_eq(new_creds(fh, "ci", &c, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "profile 'ci': /nonexistent/x: No such file or directory");
    for (size_t i = 0; i < fh->nlog; i++)
        ck_assert_ptr_null(strstr(fh->logs[i].text, "secret"));
    unlink(path);
    rmdir(dir);
    fake_host_free(fh);
}
END_TEST

START_TEST(metadata_url_checked)
{
    no_aws_env();
    fake_host *fh = fake_host_new("queue");
    sb_aws_creds *c = NULL;
    char err[300];
    sb_aws_creds_options o = {.metadata_url = "ftp://169.254.169.254"};
    ck_assert_int_eq(sb_aws_creds_new(fake_host_instance(fh), &fh->host, &o, &c, err, sizeof(err)),
                     -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "metadata_url: expected an http:// or https:// URL"));
    fake_host_free(fh);
}
END_TEST

START_TEST(sign_sets_up_the_request)
{
    sb_label mine[] = {{"Content-Type", "application/x-www-form-urlencoded"}};
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = "https://sqs.eu-west-1.amazonaws.com/1/q",
                           .headers = mine, .nheaders = 1};
    sb_aws_keys k = {"AKID", "SECRET", "TOKEN", 0};
    sb_aws_signing sig;
    ck_assert_int_eq(sb_aws_sign(&req, &k, "eu-west-1", "sqs", &sig), 0);
    ck_assert_str_eq(req.aws_sigv4, "aws:amz:eu-west-1:sqs");
    ck_assert_str_eq(req.username, "AKID");
    ck_assert_str_eq(req.password, "SECRET");
    ck_assert_uint_eq(req.nheaders, 2);
    ck_assert_str_eq(req.headers[0].key, "Content-Type");
    ck_assert_str_eq(req.headers[1].key, "X-Amz-Security-Token");
    ck_assert_str_eq(req.headers[1].value, "TOKEN");
    sb_http_request plain = {SB_HTTP_REQUEST_INIT, .url = "https://x/"};
    sb_aws_keys lk = {"AKID", "SECRET", NULL, 0};
    ck_assert_int_eq(sb_aws_sign(&plain, &lk, "us-east-1", "ec2", &sig), 0);
    ck_assert_uint_eq(plain.nheaders, 0);
    ck_assert_int_eq(sb_aws_sign(&plain, &lk, "US:EAST", "ec2", &sig), -EINVAL);
    ck_assert_int_eq(sb_aws_sign(&plain, &lk, "us-east-1", "", &sig), -EINVAL);
}
END_TEST

/* ---- the sqs trigger's XML replies ------------------------------------------------------ */

static const char *sqs_ok =
    "<?xml version=\"1.0\"?>\n"
    "<GetQueueAttributesResponse xmlns=\"http://queue.amazonaws.com/doc/2012-11-05/\">\n"
    "  <GetQueueAttributesResult>\n"
    "    <Attribute><Name>ApproximateNumberOfMessages</Name><Value>12</Value></Attribute>\n"
    "    <!-- a comment -->\n"
    "    <Attribute>\n"
    "      <Name>ApproximateNumberOfMessagesNotVisible</Name>\n"
    "      <Value>3</Value>\n"
    "    </Attribute>\n"
    "  </GetQueueAttributesResult>\n"
    "  <ResponseMetadata><RequestId>b5293cb5-d306-4a17-9048-b263635abe42</RequestId>"
    "</ResponseMetadata>\n"
    "</GetQueueAttributesResponse>\n";

START_TEST(sqs_attributes)
{
    sb_sqs_reply r;
    char err[200];
    ck_assert_int_eq(sb_sqs_parse(sqs_ok, strlen(sqs_ok), &r, err, sizeof(err)), 0);
    ck_assert(!r.is_error);
    ck_assert_uint_eq(r.nattrs, 2);
    ck_assert_str_eq(sb_sqs_attr_value(&r, "ApproximateNumberOfMessages"), "12");
    ck_assert_str_eq(sb_sqs_attr_value(&r, "ApproximateNumberOfMessagesNotVisible"), "3");
    ck_assert_ptr_null(sb_sqs_attr_value(&r, "ApproximateNumberOfMessagesDelayed"));
    /* Prefixed names, an empty result. */
    const char *pre = "<q:GetQueueAttributesResponse xmlns:q='x'><q:GetQueueAttributesResult/>"
                      "</q:GetQueueAttributesResponse>";
    ck_assert_int_eq(sb_sqs_parse(pre, strlen(pre), &r, err, sizeof(err)), 0);
    ck_assert_uint_eq(r.nattrs, 0);
}
END_TEST

START_TEST(sqs_errors)
{
    sb_sqs_reply r;
    char err[200];
    const char *e = "<?xml version=\"1.0\"?><ErrorResponse xmlns=\"http://queue.amazonaws.com/doc/"
                    "2012-11-05/\"><Error><Type>Sender</Type><Code>AWS.SimpleQueueService."
                    "NonExistentQueue</Code><Message>The specified queue does not exist &amp; "
                    "&lt;never&gt; did &#x263A; &#65;</Message><Detail/></Error><RequestId>x"
                    "</RequestId></ErrorResponse>";
    ck_assert_int_eq(sb_sqs_parse(e, strlen(e), &r, err, sizeof(err)), 0);
    ck_assert(r.is_error);
    ck_assert_str_eq(r.code, "AWS.SimpleQueueService.NonExistentQueue");
    ck_assert_str_eq(r.message, "The specified queue does not exist & <never> did \xe2\x98\xba A");
    const char *nocode = "<ErrorResponse><Error><Message>m</Message></Error></ErrorResponse>";
    ck_assert_int_eq(sb_sqs_parse(nocode, strlen(nocode), &r, err, sizeof(err)), -EINVAL);
    ck_assert_str_eq(err, "an ErrorResponse without <Error><Code>");
}
END_TEST

static void sqs_bad(const char *text, const char *want)
{
    sb_sqs_reply r;
    char err[200];
    ck_assert_int_eq(sb_sqs_parse(text, strlen(text), &r, err, sizeof(err)), -EINVAL);
    ck_assert_msg(strstr(err, want), "'%s' does not say '%s'", err, want);
    ck_assert_uint_eq(r.nattrs, 0);
}

START_TEST(sqs_malformed)
{
    sqs_bad("", "no XML element in the reply");
    sqs_bad("<html><body>oops</body></html>",
            "<html> is neither a GetQueueAttributesResponse nor an ErrorResponse");
    sqs_bad("<GetQueueAttributesResponse><GetQueueAttributesResult><Attribute><Name>A</Name>"
            "<Val",
            "unterminated");
    sqs_bad("<GetQueueAttributesResponse><A></B></GetQueueAttributesResponse>", "</B> closes <A>");
    sqs_bad("<GetQueueAttributesResponse><Attribute><Name>A</Name></Attribute>"
            "</GetQueueAttributesResponse>",
            "an <Attribute> without <Name> or <Value>");
    sqs_bad("<!DOCTYPE x [<!ENTITY a 'b'>]><GetQueueAttributesResponse/>",
            "a DOCTYPE or CDATA section (not accepted)");
    sqs_bad("<GetQueueAttributesResponse><Attribute><Name>&a;</Name></Attribute>"
            "</GetQueueAttributesResponse>",
            "an unknown entity");
    sqs_bad("<GetQueueAttributesResponse>", "the reply ends inside <GetQueueAttributesResponse>");
    sqs_bad("<GetQueueAttributesResponse/><GetQueueAttributesResponse/>", "a second root element");
    sqs_bad("<GetQueueAttributesResponse/>junk", "text after the root element");
    sqs_bad("<GetQueueAttributesResponse><Attribute><Name>&#0;</Name>",
            "a bad character reference");
    /* Deep nesting, many attributes, long names: bounded. */
    char deep[4096] = "<GetQueueAttributesResponse>";
    for (int i = 0; i < 40; i++)
        strcat(deep, "<a>");
    sqs_bad(deep, "elements nested deeper than 32");
    static char many[16384];
    strcpy(many, "<GetQueueAttributesResponse>");
    for (int i = 0; i < 33; i++)
        strcat(many, "<Attribute><Name>N</Name><Value>1</Value></Attribute>");
    strcat(many, "</GetQueueAttributesResponse>");
    sqs_bad(many, "more than 32 attributes");
    char longv[1024] = "<GetQueueAttributesResponse><Attribute><Name>";
    memset(longv + strlen(longv), 'x', 300);
    strcat(longv, "</Name><Value>1</Value></Attribute></GetQueueAttributesResponse>");
    sqs_bad(longv, "<Name> is longer than 127 bytes");
    /* Over the size bound. */
    sb_sqs_reply r;
    char err[200];
    ck_assert_int_eq(sb_sqs_parse(sqs_ok, SB_SQS_MAX_REPLY + 1, &r, err, sizeof(err)), -EINVAL);
    /* A NUL inside. */
    const char nul[] = "<GetQueueAttributesResponse>\0</GetQueueAttributesResponse>";
    ck_assert_int_eq(sb_sqs_parse(nul, sizeof(nul) - 1, &r, err, sizeof(err)), -EINVAL);
}
END_TEST

/* ---- the sqs trigger's option errors ---------------------------------------------------- */

static int sqs_create(const char *opts, char *err, size_t errlen)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d = test_plugin_load_if_built("sqs", SB_KIND_TRIGGER, &handle);
    if (!d)
        return 0;
    int rc = test_plugin_try_options(d, opts, err, errlen);
    test_plugin_unload(handle);
    return rc;
}

START_TEST(sqs_options)
{
    no_aws_env();
    setenv("AWS_ACCESS_KEY_ID", "AKIAOPTIONS", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s", 1);
    char err[300] = "";
    ck_assert_int_eq(
        sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/123456789012/jobs\", "
                   "include: [not_visible, delayed]",
                   err, sizeof(err)),
        0);
    ck_assert_int_eq(sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/123/jobs\", "
                                "include: [visible]",
                                err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "include: unknown count 'visible' (expected not_visible, delayed)");
    ck_assert_int_eq(sqs_create("queue_url: \"http://127.0.0.1:9/123/jobs\"", err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "region: required (queue_url's host '127.0.0.1:9' is not "
                          "sqs.REGION.amazonaws.com)");
    ck_assert_int_eq(
        sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/jobs\"", err, sizeof(err)),
        -EINVAL);
    ck_assert_str_eq(err, "queue_url: expected the path /ACCOUNT/NAME, got '/jobs'");
    ck_assert_int_eq(
        sqs_create("queue_url: \"http://sqs.eu-west-1.amazonaws.com/1/jobs\"", err, sizeof(err)),
        -EINVAL);
    ck_assert_int_eq(sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/jobs\", "
                                "region: \"EU WEST\"",
                                err, sizeof(err)),
                     -EINVAL);
    ck_assert_str_eq(err, "region: 'EU WEST' is not a region name (like eu-west-1)");
    ck_assert_int_eq(sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/jobs\", "
                                "profile: nope",
                                err, sizeof(err)),
                     0); /* the environment comes first: the profile is not read */
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    ck_assert_int_eq(sqs_create("queue_url: \"https://sqs.eu-west-1.amazonaws.com/1/jobs\", "
                                "profile: nope",
                                err, sizeof(err)),
                     -ENOENT);
    ck_assert_str_eq(err, "profile 'nope': /nonexistent/scalebus-test/credentials: No such file "
                          "or directory");
}
END_TEST

static Suite *aws_suite(void)
{
    Suite *s = suite_create("aws");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, file_default_and_named_profiles);
    tcase_add_test(tc, file_errors);
    tcase_add_test(tc, iso_times);
    tcase_add_test(tc, validity_and_refresh);
    tcase_add_test(tc, imds_replies);
    suite_add_tcase(s, tc);
    tc = tcase_create("creds");
    tcase_add_test(tc, imds_fetch_then_immediate);
    tcase_add_test(tc, imds_refresh_failure_keeps_valid_keys_then_recovers);
    tcase_add_test(tc, imds_failure_without_keys_reaches_waiters);
    tcase_add_test(tc, imds_expired_keys_are_refused);
    tcase_add_test(tc, imds_cancel_and_stop);
    tcase_add_test(tc, imds_wrong_role_listing_and_401);
    tcase_add_test(tc, env_and_file_sources);
    tcase_add_test(tc, metadata_url_checked);
    tcase_add_test(tc, sign_sets_up_the_request);
    suite_add_tcase(s, tc);
    tc = tcase_create("sqs");
    tcase_add_test(tc, sqs_attributes);
    tcase_add_test(tc, sqs_errors);
    tcase_add_test(tc, sqs_malformed);
    tcase_add_test(tc, sqs_options);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(aws_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
