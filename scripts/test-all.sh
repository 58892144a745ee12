#!/usr/bin/env bash
# Run every test of the project (what CI runs after fmt/clippy, see .ci/run):
#   1. cargo test --release
#   2. include/tern.h is what cbindgen generates from the sources (cbindgen --verify)
#   2a. CUDA: cuda/ptx/ is what cuda/build.sh makes from cuda/tern_kernels.cu (pinned nvcc);
#   2b. CUDA: `--features cuda` builds without CUDA, the emulated kernels match the CPU, every
#       tern_cuda_* call returns TERN_STATUS_NO_DEVICE, `tern bench --cuda` fails cleanly
#   3. top-level CMake build (cargo through CMake) + in-tree ctest (C examples, tests/abi, and
#      examples-c/ggml: conformance tests against the real ggml of `pip install libggml-python`;
#      they skip themselves without it, which fails this script when TERN_REQUIRE_GGML=1, as in CI)
#   3a. the C examples (quickstart, errors, golden) under valgrind memcheck: zero errors, no
#      definite leak
#   4. cmake --install into a temporary prefix; installed layout checked
#   5. examples-c configured standalone against that prefix with find_package(tern 0.1):
#      shared and static (TERN_USE_STATIC=ON), ctest, including the pkg-config builds
#   6. find_package(tern 0.2) is rejected (SameMinorVersion) while 0.1 is accepted
#   7. tests/abi/check.sh against the installed library
#   8. GGUF round trips with the independent gguf-py package (scripts/gguf_roundtrip.py: tern
#      convert/inspect output read by gguf-py; gguf-py's TQ1_0/TQ2_0 read and multiplied by tern)
#   9. Go bindings: go vet + go test in bindings/go against the installed prefix (pkg-config)
#  10. Swift bindings: module map + header import with clang -fmodules (Swift itself does not run:
#      no toolchain here)
#  10a. x86 levels below this CPU's: the whole Rust test suite (release) under qemu-x86_64
#      -cpu max (AVX2 + FMA, no AVX-512) and -cpu qemu64 (no SIMD level: the scalar oracle
#      alone), each checking which ISA levels ran and what `tern info` reports
#  11. aarch64 under qemu-user: cargo clippy for aarch64; the whole Rust test suite (release)
#      under qemu -cpu max (NEON + dotprod + i8mm kernels) and -cpu cortex-a53 (NEON only), each
#      checking which ISA levels ran and what `tern info` reports; the C examples cross-built
#      with cmake/aarch64-linux-gnu.cmake and run by ctest under qemu (both CPU models)
#  12. fuzzing, short and bounded: every fuzz target for TERN_FUZZ_SECONDS (default 20) seconds
#      from its committed seed corpus (scripts/fuzz.sh, cargo-fuzz on stable Rust)
#  13. Q2_0 / Q1_0 / Q8_0 raw tier bitwise against the real ggml of the pinned llama.cpp, built
#      alone from its source and cached (examples-c/ggml-pinned/run.sh; required with
#      TERN_REQUIRE_GGML=1)
# Exits non-zero if any step fails and prints a summary.
#
# usage: scripts/test-all.sh [--setup]   --setup first installs what is missing (scripts/setup.sh)
# env: TERN_KEEP_TMP=1 keeps the temporary build/prefix directory (its path is printed);
#      JOBS=N build parallelism (default: nproc).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
export PATH="$HOME/.cargo/bin:$PATH"
case "${1:-}" in
    --setup) "$root/scripts/setup.sh" || { echo "test-all: setup failed"; exit 1; } ;;
    "") ;;
    *) echo "usage: $0 [--setup]" >&2; exit 2 ;;
esac
jobs=${JOBS:-$(nproc 2>/dev/null || echo 4)}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tern-test-all.XXXXXX")
if [ "${TERN_KEEP_TMP:-0}" = 1 ]; then
    echo "temporary directory (kept): $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
build=$tmp/build
prefix=$tmp/prefix
libdir=$prefix/lib

