/*
 * policy_state.c - a policy's state across a restart of the daemon (scalebus/policy.h:
 * sb_policy_snapshot, sb_policy_restore): the stabilisation windows and rate-limit windows with
 * their times, the last decision and the time of the last change (cooldowns), and the start of a
 * run of zero demand (idle_after).
 *
 * The policy keeps time on the monotonic clock, which starts again at a reboot and means nothing
 * to another process. A snapshot writes each time as wall-clock milliseconds (its age at the
 * snapshot, taken from the wall clock now); a restore turns it back into a monotonic time by its
 * age on the wall clock now, so a restart after N seconds ages everything by N seconds. An entry
 * already older than its window is dropped. Right after a boot the monotonic clock may be younger
 * than an entry's age: the entry is then put at time 0, which ages it less than it should (it
 * counts a little longer: only ever stricter).
 *
 * Its own object file in libscalebus_policy.a: a plugin that does not call these does not link
 * libcjson.
 */
#define _POSIX_C_SOURCE 200809L

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "policy_internal.h"
#include "scalebus/policy.h"

/* The snapshot's own format: a restore refuses a newer one. */
#define POLICY_STATE_FORMAT 1
#define NS_PER_MS 1000000ll
/* The most entries one window may bring back (policy.c's WINDOW_CAP). */
#define RESTORE_WINDOW_MAX 4096

typedef struct clocks {
    uint64_t mono_ns;
    int64_t wall_ns;
} clocks;

static clocks clocks_now(void)
{
    struct timespec m, w;
    clock_gettime(CLOCK_MONOTONIC, &m);
    clock_gettime(CLOCK_REALTIME, &w);
    return (clocks){(uint64_t)m.tv_sec * 1000000000ull + (uint64_t)m.tv_nsec,
                    (int64_t)w.tv_sec * 1000000000ll + w.tv_nsec};
}

/* A monotonic time as wall-clock milliseconds. */
static double mono_to_wall_ms(const clocks *now, uint64_t t)
{
    uint64_t age = t < now->mono_ns ? now->mono_ns - t : 0;
    return (double)((now->wall_ns - (int64_t)age) / NS_PER_MS);
}

/* How long ago a wall-clock time in milliseconds was (0 when it is in the future: a clock set
 * back counts as no time passing). */
static uint64_t wall_ms_age(const clocks *now, double wall_ms)
{
    double age = (double)now->wall_ns - wall_ms * (double)NS_PER_MS;
    if (!(age > 0))
        return 0;
    return age >= 1.8e19 ? UINT64_MAX : (uint64_t)age;
}

static uint64_t age_to_mono(const clocks *now, uint64_t age)
{
    return age < now->mono_ns ? now->mono_ns - age : 0;
}

