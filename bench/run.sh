#!/bin/sh
# bench/run.sh: what atai costs next to plain C libcurl programs doing the
# same work against the same local keep-alive HTTP server (static_server.c).
#
#   sh bench/run.sh [LUA]          (make bench; LUA defaults to lua5.4)
#
# Builds atai for LUA (make -C <repo>), and into build/bench/ the server and
# the C baselines (which embed Lua 5.4 for cjson whatever LUA is). Measures,
# each next to a baseline measured in the same run, with its goal printed:
#
# single      one get_job at a time, server answering at once:
#   baseline   C (bench/baseline.c): one reused easy handle, curl_easy_perform,
#              cjson.decode
#   get_job    LUA bench/get_job.lua: client:get_job(id)
#   request    LUA bench/get_job_raw.lua: client:request("GET", path)
#   each N calls after WARMUP untimed ones, in interleaved rounds. The table
#   shows per call the best round's wall time and client-process CPU time
#   (user+sys, measured inside the client around its loop), atai's overhead
#   over the baseline on those, and the median round's CPU time (a busy
#   machine shows up as a median far above the best). With valgrind
#   installed, each client also runs under callgrind twice (CG_N and CG_N/5
#   calls) and the difference gives user-space instructions per call,
#   start-up excluded: deterministic enough to compare across runs, and so
#   compared with bench/reference.txt (0.1.0's figures; goal: get_job within
#   +5%). The CG_N profiles stay in build/bench/callgrind.out.*.
# concurrent  CONC GETs per round, server answering each after DELAY_MS:
#   C multi (bench/multi_baseline.c: CONC easy handles on one multi handle,
#   connections kept across rounds), one client:get_jobs(CONC ids) per round
#   (bench/get_jobs.lua, max_concurrency = CONC), and CONC sequential
#   client:get_job calls. Goals: get_jobs <= 1.5x the C multi round, and
#   >= 30x faster than sequential.
# poll        CONC client.async:get_job handles in flight against the same
#   server, client:poll(0) timed call by call until all are done
#   (bench/poll.lua), next to the same step in C (multi_baseline spin:
#   curl_multi_perform, info_read, decode). Goal: p99 <= 0.5 ms.
# memory      ASYNC_N async get_jobs in batches of CONC (start CONC handles,
#   wait for all, repeat; bench/memory.lua): RSS after ASYNC_N next to RSS
#   after the first 1,000. Goal: growth <= 1 MiB.
# queued      QUEUED_N client.async:get_job handles started on a client with
#   max_concurrency = 1, so all but one wait in its queue (bench/queued.lua):
#   RSS with them held minus RSS before, in MB (10^6 bytes) and per handle.
#   Goal: 10,000 queued handles under 10 MB.
# transfer    a file of BENCH_TRANSFER_MB MiB (made once from /dev/urandom in
#   build/bench/transfer/) moved on loopback by atai and by the curl tool,
#   BENCH_TRANSFER_ROUNDS rounds of alternating runs (curl first in odd
#   rounds, atai first in even ones), each destination removed before its
#   run, each run timed whole (process start to exit, both alike):
#   download  nginx (one worker, sendfile) serves the file: `curl -s -o DEST
#             URL` next to client:download(URL, DEST) (bench/transfer.lua);
#   upload    `curl -s -T FILE URL` (one PUT) next to client:upload_file(FILE)
#             by the multipart flow: the same nginx answers initiate and
#             complete with fixed JSON, whose parts (BENCH_PART_MB MiB) go as
#             PUTs to static_server, which drops the bodies and answers with
#             an ETag (nginx's DAV module sends none); curl -T goes there too.
#   Prints the median MiB/s of each, their ratio, and atai's largest peak
#   RSS growth (VmHWM at the end minus VmRSS before the transfer). Goals:
#   >= 0.9x curl both ways, RSS growth < 32 MiB. Skipped without nginx/curl.
# A build without client:get_jobs / client.async (0.1.0) skips those atai
# clients with a note; the C baselines still run.
#
# Environment: BENCH_MEASURES ("single concurrent poll memory transfer"),
# single: BENCH_N (5000), BENCH_WARMUP (200), BENCH_ROUNDS (5), BENCH_CG_N
# (500; 0 skips callgrind); concurrent/poll/memory: BENCH_CONC (100),
# BENCH_DELAY_MS (20), BENCH_CONC_ROUNDS (20), BENCH_SEQ_ROUNDS (2),
# BENCH_POLL_ROUNDS (5), BENCH_ASYNC_N (100000, more than 1000); queued:
# BENCH_QUEUED_N (10000); transfer:
# BENCH_TRANSFER_MB (1024), BENCH_TRANSFER_ROUNDS (5), BENCH_PART_MB (128);
# CC (cc).
# Exits 0 when every client ran and checked its answers; it asserts nothing
# about speed (a goal not met is printed, not failed).
set -eu

