/*
** static_server.c: a tiny HTTP/1.1 keep-alive server for the atai benchmark.
**
**   static_server BODY_FILE [DELAY_MS]
**
** Binds port 0 on 127.0.0.1, prints "PORT n" on stdout, then answers every
** request (any method, any path) with 200 and the file read at start, as
** application/json with a Content-Length (HEAD gets the headers only). One
** thread, one poll() loop, non-blocking sockets, pipelining allowed; the
** response is built once, so each request costs a recv and a send.
**
** A request whose body does not fit in IN_CAP (a PUT of a file part) is
** read and thrown away as it arrives, after a "100 Continue" when it asks
** for one, and answered once it is all in. A PUT is answered with an empty
** 200 carrying an ETag (the storage of a multipart upload; nginx's DAV
** module sends no ETag), whatever its size.
**
** With DELAY_MS, each response is held back until DELAY_MS milliseconds
** after its request arrived: every owed response has its own due time and
** the poll() timeout runs to the earliest one, so up to MAX_CONN keep-alive
** connections wait out their delays side by side, never one after another.
**
** Exits on SIGTERM, SIGINT, or after 300 s (SIGALRM), and then prints to
** stderr how many requests it served and its own CPU time, so the bench can
** show that the server is not what it measures.
*/

#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONN 1024
#define MAX_OWED 32  /* responses owed per connection (pipelining depth) */
#define IN_CAP 16384 /* a request's headers (plus any body) must fit */
#define LIFETIME 300 /* seconds */
#define DROP_CAP (256 * 1024) /* bytes read at once of a body thrown away */

typedef struct Conn {
  int fd;
  size_t in_len;
  char in[IN_CAP];
  unsigned queued;      /* responses owed, the first one partly sent */
  unsigned queued_head; /* bit k: the k-th owed response is a HEAD reply */
  unsigned queued_put;  /* bit k: the k-th owed response is a PUT's (ETag) */
  long long drop;       /* bytes still to come of a big body thrown away */
  int drop_put;         /* that body's request is a PUT */
  unsigned first;       /* ring index in due[] of the first owed response */
  double due[MAX_OWED]; /* when each owed response may go, in ms (monotonic) */
  size_t off;      /* bytes of the first queued response already sent */
  int close_after; /* "Connection: close" seen: close when all is sent */
} Conn;

static volatile sig_atomic_t stop_signal = 0;
static char *response;        /* headers + body */
static size_t response_len;   /* headers + body */
static size_t head_len;       /* headers only */
static const char put_response[] = "HTTP/1.1 200 OK\r\n"
                                   "ETag: \"0123456789abcdef0123456789abcdef\"\r\n"
                                   "Content-Length: 0\r\n"
                                   "\r\n";
static const char continue_response[] = "HTTP/1.1 100 Continue\r\n\r\n";
static double delay_ms;       /* how long each response is held back */
static Conn conns[MAX_CONN];
static int conn_end;          /* conns[conn_end..] are all unused */
static unsigned long requests_served, connections_accepted;

static void on_signal(int sig) { stop_signal = sig; }

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static void load_response(const char *path) {
  FILE *f = fopen(path, "rb");
  char *body = NULL;
  long size;
  int n;
  if (!f) die(path);
  if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
    die(path);
  body = (char *)malloc((size_t)size + 1);
  if (!body || fread(body, 1, (size_t)size, f) != (size_t)size) die(path);
  fclose(f);
  response = (char *)malloc((size_t)size + 256);
  if (!response) die("malloc");
  n = snprintf(response, 256,
               "HTTP/1.1 200 OK\r\n"
               "Content-Type: application/json\r\n"
               "Content-Length: %ld\r\n"
               "\r\n",
               size);
  head_len = (size_t)n;
  memcpy(response + head_len, body, (size_t)size);
  response_len = head_len + (size_t)size;
  free(body);
}

/* Whether header line [p, end) is `name` (lowercase, with the colon); sets
** *value to the text after the colon. */
static int header_is(const char *p, const char *end, const char *name, const char **value) {
  size_t n = strlen(name), i;
  if ((size_t)(end - p) < n) return 0;
  for (i = 0; i < n; i++) {
    char ch = p[i];
    if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
    if (ch != name[i]) return 0;
  }
  *value = p + n;
  while (*value < end && (**value == ' ' || **value == '\t')) (*value)++;
  return 1;
}

static int contains_ci(const char *p, const char *end, const char *word) {
  size_t n = strlen(word);
  for (; p + n <= end; p++) {
    size_t i;
    for (i = 0; i < n; i++) {
      char ch = p[i];
      if (ch >= 'A' && ch <= 'Z') ch = (char)(ch + 32);
      if (ch != word[i]) break;
    }
    if (i == n) return 1;
  }
  return 0;
}

