/*
** engine.c: a client's engine. It steps every transfer of the client and
** never sleeps except in poll(2) for at most the time asked for.
**
** One step has three phases, and only the last two touch Lua:
**   1. I/O (plain C): start queued transfers up to max_concurrency, fire due
**      times (retry backoffs, sleeps), let libcurl act on ready sockets and
**      its timer, and record each finished attempt in its transfer (retry
**      scheduled as a due time, or outcome kept). libcurl's socket and
**      timer callbacks only record what they are told.
**   2. Delivery: each finished transfer, taken off the client's list first,
**      becomes Lua values (stored in its handle), and its callbacks are
**      queued; on_retry and on_exchange notices are queued too.
**   3. Callbacks: the queue (a Lua table) is drained one item at a time,
**      each removed before it runs, so an error raised by one propagates
**      out of poll/wait and the rest still run at the next poll.
** A finalizer that runs during phase 2 or 3 may use or close the client:
** every list is consistent between two Lua calls, and a transfer being
** made into Lua values is off every list and owns its buffers.
*/

#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif

#define QUEUE_GLOBAL "atai.queue" /* registry: callbacks of ownerless handles */
#define RUNS_KEY "atai.runs"      /* registry: coroutines started by atai.run */

static double monotonic_seconds(void);


/* ======================================================================
** libcurl's socket and timer callbacks: they only record
** ====================================================================== */

static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  Client *c = (Client *)ud;
  int i;
  (void)e;
  (void)sockp;
  for (i = 0; i < c->nwatches && c->watches[i].fd != fd; i++) {}
  if (what == CURL_POLL_REMOVE) {
    if (i < c->nwatches) c->watches[i] = c->watches[--c->nwatches];
    return 0;
  }
  if (i == c->nwatches) {
    if (c->nwatches == c->watches_cap) {
      int cap = c->watches_cap ? c->watches_cap * 2 : 16;
      Watch *w = (Watch *)realloc(c->watches, (size_t)cap * sizeof *w);
      struct pollfd *p;
      if (w == NULL) return -1; /* libcurl fails the transfer */
      c->watches = w;
      p = (struct pollfd *)realloc(c->pollfds, (size_t)cap * sizeof *p);
      if (p == NULL) return -1;
      c->pollfds = p;
      c->watches_cap = cap;
    }
    c->watches[c->nwatches++].fd = fd;
  }
  c->watches[i].what = what;
  return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *ud) {
  Client *c = (Client *)ud;
  (void)multi;
  c->curl_due = timeout_ms < 0 ? -1 : monotonic_seconds() + (double)timeout_ms / 1000.0;
  return 0;
}

/* Whether this libcurl multiplexes HTTP/2 safely: 7.88.0 corrupted
** multiplexed data, so it gets one request per connection. */
static int multiplex_safe(void) {
  const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
#ifdef CURL_VERSION_HTTP2
  if (!(v->features & CURL_VERSION_HTTP2)) return 0;
#else
  return 0;
#endif
  return v->version_num != 0x075800;
}

/* Hooks the client's multi handle to the engine. */
static void engine_init(Client *c) {
  c->multiplex = c->secure && multiplex_safe();
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, (void *)c);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, (void *)c);
  curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, c->multiplex ? CURLPIPE_MULTIPLEX : CURLPIPE_NOTHING);
  /* keep a connection per transfer slot for reuse */
  curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, (long)(c->max_concurrency + 4));
}


/* ======================================================================
** The client's list of live transfers
** ====================================================================== */

static void list_append(Client *c, Transfer *t) {
  t->prev = c->tail;
  t->next = NULL;
  if (c->tail) c->tail->next = t;
  else c->head = t;
  c->tail = t;
}

static void list_unlink(Client *c, Transfer *t) {
  if (t->prev) t->prev->next = t->next;
  else c->head = t->next;
  if (t->next) t->next->prev = t->prev;
  else c->tail = t->prev;
  t->prev = t->next = NULL;
}

