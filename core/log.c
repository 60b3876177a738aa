/*
 * log.c - formats and filters the daemon's log lines. Each line is written with one fwrite so
 * lines from plugins and the core never interleave mid-line.
 */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_init(sb_logger *lg, sb_log_level level, FILE *out)
{
    lg->level = level;
    lg->out = out ? out : stderr;
    lg->json = 0;
}

/* s as the inside of a JSON string, bounded by the room left (never a cut escape). */
static size_t json_escape(char *out, size_t room, const char *s)
{
    size_t n = 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        size_t len;
        if (ch == '"' || ch == '\\') {
            esc[0] = '\\';
            esc[1] = (char)ch;
            len = 2;
        } else if (ch < 0x20 || ch == 0x7f) {
            len = (size_t)snprintf(esc, sizeof esc, "\\u%04x", ch);
        } else if (ch >= 0x80) {
            /* Valid UTF-8 passes through; any other byte becomes U+FFFD, so the line stays
             * JSON whatever a remote put in a message. */
            size_t want = ch >= 0xf0 && ch < 0xf5 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc2 && ch < 0xe0 ? 2 : 0;
            size_t k = 1;
            while (want && k < want && ((unsigned char)s[k] & 0xc0) == 0x80)
                k++;
            if (want && k == want && want <= sizeof esc) {
                memcpy(esc, s, want);
                len = want;
                s += want - 1;
            } else {
                memcpy(esc, "\\ufffd", 6);
                len = 6;
            }
        } else {
            esc[0] = (char)ch;
            len = 1;
        }
        if (n + len >= room)
            break;
        memcpy(out + n, esc, len);
        n += len;
    }
    return n;
}

/* {"time":"...","level":"info","component":"web","message":"...", fields...} and a newline. */
static void write_json(const sb_logger *lg, const char *stamp, sb_log_level level,
                       const char *who, const char *msg, const log_field *fields,
                       size_t nfields)
{
    char line[4608];
    size_t room = sizeof line - 3; /* "}\n" and the NUL */
    int n = snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"%s\",\"component\":\"",
                     stamp, level_names[level]);
    if (n < 0)
        return;
    size_t used = (size_t)n;
    used += json_escape(line + used, room - used, who ? who : "scalebus");
    static const char mid[] = "\",\"message\":\"";
    if (used + sizeof mid < room) {
        memcpy(line + used, mid, sizeof mid - 1);
        used += sizeof mid - 1;
    }
    used += json_escape(line + used, room - used - 1, msg);
    if (used < room)
        line[used++] = '"';
    for (size_t i = 0; i < nfields; i++) {
        const log_field *f = &fields[i];
        if (!f->key || (!f->is_number && !f->text))
            continue;
        /* Each field whole or not at all: room for ,"key": and the value's worst case. */
        char value[64];
        if (f->is_number)
            snprintf(value, sizeof value, isfinite(f->number) ? "%.17g" : "null", f->number);
        size_t need = strlen(f->key) * 6 + 4 + (f->is_number ? strlen(value) : 2);
        if (used + need + 1 >= room)
            break;
        line[used++] = ',';
        line[used++] = '"';
        used += json_escape(line + used, room - used, f->key);
        memcpy(line + used, "\":", 2);
        used += 2;
        if (f->is_number) {
            memcpy(line + used, value, strlen(value));
            used += strlen(value);
        } else {
            line[used++] = '"';
            used += json_escape(line + used, room - used - 2, f->text);
            line[used++] = '"';
        }
    }
    memcpy(line + used, "}\n", 2);
    used += 2;
    fwrite(line, 1, used, lg->out);
    fflush(lg->out);
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
    log_vwrite_fields(lg, level, who, NULL, 0, fmt, ap);
}

void log_vwrite_fields(const sb_logger *lg, sb_log_level level, const char *who,
                       const log_field *fields, size_t nfields, const char *fmt, va_list ap)
{
    if (!lg || level > lg->level)
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[96];
    snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    if (lg->json) {
        vsnprintf(line, sizeof line, fmt, ap);
        write_json(lg, stamp, level, who, line, fields, nfields);
        return;
    }
    int n = snprintf(line, sizeof line, "%s %-5s [%s] ", stamp, level_names[level],
                     who ? who : "scalebus");
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