lua=${1:-lua5.4}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/bench
measures=${BENCH_MEASURES:-single concurrent poll memory queued transfer}
n=${BENCH_N:-5000}
warmup=${BENCH_WARMUP:-200}
rounds=${BENCH_ROUNDS:-5}
cg_n=${BENCH_CG_N:-500}
conc=${BENCH_CONC:-100}
delay_ms=${BENCH_DELAY_MS:-20}
conc_rounds=${BENCH_CONC_ROUNDS:-20}
seq_rounds=${BENCH_SEQ_ROUNDS:-2}
poll_rounds=${BENCH_POLL_ROUNDS:-5}
async_n=${BENCH_ASYNC_N:-100000}
async_mark=1000
queued_n=${BENCH_QUEUED_N:-10000}
transfer_mb=${BENCH_TRANSFER_MB:-1024}
transfer_rounds=${BENCH_TRANSFER_ROUNDS:-5}
part_mb=${BENCH_PART_MB:-128}
cc=${CC:-cc}
fixture=$root/spec/fixtures/job_completed_tep.json
reference=$root/bench/reference.txt
cflags="-std=c99 -O2 -g -Wall -Wextra -Werror -pedantic"

die() { echo "bench: $*" >&2; exit 1; }
is_count() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }
positive() { # NAME VALUE
  if ! is_count "$2" || [ "$2" -eq 0 ]; then die "$1 must be a positive integer, got '$2'"; fi
}
positive BENCH_N "$n"
is_count "$warmup" || die "BENCH_WARMUP must be an integer >= 0, got '$warmup'"
positive BENCH_ROUNDS "$rounds"
is_count "$cg_n" || die "BENCH_CG_N must be an integer >= 0, got '$cg_n'"
positive BENCH_CONC "$conc"
[ "$conc" -le 1000 ] || die "BENCH_CONC must be at most 1000 (max_concurrency), got '$conc'"
is_count "$delay_ms" || die "BENCH_DELAY_MS must be an integer >= 0, got '$delay_ms'"
positive BENCH_CONC_ROUNDS "$conc_rounds"
positive BENCH_SEQ_ROUNDS "$seq_rounds"
positive BENCH_POLL_ROUNDS "$poll_rounds"
positive BENCH_ASYNC_N "$async_n"
[ "$async_n" -gt "$async_mark" ] || die "BENCH_ASYNC_N must be more than $async_mark, got '$async_n'"
positive BENCH_QUEUED_N "$queued_n"
positive BENCH_TRANSFER_MB "$transfer_mb"
positive BENCH_TRANSFER_ROUNDS "$transfer_rounds"
positive BENCH_PART_MB "$part_mb"
for m in $measures; do
  case "$m" in single | concurrent | poll | memory | queued | transfer) ;; *) die "unknown measure '$m' in BENCH_MEASURES" ;; esac
done
wants() { case " $measures " in *" $1 "*) return 0 ;; esac; return 1; }

for tool in "$cc" pkg-config "$lua"; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found (make deps LUA=$lua installs what is missing)"
done
pkg-config --exists lua5.4 libcurl ||
  die "pkg-config knows no lua5.4 or libcurl (make deps installs liblua5.4-dev libcurl4-openssl-dev)"

