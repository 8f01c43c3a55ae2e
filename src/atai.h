/*
** atai.h: the types every room of atai.core shares (client, transfer) and
** the few limits that more than one room needs.
**
** atai.core is a unity build: src/core.c includes the other .c files, so
** everything here and there stays static; only luaopen_atai_core is
** exported. The rooms, in reading order:
**   core.c      module: metatables, module functions, luaopen
**   args.c      argument checks and URL/header building, before any I/O
**   client.c    one client: configuration, easy-handle pool, close
**   transfer.c  one request in flight: libcurl callbacks, retries, results
**   engine.c    the client's engine: sockets, due times, poll, wait
**   requests.c  the entry points that start a request
**   crc32c.c    CRC-32C (slicing-by-8, SSE4.2) and its combine, for uploads
**   base64.c    base64, encoded while an upload is sent
**   files.c     streaming transfers: bodies to files, uploads from files,
**               presigned URLs, progress counters
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
#define POOL_MAX 128             /* idle easy handles kept per client */
#define SHRINK_ABOVE (1024 * 1024) /* a buffer bigger than this is freed after use */
#define WAIT_SLICE 0.1           /* seconds: a blocking wait returns to Lua this often */
#define HEADERS_MAX (256 * 1024) /* bytes of response headers kept */
#define HOST_HOLDS 8             /* storage hosts whose 429 is remembered at once */
#define REDACTED_QUERY "?REDACTED" /* shown instead of a presigned URL's query */

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

/* Where a transfer is in its life. */
typedef enum {
  T_QUEUED,   /* waiting for a free slot (max_concurrency) or a rate limit */
  T_RUNNING,  /* its easy handle is on the multi handle */
  T_BACKOFF,  /* waiting out a retry's due time */
  T_TIMER,    /* a sleep: waiting for its due time */
  T_FINISHED, /* outcome known in C; results not yet made into Lua values */
  T_DONE      /* results made (or dropped): off every list of the client */
} TState;

struct Client;
struct Stream; /* files.c */

/* One request (or sleep) and everything it owns. The userdata is the
** handle users hold; while in flight it is anchored in the registry, and
** its user value holds the client (which it keeps alive), its callbacks
** and, once done, its results. */
typedef struct Transfer {
  struct Client *client; /* NULL once detached from a released client */
  struct Transfer *prev, *next; /* in the client's list of live transfers */
  TState state;
  Mode mode;
  CURL *easy; /* from the client's pool, only while an attempt runs */
  struct curl_slist *headers; /* the request's own, or NULL for the client's */
  Buffer url, payload;        /* request */
  Buffer body, resp_headers;  /* response of the current attempt */
  const char *method;         /* one of request_methods (static) */
  RetryPolicy policy;
  int max_retries;
  long timeout_ms;
  int attempts;
  double due;        /* T_BACKOFF / T_TIMER: when to go on (monotonic s) */
  double started;    /* first attempt */
  double attempt_started;
  double elapsed;    /* whole transfer, set when finished */
  CURLcode result;
  long status;
  long os_errno;
  int socket_errno;  /* errno of a socket() that failed in this attempt, or 0 */
  int retryable;     /* another attempt would have been allowed */
  int too_large, out_of_memory;
  int anchor;        /* registry ref while in flight, else LUA_NOREF */
  int internal;      /* started by atai itself: not counted by pending() */
  int blocking;      /* its callbacks run on the caller's stack, unguarded */
  int cancelled;
  int unusable;      /* the client has a config error: fails at once */
  int notify_retry;  /* an on_retry call is owed (delay in retry_delay) */
  int notify_exchange; /* an on_exchange call is owed */
  int presigned;     /* its URL is not under the endpoint: a storage URL (query hidden) */
  unsigned int host_key; /* of a presigned URL: hash of its scheme://host:port */
  double retry_delay;
  double exchange_seconds;
  int exchange_attempt;
  long exchange_status;
  CURLcode exchange_result;
  struct Stream *stream; /* files.c: a streaming transfer's files, or NULL */
  char errbuf[CURL_ERROR_SIZE];
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
  CURL *pool[POOL_MAX];
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
  Transfer *head, *tail;       /* live transfers, oldest first */
  int running;                 /* transfers on the multi handle */
  int pending;                 /* user handles started and not completed */
  int finished;                /* transfers in T_FINISHED */
  double curl_due;             /* libcurl's timer, or -1 */
  double paused_until;         /* an API 429's Retry-After holds new attempts */
  HostHold holds[HOST_HOLDS];  /* a storage host's 429 holds its transfers only */
  Watch *watches;
  struct pollfd *pollfds;      /* poll(2)'s array, as long as watches */
  int nwatches, watches_cap;
  int in_callback;             /* a guarded callback is running */
  int in_free_callback;        /* a blocking call's own callback is running */
  unsigned long callbacks_run; /* callbacks run so far (client:_step) */
  int close_requested;         /* close() called from a callback: apply after it */
  int closing;
  int released;                /* curl handles gone (closed) */
  int on_retry_ref, on_exchange_ref; /* registry refs, or LUA_NOREF */
  int queue_ref;               /* registry ref of the callback queue table */
  int q_head, q_tail;          /* queue[q_head .. q_tail - 1] */
  unsigned int rng;            /* xorshift state for backoff jitter */
  Buffer spare_body[POOL_MAX], spare_headers[POOL_MAX]; /* reused by the next transfers */
  int spares;                  /* spare_*[0 .. spares - 1] hold memory */
  double trimmed;              /* when freed memory was last given back */
  double time_scale;           /* factor on every wait (tests: _time_scale) */
} Client;

/* Used before their room defines them. */
static int in_run(lua_State *L); /* engine.c */
/* files.c: the hooks a streaming transfer (t->stream) adds to the engine */
static void stream_prepare(Transfer *t, CURL *e);        /* each attempt */
static void stream_restore(Client *c, CURL *e);          /* easy back to the pool */
static CURLcode stream_end(Transfer *t, CURLcode result); /* attempt over */
static int stream_fatal(const Transfer *t);              /* no retry */
static int stream_push_results(lua_State *L, const Transfer *t);
static void stream_free(Transfer *t);

#endif /* ATAI_H */
