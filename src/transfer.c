/*
** transfer.c: one request in flight ("atai.Handle" userdata).
**
** A transfer owns everything one request needs: its URL, headers and body,
** the buffers libcurl writes the response into, its retry state and, once
** done, its results. It borrows an easy handle from the client's pool only
** while an attempt runs, and finds itself again through CURLOPT_PRIVATE.
** libcurl's callbacks here only copy bytes; Lua values are made later, by
** the engine, outside any libcurl call. The buffers are never freed by
** anyone but the transfer, so a finalizer that closes the client while a
** response is being made into Lua values cannot pull them away.
*/

#include <sys/socket.h>

/* User-value slots of a transfer (a table, made on first need). */
#define UV_CLIENT 1  /* the client: a transfer in flight keeps it alive */
#define UV_CALLBACKS 2 /* on_done functions, in order */
#define UV_RESULTS 3 /* {n = count, ...} once done */


/* ======================================================================
** libcurl callbacks: no Lua calls in here, ever
** ====================================================================== */

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t len = size * count;
  if ((curl_off_t)(t->body.len + len) > t->client->max_response_bytes) {
    t->too_large = 1;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (!buffer_add(&t->body, data, len)) {
    t->out_of_memory = 1;
    return 0;
  }
  return len;
}

static size_t on_header(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t len = size * count;
  /* A new status line (after 100 Continue or a proxy's CONNECT reply)
  ** starts a new header block: keep only the final response's. */
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) buffer_clear(&t->resp_headers);
  if (t->resp_headers.len + len > HEADERS_MAX) return len; /* ignore absurd headers */
  if (!buffer_add(&t->resp_headers, data, len)) {
    t->out_of_memory = 1;
    return 0;
  }
  return len;
}

/* libcurl's socket(), keeping a failure's errno: libcurl 7.88 reports a
** failed socket() as "Couldn't connect" with CURLINFO_OS_ERRNO 0, which
** would hide "too many open files" (EMFILE). */
static curl_socket_t on_open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  Transfer *t = (Transfer *)ud;
  curl_socket_t s = socket(a->family, a->socktype, a->protocol);
  (void)purpose;
  if (s == CURL_SOCKET_BAD) t->socket_errno = errno;
  return s;
}


/* ======================================================================
** Response headers (plain C over the transfer's buffer)
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
  eol = (const char *)memchr(line, '\n', (size_t)(end - line));
  line_end = eol ? eol : end;
  *p = eol ? eol + 1 : end;
  colon = (const char *)memchr(line, ':', (size_t)(line_end - line));
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

/* Finds header `name` (lowercase) in a header block; returns its value
** (not NUL-terminated) and sets *len, or returns NULL. */
static const char *find_header(const Buffer *b, const char *name, size_t *len) {
  const char *p = b->data;
  HeaderLine h;
  if (p == NULL) return NULL;
  while (header_next(&p, b->data + b->len, &h))
    if (equals_ci(h.name, h.name_len, name)) {
      *len = h.value_len;
      return h.value;
    }
  return NULL;
}

/* Seconds asked for by a Retry-After value (delta-seconds, digits only, or
** an HTTP-date), capped at RETRY_AFTER_MAX; -1 when unreadable. */
static double parse_retry_after(const char *v, size_t len) {
  char value[64];
  size_t i, digits = 0;
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
  if (!(seconds >= 0)) seconds = 0;
  return seconds > RETRY_AFTER_MAX ? RETRY_AFTER_MAX : seconds;
}

/* The last response's Retry-After in seconds, or -1. */
static double retry_after_seconds(const Transfer *t) {
  size_t len = 0;
  const char *v = find_header(&t->resp_headers, "retry-after", &len);
  return v ? parse_retry_after(v, len) : -1;
}

/* Whether a header byte is dropped from values: controls (a stray CR, NUL). */
static int header_junk(unsigned char ch) {
  return (ch < 0x20 && ch != '\t') || ch == 0x7f;
}

