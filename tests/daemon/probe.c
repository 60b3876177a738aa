/*
 * probe.c - test-only plugins for test_daemon: `probe_trigger` (a trigger that counts the "run
 * now" events it receives) and `probe_scaler` (a scaler that records every desired count it is
 * given). Their records live in one exported struct that the test reads through dlsym, so the
 * test sees exactly what the daemon delivered to a plugin. Options make them exercise the host:
 * a failing start, a subscription by id made in create(), payloads kept beyond the callback
 * (payload_retain/payload_release), options taken in place (reconfigure), instance index
 * claims, and a thread that publishes until it is refused. Every probe records what
 * host->bounds answers. With `feed_file` a probe is a trigger a shell test steers: every
 * `feed_every` it reads the file and publishes a number in it as a reading, or `error WHY` as an
 * SB_TOPIC_ERROR event (value: consecutive errors, label reason), as a polling trigger does.
 */
#define _POSIX_C_SOURCE 200809L
#include <cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scalebus/plugin.h"

#include "probe.h"

__attribute__((visibility("default"))) probe_results probe_stats;

typedef struct probe_state {
    probe_record *rec;
    sb_instance *inst;
    const sb_host *host;
    char tag[32];
    int fail_start;
    int64_t claims;
    int publisher;
    int retain;
    const cJSON *held; /* `retain`: the payload kept from the last event heard */
    pthread_t thread;
    int thread_running;
    _Atomic int stopped; /* stop() has returned */
    _Atomic int refused; /* the thread saw -ESHUTDOWN after that */
    _Atomic int last_rc;
    char *feed_file; /* `feed_file`: what to publish, read every feed_every_ms */
    uint64_t feed_every_ms;
    sb_timer *feed_timer;
    double feed_errors; /* consecutive `error` lines read */
} probe_state;

static probe_record *probe_find(const char *id)
{
    for (int i = 0; i < probe_stats.n; i++)
        if (strcmp(probe_stats.rec[i].id, id) == 0)
            return &probe_stats.rec[i];
    if (probe_stats.n == PROBE_MAX)
        return NULL;
    probe_record *r = &probe_stats.rec[probe_stats.n++];
    memset(r, 0, sizeof *r);
    strncpy(r->id, id, sizeof r->id - 1);
    return r;
}

enum {
    OPT_TAG,
    OPT_SOFT,
    OPT_FAIL_START,
    OPT_SUBSCRIBE_TO,
    OPT_CLAIMS,
    OPT_PUBLISHER,
    OPT_RETAIN,
    OPT_FEED_FILE,
    OPT_FEED_EVERY,
    OPT_SUBSCRIBE_TOPIC
};

static const sb_option_spec probe_options[] = {
    [OPT_TAG] = {"tag", SB_OPT_STRING, "none", 0, "any text; changing it replaces the component"},
    [OPT_SOFT] = {"soft", SB_OPT_STRING, "none", 0, "any text; a change is taken in place"},
    [OPT_FAIL_START] = {"fail_start", SB_OPT_BOOL, "false", 0, "start() fails with EIO"},
    [OPT_SUBSCRIBE_TO] = {"subscribe_to", SB_OPT_STRING, NULL, 0,
                          "an id to subscribe to from create() (readings)"},
    [OPT_CLAIMS] = {"claims", SB_OPT_INT, "0", 0, "instance indexes to claim in start()"},
    [OPT_PUBLISHER] = {"publisher", SB_OPT_BOOL, "false", 0,
                       "a thread publishes readings until refused after stop()"},
    [OPT_RETAIN] = {"retain", SB_OPT_BOOL, "false", 0,
                    "keep each payload heard through subscribe_to until the next event"},
    [OPT_FEED_FILE] = {"feed_file", SB_OPT_STRING, NULL, 0,
                       "read every feed_every: a number is published as a reading, `error WHY` "
                       "as an error event (value: consecutive errors, label reason)"},
    [OPT_FEED_EVERY] = {"feed_every", SB_OPT_DURATION, "200ms", 0, "how often feed_file is read"},
    [OPT_SUBSCRIBE_TOPIC] = {"subscribe_topic", SB_OPT_STRING, SB_TOPIC_READING, 0,
                             "the topic subscribe_to hears"},
    {NULL, 0, NULL, 0, NULL},
};

