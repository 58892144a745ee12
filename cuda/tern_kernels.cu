// tern's CUDA kernels: per-token int8 activation quantization, a W2A8 GEMV (dp4a) for a few
// tokens, and a W2A8 GEMM (int8 tensor cores, mma.sync m16n8k32) for prefill batches.
//
// Built three ways, all from this file:
//   * PTX for compute_80 (+ cubins for sm_80, sm_90) by cuda/build.sh; the Rust side
//     (src/cuda/) loads them through the driver API.
//   * Host C++ with -DTERN_CUDA_EMU and cuda/tern_cuda_emu.h (tests/cuda_emu/), where the same
//     code runs on the CPU, bit-exactly, against tern's scalar oracle.
//
// Weight layout (made on the host by src/cuda/layout.rs from any tern format): row-major
// uint32 words, `kw = Kp/16` words per row (Kp = K rounded up to 128; padding holds zero
// weights). A word holds 16 consecutive weights of a row as 2-bit codes t + code_offset,
// weight e at bit 8*(e%4) + 2*(e/4), so `(word >> 2i) & 0x03030303` is weights 4i..4i+3 as
// bytes. code_offset 2 (codes 1,2,3 for -1,0,+1) is bitnet.cpp's GPU word encoding (spec
// bitnet_cpp.md section 4); a matrix holding a +2 (Q2_0's code 3) has code_offset 1 (codes
// 0..3 for -1..+2). Scales: one per matrix, or one per row and block of group_cols columns
// (64: Q2_0, 128: Q1_0, 256: TQ1_0/TQ2_0; K is a multiple of group_cols).
//
// Arithmetic: dots are exact int32 (sum of t*q, the CPU's `dot_codes - act_sum`); the float
// epilogue is the CPU formula of each compat mode, op for op with round-to-nearest intrinsics
// (no FMA contraction), so outputs equal tern_gemm's bit for bit. Per-block scales:
// sum over blocks g, in increasing order, of f32(dot_g) * w_g, then divided by the activation
// scale (TERN_COMPAT_DEFAULT only).
#ifdef TERN_CUDA_EMU
#include "tern_cuda_emu.h"
#else
#include <stdint.h>
#endif

// Values of TernCudaParams.arith (src/cuda/plan.rs: Arith -> code).
#define TERN_ARITH_DEFAULT 0
#define TERN_ARITH_I2S_CURRENT 1
#define TERN_ARITH_I2S_LEGACY 2
#define TERN_ARITH_LUT 3
// Values of x_dtype / y_dtype (the C API's tern_dtype).
#define TERN_DT_F32 0
#define TERN_DT_F16 1
#define TERN_DT_BF16 2

#define TERN_FULL_MASK 0xffffffffu

// Full unrolling of a loop nvcc would keep rolled: the GEMM's k-step loop, whose body holds the
// per-block fold; rolled, its accumulator arrays would live in local memory, not registers.
// The emulation needs no unrolling.
#ifdef TERN_CUDA_EMU
#define TERN_UNROLL
#else
#define TERN_UNROLL _Pragma("unroll")
#endif

// The one kernel parameter of every kernel (mirrored by `GemmParams` in src/cuda/plan.rs).
struct TernCudaParams {
    const uint32_t *w;      // [M][Kp/16] weight words
    const float *w_scales;  // [1] (one scale) or [M][n_groups]
    const float *bias;      // [M] or NULL
    const void *x;          // T rows of K values, row t at t*x_stride elements (x_dtype)
    int8_t *q;              // [T][Kp] quantized activations (zero-padded)
    float *act_scale;       // [T] 127/absmax (a multiplier; 0 for an all-zero token)
    int32_t *act_sum;       // [T] sum of q
    void *y;                // T rows of M values, row t at t*y_stride elements (y_dtype)
    int32_t *dots;          // [T][M] exact ternary dots, or NULL (tests)
    int64_t x_stride;
    int64_t y_stride;
    int32_t M, K, Kp, T;
    int32_t n_groups;     // 0: one scale per tensor; else K/group_cols blocks per row
    int32_t group_cols;   // columns per scale (64, 128 or 256; 0 with one scale)
    int32_t code_offset;  // weight codes are t + code_offset (2: values -1..1; 1: -1..2)
    int32_t x_dtype, y_dtype, arith;
};

