/*
 * scalebus/plugin.h - the one public header every scalebus plugin builds against.
 *
 * A plugin is a shared object exporting one function, SB_PLUGIN_ENTRY_SYMBOL, that returns a
 * descriptor: the ABI version it was built for, its type name, its kind, an options table and its
 * callbacks. The host calls back into the plugin only through the descriptor, and the plugin calls
 * the host only through the sb_host table handed to create(): no plugin needs symbols from the
 * daemon binary, so a plugin built against an older header keeps loading when the table grows
 * (check SB_HOST_HAS() before calling a function added after SB_HOST_VERSION 2).
 *
 * ---- How this header grows (the ABI rules) ------------------------------------------------
 *
 * 1. Structs the PLUGIN fills and hands to the host carry the size the plugin was built with:
 *    sb_plugin_descriptor.size, sb_publish.size, sb_spawn.size, and for the arrays the host walks,
 *    sb_plugin_descriptor.option_spec_size (sizeof(sb_option_spec)) and .value_size
 *    (sizeof(sb_value)). New fields are only ever appended to these structs; the host reads
 *    only the bytes the plugin knows and treats the rest as zero. Set the sizes with the
 *    SB_DESCRIPTOR_SIZES, SB_PUBLISH_INIT and SB_SPAWN_INIT initialisers below.
 * 2. Structs the HOST fills (sb_host, sb_event) only ever grow at their end, and start with
 *    their own size: check SB_HOST_HAS(host, fn) before calling a function added after your
 *    SB_HOST_VERSION, and SB_EVENT_HAS(ev, field) before reading a field added later.
 * 3. New enum values (option types, kinds, log levels) and new topics are additions, never
 *    renumberings. A plugin must ignore topics and labels it does not know.
 * 4. Anything else bumps SB_ABI_VERSION: removing, reordering or retyping a field or a
 *    callback parameter, changing what a return code means. The loader refuses a plugin built
 *    for another ABI with one line naming the file and both versions; it never guesses.
 *    ABI 1 (up to scalebus 0.1) is refused: sb_publish grew time_ns without a size field.
 *
 * ---- Threads and callbacks ----------------------------------------------------------------
 *
 * Every callback (create, start, stop, destroy, reconfigure, on_event, timers, subscriptions,
 * child exits) runs on the daemon's loop thread, one at a time. host->publish() is the one
 * host function that is safe from any thread; every other host function is for the loop thread
 * only, from inside a callback. host->loop() hands out the uv_loop_t for plugins that need
 * handles of their own (loop thread only; close them before stop() completes).
 *
 * ---- Lifetimes ------------------------------------------------------------------------------
 *
 * - Option values (sb_value and every string in it) live until destroy(), or until a
 *   reconfigure() that returned 0 hands the plugin new ones (the old ones are freed after it
 *   returns).
 * - An sb_event, its labels, topic and source_id live for the duration of the callback that
 *   received it. Copy what you keep. A payload lives as long as the callback too, unless you
 *   take a reference with host->payload_retain() (release it with payload_release()).
 * - What you publish is copied (labels) or taken over (payload) by the host before publish()
 *   returns: your buffers are yours again at once.
 * - publish() works from the end of start() until stop() is called. After stop() returns,
 *   publish() refuses with -ESHUTDOWN (from any thread) and the event is dropped; threads a
 *   plugin started must be joined before destroy() returns, after which the sb_instance pointer
 *   is gone.
 *
 * ---- Limits -------------------------------------------------------------------------------
 *
 * - Publishing threads: any number; each thread that publishes gets its own queue, freed for
 *   reuse when the thread exits. Topics: any number of distinct topic strings (interned).
 * - Labels: up to SB_MAX_LABELS per event (publish() refuses more with -E2BIG); the daemon adds
 *   two (scaler_min, scaler_max) to the instance lists it forwards to policies.
 */
#ifndef SCALEBUS_PLUGIN_H
#define SCALEBUS_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped only on an incompatible change (rule 4 above). */
#define SB_ABI_VERSION 2
/* The host table grows at its end; its version counts the additions. Version 2 is the ABI-2
 * table: publish .. bounds as in version 1, subscribe returning a handle, then unsubscribe,
 * spawn, kill_group, index_claim and index_release. Version 3 appends http_request and
 * http_cancel (the daemon's asynchronous HTTP client) and stop_reason. Version 4 appends listen
 * (listening sockets the host keeps across reloads); with it, options gained SB_OPT_OBJECTS
 * (nested tables) and flags (SB_OPTION_SECRET) through the descriptor's appended options_more,
 * sb_value an appended objects field (rule 1), the topics SB_TOPIC_DRAINED, SB_TOPIC_ACTION and
 * SB_TOPIC_READ, and the descriptor's snapshot/restore (state across restarts). Version 5
 * appends request_reload (a plugin that wrote a file the pipeline file includes asks for it to
 * be checked and applied). */
