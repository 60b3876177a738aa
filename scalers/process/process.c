/*
 * process.c - the `process` scaler: keeps N local copies of one command running, N being the
 * desired count the host delivers (already clamped to the scaler's min/max).
 *
 * Each copy is a "slot": an index (the lowest free one, handed to the child as
 * SCALEBUS_INSTANCE), a process when one is running, an optional loopback port (PORT) and a
 * one-shot host timer, used either for the back-off before a restart or for the SIGKILL that
 * follows SIGTERM after stop_grace. Children are reaped from a uv_signal_t on SIGCHLD with
 * waitpid() on our own pids only, so other users of child processes in the daemon (libuv's
 * uv_spawn) are not disturbed. Every change to the set of slots is published as an
 * SB_TOPIC_INSTANCES event whose payload lists them, for routers and the admin API.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "scalebus/plugin.h"
#include "spawn.h"

/* Crash handling: restart after 1 s, doubling up to 60 s; a run of 60 s forgives the past. */
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 60000u
#define BACKOFF_RESET_MS 60000u
/* This many crashes in a row, each within QUICK_CRASH_MS of its start, is reported as an error. */
#define FAILED_AFTER 5u
#define QUICK_CRASH_MS 10000u
/* A guard against a typo such as max: 100000 forking the machine to death. */
#define MAX_INSTANCES 4096
/* Retries when the kernel hands out a port one of our live instances already has. */
#define PORT_ATTEMPTS 32

extern char **environ;

enum { OPT_COMMAND, OPT_ENV, OPT_WORKDIR, OPT_STOP_GRACE, OPT_PORT, OPT_LOG_DIR, OPT_COUNT };

static const sb_option_spec process_options[] = {
    [OPT_COMMAND] = {"command", SB_OPT_LIST, NULL, 1,
                     "argv to run, exec'd directly (no shell); argv[0] is looked up in PATH"},
    [OPT_ENV] = {"env", SB_OPT_MAP, NULL, 0,
                 "variables added to the daemon's environment for each instance"},
    [OPT_WORKDIR] = {"workdir", SB_OPT_STRING, NULL, 0,
                     "working directory of the instances (default: the daemon's)"},
    [OPT_STOP_GRACE] = {"stop_grace", SB_OPT_DURATION, "10s", 0,
                        "time between SIGTERM and SIGKILL when an instance is stopped"},
    [OPT_PORT] = {"port", SB_OPT_BOOL, "false", 0,
                  "give each instance a free 127.0.0.1 port in the PORT variable"},
    [OPT_LOG_DIR] = {"log_dir", SB_OPT_STRING, NULL, 0,
                     "append stdout/stderr to LOG_DIR/<id>.<index>.out and .err"},
    [OPT_COUNT] = {NULL, 0, NULL, 0, NULL},
};

typedef enum slot_state {
    SLOT_STARTING, /* between fork and a confirmed exec (not visible outside a spawn) */
    SLOT_RUNNING,
    SLOT_STOPPING, /* SIGTERM sent; no longer counts toward the desired count */
    SLOT_BACKOFF,  /* crashed; waiting to restart */
    SLOT_FAILED    /* like BACKOFF, after FAILED_AFTER quick crashes in a row */
} slot_state;

typedef struct proc_state proc_state;

typedef struct slot {
    proc_state *owner;
    unsigned index;
    uint64_t seq; /* creation order: the newest is stopped first */
    slot_state state;
    pid_t pid; /* 0: no process */
    int port;  /* 0: none */
    uint64_t started_ms;
    uint64_t backoff_ms; /* the last back-off delay; 0 before the first crash */
    unsigned quick_crashes;
    unsigned restarts;
    sb_timer *timer; /* back-off restart, or SIGKILL after stop_grace */
    char error[200]; /* why the last run ended, shown while in back-off */
} slot;

