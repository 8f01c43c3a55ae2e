/*
** client.c: one atai client ("atai.Client" userdata).
**
** A client owns a libcurl multi handle (its connection cache: connections,
** TLS sessions and DNS stay warm across requests), a small pool of idle
** easy handles configured once, the header list every request sends, and
** the callback queue that poll() drains. Configuration policy (defaults,
** environment, endpoint and proxy rules, bounds) lives in
** lua/atai/config.lua, which hands new_client a resolved, checked table.
*/

/* A float in [0, 1) from the client's xorshift32 state. */
static double client_random(Client *c) {
  unsigned int x = c->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  c->rng = x ? x : 0x9e3779b9u;
  return (double)(x >> 8) / 16777216.0;
}

/* Raises unless idx is an open client. `blocking`: the call may wait, which
** a callback run by poll/wait must not do (it would re-enter the engine). */
static Client *check_client(lua_State *L, int idx, int blocking) {
  Client *c = (Client *)luaL_checkudata(L, idx, CLIENT_MT);
  if (c->released || c->closing) raise_at_user(L, "attempt to use a closed atai client", NULL, NULL);
  if (blocking && c->in_callback && !in_run(L))
    raise_at_user(L, "blocking call inside a callback: use client.async", NULL, NULL);
  return c;
}

/* Sets the options every request of the client shares on a new easy handle. */
static void easy_configure(Client *c, CURL *e) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* all that libcurl decodes */
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* the key must not follow */
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  /* CURLOPT_* are enum members, not macros: only the version can tell. */
#if CURL_AT_LEAST_VERSION(7, 85, 0)
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
  if (c->secure) {
    /* Wait for a connection that may multiplex rather than open another. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->multiplex ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->multiplex ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
  }
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  if (c->ca_path) curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_path);
  /* "" turns proxies off, the environment's too: the Lua layer passes it
  ** for http:// endpoints, whose key must not cross a proxy in clear. */
  if (c->proxy) curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
}

/* An easy handle for the next attempt: an idle one, or a new one. */
static CURL *pool_take(Client *c) {
  CURL *e;
  if (c->pool_len > 0) return c->pool[--c->pool_len];
  e = curl_easy_init();
  if (e) easy_configure(c, e);
  return e;
}

/* Gives an easy handle back after an attempt (it is off the multi handle).
** One idle handle per concurrency slot (up to POOL_MAX): creating and
** freeing handles for every request fragments the heap. */
static void pool_give(Client *c, CURL *e) {
  if (c->pool_len < POOL_MAX && c->pool_len < c->max_concurrency && !c->released)
    c->pool[c->pool_len++] = e;
  else curl_easy_cleanup(e);
}

/* Frees the libcurl side of a client; safe on a half-built one, idempotent.
** The base URL stays until __gc: a request being built may still read it. */
static void client_release(lua_State *L, Client *c) {
  int i;
  for (i = 0; i < c->pool_len; i++) curl_easy_cleanup(c->pool[i]);
  c->pool_len = 0;
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  curl_slist_free_all(c->base_headers);
  c->base_headers = NULL;
  free(c->watches);
  free(c->pollfds);
  c->watches = NULL;
  c->pollfds = NULL;
  c->nwatches = c->watches_cap = 0;
  for (i = 0; i < c->spares; i++) {
    buffer_free(&c->spare_body[i]);
    buffer_free(&c->spare_headers[i]);
  }
  c->spares = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, c->on_retry_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->on_exchange_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->queue_ref);
  c->on_retry_ref = c->on_exchange_ref = c->queue_ref = LUA_NOREF;
  c->released = 1;
}

/* Frees the strings too: only from __gc, when nothing can read them. */
static void client_free(lua_State *L, Client *c) {
  client_release(L, c);
  free(c->base_url);
  free(c->config_error);
  free(c->user_agent);
  free(c->ca_file);
  free(c->ca_path);
  free(c->proxy);
  c->base_url = c->config_error = c->user_agent = c->ca_file = c->ca_path = c->proxy = NULL;
}

/* tostring(client): the endpoint, never the key. */
static int l_client_tostring(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->released) lua_pushfstring(L, "atai.Client (closed): %p", (void *)c);
  else lua_pushfstring(L, "atai.Client (%s): %p", c->base_url, (void *)c);
  return 1;
}

/* opts[field] as a string, or NULL when nil; the value stays on the stack. */
static const char *opt_string(lua_State *L, const char *field) {
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING)
    luaL_argerror(L, 1, lua_pushfstring(L, "%s: string expected, got %s", field,
                                         luaL_typename(L, -1)));
  return lua_tostring(L, -1);
}

/* opts[field] within [min, max] (the bounds config.lua checks too), or dflt. */
static double opt_number(lua_State *L, const char *field, double dflt, double min, double max) {
  double n = dflt;
  lua_getfield(L, 1, field);
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TNUMBER || !((n = lua_tonumber(L, -1)) >= min && n <= max)))
    luaL_argerror(L, 1, lua_pushfstring(L, "%s: number from %f to %f expected", field, min, max));
  lua_pop(L, 1);
  return n;
}

