#!/usr/bin/env python3
"""Writes a llama.cpp `bitnet`-architecture GGUF with random ternary weights, for tests and
benchmarks of the CPU_TERN buffer type.

    make_model.py OUT.gguf --type tq2_0 --size tiny      # CI: 2 layers, built in about a second
    make_model.py OUT.gguf --type tq1_0 --size 2b        # BitNet-b1.58-2B-4T's shapes
    make_model.py OUT.gguf --type q2_0 --llama-quantize STOCK_BUILD/bin/llama-quantize
    make_model.py OUT.gguf --type q2_0 --code3 0.05 --llama-quantize ...   # with code-3 weights

Every attention/FFN projection is ternary, with one f16 scale per 256-weight block and the
per-tensor `*.scale` factors of llama.cpp's bitnet graph; the token embedding (tied to the
output, as in BitNet-b1.58-2B-4T) is F16 and the norms F32. The same seed gives the same ternary
values and scales whatever the type: values are drawn first, then encoded.

* tq1_0 / tq2_0 are written here (gguf-py's quantizers); they hold the values exactly (a block's
  scale is its largest |w|, an f16 value). With --llama-quantize they are made as q2_0 / q1_0
  below instead (the same TQ bytes, but a Q6_K token embedding): models of all four types then
  differ in their ternary tensors only.
* f16 writes the projections as F16 (ternary value x f16 scale: exact).
* q2_0 / q1_0 are what users get: the f16 model quantized by the given (stock) `llama-quantize
  IN OUT Q2_0|Q1_0`. Q2_0 (d = max|w| per 64 weights) holds the ternary values exactly, so a q2_0
  and a tq2_0 model of the same seed have the same weights; Q1_0 (signs times mean|w| per 128)
  does not. llama-quantize also retypes the token embedding (tied: also the output head) to
  Q6_K, and leaves the norms and `*.scale` vectors F32.
* --code3 FRACTION (q2_0 only) then sets that fraction of the projections' 2-bit codes to 3
  (value +2d): valid Q2_0 data that ggml's quantizer never writes.

The vocabulary is a SentencePiece-style ("llama") one that llama.cpp accepts: <unk>, <s>, </s>,
the 256 byte tokens (so any text tokenizes), then filler pieces up to the vocabulary size.

Needs numpy and gguf-py (`pip install gguf`, or the pinned llama.cpp tree's gguf-py on
PYTHONPATH).
"""

import argparse
import os
import subprocess
import sys

import numpy as np

import gguf

SIZES = {
    # name: layers, hidden, ffn, heads, kv heads, vocab, context
    "tiny": dict(n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=512, n_ctx=512),
    # 90M ternary weights: a model stock ggml's scalar Q2_0 loop still runs in a few minutes
    "mid": dict(n_layer=8, n_embd=1024, n_ff=2816, n_head=16, n_head_kv=4, n_vocab=32000, n_ctx=2048),
    # microsoft/bitnet-b1.58-2B-4T
    "2b": dict(n_layer=30, n_embd=2560, n_ff=6912, n_head=20, n_head_kv=5, n_vocab=128256, n_ctx=4096),
}

QTYPES = {"tq1_0": gguf.GGMLQuantizationType.TQ1_0, "tq2_0": gguf.GGMLQuantizationType.TQ2_0}
FILE_TYPES = {"tq1_0": gguf.LlamaFileType.MOSTLY_TQ1_0, "tq2_0": gguf.LlamaFileType.MOSTLY_TQ2_0,
              "f16": gguf.LlamaFileType.MOSTLY_F16}
QUANTIZED = ["q2_0", "q1_0"]  # made by llama-quantize from the f16 model
BLOCK = 256


