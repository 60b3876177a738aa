/*
 * supervise.h - child processes of the daemon's plugins: spawning (fork/exec with a parent-death
 * signal and a process group of its own), one reaper for the whole daemon (O(1) per exit), and
 * the guarantee that no process of a spawned group outlives the daemon, not even when the daemon
 * is SIGKILLed: a watchdog process, forked on the first spawn, holds a pipe to the daemon and
 * kills every recorded group (and the daemon's cgroup of children, where one could be made)
 * when it reads EOF. The host functions spawn() and kill_group() are thin wrappers over this.
 */
#ifndef SCALEBUS_SUPERVISE_H
#define SCALEBUS_SUPERVISE_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "scalebus/plugin.h"

typedef struct supervisor supervisor;

/* NULL on ENOMEM. Nothing is forked until the first spawn. */
supervisor *supervisor_new(uv_loop_t *loop);

/* SIGKILL every group still recorded, reap them, stop the watchdog (which then exits), close
 * the handles. Run the loop afterwards so libuv can finish closing them. */
void supervisor_free(supervisor *s);

/* Start req (see sb_spawn). owner tags the child (the sb_instance), for kill_group and
 * forget_owner. Returns 0 and *pid, or a negative errno with one line in err. */
int supervisor_spawn(supervisor *s, void *owner, const sb_spawn *req, sb_child_cb on_exit,
                     void *arg, int64_t *pid, char *err, size_t errlen);

/* Signal the group of a child owner spawned. 0, or -ESRCH (empty group, or not owner's). */
int supervisor_kill_group(supervisor *s, void *owner, int64_t pid, int sig);

/* The owner is being destroyed: SIGKILL what is left of its groups, and never call its
 * callbacks again (their exits are still reaped). */
void supervisor_forget_owner(supervisor *s, void *owner);

#endif
