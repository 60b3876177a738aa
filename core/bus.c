/*
 * bus.c - the event bus (see bus.h for the contract).
 *
 * Every publishing thread has its own single-producer ring of event slots (the loop thread's is
 * ring 0), so a publish takes no lock: the event is copied into the slot at the ring's tail and
 * the tail is moved with a release store. The loop thread drains each ring in place and hands
 * the space back by moving the ring's head.
 *
 * Coalescing. Each ring's producer keeps a map from an event's coalescing key (a hash of source,
 * topic and labels) to the sequence number of the waiting event. A slot's state word settles who
 * has the slot: the producer fills it READY; the loop takes it READY -> CLAIMED before reading it
 * and keeps it until the producer fills the slot again; a producer replacing a waiting event
 * takes it READY -> UPDATING first and only then compares its labels (the loop frees them once
 * it has delivered the event), then puts it back READY. Each slot also keeps its sequence number,
 * so a map entry whose slot now holds a newer event is recognised as stale. The map drops the
 * entries of delivered events (and is sized to what is left) whenever it would otherwise grow.
 *
 * Rings and threads. A thread finds its ring for a bus through a thread-local cache, else through
 * the list of rings it holds (a pthread key, whose destructor runs when the thread exits). A ring
 * is held by its bus and by its thread, two bits of one word; whichever lets go last frees it. A
 * ring whose thread has exited stays with its bus (its waiting events are still delivered) and is
 * taken over by the next thread that needs a ring; the state word's release (the exiting thread)
 * and acquire (the new one) hand the producer's side of the ring over.
 *
 * Beside the rings, under one mutex: ring registration, interned topics (a hash set of strings)
 * and payload reference counts. Subscribers are kept per source in an array indexed by source
 * number; they and everything else of the loop's are touched on the loop thread only.
 */
#define _POSIX_C_SOURCE 200809L
#include "bus.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
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

/* Caller knows the key is absent and there is room. */
static void u64map_insert(u64map *m, uint64_t key, uint64_t val)
{
    size_t s = u64map_slot(m, key);
    while (m->keys[s])
        s = (s + 1) & (m->cap - 1);
    m->keys[s] = key;
    m->vals[s] = val;
    m->count++;
}

