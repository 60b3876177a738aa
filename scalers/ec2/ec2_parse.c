/*
 * ec2_parse.c - the EC2 and Auto Scaling XML replies (ec2_parse.h), read with libxml2's tree API.
 * The reader is locked down: no network, no DTD loading, no entity substitution, no "huge"
 * documents, and a document carrying a DTD at all is refused (an AWS reply never has one).
 */
#define _POSIX_C_SOURCE 200809L
#include "ec2_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

/* ---- reading a document ------------------------------------------------------------------- */

static int why_set(char *why, size_t whylen, const char *text)
{
    if (why && whylen)
        snprintf(why, whylen, "%s", text);
    return -EINVAL;
}

/* NULL when body is not a small well-formed document without a DTD. */
static xmlDocPtr read_doc(const char *body, size_t len, char *why, size_t whylen)
{
    if (!body || len == 0) {
        why_set(why, whylen, "an empty reply");
        return NULL;
    }
    if (len > SB_EC2_MAX_REPLY) {
        why_set(why, whylen, "the reply is too large");
        return NULL;
    }
    /* XML_PARSE_NOENT is left off on purpose: entities are never substituted. */
    int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA;
    xmlDocPtr doc = xmlReadMemory(body, (int)len, "reply.xml", NULL, opts);
    if (!doc) {
        why_set(why, whylen, "not XML");
        return NULL;
    }
    if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
        why_set(why, whylen,
                doc->intSubset || doc->extSubset ? "a DTD in the reply" : "no root element");
        xmlFreeDoc(doc);
        return NULL;
    }
    return doc;
}

static int is_el(const xmlNode *n, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->name && strcmp((const char *)n->name, name) == 0;
}

/* The first child element named name, whatever its namespace. */
static xmlNode *child(const xmlNode *n, const char *name)
{
    if (!n)
        return NULL;
    for (xmlNode *c = n->children; c; c = c->next)
        if (is_el(c, name))
            return c;
    return NULL;
}

static xmlNode *next_el(xmlNode *n, const char *name)
{
    for (n = n ? n->next : NULL; n; n = n->next)
        if (is_el(n, name))
            return n;
    return NULL;
}

/* An element's text (its text and CDATA children only), bounded, control characters as '?'.
 * Returns 0, or -1 when it has an element child (the wrong shape) or is longer than len-1. */
static int text_of(const xmlNode *n, char *out, size_t len)
{
    size_t k = 0;
    out[0] = '\0';
    if (!n)
        return -1;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ELEMENT_NODE)
            return -1;
        if ((c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE) || !c->content)
            continue;
        for (const unsigned char *p = c->content; *p; p++) {
            if (k + 1 >= len)
                return -1;
            out[k++] = (char)*p;
        }
    }
    /* Trim the blanks pretty-printed XML puts around a value, then show controls as '?'. */
    size_t b = 0;
    while (b < k && strchr(" \t\r\n", out[b]))
        b++;
    while (k > b && strchr(" \t\r\n", out[k - 1]))
        k--;
    memmove(out, out + b, k - b);
    out[k - b] = '\0';
    for (char *q = out; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f)
            *q = '?';
    return 0;
}

/* Same, for an optional field: "" when absent; -1 only for a wrong shape. */
static int field(const xmlNode *parent, const char *name, char *out, size_t len)
{
    xmlNode *n = child(parent, name);
    if (!n) {
        out[0] = '\0';
        return 0;
    }
    return text_of(n, out, len);
}

/* A count in 0..10^9. */
static int parse_count(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > 10)
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v > 1000000000)
        return -1;
    *out = v;
    return 0;
}

/* ---- errors --------------------------------------------------------------------------------- */

