/*
 * backoff.c - exponential back-off with jitter, and Retry-After (scalebus/poll.h).
 */
#define _GNU_SOURCE /* timegm */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "scalebus/poll.h"

/* A server asking for more than this is taken at this. */
#define RETRY_AFTER_MAX_MS (3600u * 1000u)

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

void sb_backoff_init(sb_backoff *b, uint64_t base_ms, uint64_t max_ms)
{
    b->base_ms = base_ms ? base_ms : 1;
    b->max_ms = max_ms < b->base_ms ? b->base_ms : max_ms;
    b->attempt = 0;
    /* Different seeds per back-off and per process, so many clients do not retry in step. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    b->rng = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)(uintptr_t)b ^ (uint64_t)ts.tv_sec;
    if (b->rng == 0)
        b->rng = 0x9e3779b97f4a7c15ull;
}

void sb_backoff_reset(sb_backoff *b)
{
    b->attempt = 0;
}

uint64_t sb_backoff_next(sb_backoff *b, uint64_t retry_after_ms)
{
    uint64_t d = b->base_ms;
    for (uint32_t i = 0; i < b->attempt && d < b->max_ms; i++)
        d *= 2;
    if (d > b->max_ms)
        d = b->max_ms;
    if (b->attempt < UINT32_MAX)
        b->attempt++;
    /* Uniform in [d/2, d]: spread out, never shorter than half the step. */
    uint64_t half = d / 2;
    uint64_t delay = half + (d - half ? xorshift64(&b->rng) % (d - half + 1) : 0);
    if (retry_after_ms > 0) {
        if (retry_after_ms > RETRY_AFTER_MAX_MS)
            retry_after_ms = RETRY_AFTER_MAX_MS;
        if (delay < retry_after_ms)
            delay = retry_after_ms;
    }
    return delay;
}

static int month_index(const char *m)
{
    static const char *const names[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    for (int i = 0; i < 12; i++)
        if (strncmp(m, names[i], 3) == 0)
            return i;
    return -1;
}

uint64_t sb_retry_after_ms(const char *v, int64_t now_wall_s)
{
    if (!v)
        return 0;
    while (*v == ' ' || *v == '\t')
        v++;
    if (isdigit((unsigned char)*v)) {
        uint64_t secs = 0;
        const char *p = v;
        for (; isdigit((unsigned char)*p); p++) {
            secs = secs * 10 + (uint64_t)(*p - '0');
            if (secs > RETRY_AFTER_MAX_MS / 1000)
                return RETRY_AFTER_MAX_MS;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        return *p ? 0 : secs * 1000;
    }
    /* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the one form servers send today). */
    char wday[4], mon[4], zone[4];
    int day, year, hh, mm, ss;
    if (sscanf(v, "%3s, %d %3s %d %d:%d:%d %3s", wday, &day, mon, &year, &hh, &mm, &ss, zone) != 8)
        return 0;
    int mi = month_index(mon);
    if (mi < 0 || strcmp(zone, "GMT") != 0 || day < 1 || day > 31 || year < 1970 || year > 9999 ||
        hh > 23 || mm > 59 || ss > 60 || hh < 0 || mm < 0 || ss < 0)
        return 0;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = year - 1900;
    tm.tm_mon = mi;
    tm.tm_mday = day;
    tm.tm_hour = hh;
    tm.tm_min = mm;
    tm.tm_sec = ss;
    int64_t at = (int64_t)timegm(&tm);
    if (at <= now_wall_s)
        return 0;
    uint64_t ms = (uint64_t)(at - now_wall_s) * 1000;
    return ms > RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : ms;
}

uint64_t sb_http_retry_after_ms(const sb_http_response *res)
{
    if (!res)
        return 0;
    for (size_t i = 0; i < res->nheaders; i++)
        if (strcasecmp(res->headers[i].key, "retry-after") == 0)
            return sb_retry_after_ms(res->headers[i].value, (int64_t)time(NULL));
    return 0;
}
