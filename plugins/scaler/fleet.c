/*
 * fleet.c - the scaler contract (scalebus/scaler.h): adopt what runs, act one call at a time
 * toward the newest desired count, back off on busy and failed, reconcile drift, scale down
 * newest first, publish the instance list, honour --dry-run and on_stop.
 *
 * The fleet is always in one of three states: idle, listing (list() in flight) or acting (a
 * start, stop or set_count in flight). Every action is followed by a list, so the next step is
 * always taken from what the engine says runs, never from what we believe we did.
 *
 * An engine may answer inside the call (a local one: process). The step that follows an answer
 * is then run after the call returns, from one loop, so a scale-up of many members never
 * recurses through list -> step -> start -> list.
 *
 * Reconcile ticks are shared: the running fleets of one host and loop with the same
 * reconcile_every are one group on one repeating host timer (a file of 10,000 scalers has one
 * timer, not 10,000), owned by one member's instance and handed to another when that member
 * leaves. A fleet's first reconcile may so come sooner than reconcile_every after its start,
 * never later.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "scalebus/poll.h"
#include "scalebus/scaler.h"

#define FLEET_BACKOFF_BASE_MS 500
#define FLEET_BACKOFF_MAX_MS 30000
#define FLEET_STOP_GIVE_UP 3 /* failures in a row before on_stop: stop gives up */
#define FLEET_DRAIN_FROM_MAX 8

typedef enum fleet_phase { PHASE_IDLE, PHASE_LISTING, PHASE_ACTING } fleet_phase;
typedef enum list_why { LIST_ADOPT, LIST_AFTER_ACTION, LIST_RECONCILE } list_why;
typedef enum fleet_next { NEXT_NONE, NEXT_LIST, NEXT_STEP } fleet_next;

typedef struct reconcile_group reconcile_group;

typedef struct member {
    char *id;
    char *address;
    sb_member_state state;
    int64_t started_at;
    size_t order; /* position in the engine's list: later is newer when started_at ties */
    int restarting;
    cJSON *detail;
} member;

/* What a fleet needs only once it acts, fails or drains: made then, so an idle fleet (10,000
 * scalers in one daemon, most at their floor) pays one pointer for it. The texts are made when
 * needed and NULL otherwise. */
typedef struct fleet_work {
    uint64_t acting_since_ns; /* CLOCK_MONOTONIC when the call in flight began (SB_TOPIC_ACTION) */
    char *acting_id;          /* the member of the call in flight (stop), NULL: none */
    sb_timer *retry, *drain;
    char *draining; /* the member waiting out drain_timeout, NULL when none */
    sb_backoff backoff;
    uint64_t failures, in_a_row;
    char *last_problem; /* the last failure or busy message logged (logged once per change) */
    char *dry_logged;   /* the last call --dry-run logged */
} fleet_work;

struct sb_fleet {
    sb_instance *inst;
    const sb_host *host;
    const sb_fleet_ops *ops;
    void *self;
    uint64_t reconcile_ms, drain_ms;

    member *members;
    size_t nmembers;
    int64_t engine_count; /* the engine's own desired count (sb_fleet_listed_count), -1: none */
    int64_t adopted;      /* what ran at adoption: the count to hold until a policy decides */
    int64_t *subs;        /* drain_from subscriptions (NULL without drain_from) */
    size_t nsubs;

    int64_t desired; /* -1: no policy has decided yet */

    /* In its reconcile group from start until it stops (clock_join / clock_leave). */
    reconcile_group *group;
    sb_fleet *group_prev, *group_next;
    fleet_work *w; /* NULL until the fleet first acts, fails or drains (work()) */
    char *published;    /* the last instance list published, to publish only changes (or
                           empty_list: an idle fleet keeps no copy of "[]") */

    int calling;          /* inside an engine call: what follows an answer waits for its return */
    fleet_next next;      /* the step after the last answer, not yet taken */
    fleet_phase phase;
    list_why why;
    sb_fleet_call acting; /* the call in flight when PHASE_ACTING */
    /* Flags, packed (one fleet per scaler, and a file may have 10,000). */
    unsigned char on_stop_stop;
    unsigned char listed;          /* a list has come back at least once */
    unsigned char relist;          /* the engine changed while a list was in flight: list again */
    unsigned char in_loop;         /* run_next is running the steps */
    unsigned char problem_is_list; /* last_problem came from list(): a good list ends it */
    unsigned char stopping;        /* on_stop: stop in progress */
    unsigned char started, stopped_reported;
};

/* ---- small helpers ------------------------------------------------------------------------- */

#define FLEET_TEXT_MAX 512 /* a problem or a dry-run line is cut here, as it always was */

/* *dst becomes a copy of text. 0, or -1 when out of memory (*dst is then NULL: the caller's
 * "nothing remembered"). */
