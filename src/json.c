/*
** json.c: JSON to Lua tables (lua-cjson plus atai's shaping rules) and Lua
** tables to JSON for request bodies.
**
** Decoding takes a fast path of our own for well-formed objects and arrays,
** which makes the shaped values directly; anything else goes through a
** private lua-cjson instance (upvalue UV_DECODE of every C function), then
** one walk applies atai's rules (the fast path applies the same ones): a `null` object
** member is dropped, a `null` array element stays as the sentinel
** (cjson.null, a NULL light userdata; vim.json's vim.NIL becomes it), and on 5.3+ integral numbers strictly
** within +-2^53 become integers (Debian's cjson 2.1.0 returns floats for all).
**
** Encoding is our own: cjson 2.1.0 prints numbers with at most 14
** significant digits, which would corrupt 64-bit ids and counts.
*/

#define UV_DECODE 1        /* upvalue: decode function of a cjson.new() */
#define JSON_NULL_KEY "atai.json_null"     /* registry: the decoder's null */
#define JSON_SOURCE_KEY "atai.json_source" /* registry: which cjson, its version */
#define ARRAY_MT "atai.array" /* metatable of atai.array(): encode as [] */
#define JSON_MAX_DEPTH 200 /* nesting accepted in a request body */
#define JSON_EXACT_INT 9007199254740992.0 /* 2^53 */

/* ======================================================================
** Decoding
** ====================================================================== */

#if LUA_VERSION_NUM >= 503
/* When the float on top of the stack is integral and strictly within
** +-2^53, pushes it as an integer and returns 1 (2^53 itself may be the
** rounding of 2^53 + 1); else returns 0. */
static int json_push_integer(lua_State *L) {
  lua_Number n;
  if (lua_isinteger(L, -1)) return 0;
  n = lua_tonumber(L, -1);
  if (n != n || n <= -JSON_EXACT_INT || n >= JSON_EXACT_INT) return 0;
  if ((lua_Number)(lua_Integer)n != n) return 0;
  lua_pushinteger(L, (lua_Integer)n);
  return 1;
}
#endif

static void json_shape(lua_State *L, int null);

/* An array (keys 1..n, as cjson builds them, nulls included): walked by
** index, which is cheaper than lua_next. Nulls keep their place, as the
** NULL light userdata. `null`: stack index of the decoder's null. */
static void json_shape_array(lua_State *L, lua_Integer n, int null) {
  lua_Integer i;
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, -1, (int)i);
#if LUA_VERSION_NUM >= 503
    if (lua_type(L, -1) == LUA_TNUMBER && json_push_integer(L)) lua_rawseti(L, -3, i);
#endif
    if (lua_type(L, -1) == LUA_TTABLE) json_shape(L, null);
    else if (lua_type(L, -1) == LUA_TUSERDATA && lua_rawequal(L, -1, null)) {
      lua_pushlightuserdata(L, NULL);
      lua_rawseti(L, -3, i);
    }
    lua_pop(L, 1);
  }
}

/* An object (string keys only): null members are dropped. */
static void json_shape_object(lua_State *L, int null) {
  lua_pushnil(L);
  while (lua_next(L, -2)) { /* t k v */
    switch (lua_type(L, -1)) {
      case LUA_TLIGHTUSERDATA:
      case LUA_TUSERDATA:
        if (lua_rawequal(L, -1, null)) {
          lua_pushvalue(L, -2);
          lua_pushnil(L);
          lua_rawset(L, -5); /* clearing a field is allowed mid-next */
        }
        break;
#if LUA_VERSION_NUM >= 503
      case LUA_TNUMBER:
        if (json_push_integer(L)) {
          lua_pushvalue(L, -3);
          lua_insert(L, -2);
          lua_rawset(L, -5); /* so is assigning an existing field */
        }
        break;
#endif
      case LUA_TTABLE: json_shape(L, null); break;
      default: break;
    }
    lua_pop(L, 1);
  }
}

/* Applies the table rules, in place, to the value on top of the stack.
** JSON object keys are strings, so a table with a border > 0 came from an
** array. */
static void json_shape(lua_State *L, int null) {
  lua_Integer n;
  if (lua_type(L, -1) != LUA_TTABLE) return;
  luaL_checkstack(L, 4, "JSON nested too deeply");
  n = (lua_Integer)lua_rawlen(L, -1);
  if (n > 0) json_shape_array(L, n, null);
  else json_shape_object(L, null);
}

