/*
 * router.c - the `router` trigger: an HTTP/1.1 reverse proxy on the daemon's loop that starts a
 * service on its first request, balances by requests in flight and lets a service go to zero.
 *
 * - The client side is sb_httpd (core/httpd.c) on a listening socket the host keeps across
 *   reloads (host->listen), so a reload that replaces the router never refuses a connection.
 * - Each service follows the instance list of its backend scaler (SB_TOPIC_INSTANCES): a request
 *   goes to the ready instance with the fewest in flight, below concurrency_level; with none, it
 *   waits in the service's bounded queue while the scaler starts one.
 * - Demand: a reading labelled service=<name>, value = queued + in flight (at least 1 until
 *   idle_timeout has passed since the last request), published on each change and every second
 *   while it is not 0; a `waiter` connector turns it into desired counts.
 * - Upstream: our own uv_tcp client with a keep-alive pool per instance, responses parsed by
 *   llhttp, bodies streamed both ways with back-pressure, connect/first-byte/read timeouts.
 * - Drain: an instance listed as stopping gets no new request; once it has none in flight the
 *   router publishes SB_TOPIC_DRAINED (labels instance, scaler) so the scaler stops it at once.
 * - A stop (reload, shutdown) lets the exchanges in progress end, bounded, before closing.
 */
#define _GNU_SOURCE /* strdup */
#include <cJSON.h>
#include <errno.h>
#include <llhttp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <uv.h>

#include "httpd.h"
#include "router_core.h"
#include "router_tokens.h"
#include "scalebus/plugin.h"

#define RT_TICK_MS 50
#define RT_UP_WRITE_MAX (256 * 1024) /* upstream bytes queued before the client body pauses */
/* Idle pooled connections per instance: at most its concurrency_level (never more in flight at
 * once, so never more needed), and never more than this. A burst of answers read in one loop
 * iteration pools them all before their clients send the next requests: a bound below the
 * requests in flight closed and reopened a connection for a third of the requests. */
#define RT_MAX_IDLE_PER_INSTANCE 1024

enum {
    OPT_LISTEN,
    OPT_SERVICES,
    OPT_CONNECT_TIMEOUT,
    OPT_RESPONSE_TIMEOUT,
    OPT_READ_TIMEOUT,
    OPT_KEEPALIVE_TIMEOUT,
    OPT_STOP_TIMEOUT,
    OPT_TOKEN_AUTH,
    OPT_STATE_DIR,
    NOPTS
};
enum {
    SVC_HOSTS,
    SVC_BACKEND,
    SVC_CONCURRENCY,
    SVC_QUEUE_TIMEOUT,
    SVC_MAX_QUEUE,
    SVC_IDLE_TIMEOUT,
    SVC_HEALTH_PATH,
    SVC_HEALTH_INTERVAL,
    SVC_HEALTH_TIMEOUT,
    NSVC
};

static const sb_option_spec service_fields[] = {
    [SVC_HOSTS] = {"hosts", SB_OPT_LIST, NULL, 0,
                   "Host header names of the service (without a port)"},
    [SVC_BACKEND] = {"backend", SB_OPT_STRING, NULL, 1,
                     "id of the scaler whose instance lists give the addresses"},
    [SVC_CONCURRENCY] = {"concurrency_level", SB_OPT_INT, "1", 0,
                         "requests one instance serves at once (its slots)"},
    [SVC_QUEUE_TIMEOUT] = {"queue_timeout", SB_OPT_DURATION, "30s", 0,
                           "how long a request waits for a free slot (then 503)"},
    [SVC_MAX_QUEUE] = {"max_queue", SB_OPT_INT, "100", 0,
                       "requests waiting at most (beyond: 503 queue full)"},
    [SVC_IDLE_TIMEOUT] = {"idle_timeout", SB_OPT_DURATION, "300s", 0,
                          "after this long without a request the demand goes to 0"},
    [SVC_HEALTH_PATH] = {"health_path", SB_OPT_STRING, NULL, 0,
                         "the router's own check: GET this path on each instance (2xx/3xx: "
                         "healthy); none: the scaler's readiness only"},
    [SVC_HEALTH_INTERVAL] = {"health_interval", SB_OPT_DURATION, "5s", 0,
                             "how often a healthy instance is checked (one not yet healthy: "
                             "every 250ms at most)"},
    [SVC_HEALTH_TIMEOUT] = {"health_timeout", SB_OPT_DURATION, "2s", 0,
                            "a check that takes longer fails"},
    [NSVC] = {NULL, 0, NULL, 0, NULL},
};

static const sb_option_spec router_options[] = {
    [OPT_LISTEN] = {"listen", SB_OPT_STRING, "127.0.0.1:8080", 0,
                    "address:port to serve (numeric; the host keeps it across reloads)"},
    [OPT_SERVICES] = {"services", SB_OPT_OBJECTS, NULL, 0,
                      "services by name (more can come from extend: and tokens)"},
    [OPT_CONNECT_TIMEOUT] = {"connect_timeout", SB_OPT_DURATION, "2s", 0,
                             "a connection to an instance (then it is ejected)"},
    [OPT_RESPONSE_TIMEOUT] = {"response_timeout", SB_OPT_DURATION, "60s", 0,
                              "from the request sent to the first response byte (504)"},
    [OPT_READ_TIMEOUT] = {"read_timeout", SB_OPT_DURATION, "60s", 0,
                          "between two reads of a response (then it is cut)"},
    [OPT_KEEPALIVE_TIMEOUT] = {"keepalive_timeout", SB_OPT_DURATION, "15s", 0,
                               "an idle pooled connection to an instance is closed after it"},
    [OPT_STOP_TIMEOUT] = {"stop_timeout", SB_OPT_DURATION, "10s", 0,
                          "on a reload or stop, how long requests in progress may finish"},
    [OPT_TOKEN_AUTH] = {"token_auth", SB_OPT_STRING, NULL, 0,
                        "bearer token for /_scalebus/token (tokens are off without it)"},
    [OPT_STATE_DIR] = {"state_dir", SB_OPT_STRING, NULL, 0,
                       "absolute folder for token fragments; the file must include DIR/*.yaml"},
    [NOPTS] = {NULL, 0, NULL, 0, NULL},
};

static const sb_option_more router_more[] = {
    {"services", service_fields, 0},
    {"token_auth", NULL, SB_OPTION_SECRET},
    {NULL, NULL, 0},
};

typedef struct router router;
typedef struct service service;
typedef struct backend backend;
typedef struct upconn upconn;
typedef struct proxy proxy;

typedef enum be_state { BE_STARTING, BE_READY, BE_STOPPING, BE_FAILED } be_state;

struct backend {
    service *svc;
    char *id;
    char *address;
    struct sockaddr_storage addr;
    bool addr_ok;
    be_state state;
    bool listed;
    bool drained_sent;
    int in_flight;
    unsigned fails;
    uint64_t ejected_until;
    /* the router's own health check (services with health_path) */
    bool healthy;
    sb_http *probe; /* in flight */
    uint64_t next_probe;
    uint64_t probe_gap; /* not yet healthy: 1 ms, doubling up to 250 ms between checks */
    /* Until an instance has accepted a connection, a refused one means "still starting" (a
     * scaler without a readiness probe lists it ready at once): the request waits and the
     * instance is tried again after 1 ms, 2 ms, 4 ms... (at most 250 ms), not ejected for 1 s. */
    bool accepted_once;
    unsigned start_refusals;
    int refs; /* upconns that point here */
    upconn *idle; /* the keep-alive pool */
    size_t nidle;
    backend *next;
};

struct service {
    router *rt;
    const char *name;
    const char *const *hosts;
    size_t nhosts;
    const char *backend_id;
    int slots;
    uint64_t queue_timeout_ms;
    int64_t max_queue;
    uint64_t idle_timeout_ms;
    const char *health_path; /* NULL: none */
    uint64_t health_interval_ms, health_timeout_ms;
    int64_t sub;
    backend *backends;
    proxy *qhead, *qtail;
    size_t queued;
    int in_flight;
    size_t rr;
    uint64_t last_request_ms; /* 0: none yet */
    double published;
    bool published_once;
    uint64_t published_at;
    uint64_t zero_since; /* when the demand last went to 0 */
    bool demand_dirty;   /* changed since the last publish: published at the loop's check */
    uint64_t requests, queue_full, queue_timeouts;
    rt_candidate *cand; /* the balancer's scratch arrays */
    backend **cand_be;
    size_t cand_cap;
};

typedef enum up_phase { UP_CONNECTING, UP_IDLE, UP_BUSY } up_phase;
typedef enum up_deadline { DL_NONE, DL_CONNECT, DL_FIRST_BYTE, DL_READ, DL_KEEPALIVE } up_deadline;

