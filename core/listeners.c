/*
 * listeners.c - listening sockets kept by the daemon across reloads (see listeners.h).
 */
#define _GNU_SOURCE
#include "listeners.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct listener {
    char *id, *addr; /* addr as canonical text ("127.0.0.1:8080", "[::1]:8080") */
    int fd;
    const void **holders;
    size_t nholders, cap;
    struct listener *next;
} listener;

struct listeners {
    listener *head;
};

listeners *listeners_new(void)
{
    return calloc(1, sizeof(listeners));
}

static void listener_free(listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    free(l->holders);
    free(l->id);
    free(l->addr);
    free(l);
}

void listeners_free(listeners *ls)
{
    if (!ls)
        return;
    while (ls->head) {
        listener *l = ls->head;
        ls->head = l->next;
        listener_free(l);
    }
    free(ls);
}

size_t listeners_count(const listeners *ls)
{
    size_t n = 0;
    for (const listener *l = ls ? ls->head : NULL; l; l = l->next)
        n++;
    return n;
}

/* "host:port" or "[v6]:port", numeric, into a socket address and its canonical text. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, socklen_t *len, char *canon,
                      size_t canonlen, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon = strrchr(addr, ':');
    const char *port = colon ? colon + 1 : NULL;
    size_t hlen = colon ? (size_t)(colon - addr) : 0;
    if (hlen >= 2 && addr[0] == '[' && addr[hlen - 1] == ']') {
        addr++;
        hlen -= 2;
    }
    char *end = NULL;
    long p = port && *port ? strtol(port, &end, 10) : -1;
    if (!colon || hlen == 0 || hlen >= sizeof host || !end || *end || p < 1 || p > 65535) {
        snprintf(err, errlen, "listen: expected ADDRESS:PORT (127.0.0.1:8080, [::1]:8080), got "
                              "'%.100s'", addr);
        return -EINVAL;
    }
    memcpy(host, addr, hlen);
    host[hlen] = '\0';
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
        snprintf(err, errlen, "listen: '%.100s' is not a numeric address (no name is looked up)",
                 host);
        return -EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    char text[INET6_ADDRSTRLEN];
    const void *raw = ss->ss_family == AF_INET6
                          ? (const void *)&((struct sockaddr_in6 *)ss)->sin6_addr
                          : (const void *)&((struct sockaddr_in *)ss)->sin_addr;
    inet_ntop(ss->ss_family, raw, text, sizeof text);
    snprintf(canon, canonlen, ss->ss_family == AF_INET6 ? "[%s]:%ld" : "%s:%ld", text, p);
    return 0;
}

static int open_listener(const struct sockaddr_storage *ss, socklen_t len, int backlog,
                         const char *canon, char *err, size_t errlen)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", canon, strerror(e));
        return -e;
    }
    int on = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, backlog > 0 ? backlog : 511) != 0) {
        int e = errno;
        close(fd);
        snprintf(err, errlen, "%s: %s", canon, strerror(e));
        return -e;
    }
    return fd;
}

static int hold(listener *l, const void *owner)
{
    for (size_t i = 0; i < l->nholders; i++)
        if (l->holders[i] == owner)
            return 0;
    if (l->nholders == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 2;
        const void **h = realloc(l->holders, cap * sizeof *h);
        if (!h)
            return -ENOMEM;
        l->holders = h;
        l->cap = cap;
    }
    l->holders[l->nholders++] = owner;
    return 0;
}

/* The address a claim names (parse_addr, and NULL refused), and the socket held for it. */
static int claim_lookup(listeners *ls, const char *id, const char *addr,
                        struct sockaddr_storage *ss, socklen_t *len, char *canon, size_t canonlen,
                        listener **found, char *err, size_t errlen)
{
    if (!addr) {
        snprintf(err, errlen, "listen: no address");
        return -EINVAL;
    }
    int rc = parse_addr(addr, ss, len, canon, canonlen, err, errlen);
    if (rc)
        return rc;
    listener *l = ls->head;
    while (l && !(strcmp(l->id, id) == 0 && strcmp(l->addr, canon) == 0))
        l = l->next;
    *found = l;
    return 0;
}

int listeners_claim(listeners *ls, const void *owner, const char *id, const char *addr,
                    int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char canon[INET6_ADDRSTRLEN + 16];
    listener *l = NULL;
    int rc = claim_lookup(ls, id, addr, &ss, &len, canon, sizeof canon, &l, err, errlen);
    if (rc)
        return rc;
    if (!l) {
        l = calloc(1, sizeof *l);
        if (!l || !(l->id = strdup(id)) || !(l->addr = strdup(canon))) {
            if (l) {
                l->fd = -1;
                listener_free(l);
            }
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        l->fd = open_listener(&ss, len, backlog, canon, err, errlen);
        if (l->fd < 0) {
            rc = l->fd;
            listener_free(l);
            return rc;
        }
        l->next = ls->head;
        ls->head = l;
    }
    int fd = fcntl(l->fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0 || hold(l, owner) != 0) {
        int e = fd < 0 ? errno : ENOMEM;
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "%s: %s", canon, strerror(e));
        if (l->nholders == 0)
            listeners_release_owner(ls, owner); /* a new socket nobody holds goes again */
        return -e;
    }
    return fd;
}

int listeners_claim_for_check(listeners *ls, const void *owner, const char *id,
                              const char *addr, int backlog, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    char canon[INET6_ADDRSTRLEN + 16];
    listener *l = NULL;
    int rc = claim_lookup(ls, id, addr, &ss, &len, canon, sizeof canon, &l, err, errlen);
    if (rc)
        return rc;
    if (l)
        return listeners_claim(ls, owner, id, addr, backlog, err, errlen);
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", canon, strerror(e));
        return -e;
    }
    return fd;
}

void listeners_release_owner(listeners *ls, const void *owner)
{
    if (!ls)
        return;
    for (listener **link = &ls->head; *link;) {
        listener *l = *link;
        for (size_t i = 0; i < l->nholders; i++)
            if (l->holders[i] == owner) {
                l->holders[i] = l->holders[--l->nholders];
                break;
            }
        if (l->nholders == 0) {
            *link = l->next;
            listener_free(l);
        } else {
            link = &l->next;
        }
    }
}