int sb_ec2_parse_error(const char *body, size_t len, char *code, size_t codelen, char *message,
                       size_t msglen)
{
    code[0] = '\0';
    message[0] = '\0';
    xmlDocPtr doc = read_doc(body, len, NULL, 0);
    if (!doc)
        return -1;
    xmlNode *root = xmlDocGetRootElement(doc), *err = NULL;
    if (is_el(root, "Response"))
        err = child(child(root, "Errors"), "Error");
    else if (is_el(root, "ErrorResponse"))
        err = child(root, "Error");
    int found = 0;
    if (err && field(err, "Code", code, codelen) == 0 && code[0]) {
        if (field(err, "Message", message, msglen) != 0)
            snprintf(message, msglen, "(a message too long to show)");
        found = 1;
    } else {
        code[0] = '\0';
    }
    xmlFreeDoc(doc);
    return found;
}

/* ---- EC2 ------------------------------------------------------------------------------------ */

static int has_tag(const xmlNode *item, const char *key, const char *value)
{
    if (!key)
        return 0;
    xmlNode *set = child(item, "tagSet");
    for (xmlNode *t = child(set, "item"); t; t = next_el(t, "item")) {
        char k[160], v[300];
        if (field(t, "key", k, sizeof k) == 0 && field(t, "value", v, sizeof v) == 0 &&
            strcmp(k, key) == 0 && strcmp(v, value ? value : "") == 0)
            return 1;
    }
    return 0;
}

static int read_instance(const xmlNode *item, const char *tag_key, const char *tag_value,
                         sb_ec2_instance *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof *out);
    char when[64];
    if (field(item, "instanceId", out->id, sizeof out->id) != 0 || !out->id[0])
        return why_set(why, whylen, "an instance without a valid instanceId");
    if (field(child(item, "instanceState"), "name", out->state, sizeof out->state) != 0 ||
        !out->state[0]) {
        snprintf(why, whylen, "instance %s: no valid instanceState/name", out->id);
        return -EINVAL;
    }
    if (field(item, "clientToken", out->client_token, sizeof out->client_token) != 0 ||
        field(item, "privateIpAddress", out->private_ip, sizeof out->private_ip) != 0) {
        snprintf(why, whylen, "instance %s: a clientToken or privateIpAddress too long", out->id);
        return -EINVAL;
    }
    if (field(item, "launchTime", when, sizeof when) == 0 && when[0])
        out->launch_time = sb_ec2_parse_time(when);
    out->tagged = has_tag(item, tag_key, tag_value);
    return 0;
}

