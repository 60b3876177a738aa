/*
 * arena.h - memory that lives until the whole arena is freed: many small allocations, one owner,
 * one free path. Used by the config tree (everything a parsed file owns) and by each component's
 * option values (kept by the daemon across a reload without the rest of the tree).
 */
#ifndef SCALEBUS_ARENA_H
#define SCALEBUS_ARENA_H

#include <stddef.h>

typedef struct arena_chunk arena_chunk;

/* Zero-initialise (arena a = {0}); arena_release() frees everything and leaves it empty. */
typedef struct arena {
    arena_chunk *head;
    size_t grow; /* the next chunk's size: small at first, as a component's arena stays small */
} arena;

/* n zeroed bytes aligned for any type, or NULL when out of memory. */
void *arena_alloc(arena *a, size_t n);
/* A NUL-terminated copy of s (of its first n bytes), or NULL when out of memory. */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
void arena_release(arena *a);

#endif
