/*
 * bench_floor.c - the memory floor for bench_pipelines.sh: N bare libuv timers on one loop, each
 * in its own small heap block (as a pipeline's trigger timer would be), armed far in the future,
 * so the process idles like `scalebus run` with N idle cron pipelines. It prints "ready" once
 * they are armed and runs until SIGINT or SIGTERM.
 *
 *   bench_floor [N]      (default 10000)
 *
 * Built by bench_pipelines.sh itself (cc + pkg-config libuv), not by the project's build.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <uv.h>

static void on_timer(uv_timer_t *t)
{
    (void)t;
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    uv_stop(s->loop);
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 10000;
    if (n < 1)
        n = 1;
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t **timers = calloc((size_t)n, sizeof *timers);
    if (!timers)
        return 1;
    for (long i = 0; i < n; i++) {
        if (!(timers[i] = malloc(sizeof *timers[i])))
            return 1;
        uv_timer_init(loop, timers[i]);
        uv_timer_start(timers[i], on_timer, 3600u * 1000u * 24u * 30u, 0); /* 30 days */
    }
    uv_signal_t sigint, sigterm;
    uv_signal_init(loop, &sigint);
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    printf("ready: %ld timers\n", n);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
