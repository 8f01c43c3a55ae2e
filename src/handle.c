/*
** handle.c: layer 4, Lua bindings of one transfer: the "atai.Handle"
** userdata users hold (done, result, cancel) and its metatable, which this
** file registers (handle_open).
*/

/* Pushes a new transfer of client c (or none, for c == NULL) for `mode`,
** with the client's defaults; it holds no response buffer until its first
** attempt (attempt.c). */
static Transfer *transfer_new(lua_State *L, Client *c, Mode mode, const char *method) {
  /* A request has its Exchange right after its Transfer, a sleep its
  ** Timer (sizeof (Transfer) keeps either aligned). */
  size_t size = sizeof(Transfer) + (mode == MODE_TIMER ? sizeof(Timer) : sizeof(Exchange));
  Transfer *t = (Transfer *)lua_newuserdatauv(L, size, 1);
  memset(t, 0, size);
  if (mode == MODE_TIMER) {
    t->timer = (Timer *)(void *)(t + 1);
    t->timer->handle = t;
  } else {
    t->x = (Exchange *)(void *)(t + 1);
  }
  t->anchor = LUA_NOREF;
  t->mode = mode;
  t->method = method;
  t->state = T_QUEUED;
  t->timeout_ms = -1; /* the client's timeout (attempt.c), unless the call sets one */
  luaL_setmetatable(L, HANDLE_MT);
  if (c) {
    int idempotent = method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    t->policy = idempotent ? RETRY_TRANSIENT : RETRY_UNSENT;
    t->max_retries = c->max_retries;
  }
  return t;
}

/* h:done() -> whether the handle has completed. */
static int l_handle_done(lua_State *L) {
  lua_pushboolean(L, to_transfer(L, 1)->state == T_DONE);
  return 1;
}

/* h:result() -> the results once done, else nil, err (kind "pending"). */
static int l_handle_result(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  if (t->state != T_DONE) return push_pending(L, "the request is still in flight");
  return push_stored_results(L, 1);
}

/* h:cancel(): aborts the handle (its result: nil, err of kind "cancelled");
** nothing on a handle already done. */
static int l_handle_cancel(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  if (transfer_cancel(t)) deliver_one(L, t->client, t); /* done now; callbacks at the next poll */
  return 0;
}

/* h:_on_done(fn, free): registers fn; when the handle is already done it is
** queued for the next poll (never called from here). `free`: run it on the
** waiting caller's stack, unguarded (the callbacks of a blocking call). */
static int l_handle_on_done(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_settop(L, 3);
  if (t->state != T_DONE) {
    push_uv(L, 1);
    lua_rawgeti(L, -1, UV_CALLBACKS);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_newtable(L);
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, UV_CALLBACKS);
    }
  }
  /* Asked again: a finalizer run by the allocations above may have closed
  ** the client, which completes the handle. */
  if (t->state == T_DONE) {
    lua_settop(L, 3);
    engine_enqueue_results(L, t->client, 2, lua_toboolean(L, 3), 1);
  } else {
    /* callbacks[#+1] = fn, callbacks[#+1] = free: pairs, in order */
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    lua_pushboolean(L, lua_toboolean(L, 3));
    lua_rawseti(L, -2, (int)lua_rawlen(L, -2) + 1);
    t->blocking = t->blocking || lua_toboolean(L, 3);
  }
  lua_settop(L, 1);
  return 1;
}

/* h:_internal(): started by atai itself, so not counted by pending(). */
static int l_handle_internal(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  if (!t->internal && t->state != T_DONE && t->client) t->client->pending--;
  t->internal = 1;
  lua_settop(L, 1);
  return 1;
}

/* h:_client() -> the client the handle belongs to (nil once detached). */
static int l_handle_client(lua_State *L) {
  to_transfer(L, 1);
  push_uv(L, 1);
  lua_rawgeti(L, -1, UV_CLIENT);
  return 1;
}

/* tostring(h) */
static int l_handle_tostring(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  static const char *const states[] = {"queued", "running", "backoff", "finished", "done"};
  if (t->mode == MODE_TIMER) /* a set timer shows as "timer" */
    lua_pushfstring(L, "atai.Handle (sleep, %s): %p", t->state == T_RUNNING ? "timer" : states[t->state],
                    (void *)t);
  else {
    push_shown_url(L, t, 0);
    lua_pushfstring(L, "atai.Handle (%s %s, %s): %p", t->method, lua_tostring(L, -1), states[t->state],
                    (void *)t);
  }
  return 1;
}

/* __gc: a transfer nobody holds any more (a blocking call interrupted by
** an error); in-flight ones are anchored and never get here. */
static int l_handle_gc(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  transfer_detach(t);
  transfer_free_buffers(t);
  return 0;
}


/* h:_wait([seconds]) -> results, or nil, err (kind "pending") after seconds. */
static int l_handle_wait(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  double seconds = luaL_optnumber(L, 2, -1);
  if (lua_isnoneornil(L, 2)) seconds = -1;
  else if (!(seconds >= 0)) return arg_error(L, 2, "wait", "seconds: number >= 0 expected");
  if (t->state == T_DONE) return push_stored_results(L, 1);
  if (t->client->in_callback)
    return raise_at_user(L, "blocking call inside a callback: use client.async", NULL, NULL);
  lua_settop(L, 1);
  return engine_wait(L, t->client, 1, seconds);
}


static const luaL_Reg handle_methods[] = {
  {"done", l_handle_done},
  {"result", l_handle_result},
  {"cancel", l_handle_cancel},
  {NULL, NULL}
};

/* What the Lua layer may do to a handle and users may not (atai.core.private). */
static const luaL_Reg handle_private[] = {
  {"on_done", l_handle_on_done},
  {"wait", l_handle_wait},
  {"internal", l_handle_internal},
  {"client_of", l_handle_client},
  {NULL, NULL}
};

static const luaL_Reg handle_meta[] = {
  {"__gc", l_handle_gc},
  {"__tostring", l_handle_tostring},
  {NULL, NULL}
};

/* Registers metatable atai.Handle and its methods (module.Handle), and its
** private functions in the table at `private`. */
static void handle_open(lua_State *L, int module, int decode, int private) {
  new_type(L, HANDLE_MT, handle_meta, handle_methods, decode);
  lua_setfield(L, module, "Handle");
  lua_pushvalue(L, private);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, handle_private, MODULE_UPVALUES);
  lua_pop(L, 1);
}
