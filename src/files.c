/*
** files.c: streaming transfers, for uploads and downloads of files.
**
** A transfer with a Stream (t->stream) runs on the same engine as every
** other request, with these differences:
**   - its body goes to a file (a download) instead of a buffer, so nothing
**     bounds it but opts.max_bytes: max_response_bytes does not apply;
**   - its upload comes from a file range or a Lua string, as the whole
**     body (a PUT) or as the file part of a multipart form (POST /files),
**     read piece by piece, never whole into memory;
**   - to a presigned URL it sends none of the client's headers (no API
**     key), asks for no content encoding and follows no redirect;
**   - a low-speed limit (fewer than N bytes a second over a stall window)
**     replaces the attempt timeout;
**   - a download is written to a temporary file that only this transfer
**     made (a new name next to its destination, created with O_EXCL and
**     O_NOFOLLOW: never a planted symlink, FIFO or another run's file),
**     stops as soon as the body passes its declared size, and is renamed
**     onto the destination once complete (the rename replaces whatever is
**     there, a symlink included, and never writes through it);
**   - it counts the bytes moved, readable from Lua (h:_progress());
**   - an upload may compute its source's CRC-32C as it reads it (crc32c.c),
**     or send the form's file part in base64, encoded as it goes (base64.c).
** The Stream belongs to its transfer: files and form are closed when the
** transfer is freed (its release, or __gc), and a temporary file that was
** not renamed into place is removed then, so an error leaks nothing.
** libcurl's callbacks here only move bytes and record numbers.
*/

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define UV_DATA 4            /* user-value slot: the Lua string an upload reads */
#define STALL_DEFAULT 60     /* seconds of the low-speed window */
#define STREAM_ERROR_BODY (64 * 1024) /* bytes kept of a download's error body */
#define PART_SUFFIX ".atai-part" /* of a temporary file (stream.PART_SUFFIX) */
#define PART_RANDOM 8        /* random characters in a temporary name */
#define PART_TRIES 32        /* names tried before giving up (EEXIST) */
#define FILE_NAME_MAX 255    /* bytes of one file name (NAME_MAX of Linux, macOS) */
#define SIZE_MAX_BYTES 4503599627370496.0 /* 2^52: largest size or offset taken */

/* Why a stream failed, beyond what libcurl says. */
typedef enum {
  SE_NONE,
  SE_IO,        /* a local file could not be opened, read or written (kind "io") */
  SE_TOO_LARGE, /* the body went past opts.max_bytes */
  SE_SHORT,     /* fewer bytes than expected: the transfer was cut short */
  SE_LONG,      /* more bytes than declared (num_bytes, Content-Length) */
  SE_MEMORY     /* the multipart form could not be built */
} StreamError;

typedef struct Stream {
  FILE *out;                  /* the download's file, or NULL */
  FILE *in;                   /* the upload's file, or NULL */
  const char *data;           /* or the upload's bytes (anchored in UV_DATA) */
  curl_off_t offset, length;  /* the range of the source that is uploaded */
  curl_off_t sent;            /* bytes of that range given to libcurl */
  int has_source;
  char *form_fields;          /* a form's "name\0filename\0type\0", or NULL */
  curl_mime *form;            /* the form of the current attempt */
  int presigned;              /* a storage URL: no client headers, no key */
  long stall;                 /* seconds of the low-speed window */
  long min_speed;             /* bytes a second over that window */
  char *temp_path;            /* the download's temporary file, or NULL */
  char *dest_path;            /* where it is renamed once complete */
  int committed;              /* renamed: nothing to remove */
  int mode;                   /* permission bits of the file, -1 = umask's */
  curl_off_t seen;            /* bytes the body had when refused (or its length) */
  curl_off_t max_bytes;       /* cap of a download, 0 = none */
  curl_off_t expect;          /* bytes the body must have, -1 = unknown */
  curl_off_t written;         /* body bytes in the file, this attempt */
  curl_off_t up_now;          /* libcurl's upload counter, this attempt */
  curl_off_t down_total;      /* Content-Length as libcurl reports it, or 0 */
  curl_off_t content_length;  /* of the last response, -1 = none */
  int status_seen, to_file;   /* this response's body goes to the file (2xx) */
  StreamError error;
  int io_errno;
  const char *io_what;        /* what failed: "open", "read", "write" */
  int want_crc;               /* compute the CRC-32C of the range as it is read */
  uint32_t crc;               /* of the range's first crc_len bytes */
  curl_off_t crc_len;
  int base64;                 /* the form's file part is the range in base64 */
  B64Carry b64;
} Stream;


