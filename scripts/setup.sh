#!/usr/bin/env bash
# Installs what the tests need, only if missing (idempotent; safe to run on every CI job):
#   cmake, pkg-config, a C/C++ compiler, make, binutils (apt-get, as root or through sudo);
#   rustup + stable Rust if there is no cargo at all; rustfmt and clippy; cbindgen 0.29.4.
# Used by .ci/run and by `scripts/test-all.sh --setup`.
set -euo pipefail

export PATH="$HOME/.cargo/bin:$PATH"
CBINDGEN_VERSION=0.29.4

# --- system packages ---------------------------------------------------------------------------
missing=()
for tool in cmake pkg-config cc c++ make nm readelf; do
    command -v "$tool" > /dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -ne 0 ]; then
    echo "setup: missing ${missing[*]}; installing with apt-get"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends \
        cmake pkg-config build-essential binutils
fi

# --- Rust toolchain ---------------------------------------------------------------------------
if ! command -v cargo > /dev/null 2>&1; then
    # No toolchain at all: bootstrap rustup (needs curl and network access).
    echo "setup: no cargo; installing rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
fi
if ! cargo fmt --version > /dev/null 2>&1 || ! cargo clippy --version > /dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
if [ "$(cbindgen --version 2>/dev/null | awk '{print $2}')" != "$CBINDGEN_VERSION" ]; then
    echo "setup: installing cbindgen $CBINDGEN_VERSION (about a minute)"
    cargo install cbindgen --locked --version "$CBINDGEN_VERSION"
fi

echo "setup: $(cmake --version | head -1); $(rustc --version); $(cbindgen --version);" \
     "$(cc --version | head -1)"
