/*
 * simulate.h - `scalebus simulate`: replay a trace of readings through a pipeline file's
 * connectors on virtual time, with a model in place of each scaler, and write every decision as
 * CSV (and, optionally, an SVG chart per scaler). No trigger plugin runs and no real scaler is
 * touched: the daemon runs in simulate mode (see daemon_options.simulate).
 */
#ifndef SCALEBUS_SIMULATE_H
#define SCALEBUS_SIMULATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scalebus/plugin.h"

typedef struct simulate_options {
    const char *file;  /* the pipeline file */
    const char *trace; /* CSV: time_s,trigger,value[,labels] */
    const char *out;   /* decisions CSV; NULL: stdout */
    const char *svg;   /* chart; NULL: none */
    /* The scaler model: an instance it adds counts as running this long after the decision
     * (instances it removes stop at once). */
    uint64_t startup_ms;
    const char *const *plugin_dirs; /* extra plugin folders (--plugin-dir) */
    size_t nplugin_dirs;
    sb_log_level log_level; /* the daemon's log level (stderr) when log_level_set */
    int log_level_set;
} simulate_options;

/* Run one simulation. Errors in the pipeline file are printed to err as FILE:LINE:COL: message,
 * errors in the trace as TRACE:LINE: message, and nothing is simulated. Returns 0 when the
 * simulation ran and its outputs were written, 1 otherwise (invalid input, an output that cannot
 * be written, out of memory). */
int simulate_run(const simulate_options *o, FILE *err);

#endif
