/*
** core.c: atai.core, the C half of atai (the Archetype AI Batch API client).
**
** One client userdata ("atai.Client") owns a libcurl multi handle, one easy
** handle reused for every request (so connections, TLS sessions and DNS
** stay warm), and the buffers the transfer writes into. Blocking calls drive
** that multi handle to completion; retries, backoff and the error table are
** here too. Configuration policy (defaults, environment, endpoint checks)
** lives in lua/atai/init.lua, which hands this file a resolved table.
**
** Unity build: this file includes the other .c files, so that everything
** but luaopen_atai_core stays static.
*/

#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "compat.h"

#include "buffer.c"
#include "json.c"
#include "error.c"

#define ATAI_VERSION "0.1.0"
#define CLIENT_MT "atai.Client"
#define ID_MAX_LEN 128
#define RETRY_AFTER_MAX 60.0 /* seconds: a longer Retry-After is capped */

/* Shared upvalues of every function of the module (UV_DECODE is in json.c). */
#define MODULE_UPVALUES 1

/* How a request may be repeated after a failure. */
typedef enum {
  RETRY_TRANSIENT, /* safe to repeat: network, timeout, 408/429/5xx */
  RETRY_UNSENT     /* only when it cannot have reached the server */
} RetryPolicy;

typedef struct Client {
  CURLM *multi;
  CURL *easy;
  struct curl_slist *base_headers;    /* Authorization, Accept: client's life */
  struct curl_slist *request_headers; /* base + one request's own */
  Buffer body;                        /* response body */
  Buffer headers;                     /* response header lines */
  Buffer payload;                     /* JSON request body */
  Buffer url;                         /* URL being built by request() */
  char *base_url;                     /* endpoint, no trailing slash */
  char *config_error;                 /* why this client cannot send, or NULL */
  curl_off_t max_response_bytes;
  long timeout_ms;             /* per attempt, unless a call sets its own */
  int max_retries;
  double backoff, backoff_max; /* seconds */
  int on_retry_ref;            /* registry ref of opts.on_retry, or LUA_NOREF */
  int too_large;               /* set by on_body when the cap is hit */
  int out_of_memory;           /* set by the callbacks when realloc fails */
  unsigned int rng;            /* xorshift state for backoff jitter */
  int in_callback;             /* on_retry is running: the client is mid-request */
  int closed;
  char errbuf[CURL_ERROR_SIZE];
} Client;

typedef struct Request {
  const char *method;
  const char *url; /* anchored on the Lua stack for the whole call */
  int has_body;    /* c->payload holds the JSON to send */
  RetryPolicy policy;
  int max_retries;
  long timeout_ms; /* per attempt */
} Request;

typedef struct Outcome {
  CURLcode result;
  long status;
  int attempts;
  int retryable; /* another attempt would have been allowed */
} Outcome;

/* What a successful body must be. */
typedef enum { EXPECT_ANY, EXPECT_OBJECT } Expect;


/* ======================================================================
** Small helpers
** ====================================================================== */

static void sleep_seconds(double seconds) {
  struct timespec ts, rest;
  if (!(seconds > 0)) return;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &rest) != 0 && errno == EINTR) ts = rest;
}

static double monotonic_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A float in [0, 1) from the client's xorshift32 state. */
static double client_random(Client *c) {
  unsigned int x = c->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  c->rng = x ? x : 0x9e3779b9u;
  return (double)(x >> 8) / 16777216.0;
}

static char *copy_string(const char *s) {
  size_t n = strlen(s) + 1;
  char *p = (char *)malloc(n);
  if (p) memcpy(p, s, n);
  return p;
}

static int ascii_lower(int ch) {
  return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

/* Whether the first n bytes of a and b are equal, ignoring ASCII case. */
static int same_ci(const char *a, const char *b, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (ascii_lower((unsigned char)a[i]) != ascii_lower((unsigned char)b[i])) return 0;
  return 1;
}

/* Whether the n bytes at s spell `name`, ignoring ASCII case. */
static int equals_ci(const char *s, size_t n, const char *name) {
  return strlen(name) == n && same_ci(s, name, n);
}


/* ======================================================================
** libcurl callbacks: no Lua calls in here, ever
** ====================================================================== */

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  Client *c = (Client *)ud;
  size_t len = size * count;
  if ((curl_off_t)(c->body.len + len) > c->max_response_bytes) {
    c->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (!buffer_add(&c->body, data, len)) {
    c->out_of_memory = 1;
    return 0;
  }
  return len;
}

static size_t on_header(char *data, size_t size, size_t count, void *ud) {
  Client *c = (Client *)ud;
  size_t len = size * count;
  /* A new status line (after 100 Continue or a proxy's CONNECT reply)
  ** starts a new header block: keep only the final response's. */
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) buffer_clear(&c->headers);
  if (c->headers.len + len > 256 * 1024) return len; /* ignore absurd headers */
  if (!buffer_add(&c->headers, data, len)) {
    c->out_of_memory = 1;
    return 0;
  }
  return len;
}


