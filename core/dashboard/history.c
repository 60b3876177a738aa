/*
 * history.c - the ring of a scaler's recent counts (see history.h).
 */
#include "history.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int same_count(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static history_point *slot(const history *h, size_t i)
{
    return &h->p[(h->start + i) % h->cap];
}

/* Room for one more point: grows up to the bound, then the oldest goes. 0, or -1 on ENOMEM. */
static int make_room(history *h)
{
    if (h->n < h->cap)
        return 0;
    if (h->cap == HISTORY_MAX_POINTS) {
        h->start = (h->start + 1) % h->cap;
        h->n--;
        return 0;
    }
    /* One point first: most scalers of a large file idle on their first point for hours. */
    uint32_t ncap = h->cap ? h->cap * 2 : 1;
    if (ncap > HISTORY_MAX_POINTS)
        ncap = HISTORY_MAX_POINTS;
    history_point *np = malloc(ncap * sizeof *np);
    if (!np)
        return -1;
    for (uint32_t i = 0; i < h->n; i++)
        np[i] = *slot(h, i); /* unrolled, oldest first */
    free(h->p);
    h->p = np;
    h->cap = ncap;
    h->start = 0;
    return 0;
}

void history_record(history *h, int64_t now_ns, double desired, double running)
{
    if (h->n > 0) {
        history_point *last = slot(h, h->n - 1);
        if (same_count(last->desired, desired) && same_count(last->running, running))
            return;
        /* Within the step (or a wall clock set back): the step's point takes the new counts. */
        if (now_ns - last->t_ns < HISTORY_STEP_NS) {
            last->desired = desired;
            last->running = running;
            return;
        }
    } else if (isnan(desired) && isnan(running)) {
        return;
    }
    if (make_room(h) != 0)
        return;
    *slot(h, h->n) = (history_point){now_ns, desired, running};
    h->n++;
}

size_t history_count(const history *h)
{
    return h ? h->n : 0;
}

const history_point *history_at(const history *h, size_t i)
{
    return slot(h, i);
}

void history_free(history *h)
{
    free(h->p);
    memset(h, 0, sizeof *h);
}

static void put_count(textbuf *t, double v)
{
    if (isfinite(v))
        textbuf_printf(t, ",%.17g", v + 0.0);
    else
        textbuf_puts(t, ",null");
}

void history_render_json(textbuf *t, const char *scaler_id, const history *h, int64_t now_ns)
{
    textbuf_puts(t, "{\"scaler\":\"");
    /* Ids are [A-Za-z0-9_.-] (the file's rule); anything else is escaped all the same. */
    for (const char *s = scaler_id; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            textbuf_printf(t, "\\%c", c);
        else if (c < 0x20 || c == 0x7f)
            textbuf_printf(t, "\\u%04x", c);
        else
            textbuf_putn(t, s, 1);
    }
    textbuf_printf(t, "\",\"now\":%lld,\"step_s\":%lld,\"points\":[", (long long)(now_ns / 1000000),
                   (long long)(HISTORY_STEP_NS / 1000000000LL));
    for (size_t i = 0; i < history_count(h); i++) {
        const history_point *p = history_at(h, i);
        textbuf_printf(t, "%s[%lld", i ? "," : "", (long long)(p->t_ns / 1000000));
        put_count(t, p->desired);
        put_count(t, p->running);
        textbuf_puts(t, "]");
    }
    textbuf_puts(t, "]}");
}
