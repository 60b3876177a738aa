/*
 * prometheus_parse.h - the reply of Prometheus' instant-query API (GET /api/v1/query) as series:
 * each with its labels and its value. A pure function: bytes in, series out; no host, no I/O.
 *
 *   sb_prom_result *r; char err[256];
 *   if (sb_prometheus_parse(body, len, &r, err, sizeof err) == 0) {
 *       for (size_t i = 0; i < r->nseries; i++) use(r->series[i].value, r->series[i].labels, ...);
 *       sb_prom_result_free(r);
 *   }
 */
#ifndef SB_PROMETHEUS_PARSE_H
#define SB_PROMETHEUS_PARSE_H

#include <stddef.h>

#include <scalebus/plugin.h>

/* The most series one reply may hold: each becomes a reading on the bus. */
#define SB_PROM_MAX_SERIES 1000

typedef struct sb_prom_series {
    const sb_label *labels; /* the series' labels in the reply's order, at most SB_MAX_LABELS */
    size_t nlabels;
    size_t labels_cut; /* labels past SB_MAX_LABELS that were left out */
    double value;      /* as Prometheus wrote it: may be NaN or +-Inf (the caller decides) */
} sb_prom_series;

typedef struct sb_prom_result {
    int is_scalar; /* 1: a scalar result (one series, no labels) */
    const sb_prom_series *series;
    size_t nseries; /* 0 for an empty vector */
    void *priv;     /* the storage the strings point into */
} sb_prom_result;

/* Parse an /api/v1/query reply of len bytes (need not be NUL-terminated). Returns 0 and a result
 * in *out (free it with sb_prom_result_free), or a negative code with one line in err:
 *   -EREMOTEIO  the server answered "status": "error": err is "ERRORTYPE: ERROR" in its words;
 *   -EBADMSG    not such a reply (not JSON, a field missing or of the wrong type, a value that
 *               is not a number, a range vector or a string result);
 *   -E2BIG      more than SB_PROM_MAX_SERIES series;
 *   -ENOMEM. */
int sb_prometheus_parse(const char *body, size_t len, sb_prom_result **out, char *err,
                        size_t errlen);
void sb_prom_result_free(sb_prom_result *r);

#endif
