/*
** transfer.c: layer 1, one request in flight: its state, its libcurl
** options (the client's, set once per easy handle, and the request's, set
** per attempt: attempt.c), libcurl's data callbacks, which URLs are
** presigned.
**
** A transfer owns everything one request needs: its URL, headers and body,
** the buffers libcurl writes the response into, its retry state and its
** outcome. It borrows an easy handle from the client's pool only while an
** attempt runs, and finds itself again through CURLOPT_PRIVATE. libcurl's
** callbacks here only copy bytes; Lua values are made later, by
** delivery.c, outside any libcurl call. The buffers are never freed by
** anyone but the transfer, so a finalizer that closes the client while a
** response is being made into Lua values cannot pull them away.
*/

#include <sys/socket.h>

/* A float in [0, 1) from the client's xorshift32 state. */
static double client_random(Client *c) {
  unsigned int x = c->rng;
  x ^= x << 13;
  x ^= x >> 17;
  x ^= x << 5;
  c->rng = x ? x : 0x9e3779b9u;
  return (double)(x >> 8) / 16777216.0;
}

/* Sets the options every request of the client shares on a new easy handle. */
static void easy_configure(Client *c, CURL *e) {
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); /* all that libcurl decodes */
  curl_easy_setopt(e, CURLOPT_USERAGENT, c->user_agent);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_timeout_ms);
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
  if (c->secure) {
    /* Wait for a connection that may multiplex rather than open another. */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, c->multiplex ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                     c->multiplex ? (long)CURL_HTTP_VERSION_2TLS : (long)CURL_HTTP_VERSION_1_1);
  }
  if (c->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
  if (c->ca_path) curl_easy_setopt(e, CURLOPT_CAPATH, c->ca_path);
  /* "" turns proxies off, the environment's too: the Lua layer passes it
  ** for http:// endpoints, whose key must not cross a proxy in clear. */
  if (c->proxy) curl_easy_setopt(e, CURLOPT_PROXY, c->proxy);
}



/* ======================================================================
** libcurl callbacks: no Lua calls in here, ever
** ====================================================================== */

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t len = size * count;
  if ((curl_off_t)(t->x->body.len + len) > t->client->max_response_bytes) {
    t->cut = CUT_TOO_LARGE;
    return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
  }
  if (!buffer_add(&t->x->body, data, len)) {
    t->cut = CUT_NO_MEMORY;
    return 0;
  }
  return len;
}

static size_t on_header(char *data, size_t size, size_t count, void *ud) {
  Transfer *t = (Transfer *)ud;
  size_t len = size * count;
  /* A new status line (after 100 Continue or a proxy's CONNECT reply)
  ** starts a new header block: keep only the final response's. */
  if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) buffer_clear(&t->x->resp_headers);
  if (t->x->resp_headers.len + len > HEADERS_MAX) return len; /* ignore absurd headers */
  if (!buffer_add(&t->x->resp_headers, data, len)) {
    t->cut = CUT_NO_MEMORY;
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
  if (t->x->url.data == NULL || url_under_endpoint(c, t->x->url.data, t->x->url.len)) return;
  t->presigned = 1;
  t->host_key = url_host_key(t->x->url.data, t->x->url.len);
}
