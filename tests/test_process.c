/*
 * test_process.c - the process scaler, driven through a real in-process daemon: a pipeline file
 * with one `process` scaler named "workers", desired counts sent with daemon_send(), and the
 * instance list watched through daemon_subscribe(). Assertions use facts from the OS (pids that
 * exist or not, what each worker wrote about its environment), and every wait is bounded.
 *
 * The worker is tests/process/worker.sh; each run writes OUT/w.<pid> with its
 * SCALEBUS_INSTANCE, PORT, pid, SCALEBUS_SCALER and SB_TEST_EXTRA.
 */
#define _GNU_SOURCE
#include <cJSON.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"

#define WORKER SB_SOURCE_DIR "/tests/process/worker.sh"
#define MAX_VIEW 16
#define MAX_REC 64

/* The newest instance list the scaler published. */
typedef struct inst_view {
    int index, pid, port, restarts;
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
    pid_t child; /* test_no_orphans_on_sigkill's daemon process */
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

/* Run the daemon's loop until pred holds (returns 1) or timeout_ms passes (returns 0). A NULL
 * pred runs the loop for the whole time: an observation window, not a synchronisation. */
static int run_until(pred_fn pred, void *arg, uint64_t timeout_ms)
{
    if (pred && pred(arg))
        return 1;
    waiter w = {pred, arg, 0, 0};
    uv_timer_t t;
    uv_timer_init(&H.loop, &t);
    t.data = &w;
    uv_update_time(&H.loop);
    w.deadline = uv_now(&H.loop) + timeout_ms;
    uv_timer_start(&t, wait_tick, 10, 10);
    uv_run(&H.loop, UV_RUN_DEFAULT);
    uv_timer_stop(&t);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&H.loop, UV_RUN_NOWAIT); /* let the close finish before t leaves scope */
    return w.ok;
}

/* ---- the daemon under test -------------------------------------------------------------- */

/* stop_grace of the next daemon the test starts (500ms unless a test says otherwise). */
static const char *next_grace = "500ms";

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
            "    env: {SB_TEST_EXTRA: hello}\n"
            "%s",
            command, next_grace, H.logs, extra ? extra : "");
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

static sb_daemon *start_daemon(uv_loop_t *loop, const char *conf, int dry_run)
{
    static const char *const dirs[] = {SB_PLUGIN_BUILD_DIR};
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

/* Checked teardown: runs after a failed assertion too. Ends only workers this test started
 * (by the pids they recorded), then removes the temporary folder. */
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
        /* Its workers die with it (that is what the test is about). */
        kill(H.child, SIGKILL);
        waitpid(H.child, NULL, 0);
        H.child = 0;
    }
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

static int pids_gone(void *arg)
{
    const int *pids = arg; /* 0-terminated */
    for (; *pids; pids++)
        if (!pid_gone(*pids))
            return 0;
    return 1;
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
        ck_assert_str_eq(v->state, "running");
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

    /* Output went to LOG_DIR/<id>.<index>.out and .err. */
    char path[256], text[64];
    snprintf(path, sizeof path, "%s/workers.1.out", H.logs);
    snprintf(text, sizeof text, "stdout of %d", pids[1]);
    ck_assert_msg(file_contains(path, text), "%s lacks '%s'", path, text);
    snprintf(path, sizeof path, "%s/workers.1.err", H.logs);
    snprintf(text, sizeof text, "stderr of %d", pids[1]);
    ck_assert_msg(file_contains(path, text), "%s lacks '%s'", path, text);

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
    return v && strcmp(v->state, "failed") == 0;
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
    snprintf(cmd, sizeof cmd, "sh, '%s', '%s', ignore", WORKER, H.out);
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
    int pids[3] = {recs[0].pid, recs[1].pid, 0};
    ck_assert_int_eq(kill(pids[0], 0), 0);
    ck_assert_int_eq(kill(pids[1], 0), 0);

    ck_assert_int_eq(kill(child, SIGKILL), 0);
    int status;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    H.child = 0;
    ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    t0 = now_s();
    while (!pids_gone(pids) && now_s() - t0 < 5.0)
        nap_ms(20);
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(pid_gone(pids[i]), "worker %d outlived its SIGKILLed daemon", pids[i]);
    }
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
    ck_assert_int_eq(H.w.running, 0);
    /* Backed off like a crash: 1 s, 2 s, ... so at most 3 retries in ~3 s. */
    run_until(NULL, NULL, 3200);
    const inst_view *v = view_index(&H.w, 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_msg(v->restarts >= 1 && v->restarts <= 3, "%d retries in ~3s", v->restarts);
    ck_assert_str_eq(v->error, msg);
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
    ck_assert_int_eq(H.w.events, 0);
    struct stat sb;
    ck_assert_msg(stat(H.logs, &sb) != 0, "dry run created log_dir");
    ck_assert_int_eq(daemon_send(H.d, "workers", SB_TOPIC_DESIRED, 1), 0);
    run_until(NULL, NULL, 200);
    stop_daemon();
    ck_assert_int_eq(count_records(H.out), 0);
}
END_TEST

static Suite *process_suite(void)
{
    Suite *s = suite_create("process");
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