/* Pushes a header value with control bytes dropped and blanks trimmed
** around what is left: a value from the server must be safe to send back
** (ETag -> If-None-Match). */
static void push_header_value(lua_State *L, const char *v, size_t len) {
  luaL_Buffer b;
  size_t i, first = 0, last = len;
  while (first < len && (header_junk((unsigned char)v[first]) || v[first] == ' ' || v[first] == '\t'))
    first++;
  while (last > first && (header_junk((unsigned char)v[last - 1]) || v[last - 1] == ' ' ||
                          v[last - 1] == '\t'))
    last--;
  luaL_buffinit(L, &b);
  for (i = first; i < last; i++)
    if (!header_junk((unsigned char)v[i])) luaL_addchar(&b, v[i] == '\t' ? ' ' : v[i]);
  luaL_pushresult(&b);
}

/* Pushes the response headers as a table: lowercase name -> value, repeated
** headers joined with ", ". Reads the transfer's own buffer, which no Lua
** code can reach, so the allocations below cannot invalidate it. */
static void push_response_headers(lua_State *L, const Transfer *t) {
  const char *p = t->resp_headers.data, *end = p ? p + t->resp_headers.len : NULL;
  int lines = 0;
  HeaderLine h;
  for (; p && p < end; p++) lines += *p == '\n';
  lua_createtable(L, 0, lines);
  p = t->resp_headers.data;
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
      push_header_value(L, h.value, h.value_len);
    } else {
      lua_pushliteral(L, ", ");
      push_header_value(L, h.value, h.value_len);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}


/* ======================================================================
** Presigned URLs: which URLs they are, their host, what of them shows
** ====================================================================== */

/* Whether the URL is under the client's endpoint (an API request): the
** endpoint, then '/', '?' or nothing. Any other URL is a presigned storage
** URL: its query holds a signature, so it is never shown, and its 429s
** hold only the transfers to its own host. */
static int url_under_endpoint(const Client *c, const char *url, size_t len) {
  size_t n = c->base_url_len;
  return c->base_url != NULL && len >= n && memcmp(url, c->base_url, n) == 0 &&
         (len == n || url[n] == '/' || url[n] == '?');
}

/* Length of the "scheme://authority" that starts `url` (0 without "://"). */
static size_t url_origin_len(const char *url, size_t len) {
  size_t i = 0;
  while (i + 3 <= len && memcmp(url + i, "://", 3) != 0) i++;
  if (i + 3 > len) return 0;
  for (i += 3; i < len && url[i] != '/' && url[i] != '?' && url[i] != '#'; i++) {}
  return i;
}

/* FNV-1a of the URL's scheme://host:port, ASCII case folded. */
static unsigned int url_host_key(const char *url, size_t len) {
  size_t i, n = url_origin_len(url, len);
  unsigned int h = 2166136261u;
  for (i = 0; i < n; i++) h = (h ^ (unsigned int)ascii_lower((unsigned char)url[i])) * 16777619u;
  return h;
}

/* Marks t presigned (with its host key) when its URL is not the API's. */
static void transfer_classify(const Client *c, Transfer *t) {
  if (t->url.data == NULL || url_under_endpoint(c, t->url.data, t->url.len)) return;
  t->presigned = 1;
  t->host_key = url_host_key(t->url.data, t->url.len);
}

