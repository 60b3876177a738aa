/*
 * test_bus.c - the event bus: delivery and per-publisher order, topic filters, coalescing of
 * readings, counted drops when full, publishing from other threads, payload sharing and
 * reference counts, and unsubscribing while an event is being dispatched. Then what must hold
 * under concurrency (scripts/test.sh also runs this file under ThreadSanitizer): coalescing racing
 * delivery, short-lived publishing threads and their rings, a thread outliving a bus, any number
 * of topics, and a coalescing map that stays bounded. Source numbers: reused after reloads, and
 * a removed source's number names no one, queued events and late publishers included.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "bus.h"

typedef struct seen {
    double values[20000];
    char sources[20000][16];
    char label[20000][16];
    size_t n;
    const cJSON *payloads[16];
    size_t npayloads;
} seen;

static void record(void *arg, const sb_event *ev)
{
    seen *s = arg;
    if (s->n < 20000) {
        s->values[s->n] = ev->value;
        snprintf(s->sources[s->n], sizeof s->sources[0], "%s", ev->source_id);
        snprintf(s->label[s->n], sizeof s->label[0], "%s", ev->nlabels ? ev->labels[0].value : "");
        s->n++;
    }
    if (ev->payload && s->npayloads < 16)
        s->payloads[s->npayloads++] = ev->payload;
}

static void run_until_idle(uv_loop_t *loop, bus *b)
{
    bus_stats st;
    for (int i = 0; i < 1000; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        bus_get_stats(b, &st);
        if (st.queued == 0)
            break;
    }
}

static void close_bus(uv_loop_t *loop, bus *b)
{
    bus_close(b);
    uv_run(loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(loop), 0);
}

START_TEST(test_delivery_in_order_per_publisher)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 1024);
    ck_assert_ptr_nonnull(b);
    uint32_t a = bus_source_add(b, "a"), c = bus_source_add(b, "c");
    static seen s;
    memset(&s, 0, sizeof s);
    ck_assert_int_gt(bus_subscribe(b, a, NULL, record, &s), 0);
    ck_assert_int_gt(bus_subscribe(b, c, NULL, record, &s), 0);
    for (int i = 0; i < 100; i++) {
        sb_publish p = {.topic = SB_TOPIC_READING, .value = i};
        ck_assert_int_eq(bus_publish(b, (i % 2) ? c : a, &p), 0);
    }
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 100);
    double last_a = -1, last_c = -1;
    for (size_t i = 0; i < s.n; i++) {
        double *last = strcmp(s.sources[i], "a") == 0 ? &last_a : &last_c;
        ck_assert(s.values[i] > *last);
        *last = s.values[i];
    }
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.published, 100);
    ck_assert_uint_eq(st.delivered, 100);
    ck_assert_uint_eq(st.dropped, 0);
    close_bus(&loop, b);
}
END_TEST

START_TEST(test_topic_filter)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    uint32_t a = bus_source_add(b, "a");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, a, SB_TOPIC_DESIRED, record, &s);
    sb_publish r = {.topic = SB_TOPIC_READING, .value = 1};
    sb_publish d = {.topic = SB_TOPIC_DESIRED, .value = 2};
    bus_publish(b, a, &r);
    bus_publish(b, a, &d);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 1);
    ck_assert(s.values[0] == 2);
    close_bus(&loop, b);
}
END_TEST

/* The one observer (the admin's view): it sees every event of the sources marked with
 * bus_observe, with the arg given there, after the source's own subscribers; an unmarked source's
 * events never reach it. */
static char observed_order[64];
static void *observed_arg;
static void order_subscriber(void *arg, const sb_event *ev)
{
    (void)arg;
    size_t n = strlen(observed_order);
    if (n + 2 < sizeof observed_order)
        snprintf(observed_order + n, sizeof observed_order - n, "s%d", (int)ev->value);
}
static void order_observer(void *arg, const sb_event *ev)
{
    observed_arg = arg;
    size_t n = strlen(observed_order);
    if (n + 2 < sizeof observed_order)
        snprintf(observed_order + n, sizeof observed_order - n, "o%d", (int)ev->value);
}

START_TEST(test_observer_sees_marked_sources_after_subscribers)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    bus_set_observer(b, order_observer);
    uint32_t a = bus_source_add(b, "a"), c = bus_source_add(b, "c");
    static int mark_a;
    observed_order[0] = '\0';
    ck_assert_int_gt(bus_subscribe(b, a, NULL, order_subscriber, NULL), 0);
    sb_publish p1 = {.topic = SB_TOPIC_READING, .value = 1};
    bus_publish(b, a, &p1); /* not marked yet: the subscriber only */
    run_until_idle(&loop, b);
    ck_assert_str_eq(observed_order, "s1");
    ck_assert_int_eq(bus_observe(b, a, &mark_a), 0);
    ck_assert_int_eq(bus_observe(b, 9999, &mark_a), -ENOENT);
    sb_publish p2 = {.topic = SB_TOPIC_READING, .value = 2};
    sb_publish p3 = {.topic = SB_TOPIC_DESIRED, .value = 3};
    sb_publish p4 = {.topic = SB_TOPIC_READING, .value = 4};
    bus_publish(b, a, &p2);
    bus_publish(b, a, &p3);
    bus_publish(b, c, &p4); /* c is not marked */
    run_until_idle(&loop, b);
    ck_assert_str_eq(observed_order, "s1s2o2s3o3");
    ck_assert_ptr_eq(observed_arg, &mark_a);
    close_bus(&loop, b);
}
END_TEST

