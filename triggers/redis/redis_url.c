/*
 * redis_url.c - parses the redis trigger's `url` (redis_url.h). Everything is bounded by the
 * fixed fields of sb_redis_url; nothing is allocated. Messages name the part that is wrong and
 * what was expected, and never quote the user info (it holds the password).
 */
#include "redis_url.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define FORMS "redis://[[user]:password@]host[:port][/db] or unix:/path/to/socket[?db=N]"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode [s, s+n) with %XX escapes into out (cap bytes with the NUL). 0, -1 on a bad escape or
 * a decoded NUL, -2 when too long. */
static int percent_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hex_digit(s[i + 1]);
            int lo = hex_digit(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -2;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* A decimal number in [s, s+n), 0..max; -1 when it is not one (empty, a sign, other bytes) or
 * is too big. */
static long parse_decimal(const char *s, size_t n, long max)
{
    long v = 0;
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (max - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Copy [s, s+n) for a message, at most 40 bytes and printable ones only. */
static const char *quote(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        if (i == 40) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    buf[o] = '\0';
    return buf;
}

static int parse_db(const char *s, size_t n, long *db, char *err, size_t errlen)
{
    char q[64];
    long v = parse_decimal(s, n, SB_REDIS_DB_MAX);
    if (v < 0)
        return fail(err, errlen, "database '%s' is not a number 0-%ld", quote(s, n, q, sizeof q),
                    SB_REDIS_DB_MAX);
    *db = v;
    return 0;
}

/* Host characters outside brackets: a DNS name or an IPv4 address. */
static int is_host_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_';
}

static int is_ipv6_char(char c)
{
    return hex_digit(c) >= 0 || c == ':' || c == '.';
}

/* user info: ":password" or "user:password" (the part before '@'). */
static int parse_userinfo(const char *s, size_t n, sb_redis_url *u, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);
    if (!colon)
        return fail(err, errlen,
                    "the part before '@' must be ':password' or 'user:password' (it has no ':')");
    size_t ulen = (size_t)(colon - s);
    int rc = percent_decode(s, ulen, u->username, sizeof u->username);
    if (rc == -1)
        return fail(err, errlen, "bad percent-encoding in the user name");
    if (rc == -2)
        return fail(err, errlen, "the user name is longer than %d bytes", SB_REDIS_USER_MAX);
    rc = percent_decode(colon + 1, n - ulen - 1, u->password, sizeof u->password);
    if (rc == -1)
        return fail(err, errlen, "bad percent-encoding in the password");
    if (rc == -2)
        return fail(err, errlen, "the password is longer than %d bytes", SB_REDIS_PASSWORD_MAX);
    char q[64];
    if (u->username[0] && !u->password[0])
        return fail(err, errlen, "user '%s' has an empty password",
                    quote(u->username, strlen(u->username), q, sizeof q));
    return 0;
}

static int parse_tcp(const char *s, sb_redis_url *u, char *err, size_t errlen)
{
    char q[64];
    /* The authority ends at the first '/'; '?' and '#' have no meaning here. */
    size_t alen = strcspn(s, "/?#");
    const char *rest = s + alen;

    /* user info: up to the last '@' of the authority (a password may hold a raw '@'). */
    const char *at = NULL;
    for (size_t i = 0; i < alen; i++)
        if (s[i] == '@')
            at = s + i;
    const char *host = s;
    if (at) {
        int rc = parse_userinfo(s, (size_t)(at - s), u, err, errlen);
        if (rc < 0)
            return rc;
        host = at + 1;
    }
    size_t hlen = (size_t)(s + alen - host);

    /* host, then an optional :port */
    const char *port = NULL;
    size_t portlen = 0;
    if (hlen && host[0] == '[') {
        const char *close = memchr(host, ']', hlen);
        if (!close)
            return fail(err, errlen, "an IPv6 address needs its closing ']'");
        size_t v6len = (size_t)(close - host - 1);
        if (v6len == 0)
            return fail(err, errlen, "empty IPv6 address '[]'");
        for (size_t i = 0; i < v6len; i++)
            if (!is_ipv6_char(host[1 + i]))
                return fail(err, errlen, "'%s' is not an IPv6 address",
                            quote(host + 1, v6len, q, sizeof q));
        if (v6len > SB_REDIS_HOST_MAX)
            return fail(err, errlen, "the host is longer than %d bytes", SB_REDIS_HOST_MAX);
        memcpy(u->host, host + 1, v6len);
        u->host[v6len] = '\0';
        const char *after = close + 1;
        size_t left = (size_t)(host + hlen - after);
        if (left) {
            if (after[0] != ':')
                return fail(err, errlen, "unexpected '%s' after the IPv6 address",
                            quote(after, left, q, sizeof q));
            port = after + 1;
            portlen = left - 1;
        }
    } else {
        const char *colon = memchr(host, ':', hlen);
        size_t name = colon ? (size_t)(colon - host) : hlen;
        if (colon && memchr(colon + 1, ':', hlen - name - 1))
            return fail(err, errlen,
                        "'%s' is not a host and port (write an IPv6 address in brackets: "
                        "[::1]:6379)",
                        quote(host, hlen, q, sizeof q));
        if (name == 0)
            return fail(err, errlen, "no host (expected %s)", FORMS);
        for (size_t i = 0; i < name; i++)
            if (!is_host_char(host[i]))
                return fail(err, errlen, "'%s' is not a host name or address",
                            quote(host, name, q, sizeof q));
        if (name > SB_REDIS_HOST_MAX)
            return fail(err, errlen, "the host is longer than %d bytes", SB_REDIS_HOST_MAX);
        memcpy(u->host, host, name);
        u->host[name] = '\0';
        if (colon) {
            port = colon + 1;
            portlen = hlen - name - 1;
        }
    }
    u->port = SB_REDIS_DEFAULT_PORT;
    if (port) {
        long p = parse_decimal(port, portlen, 99999);
        if (portlen == 0)
            return fail(err, errlen, "empty port after ':'");
        if (p < 1 || p > 65535)
            return fail(err, errlen, "port '%s' is not a number 1-65535",
                        quote(port, portlen, q, sizeof q));
        u->port = (int)p;
    }

    /* then /db, or nothing */
    if (*rest == '?' || *rest == '#')
        return fail(err, errlen, "unexpected '%s': a redis:// URL gives the database as /N",
                    quote(rest, strlen(rest), q, sizeof q));
    if (*rest == '/') {
        rest++;
        size_t dlen = strlen(rest);
        if (dlen == 0)
            return 0; /* "redis://host/": database 0 */
        if (strcspn(rest, "/?#") != dlen)
            return fail(
                err, errlen, "unexpected '%s' after the database",
                quote(rest + strcspn(rest, "/?#"), dlen - strcspn(rest, "/?#"), q, sizeof q));
        return parse_db(rest, dlen, &u->db, err, errlen);
    }
    return 0;
}

static int parse_unix(const char *s, sb_redis_url *u, char *err, size_t errlen)
{
    char q[64];
    if (strncmp(s, "//", 2) == 0) {
        if (s[2] != '/')
            return fail(err, errlen, "unix: takes no host: write unix:/path or unix:///path");
        s += 2;
    }
    if (s[0] != '/')
        return fail(err, errlen, "the socket path must be absolute (unix:/path/to/redis.sock)");
    size_t plen = strcspn(s, "?#");
    if (s[plen] == '#')
        return fail(err, errlen, "unexpected '#' in a unix: URL");
    if (plen > SB_REDIS_PATH_MAX)
        return fail(err, errlen, "the socket path is longer than %d bytes", SB_REDIS_PATH_MAX);
    memcpy(u->path, s, plen);
    u->path[plen] = '\0';
    u->is_unix = 1;
    if (s[plen] == '?') {
        const char *query = s + plen + 1;
        if (strncmp(query, "db=", 3) != 0)
            return fail(err, errlen, "unknown query '%s': a unix: URL takes only ?db=N",
                        quote(query, strlen(query), q, sizeof q));
        return parse_db(query + 3, strlen(query + 3), &u->db, err, errlen);
    }
    return 0;
}

int sb_redis_url_parse(const char *text, sb_redis_url *out, char *err, size_t errlen)
{
    char q[64];
    memset(out, 0, sizeof *out);
    if (!text || !*text)
        return fail(err, errlen, "empty (expected %s)", FORMS);
    for (const char *p = text; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return fail(err, errlen, "has a space or a control character (percent-encode it)");
    if (strncmp(text, "redis://", 8) == 0)
        return parse_tcp(text + 8, out, err, errlen);
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out, err, errlen);
    if (strncmp(text, "rediss://", 9) == 0)
        return fail(err, errlen, "rediss:// (TLS) is not supported: hiredis 0.14 has no TLS");
    size_t slen = strcspn(text, ":");
    if (text[slen] == ':')
        return fail(err, errlen, "unknown scheme '%s:' (expected %s)",
                    quote(text, slen, q, sizeof q), FORMS);
    return fail(err, errlen, "no scheme (expected %s)", FORMS);
}

void sb_redis_url_describe(const sb_redis_url *u, char *buf, size_t len)
{
    if (!buf || !len)
        return;
    if (u->is_unix)
        snprintf(buf, len, "unix:%s?db=%ld", u->path, u->db);
    else if (strchr(u->host, ':'))
        snprintf(buf, len, "redis://[%s]:%d/%ld", u->host, u->port, u->db);
    else
        snprintf(buf, len, "redis://%s:%d/%ld", u->host, u->port, u->db);
}