/* ======================================================================
** libcurl callbacks: no Lua calls in here, ever
** ====================================================================== */

static void stream_io_error(Stream *s, int err, const char *what) {
  s->error = SE_IO;
  s->io_errno = err;
  s->io_what = what;
}

/* Whether a body of `bytes` breaks a bound: opts.max_bytes (SE_TOO_LARGE)
** or the size declared (SE_LONG); records the failure. */
static int stream_refuse(Stream *s, curl_off_t bytes) {
  if (s->max_bytes > 0 && bytes > s->max_bytes) s->error = SE_TOO_LARGE;
  else if (s->expect >= 0 && bytes > s->expect) s->error = SE_LONG;
  else return 0;
  s->seen = bytes;
  return 1;
}

/* The first body bytes of a response: whether they go to the file (a 2xx),
** and whether its Content-Length already breaks a bound (then nothing is
** written). A presigned download asks for no content encoding, so its
** Content-Length is the size of the file; the API's may be compressed.
** Returns 0 to stop the transfer. */
static int stream_first_body(Transfer *t, Stream *s) {
  long status = 0;
  curl_off_t length = -1;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
  s->to_file = status >= 200 && status < 300;
  s->status_seen = 1;
#if CURL_AT_LEAST_VERSION(7, 55, 0)
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
#endif
  return !(s->to_file && s->presigned && length >= 0 && stream_refuse(s, length));
}

/* The body of a response: to the file when it is a 2xx of a download,
** else to the buffer (a PUT's reply; a download's error body, cut short). */
static size_t on_stream_body(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  Stream *s = t->stream;
  size_t len = size * count;
  if (s->out == NULL) return on_body(data, size, count, ud);
  if (!s->status_seen && !stream_first_body(t, s)) return 0;
  if (!s->to_file) {
    size_t room = t->body.len < STREAM_ERROR_BODY ? STREAM_ERROR_BODY - t->body.len : 0;
    if (room > 0 && !buffer_add(&t->body, data, len < room ? len : room)) return 0;
    return len;
  }
  if (stream_refuse(s, s->written + (curl_off_t)len)) return 0;
  if (fwrite(data, 1, len, s->out) != len) {
    stream_io_error(s, errno, "write");
    return 0;
  }
  s->written += (curl_off_t)len;
  return len;
}

/* Extends the range's CRC by the bytes at s->sent (a rewound attempt reads
** bytes already counted: only those past crc_len count). */
static void stream_crc(Stream *s, const char *buf, size_t got) {
  curl_off_t skip = s->crc_len - s->sent;
  if (!s->want_crc || skip >= (curl_off_t)got) return;
  if (skip < 0) { /* a gap (never seen: reads go on from a rewind): no CRC rather than a wrong one */
    s->want_crc = 0;
    return;
  }
  s->crc = crc32c_update(s->crc, buf + skip, got - (size_t)skip);
  s->crc_len = s->sent + (curl_off_t)got;
}

/* Takes up to `want` bytes of the range into buf; returns how many, 0 at
** its end or on a read error (recorded). */
static size_t stream_take(Stream *s, char *buf, size_t want) {
  size_t got;
  curl_off_t left = s->length - s->sent;
  if ((curl_off_t)want > left) want = (size_t)left;
  if (want == 0) return 0;
  if (s->data) {
    memcpy(buf, s->data + s->offset + s->sent, want);
    got = want;
  } else {
    got = fread(buf, 1, want, s->in);
    if (got == 0) {
      stream_io_error(s, ferror(s->in) ? errno : 0, "read");
      return 0;
    }
  }
  stream_crc(s, buf, got);
  s->sent += (curl_off_t)got;
  return got;
}

/* Reads the next piece of the uploaded range (a PUT body, or the form's
** file part: both use this callback). */
static size_t stream_read(char *buf, size_t size, size_t count, void *ud) {
  Stream *s = (Stream *)ud;
  size_t want = size * count;
  if (want == 0 || s->sent >= s->length) return 0;
  want = stream_take(s, buf, want);
  return want ? want : CURL_READFUNC_ABORT;
}

/* base64.c's source: exactly `want` bytes of the range, or 0. */
static size_t stream_take_all(void *ud, char *dst, size_t want) {
  size_t got = 0, n;
  while (got < want && (n = stream_take((Stream *)ud, dst + got, want - got)) > 0) got += n;
  return got;
}

