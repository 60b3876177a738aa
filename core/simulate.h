/*
 * simulate.h - `scalebus simulate`: replay a trace of readings through a pipeline file's
 * connectors on virtual time, with a model in place of each scaler, and write every decision as
 * CSV (and, optionally, an SVG chart per scaler). No trigger plugin runs and no real scaler is
 * touched: the daemon runs in simulate mode (see daemon_options.simulate).
 *
 * The trace is read as a stream, in bounded memory however long it is: it may be a pipe.
 */
#ifndef SCALEBUS_SIMULATE_H
#define SCALEBUS_SIMULATE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "scalebus/plugin.h"

/* The longest line (a CSV record, its line break included) a trace may hold, in bytes. A longer
 * one is refused as TRACE:LINE: message and ends the reading: it is no trace. */
#define SIMULATE_TRACE_MAX_LINE 65536

typedef struct simulate_options {
    const char *file;  /* the pipeline file */
    const char *trace; /* CSV: time_s,trigger,value[,labels]; "-": standard input */
    const char *out;   /* decisions CSV; NULL or "-": standard output */
    const char *svg;   /* chart; NULL: none; "-": standard output (then out must be a file) */
    /* The scaler model: an instance it adds counts as running this long after the decision
     * (instances it removes stop at once). */
    uint64_t startup_ms;
    const char *const *plugin_dirs; /* extra plugin folders (--plugin-dir) */
    size_t nplugin_dirs;
    sb_log_level log_level; /* the daemon's log level (stderr) when log_level_set */
    int log_level_set;
} simulate_options;

/* Run one simulation. Errors in the pipeline file are printed to err as FILE:LINE:COL: message,
 * errors in the trace as TRACE:LINE: message. A trace in a regular file is checked whole before
 * anything runs, and nothing is simulated when it has an error; any other trace (a pipe) is
 * checked as it is replayed, and the replay stops at its first error (the decisions before it
 * are written). Returns 0 when the simulation ran and its outputs were written, 1 otherwise
 * (invalid input, an output that cannot be written, out of memory). */
int simulate_run(const simulate_options *o, FILE *err);

/* What simulate_check_trace read. */
typedef struct simulate_trace_summary {
    uint64_t rows;       /* rows that passed every check */
    uint64_t errors;     /* bad rows (or header) found; the first 20 are printed */
    unsigned long lines; /* the line the reading ended on */
    uint64_t digest;     /* a hash of every good row: time, trigger, value and labels */
    int stopped; /* a line longer than SIMULATE_TRACE_MAX_LINE ended the reading (printed too) */
} simulate_trace_summary;

/* Read size bytes of data as a trace named name, handed to the reader chunk bytes at a time
 * (0: all at once), as `simulate` reads a file or a pipe, and check every row as it does (the
 * header, fields, numbers, time order, labels, and each trigger against the nids components ids
 * of kinds kinds). Errors are printed to err as NAME:LINE: message. Returns 0 when the trace is
 * valid, -EINVAL when it is not, -ENOMEM. For the fuzzer (tests/fuzz/fuzz_trace.c). */
int simulate_check_trace(const char *name, const void *data, size_t size, size_t chunk,
                         const char *const *ids, const sb_kind *kinds, size_t nids, FILE *err,
                         simulate_trace_summary *sum);

#endif