# --- build ------------------------------------------------------------------
make -C "$root" --no-print-directory LUA="$lua" >/dev/null
mkdir -p "$out"
# shellcheck disable=SC2086
"$cc" $cflags -o "$out/static_server" "$root/bench/static_server.c"
for prog in baseline multi_baseline; do
  # shellcheck disable=SC2086,SC2046
  "$cc" $cflags $(pkg-config --cflags lua5.4 libcurl) -o "$out/$prog" "$root/bench/$prog.c" \
    $(pkg-config --libs lua5.4 libcurl)
done

# --- server -----------------------------------------------------------------
# start_server DELAY_MS: a static_server in the background; sets port.
# start_server_body FILE [DELAY_MS]: the same, answering with FILE.
# stop_server: stops it; sets server_stats to "REQUESTS CONNECTIONS CPU_US".
server_pid=
server_stats=
start_server() { start_server_body "$fixture" "$1"; }
start_server_body() {
  "$out/static_server" "$@" >"$out/server.out" 2>"$out/server.log" &
  server_pid=$!
  port=
  tries=0
  while [ -z "$port" ]; do
    port=$(sed -n 's/^PORT \([0-9][0-9]*\)$/\1/p' "$out/server.out")
    [ -n "$port" ] && break
    kill -0 "$server_pid" 2>/dev/null || die "static_server failed: $(cat "$out/server.log")"
    tries=$((tries + 1))
    [ "$tries" -le 100 ] || die "static_server printed no port within 5 s"
    sleep 0.05
  done
}
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    server_stats=$(sed -n 's/.* \([0-9][0-9]*\) requests on \([0-9][0-9]*\) connections, cpu \([0-9][0-9]*\) us$/\1 \2 \3/p' \
      "$out/server.log")
  fi
}
trap 'stop_server; stop_nginx' EXIT
trap 'exit 130' INT TERM

# result NAME CMD...: runs a client; prints its "RESULT NAME ..." or
# "SKIP ..." line, failing the bench on anything else.
result() {
  name=$1
  shift
  line=$("$@") || die "$name failed"
  case "$line" in
    "RESULT $name "* | "SKIP "*) echo "$line" ;;
    *) die "$name printed no RESULT line: $line" ;;
  esac
}

export BENCH_LUA="$lua" # bench/harness.lua loads atai from build/$BENCH_LUA

# --- single: get_job next to one easy handle --------------------------------
# The clients, by name; `wrap` is how they run (plain here, callgrind below).
wrap() { "$@"; }
client() { # NAME CALLS WARMUP
  case "$1" in
    baseline) wrap "$out/baseline" "$port" "$2" "$3" ;;
    get_job) wrap "$lua" "$root/bench/get_job.lua" "$port" "$2" "$3" ;;
    request) wrap "$lua" "$root/bench/get_job_raw.lua" "$port" "$2" "$3" ;;
  esac
}
clients="baseline get_job request"
results=$out/results.txt

single_timing() {
  : >"$results"
  round=1
  while [ "$round" -le "$rounds" ]; do
    for name in $clients; do
      result "$name" client "$name" "$n" "$warmup" >>"$results"
    done
    round=$((round + 1))
  done
}

# Over the rounds, the best (lowest) or the median of column COL (4 wall,
# 5 CPU) for NAME.
best() { grep "^RESULT $1 " "$results" | awk -v c="$2" '{print $c}' | sort -n | sed -n 1p; }
median() {
  grep "^RESULT $1 " "$results" | awk -v c="$2" '{print $c}' | sort -n |
    sed -n "$(((rounds + 1) / 2))p"
}

