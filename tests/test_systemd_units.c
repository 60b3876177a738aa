/*
 * test_systemd_units.c - the systemd scaler's pure half (scalers/systemd/systemd_units.c): unit
 * names from a template or a prefix, indexes back from names (and the names that are not ours),
 * the lowest free index, ActiveState -> member state, JobRemoved results, and `properties` as
 * D-Bus properties with their types and their errors.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