# Use --locked only when Cargo.lock is committed (CI on a clean clone must not re-resolve).
cargo_locked=()
if git -C "$root" ls-files --error-unmatch Cargo.lock > /dev/null 2>&1; then
    cargo_locked=(--locked)
fi

# ---------------------------------------------------------------------------------------------
declare -a summary=()
failed=0
declare -A status=()

# step NAME FUNCTION [REQUIRED_STEP...]: runs FUNCTION unless a required step did not pass.
step() {
    local name=$1 fn=$2; shift 2
    local dep
    for dep in "$@"; do
        if [ "${status[$dep]:-}" != PASS ]; then
            status[$name]=SKIP
            summary+=("SKIP  $name (needs $dep)")
            failed=1
            return
        fi
    done
    echo
    echo "================ $name ================"
    local t0=$SECONDS
    if "$fn"; then
        status[$name]=PASS
        summary+=("PASS  $name ($((SECONDS - t0))s)")
    else
        status[$name]=FAIL
        summary+=("FAIL  $name ($((SECONDS - t0))s)")
        failed=1
    fi
}

# ---------------------------------------------------------------------------------------------
cargo_tests() {
    cargo test --release "${cargo_locked[@]}"
}

# The README's main job, small: every format on every kernel of this CPU, outputs compared
# bit for bit across kernels and against an f64 reference (tern bench exits non-zero otherwise).
bench_smoke() {
    cargo run --release "${cargo_locked[@]}" --bin tern -- bench --quick --shapes 256x512,96x768 --tokens 1,5 &&
        # The interleaved comparison of the per-block formats (ggml's per-block scales).
        cargo run --release "${cargo_locked[@]}" --bin tern -- bench --quick --shapes 128x512 --tokens 1,13 \
            --formats tq2_0,q2_0,q1_0 --vs tq2_0 --ggml-ref
}

header_fresh() {
    local want=0.29.4 have
    have=$(cbindgen --version 2>/dev/null | awk '{print $2}')
    if [ "$have" != "$want" ]; then
        echo "cbindgen $want required (found '${have:-none}'): cargo install cbindgen --locked --version $want"
        return 1
    fi
    if ! cbindgen --config cbindgen.toml --crate tern --output include/tern.h --verify; then
        echo "include/tern.h is stale: regenerate it with"
        echo "  cbindgen --config cbindgen.toml --crate tern --output include/tern.h"
        return 1
    fi
}

cmake_build() {
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DTERN_BUILD_EXAMPLES=ON \
        -DCMAKE_INSTALL_PREFIX="$prefix" -DCMAKE_INSTALL_LIBDIR=lib \
        -DTERN_CARGO_FLAGS="${cargo_locked[*]}" &&
        cmake --build "$build" -j "$jobs"
}

ctest_intree() {
    ctest --test-dir "$build" --output-on-failure -j "$jobs"
}

install_prefix() {
    cmake --install "$build" --prefix "$prefix" || return 1
    local ok=0 f
    for f in include/tern.h lib/libtern.so.0.1.0 lib/libtern.a lib/cmake/tern/ternConfig.cmake \
             lib/cmake/tern/ternConfigVersion.cmake lib/pkgconfig/tern.pc; do
        [ -f "$prefix/$f" ] && [ ! -L "$prefix/$f" ] || { echo "missing regular file: $f"; ok=1; }
    done
    [ "$(readlink "$libdir/libtern.so.0.1")" = libtern.so.0.1.0 ] ||
        { echo "lib/libtern.so.0.1 should be a symlink to libtern.so.0.1.0"; ok=1; }
    [ "$(readlink "$libdir/libtern.so")" = libtern.so.0.1 ] ||
        { echo "lib/libtern.so should be a symlink to libtern.so.0.1"; ok=1; }
    cmp -s "$root/include/tern.h" "$prefix/include/tern.h" || { echo "installed header differs"; ok=1; }
    echo "installed:"; (cd "$prefix" && find . -mindepth 1 | sort | sed 's/^/  /')
    echo "tern.pc:"; sed 's/^/  /' "$libdir/pkgconfig/tern.pc"
    return $ok
}

