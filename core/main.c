/*
 * main.c - the scalebus command line: run, check, plugins, simulate, --version, --help.
 *
 * `run` owns the process: one libuv loop, SIGINT/SIGTERM for a graceful stop (a second one stops
 * at once), SIGHUP to re-read the file, each told to systemd (sd_notify) for Type=notify units.
 * Everything else is a short command that exits with 0 on success, 1 on invalid input and 2 on a
 * usage error. docs/scalebus.1 says the same for users: keep the two in step.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#ifdef SB_HAVE_SD_NOTIFY
#include <systemd/sd-daemon.h>
#endif

#include "config.h"
#include "daemon.h"
#include "http.h"
#include "loader.h"
#include "option_more.h"
#include "log.h"
#include "simulate.h"

#ifndef SB_VERSION
#define SB_VERSION "0.0.0"
#endif

#define MAX_PLUGIN_DIRS 32

static const char usage_main[] =
    "usage: scalebus <command> [options]\n"
    "\n"
    "An event-bus autoscaler: triggers read load, connectors decide, scalers act.\n"
    "\n"
    "commands:\n"
    "  run FILE          run the pipelines in FILE in the foreground\n"
    "  check FILE        validate FILE and print every error as FILE:LINE:COL: message\n"
    "  plugins           list the plugins scalebus can load\n"
    "  simulate FILE     replay a trace through FILE's connectors on virtual time\n"
    "\n"
    "`run` stops gracefully on SIGINT or SIGTERM and re-reads FILE on SIGHUP. Exit status: 0 on\n"
    "success, 1 on invalid input (a file with errors, a component that fails to start), 2 on a\n"
    "usage error. The manual page scalebus(1) has the signals, files and environment.\n"
    "\n"
    "options:\n"
    "  --version         print the version\n"
    "  --help            this text; `scalebus COMMAND --help` for a command's own options\n";

static const char usage_run[] =
    "usage: scalebus run FILE [--dry-run] [--log-level LEVEL] [--log-format FORMAT]\n"
    "                    [--plugin-dir DIR]...\n"
    "\n"
    "Runs the pipelines in FILE until SIGINT or SIGTERM (graceful stop: triggers stop, queued\n"
    "events are delivered, scalers stop their instances; a second signal exits at once).\n"
    "SIGHUP re-reads FILE: a file with errors is refused and the running pipelines carry on;\n"
    "unchanged components keep their state.\n"
    "\n"
    "The admin HTTP API (health, readiness, Prometheus /metrics, /pipelines, pause, resume and\n"
    "override scalers, push readings) listens on 127.0.0.1:9180 unless FILE says otherwise:\n"
    "admin: {listen: ADDR:PORT | off, token: SECRET | token_file: PATH} (docs/admin.md).\n"
    "\n"
    "  --dry-run           scalers log each action they would take, and take none\n"
    "  --log-level LEVEL   error, warn, info (default, or log.level from FILE) or debug\n"
    "  --log-format FORMAT text (default, or log.format from FILE) or json: one JSON object\n"
    "                      per line with time, level, component and message\n"
    "  --plugin-dir DIR    also load plugins from DIR (before plugins.path from FILE)\n";

static const char usage_check[] =
    "usage: scalebus check FILE [--next N] [--plugin-dir DIR]...\n"
    "\n"
    "Validates FILE: YAML syntax, plugin types, each plugin's options, dangling from/to and\n"
    "cycles. Prints every error as FILE:LINE:COL: message. Exit 0 when valid, 1 when not.\n"
    "\n"
    "  --next N            also print each cron trigger's next N firing times, one per line,\n"
    "                      as ID TIME (ISO 8601 with the UTC offset of the trigger's timezone)\n"
    "  --plugin-dir DIR    also load plugins from DIR\n";

static const char usage_plugins[] =
    "usage: scalebus plugins [--describe TYPE] [--plugin-dir DIR]...\n"
    "\n"
    "Lists the plugins scalebus finds (built-in folder, then each --plugin-dir), or with\n"
    "--describe TYPE prints the plugin's options: name, type, default, required, help.\n";

static const char usage_simulate[] =
    "usage: scalebus simulate FILE --trace TRACE.csv [--out DECISIONS.csv] [--svg CHART.svg]\n"
    "                         [--startup DURATION] [--log-level LEVEL] [--plugin-dir DIR]...\n"
    "\n"
    "Replays TRACE through the connectors of FILE on virtual time, to tune a policy before it\n"
    "touches production. No trigger runs and no real scaler is touched: each scaler is a model\n"
    "whose running count (sent back to the policies) follows the desired count.\n"
    "\n"
    "TRACE is CSV with the header time_s,trigger,value or time_s,trigger,value,labels (labels as\n"
    "k=v;k=v), rows in time order, lines of at most 64 KiB. It is read as a stream, in bounded\n"
    "memory however long it is. Errors are printed as TRACE:LINE: message. A regular file is\n"
    "checked whole before anything runs; a pipe is checked as it is replayed, and the replay\n"
    "stops at its first bad row.\n"
    "\n"
    "  --trace TRACE.csv     the readings to replay (required; - for standard input)\n"
    "  --out DECISIONS.csv   every desired count delivered to a scaler, as CSV with the header\n"
    "                        time_s,scaler,desired,reason (default, or -: standard output)\n"
    "  --svg CHART.svg       a chart per scaler: desired and running counts, bounds, inputs\n"
    "                        (- for standard output, with --out to a file)\n"
    "  --startup DURATION    instances the model adds run after DURATION (default 0s; removed\n"
    "                        ones stop at once), e.g. 30s, 2m\n"
    "  --log-level LEVEL     the daemon's log on stderr (default warn)\n"
    "  --plugin-dir DIR      also load plugins from DIR\n"
    "\n"
    "Exit 0 when the simulation ran, 1 on an invalid FILE or TRACE, 2 on a usage error.\n";

typedef struct cli {
    const char *file;
    int dry_run;
    int next_n;
    const char *describe;
    const char *plugin_dirs[MAX_PLUGIN_DIRS];
    size_t nplugin_dirs;
    sb_log_level level;
    int level_set;
    int log_json, log_json_set;
} cli;

/* Options common to the subcommands; returns 0, 1 (--help printed) or -1 (usage error). */
static int parse_args(int argc, char **argv, cli *c, const char *usage, int want_file)
{
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        } else if (strcmp(a, "--dry-run") == 0) {
            c->dry_run = 1;
        } else if (strcmp(a, "--log-level") == 0 && val) {
            if (log_level_parse(val, &c->level) != 0) {
                fprintf(stderr, "scalebus: --log-level: '%s' is not error, warn, info or debug\n",
                        val);
                return -1;
            }
            c->level_set = 1;
            i++;
        } else if (strcmp(a, "--log-format") == 0 && val) {
            if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0) {
                fprintf(stderr, "scalebus: --log-format: '%s' is not text or json\n", val);
                return -1;
            }
            c->log_json = strcmp(val, "json") == 0;
            c->log_json_set = 1;
            i++;
        } else if (strcmp(a, "--next") == 0 && val) {
            char *end;
            long n = strtol(val, &end, 10);
            if (*end || n < 1 || n > 10000) {
                fprintf(stderr, "scalebus: --next: expected a count from 1 to 10000, got '%s'\n",
                        val);
                return -1;
            }
            c->next_n = (int)n;
            i++;
        } else if (strcmp(a, "--describe") == 0 && val) {
            c->describe = val;
            i++;
        } else if (strcmp(a, "--plugin-dir") == 0 && val) {
            if (c->nplugin_dirs == MAX_PLUGIN_DIRS) {
                fprintf(stderr, "scalebus: at most %d --plugin-dir\n", MAX_PLUGIN_DIRS);
                return -1;
            }
            c->plugin_dirs[c->nplugin_dirs++] = val;
            i++;
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "scalebus: unknown or incomplete option '%s'\n\n%s", a, usage);
            return -1;
        } else if (want_file && !c->file) {
            c->file = a;
        } else {
            fprintf(stderr, "scalebus: unexpected argument '%s'\n\n%s", a, usage);
            return -1;
        }
    }
    if (want_file && !c->file) {
        fprintf(stderr, "scalebus: missing FILE\n\n%s", usage);
        return -1;
    }
    return 0;
}

