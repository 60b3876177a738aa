/*
 * daemon.h - the running daemon: one libuv loop, one bus, the loaded plugins and one instance per
 * component of the pipeline file. It wires connectors' from/to as bus subscriptions, clamps every
 * desired count to its scaler's [min, max], and applies a reload by keeping unchanged components
 * and replacing the rest. `scalebus run` and the in-process tests both drive it through this API.
 */
#ifndef SCALEBUS_DAEMON_H
#define SCALEBUS_DAEMON_H

#include <stdint.h>
#include <stdio.h>
#include <uv.h>

#include "config.h"
#include "dashboard/history.h"
#include "scalebus/plugin.h"

typedef struct sb_daemon sb_daemon;

typedef struct daemon_options {
    int dry_run;
    sb_log_level log_level; /* overrides the file's log.level when log_level_set */
    int log_level_set;
    int log_json; /* overrides the file's log.format when log_json_set (1: json) */
    int log_json_set;
    const char *const *plugin_dirs; /* extra folders searched before plugins.path (tests) */
    size_t nplugin_dirs;
    /* Simulation (`scalebus simulate`): triggers and scalers run no plugin. Readings come from
     * daemon_inject(); each clamped desired count for a scaler goes to sim_desired(). */
    int simulate;
    void (*sim_desired)(void *arg, const char *scaler_id, const sb_event *ev);
    void *sim_arg;
    /* `scalebus run`: serve the admin endpoint (the file's `admin:` section, core/admin.h) and
     * keep what it shows (counters, last values) per component. Off for checks, simulations and
     * in-process tests, which would all want the same default port. */
    int admin;
    /* What a plugin's host->request_reload runs once its check passed: `scalebus run` reloads as
     * on SIGHUP (telling systemd). NULL: the daemon reloads its last file itself. */
    void (*reload)(void *arg);
    void *reload_arg;
} daemon_options;

typedef struct daemon_stats {
    uint64_t published, delivered, coalesced, dropped;
    size_t instances;
} daemon_stats;

sb_daemon *daemon_new(uv_loop_t *loop, const daemon_options *opts);

/* Load (first call) or reload (later calls) a pipeline file. On any error the running pipelines
 * are left untouched, every error goes to errs (and is logged), and -EINVAL is returned. */
int daemon_load(sb_daemon *d, const char *path, config_errors *errs);

/* Graceful stop: triggers stop, queued events are delivered, connectors and scalers stop (the
 * latter as their stop policy says). done(arg) runs on the loop once everything has stopped. */
void daemon_stop(sb_daemon *d, void (*done)(void *arg), void *arg);

/* Free after daemon_stop's done ran (or if nothing was ever loaded). Closes the daemon's handles:
 * run the loop once more afterwards so libuv can finish closing them. */
void daemon_free(sb_daemon *d);

/* Deliver an event to a component as if a connector had sent it: topic SB_TOPIC_DESIRED to a
 * scaler (clamped to its bounds), SB_TOPIC_RUN to a trigger, SB_TOPIC_READING to a connector.
 * Returns 0 or -ENOENT. For tests and the admin API. */
int daemon_send(sb_daemon *d, const char *target_id, const char *topic, double value);

/* Subscribe to a component's events by id (NULL topic: all). Returns 0 or -ENOENT. */
int daemon_subscribe(sb_daemon *d, const char *source_id, const char *topic, sb_event_cb cb,
                     void *arg);

void daemon_get_stats(const sb_daemon *d, daemon_stats *out);

/* Publish an event as if component source_id had (a trigger's reading in simulation, or a model
 * scaler's SB_TOPIC_INSTANCES). Set pub->time_ns for virtual time. Returns 0 or -ENOENT. */
int daemon_inject(sb_daemon *d, const char *source_id, const sb_publish *pub);
/* Deliver everything queued now, on the calling (loop) thread. */
void daemon_flush(sb_daemon *d);

/* `scalebus check`: parse, validate and create (never start) every component, appending every
 * error to errs. With next_n > 0, prints each scheduled trigger's next firing times to out as
 * "ID 2026-03-29T03:00:00+02:00". Returns 0 when the file is valid, -EINVAL when not. */
