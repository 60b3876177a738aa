/*
 * test_docker_parse.c - the docker scaler's request bodies and reply parsers
 * (scalers/docker/docker_api.c), on replies captured from Docker 20.10 and Podman 4.3, and the
 * plugin's option errors (docker.so through the fake host, when the build has made it).
 */
#define _POSIX_C_SOURCE 200809L
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "docker_api.h"
#include "fake_host.h"

static char err[512];

/* ---- version --------------------------------------------------------------------------------- */

START_TEST(version_negotiation)
{
    char v[16];
    ck_assert_int_eq(sb_docker_parse_version("{\"Version\":\"20.10.24\",\"ApiVersion\":\"1.41\","
                                             "\"MinAPIVersion\":\"1.12\"}",
                                             v, sizeof v, err, sizeof err),
                     0);
    ck_assert_str_eq(v, "1.41");
    /* A newer engine: the newest this plugin knows. */
    ck_assert_int_eq(
        sb_docker_parse_version("{\"ApiVersion\":\"1.45\"}", v, sizeof v, err, sizeof err), 0);
    ck_assert_str_eq(v, "1.41");
    ck_assert_int_eq(
        sb_docker_parse_version("{\"ApiVersion\":\"2.0\"}", v, sizeof v, err, sizeof err), 0);
    ck_assert_str_eq(v, "1.41");
    /* An older one: its own. */
    ck_assert_int_eq(
        sb_docker_parse_version("{\"ApiVersion\":\"1.40\"}", v, sizeof v, err, sizeof err), 0);
    ck_assert_str_eq(v, "1.40");
    /* Podman 4.3's compatible service. */
    ck_assert_int_eq(
        sb_docker_parse_version("{\"Platform\":{\"Name\":\"linux/amd64/debian-12\"},\"Components\":"
                                "[{\"Name\":\"Podman Engine\",\"Version\":\"4.3.1\",\"Details\":"
                                "{\"APIVersion\":\"4.3.1\"}}],\"Version\":\"4.3.1\",\"ApiVersion\":"
                                "\"1.41\",\"MinAPIVersion\":\"1.24\"}",
                                v, sizeof v, err, sizeof err),
        0);
    ck_assert_str_eq(v, "1.41");
    ck_assert_int_eq(
        sb_docker_parse_version("{\"ApiVersion\":\"1.24\"}", v, sizeof v, err, sizeof err),
        -EINVAL);
    ck_assert_str_eq(err, "the engine speaks API 1.24, older than 1.25, the oldest this plugin "
                          "speaks");
    ck_assert_int_eq(sb_docker_parse_version("{\"Version\":\"x\"}", v, sizeof v, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "GET /version: the reply has no ApiVersion");
    ck_assert_int_eq(
        sb_docker_parse_version("{\"ApiVersion\":\"1.41\\nx\"}", v, sizeof v, err, sizeof err),
        -EINVAL);
    ck_assert_str_eq(err, "GET /version: ApiVersion '1.41?x' is not a version");
    ck_assert_int_eq(sb_docker_parse_version("<html>", v, sizeof v, err, sizeof err), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_version(NULL, v, sizeof v, err, sizeof err), -EINVAL);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

START_TEST(error_replies)
{
    char m[256];
    sb_docker_error_message(404, "{\"message\":\"No such image: test/nothere:latest\"}\n", m,
                            sizeof m);
    ck_assert_str_eq(m, "No such image: test/nothere:latest");
    sb_docker_error_message(404,
                            "{\"cause\":\"image not known\",\"message\":\"no such image: "
                            "docker.io/nope/x: image not known\",\"response\":404}",
                            m, sizeof m);
    ck_assert_str_eq(m, "no such image: docker.io/nope/x: image not known");
    /* A message with a line break stays one line. */
    sb_docker_error_message(500, "{\"message\":\"oci runtime error:\\nexec failed\\r\"}", m,
                            sizeof m);
    ck_assert_str_eq(m, "oci runtime error:?exec failed?");
    sb_docker_error_message(502, "<html>\nBad Gateway</html>", m, sizeof m);
    ck_assert_str_eq(m, "HTTP 502: <html>?Bad Gateway</html>");
    sb_docker_error_message(500, "", m, sizeof m);
    ck_assert_str_eq(m, "HTTP 500");
    sb_docker_error_message(500, NULL, m, sizeof m);
    ck_assert_str_eq(m, "HTTP 500");
    sb_docker_error_message(500, "{\"message\":\"\"}", m, sizeof m);
    ck_assert_str_eq(m, "HTTP 500: {\"message\":\"\"}");
    /* Cut to the buffer. */
    sb_docker_error_message(500, "{\"message\":\"abcdefghij\"}", m, 5);
    ck_assert_str_eq(m, "abcd");

    ck_assert_int_eq(sb_docker_classify(409, "{\"message\":\"removal of container x is already "
                                             "in progress\"}"),
                     SB_ACTION_BUSY);
    ck_assert_int_eq(sb_docker_classify(500, "{\"cause\":\"container state improper\",\"message\":"
                                             "\"container c4d5 is running or paused, refusing to "
                                             "clean up: container state improper\",\"response\":"
                                             "500}"),
                     SB_ACTION_BUSY);
    ck_assert_int_eq(sb_docker_classify(500, "{\"message\":\"driver failed\"}"), SB_ACTION_FAILED);
    ck_assert_int_eq(sb_docker_classify(404, "{\"message\":\"No such image: x\"}"),
                     SB_ACTION_FAILED);
    ck_assert_int_eq(sb_docker_classify(400, "{\"cause\":\"container state improper\"}"),
                     SB_ACTION_FAILED);
    ck_assert_int_eq(sb_docker_classify(503, "garbage"), SB_ACTION_FAILED);
}
END_TEST

/* ---- list ------------------------------------------------------------------------------------ */

/* Docker 20.10's reply (shortened), with a container of another scaler, one without labels, and
 * one whose scaler id only starts like ours. */
static const char *docker_list =
    "[{\"Id\":\"e105496cbc600ffe5e488b92da9743f39011dd0d622249ea153d7cde31bf1086\",\"Names\":"
    "[\"/web-1-73631e\"],\"Image\":\"test/busybox\",\"Command\":\"sleep 3600\",\"Created\":"
    "1795800391,\"Ports\":[],\"Labels\":{\"scalebus.scaler\":\"web\",\"team\":\"a\"},\"State\":"
    "\"running\",\"Status\":\"Up Less than a second\",\"HostConfig\":{\"NetworkMode\":\"host\"}},"
    "{\"Id\":\"aaaa\",\"Names\":[\"/other-0\"],\"Labels\":{\"scalebus.scaler\":\"other\"}},"
    "{\"Id\":\"bbbb\",\"Names\":[\"/web-9-byhand\"],\"Labels\":{}},"
    "{\"Id\":\"cccc\",\"Names\":[\"/web2-0-x\"],\"Labels\":{\"scalebus.scaler\":\"web2\"}},"
    "{\"Id\":\"dddd\",\"Names\":[\"/nolabels\"]},"
    "{\"Id\":\"0123abcd\",\"Names\":[\"/web-0-ab\\u0001cd\"],\"Labels\":{\"scalebus.scaler\":"
    "\"web\"},\"State\":\"exited\"}]";

START_TEST(list_only_ours)
{
    sb_docker_listed *l = NULL;
    size_t n = 0;
    ck_assert_int_eq(sb_docker_parse_list(docker_list, "web", &l, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(l[0].id, "e105496cbc600ffe5e488b92da9743f39011dd0d622249ea153d7cde31bf1086");
    ck_assert_str_eq(l[0].name, "web-1-73631e");
    ck_assert_str_eq(l[1].id, "0123abcd");
    ck_assert_str_eq(l[1].name, "web-0-ab?cd");
    free(l);
    ck_assert_int_eq(sb_docker_parse_list(docker_list, "nobody", &l, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    ck_assert_ptr_null(l);
    ck_assert_int_eq(sb_docker_parse_list("[]", "web", &l, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    /* Podman 4.3: no HostConfig, Networks null. */
    ck_assert_int_eq(sb_docker_parse_list(
                         "[{\"Id\":\"68fe36753cb02def1fa36e436c6805320b6d87561989c61d8b2417e4ed758"
                         "d73\",\"Names\":[\"/y-1\"],\"Image\":\"docker.io/test/busybox:latest\","
                         "\"Created\":1795800401,\"Ports\":[],\"Labels\":{\"scalebus.scaler\":"
                         "\"y\"},\"State\":\"running\",\"NetworkSettings\":{\"Networks\":null},"
                         "\"Config\":null}]",
                         "y", &l, &n, err, sizeof err),
                     0);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(l[0].name, "y-1");
    free(l);
    /* A container of ours without a name is named by its id. */
    ck_assert_int_eq(sb_docker_parse_list("[{\"Id\":\"abc\",\"Labels\":{\"scalebus.scaler\":"
                                          "\"w\"}}]",
                                          "w", &l, &n, err, sizeof err),
                     0);
    ck_assert_str_eq(l[0].name, "abc");
    free(l);
}
END_TEST

START_TEST(list_errors)
{
    sb_docker_listed *l = (sb_docker_listed *)1;
    size_t n = 7;
    ck_assert_int_eq(sb_docker_parse_list("{\"message\":\"x\"}", "w", &l, &n, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "GET /containers/json: the reply is not a JSON array");
    ck_assert_ptr_null(l);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(sb_docker_parse_list("not json", "w", &l, &n, err, sizeof err), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_list(NULL, "w", &l, &n, err, sizeof err), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_list("[{\"Labels\":{\"scalebus.scaler\":\"w\"}}]", "w", &l, &n,
                                          err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "GET /containers/json: a container without a valid Id");
    /* An id that could be a path. */
    ck_assert_int_eq(sb_docker_parse_list("[{\"Id\":\"../../x\",\"Labels\":{\"scalebus.scaler\":"
                                          "\"w\"}}]",
                                          "w", &l, &n, err, sizeof err),
                     -EINVAL);
}
END_TEST

/* ---- inspect --------------------------------------------------------------------------------- */

static sb_docker_inspected inspect(const char *state, const char *extra, int port,
                                   const char *network, int64_t now)
{
    char body[4096];
    snprintf(body, sizeof body,
             "{\"Id\":\"e1\",\"Created\":\"2026-11-27T17:26:31.723629173Z\","
             "\"State\":%s%s%s}",
             state, extra ? "," : "", extra ? extra : "");
    sb_docker_where w = {.port = port, .network = network};
    sb_docker_inspected out;
    ck_assert_int_eq(sb_docker_parse_inspect(body, &w, now, &out, err, sizeof err), 0);
    return out;
}

#define CREATED 1795800391 /* 2026-11-27T17:26:31Z */

START_TEST(inspect_states)
{
    sb_docker_inspected i;
    i = inspect("{\"Status\":\"running\",\"Running\":true,\"StartedAt\":"
                "\"2026-11-27T17:26:31.865168444Z\",\"FinishedAt\":\"0001-01-01T00:00:00Z\"}",
                "\"HostConfig\":{\"NetworkMode\":\"host\"}", 8080, "host", CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_READY);
    ck_assert_int_eq(i.started_at, CREATED);
    ck_assert_int_eq(i.started_ns, CREATED * 1000000000LL + 865168444LL);
    ck_assert_str_eq(i.address, "127.0.0.1:8080");
    ck_assert_str_eq(i.status, "running");
    /* Podman: Health with an empty status when there is no health check. */
    i = inspect("{\"Status\":\"running\",\"StartedAt\":\"2026-11-27T17:26:36.085551863Z\","
                "\"Health\":{\"Status\":\"\",\"FailingStreak\":0,\"Log\":null}}",
                NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_READY);
    ck_assert_str_eq(i.address, "");
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"starting\"}}", NULL, 0, NULL,
                CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    ck_assert_str_eq(i.status, "running (starting)");
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"healthy\"}}", NULL, 0, NULL,
                CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_READY);
    /* Unhealthy: failed, so the fleet removes and replaces it (the engine leaves it running). */
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\"}}", NULL, 0, NULL,
                CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    ck_assert_str_eq(i.health, "unhealthy");
    /* ...but a stopped one that was unhealthy is failed for its own reason. */
    i = inspect("{\"Status\":\"exited\",\"Health\":{\"Status\":\"unhealthy\"}}", NULL, 0, NULL,
                CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    /* Paused while unhealthy: not running, so not judged by its health. */
    i = inspect("{\"Status\":\"paused\",\"Health\":{\"Status\":\"unhealthy\"}}", NULL, 0, NULL,
                CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    i = inspect("{\"Status\":\"restarting\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    i = inspect("{\"Status\":\"paused\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    i = inspect("{\"Status\":\"exited\",\"ExitCode\":137}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    i = inspect("{\"Status\":\"dead\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    i = inspect("{\"Status\":\"stopped\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    i = inspect("{\"Status\":\"removing\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STOPPING);
    i = inspect("{\"Status\":\"something-new\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    /* Created and never started: starting, until it is a leftover; started_at from Created. */
    i = inspect("{\"Status\":\"created\",\"StartedAt\":\"0001-01-01T00:00:00Z\"}", NULL, 0, NULL,
                CREATED + 5);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    ck_assert_int_eq(i.started_at, CREATED);
    i = inspect("{\"Status\":\"created\"}", NULL, 0, NULL, CREATED + SB_DOCKER_CREATED_STALE_S + 1);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    i = inspect("{\"Status\":\"configured\"}", NULL, 0, NULL,
                CREATED + SB_DOCKER_CREATED_STALE_S + 1);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
}
END_TEST

/* State.Health as Docker 20.10 and Podman 4.3 write it: the failing streak and the last check. */
START_TEST(inspect_health)
{
    sb_docker_inspected i;
    /* Docker 20.10, health_cmd ["test -f /tmp/ok"] after /tmp/ok was removed. */
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":2,"
                "\"Log\":[{\"Start\":\"2026-11-27T19:33:59.384006741Z\",\"End\":"
                "\"2026-11-27T19:33:59.435510744Z\",\"ExitCode\":0,\"Output\":\"\"},{\"Start\":"
                "\"2026-11-27T19:34:00.440602781Z\",\"End\":\"2026-11-27T19:34:00.493910632Z\","
                "\"ExitCode\":1,\"Output\":\"no such file\\n\"}]}}",
                NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    ck_assert_str_eq(i.status, "running (unhealthy)");
    ck_assert_int_eq(i.health_streak, 2);
    ck_assert_str_eq(i.health_last, "exit 1: no such file");
    /* Podman 4.3 before its first check: starting, no log. */
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"starting\",\"FailingStreak\":0,"
                "\"Log\":null}}",
                NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_STARTING);
    ck_assert_str_eq(i.health, "starting");
    ck_assert_str_eq(i.health_last, "");
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"healthy\",\"FailingStreak\":0,"
                "\"Log\":[{\"ExitCode\":0,\"Output\":\"\"}]}}",
                NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_READY);
    ck_assert_str_eq(i.health_last, "exit 0");
    /* Whatever a remote sends: bounded, one line, never a crash. */
    char big[2000];
    memset(big, 'x', sizeof big);
    big[sizeof big - 1] = '\0';
    char body[2600];
    snprintf(body, sizeof body,
             "{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":"
             "1e300,\"Log\":[{\"ExitCode\":-1e300,\"Output\":\"a\\u0007b%s\"}]}}",
             big);
    i = inspect(body, NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    ck_assert_int_eq(i.health_streak, 0);
    ck_assert_int_eq(strncmp(i.health_last, "exit -1: a?bxxx", 15), 0);
    ck_assert_uint_lt(strlen(i.health_last), sizeof i.health_last);
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\",\"FailingStreak\":"
                "\"3\",\"Log\":{\"ExitCode\":1}}}",
                NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED);
    ck_assert_int_eq(i.health_streak, 0);
    ck_assert_str_eq(i.health_last, "");
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\",\"Log\":[7,"
                "{\"ExitCode\":\"1\"}]}}",
                NULL, 0, NULL, CREATED);
    ck_assert_str_eq(i.health_last, "");
    i = inspect("{\"Status\":\"running\",\"Health\":\"unhealthy\"}", NULL, 0, NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_READY); /* not an object: no health check said */
    i = inspect("{\"Status\":\"running\",\"Health\":{\"Status\":\"unhealthy\\u0000x\"}}", NULL, 0,
                NULL, CREATED);
    ck_assert_int_eq(i.state, SB_MEMBER_FAILED); /* cJSON stops the string at the NUL */
}
END_TEST

START_TEST(inspect_addresses)
{
    sb_docker_inspected i;
    const char *running = "{\"Status\":\"running\"}";
    /* Published on every address: reached on loopback. */
    i = inspect(running,
                "\"NetworkSettings\":{\"Ports\":{\"8080/tcp\":[{\"HostIp\":\"0.0.0.0\","
                "\"HostPort\":\"49153\"},{\"HostIp\":\"::\",\"HostPort\":\"49153\"}]}}",
                8080, NULL, CREATED);
    ck_assert_str_eq(i.address, "127.0.0.1:49153");
    i = inspect(running,
                "\"NetworkSettings\":{\"Ports\":{\"8080/tcp\":[{\"HostIp\":\"127.0.0.1\","
                "\"HostPort\":\"32768\"}]}}",
                8080, NULL, CREATED);
    ck_assert_str_eq(i.address, "127.0.0.1:32768");
    i = inspect(running,
                "\"NetworkSettings\":{\"Ports\":{\"8080/tcp\":[{\"HostIp\":\"10.0.0.5\","
                "\"HostPort\":\"32768\"}]}}",
                8080, NULL, CREATED);
    ck_assert_str_eq(i.address, "10.0.0.5:32768");
    /* Not published (yet): no address. */
    i = inspect(running, "\"NetworkSettings\":{\"Ports\":{\"8080/tcp\":null}}", 8080, NULL,
                CREATED);
    ck_assert_str_eq(i.address, "");
    i = inspect(running, "\"NetworkSettings\":{\"Ports\":{\"8080/tcp\":[{\"HostPort\":\"x1\"}]}}",
                8080, NULL, CREATED);
    ck_assert_str_eq(i.address, "");
    /* Another port. */
    i = inspect(running, "\"NetworkSettings\":{\"Ports\":{\"9090/tcp\":[{\"HostPort\":\"1\"}]}}",
                8080, NULL, CREATED);
    ck_assert_str_eq(i.address, "");
    /* On a network: its IP and the container port. */
    i = inspect(running,
                "\"NetworkSettings\":{\"Networks\":{\"backend\":{\"IPAddress\":\"172.18.0.3\"}}}",
                8080, "backend", CREATED);
    ck_assert_str_eq(i.address, "172.18.0.3:8080");
    i = inspect(running, "\"NetworkSettings\":{\"Networks\":{\"v6\":{\"IPAddress\":\"fd00::3\"}}}",
                8080, "v6", CREATED);
    ck_assert_str_eq(i.address, "[fd00::3]:8080");
    /* Host network, whatever `network` says (a container added by hand). */
    i = inspect(running, "\"HostConfig\":{\"NetworkMode\":\"host\"}", 80, NULL, CREATED);
    ck_assert_str_eq(i.address, "127.0.0.1:80");
    /* No port option: no address. */
    i = inspect(running, "\"HostConfig\":{\"NetworkMode\":\"host\"}", 0, "host", CREATED);
    ck_assert_str_eq(i.address, "");
}
END_TEST

START_TEST(inspect_errors)
{
    sb_docker_inspected out;
    sb_docker_where w = {0};
    ck_assert_int_eq(sb_docker_parse_inspect("{\"Id\":\"x\"}", &w, 0, &out, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "GET /containers/ID/json: the reply has no State.Status");
    ck_assert_int_eq(
        sb_docker_parse_inspect("{\"State\":{\"Status\":3}}", &w, 0, &out, err, sizeof err),
        -EINVAL);
    ck_assert_int_eq(sb_docker_parse_inspect("[", &w, 0, &out, err, sizeof err), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_inspect(NULL, &w, 0, &out, err, sizeof err), -EINVAL);
    /* A status with a control character is shown safely. */
    ck_assert_int_eq(sb_docker_parse_inspect("{\"State\":{\"Status\":\"run\\nning\"}}", NULL, 0,
                                             &out, err, sizeof err),
                     0);
    ck_assert_str_eq(out.status, "run?ning");
    ck_assert_int_eq(out.state, SB_MEMBER_STARTING);
}
END_TEST

START_TEST(times)
{
    int64_t ns;
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T17:26:31Z", &ns), CREATED);
    ck_assert_int_eq(ns, CREATED * 1000000000LL);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T17:26:31.5Z", &ns), CREATED);
    ck_assert_int_eq(ns, CREATED * 1000000000LL + 500000000LL);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T18:26:31.123456789123+01:00", &ns), CREATED);
    ck_assert_int_eq(ns, CREATED * 1000000000LL + 123456789LL);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T16:26:31-01:00", NULL), CREATED);
    ck_assert_int_eq(sb_docker_parse_time("0001-01-01T00:00:00Z", &ns), 0);
    ck_assert_int_eq(ns, 0);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27 17:26:31Z", &ns), -1);
    ck_assert_int_eq(ns, -1);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T17:26:31", NULL), -1);
    ck_assert_int_eq(sb_docker_parse_time("2026-13-27T17:26:31Z", NULL), -1);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T17:26:31Zjunk", NULL), -1);
    ck_assert_int_eq(sb_docker_parse_time("2026-11-27T17:26:31+1:00", NULL), -1);
    ck_assert_int_eq(sb_docker_parse_time("", NULL), -1);
    /* Years whose nanoseconds would overflow (fuzz_replies found the one before 1970). */
    ck_assert_int_eq(sb_docker_parse_time("0002-01-01T00:00:00Z", &ns), -1);
    ck_assert_int_eq(ns, -1);
    ck_assert_int_eq(sb_docker_parse_time("9999-12-31T23:59:59Z", &ns), -1);
    ck_assert_int_eq(sb_docker_parse_time(NULL, NULL), -1);
}
END_TEST

/* ---- create, pull ---------------------------------------------------------------------------- */

START_TEST(created_and_pull)
{
    char id[SB_DOCKER_ID_MAX], m[256];
    ck_assert_int_eq(sb_docker_parse_created("{\"Id\":\"e105496cbc600ffe5e488b92da9743f39011dd0d62"
                                             "2249ea153d7cde31bf1086\",\"Warnings\":[]}",
                                             id, sizeof id, err, sizeof err),
                     0);
    ck_assert_str_eq(id, "e105496cbc600ffe5e488b92da9743f39011dd0d622249ea153d7cde31bf1086");
    ck_assert_int_eq(sb_docker_parse_created("{\"Warnings\":[]}", id, sizeof id, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "POST /containers/create: the reply has no valid Id");
    ck_assert_int_eq(sb_docker_parse_created("{\"Id\":\"../x\"}", id, sizeof id, err, sizeof err),
                     -EINVAL);
    ck_assert_int_eq(sb_docker_parse_created("", id, sizeof id, err, sizeof err), -EINVAL);

    ck_assert_int_eq(sb_docker_pull_error("{\"status\":\"Pulling from library/nginx\"}\r\n"
                                          "{\"status\":\"Digest: sha256:1\"}\r\n"
                                          "{\"status\":\"Status: Downloaded newer image\"}\r\n",
                                          m, sizeof m),
                     0);
    ck_assert_int_eq(sb_docker_pull_error("{\"status\":\"Pulling\"}\n{\"errorDetail\":{\"message\":"
                                          "\"Get \\\"https://127.0.0.1:1/v2/\\\": dial tcp "
                                          "127.0.0.1:1: connect: connection refused\"},\"error\":"
                                          "\"Get \\\"https://127.0.0.1:1/v2/\\\": dial tcp "
                                          "127.0.0.1:1: connect: connection refused\"}\n",
                                          m, sizeof m),
                     1);
    ck_assert_str_eq(m, "Get \"https://127.0.0.1:1/v2/\": dial tcp 127.0.0.1:1: connect: "
                        "connection refused");
    /* Podman's stream: one object with "error". */
    ck_assert_int_eq(
        sb_docker_pull_error("{\"error\":\"initializing source\\nx\",\"id\":\"\"}", m, sizeof m),
        1);
    ck_assert_str_eq(m, "initializing source?x");
    ck_assert_int_eq(sb_docker_pull_error("", m, sizeof m), 0);
    ck_assert_int_eq(sb_docker_pull_error(NULL, m, sizeof m), 0);
}
END_TEST

START_TEST(create_body)
{
    const char *cmd[] = {"httpd", "-f", "-p", "8080"};
    const char *ek[] = {"GREETING"}, *ev[] = {"hello world"};
    const char *lk[] = {"team"}, *lv[] = {"web"};
    sb_docker_spec s = {.scaler_id = "web",
                        .image = "test/busybox",
                        .cmd = cmd,
                        .ncmd = 4,
                        .env_keys = ek,
                        .env_values = ev,
                        .nenv = 1,
                        .label_keys = lk,
                        .label_values = lv,
                        .nlabels = 1,
                        .port = 8080,
                        .host_ip = "127.0.0.1",
                        .memory = 256 << 20,
                        .nano_cpus = 500000000,
                        .init = 1};
    char *body = sb_docker_create_body(&s);
    ck_assert_str_eq(body, "{\"Image\":\"test/busybox\",\"Cmd\":[\"httpd\",\"-f\",\"-p\",\"8080\"],"
                           "\"Env\":[\"GREETING=hello world\"],\"Labels\":{\"team\":\"web\","
                           "\"scalebus.scaler\":\"web\"},\"ExposedPorts\":{\"8080/tcp\":{}},"
                           "\"HostConfig\":{\"PortBindings\":{\"8080/tcp\":[{\"HostIp\":"
                           "\"127.0.0.1\",\"HostPort\":\"\"}]},\"Memory\":268435456,\"NanoCpus\":"
                           "500000000,\"Init\":true}}");
    free(body);
    /* On the host network: nothing published. No command: the image's. */
    s = (sb_docker_spec){.scaler_id = "a\"b", .image = "x", .port = 80, .network = "host"};
    body = sb_docker_create_body(&s);
    ck_assert_str_eq(body, "{\"Image\":\"x\",\"Labels\":{\"scalebus.scaler\":\"a\\\"b\"},"
                           "\"ExposedPorts\":{\"80/tcp\":{}},\"HostConfig\":{\"NetworkMode\":"
                           "\"host\",\"Init\":false}}");
    free(body);
    /* A health check: an argv runs without a shell, durations in nanoseconds. */
    const char *curl[] = {"curl", "-fs", "http://127.0.0.1:8080/"};
    s = (sb_docker_spec){.scaler_id = "w",
                         .image = "x",
                         .network = "host",
                         .health = {.cmd = curl,
                                    .ncmd = 3,
                                    .interval_ns = 5000000000LL,
                                    .timeout_ns = 3000000000LL,
                                    .retries = 3,
                                    .start_period_ns = 0}};
    body = sb_docker_create_body(&s);
    ck_assert_str_eq(body, "{\"Image\":\"x\",\"Labels\":{\"scalebus.scaler\":\"w\"},\"HostConfig\":"
                           "{\"NetworkMode\":\"host\",\"Init\":false},\"Healthcheck\":{\"Test\":"
                           "[\"CMD\",\"curl\",\"-fs\",\"http://127.0.0.1:8080/\"],\"Interval\":"
                           "5000000000,\"Timeout\":3000000000,\"Retries\":3,\"StartPeriod\":0}}");
    free(body);
    /* One item with a space or a shell character: a shell line. */
    const char *line[] = {"test -f /tmp/ok"};
    s.health.cmd = line;
    s.health.ncmd = 1;
    s.health.interval_ns = 1000000000LL;
    s.health.retries = 2;
    s.health.start_period_ns = 86400000000000LL; /* 24h: exact */
    body = sb_docker_create_body(&s);
    cJSON *doc = cJSON_Parse(body);
    cJSON *hc = cJSON_GetObjectItem(doc, "Healthcheck");
    char *test = cJSON_PrintUnformatted(cJSON_GetObjectItem(hc, "Test"));
    ck_assert_str_eq(test, "[\"CMD-SHELL\",\"test -f /tmp/ok\"]");
    free(test);
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(hc, "Interval")->valuedouble, 1000000000LL);
    ck_assert_int_eq((int64_t)cJSON_GetObjectItem(hc, "StartPeriod")->valuedouble,
                     86400000000000LL);
    ck_assert_int_eq(cJSON_GetObjectItem(hc, "Retries")->valueint, 2);
    cJSON_Delete(doc);
    free(body);
    const char *shells[] = {"pgrep&&true", "[ -f /ok ]", "$CHECK", "a|b", "a;b", "x>y"};
    for (size_t k = 0; k < sizeof shells / sizeof shells[0]; k++) {
        s.health.cmd = &shells[k];
        body = sb_docker_create_body(&s);
        ck_assert_ptr_nonnull(strstr(body, "\"Test\":[\"CMD-SHELL\","));
        free(body);
    }
    /* One word: a program, run without a shell (a distroless image has none). */
    const char *one[] = {"/healthcheck"};
    s.health.cmd = one;
    body = sb_docker_create_body(&s);
    ck_assert_ptr_nonnull(strstr(body, "\"Test\":[\"CMD\",\"/healthcheck\"]"));
    free(body);
    /* No health_cmd: no Healthcheck, the image's own applies. */
    s.health = (sb_docker_health){0};
    body = sb_docker_create_body(&s);
    ck_assert_ptr_null(strstr(body, "Healthcheck"));
    free(body);
    s = (sb_docker_spec){.scaler_id = "w", .image = "x", .network = "backend", .port = 80};
    body = sb_docker_create_body(&s);
    doc = cJSON_Parse(body);
    ck_assert_ptr_null(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "HostConfig"), "PortBindings"));
    ck_assert_str_eq(
        cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "HostConfig"), "NetworkMode")->valuestring,
        "backend");
    cJSON_Delete(doc);
    free(body);
}
END_TEST

START_TEST(small_values)
{
    int64_t b;
    ck_assert_int_eq(sb_docker_parse_memory("256m", &b), 0);
    ck_assert_int_eq(b, 256LL << 20);
    ck_assert_int_eq(sb_docker_parse_memory("256MB", &b), 0);
    ck_assert_int_eq(b, 256LL << 20);
    ck_assert_int_eq(sb_docker_parse_memory("1g", &b), 0);
    ck_assert_int_eq(b, 1LL << 30);
    ck_assert_int_eq(sb_docker_parse_memory("512k", &b), 0);
    ck_assert_int_eq(b, 512LL << 10);
    ck_assert_int_eq(sb_docker_parse_memory("1048576", &b), 0);
    ck_assert_int_eq(b, 1048576);
    ck_assert_int_eq(sb_docker_parse_memory("100b", &b), 0);
    ck_assert_int_eq(b, 100);
    ck_assert_int_eq(sb_docker_parse_memory("lots", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("12q", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("12bb", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("12mx", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("-1m", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("99999999999999999g", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("99999999999999999999999", &b), -EINVAL);
    ck_assert_int_eq(sb_docker_parse_memory("", &b), -EINVAL);

    char p[128];
    ck_assert_int_eq(sb_docker_socket_path("socket", "unix:///run/podman/podman.sock", p, sizeof p,
                                           err, sizeof err),
                     0);
    ck_assert_str_eq(p, "/run/podman/podman.sock");
    ck_assert_int_eq(
        sb_docker_socket_path("socket", "/var/run/docker.sock", p, sizeof p, err, sizeof err), 0);
    ck_assert_str_eq(p, "/var/run/docker.sock");
    ck_assert_int_eq(sb_docker_socket_path("socket (from DOCKER_HOST)", "tcp://10.0.0.1:2375", p,
                                           sizeof p, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "socket (from DOCKER_HOST): only a unix socket is supported "
                          "(unix:///path), got 'tcp://10.0.0.1:2375'");
    ck_assert_int_eq(sb_docker_socket_path("socket", "docker.sock", p, sizeof p, err, sizeof err),
                     -EINVAL);
    ck_assert_str_eq(err, "socket: the socket must be an absolute path, got 'docker.sock'");

    char from[128], tag[64];
    sb_docker_image_ref("nginx", from, sizeof from, tag, sizeof tag);
    ck_assert_str_eq(from, "nginx");
    ck_assert_str_eq(tag, "latest");
    sb_docker_image_ref("nginx:1.25", from, sizeof from, tag, sizeof tag);
    ck_assert_str_eq(from, "nginx");
    ck_assert_str_eq(tag, "1.25");
    sb_docker_image_ref("127.0.0.1:5000/team/web", from, sizeof from, tag, sizeof tag);
    ck_assert_str_eq(from, "127.0.0.1:5000/team/web");
    ck_assert_str_eq(tag, "latest");
    sb_docker_image_ref("127.0.0.1:5000/team/web:2", from, sizeof from, tag, sizeof tag);
    ck_assert_str_eq(from, "127.0.0.1:5000/team/web");
    ck_assert_str_eq(tag, "2");
    sb_docker_image_ref("web@sha256:abcd", from, sizeof from, tag, sizeof tag);
    ck_assert_str_eq(from, "web@sha256:abcd");
    ck_assert_str_eq(tag, "");

    ck_assert_int_eq(sb_docker_name_index("web-3-a1b2c3", "web"), 3);
    ck_assert_int_eq(sb_docker_name_index("web-12-x", "web"), 12);
    ck_assert_int_eq(sb_docker_name_index("web-x-a1", "web"), -1);
    ck_assert_int_eq(sb_docker_name_index("web2-1-a1", "web"), -1);
    ck_assert_int_eq(sb_docker_name_index("web-1", "web"), -1);
    ck_assert_int_eq(sb_docker_name_index("we", "web"), -1);

    char o[8];
    sb_docker_one_line("a\tb\x7f"
                       "cdefghij",
                       o, sizeof o);
    ck_assert_str_eq(o, "a?b?cde");
}
END_TEST

/* ---- the plugin's option errors ------------------------------------------------------------- */

static int plugin_create(const char *opts)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d = test_plugin_load_if_built("docker", SB_KIND_SCALER, &handle);
    if (!d)
        return 0;
    char all[512];
    snprintf(all, sizeof all, "max: 3, %s", opts); /* every scaler has a max */
    int rc = test_plugin_try_options(d, all, err, sizeof(err));
    test_plugin_unload(handle);
    return rc;
}

START_TEST(plugin_options)
{
    ck_assert_int_eq(plugin_create("image: \"nginx:1.25\", command: [nginx, -g, \"daemon off;\"], "
                                   "env: {A: b}, labels: {team: web}, port: 80, memory: 256m, "
                                   "cpus: 0.5, pull: missing, stop_grace: 30s, on_stop: stop, "
                                   "socket: \"unix:///run/podman/podman.sock\""),
                     0);
    ck_assert_int_eq(plugin_create("image: x, pull: sometimes"), -EINVAL);
    ck_assert_str_eq(err, "pull: never or missing, got 'sometimes'");
    ck_assert_int_eq(plugin_create("image: x, labels: {scalebus.scaler: other}"), -EINVAL);
    ck_assert_str_eq(err, "labels: scalebus.scaler is the scaler's own (set to its id)");
    ck_assert_int_eq(plugin_create("image: x, port: 70000"), -EINVAL);
    ck_assert_str_eq(err, "port: 1 to 65535, got 70000");
    ck_assert_int_eq(plugin_create("image: x, memory: lots"), -EINVAL);
    ck_assert_str_eq(err, "memory: bytes or a size such as \"256m\" (at least 6m), got 'lots'");
    ck_assert_int_eq(plugin_create("image: x, cpus: 0"), -EINVAL);
    ck_assert_str_eq(err, "cpus: a number of CPUs above 0 (0.5, 2), got '0'");
    ck_assert_int_eq(plugin_create("image: x, socket: \"tcp://127.0.0.1:2375\""), -EINVAL);
    ck_assert_str_eq(err, "socket: only a unix socket is supported (unix:///path), got "
                          "'tcp://127.0.0.1:2375'");
    ck_assert_int_eq(plugin_create("image: x, name_prefix: \"-web\""), -EINVAL);
    ck_assert_str_eq(err, "name_prefix: '-web' cannot start a container name "
                          "([a-zA-Z0-9][a-zA-Z0-9_.-]*, 64 at most)");
    ck_assert_int_eq(plugin_create("image: x, network: \"a b\""), -EINVAL);
    ck_assert_str_eq(err, "network: 'a b' is not a network name");
    ck_assert_int_eq(plugin_create("image: \"a b\""), -EINVAL);
    ck_assert_str_eq(err, "image: 'a b' is not an image reference");
    ck_assert_int_eq(plugin_create("image: x, env: {\"A=B\": c}"), -EINVAL);
    ck_assert_str_eq(err, "env: 'A=B' is not a variable name");
    ck_assert_int_eq(plugin_create("image: x, on_stop: later"), -EINVAL);
    ck_assert_str_eq(err, "on_stop: keep or stop, got 'later'");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [\"test -f /tmp/ok\"], health_interval: "
                                   "1s, health_timeout: 500ms, health_retries: 2, "
                                   "health_start_period: 10s"),
                     0);
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [curl, -fs, \"http://127.0.0.1/\"]"), 0);
    /* Timings without health_cmd: unused, not an error (their defaults are always there). */
    ck_assert_int_eq(plugin_create("image: x, health_interval: 0s"), 0);
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [true], health_retries: 0"), -EINVAL);
    ck_assert_str_eq(err, "health_retries: 1 to 1000, got 0");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [true], health_interval: 0s"), -EINVAL);
    ck_assert_str_eq(err, "health_interval: 1ms to 24h, got 0ms");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [true], health_timeout: 25h"), -EINVAL);
    ck_assert_str_eq(err, "health_timeout: 1ms to 24h, got 90000000ms");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [true], health_start_period: 48h"),
                     -EINVAL);
    ck_assert_str_eq(err, "health_start_period: 0s to 24h, got 172800000ms");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: [\"\"]"), -EINVAL);
    ck_assert_str_eq(err, "health_cmd: the command cannot be an empty string");
    ck_assert_int_eq(plugin_create("image: x, health_cmd: []"), -EINVAL);
    ck_assert_str_eq(err, "health_cmd: a command, as a list ([curl, -fs, URL]) or one shell line "
                          "([\"test -f /tmp/ok\"])");
}
END_TEST

/* reconfigure(): the container's options in place, the fleet's rows by a replacement. */
START_TEST(plugin_reconfigure)
{
    void *handle = NULL;
    const sb_plugin_descriptor *d = test_plugin_load_if_built("docker", SB_KIND_SCALER, &handle);
    if (!d)
        return;
    ck_assert_ptr_nonnull(d->reconfigure);
    const char *head = "scalers:\n  - { id: web, type: docker, max: 3, ";
    char yaml[512];
    snprintf(yaml, sizeof yaml, "%simage: x, on_stop: stop }\n", head);
    fake_host *fh = fake_host_new("web");
    void *state = NULL;
    ck_assert_int_eq(test_plugin_create_from_yaml(d, fh, yaml, "web", &state, err, sizeof err), 0);
    struct {
        const char *opts;
        int rc;
        const char *err;
    } cases[] = {
        {"image: \"y:2\", labels: {team: a}, stop_grace: 3s, on_stop: stop", 0, NULL},
        {"image: y, socket: /run/podman/podman.sock, name_prefix: w, on_stop: stop", 0, NULL},
        {"image: y, on_stop: keep", SB_RECONFIGURE_REPLACE, NULL},
        {"image: y, on_stop: stop, reconcile_every: 5s", SB_RECONFIGURE_REPLACE, NULL},
        {"image: y, on_stop: stop, pull: often", -EINVAL, "pull: never or missing, got 'often'"},
        {"image: y, on_stop: stop, health_cmd: [\"test -f /ok\"], health_interval: 2s", 0, NULL},
        {"image: y, on_stop: stop, health_cmd: [true], health_retries: 0", -EINVAL,
         "health_retries: 1 to 1000, got 0"},
    };
    test_option_values *kept[7] = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(yaml, sizeof yaml, "%s%s }\n", head, cases[i].opts);
        kept[i] = test_option_values_from_yaml(d, yaml, "web");
        err[0] = '\0';
        ck_assert_int_eq(d->reconfigure(state, test_option_values_get(kept[i]), err, sizeof err),
                         cases[i].rc);
        if (cases[i].err)
            ck_assert_str_eq(err, cases[i].err);
    }
    d->destroy(state);
    for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
        test_option_values_free(kept[i]);
    fake_host_free(fh);
    test_plugin_unload(handle);
}
END_TEST

static Suite *docker_suite(void)
{
    Suite *s = suite_create("docker_parse");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, version_negotiation);
    tcase_add_test(tc, error_replies);
    tcase_add_test(tc, list_only_ours);
    tcase_add_test(tc, list_errors);
    tcase_add_test(tc, inspect_states);
    tcase_add_test(tc, inspect_health);
    tcase_add_test(tc, inspect_addresses);
    tcase_add_test(tc, inspect_errors);
    tcase_add_test(tc, times);
    tcase_add_test(tc, created_and_pull);
    tcase_add_test(tc, create_body);
    tcase_add_test(tc, small_values);
    tcase_add_test(tc, plugin_options);
    tcase_add_test(tc, plugin_reconfigure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(docker_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
