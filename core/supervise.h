/*
 * supervise.h - child processes of the daemon's plugins: spawning (fork/exec with a parent-death
 * signal and a process group of its own), one reaper for the whole daemon (O(1) per exit), and
 * the guarantee that no process of a spawned group outlives the daemon, not even when the daemon
 * is SIGKILLed: a watchdog process, forked on the first spawn, holds a pipe to the daemon and
 * kills every recorded group (and the daemon's cgroup of children, where one could be made)
 * when it reads EOF. The host functions spawn() and kill_group() are thin wrappers over this.
 *
 * What holds where (the README's "Supervision" section says the same to users):
 * - cgroup v2 where the daemon may create cgroups below its own: each child gets a cgroup of its
 *   own (moved there between fork and exec), so a group is "empty" only when every process it
 *   started is gone, setsid escapees included, and on EOF the watchdog writes 1 to cgroup.kill.
 * - otherwise process groups: every process that stays in the child's process group is covered;
 *   a double-forked daemon that calls setsid escapes.
 *
 * Everything here runs on the loop thread; the supervisor's handles never keep the loop alive on
 * their own (they are unref'd). Callbacks must not call supervisor_free.
 */
#ifndef SCALEBUS_SUPERVISE_H
#define SCALEBUS_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "scalebus/plugin.h"

typedef struct supervisor supervisor;

/* NULL on ENOMEM. Nothing is forked until the first spawn. The environment variable
 * SCALEBUS_SUPERVISE may turn mechanisms off for troubleshooting: a comma-separated list of
 * "no-cgroup" (process groups only) and "no-pidfd" (reap on SIGCHLD). */
supervisor *supervisor_new(uv_loop_t *loop);

/* SIGKILL every group still recorded, reap them, stop the watchdog (which then exits), close
 * the handles. Run the loop afterwards so libuv can finish closing them. NULL: nothing. */
void supervisor_free(supervisor *s);

/* Where the supervisor's own lines go (the cgroup/pidfd fallbacks at debug level, a watchdog
 * that died at warn level). NULL fn: nowhere, the default. */
typedef void (*supervisor_log_fn)(void *arg, sb_log_level level, const char *msg);
void supervisor_set_logger(supervisor *s, supervisor_log_fn fn, void *arg);

/* Turn mechanisms off before the first spawn (tests; see SCALEBUS_SUPERVISE). */
#define SUPERVISE_NO_CGROUP 0x1u
#define SUPERVISE_NO_PIDFD 0x2u
void supervisor_disable(supervisor *s, unsigned what);

/* Start req (see sb_spawn; the caller has checked req->size and zero-filled what the plugin did
 * not know). owner tags the child (the sb_instance), for kill_group and forget_owner. Returns 0
 * and *pid, or a negative errno with one line in err ("cannot run './nope': No such file or
 * directory", "cannot change to workdir '/srv': ..."). on_exit may be NULL. */
int supervisor_spawn(supervisor *s, void *owner, const sb_spawn *req, sb_child_cb on_exit,
                     void *arg, int64_t *pid, char *err, size_t errlen);

/* Signal the group of a child owner spawned, until the group is empty (after the leader has
 * exited too). With a cgroup, SIGKILL also goes through cgroup.kill and other signals also reach
 * members that left the process group. sig 0: test. 0, or -ESRCH (empty, or not owner's). */
int supervisor_kill_group(supervisor *s, void *owner, int64_t pid, int sig);

/* The owner is being destroyed: SIGKILL what is left of its groups, and never call its
 * callbacks again (their exits are still reaped). */
void supervisor_forget_owner(supervisor *s, void *owner);

typedef struct supervisor_stats {
    uint64_t spawned;       /* children started (exec'd) */
    uint64_t exited;        /* their leaders reaped */
    uint64_t wait_calls;    /* waitpid/waitid calls made: one per exit when pidfds are used */
    size_t live;            /* children whose leader or group is still there */
    int64_t watchdog_pid;   /* 0: none running */
    int pidfd;              /* 1: exits are seen through pidfds; 0: through SIGCHLD */
    int cgroup;             /* 1: children get a cgroup each; 0: process groups only; -1: not
                               decided yet (no spawn so far) */
    const char *cgroup_dir; /* the cgroup holding the children's cgroups, or NULL */
} supervisor_stats;

void supervisor_get_stats(const supervisor *s, supervisor_stats *out);

#endif
