/*
 * test_daemon.c - the daemon's wiring, seen from the plugins' side: readings reach only the
 * connectors whose `match` fits, fan-in and fan-out, a connector whose target is a trigger makes
 * it run, desired counts are rounded up and held to [min, max], scalers start at min, a reload
 * keeps unchanged components (and refuses a broken file without touching anything), policies can
 * chain, a graceful stop still delivers what was queued, a kept policy keeps its windows across a
 * reload (the real target.so), and the host functions no built-in plugin calls yet: subscribe,
 * payload_retain/payload_release and bounds. The probe plugins record what they were given
 * (tests/daemon/probe.c).
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <check.h>
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"

#include "daemon/probe.h"

static probe_results *trig_stats, *scaler_stats;
static void *trig_handle, *scaler_handle;
static char dir[64];
static uv_loop_t loop;
static sb_daemon *d;

static void load_probes(void)
{
    trig_handle = dlopen(SB_PROBE_PLUGIN_DIR "/probe_trigger.so", RTLD_NOW);
    scaler_handle = dlopen(SB_PROBE_PLUGIN_DIR "/probe_scaler.so", RTLD_NOW);
    ck_assert_msg(trig_handle && scaler_handle, "probe plugins: %s", dlerror());
    trig_stats = dlsym(trig_handle, "probe_stats");
    scaler_stats = dlsym(scaler_handle, "probe_stats");
    ck_assert_ptr_nonnull(trig_stats);
    ck_assert_ptr_nonnull(scaler_stats);
    memset(trig_stats, 0, sizeof *trig_stats);
    memset(scaler_stats, 0, sizeof *scaler_stats);
}

static probe_record *rec(probe_results *r, const char *id)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->rec[i].id, id) == 0)
            return &r->rec[i];
    ck_abort_msg("no probe record for '%s'", id);
    return NULL;
}

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-daemon-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    load_probes();
    uv_loop_init(&loop);
    static const char *dirs[] = {SB_PLUGIN_BUILD_DIR, SB_PROBE_PLUGIN_DIR};
    daemon_options o = {
        .plugin_dirs = dirs, .nplugin_dirs = 2, .log_level = SB_LOG_ERROR, .log_level_set = 1};
    d = daemon_new(&loop, &o);
    ck_assert_ptr_nonnull(d);
}

static void stopped(void *arg)
{
    *(int *)arg = 1;
}

static int stopped_by_test;

static void teardown(void)
{
    int done = stopped_by_test;
    stopped_by_test = 0;
    if (!done)
        daemon_stop(d, stopped, &done);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(done, 1);
    daemon_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&loop), 0);
    dlclose(trig_handle);
    dlclose(scaler_handle);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static void load_ok(const char *path)
{
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(d, path, &errs);
    if (rc != 0)
        config_errors_print(&errs, stderr);
    ck_assert_int_eq(rc, 0);
    config_errors_free(&errs);
}

static void reading(const char *trigger, double value, const char *queue)
{
    sb_label l = {"queue", queue};
    sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = value,
                    .labels = queue ? &l : NULL, .nlabels = queue ? 1 : 0};
    ck_assert_int_eq(daemon_inject(d, trigger, &p), 0);
    daemon_flush(d);
}

static const char pipeline[] = "triggers:\n"
                               "  - { id: queues, type: probe_trigger }\n"
                               "  - { id: other, type: probe_trigger }\n"
                               "  - { id: poller, type: probe_trigger }\n"
                               "connectors:\n"
                               "  - { id: builds, type: direct, from: queues, to: build-agents, "
                               "match: { queue: \"build-*\" } }\n"
                               "  - { id: deploys, type: direct, from: queues, to: [deploy-agents, "
                               "all], match: { queue: deploy } }\n"
                               "  - { id: others, type: direct, from: other, to: all }\n"
                               "  - { id: kick, type: direct, from: other, to: poller }\n"
                               "scalers:\n"
                               "  - { id: build-agents, type: probe_scaler, min: 1, max: 5 }\n"
                               "  - { id: deploy-agents, type: probe_scaler, min: 0, max: 3 }\n"
                               "  - { id: all, type: probe_scaler, max: 100, tag: first }\n";

START_TEST(test_scalers_start_at_min)
{
    load_ok(write_file("p.yaml", pipeline));
    ck_assert_int_eq(rec(scaler_stats, "build-agents")->starts, 1);
    ck_assert_int_eq(rec(scaler_stats, "build-agents")->nvalues, 1);
    ck_assert(rec(scaler_stats, "build-agents")->values[0] == 1);
    ck_assert(rec(scaler_stats, "deploy-agents")->values[0] == 0);
}
END_TEST

START_TEST(test_match_routes_by_label)
{
    load_ok(write_file("p.yaml", pipeline));
    probe_record *b = rec(scaler_stats, "build-agents"), *dp = rec(scaler_stats, "deploy-agents");
    reading("queues", 3, "build-x");
    reading("queues", 2, "deploy");
    reading("queues", 4, "build-y");
    reading("queues", 9, "other-queue");
    reading("queues", 9, NULL);      /* no label: matches nothing */
    ck_assert_int_eq(b->nvalues, 3); /* min at start, then 3 and 4 */
    ck_assert(b->values[1] == 3 && b->values[2] == 4);
    ck_assert_int_eq(dp->nvalues, 2);
    ck_assert(dp->values[1] == 2);
}
END_TEST

