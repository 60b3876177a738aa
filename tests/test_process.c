/*
 * test_process.c - the process scaler and the daemon's supervision of child processes.
 *
 * The scaler is driven through a real in-process daemon: a pipeline file with one `process`
 * scaler named "workers" (or many), desired counts sent with daemon_send(), and the instance
 * list watched through daemon_subscribe(). The supervisor (core/supervise.c) is also driven on
 * its own, in this process or in a forked "daemon" process that the test SIGKILLs or lets exit.
 * Assertions use facts from the OS (pids that exist or not, process groups read from /proc, what
 * each worker wrote about its environment); every wait is bounded, and no assertion puts an
 * upper bound on how long something takes. The process-group tests run with cgroups (where the
 * daemon can make them) and with process groups only (SCALEBUS_SUPERVISE=no-cgroup).
 *
 * Crash back-off is read off the shared fake host, whose timers run only when the test fires
 * them: the 60 s cap costs no waiting. Where a constant itself must be short (the reset after a
 * long run, a back-off that outlasts the test), the test build of the plugin is used
 * (SB_PROCESS_TEST_PLUGIN_DIR, with SB_TEST_BACKOFF_*_MS; tests/cmake/supervision.cmake).
 *
 * The worker is tests/process/worker.sh; each run writes OUT/w.<pid> with its
 * SCALEBUS_INSTANCE, PORT, pid, SCALEBUS_SCALER and SB_TEST_EXTRA.
 *
 * waitpid() and waitid() are wrapped below (the executable exports them, so the process plugin
 * would call them too): the reaper test counts how many calls one child's exit costs.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <cJSON.h>
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"
#include "fake_host.h"
#include "supervise.h"

#define WORKER SB_SOURCE_DIR "/tests/process/worker.sh"
#define MAX_VIEW 16
#define MAX_REC 64
#define MAX_NOTED 64

extern char **environ;

/* ---- counting wait calls -------------------------------------------------------------------- */

static unsigned long wait_calls;

pid_t waitpid(pid_t pid, int *status, int options)
{
    static pid_t (*real)(pid_t, int *, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "waitpid");
    wait_calls++;
    return real(pid, status, options);
}

int waitid(idtype_t idtype, id_t id, siginfo_t *info, int options)
{
    static int (*real)(idtype_t, id_t, siginfo_t *, int);
    if (!real)
        *(void **)&real = dlsym(RTLD_NEXT, "waitid");
    wait_calls++;
    return real(idtype, id, info, options);
}

/* The newest instance list the scaler published. */
typedef struct inst_view {
    int index, pid, port, restarts, crash_loop;
    char state[16];
    char error[256];
} inst_view;

typedef struct watch {
    inst_view v[MAX_VIEW];
    int n;
    int running; /* the event's value */
    int events;
} watch;

/* One worker run, from its OUT/w.<pid> file. */
typedef struct record {
    int index, port, pid;
    char scaler[64], extra[64];
} record;

typedef struct harness {
    uv_loop_t loop;
    int loop_init;
    sb_daemon *d;
    char dir[64];
    char out[128];
    char logs[128];
    char conf[128];
    watch w;
    int stop_done;
    pid_t child;          /* a daemon (or supervisor) running in a forked process */
    supervisor *sup;      /* a supervisor test's own */
    int noted[MAX_NOTED]; /* other processes the test started, ended by teardown if alive */
    int nnoted;
} harness;

static harness H;

/* ---- helpers ---------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Gone, or a zombie nobody has reaped yet (it runs no code and holds no port). */
static int pid_gone(int pid)
{
    if (kill(pid, 0) != 0 && errno == ESRCH)
        return 1;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && paren[1] == ' ' && (paren[2] == 'Z' || paren[2] == 'X');
}

static void on_instances(void *arg, const sb_event *ev)
{
    watch *w = arg;
    w->events++;
    w->running = (int)ev->value;
    w->n = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, ev->payload)
    {
        if (w->n == MAX_VIEW)
            break;
        inst_view *v = &w->v[w->n++];
        memset(v, 0, sizeof *v);
        const cJSON *x;
        v->index = (x = cJSON_GetObjectItemCaseSensitive(item, "index")) && cJSON_IsNumber(x)
                       ? x->valueint
                       : -1;
        v->pid = (x = cJSON_GetObjectItemCaseSensitive(item, "pid")) && cJSON_IsNumber(x)
                     ? x->valueint
                     : 0;
        v->port = (x = cJSON_GetObjectItemCaseSensitive(item, "port")) && cJSON_IsNumber(x)
                      ? x->valueint
                      : 0;
        v->restarts = (x = cJSON_GetObjectItemCaseSensitive(item, "restarts")) && cJSON_IsNumber(x)
                          ? x->valueint
                          : -1;
        if ((x = cJSON_GetObjectItemCaseSensitive(item, "state")) && cJSON_IsString(x))
            snprintf(v->state, sizeof v->state, "%s", x->valuestring);
        v->crash_loop = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "crash_loop"));
        if ((x = cJSON_GetObjectItemCaseSensitive(item, "error")) && cJSON_IsString(x))
            snprintf(v->error, sizeof v->error, "%s", x->valuestring);
    }
}

static const inst_view *view_index(const watch *w, int index)
{
    for (int i = 0; i < w->n; i++)
        if (w->v[i].index == index)
            return &w->v[i];
    return NULL;
}

/* Every finished OUT/w.<pid> file. */
static int read_records(const char *out, record *recs, int max)
{
    DIR *dir = opendir(out);
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < max) {
        if (strncmp(de->d_name, "w.", 2) != 0 || strstr(de->d_name, ".tmp"))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", out, de->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        record *r = &recs[n];
        if (fscanf(f, "%d %d %d %63s %63s", &r->index, &r->port, &r->pid, r->scaler, r->extra) == 5)
            n++;
        fclose(f);
    }
    closedir(dir);
    return n;
}

static const record *record_of(const record *recs, int n, int pid)
{
    for (int i = 0; i < n; i++)
        if (recs[i].pid == pid)
            return &recs[i];
    return NULL;
}

static int count_records(const char *out)
{
    record recs[MAX_REC];
    return read_records(out, recs, MAX_REC);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* ---- running the loop ------------------------------------------------------------------- */

typedef int (*pred_fn)(void *arg);

typedef struct waiter {
    pred_fn pred;
    void *arg;
    uint64_t deadline;
    int ok;
} waiter;

static void wait_tick(uv_timer_t *t)
{
    waiter *w = t->data;
    if (w->pred && w->pred(w->arg)) {
        w->ok = 1;
        uv_stop(t->loop);
    } else if (uv_now(t->loop) >= w->deadline) {
        uv_stop(t->loop);
    }
}

/* Run `loop` until pred holds (returns 1) or timeout_ms passes (returns 0). A NULL pred runs the
 * loop for the whole time: an observation window, not a synchronisation. */
static int run_loop_until(uv_loop_t *loop, pred_fn pred, void *arg, uint64_t timeout_ms)
{
    if (pred && pred(arg))
        return 1;
    waiter w = {pred, arg, 0, 0};
    uv_timer_t t;
    uv_timer_init(loop, &t);
    t.data = &w;
    uv_update_time(loop);
    w.deadline = uv_now(loop) + timeout_ms;
    uv_timer_start(&t, wait_tick, 10, 10);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT); /* let the close finish before t leaves scope */
    return w.ok;
}

/* The same on the daemon's loop. */
static int run_until(pred_fn pred, void *arg, uint64_t timeout_ms)
{
    return run_loop_until(&H.loop, pred, arg, timeout_ms);
}

/* ---- the daemon under test -------------------------------------------------------------- */

/* stop_grace of the next daemon the test starts (500ms unless a test says otherwise). */
static const char *next_grace = "500ms";
/* SB_TEST_EXTRA of the instances of the next file written. */
static const char *next_extra = "hello";

static void write_config(const char *command, const char *extra)
{
    FILE *f = fopen(H.conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "scalers:\n"
            "  - id: workers\n"
            "    type: process\n"
            "    command: [%s]\n"
            "    min: 0\n"
            "    max: 5\n"
            "    stop_grace: %s\n"
            "    port: true\n"
            "    log_dir: %s\n"
            "    env: {SB_TEST_EXTRA: %s}\n"
            "%s",
            command, next_grace, H.logs, next_extra, extra ? extra : "");
    fclose(f);
}

