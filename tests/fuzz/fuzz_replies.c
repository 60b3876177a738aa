/*
 * fuzz_replies.c - libFuzzer target for every parser of what a remote sends the triggers: the
 * first byte picks the parser (byte % 10) and a variant of its query (byte / 10), the rest is the
 * reply. Parsers:
 * Prometheus' query API (JSON), HAProxy's stats CSV, nginx's stub_status page, RabbitMQ's
 * management API (JSON, exact name and regex), http_json's select paths (pointer, wildcard with
 * labels, count), SQS's XML replies, the AWS shared credentials file and the instance metadata
 * service's replies, Redis URLs and RESP replies, and of what engines send the scalers: Marathon's
 * app with its tasks, its error replies and its deployment lock; EC2's and Auto Scaling's XML
 * replies (libxml2); the Docker Engine API's version, list, inspect, create, pull and error replies.
 * Besides the sanitizers' checks it traps when a
 * documented promise breaks: a success with no value where one is promised, or a value that is
 * not finite where the parser promises one, or an error without its one-line message.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON.
 * Run: tests/fuzz/run.sh BUILD_DIR SECONDS replies
 */
#include <errno.h>
#include <math.h>
#include <regex.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws_parse.h"
#include "docker_api.h"
#include "ec2_parse.h"
#include "haproxy_parse.h"
#include "http_json_parse.h"
#include "marathon_api.h"
#include "nginx_parse.h"
#include "prometheus_parse.h"
#include "rabbitmq_parse.h"
#include "redis_reply.h"
#include "redis_url.h"
#include "sqs_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A broken promise: say which, then stop as a crash does. */
#define BROKEN(what, detail)                                                                       \
    do {                                                                                           \
        fprintf(stderr, "broken promise at line %d: %s [%s]\n", __LINE__, what, detail);          \
        __builtin_trap();                                                                          \
    } while (0)