START_TEST(test_coalescing_keeps_latest_per_label_set)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    uint32_t a = bus_source_add(b, "queues");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, a, NULL, record, &s);
    /* The loop does not run between publishes: a slow consumer. */
    for (int i = 0; i < 1000; i++) {
        sb_label lx = {"queue", "build-x"}, ly = {"queue", "build-y"};
        sb_publish px = {.topic = SB_TOPIC_READING,
                         .flags = SB_EVENT_COALESCE,
                         .value = i,
                         .labels = &lx,
                         .nlabels = 1};
        sb_publish py = {.topic = SB_TOPIC_READING,
                         .flags = SB_EVENT_COALESCE,
                         .value = -i,
                         .labels = &ly,
                         .nlabels = 1};
        ck_assert_int_eq(bus_publish(b, a, &px), 0);
        ck_assert_int_eq(bus_publish(b, a, &py), 0);
    }
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.queued, 2);
    ck_assert_uint_eq(st.coalesced, 1998);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 2);
    /* Each label set arrives once, with its newest value, in first-publish order. */
    ck_assert_str_eq(s.label[0], "build-x");
    ck_assert(s.values[0] == 999);
    ck_assert_str_eq(s.label[1], "build-y");
    ck_assert(s.values[1] == -999);
    /* After delivery a new reading is queued again, not merged into a delivered one. */
    sb_label lx = {"queue", "build-x"};
    sb_publish px = {.topic = SB_TOPIC_READING,
                     .flags = SB_EVENT_COALESCE,
                     .value = 5,
                     .labels = &lx,
                     .nlabels = 1};
    bus_publish(b, a, &px);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 3);
    ck_assert(s.values[2] == 5);
    close_bus(&loop, b);
}
END_TEST

START_TEST(test_full_queue_drops_and_counts)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 16);
    uint32_t a = bus_source_add(b, "a");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, a, NULL, record, &s);
    int refused = 0;
    for (int i = 0; i < 15; i++) {
        sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = i};
        ck_assert_int_eq(bus_publish(b, a, &p), 0);
    }
    sb_publish reading = {.topic = SB_TOPIC_READING, .flags = SB_EVENT_COALESCE, .value = 100};
    ck_assert_int_eq(bus_publish(b, a, &reading), 0);
    for (int i = 0; i < 24; i++) {
        sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = 50 + i};
        if (bus_publish(b, a, &p) == -ENOBUFS)
            refused++;
    }
    ck_assert_int_eq(refused, 24);
    /* A reading still lands on a full queue when it replaces a waiting one. */
    reading.value = 101;
    ck_assert_int_eq(bus_publish(b, a, &reading), 0);
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.dropped, 24);
    ck_assert_uint_eq(st.coalesced, 1);
    ck_assert_uint_eq(st.queued, 16);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 16);
    ck_assert(s.values[14] == 14);
    ck_assert(s.values[15] == 101);
    close_bus(&loop, b);
}
END_TEST

typedef struct thread_arg {
    bus *b;
    uint32_t source;
    int count;
} thread_arg;

static void publisher_thread(void *arg)
{
    thread_arg *t = arg;
    for (int i = 0; i < t->count; i++) {
        sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = i};
        while (bus_publish(t->b, t->source, &p) == -ENOBUFS)
            uv_sleep(1);
    }
}

typedef struct order_check {
    double last[3];
    size_t n;
    int out_of_order;
    uint32_t first_source;
} order_check;

static void check_order(void *arg, const sb_event *ev)
{
    order_check *o = arg;
    size_t k = ev->source - o->first_source;
    if (ev->value <= o->last[k])
        o->out_of_order++;
    o->last[k] = ev->value;
    o->n++;
}

static void stop_when_done(uv_timer_t *h)
{
    order_check *o = h->data;
    if (o->n == 3 * 5000)
        uv_stop(h->loop);
}

START_TEST(test_publish_from_other_threads)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 1024);
    order_check o = {.last = {-1, -1, -1}};
    thread_arg args[3];
    uv_thread_t th[3];
    static const char *const names[3] = {"t0", "t1", "t2"}; /* outlive their sources */
    for (int i = 0; i < 3; i++) {
        args[i] = (thread_arg){b, bus_source_add(b, names[i]), 5000};
        if (i == 0)
            o.first_source = args[i].source;
        bus_subscribe(b, args[i].source, NULL, check_order, &o);
    }
    for (int i = 0; i < 3; i++)
        uv_thread_create(&th[i], publisher_thread, &args[i]);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &o;
    uv_timer_start(&t, stop_when_done, 1, 1);
    /* Bounded: the timer stops the loop once all arrived; a hang fails on the test timeout. */
    uv_run(&loop, UV_RUN_DEFAULT);
    for (int i = 0; i < 3; i++)
        uv_thread_join(&th[i]);
    ck_assert_uint_eq(o.n, 15000);
    ck_assert_int_eq(o.out_of_order, 0);
    uv_close((uv_handle_t *)&t, NULL);
    close_bus(&loop, b);
}
END_TEST

static seen *retain_target;
static bus *retain_bus;
static const cJSON *retained;

static void retain_payload(void *arg, const sb_event *ev)
{
    record(arg, ev);
    if (!retained)
        retained = bus_payload_retain(retain_bus, ev->payload);
}

START_TEST(test_payload_shared_and_refcounted)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    retain_bus = b;
    retained = NULL;
    uint32_t a = bus_source_add(b, "scaler");
    static seen s1, s2;
    memset(&s1, 0, sizeof s1);
    memset(&s2, 0, sizeof s2);
    retain_target = &s1;
    bus_subscribe(b, a, SB_TOPIC_INSTANCES, retain_payload, &s1);
    bus_subscribe(b, a, SB_TOPIC_INSTANCES, record, &s2);
    cJSON *list = cJSON_CreateArray();
    cJSON_AddItemToArray(list, cJSON_CreateNumber(42));
    sb_publish p = {.topic = SB_TOPIC_INSTANCES, .value = 1, .payload = list};
    ck_assert_int_eq(bus_publish(b, a, &p), 0);
    run_until_idle(&loop, b);
    /* Both subscribers saw the very same object: nothing was copied or re-serialised. */
    ck_assert_uint_eq(s1.npayloads, 1);
    ck_assert_uint_eq(s2.npayloads, 1);
    ck_assert_ptr_eq(s1.payloads[0], list);
    ck_assert_ptr_eq(s2.payloads[0], list);
    /* Retained beyond the callback: still valid (valgrind/ASan would flag a use after free). */
    ck_assert_ptr_eq(retained, list);
    ck_assert(cJSON_GetArrayItem(retained, 0)->valuedouble == 42);
    bus_payload_release(b, retained);
    close_bus(&loop, b);
}
END_TEST

