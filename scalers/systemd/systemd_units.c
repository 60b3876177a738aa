/*
 * systemd_units.c - unit names, indexes, states, job results and transient-unit properties for
 * the systemd scaler (see systemd_units.h). Pure functions: no bus, no allocation but the
 * properties' own strings.
 */
#define _POSIX_C_SOURCE 200809L

#include "systemd_units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The characters systemd allows in a unit name's prefix (unit_name_is_valid). */
static int unit_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
           c == '_' || c == '.' || c == '-' || c == '\\';
}

static int prefix_ok(const char *s, size_t n)
{
    if (n == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!unit_char_ok(s[i]))
            return 0;
    return 1;
}

int sd_naming_from_template(sd_naming *n, const char *unit, char *err, size_t errlen)
{
    static const char tail[] = "@.service";
    size_t len = strlen(unit), tl = sizeof tail - 1;
    if (len <= tl || strcmp(unit + len - tl, tail) != 0 || !prefix_ok(unit, len - tl)) {
        char shown[128];
        sd_clean_text(unit, shown, sizeof shown);
        snprintf(err, errlen,
                 "unit: expected a template service such as ci-agent@.service, got '%s'", shown);
        return -EINVAL;
    }
    if (len - tl + 2 + 20 >= sizeof n->head) {
        snprintf(err, errlen, "unit: the name is too long (%zu characters)", len);
        return -EINVAL;
    }
    memcpy(n->head, unit, len - tl + 1); /* up to and with the '@' */
    n->head[len - tl + 1] = '\0';
    strcpy(n->tail, ".service");
    return 0;
}

int sd_naming_from_prefix(sd_naming *n, const char *prefix, char *err, size_t errlen)
{
    size_t len = strlen(prefix);
    if (!prefix_ok(prefix, len)) {
        char shown[128];
        sd_clean_text(prefix, shown, sizeof shown);
        snprintf(err, errlen,
                 "prefix: expected letters, digits and : _ . - only (a unit name), got '%s'",
                 shown);
        return -EINVAL;
    }
    if (len + 2 + 20 + 8 >= sizeof n->head) {
        snprintf(err, errlen, "prefix: too long (%zu characters)", len);
        return -EINVAL;
    }
    snprintf(n->head, sizeof n->head, "%s-", prefix);
    strcpy(n->tail, ".service");
    return 0;
}

int sd_unit_name(const sd_naming *n, int64_t index, char *buf, size_t len)
{
    int w = snprintf(buf, len, "%s%" PRId64 "%s", n->head, index, n->tail);
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

int sd_unit_pattern(const sd_naming *n, char *buf, size_t len)
{
    int w = snprintf(buf, len, "%s*%s", n->head, n->tail);
    return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

int64_t sd_unit_index(const sd_naming *n, const char *name)
{
    size_t hl = strlen(n->head), tl = strlen(n->tail), len = strlen(name);
    if (len <= hl + tl || strncmp(name, n->head, hl) != 0 || strcmp(name + len - tl, n->tail) != 0)
        return -1;
    const char *d = name + hl;
    size_t nd = len - hl - tl;
    if (nd > 18 || d[0] == '0')
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < nd; i++) {
        if (d[i] < '0' || d[i] > '9')
            return -1;
        v = v * 10 + (d[i] - '0');
    }
    return v;
}

int64_t sd_lowest_free_index(const int64_t *used, size_t nused)
{
    /* At most nused indexes are taken, so one of 1 .. nused + 1 is free. */
    for (int64_t i = 1;; i++) {
        size_t k = 0;
        while (k < nused && used[k] != i)
            k++;
        if (k == nused)
            return i;
    }
}

sb_member_state sd_member_state(const char *s)
{
    if (!s)
        return 0;
    if (strcmp(s, "active") == 0 || strcmp(s, "reloading") == 0)
        return SB_MEMBER_READY;
    if (strcmp(s, "activating") == 0)
        return SB_MEMBER_STARTING;
    if (strcmp(s, "deactivating") == 0)
        return SB_MEMBER_STOPPING;
    if (strcmp(s, "failed") == 0)
        return SB_MEMBER_FAILED;
    return 0;
}

sb_action_result sd_job_result(const char *r)
{
    if (r && (strcmp(r, "done") == 0 || strcmp(r, "skipped") == 0))
        return SB_ACTION_DONE;
    if (r && strcmp(r, "canceled") == 0)
        return SB_ACTION_BUSY;
    return SB_ACTION_FAILED;
}

/* ---- numbers ----------------------------------------------------------------------------- */

/* A decimal integer, then the rest of the string in *rest. */
static int parse_u64_prefix(const char *s, uint64_t *out, const char **rest)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    uint64_t v = 0;
    while (*s >= '0' && *s <= '9') {
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
        s++;
    }
    *out = v;
    *rest = s;
    return 0;
}

