#!/usr/bin/env python3
"""Writes a llama.cpp `bitnet`-architecture GGUF with random ternary weights, for tests and
benchmarks of the CPU_TERN buffer type.

    make_model.py OUT.gguf --type tq2_0 --size tiny      # CI: 2 layers, built in about a second
    make_model.py OUT.gguf --type tq1_0 --size 2b        # BitNet-b1.58-2B-4T's shapes

Every attention/FFN projection is ternary (TQ1_0 or TQ2_0), with one f16 scale per 256-weight
block and the per-tensor `*.scale` factors of llama.cpp's bitnet graph; the token embedding
(tied to the output, as in BitNet-b1.58-2B-4T) is F16 and the norms F32. The same seed gives the
same ternary values and scales whatever the type: values are drawn first, then encoded, and
both encodings hold them exactly (a block's scale is its largest |w|, an f16 value).

The vocabulary is a SentencePiece-style ("llama") one that llama.cpp accepts: <unk>, <s>, </s>,
the 256 byte tokens (so any text tokenizes), then filler pieces up to the vocabulary size.

Needs numpy and gguf-py (`pip install gguf`, or the pinned llama.cpp tree's gguf-py on
PYTHONPATH).
"""

import argparse
import sys

import numpy as np

import gguf

SIZES = {
    # name: layers, hidden, ffn, heads, kv heads, vocab, context
    "tiny": dict(n_layer=2, n_embd=256, n_ff=512, n_head=4, n_head_kv=2, n_vocab=512, n_ctx=512),
    # microsoft/bitnet-b1.58-2B-4T
    "2b": dict(n_layer=30, n_embd=2560, n_ff=6912, n_head=20, n_head_kv=5, n_vocab=128256, n_ctx=4096),
}

QTYPES = {"tq1_0": gguf.GGMLQuantizationType.TQ1_0, "tq2_0": gguf.GGMLQuantizationType.TQ2_0}
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--type", choices=sorted(QTYPES), default="tq2_0")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--scales", choices=["block", "tensor"], default="block",
                    help="one scale per 256-block (default) or one per tensor (convertible to I2_S)")
    args = ap.parse_args()

    h = SIZES[args.size]
    qtype = QTYPES[args.type]
    rng = np.random.default_rng(args.seed)
    arch = "bitnet"
    n_embd, n_ff = h["n_embd"], h["n_ff"]
    head_dim = n_embd // h["n_head"]
    n_embd_kv = head_dim * h["n_head_kv"]

    w = gguf.GGUFWriter(args.out, arch)
    w.add_name(f"tern-random-bitnet-{args.size}-{args.type}")
    w.add_file_type(gguf.LlamaFileType.MOSTLY_TQ1_0 if args.type == "tq1_0" else gguf.LlamaFileType.MOSTLY_TQ2_0)
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
        wt = ternary_weight(rng, rows, cols, args.scales == "tensor")
        w.add_tensor(f"{name}.weight", gguf.quants.quantize(wt, qtype), raw_dtype=qtype)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
