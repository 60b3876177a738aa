/*
 * bus.h - the event bus: bounded lock-free rings drained on the loop thread, fed from any thread.
 *
 * Each publishing thread gets its own single-producer ring (the loop thread's publishes use ring
 * 0), so publishing takes no lock: the event is copied into a slot (labels inline when small, the
 * payload by reference) and the loop is woken with a uv_async. The loop drains the rings in
 * batches, in place, and calls each subscriber of the event's source. Order is kept per
 * publishing thread. An event flagged SB_EVENT_COALESCE replaces the undelivered event with the
 * same source, topic and labels, so a slow consumer sees the newest reading, never a backlog.
 * A full ring refuses the event (-ENOBUFS) and counts it. Subscribers are found by source number
 * (an array index), never by a scan.
 *
 * Threads: bus_publish may be called from any thread, and bus_get_stats too; everything else is
 * for the loop thread (the one that called bus_new). No thread may publish once bus_close is
 * called.
 *
 * Limits: none on publishing threads or topics, only memory. A thread's ring outlives the thread
 * until its events are delivered and is then handed to the next thread that starts publishing,
 * so the bus holds as many rings as threads ever published at the same time (bus_stats.rings).
 * A topic string is kept (interned) until the bus is freed: topics are a small fixed vocabulary,
 * not data. A ring's coalescing map holds about one entry per undelivered coalescible event.
 * A removed source's number is reused once no event queued before its removal is left, so the
 * source table holds about as many entries as sources run at once (bus_stats.sources), however
 * often a reload replaces them.
 */
#ifndef SCALEBUS_BUS_H
#define SCALEBUS_BUS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "scalebus/plugin.h"

typedef struct bus bus;

#define BUS_DEFAULT_CAPACITY 16384u /* slots in the loop thread's ring */
#define BUS_BATCH 256u              /* events taken from one ring before the next gets a turn */
/* events delivered per loop iteration before timers and I/O get a turn */
#define BUS_BUDGET 8192u

/* Every accepted event is delivered, coalesced or still queued:
 * published == delivered + coalesced + queued (until bus_close releases what is left). */
typedef struct bus_stats {
    uint64_t published;    /* accepted (bus_publish returned 0), coalesced ones included */
    uint64_t delivered;    /* events taken off the queue and dispatched */
    uint64_t coalesced;    /* replaced by a newer event before delivery */
    uint64_t dropped;      /* refused because the publishing thread's ring was full */
    size_t queued;         /* waiting now */
    size_t rings;          /* the loop thread's ring + the most other threads publishing at once */
    size_t sources;        /* entries in the source table: running sources and removed ones
                              whose numbers are not free to reuse yet */
    size_t coalesce_keys;  /* entries in the rings' coalescing maps (waiting coalescible events) */
    size_t coalesce_slots; /* their capacity, in entries of 16 bytes */
} bus_stats;

/* capacity: slots in the loop thread's ring (rounded up to a power of two); each other
 * publishing thread's ring has min(capacity, 8192). NULL on ENOMEM. */
bus *bus_new(uv_loop_t *loop, size_t capacity);

/* Close the bus's handles; the bus is freed once libuv has closed them (run the loop). Events
 * still queued are released undelivered: call bus_flush first to deliver them. */
void bus_close(bus *b);

/* A publishing source. The id string is not copied: it must stay valid until the source is
 * removed (the daemon passes the instance's own id). Returns the source number (>= 1), or 0 on
 * ENOMEM or when 2^24 - 1 sources run at once. A number names one source only: an event queued
 * by a removed source reaches no one, also once its table entry serves a new source (the entry
 * is reused only after the rings have drained past the removal, and the number carries the
 * entry's generation in its high 8 bits, so a late publish with the old number is dropped). */
uint32_t bus_source_add(bus *b, const char *id);
/* Remove a source and every subscription to it (loop thread). A number already removed, or
 * never added, is ignored. */
void bus_source_remove(bus *b, uint32_t source);

/* Subscribe to a source (topic NULL: every topic; the string must outlive the subscription).
 * Returns a subscription number (> 0) or a negative error. Loop thread only. */
int64_t bus_subscribe(bus *b, uint32_t source, const char *topic, sb_event_cb cb, void *arg);
void bus_unsubscribe(bus *b, uint32_t source, int64_t subscription);

/* The bus's one observer: a callback that sees every event of each source marked with
 * bus_observe, after that source's subscribers. An observer of every component (the admin's
 * counters) so costs a pointer per source, not a subscription each. Loop thread only. */
void bus_set_observer(bus *b, sb_event_cb cb);
/* Mark a source observed: its events reach the observer with arg (not NULL) until the source
 * is removed. Returns 0, -ENOENT (no such source) or -EINVAL. Loop thread only. */
int bus_observe(bus *b, uint32_t source, void *arg);

/* Publish from any thread. Returns 0, or -ENOBUFS (the thread's ring is full; counted as
 * dropped), -ENOMEM (no memory for the thread's ring, a new topic, the labels or the payload's
 * count), -EINVAL (no bus, event or topic). The payload, if any, is the bus's in every case. */
int bus_publish(bus *b, uint32_t source, const sb_publish *pub);

/* Deliver everything queued now, on the loop thread (graceful stop). */
void bus_flush(bus *b);

/* Counters, from any thread (each a snapshot; together they add up once the bus is idle). */
void bus_get_stats(bus *b, bus_stats *out);

/* Payload references, for host->payload_retain/release (loop thread). */
const struct cJSON *bus_payload_retain(bus *b, const struct cJSON *payload);
void bus_payload_release(bus *b, const struct cJSON *payload);

/* Clocks used for event stamps. */
uint64_t bus_now_mono_ns(void);
int64_t bus_now_wall_ns(void);

#endif