static int64_t self_sub;
static uint32_t self_src;
static bus *self_bus;

static void unsubscribe_self(void *arg, const sb_event *ev)
{
    record(arg, ev);
    bus_unsubscribe(self_bus, self_src, self_sub);
}

START_TEST(test_unsubscribe_during_dispatch)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    self_bus = b;
    self_src = bus_source_add(b, "a");
    static seen once, always;
    memset(&once, 0, sizeof once);
    memset(&always, 0, sizeof always);
    self_sub = bus_subscribe(b, self_src, NULL, unsubscribe_self, &once);
    bus_subscribe(b, self_src, NULL, record, &always);
    for (int i = 0; i < 3; i++) {
        sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = i};
        bus_publish(b, self_src, &p);
    }
    run_until_idle(&loop, b);
    ck_assert_uint_eq(once.n, 1);
    ck_assert_uint_eq(always.n, 3);
    /* A removed source's queued events reach no one. */
    sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = 9};
    bus_publish(b, self_src, &p);
    bus_source_remove(b, self_src);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(always.n, 3);
    close_bus(&loop, b);
}
END_TEST

START_TEST(test_labels_copied_at_publish)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    uint32_t a = bus_source_add(b, "a");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, a, NULL, record, &s);
    char value[16] = "first";
    sb_label l = {"queue", value};
    sb_publish p = {.topic = SB_TOPIC_READING, .value = 1, .labels = &l, .nlabels = 1};
    bus_publish(b, a, &p);
    strcpy(value, "changed"); /* the publisher's buffer is its own again */
    run_until_idle(&loop, b);
    ck_assert_str_eq(s.label[0], "first");
    ck_assert_int_eq(bus_publish(b, a, &(sb_publish){.topic = NULL}), -EINVAL);
    close_bus(&loop, b);
}
END_TEST

typedef struct flood_arg {
    bus *b;
    uint32_t source;
    int refused;
} flood_arg;

static void flood_thread(void *arg)
{
    flood_arg *f = arg;
    for (int i = 0; i < 100; i++) {
        sb_publish p = {.topic = SB_TOPIC_READING, .value = i};
        if (bus_publish(f->b, f->source, &p) == -ENOBUFS)
            f->refused++;
    }
}

/* A flood from another thread fills that thread's ring only: the loop thread can still publish
 * (a connector's decision is never crowded out by readings). */
START_TEST(test_flood_from_thread_leaves_loop_room)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 16);
    uint32_t t = bus_source_add(b, "trigger"), c = bus_source_add(b, "connector");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, c, NULL, record, &s);
    flood_arg f = {b, t, 0};
    uv_thread_t th;
    uv_thread_create(&th, flood_thread, &f);
    uv_thread_join(&th);
    ck_assert_int_eq(f.refused, 100 - 16);
    sb_publish d = {.topic = SB_TOPIC_DESIRED, .value = 7};
    ck_assert_int_eq(bus_publish(b, c, &d), 0);
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.dropped, 84);
    ck_assert_uint_eq(st.queued, 17);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 1);
    ck_assert(s.values[0] == 7);
    close_bus(&loop, b);
}
END_TEST

/* Coalescing works for readings published from another thread too. */
static void coalesce_thread(void *arg)
{
    flood_arg *f = arg;
    sb_label l = {"queue", "jobs"};
    for (int i = 0; i <= 500; i++) {
        sb_publish p = {.topic = SB_TOPIC_READING,
                        .flags = SB_EVENT_COALESCE,
                        .value = i,
                        .labels = &l,
                        .nlabels = 1};
        if (bus_publish(f->b, f->source, &p) != 0)
            f->refused++;
    }
}

START_TEST(test_coalescing_from_thread)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 16);
    uint32_t t = bus_source_add(b, "trigger");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, t, NULL, record, &s);
    flood_arg f = {b, t, 0};
    uv_thread_t th;
    uv_thread_create(&th, coalesce_thread, &f);
    uv_thread_join(&th);
    ck_assert_int_eq(f.refused, 0);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 1);
    ck_assert(s.values[0] == 500);
    close_bus(&loop, b);
}
END_TEST

/* ---- coalescing against delivery ------------------------------------------------------------ */

static bus *kick_bus;
static uint32_t kick_target;

/* Publishes a coalescible reading {queue=a} with the kick's value on the loop thread. */
static void kick_republish(void *arg, const sb_event *ev)
{
    (void)arg;
    sb_label l = {"queue", "a"};
    sb_publish p = {.topic = SB_TOPIC_READING,
                    .flags = SB_EVENT_COALESCE,
                    .value = ev->value,
                    .labels = &l,
                    .nlabels = 1};
    ck_assert_int_eq(bus_publish(kick_bus, kick_target, &p), 0);
}

/* A reading with the key of one delivered earlier in the same drain (its labels released, the
 * ring's head not handed back yet) is queued anew, never merged into the delivered slot. */
