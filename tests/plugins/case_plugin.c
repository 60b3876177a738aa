/*
 * case_plugin.c - one test-only plugin per loader case, chosen by the CASE_* macro that
 * CMakeLists.txt defines. Each case is a minimal valid ABI-2 trigger that differs in exactly one
 * way:
 *
 *   CASE_NOSYM       exports its entry point under the wrong name
 *   CASE_NULLDESC    sb_plugin_entry returns NULL
 *   CASE_BADABI      built for SB_ABI_VERSION + 1
 *   CASE_ABI1        built against the ABI-1 header (scalebus 0.1): abi_version 1 and the ABI-1
 *                    descriptor layout, without option_spec_size and value_size
 *   CASE_SMALLDESC   descriptor size smaller than the ABI-2 minimum (ends before on_event)
 *   CASE_OLDDESC     descriptor ends after on_event (no next_fire_times, no reconfigure): loads
 *   CASE_BIGDESC     built against a newer header with fields after reconfigure: loads
 *   CASE_BIGOPTS     a newer header still: a bigger descriptor, options rows and sb_value, the
 *                    rows with extra trailing fields filled in: loads, rows read as the host's
 *   CASE_SMALLOPTS   options rows of an older layout (no help): option_spec_size below ABI 2's
 *   CASE_SMALLVALUE  value_size below ABI 2's sizeof(sb_value)
 *   CASE_HUGEVALUE   value_size 100000: not a size any header declares
 *   CASE_BADKIND     kind 7
 *   CASE_BADTYPE     type name "Bad-Type!"
 *   CASE_NOCREATE    create callback NULL
 *   CASE_NODESTROY   destroy callback NULL
 *   CASE_NOEVENT     a connector without on_event
 *   CASE_BADOPT      an option of type 99
 *   CASE_UNDEF       calls a function only a daemon binary would have (dlopen fails)
 *   CASE_DUP         type "dupe" (built twice, as dup_a.so and dup_b.so)
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
#elif defined(CASE_SMALLVALUE)
#define DESC_VALUE_SIZE offsetof(sb_value, count)
#elif defined(CASE_HUGEVALUE)
#define DESC_VALUE_SIZE 100000
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
#ifndef DESC_VALUE_SIZE
#define DESC_VALUE_SIZE sizeof(sb_value)
#endif

#if defined(CASE_UNDEF)
/* Not in the SDK: a plugin that calls into the daemon like this cannot be loaded. */
void sb_daemon_internal_function(const char *what);
#endif

#if defined(CASE_SMALLOPTS)
/* An options row as a header older than ABI 2 might have declared it: no help. */
typedef struct older_option_spec {
    const char *name;
    sb_option_type type;
    const char *default_value;
    int required;
} older_option_spec;

static const older_option_spec case_older_options[] = {
    {"label", SB_OPT_STRING, "x", 0},
    {NULL, 0, NULL, 0},
};
#define DESC_OPTIONS ((const sb_option_spec *)(const void *)case_older_options)
#define DESC_OPTION_SPEC_SIZE sizeof(older_option_spec)

#elif defined(CASE_BIGOPTS)
/* An options row and an option value as a newer header might declare them: grown at their end.
 * The extra fields are set, so a loader that walked the rows with the host's stride would read
 * them as the next row's name. */
typedef struct newer_option_spec {
    sb_option_spec current;
    const char *example;
    int64_t since;
} newer_option_spec;

typedef struct newer_value {
    sb_value current;
    const char *source;
    int64_t line;
} newer_value;

static const newer_option_spec case_newer_options[] = {
    {{"label", SB_OPT_STRING, "x", 0, "a label"}, "label: web", 1},
    {{"count", SB_OPT_INT, NULL, 1, "how many"}, "count: 3", 2},
    {{"period", SB_OPT_DURATION, "10s", 0, "how often"}, "period: 1m", 3},
    {{"args", SB_OPT_LIST, NULL, 0, "an argv"}, "args: [a, b]", 4},
    {{NULL, 0, NULL, 0, NULL}, NULL, 0},
};
#define DESC_OPTIONS ((const sb_option_spec *)(const void *)case_newer_options)
#define DESC_OPTION_SPEC_SIZE sizeof(newer_option_spec)
#undef DESC_VALUE_SIZE
#define DESC_VALUE_SIZE sizeof(newer_value)

#else
static const sb_option_spec case_options[] = {
    {"label", SB_OPT_STRING, "x", 0, "unused"},
#if defined(CASE_BADOPT)
    {"level", (sb_option_type)99, NULL, 0, "an option type no header defines"},
#endif
    {NULL, 0, NULL, 0, NULL},
};
#define DESC_OPTIONS case_options
#define DESC_OPTION_SPEC_SIZE sizeof(sb_option_spec)
#endif

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

/* The descriptor's fields, for the current and the older/newer layouts below. */
#define CASE_DESCRIPTOR_FIELDS(desc_size)                                                          \
    .abi_version = DESC_ABI, .size = (uint32_t)(desc_size),                                        \
    .option_spec_size = (uint32_t)DESC_OPTION_SPEC_SIZE, .value_size = (uint32_t)DESC_VALUE_SIZE,  \
    .type = DESC_TYPE, .kind = DESC_KIND, .version = "0.0.1",                                      \
    .description = "test-only plugin for one loader case", .options = DESC_OPTIONS,                \
    .create = DESC_CREATE, .destroy = DESC_DESTROY, .on_event = DESC_ON_EVENT

#if defined(CASE_ABI1)
/* sb_plugin_descriptor as the ABI-1 plugin.h (scalebus 0.1) declared it. */
typedef struct abi1_descriptor {
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
    int (*next_fire_times)(void *state, int64_t after, int64_t *times, int32_t *utc_offsets, int n);
} abi1_descriptor;

static const abi1_descriptor case_abi1_descriptor = {
    .abi_version = 1,
    .size = sizeof(abi1_descriptor),
    .type = CASE_TYPE_NAME,
    .kind = SB_KIND_TRIGGER,
    .version = "0.0.1",
    .description = "test-only plugin built for ABI 1",
    .options = DESC_OPTIONS,
    .create = case_create,
    .destroy = case_destroy,
    .on_event = case_on_event,
};

__attribute__((visibility("default"))) const sb_plugin_descriptor *sb_plugin_entry(void);
const sb_plugin_descriptor *sb_plugin_entry(void)
{
    return (const sb_plugin_descriptor *)(const void *)&case_abi1_descriptor;
}

#elif defined(CASE_OLDDESC)
/* sb_plugin_descriptor ending after on_event: no next_fire_times, no reconfigure. */
typedef struct old_descriptor {
    uint32_t abi_version;
    uint32_t size;
    uint32_t option_spec_size;
    uint32_t value_size;
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

#elif defined(CASE_BIGDESC) || defined(CASE_BIGOPTS)
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