struct proc_state {
    sb_instance *inst;
    const sb_host *host;
    char *id;
    /* Options; the strings belong to the host and live as long as the instance. */
    char **argv;        /* NULL-terminated copy of the pointer list, as execve wants it */
    char *command_text; /* argv joined for log lines */
    const char *const *env_keys;
    const char *const *env_values;
    size_t nenv;
    const char *workdir;
    uint64_t stop_grace_ms;
    int want_port;
    const char *log_dir;

    int dry_run;
    int started;
    int stopping;
    int64_t desired;
    slot **slots; /* sorted by index */
    size_t nslots, capslots;
    uint64_t next_seq;
    uv_signal_t *sigchld; /* heap: freed by its close callback, which may run after destroy */
};

static const char *state_name(slot_state s)
{
    switch (s) {
    case SLOT_STARTING:
        return "starting";
    case SLOT_RUNNING:
        return "running";
    case SLOT_STOPPING:
        return "stopping";
    case SLOT_BACKOFF:
        return "backoff";
    case SLOT_FAILED:
        return "failed";
    }
    return "unknown";
}

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

/* "10s", "1.5s", "250ms" for log lines. */
static void format_ms(char *buf, size_t len, uint64_t ms)
{
    if (ms < 1000)
        snprintf(buf, len, "%ums", (unsigned)ms);
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
}

static const char *signal_name(int sig)
{
    switch (sig) {
    case SIGTERM:
        return "SIGTERM";
    case SIGKILL:
        return "SIGKILL";
    case SIGINT:
        return "SIGINT";
    case SIGHUP:
        return "SIGHUP";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGBUS:
        return "SIGBUS";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "signal";
    }
}

static void describe_status(char *buf, size_t len, int status)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(status),
                 signal_name(WTERMSIG(status)));
    else
        snprintf(buf, len, "status 0x%x", (unsigned)status);
}

/* ---- Command text for logs ----------------------------------------------------------------- */

static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (; *s; s++)
        if (!(('a' <= *s && *s <= 'z') || ('A' <= *s && *s <= 'Z') || ('0' <= *s && *s <= '9') ||
              strchr("/._-+=:,@%", *s)))
            return 1;
    return 0;
}

/* argv as a shell would read it back, so a log line can be pasted into a terminal. */
static char *join_command(const char *const *items, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(items[i]) * 4 + 3; /* worst case: every char is a quote, 'x'\''y' */
    char *out = malloc(len);
    if (!out)
        return NULL;
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (i)
            *p++ = ' ';
        const char *s = items[i];
        if (!needs_quotes(s)) {
            size_t l = strlen(s);
            memcpy(p, s, l);
            p += l;
            continue;
        }
        *p++ = '\'';
        for (; *s; s++) {
            if (*s == '\'') {
                memcpy(p, "'\\''", 4);
                p += 4;
            } else {
                *p++ = *s;
            }
        }
        *p++ = '\'';
    }
    *p = '\0';
    return out;
}

/* ---- Environment ------------------------------------------------------------------------- */

typedef struct strv {
    char **v;
    size_t n, cap;
} strv;

static void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