/* ----------------------------------------------------------------------
** The fast path: well-formed JSON whose top level is an object or an
** array, decoded straight into shaped Lua values, without a walk. Given
** anything unusual (a \u escape, a control byte in a string, a number of
** 16+ digits, deep nesting, any syntax error, a top-level scalar) it gives
** up and json_decode asks lua-cjson; so whatever it returns is what
** cjson's decode plus json_shape returns for the same text (fuzz/
** json_decode.c compares the two), and every error message is cjson's.
** The shaping walk cost get_job a seventh of its instructions.
** ---------------------------------------------------------------------- */

#define JSON_FAST_DEPTH 64   /* deeper: cjson's path */
#define JSON_FAST_DIGITS 15  /* an integer of at most this many digits is exact */

typedef struct JsonIn {
  lua_State *L;
  const char *p, *end;
  int depth;
} JsonIn;

static int fast_value(JsonIn *in);

static void fast_ws(JsonIn *in) {
  while (in->p < in->end && (*in->p == ' ' || *in->p == '\n' || *in->p == '\r' || *in->p == '\t')) in->p++;
}

/* The escape after a backslash, or 0 for one the fast path leaves to cjson (\u). */
static char fast_escape(char c) {
  switch (c) {
    case '"': case '\\': case '/': return c;
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    default: return 0;
  }
}

/* A string with escapes, from the opening quote at in->p. */
static int fast_escaped_string(JsonIn *in) {
  luaL_Buffer b;
  const char *p = in->p + 1, *run = p;
  luaL_buffinit(in->L, &b);
  for (; p < in->end; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == '"') {
      luaL_addlstring(&b, run, (size_t)(p - run));
      luaL_pushresult(&b);
      in->p = p + 1;
      return 1;
    }
    if (ch < 0x20) return 0;
    if (ch == '\\') {
      char e = p + 1 < in->end ? fast_escape(p[1]) : 0;
      if (e == 0) return 0;
      luaL_addlstring(&b, run, (size_t)(p - run));
      luaL_addchar(&b, e);
      run = ++p + 1;
    }
  }
  return 0;
}

/* A string, from the opening quote at in->p; one without escapes is pushed
** straight from the text. */
static int fast_string(JsonIn *in) {
  const char *p = in->p + 1;
  for (; p < in->end; p++) {
    unsigned char ch = (unsigned char)*p;
    if (ch == '"') {
      lua_pushlstring(in->L, in->p + 1, (size_t)(p - in->p - 1));
      in->p = p + 1;
      return 1;
    }
    if (ch == '\\') return fast_escaped_string(in);
    if (ch < 0x20) return 0;
  }
  return 0;
}

/* Skips digits; returns how many. */
static size_t fast_digits(JsonIn *in) {
  const char *start = in->p;
  while (in->p < in->end && *in->p >= '0' && *in->p <= '9') in->p++;
  return (size_t)(in->p - start);
}

/* A number with a fraction or an exponent (the token is start..in->p):
** the value Lua reads from it (strtod's, whatever the locale), shaped. */
static int fast_float(JsonIn *in, const char *start) {
#if LUA_VERSION_NUM >= 503
  char token[64];
  size_t len = (size_t)(in->p - start);
  if (len >= sizeof token) return 0;
  memcpy(token, start, len);
  token[len] = '\0';
  if (lua_stringtonumber(in->L, token) != len + 1) return 0;
  if (json_push_integer(in->L)) lua_remove(in->L, -2);
  return 1;
#else
  (void)in;
  (void)start;
  return 0;
#endif
}

/* A number, by JSON's grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int fast_number(JsonIn *in) {
  const char *start = in->p;
  int neg = *in->p == '-';
  size_t digits;
  if (neg) in->p++;
  digits = fast_digits(in);
  if (digits == 0 || (digits > 1 && start[neg] == '0')) return 0;
  if (in->p < in->end && (*in->p == '.' || *in->p == 'e' || *in->p == 'E')) {
    if (*in->p == '.') {
      in->p++;
      if (fast_digits(in) == 0) return 0;
    }
    if (in->p < in->end && (*in->p == 'e' || *in->p == 'E')) {
      in->p++;
      if (in->p < in->end && (*in->p == '+' || *in->p == '-')) in->p++;
      if (fast_digits(in) == 0) return 0;
    }
    return fast_float(in, start);
  }
  if (digits > JSON_FAST_DIGITS) return 0;
  {
    const char *d = start + neg;
    lua_Integer v = 0;
    for (; d < in->p; d++) v = v * 10 + (*d - '0');
#if LUA_VERSION_NUM >= 503
    lua_pushinteger(in->L, neg ? -v : v);
#else
    lua_pushnumber(in->L, neg ? -(lua_Number)v : (lua_Number)v);
#endif
  }
  return 1;
}

/* true, false or null (a NULL light userdata: arrays keep it, objects
** drop their null members). */
static int fast_literal(JsonIn *in) {
  size_t left = (size_t)(in->end - in->p);
  if (left >= 4 && memcmp(in->p, "true", 4) == 0) {
    lua_pushboolean(in->L, 1);
    in->p += 4;
  } else if (left >= 5 && memcmp(in->p, "false", 5) == 0) {
    lua_pushboolean(in->L, 0);
    in->p += 5;
  } else if (left >= 4 && memcmp(in->p, "null", 4) == 0) {
    lua_pushlightuserdata(in->L, NULL);
    in->p += 4;
  } else {
    return 0;
  }
  return 1;
}

