/*
 * bus.c - the event bus (see bus.h for the contract).
 *
 * One ring of event slots guarded by one mutex. Publishers (any thread) copy an event in; the loop
 * thread takes up to BUS_BATCH events per lock and dispatches them outside it, so the lock is held
 * for a few copies at a time. Two small open-addressing maps live beside the ring: coalescing keys
 * (hash of source, topic and labels -> sequence number of the waiting event) and payload reference
 * counts. Subscribers are kept per source in an array indexed by source number.
 */
#define _POSIX_C_SOURCE 200809L
#include "bus.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- a u64 -> u64 map with linear probing and backward-shift deletion ----------------------- */

typedef struct u64map {
    uint64_t *keys; /* 0 means empty; callers never use key 0 */
    uint64_t *vals;
    size_t cap, count;
} u64map;

static size_t u64map_slot(const u64map *m, uint64_t key)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (m->cap - 1);
}

static int u64map_grow(u64map *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *nk = calloc(ncap, sizeof *nk);
    uint64_t *nv = calloc(ncap, sizeof *nv);
    if (!nk || !nv) {
        free(nk);
        free(nv);
        return -ENOMEM;
    }
    u64map old = *m;
    m->keys = nk;
    m->vals = nv;
    m->cap = ncap;
    m->count = 0;
    for (size_t i = 0; i < old.cap; i++) {
        if (!old.keys[i])
            continue;
        size_t s = u64map_slot(m, old.keys[i]);
        while (m->keys[s])
            s = (s + 1) & (m->cap - 1);
        m->keys[s] = old.keys[i];
        m->vals[s] = old.vals[i];
        m->count++;
    }
    free(old.keys);
    free(old.vals);
    return 0;
}

static uint64_t *u64map_find(u64map *m, uint64_t key)
{
    if (!m->cap)
        return NULL;
    for (size_t s = u64map_slot(m, key);; s = (s + 1) & (m->cap - 1)) {
        if (!m->keys[s])
            return NULL;
        if (m->keys[s] == key)
            return &m->vals[s];
    }
}

static int u64map_put(u64map *m, uint64_t key, uint64_t val)
{
    uint64_t *v = u64map_find(m, key);
    if (v) {
        *v = val;
        return 0;
    }
    if ((m->count + 1) * 4 > m->cap * 3 && u64map_grow(m) != 0)
        return -ENOMEM;
    size_t s = u64map_slot(m, key);
    while (m->keys[s])
        s = (s + 1) & (m->cap - 1);
    m->keys[s] = key;
    m->vals[s] = val;
    m->count++;
    return 0;
}