static void make_dirs(void)
{
    memset(&H, 0, sizeof H);
    snprintf(H.dir, sizeof H.dir, "/tmp/sbproc.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(H.dir));
    snprintf(H.out, sizeof H.out, "%s/out", H.dir);
    snprintf(H.logs, sizeof H.logs, "%s/logs", H.dir);
    snprintf(H.conf, sizeof H.conf, "%s/pipeline.yaml", H.dir);
    ck_assert_int_eq(mkdir(H.out, 0755), 0);
}

/* The folder the daemon under test loads process.so from: the real plugin, or the test build
 * whose back-off constants come from SB_TEST_BACKOFF_*_MS (tests/cmake/supervision.cmake). */
static const char *plugin_dir = SB_PLUGIN_BUILD_DIR;

static sb_daemon *start_daemon(uv_loop_t *loop, const char *conf, int dry_run)
{
    const char *dirs[] = {plugin_dir};
    daemon_options opts;
    memset(&opts, 0, sizeof opts);
    opts.dry_run = dry_run;
    opts.plugin_dirs = dirs;
    opts.nplugin_dirs = 1;
    opts.log_level = SB_LOG_INFO;
    opts.log_level_set = 1;
    sb_daemon *d = daemon_new(loop, &opts);
    if (!d)
        return NULL;
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(d, conf, &errs);
    if (rc != 0)
        config_errors_print(&errs, stderr);
    config_errors_free(&errs);
    if (rc != 0) {
        daemon_free(d);
        return NULL;
    }
    return d;
}

/* A daemon running the scaler with `command` (YAML flow-sequence items); make_dirs() first. */
static void launch(const char *command, const char *extra, int dry_run)
{
    write_config(command, extra);
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    H.loop_init = 1;
    H.d = start_daemon(&H.loop, H.conf, dry_run);
    ck_assert_ptr_nonnull(H.d);
    ck_assert_int_eq(daemon_subscribe(H.d, "workers", SB_TOPIC_INSTANCES, on_instances, &H.w), 0);
}

static void on_stop_done(void *arg)
{
    (void)arg;
    H.stop_done = 1;
}

static int stop_done_pred(void *arg)
{
    (void)arg;
    return H.stop_done;
}

/* Stop and free the daemon; returns how long the stop took, in seconds. */
static double stop_daemon(void)
{
    double t0 = now_s();
    daemon_stop(H.d, on_stop_done, NULL);
    ck_assert_msg(run_until(stop_done_pred, NULL, 10000), "daemon_stop did not finish in 10s");
    double took = now_s() - t0;
    daemon_free(H.d);
    H.d = NULL;
    uv_run(&H.loop, UV_RUN_DEFAULT); /* finish closing the daemon's handles */
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    H.loop_init = 0;
    return took;
}

/* Checked teardown: runs after a failed assertion too. Ends only processes this test started
 * (the workers by the pids they recorded, the others by the pids the test noted), then removes
 * the temporary folder. */
static void teardown(void)
{
    if (H.d) {
        record recs[MAX_REC];
        int n = read_records(H.out, recs, MAX_REC);
        for (int i = 0; i < n; i++)
            if (!pid_gone(recs[i].pid))
                kill(recs[i].pid, SIGKILL);
        /* The daemon and loop are left as they are: the test has already failed. */
    }
    if (H.child > 0) {
        /* Its workers die with it (that is what the tests are about). */
        kill(H.child, SIGKILL);
        waitpid(H.child, NULL, 0);
        H.child = 0;
    }
    if (H.sup) {
        /* A supervisor test that failed: this kills and reaps everything it spawned. */
        supervisor_free(H.sup);
        H.sup = NULL;
        uv_run(&H.loop, UV_RUN_DEFAULT);
    }
    for (int i = 0; i < H.nnoted; i++)
        if (!pid_gone(H.noted[i]))
            kill(H.noted[i], SIGKILL);
    H.nnoted = 0;
    /* What a test set for the daemons it starts (under CK_FORK=no the next test would see it). */
    unsetenv("SCALEBUS_SUPERVISE");
    unsetenv("SB_TEST_BACKOFF_FIRST_MS");
    unsetenv("SB_TEST_BACKOFF_MAX_MS");
    unsetenv("SB_TEST_BACKOFF_RESET_MS");
    plugin_dir = SB_PLUGIN_BUILD_DIR;
    if (H.dir[0])
        nftw(H.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    H.dir[0] = '\0';
}

/* ---- predicates ------------------------------------------------------------------------- */

typedef struct want {
    int running, n, records;
} want;

/* The list shows exactly w->n instances, w->running running, and OUT holds w->records files. */
static int list_is(void *arg)
{
    const want *w = arg;
    return H.w.n == w->n && H.w.running == w->running &&
           (w->records < 0 || count_records(H.out) >= w->records);
}

static int state_is(void *arg)
{
    const inst_view *v = view_index(&H.w, 0);
    return v && v->pid > 0 && strcmp(v->state, (const char *)arg) == 0;
}

static int pids_gone(void *arg)
{
    const int *pids = arg; /* 0-terminated */
    for (; *pids; pids++)
        if (!pid_gone(*pids))
            return 0;
    return 1;
}

/* ---- processes and groups, from /proc ----------------------------------------------------------
 */

/* State letter, parent, process group and session of pid; 0 when it cannot be read. */
static int proc_info(int pid, char *state, int *ppid, int *pgrp, int *sid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *paren = strrchr(buf, ')');
    return paren && sscanf(paren + 1, " %c %d %d %d", state, ppid, pgrp, sid) == 4;
}

typedef enum { BY_PGRP, BY_PPID } proc_key;

/* Live (not zombie) processes whose process group (or parent) is `value`. */
static int find_procs(proc_key key, int value, int *pids, int max)
{
    DIR *dir = opendir("/proc");
    if (!dir)
        return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)) != NULL && n < max) {
        char *end;
        long pid = strtol(de->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char state;
        int ppid, pgrp, sid;
        if (!proc_info((int)pid, &state, &ppid, &pgrp, &sid) || state == 'Z' || state == 'X')
            continue;
        if ((key == BY_PGRP ? pgrp : ppid) == value)
            pids[n++] = (int)pid;
    }
    closedir(dir);
    return n;
}

/* A process the test started some other way than through a worker record: teardown ends it. */
static void note(int pid)
{
    for (int i = 0; i < H.nnoted; i++)
        if (H.noted[i] == pid)
            return;
    if (H.nnoted < MAX_NOTED)
        H.noted[H.nnoted++] = pid;
}

typedef struct group_want {
    int pgid, n;
} group_want;

static int group_has(void *arg)
{
    const group_want *g = arg;
    int pids[16];
    return find_procs(BY_PGRP, g->pgid, pids, 16) >= g->n;
}

/* Wait (bounded, on the daemon's loop when there is one) until the group of pgid has n live
 * processes; note them all and return how many there are. */
static int wait_group(int pgid, int n, int *pids, int max)
{
    group_want g = {pgid, n};
    if (H.loop_init)
        run_until(group_has, &g, 10000);
    else
        for (int i = 0; i < 500 && !group_has(&g); i++)
            nap_ms(20);
    int got = find_procs(BY_PGRP, pgid, pids, max);
    for (int i = 0; i < got; i++)
        note(pids[i]);
    ck_assert_msg(got >= n, "process group %d: %d live processes, expected %d", pgid, got, n);
    return got;
}

/* Wait (bounded, without a loop) until every pid of the 0-terminated list is gone. */
static int wait_gone(const int *pids, double seconds)
{
    double t0 = now_s();
    while (!pids_gone((void *)pids) && now_s() - t0 < seconds)
        nap_ms(20);
    return pids_gone((void *)pids);
}

/* Fails the test, naming the first survivor, after ending every survivor by its pid: Check does
 * not run the teardown after a failed assertion in a forked test, and these are processes the
 * test started. */
static void assert_all_gone(const int *pids, int n, const char *what)
{
    int survivor = 0;
    for (int i = 0; i < n; i++) {
        if (!pid_gone(pids[i])) {
            if (!survivor)
                survivor = pids[i];
            kill(pids[i], SIGKILL);
        }
    }
    ck_assert_msg(survivor == 0, "process %d %s", survivor, what);
}

/* ---- tests ------------------------------------------------------------------------------ */

/* A daemon running the worker in MODE, writing into the harness's OUT folder. */
static void setup_worker(const char *mode, const char *extra, int dry_run)
{
    make_dirs();
    char cmd[512];
    /* "sh" without a slash: found through PATH. */
    snprintf(cmd, sizeof cmd, "sh, '%s', '%s', %s", WORKER, H.out, mode);
    launch(cmd, extra, dry_run);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

typedef struct file_text {
    char path[256], text[64];
} file_text;

static int file_has_text(void *arg)
{
    const file_text *f = arg;
    return file_contains(f->path, f->text);
}

START_TEST(test_scale_up_down_clamp)
{
    setup_worker("term", NULL, 0);

    /* Up 0 -> 3. */
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 3), 0);
    want three = {3, 3, 3};
    ck_assert_msg(run_until(list_is, &three, 10000), "3 instances did not start (list %d/%d)",
                  H.w.running, H.w.n);
    record recs[MAX_REC];
    int nrec = read_records(H.out, recs, MAX_REC);
    ck_assert_int_eq(nrec, 3);
    int seen_index[3] = {0, 0, 0};
    int pids[3];
    for (int i = 0; i < 3; i++) {
        const inst_view *v = view_index(&H.w, i);
        ck_assert_ptr_nonnull(v);
        ck_assert_str_eq(v->state, "ready");
        ck_assert_int_gt(v->pid, 0);
        ck_assert_int_eq(kill(v->pid, 0), 0);
        const record *r = record_of(recs, nrec, v->pid);
        ck_assert_msg(r != NULL, "no record from pid %d", v->pid);
        ck_assert_int_eq(r->index, i);
        ck_assert_int_gt(r->port, 0);
        ck_assert_int_eq(r->port, v->port);
        ck_assert_str_eq(r->scaler, "workers");
        ck_assert_str_eq(r->extra, "hello");
        seen_index[r->index]++;
        pids[i] = v->pid;
    }
    ck_assert(seen_index[0] == 1 && seen_index[1] == 1 && seen_index[2] == 1);
    ck_assert(recs[0].port != recs[1].port && recs[0].port != recs[2].port &&
              recs[1].port != recs[2].port);

    /* Output went to LOG_DIR/<id>.<index>.out and .err (the worker writes it just after its
     * record: wait for it, bounded). */
    file_text want_out, want_err;
    snprintf(want_out.path, sizeof want_out.path, "%s/workers.1.out", H.logs);
    snprintf(want_out.text, sizeof want_out.text, "stdout of %d", pids[1]);
    ck_assert_msg(run_until(file_has_text, &want_out, 10000), "%s lacks '%s'", want_out.path,
                  want_out.text);
    snprintf(want_err.path, sizeof want_err.path, "%s/workers.1.err", H.logs);
    snprintf(want_err.text, sizeof want_err.text, "stderr of %d", pids[1]);
    ck_assert_msg(run_until(file_has_text, &want_err, 10000), "%s lacks '%s'", want_err.path,
                  want_err.text);

    /* Down 3 -> 1: the newest two (indices 2 and 1) go, index 0 stays. */
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, -1};
    ck_assert_msg(run_until(list_is, &one, 10000), "did not scale down to 1");
    ck_assert_ptr_nonnull(view_index(&H.w, 0));
    ck_assert_int_eq(view_index(&H.w, 0)->pid, pids[0]);
    int gone[] = {pids[1], pids[2], 0};
    ck_assert_msg(run_until(pids_gone, gone, 5000), "stopped instances still exist");
    ck_assert_int_eq(kill(pids[0], 0), 0);

    /* 99 is held to max (5), with indices 0..4. */
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 99), 0);
    want five = {5, 5, 7}; /* records: 3 from the first scale-up, 4 new */
    ck_assert_msg(run_until(list_is, &five, 10000), "did not scale to max (list %d/%d)",
                  H.w.running, H.w.n);
    int all[6] = {0};
    for (int i = 0; i < 5; i++) {
        const inst_view *v = view_index(&H.w, i);
        ck_assert_ptr_nonnull(v);
        ck_assert_int_eq(kill(v->pid, 0), 0);
        all[i] = v->pid;
    }
    ck_assert_int_eq(H.w.n, 5);

    /* No orphans on a daemon stop. */
    stop_daemon();
    ck_assert_msg(pids_gone(all), "workers outlived daemon_stop");
}
END_TEST

