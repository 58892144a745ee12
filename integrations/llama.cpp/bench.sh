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
# both alike; each test is one repetition after llama-bench's own warm-up. Prints per-run results,
# then medians and tern/stock ratios (the median of each round's ratio of its two adjacent runs).
# The tern runs also report (GGML_TERN_STATS) the time spent in tern's mat-muls, shown as a share
# of the run; stock's ternary mat-mul time is estimated as its total minus the tern build's
# non-mat-mul time (the rest of the graph is the same code in both).
# With q2_0 / q1_0 and tq2_0 among the types, tern's time for each against tern's TQ2_0 is then
# measured in one llama-bench process whose model list interleaves the types round by round
# (PAIR_ROUNDS rounds, default 3 · ROUNDS, alternating which goes first): the median of the
# ratios of adjacent runs.
# The tern build runs this checkout's libtern (target/release, built here first by cargo, as
# build.sh's CMake does), not the one its RUNPATH names: that of the checkout whose build.sh or
# test.sh linked it last, as builds are cached by the integration files. TERN_LIB_DIR (a folder
# holding libtern.so.0.<minor>) overrides it.
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
root="$(cd "$here/../.." && pwd)"
if [[ -z "${TERN_LIB_DIR:-}" ]]; then
    cargo build --release --lib --quiet --manifest-path "$root/Cargo.toml"
    TERN_LIB_DIR="${CARGO_TARGET_DIR:-$root/target}/release"
    # The loader asks for libtern by its soname, which cargo does not create beside libtern.so
    # (tern's CMake build does, in the same place).
    soname="$(readelf -d "$TERN_LIB_DIR/libtern.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')"
    ln -sfn libtern.so "$TERN_LIB_DIR/$soname"