static void u64map_del(u64map *m, uint64_t key)
{
    if (!m->cap)
        return;
    size_t s = u64map_slot(m, key);
    while (m->keys[s] != key) {
        if (!m->keys[s])
            return;
        s = (s + 1) & (m->cap - 1);
    }
    /* Backward shift: move later entries of the probe run into the hole. */
    size_t hole = s;
    for (size_t j = (s + 1) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        size_t home = u64map_slot(m, m->keys[j]);
        int movable = (hole <= j) ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->count--;
}

static void u64map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* ---- the bus --------------------------------------------------------------------------- */

#define BUS_INLINE_LABELS 96 /* label blocks up to this size live in the slot: no malloc */
#define BUS_MAX_RINGS 256    /* the loop thread's ring plus one per publishing thread */
#define BUS_THREAD_RING 8192 /* slots in each other thread's ring */

enum { SLOT_READY = 0, SLOT_CLAIMED = 1, SLOT_UPDATING = 2 };

typedef struct bus_slot {
    _Atomic uint32_t state; /* guards coalescing against the consumer taking the slot */
    uint32_t source;
    uint32_t flags;
    uint32_t nlabels;
    const char *topic; /* interned */
    uint64_t mono_ns;
    int64_t wall_ns;
    double value;
    sb_label *labels; /* into inline_labels, or a heap block */
    cJSON *payload;
    uint64_t key; /* coalescing key, 0 when not coalescible */
    union {
        sb_label align;
        char bytes[BUS_INLINE_LABELS];
    } inline_labels;
} bus_slot;

/* One producer thread, one consumer (the loop thread): a lock-free ring. The loop thread's own
 * publishes (a connector deciding inside a dispatch) use ring 0, so a flood from one thread
 * cannot crowd out the next hop of a pipeline. */
typedef struct bus_ring {
    _Atomic uint64_t head; /* written by the consumer */
    char pad1[56];
    _Atomic uint64_t tail; /* written by the producer */
    char pad2[56];
    bus_slot *slots;
    uint64_t mask;
    uint64_t cached_head; /* producer side: last head seen, re-read only when the ring looks full */
    uv_thread_t owner;
    u64map coalesce;        /* producer side: key -> sequence number of the waiting event */
    const char *topics[16]; /* producer side: topics this thread has interned */
    size_t ntopics;
    _Atomic uint64_t published, coalesced, dropped;
} bus_ring;

typedef struct bus_subscriber {
    int64_t id;
    const char *topic;
    sb_event_cb cb; /* NULL once unsubscribed, until compacted */
    void *arg;
} bus_subscriber;

typedef struct bus_source {
    char *id;
    bus_subscriber *subs;
    size_t nsubs, cap;
    int removed;
} bus_source;

#define BUS_MAX_TOPICS 64

struct bus {
    uv_loop_t *loop;
    uv_async_t wake;
    uv_thread_t loop_thread;
    uint64_t uid;                /* tells thread-local ring caches of a freed bus from a new one */
    _Atomic int64_t wall_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC, in ns */

    uv_mutex_t lock; /* ring registration, topic interning, payload counts */
    bus_ring *rings[BUS_MAX_RINGS];
    _Atomic size_t nrings;
    size_t capacity;
    u64map payloads; /* cJSON pointer -> reference count */
    const char *topics[BUS_MAX_TOPICS];
    size_t ntopics;

    /* loop thread only */
    bus_source *sources; /* index 0 unused */
    size_t nsources, sources_cap;
    int64_t next_sub_id;
    uint64_t delivered;
    int draining;
    int subs_dirty;
    uint64_t drain_clock; /* CLOCK_MONOTONIC during a drain, refreshed every 16 events */
};

/* Each thread remembers its ring for the last bus it published to. */
static _Thread_local struct {
    const bus *b;
    uint64_t uid;
    bus_ring *ring;
} tls_ring;

static _Atomic uint64_t bus_uids = 1;

static bus_ring *bus_ring_new(size_t capacity, uv_thread_t owner)
{
    bus_ring *r = calloc(1, sizeof *r);
    size_t cap = 16;
    while (cap < capacity)
        cap <<= 1;
    if (!r || !(r->slots = calloc(cap, sizeof *r->slots))) {
        free(r);
        return NULL;
    }
    r->mask = cap - 1;
    r->owner = owner;
    return r;
}

uint64_t bus_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int64_t bus_now_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void bus_on_wake(uv_async_t *h);
static const char *bus_intern_topic(bus *b, bus_ring *r, const char *topic);

bus *bus_new(uv_loop_t *loop, size_t capacity)
{
    bus *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->capacity = capacity ? capacity : BUS_DEFAULT_CAPACITY;
    b->loop = loop;
    b->loop_thread = uv_thread_self();
    b->uid = atomic_fetch_add(&bus_uids, 1);
    b->next_sub_id = 1;
    atomic_store(&b->wall_offset, bus_now_wall_ns() - (int64_t)bus_now_mono_ns());
    b->sources = calloc(16, sizeof *b->sources);
    b->rings[0] = bus_ring_new(b->capacity, b->loop_thread);
    if (!b->sources || !b->rings[0] || uv_mutex_init(&b->lock) != 0) {
        free(b->sources);
        if (b->rings[0])
            free(b->rings[0]->slots);
        free(b->rings[0]);
        free(b);
        return NULL;
    }
    atomic_store(&b->nrings, 1);
    b->sources_cap = 16;
    b->nsources = 1;
    if (uv_async_init(loop, &b->wake, bus_on_wake) != 0) {
        uv_mutex_destroy(&b->lock);
        free(b->rings[0]->slots);
        free(b->rings[0]);
        free(b->sources);
        free(b);
        return NULL;
    }
    b->wake.data = b;
    return b;
}

/* Caller holds the lock. */
static void bus_payload_unref_locked(bus *b, cJSON *payload)
{
    if (!payload)
        return;
    uint64_t *count = u64map_find(&b->payloads, (uint64_t)(uintptr_t)payload);
    if (!count || --*count == 0) {
        u64map_del(&b->payloads, (uint64_t)(uintptr_t)payload);
        cJSON_Delete(payload);
    }
}

static void bus_slot_release(bus *b, bus_slot *s, int locked)
{
    if (s->labels && (char *)s->labels != s->inline_labels.bytes)
        free(s->labels);
    s->labels = NULL;
    if (s->payload) {
        if (!locked)
            uv_mutex_lock(&b->lock);
        bus_payload_unref_locked(b, s->payload);
        if (!locked)
            uv_mutex_unlock(&b->lock);
        s->payload = NULL;
    }
}

static void bus_on_closed(uv_handle_t *h)
{
    bus *b = h->data;
    size_t nrings = atomic_load(&b->nrings);
    for (size_t i = 0; i < nrings; i++) {
        bus_ring *r = b->rings[i];
        for (uint64_t seq = atomic_load(&r->head); seq != atomic_load(&r->tail); seq++)
            bus_slot_release(b, &r->slots[seq & r->mask], 1);
        u64map_free(&r->coalesce);
        free(r->slots);
        free(r);
    }
    for (size_t i = 1; i < b->nsources; i++) {
        free(b->sources[i].id);
        free(b->sources[i].subs);
    }
    /* Payloads still retained by a plugin that never released them. */
    for (size_t i = 0; i < b->payloads.cap; i++)
        if (b->payloads.keys[i])
            cJSON_Delete((cJSON *)(uintptr_t)b->payloads.keys[i]);
    for (size_t i = 0; i < b->ntopics; i++)
        free((char *)b->topics[i]);
    u64map_free(&b->payloads);
    uv_mutex_destroy(&b->lock);
    free(b->sources);
    free(b);
}

void bus_close(bus *b)
{
    if (b)
        uv_close((uv_handle_t *)&b->wake, bus_on_closed);
}

uint32_t bus_source_add(bus *b, const char *id)
{
    if (b->nsources == UINT32_MAX)
        return 0;
    if (b->nsources == b->sources_cap) {
        size_t ncap = b->sources_cap * 2;
        bus_source *ns = realloc(b->sources, ncap * sizeof *ns);
        if (!ns)
            return 0;
        b->sources = ns;
        b->sources_cap = ncap;
    }
    bus_source *s = &b->sources[b->nsources];
    memset(s, 0, sizeof *s);
    s->id = strdup(id ? id : "");
    if (!s->id)
        return 0;
    return (uint32_t)b->nsources++;
}

static bus_source *bus_source_get(bus *b, uint32_t source)
{
    if (source == 0 || source >= b->nsources || b->sources[source].removed)
        return NULL;
    return &b->sources[source];
}

void bus_source_remove(bus *b, uint32_t source)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return;
    /* The id string stays: events already queued by this source still name it. */
    s->removed = 1;
    for (size_t i = 0; i < s->nsubs; i++)
        s->subs[i].cb = NULL;
    if (!b->draining) {
        free(s->subs);
        s->subs = NULL;
        s->nsubs = s->cap = 0;
    } else {
        b->subs_dirty = 1;
    }
}

