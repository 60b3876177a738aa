/*
 * chart.h - the SVG chart `scalebus simulate` writes: one panel per scaler with its desired and
 * running counts, its bounds and the inputs that reach it, over time. The series it draws are
 * bounded: each keeps its points exactly while they are few, then a fixed number of time buckets
 * (each with its lowest and highest value, so peaks survive), however long the trace.
 */
#ifndef SCALEBUS_CHART_H
#define SCALEBUS_CHART_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CHART_POINTS 2000 /* most points one line keeps exactly (a count: half as many) */

typedef struct chart_point {
    uint64_t t; /* ns, on any clock shared by the whole chart */
    double v;
} chart_point;

/* One bucket of a downsampled series. A line keeps its lowest and highest point (the earliest of
 * equals); a step function keeps the time of its first change in the bucket, the range of counts
 * it held there (the count before the bucket included) and the count it ended with. */
typedef struct chart_bucket {
    chart_point lo, hi;
    uint64_t t;
    double last;
    int used;
} chart_bucket;

/* A line (an input's readings) or a step function (a count), in bounded memory: up to cap points
 * exactly, then nbuckets buckets of a width that doubles whenever a point falls past the last. */
typedef struct chart_series {
    int step;
    chart_point *p; /* exact points, while n <= cap */
    size_t n, alloc, cap;
    chart_point first;  /* the first point */
    chart_bucket *b;    /* once downsampled (p is then freed): the points after the first */
    size_t nbuckets;    /* of b */
    uint64_t t0, width; /* bucket k holds [t0 + k * width, t0 + (k + 1) * width) */
    double last;        /* the latest value */
    double lo, hi;      /* the lowest and highest value ever added */
    uint64_t count;     /* points added */
} chart_series;

/* step: a count drawn as steps (else a line). */
void chart_series_init(chart_series *cs, int step);
/* Add a point; points come in time order. 0 or -ENOMEM (the series is then unchanged). */
int chart_series_add(chart_series *cs, uint64_t t, double v);
void chart_series_free(chart_series *cs);

/* An input of a panel: one (trigger, labels) combination of the trace. */
typedef struct chart_input {
    const char *trigger; /* its trigger's id: the right axis is labelled with these */
    const char *name;    /* in the legend: "queue" or "queue {queue=build}" */
    const chart_series *values;
} chart_input;

typedef struct chart_panel {
    const char *id, *type; /* the scaler */
    long long min, max;
    const chart_series *desired, *running;
    const chart_input *inputs; /* drawn, at most CHART_INPUTS */
    size_t ninputs;
    size_t nhidden;      /* more inputs that reach the scaler, not drawn */
    int nhidden_atleast; /* nhidden is a lower bound (too many combinations to tell apart) */
    /* Figures to tune from, over [t0, t1]. */
    uint64_t decisions, ups, downs;
    double peak;     /* the highest desired count (min when it never rose above) */
    uint64_t peak_t; /* when it was first reached */
    double at_max_s; /* seconds desired was at or above max */
    double under_s;  /* seconds running was below desired */
} chart_panel;

#define CHART_INPUTS 12 /* most input lines drawn per panel */

typedef struct chart_info {
    const char *file;    /* the pipeline file (its base name is the title) */
    const char *trace;   /* the trace's name (its base name is shown) */
    uint64_t nrows;      /* readings */
    uint64_t t0, t1;     /* first and last reading */
    const char *t0_text; /* time_s of the first reading when not 0, for the time axis; or NULL */
    uint64_t startup_ns;
    const chart_panel *panels;
    size_t npanels;
} chart_info;

/* Write the chart to f. Returns 0, or -ENOMEM; write errors are left in f (ferror). */
int chart_write_svg(FILE *f, const chart_info *ci);

#endif
