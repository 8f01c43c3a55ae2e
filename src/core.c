
/*
** core.c: atai.core, the C half of atai (the Archetype AI Batch API client):
** the module room. It builds the metatables and the module table, and holds
** the module-level functions.
**
** Unity build: this file includes the other rooms (see atai.h for the map),
** so that everything but luaopen_atai_core stays static. Configuration
** policy (defaults, environment, endpoint and proxy checks, bounds) lives in
** lua/atai/config.lua, which hands new_client a resolved table.
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <float.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <curl/curl.h>

#include "compat.h"

/* The layers, bottom first: each file uses only the files above it here
** (scripts/callgraph.lua checks it; atai.h lists what each file offers). */
#include "util.c"     /* 0 plain C: clock, ASCII case */
#include "buffer.c"   /* 0 plain C: growable byte buffers */
#include "json.c"     /* 0 JSON <-> Lua values */
#include "error.c"    /* 0 the error table, kinds of statuses and curl codes */
#include "atai.h"     /*   the shared types (Client, Transfer) */
#include "headers.c"  /* 0 response headers, Retry-After */
#include "crc32c.c"   /* 0 CRC-32C */
#include "base64.c"   /* 0 base64 */
#include "args.c"     /* 0 argument checks, URL and header building */
#include "transfer.c" /* 1 one request: its state, libcurl options, callbacks */
#include "stream.c"   /* 1 a transfer's files and form */
#include "attempt.c"  /* 1 one attempt: its options, the retry policy */
#include "engine.c"   /* 2 multi handle, pool, sockets, due times */
#include "delivery.c" /* 3 results into Lua values, callback queue, step */
#include "handle.c"   /* 4 bindings: atai.Handle */
#include "client.c"   /* 4 bindings: atai.Client and its async view */
#include "files.c"    /* 4 bindings: streams, mkdir, stat */


/* ======================================================================
** Module functions
** ====================================================================== */

/* core.sleep(seconds): blocks the calling thread; returns early on a signal. */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  luaL_argcheck(L, s >= 0 && s <= 86400 * 365, 1, "seconds: number from 0 expected");
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - (lua_Number)ts.tv_sec) * 1e9);
  nanosleep(&ts, NULL);
  return 0;
}

/* core.now() -> seconds on a monotonic clock, for timeouts and intervals. */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)monotonic_seconds());
  return 1;
}

/* core.id_problem(v) -> nil when v is a valid id, else the reason: lets the
** Lua layer check ids by the same rule before it builds a path. */
static int l_id_problem(lua_State *L) {
  size_t len;
  const char *id;
  if (lua_type(L, 1) != LUA_TSTRING) {
    lua_pushfstring(L, "string expected, got %s", luaL_typename(L, 1));
    return 1;
  }
  id = lua_tolstring(L, 1, &len);
  if (id_problem(L, id, len) == NULL) lua_pushnil(L);
  return 1;
}

/* A file descriptor argument: 0, 1 or 2 (the CLI's standard streams). */
static int check_std_fd(lua_State *L) {
  lua_Integer fd = luaL_checkinteger(L, 1);
  luaL_argcheck(L, fd >= 0 && fd <= 2, 1, "fd: 0, 1 or 2 expected");
  return (int)fd;
}

/* core.isatty(fd) -> whether standard stream fd (0, 1, 2) is a terminal. */
static int l_isatty(lua_State *L) {
  lua_pushboolean(L, isatty(check_std_fd(L)) == 1);
  return 1;
}

/* core.terminal_size(fd) -> columns, rows of the terminal on fd (0, 1, 2),
** or nil when fd is no terminal or the size is unknown (TIOCGWINSZ). */
static int l_terminal_size(lua_State *L) {
  struct winsize ws;
  int fd = check_std_fd(L);
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushinteger(L, (lua_Integer)ws.ws_col);
  lua_pushinteger(L, (lua_Integer)ws.ws_row);
  return 2;
}

/* core.json_encode(value [, sorted]) -> JSON text; raises on values JSON
** cannot hold. `sorted`: object keys in byte order (stable output). The
** text is built in a userdata buffer, so an error leaks nothing. */
static int l_json_encode(lua_State *L) {
  Buffer *b;
  lua_settop(L, 2);
  b = (Buffer *)lua_newuserdatauv(L, sizeof *b, 0);
  memset(b, 0, sizeof *b);
  luaL_setmetatable(L, "atai.Buffer");
  json_encode_sorted(L, 1, b, "value", lua_toboolean(L, 2));
  lua_pushlstring(L, b->data ? b->data : "", b->len);
  buffer_free(b);
  return 1;
}

static int l_buffer_gc(lua_State *L) {
  buffer_free((Buffer *)lua_touserdata(L, 1));
  return 0;
}

/* core.in_run() -> whether the running coroutine was started by atai.run. */
static int l_in_run(lua_State *L) {
  lua_pushboolean(L, in_run(L));
  return 1;
}

/* core.drain_global(): runs the callbacks of ownerless handles (atai.run). */
static int l_drain_global(lua_State *L) {
  drain(L, NULL, 0);
  return 0;
}

/* core.version_info() -> {version, curl_version, ssl_version, libz_version,
** http2, brotli, zstd, json, cainfo, capath}: for bug reports and the User-Agent. */
static int l_version_info(lua_State *L) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
  lua_newtable(L);
  lua_pushliteral(L, ATAI_VERSION);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, v->version);
  lua_setfield(L, -2, "curl_version");
  lua_pushstring(L, v->ssl_version ? v->ssl_version : "none");
  lua_setfield(L, -2, "ssl_version");
  if (v->libz_version) {
    lua_pushstring(L, v->libz_version);
    lua_setfield(L, -2, "libz_version");
  }
