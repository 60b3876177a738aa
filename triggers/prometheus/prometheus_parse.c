/*
 * prometheus_parse.c - Prometheus' instant-query reply (/api/v1/query) to series and values.
 *
 *   {"status":"success","data":{"resultType":"vector","result":[
 *       {"metric":{"__name__":"up","job":"web"},"value":[1700000000.1,"1"]}, ...]}}
 *   {"status":"success","data":{"resultType":"scalar","result":[1700000000.1,"10"]}}
 *   {"status":"error","errorType":"bad_data","error":"invalid parameter ..."}
 *
 * Everything comes from a remote: every field's type is checked and nothing is trusted to be
 * present. The labels point into the parsed cJSON tree, which the result owns.
 */
#include "prometheus_parse.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

typedef struct prom_store {
    cJSON *root;
    sb_prom_series *series;
    sb_label *labels;
    sb_prom_result result;
} prom_store;

static int prom_error(int code, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int prom_error(int code, char *err, size_t errlen, const char *fmt, ...)
{
    if (errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        /* Names and words quoted from the reply stay on this one line. */
        for (char *c = err; *c; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f)
                *c = '?';
    }
    return code;
}

/* A remote's text made fit for one log line: control characters become spaces, and it is cut
 * (with "...") to at most max bytes. */
static void prom_copy_line(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    if (cap == 0)
        return;
    for (; src[n] && n + 1 < cap; n++)
        dst[n] = ((unsigned char)src[n] < 0x20 || src[n] == 0x7f) ? ' ' : src[n];
    dst[n] = '\0';
    if (src[n] && cap > 4)
        memcpy(dst + cap - 4, "...", 4);
}

/* Prometheus writes sample values as strings: "3", "1e+308", "NaN", "+Inf", "-Inf". A number is
 * accepted as well (compatible servers); anything else is not a value. */
static int prom_value(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return 0;
    }
    if (!cJSON_IsString(v) || v->valuestring == NULL || v->valuestring[0] == '\0')
        return -1;
    const char *s = v->valuestring;
    /* strtod would also take hex, "infinity" and leading blanks: none of them is Prometheus'. */
    for (const char *c = s; *c; c++)
        if (!strchr("0123456789+-.eEaNIfn", *c))
            return -1;
    errno = 0;
    char *end = NULL;
    double d = strtod(s, &end);
    if (end == s || *end != '\0')
        return -1;
    /* An overflow ("1e999") is +-HUGE_VAL, an infinity: the caller treats it as one. */
    *out = d;
    return 0;
}

/* [time, "value"]: the value of a sample. */
static int prom_sample(const cJSON *pair, double *out)
{
    if (!cJSON_IsArray(pair) || cJSON_GetArraySize(pair) != 2)
        return -1;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(pair, 0)))
        return -1;
    return prom_value(cJSON_GetArrayItem(pair, 1), out);
}

static int prom_server_error(const cJSON *root, char *err, size_t errlen)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "errorType");
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "error");
    char t[64], x[400];
    prom_copy_line(t, sizeof t, cJSON_IsString(type) ? type->valuestring : "error");
    prom_copy_line(x, sizeof x, cJSON_IsString(text) ? text->valuestring : "(no error text)");
    return prom_error(-EREMOTEIO, err, errlen, "%s: %s", t, x);
}

static int prom_vector(prom_store *st, const cJSON *result, char *err, size_t errlen)
{
    int n = cJSON_GetArraySize(result);
    if (n > SB_PROM_MAX_SERIES)
        return prom_error(-E2BIG, err, errlen,
                          "the query returned %d series, more than %d (aggregate it, e.g. sum "
                          "by (job) (...))",
                          n, SB_PROM_MAX_SERIES);
    if (n == 0)
        return 0;
    size_t nlabels = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, result)
    {
        const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
        if (!cJSON_IsObject(item) || !cJSON_IsObject(metric))
            return prom_error(-EBADMSG, err, errlen,
                              "a series of the result has no \"metric\" object");
        int k = cJSON_GetArraySize(metric);
        nlabels += (size_t)(k < SB_MAX_LABELS ? k : SB_MAX_LABELS);
    }
    st->series = calloc((size_t)n, sizeof *st->series);
    st->labels = calloc(nlabels ? nlabels : 1, sizeof *st->labels);
    if (st->series == NULL || st->labels == NULL)
        return prom_error(-ENOMEM, err, errlen, "out of memory");
    size_t i = 0, used = 0;
    cJSON_ArrayForEach(item, result)
    {
        sb_prom_series *s = &st->series[i];
        const cJSON *metric = cJSON_GetObjectItemCaseSensitive(item, "metric");
        s->labels = &st->labels[used];
        const cJSON *l;
        cJSON_ArrayForEach(l, metric)
        {
            if (!cJSON_IsString(l) || l->string == NULL)
                return prom_error(-EBADMSG, err, errlen,
                                  "series %zu: the label \"%.64s\" is not a string", i + 1,
                                  l->string ? l->string : "");
            if (s->nlabels == SB_MAX_LABELS) {
                s->labels_cut++;
                continue;
            }
            st->labels[used].key = l->string;
            st->labels[used].value = l->valuestring;
            used++;
            s->nlabels++;
        }
        if (prom_sample(cJSON_GetObjectItemCaseSensitive(item, "value"), &s->value) != 0)
            return prom_error(-EBADMSG, err, errlen,
                              "series %zu: \"value\" is not a [time, \"number\"] pair", i + 1);
        i++;
    }
    st->result.series = st->series;
    st->result.nseries = i;
    return 0;
}

