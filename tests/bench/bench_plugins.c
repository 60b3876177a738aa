/*
 * bench_plugins.c - two plugins used only by bench_bus: `bench_source`, a trigger whose own thread
 * publishes `count` readings (value = CLOCK_MONOTONIC ns at publish, so the far end can measure
 * publish-to-delivery latency) at `rate` per second (0: as fast as the bus takes them), and
 * `bench_sink`, a no-op scaler that records each delivery's latency. Built twice from this file
 * (BENCH_SOURCE / BENCH_SINK), into tests/bench/plugins/, never with the built-in plugins.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalebus/plugin.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#ifdef BENCH_SOURCE
typedef struct source_state {
    sb_instance *inst;
    const sb_host *host;
    int64_t count;
    double rate;
    pthread_t thread;
    int started;
} source_state;

static const sb_option_spec source_options[] = {
    {"count", SB_OPT_INT, "1000000", 0, "how many readings to publish"},
    {"rate", SB_OPT_NUMBER, "0", 0, "readings per second; 0 publishes as fast as possible"},
    {NULL, 0, NULL, 0, NULL},
};

static void *source_run(void *arg)
{
    source_state *s = arg;
    sb_label label = {"queue", "jobs"};
    uint64_t t0 = mono_ns();
    for (int64_t i = 0; i < s->count; i++) {
        if (s->rate > 0) {
            uint64_t due = t0 + (uint64_t)((double)i * 1e9 / s->rate);
            while (mono_ns() < due) {
            }
        }
        sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .labels = &label, .nlabels = 1};
        for (;;) {
            /* One clock read: the reading's value and its time (so the bus reads none). */
            p.time_ns = mono_ns();
            p.value = (double)p.time_ns;
            int rc = s->host->publish(s->inst, &p);
            if (rc != -ENOBUFS)
                break;
            sched_yield(); /* full: the loop is behind, let it drain */
        }
    }
    return NULL;
}

static int source_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                         char *err, size_t errlen)
{
    source_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->inst = inst;
    s->host = host;
    s->count = v[0].integer;
    s->rate = v[1].number;
    *state = s;
    return 0;
}

static int source_start(void *state)
{
    source_state *s = state;
    if (pthread_create(&s->thread, NULL, source_run, s) != 0)
        return -EAGAIN;
    s->started = 1;
    return 0;
}

static int source_stop(void *state)
{
    source_state *s = state;
    if (s->started)
        pthread_join(s->thread, NULL);
    s->started = 0;
    return 0;
}

static void source_destroy(void *state)
{
    free(state);
}

static const sb_plugin_descriptor source_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "bench_source",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "benchmark trigger: a thread publishing timestamped readings",
    .options = source_options,
    .create = source_create,
    .start = source_start,
    .stop = source_stop,
    .destroy = source_destroy,
};
SB_PLUGIN_EXPORT(source_descriptor)
#endif

#ifdef BENCH_SINK
/* Results, read by bench_bus through dlsym (same process). */
typedef struct bench_sink_results {
    uint64_t delivered;
    uint64_t last_ns;
    uint64_t *latencies;
    uint64_t cap;
} bench_sink_results;

__attribute__((visibility("default"))) bench_sink_results bench_sink_stats;

static const sb_option_spec sink_options[] = {
    {"clock_every", SB_OPT_INT, "64", 0, "read the clock every N deliveries (1: exact latency)"},
    {NULL, 0, NULL, 0, NULL},
};
static uint64_t sink_clock_every = 64;

static int sink_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                       char *err, size_t errlen)
{
    sink_clock_every = v[0].integer > 0 ? (uint64_t)v[0].integer : 1;
    *state = &bench_sink_stats;
    return 0;
}

static void sink_on_event(void *state, const sb_event *ev)
{
    bench_sink_results *r = state;
    /* Like the baseline's consumer: saturated runs read the clock every 64 deliveries, paced
     * runs at every one. */
    static uint64_t now;
    if (r->delivered % sink_clock_every == 0 || now == 0)
        now = mono_ns();
    /* Skip the daemon's initial desired (the chain's come from the connector "pass"). */
    if (ev->source_id[0] != 's' || strcmp(ev->source_id, "scalebus") != 0) {
        if (r->delivered < r->cap)
            r->latencies[r->delivered] = now > (uint64_t)ev->value ? now - (uint64_t)ev->value : 0;
        r->delivered++;
        r->last_ns = now;
    }
}

static void sink_destroy(void *state)
{
    (void)state;
}

static const sb_plugin_descriptor sink_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "bench_sink",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "benchmark scaler: records latency, scales nothing",
    .options = sink_options,
    .create = sink_create,
    .destroy = sink_destroy,
    .on_event = sink_on_event,
};
SB_PLUGIN_EXPORT(sink_descriptor)
#endif
