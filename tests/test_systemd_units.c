/*
 * test_systemd_units.c - the systemd scaler's pure half (scalers/systemd/systemd_units.c): unit
 * names from a template or a prefix, indexes back from names (and the names that are not ours),
 * the lowest free index, ActiveState -> member state, JobRemoved results, and `properties` as
 * D-Bus properties with their types and their errors; and (scalers/systemd/systemd_list.c) the
 * ListUnitsByPatterns reply read into members, started-at kept from one list to the next or read
 * again, and the members' order. The replies are real sd-bus messages built on an unconnected
 * bus (a socketpair nobody answers), sealed and read back.
 */
#define _POSIX_C_SOURCE 200809L

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "systemd_list.h"
#include "systemd_units.h"

START_TEST(template_names)
{
    sd_naming n;
    char err[256], buf[SD_UNIT_NAME_MAX];
    ck_assert_int_eq(sd_naming_from_template(&n, "ci-agent@.service", err, sizeof err), 0);
    ck_assert_int_eq(sd_unit_name(&n, 4, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "ci-agent@4.service");
    ck_assert_int_eq(sd_unit_pattern(&n, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "ci-agent@*.service");
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@1.service"), 1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@123.service"), 123);
    /* In the glob, but not ours: never touched. */
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@x.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@04.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@0.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@-1.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@1.socket"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "other@1.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "ci-agent@1234567890123456789.service"), -1);
}
END_TEST