single_callgrind() {
  cg_note=
  if [ "$cg_n" -eq 0 ]; then
    cg_note="callgrind skipped (BENCH_CG_N=0)"
    return
  elif ! command -v valgrind >/dev/null 2>&1; then
    cg_note="callgrind skipped: valgrind is not installed (apt-get install valgrind)"
    return
  fi
  cg_small=$((cg_n / 5))
  [ "$cg_small" -ge 1 ] || cg_small=1
  [ "$cg_n" -gt "$cg_small" ] || die "BENCH_CG_N must be at least 2"
  wrap() { valgrind --tool=callgrind --callgrind-out-file="$file" "$@"; }
  for name in $clients; do
    for calls in "$cg_small" "$cg_n"; do
      file=$out/callgrind.out.$name.$calls
      client "$name" "$calls" 20 >"$out/callgrind.$name.$calls.log" 2>&1 ||
        die "$name under callgrind failed: see $out/callgrind.$name.$calls.log"
      ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$file")
      [ -n "$ir" ] || die "no totals line in $file"
      rm -f "$out/callgrind.$name.$calls.log"
      eval "ir_${name}_$calls=$ir"
    done
    mv "$out/callgrind.out.$name.$cg_n" "$out/callgrind.out.$name"
    rm -f "$out/callgrind.out.$name.$cg_small"
    eval "ir_$name=\$(( (ir_${name}_$cg_n - ir_${name}_$cg_small) / (cg_n - cg_small) ))"
    eval "ir_start_$name=\$(( ir_${name}_$cg_small - cg_small * ir_$name ))"
  done
}

# 0.1.0's instructions per call for NAME under this LUA, or "-".
reference_ir() {
  awk -v l="$lua" -v n="$1" '$1 == l && $2 == n {print $3; f = 1} END {if (!f) print "-"}' "$reference"
}

single_table() {
  for name in $clients; do
    if [ -z "$cg_note" ]; then eval "ir=\$ir_$name start=\$ir_start_$name"; else ir=- start=-; fi
    echo "$name $(best "$name" 4) $(best "$name" 5) $(median "$name" 5) $ir $start $(reference_ir "$name")"
  done | awk -v lua="$lua" -v n="$n" -v warmup="$warmup" -v rounds="$rounds" -v port="$port" \
    -v cg_n="$cg_n" -v cg_small="${cg_small:-0}" -v cg_note="$cg_note" -v server="$server_stats" '
  function pct(x, base) { return base > 0 ? sprintf("%+.1f%%", (x - base) * 100 / base) : "-" }
  {
    name[NR] = $1; wall[NR] = $2; cpu[NR] = $3; cpu_med[NR] = $4; ir[NR] = $5; start[NR] = $6; ref[NR] = $7
  }
  END {
    label["baseline"] = "baseline (C: easy_perform + cjson)"
    label["get_job"] = "atai client:get_job(id)"
    label["request"] = "atai client:request(\"GET\", path)"
    printf "\natai bench, single: %s, 127.0.0.1:%s, N=%d calls after %d warm-up, best of %d round%s\n",
      lua, port, n, warmup, rounds, rounds == 1 ? "" : "s"
    printf "per call: wall and CPU (client process user+sys) in us; Ir = instructions\n\n"
    printf "%-36s %8s %8s %8s %8s %8s %9s %8s %8s\n", "client", "wall", "vs base", "CPU", "vs base",
      "CPU med", "Ir", "vs base", "vs 0.1.0"
    for (i = 1; i <= NR; i++) {
      printf "%-36s %8.2f %8s %8.2f %8s %8.2f %9s %8s %8s\n", label[name[i]],
        wall[i], i == 1 ? "" : pct(wall[i], wall[1]), cpu[i], i == 1 ? "" : pct(cpu[i], cpu[1]),
        cpu_med[i], ir[i], (i == 1 || ir[i] == "-") ? "" : pct(ir[i], ir[1]),
        (ir[i] == "-" || ref[i] == "-") ? "" : pct(ir[i], ref[i])
      if (name[i] == "get_job" && ir[i] != "-" && ref[i] != "-")
        goal = sprintf("goal: get_job Ir within +5%% of 0.1.0 (%d): %s (%s)", ref[i],
          (ir[i] - ref[i]) * 100 <= 5 * ref[i] ? "met" : "NOT met", pct(ir[i], ref[i]))
    }
    print ""
    print "baseline: C, one reused easy handle + cjson.decode via the Lua 5.4 C API"
    if (cg_note != "") print cg_note
    else {
      printf "Ir = (Ir(%d calls) - Ir(%d calls)) / %d under callgrind, start-up excluded; start-up:",
        cg_n, cg_small, cg_n - cg_small
      for (i = 1; i <= NR; i++) printf " %s %.1fM", name[i], start[i] / 1e6
      print ""
      if (goal != "") print goal
      else printf "no 0.1.0 reference for %s in bench/reference.txt\n", lua
    }
    if (split(server, s, " ") == 3 && s[1] > 0)
      printf "server: %d requests, %.2f us CPU per request (static_server, whole run)\n",
        s[1], s[3] / s[1]
  }'
  if [ -z "$cg_note" ]; then
    echo "profiles: callgrind_annotate --inclusive=yes build/bench/callgrind.out.{baseline,get_job,request}"
  fi
}

