/*
 * daemon.c - the running daemon (see daemon.h): instances, the host table plugins call, the wiring
 * of connectors' edges onto the bus, graceful stop and reload.
 *
 * Every component of the file becomes one sb_instance with its own bus source. Edges are bus
 * subscriptions the daemon owns: a connector subscribes to the readings of its `from` triggers
 * (filtered by `match`), and each `to` target subscribes to the connector's desired counts, which
 * the daemon turns into a clamped desired count for a scaler or into "run now" for a trigger.
 * Instances are found by id through a hash map, so nothing here scans all pipelines per event.
 */
#define _GNU_SOURCE
#include "daemon.h"
#include "admin.h"
#include "listeners.h"
#include "option_more.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "bus.h"
#include "http.h"
#include "loader.h"
#include "log.h"
#include "state.h"
#include "supervise.h"

/* ---- an id -> object map (open addressing) -------------------------------------------------- */

/* Not core/strmap.h on purpose: only the values are stored, each carrying its own key (an
 * instance's id, an index set's id) read through key_of, so an entry is one pointer instead of
 * strmap's three. With 30,000 instances that is part of how 10,000 pipelines fit in 32 MB. */
typedef struct idmap {
    void **vals;
    size_t cap, count;
    const char *(*key_of)(const void *val);
} idmap;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static void *idmap_get(const idmap *m, const char *key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = str_hash(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (!m->vals[i])
            return NULL;
        if (strcmp(m->key_of(m->vals[i]), key) == 0)
            return m->vals[i];
    }
}

static int idmap_put(idmap *m, void *val);

static int idmap_grow(idmap *m)
{
    idmap n = {.key_of = m->key_of};
    n.cap = m->cap ? m->cap * 2 : 64;
    n.vals = calloc(n.cap, sizeof *n.vals);
    if (!n.vals)
        return -ENOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->vals[i])
            idmap_put(&n, m->vals[i]);
    free(m->vals);
    *m = n;
    return 0;
}

/* Adds val under its key, replacing an entry with the same key. At most 3/4 full. */
static int idmap_put(idmap *m, void *val)
{
    if ((m->count + 1) * 4 > m->cap * 3 && idmap_grow(m) != 0)
        return -ENOMEM;
    const char *key = m->key_of(val);
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->vals[i] && strcmp(m->key_of(m->vals[i]), key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->vals[i])
        m->count++;
    m->vals[i] = val;
    return 0;
}

static void idmap_del(idmap *m, const char *key)
{
    if (!m->cap)
        return;
    size_t i = str_hash(key) & (m->cap - 1);
    while (m->vals[i] && strcmp(m->key_of(m->vals[i]), key) != 0)
        i = (i + 1) & (m->cap - 1);
    if (!m->vals[i])
        return;
    m->vals[i] = NULL;
    m->count--;
    /* Re-insert the rest of the probe run so later lookups still find it (never grows: the
     * count went down first). */
    for (size_t j = (i + 1) & (m->cap - 1); m->vals[j]; j = (j + 1) & (m->cap - 1)) {
        void *v = m->vals[j];
        m->vals[j] = NULL;
        m->count--;
        idmap_put(m, v);
    }
}

static void idmap_free(idmap *m)
{
    free(m->vals);
    m->vals = NULL;
    m->cap = m->count = 0;
}

/* ---- instances ---------------------------------------------------------------------------- */

struct sb_timer {
    uv_timer_t handle;
    sb_instance *inst;
    sb_timer_cb cb;
    void *arg;
    sb_timer *prev, *next; /* the instance's live timers */
};

/* A subscription a plugin made through host->subscribe. It follows the source's id, not one
 * instance: bound to whichever instance has that id now, re-bound when a reload replaces it. */
/* A scaler's newest SB_TOPIC_INSTANCES event, kept so that a subscriber that comes later (a
 * router replaced by a reload) hears the current list at once instead of at the next change. */
typedef struct last_list {
    const struct cJSON *payload; /* a bus reference (bus_payload_retain), or NULL */
    double value;
    uint64_t mono_ns;
    int64_t wall_ns;
} last_list;

typedef struct psub {
    int64_t handle;
    sb_instance *owner;
    char *source_id;
    char *topic; /* NULL: every topic */
    sb_event_cb cb;
    void *arg;
    uint32_t bound_source; /* 0: not bound (the source is not running yet) */
    int64_t bus_sub;
    struct psub *next_of_owner;
} psub;

/* The instance indexes (SCALEBUS_INSTANCE) held under one component id, by any instance with
 * that id: the one running and the one a reload is replacing it with. Sorted by index. */
typedef struct index_set {
    char *id;
    int64_t *index;
    sb_instance **holder;
    size_t n, cap;
} index_set;

typedef enum inst_state { INST_CREATED, INST_RUNNING, INST_STOPPING, INST_STOPPED } inst_state;

/* What the admin endpoint shows of one component, and a scaler's pause and override. Made only
 * when needed (its first event while the admin is on, or a pause or an override), so an idle
 * component pays one pointer, and with the admin on one bus subscription. Loop thread only: filled by a bus subscription of the
 * component's own events (obs_event), not on the publishing thread. */
#define OBS_TEXT_MAX 512
typedef struct inst_obs {
    uint64_t count[3]; /* trigger: readings, errors; connector: up, down, hold; scaler: done,
                          busy, failed */
    double last_value; /* a trigger's reading, a connector's decision */
    int64_t last_value_ns;
    double running;        /* scalers: from their instances event */
    daemon_histogram *latency; /* triggers: reads; scalers: actions (made on the first) */
    int64_t last_desired_ns;
    char *last_error, *last_note; /* note: a decision's reason, a scaler's last action */
    int64_t last_error_ns, last_note_ns;
    /* Scalers: what the admin controls (deliver_desired). */
    int paused;
    double policy_value;       /* the newest desired count from a connector (NAN: none) */
    double override_value;     /* NAN: none */
    uint64_t override_until;   /* monotonic ns; 0: no hold */
    int64_t override_until_wall;
    sb_timer *hold_timer;
    history history; /* scalers: desired and running counts for the dashboard's chart */
} inst_obs;

/* The source of an admin's own desired count (compared by address, never by text). */
static const char admin_source[] = "admin";

/* One per component: 10,000 pipelines are 30,000 of these, so it is one allocation with its id,
 * its option values are one more (values_pack), and what a reload compares is a hash. */
struct sb_instance {
    sb_daemon *d;
    const char *type; /* the plugin's own string: plugins stay loaded until daemon_free */
    const sb_plugin_descriptor *desc;
    void *state;
    /* The option values in the plugin's sb_value stride, with their strings (values_acquire);
     * NULL for a plugin without options. */
    struct values_block *values;
    /* Connector filter. */
    char **match_keys, **match_values;
    /* Subscriptions made by the plugin through host->subscribe. */
    psub *psubs;
    sb_timer *timers;
    sb_instance *next_retiring;
    inst_obs *obs; /* NULL until the admin needs it */
    struct last_list *last_list; /* scalers: the newest instance list, for new subscribers */
    int observed;  /* its events reach obs_event */
    int64_t min, max;
    uint64_t fingerprint; /* hash of the plugin-options fingerprint (fingerprint_hash) */
    double last_desired;  /* scalers: last clamped desired count delivered, NAN if none */
    uint32_t source;
    uint32_t nmatch;
    sb_kind kind;
    inst_state st;
    int kept;     /* scratch flag during a reload */
    int stop_reason; /* SB_STOP_*, set before stop() is called */
    int detached; /* its bus source is removed (the number may serve another source by now) */
    /* publish() is accepted from start() until stop() returns; read from any thread. */
    _Atomic int accepting;
    char id[]; /* the component's id */
};

typedef struct edge {
    uint32_t source;
    int64_t sub;
    sb_instance *from_inst; /* connector, for messages */
    sb_instance *target;
    int pipeline; /* a reading or decision edge the admin shows (not feedback or errors) */
} edge;

struct sb_daemon {
    uv_loop_t *loop;
    bus *bus;
    loader *loader;
    sb_logger logger;
    daemon_options opts;
    char **extra_dirs;
    size_t nextra_dirs;
    int loaded_builtin;
    /* Plugin folders in search order (built-in, extra, plugins.path), each loaded whole only when
     * a type is not found as TYPE.so in one of them (see plugin_lookup). */
    struct plugin_dir *plugin_dirs;
    size_t nplugin_dirs;
    char **plugin_refusals; /* the refusals reported during this load, each said once */
    size_t nplugin_refusals;

    idmap by_id;
    listeners *listeners; /* host->listen's sockets, kept across reloads (made on first use) */
    sb_instance **insts; /* in start order: scalers, connectors, triggers */
    size_t ninsts, insts_cap;
    edge *edges;
    size_t nedges, edges_cap;

    sb_instance *retiring; /* stopping or stopped, not yet destroyed */
    size_t pending_stops;

    supervisor *sup;   /* children spawned by plugins */
    http_client *http; /* the shared HTTP client, made on the first request */
    psub **psubs;      /* every plugin subscription */
    size_t npsubs, psubs_cap;
    int64_t next_psub; /* handles */
    idmap indexes;    /* component id -> index_set */
    struct values_block **vbuckets; /* option values, shared between equal sets (values_acquire) */
    size_t nvbuckets, nvblocks;
    const config *loading; /* the file being loaded: ids a create() may subscribe to */

    int stopping;
    int closing_http;
    void (*stop_done)(void *);
    void *stop_arg;
    uv_idle_t finish; /* runs the stop's completion outside plugin callbacks */
    int finish_init;

    admin *admin;   /* the admin endpoint (opts.admin), made on the first load */
    int observing;  /* the admin is on: components' events are observed (inst_obs) */
    int loaded_once;
    uint64_t reloads_ok, reloads_refused;

    /* state.dir (core/state.h, docs/state.md): what survives a restart of the daemon. */
    char *state_dir;         /* NULL: nothing is kept */
    uint64_t state_every_ms;
    uv_timer_t state_timer;  /* writes changed state every state_every_ms */
    int state_timer_init;
    _Atomic int state_dirty; /* something a snapshot holds may have changed */
    int state_busy;          /* a write runs on a worker thread */
    char *state_pending;     /* the text to write when it is done */
    int state_failing;       /* the last write failed (said once, and when it works again) */
    state_saved *restoring;  /* the file as the first load found it, during that load */

    /* host->request_reload: the file daemon_load read last, and the reload it schedules. */
    char *path;
    uv_thread_t loop_thread; /* the thread daemon_new ran on: the loop's */
    /* Subscriptions to hear their source's last instance list (psub handles), and the timer
     * that hands it to them on the next turn of the loop, never inside a plugin's call. */
    int64_t *replays;
    size_t nreplays, replays_cap;
    uv_timer_t replay_timer;
    int replay_timer_init;
    int checking; /* instances are being made only to check a file: host->listen binds nothing */
    uv_timer_t reload_timer;
    int reload_timer_init;
};

static const sb_host host_table;

/* Something a snapshot or a scaler's saved controls hold may have changed: the next tick of the
 * state timer writes the file. */
static inline void state_touch(sb_daemon *d)
{
    if (d->state_dir)
        atomic_store_explicit(&d->state_dirty, 1, memory_order_relaxed);
}

static void obs_free(sb_instance *inst);
static int inst_observe(sb_instance *inst);

static const char *inst_key(const void *inst)
{
    return ((const sb_instance *)inst)->id;
}

static const char *index_set_key(const void *set)
{
    return ((const index_set *)set)->id;
}

static void inst_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void inst_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(&inst->d->logger, level, inst->id, fmt, ap);
    va_end(ap);
}

/* A decision reaching a scaler: with log.format json its line also carries the count, what was
 * asked, where it came from and the connector's reason, as fields. */
static void decision_log(sb_instance *scaler, const sb_event *ev, double asked, double desired,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static const char *event_label(const sb_event *ev, const char *key);

static void decision_log(sb_instance *scaler, const sb_event *ev, double asked, double desired,
                         const char *fmt, ...)
{
    log_field fields[] = {
        {"desired", NULL, desired, 1},
        {"asked", NULL, asked, 1},
        {"from", ev->source_id, 0, 0},
        {"reason", event_label(ev, "reason"), 0, 0},
    };
    va_list ap;
    va_start(ap, fmt);
    log_vwrite_fields(&scaler->d->logger, SB_LOG_INFO, scaler->id, fields,
                      sizeof fields / sizeof fields[0], fmt, ap);
    va_end(ap);
}

#define dlog(d, level, ...) log_write(&(d)->logger, level, NULL, __VA_ARGS__)

/* ---- host table ---------------------------------------------------------------------------- */

/* The smallest sb_publish an ABI-2 plugin can hand us: every field up to time_ns. */
#define PUBLISH_MIN_SIZE (offsetof(sb_publish, time_ns) + sizeof(uint64_t))

static void last_list_free(sb_instance *inst)
{
    if (!inst->last_list)
        return;
    if (inst->last_list->payload)
        bus_payload_release(inst->d->bus, inst->last_list->payload);
    free(inst->last_list);
    inst->last_list = NULL;
}

static void last_list_keep(sb_instance *inst, const sb_publish *pub)
{
    /* An empty list tells a new subscriber nothing it does not know (it has no instances yet):
     * not kept, so 10,000 idle scalers keep nothing. */
    if (cJSON_IsArray(pub->payload) && cJSON_GetArraySize(pub->payload) == 0 && pub->value == 0) {
        last_list_free(inst);
        return;
    }
    if (!inst->last_list && !(inst->last_list = calloc(1, sizeof *inst->last_list)))
        return; /* a new subscriber waits for the next change, as before */
    last_list *l = inst->last_list;
    if (l->payload)
        bus_payload_release(inst->d->bus, l->payload);
    l->payload = pub->payload ? bus_payload_retain(inst->d->bus, pub->payload) : NULL;
    l->value = pub->value;
    l->mono_ns = bus_now_mono_ns();
    l->wall_ns = bus_now_wall_ns();
}

static int inst_publish(sb_instance *inst, const sb_publish *pub);

static int host_publish(sb_instance *inst, const sb_publish *ev)
{
    if (!inst || !ev || ev->size < PUBLISH_MIN_SIZE)
        return -EINVAL; /* a struct without its size: nothing in it can be trusted */
    /* Read only the bytes the plugin knows; fields added after its header read as zero. A
     * plugin built with this header (the common case, on the hot path) is read in place. */
    sb_publish copy;
    const sb_publish *pub = ev;
    if (ev->size < sizeof copy) {
        memset(&copy, 0, sizeof copy);
        memcpy(&copy, ev, ev->size);
        copy.size = sizeof copy;
        pub = &copy;
    }
    if (inst->source == 0 || !atomic_load_explicit(&inst->accepting, memory_order_acquire)) {
        cJSON_Delete(pub->payload); /* ownership passed to us in every case */
        return -ESHUTDOWN;
    }
    if (pub->nlabels > SB_MAX_LABELS) {
        cJSON_Delete(pub->payload);
        return -E2BIG;
    }
    return inst_publish(inst, pub);
}

/* Onto the bus; a scaler's instance list is also kept for later subscribers (last_list). */
static int inst_publish(sb_instance *inst, const sb_publish *pub)
{
    sb_daemon *d = inst->d;
    int rc = bus_publish(d->bus, inst->source, pub);
    /* Kept only from the loop thread: there nothing is delivered (and freed) between the publish
     * and the reference taken here. A scaler on the fleet library publishes from the loop. */
    if (rc == 0 && inst->kind == SB_KIND_SCALER && pub->topic &&
        strcmp(pub->topic, SB_TOPIC_INSTANCES) == 0) {
        uv_thread_t self = uv_thread_self();
        if (uv_thread_equal(&self, &d->loop_thread))
            last_list_keep(inst, pub);
    }
    return rc;
}

static void host_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void host_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(&inst->d->logger, level, inst->id, fmt, ap);
    va_end(ap);
}