/* Pushes t's URL as it may be shown (`path_only`: from its path on, "/"
** when it has none): a presigned URL stops before its query, with
** REDACTED_QUERY in its place, and loses its fragment. The buffer is read
** by the first push, before anything that could run a finalizer. */
static void push_shown_url(lua_State *L, const Transfer *t, int path_only) {
  const char *url = t->url.data ? t->url.data : "";
  size_t len = t->url.data ? t->url.len : 0, origin = url_origin_len(url, len);
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

/* Pushes a new transfer of client c (or none, for c == NULL) for `mode`,
** with the client's defaults; its buffers start from the client's spares. */
static Transfer *transfer_new(lua_State *L, Client *c, Mode mode, const char *method) {
  Transfer *t = (Transfer *)lua_newuserdatauv(L, sizeof *t, 1);
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  t->mode = mode;
  t->method = method;
  t->state = T_QUEUED;
  luaL_setmetatable(L, HANDLE_MT);
  if (c) {
    int idempotent = method && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0);
    t->policy = idempotent ? RETRY_TRANSIENT : RETRY_UNSENT;
    t->max_retries = c->max_retries;
    t->timeout_ms = c->timeout_ms;
    if (c->spares > 0 && mode != MODE_TIMER) { /* a finished transfer's buffers: no malloc churn */
      c->spares--;
      buffer_move(&t->body, &c->spare_body[c->spares]);
      buffer_move(&t->resp_headers, &c->spare_headers[c->spares]);
    }
  }
  return t;
}

/* Frees what the transfer holds; the response buffers go back to the
** client (shrunk when one large response grew them) when it is alive. */
static void transfer_free_buffers(Transfer *t) {
  Client *c = t->client;
  curl_slist_free_all(t->headers);
  t->headers = NULL;
  buffer_free(&t->url);
  buffer_free(&t->payload);
  if (c && !c->released && c->spares < POOL_MAX && c->spares < c->max_concurrency) {
    buffer_reset(&t->body, SHRINK_ABOVE);
    buffer_reset(&t->resp_headers, SHRINK_ABOVE);
    buffer_move(&c->spare_body[c->spares], &t->body);
    buffer_move(&c->spare_headers[c->spares], &t->resp_headers);
    c->spares++;
  }
  buffer_free(&t->body);
  buffer_free(&t->resp_headers);
  if (t->stream) stream_free(t);
}

/* Whether the finished attempt may be repeated under the transfer's policy. */
static int attempt_retryable(const Transfer *t) {
  if (t->cancelled || t->too_large || t->out_of_memory) return 0;
  if (t->stream && stream_fatal(t)) return 0;
  if (t->result == CURLE_OK) {
    return t->policy == RETRY_TRANSIENT && status_is_transient(t->status);
  } else {
    const struct CurlKind *k = curl_kind(t->result);
    return t->policy == RETRY_TRANSIENT ? k->transient : (k->unsent && k->transient);
  }
}

static int outcome_ok(const Transfer *t) {
  return !t->cancelled && t->result == CURLE_OK &&
         ((t->status >= 200 && t->status < 300) || t->status == 304);
}

/* Seconds to wait before attempt `t->attempts + 1`: Retry-After when the
** server gave one, else exponential backoff with equal jitter. */
static double retry_delay(Client *c, const Transfer *t) {
  double ra = retry_after_seconds(t), d = c->backoff;
  int i;
  if (ra >= 0) return ra;
  for (i = 1; i < t->attempts && d < c->backoff_max; i++) d *= 2;
  if (d > c->backoff_max) d = c->backoff_max;
  return d * (0.5 + 0.5 * client_random(c));
}

/* Sets URL, method, body and callbacks of the next attempt on `e`. */
static void attempt_prepare(Client *c, Transfer *t, CURL *e) {
  const char *m = t->method;
  int is_get = strcmp(m, "GET") == 0, is_head = strcmp(m, "HEAD") == 0;
  int is_post = strcmp(m, "POST") == 0, has_body = t->payload.data != NULL;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_URL, t->url.data);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers ? t->headers : c->base_headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms);
  /* libcurl resends a request by itself when a reused HTTP/1.1 connection
  ** turns out dead before any reply; a write must never be sent twice, so
  ** there it gets a connection of its own. HTTP/2 multiplexes instead. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                   (t->policy == RETRY_UNSENT && !(c->multiplex && c->h2_seen)) ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
  if (has_body || is_post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, has_body ? t->payload.data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? t->payload.len : 0));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  if (is_head) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (is_get || is_head || is_post) ? NULL : m);
  if (t->stream) stream_prepare(t, e);
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
  set_exchange_fields(L, t, t->cancelled ? 0 : t->status);
}

/* err.body: at most ERROR_BODY_MAX bytes of the response. Stack: err. */
static void error_set_body(lua_State *L, const Transfer *t) {
  if (t->body.len == 0) return;
  lua_pushlstring(L, t->body.data, t->body.len < ERROR_BODY_MAX ? t->body.len : ERROR_BODY_MAX);
  lua_setfield(L, -2, "body");
}