struct upconn {
    router *rt;
    backend *be;
    proxy *px;
    uv_tcp_t tcp;
    uv_connect_t creq;
    llhttp_t parser;
    up_phase phase;
    bool closing;
    up_deadline dl_kind;
    uint64_t deadline;
    /* the response being parsed */
    bool got_byte;
    bool reused; /* taken from the pool: an EOF before any answer may be a stale connection */
    size_t pending; /* bytes queued on writes */
    bool skip_1xx;
    bool msg_done;
    bool pause_reading;
    bool reading;
    bool write_failed; /* a write failed: what follows is dropped, the read side reports it */
    rt_resp_head head;
    upconn *pool_next;
    upconn *all_prev, *all_next;
};

struct proxy {
    router *rt;
    service *svc;
    sb_httpd_exchange *ex;
    backend *be;
    upconn *up;
    proxy *qprev, *qnext;
    bool queued;
    uint64_t deadline; /* queue_timeout */
    bool idempotent;
    bool head;
    bool retried;
    bool sent_any;       /* a byte of this attempt went upstream */
    bool body_done;      /* the client's body has ended (or there is none) */
    bool body_paused;
    bool started;        /* the response to the client has started */
    rt_body_kind body_kind;
    rt_buf head_buf;     /* the request head for upstream */
    proxy *all_prev, *all_next;
};

struct router {
    sb_instance *inst;
    const sb_host *host;
    uv_loop_t *loop;
    const sb_value *values;
    char listen[128];
    int fd;
    sb_httpd *httpd;
    sb_timer *tick;
    service *svcs;
    size_t nsvcs;
    rt_service_names *names;
    uint64_t connect_timeout_ms, response_timeout_ms, read_timeout_ms, keepalive_ms, stop_ms;
    proxy *proxies; /* every exchange in progress */
    size_t active;
    upconn *upconns;
    size_t handles; /* uv handles open (upconns, the stop timer and check) */
    uint64_t started_ms;
    /* stop */
    bool stopping;
    bool httpd_closing;
    bool httpd_closed;
    bool stopped_told;
    uint64_t stop_deadline;
    uv_timer_t stop_timer;
    uv_check_t stop_check;
    bool stop_handles_open;
    /* Demand changes are published once per loop iteration (its check phase), however many
     * requests began or ended in it: still at once for a cold start, one publish (and one bus
     * wake-up) for a whole batch of answers under load. */
    uv_check_t publish_check;
    bool publish_check_open, publish_check_active;
    /* One-shot: the next moment a queued request may go (an ejection that ends) or a health
     * check is due, sooner than the tick would see it. */
    uv_timer_t wake_timer;
    bool wake_timer_open;
    uint64_t wake_due; /* 0: not armed */
    /* counters for /_scalebus/status */
    uint64_t requests, responses_2xx, responses_3xx, responses_4xx, responses_5xx;
    uint64_t bad_gateway, gateway_timeout, retries, ejections, drained;
    rt_tokens_conf tokens; /* /_scalebus/token (router_tokens.c) */
    char read_buf[65536];
};

/* ---- small helpers ------------------------------------------------------------------------- */

static uint64_t now_ms(router *r)
{
    return uv_now(r->loop);
}

#define LOG(r, lvl, ...) (r)->host->log((r)->inst, (lvl), __VA_ARGS__)

static void fmt_ms(uint64_t ms, char *out, size_t len)
{
    if (ms % 1000 == 0)
        snprintf(out, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(out, len, "%llums", (unsigned long long)ms);
}

static void count_status(router *r, int status)
{
    if (status < 300)
        r->responses_2xx++;
    else if (status < 400)
        r->responses_3xx++;
    else if (status < 500)
        r->responses_4xx++;
    else
        r->responses_5xx++;
}

static void service_changed(service *s);
static void upconn_close(upconn *up);
static void proxy_assign(proxy *px, backend *be);
static void router_maybe_finish_stop(router *r);
static void on_stop_handle_closed(uv_handle_t *h);
static void router_wake_at(router *r, uint64_t due);
static void service_probe(service *s);

/* ---- demand ------------------------------------------------------------------------------- */

static void publish_demand(service *s, bool heartbeat)
{
    router *r = s->rt;
    if (r->stopping)
        return;
    uint64_t now = now_ms(r);
    double outstanding = (double)s->queued + (double)s->in_flight;
    bool warm = s->last_request_ms && now - s->last_request_ms < s->idle_timeout_ms;
    double value = outstanding > 0 ? outstanding : (warm ? 1 : 0);
    /* Again every second while unchanged, as policies smooth by elapsed time (a waiter ignores
     * a change that comes within a second of the reading before). A 0 is repeated for 3 s
     * only: then silence, so the reading of the next cold start is more than a second after
     * the last one and acted on at once. */
    bool repeat = heartbeat && now - s->published_at >= 1000 &&
                  (value > 0 || now - s->zero_since < 3000);
    if (s->published_once && value == s->published && !repeat)
        return;
    if (!s->published_once && value == 0)
        return; /* nothing asked yet: the scaler stays as it is */
    sb_label labels[] = {{"service", s->name}};
    sb_publish ev = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .flags = SB_EVENT_COALESCE,
                     .value = value, .labels = labels, .nlabels = 1};
    if (r->host->publish(r->inst, &ev) == 0) {
        if (value == 0 && s->published > 0 && outstanding == 0)
            LOG(r, SB_LOG_INFO, "service %s: idle for %llums, demand 0", s->name,
                (unsigned long long)s->idle_timeout_ms);
        if (value == 0 && (s->published > 0 || !s->published_once))
            s->zero_since = now;
        s->published = value;
        s->published_once = true;
        s->published_at = now;
    }
}

/* ---- backends ----------------------------------------------------------------------------- */

static bool backend_usable(const backend *b)
{
    if (!b->listed || !b->addr_ok)
        return false;
    if (!b->svc->health_path)
        return b->state == BE_READY;
    /* the router's own check may find a starting instance able to serve before its scaler does */
    return (b->state == BE_READY || b->state == BE_STARTING) && b->healthy;
}

static void backend_close_idle(backend *b)
{
    while (b->idle) {
        upconn *up = b->idle;
        b->idle = up->pool_next;
        up->pool_next = NULL;
        b->nidle--;
        upconn_close(up);
    }
}

static void backend_free(backend *b)
{
    if (b->probe) {
        router *r = b->svc->rt;
        r->host->http_cancel(r->inst, b->probe);
    }
    free(b->id);
    free(b->address);
    free(b);
}

/* Free the backends no longer listed once nothing points at them. */
static void service_sweep(service *s)
{
    backend **pp = &s->backends;
    while (*pp) {
        backend *b = *pp;
        if (!b->listed && b->refs == 0 && b->in_flight == 0) {
            *pp = b->next;
            backend_free(b);
        } else {
            pp = &b->next;
        }
    }
}

static void backend_eject(backend *b, const char *why)
{
    router *r = b->svc->rt;
    b->fails++;
    uint64_t wait = rt_backoff_ms(b->fails);
    b->ejected_until = now_ms(r) + wait;
    r->ejections++;
    LOG(r, SB_LOG_WARN, "service %s: instance %s (%s) ejected for %llums: %s", b->svc->name, b->id,
        b->address ? b->address : "-", (unsigned long long)wait, why);
    backend_close_idle(b);
    router_wake_at(r, b->ejected_until);
}

static int parse_address(const char *address, struct sockaddr_storage *out)
{
    char host[128];
    const char *colon = strrchr(address, ':');
    if (!colon || colon == address || strlen(address) >= sizeof host)
        return -EINVAL;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535)
        return -EINVAL;
    size_t n = (size_t)(colon - address);
    if (address[0] == '[' && n >= 2 && address[n - 1] == ']') {
        memcpy(host, address + 1, n - 2);
        host[n - 2] = '\0';
        return uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)out);
    }
    memcpy(host, address, n);
    host[n] = '\0';
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out);
}

static be_state state_from(const char *s)
{
    if (!s)
        return BE_FAILED;
    if (strcmp(s, "ready") == 0)
        return BE_READY;
    if (strcmp(s, "starting") == 0)
        return BE_STARTING;
    if (strcmp(s, "stopping") == 0)
        return BE_STOPPING;
    return BE_FAILED;
}

static const char *state_name(be_state s)
{
    switch (s) {
    case BE_STARTING:
        return "starting";
    case BE_READY:
        return "ready";
    case BE_STOPPING:
        return "stopping";
    default:
        return "failed";
    }
}

/* A new instance list from the backend scaler. */
static void apply_instances(service *s, const cJSON *list);

static void on_instances(void *arg, const sb_event *ev)
{
    service *s = arg;
    if (!cJSON_IsArray(ev->payload))
        return;
    /* also the newest list when this router has just replaced another: the host hands a new
     * subscription the scaler's last list (host version 5), so it routes at once */
    apply_instances(s, ev->payload);
}

