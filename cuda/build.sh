#!/usr/bin/env bash
# Builds tern's GPU code from cuda/tern_kernels.cu into OUTDIR:
#   tern_kernels.ptx          PTX for the virtual arch compute_80 (any driver JITs it for its GPU:
#                             A100 sm_80, H100 sm_90, ...)
#   tern_kernels.sm_80.cubin  SASS for sm_80 (runs on sm_8x), made by ptxas from that PTX
#   tern_kernels.sm_90.cubin  SASS for sm_90 (H100/H200)
# The files committed in cuda/ptx/ are this script's output with the pinned toolkit
# (NVIDIA's PyPI wheels nvidia-cuda-nvcc, -crt, -runtime, nvidia-nvvm == TERN_CUDA_PIP_VERSION in
# scripts/setup.sh); CI rebuilds them and requires identical bytes (scripts/test-all.sh).
#
# usage: cuda/build.sh OUTDIR        env: NVCC (default: nvcc on PATH); ptxas is taken beside it.
set -euo pipefail
if [ $# -ne 1 ]; then echo "usage: $0 OUTDIR" >&2; exit 2; fi
out=$1
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
nvcc=$(command -v "${NVCC:-nvcc}") || { echo "cuda/build.sh: nvcc not found (set NVCC)" >&2; exit 1; }
ptxas=$(dirname "$nvcc")/ptxas
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# --fmad=false: no a*b+c contraction (the kernels also use __fmul_rn/__fadd_rn explicitly), so
# the float epilogue rounds exactly as tern's CPU code does.
(cd "$here" && "$nvcc" -arch=compute_80 -ptx -O3 -std=c++17 --fmad=false \
    -o "$tmp/raw.ptx" tern_kernels.cu)

# nvcc writes the PTX ISA version of its own release (13.5: .version 9.5), which a driver older
# than that release refuses to load. The kernels use nothing newer than PTX ISA 7.0 (CUDA 11.0:
# mma.sync m16n8k32 .s8, target sm_80), so the committed PTX declares 7.0 and loads on every
# driver that supports sm_80; ptxas below re-checks every instruction against that version.
sed -e 's/^\.version [0-9.]*$/.version 7.0/' "$tmp/raw.ptx" > "$out/tern_kernels.ptx"
grep -q '^\.version 7\.0$' "$out/tern_kernels.ptx" || { echo "cuda/build.sh: no .version line" >&2; exit 1; }

for sm in 80 90; do
    "$ptxas" -arch=sm_$sm -O3 -o "$out/tern_kernels.sm_$sm.cubin" "$out/tern_kernels.ptx"
done
echo "cuda/build.sh: $("$nvcc" --version | tail -2 | head -1) -> $out"
ls -l "$out"/tern_kernels.*