/* Takes a running attempt off the multi handle; the easy handle goes back
** to the pool. */
static void attempt_detach(Client *c, Transfer *t) {
  if (t->easy == NULL) return;
  if (c->multi) curl_multi_remove_handle(c->multi, t->easy);
  if (t->stream) stream_restore(c, t->easy);
  pool_give(c, t->easy);
  t->easy = NULL;
  c->running--;
}

/* Marks a transfer finished: its outcome is known, its results not made. */
static void transfer_finish(Client *c, Transfer *t, double now) {
  t->state = T_FINISHED;
  t->elapsed = now - t->started;
  c->finished++;
}

/* Cancels a transfer that has not finished; returns whether it did. */
static int transfer_cancel(Transfer *t) {
  Client *c = t->client;
  if (c == NULL || t->state == T_FINISHED || t->state == T_DONE) return 0;
  attempt_detach(c, t);
  t->cancelled = 1;
  t->retryable = 0;
  t->notify_retry = 0;
  transfer_finish(c, t, monotonic_seconds());
  return 1;
}

/* Takes a transfer off its client for good (its handle is being collected,
** or its blocking caller is unwinding): no result will be made for it. */
static void transfer_detach(Transfer *t) {
  Client *c = t->client;
  transfer_cancel(t);
  if (c == NULL || t->state != T_FINISHED) return;
  list_unlink(c, t);
  c->finished--;
  if (!t->internal) c->pending--;
  t->state = T_DONE;
}


/* ======================================================================
** Phase 1: I/O, due times and finished attempts (no Lua)
** ====================================================================== */

/* Starts the next attempt of t now. */
static void attempt_start(Client *c, Transfer *t, double now) {
  CURL *e = pool_take(c);
  buffer_clear(&t->body);
  buffer_clear(&t->resp_headers);
  t->too_large = t->out_of_memory = 0;
  t->errbuf[0] = '\0';
  t->status = 0;
  t->os_errno = 0;
  t->socket_errno = 0;
  t->result = CURLE_OK;
  t->attempts++;
  t->attempt_started = now;
  if (e == NULL) {
    t->out_of_memory = 1;
    t->result = CURLE_OUT_OF_MEMORY;
    transfer_finish(c, t, now);
    return;
  }
  attempt_prepare(c, t, e);
  t->easy = e;
  c->running++;
  t->state = T_RUNNING;
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    attempt_detach(c, t);
    t->result = CURLE_FAILED_INIT;
    transfer_finish(c, t, now);
  }
}

/* Until when a 429 with Retry-After holds t's next attempt (monotonic s;
** in the past when nothing does): an API 429 holds every transfer of the
** client, a storage host's 429 only the transfers to that host. */
static double held_until(const Client *c, const Transfer *t) {
  double until = c->paused_until;
  int i;
  if (!t->presigned) return until;
  for (i = 0; i < HOST_HOLDS; i++)
    if (c->holds[i].host_key == t->host_key && c->holds[i].until > until) until = c->holds[i].until;
  return until;
}

/* Records a 429's Retry-After: new attempts wait until `until`, those of
** the client for the API's own 429, those to t's host for a storage
** host's (its slot, a free or expired one, or the one freed soonest). */
static void hold_new_attempts(Client *c, const Transfer *t, double until) {
  HostHold *slot = NULL;
  int i;
  if (!t->presigned) {
    if (until > c->paused_until) c->paused_until = until;
    return;
  }
  for (i = 0; i < HOST_HOLDS; i++) {
    HostHold *h = &c->holds[i];
    if (h->until > 0 && h->host_key == t->host_key) {
      slot = h;
      break;
    }
    if (slot == NULL || h->until < slot->until) slot = h;
  }
  if (slot->host_key == t->host_key && slot->until > until) return;
  slot->host_key = t->host_key;
  slot->until = until;
}

