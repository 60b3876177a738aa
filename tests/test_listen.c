/*
 * test_listen.c - host->listen through the daemon (core/listeners.c): a component's listening
 * socket stays open while a reload replaces the component (a connection made just before the
 * reload is answered, never refused or reset), a second component on the same port is an error
 * that refuses the reload and leaves the running one serving, and removing the component closes
 * the port. The plugin is tests/plugins/listen_probe.c: it answers each connection with its tag.
 *
 * The plugin folder is in the build tree, which must be trusted for plugins to load from it
 * (a build under a sticky /tmp is not): then the test says SKIP and exits 77.
 */
#define _DEFAULT_SOURCE
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"
#include "loader.h"
#include "tmp_tree.h"

#define PROBE_DIR SB_BINARY_DIR "/tests/plugins/listen"

static char tmp[PATH_MAX];
static uv_loop_t loop;
static sb_daemon *d;
static int port;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void on_stopped(void *arg)
{
    *(int *)arg = 1;
}

static void setup(void)
{
    snprintf(tmp, sizeof tmp, "%s/tests/sb-test-listen-XXXXXX", SB_BINARY_DIR);
    ck_assert_ptr_nonnull(mkdtemp(tmp));
    ck_assert_int_eq(uv_loop_init(&loop), 0);
    static const char *const dirs[] = {PROBE_DIR};
    daemon_options o = {.plugin_dirs = dirs, .nplugin_dirs = 1, .log_level = SB_LOG_WARN,
                        .log_level_set = 1};
    d = daemon_new(&loop, &o);
    ck_assert_ptr_nonnull(d);
    port = free_port();
}

static void teardown(void)
{
    int done = 0;
    daemon_stop(d, on_stopped, &done);
    for (int i = 0; i < 5000 && !done; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        if (!done)
            usleep(1000);
    }
    daemon_free(d);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    tmp_tree_remove(tmp);
}

/* Loads the pipeline text (errors into errs); the same file each time, so it is a reload. */
static int load(const char *text, char *errs, size_t len)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/pipeline.yaml", tmp);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    config_errors e;
    config_errors_init(&e);
    int rc = daemon_load(d, path, &e);
    errs[0] = '\0';
    FILE *m = fmemopen(errs, len, "w");
    config_errors_print(&e, m);
    fclose(m);
    config_errors_free(&e);
    for (int i = 0; i < 50; i++) /* let retiring instances finish */
        uv_run(&loop, UV_RUN_NOWAIT);
    return rc;
}

static char *pipeline(const char *id, const char *tag, char *buf, size_t len)
{
    snprintf(buf, len,
             "triggers:\n  - {id: %s, type: listen_probe, listen: \"127.0.0.1:%d\", tag: %s}\n",
             id, port, tag);
    return buf;
}

/* A connected socket (blocking connect: the kernel completes it from the listen queue), or -1
 * with errno (ECONNREFUSED when nothing listens). */
static int connect_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* What a connection reads (the daemon's loop runs meanwhile): the tag, or "" on reset/close. */
static void read_answer(int fd, char *out, size_t len)
{
    size_t got = 0;
    out[0] = '\0';
    for (int i = 0; i < 5000; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 1) == 1) {
            ssize_t n = read(fd, out + got, len - 1 - got);
            if (n <= 0)
                break;
            got += (size_t)n;
            out[got] = '\0';
            if (strchr(out, '\n'))
                break;
        }
    }
    close(fd);
}

static void ask(char *out, size_t len)
{
    int fd = connect_port();
    ck_assert_msg(fd >= 0, "connect 127.0.0.1:%d: %s", port, strerror(errno));
    read_answer(fd, out, len);
}

START_TEST(test_reload_keeps_the_socket)
{
    char text[512], errs[4096], got[64];
    ck_assert_msg(load(pipeline("front", "one", text, sizeof text), errs, sizeof errs) == 0, "%s",
                  errs);
    ask(got, sizeof got);
    ck_assert_str_eq(got, "one\n");

    /* A client connects, then the component is replaced (a changed tag) before it is answered:
     * the socket stays open throughout, so the connection is answered, never reset. */
    int early = connect_port();
    ck_assert_int_ge(early, 0);
    ck_assert_msg(load(pipeline("front", "two", text, sizeof text), errs, sizeof errs) == 0, "%s",
                  errs);
    read_answer(early, got, sizeof got);
    ck_assert_msg(strcmp(got, "one\n") == 0 || strcmp(got, "two\n") == 0,
                  "the connection made across the reload read '%s'", got);
    ask(got, sizeof got);
    ck_assert_str_eq(got, "two\n");

    /* Another component on the same port: refused, with the address and the reason; the running
     * pipeline carries on. */
    char both[1024];
    char second[256];
    snprintf(both, sizeof both, "%s%s", pipeline("front", "two", text, sizeof text),
             strstr(pipeline("other", "three", second, sizeof second), "  - "));
    ck_assert_int_ne(load(both, errs, sizeof errs), 0);
    char want[128];
    snprintf(want, sizeof want, "127.0.0.1:%d: Address already in use", port);
    ck_assert_msg(strstr(errs, want) != NULL, "%s", errs);
    ask(got, sizeof got);
    ck_assert_str_eq(got, "two\n");

    /* Removed from the file: the port is closed. */
    ck_assert_msg(load("triggers: []\n", errs, sizeof errs) == 0, "%s", errs);
    int fd = connect_port();
    ck_assert_msg(fd < 0 && errno == ECONNREFUSED, "the port still accepts after removal");
}
END_TEST

/* Bad addresses are refused at create, with the option's text. */
START_TEST(test_bad_address)
{
    char errs[4096];
    ck_assert_int_ne(load("triggers:\n  - {id: f, type: listen_probe, listen: \"localhost:80\"}\n",
                          errs, sizeof errs),
                     0);
    ck_assert_msg(strstr(errs, "listen: 'localhost' is not a numeric address") != NULL, "%s",
                  errs);
    ck_assert_int_ne(
        load("triggers:\n  - {id: f, type: listen_probe, listen: \"8080\"}\n", errs, sizeof errs),
        0);
    ck_assert_msg(strstr(errs, "listen: expected ADDRESS:PORT") != NULL, "%s", errs);
}
END_TEST

int main(void)
{
    char why[PATH_MAX + 256];
    if (loader_check_dir(PROBE_DIR, why, sizeof why) != 0) {
        printf("SKIP: %s\n", why);
        return 77;
    }
    Suite *s = suite_create("listen");
    TCase *tc = tcase_create("listen");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_reload_keeps_the_socket);
    tcase_add_test(tc, test_bad_address);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
