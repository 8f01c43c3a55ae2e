#!/bin/sh
# test_nvim.sh: atai inside headless Neovim against the fake Archetype API.
#   sh scripts/test_nvim.sh LUAJIT_BUILD_DIR OTHER_BUILD_DIR
# e.g. build/luajit build/lua5.4 (make test-nvim builds both first).
# Two runs of headless Neovim:
#  * spec/nvim/run.lua (-u NONE) loads atai from LUAJIT_BUILD_DIR and checks
#    get_job, runs the atai.uv checks of spec/nvim/uv.lua, then checks that
#    the module in OTHER_BUILD_DIR (built for another Lua) is refused with a
#    clear message;
#  * spec/nvim/plugin.lua (-u NORC: plugins on) drives the plugin through
#    the runtimepath install: `set rtp+=<checkout>`, with lua/atai/core.so
#    from `make nvim` (make test-nvim builds it), no package.cpath edit.
# Each prints a busted-style totals line and quits with :cquit on any
# failure; this script prints their lines, then one totals line summing
# both, and fails when either failed.
set -eu
jit_build=${1:-build/luajit}
other_build=${2:-build/lua5.4}
for so in "$jit_build/atai/core.so" "$other_build/atai/core.so"; do
  [ -f "$so" ] || { echo "test_nvim.sh: $so is missing (run make test-nvim)" >&2; exit 2; }
done

. scripts/fake_server.sh
# A server answering after 300 ms (the atai.uv heartbeat, :qa, threads),
# then the usual one.
fake_server_start --latency 300
ATAI_SLOW_ENDPOINT=$ATAI_API_ENDPOINT
export ATAI_SLOW_ENDPOINT
fake_server_start
# Neovim keeps its log, shada and state out of $HOME: a throw-away folder.
nvim_home=$(mktemp -d)
cleanup() { fake_server_stop; rm -rf "$nvim_home"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "fake Archetype API on $ATAI_API_ENDPOINT"
echo "$(nvim --version | head -n 1), in headless mode"
[ -f lua/atai/core.so ] || { echo "test_nvim.sh: lua/atai/core.so is missing (run make nvim)" >&2; exit 2; }

rc=0
successes=0 failures=0 errors=0
started=$(date +%s.%N)
# Runs Neovim with these arguments; its output goes to the terminal but for
# its totals line, which is added up.
run_nvim() {
  name=$1
  shift
  status=0
  XDG_CONFIG_HOME="$nvim_home/config" XDG_DATA_HOME="$nvim_home/data" \
  XDG_STATE_HOME="$nvim_home/state" XDG_CACHE_HOME="$nvim_home/cache" \
  NVIM_LOG_FILE="$nvim_home/nvim.log" \
  ATAI_ROOT=$(pwd) ATAI_NVIM_BUILD="$jit_build" ATAI_NVIM_OTHER_BUILD="$other_build" \
    timeout 180 nvim --headless -i NONE "$@" </dev/null >"$nvim_home/out" 2>"$nvim_home/stderr" || status=$?
  totals='^[0-9]+ successes? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending'
  grep -Ev "$totals" "$nvim_home/out" || true
  line=$(grep -E "$totals" "$nvim_home/out" | tail -n 1)
  if [ -n "$line" ]; then
    # shellcheck disable=SC2086
    set -- $line
    successes=$((successes + $1)) failures=$((failures + $4)) errors=$((errors + $7))
  elif [ "$status" -ne 0 ]; then
    errors=$((errors + 1))
  fi
  # Neovim's messages (stderr) hold the errors a check provokes on purpose:
  # shown only when something failed.
  if [ "$status" -ne 0 ]; then
    cat "$nvim_home/stderr" >&2
    echo "test-nvim: $name: Neovim exited with status $status" >&2
    rc=$status
  fi
}

# -u NONE: no user config or plugins; -i NONE: no shada. If a runner dies
# before it quits (a syntax error, say), the second -c ends Neovim with 3.
# timeout: a Neovim waiting for input must not hang CI.
run_nvim spec/nvim/run.lua -u NONE -c 'luafile spec/nvim/run.lua' -c 'cquit 3'
# The plugin: -u NORC loads plugins (ours from the runtimepath) but no user
# config.
echo "--- the plugin (set rtp+=$(pwd))"
run_nvim spec/nvim/plugin.lua -u NORC --cmd "set rtp+=$(pwd)" -c 'luafile spec/nvim/plugin.lua' -c 'cquit 3'

plural() { [ "$1" -eq 1 ] && echo "$1 $2" || echo "$1 $3"; }
seconds=$(echo "$(date +%s.%N) $started" | awk '{ printf "%f", $1 - $2 }')
echo "$(plural $successes success successes) / $(plural $failures failure failures) / $(plural $errors error errors) / 0 pending : $seconds seconds"
exit "$rc"
