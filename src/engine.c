/*
** engine.c: layer 2, a client's engine: the multi handle, the easy-handle
** pool, sockets and due times (retry backoffs, and the timers that sleeps
** are); no Lua. It steps every transfer of the client and never sleeps
** except in poll(2) for at most the time asked for.
**
** One step has three phases, and only the last two touch Lua:
**   1. I/O (plain C): start queued transfers up to max_concurrency, requeue
**      backoffs whose time has come, let libcurl act on ready sockets and
**      its timer, and record each finished attempt in its transfer (retry
**      scheduled as a due time, or outcome kept). libcurl's socket and
**      timer callbacks only record what they are told. The wait for I/O
**      ends by the soonest timer at the latest.
**   2. Delivery: each finished transfer, taken off the client's list first,
**      and each sleep whose timer is due, taken off the timer list first,
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

/* An easy handle for the next attempt: an idle one, or a new one. */
static CURL *pool_take(Client *c) {
  CURL *e;
  if (c->pool_len > 0) return c->pool[--c->pool_len];
  e = curl_easy_init();
  if (e) easy_configure(c, e);
  return e;
}

/* Gives an easy handle back after an attempt (it is off the multi handle).
** One idle handle per concurrency slot: creating and freeing handles for
** every request fragments the heap, and costs a round of 1,000 get_jobs
** more than a tenth of its instructions. */
static void pool_give(Client *c, CURL *e) {
  if (c->pool_len < c->max_concurrency && c->life != LIFE_CLOSED)
    c->pool[c->pool_len++] = e;
  else curl_easy_cleanup(e);
}




/* ======================================================================
** libcurl's socket and timer callbacks: they only record
** ====================================================================== */

/* Room for one more watch, and a watch_of slot for fd; 0 when memory runs out. */
static int watch_room(Client *c, curl_socket_t fd) {
  if (fd >= c->watch_of_len) {
    int len = c->watch_of_len ? c->watch_of_len : 64, *slots;
    while (len <= fd) len *= 2;
    slots = (int *)realloc(c->watch_of, (size_t)len * sizeof *slots);
    if (slots == NULL) return 0;
    memset(slots + c->watch_of_len, 0, (size_t)(len - c->watch_of_len) * sizeof *slots);
    c->watch_of = slots;
    c->watch_of_len = len;
  }
  if (c->nwatches == c->watches_cap) {
    int cap = c->watches_cap ? c->watches_cap * 2 : 16;
    Watch *w = (Watch *)realloc(c->watches, (size_t)cap * sizeof *w);
    struct pollfd *p;
    if (w == NULL) return 0;
    c->watches = w;
    p = (struct pollfd *)realloc(c->pollfds, (size_t)cap * sizeof *p);
    if (p == NULL) return 0;
    c->pollfds = p;
    c->watches_cap = cap;
  }
  return 1;
}

