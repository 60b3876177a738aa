/*
 * scalebus/plugin.h - the one public header every scalebus plugin builds against.
 *
 * A plugin is a shared object exporting one function, SB_PLUGIN_ENTRY_SYMBOL, that returns a
 * descriptor: the ABI version it was built for, its type name, its kind, an options table and its
 * callbacks. The host calls back into the plugin only through the descriptor, and the plugin calls
 * the host only through the sb_host table handed to create(): no plugin needs symbols from the
 * daemon binary, so a plugin built against an older header keeps loading when the table grows
 * (check SB_HOST_HAS() before calling a function added after SB_HOST_VERSION 1).
 *
 * Threading: every callback runs on the daemon's loop thread. host->publish() is the one host
 * function that is also safe to call from any other thread.
 */
#ifndef SCALEBUS_PLUGIN_H
#define SCALEBUS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped only on an incompatible change to the descriptor, sb_event or the callbacks. */
#define SB_ABI_VERSION 1
/* The host table grows at its end; its version counts the additions. */
#define SB_HOST_VERSION 1

#define SB_PLUGIN_ENTRY_SYMBOL "sb_plugin_entry"

/* Return codes: 0 or a negative errno-style value (as libuv does). */
#define SB_OK 0
#define SB_PENDING 1 /* stop(): the plugin finishes later and calls host->stopped() */

typedef enum sb_kind {
    SB_KIND_TRIGGER = 1,   /* produces readings (cron, queue depth, HTTP load, router) */
    SB_KIND_CONNECTOR = 2, /* a policy: turns readings into desired counts, or into "run now" */
    SB_KIND_SCALER = 3     /* makes the number of running instances match a desired count */
} sb_kind;

/* ---- Options table ----------------------------------------------------------------------- */

typedef enum sb_option_type {
    SB_OPT_STRING = 1,
    SB_OPT_INT,      /* 64-bit signed integer */
    SB_OPT_NUMBER,   /* double */
    SB_OPT_BOOL,     /* true/false, yes/no, on/off */
    SB_OPT_DURATION, /* "500ms", "10s", "5m", "1h", "1d", or a bare number of seconds */
    SB_OPT_LIST,     /* a sequence of strings, e.g. an argv */
    SB_OPT_MAP       /* a mapping of string to string, e.g. env */
} sb_option_type;

typedef struct sb_option_spec {
    const char *name;
    sb_option_type type;
    const char *default_value; /* in YAML scalar form ("10s", "1", "true"); NULL: no default */
    int required;              /* 1: the file must set it */
    const char *help;          /* one line, shown by `scalebus plugins --describe TYPE` */
} sb_option_spec;
/* An options table ends with an entry whose name is NULL. */

/* One parsed option value. The array handed to create() has one entry per options-table row,
 * in the table's order. Storage belongs to the host and lives as long as the instance. */
typedef struct sb_value {
    int is_set;                /* 1 when the file sets it or it has a default */
    const char *str;           /* STRING; also the raw scalar text of INT/NUMBER/BOOL/DURATION */
    int64_t integer;           /* INT, BOOL (0/1) */
    double number;             /* NUMBER, and INT as a double */
    uint64_t duration_ms;      /* DURATION */
    const char *const *items;  /* LIST: items; MAP: keys */
    const char *const *values; /* MAP: values, parallel to items */
    size_t count;              /* LIST/MAP entries */
} sb_value;

/* ---- Events --------------------------------------------------------------------------- */

typedef struct sb_label {
    const char *key;
    const char *value;
} sb_label;

/* Well-known topics. */
#define SB_TOPIC_READING "reading"     /* trigger -> connector: a measurement (coalesced) */
#define SB_TOPIC_DESIRED "desired"     /* connector -> scaler: value = desired count */
#define SB_TOPIC_RUN "run"             /* connector -> trigger: run now */
#define SB_TOPIC_INSTANCES "instances" /* scaler -> anyone: payload = instance list */
#define SB_TOPIC_DECISION "decision"   /* connector -> anyone: a decision and its reason */

/* Event flags. */
#define SB_EVENT_COALESCE                                                                          \
    0x1 /* only the newest undelivered event per source+topic+labels matters */

struct cJSON;

typedef struct sb_event {
    uint32_t source;       /* numeric id of the publishing instance */
    const char *source_id; /* its id in the file */
    const char *topic;
    uint32_t flags;
    uint64_t mono_ns; /* CLOCK_MONOTONIC at publish */
    int64_t wall_ns;  /* CLOCK_REALTIME at publish, ns since the epoch */
    double value;
    const sb_label *labels;
    size_t nlabels;
    /* Optional, shared read-only by every subscriber; valid for the duration of the callback
     * (call host->payload_retain() to keep it longer). */
    const struct cJSON *payload;
} sb_event;

/* What a publisher fills in; the host stamps source and times and copies labels. */
typedef struct sb_publish {
    const char *topic;
    uint32_t flags;
    double value;
    const sb_label *labels;
    size_t nlabels;
    struct cJSON *payload; /* ownership passes to the host (freed after the last subscriber) */
    /* 0: stamp the event now. Otherwise the CLOCK_MONOTONIC time (ns) the event stands for: a
     * policy passes the time of the reading it decided on, so decisions replayed by
     * `scalebus simulate` on virtual time carry virtual time too. */
    uint64_t time_ns;
} sb_publish;