/* Whether the next byte (after blanks) is `ch`, skipping it when it is. */
static int fast_take(JsonIn *in, char ch) {
  fast_ws(in);
  if (in->p < in->end && *in->p == ch) {
    in->p++;
    return 1;
  }
  return 0;
}

/* One member into the object below the key and value on top: a null
** clears the key (a duplicate key's last value wins, as in cjson). */
static void fast_set_member(lua_State *L) {
  if (lua_type(L, -1) == LUA_TLIGHTUSERDATA && lua_touserdata(L, -1) == NULL) {
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 2);
      return;
    }
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  lua_rawset(L, -3);
}

/* An object, from its '{' at in->p. */
static int fast_object(JsonIn *in) {
  in->p++;
  lua_newtable(in->L);
  if (fast_take(in, '}')) return 1;
  do {
    fast_ws(in);
    if (in->p >= in->end || *in->p != '"' || !fast_string(in)) return 0;
    if (!fast_take(in, ':')) return 0;
    fast_ws(in);
    if (!fast_value(in)) return 0;
    fast_set_member(in->L);
  } while (fast_take(in, ','));
  return fast_take(in, '}');
}

/* An array, from its '[' at in->p: nulls keep their place. */
static int fast_array(JsonIn *in) {
  int n = 0;
  in->p++;
  lua_newtable(in->L);
  if (fast_take(in, ']')) return 1;
  do {
    fast_ws(in);
    if (!fast_value(in)) return 0;
    lua_rawseti(in->L, -2, ++n);
  } while (fast_take(in, ','));
  return fast_take(in, ']');
}

/* Any value at in->p (blanks skipped before it). */
static int fast_value(JsonIn *in) {
  int ok;
  if (in->p >= in->end) return 0;
  switch (*in->p) {
    case '{':
    case '[':
      if (in->depth >= JSON_FAST_DEPTH || !lua_checkstack(in->L, 4)) return 0;
      in->depth++;
      ok = *in->p == '{' ? fast_object(in) : fast_array(in);
      in->depth--;
      return ok;
    case '"': return fast_string(in);
    case 't': case 'f': case 'n': return fast_literal(in);
    default: return (*in->p == '-' || (*in->p >= '0' && *in->p <= '9')) && fast_number(in);
  }
}

/* fast_decode(text) -> value, true | nothing when cjson must judge the text.
** Run under lua_pcall: running out of memory gives cjson its turn too. */
static int json_fast_decode(lua_State *L) {
  size_t len;
  JsonIn in;
  in.L = L;
  in.p = lua_tolstring(L, 1, &len);
  in.end = in.p + len;
  in.depth = 0;
  fast_ws(&in);
  if (in.p >= in.end || (*in.p != '{' && *in.p != '[')) return 0;
  if (!fast_value(&in)) return 0;
  fast_ws(&in);
  if (in.p != in.end) return 0;
  lua_pushboolean(L, 1);
  return 2;
}

/* Decodes `len` bytes of JSON. On success pushes the shaped value and
** returns 1; on malformed input pushes cjson's message and returns 0. The
** fast path first; cjson and the walk when it gives up. */
static int json_decode(lua_State *L, const char *data, size_t len) {
  int null, text;
  lua_pushlstring(L, data, len);
  text = lua_gettop(L);
  lua_pushcfunction(L, json_fast_decode);
  lua_pushvalue(L, text);
  if (lua_pcall(L, 1, 2, 0) == LUA_OK) {
    if (lua_toboolean(L, -1)) {
      lua_pop(L, 1);
      lua_remove(L, text);
      return 1;
    }
    lua_pop(L, 2);
  } else {
    lua_pop(L, 1); /* out of memory: cjson's turn, as before */
  }
  lua_getfield(L, LUA_REGISTRYINDEX, JSON_NULL_KEY);
  null = lua_gettop(L);
  lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
  lua_pushvalue(L, text);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (lua_type(L, -1) != LUA_TSTRING) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    lua_remove(L, null);
    lua_remove(L, text);
    return 0;
  }
  json_shape(L, null);
  lua_remove(L, null);
  lua_remove(L, text);
  return 1;
}

