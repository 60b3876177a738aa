/*
 * spawn.h - starting one child process for the process scaler: PATH lookup, fork, the child's
 * set-up (parent-death signal, own process group, signals reset, stdio, workdir) and exec, with
 * the failing step and errno carried back to the parent.
 */
#ifndef SCALEBUS_PROCESS_SPAWN_H
#define SCALEBUS_PROCESS_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* What the child was doing when it failed (reported with errno). */
typedef enum spawn_step {
    SPAWN_STEP_NONE = 0,
    SPAWN_STEP_PIPE,  /* parent: the report pipe */
    SPAWN_STEP_FORK,  /* parent: fork() */
    SPAWN_STEP_SETUP, /* child: prctl, setpgid, dup2 */
    SPAWN_STEP_CHDIR, /* child: chdir(workdir) */
    SPAWN_STEP_EXEC,  /* child: execve() */
    SPAWN_STEP_REPORT /* parent: the child's report was cut short */
} spawn_step;

typedef struct spawn_request {
    const char *path;    /* the program, already resolved (see spawn_resolve) */
    char *const *argv;   /* NULL-terminated */
    char *const *envp;   /* NULL-terminated */
    const char *workdir; /* NULL: the daemon's cwd */
    int stdin_fd;        /* -1: inherit; otherwise an fd >= 3 */
    int stdout_fd;
    int stderr_fd;
} spawn_request;

/* Fork and exec. Returns 0 once the child has exec'd (its pid in *pid; it leads its own process
 * group, pgid == pid). Otherwise a negative errno, *step says which step failed, and any child
 * that was forked has already been reaped. Blocks only until the child execs or fails. */
int spawn_start(const spawn_request *req, pid_t *pid, spawn_step *step);

/* Resolve argv0 like execvp, but against the PATH in envp (the child's environment) and with
 * relative PATH entries taken from workdir. A name with a slash is returned unchanged (the child
 * resolves it after chdir). Returns 0 and a malloc'd path in *out, or -ENOENT/-EACCES/-ENOMEM. */
int spawn_resolve(const char *argv0, char *const *envp, const char *workdir, char **out);

/* Pick a free TCP port on 127.0.0.1 by binding port 0 and reading what the kernel chose.
 * Returns the port (1..65535) or a negative errno. */
int spawn_pick_port(void);

#endif
