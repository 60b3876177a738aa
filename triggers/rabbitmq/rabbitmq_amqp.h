/*
 * rabbitmq_amqp.h - one AMQP 0-9-1 connection (librabbitmq) that reads a queue's counts with a
 * passive queue.declare. Every call here BLOCKS (bounded by the timeout it is given): call them
 * on a worker thread, one at a time per reader. The plugin (rabbitmq.c) runs them through
 * uv_queue_work and reports on the loop thread.
 */
#ifndef SB_RABBITMQ_AMQP_H
#define SB_RABBITMQ_AMQP_H

#include <stddef.h>
#include <stdint.h>

typedef struct sb_amqp_reader sb_amqp_reader;

/* Parse url (amqp://[user[:password]@]host[:port][/vhost], percent-encoded parts) and remember
 * the queue; no connection yet. user/password, when not NULL, are used instead of the URL's
 * (the caller refuses both at once). An empty or missing vhost is "/". Returns 0, or -EINVAL
 * (bad URL, amqps://) or -ENOMEM with one line in err. Loop thread (it does not block). */
int sb_amqp_reader_new(const char *url, const char *user, const char *password, const char *queue,
                       sb_amqp_reader **out, char *err, size_t errlen);

/* "amqp://host:port/vhost" without credentials, for log lines. */
const char *sb_amqp_reader_where(const sb_amqp_reader *r);

/* One read: connect and log in if not connected, open a channel if none is open, then a passive
 * queue.declare. Bounded by timeout_ms in all. Returns 0 with the counts, or a negative code with
 * one line in err: -ENOENT (no such queue: the channel is closed and reopened next time),
 * -EACCES (login refused, or no access to the vhost or queue), -ETIMEDOUT, -ECONNREFUSED, -EIO
 * (other failures; the connection is dropped and made again next time). BLOCKS. */
int sb_amqp_reader_read(sb_amqp_reader *r, uint64_t timeout_ms, uint32_t *messages,
                        uint32_t *consumers, char *err, size_t errlen);

/* 1 while a connection is open. */
int sb_amqp_reader_connected(const sb_amqp_reader *r);

/* Close the connection politely (connection.close, bounded by timeout_ms) and drop it. BLOCKS. */
void sb_amqp_reader_close(sb_amqp_reader *r, uint64_t timeout_ms);

/* Free the reader; a connection still open is dropped without a goodbye. */
void sb_amqp_reader_free(sb_amqp_reader *r);

#endif
