/*
 * config_graph.c - phase 1 of a pipeline file, the graph (a stage of config.c): every
 * connector's from and to resolved to components, connectors whose decisions would reach no one,
 * and cycles. A connector's `from` names triggers or other connectors (policies in a chain); its
 * `to` names scalers or triggers (run now). A cycle through triggers or connectors would run
 * forever, so it is an error, reported at the reference that closes it.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "config_internal.h"
#include "strmap.h"
#include "textbuf.h"

/* The component an id names, as an index, or CONFIG_NO_COMP. */
static size_t component_index(const config_checker *c, const char *id)
{
    const config_component *comp = strmap_get(&c->store->ids, id);
    return comp != NULL ? (size_t)(comp - c->cfg->components) : CONFIG_NO_COMP;
}

/* Resolves every connector's from and to; marks with stamps (one per connector and direction)
 * catch an id listed twice without comparing lists pairwise. A connector in `from` feeds its
 * decisions to this one; a connector without `to` must feed another (check_leads_somewhere). */
static void resolve_edges(config_checker *c)
{
    config *cfg = c->cfg;
    size_t *stamp = calloc(cfg->ncomponents + 1, sizeof *stamp);
    if (stamp == NULL) {
        c->rep->oom = 1;
        return;
    }
    config_clipbuf cb;
    for (size_t ci = 0; ci < cfg->ncomponents; ci++) {
        const config_component *conn = &cfg->components[ci];
        config_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            const char *name = conn->from[j];
            size_t t = component_index(c, name);
            s->from_idx[j] = CONFIG_NO_COMP;
            if (t == CONFIG_NO_COMP)
                config_report_at(c->rep, s->from_nodes[j],
                                 "%s: from '%s' is not a trigger or connector in this file",
                                 s->label, config_clip(&cb, name));
            else if (cfg->components[t].kind == SB_KIND_SCALER)
                config_report_at(
                    c->rep, s->from_nodes[j],
                    "%s: from '%s' is not a trigger or connector in this file (it is a %s)",
                    s->label, config_clip(&cb, name), config_kind_word(cfg->components[t].kind));
            else if (stamp[t] == 2 * ci + 1)
                config_report_at(c->rep, s->from_nodes[j], "%s: from lists '%s' twice", s->label,
                                 config_clip(&cb, name));
            else {
                stamp[t] = 2 * ci + 1;
                s->from_idx[j] = t;
            }
        }
        for (size_t j = 0; j < conn->nto; j++) {
            const char *name = conn->to[j];
            size_t t = component_index(c, name);
            s->to_idx[j] = CONFIG_NO_COMP;
            if (t == CONFIG_NO_COMP)
                config_report_at(c->rep, s->to_nodes[j],
                                 "%s: to '%s' is not a scaler or trigger in this file", s->label,
                                 config_clip(&cb, name));
            else if (cfg->components[t].kind == SB_KIND_CONNECTOR)
                config_report_at(c->rep, s->to_nodes[j],
                                 "%s: to '%s' is not a scaler or trigger in this file (it is a "
                                 "connector)",
                                 s->label, config_clip(&cb, name));
            else if (stamp[t] == 2 * ci + 2)
                config_report_at(c->rep, s->to_nodes[j], "%s: to lists '%s' twice", s->label,
                                 config_clip(&cb, name));
            else {
                stamp[t] = 2 * ci + 2;
                s->to_idx[j] = t;
            }
        }
    }
    free(stamp);
}

/* A connector without `to` must hand its decisions to another connector (one that names it in
 * its `from`); otherwise nothing would ever act on them. Feeding only itself does not count. */
static void check_leads_somewhere(config_checker *c)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents;
    int needed = 0;
    for (size_t ci = 0; ci < n && !needed; ci++)
        needed = cfg->components[ci].kind == SB_KIND_CONNECTOR && !c->side[ci].has_to;
    if (!needed)
        return;
    unsigned char *fed = calloc(n, 1);
    if (fed == NULL) {
        c->rep->oom = 1;
        return;
    }
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            size_t t = c->side[ci].from_idx[j];
            if (t != CONFIG_NO_COMP && t != ci && cfg->components[t].kind == SB_KIND_CONNECTOR)
                fed[t] = 1;
        }
    }
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        if (conn->kind == SB_KIND_CONNECTOR && !c->side[ci].has_to && !fed[ci])
            config_report_at(
                c->rep, conn->node,
                "%s leads nowhere: give it `to` or name it in another connector's `from`",
                c->side[ci].label);
    }
    free(fed);
}

/* The run graph: trigger -> connector and connector -> connector (the connector's from), and
 * connector -> trigger (its to, when it names a trigger). Edges in compressed rows; each
 * remembers the scalar that made it, for the error's position. */
typedef struct run_graph {
    size_t *first; /* ncomponents + 1 offsets */
    size_t *to;
    const config_node **at;
} run_graph;

