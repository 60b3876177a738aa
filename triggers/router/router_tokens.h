/*
 * router_tokens.h - services registered at run time through the router (`/_scalebus/token`).
 *
 * A token is a service the operator adds without editing the pipeline file: POST a name, hosts
 * and a backend description (a scaler type and its options); the router writes a pipeline
 * fragment (the scaler, a waiter connector from the router to it, and an `extend:` that adds the
 * service to this router) into its `state_dir`, which the pipeline file includes, and asks the
 * host to check the whole configuration and reload (host->request_reload). The fragment survives
 * restarts because the file does. GET reads tokens back, DELETE removes one; a POST for a name
 * that exists is an update, which the reload turns into a new version beside the old.
 *
 * Split in two: rt_token_fragment() is pure (a request document in, the fragment text and the
 * description to keep out) and unit-tested; rt_tokens_serve() does the HTTP, files and host call.
 */
#ifndef SB_ROUTER_TOKENS_H
#define SB_ROUTER_TOKENS_H

#include <cJSON.h>
#include <stddef.h>

#include "httpd.h"
#include "scalebus/plugin.h"

#define RT_TOKEN_NAME_MAX 63
#define RT_TOKEN_BODY_MAX (64 * 1024)

/* The components a token's fragment declares, from its name. */
#define RT_TOKEN_SCALER_PREFIX "token-"
#define RT_TOKEN_POLICY_SUFFIX "-policy"

/* A token name: 1 to 63 of [a-z0-9-], starting and ending with a letter or digit. */
int rt_token_name_ok(const char *name);

/* Build the fragment for the request document req (a JSON object, see triggers/router/README.md:
 * name, hosts, backend {type, options...}, min, max, concurrency_level, the service's own options,
 * policy {...}, drain). router_id is the router that serves it. On success returns 0 with
 * *yaml (the file's text, malloc'd) and *name (req's name, pointing into req). On a bad request
 * returns -EINVAL with one line in err naming the field. */
int rt_token_fragment(const cJSON *req, const char *router_id, char **yaml, const char **name,
                      char *err, size_t errlen);

typedef struct rt_tokens_conf {
    const sb_host *host;
    sb_instance *inst;
    const char *router_id;
    const char *state_dir;  /* absolute; NULL: tokens are off */
    const char *token_auth; /* the bearer token; NULL: tokens are off */
} rt_tokens_conf;

/* Answer a request for /_scalebus/token or /_scalebus/token/NAME (body: the whole request
 * body, NUL-terminated). Returns the status it answered with. */
int rt_tokens_serve(const rt_tokens_conf *conf, sb_httpd_exchange *ex,
                    const sb_httpd_request *req, const char *body, size_t len);

#endif
