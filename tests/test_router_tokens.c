/*
 * test_router_tokens.c - the fragment a token request becomes (triggers/router/router_tokens.c):
 * the components it declares, the bounds and drain the router sets, every refusal naming its
 * field, and a posted '$' kept literal through the file's ${VAR} expansion.
 */
#define _GNU_SOURCE /* strndup; uv.h (through httpd.h) needs the POSIX types */
#include <check.h>
#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "router_tokens.h"

/* The fragment for a request, or NULL with err. */
static char *fragment(const char *json, char *err, size_t errlen)
{
    cJSON *req = cJSON_Parse(json);
    ck_assert_ptr_nonnull(req);
    char *yaml = NULL;
    const char *name = NULL;
    err[0] = '\0';
    int rc = rt_token_fragment(req, "edge", &yaml, &name, err, errlen);
    if (rc == 0)
        ck_assert_str_eq(name, cJSON_GetObjectItem(req, "name")->valuestring);
    else
        ck_assert_ptr_null(yaml);
    cJSON_Delete(req);
    return yaml;
}

/* The JSON of one "  - {...}" line after section: in the fragment. */
static cJSON *component(const char *yaml, const char *section)
{
    char head[64];
    snprintf(head, sizeof head, "\n%s:\n  - ", section);
    const char *p = strstr(yaml, head);
    ck_assert_msg(p != NULL, "no %s in %s", section, yaml);
    p += strlen(head);
    const char *end = strchr(p, '\n');
    char *line = strndup(p, (size_t)(end - p));
    cJSON *doc = cJSON_Parse(line);
    ck_assert_msg(doc != NULL, "not JSON: %s", line);
    free(line);
    return doc;
}

START_TEST(test_name_rules)
{
    ck_assert(rt_token_name_ok("shop"));
    ck_assert(rt_token_name_ok("a"));
    ck_assert(rt_token_name_ok("web-2"));
    ck_assert(!rt_token_name_ok(""));
    ck_assert(!rt_token_name_ok("-web"));
    ck_assert(!rt_token_name_ok("web-"));
    ck_assert(!rt_token_name_ok("Web"));
    ck_assert(!rt_token_name_ok("a/b"));
    ck_assert(!rt_token_name_ok("a.b"));
    char long_name[80];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[64] = '\0';
    ck_assert(!rt_token_name_ok(long_name));
    long_name[63] = '\0';
    ck_assert(rt_token_name_ok(long_name));
}
END_TEST

START_TEST(test_fragment_components)
{
    char err[256];
    char *yaml = fragment(
        "{\"name\": \"shop\", \"hosts\": [\"shop.test\"], \"min\": 1, \"max\": 5,"
        " \"concurrency_level\": 3, \"idle_timeout\": \"2m\","
        " \"backend\": {\"type\": \"process\", \"command\": [\"./shop\", \"--fast\"], \"port\": true},"
        " \"policy\": {\"scale_down_factor\": 0.5}}",
        err, sizeof err);
    ck_assert_msg(yaml != NULL, "%s", err);
    ck_assert_msg(strncmp(yaml, "# scalebus token 'shop'", 23) == 0, "%s", yaml);

    cJSON *sc = component(yaml, "scalers");
    ck_assert_str_eq(cJSON_GetObjectItem(sc, "id")->valuestring, "token-shop");
    ck_assert_str_eq(cJSON_GetObjectItem(sc, "type")->valuestring, "process");
    ck_assert_int_eq(cJSON_GetObjectItem(sc, "min")->valueint, 1);
    ck_assert_int_eq(cJSON_GetObjectItem(sc, "max")->valueint, 5);
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "command"), 1)->valuestring,
                     "--fast");
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(sc, "port")));
    /* drained by the router before it is stopped */
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(sc, "drain_from"), 0)->valuestring,
                     "edge");
    cJSON_Delete(sc);

    cJSON *po = component(yaml, "connectors");
    ck_assert_str_eq(cJSON_GetObjectItem(po, "id")->valuestring, "token-shop-policy");
    ck_assert_str_eq(cJSON_GetObjectItem(po, "type")->valuestring, "waiter");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(po, "from"), 0)->valuestring, "edge");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(po, "to"), 0)->valuestring,
                     "token-shop");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(po, "match"), "service")->valuestring,
                     "shop");
    ck_assert_int_eq(cJSON_GetObjectItem(po, "concurrency_level")->valueint, 3);
    ck_assert_int_eq(cJSON_GetObjectItem(po, "max")->valueint, 5);
    ck_assert(cJSON_GetObjectItem(po, "scale_down_factor")->valuedouble == 0.5);
    ck_assert(cJSON_GetObjectItem(po, "scale_up_factor")->valuedouble == 1);
    cJSON_Delete(po);

    cJSON *ex = component(yaml, "extend");
    ck_assert_str_eq(cJSON_GetObjectItem(ex, "id")->valuestring, "edge");
    cJSON *svc = cJSON_GetObjectItem(cJSON_GetObjectItem(ex, "services"), "shop");
    ck_assert_ptr_nonnull(svc);
    ck_assert_str_eq(cJSON_GetObjectItem(svc, "backend")->valuestring, "token-shop");
    ck_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(svc, "hosts"), 0)->valuestring,
                     "shop.test");
    ck_assert_str_eq(cJSON_GetObjectItem(svc, "idle_timeout")->valuestring, "2m");
    ck_assert_int_eq(cJSON_GetObjectItem(svc, "concurrency_level")->valueint, 3);
    cJSON_Delete(ex);
    free(yaml);
}
END_TEST

