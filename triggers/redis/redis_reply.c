/*
 * redis_reply.c - reads one key's reply for the redis trigger (redis_reply.h), and a hiredis
 * reader that stays within bounds.
 *
 * Why our own reply objects: hiredis 0.14's reader hands an array's element count to
 * createArray() as an int (a count of 2^32 arrives as 0, and the next element is then written
 * through a NULL element vector, or trips an assert), and its own allocators abort the process
 * when an allocation fails. The functions below build the same redisReply objects
 * (freeReplyObject() frees them), but refuse a negative or too large count and any element that
 * does not fit its parent, so the reader stops with an error instead of crashing the daemon.
 */
#include "redis_reply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int code, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && errlen)
        vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return code;
}

/* ---- the bounded reader ------------------------------------------------------------------- */

/* The reader's privdata: an int set to 1 when a bound refused an object. */
static void mark_over(const redisReadTask *task)
{
    if (task->privdata)
        *(int *)task->privdata = 1;
}

/* Attach r to its parent array; 0 when it does not fit there (the count was truncated). */
static int attach(const redisReadTask *task, redisReply *r)
{
    if (!task->parent)
        return 1;
    redisReply *parent = task->parent->obj;
    if (!parent || parent->type != REDIS_REPLY_ARRAY || !parent->element || task->idx < 0 ||
        (size_t)task->idx >= parent->elements) {
        mark_over(task);
        return 0;
    }
    parent->element[task->idx] = r;
    return 1;
}