START_TEST(test_coalesce_after_delivery_in_same_drain)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    kick_bus = b;
    kick_target = bus_source_add(b, "trigger");
    uint32_t kick = bus_source_add(b, "kick");
    static seen s;
    memset(&s, 0, sizeof s);
    bus_subscribe(b, kick_target, NULL, record, &s);
    bus_subscribe(b, kick, NULL, kick_republish, NULL);
    sb_label l = {"queue", "a"};
    sb_publish r = {.topic = SB_TOPIC_READING,
                    .flags = SB_EVENT_COALESCE,
                    .value = 1,
                    .labels = &l,
                    .nlabels = 1};
    ck_assert_int_eq(bus_publish(b, kick_target, &r), 0);
    sb_publish k = {.topic = SB_TOPIC_RUN, .value = 2};
    ck_assert_int_eq(bus_publish(b, kick, &k), 0);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(s.n, 2);
    ck_assert(s.values[0] == 1);
    ck_assert(s.values[1] == 2);
    ck_assert_str_eq(s.label[1], "a");
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.published, 3);
    ck_assert_uint_eq(st.delivered, 3);
    ck_assert_uint_eq(st.coalesced, 0);
    close_bus(&loop, b);
}
END_TEST

/* Two label sets: one small enough to live in the slot, one in a heap block. */
#define STRESS_DETAIL                                                                              \
    "a label value long enough that the label block no longer fits in the slot and is allocated "  \
    "on the heap at publish and freed at delivery"

static const sb_label stress_labels[2][2] = {
    {{"queue", "a"}, {NULL, NULL}},
    {{"queue", "b"}, {"detail", STRESS_DETAIL}},
};
static const size_t stress_nlabels[2] = {1, 2};

typedef struct stress {
    bus *b;
    uint32_t trigger, echo;
    _Atomic int stop;
    _Atomic uint64_t produced; /* the newest value the thread is publishing */
    /* the publishing thread's own */
    uint64_t accepted, refused, failed;
    double last_accepted[2];
    /* the loop thread's own */
    uint64_t delivered[2]; /* trigger, echo */
    uint64_t echo_accepted, echo_refused, echo_failed;
    double last_seen[2][2]; /* [trigger|echo][label set] */
    double last_echoed[2];
    uint64_t bad_labels, bad_values, bad_order, bad_size;
} stress;

/* Which of the two label sets the event carries exactly; -1 for anything else. */
static int stress_set(const sb_event *ev)
{
    for (int k = 0; k < 2; k++) {
        if (ev->nlabels != stress_nlabels[k])
            continue;
        size_t i = 0;
        while (i < ev->nlabels && strcmp(ev->labels[i].key, stress_labels[k][i].key) == 0 &&
               strcmp(ev->labels[i].value, stress_labels[k][i].value) == 0)
            i++;
        if (i == ev->nlabels)
            return k;
    }
    return -1;
}

static void stress_check(stress *st, int which, const sb_event *ev)
{
    st->delivered[which]++;
    if (ev->size != sizeof(sb_event))
        st->bad_size++;
    int k = stress_set(ev);
    if (k < 0) {
        st->bad_labels++;
        return;
    }
    /* Values are 1, 2, 3, ... with odd ones on set 1: a value that was really published. */
    double v = ev->value;
    uint64_t produced = atomic_load_explicit(&st->produced, memory_order_acquire);
    if (v < 1 || v > (double)produced || v != (double)(uint64_t)v ||
        ((uint64_t)v & 1) != (uint64_t)k)
        st->bad_values++;
    /* One publishing thread: each set's values arrive in increasing order. */
    if (v <= st->last_seen[which][k])
        st->bad_order++;
    st->last_seen[which][k] = v;
}

static void stress_on_trigger(void *arg, const sb_event *ev)
{
    stress *st = arg;
    stress_check(st, 0, ev);
    int k = stress_set(ev);
    if (k < 0)
        return;
    /* A connector's answer on the loop thread: coalescible, same labels, same value. */
    sb_publish p = {.topic = SB_TOPIC_READING,
                    .flags = SB_EVENT_COALESCE,
                    .value = ev->value,
                    .labels = stress_labels[k],
                    .nlabels = stress_nlabels[k]};
    int rc = bus_publish(st->b, st->echo, &p);
    if (rc == 0) {
        st->echo_accepted++;
        st->last_echoed[k] = ev->value;
    } else if (rc == -ENOBUFS) {
        st->echo_refused++;
    } else {
        st->echo_failed++;
    }
}

static void stress_on_echo(void *arg, const sb_event *ev)
{
    stress_check(arg, 1, ev);
}

static void stress_thread(void *arg)
{
    stress *st = arg;
    for (uint64_t i = 1; !atomic_load_explicit(&st->stop, memory_order_relaxed); i++) {
        int k = (int)(i & 1);
        atomic_store_explicit(&st->produced, i, memory_order_release);
        sb_publish p = {.topic = SB_TOPIC_READING,
                        .flags = SB_EVENT_COALESCE,
                        .value = (double)i,
                        .labels = stress_labels[k],
                        .nlabels = stress_nlabels[k]};
        int rc = bus_publish(st->b, st->trigger, &p);
        if (rc == 0) {
            st->accepted++;
            st->last_accepted[k] = (double)i;
        } else if (rc == -ENOBUFS) {
            st->refused++;
        } else {
            st->failed++;
        }
    }
}

static void stress_stop(uv_timer_t *t)
{
    stress *st = t->data;
    atomic_store(&st->stop, 1);
    uv_stop(t->loop);
}

/* A plugin thread publishing labelled readings as fast as it can while the loop delivers them and
 * a subscriber publishes on the loop thread: no crash, only published label sets and values, the
 * newest value of each set delivered, and the counters add up. */
