/*
 * arena.c - chunked bump allocation (see arena.h). Chunks grow from 512 bytes to 64 KiB, so a
 * component's small arena stays small and a 30,000-component tree costs a few hundred mallocs;
 * a block bigger than a quarter chunk gets a chunk of its own.
 *
 * Under AddressSanitizer every allocation gets its own block, so an overrun is caught instead of
 * landing silently in the next object of a shared chunk.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define ARENA_EXACT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_EXACT 1
#endif
#endif
#ifndef ARENA_EXACT
#define ARENA_EXACT 0
#endif

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap;
};

#define ARENA_ALIGN ((size_t)16)
#define ARENA_FIRST_CHUNK ((size_t)512)
#define ARENA_CHUNK_BYTES ((size_t)64 * 1024)
#define ARENA_HEADER ((sizeof(arena_chunk) + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1))

void *arena_alloc(arena *a, size_t n)
{
    if (n > SIZE_MAX / 4)
        return NULL;
    size_t need = ARENA_EXACT ? (n ? n : 1) : ((n + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1));
    if (need == 0)
        need = ARENA_ALIGN;
    arena_chunk *c = a->head;
    if (ARENA_EXACT || c == NULL || c->cap - c->used < need) {
        int own = ARENA_EXACT || need > ARENA_CHUNK_BYTES / 4;
        size_t base = a->grow ? a->grow : ARENA_FIRST_CHUNK;
        size_t cap = own ? need : (need > base ? need : base);
        if (!own)
            a->grow = base * 2 > ARENA_CHUNK_BYTES ? ARENA_CHUNK_BYTES : base * 2;
        c = malloc(ARENA_HEADER + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        if (own && a->head != NULL && !ARENA_EXACT) {
            /* A big block goes behind the current chunk, which keeps serving small ones. */
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (char *)c + ARENA_HEADER + c->used;
    c->used += need;
    memset(p, 0, need);
    return p;
}

char *arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *arena_strdup(arena *a, const char *s)
{
    return arena_strndup(a, s, strlen(s));
}

void arena_release(arena *a)
{
    arena_chunk *c = a->head;
    while (c != NULL) {
        arena_chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->grow = 0;
}