static int prom_scalar(prom_store *st, const cJSON *result, char *err, size_t errlen)
{
    st->series = calloc(1, sizeof *st->series);
    if (st->series == NULL)
        return prom_error(-ENOMEM, err, errlen, "out of memory");
    if (prom_sample(result, &st->series[0].value) != 0)
        return prom_error(-EBADMSG, err, errlen,
                          "the scalar result is not a [time, \"number\"] pair");
    st->result.is_scalar = 1;
    st->result.series = st->series;
    st->result.nseries = 1;
    return 0;
}

static int prom_data(prom_store *st, char *err, size_t errlen)
{
    const cJSON *root = st->root;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(root, "status");
    if (!cJSON_IsObject(root) || !cJSON_IsString(status))
        return prom_error(-EBADMSG, err, errlen,
                          "not a Prometheus API reply (no \"status\" field)");
    if (strcmp(status->valuestring, "error") == 0)
        return prom_server_error(root, err, errlen);
    if (strcmp(status->valuestring, "success") != 0)
        return prom_error(-EBADMSG, err, errlen, "unknown status \"%.32s\"", status->valuestring);
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(data, "resultType");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive(data, "result");
    if (!cJSON_IsObject(data) || !cJSON_IsString(type) || result == NULL)
        return prom_error(-EBADMSG, err, errlen,
                          "the reply has no \"data\" with \"resultType\" and \"result\"");
    const char *t = type->valuestring;
    if (strcmp(t, "vector") == 0) {
        if (!cJSON_IsArray(result))
            return prom_error(-EBADMSG, err, errlen, "the vector result is not an array");
        return prom_vector(st, result, err, errlen);
    }
    if (strcmp(t, "scalar") == 0)
        return prom_scalar(st, result, err, errlen);
    if (strcmp(t, "matrix") == 0)
        return prom_error(-EBADMSG, err, errlen,
                          "the query returned a range vector (matrix): use an instant vector, "
                          "e.g. rate(x[1m]) instead of x[1m]");
    if (strcmp(t, "string") == 0)
        return prom_error(-EBADMSG, err, errlen, "the query returned a string, not a number");
    return prom_error(-EBADMSG, err, errlen, "unknown resultType \"%.32s\"", t);
}

int sb_prometheus_parse(const char *body, size_t len, sb_prom_result **out, char *err,
                        size_t errlen)
{
    *out = NULL;
    if (body == NULL || len == 0)
        return prom_error(-EBADMSG, err, errlen, "empty reply");
    prom_store *st = calloc(1, sizeof *st);
    if (st == NULL)
        return prom_error(-ENOMEM, err, errlen, "out of memory");
    st->result.priv = st;
    /* Opts: the error position comes back here, not through cJSON's global error pointer. */
    const char *end = body;
    st->root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    int rc;
    if (st->root == NULL)
        rc = prom_error(-EBADMSG, err, errlen, "not JSON (at byte %zu of %zu)",
                        end ? (size_t)(end - body) : (size_t)0, len);
    else
        rc = prom_data(st, err, errlen);
    if (rc != 0) {
        sb_prom_result_free(&st->result);
        return rc;
    }
    *out = &st->result;
    return 0;
}

void sb_prom_result_free(sb_prom_result *r)
{
    if (r == NULL)
        return;
    prom_store *st = r->priv;
    cJSON_Delete(st->root);
    free(st->series);
    free(st->labels);
    free(st);
}
