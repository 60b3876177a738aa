/*
 * case_plugin.c - one test-only plugin per loader case, chosen by the CASE_* macro that
 * CMakeLists.txt defines. Each case is a minimal valid trigger that differs in exactly one way:
 *
 *   CASE_NOSYM      exports its entry point under the wrong name
 *   CASE_NULLDESC   sb_plugin_entry returns NULL
 *   CASE_BADABI     built for SB_ABI_VERSION + 1
 *   CASE_SMALLDESC  descriptor size smaller than the ABI 1 minimum (ends before on_event)
 *   CASE_OLDDESC    built against an older header whose descriptor ends after on_event: loads
 *   CASE_BIGDESC    built against a newer header with fields after next_fire_times: loads
 *   CASE_BADKIND    kind 7
 *   CASE_BADTYPE    type name "Bad-Type!"
 *   CASE_NOCREATE   create callback NULL
 *   CASE_NODESTROY  destroy callback NULL
 *   CASE_NOEVENT    a connector without on_event
 *   CASE_BADOPT     an option of type 99
 *   CASE_UNDEF      calls a function only a daemon binary would have (dlopen fails)
 *   CASE_DUP        type "dupe" (built twice, as dup_a.so and dup_b.so)
 *
 * The type name is CASE_TYPE_NAME (the case's folder name) unless the case changes it.
 */
#include <stddef.h>
#include <stdint.h>

#include "scalebus/plugin.h"

#if defined(CASE_BADABI)
#define DESC_ABI (SB_ABI_VERSION + 1)
#elif defined(CASE_BADKIND)
#define DESC_KIND ((sb_kind)7)
#elif defined(CASE_BADTYPE)
#define DESC_TYPE "Bad-Type!"
#elif defined(CASE_NOCREATE)
#define DESC_CREATE NULL
#elif defined(CASE_NODESTROY)
#define DESC_DESTROY NULL
#elif defined(CASE_NOEVENT)
#define DESC_KIND SB_KIND_CONNECTOR
#define DESC_ON_EVENT NULL
#elif defined(CASE_SMALLDESC)
#define DESC_SIZE offsetof(sb_plugin_descriptor, on_event)
#elif defined(CASE_DUP)
#define DESC_TYPE "dupe"
#endif

#ifndef DESC_ABI
#define DESC_ABI SB_ABI_VERSION
#endif
#ifndef DESC_KIND
#define DESC_KIND SB_KIND_TRIGGER
#endif
#ifndef DESC_TYPE
#define DESC_TYPE CASE_TYPE_NAME
#endif
#ifndef DESC_CREATE
#define DESC_CREATE case_create
#endif
#ifndef DESC_DESTROY
#define DESC_DESTROY case_destroy
#endif
#ifndef DESC_ON_EVENT
#define DESC_ON_EVENT case_on_event
#endif

#if defined(CASE_UNDEF)
/* Not in the SDK: a plugin that calls into the daemon like this cannot be loaded. */
void sb_daemon_internal_function(const char *what);
#endif

static const sb_option_spec case_options[] = {
    {"label", SB_OPT_STRING, "x", 0, "unused"},
#if defined(CASE_BADOPT)
    {"level", (sb_option_type)99, NULL, 0, "an option type no header defines"},
#endif
    {NULL, 0, NULL, 0, NULL},
};

/* Callbacks a case may leave out of its descriptor, hence "unused". */
__attribute__((unused)) static int case_create(sb_instance *inst, const sb_host *host,
                                               const sb_value *values, void **state, char *err,
                                               size_t errlen)
{
    (void)inst;
    (void)host;
    (void)values;
    (void)err;
    (void)errlen;
#if defined(CASE_UNDEF)
    sb_daemon_internal_function("create");
#endif
    *state = NULL;
    return SB_OK;
}

__attribute__((unused)) static void case_destroy(void *state)
{
    (void)state;
}

__attribute__((unused)) static void case_on_event(void *state, const sb_event *ev)
{
    (void)state;
    (void)ev;
}

/* The descriptor's fields, for both the current and the older/newer layouts below. */
#define CASE_DESCRIPTOR_FIELDS(desc_size)                                                          \
    .abi_version = DESC_ABI, .size = (uint32_t)(desc_size), .type = DESC_TYPE, .kind = DESC_KIND,  \
    .version = "0.0.1", .description = "test-only plugin for one loader case",                     \
    .options = case_options, .create = DESC_CREATE, .destroy = DESC_DESTROY,                       \
    .on_event = DESC_ON_EVENT

#if defined(CASE_OLDDESC)
/* sb_plugin_descriptor as an older plugin.h declared it: no next_fire_times yet. */
typedef struct old_descriptor {
    uint32_t abi_version;
    uint32_t size;
    const char *type;
    sb_kind kind;
    const char *version;
    const char *description;
    const sb_option_spec *options;
    int (*create)(sb_instance *inst, const sb_host *host, const sb_value *values, void **state,
                  char *err, size_t errlen);
    int (*start)(void *state);
    int (*stop)(void *state);
    void (*destroy)(void *state);
    void (*on_event)(void *state, const sb_event *ev);
} old_descriptor;

static const old_descriptor case_old_descriptor = {
    CASE_DESCRIPTOR_FIELDS(sizeof(old_descriptor)),
};

__attribute__((visibility("default"))) const sb_plugin_descriptor *sb_plugin_entry(void);
const sb_plugin_descriptor *sb_plugin_entry(void)
{
    return (const sb_plugin_descriptor *)(const void *)&case_old_descriptor;
}

#elif defined(CASE_BIGDESC)
/* sb_plugin_descriptor as a newer plugin.h might declare it: grown at its end. */
typedef struct newer_descriptor {
    sb_plugin_descriptor current;
    int (*reload)(void *state, const sb_value *values);
    const char *homepage;
} newer_descriptor;

static const newer_descriptor case_newer_descriptor = {
    .current = {CASE_DESCRIPTOR_FIELDS(sizeof(newer_descriptor))},
    .reload = NULL,
    .homepage = "https://example.invalid/big_desc",
};

SB_PLUGIN_EXPORT(case_newer_descriptor.current)

#else
#ifndef DESC_SIZE
#define DESC_SIZE sizeof(sb_plugin_descriptor)
#endif
static const sb_plugin_descriptor case_descriptor = {
    CASE_DESCRIPTOR_FIELDS(DESC_SIZE),
};

#if defined(CASE_NOSYM)
/* A typo'd entry point: the loader must not find it. */
__attribute__((visibility("default"))) const sb_plugin_descriptor *sb_plugin_entry_v1(void);
const sb_plugin_descriptor *sb_plugin_entry_v1(void)
{
    return &case_descriptor;
}
#elif defined(CASE_NULLDESC)
/* A plugin that declines to describe itself (say, a start-up check of its own failed). */
static volatile int case_ready;
__attribute__((visibility("default"))) const sb_plugin_descriptor *sb_plugin_entry(void);
const sb_plugin_descriptor *sb_plugin_entry(void)
{
    return case_ready ? &case_descriptor : NULL;
}
#else
SB_PLUGIN_EXPORT(case_descriptor)
#endif
#endif
