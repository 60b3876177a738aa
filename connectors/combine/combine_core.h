/*
 * combine_core.h - several inputs into one value: the arithmetic of the `combine` connector,
 * kept apart from the plugin so tests can drive it on virtual time.
 *
 * An input is one source (the publishing component's id) plus its label set, so one trigger that
 * reports several queues gives several inputs; the label "reason" (which a policy connector puts
 * on each decision) is not part of an input's identity. Each input keeps its newest value and
 * that value's event time. An input is fresh while its newest value is at most stale_after old;
 * the result is the max, min, sum or average of the fresh inputs' values, and with none fresh
 * there is no result.
 */
#ifndef SCALEBUS_COMBINE_CORE_H
#define SCALEBUS_COMBINE_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

typedef enum sb_combine_by {
    SB_COMBINE_MAX = 0, /* the safest: as Nomad's several checks, KEDA's default */
    SB_COMBINE_MIN,
    SB_COMBINE_SUM,
    SB_COMBINE_AVG
} sb_combine_by;

/* "max", "min", "sum" or "avg". Returns 0 or -EINVAL. */
int sb_combine_by_parse(const char *text, sb_combine_by *out);
const char *sb_combine_by_name(sb_combine_by by);

/* At most this many inputs are remembered; a new one beyond it replaces the one heard from
 * longest ago. An input stale for SB_COMBINE_FORGET_FACTOR x stale_after is forgotten. */
#define SB_COMBINE_MAX_INPUTS 1024
#define SB_COMBINE_FORGET_FACTOR 10

typedef struct sb_combine sb_combine;

/* stale_after_ns > 0. NULL when out of memory. */
sb_combine *sb_combine_new(sb_combine_by by, uint64_t stale_after_ns);
void sb_combine_free(sb_combine *c);

/* Records `value` (finite) as the newest of the input (source_id, labels) at event time t_ns.
 * Returns 0, -EINVAL (a value that is not finite: ignored) or -ENOMEM (not recorded). */
int sb_combine_put(sb_combine *c, const char *source_id, const sb_label *labels, size_t nlabels,
                   double value, uint64_t t_ns);

/* Combines the inputs fresh at now_ns (or at the newest time put, when that is later: time
 * never runs backwards). Returns how many were fresh; 0 means nothing to decide, and *value is
 * then left alone. When text is not NULL it receives the explanation, cut to fit textlen, e.g.
 * "max of by-queue=7 by-cpu=4 (stale: by-latency) -> 7". Forgets long-stale inputs. */
size_t sb_combine_compute(sb_combine *c, uint64_t now_ns, double *value, char *text,
                          size_t textlen);

/* How many inputs are remembered, fresh or stale. */
size_t sb_combine_count(const sb_combine *c);

#endif
