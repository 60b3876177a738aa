/*
 * sqs_parse.c - a small, strict XML reader for the two replies the sqs trigger expects from the
 * SQS Query API (see sqs_parse.h). It is not a general XML parser: it walks elements, checks
 * that they balance, decodes text, and keeps the text of the few elements it knows by their
 * place (Attribute/Name, Attribute/Value, Error/Code, Error/Message). Namespace prefixes are
 * ignored when matching names.
 */
#define _POSIX_C_SOURCE 200809L
#include "sqs_parse.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define MAX_DEPTH 32
#define MAX_NAME 64
#define MAX_TEXT 512

typedef struct xml_reader {
    const char *p, *end, *start;
    char *err;
    size_t errlen;
    char stack[MAX_DEPTH][MAX_NAME]; /* open elements' local names */
    int depth;
    char text[MAX_TEXT]; /* the current element's text so far */
    size_t textlen;
    int text_overflow;
} xml_reader;

static int line_of(const xml_reader *x)
{
    int line = 1;
    for (const char *q = x->start; q < x->p && q < x->end; q++)
        line += *q == '\n';
    return line;
}

static int bad(xml_reader *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(xml_reader *x, const char *fmt, ...)
{
    int n = snprintf(x->err, x->errlen, "line %d: ", line_of(x));
    if (n > 0 && (size_t)n < x->errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err + n, x->errlen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static int starts(const xml_reader *x, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(x->end - x->p) >= n && memcmp(x->p, s, n) == 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static int name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static int name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Skip to just after the terminator; -EINVAL when it never comes. */
static int skip_past(xml_reader *x, const char *term, const char *what)
{
    size_t tl = strlen(term);
    while ((size_t)(x->end - x->p) >= tl) {
        if (memcmp(x->p, term, tl) == 0) {
            x->p += tl;
            return 0;
        }
        x->p++;
    }
    return bad(x, "unterminated %s", what);
}

/* An element name at x->p; its local part (after any prefix) copied into out. */
static int read_name(xml_reader *x, char *out)
{
    const char *b = x->p;
    if (x->p >= x->end || !name_start(*x->p))
        return bad(x, "expected an element name");
    while (x->p < x->end && name_char(*x->p))
        x->p++;
    const char *colon = memchr(b, ':', (size_t)(x->p - b));
    const char *local = colon ? colon + 1 : b;
    size_t n = (size_t)(x->p - local);
    if (n == 0 || n >= MAX_NAME)
        return bad(x, "an element name that is empty or longer than %d characters", MAX_NAME - 1);
    memcpy(out, local, n);
    out[n] = '\0';
    return 0;
}

static void text_put(xml_reader *x, const char *s, size_t n)
{
    if (x->textlen + n >= MAX_TEXT) {
        x->text_overflow = 1;
        n = MAX_TEXT - 1 - x->textlen;
    }
    memcpy(x->text + x->textlen, s, n);
    x->textlen += n;
    x->text[x->textlen] = '\0';
}

static void put_utf8(xml_reader *x, uint32_t cp)
{
    char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xc0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xe0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        b[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    text_put(x, b, n);
}

/* An entity reference at x->p ('&'): the predefined five and &#N; / &#xH; only. */
static int read_entity(xml_reader *x)
{
    static const struct {
        const char *name;
        char c;
    } named[] = {{"lt;", '<'}, {"gt;", '>'}, {"amp;", '&'}, {"quot;", '"'}, {"apos;", '\''}};
    x->p++;
    for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++) {
        if (starts(x, named[i].name)) {
            x->p += strlen(named[i].name);
            text_put(x, &named[i].c, 1);
            return 0;
        }
    }
    if (x->p < x->end && *x->p == '#') {
        x->p++;
        int hex = x->p < x->end && *x->p == 'x';
        if (hex)
            x->p++;
        uint32_t cp = 0;
        int n = 0;
        while (x->p < x->end && *x->p != ';' && n < 8) {
            char c = *x->p;
            int d = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (d < 0)
                return bad(x, "a bad character reference");
            cp = cp * (hex ? 16u : 10u) + (uint32_t)d;
            x->p++;
            n++;
        }
        if (n == 0 || x->p >= x->end || *x->p != ';' || cp == 0 || cp > 0x10ffff ||
            (cp >= 0xd800 && cp <= 0xdfff))
            return bad(x, "a bad character reference");
        x->p++;
        put_utf8(x, cp);
        return 0;
    }
    return bad(x, "an unknown entity (only &lt; &gt; &amp; &quot; &apos; and &#N; are read)");
}

/* Skip a start tag's attributes up to '>' or '/>'; *empty = 1 for '/>'. */
static int skip_attributes(xml_reader *x, int *empty)
{
    while (x->p < x->end) {
        char c = *x->p;
        if (c == '>') {
            x->p++;
            *empty = 0;
            return 0;
        }
        if (c == '/' && x->p + 1 < x->end && x->p[1] == '>') {
            x->p += 2;
            *empty = 1;
            return 0;
        }
        if (c == '"' || c == '\'') {
            const char *q = memchr(x->p + 1, c, (size_t)(x->end - x->p - 1));
            if (!q)
                return bad(x, "an unterminated attribute value");
            x->p = q + 1;
            continue;
        }
        if (c == '<')
            return bad(x, "'<' inside a tag");
        x->p++;
    }
    return bad(x, "an unterminated tag");
}

typedef struct reply_state {
    sb_sqs_reply *out;
    int root_seen;
    char attr_name[128], attr_value[128];
    int have_name, have_value;
} reply_state;

static const char *parent(const xml_reader *x)
{
    return x->depth >= 2 ? x->stack[x->depth - 2] : "";
}

/* The element on top of the stack closes with the text it held. */
static int element_closed(xml_reader *x, reply_state *st)
{
    const char *name = x->stack[x->depth - 1];
    sb_sqs_reply *r = st->out;
    int in_attr = strcmp(parent(x), "Attribute") == 0;
    int in_error = strcmp(parent(x), "Error") == 0;
    if (in_attr && (strcmp(name, "Name") == 0 || strcmp(name, "Value") == 0)) {
        if (x->text_overflow || x->textlen >= sizeof(st->attr_name))
            return bad(x, "<%s> is longer than %zu bytes", name, sizeof(st->attr_name) - 1);
        if (name[0] == 'N') {
            memcpy(st->attr_name, x->text, x->textlen + 1);
            st->have_name = 1;
        } else {
            memcpy(st->attr_value, x->text, x->textlen + 1);
            st->have_value = 1;
        }
    } else if (strcmp(name, "Attribute") == 0) {
        if (!st->have_name || !st->have_value)
            return bad(x, "an <Attribute> without <Name> or <Value>");
        if (r->nattrs == SB_SQS_MAX_ATTRS)
            return bad(x, "more than %d attributes", SB_SQS_MAX_ATTRS);
        memcpy(r->attrs[r->nattrs].name, st->attr_name, sizeof(st->attr_name));
        memcpy(r->attrs[r->nattrs].value, st->attr_value, sizeof(st->attr_value));
        r->nattrs++;
        st->have_name = st->have_value = 0;
    } else if (in_error && strcmp(name, "Code") == 0) {
        if (x->text_overflow || x->textlen >= sizeof(r->code))
            return bad(x, "<Code> is longer than %zu bytes", sizeof(r->code) - 1);
        memcpy(r->code, x->text, x->textlen + 1);
    } else if (in_error && strcmp(name, "Message") == 0) {
        /* cut, never refused */
        size_t n = x->textlen < sizeof(r->message) - 1 ? x->textlen : sizeof(r->message) - 1;
        memcpy(r->message, x->text, n);
        r->message[n] = '\0';
    }
    return 0;
}

static int element_opened(xml_reader *x, reply_state *st)
{
    const char *name = x->stack[x->depth - 1];
    if (x->depth == 1) {
        if (strcmp(name, "GetQueueAttributesResponse") == 0)
            st->out->is_error = 0;
        else if (strcmp(name, "ErrorResponse") == 0)
            st->out->is_error = 1;
        else
            return bad(x, "<%s> is neither a GetQueueAttributesResponse nor an ErrorResponse",
                       name);
        st->root_seen = 1;
    }
    if (strcmp(name, "Attribute") == 0)
        st->have_name = st->have_value = 0;
    x->textlen = 0;
    x->text[0] = '\0';
    x->text_overflow = 0;
    return 0;
}

static int parse(xml_reader *x, reply_state *st)
{
    int rc;
    while (x->p < x->end && is_space(*x->p))
        x->p++;
    if (starts(x, "<?xml") && (rc = skip_past(x, "?>", "XML declaration")))
        return rc;
    int root_done = 0;
    while (x->p < x->end) {
        char c = *x->p;
        if (c == '\0')
            return bad(x, "a NUL byte");
        if (c != '<') {
            if (x->depth == 0) {
                if (!is_space(c))
                    return bad(x, root_done ? "text after the root element"
                                            : "text before the root element");
                x->p++;
                continue;
            }
            if (c == '&') {
                if ((rc = read_entity(x)))
                    return rc;
                continue;
            }
            const char *q = x->p;
            while (q < x->end && *q != '<' && *q != '&' && *q != '\0')
                q++;
            text_put(x, x->p, (size_t)(q - x->p));
            x->p = q;
            continue;
        }
        if (starts(x, "<!--")) {
            if ((rc = skip_past(x, "-->", "comment")))
                return rc;
            continue;
        }
        if (starts(x, "<!"))
            return bad(x, "a DOCTYPE or CDATA section (not accepted)");
        if (starts(x, "<?")) {
            if ((rc = skip_past(x, "?>", "processing instruction")))
                return rc;
            continue;
        }
        if (starts(x, "</")) {
            x->p += 2;
            char name[MAX_NAME];
            if ((rc = read_name(x, name)))
                return rc;
            while (x->p < x->end && is_space(*x->p))
                x->p++;
            if (x->p >= x->end || *x->p != '>')
                return bad(x, "an unterminated end tag </%s", name);
            x->p++;
            if (x->depth == 0)
                return bad(x, "</%s> closes nothing", name);
            if (strcmp(name, x->stack[x->depth - 1]) != 0)
                return bad(x, "</%s> closes <%s>", name, x->stack[x->depth - 1]);
            if ((rc = element_closed(x, st)))
                return rc;
            x->depth--;
            x->textlen = 0;
            x->text[0] = '\0';
            x->text_overflow = 0;
            if (x->depth == 0)
                root_done = 1;
            continue;
        }
        /* a start tag */
        if (root_done)
            return bad(x, "a second root element");
        x->p++;
        if (x->depth == MAX_DEPTH)
            return bad(x, "elements nested deeper than %d", MAX_DEPTH);
        if ((rc = read_name(x, x->stack[x->depth])))
            return rc;
        x->depth++;
        if ((rc = element_opened(x, st)))
            return rc;
        int empty = 0;
        if ((rc = skip_attributes(x, &empty)))
            return rc;
        if (empty) {
            if ((rc = element_closed(x, st)))
                return rc;
            x->depth--;
            if (x->depth == 0)
                root_done = 1;
        }
    }
    if (x->depth > 0)
        return bad(x, "the reply ends inside <%s> (truncated?)", x->stack[x->depth - 1]);
    if (!st->root_seen)
        return bad(x, "no XML element in the reply");
    return 0;
}

int sb_sqs_parse(const char *text, size_t len, sb_sqs_reply *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len > SB_SQS_MAX_REPLY) {
        snprintf(err, errlen, "the reply is larger than %d bytes", SB_SQS_MAX_REPLY);
        return -EINVAL;
    }
    static xml_reader zero;
    xml_reader x = zero;
    x.p = x.start = text;
    x.end = text + len;
    x.err = err;
    x.errlen = errlen;
    reply_state st;
    memset(&st, 0, sizeof(st));
    st.out = out;
    int rc = parse(&x, &st);
    if (rc == 0 && out->is_error && !out->code[0]) {
        snprintf(err, errlen, "an ErrorResponse without <Error><Code>");
        rc = -EINVAL;
    }
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

const char *sb_sqs_attr_value(const sb_sqs_reply *r, const char *name)
{
    for (size_t i = 0; i < r->nattrs; i++)
        if (strcmp(r->attrs[i].name, name) == 0)
            return r->attrs[i].value;
    return NULL;
}