static daemon_options make_options(const cli *c)
{
    daemon_options o = {0};
    o.dry_run = c->dry_run;
    o.log_level = c->level;
    o.log_level_set = c->level_set;
    o.log_json = c->log_json;
    o.log_json_set = c->log_json_set;
    o.plugin_dirs = c->plugin_dirs;
    o.nplugin_dirs = c->nplugin_dirs;
    return o;
}

/* ---- run ----------------------------------------------------------------------------------- */

/* Tell systemd (Type=notify) where the daemon is: READY=1 once every component has started,
 * RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 on a stop. Without NOTIFY_SOCKET in
 * the environment (not started by systemd) it does nothing. One datagram on a local socket. */
static void notify_systemd(const char *state)
{
#ifdef SB_HAVE_SD_NOTIFY
    int rc = sd_notify(0, state);
    if (rc < 0)
        fprintf(stderr, "scalebus: warning: cannot notify systemd: %s\n", strerror(-rc));
#else
    (void)state;
#endif
}

typedef struct run_ctx {
    uv_loop_t *loop;
    sb_daemon *d;
    const char *file;
    uv_signal_t sigint, sigterm, sighup;
    int signals;
    uint64_t first_signal_ns;
} run_ctx;

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_stopped(void *arg)
{
    run_ctx *r = arg;
    uv_signal_stop(&r->sigint);
    uv_signal_stop(&r->sigterm);
    uv_signal_stop(&r->sighup);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sighup, NULL);
    /* The bus's wake-up handle stays active for the daemon's life: leave the loop explicitly. */
    uv_stop(r->loop);
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    run_ctx *r = h->data;
    /* One signal can arrive twice at once (sent to the process and to its group, as timeout(1)
     * does): only a second one at least half a second later means "exit now". */
    uint64_t now = uv_hrtime();
    if (r->signals > 0 && now - r->first_signal_ns < 500000000ull)
        return;
    if (r->signals++ == 0)
        r->first_signal_ns = now;
    if (r->signals > 1) {
        fprintf(stderr, "scalebus: %s again: exiting now\n", strsignal(signum));
        /* Every instance's process group goes too: a parent-death signal takes each leader, and
         * the supervisor's watchdog kills what is left when our end of its pipe closes. The
         * status says which signal ended us, as a shell reports it (143 for SIGTERM). */
        exit(128 + signum);
    }
    fprintf(stderr, "scalebus: %s: stopping (again to exit at once)\n", strsignal(signum));
    notify_systemd("STOPPING=1");
    daemon_stop(r->d, on_stopped, r);
}