START_TEST(test_coalescing_race_with_delivery)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    static stress st;
    memset(&st, 0, sizeof st);
    st.b = bus_new(&loop, 1024);
    st.trigger = bus_source_add(st.b, "trigger");
    st.echo = bus_source_add(st.b, "echo");
    bus_subscribe(st.b, st.trigger, NULL, stress_on_trigger, &st);
    bus_subscribe(st.b, st.echo, NULL, stress_on_echo, &st);
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &st;
    uv_timer_start(&t, stress_stop, 2000, 0);
    uv_thread_t th;
    uv_thread_create(&th, stress_thread, &st);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_thread_join(&th);
    bus_flush(st.b);

    ck_assert_uint_eq(st.bad_labels, 0);
    ck_assert_uint_eq(st.bad_values, 0);
    ck_assert_uint_eq(st.bad_order, 0);
    ck_assert_uint_eq(st.bad_size, 0);
    ck_assert_uint_eq(st.failed, 0);
    ck_assert_uint_eq(st.echo_failed, 0);
    ck_assert_uint_gt(st.accepted, 0);
    /* The newest reading of each set is never lost: it is what arrived last. */
    for (int k = 0; k < 2; k++) {
        ck_assert(st.last_seen[0][k] == st.last_accepted[k]);
        ck_assert(st.last_seen[1][k] == st.last_echoed[k]);
    }
    bus_stats bs;
    bus_get_stats(st.b, &bs);
    ck_assert_uint_eq(bs.queued, 0);
    ck_assert_uint_eq(bs.published, st.accepted + st.echo_accepted);
    ck_assert_uint_eq(bs.dropped, st.refused + st.echo_refused);
    ck_assert_uint_eq(bs.delivered, st.delivered[0] + st.delivered[1]);
    ck_assert_uint_eq(bs.published, bs.delivered + bs.coalesced + bs.queued);
    uv_close((uv_handle_t *)&t, NULL);
    close_bus(&loop, st.b);
}
END_TEST

/* ---- publishing threads ---------------------------------------------------------------------- */

typedef struct short_lived {
    bus *b;
    uint32_t source;
    int index;
    int failed;
    uv_barrier_t *together; /* when set: stay alive until every thread of the wave has published */
} short_lived;

static void short_lived_thread(void *arg)
{
    short_lived *t = arg;
    for (int i = 0; i < 5; i++) {
        sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = t->index * 10 + i};
        if (bus_publish(t->b, t->source, &p) != 0)
            t->failed++;
    }
    if (t->together)
        uv_barrier_wait(t->together);
}

typedef struct per_thread_count {
    int events[1300];
    int out_of_order;
    size_t n;
} per_thread_count;

static void count_per_thread(void *arg, const sb_event *ev)
{
    per_thread_count *c = arg;
    int index = (int)ev->value / 10, i = (int)ev->value % 10;
    if (index < 0 || index >= 1300 || c->events[index] != i)
        c->out_of_order++;
    else
        c->events[index]++;
    c->n++;
}

/* Runs `count` threads (numbered from first) one after another, or all alive at once. */
static void run_threads(uv_loop_t *loop, bus *b, uint32_t source, int first, int count, int at_once)
{
    static short_lived args[300];
    static uv_thread_t th[300];
    uv_barrier_t together;
    if (at_once)
        ck_assert_int_eq(uv_barrier_init(&together, (unsigned)count + 1), 0);
    ck_assert_int_le(at_once ? count : 0, 300);
    for (int i = 0; i < count; i++) {
        int k = at_once ? i : 0;
        args[k] = (short_lived){b, source, first + i, 0, at_once ? &together : NULL};
        ck_assert_int_eq(uv_thread_create(&th[k], short_lived_thread, &args[k]), 0);
        if (!at_once) {
            uv_thread_join(&th[k]);
            ck_assert_int_eq(args[k].failed, 0);
            run_until_idle(loop, b);
        }
    }
    if (at_once) {
        uv_barrier_wait(&together);
        for (int i = 0; i < count; i++) {
            uv_thread_join(&th[i]);
            ck_assert_int_eq(args[i].failed, 0);
        }
        uv_barrier_destroy(&together);
        run_until_idle(loop, b);
    }
}

/* 1300 short-lived publishing threads, 300 of them alive at once twice: every event arrives, and
 * a ring is reused once its thread has exited, so the bus never holds more rings than threads
 * publishing at the same time (plus the loop thread's). */
START_TEST(test_short_lived_threads_reuse_rings)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    uint32_t src = bus_source_add(b, "threads");
    static per_thread_count c;
    memset(&c, 0, sizeof c);
    bus_subscribe(b, src, NULL, count_per_thread, &c);
    bus_stats st;

    run_threads(&loop, b, src, 0, 700, 0);
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.rings, 2);

    run_threads(&loop, b, src, 700, 300, 1);
    bus_get_stats(b, &st);
    ck_assert_uint_le(st.rings, 301);
    ck_assert_uint_ge(st.rings, 2);

    run_threads(&loop, b, src, 1000, 300, 1);
    bus_get_stats(b, &st);
    ck_assert_uint_le(st.rings, 301);

    ck_assert_int_eq(c.out_of_order, 0);
    ck_assert_uint_eq(c.n, 1300 * 5);
    for (int i = 0; i < 1300; i++)
        ck_assert_int_eq(c.events[i], 5);
    ck_assert_uint_eq(st.published, 1300 * 5);
    ck_assert_uint_eq(st.delivered, 1300 * 5);
    ck_assert_uint_eq(st.dropped, 0);
    close_bus(&loop, b);
}
END_TEST

/* A thread's events still waiting when it exits are delivered, also after another thread has
 * taken its ring over and published behind them. */
START_TEST(test_exited_thread_events_delivered)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    uint32_t src = bus_source_add(b, "threads");
    static per_thread_count c;
    memset(&c, 0, sizeof c);
    bus_subscribe(b, src, NULL, count_per_thread, &c);
    for (int i = 0; i < 4; i++) {
        short_lived t = {b, src, i, 0, NULL};
        uv_thread_t th;
        uv_thread_create(&th, short_lived_thread, &t);
        uv_thread_join(&th);
        ck_assert_int_eq(t.failed, 0);
    }
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.rings, 2);
    ck_assert_uint_eq(st.queued, 20);
    run_until_idle(&loop, b);
    ck_assert_int_eq(c.out_of_order, 0);
    ck_assert_uint_eq(c.n, 20);
    close_bus(&loop, b);
}
END_TEST

