/*
 * fake_host.c - the fake sb_host, the plugin loading and the instance-from-YAML helper the plugin
 * tests share (see fake_host.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "fake_host.h"
#include "http.h"
#include "listeners.h"

#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "config.h"
#include "supervise.h"

#define FAKE_HOST_MAGIC 0xfa4e4057u

/* Fails the test unless cond. A plain `if` rather than ck_assert: Check records every passing
 * ck_assert, and the property tests go through the host hundreds of thousands of times. */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

static char *copy_string(const char *s)
{
    char *c = strdup(s);
    REQUIRE(c != NULL, "out of memory");
    return c;
}

/* Grows *items (of `size` bytes each) to hold at least n + 1. */
static void *grow(void *items, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return items;
    size_t want = *cap ? *cap * 2 : 16;
    void *p = realloc(items, want * size);
    REQUIRE(p != NULL, "out of memory");
    *cap = want;
    return p;
}

/* The fake host behind an instance: the test fails unless the plugin passes back one it got. */
static fake_host *host_of(sb_instance *inst)
{
    fake_host *fh = (fake_host *)(void *)inst;
    REQUIRE(fh != NULL && fh->magic == FAKE_HOST_MAGIC,
            "a host function called with an instance the plugin was not created with (%p)",
            (void *)inst);
    return fh;
}

/* ---- the host table --------------------------------------------------------------------- */

static int fake_publish(sb_instance *inst, const sb_publish *ev)
{
    fake_host *fh = host_of(inst);
    REQUIRE(ev->topic != NULL, "publish without a topic");
    if (fh->want_topic)
        ck_assert_str_eq(ev->topic, fh->want_topic);
    if (fh->want_no_payload)
        ck_assert_ptr_null(ev->payload);
    fh->pubs = grow(fh->pubs, &fh->pub_cap, fh->npub, sizeof *fh->pubs);
    fake_published *p = &fh->pubs[fh->npub++];
    memset(p, 0, sizeof *p);
    p->topic = copy_string(ev->topic);
    p->flags = ev->flags;
    p->value = ev->value;
    p->time_ns = ev->time_ns;
    p->payload = ev->payload; /* ownership passes to the host */
    if (ev->nlabels > 0) {
        p->labels = calloc(ev->nlabels, sizeof *p->labels);
        REQUIRE(p->labels != NULL, "out of memory");
        for (size_t i = 0; i < ev->nlabels; i++) {
            p->labels[i].key = copy_string(ev->labels[i].key);
            p->labels[i].value = copy_string(ev->labels[i].value);
        }
        p->nlabels = ev->nlabels;
    }
    return fh->publish_rc;
}

static void fake_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fake_log(sb_instance *inst, sb_log_level level, const char *fmt, ...)
{
    fake_host *fh = host_of(inst);
    REQUIRE(level >= SB_LOG_ERROR && level <= SB_LOG_DEBUG, "log level %d", (int)level);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    REQUIRE(n >= 0, "cannot format '%s'", fmt);
    char *text = malloc((size_t)n + 1);
    REQUIRE(text != NULL, "out of memory");
    va_start(ap, fmt);
    vsnprintf(text, (size_t)n + 1, fmt, ap);
    va_end(ap);
    fh->logs = grow(fh->logs, &fh->log_cap, fh->nlog, sizeof *fh->logs);
    fh->logs[fh->nlog++] = (fake_log_line){level, text};
    fh->logs_at[level]++;
}

static sb_timer *fake_timer_new(sb_instance *inst, uint64_t timeout_ms, uint64_t repeat_ms,
                                sb_timer_cb cb, void *arg)
{
    fake_host *fh = host_of(inst);
    sb_timer *t = calloc(1, sizeof *t);
    REQUIRE(t != NULL, "out of memory");
    *t = (sb_timer){
        .host = fh, .timeout_ms = timeout_ms, .repeat_ms = repeat_ms, .cb = cb, .arg = arg};
    fh->timers_live++;
    fh->last_timer = t;
    return t;
}

static void fake_timer_free(sb_timer *t)
{
    REQUIRE(t != NULL, "timer_free(NULL)");
    fake_host *fh = t->host;
    if (fh->last_timer == t)
        fh->last_timer = NULL;
    fh->timers_live--;
    free(t);
}