/* The message of a transport failure: what happened, in words. */
static const char *transport_message(lua_State *L, const Transfer *t) {
  const struct CurlKind *k = curl_kind(t->result);
  const char *detail = t->errbuf[0] ? t->errbuf : curl_easy_strerror(t->result);
  if (t->result == CURLE_COULDNT_CONNECT && (t->os_errno == EMFILE || t->os_errno == ENFILE))
    return lua_pushfstring(L, "too many open files: cannot open a connection (%s)", detail);
  if (t->result == CURLE_OUT_OF_MEMORY) return lua_pushfstring(L, "%s", k->message);
  if (k->message) return lua_pushfstring(L, "%s (%s)", k->message, detail);
  return lua_pushfstring(L, "%s", detail); /* lua_pushstring returns void on 5.1 */
}

/* Pushes the error for a transfer that did not complete. */
static void push_transport_error(lua_State *L, const Transfer *t) {
  if (t->cancelled) {
    error_new(L, "cancelled", t->client == NULL || t->client->released || t->client->closing
                                  ? "the request was cancelled: its client was closed"
                                  : "the request was cancelled");
  } else if (t->out_of_memory) {
    error_new(L, "too_large", "not enough memory for the response");
  } else if (t->too_large) {
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
  double ra = retry_after_seconds(t);
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
  if (t->body.len > 0 && json_decode(L, t->body.data, t->body.len) &&
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
  for (i = 0; i < t->body.len; i++) {
    char ch = t->body.data[i];
    if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') return ch == '{';
  }
  return 0;
}

/* Pushes nil and an error; returns 2. */
static int push_failure(lua_State *L, const Transfer *t) {
  lua_pushnil(L);
  if (t->unusable && !t->cancelled) error_new(L, "config", t->client->config_error);
  else if (t->cancelled || t->result != CURLE_OK) push_transport_error(L, t);
  else push_status_error(L, t);
  return 2;
}

/* Pushes the results of a finished transfer, by its mode: the decoded body
** (plus, for MODE_META, {status, headers, attempts}), true for a timer, or
** nil and an error. Returns how many. */
static int transfer_push_results(lua_State *L, const Transfer *t) {
  int n;
  if (t->mode == MODE_TIMER) {
    if (!t->cancelled) {
      lua_pushboolean(L, 1);
      return 1;
    }
    lua_pushnil(L);
    error_new(L, "cancelled", "the sleep was cancelled");
    return 2;
  }
  if (t->stream && (n = stream_push_results(L, t)) > 0) return n;
  if (!outcome_ok(t)) return push_failure(L, t);
  if (t->body.len == 0) {
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
  } else if (!json_decode(L, t->body.data, t->body.len)) {
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
  push_response_headers(L, t);
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


/* ======================================================================
** Handle methods
** ====================================================================== */

static int transfer_cancel(Transfer *t); /* engine.c */
static void transfer_detach(Transfer *t);
static void deliver_one(lua_State *L, struct Client *c, Transfer *t);
static void engine_enqueue_results(lua_State *L, Client *c, int fn, int free_call, int handle);

/* h:done() -> whether the handle has completed. */
static int l_handle_done(lua_State *L) {
  lua_pushboolean(L, to_transfer(L, 1)->state == T_DONE);
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
  static const char *const states[] = {"queued", "running", "backoff", "timer", "finished", "done"};
  if (t->mode == MODE_TIMER) lua_pushfstring(L, "atai.Handle (sleep, %s): %p", states[t->state], (void *)t);
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
