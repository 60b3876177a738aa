/*
 * bench_bus.c - throughput and latency of the event bus through a real pipeline, beside a
 * baseline measured in the same run.
 *
 *   chain:    bench_source (trigger, publishing from its own thread) -> direct (the real
 *             connector plugin) -> bench_sink (a no-op scaler), all loaded by the daemon
 *   baseline: a bare libuv async wake-up over a lock-free single-producer ring buffer
 *
 * Throughput: saturated rounds of each, alternating (baseline, bus, baseline, bus, ...: at least
 * 5 each, 7 by default), so a busy spell on a shared machine hits both; it prints every round,
 * the median of each, and the ratio of the medians (single rounds have varied from 0.14x to
 * 0.54x on a shared machine). Latency: one paced run of each (percentiles).
 *
 *   build/tests/bench_bus [EVENTS] [--rounds N] [--chain-only]      (2,000,000 events, 7 rounds)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double events_per_s;
    double p50_us, p99_us;
} result;

static void percentiles(uint64_t *lat, uint64_t n, result *r)
{
    if (n == 0)
        return;
    qsort(lat, n, sizeof *lat, cmp_u64);
    r->p50_us = (double)lat[n / 2] / 1e3;
    r->p99_us = (double)lat[(n * 99) / 100] / 1e3;
}

/* ---- baseline: SPSC ring + uv_async ----------------------------------------------------- */

#define RING 65536u

typedef struct baseline {
    uv_async_t wake;
    _Atomic uint64_t head, tail;
    uint64_t ring[RING];
    uint64_t count, delivered, last_ns;
    uint64_t clock_every; /* saturated: every 64 events; paced: every event */
    double rate;
    uint64_t *lat;
} baseline;

static void baseline_drain(uv_async_t *h)
{
    baseline *b = h->data;
    uint64_t head = atomic_load_explicit(&b->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&b->tail, memory_order_acquire);
    uint64_t now = mono_ns();
    for (; head != tail; head++) {
        uint64_t t = b->ring[head & (RING - 1)];
        if (b->delivered % b->clock_every == 0)
            now = mono_ns();
        b->lat[b->delivered++] = now > t ? now - t : 0;
    }
    atomic_store_explicit(&b->head, head, memory_order_release);
    b->last_ns = now;
    if (b->delivered == b->count)
        uv_close((uv_handle_t *)&b->wake, NULL);
}

static void baseline_producer(void *arg)
{
    baseline *b = arg;
    uint64_t t0 = mono_ns();
    for (uint64_t i = 0; i < b->count; i++) {
        if (b->rate > 0) {
            uint64_t due = t0 + (uint64_t)((double)i * 1e9 / b->rate);
            while (mono_ns() < due) {
            }
        }
        uint64_t tail = atomic_load_explicit(&b->tail, memory_order_relaxed);
        while (tail - atomic_load_explicit(&b->head, memory_order_acquire) >= RING)
            sched_yield();
        b->ring[tail & (RING - 1)] = mono_ns();
        atomic_store_explicit(&b->tail, tail + 1, memory_order_release);
        uv_async_send(&b->wake);
    }
}

static result run_baseline(uint64_t count, double rate)
{
    result r = {0};
    baseline *b = calloc(1, sizeof *b);
    b->count = count;
    b->rate = rate;
    b->clock_every = rate > 0 ? 1 : 64;
    b->lat = malloc(count * sizeof *b->lat);
    uv_loop_t loop;
    uv_loop_init(&loop);
    uv_async_init(&loop, &b->wake, baseline_drain);
    b->wake.data = b;
    uv_thread_t th;
    uint64_t t0 = mono_ns();
    uv_thread_create(&th, baseline_producer, b);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_thread_join(&th);
    r.events_per_s = (double)count / ((double)(b->last_ns - t0) / 1e9);
    percentiles(b->lat, b->delivered, &r);
    uv_loop_close(&loop);
    free(b->lat);
    free(b);
    return r;
}

/* ---- the chain through the daemon --------------------------------------------------------- */

typedef struct bench_sink_results {
    uint64_t delivered;
    uint64_t last_ns;
    uint64_t *latencies;
    uint64_t cap;
} bench_sink_results;

typedef struct chain_ctx {
    bench_sink_results *sink;
    uint64_t count;
} chain_ctx;

static void chain_poll(uv_timer_t *t)
{
    chain_ctx *c = t->data;
    if (c->sink->delivered >= c->count)
        uv_stop(t->loop);
}

static void chain_stopped(void *arg)
{
    uv_stop(arg);
}