static int first_record(void *arg)
{
    (void)arg;
    return count_records(H.out) >= 1;
}

static int failed_state(void *arg)
{
    (void)arg;
    const inst_view *v = view_index(&H.w, 0);
    return v && strcmp(v->state, "failed") == 0 && v->crash_loop;
}

START_TEST(test_crash_backoff)
{
    setup_worker("crash", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(first_record, NULL, 10000), "the worker never ran");
    double t0 = now_s();

    /* An observation window: with back-off 1 s, 2 s, ... at most 2-3 restarts fit in ~3 s. */
    run_until(NULL, NULL, 3200);
    int starts = count_records(H.out);
    ck_assert_msg(starts >= 2, "crashed worker was not restarted (%d starts)", starts);
    ck_assert_msg(starts - 1 <= 3, "tight restart loop: %d restarts in ~3s", starts - 1);
    const inst_view *v = view_index(&H.w, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_msg(strstr(v->error, "exit status 1") != NULL, "error was '%s'", v->error);

    /* Five quick crashes in a row (restarts after 1+2+4+8 s) mark it failed; it is still
     * being restarted, never in a tight loop. */
    ck_assert_msg(run_until(failed_state, NULL, 25000), "never reported as failed");
    double took = now_s() - t0;
    ck_assert_int_eq(count_records(H.out), 5);
    ck_assert_msg(took > 13.0, "5 crashes took only %.1fs", took);
    ck_assert_int_eq(view_index(&H.w, 0)->restarts, 4);
    ck_assert_int_eq(view_index(&H.w, 0)->pid, 0);
    stop_daemon();
}
END_TEST

static int list_empty(void *arg)
{
    (void)arg;
    return H.w.events > 0 && H.w.n == 0;
}

/* Scale 1 -> 0 and time how long the instance took to go. */
static double time_scale_down(int *pid_out)
{
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, 1};
    ck_assert_msg(run_until(list_is, &one, 10000), "worker did not start");
    int pid = view_index(&H.w, 0)->pid;
    double t0 = now_s();
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 0), 0);
    ck_assert_msg(run_until(list_empty, NULL, 10000), "worker did not stop");
    *pid_out = pid;
    return now_s() - t0;
}

START_TEST(test_stop_grace)
{
    int pid;
    /* Ignores SIGTERM: SIGKILLed once stop_grace (500 ms) has passed. */
    setup_worker("ignore", NULL, 0);
    double took = time_scale_down(&pid);
    ck_assert_msg(took >= 0.45, "SIGTERM-ignoring worker gone after only %.3fs", took);
    ck_assert(pid_gone(pid));
    stop_daemon();
    teardown();

    /* Honours SIGTERM: gone without waiting for the grace. A 60 s grace makes that visible
     * without a tight time bound: only SIGKILL after the grace could take that long. */
    next_grace = "60s";
    setup_worker("term", NULL, 0);
    next_grace = "500ms";
    took = time_scale_down(&pid);
    ck_assert_msg(took < 30.0, "SIGTERM-honouring worker waited for the grace (%.3fs)", took);
    ck_assert(pid_gone(pid));

    /* And on a daemon stop, a SIGTERM-ignoring worker is also SIGKILLed after the grace. */
    stop_daemon();
    teardown();
    setup_worker("ignore", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 2), 0);
    want two = {2, 2, 2};
    ck_assert_msg(run_until(list_is, &two, 10000), "workers did not start");
    int pids[3] = {H.w.v[0].pid, H.w.v[1].pid, 0};
    took = stop_daemon();
    ck_assert_msg(took >= 0.45, "daemon stop took only %.3fs", took);
    ck_assert_msg(pids_gone(pids), "workers outlived daemon_stop");
}
END_TEST