/* Takes ownership of str (frees it on failure); keeps the vector NULL-terminated. */
static int strv_push(strv *s, char *str)
{
    if (!str)
        return -ENOMEM;
    if (s->n + 2 > s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v) {
            free(str);
            return -ENOMEM;
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = str;
    s->v[s->n] = NULL;
    return 0;
}

static char *make_kv(const char *key, const char *value)
{
    size_t kl = strlen(key), vl = strlen(value);
    char *s = malloc(kl + vl + 2);
    if (!s)
        return NULL;
    memcpy(s, key, kl);
    s[kl] = '=';
    memcpy(s + kl + 1, value, vl + 1);
    return s;
}

static int key_is(const char *entry, size_t keylen, const char *key)
{
    return strlen(key) == keylen && memcmp(entry, key, keylen) == 0;
}

/* Keys we set ourselves; they win over both the daemon's environment and the env option. */
static int reserved_key(const proc_state *st, const char *entry, size_t keylen)
{
    return key_is(entry, keylen, "SCALEBUS_INSTANCE") || key_is(entry, keylen, "SCALEBUS_SCALER") ||
           (st->want_port && key_is(entry, keylen, "PORT"));
}

static int overridden(const proc_state *st, const char *entry, size_t keylen)
{
    if (reserved_key(st, entry, keylen))
        return 1;
    for (size_t i = 0; i < st->nenv; i++)
        if (key_is(entry, keylen, st->env_keys[i]))
            return 1;
    return 0;
}

/* The daemon's environment as it is now, then the env option, then our own variables. */
static int build_env(const proc_state *st, const slot *s, int port, strv *env)
{
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        size_t keylen = eq ? (size_t)(eq - *e) : strlen(*e);
        if (!overridden(st, *e, keylen) && strv_push(env, strdup(*e)) != 0)
            return -ENOMEM;
    }
    for (size_t i = 0; i < st->nenv; i++) {
        if (reserved_key(st, st->env_keys[i], strlen(st->env_keys[i])))
            continue;
        if (strv_push(env, make_kv(st->env_keys[i], st->env_values[i])) != 0)
            return -ENOMEM;
    }
    char num[32];
    snprintf(num, sizeof num, "%u", s->index);
    if (strv_push(env, make_kv("SCALEBUS_INSTANCE", num)) != 0 ||
        strv_push(env, make_kv("SCALEBUS_SCALER", st->id)) != 0)
        return -ENOMEM;
    if (port > 0) {
        snprintf(num, sizeof num, "%d", port);
        if (strv_push(env, make_kv("PORT", num)) != 0)
            return -ENOMEM;
    }
    return 0;
}

/* ---- Instance list ----------------------------------------------------------------------- */

static cJSON *slot_json(const slot *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int ok = cJSON_AddNumberToObject(o, "index", s->index) != NULL;
    ok = ok && (s->pid > 0 ? cJSON_AddNumberToObject(o, "pid", s->pid) != NULL
                           : cJSON_AddNullToObject(o, "pid") != NULL);
    ok = ok && (s->port > 0 ? cJSON_AddNumberToObject(o, "port", s->port) != NULL
                            : cJSON_AddNullToObject(o, "port") != NULL);
    ok = ok && cJSON_AddStringToObject(o, "state", state_name(s->state)) != NULL;
    ok = ok && cJSON_AddNumberToObject(o, "restarts", s->restarts) != NULL;
    if (ok && (s->state == SLOT_BACKOFF || s->state == SLOT_FAILED) && s->error[0])
        ok = cJSON_AddStringToObject(o, "error", s->error) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void publish_list(proc_state *st)
{
    if (st->dry_run)
        return; /* nothing runs: a router must not be told about instances that do not exist */
    cJSON *arr = cJSON_CreateArray();
    int running = 0;
    for (size_t i = 0; arr && i < st->nslots; i++) {
        cJSON *o = slot_json(st->slots[i]);
        if (!o || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            arr = NULL;
        }
        running += st->slots[i]->state == SLOT_RUNNING;
    }
    if (!arr) {
        st->host->log(st->inst, SB_LOG_WARN, "out of memory: instance list not published");
        return;
    }
    sb_publish pub;
    memset(&pub, 0, sizeof pub);
    pub.topic = SB_TOPIC_INSTANCES;
    pub.flags = SB_EVENT_COALESCE; /* a snapshot: only the newest one matters */
    pub.value = running;
    pub.payload = arr;
    int rc = st->host->publish(st->inst, &pub);
    if (rc < 0)
        st->host->log(st->inst, SB_LOG_DEBUG, "instance list not published: %s", uv_strerror(rc));
}

/* ---- Slots ------------------------------------------------------------------------------- */

static void slot_cancel_timer(slot *s)
{
    if (s->timer) {
        s->owner->host->timer_free(s->timer);
        s->timer = NULL;
    }
}

/* A new slot at the lowest free index (the list is sorted, so the first gap). */
static slot *slot_add(proc_state *st)
{
    if (st->nslots == st->capslots) {
        size_t cap = st->capslots ? st->capslots * 2 : 8;
        slot **v = realloc(st->slots, cap * sizeof *v);
        if (!v)
            return NULL;
        st->slots = v;
        st->capslots = cap;
    }
    slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    size_t at = 0;
    while (at < st->nslots && st->slots[at]->index == at)
        at++;
    memmove(&st->slots[at + 1], &st->slots[at], (st->nslots - at) * sizeof *st->slots);
    st->slots[at] = s;
    st->nslots++;
    s->owner = st;
    s->index = (unsigned)at;
    s->seq = st->next_seq++;
    s->state = SLOT_STARTING;
    return s;
}

static void slot_remove(proc_state *st, slot *s)
{
    slot_cancel_timer(s);
    for (size_t i = 0; i < st->nslots; i++) {
        if (st->slots[i] == s) {
            memmove(&st->slots[i], &st->slots[i + 1], (st->nslots - i - 1) * sizeof *st->slots);
            st->nslots--;
            break;
        }
    }
    free(s);
}

static int port_in_use(const proc_state *st, int port)
{
    for (size_t i = 0; i < st->nslots; i++)
        if (st->slots[i]->port == port)
            return 1;
    return 0;
}

/* A port the kernel considers free right now and no live instance of ours holds. */
static int pick_unique_port(const proc_state *st)
{
    int port = -EADDRINUSE;
    for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
        port = spawn_pick_port();
        if (port < 0 || !port_in_use(st, port))
            return port;
    }
    return -EADDRINUSE;
}