/* The form's file part of upload_base64: the range, encoded as it is read. */
static size_t stream_read_base64(char *buf, size_t size, size_t count, void *ud) {
  Stream *s = (Stream *)ud;
  size_t n = b64_fill(&s->b64, buf, size * count, (uint64_t)(s->length - s->sent), stream_take_all, s);
  if (n == (size_t)-1) {
    if (s->error == SE_NONE) stream_io_error(s, 0, "read");
    return CURL_READFUNC_ABORT;
  }
  return n;
}

/* Rewinds the upload (libcurl resends a body on a reused connection that
** turned out dead, and before each attempt). */
static int stream_seek(void *ud, curl_off_t offset, int origin) {
  Stream *s = (Stream *)ud;
  if (s->base64) { /* an offset in the encoding: only at a group's start */
    if (origin != SEEK_SET || offset < 0 || offset % 4 != 0) return CURL_SEEKFUNC_CANTSEEK;
    offset = offset / 4 * 3;
    s->b64.len = s->b64.at = 0;
  }
  if (origin != SEEK_SET || offset < 0 || offset > s->length) return CURL_SEEKFUNC_CANTSEEK;
  if (s->in && fseeko(s->in, (off_t)(s->offset + offset), SEEK_SET) != 0) return CURL_SEEKFUNC_FAIL;
  s->sent = offset;
  return CURL_SEEKFUNC_OK;
}

/* Records libcurl's counters; never stops the transfer. */
static int on_stream_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                              curl_off_t ulnow) {
  Stream *s = (Stream *)ud;
  (void)dlnow;
  (void)ultotal;
  s->up_now = ulnow;
  if (dltotal > 0) s->down_total = dltotal;
  return 0;
}


/* ======================================================================
** Engine hooks (declared in atai.h)
** ====================================================================== */

/* Builds the form of this attempt on easy handle e: one part, the source,
** read by stream_read. A new form each attempt: libcurl keeps a form's read
** state and would not rewind it for the next transfer. */
static int stream_build_form(Stream *s, CURL *e) {
  const char *name = s->form_fields, *filename = name + strlen(name) + 1;
  const char *type = filename + strlen(filename) + 1;
  curl_mimepart *part;
  curl_mime_free(s->form); /* the easy handle that used it was reset */
  s->form = curl_mime_init(e);
  part = s->form ? curl_mime_addpart(s->form) : NULL;
  if (part && curl_mime_name(part, name) == CURLE_OK && curl_mime_filename(part, filename) == CURLE_OK &&
      (!*type || curl_mime_type(part, type) == CURLE_OK) &&
      curl_mime_data_cb(part, s->base64 ? (curl_off_t)b64_size((uint64_t)s->length) : s->length,
                        s->base64 ? stream_read_base64 : stream_read, stream_seek, NULL, s) == CURLE_OK)
    return 1;
  s->error = SE_MEMORY;
  return 0;
}

/* libcurl's receive buffer for a stream (its default: 16 KiB): each
** socket readiness reads at most this much, so a 1 GiB body took 65,536
** recv(2) calls and as many engine steps; at 512 KiB (the curl tool uses
** 100 KiB) a 1 GiB download from nginx on loopback takes a third less CPU.
** libcurl frees the buffer when the transfer is done, so pooled easy
** handles do not keep it. */
#define STREAM_RECV_BUFFER (512L * 1024)
/* Its send buffer for an upload (default 64 KiB): as many bytes go per
** fread and send(2). Four part PUTs at once at 64 KiB each took 30 % longer
** than at 512 KiB on loopback: every send wakes the receiver. */
#define STREAM_SEND_BUFFER (512L * 1024)

