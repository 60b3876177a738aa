/*
 * docker.c - the docker scaler: containers of one image through the Docker Engine API on its
 * unix socket (Docker, or Podman's Docker-compatible service), on the fleet contract
 * (scalebus/scaler.h). It implements the fleet's three calls over the host's HTTP client:
 *
 *   list       GET /containers/json?all=1&filters={"label":["scalebus.scaler=<id>"]}, then
 *              GET /containers/{id}/json for each (state, health, started-at, address)
 *   start_one  POST /containers/create?name=<prefix>-<n>-<random>, POST /containers/{id}/start
 *              (with pull: missing, a 404 "No such image" pulls it first: POST /images/create)
 *   stop_one   POST /containers/{id}/stop?t=<grace>, DELETE /containers/{id}?v=1
 *
 * The API version comes from GET /version before the first call (and again after the engine
 * was unreachable): the lower of the server's and 1.41. Only containers labelled
 * scalebus.scaler=<this scaler's id> are ever listed, stopped or removed, and always by their
 * full Id. Replies are read by docker_api.c.
 *
 * Health: health_cmd becomes the create body's Healthcheck. A running container whose health is
 * "unhealthy" is reported failed (logged once here with the last check), which the fleet
 * stops, removes and replaces; while a container is still starting it is listed again after
 * 1s (doubling up to reconcile_every), so "ready" is published soon after the engine says so.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "docker_api.h"
#include "scalebus/plugin.h"
#include "scalebus/scaler.h"

enum {
    OPT_SOCKET,
    OPT_IMAGE,
    OPT_COMMAND,
    OPT_ENV,
    OPT_LABELS,
    OPT_PORT,
    OPT_NETWORK,
    OPT_HOST_IP,
    OPT_MEMORY,
    OPT_CPUS,
    OPT_INIT,
    OPT_PULL,
    OPT_STOP_GRACE,
    OPT_NAME_PREFIX,
    OPT_HEALTH_CMD,
    OPT_HEALTH_INTERVAL,
    OPT_HEALTH_TIMEOUT,
    OPT_HEALTH_RETRIES,
    OPT_HEALTH_START_PERIOD,
    OPT_RECONCILE_EVERY /* SB_FLEET_OPTIONS from here */
};

static const sb_option_spec docker_options[] = {
    {"socket", SB_OPT_STRING, NULL, 0,
     "the engine's unix socket (/run/podman/podman.sock for Podman); unset: DOCKER_HOST "
     "(unix://...), else /var/run/docker.sock"},
    {"image", SB_OPT_STRING, NULL, 1, "the image each container runs (\"nginx:1.25\")"},
    {"command", SB_OPT_LIST, NULL, 0, "the command, replacing the image's (a list: [httpd, -f])"},
    {"env", SB_OPT_MAP, NULL, 0, "environment variables of each container"},
    {"labels", SB_OPT_MAP, NULL, 0,
     "more labels on each container (scalebus.scaler=<id> is always set)"},
    {"port", SB_OPT_INT, NULL, 0,
     "the container port it serves on: the instance address is the published host port (or "
     "its IP on `network`, or 127.0.0.1:port with network host)"},
    {"network", SB_OPT_STRING, NULL, 0,
     "the network to join (\"host\", \"none\", a network name); unset: the engine's default"},
    {"host_ip", SB_OPT_STRING, "127.0.0.1", 0,
     "where a published port listens on the host (\"0.0.0.0\": every address)"},
    {"memory", SB_OPT_STRING, NULL, 0, "memory limit: bytes or \"256m\", \"1g\""},
    {"cpus", SB_OPT_NUMBER, NULL, 0, "CPU limit, in CPUs (0.5: half of one)"},
    {"init", SB_OPT_BOOL, "true", 0,
     "run an init as PID 1 (forwards signals, reaps zombies: stops take no grace)"},
    {"pull", SB_OPT_STRING, "never", 0,
     "never (the image must be there), or missing (pulled when the engine lacks it)"},
    {"stop_grace", SB_OPT_DURATION, "10s", 0,
     "how long a stopping container has between SIGTERM and SIGKILL"},
    {"name_prefix", SB_OPT_STRING, NULL, 0,
     "containers are named <prefix>-<n>-<random>; unset: the scaler's id"},
    {"health_cmd", SB_OPT_LIST, NULL, 0,
     "a health check run inside each container, replacing the image's HEALTHCHECK: an argv "
     "([curl, -fs, \"http://127.0.0.1/\"]) or one shell line ([\"test -f /tmp/ok\"]); "
     "ready when it passes, replaced when it fails health_retries times in a row"},
    {"health_interval", SB_OPT_DURATION, "5s", 0, "with health_cmd: time between two checks"},
    {"health_timeout", SB_OPT_DURATION, "3s", 0,
     "with health_cmd: a check taking longer has failed"},
    {"health_retries", SB_OPT_INT, "3", 0,
     "with health_cmd: failed checks in a row that make a container unhealthy (then replaced)"},
    {"health_start_period", SB_OPT_DURATION, "0s", 0,
     "with health_cmd: failures this long after the start do not count"},
    SB_FLEET_OPTIONS("keep"),
    {NULL, 0, NULL, 0, NULL}};