START_TEST(template_errors)
{
    sd_naming n;
    char err[256];
    const char *bad[] = {"ci-agent.service",  "ci-agent@1.service", "@.service",
                         "ci agent@.service", "ci-agent@.socket",   "",
                         "ci-agent@"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_eq(sd_naming_from_template(&n, bad[i], err, sizeof err), -EINVAL);
        ck_assert_msg(strncmp(err, "unit: ", 6) == 0, "%s", err);
    }
    ck_assert_int_eq(sd_naming_from_template(&n, "bad\n@.service", err, sizeof err), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\n'));
}
END_TEST

START_TEST(prefix_names)
{
    sd_naming n;
    char err[256], buf[SD_UNIT_NAME_MAX];
    ck_assert_int_eq(sd_naming_from_prefix(&n, "web", err, sizeof err), 0);
    ck_assert_int_eq(sd_unit_name(&n, 3, buf, sizeof buf), 0);
    ck_assert_str_eq(buf, "web-3.service");
    ck_assert_int_eq(sd_unit_index(&n, "web-3.service"), 3);
    ck_assert_int_eq(sd_unit_index(&n, "web-extra.service"), -1);
    ck_assert_int_eq(sd_unit_index(&n, "web-3-1.service"), -1);
    ck_assert_int_eq(sd_naming_from_prefix(&n, "we b", err, sizeof err), -EINVAL);
    ck_assert_msg(strncmp(err, "prefix: ", 8) == 0, "%s", err);
    ck_assert_int_eq(sd_naming_from_prefix(&n, "", err, sizeof err), -EINVAL);
    ck_assert_int_eq(sd_naming_from_prefix(&n, "a@b", err, sizeof err), -EINVAL);
}
END_TEST

START_TEST(lowest_free)
{
    int64_t used[] = {1, 2, 4};
    ck_assert_int_eq(sd_lowest_free_index(used, 3), 3);
    ck_assert_int_eq(sd_lowest_free_index(NULL, 0), 1);
    int64_t gap[] = {2, 3};
    ck_assert_int_eq(sd_lowest_free_index(gap, 2), 1);
    int64_t full[] = {3, 1, 2};
    ck_assert_int_eq(sd_lowest_free_index(full, 3), 4);
}
END_TEST

START_TEST(states_and_results)
{
    ck_assert_int_eq(sd_member_state("active"), SB_MEMBER_READY);
    ck_assert_int_eq(sd_member_state("reloading"), SB_MEMBER_READY);
    ck_assert_int_eq(sd_member_state("activating"), SB_MEMBER_STARTING);
    ck_assert_int_eq(sd_member_state("deactivating"), SB_MEMBER_STOPPING);
    ck_assert_int_eq(sd_member_state("failed"), SB_MEMBER_FAILED);
    ck_assert_int_eq(sd_member_state("inactive"), 0);
    ck_assert_int_eq(sd_member_state("maintenance"), 0);
    ck_assert_int_eq(sd_member_state(NULL), 0);
    ck_assert_int_eq(sd_job_result("done"), SB_ACTION_DONE);
    ck_assert_int_eq(sd_job_result("skipped"), SB_ACTION_DONE);
    ck_assert_int_eq(sd_job_result("canceled"), SB_ACTION_BUSY);
    ck_assert_int_eq(sd_job_result("failed"), SB_ACTION_FAILED);
    ck_assert_int_eq(sd_job_result("dependency"), SB_ACTION_FAILED);
    ck_assert_int_eq(sd_job_result("timeout"), SB_ACTION_FAILED);
    ck_assert_int_eq(sd_job_result("invalid"), SB_ACTION_FAILED);
    ck_assert_int_eq(sd_job_result(NULL), SB_ACTION_FAILED);
}
END_TEST

START_TEST(numbers)
{
    uint64_t v;
    ck_assert_int_eq(sd_parse_bytes("512M", &v), 0);
    ck_assert_uint_eq(v, 512ULL << 20);
    ck_assert_int_eq(sd_parse_bytes("1G", &v), 0);
    ck_assert_uint_eq(v, 1ULL << 30);
    ck_assert_int_eq(sd_parse_bytes("2T", &v), 0);
    ck_assert_uint_eq(v, 2ULL << 40);
    ck_assert_int_eq(sd_parse_bytes("4096", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(sd_parse_bytes("infinity", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(sd_parse_bytes("1.5G", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_bytes("-1", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_bytes("M", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_bytes("99999999999999999999", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_bytes("99999999999T", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_cpu_quota("50%", &v), 0);
    ck_assert_uint_eq(v, 500000);
    ck_assert_int_eq(sd_parse_cpu_quota("200%", &v), 0);
    ck_assert_uint_eq(v, 2000000);
    ck_assert_int_eq(sd_parse_cpu_quota("50", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_cpu_quota("0%", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_usec("30s", &v), 0);
    ck_assert_uint_eq(v, 30000000);
    ck_assert_int_eq(sd_parse_usec("90", &v), 0);
    ck_assert_uint_eq(v, 90000000);
    ck_assert_int_eq(sd_parse_usec("500ms", &v), 0);
    ck_assert_uint_eq(v, 500000);
    ck_assert_int_eq(sd_parse_usec("2min", &v), 0);
    ck_assert_uint_eq(v, 120000000);
    ck_assert_int_eq(sd_parse_usec("1h", &v), 0);
    ck_assert_uint_eq(v, 3600000000ULL);
    ck_assert_int_eq(sd_parse_usec("infinity", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(sd_parse_usec("5 s", &v), -EINVAL);
    ck_assert_int_eq(sd_parse_usec("5d", &v), -EINVAL);
}
END_TEST

START_TEST(properties)
{
    sd_prop p;
    char err[512], buf[256];
    ck_assert_int_eq(sd_prop_parse(&p, "MemoryMax", "512M", err, sizeof err), 0);
    ck_assert_str_eq(p.name, "MemoryMax");
    ck_assert_int_eq(p.type, SD_PROP_U64);
    ck_assert_uint_eq(p.u64, 512ULL << 20);
    sd_prop_format(&p, buf, sizeof buf);
    ck_assert_str_eq(buf, "MemoryMax=536870912");
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "CPUQuota", "50%", err, sizeof err), 0);
    ck_assert_str_eq(p.name, "CPUQuotaPerSecUSec");
    ck_assert_uint_eq(p.u64, 500000);
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "User", "ci", err, sizeof err), 0);
    ck_assert_int_eq(p.type, SD_PROP_STRING);
    ck_assert_str_eq(p.str, "ci");
    sd_prop_format(&p, buf, sizeof buf);
    ck_assert_str_eq(buf, "User=ci");
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "Environment", " A=1  B=two ", err, sizeof err), 0);
    ck_assert_int_eq(p.type, SD_PROP_STRV);
    ck_assert_uint_eq(p.nstrv, 2);
    ck_assert_str_eq(p.strv[0], "A=1");
    ck_assert_str_eq(p.strv[1], "B=two");
    ck_assert_ptr_null(p.strv[2]);
    sd_prop_format(&p, buf, sizeof buf);
    ck_assert_str_eq(buf, "Environment=A=1 B=two");
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "TimeoutStopSec", "20s", err, sizeof err), 0);
    ck_assert_str_eq(p.name, "TimeoutStopUSec");
    ck_assert_uint_eq(p.u64, 20000000);
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "TasksMax", "infinity", err, sizeof err), 0);
    sd_prop_format(&p, buf, sizeof buf);
    ck_assert_str_eq(buf, "TasksMax=infinity");
    sd_prop_clear(&p);

    ck_assert_int_eq(sd_prop_parse(&p, "Nice", "-5", err, sizeof err), 0);
    ck_assert_int_eq(p.type, SD_PROP_I32);
    ck_assert_int_eq(p.i32, -5);
    sd_prop_clear(&p);
}
END_TEST

START_TEST(property_errors)
{
    sd_prop p;
    char err[512];
    ck_assert_int_eq(sd_prop_parse(&p, "MemoryMax", "lots", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "properties: MemoryMax: expected bytes such as 536870912, 512M or "
                          "infinity, got 'lots'");
    ck_assert_int_eq(sd_prop_parse(&p, "Bogus", "1", err, sizeof err), -EINVAL);
    ck_assert_msg(strncmp(err, "properties: Bogus: not supported (supported: Description,", 57) ==
                      0,
                  "%s", err);
    ck_assert_int_eq(sd_prop_parse(&p, "Environment", "A=1 novalue", err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "properties: Environment: expected VAR=value words separated by "
                          "spaces, got 'A=1 novalue'");
    ck_assert_int_eq(sd_prop_parse(&p, "Environment", "  ", err, sizeof err), -EINVAL);
    ck_assert_int_eq(sd_prop_parse(&p, "Nice", "30", err, sizeof err), -EINVAL);
    ck_assert_int_eq(sd_prop_parse(&p, "CPUQuota", "half", err, sizeof err), -EINVAL);
    ck_assert_int_eq(sd_prop_parse(&p, "User", "", err, sizeof err), -EINVAL);
    /* A control character never reaches the message. */
    ck_assert_int_eq(sd_prop_parse(&p, "MemoryMax", "1\n2", err, sizeof err), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\n'));
    ck_assert_int_eq(sd_prop_parse(&p, "Mem\x1bMax", "1", err, sizeof err), -EINVAL);
    ck_assert_ptr_null(strchr(err, '\x1b'));
}
END_TEST

START_TEST(clean_text)
{
    char buf[8];
    sd_clean_text("a\tb\x7f", buf, sizeof buf);
    ck_assert_str_eq(buf, "a?b?");
    sd_clean_text("0123456789", buf, sizeof buf);
    ck_assert_str_eq(buf, "0123456");
    sd_clean_text(NULL, buf, sizeof buf);
    ck_assert_str_eq(buf, "");
}
END_TEST

/* ---- ListUnitsByPatterns replies ------------------------------------------------------------ */

static sd_bus *test_bus;
static int test_fds[2];

static void bus_setup(void)
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, test_fds), 0);
    ck_assert_int_ge(sd_bus_new(&test_bus), 0);
    ck_assert_int_ge(sd_bus_set_fd(test_bus, test_fds[0], test_fds[0]), 0);
    ck_assert_int_ge(sd_bus_start(test_bus), 0);
}

static void bus_teardown(void)
{
    test_bus = sd_bus_close_unref(test_bus); /* no flush: nobody answers the auth */
    close(test_fds[1]);
}

typedef struct row {
    const char *name, *active;
    uint32_t job;
} row;

/* A message shaped like ListUnitsByPatterns' reply, sealed and ready to read. */
static sd_bus_message *list_reply(const row *rows, size_t n)
{
    sd_bus_message *m = NULL;
    ck_assert_int_ge(sd_bus_message_new_method_call(test_bus, &m, "org.freedesktop.systemd1",
                                                    "/org/freedesktop/systemd1",
                                                    "org.freedesktop.systemd1.Manager", "X"),
                     0);
    ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "(ssssssouso)"), 0);
    for (size_t i = 0; i < n; i++) {
        char path[300];
        snprintf(path, sizeof path, "/org/freedesktop/systemd1/unit/u%zu", i);
        ck_assert_int_ge(
            sd_bus_message_append(m, "(ssssssouso)", rows[i].name, "desc", "loaded", rows[i].active,
                                  "running", "", path, rows[i].job, rows[i].job ? "start" : "",
                                  rows[i].job ? "/org/freedesktop/systemd1/job/7" : "/"),
            0);
    }
    ck_assert_int_ge(sd_bus_message_close_container(m), 0);
    ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
    ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
    return m;
}

START_TEST(list_members)
{
    sd_naming n;
    char err[256];
    ck_assert_int_eq(sd_naming_from_template(&n, "ci-agent@.service", err, sizeof err), 0);
    const row rows[] = {
        {"ci-agent@1.service", "active", 0},       {"ci-agent@x.service", "active", 0},
        {"ci-agent@2.service", "activating", 12},  {"ci-agent@3.service", "inactive", 0},
        {"ci-agent@04.service", "active", 0},      {"ci-agent@4.service", "failed", 0},
        {"ci-agent@5.service", "deactivating", 0}, {"ci-agent@6.service", "maintenance", 0},
        {"other@1.service", "active", 0},
    };
    sd_bus_message *m = list_reply(rows, sizeof rows / sizeof rows[0]);
    sd_entry *e = NULL;
    size_t ne = 0;
    ck_assert_int_eq(sd_list_parse(m, &n, 100, &e, &ne), 0);
    ck_assert_uint_eq(ne, 4);
    ck_assert_str_eq(e[0].name, "ci-agent@1.service");
    ck_assert_int_eq(e[0].index, 1);
    ck_assert_int_eq(e[0].state, SB_MEMBER_READY);
    ck_assert_str_eq(e[0].path, "/org/freedesktop/systemd1/unit/u0");
    ck_assert_str_eq(e[1].name, "ci-agent@2.service");
    ck_assert_int_eq(e[1].state, SB_MEMBER_STARTING);
    ck_assert_uint_eq(e[1].job_id, 12);
    ck_assert_int_eq(e[2].state, SB_MEMBER_FAILED);
    ck_assert_int_eq(e[3].state, SB_MEMBER_STOPPING);
    ck_assert_int_eq(e[3].index, 5);
    ck_assert_int_eq(e[0].stamp_known, 0);
    sd_entries_free(e, ne);
    sd_bus_message_unref(m);

    /* An empty reply: no members, nothing allocated. */
    m = list_reply(NULL, 0);
    ck_assert_int_eq(sd_list_parse(m, &n, 100, &e, &ne), 0);
    ck_assert_uint_eq(ne, 0);
    ck_assert_ptr_null(e);
    sd_bus_message_unref(m);
}
END_TEST

START_TEST(list_bounded)
{
    sd_naming n;
    char err[256];
    ck_assert_int_eq(sd_naming_from_prefix(&n, "web", err, sizeof err), 0);
    row rows[40];
    char names[40][32];
    for (size_t i = 0; i < 40; i++) {
        snprintf(names[i], sizeof names[i], "web-%zu.service", i + 1);
        rows[i] = (row){names[i], "active", 0};
    }
    sd_bus_message *m = list_reply(rows, 40);
    sd_entry *e = NULL;
    size_t ne = 0;
    ck_assert_int_eq(sd_list_parse(m, &n, 17, &e, &ne), 0);
    ck_assert_uint_eq(ne, 17);
    ck_assert_str_eq(e[16].name, "web-17.service");
    sd_entries_free(e, ne);
    sd_bus_message_unref(m);
}
END_TEST

START_TEST(list_wrong_shape)
{
    sd_naming n;
    char err[256];
    ck_assert_int_eq(sd_naming_from_prefix(&n, "web", err, sizeof err), 0);
    /* A reply of another shape (a string; rows with a field missing) is refused whole. */
    const char *sigs[] = {"s", "a(ssssssous)"};
    for (size_t k = 0; k < 2; k++) {
        sd_bus_message *m = NULL;
        ck_assert_int_ge(sd_bus_message_new_method_call(test_bus, &m, "a.b", "/a", "a.b", "X"), 0);
        if (k == 0) {
            ck_assert_int_ge(sd_bus_message_append(m, "s", "web-1.service"), 0);
        } else {
            ck_assert_int_ge(sd_bus_message_open_container(m, 'a', "(ssssssous)"), 0);
            ck_assert_int_ge(sd_bus_message_append(m, "(ssssssous)", "web-1.service", "", "",
                                                   "active", "", "", "/a", 0, ""),
                             0);
            ck_assert_int_ge(sd_bus_message_close_container(m), 0);
        }
        ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
        ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
        sd_entry *e = (sd_entry *)&n; /* overwritten */
        size_t ne = 9;
        ck_assert_msg(sd_list_parse(m, &n, 100, &e, &ne) < 0, "%s accepted", sigs[k]);
        ck_assert_ptr_null(e);
        ck_assert_uint_eq(ne, 0);
        sd_bus_message_unref(m);
    }
}
END_TEST

/* Entries by hand: name, state, job, stamp, known. */
static sd_entry entry(const char *name, sb_member_state st, uint32_t job, uint64_t stamp, int known)
{
    sd_entry e = {0};
    e.name = strdup(name);
    e.path = strdup("/p");
    e.index = 1;
    e.state = st;
    e.job_id = job;
    e.stamp_us = stamp;
    e.stamp_known = known;
    return e;
}

START_TEST(stamps)
{
    ck_assert_str_eq(sd_stamp_property(SB_MEMBER_STARTING), "InactiveExitTimestamp");
    ck_assert_str_eq(sd_stamp_property(SB_MEMBER_READY), "ActiveEnterTimestamp");
    ck_assert_str_eq(sd_stamp_property(SB_MEMBER_FAILED), "ActiveEnterTimestamp");
    ck_assert_str_eq(sd_stamp_property(SB_MEMBER_STOPPING), "ActiveEnterTimestamp");

    sd_entry *prev = calloc(4, sizeof *prev);
    prev[0] = entry("a@1.service", SB_MEMBER_READY, 0, 100, 1);
    prev[1] = entry("a@2.service", SB_MEMBER_STARTING, 0, 200, 1);
    prev[2] = entry("a@3.service", SB_MEMBER_READY, 0, 300, 0); /* never read */
    prev[3] = entry("a@4.service", SB_MEMBER_READY, 9, 400, 1); /* read during a job */
    sd_entry *cur = calloc(6, sizeof *cur);
    cur[0] = entry("a@1.service", SB_MEMBER_READY, 0, 0, 0); /* kept: 100 */
    cur[1] = entry("a@2.service", SB_MEMBER_READY, 0, 0, 0); /* started since: read */
    cur[2] = entry("a@3.service", SB_MEMBER_READY, 0, 0, 0); /* not known: read */
    cur[3] = entry("a@4.service", SB_MEMBER_READY, 0, 0, 0); /* a job then: read */
    cur[4] = entry("a@5.service", SB_MEMBER_READY, 0, 0, 0); /* new: read */
    cur[5] = entry("a@1.service", SB_MEMBER_READY, 3, 0, 0); /* a job now: read */
    ck_assert_uint_eq(sd_stamps_carry(cur, 6, prev, 4), 5);
    ck_assert_int_eq(cur[0].stamp_known, 1);
    ck_assert_uint_eq(cur[0].stamp_us, 100);
    for (size_t i = 1; i < 6; i++)
        ck_assert_int_eq(cur[i].stamp_known, 0);

    /* A JobRemoved for a@1 (a restart by hand): read again next time. */
    sd_stamps_forget(prev, 4, "a@1.service");
    ck_assert_int_eq(prev[0].stamp_known, 0);
    ck_assert_int_eq(prev[1].stamp_known, 1);
    ck_assert_uint_eq(sd_stamps_carry(cur, 1, prev, 4), 1);
    sd_stamps_forget_all(prev, 4);
    ck_assert_int_eq(prev[1].stamp_known, 0);
    ck_assert_uint_eq(sd_stamps_carry(cur, 6, prev, 4), 6);
    ck_assert_uint_eq(sd_stamps_carry(cur, 6, NULL, 0), 6);
    sd_entries_free(prev, 4);
    sd_entries_free(cur, 6);
}
END_TEST

START_TEST(stamp_reply)
{
    sd_bus_message *m = NULL;
    ck_assert_int_ge(sd_bus_message_new_method_call(test_bus, &m, "a.b", "/a", "a.b", "X"), 0);
    ck_assert_int_ge(sd_bus_message_append(m, "v", "t", (uint64_t)1700000000123456ULL), 0);
    ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
    ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
    uint64_t t = 0;
    ck_assert_int_eq(sd_read_stamp(m, &t), 0);
    ck_assert_uint_eq(t, 1700000000123456ULL);
    sd_bus_message_unref(m);
    /* Another type in the variant, or no variant: refused. */
    const char *kinds[] = {"vs", "t"};
    for (size_t k = 0; k < 2; k++) {
        m = NULL;
        ck_assert_int_ge(sd_bus_message_new_method_call(test_bus, &m, "a.b", "/a", "a.b", "X"), 0);
        if (k == 0)
            ck_assert_int_ge(sd_bus_message_append(m, "v", "s", "yesterday"), 0);
        else
            ck_assert_int_ge(sd_bus_message_append(m, "t", (uint64_t)5), 0);
        ck_assert_int_ge(sd_bus_message_seal(m, 1, 0), 0);
        ck_assert_int_ge(sd_bus_message_rewind(m, 1), 0);
        ck_assert_msg(sd_read_stamp(m, &t) < 0, "%s accepted", kinds[k]);
        sd_bus_message_unref(m);
    }
}
END_TEST

START_TEST(member_order)
{
    sd_entry *e = calloc(5, sizeof *e);
    e[0] = entry("a@1.service", SB_MEMBER_STARTING, 0, 50, 1);
    e[1] = entry("a@2.service", SB_MEMBER_READY, 0, 300, 1);
    e[2] = entry("a@3.service", SB_MEMBER_READY, 0, 100, 1);
    e[3] = entry("a@4.service", SB_MEMBER_FAILED, 0, 200, 1);
    e[4] = entry("a@5.service", SB_MEMBER_READY, 0, 100, 1);
    e[2].index = 3;
    e[4].index = 5;
    sd_entries_sort(e, 5);
    /* Oldest first; the same second: lower index first; still starting: last (newest). */
    ck_assert_str_eq(e[0].name, "a@3.service");
    ck_assert_str_eq(e[1].name, "a@5.service");
    ck_assert_str_eq(e[2].name, "a@4.service");
    ck_assert_str_eq(e[3].name, "a@2.service");
    ck_assert_str_eq(e[4].name, "a@1.service");
    sd_entries_sort(NULL, 0);
    sd_entries_free(e, 5);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("systemd_units");
    TCase *tc = tcase_create("units");
    tcase_add_test(tc, template_names);
    tcase_add_test(tc, template_errors);
    tcase_add_test(tc, prefix_names);
    tcase_add_test(tc, lowest_free);
    tcase_add_test(tc, states_and_results);
    tcase_add_test(tc, numbers);
    tcase_add_test(tc, properties);
    tcase_add_test(tc, property_errors);
    tcase_add_test(tc, clean_text);
    suite_add_tcase(s, tc);
    TCase *lists = tcase_create("lists");
    tcase_add_checked_fixture(lists, bus_setup, bus_teardown);
    tcase_add_test(lists, list_members);
    tcase_add_test(lists, list_bounded);
    tcase_add_test(lists, list_wrong_shape);
    tcase_add_test(lists, stamps);
    tcase_add_test(lists, stamp_reply);
    tcase_add_test(lists, member_order);
    suite_add_tcase(s, lists);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
