/*
 * process.c - the `process` scaler: keeps N local copies of one command running, N being the
 * desired count the host delivers (already clamped to the scaler's min/max).
 *
 * Each copy is a "slot": an index (claimed from the host, so indexes stay unique across a reload
 * that replaces the scaler; handed to the child as SCALEBUS_INSTANCE), a process group when one
 * is running, an optional loopback port (PORT) and a one-shot host timer, used either for the
 * back-off before a restart or for the SIGKILL that follows SIGTERM after stop_grace.
 *
 * Processes are the host's: host->spawn() starts each one as the leader of its own process
 * group (and cgroup, where the daemon can make them), supervised so that nothing of it outlives
 * the daemon, and reaped by the daemon's one reaper; host->kill_group() signals the whole group.
 * The exit callback comes once when the main process has exited and, when others of its group
 * were left, again once the group is empty: a stopping instance keeps its slot (and its index)
 * until then, so stop_grace holds for every process of the group, not only for the main one. A
 * "run" is one spawned group; a crashed instance leaves its run behind while what was left of
 * its group is killed, and goes into back-off at once.
 *
 * The scaler contract (scalebus/scaler.h, the fleet library) decides how many slots there are:
 * it lists the slots (list), starts one (start_one) or stops one (stop_one) toward the desired
 * count, one call at a time, with newest-first scale-down, drain, --dry-run and the instance
 * list. The slots' own supervision (crash back-off) stays here: a slot in back-off is a failed
 * member the engine restarts itself (sb_member.restarting), so the fleet counts it and never
 * replaces it. Every call is answered at once, inside it (the fleet takes the next step after the
 * call returns).
 *
 * An optional readiness probe (`ready`: tcp, or an HTTP path, on the instance's PORT) keeps a
 * running instance "starting" until it can serve.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "scalebus/plugin.h"
#include "scalebus/scaler.h"

/* Crash handling: restart after 1 s, doubling up to 60 s; a run of 60 s forgives the past. A
 * test build (SB_PROCESS_TEST_KNOBS: tests/cmake/supervision.cmake builds one apart from the real
 * plugin) reads each from the environment when set there, so tests reach the cap and the reset
 * without waiting minutes. */
#ifdef SB_PROCESS_TEST_KNOBS
static uint64_t knob_ms(const char *name, uint64_t dflt)
{
    const char *v = getenv(name);
    char *end;
    unsigned long long ms = v && *v ? strtoull(v, &end, 10) : 0;
    return v && *v && !*end && ms > 0 ? (uint64_t)ms : dflt;
}
#define BACKOFF_FIRST_MS knob_ms("SB_TEST_BACKOFF_FIRST_MS", 1000u)
#define BACKOFF_MAX_MS knob_ms("SB_TEST_BACKOFF_MAX_MS", 60000u)
#define BACKOFF_RESET_MS knob_ms("SB_TEST_BACKOFF_RESET_MS", 60000u)
#else
#define BACKOFF_FIRST_MS 1000u
#define BACKOFF_MAX_MS 60000u
#define BACKOFF_RESET_MS 60000u
#endif
/* This many crashes in a row, each within QUICK_CRASH_MS of its start, is reported as an error. */
#define FAILED_AFTER 5u
#define QUICK_CRASH_MS 10000u
/* A guard against a typo such as max: 100000 forking the machine to death. */
#define MAX_INSTANCES 4096
/* Retries when the kernel hands out a port one of our live instances already has. */
#define PORT_ATTEMPTS 32
/* Log files: readable by the daemon's group, never by everyone. */
#define LOG_FILE_MODE 0640
#define LOG_DIR_MODE 0750

extern char **environ;

enum {
    OPT_COMMAND,
    OPT_ENV,
    OPT_WORKDIR,
    OPT_STOP_GRACE,
    OPT_PORT,
    OPT_LOG_DIR,
    OPT_READY,
    OPT_READY_EVERY,
    OPT_READY_TIMEOUT,
    OPT_RECONCILE, /* SB_FLEET_OPTIONS: reconcile_every, on_stop, drain_timeout, drain_from */
    OPT_COUNT = OPT_RECONCILE + SB_FLEET_OPTION_COUNT
};

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
    [OPT_READY] = {"ready", SB_OPT_STRING, NULL, 0,
                   "readiness probe on the instance's PORT: tcp, or an HTTP path such as /healthz"},
    [OPT_READY_EVERY] = {"ready_every", SB_OPT_DURATION, "250ms", 0,
                         "how often a starting instance is probed"},
    [OPT_READY_TIMEOUT] = {"ready_timeout", SB_OPT_DURATION, "0s", 0,
                           "restart an instance not ready this long after its start (0: wait)"},
    SB_FLEET_OPTIONS("stop"),
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
typedef struct slot slot;

/* One spawned process group, from spawn until the host says the group is empty. */
typedef struct run {
    proc_state *st;
    slot *s; /* NULL: left behind by a crashed instance, its leftovers being killed */
    int64_t pid;
    int leader_exited;
    int status; /* the main process's wait status, once it has exited */
    struct run *prev, *next;
} run;

struct slot {
    proc_state *owner;
    int64_t index;
    uint64_t seq; /* creation order: the newest is stopped first */
    slot_state state;
    run *run;        /* its process group; NULL: no process */
    int leader_gone; /* stopping: the main process has exited, others of its group have not */
    int port;        /* 0: none */
    uint64_t started_ms;
    int64_t started_wall; /* Unix seconds, for the instance list */
    int ready;            /* the probe has answered (always 1 without a probe) */
    sb_http *probe;       /* an HTTP probe in flight */
    struct tcp_probe *tcp_probe; /* a TCP probe in flight */
    uint64_t probe_due_ms;       /* a starting instance's next quick probe (see quick_tick) */
    uint64_t probe_gap_ms;       /* and the gap after it: 1 ms at first, then doubling */
    uint64_t backoff_ms; /* the last back-off delay; 0 before the first crash */
    unsigned quick_crashes;
    unsigned restarts;
    sb_timer *timer; /* back-off restart, or SIGKILL after stop_grace */
    char error[200]; /* why the last run ended, shown while in back-off */
};