/* Stores opts[field] (a function or nil) as a registry ref. */
static int opt_function(lua_State *L, const char *field) {
  lua_getfield(L, 1, field);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  luaL_argcheck(L, lua_type(L, -1) == LUA_TFUNCTION, 1, "callback option: function expected");
  return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Appends a header every request of the client sends. */
static void base_header(lua_State *L, Client *c, const char *line) {
  struct curl_slist *list = curl_slist_append(c->base_headers, line);
  if (list == NULL) luaL_error(L, "not enough memory");
  c->base_headers = list;
}

/* A malloc'd copy of `s` (NULL stays NULL), stored at once in *slot so
** that __gc frees it if anything later raises. */
static int keep_string(char **slot, const char *s) {
  size_t n;
  if (s == NULL) return 1;
  n = strlen(s) + 1;
  *slot = (char *)malloc(n);
  if (*slot) memcpy(*slot, s, n);
  return *slot != NULL;
}

static void engine_init(Client *c); /* engine.c: socket and timer callbacks */

/* core.new_client(opts) -> client. `opts` is resolved by the Lua layer:
** base_url, user_agent, api_key, timeout, connect_timeout, max_retries,
** retry_backoff, retry_backoff_max, max_response_bytes, max_concurrency,
** ca_file, ca_path, proxy, config_error, on_retry, on_exchange. */
static int l_new_client(lua_State *L) {
  const char *base_url, *api_key, *config_error, *user_agent;
  int ok;
  Client *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Born released at index 2: if anything below raises, __gc frees what was
  ** made so far, since every allocation is stored in the struct at once. */
  c = (Client *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->on_retry_ref = c->on_exchange_ref = c->queue_ref = LUA_NOREF;
  c->released = 1;
  c->curl_due = -1;
  c->time_scale = 1;
  luaL_setmetatable(L, CLIENT_MT);

  /* The strings stay on the stack, anchored, until copied. */
  base_url = opt_string(L, "base_url");
  luaL_argcheck(L, base_url != NULL, 1, "base_url: string expected");
  api_key = opt_string(L, "api_key");
  config_error = opt_string(L, "config_error");
  if (api_key && !header_ok(api_key, strlen(api_key), 0))
    luaL_argerror(L, 1, "api_key: must not contain control bytes (C0 or DEL)");
  user_agent = opt_string(L, "user_agent");
  if (user_agent && !header_ok(user_agent, strlen(user_agent), 0))
    luaL_argerror(L, 1, "user_agent: must not contain control bytes (C0 or DEL)");
  if (api_key == NULL || *api_key == '\0')
    config_error = config_error ? config_error
                                : "no API key: set the ATAI_API_KEY environment variable or "
                                  "pass api_key to atai.new()";
  ok = keep_string(&c->base_url, base_url) && keep_string(&c->config_error, config_error) &&
       keep_string(&c->user_agent, user_agent) &&
       keep_string(&c->ca_file, opt_string(L, "ca_file")) &&
       keep_string(&c->ca_path, opt_string(L, "ca_path")) &&
       keep_string(&c->proxy, opt_string(L, "proxy"));
  if (ok && c->user_agent == NULL) ok = keep_string(&c->user_agent, "atai-lua/" ATAI_VERSION);
  c->base_url_len = c->base_url ? strlen(c->base_url) : 0;
  c->secure = c->base_url && strncmp(c->base_url, "https:", 6) == 0;
  c->timeout_ms = (long)(opt_number(L, "timeout", 60, 0.001, CALL_TIMEOUT_MAX) * 1000);
  c->connect_timeout_ms = (long)(opt_number(L, "connect_timeout", 10, 0.001, CALL_TIMEOUT_MAX) * 1000);
  c->max_response_bytes = (curl_off_t)opt_number(L, "max_response_bytes", 64.0 * 1024 * 1024, 1,
                                                 4503599627370496.0 /* 2^52 */);
  c->max_retries = (int)opt_number(L, "max_retries", 2, 0, MAX_RETRIES_MAX);
  c->backoff = opt_number(L, "retry_backoff", 0.5, 0, 3600);
  c->backoff_max = opt_number(L, "retry_backoff_max", 8, 0, 3600);
  c->max_concurrency = (int)opt_number(L, "max_concurrency", 16, 1, 1000);
  c->rng = (unsigned int)time(NULL) ^ (unsigned int)(size_t)c;
  c->on_retry_ref = opt_function(L, "on_retry");
  c->on_exchange_ref = opt_function(L, "on_exchange");
  lua_newtable(L);
  c->queue_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  c->q_head = c->q_tail = 1;
  c->multi = curl_multi_init();
  if (!ok || !c->multi)
    return luaL_error(L, "cannot create an atai client: out of memory or libcurl failed");
  engine_init(c);
  /* "Expect:" and "Content-Type:" switch off what libcurl would add:
  ** 100-continue waits, and a form type on body-less POSTs. */
  if (api_key && *api_key) {
    lua_pushfstring(L, "Authorization: Bearer %s", api_key);
    base_header(L, c, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
  base_header(L, c, "Accept: application/json");
  base_header(L, c, "Expect:");
  base_header(L, c, "Content-Type:");
  c->released = 0;
  lua_settop(L, 2);
  return 1;
}
