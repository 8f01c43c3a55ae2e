/*
** files.c: layer 4, Lua bindings of streaming transfers: the stream spec
** the Lua layer hands over (files to read and write, a form, a presigned
** URL) made into a Stream (stream.c) and started; progress counters;
** mkdir and stat for the Lua layer's file handling (files_open registers
** them).
*/

/* ======================================================================
** Starting a stream: P.stream(client, spec) (P: atai.core.private)
** ====================================================================== */

/* spec[field] as a string (left on the stack), NULL when nil. */
static const char *spec_string(lua_State *L, int spec, const char *field, size_t *len) {
  lua_getfield(L, spec, field);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "stream: spec.%s: string expected", field);
  return lua_tolstring(L, -1, len);
}

/* spec[field] as a number within [min, max], or dflt when nil. */
static double spec_number(lua_State *L, int spec, const char *field, double dflt, double min, double max) {
  double n = dflt;
  lua_getfield(L, spec, field);
  if (!lua_isnil(L, -1)) n = lua_tonumber(L, -1);
  ATAI_CHECKED(L, lua_isnil(L, -1) || (lua_type(L, -1) == LUA_TNUMBER && n >= min && n <= max), field);
  lua_pop(L, 1);
  return n;
}

/* Opens a file of the stream; a failure is the handle's result. */
static FILE *stream_open(Stream *s, const char *path, const char *mode) {
  FILE *f = fopen(path, mode);
  if (f == NULL) stream_io_error(s, errno, "open");
  return f;
}

/* Fills `out` with n random characters [0-9a-z]: from /dev/urandom, else
** from the clock, the process id and an address (O_EXCL catches a clash). */
static void random_chars(char *out, size_t n, unsigned long salt) {
  static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  unsigned char bytes[32];
  size_t i, got = 0;
  int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t r = read(fd, bytes, n < sizeof bytes ? n : sizeof bytes);
    got = r > 0 ? (size_t)r : 0;
    close(fd);
  }
  if (got < n) {
    unsigned long x = (unsigned long)(monotonic_seconds() * 1e9) ^ ((unsigned long)getpid() << 16) ^ salt;
    for (i = got; i < n && i < sizeof bytes; i++) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      bytes[i] = (unsigned char)(x >> 24);
    }
  }
  for (i = 0; i < n; i++) out[i] = alphabet[bytes[i % sizeof bytes] % 36];
}

/* Length of the first `max` bytes of s (of len) cut back to a UTF-8
** character boundary: never half a character. */
static size_t utf8_cut(const char *s, size_t len, size_t max) {
  size_t n = len < max ? len : max;
  int back = 0;
  if (n == len) return n;
  while (n > 0 && back < 3 && ((unsigned char)s[n] & 0xC0) == 0x80) n--, back++;
  return n;
}

/* Makes the download's temporary file next to dest: "<dest>.<random>" +
** PART_SUFFIX (the name cut on a character boundary so that it fits in
** FILE_NAME_MAX bytes), created new with O_EXCL | O_NOFOLLOW, so it is
** never a symlink, a FIFO or a file someone else made; mode: exact
** permission bits, or -1 for 0666 less the umask (as curl does). */
static FILE *stream_make_temp(Stream *s, const char *dest, size_t len) {
  const char *slash = strrchr(dest, '/');
  size_t dir_len = slash ? (size_t)(slash - dest) + 1 : 0, base_len = len - dir_len;
  size_t extra = 1 + PART_RANDOM + sizeof PART_SUFFIX - 1, keep, tries;
  char *path;
  int fd = -1;
  FILE *f;
  keep = dir_len + utf8_cut(dest + dir_len, base_len, FILE_NAME_MAX - extra);
  s->dest_path = (char *)malloc(len + 1);
  path = (char *)malloc(keep + extra + 1);
  if (s->dest_path == NULL || path == NULL) {
    free(path);
    stream_io_error(s, ENOMEM, "create");
    return NULL;
  }
  memcpy(s->dest_path, dest, len + 1);
  memcpy(path, dest, keep);
  path[keep] = '.';
  memcpy(path + keep + 1 + PART_RANDOM, PART_SUFFIX, sizeof PART_SUFFIX);
  for (tries = 0; fd < 0 && tries < PART_TRIES; tries++) {
    random_chars(path + keep + 1, PART_RANDOM, (unsigned long)(size_t)s + tries);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
              (mode_t)(s->mode >= 0 ? (s->mode & 0600) : 0666));
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    stream_io_error(s, errno, "create");
    free(path);
    return NULL;
  }
  s->temp_path = path; /* ours now: removed with the stream unless renamed */
  if ((s->mode >= 0 && fchmod(fd, (mode_t)s->mode) != 0) || (f = fdopen(fd, "wb")) == NULL) {
    stream_io_error(s, errno, "create");
    close(fd);
    return NULL; /* the file is removed with the stream */
  }
  return f;
}