/* What libcurl wants watched on fd. The watch is found through watch_of,
** not by a search: with 1,000 sockets a search cost a round of get_jobs
** ~2% of its instructions. */
static int on_socket(CURL *e, curl_socket_t fd, int what, void *ud, void *sockp) {
  Client *c = (Client *)ud;
  int i = fd >= 0 && fd < c->watch_of_len && c->watch_of[fd] > 0 ? c->watch_of[fd] - 1 : -1;
  (void)e;
  (void)sockp;
  if (what == CURL_POLL_REMOVE) {
    if (i >= 0) {
      c->watches[i] = c->watches[--c->nwatches];
      if (i < c->nwatches) c->watch_of[c->watches[i].fd] = i + 1;
      c->watch_of[fd] = 0;
    }
    return 0;
  }
  if (i < 0) {
    if (fd < 0 || !watch_room(c, fd)) return -1; /* libcurl fails the transfer */
    i = c->nwatches++;
    c->watches[i].fd = fd;
    c->watch_of[fd] = i + 1;
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
  if (c->scan_from == t) c->scan_from = t->prev;
  if (t->prev) t->prev->next = t->next;
  else c->head = t->next;
  if (t->next) t->next->prev = t->prev;
  else c->tail = t->prev;
  t->prev = t->next = NULL;
}

/* Takes a running attempt off the multi handle; the easy handle goes back
** to the pool. */
static void attempt_detach(Client *c, Transfer *t) {
  if (t->x == NULL || t->x->easy == NULL) return; /* a sleep has no easy handle */
  if (c->multi) curl_multi_remove_handle(c->multi, t->x->easy);
  if (t->x->stream) stream_restore(c, t->x->easy);
  pool_give(c, t->x->easy);
  t->x->easy = NULL;
  c->running--;
}

/* Marks a transfer finished with its outcome (set here only): its results
** are not made yet. */
static void transfer_finish(Client *c, Transfer *t, Outcome outcome, double now) {
  t->outcome = outcome;
  t->state = T_FINISHED;
  t->elapsed = now - t->started;
  c->finished++;
}


/* ======================================================================
** Timers: sleeps, on a list of the client soonest first
** ====================================================================== */

/* Sets the timer of the sleep t for its due time: after every timer due no
** later, so equal due times come in the order they were set. The place is
** looked for from the latest end: sleeps mostly come in due order. */
static void timer_set(Client *c, Transfer *t) {
  Timer *tm = t->timer, *after = c->timers_tail;
  while (after && after->due > tm->due) after = after->prev;
  tm->prev = after;
  tm->next = after ? after->next : c->timers_head;
  if (tm->next) tm->next->prev = tm;
  else c->timers_tail = tm;
  if (after) after->next = tm;
  else c->timers_head = tm;
  tm->set = 1;
  t->state = T_RUNNING;
}

/* Takes a timer off the client's list (nothing when it is not on it). */
static void timer_unset(Client *c, Timer *tm) {
  if (!tm->set) return;
  if (tm->prev) tm->prev->next = tm->next;
  else c->timers_head = tm->next;
  if (tm->next) tm->next->prev = tm->prev;
  else c->timers_tail = tm->prev;
  tm->prev = tm->next = NULL;
  tm->set = 0;
}

/* The sleep whose timer is due first, taken off the list and finished, or
** NULL when none is due: phase 2 takes them one at a time. */
static Transfer *timer_take_due(Client *c, double now) {
  Timer *tm = c->timers_head;
  if (tm == NULL || tm->due > now) return NULL;
  timer_unset(c, tm);
  transfer_finish(c, tm->handle, OUTCOME_OK, now);
  return tm->handle;
}

/* Cancels a transfer (or sleep) that has not finished; returns whether it
** did. A cancelled sleep is on no list: its caller delivers it at once. */
static int transfer_cancel(Transfer *t) {
  Client *c = t->client;
  if (c == NULL || t->state == T_FINISHED || t->state == T_DONE) return 0;
  if (t->timer) timer_unset(c, t->timer);
  attempt_detach(c, t);
  t->retryable = 0;
  t->notify_retry = 0;
  transfer_finish(c, t, OUTCOME_CANCELLED, monotonic_seconds());
  return 1;
}

/* Takes a transfer off its client for good (its handle is being collected,
** or its blocking caller is unwinding): no result will be made for it. */
static void transfer_detach(Transfer *t) {
  Client *c = t->client;
  transfer_cancel(t);
  if (c == NULL || t->state != T_FINISHED) return;
  if (t->timer == NULL) list_unlink(c, t); /* a finished sleep is on no list */
  c->finished--;
  if (!t->internal) c->pending--;
  t->state = T_DONE;
}


/* ======================================================================
** Phase 1: I/O, due times and finished attempts (no Lua)
** ====================================================================== */

/* Starts the next attempt of t now. */
static void attempt_start(Client *c, Transfer *t, double now) {
  CURL *e = attempt_buffers(c, t) ? pool_take(c) : NULL;
  t->cut = CUT_NONE;
  t->status = 0;
  t->os_errno = 0;
  t->socket_errno = 0;
  t->result = CURLE_OK;
  t->attempts++;
  t->attempt_started = now;
  if (e == NULL) {
    t->result = CURLE_OUT_OF_MEMORY;
    transfer_finish(c, t, OUTCOME_NO_MEMORY, now);
    return;
  }
  attempt_prepare(c, t, e);
  t->x->easy = e;
  c->running++;
  t->state = T_RUNNING;
  if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
    attempt_detach(c, t);
    t->result = CURLE_FAILED_INIT;
    transfer_finish(c, t, OUTCOME_TRANSPORT, now);
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
** start at the next poll. The walk begins at c->scan_from, where the last
** one left off (new transfers go to the tail): from the head, each of
** 1,000 get_jobs started in a row walked past all those before it. */
static void start_queued(Client *c, double now, double until) {
  Transfer *t, *next, *left = NULL; /* left: the first still queued */
  if (now < c->paused_until) return;
  for (t = c->scan_from ? c->scan_from : c->head; t && c->running < c->max_concurrency; t = next) {
    next = t->next;
    if (t->state != T_QUEUED) continue;
    if (now < held_until(c, t)) {
      if (left == NULL) left = t;
      continue;
    }
    attempt_start(c, t, now);
    if (until > 0 && monotonic_seconds() > until) {
      t = next;
      break;
    }
  }
  c->scan_from = left ? left : t ? t : c->tail;
}

/* Records the end of t's attempt: a retry as a due time, or the outcome. */
static void attempt_end(Client *c, Transfer *t, CURLcode result, double now) {
  long version = 0;
  Outcome outcome;
  if (t->x->stream) result = stream_end(t, result);
  t->result = result;
  curl_easy_getinfo(t->x->easy, CURLINFO_RESPONSE_CODE, &t->status);
  curl_easy_getinfo(t->x->easy, CURLINFO_OS_ERRNO, &t->os_errno);
  if (t->os_errno == 0) t->os_errno = t->socket_errno;
#if CURL_AT_LEAST_VERSION(7, 50, 0)
  curl_easy_getinfo(t->x->easy, CURLINFO_HTTP_VERSION, &version);
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
  outcome = attempt_outcome(t);
  t->retryable = attempt_retryable(t, outcome);
  if (t->retryable && t->attempts <= t->max_retries) {
    double delay = retry_delay(c, t), wait = delay * c->time_scale;
    if (t->status == 429 && retry_after_seconds(&t->x->resp_headers) >= 0) hold_new_attempts(c, t, now + wait);
    t->state = T_BACKOFF;
    t->due = now + wait;
    t->retry_delay = delay;
    t->notify_retry = c->on_retry_ref != LUA_NOREF;
    return;
  }
  transfer_finish(c, t, outcome, now);
}

/* Reads libcurl's finished-transfer messages. */
static void read_messages(Client *c, double now) {
  CURLMsg *msg;
  int queued;
  while (c->multi && (msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
    Transfer *t = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
    if (t && t->x->easy == msg->easy_handle) attempt_end(c, t, msg->data.result, now);
  }
}

/* Backoffs whose time has come go back to the queue. */
static void fire_due(Client *c, double now) {
  Transfer *t;
  for (t = c->head; t; t = t->next) {
    /* a retry waits for its on_retry to have run */
    if (t->state == T_BACKOFF && t->due <= now && !t->notify_retry) {
      t->state = T_QUEUED;
      c->scan_from = NULL; /* queued again, anywhere in the list */
    }
  }
}

/* The next time the engine must act (monotonic seconds), or HUGE_VAL: the
** soonest timer, a backoff's due time, libcurl's timer, the end of a 429's
** hold on a queued transfer, or now for one that may start (a slot is free). */
static double next_due(const Client *c, double now) {
  const Transfer *t;
  double due = c->curl_due >= 0 ? c->curl_due : HUGE_VAL;
  if (c->timers_head && c->timers_head->due < due) due = c->timers_head->due;
  for (t = c->head; t; t = t->next) {
    double held;
    if (t->state == T_BACKOFF && t->due < due) due = t->due;
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
  if (c->life == LIFE_CLOSED) return;
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

/* When a burst of transfers is over, gives freed memory back to the
** system (glibc keeps it otherwise): at most once every TRIM_EVERY s. */
#define TRIM_EVERY 5.0
static void trim_when_idle(Client *c) {
#ifdef __GLIBC__
  double now;
  if (c->head != NULL || c->timers_head != NULL) return;
  now = monotonic_seconds();
  if (now - c->trimmed < TRIM_EVERY) return;
  c->trimmed = now;
  malloc_trim(0);
#else
  (void)c;
#endif
}
