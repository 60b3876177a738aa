/*
 * docker_api.h - what the docker scaler says to the Docker Engine API and how it reads the
 * replies (Docker 20.10 and Podman's Docker-compatible service): the create body, the version to
 * speak, the containers listed and inspected, error replies turned into one line and into busy or
 * failed. Pure: no host, no I/O, so every reply shape is unit-tested (tests/test_docker_parse.c).
 */
#ifndef SCALEBUS_DOCKER_API_H
#define SCALEBUS_DOCKER_API_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/scaler.h"

/* The API versions this plugin speaks: 1.25 (HostConfig.Init, NanoCpus) to 1.41. */
#define SB_DOCKER_API_NEWEST_MINOR 41
#define SB_DOCKER_API_OLDEST_MINOR 25

/* The label every container this scaler creates carries: scalebus.scaler=<scaler id>. */
#define SB_DOCKER_OWNER_LABEL "scalebus.scaler"

#define SB_DOCKER_ID_MAX 65      /* a full container id, 64 hex digits, and the NUL */
#define SB_DOCKER_NAME_MAX 128   /* a container name, without its leading '/' */
#define SB_DOCKER_ADDRESS_MAX 80 /* "host:port" */

/* GET /version: the version to speak, the lower of the server's ApiVersion and 1.41, as "1.41".
 * Returns 0, or -EINVAL with one line in err (no ApiVersion, or one older than 1.25). */
int sb_docker_parse_version(const char *body, char *out, size_t outlen, char *err, size_t errlen);

/* An error reply in one line: its "message" (Docker and Podman both send one), else the start of
 * the body, else "HTTP <status>"; control characters become '?'. */
void sb_docker_error_message(long status, const char *body, char *out, size_t len);
/* What an error reply means for the fleet: 409 (a conflict: the container is being removed or
 * changed) is busy, and so is Podman's 500 with cause "container state improper" (its answer
 * where Docker sends 409, e.g. stopping a paused container); anything else failed. */
sb_action_result sb_docker_classify(long status, const char *body);

/* One container of GET /containers/json. */
typedef struct sb_docker_listed {
    char id[SB_DOCKER_ID_MAX];
    char name[SB_DOCKER_NAME_MAX];
} sb_docker_listed;

/* GET /containers/json?all=1&filters=...: the containers whose label scalebus.scaler is exactly
 * scaler_id (checked here too, whatever the server's filter did). Returns 0 with a malloc'd array
 * in *out (NULL when none), or -EINVAL / -ENOMEM with one line in err. */
int sb_docker_parse_list(const char *body, const char *scaler_id, sb_docker_listed **out, size_t *n,
                         char *err, size_t errlen);

/* Where a member is reached: the container port (0: no address), and the network it is on. */
typedef struct sb_docker_where {
    int port;
    const char *network; /* NULL: Docker's default (the port is published); "host": 127.0.0.1 */
} sb_docker_where;

typedef struct sb_docker_inspected {
    sb_member_state state; /* running and unhealthy: failed (removed and replaced) */
    int64_t started_at;    /* State.StartedAt, or Created when it never started; Unix seconds */
    int64_t started_ns;    /* the same in nanoseconds: orders containers started within a second */
    char address[SB_DOCKER_ADDRESS_MAX]; /* "" when unknown */
    char status[48];                     /* State.Status, and health when there is one */
    char health[16];                     /* State.Health.Status: "" when it has no check */
    int health_streak;                   /* State.Health.FailingStreak */
    char health_last[160]; /* the last check, "exit 1: <its output>", "" when none ran */
} sb_docker_inspected;

/* A container created this long ago and never started is left over (a create whose start never
 * came): it is reported failed, so the fleet removes and replaces it. */
#define SB_DOCKER_CREATED_STALE_S 120