standalone() { # shared|static
    local dir=$tmp/examples-$1 static=OFF exclude=()
    if [ "$1" = static ]; then static=ON; exclude=(-E pkgconfig); fi
    cmake -S "$root/examples-c" -B "$dir" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$prefix" -DTERN_USE_STATIC=$static &&
        cmake --build "$dir" -j "$jobs" || return 1
    if [ "$1" = static ] && readelf -d "$dir/quickstart" | grep -q 'NEEDED.*libtern'; then
        echo "TERN_USE_STATIC=ON build still depends on libtern.so"; return 1
    fi
    ctest --test-dir "$dir" --output-on-failure -j "$jobs" "${exclude[@]}"
}
standalone_shared() { standalone shared; }
standalone_static() { standalone static; }

version_compat() {
    local p=$tmp/version-check ok=0 v
    mkdir -p "$p"
    for v in 0.1 0.1.0 0.2 1.0 0.0; do
        cat > "$p/CMakeLists.txt" <<CMK
cmake_minimum_required(VERSION 3.22)
project(tern_version_check LANGUAGES C)
find_package(tern $v REQUIRED)
CMK
        rm -rf "$p/build"
        if cmake -S "$p" -B "$p/build" -DCMAKE_PREFIX_PATH="$prefix" > "$p/log" 2>&1; then got=accepted
        else got=rejected; fi
        case $v in 0.1|0.1.0) want=accepted ;; *) want=rejected ;; esac
        if [ "$got" = "$want" ]; then echo "find_package(tern $v): $got (ok)"
        else echo "find_package(tern $v): $got, expected $want"; sed 's/^/  /' "$p/log"; ok=1; fi
    done
    return $ok
}

# examples-c registers ggml_skipped instead of the ggml tests when libggml is not found.
ggml_tests_ran() {
    local listing
    listing=$(ctest --test-dir "$build" -N -L ggml) || return 1
    echo "$listing" | grep 'Test *#'
    if echo "$listing" | grep -q ggml_skipped; then
        if [ "${TERN_REQUIRE_GGML:-0}" = 1 ]; then
            echo "the ggml tests were skipped but TERN_REQUIRE_GGML=1; reason:"
            ctest --test-dir "$build" -R '^ggml_skipped$' -V | grep 'skipped:' | tail -1
            echo "  (pip install libggml-python; scripts/setup.sh does it)"
            return 1
        fi
        echo "ggml tests skipped (see the configure output; pip install libggml-python);" \
             "TERN_REQUIRE_GGML=1 makes this an error"
    fi
}

# The C examples under valgrind memcheck: no invalid access or use of uninitialised memory, and
# no definite leak (--errors-for-leak-kinds=definite); any is an error (--error-exitcode=1). No
# suppression file is needed: "possibly lost" blocks, the stacks of the default context's worker
# threads that live until exit by design, are neither shown nor errors. --fair-sched: valgrind
# runs one thread at a time, and without fair scheduling the workers' brief spin-waits starve
# the others (quickstart takes minutes instead of under one).
valgrind_examples() {
    command -v valgrind > /dev/null || { echo "valgrind not found (scripts/setup.sh installs it)"; return 1; }
    local ex log ok=0
    for ex in quickstart errors golden; do
        log=$tmp/valgrind-$ex.log
        if (cd "$build/examples-c" && valgrind --error-exitcode=1 --leak-check=full \
                --errors-for-leak-kinds=definite --show-leak-kinds=definite --fair-sched=yes \
                "./$ex" > "$log" 2>&1); then
            echo "$ex: $(grep -o 'ERROR SUMMARY: [0-9]* errors' "$log")"
        else
            echo "$ex failed under valgrind:"; tail -60 "$log"; ok=1
        fi
    done
    return $ok
}

fuzz_short() {
    bash "$root/scripts/fuzz.sh" "${TERN_FUZZ_SECONDS:-20}"
}

abi_installed() {
    sh "$root/tests/abi/check.sh" "$libdir/libtern.so.0.1.0" "$prefix/include"
}

