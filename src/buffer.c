/*
** buffer.c: a growable byte buffer owned by a client userdata.
**
** Response bodies, response headers and encoded request bodies live here,
** not in luaL_Buffers: libcurl fills them from callbacks where Lua must not
** be called, and because the client userdata owns them, a Lua error raised
** halfway through a request leaks nothing (__gc frees them).
*/

typedef struct Buffer {
  char *data;
  size_t len;
  size_t cap;
} Buffer;

/* Makes room for `extra` more bytes; returns 0 when memory runs out. */
static int buffer_reserve(Buffer *b, size_t extra) {
  size_t need = b->len + extra + 1; /* +1 keeps room for a NUL */
  size_t cap;
  char *data;
  if (need <= b->cap) return 1;
  cap = b->cap ? b->cap : 4096;
  while (cap < need) cap *= 2;
  data = (char *)realloc(b->data, cap);
  if (data == NULL) return 0;
  b->data = data;
  b->cap = cap;
  return 1;
}

/* Makes room for exactly `extra` more bytes (and the NUL) when the buffer
** is too small: for a request's URL, whose size is known before it is
** built, and which waits with its handle (10,000 queued handles must not
** hold 4 KiB each). Returns 0 when memory runs out. */
static int buffer_reserve_exact(Buffer *b, size_t extra) {
  size_t need = b->len + extra + 1;
  char *data;
  if (need <= b->cap) return 1;
  data = (char *)realloc(b->data, need);
  if (data == NULL) return 0;
  b->data = data;
  b->cap = need;
  return 1;
}

/* Appends `len` bytes; returns 0 when memory runs out. */
static int buffer_add(Buffer *b, const char *s, size_t len) {
  if (!buffer_reserve(b, len)) return 0;
  memcpy(b->data + b->len, s, len);
  b->len += len;
  b->data[b->len] = '\0';
  return 1;
}

/* Gives back the room past the content (and its NUL): an encoded request
** body waits with its queued handle. Keeps the buffer as it is when the
** smaller block cannot be had. */
static void buffer_fit(Buffer *b) {
  char *data;
  if (b->data == NULL || b->cap <= b->len + 1) return;
  data = (char *)realloc(b->data, b->len + 1);
  if (data == NULL) return;
  b->data = data;
  b->cap = b->len + 1;
}

/* Empties the buffer but keeps its memory for the next request. */
static void buffer_clear(Buffer *b) {
  b->len = 0;
  if (b->data) b->data[0] = '\0';
}

/* Gives the memory back; idempotent. */
static void buffer_free(Buffer *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

/* Empties the buffer, and gives its memory back when it grew past `limit`
** (one large response must not pin its size for the client's life). */
static void buffer_reset(Buffer *b, size_t limit) {
  if (b->cap > limit) buffer_free(b);
  else buffer_clear(b);
}

/* Moves src's memory into dst (which must be empty and unallocated). */
static void buffer_move(Buffer *dst, Buffer *src) {
  *dst = *src;
  src->data = NULL;
  src->len = src->cap = 0;
}