int64_t bus_subscribe(bus *b, uint32_t source, const char *topic, sb_event_cb cb, void *arg)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return -ENOENT;
    if (!cb)
        return -EINVAL;
    if (s->nsubs == s->cap) {
        size_t ncap = s->cap ? s->cap * 2 : 2;
        bus_subscriber *n = realloc(s->subs, ncap * sizeof *n);
        if (!n)
            return -ENOMEM;
        s->subs = n;
        s->cap = ncap;
    }
    /* Interned, so dispatch compares topics by pointer. */
    const char *interned = topic ? bus_intern_topic(b, b->rings[0], topic) : NULL;
    if (topic && !interned)
        return -ENOMEM;
    bus_subscriber *sub = &s->subs[s->nsubs++];
    sub->id = b->next_sub_id++;
    sub->topic = interned;
    sub->cb = cb;
    sub->arg = arg;
    return sub->id;
}

static void bus_compact_source(bus_source *s)
{
    size_t w = 0;
    for (size_t r = 0; r < s->nsubs; r++)
        if (s->subs[r].cb)
            s->subs[w++] = s->subs[r];
    s->nsubs = w;
}

void bus_unsubscribe(bus *b, uint32_t source, int64_t subscription)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return;
    for (size_t i = 0; i < s->nsubs; i++) {
        if (s->subs[i].id == subscription) {
            s->subs[i].cb = NULL;
            break;
        }
    }
    if (b->draining)
        b->subs_dirty = 1;
    else
        bus_compact_source(s);
}

