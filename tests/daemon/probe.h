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
    /* ABI 2 probes */
    int reconfigs;          /* reconfigure() calls that took the new options */
    char soft[32];          /* the `soft` option the running instance uses */
    long long subscribe_rc; /* what host->subscribe returned (from create) */
    int sub_events;         /* events heard through that subscription */
    double sub_last;        /* the last one's value */
    long long claimed[8];   /* indexes from host->index_claim, in order of claiming */
    int nclaimed;
    int refused_after_stop; /* publishes from the probe's thread refused after stop() returned */
    int publish_rc_after_stop;
    long long bound_min, bound_max; /* host->bounds, asked in start() and on every event */
    double held[8];                 /* `retain`: each retained payload's "n", read at the next */
    int nheld;                      /* event, after the bus has let go of it */
    int retain_same;                /* payload_retain returned the payload it was given */
    char last_reason[160];          /* the "reason" label of the newest desired count */
} probe_record;

typedef struct probe_results {
    probe_record rec[PROBE_MAX];
    int n;
} probe_results;

#endif
