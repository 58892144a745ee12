#!/usr/bin/env bash
# Builds ggml alone (CPU backend, Release, GGML_NATIVE=ON, no tests or examples) from the pinned
# llama.cpp source, and prints the install prefix (include/, lib/ with libggml, libggml-base,
# libggml-cpu). The build is cached in ${TERN_CACHE_DIR:-~/.cache/tern}/ggml-<key>, the key
# hashing every file of the ggml tree and this script: a changed source or recipe rebuilds.
#
#   build_ggml.sh [LLAMA_SRC]
#
# LLAMA_SRC defaults to the pinned sdist, downloaded once by integrations/llama.cpp/fetch-src.sh.
# JOBS (default 2) sets the parallel build jobs. Progress goes to stderr, the prefix to stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
src="$("$root/integrations/llama.cpp/fetch-src.sh" "$@")"
cache="${TERN_CACHE_DIR:-$HOME/.cache/tern}"

key="$( (cd "$src/ggml" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum;
         cat "$here/build_ggml.sh" "$here/ggml-only/CMakeLists.txt") | sha256sum | cut -c1-16)"
prefix="$cache/ggml-$key"
if [[ -f "$prefix/.complete" ]]; then
    echo "$prefix"
    exit 0
fi
for old in "$cache"/ggml-*; do
    [[ -d "$old" && "$old" != "$prefix" ]] && rm -rf "$old"
done
echo "build_ggml.sh: building ggml from $src/ggml into $prefix" >&2
rm -rf "$prefix"
work="$prefix/build"
cmake -S "$here/ggml-only" -B "$work" -DGGML_SRC="$src/ggml" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DGGML_BUILD_TESTS=OFF -DGGML_BUILD_EXAMPLES=OFF -DGGML_OPENMP=OFF -DBUILD_SHARED_LIBS=ON \
    -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib >&2
cmake --build "$work" -j "${JOBS:-2}" >&2
cmake --install "$work" >&2
rm -rf "$work"
touch "$prefix/.complete"
echo "$prefix"