/* A thread that outlives a bus: its cached ring for the freed bus is neither used nor leaked. */
typedef struct long_lived {
    uv_sem_t go, done;
    bus *b;
    uint32_t source;
    int quit, failed;
} long_lived;

static void long_lived_thread(void *arg)
{
    long_lived *t = arg;
    for (;;) {
        uv_sem_wait(&t->go);
        if (t->quit)
            break;
        for (int i = 0; i < 3; i++) {
            sb_publish p = {.topic = SB_TOPIC_DESIRED, .value = i};
            if (bus_publish(t->b, t->source, &p) != 0)
                t->failed++;
        }
        uv_sem_post(&t->done);
    }
}

START_TEST(test_thread_outlives_bus)
{
    static long_lived t;
    memset(&t, 0, sizeof t);
    uv_sem_init(&t.go, 0);
    uv_sem_init(&t.done, 0);
    uv_thread_t th;
    uv_thread_create(&th, long_lived_thread, &t);
    for (int round = 0; round < 3; round++) {
        uv_loop_t loop;
        uv_loop_init(&loop);
        bus *b = bus_new(&loop, 64);
        uint32_t src = bus_source_add(b, "worker");
        static seen s;
        memset(&s, 0, sizeof s);
        bus_subscribe(b, src, NULL, record, &s);
        t.b = b;
        t.source = src;
        uv_sem_post(&t.go);
        uv_sem_wait(&t.done);
        run_until_idle(&loop, b);
        ck_assert_int_eq(t.failed, 0);
        ck_assert_uint_eq(s.n, 3);
        bus_stats st;
        bus_get_stats(b, &st);
        ck_assert_uint_eq(st.rings, 2);
        ck_assert_uint_eq(st.published, 3);
        /* The last round leaves an event queued in the thread's ring when the bus goes. */
        if (round == 2) {
            t.b = b;
            uv_sem_post(&t.go);
            uv_sem_wait(&t.done);
        }
        close_bus(&loop, b);
    }
    t.quit = 1;
    uv_sem_post(&t.go);
    uv_thread_join(&th);
    uv_sem_destroy(&t.go);
    uv_sem_destroy(&t.done);
}
END_TEST

/* ---- topics ------------------------------------------------------------------------------ */

#define MANY_TOPICS 200

typedef struct topic_sub {
    char name[16];
    int hits, wrong;
} topic_sub;

static void count_topic(void *arg, const sb_event *ev)
{
    topic_sub *t = arg;
    if (strcmp(ev->topic, t->name) != 0 || (int)ev->value != atoi(t->name + 6))
        t->wrong++;
    t->hits++;
}

typedef struct topics_arg {
    bus *b;
    uint32_t source;
    int failed;
} topics_arg;

static void publish_every_topic(bus *b, uint32_t source, int *failed)
{
    for (int i = 0; i < MANY_TOPICS; i++) {
        char topic[16]; /* a fresh buffer: interned by content, not by pointer */
        snprintf(topic, sizeof topic, "topic-%03d", i);
        sb_publish p = {.topic = topic, .value = i};
        if (bus_publish(b, source, &p) != 0)
            (*failed)++;
    }
}

static void topics_thread(void *arg)
{
    topics_arg *t = arg;
    publish_every_topic(t->b, t->source, &t->failed);
}

/* 200 distinct topics, each subscribed and published from the loop thread and another thread:
 * each subscriber hears exactly its own topic's events. */
START_TEST(test_many_topics)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 1024);
    uint32_t src = bus_source_add(b, "topics");
    static topic_sub subs[MANY_TOPICS];
    memset(subs, 0, sizeof subs);
    for (int i = 0; i < MANY_TOPICS; i++) {
        snprintf(subs[i].name, sizeof subs[i].name, "topic-%03d", i);
        ck_assert_int_gt(bus_subscribe(b, src, subs[i].name, count_topic, &subs[i]), 0);
    }
    int failed = 0;
    publish_every_topic(b, src, &failed);
    ck_assert_int_eq(failed, 0);
    topics_arg ta = {b, src, 0};
    uv_thread_t th;
    uv_thread_create(&th, topics_thread, &ta);
    uv_thread_join(&th);
    ck_assert_int_eq(ta.failed, 0);
    run_until_idle(&loop, b);
    for (int i = 0; i < MANY_TOPICS; i++) {
        ck_assert_int_eq(subs[i].hits, 2);
        ck_assert_int_eq(subs[i].wrong, 0);
    }
    close_bus(&loop, b);
}
END_TEST

/* ---- the coalescing map stays bounded ------------------------------------------------------- */

static void count_only(void *arg, const sb_event *ev)
{
    (*(uint64_t *)arg)++;
}

/* 200,000 readings, each with a label set of its own, in batches delivered in between: the
 * coalescing map holds about one batch, not every key ever seen. */