static cJSON *window_snapshot(const window *w, const clocks *now)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < w->len; i++) {
        const window_entry *e = policy_window_entry(w, i);
        cJSON *pair = cJSON_CreateArray();
        if (!pair || !cJSON_AddItemToArray(arr, pair) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateNumber(mono_to_wall_ms(now, e->t))) ||
            !cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)e->v))) {
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

cJSON *sb_policy_snapshot(const sb_policy *p)
{
    if (!p)
        return NULL;
    clocks now = clocks_now();
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddNumberToObject(o, "format", POLICY_STATE_FORMAT) != NULL;
    if (p->has_decided) {
        ok = ok && cJSON_AddNumberToObject(o, "decided", (double)p->decided);
        if (p->has_now)
            ok = ok && cJSON_AddNumberToObject(o, "decided_at_ms", mono_to_wall_ms(&now, p->now_ns));
    }
    if (p->has_change)
        ok = ok && cJSON_AddNumberToObject(o, "changed_at_ms", mono_to_wall_ms(&now, p->change_ns));
    if (p->zero_streak)
        ok = ok && cJSON_AddNumberToObject(o, "zero_since_ms",
                                           mono_to_wall_ms(&now, p->zero_since_ns));
    if (p->has_published) {
        ok = ok && cJSON_AddNumberToObject(o, "published", (double)p->published);
        ok = ok && cJSON_AddStringToObject(o, "reason", p->published_reason);
    }
    const struct {
        const char *name;
        const window *w;
    } windows[] = {{"stabilize_down", &p->rec_high},
                   {"stabilize_up", &p->rec_low},
                   {"step_down", &p->dec_high},
                   {"step_up", &p->dec_low}};
    cJSON *ws = ok ? cJSON_AddObjectToObject(o, "windows") : NULL;
    for (size_t i = 0; ws && ok && i < sizeof windows / sizeof windows[0]; i++) {
        if (windows[i].w->len == 0)
            continue;
        cJSON *arr = window_snapshot(windows[i].w, &now);
        ok = arr && cJSON_AddItemToObject(ws, windows[i].name, arr);
        if (!ok)
            cJSON_Delete(arr);
    }
    if (!ok || !ws) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A whole count in [0, SB_POLICY_COUNT_MAX]. */
static int count_ok(const cJSON *n)
{
    return cJSON_IsNumber(n) && isfinite(n->valuedouble) && n->valuedouble >= 0 &&
           n->valuedouble <= SB_POLICY_COUNT_MAX && n->valuedouble == floor(n->valuedouble);
}

static int time_ok(const cJSON *n)
{
    return cJSON_IsNumber(n) && isfinite(n->valuedouble) && n->valuedouble >= 0 &&
           n->valuedouble < 1e15; /* milliseconds: about the year 33658 */
}

/* Checks one window's entries ([[wall_ms, count], ...], in time order). */
static int window_check(const char *name, const cJSON *arr, char *err, size_t errlen)
{
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "windows.%s: expected an array", name);
        return -EINVAL;
    }
    int n = cJSON_GetArraySize(arr);
    if (n > RESTORE_WINDOW_MAX) {
        snprintf(err, errlen, "windows.%s: %d entries, at most %d", name, n, RESTORE_WINDOW_MAX);
        return -EINVAL;
    }
    double last = -1;
    int i = 0;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, arr)
    {
        const cJSON *t = cJSON_GetArrayItem(pair, 0), *v = cJSON_GetArrayItem(pair, 1);
        if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2 || !time_ok(t) || !count_ok(v)) {
            snprintf(err, errlen, "windows.%s[%d]: expected [time_ms, count]", name, i);
            return -EINVAL;
        }
        if (t->valuedouble < last) {
            snprintf(err, errlen, "windows.%s[%d]: out of time order", name, i);
            return -EINVAL;
        }
        last = t->valuedouble;
        i++;
    }
    return 0;
}

/* Puts back the entries still younger than span (a window this policy does not use, span 0,
 * stays empty). */
static void window_restore(window *w, const cJSON *arr, uint64_t span, const clocks *now)
{
    w->len = 0;
    w->head = 0;
    if (!arr || span == 0)
        return;
    const cJSON *pair;
    cJSON_ArrayForEach(pair, arr)
    {
        uint64_t age = wall_ms_age(now, cJSON_GetArrayItem(pair, 0)->valuedouble);
        if (age >= span)
            continue;
        policy_window_push(w, age_to_mono(now, age), (int64_t)cJSON_GetArrayItem(pair, 1)->valuedouble);
    }
}