/* Opened by the parent so an error is reported here rather than lost in the child. Kept above
 * fd 2 so the child's dup2 onto 0..2 never clobbers another of them. */
static int open_fd(const char *path, int flags)
{
    int fd = open(path, flags | O_CLOEXEC, 0644);
    if (fd >= 0 && fd < 3) {
        int high = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        fd = high;
    }
    return fd;
}

static int open_log(const proc_state *st, const slot *s, const char *ext, char *err, size_t errlen)
{
    size_t len = strlen(st->log_dir) + strlen(st->id) + 40;
    char *path = malloc(len);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(path, len, "%s/%s.%u.%s", st->log_dir, st->id, s->index, ext);
    int fd = open_fd(path, O_WRONLY | O_CREAT | O_APPEND);
    if (fd < 0)
        snprintf(err, errlen, "cannot open log file '%s': %s", path, strerror(errno));
    free(path);
    return fd;
}

static void restart_cb(void *arg);

/* The instance ended (or never started) while it should be running: wait, then start it again.
 * `what` is the log line's text, `reason` the shorter form kept for the instance list. */
static void slot_crashed(proc_state *st, slot *s, uint64_t uptime_ms, sb_log_level level,
                         const char *what, const char *reason)
{
    s->pid = 0;
    s->port = 0;
    snprintf(s->error, sizeof s->error, "%s", reason);
    if (uptime_ms >= BACKOFF_RESET_MS)
        s->backoff_ms = 0;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->quick_crashes = uptime_ms < QUICK_CRASH_MS ? s->quick_crashes + 1 : 0;
    s->state = s->quick_crashes >= FAILED_AFTER ? SLOT_FAILED : SLOT_BACKOFF;

    char delay[32];
    format_ms(delay, sizeof delay, s->backoff_ms);
    if (s->quick_crashes == FAILED_AFTER)
        st->host->log(st->inst, SB_LOG_ERROR,
                      "instance %u keeps crashing: %u crashes in a row, each within %us of its "
                      "start (last: %s); still restarting, with back-off up to %us",
                      s->index, s->quick_crashes, QUICK_CRASH_MS / 1000, reason,
                      BACKOFF_MAX_MS / 1000);
    st->host->log(st->inst, level, "instance %u: %s; restarting in %s", s->index, what, delay);
    slot_cancel_timer(s);
    s->timer = st->host->timer_new(st->inst, s->backoff_ms, 0, restart_cb, s);
    if (!s->timer) {
        s->state = SLOT_FAILED;
        st->host->log(st->inst, SB_LOG_ERROR,
                      "instance %u: out of memory arming the restart timer; it stays down",
                      s->index);
    }
}

