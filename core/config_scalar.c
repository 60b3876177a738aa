/*
 * config_scalar.c - what one scalar's text means (a stage of config.c): `${VAR}` expansion,
 * integers, numbers, booleans, durations and globs. Nothing here knows about the tree; callers
 * say where a scalar is, for the errors.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fnmatch.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"
#include "config.h"
#include "config_internal.h"
#include "textbuf.h"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_env_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_';
}

/* Expands ${VAR}, ${VAR:-default} (default when VAR is unset or empty) and $$ in one scalar.
 * Any other $ stays as written. Errors point at the scalar. */
char *config_expand_env(arena *mem, textbuf *t, config_reporter *rep, const char *s, size_t len,
                        int line, int col)
{
    if (memchr(s, '$', len) == NULL)
        return arena_strndup(mem, s, len);
    textbuf_reset(t);
    config_clipbuf cb;
    size_t i = 0;
    while (i < len) {
        if (s[i] != '$' || i + 1 >= len || (s[i + 1] != '$' && s[i + 1] != '{')) {
            textbuf_putn(t, s + i, 1);
            i++;
            continue;
        }
        if (s[i + 1] == '$') {
            textbuf_putn(t, "$", 1);
            i += 2;
            continue;
        }
        const char *name = s + i + 2;
        const char *close = memchr(name, '}', len - (i + 2));
        if (close == NULL) {
            config_report(rep, line, col, "unterminated '${' in '%s'", config_clip(&cb, s));
            break;
        }
        size_t namelen = 0;
        while (name + namelen < close && is_env_name_char(name[namelen]))
            namelen++;
        const char *rest = name + namelen;
        const char *def = NULL;
        if (rest + 2 <= close && rest[0] == ':' && rest[1] == '-')
            def = rest + 2;
        char namebuf[256];
        if (namelen == 0 || is_digit(name[0]) || namelen >= sizeof namebuf ||
            (rest != close && def == NULL)) {
            config_report(rep, line, col,
                          "bad variable reference '%.*s' (use ${NAME} or ${NAME:-default}, or $$ "
                          "for a literal $)",
                          (int)(close - (s + i) + 1), s + i);
        } else {
            memcpy(namebuf, name, namelen);
            namebuf[namelen] = '\0';
            const char *val = getenv(namebuf);
            if (val != NULL && (*val != '\0' || def == NULL))
                textbuf_puts(t, val);
            else if (def != NULL)
                textbuf_putn(t, def, (size_t)(close - def));
            else
                config_report(rep, line, col, "environment variable '%s' is not set", namebuf);
        }
        i = (size_t)(close - s) + 1;
    }
    if (t->oom)
        return NULL;
    return arena_strndup(mem, t->p, t->len);
}

int config_parse_int64(const char *s, int64_t *out)
{
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    if (!is_digit(*p))
        return -EINVAL;
    for (const char *q = p; *q; q++)
        if (!is_digit(*q))
            return -EINVAL;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

int config_parse_number(const char *s, double *out)
{
    /* strtod skips leading white space and takes "inf"/"nan"; a number in a file does not. */
    if (*s == '\0' || *s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' ||
        *s == '\f')
        return -EINVAL;
    char *end;
    double d = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(d))
        return -EINVAL;
    *out = d;
    return 0;
}

int config_parse_bool(const char *s, int64_t *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

/* One "<number><unit>" part's unit, advancing *p past it: milliseconds, or 0 when there is none
 * (a bare number is seconds only when it is the whole text). */
static uint64_t duration_unit(const char **p, int whole_text)
{
    const char *s = *p;
    uint64_t unit = 0;
    if (s[0] == 'm' && s[1] == 's') {
        unit = 1;
        s += 2;
    } else if (*s == 's') {
        unit = 1000;
        s++;
    } else if (*s == 'm') {
        unit = 60u * 1000;
        s++;
    } else if (*s == 'h') {
        unit = 3600u * 1000;
        s++;
    } else if (*s == 'd') {
        unit = 86400u * 1000;
        s++;
    } else if (*s == '\0' && whole_text) {
        unit = 1000;
    }
    *p = s;
    return unit;
}

int config_parse_duration(const char *text, uint64_t *ms)
{
    if (text == NULL || *text == '\0')
        return -EINVAL;
    const char *p = text;
    uint64_t total = 0;
    int parts = 0, too_long = 0;
    while (*p != '\0') {
        if (!is_digit(*p))
            return -EINVAL; /* also rejects a sign, white space and ".5" */
        uint64_t whole = 0;
        for (; is_digit(*p); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (whole > (UINT64_MAX - d) / 10)
                too_long = 1; /* the text goes on being checked: a typo is still a typo */
            else
                whole = whole * 10 + d;
        }
        /* Up to 9 fraction digits count; finer than a nanosecond of a day cannot matter. */
        uint64_t frac = 0, scale = 1;
        if (*p == '.') {
            p++;
            if (!is_digit(*p))
                return -EINVAL;
            for (; is_digit(*p); p++) {
                if (scale < 1000000000u) {
                    frac = frac * 10 + (uint64_t)(*p - '0');
                    scale *= 10;
                }
            }
        }
        uint64_t unit = duration_unit(&p, parts == 0 && *p == '\0');
        if (unit == 0)
            return -EINVAL;
        /* Past the limit, the total stops growing: every step below stays far from overflow. */
        if (!too_long) {
            if (whole > CONFIG_MAX_DURATION_MS / unit)
                too_long = 1;
            else
                total += whole * unit + frac * unit / scale; /* frac < 1e9, unit <= 8.64e7 */
            if (total > CONFIG_MAX_DURATION_MS)
                too_long = 1;
        }
        parts++;
    }
    if (too_long)
        return -ERANGE;
    *ms = total;
    return 0;
}

int config_glob_match(const char *pattern, const char *text)
{
    if (pattern == NULL || text == NULL)
        return 0;
    return fnmatch(pattern, text, 0) == 0;
}
