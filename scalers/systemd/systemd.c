/*
 * systemd.c - the `systemd` scaler: N instances of a template unit (ci-agent@1.service ..
 * ci-agent@N.service) or N transient units running a command (web-1.service ..), through
 * systemd's D-Bus API, on the fleet contract (scalebus/scaler.h: adoption, one call at a time,
 * back-off, reconcile, newest first, --dry-run, on_stop).
 *
 * The bus is sd-bus (libsystemd) driven by the daemon's loop: the bus fd on a uv_poll with the
 * events sd_bus_get_events() asks for, sd_bus_get_timeout() on a uv timer, sd_bus_process() until
 * it returns 0. Every call is asynchronous (sd_bus_call_async). A start or stop is followed to
 * its job's JobRemoved signal (we Subscribe to the manager and match the signal once per
 * connection): done -> done, canceled -> busy, failed/dependency/timeout -> failed with the
 * unit's own result; a job still running when `timeout` passes -> busy.
 *
 * Members are the units ListUnitsByPatterns finds under our pattern whose name parses as ours
 * (an index >= 1): another ci-agent@ instance started by hand is adopted; ci-agent@x.service is
 * outside the pattern and never touched. started_at is the unit's ActiveEnterTimestamp
 * (InactiveExitTimestamp while activating), read with one Get per member only when the last list
 * did not already know it (systemd_list.c: same state, no job, no JobRemoved since).
 *
 * bus: user is DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus (sd_bus_open_user), else
 * /run/user/UID/bus, opened by hand (a system service with User= has neither variable).
 *
 * A lost bus (the manager gone, dbus restarted) fails the call in flight with "cannot reach the
 * system bus at ...", the connection is dropped, and the fleet's back-off paces the reconnects.
 * Handles: the poll is closed before the bus (and so its fd) is released; stop() returns
 * SB_PENDING until both handles have closed.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <uv.h>

#include <scalebus/plugin.h>
#include <scalebus/scaler.h>

#include "systemd_list.h"
#include "systemd_units.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER "org.freedesktop.systemd1.Manager"
#define SD_UNIT_PATH "/org/freedesktop/systemd1/unit"
#define SD_MAX_MEMBERS 4096

enum {
    OPT_UNIT,
    OPT_COMMAND,
    OPT_PREFIX,
    OPT_PROPERTIES,
    OPT_BUS,
    OPT_STOP_GRACE,
    OPT_TIMEOUT,
    OPT_RECONCILE, /* SB_FLEET_OPTIONS: reconcile_every, on_stop, drain_timeout */
};

static const sb_option_spec systemd_options[] = {
    [OPT_UNIT] = {"unit", SB_OPT_STRING, NULL, 0,
                  "a template unit (ci-agent@.service): members are ci-agent@1.service .. @N"},
    [OPT_COMMAND] = {"command", SB_OPT_LIST, NULL, 0,
                     "instead of unit: run this argv (absolute program path) as transient units "
                     "<prefix>-<index>.service"},
    [OPT_PREFIX] = {"prefix", SB_OPT_STRING, NULL, 0,
                    "with command: the transient units' name prefix (default: the scaler's id)"},
    [OPT_PROPERTIES] = {"properties", SB_OPT_MAP, NULL, 0,
                        "with command: unit settings (MemoryMax: 512M, User: ci, CPUQuota: 50%, "
                        "Environment: \"A=1 B=2\", ...)"},
    [OPT_BUS] = {"bus", SB_OPT_STRING, "system", 0,
                 "system (DBUS_SYSTEM_BUS_ADDRESS honoured) or user (the caller's user manager)"},
    [OPT_STOP_GRACE] = {"stop_grace", SB_OPT_DURATION, NULL, 0,
                        "with command: TimeoutStopSec of the transient units (a template's unit "
                        "file sets its own)"},
    [OPT_TIMEOUT] = {"timeout", SB_OPT_DURATION, "60s", 0,
                     "how long a call, and then its job, may take; a job still running then is "
                     "busy"},
    SB_FLEET_OPTIONS("keep"),
    {NULL, 0, NULL, 0, NULL},
};

typedef struct sd_scaler sd_scaler;

/* One bus connection and its two handles. Outlives the scaler when the handles close after
 * destroy() (the daemon runs the loop until every closing handle has closed). */
typedef struct sd_conn {
    uv_poll_t poll;
    uv_timer_t timer;
    sd_bus *bus;
    int open_handles;
    sd_scaler *owner; /* NULL once the scaler is gone */
    struct sd_conn *next_closing;
} sd_conn;

typedef enum sd_op { OP_NONE, OP_LIST, OP_START, OP_STOP } sd_op;

struct sd_scaler {
    sb_fleet *fleet; /* first: sb_fleet_scaler_on_event reads it */
    sb_instance *inst;
    const sb_host *host;
    uv_loop_t *loop;

    sd_naming naming;
    char pattern[SD_UNIT_NAME_MAX + 2];
    int transient;
    const char *const *argv; /* command (host-owned option strings) */
    size_t argc;
    sd_prop *props;
    size_t nprops;
    int has_description;
    int user_bus;
    char bus_name[8];  /* "system" or "user" */
    char address[300]; /* what the errors show */
    uint64_t timeout_us;
    uint64_t stop_grace_us; /* 0: not set */

    sd_conn *conn;
    sd_bus_slot *match_slot;
    int broken;             /* the connection is lost: dropped after sd_bus_process returns */
    int in_process;         /* inside sd_bus_process: the connection cannot be dropped now */
    int was_down;           /* a connection failed: say so when one works again */
    int subscribed;         /* Subscribe answered: JobRemoved signals come, stamps can be kept */
    sd_conn *closing_conns; /* connections whose handles are still closing */
    int stopping;           /* stop() returned SB_PENDING: host->stopped once closing is 0 */

