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

typedef struct bus_slot {
    uint32_t source;
    uint32_t flags;
    const char *topic;
    uint64_t mono_ns;
    int64_t wall_ns;
    double value;
    sb_label *labels; /* one block: the label array, then its strings */
    size_t nlabels;
    cJSON *payload;
    uint64_t key; /* coalescing key, 0 when not registered */
} bus_slot;

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
    uv_mutex_t lock;

    /* guarded by lock */
    bus_slot *ring;
    size_t mask;
    uint64_t head, tail; /* sequence numbers: head is the next to deliver */
    u64map coalesce;     /* key -> sequence number of the waiting event */
    u64map payloads;     /* cJSON pointer -> reference count */
    const char *topics[BUS_MAX_TOPICS];
    size_t ntopics;
    uint64_t published, coalesced, dropped;

    /* loop thread only */
    bus_source *sources; /* index 0 unused */
    size_t nsources, sources_cap;
    int64_t next_sub_id;
    uint64_t delivered;
    int draining;
    int subs_dirty;
};

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
    size_t cap = 16;
    if (capacity == 0)
        capacity = BUS_DEFAULT_CAPACITY;
    while (cap < capacity)
        cap <<= 1;
    b->ring = calloc(cap, sizeof *b->ring);
    b->sources = calloc(16, sizeof *b->sources);
    if (!b->ring || !b->sources || uv_mutex_init(&b->lock) != 0) {
        free(b->ring);
        free(b->sources);
        free(b);
        return NULL;
    }
    b->sources_cap = 16;
    b->nsources = 1;
    b->mask = cap - 1;
    b->loop = loop;
    b->loop_thread = uv_thread_self();
    b->next_sub_id = 1;
    if (uv_async_init(loop, &b->wake, bus_on_wake) != 0) {
        uv_mutex_destroy(&b->lock);
        free(b->ring);
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

static void bus_on_closed(uv_handle_t *h)
{
    bus *b = h->data;
    for (uint64_t seq = b->head; seq != b->tail; seq++) {
        bus_slot *s = &b->ring[seq & b->mask];
        free(s->labels);
        bus_payload_unref_locked(b, s->payload);
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
    u64map_free(&b->coalesce);
    u64map_free(&b->payloads);
    uv_mutex_destroy(&b->lock);
    free(b->sources);
    free(b->ring);
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
    bus_subscriber *sub = &s->subs[s->nsubs++];
    sub->id = b->next_sub_id++;
    sub->topic = topic;
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

/* Caller holds the lock. Topics are interned so a queued event needs no copy of its topic. */
static const char *bus_intern_topic_locked(bus *b, const char *topic)
{
    for (size_t i = 0; i < b->ntopics; i++)
        if (b->topics[i] == topic || strcmp(b->topics[i], topic) == 0)
            return b->topics[i];
    if (b->ntopics == BUS_MAX_TOPICS)
        return NULL;
    char *copy = strdup(topic);
    if (!copy)
        return NULL;
    b->topics[b->ntopics++] = copy;
    return copy;
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

/* One allocation holding the label array and all its strings. */
static sb_label *bus_copy_labels(const sb_label *labels, size_t n)
{
    if (n == 0)
        return NULL;
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

int bus_publish(bus *b, uint32_t source, const sb_publish *pub)
{
    if (!b || !pub || !pub->topic || (pub->nlabels && !pub->labels))
        return -EINVAL;
    uint64_t mono = bus_now_mono_ns();
    int64_t wall = bus_now_wall_ns();
    int coalesce = (pub->flags & SB_EVENT_COALESCE) != 0;
    uint64_t key = coalesce ? bus_coalesce_key(source, pub) : 0;
    /* Copy labels before taking the lock: the allocation is the slow part. */
    sb_label *labels = bus_copy_labels(pub->labels, pub->nlabels);
    if (pub->nlabels && !labels) {
        cJSON_Delete(pub->payload);
        return -ENOMEM;
    }

    int rc = 0, wake = 0;
    cJSON *stale_payload = NULL;
    sb_label *stale_labels = NULL;
    uv_mutex_lock(&b->lock);
    const char *topic = bus_intern_topic_locked(b, pub->topic);
    if (!topic) {
        rc = -ENOMEM;
        goto refuse;
    }
    if (coalesce) {
        uint64_t *seq = u64map_find(&b->coalesce, key);
        if (seq && *seq >= b->head && *seq < b->tail) {
            bus_slot *s = &b->ring[*seq & b->mask];
            if (s->source == source && s->topic == topic && s->key == key &&
                bus_same_labels(s, pub)) {
                /* Newest reading wins; the waiting slot keeps its place in the order. */
                s->value = pub->value;
                s->mono_ns = mono;
                s->wall_ns = wall;
                stale_payload = s->payload;
                s->payload = pub->payload;
                if (pub->payload && u64map_put(&b->payloads, (uint64_t)(uintptr_t)pub->payload, 1)) {
                    s->payload = NULL;
                    cJSON_Delete(pub->payload);
                }
                b->coalesced++;
                stale_labels = labels;
                if (stale_payload)
                    bus_payload_unref_locked(b, stale_payload);
                uv_mutex_unlock(&b->lock);
                free(stale_labels);
                return 0;
            }
        }
    }
    /* Other threads may fill only three quarters of the ring: the rest is kept for events the
     * loop thread derives while dispatching (a connector's decision on a reading), so a flood of
     * readings cannot starve the next hop of a pipeline. */
    uv_thread_t self = uv_thread_self();
    int on_loop = uv_thread_equal(&b->loop_thread, &self);
    uint64_t limit = on_loop ? b->mask + 1 : (b->mask + 1) - (b->mask + 1) / 4;
    if (b->tail - b->head >= limit) {
        b->dropped++;
        rc = -ENOBUFS;
        goto refuse;
    }
    if (pub->payload && u64map_put(&b->payloads, (uint64_t)(uintptr_t)pub->payload, 1) != 0) {
        rc = -ENOMEM;
        goto refuse;
    }
    bus_slot *s = &b->ring[b->tail & b->mask];
    s->source = source;
    s->flags = pub->flags;
    s->topic = topic;
    s->mono_ns = mono;
    s->wall_ns = wall;
    s->value = pub->value;
    s->labels = labels;
    s->nlabels = pub->nlabels;
    s->payload = pub->payload;
    s->key = 0;
    if (coalesce && u64map_put(&b->coalesce, key, b->tail) == 0)
        s->key = key;
    wake = (b->tail == b->head);
    b->tail++;
    b->published++;
    uv_mutex_unlock(&b->lock);
    /* A publish from inside dispatch is picked up by the running drain without a wake-up. */
    if (wake && !(on_loop && b->draining))
        uv_async_send(&b->wake);
    return 0;

refuse:
    uv_mutex_unlock(&b->lock);
    free(labels);
    cJSON_Delete(pub->payload);
    return rc;
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
        if (sub.topic && sub.topic != s->topic && strcmp(sub.topic, s->topic) != 0)
            continue;
        sub.cb(sub.arg, &ev);
    }
}

/* Deliver up to `budget` events; returns how many. */
static size_t bus_drain(bus *b, size_t budget)
{
    bus_slot batch[BUS_BATCH];
    size_t done = 0;
    int was_draining = b->draining;
    b->draining = 1;
    while (done < budget) {
        size_t n = 0;
        uv_mutex_lock(&b->lock);
        while (n < BUS_BATCH && b->head != b->tail && done + n < budget) {
            bus_slot *s = &b->ring[b->head & b->mask];
            batch[n++] = *s;
            if (s->key) {
                uint64_t *seq = u64map_find(&b->coalesce, s->key);
                if (seq && *seq == b->head)
                    u64map_del(&b->coalesce, s->key);
            }
            b->head++;
        }
        uv_mutex_unlock(&b->lock);
        if (n == 0)
            break;
        int any_payload = 0;
        for (size_t i = 0; i < n; i++) {
            bus_dispatch_one(b, &batch[i]);
            free(batch[i].labels);
            any_payload |= batch[i].payload != NULL;
        }
        if (any_payload) {
            uv_mutex_lock(&b->lock);
            for (size_t i = 0; i < n; i++)
                bus_payload_unref_locked(b, batch[i].payload);
            uv_mutex_unlock(&b->lock);
        }
        b->delivered += n;
        done += n;
    }
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

static void bus_on_wake(uv_async_t *h)
{
    bus *b = h->data;
    bus_drain(b, BUS_BUDGET);
    uv_mutex_lock(&b->lock);
    int more = b->head != b->tail;
    uv_mutex_unlock(&b->lock);
    /* Come back next iteration so timers and I/O are not starved by a flood. */
    if (more)
        uv_async_send(&b->wake);
}

void bus_flush(bus *b)
{
    while (bus_drain(b, SIZE_MAX) > 0) {
    }
}

void bus_get_stats(bus *b, bus_stats *out)
{
    uv_mutex_lock(&b->lock);
    out->published = b->published;
    out->coalesced = b->coalesced;
    out->dropped = b->dropped;
    out->queued = (size_t)(b->tail - b->head);
    uv_mutex_unlock(&b->lock);
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
