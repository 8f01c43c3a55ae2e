/*
** stream.c: layer 1, the streaming part of one transfer: a body written to
** a file as it arrives, an upload read from a file (or a Lua string) as it
** is sent, a multipart form, the CRC-32C of what went by. transfer.c calls
** these hooks for a transfer with t->x->stream; none of them calls Lua.
**
** A transfer with a Stream runs on the same engine as every other one;
** only the places where its bytes come from and go to differ. The Stream
** belongs to its transfer: files and form are closed when the transfer
** ends or is collected (stream_free).
*/

#include <fcntl.h>
#include <math.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
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
  curl_easy_getinfo(t->x->easy, CURLINFO_RESPONSE_CODE, &status);
  s->to_file = status >= 200 && status < 300;
  s->status_seen = 1;
#if CURL_AT_LEAST_VERSION(7, 55, 0)
  curl_easy_getinfo(t->x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
#endif
  return !(s->to_file && s->presigned && length >= 0 && stream_refuse(s, length));
}

/* The body of a response: to the file when it is a 2xx of a download,
** else to the buffer (a PUT's reply; a download's error body, cut short). */
static size_t on_stream_body(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  Stream *s = t->x->stream;
  size_t len = size * count;
  if (s->out == NULL) return on_body(data, size, count, ud);
  if (!s->status_seen && !stream_first_body(t, s)) return 0;
  if (!s->to_file) {
    size_t room = t->x->body.len < STREAM_ERROR_BODY ? STREAM_ERROR_BODY - t->x->body.len : 0;
    if (room > 0 && !buffer_add(&t->x->body, data, len < room ? len : room)) return 0;
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
  Stream *s = t->x->stream;
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
  Stream *s = t->x->stream;
  long status = 0;
  curl_off_t length = -1;
  curl_easy_getinfo(t->x->easy, CURLINFO_RESPONSE_CODE, &status);
#if CURL_AT_LEAST_VERSION(7, 55, 0)
  curl_easy_getinfo(t->x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &length);
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
  StreamError e = t->x->stream->error;
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

/* Closes the files and frees the form (the easy handle that used it was
** reset before: see stream_restore). */
static void stream_free(Transfer *t) {
  Stream *s = t->x->stream;
  t->x->stream = NULL;
  if (s->out) fclose(s->out);
  if (s->temp_path && !s->committed) unlink(s->temp_path); /* ours: made with O_EXCL */
  if (s->in) fclose(s->in);
  curl_mime_free(s->form);
  free(s->form_fields);
  free(s->temp_path);
  free(s->dest_path);
  free(s);
}