    /* The call in flight (one at a time, as the fleet asks). */
    sd_op op;
    sd_bus_slot *call_slot;
    char op_unit[SD_UNIT_NAME_MAX];
    const char *op_method; /* "StartUnit", "StopUnit", ... for messages */
    char job_path[SD_UNIT_NAME_MAX];
    sb_timer *job_timer; /* the job's own timeout */

    /* A list in flight: its entries, then one Get of a timestamp per member whose started-at
     * is not known from the last list, all in flight at once. */
    sd_entry *listing;
    size_t nlisting, gets_pending, gets_sent;
    sd_bus_slot **get_slots;
    char list_error[400];

    sd_entry *known; /* the last list */
    size_t nknown;
};

/* ---- small helpers ------------------------------------------------------------------------- */

/* snprintf for messages: cut to the buffer on purpose (a message is one line of bounded size). */
static int sd_fmt(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int sd_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    return w;
}

static uint64_t now_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* What a failed call says, in one clean line: "Unit x.service not found.", or for a lost
 * connection "cannot reach the system bus at ...: Connection terminated". */
static int is_disconnect(const sd_bus_error *e)
{
    return sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY) && e->message &&
           strstr(e->message, "terminated");
}

static void error_text(sd_scaler *s, const sd_bus_error *e, char *buf, size_t len)
{
    char msg[300];
    sd_clean_text(e->message ? e->message : e->name ? e->name : "unknown error", msg, sizeof msg);
    if (is_disconnect(e)) {
        s->broken = 1;
        sd_fmt(buf, len, "cannot reach the %s bus at %s: %s", s->bus_name, s->address, msg);
    } else if (sd_bus_error_has_name(e, SD_BUS_ERROR_NO_REPLY)) {
        sd_fmt(buf, len, "no reply from systemd: %s", msg);
    } else {
        char name[120];
        sd_clean_text(e->name ? e->name : "", name, sizeof name);
        sd_fmt(buf, len, "%s (%s)", msg, name);
    }
}

/* The user bus: DBUS_SESSION_BUS_ADDRESS, else $XDG_RUNTIME_DIR/bus, else /run/user/UID/bus
 * (a daemon run as a system service with User= has neither variable). Returns 1 when the address
 * is the last one, which sd_bus_open_user() would not find. */
static int set_address(sd_scaler *s)
{
    const char *a;
    if (s->user_bus) {
        a = getenv("DBUS_SESSION_BUS_ADDRESS");
        if (!a || !*a) {
            const char *rt = getenv("XDG_RUNTIME_DIR");
            if (rt && *rt) {
                char shown[256];
                sd_clean_text(rt, shown, sizeof shown);
                sd_fmt(s->address, sizeof s->address, "unix:path=%s/bus", shown);
                return 0;
            }
            sd_fmt(s->address, sizeof s->address, "unix:path=/run/user/%u/bus", (unsigned)getuid());
            return 1;
        }
    } else {
        a = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        if (!a || !*a)
            a = "unix:path=/run/dbus/system_bus_socket";
    }
    sd_clean_text(a, s->address, sizeof s->address);
    return 0;
}

/* A bus connection to s->address set by hand: the user bus when no variable names it. */
static int open_at_address(sd_scaler *s, sd_bus **out)
{
    sd_bus *bus = NULL;
    int r = sd_bus_new(&bus);
    if (r >= 0)
        r = sd_bus_set_address(bus, s->address);
    if (r >= 0)
        r = sd_bus_set_bus_client(bus, 1);
    if (r >= 0)
        r = sd_bus_start(bus);
    if (r < 0) {
        sd_bus_unref(bus);
        return r;
    }
    *out = bus;
    return 0;
}

/* ---- the connection on the loop ------------------------------------------------------------ */

static void conn_handle_closed(uv_handle_t *h)
{
    sd_conn *c = h->data;
    if (--c->open_handles > 0)
        return;
    /* The poll is closed: now the fd can go. */
    sd_bus_close(c->bus);
    sd_bus_unref(c->bus);
    sd_scaler *s = c->owner;
    if (s) {
        sd_conn **pp = &s->closing_conns;
        while (*pp && *pp != c)
            pp = &(*pp)->next_closing;
        if (*pp)
            *pp = c->next_closing;
    }
    free(c);
    if (s && !s->closing_conns && s->stopping) {
        s->stopping = 0;
        s->host->stopped(s->inst);
    }
}

static void drop_call(sd_scaler *s)
{
    s->call_slot = sd_bus_slot_unref(s->call_slot);
    if (s->get_slots)
        for (size_t i = 0; i < s->nlisting; i++)
            s->get_slots[i] = sd_bus_slot_unref(s->get_slots[i]);
    free(s->get_slots);
    s->get_slots = NULL;
    sd_entries_free(s->listing, s->nlisting);
    s->listing = NULL;
    s->nlisting = s->gets_pending = s->gets_sent = 0;
    if (s->job_timer) {
        s->host->timer_free(s->job_timer);
        s->job_timer = NULL;
    }
    s->job_path[0] = '\0';
}

