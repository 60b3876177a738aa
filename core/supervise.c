/*
 * supervise.c - the daemon's child processes (see supervise.h).
 *
 * Spawning. fork(), then in the child, with only async-signal-safe calls on memory prepared
 * before fork (the daemon may have other threads): ask for SIGKILL when the daemon dies and check
 * it has not died already, lead a process group of its own, move into its own cgroup (when the
 * daemon can make them), send "+PGID" to the watchdog (so no window exists in which the daemon
 * can die with the group unrecorded), reset signal dispositions, set up stdio, change to the
 * workdir and exec. A close-on-exec pipe carries each failed step and its errno back; EOF on it
 * means exec happened.
 *
 * Reaping. Each child gets a pidfd (pidfd_open) watched by a uv_poll_t: a child's exit costs
 * one waitpid on that pid, whatever the number of children or plugins. Without pidfd_open
 * (ENOSYS), one SIGCHLD watcher for the whole daemon peeks at the exited child with
 * waitid(WNOWAIT) and finds it in a pid map. Only pids spawned here are ever reaped; libuv's own
 * children are left alone.
 *
 * Groups. When a leader is reaped its group (its cgroup, when it has one) may still have
 * members: the callback says so, and the child is put on a list a short timer checks until the
 * group is empty; the callback is then called a second time.
 *
 * The watchdog. Forked on the first spawn, in its own process group, ignoring the signals a
 * terminal or timeout(1) sends to the daemon's group, with /dev/null as stdio and no other
 * descriptor than its end of a socket pair (SOCK_SEQPACKET: every record arrives whole, and a
 * write to a dead peer is EPIPE, never SIGPIPE). The daemon's end is close-on-exec: only the
 * daemon, and a child between fork and exec, ever hold it. Records are "+PGID" (a group started)
 * and "-PGID" (known empty), kept in a bitmap over every possible pid, preallocated before fork:
 * the watchdog never allocates. When it reads EOF - the daemon exited, however it exited - it
 * writes 1 to cgroup.kill of the children's cgroup, SIGKILLs every recorded group, removes the
 * children's cgroups and exits. A watchdog that dies is replaced, and told every live group again.
 */
#define _GNU_SOURCE
#include "supervise.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* PID_MAX_LIMIT on 64-bit Linux: no pid or process group id is ever this large. */
#define WD_PID_LIMIT (4u * 1024u * 1024u)
/* How often groups whose leader is gone are checked for emptiness. */
#define LINGER_POLL_MS 25
/* How long the watchdog keeps trying to remove the children's cgroups after killing them. */
#define WD_CLEANUP_ROUNDS 100
#define WD_CLEANUP_NAP_NS 20000000L

/* ---- children and the pid map --------------------------------------------------------------- */

typedef struct child child;

struct child {
    supervisor *s;
    void *owner; /* NULL once forgotten */
    sb_child_cb cb;
    void *arg;
    pid_t pid; /* the leader, and the process group id */
    int pidfd; /* -1: reaped through SIGCHLD */
    uv_poll_t poll;
    int polling; /* poll initialised and not yet closed */
    int closing; /* poll close pending: free from its callback */
    int reaped;
    int status;
    int pgid_gone;        /* the process group id is free again: never signal it */
    int lingering;        /* on the linger list */
    int done;             /* the group is empty, the callback's last call made */
    char *cg_dir;         /* its own cgroup, or NULL */
    child *prev, *next;   /* every child */
    child *lprev, *lnext; /* the linger list */
};

typedef struct pidmap {
    pid_t *keys;
    child **vals;
    size_t cap, count;
} pidmap;

static size_t pid_home(pid_t pid, size_t cap)
{
    return ((uint32_t)pid * 2654435761u) & (cap - 1);
}

static child *pidmap_get(const pidmap *m, pid_t pid)
{
    if (!m->cap)
        return NULL;
    for (size_t i = pid_home(pid, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == 0)
            return NULL;
        if (m->keys[i] == pid)
            return m->vals[i];
    }
}

static void pidmap_put_nogrow(pidmap *m, pid_t pid, child *c)
{
    size_t i = pid_home(pid, m->cap);
    while (m->keys[i] != 0 && m->keys[i] != pid)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == 0)
        m->count++;
    m->keys[i] = pid;
    m->vals[i] = c;
}

static int pidmap_put(pidmap *m, pid_t pid, child *c)
{
    if ((m->count + 1) * 2 > m->cap) {
        pidmap n = {0};
        n.cap = m->cap ? m->cap * 2 : 64;
        n.keys = calloc(n.cap, sizeof *n.keys);
        n.vals = calloc(n.cap, sizeof *n.vals);
        if (!n.keys || !n.vals) {
            free(n.keys);
            free(n.vals);
            return -ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != 0)
                pidmap_put_nogrow(&n, m->keys[i], m->vals[i]);
        free(m->keys);
        free(m->vals);
        *m = n;
    }
    pidmap_put_nogrow(m, pid, c);
    return 0;
}

/* Removes pid only while it maps to c (a newer child may have been given the same pid). */
static void pidmap_del(pidmap *m, pid_t pid, const child *c)
{
    if (!m->cap)
        return;
    size_t i = pid_home(pid, m->cap);
    while (m->keys[i] != 0 && m->keys[i] != pid)
        i = (i + 1) & (m->cap - 1);
    if (m->keys[i] == 0 || m->vals[i] != c)
        return;
    m->keys[i] = 0;
    m->count--;
    /* Backward shift: re-place the rest of the probe run. */
    for (size_t j = (i + 1) & (m->cap - 1); m->keys[j] != 0; j = (j + 1) & (m->cap - 1)) {
        pid_t k = m->keys[j];
        child *v = m->vals[j];
        m->keys[j] = 0;
        m->count--;
        pidmap_put_nogrow(m, k, v);
    }
}

/* ---- the supervisor ---------------------------------------------------------------------------
 */

