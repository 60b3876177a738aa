/*
 * ec2.c - the ec2 scaler: an EC2 Auto Scaling group's desired capacity (mode: asg), or plain EC2
 * instances from a launch template (mode: instances), on the fleet contract (scalebus/scaler.h).
 * Every call is an AWS Query API POST (form body, Version 2011-01-01 for Auto Scaling, 2016-11-15
 * for EC2) signed with SigV4 by the host's HTTP client, with credentials from scalebus/aws.h.
 *
 *   asg        list       DescribeAutoScalingGroups (the group's DesiredCapacity, Min/MaxSize
 *                         and its instances by lifecycle state)
 *              set_count  SetDesiredCapacity (HonorCooldown from `honor_cooldown`)
 *   instances  list       DescribeInstances filtered by tag:scalebus:scaler=<id> and the states
 *                         pending, running, stopping, stopped
 *              start_one  RunInstances from the launch template, MinCount=MaxCount=1, the tag,
 *                         and a ClientToken kept across the retries of one start (idempotent)
 *              stop_one   TerminateInstances of an instance listed with the tag (never another)
 *
 * Replies are read by ec2_parse.c. AWS's throttling and "group busy" codes are busy; others are
 * failed with AWS's code and message. Keys from the metadata service that AWS calls expired or
 * invalid are fetched again.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ec2_parse.h"
#include "scalebus/aws.h"
#include "scalebus/plugin.h"
#include "scalebus/poll.h"
#include "scalebus/scaler.h"

enum {
    OPT_MODE,
    OPT_GROUP,
    OPT_HONOR_COOLDOWN,
    OPT_LAUNCH_TEMPLATE,
    OPT_LAUNCH_TEMPLATE_VERSION,
    OPT_PORT,
    OPT_REGION,
    OPT_ENDPOINT,
    OPT_PROFILE,
    OPT_METADATA_URL,
    OPT_TLS_VERIFY,
    OPT_TIMEOUT,
    OPT_RECONCILE_EVERY /* SB_FLEET_OPTIONS from here */
};

static const sb_option_spec ec2_options[] = {
    {"mode", SB_OPT_STRING, NULL, 1,
     "asg (an Auto Scaling group's desired capacity) or instances (EC2 instances from a launch "
     "template)"},
    {"group", SB_OPT_STRING, NULL, 0, "mode asg: the Auto Scaling group's name"},
    {"honor_cooldown", SB_OPT_BOOL, "false", 0,
     "mode asg: SetDesiredCapacity waits out the group's cooldown (HonorCooldown)"},
    {"launch_template", SB_OPT_STRING, NULL, 0,
     "mode instances: the launch template, by id (lt-...) or by name"},
    {"launch_template_version", SB_OPT_STRING, "$Default", 0,
     "mode instances: the template's version: a number, $Default or $Latest"},
    {"port", SB_OPT_INT, NULL, 0,
     "mode instances: the port instances serve on (the address is private-ip:port)"},
    {"region", SB_OPT_STRING, NULL, 0,
     "the AWS region (default: $AWS_REGION, $AWS_DEFAULT_REGION)"},
    {"endpoint", SB_OPT_STRING, NULL, 0,
     "send requests here instead of https://ec2.REGION.amazonaws.com/ (or autoscaling.)"},
    {"profile", SB_OPT_STRING, NULL, 0,
     "the shared credentials file's profile (default: $AWS_PROFILE, else default)"},
    {"metadata_url", SB_OPT_STRING, "http://169.254.169.254", 0,
     "the instance metadata service, for credentials from an instance role"},
    {"tls_verify", SB_OPT_BOOL, "true", 0, "verify the endpoint's TLS certificate"},
    {"timeout", SB_OPT_DURATION, "10s", 0, "how long one AWS call may take"},
    SB_FLEET_OPTIONS("keep"),
    {NULL, 0, NULL, 0, NULL}};

#define TAG_KEY "scalebus:scaler"
#define EC2_VERSION "2016-11-15"
#define ASG_VERSION "2011-01-01"
#define MAX_FORM 2048

typedef enum ec2_mode { MODE_ASG = 1, MODE_INSTANCES = 2 } ec2_mode;
typedef enum ec2_op { OP_NONE, OP_LIST, OP_START, OP_STOP, OP_SET } ec2_op;