/* Topics are interned so a queued event needs no copy of its topic. Each ring keeps the few its
 * thread uses; only a topic new to that thread takes the lock. */
static const char *bus_intern_topic(bus *b, bus_ring *r, const char *topic)
{
    for (size_t i = 0; i < r->ntopics; i++)
        if (r->topics[i] == topic || strcmp(r->topics[i], topic) == 0)
            return r->topics[i];
    const char *found = NULL;
    uv_mutex_lock(&b->lock);
    for (size_t i = 0; i < b->ntopics && !found; i++)
        if (strcmp(b->topics[i], topic) == 0)
            found = b->topics[i];
    if (!found && b->ntopics < BUS_MAX_TOPICS) {
        char *copy = strdup(topic);
        if (copy)
            found = b->topics[b->ntopics++] = copy;
    }
    uv_mutex_unlock(&b->lock);
    if (found && r->ntopics < sizeof r->topics / sizeof r->topics[0])
        r->topics[r->ntopics++] = found;
    return found;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    h ^= 0xff; /* separator, so ("ab","c") and ("a","bc") differ */
    h *= 0x100000001b3ull;
    return h;
}

static uint64_t bus_coalesce_key(uint32_t source, const sb_publish *pub)
{
    uint64_t h = 0xcbf29ce484222325ull ^ ((uint64_t)source * 0x9E3779B97F4A7C15ull);
    h = fnv1a(h, pub->topic);
    for (size_t i = 0; i < pub->nlabels; i++) {
        h = fnv1a(h, pub->labels[i].key ? pub->labels[i].key : "");
        h = fnv1a(h, pub->labels[i].value ? pub->labels[i].value : "");
    }
    return h ? h : 1;
}

static int bus_same_labels(const bus_slot *s, const sb_publish *pub)
{
    if (s->nlabels != pub->nlabels)
        return 0;
    for (size_t i = 0; i < s->nlabels; i++) {
        const char *k = pub->labels[i].key ? pub->labels[i].key : "";
        const char *v = pub->labels[i].value ? pub->labels[i].value : "";
        if (strcmp(s->labels[i].key, k) != 0 || strcmp(s->labels[i].value, v) != 0)
            return 0;
    }
    return 1;
}

/* The label array and all its strings in one block: the slot's own bytes when they fit. */
static sb_label *bus_copy_labels(const sb_label *labels, size_t n, char *inline_buf)
{
    if (n == 0)
        return NULL;
    size_t bytes = n * sizeof(sb_label);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(labels[i].key ? labels[i].key : "") +
                 strlen(labels[i].value ? labels[i].value : "") + 2;
    sb_label *out = bytes <= BUS_INLINE_LABELS ? (sb_label *)(void *)inline_buf : malloc(bytes);
    if (!out)
        return NULL;
    char *p = (char *)(out + n);
    for (size_t i = 0; i < n; i++) {
        const char *k = labels[i].key ? labels[i].key : "";
        const char *v = labels[i].value ? labels[i].value : "";
        size_t kl = strlen(k) + 1, vl = strlen(v) + 1;
        memcpy(p, k, kl);
        out[i].key = p;
        p += kl;
        memcpy(p, v, vl);
        out[i].value = p;
        p += vl;
    }
    return out;
}

