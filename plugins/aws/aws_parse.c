/*
 * aws_parse.c - the pure parsers of the AWS credentials library (see aws_parse.h): the shared
 * credentials file, the metadata service's role listing and credentials JSON, ISO 8601 times,
 * and when keys are valid and when to fetch them again. Every size is bounded; no error message
 * ever holds a secret.
 */
#define _POSIX_C_SOURCE 200809L
#include "aws_parse.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY_ID 256
#define MAX_SECRET 256
#define MAX_TOKEN 8192
#define MAX_ROLE 128

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* Messages may quote what the metadata service sent: keep them one line. */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return rc;
}

void sb_aws_parsed_clear(sb_aws_parsed *k)
{
    free(k->access_key_id);
    free(k->secret_access_key);
    free(k->session_token);
    memset(k, 0, sizeof(*k));
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* A value may hold any printable ASCII character but no control character. */
static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return 0;
    }
    return 1;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

/* Trim [*b, *e) of blanks. */
static void trim(const char **b, const char **e)
{
    while (*b < *e && is_blank(**b))
        (*b)++;
    while (*e > *b && is_blank((*e)[-1]))
        (*e)--;
}

static int parse_credentials(const char *text, size_t len, const char *profile, sb_aws_parsed *out,
                             char *err, size_t errlen)
{
    if (len > SB_AWS_MAX_FILE)
        return fail(err, errlen, -EINVAL, "larger than %d bytes", SB_AWS_MAX_FILE);
    size_t plen = strlen(profile);
    const char *p = text, *end = text + len;
    int in_section = 0, found = 0, lineno = 0;
    /* Each key at most once in the section: the last one would win silently otherwise. */
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *b = p, *e = le;
        lineno++;
        p = nl ? nl + 1 : end;
        if (memchr(b, '\0', (size_t)(e - b)))
            return fail(err, errlen, -EINVAL, "line %d: a NUL byte", lineno);
        trim(&b, &e);
        if (b == e || *b == '#' || *b == ';')
            continue;
        if (*b == '[') {
            if (e[-1] != ']')
                return fail(err, errlen, -EINVAL, "line %d: a section header without ']'", lineno);
            const char *nb = b + 1, *ne = e - 1;
            trim(&nb, &ne);
            in_section = (size_t)(ne - nb) == plen && memcmp(nb, profile, plen) == 0;
            if (in_section) {
                if (found) /* a repeated section: the AWS CLI merges; we refuse to guess */
                    return fail(err, errlen, -EINVAL, "line %d: section [%s] appears twice", lineno,
                                profile);
                found = 1;
            }
            continue;
        }
        const char *eq = memchr(b, '=', (size_t)(e - b));
        if (!eq)
            return fail(err, errlen, -EINVAL, "line %d: expected 'key = value' or '[section]'",
                        lineno);
        if (!in_section)
            continue;
        const char *kb = b, *ke = eq, *vb = eq + 1, *ve = e;
        trim(&kb, &ke);
        trim(&vb, &ve);
        size_t kl = (size_t)(ke - kb), vl = (size_t)(ve - vb);
        char **slot = NULL;
        size_t max = 0;
        if (kl == 17 && memcmp(kb, "aws_access_key_id", 17) == 0) {
            slot = &out->access_key_id;
            max = MAX_KEY_ID;
        } else if (kl == 21 && memcmp(kb, "aws_secret_access_key", 21) == 0) {
            slot = &out->secret_access_key;
            max = MAX_SECRET;
        } else if ((kl == 17 && memcmp(kb, "aws_session_token", 17) == 0) ||
                   (kl == 18 && memcmp(kb, "aws_security_token", 18) == 0)) {
            slot = &out->session_token;
            max = MAX_TOKEN;
        }
        if (!slot)
            continue;
        if (vl == 0 || vl > max || !printable(vb, vl)) {
            sb_aws_parsed_clear(out);
            return fail(err, errlen, -EINVAL,
                        "line %d: %.*s: empty, longer than %zu characters or not printable", lineno,
                        (int)kl, kb, max);
        }
        free(*slot);
        *slot = dup_n(vb, vl);
        if (!*slot) {
            sb_aws_parsed_clear(out);
            return fail(err, errlen, -ENOMEM, "out of memory");
        }
    }
    if (!found)
        return fail(err, errlen, -ENOENT, "no [%s] section", profile);
    if (!out->access_key_id || !out->secret_access_key) {
        const char *missing = !out->access_key_id ? "aws_access_key_id" : "aws_secret_access_key";
        sb_aws_parsed_clear(out);
        return fail(err, errlen, -EINVAL, "section [%s] has no %s", profile, missing);
    }
    return 0;
}

