/*
 * admin.h - the admin HTTP endpoint of `scalebus run` (docs/admin.md): health, readiness,
 * Prometheus metrics, the pipelines as JSON, pausing and overriding scalers, and readings pushed
 * to `push` triggers. Served by sb_httpd (core/httpd.h) on the daemon's loop.
 *
 * Settings come from the pipeline file's `admin:` section (config_admin) at every load, in two
 * steps so that a refused file changes nothing: admin_prepare() binds a new address (when it
 * changed) before the load starts anything, then admin_commit() swaps it in with the new token,
 * or admin_abort() drops it. The socket of an unchanged address is kept across reloads, so a
 * reload never drops the endpoint.
 *
 * The token, when set, is compared in constant time with "Authorization: Bearer TOKEN" on every
 * path but /healthz, and never written anywhere (logs, responses).
 *
 * Threading: the loop thread only.
 */
#ifndef SCALEBUS_ADMIN_H
#define SCALEBUS_ADMIN_H

#include <stddef.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"
#include "log.h"
#include "textbuf.h"

typedef struct admin admin;

/* An admin serving nothing yet. logger must outlive it. NULL on ENOMEM. */
admin *admin_new(uv_loop_t *loop, sb_daemon *d, const sb_logger *logger);
/* The settings of a file being loaded: a changed address is bound now. 0, or -1 with one line
 * in err ("cannot listen on 127.0.0.1:9180: address already in use"). */
int admin_prepare(admin *a, const config_admin *cfg, char *err, size_t errlen);
/* The load went through: serve the prepared address and token. Returns 1 when serving. */
int admin_commit(admin *a);
/* The load was refused: the running admin carries on as it was. a may be NULL. */
void admin_abort(admin *a);
/* Stop serving (open connections are closed) and free once libuv has closed the server's handles
 * (run the loop). a may be NULL. */
void admin_free(admin *a);
/* The address served ("127.0.0.1:9180"), or "" when off. */
const char *admin_address(const admin *a);

/* ---- the pieces, for unit tests ------------------------------------------------------------- */

typedef enum admin_route_kind {
    ADMIN_NOT_FOUND = 0,
    ADMIN_BAD_METHOD, /* a known path, another method: 405 with allow */
    ADMIN_HEALTHZ,
    ADMIN_READYZ,
    ADMIN_METRICS,
    ADMIN_PIPELINES,
    ADMIN_PAUSE,
    ADMIN_RESUME,
    ADMIN_SCALE,
    ADMIN_READINGS
} admin_route_kind;

#define ADMIN_ID_MAX 256

typedef struct admin_route {
    admin_route_kind kind;
    const char *allow;       /* ADMIN_BAD_METHOD: "GET, HEAD" or "POST" */
    char id[ADMIN_ID_MAX + 1]; /* the scaler's or trigger's id in the path */
} admin_route;

/* The route of a method and path (no query). Ids are [A-Za-z0-9_.-]+, as the file allows. */
void admin_route_of(const char *method, const char *path, admin_route *out);

/* The Prometheus text exposition (version 0.0.4) of n components and the daemon's counters. */
void admin_render_metrics(textbuf *t, const daemon_view *views, size_t n,
                          const daemon_stats *counters,
                          const daemon_admin_stats *as, const char *version);

/* The JSON of GET /pipelines. */
void admin_render_pipelines(textbuf *t, sb_daemon *d);

/* 1 when the request's Authorization header carries the token (constant time in its length). */
int admin_token_matches(const char *authorization, const char *token);

#endif
