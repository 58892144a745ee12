#!/usr/bin/env python3
"""GGUF round trips between tern and the independent `gguf` Python package (gguf-py).

1. Generates a small synthetic BitNet-style safetensors model (F32 / F16 / BF16 tensors plus a
   config.json) and, for every format (i2_s, tl1, tl2, tq1_0, tq2_0), runs `tern convert` and
   `tern inspect` on it.
   * TQ1_0 / TQ2_0 files are read by gguf-py: same tensor names, types, shapes and bytes; float
     tensors byte-identical to the source; ternary tensors dequantized by `gguf.quants` equal the
     absmean-ternarized weights (t * f16(scale)) exactly.
   * I2_S / TL1 / TL2 files: gguf-py does not know ids 36/38/42 (and reads 39 as MXFP4), so it is
     expected to refuse them; tern reads them back through its C API (ctypes) and multiplies.
2. gguf-py writes a GGUF with TQ1_0/TQ2_0 tensors quantized by `gguf.quants` (random and ternary
   data) plus KV pairs; tern (C API via ctypes) reads the KVs and tensor infos, dequantizes
   bit-exactly like gguf-py, and tern_gemm agrees with numpy's matmul of the dequantized weights.

usage: gguf_roundtrip.py [--tern target/release/tern] [--lib target/release/libtern.so]
Prints 'N passed, N failed' at the end; exits non-zero on any failure.
"""

import argparse
import ctypes as C
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
    from gguf import GGMLQuantizationType as QT
except ImportError:  # pragma: no cover
    print("gguf_roundtrip: the 'gguf' Python package is missing (pip install gguf)")
    sys.exit(1)

passed = 0
failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
        print(f"ok:   {what}")
    else:
        failed += 1
        print(f"FAIL: {what}")


# --------------------------------------------------------------------------------------------
# synthetic model

