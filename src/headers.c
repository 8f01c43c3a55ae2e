/*
** headers.c: layer 0, plain C over a header block. Reads the "Name: value"
** lines libcurl handed a transfer (kept in a Buffer): one header's value,
** Retry-After in seconds, and the whole block as a Lua table with unsafe
** bytes dropped. Fuzzed by fuzz/headers.c.
*/

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

/* The Retry-After of a header block in seconds, or -1. */
static double retry_after_seconds(const Buffer *headers) {
  size_t len = 0;
  const char *v = find_header(headers, "retry-after", &len);
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
** headers joined with ", ". Reads a transfer's own buffer, which no Lua
** code can reach, so the allocations below cannot invalidate it. */
static void push_response_headers(lua_State *L, const Buffer *headers) {
  const char *p = headers->data, *end = p ? p + headers->len : NULL;
  int lines = 0;
  HeaderLine h;
  for (; p && p < end; p++) lines += *p == '\n';
  lua_createtable(L, 0, lines);
  p = headers->data;
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
