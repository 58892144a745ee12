#!/usr/bin/env bash
# Conformance of tern's Q2_0 / Q1_0 / Q8_0 raw-tier functions against the real ggml of the pinned
# llama.cpp source: builds (or reuses) ggml alone with build_ggml.sh, builds libtern (cargo, release),
# then compiles and runs q_conformance.c against both. Fails on any difference, and when ggml
# cannot be built.
#
#   examples-c/ggml-pinned/run.sh [LLAMA_SRC]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
prefix="$("$here/build_ggml.sh" "$@")"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release --lib)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The loader looks libtern up by its soname (libtern.so.0.<minor>), which cargo does not create
# beside libtern.so (CMake does): link it under that name in the work directory.
soname="$(readelf -d "$target/release/libtern.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
[ -n "$soname" ] || { echo "run.sh: $target/release/libtern.so has no soname" >&2; exit 1; }
ln -s "$target/release/libtern.so" "$work/$soname"
cc -O2 -std=c11 -Wall -Wextra -Werror -pedantic "$here/q_conformance.c" -o "$work/q_conformance" \
    -I"$prefix/include" -I"$root/include" -L"$prefix/lib" -lggml -lggml-base -lggml-cpu \
    -L"$target/release" -ltern -Wl,-rpath,"$prefix/lib:$work" -lm
"$work/q_conformance"
