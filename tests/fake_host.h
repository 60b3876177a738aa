/*
 * fake_host.h - the one fake host the plugin tests share, so that each test says only what is
 * special about its plugin.
 *
 * - fake_host: an sb_host table (every function set) whose calls are recorded for the test to
 *   read: each publish (topic, flags, value, labels copied, time_ns, payload kept), each log line
 *   with its level, and the timers armed and freed (a test fires one by calling t->cb(t->arg)).
 *   The instance a plugin is created with is fake_host_instance(fh); the host functions find
 *   their fake_host from it, and fail the test when a plugin hands them anything else.
 * - test_plugin_load(): a plugin .so opened as the daemon opens it (dlopen, RTLD_NOW |
 *   RTLD_LOCAL), down to the descriptor its sb_plugin_entry returns; test_plugin_load_if_built()
 *   for plugins a core-only build leaves out (their tests then pass without running).
 * - test_plugin_create_from_yaml(): an instance created from pipeline-file text read by the real
 *   config code (core/config.c), so its options get their defaults and types as the daemon gives
 *   them; test_connector for a connector whose tests make instance after instance that way;
 *   test_option_values_from_yaml() for the option values alone (a reconfigure() under test).
 * - HTTP: http_request() and http_cancel() go to a real client (core/http.c) on `loop`, made on
 *   the first request; fake_host_forget() cancels what is left, as the daemon does at a stop.
 * - Children: spawn() and kill_group() go to a real supervisor (core/supervise.c) on the loop the
 *   test sets in `loop`, made on the first spawn; index_claim()/index_release() hand out the
 *   lowest free index. A test that spawns runs that loop for the exits to be seen, calls
 *   fake_host_forget() after destroying its plugin (as the daemon does), and runs the loop once
 *   more after fake_host_free() so the supervisor's handles can close.
 *
 * Misuse and anything unexpected fail the running Check test. Not thread-safe: the plugins under
 * test call the host on the test's own thread.
 */
#ifndef SCALEBUS_TESTS_FAKE_HOST_H
#define SCALEBUS_TESTS_FAKE_HOST_H

#include <stddef.h>
#include <stdint.h>

#include <scalebus/plugin.h>

typedef struct fake_host fake_host;

/* One publish, as the plugin handed it over; strings are copies owned by the fake host. */
typedef struct fake_published {
    char *topic;
    uint32_t flags;
    double value;
    sb_label *labels;
    size_t nlabels;
    uint64_t time_ns;
    struct cJSON *payload; /* NULL, or the payload the host took over (freed with the record) */
} fake_published;

typedef struct fake_log_line {
    sb_log_level level;
    char *text;
} fake_log_line;

/* A timer as the fake host arms it: nothing runs it; the test calls cb(arg) when it wants it. */
struct sb_timer {
    fake_host *host;
    uint64_t timeout_ms, repeat_ms;
    sb_timer_cb cb;
    void *arg;
};

struct fake_host {
    sb_host host; /* the table to hand to create() */

    /* Set by the test. */
    int publish_rc;         /* what publish() returns: 0, or e.g. -ENOBUFS (still recorded) */
    const char *want_topic; /* when set, every publish must be on this topic... */
    int want_no_payload;    /* ...and, when set, carry no payload */
    int dry_run;            /* what dry_run() answers */
    void *loop;             /* what loop() answers */
    int64_t bounds_min, bounds_max; /* what bounds() answers (0 and 0) */
    int stop_reason;                /* what stop_reason() answers (0) */
    const char *subscribable; /* subscribe() knows this one other id (NULL: none, -ENOENT) */

    /* subscribe() calls that succeeded, live until unsubscribe(); the test delivers by hand. */
    struct fake_subscription {
        char *source_id, *topic;
        sb_event_cb cb;
        void *arg;
        int live;
    } subs[8];
    size_t nsubs;

    /* Recorded; fake_host_clear() forgets publishes and log lines. */
    fake_published *pubs;
    size_t npub;
    fake_log_line *logs;
    size_t nlog;
    int logs_at[SB_LOG_DEBUG + 1]; /* log lines per level */
    int timers_live;               /* armed and not yet freed */
    sb_timer *last_timer;          /* the newest timer, while it lives */
    int stopped;                   /* stopped() calls */
    int spawns, spawn_failures;    /* spawn() calls that started a child, and that did not */
    int64_t last_pid;              /* the newest child spawn() started */
    int64_t *indexes;              /* the indexes claimed and not released, in claim order */
    size_t nindexes;
    struct supervisor *sup; /* spawn()'s supervisor, once there has been a spawn */
    struct http_client *http; /* http_request()'s client (core/http.c), once there has been one */
    struct listeners *listeners; /* listen()'s sockets (core/listeners.c), once there has been one */
    int http_requests, http_cancels; /* calls of http_request() and http_cancel() */

    /* Private. */
    char *id;
    size_t pub_cap, log_cap, index_cap;
    struct config **configs; /* the files instances were created from, freed with the host */
    size_t nconfigs, config_cap;
    uint32_t magic;
};