static void apply_instances(service *s, const cJSON *list)
{
    router *r = s->rt;
    for (backend *b = s->backends; b; b = b->next)
        b->listed = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, list)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "id"));
        const char *address =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "address"));
        const char *state = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, "state"));
        if (!id || strlen(id) > 512)
            continue;
        backend *b = s->backends;
        while (b && strcmp(b->id, id) != 0)
            b = b->next;
        if (!b) {
            b = calloc(1, sizeof *b);
            if (!b || !(b->id = strdup(id))) {
                free(b);
                continue;
            }
            b->svc = s;
            b->next = s->backends;
            s->backends = b;
        }
        b->listed = true;
        be_state st = state_from(state);
        if (st != b->state) {
            if (st == BE_READY)
                LOG(r, SB_LOG_INFO, "service %s: instance %s ready at %s", s->name, b->id,
                    address ? address : "-");
            if (st != BE_STOPPING)
                b->drained_sent = false;
            if (st != BE_READY)
                backend_close_idle(b);
            b->state = st;
        }
        if (!address || strlen(address) > 256) {
            b->addr_ok = false;
        } else if (!b->address || strcmp(b->address, address) != 0) {
            char *copy = strdup(address);
            if (copy) {
                free(b->address);
                b->address = copy;
                backend_close_idle(b);
                b->healthy = false;
                b->next_probe = 0; /* checked at once (health_path) */
                b->probe_gap = 0;
                b->accepted_once = false;
                b->start_refusals = 0;
                b->addr_ok = parse_address(address, &b->addr) == 0;
                b->fails = 0;
                b->ejected_until = 0;
                if (!b->addr_ok)
                    LOG(r, SB_LOG_WARN,
                        "service %s: instance %s: address '%s' is not a numeric host:port",
                        s->name, b->id, address);
            }
        }
    }
    for (backend *b = s->backends; b; b = b->next)
        if (!b->listed)
            backend_close_idle(b);
    service_sweep(s);
    service_probe(s); /* a new instance is checked now, not at the next tick */
    service_changed(s);
}

/* Tell the scaler about stopping instances that have nothing left in flight. */
static void service_drain_check(service *s)
{
    router *r = s->rt;
    if (r->stopping)
        return;
    for (backend *b = s->backends; b; b = b->next) {
        if (!b->listed || b->state != BE_STOPPING || b->in_flight > 0 || b->drained_sent)
            continue;
        sb_label labels[] = {{"instance", b->id}, {"scaler", s->backend_id}};
        sb_publish ev = {SB_PUBLISH_INIT, .topic = SB_TOPIC_DRAINED, .labels = labels,
                         .nlabels = 2};
        if (r->host->publish(r->inst, &ev) == 0) {
            b->drained_sent = true;
            r->drained++;
            LOG(r, SB_LOG_INFO, "service %s: instance %s drained", s->name, b->id);
        }
    }
}

/* ---- the router's own health check --------------------------------------------------------- */

static void on_probe_done(void *arg, const sb_http_response *res)
{
    backend *b = arg;
    service *s = b->svc;
    router *r = s->rt;
    b->probe = NULL;
    bool pass = res->error == 0 && res->status >= 200 && res->status < 400;
    uint64_t now = now_ms(r);
    uint64_t wait = s->health_interval_ms;
    if (pass) {
        b->probe_gap = 0;
    } else {
        /* one not yet healthy is looked at again soon (a cold start waits on it): 1 ms, then
         * doubling up to 250 ms */
        b->probe_gap = b->probe_gap ? b->probe_gap * 2 : 1;
        if (b->probe_gap > 250)
            b->probe_gap = 250;
        if (wait > b->probe_gap)
            wait = b->probe_gap;
    }
    b->next_probe = now + wait;
    router_wake_at(r, b->next_probe);
    if (pass != b->healthy) {
        char why[160];
        if (res->error)
            rt_clean(res->error_text, why, sizeof why);
        else
            snprintf(why, sizeof why, "status %ld", res->status);
        LOG(r, pass ? SB_LOG_INFO : SB_LOG_WARN, "service %s: instance %s %s its health check%s%s",
            s->name, b->id, pass ? "passes" : "fails", pass ? "" : ": ", pass ? "" : why);
        b->healthy = pass;
        if (!pass)
            backend_close_idle(b);
        service_changed(s);
    }
}

static void service_probe(service *s)
{
    router *r = s->rt;
    if (!s->health_path || r->stopping)
        return;
    uint64_t now = now_ms(r);
    for (backend *b = s->backends; b; b = b->next) {
        if (!b->listed || !b->addr_ok || b->probe || now < b->next_probe ||
            (b->state != BE_READY && b->state != BE_STARTING))
            continue;
        char url[512];
        snprintf(url, sizeof url, "http://%s%s", b->address, s->health_path);
        sb_http_request req = {SB_HTTP_REQUEST_INIT, .method = "GET", .url = url,
                               .timeout_ms = s->health_timeout_ms, .max_body = 65536};
        b->next_probe = now + 250; /* if it cannot even start */
        if (r->host->http_request(r->inst, &req, on_probe_done, b, &b->probe) < 0)
            b->probe = NULL;
    }
}

/* ---- the queue ---------------------------------------------------------------------------- */

static void queue_push(service *s, proxy *px, bool front)
{
    px->queued = true;
    if (front) {
        px->qprev = NULL;
        px->qnext = s->qhead;
        if (s->qhead)
            s->qhead->qprev = px;
        else
            s->qtail = px;
        s->qhead = px;
    } else {
        px->qnext = NULL;
        px->qprev = s->qtail;
        if (s->qtail)
            s->qtail->qnext = px;
        else
            s->qhead = px;
        s->qtail = px;
    }
    s->queued++;
}

static void queue_remove(service *s, proxy *px)
{
    if (!px->queued)
        return;
    if (px->qprev)
        px->qprev->qnext = px->qnext;
    else
        s->qhead = px->qnext;
    if (px->qnext)
        px->qnext->qprev = px->qprev;
    else
        s->qtail = px->qprev;
    px->qprev = px->qnext = NULL;
    px->queued = false;
    s->queued--;
}

static void service_dispatch(service *s)
{
    router *r = s->rt;
    while (s->qhead) {
        size_t n = 0;
        for (backend *b = s->backends; b; b = b->next)
            n++;
        if (n == 0)
            return;
        if (n > s->cand_cap) {
            rt_candidate *c = realloc(s->cand, n * sizeof *c);
            if (c)
                s->cand = c;
            backend **b2 = realloc(s->cand_be, n * sizeof *b2);
            if (b2)
                s->cand_be = b2;
            if (!c || !b2)
                return; /* tried again on the next change or tick */
            s->cand_cap = n;
        }
        rt_candidate *cand = s->cand;
        backend **bs = s->cand_be;
        size_t i = 0;
        for (backend *b = s->backends; b; b = b->next, i++) {
            bs[i] = b;
            cand[i] = (rt_candidate){backend_usable(b), b->in_flight, b->ejected_until};
        }
        int k = rt_pick(cand, n, s->slots, now_ms(r), s->rr++ % n);
        if (k < 0)
            return;
        proxy *px = s->qhead;
        queue_remove(s, px);
        proxy_assign(px, bs[k]);
    }
}

static void on_wake_timer(uv_timer_t *h)
{
    router *r = h->data;
    r->wake_due = 0;
    for (size_t i = 0; i < r->nsvcs; i++) {
        service_probe(&r->svcs[i]);
        service_dispatch(&r->svcs[i]);
    }
}

/* Look at the services again at `due` (ms on the loop's clock) at the latest. */
static void router_wake_at(router *r, uint64_t due)
{
    if (!r->wake_timer_open || r->stopping || (r->wake_due && r->wake_due <= due))
        return;
    uint64_t now = now_ms(r);
    r->wake_due = due;
    uv_timer_start(&r->wake_timer, on_wake_timer, due > now ? due - now : 0, 0);
}

static void on_publish_check(uv_check_t *h)
{
    router *r = h->data;
    uv_check_stop(h);
    r->publish_check_active = false;
    for (size_t i = 0; i < r->nsvcs; i++)
        if (r->svcs[i].demand_dirty) {
            r->svcs[i].demand_dirty = false;
            publish_demand(&r->svcs[i], false);
        }
}

static void service_changed(service *s)
{
    router *r = s->rt;
    service_dispatch(s);
    service_drain_check(s);
    if (!r->publish_check_open) { /* not started (or stopped): nothing to defer to */
        publish_demand(s, false);
        return;
    }
    s->demand_dirty = true;
    if (!r->publish_check_active) {
        uv_check_start(&r->publish_check, on_publish_check);
        r->publish_check_active = true;
    }
}

/* ---- proxies (one per exchange) ----------------------------------------------------------- */

