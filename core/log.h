/*
 * log.h - the daemon's log lines: "TIME LEVEL [who] message" on stderr, filtered by level, or
 * with log.format json one JSON object per line (time, level, component, message).
 * One logger belongs to the daemon's top-level context; nothing here is global.
 */
#ifndef SCALEBUS_LOG_H
#define SCALEBUS_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "scalebus/plugin.h"

typedef struct sb_logger {
    sb_log_level level;
    FILE *out;
    int json; /* one JSON object per line: {"time","level","component","message"} */
} sb_logger;

void log_init(sb_logger *lg, sb_log_level level, FILE *out);
void log_vwrite(const sb_logger *lg, sb_log_level level, const char *who, const char *fmt,
                va_list ap) __attribute__((format(printf, 4, 0)));
void log_write(const sb_logger *lg, sb_log_level level, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A field a JSON line carries beside its message (a decision's count, source and reason): a
 * number when is_number, else text (NULL: the field is left out). Text lines show the message
 * only, which already says the same. */
typedef struct log_field {
    const char *key;
    const char *text;
    double number;
    int is_number;
} log_field;
void log_vwrite_fields(const sb_logger *lg, sb_log_level level, const char *who,
                       const log_field *fields, size_t nfields, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));

/* "error", "warn", "info", "debug" -> level; returns 0 or -EINVAL. */
int log_level_parse(const char *name, sb_log_level *out);
const char *log_level_name(sb_log_level level);

#endif
