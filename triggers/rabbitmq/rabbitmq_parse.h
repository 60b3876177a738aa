/*
 * rabbitmq_parse.h - reads a RabbitMQ management API reply (GET /api/queues/{vhost}, a JSON array
 * of queues, or GET /api/queues/{vhost}/{name}, one queue) into one value per queue. Pure: bytes
 * in, (queue, value) pairs or one line of error out; no host, no I/O. Linked into rabbitmq.so as
 * the static library sb_rabbitmq_parse, tested by tests/test_rabbitmq_parse.c.
 */
#ifndef SB_RABBITMQ_PARSE_H
#define SB_RABBITMQ_PARSE_H

#include <regex.h>
#include <stddef.h>

/* What a reading measures: a field of the management API's queue object. */
typedef enum sb_rabbitmq_measure {
    SB_RABBITMQ_MESSAGES_READY = 0,      /* messages_ready */
    SB_RABBITMQ_MESSAGES,                /* messages (ready + unacknowledged) */
    SB_RABBITMQ_MESSAGES_UNACKNOWLEDGED, /* messages_unacknowledged */
    SB_RABBITMQ_CONSUMERS,               /* consumers */
    SB_RABBITMQ_PUBLISH_RATE             /* message_stats.publish_details.rate (msg/s) */
} sb_rabbitmq_measure;

/* Most queues one reply may yield (a regex matching more is an error, not a flood of readings). */
#define SB_RABBITMQ_MAX_QUEUES 10000
/* Longest queue name (AMQP's short string). */
#define SB_RABBITMQ_MAX_NAME 255

/* "messages_ready" -> SB_RABBITMQ_MESSAGES_READY. Returns 0, or -EINVAL for an unknown name. */
int sb_rabbitmq_measure_from_name(const char *name, sb_rabbitmq_measure *out);
/* The option's spelling of a measure ("messages_ready"). */
const char *sb_rabbitmq_measure_name(sb_rabbitmq_measure m);
/* The column list to ask the management API for (its `columns` query parameter). */
#define SB_RABBITMQ_COLUMNS                                                                        \
    "name,messages,messages_ready,messages_unacknowledged,consumers,"                              \
    "message_stats.publish_details.rate"

typedef struct sb_rabbitmq_value {
    char *queue; /* the queue's name (owned by the result) */
    double value;
} sb_rabbitmq_value;

typedef struct sb_rabbitmq_result {
    sb_rabbitmq_value *values; /* one per queue read, in the reply's order */
    size_t count;
    size_t no_stats; /* queues that matched but had no statistics yet (skipped) */
} sb_rabbitmq_result;

/*
 * Parse a management API reply of len bytes (need not be NUL-terminated).
 *
 * - name != NULL (an exact queue): the reply is that queue's object (or an array holding it);
 *   the result is exactly one value.
 * - re != NULL (name NULL): the reply is an array of queue objects; every queue whose name re
 *   matches (regexec, anywhere in the name) gives one value.
 *
 * A count (messages_ready, messages, messages_unacknowledged, consumers) that is missing or null
 * means the server has no statistics for the queue yet (it was just declared): for an exact name
 * that is an error (-EAGAIN, "queue jobs: no statistics yet"); with a regex such a queue is
 * skipped and counted in no_stats, and it is an error only when every matching queue lacks them.
 * publish_rate is 0 for a queue with statistics but no message_stats.publish_details (nothing
 * published yet). Values must be finite and not negative.
 *
 * Returns 0 with the values in *out (free with sb_rabbitmq_result_free), or a negative code and
 * one line in err (*out then holds nothing): -EPROTO (not JSON, not the expected shape, a field
 * of the wrong type or out of range), -EAGAIN (no statistics yet), -ENOENT (no queue matches the
 * regex, or the object is another queue), -E2BIG (more than SB_RABBITMQ_MAX_QUEUES match),
 * -ENOMEM.
 */
int sb_rabbitmq_parse(const char *body, size_t len, sb_rabbitmq_measure measure, const char *name,
                      const regex_t *re, sb_rabbitmq_result *out, char *err, size_t errlen);

void sb_rabbitmq_result_free(sb_rabbitmq_result *r);

#endif