static int build_run_graph(config_checker *c, run_graph *g, size_t *nedges)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents, e = 0;
    g->first = calloc(n + 2, sizeof *g->first);
    if (g->first == NULL)
        return -1;
    int any_back = 0; /* an edge into a trigger or a connector: only those can close a cycle */
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        const config_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++)
            if (s->from_idx[j] != CONFIG_NO_COMP) {
                g->first[s->from_idx[j] + 1]++;
                if (cfg->components[s->from_idx[j]].kind == SB_KIND_CONNECTOR)
                    any_back = 1;
            }
        for (size_t j = 0; j < conn->nto; j++)
            if (s->to_idx[j] != CONFIG_NO_COMP &&
                cfg->components[s->to_idx[j]].kind == SB_KIND_TRIGGER) {
                g->first[ci + 1]++;
                any_back = 1;
            }
    }
    *nedges = 0;
    if (!any_back)
        return 0; /* no connector runs a trigger or feeds a connector: no cycle is possible */
    for (size_t i = 1; i <= n; i++)
        g->first[i] += g->first[i - 1];
    e = g->first[n];
    g->to = malloc((e ? e : 1) * sizeof *g->to);
    g->at = malloc((e ? e : 1) * sizeof *g->at);
    size_t *fill = malloc((n + 1) * sizeof *fill);
    if (g->to == NULL || g->at == NULL || fill == NULL) {
        free(fill);
        return -1;
    }
    memcpy(fill, g->first, (n + 1) * sizeof *fill);
    for (size_t ci = 0; ci < n; ci++) {
        const config_component *conn = &cfg->components[ci];
        const config_side *s = &c->side[ci];
        if (conn->kind != SB_KIND_CONNECTOR)
            continue;
        for (size_t j = 0; j < conn->nfrom; j++) {
            size_t t = s->from_idx[j];
            if (t != CONFIG_NO_COMP) {
                g->to[fill[t]] = ci;
                g->at[fill[t]++] = s->from_nodes[j];
            }
        }
        for (size_t j = 0; j < conn->nto; j++) {
            size_t t = s->to_idx[j];
            if (t != CONFIG_NO_COMP && cfg->components[t].kind == SB_KIND_TRIGGER) {
                g->to[fill[ci]] = t;
                g->at[fill[ci]++] = s->to_nodes[j];
            }
        }
    }
    free(fill);
    *nedges = e;
    return 0;
}

/* "trigger cycle: a -> c -> b -> c2 -> a", or "connector cycle: a -> b -> a" when no trigger is
 * on it; a very long cycle keeps its ends and elides the middle. */
static void report_cycle(config_checker *c, const size_t *stack, size_t from, size_t top,
                         const config_node *at)
{
    const config *cfg = c->cfg;
    textbuf t = {0};
    size_t len = top - from + 1;
    int through_trigger = 0;
    for (size_t k = from; k <= top; k++)
        through_trigger |= cfg->components[stack[k]].kind == SB_KIND_TRIGGER;
    for (size_t k = from; k <= top; k++) {
        if (len > 16 && k == from + 8) {
            textbuf_puts(&t, "... -> ");
            k = top - 7;
        }
        /* A component whose id is missing (already reported) still has its edges. */
        const char *id = cfg->components[stack[k]].id;
        textbuf_puts(&t, id ? id : "(no id)");
        textbuf_puts(&t, " -> ");
    }
    const char *first = cfg->components[stack[from]].id;
    textbuf_puts(&t, first ? first : "(no id)");
    if (t.oom)
        c->rep->oom = 1;
    else
        config_report_at(c->rep, at, "%s cycle: %s", through_trigger ? "trigger" : "connector",
                         t.p);
    textbuf_free(&t);
}

/* Depth-first search without recursion (a chain can be 30,000 components long); every edge
 * back into the current path is a cycle, reported at the scalar that closes it. */
static void check_cycles(config_checker *c)
{
    const config *cfg = c->cfg;
    size_t n = cfg->ncomponents, nedges = 0;
    run_graph g = {0};
    if (build_run_graph(c, &g, &nedges) != 0) {
        c->rep->oom = 1;
        goto out;
    }
    if (nedges == 0)
        goto out;
    unsigned char *color = calloc(n, 1); /* 0 unseen, 1 on the path, 2 done */
    size_t *next = malloc(n * sizeof *next);
    size_t *stack = malloc(n * sizeof *stack);
    size_t *pos = malloc(n * sizeof *pos);
    if (color == NULL || next == NULL || stack == NULL || pos == NULL) {
        c->rep->oom = 1;
    } else {
        for (size_t root = 0; root < n; root++) {
            /* Triggers first (they come first in the array), then connectors a trigger does not
             * reach: a cycle of connectors alone has no trigger to start from. */
            if (color[root] != 0 || cfg->components[root].kind == SB_KIND_SCALER)
                continue;
            size_t top = 0;
            stack[0] = root;
            pos[root] = 0;
            color[root] = 1;
            next[root] = g.first[root];
            for (;;) {
                size_t u = stack[top];
                if (next[u] < g.first[u + 1]) {
                    size_t e = next[u]++;
                    size_t v = g.to[e];
                    if (color[v] == 0) {
                        color[v] = 1;
                        next[v] = g.first[v];
                        stack[++top] = v;
                        pos[v] = top;
                    } else if (color[v] == 1) {
                        report_cycle(c, stack, pos[v], top, g.at[e]);
                    }
                    continue;
                }
                color[u] = 2;
                if (top == 0)
                    break;
                top--;
            }
        }
    }
    free(color);
    free(next);
    free(stack);
    free(pos);
out:
    free(g.first);
    free(g.to);
    free(g.at);
}

void config_check_graph(config_checker *c)
{
    resolve_edges(c);
    if (!c->rep->oom)
        check_leads_somewhere(c);
    if (!c->rep->oom)
        check_cycles(c);
}