/* Sets the stream's options on the attempt's easy handle, after the usual
** ones; the file goes back to its start (a retry rewrites it). */
static void stream_prepare(Transfer *t, CURL *e) {
  Stream *s = t->stream;
  s->written = s->sent = s->up_now = s->down_total = 0;
  s->content_length = -1;
  s->status_seen = s->to_file = 0;
  s->b64.len = s->b64.at = 0;
  if (s->error != SE_IO) s->error = SE_NONE;
  /* Only a file an earlier attempt wrote to is emptied: ext4 (auto_da_alloc)
  ** flushes a file truncated to 0 when it is closed, so truncating the new,
  ** still empty file made fclose wait while 1 GiB was written out. */
  if (s->out && ftello(s->out) != 0) {
    rewind(s->out);
    if (ftruncate(fileno(s->out), 0) != 0) stream_io_error(s, errno, "write");
  }
  if (s->in && fseeko(s->in, (off_t)s->offset, SEEK_SET) != 0) stream_io_error(s, errno, "read");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_stream_body);
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, STREAM_RECV_BUFFER);
  curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_stream_progress);
  curl_easy_setopt(e, CURLOPT_XFERINFODATA, (void *)s);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, s->min_speed);
  curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, s->stall);
  if (s->presigned) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, (char *)NULL);
  if (s->form_fields) {
    if (stream_build_form(s, e)) curl_easy_setopt(e, CURLOPT_MIMEPOST, s->form);
    else curl_easy_setopt(e, CURLOPT_URL, ""); /* fails at once: nothing is sent */
  } else if (s->has_source) {
    curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(e, CURLOPT_READFUNCTION, stream_read);
    curl_easy_setopt(e, CURLOPT_READDATA, (void *)s);
    curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, stream_seek);
    curl_easy_setopt(e, CURLOPT_SEEKDATA, (void *)s);
    curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, s->length);
  }
  if (s->has_source) curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, STREAM_SEND_BUFFER);
}

/* An easy handle that ran a stream gets every option back to the pool's
** defaults (the connection cache is the multi handle's: nothing is lost). */
static void stream_restore(Client *c, CURL *e) {
  curl_easy_reset(e);
  easy_configure(c, e);
}

/* The end of an attempt: the file is flushed and its size checked against
** what was expected, so a short body is retried like a cut connection. */
static CURLcode stream_end(Transfer *t, CURLcode result) {
  Stream *s = t->stream;
  long status = 0;
  curl_off_t length = -1;
  curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
#if CURL_AT_LEAST_VERSION(7, 55, 0)
  curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
#endif
  s->content_length = length;
  if (result != CURLE_OK || s->out == NULL || status < 200 || status >= 300) return result;
  if (fflush(s->out) != 0) {
    stream_io_error(s, errno, "write");
    return CURLE_WRITE_ERROR;
  }
  if (s->expect >= 0 && s->written != s->expect) {
    s->error = s->written < s->expect ? SE_SHORT : SE_LONG;
    s->seen = s->written;
    return s->written < s->expect ? CURLE_PARTIAL_FILE : CURLE_WRITE_ERROR;
  }
  if (rename(s->temp_path, s->dest_path) != 0) {
    stream_io_error(s, errno, "rename");
    return CURLE_WRITE_ERROR;
  }
  s->committed = 1;
  return result;
}

/* Whether the stream failed in a way another attempt cannot mend. */
static int stream_fatal(const Transfer *t) {
  StreamError e = t->stream->error;
  return e == SE_IO || e == SE_TOO_LARGE || e == SE_LONG || e == SE_MEMORY;
}

/* Kind and message of each StreamError; the message gets the bytes the body
** had (written, or seen when refused) and the bound they broke
** (opts.max_bytes, or the size declared). */
static const struct StreamErrorText {
  const char *kind, *fmt;
} stream_errors[] = {
  {"network", "%lld %lld"}, /* SE_NONE: never pushed */
  {"io", NULL},             /* SE_IO: its own message */
  {"too_large", "download larger than opts.max_bytes: %lld bytes or more, the cap is %lld"},
  {"network", "transfer cut short: %lld of %lld bytes"},
  {"too_large", "download larger than its declared size: %lld bytes or more, %lld declared"},
  {"too_large", "not enough memory for the multipart form (%lld, %lld)"},
};

