#!/usr/bin/env bash
# Builds llama.cpp (the pinned source, see PINNED below) with tern's CPU_TERN buffer type, or
# stock for comparison.
#
#   build.sh [--stock] LLAMA_SRC BUILD_DIR [cmake args...]
#
# LLAMA_SRC: the llama.cpp tree of the llama-cpp-python 0.3.36 sdist (its vendor/llama.cpp), left
# untouched: it is copied to BUILD_DIR/llama.cpp-src and patched there (unless --stock).
# BUILD_DIR: the CMake build directory; llama-completion, llama-bench, llama-perplexity,
# llama-quantize and test-backend-ops end up in BUILD_DIR/bin. CPU only, Release,
# GGML_NATIVE=ON, tern built by cargo through its CMake wrapper (-DGGML_TERN=ON).
# llama-cli is not built: at this commit it is the server-based chat client, and building the
# server would double the build time; llama-completion is the one-shot CLI.
# JOBS (default 2) sets the parallel build jobs. With ccache installed, the stock and tern builds
# share most objects (CCACHE_DIR as usual picks the cache).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tern_root="$(cd "$here/../.." && pwd)"

stock=0
if [[ "${1:-}" == "--stock" ]]; then
    stock=1
    shift
fi
if [[ $# -lt 2 ]]; then
    echo "usage: $0 [--stock] LLAMA_SRC BUILD_DIR [cmake args...]" >&2
    exit 2
fi
src="$(cd "$1" && pwd)"
build="$2"
shift 2

# The pinned commit (0c1e570, as vendored by llama-cpp-python 0.3.36) has no version file: it is
# identified by the SHA-256 of the files the patch touches and of the public headers.
PINNED="$here/pinned.sha256"
if ! (cd "$src" && sha256sum --quiet -c "$PINNED") >/dev/null 2>&1; then
    echo "error: $src is not the pinned llama.cpp (llama-cpp-python 0.3.36's vendor/llama.cpp," >&2
    echo "       commit 0c1e570), or it was modified (an already patched tree is refused):" >&2
    (cd "$src" && sha256sum -c "$PINNED" 2>&1 | grep -v ': OK$' | sed 's/^/       /') >&2 || true
    exit 1
fi

mkdir -p "$build"
build="$(cd "$build" && pwd)"
copy="$build/llama.cpp-src"
patch_file="$here/llama.cpp.patch"
# A fresh copy when the source, the patch or the mode changed; else keep it (incremental builds).
stamp="stock=$stock $(sha256sum "$PINNED" "$patch_file" | sha256sum | cut -c1-16)"
if [[ ! -f "$copy/.tern-stamp" || "$(cat "$copy/.tern-stamp")" != "$stamp" ]]; then
    rm -rf "$copy"
    mkdir -p "$copy"
    # models/ holds test vocabularies (most of the tree's size) that these targets never read.
    tar -C "$src" --exclude=./models --exclude=./.git -cf - . | tar -C "$copy" -xf -
    if [[ $stock -eq 0 ]]; then
        patch -d "$copy" -p1 --forward --quiet <"$patch_file"
    fi
    echo "$stamp" >"$copy/.tern-stamp"
fi

cmake_args=(
    -DCMAKE_BUILD_TYPE=Release
    -DGGML_NATIVE=ON
    -DLLAMA_OPENSSL=OFF
    -DLLAMA_BUILD_TESTS=ON
    -DLLAMA_BUILD_TOOLS=ON
    -DLLAMA_BUILD_EXAMPLES=OFF
    -DLLAMA_BUILD_SERVER=OFF
    -DLLAMA_BUILD_APP=OFF
)
if [[ $stock -eq 0 ]]; then
    # tern's cargo output goes to the repository's own target/ (shared with `cargo build`).
    cmake_args+=(-DGGML_TERN=ON "-DGGML_TERN_SOURCE_DIR=$tern_root"
        "-DTERN_CARGO_TARGET_DIR=${TERN_CARGO_TARGET_DIR:-$tern_root/target}")
fi
# llama.cpp compiles through ccache when it is installed. Paths under BUILD_DIR are hashed
# relative to it, so a stock and a tern build share most objects.
export CCACHE_BASEDIR="$build"

t0=$(date +%s)
cmake -S "$copy" -B "$build" "${cmake_args[@]}" "$@" >"$build/configure.log" 2>&1 || {
    tail -40 "$build/configure.log" >&2
    exit 1
}
cmake --build "$build" -j "${JOBS:-2}" \
    --target llama-completion llama-bench llama-perplexity llama-quantize test-backend-ops
t1=$(date +%s)
echo "build.sh: $([[ $stock -eq 1 ]] && echo stock || echo tern) llama.cpp built in $((t1 - t0)) s -> $build/bin"
