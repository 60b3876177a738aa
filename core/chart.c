/*
 * chart.c - the SVG chart of `scalebus simulate` (see chart.h): a title, then one panel per
 * scaler with its figures (decisions, peak, time at max, time running below desired), the
 * desired and running counts as steps on the left axis, the inputs as lines on the right axis,
 * the bounds shaded, and a legend. The file is self-contained and well-formed whatever the
 * trace's labels hold.
 *
 * The series are kept in bounded memory (chart_series): exactly while they have at most
 * CHART_POINTS points (a count: half as many), then as time buckets whose width doubles as the
 * trace goes on, each keeping the extremes it saw, so a peak shows however long the trace.
 */
#define _POSIX_C_SOURCE 200809L
#include "chart.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- bounded series ---------------------------------------------------------------------- */

/* Buckets of a downsampled series: as many as the points an exact one draws at most, halved
 * (a line's bucket draws two points; a count's, one step). */
#define LINE_BUCKETS (CHART_POINTS / 2)
#define STEP_BUCKETS (CHART_POINTS / 4)

void chart_series_init(chart_series *cs, int step)
{
    memset(cs, 0, sizeof *cs);
    cs->step = step;
    cs->cap = step ? CHART_POINTS / 2 : CHART_POINTS;
    cs->nbuckets = step ? STEP_BUCKETS : LINE_BUCKETS;
}

void chart_series_free(chart_series *cs)
{
    free(cs->p);
    free(cs->b);
    cs->p = NULL;
    cs->b = NULL;
}

/* Put a point in its bucket (the bucket array covers it). prev: the value before it. */
static void bucket_put(chart_series *cs, chart_bucket *b, chart_point pt, double prev)
{
    if (cs->step) {
        if (!b->used) {
            b->t = pt.t;
            b->lo.v = b->hi.v = prev;
        }
        b->lo.v = fmin(b->lo.v, pt.v);
        b->hi.v = fmax(b->hi.v, pt.v);
        b->last = pt.v;
    } else if (!b->used) {
        b->lo = b->hi = pt;
    } else {
        if (pt.v < b->lo.v)
            b->lo = pt;
        if (pt.v > b->hi.v)
            b->hi = pt;
    }
    b->used = 1;
}

/* Two neighbouring buckets as one; a is the earlier. */
static chart_bucket bucket_merge(const chart_series *cs, const chart_bucket *a,
                                 const chart_bucket *b)
{
    if (!b->used)
        return *a;
    if (!a->used)
        return *b;
    chart_bucket m = *a;
    if (cs->step) {
        m.lo.v = fmin(a->lo.v, b->lo.v);
        m.hi.v = fmax(a->hi.v, b->hi.v);
        m.last = b->last;
    } else {
        if (b->lo.v < a->lo.v)
            m.lo = b->lo;
        if (b->hi.v > a->hi.v)
            m.hi = b->hi;
    }
    return m;
}

/* Double the buckets' width: bucket k takes old buckets 2k and 2k + 1. */
static void buckets_widen(chart_series *cs)
{
    size_t half = cs->nbuckets / 2;
    for (size_t k = 0; k < half; k++)
        cs->b[k] = bucket_merge(cs, &cs->b[2 * k], &cs->b[2 * k + 1]);
    memset(cs->b + half, 0, (cs->nbuckets - half) * sizeof *cs->b);
    cs->width *= 2;
}

static void bucket_add(chart_series *cs, chart_point pt, double prev)
{
    uint64_t rel = pt.t > cs->t0 ? pt.t - cs->t0 : 0;
    while (rel / cs->width >= cs->nbuckets)
        buckets_widen(cs);
    bucket_put(cs, &cs->b[rel / cs->width], pt, prev);
}