START_TEST(test_fan_in_fan_out)
{
    load_ok(write_file("p.yaml", pipeline));
    probe_record *all = rec(scaler_stats, "all");
    reading("queues", 2, "deploy"); /* deploys -> deploy-agents and all */
    reading("other", 7, NULL);      /* others -> all */
    ck_assert_int_eq(all->nvalues, 3);
    ck_assert(all->values[1] == 2 && all->values[2] == 7);
    ck_assert(rec(scaler_stats, "deploy-agents")->values[1] == 2);
}
END_TEST

START_TEST(test_connector_to_trigger_runs_it)
{
    load_ok(write_file("p.yaml", pipeline));
    reading("other", 1, NULL);
    reading("other", 0, NULL);
    ck_assert_int_eq(rec(trig_stats, "poller")->runs, 2);
    ck_assert_int_eq(rec(trig_stats, "queues")->runs, 0);
}
END_TEST

START_TEST(test_desired_rounded_up_and_clamped)
{
    load_ok(write_file("p.yaml", pipeline));
    probe_record *b = rec(scaler_stats, "build-agents");
    reading("queues", 2.2, "build-a");
    reading("queues", 99, "build-a");
    reading("queues", -4, "build-a");
    reading("queues", NAN, "build-a"); /* not a number: ignored */
    ck_assert(daemon_send(d, "build-agents", SB_TOPIC_DESIRED, 1e300) == 0);
    ck_assert_int_eq(b->nvalues, 5);
    ck_assert(b->values[1] == 3);
    ck_assert(b->values[2] == 5);
    ck_assert(b->values[3] == 1);
    ck_assert(b->values[4] == 5);
    ck_assert_int_eq(daemon_send(d, "nope", SB_TOPIC_DESIRED, 1), -ENOENT);
}
END_TEST