// ---------------------------------------------------------------------------------------------
// Helpers (identical on the device and in the emulation)

__device__ __forceinline__ int tern_imin(int a, int b) { return a < b ? a : b; }

// Four weights (codes t + code_offset in the low 2 bits of each byte) -> four int8 values.
// `offsets` = code_offset in every byte. Each byte 0x80 + c - offset stays in 0x7e..0x83 (no
// borrow across bytes), and the xor turns it into the two's complement byte c - offset.
__device__ __forceinline__ int tern_ternary4(uint32_t shifted_word, uint32_t offsets) {
    const uint32_t c = shifted_word & 0x03030303u;
    return (int)(((c | 0x80808080u) - offsets) ^ 0x80808080u);
}

__device__ __forceinline__ uint32_t tern_code_offsets(const TernCudaParams &p) {
    return 0x01010101u * (uint32_t)p.code_offset;
}

__device__ __forceinline__ float tern_f16_to_f32(uint32_t h) {
    const uint32_t sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        const float v = __fmul_rn(__int2float_rn((int)m), 5.9604644775390625e-08f);  // m * 2^-24, exact
        return sign ? -v : v;
    }
    return __uint_as_float(sign | ((e + 112u) << 23) | (m << 13));
}

// f32 -> f16, round to nearest even (F. Giesen's float_to_half_fast3_rtne); NaN -> 0x7e00.
__device__ __forceinline__ uint32_t tern_f32_to_f16(float v) {
    uint32_t f = __float_as_uint(v);
    const uint32_t sign = f & 0x80000000u;
    f ^= sign;
    uint32_t o;
    if (f >= (143u << 23)) {  // >= 65536 (or inf/NaN): inf, or NaN
        o = f > 0x7f800000u ? 0x7e00u : 0x7c00u;
    } else if (f < (113u << 23)) {  // below 2^-14: f16 subnormal or zero; the add rounds
        const uint32_t magic = 126u << 23;  // 0.5f
        o = __float_as_uint(__fadd_rn(__uint_as_float(f), __uint_as_float(magic))) - magic;
    } else {
        const uint32_t mant_odd = (f >> 13) & 1u;
        f += 0xc8000fffu;  // rebias exponent (15 - 127) << 23, plus rounding bias 0xfff
        f += mant_odd;
        o = f >> 13;
    }
    return (o | (sign >> 16)) & 0xffffu;
}