struct proc_state {
    sb_instance *inst;
    const sb_host *host;
    const char *id;   /* the host's (instance_id lives as long as the instance) */
    int host_indexes; /* the host claims indexes (index_claim/index_release) */
    /* Options; the strings belong to the host and live as long as the instance (or until a
     * reconfigure hands over new ones). The command is values[OPT_COMMAND]: its argv and its
     * text for log lines are made when used, so 10,000 idle scalers keep no copies. */
    const char *const *env_keys;
    const char *const *env_values;
    size_t nenv;
    const char *workdir;
    uint64_t stop_grace_ms;
    int want_port;
    const char *log_dir;

    const char *ready;       /* NULL, "tcp" or an HTTP path */
    uint64_t ready_every_ms, ready_timeout_ms;
    sb_timer *probe_timer;
    sb_timer *quick_timer; /* one-shot: the next quick probe of a starting instance */
    uint64_t quick_due_ms;

    sb_fleet *fleet;
    const sb_value *values; /* the options now in use (the fleet rows are compared on a reload) */
    int64_t desired;        /* the last desired count, -1 before the first */

    int dry_run;
    int started;
    int stopping;
    int stop_pending; /* stop() returned SB_PENDING: call host->stopped() once all is gone */
    slot **slots; /* sorted by index */
    size_t nslots, capslots;
    uint64_t next_seq;
    run *runs; /* every group still there */
};

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
static char *join_command(const char *const *items, size_t n);

/* The command's text for a log line; free() it (NULL when out of memory). */
static char *command_text(const proc_state *st)
{
    const sb_value *cmd = &st->values[OPT_COMMAND];
    return join_command(cmd->items, cmd->count);
}

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
    snprintf(num, sizeof num, "%lld", (long long)s->index);
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

/* ---- Program lookup and ports ------------------------------------------------------------- */

static const char *env_lookup(char *const *envp, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], key, klen) == 0 && envp[i][klen] == '=')
            return envp[i] + klen + 1;
    return NULL;
}

static char *concat3(const char *a, const char *b, const char *c)
{
    size_t la = strlen(a), lb = strlen(b), lc = strlen(c);
    char *p = malloc(la + lb + lc + 1);
    if (!p)
        return NULL;
    memcpy(p, a, la);
    memcpy(p + la, b, lb);
    memcpy(p + la + lb, c, lc + 1);
    return p;
}

/* Resolve argv0 like execvp, but against the PATH in envp (the child's environment), with
 * relative PATH entries taken from workdir because that is where the child will be. A name with
 * a slash is returned unchanged (the child resolves it after chdir). Returns 0 and a malloc'd
 * path for the child (relative ones are relative to workdir, as sb_spawn wants), or
 * -ENOENT/-EACCES/-ENOMEM. */
static int resolve_program(const char *argv0, char *const *envp, const char *workdir, char **out)
{
    *out = NULL;
    if (argv0[0] == '\0')
        return -ENOENT;
    if (strchr(argv0, '/')) {
        *out = strdup(argv0);
        return *out ? 0 : -ENOMEM;
    }
    const char *path = env_lookup(envp, "PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin"; /* what execvp uses without PATH */
    int result = -ENOENT;
    for (const char *p = path;;) {
        const char *end = strchr(p, ':');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char *dir = len ? strndup(p, len) : strdup(".");
        if (!dir)
            return -ENOMEM;
        int relative = dir[0] != '/';
        char *cand = concat3(dir, "/", argv0); /* as the child sees it */
        free(dir);
        /* ... and as we see it, from the daemon's working directory. */
        char *here = cand && relative && workdir ? concat3(workdir, "/", cand) : NULL;
        if (!cand || (relative && workdir && !here)) {
            free(cand);
            return -ENOMEM;
        }
        struct stat sb;
        const char *look = here ? here : cand;
        if (stat(look, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (access(look, X_OK) == 0) {
                free(here);
                *out = cand;
                return 0;
            }
            result = -EACCES; /* as execvp: remember, but a later entry may still work */
        }
        free(here);
        free(cand);
        if (!end)
            break;
        p = end + 1;
    }
    return result;
}

/* A free TCP port on 127.0.0.1: bind port 0 and read what the kernel chose. */
static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &len) != 0)
        rc = -errno;
    close(fd);
    return rc ? rc : (int)ntohs(addr.sin_port);
}

/* ---- Instance list ----------------------------------------------------------------------- */

static int64_t slot_pid(const slot *s)
{
    return s->run ? s->run->pid : 0;
}

/* The fields only a process has, merged into its entry of the instance list. */
static cJSON *slot_detail(const slot *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o)
        return NULL;
    int64_t pid = slot_pid(s);
    int ok = cJSON_AddNumberToObject(o, "index", (double)s->index) != NULL;
    ok = ok && (pid > 0 ? cJSON_AddNumberToObject(o, "pid", (double)pid) != NULL
                        : cJSON_AddNullToObject(o, "pid") != NULL);
    ok = ok && (s->port > 0 ? cJSON_AddNumberToObject(o, "port", s->port) != NULL
                            : cJSON_AddNullToObject(o, "port") != NULL);
    ok = ok && cJSON_AddNumberToObject(o, "restarts", s->restarts) != NULL;
    if (ok && (s->state == SLOT_BACKOFF || s->state == SLOT_FAILED) && s->error[0])
        ok = cJSON_AddStringToObject(o, "error", s->error) != NULL;
    if (ok && s->state == SLOT_FAILED)
        ok = cJSON_AddBoolToObject(o, "crash_loop", 1) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static sb_member_state slot_member_state(const slot *s)
{
    switch (s->state) {
    case SLOT_STARTING:
        return SB_MEMBER_STARTING;
    case SLOT_RUNNING:
        return s->ready ? SB_MEMBER_READY : SB_MEMBER_STARTING;
    case SLOT_STOPPING:
        return SB_MEMBER_STOPPING;
    case SLOT_BACKOFF:
    case SLOT_FAILED:
        break;
    }
    return SB_MEMBER_FAILED; /* restarting: see slot_members */
}

/* A member id: "<scaler>.<index>", as the log files are named. */
static void slot_id(const proc_state *st, const slot *s, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%lld", st->id, (long long)s->index);
}

