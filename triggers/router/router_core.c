/*
 * router_core.c - the router's pure parts: service selection, header rewriting, balancing.
 * See router_core.h.
 */
#include "router_core.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void rt_buf_put(rt_buf *b, const char *s, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

void rt_buf_puts(rt_buf *b, const char *s)
{
    rt_buf_put(b, s, strlen(s));
}

void rt_buf_free(rt_buf *b)
{
    free(b->p);
    *b = (rt_buf){0};
}

/* host without its ":port" (and without the brackets of an IPv6 literal), into out. */
static void host_only(const char *host, char *out, size_t outlen)
{
    size_t n = strlen(host);
    const char *start = host;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        start = host + 1;
        n = close ? (size_t)(close - start) : n - 1;
    } else {
        const char *colon = strchr(host, ':');
        if (colon && !strchr(colon + 1, ':'))
            n = (size_t)(colon - host);
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, start, n);
    out[n] = '\0';
    /* "example.com." names the same host */
    if (n > 0 && out[n - 1] == '.')
        out[n - 1] = '\0';
}

int rt_select_service(const rt_service_names *svcs, size_t n, const char *service,
                      const char *host)
{
    if (service && *service) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(svcs[i].name, service) == 0)
                return (int)i;
        return -1;
    }
    if (!host || !*host)
        return -1;
    char bare[256];
    host_only(host, bare, sizeof bare);
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < svcs[i].nhosts; j++) {
            const char *h = svcs[i].hosts[j];
            if (strcasecmp(h, host) == 0 || strcasecmp(h, bare) == 0)
                return (int)i;
        }
    return -1;
}

/* True when the comma-separated token list has token (without case). */
static bool list_has(const char *list, const char *token)
{
    size_t tl = strlen(token);
    const char *p = list;
    while (p && *p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == tl && strncasecmp(p, token, tl) == 0)
            return true;
        p = end;
    }
    return false;
}

/* Header kinds kept on the stack for the first fields (more are classified again). */
#define RT_KINDS_MAX 128

/* The header names the router acts on, recognised by one comparison each: by their length,
 * then their first letter (a proxy looks at every field of every request and answer; a loop of
 * fifteen strcasecmp per field cost more than parsing it). */
typedef enum hdr_kind {
    HK_OTHER,
    HK_HOP, /* hop-by-hop by definition (RFC 9110 7.6.1), Connection aside */
    HK_CONNECTION,
    HK_CONTENT_LENGTH,
    HK_EXPECT,
    HK_SERVICE, /* X-Scalebus-Service */
    HK_XFP,
    HK_XFF,
    HK_VIA,
    HK_HOST
} hdr_kind;

static hdr_kind hdr_classify(const char *name)
{
    size_t len = strlen(name);
    const char *want = NULL;
    hdr_kind kind = HK_OTHER;
    int first = tolower((unsigned char)name[0]);
    switch (len) {
    case 2: want = "te", kind = HK_HOP; break;
    case 3: want = "via", kind = HK_VIA; break;
    case 4: want = "host", kind = HK_HOST; break;
    case 6: want = "expect", kind = HK_EXPECT; break;
    case 7:
        if (first == 't')
            want = "trailer", kind = HK_HOP;
        else
            want = "upgrade", kind = HK_HOP;
        break;
    case 10:
        if (first == 'c')
            want = "connection", kind = HK_CONNECTION;
        else
            want = "keep-alive", kind = HK_HOP;
        break;
    case 14: want = "content-length", kind = HK_CONTENT_LENGTH; break;
    case 15: want = "x-forwarded-for", kind = HK_XFF; break;
    case 16: want = "proxy-connection", kind = HK_HOP; break;
    case 17:
        if (first == 't')
            want = "transfer-encoding", kind = HK_HOP;
        else
            want = "x-forwarded-proto", kind = HK_XFP;
        break;
    case 18:
        if (first == 'p')
            want = "proxy-authenticate", kind = HK_HOP;
        else
            want = "x-scalebus-service", kind = HK_SERVICE;
        break;
    case 19: want = "proxy-authorization", kind = HK_HOP; break;
    default: return HK_OTHER;
    }
    return strcasecmp(name, want) == 0 ? kind : HK_OTHER;
}

