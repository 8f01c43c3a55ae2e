#!/bin/sh
# rock_check.sh: checks a rockspec, or a release's .src.rock, the way a user
# would install it.
#   sh scripts/rock_check.sh [ROCKSPEC | ROCK.src.rock] [LUA_VERSION]
#   (defaults: atai-scm-1.rockspec 5.4)
# 1. luarocks lint the rockspec (for a rock: the rockspec inside it).
# 2. A rockspec: luarocks make into a throw-away tree, from a copy of the
#    work tree (LuaRocks' builtin build writes src/core.o and atai/core.so
#    into the source folder). A .src.rock (make dist): luarocks install
#    of the rock file into a throw-away tree, from a folder outside the
#    repository: the tarball inside the rock is built, nothing is
#    downloaded. Both with --deps-mode=none: no rock server is contacted.
# 3. A fresh lua$LUA_VERSION, started outside the repository with
#    package.path/cpath pointing at that tree (plus the system folders, for
#    Debian's lua-cjson), must load atai from the tree: VERSION and
#    atai.core's version_info().curl_version.
# 4. With the environment of `luarocks path` for that tree (as a user of a
#    tree of their own sets it), the tree's bin/atai (LuaRocks' wrapper
#    around the rock's bin/atai) runs `atai version` from outside the
#    repository; for a rock, its first line must be "atai X.Y.Z", the
#    rock's version.
# 5. The rock's folder holds man/atai.1 (copy_directories), readable by
#    `man -l` (LuaRocks installs no man pages).
# Extra luarocks variables (CURL_DIR=..., CURL_INCDIR=...) may come in
# ROCK_VARS. The temporary folders are removed at the end.
set -eu
rockspec=${1:-atai-scm-1.rockspec}
v=${2:-5.4}
lua=lua$v
root=$(pwd)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src" "$tmp/tree" "$tmp/run"

rock_version=
case "$rockspec" in
  *.src.rock)
    rock=$(cd "$(dirname "$rockspec")" && pwd)/$(basename "$rockspec")
    inner=$(basename "$rock" .src.rock).rockspec
    rock_version=$(basename "$rock" .src.rock | sed 's/^atai-\(.*\)-[0-9]*$/\1/')
    echo "=== luarocks lint $inner (inside $rockspec)"
    (cd "$tmp/src" && unzip -q "$rock" "$inner" && luarocks lint "$inner")
    echo "=== luarocks --lua-version=$v install --deps-mode=none --tree=<temp> $rockspec"
    # shellcheck disable=SC2086
    (cd "$tmp/src" && luarocks --lua-version="$v" install --deps-mode=none --tree="$tmp/tree" \
      "$rock" ${ROCK_VARS:-})
    ;;
  *)
    echo "=== luarocks lint $rockspec"
    luarocks lint "$rockspec"
    echo "=== luarocks --lua-version=$v make --deps-mode=none --tree=<temp> $rockspec"
    tar --exclude=./build --exclude=./.git --exclude=./dist -cf - . | tar -C "$tmp/src" -xf -
    # shellcheck disable=SC2086
    (cd "$tmp/src" && luarocks --lua-version="$v" make --deps-mode=none --tree="$tmp/tree" \
      "$rockspec" ${ROCK_VARS:-})
    ;;
esac

echo "=== $lua loads atai from the tree"
cd "$tmp/run"
LUA_PATH="$tmp/tree/share/lua/$v/?.lua;$tmp/tree/share/lua/$v/?/init.lua;;" \
LUA_CPATH="$tmp/tree/lib/lua/$v/?.so;;" ROCK_TREE="$tmp/tree" \
  "$lua" - <<'EOF'
local tree = os.getenv("ROCK_TREE")
local function from_tree(name, path)
  local file = package.searchpath(name, path)
  assert(file and file:sub(1, #tree + 1) == tree .. "/",
    ("%s comes from %s, not from the rock tree %s"):format(name, tostring(file), tree))
  return file
end
local atai_file = from_tree("atai", package.path)
local core_file = from_tree("atai.core", package.cpath)
local atai = require("atai")
assert(type(atai.VERSION) == "string", "atai.VERSION is not a string")
local info = require("atai.core").version_info()
assert(type(info.curl_version) == "string", "version_info().curl_version is not a string")
for name in pairs(package.loaded) do
  if name:match("^atai%.") and not name:match("^atai%.core") then from_tree(name, package.path) end
end
print(("atai %s from %s\natai.core from %s (libcurl %s)"):format(
  atai.VERSION, atai_file, core_file, info.curl_version))
EOF

echo "=== atai version, with: eval \"\$(luarocks --lua-version=$v --tree=<temp> path)\""
eval "$(luarocks --lua-version="$v" --tree="$tmp/tree" path)"
[ "$(command -v atai)" = "$tmp/tree/bin/atai" ] || { echo "atai is not the tree's bin/atai" >&2; exit 1; }
atai version | tee "$tmp/version"
if [ -n "$rock_version" ] && [ "$(head -n 1 "$tmp/version")" != "atai $rock_version" ]; then
  echo "the rock is $rock_version but atai version says: $(head -n 1 "$tmp/version")" >&2
  exit 1
fi
echo "=== the rock carries the man page: man -l \"\$(luarocks show --rock-dir atai)/man/atai.1\""
page="$(luarocks --lua-version="$v" --tree="$tmp/tree" show --rock-dir atai)/man/atai.1"
cmp "$page" "$root/man/atai.1" || { echo "the rock has no man/atai.1 (copy_directories)" >&2; exit 1; }
man -l "$page" >/dev/null 2>&1 || { echo "man -l cannot read $page" >&2; exit 1; }
echo "rock-check: ok ($rockspec)"