int sb_aws_parse_credentials_file(const char *text, size_t len, const char *profile,
                                  sb_aws_parsed *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    int rc = parse_credentials(text, len, profile, out, err, errlen);
    if (rc)
        sb_aws_parsed_clear(out); /* nothing half-read is left */
    return rc;
}

int sb_aws_parse_imds_role(const char *text, size_t len, char *role, size_t rolelen, char *err,
                           size_t errlen)
{
    const char *nl = memchr(text, '\n', len);
    const char *b = text, *e = nl ? nl : text + len;
    trim(&b, &e);
    size_t n = (size_t)(e - b);
    if (n == 0)
        return fail(err, errlen, -EINVAL, "no IAM role is attached to this instance");
    if (n > MAX_ROLE || n + 1 > rolelen)
        return fail(err, errlen, -EINVAL, "the role name is longer than %d characters", MAX_ROLE);
    for (size_t i = 0; i < n; i++) {
        char c = b[i];
        int okc = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("+=,.@_-", c) != NULL;
        if (!okc || c == '\0')
            return fail(err, errlen, -EINVAL, "the role listing is not an IAM role name");
    }
    memcpy(role, b, n);
    role[n] = '\0';
    return 0;
}

/* A string member of obj that is printable and at most max long, copied into *dst. */
static int take_string(const cJSON *obj, const char *name, size_t max, char **dst, char *err,
                       size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (!v)
        return fail(err, errlen, -EINVAL, "no %s in the reply", name);
    if (!cJSON_IsString(v) || !v->valuestring)
        return fail(err, errlen, -EINVAL, "%s is not a string", name);
    size_t n = strlen(v->valuestring);
    if (n == 0 || n > max || !printable(v->valuestring, n))
        return fail(err, errlen, -EINVAL, "%s is empty, too long or not printable", name);
    *dst = dup_n(v->valuestring, n);
    return *dst ? 0 : fail(err, errlen, -ENOMEM, "out of memory");
}

int sb_aws_parse_imds_credentials(const char *text, size_t len, sb_aws_parsed *out, char *err,
                                  size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > SB_AWS_MAX_REPLY)
        return fail(err, errlen, -EINVAL, "reply larger than %d bytes", SB_AWS_MAX_REPLY);
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root)
        return fail(err, errlen, -EINVAL, "the reply is not JSON");
    int rc = 0;
    char *expiration = NULL;
    if (!cJSON_IsObject(root)) {
        rc = fail(err, errlen, -EINVAL, "the reply is not a JSON object");
        goto out;
    }
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(root, "Code");
    if (code && !(cJSON_IsString(code) && strcmp(code->valuestring, "Success") == 0)) {
        const char *c = cJSON_IsString(code) ? code->valuestring : "(not a string)";
        rc = fail(err, errlen, -EINVAL, "Code is %.64s, not Success", c);
        goto out;
    }
    if ((rc = take_string(root, "AccessKeyId", MAX_KEY_ID, &out->access_key_id, err, errlen)) ||
        (rc = take_string(root, "SecretAccessKey", MAX_SECRET, &out->secret_access_key, err,
                          errlen)) ||
        (rc = take_string(root, "Token", MAX_TOKEN, &out->session_token, err, errlen)) ||
        (rc = take_string(root, "Expiration", 64, &expiration, err, errlen)))
        goto out;
    if (sb_aws_parse_time(expiration, &out->expires_s) != 0 || out->expires_s <= 0)
        rc = fail(err, errlen, -EINVAL, "Expiration '%s' is not an ISO 8601 UTC time", expiration);
out:
    free(expiration);
    cJSON_Delete(root);
    if (rc)
        sb_aws_parsed_clear(out);
    return rc;
}

/* n digits at s as a number; -1 when they are not all digits. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int sb_aws_parse_time(const char *s, int64_t *out)
{
    /* YYYY-MM-DDTHH:MM:SS */
    if (!s || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':')
        return -EINVAL;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2), h = digits(s + 11, 2),
        mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60)
        return -EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0;
        while (*p >= '0' && *p <= '9' && n < 9) {
            p++;
            n++;
        }
        if (n == 0)
            return -EINVAL;
    }
    int64_t offset = 0;
    if ((*p == 'Z' || *p == 'z') && p[1] == '\0') {
        offset = 0;
    } else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh = digits(p + 1, 2), om = digits(p + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -EINVAL;
        offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
    } else {
        return -EINVAL;
    }
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    return 0;
}

int sb_aws_keys_valid(int64_t now_s, int64_t expires_s)
{
    return expires_s == 0 || now_s + 5 < expires_s;
}

uint64_t sb_aws_refresh_delay_ms(int64_t now_s, int64_t expires_s)
{
    int64_t left = expires_s - now_s;
    int64_t delay_s = left > 600 ? left - 300 : left / 2;
    if (delay_s < 1)
        delay_s = 1;
    return (uint64_t)delay_s * 1000;
}
