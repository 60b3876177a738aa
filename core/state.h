/*
 * state.h - the daemon's state file (the pipeline file's `state: {dir, every}`, docs/state.md):
 * what must survive a restart, one JSON file per daemon in state.dir, written atomically.
 *
 *   {"format": "scalebus-state", "version": 1, "daemon": "0.9.0", "written_at_ms": ...,
 *    "components": [{"id": "q", "type": "target", "version": "1.0.0", "snapshot": {...}}],
 *    "scalers": [{"id": "web", "type": "process", "last_desired": 4, "paused": true,
 *                 "override": {"desired": 6, "until_ms": 1767225600000}}]}
 *
 * Reading checks the file as untrusted input: a corrupt, foreign or newer file is refused with
 * one line (the caller logs it and starts without saved state). Nothing here touches the loop:
 * state_write blocks (fsync) and runs on a worker thread; state_read runs once, at the first load.
 */
#ifndef SCALEBUS_STATE_H
#define SCALEBUS_STATE_H

#include <stddef.h>
#include <stdint.h>

struct cJSON;

#define STATE_FILE_NAME "state.json"
#define STATE_FORMAT_NAME "scalebus-state"
#define STATE_FORMAT_VERSION 1
/* A bigger file is refused unread (30,000 components with a few KB each fit). */
#define STATE_FILE_MAX (256u << 20)

/* What is kept of one scaler. */
typedef struct state_scaler {
    double last_desired; /* the last clamped count it was told; NAN: none */
    int paused;
    int has_override;
    double override_desired;
    int64_t override_until_ms; /* wall clock, Unix milliseconds; 0: no hold */
} state_scaler;

typedef struct state_saved state_saved;

/* Read DIR/state.json. Returns what it holds, or NULL: no file (why is ""), or a file refused (why
 * says why, e.g. "/var/lib/scalebus/state.json: not JSON (at byte 12); ignored"). */
state_saved *state_read(const char *dir, char *why, size_t whylen);
void state_saved_free(state_saved *s);
/* The daemon version that wrote it. */
const char *state_saved_daemon(const state_saved *s);
/* The snapshot kept for the component with this id and type (NULL: none), and the version of the
 * plugin that wrote it (*version may be ""). */
const struct cJSON *state_saved_component(const state_saved *s, const char *id, const char *type,
                                          const char **version);
/* The scaler with this id and type: 1 and *out, or 0 when none (or its entry is malformed). */
int state_saved_scaler(const state_saved *s, const char *id, const char *type, state_scaler *out);
size_t state_saved_count(const state_saved *s);

/* A new document to fill; NULL when out of memory. */
struct cJSON *state_doc_new(const char *daemon_version, int64_t now_ms);
/* Add a component's snapshot (taken over, freed on error too). Returns 0 or -ENOMEM. */
int state_doc_add_component(struct cJSON *doc, const char *id, const char *type,
                            const char *version, struct cJSON *snapshot);
int state_doc_add_scaler(struct cJSON *doc, const char *id, const char *type,
                         const state_scaler *s);

/* Replace DIR/state.json with text atomically: a temporary file in DIR, written, fsync'd and
 * renamed over it, then DIR fsync'd. A crash leaves the old file or the new one, never a part.
 * Returns 0, or a negative errno with one line in err. Blocks: not on the loop thread. */
int state_write(const char *dir, const char *text, size_t len, char *err, size_t errlen);

#endif
