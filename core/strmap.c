/*
 * strmap.c - the core's string -> pointer map (see strmap.h). Each slot keeps its key's hash, so
 * a probe compares strings only on a full hash match and growing never rehashes a string.
 * Deletion shifts the rest of the probe run back (no tombstones), so lookups never slow down
 * after many deletions.
 */
#include "strmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint64_t strmap_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ull;
    }
    return h;
}

/* The slot holding key, or the empty slot where it would go. Needs cap > count. */
static strmap_slot *strmap_find(const strmap *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        strmap_slot *s = &m->slots[i];
        if (s->key == NULL || (s->hash == h && strcmp(s->key, key) == 0))
            return s;
    }
}

static int strmap_grow(strmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 64;
    strmap_slot *ns = calloc(ncap, sizeof *ns);
    if (ns == NULL)
        return -ENOMEM;
    strmap old = *m;
    m->slots = ns;
    m->cap = ncap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key != NULL)
            *strmap_find(m, old.slots[i].key, old.slots[i].hash) = old.slots[i];
    free(old.slots);
    return 0;
}

void *strmap_get(const strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    const strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    return s->key != NULL ? s->val : NULL;
}

int strmap_put(strmap *m, const char *key, void *val)
{
    if (val == NULL)
        return -EINVAL;
    if ((m->count + 1) * 2 > m->cap && strmap_grow(m) != 0)
        return -ENOMEM;
    uint64_t h = strmap_hash(key);
    strmap_slot *s = strmap_find(m, key, h);
    if (s->key == NULL)
        m->count++;
    *s = (strmap_slot){.key = key, .val = val, .hash = h};
    return 0;
}

void *strmap_del(strmap *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t mask = m->cap - 1;
    strmap_slot *s = strmap_find(m, key, strmap_hash(key));
    if (s->key == NULL)
        return NULL;
    void *val = s->val;
    size_t hole = (size_t)(s - m->slots);
    /* Move back every later entry of the run that may live in the hole: one whose home slot is
     * not cyclically in (hole, j]. */
    for (size_t j = (hole + 1) & mask; m->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = (size_t)m->slots[j].hash & mask;
        int stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole] = (strmap_slot){0};
    m->count--;
    return val;
}

void strmap_free(strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}
