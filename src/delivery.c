/*
** delivery.c: layer 3, where C results become Lua values. Phase 2 and 3 of
** a step (see engine.c): a finished transfer's outcome is made into its
** results (or its error table) and stored in its handle, its callbacks and
** the on_retry/on_exchange notices go on the callback queue, and the queue
** is drained one item at a time. Also the step/poll/wait loops that run the
** three phases, and closing a client (cancel, deliver, free).
*/

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
  free(c->watch_of);
  c->watches = NULL;
  c->pollfds = NULL;
  c->watch_of = NULL;
  c->nwatches = c->watches_cap = c->watch_of_len = 0;
  for (i = 0; i < c->spares; i++) {
    buffer_free(&c->spare_body[i]);
    buffer_free(&c->spare_headers[i]);
  }
  c->spares = 0;
  free(c->pool);
  free(c->spare_body);
  free(c->spare_headers);
  c->pool = NULL;
  c->spare_body = c->spare_headers = NULL;
  luaL_unref(L, LUA_REGISTRYINDEX, c->on_retry_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->on_exchange_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, c->queue_ref);
  c->on_retry_ref = c->on_exchange_ref = c->queue_ref = LUA_NOREF;
  c->life = LIFE_CLOSED;
}


/* Pushes t's URL as it may be shown (`path_only`: from its path on, "/"
** when it has none): a presigned URL stops before its query, with
** REDACTED_QUERY in its place, and loses its fragment. The buffer is read
** by the first push, before anything that could run a finalizer. */
static void push_shown_url(lua_State *L, const Transfer *t, int path_only) {
  const char *url = t->x->url.data ? t->x->url.data : "";
  size_t len = t->x->url.data ? t->x->url.len : 0, origin = url_origin_len(url, len);
  size_t from = path_only ? origin : 0, to = len;
  int slash = path_only && (from >= len || url[from] != '/'), cut = 0;
  if (t->presigned) {
    for (to = origin; to < len && url[to] != '?' && url[to] != '#'; to++) {}
    cut = to < len && url[to] == '?';
  }
  lua_pushlstring(L, url + from, to - from);
  if (slash) {
    lua_pushliteral(L, "/");
    lua_insert(L, -2);
  }
  if (cut) lua_pushliteral(L, REDACTED_QUERY);
  lua_concat(L, 1 + slash + cut);
}


/* ======================================================================
** The transfer object
** ====================================================================== */

static Transfer *to_transfer(lua_State *L, int idx) {
  return (Transfer *)luaL_checkudata(L, idx, HANDLE_MT);
}

/* Pushes the transfer's user-value table, making it on first use. */
static void push_uv(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (atai_getuv(L, idx) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, -1);
    atai_setuv(L, idx);
  }
}


/* ======================================================================
** Results: the decoded body, or nil and an error table
** ====================================================================== */

/* t.method, t.url, and t.status when a response came. Stack: t. */
static void set_exchange_fields(lua_State *L, const Transfer *t, long status) {
  lua_pushstring(L, t->method);
  lua_setfield(L, -2, "method");
  push_shown_url(L, t, 0); /* a presigned URL without its query */
  lua_setfield(L, -2, "url");
  if (status > 0) {
    lua_pushinteger(L, status);
    lua_setfield(L, -2, "status");
  }
}

/* Adds the fields every request error carries. Stack: err. */
static void error_set_request(lua_State *L, const Transfer *t) {
  lua_pushboolean(L, t->retryable);
  lua_setfield(L, -2, "retryable");
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempts");
  lua_pushnumber(L, t->elapsed);
  lua_setfield(L, -2, "elapsed");
  set_exchange_fields(L, t, t->outcome == OUTCOME_CANCELLED ? 0 : t->status);
}

/* err.body: at most ERROR_BODY_MAX bytes of the response. Stack: err. */
static void error_set_body(lua_State *L, const Transfer *t) {
  if (t->x->body.len == 0) return;
  lua_pushlstring(L, t->x->body.data, t->x->body.len < ERROR_BODY_MAX ? t->x->body.len : ERROR_BODY_MAX);
  lua_setfield(L, -2, "body");
}