static void *bounded_create_string(const redisReadTask *task, char *str, size_t len)
{
    if (task->type != REDIS_REPLY_ERROR && task->type != REDIS_REPLY_STATUS &&
        task->type != REDIS_REPLY_STRING)
        return NULL;
    redisReply *r = calloc(1, sizeof *r);
    char *buf = malloc(len + 1);
    if (!r || !buf) {
        free(r);
        free(buf);
        return NULL;
    }
    memcpy(buf, str, len);
    buf[len] = '\0';
    r->type = task->type;
    r->str = buf;
    r->len = len;
    if (!attach(task, r)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void *bounded_create_array(const redisReadTask *task, int elements)
{
    if (elements < 0 || elements > SB_REDIS_REPLY_MAX_ELEMENTS) {
        mark_over(task);
        return NULL;
    }
    redisReply *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_ARRAY;
    if (elements > 0) {
        r->element = calloc((size_t)elements, sizeof *r->element);
        if (!r->element) {
            free(r);
            return NULL;
        }
    }
    r->elements = (size_t)elements;
    if (!attach(task, r)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void *bounded_create_integer(const redisReadTask *task, long long value)
{
    redisReply *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_INTEGER;
    r->integer = value;
    if (!attach(task, r)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static void *bounded_create_nil(const redisReadTask *task)
{
    redisReply *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->type = REDIS_REPLY_NIL;
    if (!attach(task, r)) {
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* hiredis takes a non-const pointer but never writes through it. */
static redisReplyObjectFunctions bounded_functions = {
    bounded_create_string, bounded_create_array, bounded_create_integer,
    bounded_create_nil,    freeReplyObject,
};

redisReader *sb_redis_reader_new(int *over_limit)
{
    redisReader *r = redisReaderCreateWithFunctions(&bounded_functions);
    if (r)
        r->privdata = over_limit;
    if (over_limit)
        *over_limit = 0;
    return r;
}

const char *sb_redis_reader_error(const redisReader *r, const int *over_limit)
{
    if (over_limit && *over_limit)
        return "reply refused: an array's element count is negative, inconsistent or over "
               "65536";
    return r->errstr[0] ? r->errstr : "protocol error";
}

/* ---- one key's reply ---------------------------------------------------------------------- */

int sb_redis_query_argv(const sb_redis_query *q, const char *key, const char *argv[3])
{
    switch (q->kind) {
    case SB_REDIS_ZSET:
        argv[0] = "ZCARD";
        break;
    case SB_REDIS_STREAM:
        if (q->group) {
            argv[0] = "XINFO";
            argv[1] = "GROUPS";
            argv[2] = key;
            return 3;
        }
        argv[0] = "XLEN";
        break;
    case SB_REDIS_LIST:
    default:
        argv[0] = "LLEN";
        break;
    }
    argv[1] = key;
    return 2;
}

const char *sb_redis_query_command(const sb_redis_query *q)
{
    switch (q->kind) {
    case SB_REDIS_ZSET:
        return "ZCARD";
    case SB_REDIS_STREAM:
        return q->group ? "XINFO GROUPS" : "XLEN";
    case SB_REDIS_LIST:
    default:
        return "LLEN";
    }
}

static const char *type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING:
        return "a string";
    case REDIS_REPLY_ARRAY:
        return "an array";
    case REDIS_REPLY_INTEGER:
        return "an integer";
    case REDIS_REPLY_NIL:
        return "nil";
    case REDIS_REPLY_STATUS:
        return "a status";
    case REDIS_REPLY_ERROR:
        return "an error";
    default:
        return "an unknown type";
    }
}

/* Copy text for a message: at most 200 bytes, control characters as '?'. */
static const char *printable(const char *s, size_t n, char *buf, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++) {
        if (i == 200) {
            memcpy(buf + o, "...", 3);
            o += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[o++] = c >= 0x20 && c != 0x7f ? (char)c : '?';
    }
    buf[o] = '\0';
    return buf;
}

static int is_text(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str;
}

static int text_is(const redisReply *r, const char *s)
{
    size_t n = strlen(s);
    return is_text(r) && r->len == n && memcmp(r->str, s, n) == 0;
}

/* The group named q->group in XINFO GROUPS's reply: 0 and *value, or a code. */
static int group_value(const redisReply *reply, const sb_redis_query *q, double *value,
                       int *fell_back, char *err, size_t errlen)
{
    char buf[256];
    if (reply->type != REDIS_REPLY_ARRAY)
        return fail(-EPROTO, err, errlen, "XINFO GROUPS returned %s, expected an array of groups",
                    type_name(reply->type));
    if (reply->elements && !reply->element)
        return fail(-EPROTO, err, errlen, "XINFO GROUPS returned a malformed array");
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *g = reply->element[i];
        if (!g || g->type != REDIS_REPLY_ARRAY || g->elements % 2 || (g->elements && !g->element))
            return fail(-EPROTO, err, errlen,
                        "XINFO GROUPS: group %zu is not a list of field-value pairs", i + 1);
        const redisReply *name = NULL, *pending = NULL, *lag = NULL;
        for (size_t f = 0; f + 1 < g->elements; f += 2) {
            const redisReply *k = g->element[f], *v = g->element[f + 1];
            if (text_is(k, "name"))
                name = v;
            else if (text_is(k, "pending"))
                pending = v;
            else if (text_is(k, "lag"))
                lag = v;
        }
        if (!is_text(name))
            return fail(-EPROTO, err, errlen, "XINFO GROUPS: group %zu has no name", i + 1);
        if (name->len != strlen(q->group) || memcmp(name->str, q->group, name->len) != 0)
            continue;
        if (q->measure == SB_REDIS_LAG && lag && lag->type == REDIS_REPLY_INTEGER) {
            if (lag->integer < 0)
                return fail(-EPROTO, err, errlen, "group '%s': lag %lld is negative",
                            printable(q->group, strlen(q->group), buf, sizeof buf), lag->integer);
            *value = (double)lag->integer;
            return 0;
        }
        if (q->measure == SB_REDIS_LAG && lag && lag->type != REDIS_REPLY_NIL)
            return fail(-EPROTO, err, errlen, "group '%s': lag is %s, expected an integer or nil",
                        printable(q->group, strlen(q->group), buf, sizeof buf),
                        type_name(lag->type));
        if (!pending || pending->type != REDIS_REPLY_INTEGER || pending->integer < 0)
            return fail(-EPROTO, err, errlen, "group '%s': no pending count in the reply",
                        printable(q->group, strlen(q->group), buf, sizeof buf));
        if (q->measure == SB_REDIS_LAG && fell_back)
            *fell_back = 1; /* no lag field (Redis < 7.0), or nil (Redis cannot compute it) */
        *value = (double)pending->integer;
        return 0;
    }
    return fail(-ENOENT, err, errlen, "the stream has no consumer group '%s'",
                printable(q->group, strlen(q->group), buf, sizeof buf));
}

int sb_redis_reply_value(const redisReply *reply, const sb_redis_query *q, double *value,
                         int *fell_back, char *err, size_t errlen)
{
    char buf[256];
    if (fell_back)
        *fell_back = 0;
    if (!reply)
        return fail(-EPROTO, err, errlen, "no reply");
    if (reply->type == REDIS_REPLY_ERROR)
        return fail(-EIO, err, errlen, "%s",
                    reply->str && reply->len ? printable(reply->str, reply->len, buf, sizeof buf)
                                             : "an empty error reply");
    if (q->kind == SB_REDIS_STREAM && q->group)
        return group_value(reply, q, value, fell_back, err, errlen);
    if (reply->type != REDIS_REPLY_INTEGER)
        return fail(-EPROTO, err, errlen, "%s returned %s, expected an integer",
                    sb_redis_query_command(q), type_name(reply->type));
    if (reply->integer < 0)
        return fail(-EPROTO, err, errlen, "%s returned %lld, expected a count",
                    sb_redis_query_command(q), reply->integer);
    *value = (double)reply->integer;
    return 0;
}

int sb_redis_reply_parse(const char *buf, size_t len, const sb_redis_query *q, double *value,
                         int *fell_back, char *err, size_t errlen)
{
    int over = 0;
    void *reply = NULL;
    if (fell_back)
        *fell_back = 0;
    if (len > SB_REDIS_REPLY_MAX_BYTES)
        return fail(-EMSGSIZE, err, errlen, "reply larger than %d bytes", SB_REDIS_REPLY_MAX_BYTES);
    redisReader *r = sb_redis_reader_new(&over);
    if (!r)
        return fail(-ENOMEM, err, errlen, "out of memory");
    if (redisReaderFeed(r, buf, len) != REDIS_OK || redisReaderGetReply(r, &reply) != REDIS_OK) {
        int rc = fail(-EPROTO, err, errlen, "%s", sb_redis_reader_error(r, &over));
        redisReaderFree(r);
        return rc;
    }
    redisReaderFree(r);
    if (!reply)
        return fail(-EAGAIN, err, errlen, "incomplete reply");
    int rc = sb_redis_reply_value(reply, q, value, fell_back, err, errlen);
    freeReplyObject(reply);
    return rc;
}