static void answer(sd_scaler *s, sb_action_result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Drop the connection: slots first (their callbacks never run), then the handles; the bus is
 * released once the poll has closed. An op still waiting (a job we no longer hear about) fails. */
static void conn_drop(sd_scaler *s)
{
    sd_conn *c = s->conn;
    if (!c)
        return;
    s->conn = NULL;
    s->match_slot = sd_bus_slot_unref(s->match_slot);
    /* Signals may be missed until the next connection subscribes: read every started-at again. */
    s->subscribed = 0;
    sd_stamps_forget_all(s->known, s->nknown);
    sd_op op = s->op;
    char unit[SD_UNIT_NAME_MAX];
    sd_fmt(unit, sizeof unit, "%s", s->op_unit);
    drop_call(s);
    c->next_closing = s->closing_conns;
    s->closing_conns = c;
    uv_poll_stop(&c->poll);
    uv_close((uv_handle_t *)&c->poll, conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
    if (s->broken)
        s->was_down = 1;
    s->broken = 0;
    if (op == OP_LIST)
        sb_fleet_list_failed(s->fleet, SB_ACTION_FAILED,
                             "cannot reach the %s bus at %s: the connection was lost", s->bus_name,
                             s->address);
    else if (op != OP_NONE)
        answer(s, SB_ACTION_FAILED,
               "cannot reach the %s bus at %s: the connection was lost while following %s",
               s->bus_name, s->address, unit);
}

static void pump(sd_scaler *s);

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    sd_conn *c = h->data;
    if (c->owner)
        pump(c->owner);
}

static void on_bus_timer(uv_timer_t *h)
{
    sd_conn *c = h->data;
    if (c->owner)
        pump(c->owner);
}

/* Arm the poll and the timer for what sd-bus wants next. */
static void conn_arm(sd_scaler *s)
{
    sd_conn *c = s->conn;
    if (!c || s->in_process)
        return;
    int ev = sd_bus_get_events(c->bus);
    if (ev < 0) {
        s->broken = 1;
        conn_drop(s);
        return;
    }
    int mask = 0;
    if (ev & POLLIN)
        mask |= UV_READABLE;
    if (ev & POLLOUT)
        mask |= UV_WRITABLE;
    uv_poll_start(&c->poll, mask, on_poll);
    uint64_t until = UINT64_MAX;
    if (sd_bus_get_timeout(c->bus, &until) < 0 || until == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = now_usec();
    uint64_t ms = until > now ? (until - now + 999) / 1000 : 0;
    uv_timer_start(&c->timer, on_bus_timer, ms, 0);
}

static void pump(sd_scaler *s)
{
    if (!s->conn || s->in_process)
        return;
    s->in_process = 1;
    for (;;) {
        /* A callback may have dropped nothing (in_process), but may have marked it broken. */
        int r = sd_bus_process(s->conn->bus, NULL);
        if (r < 0) {
            s->broken = 1;
            break;
        }
        if (r == 0)
            break;
    }
    s->in_process = 0;
    if (s->broken || sd_bus_is_open(s->conn->bus) <= 0) {
        s->broken = 1;
        s->host->log(s->inst, SB_LOG_DEBUG, "the %s bus connection is gone", s->bus_name);
        conn_drop(s);
        return;
    }
    conn_arm(s);
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

static int on_subscribed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    const sd_bus_error *e = sd_bus_message_get_error(m);
    if (e && !is_disconnect(e)) {
        char msg[300];
        error_text(s, e, msg, sizeof msg);
        s->host->log(s->inst, SB_LOG_WARN, "Subscribe: %s (job results will time out)", msg);
    }
    s->subscribed = !e;
    return 0;
}

/* A working connection, made now if there is none. Returns 0, or a negative code with one line
 * in err. */
static int conn_ensure(sd_scaler *s, char *err, size_t errlen)
{
    if (s->conn && (s->broken || sd_bus_is_open(s->conn->bus) <= 0)) {
        if (s->in_process) {
            sd_fmt(err, errlen, "cannot reach the %s bus at %s: the connection was lost",
                   s->bus_name, s->address);
            return -ENOTCONN;
        }
        s->broken = 1;
        conn_drop(s);
    }
    if (s->conn)
        return 0;
    int by_hand = set_address(s);
    sd_bus *bus = NULL;
    int r = by_hand       ? open_at_address(s, &bus)
            : s->user_bus ? sd_bus_open_user(&bus)
                          : sd_bus_open_system(&bus);
    if (r < 0) {
        s->was_down = 1;
        sd_fmt(err, errlen, "cannot reach the %s bus at %s: %s", s->bus_name, s->address,
               strerror(-r));
        return r;
    }
    sd_conn *c = calloc(1, sizeof *c);
    if (!c) {
        sd_bus_unref(bus);
        sd_fmt(err, errlen, "out of memory");
        return -ENOMEM;
    }
    c->bus = bus;
    c->owner = s;
    r = uv_poll_init(s->loop, &c->poll, sd_bus_get_fd(bus));
    if (r < 0) {
        sd_bus_unref(bus);
        free(c);
        sd_fmt(err, errlen, "cannot watch the %s bus: %s", s->bus_name, uv_strerror(r));
        return -EIO;
    }
    uv_timer_init(s->loop, &c->timer);
    c->poll.data = c->timer.data = c;
    c->open_handles = 2;
    s->conn = c;
    s->broken = 0;
    /* The match is in place before any call of ours reaches the manager (one connection, in
     * order), and Subscribe makes the manager send job signals at all. */
    r = sd_bus_match_signal_async(bus, &s->match_slot, SD_DEST, SD_PATH, SD_MANAGER, "JobRemoved",
                                  on_job_removed, NULL, s);
    if (r >= 0)
        r = sd_bus_call_method_async(bus, NULL, SD_DEST, SD_PATH, SD_MANAGER, "Subscribe",
                                     on_subscribed, s, "");
    if (r < 0) {
        sd_fmt(err, errlen, "cannot reach the %s bus at %s: %s", s->bus_name, s->address,
               strerror(-r));
        s->broken = 1;
        conn_drop(s);
        return r;
    }
    if (s->was_down) {
        s->host->log(s->inst, SB_LOG_INFO, "connected to the %s bus at %s", s->bus_name,
                     s->address);
        s->was_down = 0;
    }
    return 0;
}

/* Send m with our timeout; the reply goes to cb. */
static int send_call(sd_scaler *s, sd_bus_message *m, sd_bus_slot **slot,
                     sd_bus_message_handler_t cb)
{
    int r = sd_bus_call_async(s->conn->bus, slot, m, cb, s, s->timeout_us);
    conn_arm(s);
    return r;
}

/* ---- answering the fleet -------------------------------------------------------------------- */

static void answer(sd_scaler *s, sb_action_result r, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->op = OP_NONE;
    drop_call(s);
    sb_fleet_action_done(s->fleet, r, "%s", msg);
}

/* ---- list ----------------------------------------------------------------------------------- */

static void list_fail(sd_scaler *s, const char *msg)
{
    s->op = OP_NONE;
    drop_call(s);
    sb_fleet_list_failed(s->fleet, SB_ACTION_FAILED, "%s", msg);
}

static void list_finish(sd_scaler *s)
{
    if (s->list_error[0]) {
        char msg[sizeof s->list_error];
        sd_fmt(msg, sizeof msg, "%s", s->list_error);
        list_fail(s, msg);
        return;
    }
    /* Oldest first, so the fleet's "later is newer" holds within a second too. */
    sd_entries_sort(s->listing, s->nlisting);
    sb_member *ms = s->nlisting ? calloc(s->nlisting, sizeof *ms) : NULL;
    if (s->nlisting && !ms) {
        list_fail(s, "out of memory");
        return;
    }
    for (size_t i = 0; i < s->nlisting; i++) {
        ms[i].id = s->listing[i].name;
        ms[i].state = s->listing[i].state;
        ms[i].started_at = (int64_t)(s->listing[i].stamp_us / 1000000u);
    }
    s->host->log(s->inst, SB_LOG_DEBUG,
                 "listed %zu member(s) with 1 ListUnitsByPatterns and %zu Get(s) of a timestamp",
                 s->nlisting, s->gets_sent);
    sd_entries_free(s->known, s->nknown);
    s->known = s->listing;
    s->nknown = s->nlisting;
    s->listing = NULL;
    s->nlisting = 0;
    size_t n = s->nknown;
    s->op = OP_NONE;
    drop_call(s);
    sb_fleet_listed(s->fleet, ms, n);
    free(ms);
}

static int on_timestamp(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    sd_bus_slot *slot = sd_bus_get_current_slot(sd_bus_message_get_bus(m));
    size_t i = 0;
    while (i < s->nlisting && s->get_slots[i] != slot)
        i++;
    if (i == s->nlisting)
        return 0;
    s->get_slots[i] = sd_bus_slot_unref(s->get_slots[i]);
    const sd_bus_error *e = sd_bus_message_get_error(m);
    uint64_t t = 0;
    if (e) {
        /* A unit that went away meanwhile keeps 0 (read again next time); a lost bus fails the
         * list. */
        if (is_disconnect(e) && !s->list_error[0])
            error_text(s, e, s->list_error, sizeof s->list_error);
    } else if (sd_read_stamp(m, &t) >= 0) {
        s->listing[i].stamp_us = t;
        s->listing[i].stamp_known = 1;
    }
    if (--s->gets_pending == 0)
        list_finish(s);
    return 0;
}

/* One Get of the timestamp that gives entry i's started-at. */
static int send_stamp_get(sd_scaler *s, size_t i)
{
    sd_bus_message *q = NULL;
    int r = sd_bus_message_new_method_call(s->conn->bus, &q, SD_DEST, s->listing[i].path,
                                           "org.freedesktop.DBus.Properties", "Get");
    if (r >= 0)
        r = sd_bus_message_append(q, "ss", "org.freedesktop.systemd1.Unit",
                                  sd_stamp_property(s->listing[i].state));
    if (r >= 0)
        r = send_call(s, q, &s->get_slots[i], on_timestamp);
    sd_bus_message_unref(q);
    return r;
}

static int on_list(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    s->call_slot = sd_bus_slot_unref(s->call_slot);
    const sd_bus_error *e = sd_bus_message_get_error(m);
    char msg[400];
    if (e) {
        char why[360];
        error_text(s, e, why, sizeof why);
        sd_fmt(msg, sizeof msg, "ListUnitsByPatterns %s: %s", s->pattern, why);
        list_fail(s, is_disconnect(e) ? why : msg);
        return 0;
    }
    int r = sd_list_parse(m, &s->naming, SD_MAX_MEMBERS, &s->listing, &s->nlisting);
    if (r < 0) {
        sd_fmt(msg, sizeof msg, "ListUnitsByPatterns %s: cannot read the reply: %s", s->pattern,
               strerror(-r));
        list_fail(s, msg);
        return 0;
    }
    s->list_error[0] = '\0';
    /* Without job signals a restart behind our back would go unseen: read every started-at. */
    size_t need =
        s->subscribed ? sd_stamps_carry(s->listing, s->nlisting, s->known, s->nknown) : s->nlisting;
    if (need == 0) {
        list_finish(s);
        return 0;
    }
    s->get_slots = calloc(s->nlisting, sizeof *s->get_slots);
    if (!s->get_slots) {
        list_fail(s, "out of memory");
        return 0;
    }
    for (size_t i = 0; i < s->nlisting; i++) {
        if (s->listing[i].stamp_known)
            continue;
        r = send_stamp_get(s, i);
        if (r < 0) {
            sd_fmt(msg, sizeof msg, "Get %s of %s: %s", sd_stamp_property(s->listing[i].state),
                   s->listing[i].name, strerror(-r));
            list_fail(s, msg);
            return 0;
        }
        s->gets_pending++;
        s->gets_sent++;
    }
    return 0;
}

static void systemd_list(void *self, sb_fleet *f)
{
    (void)f;
    sd_scaler *s = self;
    char err[400];
    if (conn_ensure(s, err, sizeof err) < 0) {
        sb_fleet_list_failed(s->fleet, SB_ACTION_FAILED, "%s", err);
        return;
    }
    static const char *const states[] = {"active",       "reloading", "activating",
                                         "deactivating", "failed",    NULL};
    const char *patterns[] = {s->pattern, NULL};
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_method_call(s->conn->bus, &m, SD_DEST, SD_PATH, SD_MANAGER,
                                           "ListUnitsByPatterns");
    if (r >= 0)
        r = sd_bus_message_append_strv(m, (char **)states);
    if (r >= 0)
        r = sd_bus_message_append_strv(m, (char **)patterns);
    s->op = OP_LIST;
    if (r >= 0)
        r = send_call(s, m, &s->call_slot, on_list);
    sd_bus_message_unref(m);
    if (r < 0) {
        sd_fmt(err, sizeof err, "ListUnitsByPatterns %s: %s", s->pattern, strerror(-r));
        list_fail(s, err);
    }
}

/* ---- start and stop, followed to the job's end ---------------------------------------------- */

static const sd_entry *known_find(const sd_scaler *s, const char *name)
{
    for (size_t i = 0; i < s->nknown; i++)
        if (strcmp(s->known[i].name, name) == 0)
            return &s->known[i];
    return NULL;
}

/* The next member's name: the lowest index no listed unit of ours holds. */
static void next_name(const sd_scaler *s, char *buf, size_t len)
{
    int64_t used[SD_MAX_MEMBERS];
    size_t n = 0;
    for (size_t i = 0; i < s->nknown && n < SD_MAX_MEMBERS; i++)
        used[n++] = s->known[i].index;
    if (sd_unit_name(&s->naming, sd_lowest_free_index(used, n), buf, len) < 0)
        sd_fmt(buf, len, "?");
}

static int on_unit_status(sd_bus_message *m, void *userdata, sd_bus_error *ret_error);

/* The job failed: read the service's own result before answering. */
static void job_failed(sd_scaler *s, const char *result)
{
    char path[SD_UNIT_NAME_MAX * 3 + 64];
    char *enc = NULL;
    int r = sd_bus_path_encode(SD_UNIT_PATH, s->op_unit, &enc);
    sd_fmt(s->job_path, sizeof s->job_path, "%s", result); /* kept for the message */
    if (r >= 0) {
        sd_fmt(path, sizeof path, "%s", enc);
        free(enc);
        sd_bus_message *q = NULL;
        r = sd_bus_message_new_method_call(s->conn->bus, &q, SD_DEST, path,
                                           "org.freedesktop.DBus.Properties", "GetAll");
        if (r >= 0)
            r = sd_bus_message_append(q, "s", "org.freedesktop.systemd1.Service");
        if (r >= 0)
            r = send_call(s, q, &s->call_slot, on_unit_status);
        sd_bus_message_unref(q);
    }
    if (r < 0)
        answer(s, SB_ACTION_FAILED, "%s %s: job %s", s->op_method, s->op_unit, result);
}

static int on_unit_status(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    s->call_slot = sd_bus_slot_unref(s->call_slot);
    char result[64];
    sd_fmt(result, sizeof result, "%s", s->job_path);
    char svc_result[64] = "", status_text[200] = "";
    int32_t code = 0, status = 0;
    if (!sd_bus_message_get_error(m) && sd_bus_message_enter_container(m, 'a', "{sv}") >= 0) {
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
            const char *key, *str;
            if (sd_bus_message_read(m, "s", &key) < 0)
                break;
            int r;
            if (strcmp(key, "Result") == 0 && sd_bus_message_read(m, "v", "s", &str) >= 0)
                sd_clean_text(str, svc_result, sizeof svc_result);
            else if (strcmp(key, "StatusText") == 0 && sd_bus_message_read(m, "v", "s", &str) >= 0)
                sd_clean_text(str, status_text, sizeof status_text);
            else if (strcmp(key, "ExecMainCode") == 0)
                sd_bus_message_read(m, "v", "i", &code);
            else if (strcmp(key, "ExecMainStatus") == 0)
                sd_bus_message_read(m, "v", "i", &status);
            else if ((r = sd_bus_message_skip(m, "v")) < 0)
                break;
            if (sd_bus_message_exit_container(m) < 0)
                break;
        }
    }
    char detail[400] = "";
    if (svc_result[0]) {
        /* ExecMainCode is a CLD_* code: 1 exited (status = exit code), 2/3 killed/dumped
         * (status = signal). */
        char how[64] = "";
        if (code == 1)
            sd_fmt(how, sizeof how, ", exit status %d", (int)status);
        else if (code == 2 || code == 3)
            sd_fmt(how, sizeof how, ", killed by signal %d", (int)status);
        sd_fmt(detail, sizeof detail, " (the unit's result: %s%s%s%s)", svc_result, how,
               status_text[0] ? ", status: " : "", status_text);
    }
    answer(s, SB_ACTION_FAILED, "%s %s: job %s%s", s->op_method, s->op_unit, result, detail);
    return 0;
}

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    uint32_t id;
    const char *path, *unit, *result;
    if (sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0)
        return 0;
    /* Any job on a unit of ours (ours or someone else's) may have moved its started-at. */
    if (sd_unit_index(&s->naming, unit) >= 0) {
        sd_stamps_forget(s->known, s->nknown, unit);
        sd_stamps_forget(s->listing, s->nlisting, unit);
    }
    if ((s->op != OP_START && s->op != OP_STOP) || !s->job_path[0] || s->call_slot ||
        strcmp(path, s->job_path) != 0)
        return 0;
    if (s->job_timer) {
        s->host->timer_free(s->job_timer);
        s->job_timer = NULL;
    }
    char clean[64];
    sd_clean_text(result, clean, sizeof clean);
    switch (sd_job_result(result)) {
    case SB_ACTION_DONE:
        answer(s, SB_ACTION_DONE, "%s", "done");
        break;
    case SB_ACTION_BUSY:
        answer(s, SB_ACTION_BUSY, "%s %s: job %s (another job replaced it)", s->op_method,
               s->op_unit, clean);
        break;
    default:
        job_failed(s, clean);
        break;
    }
    return 0;
}

