/*
 * scalebus/poll.h - what every polling trigger shares, in the plugin SDK: the read schedule
 * (`every`, a read at once on "run"), one reading per series, failures that are logged once per
 * change of state, counted and published as SB_TOPIC_ERROR events (never as a reading of 0),
 * retries with exponential back-off and jitter that honour Retry-After, and the HTTP requests a
 * read makes, cancelled when the trigger stops.
 *
 * A polling trigger implements one function, "read once", and reports what it read:
 *
 *   static void redis_read(void *self, sb_poller *p)   // starts one read, returns at once
 *   {   ... later, on the loop thread:
 *       sb_poller_reading(p, 42, labels, 1);            // one per series
 *       sb_poller_done(p);                              // or sb_poller_fail(p, "...")
 *   }
 *
 * The implementation is one static library (libscalebus_poll.a, PIC, hidden visibility) that each
 * polling trigger links, like libscalebus_policy.a. It calls the host only through sb_host.
 */
#ifndef SCALEBUS_POLL_H
#define SCALEBUS_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Back-off (usable on its own, e.g. by a scaler retrying an action) -------------------- */

/* Exponential back-off with jitter: the n-th delay (n from 0) is drawn uniformly from
 * [d/2, d] where d = min(max_ms, base_ms * 2^n). */
typedef struct sb_backoff {
    uint64_t base_ms;
    uint64_t max_ms;
    uint32_t attempt; /* delays handed out since the last reset */
    uint64_t rng;     /* xorshift state; seeded by sb_backoff_init */
} sb_backoff;

void sb_backoff_init(sb_backoff *b, uint64_t base_ms, uint64_t max_ms);
/* The next delay. retry_after_ms > 0 (a server's Retry-After) is honoured: the delay is at least
 * that, even past max_ms, up to one hour. */
uint64_t sb_backoff_next(sb_backoff *b, uint64_t retry_after_ms);
void sb_backoff_reset(sb_backoff *b);

/* A Retry-After header's value in ms: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2015
 * 07:28:00 GMT") relative to now_wall_s (Unix seconds). 0 when absent, in the past or malformed. */
uint64_t sb_retry_after_ms(const char *value, int64_t now_wall_s);
/* The Retry-After of a reply (its "retry-after" header), as above; 0 when none. */
uint64_t sb_http_retry_after_ms(const sb_http_response *res);

/* ---- The poller --------------------------------------------------------------------------- */

/* The rows every polling trigger has, in this order: put SB_POLL_OPTIONS in the options table
 * and hand sb_poller_new() a pointer to the sb_value of its first row, "every". */
/* clang-format off */
#define SB_POLL_OPTIONS                                                                            \
    {"every", SB_OPT_DURATION, "15s", 0, "how often to read (also at once on \"run\")"},        \
        {"timeout", SB_OPT_DURATION, "10s", 0, "how long one read may take"},                      \
        {"backoff_max", SB_OPT_DURATION, "60s", 0,                                                 \
         "after failures, reads back off (doubling from `every`, with jitter) up to this"}
/* clang-format on */
#define SB_POLL_OPTION_COUNT 3

typedef struct sb_poller sb_poller;

typedef struct sb_poll_ops {
    /* Start one read. Report each series with sb_poller_reading() and end the read with exactly
     * one sb_poller_done() or sb_poller_fail(), on the loop thread, now or later. Never called
     * while a read is in flight. */
    void (*read)(void *self, sb_poller *p);
    /* Optional: abandon the read in flight (the trigger stops, or the read timed out). Requests
     * made with sb_poller_http() are cancelled by the poller itself. After cancel, the read must
     * not call sb_poller_done/fail (the poller ignores it if it does). */
    void (*cancel)(void *self);
} sb_poll_ops;

/* poll_rows: the sb_value of "every" (SB_POLL_OPTION_COUNT rows). Returns 0 and the poller in
 * *out, or a negative code with one line in err ("every: must be at least 10ms"). */
int sb_poller_new(sb_instance *inst, const sb_host *host, const sb_value *poll_rows,
                  const sb_poll_ops *ops, void *self, sb_poller **out, char *err, size_t errlen);
