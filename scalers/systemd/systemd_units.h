/*
 * systemd_units.h - the pure half of the systemd scaler: unit names from a template or a prefix
 * and an index, the index back from a name, systemd's ActiveState as a member state, and the
 * `properties` of a transient unit as the D-Bus properties StartTransientUnit takes. No bus here:
 * tests/test_systemd_units.c covers all of it.
 */
#ifndef SB_SYSTEMD_UNITS_H
#define SB_SYSTEMD_UNITS_H

#include <stddef.h>
#include <stdint.h>

#include <scalebus/scaler.h>

/* Longest unit name systemd takes (UNIT_NAME_MAX is 256 with the NUL). */
#define SD_UNIT_NAME_MAX 256

/* How member names are made: "<head><index><tail>", e.g. head "ci-agent@", tail ".service"
 * (a template) or head "web-", tail ".service" (transient units). */
typedef struct sd_naming {
    char head[SD_UNIT_NAME_MAX];
    char tail[16];
} sd_naming;

/* unit: a template such as "ci-agent@.service". Returns 0, or -EINVAL with one line in err
 * starting "unit: ". */
int sd_naming_from_template(sd_naming *n, const char *unit, char *err, size_t errlen);
/* prefix: "web" -> "web-<index>.service". Returns 0, or -EINVAL with one line starting
 * "prefix: ". */
int sd_naming_from_prefix(sd_naming *n, const char *prefix, char *err, size_t errlen);
/* "ci-agent@4.service" into buf. Returns 0, or -ENAMETOOLONG. */
int sd_unit_name(const sd_naming *n, int64_t index, char *buf, size_t len);
/* The glob ListUnitsByPatterns takes: "ci-agent@*.service". */
int sd_unit_pattern(const sd_naming *n, char *buf, size_t len);
/* The index of a name this scaler would make (a decimal integer >= 1, no sign, no leading zero),
 * or -1 for any other name: "ci-agent@04.service" and "ci-agent@x.service" match the glob but are
 * not members, and are never touched. */
int64_t sd_unit_index(const sd_naming *n, const char *name);
/* The lowest index >= 1 not in used[0..nused). */
int64_t sd_lowest_free_index(const int64_t *used, size_t nused);

/* systemd's ActiveState as a member state: active and reloading -> ready, activating ->
 * starting, deactivating -> stopping, failed -> failed; 0 for inactive, maintenance and
 * anything else (not a member). */
sb_member_state sd_member_state(const char *active_state);

/* A job's result from JobRemoved: done (and skipped: nothing to do) -> DONE; canceled (another
 * job replaced it) -> BUSY; failed, dependency, timeout, invalid and anything else -> FAILED. */
sb_action_result sd_job_result(const char *result);

/* ---- transient unit properties ------------------------------------------------------------ */

typedef enum sd_prop_type {
    SD_PROP_STRING = 's',
    SD_PROP_U64 = 't',
    SD_PROP_I32 = 'i',
    SD_PROP_STRV = 'a', /* "as" */
} sd_prop_type;

typedef struct sd_prop {
    const char *key;  /* the name in `properties` (MemoryMax, CPUQuota) */
    const char *name; /* the D-Bus property (MemoryMax, CPUQuotaPerSecUSec) */
    sd_prop_type type;
    char *str;    /* SD_PROP_STRING */
    uint64_t u64; /* SD_PROP_U64 */
    int32_t i32;  /* SD_PROP_I32 */
    char **strv;  /* SD_PROP_STRV, NULL-terminated */
    size_t nstrv;
} sd_prop;

/* One `properties` entry as its D-Bus property. Returns 0, or -EINVAL with one line in err
 * starting "properties: KEY: " (an unknown key lists the supported ones). */
int sd_prop_parse(sd_prop *p, const char *key, const char *value, char *err, size_t errlen);
void sd_prop_clear(sd_prop *p);
/* The property as describe() shows it: "MemoryMax=536870912", "Environment=A=1 B=2". */
void sd_prop_format(const sd_prop *p, char *buf, size_t len);
/* The keys sd_prop_parse takes, comma-separated, for errors and the README. */
const char *sd_prop_supported(void);

/* "512M", "1G", "1048576", "infinity" -> bytes (1024-based suffixes K, M, G, T). -EINVAL. */
int sd_parse_bytes(const char *s, uint64_t *out);
/* "50%", "150%" -> CPUQuotaPerSecUSec (10000 us per percent). -EINVAL. */
int sd_parse_cpu_quota(const char *s, uint64_t *out);
/* "90", "90s", "500ms", "2min", "1h", "infinity" -> microseconds. -EINVAL. */
int sd_parse_usec(const char *s, uint64_t *out);

/* Copy s into buf with every control character (and DEL) replaced by '?', cut to len - 1. */
void sd_clean_text(const char *s, char *buf, size_t len);

#endif