/* ======================================================================
** Response headers
** ====================================================================== */

/* One "Name: value" line of the last response's headers. */
typedef struct HeaderLine {
  const char *name, *value;
  size_t name_len, value_len;
} HeaderLine;

/* Reads the header line at *p (before `end`) into h, trimmed, and moves *p
** past it. Returns 0 at the end; lines without a colon (the status line)
** come back with name_len 0. */
static int header_next(const char **p, const char *end, HeaderLine *h) {
  const char *line = *p, *eol, *line_end, *colon, *v, *v_end;
  if (line == NULL || line >= end) return 0;
  eol = memchr(line, '\n', (size_t)(end - line));
  line_end = eol ? eol : end;
  *p = eol ? eol + 1 : end;
  colon = memchr(line, ':', (size_t)(line_end - line));
  h->name = line;
  h->name_len = colon ? (size_t)(colon - line) : 0;
  v = colon ? colon + 1 : line_end;
  v_end = line_end;
  while (v < v_end && (*v == ' ' || *v == '\t')) v++;
  while (v_end > v && (v_end[-1] == '\r' || v_end[-1] == ' ' || v_end[-1] == '\t')) v_end--;
  h->value = v;
  h->value_len = (size_t)(v_end - v);
  return 1;
}

/* Finds header `name` (lowercase) in the last response; returns its value
** (not NUL-terminated) and sets *len, or returns NULL. */
static const char *response_header(Client *c, const char *name, size_t *len) {
  const char *p = c->headers.data;
  HeaderLine h;
  while (header_next(&p, c->headers.data + c->headers.len, &h))
    if (equals_ci(h.name, h.name_len, name)) {
      *len = h.value_len;
      return h.value;
    }
  return NULL;
}

/* Seconds asked for by Retry-After (delta-seconds, digits only, or an
** HTTP-date), capped at RETRY_AFTER_MAX; -1 when absent or unreadable. */
static double retry_after_seconds(Client *c) {
  char value[64];
  size_t len, i, digits = 0;
  const char *v = response_header(c, "retry-after", &len);
  double seconds;
  if (v == NULL || len == 0 || len >= sizeof value) return -1;
  memcpy(value, v, len);
  value[len] = '\0';
  for (i = 0; i < len; i++) digits += value[i] >= '0' && value[i] <= '9';
  if (digits == len) {
    seconds = strtod(value, NULL);
  } else {
    time_t when = curl_getdate(value, NULL);
    if (when == (time_t)-1) return -1;
    seconds = difftime(when, time(NULL));
  }
  if (seconds < 0) seconds = 0;
  return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : seconds;
}

/* Pushes the response headers as a table: lowercase name -> value, repeated
** headers joined with ", ". */
static void push_response_headers(lua_State *L, Client *c) {
  const char *p = c->headers.data, *end = p + c->headers.len;
  int lines = 0;
  HeaderLine h;
  for (; p && p < end; p++) lines += *p == '\n';
  lua_createtable(L, 0, lines);
  p = c->headers.data;
  while (header_next(&p, end, &h)) {
    char name[128];
    size_t i;
    if (h.name_len == 0 || h.name_len >= sizeof name) continue;
    for (i = 0; i < h.name_len; i++) name[i] = (char)ascii_lower((unsigned char)h.name[i]);
    lua_pushlstring(L, name, h.name_len);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, h.value, h.value_len);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, h.value, h.value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}


/* ======================================================================
** The transfer engine
** ====================================================================== */

/* Runs the easy handle on the client's multi handle until it finishes.
** Non-blocking use will add more easy handles to this same multi handle. */
static CURLcode multi_run(Client *c) {
  CURLcode result = CURLE_SEND_ERROR;
  CURLMsg *msg;
  int running = 1, queued;
  if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK) return CURLE_FAILED_INIT;
  while (running) {
    CURLMcode mc = curl_multi_perform(c->multi, &running);
    /* curl_multi_poll (7.66) has no feature macro: the version is all we have. */
#if CURL_AT_LEAST_VERSION(7, 66, 0)
    if (mc == CURLM_OK && running) mc = curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
#else
    if (mc == CURLM_OK && running) mc = curl_multi_wait(c->multi, NULL, 0, 1000, NULL);
#endif
    if (mc != CURLM_OK) break;
  }
  while ((msg = curl_multi_info_read(c->multi, &queued)) != NULL)
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->easy) result = msg->data.result;
  curl_multi_remove_handle(c->multi, c->easy);
  return result;
}

