/*
** attempt.c: layer 1, one attempt of a transfer, and the whole retry
** policy: the request's libcurl options set before each attempt (with the
** stream hooks of stream.c), whether a failed attempt may be repeated, and
** after how long (backoff with jitter, Retry-After). engine.c asks; the
** answers are all here.
*/


/* Frees what the transfer holds; the response buffers go back to the
** client (shrunk when one large response grew them) when it is alive. */
static void transfer_free_buffers(Transfer *t) {
  Client *c = t->client;
  if (t->x == NULL) return; /* a sleep holds none */
  curl_slist_free_all(t->x->headers);
  t->x->headers = NULL;
  free(t->x->errbuf);
  t->x->errbuf = NULL;
  buffer_free(&t->x->url);
  buffer_free(&t->x->payload);
  if (c && c->life != LIFE_CLOSED && c->spares < c->max_concurrency) {
    buffer_reset(&t->x->body, SHRINK_ABOVE);
    buffer_reset(&t->x->resp_headers, SHRINK_ABOVE);
    buffer_move(&c->spare_body[c->spares], &t->x->body);
    buffer_move(&c->spare_headers[c->spares], &t->x->resp_headers);
    c->spares++;
  }
  buffer_free(&t->x->body);
  buffer_free(&t->x->resp_headers);
  if (t->x->stream) stream_free(t);
}

/* Readies t's buffers for an attempt: the response buffers (a finished
** transfer's spares when it has none: no malloc churn) emptied, and the
** error buffer. Allocated here, not when the transfer is made, so a
** transfer waiting in the queue holds none. Returns 0 when memory runs
** out. */
static int attempt_buffers(Client *c, Transfer *t) {
  if (t->x->body.data == NULL && t->x->resp_headers.data == NULL && c->spares > 0) {
    c->spares--;
    buffer_move(&t->x->body, &c->spare_body[c->spares]);
    buffer_move(&t->x->resp_headers, &c->spare_headers[c->spares]);
  }
  buffer_clear(&t->x->body);
  buffer_clear(&t->x->resp_headers);
  if (t->x->errbuf == NULL && (t->x->errbuf = (char *)malloc(CURL_ERROR_SIZE)) == NULL) return 0;
  t->x->errbuf[0] = '\0';
  return 1;
}

/* How the attempt that just ended went, from what libcurl, the data
** callbacks and the stream recorded: the one place this is worked out. */
static Outcome attempt_outcome(const Transfer *t) {
  if (t->x->stream && t->x->stream->error != SE_NONE) return OUTCOME_STREAM;
  if (t->result == CURLE_OK)
    return (t->status >= 200 && t->status < 300) || t->status == 304 ? OUTCOME_OK : OUTCOME_STATUS;
  if (t->cut == CUT_NO_MEMORY) return OUTCOME_NO_MEMORY;
  if (t->cut == CUT_TOO_LARGE) return OUTCOME_TOO_LARGE;
  return OUTCOME_TRANSPORT;
}

/* Whether an attempt that ended with `o` may be repeated under the
** transfer's policy. */
static int attempt_retryable(const Transfer *t, Outcome o) {
  const struct CurlKind *k;
  if (o == OUTCOME_STATUS) return t->policy == RETRY_TRANSIENT && status_is_transient(t->status);
  if (o != OUTCOME_TRANSPORT && o != OUTCOME_STREAM) return 0;
  if ((o == OUTCOME_STREAM && stream_fatal(t)) || t->result == CURLE_OK) return 0;
  k = curl_kind(t->result);
  return t->policy == RETRY_TRANSIENT ? k->transient : (k->unsent && k->transient);
}

/* Seconds to wait before attempt `t->attempts + 1`: Retry-After when the
** server gave one, else exponential backoff with equal jitter. */
static double retry_delay(Client *c, const Transfer *t) {
  double ra = retry_after_seconds(&t->x->resp_headers), d = c->backoff;
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
  int is_post = strcmp(m, "POST") == 0, has_body = t->x->payload.data != NULL;
  curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)t);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->x->errbuf);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, (void *)t);
  curl_easy_setopt(e, CURLOPT_URL, t->x->url.data);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->x->headers ? t->x->headers : c->base_headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, t->timeout_ms >= 0 ? t->timeout_ms : c->timeout_ms);
  /* libcurl resends a request by itself when a reused HTTP/1.1 connection
  ** turns out dead before any reply; a write must never be sent twice, so
  ** there it gets a connection of its own. HTTP/2 multiplexes instead. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                   (t->policy == RETRY_UNSENT && !(c->multiplex && c->h2_seen)) ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_NOBODY, 0L);
  if (has_body || is_post) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, has_body ? t->x->payload.data : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(has_body ? t->x->payload.len : 0));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  if (is_head) curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (is_get || is_head || is_post) ? NULL : m);
  if (t->x->stream) stream_prepare(t, e);
}
