/*
** atai_units.h: the one place the header and URL harnesses reach into
** atai.core. It includes the layers they test, the way src/core.c includes
** them (one translation unit, so their static functions are callable):
** the plain-C bottom, args.c and transfer.c (libcurl's header callback),
** nothing above (no engine, no delivery, no bindings), and wraps the
** functions under test in units_* adapters; the harnesses call only those.
** When a function moves to another file, repoint the #include and the
** adapters, not the harnesses (scripts/callgraph.lua lists the layers).
*/
#ifndef ATAI_FUZZ_UNITS_H
#define ATAI_FUZZ_UNITS_H

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <poll.h>

#include <curl/curl.h>

#include "../src/compat.h"

#include "../src/util.c"
#include "../src/buffer.c"
#include "../src/json.c"
#include "../src/error.c"
#include "../src/atai.h"
#include "../src/headers.c"
#include "../src/args.c"
#include "../src/transfer.c"

/* What the units use: a client (base URL) and one transfer of it (its
** response-header buffer and URL), as the engine pairs them. */
typedef struct UnitsClient {
  Client c;
  Transfer t;
  Exchange x; /* t's request part (t.x) */
} UnitsClient;

/* A zeroed client with `base_url`; units_client_free gives it back. */
static void units_client_init(UnitsClient *u, const char *base_url) {
  size_t n = strlen(base_url);
  memset(u, 0, sizeof *u);
  u->c.on_retry_ref = u->c.on_exchange_ref = u->c.queue_ref = LUA_NOREF;
  u->c.base_url = (char *)malloc(n + 1);
  if (u->c.base_url) memcpy(u->c.base_url, base_url, n + 1);
  u->c.base_url_len = n;
  u->c.max_response_bytes = 64 * 1024 * 1024;
  u->t.client = &u->c;
  u->t.x = &u->x;
  u->t.anchor = LUA_NOREF;
}

static void units_client_free(UnitsClient *u) {
  buffer_free(&u->t.x->resp_headers);
  buffer_free(&u->t.x->url);
  free(u->c.base_url);
  u->c.base_url = NULL;
}

/* Hands one header line to the transfer as libcurl's header callback
** would; returns what the callback returns (len, or 0 to abort). */
static size_t units_header_line(UnitsClient *u, const char *line, size_t len) {
  return on_header((char *)line, 1, len, &u->t);
}

/* The header block the transfer kept (the last response's). */
static const char *units_header_block(const UnitsClient *u, size_t *len) {
  *len = u->t.x->resp_headers.len;
  return u->t.x->resp_headers.data;
}

/* Value of header `name` (lowercase) in the kept block, or NULL. */
static const char *units_response_header(UnitsClient *u, const char *name, size_t *len) {
  return find_header(&u->t.x->resp_headers, name, len);
}

/* Retry-After in seconds (0..RETRY_AFTER_MAX), or -1. */
static double units_retry_after(UnitsClient *u) {
  return retry_after_seconds(&u->t.x->resp_headers);
}

#define UNITS_RETRY_AFTER_MAX RETRY_AFTER_MAX

/* Pushes the kept headers as a table (lowercase name -> value). */
static void units_push_headers(lua_State *L, UnitsClient *u) {
  push_response_headers(L, &u->t.x->resp_headers);
}

/* Raises an argument error unless the string at idx is a request path. */
static void units_check_path(lua_State *L, int idx) {
  check_path(L, idx);
}

/* Pushes base_url .. path .. ?query (table at index `query`, or 0); raises
** on query values a URL cannot carry. */
static void units_push_url(lua_State *L, UnitsClient *u, const char *path, int query) {
  build_url(L, &u->c, &u->t, path, strlen(path), query, "request");
  lua_pushlstring(L, u->t.x->url.data, u->t.x->url.len);
}

#endif