/* The message of a transport failure: what happened, in words. */
static const char *transport_message(lua_State *L, const Transfer *t) {
  const struct CurlKind *k = curl_kind(t->result);
  const char *detail = t->x->errbuf && t->x->errbuf[0] ? t->x->errbuf : curl_easy_strerror(t->result);
  if (t->result == CURLE_COULDNT_CONNECT && (t->os_errno == EMFILE || t->os_errno == ENFILE))
    return lua_pushfstring(L, "too many open files: cannot open a connection (%s)", detail);
  if (t->result == CURLE_OUT_OF_MEMORY) return lua_pushfstring(L, "%s", k->message);
  if (k->message) return lua_pushfstring(L, "%s (%s)", k->message, detail);
  return lua_pushfstring(L, "%s", detail); /* lua_pushstring returns void on 5.1 */
}

/* Pushes the error for a transfer that did not complete. */
static void push_transport_error(lua_State *L, const Transfer *t) {
  if (t->outcome == OUTCOME_CANCELLED) {
    error_new(L, "cancelled", t->client == NULL || t->client->life >= LIFE_CLOSING
                                  ? "the request was cancelled: its client was closed"
                                  : "the request was cancelled");
  } else if (t->outcome == OUTCOME_NO_MEMORY) {
    error_new(L, "too_large", "not enough memory for the response");
  } else if (t->outcome == OUTCOME_TOO_LARGE) {
    char message[96];
    snprintf(message, sizeof message, "response body larger than max_response_bytes (%lld bytes)",
             (long long)(t->client ? t->client->max_response_bytes : 0));
    error_new(L, "too_large", message);
  } else {
    transport_message(L, t);
    error_new(L, curl_kind(t->result)->kind, lua_tostring(L, -1));
    lua_remove(L, -2);
    lua_pushinteger(L, (lua_Integer)t->result);
    lua_setfield(L, -2, "curl_code");
  }
  error_set_request(L, t);
}

/* Pushes the error for a completed exchange whose status is not a success. */
static void push_status_error(lua_State *L, const Transfer *t) {
  double ra = retry_after_seconds(&t->x->resp_headers);
  int top = lua_gettop(L);
  if (t->status >= 300 && t->status < 400)
    lua_pushfstring(L, "HTTP %d: redirect not followed (atai never sends the API key to "
                       "another location)", (int)t->status);
  else
    lua_pushfstring(L, "HTTP %d", (int)t->status);
  error_new(L, status_kind(t->status), lua_tostring(L, -1));
  lua_remove(L, -2);
  error_set_request(L, t);
  error_set_body(L, t);
  if (ra >= 0) {
    lua_pushnumber(L, ra);
    lua_setfield(L, -2, "retry_after");
  }
  if (t->x->body.len > 0 && json_decode(L, t->x->body.data, t->x->body.len) &&
      lua_type(L, -1) == LUA_TTABLE)
    error_read_envelope(L, top + 1);
  lua_settop(L, top + 1);
}

/* Pushes the error for a 2xx whose body is not the JSON expected. */
static void push_decode_error(lua_State *L, const Transfer *t, const char *why) {
  lua_pushfstring(L, "response is not the JSON expected: %s", why);
  error_new(L, "decode", lua_tostring(L, -1));
  lua_remove(L, -2);
  error_set_request(L, t);
  error_set_body(L, t);
}

/* Whether the body's first non-blank byte opens a JSON object. */
static int body_is_object(const Transfer *t) {
  size_t i;
  for (i = 0; i < t->x->body.len; i++) {
    char ch = t->x->body.data[i];
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') return ch == '{';
  }
  return 0;
}


/* Pushes the error of a stream failure (kind, message, and the fields of
** every request error). */
static void push_stream_error(lua_State *L, const Transfer *t) {
  const Stream *s = t->x->stream;
  const struct StreamErrorText *e = &stream_errors[s->error];
  char text[200];
  if (s->error == SE_IO)
    snprintf(text, sizeof text, "cannot %s the local file: %s", s->io_what,
             s->io_errno ? strerror(s->io_errno) : "it ended early (did it change?)");
  else
    snprintf(text, sizeof text, e->fmt, (long long)(s->error == SE_SHORT ? s->written : s->seen),
             (long long)(s->error == SE_TOO_LARGE ? s->max_bytes : s->expect));
  error_new(L, e->kind, text);
  error_set_request(L, t);
}

/* Pushes nil and an error; returns 2. */
static int push_failure(lua_State *L, const Transfer *t) {
  lua_pushnil(L);
  if (t->outcome == OUTCOME_CONFIG) error_new(L, "config", t->client->config_error);
  else if (t->outcome == OUTCOME_STREAM) push_stream_error(L, t);
  else if (t->outcome == OUTCOME_STATUS) push_status_error(L, t);
  else push_transport_error(L, t);
  return 2;
}

/* Pushes the results of a MODE_STREAM transfer that succeeded: the table
** {status, bytes, crc32c, content_length, headers}. Returns 1. */
static int stream_push_results(lua_State *L, const Transfer *t) {
  const Stream *s = t->x->stream;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, t->status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, (lua_Integer)(s->out ? s->written : s->length));
  lua_setfield(L, -2, "bytes");
  if (s->want_crc && s->crc_len == s->length) {
    lua_pushinteger(L, (lua_Integer)s->crc);
    lua_setfield(L, -2, "crc32c");
  }
  if (s->content_length >= 0) {
    lua_pushinteger(L, (lua_Integer)s->content_length);
    lua_setfield(L, -2, "content_length");
  }
  push_response_headers(L, &t->x->resp_headers);
  lua_setfield(L, -2, "headers");
  return 1;
}

