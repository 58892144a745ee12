#!/usr/bin/env bash
# llama-bench, stock llama.cpp vs the CPU_TERN build, on random bitnet models (BitNet-b1.58-2B-4T's
# shapes by default).
#
#   bench.sh STOCK_BUILD TERN_BUILD [MODEL_DIR]
#
# STOCK_BUILD / TERN_BUILD: build directories of build.sh --stock / build.sh. MODEL_DIR (default
# ~/.cache/tern/llama.cpp/models) receives bitnet-SIZE-TYPE-lq.gguf for each type if missing:
# make_model.py's f16 model (same seed) quantized by STOCK_BUILD's llama-quantize, so that every
# type has the same ternary values and the same other tensors (Q6_K token embedding / output head,
# F32 norms) and the types compare on their ternary mat-muls alone.
# env: ROUNDS (default 3), THREADS (default "1 2"), TYPES (default "tq1_0 tq2_0"; also q2_0,
#      q1_0), SIZE (default 2b; mid: 8 layers of hidden 1024, for stock's slow Q2_0), PP (128),
#      TG (32).
# Each round runs every (type, threads) once on stock and once on tern (one llama-bench process
# each, pp and tg), alternating which build goes first, so that slow drifts of the machine hit
# both alike; each test is one repetition after llama-bench's own warm-up. Prints per-run results, then medians and
# tern/stock ratios. The tern runs also report (GGML_TERN_STATS) the time spent in tern's
# mat-muls, shown as a share of the run; stock's ternary mat-mul time is estimated as its total
# minus the tern build's non-mat-mul time (the rest of the graph is the same code in both). With
# q2_0 / q1_0 and tq2_0 among the types, it also prints tern's time for each against tern's TQ2_0.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ $# -lt 2 ]]; then
    echo "usage: $0 STOCK_BUILD TERN_BUILD [MODEL_DIR]" >&2
    exit 2
fi
stock="$1"
tern="$2"
models="${3:-${TERN_CACHE_DIR:-$HOME/.cache/tern}/llama.cpp/models}"
rounds="${ROUNDS:-3}"
threads="${THREADS:-1 2}"
types="${TYPES:-tq1_0 tq2_0}"
size="${SIZE:-2b}"
mkdir -p "$models"

model_of() { echo "$models/bitnet-$size-$1-lq.gguf"; }
for type in $types; do
    m="$(model_of "$type")"
    if [[ ! -f "$m" ]]; then
        echo "bench.sh: writing $m"
        python3 "$here/make_model.py" "$m.tmp" --type "$type" --size "$size" \
            --llama-quantize "$stock/bin/llama-quantize"
        mv "$m.tmp" "$m"
    fi
done

lscpu | grep -E "^Model name|^CPU\(s\)|^Flags" | sed 's/^Flags:.*\(avx2\).*/Flags: ... avx2 .../' || true
# The tern build loads the libtern it was last linked against: that of the checkout whose
# build.sh or test.sh ran last (builds are cached by the integration files, not by checkout).
tern_lib=$(ldd "$tern/bin/libggml-cpu.so" | awk '/libtern/ {print $3}')
if [[ -z "$tern_lib" || "$tern_lib" == not ]]; then
    echo "bench.sh: $tern/bin/libggml-cpu.so finds no libtern: run build.sh (or test.sh) from" \
        "this checkout again, or set LD_LIBRARY_PATH to a target/release" >&2
    exit 1
fi
echo "libtern: $(readlink -f "$tern_lib")"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

pp="${PP:-128}"
tg="${TG:-32}"

