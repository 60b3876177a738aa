/*
 * log.c - formats and filters the daemon's log lines. Each line is written with one fwrite so
 * lines from plugins and the core never interleave mid-line.
 */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(sb_logger *lg, sb_log_level level, FILE *out)
{
    lg->level = level;
    lg->out = out ? out : stderr;
}

const char *log_level_name(sb_log_level level)
{
    if ((int)level < 0 || (size_t)level >= sizeof level_names / sizeof level_names[0])
        return "?";
    return level_names[level];
}

int log_level_parse(const char *name, sb_log_level *out)
{
    for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (sb_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(name, "warning") == 0) {
        *out = SB_LOG_WARN;
        return 0;
    }
    return -EINVAL;
}

void log_vwrite(const sb_logger *lg, sb_log_level level, const char *who, const char *fmt,
                va_list ap)
{
    if (!lg || level > lg->level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, level_names[level], who ? who : "scalebus");
    if (n < 0)
        return;
    size_t used = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    int m = vsnprintf(line + used, sizeof line - used, fmt, ap);
    if (m > 0)
        used += (size_t)m < sizeof line - used ? (size_t)m : sizeof line - used - 1;
    if (used >= sizeof line - 1)
        used = sizeof line - 2;
    line[used++] = '\n';
    fwrite(line, 1, used, lg->out);
    fflush(lg->out);
}

void log_write(const sb_logger *lg, sb_log_level level, const char *who, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lg, level, who, fmt, ap);
    va_end(ap);
}