static void timer_fired(uv_timer_t *h)
{
    sb_timer *t = h->data;
    t->cb(t->arg);
}

static sb_timer *host_timer_new(sb_instance *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                                sb_timer_cb cb, void *arg)
{
    if (!cb)
        return NULL;
    sb_timer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->inst = inst;
    t->cb = cb;
    t->arg = arg;
    uv_timer_init(inst->d->loop, &t->handle);
    t->handle.data = t;
    t->next = inst->timers;
    if (inst->timers)
        inst->timers->prev = t;
    inst->timers = t;
    uv_timer_start(&t->handle, timer_fired, timeout_ms, repeat_ms);
    return t;
}

static void timer_closed(uv_handle_t *h)
{
    free(h->data);
}

static void host_timer_free(sb_timer *t)
{
    if (!t)
        return;
    sb_instance *inst = t->inst;
    if (t->prev)
        t->prev->next = t->next;
    else
        inst->timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    uv_timer_stop(&t->handle);
    uv_close((uv_handle_t *)&t->handle, timer_closed);
}

static void *host_loop(sb_instance *inst)
{
    return inst->d->loop;
}

static const char *host_instance_id(sb_instance *inst)
{
    return inst->id;
}

static int host_dry_run(sb_instance *inst)
{
    return inst->d->opts.dry_run;
}

static void inst_stopped(sb_instance *inst);

/* ---- HTTP (host version 3) ------------------------------------------------------------------ */

static int host_http_request(sb_instance *inst, const sb_http_request *req, sb_http_cb cb,
                             void *arg, sb_http **out)
{
    sb_daemon *d = inst->d;
    if (out)
        *out = NULL;
    /* A stopping instance may still make requests (a scaler tearing down); a stopped one not. */
    if (inst->st == INST_STOPPED || d->closing_http)
        return -ESHUTDOWN;
    char err[256];
    if (!d->http) {
        d->http = http_client_new(d->loop, err, sizeof err);
        if (!d->http) {
            inst_log(inst, SB_LOG_ERROR, "HTTP client: %s", err);
            return -ENOMEM;
        }
    }
    int rc = http_client_request(d->http, inst, req, cb, arg, out, err, sizeof err);
    if (rc != 0)
        inst_log(inst, SB_LOG_WARN, "HTTP request refused: %s", err);
    return rc;
}

static void host_http_cancel(sb_instance *inst, sb_http *req)
{
    if (req)
        http_client_cancel(inst->d->http, req);
}

/* Requests belong to their instance: none completes after its stop has finished. */
static void inst_http_cancel_all(sb_instance *inst)
{
    size_t n = http_client_cancel_owner(inst->d->http, inst);
    if (n)
        inst_log(inst, SB_LOG_DEBUG, "%zu HTTP request(s) cancelled at stop", n);
}

static int host_stop_reason(sb_instance *inst)
{
    return inst->st == INST_STOPPING || inst->st == INST_STOPPED ? inst->stop_reason : 0;
}

static void host_stopped(sb_instance *inst)
{
    if (inst->st == INST_STOPPING)
        inst_stopped(inst);
}

/* ---- plugin subscriptions (by source id) ---------------------------------------------------- */

static void psub_deliver(void *arg, const sb_event *ev)
{
    psub *p = arg;
    /* Only a running subscriber hears anything: not before its start, not after its stop. */
    if (p->owner->st == INST_RUNNING)
        p->cb(p->arg, ev);
}

static void psub_unbind(sb_daemon *d, psub *p)
{
    if (p->bound_source)
        bus_unsubscribe(d->bus, p->bound_source, p->bus_sub);
    p->bound_source = 0;
    p->bus_sub = 0;
}

static psub *psub_by_handle(sb_daemon *d, int64_t handle)
{
    for (size_t i = 0; i < d->npsubs; i++)
        if (d->psubs[i]->handle == handle)
            return d->psubs[i];
    return NULL;
}

/* Hand each subscription that asked for it its source's newest instance list. A subscription
 * gone meanwhile, or a source with none any more, is skipped. */
static void replay_fired(uv_timer_t *t)
{
    sb_daemon *d = t->data;
    size_t n = d->nreplays;
    int64_t *handles = d->replays;
    d->replays = NULL;
    d->nreplays = d->replays_cap = 0;
    for (size_t i = 0; i < n && !d->stopping; i++) {
        psub *p = psub_by_handle(d, handles[i]);
        sb_instance *src = p ? idmap_get(&d->by_id, p->source_id) : NULL;
        if (!p || !src || !src->last_list || src->source != p->bound_source ||
            p->owner->st != INST_RUNNING)
            continue;
        const last_list *l = src->last_list;
        sb_event ev = {.size = sizeof ev,
                       .source = src->source,
                       .source_id = src->id,
                       .topic = SB_TOPIC_INSTANCES,
                       .mono_ns = l->mono_ns,
                       .wall_ns = l->wall_ns,
                       .value = l->value,
                       .payload = l->payload};
        p->cb(p->arg, &ev);
    }
    free(handles);
}

static void replay_schedule(sb_daemon *d, psub *p)
{
    if (!d->replay_timer_init) {
        if (uv_timer_init(d->loop, &d->replay_timer) != 0)
            return;
        d->replay_timer.data = d;
        d->replay_timer_init = 1;
    }
    if (d->nreplays == d->replays_cap) {
        size_t cap = d->replays_cap ? d->replays_cap * 2 : 8;
        int64_t *n = realloc(d->replays, cap * sizeof *n);
        if (!n)
            return; /* it hears the next change instead */
        d->replays = n;
        d->replays_cap = cap;
    }
    d->replays[d->nreplays++] = p->handle;
    uv_timer_start(&d->replay_timer, replay_fired, 0, 0);
}

/* Bind to the instance that has the id now (if it runs and publishes). */
static void psub_bind(sb_daemon *d, psub *p)
{
    sb_instance *src = idmap_get(&d->by_id, p->source_id);
    uint32_t want = src ? src->source : 0;
    if (want == p->bound_source)
        return;
    psub_unbind(d, p);
    if (!want)
        return;
    int64_t sub = bus_subscribe(d->bus, want, p->topic, psub_deliver, p);
    if (sub > 0) {
        p->bound_source = want;
        p->bus_sub = sub;
        if (src->last_list && (!p->topic || strcmp(p->topic, SB_TOPIC_INSTANCES) == 0))
            replay_schedule(d, p);
    } else {
        inst_log(p->owner, SB_LOG_ERROR, "cannot subscribe to '%s': %s", p->source_id,
                 strerror((int)-sub));
    }
}

static void psub_free(sb_daemon *d, psub *p)
{
    psub_unbind(d, p);
    for (size_t i = 0; i < d->npsubs; i++) {
        if (d->psubs[i] == p) {
            d->psubs[i] = d->psubs[--d->npsubs];
            break;
        }
    }
    free(p->source_id);
    free(p->topic);
    free(p);
}

static void psubs_drop_owner(sb_daemon *d, sb_instance *owner)
{
    while (owner->psubs) {
        psub *p = owner->psubs;
        owner->psubs = p->next_of_owner;
        psub_free(d, p);
    }
}

/* After a load: every subscription follows its id to the instance that has it now. */
static void psubs_rebind(sb_daemon *d)
{
    for (size_t i = 0; i < d->npsubs; i++)
        psub_bind(d, d->psubs[i]);
}

static int64_t host_subscribe(sb_instance *inst, const char *source_id, const char *topic,
                              sb_event_cb cb, void *arg)
{
    sb_daemon *d = inst->d;
    if (!source_id || !cb)
        return -EINVAL;
    if (!idmap_get(&d->by_id, source_id) && !(d->loading && config_find(d->loading, source_id)))
        return -ENOENT;
    if (d->npsubs == d->psubs_cap) {
        size_t ncap = d->psubs_cap ? d->psubs_cap * 2 : 16;
        psub **n = realloc(d->psubs, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        d->psubs = n;
        d->psubs_cap = ncap;
    }
    psub *p = calloc(1, sizeof *p);
    if (!p || !(p->source_id = strdup(source_id)) || (topic && !(p->topic = strdup(topic)))) {
        if (p)
            free(p->source_id);
        free(p);
        return -ENOMEM;
    }
    p->handle = ++d->next_psub;
    p->owner = inst;
    p->cb = cb;
    p->arg = arg;
    p->next_of_owner = inst->psubs;
    inst->psubs = p;
    d->psubs[d->npsubs++] = p;
    /* From start() on, bind now; a subscription made in create() is bound when the load that
     * created the subscriber commits (its source may be new in the same file). */
    if (inst->st == INST_RUNNING)
        psub_bind(d, p);
    return p->handle;
}

static int host_unsubscribe(sb_instance *inst, int64_t handle)
{
    for (psub **pp = &inst->psubs; *pp; pp = &(*pp)->next_of_owner) {
        if ((*pp)->handle == handle) {
            psub *p = *pp;
            *pp = p->next_of_owner;
            psub_free(inst->d, p);
            return 0;
        }
    }
    return -ENOENT;
}

/* ---- children ----------------------------------------------------------------------------- */

static int host_spawn(sb_instance *inst, const sb_spawn *req, sb_child_cb on_exit, void *arg,
                      int64_t *pid, char *err, size_t errlen)
{
    if (!req || req->size < offsetof(sb_spawn, stderr_fd) + sizeof(int)) {
        snprintf(err, errlen, "spawn request without its size (use SB_SPAWN_INIT)");
        return -EINVAL;
    }
    sb_spawn r;
    memset(&r, 0, sizeof r);
    memcpy(&r, req, req->size < sizeof r ? req->size : sizeof r);
    r.size = sizeof r;
    if (inst->d->opts.dry_run) {
        snprintf(err, errlen, "dry run: nothing is started");
        return -EPERM;
    }
    return supervisor_spawn(inst->d->sup, inst, &r, on_exit, arg, pid, err, errlen);
}

static int host_kill_group(sb_instance *inst, int64_t pid, int sig)
{
    return supervisor_kill_group(inst->d->sup, inst, pid, sig);
}

/* ---- instance indexes ---------------------------------------------------------------------- */

static int64_t host_index_claim(sb_instance *inst)
{
    sb_daemon *d = inst->d;
    index_set *set = idmap_get(&d->indexes, inst->id);
    if (!set) {
        if (!(set = calloc(1, sizeof *set)) || !(set->id = strdup(inst->id)) ||
            idmap_put(&d->indexes, set) != 0) {
            if (set)
                free(set->id);
            free(set);
            return -ENOMEM;
        }
    }
    if (set->n == set->cap) {
        size_t ncap = set->cap ? set->cap * 2 : 8;
        int64_t *ni = realloc(set->index, ncap * sizeof *ni);
        if (!ni)
            return -ENOMEM;
        set->index = ni;
        sb_instance **nh = realloc(set->holder, ncap * sizeof *nh);
        if (!nh)
            return -ENOMEM;
        set->holder = nh;
        set->cap = ncap;
    }
    /* Sorted and unique: the first position whose index is not its position is the gap. */
    size_t at = 0;
    while (at < set->n && set->index[at] == (int64_t)at)
        at++;
    memmove(&set->index[at + 1], &set->index[at], (set->n - at) * sizeof *set->index);
    memmove(&set->holder[at + 1], &set->holder[at], (set->n - at) * sizeof *set->holder);
    set->index[at] = (int64_t)at;
    set->holder[at] = inst;
    set->n++;
    return (int64_t)at;
}

static void index_set_remove_at(sb_daemon *d, index_set *set, size_t i)
{
    memmove(&set->index[i], &set->index[i + 1], (set->n - i - 1) * sizeof *set->index);
    memmove(&set->holder[i], &set->holder[i + 1], (set->n - i - 1) * sizeof *set->holder);
    if (--set->n == 0) {
        idmap_del(&d->indexes, set->id);
        free(set->index);
        free(set->holder);
        free(set->id);
        free(set);
    }
}

static void host_index_release(sb_instance *inst, int64_t index)
{
    index_set *set = idmap_get(&inst->d->indexes, inst->id);
    for (size_t i = 0; set && i < set->n; i++) {
        if (set->index[i] == index && set->holder[i] == inst) {
            index_set_remove_at(inst->d, set, i);
            return;
        }
    }
}

static void indexes_drop_holder(sb_instance *inst)
{
    index_set *set = idmap_get(&inst->d->indexes, inst->id);
    if (!set)
        return;
    for (size_t i = set->n; i-- > 0;) {
        if (set->holder[i] == inst) {
            int last = set->n == 1;
            index_set_remove_at(inst->d, set, i);
            if (last)
                return; /* the set is gone */
        }
    }
}

static const struct cJSON *host_payload_retain(sb_instance *inst, const struct cJSON *p)
{
    return bus_payload_retain(inst->d->bus, p);
}

static void host_payload_release(sb_instance *inst, const struct cJSON *p)
{
    bus_payload_release(inst->d->bus, p);
}

static void host_bounds(sb_instance *inst, int64_t *min, int64_t *max)
{
    if (min)
        *min = inst->min;
    if (max)
        *max = inst->max;
}

static int host_listen(sb_instance *inst, const char *addr, int backlog, char *err,
                       size_t errlen)
{
    sb_daemon *d = inst->d;
    if (!d->listeners && !(d->listeners = listeners_new())) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    int fd = d->checking ? listeners_claim_for_check(d->listeners, inst, inst->id, addr, backlog,
                                                     err, errlen)
                         : listeners_claim(d->listeners, inst, inst->id, addr, backlog, err, errlen);
    if (fd >= 0)
        inst_log(inst, SB_LOG_DEBUG, "listening on %s", addr);
    return fd;
}

static int check_file(sb_daemon *d, const char *path, int next_n, FILE *out,
                      config_errors *errs, const char *must_include, int *included);

static void reload_fired(uv_timer_t *t)
{
    sb_daemon *d = t->data;
    if (d->stopping || !d->path)
        return;
    if (d->opts.reload) {
        d->opts.reload(d->opts.reload_arg);
        return;
    }
    config_errors errs;
    config_errors_init(&errs);
    daemon_load(d, d->path, &errs); /* logs its outcome either way */
    config_errors_free(&errs);
}

/* The errors as "FILE:LINE:COL: message" lines, as many as fit. */
static void errors_text(const config_errors *errs, char *out, size_t len)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < errs->count && used + 1 < len; i++) {
        const config_error *e = &errs->items[i];
        int n = snprintf(out + used, len - used, "%s%s:%d:%d: %s", used ? "\n" : "",
                         e->file ? e->file : "?", e->line, e->col, e->message);
        if (n < 0)
            break;
        used += (size_t)n < len - used ? (size_t)n : len - used - 1;
    }
}

