#!/bin/sh
# build_nvim.sh: builds atai.core for Neovim's LuaJIT into lua/atai/core.so,
# where Neovim's loader finds it on the runtimepath (make nvim; the build
# step of lazy.nvim, packer, vim-plug...).
#   sh scripts/build_nvim.sh [OUTPUT]          (default lua/atai/core.so)
# Needs a C compiler ($CC, default cc), LuaJIT's headers (pkg-config luajit,
# or LUA_INCDIR=/folder/with/lua.h) and libcurl's (pkg-config libcurl, or
# curl-config). Installs nothing: it names what is missing and fails.
set -eu
out=${1:-lua/atai/core.so}
cc=${CC:-cc}
cflags=${CFLAGS:--O2 -g}
missing=""

if ! command -v "$cc" >/dev/null 2>&1; then
  missing="$missing
  - a C compiler: '$cc' is not on PATH (install gcc or clang, or pass CC=...)"
fi

# LuaJIT's headers: LUA_INCDIR first, then pkg-config.
lua_cflags=""
if [ -n "${LUA_INCDIR:-}" ]; then
  if [ -f "$LUA_INCDIR/lua.h" ] && [ -f "$LUA_INCDIR/luajit.h" ]; then
    lua_cflags="-I$LUA_INCDIR"
  else
    missing="$missing
  - LuaJIT's headers: LUA_INCDIR=$LUA_INCDIR holds no lua.h and luajit.h"
  fi
elif command -v pkg-config >/dev/null 2>&1 && pkg-config --exists luajit; then
  lua_cflags=$(pkg-config --cflags luajit)
else
  missing="$missing
  - LuaJIT's headers (lua.h, luajit.h): pkg-config does not know luajit; install them
    (Debian/Ubuntu: libluajit-5.1-dev; Fedora: luajit-devel; macOS: brew install luajit)
    or pass LUA_INCDIR=/folder/with/lua.h"
fi

# libcurl's headers and library: pkg-config, then curl-config.
curl_cflags="" curl_libs=""
if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists libcurl; then
  curl_cflags=$(pkg-config --cflags libcurl)
  curl_libs=$(pkg-config --libs libcurl)
elif command -v curl-config >/dev/null 2>&1; then
  curl_cflags=$(curl-config --cflags)
  curl_libs=$(curl-config --libs)
else
  missing="$missing
  - libcurl's headers (curl/curl.h): neither pkg-config libcurl nor curl-config finds them
    (Debian/Ubuntu: libcurl4-openssl-dev; Fedora: libcurl-devel; macOS: brew install curl)"
fi

if [ -n "$missing" ]; then
  echo "make nvim: cannot build atai.core for Neovim; missing:$missing" >&2
  exit 1
fi

# macOS: a module leaves the Lua symbols to the host (nvim) at load time.
shared="-shared"
[ "$(uname -s)" = Darwin ] && shared="-bundle -undefined dynamic_lookup"

mkdir -p "$(dirname "$out")"
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
# shellcheck disable=SC2086
"$cc" $cflags -std=c99 -Wall -Wextra -pedantic -fPIC $lua_cflags $curl_cflags $shared \
  -o "$tmp" src/core.c $curl_libs
mv -f "$tmp" "$out"
echo "make nvim: built $out for LuaJIT; Neovim finds it on the runtimepath"