static void job_timed_out(void *arg)
{
    sd_scaler *s = arg;
    s->host->timer_free(s->job_timer);
    s->job_timer = NULL;
    answer(s, SB_ACTION_BUSY, "%s %s: job %s still running after %" PRIu64 " ms", s->op_method,
           s->op_unit, s->job_path, s->timeout_us / 1000);
}

/* The reply to StartUnit, StopUnit, StartTransientUnit (a job path) or ResetFailedUnit. */
static int on_call(sd_bus_message *m, void *userdata, sd_bus_error *ret_error)
{
    (void)ret_error;
    sd_scaler *s = userdata;
    s->call_slot = sd_bus_slot_unref(s->call_slot);
    const sd_bus_error *e = sd_bus_message_get_error(m);
    if (e) {
        char why[360];
        error_text(s, e, why, sizeof why);
        if (is_disconnect(e))
            answer(s, SB_ACTION_FAILED, "%s", why);
        else
            answer(s, SB_ACTION_FAILED, "%s %s: %s", s->op_method, s->op_unit, why);
        return 0;
    }
    if (strcmp(s->op_method, "ResetFailedUnit") == 0) {
        answer(s, SB_ACTION_DONE, "%s", "done");
        return 0;
    }
    const char *job;
    if (sd_bus_message_read(m, "o", &job) < 0) {
        answer(s, SB_ACTION_FAILED, "%s %s: the reply names no job", s->op_method, s->op_unit);
        return 0;
    }
    sd_fmt(s->job_path, sizeof s->job_path, "%s", job);
    s->job_timer = s->host->timer_new(s->inst, s->timeout_us / 1000, 0, job_timed_out, s);
    if (!s->job_timer)
        answer(s, SB_ACTION_FAILED, "out of memory");
    return 0;
}

