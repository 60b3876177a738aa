/*
 * dashboard.h - the live dashboard the admin endpoint serves at GET / (docs/admin.md,
 * "Dashboard"): one page, its stylesheet and its script, built into the binary from
 * core/dashboard/page.{html,css,js} (embed.cmake writes them into a C file at build time), and
 * the routes that serve them and a scaler's history.
 *
 * The page and its two files hold no data, so they are served without the token; the data comes
 * from /pipelines and /scalers/ID/history, which want it as every other path does.
 */
#ifndef SCALEBUS_DASHBOARD_H
#define SCALEBUS_DASHBOARD_H

#include <stddef.h>

typedef struct dashboard_asset {
    const char *path;         /* "/", "/dashboard.css", "/dashboard.js" */
    const char *content_type; /* "text/html; charset=utf-8" ... */
    const unsigned char *data;
    size_t len;
} dashboard_asset;

/* Every built-in file (dashboard_assets.c, generated). */
extern const dashboard_asset dashboard_assets[];
extern const size_t dashboard_nassets;

/* The built-in file served at path, or NULL. */
const dashboard_asset *dashboard_asset_of(const char *path);

typedef enum dashboard_route_kind {
    DASHBOARD_NONE = 0, /* not the dashboard's: the admin's 404 */
    DASHBOARD_ASSET,
    DASHBOARD_HISTORY,
    DASHBOARD_BAD_METHOD /* 405, Allow: GET, HEAD */
} dashboard_route_kind;

#define DASHBOARD_ID_MAX 256

typedef struct dashboard_route {
    dashboard_route_kind kind;
    const dashboard_asset *asset;   /* DASHBOARD_ASSET */
    char id[DASHBOARD_ID_MAX + 1]; /* DASHBOARD_HISTORY: the scaler's id */
} dashboard_route;

/* The route of a method and path (no query); ids are [A-Za-z0-9_.-]+, 1 to 256 bytes. */
void dashboard_route_of(const char *method, const char *path, dashboard_route *out);

/* The headers every dashboard file goes out with (a strict Content-Security-Policy: the page
 * runs its own script only, reaches its own origin only). */
#define DASHBOARD_CSP                                                                          \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "            \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

#endif
