/*
 * aws_parse.h - the pure parts of the AWS credentials library, apart so they are unit-tested and
 * fuzzed without a host: the shared credentials file, the metadata service's replies, ISO 8601
 * times and the refresh schedule. No I/O, no host, no globals.
 */
#ifndef SCALEBUS_AWS_PARSE_H
#define SCALEBUS_AWS_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Keys read from a file or a metadata reply; each string malloc'ed, freed by sb_aws_parsed_clear.
 */
typedef struct sb_aws_parsed {
    char *access_key_id;
    char *secret_access_key;
    char *session_token; /* NULL: none */
    int64_t expires_s;   /* 0: none */
} sb_aws_parsed;

void sb_aws_parsed_clear(sb_aws_parsed *k);

/* The largest credentials file read, and the largest metadata reply accepted. */
#define SB_AWS_MAX_FILE (1024 * 1024)
#define SB_AWS_MAX_REPLY (64 * 1024)

/* The [profile] section of a shared credentials file (INI: "[name]" headers, "key = value" lines,
 * '#' and ';' comment lines). Reads aws_access_key_id, aws_secret_access_key and
 * aws_session_token (or its old name aws_security_token); other keys are ignored. Returns 0,
 * -ENOENT when there is no such section, -EINVAL (a section without both keys, a value too long
 * or with control characters, a line that is neither), with one line in err that never holds a
 * secret. */
int sb_aws_parse_credentials_file(const char *text, size_t len, const char *profile,
                                  sb_aws_parsed *out, char *err, size_t errlen);

/* The role-name listing of GET /latest/meta-data/iam/security-credentials/: the first line, which
 * must be an IAM role name ([A-Za-z0-9+=,.@_-], 1-128 characters). Returns 0 with the name in
 * role (size rolelen >= 129), or -EINVAL with err. */
int sb_aws_parse_imds_role(const char *text, size_t len, char *role, size_t rolelen, char *err,
                           size_t errlen);

/* The JSON of GET /latest/meta-data/iam/security-credentials/ROLE: Code (when present) must be
 * "Success"; AccessKeyId, SecretAccessKey, Token and Expiration must be strings. Returns 0, or
 * -EINVAL with err. */
int sb_aws_parse_imds_credentials(const char *text, size_t len, sb_aws_parsed *out, char *err,
                                  size_t errlen);

/* "2026-11-27T18:00:00Z" (also with fractional seconds, or an offset "+01:00") in Unix seconds.
 * Returns 0, or -EINVAL. */
int sb_aws_parse_time(const char *text, int64_t *out);

/* Keys that expire at expires_s are still good to sign with at now_s (0: never expire): until 5
 * seconds before they expire. */
int sb_aws_keys_valid(int64_t now_s, int64_t expires_s);
/* When to fetch keys expiring at expires_s again, in ms from now_s: 5 minutes before they expire,
 * or half-way through a life shorter than 10 minutes; at least 1 s. */
uint64_t sb_aws_refresh_delay_ms(int64_t now_s, int64_t expires_s);

#endif