/* The exchange has ended (answered or aborted): give back its slot and forget it. */
static void proxy_release(proxy *px)
{
    router *r = px->rt;
    service *s = px->svc;
    queue_remove(s, px);
    if (px->up) {
        upconn *up = px->up;
        up->px = NULL;
        px->up = NULL;
        /* mid-exchange: the connection cannot be reused */
        if (up->phase != UP_IDLE && !(up->msg_done && px->body_done))
            upconn_close(up);
    }
    if (px->be) {
        px->be->in_flight--;
        s->in_flight--;
        px->be = NULL;
    }
    if (px->all_prev)
        px->all_prev->all_next = px->all_next;
    else
        r->proxies = px->all_next;
    if (px->all_next)
        px->all_next->all_prev = px->all_prev;
    r->active--;
    rt_buf_free(&px->head_buf);
    if (px->ex)
        sb_httpd_exchange_set_data(px->ex, NULL);
    free(px);
    service_sweep(s);
    service_changed(s);
    router_maybe_finish_stop(r);
}

/* Answer with a plain error (or cut the response when it has started) and end the exchange. */
static void proxy_fail(proxy *px, int status, const char *text)
{
    router *r = px->rt;
    if (px->ex) {
        if (!px->started) {
            sb_httpd_respond_text(px->ex, status, text);
            count_status(r, status);
            if (status == 502)
                r->bad_gateway++;
            else if (status == 504)
                r->gateway_timeout++;
        } else {
            /* the answer broke after its head: the client must see a cut (no last chunk, the
             * connection closed), never a complete answer */
            sb_httpd_stream_abort(px->ex);
        }
        px->ex = NULL;
    }
    proxy_release(px);
}

/* ---- upstream connections ------------------------------------------------------------------ */

static void on_up_closed(uv_handle_t *h)
{
    upconn *up = h->data;
    router *r = up->rt;
    backend *b = up->be;
    rt_buf_free(&up->head.buf);
    free(up);
    r->handles--;
    if (b) {
        b->refs--;
        service_sweep(b->svc);
    }
    router_maybe_finish_stop(r);
}

static void upconn_unlink(upconn *up)
{
    router *r = up->rt;
    if (up->all_prev)
        up->all_prev->all_next = up->all_next;
    else if (r->upconns == up)
        r->upconns = up->all_next;
    if (up->all_next)
        up->all_next->all_prev = up->all_prev;
    up->all_prev = up->all_next = NULL;
}

static void upconn_close(upconn *up)
{
    if (up->closing)
        return;
    up->closing = true;
    if (up->px) {
        up->px->up = NULL;
        up->px = NULL;
    }
    /* out of its pool if it is there */
    backend *b = up->be;
    if (b && up->phase == UP_IDLE) {
        upconn **pp = &b->idle;
        while (*pp && *pp != up)
            pp = &(*pp)->pool_next;
        if (*pp) {
            *pp = up->pool_next;
            b->nidle--;
        }
    }
    upconn_unlink(up);
    uv_close((uv_handle_t *)&up->tcp, on_up_closed);
}

static void upconn_set_deadline(upconn *up, up_deadline kind, uint64_t ms)
{
    up->dl_kind = kind;
    up->deadline = kind == DL_NONE ? 0 : now_ms(up->rt) + ms;
}

/* An attempt failed before anything reached the instance: eject it and try another one once. */
static void proxy_connect_failed(proxy *px, const char *why)
{
    router *r = px->rt;
    service *s = px->svc;
    if (px->be) {
        backend_eject(px->be, why);
        px->be->in_flight--;
        s->in_flight--;
        px->be = NULL;
    }
    px->up = NULL;
    if (px->idempotent && !px->retried && !r->stopping) {
        px->retried = true;
        r->retries++;
        queue_push(s, px, true);
        service_changed(s);
        return;
    }
    char text[200];
    snprintf(text, sizeof text, "502 bad gateway: cannot connect to an instance of %s (%s)",
             s->name, why);
    proxy_fail(px, 502, text);
}

/* The instance refused the connection before it ever accepted one: it is still starting (its
 * scaler has no readiness probe, or listed it a moment early). Nothing was sent, so the request
 * waits at the head of the queue, whatever its method, without using its one retry; the instance
 * is tried again soon. queue_timeout still bounds the wait. */
static void proxy_instance_starting(proxy *px, backend *b)
{
    router *r = px->rt;
    service *s = px->svc;
    if (b->start_refusals < 8)
        b->start_refusals++;
    uint64_t wait = (uint64_t)1 << (b->start_refusals - 1); /* 1, 2, 4 ... 128 ms */
    b->ejected_until = now_ms(r) + (wait > 250 ? 250 : wait);
    if (px->be) {
        px->be->in_flight--;
        s->in_flight--;
        px->be = NULL;
    }
    px->up = NULL;
    queue_push(s, px, true);
    router_wake_at(r, b->ejected_until);
    service_changed(s);
}

/* The instance closed a pooled connection as the request went out: no need to eject it. */
static void proxy_retry_stale(proxy *px)
{
    router *r = px->rt;
    service *s = px->svc;
    if (px->be) {
        px->be->in_flight--;
        s->in_flight--;
        px->be = NULL;
    }
    px->up = NULL;
    px->retried = true;
    r->retries++;
    queue_push(s, px, true);
    service_changed(s);
}

static void on_up_write(uv_write_t *req, int status)
{
    upconn *up = req->data;
    size_t len = *(size_t *)(req + 1);
    free(req);
    if (status == UV_ECANCELED)
        return; /* closed: its proxy is handled already */
    up->pending -= len;
    proxy *px = up->px;
    if (!px || status < 0)
        return; /* a broken connection: the read side reports it */
    if (px->body_paused && up->pending < RT_UP_WRITE_MAX / 2 && px->ex && !px->body_done) {
        px->body_paused = false;
        sb_httpd_body_resume(px->ex);
    }
}

/* Send bytes to the instance: written at once with one writev when nothing is queued (no
 * request, no copy, no epoll_ctl), only the rest copied and queued. 0 or a negative uv code. */
static int upconn_write(upconn *up, const char *a, size_t alen, const char *b, size_t blen,
                        const char *c, size_t clen)
{
    uv_buf_t bufs[3];
    unsigned n = 0;
    if (alen)
        bufs[n++] = uv_buf_init((char *)a, (unsigned)alen);
    if (blen)
        bufs[n++] = uv_buf_init((char *)b, (unsigned)blen);
    if (clen)
        bufs[n++] = uv_buf_init((char *)c, (unsigned)clen);
    size_t total = alen + blen + clen, done = 0;
    if (total == 0 || up->write_failed)
        return 0;
    if (up->pending == 0) {
        int rc = uv_try_write((uv_stream_t *)&up->tcp, bufs, n);
        if (rc >= 0) {
            done = (size_t)rc;
        } else if (rc != UV_EAGAIN) {
            /* as a queued write that fails: the read side reports the broken connection (a
             * pooled one the instance had closed is then retried, not ejected) */
            up->write_failed = true;
            return 0;
        }
        if (done == total)
            return 0;
    }
    size_t rest = total - done;
    uv_write_t *req = malloc(sizeof *req + sizeof(size_t) + rest);
    if (!req)
        return UV_ENOMEM;
    *(size_t *)(req + 1) = rest;
    char *p = (char *)(req + 1) + sizeof(size_t);
    size_t at = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t l = bufs[i].len;
        if (done >= l) {
            done -= l;
            continue;
        }
        memcpy(p + at, bufs[i].base + done, l - done);
        at += l - done;
        done = 0;
    }
    req->data = up;
    uv_buf_t buf = uv_buf_init(p, (unsigned)rest);
    int rc = uv_write(req, (uv_stream_t *)&up->tcp, &buf, 1, on_up_write);
    if (rc < 0) {
        free(req);
        return rc;
    }
    up->pending += rest;
    return 0;
}

static void on_up_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    upconn *up = h->data;
    /* one buffer per router: each read is parsed before the next one is taken */
    *buf = uv_buf_init(up->rt->read_buf, sizeof up->rt->read_buf);
}

static void on_up_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void upconn_read_start(upconn *up)
{
    if (!up->reading && !up->closing) {
        uv_read_start((uv_stream_t *)&up->tcp, on_up_alloc, on_up_read);
        up->reading = true;
    }
}

/* Start sending px's request on a connected up. */
static void upconn_send(upconn *up, proxy *px)
{
    router *r = up->rt;
    up->px = px;
    px->up = up;
    up->phase = UP_BUSY;
    up->got_byte = up->msg_done = up->skip_1xx = false;
    rt_resp_reset(&up->head);
    llhttp_reset(&up->parser);
    upconn_read_start(up);
    upconn_set_deadline(up, DL_FIRST_BYTE, r->response_timeout_ms);
    if (upconn_write(up, px->head_buf.p, px->head_buf.len, NULL, 0, NULL, 0) < 0) {
        upconn_close(up);
        proxy_connect_failed(px, "write failed");
        return;
    }
    px->sent_any = true;
    if (!px->body_done && px->ex)
        sb_httpd_body_resume(px->ex);
}

