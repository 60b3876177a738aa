/*
 * loader.h - finds plugin shared objects, dlopens them and checks their descriptors. Built-in
 * plugins load through exactly this path, like anyone else's. A file that fails a check gives one
 * line naming the file and the reason, and is not loaded; the others still are.
 *
 * Trust: a file is loaded only when its real path and every folder above it up to / belong to
 * root or to the daemon's effective user and are writable by no one else (as OpenSSH's
 * StrictModes; a sticky /tmp is refused too). A folder handed to loader_load_dir is refused as a
 * whole by the same rule.
 *
 * Descriptors: what loader_find() and loader_at() return is the loader's host-layout copy of the
 * plugin's descriptor, valid until loader_free():
 * - host-sized, zero past what the plugin's own struct has (fields added after its header read as
 *   NULL); .size is still the plugin's;
 * - .options points at a host-layout copy of the plugin's options table, so index it with the
 *   host's sizeof: d->options[i]. .option_spec_size is therefore sizeof(sb_option_spec);
 * - .value_size is the PLUGIN's sizeof(sb_value): the values array handed to its create() and
 *   reconfigure() must use that stride (marshal the host's sb_values when it differs from
 *   sizeof(sb_value): copy min(value_size, sizeof(sb_value)) bytes per row, zero the rest).
 */
#ifndef SCALEBUS_LOADER_H
#define SCALEBUS_LOADER_H

#include <stddef.h>

#include "scalebus/plugin.h"

typedef struct loader loader;

/* Receives one line per refused file: "PATH: reason". */
typedef void (*loader_report_fn)(void *arg, const char *line);

loader *loader_new(void);
void loader_free(loader *l); /* dlcloses every plugin: free every instance first */

/* Load one file. Returns 0, or a negative code with the reason in err ("PATH: reason"). A file
 * already loaded (same real path) is skipped with 0. */
int loader_load_file(loader *l, const char *path, char *err, size_t errlen);

/* Whether a folder may be loaded from: it exists, is a folder, and it and every folder above it
 * are trusted (see the top). Returns 0, or a negative code with one line in err: "DIR: not loaded:
 * the folder /srv above it is writable by its group (mode 0775)", "DIR: No such file or
 * directory". loader_load_dir() refuses a folder with exactly this line. */
int loader_check_dir(const char *dir, char *err, size_t errlen);

/* Load every *.so in a folder, in name order. Returns how many files were refused (each one
 * reported), or a negative code when the folder itself cannot be used (also reported). */
int loader_load_dir(loader *l, const char *dir, loader_report_fn report, void *arg);

/* The folder holding the built-in plugins: <exe dir>/plugins in a build tree, else
 * <exe dir>/../lib/scalebus/plugins, else the configured install folder. Writes into buf. */
const char *loader_builtin_dir(char *buf, size_t buflen);

const sb_plugin_descriptor *loader_find(const loader *l, const char *type);
const char *loader_path_of(const loader *l, const char *type);
size_t loader_count(const loader *l);
const sb_plugin_descriptor *loader_at(const loader *l, size_t i);

const char *loader_kind_name(sb_kind kind);

#endif