/* A fake host whose instance_id() answers `id`. */
fake_host *fake_host_new(const char *id);
/* NULL: nothing. Kills what the plugin's children left (see "Children" above). */
void fake_host_free(fake_host *fh);
/* What the daemon does when it destroys an instance: SIGKILL what is left of its children's
 * groups, and never call their exit callbacks again. */
void fake_host_forget(fake_host *fh);

/* The instance to create a plugin with (stands for fh in every host call). */
sb_instance *fake_host_instance(fake_host *fh);

/* Forget the recorded publishes and log lines (and the counts per level). */
void fake_host_clear(fake_host *fh);

/* Publish i (the test fails unless there are more than i), and the newest. */
const fake_published *fake_host_publish_at(const fake_host *fh, size_t i);
const fake_published *fake_host_last_publish(const fake_host *fh);
/* The value of label `key` of a publish; "" when it has none. */
const char *fake_published_label(const fake_published *p, const char *key);
/* The "reason" label a policy puts on each decision, of publish i; "" when it has none. */
const char *fake_host_reason(const fake_host *fh, size_t i);

/* The newest log line (the test fails when there is none). */
const fake_log_line *fake_host_last_log(const fake_host *fh);

/* Opens the plugin at `path` and returns its descriptor, after checking that it exports
 * sb_plugin_entry and is of this type and kind; the test fails, saying why, otherwise.
 * *handle is for test_plugin_unload(). */
const sb_plugin_descriptor *test_plugin_load(const char *path, const char *type, sb_kind kind,
                                             void **handle);
/* The plugin of type `name` from the build's plugin folder (SB_PLUGIN_BUILD_DIR/NAME.so): NULL,
 * with a note on stderr, when the build has not made it; loaded as by test_plugin_load()
 * otherwise (a file there that does not load fails the test). */
const sb_plugin_descriptor *test_plugin_load_if_built(const char *name, sb_kind kind,
                                                      void **handle);
void test_plugin_unload(void *handle); /* NULL: nothing */

/* Creates component `id` of the pipeline file text `yaml` with `plugin` on fh: the file is read
 * and its options validated by core/config.c (config_parse_string, config_validate_plugins) and
 * kept until fake_host_free(), as option values live until destroy(); the
 * type plugin->type is `plugin`, "t" an option-less trigger and "s" an option-less scaler. The
 * file must have no error (the test fails, naming the first). Returns create()'s result, with
 * *state and err as create() leaves them (err is "" when create() writes nothing). */
int test_plugin_create_from_yaml(const sb_plugin_descriptor *plugin, fake_host *fh,
                                 const char *yaml, const char *id, void **state, char *err,
                                 size_t errlen);

/* create() of one `plugin` component whose flow-mapping options are `opts` ("url: x, every: 1s"),
 * in the file section its kind belongs to, on a fresh fake host; destroyed again when it
 * succeeds. Returns create()'s result with its message in err ("" when none): the one call a test
 * of a plugin's option errors needs. */
int test_plugin_try_options(const sb_plugin_descriptor *plugin, const char *opts, char *err,
                            size_t errlen);

/* The option values of component `id` of `yaml`, as test_plugin_create_from_yaml() would hand
 * them to create(); they live until test_option_values_free(). */
typedef struct test_option_values test_option_values;
test_option_values *test_option_values_from_yaml(const sb_plugin_descriptor *plugin,
                                                 const char *yaml, const char *id);
const sb_value *test_option_values_get(const test_option_values *tv);
void test_option_values_free(test_option_values *tv); /* NULL: nothing */

/* A connector under test whose instances are made one after another from one pipeline file with
 * different options, each on a new fake host that takes only decisions (SB_TOPIC_DESIRED, no
 * payload). The file is pipeline_head, then ", OPTS" when there are options, then pipeline_tail
 * (so the head ends inside the connector's flow mapping); the instance is component `id`. The
 * test sets id, pipeline_head and pipeline_tail; test_connector_open() and _close() the rest. */
typedef struct test_connector {
    const char *id, *pipeline_head, *pipeline_tail;
    const sb_plugin_descriptor *plugin;
    fake_host *fh; /* the newest instance's host; NULL before the first */
    void *handle;
} test_connector;

/* Loads the connector plugin at `path` (as test_plugin_load() does, of kind connector). */
void test_connector_open(test_connector *c, const char *path, const char *type);
/* Frees the newest host and unloads the plugin (every instance must be destroyed first). */
void test_connector_close(test_connector *c);
/* A new instance with `opts` (YAML flow-mapping entries, e.g. "scale_up_factor: 0.2"; "" for
 * none) on a new c->fh. Returns create()'s result; *state and err as create() leaves them. */
int test_connector_create(test_connector *c, const char *opts, void **state, char *err,
                          size_t errlen);
/* The same, for options that must be accepted: the test fails with create()'s message if not. */
void *test_connector_create_ok(test_connector *c, const char *opts);

#endif