/* The daemon runs in a child process that we SIGKILL: its workers must die with it. */
static void run_daemon_child(const char *conf)
{
    /* Never outlive the test, and never run forever. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(60);
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0)
        _exit(2);
    sb_daemon *d = start_daemon(&loop, conf, 0);
    if (!d || daemon_send(d, "workers", SB_TOPIC_DESIRED, 2) != 0)
        _exit(3);
    uv_run(&loop, UV_RUN_DEFAULT);
    _exit(4);
}

START_TEST(test_no_orphans_on_sigkill)
{
    make_dirs();
    char cmd[512];
    /* Each worker starts a second process in its group: neither may outlive the daemon. */
    snprintf(cmd, sizeof cmd, "sh, '%s', '%s', group", WORKER, H.out);
    write_config(cmd, NULL);
    fflush(NULL);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0)
        run_daemon_child(H.conf);
    H.child = child;

    /* Wait (bounded) for both workers to record their pids. */
    record recs[MAX_REC];
    int n = 0;
    double t0 = now_s();
    while ((n = read_records(H.out, recs, MAX_REC)) < 2 && now_s() - t0 < 20.0) {
        int status;
        if (waitpid(child, &status, WNOHANG) == child) {
            H.child = 0;
            ck_abort_msg("daemon child exited early (status 0x%x)", (unsigned)status);
        }
        nap_ms(20);
    }
    ck_assert_int_eq(n, 2);
    int pids[17], np = 0;
    for (int i = 0; i < 2; i++)
        np += wait_group(recs[i].pid, 2, pids + np, 8);
    pids[np] = 0;
    ck_assert_int_eq(np, 4);

    ck_assert_int_eq(kill(child, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    H.child = 0;
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    wait_gone(pids, 10.0);
    assert_all_gone(pids, np, "of a worker's group outlived its SIGKILLed daemon");
}
END_TEST

static int exec_failure_seen(void *arg)
{
    const inst_view *v = view_index(&H.w, 0);
    return v && v->pid == 0 && strstr(v->error, (const char *)arg) != NULL &&
           (strcmp(v->state, "backoff") == 0 || strcmp(v->state, "failed") == 0);
}

START_TEST(test_exec_failure)
{
    make_dirs();
    char extra[256];
    snprintf(extra, sizeof extra, "    workdir: %s\n", H.dir);
    launch("./nope, --flag", extra, 0);

    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    const char *msg = "cannot run './nope': No such file or directory";
    ck_assert_msg(run_until(exec_failure_seen, (void *)msg, 10000), "no exec failure reported");
    /* Listed as failed, and still counted toward the desired count: it is being restarted (no
     * second instance is started beside it). */
    ck_assert_str_eq(view_index(&H.w, 0)->state, "failed");
    ck_assert_int_eq(H.w.n, 1);
    /* Backed off like a crash: 1 s, 2 s, ... so at most 3 retries in ~3 s. */
    run_until(NULL, NULL, 3200);
    const inst_view *v = view_index(&H.w, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_msg(v->restarts >= 1 && v->restarts <= 3, "%d retries in ~3s", v->restarts);
    ck_assert_str_eq(v->error, msg);
    /* The program appears: the next retry starts it, with the daemon running throughout. */
    char path[256];
    snprintf(path, sizeof path, "%s/nope", H.dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("#!/bin/sh\nexec sleep 600\n", f);
    fclose(f);
    ck_assert_int_eq(chmod(path, 0755), 0);
    ck_assert_msg(run_until(state_is, "ready", 15000), "not started once the program exists");
    note(view_index(&H.w, 0)->pid);
    stop_daemon();
}
END_TEST

START_TEST(test_path_lookup_failure)
{
    make_dirs();
    launch("sb-no-such-program-anywhere", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(exec_failure_seen,
                            (void *)"cannot run 'sb-no-such-program-anywhere': not found in PATH",
                            10000),
                  "no PATH failure reported");
    stop_daemon();
}
END_TEST

START_TEST(test_dry_run)
{
    setup_worker("term", NULL, 1);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 3), 0);
    /* Nothing to wait for: give a real spawn ample time to show up, then look. */
    run_until(first_record, NULL, 1500);
    ck_assert_int_eq(count_records(H.out), 0);
    ck_assert_int_eq(H.w.n, 0); /* the instance list says nothing runs */
    struct stat sb;
    ck_assert_msg(stat(H.logs, &sb) != 0, "dry run created log_dir");
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    run_until(NULL, NULL, 200);
    stop_daemon();
    ck_assert_int_eq(count_records(H.out), 0);
}
END_TEST

/* ---- the supervisor on its own -----------------------------------------------------------------
 */

/* The supervision tests run in each mode: what this machine offers (cgroup v2 when the daemon can
 * make cgroups, pidfds), process groups only, and SIGCHLD reaping. */
static const unsigned sup_modes[] = {0, SUPERVISE_NO_CGROUP, SUPERVISE_NO_PIDFD};
static const char *const sup_mode_names[] = {"default", "no-cgroup", "no-pidfd"};

typedef struct exit_rec {
    int calls;
    int64_t pid;
    int status;
    int empty[2];
} exit_rec;

static void on_exit_rec(void *arg, int64_t pid, int status, int group_empty)
{
    exit_rec *r = arg;
    if (r->calls < 2)
        r->empty[r->calls] = group_empty;
    r->calls++;
    r->pid = pid;
    r->status = status;
}

static int second_call(void *arg)
{
    return ((const exit_rec *)arg)->calls >= 2;
}

static int exited_once(void *arg)
{
    return ((const exit_rec *)arg)->calls >= 1;
}

static void sup_setup(int mode)
{
    make_dirs();
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    H.loop_init = 1;
    H.sup = supervisor_new(&H.loop);
    ck_assert_ptr_nonnull(H.sup);
    supervisor_disable(H.sup, sup_modes[mode]);
}

static void sup_finish(void)
{
    supervisor_free(H.sup);
    H.sup = NULL;
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    H.loop_init = 0;
}

static int sup_spawn_sh(supervisor *s, void *owner, const char *script, exit_rec *rec, int64_t *pid,
                        char *err, size_t errlen)
{
    char *argv[] = {(char *)"sh", (char *)"-c", (char *)script, NULL};
    sb_spawn req = {SB_SPAWN_INIT, .path = "/bin/sh", .argv = argv, .envp = environ};
    return supervisor_spawn(s, owner, &req, rec ? on_exit_rec : NULL, rec, pid, err, errlen);
}

static int64_t sup_spawn_ok(void *owner, const char *script, exit_rec *rec)
{
    char err[256];
    int64_t pid = 0;
    int rc = sup_spawn_sh(H.sup, owner, script, rec, &pid, err, sizeof err);
    ck_assert_msg(rc == 0, "spawn: %s", err);
    ck_assert_int_gt(pid, 0);
    note((int)pid);
    return pid;
}

START_TEST(test_sup_spawn_errors)
{
    sup_setup(0);
    int owner;
    char *argv[] = {(char *)"prog", NULL};
    char err[256];
    int64_t pid = 0;
    sb_spawn req = {SB_SPAWN_INIT, .path = "/bin/true", .argv = argv, .envp = environ};
    req.workdir = "/nonexistent-sb-dir";
    ck_assert_int_eq(supervisor_spawn(H.sup, &owner, &req, NULL, NULL, &pid, err, sizeof err),
                     -ENOENT);
    ck_assert_str_eq(err, "cannot change to workdir '/nonexistent-sb-dir': No such file or "
                          "directory");
    req.workdir = NULL;
    req.path = "/nonexistent-sb-dir/prog";
    ck_assert_int_eq(supervisor_spawn(H.sup, &owner, &req, NULL, NULL, &pid, err, sizeof err),
                     -ENOENT);
    ck_assert_str_eq(err, "cannot run '/nonexistent-sb-dir/prog': No such file or directory");
    req.size = 0;
    ck_assert_int_eq(supervisor_spawn(H.sup, &owner, &req, NULL, NULL, &pid, err, sizeof err),
                     -EINVAL);
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    ck_assert_int_eq((int)st.spawned, 0);
    ck_assert_int_eq((int)st.live, 0);
    ck_assert_int_eq(supervisor_kill_group(H.sup, &owner, 1, 0), -ESRCH); /* never ours */
    sup_finish();
}
END_TEST

static int stopped_pred(void *arg)
{
    return ((const fake_host *)arg)->stopped > 0;
}

/* A leader that ends on SIGTERM leaves a child that ignores it: the first callback says the
 * group is not empty, the child lives on, and the second callback comes once it is killed. */
START_TEST(test_sup_group_outlives_leader)
{
    sup_setup(_i);
    int owner, other;
    exit_rec rec = {0};
    int64_t leader =
        sup_spawn_ok(&owner, "trap 'exit 0' TERM; (trap '' TERM; exec sleep 300) & wait", &rec);
    int pids[8];
    int n = wait_group((int)leader, 2, pids, 8);
    ck_assert_int_eq(n, 2);
    int member = pids[0] == leader ? pids[1] : pids[0];

    ck_assert_int_eq(supervisor_kill_group(H.sup, &owner, leader, SIGTERM), 0);
    ck_assert_msg(run_until(exited_once, &rec, 10000), "[%s] no exit callback", sup_mode_names[_i]);
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_int_eq(rec.pid, leader);
    ck_assert(WIFEXITED(rec.status) && WEXITSTATUS(rec.status) == 0);
    ck_assert_int_eq(rec.empty[0], 0);
    ck_assert_msg(!pid_gone(member), "[%s] the group's other process went with its leader",
                  sup_mode_names[_i]);
    /* The group is still there, and still the owner's only. */
    ck_assert_int_eq(supervisor_kill_group(H.sup, &owner, leader, 0), 0);
    ck_assert_int_eq(supervisor_kill_group(H.sup, &other, leader, 0), -ESRCH);
    run_until(NULL, NULL, 100);
    ck_assert_int_eq(rec.calls, 1);

    ck_assert_int_eq(supervisor_kill_group(H.sup, &owner, leader, SIGKILL), 0);
    ck_assert_msg(run_until(second_call, &rec, 10000), "[%s] no second callback",
                  sup_mode_names[_i]);
    ck_assert_int_eq(rec.calls, 2);
    ck_assert_int_eq(rec.empty[1], 1);
    ck_assert(pid_gone(member));
    ck_assert_int_eq(supervisor_kill_group(H.sup, &owner, leader, 0), -ESRCH);
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    ck_assert_int_eq((int)st.live, 0);
    ck_assert_int_eq((int)st.exited, 1);
    if (sup_modes[_i] & SUPERVISE_NO_CGROUP)
        ck_assert_int_eq(st.cgroup, 0);
    if (sup_modes[_i] & SUPERVISE_NO_PIDFD)
        ck_assert_int_eq(st.pidfd, 0);
    sup_finish();
}
END_TEST

/* A leader whose group is empty when it exits: one callback, group_empty 1. */
START_TEST(test_sup_lone_leader)
{
    sup_setup(_i);
    int owner;
    exit_rec rec = {0};
    int64_t pid = sup_spawn_ok(&owner, "exit 3", &rec);
    ck_assert_msg(run_until(exited_once, &rec, 10000), "no exit callback");
    run_until(NULL, NULL, 100);
    ck_assert_int_eq(rec.calls, 1);
    ck_assert_int_eq(rec.pid, pid);
    ck_assert_int_eq(rec.empty[0], 1);
    ck_assert(WIFEXITED(rec.status) && WEXITSTATUS(rec.status) == 3);
    sup_finish();
}
END_TEST

typedef struct many {
    exit_rec rec[100];
} many;

static int one_exited(void *arg)
{
    return ((const exit_rec *)arg)->calls > 0;
}

/* One exit among 100 children costs one wait call with pidfds (a small constant without), and
 * only that child's callback runs. */
START_TEST(test_sup_reaper_o1)
{
    sup_setup(_i);
    static many m;
    memset(&m, 0, sizeof m);
    int64_t pids[100];
    for (int i = 0; i < 100; i++)
        pids[i] = sup_spawn_ok(&m.rec[i], "exec sleep 300", &m.rec[i]);
    run_until(NULL, NULL, 100);
    supervisor_stats before, after;
    supervisor_get_stats(H.sup, &before);
    unsigned long calls0 = wait_calls;
    ck_assert_int_eq(kill((pid_t)pids[37], SIGKILL), 0);
    ck_assert_msg(run_until(one_exited, &m.rec[37], 10000), "the killed child was not seen");
    supervisor_get_stats(H.sup, &after);
    unsigned long calls = wait_calls - calls0;
    for (int i = 0; i < 100; i++)
        if (i != 37)
            ck_assert_msg(m.rec[i].calls == 0, "child %d's callback ran for child 37's exit", i);
    ck_assert(WIFSIGNALED(m.rec[37].status) && WTERMSIG(m.rec[37].status) == SIGKILL);
    ck_assert_msg(calls <= 3, "[%s] one exit among 100 children took %lu wait calls",
                  sup_mode_names[_i], calls);
    if (after.pidfd)
        ck_assert_msg(after.wait_calls - before.wait_calls == 1, "%llu waits with pidfds",
                      (unsigned long long)(after.wait_calls - before.wait_calls));
    ck_assert_int_eq((int)after.live, 99);
    sup_finish(); /* SIGKILLs and reaps the other 99 */
    for (int i = 0; i < 100; i++)
        ck_assert(pid_gone((int)pids[i]));
}
END_TEST

/* A child the supervisor did not spawn is never reaped by it, even when it exits first. */
START_TEST(test_sup_foreign_child)
{
    sup_setup(_i);
    int owner;
    pid_t foreign = fork();
    ck_assert_int_ge(foreign, 0);
    if (foreign == 0)
        _exit(7);
    nap_ms(50); /* it is a zombie now, first in line */
    exit_rec rec = {0};
    sup_spawn_ok(&owner, "exit 3", &rec);
    ck_assert_msg(run_until(exited_once, &rec, 10000), "our child's exit was not seen");
    ck_assert(WIFEXITED(rec.status) && WEXITSTATUS(rec.status) == 3);
    int status = 0;
    ck_assert_int_eq(waitpid(foreign, &status, WNOHANG), foreign);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 7);
    sup_finish();
}
END_TEST

/* forget_owner: the owner's groups are killed and its callbacks never run; others carry on. */
START_TEST(test_sup_forget_owner)
{
    sup_setup(0);
    int a, b;
    exit_rec ra = {0}, rb = {0};
    int64_t pa = sup_spawn_ok(&a, "sleep 300 & exec sleep 300", &ra);
    int64_t pb = sup_spawn_ok(&b, "exec sleep 300", &rb);
    int members[8];
    int n = wait_group((int)pa, 2, members, 8);
    supervisor_forget_owner(H.sup, &a);
    int gone[9];
    memcpy(gone, members, (size_t)n * sizeof *gone);
    gone[n] = 0;
    ck_assert_msg(run_until(pids_gone, gone, 10000), "a forgotten owner's group is still there");
    ck_assert_int_eq(supervisor_kill_group(H.sup, &a, pa, 0), -ESRCH);
    ck_assert_int_eq(supervisor_kill_group(H.sup, &b, pb, SIGTERM), 0);
    ck_assert_msg(run_until(exited_once, &rb, 10000), "b's exit was not seen");
    run_until(NULL, NULL, 100);
    ck_assert_int_eq(ra.calls, 0);
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    ck_assert_int_eq((int)st.live, 0);
    sup_finish();
}
END_TEST