static void describe_spawn_error(char *buf, size_t len, const proc_state *st, spawn_step step,
                                 int rc)
{
    const char *what = strerror(-rc);
    switch (step) {
    case SPAWN_STEP_CHDIR:
        snprintf(buf, len, "cannot change to workdir '%s': %s", st->workdir, what);
        break;
    case SPAWN_STEP_EXEC:
        snprintf(buf, len, "cannot run '%s': %s", st->argv[0], what);
        break;
    case SPAWN_STEP_FORK:
        snprintf(buf, len, "cannot fork: %s", what);
        break;
    case SPAWN_STEP_SETUP:
        snprintf(buf, len, "cannot set up the child process: %s", what);
        break;
    default:
        snprintf(buf, len, "cannot start: %s", what);
        break;
    }
}

/* Everything spawn_start needs, prepared before fork. Returns 0, or -1 with err filled. */
static int spawn_slot_process(proc_state *st, slot *s, int port, char *err, size_t errlen)
{
    strv env = {0};
    char *path = NULL;
    int in = -1, out = -1, errfd = -1, result = -1;
    if (build_env(st, s, port, &env) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    int rc = spawn_resolve(st->argv[0], env.v, st->workdir, &path);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run '%s': %s", st->argv[0],
                 rc == -ENOENT ? "not found in PATH" : strerror(-rc));
        goto done;
    }
    in = open_fd("/dev/null", O_RDONLY);
    if (in < 0) {
        snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
        goto done;
    }
    if (st->log_dir) {
        out = open_log(st, s, "out", err, errlen);
        if (out < 0)
            goto done;
        errfd = open_log(st, s, "err", err, errlen);
        if (errfd < 0)
            goto done;
    }
    spawn_request req = {.path = path,
                         .argv = st->argv,
                         .envp = env.v,
                         .workdir = st->workdir,
                         .stdin_fd = in,
                         .stdout_fd = out,
                         .stderr_fd = errfd};
    spawn_step step;
    pid_t pid;
    rc = spawn_start(&req, &pid, &step);
    if (rc != 0) {
        describe_spawn_error(err, errlen, st, step, rc);
        goto done;
    }
    s->pid = pid;
    result = 0;
done:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (errfd >= 0)
        close(errfd);
    free(path);
    strv_free(&env);
    return result;
}

static void slot_spawn(proc_state *st, slot *s)
{
    char err[200];
    s->state = SLOT_STARTING;
    int port = 0;
    if (st->want_port) {
        port = pick_unique_port(st);
        if (port < 0) {
            snprintf(err, sizeof err, "cannot pick a free port: %s", strerror(-port));
            goto failed;
        }
    }
    s->port = port; /* claimed before the spawn so no other slot can pick it */
    if (spawn_slot_process(st, s, port, err, sizeof err) != 0)
        goto failed;
    s->state = SLOT_RUNNING;
    s->started_ms = now_ms();
    s->error[0] = '\0';
    if (port)
        st->host->log(st->inst, SB_LOG_INFO, "started instance %u (pid %d, port %d): %s", s->index,
                      (int)s->pid, port, st->command_text);
    else
        st->host->log(st->inst, SB_LOG_INFO, "started instance %u (pid %d): %s", s->index,
                      (int)s->pid, st->command_text);
    return;
failed:
    slot_crashed(st, s, 0, SB_LOG_ERROR, err, err);
}

static void restart_cb(void *arg)
{
    slot *s = arg;
    proc_state *st = s->owner;
    slot_cancel_timer(s); /* timer_free is safe inside its callback */
    if (st->stopping)
        return;
    s->restarts++;
    slot_spawn(st, s);
    publish_list(st);
}