/* Owes c the response to a request (a HEAD's, a PUT's or the file), due
** DELAY_MS from `now`. */
static void queue_response(Conn *c, int is_head, int is_put, double now) {
  c->queued_head |= (unsigned)is_head << c->queued;
  c->queued_put |= (unsigned)is_put << c->queued;
  c->due[(c->first + c->queued) % MAX_OWED] = now + delay_ms;
  c->queued++;
  requests_served++;
}

/* Queues a response, due DELAY_MS from `now`, for every complete request in
** c->in while fewer than MAX_OWED are owed. Returns -1 when the input cannot
** be a request we can handle. */
static int parse_requests(Conn *c, double now) {
  for (;;) {
    const char *start = c->in, *end, *line, *v;
    size_t total;
    long long body = 0;
    int is_head, is_put, expect_continue = 0;
    if (c->in_len < 4 || c->queued == MAX_OWED) return 0;
    end = NULL;
    {
      size_t i;
      for (i = 0; i + 3 < c->in_len; i++)
        if (start[i] == '\r' && start[i + 1] == '\n' && start[i + 2] == '\r' &&
            start[i + 3] == '\n') {
          end = start + i;
          break;
        }
    }
    if (!end) return c->in_len >= IN_CAP ? -1 : 0;
    is_head = c->in_len >= 5 && memcmp(start, "HEAD ", 5) == 0;
    is_put = c->in_len >= 4 && memcmp(start, "PUT ", 4) == 0;
    line = memchr(start, '\n', (size_t)(end - start));
    while (line && line < end) {
      const char *eol;
      line++;
      eol = memchr(line, '\r', (size_t)(end + 2 - line));
      if (!eol) eol = end;
      if (header_is(line, eol, "content-length:", &v)) body = strtoll(v, NULL, 10);
      else if (header_is(line, eol, "expect:", &v) && contains_ci(v, eol, "100-continue"))
        expect_continue = 1;
      else if (header_is(line, eol, "connection:", &v) && contains_ci(v, eol, "close"))
        c->close_after = 1;
      line = memchr(line, '\n', (size_t)(end + 2 - line));
    }
    if (body < 0) return -1;
    if (body > IN_CAP - (long long)(end - start) - 4) {
      /* too big to hold: thrown away as it comes (on_readable), answered
      ** once all in; the bytes already here count */
      size_t head = (size_t)(end - start) + 4;
      if (expect_continue && c->in_len == head)
        (void)send(c->fd, continue_response, sizeof continue_response - 1, MSG_NOSIGNAL);
      c->drop = body - (long long)(c->in_len - head);
      c->drop_put = is_put;
      c->in_len = 0;
      return 0;
    }
    total = (size_t)(end - start) + 4 + (size_t)body;
    if (c->in_len < total) return 0;
    queue_response(c, is_head, is_put, now);
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    if (c->close_after) {
      c->in_len = 0;
      return 0;
    }
  }
}

/* Whether the first owed response may be sent at `now`. */
static int first_due(const Conn *c, double now) {
  return c->queued && c->due[c->first] <= now;
}

/* Sends what is owed and due. Returns -1 on a dead connection, or once all
** is sent after a "Connection: close". */
static int flush(Conn *c, double now) {
  while (first_due(c, now)) {
    const char *data = (c->queued_put & 1u) ? put_response : response;
    size_t len = (c->queued_put & 1u) ? sizeof put_response - 1 : (c->queued_head & 1u) ? head_len : response_len;
    ssize_t n = send(c->fd, data + c->off, len - c->off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
    }
    c->off += (size_t)n;
    if (c->off == len) {
      c->off = 0;
      c->queued--;
      c->queued_head >>= 1;
      c->queued_put >>= 1;
      c->first = (c->first + 1) % MAX_OWED;
    }
  }
  return (c->close_after && c->queued == 0) ? -1 : 0;
}

/* Parses and sends until neither makes progress (input beyond MAX_OWED
** pipelined requests waits in c->in). Returns -1 on a connection to close. */
static int serve(Conn *c, double now) {
  for (;;) {
    size_t in_len = c->in_len;
    unsigned queued = c->queued;
    if (parse_requests(c, now) < 0 || flush(c, now) < 0) return -1;
    if (c->in_len == 0 || (c->in_len == in_len && c->queued == queued)) return 0;
  }
}

static void conn_close(Conn *c) {
  close(c->fd);
  c->fd = -1;
}

