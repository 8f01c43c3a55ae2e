/*
** args.c: argument checks and request building, all before any I/O.
**
** Wrong types or values raise "bad argument #n to 'fname' (...)" at the
** user's line (atai's own Lua frames are skipped, so a call through
** client.async or a module-level twin points where the user wrote it).
** URLs, query strings and header lists are built into buffers the
** transfer userdata owns, so an error raised halfway leaks nothing.
*/

static const char *const request_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

/* Whether a chunk name is one of atai's own Lua files (".../atai/x.lua"). */
static int is_atai_source(const char *source) {
  size_t len = strlen(source), i;
  const char *base;
  if (len < 10 || strcmp(source + len - 4, ".lua") != 0) return 0;
  for (i = len - 4; i > 0 && source[i - 1] != '/' && source[i - 1] != '\\'; i--) {
    char ch = source[i - 1];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return 0;
  }
  base = source + i;
  return base - source >= 6 && (base[-1] == '/' || base[-1] == '\\') &&
         memcmp(base - 5, "atai", 4) == 0 && (base[-6] == '/' || base[-6] == '\\' || base[-6] == '@');
}

/* Pushes "file:line: " of the innermost frame that is the user's code:
** not a C function, not a tail call, not one of atai's Lua files. */
static void push_user_where(lua_State *L) {
  lua_Debug ar;
  int level;
  for (level = 1; lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0) continue;
    if (is_atai_source(ar.source)) continue;
    lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
    return;
  }
  lua_pushliteral(L, "");
}

/* Raises `fmt` (lua_pushfstring style) positioned at the user's line. */
static int raise_at_user(lua_State *L, const char *fmt, const char *a, const char *b) {
  push_user_where(L);
  lua_pushfstring(L, fmt, a, b);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Raises "bad argument #n to 'fname' (msg)" for stack index idx of a client
** method (self at 1, so #idx-1). Unlike luaL_argerror it does not guess the
** name from the call site, which is '?' for client[name](client, ...). */
static int arg_error(lua_State *L, int idx, const char *fname, const char *msg) {
  push_user_where(L);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", idx - 1, fname, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Why `id` is not a valid job or pipeline id, or NULL when it is: 1..128
** bytes of [A-Za-z0-9_-], and not "queue", which would route to
** GET /batch/jobs/queue. Pushes the reason when there is one. */
static const char *id_problem(lua_State *L, const char *id, size_t len) {
  size_t i;
  if (len == 0) return lua_pushfstring(L, "must not be empty");
  if (len > ID_MAX_LEN) return lua_pushfstring(L, "longer than %d bytes", ID_MAX_LEN);
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)id[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
          ch == '_' || ch == '-'))
      return lua_pushfstring(L, "invalid byte at position %d (allowed: A-Z a-z 0-9 _ -)",
                             (int)i + 1);
  }
  if (strcmp(id, "queue") == 0) return lua_pushfstring(L, "'queue' is a reserved path, not an id");
  return NULL;
}

/* Raises unless argument idx of method `fname` is a valid id. */
static const char *check_id(lua_State *L, int idx, const char *fname) {
  size_t len;
  const char *id, *why;
  if (lua_type(L, idx) != LUA_TSTRING)
    arg_error(L, idx, fname, lua_pushfstring(L, "id: string expected, got %s",
                                              luaL_typename(L, idx)));
  id = lua_tolstring(L, idx, &len);
  why = id_problem(L, id, len);
  if (why) arg_error(L, idx, fname, lua_pushfstring(L, "id: %s", why));
  return id;
}

/* The optional options table at idx: its index, or 0 when absent. */
static int check_opts(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx))
    arg_error(L, idx, fname, lua_pushfstring(L, "opts: table expected, got %s", luaL_typename(L, idx)));
  return idx;
}

/* Index of opts[field] when it is a table, 0 when nil; raises otherwise. */
static int opt_table(lua_State *L, int opts, const char *field, const char *fname) {
  lua_getfield(L, opts, field);
  if (lua_isnil(L, -1)) return 0;
  if (lua_type(L, -1) != LUA_TTABLE)
    arg_error(L, opts, fname, lua_pushfstring(L, "opts.%s: table expected, got %s", field,
                                               luaL_typename(L, -1)));
  return lua_gettop(L);
}