static void on_up_connect(uv_connect_t *req, int status)
{
    upconn *up = req->data;
    if (status == UV_ECANCELED || up->closing)
        return;
    proxy *px = up->px;
    if (status < 0) {
        backend *b = up->be;
        upconn_close(up); /* detaches px */
        if (px && status == UV_ECONNREFUSED && !b->accepted_once && b->listed &&
            !up->rt->stopping)
            proxy_instance_starting(px, b);
        else if (px)
            proxy_connect_failed(px, uv_strerror(status));
        return;
    }
    up->be->fails = 0;
    up->be->accepted_once = true;
    uv_tcp_nodelay(&up->tcp, 1);
    if (!px) { /* its request went away while connecting: keep the connection */
        up->phase = UP_IDLE;
        upconn_close(up);
        return;
    }
    up->px = NULL;
    upconn_send(up, px);
}

static int on_resp_header_field(llhttp_t *p, const char *at, size_t len);
static int on_resp_header_value(llhttp_t *p, const char *at, size_t len);
static int on_resp_headers_complete(llhttp_t *p);
static int on_resp_body(llhttp_t *p, const char *at, size_t len);
static int on_resp_message_complete(llhttp_t *p);

static llhttp_settings_t resp_settings;

static void proxy_assign(proxy *px, backend *be)
{
    router *r = px->rt;
    service *s = px->svc;
    be->in_flight++;
    s->in_flight++;
    px->be = be;
    px->sent_any = false;
    /* a pooled connection first */
    while (be->idle) {
        upconn *up = be->idle;
        be->idle = up->pool_next;
        up->pool_next = NULL;
        be->nidle--;
        if (up->closing)
            continue;
        up->reused = true;
        upconn_send(up, px);
        return;
    }
    upconn *up = calloc(1, sizeof *up);
    if (!up) {
        proxy_connect_failed(px, "out of memory");
        return;
    }
    up->rt = r;
    up->be = be;
    if (uv_tcp_init(r->loop, &up->tcp) < 0) {
        free(up);
        proxy_connect_failed(px, "cannot open a socket");
        return;
    }
    up->tcp.data = up;
    be->refs++;
    r->handles++;
    llhttp_init(&up->parser, HTTP_RESPONSE, &resp_settings);
    up->parser.data = up;
    up->all_next = r->upconns;
    if (r->upconns)
        r->upconns->all_prev = up;
    r->upconns = up;
    up->phase = UP_CONNECTING;
    up->px = px;
    px->up = up;
    up->creq.data = up;
    upconn_set_deadline(up, DL_CONNECT, r->connect_timeout_ms);
    int rc = uv_tcp_connect(&up->creq, &up->tcp, (const struct sockaddr *)&be->addr,
                            on_up_connect);
    if (rc < 0) {
        upconn_close(up);
        proxy_connect_failed(px, uv_strerror(rc));
    }
}

/* ---- the response from the instance ------------------------------------------------------- */

static int on_resp_header_field(llhttp_t *p, const char *at, size_t len)
{
    upconn *up = p->data;
    return rt_resp_field(&up->head, at, len);
}

static int on_resp_header_value(llhttp_t *p, const char *at, size_t len)
{
    upconn *up = p->data;
    return rt_resp_value(&up->head, at, len);
}

static int on_resp_headers_complete(llhttp_t *p)
{
    upconn *up = p->data;
    router *r = up->rt;
    proxy *px = up->px;
    int status = p->status_code;
    if (status < 200) { /* 100 Continue and friends: the client got its own */
        up->skip_1xx = true;
        return 0;
    }
    up->skip_1xx = false;
    if (!px || !px->ex)
        return px && px->head ? 1 : 0;
    rt_header in[RT_MAX_RESP_HEADERS], out[RT_MAX_RESP_HEADERS + 1];
    int n = rt_resp_finish(&up->head, in);
    if (n < 0)
        return -1;
    char via[512];
    size_t k = rt_response_headers(in, (size_t)n, out, via, sizeof via);
    sb_httpd_header hs[RT_MAX_RESP_HEADERS + 1];
    for (size_t i = 0; i < k; i++)
        hs[i] = (sb_httpd_header){out[i].name, out[i].value};
    int64_t length = -1;
    if ((p->flags & F_CONTENT_LENGTH) && !(p->flags & F_CHUNKED))
        length = (int64_t)p->content_length;
    int rc;
    if (px->head && length >= 0)
        rc = sb_httpd_respond(px->ex, status, hs, k, NULL, (size_t)length);
    else
        rc = sb_httpd_stream_start(px->ex, status, hs, k, px->head ? -1 : length);
    if (rc == -EINVAL) {
        sb_httpd_respond_text(px->ex, 502, "502 bad gateway: the instance sent a header that cannot be passed on");
        r->bad_gateway++;
        count_status(r, 502);
        px->ex = NULL;
        return -1;
    }
    count_status(r, status);
    px->started = true;
    if (px->head && length >= 0)
        px->ex = NULL; /* answered whole */
    return px->head ? 1 : 0;
}

static int on_resp_body(llhttp_t *p, const char *at, size_t len)
{
    upconn *up = p->data;
    proxy *px = up->px;
    if (!px || !px->ex)
        return 0;
    int w = sb_httpd_stream_write(px->ex, at, len);
    if (w == 1)
        up->pause_reading = true; /* until on_drain */
    else if (w < 0)
        return -1;
    return 0;
}

static int on_resp_message_complete(llhttp_t *p)
{
    upconn *up = p->data;
    if (up->skip_1xx) {
        up->skip_1xx = false;
        rt_resp_reset(&up->head);
        return 0;
    }
    up->msg_done = true;
    return HPE_PAUSED;
}

/* The response has ended: end the client's, and pool or close the connection. */
static void upconn_message_done(upconn *up, bool extra_bytes)
{
    router *r = up->rt;
    proxy *px = up->px;
    bool keep = !extra_bytes && llhttp_should_keep_alive(&up->parser) && px && px->body_done &&
                !r->stopping && !up->write_failed;
    if (px) {
        if (px->ex) {
            sb_httpd_stream_end(px->ex);
            px->ex = NULL;
        }
        px->svc->requests++;
        /* proxy_release closes up unless it can be reused: say it can */
        if (keep)
            up->phase = UP_IDLE;
        proxy_release(px);
    }
    if (up->closing)
        return;
    backend *b = up->be;
    size_t pool_max = (size_t)b->svc->slots < RT_MAX_IDLE_PER_INSTANCE ? (size_t)b->svc->slots
                                                                        : RT_MAX_IDLE_PER_INSTANCE;
    if (!keep || !backend_usable(b) || b->nidle >= pool_max) {
        upconn_close(up);
        return;
    }
    up->phase = UP_IDLE;
    up->msg_done = false;
    llhttp_resume(&up->parser);
    upconn_set_deadline(up, DL_KEEPALIVE, r->keepalive_ms);
    up->pool_next = b->idle;
    b->idle = up;
    b->nidle++;
    upconn_read_start(up);
    service_dispatch(b->svc);
}

/* The connection ended or broke before its response was complete. */
static void upconn_broken(upconn *up, const char *why)
{
    proxy *px = up->px;
    upconn_close(up); /* detaches px */
    if (!px)
        return;
    char text[200];
    if (!px->started) {
        snprintf(text, sizeof text, "502 bad gateway: the instance of %s %s", px->svc->name,
                 why);
        proxy_fail(px, 502, text);
    } else {
        proxy_fail(px, 502, "cut");
    }
}

static void on_up_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    upconn *up = stream->data;
    if (up->closing)
        return;
    if (up->phase == UP_IDLE) {
        upconn_close(up); /* EOF or unexpected bytes on an idle connection */
        return;
    }
    if (nread == 0)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && up->got_byte) {
            /* a body delimited by the close ends here */
            llhttp_errno_t err = llhttp_finish(&up->parser);
            if ((err == HPE_OK || err == HPE_PAUSED) && up->msg_done) {
                upconn_message_done(up, true);
                return;
            }
        }
        proxy *px = up->px;
        if (!up->got_byte && up->reused && px && px->idempotent && !px->retried &&
            px->body_kind == RT_BODY_NONE && !px->started) {
            /* a pooled connection the instance had closed: the request is sent again once */
            upconn_close(up);
            proxy_retry_stale(px);
            return;
        }
        if (!up->got_byte && px && px->idempotent && !px->retried &&
            px->body_kind == RT_BODY_NONE && !px->started) {
            /* The instance closed before answering (it is being stopped, or died): an
             * idempotent request without a body may be sent again (RFC 9110, 9.2.2), once, to
             * another instance; this one is ejected. */
            upconn_close(up); /* detaches px */
            proxy_connect_failed(px, "closed the connection before answering");
            return;
        }
        upconn_broken(up, up->got_byte ? "closed the connection mid-response"
                                       : "closed the connection before answering");
        return;
    }
    up->got_byte = true;
    upconn_set_deadline(up, DL_READ, up->rt->read_timeout_ms);
    llhttp_errno_t err = llhttp_execute(&up->parser, buf->base, (size_t)nread);
    if (err == HPE_PAUSED && up->msg_done) {
        const char *stop = llhttp_get_error_pos(&up->parser);
        bool extra = stop && stop < buf->base + nread;
        upconn_message_done(up, extra);
        return;
    }
    if (err != HPE_OK) {
        upconn_broken(up, "sent an invalid response");
        return;
    }
    if (up->pause_reading && up->px) {
        uv_read_stop(stream);
        up->reading = false;
        up->pause_reading = false;
        upconn_set_deadline(up, DL_NONE, 0); /* the client is slow, not the instance */
    }
}

