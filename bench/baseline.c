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

#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <time.h>

#include <curl/curl.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define JOB_ID "job_2abc3def4ghi5jkl6mno7pqr"
#define DECODE_INDEX 1 /* cjson.decode lives at this stack slot */

typedef struct Body {
  char *data;
  size_t len, cap;
} Body;

static size_t on_body(char *data, size_t size, size_t count, void *ud) {
  Body *b = (Body *)ud;
  size_t len = size * count;
  if (b->len + len > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    char *p;
    while (cap < b->len + len) cap *= 2;
    p = (char *)realloc(b->data, cap);
    if (p == NULL) return 0;
    b->data = p;
    b->cap = cap;
  }
  memcpy(b->data + b->len, data, len);
  b->len += len;
  return len;
}

static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One call: fetch, decode. Leaves the decoded table on the stack when
** `keep`, else pops it. Returns 0 (after saying why) on any failure. */
static int fetch_decode(CURL *e, lua_State *L, Body *body, int keep) {
  long status = 0;
  CURLcode rc;
  body->len = 0;
  rc = curl_easy_perform(e);
  if (rc != CURLE_OK) {
    fprintf(stderr, "baseline: %s\n", curl_easy_strerror(rc));
    return 0;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    fprintf(stderr, "baseline: HTTP %ld\n", status);
    return 0;
  }
  lua_pushvalue(L, DECODE_INDEX);
  lua_pushlstring(L, body->data, body->len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "baseline: cjson.decode: %s\n", lua_tostring(L, -1));
    return 0;
  }
  if (!keep) lua_pop(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  char url[256], ua[128];
  struct curl_slist *headers = NULL;
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

  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "baseline: require 'cjson': %s\n", lua_tostring(L, -1));
    return 1;
  }
  lua_getfield(L, -1, "decode");
  lua_replace(L, DECODE_INDEX); /* stack: decode */

  curl_global_init(CURL_GLOBAL_DEFAULT);
  e = curl_easy_init();
  if (e == NULL) return 1;
  headers = curl_slist_append(headers, "Authorization: Bearer bench-key");
  headers = curl_slist_append(headers, "Accept: application/json");
  if (headers == NULL) return 1;
  snprintf(ua, sizeof ua, "atai-bench-baseline libcurl/%s %s", curl_version_info(CURLVERSION_NOW)->version,
           LUA_VERSION);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 60000L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
#if CURL_AT_LEAST_VERSION(7, 85, 0)
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
#else
  curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif

  /* One checked call: the body must be the job asked for. */
  if (!fetch_decode(e, L, &body, 1)) return 1;
  lua_getfield(L, -1, "id");
  if (lua_type(L, -1) != LUA_TSTRING || strcmp(lua_tostring(L, -1), JOB_ID) != 0) {
    fprintf(stderr, "baseline: decoded body has no id %s\n", JOB_ID);
    return 1;
  }
  lua_pop(L, 2);

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
