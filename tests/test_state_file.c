/*
 * test_state_file.c - the daemon's state file (core/state.c): an atomic write leaves no
 * temporary file and replaces the old one; a round trip keeps snapshots and each scaler's
 * count, pause and override; a corrupt, foreign, newer or missing file gives NULL and the
 * right line.
 */
#define _GNU_SOURCE

#include <check.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-state-unit.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static size_t files_in(const char *d)
{
    size_t n = 0;
    DIR *dp = opendir(d);
    for (struct dirent *e; dp && (e = readdir(dp));)
        n += e->d_name[0] != '.' || (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."));
    if (dp)
        closedir(dp);
    return n;
}

static void put(const char *text)
{
    char err[256];
    ck_assert_int_eq(state_write(dir, text, strlen(text), err, sizeof err), 0);
}

START_TEST(test_round_trip)
{
    cJSON *doc = state_doc_new("1.2.3", 1000);
    ck_assert_ptr_nonnull(doc);
    ck_assert_int_eq(state_doc_add_component(doc, "q", "target", "1.0.0",
                                             cJSON_Parse("{\"format\":1,\"decided\":4}")),
                     0);
    state_scaler a = {.last_desired = 4, .paused = 1, .has_override = 1, .override_desired = 6,
                      .override_until_ms = 1767225600000};
    state_scaler b = {.last_desired = NAN, .override_desired = NAN};
    ck_assert_int_eq(state_doc_add_scaler(doc, "web", "process", &a), 0);
    ck_assert_int_eq(state_doc_add_scaler(doc, "idle", "process", &b), 0);
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    put(text);
    put(text); /* over the first one */
    free(text);
    ck_assert_uint_eq(files_in(dir), 1); /* state.json and no temporary file */

    char why[512];
    state_saved *s = state_read(dir, why, sizeof why);
    ck_assert_msg(s != NULL, "%s", why);
    ck_assert_str_eq(state_saved_daemon(s), "1.2.3");
    ck_assert_uint_eq(state_saved_count(s), 3);
    const char *version = NULL;
    const cJSON *snap = state_saved_component(s, "q", "target", &version);
    ck_assert_ptr_nonnull(snap);
    ck_assert_str_eq(version, "1.0.0");
    ck_assert_int_eq(cJSON_GetObjectItem(snap, "decided")->valueint, 4);
    ck_assert_ptr_null(state_saved_component(s, "q", "threshold", NULL)); /* another type */
    ck_assert_ptr_null(state_saved_component(s, "nope", "target", NULL));
    state_scaler got;
    ck_assert_int_eq(state_saved_scaler(s, "web", "process", &got), 1);
    ck_assert(got.last_desired == 4 && got.paused && got.has_override);
    ck_assert(got.override_desired == 6 && got.override_until_ms == 1767225600000);
    ck_assert_int_eq(state_saved_scaler(s, "idle", "process", &got), 1);
    ck_assert(isnan(got.last_desired) && !got.paused && !got.has_override);
    ck_assert_int_eq(state_saved_scaler(s, "web", "docker", &got), 0);
    state_saved_free(s);
}
END_TEST

static void refused(const char *text, const char *line)
{
    put(text);
    char why[512] = "";
    state_saved *s = state_read(dir, why, sizeof why);
    ck_assert_msg(s == NULL, "accepted: %s", text);
    ck_assert_msg(strstr(why, line) && strstr(why, "state.json") && strstr(why, "; ignored"),
                  "%s -> %s", text, why);
    ck_assert_ptr_null(strchr(why, '\n'));
}

START_TEST(test_refused_files)
{
    refused("{\"format\": \"scalebus-state\", \"vers", "corrupt: not JSON (at byte");
    refused("", "corrupt: not JSON");
    refused("{\"a\": 1} trailing", "corrupt: not JSON");
    refused("[1, 2]", "not a scalebus state file");
    refused("{\"format\": \"other\", \"version\": 1}", "not a scalebus state file");
    refused("{\"format\": \"scalebus-state\", \"version\": \"1\"}", "\"version\" is not a number");
    refused("{\"format\": \"scalebus-state\", \"version\": 2, \"daemon\": \"9.9\"}",
            "written in state format 2 by scalebus 9.9, newer than this daemon's 1");
    refused("{\"format\": \"scalebus-state\", \"version\": 1, \"scalers\": {}}",
            "'scalers' is not an array");
}
END_TEST

START_TEST(test_missing_and_malformed_entries)
{
    char why[512] = "x";
    ck_assert_ptr_null(state_read(dir, why, sizeof why));
    ck_assert_str_eq(why, ""); /* no file: nothing to say */
    put("{\"format\": \"scalebus-state\", \"version\": 1, \"scalers\": ["
        "{\"id\": \"a\", \"type\": \"process\", \"last_desired\": -3},"
        "{\"id\": \"b\", \"type\": \"process\", \"override\": {\"desired\": 2}},"
        "{\"type\": \"process\"}, 7,"
        "{\"id\": \"c\", \"type\": \"process\", \"last_desired\": 2, \"future\": true}]}");
    state_saved *s = state_read(dir, why, sizeof why);
    ck_assert_ptr_nonnull(s);
    state_scaler got;
    ck_assert_int_eq(state_saved_scaler(s, "a", "process", &got), 0);
    ck_assert_int_eq(state_saved_scaler(s, "b", "process", &got), 0);
    ck_assert_int_eq(state_saved_scaler(s, "c", "process", &got), 1);
    ck_assert(got.last_desired == 2);
    state_saved_free(s);
}
END_TEST

START_TEST(test_write_errors)
{
    char err[256] = "";
    ck_assert_int_lt(state_write("/nonexistent-sb-dir", "{}", 2, err, sizeof err), 0);
    ck_assert_msg(strstr(err, "/nonexistent-sb-dir") != NULL, "%s", err);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("state_file");
    TCase *tc = tcase_create("file");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_refused_files);
    tcase_add_test(tc, test_missing_and_malformed_entries);
    tcase_add_test(tc, test_write_errors);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