#define DOCKER_LIST_TIMEOUT_MS 15000
#define DOCKER_CREATE_TIMEOUT_MS 60000
#define DOCKER_PULL_TIMEOUT_MS (15 * 60 * 1000)
#define DOCKER_STOP_EXTRA_MS 30000  /* beyond the grace: the engine kills, then answers */
#define DOCKER_RELIST_FIRST_MS 1000 /* a member still starting is looked at again this soon */

typedef enum docker_op { OP_NONE, OP_LIST, OP_START, OP_STOP } docker_op;

typedef struct docker docker;
typedef void (*docker_next)(docker *d);

/* One request in flight; all of them are on a list, so a cancel finds them. */
typedef struct docker_req {
    docker *d;
    sb_http *handle;
    size_t index; /* the listed container it inspects */
    void (*done)(struct docker_req *r, const sb_http_response *res);
    struct docker_req *prev, *next;
} docker_req;

struct docker {
    sb_fleet *fleet; /* first: sb_fleet_scaler_on_event */
    sb_instance *inst;
    const sb_host *host;
    const char *id;
    const sb_value *values; /* the option values in use (host-owned) */
    char socket[256];
    char prefix[96];
    char *create_body;
    sb_docker_where where;
    const char *image;
    int pull_missing;
    uint64_t grace_s;

    char api[16];              /* "1.41" once negotiated, "" before */
    docker_next after_version; /* what GET /version was sent for */
    docker_req *reqs;

    /* The call in flight. */
    docker_op op;
    int pulled;                    /* start: the image was pulled once already */
    char name[SB_DOCKER_NAME_MAX]; /* start: the container's name */
    char cid[SB_DOCKER_ID_MAX];    /* start: the new container; stop: the one stopping */
    char failure[600];             /* start: why the start failed, while it is removed */

    /* The last listing: names and ids of ours (stop_one acts by full Id), and the inspects. */
    sb_docker_listed *listed;
    size_t nlisted;
    sb_docker_inspected *inspected;
    unsigned char *gone; /* inspect said 404: removed between the list and the inspect */
    size_t pending;      /* inspects in flight */

    /* While a member is starting, the fleet is listed again after relist_ms (doubling up to
     * reconcile_every while one still is), so readiness is published when it comes. */
    sb_timer *relist;
    uint64_t relist_ms;
    uint64_t reconcile_ms;
    int stopping; /* stop() was called: no more lists of our own */
    /* The names last found unhealthy: each is logged once, with the engine's reason. */
    char (*unhealthy)[SB_DOCKER_NAME_MAX];
    size_t nunhealthy;
};

/* ---- requests ---------------------------------------------------------------------------- */

static void req_unlink(docker *d, docker_req *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        d->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
}

static void req_done(void *arg, const sb_http_response *res)
{
    docker_req *r = arg;
    docker *d = r->d;
    req_unlink(d, r);
    r->done(r, res);
    free(r);
}

static void cancel_all(docker *d)
{
    while (d->reqs) {
        docker_req *r = d->reqs;
        req_unlink(d, r);
        d->host->http_cancel(d->inst, r->handle);
        free(r);
    }
}

/* Send METHOD /v<api>PATH (PATH alone while no version is known: GET /version). Returns 0 or a
 * negative code with one line in err. */
static int send_req(docker *d, const char *method, const char *path, const char *body,
                    uint64_t timeout_ms, size_t index,
                    void (*done)(docker_req *, const sb_http_response *), char *err, size_t errlen)
{
    docker_req *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    char url[1600];
    /* The host name is not resolved: the socket is the address. */
    if (d->api[0])
        snprintf(url, sizeof url, "http://docker/v%s%s", d->api, path);
    else
        snprintf(url, sizeof url, "http://docker%s", path);
    sb_label json = {"Content-Type", "application/json"};
    sb_http_request req = {SB_HTTP_REQUEST_INIT,
                           .method = method,
                           .url = url,
                           .headers = body ? &json : NULL,
                           .nheaders = body ? 1 : 0,
                           .body = body,
                           .body_len = body ? strlen(body) : 0,
                           .timeout_ms = timeout_ms,
                           .max_body = 16u << 20,
                           .unix_socket = d->socket};
    r->d = d;
    r->index = index;
    r->done = done;
    r->next = d->reqs;
    if (d->reqs)
        d->reqs->prev = r;
    d->reqs = r;
    int rc = d->host->http_request(d->inst, &req, req_done, r, &r->handle);
    if (rc < 0) {
        req_unlink(d, r);
        free(r);
        snprintf(err, errlen, "%s %s: cannot send the request (%s)", method, path, strerror(-rc));
    }
    return rc;
}

/* ---- answers ----------------------------------------------------------------------------- */

