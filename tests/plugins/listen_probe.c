/*
 * listen_probe.c - a test-only trigger that answers every TCP connection on a socket from
 * host->listen (host version 4) with its tag and a newline, then closes it. test_listen uses it
 * to show that a reload replacing it never closes the port.
 *
 * Options: listen (required, ADDRESS:PORT), tag (default "a"). The socket is asked for in
 * create(), so a port in use fails the component (and refuses a reload).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "scalebus/plugin.h"

enum { OPT_LISTEN, OPT_TAG, NOPTS };

static const sb_option_spec probe_options[] = {
    [OPT_LISTEN] = {"listen", SB_OPT_STRING, NULL, 1, "ADDRESS:PORT"},
    [OPT_TAG] = {"tag", SB_OPT_STRING, "a", 0, "what each connection reads"},
    [NOPTS] = {NULL, 0, NULL, 0, NULL},
};

typedef struct probe {
    sb_instance *inst;
    const sb_host *host;
    int fd; /* until start() hands it to the handle */
    uv_tcp_t server;
    int server_open, stopping;
    size_t clients; /* connections being answered */
    char line[80];
} probe;

typedef struct client {
    uv_tcp_t tcp;
    uv_write_t req;
    probe *p;
} client;

static void maybe_stopped(probe *p)
{
    if (p->stopping && !p->server_open && p->clients == 0)
        p->host->stopped(p->inst);
}

static void client_closed(uv_handle_t *h)
{
    client *c = h->data;
    probe *p = c->p;
    free(c);
    p->clients--;
    maybe_stopped(p);
}

static void client_written(uv_write_t *req, int status)
{
    client *c = req->data;
    (void)status;
    uv_close((uv_handle_t *)&c->tcp, client_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    probe *p = server->data;
    if (status < 0)
        return;
    client *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->p = p;
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    c->req.data = c;
    p->clients++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, client_closed);
        return;
    }
    uv_buf_t buf = uv_buf_init(p->line, (unsigned)strlen(p->line));
    if (uv_write(&c->req, (uv_stream_t *)&c->tcp, &buf, 1, client_written) != 0)
        uv_close((uv_handle_t *)&c->tcp, client_closed);
}

static int probe_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                        void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, listen)) {
        snprintf(err, errlen, "this daemon has no host->listen");
        return -ENOTSUP;
    }
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    p->inst = inst;
    p->host = host;
    snprintf(p->line, sizeof p->line, "%s\n", values[OPT_TAG].str);
    p->fd = host->listen(inst, values[OPT_LISTEN].str, 0, err, errlen);
    if (p->fd < 0) {
        int rc = p->fd;
        free(p);
        return rc;
    }
    *state = p;
    return 0;
}

static int probe_start(void *state)
{
    probe *p = state;
    uv_loop_t *loop = p->host->loop(p->inst);
    if (uv_tcp_init(loop, &p->server) != 0)
        return -ENOMEM;
    p->server.data = p;
    p->server_open = 1;
    int rc = uv_tcp_open(&p->server, p->fd);
    if (rc == 0)
        p->fd = -1; /* the handle owns it now */
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&p->server, 128, on_connection);
    return rc;
}

static void server_closed(uv_handle_t *h)
{
    probe *p = h->data;
    p->server_open = 0;
    maybe_stopped(p);
}

static int probe_stop(void *state)
{
    probe *p = state;
    p->stopping = 1;
    if (!p->server_open && p->clients == 0)
        return 0;
    if (p->server_open)
        uv_close((uv_handle_t *)&p->server, server_closed);
    return SB_PENDING;
}

static void probe_destroy(void *state)
{
    probe *p = state;
    if (!p)
        return;
    if (p->fd >= 0)
        close(p->fd); /* created, never started (a refused reload) */
    free(p);
}

static const sb_plugin_descriptor probe_descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "listen_probe",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "test: answers each connection with its tag",
    .options = probe_options,
    .create = probe_create,
    .start = probe_start,
    .stop = probe_stop,
    .destroy = probe_destroy,
};

SB_PLUGIN_EXPORT(probe_descriptor)