START_TEST(test_reload_keeps_unchanged_and_replaces_changed)
{
    load_ok(write_file("p.yaml", pipeline));
    /* Change one scaler's option and drop the `kick` connector and the poller trigger. */
    char next[sizeof pipeline + 64];
    snprintf(next, sizeof next, "%s", pipeline);
    char *tag = strstr(next, "tag: first");
    memcpy(tag, "tag: again", 10);
    char *kick = strstr(next, "  - { id: kick");
    char *eol = strchr(kick, '\n');
    memmove(kick, eol + 1, strlen(eol + 1) + 1);
    char *poll = strstr(next, "  - { id: poller");
    eol = strchr(poll, '\n');
    memmove(poll, eol + 1, strlen(eol + 1) + 1);
    load_ok(write_file("p.yaml", next));
    ck_assert_int_eq(rec(scaler_stats, "build-agents")->creates, 1);
    ck_assert_int_eq(rec(scaler_stats, "build-agents")->stops, 0);
    ck_assert_int_eq(rec(scaler_stats, "all")->creates, 2);
    ck_assert_str_eq(rec(scaler_stats, "all")->last_option, "again");
    for (int i = 0; i < 10; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* retired instances are destroyed off the stack */
    ck_assert_int_eq(rec(scaler_stats, "all")->destroys, 1);
    ck_assert_int_eq(rec(trig_stats, "poller")->destroys, 1);
    /* The kept scaler still receives decisions through the rebuilt edges. */
    reading("queues", 4, "build-z");
    probe_record *b = rec(scaler_stats, "build-agents");
    ck_assert(b->values[b->nvalues - 1] == 4);
}
END_TEST

START_TEST(test_broken_reload_changes_nothing)
{
    load_ok(write_file("p.yaml", pipeline));
    config_errors errs;
    config_errors_init(&errs);
    const char *bad = write_file("p.yaml", "scalers:\n  - { id: all, type: probe_scaler }\n");
    ck_assert_int_eq(daemon_load(d, bad, &errs), -EINVAL);
    ck_assert_uint_ge(errs.count, 1);
    ck_assert_int_eq(errs.items[0].line, 2);
    ck_assert_ptr_nonnull(strstr(errs.items[0].message, "max"));
    config_errors_free(&errs);
    ck_assert_int_eq(rec(scaler_stats, "all")->creates, 1);
    ck_assert_int_eq(rec(scaler_stats, "all")->stops, 0);
    reading("other", 6, NULL);
    probe_record *all = rec(scaler_stats, "all");
    ck_assert(all->values[all->nvalues - 1] == 6);
}
END_TEST

START_TEST(test_stop_delivers_queued_events)
{
    load_ok(write_file("p.yaml", pipeline));
    sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = 8};
    ck_assert_int_eq(daemon_inject(d, "other", &p), 0); /* queued, not yet delivered */
    probe_record *all = rec(scaler_stats, "all");
    int before = all->nvalues;
    int done = 0;
    daemon_stop(d, stopped, &done);
    ck_assert_int_eq(all->nvalues, before + 1);
    ck_assert(all->values[all->nvalues - 1] == 8);
    for (int i = 0; i < 1000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(all->stops, 1);
    ck_assert_int_eq(all->destroys, 1);
    stopped_by_test = 1;
}
END_TEST

START_TEST(test_stats_count_events)
{
    load_ok(write_file("p.yaml", pipeline));
    reading("other", 3, NULL);
    daemon_stats st;
    daemon_get_stats(d, &st);
    ck_assert_uint_eq(st.instances, 10);
    /* one reading, then two decisions (others -> all, kick -> poller) */
    ck_assert_uint_eq(st.published, 3);
    ck_assert_uint_eq(st.delivered, 3);
    ck_assert_uint_eq(st.dropped, 0);
}
END_TEST

static void settle(void)
{
    for (int i = 0; i < 20; i++)
        uv_run(&loop, UV_RUN_NOWAIT); /* retired instances are destroyed off the stack */
}

static int load_rc(const char *path)
{
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(d, path, &errs);
    config_errors_free(&errs);
    return rc;
}

static const char bounds_v1[] = "triggers:\n"
                                "  - { id: q, type: probe_trigger }\n"
                                "connectors:\n"
                                "  - { id: c, type: direct, from: q, to: pool }\n"
                                "scalers:\n"
                                "  - { id: pool, type: probe_scaler, min: 1, max: 5 }\n";

/* Raising max used to replace the scaler (a process scaler stopped 4 workers and started 1):
 * bounds are the host's, applied in place; the count is kept, or held to the new bounds. */
START_TEST(test_reload_applies_bounds_in_place)
{
    load_ok(write_file("p.yaml", bounds_v1));
    reading("q", 5, NULL);
    probe_record *pool = rec(scaler_stats, "pool");
    ck_assert_int_eq(pool->nvalues, 2);   /* min at start, then 5 */
    ck_assert_int_eq(pool->bound_min, 1); /* what host->bounds tells the scaler */
    ck_assert_int_eq(pool->bound_max, 5);
    load_ok(write_file("p.yaml",
                       "triggers:\n  - { id: q, type: probe_trigger }\n"
                       "connectors:\n  - { id: c, type: direct, from: q, to: pool }\n"
                       "scalers:\n  - { id: pool, type: probe_scaler, min: 1, max: 6 }\n"));
    settle();
    ck_assert_int_eq(pool->creates, 1);
    ck_assert_int_eq(pool->stops, 0);
    ck_assert_int_eq(pool->nvalues, 2); /* nothing re-sent: 5 is inside [1, 6] */
    reading("q", 9, NULL);
    ck_assert(pool->values[pool->nvalues - 1] == 6); /* the new max holds */
    ck_assert_int_eq(pool->bound_min, 1);
    ck_assert_int_eq(pool->bound_max, 6); /* and host->bounds says so */
    /* Lowering max under the running count holds it to the new bound, still in place. */
    load_ok(write_file("p.yaml",
                       "triggers:\n  - { id: q, type: probe_trigger }\n"
                       "connectors:\n  - { id: c, type: direct, from: q, to: pool }\n"
                       "scalers:\n  - { id: pool, type: probe_scaler, min: 1, max: 3 }\n"));
    settle();
    ck_assert_int_eq(pool->creates, 1);
    ck_assert(pool->values[pool->nvalues - 1] == 3);
    ck_assert_int_eq(pool->bound_max, 3);
}
END_TEST

/* from, to and match changes keep the connector (and the trigger) running. */
START_TEST(test_reload_edges_in_place)
{
    load_ok(write_file("p.yaml", pipeline));
    char next[sizeof pipeline + 64];
    snprintf(next, sizeof next, "%s", pipeline);
    char *m = strstr(next, "\"build-*\"");
    memcpy(m, "\"bu?ld-*\"", 9);
    load_ok(write_file("p.yaml", next));
    settle();
    ck_assert_int_eq(rec(trig_stats, "queues")->creates, 1);
    ck_assert_int_eq(rec(scaler_stats, "build-agents")->creates, 1);
    reading("queues", 4, "build-q");
    probe_record *b = rec(scaler_stats, "build-agents");
    ck_assert(b->values[b->nvalues - 1] == 4);
}
END_TEST

/* A plugin with reconfigure() takes the options it can in place; others still replace it. */
START_TEST(test_reload_reconfigures_in_place)
{
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "soft: a }\n"));
    probe_record *pool = rec(scaler_stats, "pool");
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "soft: b }\n"));
    settle();
    ck_assert_int_eq(pool->creates, 1);
    ck_assert_int_eq(pool->reconfigs, 1);
    ck_assert_str_eq(pool->soft, "b");
    ck_assert_int_eq(pool->stops, 0);
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "soft: b, tag: other }\n"));
    settle();
    ck_assert_int_eq(pool->creates, 2);
    ck_assert_int_eq(pool->stops, 1);
    ck_assert_int_eq(pool->destroys, 1);
}
END_TEST