/* Starts queued transfers, oldest first, while slots are free and no rate
** limit holds them; with a budget (`until` > 0), only until then: the rest
** start at the next poll. */
static void start_queued(Client *c, double now, double until) {
  Transfer *t, *next;
  if (now < c->paused_until) return;
  for (t = c->head; t && c->running < c->max_concurrency; t = next) {
    next = t->next;
    if (t->state != T_QUEUED || now < held_until(c, t)) continue;
    attempt_start(c, t, now);
    if (until > 0 && monotonic_seconds() > until) return;
  }
}

/* Records the end of t's attempt: a retry as a due time, or the outcome. */
static void attempt_end(Client *c, Transfer *t, CURLcode result, double now) {
  long version = 0;
  if (t->stream) result = stream_end(t, result);
  t->result = result;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
  curl_easy_getinfo(t->easy, CURLINFO_OS_ERRNO, &t->os_errno);
  if (t->os_errno == 0) t->os_errno = t->socket_errno;
#if CURL_AT_LEAST_VERSION(7, 50, 0)
  curl_easy_getinfo(t->easy, CURLINFO_HTTP_VERSION, &version);
#endif
  if (version == CURL_HTTP_VERSION_2_0) c->h2_seen = 1;
  attempt_detach(c, t);
  if (c->on_exchange_ref != LUA_NOREF) {
    t->notify_exchange = 1;
    t->exchange_seconds = now - t->attempt_started;
    t->exchange_attempt = t->attempts;
    t->exchange_status = t->status;
    t->exchange_result = result;
  }
  t->retryable = !outcome_ok(t) && attempt_retryable(t);
  if (t->retryable && t->attempts <= t->max_retries) {
    double delay = retry_delay(c, t), wait = delay * c->time_scale;
    if (t->status == 429 && retry_after_seconds(t) >= 0) hold_new_attempts(c, t, now + wait);
    t->state = T_BACKOFF;
    t->due = now + wait;
    t->retry_delay = delay;
    t->notify_retry = c->on_retry_ref != LUA_NOREF;
    return;
  }
  transfer_finish(c, t, now);
}

/* Reads libcurl's finished-transfer messages. */
static void read_messages(Client *c, double now) {
  CURLMsg *msg;
  int queued;
  while (c->multi && (msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
    Transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t && t->easy == msg->easy_handle) attempt_end(c, t, msg->data.result, now);
  }
}

/* Backoffs whose time has come go back to the queue; sleeps finish. */
static void fire_due(Client *c, double now) {
  Transfer *t;
  for (t = c->head; t; t = t->next) {
    /* a retry waits for its on_retry to have run, as before a sleep */
    if (t->state == T_BACKOFF && t->due <= now && !t->notify_retry) t->state = T_QUEUED;
    else if (t->state == T_TIMER && t->due <= now) transfer_finish(c, t, now);
  }
}

/* The next time the engine must act (monotonic seconds), or HUGE_VAL: a
** due time, libcurl's timer, the end of a 429's hold on a queued transfer,
** or now for one that may start (a slot is free). */
static double next_due(const Client *c, double now) {
  const Transfer *t;
  double due = c->curl_due >= 0 ? c->curl_due : HUGE_VAL;
  for (t = c->head; t; t = t->next) {
    double held;
    if ((t->state == T_BACKOFF || t->state == T_TIMER) && t->due < due) due = t->due;
    if (t->state != T_QUEUED) continue;
    held = held_until(c, t);
    if (held > now) {
      if (held < due) due = held;
    } else if (c->running < c->max_concurrency && now < due) {
      due = now;
    }
  }
  return due;
}

/* Lets libcurl act on its timer when it is due. */
static void curl_timer_check(Client *c, double now) {
  int running;
  if (c->multi && c->curl_due >= 0 && c->curl_due <= now) {
    c->curl_due = -1;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
  }
}