measure_single() {
  start_server 0
  single_timing
  single_callgrind
  stop_server
  single_table
}

# --- concurrent: get_jobs next to one multi handle and to sequential ---------
measure_concurrent() {
  start_server "$delay_ms"
  multi=$(result multi "$out/multi_baseline" "$port" "$conc" "$conc_rounds" 1)
  jobs=$(result get_jobs "$lua" "$root/bench/get_jobs.lua" concurrent "$port" "$conc" "$conc_rounds" 1)
  seq=$(result sequential "$lua" "$root/bench/get_jobs.lua" sequential "$port" "$conc" "$seq_rounds" 0)
  stop_server
  printf '%s\n' "$multi" "$jobs" "$seq" | awk -v conc="$conc" -v delay="$delay_ms" -v server="$server_stats" '
  function x(a, b) { return sprintf("%.2fx", a / b) }
  function verdict(ok) { return ok ? "met" : "NOT met" }
  /^SKIP/ { skip = $0; sub(/^SKIP [^:]*: /, "", skip); next }
  { name = $2; rounds[name] = $4; best[name] = $5; med[name] = $6; cpu[name] = $7 }
  END {
    label["multi"] = sprintf("C multi (%d easy on one multi handle)", conc)
    label["get_jobs"] = sprintf("atai client:get_jobs(%d ids)", conc)
    label["sequential"] = sprintf("atai %d x client:get_job, sequential", conc)
    printf "\natai bench, concurrent: %d GETs per round, server answering after %d ms\n", conc, delay
    printf "per round in ms: best and median of the rounds, client CPU (user+sys) per round\n\n"
    printf "%-40s %7s %9s %9s %9s %10s\n", "client", "rounds", "best", "median", "CPU", "vs C multi"
    n = split("multi get_jobs sequential", order, " ")
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (!(k in best)) { printf "%-40s skipped: %s\n", label[k], skip; continue }
      printf "%-40s %7d %9.2f %9.2f %9.2f %10s\n", label[k], rounds[k], best[k], med[k], cpu[k],
        k == "multi" ? "" : x(best[k], best["multi"])
    }
    print ""
    if ("get_jobs" in best) {
      r = best["get_jobs"] / best["multi"]; s = best["sequential"] / best["get_jobs"]
      printf "goal: get_jobs <= 1.5x the C multi round: %s (%.2fx)\n", verdict(r <= 1.5), r
      printf "goal: get_jobs >= 30x faster than sequential: %s (%.1fx)\n", verdict(s >= 30), s
    } else {
      printf "C multi is %.1fx faster than sequential get_job; get_jobs goals: <= 1.5x C multi, >= 30x sequential\n",
        best["sequential"] / best["multi"]
    }
    if (split(server, t, " ") == 3)
      printf "server: %d requests on %d connections (all three clients)\n", t[1], t[2]
  }'
}