static void *fake_loop(sb_instance *inst)
{
    return host_of(inst)->loop;
}

static const char *fake_instance_id(sb_instance *inst)
{
    return host_of(inst)->id;
}

static int fake_dry_run(sb_instance *inst)
{
    return host_of(inst)->dry_run;
}

static void fake_stopped(sb_instance *inst)
{
    host_of(inst)->stopped++;
}

static int64_t fake_subscribe(sb_instance *inst, const char *source_id, const char *topic,
                              sb_event_cb cb, void *arg)
{
    fake_host *fh = host_of(inst);
    if (!fh->subscribable || !source_id || strcmp(source_id, fh->subscribable) != 0)
        return -ENOENT; /* no other instances here */
    if (fh->nsubs == sizeof fh->subs / sizeof fh->subs[0])
        return -ENOMEM;
    struct fake_subscription *s = &fh->subs[fh->nsubs++];
    s->source_id = strdup(source_id);
    s->topic = topic ? strdup(topic) : NULL;
    s->cb = cb;
    s->arg = arg;
    s->live = 1;
    return (int64_t)fh->nsubs; /* handle = index + 1 */
}

static int fake_unsubscribe(sb_instance *inst, int64_t handle)
{
    fake_host *fh = host_of(inst);
    if (handle < 1 || (size_t)handle > fh->nsubs || !fh->subs[handle - 1].live)
        return -ENOENT;
    fh->subs[handle - 1].live = 0;
    return 0;
}

/* The daemon's own listening sockets (core/listeners.c), held by this fake instance. */
static int fake_listen(sb_instance *inst, const char *addr, int backlog, char *err, size_t errlen)
{
    fake_host *fh = host_of(inst);
    if (!fh->listeners && !(fh->listeners = listeners_new()))
        return -ENOMEM;
    return listeners_claim(fh->listeners, fh, fh->id, addr, backlog, err, errlen);
}

static int fake_spawn(sb_instance *inst, const sb_spawn *req, sb_child_cb on_exit, void *arg,
                      int64_t *pid, char *err, size_t errlen)
{
    fake_host *fh = host_of(inst);
    REQUIRE(req != NULL && req->size >= offsetof(sb_spawn, stderr_fd) + sizeof(int),
            "spawn() without SB_SPAWN_INIT");
    REQUIRE(fh->loop != NULL, "spawn() on a fake host without a loop: set fh->loop first");
    if (!fh->sup) {
        fh->sup = supervisor_new(fh->loop);
        REQUIRE(fh->sup != NULL, "out of memory");
    }
    sb_spawn r;
    memset(&r, 0, sizeof r);
    memcpy(&r, req, req->size < sizeof r ? req->size : sizeof r);
    int rc = supervisor_spawn(fh->sup, fh, &r, on_exit, arg, pid, err, errlen);
    if (rc == 0) {
        fh->spawns++;
        fh->last_pid = *pid;
    } else {
        fh->spawn_failures++;
    }
    return rc;
}

static int fake_kill_group(sb_instance *inst, int64_t pid, int sig)
{
    fake_host *fh = host_of(inst);
    return fh->sup ? supervisor_kill_group(fh->sup, fh, pid, sig) : -ESRCH;
}

static int64_t fake_index_claim(sb_instance *inst)
{
    fake_host *fh = host_of(inst);
    int64_t want = 0;
    for (;;) {
        size_t i = 0;
        while (i < fh->nindexes && fh->indexes[i] != want)
            i++;
        if (i == fh->nindexes)
            break;
        want++;
    }
    fh->indexes = grow(fh->indexes, &fh->index_cap, fh->nindexes, sizeof *fh->indexes);
    fh->indexes[fh->nindexes++] = want;
    return want;
}

static void fake_index_release(sb_instance *inst, int64_t index)
{
    fake_host *fh = host_of(inst);
    for (size_t i = 0; i < fh->nindexes; i++) {
        if (fh->indexes[i] == index) {
            memmove(&fh->indexes[i], &fh->indexes[i + 1],
                    (fh->nindexes - i - 1) * sizeof *fh->indexes);
            fh->nindexes--;
            return;
        }
    }
    ck_abort_msg("index_release(%lld): not claimed", (long long)index);
}

