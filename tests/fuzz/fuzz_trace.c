/*
 * fuzz_trace.c - libFuzzer target for the trace reader of `scalebus simulate` (core/simulate.c):
 * reads arbitrary bytes as a trace, as simulate reads a file or a pipe, and checks every row
 * against a pipeline with two triggers, a connector and a scaler. The reader is a stream, so the
 * same bytes are also handed over 1, 2, 3, 5 and a few dozen bytes at a time, and every way must
 * agree with reading them whole: same result, same rows (their digest), same errors, word for
 * word. One input in sixteen is also repeated past the line limit (64 KiB): every way must still
 * agree, and without a line break it is one line too long, refused. Besides the sanitizers' checks
 * it traps when a documented promise breaks: a result other than 0 or -EINVAL, a valid trace with
 * errors or without rows, an invalid one that says nothing, an error line not shaped
 * NAME:LINE: message (or NAME: message), a line number past the end, or more or fewer error
 * lines than the errors found.
 *
 * Build: cmake -DCMAKE_C_COMPILER=clang -DSB_FUZZ=ON.
 * Run: tests/fuzz/run.sh BUILD_DIR SECONDS trace
 */
#define _POSIX_C_SOURCE 200809L /* open_memstream */

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const ids[] = {"queue", "cpu", "pass", "workers"};
static const sb_kind kinds[] = {SB_KIND_TRIGGER, SB_KIND_TRIGGER, SB_KIND_CONNECTOR,
                                SB_KIND_SCALER};

typedef struct result {
    int rc;
    simulate_trace_summary sum;
    char *errors; /* what was printed */
    size_t len;
} result;

static void read_trace(const void *data, size_t size, size_t chunk, result *r)
{
    FILE *err = open_memstream(&r->errors, &r->len);
    if (!err)
        abort();
    r->rc = simulate_check_trace("fuzz.csv", data, size, chunk, ids, kinds, 4, err, &r->sum);
    if (fclose(err) != 0)
        abort();
}

/* Every line of the errors: "fuzz.csv:LINE: message" with 1 <= LINE <= the last line read, or
 * "fuzz.csv: message". Returns the number of lines. */
static size_t check_errors(const result *r)
{
    size_t nlines = 0;
    const char *p = r->errors, *end = r->errors + r->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            __builtin_trap(); /* every message ends its line */
        if (strncmp(p, "fuzz.csv:", 9) != 0)
            __builtin_trap();
        const char *q = p + 9;
        if (*q != ' ') {
            char *after;
            unsigned long line = strtoul(q, &after, 10);
            if (after == q || *after != ':' || after[1] != ' ' || line < 1 || line > r->sum.lines)
                __builtin_trap();
        }
        nlines++;
        p = nl + 1;
    }
    return nlines;
}

static void check_promises(const result *r)
{
    if (r->rc != 0 && r->rc != -EINVAL)
        __builtin_trap();
    if (r->rc == 0 && (r->sum.errors != 0 || r->sum.rows == 0 || r->sum.stopped || r->len != 0))
        __builtin_trap();
    if (r->rc != 0 && r->len == 0)
        __builtin_trap(); /* an invalid trace always says why */
    /* The first 20 errors, an over-long line, "... and N more" past 20, and "no readings"
     * when nothing else was wrong: one line each. */
    uint64_t e = r->sum.errors;
    size_t want = (size_t)(e < 20 ? e : 20) + (r->sum.stopped ? 1 : 0) + (e > 20 ? 1 : 0) +
                  (e == 0 && !r->sum.stopped && r->sum.rows == 0 ? 1 : 0);
    if (check_errors(r) != want)
        __builtin_trap();
}

static void same(const result *a, const result *b)
{
    if (a->rc != b->rc || a->sum.rows != b->sum.rows || a->sum.errors != b->sum.errors ||
        a->sum.lines != b->sum.lines || a->sum.digest != b->sum.digest ||
        a->sum.stopped != b->sum.stopped || a->len != b->len ||
        memcmp(a->errors, b->errors, a->len) != 0)
        __builtin_trap();
}

static void read_every_way(const uint8_t *data, size_t size, const size_t *chunks, size_t n)
{
    result whole = {0};
    read_trace(data, size, 0, &whole);
    check_promises(&whole);
    if (whole.sum.stopped && size <= SIMULATE_TRACE_MAX_LINE)
        __builtin_trap(); /* only a line past the limit stops the reading */
    for (size_t i = 0; i < n; i++) {
        result part = {0};
        read_trace(data, size, chunks[i], &part);
        same(&whole, &part);
        free(part.errors);
    }
    free(whole.errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3ull;
    const size_t chunks[] = {1, 2, 3, 5, 17 + (size_t)(h % 64)};
    read_every_way(data, size, chunks, sizeof chunks / sizeof chunks[0]);

    /* One input in sixteen, repeated past the line limit: every way of reading it must still
     * agree, and without a line break it is one line too long, refused. */
    if ((h & 15) == 0 && size > 0) {
        size_t big = SIMULATE_TRACE_MAX_LINE + 1024;
        uint8_t *rep = malloc(big);
        if (!rep)
            return 0;
        for (size_t i = 0; i < big; i++)
            rep[i] = data[i % size];
        const size_t big_chunks[] = {7, 4093};
        read_every_way(rep, big, big_chunks, 2);
        int has_break = memchr(data, '\n', size) || memchr(data, '\r', size);
        result r = {0};
        read_trace(rep, big, 0, &r);
        if (!has_break && !r.sum.stopped)
            __builtin_trap(); /* one line of 65 KiB: refused */
        free(r.errors);
        free(rep);
    }
    return 0;
}