#ifdef CURL_VERSION_HTTP2
  lua_pushboolean(L, (v->features & CURL_VERSION_HTTP2) != 0);
  lua_setfield(L, -2, "http2");
#endif
#ifdef CURL_VERSION_BROTLI
  lua_pushboolean(L, (v->features & CURL_VERSION_BROTLI) != 0);
  lua_setfield(L, -2, "brotli");
#endif
#ifdef CURL_VERSION_ZSTD
  lua_pushboolean(L, (v->features & CURL_VERSION_ZSTD) != 0);
  lua_setfield(L, -2, "zstd");
#endif
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_SOURCE_KEY);
  lua_setfield(L, -2, "json");
#ifdef CURLVERSION_NINTH
  if (v->age >= CURLVERSION_NINTH) {
    if (v->cainfo) {
      lua_pushstring(L, v->cainfo);
      lua_setfield(L, -2, "cainfo");
    }
    if (v->capath) {
      lua_pushstring(L, v->capath);
      lua_setfield(L, -2, "capath");
    }
  }
#endif
  return 1;
}

static const luaL_Reg module_functions[] = {
  {"new_client", l_new_client},
  {"new_error", l_new_error},
  {"sleep", l_sleep},
  {"now", l_now},
  {"version_info", l_version_info},
  {"id_problem", l_id_problem},
  {"isatty", l_isatty},
  {"terminal_size", l_terminal_size},
  {"json_encode", l_json_encode},
  {"in_run", l_in_run},
  {"defer", l_client_defer},
  {"drain_global", l_drain_global},
  {NULL, NULL}
};

/* Pushes the lua-cjson module: `require "cjson"`, or, inside Neovim when
** no cjson module can be required, the lua-cjson Neovim embeds (vim.json).
** Records which one (version_info().json) and its null sentinel (vim.json
** decodes null to vim.NIL, not a NULL light userdata) in the registry. */
static void push_cjson_module(lua_State *L) {
  const char *source = "lua-cjson";
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* stack: message */
    lua_getglobal(L, "vim");
    if (lua_type(L, -1) == LUA_TTABLE) lua_getfield(L, -1, "json");
    if (lua_type(L, -1) != LUA_TTABLE) {
      lua_settop(L, -2 - (lua_type(L, -2) == LUA_TTABLE));
      lua_error(L); /* require's own message */
    }
    lua_replace(L, -3);
    lua_pop(L, 1);
    source = "vim.json (Neovim's lua-cjson)";
  }
  lua_getfield(L, -1, "_VERSION");
  lua_pushfstring(L, "%s %s", source, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_SOURCE_KEY);
  lua_pop(L, 1);
  lua_getfield(L, -1, "null");
  lua_setfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
}

/* Pushes the decode function of a private cjson instance, configured for
** strict JSON; our settings never touch the user's `require "cjson"`. */
static void push_cjson_decode(lua_State *L) {
  push_cjson_module(L);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* require "atai.core". Besides the module, it leaves the private table at
** package.loaded["atai.core.private"]: what the Lua layer needs from C and
** users must not call (call, start, step, defer, ops, time_scale, check,
** is_closed, settings, on_work for clients; on_done, wait, internal,
** client_of, progress for handles; stream). Objects users hold carry only
** public methods. The Lua modules take it once, as an upvalue; tests of
** internals require it too. It is rebuilt, with the module, by every
** fresh require "atai.core". */
int luaopen_atai_core(lua_State *L) {
  int decode, module, private;
  /* Reference-counted inside libcurl (thread-safe from 7.84 on). */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  error_open(L);
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, "atai.Buffer");
  lua_pushcfunction(L, l_buffer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, QUEUE_GLOBAL);
  lua_newtable(L); /* coroutines of atai.run: weak keys */
  lua_createtable(L, 0, 1);
  lua_pushliteral(L, "k");
  lua_setfield(L, -2, "__mode");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, RUNS_KEY);
  push_cjson_decode(L); /* the upvalue shared by every function below */
  decode = lua_gettop(L);

  lua_newtable(L);
  module = lua_gettop(L);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, module_functions, MODULE_UPVALUES);

  lua_newtable(L); /* the private table: see the comment above */
  private = lua_gettop(L);
  handle_open(L, module, decode, private); /* handle.c: atai.Handle */
  client_open(L, module, decode, private); /* client.c: atai.Client, async view */
  files_open(L, module, decode, private);
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED"); /* package.loaded, 5.1 to 5.4 */
  lua_pushvalue(L, private);
  lua_setfield(L, -2, "atai.core.private");
  lua_pop(L, 1); /* files.c: _stream, _progress, mkdir, stat */

  lua_pushliteral(L, ATAI_VERSION);
  lua_setfield(L, module, "_VERSION");
  lua_pushliteral(L, LUA_VERSION); /* the Lua this module was compiled for */
  lua_setfield(L, module, "_LUA_VERSION");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, module, "null");
  luaL_getmetatable(L, ARRAY_MT);
  lua_setfield(L, module, "array_mt");
  luaL_getmetatable(L, ERROR_MT);
  lua_setfield(L, module, "error_mt");
  lua_getfield(L, LUA_REGISTRYINDEX, RUNS_KEY);
  lua_setfield(L, module, "runs");
  lua_settop(L, module);
  return 1;
}