/* The calling thread's ring: ring 0 on the loop thread, else one made for this thread. */
static bus_ring *bus_ring_for_thread(bus *b, int *on_loop)
{
    uv_thread_t self = uv_thread_self();
    *on_loop = uv_thread_equal(&b->loop_thread, &self);
    if (*on_loop)
        return b->rings[0];
    if (tls_ring.b == b && tls_ring.uid == b->uid)
        return tls_ring.ring;
    bus_ring *r = NULL;
    uv_mutex_lock(&b->lock);
    size_t n = atomic_load(&b->nrings);
    for (size_t i = 1; i < n && !r; i++)
        if (uv_thread_equal(&b->rings[i]->owner, &self))
            r = b->rings[i];
    if (!r && n < BUS_MAX_RINGS) {
        size_t cap = b->capacity < BUS_THREAD_RING ? b->capacity : BUS_THREAD_RING;
        r = bus_ring_new(cap, self);
        if (r) {
            b->rings[n] = r;
            atomic_store_explicit(&b->nrings, n + 1, memory_order_release);
        }
    }
    uv_mutex_unlock(&b->lock);
    if (r) {
        tls_ring.b = b;
        tls_ring.uid = b->uid;
        tls_ring.ring = r;
    }
    return r;
}

/* Replace a waiting event with the same key in place. Returns 1 when it did. */
static int bus_try_coalesce(bus *b, bus_ring *r, uint32_t source, const char *topic, uint64_t key,
                            const sb_publish *pub, uint64_t mono, int64_t wall)
{
    uint64_t *seq = u64map_find(&r->coalesce, key);
    if (!seq || *seq < atomic_load_explicit(&r->head, memory_order_acquire))
        return 0;
    bus_slot *s = &r->slots[*seq & r->mask];
    /* Only the producer writes a slot's fields, so reading them here is safe; the state word
     * decides whether the consumer has taken the slot already. */
    if (s->source != source || s->topic != topic || s->key != key || !bus_same_labels(s, pub))
        return 0;
    uint32_t expect = SLOT_READY;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &expect, SLOT_UPDATING,
                                                 memory_order_acquire, memory_order_relaxed))
        return 0; /* being delivered: queue a new one */
    cJSON *stale = s->payload;
    s->value = pub->value;
    s->mono_ns = mono;
    s->wall_ns = wall;
    s->payload = NULL;
    if (pub->payload || stale) {
        uv_mutex_lock(&b->lock);
        if (stale)
            bus_payload_unref_locked(b, stale);
        if (pub->payload && u64map_put(&b->payloads, (uint64_t)(uintptr_t)pub->payload, 1) == 0)
            s->payload = pub->payload;
        else
            cJSON_Delete(pub->payload);
        uv_mutex_unlock(&b->lock);
    }
    atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
    atomic_fetch_add_explicit(&r->coalesced, 1, memory_order_relaxed);
    return 1;
}

