/*
 * spawn.c - fork/exec for the process scaler. We do not use uv_spawn because it has no hook
 * between fork and exec, and we need one: the child asks the kernel for SIGKILL when the daemon
 * dies (so a SIGKILLed daemon leaves no orphans), and makes sure the daemon did not die before
 * that request took effect. Everything the child touches is prepared before fork, so the child
 * makes only async-signal-safe calls; a close-on-exec pipe carries the failing step and errno
 * back (EOF on it means exec succeeded).
 */
#define _GNU_SOURCE
#include "spawn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct spawn_report {
    int step;
    int err;
} spawn_report;

/* Child only: tell the parent what failed and leave without running atexit handlers or
 * flushing stdio buffers inherited from the daemon. */
static void child_fail(int report_fd, spawn_step step, int err)
{
    spawn_report rep;
    rep.step = (int)step;
    rep.err = err;
    ssize_t n;
    do {
        n = write(report_fd, &rep, sizeof rep);
    } while (n < 0 && errno == EINTR);
    _exit(127);
}

/* dup2, also when fd already is target (dup2 would then keep FD_CLOEXEC and exec would close it).
 */
static int child_dup(int fd, int target)
{
    if (fd < 0)
        return 0;
    if (fd == target)
        return fcntl(target, F_SETFD, 0);
    return dup2(fd, target) < 0 ? -1 : 0;
}

static void child_run(const spawn_request *req, pid_t parent, int report_fd,
                      const struct sigaction *dfl)
{
    /* First, so there is no window in which the daemon can die unnoticed; then check it did not
     * die before we asked (we would have been reparented already). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        child_fail(report_fd, SPAWN_STEP_SETUP, errno);
    if (getppid() != parent)
        _exit(127);
    /* Own group: a stop signal reaches whatever the instance starts itself. */
    if (setpgid(0, 0) != 0)
        child_fail(report_fd, SPAWN_STEP_SETUP, errno);
    /* Handlers installed by the daemon (libuv's) must not run here; ignored signals would stay
     * ignored across exec. Errors (SIGKILL, SIGSTOP, libc-internal signals) do not matter. */
    for (int sig = 1; sig < NSIG; sig++)
        (void)sigaction(sig, dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    if (child_dup(req->stdin_fd, STDIN_FILENO) != 0 ||
        child_dup(req->stdout_fd, STDOUT_FILENO) != 0 ||
        child_dup(req->stderr_fd, STDERR_FILENO) != 0)
        child_fail(report_fd, SPAWN_STEP_SETUP, errno);
    if (req->workdir && chdir(req->workdir) != 0)
        child_fail(report_fd, SPAWN_STEP_CHDIR, errno);
#ifdef CLOSE_RANGE_CLOEXEC
    /* Descriptors the daemon forgot to mark close-on-exec must not leak into the instance (a
     * listening socket held by a worker outlives the daemon). Best effort: old kernels lack it. */
    (void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
#endif
    execve(req->path, req->argv, req->envp);
    child_fail(report_fd, SPAWN_STEP_EXEC, errno);
}

/* Parent: wait for the child's report. 0 bytes: exec happened. */
static int read_report(int fd, spawn_report *rep)
{
    size_t got = 0;
    while (got < sizeof *rep) {
        ssize_t n = read(fd, (char *)rep + got, sizeof *rep - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return (int)got;
}

int spawn_start(const spawn_request *req, pid_t *pid, spawn_step *step)
{
    *pid = 0;
    *step = SPAWN_STEP_NONE;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        *step = SPAWN_STEP_PIPE;
        return -errno;
    }
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);

    /* Block every signal across fork so no daemon handler runs in the child before it resets
     * them (libuv's handler would write into the daemon's own signal pipe). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        close(fds[0]);
        child_run(req, parent, fds[1], &dfl);
    }
    int fork_err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(fds[1]);
    if (child < 0) {
        close(fds[0]);
        *step = SPAWN_STEP_FORK;
        return -fork_err;
    }

    spawn_report rep;
    int got = read_report(fds[0], &rep);
    close(fds[0]);
    if (got == 0) {
        *pid = child;
        return 0;
    }
    /* The child is exiting right after its report: reap it here, nobody else knows its pid. */
    while (waitpid(child, NULL, 0) < 0 && errno == EINTR) {
    }
    if (got != (int)sizeof rep || rep.err <= 0) {
        *step = SPAWN_STEP_REPORT;
        return -EIO;
    }
    *step = (spawn_step)rep.step;
    return -rep.err;
}

/* Program path from one PATH entry; "" means the current directory, and a relative entry is
 * taken from workdir because that is where the child will be. */
static char *join_path(const char *dir, size_t dirlen, const char *workdir, const char *name)
{
    const char *pre = "";
    size_t prelen = 0;
    if (dirlen == 0) {
        dir = ".";
        dirlen = 1;
    }
    if (dir[0] != '/' && workdir) {
        pre = workdir;
        prelen = strlen(workdir);
    }
    size_t namelen = strlen(name);
    char *p = malloc(prelen + 1 + dirlen + 1 + namelen + 1);
    if (!p)
        return NULL;
    size_t at = 0;
    if (prelen) {
        memcpy(p, pre, prelen);
        p[prelen] = '/';
        at = prelen + 1;
    }
    memcpy(p + at, dir, dirlen);
    at += dirlen;
    p[at++] = '/';
    memcpy(p + at, name, namelen + 1);
    return p;
}

static const char *env_lookup(char *const *envp, const char *key)
{
    size_t klen = strlen(key);
    for (size_t i = 0; envp[i]; i++)
        if (strncmp(envp[i], key, klen) == 0 && envp[i][klen] == '=')
            return envp[i] + klen + 1;
    return NULL;
}

int spawn_resolve(const char *argv0, char *const *envp, const char *workdir, char **out)
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
        char *cand = join_path(p, len, workdir, argv0);
        if (!cand)
            return -ENOMEM;
        struct stat sb;
        if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode)) {
            if (access(cand, X_OK) == 0) {
                *out = cand;
                return 0;
            }
            result = -EACCES; /* as execvp: remember, but a later entry may still work */
        }
        free(cand);
        if (!end)
            break;
        p = end + 1;
    }
    return result;
}

int spawn_pick_port(void)
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