/* The request headers: for a presigned URL only "Expect:" (never the
** client's: no key); for the API the client's, minus Content-Type (a form
** sets its own) and, for a download, with any Accept. */
static void stream_headers(lua_State *L, Client *c, Transfer *t, int download) {
  struct curl_slist *h;
  if (!t->x->stream->presigned) {
    for (h = c->base_headers; h; h = h->next) {
      size_t n = strcspn(h->data, ":");
      if (equals_ci(h->data, n, "content-type") || (download && equals_ci(h->data, n, "accept"))) continue;
      headers_append(L, t, h->data);
    }
    if (download) headers_append(L, t, "Accept: */*");
  }
  headers_append(L, t, "Expect:"); /* no 100-continue wait; never an empty list */
}

/* The source of an upload: spec.source = {path | data, offset, length}. */
static void stream_source(lua_State *L, int spec, int handle, Stream *s) {
  size_t len = 0;
  const char *path, *data;
  double offset, length;
  lua_getfield(L, spec, "source");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  spec = lua_gettop(L);
  s->has_source = 1;
  path = spec_string(L, spec, "path", NULL);
  data = spec_string(L, spec, "data", &len);
  offset = spec_number(L, spec, "offset", 0, 0, 4503599627370496.0);
  length = spec_number(L, spec, "length", data ? (double)len - offset : 0, 0, 4503599627370496.0);
  s->offset = (curl_off_t)offset;
  s->length = (curl_off_t)length;
  if (length < 0) luaL_error(L, "stream: source offset past the data");
  if (data) {
    if (offset + length > (double)len) luaL_error(L, "stream: source range past the data");
    push_uv(L, handle);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, UV_DATA); /* keeps the string (and s->data) alive */
    lua_pop(L, 1);
    s->data = data;
  } else if (path) {
    s->in = stream_open(s, path, "rb");
  } else {
    luaL_error(L, "stream: spec.source needs path or data");
  }
}

/* The multipart form of spec.form = {name, filename, type}: one part whose
** content is the source; kept as three strings, the form itself is made
** for each attempt (stream_build_form). */
static void stream_form(lua_State *L, int spec, Stream *s) {
  size_t n1 = 0, n2 = 0, n3 = 0;
  const char *name, *filename, *type;
  lua_getfield(L, spec, "form");
  if (lua_isnil(L, -1)) return;
  luaL_checktype(L, -1, LUA_TTABLE);
  spec = lua_gettop(L);
  name = spec_string(L, spec, "name", &n1);
  filename = spec_string(L, spec, "filename", &n2);
  type = spec_string(L, spec, "type", &n3);
  if (!s->has_source || !name || !filename || strlen(name) != n1 || strlen(filename) != n2 ||
      (type && strlen(type) != n3))
    luaL_error(L, "stream: spec.form needs name, filename (no NUL) and a source");
  s->form_fields = (char *)malloc(n1 + n2 + n3 + 3);
  if (s->form_fields == NULL) luaL_error(L, "not enough memory");
  memcpy(s->form_fields, name, n1 + 1);
  memcpy(s->form_fields + n1 + 1, filename, n2 + 1);
  memcpy(s->form_fields + n1 + n2 + 2, type ? type : "", n3 + 1);
}