/* ---- the client side (sb_httpd callbacks) --------------------------------------------------- */

static void respond_json(sb_httpd_exchange *ex, cJSON *doc)
{
    char *text = doc ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    if (!text) {
        sb_httpd_respond_text(ex, 500, "500 out of memory");
        return;
    }
    static const sb_httpd_header h[] = {{"Content-Type", "application/json"},
                                        {"Cache-Control", "no-store"}};
    sb_httpd_respond(ex, 200, h, 2, text, strlen(text));
    free(text);
}

static cJSON *apps_json(router *r)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(doc, "services");
    uint64_t now = now_ms(r);
    for (size_t i = 0; i < r->nsvcs; i++) {
        service *s = &r->svcs[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", s->name);
        cJSON_AddStringToObject(o, "backend", s->backend_id);
        cJSON *hosts = cJSON_AddArrayToObject(o, "hosts");
        for (size_t j = 0; j < s->nhosts; j++)
            cJSON_AddItemToArray(hosts, cJSON_CreateString(s->hosts[j]));
        cJSON_AddNumberToObject(o, "concurrency_level", s->slots);
        cJSON_AddNumberToObject(o, "queued", (double)s->queued);
        cJSON_AddNumberToObject(o, "in_flight", s->in_flight);
        cJSON_AddNumberToObject(o, "demand", s->published_once ? s->published : 0);
        cJSON_AddNumberToObject(o, "requests", (double)s->requests);
        cJSON_AddNumberToObject(o, "queue_full", (double)s->queue_full);
        cJSON_AddNumberToObject(o, "queue_timeouts", (double)s->queue_timeouts);
        cJSON *insts = cJSON_AddArrayToObject(o, "instances");
        for (backend *b = s->backends; b; b = b->next) {
            if (!b->listed)
                continue;
            cJSON *bo = cJSON_CreateObject();
            cJSON_AddStringToObject(bo, "id", b->id);
            if (b->address)
                cJSON_AddStringToObject(bo, "address", b->address);
            cJSON_AddStringToObject(bo, "state", state_name(b->state));
            cJSON_AddNumberToObject(bo, "in_flight", b->in_flight);
            cJSON_AddNumberToObject(bo, "pooled", (double)b->nidle);
            cJSON_AddBoolToObject(bo, "ejected", b->ejected_until > now);
            if (s->health_path)
                cJSON_AddBoolToObject(bo, "healthy", b->healthy);
            cJSON_AddItemToArray(insts, bo);
        }
        cJSON_AddItemToArray(arr, o);
    }
    return doc;
}

static cJSON *status_json(router *r)
{
    cJSON *doc = cJSON_CreateObject();
    sb_httpd_stats st = {0};
    if (r->httpd)
        sb_httpd_get_stats(r->httpd, &st);
    cJSON_AddStringToObject(doc, "listen", r->listen);
    cJSON_AddNumberToObject(doc, "uptime_ms", (double)(now_ms(r) - r->started_ms));
    cJSON_AddNumberToObject(doc, "connections", (double)st.connections);
    cJSON_AddNumberToObject(doc, "accepted", (double)st.accepted);
    cJSON_AddNumberToObject(doc, "requests", (double)r->requests);
    cJSON_AddNumberToObject(doc, "in_progress", (double)r->active);
    cJSON_AddNumberToObject(doc, "rejected_by_server", (double)st.errors);
    cJSON *resp = cJSON_AddObjectToObject(doc, "responses");
    cJSON_AddNumberToObject(resp, "2xx", (double)r->responses_2xx);
    cJSON_AddNumberToObject(resp, "3xx", (double)r->responses_3xx);
    cJSON_AddNumberToObject(resp, "4xx", (double)r->responses_4xx);
    cJSON_AddNumberToObject(resp, "5xx", (double)r->responses_5xx);
    cJSON_AddNumberToObject(doc, "bad_gateway", (double)r->bad_gateway);
    cJSON_AddNumberToObject(doc, "gateway_timeout", (double)r->gateway_timeout);
    cJSON_AddNumberToObject(doc, "retries", (double)r->retries);
    cJSON_AddNumberToObject(doc, "ejections", (double)r->ejections);
    cJSON_AddNumberToObject(doc, "drained", (double)r->drained);
    return doc;
}

static void answer_own(router *r, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        count_status(r, 405);
        sb_httpd_respond_text(ex, 405, "405 method not allowed: the router's pages are read with GET");
    } else if (strcmp(req->path, "/_scalebus/apps") == 0) {
        count_status(r, 200);
        respond_json(ex, apps_json(r));
    } else if (strcmp(req->path, "/_scalebus/status") == 0) {
        count_status(r, 200);
        respond_json(ex, status_json(r));
    } else {
        count_status(r, 404);
        sb_httpd_respond_text(ex, 404, "404 not found: the router serves /_scalebus/apps and /_scalebus/status");
    }
}

static sb_httpd_body_mode on_head(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req)
{
    router *r = arg;
    r->requests++;
    if (strncmp(req->path, "/_scalebus/token", 16) == 0 &&
        (req->path[16] == '\0' || req->path[16] == '/'))
        return SB_HTTPD_BUFFER; /* answered with its body, in on_request */
    if (strncmp(req->path, "/_scalebus/", 11) == 0) {
        answer_own(r, ex, req);
        return SB_HTTPD_BUFFER;
    }
    const char *name = sb_httpd_header_get(req, "x-scalebus-service");
    const char *host = sb_httpd_header_get(req, "host");
    int k = rt_select_service(r->names, r->nsvcs, name, host);
    if (k < 0) {
        char clean[160], text[256];
        rt_clean(name ? name : host ? host : "", clean, sizeof clean);
        if (name)
            snprintf(text, sizeof text, "404 not found: no service named '%s' (X-Scalebus-Service)", clean);
        else if (host)
            snprintf(text, sizeof text, "404 not found: no service for host '%s'", clean);
        else
            snprintf(text, sizeof text, "404 not found: the request names no service (no Host, no X-Scalebus-Service)");
        count_status(r, 404);
        sb_httpd_respond_text(ex, 404, text);
        return SB_HTTPD_BUFFER;
    }
    service *s = &r->svcs[k];
    uint64_t now = now_ms(r);
    s->last_request_ms = now ? now : 1;
    proxy *px = calloc(1, sizeof *px);
    char ip[64];
    rt_peer_ip(req->peer, ip, sizeof ip);
    rt_body_kind body = req->chunked                  ? RT_BODY_CHUNKED
                        : req->content_length > 0     ? RT_BODY_LENGTH
                        : req->content_length == 0 && strcmp(req->method, "GET") != 0 &&
                                  strcmp(req->method, "HEAD") != 0
                            ? RT_BODY_LENGTH
                            : RT_BODY_NONE;
    rt_header *hs = calloc(req->header_count + 1, sizeof *hs);
    if (px && hs) {
        for (size_t i = 0; i < req->header_count; i++)
            hs[i] = (rt_header){req->headers[i].name, req->headers[i].value};
        rt_request_head(&px->head_buf, req->method, req->target, req->version_minor, hs,
                        req->header_count, s->name, ip, "http", body, req->content_length);
    }
    bool oom = !hs || !px || px->head_buf.oom;
    free(hs);
    if (oom) {
        if (px)
            rt_buf_free(&px->head_buf);
        free(px);
        count_status(r, 503);
        sb_httpd_respond_text(ex, 503, "503 service unavailable: out of memory");
        return SB_HTTPD_BUFFER;
    }
    px->rt = r;
    px->svc = s;
    px->ex = ex;
    px->idempotent = rt_idempotent(req->method);
    px->head = req->head;
    px->body_kind = body;
    px->body_done = !(req->chunked || req->content_length > 0);
    px->deadline = now + s->queue_timeout_ms;
    px->all_next = r->proxies;
    if (r->proxies)
        r->proxies->all_prev = px;
    r->proxies = px;
    r->active++;
    sb_httpd_exchange_set_data(ex, px);
    if (!px->body_done)
        sb_httpd_body_pause(ex); /* until an instance takes it */
    queue_push(s, px, false);
    service_dispatch(s);
    /* it waits only when no slot is free: the queue holds max_queue at most */
    if (px->queued && (int64_t)s->queued > s->max_queue) {
        s->queue_full++;
        char text[200];
        snprintf(text, sizeof text,
                 "503 service unavailable: queue full (%lld requests wait for %s)",
                 (long long)s->queued - 1, s->name);
        proxy_fail(px, 503, text);
        return SB_HTTPD_BUFFER;
    }
    service_changed(s);
    return SB_HTTPD_STREAM;
}

