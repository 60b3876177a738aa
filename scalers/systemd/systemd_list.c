/*
 * systemd_list.c - the systemd scaler's members from ListUnitsByPatterns, their started-at and
 * their order (see systemd_list.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "systemd_list.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void sd_entries_free(sd_entry *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].name);
        free(e[i].path);
    }
    free(e);
}

int sd_list_parse(sd_bus_message *m, const sd_naming *n, size_t max, sd_entry **out, size_t *nout)
{
    *out = NULL;
    *nout = 0;
    if (sd_bus_message_has_signature(m, "a(ssssssouso)") <= 0)
        return -EBADMSG;
    int r = sd_bus_message_enter_container(m, 'a', "(ssssssouso)");
    if (r < 0)
        return r;
    sd_entry *list = NULL;
    size_t count = 0, cap = 0;
    for (;;) {
        const char *name, *desc, *load, *active, *sub, *following, *path, *jtype, *jpath;
        uint32_t jid;
        r = sd_bus_message_read(m, "(ssssssouso)", &name, &desc, &load, &active, &sub, &following,
                                &path, &jid, &jtype, &jpath);
        if (r <= 0)
            break;
        int64_t idx = sd_unit_index(n, name);
        sb_member_state st = sd_member_state(active);
        if (idx < 0 || st == 0)
            continue; /* outside the pattern, or not running: not a member */
        if (count == max)
            continue; /* read on: the reply stays well-formed to its end */
        if (count == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            if (ncap > max)
                ncap = max;
            sd_entry *grown = realloc(list, ncap * sizeof *grown);
            if (!grown) {
                r = -ENOMEM;
                break;
            }
            list = grown;
            cap = ncap;
        }
        sd_entry *e = &list[count];
        memset(e, 0, sizeof *e);
        e->name = strdup(name);
        e->path = strdup(path);
        e->index = idx;
        e->state = st;
        e->job_id = jid;
        count++;
        if (!e->name || !e->path) {
            r = -ENOMEM;
            break;
        }
    }
    if (r >= 0)
        r = sd_bus_message_exit_container(m);
    if (r < 0) {
        sd_entries_free(list, count);
        return r;
    }
    *out = list;
    *nout = count;
    return 0;
}

const char *sd_stamp_property(sb_member_state st)
{
    return st == SB_MEMBER_STARTING ? "InactiveExitTimestamp" : "ActiveEnterTimestamp";
}

size_t sd_stamps_carry(sd_entry *cur, size_t ncur, const sd_entry *prev, size_t nprev)
{
    size_t need = 0;
    for (size_t i = 0; i < ncur; i++) {
        sd_entry *c = &cur[i];
        c->stamp_known = 0;
        for (size_t k = 0; c->job_id == 0 && k < nprev; k++) {
            const sd_entry *p = &prev[k];
            if (p->stamp_known && p->job_id == 0 && p->state == c->state &&
                strcmp(p->name, c->name) == 0) {
                c->stamp_us = p->stamp_us;
                c->stamp_known = 1;
                break;
            }
        }
        if (!c->stamp_known)
            need++;
    }
    return need;
}

void sd_stamps_forget(sd_entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0)
            e[i].stamp_known = 0;
}

void sd_stamps_forget_all(sd_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        e[i].stamp_known = 0;
}

int sd_read_stamp(sd_bus_message *m, uint64_t *out)
{
    if (sd_bus_message_has_signature(m, "v") <= 0)
        return -EBADMSG;
    int r = sd_bus_message_read(m, "v", "t", out);
    return r < 0 ? r : 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const sd_entry *x = a, *y = b;
    int xs = x->state == SB_MEMBER_STARTING, ys = y->state == SB_MEMBER_STARTING;
    if (xs != ys)
        return xs - ys;
    if (x->stamp_us != y->stamp_us)
        return x->stamp_us < y->stamp_us ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

void sd_entries_sort(sd_entry *e, size_t n)
{
    if (n > 1) /* never qsort(NULL, 0): UBSan */
        qsort(e, n, sizeof *e, entry_cmp);
}
