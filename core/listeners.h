/*
 * listeners.h - listening sockets that belong to the daemon, not to a plugin instance
 * (host->listen, host version 4): a router's port stays open while a reload replaces the router,
 * so no connection is refused or lost in between.
 *
 * A socket is keyed by the component's id and its address. Each instance that asks for it holds
 * it and gets its own dup() of the descriptor (its libuv handle may close that at will); the
 * socket itself is closed when the last instance holding it is destroyed: when the component is
 * removed from the file, listens elsewhere after a reload, or the daemon stops. Loop thread only.
 */
#ifndef SB_LISTENERS_H
#define SB_LISTENERS_H

#include <stddef.h>

typedef struct listeners listeners;

listeners *listeners_new(void);
/* Everything closed. NULL: nothing. */
void listeners_free(listeners *ls);

/* The socket for (id, addr), made (bound and listening, non-blocking, close-on-exec) when no
 * instance holds it yet; owner holds it from now on. addr: "127.0.0.1:8080", "[::1]:8080" or
 * "0.0.0.0:8080" (numeric only: no name is looked up). Returns a new descriptor (a dup, the
 * caller's to close), or a negative errno with one line in err ("127.0.0.1:8080: Address already
 * in use", "listen: expected ADDRESS:PORT, got 'x'"). */
int listeners_claim(listeners *ls, const void *owner, const char *id, const char *addr,
                    int backlog, char *err, size_t errlen);

/* The same for a check (`scalebus check`, a plugin's host->request_reload): the socket of
 * (id, addr) when an instance of the running daemon holds it, else a socket of addr's family that
 * is neither bound nor kept. A check says whether the address is well formed; it never binds a
 * port, which the daemon being checked for may hold (or will, once it runs). */
int listeners_claim_for_check(listeners *ls, const void *owner, const char *id,
                              const char *addr, int backlog, char *err, size_t errlen);

/* owner lets go of every socket it holds; sockets nobody holds any more are closed. */
void listeners_release_owner(listeners *ls, const void *owner);

/* How many sockets are open (for tests). */
size_t listeners_count(const listeners *ls);

#endif
