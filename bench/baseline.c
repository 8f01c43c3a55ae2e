/*
** baseline.c: the floor atai's get_job is measured against.
**
**   baseline PORT N WARMUP
**
** A plain C program doing what a minimal hand-written client would: ONE
** libcurl easy handle reused for every call (keep-alive), curl_easy_perform
** of GET http://127.0.0.1:PORT/v0.5/batch/jobs/job_2abc3def4ghi5jkl6mno7pqr
** with atai's request headers (Authorization: Bearer, Accept:
** application/json, Accept-Encoding: everything libcurl decodes), the body
** collected by a write callback, then cjson.decode on it through the Lua
** 5.4 C API and the result popped. The per-client easy options atai sets
** that change what libcurl does per transfer (timeouts, NOSIGNAL, TCP
** keep-alive, protocols) are set here too, so the difference is atai's own.
**
** After one checked call and WARMUP untimed calls it times N calls and
** prints
**   RESULT baseline N WALL_US_PER_CALL CPU_US_PER_CALL
** where CPU is getrusage(RUSAGE_SELF) user+sys of this process. Exits 1
** (with the reason on stderr) when any call fails.
*/

#include "common.h"

/* One call: fetch, decode. Leaves the decoded table on the stack when
** `keep`, else pops it. Returns 0 (after saying why) on any failure. */
static int fetch_decode(CURL *e, lua_State *L, Body *body, int keep) {
  body->len = 0;
  if (!transfer_ok(e, curl_easy_perform(e), "baseline") || !decode_body(L, body, "baseline")) return 0;
  if (!keep) lua_pop(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  char url[256];
  struct curl_slist *headers;
  Body body = {NULL, 0, 0};
  lua_State *L;
  CURL *e;
  long i, n, warmup;
  double wall0, cpu0, wall, cpu;
  int ok = 1;

  if (argc != 4) {
    fprintf(stderr, "usage: %s PORT N WARMUP\n", argv[0]);
    return 2;
  }
  n = strtol(argv[2], NULL, 10);
  warmup = strtol(argv[3], NULL, 10);
  if (n <= 0 || warmup < 0) {
    fprintf(stderr, "baseline: N must be > 0 and WARMUP >= 0\n");
    return 2;
  }
  snprintf(url, sizeof url, "http://127.0.0.1:%s/v0.5/batch/jobs/" JOB_ID, argv[1]);

  L = open_decoder("baseline");
  if (L == NULL) return 1;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  e = curl_easy_init();
  headers = request_headers();
  if (e == NULL || headers == NULL) return 1;
  set_easy_options(e, url, headers, &body);

  /* One checked call: the body must be the job asked for. */
  if (!fetch_decode(e, L, &body, 1) || !is_the_job(L, "baseline")) return 1;
  lua_pop(L, 1);

  for (i = 0; ok && i < warmup; i++) ok = fetch_decode(e, L, &body, 0);
  wall0 = wall_seconds();
  cpu0 = cpu_seconds();
  for (i = 0; ok && i < n; i++) ok = fetch_decode(e, L, &body, 0);
  cpu = cpu_seconds() - cpu0;
  wall = wall_seconds() - wall0;
  if (!ok) return 1;

  printf("RESULT baseline %ld %.3f %.3f\n", n, wall * 1e6 / (double)n, cpu * 1e6 / (double)n);

  curl_easy_cleanup(e);
  curl_slist_free_all(headers);
  curl_global_cleanup();
  lua_close(L);
  free(body.data);
  return 0;
}