static bool hop_by_hop(const char *name, hdr_kind kind, const char *connection)
{
    if (kind == HK_HOP || kind == HK_CONNECTION)
        return true;
    return connection && list_has(connection, name);
}

bool rt_hop_by_hop(const char *name, const char *connection)
{
    return hop_by_hop(name, hdr_classify(name), connection);
}

bool rt_idempotent(const char *method)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(method, ok[i]) == 0)
            return true;
    return false;
}

void rt_peer_ip(const char *peer, char *out, size_t outlen)
{
    char tmp[128];
    host_only(peer ? peer : "", tmp, sizeof tmp);
    snprintf(out, outlen, "%s", tmp);
}


static void put_header(rt_buf *b, const char *name, const char *value)
{
    rt_buf_puts(b, name);
    rt_buf_put(b, ": ", 2);
    rt_buf_puts(b, value);
    rt_buf_put(b, "\r\n", 2);
}

void rt_request_head(rt_buf *b, const char *method, const char *target, int version_minor,
                     const rt_header *h, size_t n, const char *default_host,
                     const char *client_ip, const char *proto, rt_body_kind body,
                     int64_t content_length)
{
    rt_buf_puts(b, method);
    rt_buf_put(b, " ", 1);
    rt_buf_puts(b, target);
    rt_buf_puts(b, " HTTP/1.1\r\n");
    hdr_kind kinds[RT_KINDS_MAX];
    const char *connection = NULL;
    bool has_host = false;
    for (size_t i = 0; i < n; i++) {
        hdr_kind k = hdr_classify(h[i].name);
        if (i < RT_KINDS_MAX)
            kinds[i] = k;
        if (k == HK_CONNECTION && !connection)
            connection = h[i].value;
        has_host = has_host || k == HK_HOST;
    }
    if (!has_host)
        put_header(b, "Host", default_host);
    rt_buf xff = {0}, via = {0};
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name;
        hdr_kind k = i < RT_KINDS_MAX ? kinds[i] : hdr_classify(name);
        if (hop_by_hop(name, k, connection) || k == HK_CONTENT_LENGTH || k == HK_EXPECT ||
            k == HK_SERVICE || k == HK_XFP)
            continue;
        /* several fields of one name are one comma-separated list */
        if (k == HK_XFF || k == HK_VIA) {
            rt_buf *into = k == HK_XFF ? &xff : &via;
            if (into->len)
                rt_buf_put(into, ", ", 2);
            rt_buf_puts(into, h[i].value);
            continue;
        }
        put_header(b, name, h[i].value);
    }
    if (xff.len)
        rt_buf_put(&xff, ", ", 2);
    rt_buf_puts(&xff, client_ip);
    if (via.len)
        rt_buf_put(&via, ", ", 2);
    rt_buf_puts(&via, version_minor == 0 ? "1.0 scalebus" : "1.1 scalebus");
    /* an empty buffer has no storage yet: an empty client address leaves xff without one */
    put_header(b, "X-Forwarded-For", xff.oom || !xff.p ? client_ip : xff.p);
    put_header(b, "X-Forwarded-Proto", proto);
    put_header(b, "Via", via.oom || !via.p ? "1.1 scalebus" : via.p);
    rt_buf_free(&xff);
    rt_buf_free(&via);
    if (body == RT_BODY_LENGTH) {
        char len[32];
        snprintf(len, sizeof len, "%lld", (long long)content_length);
        put_header(b, "Content-Length", len);
    } else if (body == RT_BODY_CHUNKED) {
        put_header(b, "Transfer-Encoding", "chunked");
    }
    rt_buf_put(b, "\r\n", 2);
}

