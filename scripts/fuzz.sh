#!/usr/bin/env bash
# Fuzzes the C API's decoders of untrusted bytes (tern_unpack, tern_dequantize,
# tern_matrix_create + one GEMM) with libFuzzer through cargo-fuzz, on stable Rust
# (`-s none`: no sanitizer, which needs nightly). Any crash or TERN_STATUS_PANIC fails.
#   scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 30)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../fuzz"
export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-30}
command -v cargo-fuzz > /dev/null 2>&1 || cargo install cargo-fuzz --locked --version 0.13.2
for target in unpack dequantize matrix_create; do
    echo "== fuzz $target for ${seconds}s"
    cargo fuzz run -s none "$target" -- -max_total_time="$seconds" -max_len=4096
done