/* Sets URL, method and body of the next transfer. */
static void easy_prepare(Client *c, const Request *r) {
  CURL *e = c->easy;
  int is_get = strcmp(r->method, "GET") == 0, is_head = strcmp(r->method, "HEAD") == 0;
  int is_post = strcmp(r->method, "POST") == 0;
  curl_easy_setopt(e, CURLOPT_URL, r->url);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  /* libcurl resends a request by itself when a reused connection turns out
  ** dead before any reply; a write must never be sent twice, so it gets a
  ** connection of its own. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, r->policy == RETRY_UNSENT ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
  if (r->has_body || is_post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->has_body ? c->payload.data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                     (curl_off_t)(r->has_body ? c->payload.len : 0));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  if (is_head) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (is_get || is_head || is_post) ? NULL : r->method);
}

/* Whether the finished attempt may be repeated under the request's policy. */
static int attempt_retryable(const Client *c, const Request *r, const Outcome *o) {
  if (o->result == CURLE_OK) {
    return r->policy == RETRY_TRANSIENT && status_is_transient(o->status);
  } else {
    const struct CurlKind *k = curl_kind(o->result);
    if (c->too_large || c->out_of_memory) return 0;
    return r->policy == RETRY_TRANSIENT ? k->transient : (k->unsent && k->transient);
  }
}

static int outcome_ok(const Outcome *o) {
  return o->result == CURLE_OK && ((o->status >= 200 && o->status < 300) || o->status == 304);
}

/* Seconds to wait before attempt `attempt + 1`: Retry-After when the server
** gave one, else exponential backoff with equal jitter. */
static double retry_delay(Client *c, int attempt) {
  double ra = retry_after_seconds(c), d = c->backoff;
  int i;
  if (ra >= 0) return ra;
  for (i = 1; i < attempt && d < c->backoff_max; i++) d *= 2;
  if (d > c->backoff_max) d = c->backoff_max;
  return d * (0.5 + 0.5 * client_random(c));
}

/* t.method, t.url, and t.status when a response came. Stack: t. */
static void set_exchange_fields(lua_State *L, const Request *r, const Outcome *o) {
  lua_pushstring(L, r->method);
  lua_setfield(L, -2, "method");
  lua_pushstring(L, r->url);
  lua_setfield(L, -2, "url");
  if (o->status > 0) {
    lua_pushinteger(L, o->status);
    lua_setfield(L, -2, "status");
  }
}

/* Calls opts.on_retry{attempt, delay, kind, status, method, url}. It runs
** between attempts, when the easy handle is out of the multi handle and all
** memory belongs to the client, so an error it raises leaks nothing. The
** client refuses to be used meanwhile (check_client): a nested request would
** rewrite the handle and headers this one is still using. */
static void notify_retry(lua_State *L, Client *c, const Request *r, const Outcome *o,
                         double delay) {
  int status;
  if (c->on_retry_ref == LUA_NOREF) return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, c->on_retry_ref);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, o->attempts);
  lua_setfield(L, -2, "attempt");
  lua_pushnumber(L, delay);
  lua_setfield(L, -2, "delay");
  lua_pushstring(L, o->result == CURLE_OK ? status_kind(o->status) : curl_kind(o->result)->kind);
  lua_setfield(L, -2, "kind");
  set_exchange_fields(L, r, o);
  c->in_callback = 1;
  status = lua_pcall(L, 1, 0, 0);
  c->in_callback = 0;
  if (status != LUA_OK) lua_error(L); /* re-raised once the flag is down */
}

/* Performs the request, with retries, filling `o`. */
static void request_run(lua_State *L, Client *c, const Request *r, Outcome *o) {
  easy_prepare(c, r);
  for (o->attempts = 1;; o->attempts++) {
    double delay;
    buffer_clear(&c->body);
    buffer_clear(&c->headers);
    c->too_large = c->out_of_memory = 0;
    c->errbuf[0] = '\0';
    o->status = 0;
    o->result = multi_run(c);
    curl_easy_getinfo(c->easy, CURLINFO_RESPONSE_CODE, &o->status);
    o->retryable = !outcome_ok(o) && attempt_retryable(c, r, o);
    if (!o->retryable || o->attempts > r->max_retries) return;
    delay = retry_delay(c, o->attempts);
    notify_retry(L, c, r, o, delay);
    sleep_seconds(delay);
  }
}


/* ======================================================================
** Results: the decoded body, or nil and an error table
** ====================================================================== */

/* Adds the fields every request error carries. Stack: err. */
static void error_set_request(lua_State *L, const Request *r, const Outcome *o) {
  lua_pushboolean(L, o->retryable);
  lua_setfield(L, -2, "retryable");
  lua_pushinteger(L, o->attempts);
  lua_setfield(L, -2, "attempts");
  set_exchange_fields(L, r, o);
}

/* err.body: at most ERROR_BODY_MAX bytes of the response. Stack: err. */
static void error_set_body(lua_State *L, Client *c) {
  if (c->body.len == 0) return;
  lua_pushlstring(L, c->body.data, c->body.len < ERROR_BODY_MAX ? c->body.len : ERROR_BODY_MAX);
  lua_setfield(L, -2, "body");
}

/* Pushes the error for a transfer that did not complete. */
static void push_transport_error(lua_State *L, Client *c, const Request *r, const Outcome *o) {
  if (c->out_of_memory) luaL_error(L, "not enough memory");
  if (c->too_large) {
    char message[96];
    snprintf(message, sizeof message, "response body larger than max_response_bytes (%lld bytes)",
             (long long)c->max_response_bytes);
    error_new(L, "too_large", message);
  } else {
    error_new(L, curl_kind(o->result)->kind,
              c->errbuf[0] ? c->errbuf : curl_easy_strerror(o->result));
  }
  lua_pushinteger(L, (lua_Integer)o->result);
  lua_setfield(L, -2, "curl_code");
  error_set_request(L, r, o);
}

