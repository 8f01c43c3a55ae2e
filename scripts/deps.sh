#!/bin/sh
# deps.sh: makes sure the Debian packages atai needs are installed.
#   sh scripts/deps.sh LUA [EXTRA...]
# LUA is lua5.1, lua5.2, lua5.3, lua5.4 or luajit; EXTRA names more tools
# (valgrind, neovim, luarocks; nginx for spec/h2_spec.lua, pending without
# it: make test DEPS_EXTRA=nginx). As root, missing packages are installed
# with apt-get; otherwise the exact apt-get line is printed and the script fails.
set -eu

lua=${1:-lua5.4}
[ $# -gt 0 ] && shift

# Always: the compiler, libcurl, the fake server's Lua 5.4, cjson, LuaSocket, busted,
# openssl(1) for the TLS specs, luv (libuv for every Lua) for the atai.uv spec,
# and man-db (man -l) for the CLI spec's and rock-check's man page checks.
packages="gcc make pkg-config libcurl4-openssl-dev lua5.4 liblua5.4-dev lua-cjson lua-socket lua-busted openssl lua-luv man-db"

case "$lua" in
  lua5.1) packages="$packages lua5.1 liblua5.1-0-dev" ;;
  lua5.2) packages="$packages lua5.2 liblua5.2-dev" ;;
  lua5.3) packages="$packages lua5.3 liblua5.3-dev" ;;
  lua5.4) ;;
  luajit) packages="$packages luajit libluajit-5.1-dev" ;;
  *) echo "deps.sh: unknown LUA '$lua' (lua5.1 lua5.2 lua5.3 lua5.4 luajit)" >&2; exit 2 ;;
esac
packages="$packages $*"

missing=""
for p in $packages; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "atai needs these Debian packages; run:" >&2
  echo "  sudo apt-get install -y$missing" >&2
  exit 1
fi
echo "deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