/* Pushes the error of a stream failure (kind, message, and the fields of
** every request error). */
static void push_stream_error(lua_State *L, const Transfer *t) {
  const Stream *s = t->stream;
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

/* Pushes a stream's own results: its error, or for MODE_STREAM the table
** {status, bytes, content_length, headers}. Returns 0 when the usual
** results apply (a status error, a decoded JSON reply, a cancel). */
static int stream_push_results(lua_State *L, const Transfer *t) {
  const Stream *s = t->stream;
  if (t->cancelled) return 0;
  if (s->error != SE_NONE) {
    lua_pushnil(L);
    push_stream_error(L, t);
    return 2;
  }
  if (!outcome_ok(t) || t->mode != MODE_STREAM) return 0;
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
  push_response_headers(L, t);
  lua_setfield(L, -2, "headers");
  return 1;
}

/* Closes the files and frees the form (the easy handle that used it was
** reset before: see stream_restore). */
static void stream_free(Transfer *t) {
  Stream *s = t->stream;
  t->stream = NULL;
  if (s->out) fclose(s->out);
  if (s->temp_path && !s->committed) unlink(s->temp_path); /* ours: made with O_EXCL */
  if (s->in) fclose(s->in);
  curl_mime_free(s->form);
  free(s->form_fields);
  free(s->temp_path);
  free(s->dest_path);
  free(s);
}


/* ======================================================================
** Starting a stream: client:_stream(spec)
** ====================================================================== */

/* spec[field] as a string (left on the stack), NULL when nil. */
static const char *spec_string(lua_State *L, int spec, const char *field, size_t *len) {
  lua_getfield(L, spec, field);
  if (lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "_stream: spec.%s: string expected", field);
  return lua_tolstring(L, -1, len);
}

/* spec[field] as a number within [min, max], or dflt when nil. */
static double spec_number(lua_State *L, int spec, const char *field, double dflt, double min, double max) {
  double n = dflt;
  lua_getfield(L, spec, field);
  if (!lua_isnil(L, -1) &&
      (lua_type(L, -1) != LUA_TNUMBER || !((n = lua_tonumber(L, -1)) >= min && n <= max)))
    luaL_error(L, "_stream: spec.%s: number from %f to %f expected", field, min, max);
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
  if (!t->stream->presigned) {
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
  if (length < 0) luaL_error(L, "_stream: source offset past the data");
  if (data) {
    if (offset + length > (double)len) luaL_error(L, "_stream: source range past the data");
    push_uv(L, handle);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, UV_DATA); /* keeps the string (and s->data) alive */
    lua_pop(L, 1);
    s->data = data;
  } else if (path) {
    s->in = stream_open(s, path, "rb");
  } else {
    luaL_error(L, "_stream: spec.source needs path or data");
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
    luaL_error(L, "_stream: spec.form needs name, filename (no NUL) and a source");
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
  if (t->stream->presigned) {
    if (!url || !(strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0))
      luaL_error(L, "_stream: a presigned spec.url must be http(s)");
  } else {
    url = spec_string(L, spec, "path", &len);
    if (!url || url[0] != '/') luaL_error(L, "_stream: spec.path must start with '/'");
  }
  for (i = 0; i < len; i++)
    if ((unsigned char)url[i] <= ' ' || (unsigned char)url[i] >= 0x7f) luaL_error(L, "_stream: bad byte in the URL");
  if ((!t->stream->presigned && !buffer_add(&t->url, c->base_url, c->base_url_len)) ||
      !buffer_add(&t->url, url, len))
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
  t->stream = s = (Stream *)calloc(1, sizeof *s);
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
  if (sink && (sink_len == 0 || strlen(sink) != sink_len)) luaL_error(L, "_stream: spec.sink: a path without NUL expected");
  stream_headers(L, c, t, sink != NULL);
  stream_source(L, 2, 3, s);
  stream_form(L, 2, s);
  if (sink && s->error == SE_NONE) s->out = stream_make_temp(s, sink, sink_len);
  lua_settop(L, 3);
  t->unusable = s->error != SE_NONE || (!s->presigned && c->config_error != NULL);
  transfer_submit(L, c, 1, 3, 0, 0);
  return 1;
}

/* h:_progress() -> bytes done, bytes in all (nil when unknown): a stream's
** counters for its current attempt; 0, nil for any other handle. */
static int l_handle_progress(lua_State *L) {
  Transfer *t = to_transfer(L, 1);
  const Stream *s = t->stream;
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
static void files_open(lua_State *L, int module, int decode) {
  static const luaL_Reg module_fns[] = {{"mkdir", l_mkdir}, {"stat", l_stat}, {"wall_time", l_wall_time},
                                        {"crc32c", l_crc32c}, {"crc32c_combine", l_crc32c_combine},
                                        {"crc32c_file", l_crc32c_file}, {"base64", l_base64}, {NULL, NULL}};
  static const luaL_Reg client_fns[] = {{"_stream", l_client_stream}, {NULL, NULL}};
  static const luaL_Reg handle_fns[] = {{"_progress", l_handle_progress}, {NULL, NULL}};
  lua_pushvalue(L, module);
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, module_fns, MODULE_UPVALUES);
  lua_getfield(L, module, "Client");
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, client_fns, MODULE_UPVALUES);
  lua_getfield(L, module, "Handle");
  lua_pushvalue(L, decode);
  luaL_setfuncs(L, handle_fns, MODULE_UPVALUES);
  lua_pop(L, 3);
}
