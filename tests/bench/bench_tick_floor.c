/*
 * bench_tick_floor.c - the CPU floor for bench_triggers.sh: N bare libuv timers on one loop, each
 * in its own small heap block, all repeating every PERIOD ms from the same start (as N polling
 * triggers started together tick), each tick doing nothing but count. It prints "ready" once they
 * are armed and runs until SIGINT or SIGTERM, then prints the ticks it saw.
 *
 *   bench_tick_floor [N [PERIOD_MS]]      (default 1000 timers, every 1000 ms)
 *
 * Built by bench_triggers.sh itself (cc + pkg-config libuv), not by the project's build.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static unsigned long long ticks;

static void on_timer(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000;
    long period = argc > 2 ? strtol(argv[2], NULL, 10) : 1000;
    if (n < 1)
        n = 1;
    if (period < 1)
        period = 1;
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t **timers = calloc((size_t)n, sizeof *timers);
    if (!timers)
        return 1;
    for (long i = 0; i < n; i++) {
        if (!(timers[i] = malloc(sizeof *timers[i])))
            return 1;
        uv_timer_init(loop, timers[i]);
        uv_timer_start(timers[i], on_timer, (uint64_t)period, (uint64_t)period);
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("ready: %ld timers every %ld ms\n", n, period);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    printf("ticks: %llu\n", ticks);
    return 0;
}