/* Tell the fleet what runs, in creation order (later is newer when start times tie). */
static void answer_list(proc_state *st)
{
    size_t n = st->nslots;
    sb_member *ms = n ? calloc(n, sizeof *ms) : NULL;
    char (*ids)[96] = n ? calloc(n, sizeof *ids) : NULL;
    char (*addrs)[32] = n ? calloc(n, sizeof *addrs) : NULL;
    slot **order = n ? calloc(n, sizeof *order) : NULL;
    if (n && (!ms || !ids || !addrs || !order)) {
        free(ms);
        free(ids);
        free(addrs);
        free(order);
        sb_fleet_list_failed(st->fleet, SB_ACTION_FAILED, "out of memory listing instances");
        return;
    }
    if (n) /* memcpy with NULL is undefined even for 0 bytes */
        memcpy(order, st->slots, n * sizeof *order);
    for (size_t i = 1; i < n; i++) /* insertion sort by seq: n is small */
        for (size_t k = i; k > 0 && order[k - 1]->seq > order[k]->seq; k--) {
            slot *t = order[k];
            order[k] = order[k - 1];
            order[k - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        const slot *s = order[i];
        slot_id(st, s, ids[i], sizeof ids[i]);
        ms[i].id = ids[i];
        if (s->port > 0) {
            snprintf(addrs[i], sizeof addrs[i], "127.0.0.1:%d", s->port);
            ms[i].address = addrs[i];
        }
        ms[i].state = slot_member_state(s);
        ms[i].restarting = ms[i].state == SB_MEMBER_FAILED;
        ms[i].started_at = s->started_wall;
        ms[i].detail = slot_detail(s);
    }
    sb_fleet_listed(st->fleet, ms, n);
    for (size_t i = 0; i < n; i++)
        cJSON_Delete((cJSON *)ms[i].detail);
    free(ms);
    free(ids);
    free(addrs);
    free(order);
}

/* Answers go to the fleet inside its call: it takes the next step after the call returns. */
static void answer_action(proc_state *st, sb_action_result result, const char *msg)
{
    sb_fleet_action_done(st->fleet, result, "%s", msg ? msg : "");
}

/* Something changed here (a start, an exit, a probe): the fleet lists again and publishes. */
static void publish_list(proc_state *st)
{
    if (st->fleet && !st->stopping)
        sb_fleet_changed(st->fleet);
}

/* ---- Slots and runs ---------------------------------------------------------------------- */

static void slot_cancel_timer(slot *s)
{
    if (s->timer) {
        s->owner->host->timer_free(s->timer);
        s->timer = NULL;
    }
}

/* The lowest index free: from the host (unique across a replacement of this scaler), or our own
 * lowest gap when the host cannot claim them. */
static int64_t claim_index(proc_state *st)
{
    if (st->host_indexes)
        return st->host->index_claim(st->inst);
    int64_t want = 0;
    for (size_t i = 0; i < st->nslots && st->slots[i]->index == want; i++)
        want++;
    return want;
}

/* A new slot at a newly claimed index, kept in index order. */
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
    int64_t index = claim_index(st);
    if (index < 0) {
        free(s);
        return NULL;
    }
    size_t at = 0;
    while (at < st->nslots && st->slots[at]->index < index)
        at++;
    memmove(&st->slots[at + 1], &st->slots[at], (st->nslots - at) * sizeof *st->slots);
    st->slots[at] = s;
    st->nslots++;
    s->owner = st;
    s->index = index;
    s->seq = st->next_seq++;
    s->state = SLOT_STARTING;
    return s;
}

static void run_free(proc_state *st, run *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        st->runs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->s && r->s->run == r)
        r->s->run = NULL;
    free(r);
}

/* Remove a slot (its run, if any, is detached, not freed) and give its index back. */
/* A TCP connect to the instance's port. It may outlive its slot (a handle closes later): the
 * slot lets go of it (s = NULL) and the close callback frees it. */
typedef struct tcp_probe {
    uv_tcp_t tcp;
    uv_connect_t req;
    slot *s;
    uint64_t started_ms;
} tcp_probe;

static void tcp_probe_closed(uv_handle_t *h)
{
    free(h->data);
}

static void slot_cancel_probe(proc_state *st, slot *s)
{
    if (s->probe) {
        st->host->http_cancel(st->inst, s->probe);
        s->probe = NULL;
    }
    if (s->tcp_probe) {
        s->tcp_probe->s = NULL;
        uv_close((uv_handle_t *)&s->tcp_probe->tcp, tcp_probe_closed);
        s->tcp_probe = NULL;
    }
}

static void slot_remove(proc_state *st, slot *s)
{
    slot_cancel_timer(s);
    slot_cancel_probe(st, s);
    if (s->run)
        s->run->s = NULL;
    for (size_t i = 0; i < st->nslots; i++) {
        if (st->slots[i] == s) {
            memmove(&st->slots[i], &st->slots[i + 1], (st->nslots - i - 1) * sizeof *st->slots);
            st->nslots--;
            break;
        }
    }
    if (st->host_indexes)
        st->host->index_release(st->inst, s->index);
    free(s);
}

/* Once stopping and every process group of ours is gone: tell the host. */
static void maybe_finish_stop(proc_state *st)
{
    if (!st->stop_pending || st->nslots > 0 || st->runs)
        return;
    st->stop_pending = 0;
    st->host->stopped(st->inst);
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
        port = pick_port();
        if (port < 0 || !port_in_use(st, port))
            return port;
    }
    return -EADDRINUSE;
}

/* LOG_DIR/<id>.<index>.<ext>, appended to. Never through a symbolic link (someone who can write
 * to log_dir must not make the daemon append worker output to a file of their choosing), never
 * to anything but a regular file with one link (a FIFO would block us), and private to the
 * daemon's user and group. */
static int open_log(const proc_state *st, const slot *s, const char *ext, char *err, size_t errlen)
{
    size_t len = strlen(st->log_dir) + strlen(st->id) + 48;
    char *path = malloc(len);
    if (!path) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    snprintf(path, len, "%s/%s.%lld.%s", st->log_dir, st->id, (long long)s->index, ext);
    struct stat sb;
    int fd = -1;
    if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
        snprintf(err, errlen, "refusing log file '%s': it is a symbolic link", path);
        goto out;
    }
    fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
              LOG_FILE_MODE);
    if (fd < 0) {
        if (errno == ELOOP)
            snprintf(err, errlen, "refusing log file '%s': it is a symbolic link", path);
        else if (errno == ENXIO)
            snprintf(err, errlen, "refusing log file '%s': not a regular file", path);
        else
            snprintf(err, errlen, "cannot open log file '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "refusing log file '%s': not a regular file", path);
    } else if (sb.st_nlink > 1) {
        snprintf(err, errlen, "refusing log file '%s': it has %lu hard links", path,
                 (unsigned long)sb.st_nlink);
    } else {
        int flags = fcntl(fd, F_GETFL);
        if (flags >= 0 && fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == 0)
            goto out;
        snprintf(err, errlen, "cannot set up log file '%s': %s", path, strerror(errno));
    }
    close(fd);
    fd = -1;
out:
    free(path);
    return fd;
}