int daemon_check(sb_daemon *d, const char *path, int next_n, FILE *out, config_errors *errs);

/* Load the built-in and extra plugin folders (for `scalebus plugins`), and reach the loader. */
void daemon_describe_plugins(sb_daemon *d);

/* ---- what the admin endpoint reads and does (core/admin.c) ---------------------------------- */

/* A latency histogram (seconds): counts per bucket (value <= bound, not cumulative), and all. */
#define DAEMON_HIST_BUCKETS 12
extern const double daemon_hist_bounds[DAEMON_HIST_BUCKETS];
typedef struct daemon_histogram {
    uint64_t bucket[DAEMON_HIST_BUCKETS];
    uint64_t count; /* every observation, those above the last bound too */
    double sum;
} daemon_histogram;

/* One component as the admin shows it. Strings live until the next daemon call on the loop.
 * Times are wall-clock nanoseconds, 0 for "never"; counts are NAN when unknown. */
typedef struct daemon_view {
    const char *id, *type;
    sb_kind kind;
    int running;          /* started, not stopping */
    uint64_t readings, errors;                      /* triggers (delivered events) */
    uint64_t decisions_up, decisions_down, decisions_hold; /* connectors, vs. their previous */
    int64_t min, max;                               /* scalers */
    double desired;       /* scalers: the count they were last told (NAN: none) */
    double running_count; /* scalers: from their instances event (NAN: not yet listed) */
    uint64_t actions_done, actions_busy, actions_failed;
    /* NULL until the component reports one: a trigger's "read" events, a scaler's "action"
     * events (value: seconds; see docs/admin.md). */
    const daemon_histogram *read_latency, *action_latency;
    int paused;
    double override_desired;   /* NAN: no override in force */
    int64_t override_until_ns;
    double last_value;         /* a trigger's reading, a connector's decision */
    int64_t last_value_ns;
    const char *last_reason;   /* a connector's decision's reason chain, or "" */
    const char *last_error;    /* "" when none */
    int64_t last_error_ns;
    const char *last_action;   /* a scaler's last action result ("done: ...") or "" */
    int64_t last_action_ns;
    int64_t last_desired_ns;   /* scalers: when on_event was last given a desired count */
} daemon_view;

/* Every running component, in start order. */
void daemon_foreach_view(sb_daemon *d, void (*cb)(void *arg, const daemon_view *v), void *arg);
/* Every pipeline edge (trigger -> connector, connector -> connector, connector -> target). */
void daemon_foreach_edge(sb_daemon *d, void (*cb)(void *arg, const char *from, const char *to),
                         void *arg);

typedef struct daemon_admin_stats {
    int ready;         /* a file loaded, every component started, not stopping */
    size_t components, started;
    uint64_t reloads_ok, reloads_refused;
} daemon_admin_stats;
void daemon_get_admin_stats(const sb_daemon *d, daemon_admin_stats *out);

/* Scaler controls. Each returns 0, -ENOENT (no running scaler with that id) or -ENOMEM.
 * Paused: decisions still arrive and are logged, not applied; resume applies the newest one.
 * Override: desired (rounded up, held to min/max) is applied now and policies' decisions are
 * not applied until hold_ms has passed; then the newest decision is applied. *applied gets the
 * count after the bounds. */
int daemon_scaler_pause(sb_daemon *d, const char *id, int paused);
/* A running scaler's recent desired and running counts (the dashboard's chart): *found is 1 when
 * a running scaler has that id; NULL when it has no points yet. Valid until the next daemon call
 * on the loop. */
const history *daemon_scaler_history(sb_daemon *d, const char *id, int *found);
int daemon_scaler_override(sb_daemon *d, const char *id, double desired, uint64_t hold_ms,
                           double *applied);

/* A reading pushed to a `push` trigger, published as that trigger. 0, -ENOENT (no running
 * component with that id), -EPERM (not a push trigger), or the bus's error. */
int daemon_push_reading(sb_daemon *d, const char *trigger_id, double value,
                        const sb_label *labels, size_t nlabels);
const void *daemon_loader(sb_daemon *d);

#endif