static result run_chain(uint64_t count, double rate, const char *dir)
{
    result r = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/bench.yaml", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    fprintf(f,
            "log: { level: error }\n"
            "triggers:\n  - { id: load, type: bench_source, count: %llu, rate: %g }\n"
            "connectors:\n  - { id: pass, type: direct, from: load, to: sink }\n"
            "scalers:\n  - { id: sink, type: bench_sink, min: 0, max: 9007199254740992, "
            "clock_every: %d }\n",
            (unsigned long long)count, rate, rate > 0 ? 1 : 64);
    fclose(f);

    char sink_path[4096];
    snprintf(sink_path, sizeof sink_path, "%s/bench_sink.so", SB_BENCH_PLUGIN_DIR);
    void *h = dlopen(sink_path, RTLD_NOW | RTLD_LOCAL);
    bench_sink_results *sink = h ? dlsym(h, "bench_sink_stats") : NULL;
    if (!sink) {
        fprintf(stderr, "bench_bus: cannot reach %s: %s\n", sink_path, dlerror());
        exit(1);
    }
    memset(sink, 0, sizeof *sink);
    sink->latencies = malloc(count * sizeof *sink->latencies);
    sink->cap = count;

    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *dirs[] = {SB_PLUGIN_BUILD_DIR, SB_BENCH_PLUGIN_DIR};
    daemon_options o = {
        .plugin_dirs = dirs, .nplugin_dirs = 2, .log_level = SB_LOG_ERROR, .log_level_set = 1};
    sb_daemon *d = daemon_new(&loop, &o);
    config_errors errs;
    config_errors_init(&errs);
    uint64_t t0 = mono_ns();
    if (daemon_load(d, path, &errs) != 0) {
        config_errors_print(&errs, stderr);
        exit(1);
    }
    config_errors_free(&errs);
    chain_ctx c = {sink, count};
    uv_timer_t poll;
    uv_timer_init(&loop, &poll);
    poll.data = &c;
    uv_timer_start(&poll, chain_poll, 1, 1);
    uv_run(&loop, UV_RUN_DEFAULT);
    r.events_per_s = (double)sink->delivered / ((double)(sink->last_ns - t0) / 1e9);
    percentiles(sink->latencies, sink->delivered < count ? sink->delivered : count, &r);
    uv_close((uv_handle_t *)&poll, NULL);
    daemon_stop(d, chain_stopped, &loop);
    uv_run(&loop, UV_RUN_DEFAULT);
    daemon_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    free(sink->latencies);
    sink->latencies = NULL;
    dlclose(h);
    unlink(path);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
    double *s = malloc((size_t)n * sizeof *s);
    if (!s)
        return 0;
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    double m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_bus [EVENTS] [--rounds N] [--chain-only]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    uint64_t n = 2000000;
    int rounds = 7, chain_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--chain-only") == 0)
            chain_only = 1; /* for profiling the bus alone */
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (argv[i][0] >= '0' && argv[i][0] <= '9')
            n = strtoull(argv[i], NULL, 10);
        else
            usage();
    }
    if (n < 1000)
        n = 1000;
    if (rounds < 1)
        rounds = 1;
    char dir[] = "/tmp/sb-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    if (chain_only) {
        for (int i = 0; i < rounds; i++) {
            result c = run_chain(n, 0, dir);
            printf("bus chain: %.0f events/s\n", c.events_per_s);
        }
        rmdir(dir);
        return 0;
    }
    /* Paced runs: a rate both can sustain, so latency is the path's, not a queue's. */
    uint64_t paced_n = n / 10;
    double paced_rate = 200000;
    printf("scalebus bus benchmark: %llu events saturated, %d rounds each of baseline and bus, "
           "interleaved; then %llu paced at %.0f/s\n",
           (unsigned long long)n, rounds, (unsigned long long)paced_n, paced_rate);
    /* Baseline and bus take turns, so a busy spell on a shared machine falls on both. */
    double *base = calloc((size_t)rounds, sizeof *base), *chain = calloc((size_t)rounds, sizeof *chain);
    if (!base || !chain)
        return 1;
    result base_sat = {0}, chain_sat = {0};
    printf("%-8s %14s %14s %8s\n", "round", "baseline ev/s", "bus ev/s", "ratio");
    for (int i = 0; i < rounds; i++) {
        base_sat = run_baseline(n, 0);
        chain_sat = run_chain(n, 0, dir);
        base[i] = base_sat.events_per_s;
        chain[i] = chain_sat.events_per_s;
        printf("%-8d %14.0f %14.0f %7.2fx\n", i + 1, base[i], chain[i], chain[i] / base[i]);
    }
    double mb = median(base, rounds), mc = median(chain, rounds);
    printf("%-8s %14.0f %14.0f %7.2fx  (ratio of the medians)\n", "median", mb, mc, mc / mb);
    result base_paced = run_baseline(paced_n, paced_rate);
    result chain_paced = run_chain(paced_n, paced_rate, dir);
    printf("paced latency p50/p99: baseline %.2f/%.2f us, bus %.2f/%.2f us\n", base_paced.p50_us,
           base_paced.p99_us, chain_paced.p50_us, chain_paced.p99_us);
    printf("saturated latency (last round, queueing included) p50/p99: baseline %.1f/%.1f us, "
           "bus %.1f/%.1f us\n",
           base_sat.p50_us, base_sat.p99_us, chain_sat.p50_us, chain_sat.p99_us);
    printf("targets: bus >= 0.50x baseline (median): %s; bus >= 2,000,000 events/s (median): %s\n",
           mc >= 0.5 * mb ? "met" : "NOT met", mc >= 2e6 ? "met" : "NOT met");
    free(base);
    free(chain);
    rmdir(dir);
    return 0;
}