/* From exact points to buckets, once there are too many points to keep. */
static int series_downsample(chart_series *cs, chart_point next)
{
    cs->b = calloc(cs->nbuckets, sizeof *cs->b);
    if (!cs->b)
        return -ENOMEM;
    cs->t0 = cs->p[0].t;
    cs->width = 1;
    while ((next.t - cs->t0) / cs->width >= cs->nbuckets)
        cs->width *= 2;
    /* A count's first point is where its steps start; a line's is drawn like the others. */
    for (size_t i = cs->step ? 1 : 0; i < cs->n; i++)
        bucket_add(cs, cs->p[i], cs->p[i ? i - 1 : 0].v);
    free(cs->p);
    cs->p = NULL;
    cs->n = cs->alloc = 0;
    return 0;
}

int chart_series_add(chart_series *cs, uint64_t t, double v)
{
    chart_point pt = {t, v};
    if (cs->b) {
        bucket_add(cs, pt, cs->last);
    } else if (cs->n < cs->cap) {
        if (cs->n == cs->alloc) {
            size_t na = cs->alloc ? cs->alloc * 2 : 16;
            if (na > cs->cap)
                na = cs->cap;
            chart_point *np = realloc(cs->p, na * sizeof *np);
            if (!np)
                return -ENOMEM;
            cs->p = np;
            cs->alloc = na;
        }
        cs->p[cs->n++] = pt;
    } else {
        if (series_downsample(cs, pt) != 0)
            return -ENOMEM;
        bucket_add(cs, pt, cs->last);
    }
    if (cs->count == 0) {
        cs->first = pt;
        cs->lo = cs->hi = v;
    }
    cs->lo = fmin(cs->lo, v);
    cs->hi = fmax(cs->hi, v);
    cs->last = v;
    cs->count++;
    return 0;
}

/* ---- drawing ----------------------------------------------------------------------------- */

#define CHART_W 960.0
#define CHART_ML 64.0  /* left margin: instance ticks and label */
#define CHART_MR 80.0  /* right margin: input ticks and label */
#define CHART_PH 230.0 /* plot height */
#define CHART_HEAD 64.0
#define PANEL_TOP 44.0  /* title and stats above the plot */
#define PANEL_AXIS 40.0 /* time ticks and label below it */

static const char *const input_colors[] = {"#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                                           "#17becf", "#bcbd22", "#7f7f7f", "#d62728"};
#define NCOLORS (sizeof input_colors / sizeof input_colors[0])
#define COLOR_DESIRED "#1f77b4"
#define COLOR_RUNNING "#ff7f0e"

/* Text for XML: markup characters escaped, control characters and bytes that are not UTF-8
 * replaced with '?', so the file stays well-formed whatever the trace's labels hold. */
static void xml_text(FILE *f, const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        unsigned char c = *p;
        if (c == '&')
            fputs("&amp;", f);
        else if (c == '<')
            fputs("&lt;", f);
        else if (c == '>')
            fputs("&gt;", f);
        else if (c == '"')
            fputs("&quot;", f);
        else if (c < 0x20)
            fputc('?', f);
        else if (c < 0x80)
            fputc(c, f);
        else {
            int n = (c & 0xE0) == 0xC0 ? 1 : (c & 0xF0) == 0xE0 ? 2 : (c & 0xF8) == 0xF0 ? 3 : -1;
            int ok = n > 0 && c >= 0xC2 && c <= 0xF4;
            for (int i = 1; ok && i <= n; i++)
                ok = (p[i] & 0xC0) == 0x80;
            if (!ok) {
                fputc('?', f);
            } else {
                fwrite(p, 1, (size_t)n + 1, f);
                p += n;
            }
        }
        p++;
    }
}

/* 1, 2 or 5 times a power of ten, at least x. */
static double nice125(double x)
{
    if (!(x > 0))
        return 1;
    double e = pow(10, floor(log10(x)));
    double m = x / e;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * e;
}

static void fmt_num(char *buf, size_t n, double v)
{
    double a = fabs(v);
    if (a >= 1e6)
        snprintf(buf, n, "%.4gM", v / 1e6);
    else if (a >= 1e4)
        snprintf(buf, n, "%.4gk", v / 1e3);
    else
        snprintf(buf, n, "%.4g", v);
}