gguf_python() {
    python3 -c 'import gguf, numpy' 2> /dev/null ||
        { echo "the gguf Python package is missing (scripts/setup.sh installs it)"; return 1; }
    cargo build --release "${cargo_locked[@]}" --bin tern || return 1
    python3 "$root/scripts/gguf_roundtrip.py" --tern "$root/target/release/tern" \
        --lib "$libdir/libtern.so.0.1.0"
}

go_bindings() {
    command -v go > /dev/null || { echo "go not found (scripts/setup.sh installs golang-go)"; return 1; }
    (cd "$root/bindings/go" &&
        export PKG_CONFIG_PATH="$libdir/pkgconfig" LD_LIBRARY_PATH="$libdir" GOFLAGS=-mod=mod \
            GOPROXY=off GOCACHE="$tmp/gocache" &&
        go vet ./... && go test -count=1 -v ./...)
}

swift_modulemap() {
    sh "$root/bindings/swift/check.sh" "$prefix"
}

# CUDA (feature `cuda`), on any machine: the committed PTX/cubins are what cuda/build.sh makes
# from cuda/tern_kernels.cu with the pinned nvcc (scripts/setup.sh installs it, no GPU needed).
cuda_ptx_fresh() {
    local version home out=$tmp/cuda-ptx f ok=0
    version=$(cat "$root/cuda/toolkit-version")
    home=${TERN_CUDA_HOME:-$HOME/.cache/tern/cuda-$version}
    if [ ! -x "$home/nvidia/cu13/bin/nvcc" ]; then
        echo "nvcc $version not found in $home: run scripts/setup.sh (or set TERN_CUDA_HOME)"
        return 1
    fi
    NVCC=$home/nvidia/cu13/bin/nvcc bash "$root/cuda/build.sh" "$out" || return 1
    for f in tern_kernels.ptx tern_kernels.sm_80.cubin tern_kernels.sm_90.cubin; do
        if cmp -s "$out/$f" "$root/cuda/ptx/$f"; then echo "cuda/ptx/$f: up to date"
        else echo "cuda/ptx/$f is stale: regenerate with NVCC=$home/nvidia/cu13/bin/nvcc cuda/build.sh cuda/ptx"; ok=1; fi
    done
    return $ok
}

# `--features cuda` builds with no CUDA installed (committed PTX, nvcc kept off PATH), the
# emulated kernels match the CPU (tests/cuda_emu.rs), every tern_cuda_* call returns
# TERN_STATUS_NO_DEVICE without a driver (tests/cuda.rs; with a GPU it runs the GPU tests),
# `tern bench --cuda` fails cleanly without a device, and the cuda build exports the same
# tern_cuda_* functions as the default build (whose stubs answer TERN_STATUS_NO_DEVICE; tests/abi
# checks the default build's symbol list).
cuda_feature() {
    local nopath so
    nopath=$(echo "$PATH" | tr ':' '\n' | while read -r d; do [ -x "$d/nvcc" ] || echo "$d"; done | paste -sd:)
    env -u TERN_NVCC PATH="$nopath" cargo build --release "${cargo_locked[@]}" --features cuda || return 1
    env -u TERN_NVCC PATH="$nopath" cargo test --release "${cargo_locked[@]}" --features cuda \
        --test cuda_emu --test cuda -- --nocapture || return 1
    if out=$("$root/target/release/tern" bench --cuda --quick 2>&1); then
        echo "tern bench --cuda ran (a GPU is present):"; echo "$out"
    else
        echo "$out"
        echo "$out" | grep -q "no CUDA device" || { echo "expected a 'no CUDA device' error"; return 1; }
    fi
    so=$root/target/release/libtern.so
    diff <(grep '^tern_cuda_' "$root/tests/abi/exported_symbols.txt") \
         <(nm -D --defined-only "$so" | awk '$2 == "T" { print $3 }' | grep '^tern_cuda_' | LC_ALL=C sort) ||
        { echo "the cuda build's tern_cuda_* exports differ from tests/abi/exported_symbols.txt"; return 1; }
}