/* HTTP goes to a real client (core/http.c) on the test's loop, made on the first request. */
static int fake_http_request(sb_instance *inst, const sb_http_request *req, sb_http_cb cb,
                             void *arg, sb_http **out)
{
    fake_host *fh = host_of(inst);
    REQUIRE(fh->loop != NULL, "http_request() on a fake host without a loop: set fh->loop first");
    char err[256];
    if (!fh->http) {
        fh->http = http_client_new(fh->loop, err, sizeof err);
        REQUIRE(fh->http != NULL, "%s", err);
    }
    fh->http_requests++;
    return http_client_request(fh->http, fh, req, cb, arg, out, err, sizeof err);
}

static void fake_http_cancel(sb_instance *inst, sb_http *req)
{
    fake_host *fh = host_of(inst);
    fh->http_cancels++;
    http_client_cancel(fh->http, req);
}

static int fake_stop_reason(sb_instance *inst)
{
    return host_of(inst)->stop_reason;
}

static const struct cJSON *fake_payload_retain(sb_instance *inst, const struct cJSON *payload)
{
    host_of(inst);
    return payload;
}

static void fake_payload_release(sb_instance *inst, const struct cJSON *payload)
{
    host_of(inst);
}

static void fake_bounds(sb_instance *inst, int64_t *min, int64_t *max)
{
    fake_host *fh = host_of(inst);
    *min = fh->bounds_min;
    *max = fh->bounds_max;
}

/* ---- the fake host ---------------------------------------------------------------------- */

fake_host *fake_host_new(const char *id)
{
    fake_host *fh = calloc(1, sizeof *fh);
    REQUIRE(fh != NULL, "out of memory");
    fh->host = (sb_host){
        .size = sizeof(sb_host),
        .version = SB_HOST_VERSION,
        .publish = fake_publish,
        .log = fake_log,
        .timer_new = fake_timer_new,
        .timer_free = fake_timer_free,
        .loop = fake_loop,
        .instance_id = fake_instance_id,
        .dry_run = fake_dry_run,
        .stopped = fake_stopped,
        .subscribe = fake_subscribe,
        .payload_retain = fake_payload_retain,
        .payload_release = fake_payload_release,
        .bounds = fake_bounds,
        .unsubscribe = fake_unsubscribe,
        .spawn = fake_spawn,
        .kill_group = fake_kill_group,
        .index_claim = fake_index_claim,
        .index_release = fake_index_release,
        .http_request = fake_http_request,
        .http_cancel = fake_http_cancel,
        .stop_reason = fake_stop_reason,
        .listen = fake_listen,
    };
    fh->id = copy_string(id);
    fh->magic = FAKE_HOST_MAGIC;
    return fh;
}

void fake_host_clear(fake_host *fh)
{
    for (size_t i = 0; i < fh->npub; i++) {
        fake_published *p = &fh->pubs[i];
        free(p->topic);
        for (size_t k = 0; k < p->nlabels; k++) {
            free((char *)p->labels[k].key);
            free((char *)p->labels[k].value);
        }
        free(p->labels);
        cJSON_Delete(p->payload);
    }
    fh->npub = 0;
    for (size_t i = 0; i < fh->nlog; i++)
        free(fh->logs[i].text);
    fh->nlog = 0;
    memset(fh->logs_at, 0, sizeof fh->logs_at);
}

void fake_host_forget(fake_host *fh)
{
    if (fh->sup)
        supervisor_forget_owner(fh->sup, fh);
    /* As the daemon does when an instance stops: its requests never complete. */
    http_client_cancel_owner(fh->http, fh);
}

void fake_host_free(fake_host *fh)
{
    if (!fh)
        return;
    supervisor_free(fh->sup);
    http_client_close(fh->http);
    listeners_free(fh->listeners);
    for (size_t i = 0; i < fh->nconfigs; i++)
        config_free(fh->configs[i]);
    free(fh->configs);
    fake_host_clear(fh);
    for (size_t i = 0; i < fh->nsubs; i++) {
        free(fh->subs[i].source_id);
        free(fh->subs[i].topic);
    }
    free(fh->indexes);
    free(fh->pubs);
    free(fh->logs);
    free(fh->id);
    fh->magic = 0;
    free(fh);
}

sb_instance *fake_host_instance(fake_host *fh)
{
    return (sb_instance *)(void *)fh;
}

