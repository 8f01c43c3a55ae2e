#!/bin/sh
# bench/run.sh: how much atai's get_job costs per call next to a plain C
# libcurl + cjson loop, against the same local keep-alive HTTP server.
#
#   sh bench/run.sh [LUA]          (make bench; LUA defaults to lua5.4)
#
# Builds atai for LUA (make -C <repo>), and into build/bench/ the server
# (bench/static_server.c) and the baseline (bench/baseline.c, which embeds
# Lua 5.4 whatever LUA is). Then, against one static_server on 127.0.0.1:
#   baseline   C: one reused easy handle, curl_easy_perform, cjson.decode
#   get_job    LUA bench/get_job.lua: client:get_job(id)
#   request    LUA bench/get_job_raw.lua: client:request("GET", path)
# each time N calls after WARMUP untimed ones, in interleaved rounds. The
# table shows per call the best round's wall time and client-process CPU
# time (user+sys, measured inside the client around its loop), atai's
# overhead over the baseline on those, and the median round's CPU time (a
# busy machine shows up as a median far above the best). With valgrind
# installed, each client also runs under callgrind twice (CG_N and CG_N/5
# calls) and the difference gives user-space instructions per call, start-up
# excluded: unlike the timings, deterministic enough to compare across runs.
# The CG_N profiles stay in build/bench/callgrind.out.* for callgrind_annotate.
#
# Environment: BENCH_N (5000), BENCH_WARMUP (200), BENCH_ROUNDS (5),
# BENCH_CG_N (500; 0 skips callgrind), CC (cc).
# Exits 0 when every client ran and checked its answers; it asserts nothing
# about speed.
set -eu

lua=${1:-lua5.4}
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/bench
n=${BENCH_N:-5000}
warmup=${BENCH_WARMUP:-200}
rounds=${BENCH_ROUNDS:-5}
cg_n=${BENCH_CG_N:-500}
cc=${CC:-cc}
fixture=$root/spec/fixtures/job_completed_tep.json
cflags="-std=c99 -O2 -g -Wall -Wextra -Werror -pedantic"

die() { echo "bench: $*" >&2; exit 1; }
is_count() { case "$1" in '' | *[!0-9]*) return 1 ;; esac; }
if ! is_count "$n" || [ "$n" -eq 0 ]; then die "BENCH_N must be a positive integer, got '$n'"; fi
is_count "$warmup" || die "BENCH_WARMUP must be an integer >= 0, got '$warmup'"
if ! is_count "$rounds" || [ "$rounds" -eq 0 ]; then
  die "BENCH_ROUNDS must be a positive integer, got '$rounds'"
fi
is_count "$cg_n" || die "BENCH_CG_N must be an integer >= 0, got '$cg_n'"

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
# shellcheck disable=SC2086,SC2046
"$cc" $cflags $(pkg-config --cflags lua5.4 libcurl) -o "$out/baseline" "$root/bench/baseline.c" \
  $(pkg-config --libs lua5.4 libcurl)

# --- server -----------------------------------------------------------------
server_pid=
stop_server() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
trap stop_server EXIT
trap 'exit 130' INT TERM

"$out/static_server" "$fixture" >"$out/server.out" 2>"$out/server.log" &
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

# The clients, by name; `wrap` is how they run (plain here, callgrind below).
export BENCH_LUA="$lua" # bench/harness.lua loads atai from build/$BENCH_LUA
wrap() { "$@"; }
client() { # NAME CALLS WARMUP
  case "$1" in
    baseline) wrap "$out/baseline" "$port" "$2" "$3" ;;
    get_job) wrap "$lua" "$root/bench/get_job.lua" "$port" "$2" "$3" ;;
    request) wrap "$lua" "$root/bench/get_job_raw.lua" "$port" "$2" "$3" ;;
  esac
}
clients="baseline get_job request"

