#!/usr/bin/env bash
# Prints the path of the pinned llama.cpp source (llama-cpp-python 0.3.36's vendor/llama.cpp),
# downloading the sdist once (pip download) into ${TERN_CACHE_DIR:-~/.cache/tern}/llama.cpp/.
# With an argument, checks that tree instead and prints it. Either way the tree must match
# pinned.sha256 (the files tern's builds depend on), else this fails naming the differences.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version=0.3.36
cache="${TERN_CACHE_DIR:-$HOME/.cache/tern}/llama.cpp"

if [[ $# -ge 1 ]]; then
    src="$(cd "$1" && pwd)"
else
    mkdir -p "$cache"
    src="$cache/llama-cpp-python-$version/vendor/llama.cpp"
    if [[ ! -f "$src/CMakeLists.txt" ]]; then
        echo "fetch-src.sh: downloading the llama-cpp-python $version sdist (its vendor/llama.cpp)" >&2
        dl="$(mktemp -d)"
        python3 -m pip download --quiet --no-deps --no-binary :all: --no-build-isolation \
            "llama-cpp-python==$version" -d "$dl" >&2
        tar -C "$cache" -xzf "$dl/llama_cpp_python-$version.tar.gz"
        rm -rf "$cache/llama-cpp-python-$version"
        mv "$cache/llama_cpp_python-$version" "$cache/llama-cpp-python-$version"
        rm -rf "$dl"
    fi
fi
if ! (cd "$src" && sha256sum --quiet -c "$here/pinned.sha256") >/dev/null 2>&1; then
    echo "error: $src is not the pinned llama.cpp (llama-cpp-python $version's vendor/llama.cpp," >&2
    echo "       commit 0c1e570), or it was modified:" >&2
    (cd "$src" && sha256sum -c "$here/pinned.sha256" 2>&1 | grep -v ': OK$' | sed 's/^/       /') >&2 || true
    exit 1
fi
echo "$src"