/* Take new "every"/"timeout"/"backoff_max" values (a reconfigure); the next read uses them. */
int sb_poller_set_options(sb_poller *p, const sb_value *poll_rows, char *err, size_t errlen);
/* First read at once, then every `every`. */
int sb_poller_start(sb_poller *p);
/* No more reads; the read in flight is cancelled. */
void sb_poller_stop(sb_poller *p);
void sb_poller_free(sb_poller *p);

/* The descriptor's on_event for a polling trigger: "run" reads at once (or right after the read
 * in flight); other topics are ignored. state must be the trigger's state whose FIRST member is
 * the sb_poller * (or call sb_poller_run_now from your own on_event). */
void sb_poller_run_now(sb_poller *p);

/* One reading: SB_TOPIC_READING, coalescible, with these labels (a series' labels; none for a
 * single value). Returns host->publish()'s result. Safe from any thread (it only publishes). */
int sb_poller_reading(sb_poller *p, double value, const sb_label *labels, size_t nlabels);
/* The read succeeded. Loop thread. */
void sb_poller_done(sb_poller *p);
/* The read failed: the reason (control characters shown as '?', so it stays one line whatever a
 * remote sent) is logged (warn) when the state changes (first failure, another
 * reason, recovery is logged by sb_poller_done), counted, and published as SB_TOPIC_ERROR with
 * value = consecutive failures and label reason. The next read comes after a back-off (at least
 * `every`, honouring retry_after_ms when > 0). Loop thread. */
void sb_poller_fail(sb_poller *p, uint64_t retry_after_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Failures so far: consecutive (0 when the last read succeeded) and in all. */
uint64_t sb_poller_failures(const sb_poller *p, uint64_t *total);
/* The read timeout (`timeout`) in ms, for requests a read makes. */
uint64_t sb_poller_timeout_ms(const sb_poller *p);
const sb_host *sb_poller_host(const sb_poller *p);
sb_instance *sb_poller_instance(const sb_poller *p);

/* An HTTP request that belongs to the read in flight: its timeout defaults to `timeout`, and it
 * is cancelled when the poller stops. cb runs once on the loop thread (not after a stop). Returns
 * host->http_request()'s result (-ENOSYS on a daemon without HTTP). */
int sb_poller_http(sb_poller *p, const sb_http_request *req, sb_http_cb cb, void *arg);

/* The usual failure for a reply that did not succeed, or NULL when it did (2xx): "GET
 * http://h/x: connection refused", "GET http://h/x: HTTP 503: <first line of the body>", with a
 * password in the URL shown as ***. Writes into buf. */
const char *sb_http_failure(const sb_http_request *req, const sb_http_response *res, char *buf,
                            size_t len);

/* The usual way a read ends when a reply did not succeed: returns 0 for a 2xx reply (nothing
 * done), else fails the read (honouring Retry-After) and returns 1. The reason is that of
 * sb_http_failure (the URL shown as shown_url when not NULL), except HTTP 401: "the credentials
 * were refused (username, password)" when the request carried a username, else
 * missing_credentials ("the stats page wants credentials (username, password)"); and HTTP 403:
 * "access forbidden", naming the user. */
int sb_poller_fail_reply(sb_poller *p, const sb_http_request *req, const char *shown_url,
                         const sb_http_response *res, const char *missing_credentials);

/* Check an http(s) URL option: the scheme, a host, no credentials in it (they belong in their
 * own options, which the log never shows), no spaces or control characters. Returns 0 or -EINVAL
 * with one line in err naming the option ("url: no host in \"http:///x\""). */
int sb_http_url_check(const char *option, const char *url, char *err, size_t errlen);

/* ---- Descriptor callbacks for a polling trigger -------------------------------------------- */

/* For a trigger whose state's FIRST member is its sb_poller *: .start = sb_poll_trigger_start,
 * .stop = sb_poll_trigger_stop, .on_event = sb_poll_trigger_on_event (a read at once on "run"). */
int sb_poll_trigger_start(void *state);
int sb_poll_trigger_stop(void *state);
void sb_poll_trigger_on_event(void *state, const sb_event *ev);

#ifdef __cplusplus
}
#endif
#endif
