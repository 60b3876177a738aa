/*
 * textbuf.h - a growing NUL-terminated string for building messages and canonical text. Running
 * out of memory is sticky (oom is set and later writes do nothing), so a caller builds the whole
 * text and checks once at the end.
 */
#ifndef SCALEBUS_TEXTBUF_H
#define SCALEBUS_TEXTBUF_H

#include <stddef.h>

/* Zero-initialise (textbuf t = {0}); p is NULL until the first write. */
typedef struct textbuf {
    char *p;
    size_t len, cap;
    int oom;
} textbuf;

void textbuf_putn(textbuf *t, const char *s, size_t n);
void textbuf_puts(textbuf *t, const char *s);
void textbuf_printf(textbuf *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the text and keeps the memory; p is "" afterwards (when memory allows). */
void textbuf_reset(textbuf *t);
void textbuf_free(textbuf *t);

#endif