/* "45s", "5m 20s", "2h 05m" */
static void fmt_dur(char *buf, size_t n, double sec)
{
    if (sec < 60) {
        if (sec != floor(sec) && sec < 10)
            snprintf(buf, n, "%.1fs", sec);
        else
            snprintf(buf, n, "%.0fs", sec);
    } else if (sec < 3600) {
        long m = (long)(sec / 60);
        snprintf(buf, n, "%ldm %02lds", m, (long)(sec - (double)m * 60));
    } else {
        long h = (long)(sec / 3600);
        snprintf(buf, n, "%ldh %02ldm", h, (long)((sec - (double)h * 3600) / 60));
    }
}

/* A moment of the trace as H:MM:SS from its start. */
static void fmt_clock(char *buf, size_t n, double sec)
{
    long s = (long)floor(sec);
    double frac = sec - (double)s;
    if (frac < 0.05) /* whole seconds, or a tenth when it has one */
        snprintf(buf, n, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
    else
        snprintf(buf, n, "%ld:%02ld:%04.1f", s / 3600, (s / 60) % 60,
                 fmin((double)(s % 60) + frac, 59.9));
}

/* Where a panel is drawn, and its scales. */
typedef struct canvas {
    FILE *f;
    double x0, y0, w, h; /* plot area */
    uint64_t t0, t1;
    double ymax;       /* left axis: instances, from 0 */
    double rmin, rmax; /* right axis: input values */
    int clip;          /* id of the panel's clipPath */
} canvas;

static double cx(const canvas *c, uint64_t t)
{
    return c->x0 + (double)(t - c->t0) / (double)(c->t1 - c->t0) * c->w;
}

static double cy(const canvas *c, double v)
{
    return c->y0 + c->h - v / c->ymax * c->h;
}

static double cyr(const canvas *c, double v)
{
    return c->y0 + c->h - (v - c->rmin) / (c->rmax - c->rmin) * c->h;
}

/* An input's values as a line on the right axis: every point, or each bucket's lowest and
 * highest in time order. */
static void svg_line(const canvas *c, const chart_series *cs, const char *color)
{
    if (cs->count == 0)
        return;
    fprintf(c->f,
            "<path clip-path=\"url(#clip%d)\" fill=\"none\" stroke=\"%s\" "
            "stroke-width=\"1\" stroke-opacity=\"0.85\" d=\"",
            c->clip, color);
    if (!cs->b) {
        for (size_t i = 0; i < cs->n; i++)
            fprintf(c->f, "%s%.1f %.1f", i ? " L" : "M", cx(c, cs->p[i].t), cyr(c, cs->p[i].v));
    } else {
        int first = 1;
        for (size_t k = 0; k < cs->nbuckets; k++) {
            const chart_bucket *b = &cs->b[k];
            if (!b->used)
                continue;
            const chart_point *a = b->hi.t < b->lo.t ? &b->hi : &b->lo;
            const chart_point *z = a == &b->lo ? &b->hi : &b->lo;
            fprintf(c->f, "%s%.1f %.1f", first ? "M" : " L", cx(c, a->t), cyr(c, a->v));
            if (z->t != a->t || z->v != a->v)
                fprintf(c->f, " L%.1f %.1f", cx(c, z->t), cyr(c, z->v));
            first = 0;
        }
    }
    fputs("\"/>\n", c->f);
}

/* A count over time as a step line on the left axis, drawn to the end of the trace: every
 * change, or for each bucket one vertical stroke over the range of counts it held, going on at
 * the count it ended with. */
static void svg_step(const canvas *c, const chart_series *cs, const char *color, const char *extra)
{
    if (cs->count == 0)
        return;
    fprintf(c->f, "<path clip-path=\"url(#clip%d)\" fill=\"none\" stroke=\"%s\" %s d=\"M%.1f %.1f",
            c->clip, color, extra, cx(c, cs->first.t), cy(c, cs->first.v));
    if (!cs->b) {
        for (size_t i = 1; i < cs->n; i++)
            fprintf(c->f, " H%.1f V%.1f", cx(c, cs->p[i].t), cy(c, cs->p[i].v));
    } else {
        for (size_t k = 0; k < cs->nbuckets; k++) {
            const chart_bucket *b = &cs->b[k];
            if (b->used)
                fprintf(c->f, " H%.1f V%.1f V%.1f V%.1f", cx(c, b->t), cy(c, b->lo.v),
                        cy(c, b->hi.v), cy(c, b->last));
        }
    }
    fprintf(c->f, " H%.1f\"/>\n", cx(c, c->t1));
}

/* The time axis: unit (s, min or h) and a tick step in that unit. */
static void time_axis(double span_s, const char **unit, double *div, double *step)
{
    static const double sm[] = {1, 2, 5, 10, 15, 20, 30, 60, 120, 300};
    static const double hr[] = {1, 2, 3, 4, 6, 12, 24, 48, 72, 168, 336, 720, 1440};
    const double *cand = sm;
    size_t ncand = sizeof sm / sizeof sm[0];
    if (span_s <= 300) {
        *unit = "s";
        *div = 1;
    } else if (span_s <= 5 * 3600) {
        *unit = "min";
        *div = 60;
    } else {
        *unit = "h";
        *div = 3600;
        cand = hr;
        ncand = sizeof hr / sizeof hr[0];
    }
    double span = span_s / *div;
    if (span < 4) {
        *step = nice125(span / 5);
        return;
    }
    for (size_t i = 0; i < ncand; i++) {
        if (span / cand[i] <= 9) {
            *step = cand[i];
            return;
        }
    }
    *step = nice125(span / 8);
}

typedef struct legend_item {
    const char *color;
    const char *dash; /* stroke-dasharray or NULL */
    double width;
    char text[160];
} legend_item;

/* Lay out (and with draw, draw) legend items from (x, y); returns the number of rows. */
static int legend(const canvas *c, const legend_item *it, size_t n, double y, int draw)
{
    double x = c->x0, right = c->x0 + c->w;
    int rows = 1;
    for (size_t i = 0; i < n; i++) {
        double wi = 30 + (double)strlen(it[i].text) * 6.4 + 20;
        if (x > c->x0 && x + wi > right) {
            x = c->x0;
            y += 18;
            rows++;
        }
        if (draw) {
            fprintf(c->f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                    "stroke-width=\"%.1f\"%s%s%s/>\n",
                    x, y - 4, x + 24, y - 4, it[i].color, it[i].width,
                    it[i].dash ? " stroke-dasharray=\"" : "", it[i].dash ? it[i].dash : "",
                    it[i].dash ? "\"" : "");
            fprintf(c->f, "<text x=\"%.1f\" y=\"%.1f\">", x + 30, y);
            xml_text(c->f, it[i].text);
            fputs("</text>\n", c->f);
        }
        x += wi;
    }
    return rows;
}

/* A panel's legend and height, worked out before anything is drawn. */
typedef struct layout {
    legend_item items[3 + CHART_INPUTS];
    size_t nitems;
    double height;
} layout;

static void panel_layout(const chart_info *ci, const chart_panel *p, layout *l, const canvas *c)
{
    char startup[32];
    fmt_dur(startup, sizeof startup, (double)ci->startup_ns / 1e9);
    legend_item *it = l->items;
    it[0] = (legend_item){COLOR_DESIRED, NULL, 2.5, ""};
    snprintf(it[0].text, sizeof it[0].text, "desired count (decisions)");
    it[1] = (legend_item){COLOR_RUNNING, "6,4", 2, ""};
    snprintf(it[1].text, sizeof it[1].text, "running (model: new instances ready after %s)",
             startup);
    it[2] = (legend_item){"#555", "2,3", 1.2, ""};
    snprintf(it[2].text, sizeof it[2].text, "min %lld / max %lld (shaded: outside)", p->min,
             p->max);
    l->nitems = 3;
    for (size_t i = 0; i < p->ninputs && i < CHART_INPUTS; i++) {
        legend_item *li = &it[l->nitems++];
        *li = (legend_item){input_colors[i % NCOLORS], NULL, 1.5, ""};
        snprintf(li->text, sizeof li->text, "%s (right axis)", p->inputs[i].name);
    }
    int rows = legend(c, l->items, l->nitems, 0, 0);
    l->height = PANEL_TOP + CHART_PH + PANEL_AXIS + 18.0 * rows + 16;
}

static void panel_axes(const chart_info *ci, canvas *c, const chart_panel *p)
{
    FILE *f = c->f;
    size_t ninputs = p->ninputs < CHART_INPUTS ? p->ninputs : CHART_INPUTS;
    /* Left axis: instances, 0 .. a round number above the highest count (and the bounds when
     * they are near: a far-away max would flatten every line). */
    double top = (double)p->min;
    if (p->desired->count)
        top = fmax(top, p->desired->hi);
    if (p->running->count)
        top = fmax(top, p->running->hi);
    int max_shown = (double)p->max <= fmax(top, 1) * 1.5;
    if (max_shown)
        top = fmax(top, (double)p->max);
    top = fmax(top * 1.12, 1);
    double ystep = fmax(1, nice125(top / 6));
    c->ymax = ceil(top / ystep) * ystep;

    /* Right axis: the inputs' values. */
    double lo = 0, hi = 0;
    for (size_t k = 0; k < ninputs; k++) {
        const chart_series *cs = p->inputs[k].values;
        if (cs->count) {
            lo = fmin(lo, cs->lo);
            hi = fmax(hi, cs->hi);
        }
    }
    if (hi <= lo)
        hi = lo + 1;
    double rstep = nice125((hi - lo) * 1.08 / 6);
    c->rmin = floor(lo / rstep) * rstep;
    c->rmax = ceil(hi * 1.08 / rstep) * rstep;
    if (c->rmax <= c->rmin)
        c->rmax = c->rmin + rstep;

    fprintf(f,
            "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fff\" "
            "stroke=\"#bbb\"/>\n",
            c->x0, c->y0, c->w, c->h);
    /* Outside the bounds: shaded. */
    if (p->min > 0)
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" "
                "fill-opacity=\"0.06\"/>\n",
                c->x0, cy(c, (double)p->min), c->w, c->y0 + c->h - cy(c, (double)p->min));
    if (max_shown)
        fprintf(f,
                "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#000\" "
                "fill-opacity=\"0.06\"/>\n",
                c->x0, c->y0, c->w, cy(c, (double)p->max) - c->y0);

    /* Instance ticks and grid. */
    fputs("<g font-size=\"11\" fill=\"#333\">\n", f);
    for (double v = 0; v <= c->ymax + 1e-9; v += ystep) {
        double y = cy(c, v);
        if (v > 0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    c->x0, y, c->x0 + c->w, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", c->x0 - 6,
                y + 4, v);
    }
    /* Input ticks. */
    for (int k = 0;; k++) {
        double v = c->rmin + k * rstep;
        if (v > c->rmax + rstep * 1e-6)
            break;
        char num[32];
        fmt_num(num, sizeof num, fabs(v) < rstep * 1e-6 ? 0 : v);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"#555\">%s</text>\n", c->x0 + c->w + 6,
                cyr(c, v) + 4, num);
    }
    /* Time ticks. */
    double span_s = (double)(c->t1 - c->t0) / 1e9;
    const char *unit;
    double div, step;
    time_axis(span_s, &unit, &div, &step);
    for (int k = 0;; k++) {
        double u = k * step;
        if (u * div > span_s + 1e-9)
            break;
        double x = c->x0 + u * div / span_s * c->w;
        if (k > 0)
            fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n",
                    x, c->y0, x, c->y0 + c->h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#888\"/>\n", x,
                c->y0 + c->h, x, c->y0 + c->h + 4);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%g</text>\n", x,
                c->y0 + c->h + 16, u);
    }
    fputs("</g>\n", f);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" fill=\"#333\">time (%s)%s%s"
            "</text>\n",
            c->x0 + c->w / 2, c->y0 + c->h + 33, unit, ci->t0_text ? " after time_s " : "",
            ci->t0_text ? ci->t0_text : "");
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(-90)\" text-anchor=\"middle\" "
            "fill=\"#333\">instances</text>\n",
            c->x0 - 40, c->y0 + c->h / 2);
    /* The right axis is labelled with its inputs' trigger ids. */
    fprintf(f,
            "<text transform=\"translate(%.1f %.1f) rotate(90)\" text-anchor=\"middle\" "
            "fill=\"#555\">",
            c->x0 + c->w + 58, c->y0 + c->h / 2);
    if (ninputs == 0)
        fputs("(no inputs in the trace)", f);
    for (size_t k = 0; k < ninputs; k++) {
        const char *trigger = p->inputs[k].trigger;
        int dup = 0; /* one trigger with several label sets: name it once */
        for (size_t j = 0; j < k && !dup; j++)
            dup = strcmp(p->inputs[j].trigger, trigger) == 0;
        if (dup)
            continue;
        if (k)
            fputs(", ", f);
        xml_text(f, trigger);
    }
    fputs("</text>\n", f);
}