/* Pushes the error for a completed exchange whose status is not a success. */
static void push_status_error(lua_State *L, Client *c, const Request *r, const Outcome *o) {
  double ra = retry_after_seconds(c);
  int top = lua_gettop(L);
  if (o->status >= 300 && o->status < 400)
    lua_pushfstring(L, "HTTP %d: redirect not followed (atai never sends the API key to "
                       "another location)", (int)o->status);
  else
    lua_pushfstring(L, "HTTP %d", (int)o->status);
  error_new(L, status_kind(o->status), lua_tostring(L, -1));
  lua_remove(L, -2);
  error_set_request(L, r, o);
  error_set_body(L, c);
  if (ra >= 0) {
    lua_pushnumber(L, ra);
    lua_setfield(L, -2, "retry_after");
  }
  if (c->body.len > 0 && json_decode(L, c->body.data, c->body.len) &&
      lua_type(L, -1) == LUA_TTABLE)
    error_read_envelope(L, top + 1);
  lua_settop(L, top + 1);
}

/* Pushes the error for a 2xx whose body is not the JSON expected. */
static void push_decode_error(lua_State *L, Client *c, const Request *r, const Outcome *o,
                              const char *why) {
  lua_pushfstring(L, "response is not the JSON expected: %s", why);
  error_new(L, "decode", lua_tostring(L, -1));
  lua_remove(L, -2);
  error_set_request(L, r, o);
  error_set_body(L, c);
}

/* Runs the request and pushes its results: the decoded body (plus, with
** `meta`, a table {status, headers, attempts}), or nil and an error. */
static int request_finish(lua_State *L, Client *c, const Request *r, Expect expect, int meta) {
  Outcome o;
  request_run(L, c, r, &o);
  if (o.result != CURLE_OK) {
    lua_pushnil(L);
    push_transport_error(L, c, r, &o);
    return 2;
  }
  if (!outcome_ok(&o)) {
    lua_pushnil(L);
    push_status_error(L, c, r, &o);
    return 2;
  }
  if (c->body.len == 0) {
    if (expect == EXPECT_OBJECT) {
      lua_pushnil(L);
      push_decode_error(L, c, r, &o, "empty body");
      return 2;
    }
    lua_newtable(L);
  } else if (!json_decode(L, c->body.data, c->body.len)) {
    lua_pushnil(L);
    push_decode_error(L, c, r, &o, lua_tostring(L, -2));
    lua_remove(L, -3); /* cjson's message */
    return 2;
  } else if (expect == EXPECT_OBJECT && (lua_type(L, -1) != LUA_TTABLE || lua_rawlen(L, -1) > 0)) {
    lua_pop(L, 1);
    lua_pushnil(L);
    push_decode_error(L, c, r, &o, "expected a JSON object");
    return 2;
  }
  if (!meta) return 1;
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, o.status);
  lua_setfield(L, -2, "status");
  lua_pushinteger(L, o.attempts);
  lua_setfield(L, -2, "attempts");
  push_response_headers(L, c);
  lua_setfield(L, -2, "headers");
  return 2;
}


/* ======================================================================
** Argument checks: they raise before any I/O
** ====================================================================== */

/* Raises "bad argument #n to 'fname' (msg)" for argument idx of a client
** method, counting from after self. Unlike luaL_argerror it does not guess
** the name from the call site, which is '?' for client[name](client, ...). */
static int arg_error(lua_State *L, int idx, const char *fname, const char *msg) {
  return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, fname, msg);
}

static Client *check_client(lua_State *L, int idx) {
  Client *c = (Client *)luaL_checkudata(L, idx, CLIENT_MT);
  if (c->closed) luaL_error(L, "attempt to use a closed atai client");
  if (c->in_callback) luaL_error(L, "atai client used from its own on_retry callback");
  return c;
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

/* Pushes nil and a "config" error when the client cannot send requests. */
static int client_unusable(lua_State *L, Client *c) {
  if (c->config_error == NULL) return 0;
  lua_pushnil(L);
  error_new(L, "config", c->config_error);
  return 1;
}


/* ======================================================================
** Client methods
** ====================================================================== */

static const char *const request_methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", NULL};

/* Appends `s` percent-encoded (RFC 3986 unreserved characters kept). */
static void add_escaped(luaL_Buffer *b, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
        ch == '-' || ch == '_' || ch == '.' || ch == '~') {
      luaL_addchar(b, (char)ch);
    } else {
      luaL_addchar(b, '%');
      luaL_addchar(b, HEX_DIGITS[ch >> 4]);
      luaL_addchar(b, HEX_DIGITS[ch & 15]);
    }
  }
}

