/*
 * test_bus.c - the event bus: delivery and per-publisher order, topic filters, coalescing of
 * readings, counted drops when full, publishing from other threads, payload sharing and
 * reference counts, and unsubscribing while an event is being dispatched.
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <cjson/cJSON.h>
#include <errno.h>
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
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        args[i] = (thread_arg){b, bus_source_add(b, name), 5000};
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

static Suite *bus_suite(void)
{
    Suite *s = suite_create("bus");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_delivery_in_order_per_publisher);
    tcase_add_test(tc, test_topic_filter);
    tcase_add_test(tc, test_coalescing_keeps_latest_per_label_set);
    tcase_add_test(tc, test_full_queue_drops_and_counts);
    tcase_add_test(tc, test_publish_from_other_threads);
    tcase_add_test(tc, test_payload_shared_and_refcounted);
    tcase_add_test(tc, test_unsubscribe_during_dispatch);
    tcase_add_test(tc, test_labels_copied_at_publish);
    tcase_add_test(tc, test_flood_from_thread_leaves_loop_room);
    tcase_add_test(tc, test_coalescing_from_thread);
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
