#!/bin/sh
# test_all.sh: `make test` under every Lua given, one after the other.
#   MAKE=make sh scripts/test_all.sh lua5.1 lua5.2 lua5.3 lua5.4 luajit
# Keeps going when one fails, then prints a summary line per version and
# exits 1 if any failed. A version whose build or start failed before busted
# printed its totals gets a stand-in busted line (1 error), so totals summed
# from the log (.ci/run) still count it.
set -u
make=${MAKE:-make}
[ $# -gt 0 ] || set -- lua5.1 lua5.2 lua5.3 lua5.4 luajit

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
summary_re='^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending'
status=0

for lua in "$@"; do
  echo "=== make test LUA=$lua"
  start=$(date +%s)
  # The exit status of make, not of tee, through a file (POSIX sh).
  { $make --no-print-directory test LUA="$lua" 2>&1; echo $? >"$tmp/$lua.rc"; } | tee "$tmp/$lua.log"
  rc=$(cat "$tmp/$lua.rc")
  secs=$(($(date +%s) - start))
  line=$(grep -E "$summary_re" "$tmp/$lua.log" | tail -n 1)
  if [ -z "$line" ]; then
    line="0 successes / 0 failures / 1 error / 0 pending : make test LUA=$lua stopped before busted reported"
    echo "$line"
  fi
  if [ "$rc" -eq 0 ]; then verdict=ok; else verdict=FAIL; status=1; fi
  printf '  %-7s %-4s %s (%ss)\n' "$lua" "$verdict" "${line%% :*}" "$secs" >>"$tmp/summary"
done

echo "=== test-all summary"
cat "$tmp/summary"
if [ "$status" -ne 0 ]; then
  echo "test-all: FAILED under at least one Lua" >&2
fi
exit "$status"
