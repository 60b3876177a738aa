/*
 * textbuf.c - the growing string of textbuf.h: doubling, never past SIZE_MAX / 2.
 */
#include "textbuf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void textbuf_putn(textbuf *t, const char *s, size_t n)
{
    if (t->oom)
        return;
    if (t->cap - t->len <= n) {
        size_t ncap = t->cap ? t->cap : 256;
        while (ncap - t->len <= n) {
            if (ncap > SIZE_MAX / 2) {
                t->oom = 1;
                return;
            }
            ncap *= 2;
        }
        char *np = realloc(t->p, ncap);
        if (np == NULL) {
            t->oom = 1;
            return;
        }
        t->p = np;
        t->cap = ncap;
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

void textbuf_puts(textbuf *t, const char *s)
{
    textbuf_putn(t, s, strlen(s));
}

void textbuf_printf(textbuf *t, const char *fmt, ...)
{
    char small[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        t->oom = 1;
        return;
    }
    if ((size_t)n < sizeof small) {
        textbuf_putn(t, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (big == NULL) {
        t->oom = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    textbuf_putn(t, big, (size_t)n);
    free(big);
}

void textbuf_reset(textbuf *t)
{
    t->len = 0;
    textbuf_putn(t, "", 0);
}

void textbuf_free(textbuf *t)
{
    free(t->p);
    *t = (textbuf){0};
}
