#!/bin/sh
# sanitize.sh: the busted suite under lua5.4 with an ASan+UBSan build of
# atai.core (make sanitize builds it first).
#   sh scripts/sanitize.sh BUILD_DIR ASAN_RUNTIME SYMBOLIZER [BUSTED_ARGS...]
# BUILD_DIR holds atai/core.so; ASAN_RUNTIME is clang's
# libclang_rt.asan-x86_64.so, preloaded because lua5.4 itself is not
# instrumented. Every process of the run (busted, the fake server, the
# interpreters the specs start, the tools they call) writes its sanitizer
# reports into BUILD_DIR/reports/ instead of stderr, where a spec might
# swallow them; the run fails when busted fails or when any report exists,
# and prints the reports. Leak checking is on, with the few suppressions
# below for programs that are not atai.
set -u
build=$1
runtime=$2
symbolizer=$3
shift 3

# absolute: specs run children in other folders, whose reports must land here
reports="$(pwd)/$build/reports"
rm -rf "$reports"
mkdir -p "$reports"

# Leaks that are not atai's, one line each with its reason. Keep it short:
# a suppression hides every leak whose stack matches it.
supp="$(pwd)/$build/lsan.supp"
cat >"$supp" <<'EOF'
# Tools the specs run inherit LD_PRELOAD and keep small buffers until exit:
# coreutils (sort, date, mktemp, install: rockspec, interrupt and CLI
# specs), util-linux script (the CLI's TTY tests) and nginx (h2_spec).
# Each names its own executable, never lua5.4, so atai's leaks still show.
leak:/usr/bin/sort
leak:/usr/bin/date
leak:/usr/bin/mktemp
leak:/usr/bin/install
leak:/usr/bin/script
leak:/usr/sbin/nginx
# luv 1.44 never frees a handle whose init failed (uv_spec provokes it once);
# luv is preloaded below so that its frames keep their module name.
leak:liblua5.4-luv
EOF

# luv too, like make memcheck: unloaded at exit, its frames would be nameless
luv=$(pkg-config --variable=libdir libcurl)/liblua5.4-luv.so.0
[ -f "$luv" ] && runtime="$runtime $luv"

start=$(date +%s)
env -u ATAI_API_KEY -u ATAI_API_ENDPOINT \
  ATAI_TEST_LUA=lua5.4 ATAI_TEST_CPATH="./$build/?.so" ATAI_TEST_BIG_MB=4 \
  LD_PRELOAD="$runtime" \
  ASAN_SYMBOLIZER_PATH="$symbolizer" \
  ASAN_OPTIONS="detect_leaks=1:log_path=$reports/asan" \
  LSAN_OPTIONS="suppressions=$supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:log_path=$reports/asan" \
  lua5.4 /usr/bin/busted --cpath="$build/?.so" "$@"
rc=$?
secs=$(($(date +%s) - start))

found=$(find "$reports" -type f | sort)
if [ -n "$found" ]; then
  for f in $found; do
    echo "=== sanitizer report $f"
    cat "$f"
  done
  echo "sanitize: FAIL, $(echo "$found" | wc -l) sanitizer report(s) in $reports (${secs}s)"
  exit 1
fi
if [ "$rc" -ne 0 ]; then
  echo "sanitize: FAIL, busted exited $rc (${secs}s)"
  exit "$rc"
fi
echo "sanitize: ok, no sanitizer report (${secs}s)"