/* Pushes the text of a query value (string, number or boolean); raises on
** anything else, naming the key. */
static void push_query_text(lua_State *L, int idx, const char *key) {
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
  arg_error(L, 4, "request", lua_pushfstring(L, "opts.query.%s: string, integer, finite number "
                                                 "or boolean expected, got %s", key, luaL_typename(L, idx)));
}

/* Pushes the URL for `path` under the endpoint, with opts.query (at index
** `query`, or 0) percent-encoded; a list value repeats its key. Built in a
** client-owned buffer because the table walk needs the Lua stack. */
static void push_url(lua_State *L, Client *c, Buffer *url, const char *path, int query) {
  char sep = '?';
  buffer_clear(url);
  if (!buffer_add(url, c->base_url, strlen(c->base_url)) || !buffer_add(url, path, strlen(path)))
    luaL_error(L, "not enough memory");
  if (query) {
    lua_pushnil(L);
    while (lua_next(L, query)) { /* key value */
      const char *key;
      lua_Integer i, n = 1;
      if (lua_type(L, -2) != LUA_TSTRING)
        arg_error(L, 4, "request", "opts.query: keys must be strings");
      key = lua_tostring(L, -2);
      if (lua_type(L, -1) == LUA_TTABLE) n = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; i <= n; i++) {
        luaL_Buffer part;
        size_t klen = strlen(key), vlen;
        const char *v;
        if (lua_type(L, -1) == LUA_TTABLE) {
          lua_rawgeti(L, -1, (int)i);
          push_query_text(L, lua_gettop(L), key);
          lua_remove(L, -2);
        } else {
          push_query_text(L, lua_gettop(L), key);
        }
        v = lua_tolstring(L, -1, &vlen);
        luaL_buffinit(L, &part);
        luaL_addchar(&part, sep);
        add_escaped(&part, key, klen);
        luaL_addchar(&part, '=');
        add_escaped(&part, v, vlen);
        luaL_pushresult(&part);
        v = lua_tolstring(L, -1, &vlen);
        if (!buffer_add(url, v, vlen)) luaL_error(L, "not enough memory");
        lua_pop(L, 2);
        sep = '&';
      }
      lua_pop(L, 1);
    }
  }
  lua_pushlstring(L, url->data, url->len);
}