struct supervisor {
    uv_loop_t *loop;
    supervisor_log_fn log;
    void *log_arg;
    unsigned disabled; /* SUPERVISE_NO_* */
    int freeing;
    size_t pending_closes; /* handles closing; s is freed when the last one has closed */

    /* Children. */
    pidmap map;
    child *all;
    child *linger;
    size_t live;
    uv_timer_t linger_timer;
    int linger_init;

    /* Reaping. */
    int pidfd_state; /* 0: not tried; 1: works; -1: ENOSYS or disabled */
    uv_signal_t sigchld;
    int sigchld_init;

    /* cgroup v2: the cgroup holding one cgroup per child. */
    int cg_state; /* 0: not probed; 1: in use; -1: not usable */
    char *cg_base;
    uint64_t cg_seq;

    /* The watchdog. */
    int wd_fd; /* our end of the socket pair, close-on-exec; -1: no watchdog */
    pid_t wd_pid;
    int wd_pidfd;
    uv_poll_t *wd_poll; /* heap: a replacement watchdog's may start while the old one closes */

    supervisor_stats stats;
};

static void slog(supervisor *s, sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void slog(supervisor *s, sb_log_level level, const char *fmt, ...)
{
    if (!s->log)
        return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->log(s->log_arg, level, msg);
}

static void closed_one(supervisor *s)
{
    if (--s->pending_closes == 0 && s->freeing) {
        free(s->cg_base);
        free(s);
    }
}

static void handle_closed(uv_handle_t *h)
{
    closed_one(h->data);
}

static void close_handle(supervisor *s, uv_handle_t *h)
{
    h->data = s;
    s->pending_closes++;
    uv_close(h, handle_closed);
}

supervisor *supervisor_new(uv_loop_t *loop)
{
    supervisor *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->loop = loop;
    s->wd_fd = -1;
    s->wd_pidfd = -1;
    s->stats.cgroup = -1;
    const char *env = getenv("SCALEBUS_SUPERVISE");
    if (env) {
        if (strstr(env, "no-cgroup"))
            s->disabled |= SUPERVISE_NO_CGROUP;
        if (strstr(env, "no-pidfd"))
            s->disabled |= SUPERVISE_NO_PIDFD;
    }
    return s;
}

void supervisor_set_logger(supervisor *s, supervisor_log_fn fn, void *arg)
{
    s->log = fn;
    s->log_arg = arg;
}

void supervisor_disable(supervisor *s, unsigned what)
{
    s->disabled |= what;
}

void supervisor_get_stats(const supervisor *s, supervisor_stats *out)
{
    *out = s->stats;
    out->live = s->live;
    out->watchdog_pid = s->wd_pid;
    out->pidfd = s->pidfd_state == 1;
    out->cgroup = s->cg_state == 0 ? -1 : s->cg_state == 1;
    out->cgroup_dir = s->cg_state == 1 ? s->cg_base : NULL;
}

/* ---- small async-signal-safe helpers (used after fork) ----------------------------------------
 */

/* "+123\n" into buf (at least 16 bytes); returns its length. */
static size_t fmt_record(char *buf, char sign, pid_t pid)
{
    char digits[12];
    size_t n = 0;
    unsigned long v = (unsigned long)pid;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v && n < sizeof digits);
    size_t len = 0;
    buf[len++] = sign;
    while (n)
        buf[len++] = digits[--n];
    buf[len++] = '\n';
    return len;
}

/* dst = a + b (b may be NULL), if it fits. */
static int join2(char *dst, size_t cap, const char *a, const char *b)
{
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    if (la + lb + 1 > cap)
        return -1;
    memcpy(dst, a, la);
    if (lb)
        memcpy(dst + la, b, lb);
    dst[la + lb] = '\0';
    return 0;
}

static void write_file_once(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n;
    do {
        n = write(fd, text, strlen(text));
    } while (n < 0 && errno == EINTR);
    close(fd);
}

/* Close every descriptor from `from` on. */
static void close_from(int from)
{
#ifdef CLOSE_RANGE_CLOEXEC
    if (close_range((unsigned)from, ~0U, 0) == 0)
        return;
#endif
    for (int fd = from; fd < 65536; fd++)
        close(fd);
}

/* ---- the watchdog --------------------------------------------------------------------------- */

struct wd_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Remove the (empty) cgroups below base; base itself too once it has none. */
static int wd_remove_cgroups(const char *base)
{
    int dfd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? 0 : -1;
    union {
        char buf[4096];
        struct wd_dirent64 align;
    } u;
    long n;
    while ((n = syscall(SYS_getdents64, dfd, u.buf, sizeof u.buf)) > 0) {
        for (long at = 0; at < n;) {
            struct wd_dirent64 *de = (struct wd_dirent64 *)(void *)(u.buf + at);
            at += de->d_reclen;
            if (de->d_type == DT_DIR && strcmp(de->d_name, ".") != 0 &&
                strcmp(de->d_name, "..") != 0)
                (void)unlinkat(dfd, de->d_name, AT_REMOVEDIR);
        }
    }
    close(dfd);
    return rmdir(base) == 0 || errno == ENOENT ? 0 : -1;
}

static void wd_kill_all(const uint64_t *bits, const char *cg_base)
{
    if (cg_base) {
        char path[PATH_MAX];
        if (join2(path, sizeof path, cg_base, "/cgroup.kill") == 0)
            write_file_once(path, "1");
    }
    for (size_t w = 0; w < WD_PID_LIMIT / 64; w++) {
        if (!bits[w])
            continue;
        for (unsigned b = 0; b < 64; b++)
            if (bits[w] & (1ull << b))
                (void)kill(-(pid_t)(w * 64 + b), SIGKILL);
    }
}

