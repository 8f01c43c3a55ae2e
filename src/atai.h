/*
** atai.h: the private header of atai.core (in the manner of luv's
** private.h): the types every layer shares (client, transfer), the few
** limits more than one file needs, and what each file offers the others.
**
** atai.core is a unity build: src/core.c includes the other .c files, so
** everything stays static; only luaopen_atai_core is exported. The include
** order is the layer order, and calls only go down it: a file uses only
** functions of the files included before it, never one after it; nothing
** declares a function of a file above. A callback that must go up (libcurl
** calling into a transfer, the engine reporting a finished attempt) is a
** function pointer handed down at run time. scripts/callgraph.lua (make
** callgraph, in make test) draws the calls between files, static functions
** included, and fails on an upward call, a cycle, a function over 60
** lines, or a list below that is not exactly what is used.
**
** Layers, bottom first:
**   0  plain C and small Lua helpers, no engine:
**      util.c      monotonic clock, ASCII case
**      buffer.c    growable byte buffers (Buffer)
**      json.c      JSON <-> Lua values (a fast path of ours decodes, lua-cjson
**                  what it leaves; we encode)
**      error.c     the error table (atai.Error), kinds of statuses and codes
**      headers.c   response header blocks: a header, Retry-After, as a table
**      crc32c.c    CRC-32C and its combine, for uploads
**      base64.c    base64, encoded while an upload is sent
**      args.c      argument checks, URL and header building (before any I/O)
**   1  one transfer, no Lua calls:
**      transfer.c  its state, the client's libcurl options, libcurl's data
**                  callbacks, presigned URLs
**      stream.c    a streaming transfer's files and form (t->stream)
**      attempt.c   one attempt's options, and the whole retry policy
**   2  the engine, no Lua: engine.c (multi handle, easy-handle pool,
**      sockets, due times, the timers that sleeps are, finished attempts)
**   3  delivery.c: results into Lua values, the callback queue, the
**      step/poll/wait loops, closing a client
**   4  Lua bindings, each file registering its own methods:
**      handle.c    atai.Handle
**      client.c    atai.Client and its async view
**      files.c     streams, progress, mkdir, stat
**      core.c      the module: its functions and luaopen_atai_core
**
** What each file offers the files above it (scripts/callgraph.lua checks
** that these lists are exactly the functions used across files):
**
** From util.c: ascii_lower equals_ci monotonic_seconds same_ci
**
** From buffer.c: buffer_add buffer_clear buffer_fit buffer_free buffer_move
**   buffer_reserve_exact buffer_reset
**
** From json.c: format_number json_decode json_encode json_encode_sorted
**
** From error.c: curl_kind error_new error_open error_read_envelope
**   l_new_error status_is_transient status_kind
**
** From headers.c: push_response_headers retry_after_seconds
**
** From crc32c.c: crc32c_update l_crc32c l_crc32c_combine l_crc32c_file
**
** From base64.c: b64_fill b64_size l_base64
**
** From args.c: arg_error build_headers build_url check_id check_method
**   check_opts check_path header_ok headers_append id_problem new_type
**   opt_table push_user_where raise_at_user
**
** From transfer.c: client_random easy_configure on_body on_header
**   on_open_socket transfer_classify url_origin_len
**
** From stream.c: stream_end stream_fatal stream_free stream_io_error
**   stream_prepare stream_restore
**
** From attempt.c: attempt_buffers attempt_outcome attempt_prepare
**   attempt_retryable retry_delay transfer_free_buffers
**
** From engine.c: attempt_detach engine_init has_news list_append
**   list_unlink next_due start_queued step_io timer_set timer_take_due
**   transfer_cancel transfer_detach transfer_finish trim_when_idle
**
** From delivery.c: client_release client_unusable deliver_one drain
**   engine_close engine_enqueue_results engine_wait enqueue_call in_run
**   poll_loop push_pending push_shown_url push_stored_results push_uv
**   queue_waiting to_transfer transfer_submit
**
** From handle.c: handle_open transfer_new
**
** From client.c: check_client client_open l_client_defer l_new_client
**   read_call_opts
**
** From files.c: files_open
**
*/
#ifndef ATAI_H
#define ATAI_H

/* Needs <curl/curl.h> and buffer.c (Buffer) before it. */

#define ATAI_VERSION "0.3.0"
#define CLIENT_MT "atai.Client"
#define HANDLE_MT "atai.Handle"
#define ID_MAX_LEN 128
#define RETRY_AFTER_MAX 60.0     /* seconds: a longer Retry-After is capped */
#define CALL_TIMEOUT_MAX 86400.0 /* seconds: longest attempt timeout */
#define MAX_RETRIES_MAX 10       /* one bound for atai.new and per call */
#define SHRINK_ABOVE (1024 * 1024) /* a buffer bigger than this is freed after use */
#define WAIT_SLICE 0.1           /* seconds: a blocking wait returns to Lua this often */
#define HEADERS_MAX (256 * 1024) /* bytes of response headers kept */
#define HOST_HOLDS 8             /* storage hosts whose 429 is remembered at once */
#define REDACTED_QUERY "?REDACTED" /* shown instead of a presigned URL's query */

