/*
 * hello.c - the `hello` trigger, a scalebus plugin built outside the scalebus tree from the
 * installed SDK alone: it publishes a reading of `value` at once and then every `every`.
 *
 * It shows what every plugin has: an options table (validated and defaulted by the daemon), a
 * descriptor that starts with SB_DESCRIPTOR_SIZES, state made in create() and freed in
 * destroy(), a timer made in start() and freed in stop(), and calls into the daemon only through
 * the sb_host table. It links nothing from the daemon.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <scalebus/plugin.h>

/* Rows of the options table, in order: the values handed to create() have the same layout. */
enum { OPT_EVERY, OPT_VALUE };

static const sb_option_spec hello_options[] = {
    {"every", SB_OPT_DURATION, "1s", 0, "time between readings (at least 10ms)"},
    {"value", SB_OPT_NUMBER, "1", 0, "the number each reading carries"},
    {NULL, 0, NULL, 0, NULL},
};

#define HELLO_EVERY_MIN_MS 10

typedef struct hello {
    sb_instance *inst;
    const sb_host *host;
    uint64_t every_ms;
    double value;
    sb_timer *timer;
} hello;

static void hello_tick(void *arg)
{
    hello *h = arg;
    sb_label label = {"source", "hello"};
    sb_publish p = {
        SB_PUBLISH_INIT,
        .topic = SB_TOPIC_READING,
        .flags = SB_EVENT_COALESCE, /* only the newest reading waits if the bus is busy */
        .value = h->value,
        .labels = &label,
        .nlabels = 1,
    };
    int rc = h->host->publish(h->inst, &p);
    if (rc != 0)
        h->host->log(h->inst, SB_LOG_WARN, "reading %g not published (error %d)", h->value, rc);
}

static int hello_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                        void **state, char *err, size_t errlen)
{
    uint64_t every_ms = values[OPT_EVERY].duration_ms;
    if (every_ms < HELLO_EVERY_MIN_MS) {
        snprintf(err, errlen, "every: expected at least %dms, got %" PRIu64 "ms",
                 HELLO_EVERY_MIN_MS, every_ms);
        return -EINVAL;
    }
    hello *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    h->inst = inst;
    h->host = host;
    h->every_ms = every_ms;
    h->value = values[OPT_VALUE].number;
    *state = h;
    return 0;
}

static int hello_start(void *state)
{
    hello *h = state;
    /* A reading at once, then one every `every`. */
    h->timer = h->host->timer_new(h->inst, 0, h->every_ms, hello_tick, h);
    if (!h->timer) {
        h->host->log(h->inst, SB_LOG_ERROR, "cannot make a timer");
        return -ENOMEM;
    }
    h->host->log(h->inst, SB_LOG_INFO, "publishing %g every %" PRIu64 "ms", h->value, h->every_ms);
    return 0;
}

static int hello_stop(void *state)
{
    hello *h = state;
    if (h->timer)
        h->host->timer_free(h->timer);
    h->timer = NULL;
    return 0;
}

static void hello_destroy(void *state)
{
    free(state);
}

static const sb_plugin_descriptor hello_descriptor = {
    SB_DESCRIPTOR_SIZES, /* the ABI and struct sizes this file was built with */
    .type = "hello",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "publishes a reading of `value` every `every` (an out-of-tree example)",
    .options = hello_options,
    .create = hello_create,
    .start = hello_start,
    .stop = hello_stop,
    .destroy = hello_destroy,
};

SB_PLUGIN_EXPORT(hello_descriptor)