static void make_log_dir(proc_state *st)
{
    /* One level only: a missing parent is more likely a typo than a wish. */
    if (st->log_dir && mkdir(st->log_dir, LOG_DIR_MODE) != 0 && errno != EEXIST)
        st->host->log(st->inst, SB_LOG_WARN, "cannot create log_dir '%s': %s", st->log_dir,
                      strerror(errno));
}

static void restart_cb(void *arg);

/* The instance ended (or never started) while it should be running: wait, then start it again.
 * `what` is the log line's text, `reason` the shorter form kept for the instance list. */
static void slot_crashed(proc_state *st, slot *s, uint64_t uptime_ms, sb_log_level level,
                         const char *what, const char *reason)
{
    s->port = 0;
    s->ready = 0;
    slot_cancel_probe(st, s);
    snprintf(s->error, sizeof s->error, "%s", reason);
    if (uptime_ms >= BACKOFF_RESET_MS)
        s->backoff_ms = 0;
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : BACKOFF_FIRST_MS;
    if (s->backoff_ms > BACKOFF_MAX_MS)
        s->backoff_ms = BACKOFF_MAX_MS;
    s->quick_crashes = uptime_ms < QUICK_CRASH_MS ? s->quick_crashes + 1 : 0;
    s->state = s->quick_crashes >= FAILED_AFTER ? SLOT_FAILED : SLOT_BACKOFF;

    char delay[32], quick[32], cap[32];
    format_ms(delay, sizeof delay, s->backoff_ms);
    format_ms(quick, sizeof quick, QUICK_CRASH_MS);
    format_ms(cap, sizeof cap, BACKOFF_MAX_MS);
    if (s->quick_crashes == FAILED_AFTER)
        st->host->log(st->inst, SB_LOG_ERROR,
                      "instance %lld keeps crashing: %u crashes in a row, each within %s of its "
                      "start (last: %s); still restarting, with back-off up to %s",
                      (long long)s->index, s->quick_crashes, quick, reason, cap);
    st->host->log(st->inst, level, "instance %lld: %s; restarting in %s", (long long)s->index, what,
                  delay);
    slot_cancel_timer(s);
    s->timer = st->host->timer_new(st->inst, s->backoff_ms, 0, restart_cb, s);
    if (!s->timer) {
        s->state = SLOT_FAILED;
        st->host->log(st->inst, SB_LOG_ERROR,
                      "instance %lld: out of memory arming the restart timer; it stays down",
                      (long long)s->index);
    }
}

/* ---- Exits ------------------------------------------------------------------------------- */

/* The host's sb_child_cb for each run: first when the main process has exited (group_empty
 * says whether others of its group are left), again when the group has emptied. */
static void on_child_exit(void *arg, int64_t pid, int status, int group_empty)
{
    run *r = arg;
    proc_state *st = r->st;
    slot *s = r->s;
    if (!r->leader_exited) {
        r->leader_exited = 1;
        r->status = status;
    }
    char how[80];
    describe_status(how, sizeof how, r->status);
    if (!s) {
        /* Left behind by a crash: only its leftovers were still to go. */
        if (group_empty) {
            run_free(st, r);
            maybe_finish_stop(st);
        }
        return;
    }
    if (s->state == SLOT_STOPPING) {
        if (!group_empty) {
            /* stop_grace holds for the whole group: the SIGKILL timer stays armed. */
            s->leader_gone = 1;
            st->host->log(st->inst, SB_LOG_INFO,
                          "instance %lld: main process (pid %lld) ended (%s); the rest of its "
                          "process group has the rest of stop_grace",
                          (long long)s->index, (long long)pid, how);
            return;
        }
        st->host->log(st->inst, SB_LOG_INFO, "instance %lld stopped (pid %lld, %s)",
                      (long long)s->index, (long long)pid, how);
        slot_remove(st, s);
        run_free(st, r);
        publish_list(st);
        maybe_finish_stop(st);
        return;
    }
    /* It ended while it should be running: nothing it started may outlive it. */
    if (!group_empty && st->host->kill_group(st->inst, pid, SIGKILL) == 0)
        st->host->log(st->inst, SB_LOG_INFO,
                      "instance %lld (pid %lld): killed what was left of its process group",
                      (long long)s->index, (long long)pid);
    s->run = NULL;
    r->s = NULL;
    if (group_empty)
        run_free(st, r);
    uint64_t uptime = now_ms() - s->started_ms;
    char up[32];
    format_ms(up, sizeof up, uptime);
    char what[160], reason[120];
    snprintf(what, sizeof what, "crashed (pid %lld, %s) after %s", (long long)pid, how, up);
    snprintf(reason, sizeof reason, "%s after %s", how, up);
    slot_crashed(st, s, uptime, SB_LOG_INFO, what, reason);
    publish_list(st);
}

/* ---- Starting and stopping ----------------------------------------------------------------- */

