/*
 * rabbitmq_parse.c - the management API's queue objects into (queue, value) pairs.
 *
 * The reply is trusted for nothing: every field's type is checked, numbers must be finite and not
 * negative, names are bounded, and the number of queues a reply may yield is bounded. A count the
 * server does not have yet (missing or null right after a queue is declared) is reported as such,
 * never as 0. Queue names put into an error line are cut short and stripped of control bytes.
 */
#define _POSIX_C_SOURCE 200809L

#include "rabbitmq_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

static const char *const measure_names[] = {
    [SB_RABBITMQ_MESSAGES_READY] = "messages_ready",
    [SB_RABBITMQ_MESSAGES] = "messages",
    [SB_RABBITMQ_MESSAGES_UNACKNOWLEDGED] = "messages_unacknowledged",
    [SB_RABBITMQ_CONSUMERS] = "consumers",
    [SB_RABBITMQ_PUBLISH_RATE] = "publish_rate",
};
#define MEASURE_COUNT (sizeof measure_names / sizeof measure_names[0])

int sb_rabbitmq_measure_from_name(const char *name, sb_rabbitmq_measure *out)
{
    for (size_t i = 0; name && i < MEASURE_COUNT; i++) {
        if (strcmp(name, measure_names[i]) == 0) {
            *out = (sb_rabbitmq_measure)i;
            return 0;
        }
    }
    return -EINVAL;
}

const char *sb_rabbitmq_measure_name(sb_rabbitmq_measure m)
{
    return (size_t)m < MEASURE_COUNT ? measure_names[m] : "?";
}

/* A queue name fit for an error line: at most 64 bytes, control bytes as '?'. */
static const char *printable(const char *s, char *buf, size_t len)
{
    size_t i = 0;
    for (; s[i] && i + 1 < len && i < 64; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    buf[i] = '\0';
    if (s[i] && len > 4 && i + 4 < len) {
        memcpy(buf + i, "...", 4);
    }
    return buf;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v))
        return "a string";
    if (cJSON_IsBool(v))
        return "a boolean";
    if (cJSON_IsArray(v))
        return "an array";
    if (cJSON_IsObject(v))
        return "an object";
    if (cJSON_IsNumber(v))
        return "a number";
    return "not a value";
}

/* The measured field of one queue object: 1 with *value, 0 when the server has no statistics
 * yet, or a negative code with err. */
static int queue_value(const cJSON *q, const char *qname, sb_rabbitmq_measure m, double *value,
                       char *err, size_t errlen)
{
    const char *field = measure_names[m];
    const cJSON *v;
    char nb[80];

    if (m == SB_RABBITMQ_PUBLISH_RATE) {
        /* Statistics exist once the counts do; the rate appears only after a first publish. */
        const cJSON *messages = cJSON_GetObjectItemCaseSensitive(q, "messages");
        const cJSON *stats = cJSON_GetObjectItemCaseSensitive(q, "message_stats");
        const cJSON *details;
        field = "message_stats.publish_details.rate";
        if (stats && !cJSON_IsNull(stats) && !cJSON_IsObject(stats)) {
            snprintf(err, errlen, "queue %s: message_stats is %s, not an object",
                     printable(qname, nb, sizeof nb), json_type_name(stats));
            return -EPROTO;
        }
        details = stats ? cJSON_GetObjectItemCaseSensitive(stats, "publish_details") : NULL;
        if (details && !cJSON_IsNull(details) && !cJSON_IsObject(details)) {
            snprintf(err, errlen, "queue %s: message_stats.publish_details is %s, not an object",
                     printable(qname, nb, sizeof nb), json_type_name(details));
            return -EPROTO;
        }
        v = cJSON_IsObject(details) ? cJSON_GetObjectItemCaseSensitive(details, "rate") : NULL;
        if (!v || cJSON_IsNull(v)) {
            if (!messages || cJSON_IsNull(messages))
                return 0;
            *value = 0; /* counted, but nothing published since the statistics began */
            return 1;
        }
    } else {
        v = cJSON_GetObjectItemCaseSensitive(q, field);
        if (!v || cJSON_IsNull(v))
            return 0;
    }
    if (!cJSON_IsNumber(v)) {
        snprintf(err, errlen, "queue %s: %s is %s, not a number", printable(qname, nb, sizeof nb),
                 field, json_type_name(v));
        return -EPROTO;
    }
    if (!isfinite(v->valuedouble) || v->valuedouble < 0) {
        snprintf(err, errlen, "queue %s: %s is out of range (%g)", printable(qname, nb, sizeof nb),
                 field, v->valuedouble);
        return -EPROTO;
    }
    *value = v->valuedouble;
    return 1;
}

/* The name of a queue object, or NULL with err. */
static const char *queue_name(const cJSON *q, size_t index, char *err, size_t errlen)
{
    const cJSON *n;
    if (!cJSON_IsObject(q)) {
        snprintf(err, errlen, "queue #%zu in the reply is %s, not an object", index + 1,
                 json_type_name(q));
        return NULL;
    }
    n = cJSON_GetObjectItemCaseSensitive(q, "name");
    if (!cJSON_IsString(n) || !n->valuestring) {
        snprintf(err, errlen, "queue #%zu in the reply has no name (%s)", index + 1,
                 n ? json_type_name(n) : "missing");
        return NULL;
    }
    if (strlen(n->valuestring) > SB_RABBITMQ_MAX_NAME) {
        snprintf(err, errlen, "queue #%zu in the reply has a name longer than %d bytes", index + 1,
                 SB_RABBITMQ_MAX_NAME);
        return NULL;
    }
    return n->valuestring;
}

