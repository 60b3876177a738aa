/*
 * haproxy_parse.h - one number from HAProxy's stats CSV (the stats URI with ";csv"): the value of
 * a named column in the row of a backend, or of one server of it. A pure function: bytes in, a
 * number out; no host, no I/O.
 *
 *   double v; char err[256];
 *   int rc = sb_haproxy_parse(csv, len, "web", NULL, "scur", &v, err, sizeof err); // web/BACKEND
 *   int rc = sb_haproxy_parse(csv, len, "web", "s1", "qcur", &v, err, sizeof err); // web/s1
 */
#ifndef SB_HAPROXY_PARSE_H
#define SB_HAPROXY_PARSE_H

#include <stddef.h>

/* Longest proxy, server or column name compared (HAProxy's own names are far shorter). */
#define SB_HAPROXY_NAME_MAX 256

/* Find the row whose pxname is proxy and whose svname is server, or "BACKEND" when server is
 * NULL, and read its column `column` (a name from the "# pxname,svname,..." header line) as a
 * number. Fields may be quoted as in RFC 4180 ("a, ""b""", newlines included). Returns 0 with the
 * value, or a negative code with one line in err:
 *   -EBADMSG  not HAProxy stats CSV (no header line, an unterminated quoted field);
 *   -ENOENT   no such column, or no such row (err names the backends there are);
 *   -ENODATA  the field is empty (HAProxy leaves columns that do not apply to a row empty);
 *   -EINVAL   the field is not a number (e.g. status "UP");
 *   -ERANGE   the number is out of range of a double. */
int sb_haproxy_parse(const char *csv, size_t len, const char *proxy, const char *server,
                     const char *column, double *value, char *err, size_t errlen);

#endif
