/*
 * redis_url.h - the redis trigger's `url` option, parsed: a pure function (text in, fields out,
 * no host, no allocation), in the static library sb_redis_parse.
 *
 *   redis://[[user]:password@]host[:port][/db]     host: a name, an IPv4 or [an IPv6] address
 *   unix:/path/to/redis.sock[?db=N]               (also unix:///path/to/redis.sock)
 *
 * user and password may be percent-encoded (%40 for '@'). Error messages never repeat the
 * password (nor the URL, which may hold it).
 */
#ifndef SB_REDIS_URL_H
#define SB_REDIS_URL_H

#include <stddef.h>

#define SB_REDIS_DEFAULT_PORT 6379
#define SB_REDIS_HOST_MAX 255     /* bytes of a host name or address */
#define SB_REDIS_USER_MAX 255     /* bytes of a user name, decoded */
#define SB_REDIS_PASSWORD_MAX 511 /* bytes of a password, decoded */
#define SB_REDIS_PATH_MAX 107     /* a unix socket path: sun_path holds 108 bytes with the NUL */
#define SB_REDIS_DB_MAX 2147483647L

typedef struct sb_redis_url {
    int is_unix;                              /* 1: unix socket at path; 0: TCP host:port */
    char host[SB_REDIS_HOST_MAX + 1];         /* TCP: a name or an address (IPv6 unbracketed) */
    int port;                                 /* TCP: 1-65535 (6379 when absent) */
    char path[SB_REDIS_PATH_MAX + 1];         /* unix: the absolute socket path */
    char username[SB_REDIS_USER_MAX + 1];     /* "" : AUTH with the password only */
    char password[SB_REDIS_PASSWORD_MAX + 1]; /* "" : no AUTH */
    long db;                                  /* 0 when absent */
} sb_redis_url;

/* Parse text (NUL-terminated) into *out. Returns 0, or -EINVAL with one line in err (without the
 * "url: " prefix), e.g. "port '70000' is out of range 1-65535". */
int sb_redis_url_parse(const char *text, sb_redis_url *out, char *err, size_t errlen);

/* Where the URL points, for log lines and errors, never with the user or password:
 * "redis://127.0.0.1:6379/0", "redis://[::1]:6380/2", "unix:/run/redis.sock?db=1". */
void sb_redis_url_describe(const sb_redis_url *u, char *buf, size_t len);

#endif