/* A value atai.config has already checked (lua/atai/config.lua is the one
** rule set for options): C only asserts it, and a failure is a bug in atai,
** not a user's mistake, so the message names no rule. */
#define ATAI_CHECKED(L, cond, what) \
  ((cond) ? (void)0 : (void)luaL_error((L), "atai.core: %s was not checked by atai.config", (what)))
#define CALL_CHECK_KEY "atai.call_options" /* registry: config.call_options */

/* Shared upvalues of every function of the module (UV_DECODE is in json.c). */
#define MODULE_UPVALUES 1

/* How a request may be repeated after a failure. */
typedef enum {
  RETRY_TRANSIENT, /* safe to repeat: network, timeout, 408/429/5xx */
  RETRY_UNSENT     /* only when it cannot have reached the server */
} RetryPolicy;

/* What a successful body must be, and what the handle's result is. */
typedef enum {
  MODE_OBJECT, /* get_job: a JSON object, returned alone */
  MODE_BODY,   /* an endpoint: the decoded body alone */
  MODE_META,   /* request(): body, meta {status, headers, attempts} */
  MODE_TIMER,  /* sleep(): no transfer, completes with true at its due time */
  MODE_STREAM  /* files.c: {status, bytes, headers} (the body is in a file) */
} Mode;

/* How a transfer ended: set once, by transfer_finish (engine.c), where its
** last attempt ends, it is cancelled, or it cannot start; delivery.c makes
** its results from this alone. */
typedef enum {
  OUTCOME_PENDING,   /* not ended yet */
  OUTCOME_OK,        /* a 2xx or 304 response (a sleep: its time came) */
  OUTCOME_STATUS,    /* any other HTTP status */
  OUTCOME_TRANSPORT, /* libcurl failed: t->result */
  OUTCOME_TOO_LARGE, /* the body grew past max_response_bytes */
  OUTCOME_NO_MEMORY, /* no memory for the response, or for an easy handle */
  OUTCOME_STREAM,    /* stream.c's own failure: t->stream->error */
  OUTCOME_CONFIG,    /* the client (or the stream spec) cannot send */
  OUTCOME_CANCELLED  /* cancel(), a closed client, a dropped handle */
} Outcome;

/* Why libcurl's data callbacks cut the current attempt short, if they did. */
typedef enum { CUT_NONE, CUT_TOO_LARGE, CUT_NO_MEMORY } Cut;

/* A client's life, one field (as liolib's closef): born closed, open once
** built, and closed for good by close() or __gc. A close asked for from
** inside a callback waits for the callback to return (CLOSE_ASKED); while
** the close cancels and delivers what is in flight, it is CLOSING. */
typedef enum {
  LIFE_OPEN,        /* usable */
  LIFE_CLOSE_ASKED, /* usable until the running callback returns */
  LIFE_CLOSING,     /* engine_close is cancelling and delivering */
  LIFE_CLOSED       /* libcurl's side freed (also while being built) */
} Life;

/* Where a transfer is in its life. */
typedef enum {
  T_QUEUED,   /* waiting for a free slot (max_concurrency) or a rate limit */
  T_RUNNING,  /* its easy handle is on the multi handle (a sleep: its
              ** timer is set) */
  T_BACKOFF,  /* waiting out a retry's due time */
  T_FINISHED, /* outcome known in C; results not yet made into Lua values */
  T_DONE      /* results made (or dropped): off every list of the client */
} TState;

struct Client;
struct Stream; /* files.c */
struct Transfer;

/* A sleep is a timer of the engine, never a transfer: its due time, which
** the engine keeps on its client's timer list (soonest first, engine.c)
** until the time comes or the sleep is cancelled. It lives in the sleep's
** handle, right after its Transfer (in place of a request's Exchange). */
typedef struct Timer {
  double due;                /* monotonic s */
  struct Timer *prev, *next; /* on c->timers_head .. c->timers_tail */
  struct Transfer *handle;   /* the sleep's handle, which it completes */
  int set;                   /* on the client's timer list */
} Timer;

/* What only a request has: the buffers and the easy handle a sleep never
** needs. It lives in the same userdata, right after its Transfer. */
typedef struct Exchange {
  CURL *easy; /* from the client's pool, only while an attempt runs */
  struct curl_slist *headers; /* the request's own, or NULL for the client's */
  Buffer url, payload;        /* request */
  Buffer body, resp_headers;  /* response of the current attempt */
  struct Stream *stream; /* stream.c: a streaming transfer's files, or NULL */
  char *errbuf; /* CURL_ERROR_SIZE bytes, allocated when an attempt starts */
} Exchange;