/* Everything host->spawn needs, prepared here. Returns 0, or -1 with err filled. */
static int spawn_slot_process(proc_state *st, slot *s, int port, char *err, size_t errlen)
{
    strv env = {0};
    char *path = NULL;
    char **argv = NULL; /* NULL-terminated, as execve wants it: only for the spawn */
    int out = -1, errfd = -1, result = -1;
    run *r = NULL;
    err[0] = '\0';
    if (build_env(st, s, port, &env) != 0) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    const sb_value *cmd = &st->values[OPT_COMMAND];
    int rc = resolve_program(cmd->items[0], env.v, st->workdir, &path);
    if (rc != 0) {
        snprintf(err, errlen, "cannot run '%s': %s", cmd->items[0],
                 rc == -ENOENT ? "not found in PATH" : strerror(-rc));
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
    r = calloc(1, sizeof *r);
    argv = calloc(cmd->count + 1, sizeof *argv);
    if (!r || !argv) {
        snprintf(err, errlen, "out of memory");
        free(r);
        goto done;
    }
    for (size_t i = 0; i < cmd->count; i++)
        argv[i] = (char *)cmd->items[i]; /* execve's type; the child never writes to them */
    sb_spawn req = {SB_SPAWN_INIT, .path = path, .argv = argv, .envp = env.v,
                    .workdir = st->workdir};
    /* Assigned, not in the initialiser: SB_SPAWN_INIT already sets them (-Woverride-init). */
    req.stdout_fd = out;
    req.stderr_fd = errfd;
    int64_t pid = 0;
    rc = st->host->spawn(st->inst, &req, on_child_exit, r, &pid, err, errlen);
    if (rc != 0) {
        if (!err[0])
            snprintf(err, errlen, "cannot start: %s", strerror(rc < 0 ? -rc : rc));
        free(r);
        goto done;
    }
    r->st = st;
    r->s = s;
    r->pid = pid;
    r->next = st->runs;
    if (st->runs)
        st->runs->prev = r;
    st->runs = r;
    s->run = r;
    s->leader_gone = 0;
    result = 0;
done:
    if (out >= 0)
        close(out);
    if (errfd >= 0)
        close(errfd);
    free(argv);
    free(path);
    strv_free(&env);
    return result;
}

static void quick_schedule(proc_state *st);

static void slot_spawn(proc_state *st, slot *s)
{
    char err[512];
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
    s->started_wall = (int64_t)time(NULL);
    s->ready = st->ready == NULL;
    s->error[0] = '\0';
    if (!s->ready && port > 0 && st->started && !st->stopping) {
        s->probe_gap_ms = 1;
        s->probe_due_ms = s->started_ms; /* at once: quick_tick runs on the loop's next turn */
        quick_schedule(st);
    }
    char *text = command_text(st);
    if (port)
        st->host->log(st->inst, SB_LOG_INFO, "started instance %lld (pid %lld, port %d): %s",
                      (long long)s->index, (long long)slot_pid(s), port, text ? text : "");
    else
        st->host->log(st->inst, SB_LOG_INFO, "started instance %lld (pid %lld): %s",
                      (long long)s->index, (long long)slot_pid(s), text ? text : "");
    free(text);
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
    if (!s->run)
        return;
    char grace[32];
    format_ms(grace, sizeof grace, st->stop_grace_ms);
    if (s->leader_gone)
        st->host->log(st->inst, SB_LOG_WARN,
                      "instance %lld: processes of its group (pid %lld) still running %s after "
                      "SIGTERM: SIGKILL",
                      (long long)s->index, (long long)s->run->pid, grace);
    else
        st->host->log(st->inst, SB_LOG_WARN,
                      "instance %lld (pid %lld) still running %s after SIGTERM: SIGKILL",
                      (long long)s->index, (long long)s->run->pid, grace);
    (void)st->host->kill_group(st->inst, s->run->pid, SIGKILL);
}

/* Stop one slot; returns 1 when it is gone at once (it had no process). */
static int slot_stop(proc_state *st, slot *s)
{
    char grace[32];
    format_ms(grace, sizeof grace, st->stop_grace_ms);
    slot_cancel_timer(s);
    slot_cancel_probe(st, s);
    if (!s->run) {
        st->host->log(st->inst, SB_LOG_INFO, "removed instance %lld (it was waiting to restart)",
                      (long long)s->index);
        slot_remove(st, s);
        return 1;
    }
    s->state = SLOT_STOPPING;
    /* The whole group: the instance's own children get the signal too. */
    (void)st->host->kill_group(st->inst, s->run->pid, SIGTERM);
    st->host->log(st->inst, SB_LOG_INFO,
                  "stopping instance %lld (pid %lld): SIGTERM, SIGKILL after %s",
                  (long long)s->index, (long long)s->run->pid, grace);
    s->timer = st->host->timer_new(st->inst, st->stop_grace_ms, 0, kill_cb, s);
    if (!s->timer) {
        st->host->log(st->inst, SB_LOG_WARN,
                      "instance %lld: no memory for the grace timer: SIGKILL", (long long)s->index);
        (void)st->host->kill_group(st->inst, s->run->pid, SIGKILL);
    }
    return 0;
}

/* ---- The fleet's calls -------------------------------------------------------------------- */

static void process_list(void *self, sb_fleet *f)
{
    (void)f;
    answer_list(self);
}

static void process_start_one(void *self, sb_fleet *f)
{
    (void)f;
    proc_state *st = self;
    if (st->nslots >= MAX_INSTANCES) {
        answer_action(st, SB_ACTION_FAILED, "at most 4096 instances per scaler");
        return;
    }
    slot *s = slot_add(st);
    if (!s) {
        answer_action(st, SB_ACTION_FAILED, "out of memory");
        return;
    }
    slot_spawn(st, s);
    /* A slot that could not start is in back-off, restarted by us: the fleet counts it, and the
     * failure is counted once. */
    if (s->state == SLOT_RUNNING)
        answer_action(st, SB_ACTION_DONE, NULL);
    else
        answer_action(st, SB_ACTION_FAILED, s->error);
}

static slot *slot_by_id(proc_state *st, const char *id)
{
    char mine[96];
    for (size_t i = 0; i < st->nslots; i++) {
        slot_id(st, st->slots[i], mine, sizeof mine);
        if (strcmp(mine, id) == 0)
            return st->slots[i];
    }
    return NULL;
}

/* SIGTERM now; the fleet is answered at once, so several stops run their graces side by side
 * (the member is listed as stopping, which does not count, until its group is gone). */
static void process_stop_one(void *self, sb_fleet *f, const char *id)
{
    (void)f;
    proc_state *st = self;
    slot *s = slot_by_id(st, id);
    if (s && s->state != SLOT_STOPPING)
        slot_stop(st, s);
    answer_action(st, SB_ACTION_DONE, NULL);
}

static void process_describe(void *self, sb_fleet_call call, const char *id, int64_t n,
                             char *buf, size_t len)
{
    (void)n;
    proc_state *st = self;
    char grace[32];
    format_ms(grace, sizeof grace, st->stop_grace_ms);
    if (call == SB_CALL_START) {
        char *text = command_text(st);
        snprintf(buf, len, "start %s%s", text ? text : "(out of memory)",
                 st->want_port ? " (PORT=a free port)" : "");
        free(text);
    } else
        snprintf(buf, len, "stop %s: SIGTERM, SIGKILL after %s", id ? id : "", grace);
}

static const sb_fleet_ops process_fleet_ops = {
    .list = process_list,
    .start_one = process_start_one,
    .stop_one = process_stop_one,
    .describe = process_describe,
};

/* ---- Readiness ----------------------------------------------------------------------------- */

static void slot_became_ready(proc_state *st, slot *s, const char *how)
{
    s->ready = 1;
    char after[32];
    format_ms(after, sizeof after, now_ms() - s->started_ms);
    st->host->log(st->inst, SB_LOG_INFO, "instance %lld ready (%s) %s after its start",
                  (long long)s->index, how, after);
    publish_list(st);
}

static void tcp_probe_connected(uv_connect_t *req, int status)
{
    tcp_probe *p = req->data;
    slot *s = p->s;
    if (!s)
        return; /* let go of (and closed) by its slot */
    s->tcp_probe = NULL;
    uv_close((uv_handle_t *)&p->tcp, tcp_probe_closed);
    if (status == 0 && s->state == SLOT_RUNNING && !s->ready)
        slot_became_ready(s->owner, s, "tcp");
}

static void tcp_probe_start(proc_state *st, slot *s)
{
    uv_loop_t *loop = st->host->loop(st->inst);
    tcp_probe *p = loop ? calloc(1, sizeof *p) : NULL;
    if (!p)
        return;
    if (uv_tcp_init(loop, &p->tcp) != 0) {
        free(p);
        return;
    }
    p->tcp.data = p;
    p->req.data = p;
    p->s = s;
    p->started_ms = now_ms();
    struct sockaddr_in addr;
    uv_ip4_addr("127.0.0.1", s->port, &addr);
    if (uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)&addr, tcp_probe_connected) != 0) {
        uv_close((uv_handle_t *)&p->tcp, tcp_probe_closed);
        return;
    }
    s->tcp_probe = p;
}