static int mul_ok(uint64_t v, uint64_t m, uint64_t *out)
{
    if (m != 0 && v > UINT64_MAX / m)
        return -EINVAL;
    *out = v * m;
    return 0;
}

int sd_parse_bytes(const char *s, uint64_t *out)
{
    if (strcmp(s, "infinity") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    uint64_t v;
    const char *rest;
    if (parse_u64_prefix(s, &v, &rest) < 0)
        return -EINVAL;
    static const char units[] = "KMGT";
    if (*rest == '\0') {
        *out = v;
        return 0;
    }
    const char *u = strchr(units, *rest);
    if (!u || rest[1] != '\0')
        return -EINVAL;
    uint64_t m = 1;
    for (const char *p = units; p <= u; p++)
        m *= 1024;
    return mul_ok(v, m, out);
}

int sd_parse_cpu_quota(const char *s, uint64_t *out)
{
    uint64_t v;
    const char *rest;
    if (parse_u64_prefix(s, &v, &rest) < 0 || strcmp(rest, "%") != 0 || v == 0)
        return -EINVAL;
    return mul_ok(v, 10000, out);
}

int sd_parse_usec(const char *s, uint64_t *out)
{
    if (strcmp(s, "infinity") == 0) {
        *out = UINT64_MAX;
        return 0;
    }
    uint64_t v;
    const char *rest;
    if (parse_u64_prefix(s, &v, &rest) < 0)
        return -EINVAL;
    static const struct {
        const char *suffix;
        uint64_t us;
    } units[] = {{"", 1000000},     {"s", 1000000},  {"ms", 1000},        {"us", 1},
                 {"min", 60000000}, {"m", 60000000}, {"h", 3600000000ULL}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(rest, units[i].suffix) == 0)
            return mul_ok(v, units[i].us, out);
    return -EINVAL;
}

void sd_clean_text(const char *s, char *buf, size_t len)
{
    if (len == 0)
        return;
    size_t i = 0;
    for (; s && s[i] && i + 1 < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    buf[i] = '\0';
}

/* ---- properties -------------------------------------------------------------------------- */

typedef enum prop_parse {
    P_STRING,
    P_BYTES,
    P_COUNT,
    P_CPU_QUOTA,
    P_USEC,
    P_NICE,
    P_WORDS
} prop_parse;

static const struct prop_row {
    const char *key;
    const char *name;
    prop_parse parse;
} prop_rows[] = {
    {"Description", "Description", P_STRING},
    {"User", "User", P_STRING},
    {"Group", "Group", P_STRING},
    {"WorkingDirectory", "WorkingDirectory", P_STRING},
    {"Type", "Type", P_STRING},
    {"Restart", "Restart", P_STRING},
    {"KillMode", "KillMode", P_STRING},
    {"Slice", "Slice", P_STRING},
    {"Environment", "Environment", P_WORDS},
    {"MemoryMax", "MemoryMax", P_BYTES},
    {"MemoryHigh", "MemoryHigh", P_BYTES},
    {"TasksMax", "TasksMax", P_COUNT},
    {"CPUWeight", "CPUWeight", P_COUNT},
    {"CPUQuota", "CPUQuotaPerSecUSec", P_CPU_QUOTA},
    {"TimeoutStopSec", "TimeoutStopUSec", P_USEC},
    {"RuntimeMaxSec", "RuntimeMaxUSec", P_USEC},
    {"Nice", "Nice", P_NICE},
};

const char *sd_prop_supported(void)
{
    return "Description, User, Group, WorkingDirectory, Type, Restart, KillMode, Slice, "
           "Environment, MemoryMax, MemoryHigh, TasksMax, CPUWeight, CPUQuota, TimeoutStopSec, "
           "RuntimeMaxSec, Nice";
}

static int split_words(sd_prop *p, const char *value)
{
    size_t cap = 1;
    for (const char *c = value; *c; c++)
        if (*c == ' ')
            cap++;
    p->strv = calloc(cap + 1, sizeof *p->strv);
    if (!p->strv)
        return -ENOMEM;
    const char *c = value;
    while (*c) {
        while (*c == ' ' || *c == '\t')
            c++;
        if (!*c)
            break;
        const char *e = c;
        while (*e && *e != ' ' && *e != '\t')
            e++;
        char *w = strndup(c, (size_t)(e - c));
        if (!w)
            return -ENOMEM;
        p->strv[p->nstrv++] = w;
        if (!strchr(w, '=') || w[0] == '=')
            return -EINVAL;
        c = e;
    }
    return p->nstrv ? 0 : -EINVAL;
}

int sd_prop_parse(sd_prop *p, const char *key, const char *value, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    const struct prop_row *row = NULL;
    for (size_t i = 0; i < sizeof prop_rows / sizeof prop_rows[0]; i++)
        if (strcmp(prop_rows[i].key, key) == 0)
            row = &prop_rows[i];
    char shown_key[64], shown[128];
    sd_clean_text(key, shown_key, sizeof shown_key);
    sd_clean_text(value, shown, sizeof shown);
    if (!row) {
        snprintf(err, errlen, "properties: %s: not supported (supported: %s)", shown_key,
                 sd_prop_supported());
        return -EINVAL;
    }
    p->key = row->key;
    p->name = row->name;
    const char *want = NULL;
    int r = 0;
    switch (row->parse) {
    case P_STRING:
        p->type = SD_PROP_STRING;
        if (!*value) {
            want = "a value";
            break;
        }
        p->str = strdup(value);
        if (!p->str)
            r = -ENOMEM;
        break;
    case P_WORDS:
        p->type = SD_PROP_STRV;
        r = split_words(p, value);
        if (r == -EINVAL)
            want = "VAR=value words separated by spaces";
        break;
    case P_BYTES:
        p->type = SD_PROP_U64;
        if (sd_parse_bytes(value, &p->u64) < 0)
            want = "bytes such as 536870912, 512M or infinity";
        break;
    case P_COUNT:
        p->type = SD_PROP_U64;
        if (strcmp(value, "infinity") == 0)
            p->u64 = UINT64_MAX;
        else {
            const char *rest;
            if (parse_u64_prefix(value, &p->u64, &rest) < 0 || *rest)
                want = "a whole number or infinity";
        }
        break;
    case P_CPU_QUOTA:
        p->type = SD_PROP_U64;
        if (sd_parse_cpu_quota(value, &p->u64) < 0)
            want = "a percentage such as 50% or 200%";
        break;
    case P_USEC:
        p->type = SD_PROP_U64;
        if (sd_parse_usec(value, &p->u64) < 0)
            want = "a duration such as 30s, 500ms, 2min or infinity";
        break;
    case P_NICE: {
        p->type = SD_PROP_I32;
        char *end;
        long v = strtol(value, &end, 10);
        if (!*value || *end || v < -20 || v > 19)
            want = "a whole number from -20 to 19";
        p->i32 = (int32_t)v;
        break;
    }
    }
    if (r == -ENOMEM) {
        sd_prop_clear(p);
        snprintf(err, errlen, "properties: %s: out of memory", shown_key);
        return r;
    }
    if (want) {
        sd_prop_clear(p);
        snprintf(err, errlen, "properties: %s: expected %s, got '%s'", shown_key, want, shown);
        return -EINVAL;
    }
    return 0;
}

void sd_prop_clear(sd_prop *p)
{
    free(p->str);
    if (p->strv)
        for (size_t i = 0; i < p->nstrv; i++)
            free(p->strv[i]);
    free(p->strv);
    memset(p, 0, sizeof *p);
}

void sd_prop_format(const sd_prop *p, char *buf, size_t len)
{
    size_t at = 0;
    int w = snprintf(buf, len, "%s=", p->name);
    if (w < 0 || (size_t)w >= len)
        return;
    at = (size_t)w;
    switch (p->type) {
    case SD_PROP_STRING:
        snprintf(buf + at, len - at, "%s", p->str);
        break;
    case SD_PROP_U64:
        if (p->u64 == UINT64_MAX)
            snprintf(buf + at, len - at, "infinity");
        else
            snprintf(buf + at, len - at, "%" PRIu64, p->u64);
        break;
    case SD_PROP_I32:
        snprintf(buf + at, len - at, "%" PRId32, p->i32);
        break;
    case SD_PROP_STRV:
        for (size_t i = 0; i < p->nstrv && at < len; i++) {
            w = snprintf(buf + at, len - at, "%s%s", i ? " " : "", p->strv[i]);
            if (w < 0)
                return;
            at += (size_t)w;
        }
        break;
    }
}