/* A header name is an HTTP token; a value holds no CR, LF or NUL. */
static int header_ok(const char *s, size_t len, int is_name) {
  size_t i;
  if (is_name && len == 0) return 0;
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '\r' || ch == '\n' || ch == '\0') return 0;
    if (is_name && !((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                     (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
      return 0;
  }
  return 1;
}

static void headers_append(lua_State *L, Client *c, const char *line) {
  struct curl_slist *list = curl_slist_append(c->request_headers, line);
  if (list == NULL) luaL_error(L, "not enough memory");
  c->request_headers = list;
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

/* Builds c->request_headers: the client's own (minus those the request
** replaces), Content-Type: application/json when there is a body, and
** opts.headers (table at `extra`, or 0). Owned by the client, so an
** argument error raised midway leaks nothing. */
static void build_request_headers(lua_State *L, Client *c, int extra, int has_body) {
  struct curl_slist *h;
  curl_slist_free_all(c->request_headers);
  c->request_headers = NULL;
  for (h = c->base_headers; h; h = h->next) {
    size_t name_len = strcspn(h->data, ":");
    int is_content_type = name_len == 12 && same_ci(h->data, "content-type", 12);
    if ((has_body && is_content_type) || user_sets_header(L, extra, h->data, name_len)) continue;
    headers_append(L, c, h->data);
  }
  if (has_body && !user_sets_header(L, extra, "content-type", 12))
    headers_append(L, c, "Content-Type: application/json");
  if (!extra) return;
  lua_pushnil(L);
  while (lua_next(L, extra)) {
    size_t nlen, vlen;
    const char *name, *value;
    if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      arg_error(L, 4, "request", "opts.headers: names and values must be strings");
    name = lua_tolstring(L, -2, &nlen);
    value = lua_tolstring(L, -1, &vlen);
    if (!header_ok(name, nlen, 1) || !header_ok(value, vlen, 0))
      arg_error(L, 4, "request", lua_pushfstring(L, "opts.headers: invalid header '%s'", name));
    if (equals_ci(name, nlen, "authorization"))
      arg_error(L, 4, "request", "opts.headers: Authorization is set from api_key");
    lua_pushfstring(L, "%s: %s", name, value);
    headers_append(L, c, lua_tostring(L, -1));
    lua_pop(L, 2); /* the line and the value */
  }
}

/* Index of opts[field] when it is a table, 0 when nil; raises otherwise. */
static int opt_table(lua_State *L, int opts, const char *field) {
  lua_getfield(L, opts, field);
  if (lua_isnil(L, -1)) return 0;
  if (lua_type(L, -1) != LUA_TTABLE)
    arg_error(L, opts, "request", lua_pushfstring(L, "opts.%s: table expected, got %s", field,
                                                   luaL_typename(L, -1)));
  return lua_gettop(L);
}

/* A request path: starts with '/', printable ASCII, no space, '?' or '#'
** (the query goes in opts.query). */
static const char *check_path(lua_State *L, int idx) {
  size_t len, i;
  const char *path;
  if (lua_type(L, idx) != LUA_TSTRING)
    arg_error(L, idx, "request", lua_pushfstring(L, "path: string expected, got %s",
                                                  luaL_typename(L, idx)));
  path = lua_tolstring(L, idx, &len);
  if (len == 0 || path[0] != '/') arg_error(L, idx, "request", "path must start with '/'");
  for (i = 0; i < len; i++) {
    unsigned char ch = (unsigned char)path[i];
    if (ch <= ' ' || ch >= 0x7f || ch == '?' || ch == '#')
      arg_error(L, idx, "request", lua_pushfstring(L, "path: invalid byte at position %d (put "
                                                      "the query in opts.query)", (int)i + 1));
    /* A "." or ".." segment: libcurl would resolve it, leaving the API's
    ** version prefix. */
    if (ch == '/' && path[i + 1] == '.' &&
        (path[i + 2] == '/' || path[i + 2] == '\0' ||
         (path[i + 2] == '.' && (path[i + 3] == '/' || path[i + 3] == '\0'))))
      arg_error(L, idx, "request", "path: '.' and '..' segments are not allowed");
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

/* A Request with the client's defaults for `method`: GET and HEAD may be
** repeated after any transient failure, other methods only when unsent. */
static void request_init(Client *c, Request *r, const char *method) {
  int idempotent = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
  r->method = method;
  r->url = NULL;
  r->has_body = 0;
  r->policy = idempotent ? RETRY_TRANSIENT : RETRY_UNSENT;
  r->max_retries = c->max_retries;
  r->timeout_ms = c->timeout_ms;
}

/* Reads the per-call options every method takes from the table at `opts`
** (argument idx of `fname`): timeout (seconds per attempt), max_retries. */
static void read_call_opts(lua_State *L, int opts, const char *fname, Request *r) {
  lua_Number n;
  lua_getfield(L, opts, "timeout");
  if (!lua_isnil(L, -1)) {
    n = lua_tonumber(L, -1);
    if (!(lua_type(L, -1) == LUA_TNUMBER && n >= 0.001 && n <= 86400))
      arg_error(L, opts, fname, "opts.timeout: seconds from 0.001 to 86400 expected");
    r->timeout_ms = (long)(n * 1000);
  }
  lua_getfield(L, opts, "max_retries");
  if (!lua_isnil(L, -1)) {
    n = lua_tonumber(L, -1);
    if (!(lua_type(L, -1) == LUA_TNUMBER && n >= 0 && n <= 100 && n == (lua_Number)(int)n))
      arg_error(L, opts, fname, "opts.max_retries: integer from 0 to 100 expected");
    r->max_retries = (int)n;
  }
  lua_pop(L, 2);
}

/* The optional options table at idx: its index, or 0 when absent. */
static int check_opts(lua_State *L, int idx, const char *fname) {
  if (lua_isnoneornil(L, idx)) return 0;
  if (!lua_istable(L, idx))
    arg_error(L, idx, fname, lua_pushfstring(L, "opts: table expected, got %s", luaL_typename(L, idx)));
  return idx;
}

/* client:get_job(id [, opts]) -> job | nil, err: GET {endpoint}/batch/jobs/{id}.
** opts: timeout, max_retries (for this call). */
static int l_client_get_job(lua_State *L) {
  Client *c = check_client(L, 1);
  const char *id = check_id(L, 2, "get_job");
  int opts = check_opts(L, 3, "get_job");
  Request r;
  lua_settop(L, 3);
  request_init(c, &r, "GET");
  if (opts) read_call_opts(L, opts, "get_job", &r);
  if (client_unusable(L, c)) return 2;
  lua_pushfstring(L, "%s/batch/jobs/%s", c->base_url, id);
  r.url = lua_tostring(L, -1);
  curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->base_headers);
  return request_finish(L, c, &r, EXPECT_OBJECT, 0);
}

/* client:request(method, path [, opts]) -> body, meta | nil, err
** opts: query, body, headers, idempotent, timeout, max_retries. */
static int l_client_request(lua_State *L) {
  Client *c = check_client(L, 1);
  const char *method = check_method(L, 2);
  const char *path = check_path(L, 3);
  int opts = check_opts(L, 4, "request"), query = 0, headers = 0;
  Request r;
  lua_settop(L, 4);
  request_init(c, &r, method);
  if (opts) {
    query = opt_table(L, opts, "query");
    headers = opt_table(L, opts, "headers");
    read_call_opts(L, opts, "request", &r);
    lua_getfield(L, opts, "idempotent");
    if (!lua_isnil(L, -1)) {
      if (lua_type(L, -1) != LUA_TBOOLEAN) arg_error(L, 4, "request", "opts.idempotent: boolean expected");
      r.policy = lua_toboolean(L, -1) ? RETRY_TRANSIENT : RETRY_UNSENT;
    }
    lua_getfield(L, opts, "body");
    if (!lua_isnil(L, -1)) {
      /* libcurl would turn a GET with a body into a POST. */
      if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        arg_error(L, 4, "request", lua_pushfstring(L, "opts.body: a %s request has no body", method));
      json_encode(L, -1, &c->payload, "request body");
      r.has_body = 1;
    }
  }
  if (headers || r.has_body) build_request_headers(L, c, headers, r.has_body);
  push_url(L, c, &c->url, path, query);
  r.url = lua_tostring(L, -1);
  if (client_unusable(L, c)) return 2;
  curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER,
                   (headers || r.has_body) ? c->request_headers : c->base_headers);
  return request_finish(L, c, &r, EXPECT_ANY, 1);
}


/* ======================================================================
** Client lifecycle
** ====================================================================== */

/* Frees whatever the client holds; safe on a half-built or closed client. */
static void client_release(lua_State *L, Client *c) {
  if (c->multi && c->easy) curl_multi_remove_handle(c->multi, c->easy);
  if (c->easy) curl_easy_cleanup(c->easy);
  if (c->multi) curl_multi_cleanup(c->multi);
  curl_slist_free_all(c->base_headers);
  curl_slist_free_all(c->request_headers);
  buffer_free(&c->body);
  buffer_free(&c->headers);
  buffer_free(&c->payload);
  buffer_free(&c->url);
  free(c->base_url);
  free(c->config_error);
  luaL_unref(L, LUA_REGISTRYINDEX, c->on_retry_ref);
  c->easy = NULL;
  c->multi = NULL;
  c->base_headers = c->request_headers = NULL;
  c->base_url = c->config_error = NULL;
  c->on_retry_ref = LUA_NOREF;
  c->closed = 1;
}

/* client:close(), also __gc and __close: idempotent. */
static int l_client_close(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->in_callback) return luaL_error(L, "atai client closed from its own on_retry callback");
  client_release(L, c);
  return 0;
}

/* tostring(client): the endpoint, never the key. */
static int l_client_tostring(lua_State *L) {
  Client *c = (Client *)luaL_checkudata(L, 1, CLIENT_MT);
  if (c->closed) lua_pushfstring(L, "atai.Client (closed): %p", (void *)c);
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

static double opt_number(lua_State *L, const char *field, double dflt, double min) {
  double n = dflt;
  lua_getfield(L, 1, field);
  if (!lua_isnil(L, -1) && (lua_type(L, -1) != LUA_TNUMBER || !((n = lua_tonumber(L, -1)) >= min)))
    luaL_argerror(L, 1, lua_pushfstring(L, "%s: number >= %f expected", field, min));
  lua_pop(L, 1);
  return n;
}

/* Applies the options set once per client on its easy handle. */
static void easy_configure(Client *c, const char *user_agent, double connect_timeout,
                           const char *ca_file, const char *ca_path, const char *proxy) {
  CURL *e = c->easy;
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* all that libcurl decodes */
  curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000));
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
  if (ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
  if (ca_path) curl_easy_setopt(e, CURLOPT_CAPATH, ca_path);
  /* "" turns proxies off, the environment's too: the Lua layer passes it
  ** for http:// endpoints, whose key must not cross a proxy in clear. */
  if (proxy) curl_easy_setopt(e, CURLOPT_PROXY, proxy);
}

/* Appends a header every request of the client sends. */
static void base_header(lua_State *L, Client *c, const char *line) {
  struct curl_slist *list = curl_slist_append(c->base_headers, line);
  if (list == NULL) luaL_error(L, "not enough memory");
  c->base_headers = list;
}

/* core.new_client(opts) -> client. `opts` is resolved by the Lua layer:
** base_url, user_agent, api_key, timeout, connect_timeout, max_retries,
** retry_backoff, retry_backoff_max, max_response_bytes, ca_file, ca_path,
** proxy, config_error, on_retry. */
static int l_new_client(lua_State *L) {
  const char *base_url, *api_key, *user_agent, *ca_file, *ca_path, *proxy, *config_error;
  double timeout, connect_timeout, max_bytes;
  Client *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Born closed at index 2: if anything below raises, __gc frees what was
  ** made so far, since every allocation is stored in the struct at once. */
  c = (Client *)lua_newuserdatauv(L, sizeof *c, 0);
  memset(c, 0, sizeof *c);
  c->on_retry_ref = LUA_NOREF;
  c->closed = 1;
  luaL_setmetatable(L, CLIENT_MT);

  /* The strings stay on the stack, anchored, until we return. */
  base_url = opt_string(L, "base_url");
  luaL_argcheck(L, base_url != NULL, 1, "base_url: string expected");
  api_key = opt_string(L, "api_key");
  user_agent = opt_string(L, "user_agent");
  ca_file = opt_string(L, "ca_file");
  ca_path = opt_string(L, "ca_path");
  proxy = opt_string(L, "proxy");
  config_error = opt_string(L, "config_error");
  timeout = opt_number(L, "timeout", 60, 0.001);
  connect_timeout = opt_number(L, "connect_timeout", 10, 0.001);
  max_bytes = opt_number(L, "max_response_bytes", 64.0 * 1024 * 1024, 1);
  c->max_retries = (int)opt_number(L, "max_retries", 2, 0);
  c->backoff = opt_number(L, "retry_backoff", 0.5, 0);
  c->backoff_max = opt_number(L, "retry_backoff_max", 8, 0);
  c->max_response_bytes = (curl_off_t)max_bytes;
  c->timeout_ms = (long)(timeout * 1000);
  c->rng = (unsigned int)time(NULL) ^ (unsigned int)(size_t)c;
  lua_getfield(L, 1, "on_retry");
  if (!lua_isnil(L, -1)) {
    luaL_argcheck(L, lua_type(L, -1) == LUA_TFUNCTION, 1, "on_retry: function expected");
    c->on_retry_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  if (api_key && !header_ok(api_key, strlen(api_key), 0))
    luaL_argerror(L, 1, "api_key: must not contain CR, LF or NUL");
  if (api_key == NULL || *api_key == '\0')
    config_error = config_error ? config_error
                                : "no API key: set the ATAI_API_KEY environment variable or "
                                  "pass api_key to atai.new()";

  c->base_url = copy_string(base_url);
  c->config_error = config_error ? copy_string(config_error) : NULL;
  c->easy = curl_easy_init();
  c->multi = curl_multi_init();
  if (!c->base_url || (config_error && !c->config_error) || !c->easy || !c->multi)
    return luaL_error(L, "cannot create an atai client: out of memory or libcurl failed");
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
  easy_configure(c, user_agent ? user_agent : "atai-lua/" ATAI_VERSION, connect_timeout,
                 ca_file, ca_path, proxy);
  c->closed = 0;
  lua_settop(L, 2);
  return 1;
}


/* ======================================================================
** Module functions
** ====================================================================== */

/* core.sleep(seconds): blocks the calling thread (nanosleep, not a busy loop). */
static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s <= 86400 * 365, 1, "seconds: number from 0 expected");
  sleep_seconds((double)s);
  return 0;
}

/* core.now() -> seconds on a monotonic clock, for timeouts and intervals. */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)monotonic_seconds());
  return 1;
}