static void http_probe_done(void *arg, const sb_http_response *res)
{
    slot *s = arg;
    proc_state *st = s->owner;
    s->probe = NULL;
    if (res->error == 0 && res->status >= 200 && res->status < 400 && s->state == SLOT_RUNNING &&
        !s->ready) {
        char how[96];
        snprintf(how, sizeof how, "GET %.60s: %ld", st->ready, res->status);
        slot_became_ready(st, s, how);
    }
}

/* Probe one starting instance unless a probe is in flight; 1 when one was started. */
static int probe_slot(proc_state *st, slot *s)
{
    if (s->state != SLOT_RUNNING || s->ready || s->port <= 0 || s->probe)
        return 0;
    if (s->tcp_probe) {
        /* A connect that hangs (a full accept queue) is given up after a second. */
        if (now_ms() - s->tcp_probe->started_ms > 1000)
            slot_cancel_probe(st, s);
        return 0;
    }
    if (st->ready_timeout_ms && now_ms() - s->started_ms > st->ready_timeout_ms && s->run) {
        char limit[32];
        format_ms(limit, sizeof limit, st->ready_timeout_ms);
        st->host->log(st->inst, SB_LOG_WARN,
                      "instance %lld (pid %lld) not ready %s after its start: SIGKILL, it "
                      "will be restarted",
                      (long long)s->index, (long long)s->run->pid, limit);
        (void)st->host->kill_group(st->inst, s->run->pid, SIGKILL);
        return 0;
    }
    if (strcmp(st->ready, "tcp") == 0) {
        tcp_probe_start(st, s);
        return 1;
    }
    char url[600];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, st->ready);
    uint64_t timeout = st->ready_every_ms < 1000 ? 1000 : st->ready_every_ms;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .method = "GET", .url = url,
                           .timeout_ms = timeout, .max_body = 65536};
    if (st->host->http_request(st->inst, &req, http_probe_done, s, &s->probe) != 0)
        s->probe = NULL;
    return 1;
}

static void probe_tick(void *arg)
{
    proc_state *st = arg;
    if (st->stopping)
        return;
    for (size_t i = 0; i < st->nslots; i++)
        (void)probe_slot(st, st->slots[i]);
}

/* A starting instance is probed at once, then every millisecond for its first 10 ms, then at
 * gaps doubling up to ready_every: a cold start waits for its readiness about as long as the
 * program takes to listen, not up to a whole ready_every (the periodic tick goes on as well). */

static void quick_tick(void *arg)
{
    proc_state *st = arg;
    if (st->quick_timer) {
        st->host->timer_free(st->quick_timer); /* safe inside its callback */
        st->quick_timer = NULL;
    }
    if (st->stopping)
        return;
    uint64_t now = now_ms();
    for (size_t i = 0; i < st->nslots; i++) {
        slot *s = st->slots[i];
        if (s->state != SLOT_RUNNING || s->ready || !s->probe_gap_ms || now < s->probe_due_ms)
            continue;
        (void)probe_slot(st, s); /* one still in flight: skipped, tried at the next gap */
        s->probe_due_ms = now + s->probe_gap_ms;
        if (now - s->started_ms >= 10)
            s->probe_gap_ms *= 2;
        if (s->probe_gap_ms >= st->ready_every_ms)
            s->probe_gap_ms = 0; /* the periodic tick's cadence from here on */
    }
    quick_schedule(st);
}

static void quick_schedule(proc_state *st)
{
    if (!st->ready || st->stopping)
        return;
    uint64_t due = 0;
    for (size_t i = 0; i < st->nslots; i++) {
        slot *s = st->slots[i];
        if (s->state == SLOT_RUNNING && !s->ready && s->probe_gap_ms &&
            (!due || s->probe_due_ms < due))
            due = s->probe_due_ms;
    }
    if (!due || (st->quick_timer && st->quick_due_ms <= due))
        return;
    if (st->quick_timer)
        st->host->timer_free(st->quick_timer);
    uint64_t now = now_ms();
    st->quick_due_ms = due;
    st->quick_timer = st->host->timer_new(st->inst, due > now ? due - now : 0, 0, quick_tick, st);
}

/* ---- Options ----------------------------------------------------------------------------- */

static const char *opt_string(const sb_value *v)
{
    return v->is_set && v->str && v->str[0] ? v->str : NULL;
}