/* A replacement is started before what it replaces retires; when its start fails, the reload is
 * refused as a whole and the old instance keeps running (it used to be left down). */
START_TEST(test_failed_start_keeps_old_running)
{
    load_ok(write_file("p.yaml", bounds_v1));
    reading("q", 4, NULL);
    probe_record *pool = rec(scaler_stats, "pool");
    ck_assert_int_eq(load_rc(write_file("p.yaml", "triggers:\n  - { id: q, type: probe_trigger }\n"
                                                  "connectors:\n  - { id: c, type: direct, from: "
                                                  "q, to: pool }\n"
                                                  "scalers:\n  - { id: pool, type: probe_scaler, "
                                                  "min: 1, max: 5, tag: v2, fail_start: true }\n")),
                     -EIO);
    settle();
    ck_assert_int_eq(pool->creates, 2);
    ck_assert_int_eq(pool->starts, 2);
    ck_assert_int_eq(pool->stops, 0);    /* the old one was never stopped */
    ck_assert_int_eq(pool->destroys, 1); /* the new one is gone */
    reading("q", 2, NULL);
    ck_assert(pool->values[pool->nvalues - 1] == 2); /* and the old one still gets decisions */
    /* A replacement that starts carries the running count over instead of restarting at min. */
    load_ok(write_file("p.yaml", "triggers:\n  - { id: q, type: probe_trigger }\n"
                                 "connectors:\n  - { id: c, type: direct, from: q, to: pool }\n"
                                 "scalers:\n  - { id: pool, type: probe_scaler, min: 1, max: 5, "
                                 "tag: v3 }\n"));
    settle();
    ck_assert_int_eq(pool->creates, 3);
    ck_assert_int_eq(pool->stops, 1);
    ck_assert(pool->values[pool->nvalues - 1] == 2);
}
END_TEST