static int text_set(char **dst, const char *text)
{
    free(*dst);
    *dst = strdup(text);
    return *dst ? 0 : -1;
}

static void text_clear(char **dst)
{
    free(*dst);
    *dst = NULL;
}

static int text_is(const char *held, const char *text)
{
    return held && strcmp(held, text) == 0;
}

/* The fleet's working part, made on first need. NULL when out of memory. */
static fleet_work *work(sb_fleet *f)
{
    if (!f->w && (f->w = calloc(1, sizeof *f->w)))
        sb_backoff_init(&f->w->backoff, FLEET_BACKOFF_BASE_MS, FLEET_BACKOFF_MAX_MS);
    return f->w;
}

static const char *draining_of(const sb_fleet *f)
{
    return f->w ? f->w->draining : NULL;
}

/* A retry or a drain is pending: the fleet takes no step of its own until it fires. */
static int waiting(const sb_fleet *f)
{
    return f->w && (f->w->retry || f->w->drain);
}

static void members_clear(sb_fleet *f)
{
    for (size_t i = 0; i < f->nmembers; i++) {
        free(f->members[i].id);
        free(f->members[i].address);
        cJSON_Delete(f->members[i].detail);
    }
    free(f->members);
    f->members = NULL;
    f->nmembers = 0;
}

static int is_active(const member *m)
{
    return m->state == SB_MEMBER_STARTING || m->state == SB_MEMBER_READY ||
           (m->state == SB_MEMBER_FAILED && m->restarting);
}

size_t sb_fleet_active(const sb_fleet *f)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nmembers; i++)
        n += is_active(&f->members[i]) && !text_is(draining_of(f), f->members[i].id);
    return n;
}

int64_t sb_fleet_desired(const sb_fleet *f)
{
    return f->desired;
}

uint64_t sb_fleet_failures(const sb_fleet *f)
{
    return f->w ? f->w->failures : 0;
}

static void timer_drop(sb_fleet *f, sb_timer **t)
{
    if (*t) {
        f->host->timer_free(*t);
        *t = NULL;
    }
}

/* The retry and drain timers, when there are. */
static void drop_timers(sb_fleet *f)
{
    if (f->w) {
        timer_drop(f, &f->w->retry);
        timer_drop(f, &f->w->drain);
    }
}

