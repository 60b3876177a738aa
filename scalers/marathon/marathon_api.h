/*
 * marathon_api.h - what the marathon scaler reads from and writes to Marathon's REST API, as pure
 * functions (bytes in, values out, no host): the app with its tasks
 * (GET /v2/apps/{id}?embed=app.tasks), error replies, the app id, the kill body of
 * /v2/tasks/delete and the choice of the newest tasks. Built as sb_marathon_parse, linked into
 * marathon.so and into tests/test_marathon_parse.
 *
 * Nothing a remote sends may crash the daemon: every field's type is checked, sizes are bounded,
 * and strings that reach a message have control characters replaced.
 */
#ifndef SCALEBUS_MARATHON_API_H
#define SCALEBUS_MARATHON_API_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/scaler.h"

#define SB_MARATHON_TASKS_MAX 10000 /* tasks read from one app; more is refused as garbage */
#define SB_MARATHON_ID_MAX 256      /* a task id or an app id, NUL included */
#define SB_MARATHON_ADDR_MAX 300    /* "host:port", NUL included */

/* One task of the app, as the fleet sees it. */
typedef struct sb_marathon_task {
    char id[SB_MARATHON_ID_MAX];
    char address[SB_MARATHON_ADDR_MAX]; /* "host:first port", "host" without ports, "" unknown */
    sb_member_state state;
    int64_t started_at; /* Unix seconds from startedAt, else stagedAt; 0 unknown */
    int live;           /* staging, starting or running: counts toward the app's instances */
} sb_marathon_task;

typedef struct sb_marathon_app {
    int64_t instances;       /* the app's own count */
    int health_checks;       /* the app defines health checks: a task is ready only when healthy */
    int deployments;         /* deployments in progress on the app */
    sb_marathon_task *tasks; /* owned: sb_marathon_app_free */
    size_t ntasks;
} sb_marathon_app;

/* Parse the body of GET /v2/apps/{id}?embed=app.tasks ({"app": {...}}). Returns 0 with *out
 * filled (free it with sb_marathon_app_free), or -EINVAL with one line in err ("the reply is not
 * JSON", "app.instances is not a number") and *out empty. */
int sb_marathon_parse_app(const char *body, size_t len, sb_marathon_app *out, char *err,
                          size_t errlen);
void sb_marathon_app_free(sb_marathon_app *app);

/* A task's state from Marathon's task state ("TASK_RUNNING") and, when the app has health
 * checks, whether every health check result says alive (healthy: 1; none yet: 0). *live is 1
 * for a task that counts toward instances (staging, starting, running). */
sb_member_state sb_marathon_task_state(const char *state, int health_checks, int healthy,
                                       int *live);

/* ISO 8601 as Marathon writes it ("2015-08-26T20:23:44.678Z", or with "+01:00") in Unix seconds;
 * 0 when malformed. */
int64_t sb_marathon_parse_time(const char *s);

/* The message of an error reply: Marathon's {"message": "..."} (with the first of "details"
 * when present), else the body's first line; control characters replaced, bounded by outlen. */
void sb_marathon_error_message(const char *body, size_t len, char *out, size_t outlen);

/* 1 when a reply is Marathon's deployment lock (409 "App is locked by one or more deployments"),
 * with the first deployment id in dep (may be ""). */
int sb_marathon_is_locked(long status, const char *body, size_t len, char *dep, size_t deplen);

/* Check an app id and write its canonical form (a leading '/', no trailing '/'): path segments
 * of [a-z0-9] and '-' or '.' inside ("/team/web"). Returns 0 or -EINVAL with one line in err
 * starting with "app: ". */
int sb_marathon_app_id(const char *in, char *out, size_t outlen, char *err, size_t errlen);

/* The indexes (into tasks) of the k newest live tasks, newest first: by started_at, then by
 * position (later is newer). Writes at most k indexes into idx and returns how many. */
size_t sb_marathon_newest(const sb_marathon_task *tasks, size_t n, size_t k, size_t *idx);

/* {"ids":["a","b"]} for POST /v2/tasks/delete, or NULL (out of memory). Free with free(). */
char *sb_marathon_kill_body(const char *const *ids, size_t n);

/* Copy s into out (bounded), control characters replaced with '?'. */
void sb_marathon_one_line(const char *s, char *out, size_t outlen);

#endif