/* Read the payload kept from the previous event (the bus let go of it after that delivery: only
 * our reference keeps it alive), then let go of it too. */
static void probe_drop_held(probe_state *s)
{
    if (!s->held)
        return;
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(s->held, "n");
    if (s->rec->nheld < 8)
        s->rec->held[s->rec->nheld++] = cJSON_IsNumber(n) ? n->valuedouble : -1;
    s->host->payload_release(s->inst, s->held);
    s->held = NULL;
}

static void probe_heard(void *arg, const sb_event *ev)
{
    probe_state *s = arg;
    probe_record *r = s->rec;
    r->sub_events++;
    r->sub_last = ev->value;
    if (!s->retain)
        return;
    probe_drop_held(s);
    if (ev->payload) {
        s->held = s->host->payload_retain(s->inst, ev->payload);
        r->retain_same = s->held == ev->payload;
    }
}

static void probe_ask_bounds(probe_state *s)
{
    int64_t min = -2, max = -2;
    s->host->bounds(s->inst, &min, &max);
    s->rec->bound_min = min;
    s->rec->bound_max = max;
}

static void *probe_publisher(void *arg)
{
    probe_state *s = arg;
    for (;;) {
        sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = 1};
        int rc = s->host->publish(s->inst, &p);
        atomic_store(&s->last_rc, rc);
        if (atomic_load(&s->stopped) && rc == -ESHUTDOWN) {
            atomic_store(&s->refused, 1);
            return NULL;
        }
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

/* `feed_file`: one line, "12" or "error connection refused"; nothing while it is missing. */
static void probe_feed(void *arg)
{
    probe_state *s = arg;
    char line[256];
    FILE *f = fopen(s->feed_file, "r");
    if (!f)
        return;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    line[strcspn(line, "\n")] = '\0';
    if (strncmp(line, "error", 5) == 0) {
        s->feed_errors++;
        sb_label why = {"reason", line[5] == ' ' ? line + 6 : "error"};
        sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_ERROR, .value = s->feed_errors,
                        .labels = &why, .nlabels = 1};
        s->host->publish(s->inst, &p);
        return;
    }
    char *end;
    double v = strtod(line, &end);
    if (end == line)
        return;
    s->feed_errors = 0;
    sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .flags = SB_EVENT_COALESCE,
                    .value = v};
    s->host->publish(s->inst, &p);
}

static int probe_create(sb_instance *inst, const sb_host *host, const sb_value *v, void **state,
                        char *err, size_t errlen)
{
    probe_record *r = probe_find(host->instance_id(inst));
    if (!r)
        return -ENOSPC;
    probe_state *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->rec = r;
    s->inst = inst;
    s->host = host;
    r->creates++;
    strncpy(r->last_option, v[OPT_TAG].str ? v[OPT_TAG].str : "", sizeof r->last_option - 1);
    memcpy(s->tag, r->last_option, sizeof s->tag);
    strncpy(r->soft, v[OPT_SOFT].str ? v[OPT_SOFT].str : "", sizeof r->soft - 1);
    s->fail_start = (int)v[OPT_FAIL_START].integer;
    s->claims = v[OPT_CLAIMS].integer;
    s->publisher = (int)v[OPT_PUBLISHER].integer;
    s->retain = (int)v[OPT_RETAIN].integer;
    s->feed_every_ms = v[OPT_FEED_EVERY].is_set ? v[OPT_FEED_EVERY].duration_ms : 200;
    if (v[OPT_FEED_FILE].is_set && v[OPT_FEED_FILE].str &&
        (s->feed_file = strdup(v[OPT_FEED_FILE].str)) == NULL) {
        free(s);
        return -ENOMEM;
    }
    if (v[OPT_SUBSCRIBE_TO].is_set)
        r->subscribe_rc =
            host->subscribe(inst, v[OPT_SUBSCRIBE_TO].str, v[OPT_SUBSCRIBE_TOPIC].str,
                            probe_heard, s);
    *state = s;
    (void)err;
    (void)errlen;
    return 0;
}