# --- timing -----------------------------------------------------------------
results=$out/results.txt
: >"$results"
round=1
while [ "$round" -le "$rounds" ]; do
  for name in $clients; do
    line=$(client "$name" "$n" "$warmup") || die "$name failed (round $round)"
    case "$line" in
      "RESULT $name "*) echo "$line" >>"$results" ;;
      *) die "$name printed no RESULT line: $line" ;;
    esac
  done
  round=$((round + 1))
done

# Over the rounds, the best (lowest) or the median of column COL (4 wall,
# 5 CPU) for NAME.
best() { grep "^RESULT $1 " "$results" | awk -v c="$2" '{print $c}' | sort -n | sed -n 1p; }
median() {
  grep "^RESULT $1 " "$results" | awk -v c="$2" '{print $c}' | sort -n |
    sed -n "$(((rounds + 1) / 2))p"
}

# --- callgrind --------------------------------------------------------------
cg_note=
if [ "$cg_n" -eq 0 ]; then
  cg_note="callgrind skipped (BENCH_CG_N=0)"
elif ! command -v valgrind >/dev/null 2>&1; then
  cg_note="callgrind skipped: valgrind is not installed (apt-get install valgrind)"
else
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
fi

stop_server
server=$(sed -n 's/.* \([0-9][0-9]*\) requests on .* cpu \([0-9][0-9]*\) us$/\1 \2/p' "$out/server.log")

# --- table ------------------------------------------------------------------
{
  for name in $clients; do
    if [ -z "$cg_note" ]; then eval "ir=\$ir_$name start=\$ir_start_$name"; else ir=- start=-; fi
    echo "$name $(best "$name" 4) $(best "$name" 5) $(median "$name" 5) $ir $start"
  done
} | awk -v lua="$lua" -v n="$n" -v warmup="$warmup" -v rounds="$rounds" -v port="$port" \
  -v cg_n="$cg_n" -v cg_small="${cg_small:-0}" -v cg_note="$cg_note" -v server="$server" '
  function pct(x, base) { return base > 0 ? sprintf("%+.1f%%", (x - base) * 100 / base) : "-" }
  {
    name[NR] = $1; wall[NR] = $2; cpu[NR] = $3; cpu_med[NR] = $4; ir[NR] = $5; start[NR] = $6
  }
  END {
    label["baseline"] = "baseline (C: easy_perform + cjson)"
    label["get_job"] = "atai client:get_job(id)"
    label["request"] = "atai client:request(\"GET\", path)"
    printf "\natai bench: %s, 127.0.0.1:%s, N=%d calls after %d warm-up, best of %d round%s\n",
      lua, port, n, warmup, rounds, rounds == 1 ? "" : "s"
    printf "per call: wall and CPU (client process user+sys) in us; Ir = instructions\n\n"
    printf "%-36s %8s %8s %8s %8s %8s %9s %8s\n", "client", "wall", "vs base", "CPU", "vs base",
      "CPU med", "Ir", "vs base"
    for (i = 1; i <= NR; i++) {
      printf "%-36s %8.2f %8s %8.2f %8s %8.2f %9s %8s\n", label[name[i]],
        wall[i], i == 1 ? "" : pct(wall[i], wall[1]), cpu[i], i == 1 ? "" : pct(cpu[i], cpu[1]),
        cpu_med[i], ir[i], (i == 1 || ir[i] == "-") ? "" : pct(ir[i], ir[1])
    }
    print ""
    print "baseline: C, one reused easy handle + cjson.decode via the Lua 5.4 C API"
    if (cg_note != "") print cg_note
    else {
      printf "Ir = (Ir(%d calls) - Ir(%d calls)) / %d under callgrind, start-up excluded; start-up:",
        cg_n, cg_small, cg_n - cg_small
      for (i = 1; i <= NR; i++) printf " %s %.1fM", name[i], start[i] / 1e6
      print ""
    }
    if (split(server, s, " ") == 2 && s[1] > 0)
      printf "server: %d requests, %.2f us CPU per request (static_server, whole run)\n",
        s[1], s[2] / s[1]
  }'
if [ -z "$cg_note" ]; then
  echo "profiles: callgrind_annotate --inclusive=yes build/bench/callgrind.out.{baseline,get_job,request}"
fi