typedef struct ec2 {
    sb_fleet *fleet; /* first: sb_fleet_scaler_on_event */
    sb_instance *inst;
    const sb_host *host;
    const char *id;
    ec2_mode mode;
    const char *group;
    int honor_cooldown;
    const char *template_field; /* "LaunchTemplateId" or "LaunchTemplateName" */
    const char *template;
    const char *template_version;
    int port;
    char region[64];
    char url[512];
    const char *service; /* "ec2" or "autoscaling" */
    int insecure;
    uint64_t timeout_ms;
    sb_aws_creds *creds;
    sb_aws_creds_options creds_opt;
    int keys_expire; /* the keys last used expire (metadata service keys) */

    /* The call in flight. */
    ec2_op op;
    const char *action; /* its Action, for messages */
    char form[MAX_FORM];
    sb_http *req;
    char target[SB_EC2_ID_MAX]; /* stop: the instance */
    int64_t want;               /* set_count: the count */

    /* asg: the group's bounds from the last describe (-1: none yet). */
    int64_t min_size, max_size;
    /* instances: the ids listed with our tag last time; the client token of a start not yet
     * seen to succeed (reused by its retries). */
    char (*tagged)[SB_EC2_ID_MAX];
    size_t ntagged;
    char token[SB_EC2_TOKEN_MAX];
    /* Instances RunInstances returned that DescribeInstances has not shown yet (EC2 is
     * eventually consistent): counted as starting for a while, so no second one is started. */
    struct made {
        char id[SB_EC2_ID_MAX];
        int64_t at;
    } made[8];
    size_t nmade;
} ec2;

#define MADE_GRACE_S 120

/* ---- form encoding ------------------------------------------------------------------------ */

/* Append &name=value (value percent-encoded as SigV4 wants: unreserved characters kept). */
static void form_add(char *form, const char *name, const char *value)
{
    size_t k = strlen(form);
    k += (size_t)snprintf(form + k, MAX_FORM - k, "%s%s=", k ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)value; *p && k + 4 < MAX_FORM; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-_.~", *p))
            form[k++] = (char)*p;
        else
            k += (size_t)snprintf(form + k, MAX_FORM - k, "%%%02X", *p);
    }
    form[k < MAX_FORM ? k : MAX_FORM - 1] = '\0';
}

static void form_asg_describe(const ec2 *e, char *form)
{
    form[0] = '\0';
    form_add(form, "Action", "DescribeAutoScalingGroups");
    form_add(form, "AutoScalingGroupNames.member.1", e->group);
    form_add(form, "Version", ASG_VERSION);
}

static void form_asg_set(const ec2 *e, int64_t n, char *form)
{
    char count[24];
    snprintf(count, sizeof count, "%lld", (long long)n);
    form[0] = '\0';
    form_add(form, "Action", "SetDesiredCapacity");
    form_add(form, "AutoScalingGroupName", e->group);
    form_add(form, "DesiredCapacity", count);
    form_add(form, "HonorCooldown", e->honor_cooldown ? "true" : "false");
    form_add(form, "Version", ASG_VERSION);
}

static void form_describe_instances(const ec2 *e, char *form)
{
    static const char *const states[] = {"pending", "running", "stopping", "stopped"};
    form[0] = '\0';
    form_add(form, "Action", "DescribeInstances");
    form_add(form, "Filter.1.Name", "tag:" TAG_KEY);
    form_add(form, "Filter.1.Value.1", e->id);
    form_add(form, "Filter.2.Name", "instance-state-name");
    for (int i = 0; i < 4; i++) {
        char name[32];
        snprintf(name, sizeof name, "Filter.2.Value.%d", i + 1);
        form_add(form, name, states[i]);
    }
    form_add(form, "Version", EC2_VERSION);
}

static void form_run(const ec2 *e, const char *token, char *form)
{
    char name[64];
    form[0] = '\0';
    form_add(form, "Action", "RunInstances");
    snprintf(name, sizeof name, "LaunchTemplate.%s", e->template_field);
    form_add(form, name, e->template);
    form_add(form, "LaunchTemplate.Version", e->template_version);
    form_add(form, "MinCount", "1");
    form_add(form, "MaxCount", "1");
    form_add(form, "ClientToken", token);
    form_add(form, "TagSpecification.1.ResourceType", "instance");
    form_add(form, "TagSpecification.1.Tag.1.Key", TAG_KEY);
    form_add(form, "TagSpecification.1.Tag.1.Value", e->id);
    form_add(form, "Version", EC2_VERSION);
}