/* Pushes the results of a finished transfer, by its mode: the decoded body
** (plus, for MODE_META, {status, headers, attempts}), true for a timer, or
** nil and an error. Returns how many. */
static int transfer_push_results(lua_State *L, const Transfer *t) {
  if (t->mode == MODE_TIMER) {
    if (t->outcome != OUTCOME_CANCELLED) {
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_pushnil(L);
    error_new(L, "cancelled", "the sleep was cancelled");
    return 2;
  }
  if (t->outcome != OUTCOME_OK) return push_failure(L, t);
  if (t->mode == MODE_STREAM) return stream_push_results(L, t);
  if (t->x->body.len == 0) {
    if (t->mode == MODE_OBJECT) {
      lua_pushnil(L);
      push_decode_error(L, t, "empty body");
      return 2;
    }
    lua_newtable(L);
  } else if (t->mode == MODE_OBJECT && !body_is_object(t)) {
    lua_pushnil(L);
    push_decode_error(L, t, "expected a JSON object");
    return 2;
  } else if (!json_decode(L, t->x->body.data, t->x->body.len)) {
    lua_pushnil(L);
    push_decode_error(L, t, lua_tostring(L, -2));
    lua_remove(L, -3); /* cjson's message */
    return 2;
  }
  if (t->mode != MODE_META) return 1;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, t->status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempts");
  push_response_headers(L, &t->x->resp_headers);
  lua_setfield(L, -2, "headers");
  return 2;
}

/* Pushes nil and a "config" error when the client cannot send requests. */
static int client_unusable(lua_State *L, Client *c) {
  if (c->config_error == NULL) return 0;
  lua_pushnil(L);
  error_new(L, "config", c->config_error);
  return 1;
}

/* Pushes the stored results of a done handle; returns their count. */
static int push_stored_results(lua_State *L, int idx) {
  int n, i;
  push_uv(L, idx);
  lua_rawgeti(L, -1, UV_RESULTS);
  if (lua_type(L, -1) != LUA_TTABLE) {
    lua_pop(L, 2);
    lua_pushnil(L);
    error_new(L, "cancelled", "the handle's results were dropped");
    return 2;
  }
  lua_getfield(L, -1, "n");
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  luaL_checkstack(L, n, "too many results");
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  return n;
}

/* Pushes nil and a "pending" error. */
static int push_pending(lua_State *L, const char *what) {
  lua_pushnil(L);
  error_new(L, "pending", what);
  return 2;
}


#define QUEUE_GLOBAL "atai.queue" /* registry: callbacks of ownerless handles */
#define ON_WORK_KEY "atai.on_work" /* registry: the work-started hook, or nil */
#define RUNS_KEY "atai.runs"      /* registry: coroutines started by atai.run */


/* ======================================================================
** The callback queue: a Lua table {h = head, t = tail, [i] = item}
** ====================================================================== */

/* Pushes the client's queue, or the global one for c == NULL. */
static void push_queue(lua_State *L, Client *c) {
  if (c && c->queue_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, c->queue_ref);
  else lua_getfield(L, LUA_REGISTRYINDEX, QUEUE_GLOBAL);
}

/* Appends the item on top of the stack to the queue below it; pops it. */
static void queue_push(lua_State *L) {
  int tail;
  lua_getfield(L, -2, "t");
  tail = lua_isnil(L, -1) ? 1 : (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  lua_rawseti(L, -2, tail);
  lua_pushinteger(L, tail + 1);
  lua_setfield(L, -2, "t");
}

/* Pops the next item of the queue on top into the stack (nil when empty). */
static void queue_pop(lua_State *L) {
  int head, tail;
  lua_getfield(L, -1, "h");
  lua_getfield(L, -2, "t");
  head = lua_isnil(L, -2) ? 1 : (int)lua_tointeger(L, -2);
  tail = lua_isnil(L, -1) ? 1 : (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  if (head >= tail) {
    lua_pushnil(L);
    return;
  }
  lua_rawgeti(L, -1, head);
  lua_pushnil(L);
  lua_rawseti(L, -3, head);
  lua_pushinteger(L, head + 1);
  lua_setfield(L, -3, "h");
}

/* Queues fn (at fn_idx) to be called with the `n` values on top of the
** stack, which it pops. `free_call`: run unguarded (a blocking call's own).
** The queue is looked up after the item is made: a finalizer run by that
** allocation may close the client, and a closed client's queue is gone
** (its items then go to the global queue). */
static void enqueue_call(lua_State *L, Client *c, int fn_idx, int free_call, int n) {
  int i, base;
  fn_idx = lua_absindex(L, fn_idx);
  base = lua_gettop(L) - n;
  lua_createtable(L, n + 3, 0);
  lua_pushvalue(L, fn_idx);
  lua_rawseti(L, -2, 1);
  lua_pushboolean(L, free_call);
  lua_rawseti(L, -2, 2);
  lua_pushinteger(L, n);
  lua_rawseti(L, -2, 3);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, base + i);
    lua_rawseti(L, -2, 3 + i);
  }
  push_queue(L, c);
  lua_insert(L, -2);
  queue_push(L);
  lua_settop(L, base);
}

/* Queues fn (at fn_idx) with the stored results of the handle at handle_idx. */
static void engine_enqueue_results(lua_State *L, Client *c, int fn_idx, int free_call, int handle) {
  int n;
  fn_idx = lua_absindex(L, fn_idx);
  n = push_stored_results(L, handle);
  lua_remove(L, -n - 1); /* the user-value table under them */
  enqueue_call(L, (c && c->life != LIFE_CLOSED) ? c : NULL, fn_idx, free_call, n);
}

/* Runs the next item of the queue on top; returns 0 when it was empty.
** Guarded items count as "in a callback" for the client; the item is off
** the queue before it runs, so an error leaves the queue consistent. */
static int run_one(lua_State *L, Client *c) {
  int n, free_call, status, i;
  queue_pop(L);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_rawgeti(L, -1, 2);
  free_call = lua_toboolean(L, -1);
  lua_rawgeti(L, -2, 3);
  n = (int)lua_tointeger(L, -1);
  lua_pop(L, 2);
  luaL_checkstack(L, n + 2, "too many callback values");
  lua_rawgeti(L, -1, 1);
  for (i = 1; i <= n; i++) lua_rawgeti(L, -1 - i, 3 + i);
  if (c && !free_call) c->in_callback++;
  if (c && free_call) c->in_free_callback++;
  status = lua_pcall(L, n, 0, 0);
  if (c) c->callbacks_run++;
  if (c && !free_call) c->in_callback--;
  if (c && free_call) c->in_free_callback--;
  if (status != LUA_OK) lua_error(L); /* after the flag is down */
  lua_pop(L, 1); /* the item */
  return 1;
}

/* Phase 3: runs the queued callbacks of c, then the ownerless ones. Stops
** early when `until` (monotonic s, or 0) has passed, and as soon as a
** callback has asked to close c: the caller closes it (run_callbacks). */
static void drain(lua_State *L, Client *c, double until) {
  int top = lua_gettop(L), which;
  for (which = 0; which < 2; which++) {
    for (;;) {
      int ran;
      if (until > 0 && monotonic_seconds() > until) break;
      push_queue(L, which == 0 ? c : NULL);
      if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        break;
      }
      ran = run_one(L, c);
      lua_settop(L, top);
      if (c && c->life == LIFE_CLOSE_ASKED && c->in_callback == 0 && c->in_free_callback == 0)
        return;
      if (!ran) break;
    }
  }
}


