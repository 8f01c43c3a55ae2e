/*
** multi_baseline.c: the floor atai's concurrent calls (client:get_jobs,
** client:poll) are measured against.
**
**   multi_baseline PORT TRANSFERS ROUNDS WARMUP [spin]
**
** A plain C program running TRANSFERS GETs at once on ONE libcurl multi
** handle, round after round. The TRANSFERS easy handles are made once, with
** atai's headers and options (common.h), each for
** http://127.0.0.1:PORT/v0.5/batch/jobs/job_bench_NNN. A round adds them all
** to the multi handle and drives it until every one has finished, answered
** 200, and had its body run through cjson.decode (the job's id checked).
** The multi handle keeps its connections (CURLMOPT_MAXCONNECTS = TRANSFERS),
** so after the WARMUP rounds every round reuses them, as a long-lived atai
** client would.
**
** Default: between curl_multi_perform calls the loop waits in
** curl_multi_poll, and each round is timed; prints
**   RESULT multi TRANSFERS ROUNDS BEST_MS MEDIAN_MS CPU_MS
** (a round's wall time, best and median; CPU = user+sys per round, mean).
** spin: never waits, and times every step (curl_multi_perform, then reading
** and decoding what finished), the C floor of atai's client:poll(0); prints
**   RESULT multi_spin STEPS P50_MS P99_MS MAX_MS
** over the steps of all timed rounds. Exits 1 (the reason on stderr) when
** a transfer fails.
*/

#include "common.h"

#define WHO "multi_baseline"

typedef struct Run {
  CURLM *multi;
  CURL **easy;
  Body *body;
  int n;        /* transfers per round */
  lua_State *L; /* cjson.decode at DECODE_INDEX */
  int spin;     /* never wait; time each step into steps[] */
  double *steps;
  size_t nsteps, cap;
} Run;

static int record_step(Run *r, double seconds) {
  if (r->nsteps == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 4096;
    double *p = (double *)realloc(r->steps, cap * sizeof *p);
    if (p == NULL) return 0;
    r->steps = p;
    r->cap = cap;
  }
  r->steps[r->nsteps++] = seconds;
  return 1;
}

/* Reads what finished: checks, decodes and removes each. Returns how many,
** or -1 (after saying why) on a failed one. */
static int reap(Run *r) {
  CURLMsg *msg;
  int left, done = 0;
  while ((msg = curl_multi_info_read(r->multi, &left)) != NULL) {
    CURL *e = msg->easy_handle;
    char *body;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, &body);
    if (!transfer_ok(e, msg->data.result, WHO) || !decode_body(r->L, (Body *)(void *)body, WHO) ||
        !is_the_job(r->L, WHO))
      return -1;
    lua_pop(r->L, 1);
    curl_multi_remove_handle(r->multi, e);
    done++;
  }
  return done;
}