/* The watchdog: its own process group, deaf to the signals a terminal sends. */
START_TEST(test_sup_watchdog_signals)
{
    sup_setup(0);
    int owner;
    exit_rec rec = {0};
    sup_spawn_ok(&owner, "exec sleep 300", &rec);
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    int wd = (int)st.watchdog_pid;
    ck_assert_int_gt(wd, 0);
    ck_assert_int_eq(getpgid(wd), wd);
    ck_assert_int_ne(getpgid(wd), getpgrp());
    ck_assert_int_eq(kill(wd, SIGINT), 0);
    ck_assert_int_eq(kill(wd, SIGTERM), 0);
    ck_assert_int_eq(kill(wd, SIGHUP), 0);
    run_until(NULL, NULL, 200);
    ck_assert_msg(!pid_gone(wd), "the watchdog died of SIGINT, SIGTERM or SIGHUP");
    supervisor_get_stats(H.sup, &st);
    ck_assert_int_eq((int)st.watchdog_pid, wd);
    sup_finish(); /* it exits once our end of its socket is closed, and is reaped */
    ck_assert(pid_gone(wd));
}
END_TEST

/* ---- no process outlives its daemon ------------------------------------------------------------
 */

enum {
    WD_SIGKILL,          /* the "daemon" is SIGKILLed */
    WD_SIGKILL_NOCGROUP, /* the same with process groups only */
    WD_SIGKILL_NOPIDFD,  /* the same, reaping on SIGCHLD */
    WD_EXIT,             /* it calls exit(143), as `scalebus run` on a second signal */
    WD_REPLACED,         /* its watchdog was SIGKILLed and replaced before */
    WD_ESCAPEE,          /* a process that left the group with setsid (cgroup v2 only) */
    WD_VARIANTS
};

static const char *const wd_names[] = {"SIGKILL",   "SIGKILL, no cgroup", "SIGKILL, no pidfd",
                                       "exit(143)", "replaced watchdog",  "setsid escapee"};

static int wd_replaced(void *arg)
{
    const int64_t *old = arg;
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    return st.watchdog_pid != 0 && st.watchdog_pid != *old;
}

/* The forked "daemon": a loop, a supervisor, two groups of `sleep 300 & exec sleep 300` (and an
 * escapee), their pids written to outfd as "CGROUP P1 P2 P3", then it runs until killed (or,
 * WD_EXIT, until told to exit). */
static void wd_daemon(int variant, int outfd, int ctlfd)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    alarm(60);
    /* H was copied by fork; this process makes its own loop and supervisor in it. */
    H.sup = NULL;
    if (uv_loop_init(&H.loop) != 0)
        _exit(2);
    H.sup = supervisor_new(&H.loop);
    if (!H.sup)
        _exit(2);
    supervisor_disable(H.sup, variant == WD_SIGKILL_NOCGROUP  ? SUPERVISE_NO_CGROUP
                              : variant == WD_SIGKILL_NOPIDFD ? SUPERVISE_NO_PIDFD
                                                              : 0);
    char err[256];
    int64_t p[3] = {0, 0, 0};
    static int owner;
    for (int i = 0; i < 2; i++)
        if (sup_spawn_sh(H.sup, &owner, "sleep 300 & exec sleep 300", NULL, &p[i], err,
                         sizeof err) != 0)
            _exit(3);
    supervisor_stats st;
    supervisor_get_stats(H.sup, &st);
    int cg = st.cgroup == 1;
    if (variant == WD_ESCAPEE && cg &&
        sup_spawn_sh(H.sup, &owner, "setsid sleep 300 & exec sleep 300", NULL, &p[2], err,
                     sizeof err) != 0)
        _exit(3);
    if (variant == WD_REPLACED) {
        int64_t old = st.watchdog_pid;
        kill((pid_t)old, SIGKILL);
        if (!run_loop_until(&H.loop, wd_replaced, &old, 10000))
            _exit(5);
    }
    dprintf(outfd, "%d %lld %lld %lld\n", cg, (long long)p[0], (long long)p[1], (long long)p[2]);
    if (variant == WD_EXIT) {
        char c;
        while (read(ctlfd, &c, 1) < 0 && errno == EINTR) {
        }
        exit(143); /* atexit handlers, no supervisor_free: as main.c's fast exit */
    }
    for (;;)
        run_loop_until(&H.loop, NULL, NULL, 1000);
}

START_TEST(test_no_process_outlives_daemon)
{
    make_dirs();
    int out[2], ctl[2];
    ck_assert_int_eq(pipe(out), 0);
    ck_assert_int_eq(pipe(ctl), 0);
    fflush(NULL);
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        close(out[0]);
        close(ctl[1]);
        wd_daemon(_i, out[1], ctl[0]);
    }
    H.child = child;
    close(out[1]);
    close(ctl[0]);
    FILE *f = fdopen(out[0], "r");
    ck_assert_ptr_nonnull(f);
    int cg = 0;
    long long p[3] = {0, 0, 0};
    int got = fscanf(f, "%d %lld %lld %lld", &cg, &p[0], &p[1], &p[2]);
    fclose(f);
    ck_assert_msg(got == 4, "[%s] the daemon process did not report its children", wd_names[_i]);

    int pids[32], n = 0;
    for (int i = 0; i < 2; i++)
        n += wait_group((int)p[i], 2, pids + n, 8);
    if (_i == WD_ESCAPEE) {
        if (!cg) {
            fprintf(stderr, "note: cgroup v2 cannot be used here: the setsid escapee case does "
                            "not apply (process groups only)\n");
        } else {
            /* The escapee: a child of the third leader, once in a process group of its own. */
            int esc[4], ne = 0, found = 0;
            char state;
            int ppid, pgrp, sid;
            for (int t = 0; t < 500 && !found; t++) {
                ne = find_procs(BY_PPID, (int)p[2], esc, 4);
                found =
                    ne == 1 && proc_info(esc[0], &state, &ppid, &pgrp, &sid) && pgrp != (int)p[2];
                if (!found)
                    nap_ms(20);
            }
            ck_assert_msg(found, "no process escaped the third group with setsid");
            note(esc[0]);
            pids[n++] = esc[0];
            pids[n++] = (int)p[2];
        }
    }
    pids[n] = 0;
    ck_assert_int_ge(n, 4);

    int status;
    if (_i == WD_EXIT) {
        ck_assert_int_eq(write(ctl[1], "x", 1), 1);
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 143, "status 0x%x",
                      (unsigned)status);
    } else {
        ck_assert_int_eq(kill(child, SIGKILL), 0);
        ck_assert_int_eq(waitpid(child, &status, 0), child);
        ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    }
    H.child = 0;
    close(ctl[1]);
    wait_gone(pids, 15.0);
    char what[96];
    snprintf(what, sizeof what, "outlived its daemon (%s)", wd_names[_i]);
    assert_all_gone(pids, n, what);
}
END_TEST

/* ---- the scaler: process groups ----------------------------------------------------------------
 */

/* The process-group tests run in each mode the daemon has for its children: what this machine
 * offers (cgroup v2 where the daemon can make cgroups) and process groups only. With cgroups,
 * cgroup.kill would hide a SIGKILL that reached the main process only. */
static const char *const group_modes[] = {NULL, "no-cgroup"};

static void group_mode(int i)
{
    if (group_modes[i])
        ck_assert_int_eq(setenv("SCALEBUS_SUPERVISE", group_modes[i], 1), 0);
    else
        unsetenv("SCALEBUS_SUPERVISE");
}

static const char *group_mode_name(int i)
{
    return group_modes[i] ? group_modes[i] : "default";
}

/* Scaled down, an instance's whole group goes, gracefully: the main process and the process it
 * started both get SIGTERM (the started one writes a file when it does), then nothing is left. */
START_TEST(test_group_scale_down)
{
    group_mode(_i);
    make_dirs();
    char cmd[512], termfile[256];
    snprintf(termfile, sizeof termfile, "%s/child-term", H.out);
    snprintf(cmd, sizeof cmd,
             "sh, -c, '(trap \"echo term > %s; exit 0\" TERM; sleep 300 & wait) & exec sleep 300'",
             termfile);
    /* Long enough that the SIGKILL after it cannot be mistaken for the SIGTERM, short enough
     * that a SIGTERM that missed the group fails quickly. */
    next_grace = "2s";
    launch(cmd, NULL, 0);
    next_grace = "500ms";
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, -1};
    ck_assert_msg(run_until(list_is, &one, 10000), "the instance did not start");
    int leader = view_index(&H.w, 0)->pid;
    int pids[9];
    int n = wait_group(leader, 3, pids, 8); /* sleep, the subshell and its sleep */
    pids[n] = 0;
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 0), 0);
    int stopped = run_until(list_empty, NULL, 10000);
    run_until(pids_gone, pids, 10000);
    assert_all_gone(pids, n, "of the group outlived the instance's stop");
    ck_assert_msg(stopped, "[%s] the instance did not finish stopping", group_mode_name(_i));
    ck_assert_msg(access(termfile, F_OK) == 0,
                  "[%s] the process the instance started got no SIGTERM (only its main process "
                  "did)",
                  group_mode_name(_i));
    stop_daemon();
}
END_TEST

static int reaped(void *arg)
{
    int pid = *(const int *)arg;
    return kill(pid, 0) != 0 && errno == ESRCH;
}

/* stop_grace holds for the whole group: a main process that ends on SIGTERM leaves a child that
 * ignores it; the child is still there after the main process has gone, the instance still shows
 * as stopping, and the child is SIGKILLed once stop_grace has passed. */
START_TEST(test_grace_for_group)
{
    group_mode(_i);
    make_dirs();
    next_grace = "4s";
    launch("sh, -c, 'trap \"exit 0\" TERM; (trap \"\" TERM; exec sleep 300) & wait'", NULL, 0);
    next_grace = "500ms";
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, -1};
    ck_assert_msg(run_until(list_is, &one, 10000), "the instance did not start");
    int leader = view_index(&H.w, 0)->pid;
    int pids[8];
    int n = wait_group(leader, 2, pids, 8);
    ck_assert_int_eq(n, 2);
    int child = pids[0] == leader ? pids[1] : pids[0];

    double t0 = now_s();
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 0), 0);
    ck_assert_msg(run_until(reaped, &leader, 10000), "the main process did not end on SIGTERM");
    run_until(NULL, NULL, 300); /* what the daemon does on the exit has happened */
    ck_assert_msg(!pid_gone(child),
                  "the child was killed with its main process, before stop_grace");
    ck_assert_int_eq(H.w.n, 1);
    ck_assert_str_eq(view_index(&H.w, 0)->state, "stopping");

    int stopped = run_until(list_empty, NULL, 20000);
    double took = now_s() - t0;
    assert_all_gone(&child, 1, "outlived the instance's stop");
    ck_assert_msg(stopped, "[%s] the instance never finished stopping", group_mode_name(_i));
    ck_assert_msg(took >= 3.5, "the child was killed %.1fs after SIGTERM, before the 4s grace",
                  took);
    stop_daemon();
}
END_TEST