/* A whole request the router answers itself: /_scalebus/token with its body. */
static void on_request(void *arg, sb_httpd_exchange *ex, const sb_httpd_request *req,
                       const char *body, size_t len)
{
    router *r = arg;
    count_status(r, rt_tokens_serve(&r->tokens, ex, req, body, len));
}

static void on_body(void *arg, sb_httpd_exchange *ex, const char *data, size_t len)
{
    (void)arg;
    proxy *px = sb_httpd_exchange_data(ex);
    if (!px || len == 0)
        return;
    if (!px->up || px->up->phase != UP_BUSY) {
        proxy_fail(px, 502, "502 bad gateway: the instance went away while the body was sent");
        return;
    }
    int rc;
    if (px->body_kind == RT_BODY_CHUNKED) {
        char size[24];
        int sl = snprintf(size, sizeof size, "%zx\r\n", len);
        rc = upconn_write(px->up, size, (size_t)sl, data, len, "\r\n", 2);
    } else {
        rc = upconn_write(px->up, data, len, NULL, 0, NULL, 0);
    }
    if (rc < 0) {
        upconn_broken(px->up, "could not be written to");
        return;
    }
    if (px->up && px->up->pending >= RT_UP_WRITE_MAX && !px->body_paused) {
        px->body_paused = true;
        sb_httpd_body_pause(ex);
    }
}

static void on_body_end(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    proxy *px = sb_httpd_exchange_data(ex);
    if (!px || px->body_done)
        return;
    px->body_done = true;
    if (px->body_kind == RT_BODY_CHUNKED && px->up && px->up->phase == UP_BUSY)
        if (upconn_write(px->up, "0\r\n\r\n", 5, NULL, 0, NULL, 0) < 0)
            upconn_broken(px->up, "could not be written to");
}

static void on_drain(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    proxy *px = sb_httpd_exchange_data(ex);
    if (!px || !px->up)
        return;
    upconn *up = px->up;
    if (!up->reading && !up->closing) {
        upconn_read_start(up);
        upconn_set_deadline(up, DL_READ, px->rt->read_timeout_ms);
    }
}

static void on_abort(void *arg, sb_httpd_exchange *ex)
{
    (void)arg;
    proxy *px = sb_httpd_exchange_data(ex);
    if (!px)
        return;
    px->ex = NULL;
    proxy_release(px);
}

static void on_httpd_log(void *arg, sb_log_level level, const char *line)
{
    router *r = arg;
    /* a client's mistake is its own: the daemon's log says it at debug */
    LOG(r, level == SB_LOG_ERROR ? SB_LOG_ERROR : SB_LOG_DEBUG, "%s", line);
}

static const sb_httpd_callbacks httpd_callbacks = {
    .on_head = on_head,
    .on_request = on_request,
    .on_body = on_body,
    .on_body_end = on_body_end,
    .on_drain = on_drain,
    .on_abort = on_abort,
    .log = on_httpd_log,
};

/* ---- timers ------------------------------------------------------------------------------- */

static void check_timeouts(router *r)
{
    uint64_t now = now_ms(r);
    /* The connections due are gathered first, then handled: handling one changes the list (it
     * closes, a retry opens another), and starting the walk over after each would cost the
     * number of connections times the number due (a pool expiring beside busy connections).
     * An upconn is freed only from its close callback, never during this function. */
    for (;;) {
        upconn *due[64];
        size_t ndue = 0;
        for (upconn *up = r->upconns; up && ndue < sizeof due / sizeof due[0]; up = up->all_next)
            if (up->dl_kind != DL_NONE && now >= up->deadline && !up->closing)
                due[ndue++] = up;
        for (size_t i = 0; i < ndue; i++) {
            upconn *up = due[i];
            if (up->closing || up->dl_kind == DL_NONE || now < up->deadline)
                continue; /* closed or re-armed by the handling of another */
            proxy *px = up->px;
            char text[200], d[32];
            switch (up->dl_kind) {
            case DL_CONNECT:
                upconn_close(up);
                if (px) {
                    fmt_ms(r->connect_timeout_ms, d, sizeof d);
                    snprintf(text, sizeof text, "connect timed out after %s", d);
                    proxy_connect_failed(px, text);
                }
                break;
            case DL_FIRST_BYTE:
                upconn_close(up);
                if (px) {
                    fmt_ms(r->response_timeout_ms, d, sizeof d);
                    snprintf(text, sizeof text,
                             "504 gateway timeout: the instance of %s did not answer within %s",
                             px->svc->name, d);
                    proxy_fail(px, 504, text);
                }
                break;
            case DL_READ:
                upconn_broken(up, "stopped sending its response");
                break;
            default:
                upconn_close(up);
                break;
            }
        }
        if (ndue < sizeof due / sizeof due[0])
            break; /* every due one was handled (each is closed now): no more to find */
    }
    for (size_t i = 0; i < r->nsvcs; i++) {
        service *s = &r->svcs[i];
        proxy *px = s->qhead;
        while (px) {
            proxy *next = px->qnext;
            if (now >= px->deadline) {
                bool any_ready = false;
                for (backend *b = s->backends; b; b = b->next)
                    any_ready = any_ready || backend_usable(b);
                char text[200], d[32];
                fmt_ms(s->queue_timeout_ms, d, sizeof d);
                if (any_ready)
                    snprintf(text, sizeof text,
                             "503 service unavailable: no slot of %s became free within %s",
                             s->name, d);
                else
                    snprintf(text, sizeof text,
                             "503 service unavailable: no instance of %s became ready within %s",
                             s->name, d);
                s->queue_timeouts++;
                proxy_fail(px, 503, text);
                next = s->qhead; /* releasing may dispatch: start over */
            }
            px = next;
        }
        service_probe(s);
        service_dispatch(s); /* ejections that ended */
        publish_demand(s, true);
    }
}

static void on_tick(void *arg)
{
    check_timeouts(arg);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

static void free_services(router *r)
{
    for (size_t i = 0; i < r->nsvcs; i++) {
        backend *b = r->svcs[i].backends;
        while (b) {
            backend *next = b->next;
            backend_free(b);
            b = next;
        }
        free(r->svcs[i].cand);
        free(r->svcs[i].cand_be);
    }
    free(r->svcs);
    free(r->names);
}

static int router_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                         void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, listen)) {
        snprintf(err, errlen, "the router needs a daemon with host->listen (host version 4)");
        return -ENOTSUP;
    }
    router *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    r->inst = inst;
    r->host = host;
    r->values = values;
    r->fd = -1;
    r->loop = host->loop(inst);
    snprintf(r->listen, sizeof r->listen, "%s", values[OPT_LISTEN].str);
    r->connect_timeout_ms = values[OPT_CONNECT_TIMEOUT].duration_ms;
    r->response_timeout_ms = values[OPT_RESPONSE_TIMEOUT].duration_ms;
    r->read_timeout_ms = values[OPT_READ_TIMEOUT].duration_ms;
    r->keepalive_ms = values[OPT_KEEPALIVE_TIMEOUT].duration_ms;
    r->stop_ms = values[OPT_STOP_TIMEOUT].duration_ms;
    r->tokens = (rt_tokens_conf){
        .host = host,
        .inst = inst,
        .router_id = host->instance_id(inst),
        .state_dir = values[OPT_STATE_DIR].is_set ? values[OPT_STATE_DIR].str : NULL,
        .token_auth = values[OPT_TOKEN_AUTH].is_set ? values[OPT_TOKEN_AUTH].str : NULL,
    };
    if (r->tokens.state_dir && r->tokens.state_dir[0] != '/') {
        snprintf(err, errlen, "state_dir: must be an absolute path (it is written at run time)");
        free(r);
        return -EINVAL;
    }
    if (r->tokens.token_auth && strlen(r->tokens.token_auth) < 16) {
        snprintf(err, errlen, "token_auth: at least 16 characters (it lets a client run commands)");
        free(r);
        return -EINVAL;
    }
    const sb_value *sv = &values[OPT_SERVICES];
    r->nsvcs = sv->count;
    r->svcs = calloc(sv->count ? sv->count : 1, sizeof *r->svcs);
    r->names = calloc(sv->count ? sv->count : 1, sizeof *r->names);
    int rc = 0;
    if (!r->svcs || !r->names) {
        snprintf(err, errlen, "out of memory");
        rc = -ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < sv->count; i++) {
        const sb_value *o = sv->objects[i];
        service *s = &r->svcs[i];
        s->rt = r;
        s->name = sv->items[i];
        s->hosts = o[SVC_HOSTS].is_set ? o[SVC_HOSTS].items : NULL;
        s->nhosts = o[SVC_HOSTS].is_set ? o[SVC_HOSTS].count : 0;
        s->backend_id = o[SVC_BACKEND].str;
        s->slots = (int)o[SVC_CONCURRENCY].integer;
        s->queue_timeout_ms = o[SVC_QUEUE_TIMEOUT].duration_ms;
        s->max_queue = o[SVC_MAX_QUEUE].integer;
        s->idle_timeout_ms = o[SVC_IDLE_TIMEOUT].duration_ms;
        s->health_path = o[SVC_HEALTH_PATH].is_set ? o[SVC_HEALTH_PATH].str : NULL;
        s->health_interval_ms = o[SVC_HEALTH_INTERVAL].duration_ms;
        s->health_timeout_ms = o[SVC_HEALTH_TIMEOUT].duration_ms;
        if (s->health_path && (s->health_path[0] != '/' || strpbrk(s->health_path, " \r\n#"))) {
            snprintf(err, errlen, "services.%s.health_path: must be a path starting with '/'",
                     s->name);
            rc = -EINVAL;
            goto fail;
        }
        if (s->health_path && !SB_HOST_HAS(host, http_request)) {
            snprintf(err, errlen, "services.%s.health_path: needs the daemon's HTTP client",
                     s->name);
            rc = -ENOTSUP;
            goto fail;
        }
        r->names[i] = (rt_service_names){s->name, s->hosts, s->nhosts};
        if (o[SVC_CONCURRENCY].integer < 1 || o[SVC_CONCURRENCY].integer > 100000) {
            snprintf(err, errlen, "services.%s.concurrency_level: must be 1 to 100000", s->name);
            rc = -EINVAL;
            goto fail;
        }
        if (s->max_queue < 0) {
            snprintf(err, errlen, "services.%s.max_queue: must be 0 or more", s->name);
            rc = -EINVAL;
            goto fail;
        }
        for (size_t j = 0; j < i; j++)
            for (size_t a = 0; a < s->nhosts; a++)
                for (size_t b = 0; b < r->svcs[j].nhosts; b++)
                    if (strcasecmp(s->hosts[a], r->svcs[j].hosts[b]) == 0) {
                        snprintf(err, errlen, "host '%s' is in services %s and %s", s->hosts[a],
                                 r->svcs[j].name, s->name);
                        rc = -EINVAL;
                        goto fail;
                    }
    }
    for (size_t i = 0; i < r->nsvcs; i++) {
        service *s = &r->svcs[i];
        int64_t h = host->subscribe(inst, s->backend_id, SB_TOPIC_INSTANCES, on_instances, s);
        if (h < 0) {
            snprintf(err, errlen, "services.%s.backend: %s", s->name,
                     h == -ENOENT ? "no component has that id" : "cannot subscribe to it");
            rc = (int)h;
            goto fail;
        }
        s->sub = h;
    }
    r->fd = host->listen(inst, r->listen, 0, err, errlen);
    if (r->fd < 0) {
        rc = r->fd;
        goto fail;
    }
    *state = r;
    return 0;