// f32 -> bf16, round to nearest even; NaN keeps its top bits and is made quiet.
__device__ __forceinline__ uint32_t tern_f32_to_bf16(float v) {
    const uint32_t b = __float_as_uint(v);
    if ((b & 0x7fffffffu) > 0x7f800000u) return (b >> 16) | 0x40u;
    return (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
}

__device__ __forceinline__ float tern_load_x(const TernCudaParams &p, int t, int k) {
    const int64_t i = (int64_t)t * p.x_stride + k;
    if (p.x_dtype == TERN_DT_F32) return ((const float *)p.x)[i];
    const uint32_t h = ((const uint16_t *)p.x)[i];
    if (p.x_dtype == TERN_DT_F16) return tern_f16_to_f32(h);
    return __uint_as_float(h << 16);
}

__device__ __forceinline__ void tern_store_y(const TernCudaParams &p, int t, int r, float v) {
    const int64_t i = (int64_t)t * p.y_stride + r;
    if (p.y_dtype == TERN_DT_F32) {
        ((float *)p.y)[i] = v;
    } else {
        const uint32_t h = p.y_dtype == TERN_DT_F16 ? tern_f32_to_f16(v) : tern_f32_to_bf16(v);
        ((uint16_t *)p.y)[i] = (uint16_t)h;
    }
}

// One output from an exact ternary dot (sum of t*q) of a one-scale matrix: the CPU's
// `Arith::output` with `Arith::post_scale`, operation for operation.
__device__ __forceinline__ float tern_epilogue(int arith, int dot, int sum, float s, float w) {
    switch (arith) {
        case TERN_ARITH_I2S_CURRENT: {  // (f32(dot_codes) - f32(sum)) * (w / s)
            const float d = __fadd_rn(__int2float_rn(dot + sum), -__int2float_rn(sum));
            return __fmul_rn(d, __fdiv_rn(w, s));
        }
        case TERN_ARITH_I2S_LEGACY: {  // ((f32(dot_codes) - f32(sum)) / s) * w
            const float d = __fadd_rn(__int2float_rn(dot + sum), -__int2float_rn(sum));
            return __fmul_rn(__fdiv_rn(d, s), w);
        }
        case TERN_ARITH_LUT:  // f32(dot) / s * w; an all-zero token gives 0
            return s == 0.0f ? 0.0f : __fmul_rn(__fdiv_rn(__int2float_rn(dot), s), w);
        default:  // f32(dot) * (w / s); an all-zero token gives 0
            return s == 0.0f ? 0.0f : __fmul_rn(__int2float_rn(dot), __fdiv_rn(w, s));
    }
}

// Final value for (token t, row r): `dot` = exact dot (one scale), or `facc` = sum over groups
// of f32(S_g) * w_g in group order (per-block scales, TERN_COMPAT_DEFAULT only); plus bias.
__device__ __forceinline__ void tern_finish(const TernCudaParams &p, int t, int r, int dot, float facc) {
    const float s = p.act_scale[t];
    float y;
    if (p.n_groups)
        y = s == 0.0f ? 0.0f : __fdiv_rn(facc, s);
    else
        y = tern_epilogue(p.arith, dot, p.act_sum[t], s, p.w_scales[0]);
    if (p.bias) y = __fadd_rn(y, p.bias[r]);
    tern_store_y(p, t, r, y);
    if (p.dots) p.dots[(int64_t)t * p.M + r] = dot;
}

// ---------------------------------------------------------------------------------------------
// Activation quantization: one block of 256 threads per token.
// q = clamp(round(x * s), -128, 127) with s = 127/absmax: f32 absmax, f32 division, half to
// even (TERN_COMPAT_DEFAULT, LUT, legacy) or half away from zero (bitnet.cpp's I2_S today);
// legacy: s = f32(127 / max(f64 absmax, 1e-5)). Columns K..Kp-1 get 0.

#define TERN_QUANT_THREADS 256

extern "C" __global__ void __launch_bounds__(TERN_QUANT_THREADS) tern_quantize_act(const TernCudaParams p) {
    __shared__ float red_max[TERN_QUANT_THREADS / 32];
    __shared__ int red_sum[TERN_QUANT_THREADS / 32];
    __shared__ float s_scale;
    const int t = blockIdx.x, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;

    float m = 0.0f;
    for (int k = tid; k < p.K; k += TERN_QUANT_THREADS) m = fmaxf(m, fabsf(tern_load_x(p, t, k)));
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(TERN_FULL_MASK, m, o));
    if (lane == 0) red_max[warp] = m;
    __syncthreads();
    if (tid == 0) {
        float a = red_max[0];
        for (int i = 1; i < TERN_QUANT_THREADS / 32; i++) a = fmaxf(a, red_max[i]);
        float s;
        if (p.arith == TERN_ARITH_I2S_LEGACY) {
            const double ad = (double)a > 1e-5 ? (double)a : 1e-5;
            s = (float)__ddiv_rn(127.0, ad);
        } else {
            s = a == 0.0f ? 0.0f : __fdiv_rn(127.0f, a);
        }
        s_scale = s;
        p.act_scale[t] = s;
    }
    __syncthreads();
    const float s = s_scale;
    const bool away = p.arith == TERN_ARITH_I2S_CURRENT;
    int8_t *q = p.q + (int64_t)t * p.Kp;
    int sum = 0;
    for (int k = tid; k < p.Kp; k += TERN_QUANT_THREADS) {
        int v = 0;
        if (k < p.K) {
            const float xs = __fmul_rn(tern_load_x(p, t, k), s);
            float r = away ? roundf(xs) : rintf(xs);
            if (r != r) r = 0.0f;  // NaN -> 0, as Rust's `as i8`
            r = fmaxf(-128.0f, fminf(127.0f, r));
            v = (int)r;
        }
        q[k] = (int8_t)v;
        sum += v;
    }
    for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(TERN_FULL_MASK, sum, o);
    if (lane == 0) red_sum[warp] = sum;
    __syncthreads();
    if (tid == 0) {
        int total = 0;
        for (int i = 0; i < TERN_QUANT_THREADS / 32; i++) total += red_sum[i];
        p.act_sum[t] = total;
    }
}