/* The watchdog's whole life, in the forked child: async-signal-safe calls only, no allocation. */
static void watchdog_main(int sock, int devnull, uint64_t *bits, const char *cg_base)
{
    (void)setpgid(0, 0);
    (void)prctl(PR_SET_NAME, "sb-watchdog");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    /* A terminal's Ctrl-C, timeout(1) and a hang-up signal the daemon's group, never us. */
    sa.sa_handler = SIG_IGN;
    const int ignored[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGTSTP, SIGTTIN, SIGTTOU};
    for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
        (void)sigaction(ignored[i], &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* Hold nothing of the daemon's: no terminal or pipe (a `| tee` would wait for us), no
     * socket, and no other copy of the daemon's end of our socket pair. */
    for (int fd = 0; fd < 3; fd++)
        if (devnull != fd)
            (void)dup2(devnull, fd);
    if (sock != 3) {
        if (dup2(sock, 3) < 0)
            _exit(1);
        sock = 3;
    }
    close_from(4);
    (void)chdir("/");

    for (;;) {
        char rec[32];
        ssize_t n = recv(sock, rec, sizeof rec - 1, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break; /* EOF: every holder of the daemon's end is gone */
        unsigned long pgid = 0;
        for (ssize_t i = 1; i < n && rec[i] >= '0' && rec[i] <= '9'; i++)
            pgid = pgid * 10 + (unsigned long)(rec[i] - '0');
        if (pgid == 0 || pgid >= WD_PID_LIMIT)
            continue;
        if (rec[0] == '+')
            bits[pgid / 64] |= 1ull << (pgid % 64);
        else if (rec[0] == '-')
            bits[pgid / 64] &= ~(1ull << (pgid % 64));
    }
    wd_kill_all(bits, cg_base);
    if (cg_base) {
        for (int round = 0; round < WD_CLEANUP_ROUNDS; round++) {
            if (wd_remove_cgroups(cg_base) == 0)
                break;
            struct timespec nap = {0, WD_CLEANUP_NAP_NS};
            (void)nanosleep(&nap, NULL);
        }
    }
    _exit(0);
}

static void wd_watch(supervisor *s);
static void child_watch(supervisor *s, child *c);

/* Send one record; flags MSG_DONTWAIT for the "-" hints the daemon sends from the loop. */
static void wd_send(supervisor *s, char sign, pid_t pgid, int flags)
{
    if (s->wd_fd < 0)
        return;
    char rec[16];
    size_t n = fmt_record(rec, sign, pgid);
    ssize_t r;
    do {
        r = send(s->wd_fd, rec, n, MSG_NOSIGNAL | flags);
    } while (r < 0 && errno == EINTR);
}

static int wd_start(supervisor *s)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    size_t bytes = WD_PID_LIMIT / 8;
    void *bits = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (devnull < 0 || bits == MAP_FAILED) {
        int e = devnull < 0 ? errno : ENOMEM;
        if (devnull >= 0)
            close(devnull);
        if (bits != MAP_FAILED)
            munmap(bits, bytes);
        close(sv[0]);
        close(sv[1]);
        return -e;
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        watchdog_main(sv[1], devnull, bits, s->cg_base);
    }
    int e = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(sv[1]);
    close(devnull);
    munmap(bits, bytes); /* the watchdog has its own copy */
    if (pid < 0) {
        close(sv[0]);
        return -e;
    }
    s->wd_fd = sv[0];
    s->wd_pid = pid;
    wd_watch(s);
    slog(s, SB_LOG_DEBUG, "supervision watchdog started (pid %d)", (int)pid);
    return 0;
}

/* ---- cgroups ----------------------------------------------------------------------------------
 */

/* Undo the escapes of /proc/self/mountinfo (\040 for a space, ...), in place. */
static void unescape_octal(char *s)
{
    char *out = s;
    for (char *p = s; *p; p++) {
        if (p[0] == '\\' && p[1] >= '0' && p[1] <= '7' && p[2] >= '0' && p[2] <= '7' &&
            p[3] >= '0' && p[3] <= '7') {
            *out++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
            p += 3;
        } else {
            *out++ = *p;
        }
    }
    *out = '\0';
}

/* The daemon's own cgroup v2 folder, e.g. "/sys/fs/cgroup/unified/system.slice/x.service". */
static char *own_cgroup_dir(char *why, size_t whylen)
{
    char *line = NULL, *own = NULL, *dir = NULL;
    size_t cap = 0;
    FILE *f = fopen("/proc/self/cgroup", "r");
    if (!f) {
        snprintf(why, whylen, "/proc/self/cgroup: %s", strerror(errno));
        return NULL;
    }
    while (getline(&line, &cap, f) > 0) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            own = strdup(line + 3);
            break;
        }
    }
    fclose(f);
    if (!own || own[0] != '/' || strstr(own, "/..")) {
        snprintf(why, whylen, "no cgroup v2 membership in /proc/self/cgroup");
        goto out;
    }
    f = fopen("/proc/self/mountinfo", "r");
    if (!f) {
        snprintf(why, whylen, "/proc/self/mountinfo: %s", strerror(errno));
        goto out;
    }
    snprintf(why, whylen, "no cgroup2 file system mounted");
    while (getline(&line, &cap, f) > 0) {
        const char *sep = strstr(line, " - ");
        if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
            continue;
        /* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... */
        char *save = NULL, *field = strtok_r(line, " ", &save);
        char *root = NULL, *mnt = NULL;
        for (int i = 0; field && i < 5; i++, field = strtok_r(NULL, " ", &save)) {
            if (i == 3)
                root = field;
            if (i == 4)
                mnt = field;
        }
        if (!root || !mnt)
            continue;
        unescape_octal(root);
        unescape_octal(mnt);
        size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
        if (rl && (strncmp(own, root, rl) != 0 || (own[rl] != '/' && own[rl] != '\0')))
            continue; /* our cgroup is not below this mount's root */
        const char *rel = own + rl;
        if (strcmp(rel, "/") == 0)
            rel = "";
        size_t len = strlen(mnt) + strlen(rel) + 1;
        dir = malloc(len);
        if (dir)
            snprintf(dir, len, "%s%s", mnt, rel);
        break;
    }
    fclose(f);
out:
    free(line);
    free(own);
    return dir;
}