fi
export LD_LIBRARY_PATH="$TERN_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
tern_lib=$(ldd "$tern/bin/libggml-cpu.so" | awk '/libtern/ && $3 != "not" {print $3}')
if [[ "$(readlink -f "$tern_lib" 2>/dev/null)" != "$(readlink -f "$TERN_LIB_DIR")"/* ]]; then
    echo "bench.sh: $tern/bin/libggml-cpu.so does not load a libtern from $TERN_LIB_DIR" \
        "(it finds: ${tern_lib:-none})" >&2
    exit 1
fi
echo "libtern: $(readlink -f "$tern_lib")"
results="$(mktemp)"
trap 'rm -f "$results"' EXIT

pp="${PP:-128}"
tg="${TG:-32}"

# run ROUND BUILD_NAME BUILD_DIR TYPE THREADS: one llama-bench process (one model load) for pp and
# tg; appends "round build type threads test t/s tern_ms" for each.
run() {
    local round=$1 name=$2 dir=$3 type=$4 t=$5 log
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
    python3 - "$log.csv" "$round" "$name" "$type" "$t" "${pp_ms:--}" "${tg_ms:--}" <<'PY' | tee -a "$results"
import csv, sys
path, r, name, typ, t, pp_ms, tg_ms = sys.argv[1:]
for row in csv.DictReader(open(path)):
    if int(row["n_prompt"]) > 0:
        print(r, name, typ, t, f"pp{row['n_prompt']}", row["avg_ts"], pp_ms)
    else:
        print(r, name, typ, t, f"tg{row['n_gen']}", row["avg_ts"], tg_ms)
PY
    rm -f "$log" "$log.csv"
}

echo "round build type threads test t/s tern_matmul_ms"
for r in $(seq 1 "$rounds"); do
    for type in $types; do
        for t in $threads; do
            if ((r % 2)); then
                run "$r" stock "$stock" "$type" "$t"
                run "$r" tern "$tern" "$type" "$t"
            else
                run "$r" tern "$tern" "$type" "$t"
                run "$r" stock "$stock" "$type" "$t"
            fi
        done
    done
done

python3 - "$results" <<'EOF'
import sys, statistics
from collections import defaultdict
ts = defaultdict(dict)
ms = defaultdict(list)
for line in open(sys.argv[1]):
    r, build, typ, t, test, v, m = line.split()
    ts[(build, typ, t, test)][r] = float(v)
    if m != "-" and build == "tern":
        ms[(typ, t, test)].append(float(m))
print()
# Medians; the ratio is the median of the rounds' ratios (a round's stock and tern runs are
# adjacent); and the best run of each (other load on the machine only ever slows a run down, so
# on a shared machine the best of several rounds is the steadier figure).
print(f"{'type':6} {'thr':>3} {'test':6} {'stock t/s':>10} {'tern t/s':>10} {'ratio':>6} {'best: stock':>11} {'tern':>8} {'ratio':>6}   "
      f"{'tern matmul':>11} {'stock matmul (est.)':>19} {'matmul ratio':>12}")
for (build, typ, t, test) in sorted(ts):
    if build != "stock" or ("tern", typ, t, test) not in ts:
        continue
    stock_runs, tern_runs = ts[("stock", typ, t, test)], ts[("tern", typ, t, test)]
    s = statistics.median(stock_runs.values())
    n = statistics.median(tern_runs.values())
    ratio = statistics.median(tern_runs[r] / stock_runs[r] for r in stock_runs if r in tern_runs)
    tokens = int(test[2:])
    sb = max(stock_runs.values())
    nb = max(tern_runs.values())
    line = f"{typ:6} {t:>3} {test:6} {s:10.2f} {n:10.2f} {ratio:6.2f}x {sb:11.2f} {nb:8.2f} {nb / sb:6.2f}x"
    if ms.get((typ, t, test)):
        m = statistics.median(ms[(typ, t, test)])
        total_tern = 1000 * tokens / n
        total_stock = 1000 * tokens / s
        rest = total_tern - m
        stock_mm = total_stock - rest
        line += (f"   {m:8.1f} ms ({100 * m / total_tern:3.0f}%) {stock_mm:10.1f} ms ({100 * stock_mm / total_stock:3.0f}%)"
                 f" {stock_mm / m:11.2f}x")
    print(line)
EOF

# tern's Q2_0 / Q1_0 against tern's TQ2_0 in one process: llama-bench runs its models in the
# order given (each loaded when its turn comes), every thread count and test of one before the
# next.
compared=()
for type in $types; do
    if [[ $type == q2_0 || $type == q1_0 ]]; then compared+=("$type"); fi
done
if [[ ${#compared[@]} -eq 0 || " $types " != *" tq2_0 "* ]]; then
    exit 0
fi
pair_rounds="${PAIR_ROUNDS:-$((3 * rounds))}"
# Each round puts TQ2_0 next to every compared type (between two of them), the order reversed
# every other round.
round=("${compared[0]}" tq2_0 "${compared[@]:1}")
order=()
for r in $(seq 1 "$pair_rounds"); do
    for ((i = 0; i < ${#round[@]}; i++)); do
        if ((r % 2)); then order+=("${round[i]}"); else order+=("${round[${#round[@]} - 1 - i]}"); fi
    done
done
models_list=""
for type in "${order[@]}"; do models_list+="${models_list:+,}$(model_of "$type")"; done
echo
echo "tern: ${compared[*]} against tq2_0 in one llama-bench process, $pair_rounds rounds"
paired="$(mktemp)"
trap 'rm -f "$results" "$paired" "$paired.log"' EXIT
if ! "$tern/bin/llama-bench" -m "$models_list" -t "$(echo $threads | tr ' ' ',')" -r 1 -p "$pp" \
    -n "$tg" -o csv >"$paired" 2>"$paired.log"; then
    cat "$paired.log" >&2
    exit 1
fi
python3 - "$paired" "${#round[@]}" "${order[@]}" <<'EOF'
import csv, sys, statistics
from collections import defaultdict
path, per_round, order = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = list(csv.DictReader(open(path)))
per_model = len(rows) // len(order)
if per_model == 0 or len(rows) != per_model * len(order):
    sys.exit(f"bench.sh: llama-bench wrote {len(rows)} results for {len(order)} models")
# seconds of each run by (round, type, threads, test); rows come in the order of the models
secs = {}
for i, row in enumerate(rows):
    entry = i // per_model
    test = f"pp{row['n_prompt']}" if int(row["n_prompt"]) > 0 else f"tg{row['n_gen']}"
    secs[(entry // per_round, order[entry], row["n_threads"], test)] = float(row["avg_ns"]) * 1e-9
ratios = defaultdict(list)
for (r, typ, t, test), v in secs.items():
    if typ != "tq2_0":
        ratios[(typ, t, test)].append(v / secs[(r, "tq2_0", t, test)])
for (typ, t, test), rs in sorted(ratios.items()):
    q = statistics.quantiles(rs, n=4, method="inclusive") if len(rs) > 1 else rs * 3
    print(f"tern {typ} vs tern tq2_0, {t} threads, {test}: time {statistics.median(rs):.3f}x tq2_0's "
          f"(median of {len(rs)} rounds; quartiles {q[0]:.3f}, {q[2]:.3f})")
EOF