static void panel_draw(const chart_info *ci, canvas *c, const chart_panel *p, const layout *l,
                       double top)
{
    FILE *f = c->f;
    size_t ninputs = p->ninputs < CHART_INPUTS ? p->ninputs : CHART_INPUTS;
    c->y0 = top + PANEL_TOP;
    fprintf(f,
            "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
            "height=\"%.1f\"/></clipPath>\n",
            c->clip, c->x0, c->y0 - 2, c->w, c->h + 4);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"15\" font-weight=\"bold\">scaler ", c->x0,
            top + 16);
    xml_text(f, p->id);
    fputs(" <tspan font-weight=\"normal\" fill=\"#555\">(", f);
    xml_text(f, p->type);
    fprintf(f, ", min %lld, max %lld)</tspan></text>\n", p->min, p->max);

    /* Figures to tune from. */
    char at_peak[32], at_max[32], under[32];
    fmt_clock(at_peak, sizeof at_peak, (double)(p->peak_t - c->t0) / 1e9);
    fmt_dur(at_max, sizeof at_max, p->at_max_s);
    fmt_dur(under, sizeof under, p->under_s);
    fprintf(f,
            "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#333\">%llu decisions, "
            "%llu changes (%llu up, %llu down); peak %.0f at %s; at max %s; running below "
            "desired %s</text>\n",
            c->x0, top + 34, (unsigned long long)p->decisions,
            (unsigned long long)(p->ups + p->downs), (unsigned long long)p->ups,
            (unsigned long long)p->downs, p->peak, at_peak, at_max, under);

    panel_axes(ci, c, p);

    /* Bounds, inputs, the counts, then the bounds' labels on top (with a white halo). */
    const double bounds[2] = {(double)p->min, (double)p->max};
    for (int k = 0; k < 2; k++)
        if (bounds[k] <= c->ymax)
            fprintf(f,
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" "
                    "stroke-width=\"1.2\" stroke-dasharray=\"2,3\"/>\n",
                    c->x0, cy(c, bounds[k]), c->x0 + c->w, cy(c, bounds[k]));
    for (size_t k = 0; k < ninputs; k++)
        svg_line(c, p->inputs[k].values, input_colors[k % NCOLORS]);
    svg_step(c, p->desired, COLOR_DESIRED, "stroke-width=\"2.5\"");
    svg_step(c, p->running, COLOR_RUNNING, "stroke-width=\"2\" stroke-dasharray=\"6,4\"");
    fputs("<g font-size=\"11\" fill=\"#333\" stroke=\"#fff\" stroke-width=\"3\" "
          "paint-order=\"stroke\" text-anchor=\"end\">\n",
          f);
    for (int k = 0; k < 2; k++) {
        if (bounds[k] > c->ymax)
            continue;
        double y = cy(c, bounds[k]);
        /* max above its line, min below it, unless that leaves the plot */
        double ty = k == 1 ? y - 4 : y + 13;
        if (ty > c->y0 + c->h - 2)
            ty = y - 4;
        if (ty < c->y0 + 12)
            ty = y + 13;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s %lld</text>\n", c->x0 + c->w - 4, ty,
                k == 0 ? "min" : "max", (long long)bounds[k]);
    }
    if (bounds[1] > c->ymax)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">max %lld (above this scale)</text>\n",
                c->x0 + c->w - 4, c->y0 + 13, (long long)bounds[1]);
    fputs("</g>\n", f);
    legend(c, l->items, l->nitems, c->y0 + c->h + PANEL_AXIS + 14, 1);
    if (p->nhidden)
        fprintf(f,
                "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"#555\" "
                "text-anchor=\"end\">%zu%s more input(s) not drawn</text>\n",
                c->x0 + c->w, top + 34, p->nhidden, p->nhidden_atleast ? " or" : "");
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void chart_head(FILE *f, const chart_info *ci, double height, double x0)
{
    fprintf(f,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
            "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n"
            "<title>scalebus simulate: ",
            CHART_W, height, CHART_W, height);
    xml_text(f, base_name(ci->file));
    fprintf(f, "</title>\n<rect width=\"%.0f\" height=\"%.0f\" fill=\"#fff\"/>\n", CHART_W, height);
    fprintf(f,
            "<text x=\"%.1f\" y=\"24\" font-size=\"18\" font-weight=\"bold\">"
            "scalebus simulate: ",
            x0);
    xml_text(f, base_name(ci->file));
    char span[32], startup[32];
    fmt_dur(span, sizeof span, (double)(ci->t1 - ci->t0) / 1e9);
    fmt_dur(startup, sizeof startup, (double)ci->startup_ns / 1e9);
    fprintf(f, "</text>\n<text x=\"%.1f\" y=\"44\" fill=\"#444\">trace ", x0);
    xml_text(f, base_name(ci->trace));
    fprintf(f,
            ": %llu readings over %s; scaler model: added instances run after %s, removed "
            "ones stop at once</text>\n",
            (unsigned long long)ci->nrows, span, startup);
}