static const char *state_name(sb_member_state s)
{
    switch (s) {
    case SB_MEMBER_STARTING:
        return "starting";
    case SB_MEMBER_READY:
        return "ready";
    case SB_MEMBER_STOPPING:
        return "stopping";
    case SB_MEMBER_FAILED:
        return "failed";
    }
    return "unknown";
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void one_line(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

/* What runs now: the engine's own count where it keeps one, else the active members. */
static int64_t fleet_current(const sb_fleet *f)
{
    if (f->ops->set_count && f->engine_count >= 0)
        return f->engine_count;
    return (int64_t)sb_fleet_active(f);
}

/* The count to move toward: the policy's, else what ran at adoption (so drift is repaired even
 * before a policy decides); held to the scaler's bounds. */
static int64_t fleet_target(const sb_fleet *f)
{
    if (f->stopping)
        return 0;
    int64_t lo = 0, hi = INT64_MAX;
    f->host->bounds(f->inst, &lo, &hi);
    int64_t t = f->desired >= 0 ? f->desired : f->adopted >= 0 ? f->adopted : fleet_current(f);
    if (t < lo)
        t = lo;
    if (hi >= 0 && t > hi)
        t = hi;
    return t;
}

/* ---- the instance list --------------------------------------------------------------------- */

static char empty_list[] = "[]"; /* never written: the shared text of an empty list */

static void published_drop(sb_fleet *f)
{
    if (f->published != empty_list)
        free(f->published);
    f->published = NULL;
}

static void publish_instances(sb_fleet *f)
{
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return;
    for (size_t i = 0; i < f->nmembers; i++) {
        const member *m = &f->members[i];
        cJSON *o = cJSON_CreateObject();
        if (!o)
            break;
        cJSON_AddStringToObject(o, "id", m->id);
        if (m->address)
            cJSON_AddStringToObject(o, "address", m->address);
        sb_member_state st = text_is(draining_of(f), m->id) ? SB_MEMBER_STOPPING : m->state;
        cJSON_AddStringToObject(o, "state", state_name(st));
        if (m->started_at)
            cJSON_AddNumberToObject(o, "started_at", (double)m->started_at);
        for (const cJSON *d = m->detail ? m->detail->child : NULL; d; d = d->next) {
            if (!d->string || cJSON_GetObjectItemCaseSensitive(o, d->string))
                continue; /* the contract's own fields win */
            cJSON *copy = cJSON_Duplicate(d, 1);
            if (copy)
                cJSON_AddItemToObject(o, d->string, copy);
        }
        cJSON_AddItemToArray(arr, o);
    }
    char *text = cJSON_PrintUnformatted(arr);
    if (text && f->published && strcmp(text, f->published) == 0) {
        free(text);
        cJSON_Delete(arr);
        return; /* on every change, not on every list */
    }
    published_drop(f);
    if (text && strcmp(text, empty_list) == 0) {
        free(text);
        text = empty_list; /* never freed (published_drop) */
    }
    f->published = text;
    sb_publish ev = {SB_PUBLISH_INIT,
                     .topic = SB_TOPIC_INSTANCES,
                     .value = (double)sb_fleet_active(f),
                     .payload = arr};
    f->host->publish(f->inst, &ev);
}

/* ---- steps --------------------------------------------------------------------------------- */

static void fleet_list(sb_fleet *f, list_why why);
static void fleet_step(sb_fleet *f);
static void reconcile_fire(sb_fleet *f);
static void clock_leave(sb_fleet *f);

/* ---- the shared reconcile clock -------------------------------------------------------------- */

/* The running fleets of one host, loop and period, on one timer. Each group is used on its
 * loop's thread only; the list of groups is shared by every loop of the process (a lock). */
struct reconcile_group {
    const sb_host *host;
    void *loop; /* host->loop(inst), NULL where the host has none */
    uint64_t period_ms;
    sb_fleet *members; /* newest first */
    sb_fleet *owner;   /* whose instance holds the timer */
    sb_timer *timer;
    uint64_t last_tick_ns; /* when the timer was armed or last fired (monotonic) */
    sb_fleet *cursor;      /* during a tick: the next member to visit */
    int ticking, empty_after_tick;
    reconcile_group *next;
};

static pthread_mutex_t groups_lock = PTHREAD_MUTEX_INITIALIZER;
static reconcile_group *groups;

static void *fleet_loop(const sb_fleet *f)
{
    return SB_HOST_HAS(f->host, loop) && f->host->loop ? f->host->loop(f->inst) : NULL;
}

static void group_unlink(reconcile_group *g)
{
    pthread_mutex_lock(&groups_lock);
    for (reconcile_group **p = &groups; *p; p = &(*p)->next)
        if (*p == g) {
            *p = g->next;
            break;
        }
    pthread_mutex_unlock(&groups_lock);
    free(g);
}

static void group_tick(void *arg)
{
    reconcile_group *g = arg;
    g->last_tick_ns = mono_ns();
    g->ticking = 1;
    /* A member may leave (stop, or be freed) while another is visited: the cursor moves on. */
    for (sb_fleet *f = g->members; f; f = g->cursor) {
        g->cursor = f->group_next;
        reconcile_fire(f);
    }
    g->cursor = NULL;
    g->ticking = 0;
    if (g->empty_after_tick)
        group_unlink(g);
}

/* The timer on the owner's instance, due when the group's period since its last tick is over. */
static int group_arm(reconcile_group *g)
{
    if (g->timer || !g->owner)
        return g->timer ? 0 : -ENOMEM;
    uint64_t since_ms = (mono_ns() - g->last_tick_ns) / 1000000u;
    uint64_t due_ms = since_ms < g->period_ms ? g->period_ms - since_ms : 1;
    g->timer = g->host->timer_new(g->owner->inst, due_ms, g->period_ms, group_tick, g);
    return g->timer ? 0 : -ENOMEM;
}

static int clock_join(sb_fleet *f)
{
    void *loop = fleet_loop(f);
    pthread_mutex_lock(&groups_lock);
    reconcile_group *g = groups;
    while (g && !(g->host == f->host && g->loop == loop && g->period_ms == f->reconcile_ms &&
                  !g->empty_after_tick))
        g = g->next;
    if (!g && (g = calloc(1, sizeof *g))) {
        g->host = f->host;
        g->loop = loop;
        g->period_ms = f->reconcile_ms;
        g->last_tick_ns = mono_ns();
        g->next = groups;
        groups = g;
    }
    pthread_mutex_unlock(&groups_lock);
    if (!g)
        return -ENOMEM;
    f->group = g;
    f->group_prev = NULL;
    f->group_next = g->members;
    if (g->members)
        g->members->group_prev = f;
    g->members = f;
    if (!g->owner)
        g->owner = f;
    if (group_arm(g) != 0) {
        clock_leave(f);
        return -ENOMEM;
    }
    return 0;
}

static void clock_leave(sb_fleet *f)
{
    reconcile_group *g = f->group;
    if (!g)
        return;
    if (g->cursor == f)
        g->cursor = f->group_next;
    if (f->group_prev)
        f->group_prev->group_next = f->group_next;
    else
        g->members = f->group_next;
    if (f->group_next)
        f->group_next->group_prev = f->group_prev;
    f->group = NULL;
    f->group_prev = f->group_next = NULL;
    if (g->owner == f) {
        /* The timer is this member's instance's: another member's instance takes it over. */
        if (g->timer)
            f->host->timer_free(g->timer);
        g->timer = NULL;
        g->owner = g->members;
        if (g->owner && group_arm(g) != 0)
            g->owner->host->log(g->owner->inst, SB_LOG_ERROR,
                                "out of memory: no reconcile timer until another scaler starts");
    }
    if (g->members)
        return;
    if (g->ticking)
        g->empty_after_tick = 1; /* group_tick is still walking it */
    else
        group_unlink(g);
}

static void finish_stop(sb_fleet *f)
{
    if (f->stopped_reported)
        return;
    f->stopped_reported = 1;
    clock_leave(f);
    drop_timers(f);
    if (f->ops->stopped)
        f->ops->stopped(f->self);
    else
        f->host->stopped(f->inst);
}

static void retry_fire(void *arg)
{
    sb_fleet *f = arg;
    timer_drop(f, &f->w->retry); /* only armed with its working part */
    fleet_list(f, LIST_AFTER_ACTION);
}

static void retry_later(sb_fleet *f, uint64_t delay_ms)
{
    fleet_work *w = work(f);
    if (!w)
        return; /* out of memory: the next reconcile lists again */
    timer_drop(f, &w->retry);
    w->retry = f->host->timer_new(f->inst, delay_ms, 0, retry_fire, f);
}

static void reconcile_fire(sb_fleet *f)
{
    if (f->phase == PHASE_IDLE && !waiting(f))
        fleet_list(f, LIST_RECONCILE);
}

/* Take the steps that answers left, one after another (never nested). */
static void run_next(sb_fleet *f)
{
    if (f->in_loop || f->calling)
        return;
    f->in_loop = 1;
    while (f->next != NEXT_NONE && !f->stopped_reported) {
        fleet_next n = f->next;
        f->next = NEXT_NONE;
        if (n == NEXT_LIST)
            fleet_list(f, LIST_AFTER_ACTION);
        else
            fleet_step(f);
    }
    f->in_loop = 0;
}

static void continue_with(sb_fleet *f, fleet_next n)
{
    f->next = n;
    run_next(f);
}

static void fleet_list(sb_fleet *f, list_why why)
{
    if (f->phase != PHASE_IDLE)
        return;
    f->phase = PHASE_LISTING;
    f->why = why;
    f->calling++;
    f->ops->list(f->self, f);
    f->calling--;
    run_next(f);
}

/* Log a problem when it is new (a change of state), at debug when it repeats. */
static void log_problem(sb_fleet *f, sb_log_level level, const char *text)
{
    char cut[FLEET_TEXT_MAX];
    snprintf(cut, sizeof cut, "%s", text); /* compared as it is kept */
    fleet_work *w = work(f);
    int changed = !w || !text_is(w->last_problem, cut);
    if (changed && w)
        text_set(&w->last_problem, cut); /* out of memory: the next one logs at level again */
    f->host->log(f->inst, changed ? level : SB_LOG_DEBUG, "%s", text);
}

static void act(sb_fleet *f, sb_fleet_call call, const char *id, int64_t n)
{
    char what[600] = "";
    if (f->ops->describe)
        f->ops->describe(f->self, call, id, n, what, sizeof what);
    else
        snprintf(what, sizeof what, "%s %s", call == SB_CALL_START  ? "start one"
                                             : call == SB_CALL_STOP ? "stop"
                                                                    : "set count",
                 id ? id : "");
    one_line(what);
    if (f->host->dry_run(f->inst)) {
        /* Nothing changes, so the same step comes again: log each call once. */
        char line[FLEET_TEXT_MAX];
        snprintf(line, sizeof line, "would %.480s (toward %lld)", what, (long long)n);
        fleet_work *w = work(f);
        if (!w || !text_is(w->dry_logged, line)) {
            f->host->log(f->inst, SB_LOG_INFO, "%s", line);
            if (w)
                text_set(&w->dry_logged, line); /* out of memory: logged again next time */
        }
        if (f->stopping)
            finish_stop(f);
        return;
    }
    fleet_work *w = work(f);
    if (!w) {
        f->host->log(f->inst, SB_LOG_ERROR, "out of memory: '%s' waits for the next reconcile",
                     what);
        return;
    }
    text_clear(&w->acting_id);
    if (id && !(w->acting_id = strdup(id))) {
        log_problem(f, SB_LOG_WARN, "out of memory");
        retry_later(f, sb_backoff_next(&w->backoff, 0));
        return;
    }
    /* Each call at info; a retry of a failing one at debug (the failure is logged once). */
    f->host->log(f->inst, w->in_a_row ? SB_LOG_DEBUG : SB_LOG_INFO, "%s", what);
    f->phase = PHASE_ACTING;
    f->acting = call;
    w->acting_since_ns = mono_ns();
    f->calling++;
    if (call == SB_CALL_START)
        f->ops->start_one(f->self, f);
    else if (call == SB_CALL_STOP)
        f->ops->stop_one(f->self, f, w->acting_id);
    else
        f->ops->set_count(f->self, f, n);
    f->calling--;
    run_next(f);
}

static void drain_fire_now(sb_fleet *f)
{
    /* act() copies the id before the call, whatever the answer does to the draining one. */
    const char *draining = draining_of(f);
    if (f->phase == PHASE_IDLE && draining)
        act(f, SB_CALL_STOP, draining, fleet_target(f));
}

static void drain_fire(void *arg)
{
    sb_fleet *f = arg;
    timer_drop(f, &f->w->drain); /* only armed with its working part */
    drain_fire_now(f);
}

/* Which member goes first when scaling down: nothing is lost by stopping one that is down and
 * being restarted, little by one still starting; then the newest ready one (latest started_at,
 * then latest in the engine's list), as Waiter prefers unhealthy, then young, instances. */
static int victim_rank(const member *m)
{
    return m->state == SB_MEMBER_FAILED ? 2 : m->state == SB_MEMBER_STARTING ? 1 : 0;
}

static const member *pick_victim(const sb_fleet *f)
{
    const member *best = NULL;
    for (size_t i = 0; i < f->nmembers; i++) {
        const member *m = &f->members[i];
        if (!is_active(m))
            continue;
        if (!best || victim_rank(m) > victim_rank(best) ||
            (victim_rank(m) == victim_rank(best) &&
             (m->started_at > best->started_at ||
              (m->started_at == best->started_at && m->order > best->order))))
            best = m;
    }
    return best;
}

static void fleet_step(sb_fleet *f)
{
    if (f->phase != PHASE_IDLE || waiting(f) || !f->listed || f->stopped_reported)
        return;
    /* A failed member (a dead container, a failed unit) goes first: removed, then replaced. */
    if (f->ops->stop_one) {
        for (size_t i = 0; i < f->nmembers; i++)
            if (f->members[i].state == SB_MEMBER_FAILED && !f->members[i].restarting) {
                act(f, SB_CALL_STOP, f->members[i].id, fleet_target(f));
                return;
            }
    }
    int64_t target = fleet_target(f);
    int64_t active = (int64_t)sb_fleet_active(f);
    if (f->ops->set_count) {
        if (fleet_current(f) != target)
            act(f, SB_CALL_SET_COUNT, NULL, target);
        else if (f->stopping)
            finish_stop(f);
        return;
    }
    if (active < target) {
        act(f, SB_CALL_START, NULL, target);
    } else if (active > target) {
        const member *m = pick_victim(f);
        if (!m)
            return;
        /* Out of memory for its id: stopped without the drain. */
        fleet_work *w = NULL;
        if (f->drain_ms > 0 && !f->host->dry_run(f->inst) && !f->stopping && (w = work(f)) &&
            text_set(&w->draining, m->id) == 0) {
            /* Listed as stopping first, so a router sends it nothing new. */
            publish_instances(f);
            w->drain = f->host->timer_new(f->inst, f->drain_ms, 0, drain_fire, f);
            return;
        }
        act(f, SB_CALL_STOP, m->id, target);
    } else if (f->stopping) {
        finish_stop(f);
    }
}

/* ---- answers ------------------------------------------------------------------------------- */

static int has_id(const sb_member *ms, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (ms[i].id && strcmp(ms[i].id, id) == 0)
            return 1;
    return 0;
}

void sb_fleet_listed(sb_fleet *f, const sb_member *ms, size_t n)
{
    sb_fleet_listed_count(f, ms, n, -1);
}

void sb_fleet_listed_count(sb_fleet *f, const sb_member *ms, size_t n, int64_t count)
{
    if (f->phase != PHASE_LISTING)
        return;
    f->phase = PHASE_IDLE;
    if (f->why == LIST_RECONCILE && f->engine_count >= 0 && count >= 0 && count != f->engine_count)
        f->host->log(f->inst, SB_LOG_WARN,
                     "changed outside scalebus: the count went from %lld to %lld; reconciling",
                     (long long)f->engine_count, (long long)count);
    f->engine_count = count;
    /* Drift: on a reconcile, members that came or went (or failed) without us are logged. An
     * engine that keeps a count starts and stops members on its own after we set it: its drift
     * is the count, logged above; members coming and going are only worth a debug line. */
    sb_log_level drift = f->ops->set_count ? SB_LOG_DEBUG : SB_LOG_WARN;
    if (f->why == LIST_RECONCILE) {
        for (size_t i = 0; i < f->nmembers; i++)
            if (!has_id(ms, n, f->members[i].id))
                f->host->log(f->inst, drift, "changed outside scalebus: %s is gone; reconciling",
                             f->members[i].id);
        for (size_t i = 0; i < n; i++) {
            int known = 0;
            for (size_t k = 0; k < f->nmembers; k++)
                if (strcmp(f->members[k].id, ms[i].id) == 0) {
                    known = 1;
                    if (ms[i].state == SB_MEMBER_FAILED && !ms[i].restarting &&
                        f->members[k].state != SB_MEMBER_FAILED)
                        f->host->log(f->inst, drift, "changed outside scalebus: %s failed; replacing it",
                                     ms[i].id);
                }
            if (!known)
                f->host->log(f->inst, drift, "changed outside scalebus: %s appeared; %s",
                             ms[i].id, "adopted (it carries this scaler's mark)");
        }
    }
    member *copy = n ? calloc(n, sizeof *copy) : NULL;
    size_t kept = 0;
    for (size_t i = 0; i < n && copy; i++) {
        if (!ms[i].id)
            continue;
        copy[kept].id = strdup(ms[i].id);
        copy[kept].address = ms[i].address ? strdup(ms[i].address) : NULL;
        copy[kept].state = ms[i].state;
        copy[kept].started_at = ms[i].started_at;
        copy[kept].order = i;
        copy[kept].restarting = ms[i].state == SB_MEMBER_FAILED && ms[i].restarting;
        copy[kept].detail = ms[i].detail ? cJSON_Duplicate(ms[i].detail, 1) : NULL;
        if (copy[kept].id)
            kept++;
    }
    members_clear(f);
    f->members = copy;
    f->nmembers = kept;
    /* The member being drained may have gone on its own. */
    if (draining_of(f) && !has_id(ms, n, f->w->draining)) {
        text_clear(&f->w->draining);
        timer_drop(f, &f->w->drain);
    }
    if (!f->listed) {
        f->listed = 1;
        f->adopted = fleet_current(f);
        f->host->log(f->inst, SB_LOG_INFO, "adopted %zu running instance(s)%s", sb_fleet_active(f),
                     f->desired < 0 ? "; nothing changes until a policy decides (or to reach min)"
                                    : "");
    }
    fleet_work *w = f->w;
    if (w && w->last_problem && f->problem_is_list) {
        if (w->in_a_row)
            f->host->log(f->inst, SB_LOG_INFO, "the engine answers again after %llu failure(s)",
                         (unsigned long long)w->in_a_row);
        else
            f->host->log(f->inst, SB_LOG_INFO, "the engine is no longer busy");
        sb_backoff_reset(&w->backoff); /* the next failure starts from the short delay again */
        w->in_a_row = 0;
        text_clear(&w->last_problem);
        f->problem_is_list = 0;
    }
    publish_instances(f);
    if (f->relist) {
        f->relist = 0;
        continue_with(f, NEXT_LIST);
        return;
    }
    continue_with(f, NEXT_STEP);
}

void sb_fleet_changed(sb_fleet *f)
{
    if (!f->started || f->stopped_reported)
        return;
    if (f->phase == PHASE_LISTING)
        f->relist = 1;
    else if (f->phase == PHASE_IDLE)
        fleet_list(f, LIST_AFTER_ACTION);
}

static void fail_common(sb_fleet *f, sb_action_result why, const char *what, const char *msg)
{
    char text[700];
    snprintf(text, sizeof text, "%s %s: %s", what, why == SB_ACTION_BUSY ? "busy" : "failed", msg);
    one_line(text);
    fleet_work *w = work(f);
    if (!w) {
        f->host->log(f->inst, SB_LOG_ERROR, "%s (out of memory: retried at the next reconcile)",
                     text);
        if (f->stopping)
            finish_stop(f);
        return;
    }
    if (why == SB_ACTION_BUSY) {
        log_problem(f, SB_LOG_INFO, text);
    } else {
        w->failures++;
        w->in_a_row++;
        log_problem(f, SB_LOG_WARN, text);
    }
    if (f->stopping && w->in_a_row >= FLEET_STOP_GIVE_UP) {
        f->host->log(f->inst, SB_LOG_ERROR, "on_stop: stop: giving up after %llu failures: %s",
                     (unsigned long long)w->in_a_row, msg);
        finish_stop(f);
        return;
    }
    retry_later(f, sb_backoff_next(&w->backoff, 0));
}

void sb_fleet_list_failed(sb_fleet *f, sb_action_result why, const char *fmt, ...)
{
    if (f->phase != PHASE_LISTING)
        return;
    f->phase = PHASE_IDLE;
    f->relist = 0;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    f->problem_is_list = 1;
    fail_common(f, why == SB_ACTION_DONE ? SB_ACTION_FAILED : why, "list", msg);
}

/* How a call ended and how long it took (the admin's actions_total and action latency). */
static void publish_action(sb_fleet *f, sb_action_result result, const char *msg)
{
    sb_label labels[2] = {{"result", result == SB_ACTION_DONE   ? "done"
                                     : result == SB_ACTION_BUSY ? "busy"
                                                                : "failed"},
                          {"reason", msg}};
    sb_publish ev = {SB_PUBLISH_INIT, .topic = SB_TOPIC_ACTION,
                     .value = (double)(mono_ns() - (f->w ? f->w->acting_since_ns : mono_ns())) / 1e9,
                     .labels = labels,
                     .nlabels = result == SB_ACTION_DONE ? 1 : 2};
    f->host->publish(f->inst, &ev);
}

void sb_fleet_action_done(sb_fleet *f, sb_action_result result, const char *fmt, ...)
{
    if (f->phase != PHASE_ACTING)
        return;
    f->phase = PHASE_IDLE;
    fleet_work *w = f->w; /* made by act() */
    const char *acting_id = w ? w->acting_id : NULL;
    if (f->acting == SB_CALL_STOP && acting_id && text_is(w->draining, acting_id))
        text_clear(&w->draining);
    if (result == SB_ACTION_DONE) {
        publish_action(f, result, NULL);
        if (w) {
            sb_backoff_reset(&w->backoff);
            if (w->in_a_row)
                f->host->log(f->inst, SB_LOG_INFO, "the engine acts again after %llu failure(s)",
                             (unsigned long long)w->in_a_row);
            w->in_a_row = 0;
            text_clear(&w->last_problem);
        }
        f->problem_is_list = 0;
        continue_with(f, NEXT_LIST);
        return;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *what = f->acting == SB_CALL_START ? "start" : f->acting == SB_CALL_STOP ? "stop"
                                                                                         : "set count";
    char where[300];
    snprintf(where, sizeof where, "%s%s%s", what, acting_id ? " " : "", acting_id ? acting_id : "");
    one_line(msg);
    publish_action(f, result, msg);
    f->problem_is_list = 0;
    fail_common(f, result, where, msg);
}

/* A router says the member it was draining has no request left: stop it now. */
static void drained_event(void *arg, const sb_event *ev)
{
    sb_fleet *f = arg;
    if (!draining_of(f) || !f->w->drain || !ev->topic || strcmp(ev->topic, SB_TOPIC_DRAINED) != 0)
        return;
    const char *instance = NULL, *scaler = NULL;
    for (size_t i = 0; i < ev->nlabels; i++) {
        if (strcmp(ev->labels[i].key, "instance") == 0)
            instance = ev->labels[i].value;
        else if (strcmp(ev->labels[i].key, "scaler") == 0)
            scaler = ev->labels[i].value;
    }
    if (!instance || !text_is(f->w->draining, instance))
        return;
    if (scaler && strcmp(scaler, f->host->instance_id(f->inst)) != 0)
        return;
    f->host->log(f->inst, SB_LOG_INFO, "%s drained (%s says so)", instance,
                 ev->source_id ? ev->source_id : "a subscriber");
    timer_drop(f, &f->w->drain);
    drain_fire_now(f);
}

/* ---- lifecycle ----------------------------------------------------------------------------- */

int sb_fleet_new(sb_instance *inst, const sb_host *host, const sb_value *rows,
                 const sb_fleet_ops *ops, void *self, sb_fleet **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!ops || !ops->list || !((ops->start_one && ops->stop_one) || ops->set_count)) {
        snprintf(err, errlen, "fleet: list and start_one/stop_one (or set_count) are required");
        return -EINVAL;
    }
    const char *on_stop = rows[1].is_set && rows[1].str ? rows[1].str : "keep";
    if (strcmp(on_stop, "keep") != 0 && strcmp(on_stop, "stop") != 0) {
        snprintf(err, errlen, "on_stop: keep or stop, got '%s'", on_stop);
        return -EINVAL;
    }
    uint64_t reconcile = rows[0].is_set ? rows[0].duration_ms : 30000;
    if (reconcile < 100) {
        snprintf(err, errlen, "reconcile_every: at least 100ms");
        return -EINVAL;
    }
    sb_fleet *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    f->inst = inst;
    f->host = host;
    f->ops = ops;
    f->self = self;
    f->reconcile_ms = reconcile;
    f->drain_ms = rows[2].is_set ? rows[2].duration_ms : 0;
    f->on_stop_stop = strcmp(on_stop, "stop") == 0;
    f->desired = -1;
    f->engine_count = -1;
    f->adopted = -1;
    const sb_value *drain_from = &rows[3];
    if (drain_from->is_set && drain_from->count > FLEET_DRAIN_FROM_MAX) {
        snprintf(err, errlen, "drain_from: at most %d ids", FLEET_DRAIN_FROM_MAX);
        sb_fleet_free(f);
        return -EINVAL;
    }
    if (drain_from->is_set && drain_from->count > 0 &&
        !(f->subs = calloc(drain_from->count, sizeof *f->subs))) {
        snprintf(err, errlen, "out of memory");
        sb_fleet_free(f);
        return -ENOMEM;
    }
    for (size_t i = 0; drain_from->is_set && i < drain_from->count; i++) {
        int64_t h = host->subscribe(inst, drain_from->items[i], SB_TOPIC_DRAINED, drained_event, f);
        if (h < 0) {
            snprintf(err, errlen, "drain_from: %s '%s'",
                     h == -ENOENT ? "no component with the id" : "cannot subscribe to",
                     drain_from->items[i]);
            sb_fleet_free(f);
            return (int)h;
        }
        f->subs[f->nsubs++] = h;
    }
    *out = f;
    return 0;
}

int sb_fleet_start(sb_fleet *f)
{
    f->started = 1;
    if (clock_join(f) != 0)
        return -ENOMEM;
    fleet_list(f, LIST_ADOPT);
    return 0;
}

static void abandon_call(sb_fleet *f)
{
    if (f->phase != PHASE_IDLE && f->ops->cancel)
        f->ops->cancel(f->self);
    f->phase = PHASE_IDLE;
}

int sb_fleet_stop(sb_fleet *f)
{
    /* A replacement (a reload with changed options) adopts this same fleet: never tear it down
     * then, whatever on_stop says. */
    int replaced = SB_HOST_HAS(f->host, stop_reason) &&
                   f->host->stop_reason(f->inst) == SB_STOP_REPLACED;
    if (!f->on_stop_stop || replaced || !f->started || f->host->dry_run(f->inst)) {
        /* The fleet outlives the daemon: nothing is stopped. */
        clock_leave(f);
        drop_timers(f);
        abandon_call(f);
        f->stopped_reported = 1;
        return 0;
    }
    f->stopping = 1;
    if (f->w) {
        f->w->in_a_row = 0;
        text_clear(&f->w->draining);
    }
    drop_timers(f);
    if (f->phase == PHASE_IDLE) {
        if (f->listed)
            fleet_step(f);
        else
            fleet_list(f, LIST_AFTER_ACTION);
    }
    return f->stopped_reported ? 0 : SB_PENDING;
}

void sb_fleet_free(sb_fleet *f)
{
    if (!f)
        return;
    clock_leave(f);
    drop_timers(f);
    abandon_call(f);
    for (size_t i = 0; i < f->nsubs; i++)
        f->host->unsubscribe(f->inst, f->subs[i]);
    free(f->subs);
    members_clear(f);
    published_drop(f);
    if (f->w) {
        free(f->w->acting_id);
        free(f->w->draining);
        free(f->w->last_problem);
        free(f->w->dry_logged);
        free(f->w);
    }
    free(f);
}

void sb_fleet_on_event(sb_fleet *f, const sb_event *ev)
{
    if (!ev->topic || strcmp(ev->topic, SB_TOPIC_DESIRED) != 0 || f->stopping)
        return;
    for (size_t i = 0; i < ev->nlabels; i++)
        if (strcmp(ev->labels[i].key, SB_LABEL_INITIAL) == 0) {
            /* The daemon's first count is only the floor, which fleet_target applies. */
            fleet_step(f);
            return;
        }
    if (isnan(ev->value) || ev->value < 0)
        return;
    int64_t want = (int64_t)ceil(ev->value - 1e-9);
    int changed = want != f->desired;
    if (changed && f->w)
        text_clear(&f->w->dry_logged);
    f->desired = want;
    if (draining_of(f) && f->w->drain && fleet_target(f) > (int64_t)sb_fleet_active(f)) {
        /* The member being drained is wanted again: keep it rather than stop it and start
         * another. */
        f->host->log(f->inst, SB_LOG_INFO, "%s is wanted again; no longer draining it",
                     f->w->draining);
        text_clear(&f->w->draining);
        timer_drop(f, &f->w->drain);
        publish_instances(f);
    }
    /* A new count is acted on from a fresh list, not from one up to reconcile_every old (a
     * member may have gone, an app been deleted); the step follows the list. */
    if (changed && f->listed && f->phase == PHASE_IDLE && !waiting(f))
        fleet_list(f, LIST_AFTER_ACTION);
    else
        fleet_step(f);
}

void sb_fleet_scaler_on_event(void *state, const sb_event *ev)
{
    sb_fleet_on_event(*(sb_fleet **)state, ev);
}