/* A request path: starts with '/', printable ASCII, no space, '?' or '#'
** (the query goes in opts.query), and no "." or ".." segment, also spelled
** with %2e: libcurl would resolve it, leaving the API's version prefix. */
static const char *check_path(lua_State *L, int idx) {
  size_t len, i, dots = 0, other = 0;
  const char *path;
  if (lua_type(L, idx) != LUA_TSTRING)
    arg_error(L, idx, "request", lua_pushfstring(L, "path: string expected, got %s",
                                                  luaL_typename(L, idx)));
  path = lua_tolstring(L, idx, &len);
  if (len == 0 || path[0] != '/') arg_error(L, idx, "request", "path must start with '/'");
  for (i = 0; i <= len; i++) {
    unsigned char ch = i < len ? (unsigned char)path[i] : '/';
    if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#')
      arg_error(L, idx, "request", lua_pushfstring(L, "path: invalid byte at position %d (put "
                                                      "the query in opts.query)", (int)i + 1));
    if (ch == '/') {
      if (i > 0 && other == 0 && (dots == 1 || dots == 2))
        arg_error(L, idx, "request", "path: '.' and '..' segments are not allowed");
      dots = other = 0;
    } else if (ch == '.') {
      dots++;
    } else if (ch == '%' && i + 2 < len && path[i + 1] == '2' && (path[i + 2] == 'e' || path[i + 2] == 'E')) {
      dots++;
      i += 2;
    } else {
      other++;
    }
  }
  return path;
}

/* The HTTP method, one of request_methods (uppercase). */
static const char *check_method(lua_State *L, int idx) {
  const char *method = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
  int i;
  for (i = 0; method && request_methods[i]; i++)
    if (strcmp(method, request_methods[i]) == 0) return request_methods[i];
  arg_error(L, idx, "request",
            lua_pushfstring(L, "method: one of GET POST PUT PATCH DELETE HEAD expected, got %s",
                            method ? method : luaL_typename(L, idx)));
  return NULL;
}

/* Appends `s` percent-encoded (RFC 3986 unreserved characters kept). */
static int add_escaped(Buffer *b, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[3];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      if (!buffer_add(b, (const char *)&ch, 1)) return 0;
    } else {
      esc[0] = '%';
      esc[1] = HEX_DIGITS[ch >> 4];
      esc[2] = HEX_DIGITS[ch & 15];
      if (!buffer_add(b, esc, 3)) return 0;
    }
  }
  return 1;
}

/* Pushes the text of a query value (string, number or boolean); raises on
** anything else, naming the key. */
static void push_query_text(lua_State *L, int idx, const char *key, const char *fname) {
  char num[64];
  switch (lua_type(L, idx)) {
    case LUA_TSTRING: lua_pushvalue(L, idx); return;
    case LUA_TBOOLEAN: lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false"); return;
    case LUA_TNUMBER:
      if (format_number(L, idx, num, sizeof num) > 0) {
        lua_pushstring(L, num);
        return;
      }
      break;
    default: break;
  }
  arg_error(L, 4, fname, lua_pushfstring(L, "opts.query.%s: string, integer, finite number "
                                              "or boolean expected, got %s", key, luaL_typename(L, idx)));
}

/* Appends "?k=v&k=v..." from the query table at `query` to url; a list
** value repeats its key. The strings stay anchored on the stack while read. */
static void add_query(lua_State *L, Buffer *url, int query, const char *fname) {
  char sep = '?';
  lua_pushnil(L);
  while (lua_next(L, query)) { /* key value */
    const char *key;
    size_t klen;
    lua_Integer i, n = 1;
    if (lua_type(L, -2) != LUA_TSTRING) arg_error(L, 4, fname, "opts.query: keys must be strings");
    key = lua_tolstring(L, -2, &klen); /* a key may hold a NUL: never strlen it */
    if (lua_type(L, -1) == LUA_TTABLE) n = (lua_Integer)lua_rawlen(L, -1);
    for (i = 1; i <= n; i++) {
      size_t vlen;
      const char *v;
      if (lua_type(L, -1) == LUA_TTABLE) {
        lua_rawgeti(L, -1, (int)i);
        push_query_text(L, lua_gettop(L), key, fname);
        lua_remove(L, -2);
      } else {
        push_query_text(L, lua_gettop(L), key, fname);
      }
      v = lua_tolstring(L, -1, &vlen);
      if (!buffer_add(url, &sep, 1) || !add_escaped(url, key, klen) ||
          !buffer_add(url, "=", 1) || !add_escaped(url, v, vlen))
        luaL_error(L, "not enough memory");
      lua_pop(L, 1);
      sep = '&';
    }
    lua_pop(L, 1);
  }
}