static void form_terminate(const char *id, char *form)
{
    form[0] = '\0';
    form_add(form, "Action", "TerminateInstances");
    form_add(form, "InstanceId.1", id);
    form_add(form, "Version", EC2_VERSION);
}

/* ---- answers ------------------------------------------------------------------------------ */

static void op_end(ec2 *e, sb_action_result why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the call in flight, whichever it is. */
static void op_end(ec2 *e, sb_action_result why, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    ec2_op op = e->op;
    e->op = OP_NONE;
    e->req = NULL;
    if (op == OP_LIST)
        sb_fleet_list_failed(e->fleet, why, "%s", msg);
    else if (op != OP_NONE)
        sb_fleet_action_done(e->fleet, why, "%s", msg);
}

static void on_reply(void *arg, const sb_http_response *res);

/* Metadata keys AWS calls expired or invalid: a fresh credentials object fetches new ones at
 * once on the next call (the old one would hand out the same keys until their Expiration). */
static void renew_creds(ec2 *e)
{
    sb_aws_creds *fresh = NULL;
    char err[256];
    if (sb_aws_creds_new(e->inst, e->host, &e->creds_opt, &fresh, err, sizeof err) != 0) {
        e->host->log(e->inst, SB_LOG_WARN, "credentials: cannot start again: %s", err);
        return;
    }
    sb_aws_creds_free(e->creds);
    e->creds = fresh;
    e->keys_expire = 0;
}

static void on_keys(void *arg, const sb_aws_keys *keys, const char *error)
{
    ec2 *e = arg;
    if (!keys)
        return op_end(e, SB_ACTION_FAILED, "%s: credentials: %s", e->action, error);
    e->keys_expire = keys->expires_s != 0;
    sb_label hdr[] = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"}};
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = "POST",
                           .url = e->url,
                           .headers = hdr,
                           .nheaders = 1,
                           .body = e->form,
                           .body_len = strlen(e->form),
                           .timeout_ms = e->timeout_ms,
                           .max_body = SB_EC2_MAX_REPLY,
                           .insecure = e->insecure};
    sb_aws_signing sig;
    int rc = sb_aws_sign(&req, keys, e->region, e->service, &sig);
    if (rc == 0)
        rc = e->host->http_request(e->inst, &req, on_reply, e, &e->req);
    if (rc)
        op_end(e, SB_ACTION_FAILED, "%s: cannot start the request: %s", e->action, strerror(-rc));
}

/* Send the form built for op. */
static void send_call(ec2 *e, ec2_op op, const char *action)
{
    e->op = op;
    e->action = action;
    e->req = NULL;
    int rc = sb_aws_creds_get(e->creds, on_keys, e);
    if (rc)
        op_end(e, SB_ACTION_FAILED, "%s: credentials: %s", action, strerror(-rc));
}

/* A reply that is an AWS error, or no reply at all, ends the call here (1); 0: go on. */
static int handle_failure(ec2 *e, const sb_http_response *res)
{
    sb_http_request shown = {SB_HTTP_REQUEST_INIT, .method = "POST", .url = e->url};
    char buf[400];
    if (res->error) {
        op_end(e, SB_ACTION_FAILED, "%s: cannot reach AWS: %s", e->action,
               sb_http_failure(&shown, res, buf, sizeof buf));
        return 1;
    }
    char code[SB_EC2_CODE_MAX], msg[SB_EC2_MESSAGE_MAX];
    int is_error =
        sb_ec2_parse_error(res->body, res->body_len, code, sizeof code, msg, sizeof msg) == 1;
    if (is_error) {
        int busy = sb_ec2_code_is_busy(code);
        int stale = sb_ec2_code_is_stale_keys(code) && e->keys_expire;
        if (e->op == OP_START && !busy && res->status >= 400 && res->status < 500)
            e->token[0] = '\0'; /* a definite refusal: nothing was made, the next start is new */
        op_end(e, busy ? SB_ACTION_BUSY : SB_ACTION_FAILED, "%s: %s: %s (HTTP %ld%s)", e->action,
               code, msg[0] ? msg : "(no message)", res->status,
               sb_ec2_code_is_throttling(code) ? "; backing off"
               : stale                         ? "; fetching new credentials"
                                               : "");
        if (stale)
            renew_creds(e);
        return 1;
    }
    if (res->status < 200 || res->status >= 300) {
        op_end(e, SB_ACTION_FAILED, "%s: %s", e->action,
               sb_http_failure(&shown, res, buf, sizeof buf));
        return 1;
    }
    return 0;
}

