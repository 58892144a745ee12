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
cc -O2 -std=c11 -Wall -Wextra -Werror -pedantic "$here/q_conformance.c" -o "$work/q_conformance" \
    -I"$prefix/include" -I"$root/include" -L"$prefix/lib" -lggml -lggml-base -lggml-cpu \
    -L"$target/release" -ltern -Wl,-rpath,"$prefix/lib:$target/release" -lm
"$work/q_conformance"