START_TEST(test_fragment_defaults_and_no_drain)
{
    char err[256];
    char *yaml = fragment("{\"name\": \"a\", \"drain\": false,"
                          " \"backend\": {\"type\": \"docker\", \"image\": \"nginx:1\"}}",
                          err, sizeof err);
    ck_assert_msg(yaml != NULL, "%s", err);
    cJSON *sc = component(yaml, "scalers");
    ck_assert_int_eq(cJSON_GetObjectItem(sc, "min")->valueint, 0);
    ck_assert_int_eq(cJSON_GetObjectItem(sc, "max")->valueint, 1);
    ck_assert_ptr_null(cJSON_GetObjectItem(sc, "drain_from"));
    cJSON_Delete(sc);
    free(yaml);
}
END_TEST

START_TEST(test_fragment_dollars_literal)
{
    char err[256];
    char *yaml = fragment("{\"name\": \"d\", \"backend\": {\"type\": \"process\","
                          " \"command\": [\"sh\", \"-c\", \"echo ${HOME} $PATH\"]}}",
                          err, sizeof err);
    ck_assert_msg(yaml != NULL, "%s", err);
    /* $$ is the file's literal $: the daemon's environment never reaches a posted value */
    ck_assert_msg(strstr(yaml, "echo $${HOME} $$PATH") != NULL, "%s", yaml);
    ck_assert_ptr_null(strstr(yaml, " ${HOME}"));
    free(yaml);
}
END_TEST