static void kill_cb(void *arg)
{
    slot *s = arg;
    proc_state *st = s->owner;
    slot_cancel_timer(s);
    if (s->pid <= 0)
        return;
    char grace[32];
    format_ms(grace, sizeof grace, st->stop_grace_ms);
    st->host->log(st->inst, SB_LOG_WARN,
                  "instance %u (pid %d) still running %s after SIGTERM: SIGKILL", s->index,
                  (int)s->pid, grace);
    (void)kill(-s->pid, SIGKILL);
}

/* Stop one slot; returns 1 when it is gone at once (it had no process). */
static int slot_stop(proc_state *st, slot *s)
{
    char grace[32];
    format_ms(grace, sizeof grace, st->stop_grace_ms);
    slot_cancel_timer(s);
    if (st->dry_run) {
        st->host->log(st->inst, SB_LOG_INFO, "would stop instance %u: SIGTERM, SIGKILL after %s",
                      s->index, grace);
        slot_remove(st, s);
        return 1;
    }
    if (s->pid <= 0) {
        st->host->log(st->inst, SB_LOG_INFO, "removed instance %u (it was waiting to restart)",
                      s->index);
        slot_remove(st, s);
        return 1;
    }
    s->state = SLOT_STOPPING;
    /* The whole group: the instance's own children get the signal too. */
    (void)kill(-s->pid, SIGTERM);
    st->host->log(st->inst, SB_LOG_INFO, "stopping instance %u (pid %d): SIGTERM, SIGKILL after %s",
                  s->index, (int)s->pid, grace);
    s->timer = st->host->timer_new(st->inst, st->stop_grace_ms, 0, kill_cb, s);
    if (!s->timer) {
        st->host->log(st->inst, SB_LOG_WARN, "instance %u: no memory for the grace timer: SIGKILL",
                      s->index);
        (void)kill(-s->pid, SIGKILL);
    }
    return 0;
}

/* Which slot goes first when scaling down: one with no process (nothing is lost), else the
 * newest, as Waiter prefers unhealthy instances and then the youngest. */
static slot *pick_victim(const proc_state *st)
{
    slot *best = NULL;
    for (size_t i = 0; i < st->nslots; i++) {
        slot *s = st->slots[i];
        if (s->state == SLOT_STOPPING)
            continue;
        int idle = s->pid <= 0;
        int best_idle = best && best->pid <= 0;
        if (!best || idle > best_idle || (idle == best_idle && s->seq > best->seq))
            best = s;
    }
    return best;
}

static size_t count_active(const proc_state *st)
{
    size_t n = 0;
    for (size_t i = 0; i < st->nslots; i++)
        n += st->slots[i]->state != SLOT_STOPPING;
    return n;
}

/* Make the number of slots that are not stopping equal the desired count. */
static void apply_desired(proc_state *st)
{
    if (!st->started || st->stopping)
        return;
    size_t want = (size_t)st->desired;
    size_t active = count_active(st);
    int changed = 0;
    while (active < want) {
        slot *s = slot_add(st);
        if (!s) {
            st->host->log(st->inst, SB_LOG_ERROR, "out of memory: %zu of %zu instances", active,
                          want);
            break;
        }
        if (st->dry_run) {
            st->host->log(st->inst, SB_LOG_INFO, "would start instance %u: %s", s->index,
                          st->command_text);
            s->state = SLOT_RUNNING;
        } else {
            slot_spawn(st, s);
        }
        active++;
        changed = 1;
    }
    while (active > want) {
        slot *s = pick_victim(st);
        if (!s)
            break;
        slot_stop(st, s);
        active--;
        changed = 1;
    }
    if (changed)
        publish_list(st);
}

/* ---- Reaping ----------------------------------------------------------------------------- */

static void on_sigchld_closed(uv_handle_t *h)
{
    proc_state *st = h->data;
    free(h);
    if (st) {
        st->sigchld = NULL;
        st->host->stopped(st->inst);
    }
}