/* core.version_info() -> {version, curl_version, ssl_version, libz_version,
** http2, brotli, zstd, cainfo, capath}: for bug reports and the User-Agent. */
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

static const luaL_Reg client_methods[] = {
  {"get_job", l_client_get_job},
  {"request", l_client_request},
  {"close", l_client_close},
  {NULL, NULL}
};

static const luaL_Reg client_meta[] = {
  {"__gc", l_client_close},
  {"__close", l_client_close},
  {"__tostring", l_client_tostring},
  {NULL, NULL}
};

static const luaL_Reg module_functions[] = {
  {"new_client", l_new_client},
  {"new_error", l_new_error},
  {"sleep", l_sleep},
  {"now", l_now},
  {"version_info", l_version_info},
  {"id_problem", l_id_problem},
  {NULL, NULL}
};

/* Pushes the decode function of a private cjson instance, configured for
** strict JSON; our settings never touch the user's `require "cjson"`. */
static void push_cjson_decode(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "decode_invalid_numbers");
  lua_pushboolean(L, 0);
  lua_call(L, 1, 0);
  lua_getfield(L, -1, "decode");
  lua_replace(L, -3);
  lua_pop(L, 1);
}

/* require "atai.core" */
int luaopen_atai_core(lua_State *L) {
  /* Reference-counted inside libcurl: safe when the host initialised it too. */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  error_open(L);
  luaL_newmetatable(L, ARRAY_MT);
  lua_pop(L, 1);
  push_cjson_decode(L); /* the upvalue shared by every function below */

  luaL_newmetatable(L, CLIENT_MT);
  lua_pushvalue(L, -2);
  luaL_setfuncs(L, client_meta, MODULE_UPVALUES);
  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, client_methods, MODULE_UPVALUES);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index"); /* decode mt methods */
  lua_replace(L, -2);             /* decode methods */

  lua_newtable(L);
  lua_pushvalue(L, -3);
  luaL_setfuncs(L, module_functions, MODULE_UPVALUES);
  lua_insert(L, -2);
  lua_setfield(L, -2, "Client"); /* methods, so the Lua layer can add its own */
  lua_pushliteral(L, ATAI_VERSION);
  lua_setfield(L, -2, "_VERSION");
  lua_pushliteral(L, LUA_VERSION); /* the Lua this module was compiled for */
  lua_setfield(L, -2, "_LUA_VERSION");
  lua_pushlightuserdata(L, NULL);
  lua_setfield(L, -2, "null");
  luaL_getmetatable(L, ARRAY_MT);
  lua_setfield(L, -2, "array_mt");
  luaL_getmetatable(L, ERROR_MT);
  lua_setfield(L, -2, "error_mt");
  lua_replace(L, -2); /* drop decode */
  return 1;
}