# --- poll: one poll(0) step with CONC in flight -----------------------------
measure_poll() {
  start_server "$delay_ms"
  spin=$(result multi_spin "$out/multi_baseline" "$port" "$conc" "$poll_rounds" 1 spin)
  poll=$(result poll "$lua" "$root/bench/poll.lua" "$port" "$conc" "$poll_rounds" 1)
  stop_server
  printf '%s\n' "$spin" "$poll" | awk -v conc="$conc" -v delay="$delay_ms" -v rounds="$poll_rounds" '
  /^SKIP/ { skip = $0; sub(/^SKIP [^:]*: /, "", skip); next }
  { name = $2; calls[name] = $3; p50[name] = $4; p99[name] = $5; max[name] = $6 }
  END {
    label["multi_spin"] = "C multi_perform + info_read + decode"
    label["poll"] = "atai client:poll(0)"
    printf "\natai bench, poll: one step with %d transfers in flight, server answering after %d ms,\n", conc, delay
    printf "%d rounds after 1 warm-up; ms per call\n\n", rounds
    printf "%-40s %8s %9s %9s %9s %10s\n", "client", "calls", "p50", "p99", "max", "p99 vs C"
    n = split("multi_spin poll", order, " ")
    for (i = 1; i <= n; i++) {
      k = order[i]
      if (!(k in p99)) { printf "%-40s skipped: %s\n", label[k], skip; continue }
      printf "%-40s %8d %9.4f %9.4f %9.4f %10s\n", label[k], calls[k], p50[k], p99[k], max[k],
        (k == "poll" && p99["multi_spin"] > 0) ? sprintf("%.2fx", p99[k] / p99["multi_spin"]) : ""
    }
    print ""
    if ("poll" in p99)
      printf "goal: poll(0) p99 <= 0.5 ms: %s (%.4f ms)\n", p99["poll"] <= 0.5 ? "met" : "NOT met", p99["poll"]
    else print "goal: poll(0) p99 <= 0.5 ms"
  }'
}

# --- memory: RSS of a long-lived client -------------------------------------
measure_memory() {
  start_server 0
  mem=$(result memory "$lua" "$root/bench/memory.lua" "$port" "$conc" "$async_n" "$async_mark")
  stop_server
  echo "$mem" | awk -v conc="$conc" '
  /^SKIP/ { sub(/^SKIP [^:]*: /, ""); printf "\natai bench, memory: skipped: %s\n", $0; next }
  {
    growth = $6 - $5
    printf "\natai bench, memory: async get_jobs in batches of %d (start all, wait for all)\n\n", conc
    printf "RSS after the first %d: %d KiB; after %d: %d KiB; growth %+d KiB (x%.3f)\n",
      $4, $5, $3, $6, growth, $6 / $5
    printf "goal: growth <= 1024 KiB: %s\n", growth <= 1024 ? "met" : "NOT met"
  }'
}

# --- queued: what a handle waiting for a slot costs -------------------------
measure_queued() {
  start_server 0
  queued=$(result queued "$lua" "$root/bench/queued.lua" "$port" "$queued_n")
  stop_server
  echo "$queued" | awk '
  /^SKIP/ { sub(/^SKIP [^:]*: /, ""); printf "\natai bench, queued: skipped: %s\n", $0; next }
  {
    n = $3; mb = ($5 - $4) * 1024 / 1e6; goal = 10 * n / 10000
    printf "\natai bench, queued: %d client.async:get_job handles behind max_concurrency = 1\n\n", n
    printf "RSS before: %d KiB; with %d queued: %d KiB; growth %.1f MB (%.0f bytes per handle)\n",
      $4, n, $5, mb, mb * 1e6 / n
    printf "goal: %d queued handles under %g MB: %s (%.1f MB)\n", n, goal, mb < goal ? "met" : "NOT met", mb
  }'
}

# --- transfer: a big file each way, next to the curl tool -------------------
nginx_pid=
stop_nginx() {
  if [ -n "$nginx_pid" ]; then
    kill "$nginx_pid" 2>/dev/null || true
    wait "$nginx_pid" 2>/dev/null || true
    nginx_pid=
  fi
}

# initiate_json SIZE: the bench API's initiate reply, parts of part_mb MiB
# covering SIZE bytes, each a PUT to static_server (on $port).
initiate_json() {
  awk -v size="$1" -v part=$((part_mb * 1048576)) -v port="$port" 'BEGIN {
    q = "\""
    for (off = 0; off < size; off += part) {
      len = size - off < part ? size - off : part
      parts = parts (n ? "," : "") sprintf("{%spart_number%s:%d,%surl%s:%shttp://127.0.0.1:%d/storage/part%d%s,%soffset%s:%.0f,%slength%s:%.0f}",
        q, q, n + 1, q, q, q, port, n + 1, q, q, q, off, q, q, len)
      n++
    }
    printf "{%supload_id%s:%supl_bench%s,%sfile_uid%s:%sfil_bench%s,%snum_parts%s:%d,%spart_size%s:%d,%sparts%s:[%s]}",
      q, q, q, q, q, q, q, q, q, q, n, q, q, part, q, q, parts
  }'
}

