/*
 * option_more.h - the descriptor's options_more (scalebus/plugin.h, host version 3) as the core
 * reads it: the row for an option path ("services", "services.health"), giving the nested table
 * of an SB_OPT_OBJECTS option and the option's flags. Paths name options only, never the names
 * of objects in a file ("services.web.health" in a message is "services.health" here).
 *
 * Works on host-layout descriptors: the loader's copy of a loaded plugin (rows re-laid to this
 * header's sizeof), or a descriptor compiled with this header (the tests' fake plugins).
 */
#ifndef SB_OPTION_MORE_H
#define SB_OPTION_MORE_H

#include <stdio.h>
#include <string.h>

#include "scalebus/plugin.h"

static inline const sb_option_more *option_more_find(const sb_plugin_descriptor *d,
                                                      const char *path)
{
    /* No size check: host-layout descriptors always have the field (zero for older plugins,
     * whose .size stays what they were built with). */
    if (!d || !path)
        return NULL;
    for (const sb_option_more *m = d->options_more; m && m->path; m++)
        if (strcmp(m->path, path) == 0)
            return m;
    return NULL;
}

/* The nested table of the OBJECTS option at path, or NULL. */
static inline const sb_option_spec *option_more_fields(const sb_plugin_descriptor *d,
                                                        const char *path)
{
    const sb_option_more *m = option_more_find(d, path);
    return m ? m->fields : NULL;
}

/* "services" + "health" -> "services.health" (prefix "" -> the name alone). */
static inline void option_more_path(char *out, size_t len, const char *prefix, const char *name)
{
    if (prefix && prefix[0])
        snprintf(out, len, "%.120s.%.120s", prefix, name);
    else
        snprintf(out, len, "%.250s", name);
}

#endif
