#!/bin/sh
# fuzz.sh: runs each libFuzzer harness of fuzz/ for a fixed time.
#   sh scripts/fuzz.sh BUILD_DIR SECONDS SYMBOLIZER NAME...
# BUILD_DIR/fuzz_NAME is the harness (make fuzz builds them). Its seeds,
# fuzz/corpus/NAME, are copied into a temporary working corpus, so a run
# never adds files to the committed seeds. Each harness runs SECONDS
# (-max_total_time) with -rss_limit_mb=2048, -timeout=10 and leak
# detection, plus fuzz/json.dict or fuzz/headers.dict when it reads JSON or
# headers. A crash, leak, timeout or out-of-memory stops that harness and
# leaves the input in BUILD_DIR/artifacts/NAME/ (the line to replay it is
# printed); the other harnesses still run. Ends with a line per harness
# and exits 1 if any failed.
set -u
build=$1
secs=$2
symbolizer=$3
shift 3

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
summary=""

for name in "$@"; do
  bin="$build/fuzz_$name"
  artifacts="$build/artifacts/$name"
  corpus="$work/$name"
  log="$work/$name.log"
  rm -rf "$artifacts"
  mkdir -p "$artifacts" "$corpus"
  cp fuzz/corpus/"$name"/* "$corpus"/
  seeds=$(ls "$corpus" | wc -l)
  case "$name" in
    json_*|error_*) dict=-dict=fuzz/json.dict ;;
    headers) dict=-dict=fuzz/headers.dict ;;
    *) dict= ;;
  esac
  echo "=== fuzz $name: ${secs}s from $seeds seeds"
  start=$(date +%s)
  # libFuzzer's own limit ends the run; timeout(1) only guards a hang.
  ASAN_SYMBOLIZER_PATH="$symbolizer" \
    ASAN_OPTIONS="detect_leaks=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    timeout $((secs + 120)) "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -detect_leaks=1 -print_final_stats=1 -artifact_prefix="$artifacts/" $dict "$corpus" \
    >"$log" 2>&1
  rc=$?
  took=$(($(date +%s) - start))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  found=$(ls "$artifacts")
  if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
    verdict=ok
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log"
  else
    verdict=FAIL
    status=1
    tail -n 80 "$log"
    for f in $found; do
      echo "replay: $bin $artifacts/$f"
    done
  fi
  summary="$summary$(printf '  %-15s %-4s %9s runs  corpus %4s -> %-5s %4ss' "$name" "$verdict" \
    "${runs:-?}" "$seeds" "$(ls "$corpus" | wc -l)" "$took")
"
done

echo "=== fuzz summary"
printf '%s' "$summary"
exit $status
