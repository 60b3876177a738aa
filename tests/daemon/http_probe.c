/*
 * http_probe.c - a test-only trigger that makes one request through host->http_request when it
 * starts (option `url`), and records what came back in http_probe_stats (read by
 * tests/test_http.c through dlsym). A callback after the instance's stop() is counted as late:
 * the daemon must cancel an instance's requests before its stop completes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <scalebus/plugin.h>

typedef struct http_probe_stats {
    int starts, stops, requests, replies, late;
    long last_status;
} http_probe_stats;

__attribute__((visibility("default"))) http_probe_stats http_probe_stats_v;

typedef struct probe {
    sb_instance *inst;
    const sb_host *host;
    const char *url;
    int stopped;
} probe;

static const sb_option_spec options[] = {
    {"url", SB_OPT_STRING, NULL, 1, "where to send one GET at start"},
    {NULL, 0, NULL, 0, NULL},
};

static int probe_create(sb_instance *inst, const sb_host *host, const sb_value *values,
                        void **state, char *err, size_t errlen)
{
    if (!SB_HOST_HAS(host, http_request)) {
        snprintf(err, errlen, "no http_request in this host");
        return -1;
    }
    probe *p = calloc(1, sizeof *p);
    if (!p)
        return -1;
    p->inst = inst;
    p->host = host;
    p->url = values[0].str;
    *state = p;
    return 0;
}

static void on_reply(void *arg, const sb_http_response *res)
{
    probe *p = arg;
    if (p->stopped)
        http_probe_stats_v.late++;
    http_probe_stats_v.replies++;
    http_probe_stats_v.last_status = res->status;
}

static int probe_start(void *state)
{
    probe *p = state;
    http_probe_stats_v.starts++;
    sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = p->url};
    if (p->host->http_request(p->inst, &req, on_reply, p, NULL) == 0)
        http_probe_stats_v.requests++;
    return 0;
}

static int probe_stop(void *state)
{
    probe *p = state;
    p->stopped = 1;
    http_probe_stats_v.stops++;
    return 0;
}

static void probe_destroy(void *state)
{
    free(state);
}

static const sb_plugin_descriptor descriptor = {
    SB_DESCRIPTOR_SIZES,
    .type = "http_probe",
    .kind = SB_KIND_TRIGGER,
    .version = "1.0.0",
    .description = "test probe: one HTTP request at start",
    .options = options,
    .create = probe_create,
    .start = probe_start,
    .stop = probe_stop,
    .destroy = probe_destroy,
};

SB_PLUGIN_EXPORT(descriptor)