static int result_add(sb_rabbitmq_result *r, size_t *cap, const char *qname, double value)
{
    if (r->count == *cap) {
        size_t ncap = *cap ? *cap * 2 : 4;
        sb_rabbitmq_value *nv = realloc(r->values, ncap * sizeof *nv);
        if (!nv)
            return -ENOMEM;
        r->values = nv;
        *cap = ncap;
    }
    r->values[r->count].queue = strdup(qname);
    if (!r->values[r->count].queue)
        return -ENOMEM;
    r->values[r->count].value = value;
    r->count++;
    return 0;
}

void sb_rabbitmq_result_free(sb_rabbitmq_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->count; i++)
        free(r->values[i].queue);
    free(r->values);
    memset(r, 0, sizeof *r);
}

/* One exact queue: the reply is its object, or an array holding it. */
static int parse_exact(const cJSON *root, sb_rabbitmq_measure m, const char *name,
                       sb_rabbitmq_result *out, char *err, size_t errlen)
{
    const cJSON *q = root;
    const char *qname;
    char nb[80], nb2[80];
    double value;
    size_t cap = 0;
    int rc;

    if (cJSON_IsArray(root)) {
        const cJSON *it;
        size_t i = 0;
        q = NULL;
        cJSON_ArrayForEach(it, root)
        {
            qname = queue_name(it, i++, err, errlen);
            if (!qname)
                return -EPROTO;
            if (strcmp(qname, name) == 0) {
                q = it;
                break;
            }
        }
        if (!q) {
            snprintf(err, errlen, "queue %s: not in the reply", printable(name, nb, sizeof nb));
            return -ENOENT;
        }
    } else if (!cJSON_IsObject(root)) {
        snprintf(err, errlen, "the reply is %s, not a queue object", json_type_name(root));
        return -EPROTO;
    }
    qname = queue_name(q, 0, err, errlen);
    if (!qname)
        return -EPROTO;
    if (strcmp(qname, name) != 0) {
        snprintf(err, errlen, "queue %s: the reply is about queue %s",
                 printable(name, nb, sizeof nb), printable(qname, nb2, sizeof nb2));
        return -ENOENT;
    }
    rc = queue_value(q, qname, m, &value, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        snprintf(err, errlen, "queue %s: no statistics yet", printable(name, nb, sizeof nb));
        return -EAGAIN;
    }
    rc = result_add(out, &cap, qname, value);
    if (rc < 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

/* Every queue of an array whose name the regex matches. */
static int parse_matching(const cJSON *root, sb_rabbitmq_measure m, const regex_t *re,
                          sb_rabbitmq_result *out, char *err, size_t errlen)
{
    const cJSON *q;
    size_t i = 0, matched = 0, cap = 0;
    char nb[80];
    const char *first_no_stats = NULL;
    int rc;

    if (!cJSON_IsArray(root)) {
        snprintf(err, errlen, "the reply is %s, not an array of queues", json_type_name(root));
        return -EPROTO;
    }
    cJSON_ArrayForEach(q, root)
    {
        const char *qname = queue_name(q, i++, err, errlen);
        double value;
        if (!qname)
            return -EPROTO;
        if (regexec(re, qname, 0, NULL, 0) != 0)
            continue;
        if (++matched > SB_RABBITMQ_MAX_QUEUES) {
            snprintf(err, errlen, "more than %d queues match", SB_RABBITMQ_MAX_QUEUES);
            return -E2BIG;
        }
        rc = queue_value(q, qname, m, &value, err, errlen);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            if (!first_no_stats)
                first_no_stats = qname;
            out->no_stats++;
            continue;
        }
        rc = result_add(out, &cap, qname, value);
        if (rc < 0) {
            snprintf(err, errlen, "out of memory");
            return rc;
        }
    }
    if (matched == 0) {
        snprintf(err, errlen, "no queue matches (%zu in the reply)", i);
        return -ENOENT;
    }
    if (out->count == 0) {
        snprintf(err, errlen, "queue %s%s: no statistics yet",
                 printable(first_no_stats, nb, sizeof nb),
                 out->no_stats > 1 ? " and the other matching queues" : "");
        return -EAGAIN;
    }
    return 0;
}

int sb_rabbitmq_parse(const char *body, size_t len, sb_rabbitmq_measure measure, const char *name,
                      const regex_t *re, sb_rabbitmq_result *out, char *err, size_t errlen)
{
    const char *text = body ? body : "";
    const char *end = NULL;
    cJSON *root;
    int rc;

    memset(out, 0, sizeof *out);
    if ((size_t)measure >= MEASURE_COUNT || (!name && !re) || (!body && len)) {
        snprintf(err, errlen, "bad arguments");
        return -EINVAL;
    }
    root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!root) {
        snprintf(err, errlen, "the reply is not JSON (%zu bytes)", len);
        return -EPROTO;
    }
    /* cJSON stops after the first value: anything but white space after it is not JSON either. */
    while (end && end < text + len && *end && strchr(" \t\r\n", *end))
        end++;
    if (!end || end != text + len) {
        cJSON_Delete(root);
        snprintf(err, errlen, "the reply is not JSON (%zu bytes, junk after byte %zu)", len,
                 end ? (size_t)(end - text) : len);
        return -EPROTO;
    }
    rc = name ? parse_exact(root, measure, name, out, err, errlen)
              : parse_matching(root, measure, re, out, err, errlen);
    cJSON_Delete(root);
    if (rc < 0)
        sb_rabbitmq_result_free(out);
    return rc;
}
