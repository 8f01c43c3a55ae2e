/*
** examples/host.c: a host program (a game, an automation tool) that embeds
** Lua 5.4 and keeps its 60 Hz frame loop running while atai fetches jobs.
** Each frame calls client:poll(0, {budget = 0.002}): the I/O that is ready
** and at most about 2 ms of completions and callbacks, never a wait.
**
**   cc examples/host.c $(pkg-config --cflags --libs lua5.4) -Wl,-E -o host
**   ATAI_API_KEY=... ./host JOB_ID...          (make builds build/host)
**
** -Wl,-E exports the program's Lua C API to the C modules it loads (such
** as atai.core); without it they cannot find lua_gettop and friends when
** Lua is linked in statically (doc/async.md, "Embedding in a C program"). atai is found through
** LUA_PATH / LUA_CPATH and reads ATAI_API_KEY / ATAI_API_ENDPOINT, like
** every atai program.
**
** Prints "ID STATUS" (or "ID error: ...") as each job comes back, then
** "worst_cpu_ms=<Y>" and, last, "frames=<N> worst_ms=<X>": the frames run
** and the longest time one frame spent working rather than sleeping (wall
** clock; Y is that frame work's CPU time, which other processes on a busy
** machine do not inflate). Exit status 0 once every job came back, 1 on
** any error, 2 on bad usage.
*/
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#define FRAME_SECONDS (1.0 / 60.0)
#define GIVE_UP_SECONDS 120.0

/* The Lua side, run with the job ids: returns the frame function, which
** starts at most 4 fetches (each new connection costs libcurl some twenty
** system calls: fifty in one frame would take it over budget), polls, and
** returns how many jobs are still out and how many failed. */
static const char *const SCRIPT =
  "local atai = require('atai')\n"
  "local ids = { ... }\n"
  "local client = atai.new { max_concurrency = math.max(1, math.min(#ids, 100)) }\n"
  "local STARTS_PER_FRAME, POLL = 4, { budget = 0.002 }\n"
  "local out, failed, started = #ids, 0, 0\n"
  "local function report(id)\n"
  "  return function(job, err)\n"
  "    out = out - 1\n"
  "    if job then print(id .. ' ' .. job.status)\n"
  "    else failed = failed + 1; print(id .. ' error: ' .. tostring(err)) end\n"
  "  end\n"
  "end\n"
  "return function()\n"
  "  for i = started + 1, math.min(started + STARTS_PER_FRAME, #ids) do\n"
  "    client.async:get_job(ids[i]):on_done(report(ids[i]))\n"
  "    started = i\n"
  "  end\n"
  "  client:poll(0, POLL)\n"
  "  return out, failed\n"
  "end\n";

/* Seconds on `clock`: CLOCK_MONOTONIC (wall) or CLOCK_THREAD_CPUTIME_ID. */
static double seconds_on(clockid_t clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_seconds(void) {
  return seconds_on(CLOCK_MONOTONIC);
}

static void sleep_until(double t) {
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {}
}

/* Reports the Lua error on top of the stack; returns the exit status 1. */
static int lua_failed(lua_State *L, const char *what) {
  fprintf(stderr, "host: %s: %s\n", what, lua_tostring(L, -1));
  lua_close(L);
  return 1;
}

int main(int argc, char **argv) {
  lua_State *L;
  int i, frame, frames = 0, out = 1, failed = 0;
  double begin, next, worst = 0, worst_cpu = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s JOB_ID...\n", argv[0]);
    return 2;
  }
  L = luaL_newstate();
  if (L == NULL) return 1;
  luaL_openlibs(L);
  if (luaL_loadbuffer(L, SCRIPT, strlen(SCRIPT), "=host") != LUA_OK) return lua_failed(L, "script");
  luaL_checkstack(L, argc, "too many job ids");
  for (i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
  if (lua_pcall(L, argc - 1, 1, 0) != LUA_OK) return lua_failed(L, "starting");
  frame = luaL_ref(L, LUA_REGISTRYINDEX);

  begin = next = now_seconds();
  while (out > 0) {
    double start = now_seconds(), start_cpu = seconds_on(CLOCK_THREAD_CPUTIME_ID), spent, cpu;
    lua_rawgeti(L, LUA_REGISTRYINDEX, frame);
    if (lua_pcall(L, 0, 2, 0) != LUA_OK) return lua_failed(L, "frame");
    out = (int)lua_tointeger(L, -2);
    failed = (int)lua_tointeger(L, -1);
    lua_pop(L, 2);
    /* ... the frame's own work: simulation, drawing ... */
    spent = now_seconds() - start;
    cpu = seconds_on(CLOCK_THREAD_CPUTIME_ID) - start_cpu;
    if (spent > worst) worst = spent;
    if (cpu > worst_cpu) worst_cpu = cpu;
    frames++;
    if (start - begin > GIVE_UP_SECONDS) {
      fprintf(stderr, "host: %d job(s) still out after %.0f s\n", out, GIVE_UP_SECONDS);
      failed++;
      break;
    }
    next += FRAME_SECONDS;
    if (next < start) next = start; /* fell behind: no burst of catch-up frames */
    if (out > 0) sleep_until(next);
  }
  printf("worst_cpu_ms=%.3f\n", worst_cpu * 1000.0);
  printf("frames=%d worst_ms=%.3f\n", frames, worst * 1000.0);
  fflush(stdout);
  lua_close(L);
  return failed > 0 ? 1 : 0;
}