#define SB_HOST_VERSION 5

#define SB_MAX_LABELS 14

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
    SB_OPT_MAP,      /* a mapping of string to string, e.g. env */
    /* host version 4: a mapping of names to objects, each checked against a nested options
     * table (a router's services: {web: {backend: w, ...}, api: {...}}), named in the
     * descriptor's options_more. Its value: items = the names, count = how many, objects[i] =
     * the values of object i. */
    SB_OPT_OBJECTS
} sb_option_type;

typedef struct sb_option_spec {
    const char *name;
    sb_option_type type;
    const char *default_value; /* in YAML scalar form ("10s", "1", "true"); NULL: no default */
    int required;              /* 1: the file must set it */
    const char *help;          /* one line, shown by `scalebus plugins --describe TYPE` */
} sb_option_spec;
/* An options table ends with an entry whose name is NULL. Rows stay these five fields, so tables
 * written positionally ({"every", SB_OPT_DURATION, "15s", 0, "..."}) keep compiling without
 * warnings; what else an option needs goes in the descriptor's options_more. */

/* More about some options (host version 4), one row per option that needs it, ending with a row
 * whose path is NULL. Set it with SB_OPTIONS_MORE(table) in the descriptor. */
typedef struct sb_option_more {
    /* The option: its name, or a dotted path into nested tables ("services.health"). */
    const char *path;
    /* SB_OPT_OBJECTS: the options table of each object (rows like the top-level table's;
     * nested up to SB_MAX_OPTION_DEPTH levels). NULL otherwise. */
    const sb_option_spec *fields;
    uint32_t flags; /* SB_OPTION_* */
} sb_option_more;

/* sb_option_more.flags: the value is a secret (a password, a token): the daemon never shows it
 * (describe output, logs, the admin API), only whether it is set. */
#define SB_OPTION_SECRET 0x1u
/* How deep SB_OPT_OBJECTS tables may nest (the loader refuses deeper ones). */
#define SB_MAX_OPTION_DEPTH 3

/* The descriptor records sizeof(sb_option_spec) as the plugin was built (option_spec_size): a
 * row added at the end of this struct later reads as zero for older plugins. */

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
    size_t count;              /* LIST/MAP/OBJECTS entries */
    /* ---- appended with host version 4 ---- */
    /* OBJECTS: objects[i] is the object named items[i], one sb_value per row of the option's
     * nested table (options_more), laid out like the values handed to create(). */
    const struct sb_value *const *objects;
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
/* trigger -> connector: a read failed (value = consecutive failures, label "reason" = why). The
 * daemon delivers it along the same edges as readings; a failure is never a reading of 0. */
#define SB_TOPIC_ERROR "error"
/* router -> scaler (through the scaler's `drain_from`): the member in label "instance", listed
 * as stopping, has no request left and may be stopped now. Added with host version 4. */
#define SB_TOPIC_DRAINED "drained"
/* scaler -> anyone (the admin's metrics): a call on the engine ended; value = its duration in
 * seconds, label "result" = done | busy | failed, label "reason" when not done. Host version 4;
 * the fleet library publishes it. */
#define SB_TOPIC_ACTION "action"
/* trigger -> anyone: a read ended; value = its duration in seconds, label "result" = done |
 * failed. Host version 4; the polling library publishes it. */
#define SB_TOPIC_READ "read"

/* Event flags. */
#define SB_EVENT_COALESCE                                                                          \
    0x1 /* only the newest undelivered event per source+topic+labels matters */

struct cJSON;

