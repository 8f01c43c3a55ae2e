#!/bin/sh
# demo.sh: runs examples/get_job.lua against the fake Archetype API.
#   sh scripts/demo.sh LUA BUILD_DIR
set -eu
lua=${1:-lua5.4}
build=${2:-build/$lua}
. scripts/fake_server.sh
fake_server_start
trap fake_server_stop EXIT INT TERM
echo "fake Archetype API on $ATAI_API_ENDPOINT"
LUA_PATH="./lua/?.lua;./lua/?/init.lua;;" LUA_CPATH="./$build/?.so;;" \
  "$lua" examples/get_job.lua job_2abc3def4ghi5jkl6mno7pqr