/* The URL: spec.url (presigned: absolute http(s)) or spec.path (under the
** endpoint, already escaped by the Lua layer). */
static void stream_url(lua_State *L, Client *c, Transfer *t, int spec) {
  size_t len = 0, i;
  const char *url = spec_string(L, spec, "url", &len);
  if (t->x->stream->presigned) {
    if (!url || !(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
      luaL_error(L, "stream: a presigned spec.url must be http(s)");
  } else {
    url = spec_string(L, spec, "path", &len);
    if (!url || url[0] != '/') luaL_error(L, "stream: spec.path must start with '/'");
  }
  for (i = 0; i < len; i++)
    if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) luaL_error(L, "stream: bad byte in the URL");
  if (!buffer_reserve_exact(&t->x->url, (t->x->stream->presigned ? 0 : c->base_url_len) + len) ||
      (!t->x->stream->presigned && !buffer_add(&t->x->url, c->base_url, c->base_url_len)) ||
      !buffer_add(&t->x->url, url, len))
    luaL_error(L, "not enough memory");
}

/* client:_stream(spec) -> handle: a streaming transfer, in flight at once.
** spec: method ("GET", "PUT" or "POST"), presigned (boolean: url, no key)
** or path (API), sink (the file the body ends up in: written to a new
** temporary file beside it, renamed onto it once complete), mode (the
** sink's permission bits, default 0666 less the umask), source ({path |
** data, offset, length}: the PUT body, or the form's file), form ({name,
** filename, type}), expect_bytes, max_bytes, stall (s) and min_speed
** (bytes/s: the low-speed limit, default 1), timeout (s, none by default),
** max_retries, decode (the reply is JSON: MODE_BODY), crc (the source's
** CRC-32C, computed as it is read, in the result's crc32c), base64 (the
** form's file part is the source in base64). */
static int l_client_stream(lua_State *L) {
  Client *c = check_client(L, 1, 0);
  const char *method, *sink;
  size_t sink_len = 0;
  Transfer *t;
  Stream *s;
  int decode;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  lua_getfield(L, 2, "method");
  method = check_method(L, 3);
  lua_getfield(L, 2, "decode");
  decode = lua_toboolean(L, -1);
  lua_settop(L, 2);
  t = transfer_new(L, c, decode ? MODE_BODY : MODE_STREAM, method); /* at 3 */
  t->x->stream = s = (Stream *)calloc(1, sizeof *s);
  if (s == NULL) return luaL_error(L, "not enough memory");
  t->policy = RETRY_TRANSIENT; /* a PUT of a part, a GET, a POST /files that overwrites */
  t->timeout_ms = 0;
  lua_getfield(L, 2, "presigned");
  s->presigned = lua_toboolean(L, -1);
  lua_getfield(L, 2, "crc");
  s->want_crc = lua_toboolean(L, -1);
  lua_getfield(L, 2, "base64");
  s->base64 = lua_toboolean(L, -1);
  s->stall = (long)ceil(spec_number(L, 2, "stall", STALL_DEFAULT, 0.001, CALL_TIMEOUT_MAX)); /* whole seconds */
  s->min_speed = (long)spec_number(L, 2, "min_speed", 1, 1, 1e12);
  s->max_bytes = (curl_off_t)spec_number(L, 2, "max_bytes", 0, 0, SIZE_MAX_BYTES);
  s->expect = (curl_off_t)spec_number(L, 2, "expect_bytes", -1, -1, SIZE_MAX_BYTES);
  s->mode = (int)spec_number(L, 2, "mode", -1, -1, 0777);
  s->content_length = -1;
  read_call_opts(L, 2, "_stream", t);
  stream_url(L, c, t, 2);
  sink = spec_string(L, 2, "sink", &sink_len);
  if (sink && (sink_len == 0 || strlen(sink) != sink_len)) luaL_error(L, "stream: spec.sink: a path without NUL expected");
  stream_headers(L, c, t, sink != NULL);
  stream_source(L, 2, 3, s);
  stream_form(L, 2, s);
  if (sink && s->error == SE_NONE) s->out = stream_make_temp(s, sink, sink_len);
  lua_settop(L, 3);
  transfer_submit(L, c, 1, 3, 0, 0,
                  s->error != SE_NONE                          ? OUTCOME_STREAM
                  : !s->presigned && c->config_error != NULL ? OUTCOME_CONFIG
                                                               : OUTCOME_PENDING);
  return 1;
}

/* h:_progress() -> bytes done, bytes in all (nil when unknown): a stream's
** counters for its current attempt; 0, nil for any other handle. */
static int l_handle_progress(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  const Stream *s = t->x->stream;
  curl_off_t done = 0, total = -1;
  if (s && s->has_source) {
    total = s->length;
    done = s->form && !s->base64 ? (s->up_now < s->length ? s->up_now : s->length) : s->sent;
  } else if (s) {
    done = s->written;
    total = s->expect >= 0 ? s->expect : (s->down_total > 0 ? s->down_total : -1);
  }
  lua_pushnumber(L, (lua_Number)done);
  if (total >= 0) lua_pushnumber(L, (lua_Number)total);
  else lua_pushnil(L);
  return 2;
}


/* ======================================================================
** Local files: core.mkdir, core.stat
** ====================================================================== */

/* core.mkdir(path) -> true | nil, message: makes a folder and its parents
** (like mkdir -p); a folder that exists is fine. */
static int l_mkdir(lua_State *L) {
  size_t len, i;
  const char *path = luaL_checklstring(L, 1, &len);
  struct stat st;
  char *copy;
  luaL_argcheck(L, len > 0 && strlen(path) == len, 1, "non-empty path without NUL expected");
  copy = (char *)lua_newuserdatauv(L, len + 1, 0); /* freed by the collector */
  memcpy(copy, path, len + 1);
  for (i = 1; i <= len; i++) {
    if (i < len && copy[i] != '/') continue;
    copy[i] = '\0';
    if (mkdir(copy, 0777) != 0 && errno != EEXIST) {
      lua_pushnil(L);
      lua_pushfstring(L, "cannot create %s: %s", copy, strerror(errno));
      return 2;
    }
    if (i < len) copy[i] = '/';
  }
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s exists and is not a folder", path);
    return 2;
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* core.stat(path[, nofollow]) -> size, "file" | "directory" | "link" |
** "other", or nil, message; nofollow: a symlink is not followed ("link"). */
static int l_stat(lua_State *L) {
  const char *path = luaL_checkstring(L, 1);
  struct stat st;
  if ((lua_toboolean(L, 2) ? lstat(path, &st) : stat(path, &st)) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(errno));
    return 2;
  }
  lua_pushinteger(L, (lua_Integer)st.st_size);
  lua_pushstring(L, S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "directory"
                   : S_ISLNK(st.st_mode) ? "link" : "other");
  return 2;
}

/* core.wall_time() -> seconds since the epoch, with fractions: the clock
** the expires_at of presigned URLs is compared with. */
static int l_wall_time(lua_State *L) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
  return 1;
}

/* Adds this room's functions: to the module table at `module`, the client
** methods and the handle methods; `decode` is the shared upvalue. */
/* Registers the module's file functions, and stream and progress in the
** private table (at index `private`). */
static void files_open(lua_State *L, int module, int decode, int private) {
  static const luaL_Reg module_fns[] = {{"mkdir", l_mkdir}, {"stat", l_stat}, {"wall_time", l_wall_time},
                                        {"crc32c", l_crc32c}, {"crc32c_combine", l_crc32c_combine},
                                        {"crc32c_file", l_crc32c_file}, {"base64", l_base64}, {NULL, NULL}};
  static const luaL_Reg private_fns[] = {{"stream", l_client_stream},
                                         {"progress", l_handle_progress}, {NULL, NULL}};
  lua_pushvalue(L, module);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, module_fns, MODULE_UPVALUES);
  lua_pushvalue(L, private);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, private_fns, MODULE_UPVALUES);
  lua_pop(L, 2);
}