static void accept_all(int lfd) {
  for (;;) {
    int fd = accept(lfd, NULL, NULL), one = 1, i;
    if (fd < 0) return;
    for (i = 0; i < MAX_CONN && conns[i].fd >= 0; i++) {}
    if (i == MAX_CONN || set_nonblocking(fd) < 0) {
      close(fd);
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (i >= conn_end) conn_end = i + 1;
    conns[i].fd = fd;
    conns[i].in_len = 0;
    conns[i].queued = conns[i].queued_head = conns[i].queued_put = conns[i].first = 0;
    conns[i].drop = 0;
    conns[i].off = 0;
    conns[i].close_after = 0;
    connections_accepted++;
  }
}

/* Reads and throws away what comes of a big body; once it is all in, owes
** its response and keeps the bytes after it. Returns -1 on a closed or
** failed connection, 1 while more of the body is to come, else 0. */
static int drop_body(Conn *c, double now) {
  static char scratch[DROP_CAP];
  while (c->drop > 0) {
    ssize_t n = recv(c->fd, scratch, sizeof scratch, 0);
    if (n == 0) return -1;
    if (n < 0) return errno == EINTR ? 0 : (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
    if ((long long)n > c->drop) { /* the next request begins */
      size_t extra = (size_t)(n - c->drop);
      if (extra > IN_CAP) return -1;
      memcpy(c->in, scratch + (n - (ssize_t)extra), extra);
      c->in_len = extra;
      n = (ssize_t)c->drop;
    }
    c->drop -= n;
  }
  queue_response(c, 0, c->drop_put, now);
  return 0;
}

static void on_readable(Conn *c, double now) {
  if (c->drop > 0) {
    int dropping = drop_body(c, now);
    if (dropping < 0) conn_close(c);
    if (dropping != 0) return;
  }
  while (c->in_len < IN_CAP) { /* a full c->in waits for owed responses */
    ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
    if (n == 0) {
      conn_close(c);
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        conn_close(c);
        return;
      }
      break;
    }
    c->in_len += (size_t)n;
    if (c->in_len < IN_CAP) break; /* short read: the socket is drained */
    if (parse_requests(c, now) < 0) {
      conn_close(c);
      return;
    }
    if (c->drop > 0) break; /* the rest of that body: at the next POLLIN */
  }
  if (serve(c, now) < 0) conn_close(c);
}

/* The poll() timeout in ms: until the earliest owed response not yet due
** (rounded up), at most 1000. */
static int poll_timeout(double now) {
  double wait = 1000;
  int i;
  for (i = 0; i < conn_end; i++) {
    const Conn *c = &conns[i];
    if (c->fd >= 0 && c->queued && c->due[c->first] - now < wait) wait = c->due[c->first] - now;
  }
  return wait <= 0 ? 0 : (int)wait + 1;
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  socklen_t addr_len = sizeof addr;
  struct sigaction sa;
  static struct pollfd pfd[MAX_CONN + 1];
  static int slot[MAX_CONN + 1];
  struct rusage ru;
  int lfd, one = 1, i;

  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s BODY_FILE [DELAY_MS]\n", argv[0]);
    return 2;
  }
  if (argc == 3) {
    char *end;
    delay_ms = strtod(argv[2], &end);
    if (end == argv[2] || *end != '\0' || !(delay_ms >= 0 && delay_ms <= 60000)) {
      fprintf(stderr, "static_server: DELAY_MS must be a number of ms in 0..60000, got '%s'\n", argv[2]);
      return 2;
    }
  }
  load_response(argv[1]);
  for (i = 0; i < MAX_CONN; i++) conns[i].fd = -1;

  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns EINTR */
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGALRM, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);
  alarm(LIFETIME);

  lfd = socket(AF_INET, SOCK_STREAM, 0);
  if (lfd < 0) die("socket");
  setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
  if (listen(lfd, MAX_CONN) < 0) die("listen");
  if (set_nonblocking(lfd) < 0) die("fcntl");
  if (getsockname(lfd, (struct sockaddr *)&addr, &addr_len) < 0) die("getsockname");
  printf("PORT %d\n", ntohs(addr.sin_port));
  fflush(stdout);

  while (!stop_signal) {
    int nfds = 1, ready;
    double now = now_ms();
    pfd[0].fd = lfd;
    pfd[0].events = POLLIN;
    for (i = 0; i < conn_end; i++) {
      const Conn *c = &conns[i];
      if (c->fd < 0) continue;
      pfd[nfds].fd = c->fd;
      pfd[nfds].events = (short)((c->in_len < IN_CAP ? POLLIN : 0) | (first_due(c, now) ? POLLOUT : 0));
      slot[nfds++] = i;
    }
    ready = poll(pfd, (nfds_t)nfds, poll_timeout(now));
    if (ready < 0) {
      if (errno == EINTR) continue;
      die("poll");
    }
    now = now_ms();
    for (i = 1; i < nfds; i++) {
      Conn *c = &conns[slot[i]];
      if (pfd[i].revents & POLLIN) on_readable(c, now);
      else if (pfd[i].revents & (POLLERR | POLLHUP | POLLNVAL)) conn_close(c);
      else if (serve(c, now) < 0) conn_close(c); /* writable, or a delay ran out */
    }
    if (pfd[0].revents & POLLIN) accept_all(lfd);
  }

  getrusage(RUSAGE_SELF, &ru);
  fprintf(stderr, "static_server: %s, delay %g ms, %lu requests on %lu connections, cpu %.0f us\n",
          stop_signal == SIGALRM ? "lifetime over" : "stopped", delay_ms, requests_served,
          connections_accepted,
          (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 +
              (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec));
  return 0;
}