/* ======================================================================
** Encoding (request bodies)
** ====================================================================== */

typedef struct JsonOut {
  lua_State *L;
  Buffer *buf;
  const char *what; /* names the argument in error messages */
  int sorted;       /* object keys in byte order */
} JsonOut;

static void json_put(JsonOut *o, const char *s, size_t len) {
  if (!buffer_add(o->buf, s, len)) luaL_error(o->L, "not enough memory");
}

#define json_putlit(o, s) json_put((o), (s), sizeof(s) - 1)

static const char HEX_DIGITS[] = "0123456789ABCDEF"; /* also for URLs */

static void json_put_string(JsonOut *o, const char *s, size_t len) {
  size_t i, run = 0;
  json_putlit(o, "\"");
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    char esc[6] = {'\\', 'u', '0', '0', 0, 0};
    size_t esc_len = 2;
    if (ch >= 0x20 && ch != '"' && ch != '\\') continue;
    json_put(o, s + run, i - run);
    run = i + 1;
    switch (ch) {
      case '"': esc[1] = '"'; break;
      case '\\': esc[1] = '\\'; break;
      case '\n': esc[1] = 'n'; break;
      case '\r': esc[1] = 'r'; break;
      case '\t': esc[1] = 't'; break;
      case '\b': esc[1] = 'b'; break;
      case '\f': esc[1] = 'f'; break;
      default:
        esc[4] = HEX_DIGITS[ch >> 4];
        esc[5] = HEX_DIGITS[ch & 15];
        esc_len = 6;
    }
    json_put(o, esc, esc_len);
  }
  json_put(o, s + run, len - run);
  json_putlit(o, "\"");
}

/* Writes the number at idx into `out` as JSON and query strings want it:
** integers (and integral floats within +-2^53) without a fraction, other
** floats as the shortest of %.15g/%.17g that reads back exactly. Returns
** the length, or -1 for NaN and infinities, which JSON cannot hold. */
static int format_number(lua_State *L, int idx, char *out, size_t size) {
  lua_Number x;
#if LUA_VERSION_NUM >= 503
  if (lua_isinteger(L, idx))
    return snprintf(out, size, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
#endif
  x = lua_tonumber(L, idx);
  if (x != x || x > DBL_MAX || x < -DBL_MAX) return -1;
  if (x >= -JSON_EXACT_INT && x <= JSON_EXACT_INT && x == (lua_Number)(long long)x)
    return snprintf(out, size, "%lld", (long long)x);
  if (snprintf(out, size, "%.15g", (double)x) > 0 && strtod(out, NULL) == (double)x)
    return (int)strlen(out);
  return snprintf(out, size, "%.17g", (double)x);
}

static void json_put_number(JsonOut *o, int idx) {
  char num[64];
  int n = format_number(o->L, idx, num, sizeof num);
  if (n < 0) luaL_error(o->L, "%s: cannot encode NaN or infinity as JSON", o->what);
  json_put(o, num, (size_t)n);
}

static void json_put_value(JsonOut *o, int idx, int depth);

/* Length n when the table at idx is a non-empty sequence 1..n (or is marked
** with atai.array()), else -1: it is then written as an object. */
static lua_Integer json_array_length(lua_State *L, int idx) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, idx), keys = 0;
  int marked = 0;
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, ARRAY_MT);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (n == 0 && !marked) return -1;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_Number k;
    lua_pop(L, 1);
    k = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
    /* only the keys 1..n: a sparse table ({nil, "b", [-1] = "a"} has a
    ** border of 2 and two number keys) is an object, or keys would be lost */
    if (!(k >= 1 && k <= (lua_Number)n && k == (lua_Number)(lua_Integer)k)) {
      lua_pop(L, 1);
      return -1;
    }
    keys++;
  }
  return keys == n ? n : -1;
}

/* A key of a sorted object: its text, anchored in a Lua table. */
typedef struct JsonKey {
  const char *s;
  size_t len;
} JsonKey;