/* host->subscribe binds by id: from create() to a component later in the same file, and it
 * follows the id when that component is replaced (a kept subscriber used to go deaf). */
START_TEST(test_subscription_follows_id)
{
    load_ok(write_file("p.yaml", "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: src }\n"
                                 "  - { id: src, type: probe_trigger }\n"));
    probe_record *w = rec(trig_stats, "watcher");
    ck_assert_int_gt(w->subscribe_rc, 0);
    reading("src", 1, NULL);
    ck_assert_int_eq(w->sub_events, 1);
    load_ok(write_file("p.yaml", "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: src }\n"
                                 "  - { id: src, type: probe_trigger, tag: replaced }\n"));
    settle();
    ck_assert_int_eq(w->creates, 1); /* the subscriber was kept */
    ck_assert_int_eq(rec(trig_stats, "src")->creates, 2);
    reading("src", 2, NULL);
    ck_assert_int_eq(w->sub_events, 2);
    ck_assert(w->sub_last == 2);
    /* The subscriber's own replacement drops its old subscription: one delivery, not two. */
    load_ok(write_file("p.yaml", "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: src, "
                                 "tag: new }\n"
                                 "  - { id: src, type: probe_trigger, tag: replaced }\n"));
    settle();
    reading("src", 3, NULL);
    ck_assert_int_eq(w->sub_events, 3);
}
END_TEST

/* A subscriber that comes after a scaler's instance list (a router replaced by a reload) hears
 * the newest list at once, on the next turn of the loop, instead of only at the next change. */
START_TEST(test_new_subscriber_hears_last_instances)
{
    static const char file_a[] = "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: pool, "
                                 "subscribe_topic: instances }\n"
                                 "scalers:\n"
                                 "  - { id: pool, type: probe_scaler, min: 0, max: 10 }\n";
    load_ok(write_file("p.yaml", file_a));
    settle();
    probe_record *w = rec(trig_stats, "watcher");
    int before = w->sub_events;
    cJSON *list = cJSON_CreateArray();
    sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_INSTANCES, .value = 3, .payload = list};
    ck_assert_int_eq(daemon_inject(d, "pool", &p), 0);
    daemon_flush(d);
    settle();
    ck_assert_int_eq(w->sub_events, before + 1);
    ck_assert(w->sub_last == 3);
    /* a new watcher (changed options: replaced), and nothing new from pool */
    load_ok(write_file("p.yaml", "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: pool, "
                                 "subscribe_topic: instances, tag: new }\n"
                                 "scalers:\n"
                                 "  - { id: pool, type: probe_scaler, min: 0, max: 10 }\n"));
    settle();
    ck_assert_int_eq(w->creates, 2);
    ck_assert_int_eq(w->sub_events, before + 2);
    ck_assert(w->sub_last == 3);
    /* the scaler's next list is heard as before, once */
    list = cJSON_CreateArray();
    sb_publish p2 = {SB_PUBLISH_INIT, .topic = SB_TOPIC_INSTANCES, .value = 4, .payload = list};
    ck_assert_int_eq(daemon_inject(d, "pool", &p2), 0);
    daemon_flush(d);
    settle();
    ck_assert_int_eq(w->sub_events, before + 3);
    ck_assert(w->sub_last == 4);
}
END_TEST

START_TEST(test_subscribe_unknown_id_refused)
{
    load_ok(write_file("p.yaml",
                       "triggers:\n"
                       "  - { id: watcher, type: probe_trigger, subscribe_to: nobody }\n"));
    ck_assert_int_eq(rec(trig_stats, "watcher")->subscribe_rc, -ENOENT);
}
END_TEST

/* SCALEBUS_INSTANCE indexes stay unique within an id while a replacement and the instance it
 * replaces both run. */