# ---------------------------------------------------------------------------------------------
# aarch64 under qemu-user (shared/design/c_abi.md 2.12.4). scripts/setup.sh installs qemu-user,
# the cross gcc and libc, and the Rust target. Cargo builds into target/aarch64 (kept between
# runs; the host's target/release is untouched), in release mode to keep qemu fast. qemu timings
# mean nothing: these steps check correctness (docs/performance.md, "ARM (aarch64)").
arm_triple=aarch64-unknown-linux-gnu
arm_sysroot=${TERN_AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
arm_target_dir=$root/target/aarch64
arm_bin=$arm_target_dir/$arm_triple/release
# info_features WANT ISAS CMD...: runs `CMD... info` (a tern binary, under an emulator) and checks
# that the CPU features it reports are WANT and the ISA levels it can run are ISAS.
info_features() {
    local want=$1 want_isas=$2 out features isas; shift 2
    out=$("$@" info) || { echo "$out"; echo "tern info failed: $*"; return 1; }
    echo "tern info ($*):"
    echo "$out" | grep -E '^(arch|features|isa levels|default)' | sed 's/^/  /'
    features=$(echo "$out" | sed -n 's/^features: *\(.*\) (bits .*/\1/p')
    if [ "$features" != "$want" ]; then
        echo "expected features '$want' from $*, tern info reports '$features'"
        return 1
    fi
    isas=$(echo "$out" | sed -n 's/^isa levels: *\([^(]*[^( ]\).*/\1/p')
    if [ "$isas" != "$want_isas" ]; then
        echo "expected ISA levels '$want_isas' from $*, tern info reports '$isas'"
        return 1
    fi
}

# x86 under qemu-user: the host's test binaries run emulated on CPU models without AVX-512
# (`max`: AVX2 + FMA; no emulator has AVX-VNNI, so the `avxvnni` level runs only on such CPUs and
# its code, EVEX-encoded, on AVX-512 VNNI ones) and without any SIMD level (`qemu64`), so the AVX2
# and scalar-only rows of the ISA table run the whole suite as they would on such machines.
declare -A x86_isas=([max]="scalar avx2" [qemu64]="scalar")
declare -A x86_features=([max]="avx2 fma f16c" [qemu64]="none")

# x86_cargo CPU ARGS...: cargo test for the host, running the test binaries under qemu -cpu CPU.
x86_cargo() {
    local cpu=$1; shift
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="qemu-x86_64 -cpu $cpu" \
    TERN_EXPECT_ISAS=${x86_isas[$cpu]} cargo test --release "${cargo_locked[@]}" "$@"
}

x86_tests() { # qemu CPU model
    local cpu=$1
    command -v qemu-x86_64 > /dev/null ||
        { echo "qemu-x86_64 not found (scripts/setup.sh installs qemu-user)"; return 1; }
    x86_cargo "$cpu" || return 1
    x86_cargo "$cpu" --test kernels kernels_tested -- --nocapture 2>&1 |
        grep 'kernel ISAs tested' || { echo "kernels_tested did not run"; return 1; }
    info_features "${x86_features[$cpu]}" "${x86_isas[$cpu]}" qemu-x86_64 -cpu "$cpu" target/release/tern
}
x86_tests_max() { x86_tests max; }
x86_tests_qemu64() { x86_tests qemu64; }

# Per qemu CPU model: the ISA levels tests/kernels.rs must find (TERN_EXPECT_ISAS) and the
# features `tern info` must report. `max` has NEON + dotprod + i8mm, cortex-a53 NEON only.
declare -A arm_isas=([max]="scalar neon dotprod i8mm" [cortex-a53]="scalar neon")
declare -A arm_features=([max]="neon dotprod i8mm" [cortex-a53]="neon")

arm_tools() {
    local ok=0 t
    for t in qemu-aarch64 aarch64-linux-gnu-gcc; do
        command -v "$t" > /dev/null || { echo "$t not found (scripts/setup.sh installs it)"; ok=1; }
    done
    [ -e "$arm_sysroot/lib/ld-linux-aarch64.so.1" ] ||
        { echo "no aarch64 libc in $arm_sysroot (apt-get install libc6-dev-arm64-cross)"; ok=1; }
    [ -d "$(rustc --print target-libdir --target $arm_triple 2> /dev/null)" ] ||
        { echo "Rust target $arm_triple missing: rustup target add $arm_triple"; ok=1; }
    return $ok
}

# arm_cargo CPU SUBCOMMAND ARGS...: cargo for aarch64, running binaries under qemu -cpu CPU.
arm_cargo() {
    local cpu=$1 sub=$2; shift 2
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $arm_sysroot -cpu $cpu" \
        cargo "$sub" --release "${cargo_locked[@]}" --target "$arm_triple" \
        --target-dir "$arm_target_dir" "$@"
}

arm_clippy() {
    arm_tools || return 1
    cargo clippy "${cargo_locked[@]}" --target "$arm_triple" --target-dir "$arm_target_dir" \
        --all-targets -- -D warnings
}

# The whole Rust test suite under one CPU model, then which kernels it compared with the scalar
# oracle and what `tern info` (tern_cpu_features) reports there.
arm_tests() { # qemu CPU model
    local cpu=$1 skip=()
    arm_tools || return 1
    if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        echo "skipping cli_convert_and_inspect (tests/gguf.rs), cli_retypes_a_gguf" \
             "(tests/gguf_convert.rs) and cli_convert_and_inspect_q_formats (tests/q_formats.rs): they start the aarch64 tern binary as a child process," \
             "which needs qemu-aarch64 registered with binfmt_misc (not here); that binary runs" \
             "under qemu below (tern info)"
        skip=(--skip cli_convert_and_inspect --skip cli_retypes_a_gguf --skip cli_convert_and_inspect_q_formats)
    fi
    TERN_EXPECT_ISAS=${arm_isas[$cpu]} arm_cargo "$cpu" test -- "${skip[@]}" || return 1
    TERN_EXPECT_ISAS=${arm_isas[$cpu]} arm_cargo "$cpu" test --test kernels kernels_tested \
        -- --nocapture 2>&1 | grep 'kernel ISAs tested' || { echo "kernels_tested did not run"; return 1; }
    info_features "${arm_features[$cpu]}" "${arm_isas[$cpu]}" qemu-aarch64 -L "$arm_sysroot" -cpu "$cpu" "$arm_bin/tern"
}
arm_tests_max() { arm_tests max; }
arm_tests_a53() { arm_tests cortex-a53; }

# The C examples: top-level CMake cross build (cmake/aarch64-linux-gnu.cmake, TERN_CARGO_TARGET)
# and ctest with qemu as CMAKE_CROSSCOMPILING_EMULATOR, under both CPU models. quickstart prints
# tern_cpu_features() and the kernel it ran, which are checked. The ggml conformance tests need
# the host's x86 libggml: in a cross build they register as skipped, with the reason.
arm_ctest() {
    arm_tools || return 1
    local dir=$tmp/build-aarch64 cpu log rc ok=0 want_bits want_kernel
    (
        export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
        cmake -S "$root" -B "$dir" --toolchain "$root/cmake/aarch64-linux-gnu.cmake" \
            -DCMAKE_BUILD_TYPE=Release -DTERN_CARGO_TARGET="$arm_triple" -DTERN_INSTALL=OFF \
            -DTERN_CARGO_TARGET_DIR="$arm_target_dir" -DTERN_AARCH64_SYSROOT="$arm_sysroot" \
            -DTERN_CARGO_FLAGS="${cargo_locked[*]}" &&
            cmake --build "$dir" -j "$jobs"
    ) || return 1
    for cpu in max cortex-a53; do
        case $cpu in
            max) want_bits=0x380 want_kernel=i2_s/i8mm ;;
            *) want_bits=0x80 want_kernel=i2_s/neon ;;
        esac
        cmake -S "$root" -B "$dir" -DTERN_QEMU_CPU="$cpu" > /dev/null || return 1
        log=$dir/ctest-$cpu.log
        echo "--- ctest, qemu-aarch64 -cpu $cpu"
        ctest --test-dir "$dir" --output-on-failure -V -j "$jobs" > "$log" 2>&1
        rc=$?
        grep -E 'Test +#|tests passed|did not run|skipped:|cpu features|kernel i2_s' "$log" |
            grep -v 'Test command' | sed 's/^/  /'
        if [ $rc -ne 0 ]; then tail -50 "$log"; ok=1; continue; fi
        grep -q "cpu features $want_bits" "$log" ||
            { echo "quickstart should report cpu features $want_bits under -cpu $cpu"; ok=1; }
        grep -q "kernel $want_kernel" "$log" ||
            { echo "quickstart should run $want_kernel under -cpu $cpu"; ok=1; }
    done
    return $ok
}