# run BUILD_NAME BUILD_DIR TYPE THREADS: one llama-bench process (one model load) for pp and tg;
# appends "build type threads test t/s tern_ms" for each.
run() {
    local name=$1 dir=$2 type=$3 t=$4 log
    log="$(mktemp)"
    GGML_TERN_STATS=1 "$dir/bin/llama-bench" -m "$(model_of "$type")" -t "$t" -r 1 -p "$pp" -n "$tg" \
        -o csv >"$log.csv" 2>"$log"
    # tern's mat-mul time of the timed repetitions. The stats also cover llama-bench's warm-ups:
    # the pp warm-up runs the same batch again (so half of the multi-token time), the tg warm-up
    # generates one token (so tg/(tg+1) of the one-token time).
    local stats pp_ms tg_ms
    stats=$(sed -n 's/.*one-token calls \([0-9.]*\) ms, [0-9]* multi-token calls ([0-9]* token rows) \([0-9.]*\) ms/\1 \2/p' "$log")
    if [[ -n "$stats" ]]; then
        pp_ms=$(echo "$stats" | awk '{printf "%.1f", $2 / 2}')
        tg_ms=$(echo "$stats" | awk -v n="$tg" '{printf "%.1f", $1 * n / (n + 1)}')
    fi
    python3 - "$log.csv" "$name" "$type" "$t" "${pp_ms:--}" "${tg_ms:--}" <<'PY' | tee -a "$results"
import csv, sys
path, name, typ, t, pp_ms, tg_ms = sys.argv[1:]
for row in csv.DictReader(open(path)):
    if int(row["n_prompt"]) > 0:
        print(name, typ, t, f"pp{row['n_prompt']}", row["avg_ts"], pp_ms)
    else:
        print(name, typ, t, f"tg{row['n_gen']}", row["avg_ts"], tg_ms)
PY
    rm -f "$log" "$log.csv"
}

echo "build type threads test t/s tern_matmul_ms"
for r in $(seq 1 "$rounds"); do
    for type in $types; do
        for t in $threads; do
            if ((r % 2)); then
                run stock "$stock" "$type" "$t"
                run tern "$tern" "$type" "$t"
            else
                run tern "$tern" "$type" "$t"
                run stock "$stock" "$type" "$t"
            fi
        done
    done
done

python3 - "$results" <<'EOF'
import sys, statistics
from collections import defaultdict
ts = defaultdict(list)
ms = defaultdict(list)
for line in open(sys.argv[1]):
    build, typ, t, test, v, m = line.split()
    ts[(build, typ, t, test)].append(float(v))
    if m != "-" and build == "tern":
        ms[(typ, t, test)].append(float(m))
print()
# Medians, and the best run of each (other load on the machine only ever slows a run down, so on a
# shared machine the best of several rounds is the steadier figure).
print(f"{'type':6} {'thr':>3} {'test':6} {'stock t/s':>10} {'tern t/s':>10} {'ratio':>6} {'best: stock':>11} {'tern':>8} {'ratio':>6}   "
      f"{'tern matmul':>11} {'stock matmul (est.)':>19} {'matmul ratio':>12}")
for (build, typ, t, test) in sorted(ts):
    if build != "stock" or ("tern", typ, t, test) not in ts:
        continue
    s = statistics.median(ts[("stock", typ, t, test)])
    n = statistics.median(ts[("tern", typ, t, test)])
    tokens = int(test[2:])
    sb = max(ts[("stock", typ, t, test)])
    nb = max(ts[("tern", typ, t, test)])
    line = f"{typ:6} {t:>3} {test:6} {s:10.2f} {n:10.2f} {n / s:6.2f}x {sb:11.2f} {nb:8.2f} {nb / sb:6.2f}x"
    if ms.get((typ, t, test)):
        m = statistics.median(ms[(typ, t, test)])
        total_tern = 1000 * tokens / n
        total_stock = 1000 * tokens / s
        rest = total_tern - m
        stock_mm = total_stock - rest
        line += (f"   {m:8.1f} ms ({100 * m / total_tern:3.0f}%) {stock_mm:10.1f} ms ({100 * stock_mm / total_stock:3.0f}%)"
                 f" {stock_mm / m:11.2f}x")
    print(line)
tern = {(typ, t, test): v for (build, typ, t, test), v in ts.items() if build == "tern"}
for (typ, t, test), v in sorted(tern.items()):
    ref = tern.get(("tq2_0", t, test))
    if typ in ("q2_0", "q1_0") and ref:
        print(f"tern {typ} vs tern tq2_0, {t} threads, {test}: time {statistics.median(ref) / statistics.median(v):.3f}x "
              f"tq2_0's (medians), {max(ref) / max(v):.3f}x (best runs)")
EOF