/* Waits at most `wait` seconds for the sockets libcurl watches (or just
** sleeps when there are none), then lets libcurl act on those ready. */
static void wait_sockets(Client *c, double wait, double until) {
  struct pollfd *fds = c->pollfds;
  int n = c->nwatches, i, ready, running;
  int ms = wait <= 0 ? 0 : (int)ceil(wait * 1000.0);
  for (i = 0; i < n; i++) {
    fds[i].fd = (int)c->watches[i].fd;
    fds[i].events = (short)(((c->watches[i].what & CURL_POLL_IN) ? POLLIN : 0) |
                            ((c->watches[i].what & CURL_POLL_OUT) ? POLLOUT : 0));
    fds[i].revents = 0;
  }
  if (n <= 0) {
    poll(NULL, 0, ms); /* nothing to watch: wait for a due time */
    return;
  }
  ready = poll(fds, (nfds_t)(unsigned)n, ms);
  /* socket_action may add sockets, and on_socket may then move the array
  ** (realloc keeps its contents): read it afresh each time, never `fds`. */
  for (i = 0; ready > 0 && i < n && c->multi; i++) {
    short revents = c->pollfds[i].revents;
    int mask = 0;
    if (revents & (POLLIN | POLLHUP)) mask |= CURL_CSELECT_IN;
    if (revents & POLLOUT) mask |= CURL_CSELECT_OUT;
    if (revents & (POLLERR | POLLNVAL)) mask |= CURL_CSELECT_ERR;
    if (mask) {
      ready--;
      curl_multi_socket_action(c->multi, (curl_socket_t)c->pollfds[i].fd, mask, &running);
      /* past the budget (one socket served at least), the sockets still
      ** ready wait for the next poll: poll(2) reports them again */
      if (until > 0 && monotonic_seconds() > until) break;
    }
  }
}

/* Whether delivery has work: finished transfers or owed notices. */
static int has_news(const Client *c) {
  const Transfer *t;
  if (c->finished > 0) return 1;
  for (t = c->head; t; t = t->next)
    if (t->notify_retry || t->notify_exchange) return 1;
  return 0;
}

/* Phase 1: does all ready I/O, waiting at most `wait` seconds for some when
** nothing has happened yet; with a budget (`until` > 0) it starts new
** attempts and serves ready sockets only until then. */
static void step_io(Client *c, double wait, double until) {
  double now = monotonic_seconds(), due;
  if (c->released) return;
  fire_due(c, now);
  start_queued(c, now, until);
  curl_timer_check(c, now);
  read_messages(c, now);
  if (has_news(c)) wait = 0;
  due = next_due(c, now) - now;
  if (due < wait) wait = due < 0 ? 0 : due;
  wait_sockets(c, wait, until);
  now = monotonic_seconds();
  curl_timer_check(c, now);
  read_messages(c, now);
  fire_due(c, now);
  start_queued(c, now, until);
}


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
  enqueue_call(L, (c && !c->released) ? c : NULL, fn_idx, free_call, n);
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

static void engine_close(lua_State *L, Client *c);

/* Phase 3: runs the queued callbacks of c, then the ownerless ones. A close
** asked for by a callback is applied once it has returned. Stops early when
** `until` (monotonic s, or 0) has passed. */
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
      if (c && c->close_requested && c->in_callback == 0 && c->in_free_callback == 0)
        engine_close(L, c);
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
    if (t == NULL || c->released) return;
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
  list_unlink(c, t);
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

/* When a burst of transfers is over, gives freed memory back to the
** system (glibc keeps it otherwise): at most once every TRIM_EVERY s. */
#define TRIM_EVERY 5.0
static void trim_when_idle(Client *c) {
#ifdef __GLIBC__
  double now;
  if (c->head != NULL) return;
  now = monotonic_seconds();
  if (now - c->trimmed < TRIM_EVERY) return;
  c->trimmed = now;
  malloc_trim(0);
#else
  (void)c;
#endif
}

/* Phase 2; returns how many handles completed. Stops early past `until`. */
static int deliver(lua_State *L, Client *c, double until) {
  int completed = 0;
  deliver_notices(L, c);
  while (c->finished > 0) {
    Transfer *t;
    if (until > 0 && completed > 0 && monotonic_seconds() > until) break;
    for (t = c->head; t && t->state != T_FINISHED; t = t->next) {}
    if (t == NULL) break;
    if (!t->internal) completed++;
    deliver_one(L, c, t);
  }
  if (completed > 0) trim_when_idle(c);
  return completed;
}


