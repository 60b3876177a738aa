/*
 * probe.h - what the test-only probe plugins record, shared by tests/daemon/probe.c (which writes
 * it) and tests/test_daemon.c (which reads it through dlsym).
 */
#ifndef SCALEBUS_TEST_PROBE_H
#define SCALEBUS_TEST_PROBE_H

#define PROBE_MAX 16
#define PROBE_VALUES 64

typedef struct probe_record {
    char id[32];
    int creates, destroys, starts, stops, runs;
    double values[PROBE_VALUES];
    int nvalues;
    char last_option[32];
} probe_record;

typedef struct probe_results {
    probe_record rec[PROBE_MAX];
    int n;
} probe_results;

#endif