static int crashed_with_bg(void *arg)
{
    const char *bgfile = arg;
    const inst_view *v = view_index(&H.w, 0);
    return v && v->pid == 0 && strstr(v->error, "exit status 1") != NULL &&
           access(bgfile, F_OK) == 0;
}

/* An instance whose main process ends while it should be running: what it left in its group is
 * killed at once (no grace: nobody asked it to stop), and the instance goes into back-off. */
START_TEST(test_crash_kills_group)
{
    group_mode(_i);
    make_dirs();
    char cmd[512], bgfile[256];
    snprintf(bgfile, sizeof bgfile, "%s/bg", H.out);
    snprintf(cmd, sizeof cmd, "sh, -c, 'sleep 300 & echo $! > %s; exit 1'", bgfile);
    next_grace = "60s";
    launch(cmd, NULL, 0);
    next_grace = "500ms";
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(crashed_with_bg, bgfile, 10000), "no crash reported");
    FILE *f = fopen(bgfile, "r");
    ck_assert_ptr_nonnull(f);
    int bg = 0;
    ck_assert_int_eq(fscanf(f, "%d", &bg), 1);
    fclose(f);
    ck_assert_int_gt(bg, 0);
    note(bg);
    int gone[2] = {bg, 0};
    run_until(pids_gone, gone, 10000);
    assert_all_gone(&bg, 1, "was left running by its crashed instance");
    const inst_view *v = view_index(&H.w, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert(strcmp(v->state, "backoff") == 0 || strcmp(v->state, "failed") == 0);
    stop_daemon();
}
END_TEST

/* ---- the scaler: log files ----------------------------------------------------------------------
 */

static int symlink_refused(void *arg)
{
    const inst_view *v = view_index(&H.w, 0);
    return v && v->pid == 0 && strstr(v->error, (const char *)arg) != NULL &&
           strstr(v->error, "symbolic link") != NULL &&
           (strcmp(v->state, "backoff") == 0 || strcmp(v->state, "failed") == 0);
}

START_TEST(test_log_dir_safety)
{
    umask(022);
    /* A symbolic link planted where a log file goes: the target is untouched, the instance is
     * reported in back-off with an error naming the file. */
    make_dirs();
    ck_assert_int_eq(mkdir(H.logs, 0755), 0);
    char target[256], link[256];
    snprintf(target, sizeof target, "%s/precious", H.dir);
    snprintf(link, sizeof link, "%s/workers.0.out", H.logs);
    FILE *f = fopen(target, "w");
    ck_assert_ptr_nonnull(f);
    fputs("precious\n", f);
    fclose(f);
    ck_assert_int_eq(symlink(target, link), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh, '%s', '%s', term", WORKER, H.out);
    launch(cmd, NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(symlink_refused, link, 10000), "no refusal naming %s (error '%s')",
                  link, H.w.n ? H.w.v[0].error : "");
    ck_assert_int_eq(count_records(H.out), 0);
    struct stat sb;
    ck_assert_int_eq(stat(target, &sb), 0);
    ck_assert_int_eq((int)sb.st_size, 9);
    ck_assert_msg(file_contains(target, "precious\n"), "the link's target was written to");
    stop_daemon();
    teardown();

    /* A log_dir the scaler creates is 0750, its files 0640. */
    setup_worker("term", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, 1};
    ck_assert_msg(run_until(list_is, &one, 10000), "the worker did not start");
    ck_assert_int_eq(stat(H.logs, &sb), 0);
    ck_assert_int_eq((int)(sb.st_mode & 07777), 0750);
    const char *exts[] = {"out", "err"};
    for (int i = 0; i < 2; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/workers.0.%s", H.logs, exts[i]);
        ck_assert_int_eq(lstat(path, &sb), 0);
        ck_assert(S_ISREG(sb.st_mode));
        ck_assert_msg((sb.st_mode & 07777) == 0640, "%s has mode %o", path,
                      (unsigned)(sb.st_mode & 07777));
    }
    stop_daemon();
}
END_TEST

/* ---- the scaler: one reaper for many scalers
 * ------------------------------------------------------ */

#define NSCALERS 50
static watch many_w[NSCALERS];

static int all_running(void *arg)
{
    (void)arg;
    for (int i = 0; i < NSCALERS; i++)
        if (many_w[i].running != 1 || many_w[i].n != 1)
            return 0;
    return 1;
}

static int crash_seen(void *arg)
{
    const watch *w = arg;
    return w->n == 1 && w->v[0].pid == 0;
}

static int restarted(void *arg)
{
    const watch *w = arg;
    return w->n == 1 && w->running == 1 && w->v[0].restarts == 1 && w->v[0].pid > 0;
}

/* 50 process scalers with one instance each; one worker is killed: its exit costs the daemon a
 * constant number of wait calls (one with pidfds), not one per scaler, and only its own scaler
 * restarts it. */
START_TEST(test_reaper_many_scalers)
{
    make_dirs();
    FILE *f = fopen(H.conf, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "scalers:\n");
    for (int i = 0; i < NSCALERS; i++)
        fprintf(f,
                "  - {id: w%d, type: process, command: [sleep, '300'], min: 0, max: 1, "
                "stop_grace: 500ms}\n",
                i);
    fclose(f);
    memset(many_w, 0, sizeof many_w);
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    H.loop_init = 1;
    H.d = start_daemon(&H.loop, H.conf, 0);
    ck_assert_ptr_nonnull(H.d);
    for (int i = 0; i < NSCALERS; i++) {
        char id[16];
        snprintf(id, sizeof id, "w%d", i);
        ck_assert_int_eq(daemon_subscribe(H.d, id, SB_TOPIC_INSTANCES, on_instances, &many_w[i]),
                         0);
        ck_assert_int_eq(daemon_send(H.d, id, SB_TOPIC_DESIRED, 1), 0);
    }
    ck_assert_msg(run_until(all_running, NULL, 30000), "not every scaler has its instance");
    int pids[NSCALERS], events[NSCALERS];
    for (int i = 0; i < NSCALERS; i++) {
        pids[i] = many_w[i].v[0].pid;
        note(pids[i]);
    }
    run_until(NULL, NULL, 200);
    for (int i = 0; i < NSCALERS; i++)
        events[i] = many_w[i].events;

    const int victim = 17;
    unsigned long calls0 = wait_calls;
    ck_assert_int_eq(kill(pids[victim], SIGKILL), 0);
    ck_assert_msg(run_until(crash_seen, &many_w[victim], 10000), "the exit was not seen");
    unsigned long calls = wait_calls - calls0;
    ck_assert_msg(calls <= 3, "one worker's exit took %lu wait calls in a daemon with %d scalers",
                  calls, NSCALERS);
    ck_assert_msg(run_until(restarted, &many_w[victim], 10000), "w%d did not restart it", victim);
    note(many_w[victim].v[0].pid);
    ck_assert_int_ne(many_w[victim].v[0].pid, pids[victim]);
    for (int i = 0; i < NSCALERS; i++) {
        if (i == victim)
            continue;
        ck_assert_msg(many_w[i].events == events[i], "w%d published on w%d's exit", i, victim);
        ck_assert_int_eq(many_w[i].v[0].pid, pids[i]);
        ck_assert_int_eq(many_w[i].v[0].restarts, 0);
        ck_assert_int_eq(kill(pids[i], 0), 0);
    }
    stop_daemon();
    for (int i = 0; i < NSCALERS; i++)
        ck_assert(pid_gone(pids[i]));
}
END_TEST

/* ---- the scaler: reload in place ---------------------------------------------------------------
 */

static int records_at_least(void *arg)
{
    return count_records(H.out) >= *(const int *)arg;
}

/* A reload that changes env only: the running instance carries on (same pid), the next one gets
 * the new value. */
START_TEST(test_reload_env_in_place)
{
    setup_worker("term", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    want one = {1, 1, 1};
    ck_assert_msg(run_until(list_is, &one, 10000), "the worker did not start");
    int first = view_index(&H.w, 0)->pid;

    next_extra = "changed";
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh, '%s', '%s', term", WORKER, H.out);
    write_config(cmd, NULL);
    next_extra = "hello";
    config_errors errs;
    config_errors_init(&errs);
    int rc = daemon_load(H.d, H.conf, &errs);
    if (rc != 0)
        config_errors_print(&errs, stderr);
    config_errors_free(&errs);
    ck_assert_int_eq(rc, 0);

    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 2), 0);
    int two = 2;
    ck_assert_msg(run_until(records_at_least, &two, 10000), "no second worker");
    record recs[MAX_REC];
    int n = read_records(H.out, recs, MAX_REC);
    ck_assert_int_eq(n, 2);
    for (int i = 0; i < n; i++) {
        if (recs[i].pid == first) {
            ck_assert_str_eq(recs[i].extra, "hello");
        } else {
            ck_assert_str_eq(recs[i].extra, "changed");
            ck_assert_int_eq(recs[i].index, 1);
        }
    }
    ck_assert_msg(!pid_gone(first), "the running instance was restarted by an env change");
    stop_daemon();
}
END_TEST

#define RECONF_YAML                                                                                \
    "scalers:\n  - {id: workers, type: process, command: [sh, '%s', '%s', term], env: "            \
    "{SB_TEST_EXTRA: %s}, min: 0, max: 5, stop_grace: %s%s}\n"

/* reconfigure() itself: what is taken in place and what replaces the scaler; indexes from the
 * host, or the scaler's own when the host has no index functions. */
