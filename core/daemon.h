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
const void *daemon_loader(sb_daemon *d);

#endif