// ---------------------------------------------------------------------------------------------
// GEMV for a few tokens: one warp per output row, TERN_GEMV_TOKENS tokens per block (grid.y
// covers the rest). Lane l reads words l, l+32, ... of its row (coalesced 128-byte lines),
// decodes each into four int8x4 in registers and runs four __dp4a per token; a butterfly of
// shuffles sums the lanes. Per-block scales: a block is group_cols/16 consecutive lanes (4, 8
// or 16), so each 32-word pass covers 8, 4 or 2 whole blocks; after every pass each block's
// lanes are summed and lane 0 folds the blocks into the float accumulator in block order
// (blocks past n_groups are Kp padding and add nothing).

#define TERN_GEMV_WARPS 4
#define TERN_GEMV_TOKENS 4

extern "C" __global__ void __launch_bounds__(TERN_GEMV_WARPS * 32) tern_gemv(const TernCudaParams p) {
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int row = blockIdx.x * TERN_GEMV_WARPS + warp;
    const int t0 = blockIdx.y * TERN_GEMV_TOKENS;
    if (row >= p.M) return;  // uniform per warp; no block-wide barrier below
    const int nt = tern_imin(TERN_GEMV_TOKENS, p.T - t0);
    const int kw = p.Kp >> 4;
    const uint32_t *wrow = p.w + (int64_t)row * kw;
    const uint32_t offs = tern_code_offsets(p);

    int acc[TERN_GEMV_TOKENS], total[TERN_GEMV_TOKENS];
    float facc[TERN_GEMV_TOKENS];
    for (int j = 0; j < TERN_GEMV_TOKENS; j++) {
        acc[j] = 0;
        total[j] = 0;
        facc[j] = 0.0f;
    }
    for (int base = 0; base < kw; base += 32) {
        const int wi = base + lane;
        if (wi < kw) {
            const uint32_t word = wrow[wi];
            const int w0 = tern_ternary4(word, offs), w1 = tern_ternary4(word >> 2, offs);
            const int w2 = tern_ternary4(word >> 4, offs), w3 = tern_ternary4(word >> 6, offs);
            for (int j = 0; j < TERN_GEMV_TOKENS; j++) {
                if (j < nt) {
                    const int4 a = *(const int4 *)(p.q + (int64_t)(t0 + j) * p.Kp + 16 * wi);
                    acc[j] = __dp4a(w3, a.w, __dp4a(w2, a.z, __dp4a(w1, a.y, __dp4a(w0, a.x, acc[j]))));
                }
            }
        }
        if (p.n_groups) {
            const int gw = p.group_cols >> 4;  // lanes per block: lanes [i*gw, (i+1)*gw) hold block g0 + i
            const int g0 = base / gw;
            for (int j = 0; j < TERN_GEMV_TOKENS; j++) {
                int v = acc[j];
                for (int o = gw >> 1; o > 0; o >>= 1) v += __shfl_xor_sync(TERN_FULL_MASK, v, o);
                for (int i = 0; i < 32 / gw; i++) {
                    const int b = __shfl_sync(TERN_FULL_MASK, v, i * gw);
                    if (lane == 0 && g0 + i < p.n_groups) {
                        facc[j] = __fadd_rn(facc[j], __fmul_rn(__int2float_rn(b), p.w_scales[(int64_t)row * p.n_groups + g0 + i]));
                        total[j] += b;
                    }
                }
                acc[j] = 0;
            }
        }
    }
    if (!p.n_groups) {
        for (int j = 0; j < TERN_GEMV_TOKENS; j++) {
            int v = acc[j];
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(TERN_FULL_MASK, v, o);
            total[j] = v;
        }
    }
    if (lane == 0)
        for (int j = 0; j < nt; j++) tern_finish(p, t0 + j, row, total[j], facc[j]);
}