START_TEST(test_reconfigure_and_indexes)
{
    void *handle;
    const sb_plugin_descriptor *p = test_plugin_load_if_built("process", SB_KIND_SCALER, &handle);
    if (!p)
        return;
    ck_assert_ptr_nonnull(p->reconfigure);
    make_dirs();
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    H.loop_init = 1;
    char yaml[1024];
    snprintf(yaml, sizeof yaml, RECONF_YAML, WORKER, H.out, "hello", "500ms", "");
    fake_host *fh = fake_host_new("workers");
    fh->loop = &H.loop;
    fh->bounds_max = 5; /* the file's max, which the daemon would hand out */
    void *st;
    char err[256];
    ck_assert_int_eq(test_plugin_create_from_yaml(p, fh, yaml, "workers", &st, err, sizeof err), 0);
    ck_assert_int_eq(p->start(st), 0);
    sb_event ev = {.size = sizeof(sb_event), .topic = SB_TOPIC_DESIRED, .value = 1};
    p->on_event(st, &ev);
    int want1 = 1;
    ck_assert_msg(run_until(records_at_least, &want1, 10000), "no worker");

    /* env and stop_grace: in place. */
    snprintf(yaml, sizeof yaml, RECONF_YAML, WORKER, H.out, "changed", "2s", "");
    test_option_values *v2 = test_option_values_from_yaml(p, yaml, "workers");
    ck_assert_int_eq(p->reconfigure(st, test_option_values_get(v2), err, sizeof err), 0);
    ev.value = 2;
    p->on_event(st, &ev);
    int want2 = 2;
    ck_assert_msg(run_until(records_at_least, &want2, 10000), "no second worker");
    record recs[MAX_REC];
    int n = read_records(H.out, recs, MAX_REC);
    ck_assert_int_eq(n, 2);
    ck_assert(strcmp(recs[0].extra, "changed") == 0 || strcmp(recs[1].extra, "changed") == 0);
    ck_assert(strcmp(recs[0].extra, "hello") == 0 || strcmp(recs[1].extra, "hello") == 0);
    ck_assert_int_eq((int)fh->nindexes, 2);

    /* command, workdir, port: replace. */
    const char *changed[] = {
        "scalers:\n  - {id: workers, type: process, command: [sleep, '1'], min: 0, max: 5}\n", NULL,
        NULL};
    char y2[1024], y3[1024];
    snprintf(y2, sizeof y2, RECONF_YAML, WORKER, H.out, "changed", "2s", ", workdir: /");
    snprintf(y3, sizeof y3, RECONF_YAML, WORKER, H.out, "changed", "2s", ", port: true");
    changed[1] = y2;
    changed[2] = y3;
    for (int i = 0; i < 3; i++) {
        test_option_values *v = test_option_values_from_yaml(p, changed[i], "workers");
        ck_assert_int_eq(p->reconfigure(st, test_option_values_get(v), err, sizeof err),
                         SB_RECONFIGURE_REPLACE);
        test_option_values_free(v);
    }

    ck_assert_int_eq(p->stop(st), SB_PENDING);
    ck_assert_msg(run_until(stopped_pred, fh, 10000), "the scaler did not finish stopping");
    ck_assert_int_eq((int)fh->nindexes, 0);
    p->destroy(st);
    fake_host_forget(fh);
    fake_host_free(fh);
    test_option_values_free(v2);

    /* A host without index_claim/index_release: the scaler's own lowest free index. */
    fh = fake_host_new("workers");
    fh->host.index_claim = NULL;
    fh->host.index_release = NULL;
    fh->loop = &H.loop;
    fh->bounds_max = 5;
    snprintf(yaml, sizeof yaml, RECONF_YAML, WORKER, H.out, "hello", "500ms", "");
    ck_assert_int_eq(test_plugin_create_from_yaml(p, fh, yaml, "workers", &st, err, sizeof err), 0);
    ck_assert_int_eq(p->start(st), 0);
    ev.value = 3;
    p->on_event(st, &ev);
    /* The newest instance list: indexes 0, 1 and 2, with ids named after them. */
    const fake_published *last = NULL;
    for (size_t i = 0; i < fh->npub; i++)
        if (strcmp(fh->pubs[i].topic, SB_TOPIC_INSTANCES) == 0)
            last = &fh->pubs[i];
    ck_assert_ptr_nonnull(last);
    ck_assert_int_eq(cJSON_GetArraySize(last->payload), 3);
    for (int i = 0; i < 3; i++) {
        const cJSON *item = cJSON_GetArrayItem(last->payload, i);
        char id[32];
        snprintf(id, sizeof id, "workers.%d", i);
        ck_assert_int_eq(cJSON_GetObjectItemCaseSensitive(item, "index")->valueint, i);
        ck_assert_str_eq(cJSON_GetObjectItemCaseSensitive(item, "id")->valuestring, id);
    }
    ck_assert_int_eq(p->stop(st), SB_PENDING);
    ck_assert_msg(run_until(stopped_pred, fh, 10000), "the scaler did not finish stopping");
    p->destroy(st);
    fake_host_free(fh);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    H.loop_init = 0;
    test_plugin_unload(handle);
}
END_TEST

/* ---- the scaler: crashes, back-off and scaling down ----------------------------------------
 */

static int crashed_and_healthy(void *arg)
{
    (void)arg;
    const inst_view *a = view_index(&H.w, 0), *b = view_index(&H.w, 1);
    return H.w.n == 2 && a && b && a->pid == 0 && strcmp(a->state, "failed") == 0 && b->pid > 0 &&
           strcmp(b->state, "ready") == 0;
}

static int list_has_one(void *arg)
{
    (void)arg;
    return H.w.n == 1;
}

/* Scaling down gives up an instance that crashed and waits to restart before a healthy one, even
 * when the healthy one is the newest. The test build's first back-off of a minute keeps the
 * crashed one waiting for the whole test. */
START_TEST(test_scale_down_prefers_crashed)
{
    ck_assert_int_eq(setenv("SB_TEST_BACKOFF_FIRST_MS", "60000", 1), 0);
    plugin_dir = SB_PROCESS_TEST_PLUGIN_DIR;
    make_dirs();
    /* Instance 0 (the older) crashes at once; instance 1 runs. */
    launch("sh, -c, '[ \"$$SCALEBUS_INSTANCE\" = 0 ] && exit 1; exec sleep 300'", NULL, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 2), 0);
    ck_assert_msg(run_until(crashed_and_healthy, NULL, 10000),
                  "no crashed instance 0 beside a running instance 1");
    int healthy = view_index(&H.w, 1)->pid;
    note(healthy);

    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(list_has_one, NULL, 10000), "did not scale down to 1 (list of %d)",
                  H.w.n);
    const inst_view *v = view_index(&H.w, 1);
    ck_assert_msg(v != NULL, "instance 1 was stopped; instance 0 (crashed) was kept");
    ck_assert_int_eq(v->pid, healthy);
    ck_assert_str_eq(v->state, "ready");
    ck_assert_msg(!pid_gone(healthy), "the healthy instance's process %d is gone", healthy);
    ck_assert_int_eq(H.w.running, 1);
    stop_daemon();
}
END_TEST

/* Log lines of the fake host that contain `needle`. */
static int logs_with(const fake_host *fh, const char *needle)
{
    int n = 0;
    for (size_t i = 0; i < fh->nlog; i++)
        n += strstr(fh->logs[i].text, needle) != NULL;
    return n;
}

typedef struct crash_wait {
    const fake_host *fh;
    int n;
} crash_wait;

static int crashes_at_least(void *arg)
{
    const crash_wait *c = arg;
    return logs_with(c->fh, "; restarting in ") >= c->n;
}

static int ends_with(const char *s, const char *tail)
{
    size_t ls = strlen(s), lt = strlen(tail);
    return ls >= lt && strcmp(s + ls - lt, tail) == 0;
}

/* The newest line about a crash. */
static const char *last_crash_line(const fake_host *fh)
{
    for (size_t i = fh->nlog; i-- > 0;)
        if (strstr(fh->logs[i].text, "; restarting in "))
            return fh->logs[i].text;
    return "";
}

/* A delay as the scaler's log lines write it: 250ms, 2s, 1.5s. */
static void format_delay(char *buf, size_t len, uint64_t ms)
{
    if (ms < 1000)
        snprintf(buf, len, "%llums", (unsigned long long)ms);
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
}

typedef struct backoff_run {
    void *handle;
    const sb_plugin_descriptor *p;
    fake_host *fh;
    void *st;
} backoff_run;

/* One process scaler of the plugin at `so` running `sh -c SCRIPT` on the fake host, whose timers
 * run only when the test fires them; one instance wanted. */
static void backoff_start(backoff_run *b, const char *so, const char *script)
{
    b->p = test_plugin_load(so, "process", SB_KIND_SCALER, &b->handle);
    ck_assert_int_eq(uv_loop_init(&H.loop), 0);
    H.loop_init = 1;
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "scalers:\n  - {id: workers, type: process, command: [sh, -c, '%s'], max: 1, "
             "stop_grace: 500ms}\n",
             script);
    b->fh = fake_host_new("workers");
    b->fh->loop = &H.loop;
    b->fh->bounds_max = 1;
    char err[256];
    ck_assert_msg(
        test_plugin_create_from_yaml(b->p, b->fh, yaml, "workers", &b->st, err, sizeof err) == 0,
        "create: %s", err);
    ck_assert_int_eq(b->p->start(b->st), 0);
    sb_event ev = {.size = sizeof(sb_event), .topic = SB_TOPIC_DESIRED, .value = 1};
    b->p->on_event(b->st, &ev);
}

/* Crash after crash: each back-off delay is read from the restart timer the scaler armed and from
 * its log line, then the timer is fired so the instance restarts at once. */
static void expect_backoffs(backoff_run *b, const uint64_t *delays, int n)
{
    int seen = logs_with(b->fh, "; restarting in ");
    for (int i = 0; i < n; i++) {
        crash_wait c = {b->fh, seen + i + 1};
        ck_assert_msg(run_until(crashes_at_least, &c, 20000), "crash %d was not seen", i + 1);
        char tail[64], text[32];
        format_delay(text, sizeof text, delays[i]);
        snprintf(tail, sizeof tail, "; restarting in %s", text);
        const char *line = last_crash_line(b->fh);
        ck_assert_msg(ends_with(line, tail), "crash %d: '%s', expected '...%s'", i + 1, line, tail);
        const sb_timer *t = b->fh->last_timer;
        ck_assert_ptr_nonnull(t);
        ck_assert_msg(t->timeout_ms == delays[i] && t->repeat_ms == 0,
                      "crash %d: restart timer of %llums, not %llums", i + 1,
                      (unsigned long long)t->timeout_ms, (unsigned long long)delays[i]);
        sb_timer_cb cb = t->cb;
        void *arg = t->arg;
        cb(arg); /* the back-off is over: restart now (the scaler frees the timer) */
    }
}