static int append_prop(sd_bus_message *m, const sd_prop *p)
{
    int r = sd_bus_message_open_container(m, 'r', "sv");
    if (r < 0)
        return r;
    r = sd_bus_message_append(m, "s", p->name);
    if (r < 0)
        return r;
    switch (p->type) {
    case SD_PROP_STRING:
        r = sd_bus_message_append(m, "v", "s", p->str);
        break;
    case SD_PROP_U64:
        r = sd_bus_message_append(m, "v", "t", p->u64);
        break;
    case SD_PROP_I32:
        r = sd_bus_message_append(m, "v", "i", p->i32);
        break;
    case SD_PROP_STRV:
        r = sd_bus_message_open_container(m, 'v', "as");
        if (r >= 0)
            r = sd_bus_message_append_strv(m, p->strv);
        if (r >= 0)
            r = sd_bus_message_close_container(m);
        break;
    }
    if (r < 0)
        return r;
    return sd_bus_message_close_container(m);
}

/* StartTransientUnit's arguments after name and mode: a(sv) properties, a(sa(sv)) aux. */
static int append_transient(sd_scaler *s, sd_bus_message *m)
{
    int r = sd_bus_message_open_container(m, 'a', "(sv)");
    if (r < 0)
        return r;
    if (!s->has_description) {
        char desc[300];
        sd_fmt(desc, sizeof desc, "scalebus %s: %s", s->host->instance_id(s->inst), s->argv[0]);
        r = sd_bus_message_append(m, "(sv)", "Description", "s", desc);
        if (r < 0)
            return r;
    }
    r = sd_bus_message_open_container(m, 'r', "sv");
    if (r >= 0)
        r = sd_bus_message_append(m, "s", "ExecStart");
    if (r >= 0)
        r = sd_bus_message_open_container(m, 'v', "a(sasb)");
    if (r >= 0)
        r = sd_bus_message_open_container(m, 'a', "(sasb)");
    if (r >= 0)
        r = sd_bus_message_open_container(m, 'r', "sasb");
    if (r >= 0)
        r = sd_bus_message_append(m, "s", s->argv[0]);
    if (r >= 0)
        r = sd_bus_message_append_strv(m, (char **)s->argv);
    if (r >= 0)
        r = sd_bus_message_append(m, "b", 0);
    for (int k = 0; k < 4 && r >= 0; k++)
        r = sd_bus_message_close_container(m);
    for (size_t i = 0; i < s->nprops && r >= 0; i++)
        r = append_prop(m, &s->props[i]);
    if (r >= 0 && s->stop_grace_us)
        r = sd_bus_message_append(m, "(sv)", "TimeoutStopUSec", "t", s->stop_grace_us);
    if (r >= 0)
        r = sd_bus_message_close_container(m);
    if (r >= 0)
        r = sd_bus_message_append(m, "a(sa(sv))", 0);
    return r;
}