/* An error must say why, in one line: a remote's bytes never make a second log line. */
static void check_err(int rc, const char *err)
{
    if (rc == 0)
        return;
    if (err[0] == '\0') {
        char code[32];
        snprintf(code, sizeof code, "%d", rc);
        BROKEN("an error without a message", code);
    }
    for (const char *c = err; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            BROKEN("a control character in an error message", err);
}

static void fuzz_prometheus(const char *t, size_t n)
{
    sb_prom_result *r = NULL;
    char err[256] = "";
    int rc = sb_prometheus_parse(t, n, &r, err, sizeof err);
    check_err(rc, err);
    if (rc == 0) {
        if (!r || r->nseries > SB_PROM_MAX_SERIES)
            BROKEN("a documented bound or value", "");
        for (size_t i = 0; i < r->nseries; i++) {
            if (r->series[i].nlabels > SB_MAX_LABELS)
                BROKEN("a documented bound or value", "");
            for (size_t k = 0; k < r->series[i].nlabels; k++)
                if (!r->series[i].labels[k].key || !r->series[i].labels[k].value)
                    BROKEN("a documented bound or value", "");
        }
        sb_prom_result_free(r);
    }
}

static void fuzz_haproxy(const char *t, size_t n, int variant)
{
    double v = 0;
    char err[256] = "";
    int rc = sb_haproxy_parse(t, n, "web", variant ? "s1" : NULL, variant > 1 ? "qcur" : "scur",
                              &v, err, sizeof err);
    check_err(rc, err);
    if (rc == 0 && isnan(v))
        BROKEN("a documented bound or value", "");
}

static void fuzz_nginx(const char *t, size_t n)
{
    sb_nginx_status st;
    char err[256] = "";
    check_err(sb_nginx_parse(t, n, &st, err, sizeof err), err);
}

static void fuzz_rabbitmq(const char *t, size_t n, int variant)
{
    static regex_t re;
    static int re_ready;
    if (!re_ready) {
        if (regcomp(&re, "^jo", REG_EXTENDED | REG_NOSUB) != 0)
            abort();
        re_ready = 1;
    }
    sb_rabbitmq_result r;
    memset(&r, 0, sizeof r);
    char err[256] = "";
    int rc = sb_rabbitmq_parse(t, n, (sb_rabbitmq_measure)(variant % 5),
                               variant & 1 ? "jobs" : NULL, variant & 1 ? NULL : &re, &r, err,
                               sizeof err);
    check_err(rc, err);
    if (rc == 0) {
        for (size_t i = 0; i < r.count; i++)
            if (!r.values[i].queue || !isfinite(r.values[i].value) || r.values[i].value < 0)
                BROKEN("a documented bound or value", "");
        sb_rabbitmq_result_free(&r);
    }
}

static void fuzz_http_json(const char *t, size_t n, int variant)
{
    static const sb_http_json_query queries[] = {
        {.select = "/queues/*/depth", .label = "name"},
        {.select = "/jobs/scheduled"},
        {.select = "/*", .count = 1},
        {.select = ""},
    };
    const sb_http_json_query *q = &queries[variant % 4];
    sb_http_json_readings r;
    memset(&r, 0, sizeof r);
    char err[256] = "";
    int rc = sb_http_json_parse(t, n, q, &r, err, sizeof err);
    check_err(rc, err);
    if (rc == 0) {
        if (r.n > SB_HTTP_JSON_MAX_READINGS)
            BROKEN("a documented bound or value", "");
        for (size_t i = 0; i < r.n; i++)
            if (!isfinite(r.items[i].value))
                BROKEN("a documented bound or value", "");
    }
    sb_http_json_readings_free(&r);
}

static void fuzz_sqs(const char *t, size_t n)
{
    sb_sqs_reply r;
    char err[256] = "";
    int rc = sb_sqs_parse(t, n, &r, err, sizeof err);
    check_err(rc, err);
    if (rc == 0 && r.nattrs > SB_SQS_MAX_ATTRS)
        BROKEN("a documented bound or value", "");
}

static void fuzz_aws(const char *t, size_t n, int variant)
{
    sb_aws_parsed k;
    memset(&k, 0, sizeof k);
    char err[256] = "";
    int rc;
    switch (variant % 4) {
    case 0:
        rc = sb_aws_parse_credentials_file(t, n, "default", &k, err, sizeof err);
        check_err(rc == -ENOENT ? 0 : rc, err);
        break;
    case 1: {
        char role[160];
        rc = sb_aws_parse_imds_role(t, n, role, sizeof role, err, sizeof err);
        check_err(rc, err);
        break;
    }
    case 2:
        rc = sb_aws_parse_imds_credentials(t, n, &k, err, sizeof err);
        check_err(rc, err);
        if (rc == 0 && (!k.access_key_id || !k.secret_access_key))
            BROKEN("a documented bound or value", "");
        break;
    default: {
        char buf[64];
        size_t m = n < sizeof buf - 1 ? n : sizeof buf - 1;
        memcpy(buf, t, m);
        buf[m] = '\0';
        int64_t at;
        (void)sb_aws_parse_time(buf, &at);
        break;
    }
    }
    sb_aws_parsed_clear(&k);
}

static void fuzz_redis(const char *t, size_t n, int variant)
{
    char err[256] = "";
    if (variant % 2 == 0) {
        char buf[1024];
        size_t m = n < sizeof buf - 1 ? n : sizeof buf - 1;
        memcpy(buf, t, m);
        buf[m] = '\0';
        sb_redis_url u;
        int rc = sb_redis_url_parse(buf, &u, err, sizeof err);
        check_err(rc, err);
        if (rc == 0) {
            char desc[600];
            sb_redis_url_describe(&u, desc, sizeof desc);
        }
        return;
    }
    sb_redis_query q = {.kind = (sb_redis_kind)((variant / 2) % 3),
                        .group = (variant & 8) ? "workers" : NULL,
                        .measure = (sb_redis_measure)((variant / 16) % 2)};
    double v = 0;
    int fell_back = 0;
    int rc = sb_redis_reply_parse(t, n, &q, &v, &fell_back, err, sizeof err);
    check_err(rc == -EAGAIN ? 0 : rc, err);
    if (rc == 0 && !isfinite(v))
        BROKEN("a documented bound or value", "");
}

/* A string a parser wrote must end inside its buffer and be one line. */
static void check_line(const char *s, size_t cap, const char *what)
{
    const char *end = memchr(s, '\0', cap);
    if (!end)
        BROKEN("a string without its NUL", what);
    size_t len = (size_t)(end - s);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            BROKEN("a control character in a string from a remote", what);
}

static void fuzz_marathon(const char *t, size_t n, int variant)
{
    char err[256] = "";
    switch (variant % 4) {
    case 0: {
        sb_marathon_app app;
        int rc = sb_marathon_parse_app(t, n, &app, err, sizeof err);
        check_err(rc, err);
        if (rc == 0) {
            if (app.ntasks > SB_MARATHON_TASKS_MAX || app.instances < 0)
                BROKEN("a documented bound or value", "tasks or instances");
            for (size_t i = 0; i < app.ntasks; i++) {
                check_line(app.tasks[i].id, sizeof app.tasks[i].id, "task id");
                check_line(app.tasks[i].address, sizeof app.tasks[i].address, "address");
            }
            size_t idx[4];
            if (sb_marathon_newest(app.tasks, app.ntasks, 4, idx) > 4)
                BROKEN("a documented bound or value", "newest");
            sb_marathon_app_free(&app);
        }
        return;
    }
    case 1: {
        char msg[200];
        sb_marathon_error_message(t, n, msg, sizeof msg);
        check_line(msg, sizeof msg, "error message");
        return;
    }
    case 2: {
        char dep[64];
        if (sb_marathon_is_locked(409, t, n, dep, sizeof dep))
            check_line(dep, sizeof dep, "deployment id");
        return;
    }
    default: {
        char text[128];
        size_t k = n < sizeof text - 1 ? n : sizeof text - 1;
        memcpy(text, t, k);
        text[k] = '\0';
        volatile int64_t when = sb_marathon_parse_time(text);
        (void)when;
        char id[SB_MARATHON_ID_MAX];
        int rc = sb_marathon_app_id(text, id, sizeof id, err, sizeof err);
        check_err(rc, err);
        if (rc == 0)
            check_line(id, sizeof id, "app id");
        return;
    }
    }
}

static void fuzz_ec2(const char *t, size_t n, int variant)
{
    char why[256] = "";
    switch (variant % 7) {
    case 0: {
        char code[SB_EC2_CODE_MAX], msg[SB_EC2_MESSAGE_MAX];
        if (sb_ec2_parse_error(t, n, code, sizeof code, msg, sizeof msg) == 1) {
            check_line(code, sizeof code, "AWS error code");
            check_line(msg, sizeof msg, "AWS error message");
        }
        return;
    }
    case 1: {
        sb_ec2_instance *arr = NULL;
        size_t k = 0;
        int rc = sb_ec2_parse_instances(t, n, "scalebus:scaler", "web", &arr, &k, why, sizeof why);
        check_err(rc, why);
        if (rc == 0 && k > SB_EC2_MAX_MEMBERS)
            BROKEN("a documented bound or value", "instances");
        for (size_t i = 0; rc == 0 && i < k; i++) {
            check_line(arr[i].id, sizeof arr[i].id, "instance id");
            check_line(arr[i].private_ip, sizeof arr[i].private_ip, "private ip");
        }
        free(arr);
        return;
    }
    case 2: {
        char id[SB_EC2_ID_MAX], token[SB_EC2_TOKEN_MAX];
        int rc = sb_ec2_parse_run(t, n, id, sizeof id, token, sizeof token, why, sizeof why);
        check_err(rc, why);
        if (rc == 0)
            check_line(id, sizeof id, "instance id");
        return;
    }
    case 3:
        check_err(sb_ec2_parse_terminate(t, n, "i-0123456789abcdef0", why, sizeof why), why);
        return;
    case 4: {
        sb_asg_group g;
        memset(&g, 0, sizeof g);
        int rc = sb_asg_parse_group(t, n, "web", &g, why, sizeof why);
        check_err(rc, why);
        for (size_t i = 0; rc == 0 && i < g.ninstances; i++)
            check_line(g.instances[i].id, sizeof g.instances[i].id, "asg member id");
        sb_asg_group_clear(&g);
        return;
    }
    case 5:
        check_err(sb_ec2_parse_ok(t, n, "SetDesiredCapacityResponse", why, sizeof why), why);
        return;
    default: {
        char text[128];
        size_t k = n < sizeof text - 1 ? n : sizeof text - 1;
        memcpy(text, t, k);
        text[k] = '\0';
        volatile int64_t when = sb_ec2_parse_time(text);
        (void)when;
        return;
    }
    }
}

/* Docker's parsers take NUL-terminated bodies (the host's replies are). */
static void fuzz_docker(const char *t, size_t n, int variant)
{
    char *body = malloc(n + 1);
    if (!body)
        return;
    memcpy(body, t, n);
    body[n] = '\0';
    char err[256] = "";
    switch (variant % 6) {
    case 0: {
        char v[16];
        int rc = sb_docker_parse_version(body, v, sizeof v, err, sizeof err);
        check_err(rc, err);
        if (rc == 0)
            check_line(v, sizeof v, "API version");
        break;
    }
    case 1: {
        sb_docker_listed *arr = NULL;
        size_t k = 0;
        int rc = sb_docker_parse_list(body, "web", &arr, &k, err, sizeof err);
        check_err(rc, err);
        for (size_t i = 0; rc == 0 && i < k; i++) {
            check_line(arr[i].id, sizeof arr[i].id, "container id");
            check_line(arr[i].name, sizeof arr[i].name, "container name");
        }
        free(arr);
        break;
    }
    case 2:
    case 3: {
        sb_docker_where where = {.port = 8080, .network = variant % 6 == 2 ? NULL : "web"};
        sb_docker_inspected in;
        int rc = sb_docker_parse_inspect(body, &where, 1795790000, &in, err, sizeof err);
        check_err(rc, err);
        if (rc == 0) {
            check_line(in.address, sizeof in.address, "address");
            check_line(in.status, sizeof in.status, "status");
            check_line(in.health_last, sizeof in.health_last, "health check output");
            if (in.state < SB_MEMBER_STARTING || in.state > SB_MEMBER_FAILED)
                BROKEN("a documented bound or value", "member state");
        }
        break;
    }
    case 4: {
        char id[SB_DOCKER_ID_MAX], msg[200];
        int rc = sb_docker_parse_created(body, id, sizeof id, err, sizeof err);
        check_err(rc, err);
        if (rc == 0)
            check_line(id, sizeof id, "created id");
        if (sb_docker_pull_error(body, msg, sizeof msg))
            check_line(msg, sizeof msg, "pull error");
        break;
    }
    default: {
        char msg[200];
        sb_docker_error_message(409, body, msg, sizeof msg);
        check_line(msg, sizeof msg, "error message");
        (void)sb_docker_classify(500, body);
        int64_t ns;
        volatile int64_t when = sb_docker_parse_time(body, &ns);
        (void)when;
        break;
    }
    }
    free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int pick = data[0] % 10, variant = data[0] / 10;
    /* A copy of exactly the reply's bytes: parsers must not read past len. */
    size_t n = size - 1;
    char *t = malloc(n ? n : 1);
    if (!t)
        return 0;
    memcpy(t, data + 1, n);
    switch (pick) {
    case 0: fuzz_prometheus(t, n); break;
    case 1: fuzz_haproxy(t, n, variant % 3); break;
    case 2: fuzz_nginx(t, n); break;
    case 3: fuzz_rabbitmq(t, n, variant); break;
    case 4: fuzz_http_json(t, n, variant); break;
    case 5: fuzz_sqs(t, n); break;
    case 6: fuzz_aws(t, n, variant); break;
    /* 9: Marathon for variants 0-3, EC2 and Auto Scaling for 4-10, Docker for the rest. */
    case 9:
        if (variant < 4)
            fuzz_marathon(t, n, variant);
        else if (variant < 11)
            fuzz_ec2(t, n, variant - 4);
        else
            fuzz_docker(t, n, variant - 11);
        break;
    default: fuzz_redis(t, n, variant); break;
    }
    free(t);
    return 0;
}