static int same_string(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int check_command(const sb_value *cmd, char *err, size_t errlen)
{
    if (!cmd->is_set || cmd->count == 0 || !cmd->items || !cmd->items[0] || !cmd->items[0][0]) {
        snprintf(err, errlen, "command: expected a list whose first item is the program to run");
        return -EINVAL;
    }
    return 0;
}

/* The options every new instance reads (env, stop_grace, log_dir). */
static void take_soft_options(proc_state *st, const sb_value *values)
{
    st->env_keys = NULL;
    st->env_values = NULL;
    st->nenv = 0;
    if (values[OPT_ENV].is_set) {
        st->env_keys = values[OPT_ENV].items;
        st->env_values = values[OPT_ENV].values;
        st->nenv = values[OPT_ENV].count;
    }
    st->stop_grace_ms = values[OPT_STOP_GRACE].is_set ? values[OPT_STOP_GRACE].duration_ms : 10000;
    st->log_dir = opt_string(&values[OPT_LOG_DIR]);
}

/* ready, ready_every, ready_timeout. */
static int take_ready_options(proc_state *st, const sb_value *values, char *err, size_t errlen)
{
    const char *ready = opt_string(&values[OPT_READY]);
    if (ready && strcmp(ready, "tcp") != 0 && ready[0] != '/') {
        snprintf(err, errlen, "ready: tcp, or an HTTP path starting with '/', got '%s'", ready);
        return -EINVAL;
    }
    if (ready && strlen(ready) > 500) {
        snprintf(err, errlen, "ready: a path of at most 500 characters");
        return -EINVAL;
    }
    if (ready && ready[0] == '/' && strpbrk(ready, " \r\n\t")) {
        snprintf(err, errlen, "ready: the path may not contain spaces or control characters");
        return -EINVAL;
    }
    if (ready && !st->want_port) {
        snprintf(err, errlen, "ready: needs port: true (the probe connects to the instance's PORT)");
        return -EINVAL;
    }
    if (ready && ready[0] == '/' && !SB_HOST_HAS(st->host, http_request)) {
        snprintf(err, errlen, "ready: an HTTP probe needs a daemon with the HTTP client (host "
                              "version 3)");
        return -ENOTSUP;
    }
    st->ready = ready;
    st->ready_every_ms = values[OPT_READY_EVERY].is_set ? values[OPT_READY_EVERY].duration_ms : 250;
    if (st->ready_every_ms < 10) {
        snprintf(err, errlen, "ready_every: at least 10ms");
        return -EINVAL;
    }
    st->ready_timeout_ms = values[OPT_READY_TIMEOUT].is_set ? values[OPT_READY_TIMEOUT].duration_ms : 0;
    return 0;
}

/* The fleet for these options. Its processes are the daemon's children and cannot outlive it, so
 * on_stop: keep is refused; the fleet itself is always told "keep", because this plugin's stop()
 * stops every instance itself, in parallel, on a replacement as well (a new instance of the
 * scaler cannot adopt another instance's children). */
static int make_fleet(proc_state *st, const sb_value *values, sb_fleet **out, char *err,
                      size_t errlen)
{
    sb_value rows[SB_FLEET_OPTION_COUNT];
    memcpy(rows, &values[OPT_RECONCILE], sizeof rows);
    const char *on_stop = opt_string(&rows[1]);
    if (on_stop && strcmp(on_stop, "stop") != 0) {
        snprintf(err, errlen, "on_stop: only stop for process (its instances are the daemon's "
                              "children and cannot outlive it), got '%s'", on_stop);
        return -EINVAL;
    }
    rows[1].is_set = 1;
    rows[1].str = "keep";
    return sb_fleet_new(st->inst, st->host, rows, &process_fleet_ops, st, out, err, errlen);
}

static int fleet_rows_equal(const sb_value *a, const sb_value *b)
{
    for (int i = 0; i < SB_FLEET_OPTION_COUNT; i++) {
        if (a[i].is_set != b[i].is_set || a[i].duration_ms != b[i].duration_ms ||
            a[i].count != b[i].count || !same_string(a[i].str, b[i].str))
            return 0;
        for (size_t k = 0; k < a[i].count; k++)
            if (strcmp(a[i].items[k], b[i].items[k]) != 0)
                return 0;
    }
    return 1;
}

/* ---- Plugin callbacks -------------------------------------------------------------------- */

static void process_destroy(void *state);

static int process_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                          void **state, char *err, size_t errlen)
{
    *state = NULL;
    const sb_value *cmd = &values[OPT_COMMAND];
    int rc = check_command(cmd, err, errlen);
    if (rc != 0)
        return rc;
    if (!SB_HOST_HAS(host, spawn) || !SB_HOST_HAS(host, kill_group)) {
        snprintf(err, errlen,
                 "this daemon cannot start processes for plugins (host table version %u has no "
                 "spawn/kill_group)",
                 (unsigned)host->version);
        return -ENOTSUP;
    }
    proc_state *st = calloc(1, sizeof *st);
    if (!st) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    st->inst = inst;
    st->host = host;
    st->host_indexes = SB_HOST_HAS(host, index_claim) && SB_HOST_HAS(host, index_release);
    const char *id = host->instance_id(inst);
    st->id = id ? id : "process";
    st->workdir = opt_string(&values[OPT_WORKDIR]);
    st->want_port = values[OPT_PORT].is_set && values[OPT_PORT].integer != 0;
    take_soft_options(st, values);
    st->values = values;
    st->desired = -1;
    rc = take_ready_options(st, values, err, errlen);
    if (rc == 0)
        rc = make_fleet(st, values, &st->fleet, err, errlen);
    if (rc != 0) {
        process_destroy(st);
        return rc;
    }
    *state = st;
    return SB_OK;
}

static int process_start(void *state)
{
    proc_state *st = state;
    st->dry_run = st->host->dry_run(st->inst) == 1;
    if (!st->dry_run)
        make_log_dir(st);
    st->started = 1;
    if (st->ready) {
        st->probe_timer =
            st->host->timer_new(st->inst, st->ready_every_ms, st->ready_every_ms, probe_tick, st);
        if (!st->probe_timer)
            return -ENOMEM;
    }
    return sb_fleet_start(st->fleet);
}

static int process_stop(void *state)
{
    proc_state *st = state;
    if (!st->stopping) {
        st->stopping = 1;
        (void)sb_fleet_stop(st->fleet); /* "keep": its timers and any call in flight end here */
        if (st->probe_timer) {
            st->host->timer_free(st->probe_timer);
            st->probe_timer = NULL;
        }
        if (st->quick_timer) {
            st->host->timer_free(st->quick_timer);
            st->quick_timer = NULL;
        }
        /* Every instance at once, each with its grace. */
        for (size_t i = st->nslots; i-- > 0;)
            if (st->slots[i]->state != SLOT_STOPPING && slot_stop(st, st->slots[i]))
                continue;
    }
    if (st->nslots == 0 && !st->runs)
        return SB_OK;
    st->stop_pending = 1;
    return SB_PENDING;
}