/* Move to a table of ncap entries (a power of two), keeping the entries whose value >= min_val. */
static int u64map_rebuild(u64map *m, size_t ncap, uint64_t min_val)
{
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
    for (size_t i = 0; i < old.cap; i++)
        if (old.keys[i] && old.vals[i] >= min_val)
            u64map_insert(m, old.keys[i], old.vals[i]);
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

static int u64map_full(const u64map *m)
{
    return (m->count + 1) * 4 > m->cap * 3;
}

static int u64map_put(u64map *m, uint64_t key, uint64_t val)
{
    uint64_t *v = u64map_find(m, key);
    if (v) {
        *v = val;
        return 0;
    }
    if (u64map_full(m) && u64map_rebuild(m, m->cap ? m->cap * 2 : 64, 0) != 0)
        return -ENOMEM;
    u64map_insert(m, key, val);
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
#define BUS_THREAD_RING 8192 /* slots in each other thread's ring */
#define BUS_RING_TOPICS 16   /* topics each ring remembers (compared before taking the lock) */

enum { SLOT_READY = 0, SLOT_CLAIMED = 1, SLOT_UPDATING = 2 };

typedef struct bus_slot {
    _Atomic uint32_t state; /* guards coalescing against the consumer taking the slot */
    uint32_t source;
    uint32_t flags;
    uint32_t nlabels;
    uint64_t seq;      /* the event's sequence number in its ring: written by the producer only */
    uint64_t key;      /* coalescing key, 0 when not coalescible */
    const char *topic; /* interned */
    uint64_t mono_ns;
    int64_t wall_ns;
    double value;
    sb_label *labels; /* into inline_labels, or a heap block */
    cJSON *payload;
    union {
        sb_label align;
        char bytes[BUS_INLINE_LABELS];
    } inline_labels;
} bus_slot;

enum { RING_HELD_BY_BUS = 1u, RING_HELD_BY_THREAD = 2u };

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
    uint64_t bus_uid;         /* the bus it belongs to (the thread's list holds rings of several) */
    _Atomic uint32_t holders; /* RING_HELD_BY_BUS | RING_HELD_BY_THREAD */
    /* producer side: handed from thread to thread by the holders word */
    uint64_t cached_head;                /* last head seen, re-read only when the ring looks full */
    u64map coalesce;                     /* key -> sequence number of the waiting event */
    const char *topics[BUS_RING_TOPICS]; /* topics this ring's thread has interned */
    size_t ntopics, topic_next;
    struct bus_ring *next_owned; /* the next ring its thread holds */
    /* written by the producer only, read by anyone */
    _Atomic uint64_t published, coalesced, dropped;
    _Atomic size_t coalesce_keys, coalesce_slots;
} bus_ring;

/* The rings, read by the loop thread without the lock. A full table is replaced by one twice the
 * size; the old one is kept (the loop may be reading it) until the bus is freed. */
typedef struct bus_ring_table {
    size_t cap;
    struct bus_ring_table *older;
    bus_ring *ring[];
} bus_ring_table;

typedef struct bus_subscriber {
    int64_t id;
    const char *topic;
    sb_event_cb cb; /* NULL once unsubscribed, until compacted */
    void *arg;
} bus_subscriber;

/* A source number is a handle: the index into the table in its low BUS_SOURCE_BITS bits, the
 * generation of that index in the rest. A removed number's index goes to the open batch of
 * removed numbers; a batch is sealed with the tails of the rings at that moment, and is free to
 * reuse once every ring's head has passed its tail there (nothing queued before the removal is
 * left). The generation settles what a late publisher queued with an old number after that:
 * it names no running source, so it reaches no one. */
#define BUS_SOURCE_BITS 24
#define BUS_SOURCE_INDEX(h) ((h) & ((1u << BUS_SOURCE_BITS) - 1))
#define BUS_SOURCE_GEN(h) ((h) >> BUS_SOURCE_BITS)
#define BUS_SOURCE_GENS (1u << (32 - BUS_SOURCE_BITS))

typedef struct bus_source {
    const char *id; /* the caller's string; NULL once removed */
    union {
        bus_subscriber one;   /* cap <= 1: the subscriber lives here (most sources have one) */
        bus_subscriber *many; /* cap > 1 */
    } subs;
    uint32_t nsubs, cap;
    void *observer_arg; /* bus_observe: its events reach the bus's observer; NULL: not observed */
    uint32_t gen;       /* the generation of this index's current (or last) owner */
    uint32_t next_free; /* removed: the next index in its batch or the free list, 0 ends it */
} bus_source;

/* Removed source indexes waiting until no queued event can name them (see bus_source). */
typedef struct source_batch {
    uint32_t first;  /* a list through bus_source.next_free */
    uint64_t *tails; /* sealed: each ring's tail when sealed */
    size_t ntails, tails_cap;
} source_batch;

struct bus {
    uv_loop_t *loop;
    uv_async_t wake;
    uv_thread_t loop_thread;
    uint64_t uid;                /* tells thread-local ring caches of a freed bus from a new one */
    _Atomic int64_t wall_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC, in ns */

    uv_mutex_t lock; /* ring registration, topic interning, payload counts */
    _Atomic(bus_ring_table *) rings;
    _Atomic size_t nrings;
    bus_ring *ring0; /* the loop thread's */
    size_t capacity;
    u64map payloads; /* cJSON pointer -> reference count */
    char **topics;   /* interned topics: a set by string hash, linear probing */
    size_t topics_cap, ntopics;

    /* loop thread only */
    bus_source *sources; /* index 0 unused */
    size_t nsources, sources_cap;
    uint32_t free_sources;            /* indexes free to reuse (list through next_free) */
    uint32_t removed_open;            /* removed since the last seal */
    source_batch removed_sealed;      /* removed before it: free once the rings pass its tails */
    _Atomic size_t source_slots;      /* nsources - 1, for bus_get_stats from any thread */
    int64_t next_sub_id;
    sb_event_cb observer; /* bus_set_observer */
    _Atomic uint64_t delivered; /* written by the loop thread only */
    int draining;
    int subs_dirty;
    /* CLOCK_MONOTONIC for stamping what the loop publishes during a drain: read when such a
     * publish needs it and 16 or more events were dispatched since the last read */
    uint64_t drain_clock;
    uint64_t dispatched, drain_clock_at; /* events dispatched; that count at the last read */
};

/* Each thread remembers its ring for the last bus it published to. */
static _Thread_local struct {
    const bus *b;
    uint64_t uid;
    bus_ring *ring;
} tls_ring;

static _Atomic uint64_t bus_uids = 1;

/* The list of rings each thread holds, and its destructor: the process's only bus key. */
static pthread_key_t bus_thread_key;
static pthread_once_t bus_thread_once = PTHREAD_ONCE_INIT;
static int bus_thread_key_error;

/* A counter only its ring's producer writes: no read-modify-write needed. */
static void bus_count(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static bus_ring *bus_ring_new(size_t capacity, uint64_t bus_uid, uint32_t holders)
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
    r->bus_uid = bus_uid;
    atomic_init(&r->holders, holders);
    return r;
}

static void bus_ring_free(bus_ring *r)
{
    u64map_free(&r->coalesce);
    free(r->slots);
    free(r);
}

/* Let go of a ring (holder: the bus or its thread); the last to let go frees it. */
static void bus_ring_let_go(bus_ring *r, uint32_t holder)
{
    if (atomic_fetch_and_explicit(&r->holders, ~holder, memory_order_acq_rel) == holder)
        bus_ring_free(r);
}

/* Thread exit: its rings are left to their buses (or freed, when the bus is gone). */
static void bus_thread_exit(void *owned)
{
    for (bus_ring *r = owned; r;) {
        bus_ring *next = r->next_owned;
        r->next_owned = NULL;
        bus_ring_let_go(r, RING_HELD_BY_THREAD);
        r = next;
    }
    tls_ring.b = NULL;
    tls_ring.uid = 0;
    tls_ring.ring = NULL;
}

static void bus_thread_key_init(void)
{
    bus_thread_key_error = pthread_key_create(&bus_thread_key, bus_thread_exit);
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
    bus_ring_table *t = malloc(sizeof *t + 16 * sizeof t->ring[0]);
    b->ring0 = bus_ring_new(b->capacity, b->uid, RING_HELD_BY_BUS);
    if (!b->sources || !t || !b->ring0 || uv_mutex_init(&b->lock) != 0) {
        free(b->sources);
        free(t);
        if (b->ring0)
            bus_ring_free(b->ring0);
        free(b);
        return NULL;
    }
    t->cap = 16;
    t->older = NULL;
    t->ring[0] = b->ring0;
    atomic_store(&b->rings, t);
    atomic_store(&b->nrings, 1);
    b->sources_cap = 16;
    b->nsources = 1;
    if (uv_async_init(loop, &b->wake, bus_on_wake) != 0) {
        uv_mutex_destroy(&b->lock);
        bus_ring_free(b->ring0);
        free(t);
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
    bus_ring_table *t = atomic_load(&b->rings);
    for (size_t i = 0; i < nrings; i++) {
        bus_ring *r = t->ring[i];
        for (uint64_t seq = atomic_load(&r->head); seq != atomic_load(&r->tail); seq++)
            bus_slot_release(b, &r->slots[seq & r->mask], 1);
        /* A thread still alive keeps the ring until it exits or publishes to another bus. */
        bus_ring_let_go(r, RING_HELD_BY_BUS);
    }
    while (t) {
        bus_ring_table *older = t->older;
        free(t);
        t = older;
    }
    for (size_t i = 1; i < b->nsources; i++)
        if (b->sources[i].cap > 1)
            free(b->sources[i].subs.many);
    free(b->removed_sealed.tails);
    /* Payloads still retained by a plugin that never released them. */
    for (size_t i = 0; i < b->payloads.cap; i++)
        if (b->payloads.keys[i])
            cJSON_Delete((cJSON *)(uintptr_t)b->payloads.keys[i]);
    for (size_t i = 0; i < b->topics_cap; i++)
        free(b->topics[i]);
    free(b->topics);
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

static bus_subscriber *bus_source_subs(bus_source *s)
{
    return s->cap <= 1 ? &s->subs.one : s->subs.many;
}

static void bus_source_free_subs(bus_source *s)
{
    if (s->cap > 1)
        free(s->subs.many);
    memset(&s->subs, 0, sizeof s->subs);
    s->nsubs = s->cap = 0;
}

/* Has every ring's head passed the tail it had when the batch was sealed? */
static int bus_batch_drained(bus *b, const source_batch *batch)
{
    bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_acquire);
    for (size_t i = 0; i < batch->ntails; i++)
        if (atomic_load_explicit(&t->ring[i]->head, memory_order_acquire) < batch->tails[i])
            return 0;
    return 1;
}

/* Put a list of indexes in front of the free list (each index is walked once). */
static void bus_free_list_add(bus *b, uint32_t list)
{
    uint32_t last = list;
    while (b->sources[last].next_free)
        last = b->sources[last].next_free;
    b->sources[last].next_free = b->free_sources;
    b->free_sources = list;
}

/* Move removed indexes that no queued event can name any more to the free list; seal the open
 * batch when the sealed one is gone. Not while draining: a removed source's subscribers are
 * freed when the drain ends. */
static void bus_recycle_sources(bus *b)
{
    source_batch *sealed = &b->removed_sealed;
    for (int round = 0; round < 2 && !b->draining; round++) {
        if (sealed->first) {
            if (!bus_batch_drained(b, sealed))
                return;
            bus_free_list_add(b, sealed->first);
            sealed->first = 0;
        }
        if (!b->removed_open)
            return;
        size_t n = atomic_load_explicit(&b->nrings, memory_order_acquire);
        if (n > sealed->tails_cap) {
            uint64_t *nt = realloc(sealed->tails, n * sizeof *nt);
            if (!nt)
                return; /* tried again on the next add */
            sealed->tails = nt;
            sealed->tails_cap = n;
        }
        bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_acquire);
        for (size_t i = 0; i < n; i++)
            sealed->tails[i] = atomic_load_explicit(&t->ring[i]->tail, memory_order_acquire);
        sealed->ntails = n;
        sealed->first = b->removed_open;
        b->removed_open = 0;
    }
}

uint32_t bus_source_add(bus *b, const char *id)
{
    bus_recycle_sources(b);
    uint32_t idx = b->free_sources;
    if (idx) {
        b->free_sources = b->sources[idx].next_free;
    } else {
        if (b->nsources > BUS_SOURCE_INDEX(UINT32_MAX))
            return 0;
        if (b->nsources == b->sources_cap) {
            size_t ncap = b->sources_cap * 2;
            bus_source *ns = realloc(b->sources, ncap * sizeof *ns);
            if (!ns)
                return 0;
            b->sources = ns;
            b->sources_cap = ncap;
        }
        idx = (uint32_t)b->nsources++;
        memset(&b->sources[idx], 0, sizeof b->sources[idx]);
        atomic_store_explicit(&b->source_slots, b->nsources - 1, memory_order_relaxed);
    }
    bus_source *s = &b->sources[idx];
    s->id = id ? id : "";
    s->observer_arg = NULL;
    s->next_free = 0;
    return (s->gen << BUS_SOURCE_BITS) | idx;
}

static bus_source *bus_source_get(bus *b, uint32_t source)
{
    uint32_t idx = BUS_SOURCE_INDEX(source);
    if (idx == 0 || idx >= b->nsources || !b->sources[idx].id ||
        b->sources[idx].gen != BUS_SOURCE_GEN(source))
        return NULL;
    return &b->sources[idx];
}

void bus_source_remove(bus *b, uint32_t source)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return;
    /* Events already queued by this source reach no one from now on. */
    s->id = NULL;
    s->observer_arg = NULL;
    s->gen = (s->gen + 1) % BUS_SOURCE_GENS;
    bus_subscriber *subs = bus_source_subs(s);
    for (size_t i = 0; i < s->nsubs; i++)
        subs[i].cb = NULL;
    if (!b->draining)
        bus_source_free_subs(s);
    else
        b->subs_dirty = 1;
    s->next_free = b->removed_open;
    b->removed_open = BUS_SOURCE_INDEX(source);
}