int chart_write_svg(FILE *f, const chart_info *ci)
{
    canvas c = {.f = f,
                .x0 = CHART_ML,
                .w = CHART_W - CHART_ML - CHART_MR,
                .h = CHART_PH,
                .t0 = ci->t0,
                /* a little room after the last row, so a change there shows */
                .t1 = ci->t1 > ci->t0 ? ci->t1 + (ci->t1 - ci->t0) / 50 : ci->t0 + 1000000000u};
    layout *layouts = calloc(ci->npanels ? ci->npanels : 1, sizeof *layouts);
    if (!layouts)
        return -ENOMEM;
    double height = CHART_HEAD;
    for (size_t i = 0; i < ci->npanels; i++) {
        panel_layout(ci, &ci->panels[i], &layouts[i], &c);
        height += layouts[i].height;
    }
    if (ci->npanels == 0)
        height += 30;
    chart_head(f, ci, height, c.x0);
    double top = CHART_HEAD;
    for (size_t i = 0; i < ci->npanels; i++) {
        c.clip = (int)i;
        panel_draw(ci, &c, &ci->panels[i], &layouts[i], top);
        top += layouts[i].height;
    }
    if (ci->npanels == 0)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">the file has no scalers</text>\n", c.x0, top + 16);
    fputs("</svg>\n", f);
    free(layouts);
    return 0;
}