static void process_destroy(void *state)
{
    proc_state *st = state;
    if (!st)
        return;
    /* Normally empty after stop; if not (a failed start, a host error path), leave no orphans.
     * The host also kills what is left of our groups and never calls on_child_exit again. */
    while (st->runs) {
        run *r = st->runs;
        (void)st->host->kill_group(st->inst, r->pid, SIGKILL);
        r->s = NULL;
        run_free(st, r);
    }
    sb_fleet_free(st->fleet);
    if (st->probe_timer)
        st->host->timer_free(st->probe_timer);
    if (st->quick_timer)
        st->host->timer_free(st->quick_timer);
    for (size_t i = 0; i < st->nslots; i++) {
        slot_cancel_timer(st->slots[i]);
        slot_cancel_probe(st, st->slots[i]);
        free(st->slots[i]);
    }
    free(st->slots);
    free(st);
}

/* On a reload: env, stop_grace, log_dir, the readiness probe and the fleet's options are taken in
 * place (for instances started from now on; stop_grace also for stops from now on). A new
 * command, workdir or port setting replaces the scaler: running instances would no longer match
 * what the file says. */
static int process_reconfigure(void *state, const sb_value *values, char *err, size_t errlen)
{
    proc_state *st = state;
    const sb_value *cmd = &values[OPT_COMMAND];
    int rc = check_command(cmd, err, errlen);
    if (rc != 0)
        return rc;
    const sb_value *old_cmd = &st->values[OPT_COMMAND];
    if (cmd->count != old_cmd->count)
        return SB_RECONFIGURE_REPLACE;
    for (size_t i = 0; i < cmd->count; i++)
        if (strcmp(cmd->items[i], old_cmd->items[i]) != 0)
            return SB_RECONFIGURE_REPLACE;
    const char *workdir = opt_string(&values[OPT_WORKDIR]);
    int want_port = values[OPT_PORT].is_set && values[OPT_PORT].integer != 0;
    if (!same_string(workdir, st->workdir) || want_port != st->want_port)
        return SB_RECONFIGURE_REPLACE;
    /* Checked before anything is taken, so a bad value leaves the running scaler as it was. */
    const char *old_ready = st->ready;
    uint64_t old_every = st->ready_every_ms, old_timeout = st->ready_timeout_ms;
    rc = take_ready_options(st, values, err, errlen);
    if (rc != 0) {
        st->ready = old_ready;
        st->ready_every_ms = old_every;
        st->ready_timeout_ms = old_timeout;
        return rc;
    }
    sb_fleet *fleet = NULL;
    if (!fleet_rows_equal(&values[OPT_RECONCILE], &st->values[OPT_RECONCILE])) {
        rc = make_fleet(st, values, &fleet, err, errlen);
        if (rc != 0) {
            st->ready = old_ready;
            st->ready_every_ms = old_every;
            st->ready_timeout_ms = old_timeout;
            return rc;
        }
    }
    /* Taken: every pointer moves to the new storage (the old one is freed after we return). */
    const char *old_log_dir = st->log_dir;
    int log_dir_changed = !same_string(opt_string(&values[OPT_LOG_DIR]), old_log_dir);
    st->workdir = workdir;
    st->values = values;
    take_soft_options(st, values);
    if (log_dir_changed && st->started && !st->dry_run)
        make_log_dir(st);
    /* The probe: re-armed at the new pace; without one, every running instance is ready. */
    if (st->probe_timer) {
        st->host->timer_free(st->probe_timer);
        st->probe_timer = NULL;
    }
    for (size_t i = 0; !st->ready && i < st->nslots; i++)
        if (st->slots[i]->state == SLOT_RUNNING)
            st->slots[i]->ready = 1;
    if (st->ready && st->started && !st->stopping)
        st->probe_timer =
            st->host->timer_new(st->inst, st->ready_every_ms, st->ready_every_ms, probe_tick, st);
    if (fleet) {
        /* A new fleet adopts the slots as they are and goes on toward the last desired count. */
        sb_fleet_free(st->fleet);
        st->fleet = fleet;
        if (st->started && !st->stopping) {
            sb_fleet_start(fleet);
            if (st->desired >= 0) {
                sb_event ev = {.size = sizeof ev, .topic = SB_TOPIC_DESIRED,
                               .value = (double)st->desired};
                sb_fleet_on_event(fleet, &ev);
            }
        }
    } else {
        publish_list(st);
    }
    return SB_OK;
}

static void process_on_event(void *state, const sb_event *ev)
{
    proc_state *st = state;
    if (!ev->topic || strcmp(ev->topic, SB_TOPIC_DESIRED) != 0)
        return;
    sb_event copy = *ev;
    if (ev->value > MAX_INSTANCES) {
        st->host->log(st->inst, SB_LOG_WARN, "desired %.0f capped at %d instances", ev->value,
                      MAX_INSTANCES);
        copy.value = MAX_INSTANCES;
    }
    for (size_t i = 0; i < ev->nlabels; i++) {
        if (strcmp(ev->labels[i].key, SB_LABEL_INITIAL) != 0)
            continue;
        /* A replacement cannot adopt the children of the instance it replaces, nor a restarted
         * daemon those of the last one: the count that instance had (or the state file kept) is
         * the count to start. The first count of a new scaler is the floor. */
        if (strcmp(ev->labels[i].value, "replaced") == 0 ||
            strcmp(ev->labels[i].value, "restored") == 0) {
            copy.labels = NULL;
            copy.nlabels = 0;
        }
        break;
    }
    if (!copy.nlabels && !isnan(copy.value) && copy.value >= 0)
        st->desired = (int64_t)(copy.value + 0.5);
    sb_fleet_on_event(st->fleet, &copy);
}

static const sb_plugin_descriptor process_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "process",
    .kind = SB_KIND_SCALER,
    .version = "2.0.0",
    .description = "runs N local copies of a command, restarting crashed ones with back-off",
    .options = process_options,
    .create = process_create,
    .start = process_start,
    .stop = process_stop,
    .destroy = process_destroy,
    .on_event = process_on_event,
    .next_fire_times = NULL,
    .reconfigure = process_reconfigure,
};

SB_PLUGIN_EXPORT(process_descriptor)
