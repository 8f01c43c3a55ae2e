#!/bin/sh
# test_nvim.sh: atai inside headless Neovim against the fake Archetype API.
#   sh scripts/test_nvim.sh LUAJIT_BUILD_DIR OTHER_BUILD_DIR
# e.g. build/luajit build/lua5.4 (make test-nvim builds both first).
# spec/nvim/run.lua loads atai from LUAJIT_BUILD_DIR and checks get_job, runs
# the atai.uv checks of spec/nvim/uv.lua, then checks that the module in
# OTHER_BUILD_DIR (built for another Lua) is refused with a clear message. It prints a busted-style totals line and quits with
# :cquit on any failure, so this script's exit status is Neovim's.
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
rc=0
# -u NONE: no user config or plugins; -i NONE: no shada. If run.lua dies
# before it quits (a syntax error, say), the second -c ends Neovim with 3.
# timeout: a Neovim waiting for input must not hang CI.
XDG_CONFIG_HOME="$nvim_home/config" XDG_DATA_HOME="$nvim_home/data" \
XDG_STATE_HOME="$nvim_home/state" XDG_CACHE_HOME="$nvim_home/cache" \
NVIM_LOG_FILE="$nvim_home/nvim.log" \
ATAI_ROOT=$(pwd) ATAI_NVIM_BUILD="$jit_build" ATAI_NVIM_OTHER_BUILD="$other_build" \
  timeout 120 nvim --headless -u NONE -i NONE \
    -c 'luafile spec/nvim/run.lua' -c 'cquit 3' </dev/null 2>"$nvim_home/stderr" || rc=$?
# Neovim's messages (stderr) hold the errors a check provokes on purpose:
# shown only when something failed.
if [ "$rc" -ne 0 ]; then
  cat "$nvim_home/stderr" >&2
  echo "test-nvim: Neovim exited with status $rc" >&2
fi
exit "$rc"