# Q2_0 / Q1_0 / Q8_0 raw tier vs the real ggml of the pinned llama.cpp, built alone and cached
# (examples-c/ggml-pinned). Without the pinned source (no network for its first download) this
# is a skip with the reason, and an error when TERN_REQUIRE_GGML=1, as in CI.
ggml_pinned() {
    local why
    if ! why=$("$root/integrations/llama.cpp/fetch-src.sh" 2>&1 >/dev/null); then
        echo "the pinned llama.cpp source is not available: $why"
        if [ "${TERN_REQUIRE_GGML:-0}" = 1 ]; then
            echo "TERN_REQUIRE_GGML=1: the pinned-ggml conformance must run"
            return 1
        fi
        echo "pinned-ggml conformance skipped; TERN_REQUIRE_GGML=1 makes this an error"
        return 0
    fi
    JOBS=$jobs "$root/examples-c/ggml-pinned/run.sh"
}

# tern inside the pinned llama.cpp (CPU_TERN buffer type): logits vs stock, ggml-level mat-muls.
llama_cpp() {
    JOBS=$jobs "$root/integrations/llama.cpp/test.sh"
}

step "cargo test --release"          cargo_tests
step "tern bench --quick (main job)" bench_smoke
step "cbindgen --verify (header)"    header_fresh
step "CUDA PTX matches cuda/*.cu"     cuda_ptx_fresh
step "CUDA feature (no GPU needed)"   cuda_feature
step "cmake build (top-level)"       cmake_build
step "ctest in-tree"                 ctest_intree       "cmake build (top-level)"
step "ggml tests ran (in-tree)"      ggml_tests_ran     "cmake build (top-level)"
step "C examples under valgrind"      valgrind_examples  "cmake build (top-level)"
step "cmake --install"               install_prefix     "cmake build (top-level)"
step "examples-c standalone, shared" standalone_shared  "cmake --install"
step "examples-c standalone, static" standalone_static  "cmake --install"
step "find_package version checks"   version_compat     "cmake --install"
step "tests/abi (installed lib)"     abi_installed      "cmake --install"
step "GGUF round trip (gguf-py)"     gguf_python        "cmake --install"
step "Go bindings (go test)"         go_bindings        "cmake --install"
step "Swift module map (clang)"      swift_modulemap    "cmake --install"
step "x86: cargo test, qemu-x86_64 -cpu max (avx2)"      x86_tests_max
step "x86: cargo test, qemu-x86_64 -cpu qemu64 (scalar)" x86_tests_qemu64
step "aarch64: cargo clippy"         arm_clippy
step "aarch64: cargo test, qemu -cpu max (neon dotprod i8mm)" arm_tests_max
step "aarch64: cargo test, qemu -cpu cortex-a53 (neon)"       arm_tests_a53
step "aarch64: C examples, cross CMake + ctest under qemu"    arm_ctest
step "fuzz every target (short)"     fuzz_short
step "Q2_0/Q1_0 vs pinned ggml (examples-c/ggml-pinned)" ggml_pinned
step "llama.cpp: stock vs CPU_TERN (integrations/llama.cpp)" llama_cpp
summary+=("NOTE  Swift: only the module map/header were checked with clang; swift test did not run (no toolchain)")

echo
echo "================ summary ================"
printf '%s\n' "${summary[@]}"
if [ "$failed" -ne 0 ]; then
    echo "test-all: FAILED"
    exit 1
fi
echo "test-all: all passed"