// ---------------------------------------------------------------------------------------------
// GEMM for prefill: block tile 64 rows x 32 tokens x 128 k, 4 warps as 2 (rows) x 2 (tokens),
// each warp 32 x 16 = 2 x 2 mma.m16n8k32 tiles. Each k-tile, a thread loads one uint4 of
// weight words (64 weights of one row) and two int4 of activations from global memory into
// registers (the next tile's loads are issued before the current tile's MMAs), decodes the
// weights to int8 in shared memory, and the warps read their fragments with 32-bit loads (row
// stride 144 bytes: conflict-free). Per-block scales fold the int32 accumulators into floats
// at the end of every block, in block order: after every other 32-column mma k-step (64), every
// k-tile (128) or every other k-tile (256); a block past n_groups (Kp padding, zero weights)
// adds nothing.

#define TERN_GM_BM 64
#define TERN_GM_BN 32
#define TERN_GM_BK 128
#define TERN_GM_LD (TERN_GM_BK + 16)

__device__ __forceinline__ void tern_mma_s8(int c[4], const unsigned a[4], const unsigned b[2]) {
#ifdef TERN_CUDA_EMU
    tern_emu_mma_m16n8k32_s8(c, a, b, c);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
        "{%0,%1,%2,%3};\n"
        : "+r"(c[0]), "+r"(c[1]), "+r"(c[2]), "+r"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#endif
}

__device__ __forceinline__ unsigned tern_lds32(const int8_t *p) { return *(const unsigned *)p; }

// End of block gi: a warp's int32 accumulators (rows r0 + 16 mi + 8 (i >> 1)) times the block's
// weight scale into facc, added to tot, and reset.
__device__ __forceinline__ void tern_gemm_fold(const TernCudaParams &p, int acc[2][2][4], int tot[2][2][4],
                                               float facc[2][2][4], int r0, int gi) {
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 2; ni++)
            for (int i = 0; i < 4; i++) {
                const int r = r0 + mi * 16 + 8 * (i >> 1);
                if (r < p.M) {
                    const float w = p.w_scales[(int64_t)r * p.n_groups + gi];
                    facc[mi][ni][i] = __fadd_rn(facc[mi][ni][i], __fmul_rn(__int2float_rn(acc[mi][ni][i]), w));
                }
                tot[mi][ni][i] += acc[mi][ni][i];
                acc[mi][ni][i] = 0;
            }
}