/* ======================================================================
** Phase 2: finished transfers become Lua values; notices are queued
** ====================================================================== */

/* Pushes {attempt, delay, kind, status, method, url} for on_retry. */
static void push_retry_info(lua_State *L, const Transfer *t) {
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, t->attempts);
  lua_setfield(L, -2, "attempt");
  lua_pushnumber(L, t->retry_delay);
  lua_setfield(L, -2, "delay");
  lua_pushstring(L, t->result == CURLE_OK ? status_kind(t->status) : curl_kind(t->result)->kind);
  lua_setfield(L, -2, "kind");
  set_exchange_fields(L, t, t->status);
}

/* Pushes {method, url, path, status | kind, seconds, attempt} for
** on_exchange; a presigned URL's query shows as REDACTED_QUERY. */
static void push_exchange_info(lua_State *L, const Transfer *t) {
  lua_createtable(L, 0, 7);
  set_exchange_fields(L, t, t->exchange_status);
  push_shown_url(L, t, 1);
  lua_setfield(L, -2, "path");
  lua_pushnumber(L, t->exchange_seconds);
  lua_setfield(L, -2, "seconds");
  lua_pushinteger(L, t->exchange_attempt);
  lua_setfield(L, -2, "attempt");
  if (t->exchange_result != CURLE_OK) {
    lua_pushstring(L, curl_kind(t->exchange_result)->kind);
    lua_setfield(L, -2, "kind");
  } else if (!(t->exchange_status >= 200 && t->exchange_status < 300) && t->exchange_status != 304) {
    lua_pushstring(L, status_kind(t->exchange_status));
    lua_setfield(L, -2, "kind");
  }
}