static const char *bus_intern_topic(bus *b, bus_ring *r, const char *topic);

int64_t bus_subscribe(bus *b, uint32_t source, const char *topic, sb_event_cb cb, void *arg)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return -ENOENT;
    if (!cb)
        return -EINVAL;
    /* Interned, so dispatch compares topics by pointer. */
    const char *interned = topic ? bus_intern_topic(b, b->ring0, topic) : NULL;
    if (topic && !interned)
        return -ENOMEM;
    if (s->nsubs == s->cap) {
        if (s->cap == 0) {
            s->cap = 1; /* inline */
        } else {
            uint32_t ncap = s->cap * 2;
            bus_subscriber *n = s->cap == 1 ? malloc(ncap * sizeof *n)
                                            : realloc(s->subs.many, ncap * sizeof *n);
            if (!n)
                return -ENOMEM;
            if (s->cap == 1)
                n[0] = s->subs.one;
            s->subs.many = n;
            s->cap = ncap;
        }
    }
    bus_subscriber *sub = &bus_source_subs(s)[s->nsubs++];
    sub->id = b->next_sub_id++;
    sub->topic = interned;
    sub->cb = cb;
    sub->arg = arg;
    return sub->id;
}

void bus_set_observer(bus *b, sb_event_cb cb)
{
    b->observer = cb;
}

