#!/bin/sh
# dist.sh: the files of a release, into dist/ (make dist VERSION=X.Y.Z).
#   sh scripts/dist.sh X.Y.Z
# X.Y.Z must be ATAI_VERSION of src/atai.h (the one place the version
# lives): a release of another version fails here. Writes
#   dist/atai-X.Y.Z.tar.gz        git archive of HEAD, every path under atai-X.Y.Z/
#   dist/atai-X.Y.Z-1.rockspec    generated from atai-scm-1.rockspec: source is
#                                 the tarball on the release page, with md5 and dir
#   dist/atai-X.Y.Z-1.src.rock    luarocks pack: that rockspec and the tarball
#   dist/SHA256SUMS               sha256sum of the three (sha256sum -c SHA256SUMS)
# LuaRocks 3.8's pack downloads an https source.url, so the rock is packed
# offline from a copy of the rockspec whose url is the local tarball
# (file://), and the release rockspec then replaces that copy inside the
# rock: `luarocks install atai-X.Y.Z-1.src.rock` unpacks the tarball found
# beside the rockspec and contacts nothing. The tarball holds what HEAD
# holds: uncommitted changes are not in it (a warning says so).
set -eu
cd "$(dirname "$0")/.."

version=${1:-}
atai_version() { sed -n 's/^#define ATAI_VERSION "\(.*\)"$/\1/p'; }
current=$(atai_version < src/atai.h)
# The tarball is HEAD's: its src/atai.h is the one that counts.
committed=$(git show HEAD:src/atai.h | atai_version)
if [ -z "$version" ]; then
  echo "dist: say the version: make dist VERSION=$current (ATAI_VERSION of src/atai.h)" >&2
  exit 2
fi
if [ "$version" != "$current" ]; then
  echo "dist: VERSION=$version but src/atai.h has ATAI_VERSION \"$current\";" \
    "change the version there (and CHANGELOG.md) first" >&2
  exit 1
fi
if [ "$version" != "$committed" ]; then
  echo "dist: src/atai.h says $version but HEAD's says \"$committed\": commit it first" >&2
  exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  echo "dist: warning: uncommitted changes are not in the tarball (it is git archive HEAD)" >&2
fi

name=atai-$version
tarball=$name.tar.gz
rockspec=$name-1.rockspec
rock=$name-1.src.rock
mkdir -p dist
rm -f "dist/$tarball" "dist/$rockspec" "dist/$rock" dist/SHA256SUMS

# gzip -n: no name or time stamp in the gzip header, so the same commit
# gives the same bytes.
git archive --format=tar --prefix="$name/" HEAD | gzip -n -9 > "dist/$tarball"
md5=$(md5sum "dist/$tarball" | cut -d' ' -f1)
lua5.4 scripts/gen_rockspec.lua dist "$md5" >/dev/null

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
lua5.4 scripts/gen_rockspec.lua --url "file://$(pwd)/dist/$tarball" "$tmp" "$md5" >/dev/null
(cd "$tmp" && luarocks pack "$rockspec" >/dev/null)
# The rock's rockspec becomes the release one (same name inside the zip).
(cd dist && zip -q "$tmp/$rock" "$rockspec")
unzip -p "$tmp/$rock" "$rockspec" | cmp -s - "dist/$rockspec" ||
  { echo "dist: the rockspec inside $rock is not dist/$rockspec" >&2; exit 1; }
mv "$tmp/$rock" "dist/$rock"

(cd dist && sha256sum "$tarball" "$rockspec" "$rock" > SHA256SUMS)
echo "dist: $version"
(cd dist && ls -l "$tarball" "$rockspec" "$rock" SHA256SUMS | awk '{ printf "  %-28s %8d bytes\n", $9, $5 }')