fail:
    free_services(r);
    free(r);
    return rc ? rc : -EINVAL;
}

static int router_start(void *state)
{
    router *r = state;
    char err[256] = "";
    sb_httpd_config cfg;
    sb_httpd_config_defaults(&cfg);
    r->httpd = sb_httpd_new_fd(r->loop, r->fd, &cfg, &httpd_callbacks, r, err, sizeof err);
    if (!r->httpd) {
        LOG(r, SB_LOG_ERROR, "cannot serve %s: %s", r->listen, err);
        return -EIO;
    }
    r->started_ms = now_ms(r);
    r->tick = r->host->timer_new(r->inst, RT_TICK_MS, RT_TICK_MS, on_tick, r);
    if (!r->tick) {
        LOG(r, SB_LOG_ERROR, "out of memory");
        return -ENOMEM;
    }
    uv_check_init(r->loop, &r->publish_check);
    r->publish_check.data = r;
    r->publish_check_open = true;
    r->handles++;
    uv_timer_init(r->loop, &r->wake_timer);
    r->wake_timer.data = r;
    r->wake_timer_open = true;
    r->handles++;
    LOG(r, SB_LOG_INFO, "serving %s (%zu services)", r->listen, r->nsvcs);
    return 0;
}

static void on_stop_handle_closed(uv_handle_t *h)
{
    router *r = h->data;
    r->handles--;
    router_maybe_finish_stop(r);
}

static void on_httpd_closed(void *arg)
{
    router *r = arg;
    r->httpd_closed = true;
    r->httpd = NULL;
    /* every exchange was aborted: what is left is pooled or half-used connections */
    while (r->upconns)
        upconn_close(r->upconns); /* out of its pool too */
    if (r->stop_handles_open) {
        r->stop_handles_open = false;
        uv_close((uv_handle_t *)&r->stop_timer, on_stop_handle_closed);
        uv_close((uv_handle_t *)&r->stop_check, on_stop_handle_closed);
    }
    router_maybe_finish_stop(r);
}

static void router_close_httpd(router *r)
{
    if (r->httpd_closing)
        return;
    r->httpd_closing = true;
    if (r->httpd)
        sb_httpd_close(r->httpd, on_httpd_closed, r);
    else
        on_httpd_closed(r);
}

static void router_maybe_finish_stop(router *r)
{
    if (!r->stopping || r->stopped_told)
        return;
    if (!r->httpd_closing) {
        sb_httpd_stats st = {0};
        if (r->httpd)
            sb_httpd_get_stats(r->httpd, &st);
        /* no exchange and no connection left: nothing can be lost by closing now (new
         * connections wait in the host's socket for the next instance) */
        if ((r->active == 0 && st.connections == 0) || now_ms(r) >= r->stop_deadline)
            router_close_httpd(r);
        return;
    }
    if (r->httpd_closed && r->handles == 0) {
        r->stopped_told = true;
        r->host->stopped(r->inst);
    }
}

static void on_stop_check(uv_check_t *h)
{
    router_maybe_finish_stop(h->data);
}

static void on_stop_timer(uv_timer_t *h)
{
    router *r = h->data;
    check_timeouts(r);
    router_maybe_finish_stop(r);
}

static int router_stop(void *state)
{
    router *r = state;
    r->stopping = true;
    /* A successor on the same socket (a reload) takes every new connection from here on,
     * instead of racing this router for each accept until it is idle. */
    if (r->httpd)
        sb_httpd_stop_accepting(r->httpd);
    for (size_t i = 0; i < r->nsvcs; i++) /* their handles die with the stop */
        for (backend *b = r->svcs[i].backends; b; b = b->next)
            if (b->probe) {
                r->host->http_cancel(r->inst, b->probe);
                b->probe = NULL;
            }
    if (r->tick) {
        r->host->timer_free(r->tick);
        r->tick = NULL;
    }
    if (r->publish_check_open) { /* a stopping router publishes nothing */
        r->publish_check_open = false;
        r->publish_check_active = false;
        uv_close((uv_handle_t *)&r->publish_check, on_stop_handle_closed);
    }
    if (r->wake_timer_open) { /* the stop timer looks at the queues from here on */
        r->wake_timer_open = false;
        r->wake_due = 0;
        uv_close((uv_handle_t *)&r->wake_timer, on_stop_handle_closed);
    }
    if (!r->httpd && !r->upconns && r->handles == 0)
        return 0;
    uint64_t wait = r->stop_ms;
    if (SB_HOST_HAS(r->host, stop_reason) &&
        r->host->stop_reason(r->inst) != SB_STOP_REPLACED && wait > 2000)
        wait = 2000; /* a shutdown or removal: the backends are going too */
    r->stop_deadline = now_ms(r) + wait;
    uv_timer_init(r->loop, &r->stop_timer);
    uv_check_init(r->loop, &r->stop_check);
    r->stop_timer.data = r;
    r->stop_check.data = r;
    r->handles += 2;
    r->stop_handles_open = true;
    uv_timer_start(&r->stop_timer, on_stop_timer, 20, 20);
    uv_check_start(&r->stop_check, on_stop_check);
    return SB_PENDING;
}

static void router_destroy(void *state)
{
    router *r = state;
    if (!r)
        return;
    if (r->tick)
        r->host->timer_free(r->tick);
    /* stop() has closed every handle; proxies can only be left when start() never ran */
    while (r->proxies) {
        proxy *px = r->proxies;
        r->proxies = px->all_next;
        rt_buf_free(&px->head_buf);
        free(px);
    }
    if (r->fd >= 0)
        close(r->fd);
    free_services(r);
    free(r);
}

static llhttp_settings_t resp_settings = {
    .on_header_field = on_resp_header_field,
    .on_header_value = on_resp_header_value,
    .on_headers_complete = on_resp_headers_complete,
    .on_body = on_resp_body,
    .on_message_complete = on_resp_message_complete,
};

static const sb_plugin_descriptor router_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "router",
    .kind = SB_KIND_TRIGGER,
    .version = "0.1.0",
    .description = "HTTP reverse proxy: starts a service on its first request, balances by "
                   "requests in flight, publishes outstanding requests per service",
    .options = router_options,
    .create = router_create,
    .start = router_start,
    .stop = router_stop,
    .destroy = router_destroy,
    SB_OPTIONS_MORE(router_more),
};

SB_PLUGIN_EXPORT(router_descriptor)