/* A SIGHUP, or a plugin's host->request_reload (a router's token) once its check passed. */
static void reload_now(void *arg)
{
    run_ctx *r = arg;
    config_errors errs;
    config_errors_init(&errs);
    /* MONOTONIC_USEC: what systemd's Type=notify-reload asks for; plain Type=notify ignores it. */
    char reloading[64];
    snprintf(reloading, sizeof reloading, "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)(uv_hrtime() / 1000));
    /* A SIGHUP while stopping: no "ready" after "stopping". */
    int stopping = r->signals > 0;
    if (!stopping)
        notify_systemd(reloading);
    /* A refused file leaves the running pipelines as they were: ready either way. */
    int rc = daemon_load(r->d, r->file, &errs); /* logs its outcome either way */
    if (!stopping)
        notify_systemd(rc == 0 ? "READY=1\nSTATUS=reloaded" : "READY=1\nSTATUS=reload refused");
    config_errors_free(&errs);
}

static void on_reload_signal(uv_signal_t *h, int signum)
{
    (void)signum;
    reload_now(h->data);
}

static int cmd_run(int argc, char **argv)
{
    cli c = {.level = SB_LOG_INFO};
    int rc = parse_args(argc, argv, &c, usage_run, 1);
    if (rc)
        return rc > 0 ? 0 : 2;
    run_ctx r = {.file = c.file};
    r.loop = uv_default_loop();
    daemon_options o = make_options(&c);
    o.admin = 1; /* the file's admin: section (docs/admin.md) */
    o.reload = reload_now;
    o.reload_arg = &r;
    r.d = daemon_new(r.loop, &o);
    if (!r.d) {
        fprintf(stderr, "scalebus: out of memory\n");
        return 1;
    }
    /* A write to a closed pipe is an error return, not a reason to die. */
    signal(SIGPIPE, SIG_IGN);
    /* Handlers first: a SIGHUP or SIGTERM while the first load starts hundreds of workers is
     * queued for the loop, never the default action that would kill the daemon. */
    uv_signal_init(r.loop, &r.sigint);
    uv_signal_init(r.loop, &r.sigterm);
    uv_signal_init(r.loop, &r.sighup);
    r.sigint.data = r.sigterm.data = r.sighup.data = &r;
    uv_signal_start(&r.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&r.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&r.sighup, on_reload_signal, SIGHUP);
    config_errors errs;
    config_errors_init(&errs);
    int failed = daemon_load(r.d, c.file, &errs) != 0;
    daemon_stats st;
    daemon_get_stats(r.d, &st);
    if (!failed && st.instances == 0)
        fprintf(stderr,
                "scalebus: warning: %s has no components (triggers, connectors, scalers): "
                "nothing to run until a reload (SIGHUP) brings some\n",
                c.file);
    if (!failed)
        notify_systemd("READY=1\nSTATUS=running");
    if (failed) {
        config_errors_print(&errs, stderr);
        /* What did start (a failed start refuses the file after others started) is stopped
         * gracefully before we exit. */
        daemon_stop(r.d, on_stopped, &r);
    }
    config_errors_free(&errs);
    uv_run(r.loop, UV_RUN_DEFAULT);
    daemon_free(r.d);
    uv_walk(r.loop, close_handle, NULL);
    uv_run(r.loop, UV_RUN_DEFAULT);
    uv_loop_close(r.loop);
    return failed ? 1 : 0;
}

/* ---- check --------------------------------------------------------------------------------- */

static int cmd_check(int argc, char **argv)
{
    cli c = {.level = SB_LOG_WARN, .level_set = 1};
    int rc = parse_args(argc, argv, &c, usage_check, 1);
    if (rc)
        return rc > 0 ? 0 : 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    daemon_options o = make_options(&c);
    sb_daemon *d = daemon_new(&loop, &o);
    if (!d) {
        fprintf(stderr, "scalebus: out of memory\n");
        return 1;
    }
    config_errors errs;
    config_errors_init(&errs);
    rc = daemon_check(d, c.file, c.next_n, stdout, &errs);
    config_errors_print(&errs, stdout);
    if (rc == 0 && c.next_n == 0)
        printf("%s: ok\n", c.file);
    config_errors_free(&errs);
    daemon_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc == 0 ? 0 : 1;
}

/* ---- plugins ------------------------------------------------------------------------------- */

static const char *opt_type_name(sb_option_type t)
{
    switch (t) {
    case SB_OPT_STRING:
        return "string";
    case SB_OPT_INT:
        return "integer";
    case SB_OPT_NUMBER:
        return "number";
    case SB_OPT_BOOL:
        return "bool";
    case SB_OPT_DURATION:
        return "duration";
    case SB_OPT_LIST:
        return "list";
    case SB_OPT_MAP:
        return "map";
    case SB_OPT_OBJECTS:
        return "objects";
    }
    return "?";
}

/* An options table; a map of objects is followed by its objects' options, as they are written
 * in a file ("services.<name>.backend"). opath: the table's option path ("" at the top). */
static void describe_options(const sb_plugin_descriptor *d, const sb_option_spec *table,
                             const char *opath, const char *shown)
{
    for (const sb_option_spec *op = table; op && op->name; op++) {
        char name[256], path[256];
        snprintf(name, sizeof name, "%.120s%.120s", shown, op->name);
        option_more_path(path, sizeof path, opath, op->name);
        const sb_option_more *more = option_more_find(d, path);
        printf("  %-18s %-9s %-10s %-8s %s%s\n", name, opt_type_name(op->type),
               op->default_value ? op->default_value : "-", op->required ? "yes" : "no",
               op->help ? op->help : "",
               more && (more->flags & SB_OPTION_SECRET) ? " (secret)" : "");
        if (op->type == SB_OPT_OBJECTS && more && more->fields) {
            char sub[256];
            snprintf(sub, sizeof sub, "%.200s.<name>.", name);
            describe_options(d, more->fields, path, sub);
        }
    }
}

static void describe_common(sb_kind kind)
{
    if (kind == SB_KIND_CONNECTOR) {
        printf("  %-18s %-9s %-10s %-8s %s\n", "from", "list", "-", "yes",
               "trigger id(s) whose readings, or connector id(s) whose decisions, it receives");
        printf("  %-18s %-9s %-10s %-8s %s\n", "to", "list", "-", "*",
               "scaler id(s) to scale, or trigger id(s) to run now (* optional when another "
               "connector takes from this one)");
        printf("  %-18s %-9s %-10s %-8s %s\n", "match", "map", "-", "no",
               "only events whose labels match (exact or glob, e.g. queue: \"build-*\")");
    } else if (kind == SB_KIND_SCALER) {
        printf("  %-18s %-9s %-10s %-8s %s\n", "min", "integer", "0", "no",
               "fewest instances; every desired count is held to [min, max]");
        printf("  %-18s %-9s %-10s %-8s %s\n", "max", "integer", "-", "yes", "most instances");
    }
}

static int cmd_plugins(int argc, char **argv)
{
    cli c = {.level = SB_LOG_WARN, .level_set = 1};
    int rc = parse_args(argc, argv, &c, usage_plugins, 0);
    if (rc)
        return rc > 0 ? 0 : 2;
    uv_loop_t loop;
    uv_loop_init(&loop);
    daemon_options o = make_options(&c);
    sb_daemon *d = daemon_new(&loop, &o);
    if (!d)
        return 1;
    daemon_describe_plugins(d);
    const loader *l = daemon_loader(d);
    rc = 0;
    /* A --plugin-dir that cannot be used (missing, or refused as untrusted: it or a folder above
     * it) fails the command; loading it has already reported the line on stderr. */
    for (size_t i = 0; i < c.nplugin_dirs; i++) {
        char why[PATH_MAX + 512];
        if (loader_check_dir(c.plugin_dirs[i], why, sizeof why) != 0)
            rc = 1;
    }
    if (c.describe) {
        const sb_plugin_descriptor *p = loader_find(l, c.describe);
        if (!p) {
            fprintf(stderr, "scalebus: no plugin of type '%s' (see `scalebus plugins`)\n",
                    c.describe);
            rc = 1;
        } else {
            printf("%s (%s %s) - %s\n", p->type, loader_kind_name(p->kind), p->version,
                   p->description);
            printf("file: %s\n\noptions:\n", loader_path_of(l, p->type));
            printf("  %-18s %-9s %-10s %-8s %s\n", "NAME", "TYPE", "DEFAULT", "REQUIRED", "HELP");
            printf("  %-18s %-9s %-10s %-8s %s\n", "id", "string", "-", "yes",
                   "unique name of this component in the file");
            describe_common(p->kind);
            describe_options(p, p->options, "", "");
        }
    } else {
        printf("%-12s %-10s %-8s %s\n", "TYPE", "KIND", "VERSION", "DESCRIPTION");
        for (size_t i = 0; i < loader_count(l); i++) {
            const sb_plugin_descriptor *p = loader_at(l, i);
            printf("%-12s %-10s %-8s %s\n", p->type, loader_kind_name(p->kind), p->version,
                   p->description);
        }
    }
    daemon_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return rc;
}

/* ---- simulate ------------------------------------------------------------------------------ */

static int cmd_simulate(int argc, char **argv)
{
    simulate_options o = {0};
    const char *dirs[MAX_PLUGIN_DIRS];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        const char *val = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage_simulate, stdout);
            return 0;
        } else if (strcmp(a, "--trace") == 0 && val) {
            o.trace = argv[++i];
        } else if (strcmp(a, "--out") == 0 && val) {
            o.out = argv[++i];
        } else if (strcmp(a, "--svg") == 0 && val) {
            o.svg = argv[++i];
        } else if (strcmp(a, "--startup") == 0 && val) {
            if (config_parse_duration(val, &o.startup_ms) != 0 ||
                o.startup_ms > 365ull * 24 * 3600 * 1000) {
                fprintf(stderr, "scalebus: --startup: expected a duration like 30s, got '%s'\n",
                        val);
                return 2;
            }
            i++;
        } else if (strcmp(a, "--log-level") == 0 && val) {
            if (log_level_parse(val, &o.log_level) != 0) {
                fprintf(stderr, "scalebus: --log-level: '%s' is not error, warn, info or debug\n",
                        val);
                return 2;
            }
            o.log_level_set = 1;
            i++;
        } else if (strcmp(a, "--plugin-dir") == 0 && val) {
            if (o.nplugin_dirs == MAX_PLUGIN_DIRS) {
                fprintf(stderr, "scalebus: at most %d --plugin-dir\n", MAX_PLUGIN_DIRS);
                return 2;
            }
            dirs[o.nplugin_dirs++] = argv[++i];
        } else if (a[0] == '-' && a[1]) {
            fprintf(stderr, "scalebus: unknown or incomplete option '%s'\n\n%s", a, usage_simulate);
            return 2;
        } else if (!o.file) {
            o.file = a;
        } else {
            fprintf(stderr, "scalebus: unexpected argument '%s'\n\n%s", a, usage_simulate);
            return 2;
        }
    }
    if (!o.file || !o.trace) {
        fprintf(stderr, "scalebus: missing %s\n\n%s", o.file ? "--trace TRACE.csv" : "FILE",
                usage_simulate);
        return 2;
    }
    if (o.svg && strcmp(o.svg, "-") == 0 && (!o.out || strcmp(o.out, "-") == 0)) {
        fprintf(stderr, "scalebus: --svg - needs --out FILE: the decisions go to standard output\n"
                        "\n%s",
                usage_simulate);
        return 2;
    }
    o.plugin_dirs = dirs;
    return simulate_run(&o, stderr) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_main, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        printf("scalebus %s (plugin ABI %d, host table %d, libuv %s)\n", SB_VERSION, SB_ABI_VERSION,
               SB_HOST_VERSION, uv_version_string());
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0) {
        /* Before any thread starts where libcurl's global set-up is not thread-safe; else at
         * the first HTTP request (core/http.c), so a daemon without one never pays for it. */
        if (http_global_init_needs_main())
            http_global_init();
        int rc = cmd_run(argc - 2, argv + 2);
        http_global_cleanup();
        return rc;
    }
    if (strcmp(cmd, "check") == 0)
        return cmd_check(argc - 2, argv + 2);
    if (strcmp(cmd, "plugins") == 0)
        return cmd_plugins(argc - 2, argv + 2);
    if (strcmp(cmd, "simulate") == 0)
        return cmd_simulate(argc - 2, argv + 2);
    fprintf(stderr, "scalebus: unknown command '%s'\n\n%s", cmd, usage_main);
    return 2;
}
