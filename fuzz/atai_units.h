/*
** atai_units.h: the one place the header and URL harnesses reach into
** atai.core. It includes the whole module source (its luaopen_ renamed so
** the harness exports nothing of it) and wraps the functions under test in
** units_* adapters; the harnesses call only those. When the engine moves
** into other files, repoint the #include and the adapters, not the harnesses.
*/
#ifndef ATAI_FUZZ_UNITS_H
#define ATAI_FUZZ_UNITS_H

#define luaopen_atai_core atai_fuzz_unused_open
#include "../src/core.c"
#undef luaopen_atai_core

/* The part of a client the units use: its base URL and header buffer. */
typedef Client UnitsClient;

/* A zeroed client with `base_url`; units_client_free gives it back. */
static void units_client_init(UnitsClient *c, const char *base_url) {
  memset(c, 0, sizeof *c);
  c->on_retry_ref = LUA_NOREF;
  c->base_url = copy_string(base_url);
}

static void units_client_free(UnitsClient *c) {
  buffer_free(&c->headers);
  buffer_free(&c->url);
  free(c->base_url);
  c->base_url = NULL;
}

/* Hands one header line to the client as libcurl's header callback would;
** returns what the callback returns (len, or 0 to abort). */
static size_t units_header_line(UnitsClient *c, const char *line, size_t len) {
  return on_header((char *)line, 1, len, c);
}

/* The header block the client kept (the last response's). */
static const char *units_header_block(const UnitsClient *c, size_t *len) {
  *len = c->headers.len;
  return c->headers.data;
}

/* Value of header `name` (lowercase) in the kept block, or NULL. */
static const char *units_response_header(UnitsClient *c, const char *name, size_t *len) {
  return response_header(c, name, len);
}

/* Retry-After in seconds (0..RETRY_AFTER_MAX), or -1. */
static double units_retry_after(UnitsClient *c) {
  return retry_after_seconds(c);
}

#define UNITS_RETRY_AFTER_MAX RETRY_AFTER_MAX

/* Pushes the kept headers as a table (lowercase name -> value). */
static void units_push_headers(lua_State *L, UnitsClient *c) {
  push_response_headers(L, c);
}

/* Raises an argument error unless the string at idx is a request path. */
static void units_check_path(lua_State *L, int idx) {
  check_path(L, idx);
}

/* Pushes base_url .. path .. ?query (table at index `query`, or 0); raises
** on query values a URL cannot carry. */
static void units_push_url(lua_State *L, UnitsClient *c, const char *path, int query) {
  push_url(L, c, &c->url, path, query);
}

#endif