/* Can the daemon make a cgroup per child? Decided once, at the first spawn. */
static void cg_probe(supervisor *s)
{
    char why[PATH_MAX + 128] = "";
    s->cg_state = -1;
    if (s->disabled & SUPERVISE_NO_CGROUP) {
        slog(s, SB_LOG_DEBUG, "supervision: cgroups turned off; process groups only");
        return;
    }
    char *dir = own_cgroup_dir(why, sizeof why);
    char path[PATH_MAX];
    if (!dir)
        goto fail;
    /* A child is moved out of our cgroup: that takes write access to our cgroup.procs. */
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    if (access(path, W_OK) != 0) {
        snprintf(why, sizeof why, "%s: %s", path, strerror(errno));
        goto fail;
    }
    for (int i = 0; i < 100; i++) {
        if (i == 0)
            snprintf(path, sizeof path, "%s/scalebus-%d", dir, (int)getpid());
        else
            snprintf(path, sizeof path, "%s/scalebus-%d.%d", dir, (int)getpid(), i);
        if (mkdir(path, 0755) == 0)
            break;
        if (errno != EEXIST || i == 99) {
            snprintf(why, sizeof why, "cannot create %s: %s", path, strerror(errno));
            goto fail;
        }
    }
    /* Room for "/<seq>/cgroup.procs" in the child's fixed buffers. */
    if (strlen(path) > PATH_MAX - 64) {
        rmdir(path);
        snprintf(why, sizeof why, "cgroup path too long");
        goto fail;
    }
    char kill_path[PATH_MAX + 16];
    snprintf(kill_path, sizeof kill_path, "%s/cgroup.kill", path);
    if (access(kill_path, W_OK) != 0) {
        snprintf(why, sizeof why, "no cgroup.kill (Linux 5.14 or later): %s", strerror(errno));
        rmdir(path);
        goto fail;
    }
    s->cg_base = strdup(path);
    if (!s->cg_base) {
        rmdir(path);
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    free(dir);
    s->cg_state = 1;
    slog(s, SB_LOG_DEBUG, "supervision: each child gets a cgroup below %s", s->cg_base);
    return;
fail:
    free(dir);
    slog(s, SB_LOG_DEBUG, "supervision: cgroup v2 not usable (%s); process groups only", why);
}

/* After a child could not join its cgroup: stop making them. */
static void cg_give_up(supervisor *s, int err)
{
    if (s->cg_state != 1)
        return;
    s->cg_state = -1;
    slog(s, SB_LOG_DEBUG,
         "supervision: a child cannot join its cgroup (%s); process groups only from now on",
         strerror(err));
}

/* 1: populated, 0: not, -1: cannot tell. */
static int cg_populated(const char *dir)
{
    char path[PATH_MAX + 16], buf[256];
    snprintf(path, sizeof path, "%s/cgroup.events", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n;
    do {
        n = read(fd, buf, sizeof buf - 1);
    } while (n < 0 && errno == EINTR);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    const char *p = strstr(buf, "populated ");
    if (!p)
        return -1;
    return p[10] == '1';
}

/* Signal the members of a cgroup that left the process group pgid (setsid escapees). */
static void cg_signal_others(const char *dir, pid_t pgid, int sig)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    long pid;
    while (fscanf(f, "%ld", &pid) == 1)
        if (pid > 0 && getpgid((pid_t)pid) != pgid)
            (void)kill((pid_t)pid, sig);
    fclose(f);
}

/* ---- groups -----------------------------------------------------------------------------------
 */

/* The process group id is free: tell the watchdog to forget it. */
static void mark_pgid_gone(supervisor *s, child *c)
{
    if (c->pgid_gone)
        return;
    c->pgid_gone = 1;
    wd_send(s, '-', c->pid, MSG_DONTWAIT);
}

/* Only once the leader is reaped: is anything of its group (cgroup) left? */
static int group_empty(supervisor *s, child *c)
{
    if (!c->pgid_gone && kill(-c->pid, 0) != 0 && errno == ESRCH)
        mark_pgid_gone(s, c);
    if (c->cg_dir) {
        int pop = cg_populated(c->cg_dir);
        if (pop >= 0)
            return !pop;
    }
    return c->pgid_gone;
}

/* 0 when something was signalled (or, for sig 0, exists), else -ESRCH. */
static int group_signal(supervisor *s, child *c, int sig)
{
    int any = 0;
    if (!c->pgid_gone) {
        if (kill(-c->pid, sig) == 0 || errno == EPERM)
            any = 1;
        else if (errno == ESRCH && c->reaped)
            mark_pgid_gone(s, c);
    }
    /* A leader that moved itself to another group still gets the signal. */
    if (!c->reaped && !any && (kill(c->pid, sig) == 0 || errno == EPERM))
        any = 1;
    if (c->cg_dir) {
        if (sig == SIGKILL) {
            char path[PATH_MAX + 16];
            snprintf(path, sizeof path, "%s/cgroup.kill", c->cg_dir);
            write_file_once(path, "1");
        } else if (sig != 0) {
            cg_signal_others(c->cg_dir, c->pid, sig);
        }
        if (cg_populated(c->cg_dir) == 1)
            any = 1;
    }
    return any ? 0 : -ESRCH;
}

static void linger_remove(supervisor *s, child *c)
{
    if (!c->lingering)
        return;
    if (c->lprev)
        c->lprev->lnext = c->lnext;
    else
        s->linger = c->lnext;
    if (c->lnext)
        c->lnext->lprev = c->lprev;
    c->lprev = c->lnext = NULL;
    c->lingering = 0;
    if (!s->linger && s->linger_init)
        uv_timer_stop(&s->linger_timer);
}

static void free_child(child *c)
{
    free(c->cg_dir);
    free(c);
}

static void child_poll_closed(uv_handle_t *h)
{
    child *c = h->data;
    supervisor *s = c->s;
    close(c->pidfd);
    c->pidfd = -1;
    c->polling = 0;
    c->closing = 0;
    if (c->done)
        free_child(c);
    closed_one(s);
}

static void child_unwatch(supervisor *s, child *c)
{
    if (!c->polling || c->closing)
        return;
    c->closing = 1;
    uv_poll_stop(&c->poll);
    c->poll.data = c;
    s->pending_closes++;
    uv_close((uv_handle_t *)&c->poll, child_poll_closed);
}

/* The group is empty and the callback has had its last call: forget the child. */
static void child_done(supervisor *s, child *c)
{
    c->done = 1;
    mark_pgid_gone(s, c);
    if (c->cg_dir)
        (void)rmdir(c->cg_dir);
    linger_remove(s, c);
    pidmap_del(&s->map, c->pid, c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->all = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->live--;
    child_unwatch(s, c);
    if (!c->polling)
        free_child(c);
}

static void linger_tick(uv_timer_t *t)
{
    supervisor *s = t->data;
    for (child *c = s->linger, *next; c; c = next) {
        next = c->lnext;
        if (!group_empty(s, c))
            continue;
        linger_remove(s, c);
        sb_child_cb cb = c->cb;
        if (cb)
            cb(c->arg, c->pid, c->status, 1);
        /* Callbacks cannot reap or finish another child, so next is still on the list. */
        child_done(s, c);
    }
}

static void linger_add(supervisor *s, child *c)
{
    if (c->lingering)
        return;
    if (!s->linger_init) {
        uv_timer_init(s->loop, &s->linger_timer);
        uv_unref((uv_handle_t *)&s->linger_timer);
        s->linger_timer.data = s;
        s->linger_init = 1;
    }
    c->lingering = 1;
    c->lprev = NULL;
    c->lnext = s->linger;
    if (s->linger)
        s->linger->lprev = c;
    s->linger = c;
    if (!uv_is_active((uv_handle_t *)&s->linger_timer))
        uv_timer_start(&s->linger_timer, linger_tick, LINGER_POLL_MS, LINGER_POLL_MS);
}

/* The leader has been reaped (status) or was reaped elsewhere (status 0). */
static void leader_exited(supervisor *s, child *c, int status)
{
    c->reaped = 1;
    c->status = status;
    s->stats.exited++;
    child_unwatch(s, c);
    int empty = group_empty(s, c);
    if (!empty && !c->cb)
        (void)group_signal(s, c, SIGKILL); /* a forgotten owner's leftovers */
    if (c->cb)
        c->cb(c->arg, c->pid, status, empty);
    if (empty)
        child_done(s, c);
    else
        linger_add(s, c);
}

/* waitpid for exactly this child. 1: reaped (status set), 0: still running. */
static int reap_one(supervisor *s, child *c, int *status)
{
    pid_t r;
    do {
        s->stats.wait_calls++;
        r = waitpid(c->pid, status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == c->pid)
        return 1;
    if (r < 0 && errno == ECHILD) {
        slog(s, SB_LOG_WARN, "child %d was reaped by someone else: its exit status is unknown",
             (int)c->pid);
        *status = 0;
        return 1;
    }
    return 0;
}

/* ---- watching for exits --------------------------------------------------------------------- */

static void wd_exited(supervisor *s, int status);

static void on_child_pidfd(uv_poll_t *h, int st, int events)
{
    (void)st;
    (void)events;
    child *c = h->data;
    supervisor *s = c->s;
    int status = 0;
    if (!c->reaped && reap_one(s, c, &status))
        leader_exited(s, c, status);
}

static void on_wd_pidfd(uv_poll_t *h, int st, int events)
{
    (void)st;
    (void)events;
    supervisor *s = h->data;
    int status = 0;
    pid_t r;
    do {
        s->stats.wait_calls++;
        r = waitpid(s->wd_pid, &status, WNOHANG);
    } while (r < 0 && errno == EINTR);
    if (r == s->wd_pid || (r < 0 && errno == ECHILD))
        wd_exited(s, status);
}

static int pidfd_for(supervisor *s, pid_t pid)
{
    if (s->pidfd_state < 0)
        return -1;
    if (s->disabled & SUPERVISE_NO_PIDFD) {
        s->pidfd_state = -1;
        slog(s, SB_LOG_DEBUG, "supervision: pidfds turned off; reaping on SIGCHLD");
        return -1;
    }
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        (void)fcntl(fd, F_SETFD, FD_CLOEXEC); /* pidfds are close-on-exec; make sure */
        s->pidfd_state = 1;
        return fd;
    }
    if (errno != ENOSYS && errno != EINVAL)
        return -1; /* this child only (EMFILE...): it is reaped on SIGCHLD */
#endif
    s->pidfd_state = -1;
    slog(s, SB_LOG_DEBUG, "supervision: pidfd_open unavailable; reaping on SIGCHLD");
    return -1;
}

static void on_sigchld(uv_signal_t *h, int signum);

static void sigchld_watch(supervisor *s)
{
    if (s->sigchld_init)
        return;
    uv_signal_init(s->loop, &s->sigchld);
    s->sigchld.data = s;
    s->sigchld_init = 1;
    uv_signal_start(&s->sigchld, on_sigchld, SIGCHLD);
    uv_unref((uv_handle_t *)&s->sigchld);
}

static void child_watch(supervisor *s, child *c)
{
    c->pidfd = pidfd_for(s, c->pid);
    if (c->pidfd >= 0 && uv_poll_init(s->loop, &c->poll, c->pidfd) == 0) {
        c->poll.data = c;
        c->polling = 1;
        uv_poll_start(&c->poll, UV_READABLE, on_child_pidfd);
        uv_unref((uv_handle_t *)&c->poll);
        return;
    }
    if (c->pidfd >= 0) {
        close(c->pidfd);
        c->pidfd = -1;
    }
    sigchld_watch(s);
}

static void wd_watch(supervisor *s)
{
    s->wd_pidfd = pidfd_for(s, s->wd_pid);
    uv_poll_t *p = s->wd_pidfd >= 0 ? malloc(sizeof *p) : NULL;
    if (p && uv_poll_init(s->loop, p, s->wd_pidfd) == 0) {
        p->data = s;
        s->wd_poll = p;
        uv_poll_start(p, UV_READABLE, on_wd_pidfd);
        uv_unref((uv_handle_t *)p);
        return;
    }
    free(p);
    if (s->wd_pidfd >= 0) {
        close(s->wd_pidfd);
        s->wd_pidfd = -1;
    }
    sigchld_watch(s);
}

static void wd_poll_closed(uv_handle_t *h)
{
    supervisor *s = h->data;
    free(h);
    closed_one(s);
}

static void wd_unwatch(supervisor *s)
{
    if (s->wd_poll) {
        uv_poll_stop(s->wd_poll);
        s->pending_closes++;
        uv_close((uv_handle_t *)s->wd_poll, wd_poll_closed);
        s->wd_poll = NULL;
    }
    if (s->wd_pidfd >= 0) {
        /* Closed now: uv_poll_stop has taken it out of epoll, and libuv never reads it again. */
        close(s->wd_pidfd);
        s->wd_pidfd = -1;
    }
}

/* The watchdog died while we run: start another and tell it every group that is still there. */
static void wd_exited(supervisor *s, int status)
{
    pid_t old = s->wd_pid;
    wd_unwatch(s);
    if (s->wd_fd >= 0)
        close(s->wd_fd);
    s->wd_fd = -1;
    s->wd_pid = 0;
    if (s->freeing)
        return;
    slog(s, SB_LOG_WARN, "the supervision watchdog (pid %d) ended (%s %d); starting another",
         (int)old, WIFSIGNALED(status) ? "signal" : "status",
         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    int rc = wd_start(s);
    if (rc != 0) {
        slog(s, SB_LOG_ERROR,
             "cannot start a new supervision watchdog: %s; children may outlive a killed daemon",
             strerror(-rc));
        return;
    }
    for (child *c = s->all; c; c = c->next)
        if (!c->pgid_gone)
            wd_send(s, '+', c->pid, 0);
}

/* Our SIGCHLD fallback: look at the next exited child without reaping it; reap it when it is
 * ours. A child of someone else's at the head (libuv's) makes us try each of ours instead. */
static void on_sigchld(uv_signal_t *h, int signum)
{
    (void)signum;
    supervisor *s = h->data;
    for (;;) {
        siginfo_t si;
        memset(&si, 0, sizeof si);
        int r;
        do {
            s->stats.wait_calls++;
            r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
        } while (r < 0 && errno == EINTR);
        if (r != 0 || si.si_pid == 0)
            return;
        if (si.si_pid == s->wd_pid && s->wd_pid > 0) {
            int status = 0;
            s->stats.wait_calls++;
            if (waitpid(s->wd_pid, &status, WNOHANG) != s->wd_pid)
                return;
            wd_exited(s, status);
            continue;
        }
        child *c = pidmap_get(&s->map, si.si_pid);
        if (!c || c->reaped)
            break;
        int status = 0;
        if (!reap_one(s, c, &status))
            return; /* cannot happen: it was waiting */
        leader_exited(s, c, status);
    }
    /* Someone else's child is next in line: go through ours (only those without a pidfd). */
    for (child *c = s->all, *next; c; c = next) {
        next = c->next;
        if (c->reaped || c->polling)
            continue;
        int status = 0;
        if (reap_one(s, c, &status)) {
            leader_exited(s, c, status);
            next = s->all; /* the list may have changed: start over; reaped ones are skipped */
        }
    }
}

/* ---- spawning ---------------------------------------------------------------------------------
 */

typedef enum spawn_step {
    STEP_SETUP = 1, /* prctl, setpgid */
    STEP_CGROUP,    /* joining its cgroup (not fatal) */
    STEP_WATCHDOG,  /* the "+PGID" record (not fatal) */
    STEP_STDIO,
    STEP_CHDIR,
    STEP_EXEC
} spawn_step;

typedef struct spawn_report {
    int step, err, fatal;
} spawn_report;

/* Everything the child needs, prepared before fork. */
typedef struct spawn_plan {
    const char *path;
    char *const *argv;
    char *const *envp;
    const char *workdir;
    int fds[3];      /* what becomes 0, 1, 2; -1: keep the daemon's */
    int report_fd;   /* close-on-exec pipe to the parent */
    int cg_procs_fd; /* the child's cgroup.procs, or -1 */
    int wd_fd;       /* the watchdog's socket, or -1 */
    pid_t parent;
} spawn_plan;

static void child_report(int fd, spawn_step step, int err, int fatal)
{
    spawn_report rep = {(int)step, err, fatal};
    ssize_t n;
    do {
        n = write(fd, &rep, sizeof rep);
    } while (n < 0 && errno == EINTR);
    if (fatal)
        _exit(127); /* no atexit handlers, no stdio buffers inherited from the daemon */
}

static void child_run(const spawn_plan *p)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    /* First, so there is no window in which the daemon can die unnoticed; then check it did not
     * die before we asked (we would have been reparented already). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        child_report(p->report_fd, STEP_SETUP, errno, 1);
    if (getppid() != p->parent)
        _exit(127);
    /* Own group: a stop signal reaches whatever the instance starts itself. */
    if (setpgid(0, 0) != 0)
        child_report(p->report_fd, STEP_SETUP, errno, 1);
    if (p->cg_procs_fd >= 0) {
        ssize_t n;
        do {
            n = write(p->cg_procs_fd, "0", 1);
        } while (n < 0 && errno == EINTR);
        if (n != 1)
            child_report(p->report_fd, STEP_CGROUP, errno, 0);
    }
    if (p->wd_fd >= 0) {
        char rec[16];
        size_t len = fmt_record(rec, '+', getpid());
        ssize_t n;
        do {
            n = send(p->wd_fd, rec, len, MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n != (ssize_t)len)
            child_report(p->report_fd, STEP_WATCHDOG, errno, 0);
    }
    /* Handlers installed by the daemon (libuv's) must not run here; ignored signals would stay
     * ignored across exec. Errors (SIGKILL, SIGSTOP, libc-internal signals) do not matter. */
    sa.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    /* Lift every descriptor we hand over above 2 first, so no dup2 onto 0..2 clobbers another. */
    int high[3];
    for (int i = 0; i < 3; i++) {
        high[i] = -1;
        if (p->fds[i] >= 0 && (high[i] = fcntl(p->fds[i], F_DUPFD_CLOEXEC, 10)) < 0)
            child_report(p->report_fd, STEP_STDIO, errno, 1);
    }
    for (int i = 0; i < 3; i++)
        if (high[i] >= 0 && dup2(high[i], i) < 0)
            child_report(p->report_fd, STEP_STDIO, errno, 1);
    if (p->workdir && chdir(p->workdir) != 0)
        child_report(p->report_fd, STEP_CHDIR, errno, 1);
#ifdef CLOSE_RANGE_CLOEXEC
    /* Descriptors the daemon forgot to mark close-on-exec must not leak into the instance (a
     * listening socket held by a worker outlives the daemon). Best effort: old kernels lack it. */
    (void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    execve(p->path, p->argv, p->envp);
    child_report(p->report_fd, STEP_EXEC, errno, 1);
}

static void describe_failure(char *err, size_t errlen, const sb_spawn *req, int step, int e)
{
    const char *what = strerror(e);
    switch (step) {
    case STEP_CHDIR:
        snprintf(err, errlen, "cannot change to workdir '%s': %s", req->workdir, what);
        break;
    case STEP_EXEC:
        snprintf(err, errlen, "cannot run '%s': %s", req->path, what);
        break;
    case STEP_STDIO:
        snprintf(err, errlen, "cannot set up stdin, stdout and stderr: %s", what);
        break;
    default:
        snprintf(err, errlen, "cannot set up the child process: %s", what);
        break;
    }
}

/* Parent: read the child's reports until EOF (exec) or a fatal one. */
static int read_reports(int fd, spawn_report *fatal, int *cg_err, int *wd_err)
{
    for (;;) {
        spawn_report rep;
        size_t got = 0;
        while (got < sizeof rep) {
            ssize_t n = read(fd, (char *)&rep + got, sizeof rep - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (got == 0)
            return 0;
        if (got != sizeof rep)
            return -EIO;
        if (rep.fatal) {
            *fatal = rep;
            return 1;
        }
        if (rep.step == STEP_CGROUP)
            *cg_err = rep.err ? rep.err : EIO;
        else if (rep.step == STEP_WATCHDOG)
            *wd_err = rep.err ? rep.err : EIO;
    }
}

/* The child's cgroup, made before fork: its folder and its cgroup.procs, open for the child,
 * and the folder itself (dir_fd) for clone3's CLONE_INTO_CGROUP. */
static char *cg_prepare(supervisor *s, int *procs_fd, int *dir_fd)
{
    *procs_fd = -1;
    *dir_fd = -1;
    if (s->cg_state != 1)
        return NULL;
    size_t len = strlen(s->cg_base) + 32;
    char *dir = malloc(len);
    if (!dir)
        return NULL;
    snprintf(dir, len, "%s/%llu", s->cg_base, (unsigned long long)++s->cg_seq);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        cg_give_up(s, errno);
        free(dir);
        return NULL;
    }
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/cgroup.procs", dir);
    *procs_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (*procs_fd < 0) {
        cg_give_up(s, errno);
        rmdir(dir);
        free(dir);
        return NULL;
    }
    *dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); /* -1: cgroup.procs it is */
    return dir;
}

/* fork() straight into the child's cgroup when the kernel can (clone3 with CLONE_INTO_CGROUP,
 * Linux 5.7): a write to cgroup.procs migrates the running child, and the first migration after
 * a quiet while waits for an RCU grace period (cgroup_threadgroup_rwsem): 10-20 ms added to
 * every cold start. *into is set when the child is in its cgroup already. Like fork(), the
 * child runs on a copy of the parent's memory (no CLONE_VM) and makes only async-signal-safe
 * calls. */
#define SB_CLONE_INTO_CGROUP 0x200000000ULL
struct sb_clone_args {
    uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid,
        set_tid_size, cgroup;
};

static pid_t fork_into(int cg_dir_fd, int *into)
{
    *into = 0;
#ifdef SYS_clone3
    static int clone3_unusable;
    if (cg_dir_fd >= 0 && !clone3_unusable) {
        struct sb_clone_args ca;
        memset(&ca, 0, sizeof ca);
        ca.flags = SB_CLONE_INTO_CGROUP;
        ca.exit_signal = SIGCHLD;
        ca.cgroup = (uint64_t)cg_dir_fd;
        long pid = syscall(SYS_clone3, &ca, sizeof ca);
        if (pid >= 0) {
            *into = 1;
            return (pid_t)pid;
        }
        if (errno == ENOSYS || errno == E2BIG)
            clone3_unusable = 1; /* an older kernel: fork() from now on */
        /* anything else (this cgroup refused it): fork(), then cgroup.procs, as before */
    }
#else
    (void)cg_dir_fd;
#endif
    return fork();
}

int supervisor_spawn(supervisor *s, void *owner, const sb_spawn *req, sb_child_cb on_exit,
                     void *arg, int64_t *pid_out, char *err, size_t errlen)
{
    if (errlen)
        err[0] = '\0';
    *pid_out = 0;
    if (s->freeing) {
        snprintf(err, errlen, "the daemon is shutting down");
        return -ESHUTDOWN;
    }
    if (!req || req->size < offsetof(sb_spawn, stderr_fd) + sizeof(int) || !req->path ||
        !req->argv || !req->argv[0]) {
        snprintf(err, errlen, "spawn request without its size, program or argv");
        return -EINVAL;
    }
    if (s->cg_state == 0)
        cg_probe(s);
    if (s->wd_fd < 0) {
        int rc = wd_start(s);
        if (rc != 0) {
            snprintf(err, errlen, "cannot start the supervision watchdog: %s", strerror(-rc));
            return rc;
        }
    }
    child *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->s = s;
    c->pidfd = -1;

    spawn_plan plan;
    memset(&plan, 0, sizeof plan);
    plan.path = req->path;
    plan.argv = req->argv;
    plan.envp = req->envp ? req->envp : environ;
    plan.workdir = req->workdir && req->workdir[0] ? req->workdir : NULL;
    plan.fds[0] = req->stdin_fd;
    plan.fds[1] = req->stdout_fd;
    plan.fds[2] = req->stderr_fd;
    plan.wd_fd = s->wd_fd;
    plan.parent = getpid();
    int devnull = -1, rep[2] = {-1, -1};
    if (req->stdin_fd < 0) {
        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (devnull < 0) {
            snprintf(err, errlen, "cannot open /dev/null: %s", strerror(errno));
            free(c);
            return -EIO;
        }
        plan.fds[0] = devnull;
    }
    if (pipe2(rep, O_CLOEXEC) != 0) {
        int e = errno;
        snprintf(err, errlen, "cannot make a pipe: %s", strerror(e));
        if (devnull >= 0)
            close(devnull);
        free(c);
        return -e;
    }
    plan.report_fd = rep[1];
    int cg_dir_fd = -1, into = 0;
    c->cg_dir = cg_prepare(s, &plan.cg_procs_fd, &cg_dir_fd);

    /* Block every signal across fork so no daemon handler runs in the child before it resets
     * them (libuv's handler would write into the daemon's own signal pipe). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t pid = fork_into(cg_dir_fd, &into);
    if (pid == 0) {
        close(rep[0]);
        if (into)
            plan.cg_procs_fd = -1; /* born in its cgroup */
        child_run(&plan);
    }
    int fork_err = errno;
    if (cg_dir_fd >= 0)
        close(cg_dir_fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(rep[1]);
    if (devnull >= 0)
        close(devnull);
    if (plan.cg_procs_fd >= 0)
        close(plan.cg_procs_fd);
    if (pid < 0) {
        close(rep[0]);
        snprintf(err, errlen, "cannot fork: %s", strerror(fork_err));
        if (c->cg_dir)
            rmdir(c->cg_dir);
        free_child(c);
        return -fork_err;
    }
    spawn_report fatal = {0, 0, 0};
    int cg_err = 0, wd_err = 0;
    int got = read_reports(rep[0], &fatal, &cg_err, &wd_err);
    close(rep[0]);
    if (got != 0) {
        /* The child is exiting right after its report: reap it here, nobody else knows it. */
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        s->stats.wait_calls++;
        if (c->cg_dir)
            rmdir(c->cg_dir);
        free_child(c);
        if (got < 0 || fatal.err <= 0) {
            snprintf(err, errlen, "the child process failed before exec without saying why");
            return -EIO;
        }
        describe_failure(err, errlen, req, fatal.step, fatal.err);
        return -fatal.err;
    }
    if (cg_err && c->cg_dir) {
        cg_give_up(s, cg_err);
        rmdir(c->cg_dir);
        free(c->cg_dir);
        c->cg_dir = NULL;
    }
    c->owner = owner;
    c->cb = on_exit;
    c->arg = arg;
    c->pid = pid;
    if (pidmap_put(&s->map, pid, c) != 0) {
        /* Cannot track it: it must not run unsupervised. */
        (void)kill(-pid, SIGKILL);
        (void)kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
        }
        if (c->cg_dir)
            rmdir(c->cg_dir);
        free_child(c);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->next = s->all;
    if (s->all)
        s->all->prev = c;
    s->all = c;
    s->live++;
    s->stats.spawned++;
    if (wd_err)
        wd_send(s, '+', pid, 0); /* a watchdog that died is replaced and told again anyway */
    child_watch(s, c);
    *pid_out = pid;
    return 0;
}

/* ---- owners, signals, the end ------------------------------------------------------------------
 */

int supervisor_kill_group(supervisor *s, void *owner, int64_t pid, int sig)
{
    if (pid <= 0 || pid > INT_MAX || sig < 0 || sig >= NSIG)
        return -EINVAL;
    child *c = pidmap_get(&s->map, (pid_t)pid);
    if (!c || c->done || !c->owner || c->owner != owner)
        return -ESRCH;
    return group_signal(s, c, sig);
}

void supervisor_forget_owner(supervisor *s, void *owner)
{
    if (!s || !owner)
        return;
    for (child *c = s->all; c; c = c->next) {
        if (c->owner != owner)
            continue;
        c->owner = NULL;
        c->cb = NULL;
        c->arg = NULL;
        (void)group_signal(s, c, SIGKILL);
    }
}

void supervisor_free(supervisor *s)
{
    if (!s)
        return;
    s->freeing = 1;
    for (child *c = s->all; c; c = c->next) {
        c->cb = NULL;
        (void)group_signal(s, c, SIGKILL);
    }
    while (s->all) {
        child *c = s->all;
        if (!c->reaped) {
            int status;
            while (waitpid(c->pid, &status, 0) < 0 && errno == EINTR) {
            }
            s->stats.wait_calls++;
            c->reaped = 1;
        }
        /* A group that is not empty yet stays recorded: the watchdog kills it once more. */
        if (group_empty(s, c))
            mark_pgid_gone(s, c);
        else
            c->pgid_gone = 1; /* so child_done sends no "-" for it */
        child_done(s, c);
    }
    if (s->wd_fd >= 0) {
        close(s->wd_fd); /* EOF: the watchdog kills what is left, removes the cgroups, exits */
        s->wd_fd = -1;
    }
    if (s->wd_pid > 0) {
        while (waitpid(s->wd_pid, NULL, 0) < 0 && errno == EINTR) {
        }
        s->wd_pid = 0;
    }
    wd_unwatch(s);
    if (s->linger_init)
        close_handle(s, (uv_handle_t *)&s->linger_timer);
    if (s->sigchld_init)
        close_handle(s, (uv_handle_t *)&s->sigchld);
    free(s->map.keys);
    free(s->map.vals);
    memset(&s->map, 0, sizeof s->map);
    if (s->pending_closes == 0) {
        free(s->cg_base);
        free(s);
    }
}