START_TEST(test_fragment_refusals)
{
    static const struct {
        const char *json, *says;
    } cases[] = {
        {"[1]", "JSON object"},
        {"{\"backend\": {\"type\": \"process\"}}", "name:"},
        {"{\"name\": \"Web\", \"backend\": {\"type\": \"process\"}}", "name:"},
        {"{\"name\": \"w\", \"colour\": 1, \"backend\": {\"type\": \"process\"}}",
         "unknown field 'colour'"},
        {"{\"name\": \"w\"}", "backend:"},
        {"{\"name\": \"w\", \"backend\": {\"command\": [\"x\"]}}", "backend:"},
        {"{\"name\": \"w\", \"backend\": {\"type\": \"Process!\"}}", "backend:"},
        {"{\"name\": \"w\", \"backend\": {\"type\": \"process\", \"id\": \"x\"}}", "backend.id"},
        {"{\"name\": \"w\", \"backend\": {\"type\": \"process\", \"max\": 3}}", "backend.max"},
        {"{\"name\": \"w\", \"backend\": {\"type\": \"process\", \"to\": [\"x\"]}}", "backend.to"},
        {"{\"name\": \"w\", \"max\": 0, \"backend\": {\"type\": \"process\"}}", "max:"},
        {"{\"name\": \"w\", \"max\": 1.5, \"backend\": {\"type\": \"process\"}}", "max:"},
        {"{\"name\": \"w\", \"min\": 3, \"max\": 2, \"backend\": {\"type\": \"process\"}}",
         "min 3 is above max 2"},
        {"{\"name\": \"w\", \"concurrency_level\": 0, \"backend\": {\"type\": \"process\"}}",
         "concurrency_level:"},
        {"{\"name\": \"w\", \"hosts\": \"w.test\", \"backend\": {\"type\": \"process\"}}", "hosts:"},
        {"{\"name\": \"w\", \"hosts\": [\"a b\"], \"backend\": {\"type\": \"process\"}}", "hosts:"},
        {"{\"name\": \"w\", \"policy\": [], \"backend\": {\"type\": \"process\"}}", "policy:"},
        {"{\"name\": \"w\", \"policy\": {\"match\": {}}, \"backend\": {\"type\": \"process\"}}",
         "policy.match"},
        {"{\"name\": \"w\", \"drain\": \"yes\", \"backend\": {\"type\": \"process\"}}", "drain:"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char err[512];
        char *yaml = fragment(cases[i].json, err, sizeof err);
        ck_assert_msg(yaml == NULL, "case %zu accepted", i);
        ck_assert_msg(strstr(err, cases[i].says) != NULL, "case %zu: '%s' lacks '%s'", i, err,
                      cases[i].says);
    }
}
END_TEST

/* Whatever a client puts in its strings and keys, the fragment parses as exactly the components
 * the router meant: quotes, newlines, '#', ': ', YAML indicators and '${...}' stay text. */
START_TEST(test_fragment_hostile_text_stays_text)
{
    static const char *const texts[] = {
        "a\"b", "line\nnext: 1", "# comment", "key: value", "- item", "{x: 1}", "[1, 2]",
        "&anchor *alias", "!!binary", "${HOME}", "$$", "tab\there", "'single'", "\\back",
        "\x01ctl", "\xc3\xa9t\xc3\xa9", "", "  spaces  ", "null", "~", "true",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        cJSON *req = cJSON_CreateObject();
        cJSON_AddStringToObject(req, "name", "h");
        cJSON *backend = cJSON_AddObjectToObject(req, "backend");
        cJSON_AddStringToObject(backend, "type", "process");
        const char *argv[2] = {"./app", texts[i]};
        cJSON_AddItemToObject(backend, "command", cJSON_CreateStringArray(argv, 2));
        cJSON *env = cJSON_AddObjectToObject(backend, "env");
        cJSON_AddStringToObject(env, texts[i][0] ? texts[i] : "EMPTY", texts[i]);
        char *yaml = NULL;
        const char *name = NULL;
        char err[256];
        ck_assert_int_eq(rt_token_fragment(req, "edge", &yaml, &name, err, sizeof err), 0);
        config_errors errs;
        config_errors_init(&errs);
        config *cfg = config_parse_string(yaml, strlen(yaml), "fragment.yaml", &errs);
        ck_assert_msg(cfg != NULL, "case %zu: not parsed", i);
        /* the structure: three components of ours, nothing else; edges resolve but the router
         * itself is not in this file (its extend is an error about that id only) */
        ck_assert_int_eq(cfg->ncomponents, 2);
        const config_component *sc = config_find(cfg, "token-h");
        ck_assert_ptr_nonnull(sc);
        for (size_t e = 0; e < errs.count; e++)
            ck_assert_msg(strstr(errs.items[e].message, "edge") != NULL,
                          "case %zu: unexpected error %s", i, errs.items[e].message);
        /* the argument is the posted text, byte for byte */
        const config_node *m = sc->node, *cmd = NULL;
        for (size_t k = 0; k < m->count; k++)
            if (strcmp(m->keys[k]->scalar, "command") == 0)
                cmd = m->items[k];
        ck_assert_ptr_nonnull(cmd);
        ck_assert_int_eq(cmd->kind, CONFIG_SEQUENCE);
        ck_assert_int_eq(cmd->count, 2);
        ck_assert_msg(strcmp(cmd->items[1]->scalar, texts[i]) == 0, "case %zu: '%s' became '%s'",
                      i, texts[i], cmd->items[1]->scalar);
        config_free(cfg);
        config_errors_free(&errs);
        free(yaml);
        cJSON_Delete(req);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("router_tokens");
    TCase *tc = tcase_create("fragment");
    tcase_add_test(tc, test_name_rules);
    tcase_add_test(tc, test_fragment_components);
    tcase_add_test(tc, test_fragment_defaults_and_no_drain);
    tcase_add_test(tc, test_fragment_dollars_literal);
    tcase_add_test(tc, test_fragment_refusals);
    tcase_add_test(tc, test_fragment_hostile_text_stays_text);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