static int host_request_reload(sb_instance *inst, const char *must_include, char *err,
                               size_t errlen)
{
    sb_daemon *d = inst->d;
    char scratch[8];
    if (!err || errlen == 0) {
        err = scratch;
        errlen = sizeof scratch;
    }
    err[0] = '\0';
    if (d->stopping) {
        snprintf(err, errlen, "the daemon is stopping");
        return -ESHUTDOWN;
    }
    if (d->opts.simulate || !d->path) {
        snprintf(err, errlen, "no pipeline file to reload here");
        return -ENOTSUP;
    }
    config_errors errs;
    config_errors_init(&errs);
    int included = 0;
    int rc = check_file(d, d->path, 0, NULL, &errs, must_include, &included);
    if (rc != 0 || errs.count) {
        errors_text(&errs, err, errlen);
        if (!err[0])
            snprintf(err, errlen, "%s: %s", d->path, strerror(rc < 0 ? -rc : EINVAL));
        config_errors_free(&errs);
        inst_log(inst, SB_LOG_WARN, "asked for a reload: refused, the configuration has errors");
        return -EINVAL;
    }
    config_errors_free(&errs);
    if (must_include && !included) {
        snprintf(err, errlen, "%s is not read by %s: add its folder to the file's include: list",
                 must_include, d->path);
        return -ENOENT;
    }
    if (!d->reload_timer_init) {
        if (uv_timer_init(d->loop, &d->reload_timer) != 0) {
            snprintf(err, errlen, "cannot schedule a reload");
            return -ENOMEM;
        }
        d->reload_timer.data = d;
        d->reload_timer_init = 1;
    }
    inst_log(inst, SB_LOG_INFO, "asked for a reload: the configuration checks, reloading");
    uv_timer_start(&d->reload_timer, reload_fired, 0, 0);
    return 0;
}

static const sb_host host_table = {
    .size = sizeof(sb_host),
    .version = SB_HOST_VERSION,
    .publish = host_publish,
    .log = host_log,
    .timer_new = host_timer_new,
    .timer_free = host_timer_free,
    .loop = host_loop,
    .instance_id = host_instance_id,
    .dry_run = host_dry_run,
    .stopped = host_stopped,
    .subscribe = host_subscribe,
    .payload_retain = host_payload_retain,
    .payload_release = host_payload_release,
    .bounds = host_bounds,
    .unsubscribe = host_unsubscribe,
    .spawn = host_spawn,
    .kill_group = host_kill_group,
    .index_claim = host_index_claim,
    .index_release = host_index_release,
    .http_request = host_http_request,
    .http_cancel = host_http_cancel,
    .stop_reason = host_stop_reason,
    .listen = host_listen,
    .request_reload = host_request_reload,
};

/* ---- instance lifecycle ---------------------------------------------------------------------- */

static void free_strv(char **v, size_t n)
{
    if (!v)
        return;
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static char **dup_strv(char *const *v, size_t n)
{
    if (n == 0)
        return NULL;
    char **out = calloc(n, sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (!(out[i] = strdup(v[i]))) {
            free_strv(out, i);
            return NULL;
        }
    }
    return out;
}

/* An error from create() that starts with "OPTION:" is placed at that option's value, and one
 * that starts with "OPTION@N:" at the N-th character (0-based) inside that value's text. */
static void create_error_position(const config_component *c, const char *msg, int *line, int *col,
                                  const char **file)
{
    *line = c->line;
    *col = c->col;
    if (c->file)
        *file = c->file;
    size_t klen = strcspn(msg, ":@");
    if (!msg[klen] || !c->node || c->node->kind != CONFIG_MAPPING)
        return;
    long offset = -1;
    if (msg[klen] == '@') {
        char *end;
        offset = strtol(msg + klen + 1, &end, 10);
        if (end == msg + klen + 1 || *end != ':' || offset < 0)
            offset = -1;
    }
    for (size_t i = 0; i < c->node->count; i++) {
        const config_node *k = c->node->keys[i];
        if (k->scalar && strlen(k->scalar) == klen && strncmp(k->scalar, msg, klen) == 0) {
            const config_node *v = c->node->items[i];
            *line = v->line;
            *col = v->col;
            if (v->file) /* merged in by an extend: in another file */
                *file = v->file;
            /* Only a single-line plain or quoted scalar maps characters to columns. */
            if (offset >= 0 && v->kind == CONFIG_SCALAR && v->scalar && !strchr(v->scalar, '\n') &&
                (size_t)offset <= strlen(v->scalar))
                *col += (int)offset + (v->quoted ? 1 : 0);
            return;
        }
    }
}

/* ---- option values: one block per distinct set, shared -------------------------------------- */

/* An instance's option values live in one block: the sb_value array as the plugin's own stride
 * lays it out (ABI rule 1: the bytes it knows, zero-filled past ours), then the item arrays, then
 * every string; not in the component's arena (a 512-byte chunk and more, for each of the file's
 * components). Values are read-only for the plugin, so instances of one plugin whose values are
 * equal (the same schedule and zone, the same command...) share one block, counted. */
typedef struct values_block {
    struct values_block *next; /* in its bucket of the daemon's table */
    uint64_t hash;
    size_t refs;
    const sb_plugin_descriptor *desc;
    size_t nvalues;
    /* then the values: sizeof(values_block) keeps them 8-byte aligned */
} values_block;

static const sb_value *block_values(const values_block *blk)
{
    static const sb_value none; /* no options: create() gets a pointer it never reads */
    return blk ? (const sb_value *)(const void *)(blk + 1) : &none;
}

/* Value i as the plugin sees it: the bytes of its stride, zero past them. */
static sb_value value_view(const sb_plugin_descriptor *desc, const void *values, size_t i,
                           size_t from_stride)
{
    sb_value v;
    size_t n = desc->value_size < sizeof v ? desc->value_size : sizeof v;
    memset(&v, 0, sizeof v);
    memcpy(&v, (const char *)values + i * from_stride, n);
    return v;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ ((const unsigned char *)p)[i]) * 0x100000001b3ull;
    return h;
}

static uint64_t hash_str(uint64_t h, const char *s)
{
    return s ? hash_bytes(h, s, strlen(s) + 1) : hash_bytes(h, "\xff", 1);
}

static uint64_t hash_strv(uint64_t h, const char *const *v, size_t n)
{
    if (!v)
        return hash_bytes(h, "\xfe", 1);
    for (size_t i = 0; i < n; i++)
        h = hash_str(h, v[i]);
    return h;
}

/* Rows of a (host-layout) options table. */
static size_t option_rows(const sb_option_spec *table)
{
    size_t n = 0;
    while (table && table[n].name)
        n++;
    return n;
}

/* The nested table of row i when its values are a map of objects (its option path in sub),
 * else NULL. */
static const sb_option_spec *objects_table(const sb_plugin_descriptor *desc, const char *opath,
                                           const sb_option_spec *table, size_t i,
                                           const sb_value *v, char *sub, size_t sublen)
{
    if (!table || table[i].type != SB_OPT_OBJECTS || !v->objects)
        return NULL;
    option_more_path(sub, sublen, opath, table[i].name);
    return option_more_fields(desc, sub);
}

static uint64_t hash_values(uint64_t h, const sb_plugin_descriptor *desc, const char *opath,
                            const sb_option_spec *table, const void *values, size_t n,
                            size_t stride)
{
    for (size_t i = 0; i < n; i++) {
        sb_value v = value_view(desc, values, i, stride);
        h = hash_bytes(h, &v.is_set, sizeof v.is_set);
        h = hash_bytes(h, &v.integer, sizeof v.integer);
        h = hash_bytes(h, &v.number, sizeof v.number);
        h = hash_bytes(h, &v.duration_ms, sizeof v.duration_ms);
        h = hash_bytes(h, &v.count, sizeof v.count);
        h = hash_str(h, v.str);
        h = hash_strv(h, v.items, v.count);
        h = hash_strv(h, v.values, v.count);
        char sub[256];
        const sb_option_spec *fields = objects_table(desc, opath, table, i, &v, sub, sizeof sub);
        for (size_t k = 0; fields && k < v.count; k++)
            h = hash_values(h, desc, sub, fields, v.objects[k], option_rows(fields), stride);
    }
    return h;
}

static uint64_t values_hash(const sb_plugin_descriptor *desc, const sb_value *values, size_t n)
{
    uint64_t h = hash_bytes(0xcbf29ce484222325ull, &desc, sizeof desc);
    return hash_values(h, desc, "", desc->options, values, n, sizeof(sb_value));
}

static int same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int same_strv(const char *const *a, const char *const *b, size_t n)
{
    if (!a || !b)
        return a == b;
    for (size_t i = 0; i < n; i++)
        if (!same_str(a[i], b[i]))
            return 0;
    return 1;
}

/* Values a (rows astride bytes apart) and b (bstride), nested objects included. */
static int same_values(const sb_plugin_descriptor *desc, const char *opath,
                       const sb_option_spec *table, const void *av, size_t astride,
                       const void *bv, size_t bstride, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sb_value a = value_view(desc, av, i, astride);
        sb_value b = value_view(desc, bv, i, bstride);
        if (a.is_set != b.is_set || a.integer != b.integer ||
            memcmp(&a.number, &b.number, sizeof a.number) != 0 ||
            a.duration_ms != b.duration_ms || a.count != b.count || !same_str(a.str, b.str) ||
            !same_strv(a.items, b.items, a.count) || !same_strv(a.values, b.values, a.count) ||
            (a.objects == NULL) != (b.objects == NULL))
            return 0;
        char sub[256];
        const sb_option_spec *fields = objects_table(desc, opath, table, i, &a, sub, sizeof sub);
        for (size_t k = 0; fields && k < a.count; k++)
            if (!same_values(desc, sub, fields, a.objects[k], astride, b.objects[k], bstride,
                             option_rows(fields)))
                return 0;
    }
    return 1;
}

static int block_holds(const values_block *blk, const sb_plugin_descriptor *desc,
                       const sb_value *values, size_t n)
{
    if (blk->desc != desc || blk->nvalues != n)
        return 0;
    return same_values(desc, "", desc->options, block_values(blk), desc->value_size, values,
                       sizeof(sb_value), n);
}

/* Lays values out in one allocation, in two passes: base NULL measures (off is the size), then
 * base set writes. Arrays of values use the plugin's stride, as create() reads them. */
typedef struct packer {
    char *base;
    size_t off;
} packer;

static void *pack_take(packer *p, size_t n, size_t align)
{
    p->off = (p->off + align - 1) & ~(align - 1);
    void *at = p->base ? p->base + p->off : NULL;
    p->off += n;
    return at;
}

static const char *pack_str(packer *p, const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s) + 1;
    char *at = pack_take(p, len, 1);
    if (at)
        memcpy(at, s, len);
    return at;
}

/* n strings, NULL-terminated as the config makes them. */
static const char *const *pack_strv(packer *p, const char *const *v, size_t n)
{
    if (!v)
        return NULL;
    const char **out = pack_take(p, (n + 1) * sizeof *out, sizeof *out);
    for (size_t i = 0; i < n; i++) {
        const char *c = pack_str(p, v[i]);
        if (out)
            out[i] = c;
    }
    if (out)
        out[n] = NULL;
    return out;
}

/* Host-layout values src[0..n) as the plugin's array (returned; NULL while measuring). */
static void *pack_values(packer *p, const sb_plugin_descriptor *desc, const char *opath,
                         const sb_option_spec *table, const sb_value *src, size_t n)
{
    size_t stride = desc->value_size;
    char *arr = pack_take(p, n ? n * stride : 1, 8);
    for (size_t i = 0; i < n; i++) {
        sb_value v = src[i];
        v.str = pack_str(p, v.str);
        v.items = pack_strv(p, v.items, v.count);
        v.values = pack_strv(p, v.values, v.count);
        char sub[256];
        const sb_option_spec *fields =
            objects_table(desc, opath, table, i, &src[i], sub, sizeof sub);
        v.objects = NULL;
        if (fields) {
            const sb_value **objs = pack_take(p, (v.count + 1) * sizeof *objs, sizeof *objs);
            for (size_t k = 0; k < v.count; k++) {
                const void *o =
                    pack_values(p, desc, sub, fields, src[i].objects[k], option_rows(fields));
                if (objs)
                    objs[k] = o;
            }
            if (objs)
                objs[v.count] = NULL;
            v.objects = objs;
        }
        if (arr)
            memcpy(arr + i * stride, &v, stride < sizeof v ? stride : sizeof v);
    }
    return arr;
}

/* A new block holding a copy of the values (one allocation). NULL when out of memory. */
static values_block *values_pack(const sb_plugin_descriptor *desc, const sb_value *values,
                                 size_t nvalues)
{
    packer measure = {NULL, 0};
    pack_values(&measure, desc, "", desc->options, values, nvalues);
    values_block *blk = calloc(1, sizeof *blk + measure.off);
    if (!blk)
        return NULL;
    blk->desc = desc;
    blk->nvalues = nvalues;
    packer write = {(char *)(blk + 1), 0}; /* the top-level array first: block_values() */
    pack_values(&write, desc, "", desc->options, values, nvalues);
    return blk;
}

static int values_table_grow(sb_daemon *d)
{
    size_t ncap = d->nvbuckets ? d->nvbuckets * 2 : 256;
    values_block **nb = calloc(ncap, sizeof *nb);
    if (!nb)
        return -ENOMEM;
    for (size_t i = 0; i < d->nvbuckets; i++) {
        while (d->vbuckets[i]) {
            values_block *blk = d->vbuckets[i];
            d->vbuckets[i] = blk->next;
            blk->next = nb[blk->hash & (ncap - 1)];
            nb[blk->hash & (ncap - 1)] = blk;
        }
    }
    free(d->vbuckets);
    d->vbuckets = nb;
    d->nvbuckets = ncap;
    return 0;
}

/* The block holding these values, shared when one is there already (one more holder). *blk is
 * NULL for a plugin without options. Returns 0 or -ENOMEM. */
static int values_acquire(sb_daemon *d, const sb_plugin_descriptor *desc, const sb_value *values,
                          size_t n, values_block **blk)
{
    *blk = NULL;
    if (n == 0)
        return 0;
    uint64_t h = values_hash(desc, values, n);
    if (d->nvbuckets) {
        for (values_block *b = d->vbuckets[h & (d->nvbuckets - 1)]; b; b = b->next) {
            if (b->hash == h && block_holds(b, desc, values, n)) {
                b->refs++;
                *blk = b;
                return 0;
            }
        }
    }
    if (d->nvblocks >= d->nvbuckets && values_table_grow(d) != 0)
        return -ENOMEM;
    values_block *b = values_pack(desc, values, n);
    if (!b)
        return -ENOMEM;
    b->hash = h;
    b->refs = 1;
    b->next = d->vbuckets[h & (d->nvbuckets - 1)];
    d->vbuckets[h & (d->nvbuckets - 1)] = b;
    d->nvblocks++;
    *blk = b;
    return 0;
}

