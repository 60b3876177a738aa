/*
 * redis_reply.h - what one key's reply says, for the redis trigger: a pure function (a parsed
 * reply in, a number or a one-line reason out, no host), in the static library sb_redis_parse.
 *
 *   kind list    LLEN key                       -> an integer
 *   kind zset    ZCARD key                      -> an integer
 *   kind stream  XLEN key                       -> an integer
 *   kind stream with a group: XINFO GROUPS key  -> the group's "lag" (Redis 7.0 and later) or
 *                                                  its "pending" count
 *
 * sb_redis_reply_parse() takes the raw bytes (RESP2) instead, through hiredis's reader, with the
 * same bounds the plugin applies: the one entry point a fuzzer needs.
 */
#ifndef SB_REDIS_REPLY_H
#define SB_REDIS_REPLY_H

#include <stddef.h>

#include <hiredis/hiredis.h>

/* A reply bigger than this (bytes, one read's replies together) is refused. */
#define SB_REDIS_REPLY_MAX_BYTES (1024 * 1024)
/* An array with more elements than this is refused before hiredis allocates it. */
#define SB_REDIS_REPLY_MAX_ELEMENTS 65536

typedef enum sb_redis_kind {
    SB_REDIS_LIST = 0,   /* LLEN */
    SB_REDIS_ZSET = 1,   /* ZCARD */
    SB_REDIS_STREAM = 2, /* XLEN, or XINFO GROUPS with a group */
} sb_redis_kind;

typedef enum sb_redis_measure {
    SB_REDIS_LAG = 0,     /* the group's entries not yet delivered (XINFO GROUPS "lag") */
    SB_REDIS_PENDING = 1, /* delivered and not yet acknowledged ("pending") */
} sb_redis_measure;

/* What to read for one key. */
typedef struct sb_redis_query {
    sb_redis_kind kind;
    const char *group; /* stream only: NULL reads XLEN */
    sb_redis_measure measure;
} sb_redis_query;

/* The command for a query, as argv (the key is argv[last]): "LLEN", "ZCARD", "XLEN" or
 * "XINFO" "GROUPS". Returns argc (2 or 3). */
int sb_redis_query_argv(const sb_redis_query *q, const char *key, const char *argv[3]);
/* "LLEN", "ZCARD", "XLEN" or "XINFO GROUPS", for messages. */
const char *sb_redis_query_command(const sb_redis_query *q);

/* One key's reply -> *value. Returns 0; or a negative code with one line in err:
 *   -EIO     the server answered with an error ("WRONGTYPE Operation against a key holding the
 *            wrong kind of value", "ERR no such key"), quoted without control characters;
 *   -ENOENT  the stream has no such consumer group;
 *   -EPROTO  the reply is not what the command returns.
 * *fell_back (may be NULL) is set to 1 when measure lag read the pending count because the
 * server gave no lag (before Redis 7.0, or a lag Redis cannot compute after deletions). */
int sb_redis_reply_value(const redisReply *reply, const sb_redis_query *q, double *value,
                         int *fell_back, char *err, size_t errlen);

/* A reader whose replies stay within the bounds above (freeReplyObject() frees them; free the
 * reader with redisReaderFree()). *over_limit (kept by the caller while the reader lives) is set
 * to 1 when a bound refused a reply. NULL when out of memory. */
redisReader *sb_redis_reader_new(int *over_limit);
/* The reader's error as one line, naming the bound when one was hit. */
const char *sb_redis_reader_error(const redisReader *r, const int *over_limit);

/* Bytes in: parse one complete RESP reply from buf[0..len) and read it as
 * sb_redis_reply_value does. Returns as sb_redis_reply_value, or -EPROTO for bytes that are not
 * RESP or break a bound, -EAGAIN when the reply is incomplete, -EMSGSIZE over
 * SB_REDIS_REPLY_MAX_BYTES. */
int sb_redis_reply_parse(const char *buf, size_t len, const sb_redis_query *q, double *value,
                         int *fell_back, char *err, size_t errlen);

#endif