/* Send method on unit (with mode when not NULL); the answer comes through on_call. */
static void unit_call(sd_scaler *s, sd_op op, const char *method, const char *unit,
                      const char *mode)
{
    char err[400];
    s->op_method = method;
    sd_fmt(s->op_unit, sizeof s->op_unit, "%s", unit);
    /* Connect first: dropping a broken connection answers the op in flight, and this one is not
     * in flight yet. */
    if (conn_ensure(s, err, sizeof err) < 0) {
        answer(s, SB_ACTION_FAILED, "%s", err);
        return;
    }
    s->op = op;
    sd_bus_message *m = NULL;
    int r = sd_bus_message_new_method_call(s->conn->bus, &m, SD_DEST, SD_PATH, SD_MANAGER, method);
    if (r >= 0)
        r = sd_bus_message_append(m, "s", unit);
    if (r >= 0 && mode)
        r = sd_bus_message_append(m, "s", mode);
    if (r >= 0 && strcmp(method, "StartTransientUnit") == 0)
        r = append_transient(s, m);
    if (r >= 0)
        r = send_call(s, m, &s->call_slot, on_call);
    sd_bus_message_unref(m);
    if (r < 0)
        answer(s, SB_ACTION_FAILED, "%s %s: %s", method, unit, strerror(-r));
}

