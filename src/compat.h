/*
** compat.h: lets one source, written to the Lua 5.4 C API, build against
** Lua 5.1/LuaJIT, 5.2, 5.3 and 5.4.
**
** Only macros and `static` functions live here, each shim under an
** `atai_compat_` name. Exporting a real `luaL_setfuncs` or `lua_absindex`
** would collide with LuaJIT, which defines some 5.2 functions itself.
*/
#ifndef ATAI_COMPAT_H
#define ATAI_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#ifndef LUA_OK
#define LUA_OK 0
#endif

/* ---- 5.1 and LuaJIT ---------------------------------------------------- */
#if LUA_VERSION_NUM < 502

#define lua_rawlen(L, i) lua_objlen(L, (i))

/* Function-like macros: LuaJIT declares its own `(luaL_setfuncs)` in
** parentheses, which these never rewrite. */
#define lua_absindex(L, i) atai_compat_absindex(L, (i))
#define luaL_setfuncs(L, l, n) atai_compat_setfuncs(L, (l), (n))
#define luaL_setmetatable(L, t) atai_compat_setmetatable(L, (t))

static int atai_compat_absindex(lua_State *L, int i) {
  return (i > 0 || i <= LUA_REGISTRYINDEX) ? i : lua_gettop(L) + 1 + i;
}

/* Registers `l` into the table below the `nup` upvalues on the stack. */
static void atai_compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup + 1, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}

static void atai_compat_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}

#ifndef luaL_newlibtable
#define luaL_newlibtable(L, l) \
  lua_createtable(L, 0, (int)(sizeof(l) / sizeof((l)[0]) - 1))
#endif
#ifndef luaL_newlib
#define luaL_newlib(L, l) (luaL_newlibtable(L, l), luaL_setfuncs(L, l, 0))
#endif

#endif /* < 502 */

/* ---- integers: a subtype only from 5.3 on ------------------------------ */
#if LUA_VERSION_NUM < 503
#define lua_isinteger(L, i) 0
#endif

/* ---- user values: 5.4 allocates them with the userdata ----------------- */
#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata(L, (size))
#endif

/* ---- one user value per userdata: 5.4 has n, 5.2/5.3 one, 5.1 an env -- */
/* atai_getuv pushes it and returns its type; atai_setuv pops a table into it. */
#if LUA_VERSION_NUM >= 504
#define atai_getuv(L, idx) lua_getiuservalue(L, (idx), 1)
#define atai_setuv(L, idx) ((void)lua_setiuservalue(L, (idx), 1))
#elif LUA_VERSION_NUM >= 502
#define atai_getuv(L, idx) (lua_getuservalue(L, (idx)), lua_type(L, -1))
#define atai_setuv(L, idx) lua_setuservalue(L, (idx))
#else
/* 5.1 gives every userdata an environment table (the creator's globals by
** default): ours is marked by the metatable-free table we set, recognised
** by a private key. */
#define atai_getuv(L, idx) atai_compat_getuv(L, (idx))
#define atai_setuv(L, idx) atai_compat_setuv(L, (idx))
static int atai_compat_getuv(lua_State *L, int idx) {
  lua_getfenv(L, idx);
  lua_pushliteral(L, "__atai_uv");
  lua_rawget(L, -2);
  if (lua_toboolean(L, -1)) {
    lua_pop(L, 1);
    return LUA_TTABLE;
  }
  lua_pop(L, 2);
  lua_pushnil(L);
  return LUA_TNIL;
}
static void atai_compat_setuv(lua_State *L, int idx) {
  lua_pushliteral(L, "__atai_uv");
  lua_pushboolean(L, 1);
  lua_rawset(L, -3);
  lua_setfenv(L, idx);
}
#endif

#endif /* ATAI_COMPAT_H */