def bf16_bytes(a):
    """float32 array -> bf16 bytes (round to nearest even), and the bf16 values as float32."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    back = (r.astype(np.uint32) << 16).view(np.float32)
    return r.tobytes(), back


def write_safetensors(path, tensors):
    """tensors: list of (name, dtype, shape, raw bytes)."""
    header, data, off = {}, b"", 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        data += raw
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + data)


def make_model(d):
    rng = np.random.default_rng(1234)
    hidden, ffn, layers, heads, kv_heads, vocab = 256, 512, 2, 4, 2, 320
    head_dim = hidden // heads
    tensors = []  # (hf name, dtype, shape, raw, float32 values)

    def add(name, shape, dtype):
        w = (rng.standard_normal(shape) * 0.05).astype(np.float32)
        if dtype == "F32":
            raw, vals = w.tobytes(), w
        elif dtype == "F16":
            h = w.astype(np.float16)
            raw, vals = h.tobytes(), h.astype(np.float32)
        else:
            raw, vals = bf16_bytes(w)
        tensors.append((name, dtype, shape, raw, vals.reshape(shape)))

    add("model.embed_tokens.weight", (vocab, hidden), "F16")
    for i in range(layers):
        p = f"model.layers.{i}."
        dt = ["BF16", "F32"][i % 2]
        add(p + "self_attn.q_proj.weight", (hidden, hidden), dt)
        add(p + "self_attn.k_proj.weight", (kv_heads * head_dim, hidden), dt)
        add(p + "self_attn.v_proj.weight", (kv_heads * head_dim, hidden), "F16")
        add(p + "self_attn.o_proj.weight", (hidden, hidden), dt)
        add(p + "mlp.gate_proj.weight", (ffn, hidden), dt)
        add(p + "mlp.up_proj.weight", (ffn, hidden), "F16")
        add(p + "mlp.down_proj.weight", (hidden, ffn), dt)
        add(p + "input_layernorm.weight", (hidden,), "F32")
        add(p + "post_attention_layernorm.weight", (hidden,), "BF16")
        add(p + "self_attn.attn_sub_norm.weight", (hidden,), "F32")
        add(p + "mlp.ffn_sub_norm.weight", (ffn,), "F32")
    add("model.norm.weight", (hidden,), "F32")
    add("lm_head.weight", (vocab, hidden), "BF16")
    write_safetensors(os.path.join(d, "model.safetensors"), [t[:4] for t in tensors])
    cfg = {
        "architectures": ["BitnetForCausalLM"], "model_type": "bitnet", "hidden_size": hidden,
        "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
    }
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return tensors, cfg


HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm",
    "post_attention_layernorm": "ffn_norm", "self_attn.attn_sub_norm": "attn_sub_norm",
    "mlp.ffn_sub_norm": "ffn_sub_norm",
}


def gguf_name(hf):
    fixed = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
             "lm_head.weight": "output.weight"}
    if hf in fixed:
        return fixed[hf]
    rest = hf[len("model.layers."):]
    n, rest = rest.split(".", 1)
    module, suffix = rest.rsplit(".", 1)
    return f"blk.{n}.{HF_TO_GGUF[module]}.{suffix}"


def is_linear(hf):
    return hf.endswith("_proj.weight")


def absmean(w):
    """tern's / bitnet.cpp's absmean ternarization in float32: (ternary, scale)."""
    mean = np.float32(np.abs(w.astype(np.float64)).mean())
    inv = np.float32(1.0) / max(mean, np.float32(1e-5))
    t = np.clip(np.round(w * inv), -1, 1).astype(np.float32)
    return t, np.float32(1.0) / inv


# --------------------------------------------------------------------------------------------
# tern C API through ctypes

class Layout(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("format", C.c_int32), ("variant", C.c_uint32),
                ("tile_rows", C.c_uint32), ("tile_k", C.c_uint32), ("simd_rows", C.c_uint32)]


class GemmOptions(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("compat", C.c_int32), ("row_begin", C.c_int64),
                ("row_end", C.c_int64), ("bias", C.POINTER(C.c_float))]


class GgufTensor(C.Structure):
    _fields_ = [("struct_size", C.c_uint32), ("name", C.c_char_p), ("name_len", C.c_size_t),
                ("ggml_type", C.c_uint32), ("type_name", C.c_char_p), ("n_dims", C.c_uint32),
                ("dims", C.c_int64 * 4), ("file_offset", C.c_uint64), ("nbytes", C.c_uint64),
                ("format", C.c_int32), ("data", C.c_void_p)]


FORMATS = {"i2_s": 1, "tl1": 2, "tl2": 3, "tq1_0": 4, "tq2_0": 5}


class Tern:
    def __init__(self, path):
        self.lib = C.CDLL(path)
        L = self.lib
        L.tern_last_error_message.restype = C.c_char_p
        L.tern_gguf_open.argtypes = [C.c_char_p, C.POINTER(C.c_void_p)]
        L.tern_gguf_close.argtypes = [C.c_void_p]
        L.tern_gguf_find_tensor.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_int64)]
        L.tern_gguf_tensor_info.argtypes = [C.c_void_p, C.c_size_t, C.POINTER(GgufTensor)]
        L.tern_gguf_get_string.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t)]
        L.tern_gguf_get_int.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_int64)]
        L.tern_gguf_get_float.argtypes = [C.c_void_p, C.c_char_p, C.POINTER(C.c_double)]
        L.tern_gguf_get_array_int.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.POINTER(C.c_int64)]
        L.tern_gguf_get_array_string.argtypes = [C.c_void_p, C.c_char_p, C.c_size_t, C.POINTER(C.c_char_p), C.POINTER(C.c_size_t)]
        L.tern_matrix_from_gguf.argtypes = [C.c_void_p, C.c_void_p, C.c_char_p, C.POINTER(C.c_void_p)]
        L.tern_matrix_destroy.argtypes = [C.c_void_p]
        L.tern_gemm.argtypes = [C.c_void_p, C.c_void_p, C.POINTER(C.c_float), C.c_int64, C.c_int64,
                                C.POINTER(C.c_float), C.c_int64, C.POINTER(GemmOptions)]
        L.tern_dequantize.argtypes = [C.POINTER(Layout), C.c_void_p, C.c_size_t, C.c_int64, C.c_int64,
                                      C.POINTER(C.c_float)]

    def ok(self, st, what):
        if st != 0:
            raise RuntimeError(f"{what}: status {st}: {self.lib.tern_last_error_message()}")

    def open(self, path):
        g = C.c_void_p()
        self.ok(self.lib.tern_gguf_open(path.encode(), C.byref(g)), f"tern_gguf_open({path})")
        return g

    def tensor(self, g, name):
        i = C.c_int64()
        self.ok(self.lib.tern_gguf_find_tensor(g, name.encode(), C.byref(i)), "find_tensor")
        if i.value < 0:
            return None
        t = GgufTensor()
        t.struct_size = C.sizeof(GgufTensor)
        self.ok(self.lib.tern_gguf_tensor_info(g, i.value, C.byref(t)), "tensor_info")
        return t

    def get_string(self, g, key):
        p, n = C.c_char_p(), C.c_size_t()
        self.ok(self.lib.tern_gguf_get_string(g, key.encode(), C.byref(p), C.byref(n)), key)
        return C.string_at(p, n.value).decode()

    def get_int(self, g, key):
        v = C.c_int64()
        self.ok(self.lib.tern_gguf_get_int(g, key.encode(), C.byref(v)), key)
        return v.value

    def get_float(self, g, key):
        v = C.c_double()
        self.ok(self.lib.tern_gguf_get_float(g, key.encode(), C.byref(v)), key)
        return v.value

    def gemm(self, g, name, x, compat=0):
        m = C.c_void_p()
        self.ok(self.lib.tern_matrix_from_gguf(None, g, name.encode(), C.byref(m)), f"matrix_from_gguf({name})")
        t = self.tensor(g, name)
        rows = t.dims[1]
        x = np.ascontiguousarray(x, dtype=np.float32)
        y = np.zeros((x.shape[0], rows), dtype=np.float32)
        o = GemmOptions(C.sizeof(GemmOptions), compat, 0, 0, None)
        st = self.lib.tern_gemm(None, m, x.ctypes.data_as(C.POINTER(C.c_float)), x.shape[0], 0,
                                y.ctypes.data_as(C.POINTER(C.c_float)), 0, C.byref(o))
        self.lib.tern_matrix_destroy(m)
        self.ok(st, "tern_gemm")
        return y

    def dequantize(self, fmt, data, rows, cols):
        lay = Layout(C.sizeof(Layout), FORMATS[fmt], 0, 0, 0, 0)
        out = np.zeros((rows, cols), dtype=np.float32)
        buf = np.frombuffer(data, dtype=np.uint8)
        self.ok(self.lib.tern_dequantize(C.byref(lay), buf.ctypes.data_as(C.c_void_p), buf.size, rows, cols,
                                         out.ctypes.data_as(C.POINTER(C.c_float))), "tern_dequantize")
        return out


def rel_err(y, ref):
    return float(np.linalg.norm(y - ref) / max(np.linalg.norm(ref), 1e-30))


# --------------------------------------------------------------------------------------------

def part1(tern_bin, T, d, tensors, cfg):
    model_dir = os.path.join(d, "model")
    os.makedirs(model_dir)
    tensors, cfg = make_model(model_dir)
    rng = np.random.default_rng(7)
    for fmt in FORMATS:
        out = os.path.join(d, f"model-{fmt}.gguf")
        r = subprocess.run([tern_bin, "convert", model_dir, out, "--type", fmt],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"tern convert --type {fmt} (rc {r.returncode}) {r.stderr[-400:] if r.returncode else ''}")
        if r.returncode != 0:
            continue
        check("writing: 100%" in r.stderr, f"{fmt}: convert printed progress")
        r = subprocess.run([tern_bin, "inspect", out], capture_output=True, text=True)
        check(r.returncode == 0 and "sparsity" in r.stdout and "general.architecture" in r.stdout,
              f"tern inspect {fmt} lists KVs, tensors and sparsity")

        if fmt in ("tq1_0", "tq2_0"):
            qt = QT.TQ1_0 if fmt == "tq1_0" else QT.TQ2_0
            rd = gguf.GGUFReader(out)
            by = {t.name: t for t in rd.tensors}
            arch = rd.fields["general.architecture"]
            check(bytes(arch.parts[arch.data[0]]).decode() == "bitnet", f"{fmt}: gguf-py reads general.architecture")
            bc = rd.fields["bitnet.block_count"]
            check(int(bc.parts[bc.data[0]][0]) == cfg["num_hidden_layers"], f"{fmt}: gguf-py reads bitnet.block_count")
            check(len(by) == len(tensors), f"{fmt}: gguf-py sees {len(by)} tensors, expected {len(tensors)}")
            bad = []
            for hf, dtype, shape, raw, vals in tensors:
                t = by.get(gguf_name(hf))
                if t is None:
                    bad.append(f"{hf}: missing")
                    continue
                if list(t.shape) != list(reversed(shape)):
                    bad.append(f"{hf}: shape {list(t.shape)}")
                if is_linear(hf):
                    if t.tensor_type != qt:
                        bad.append(f"{hf}: type {t.tensor_type}")
                        continue
                    deq = gguf.quants.dequantize(np.array(t.data), qt).reshape(shape)
                    tv, s = absmean(vals)
                    ref = tv * np.float32(np.float16(s))
                    if not np.array_equal(deq, ref):
                        bad.append(f"{hf}: dequantized values differ ({np.sum(deq != ref)} elements)")
                else:
                    want = {1: QT.F32} if len(shape) == 1 else {}
                    want_t = want.get(len(shape), {"F32": QT.F32, "F16": QT.F16, "BF16": QT.BF16}[dtype])
                    if t.tensor_type != want_t:
                        bad.append(f"{hf}: type {t.tensor_type.name}, expected {want_t.name}")
                    got = np.array(t.data).tobytes()
                    exp = vals.astype(np.float32).tobytes() if want_t == QT.F32 else raw
                    if got != exp:
                        bad.append(f"{hf}: bytes differ")
            check(not bad, f"{fmt}: gguf-py reads every tensor with the expected type, shape and bytes {bad[:3]}")
        else:
            try:
                gguf.GGUFReader(out)
                refused = False
            except Exception as e:  # noqa: BLE001 - any refusal is the expected outcome
                refused = True
                print(f"      (gguf-py refuses the {fmt} file as expected: {type(e).__name__}: {str(e)[:80]})")
            check(refused, f"{fmt}: gguf-py {gguf.__name__} does not read bitnet.cpp type ids (documented)")

        # tern reads its own file back: every linear layer multiplies like the ternary weights.
        g = T.open(out)
        try:
            worst = 0.0
            for hf, dtype, shape, raw, vals in tensors:
                if not is_linear(hf):
                    continue
                name = gguf_name(hf)
                t = T.tensor(g, name)
                if fmt in ("tl1", "tl2") and T.tensor(g, name + "_scale") is None:
                    check(False, f"{fmt}: {name}_scale companion tensor missing")
                tv, s = absmean(vals)
                x = rng.standard_normal((3, shape[1])).astype(np.float32)
                y = T.gemm(g, name, x)
                worst = max(worst, rel_err(y, x @ (tv * s).T))
                assert t.format == FORMATS[fmt]
            check(worst < 0.02, f"{fmt}: tern_matrix_from_gguf + tern_gemm vs numpy (worst relative error {worst:.2e})")
            check(T.get_string(g, "general.architecture") == "bitnet" and
                  T.get_int(g, "bitnet.embedding_length") == cfg["hidden_size"] and
                  abs(T.get_float(g, "bitnet.attention.layer_norm_rms_epsilon") - 1e-5) < 1e-10,
                  f"{fmt}: tern reads the converter's KVs")
        finally:
            T.lib.tern_gguf_close(g)


def part2(T, d):
    rng = np.random.default_rng(99)
    path = os.path.join(d, "from-gguf-py.gguf")
    w = gguf.GGUFWriter(path, "bitnet")
    w.add_string("general.name", "gguf-py fixture")
    w.add_uint32("bitnet.block_count", 7)
    w.add_int64("test.i64", -1234567890123)
    w.add_float32("test.f32", 0.25)
    w.add_array("test.ints", [1, 2, 3])
    w.add_array("test.strs", ["a", "bc"])
    cases = []
    for qt, fmt in ((QT.TQ1_0, "tq1_0"), (QT.TQ2_0, "tq2_0")):
        for kind in ("random", "ternary"):
            rows, cols = 48, 512
            if kind == "random":
                wf = rng.standard_normal((rows, cols)).astype(np.float32)
            else:
                wf = (rng.integers(-1, 2, (rows, cols)) * 0.03).astype(np.float32)
            q = gguf.quants.quantize(wf, qt)
            name = f"{fmt}.{kind}.weight"
            w.add_tensor(name, q, raw_dtype=qt)
            cases.append((name, fmt, qt, q, rows, cols))
    w.add_tensor("norm.weight", rng.standard_normal(512).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    g = T.open(path)
    try:
        check(T.get_string(g, "general.name") == "gguf-py fixture", "gguf-py file: tern reads a string KV")
        check(T.get_int(g, "bitnet.block_count") == 7 and T.get_int(g, "test.i64") == -1234567890123,
              "gguf-py file: tern reads integer KVs")
        check(T.get_float(g, "test.f32") == 0.25, "gguf-py file: tern reads a float KV")
        v = C.c_int64()
        T.ok(T.lib.tern_gguf_get_array_int(g, b"test.ints", 2, C.byref(v)), "array int")
        p, n = C.c_char_p(), C.c_size_t()
        T.ok(T.lib.tern_gguf_get_array_string(g, b"test.strs", 1, C.byref(p), C.byref(n)), "array str")
        check(v.value == 3 and C.string_at(p, n.value) == b"bc", "gguf-py file: tern reads array KVs")
        for name, fmt, qt, q, rows, cols in cases:
            t = T.tensor(g, name)
            check(t.ggml_type == int(qt) and list(t.dims)[:2] == [cols, rows] and t.nbytes == q.nbytes,
                  f"gguf-py {name}: tern sees type {t.ggml_type}, dims {list(t.dims)[:2]}, {t.nbytes} bytes")
            check(C.string_at(t.data, t.nbytes) == q.tobytes(), f"gguf-py {name}: tern maps the same bytes")
            deq = gguf.quants.dequantize(q, qt).reshape(rows, cols)
            mine = T.dequantize(fmt, q.tobytes(), rows, cols)
            check(np.array_equal(mine, deq), f"gguf-py {name}: tern_dequantize equals gguf.quants.dequantize bit for bit")
            x = rng.standard_normal((5, cols)).astype(np.float32)
            ref = x @ deq.T
            for compat, label in ((0, "DEFAULT"), (3, "GGML")):
                e = rel_err(T.gemm(g, name, x, compat), ref)
                check(e < 0.02, f"gguf-py {name}: tern_gemm ({label}) vs numpy dequantized matmul, relative error {e:.2e}")
        t = T.tensor(g, "norm.weight")
        check(t.ggml_type == 0 and t.format == 0, "gguf-py file: F32 tensor is not ternary")
    finally:
        T.lib.tern_gguf_close(g)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser()
    ap.add_argument("--tern", default=os.path.join(root, "target/release/tern"))
    ap.add_argument("--lib", default=os.path.join(root, "target/release/libtern.so"))
    a = ap.parse_args()
    print(f"gguf-py {getattr(gguf, '__version__', '?')} from {os.path.dirname(gguf.__file__)}; numpy {np.__version__}")
    T = Tern(a.lib)
    with tempfile.TemporaryDirectory() as d:
        try:
            part1(a.tern, T, d, None, None)
        except Exception as e:  # noqa: BLE001
            check(False, f"part 1 raised {type(e).__name__}: {e}")
        try:
            part2(T, d)
        except Exception as e:  # noqa: BLE001
            check(False, f"part 2 raised {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