START_TEST(test_index_claims_unique_across_replacement)
{
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "claims: 2 }\n"));
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "claims: 2, tag: v2 }\n"));
    probe_record *pool = rec(scaler_stats, "pool");
    ck_assert_int_eq(pool->nclaimed, 4);
    ck_assert_int_eq(pool->claimed[0], 0);
    ck_assert_int_eq(pool->claimed[1], 1);
    ck_assert_int_eq(pool->claimed[2], 2); /* 0 and 1 were still held by the old instance */
    ck_assert_int_eq(pool->claimed[3], 3);
    settle(); /* the old one is destroyed: its indexes are free again */
    load_ok(write_file("p.yaml", "scalers:\n  - { id: pool, type: probe_scaler, max: 3, "
                                 "claims: 1, tag: v3 }\n"));
    ck_assert_int_eq(pool->claimed[4], 0);
}
END_TEST

/* A plugin thread that keeps publishing after stop() returned is refused with -ESHUTDOWN. */
START_TEST(test_publish_after_stop_refused)
{
    load_ok(write_file("p.yaml", "triggers:\n  - { id: busy, type: probe_trigger, publisher: "
                                 "true }\n"));
    for (int i = 0; i < 50; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    int done = 0;
    daemon_stop(d, stopped, &done);
    for (int i = 0; i < 100000 && !done; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    ck_assert_int_eq(done, 1);
    probe_record *b = rec(trig_stats, "busy");
    ck_assert_int_eq(b->destroys, 1);
    ck_assert_int_eq(b->refused_after_stop, 1);
    ck_assert_int_eq(b->publish_rc_after_stop, -ESHUTDOWN);
    stopped_by_test = 1;
}
END_TEST

/* A reading carrying a JSON payload {"n": n} (the bus takes the payload over). */
static void reading_with_payload(const char *trigger, double n)
{
    cJSON *payload = cJSON_CreateObject();
    ck_assert_ptr_nonnull(payload);
    ck_assert_ptr_nonnull(cJSON_AddNumberToObject(payload, "n", n));
    sb_publish p = {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = n, .payload = payload};
    ck_assert_int_eq(daemon_inject(d, trigger, &p), 0);
    daemon_flush(d);
}

/* cJSON blocks allocated and not yet freed, while counting_hooks() are in place: payloads are
 * freed once nobody holds them, not only when the daemon goes. */
static long cjson_live;

static void *counting_malloc(size_t n)
{
    void *p = malloc(n);
    cjson_live += p != NULL;
    return p;
}

static void counting_free(void *p)
{
    cjson_live -= p != NULL;
    free(p);
}

/* payload_retain keeps a payload alive after the delivery that brought it (the bus lets go of it
 * then); the probe reads each one at the next event and releases it, and from then on it is
 * freed: one payload alive at a time, none once the last is released. (A payload freed too
 * early is a use after free that the ASan and valgrind runs of this test report.) */
START_TEST(test_payload_retained_beyond_callback)
{
    cJSON_Hooks hooks = {counting_malloc, counting_free};
    cJSON_InitHooks(&hooks);
    load_ok(write_file("p.yaml", "triggers:\n"
                                 "  - { id: watcher, type: probe_trigger, subscribe_to: src, "
                                 "retain: true }\n"
                                 "  - { id: src, type: probe_trigger }\n"));
    probe_record *w = rec(trig_stats, "watcher");
    long base = cjson_live;
    reading_with_payload("src", 1);
    ck_assert_int_eq(w->sub_events, 1);
    ck_assert_int_eq(w->retain_same, 1);
    ck_assert_int_eq(w->nheld, 0);
    long one = cjson_live - base; /* the payload the probe holds */
    ck_assert_int_gt(one, 0);
    reading_with_payload("src", 2);
    ck_assert_int_eq(cjson_live - base, one); /* the first was freed once released */
    reading_with_payload("src", 3);
    ck_assert_int_eq(cjson_live - base, one);
    ck_assert_int_eq(w->sub_events, 3);
    ck_assert_int_eq(w->nheld, 2);
    ck_assert(w->held[0] == 1 && w->held[1] == 2);
    reading("src", 4, NULL); /* no payload: the last one is read and released */
    ck_assert_int_eq(w->nheld, 3);
    ck_assert(w->held[2] == 3);
    ck_assert_int_eq(cjson_live, base);
    cJSON_InitHooks(NULL);
}
END_TEST

/* The real target.so between two probes: readings go up, then down; the scale-down is held by
 * stabilize_down. A reload that changes another component keeps the policy, and with it its
 * window: the scale-down is still held. A reload that changes the policy's own options starts a
 * new one, whose window is empty. */
static const char *policy_file(const char *trigger_tag, const char *window)
{
    static char text[512];
    snprintf(text, sizeof text,
             "triggers:\n"
             "  - { id: q, type: probe_trigger, tag: %s }\n"
             "connectors:\n"
             "  - { id: per-two, type: target, from: q, to: pool, per_instance: 2, "
             "stabilize_down: %s }\n"
             "scalers:\n"
             "  - { id: pool, type: probe_scaler, min: 0, max: 10 }\n",
             trigger_tag, window);
    return write_file("p.yaml", text);
}

static void assert_last_decision(const probe_record *pool, double value, const char *reason)
{
    ck_assert_int_gt(pool->nvalues, 0);
    ck_assert_msg(pool->values[pool->nvalues - 1] == value, "desired %g, expected %g",
                  pool->values[pool->nvalues - 1], value);
    ck_assert_str_eq(pool->last_reason, reason);
}

START_TEST(test_reload_keeps_policy_windows)
{
    load_ok(policy_file("a", "1h"));
    probe_record *pool = rec(scaler_stats, "pool");
    reading("q", 8, NULL);
    assert_last_decision(pool, 4, "q=8 per_instance=2 -> 4");
    reading("q", 2, NULL);
    assert_last_decision(pool, 4, "q=2 per_instance=2 -> 1; stabilize_down 3600s: highest 4 -> 4");

    /* The trigger changes (replaced); the policy is kept, and so is its window. */
    load_ok(policy_file("b", "1h"));
    settle();
    ck_assert_int_eq(rec(trig_stats, "q")->creates, 2);
    int before = pool->nvalues;
    reading("q", 2, NULL);
    ck_assert_int_eq(pool->nvalues, before + 1);
    assert_last_decision(pool, 4, "q=2 per_instance=2 -> 1; stabilize_down 3600s: highest 4 -> 4");

    /* The policy's own options change: a new policy, an empty window, the scale-down at once. */
    load_ok(policy_file("b", "2h"));
    settle();
    reading("q", 2, NULL);
    assert_last_decision(pool, 1, "q=2 per_instance=2 -> 1");
}
END_TEST

static Suite *daemon_suite(void)
{
    Suite *s = suite_create("daemon");
    TCase *tc = tcase_create("wiring");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_scalers_start_at_min);
    tcase_add_test(tc, test_match_routes_by_label);
    tcase_add_test(tc, test_fan_in_fan_out);
    tcase_add_test(tc, test_connector_to_trigger_runs_it);
    tcase_add_test(tc, test_desired_rounded_up_and_clamped);
    tcase_add_test(tc, test_reload_keeps_unchanged_and_replaces_changed);
    tcase_add_test(tc, test_broken_reload_changes_nothing);
    tcase_add_test(tc, test_stop_delivers_queued_events);
    tcase_add_test(tc, test_stats_count_events);
    tcase_add_test(tc, test_reload_applies_bounds_in_place);
    tcase_add_test(tc, test_reload_edges_in_place);
    tcase_add_test(tc, test_reload_reconfigures_in_place);
    tcase_add_test(tc, test_failed_start_keeps_old_running);
    tcase_add_test(tc, test_subscription_follows_id);
    tcase_add_test(tc, test_subscribe_unknown_id_refused);
    tcase_add_test(tc, test_new_subscriber_hears_last_instances);
    tcase_add_test(tc, test_index_claims_unique_across_replacement);
    tcase_add_test(tc, test_publish_after_stop_refused);
    tcase_add_test(tc, test_payload_retained_beyond_callback);
    tcase_add_test(tc, test_reload_keeps_policy_windows);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(daemon_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