size_t rt_response_headers(const rt_header *h, size_t n, rt_header *out, char *via_buf,
                           size_t via_len)
{
    hdr_kind kinds[RT_KINDS_MAX];
    const char *connection = NULL;
    for (size_t i = 0; i < n; i++) {
        hdr_kind kind = hdr_classify(h[i].name);
        if (i < RT_KINDS_MAX)
            kinds[i] = kind;
        if (kind == HK_CONNECTION && !connection)
            connection = h[i].value;
    }
    size_t k = 0, via_at = (size_t)-1;
    size_t used = 0;
    via_buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *name = h[i].name;
        hdr_kind kind = i < RT_KINDS_MAX ? kinds[i] : hdr_classify(name);
        if (hop_by_hop(name, kind, connection) || kind == HK_CONTENT_LENGTH)
            continue;
        if (kind == HK_VIA) {
            int w = snprintf(via_buf + used, via_len - used, "%s, ", h[i].value);
            if (w > 0 && (size_t)w < via_len - used)
                used += (size_t)w;
            if (via_at == (size_t)-1)
                via_at = k++;
            continue;
        }
        out[k++] = h[i];
    }
    snprintf(via_buf + used, via_len - used, "1.1 scalebus");
    if (via_at == (size_t)-1)
        via_at = k++;
    out[via_at] = (rt_header){"Via", via_buf};
    return k;
}

void rt_resp_reset(rt_resp_head *h)
{
    h->buf.len = 0;
    h->buf.oom = false;
    h->n = 0;
    h->last = 0;
}

int rt_resp_field(rt_resp_head *h, const char *at, size_t len)
{
    if (h->last != 1) { /* a new field: end the previous value */
        if (h->n >= RT_MAX_RESP_HEADERS)
            return -1;
        if (h->n > 0)
            rt_buf_put(&h->buf, "", 1);
        h->name_off[h->n] = h->buf.len;
        h->value_off[h->n] = (size_t)-1;
        h->n++;
        h->last = 1;
    }
    rt_buf_put(&h->buf, at, len);
    return h->buf.oom || h->buf.len > RT_MAX_RESP_HEAD_BYTES ? -1 : 0;
}

int rt_resp_value(rt_resp_head *h, const char *at, size_t len)
{
    if (h->n == 0)
        return -1;
    if (h->last != 2) { /* end the name */
        rt_buf_put(&h->buf, "", 1);
        h->value_off[h->n - 1] = h->buf.len;
        h->last = 2;
    }
    rt_buf_put(&h->buf, at, len);
    return h->buf.oom || h->buf.len > RT_MAX_RESP_HEAD_BYTES ? -1 : 0;
}

int rt_resp_finish(rt_resp_head *h, rt_header *out)
{
    /* rt_buf_put of "" with n 1 writes the NUL that ends the last name or value */
    rt_buf_put(&h->buf, "", 1);
    if (h->buf.oom)
        return -1;
    for (size_t i = 0; i < h->n; i++) {
        out[i].name = h->buf.p + h->name_off[i];
        out[i].value = h->value_off[i] == (size_t)-1 ? "" : h->buf.p + h->value_off[i];
    }
    return (int)h->n;
}

int rt_pick(const rt_candidate *c, size_t n, int slots, uint64_t now, size_t start)
{
    int best = -1;
    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        if (!c[i].usable || c[i].in_flight >= slots || c[i].ejected_until > now)
            continue;
        if (best < 0 || c[i].in_flight < c[best].in_flight)
            best = (int)i;
    }
    return best;
}

uint64_t rt_backoff_ms(unsigned n)
{
    uint64_t ms = 1000;
    for (unsigned i = 1; i < n && ms < 30000; i++)
        ms *= 2;
    return ms > 30000 ? 30000 : ms;
}

void rt_clean(const char *s, char *out, size_t outlen)
{
    size_t i = 0;
    for (; s && s[i] && i + 1 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[i] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    out[i] = '\0';
}
