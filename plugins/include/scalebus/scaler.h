/*
 * scalebus/scaler.h - the contract every scaler shares, in the plugin SDK: a "fleet" that reads
 * what runs, adopts it, acts asynchronously toward the newest desired count (done, busy or
 * failed, with back-off), reconciles drift, scales down newest first, publishes the instance
 * list, honours --dry-run and decides what a daemon stop does to the fleet.
 *
 * A scaler implements three calls on its engine and reports each result later, on the loop:
 *
 *   list(self, f)          -> sb_fleet_listed(f, members, n)  or sb_fleet_list_failed(f, ...)
 *   start_one(self, f)     -> sb_fleet_action_done(f, SB_ACTION_DONE | BUSY | FAILED, "why")
 *   stop_one(self, f, id)  -> sb_fleet_action_done(f, ...)
 *
 * (or set_count instead of start_one/stop_one, for engines that take a count: Marathon, ASG).
 * The library (libscalebus_scaler.a, linked into each scaler like libscalebus_poll.a) does the
 * rest:
 *
 * - Adopt, never assume: start() first lists what runs and publishes it. Nothing is started or
 *   stopped until a policy decides, except to bring the fleet inside the scaler's [min, max].
 *   (The daemon's first desired count, labelled "initial", is only that floor.)
 * - One call at a time. While a call is in flight only the newest desired count is kept; when
 *   the call ends the fleet is listed again and the next step is taken toward it.
 * - busy (the engine is mid-change: a deployment lock, a queued job) is retried after a
 *   back-off and is not a failure; failed is logged with the engine's message, counted and
 *   retried after a back-off. Both back-offs use sb_backoff (scalebus/poll.h).
 * - Idempotent: when what runs matches the desired count, no call is made.
 * - Reconcile: every `reconcile_every` the fleet is listed; members that appeared or vanished
 *   without this scaler are logged ("changed outside scalebus"), and the count is repaired.
 *   A member in state FAILED (a dead container, a failed unit) is removed and replaced.
 * - Scale down: a failed member the engine is restarting first, then one still starting, then the
 *   newest ready one (by started_at, then list order). The member is first published as "stopping", then
 *   stopped after `drain_timeout`, or as soon as a component named in `drain_from` (a router)
 *   publishes SB_TOPIC_DRAINED for it (label "instance" = the member's id; label "scaler", when
 *   present, must be this scaler's id).
 * - Engines that take a count (set_count) report their own desired count with
 *   sb_fleet_listed_count: the fleet compares that, not the members, with the target (a
 *   deployment in progress is not asked again), adopts it on start, and on a reconcile logs and
 *   repairs a count someone changed behind its back.
 * - --dry-run: each call it would make is logged once per desired count ("would POST
 *   /v1.41/containers/create {...}", from the scaler's describe()), and nothing changes.
 * - on_stop: `keep` (the fleet outlives the daemon; the default for scalers whose instances can)
 *   or `stop` (scale to 0 before the stop completes, when the daemon stops or a reload removes
 *   the scaler; never when a reload replaces it: the new instance adopts the same fleet).
 */
#ifndef SCALEBUS_SCALER_H
#define SCALEBUS_SCALER_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The rows every fleet scaler has, in this order; hand sb_fleet_new() a pointer to the sb_value
 * of the first, "reconcile_every". ON_STOP_DEFAULT is "keep" or "stop". */
/* clang-format off */
#define SB_FLEET_OPTIONS(ON_STOP_DEFAULT)                                                          \
    {"reconcile_every", SB_OPT_DURATION, "30s", 0,                                                 \
     "how often to compare what runs with what was asked, and repair drift"},                      \
        {"on_stop", SB_OPT_STRING, ON_STOP_DEFAULT, 0,                                             \
         "what stopping scalebus does to the fleet: keep (it outlives the daemon) or stop"},       \
        {"drain_timeout", SB_OPT_DURATION, "0s", 0,                                                \
         "a member to be removed is listed as stopping this long before it is stopped"},           \
        {"drain_from", SB_OPT_LIST, NULL, 0,                                                       \
         "ids of components (routers) whose drained event stops a member before drain_timeout"}
/* clang-format on */
#define SB_FLEET_OPTION_COUNT 4

/* The label the daemon puts on a scaler's first desired count (value "min" or "replaced"). */
#define SB_LABEL_INITIAL "initial"

typedef enum sb_member_state {
    SB_MEMBER_STARTING = 1, /* created, not yet able to serve */
    SB_MEMBER_READY = 2,    /* running (and healthy, where the engine knows) */
    SB_MEMBER_STOPPING = 3, /* being removed */
    SB_MEMBER_FAILED = 4    /* exited or failed: the fleet removes and replaces it */
} sb_member_state;