/* Once stopping and every child is gone: close our handle, then tell the host. */
static void maybe_finish_stop(proc_state *st)
{
    if (!st->stopping || st->nslots > 0 || !st->sigchld ||
        uv_is_closing((uv_handle_t *)st->sigchld))
        return;
    uv_close((uv_handle_t *)st->sigchld, on_sigchld_closed);
}

/* A slot's process is gone. Returns 1 when the slot was removed. */
static int slot_exited(proc_state *st, slot *s, int status)
{
    pid_t pid = s->pid;
    char how[80];
    describe_status(how, sizeof how, status);
    /* Nothing the instance started may outlive it (the group id stays reserved while any
     * member lives, so this cannot hit an unrelated process). */
    if (kill(-pid, SIGKILL) == 0)
        st->host->log(st->inst, SB_LOG_INFO,
                      "instance %u (pid %d): killed what was left of its "
                      "process group",
                      s->index, (int)pid);
    if (s->state == SLOT_STOPPING) {
        st->host->log(st->inst, SB_LOG_INFO, "instance %u stopped (pid %d, %s)", s->index, (int)pid,
                      how);
        slot_remove(st, s);
        return 1;
    }
    uint64_t uptime = now_ms() - s->started_ms;
    char up[32];
    format_ms(up, sizeof up, uptime);
    char what[160], reason[120];
    snprintf(what, sizeof what, "crashed (pid %d, %s) after %s", (int)pid, how, up);
    snprintf(reason, sizeof reason, "%s after %s", how, up);
    slot_crashed(st, s, uptime, SB_LOG_INFO, what, reason);
    return 0;
}

static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    proc_state *st = h->data;
    if (!st)
        return;
    int changed = 0;
    for (size_t i = 0; i < st->nslots;) {
        slot *s = st->slots[i];
        int status = 0;
        pid_t r = 0;
        if (s->pid > 0) {
            do {
                r = waitpid(s->pid, &status, WNOHANG);
            } while (r < 0 && errno == EINTR);
        }
        if (r < 0 && errno == ECHILD) {
            /* Someone else reaped our child: it is gone all the same, status unknown. */
            st->host->log(st->inst, SB_LOG_WARN, "instance %u (pid %d) was reaped elsewhere",
                          s->index, (int)s->pid);
            r = s->pid;
            status = 0;
        }
        if (r > 0) {
            changed = 1;
            if (slot_exited(st, s, status))
                continue; /* removed: slots[i] is now the next one */
        }
        i++;
    }
    if (changed)
        publish_list(st);
    maybe_finish_stop(st);
}

/* ---- Plugin callbacks -------------------------------------------------------------------- */

static void process_destroy(void *state);

static int process_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                          void **state, char *err, size_t errlen)
{
    *state = NULL;
    const sb_value *cmd = &values[OPT_COMMAND];
    if (!cmd->is_set || cmd->count == 0 || !cmd->items || !cmd->items[0] || !cmd->items[0][0]) {
        snprintf(err, errlen, "command: expected a list whose first item is the program to run");
        return -EINVAL;
    }
    proc_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->inst = inst;
    st->host = host;
    const char *id = host->instance_id(inst);
    st->id = strdup(id ? id : "process");
    st->argv = calloc(cmd->count + 1, sizeof *st->argv);
    st->command_text = join_command(cmd->items, cmd->count);
    if (!st->id || !st->argv || !st->command_text) {
        process_destroy(st);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < cmd->count; i++)
        st->argv[i] = (char *)cmd->items[i]; /* execve's type; the child never writes to them */
    if (values[OPT_ENV].is_set) {
        st->env_keys = values[OPT_ENV].items;
        st->env_values = values[OPT_ENV].values;
        st->nenv = values[OPT_ENV].count;
    }
    if (values[OPT_WORKDIR].is_set && values[OPT_WORKDIR].str && values[OPT_WORKDIR].str[0])
        st->workdir = values[OPT_WORKDIR].str;
    st->stop_grace_ms = values[OPT_STOP_GRACE].is_set ? values[OPT_STOP_GRACE].duration_ms : 10000;
    st->want_port = values[OPT_PORT].is_set && values[OPT_PORT].integer != 0;
    if (values[OPT_LOG_DIR].is_set && values[OPT_LOG_DIR].str && values[OPT_LOG_DIR].str[0])
        st->log_dir = values[OPT_LOG_DIR].str;
    *state = st;
    return SB_OK;
}