START_TEST(test_coalesce_map_bounded)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 2048);
    uint32_t src = bus_source_add(b, "queues");
    static uint64_t delivered;
    delivered = 0;
    bus_subscribe(b, src, NULL, count_only, &delivered);
    bus_stats st;
    size_t most_keys = 0, most_slots = 0;
    for (int batch = 0; batch < 200; batch++) {
        for (int i = 0; i < 1000; i++) {
            char q[24];
            snprintf(q, sizeof q, "queue-%d", batch * 1000 + i);
            sb_label l = {"queue", q};
            sb_publish p = {.topic = SB_TOPIC_READING,
                            .flags = SB_EVENT_COALESCE,
                            .value = i,
                            .labels = &l,
                            .nlabels = 1};
            ck_assert_int_eq(bus_publish(b, src, &p), 0);
        }
        bus_get_stats(b, &st);
        most_keys = st.coalesce_keys > most_keys ? st.coalesce_keys : most_keys;
        most_slots = st.coalesce_slots > most_slots ? st.coalesce_slots : most_slots;
        run_until_idle(&loop, b);
    }
    ck_assert_uint_eq(delivered, 200000);
    bus_get_stats(b, &st);
    ck_assert_uint_le(most_keys, 4 * 1000);
    ck_assert_uint_le(most_slots, 8 * 1000);
    /* Quiet now, few keys at a time: the map shrinks back. */
    for (int batch = 0; batch < 100; batch++) {
        for (int i = 0; i < 10; i++) {
            char q[24];
            snprintf(q, sizeof q, "small-%d", batch * 10 + i);
            sb_label l = {"queue", q};
            sb_publish p = {.topic = SB_TOPIC_READING,
                            .flags = SB_EVENT_COALESCE,
                            .value = i,
                            .labels = &l,
                            .nlabels = 1};
            ck_assert_int_eq(bus_publish(b, src, &p), 0);
        }
        run_until_idle(&loop, b);
    }
    bus_get_stats(b, &st);
    ck_assert_uint_le(st.coalesce_slots, 256);
    ck_assert_uint_eq(st.published, st.delivered + st.coalesced);
    close_bus(&loop, b);
}
END_TEST

/* ---- labels: in the slot when they fit, on the heap when not ----------------------------- */

/* The label set of a case: n labels k0..k(n-1) whose values are `len` letters (the last value
 * NULL when `null_last`, which arrives as ""). */
static void label_case(int n, int len, int null_last, sb_label *l, char (*k)[16], char (*v)[160])
{
    for (int i = 0; i < n; i++) {
        snprintf(k[i], sizeof k[i], "k%d", i);
        memset(v[i], 'a' + i, (size_t)len);
        v[i][len] = '\0';
        l[i] = (sb_label){k[i], v[i]};
    }
    if (null_last)
        l[n - 1].value = NULL;
}

static void check_labels(void *arg, const sb_event *ev)
{
    int c = (int)ev->value, n = c % 8 + 1, len = c / 16, null_last = (c / 8) % 2;
    sb_label want[8];
    char k[8][16], v[8][160];
    label_case(n, len, null_last, want, k, v);
    ck_assert_uint_eq(ev->nlabels, (size_t)n);
    for (int i = 0; i < n; i++) {
        ck_assert_str_eq(ev->labels[i].key, want[i].key);
        ck_assert_str_eq(ev->labels[i].value, want[i].value ? want[i].value : "");
    }
    ++*(int *)arg;
}

/* Every size around the slot's inline room (96 bytes): exact fits, one byte over, many labels,
 * a NULL value; each arrives whole (ASan and valgrind see any byte written past the slot). */
START_TEST(test_labels_inline_and_heap)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 4096);
    uint32_t a = bus_source_add(b, "a");
    static int got;
    got = 0;
    bus_subscribe(b, a, NULL, check_labels, &got);
    int sent = 0;
    for (int len = 0; len < 150; len++) {
        for (int c = 0; c < 16; c++) {
            int n = c % 8 + 1, null_last = c / 8;
            sb_label l[8];
            char k[8][16], v[8][160];
            label_case(n, len, null_last, l, k, v);
            sb_publish p = {.topic = SB_TOPIC_READING,
                            .value = len * 16 + null_last * 8 + (n - 1),
                            .labels = l,
                            .nlabels = (size_t)n};
            ck_assert_int_eq(bus_publish(b, a, &p), 0);
            memset(v, 'x', sizeof v); /* the publisher's buffers are its own again */
            sent++;
        }
        run_until_idle(&loop, b);
    }
    ck_assert_int_eq(got, sent);
    close_bus(&loop, b);
}
END_TEST

/* ---- source numbers are reused, and a number names one source only ----------------------- */

/* 100 reloads of 1,000 sources, each started before the one it replaces is removed, with an
 * event queued by every old one at its removal: the table holds about what runs at once. */
START_TEST(test_source_numbers_reused)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 4096);
    static const char *const ids[2] = {"old", "new"}; /* outlive their sources */
    static uint32_t src[2][1000];
    static uint64_t delivered;
    delivered = 0;
    bus_stats st;
    size_t most = 0;
    for (int reload = 0; reload < 100; reload++) {
        uint32_t *cur = src[reload % 2], *prev = src[(reload + 1) % 2];
        for (int i = 0; i < 1000; i++) {
            cur[i] = bus_source_add(b, ids[reload % 2]);
            ck_assert_uint_gt(cur[i], 0);
            ck_assert_int_gt(bus_subscribe(b, cur[i], NULL, count_only, &delivered), 0);
        }
        if (reload > 0) {
            for (int i = 0; i < 1000; i++) {
                sb_publish p = {.topic = SB_TOPIC_READING, .value = i};
                ck_assert_int_eq(bus_publish(b, prev[i], &p), 0);
                bus_source_remove(b, prev[i]); /* queued, never delivered */
            }
        }
        for (int i = 0; i < 1000; i++) {
            sb_publish p = {.topic = SB_TOPIC_READING, .value = i};
            ck_assert_int_eq(bus_publish(b, cur[i], &p), 0);
        }
        run_until_idle(&loop, b);
        bus_get_stats(b, &st);
        most = st.sources > most ? st.sources : most;
    }
    ck_assert_uint_eq(delivered, 100 * 1000);
    ck_assert_uint_le(most, 3000); /* never 100,000 */
    for (int i = 0; i < 1000; i++)
        bus_source_remove(b, src[1][i]);
    close_bus(&loop, b);
}
END_TEST

static void record_source(void *arg, const sb_event *ev)
{
    uint32_t *got = arg;
    got[0]++;
    got[1] = ev->source;
}

/* An event a removed source queued reaches no one, even once its table entry serves a new
 * source; the entry is reused only after that event is gone, and a late publish with the old
 * number (a thread that read it before the removal) is dropped. */