const fake_published *fake_host_publish_at(const fake_host *fh, size_t i)
{
    REQUIRE(i < fh->npub, "publish %zu asked for, %zu made", i, fh->npub);
    return &fh->pubs[i];
}

const fake_published *fake_host_last_publish(const fake_host *fh)
{
    REQUIRE(fh->npub > 0, "nothing published");
    return &fh->pubs[fh->npub - 1];
}

const char *fake_published_label(const fake_published *p, const char *key)
{
    for (size_t i = 0; i < p->nlabels; i++)
        if (strcmp(p->labels[i].key, key) == 0)
            return p->labels[i].value;
    return "";
}

const char *fake_host_reason(const fake_host *fh, size_t i)
{
    return fake_published_label(fake_host_publish_at(fh, i), "reason");
}

const fake_log_line *fake_host_last_log(const fake_host *fh)
{
    REQUIRE(fh->nlog > 0, "nothing logged");
    return &fh->logs[fh->nlog - 1];
}

/* ---- loading a plugin ------------------------------------------------------------------- */

const sb_plugin_descriptor *test_plugin_load(const char *path, const char *type, sb_kind kind,
                                             void **handle)
{
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(*handle != NULL, "cannot load plugin %s: %s", path, dlerror());
    void *sym = dlsym(*handle, SB_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(sym != NULL, "plugin %s: no %s: %s", path, SB_PLUGIN_ENTRY_SYMBOL, dlerror());
    sb_plugin_entry_fn entry;
    memcpy(&entry, &sym, sizeof entry);
    const sb_plugin_descriptor *d = entry();
    ck_assert_msg(d != NULL, "plugin %s: %s returned NULL", path, SB_PLUGIN_ENTRY_SYMBOL);
    ck_assert_msg(d->type != NULL && strcmp(d->type, type) == 0,
                  "plugin %s: type '%s', expected '%s'", path, d->type ? d->type : "(null)", type);
    ck_assert_msg(d->kind == kind, "plugin %s: kind %d, expected %d", path, (int)d->kind,
                  (int)kind);
    return d;
}

#ifndef SB_PLUGIN_BUILD_DIR
#error "SB_PLUGIN_BUILD_DIR: the build's plugin folder (set by sb_add_unit_test)"
#endif

const sb_plugin_descriptor *test_plugin_load_if_built(const char *name, sb_kind kind, void **handle)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.so", SB_PLUGIN_BUILD_DIR, name);
    if (access(path, F_OK) != 0) {
        fprintf(stderr, "note: %s not built: its plugin tests pass without running\n", path);
        *handle = NULL;
        return NULL;
    }
    return test_plugin_load(path, name, kind, handle);
}

void test_plugin_unload(void *handle)
{
    if (handle)
        dlclose(handle);
}

/* ---- an instance from pipeline-file text ------------------------------------------------ */

static const sb_option_spec no_options[] = {{NULL, 0, NULL, 0, NULL}};
static const sb_plugin_descriptor stand_in_trigger = {
    SB_DESCRIPTOR_SIZES, .type = "t", .kind = SB_KIND_TRIGGER, .options = no_options};
static const sb_plugin_descriptor stand_in_scaler = {SB_DESCRIPTOR_SIZES, .type = "s",
                                                     .kind = SB_KIND_SCALER, .options = no_options};

static const sb_plugin_descriptor *lookup(void *ctx, const char *type)
{
    const sb_plugin_descriptor *plugin = ctx;
    if (strcmp(type, plugin->type) == 0)
        return plugin;
    if (strcmp(type, "t") == 0)
        return &stand_in_trigger;
    return strcmp(type, "s") == 0 ? &stand_in_scaler : NULL;
}

int test_plugin_create_from_yaml(const sb_plugin_descriptor *plugin, fake_host *fh,
                                 const char *yaml, const char *id, void **state, char *err,
                                 size_t errlen)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(yaml, strlen(yaml), "test.yaml", &errs);
    ck_assert_msg(cfg != NULL, "config: %s", errs.count ? errs.items[0].message : "not read");
    config_validate_plugins(cfg, lookup, (void *)(uintptr_t)plugin, &errs);
    ck_assert_msg(errs.count == 0, "config: %s", errs.count ? errs.items[0].message : "");
    const config_component *c = config_find(cfg, id);
    ck_assert_msg(c != NULL, "no component '%s' in the file", id);
    *state = NULL;
    err[0] = '\0';
    int rc = plugin->create(fake_host_instance(fh), &fh->host, c->values, state, err, errlen);
    /* Option values live until destroy() (plugin.h): the file is kept until fake_host_free(). */
    fh->configs = grow(fh->configs, &fh->config_cap, fh->nconfigs, sizeof *fh->configs);
    fh->configs[fh->nconfigs++] = cfg;
    config_errors_free(&errs);
    return rc;
}

