/*
 * http_json_parse.h - the http_json trigger's reply parser: JSON text and a select expression in,
 * readings (a value and an optional label each) or one error line out. Pure: no host, no I/O.
 *
 * select is a JSON pointer (RFC 6901: "/data/count", "" for the whole document, "~1" for '/'
 * and "~0" for '~' inside a name) in which a segment that is exactly "*" matches every element of
 * an array or every member of an object: /queues/STAR/depth, with a lone * for STAR, gives one
 * reading per queue. A "*" segment is always the wildcard (a member literally named "*" cannot be
 * selected).
 *
 * A selected value must be a JSON number, or a string holding a decimal number ("12", "-3.5",
 * "1e3"; no spaces, no hex): anything else is an error naming its path. With count set, the
 * selected value must be an array or an object instead, and the reading is its number of
 * elements. A field that is missing is an error naming it.
 *
 * Labels: with label set (e.g. "name"), each reading carries the value of the member of that name
 * in the object holding the selected value (its sibling); it must be a string, number or
 * boolean. Without label, a select with a "*" labels each reading with its concrete pointer
 * ("/queues/2/depth"); a select without one gives a single reading without a label.
 */
#ifndef SCALEBUS_HTTP_JSON_PARSE_H
#define SCALEBUS_HTTP_JSON_PARSE_H

#include <stddef.h>

#define SB_HTTP_JSON_MAX_READINGS 256
#define SB_HTTP_JSON_MAX_SELECT 512
#define SB_HTTP_JSON_MAX_LABEL 128 /* bytes of a label value */

typedef struct sb_http_json_query {
    const char *select; /* NULL or "": the whole document */
    const char *label;  /* NULL: none */
    int count;          /* 1: read the length of the selected array or object */
} sb_http_json_query;

typedef struct sb_http_json_reading {
    double value;
    char *label; /* the sibling's value, the concrete pointer, or NULL (see above) */
} sb_http_json_reading;

typedef struct sb_http_json_readings {
    sb_http_json_reading *items;
    size_t n;
} sb_http_json_readings;

/* Check a query before any reply (create() time). Returns 0 or -EINVAL with one line in err. */
int sb_http_json_check(const sb_http_json_query *q, char *err, size_t errlen);

/* Parse one reply. Returns 0 with the readings in *out (free them with
 * sb_http_json_readings_free; none when a "*" matched an empty array or object), or -EINVAL /
 * -ENOMEM with one line in err and *out empty. At most SB_HTTP_JSON_MAX_READINGS matches. */
int sb_http_json_parse(const char *text, size_t len, const sb_http_json_query *q,
                       sb_http_json_readings *out, char *err, size_t errlen);

void sb_http_json_readings_free(sb_http_json_readings *r);

#endif