int sb_ec2_parse_instances(const char *body, size_t len, const char *tag_key, const char *tag_value,
                           sb_ec2_instance **out, size_t *n, char *why, size_t whylen)
{
    *out = NULL;
    *n = 0;
    xmlDocPtr doc = read_doc(body, len, why, whylen);
    if (!doc)
        return -EINVAL;
    xmlNode *root = xmlDocGetRootElement(doc);
    int rc = 0;
    if (!is_el(root, "DescribeInstancesResponse")) {
        xmlFreeDoc(doc);
        return why_set(why, whylen, "not a DescribeInstancesResponse");
    }
    xmlNode *set = child(root, "reservationSet");
    size_t cap = 0;
    for (xmlNode *r = child(set, "item"); r && rc == 0; r = next_el(r, "item")) {
        xmlNode *inst = child(r, "instancesSet");
        for (xmlNode *i = child(inst, "item"); i && rc == 0; i = next_el(i, "item")) {
            if (*n == SB_EC2_MAX_MEMBERS) {
                rc = why_set(why, whylen, "more instances than a reply may hold");
                break;
            }
            if (*n == cap) {
                size_t ncap = cap ? cap * 2 : 8;
                sb_ec2_instance *bigger = realloc(*out, ncap * sizeof **out);
                if (!bigger) {
                    rc = -ENOMEM;
                    why_set(why, whylen, "out of memory");
                    break;
                }
                *out = bigger;
                cap = ncap;
            }
            rc = read_instance(i, tag_key, tag_value, &(*out)[*n], why, whylen);
            if (rc == 0)
                (*n)++;
        }
    }
    xmlFreeDoc(doc);
    if (rc != 0) {
        free(*out);
        *out = NULL;
        *n = 0;
    } else if (*n == 0) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

int sb_ec2_parse_run(const char *body, size_t len, char *id, size_t idlen, char *token,
                     size_t tokenlen, char *why, size_t whylen)
{
    id[0] = '\0';
    token[0] = '\0';
    xmlDocPtr doc = read_doc(body, len, why, whylen);
    if (!doc)
        return -EINVAL;
    xmlNode *root = xmlDocGetRootElement(doc);
    int rc = 0;
    if (!is_el(root, "RunInstancesResponse"))
        rc = why_set(why, whylen, "not a RunInstancesResponse");
    else {
        xmlNode *item = child(child(root, "instancesSet"), "item");
        if (!item || field(item, "instanceId", id, idlen) != 0 || !id[0])
            rc = why_set(why, whylen, "no instancesSet/item/instanceId in the reply");
        else if (field(item, "clientToken", token, tokenlen) != 0)
            token[0] = '\0';
    }
    xmlFreeDoc(doc);
    return rc;
}

int sb_ec2_parse_terminate(const char *body, size_t len, const char *id, char *why, size_t whylen)
{
    xmlDocPtr doc = read_doc(body, len, why, whylen);
    if (!doc)
        return -EINVAL;
    xmlNode *root = xmlDocGetRootElement(doc);
    int rc = -EINVAL;
    if (!is_el(root, "TerminateInstancesResponse")) {
        why_set(why, whylen, "not a TerminateInstancesResponse");
    } else {
        for (xmlNode *i = child(child(root, "instancesSet"), "item"); i; i = next_el(i, "item")) {
            char got[SB_EC2_ID_MAX];
            if (field(i, "instanceId", got, sizeof got) == 0 && strcmp(got, id) == 0)
                rc = 0;
        }
        if (rc)
            snprintf(why, whylen, "the reply does not list %s", id);
    }
    xmlFreeDoc(doc);
    return rc;
}

int sb_ec2_parse_ok(const char *body, size_t len, const char *root_name, char *why, size_t whylen)
{
    xmlDocPtr doc = read_doc(body, len, why, whylen);
    if (!doc)
        return -EINVAL;
    int rc = is_el(xmlDocGetRootElement(doc), root_name) ? 0 : -EINVAL;
    if (rc)
        snprintf(why, whylen, "not a %s", root_name);
    xmlFreeDoc(doc);
    return rc;
}

/* ---- Auto Scaling --------------------------------------------------------------------------- */

void sb_asg_group_clear(sb_asg_group *g)
{
    free(g->instances);
    memset(g, 0, sizeof *g);
}

static int read_group(const xmlNode *m, sb_asg_group *g, char *why, size_t whylen)
{
    char text[32];
    const char *names[3] = {"MinSize", "MaxSize", "DesiredCapacity"};
    int64_t *dst[3] = {&g->min_size, &g->max_size, &g->desired};
    for (int i = 0; i < 3; i++)
        if (field(m, names[i], text, sizeof text) != 0 || parse_count(text, dst[i]) != 0) {
            snprintf(why, whylen, "the group's %s is missing or not a count", names[i]);
            return -EINVAL;
        }
    size_t cap = 0;
    for (xmlNode *i = child(child(m, "Instances"), "member"); i; i = next_el(i, "member")) {
        if (g->ninstances == SB_EC2_MAX_MEMBERS)
            return why_set(why, whylen, "more instances than a reply may hold");
        if (g->ninstances == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            sb_asg_instance *bigger = realloc(g->instances, ncap * sizeof *bigger);
            if (!bigger) {
                why_set(why, whylen, "out of memory");
                return -ENOMEM;
            }
            g->instances = bigger;
            cap = ncap;
        }
        sb_asg_instance *x = &g->instances[g->ninstances];
        memset(x, 0, sizeof *x);
        if (field(i, "InstanceId", x->id, sizeof x->id) != 0 || !x->id[0] ||
            field(i, "LifecycleState", x->lifecycle, sizeof x->lifecycle) != 0 ||
            !x->lifecycle[0] || field(i, "HealthStatus", x->health, sizeof x->health) != 0)
            return why_set(why, whylen,
                           "a group member without a valid InstanceId or "
                           "LifecycleState");
        g->ninstances++;
    }
    g->found = 1;
    return 0;
}

int sb_asg_parse_group(const char *body, size_t len, const char *name, sb_asg_group *out, char *why,
                       size_t whylen)
{
    memset(out, 0, sizeof *out);
    xmlDocPtr doc = read_doc(body, len, why, whylen);
    if (!doc)
        return -EINVAL;
    xmlNode *root = xmlDocGetRootElement(doc);
    int rc = 0;
    if (!is_el(root, "DescribeAutoScalingGroupsResponse")) {
        rc = why_set(why, whylen, "not a DescribeAutoScalingGroupsResponse");
    } else {
        xmlNode *groups =
            child(child(root, "DescribeAutoScalingGroupsResult"), "AutoScalingGroups");
        if (!groups)
            rc = why_set(why, whylen, "no DescribeAutoScalingGroupsResult/AutoScalingGroups");
        for (xmlNode *m = child(groups, "member"); m && rc == 0; m = next_el(m, "member")) {
            char gname[300];
            if (field(m, "AutoScalingGroupName", gname, sizeof gname) != 0 ||
                strcmp(gname, name) != 0)
                continue;
            rc = read_group(m, out, why, whylen);
            break;
        }
    }
    xmlFreeDoc(doc);
    if (rc)
        sb_asg_group_clear(out);
    return rc;
}

/* ---- meanings ------------------------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int64_t sb_ec2_parse_time(const char *t)
{
    int y, mo, d, h, mi, s;
    if (!t || strlen(t) < 19 || digits(t, 4, &y) || t[4] != '-' || digits(t + 5, 2, &mo) ||
        t[7] != '-' || digits(t + 8, 2, &d) || t[10] != 'T' || digits(t + 11, 2, &h) ||
        t[13] != ':' || digits(t + 14, 2, &mi) || t[16] != ':' || digits(t + 17, 2, &s))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || y < 1970)
        return 0;
    const char *p = t + 19;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int64_t offset = 0;
    if (*p == 'Z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
            return 0;
        offset = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
        p += 6;
    }
    if (*p)
        return 0;
    return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - offset;
}

sb_member_state sb_ec2_instance_state(const char *state)
{
    if (strcmp(state, "pending") == 0)
        return SB_MEMBER_STARTING;
    if (strcmp(state, "running") == 0)
        return SB_MEMBER_READY;
    if (strcmp(state, "stopping") == 0 || strcmp(state, "stopped") == 0)
        return SB_MEMBER_FAILED;
    return (sb_member_state)0;
}

static int starts(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

sb_member_state sb_asg_instance_state(const char *lifecycle, const char *health)
{
    if (starts(lifecycle, "Pending") || starts(lifecycle, "Warmed"))
        return SB_MEMBER_STARTING;
    if (strcmp(lifecycle, "InService") == 0)
        return health && strcmp(health, "Unhealthy") == 0 ? SB_MEMBER_FAILED : SB_MEMBER_READY;
    if (starts(lifecycle, "Terminating") || starts(lifecycle, "Detaching") ||
        starts(lifecycle, "EnteringStandby"))
        return SB_MEMBER_STOPPING;
    return (sb_member_state)0;
}

static int one_of(const char *code, const char *const *list)
{
    for (; *list; list++)
        if (strcmp(code, *list) == 0)
            return 1;
    return 0;
}

int sb_ec2_code_is_throttling(const char *code)
{
    static const char *const list[] = {"Throttling", "ThrottlingException", "RequestLimitExceeded",
                                       "RequestThrottled", NULL};
    return one_of(code, list);
}

int sb_ec2_code_is_busy(const char *code)
{
    static const char *const list[] = {"ScalingActivityInProgress", "ResourceContention", NULL};
    return sb_ec2_code_is_throttling(code) || one_of(code, list);
}

int sb_ec2_code_is_stale_keys(const char *code)
{
    static const char *const list[] = {"ExpiredToken", "ExpiredTokenException",
                                       "InvalidClientTokenId", NULL};
    return one_of(code, list);
}