/* ======================================================================
** Starting transfers
** ====================================================================== */

/* Puts the new transfer at `idx` (client at client_idx) in flight. Async
** ones are anchored and hold their client through their user value;
** `internal` ones (atai's own) are not counted by pending(). */
static void transfer_submit(lua_State *L, Client *c, int client_idx, int idx, int blocking,
                            int internal) {
  Transfer *t = (Transfer *)lua_touserdata(L, idx);
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
  if (t->mode != MODE_TIMER) transfer_classify(c, t);
  list_append(c, t);
  if (c->released) {
    /* A finalizer closed the client while the request was being built
    ** (any allocation above may run one): done now, cancelled. */
    t->cancelled = 1;
    transfer_finish(c, t, t->started);
    deliver_one(L, c, t);
  } else if (t->unusable) transfer_finish(c, t, t->started); /* fails at the next poll */
  else if (t->mode == MODE_TIMER) t->state = T_TIMER;
  else start_queued(c, t->started, 0);
}


/* ======================================================================
** Closing
** ====================================================================== */

/* Cancels what is in flight (their callbacks run here, the one place they
** run outside poll/wait), then frees the libcurl side. */
static void engine_close(lua_State *L, Client *c) {
  Transfer *t;
  if (c->released || c->closing) return;
  c->close_requested = 0;
  c->closing = 1;
  for (t = c->head; t; t = t->next) transfer_cancel(t);
  deliver(L, c, 0);
  c->in_callback++; /* a callback run here may not re-enter the engine */
  drain(L, c, 0);
  c->in_callback--;
  client_release(L, c);
  c->closing = 0;
}

/* client:close(), also __close: idempotent. From inside a callback it only
** asks: the close happens once the callback has returned to the engine. */
static int l_client_close(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->in_callback > 0 || c->in_free_callback > 0) {
    c->close_requested = 1;
    return 0;
  }
  engine_close(L, c);
  return 0;
}

/* __gc: nothing is in flight (in-flight transfers keep the client alive),
** so no user code runs here; whatever is still queued is dropped. */
static int l_client_gc(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  Transfer *t;
  for (t = c->head; t; t = t->next) {
    attempt_detach(c, t);
    t->client = NULL;
  }
  c->head = c->tail = NULL;
  client_free(L, c);
  return 0;
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
  completed = c->released ? 0 : deliver(L, c, until);
  drain(L, c, until);
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
    if (c->released) break;
    if (until > 0 && monotonic_seconds() > until) break;
    if (any_callback && c->callbacks_run != callbacks_before) break;
  } while (completed == 0 && monotonic_seconds() < start + seconds);
  return completed;
}

/* client:poll([seconds [, {budget = s}]]) -> handles completed in this call.
** Does all ready work and delivers completions and callbacks; when nothing
** completed yet it waits for I/O or a due time, at most `seconds`. */
static int l_client_poll(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  double seconds = luaL_optnumber(L, 2, 0), budget = 0, start, until = 0;
  if (!(seconds >= 0 && seconds <= 1e9)) return arg_error(L, 2, "poll", "seconds: number >= 0 expected");
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "budget");
    if (!lua_isnil(L, -1)) {
      budget = lua_tonumber(L, -1);
      if (!(lua_type(L, -1) == LUA_TNUMBER && budget > 0 && budget <= 1e9))
        return arg_error(L, 3, "poll", "opts.budget: number > 0 (seconds) expected");
    }
  }
  start = monotonic_seconds();
  if (budget > 0) until = start + budget;
  lua_pushinteger(L, poll_loop(L, c, start, seconds, until, 0));
  return 1;
}