static void op_fail(docker *d, sb_action_result why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* End the call in flight with a problem, whichever call it is. */
static void op_fail(docker *d, sb_action_result why, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    docker_op op = d->op;
    d->op = OP_NONE;
    d->name[0] = '\0';
    if (op == OP_LIST)
        sb_fleet_list_failed(d->fleet, why, "%s", msg);
    else if (op == OP_START || op == OP_STOP)
        sb_fleet_action_done(d->fleet, why, "%s", msg);
}

static void op_done(docker *d)
{
    d->op = OP_NONE;
    d->name[0] = '\0';
    sb_fleet_action_done(d->fleet, SB_ACTION_DONE, "done");
}

/* No reply at all: the engine is unreachable (and may come back as another version). */
static void fail_unreachable(docker *d, const sb_http_response *res)
{
    d->api[0] = '\0';
    const char *why;
    struct stat st;
    if (res->error == -ECONNREFUSED && stat(d->socket, &st) != 0)
        why = "no socket there";
    else if (res->error == -ECONNREFUSED)
        why = "connection refused";
    else if (res->error == -ETIMEDOUT)
        why = "timed out";
    else
        why = res->error_text && *res->error_text ? res->error_text : strerror(-res->error);
    char shown[200];
    sb_docker_one_line(why, shown, sizeof shown);
    op_fail(d, SB_ACTION_FAILED, "cannot reach docker at %s: %s", d->socket, shown);
}

/* An error reply to `what` ("POST /containers/create"): busy or failed, with the message. */
static void fail_reply(docker *d, const char *what, const sb_http_response *res)
{
    char msg[400];
    sb_docker_error_message(res->status, res->body, msg, sizeof msg);
    op_fail(d, sb_docker_classify(res->status, res->body), "%s: %s", what, msg);
}

/* ---- the API version --------------------------------------------------------------------- */

static void version_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char err[256];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status != 200)
        return fail_reply(d, "GET /version", res);
    if (sb_docker_parse_version(res->body, d->api, sizeof d->api, err, sizeof err) != 0)
        return op_fail(d, SB_ACTION_FAILED, "%s", err);
    d->after_version(d);
}