typedef struct sb_event {
    uint32_t size;         /* sizeof(sb_event) as the daemon was built: see SB_EVENT_HAS */
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

/* True when the event handed to you has FIELD (a field added after your header). */
#define SB_EVENT_HAS(ev, field)                                                                    \
    ((ev)->size >= offsetof(sb_event, field) + sizeof(((sb_event *)0)->field))

/* What a publisher fills in; the host stamps source and times and copies labels. Start every
 * sb_publish with SB_PUBLISH_INIT: {SB_PUBLISH_INIT, .topic = SB_TOPIC_READING, .value = 3}. A
 * size of 0 (a struct zeroed without it) is refused with -EINVAL. */
typedef struct sb_publish {
    uint32_t size; /* sizeof(sb_publish) as the plugin was built */
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

#define SB_PUBLISH_INIT .size = sizeof(sb_publish)

/* A child process for host->spawn(). Start it with SB_SPAWN_INIT, which sets the size and the
 * three descriptors to -1; assign a descriptor after the initialiser (naming it again inside the
 * same initialiser is an override that -Wextra warns about). */
typedef struct sb_spawn {
    uint32_t size;       /* sizeof(sb_spawn) as the plugin was built */
    const char *path;    /* the program (absolute, or relative to workdir); no PATH lookup */
    char *const *argv;   /* NULL-terminated */
    char *const *envp;   /* NULL-terminated: the child's whole environment */
    const char *workdir; /* NULL: the daemon's working directory */
    int stdin_fd;        /* -1: /dev/null; otherwise a descriptor the child gets as fd 0 */
    int stdout_fd;       /* -1: the daemon's own */
    int stderr_fd;       /* -1: the daemon's own */
} sb_spawn;

#define SB_SPAWN_INIT .size = sizeof(sb_spawn), .stdin_fd = -1, .stdout_fd = -1, .stderr_fd = -1

/* A spawned child's exit, on the loop thread. Called once when the group leader (the process
 * spawn() started) has exited and been reaped, with its wait status; group_empty is 1 when no
 * other process of its group is left. When some were left, it is called a second time, with the
 * same status and group_empty 1, once the last of them is gone. */
typedef void (*sb_child_cb)(void *arg, int64_t pid, int wait_status, int group_empty);

/* ---- Asynchronous HTTP (host version 3) --------------------------------------------------- */

/* A request for host->http_request(). Start it with SB_HTTP_REQUEST_INIT. Everything it points to
 * is copied before http_request() returns. */
typedef struct sb_http_request {
    uint32_t size;          /* sizeof(sb_http_request) as the plugin was built */
    const char *method;     /* NULL: GET, or POST when body is set */
    const char *url;        /* http:// or https:// only; redirects are not followed */
    const sb_label *headers; /* "Name", "value" pairs sent as "Name: value" */
    size_t nheaders;
    const char *body; /* NULL: none */
    size_t body_len;
    uint64_t timeout_ms; /* the whole request, connect included; 0: 10 s (never unlimited) */
    size_t max_body;     /* reply bodies longer than this fail with -EMSGSIZE; 0: 4 MiB */
    int insecure;        /* 1: do not verify the TLS peer and host name (an option says so) */
    const char *unix_socket; /* NULL: TCP; else the path of a unix socket to connect to */
    /* AWS Signature V4: "aws:amz:REGION:SERVICE" (curl's CURLOPT_AWS_SIGV4), with the access key
     * in username and the secret in password; the caller adds X-Amz-Security-Token itself. */
    const char *aws_sigv4;
    const char *username; /* HTTP basic auth (or the SigV4 access key); NULL: none */
    const char *password;
} sb_http_request;

#define SB_HTTP_REQUEST_INIT .size = sizeof(sb_http_request)

/* How a request ended, handed to its callback on the loop thread. Valid for the callback only. */
typedef struct sb_http_response {
    uint32_t size;  /* sizeof(sb_http_response) as the daemon was built */
    int error;      /* 0: a reply came (any status); else a negative errno: -ETIMEDOUT,
                       -ECONNREFUSED, -EHOSTUNREACH (name or address), -EMSGSIZE (body over
                       max_body), -EPROTO (not HTTP, TLS failure), -ECANCELED, -EIO */
    const char *error_text; /* one line on error (curl's own words), else "" */
    long status;            /* the HTTP status, 0 on error */
    const char *body;       /* NUL-terminated (the NUL is not counted); "" when none */
    size_t body_len;
    const sb_label *headers; /* the reply's headers, names lower-cased, in order */
    size_t nheaders;
    uint64_t elapsed_us; /* from the request's start to its end */
} sb_http_response;

/* Completion: called exactly once per request on the loop thread, unless http_cancel() was called
 * first (then never). */
typedef void (*sb_http_cb)(void *arg, const sb_http_response *res);
typedef struct sb_http sb_http; /* one request in flight, owned by the host */

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
     * bus queue is full and the event could not be coalesced (it is counted as dropped),
     * -ESHUTDOWN after stop() has returned, -EINVAL without a valid size or topic, -E2BIG with
     * more than SB_MAX_LABELS labels. The payload is the host's in every case but a size too
     * small to hold its field. */
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

    /* Subscribe to events from another component by its id (NULL topic: every topic). Works
     * from create() and later. The subscription follows the id: when that component is
     * replaced on a reload, the subscription is bound to the new instance. It lasts until
     * unsubscribe(), or until this instance is destroyed or fails to start. Returns a handle
     * (> 0), or -ENOENT when no component has that id (running, or in the file being loaded),
     * -EINVAL or -ENOMEM. */
    int64_t (*subscribe)(sb_instance *inst, const char *source_id, const char *topic,
                         sb_event_cb cb, void *arg);

    /* Keep a payload beyond the callback that received it; release it with payload_release. */
    const struct cJSON *(*payload_retain)(sb_instance *inst, const struct cJSON *payload);
    void (*payload_release)(sb_instance *inst, const struct cJSON *payload);

    /* A scaler's bounds from the file (`min`, `max`, handled by the host for every scaler). */
    void (*bounds)(sb_instance *inst, int64_t *min, int64_t *max);

    /* ---- host version 2 (ABI 2) ---- */

    /* Remove a subscription made by this instance. Returns 0 or -ENOENT. */
    int (*unsubscribe)(sb_instance *inst, int64_t handle);

    /* Start a child process, supervised by the host: it leads its own process group, gets
     * SIGKILL if the daemon dies, and no process of its group outlives the daemon (even on
     * SIGKILL of the daemon: see the README on supervision). on_exit runs on the loop thread
     * (see sb_child_cb). Returns 0 with the pid in *pid, or a negative errno with one line in err
     * ("cannot change to workdir '/srv': No such file or directory"). */
    int (*spawn)(sb_instance *inst, const sb_spawn *req, sb_child_cb on_exit, void *arg,
                 int64_t *pid, char *err, size_t errlen);
    /* Send sig to every process of a spawned child's group (sig 0: test). Returns 0, or -ESRCH
     * when the group is empty or the pid is not one this instance spawned. */
    int (*kill_group)(sb_instance *inst, int64_t pid, int sig);

    /* The lowest instance index (0, 1, ...) not held by any instance with this component's id,
     * the one it replaces on a reload included, so indexes stay unique within an id. Released
     * with index_release, or when this instance is destroyed. Returns the index or -ENOMEM. */
    int64_t (*index_claim)(sb_instance *inst);
    void (*index_release)(sb_instance *inst, int64_t index);

    /* ---- host version 3 ---- */

    /* Start an HTTP request on the daemon's shared client (one libcurl multi handle on the loop:
     * connections are reused, sockets are close-on-exec, TLS peers are verified unless
     * req->insecure). cb runs later on the loop thread, never inside this call. Requests belong
     * to the instance: those still in flight when its stop() completes are cancelled without a
     * callback. Returns 0 with a handle in *out (may be NULL), or -EINVAL (bad request or URL
     * scheme), -ESHUTDOWN (stopped), -ENOMEM. Not under --dry-run either: reads still read. */
    int (*http_request)(sb_instance *inst, const sb_http_request *req, sb_http_cb cb, void *arg,
                        sb_http **out);
    /* Cancel a request in flight: its callback is never called. The handle is gone afterwards.
     * Do not call it for a request whose callback has run (the handle died with it). */
    void (*http_cancel)(sb_instance *inst, sb_http *req);

    /* Why this instance is being stopped, for stop() to ask (SB_STOP_*; 0 when it is not). A
     * scaler that would tear its fleet down on a stop does so only on SB_STOP_SHUTDOWN or
     * SB_STOP_REMOVED: a replacement (a reload with changed options) adopts the same fleet. */
    int (*stop_reason)(sb_instance *inst);

    /* ---- host version 4 ---- */

    /* A listening TCP socket on addr ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080"; numeric,
     * no name is looked up) that belongs to the host: a reload that keeps or replaces this
     * component keeps it open (the replacement asks for the same address and gets the same
     * socket, so no connection is refused or lost in between); it is closed once no instance of
     * the component asks for it (removed from the file, moved to another address, daemon stop).
     * backlog 0: 511. Returns a descriptor of its own for this instance (non-blocking,
     * close-on-exec; yours to close, e.g. by the uv_tcp handle you open it with), or a negative
     * errno with one line in err ("127.0.0.1:8080: Address already in use"). An instance keeps
     * its hold on the socket until it is destroyed. */
    int (*listen)(sb_instance *inst, const char *addr, int backlog, char *err, size_t errlen);

    /* ---- host version 5 ---- */

    /* Apply the pipeline file again, as a SIGHUP does, because this instance changed a file the
     * pipeline file includes (the router's tokens write fragments into a folder it includes).
     * The whole configuration is read and checked first, exactly as `scalebus check` would:
     * with errors, nothing changes, -EINVAL is returned and err holds them, one
     * "FILE:LINE:COL: message" per line (cut short to errlen). must_include, when not NULL, is
     * a file that must be part of the configuration: when it is not read (its folder is not
     * included), -ENOENT with err saying so. Otherwise the reload is scheduled on the loop,
     * never run inside this call (it may replace the caller), and 0 is returned; requests made
     * before it runs are applied by that one reload. -ESHUTDOWN once the daemon stops,
     * -ENOTSUP where there is no file to reload (simulate). */
    int (*request_reload)(sb_instance *inst, const char *must_include, char *err, size_t errlen);
} sb_host;

#define SB_STOP_SHUTDOWN 1 /* the daemon stops (SIGTERM, SIGINT) */
#define SB_STOP_REMOVED 2  /* a reload removed this component from the file */
#define SB_STOP_REPLACED 3 /* a reload replaces it with a new instance of the same id, or a
                              refused reload retires the new instance it had started */

/* True when the running daemon's host table has function FN. */
#define SB_HOST_HAS(host, fn)                                                                      \
    ((host)->size >= offsetof(sb_host, fn) + sizeof(((sb_host *)0)->fn) && (host)->fn != NULL)

/* ---- Descriptor -------------------------------------------------------------------------- */

typedef struct sb_plugin_descriptor {
    uint32_t abi_version;      /* SB_ABI_VERSION as the plugin was built */
    uint32_t size;             /* sizeof(sb_plugin_descriptor) as the plugin was built */
    uint32_t option_spec_size; /* sizeof(sb_option_spec) as the plugin was built */
    uint32_t value_size;       /* sizeof(sb_value) as the plugin was built */
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

    /* Optional: take changed options in place on a reload (same id, type and version; the
     * host applies min, max, from, to and match itself). values has one entry per options row,
     * as for create(). Return 0 when the running instance now uses them (the old values are
     * freed after this returns), or a negative code (SB_RECONFIGURE_REPLACE, or an error with one
     * line in err) to have the host replace the instance instead. NULL: always replace. */
    int (*reconfigure)(void *state, const sb_value *values, char *err, size_t errlen);

    /* ---- appended with host version 3 ---- */

    /* Connectors: the extra topics this one wants from its inputs, beyond readings and desired
     * counts (SB_ACCEPTS_*). 0 (every plugin built before this field): none, so a connector
     * that treats every event as a reading never sees a failure as one. */
    uint32_t accepts;
    /* ---- appended with host version 4 ---- */
    /* More about some options: nested tables of SB_OPT_OBJECTS options, secrets. NULL: none.
     * option_more_size is sizeof(sb_option_more) as the plugin was built (rule 1). */
    const sb_option_more *options_more;
    uint32_t option_more_size;

    /* Optional: what must survive a restart of the daemon (a policy's windows, cooldowns and
     * last decision), with `state_dir` set. snapshot() returns the instance's state as a JSON
     * object the host takes over (NULL: nothing to keep); the host calls it on the loop thread
     * after the instance has handled events, at most once per the file's state interval, and
     * writes it atomically. restore() hands a new instance, after create() and before start(),
     * the snapshot the last daemon wrote for a component with the same id and type (written by
     * this or another version of the plugin: check every field, ignore what you do not know);
     * a negative return (with one line in err) only drops the snapshot, with a warning. */
    struct cJSON *(*snapshot)(void *state);
    int (*restore)(void *state, const struct cJSON *snap, char *err, size_t errlen);
} sb_plugin_descriptor;

/* sb_plugin_descriptor.accepts: SB_TOPIC_ERROR events from the triggers in `from` (value =
 * consecutive failures, label reason), delivered whatever the connector's `match`. */
#define SB_ACCEPTS_ERRORS 0x1u

/* reconfigure(): these changes cannot be taken in place; replace the instance. */
#define SB_RECONFIGURE_REPLACE (-95) /* -EOPNOTSUPP */

/* In a descriptor: .options_more = table, with its row size. */
#define SB_OPTIONS_MORE(table) .options_more = (table), .option_more_size = sizeof(sb_option_more)

/* The first fields of every descriptor: .abi_version, .size, .option_spec_size, .value_size. */
#define SB_DESCRIPTOR_SIZES                                                                        \
    .abi_version = SB_ABI_VERSION, .size = sizeof(sb_plugin_descriptor),                           \
    .option_spec_size = sizeof(sb_option_spec), .value_size = sizeof(sb_value)

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