int sb_policy_restore(sb_policy *p, const cJSON *snap, char *err, size_t errlen)
{
    if (!p || !cJSON_IsObject(snap)) {
        snprintf(err, errlen, "expected an object");
        return -EINVAL;
    }
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(snap, "format");
    if (!cJSON_IsNumber(format) || format->valuedouble < 1) {
        snprintf(err, errlen, "format: expected a number from 1");
        return -EINVAL;
    }
    if (format->valuedouble > POLICY_STATE_FORMAT) {
        snprintf(err, errlen, "format %.0f is newer than this policy library's %d",
                 format->valuedouble, POLICY_STATE_FORMAT);
        return -EINVAL;
    }
    /* Everything is checked before anything changes: a refused snapshot leaves the policy new. */
    const cJSON *decided = cJSON_GetObjectItemCaseSensitive(snap, "decided");
    const cJSON *decided_at = cJSON_GetObjectItemCaseSensitive(snap, "decided_at_ms");
    const cJSON *changed = cJSON_GetObjectItemCaseSensitive(snap, "changed_at_ms");
    const cJSON *zero = cJSON_GetObjectItemCaseSensitive(snap, "zero_since_ms");
    const cJSON *published = cJSON_GetObjectItemCaseSensitive(snap, "published");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(snap, "reason");
    const cJSON *windows = cJSON_GetObjectItemCaseSensitive(snap, "windows");
    const struct {
        const char *name;
        const cJSON *v;
        int (*ok)(const cJSON *);
    } fields[] = {{"decided", decided, count_ok},     {"decided_at_ms", decided_at, time_ok},
                  {"changed_at_ms", changed, time_ok}, {"zero_since_ms", zero, time_ok},
                  {"published", published, count_ok}};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (fields[i].v && !fields[i].ok(fields[i].v)) {
            snprintf(err, errlen, "%s: expected a %s", fields[i].name,
                     fields[i].ok == count_ok ? "count" : "time in milliseconds");
            return -EINVAL;
        }
    }
    if (reason && !cJSON_IsString(reason)) {
        snprintf(err, errlen, "reason: expected a string");
        return -EINVAL;
    }
    if (windows && !cJSON_IsObject(windows)) {
        snprintf(err, errlen, "windows: expected an object");
        return -EINVAL;
    }
    const struct {
        const char *name;
        window *w;
        uint64_t span;
    } ws[] = {{"stabilize_down", &p->rec_high, p->stabilize_down_ns},
              {"stabilize_up", &p->rec_low, p->stabilize_up_ns},
              {"step_down", &p->dec_high, p->o.max_step_down >= 0 ? p->period_ns : 0},
              {"step_up", &p->dec_low, p->o.max_step_up >= 0 ? p->period_ns : 0}};
    enum { NWINDOWS = sizeof ws / sizeof ws[0] };
    const cJSON *warr[NWINDOWS];
    for (size_t i = 0; i < NWINDOWS; i++) {
        warr[i] = windows ? cJSON_GetObjectItemCaseSensitive(windows, ws[i].name) : NULL;
        int rc = warr[i] ? window_check(ws[i].name, warr[i], err, errlen) : 0;
        if (rc != 0)
            return rc;
    }

    clocks now = clocks_now();
    if (decided) {
        p->has_decided = 1;
        p->decided = (int64_t)decided->valuedouble;
    }
    if (decided && decided_at) {
        /* The newest time seen: never later than now, so the next event is not "older". */
        p->has_now = 1;
        p->now_ns = age_to_mono(&now, wall_ms_age(&now, decided_at->valuedouble));
    }
    if (changed) {
        uint64_t age = wall_ms_age(&now, changed->valuedouble);
        uint64_t longest =
            p->cooldown_up_ns > p->cooldown_down_ns ? p->cooldown_up_ns : p->cooldown_down_ns;
        /* A change older than both cooldowns holds nothing back any more. */
        if (age < longest) {
            p->has_change = 1;
            p->change_ns = age_to_mono(&now, age);
        }
    }
    if (zero) {
        p->zero_streak = 1;
        p->zero_since_ns = age_to_mono(&now, wall_ms_age(&now, zero->valuedouble));
    }
    if (published) {
        p->has_published = 1;
        p->published = (int64_t)published->valuedouble;
        snprintf(p->published_reason, sizeof p->published_reason, "%s",
                 reason ? reason->valuestring : "");
    }
    for (size_t i = 0; i < NWINDOWS; i++)
        window_restore(ws[i].w, warr[i], ws[i].span, &now);
    return 0;
}

/* ---- the connector glue's callbacks ---- */


cJSON *sb_policy_connector_snapshot(void *state)
{
    policy_connector *c = state;
    sb_policy *p = c && c->ops->policy ? c->ops->policy(c->conn) : NULL;
    return p ? sb_policy_snapshot(p) : NULL;
}

int sb_policy_connector_restore(void *state, const cJSON *snap, char *err, size_t errlen)
{
    policy_connector *c = state;
    sb_policy *p = c && c->ops->policy ? c->ops->policy(c->conn) : NULL;
    if (!p) {
        snprintf(err, errlen, "this connector keeps no policy state");
        return -EINVAL;
    }
    return sb_policy_restore(p, snap, err, errlen);
}