int bus_observe(bus *b, uint32_t source, void *arg)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return -ENOENT;
    if (!arg)
        return -EINVAL;
    s->observer_arg = arg;
    return 0;
}

static void bus_compact_source(bus_source *s)
{
    bus_subscriber *subs = bus_source_subs(s);
    uint32_t w = 0;
    for (uint32_t r = 0; r < s->nsubs; r++)
        if (subs[r].cb)
            subs[w++] = subs[r];
    s->nsubs = w;
}

void bus_unsubscribe(bus *b, uint32_t source, int64_t subscription)
{
    bus_source *s = bus_source_get(b, source);
    if (!s)
        return;
    bus_subscriber *subs = bus_source_subs(s);
    for (size_t i = 0; i < s->nsubs; i++) {
        if (subs[i].id == subscription) {
            subs[i].cb = NULL;
            break;
        }
    }
    if (b->draining)
        b->subs_dirty = 1;
    else
        bus_compact_source(s);
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

static size_t bus_topic_home(const char *topic, size_t cap)
{
    return (size_t)fnv1a(0xcbf29ce484222325ull, topic) & (cap - 1);
}

/* Twice the room for interned topics (caller holds the lock). */
static int bus_topics_grow(bus *b)
{
    size_t ncap = b->topics_cap ? b->topics_cap * 2 : 64;
    char **nt = calloc(ncap, sizeof *nt);
    if (!nt)
        return -ENOMEM;
    for (size_t j = 0; j < b->topics_cap; j++) {
        if (!b->topics[j])
            continue;
        size_t i = bus_topic_home(b->topics[j], ncap);
        while (nt[i])
            i = (i + 1) & (ncap - 1);
        nt[i] = b->topics[j];
    }
    free(b->topics);
    b->topics = nt;
    b->topics_cap = ncap;
    return 0;
}

/* The bus's copy of a topic, made on first use (caller holds the lock). NULL on ENOMEM. */
static const char *bus_topic_locked(bus *b, const char *topic)
{
    if (b->topics_cap) {
        for (size_t i = bus_topic_home(topic, b->topics_cap); b->topics[i];
             i = (i + 1) & (b->topics_cap - 1))
            if (strcmp(b->topics[i], topic) == 0)
                return b->topics[i];
    }
    if ((b->ntopics + 1) * 4 > b->topics_cap * 3 && bus_topics_grow(b) != 0)
        return NULL;
    char *copy = strdup(topic);
    if (!copy)
        return NULL;
    size_t i = bus_topic_home(topic, b->topics_cap);
    while (b->topics[i])
        i = (i + 1) & (b->topics_cap - 1);
    b->topics[i] = copy;
    b->ntopics++;
    return copy;
}

/* Topics are interned so a queued event needs no copy of its topic and dispatch compares them by
 * pointer. Each ring keeps the few its thread uses; only a topic new to the ring takes the lock. */
static const char *bus_intern_topic(bus *b, bus_ring *r, const char *topic)
{
    /* Pointers first (a caller that passes an interned topic, the loop's own deliveries), then
     * the text; the entry found moves to the front, so a thread that publishes one topic
     * compares it with one entry only. */
    for (size_t i = 0; i < r->ntopics; i++)
        if (r->topics[i] == topic)
            return topic;
    for (size_t i = 0; i < r->ntopics; i++) {
        const char *t = r->topics[i];
        if (t[0] == topic[0] && strcmp(t, topic) == 0) {
            if (i > 0) {
                r->topics[i] = r->topics[0];
                r->topics[0] = t;
            }
            return t;
        }
    }
    uv_mutex_lock(&b->lock);
    const char *found = bus_topic_locked(b, topic);
    uv_mutex_unlock(&b->lock);
    if (found) {
        if (r->ntopics < BUS_RING_TOPICS)
            r->topics[r->ntopics++] = found;
        else
            r->topics[r->topic_next++ % BUS_RING_TOPICS] = found;
    }
    return found;
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

/* Copy s (NUL included) to *p, staying below end: 0 when it does not fit. Byte by byte: labels
 * are a few characters, shorter than a call to strlen and memcpy would take. */
static int bus_copy_str(char **p, const char *end, const char *s)
{
    char *q = *p;
    while (q < end) {
        char c = *s++;
        *q++ = c;
        if (!c) {
            *p = q;
            return 1;
        }
    }
    return 0;
}

/* The label array and all its strings in one block: the slot's own bytes when they fit (one
 * pass), else a heap block of the measured size. */
static sb_label *bus_copy_labels(const sb_label *labels, size_t n, char *inline_buf)
{
    if (n == 0)
        return NULL;
    if (n * sizeof(sb_label) < BUS_INLINE_LABELS) {
        sb_label *out = (sb_label *)(void *)inline_buf;
        char *p = (char *)(out + n);
        const char *end = inline_buf + BUS_INLINE_LABELS;
        size_t i = 0;
        for (; i < n; i++) {
            out[i].key = p;
            if (!bus_copy_str(&p, end, labels[i].key ? labels[i].key : ""))
                break;
            out[i].value = p;
            if (!bus_copy_str(&p, end, labels[i].value ? labels[i].value : ""))
                break;
        }
        if (i == n)
            return out;
    }
    size_t bytes = n * sizeof(sb_label);
    for (size_t i = 0; i < n; i++)
        bytes += strlen(labels[i].key ? labels[i].key : "") +
                 strlen(labels[i].value ? labels[i].value : "") + 2;
    sb_label *out = malloc(bytes);
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

/* Add a ring to the bus (caller holds the lock). */
static int bus_ring_register_locked(bus *b, bus_ring *r)
{
    size_t n = atomic_load_explicit(&b->nrings, memory_order_relaxed);
    bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_relaxed);
    if (n == t->cap) {
        bus_ring_table *nt = malloc(sizeof *nt + 2 * t->cap * sizeof nt->ring[0]);
        if (!nt)
            return -ENOMEM;
        nt->cap = 2 * t->cap;
        nt->older = t;
        memcpy(nt->ring, t->ring, n * sizeof nt->ring[0]);
        /* Published before the count: a reader that sees n + 1 rings sees this table. */
        atomic_store_explicit(&b->rings, nt, memory_order_release);
        t = nt;
    }
    t->ring[n] = r;
    atomic_store_explicit(&b->nrings, n + 1, memory_order_release);
    return 0;
}

/* A ring for the calling thread: one whose thread has exited, else a new one. */
static bus_ring *bus_ring_take(bus *b)
{
    bus_ring *r = NULL;
    uv_mutex_lock(&b->lock);
    size_t n = atomic_load_explicit(&b->nrings, memory_order_relaxed);
    bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_relaxed);
    for (size_t i = 1; i < n && !r; i++) {
        uint32_t expect = RING_HELD_BY_BUS;
        /* Acquire: what the exiting thread did as its producer happened before. */
        if (atomic_load_explicit(&t->ring[i]->holders, memory_order_relaxed) == expect &&
            atomic_compare_exchange_strong_explicit(&t->ring[i]->holders, &expect,
                                                    RING_HELD_BY_BUS | RING_HELD_BY_THREAD,
                                                    memory_order_acq_rel, memory_order_relaxed))
            r = t->ring[i];
    }
    if (!r) {
        size_t cap = b->capacity < BUS_THREAD_RING ? b->capacity : BUS_THREAD_RING;
        r = bus_ring_new(cap, b->uid, RING_HELD_BY_BUS | RING_HELD_BY_THREAD);
        if (r && bus_ring_register_locked(b, r) != 0) {
            bus_ring_free(r);
            r = NULL;
        }
    }
    uv_mutex_unlock(&b->lock);
    return r;
}

/* The calling thread's ring for this bus, found in (or added to) the list of rings it holds. */
static bus_ring *bus_ring_attach(bus *b)
{
    if (pthread_once(&bus_thread_once, bus_thread_key_init) != 0 || bus_thread_key_error != 0)
        return NULL;
    bus_ring *owned = pthread_getspecific(bus_thread_key);
    bus_ring *r = NULL;
    /* Forget the rings of buses freed since (this thread is their last holder). */
    for (bus_ring **link = &owned; *link;) {
        bus_ring *x = *link;
        if (!(atomic_load_explicit(&x->holders, memory_order_acquire) & RING_HELD_BY_BUS)) {
            *link = x->next_owned;
            if (tls_ring.ring == x)
                memset(&tls_ring, 0, sizeof tls_ring);
            bus_ring_free(x);
            continue;
        }
        if (x->bus_uid == b->uid)
            r = x;
        link = &x->next_owned;
    }
    int taken = 0;
    if (!r && (r = bus_ring_take(b)) != NULL) {
        r->next_owned = owned;
        owned = r;
        taken = 1;
    }
    /* Fails only on the thread's first ring (the key's storage): nothing was forgotten then. */
    if (pthread_setspecific(bus_thread_key, owned) != 0) {
        if (taken)
            bus_ring_let_go(r, RING_HELD_BY_THREAD);
        return NULL;
    }
    if (r) {
        tls_ring.b = b;
        tls_ring.uid = b->uid;
        tls_ring.ring = r;
    }
    return r;
}

/* The calling thread's ring: ring 0 on the loop thread, else the thread's own. */
static bus_ring *bus_ring_for_thread(bus *b, int *on_loop)
{
    uv_thread_t self = uv_thread_self();
    *on_loop = uv_thread_equal(&b->loop_thread, &self);
    if (*on_loop)
        return b->ring0;
    if (tls_ring.b == b && tls_ring.uid == b->uid)
        return tls_ring.ring;
    return bus_ring_attach(b);
}

/* Note the key of the event waiting at seq. Instead of growing, the map first drops the entries
 * of events already delivered and takes the size what is left needs. */
static int bus_coalesce_note(bus_ring *r, uint64_t key, uint64_t seq)
{
    u64map *m = &r->coalesce;
    uint64_t *v = u64map_find(m, key);
    int rc = 0;
    if (v) {
        *v = seq;
    } else {
        if (u64map_full(m)) {
            uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
            size_t live = 1;
            for (size_t i = 0; i < m->cap; i++)
                live += m->keys[i] && m->vals[i] >= head;
            size_t ncap = 64;
            while (ncap < live * 4)
                ncap *= 2;
            rc = u64map_rebuild(m, ncap, head);
        }
        if (rc == 0)
            u64map_insert(m, key, seq);
    }
    atomic_store_explicit(&r->coalesce_keys, m->count, memory_order_relaxed);
    atomic_store_explicit(&r->coalesce_slots, m->cap, memory_order_relaxed);
    return rc;
}

/* Replace a waiting event with the same key in place: returns 1 when it did, with the payload it
 * held in *stale (the caller releases it). */
static int bus_try_coalesce(bus_ring *r, uint32_t source, const char *topic, uint64_t key,
                            const sb_publish *pub, cJSON *payload, uint64_t mono, int64_t wall,
                            cJSON **stale)
{
    uint64_t *seq = u64map_find(&r->coalesce, key);
    if (!seq)
        return 0;
    bus_slot *s = &r->slots[*seq & r->mask];
    /* seq and key are written by this producer only: a slot filled since with a newer event is
     * not the one the map means. */
    if (s->seq != *seq || s->key != key)
        return 0;
    uint32_t expect = SLOT_READY;
    if (!atomic_compare_exchange_strong_explicit(&s->state, &expect, SLOT_UPDATING,
                                                 memory_order_acquire, memory_order_relaxed))
        return 0; /* taken by the loop (being delivered, or delivered): queue a new one */
    /* Ours until it is READY again: the loop waits, so its labels are still there to compare. */
    if (s->source != source || s->topic != topic || !bus_same_labels(s, pub)) {
        atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
        return 0; /* the same hash for another key */
    }
    *stale = s->payload;
    s->payload = payload;
    s->value = pub->value;
    s->mono_ns = mono;
    s->wall_ns = wall;
    atomic_store_explicit(&s->state, SLOT_READY, memory_order_release);
    return 1;
}

static int bus_payload_register(bus *b, cJSON *payload)
{
    uv_mutex_lock(&b->lock);
    int rc = u64map_put(&b->payloads, (uint64_t)(uintptr_t)payload, 1);
    uv_mutex_unlock(&b->lock);
    return rc;
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
    cJSON *payload = pub->payload;
    if (!topic || (payload && bus_payload_register(b, payload) != 0)) {
        cJSON_Delete(payload);
        return -ENOMEM;
    }
    /* Inside a dispatch the loop thread stamps with the drain's clock, read again only once a
     * few events went by: a decision made on a reading is stamped within a microsecond or so of
     * the real time. (Connectors stamp theirs with the reading's time: no read at all.) */
    uint64_t mono = pub->time_ns;
    if (!mono && on_loop && b->draining) {
        if (!b->drain_clock || b->dispatched - b->drain_clock_at >= 16) {
            b->drain_clock = bus_now_mono_ns();
            b->drain_clock_at = b->dispatched;
        }
        mono = b->drain_clock;
    } else if (!mono) {
        mono = bus_now_mono_ns();
    }
    /* Wall time from the monotonic stamp and an offset the loop refreshes each wake-up: one
     * clock read per publish instead of two. */
    int64_t wall = (int64_t)mono + atomic_load_explicit(&b->wall_offset, memory_order_relaxed);
    uint64_t key = 0;
    if (pub->flags & SB_EVENT_COALESCE) {
        key = bus_coalesce_key(source, pub);
        cJSON *stale = NULL;
        if (bus_try_coalesce(r, source, topic, key, pub, payload, mono, wall, &stale)) {
            if (stale)
                bus_payload_release(b, stale);
            bus_count(&r->published, 1);
            bus_count(&r->coalesced, 1);
            return 0;
        }
    }
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail - r->cached_head > r->mask)
        r->cached_head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - r->cached_head > r->mask) {
        bus_count(&r->dropped, 1);
        if (payload)
            bus_payload_release(b, payload);
        return -ENOBUFS;
    }
    bus_slot *s = &r->slots[tail & r->mask];
    s->labels = bus_copy_labels(pub->labels, pub->nlabels, s->inline_labels.bytes);
    if (pub->nlabels && !s->labels) {
        if (payload)
            bus_payload_release(b, payload);
        return -ENOMEM;
    }
    s->payload = payload;
    s->source = source;
    s->flags = pub->flags;
    s->nlabels = (uint32_t)pub->nlabels;
    s->topic = topic;
    s->mono_ns = mono;
    s->wall_ns = wall;
    s->value = pub->value;
    s->seq = tail;
    s->key = 0;
    if (key && bus_coalesce_note(r, key, tail) == 0)
        s->key = key;
    atomic_store_explicit(&s->state, SLOT_READY, memory_order_relaxed);
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    bus_count(&r->published, 1);
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
        .size = sizeof(sb_event),
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
    /* Index loop, re-reading the table: a callback may subscribe on this source (the array
     * moves) or add a source (the table moves). A source's index is never reused while a
     * drain is on. */
    uint32_t idx = BUS_SOURCE_INDEX(s->source);
    for (size_t i = 0; i < b->sources[idx].nsubs; i++) {
        bus_subscriber sub = bus_source_subs(&b->sources[idx])[i];
        if (!sub.cb)
            continue;
        if (sub.topic && sub.topic != s->topic) /* both interned */
            continue;
        sub.cb(sub.arg, &ev);
    }
    /* After the subscribers, while the source is still the one that published (a callback
     * may have removed it). */
    if (b->observer) {
        const bus_source *now = bus_source_get(b, s->source);
        if (now && now->observer_arg)
            b->observer(now->observer_arg, &ev);
    }
}