/* One member of the fleet as list() reports it. Strings are copied by sb_fleet_listed. */
typedef struct sb_member {
    const char *id;      /* the engine's name: a container id, a unit name */
    const char *address; /* "host:port" where known, else NULL */
    sb_member_state state;
    int64_t started_at; /* Unix seconds; 0 when unknown (then the list order counts: later is newer) */
    /* FAILED members only: 1 when the engine restarts it itself, with its own back-off (a crashed
     * local process, a container with a restart policy). The fleet counts it toward the desired
     * count and does not replace it; it is still listed as failed. */
    int restarting;
    /* Optional engine-specific fields (pid, index, restarts, error...) merged into the member's
     * entry in the instance list; copied by sb_fleet_listed. */
    const struct cJSON *detail;
} sb_member;

typedef enum sb_action_result {
    SB_ACTION_DONE = 0,
    SB_ACTION_BUSY = 1,  /* the engine is mid-change: retried after a back-off, not a failure */
    SB_ACTION_FAILED = 2 /* counted, logged with the message, retried after a back-off */
} sb_action_result;

typedef enum sb_fleet_call { SB_CALL_START = 1, SB_CALL_STOP = 2, SB_CALL_SET_COUNT = 3 } sb_fleet_call;

typedef struct sb_fleet sb_fleet;

typedef struct sb_fleet_ops {
    /* Read the members this scaler owns. Answer once with sb_fleet_listed or
     * sb_fleet_list_failed, now or later, on the loop thread. */
    void (*list)(void *self, sb_fleet *f);
    /* Start one more member. Answer once with sb_fleet_action_done. */
    void (*start_one)(void *self, sb_fleet *f);
    /* Stop and remove member id. Answer once with sb_fleet_action_done. */
    void (*stop_one)(void *self, sb_fleet *f, const char *id);
    /* Optional, instead of start_one/stop_one: make the count n. */
    void (*set_count)(void *self, sb_fleet *f, int64_t n);
    /* The exact call a start, stop or set_count would make, in one line, for --dry-run and the
     * log ("POST /v1.41/containers/create {\"Image\":...}"). */
    void (*describe)(void *self, sb_fleet_call call, const char *id, int64_t n, char *buf,
                     size_t len);
    /* Optional: abandon the call in flight (the scaler stops); no answer is taken after it. */
    void (*cancel)(void *self);
    /* Optional: on_stop: stop has finished (the fleet is at 0, or the engine gave up). The scaler
     * closes what it holds and calls host->stopped() itself. NULL: the library calls it. */
    void (*stopped)(void *self);
} sb_fleet_ops;

/* rows: the sb_value of "reconcile_every" (SB_FLEET_OPTION_COUNT rows). Returns 0 with the fleet
 * in *out, or a negative code with one line in err ("on_stop: keep or stop, got 'x'"). */
int sb_fleet_new(sb_instance *inst, const sb_host *host, const sb_value *rows,
                 const sb_fleet_ops *ops, void *self, sb_fleet **out, char *err, size_t errlen);
/* Lists what runs (adoption), then reconciles every reconcile_every. */
int sb_fleet_start(sb_fleet *f);
/* on_stop keep: 0 at once, the fleet untouched. on_stop stop: SB_PENDING, the fleet is scaled to
 * 0 and host->stopped() is called when it is (or when the engine fails to answer). */
int sb_fleet_stop(sb_fleet *f);
void sb_fleet_free(sb_fleet *f);

/* The descriptor's on_event for a fleet scaler: desired counts (the "initial" one is only the
 * floor), other topics ignored. state's FIRST member must be the sb_fleet *. */
void sb_fleet_scaler_on_event(void *state, const sb_event *ev);
/* The same for a scaler with state of its own. */
void sb_fleet_on_event(sb_fleet *f, const sb_event *ev);

/* Answers. */
void sb_fleet_listed(sb_fleet *f, const sb_member *members, size_t n);
/* The same, for an engine that keeps a count of its own (Marathon's instances, an Auto Scaling
 * group's DesiredCapacity): count is that number (-1: unknown, as sb_fleet_listed). */
void sb_fleet_listed_count(sb_fleet *f, const sb_member *members, size_t n, int64_t count);
void sb_fleet_list_failed(sb_fleet *f, sb_action_result why, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sb_fleet_action_done(sb_fleet *f, sb_action_result result, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The engine says something changed (a child exited, an event came): list now, rather than at
 * the next reconcile. Safe at any time; a call in flight is followed by a list anyway. */
void sb_fleet_changed(sb_fleet *f);

/* What the fleet believes: members listed last (active = starting or ready), the desired count
 * (-1: none decided yet), and failures so far. */
size_t sb_fleet_active(const sb_fleet *f);
int64_t sb_fleet_desired(const sb_fleet *f);
uint64_t sb_fleet_failures(const sb_fleet *f);

#ifdef __cplusplus
}
#endif
#endif