/* One round: all transfers added, driven to the end. Returns 0 on failure. */
static int run_round(Run *r, int timed) {
  int i, left = r->n, running, done;
  for (i = 0; i < r->n; i++) {
    r->body[i].len = 0;
    if (curl_multi_add_handle(r->multi, r->easy[i]) != CURLM_OK) return 0;
  }
  while (left > 0) {
    double t0 = wall_seconds();
    if (curl_multi_perform(r->multi, &running) != CURLM_OK || (done = reap(r)) < 0) return 0;
    left -= done;
    if (r->spin) {
      if (timed && !record_step(r, wall_seconds() - t0)) return 0;
    } else if (left > 0 && curl_multi_poll(r->multi, NULL, 0, 1000, NULL) != CURLM_OK) {
      return 0;
    }
  }
  return 1;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The p-quantile (0 < p <= 1, nearest rank) of sorted[0..n-1]. */
static double quantile(const double *sorted, size_t n, double p) {
  size_t rank = (size_t)(p * (double)n + 0.999999);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

/* The easy handles and the multi handle; returns 0 on ENOMEM. */
static int setup(Run *r, const char *port, struct curl_slist *headers) {
  int i;
  r->multi = curl_multi_init();
  r->easy = (CURL **)calloc((size_t)r->n, sizeof *r->easy);
  r->body = (Body *)calloc((size_t)r->n, sizeof *r->body);
  if (r->multi == NULL || r->easy == NULL || r->body == NULL) return 0;
  curl_multi_setopt(r->multi, CURLMOPT_MAXCONNECTS, (long)r->n);
  for (i = 0; i < r->n; i++) {
    char url[256];
    if ((r->easy[i] = curl_easy_init()) == NULL) return 0;
    snprintf(url, sizeof url, "http://127.0.0.1:%s/v0.5/batch/jobs/job_bench_%03d", port, i);
    set_easy_options(r->easy[i], url, headers, &r->body[i]);
    curl_easy_setopt(r->easy[i], CURLOPT_PRIVATE, (char *)(void *)&r->body[i]);
  }
  return 1;
}

static void teardown(Run *r, struct curl_slist *headers) {
  int i;
  for (i = 0; r->easy && i < r->n; i++) {
    curl_easy_cleanup(r->easy[i]);
    if (r->body) free(r->body[i].data);
  }
  curl_multi_cleanup(r->multi);
  curl_slist_free_all(headers);
  free(r->easy);
  free(r->body);
  free(r->steps);
  lua_close(r->L);
}

static void report(Run *r, const double *round_wall, long rounds, double cpu) {
  if (r->spin) {
    qsort(r->steps, r->nsteps, sizeof *r->steps, by_value);
    printf("RESULT multi_spin %lu %.4f %.4f %.4f\n", (unsigned long)r->nsteps,
           quantile(r->steps, r->nsteps, 0.5) * 1e3, quantile(r->steps, r->nsteps, 0.99) * 1e3,
           r->steps[r->nsteps - 1] * 1e3);
  } else {
    double *sorted = (double *)malloc((size_t)rounds * sizeof *sorted);
    if (sorted == NULL) return;
    memcpy(sorted, round_wall, (size_t)rounds * sizeof *sorted);
    qsort(sorted, (size_t)rounds, sizeof *sorted, by_value);
    printf("RESULT multi %d %ld %.3f %.3f %.3f\n", r->n, rounds, sorted[0] * 1e3,
           quantile(sorted, (size_t)rounds, 0.5) * 1e3, cpu * 1e3 / (double)rounds);
    free(sorted);
  }
}

int main(int argc, char **argv) {
  Run r;
  struct curl_slist *headers;
  double *round_wall, cpu0;
  long i, rounds, warmup;
  int ok = 1;

  memset(&r, 0, sizeof r);
  if (argc < 5 || argc > 6 || (argc == 6 && strcmp(argv[5], "spin") != 0)) {
    fprintf(stderr, "usage: %s PORT TRANSFERS ROUNDS WARMUP [spin]\n", argv[0]);
    return 2;
  }
  r.n = (int)strtol(argv[2], NULL, 10);
  rounds = strtol(argv[3], NULL, 10);
  warmup = strtol(argv[4], NULL, 10);
  r.spin = argc == 6;
  if (r.n <= 0 || r.n > 1000 || rounds <= 0 || warmup < 0) {
    fprintf(stderr, WHO ": TRANSFERS must be in 1..1000, ROUNDS > 0 and WARMUP >= 0\n");
    return 2;
  }
  round_wall = (double *)calloc((size_t)rounds, sizeof *round_wall);
  if ((r.L = open_decoder(WHO)) == NULL || round_wall == NULL) return 1;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  if ((headers = request_headers()) == NULL || !setup(&r, argv[1], headers)) return 1;

  for (i = 0; ok && i < warmup; i++) ok = run_round(&r, 0);
  cpu0 = cpu_seconds();
  for (i = 0; ok && i < rounds; i++) {
    double t0 = wall_seconds();
    ok = run_round(&r, 1);
    round_wall[i] = wall_seconds() - t0;
  }
  if (!ok) return 1;
  report(&r, round_wall, rounds, cpu_seconds() - cpu0);

  teardown(&r, headers);
  free(round_wall);
  curl_global_cleanup();
  return 0;
}