# start_nginx DIR SIZE: nginx (one worker) serving DIR/www on a free port
# (sets nginx_port), and the bench's upload API: initiate, complete, abort
# answered with fixed JSON.
start_nginx() {
  ng_dir=$1
  ng_tries=0
  while :; do
    ng_tries=$((ng_tries + 1))
    [ "$ng_tries" -le 20 ] || die "nginx did not start: $(tail -n 3 "$ng_dir/error.log" "$ng_dir/stderr.log" 2>/dev/null)"
    nginx_port=$((20000 + ($$ * 7 + ng_tries * 7919) % 40000))
    cat >"$ng_dir/nginx.conf" <<NGINX
daemon off;
worker_processes 1;
pid $ng_dir/nginx.pid;
error_log $ng_dir/error.log;
events { worker_connections 64; }
http {
  access_log off;
  sendfile on;
  client_body_temp_path $ng_dir/tmp;
  proxy_temp_path $ng_dir/tmp;
  fastcgi_temp_path $ng_dir/tmp;
  uwsgi_temp_path $ng_dir/tmp;
  scgi_temp_path $ng_dir/tmp;
  server {
    listen 127.0.0.1:$nginx_port;
    root $ng_dir/www;
    default_type application/octet-stream;
    location = /v0.5/files/uploads/initiate {
      default_type application/json;
      return 200 '$(initiate_json "$2")';
    }
    location ~ ^/v0.5/files/uploads/[^/]+/complete\$ {
      default_type application/json;
      return 200 '{"file_uid":"fil_bench","file_name":"src.bin","file_status":"Registered","num_bytes":$2}';
    }
    location ~ ^/v0.5/files/uploads/[^/]+/abort\$ { return 200 ''; }
  }
}
NGINX
    : >"$ng_dir/error.log"
    nginx -p "$ng_dir" -c "$ng_dir/nginx.conf" -e "$ng_dir/error.log" 2>"$ng_dir/stderr.log" &
    nginx_pid=$!
    ng_waited=0
    while [ "$ng_waited" -lt 50 ]; do
      if curl -sf -o /dev/null -r 0-0 "http://127.0.0.1:$nginx_port/src.bin"; then return 0; fi
      kill -0 "$nginx_pid" 2>/dev/null || break
      sleep 0.1
      ng_waited=$((ng_waited + 1))
    done
    stop_nginx
  done
}

# now_us: a wall clock in microseconds (GNU date).
now_us() { echo $(($(date +%s%N) / 1000)); }

# transfer_run NAME CMD...: runs CMD timed from start to exit and appends
# "NAME MICROSECONDS RSS_GROWTH_KIB" to $results (growth: from atai's RESULT
# line, "-" for curl). Returns 1 after printing a SKIP line.
transfer_run() {
  tr_name=$1
  shift
  tr_t0=$(now_us)
  tr_line=$("$@") || die "$tr_name failed"
  tr_t1=$(now_us)
  tr_rss=-
  case "$tr_line" in
    "SKIP "*)
      echo "$tr_line"
      return 1
      ;;
    "RESULT "*)
      # shellcheck disable=SC2086
      set -- $tr_line
      [ "$3" = "$size" ] || die "$tr_name moved $3 bytes, not $size"
      tr_rss=$4
      ;;
    "") ;;
    *) die "$tr_name printed no RESULT line: $tr_line" ;;
  esac
  echo "$tr_name $((tr_t1 - tr_t0)) $tr_rss" >>"$results"
}