/* ---- Host table -------------------------------------------------------------------------- */

typedef struct sb_instance sb_instance; /* one configured component, owned by the host */
typedef struct sb_timer sb_timer;

typedef enum sb_log_level {
    SB_LOG_ERROR = 0,
    SB_LOG_WARN = 1,
    SB_LOG_INFO = 2,
    SB_LOG_DEBUG = 3
} sb_log_level;

typedef void (*sb_timer_cb)(void *arg);
typedef void (*sb_event_cb)(void *arg, const sb_event *ev);

typedef struct sb_host {
    uint32_t size;    /* sizeof(sb_host) as the daemon was built */
    uint32_t version; /* SB_HOST_VERSION as the daemon was built */

    /* Publish an event from this instance. Safe from any thread. Returns 0, or -ENOBUFS when the
     * bus queue is full and the event could not be coalesced (it is counted as dropped). */
    int (*publish)(sb_instance *inst, const sb_publish *ev);

    void (*log)(sb_instance *inst, sb_log_level level, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

    /* One-shot (repeat_ms 0) or repeating timer on the loop's heap; cb runs on the loop thread.
     * Returns NULL on allocation failure. timer_free() stops and frees it (safe inside cb). */
    sb_timer *(*timer_new)(sb_instance *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                           sb_timer_cb cb, void *arg);
    void (*timer_free)(sb_timer *t);

    void *(*loop)(sb_instance *inst); /* the uv_loop_t * for plugins that need their own handles */
    const char *(*instance_id)(sb_instance *inst);
    int (*dry_run)(
        sb_instance *inst); /* 1 under `scalebus run --dry-run`: log actions, take none */

    /* Report that an asynchronous stop (stop() returned SB_PENDING) has finished. */
    void (*stopped)(sb_instance *inst);

    /* Subscribe to events from another instance by its id (NULL topic: every topic). The
     * subscription lasts until this instance is destroyed. Returns 0 or -ENOENT. */
    int (*subscribe)(sb_instance *inst, const char *source_id, const char *topic, sb_event_cb cb,
                     void *arg);

    /* Keep a payload beyond the callback that received it; release it with payload_release. */
    const struct cJSON *(*payload_retain)(sb_instance *inst, const struct cJSON *payload);
    void (*payload_release)(sb_instance *inst, const struct cJSON *payload);

    /* A scaler's bounds from the file (`min`, `max`, handled by the host for every scaler). */
    void (*bounds)(sb_instance *inst, int64_t *min, int64_t *max);
} sb_host;

/* True when the running daemon's host table has function FN. */
#define SB_HOST_HAS(host, fn)                                                                      \
    ((host)->size >= offsetof(sb_host, fn) + sizeof(((sb_host *)0)->fn) && (host)->fn != NULL)

/* ---- Descriptor -------------------------------------------------------------------------- */

typedef struct sb_plugin_descriptor {
    uint32_t abi_version; /* SB_ABI_VERSION as the plugin was built */
    uint32_t size;        /* sizeof(sb_plugin_descriptor) as the plugin was built */
    const char *type;     /* "cron": [a-z0-9_]+, unique among loaded plugins */
    sb_kind kind;
    const char *version;     /* the plugin's own version, e.g. "1.0.0" */
    const char *description; /* one line */
    const sb_option_spec *options;

    /* Build an instance from validated options (one sb_value per options row). On error return a
     * negative code and write one line into err. *state receives the plugin's private state. */
    int (*create)(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                  char *err, size_t errlen);
    /* Begin work (arm timers, spawn processes). */
    int (*start)(void *state);
    /* Stop work. Return 0 when stopped, or SB_PENDING and call host->stopped() later. */
    int (*stop)(void *state);
    /* Free everything; called after stop has finished. */
    void (*destroy)(void *state);
    /* An event for this instance: a reading (connectors; also a desired count from a connector
     * named in `from`, and SB_TOPIC_INSTANCES from each scaler in `to`, whose value is its
     * running count), a desired count (scalers, already clamped to the scaler's min/max), or
     * "run" (triggers). May be NULL for pure sources. */
    void (*on_event)(void *state, const sb_event *ev);

    /* Optional, for scheduled triggers: the next n firing times strictly after `after` (Unix
     * seconds). Writes times and their UTC offsets in seconds; returns how many it wrote. */
    int (*next_fire_times)(void *state, int64_t after, int64_t *times, int32_t *utc_offsets, int n);
} sb_plugin_descriptor;

typedef const sb_plugin_descriptor *(*sb_plugin_entry_fn)(void);

/* Define the entry point: SB_PLUGIN_EXPORT(my_descriptor) at the end of the plugin's source. */
#define SB_PLUGIN_EXPORT(desc)                                                                     \
    __attribute__((visibility("default"))) const sb_plugin_descriptor *sb_plugin_entry(void);      \
    const sb_plugin_descriptor *sb_plugin_entry(void)                                              \
    {                                                                                              \
        return &(desc);                                                                            \
    }

#ifdef __cplusplus
}
#endif
#endif