/* ---- asg ---------------------------------------------------------------------------------- */

static void asg_listed(ec2 *e, const sb_http_response *res)
{
    sb_asg_group g;
    char why[200];
    if (sb_asg_parse_group(res->body, res->body_len, e->group, &g, why, sizeof why) != 0)
        return op_end(e, SB_ACTION_FAILED,
                      "DescribeAutoScalingGroups: a malformed reply (HTTP %ld, %zu bytes): %s",
                      res->status, res->body_len, why);
    if (!g.found)
        return op_end(e, SB_ACTION_FAILED,
                      "DescribeAutoScalingGroups: no Auto Scaling group named '%s' in %s", e->group,
                      e->region);
    e->min_size = g.min_size;
    e->max_size = g.max_size;
    sb_member *ms = g.ninstances ? calloc(g.ninstances, sizeof *ms) : NULL;
    if (g.ninstances && !ms) {
        sb_asg_group_clear(&g);
        return op_end(e, SB_ACTION_FAILED, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < g.ninstances; i++) {
        sb_member_state st = sb_asg_instance_state(g.instances[i].lifecycle, g.instances[i].health);
        if (!st)
            continue;
        ms[n].id = g.instances[i].id;
        ms[n].state = st;
        n++;
    }
    e->op = OP_NONE;
    e->req = NULL;
    sb_fleet_listed_count(e->fleet, ms, n, g.desired);
    free(ms);
    sb_asg_group_clear(&g);
}

static void ec2_set_count(void *self, sb_fleet *f, int64_t n)
{
    ec2 *e = self;
    if (e->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    if (e->min_size >= 0 && (n < e->min_size || n > e->max_size))
        return sb_fleet_action_done(f, SB_ACTION_FAILED,
                                    "desired %lld is outside the group's MinSize %lld / MaxSize "
                                    "%lld (set the scaler's min and max inside them)",
                                    (long long)n, (long long)e->min_size, (long long)e->max_size);
    e->want = n;
    form_asg_set(e, n, e->form);
    send_call(e, OP_SET, "SetDesiredCapacity");
}

/* ---- instances ---------------------------------------------------------------------------- */

typedef struct ordered {
    sb_member m;
    size_t index;
} ordered;

/* Oldest first, so the fleet's "later in the list is newer" agrees with launchTime. */
static int by_launch(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    if (x->m.started_at != y->m.started_at)
        return (x->m.started_at > y->m.started_at) - (x->m.started_at < y->m.started_at);
    return (x->index > y->index) - (x->index < y->index);
}

static void instances_listed(ec2 *e, const sb_http_response *res)
{
    sb_ec2_instance *is = NULL;
    size_t count = 0;
    char why[200];
    if (sb_ec2_parse_instances(res->body, res->body_len, TAG_KEY, e->id, &is, &count, why,
                               sizeof why) != 0)
        return op_end(e, SB_ACTION_FAILED,
                      "DescribeInstances: a malformed reply (HTTP %ld, %zu bytes): %s", res->status,
                      res->body_len, why);
    /* What RunInstances made and the list does not show yet, within the grace. */
    int64_t now = (int64_t)time(NULL);
    size_t keep = 0;
    for (size_t k = 0; k < e->nmade; k++) {
        int shown = 0;
        for (size_t i = 0; i < count && !shown; i++)
            shown = strcmp(is[i].id, e->made[k].id) == 0;
        if (!shown && now - e->made[k].at < MADE_GRACE_S)
            e->made[keep++] = e->made[k];
    }
    e->nmade = keep;
    size_t room = count + e->nmade;
    ordered *o = room ? calloc(room, sizeof *o) : NULL;
    sb_member *ms = room ? calloc(room, sizeof *ms) : NULL;
    char(*addr)[64] = room ? calloc(room, sizeof *addr) : NULL;
    char(*tagged)[SB_EC2_ID_MAX] = room ? calloc(room, sizeof *tagged) : NULL;
    if (room && (!o || !ms || !addr || !tagged)) {
        free(is);
        free(o);
        free(ms);
        free(addr);
        free(tagged);
        return op_end(e, SB_ACTION_FAILED, "out of memory");
    }
    size_t n = 0, nt = 0;
    for (size_t i = 0; i < count; i++) {
        /* The filter asked for our tag; an instance without it is never ours, whatever came. */
        if (!is[i].tagged)
            continue;
        if (e->token[0] && strcmp(is[i].client_token, e->token) == 0)
            e->token[0] = '\0'; /* that start did make its instance */
        sb_member_state st = sb_ec2_instance_state(is[i].state);
        if (!st)
            continue;
        memcpy(tagged[nt++], is[i].id, SB_EC2_ID_MAX);
        if (is[i].private_ip[0] && e->port)
            snprintf(addr[n], sizeof addr[n], "%s:%d", is[i].private_ip, e->port);
        else if (is[i].private_ip[0])
            snprintf(addr[n], sizeof addr[n], "%s", is[i].private_ip);
        o[n].m.id = is[i].id;
        o[n].m.address = addr[n][0] ? addr[n] : NULL;
        o[n].m.state = st;
        o[n].m.started_at = is[i].launch_time;
        o[n].index = i;
        n++;
    }
    for (size_t k = 0; k < e->nmade; k++) {
        memcpy(tagged[nt++], e->made[k].id, SB_EC2_ID_MAX); /* made with our tag */
        o[n].m.id = e->made[k].id;
        o[n].m.state = SB_MEMBER_STARTING;
        o[n].m.started_at = e->made[k].at;
        o[n].index = count + k;
        n++;
    }
    if (n)
        qsort(o, n, sizeof *o, by_launch);
    for (size_t i = 0; i < n; i++)
        ms[i] = o[i].m;
    free(e->tagged);
    e->tagged = tagged;
    e->ntagged = nt;
    e->op = OP_NONE;
    e->req = NULL;
    sb_fleet_listed(e->fleet, ms, n);
    free(ms);
    free(o);
    free(addr);
    free(is);
}

/* A token unique to one start: 32 random hex digits. */
static void new_token(char *out, size_t len)
{
    unsigned char r[16];
    FILE *u = fopen("/dev/urandom", "rb");
    size_t got = u ? fread(r, 1, sizeof r, u) : 0;
    if (u)
        fclose(u);
    if (got != sizeof r) {
        uint64_t x = (uint64_t)time(NULL) ^ ((uint64_t)clock() << 20) ^ (uint64_t)(uintptr_t)out;
        for (size_t i = 0; i < sizeof r; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            r[i] = (unsigned char)x;
        }
    }
    size_t k = (size_t)snprintf(out, len, "sb-");
    for (size_t i = 0; i < sizeof r && k + 3 <= len; i++)
        k += (size_t)snprintf(out + k, len - k, "%02x", r[i]);
}

static void ec2_start_one(void *self, sb_fleet *f)
{
    ec2 *e = self;
    if (e->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    if (!e->token[0]) /* else: the retry of a start whose outcome is unknown: the same token */
        new_token(e->token, sizeof e->token);
    form_run(e, e->token, e->form);
    send_call(e, OP_START, "RunInstances");
}

static int is_tagged(const ec2 *e, const char *id)
{
    for (size_t i = 0; i < e->ntagged; i++)
        if (strcmp(e->tagged[i], id) == 0)
            return 1;
    return 0;
}

static void ec2_stop_one(void *self, sb_fleet *f, const char *id)
{
    ec2 *e = self;
    if (e->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    if (!is_tagged(e, id)) /* never terminate what the last list did not show with our tag */
        return sb_fleet_action_done(f, SB_ACTION_FAILED,
                                    "%s was not listed with the tag %s=%s: never terminated", id,
                                    TAG_KEY, e->id);
    snprintf(e->target, sizeof e->target, "%s", id);
    form_terminate(id, e->form);
    send_call(e, OP_STOP, "TerminateInstances");
}

/* ---- the reply ---------------------------------------------------------------------------- */

static void on_reply(void *arg, const sb_http_response *res)
{
    ec2 *e = arg;
    e->req = NULL;
    if (e->op == OP_STOP && res->error == 0) {
        char code[SB_EC2_CODE_MAX], msg[SB_EC2_MESSAGE_MAX];
        if (sb_ec2_parse_error(res->body, res->body_len, code, sizeof code, msg, sizeof msg) == 1 &&
            strcmp(code, "InvalidInstanceID.NotFound") == 0) {
            e->op = OP_NONE; /* gone already */
            return sb_fleet_action_done(e->fleet, SB_ACTION_DONE, "%s is gone already", e->target);
        }
    }
    if (handle_failure(e, res))
        return;
    char why[200], id[SB_EC2_ID_MAX], token[SB_EC2_TOKEN_MAX];
    switch (e->op) {
    case OP_LIST:
        if (e->mode == MODE_ASG)
            asg_listed(e, res);
        else
            instances_listed(e, res);
        return;
    case OP_SET:
        if (sb_ec2_parse_ok(res->body, res->body_len, "SetDesiredCapacityResponse", why,
                            sizeof why) != 0)
            return op_end(e, SB_ACTION_FAILED,
                          "SetDesiredCapacity: a malformed reply (HTTP %ld, %zu bytes): %s",
                          res->status, res->body_len, why);
        e->op = OP_NONE;
        return sb_fleet_action_done(e->fleet, SB_ACTION_DONE, "done");
    case OP_START:
        if (sb_ec2_parse_run(res->body, res->body_len, id, sizeof id, token, sizeof token, why,
                             sizeof why) != 0)
            return op_end(e, SB_ACTION_FAILED,
                          "RunInstances: a malformed reply (HTTP %ld, %zu bytes): %s", res->status,
                          res->body_len, why);
        e->host->log(e->inst, SB_LOG_INFO, "RunInstances: %s (ClientToken %s)", id, e->token);
        e->token[0] = '\0';
        if (e->nmade == sizeof e->made / sizeof e->made[0])
            memmove(e->made, e->made + 1, sizeof e->made - sizeof e->made[0]);
        else
            e->nmade++;
        snprintf(e->made[e->nmade - 1].id, SB_EC2_ID_MAX, "%s", id);
        e->made[e->nmade - 1].at = (int64_t)time(NULL);
        e->op = OP_NONE;
        return sb_fleet_action_done(e->fleet, SB_ACTION_DONE, "done");
    case OP_STOP:
        if (sb_ec2_parse_terminate(res->body, res->body_len, e->target, why, sizeof why) != 0)
            return op_end(e, SB_ACTION_FAILED,
                          "TerminateInstances: a malformed reply (HTTP %ld, %zu bytes): %s",
                          res->status, res->body_len, why);
        e->op = OP_NONE;
        return sb_fleet_action_done(e->fleet, SB_ACTION_DONE, "done");
    case OP_NONE:
        return;
    }
}

/* ---- the fleet's calls ----------------------------------------------------------------------- */

static void ec2_list(void *self, sb_fleet *f)
{
    ec2 *e = self;
    if (e->op != OP_NONE)
        return sb_fleet_list_failed(f, SB_ACTION_BUSY, "a call is still in flight");
    if (e->mode == MODE_ASG) {
        form_asg_describe(e, e->form);
        send_call(e, OP_LIST, "DescribeAutoScalingGroups");
    } else {
        form_describe_instances(e, e->form);
        send_call(e, OP_LIST, "DescribeInstances");
    }
}

static void ec2_describe(void *self, sb_fleet_call call, const char *id, int64_t n, char *buf,
                         size_t len)
{
    ec2 *e = self;
    char form[MAX_FORM];
    if (call == SB_CALL_SET_COUNT)
        form_asg_set(e, n, form);
    else if (call == SB_CALL_START) {
        /* The token is picked here, so the log shows the one start_one sends; --dry-run shows a
         * placeholder (it would be new at each attempt: one line per count, not per attempt). */
        if (!e->token[0] && e->op == OP_NONE && !e->host->dry_run(e->inst))
            new_token(e->token, sizeof e->token);
        form_run(e, e->token[0] ? e->token : "UNIQUE-PER-START", form);
    } else
        form_terminate(id ? id : "", form);
    snprintf(buf, len, "POST %s %s", e->url, form);
}

static void ec2_cancel(void *self)
{
    ec2 *e = self;
    if (e->req)
        e->host->http_cancel(e->inst, e->req);
    e->req = NULL;
    sb_aws_creds_cancel(e->creds, on_keys, e);
    e->op = OP_NONE;
}

/* on_stop: stop has finished: no more credentials fetches. */
static void ec2_stopped(void *self)
{
    ec2 *e = self;
    sb_aws_creds_stop(e->creds);
    e->host->stopped(e->inst);
}

static const sb_fleet_ops asg_ops = {
    .list = ec2_list,
    .set_count = ec2_set_count,
    .describe = ec2_describe,
    .cancel = ec2_cancel,
    .stopped = ec2_stopped,
};

static const sb_fleet_ops instances_ops = {
    .list = ec2_list,
    .start_one = ec2_start_one,
    .stop_one = ec2_stop_one,
    .describe = ec2_describe,
    .cancel = ec2_cancel,
    .stopped = ec2_stopped,
};

/* ---- options ------------------------------------------------------------------------------- */

static int plain(const char *s, size_t max, const char *extra)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr(extra, *s)))
            return 0;
    return 1;
}

static int bad(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int read_options(ec2 *e, const sb_value *v, char *err, size_t errlen)
{
    const char *mode = v[OPT_MODE].str;
    if (strcmp(mode, "asg") == 0)
        e->mode = MODE_ASG;
    else if (strcmp(mode, "instances") == 0)
        e->mode = MODE_INSTANCES;
    else
        return bad(err, errlen, "mode: asg or instances, got '%s'", mode);
    e->service = e->mode == MODE_ASG ? "autoscaling" : "ec2";
    if (e->mode == MODE_ASG) {
        if (!v[OPT_GROUP].is_set || !v[OPT_GROUP].str[0])
            return bad(err, errlen,
                       "group: required with mode asg (the Auto Scaling group's name)");
        /* Group names are 1-255 characters without control characters. */
        const char *g = v[OPT_GROUP].str;
        if (strlen(g) > 255)
            return bad(err, errlen, "group: longer than 255 characters");
        for (const char *p = g; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f)
                return bad(err, errlen, "group: a control character in the name");
        e->group = g;
        if (v[OPT_LAUNCH_TEMPLATE].is_set)
            return bad(err, errlen,
                       "launch_template: only with mode instances (the group has "
                       "its own)");
        e->honor_cooldown = v[OPT_HONOR_COOLDOWN].is_set && v[OPT_HONOR_COOLDOWN].integer;
    } else {
        if (v[OPT_GROUP].is_set)
            return bad(err, errlen, "group: only with mode asg");
        if (!v[OPT_LAUNCH_TEMPLATE].is_set || !v[OPT_LAUNCH_TEMPLATE].str[0])
            return bad(err, errlen,
                       "launch_template: required with mode instances (an id lt-... or a name)");
        const char *t = v[OPT_LAUNCH_TEMPLATE].str;
        int is_id = strncmp(t, "lt-", 3) == 0 && plain(t + 3, 40, "");
        if (!is_id && !plain(t, 128, "()./_-"))
            return bad(err, errlen,
                       "launch_template: '%s' is neither an id (lt-...) nor a template name "
                       "(3-128 of A-Za-z0-9 ( ) . / _ -)",
                       t);
        e->template = t;
        e->template_field = is_id ? "LaunchTemplateId" : "LaunchTemplateName";
        e->template_version =
            v[OPT_LAUNCH_TEMPLATE_VERSION].is_set ? v[OPT_LAUNCH_TEMPLATE_VERSION].str : "$Default";
        const char *tv = e->template_version;
        int number = *tv && strlen(tv) <= 18 && strspn(tv, "0123456789") == strlen(tv);
        if (strcmp(tv, "$Default") != 0 && strcmp(tv, "$Latest") != 0 && !number)
            return bad(err, errlen,
                       "launch_template_version: a version number, $Default or $Latest, got '%s'",
                       tv);
        if (v[OPT_PORT].is_set) {
            if (v[OPT_PORT].integer < 1 || v[OPT_PORT].integer > 65535)
                return bad(err, errlen, "port: 1 to 65535, got %lld",
                           (long long)v[OPT_PORT].integer);
            e->port = (int)v[OPT_PORT].integer;
        }
    }
    if (e->mode == MODE_ASG && v[OPT_PORT].is_set)
        return bad(err, errlen, "port: only with mode instances");
    if (!plain(e->id, 200, "-_.:/=+@"))
        return bad(err, errlen, "id: '%s' cannot be a tag value", e->id);

    const char *region = v[OPT_REGION].is_set ? v[OPT_REGION].str : NULL;
    const char *from = "region";
    if (!region || !*region) {
        region = getenv("AWS_REGION");
        from = "region (from AWS_REGION)";
    }
    if (!region || !*region) {
        region = getenv("AWS_DEFAULT_REGION");
        from = "region (from AWS_DEFAULT_REGION)";
    }
    if (!region || !*region)
        return bad(err, errlen, "region: required (or set AWS_REGION or AWS_DEFAULT_REGION)");
    if (!plain(region, 40, "-") || strchr("-", region[0]))
        return bad(err, errlen, "%s: '%s' is not a region name (like eu-west-1)", from, region);
    snprintf(e->region, sizeof e->region, "%s", region);

    if (v[OPT_ENDPOINT].is_set && v[OPT_ENDPOINT].str[0]) {
        const char *ep = v[OPT_ENDPOINT].str;
        int rc = sb_http_url_check("endpoint", ep, err, errlen);
        if (rc)
            return rc;
        if (strlen(ep) > 400 || strchr(ep, '?') || strchr(ep, '#'))
            return bad(err, errlen, "endpoint: an http:// or https:// URL without a query");
        const char *after = strstr(ep, "://");
        snprintf(e->url, sizeof e->url, "%s%s", ep, after && strchr(after + 3, '/') ? "" : "/");
    } else {
        snprintf(e->url, sizeof e->url, "https://%s.%s.amazonaws.com%s/", e->service, e->region,
                 strncmp(e->region, "cn-", 3) == 0 ? ".cn" : "");
    }
    e->insecure = v[OPT_TLS_VERIFY].is_set && !v[OPT_TLS_VERIFY].integer;
    e->timeout_ms = v[OPT_TIMEOUT].is_set ? v[OPT_TIMEOUT].duration_ms : 10000;
    if (e->timeout_ms < 100 || e->timeout_ms > 600000)
        return bad(err, errlen, "timeout: 100ms to 10m");
    e->creds_opt.profile = v[OPT_PROFILE].is_set ? v[OPT_PROFILE].str : NULL;
    e->creds_opt.metadata_url = v[OPT_METADATA_URL].is_set ? v[OPT_METADATA_URL].str : NULL;
    return 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void ec2_destroy(void *state)
{
    ec2 *e = state;
    if (!e)
        return;
    sb_fleet_free(e->fleet); /* cancels the call in flight */
    if (e->req)
        e->host->http_cancel(e->inst, e->req);
    sb_aws_creds_free(e->creds);
    free(e->tagged);
    free(e);
}

static int ec2_create(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                      char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request) || !SB_HOST_HAS(host, http_cancel)) {
        snprintf(err, errlen, "ec2: this daemon has no HTTP client (host version 3 needed)");
        return -ENOTSUP;
    }
    ec2 *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    e->inst = inst;
    e->host = host;
    e->id = host->instance_id(inst);
    e->min_size = e->max_size = -1;
    int rc = read_options(e, values, err, errlen);
    if (rc == 0)
        rc = sb_aws_creds_new(inst, host, &e->creds_opt, &e->creds, err, errlen);
    if (rc == 0)
        rc = sb_fleet_new(inst, host, &values[OPT_RECONCILE_EVERY],
                          e->mode == MODE_ASG ? &asg_ops : &instances_ops, e, &e->fleet, err,
                          errlen);
    if (rc != 0) {
        ec2_destroy(e);
        return rc;
    }
    *state = e;
    return 0;
}

static int ec2_start(void *state)
{
    ec2 *e = state;
    if (e->mode == MODE_ASG)
        e->host->log(e->inst, SB_LOG_DEBUG, "Auto Scaling group %s at %s", e->group, e->url);
    else
        e->host->log(e->inst, SB_LOG_DEBUG, "EC2 instances tagged %s=%s at %s", TAG_KEY, e->id,
                     e->url);
    return sb_fleet_start(e->fleet);
}

static int ec2_stop(void *state)
{
    ec2 *e = state;
    int rc = sb_fleet_stop(e->fleet);
    if (rc == 0)
        sb_aws_creds_stop(e->creds);
    return rc;
}

static const sb_plugin_descriptor ec2_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "ec2",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "an EC2 Auto Scaling group's desired capacity, or EC2 instances from a launch "
                   "template",
    .options = ec2_options,
    .create = ec2_create,
    .start = ec2_start,
    .stop = ec2_stop,
    .destroy = ec2_destroy,
    .on_event = sb_fleet_scaler_on_event,
};

SB_PLUGIN_EXPORT(ec2_descriptor)