int bus_publish(bus *b, uint32_t source, const sb_publish *pub)
{
    if (!b || !pub || !pub->topic || (pub->nlabels && !pub->labels)) {
        if (pub)
            cJSON_Delete(pub->payload);
        return -EINVAL;
    }
    int on_loop;
    bus_ring *r = bus_ring_for_thread(b, &on_loop);
    const char *topic = r ? bus_intern_topic(b, r, pub->topic) : NULL;
    if (!r || !topic) {
        cJSON_Delete(pub->payload);
        return r ? -ENOMEM : -EMFILE;
    }
    /* Inside a dispatch the loop thread stamps with the drain's clock, read every few events:
     * a decision made on a reading is stamped within a microsecond or so of the real time. */
    uint64_t mono = pub->time_ns               ? pub->time_ns
                    : (on_loop && b->draining) ? b->drain_clock
                                               : bus_now_mono_ns();
    /* Wall time from the monotonic stamp and an offset the loop refreshes each wake-up: one
     * clock read per publish instead of two. */
    int64_t wall = (int64_t)mono + atomic_load_explicit(&b->wall_offset, memory_order_relaxed);
    uint64_t key = 0;
    if (pub->flags & SB_EVENT_COALESCE) {
        key = bus_coalesce_key(source, pub);
        if (bus_try_coalesce(b, r, source, topic, key, pub, mono, wall))
            return 0;
    }
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->cached_head > r->mask)
        r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - r->cached_head > r->mask) {
        atomic_fetch_add_explicit(&r->dropped, 1, memory_order_relaxed);
        cJSON_Delete(pub->payload);
        return -ENOBUFS;
    }
    bus_slot *s = &r->slots[tail & r->mask];
    s->labels = bus_copy_labels(pub->labels, pub->nlabels, s->inline_labels.bytes);
    if (pub->nlabels && !s->labels) {
        cJSON_Delete(pub->payload);
        return -ENOMEM;
    }
    s->payload = NULL;
    if (pub->payload) {
        uv_mutex_lock(&b->lock);
        int rc = u64map_put(&b->payloads, (uint64_t)(uintptr_t)pub->payload, 1);
        uv_mutex_unlock(&b->lock);
        if (rc != 0) {
            bus_slot_release(b, s, 0);
            cJSON_Delete(pub->payload);
            return -ENOMEM;
        }
        s->payload = pub->payload;
    }
    s->source = source;
    s->flags = pub->flags;
    s->nlabels = (uint32_t)pub->nlabels;
    s->topic = topic;
    s->mono_ns = mono;
    s->wall_ns = wall;
    s->value = pub->value;
    s->key = 0;
    if (key && u64map_put(&r->coalesce, key, tail) == 0)
        s->key = key;
    atomic_store_explicit(&s->state, SLOT_READY, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    atomic_fetch_add_explicit(&r->published, 1, memory_order_relaxed);
    /* A publish from inside dispatch is picked up by the running drain without a wake-up;
     * uv_async_send itself is one atomic test when a wake-up is already pending. */
    if (!(on_loop && b->draining))
        uv_async_send(&b->wake);
    return 0;
}

static void bus_dispatch_one(bus *b, const bus_slot *s)
{
    bus_source *src = bus_source_get(b, s->source);
    if (!src)
        return;
    sb_event ev = {
        .source = s->source,
        .source_id = src->id,
        .topic = s->topic,
        .flags = s->flags,
        .mono_ns = s->mono_ns,
        .wall_ns = s->wall_ns,
        .value = s->value,
        .labels = s->labels,
        .nlabels = s->nlabels,
        .payload = s->payload,
    };
    /* Index loop, re-reading the array: a callback may subscribe (realloc) on this source. */
    for (size_t i = 0; i < b->sources[s->source].nsubs; i++) {
        bus_subscriber sub = b->sources[s->source].subs[i];
        if (!sub.cb)
            continue;
        if (sub.topic && sub.topic != s->topic) /* both interned */
            continue;
        sub.cb(sub.arg, &ev);
    }
}

/* Take the slot from its producer: wait out a coalescing update in progress. */
static void bus_claim(bus_slot *s)
{
    for (;;) {
        uint32_t expect = SLOT_READY;
        if (atomic_compare_exchange_weak_explicit(&s->state, &expect, SLOT_CLAIMED,
                                                  memory_order_acquire, memory_order_relaxed))
            return;
    }
}

/* Deliver up to `budget` events from one ring, in place; returns how many. */
static size_t bus_drain_ring(bus *b, bus_ring *r, size_t budget)
{
    size_t done = 0;
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    while (done < budget) {
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (head == tail)
            break;
        for (; head != tail && done < budget; head++, done++) {
            bus_slot *s = &r->slots[head & r->mask];
            if ((done & 15) == 0)
                b->drain_clock = bus_now_mono_ns();
            /* Only a coalescible event can still be touched by its producer. */
            if (s->key)
                bus_claim(s);
            bus_dispatch_one(b, s);
            bus_slot_release(b, s, 0);
            /* Hand space back now and then, not per event: the head's cache line is shared. */
            if ((head & 63) == 63)
                atomic_store_explicit(&r->head, head + 1, memory_order_release);
        }
        atomic_store_explicit(&r->head, head, memory_order_release);
    }
    return done;
}