START_TEST(test_removed_source_number_names_no_one)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 64);
    static uint32_t got_a[2], got_b[2], got_c[2];
    memset(got_a, 0, sizeof got_a);
    memset(got_b, 0, sizeof got_b);
    memset(got_c, 0, sizeof got_c);
    uint32_t a = bus_source_add(b, "a");
    bus_subscribe(b, a, NULL, record_source, got_a);
    sb_publish p = {.topic = SB_TOPIC_READING, .value = 1};
    ck_assert_int_eq(bus_publish(b, a, &p), 0);
    bus_source_remove(b, a);
    bus_source_remove(b, a); /* twice: ignored */
    /* a's event is still queued: its entry is not reused yet. */
    uint32_t bb = bus_source_add(b, "b");
    ck_assert_uint_ne(bb, a);
    bus_subscribe(b, bb, NULL, record_source, got_b);
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.sources, 2);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(got_a[0], 0);
    ck_assert_uint_eq(got_b[0], 0);
    /* Drained: a's entry serves c, under another number. */
    uint32_t c = bus_source_add(b, "c");
    ck_assert_uint_ne(c, a);
    ck_assert_uint_ne(c, bb);
    bus_get_stats(b, &st);
    ck_assert_uint_eq(st.sources, 2);
    bus_subscribe(b, c, NULL, record_source, got_c);
    ck_assert_int_eq(bus_publish(b, a, &p), 0); /* late, with the old number */
    bus_unsubscribe(b, a, 1);                   /* an old number changes nothing */
    p.value = 2;
    ck_assert_int_eq(bus_publish(b, c, &p), 0);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(got_a[0], 0);
    ck_assert_uint_eq(got_c[0], 1);
    ck_assert_uint_eq(got_c[1], c);
    ck_assert_int_eq(bus_subscribe(b, a, NULL, record_source, got_a), -ENOENT);
    bus_source_remove(b, bb);
    bus_source_remove(b, c);
    close_bus(&loop, b);
}
END_TEST

typedef struct late_publisher {
    bus *b;
    uint32_t source;
    _Atomic int stop;
    _Atomic uint64_t sent;
} late_publisher;

static void late_publisher_thread(void *arg)
{
    late_publisher *lp = arg;
    while (!atomic_load(&lp->stop)) {
        sb_publish p = {.topic = SB_TOPIC_READING, .value = -1};
        if (bus_publish(lp->b, lp->source, &p) == 0)
            atomic_fetch_add(&lp->sent, 1);
        else
            sched_yield(); /* full */
    }
}

static void no_stale_event(void *arg, const sb_event *ev)
{
    uint64_t *n = arg;
    ck_assert_msg(ev->value != -1, "an event of a removed source reached a new one");
    (*n)++;
}

/* A thread keeps publishing with a number while the loop removes its source and reuses the
 * entry for new sources, one after another (ThreadSanitizer runs this too). */
START_TEST(test_source_reuse_with_late_publisher)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    bus *b = bus_new(&loop, 256);
    static late_publisher lp;
    lp.b = b;
    lp.source = bus_source_add(b, "leaving");
    atomic_store(&lp.stop, 0);
    atomic_store(&lp.sent, 0);
    static uint64_t delivered;
    delivered = 0;
    uv_thread_t th;
    ck_assert_int_eq(uv_thread_create(&th, late_publisher_thread, &lp), 0);
    while (atomic_load(&lp.sent) < 1000)
        run_until_idle(&loop, b);
    bus_source_remove(b, lp.source);
    for (int i = 0; i < 100; i++) {
        uint32_t n = bus_source_add(b, "new");
        ck_assert_uint_ne(n, lp.source);
        bus_subscribe(b, n, NULL, no_stale_event, &delivered);
        sb_publish p = {.topic = SB_TOPIC_READING, .value = i};
        ck_assert_int_eq(bus_publish(b, n, &p), 0);
        run_until_idle(&loop, b);
        bus_source_remove(b, n);
        run_until_idle(&loop, b);
    }
    atomic_store(&lp.stop, 1);
    uv_thread_join(&th);
    run_until_idle(&loop, b);
    ck_assert_uint_eq(delivered, 100);
    bus_stats st;
    bus_get_stats(b, &st);
    ck_assert_uint_le(st.sources, 3);
    close_bus(&loop, b);
}
END_TEST

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_delivery_in_order_per_publisher);
    tcase_add_test(tc, test_topic_filter);
    tcase_add_test(tc, test_observer_sees_marked_sources_after_subscribers);
    tcase_add_test(tc, test_coalescing_keeps_latest_per_label_set);
    tcase_add_test(tc, test_full_queue_drops_and_counts);
    tcase_add_test(tc, test_publish_from_other_threads);
    tcase_add_test(tc, test_payload_shared_and_refcounted);
    tcase_add_test(tc, test_unsubscribe_during_dispatch);
    tcase_add_test(tc, test_labels_copied_at_publish);
    tcase_add_test(tc, test_flood_from_thread_leaves_loop_room);
    tcase_add_test(tc, test_coalescing_from_thread);
    tcase_add_test(tc, test_coalesce_after_delivery_in_same_drain);
    tcase_add_test(tc, test_coalescing_race_with_delivery);
    tcase_add_test(tc, test_short_lived_threads_reuse_rings);
    tcase_add_test(tc, test_exited_thread_events_delivered);
    tcase_add_test(tc, test_thread_outlives_bus);
    tcase_add_test(tc, test_many_topics);
    tcase_add_test(tc, test_coalesce_map_bounded);
    tcase_add_test(tc, test_labels_inline_and_heap);
    tcase_add_test(tc, test_source_numbers_reused);
    tcase_add_test(tc, test_removed_source_number_names_no_one);
    tcase_add_test(tc, test_source_reuse_with_late_publisher);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