/* t->x->url = endpoint + path (+ query from the table at `query`, or 0). */
static void build_url(lua_State *L, Client *c, Transfer *t, const char *path, size_t path_len,
                      int query, const char *fname) {
  buffer_clear(&t->x->url);
  if (!buffer_reserve_exact(&t->x->url, c->base_url_len + path_len) ||
      !buffer_add(&t->x->url, c->base_url, c->base_url_len) || !buffer_add(&t->x->url, path, path_len))
    luaL_error(L, "not enough memory");
  if (query) add_query(L, &t->x->url, query, fname);
}

/* A header name is an HTTP token; a value holds no control byte (C0,
** tab included, or DEL): CR and LF would inject headers, the others have
** no business in one. */
static int header_ok(const char *s, size_t len, int is_name) {
  size_t i;
  if (is_name && len == 0) return 0;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch < 0x20 || ch == 0x7f) return 0;
    if (is_name && !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return 0;
  }
  return 1;
}

static void headers_append(lua_State *L, Transfer *t, const char *line) {
  struct curl_slist *list = curl_slist_append(t->x->headers, line);
  if (list == NULL) luaL_error(L, "not enough memory");
  t->x->headers = list;
}

/* Whether opts.headers (the table at `extra`, or 0) sets the header named
** by the first `len` bytes of `name`, ignoring case. */
static int user_sets_header(lua_State *L, int extra, const char *name, size_t len) {
  int found = 0;
  if (!extra) return 0;
  lua_pushnil(L);
  while (!found && lua_next(L, extra)) {
    size_t klen;
    const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &klen) : NULL;
    found = k && klen == len && same_ci(k, name, len);
    lua_pop(L, 1);
  }
  if (found) lua_pop(L, 1); /* the key lua_next left */
  return found;
}

/* Builds t->x->headers: the client's own (minus those the request replaces),
** Content-Type: application/json when there is a body, and opts.headers
** (table at `extra`, or 0). Owned by the transfer, so an argument error
** raised midway leaks nothing. */
static void build_headers(lua_State *L, Client *c, Transfer *t, int extra, int has_body,
                          const char *fname) {
  struct curl_slist *h;
  for (h = c->base_headers; h; h = h->next) {
    size_t name_len = strcspn(h->data, ":");
    int is_content_type = name_len == 12 && same_ci(h->data, "content-type", 12);
    if ((has_body && is_content_type) || user_sets_header(L, extra, h->data, name_len)) continue;
    headers_append(L, t, h->data);
  }
  if (has_body && !user_sets_header(L, extra, "content-type", 12))
    headers_append(L, t, "Content-Type: application/json");
  if (!extra) return;
  lua_pushnil(L);
  while (lua_next(L, extra)) {
    size_t nlen, vlen;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      arg_error(L, 4, fname, "opts.headers: names and values must be strings");
    name = lua_tolstring(L, -2, &nlen);
    value = lua_tolstring(L, -1, &vlen);
    if (!header_ok(name, nlen, 1))
      arg_error(L, 4, fname, "opts.headers: invalid header name (letters, digits, '-' and '_')");
    if (!header_ok(value, vlen, 0))
      arg_error(L, 4, fname, lua_pushfstring(L, "opts.headers: invalid header '%s': its value holds "
                                                "a control byte (C0 or DEL)", name));
    if (equals_ci(name, nlen, "authorization"))
      arg_error(L, 4, fname, "opts.headers: Authorization is set from api_key");
    lua_pushfstring(L, "%s: %s", name, value);
    headers_append(L, t, lua_tostring(L, -1));
    lua_pop(L, 2); /* the line and the value */
  }
}


/* ======================================================================
** Userdata types (for the bindings of layer 4)
** ====================================================================== */

/* Makes metatable `name` with `meta` and a methods table (its __index,
** unless `index` is given) holding `methods`; leaves the methods table on
** the stack. Expects the decode upvalue at `decode`. */
static void new_type(lua_State *L, const char *name, const luaL_Reg *meta,
                     const luaL_Reg *methods, int decode) {
  luaL_newmetatable(L, name);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, meta, MODULE_UPVALUES);
  lua_newtable(L);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, methods, MODULE_UPVALUES);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_remove(L, -2);
}