/* GET /containers/{id}/json: the member's state (running and healthy, or running without a
 * health check: ready; health starting, created, restarting, paused: starting; removing,
 * stopping: stopping; exited, dead, and running but unhealthy: failed), started-at, address and
 * health. now_s is the wall clock, for a created container left over. Returns 0 or -EINVAL with
 * one line in err. */
int sb_docker_parse_inspect(const char *body, const sb_docker_where *where, int64_t now_s,
                            sb_docker_inspected *out, char *err, size_t errlen);

/* An RFC 3339 time as Docker and Podman write it ("2026-11-27T17:26:31.865168444Z",
 * "...+01:00") in Unix seconds; 0 for Go's zero time (year 1); -1 when malformed. With ns, the
 * time in nanoseconds goes there too (0 and -1 likewise). */
int64_t sb_docker_parse_time(const char *s, int64_t *ns);

/* POST /containers/create's reply: the new container's Id. Returns 0 or -EINVAL. */
int sb_docker_parse_created(const char *body, char *id, size_t idlen, char *err, size_t errlen);

/* POST /images/create answers 200 and streams JSON lines; a failed pull ends with a line
 * {"error": "...", ...}. Returns 1 with that error (one line) in msg, else 0. */
int sb_docker_pull_error(const char *body, char *msg, size_t len);

/* "256m", "1g", "512k", "1048576", "100b": bytes (1024-based, as docker run --memory). Returns 0
 * or -EINVAL. */
int sb_docker_parse_memory(const char *s, int64_t *bytes);

/* The socket path from a `socket` option or DOCKER_HOST: "unix:///path" or "/path". Returns 0,
 * or -EINVAL with one line in err (another scheme: tcp:// is not supported). */
int sb_docker_socket_path(const char *what, const char *value, char *path, size_t len, char *err,
                          size_t errlen);

/* A health check of the scaler's own (health_cmd), the create body's Healthcheck. */
typedef struct sb_docker_health {
    const char *const *cmd; /* run inside the container; NULL: the image's own HEALTHCHECK */
    size_t ncmd;
    int64_t interval_ns, timeout_ns, start_period_ns;
    int retries;
} sb_docker_health;

/* Durations of a health check are at most this long (and exact in JSON's doubles). */
#define SB_DOCKER_HEALTH_MAX_MS (24LL * 3600 * 1000)

/* What a container is made of (the options). Lists and maps are parallel arrays. */
typedef struct sb_docker_spec {
    const char *scaler_id;
    const char *image;
    const char *const *cmd;
    size_t ncmd;
    const char *const *env_keys, *const *env_values;
    size_t nenv;
    const char *const *label_keys, *const *label_values;
    size_t nlabels;
    int port;            /* 0: none */
    const char *network; /* NULL: Docker's default */
    const char *host_ip; /* where a published port listens ("127.0.0.1") */
    int64_t memory;      /* bytes; 0: no limit */
    int64_t nano_cpus;   /* 0: no limit */
    int init;
    sb_docker_health health;
} sb_docker_spec;

/* The body of POST /containers/create, compact JSON (malloc'd; NULL when out of memory). With a
 * health check: "Healthcheck": {"Test": ["CMD", argv...], "Interval": ns, "Timeout": ns,
 * "Retries": n, "StartPeriod": ns}; a single item with white space or a shell character in it
 * is a shell line, ["CMD-SHELL", item]. */
char *sb_docker_create_body(const sb_docker_spec *spec);

/* The image reference split for POST /images/create: fromImage and tag ("latest" when the
 * reference names neither a tag nor a digest; "" with a digest, which stays in fromImage). */
void sb_docker_image_ref(const char *image, char *from, size_t fromlen, char *tag, size_t taglen);

/* N of a container name "<prefix>-<N>-<suffix>", or -1 when the name is not of that form. */
int sb_docker_name_index(const char *name, const char *prefix);

/* A string made safe for a one-line message: control characters become '?', cut to len. */
void sb_docker_one_line(const char *s, char *out, size_t len);

#endif