extern "C" __global__ void __launch_bounds__(128) tern_gemm_mma(const TernCudaParams p) {
    __shared__ __align__(16) int8_t As[TERN_GM_BM * TERN_GM_LD];
    __shared__ __align__(16) int8_t Bs[TERN_GM_BN * TERN_GM_LD];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp & 1, wn = warp >> 1, g = lane >> 2, tg = lane & 3;
    const int m0 = blockIdx.x * TERN_GM_BM, n0 = blockIdx.y * TERN_GM_BN;
    const int kw = p.Kp >> 4, n_kt = p.Kp / TERN_GM_BK;

    // Global -> register assignment: weights row a_row, words [8 kt + 4 a_half, +4);
    // activations: int4 chunks idx = tid + 128 j (token idx/8, bytes 16 (idx%8) of the tile).
    const int a_row = tid >> 1, a_half = tid & 1;
    const bool a_ok = m0 + a_row < p.M;
    const uint4 *a_src = (const uint4 *)(p.w + (int64_t)(m0 + (a_ok ? a_row : 0)) * kw);
    uint4 wreg;
    int4 areg[2];
    const int4 zero4 = {0, 0, 0, 0};
    const uint32_t offs = tern_code_offsets(p), zw = 0x55555555u * (uint32_t)p.code_offset;
    const uint4 zero_w = {zw, zw, zw, zw};  // all weights 0

    int acc[2][2][4];
    int tot[2][2][4];
    float facc[2][2][4];
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 2; ni++)
            for (int i = 0; i < 4; i++) {
                acc[mi][ni][i] = 0;
                tot[mi][ni][i] = 0;
                facc[mi][ni][i] = 0.0f;
            }

    // Tile 0 into registers.
    wreg = a_ok ? a_src[a_half] : zero_w;
    for (int j = 0; j < 2; j++) {
        const int idx = tid + 128 * j, tok = n0 + (idx >> 3);
        areg[j] = tok < p.T ? *(const int4 *)(p.q + (int64_t)tok * p.Kp + 16 * (idx & 7)) : zero4;
    }

    for (int kt = 0; kt < n_kt; kt++) {
        const uint32_t wv[4] = {wreg.x, wreg.y, wreg.z, wreg.w};
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++)
                *(int *)&As[a_row * TERN_GM_LD + 64 * a_half + 16 * i + 4 * j] = tern_ternary4(wv[i] >> (2 * j), offs);
        for (int j = 0; j < 2; j++) {
            const int idx = tid + 128 * j;
            *(int4 *)&Bs[(idx >> 3) * TERN_GM_LD + 16 * (idx & 7)] = areg[j];
        }
        __syncthreads();
        if (kt + 1 < n_kt) {  // issue the next tile's loads; they land while the MMAs run
            wreg = a_ok ? a_src[2 * (kt + 1) + a_half] : zero_w;
            for (int j = 0; j < 2; j++) {
                const int idx = tid + 128 * j, tok = n0 + (idx >> 3);
                areg[j] = tok < p.T ? *(const int4 *)(p.q + (int64_t)tok * p.Kp + (int64_t)(kt + 1) * TERN_GM_BK + 16 * (idx & 7))
                                    : zero4;
            }
        }
        TERN_UNROLL
        for (int kk = 0; kk < TERN_GM_BK; kk += 32) {
            unsigned af[2][4], bf[2][2];
            for (int mi = 0; mi < 2; mi++) {
                const int8_t *r = As + (wm * 32 + mi * 16 + g) * TERN_GM_LD + kk + 4 * tg;
                af[mi][0] = tern_lds32(r);
                af[mi][1] = tern_lds32(r + 8 * TERN_GM_LD);
                af[mi][2] = tern_lds32(r + 16);
                af[mi][3] = tern_lds32(r + 8 * TERN_GM_LD + 16);
            }
            for (int ni = 0; ni < 2; ni++) {
                const int8_t *c = Bs + (wn * 16 + ni * 8 + g) * TERN_GM_LD + kk + 4 * tg;
                bf[ni][0] = tern_lds32(c);
                bf[ni][1] = tern_lds32(c + 16);
            }
            for (int mi = 0; mi < 2; mi++)
                for (int ni = 0; ni < 2; ni++) tern_mma_s8(acc[mi][ni], af[mi], bf[ni]);
            const int done = kt * TERN_GM_BK + kk + 32;  // columns summed so far
            if (p.n_groups && (done & (p.group_cols - 1)) == 0 && done / p.group_cols <= p.n_groups)
                tern_gemm_fold(p, acc, tot, facc, m0 + wm * 32 + g, done / p.group_cols - 1);
        }
        __syncthreads();
    }
    for (int mi = 0; mi < 2; mi++)
        for (int ni = 0; ni < 2; ni++)
            for (int i = 0; i < 4; i++) {
                const int r = m0 + wm * 32 + mi * 16 + g + 8 * (i >> 1);
                const int t = n0 + wn * 16 + ni * 8 + 2 * tg + (i & 1);
                if (r < p.M && t < p.T)
                    tern_finish(p, t, r, p.n_groups ? tot[mi][ni][i] : acc[mi][ni][i], facc[mi][ni][i]);
            }
}