static void backoff_end(backoff_run *b)
{
    int rc = b->p->stop(b->st);
    if (rc == SB_PENDING)
        ck_assert_msg(run_until(stopped_pred, b->fh, 10000), "the scaler did not finish stopping");
    else
        ck_assert_int_eq(rc, 0);
    b->p->destroy(b->st);
    fake_host_forget(b->fh);
    fake_host_free(b->fh);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    ck_assert_int_eq(uv_loop_close(&H.loop), 0);
    H.loop_init = 0;
    test_plugin_unload(b->handle);
}

/* The real plugin's back-off: 1 s, doubling, held at 60 s; after five quick crashes in a row one
 * error line says so. */
START_TEST(test_backoff_cap)
{
    make_dirs();
    backoff_run b;
    backoff_start(&b, SB_PLUGIN_BUILD_DIR "/process.so", "exit 1");
    static const uint64_t delays[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000};
    expect_backoffs(&b, delays, (int)(sizeof delays / sizeof delays[0]));
    ck_assert_int_eq(logs_with(b.fh, "keeps crashing"), 1);
    for (size_t i = 0; i < b.fh->nlog; i++) {
        const fake_log_line *l = &b.fh->logs[i];
        if (!strstr(l->text, "keeps crashing"))
            continue;
        ck_assert_int_eq(l->level, SB_LOG_ERROR);
        static const char head[] = "instance 0 keeps crashing: 5 crashes in a row, each within "
                                   "10s of its start (last: exit status 1 after ";
        ck_assert_msg(strncmp(l->text, head, sizeof head - 1) == 0 &&
                          ends_with(l->text, "); still restarting, with back-off up to 60s"),
                      "%s", l->text);
    }
    backoff_end(&b);
}
END_TEST

/* A run as long as the reset time forgives earlier crashes: the next back-off starts over. The
 * test build's reset time is 1 s; the fourth run lasts 2 s. */
START_TEST(test_backoff_reset_after_long_run)
{
    make_dirs();
    ck_assert_int_eq(setenv("SB_TEST_BACKOFF_RESET_MS", "1000", 1), 0);
    char script[512];
    snprintf(script, sizeof script,
             "n=$$(cat %s/runs 2>/dev/null || echo 0); echo $$((n + 1)) > %s/runs; "
             "[ $$n = 3 ] && sleep 2; exit 1",
             H.out, H.out);
    backoff_run b;
    backoff_start(&b, SB_PROCESS_TEST_PLUGIN_DIR "/process.so", script);
    static const uint64_t delays[] = {1000, 2000, 4000, 1000, 2000};
    expect_backoffs(&b, delays, (int)(sizeof delays / sizeof delays[0]));
    backoff_end(&b);
}
END_TEST

/* ---- the contract: readiness, drain, options ------------------------------------------------ */

static int port_accepts(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}


/* A worker that listens only after a second: listed as starting (its port still closed) until
 * the probe connects, then as ready (its port open). */
static void check_probe(const char *ready)
{
    setup_worker("listen", ready, 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(state_is, "starting", 10000), "never listed as starting");
    int port = view_index(&H.w, 0)->port;
    ck_assert_int_gt(port, 0);
    ck_assert_msg(!port_accepts(port), "listed as starting while its port already accepts");
    ck_assert_int_eq(H.w.running, 1); /* it counts toward the desired count meanwhile */
    ck_assert_msg(run_until(state_is, "ready", 15000), "never became ready (state %s)",
                  view_index(&H.w, 0) ? view_index(&H.w, 0)->state : "?");
    ck_assert_msg(port_accepts(view_index(&H.w, 0)->port), "ready, but its port does not accept");
    stop_daemon();
}

START_TEST(test_ready_probe_tcp)
{
    check_probe("    ready: tcp\n    ready_every: 100ms\n");
}
END_TEST

START_TEST(test_ready_probe_http)
{
    check_probe("    ready: /\n    ready_every: 100ms\n");
}
END_TEST

static int restarted_unready(void *arg)
{
    (void)arg;
    const inst_view *v = view_index(&H.w, 0);
    return v && v->restarts >= 1;
}

/* An instance that never answers the probe is killed after ready_timeout and restarted; it is
 * never listed as ready. */
START_TEST(test_ready_timeout_restarts)
{
    setup_worker("listen",
                 "    ready: /no-such-path\n    ready_every: 100ms\n    ready_timeout: 2s\n", 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(restarted_unready, NULL, 20000), "not restarted after ready_timeout");
    const inst_view *v = view_index(&H.w, 0);
    ck_assert_msg(strcmp(v->state, "ready") != 0, "a 404 probe made it ready");
    stop_daemon();
}
END_TEST

typedef struct drain_watch {
    int pid;
    int seen_stopping_alive; /* listed as stopping while its process still ran */
} drain_watch;

static int drained_away(void *arg)
{
    drain_watch *d = arg;
    for (int i = 0; i < H.w.n; i++)
        if (H.w.v[i].pid == d->pid && strcmp(H.w.v[i].state, "stopping") == 0 && !pid_gone(d->pid))
            d->seen_stopping_alive = 1;
    return H.w.n == 1 && pid_gone(d->pid);
}

/* drain_timeout: the member to go is first listed as stopping, still running (a router stops
 * sending it requests), and stopped once the drain time is over. */
START_TEST(test_drain_lists_stopping_while_running)
{
    setup_worker("term", "    drain_timeout: 1500ms\n", 0);
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 2), 0);
    want two = {2, 2, 2};
    ck_assert_msg(run_until(list_is, &two, 10000), "2 instances did not start");
    drain_watch d = {view_index(&H.w, 1)->pid, 0};
    ck_assert_int_gt(d.pid, 0);
    double t0 = now_s();
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    ck_assert_msg(run_until(drained_away, &d, 10000), "the newest was not stopped");
    ck_assert_msg(d.seen_stopping_alive, "never listed as stopping while it still ran");
    ck_assert_msg(now_s() - t0 >= 1.4, "stopped before drain_timeout (%.2fs)", now_s() - t0);
    ck_assert_int_eq(view_index(&H.w, 0)->pid > 0, 1);
    stop_daemon();
}
END_TEST

/* Options the contract adds, refused with the option's name. */
START_TEST(test_contract_option_errors)
{
    void *handle;
    const sb_plugin_descriptor *p = test_plugin_load_if_built("process", SB_KIND_SCALER, &handle);
    if (!p)
        return;
    static const struct {
        const char *yaml, *error;
    } cases[] = {
        {"scalers:\n  - {id: workers, type: process, command: [sleep, '9'], max: 1, on_stop: keep}\n",
         "on_stop: only stop for process (its instances are the daemon's children and cannot "
         "outlive it), got 'keep'"},
        {"scalers:\n  - {id: workers, type: process, command: [sleep, '9'], max: 1, ready: tcp}\n",
         "ready: needs port: true (the probe connects to the instance's PORT)"},
        {"scalers:\n  - {id: workers, type: process, command: [sleep, '9'], max: 1, port: true, "
         "ready: healthz}\n",
         "ready: tcp, or an HTTP path starting with '/', got 'healthz'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fake_host *fh = fake_host_new("workers");
        void *st = NULL;
        char err[256] = "";
        ck_assert_int_lt(
            test_plugin_create_from_yaml(p, fh, cases[i].yaml, "workers", &st, err, sizeof err), 0);
        ck_assert_str_eq(err, cases[i].error);
        fake_host_free(fh);
    }
    test_plugin_unload(handle);
}
END_TEST

static Suite *process_suite(void)
{
    Suite *s = suite_create("process");
    TCase *sup = tcase_create("supervise");
    tcase_set_timeout(sup, 120);
    tcase_add_checked_fixture(sup, NULL, teardown);
    tcase_add_test(sup, test_sup_spawn_errors);
    tcase_add_loop_test(sup, test_sup_group_outlives_leader, 0, 3);
    tcase_add_loop_test(sup, test_sup_lone_leader, 0, 3);
    tcase_add_loop_test(sup, test_sup_reaper_o1, 0, 3);
    tcase_add_loop_test(sup, test_sup_foreign_child, 0, 3);
    tcase_add_test(sup, test_sup_forget_owner);
    tcase_add_test(sup, test_sup_watchdog_signals);
    tcase_add_loop_test(sup, test_no_process_outlives_daemon, 0, WD_VARIANTS);
    suite_add_tcase(s, sup);

    TCase *tc = tcase_create("process");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_scale_up_down_clamp);
    tcase_add_test(tc, test_crash_backoff);
    tcase_add_test(tc, test_stop_grace);
    tcase_add_test(tc, test_no_orphans_on_sigkill);
    tcase_add_test(tc, test_exec_failure);
    tcase_add_test(tc, test_path_lookup_failure);
    tcase_add_test(tc, test_dry_run);
    tcase_add_loop_test(tc, test_group_scale_down, 0, 2);
    tcase_add_loop_test(tc, test_grace_for_group, 0, 2);
    tcase_add_loop_test(tc, test_crash_kills_group, 0, 2);
    tcase_add_test(tc, test_log_dir_safety);
    tcase_add_test(tc, test_reaper_many_scalers);
    tcase_add_test(tc, test_reload_env_in_place);
    tcase_add_test(tc, test_reconfigure_and_indexes);
    tcase_add_test(tc, test_scale_down_prefers_crashed);
    tcase_add_test(tc, test_backoff_cap);
    tcase_add_test(tc, test_backoff_reset_after_long_run);
    tcase_add_test(tc, test_ready_probe_tcp);
    tcase_add_test(tc, test_ready_probe_http);
    tcase_add_test(tc, test_ready_timeout_restarts);
    tcase_add_test(tc, test_drain_lists_stopping_while_running);
    tcase_add_test(tc, test_contract_option_errors);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(process_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