static int probe_start(void *state)
{
    probe_state *s = state;
    s->rec->starts++;
    probe_ask_bounds(s);
    if (s->fail_start)
        return -EIO;
    for (int64_t i = 0; i < s->claims && s->rec->nclaimed < 8; i++)
        s->rec->claimed[s->rec->nclaimed++] = s->host->index_claim(s->inst);
    if (s->publisher && pthread_create(&s->thread, NULL, probe_publisher, s) == 0)
        s->thread_running = 1;
    if (s->feed_file) {
        uint64_t every = s->feed_every_ms ? s->feed_every_ms : 1;
        s->feed_timer = s->host->timer_new(s->inst, every, every, probe_feed, s);
        if (!s->feed_timer)
            return -ENOMEM;
    }
    return 0;
}

static int probe_stop(void *state)
{
    probe_state *s = state;
    s->rec->stops++;
    atomic_store(&s->stopped, 1);
    if (s->feed_timer)
        s->host->timer_free(s->feed_timer);
    s->feed_timer = NULL;
    return 0;
}

static void probe_destroy(void *state)
{
    probe_state *s = state;
    s->rec->destroys++;
    probe_drop_held(s);
    if (s->thread_running) {
        /* The thread ends once it has seen its publish refused (stop() has returned). */
        pthread_join(s->thread, NULL);
        s->rec->refused_after_stop += atomic_load(&s->refused);
        s->rec->publish_rc_after_stop = atomic_load(&s->last_rc);
    }
    if (s->feed_timer)
        s->host->timer_free(s->feed_timer);
    free(s->feed_file);
    free(s);
}

/* Only `soft` is taken in place; any other change asks for a new instance. */
static int probe_reconfigure(void *state, const sb_value *v, char *err, size_t errlen)
{
    probe_state *s = state;
    (void)err;
    (void)errlen;
    if (strcmp(v[OPT_TAG].str ? v[OPT_TAG].str : "", s->tag) != 0 ||
        (int)v[OPT_FAIL_START].integer != s->fail_start || v[OPT_CLAIMS].integer != s->claims ||
        (int)v[OPT_PUBLISHER].integer != s->publisher || v[OPT_SUBSCRIBE_TO].is_set ||
        (int)v[OPT_RETAIN].integer != s->retain || v[OPT_FEED_FILE].is_set || s->feed_file)
        return SB_RECONFIGURE_REPLACE;
    s->rec->reconfigs++;
    strncpy(s->rec->soft, v[OPT_SOFT].str ? v[OPT_SOFT].str : "", sizeof s->rec->soft - 1);
    return 0;
}

static void probe_on_event(void *state, const sb_event *ev)
{
    probe_state *s = state;
    probe_record *r = s->rec;
    probe_ask_bounds(s);
    if (strcmp(ev->topic, SB_TOPIC_RUN) == 0)
        r->runs++;
    else if (r->nvalues < PROBE_VALUES)
        r->values[r->nvalues++] = ev->value;
    if (strcmp(ev->topic, SB_TOPIC_DESIRED) == 0) {
        r->last_reason[0] = '\0';
        for (size_t i = 0; i < ev->nlabels; i++)
            if (strcmp(ev->labels[i].key, "reason") == 0)
                strncpy(r->last_reason, ev->labels[i].value, sizeof r->last_reason - 1);
    }
}

#ifdef PROBE_TRIGGER
#define PROBE_TYPE "probe_trigger"
#define PROBE_KIND SB_KIND_TRIGGER
#define PROBE_DESCRIPTION "test trigger: counts run-now events"
#else
#define PROBE_TYPE "probe_scaler"
#define PROBE_KIND SB_KIND_SCALER
#define PROBE_DESCRIPTION "test scaler: records desired counts"
#endif

static const sb_plugin_descriptor probe_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = PROBE_TYPE,
    .kind = PROBE_KIND,
    .version = "1.0.0",
    .description = PROBE_DESCRIPTION,
    .options = probe_options,
    .create = probe_create,
    .start = probe_start,
    .stop = probe_stop,
    .destroy = probe_destroy,
    .on_event = probe_on_event,
    .reconfigure = probe_reconfigure,
};
SB_PLUGIN_EXPORT(probe_descriptor)