static void values_release(sb_daemon *d, values_block *blk)
{
    if (!blk || --blk->refs > 0)
        return;
    values_block **link = &d->vbuckets[blk->hash & (d->nvbuckets - 1)];
    while (*link != blk)
        link = &(*link)->next;
    *link = blk->next;
    d->nvblocks--;
    free(blk);
}

/* What a reload compares: a 64-bit hash of the config's canonical fingerprint text, not the
 * text itself (30,000 components kept hundreds of bytes each). FNV-1a with a final mix, seeded
 * with the length. */
static uint64_t fingerprint_hash(const char *fp)
{
    if (!fp)
        fp = "";
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)strlen(fp);
    for (const char *p = fp; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return h;
}

/* Build an instance from a validated component; takes over its option storage on success. */
static sb_instance *inst_create(sb_daemon *d, config_component *c, const char *file,
                                config_errors *errs)
{
    size_t idlen = strlen(c->id) + 1;
    sb_instance *inst = calloc(1, sizeof *inst + idlen);
    if (!inst)
        goto oom;
    memcpy(inst->id, c->id, idlen);
    inst->d = d;
    inst->kind = c->kind;
    inst->desc = c->plugin;
    inst->type = c->plugin ? c->plugin->type : c->type;
    inst->min = c->min;
    inst->max = c->max;
    inst->last_desired = NAN;
    inst->fingerprint = fingerprint_hash(c->fingerprint);
    if (c->nmatch) {
        inst->match_keys = dup_strv(c->match_keys, c->nmatch);
        inst->match_values = dup_strv(c->match_values, c->nmatch);
        if (!inst->match_keys || !inst->match_values)
            goto oom;
        inst->nmatch = (uint32_t)c->nmatch;
    }
    if (d->opts.simulate && c->kind != SB_KIND_CONNECTOR) {
        /* Simulation: triggers are replaced by the trace, scalers by a model. The instance
         * keeps its id, bounds and edges but runs no plugin (and needs no option values). */
        inst->desc = NULL;
        return inst;
    }
    if (values_acquire(d, c->plugin, c->values, c->nvalues, &inst->values) != 0)
        goto oom;
    const sb_value *pv = block_values(inst->values);
    char err[512] = "";
    int rc = c->plugin->create(inst, &host_table, pv, &inst->state, err, sizeof err);
    if (rc != 0) {
        int line, col;
        create_error_position(c, err, &line, &col, &file);
        config_error_add(errs, file, line, col, "%s '%s': %s", c->type, c->id,
                         err[0] ? err : strerror(rc < 0 ? -rc : rc));
        goto fail;
    }
    return inst;
oom:
    config_error_add(errs, c->file ? c->file : file, c->line, c->col,
                     "out of memory creating '%s'", c->id);
fail:
    if (inst) {
        /* Timers, subscriptions and indexes a failed create left behind. */
        while (inst->timers)
            host_timer_free(inst->timers);
        psubs_drop_owner(d, inst);
        indexes_drop_holder(inst);
        values_release(d, inst->values);
        free_strv(inst->match_keys, c->nmatch);
        free_strv(inst->match_values, c->nmatch);
        free(inst);
    }
    return NULL;
}

/* Remove the instance's bus source, once: its number may serve another source afterwards. */
static void inst_detach(sb_instance *inst)
{
    if (inst->source && !inst->detached)
        bus_source_remove(inst->d->bus, inst->source);
    inst->detached = 1;
}

static void inst_destroy(sb_instance *inst)
{
    sb_daemon *d = inst->d;
    atomic_store(&inst->accepting, 0);
    psubs_drop_owner(d, inst);
    inst_http_cancel_all(inst);
    if (inst->desc && inst->state)
        inst->desc->destroy(inst->state);
    /* Whatever the plugin left of its children goes now, and its callbacks are never called. */
    if (d->sup)
        supervisor_forget_owner(d->sup, inst);
    while (inst->timers)
        host_timer_free(inst->timers);
    indexes_drop_holder(inst);
    listeners_release_owner(d->listeners, inst);
    inst_detach(inst);
    obs_free(inst);
    last_list_free(inst);
    values_release(d, inst->values);
    free_strv(inst->match_keys, inst->nmatch);
    free_strv(inst->match_values, inst->nmatch);
    free(inst);
}

static int inst_start(sb_instance *inst)
{
    inst->source = bus_source_add(inst->d->bus, inst->id);
    if (!inst->source)
        return -ENOMEM;
    /* A plugin may publish from inside start(). */
    atomic_store_explicit(&inst->accepting, 1, memory_order_release);
    int rc = (inst->desc && inst->desc->start) ? inst->desc->start(inst->state) : 0;
    if (rc != 0) {
        atomic_store_explicit(&inst->accepting, 0, memory_order_release);
        inst_log(inst, SB_LOG_ERROR, "start failed: %s", strerror(rc < 0 ? -rc : rc));
        return rc;
    }
    inst->st = INST_RUNNING;
    if (inst->d->observing)
        inst_observe(inst);
    inst_log(inst, SB_LOG_DEBUG, "started (%s %s)", loader_kind_name(inst->kind), inst->type);
    return 0;
}

static void daemon_maybe_finish(sb_daemon *d);

/* Hand the free pages inside the heap back to the system, after a load or after retiring many
 * instances: freed memory lies between what the running instances keep, where free() alone
 * cannot return it. */