static int json_key_cmp(const void *a, const void *b) {
  const JsonKey *x = (const JsonKey *)a, *y = (const JsonKey *)b;
  int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Writes the object at idx with its keys in byte order. The key strings
** are anchored in a Lua table and the array that sorts them is a userdata,
** so an error raised midway leaks nothing. */
static void json_put_sorted_object(JsonOut *o, int idx, int depth) {
  lua_State *L = o->L;
  int keys, n = 0, i;
  JsonKey *list;
  lua_newtable(L); /* key text -> original key */
  keys = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int kt = lua_type(L, -2);
    lua_pop(L, 1);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
      luaL_error(L, "%s: object keys must be strings, not %s", o->what, lua_typename(L, kt));
    lua_pushvalue(L, -1);
    lua_pushvalue(L, -1);
    lua_tolstring(L, -1, NULL); /* a number key becomes its text (a copy) */
    lua_insert(L, -2);
    lua_rawset(L, keys);
    n++;
  }
  list = (JsonKey *)lua_newuserdatauv(L, (size_t)(n ? n : 1) * sizeof *list, 0);
  i = 0;
  lua_pushnil(L);
  while (lua_next(L, keys)) {
    lua_pop(L, 1);
    list[i].s = lua_tolstring(L, -1, &list[i].len); /* anchored: a key of `keys` */
    i++;
  }
  qsort(list, (size_t)n, sizeof *list, json_key_cmp);
  json_putlit(o, "{");
  for (i = 0; i < n; i++) {
    if (i > 0) json_putlit(o, ",");
    json_put_string(o, list[i].s, list[i].len);
    json_putlit(o, ":");
    lua_pushlstring(L, list[i].s, list[i].len);
    lua_rawget(L, keys); /* the original key */
    lua_rawget(L, idx);
    json_put_value(o, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  json_putlit(o, "}");
  lua_settop(L, keys - 1);
}

static void json_put_table(JsonOut *o, int idx, int depth) {
  lua_State *L = o->L;
  lua_Integer i, n;
  int first = 1;
  if (depth > JSON_MAX_DEPTH)
    luaL_error(L, "%s: nested deeper than %d levels (a cycle?)", o->what, JSON_MAX_DEPTH);
  luaL_checkstack(L, 4, "JSON nested too deeply");
  n = json_array_length(L, idx);
  if (n >= 0) {
    json_putlit(o, "[");
    for (i = 1; i <= n; i++) {
      if (i > 1) json_putlit(o, ",");
      lua_rawgeti(L, idx, (int)i);
      json_put_value(o, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    json_putlit(o, "]");
    return;
  }
  if (o->sorted) {
    json_put_sorted_object(o, idx, depth);
    return;
  }
  json_putlit(o, "{");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t klen;
    const char *k;
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER)
      luaL_error(L, "%s: object keys must be strings, not %s", o->what, lua_typename(L, kt));
    if (!first) json_putlit(o, ",");
    first = 0;
    lua_pushvalue(L, -2); /* tolstring on a copy: never convert the key lua_next needs */
    k = lua_tolstring(L, -1, &klen);
    json_put_string(o, k, klen);
    lua_pop(L, 1);
    json_putlit(o, ":");
    json_put_value(o, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  json_putlit(o, "}");
}

static void json_put_value(JsonOut *o, int idx, int depth) {
  size_t len;
  const char *s;
  switch (lua_type(o->L, idx)) {
    case LUA_TNIL: json_putlit(o, "null"); break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(o->L, idx)) json_putlit(o, "true");
      else json_putlit(o, "false");
      break;
    case LUA_TNUMBER: json_put_number(o, idx); break;
    case LUA_TSTRING:
      s = lua_tolstring(o->L, idx, &len);
      json_put_string(o, s, len);
      break;
    case LUA_TTABLE: json_put_table(o, idx, depth); break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(o->L, idx) == NULL) { /* atai.null / cjson.null */
        json_putlit(o, "null");
        break;
      }
      /* fall through */
    default:
      luaL_error(o->L, "%s: cannot encode a %s as JSON", o->what,
                 luaL_typename(o->L, idx));
  }
}

/* Encodes the value at idx into buf (cleared first); raises on values
** JSON cannot hold, naming `what`. */
static void json_encode_sorted(lua_State *L, int idx, Buffer *buf, const char *what, int sorted) {
  JsonOut o;
  o.L = L;
  o.buf = buf;
  o.what = what;
  o.sorted = sorted;
  buffer_clear(buf);
  json_put_value(&o, lua_absindex(L, idx), 0);
}

/* Encodes the value at idx into buf, keys in table order (request bodies). */
static void json_encode(lua_State *L, int idx, Buffer *buf, const char *what) {
  json_encode_sorted(L, idx, buf, what, 0);
}
