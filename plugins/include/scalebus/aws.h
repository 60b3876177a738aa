/*
 * scalebus/aws.h - AWS credentials and request signing, shared by every AWS-facing plugin (the
 * sqs trigger now; EC2 and Auto Scaling scalers later). One static library, libscalebus_aws.a
 * (PIC, hidden visibility), that calls the host only through sb_host.
 *
 * Where the keys come from, decided once in sb_aws_creds_new(), the first that has them:
 *   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, optional AWS_SESSION_TOKEN;
 *   2. the shared credentials file ($AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials),
 *      section [PROFILE] where PROFILE is the `profile` option, else $AWS_PROFILE, else
 *      "default" (a profile named by the option or $AWS_PROFILE must exist in the file);
 *   3. the instance metadata service v2 at `metadata_url` (default http://169.254.169.254):
 *      PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/ (the role), GET
 *      .../ROLE (the keys and their Expiration), all through host->http_request. These keys are
 *      fetched again before they expire (5 minutes before, or half-way through a shorter life),
 *      and a failed refresh is retried with back-off while the old keys are still valid.
 *
 * Secrets never reach a log line: what is logged is the source and the last 4 characters of the
 * access key id ("credentials from the instance metadata service (role r), key ...WXYZ, expire
 * 12:00:00Z").
 *
 *   // read():
 *   sb_aws_creds_get(self->creds, on_keys, self);       // on_keys may run inside this call
 *   static void on_keys(void *arg, const sb_aws_keys *k, const char *error) {
 *       if (!k) { sb_poller_fail(p, 0, "credentials: %s", error); return; }
 *       sb_http_request req = {SB_HTTP_REQUEST_INIT, .url = ..., .body = ...};
 *       sb_aws_signing sig;
 *       sb_aws_sign(&req, k, "eu-west-1", "sqs", &sig); // then http_request at once
 *       sb_poller_http(p, &req, on_reply, self);
 *   }
 *   // cancel(): sb_aws_creds_cancel(self->creds, on_keys, self);
 *   // stop():   sb_aws_creds_stop(self->creds);  destroy(): sb_aws_creds_free(self->creds);
 *
 * Everything here runs on the loop thread.
 */
#ifndef SCALEBUS_AWS_H
#define SCALEBUS_AWS_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A set of keys, valid for the duration of the callback that receives it. */
typedef struct sb_aws_keys {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL: none (long-term keys) */
    int64_t expires_s;         /* Unix seconds; 0: no expiry (environment, file) */
} sb_aws_keys;

typedef struct sb_aws_creds_options {
    const char *profile;          /* NULL: $AWS_PROFILE, else "default" */
    const char *metadata_url;     /* NULL: http://169.254.169.254 (http:// or https://) */
    const char *credentials_file; /* NULL: $AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials */
} sb_aws_creds_options;

typedef struct sb_aws_creds sb_aws_creds;

/* keys != NULL: use them (error is NULL). keys == NULL: none could be had; error says why in one
 * line ("instance metadata service: GET http://169.254.169.254/...: connection refused"). */
typedef void (*sb_aws_creds_cb)(void *arg, const sb_aws_keys *keys, const char *error);

/* Pick the source (above) and read the environment or the file now. Returns 0 and the object in
 * *out, or a negative code with one line in err ("profile 'ci': no [ci] section in
 * /root/.aws/credentials"). Logs the source chosen (info). */
int sb_aws_creds_new(sb_instance *inst, const sb_host *host, const sb_aws_creds_options *opt,
                     sb_aws_creds **out, char *err, size_t errlen);
/* Hand valid keys to cb: at once (inside this call) when the ones held are valid, else once the
 * metadata service has answered (or failed). Returns 0, or -ESHUTDOWN after sb_aws_creds_stop,
 * -ENOMEM (cb is then never called). */
int sb_aws_creds_get(sb_aws_creds *c, sb_aws_creds_cb cb, void *arg);
/* Forget waiting calls of cb with arg (a read abandoned): they are never called. */
void sb_aws_creds_cancel(sb_aws_creds *c, sb_aws_creds_cb cb, void *arg);
/* No more fetches: the request in flight, the refresh timer and every waiter end, without
 * callbacks. Call it from the plugin's stop(). */
void sb_aws_creds_stop(sb_aws_creds *c);
void sb_aws_creds_free(sb_aws_creds *c);

/* Room for the headers of a signed request: the caller's and X-Amz-Security-Token. */
#define SB_AWS_MAX_HEADERS 16
typedef struct sb_aws_signing {
    char sigv4[128];
    sb_label headers[SB_AWS_MAX_HEADERS + 1];
} sb_aws_signing;

/* Make req signed with SigV4 by the host's HTTP client: req->aws_sigv4 = "aws:amz:REGION:SERVICE",
 * username/password = the keys, and (with a session token) an X-Amz-Security-Token header added
 * after req's own (req->headers then points into *scratch). keys and scratch must outlive the
 * http_request() call (it copies everything). Returns 0, or -EINVAL (a region or service that is
 * not [a-z0-9-]+, more than SB_AWS_MAX_HEADERS headers). */
int sb_aws_sign(sb_http_request *req, const sb_aws_keys *keys, const char *region,
                const char *service, sb_aws_signing *scratch);

#ifdef __cplusplus
}
#endif
#endif