static void systemd_start_one(void *self, sb_fleet *f)
{
    (void)f;
    sd_scaler *s = self;
    char name[SD_UNIT_NAME_MAX];
    next_name(s, name, sizeof name);
    if (s->transient)
        unit_call(s, OP_START, "StartTransientUnit", name, "fail");
    else
        unit_call(s, OP_START, "StartUnit", name, "replace");
}

static void systemd_stop_one(void *self, sb_fleet *f, const char *id)
{
    (void)f;
    sd_scaler *s = self;
    if (sd_unit_index(&s->naming, id) < 0) {
        /* Never reached (list() reports members only), and never to be. */
        s->op = OP_STOP;
        answer(s, SB_ACTION_FAILED, "%s is outside %s: not touched", id, s->pattern);
        return;
    }
    const sd_entry *e = known_find(s, id);
    if (e && e->state == SB_MEMBER_FAILED)
        unit_call(s, OP_STOP, "ResetFailedUnit", id, NULL);
    else
        unit_call(s, OP_STOP, "StopUnit", id, "replace");
}

static void systemd_describe(void *self, sb_fleet_call call, const char *id, int64_t n, char *buf,
                             size_t len)
{
    (void)n;
    sd_scaler *s = self;
    if (call == SB_CALL_STOP) {
        const sd_entry *e = id ? known_find(s, id) : NULL;
        if (e && e->state == SB_MEMBER_FAILED)
            sd_fmt(buf, len, "ResetFailedUnit %s", id);
        else
            sd_fmt(buf, len, "StopUnit %s replace", id ? id : "?");
        return;
    }
    char name[SD_UNIT_NAME_MAX];
    next_name(s, name, sizeof name);
    if (!s->transient) {
        sd_fmt(buf, len, "StartUnit %s replace", name);
        return;
    }
    size_t at = 0;
    int w = sd_fmt(buf, len, "StartTransientUnit %s fail [ExecStart=", name);
    for (size_t i = 0; w >= 0 && i < s->argc; i++) {
        at += (size_t)w;
        if (at >= len)
            return;
        w = sd_fmt(buf + at, len - at, "%s%s", i ? " " : "", s->argv[i]);
    }
    for (size_t i = 0; w >= 0 && i < s->nprops; i++) {
        at += (size_t)w;
        if (at >= len)
            return;
        char p[300];
        sd_prop_format(&s->props[i], p, sizeof p);
        w = sd_fmt(buf + at, len - at, ", %s", p);
    }
    if (w >= 0 && s->stop_grace_us) {
        at += (size_t)w;
        if (at >= len)
            return;
        w = sd_fmt(buf + at, len - at, ", TimeoutStopUSec=%" PRIu64, s->stop_grace_us);
    }
    if (w >= 0 && at + (size_t)w < len)
        sd_fmt(buf + at + (size_t)w, len - at - (size_t)w, "]");
}

/* The scaler stops: the call in flight is abandoned (its reply will never be read). */
static void systemd_cancel(void *self)
{
    sd_scaler *s = self;
    s->op = OP_NONE;
    drop_call(s);
}

static const sb_fleet_ops systemd_ops = {
    .list = systemd_list,
    .start_one = systemd_start_one,
    .stop_one = systemd_stop_one,
    .describe = systemd_describe,
    .cancel = systemd_cancel,
};

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void scaler_free(sd_scaler *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nprops; i++)
        sd_prop_clear(&s->props[i]);
    free(s->props);
    sd_entries_free(s->known, s->nknown);
    sb_fleet_free(s->fleet);
    free(s);
}