/* client:_step(seconds) -> handles completed: poll(seconds) that returns as
** soon as a callback has run too. Op:_wait drives the engine with it: a Lua
** handle completes inside a callback, which poll does not count, so the
** waiter sat idle for the rest of its 0.1 s slice (on average 50 ms at the
** end of every blocking upload or download). */
static int l_client_step(lua_State *L) {
  Client *c = check_client(L, 1, 1);
  double seconds = luaL_checknumber(L, 2);
  if (!(seconds >= 0 && seconds <= 1e9)) return arg_error(L, 2, "_step", "seconds: number >= 0 expected");
  lua_pushinteger(L, poll_loop(L, c, monotonic_seconds(), seconds, 0, 1));
  return 1;
}

/* Drives the engine until the transfer at idx is done, or `seconds` (< 0:
** no limit) have passed; then pushes its results, or nil and a "pending"
** error. A blocking call's own transfer is detached if a callback raises. */
static int engine_wait(lua_State *L, Client *c, int idx, double seconds) {
  Transfer *t = (Transfer *)lua_touserdata(L, idx);
  double start = monotonic_seconds();
  while (t->state != T_DONE && !c->released) {
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

/* client:pending() -> handles started and not yet completed. */
static int l_client_pending(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  lua_pushinteger(L, c->pending);
  return 1;
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

/* client:timeout() -> seconds until the engine next needs poll, or nil when
** nothing is in flight. 0 while callbacks wait to run (one on a handle
** already done, or the rest after a callback raised). */
static int l_client_timeout(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  double due, now;
  if (!c->released && queue_waiting(L, c)) {
    lua_pushnumber(L, 0);
    return 1;
  }
  if (c->head == NULL || c->released) {
    lua_pushnil(L);
    return 1;
  }
  now = monotonic_seconds();
  due = has_news(c) ? now : next_due(c, now);
  if (due == HUGE_VAL) {
    /* only sockets to wait for: poll when they are ready, or in a while */
    lua_pushnumber(L, 1.0);
    return 1;
  }
  lua_pushnumber(L, due > now ? due - now : 0);
  return 1;
}

/* client:sockets() -> {[fd] = "r" | "w" | "rw"}: what libcurl wants watched. */
static int l_client_sockets(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  int i;
  static const char *const what[] = {"", "r", "w", "rw"};
  lua_createtable(L, 0, c->nwatches);
  for (i = 0; i < c->nwatches; i++) {
    int w = c->watches[i].what & 3;
    if (w == 0) continue;
    lua_pushstring(L, what[w]);
    lua_rawseti(L, -2, (int)c->watches[i].fd);
  }
  return 1;
}

/* client:_defer(free, fn, ...): queues fn(...) for the next poll/wait of
** the client, or of any client when called on the module (core.defer).
** `free`: run unguarded (the callbacks of a blocking call). */
static int l_client_defer(lua_State *L) {
  Client *c = lua_type(L, 1) == LUA_TUSERDATA ? (Client *)luaL_checkudata(L, 1, CLIENT_MT) : NULL;
  luaL_checktype(L, 3, LUA_TFUNCTION);
  enqueue_call(L, (c && !c->released) ? c : NULL, 3, lua_toboolean(L, 2), lua_gettop(L) - 3);
  return 0;
}

/* client:_time_scale(factor): multiplies every wait of the engine (retry
** backoffs, Retry-After, sleeps) without changing what is reported (the
** delay on_retry sees): an injectable clock for tests, which then need not
** sleep for real. Default 1. */
static int l_client_time_scale(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  lua_Number f = luaL_checknumber(L, 2);
  luaL_argcheck(L, f >= 0 && f <= 1, 2, "factor from 0 to 1 expected");
  c->time_scale = (double)f;
  return 0;
}

/* client:_check(): raises at the user's line when the client is closed; the
** Lua layer calls it before it starts a coroutine, which has no user frame. */
static int l_client_check(lua_State *L) {
  check_client(L, 1, 0);
  return 0;
}

/* client:_ops(delta): Lua-made handles (wait_job, ...) count in pending(). */
static int l_client_ops(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  c->pending += (int)luaL_checkinteger(L, 2);
  return 0;
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
