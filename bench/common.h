/*
** common.h: what the C baselines (bench/baseline.c, bench/multi_baseline.c)
** share: the response body buffer, the clocks, cjson.decode through the Lua
** 5.4 C API, and the request headers and easy options atai sets on every
** transfer. Static functions; included once by each program.
*/

#ifndef ATAI_BENCH_COMMON_H
#define ATAI_BENCH_COMMON_H

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

/* libcurl write callback: appends to the Body in ud. */
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

/* This process's user+sys CPU time, in seconds. */
static double cpu_seconds(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* A monotonic clock, in seconds. */
static double wall_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A Lua 5.4 state with cjson.decode at stack slot DECODE_INDEX; NULL after
** saying why. */
static lua_State *open_decoder(const char *who) {
  lua_State *L = luaL_newstate();
  if (L == NULL) return NULL;
  luaL_openlibs(L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    fprintf(stderr, "%s: require 'cjson': %s\n", who, lua_tostring(L, -1));
    lua_close(L);
    return NULL;
  }
  lua_getfield(L, -1, "decode");
  lua_replace(L, DECODE_INDEX); /* stack: decode */
  return L;
}

/* cjson.decode(body), the table left on the stack. Returns 0 (after saying
** why) when it is not a table. */
static int decode_body(lua_State *L, const Body *body, const char *who) {
  lua_pushvalue(L, DECODE_INDEX);
  lua_pushlstring(L, body->data, body->len);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    fprintf(stderr, "%s: cjson.decode: %s\n", who, lua_tostring(L, -1));
    return 0;
  }
  return 1;
}

/* Whether the decoded table on top of the stack is the job JOB_ID; says
** why not. Leaves the stack as it was. */
static int is_the_job(lua_State *L, const char *who) {
  int ok;
  lua_getfield(L, -1, "id");
  ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), JOB_ID) == 0;
  lua_pop(L, 1);
  if (!ok) fprintf(stderr, "%s: decoded body has no id %s\n", who, JOB_ID);
  return ok;
}

/* Whether a finished transfer (rc) answered 200; says why not. */
static int transfer_ok(CURL *e, CURLcode rc, const char *who) {
  long status = 0;
  if (rc != CURLE_OK) {
    fprintf(stderr, "%s: %s\n", who, curl_easy_strerror(rc));
    return 0;
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
  if (status != 200) {
    fprintf(stderr, "%s: HTTP %ld\n", who, status);
    return 0;
  }
  return 1;
}

/* atai's request headers (Authorization: Bearer, Accept); NULL on ENOMEM. */
static struct curl_slist *request_headers(void) {
  struct curl_slist *headers = curl_slist_append(NULL, "Authorization: Bearer bench-key");
  struct curl_slist *more = headers ? curl_slist_append(headers, "Accept: application/json") : NULL;
  if (more == NULL) curl_slist_free_all(headers);
  return more;
}

/* The per-transfer easy options atai sets that change what libcurl does
** (Accept-Encoding: everything libcurl decodes, timeouts, NOSIGNAL, TCP
** keep-alive, protocols), GET url, the body collected into *body. */
static void set_easy_options(CURL *e, const char *url, struct curl_slist *headers, Body *body) {
  static char ua[128];
  if (ua[0] == '\0')
    snprintf(ua, sizeof ua, "atai-bench-baseline libcurl/%s %s",
             curl_version_info(CURLVERSION_NOW)->version, LUA_VERSION);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_USERAGENT, ua);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
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
}

#endif