static void heap_release(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

static void inst_stopped(sb_instance *inst)
{
    inst->st = INST_STOPPED;
    inst_http_cancel_all(inst);
    sb_daemon *d = inst->d;
    if (d->pending_stops > 0)
        d->pending_stops--;
    inst_log(inst, SB_LOG_DEBUG, "stopped");
    daemon_maybe_finish(d);
}

/* Ask an instance to stop; it moves to the retiring list and is destroyed once stopped. With
 * keep_source, what it already published still reaches its subscribers (graceful stop). */
static void inst_retire(sb_daemon *d, sb_instance *inst, int keep_source)
{
    /* It no longer appears by id, and (unless kept for a flush) nothing it queued is delivered. */
    if (idmap_get(&d->by_id, inst->id) == inst)
        idmap_del(&d->by_id, inst->id);
    if (!keep_source)
        inst_detach(inst);
    inst->next_retiring = d->retiring;
    d->retiring = inst;
    if (inst->st != INST_RUNNING) {
        atomic_store_explicit(&inst->accepting, 0, memory_order_release);
        inst->st = INST_STOPPED;
        return;
    }
    /* A stopped subscriber hears nothing more. */
    psubs_drop_owner(d, inst);
    inst->st = INST_STOPPING;
    d->pending_stops++;
    int rc = (inst->desc && inst->desc->stop) ? inst->desc->stop(inst->state) : 0;
    /* From here on a publish (from any thread) is refused with -ESHUTDOWN. */
    atomic_store_explicit(&inst->accepting, 0, memory_order_release);
    if (rc != SB_PENDING && inst->st == INST_STOPPING)
        inst_stopped(inst);
}

/* Destroy retired instances whose stop has finished. */
static void daemon_reap_retired(sb_daemon *d)
{
    sb_instance **pp = &d->retiring;
    size_t destroyed = 0;
    while (*pp) {
        sb_instance *inst = *pp;
        if (inst->st == INST_STOPPED) {
            *pp = inst->next_retiring;
            inst_destroy(inst);
            destroyed++;
        } else {
            pp = &inst->next_retiring;
        }
    }
    /* A reload that replaced many pipelines ran both sets for a moment. */
    if (destroyed >= 1024)
        heap_release();
}

static void finish_cb(uv_idle_t *h)
{
    sb_daemon *d = h->data;
    uv_idle_stop(h);
    daemon_reap_retired(d);
    if (d->stopping && d->pending_stops == 0 && d->ninsts == 0 && !d->retiring &&
        !d->state_busy) {
        void (*done)(void *) = d->stop_done;
        d->stop_done = NULL;
        if (done)
            done(d->stop_arg);
    }
}

/* Completion runs from an idle callback, never inside the plugin's own stopped() call. */
static void daemon_maybe_finish(sb_daemon *d)
{
    if (d->finish_init)
        uv_idle_start(&d->finish, finish_cb);
}


/* ---- what the admin sees (inst_obs) --------------------------------------------------------- */

static inst_obs *obs_get(sb_instance *inst)
{
    if (!inst->obs) {
        inst_obs *o = calloc(1, sizeof *o);
        if (!o)
            return NULL;
        o->last_value = o->running = o->policy_value = o->override_value = NAN;
        inst->obs = o;
    }
    return inst->obs;
}

static void obs_free(sb_instance *inst)
{
    inst_obs *o = inst->obs;
    if (!o)
        return;
    /* The hold timer is the instance's (freed with its timers); the subscription goes with its
     * bus source. */
    free(o->last_error);
    free(o->last_note);
    free(o->latency);
    history_free(&o->history);
    free(o);
    inst->obs = NULL;
}

/* A bounded one-line copy: control characters (a remote's bytes may be in a reason) become '?'. */
static void obs_text(char **slot, const char *text)
{
    size_t n = strnlen(text, OBS_TEXT_MAX);
    if (*slot && strncmp(*slot, text, n) == 0 && (*slot)[n] == '\0')
        return;
    char *c = malloc(n + 1);
    if (!c)
        return;
    for (size_t i = 0; i < n; i++)
        c[i] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    c[n] = '\0';
    free(*slot);
    *slot = c;
}

static const char *event_label(const sb_event *ev, const char *key)
{
    for (size_t i = 0; ev->labels && i < ev->nlabels; i++)
        if (ev->labels[i].key && strcmp(ev->labels[i].key, key) == 0)
            return ev->labels[i].value ? ev->labels[i].value : "";
    return NULL;
}

/* A scaler's action result (the fleet library) and a trigger's read (the polling library). */
#define OBS_TOPIC_ACTION SB_TOPIC_ACTION
#define OBS_TOPIC_READ SB_TOPIC_READ

const double daemon_hist_bounds[DAEMON_HIST_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                        0.1,   0.25,   0.5,   1,    2.5,   10};

static void obs_latency(inst_obs *o, double seconds)
{
    if (!isfinite(seconds) || seconds < 0)
        return;
    if (!o->latency && !(o->latency = calloc(1, sizeof *o->latency)))
        return;
    for (size_t i = 0; i < DAEMON_HIST_BUCKETS; i++) {
        if (seconds <= daemon_hist_bounds[i]) {
            o->latency->bucket[i]++;
            break;
        }
    }
    o->latency->count++;
    o->latency->sum += seconds;
}

/* Every event a component publishes, once delivered: counters and last values. */
static void obs_event(void *arg, const sb_event *ev)
{
    sb_instance *inst = arg;
    inst_obs *o = ev->topic ? obs_get(inst) : NULL;
    if (!o)
        return;
    int64_t now = bus_now_wall_ns();
    const char *reason = event_label(ev, "reason");
    if (strcmp(ev->topic, SB_TOPIC_ERROR) == 0) {
        if (inst->kind == SB_KIND_TRIGGER)
            o->count[1]++;
        obs_text(&o->last_error, reason ? reason : "an error without a reason");
        o->last_error_ns = now;
    } else if (inst->kind == SB_KIND_TRIGGER && strcmp(ev->topic, SB_TOPIC_READING) == 0) {
        o->count[0]++;
        o->last_value = ev->value;
        o->last_value_ns = now;
    } else if (inst->kind == SB_KIND_CONNECTOR && strcmp(ev->topic, SB_TOPIC_DESIRED) == 0) {
        /* Up, down or hold against its previous decision (the first: up when above 0). */
        double prev = isnan(o->last_value) ? 0 : o->last_value;
        o->count[ev->value > prev ? 0 : ev->value < prev ? 1 : 2]++;
        o->last_value = ev->value;
        o->last_value_ns = now;
        obs_text(&o->last_note, reason ? reason : "");
        o->last_note_ns = now;
    } else if (inst->kind == SB_KIND_TRIGGER && strcmp(ev->topic, OBS_TOPIC_READ) == 0) {
        obs_latency(o, ev->value);
    } else if (inst->kind == SB_KIND_SCALER && strcmp(ev->topic, SB_TOPIC_INSTANCES) == 0) {
        o->running = ev->value;
        history_record(&o->history, now, inst->last_desired, o->running);
    } else if (inst->kind == SB_KIND_SCALER && strcmp(ev->topic, OBS_TOPIC_ACTION) == 0) {
        const char *result = event_label(ev, "result");
        int k = !result ? -1 : strcmp(result, "done") == 0 ? 0 : strcmp(result, "busy") == 0 ? 1
                                                            : strcmp(result, "failed") == 0 ? 2
                                                                                            : -1;
        if (k < 0)
            return;
        o->count[k]++;
        obs_latency(o, ev->value);
        char note[OBS_TEXT_MAX];
        snprintf(note, sizeof note, "%s%s%s", result, reason ? ": " : "", reason ? reason : "");
        obs_text(&o->last_note, note);
        o->last_note_ns = now;
    }
}

/* Observe a running component's events for the admin (idempotent). */
static int inst_observe(sb_instance *inst)
{
    if (inst->observed || !inst->source || inst->detached)
        return 0;
    /* The bus's observer (obs_event), not a subscription: a pointer per component. */
    int rc = bus_observe(inst->d->bus, inst->source, inst);
    if (rc < 0)
        return rc;
    inst->observed = 1; /* the mark goes with the bus source */
    return 0;
}

/* ---- edges --------------------------------------------------------------------------------- */

static int labels_match(const sb_instance *conn, const sb_event *ev)
{
    for (size_t m = 0; m < conn->nmatch; m++) {
        const char *want = conn->match_values[m];
        const char *have = NULL;
        for (size_t i = 0; i < ev->nlabels; i++) {
            if (strcmp(ev->labels[i].key, conn->match_keys[m]) == 0) {
                have = ev->labels[i].value;
                break;
            }
        }
        if (!have || !config_glob_match(want, have))
            return 0;
    }
    return 1;
}

/* trigger -> connector: a reading, filtered by the connector's match. */
static void edge_to_connector(void *arg, const sb_event *ev)
{
    sb_instance *conn = arg;
    if (conn->st != INST_RUNNING || !labels_match(conn, ev))
        return;
    conn->desc->on_event(conn->state, ev);
    state_touch(conn->d);
}

/* A failed read concerns the whole trigger, not one series: no `match` filter. */
static void edge_error_to_connector(void *arg, const sb_event *ev)
{
    sb_instance *conn = arg;
    if (conn->st == INST_RUNNING) {
        conn->desc->on_event(conn->state, ev);
        state_touch(conn->d);
    }
}

/* A connector's decision for a paused or overridden scaler is remembered (and logged when it
 * changes), not applied. Returns 1 when withheld. */
static int scaler_withholds(sb_instance *scaler, inst_obs *o, const sb_event *ev)
{
    double before = o->policy_value;
    o->policy_value = ev->value;
    const char *why = o->paused ? "paused"
                      : o->override_until && bus_now_mono_ns() < o->override_until ? "overridden"
                                                                                   : NULL;
    if (!why)
        return 0;
    if (before != ev->value)
        inst_log(scaler, SB_LOG_INFO, "%s: desired %.0f from %s not applied", why,
                 ceil(ev->value - 1e-9) + 0.0, ev->source_id);
    return 1;
}

static void deliver_desired(sb_instance *scaler, const sb_event *ev)
{
    if (isnan(ev->value)) {
        inst_log(scaler, SB_LOG_WARN, "ignored a desired count that is not a number from %s",
                 ev->source_id);
        return;
    }
    if (scaler->obs)
        scaler->obs->last_desired_ns = bus_now_wall_ns();
    /* Rounded up, then held to [min, max]: no input can scale outside the bounds. */
    double want = ceil(ev->value - 1e-9) + 0.0; /* + 0.0: no "-0" in the log */
    double clamped = want;
    if (clamped < (double)scaler->min)
        clamped = (double)scaler->min;
    if (clamped > (double)scaler->max)
        clamped = (double)scaler->max;
    if (scaler->d->logger.level < SB_LOG_INFO)
        ; /* nothing to log: skip the formatting on this hot path */
    else if (clamped != want)
        decision_log(scaler, ev, want, clamped,
                     "desired %.0f from %s held to %.0f (min %lld, max %lld)", want,
                     ev->source_id, clamped, (long long)scaler->min, (long long)scaler->max);
    else if (clamped != scaler->last_desired && isnan(scaler->last_desired))
        decision_log(scaler, ev, want, clamped, "desired %.0f (%s)", clamped,
                     strcmp(ev->source_id, "scalebus") == 0 ? "min, at start" : ev->source_id);
    else if (clamped != scaler->last_desired)
        decision_log(scaler, ev, want, clamped, "desired %.0f from %s", clamped, ev->source_id);
    scaler->last_desired = clamped;
    state_touch(scaler->d);
    /* The chart's point (the admin observes this scaler, or a control made its obs). */
    inst_obs *seen = scaler->observed ? obs_get(scaler) : scaler->obs;
    if (seen)
        history_record(&seen->history, bus_now_wall_ns(), clamped, seen->running);
    sb_event out = *ev;
    out.topic = SB_TOPIC_DESIRED;
    out.value = clamped;
    /* A decision's reason chain ends with the scaler's own bound when that changed the count. */
    sb_label labels[8];
    char reason[640];
    if (clamped != want && ev->nlabels <= 8) {
        for (size_t i = 0; i < ev->nlabels; i++) {
            labels[i] = ev->labels[i];
            if (strcmp(labels[i].key, "reason") == 0) {
                snprintf(reason, sizeof reason, "%s; scaler %s %lld -> %.0f", labels[i].value,
                         clamped > want ? "min" : "max",
                         (long long)(clamped > want ? scaler->min : scaler->max), clamped);
                labels[i].value = reason;
            }
        }
        out.labels = labels;
    }
    if (scaler->desc)
        scaler->desc->on_event(scaler->state, &out);
    else if (scaler->d->opts.sim_desired) /* simulation: a model stands in for the scaler */
        scaler->d->opts.sim_desired(scaler->d->opts.sim_arg, scaler->id, &out);
}

/* scaler -> connector: the scaler's instance list (value: running count), no label filter. */
static void edge_instances_to_connector(void *arg, const sb_event *ev)
{
    sb_instance *conn = arg;
    if (conn->st != INST_RUNNING)
        return;
    /* The scaler's bounds travel with its count (labels scaler_min, scaler_max), so a policy
     * never keeps a target the scaler cannot run. */
    sb_instance *scaler = idmap_get(&conn->d->by_id, ev->source_id);
    if (!scaler || scaler->kind != SB_KIND_SCALER || ev->nlabels > 14) {
        conn->desc->on_event(conn->state, ev);
        return;
    }
    sb_label labels[16];
    char min[24], max[24];
    snprintf(min, sizeof min, "%lld", (long long)scaler->min);
    snprintf(max, sizeof max, "%lld", (long long)scaler->max);
    for (size_t i = 0; i < ev->nlabels; i++)
        labels[i] = ev->labels[i];
    labels[ev->nlabels] = (sb_label){"scaler_min", min};
    labels[ev->nlabels + 1] = (sb_label){"scaler_max", max};
    sb_event out = *ev;
    out.labels = labels;
    out.nlabels = ev->nlabels + 2;
    conn->desc->on_event(conn->state, &out);
}

/* connector -> target: a desired count for a scaler, or "run now" for a trigger. */
static void edge_to_target(void *arg, const sb_event *ev)
{
    sb_instance *target = arg;
    if (target->st != INST_RUNNING)
        return;
    if (target->kind == SB_KIND_SCALER) {
        /* Only connectors' decisions wait while paused or overridden: the daemon's own counts
         * (at start, after new bounds) and the admin's are applied. */
        if (target->obs && scaler_withholds(target, target->obs, ev))
            return;
        deliver_desired(target, ev);
    } else if (target->kind == SB_KIND_TRIGGER && target->desc && target->desc->on_event) {
        sb_event out = *ev;
        out.topic = SB_TOPIC_RUN;
        target->desc->on_event(target->state, &out);
    }
}

static void edges_clear(sb_daemon *d)
{
    for (size_t i = 0; i < d->nedges; i++)
        bus_unsubscribe(d->bus, d->edges[i].source, d->edges[i].sub);
    d->nedges = 0;
}

static int edge_add(sb_daemon *d, sb_instance *from, const char *topic, sb_event_cb cb,
                    sb_instance *target)
{
    if (d->nedges == d->edges_cap) {
        size_t ncap = d->edges_cap ? d->edges_cap * 2 : 64;
        edge *n = realloc(d->edges, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        d->edges = n;
        d->edges_cap = ncap;
    }
    int64_t sub = bus_subscribe(d->bus, from->source, topic, cb, target);
    if (sub < 0)
        return (int)sub;
    int pipeline = cb == edge_to_connector || cb == edge_to_target;
    d->edges[d->nedges++] = (edge){from->source, sub, from, target, pipeline};
    return 0;
}

static int edges_build(sb_daemon *d, const config *cfg)
{
    edges_clear(d);
    for (size_t i = 0; i < cfg->ncomponents; i++) {
        const config_component *c = &cfg->components[i];
        if (c->kind != SB_KIND_CONNECTOR)
            continue;
        sb_instance *conn = idmap_get(&d->by_id, c->id);
        if (!conn)
            continue;
        for (size_t f = 0; f < c->nfrom; f++) {
            sb_instance *src = idmap_get(&d->by_id, c->from[f]);
            /* A trigger's readings, or another connector's decisions (policies in a chain). */
            const char *topic =
                (src && src->kind == SB_KIND_CONNECTOR) ? SB_TOPIC_DESIRED : SB_TOPIC_READING;
            if (src && edge_add(d, src, topic, edge_to_connector, conn) != 0)
                return -ENOMEM;
            /* A trigger's failed reads travel the same way, so the policy can hold or fall back. */
            if (src && src->kind == SB_KIND_TRIGGER && conn->desc &&
                (conn->desc->accepts & SB_ACCEPTS_ERRORS) &&
                edge_add(d, src, SB_TOPIC_ERROR, edge_error_to_connector, conn) != 0)
                return -ENOMEM;
        }
        for (size_t t = 0; t < c->nto; t++) {
            sb_instance *dst = idmap_get(&d->by_id, c->to[t]);
            if (dst && edge_add(d, conn, SB_TOPIC_DESIRED, edge_to_target, dst) != 0)
                return -ENOMEM;
            /* The policy learns the scaler's running count from its instance list. */
            if (dst && dst->kind == SB_KIND_SCALER &&
                edge_add(d, dst, SB_TOPIC_INSTANCES, edge_instances_to_connector, conn) != 0)
                return -ENOMEM;
        }
    }
    return 0;
}

/* ---- loading and reloading ------------------------------------------------------------------ */

typedef struct report_ctx {
    sb_daemon *d;
} report_ctx;

static void supervisor_log(void *arg, sb_log_level level, const char *msg)
{
    sb_daemon *d = arg;
    log_write(&d->logger, level, "supervisor", "%s", msg);
}

/* Once per load: a file refused when looked up by name is refused again when its folder is
 * loaded whole. */
static void report_plugin_error(void *arg, const char *line)
{
    sb_daemon *d = arg;
    for (size_t i = 0; i < d->nplugin_refusals; i++)
        if (strcmp(d->plugin_refusals[i], line) == 0)
            return;
    char *copy = strdup(line);
    char **n = copy ? realloc(d->plugin_refusals, (d->nplugin_refusals + 1) * sizeof *n) : NULL;
    if (n) {
        d->plugin_refusals = n;
        d->plugin_refusals[d->nplugin_refusals++] = copy;
    } else {
        free(copy);
    }
    dlog(d, SB_LOG_ERROR, "%s", line);
}

static void plugin_refusals_clear(sb_daemon *d)
{
    free_strv(d->plugin_refusals, d->nplugin_refusals);
    d->plugin_refusals = NULL;
    d->nplugin_refusals = 0;
}

/* Plugins are loaded when a file names their type, not all at start: each loaded .so maps its
 * libraries (OpenSSL, libxml2, sd-bus...), about 3 MB for the built-in set, which a daemon
 * running cron, direct and process never touches. */
typedef struct plugin_dir {
    char *path;
    int loaded; /* every *.so in it is loaded */
} plugin_dir;

static void plugin_dir_add(sb_daemon *d, const char *path)
{
    for (size_t i = 0; i < d->nplugin_dirs; i++)
        if (strcmp(d->plugin_dirs[i].path, path) == 0)
            return;
    plugin_dir *n = realloc(d->plugin_dirs, (d->nplugin_dirs + 1) * sizeof *n);
    char *copy = strdup(path);
    if (!n || !copy) {
        free(copy);
        if (n)
            d->plugin_dirs = n;
        /* no memory to defer: load it now */
        loader_load_dir(d->loader, path, report_plugin_error, d);
        return;
    }
    d->plugin_dirs = n;
    d->plugin_dirs[d->nplugin_dirs++] = (plugin_dir){copy, 0};
}

static void plugins_load_all(sb_daemon *d)
{
    for (size_t i = 0; i < d->nplugin_dirs; i++)
        if (!d->plugin_dirs[i].loaded) {
            d->plugin_dirs[i].loaded = 1;
            loader_load_dir(d->loader, d->plugin_dirs[i].path, report_plugin_error, d);
        }
}

/* A type loaded already, else DIR/TYPE.so in the first folder that has it, else every folder
 * loaded whole (a plugin whose file is not named after its type; an unknown type then gets a
 * "did you mean" over every type there is). */
static const sb_plugin_descriptor *plugin_lookup(sb_daemon *d, const char *type)
{
    const sb_plugin_descriptor *p = loader_find(d->loader, type);
    if (p || !type)
        return p;
    size_t tlen = strlen(type);
    if (tlen > 0 && tlen < 64 && strspn(type, "abcdefghijklmnopqrstuvwxyz0123456789_") == tlen) {
        for (size_t i = 0; i < d->nplugin_dirs; i++) {
            if (d->plugin_dirs[i].loaded)
                continue;
            char file[PATH_MAX];
            if ((size_t)snprintf(file, sizeof file, "%s/%s.so", d->plugin_dirs[i].path, type) >=
                    sizeof file ||
                access(file, F_OK) != 0)
                continue;
            char err[PATH_MAX + 256];
            if (loader_load_file(d->loader, file, err, sizeof err) != 0)
                report_plugin_error(d, err);
            else if ((p = loader_find(d->loader, type)))
                return p;
        }
    }
    plugins_load_all(d);
    return loader_find(d->loader, type);
}

static void daemon_load_builtin(sb_daemon *d)
{
    if (d->loaded_builtin)
        return;
    d->loaded_builtin = 1;
    char dir[PATH_MAX];
    loader_builtin_dir(dir, sizeof dir);
    plugin_dir_add(d, dir);
    for (size_t i = 0; i < d->nextra_dirs; i++)
        plugin_dir_add(d, d->extra_dirs[i]);
}

static const sb_plugin_descriptor *lookup_plugin(void *ctx, const char *type)
{
    return plugin_lookup(ctx, type);
}

/* Parse and validate a file: NULL (errors in errs) or a config ready to run. A plugins.path
 * folder that cannot be used (missing, or refused by the loader's trust rules) is an error at
 * its entry in the file, and is not loaded. */
static config *daemon_prepare(sb_daemon *d, const char *path, config_errors *errs)
{
    config *cfg = config_parse_file(path, errs);
    if (!cfg)
        return NULL;
    plugin_refusals_clear(d);
    /* Folders are looked at again at each load: a plugin file fixed or added since is found. */
    for (size_t i = 0; i < d->nplugin_dirs; i++)
        d->plugin_dirs[i].loaded = 0;
    daemon_load_builtin(d);
    for (size_t i = 0; i < cfg->nplugin_paths; i++) {
        char why[PATH_MAX + 512];
        if (loader_check_dir(cfg->plugin_paths[i], why, sizeof why) != 0)
            config_plugin_path_refused(cfg, i, why, errs);
        else
            plugin_dir_add(d, cfg->plugin_paths[i]);
    }
    /* Each type the file names, loaded now: an unknown one loads every folder, so that the list
     * below has every type for its "did you mean". */
    for (size_t i = 0; i < cfg->ncomponents; i++)
        if (cfg->components[i].type)
            plugin_lookup(d, cfg->components[i].type);
    /* Every loaded type, so that an unknown one gets a "did you mean". */
    size_t ntypes = loader_count(d->loader);
    const char **types = calloc(ntypes ? ntypes : 1, sizeof *types);
    for (size_t i = 0; types && i < ntypes; i++)
        types[i] = loader_at(d->loader, i)->type;
    config_catalog cat = {.lookup = lookup_plugin, .ctx = d, .types = types,
                          .ntypes = types ? ntypes : 0};
    config_validate_plugins_from(cfg, &cat, errs);
    free(types);
    if (errs->count > 0) {
        config_free(cfg);
        return NULL;
    }
    return cfg;
}

static int insts_push(sb_daemon *d, sb_instance *inst)
{
    if (d->ninsts == d->insts_cap) {
        size_t ncap = d->insts_cap ? d->insts_cap * 2 : 64;
        sb_instance **n = realloc(d->insts, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        d->insts = n;
        d->insts_cap = ncap;
    }
    d->insts[d->ninsts++] = inst;
    return 0;
}

static int kind_order(sb_kind k)
{
    return k == SB_KIND_SCALER ? 0 : k == SB_KIND_CONNECTOR ? 1 : 2;
}

/* A scaler's first desired count: what the instance it replaces was last told (so a replaced
 * scaler keeps the fleet's size), else its min. deliver_desired clamps it to the bounds. */
static void send_initial_desired(sb_instance *scaler, double replaced_desired, int restored)
{
    int carried = !isnan(replaced_desired);
    /* Labelled, so a scaler that adopts what runs (scalebus/scaler.h) takes it as the floor
     * only: a restart must not scale an existing fleet down to min. "restored": the count the
     * last daemon had told it (the state file). */
    sb_label initial = {"initial", !carried ? "min" : restored ? "restored" : "replaced"};
    sb_event ev = {.size = sizeof(sb_event),
                   .labels = &initial,
                   .nlabels = 1,
                   .source_id = !carried  ? "scalebus"
                                : restored ? "the state file"
                                           : "the instance it replaces",
                   .topic = SB_TOPIC_DESIRED,
                   .mono_ns = bus_now_mono_ns(),
                   .wall_ns = bus_now_wall_ns(),
                   .value = carried ? replaced_desired : (double)scaler->min};
    deliver_desired(scaler, &ev);
}

static void log_errors(sb_daemon *d, const char *path, const config_errors *errs)
{
    dlog(d, SB_LOG_ERROR, "%s: %zu error(s); %s", path, errs->count,
         d->ninsts ? "the running pipelines carry on unchanged" : "nothing started");
    for (size_t i = 0; i < errs->count; i++)
        dlog(d, SB_LOG_ERROR, "%s:%d:%d: %s", errs->items[i].file, errs->items[i].line,
             errs->items[i].col, errs->items[i].message);
}

/* What a load does with one component of the file. */
typedef enum plan_action {
    PLAN_KEEP,   /* same plugin options: keeps running; host settings applied in place */
    PLAN_RECONF, /* options changed and the plugin took them in place (reconfigure) */
    PLAN_NEW     /* a new instance, started before the one it replaces (if any) retires */
} plan_action;

typedef struct plan_item {
    plan_action action;
    sb_instance *inst; /* KEEP/RECONF: the running instance; NEW: the new one */
    sb_instance *old;  /* NEW: the running instance with that id it replaces, or NULL */
    double carried;    /* NEW scaler: the desired count of the one it replaces, NAN if none */
    int restored;      /* NEW scaler: carried comes from the state file */
    int started;
    /* RECONF: the new option values, installed on commit or released on rollback. */
    values_block *values;
} plan_item;

/* Offer changed options to a running instance. 1: taken in place (storage moved into it). */
static int plan_try_reconfigure(sb_instance *old, config_component *c, plan_item *it)
{
    values_block *copy;
    if (values_acquire(old->d, old->desc, c->values, c->nvalues, &copy) != 0)
        return 0;
    const sb_value *pv = block_values(copy);
    char err[512] = "";
    int rc = old->desc->reconfigure(old->state, pv, err, sizeof err);
    if (rc != 0) {
        values_release(old->d, copy);
        if (rc != SB_RECONFIGURE_REPLACE)
            inst_log(old, SB_LOG_INFO, "changed options not taken in place (%s): replacing it",
                     err[0] ? err : strerror(-rc));
        return 0;
    }
    it->values = copy;
    return 1;
}

/* A refused load: put every reconfigured instance back on its old options, and stop or free
 * every new instance. What was running before carries on as it was. */
static void plan_roll_back(sb_daemon *d, plan_item *plan, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        plan_item *it = &plan[i];
        if (it->action == PLAN_RECONF) {
            char err[256] = "";
            if (it->inst->desc->reconfigure(it->inst->state, block_values(it->inst->values), err,
                                            sizeof err) != 0)
                inst_log(it->inst, SB_LOG_ERROR, "could not go back to its running options: %s",
                         err[0] ? err : "refused");
            values_release(d, it->values);
        } else if (it->action == PLAN_NEW && it->inst) {
            if (it->started) {
                /* The running instance it would have replaced carries on. */
                it->inst->stop_reason = SB_STOP_REPLACED;
                inst_retire(d, it->inst, 0); /* destroyed once stopped */
            }
            else
                inst_destroy(it->inst);
        }
    }
}

/* Host settings of a component that keeps running: bounds, match. Returns 1 when a scaler's
 * bounds changed, so its desired count is held to the new ones. */
static int inst_apply_settings(sb_instance *inst, const config_component *c)
{
    int bounds_changed = 0;
    if (inst->kind == SB_KIND_SCALER && (inst->min != c->min || inst->max != c->max)) {
        inst_log(inst, SB_LOG_INFO, "bounds [%lld, %lld] -> [%lld, %lld], in place",
                 (long long)inst->min, (long long)inst->max, (long long)c->min,
                 (long long)c->max);
        inst->min = c->min;
        inst->max = c->max;
        bounds_changed = 1;
    }
    if (inst->kind == SB_KIND_CONNECTOR) {
        char **keys = dup_strv(c->match_keys, c->nmatch);
        char **values = dup_strv(c->match_values, c->nmatch);
        if (c->nmatch && (!keys || !values)) {
            free_strv(keys, c->nmatch);
            free_strv(values, c->nmatch);
            inst_log(inst, SB_LOG_ERROR, "out of memory: match left as it was");
        } else {
            free_strv(inst->match_keys, inst->nmatch);
            free_strv(inst->match_values, inst->nmatch);
            inst->match_keys = keys;
            inst->match_values = values;
            inst->nmatch = (uint32_t)c->nmatch;
        }
    }
    return bounds_changed;
}

/* A kept scaler whose bounds changed keeps its count, held to the new bounds. */
static void hold_to_bounds(sb_instance *scaler)
{
    if (isnan(scaler->last_desired))
        return;
    double v = scaler->last_desired;
    if (v >= (double)scaler->min && v <= (double)scaler->max)
        return;
    sb_event ev = {.size = sizeof(sb_event),
                   .source_id = "new bounds",
                   .topic = SB_TOPIC_DESIRED,
                   .mono_ns = bus_now_mono_ns(),
                   .wall_ns = bus_now_wall_ns(),
                   .value = v};
    deliver_desired(scaler, &ev);
}

/* A load is done with its file. The file's tree, its components' storage and everything freed on
 * the way lay between what the instances keep; hand those pages back to the system (heap_release),
 * or a daemon that loaded 10,000 pipelines stays at the load's peak for ever. */
static void load_release(config *cfg)
{
    config_free(cfg);
    heap_release();
}

static void hold_ended(void *arg);

/* A scaler replaced by a reload hands its pause and override (with what is left of its hold) to
 * the new instance: an operator's decision outlives a change of options. */
static void carry_controls(sb_instance *old, sb_instance *inst)
{
    inst_obs *from = old->obs;
    if (!from || inst->kind != SB_KIND_SCALER || old->kind != SB_KIND_SCALER)
        return;
    uint64_t now = bus_now_mono_ns();
    int holding = from->override_until && now < from->override_until;
    if (!from->paused && !holding)
        return;
    inst_obs *o = obs_get(inst);
    if (!o)
        return;
    o->paused = from->paused;
    o->policy_value = from->policy_value;
    if (holding) {
        uint64_t left_ms = (from->override_until - now + 999999) / 1000000;
        o->hold_timer = host_timer_new(inst, left_ms, 0, hold_ended, inst);
        if (o->hold_timer) {
            o->override_until = from->override_until;
            o->override_until_wall = from->override_until_wall;
            o->override_value = from->override_value;
        }
    }
    inst_log(inst, SB_LOG_INFO, "keeps the replaced instance's %s", from->paused ? "pause"
                                                                                  : "override");
}

/* ---- state that survives a restart (state.dir, core/state.h) -------------------------------- */

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif

/* The first load only: a new component whose id and type the state file knows gets its snapshot
 * after create() and before start(). One its restore() refuses is dropped with a warning. */
static void state_restore_component(sb_daemon *d, sb_instance *inst)
{
    if (!inst->desc || !inst->state || inst->desc->size < offsetof(sb_plugin_descriptor, restore) +
                                                              sizeof inst->desc->restore ||
        !inst->desc->restore)
        return;
    const char *version = "";
    const cJSON *snap = state_saved_component(d->restoring, inst->id, inst->type, &version);
    if (!snap)
        return;
    char err[512] = "";
    int rc = inst->desc->restore(inst->state, snap, err, sizeof err);
    if (rc != 0)
        inst_log(inst, SB_LOG_WARN, "saved state dropped (written by %s %s): %s", inst->type,
                 *version ? version : "?", err[0] ? err : strerror(rc < 0 ? -rc : rc));
    else
        inst_log(inst, SB_LOG_INFO, "state restored (saved by %s %s)", inst->type,
                 *version ? version : "?");
}

/* The first load only: a new scaler's pause and override come back (an override whose hold has
 * ended is dropped), and its first desired count is the one the last daemon told it. */
static void state_restore_scaler(sb_daemon *d, sb_instance *inst, double *carried, int *restored)
{
    state_scaler ss;
    if (!state_saved_scaler(d->restoring, inst->id, inst->type, &ss))
        return;
    int64_t now_ms = bus_now_wall_ns() / 1000000;
    int holding = ss.has_override && ss.override_until_ms > now_ms;
    inst_obs *o = (ss.paused || holding) ? obs_get(inst) : NULL;
    if (o) {
        o->paused = ss.paused;
        if (holding) {
            uint64_t left_ms = (uint64_t)(ss.override_until_ms - now_ms);
            o->hold_timer = host_timer_new(inst, left_ms, 0, hold_ended, inst);
            if (o->hold_timer) {
                o->override_until = bus_now_mono_ns() + left_ms * 1000000ull;
                o->override_until_wall = ss.override_until_ms * 1000000;
                o->override_value = ss.override_desired;
            } else {
                holding = 0;
            }
        }
    }
    if (o && ss.paused)
        inst_log(inst, SB_LOG_INFO, "paused (kept in the state file): decisions are logged, not "
                                    "applied");
    if (o && holding)
        inst_log(inst, SB_LOG_INFO, "override %.0f (kept in the state file), held %llds more",
                 ss.override_desired, (long long)((ss.override_until_ms - now_ms + 999) / 1000));
    else if (ss.has_override)
        inst_log(inst, SB_LOG_INFO, "the override in the state file has ended: dropped");
    double v = holding ? ss.override_desired : ss.last_desired;
    if (!isnan(v)) {
        *carried = v;
        *restored = 1;
    }
}

/* The whole state as the file's text (NULL: out of memory). Calls each snapshot() on the loop. */
static char *state_render(sb_daemon *d)
{
    cJSON *doc = state_doc_new(SB_VERSION, bus_now_wall_ns() / 1000000);
    if (!doc)
        return NULL;
    uint64_t now = bus_now_mono_ns();
    int ok = 1;
    for (size_t i = 0; ok && i < d->ninsts; i++) {
        sb_instance *inst = d->insts[i];
        const sb_plugin_descriptor *desc = inst->desc;
        if (desc && inst->state &&
            desc->size >= offsetof(sb_plugin_descriptor, snapshot) + sizeof desc->snapshot &&
            desc->snapshot) {
            cJSON *snap = desc->snapshot(inst->state);
            if (snap)
                ok = state_doc_add_component(doc, inst->id, inst->type, desc->version, snap) == 0;
        }
        if (!ok || inst->kind != SB_KIND_SCALER)
            continue;
        state_scaler ss = {.last_desired = inst->last_desired, .override_desired = NAN};
        const inst_obs *o = inst->obs;
        if (o) {
            ss.paused = o->paused;
            if (o->override_until && now < o->override_until) {
                ss.has_override = 1;
                ss.override_desired = o->override_value;
                ss.override_until_ms = o->override_until_wall / 1000000;
            }
        }
        ok = state_doc_add_scaler(doc, inst->id, inst->type, &ss) == 0;
    }
    char *text = ok ? cJSON_PrintUnformatted(doc) : NULL;
    cJSON_Delete(doc);
    return text;
}

typedef struct state_write_req {
    uv_work_t work;
    sb_daemon *d;
    char *dir;
    char *text;
    int rc;
    char err[512];
} state_write_req;

static void state_write_work(uv_work_t *w)
{
    state_write_req *r = w->data;
    r->rc = state_write(r->dir, r->text, strlen(r->text), r->err, sizeof r->err);
}

static void state_submit(sb_daemon *d, char *text);

static void state_write_done(uv_work_t *w, int status)
{
    state_write_req *r = w->data;
    sb_daemon *d = r->d;
    d->state_busy = 0;
    if (status == 0 && r->rc != 0 && !d->state_failing)
        dlog(d, SB_LOG_WARN, "state: not written: %s (tried again on the next change)", r->err);
    else if (status == 0 && r->rc == 0 && d->state_failing)
        dlog(d, SB_LOG_INFO, "state: written again to %s/%s", r->dir, STATE_FILE_NAME);
    if (status == 0)
        d->state_failing = r->rc != 0;
    if (r->rc != 0)
        atomic_store(&d->state_dirty, 1);
    free(r->dir);
    free(r->text);
    free(r);
    char *next = d->state_pending;
    d->state_pending = NULL;
    if (next)
        state_submit(d, next);
    else
        daemon_maybe_finish(d); /* a stop waits for the last write */
}

/* Write text (taken over) on a worker thread; one write at a time, the newest text next. */
static void state_submit(sb_daemon *d, char *text)
{
    if (d->state_busy) {
        free(d->state_pending);
        d->state_pending = text;
        return;
    }
    state_write_req *r = calloc(1, sizeof *r);
    if (r && (r->dir = strdup(d->state_dir)) != NULL) {
        r->d = d;
        r->text = text;
        r->work.data = r;
        if (uv_queue_work(d->loop, &r->work, state_write_work, state_write_done) == 0) {
            d->state_busy = 1;
            return;
        }
        free(r->dir);
    }
    free(r);
    free(text);
    atomic_store(&d->state_dirty, 1);
    dlog(d, SB_LOG_WARN, "state: not written: out of memory");
}

static void state_tick(uv_timer_t *t)
{
    sb_daemon *d = t->data;
    if (!d->state_dir || d->stopping || !atomic_exchange(&d->state_dirty, 0))
        return;
    char *text = state_render(d);
    if (!text) {
        atomic_store(&d->state_dirty, 1);
        dlog(d, SB_LOG_WARN, "state: not written: out of memory");
        return;
    }
    state_submit(d, text);
}

/* state.dir must be a folder this daemon can write to (errors at state.dir). */
static int state_settings_check(const config *cfg, config_errors *errs)
{
    const config_state *st = &cfg->state;
    if (!st->dir)
        return 0;
    struct stat sb;
    const char *why = NULL;
    if (stat(st->dir, &sb) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(sb.st_mode))
        why = "not a folder";
    else if (access(st->dir, W_OK | X_OK) != 0)
        why = strerror(errno);
    if (!why)
        return 0;
    config_error_add(errs, cfg->path, st->line, st->col, "state.dir %s: %s", st->dir, why);
    return -EINVAL;
}

/* The first load reads the file (a refused one is one line, never fatal). */
static void state_open(sb_daemon *d, const config *cfg)
{
    if (d->loaded_once || !cfg->state.dir || d->opts.simulate)
        return;
    char why[1024];
    d->restoring = state_read(cfg->state.dir, why, sizeof why);
    if (!d->restoring && why[0])
        dlog(d, SB_LOG_WARN, "state: %s", why);
    else if (d->restoring)
        dlog(d, SB_LOG_INFO, "state: %zu saved entr%s in %s/%s (written by scalebus %s)",
             state_saved_count(d->restoring), state_saved_count(d->restoring) == 1 ? "y" : "ies",
             cfg->state.dir, STATE_FILE_NAME, state_saved_daemon(d->restoring));
}

/* A loaded file's state settings take effect: the folder, and the timer's period. */
static void state_settings_commit(sb_daemon *d, const config *cfg)
{
    const config_state *st = &cfg->state;
    if (!st->dir || d->opts.simulate) {
        if (d->state_dir)
            dlog(d, SB_LOG_INFO, "state: no longer kept (state.dir removed)");
        free(d->state_dir);
        d->state_dir = NULL;
        if (d->state_timer_init)
            uv_timer_stop(&d->state_timer);
        return;
    }
    if (!d->state_dir || strcmp(d->state_dir, st->dir) != 0) {
        char *dir = strdup(st->dir);
        if (!dir) {
            dlog(d, SB_LOG_WARN, "state: out of memory: not kept");
            return;
        }
        free(d->state_dir);
        d->state_dir = dir;
    }
    if (!d->state_timer_init) {
        if (uv_timer_init(d->loop, &d->state_timer) != 0)
            return;
        d->state_timer.data = d;
        d->state_timer_init = 1;
    }
    if (d->state_every_ms != st->every_ms || !uv_is_active((uv_handle_t *)&d->state_timer)) {
        d->state_every_ms = st->every_ms;
        uv_timer_start(&d->state_timer, state_tick, st->every_ms, st->every_ms);
    }
    atomic_store(&d->state_dirty, 1); /* the file says what runs now */
}

/* Reloads by result, for the admin's metrics (the first load is not a reload). */
static void load_counted(sb_daemon *d, int ok)
{
    if (d->loaded_once)
        ok ? d->reloads_ok++ : d->reloads_refused++;
    if (ok)
        d->loaded_once = 1;
}

/* Bind the admin's address from the file when it changed (errors at admin.listen). An address
 * the file does not name (the default) that cannot be bound is only a warning: the pipelines
 * run without the admin. */
static int admin_settings_prepare(sb_daemon *d, const config *cfg, config_errors *errs)
{
    if (!d->admin && !(d->admin = admin_new(d->loop, d, &d->logger))) {
        config_error_add(errs, cfg->path, 1, 1, "out of memory");
        return -ENOMEM;
    }
    char err[512];
    if (admin_prepare(d->admin, &cfg->admin, err, sizeof err) == 0)
        return 0;
    if (!cfg->admin.listen_set) {
        dlog(d, SB_LOG_WARN, "admin: %s; running without it (set admin.listen, or admin: "
             "{listen: off})", err);
        return 0;
    }
    config_error_add(errs, cfg->path, cfg->admin.line, cfg->admin.col, "admin.listen: %s", err);
    return -EINVAL;
}

/* Decide per component (keep, reconfigure, or create anew), start every new instance, and only
 * then retire what they replace. Any error, a failed create or a failed start included, refuses
 * the whole file: new instances are stopped, reconfigured ones go back to their old options,
 * and the running pipelines carry on as they were. */
static int daemon_load_file(sb_daemon *d, const char *path, config_errors *errs);

int daemon_load(sb_daemon *d, const char *path, config_errors *errs)
{
    if (path && (!d->path || strcmp(d->path, path) != 0)) {
        char *copy = strdup(path);
        if (copy) {
            free(d->path);
            d->path = copy;
        }
    }
    int rc = daemon_load_file(d, path, errs);
    /* What the state file held is used by the first load only. */
    state_saved_free(d->restoring);
    d->restoring = NULL;
    return rc;
}

static int daemon_load_file(sb_daemon *d, const char *path, config_errors *errs)
{
    if (d->stopping)
        return -ECANCELED;
    config *cfg = daemon_prepare(d, path, errs);
    if (!cfg) {
        log_errors(d, path, errs);
        load_counted(d, 0);
        return -EINVAL;
    }
    if (!d->opts.log_level_set && cfg->log_level_set)
        d->logger.level = cfg->log_level;
    if (state_settings_check(cfg, errs) != 0) {
        log_errors(d, path, errs);
        load_release(cfg);
        load_counted(d, 0);
        return -EINVAL;
    }
    state_open(d, cfg);
    /* The admin's new address is bound before anything starts: one that cannot be refuses the
     * file, and the running admin (and pipelines) carry on. */
    if (d->opts.admin && admin_settings_prepare(d, cfg, errs) != 0) {
        log_errors(d, path, errs);
        load_release(cfg);
        load_counted(d, 0);
        return -EINVAL;
    }
    if (!d->opts.log_json_set)
        d->logger.json = cfg->log_json_set && cfg->log_json;

    size_t n = cfg->ncomponents;
    plan_item *plan = calloc(n ? n : 1, sizeof *plan);
    if (!plan) {
        load_release(cfg);
        config_error_add(errs, path, 1, 1, "out of memory");
        admin_abort(d->admin);
        load_counted(d, 0);
        return -ENOMEM;
    }
    d->loading = cfg;
    for (size_t i = 0; i < n && errs->count == 0; i++) {
        config_component *c = &cfg->components[i];
        plan_item *it = &plan[i];
        sb_instance *old = idmap_get(&d->by_id, c->id);
        if (old && old->st != INST_RUNNING)
            old = NULL;
        int same_plugin = old && old->kind == c->kind && strcmp(old->type, c->type) == 0 &&
                          old->desc == c->plugin;
        if (same_plugin && old->fingerprint == fingerprint_hash(c->fingerprint)) {
            *it = (plan_item){.action = PLAN_KEEP, .inst = old};
            continue;
        }
        if (same_plugin && old->desc && old->desc->reconfigure &&
            plan_try_reconfigure(old, c, it)) {
            it->action = PLAN_RECONF;
            it->inst = old;
            continue;
        }
        it->action = PLAN_NEW;
        it->old = old;
        it->carried = old && old->kind == SB_KIND_SCALER ? old->last_desired : NAN;
        it->inst = inst_create(d, c, cfg->path, errs);
        if (it->inst && !old && d->restoring)
            state_restore_component(d, it->inst);
    }
    if (errs->count > 0) {
        plan_roll_back(d, plan, n);
        d->loading = NULL;
        free(plan);
        log_errors(d, path, errs);
        load_release(cfg);
        admin_abort(d->admin);
        load_counted(d, 0);
        daemon_maybe_finish(d);
        return -EINVAL;
    }

    /* Start the new instances, scalers first so nothing publishes into the void, while what
     * they replace still runs. */
    const char *failed = NULL;
    for (int pass = 0; pass < 3 && !failed; pass++) {
        for (size_t i = 0; i < n && !failed; i++) {
            plan_item *it = &plan[i];
            if (it->action != PLAN_NEW || kind_order(cfg->components[i].kind) != pass)
                continue;
            int rc = inst_start(it->inst);
            if (rc != 0) {
                failed = it->inst->id;
                config_error_add(errs,
                                 cfg->components[i].file ? cfg->components[i].file : cfg->path,
                                 cfg->components[i].line, cfg->components[i].col,
                                 "%s '%s': start failed: %s",
                                 it->inst->type, it->inst->id, strerror(rc < 0 ? -rc : rc));
                it->started = 1; /* it has a source: retired (not stopped) like the others */
            } else {
                it->started = 1;
            }
        }
    }
    if (failed) {
        plan_roll_back(d, plan, n);
        d->loading = NULL;
        free(plan);
        dlog(d, SB_LOG_ERROR, "%s: refused: '%s' failed to start; %s", path, failed,
             d->ninsts ? "the running pipelines carry on unchanged" : "nothing runs");
        load_release(cfg);
        admin_abort(d->admin);
        load_counted(d, 0);
        daemon_maybe_finish(d);
        return -EIO;
    }

    /* Commit. Kept and reconfigured instances take their new host settings and storage. */
    size_t kept = 0, reconfigured = 0, added = 0, removed = 0;
    char *rebound = calloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        plan_item *it = &plan[i];
        if (it->action == PLAN_NEW)
            continue;
        sb_instance *inst = it->inst;
        if (it->action == PLAN_RECONF) {
            values_release(d, inst->values);
            inst->values = it->values;
            inst->fingerprint = fingerprint_hash(cfg->components[i].fingerprint);
            inst_log(inst, SB_LOG_INFO, "options changed: taken in place");
            reconfigured++;
        } else {
            kept++;
        }
        if (inst_apply_settings(inst, &cfg->components[i]) && rebound)
            rebound[i] = 1;
        inst->kept = 1;
    }
    /* Retire what is not kept (removed components, and the ones replaced by new instances
     * that are already running), then register the new ones under their ids. */
    for (size_t i = 0; i < n; i++) {
        if (plan[i].action == PLAN_NEW && plan[i].old) {
            plan[i].old->stop_reason = SB_STOP_REPLACED;
            carry_controls(plan[i].old, plan[i].inst);
        }
    }
    sb_instance **old_insts = d->insts;
    size_t old_n = d->ninsts;
    d->insts = NULL;
    d->ninsts = d->insts_cap = 0;
    for (size_t i = 0; i < old_n; i++) {
        if (old_insts[i]->kept) {
            old_insts[i]->kept = 0;
            continue;
        }
        if (!old_insts[i]->stop_reason)
            old_insts[i]->stop_reason = SB_STOP_REMOVED;
        inst_log(old_insts[i], SB_LOG_INFO, "%s: stopping",
                 old_insts[i]->stop_reason == SB_STOP_REPLACED ? "replaced" : "removed");
        inst_retire(d, old_insts[i], 0);
        removed++;
    }
    free(old_insts);
    for (int pass = 0; pass < 3; pass++) {
        for (size_t i = 0; i < n; i++) {
            if (kind_order(cfg->components[i].kind) != pass)
                continue;
            insts_push(d, plan[i].inst);
            if (plan[i].action == PLAN_NEW) {
                idmap_put(&d->by_id, plan[i].inst);
                added++;
            }
        }
    }
    edges_build(d, cfg);
    psubs_rebind(d);
    if (d->opts.admin) {
        d->observing = admin_commit(d->admin);
        /* Components kept from before the admin was on are observed from now on. */
        for (size_t i = 0; d->observing && i < d->ninsts; i++)
            inst_observe(d->insts[i]);
    }
    load_counted(d, 1);
    state_settings_commit(d, cfg);
    for (size_t i = 0; i < n; i++) {
        if (plan[i].inst->kind != SB_KIND_SCALER)
            continue;
        if (plan[i].action == PLAN_NEW && !plan[i].old && d->restoring)
            state_restore_scaler(d, plan[i].inst, &plan[i].carried, &plan[i].restored);
        if (plan[i].action == PLAN_NEW)
            send_initial_desired(plan[i].inst, plan[i].carried, plan[i].restored);
        else if (rebound && rebound[i])
            hold_to_bounds(plan[i].inst);
    }
    dlog(d, SB_LOG_INFO,
         "%s: %zu component(s) running (%zu kept, %zu reconfigured, %zu started, %zu stopped)",
         path, d->ninsts, kept, reconfigured, added, removed);
    free(rebound);
    free(plan);
    d->loading = NULL;
    load_release(cfg);
    daemon_maybe_finish(d);
    return 0;
}

int daemon_check(sb_daemon *d, const char *path, int next_n, FILE *out, config_errors *errs)
{
    return check_file(d, path, next_n, out, errs, NULL, NULL);
}

/* Is file (a path that exists) one of those cfg read? */
static int config_reads(const config *cfg, const char *file)
{
    char want[PATH_MAX];
    if (!realpath(file, want))
        return 0;
    for (size_t i = 0; i < cfg->nfiles; i++) {
        char have[PATH_MAX];
        if (realpath(cfg->files[i], have) && strcmp(have, want) == 0)
            return 1;
    }
    return 0;
}

static int check_file(sb_daemon *d, const char *path, int next_n, FILE *out,
                      config_errors *errs, const char *must_include, int *included)
{
    config *cfg = daemon_prepare(d, path, errs);
    if (!cfg)
        return -EINVAL;
    if (must_include && included)
        *included = config_reads(cfg, must_include);
    /* Create every component (never started) so errors only a plugin can see, such as a cron
     * schedule's, are reported too, at their file positions. */
    sb_instance **made = calloc(cfg->ncomponents ? cfg->ncomponents : 1, sizeof *made);
    if (!made) {
        config_free(cfg);
        return -ENOMEM;
    }
    d->loading = cfg;
    d->checking = 1;
    for (size_t i = 0; i < cfg->ncomponents; i++)
        made[i] = inst_create(d, &cfg->components[i], cfg->path, errs);
    d->checking = 0;
    d->loading = NULL;
    if (errs->count == 0 && next_n > 0) {
        int64_t now = bus_now_wall_ns() / 1000000000ll;
        int64_t *times = calloc((size_t)next_n, sizeof *times);
        int32_t *offs = calloc((size_t)next_n, sizeof *offs);
        for (size_t i = 0; times && offs && i < cfg->ncomponents; i++) {
            sb_instance *inst = made[i];
            if (!inst || inst->kind != SB_KIND_TRIGGER || !inst->desc ||
                !inst->desc->next_fire_times)
                continue;
            int got = inst->desc->next_fire_times(inst->state, now, times, offs, next_n);
            for (int k = 0; k < got; k++) {
                time_t local = (time_t)(times[k] + offs[k]);
                struct tm tm;
                gmtime_r(&local, &tm);
                int32_t o = offs[k] < 0 ? -offs[k] : offs[k];
                fprintf(out, "%s %04d-%02d-%02dT%02d:%02d:%02d%c%02d:%02d\n", inst->id,
                        tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                        tm.tm_sec, offs[k] < 0 ? '-' : '+', o / 3600, (o % 3600) / 60);
            }
        }
        free(times);
        free(offs);
    }
    for (size_t i = 0; i < cfg->ncomponents; i++)
        if (made[i])
            inst_destroy(made[i]);
    free(made);
    config_free(cfg);
    return errs->count ? -EINVAL : 0;
}

void daemon_describe_plugins(sb_daemon *d)
{
    daemon_load_builtin(d);
    plugins_load_all(d);
}

const void *daemon_loader(sb_daemon *d)
{
    return d->loader;
}

int daemon_inject(sb_daemon *d, const char *source_id, const sb_publish *pub)
{
    sb_instance *src = idmap_get(&d->by_id, source_id);
    if (!src || !src->source) {
        cJSON_Delete(pub->payload);
        return -ENOENT;
    }
    return inst_publish(src, pub);
}

void daemon_flush(sb_daemon *d)
{
    bus_flush(d->bus);
}

/* ---- public API ---------------------------------------------------------------------------- */

sb_daemon *daemon_new(uv_loop_t *loop, const daemon_options *opts)
{
    sb_daemon *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->loop = loop;
    d->loop_thread = uv_thread_self();
    if (opts)
        d->opts = *opts;
    d->opts.plugin_dirs = NULL;
    d->by_id.key_of = inst_key;
    d->indexes.key_of = index_set_key;
    log_init(&d->logger, d->opts.log_level_set ? d->opts.log_level : SB_LOG_INFO, stderr);
    d->logger.json = d->opts.log_json_set && d->opts.log_json;
    d->bus = bus_new(loop, BUS_DEFAULT_CAPACITY);
    if (d->bus)
        bus_set_observer(d->bus, obs_event);
    d->loader = loader_new();
    d->sup = supervisor_new(loop);
    if (opts && opts->nplugin_dirs) {
        d->extra_dirs = dup_strv((char *const *)opts->plugin_dirs, opts->nplugin_dirs);
        d->nextra_dirs = d->extra_dirs ? opts->nplugin_dirs : 0;
    }
    if (!d->bus || !d->loader || !d->sup || uv_idle_init(loop, &d->finish) != 0) {
        if (d->bus)
            bus_close(d->bus);
        if (d->sup)
            supervisor_free(d->sup);
        loader_free(d->loader);
        free_strv(d->extra_dirs, d->nextra_dirs);
        free(d);
        return NULL;
    }
    d->finish.data = d;
    d->finish_init = 1;
    supervisor_set_logger(d->sup, supervisor_log, d);
    return d;
}

static void stop_kind(sb_daemon *d, sb_kind kind)
{
    size_t w = 0;
    for (size_t i = 0; i < d->ninsts; i++) {
        sb_instance *inst = d->insts[i];
        if (inst->kind == kind) {
            inst->stop_reason = SB_STOP_SHUTDOWN;
            inst_retire(d, inst, 1);
        }
        else
            d->insts[w++] = inst;
    }
    d->ninsts = w;
}

/* After the flush that delivered their last events: detach retired instances from the bus. */
static void detach_retired(sb_daemon *d)
{
    for (sb_instance *inst = d->retiring; inst; inst = inst->next_retiring)
        inst_detach(inst);
}

void daemon_stop(sb_daemon *d, void (*done)(void *arg), void *arg)
{
    if (d->stopping) {
        return;
    }
    d->stopping = 1;
    d->stop_done = done;
    d->stop_arg = arg;
    dlog(d, SB_LOG_INFO, "stopping: triggers, then queued events, then connectors and scalers");
    /* Triggers first so nothing new arrives, then deliver what is queued, so the last readings
     * still reach the connectors and their decisions reach the scalers. */
    stop_kind(d, SB_KIND_TRIGGER);
    bus_flush(d->bus);
    /* The last write: every decision the last readings led to has been made and delivered.
     * The stop completes once it is on disk. */
    if (d->state_dir) {
        if (d->state_timer_init)
            uv_timer_stop(&d->state_timer);
        char *text = state_render(d);
        if (text)
            state_submit(d, text);
        else
            dlog(d, SB_LOG_WARN, "state: not written at the stop: out of memory");
    }
    stop_kind(d, SB_KIND_CONNECTOR);
    bus_flush(d->bus);
    edges_clear(d);
    stop_kind(d, SB_KIND_SCALER);
    detach_retired(d);
    daemon_maybe_finish(d);
}

/* ---- the admin's view and controls ----------------------------------------------------------- */

void daemon_foreach_view(sb_daemon *d, void (*cb)(void *arg, const daemon_view *v), void *arg)
{
    for (size_t i = 0; i < d->ninsts; i++) {
        sb_instance *inst = d->insts[i];
        const inst_obs *o = inst->obs;
        daemon_view v = {
            .id = inst->id,
            .type = inst->type,
            .kind = inst->kind,
            .running = inst->st == INST_RUNNING,
            .min = inst->min,
            .max = inst->max,
            .desired = inst->last_desired,
            .running_count = NAN,
            .override_desired = NAN,
            .last_value = NAN,
            .last_reason = "",
            .last_error = "",
            .last_action = "",
        };
        if (o) {
            if (inst->kind == SB_KIND_TRIGGER) {
                v.readings = o->count[0];
                v.errors = o->count[1];
            } else if (inst->kind == SB_KIND_CONNECTOR) {
                v.decisions_up = o->count[0];
                v.decisions_down = o->count[1];
                v.decisions_hold = o->count[2];
                v.last_reason = o->last_note ? o->last_note : "";
            } else {
                v.actions_done = o->count[0];
                v.actions_busy = o->count[1];
                v.actions_failed = o->count[2];
                v.last_action = o->last_note ? o->last_note : "";
                v.last_action_ns = o->last_note_ns;
            }
            v.running_count = o->running;
            if (inst->kind == SB_KIND_TRIGGER)
                v.read_latency = o->latency;
            else if (inst->kind == SB_KIND_SCALER)
                v.action_latency = o->latency;
            v.paused = o->paused;
            if (o->override_until && bus_now_mono_ns() < o->override_until) {
                v.override_desired = o->override_value;
                v.override_until_ns = o->override_until_wall;
            }
            v.last_value = o->last_value;
            v.last_value_ns = o->last_value_ns;
            v.last_error = o->last_error ? o->last_error : "";
            v.last_error_ns = o->last_error_ns;
            v.last_desired_ns = o->last_desired_ns;
        }
        cb(arg, &v);
    }
}

const history *daemon_scaler_history(sb_daemon *d, const char *id, int *found)
{
    sb_instance *inst = idmap_get(&d->by_id, id);
    *found = inst && inst->kind == SB_KIND_SCALER && inst->st == INST_RUNNING;
    return *found && inst->obs ? &inst->obs->history : NULL;
}

void daemon_foreach_edge(sb_daemon *d, void (*cb)(void *arg, const char *from, const char *to),
                         void *arg)
{
    for (size_t i = 0; i < d->nedges; i++)
        if (d->edges[i].pipeline)
            cb(arg, d->edges[i].from_inst->id, d->edges[i].target->id);
}

void daemon_get_admin_stats(const sb_daemon *d, daemon_admin_stats *out)
{
    memset(out, 0, sizeof *out);
    out->components = d->ninsts;
    for (size_t i = 0; i < d->ninsts; i++)
        out->started += d->insts[i]->st == INST_RUNNING;
    out->ready = d->loaded_once && !d->stopping && out->started == out->components;
    out->reloads_ok = d->reloads_ok;
    out->reloads_refused = d->reloads_refused;
}

static sb_instance *running_scaler(sb_daemon *d, const char *id)
{
    sb_instance *s = idmap_get(&d->by_id, id);
    return s && s->kind == SB_KIND_SCALER && s->st == INST_RUNNING ? s : NULL;
}

/* After a resume or the end of a hold: the newest connector decision, if it differs. */
static void apply_newest_decision(sb_instance *scaler, const char *why)
{
    inst_obs *o = scaler->obs;
    if (!o || o->paused || (o->override_until && bus_now_mono_ns() < o->override_until) ||
        isnan(o->policy_value))
        return;
    sb_event ev = {.size = sizeof(sb_event),
                   .source_id = why,
                   .topic = SB_TOPIC_DESIRED,
                   .mono_ns = bus_now_mono_ns(),
                   .wall_ns = bus_now_wall_ns(),
                   .value = o->policy_value};
    deliver_desired(scaler, &ev);
}

int daemon_scaler_pause(sb_daemon *d, const char *id, int paused)
{
    sb_instance *s = running_scaler(d, id);
    if (!s)
        return -ENOENT;
    inst_obs *o = obs_get(s);
    if (!o)
        return -ENOMEM;
    if (o->paused == !!paused)
        return 0;
    o->paused = !!paused;
    state_touch(d);
    inst_log(s, SB_LOG_INFO, "%s through the admin API%s", paused ? "paused" : "resumed",
             paused ? ": decisions are logged, not applied" : "");
    if (!paused)
        apply_newest_decision(s, "the newest decision (resumed)");
    return 0;
}

static void hold_ended(void *arg)
{
    sb_instance *s = arg;
    inst_obs *o = s->obs;
    host_timer_free(o->hold_timer);
    o->hold_timer = NULL;
    o->override_until = 0;
    o->override_value = NAN;
    state_touch(s->d);
    inst_log(s, SB_LOG_INFO, "override hold ended: policies decide again");
    apply_newest_decision(s, "the newest decision (hold ended)");
}

int daemon_scaler_override(sb_daemon *d, const char *id, double desired, uint64_t hold_ms,
                           double *applied)
{
    sb_instance *s = running_scaler(d, id);
    if (!s)
        return -ENOENT;
    inst_obs *o = obs_get(s);
    if (!o)
        return -ENOMEM;
    if (o->hold_timer) {
        host_timer_free(o->hold_timer);
        o->hold_timer = NULL;
    }
    o->override_until = 0;
    if (hold_ms > 0) {
        o->hold_timer = host_timer_new(s, hold_ms, 0, hold_ended, s);
        if (!o->hold_timer)
            return -ENOMEM;
        o->override_until = bus_now_mono_ns() + hold_ms * 1000000ull;
        o->override_until_wall = bus_now_wall_ns() + (int64_t)hold_ms * 1000000;
    }
    char reason[96];
    snprintf(reason, sizeof reason, "admin override %.0f, held %llums", ceil(desired - 1e-9) + 0.0,
             (unsigned long long)hold_ms);
    sb_label label = {"reason", reason};
    sb_event ev = {.size = sizeof(sb_event),
                   .labels = &label,
                   .nlabels = 1,
                   .source_id = admin_source,
                   .topic = SB_TOPIC_DESIRED,
                   .mono_ns = bus_now_mono_ns(),
                   .wall_ns = bus_now_wall_ns(),
                   .value = desired};
    deliver_desired(s, &ev);
    o->override_value = s->last_desired;
    if (applied)
        *applied = s->last_desired;
    return 0;
}

int daemon_push_reading(sb_daemon *d, const char *trigger_id, double value,
                        const sb_label *labels, size_t nlabels)
{
    sb_instance *t = idmap_get(&d->by_id, trigger_id);
    if (!t || t->st != INST_RUNNING || !t->source)
        return -ENOENT;
    if (t->kind != SB_KIND_TRIGGER || strcmp(t->type, "push") != 0)
        return -EPERM;
    if (nlabels > SB_MAX_LABELS)
        return -E2BIG;
    sb_publish pub = {SB_PUBLISH_INIT,
                      .topic = SB_TOPIC_READING,
                      .labels = labels,
                      .nlabels = nlabels,
                      .value = value};
    return bus_publish(d->bus, t->source, &pub);
}

static void finish_closed(uv_handle_t *h)
{
    (void)h;
}

static void count_closing(uv_handle_t *h, void *arg)
{
    if (uv_is_closing(h))
        ++*(size_t *)arg;
}

/* Run the loop until every handle being closed has had its close callback: those callbacks may
 * live in a plugin, which must not be unmapped before they ran. */
static void run_until_closed(uv_loop_t *loop)
{
    for (int i = 0; i < 10000; i++) {
        size_t closing = 0;
        uv_walk(loop, count_closing, &closing);
        if (closing == 0)
            return;
        uv_run(loop, UV_RUN_NOWAIT);
    }
}

void daemon_free(sb_daemon *d)
{
    if (!d)
        return;
    /* The admin first: no request may reach a daemon being freed. */
    admin_free(d->admin);
    d->admin = NULL;
    /* Anything still running or stopping is destroyed now (a caller that skipped daemon_stop). */
    for (size_t i = 0; i < d->ninsts; i++) {
        d->insts[i]->st = INST_STOPPED;
        inst_destroy(d->insts[i]);
    }
    while (d->retiring) {
        sb_instance *inst = d->retiring;
        d->retiring = inst->next_retiring;
        inst_destroy(inst);
    }
    free(d->insts);
    free(d->edges);
    free(d->psubs);    /* every one was dropped with its owner */
    free(d->vbuckets); /* and every values block with its last holder */
    idmap_free(&d->indexes);
    idmap_free(&d->by_id);
    listeners_free(d->listeners);
    /* Children left by a caller that skipped daemon_stop are killed; the watchdog exits. */
    supervisor_free(d->sup);
    /* Every owner is gone, so no request is left; curl closes its cached connections. */
    d->closing_http = 1;
    http_client_close(d->http);
    d->http = NULL;
    bus_close(d->bus);
    /* A write still running (a caller that skipped daemon_stop) finishes first: its request
     * points into d. */
    d->finish_init = 0;
    for (int i = 0; d->state_busy && i < 100000; i++)
        uv_run(d->loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&d->finish, finish_closed);
    free(d->state_pending);
    free(d->state_dir);
    if (d->state_timer_init)
        uv_close((uv_handle_t *)&d->state_timer, finish_closed);
    if (d->reload_timer_init)
        uv_close((uv_handle_t *)&d->reload_timer, finish_closed);
    if (d->replay_timer_init)
        uv_close((uv_handle_t *)&d->replay_timer, finish_closed);
    free(d->replays);
    free(d->path);
    /* The idle handle is embedded: free only after libuv is done with it. */
    d->finish.data = NULL;
    /* Plugins' close callbacks (a scaler's signal or poll handle) run before their code is
     * unmapped: a daemon whose start failed used to exit with SIGSEGV here. */
    run_until_closed(d->loop);
    loader_free(d->loader);
    free_strv(d->extra_dirs, d->nextra_dirs);
    for (size_t i = 0; i < d->nplugin_dirs; i++)
        free(d->plugin_dirs[i].path);
    free(d->plugin_dirs);
    plugin_refusals_clear(d);
    free(d);
}

int daemon_send(sb_daemon *d, const char *target_id, const char *topic, double value)
{
    sb_instance *t = idmap_get(&d->by_id, target_id);
    if (!t || t->st != INST_RUNNING)
        return -ENOENT;
    sb_event ev = {.size = sizeof(sb_event),
                   .source_id = "scalebus",
                   .topic = topic,
                   .mono_ns = bus_now_mono_ns(),
                   .wall_ns = bus_now_wall_ns(),
                   .value = value};
    if (t->kind == SB_KIND_SCALER)
        deliver_desired(t, &ev);
    else if (t->desc && t->desc->on_event)
        t->desc->on_event(t->state, &ev);
    return 0;
}

int daemon_subscribe(sb_daemon *d, const char *source_id, const char *topic, sb_event_cb cb,
                     void *arg)
{
    sb_instance *src = idmap_get(&d->by_id, source_id);
    if (!src)
        return -ENOENT;
    int64_t id = bus_subscribe(d->bus, src->source, topic, cb, arg);
    return id < 0 ? (int)id : 0;
}

void daemon_get_stats(const sb_daemon *d, daemon_stats *out)
{
    bus_stats bs;
    bus_get_stats(d->bus, &bs);
    out->published = bs.published;
    out->delivered = bs.delivered;
    out->coalesced = bs.coalesced;
    out->dropped = bs.dropped;
    out->instances = d->ninsts;
}