def ternary_weight(rng: np.random.Generator, rows: int, cols: int, one_scale: bool) -> np.ndarray:
    """rows x cols float32 = ternary values x f16 scales (exactly representable in TQ): one per
    256-block, or with `one_scale` one for the whole tensor (as BitNet checkpoints have, and
    bitnet.cpp's one-scale I2_S format can hold too)."""
    t = rng.integers(-1, 2, size=(rows, cols // BLOCK, BLOCK), dtype=np.int8)
    # Every block gets a nonzero value, so that its scale (= max |w|) is the drawn one.
    t[:, :, 0] = np.where(t[:, :, 0] == 0, 1, t[:, :, 0])
    d = rng.uniform(0.5, 1.5, size=(1, 1, 1) if one_scale else (rows, cols // BLOCK, 1)) / np.sqrt(cols)
    d = d.astype(np.float16).astype(np.float32)
    return (t.astype(np.float32) * d).reshape(rows, cols)


def vocabulary(n_vocab: int):
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * 256
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(tokens) < n_vocab:
        # "▁a", "▁b", ..., "a", "b", ..., then two-letter pieces: real merges for English text.
        n = len(letters)
        if i < n:
            piece = "\u2581" + letters[i]
        elif i < 2 * n:
            piece = letters[i - n]
        else:
            j = i - 2 * n
            piece = letters[(j // n) % n] + letters[j % n] + ("" if j < n * n else str(j // (n * n)))
        tokens.append(piece)
        types.append(gguf.TokenType.NORMAL)
        i += 1
    scores = [0.0] * 3 + [0.0] * 256 + [-float(k) for k in range(len(tokens) - 259)]
    return tokens[:n_vocab], scores[:n_vocab], types[:n_vocab]


def write_model(path: str, size: str, typ: str, seed: int, one_scale: bool) -> None:
    """Writes the model with its projections in `typ` (tq1_0, tq2_0 or f16)."""
    h = SIZES[size]
    rng = np.random.default_rng(seed)
    arch = "bitnet"
    n_embd, n_ff = h["n_embd"], h["n_ff"]
    head_dim = n_embd // h["n_head"]
    n_embd_kv = head_dim * h["n_head_kv"]

    w = gguf.GGUFWriter(path, arch)
    w.add_name(f"tern-random-bitnet-{size}-{typ}")
    w.add_file_type(FILE_TYPES[typ])
    w.add_context_length(h["n_ctx"])
    w.add_embedding_length(n_embd)
    w.add_block_count(h["n_layer"])
    w.add_feed_forward_length(n_ff)
    w.add_head_count(h["n_head"])
    w.add_head_count_kv(h["n_head_kv"])
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(500000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(h["n_vocab"])

    tokens, scores, types = vocabulary(h["n_vocab"])
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_unk_token_id(0)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)

    embd = (rng.standard_normal((h["n_vocab"], n_embd), dtype=np.float32) * 0.5).astype(np.float16)
    w.add_tensor("token_embd.weight", embd)
    w.add_tensor("output_norm.weight", np.ones(n_embd, dtype=np.float32))

    def ternary(name: str, rows: int, cols: int) -> None:
        wt = ternary_weight(rng, rows, cols, one_scale)
        if typ == "f16":
            w.add_tensor(f"{name}.weight", wt.astype(np.float16))
        else:
            w.add_tensor(f"{name}.weight", gguf.quants.quantize(wt, QTYPES[typ]), raw_dtype=QTYPES[typ])
        w.add_tensor(f"{name}.scale", rng.uniform(0.5, 2.0, size=1).astype(np.float32))

    for il in range(h["n_layer"]):
        p = f"blk.{il}"
        w.add_tensor(f"{p}.attn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"{p}.attn_sub_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_norm.weight", np.ones(n_embd, dtype=np.float32))
        w.add_tensor(f"{p}.ffn_sub_norm.weight", np.ones(n_ff, dtype=np.float32))
        ternary(f"{p}.attn_q", n_embd, n_embd)
        ternary(f"{p}.attn_k", n_embd_kv, n_embd)
        ternary(f"{p}.attn_v", n_embd_kv, n_embd)
        ternary(f"{p}.attn_output", n_embd, n_embd)
        ternary(f"{p}.ffn_gate", n_ff, n_embd)
        ternary(f"{p}.ffn_up", n_ff, n_embd)
        ternary(f"{p}.ffn_down", n_embd, n_ff)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def set_code3(path: str, fraction: float, seed: int) -> int:
    """Sets about `fraction` of the 2-bit codes of every Q2_0 tensor in `path` to 3, in place;
    returns how many codes were set. A Q2_0 block is an f16 d, then 16 bytes of four codes each
    (code q means (q - 1)·d)."""
    rng = np.random.default_rng(seed + 1000)
    reader = gguf.GGUFReader(path, "r+")
    n = 0
    for t in reader.tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.Q2_0:
            continue
        blocks = t.data.reshape(-1, 18)  # a view of the memory-mapped file
        pick = rng.random((blocks.shape[0], 16, 4)) < fraction
        shifts = np.array([0, 2, 4, 6], dtype=np.uint8)
        blocks[:, 2:] |= (pick * (np.uint8(3) << shifts)).sum(axis=2).astype(np.uint8)
        n += int(pick.sum())
    reader.data.flush()
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--type", choices=sorted(FILE_TYPES) + QUANTIZED, default="tq2_0")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scales", choices=["block", "tensor"], default="block",
                    help="one scale per 256-block (default) or one per tensor (convertible to I2_S)")
    ap.add_argument("--llama-quantize", metavar="PATH",
                    help="stock llama-quantize: needed for q2_0 / q1_0, used for tq1_0 / tq2_0 too when given")
    ap.add_argument("--code3", type=float, default=0.0, metavar="FRACTION",
                    help="q2_0: set this fraction of the codes to 3 (+2d)")
    args = ap.parse_args()
    if args.code3 and args.type != "q2_0":
        ap.error("--code3 is for --type q2_0")
    one_scale = args.scales == "tensor"

    if args.type == "f16" or (args.type in QTYPES and not args.llama_quantize):
        write_model(args.out, args.size, args.type, args.seed, one_scale)
        return 0
    if not args.llama_quantize:
        ap.error(f"--type {args.type} needs --llama-quantize PATH (the stock build's llama-quantize)")
    f16 = args.out + ".f16.tmp"
    write_model(f16, args.size, "f16", args.seed, one_scale)
    try:
        run = subprocess.run([args.llama_quantize, f16, args.out, args.type.upper()],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    finally:
        os.remove(f16)
    if run.returncode != 0:
        sys.stderr.write(run.stdout[-4000:])
        sys.stderr.write(f"make_model.py: llama-quantize {args.type.upper()} failed ({run.returncode})\n")
        return 1
    if args.code3:
        n = set_code3(args.out, args.code3, args.seed)
        if n == 0:
            sys.stderr.write("make_model.py: --code3 found no Q2_0 code to set\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