/* One request (or sleep) and everything it owns. The userdata is the
** handle users hold; while in flight it is anchored in the registry, and
** its user value holds the client (which it keeps alive), its callbacks
** and, once done, its results. A sleep uses only the fields of the
** handle's life (client, state, anchor, outcome, ...) and its Timer. */
typedef struct Transfer {
  struct Client *client; /* NULL once detached from a released client */
  struct Transfer *prev, *next; /* in the client's list of live transfers */
  TState state;
  Mode mode;
  Exchange *x; /* a request's buffers and easy handle; NULL for a sleep */
  Timer *timer; /* a sleep's due time; NULL for a request */
  const char *method;         /* one of request_methods (static) */
  RetryPolicy policy;
  int max_retries;
  long timeout_ms;   /* per attempt: the call's, 0 none, -1 the client's */
  int attempts;
  double due;        /* T_BACKOFF: when to go on (monotonic s) */
  double started;    /* first attempt */
  double attempt_started;
  double elapsed;    /* whole transfer, set when finished */
  Outcome outcome;   /* set once, when the transfer finishes */
  Cut cut;           /* of the current attempt */
  CURLcode result;
  long status;
  long os_errno;
  int socket_errno;  /* errno of a socket() that failed in this attempt, or 0 */
  int retryable;     /* another attempt would have been allowed (err.retryable) */
  int anchor;        /* registry ref while in flight, else LUA_NOREF */
  int internal;      /* started by atai itself: not counted by pending() */
  int blocking;      /* its callbacks run on the caller's stack, unguarded */
  int notify_retry;  /* an on_retry call is owed (delay in retry_delay) */
  int notify_exchange; /* an on_exchange call is owed */
  int presigned;     /* its URL is not under the endpoint: a storage URL (query hidden) */
  unsigned int host_key; /* of a presigned URL: hash of its scheme://host:port */
  double retry_delay;
  double exchange_seconds;
  int exchange_attempt;
  long exchange_status;
  CURLcode exchange_result;
} Transfer;

/* A storage host that answered 429 with Retry-After: its transfers wait. */
typedef struct HostHold {
  unsigned int host_key;
  double until; /* monotonic s; 0 = a free slot */
} HostHold;

/* A socket libcurl wants watched, and for what (CURL_POLL_*). */
typedef struct Watch {
  curl_socket_t fd;
  int what;
} Watch;

typedef struct Client {
  CURLM *multi;
  CURL **pool;                     /* idle easy handles, max_concurrency of them at most */
  int pool_len;
  struct curl_slist *base_headers; /* Authorization, Accept: client's life */
  char *base_url;                  /* endpoint, no trailing slash; freed by __gc only */
  size_t base_url_len;
  char *config_error;              /* why this client cannot send, or NULL */
  char *user_agent, *ca_file, *ca_path, *proxy; /* for new easy handles */
  long connect_timeout_ms;
  curl_off_t max_response_bytes;
  long timeout_ms; /* per attempt, unless a call sets its own */
  int max_retries;
  double backoff, backoff_max; /* seconds */
  int max_concurrency;
  int secure;                  /* https endpoint */
  int multiplex;               /* HTTP/2 multiplexing allowed */
  int h2_seen;                 /* a response came over HTTP/2 */
  Transfer *head, *tail;       /* live transfers, oldest first (no sleep) */
  Timer *timers_head, *timers_tail; /* set sleeps, soonest first */
  Transfer *scan_from;         /* no T_QUEUED transfer before it (NULL: from head) */
  int running;                 /* transfers on the multi handle */
  int pending;                 /* user handles started and not completed */
  int finished;                /* transfers in T_FINISHED */
  double curl_due;             /* libcurl's timer, or -1 */
  double paused_until;         /* an API 429's Retry-After holds new attempts */
  HostHold holds[HOST_HOLDS];  /* a storage host's 429 holds its transfers only */
  Watch *watches;
  struct pollfd *pollfds;      /* poll(2)'s array, as long as watches */
  int nwatches, watches_cap;
  int *watch_of;               /* fd -> its index in watches + 1, 0 for none */
  int watch_of_len;            /* fds 0 .. watch_of_len - 1 have a slot */
  int in_callback;             /* a guarded callback is running */
  int in_free_callback;        /* a blocking call's own callback is running */
  unsigned long callbacks_run; /* callbacks run so far (client:_step) */
  Life life;                   /* open, close asked, closing, closed */
  int on_retry_ref, on_exchange_ref; /* registry refs, or LUA_NOREF */
  int queue_ref;               /* registry ref of the callback queue table */
  int q_head, q_tail;          /* queue[q_head .. q_tail - 1] */
  unsigned int rng;            /* xorshift state for backoff jitter */
  Buffer *spare_body, *spare_headers; /* reused by the next attempts: max_concurrency each */
  int spares;                  /* spare_*[0 .. spares - 1] hold memory */
  double trimmed;              /* when freed memory was last given back */
  double time_scale;           /* factor on every wait (tests: _time_scale) */
} Client;

/* User-value slots of a transfer (a table, made on first need). */
#define UV_CLIENT 1    /* the client: a transfer in flight keeps it alive */
#define UV_CALLBACKS 2 /* on_done functions, in order */
#define UV_RESULTS 3   /* {n = count, ...} once done */
#define UV_DATA 4      /* the Lua string an upload reads */

#endif /* ATAI_H */
