#!/usr/bin/env bash
# Installs what the tests need, only if missing (idempotent; safe to run on every CI job):
#   cmake, pkg-config, a C/C++ compiler, make, binutils (apt-get, as root or through sudo);
#   rustup + stable Rust if there is no cargo at all; rustfmt and clippy; cbindgen 0.29.4;
#   libggml-python (pip: a prebuilt ggml for the conformance tests in examples-c/ggml);
#   golang-go and clang (apt: Go bindings test, Swift module-map check); gguf (pip: gguf-py, the
#   independent GGUF implementation scripts/gguf_roundtrip.py checks tern against);
#   qemu-user, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross (apt) and the Rust target
#   aarch64-unknown-linux-gnu (rustup): the aarch64 tests under qemu; valgrind (apt: memcheck run
#   of the C examples); cargo-fuzz 0.13.2 (cargo install: the short fuzz runs).
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

# --- Go (bindings/go cgo test), clang (-fmodules check of bindings/swift's module map), valgrind
extra=()
command -v go > /dev/null 2>&1 || extra+=(golang-go)
command -v clang > /dev/null 2>&1 || extra+=(clang)
command -v valgrind > /dev/null 2>&1 || extra+=(valgrind)
if [ "${#extra[@]}" -ne 0 ]; then
    echo "setup: installing ${extra[*]} with apt-get"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${extra[@]}"
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

# cargo-fuzz for scripts/fuzz.sh. Stable Rust is enough: the targets run with `-s none` (no
# sanitizer; only sanitizers need nightly), so no nightly toolchain is installed. The install
# compiles 56 crates: about 5 minutes on 2 busy cores, once per machine.
CARGO_FUZZ_VERSION=0.13.2
if [ "$(cargo fuzz --version 2>/dev/null | awk '{print $2}')" != "$CARGO_FUZZ_VERSION" ]; then
    echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION (about 5 minutes)"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# --- aarch64: cross gcc + libc and qemu-user, and the Rust target (scripts/test-all.sh runs the
#     test suite and the C examples for aarch64 under qemu: NEON, dotprod and i8mm kernels) -----
arm=()
command -v qemu-aarch64 > /dev/null 2>&1 || arm+=(qemu-user)
command -v aarch64-linux-gnu-gcc > /dev/null 2>&1 || arm+=(gcc-aarch64-linux-gnu)
command -v aarch64-linux-gnu-objdump > /dev/null 2>&1 || arm+=(binutils-aarch64-linux-gnu)
[ -e /usr/aarch64-linux-gnu/lib/crt1.o ] || arm+=(libc6-dev-arm64-cross)
if [ "${#arm[@]}" -ne 0 ]; then
    echo "setup: installing ${arm[*]} with apt-get (aarch64 tests under qemu)"
    sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends "${arm[@]}"
fi
if [ ! -d "$(rustc --print target-libdir --target aarch64-unknown-linux-gnu 2> /dev/null)" ]; then
    echo "setup: adding the Rust target aarch64-unknown-linux-gnu"
    rustup target add aarch64-unknown-linux-gnu
fi

# --- libggml: the real ggml (prebuilt, CPU) that examples-c/ggml's conformance tests link ------
LIBGGML_PYTHON_VERSION=0.20.2.post1
libggml_version() {
    python3 -c 'import importlib.metadata as m; print(m.version("libggml-python"))' 2>/dev/null
}
if [ "$(libggml_version)" != "$LIBGGML_PYTHON_VERSION" ]; then
    if ! python3 -m pip --version > /dev/null 2>&1; then
        echo "setup: no python3 pip; installing with apt-get"
        sudo=""
        if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
        $sudo apt-get update
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y --no-install-recommends python3-pip
    fi
    echo "setup: installing libggml-python $LIBGGML_PYTHON_VERSION (prebuilt ggml, examples-c/ggml)"
    # PIP_BREAK_SYSTEM_PACKAGES: only matters for a Debian-managed python3 (PEP 668).
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
        --root-user-action=ignore "libggml-python==$LIBGGML_PYTHON_VERSION"
fi

# --- nvcc for the committed-PTX check (scripts/test-all.sh; cuda/build.sh) -------------------
TERN_CUDA_VERSION=$(cat "$(dirname "${BASH_SOURCE[0]}")/../cuda/toolkit-version")
TERN_CUDA_HOME=${TERN_CUDA_HOME:-$HOME/.cache/tern/cuda-$TERN_CUDA_VERSION}
if [ ! -x "$TERN_CUDA_HOME/nvidia/cu13/bin/nvcc" ]; then
    echo "setup: installing nvcc $TERN_CUDA_VERSION (pip wheels, about 330 MB) into $TERN_CUDA_HOME"
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
        --root-user-action=ignore --no-deps --target "$TERN_CUDA_HOME" \
        "nvidia-cuda-nvcc==$TERN_CUDA_VERSION" "nvidia-cuda-crt==$TERN_CUDA_VERSION" \
        "nvidia-nvvm==$TERN_CUDA_VERSION" "nvidia-cuda-runtime==$TERN_CUDA_VERSION"
fi

echo "setup: $(cmake --version | head -1); $(rustc --version); $(cbindgen --version);" \
     "$(cc --version | head -1); libggml-python $(libggml_version)"

# --- gguf-py: the independent GGUF reader/writer of scripts/gguf_roundtrip.py (pulls numpy) ----
GGUF_PY_VERSION=0.19.0
if ! python3 -c 'import gguf, numpy' > /dev/null 2>&1; then
    echo "setup: installing gguf $GGUF_PY_VERSION (pip; scripts/gguf_roundtrip.py)"
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --quiet --disable-pip-version-check \
        --root-user-action=ignore "gguf==$GGUF_PY_VERSION"
fi
echo "setup: $(qemu-aarch64 --version | head -1); $(aarch64-linux-gnu-gcc --version | head -1)"
echo "setup: $(go version 2>/dev/null || echo 'go: none'); $(clang --version 2>/dev/null | head -1);" \
     "gguf-py $(python3 -c 'import importlib.metadata as m; print(m.version("gguf"))' 2>/dev/null)"