struct test_option_values {
    config *cfg;
    const sb_value *values;
};

test_option_values *test_option_values_from_yaml(const sb_plugin_descriptor *plugin,
                                                 const char *yaml, const char *id)
{
    config_errors errs;
    config_errors_init(&errs);
    config *cfg = config_parse_string(yaml, strlen(yaml), "test.yaml", &errs);
    ck_assert_msg(cfg != NULL, "config: %s", errs.count ? errs.items[0].message : "not read");
    config_validate_plugins(cfg, lookup, (void *)(uintptr_t)plugin, &errs);
    ck_assert_msg(errs.count == 0, "config: %s", errs.count ? errs.items[0].message : "");
    config_errors_free(&errs);
    const config_component *c = config_find(cfg, id);
    ck_assert_msg(c != NULL, "no component '%s' in the file", id);
    test_option_values *tv = calloc(1, sizeof *tv);
    REQUIRE(tv != NULL, "out of memory");
    tv->cfg = cfg;
    tv->values = c->values;
    return tv;
}

const sb_value *test_option_values_get(const test_option_values *tv)
{
    return tv->values;
}

void test_option_values_free(test_option_values *tv)
{
    if (!tv)
        return;
    config_free(tv->cfg);
    free(tv);
}

/* ---- a connector made from one pipeline file, instance after instance -------------------- */

void test_connector_open(test_connector *c, const char *path, const char *type)
{
    c->plugin = test_plugin_load(path, type, SB_KIND_CONNECTOR, &c->handle);
    c->fh = NULL;
}

void test_connector_close(test_connector *c)
{
    fake_host_free(c->fh);
    c->fh = NULL;
    test_plugin_unload(c->handle);
    c->handle = NULL;
    c->plugin = NULL;
}

int test_connector_create(test_connector *c, const char *opts, void **state, char *err,
                          size_t errlen)
{
    size_t len = strlen(c->pipeline_head) + 2 + strlen(opts) + strlen(c->pipeline_tail) + 1;
    char *text = malloc(len);
    REQUIRE(text != NULL, "out of memory");
    snprintf(text, len, "%s%s%s%s", c->pipeline_head, *opts ? ", " : "", opts, c->pipeline_tail);
    fake_host_free(c->fh);
    c->fh = fake_host_new(c->id);
    c->fh->want_topic = SB_TOPIC_DESIRED;
    c->fh->want_no_payload = 1;
    int rc = test_plugin_create_from_yaml(c->plugin, c->fh, text, c->id, state, err, errlen);
    free(text);
    return rc;
}

void *test_connector_create_ok(test_connector *c, const char *opts)
{
    void *state;
    char err[256];
    int rc = test_connector_create(c, opts, &state, err, sizeof err);
    ck_assert_msg(rc == 0, "create: %s", err);
    return state;
}

int test_plugin_try_options(const sb_plugin_descriptor *plugin, const char *opts, char *err,
                            size_t errlen)
{
    static const char *const sections[] = {"", "triggers", "connectors", "scalers"};
    REQUIRE(plugin->kind >= SB_KIND_TRIGGER && plugin->kind <= SB_KIND_SCALER, "bad kind");
    size_t n = strlen(opts) + strlen(plugin->type) + 64;
    char *yaml = malloc(n);
    REQUIRE(yaml != NULL, "out of memory");
    snprintf(yaml, n, "%s:\n  - { id: x, type: %s, %s }\n", sections[plugin->kind], plugin->type,
             opts);
    fake_host *fh = fake_host_new("x");
    void *state = NULL;
    err[0] = '\0';
    int rc = test_plugin_create_from_yaml(plugin, fh, yaml, "x", &state, err, errlen);
    if (rc == 0)
        plugin->destroy(state);
    fake_host_free(fh);
    free(yaml);
    return rc;
}