/* Take the slot from its producer: wait out a coalescing update in progress (a few stores). */
static void bus_claim(bus_slot *s)
{
    for (unsigned spins = 0;; spins++) {
        uint32_t expect = SLOT_READY;
        if (atomic_compare_exchange_weak_explicit(&s->state, &expect, SLOT_CLAIMED,
                                                  memory_order_acquire, memory_order_relaxed))
            return;
        if (spins >= 64)
            sched_yield(); /* the producer was preempted inside its update */
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
            b->dispatched++;
            /* Only a coalescible event can still be touched by its producer. Once claimed it
             * stays so: the producer leaves it alone until it fills the slot again, which it
             * does only after the head has passed it. */
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
    if (!was_draining)
        b->drain_clock = 0; /* stale: read at the first publish that needs it */
    for (;;) {
        size_t before = done;
        size_t nrings = atomic_load_explicit(&b->nrings, memory_order_acquire);
        bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_acquire);
        for (size_t i = 0; i < nrings && done < budget; i++) {
            size_t quota = budget - done < BUS_BATCH ? budget - done : BUS_BATCH;
            done += bus_drain_ring(b, t->ring[i], quota);
            /* What those deliveries published on the loop thread goes next, before more input. */
            if (i != 0 && done < budget)
                done += bus_drain_ring(b, b->ring0, budget - done);
        }
        if (done == before || done >= budget)
            break;
    }
    atomic_store_explicit(&b->delivered,
                          atomic_load_explicit(&b->delivered, memory_order_relaxed) + done,
                          memory_order_relaxed);
    b->draining = was_draining;
    if (!b->draining && b->subs_dirty) {
        b->subs_dirty = 0;
        for (size_t i = 1; i < b->nsources; i++) {
            if (!b->sources[i].id)
                bus_source_free_subs(&b->sources[i]);
            else
                bus_compact_source(&b->sources[i]);
        }
    }
    return done;
}

