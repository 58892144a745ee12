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
3. GGUF -> GGUF (`tern convert IN.gguf OUT.gguf --type tq2_0`): a bitnet.cpp-style I2_S file
   (arch `bitnet-b1.58`, made by `tern convert` from a packed uint8 + weight_scale checkpoint, the
   way Microsoft's 2B-4T GGUF is made) becomes a TQ2_0 file with `--arch bitnet`; gguf-py reads it,
   its dequantized ternary tensors equal the I2_S source dequantized by tern (C API) exactly, every
   other tensor is byte-identical, keys are renamed only in their arch prefix, general.file_type is
   37, stock ggml's own GGUF parser (libggml-python's libggml-base; skipped with a note when
   missing) accepts it and refuses the I2_S source, and converting back to I2_S gives the source
   file byte for byte. An I2_S file whose scales f16 cannot represent is refused (naming the
   tensor) unless --allow-rounding, which rounds them.
4. Mainline's Q2_0 (id 42) and Q1_0 (id 41): `tern convert` writes both from the safetensors
   model (--quant absmean and ggml-ref); tern_dequantize of the written bytes equals ggml's
   dequantize rule (decoded in numpy from ggml-common.h's block layouts); gguf-py reads each file
   whose type it knows (same type, shapes and bytes; dequantized values equal tern's where
   gguf-py can dequantize the type, else it prints why). gguf-py writes Q1_0 (and Q2_0 where it
   knows the type; else it prints why) from raw blocks with signed scales: tern sees the types,
   the bytes and ggml's values; `tern inspect` names them (42 is not read as TL2); `tern convert`
   to TQ2_0 refuses differing block scales naming the tensor, row and block, and converts a
   single-scale tensor exactly (gguf-py's TQ2_0 dequantization equals the source weights).

usage: gguf_roundtrip.py [--tern target/release/tern] [--lib target/release/libtern.so]
Prints 'N passed, N failed' at the end; exits non-zero on any failure.
"""

import argparse
import ctypes as C
import importlib.metadata
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
        L.tern_gguf_tensor_count.argtypes = [C.c_void_p, C.POINTER(C.c_size_t)]
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

    def tensor_names(self, g):
        n = C.c_size_t()
        self.ok(self.lib.tern_gguf_tensor_count(g, C.byref(n)), "tensor_count")
        out = []
        for i in range(n.value):
            t = GgufTensor()
            t.struct_size = C.sizeof(GgufTensor)
            self.ok(self.lib.tern_gguf_tensor_info(g, i, C.byref(t)), "tensor_info")
            out.append(C.string_at(t.name, t.name_len).decode())
        return out

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
        lay = Layout(C.sizeof(Layout), {**FORMATS, **Q_FORMATS}[fmt], 0, 0, 0, 0)
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


def kv_value(rd, key):
    """A scalar or string KV read by gguf-py."""
    f = rd.fields[key]
    v = f.parts[f.data[0]]
    return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v[0].item()


class GgufInitParams(C.Structure):
    _fields_ = [("no_alloc", C.c_bool), ("ctx", C.c_void_p)]


def stock_ggml_reads(tq2, i2s):
    """Stock ggml's own GGUF parser (libggml-base from `pip install libggml-python`) accepts the
    retyped TQ2_0 file (type ids, sizes, contiguous offsets) and, as documented, not the I2_S one."""
    try:
        import libggml
        import libggml._version  # noqa: F401 - for the version in the message
    except ImportError:
        print("skip: stock ggml GGUF parser check (the libggml Python package is missing: pip install libggml-python)")
        return
    lib = C.CDLL(os.path.join(os.path.dirname(libggml.__file__), "lib64", "libggml-base.so"))
    lib.gguf_init_from_file.restype = C.c_void_p
    lib.gguf_init_from_file.argtypes = [C.c_char_p, GgufInitParams]
    lib.gguf_free.argtypes = [C.c_void_p]
    lib.gguf_get_n_tensors.restype = C.c_int64
    lib.gguf_get_n_tensors.argtypes = [C.c_void_p]
    lib.gguf_get_tensor_name.restype = C.c_char_p
    lib.gguf_get_tensor_name.argtypes = [C.c_void_p, C.c_int64]
    lib.gguf_get_tensor_type.restype = C.c_int
    lib.gguf_get_tensor_type.argtypes = [C.c_void_p, C.c_int64]
    lib.gguf_find_key.restype = C.c_int64
    lib.gguf_find_key.argtypes = [C.c_void_p, C.c_char_p]
    lib.gguf_get_val_u32.restype = C.c_uint32
    lib.gguf_get_val_u32.argtypes = [C.c_void_p, C.c_int64]
    g = lib.gguf_init_from_file(tq2.encode(), GgufInitParams(True, None))
    check(bool(g), f"stock ggml (libggml-python {getattr(libggml, '_version', libggml).__dict__.get('version', '?')}) gguf_init_from_file accepts the retyped TQ2_0 file")
    if g:
        types = {lib.gguf_get_tensor_name(g, i).decode(): lib.gguf_get_tensor_type(g, i)
                 for i in range(lib.gguf_get_n_tensors(g))}
        ft = lib.gguf_get_val_u32(g, lib.gguf_find_key(g, b"general.file_type"))
        check(ft == 37 and types["blk.0.attn_q.weight"] == 35 and types["blk.0.ffn_down.weight"] == 35,
              f"stock ggml sees TQ2_0 (35) projections and general.file_type {ft}")
        lib.gguf_free(g)
    print("      (stock ggml is expected to refuse the I2_S source; its error follows)")
    g = lib.gguf_init_from_file(i2s.encode(), GgufInitParams(True, None))
    check(not g, "stock ggml refuses the bitnet.cpp I2_S source (type 36), which is why TQ2_0 is needed")
    if g:
        lib.gguf_free(g)


def part3(tern_bin, T, d):
    rng = np.random.default_rng(2026)
    model_dir = os.path.join(d, "packed-model")
    os.makedirs(model_dir)
    hidden, ffn = 256, 512
    # A packed BitNet checkpoint (bitnet_cpp.md 2.1): uint8 [rows/4, K] codes + weight_scale.
    # The scales are bf16 values like the real checkpoint's, so f16 holds them exactly.
    linears = [("model.layers.0.self_attn.q_proj", hidden, hidden, 1.3671875),
               ("model.layers.0.self_attn.k_proj", 128, hidden, 0.5078125),
               ("model.layers.0.mlp.up_proj", ffn, hidden, 2.125),
               ("model.layers.0.mlp.down_proj", hidden, ffn, 0.01171875)]
    st = []
    for name, rows, cols, scale in linears:
        codes = rng.integers(0, 3, (4, rows // 4, cols)).astype(np.uint8)
        packed = codes[0] | (codes[1] << 2) | (codes[2] << 4) | (codes[3] << 6)
        st.append((name + ".weight", "U8", (rows // 4, cols), packed.tobytes()))
        st.append((name + ".weight_scale", "F32", (1,), np.float32(scale).tobytes()))
    emb = (rng.standard_normal((320, hidden)) * 0.05).astype(np.float16)
    st.append(("model.embed_tokens.weight", "F16", emb.shape, emb.tobytes()))
    for n in ("model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.attn_sub_norm.weight",
              "model.norm.weight"):
        st.append((n, "F32", (hidden,), rng.standard_normal(hidden).astype(np.float32).tobytes()))
    write_safetensors(os.path.join(model_dir, "model.safetensors"), st)
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump({"architectures": ["BitNetForCausalLM"], "model_type": "bitnet", "hidden_size": hidden,
                   "intermediate_size": ffn, "num_hidden_layers": 1, "num_attention_heads": 4,
                   "num_key_value_heads": 2, "vocab_size": 320, "max_position_embeddings": 4096,
                   "rms_norm_eps": 1e-5, "rope_theta": 500000.0}, f)

    def tern(*args):
        return subprocess.run([tern_bin, "convert", *args], capture_output=True, text=True)

    i2s = os.path.join(d, "packed-i2_s.gguf")
    r = tern(model_dir, i2s, "--type", "i2_s", "--weight-scale", "multiply", "-q")
    check(r.returncode == 0, f"tern convert packed checkpoint -> I2_S {r.stderr[-300:]}".rstrip())
    tq2 = os.path.join(d, "packed-tq2_0.gguf")
    r = tern(i2s, tq2, "--type", "tq2_0", "--arch", "bitnet")
    check(r.returncode == 0 and "I2_S -> TQ2_0" in r.stderr,
          f"tern convert I2_S.gguf -> TQ2_0.gguf --arch bitnet (rc {r.returncode}) {r.stderr[-300:] if r.returncode else ''}")
    if r.returncode != 0:
        return

    rd = gguf.GGUFReader(tq2)
    check(kv_value(rd, "general.architecture") == "bitnet" and kv_value(rd, "general.file_type") == 37,
          "I2_S -> TQ2_0: gguf-py reads architecture 'bitnet' and general.file_type 37 (LLAMA_FTYPE_MOSTLY_TQ2_0)")
    g = T.open(i2s)
    try:
        src_arch = T.get_string(g, "general.architecture")
        check(src_arch == "bitnet-b1.58" and T.get_int(g, "general.file_type") == 40,
              f"I2_S source: bitnet.cpp's architecture and file type ({src_arch})")
        check(kv_value(rd, "bitnet.block_count") == T.get_int(g, "bitnet-b1.58.block_count") and
              kv_value(rd, "bitnet.attention.layer_norm_rms_epsilon") ==
              np.float32(T.get_float(g, "bitnet-b1.58.attention.layer_norm_rms_epsilon")),
              "I2_S -> TQ2_0: hyper-parameters kept under the renamed prefix")
        keys_out = [k for k in rd.fields if not k.startswith("GGUF.")]
        check(all(not k.startswith("bitnet-b1.58.") for k in keys_out), "I2_S -> TQ2_0: no key keeps the old prefix")
        names = T.tensor_names(g)
        check([t.name for t in rd.tensors] == names, "I2_S -> TQ2_0: same tensors in the same order")
        bad = []
        for t in rd.tensors:
            s = T.tensor(g, t.name)
            src = C.string_at(s.data, s.nbytes)
            rows, cols = s.dims[1], s.dims[0]
            if s.format == FORMATS["i2_s"]:
                if t.tensor_type != QT.TQ2_0:
                    bad.append(f"{t.name}: type {t.tensor_type.name}")
                    continue
                deq = gguf.quants.dequantize(np.array(t.data), QT.TQ2_0).reshape(rows, cols)
                ref = T.dequantize("i2_s", src, rows, cols)
                if not np.array_equal(deq, ref):
                    bad.append(f"{t.name}: {np.sum(deq != ref)} values differ")
            elif np.array(t.data).tobytes() != src or int(t.tensor_type) != s.ggml_type:
                bad.append(f"{t.name}: float tensor changed")
        check(not bad and len(rd.tensors) == len(linears) + 4,
              f"I2_S -> TQ2_0: gguf-py's dequantized TQ2_0 equals tern's dequantized I2_S exactly, "
              f"other tensors byte-identical {bad[:3]}")
    finally:
        T.lib.tern_gguf_close(g)

    stock_ggml_reads(tq2, i2s)

    back = os.path.join(d, "packed-back.gguf")
    r = tern(tq2, back, "--type", "i2_s", "--arch", "bitnet-b1.58", "-q")
    with open(i2s, "rb") as a, open(back, "rb") as b:
        same = r.returncode == 0 and a.read() == b.read()
    check(same, f"I2_S -> TQ2_0 -> I2_S gives the source file byte for byte {r.stderr[-300:]}".rstrip())

    # The other way: TQ tensors quantized by gguf-py (ggml's reference quantizer, which stores
    # scale 0 for a block of zeros) become I2_S with the same dequantized values.
    for qt, fmt in ((QT.TQ1_0, "tq1_0"), (QT.TQ2_0, "tq2_0")):
        path = os.path.join(d, f"gguf-py-{fmt}.gguf")
        w = gguf.GGUFWriter(path, "bitnet")
        w.add_string("tokenizer.ggml.model", "gpt2")
        w.add_array("tokenizer.ggml.tokens", ["a", "b", "ab"])
        wf = (rng.integers(-1, 2, (32, 512)) * 0.0625).astype(np.float32)
        wf[3, 256:] = 0  # one all-zero block
        w.add_tensor("blk.0.attn_q.weight", gguf.quants.quantize(wf, qt), raw_dtype=qt)
        w.add_tensor("blk.0.attn_norm.weight", rng.standard_normal(512).astype(np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out = os.path.join(d, f"gguf-py-{fmt}-i2_s.gguf")
        r = tern(path, out, "--type", "i2_s", "-q")
        ok = r.returncode == 0
        if ok:
            g = T.open(out)
            try:
                s = T.tensor(g, "blk.0.attn_q.weight")
                mine = T.dequantize("i2_s", C.string_at(s.data, s.nbytes), 32, 512)
                ok = s.format == FORMATS["i2_s"] and np.array_equal(mine, wf)
            finally:
                T.lib.tern_gguf_close(g)
        check(ok, f"gguf-py {fmt} (scale 0 on a zero block) -> I2_S: same dequantized values {r.stderr[-300:]}".rstrip())
    path = os.path.join(d, "gguf-py-random.gguf")
    w = gguf.GGUFWriter(path, "bitnet")
    w.add_tensor("blk.7.ffn_up.weight", gguf.quants.quantize(rng.standard_normal((32, 512)).astype(np.float32), QT.TQ2_0),
                 raw_dtype=QT.TQ2_0)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    r = tern(path, os.path.join(d, "random-i2_s.gguf"), "--type", "i2_s")
    check(r.returncode != 0 and "blk.7.ffn_up.weight" in r.stderr and "different scales" in r.stderr,
          "TQ2_0 with per-block scales -> I2_S (one scale) is refused, naming the tensor")

    # part 1's I2_S file has absmean f32 scales: f16 cannot hold them.
    absmean_i2s = os.path.join(d, "model-i2_s.gguf")
    out = os.path.join(d, "absmean-tq2_0.gguf")
    r = tern(absmean_i2s, out, "--type", "tq2_0")
    check(r.returncode != 0 and "tensor 'blk." in r.stderr and "--allow-rounding" in r.stderr
          and not os.path.exists(out), f"f32 scales f16 cannot hold are refused, naming the tensor: {r.stderr.strip()[-200:]}")
    r = tern(absmean_i2s, out, "--type", "tq2_0", "--allow-rounding", "-q")
    check(r.returncode == 0, f"--allow-rounding converts them {r.stderr[-300:]}".rstrip())
    if r.returncode != 0:
        return
    rd = gguf.GGUFReader(out)
    g = T.open(absmean_i2s)
    try:
        worst, exact = 0.0, True
        for t in rd.tensors:
            s = T.tensor(g, t.name)
            if s.format != FORMATS["i2_s"]:
                continue
            rows, cols = s.dims[1], s.dims[0]
            src = C.string_at(s.data, s.nbytes)
            scale = np.frombuffer(src, dtype=np.float32, count=1, offset=rows * cols // 4)[0]
            ref = T.dequantize("i2_s", src, rows, cols)
            want = (ref / scale) * np.float32(np.float16(scale))
            deq = gguf.quants.dequantize(np.array(t.data), QT.TQ2_0).reshape(rows, cols)
            exact &= bool(np.array_equal(deq, want))
            worst = max(worst, abs(float(np.float16(scale)) - float(scale)) / float(scale))
        check(exact and 0 < worst < 2 ** -11,
              f"--allow-rounding: gguf-py reads ternary x f16(scale), largest relative scale change {worst:.2e}")
    finally:
        T.lib.tern_gguf_close(g)


Q_FORMATS = {"q2_0": 6, "q1_0": 7}
Q_IDS = {"q2_0": 42, "q1_0": 41}


def ggml_dequantize_q(data, name, rows, cols):
    """ggml's dequantize_row_q2_0 / dequantize_row_q1_0 (ggml-quants.c) in numpy, from the block
    layouts of ggml-common.h: 18-byte blocks, f16 d then 16 bytes; Q2_0 element j is the 2-bit
    code at bits 2*(j%4) of byte j/4 meaning (code-1)*d, Q1_0 element j is bit j%8 of byte j/8
    meaning +d (set) or -d. The reference where gguf-py has no dequantizer for the type."""
    b = np.frombuffer(bytes(data), dtype=np.uint8).reshape(-1, 18)
    d = b[:, :2].copy().view(np.float16).astype(np.float32)
    qs = b[:, 2:]
    if name == "Q2_0":
        q = np.stack([(qs >> (2 * l)) & 3 for l in range(4)], axis=-1).reshape(-1, 64)
        vals = (q.astype(np.int32) - 1).astype(np.float32) * d
    else:
        bits = np.stack([(qs >> l) & 1 for l in range(8)], axis=-1).reshape(-1, 128)
        vals = np.where(bits == 1, d, -d)
    return vals.reshape(rows, cols)


NOTED = set()


def gguf_py_dequantize(raw, qt):
    """gguf-py's dequantized values, or None (with the reason printed once) where it has none."""
    try:
        return gguf.quants.dequantize(raw, qt)
    except NotImplementedError as e:
        if qt in NOTED:
            return None
        NOTED.add(qt)
        print(f"      note: gguf-py {importlib.metadata.version('gguf')} cannot dequantize {qt.name} "
              f"({e}); tern's values are compared with ggml's block layout decoded in numpy instead")
        return None


def part4(tern_bin, T, d):
    """Mainline's Q2_0 / Q1_0: files tern writes, read by gguf-py; files gguf-py writes, read by tern."""
    model_dir = os.path.join(d, "q-model")
    os.makedirs(model_dir)
    tensors, _ = make_model(model_dir)
    linears = [(gguf_name(hf), shape) for hf, _, shape, _, _ in tensors if is_linear(hf)]
    gv = importlib.metadata.version("gguf")
    for fmt, quant in (("q2_0", "absmean"), ("q2_0", "ggml-ref"), ("q1_0", "absmean"), ("q1_0", "ggml-ref")):
        name = fmt.upper()
        out = os.path.join(d, f"model-{fmt}-{quant}.gguf")
        r = subprocess.run([tern_bin, "convert", model_dir, out, "--type", fmt, "--quant", quant, "-q"],
                           capture_output=True, text=True)
        check(r.returncode == 0, f"tern convert --type {fmt} --quant {quant} {r.stderr[-300:]}".rstrip())
        if r.returncode != 0:
            continue
        r = subprocess.run([tern_bin, "inspect", out], capture_output=True, text=True)
        check(r.returncode == 0 and f"{name} ({Q_IDS[fmt]})" in r.stdout and "TL2" not in r.stdout,
              f"tern inspect names {name} ({fmt}, {quant})")
        # tern's own dequantization of its file, the bytes it wrote, via the C API.
        g = T.open(out)
        mine = {}
        try:
            for tname, shape in linears:
                t = T.tensor(g, tname)
                raw = C.string_at(t.data, t.nbytes)
                mine[tname] = (raw, T.dequantize(fmt, raw, shape[0], shape[1]))
        finally:
            T.lib.tern_gguf_close(g)
        bad = [n for n, (raw, deq) in mine.items()
               if not np.array_equal(deq, ggml_dequantize_q(raw, name, *deq.shape))]
        check(not bad, f"{fmt} ({quant}): tern_dequantize equals ggml's dequantize_row_{fmt} rule (numpy) {bad[:3]}")
        qt = getattr(QT, name, None)
        if qt is None:
            print(f"      note: gguf-py {gv} has no {name} type (id 42 is not a GGMLQuantizationType there): "
                  f"it cannot read tern's {name} file")
            try:
                gguf.GGUFReader(out)
                check(False, f"gguf-py {gv} without {name} unexpectedly read the {name} file")
            except Exception as e:  # noqa: BLE001 - the refusal is what this gguf-py can do
                print(f"      (gguf-py refuses it: {type(e).__name__}: {str(e)[:80]})")
            continue
        rd = gguf.GGUFReader(out)
        by = {t.name: t for t in rd.tensors}
        wrong, compared = [], False
        for tname, shape in linears:
            t = by.get(tname)
            raw, deq = mine[tname]
            if t is None or t.tensor_type != qt or list(t.shape) != list(reversed(shape)):
                wrong.append(f"{tname}: {None if t is None else (t.tensor_type, list(t.shape))}")
                continue
            if np.array(t.data).tobytes() != raw:
                wrong.append(f"{tname}: bytes differ")
                continue
            theirs = gguf_py_dequantize(np.array(t.data), qt)
            compared |= theirs is not None
            if theirs is not None and not np.array_equal(theirs.reshape(shape), deq):
                wrong.append(f"{tname}: gguf-py's dequantized values differ")
        check(not wrong, f"{fmt} ({quant}): gguf-py {gv} reads tern's {name} tensors: type {int(qt)}, shapes, "
                         f"bytes{' and dequantized values' if compared else ''} {wrong[:3]}")

    # gguf-py writes Q1_0 (and Q2_0 where it knows it) from raw blocks: random signed f16 scales
    # (ggml accepts any finite d) and codes; one tensor with a single scale, which converts.
    rng = np.random.default_rng(41)
    for name, block in (("Q1_0", 128), ("Q2_0", 64)):
        qt = getattr(QT, name, None)
        if qt is None:
            print(f"      note: gguf-py {gv} has no {name} type, so it cannot write {name}; "
                  "tern reads and writes it (tests/gguf.rs, tests/q_formats.rs)")
            continue
        rows, cols = 32, 512
        nb = rows * cols // block
        d_rand = (rng.standard_normal(nb) * 0.1).astype(np.float16)
        d_one = np.full(nb, 0.125, dtype=np.float16)
        codes = rng.integers(0, 256, (nb, 16), dtype=np.uint8)
        if name == "Q2_0":  # codes 0..2 only for the convertible tensor (3 = +2 stays in Q2_0)
            safe = codes & 0b01010101
        else:
            safe = codes
        blocks = lambda dv, c: np.concatenate([dv.view(np.uint8).reshape(nb, 2), c], axis=1)  # noqa: E731
        path = os.path.join(d, f"gguf-py-{name}.gguf")
        w = gguf.GGUFWriter(path, "bitnet")
        w.add_tensor("blk.0.ffn_down.weight", blocks(d_rand, codes).reshape(rows, -1), raw_dtype=qt)
        w.add_tensor("blk.0.ffn_up.weight", blocks(d_one, safe).reshape(rows, -1), raw_dtype=qt)
        w.add_tensor("output_norm.weight", np.ones(512, dtype=np.float32))
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        fmt = name.lower()
        g = T.open(path)
        try:
            for tname, dv, c in (("blk.0.ffn_down.weight", d_rand, codes), ("blk.0.ffn_up.weight", d_one, safe)):
                t = T.tensor(g, tname)
                raw = C.string_at(t.data, t.nbytes)
                check(t.ggml_type == int(qt) and t.format == Q_FORMATS[fmt] and raw == blocks(dv, c).tobytes(),
                      f"gguf-py's {name} {tname}: tern sees type {t.ggml_type}, format {t.format}, the same bytes")
                deq = T.dequantize(fmt, raw, rows, cols)
                check(np.array_equal(deq, ggml_dequantize_q(raw, name, rows, cols)),
                      f"gguf-py's {name} {tname}: tern_dequantize equals ggml's rule (numpy)")
        finally:
            T.lib.tern_gguf_close(g)
        r = subprocess.run([tern_bin, "inspect", path], capture_output=True, text=True)
        check(r.returncode == 0 and name in r.stdout and "TL2" not in r.stdout,
              f"tern inspect opens gguf-py's {name} file and names the type {r.stderr[-300:]}".rstrip())
        # Random per-block scales cannot share TQ2_0's 256-element scale: refused, naming the place.
        r = subprocess.run([tern_bin, "convert", path, os.path.join(d, f"{name}-out.gguf"), "--type", "tq2_0"],
                           capture_output=True, text=True)
        check(r.returncode != 0 and "blk.0.ffn_down.weight" in r.stderr and "row 0, block" in r.stderr,
              f"tern convert {name} -> TQ2_0 refuses differing block scales, naming tensor, row and block")
        ok_path = os.path.join(d, f"gguf-py-{name}-one.gguf")
        w = gguf.GGUFWriter(ok_path, "bitnet")
        w.add_tensor("blk.0.ffn_up.weight", blocks(d_one, safe).reshape(rows, -1), raw_dtype=qt)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        out = os.path.join(d, f"{name}-tq2_0.gguf")
        r = subprocess.run([tern_bin, "convert", ok_path, out, "--type", "tq2_0", "-q"], capture_output=True, text=True)
        check(r.returncode == 0, f"tern convert {name} (one scale) -> TQ2_0 {r.stderr[-300:]}".rstrip())
        if r.returncode == 0:
            rd = gguf.GGUFReader(out)
            t = rd.tensors[0]
            deq = gguf.quants.dequantize(np.array(t.data), QT.TQ2_0).reshape(rows, cols)
            check(np.array_equal(deq, ggml_dequantize_q(blocks(d_one, safe).tobytes(), name, rows, cols)),
                  f"{name} -> TQ2_0: gguf-py's dequantized TQ2_0 equals the {name} weights exactly")


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
        try:
            part3(a.tern, T, d)
        except Exception as e:  # noqa: BLE001
            check(False, f"part 3 raised {type(e).__name__}: {e}")
        try:
            part4(a.tern, T, d)
        except Exception as e:  # noqa: BLE001
            check(False, f"part 4 raised {type(e).__name__}: {e}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
