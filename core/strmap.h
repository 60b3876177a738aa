/*
 * strmap.h - a string -> pointer hash map (open addressing, linear probing, FNV-1a), the one the
 * core shares: component ids in a parsed file, YAML anchors. (The daemon's instances by id live
 * in a leaner map of its own, one pointer per entry: see core/daemon.c.)
 *
 * The map does not copy keys: a key must stay valid while its entry is in the map (an id in the
 * config's arena, an instance's own id). Values are never NULL, so strmap_get()'s NULL means
 * "absent". Zero-initialise (strmap m = {0}); strmap_free() leaves it empty and reusable.
 */
#ifndef SCALEBUS_STRMAP_H
#define SCALEBUS_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_slot {
    const char *key; /* NULL: an empty slot */
    void *val;
    uint64_t hash;
} strmap_slot;

typedef struct strmap {
    strmap_slot *slots;
    size_t cap, count; /* cap is 0 or a power of two, always more than twice count */
} strmap;

/* The value stored for key, or NULL. */
void *strmap_get(const strmap *m, const char *key);
/* Adds key -> val, or replaces the entry with an equal key (key and value both: the new key is
 * the one that must stay valid). Returns 0, -EINVAL for a NULL val, or -ENOMEM. */
int strmap_put(strmap *m, const char *key, void *val);
/* Removes key; returns the value it had, or NULL when it was not there. */
void *strmap_del(strmap *m, const char *key);
void strmap_free(strmap *m);

#endif