static int bus_has_queued(bus *b)
{
    size_t nrings = atomic_load_explicit(&b->nrings, memory_order_acquire);
    bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_acquire);
    for (size_t i = 0; i < nrings; i++)
        if (atomic_load_explicit(&t->ring[i]->head, memory_order_relaxed) !=
            atomic_load_explicit(&t->ring[i]->tail, memory_order_acquire))
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
    bus_ring_table *t = atomic_load_explicit(&b->rings, memory_order_acquire);
    for (size_t i = 0; i < nrings; i++) {
        bus_ring *r = t->ring[i];
        out->published += atomic_load_explicit(&r->published, memory_order_relaxed);
        out->coalesced += atomic_load_explicit(&r->coalesced, memory_order_relaxed);
        out->dropped += atomic_load_explicit(&r->dropped, memory_order_relaxed);
        /* The head first: read after it, the tail is never behind it. */
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        out->queued += (size_t)(atomic_load_explicit(&r->tail, memory_order_acquire) - head);
        out->coalesce_keys += atomic_load_explicit(&r->coalesce_keys, memory_order_relaxed);
        out->coalesce_slots += atomic_load_explicit(&r->coalesce_slots, memory_order_relaxed);
    }
    out->rings = nrings;
    out->sources = atomic_load_explicit(&b->source_slots, memory_order_relaxed);
    out->delivered = atomic_load_explicit(&b->delivered, memory_order_relaxed);
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
