/*
 * history.h - a scaler's desired and running counts over the last hour, for the dashboard's
 * chart (GET /scalers/ID/history, docs/admin.md "Dashboard").
 *
 * A bounded ring: at most HISTORY_MAX_POINTS points, at most one per HISTORY_STEP_NS (a change
 * within the step updates the step's point), and a point only when a count changed, so 360
 * points cover at least an hour and an idle scaler keeps one. The ring grows as points come
 * (1, 2, 4, ... 256, 360), so a scaler that rarely changes costs a few dozen bytes.
 *
 * Threading: the daemon's loop thread only.
 */
#ifndef SCALEBUS_HISTORY_H
#define SCALEBUS_HISTORY_H

#include <stddef.h>
#include <stdint.h>

#include "textbuf.h"

#define HISTORY_MAX_POINTS 360
#define HISTORY_STEP_NS (10LL * 1000000000LL)

typedef struct history_point {
    int64_t t_ns;   /* wall clock: when the step's first change came */
    double desired; /* NAN: not known yet */
    double running; /* NAN: not known yet */
} history_point;

/* Zero-initialise; history_free releases the points. */
typedef struct history {
    history_point *p;
    uint32_t cap, start, n;
} history;

/* The counts at now_ns (NAN for unknown). Nothing when neither changed; on ENOMEM the point is
 * dropped (the chart misses it, nothing else does). */
void history_record(history *h, int64_t now_ns, double desired, double running);
size_t history_count(const history *h);
/* The i-th point, oldest first (i < history_count). */
const history_point *history_at(const history *h, size_t i);
void history_free(history *h);

/* {"scaler":ID,"now":MS,"step_s":10,"points":[[MS,DESIRED,RUNNING],...]}: times in Unix
 * milliseconds, unknown counts null. h may be NULL (no points). */
void history_render_json(textbuf *t, const char *scaler_id, const history *h, int64_t now_ns);

#endif