/* Queues the on_exchange/on_retry calls transfers owe. */
static void deliver_notices(lua_State *L, Client *c) {
  for (;;) {
    Transfer *t;
    int ref, is_retry;
    for (t = c->head; t && !t->notify_exchange && !t->notify_retry; t = t->next) {}
    if (t == NULL || c->life == LIFE_CLOSED) return;
    is_retry = !t->notify_exchange;
    if (is_retry) t->notify_retry = 0;
    else t->notify_exchange = 0;
    ref = is_retry ? c->on_retry_ref : c->on_exchange_ref;
    if (ref == LUA_NOREF) continue;
    /* The transfer stays on the list while its info is made: only its own
    ** fields are read, and it is re-found from the head each time. Its
    ** handle is held on the stack meanwhile: a finalizer run by these
    ** allocations may close the client, which drops an async handle's
    ** anchor (a blocking call's handle is on its caller's stack). */
    if (t->anchor != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
    else lua_pushnil(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref);
    if (is_retry) push_retry_info(L, t);
    else push_exchange_info(L, t);
    enqueue_call(L, c, -2, t->blocking, 1);
    lua_pop(L, 2);
  }
}

/* Makes one finished transfer's results: stored in its handle, callbacks
** queued, anchor dropped. A blocking call's transfer is only marked done:
** its caller makes the results itself. */
static void deliver_one(lua_State *L, Client *c, Transfer *t) {
  int n, i, handle, top = lua_gettop(L);
  if (t->timer == NULL) list_unlink(c, t); /* a finished sleep is on no list */
  c->finished--;
  if (t->anchor == LUA_NOREF) {
    t->state = T_DONE;
    return;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->anchor);
  handle = lua_gettop(L);
  luaL_unref(L, LUA_REGISTRYINDEX, t->anchor);
  t->anchor = LUA_NOREF;
  if (!t->internal) c->pending--;
  n = transfer_push_results(L, t);
  push_uv(L, handle);
  lua_createtable(L, n, 1);
  for (i = 1; i <= n; i++) {
    lua_pushvalue(L, handle + i);
    lua_rawseti(L, -2, i);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
  lua_rawseti(L, -2, UV_RESULTS);
  t->state = T_DONE;
  transfer_free_buffers(t);
  lua_rawgeti(L, -1, UV_CALLBACKS); /* {fn, free, fn, free, ...} */
  if (lua_type(L, -1) == LUA_TTABLE) {
    int cbs = lua_gettop(L), count = (int)lua_rawlen(L, cbs);
    for (i = 1; i + 1 <= count; i += 2) {
      int j;
      lua_rawgeti(L, cbs, i);
      lua_rawgeti(L, cbs, i + 1);
      for (j = 1; j <= n; j++) lua_pushvalue(L, handle + j);
      enqueue_call(L, c, -n - 2, lua_toboolean(L, -n - 1), n);
      lua_pop(L, 2);
    }
  }
  lua_settop(L, top);
}

/* Phase 2; returns how many handles completed: finished transfers, then
** sleeps whose timer is due. Stops early past `until`. */
static int deliver(lua_State *L, Client *c, double until) {
  int completed = 0;
  Transfer *t;
  deliver_notices(L, c);
  while (c->finished > 0) {
    if (until > 0 && completed > 0 && monotonic_seconds() > until) break;
    for (t = c->head; t && t->state != T_FINISHED; t = t->next) {}
    if (t == NULL) break;
    if (!t->internal) completed++;
    deliver_one(L, c, t);
  }
  while (!(until > 0 && completed > 0 && monotonic_seconds() > until) &&
         (t = timer_take_due(c, monotonic_seconds())) != NULL) {
    if (!t->internal) completed++;
    deliver_one(L, c, t);
  }
  if (completed > 0) trim_when_idle(c);
  return completed;
}


/* ======================================================================
** Closing
** ====================================================================== */

/* Cancels what is in flight (their callbacks run here, the one place they
** run outside poll/wait), then frees the libcurl side. */
static void engine_close(lua_State *L, Client *c) {
  Transfer *t;
  if (c->life >= LIFE_CLOSING) return;
  c->life = LIFE_CLOSING;
  for (t = c->head; t; t = t->next) transfer_cancel(t);
  while (c->timers_head) { /* a cancelled sleep is on no list: delivered now */
    t = c->timers_head->handle;
    transfer_cancel(t);
    deliver_one(L, c, t);
  }
  deliver(L, c, 0);
  c->in_callback++; /* a callback run here may not re-enter the engine */
  drain(L, c, 0);
  c->in_callback--;
  client_release(L, c); /* LIFE_CLOSED */
}

/* Phase 3 (drain), then the close a callback asked for, once it returned. */
static void run_callbacks(lua_State *L, Client *c, double until) {
  drain(L, c, until);
  if (c->life == LIFE_CLOSE_ASKED && c->in_callback == 0 && c->in_free_callback == 0)
    engine_close(L, c);
}


/* ======================================================================
** poll, wait, pending, timeout, sockets
** ====================================================================== */

/* One protected engine step: lets Ctrl-C's hook (which fires on a call)
** interrupt a blocking wait between slices. Args c, wait, until; its
** upvalue is the module's decode function, like every C function here. */
static int step_protected(lua_State *L) {
  Client *c = (Client *)lua_touserdata(L, 1);
  double wait = lua_tonumber(L, 2), until = lua_tonumber(L, 3);
  int completed;
  step_io(c, wait, until);
  completed = c->life == LIFE_CLOSED ? 0 : deliver(L, c, until);
  run_callbacks(L, c, until);
  lua_pushinteger(L, completed);
  return 1;
}

/* Runs one step; returns how many handles completed. `t`, when given, is a
** blocking call's transfer, detached when the step raises. */
static int engine_step(lua_State *L, Client *c, double wait, double until, Transfer *t) {
  int status, completed;
  lua_pushvalue(L, lua_upvalueindex(UV_DECODE));
  lua_pushcclosure(L, step_protected, MODULE_UPVALUES);
  lua_pushlightuserdata(L, c);
  lua_pushnumber(L, wait);
  lua_pushnumber(L, until);
  status = lua_pcall(L, 3, 1, 0);
  if (status != LUA_OK) {
    if (t && t->state != T_DONE) transfer_detach(t);
    lua_error(L);
  }
  completed = (int)lua_tointeger(L, -1);
  lua_pop(L, 1);
  return completed;
}

/* Steps the engine until a handle has completed (with `any_callback`: or
** any callback has run), or `seconds` have passed, or the budget's end
** `until` (> 0) has; returns how many handles completed. */
static int poll_loop(lua_State *L, Client *c, double start, double seconds, double until,
                     int any_callback) {
  unsigned long callbacks_before = c->callbacks_run;
  int completed = 0;
  do {
    double left = start + seconds - monotonic_seconds();
    completed += engine_step(L, c, left < WAIT_SLICE ? left : WAIT_SLICE, until, NULL);
    if (c->life == LIFE_CLOSED) break;
    if (until > 0 && monotonic_seconds() > until) break;
    if (any_callback && c->callbacks_run != callbacks_before) break;
  } while (completed == 0 && monotonic_seconds() < start + seconds);
  return completed;
}

/* Drives the engine until the transfer at idx is done, or `seconds` (< 0:
** no limit) have passed; then pushes its results, or nil and a "pending"
** error. A blocking call's own transfer is detached if a callback raises. */
static int engine_wait(lua_State *L, Client *c, int idx, double seconds) {
  Transfer *t = (Transfer *)lua_touserdata(L, idx);
  double start = monotonic_seconds();
  while (t->state != T_DONE && c->life != LIFE_CLOSED) {
    double wait = WAIT_SLICE;
    if (seconds >= 0) {
      double left = start + seconds - monotonic_seconds();
      if (left <= 0) break;
      if (left < wait) wait = left;
    }
    engine_step(L, c, wait, 0, t->anchor == LUA_NOREF ? t : NULL);
  }
  if (t->state != T_DONE) return push_pending(L, "the wait timed out; the request goes on");
  if (t->anchor == LUA_NOREF && t->blocking) {
    int n = transfer_push_results(L, t);
    transfer_free_buffers(t);
    return n;
  }
  return push_stored_results(L, idx);
}

/* Whether callbacks wait in c's queue or the global one (poll drains both). */
static int queue_waiting(lua_State *L, Client *c) {
  int which, waiting = 0;
  for (which = 0; which < 2 && !waiting; which++) {
    push_queue(L, which == 0 ? c : NULL);
    if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "h");
      lua_getfield(L, -2, "t");
      waiting = (lua_isnil(L, -2) ? 1 : lua_tointeger(L, -2)) < (lua_isnil(L, -1) ? 1 : lua_tointeger(L, -1));
      lua_pop(L, 2);
    }
    lua_pop(L, 1);
  }
  return waiting;
}