static int process_start(void *state)
{
    proc_state *st = state;
    st->dry_run = st->host->dry_run(st->inst) == 1;
    if (!st->dry_run) {
        /* One level only: a missing parent is more likely a typo than a wish. */
        if (st->log_dir && mkdir(st->log_dir, 0755) != 0 && errno != EEXIST)
            st->host->log(st->inst, SB_LOG_WARN, "cannot create log_dir '%s': %s", st->log_dir,
                          strerror(errno));
        uv_signal_t *h = malloc(sizeof *h);
        if (!h)
            return -ENOMEM;
        int rc = uv_signal_init(st->host->loop(st->inst), h);
        if (rc != 0) {
            free(h);
            return rc;
        }
        h->data = st;
        st->sigchld = h;
        rc = uv_signal_start(h, on_sigchld, SIGCHLD);
        if (rc != 0) {
            st->host->log(st->inst, SB_LOG_ERROR, "cannot watch SIGCHLD: %s", uv_strerror(rc));
            h->data = NULL; /* the close callback must not report a stop */
            st->sigchld = NULL;
            uv_close((uv_handle_t *)h, on_sigchld_closed);
            return rc;
        }
    }
    st->started = 1;
    apply_desired(st);
    return SB_OK;
}

static int process_stop(void *state)
{
    proc_state *st = state;
    if (st->stopping)
        return st->sigchld ? SB_PENDING : SB_OK;
    st->stopping = 1;
    /* Newest first, as when scaling down. */
    slot *s;
    while ((s = pick_victim(st)) != NULL)
        slot_stop(st, s);
    publish_list(st);
    if (!st->sigchld)
        return SB_OK;
    maybe_finish_stop(st);
    return SB_PENDING;
}

static void process_destroy(void *state)
{
    proc_state *st = state;
    if (!st)
        return;
    /* Normally empty after stop; if not (a failed start, a host error path), leave no orphans. */
    for (size_t i = 0; i < st->nslots; i++) {
        slot *s = st->slots[i];
        if (s->pid > 0) {
            (void)kill(-s->pid, SIGKILL);
            while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
            }
        }
        slot_cancel_timer(s);
        free(s);
    }
    free(st->slots);
    if (st->sigchld) {
        uv_handle_t *h = (uv_handle_t *)st->sigchld;
        h->data = NULL; /* the close callback only frees the handle */
        if (!uv_is_closing(h))
            uv_close(h, on_sigchld_closed);
    }
    free(st->argv);
    free(st->command_text);
    free(st->id);
    free(st);
}

static void process_on_event(void *state, const sb_event *ev)
{
    proc_state *st = state;
    if (!ev->topic || strcmp(ev->topic, SB_TOPIC_DESIRED) != 0)
        return;
    double v = ev->value;
    int64_t n = 0;
    if (v > 0) /* also false for NaN */
        n = v >= MAX_INSTANCES ? MAX_INSTANCES : (int64_t)(v + 0.5);
    if (v > MAX_INSTANCES)
        st->host->log(st->inst, SB_LOG_WARN, "desired %.0f capped at %d instances", v,
                      MAX_INSTANCES);
    st->desired = n;
    apply_desired(st);
}

static const sb_plugin_descriptor process_descriptor = {
    .abi_version = SB_ABI_VERSION,
    .size = sizeof(sb_plugin_descriptor),
    .type = "process",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "runs N local copies of a command, restarting crashed ones with back-off",
    .options = process_options,
    .create = process_create,
    .start = process_start,
    .stop = process_stop,
    .destroy = process_destroy,
    .on_event = process_on_event,
    .next_fire_times = NULL,
};

SB_PLUGIN_EXPORT(process_descriptor)
