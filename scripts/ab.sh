#!/usr/bin/env bash
# In-process speed A/B of the working tree's libtern against another revision's:
#   scripts/ab.sh BASE_REV [ROUNDS] [THREADS]
# Builds BASE_REV's shared library in a temporary worktree (its own target/), builds this tree's,
# and runs benches/ab/ab_gemm.c with both loaded in one process (see that file for the method).
# Exits non-zero if any output differs bit for bit.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
base=${1:?usage: scripts/ab.sh BASE_REV [ROUNDS] [THREADS]}
rounds=${2:-7}
threads=${3:-0}
export PATH="$HOME/.cargo/bin:$PATH"
work=${TERN_AB_DIR:-${TMPDIR:-/tmp}/tern-ab}
mkdir -p "$work"
rev=$(git -C "$root" rev-parse --verify "$base^{commit}")
if [ ! -d "$work/base-$rev" ]; then
    git -C "$root" worktree add --detach "$work/base-$rev" "$rev" > /dev/null
fi
(cd "$work/base-$rev" && cargo build --release --lib --quiet)
(cd "$root" && cargo build --release --lib --quiet)
cc -O2 -Wall -Wextra -I"$root/include" "$root/benches/ab/ab_gemm.c" -o "$work/ab_gemm" -ldl
echo "A = $base ($rev), B = working tree ($(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo ', modified'))"
"$work/ab_gemm" "$work/base-$rev/target/release/libtern.so" "$root/target/release/libtern.so" "$rounds" "$threads"