/* Deliver up to `budget` events over all rings; returns how many. */
static size_t bus_drain(bus *b, size_t budget)
{
    size_t done = 0;
    int was_draining = b->draining;
    b->draining = 1;
    for (;;) {
        size_t before = done;
        size_t nrings = atomic_load_explicit(&b->nrings, memory_order_acquire);
        for (size_t i = 0; i < nrings && done < budget; i++) {
            size_t quota = budget - done < BUS_BATCH ? budget - done : BUS_BATCH;
            done += bus_drain_ring(b, b->rings[i], quota);
            /* What those deliveries published on the loop thread goes next, before more input. */
            if (i != 0 && done < budget)
                done += bus_drain_ring(b, b->rings[0], budget - done);
        }
        if (done == before || done >= budget)
            break;
    }
    b->delivered += done;
    b->draining = was_draining;
    if (!b->draining && b->subs_dirty) {
        b->subs_dirty = 0;
        for (size_t i = 1; i < b->nsources; i++) {
            bus_compact_source(&b->sources[i]);
            if (b->sources[i].removed && b->sources[i].subs) {
                free(b->sources[i].subs);
                b->sources[i].subs = NULL;
                b->sources[i].nsubs = b->sources[i].cap = 0;
            }
        }
    }
    return done;
}

static int bus_has_queued(bus *b)
{
    size_t nrings = atomic_load_explicit(&b->nrings, memory_order_acquire);
    for (size_t i = 0; i < nrings; i++)
        if (atomic_load_explicit(&b->rings[i]->head, memory_order_relaxed) !=
            atomic_load_explicit(&b->rings[i]->tail, memory_order_acquire))
            return 1;
    return 0;
}

static void bus_on_wake(uv_async_t *h)
{
    bus *b = h->data;
    /* Follow clock steps (NTP, an operator's date) within one wake-up. */
    atomic_store_explicit(&b->wall_offset, bus_now_wall_ns() - (int64_t)bus_now_mono_ns(),
                          memory_order_relaxed);
    bus_drain(b, BUS_BUDGET);
    /* Come back next iteration so timers and I/O are not starved by a flood. */
    if (bus_has_queued(b))
        uv_async_send(&b->wake);
}

void bus_flush(bus *b)
{
    while (bus_drain(b, SIZE_MAX) > 0) {
    }
}

void bus_get_stats(bus *b, bus_stats *out)
{
    memset(out, 0, sizeof *out);
    size_t nrings = atomic_load_explicit(&b->nrings, memory_order_acquire);
    for (size_t i = 0; i < nrings; i++) {
        bus_ring *r = b->rings[i];
        out->published += atomic_load_explicit(&r->published, memory_order_relaxed);
        out->coalesced += atomic_load_explicit(&r->coalesced, memory_order_relaxed);
        out->dropped += atomic_load_explicit(&r->dropped, memory_order_relaxed);
        out->queued += (size_t)(atomic_load_explicit(&r->tail, memory_order_acquire) -
                                atomic_load_explicit(&r->head, memory_order_acquire));
    }
    out->delivered = b->delivered;
}

const struct cJSON *bus_payload_retain(bus *b, const struct cJSON *payload)
{
    if (!payload)
        return NULL;
    uv_mutex_lock(&b->lock);
    uint64_t *count = u64map_find(&b->payloads, (uint64_t)(uintptr_t)payload);
    if (count)
        ++*count;
    uv_mutex_unlock(&b->lock);
    return count ? payload : NULL;
}

void bus_payload_release(bus *b, const struct cJSON *payload)
{
    if (!payload)
        return;
    uv_mutex_lock(&b->lock);
    bus_payload_unref_locked(b, (cJSON *)(uintptr_t)payload);
    uv_mutex_unlock(&b->lock);
}