/* Run next once the version is known (GET /version first when it is not). */
static void with_version(docker *d, docker_next next)
{
    char err[256];
    if (d->api[0])
        return next(d);
    d->after_version = next;
    if (send_req(d, "GET", "/version", NULL, DOCKER_LIST_TIMEOUT_MS, 0, version_done, err,
                 sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

/* ---- list -------------------------------------------------------------------------------- */

static void listing_clear(docker *d)
{
    free(d->listed);
    free(d->inspected);
    free(d->gone);
    d->listed = NULL;
    d->inspected = NULL;
    d->gone = NULL;
    d->nlisted = 0;
}

typedef struct ordered {
    sb_member m;
    int64_t ns;
} ordered;

/* Oldest first: the fleet takes the later of two members started in the same second as the
 * newer one, and Docker lists newest first. */
static int by_start(const void *a, const void *b)
{
    const ordered *x = a, *y = b;
    return (x->ns > y->ns) - (x->ns < y->ns);
}

static int was_unhealthy(const docker *d, const char *name)
{
    for (size_t i = 0; i < d->nunhealthy; i++)
        if (strcmp(d->unhealthy[i], name) == 0)
            return 1;
    return 0;
}

/* Each container found unhealthy is logged once, with why, before the fleet replaces it. */
static void note_unhealthy(docker *d)
{
    char(*now)[SB_DOCKER_NAME_MAX] = d->nlisted ? calloc(d->nlisted, sizeof *now) : NULL;
    size_t n = 0;
    for (size_t i = 0; i < d->nlisted; i++) {
        const sb_docker_inspected *in = &d->inspected[i];
        if (d->gone[i] || in->state != SB_MEMBER_FAILED || strcmp(in->health, "unhealthy") != 0)
            continue;
        if (!was_unhealthy(d, d->listed[i].name))
            d->host->log(d->inst, SB_LOG_WARN,
                         "%s is unhealthy: its health check failed %d time(s) in a row%s%s%s; "
                         "%s",
                         d->listed[i].name, in->health_streak, in->health_last[0] ? " (last: " : "",
                         in->health_last, in->health_last[0] ? ")" : "",
                         d->host->dry_run(d->inst) ? "it would be replaced (--dry-run)"
                                                   : "replacing it");
        if (now)
            memcpy(now[n++], d->listed[i].name, SB_DOCKER_NAME_MAX);
    }
    free(d->unhealthy);
    d->unhealthy = now; /* out of memory: logged again next time, no harm */
    d->nunhealthy = now ? n : 0;
}

static void relist_fire(void *arg)
{
    docker *d = arg;
    d->host->timer_free(d->relist);
    d->relist = NULL;
    sb_fleet_changed(d->fleet);
}

/* A member still starting (health starting, created, restarting): list again soon, so it is
 * published ready soon after it is, rather than at the next reconcile. */
static void relist_if_starting(docker *d, const sb_member *ms, size_t n)
{
    int starting = 0;
    for (size_t i = 0; i < n; i++)
        starting |= ms[i].state == SB_MEMBER_STARTING;
    if (!starting) {
        d->relist_ms = DOCKER_RELIST_FIRST_MS;
        return;
    }
    if (d->relist || d->stopping)
        return;
    d->relist = d->host->timer_new(d->inst, d->relist_ms, 0, relist_fire, d);
    if (d->relist_ms < d->reconcile_ms) /* one that never gets ready costs ever fewer lists */
        d->relist_ms = d->relist_ms * 2 < d->reconcile_ms ? d->relist_ms * 2 : d->reconcile_ms;
}

static void list_answer(docker *d)
{
    ordered *o = d->nlisted ? calloc(d->nlisted, sizeof *o) : NULL;
    sb_member *ms = d->nlisted ? calloc(d->nlisted, sizeof *ms) : NULL;
    cJSON **details = d->nlisted ? calloc(d->nlisted, sizeof *details) : NULL;
    if (d->nlisted && (!o || !ms || !details)) {
        free(o);
        free(ms);
        free(details);
        return op_fail(d, SB_ACTION_FAILED, "out of memory");
    }
    size_t n = 0;
    for (size_t i = 0; i < d->nlisted; i++) {
        if (d->gone[i])
            continue;
        const sb_docker_inspected *in = &d->inspected[i];
        o[n].m.id = d->listed[i].name;
        o[n].m.address = in->address[0] ? in->address : NULL;
        o[n].m.state = in->state;
        o[n].m.started_at = in->started_at;
        o[n].ns = in->started_ns;
        if (in->health[0]) { /* the engine's word, next to the contract's state */
            details[i] = cJSON_CreateObject();
            if (details[i])
                cJSON_AddStringToObject(details[i], "health", in->health);
            o[n].m.detail = details[i];
        }
        n++;
    }
    if (n)
        qsort(o, n, sizeof *o, by_start);
    for (size_t i = 0; i < n; i++)
        ms[i] = o[i].m;
    d->op = OP_NONE;
    note_unhealthy(d);
    relist_if_starting(d, ms, n);
    sb_fleet_listed(d->fleet, ms, n);
    for (size_t i = 0; i < d->nlisted; i++)
        cJSON_Delete(details ? details[i] : NULL);
    free(details);
    free(ms);
    free(o);
}

/* The list failed while inspects are in flight: drop them, so none lands in a later listing. */
static void list_abort(docker *d)
{
    d->pending = 0;
    cancel_all(d);
}

static void inspect_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char err[256];
    d->pending--;
    if (res->error) {
        list_abort(d);
        return fail_unreachable(d, res);
    }
    if (res->status == 404) {
        d->gone[r->index] = 1; /* removed since the list: not a member any more */
    } else if (res->status != 200) {
        list_abort(d);
        return fail_reply(d, "GET /containers/ID/json", res);
    } else if (sb_docker_parse_inspect(res->body, &d->where, (int64_t)time(NULL),
                                       &d->inspected[r->index], err, sizeof err) != 0) {
        list_abort(d);
        return op_fail(d, SB_ACTION_FAILED, "%s", err);
    }
    if (!d->pending)
        list_answer(d);
}

static void list_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char err[256];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status != 200)
        return fail_reply(d, "GET /containers/json", res);
    listing_clear(d);
    if (sb_docker_parse_list(res->body, d->id, &d->listed, &d->nlisted, err, sizeof err) != 0)
        return op_fail(d, SB_ACTION_FAILED, "%s", err);
    if (!d->nlisted)
        return list_answer(d);
    d->inspected = calloc(d->nlisted, sizeof *d->inspected);
    d->gone = calloc(d->nlisted, 1);
    if (!d->inspected || !d->gone)
        return op_fail(d, SB_ACTION_FAILED, "out of memory");
    d->pending = 0;
    for (size_t i = 0; i < d->nlisted; i++) {
        char path[128];
        snprintf(path, sizeof path, "/containers/%s/json", d->listed[i].id);
        if (send_req(d, "GET", path, NULL, DOCKER_LIST_TIMEOUT_MS, i, inspect_done, err,
                     sizeof err) < 0) {
            list_abort(d);
            return op_fail(d, SB_ACTION_FAILED, "%s", err);
        }
        d->pending++;
    }
}

/* The label filter, URL-encoded: {"label":["scalebus.scaler=<id>"]}. */
static void list_path(const docker *d, char *out, size_t len)
{
    char filter[400], enc[1200];
    snprintf(filter, sizeof filter, "{\"label\":[\"%s=%s\"]}", SB_DOCKER_OWNER_LABEL, d->id);
    size_t k = 0;
    for (const char *p = filter; *p && k + 4 < sizeof enc; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-_.~", c))
            enc[k++] = (char)c;
        else
            k += (size_t)snprintf(enc + k, sizeof enc - k, "%%%02X", c);
    }
    enc[k] = '\0';
    snprintf(out, len, "/containers/json?all=1&filters=%s", enc);
}