# One run of CLIENT (curl or atai) in DIRECTION (download or upload).
transfer_one() {
  dest=$tdir/dest.$1
  rm -f "$dest"
  case "$1 $2" in
    "curl download")
      transfer_run curl_download curl -sSf -o "$dest" "$url"
      [ "$(wc -c <"$dest")" -eq "$size" ] || die "curl downloaded $(wc -c <"$dest") bytes, not $size"
      ;;
    "atai download")
      transfer_run atai_download "$lua" "$root/bench/transfer.lua" download "$url" "$dest" || return 1
      if [ "$round" -eq 1 ]; then cmp -s "$src" "$dest" || die "atai's download differs from the file"; fi
      ;;
    "curl upload") transfer_run curl_upload curl -sSf -T "$src" -o /dev/null "$put_url" ;;
    "atai upload") transfer_run atai_upload "$lua" "$root/bench/transfer.lua" upload "$nginx_port" "$src" ;;
  esac
  rm -f "$dest"
}

transfer_table() {
  awk -v mb="$transfer_mb" -v rounds="$transfer_rounds" -v part="$part_mb" '
  { us[$1] = us[$1] " " $2; if ($3 != "-" && $3 + 0 > rss[$1] + 0) rss[$1] = $3 }
  function median(list,   n, v, i, j, t) {
    n = split(list, v, " ")
    for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
    return v[int((n + 1) / 2)]
  }
  function speed(name) { return mb / (median(us[name]) / 1e6) }
  END {
    printf "\natai bench, transfer: a %d MiB file on loopback, atai next to curl, median of %d\n", mb, rounds
    printf "alternating runs each, every run timed from process start to exit\n\n"
    printf "%-46s %10s %10s %7s %15s\n", "direction", "atai MiB/s", "curl MiB/s", "ratio", "atai RSS peak"
    label["download"] = "download: client:download vs curl -o"
    label["upload"] = sprintf("upload: upload_file (%d MiB parts) vs curl -T", part)
    n = split("download upload", dirs, " ")
    for (i = 1; i <= n; i++) {
      d = dirs[i]
      ratio[d] = speed("atai_" d) / speed("curl_" d)
      printf "%-46s %10.1f %10.1f %6.2fx %+11.1f MiB\n", label[d], speed("atai_" d), speed("curl_" d), ratio[d],
        rss["atai_" d] / 1024
    }
    print ""
    for (i = 1; i <= n; i++) {
      d = dirs[i]
      printf "goal: %s >= 0.9x curl: %s (%.2fx); peak RSS growth < 32 MiB: %s (%+.1f MiB)\n", d,
        (ratio[d] >= 0.9) ? "met" : "NOT met", ratio[d], (rss["atai_" d] < 32768) ? "met" : "NOT met",
        rss["atai_" d] / 1024
    }
    print "nginx: 1 worker, sendfile; PUTs (atai parts, curl -T) to static_server, which drops the bodies"
  }' "$results"
}

measure_transfer() {
  for tool in nginx curl; do
    if ! command -v "$tool" >/dev/null 2>&1; then
      printf '\natai bench, transfer: skipped: %s is not installed\n' "$tool"
      return
    fi
  done
  tdir=$out/transfer
  src=$tdir/www/src.bin
  size=$((transfer_mb * 1048576))
  results=$out/transfer.txt
  mkdir -p "$tdir/www" "$tdir/tmp"
  if [ ! -f "$src" ] || [ "$(wc -c <"$src")" -ne "$size" ]; then
    head -c "$size" /dev/urandom >"$src.new" && mv "$src.new" "$src"
  fi
  echo '{}' >"$tdir/empty.json"
  start_server_body "$tdir/empty.json"
  start_nginx "$tdir" "$size"
  url=http://127.0.0.1:$nginx_port/src.bin
  put_url=http://127.0.0.1:$port/storage/whole
  : >"$results"
  round=1
  while [ "$round" -le "$transfer_rounds" ]; do
    if [ $((round % 2)) -eq 1 ]; then order="curl atai"; else order="atai curl"; fi
    for direction in download upload; do
      for who in $order; do
        if ! transfer_one "$who" "$direction"; then
          stop_nginx
          stop_server
          printf '\natai bench, transfer: skipped (see the SKIP line above)\n'
          return
        fi
      done
    done
    round=$((round + 1))
  done
  stop_nginx
  stop_server
  transfer_table
}

for m in single concurrent poll memory queued transfer; do
  if wants "$m"; then "measure_$m"; fi
done