static int parse_options(sd_scaler *s, const sb_value *v, char *err, size_t errlen)
{
    const sb_value *unit = &v[OPT_UNIT], *cmd = &v[OPT_COMMAND], *props = &v[OPT_PROPERTIES];
    if (unit->is_set && cmd->is_set) {
        sd_fmt(err, errlen, "unit: give unit (a template) or command, not both");
        return -EINVAL;
    }
    if (!unit->is_set && !cmd->is_set) {
        sd_fmt(err, errlen, "unit: required (a template such as ci-agent@.service), or command");
        return -EINVAL;
    }
    const char *bus = v[OPT_BUS].is_set ? v[OPT_BUS].str : "system";
    if (strcmp(bus, "system") != 0 && strcmp(bus, "user") != 0) {
        char shown[64];
        sd_clean_text(bus, shown, sizeof shown);
        sd_fmt(err, errlen, "bus: system or user, got '%s'", shown);
        return -EINVAL;
    }
    s->user_bus = strcmp(bus, "user") == 0;
    sd_fmt(s->bus_name, sizeof s->bus_name, "%s", bus);
    uint64_t timeout_ms = v[OPT_TIMEOUT].is_set ? v[OPT_TIMEOUT].duration_ms : 60000;
    if (timeout_ms < 100) {
        sd_fmt(err, errlen, "timeout: at least 100ms");
        return -EINVAL;
    }
    s->timeout_us = timeout_ms * 1000;
    if (unit->is_set) {
        if (props->is_set && props->count) {
            sd_fmt(err, errlen,
                   "properties: only with command (a template's unit file sets "
                   "its own)");
            return -EINVAL;
        }
        if (v[OPT_STOP_GRACE].is_set) {
            sd_fmt(err, errlen,
                   "stop_grace: only with command (a template's unit file sets "
                   "TimeoutStopSec)");
            return -EINVAL;
        }
        if (v[OPT_PREFIX].is_set) {
            sd_fmt(err, errlen, "prefix: only with command (unit names the members)");
            return -EINVAL;
        }
        return sd_naming_from_template(&s->naming, unit->str, err, errlen);
    }
    if (cmd->count == 0 || !cmd->items[0][0]) {
        sd_fmt(err, errlen, "command: the program to run is missing");
        return -EINVAL;
    }
    if (cmd->items[0][0] != '/') {
        char shown[128];
        sd_clean_text(cmd->items[0], shown, sizeof shown);
        sd_fmt(err, errlen,
               "command: the program must be an absolute path (systemd searches no PATH), "
               "got '%s'",
               shown);
        return -EINVAL;
    }
    s->transient = 1;
    s->argv = cmd->items;
    s->argc = cmd->count;
    const char *prefix = v[OPT_PREFIX].is_set ? v[OPT_PREFIX].str : s->host->instance_id(s->inst);
    int r = sd_naming_from_prefix(&s->naming, prefix, err, errlen);
    if (r < 0)
        return r;
    if (v[OPT_STOP_GRACE].is_set)
        s->stop_grace_us =
            v[OPT_STOP_GRACE].duration_ms ? v[OPT_STOP_GRACE].duration_ms * 1000 : UINT64_MAX;
    if (props->is_set && props->count) {
        s->props = calloc(props->count, sizeof *s->props);
        if (!s->props) {
            sd_fmt(err, errlen, "out of memory");
            return -ENOMEM;
        }
        for (size_t i = 0; i < props->count; i++) {
            r = sd_prop_parse(&s->props[i], props->items[i], props->values[i], err, errlen);
            if (r < 0)
                return r;
            s->nprops++;
            if (strcmp(props->items[i], "Description") == 0)
                s->has_description = 1;
            if (strcmp(props->items[i], "TimeoutStopSec") == 0 && s->stop_grace_us) {
                sd_fmt(err, errlen,
                       "stop_grace: give stop_grace or properties: TimeoutStopSec, "
                       "not both");
                return -EINVAL;
            }
        }
    }
    return 0;
}

static int systemd_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                          void **state, char *err, size_t errlen)
{
    sd_scaler *s = calloc(1, sizeof *s);
    if (!s) {
        sd_fmt(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->inst = inst;
    s->host = host;
    s->loop = host->loop(inst);
    int r = parse_options(s, values, err, errlen);
    if (r == 0 && sd_unit_pattern(&s->naming, s->pattern, sizeof s->pattern) < 0) {
        sd_fmt(err, errlen, "unit: the name is too long");
        r = -EINVAL;
    }
    if (r == 0)
        r = sb_fleet_new(inst, host, &values[OPT_RECONCILE], &systemd_ops, s, &s->fleet, err,
                         errlen);
    if (r < 0) {
        scaler_free(s);
        return r;
    }
    set_address(s);
    *state = s;
    return 0;
}

static int systemd_start(void *state)
{
    sd_scaler *s = state;
    s->host->log(s->inst, SB_LOG_DEBUG, "members: %s on the %s bus at %s", s->pattern, s->bus_name,
                 s->address);
    return sb_fleet_start(s->fleet);
}

static int systemd_stop(void *state)
{
    sd_scaler *s = state;
    int r = sb_fleet_stop(s->fleet);
    if (r == SB_PENDING) {
        /* on_stop: stop. The fleet calls host->stopped() once the fleet is down; the bus is
         * closed in destroy() (the daemon runs the loop until closing handles have closed). */
        return SB_PENDING;
    }
    s->op = OP_NONE;
    drop_call(s);
    if (s->conn)
        conn_drop(s);
    if (s->closing_conns) {
        s->stopping = 1;
        return SB_PENDING;
    }
    return 0;
}

static void systemd_destroy(void *state)
{
    sd_scaler *s = state;
    if (!s)
        return;
    s->op = OP_NONE;
    drop_call(s);
    if (s->conn)
        conn_drop(s);
    /* Connections still closing outlive us (the daemon runs the loop until they have closed). */
    for (sd_conn *c = s->closing_conns; c; c = c->next_closing)
        c->owner = NULL;
    scaler_free(s);
}

static const sb_plugin_descriptor systemd_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "systemd",
    .kind = SB_KIND_SCALER,
    .version = "1.0.0",
    .description = "runs N instances of a template unit, or N transient units, through systemd's "
                   "D-Bus API",
    .options = systemd_options,
    .create = systemd_create,
    .start = systemd_start,
    .stop = systemd_stop,
    .destroy = systemd_destroy,
    .on_event = sb_fleet_scaler_on_event,
};

SB_PLUGIN_EXPORT(systemd_descriptor)