static void list_send(docker *d)
{
    char path[1400], err[256];
    list_path(d, path, sizeof path);
    if (send_req(d, "GET", path, NULL, DOCKER_LIST_TIMEOUT_MS, 0, list_done, err, sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

static void docker_list(void *self, sb_fleet *f)
{
    docker *d = self;
    if (d->op != OP_NONE)
        return sb_fleet_list_failed(f, SB_ACTION_BUSY, "a call is still in flight");
    d->op = OP_LIST;
    with_version(d, list_send);
}

/* ---- start one --------------------------------------------------------------------------- */

static void create_send(docker *d);

static void removed_after_failed_start(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    (void)res; /* the start's failure is what the user needs; a leftover is replaced later */
    op_fail(d, SB_ACTION_FAILED, "%s", d->failure);
}

static void start_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char err[256], path[128];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status == 204 || res->status == 304) {
        d->relist_ms = DOCKER_RELIST_FIRST_MS; /* a new member: watch it closely again */
        return op_done(d);
    }
    /* Not started (a command that does not exist...): remove it, so no corpse is left. */
    char msg[400];
    sb_docker_error_message(res->status, res->body, msg, sizeof msg);
    snprintf(d->failure, sizeof d->failure, "POST /containers/%s/start: %s", d->name, msg);
    snprintf(path, sizeof path, "/containers/%s?force=1&v=1", d->cid);
    if (send_req(d, "DELETE", path, NULL, DOCKER_LIST_TIMEOUT_MS, 0, removed_after_failed_start,
                 err, sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", d->failure);
}

static void pull_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char msg[400];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status != 200) { /* Docker says at once when the registry cannot be reached */
        sb_docker_error_message(res->status, res->body, msg, sizeof msg);
        return op_fail(d, sb_docker_classify(res->status, res->body), "pull %s: %s", d->image, msg);
    }
    if (sb_docker_pull_error(res->body, msg, sizeof msg))
        return op_fail(d, SB_ACTION_FAILED, "pull %s: %s", d->image, msg);
    d->host->log(d->inst, SB_LOG_INFO, "pulled %s", d->image);
    create_send(d);
}

static void pull_send(docker *d)
{
    char from[300], tag[130], path[1024], err[256];
    sb_docker_image_ref(d->image, from, sizeof from, tag, sizeof tag);
    size_t k = (size_t)snprintf(path, sizeof path, "/images/create?fromImage=");
    for (const char *p = from; *p && k + 4 < sizeof path; p++)
        k += (size_t)(strchr("/:@", *p)
                          ? snprintf(path + k, sizeof path - k, "%%%02X", (unsigned char)*p)
                          : snprintf(path + k, sizeof path - k, "%c", *p));
    if (*tag)
        snprintf(path + k, sizeof path - k, "&tag=%s", tag);
    d->pulled = 1;
    d->host->log(d->inst, SB_LOG_INFO, "pulling %s (pull: missing)", d->image);
    if (send_req(d, "POST", path, NULL, DOCKER_PULL_TIMEOUT_MS, 0, pull_done, err, sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

static void create_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char err[256], path[128];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status == 404 && d->pull_missing && !d->pulled)
        return pull_send(d);
    if (res->status != 201)
        return fail_reply(d, "POST /containers/create", res);
    if (sb_docker_parse_created(res->body, d->cid, sizeof d->cid, err, sizeof err) != 0)
        return op_fail(d, SB_ACTION_FAILED, "%s", err);
    snprintf(path, sizeof path, "/containers/%s/start", d->cid);
    if (send_req(d, "POST", path, NULL, DOCKER_CREATE_TIMEOUT_MS, 0, start_done, err, sizeof err) <
        0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

static void create_send(docker *d)
{
    char path[256], err[256];
    snprintf(path, sizeof path, "/containers/create?name=%s", d->name);
    if (send_req(d, "POST", path, d->create_body, DOCKER_CREATE_TIMEOUT_MS, 0, create_done, err,
                 sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

/* <prefix>-<n>-<random>: n the lowest number no listed container of ours has, so names stay
 * short and readable; the random part keeps a name free while an old one is being removed. */
static void pick_name(docker *d)
{
    int n = 0;
    for (int again = 1; again;) {
        again = 0;
        for (size_t i = 0; i < d->nlisted; i++)
            if (sb_docker_name_index(d->listed[i].name, d->prefix) == n) {
                n++;
                again = 1;
            }
    }
    unsigned r = 0;
    FILE *u = fopen("/dev/urandom", "rb");
    if (!u || fread(&r, sizeof r, 1, u) != 1)
        r = (unsigned)time(NULL) ^ (unsigned)clock();
    if (u)
        fclose(u);
    snprintf(d->name, sizeof d->name, "%s-%d-%06x", d->prefix, n, r & 0xffffffu);
}

static void docker_start_one(void *self, sb_fleet *f)
{
    docker *d = self;
    if (d->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    d->op = OP_START;
    d->pulled = 0;
    d->cid[0] = '\0';
    if (!d->name[0]) /* describe() picked it, so the log names the container */
        pick_name(d);
    with_version(d, create_send);
}

/* ---- stop one ---------------------------------------------------------------------------- */

static void delete_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status == 204 || res->status == 404) /* 404: someone removed it already */
        return op_done(d);
    fail_reply(d, "DELETE /containers/ID", res);
}

static void stop_done(docker_req *r, const sb_http_response *res)
{
    docker *d = r->d;
    char path[128], err[256];
    if (res->error)
        return fail_unreachable(d, res);
    if (res->status == 404)
        return op_done(d);                        /* gone already */
    if (res->status != 204 && res->status != 304) /* 304: it had stopped (a failed member) */
        return fail_reply(d, "POST /containers/ID/stop", res);
    snprintf(path, sizeof path, "/containers/%s?v=1", d->cid);
    if (send_req(d, "DELETE", path, NULL, DOCKER_LIST_TIMEOUT_MS, 0, delete_done, err, sizeof err) <
        0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

static void stop_send(docker *d)
{
    char path[160], err[256];
    snprintf(path, sizeof path, "/containers/%s/stop?t=%llu", d->cid,
             (unsigned long long)d->grace_s);
    if (send_req(d, "POST", path, NULL, d->grace_s * 1000 + DOCKER_STOP_EXTRA_MS, 0, stop_done, err,
                 sizeof err) < 0)
        op_fail(d, SB_ACTION_FAILED, "%s", err);
}

static const char *listed_id(const docker *d, const char *name)
{
    for (size_t i = 0; i < d->nlisted; i++)
        if (strcmp(d->listed[i].name, name) == 0)
            return d->listed[i].id;
    return NULL;
}

static void docker_stop_one(void *self, sb_fleet *f, const char *name)
{
    docker *d = self;
    if (d->op != OP_NONE)
        return sb_fleet_action_done(f, SB_ACTION_BUSY, "a call is still in flight");
    const char *cid = listed_id(d, name);
    if (!cid) /* never act on a name alone: only on the Id of a container listed as ours */
        return sb_fleet_action_done(f, SB_ACTION_FAILED, "%s is not a listed container", name);
    d->op = OP_STOP;
    snprintf(d->cid, sizeof d->cid, "%s", cid);
    with_version(d, stop_send);
}

/* ---- describe, cancel -------------------------------------------------------------------- */

static void docker_describe(void *self, sb_fleet_call call, const char *name, int64_t n, char *buf,
                            size_t len)
{
    docker *d = self;
    const char *v = d->api[0] ? d->api : "1.41";
    if (call == SB_CALL_START) {
        if (d->op == OP_NONE && !d->name[0]) /* kept until the start ends: one line per start */
            pick_name(d);
        snprintf(buf, len, "POST /v%s/containers/create?name=%s %s, POST /v%s/containers/ID/start",
                 v, d->name, d->create_body, v);
    } else if (call == SB_CALL_STOP) {
        const char *cid = name ? listed_id(d, name) : NULL;
        char shown[16];
        snprintf(shown, sizeof shown, "%.12s", cid ? cid : "ID");
        snprintf(buf, len,
                 "POST /v%s/containers/%s/stop?t=%llu, DELETE /v%s/containers/%s?v=1 (%s)", v,
                 shown, (unsigned long long)d->grace_s, v, shown, name ? name : "");
    } else {
        snprintf(buf, len, "set count %lld", (long long)n);
    }
}

static void docker_cancel(void *self)
{
    docker *d = self;
    cancel_all(d);
    d->op = OP_NONE;
    d->name[0] = '\0';
}

static const sb_fleet_ops docker_ops = {
    .list = docker_list,
    .start_one = docker_start_one,
    .stop_one = docker_stop_one,
    .describe = docker_describe,
    .cancel = docker_cancel,
};

/* ---- create, lifecycle ------------------------------------------------------------------- */

static int name_ok(const char *s)
{
    if (!*s || strlen(s) > 64 ||
        !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9')))
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              strchr("_.-", *s)))
            return 0;
    return 1;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

/* A health check duration: 1ms (the engine's least; 0 would mean the image's) to a day. */
static int health_duration(const sb_value *v, const char *name, uint64_t least_ms, int64_t *ns,
                           char *err, size_t errlen)
{
    uint64_t ms = v->duration_ms;
    if (ms < least_ms || ms > (uint64_t)SB_DOCKER_HEALTH_MAX_MS) {
        snprintf(err, errlen, "%s: %s to 24h, got %llums", name, least_ms ? "1ms" : "0s",
                 (unsigned long long)ms);
        return -EINVAL;
    }
    *ns = (int64_t)ms * 1000000;
    return 0;
}

/* health_cmd and its timings; without health_cmd the timings are unused (the image's own
 * HEALTHCHECK, if any, keeps its own). */
static int read_health(const sb_value *v, sb_docker_health *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (!v[OPT_HEALTH_CMD].is_set)
        return 0;
    if (v[OPT_HEALTH_CMD].count == 0) {
        snprintf(err, errlen,
                 "health_cmd: a command, as a list ([curl, -fs, URL]) or one shell "
                 "line ([\"test -f /tmp/ok\"])");
        return -EINVAL;
    }
    if (!*v[OPT_HEALTH_CMD].items[0]) {
        snprintf(err, errlen, "health_cmd: the command cannot be an empty string");
        return -EINVAL;
    }
    h->cmd = v[OPT_HEALTH_CMD].items;
    h->ncmd = v[OPT_HEALTH_CMD].count;
    int rc = health_duration(&v[OPT_HEALTH_INTERVAL], "health_interval", 1, &h->interval_ns, err,
                             errlen);
    if (rc == 0)
        rc = health_duration(&v[OPT_HEALTH_TIMEOUT], "health_timeout", 1, &h->timeout_ns, err,
                             errlen);
    if (rc == 0)
        rc = health_duration(&v[OPT_HEALTH_START_PERIOD], "health_start_period", 0,
                             &h->start_period_ns, err, errlen);
    if (rc < 0)
        return rc;
    int64_t retries = v[OPT_HEALTH_RETRIES].integer;
    if (retries < 1 || retries > 1000) {
        snprintf(err, errlen, "health_retries: 1 to 1000, got %lld", (long long)retries);
        return -EINVAL;
    }
    h->retries = (int)retries;
    return 0;
}

static int read_options(docker *d, const sb_value *v, sb_docker_spec *spec, char *err,
                        size_t errlen)
{
    /* socket: the option, else DOCKER_HOST, else the usual place. */
    const char *env = getenv("DOCKER_HOST");
    int rc;
    if (v[OPT_SOCKET].is_set)
        rc = sb_docker_socket_path("socket", v[OPT_SOCKET].str, d->socket, sizeof d->socket, err,
                                   errlen);
    else if (env && *env)
        rc = sb_docker_socket_path("socket (from DOCKER_HOST)", env, d->socket, sizeof d->socket,
                                   err, errlen);
    else
        rc = sb_docker_socket_path("socket", "/var/run/docker.sock", d->socket, sizeof d->socket,
                                   err, errlen);
    if (rc < 0)
        return rc;

    d->image = v[OPT_IMAGE].str;
    if (!*d->image || has_control(d->image) || strchr(d->image, ' ')) {
        snprintf(err, errlen, "image: '%s' is not an image reference", d->image);
        return -EINVAL;
    }
    spec->image = d->image;
    spec->scaler_id = d->id;
    if (v[OPT_COMMAND].is_set) {
        spec->cmd = v[OPT_COMMAND].items;
        spec->ncmd = v[OPT_COMMAND].count;
    }
    if (v[OPT_ENV].is_set) {
        for (size_t i = 0; i < v[OPT_ENV].count; i++)
            if (!*v[OPT_ENV].items[i] || strchr(v[OPT_ENV].items[i], '=')) {
                snprintf(err, errlen, "env: '%s' is not a variable name", v[OPT_ENV].items[i]);
                return -EINVAL;
            }
        spec->env_keys = v[OPT_ENV].items;
        spec->env_values = v[OPT_ENV].values;
        spec->nenv = v[OPT_ENV].count;
    }
    if (v[OPT_LABELS].is_set) {
        for (size_t i = 0; i < v[OPT_LABELS].count; i++)
            if (strcmp(v[OPT_LABELS].items[i], SB_DOCKER_OWNER_LABEL) == 0) {
                snprintf(err, errlen, "labels: %s is the scaler's own (set to its id)",
                         SB_DOCKER_OWNER_LABEL);
                return -EINVAL;
            }
        spec->label_keys = v[OPT_LABELS].items;
        spec->label_values = v[OPT_LABELS].values;
        spec->nlabels = v[OPT_LABELS].count;
    }
    if (v[OPT_PORT].is_set) {
        if (v[OPT_PORT].integer < 1 || v[OPT_PORT].integer > 65535) {
            snprintf(err, errlen, "port: 1 to 65535, got %lld", (long long)v[OPT_PORT].integer);
            return -EINVAL;
        }
        spec->port = (int)v[OPT_PORT].integer;
    }
    if (v[OPT_NETWORK].is_set) {
        if (!name_ok(v[OPT_NETWORK].str)) {
            snprintf(err, errlen, "network: '%s' is not a network name", v[OPT_NETWORK].str);
            return -EINVAL;
        }
        spec->network = v[OPT_NETWORK].str;
    }
    spec->host_ip = v[OPT_HOST_IP].is_set ? v[OPT_HOST_IP].str : "127.0.0.1";
    if (has_control(spec->host_ip) || strlen(spec->host_ip) > 45) {
        snprintf(err, errlen, "host_ip: '%s' is not an address", spec->host_ip);
        return -EINVAL;
    }
    if (v[OPT_MEMORY].is_set && (sb_docker_parse_memory(v[OPT_MEMORY].str, &spec->memory) != 0 ||
                                 spec->memory < 6 * 1024 * 1024)) {
        snprintf(err, errlen, "memory: bytes or a size such as \"256m\" (at least 6m), got '%s'",
                 v[OPT_MEMORY].str);
        return -EINVAL;
    }
    if (v[OPT_CPUS].is_set) {
        double c = v[OPT_CPUS].number;
        if (!(c > 0) || c > 4096 || !isfinite(c)) {
            snprintf(err, errlen, "cpus: a number of CPUs above 0 (0.5, 2), got '%s'",
                     v[OPT_CPUS].str ? v[OPT_CPUS].str : "?");
            return -EINVAL;
        }
        spec->nano_cpus = (int64_t)llround(c * 1e9);
    }
    spec->init = v[OPT_INIT].is_set ? (int)v[OPT_INIT].integer : 1;
    const char *pull = v[OPT_PULL].is_set ? v[OPT_PULL].str : "never";
    if (strcmp(pull, "never") != 0 && strcmp(pull, "missing") != 0) {
        snprintf(err, errlen, "pull: never or missing, got '%s'", pull);
        return -EINVAL;
    }
    d->pull_missing = strcmp(pull, "missing") == 0;
    uint64_t grace_ms = v[OPT_STOP_GRACE].is_set ? v[OPT_STOP_GRACE].duration_ms : 10000;
    d->grace_s = (grace_ms + 999) / 1000; /* the API takes whole seconds */
    const char *prefix = v[OPT_NAME_PREFIX].is_set ? v[OPT_NAME_PREFIX].str : d->id;
    if (!name_ok(prefix)) {
        snprintf(err, errlen,
                 "name_prefix: '%s' cannot start a container name ([a-zA-Z0-9][a-zA-Z0-9_.-]*, "
                 "64 at most)%s",
                 prefix, v[OPT_NAME_PREFIX].is_set ? "" : " (it is the scaler's id: set one)");
        return -EINVAL;
    }
    snprintf(d->prefix, sizeof d->prefix, "%s", prefix);
    rc = read_health(v, &spec->health, err, errlen);
    if (rc < 0)
        return rc;
    d->where.port = spec->port;
    d->where.network = spec->network;
    return 0;
}

static void docker_destroy(void *state);

static int docker_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request) || !SB_HOST_HAS(host, http_cancel)) {
        snprintf(err, errlen, "docker: this daemon has no HTTP client (host version 3 needed)");
        return -ENOTSUP;
    }
    docker *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    d->inst = inst;
    d->host = host;
    d->id = host->instance_id(inst);
    d->values = values;
    d->relist_ms = DOCKER_RELIST_FIRST_MS;
    d->reconcile_ms =
        values[OPT_RECONCILE_EVERY].is_set ? values[OPT_RECONCILE_EVERY].duration_ms : 30000;
    sb_docker_spec spec = {0};
    int rc = read_options(d, values, &spec, err, errlen);
    if (rc == 0) {
        d->create_body = sb_docker_create_body(&spec);
        if (!d->create_body) {
            snprintf(err, errlen, "out of memory");
            rc = -ENOMEM;
        }
    }
    if (rc == 0)
        rc = sb_fleet_new(inst, host, &values[OPT_RECONCILE_EVERY], &docker_ops, d, &d->fleet, err,
                          errlen);
    if (rc != 0) {
        docker_destroy(d);
        return rc;
    }
    *state = d;
    return 0;
}

static int docker_start(void *state)
{
    docker *d = state;
    d->host->log(d->inst, SB_LOG_DEBUG, "docker at %s, containers labelled %s=%s", d->socket,
                 SB_DOCKER_OWNER_LABEL, d->id);
    return sb_fleet_start(d->fleet);
}

static void relist_drop(docker *d)
{
    if (d->relist)
        d->host->timer_free(d->relist);
    d->relist = NULL;
}

static int docker_stop(void *state)
{
    docker *d = state;
    d->stopping = 1;
    relist_drop(d);
    return sb_fleet_stop(d->fleet);
}

static void docker_destroy(void *state)
{
    docker *d = state;
    if (!d)
        return;
    relist_drop(d);
    sb_fleet_free(d->fleet); /* cancels the call in flight */
    cancel_all(d);
    listing_clear(d);
    free(d->unhealthy);
    free(d->create_body);
    free(d);
}

static int same_row(const sb_value *a, const sb_value *b)
{
    return a->is_set == b->is_set && a->duration_ms == b->duration_ms &&
           strcmp(a->str ? a->str : "", b->str ? b->str : "") == 0;
}

/* The container's options (image, command, env, ...) are taken in place: they apply to the
 * containers started from now on, as they would after a replacement, which adopts the same
 * containers. The fleet's rows (reconcile_every, on_stop, drain_timeout) need a new fleet. */
static int docker_reconfigure(void *state, const sb_value *values, char *err, size_t errlen)
{
    docker *d = state;
    for (int i = 0; i < SB_FLEET_OPTION_COUNT; i++)
        if (!same_row(&d->values[OPT_RECONCILE_EVERY + i], &values[OPT_RECONCILE_EVERY + i]))
            return SB_RECONFIGURE_REPLACE;
    docker fresh = {.id = d->id};
    sb_docker_spec spec = {0};
    int rc = read_options(&fresh, values, &spec, err, errlen);
    if (rc != 0)
        return rc;
    char *body = sb_docker_create_body(&spec);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    if (strcmp(fresh.socket, d->socket) != 0)
        d->api[0] = '\0'; /* another engine: ask its version */
    memcpy(d->socket, fresh.socket, sizeof d->socket);
    memcpy(d->prefix, fresh.prefix, sizeof d->prefix);
    free(d->create_body);
    d->create_body = body;
    d->where = fresh.where;
    d->image = fresh.image;
    d->pull_missing = fresh.pull_missing;
    d->grace_s = fresh.grace_s;
    if (d->op == OP_NONE)
        d->name[0] = '\0'; /* a name picked under the old prefix */
    d->values = values;
    return 0;
}

static const sb_plugin_descriptor docker_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "docker",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "containers of one image through the Docker Engine API (Docker or Podman)",
    .options = docker_options,
    .create = docker_create,
    .start = docker_start,
    .stop = docker_stop,
    .destroy = docker_destroy,
    .on_event = sb_fleet_scaler_on_event,
    .reconfigure = docker_reconfigure,
};

SB_PLUGIN_EXPORT(docker_descriptor)