/* Whether the running coroutine was started by atai.run: then a blocking
** call yields its handle instead of waiting. */
static int in_run(lua_State *L) {
  int is_run;
  if (lua_pushthread(L)) {
    lua_pop(L, 1);
    return 0;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, RUNS_KEY);
  lua_pushvalue(L, -2);
  lua_rawget(L, -2);
  is_run = lua_toboolean(L, -1);
  lua_pop(L, 3);
  return is_run;
}



/* ======================================================================
** Starting transfers
** ====================================================================== */

/* The "work started" hook (P.on_work): tells whoever drives the client's
** engine from outside (atai.uv) that a transfer is about to be in flight.
** Runs before the transfer is, so an error it raises leaves nothing half
** started. */
static void notify_work(lua_State *L, int client_idx) {
  lua_getfield(L, LUA_REGISTRYINDEX, ON_WORK_KEY);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return;
  }
  lua_pushvalue(L, client_idx);
  lua_call(L, 1, 0);
}

/* Puts the new transfer at `idx` (client at client_idx) in flight. Async
** ones are anchored and hold their client through their user value;
** `internal` ones (atai's own) are not counted by pending(). */
static void transfer_submit(lua_State *L, Client *c, int client_idx, int idx, int blocking,
                            int internal, Outcome at_once) {
  Transfer *t = (Transfer *)lua_touserdata(L, idx);
  notify_work(L, client_idx);
  t->client = c;
  t->blocking = blocking;
  t->internal = blocking || internal;
  t->started = monotonic_seconds();
  if (!blocking) {
    push_uv(L, idx);
    lua_pushvalue(L, client_idx);
    lua_rawseti(L, -2, UV_CLIENT);
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    t->anchor = luaL_ref(L, LUA_REGISTRYINDEX);
    if (!t->internal) c->pending++;
  }
  if (t->timer == NULL) { /* a sleep is only a timer of the engine */
    transfer_classify(c, t);
    list_append(c, t);
  }
  if (c->life == LIFE_CLOSED) {
    /* A finalizer closed the client while the request was being built
    ** (any allocation above may run one): done now, cancelled. */
    transfer_finish(c, t, OUTCOME_CANCELLED, t->started);
    deliver_one(L, c, t);
  } else if (t->timer) {
    timer_set(c, t);
  } else if (at_once != OUTCOME_PENDING) {
    transfer_finish(c, t, at_once, t->started); /* fails at the next poll */
  }
  else start_queued(c, t->started, 0);
}
