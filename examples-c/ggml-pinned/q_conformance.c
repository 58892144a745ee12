/* q_conformance.c: tern's Q2_0 / Q1_0 / Q8_0 raw-tier functions against the REAL ggml built from
 * the pinned llama.cpp source (build_ggml.sh: ggml alone, CPU backend, GGML_NATIVE=ON).
 *
 *   1. traits: block and type sizes, vec_dot_type = Q8_0, nrows = 1.
 *   2. weight quantization, k = 64·n (Q2_0) / 128·n (Q1_0), n including values whose k is not a
 *      multiple of 256: the bytes of ggml's from_float_ref (base), from_float (CPU) and
 *      ggml_quantize_chunk equal tern_ggml_quantize_row_* and tern_ggml_quantize_* (chunk), on
 *      normal data at several scales (f16-subnormal scales, scales whose f16 underflows, block
 *      maxima so small that 1/d overflows f32), ternary data, ties of x/d at ±0.5, all-zero and
 *      all -0.0 blocks, negative-only, sparse and mixed-scale data, and data holding inf and NaN
 *      (where C leaves ggml's float-to-int conversion undefined, tern gives what x86 gives).
 *   3. dequantization: ggml to_float == tern_ggml_dequantize_row_*, bitwise, on the quantized
 *      blocks and on random bytes (every Q2_0 code including 3, which ggml's quantizer never
 *      writes; random finite f16 scales, subnormal ones included).
 *   4. Q8_0 activations: ggml CPU from_float (what mul_mat quantizes src1 with) ==
 *      tern_ggml_quantize_row_q8_0, and ggml from_float_ref == tern_ggml_quantize_row_q8_0_ref,
 *      bytes, on normal data, exact ties of x·id, zero blocks and tiny blocks (127/amax overflows:
 *      x86 stores −128); the CPU one also with inf and NaN at every lane position.
 *   5. vec_dot: ggml CPU vec_dot == tern_ggml_vec_dot_*, bitwise, with weights from (2) and (3)
 *      (code 3 injected) against activations from (4) and random Q8_0 bytes (−128 included, which
 *      ggml's AVX2 Q1_0 kernel negates with int8 wrap-around); block pointers at odd addresses.
 *
 * Exits 0 when every check passes; prints the first failures.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "tern.h"

#define Q8_BYTES 34
#define MAX_K (128 * 64)

static long g_checks = 0, g_failures = 0;

#define EXPECT(cond, ...)                                                                  \
    do {                                                                                   \
        g_checks++;                                                                        \
        if (!(cond) && g_failures++ < 40) {                                                \
            fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);              \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* Checks that n bytes agree; on a mismatch names the first differing byte and its block. */
static void expect_bytes(const char *what, const char *kind, int64_t k, const void *want,
                         const void *got, size_t n, size_t block_bytes) {
    const unsigned char *a = want, *b = got;
    size_t i = 0;
    while (i < n && a[i] == b[i]) i++;
    EXPECT(i == n, "%s, %s, k = %lld: byte %zu (block %zu, offset %zu): ggml %02x, tern %02x",
           what, kind, (long long)k, i, i / block_bytes, i % block_bytes, i < n ? a[i] : 0,
           i < n ? b[i] : 0);
}

/* splitmix64, fixed seed */
static uint64_t g_rng = 0x243F6A8885A308D3ull;
static uint64_t rand_u64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rand_uniform(void) { return ((double)(rand_u64() >> 11) + 0.5) / 9007199254740992.0; }
static double rand_sym(void) { return 2.0 * rand_uniform() - 1.0; }
static size_t rand_below(size_t n) { return (size_t)(rand_u64() % n); }
static double rand_normal(void) {
    return sqrt(-2.0 * log(rand_uniform())) * cos(6.283185307179586 * rand_uniform());
}

/* ---- the two weight types ---------------------------------------------------------------- */

typedef struct {
    const char *name;
    enum ggml_type type;
    int block;
    size_t block_bytes;
    ggml_from_float_t quantize_row; /* the initializers check tern's signatures (-Werror) */
    ggml_to_float_t dequantize_row;
    ggml_vec_dot_t vec_dot;
    size_t (*quantize_chunk)(const float *, void *, int64_t, int64_t, const float *);
} q_type;

static const q_type TYPES[2] = {
    {"Q2_0", GGML_TYPE_Q2_0, 64, 18, tern_ggml_quantize_row_q2_0, tern_ggml_dequantize_row_q2_0,
     tern_ggml_vec_dot_q2_0_q8_0, tern_ggml_quantize_q2_0},
    {"Q1_0", GGML_TYPE_Q1_0, 128, 18, tern_ggml_quantize_row_q1_0, tern_ggml_dequantize_row_q1_0,
     tern_ggml_vec_dot_q1_0_q8_0, tern_ggml_quantize_q1_0},
};

/* Blocks per row: 64·n / 128·n, several not a multiple of 256. */
static const int BLOCKS[] = {1, 2, 3, 4, 5, 6, 7, 9, 13, 16, 33, 64};
#define N_BLOCKS ((int)(sizeof BLOCKS / sizeof BLOCKS[0]))

enum {
    W_NORMAL_1,
    W_NORMAL_002,
    W_NORMAL_300,
    W_NORMAL_1E5,  /* block scale ~4e-5: f16 d subnormal */
    W_NORMAL_1E9,  /* f16 d underflows to 0 */
    W_TINY,        /* block max ~1e-39 (f32 subnormal): 1/d overflows to inf */
    W_TERNARY,
    W_TERNARY_BLOCK,
    W_TIES,        /* ±0.5·max and its float neighbours */
    W_ZERO_BLOCKS, /* all-zero and all -0.0 blocks between normal ones */
    W_NEGATIVE,
    W_SPARSE,
    W_MIXED_SCALES,
    W_NONFINITE, /* normal data with inf, -inf and NaN: quantization and to_float only */
    W_KINDS
};
static const char *W_NAMES[W_KINDS] = {"normal(1)", "normal(0.02)", "normal(300)", "normal(1e-5)",
                                       "normal(1e-9)", "tiny(1e-39)", "ternary", "ternary/block",
                                       "ties", "zero blocks", "negative", "sparse", "mixed scales",
                                       "non-finite"};

static void gen_weights(int kind, int qk, float *x, int64_t k) {
    for (int64_t b = 0; b < k / qk; b++) {
        float *xb = x + b * qk;
        double block_scale = exp(rand_sym() * 3.0);
        double mixed = pow(10.0, -6.0 + 9.0 * rand_uniform());
        for (int i = 0; i < qk; i++) {
            double v;
            switch (kind) {
            case W_NORMAL_1: v = rand_normal(); break;
            case W_NORMAL_002: v = 0.02 * rand_normal(); break;
            case W_NORMAL_300: v = 300.0 * rand_normal(); break;
            case W_NORMAL_1E5: v = 1e-5 * rand_normal(); break;
            case W_NORMAL_1E9: v = 1e-9 * rand_normal(); break;
            case W_TINY: v = 1e-39 * rand_normal(); break;
            case W_TERNARY: v = 0.0173 * (double)((int)rand_below(3) - 1); break;
            case W_TERNARY_BLOCK: v = block_scale * (double)((int)rand_below(3) - 1); break;
            case W_TIES: v = block_scale * 0.5 * (double)((int)rand_below(3) - 1); break;
            case W_ZERO_BLOCKS: v = (b % 3 == 0) ? 0.0 : (b % 3 == 1) ? -0.0 : rand_normal(); break;
            case W_NEGATIVE: v = -fabs(rand_normal()); break;
            case W_SPARSE: v = rand_uniform() < 0.9 ? 0.0 : rand_normal(); break;
            case W_MIXED_SCALES: v = mixed * rand_normal(); break;
            default: v = rand_normal();
            }
            xb[i] = (float)v;
        }
        if (kind == W_NONFINITE) {
            static const float bad[3] = {INFINITY, -INFINITY, NAN};
            if (b % 2 == 0) xb[rand_below(qk)] = bad[rand_below(3)];
        }
        if (kind == W_TIES) {
            float s = (float)block_scale, h = 0.5f * s;
            xb[rand_below(qk)] = (rand_u64() & 1) ? s : -s;
            for (int j = 0; j < 24; j++) {
                float t = (j % 3 == 0) ? nextafterf(h, 0) : (j % 3 == 1) ? nextafterf(h, s) : h;
                int at = (int)rand_below(qk);
                if (fabsf(xb[at]) != s) xb[at] = (j & 1) ? -t : t;
            }
        }
    }
}

/* ---- Q8_0 activations -------------------------------------------------------------------- */

enum { A_NORMAL_1, A_NORMAL_1E3, A_TIES, A_ZERO_BLOCKS, A_F16_SUBNORMAL, A_TINY, A_KINDS };
static const char *A_NAMES[A_KINDS] = {"normal(1)", "normal(1e3)", "ties", "zero blocks",
                                       "f16-subnormal d", "tiny(1e-38)"};

/* inf, -inf and NaN among normal activations, at every lane position over the repetitions: the
 * CPU (AVX) quantizer's maxps reduction order decides what a NaN does. */
static void gen_nonfinite_acts(float *x, int64_t k, int rep) {
    static const float bad[3] = {INFINITY, -INFINITY, NAN};
    for (int64_t i = 0; i < k; i++) x[i] = (float)rand_normal();
    for (int64_t b = 0; b < k / 32; b++) x[b * 32 + (rep * 7 + b) % 32] = bad[(rep + b) % 3];
}

static void gen_acts(int kind, float *x, int64_t k) {
    for (int64_t b = 0; b < k / 32; b++) {
        float *xb = x + b * 32;
        /* amax = 127·2^e: both 127/amax and 1/(amax/127) are 2^-e, x·id = j + 0.5 exactly. */
        double p = ldexp(1.0, (int)rand_below(16) - 8);
        for (int i = 0; i < 32; i++) {
            double v;
            switch (kind) {
            case A_NORMAL_1: v = rand_normal(); break;
            case A_NORMAL_1E3: v = 1e3 * rand_normal(); break;
            case A_TIES: v = p * ((double)(int)rand_below(254) - 126.5); break;
            case A_ZERO_BLOCKS: v = (b % 3 == 0) ? 0.0 : (b % 3 == 1) ? -0.0 : rand_normal(); break;
            case A_F16_SUBNORMAL: v = 1e-4 * rand_normal(); break;
            default: v = 1e-38 * rand_normal();
            }
            xb[i] = (float)v;
        }
        if (kind == A_TIES) xb[rand_below(32)] = (float)((rand_u64() & 1 ? 127.0 : -127.0) * p);
    }
}

/* Random Q8_0 bytes: a finite f16 d (normal or subnormal), qs over all of int8 (−128 too). */
static void random_q8(uint8_t *y, int64_t blocks) {
    for (int64_t b = 0; b < blocks; b++) {
        uint16_t h;
        do h = (uint16_t)rand_u64(); while ((h & 0x7c00) == 0x7c00);
        memcpy(y + b * Q8_BYTES, &h, 2);
        for (int i = 0; i < 32; i++) y[b * Q8_BYTES + 2 + i] = (uint8_t)rand_u64();
    }
}

/* Random weight blocks: finite f16 d, any code bytes (Q2_0 code 3 included). */
static void random_blocks(uint8_t *w, int64_t blocks, size_t block_bytes) {
    for (int64_t b = 0; b < blocks; b++) {
        uint16_t h;
        do h = (uint16_t)rand_u64(); while ((h & 0x7c00) == 0x7c00);
        memcpy(w + b * block_bytes, &h, 2);
        for (size_t i = 2; i < block_bytes; i++) w[b * block_bytes + i] = (uint8_t)rand_u64();
    }
}

static void expect_floats(const char *what, const char *kind, int64_t k, const float *want,
                          const float *got, int64_t n) {
    int64_t i = 0;
    while (i < n && memcmp(&want[i], &got[i], 4) == 0) i++;
    EXPECT(i == n, "%s, %s, k = %lld: element %lld: ggml %a, tern %a", what, kind, (long long)k,
           (long long)i, i < n ? want[i] : 0.0, i < n ? got[i] : 0.0);
}

static void expect_last_error_clear(const char *what) {
    const char *e = tern_last_error_message();
    EXPECT(e == NULL, "%s left the last error %s", what, e ? e : "");
}

static float g_x[MAX_K], g_a[MAX_K], g_f_ggml[MAX_K], g_f_tern[MAX_K];
static uint8_t g_w_ggml[MAX_K], g_w_tern[MAX_K], g_w2[MAX_K], g_q_ggml[MAX_K * 2],
    g_q_tern[MAX_K * 2];

static void check_traits(void) {
    for (int t = 0; t < 2; t++) {
        const q_type *q = &TYPES[t];
        const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(q->type);
        EXPECT(ggml_blck_size(q->type) == q->block, "%s block size", q->name);
        EXPECT(ggml_type_size(q->type) == q->block_bytes, "%s type size", q->name);
        EXPECT(cpu->vec_dot_type == GGML_TYPE_Q8_0, "%s vec_dot_type", q->name);
        EXPECT(cpu->nrows == 1, "%s nrows", q->name);
    }
    EXPECT(ggml_blck_size(GGML_TYPE_Q8_0) == 32 && ggml_type_size(GGML_TYPE_Q8_0) == Q8_BYTES,
           "Q8_0 sizes");
}

/* Weight bytes and their dequantized floats, for every kind and size; then the dot products of
 * those weights against activations of every kind. */
static void check_weights(const q_type *q) {
    const struct ggml_type_traits *base = ggml_get_type_traits(q->type);
    const struct ggml_type_traits_cpu *cpu = ggml_get_type_traits_cpu(q->type);
    const ggml_from_float_t q8_cpu = ggml_get_type_traits_cpu(GGML_TYPE_Q8_0)->from_float;
    for (int s = 0; s < N_BLOCKS; s++) {
        int64_t blocks = BLOCKS[s], k = blocks * q->block;
        size_t bytes = (size_t)blocks * q->block_bytes;
        for (int kind = 0; kind < W_KINDS; kind++) {
            const char *kn = W_NAMES[kind];
            gen_weights(kind, q->block, g_x, k);
            base->from_float_ref(g_x, g_w_ggml, k);
            q->quantize_row(g_x, g_w_tern, k);
            expect_last_error_clear(q->name);
            expect_bytes("from_float_ref vs tern_ggml_quantize_row", kn, k, g_w_ggml, g_w_tern,
                         bytes, q->block_bytes);
            cpu->from_float(g_x, g_w2, k);
            expect_bytes("CPU from_float vs ggml ref", kn, k, g_w2, g_w_ggml, bytes,
                         q->block_bytes);
            /* chunk: one row of k, and `blocks` rows of one block */
            size_t n1 = ggml_quantize_chunk(q->type, g_x, g_w2, 0, 1, k, NULL);
            size_t n2 = q->quantize_chunk(g_x, g_w_tern, 1, k, NULL);
            EXPECT(n1 == n2 && n1 == bytes, "chunk sizes %zu %zu", n1, n2);
            expect_bytes("ggml_quantize_chunk vs tern_ggml_quantize_*", kn, k, g_w2, g_w_tern,
                         bytes, q->block_bytes);
            n1 = ggml_quantize_chunk(q->type, g_x, g_w2, 0, blocks, q->block, NULL);
            n2 = q->quantize_chunk(g_x, g_w_tern, blocks, q->block, NULL);
            EXPECT(n1 == n2 && n1 == bytes, "chunk sizes %zu %zu", n1, n2);
            expect_bytes("ggml_quantize_chunk (rows) vs tern", kn, k, g_w2, g_w_tern, bytes,
                         q->block_bytes);

            base->to_float(g_w_ggml, g_f_ggml, k);
            q->dequantize_row(g_w_ggml, g_f_tern, k);
            expect_floats("to_float vs tern_ggml_dequantize_row", kn, k, g_f_ggml, g_f_tern, k);

            /* vec_dot against every activation kind, and against random Q8_0 bytes (finite
             * weights: with an infinite scale both sides give NaN, in an unspecified payload) */
            for (int ak = 0; kind != W_NONFINITE && ak <= A_KINDS; ak++) {
                if (ak < A_KINDS) {
                    gen_acts(ak, g_a, k);
                    q8_cpu(g_a, g_q_ggml, k);
                } else {
                    random_q8(g_q_ggml, k / 32);
                }
                float sg = NAN, st = NAN;
                cpu->vec_dot((int)k, &sg, 0, g_w_ggml, 0, g_q_ggml, 0, 1);
                q->vec_dot((int)k, &st, 0, g_w_ggml, 0, g_q_ggml, 0, 1);
                EXPECT(memcmp(&sg, &st, 4) == 0, "%s vec_dot, weights %s, acts %s, k = %lld: "
                       "ggml %a, tern %a", q->name, kn, ak < A_KINDS ? A_NAMES[ak] : "random q8",
                       (long long)k, sg, st);
            }
        }
        /* block pointers at odd addresses: ggml guarantees no alignment for them */
        {
            static uint8_t wo[MAX_K + 1], yo[MAX_K * 2 + 1];
            random_blocks(g_w_ggml, blocks, q->block_bytes);
            random_q8(g_q_ggml, k / 32);
            memcpy(wo + 1, g_w_ggml, bytes);
            memcpy(yo + 1, g_q_ggml, (size_t)(k / 32) * Q8_BYTES);
            float sg = NAN, st = NAN;
            cpu->vec_dot((int)k, &sg, 0, g_w_ggml, 0, g_q_ggml, 0, 1);
            q->vec_dot((int)k, &st, 0, wo + 1, 0, yo + 1, 0, 1);
            EXPECT(memcmp(&sg, &st, 4) == 0, "%s vec_dot at odd addresses, k = %lld: %a vs %a",
                   q->name, (long long)k, sg, st);
        }
        /* random blocks: every code (Q2_0's 3 included), any finite scale */
        for (int rep = 0; rep < 4; rep++) {
            random_blocks(g_w_ggml, blocks, q->block_bytes);
            base->to_float(g_w_ggml, g_f_ggml, k);
            q->dequantize_row(g_w_ggml, g_f_tern, k);
            expect_floats("to_float vs tern (random blocks)", "random", k, g_f_ggml, g_f_tern, k);
            random_q8(g_q_ggml, k / 32);
            float sg = NAN, st = NAN;
            cpu->vec_dot((int)k, &sg, 0, g_w_ggml, 0, g_q_ggml, 0, 1);
            q->vec_dot((int)k, &st, 0, g_w_ggml, 0, g_q_ggml, 0, 1);
            EXPECT(memcmp(&sg, &st, 4) == 0, "%s vec_dot, random blocks, k = %lld: ggml %a, tern %a",
                   q->name, (long long)k, sg, st);
        }
    }
}

static void check_q8_0(void) {
    const ggml_from_float_t cpu = ggml_get_type_traits_cpu(GGML_TYPE_Q8_0)->from_float;
    const ggml_from_float_t ref = ggml_get_type_traits(GGML_TYPE_Q8_0)->from_float_ref;
    for (int64_t blocks = 1; blocks <= 64; blocks = blocks * 2 + 1) {
        int64_t k = 32 * blocks;
        for (int kind = 0; kind < A_KINDS; kind++) {
            for (int rep = 0; rep < 8; rep++) {
                gen_acts(kind, g_a, k);
                cpu(g_a, g_q_ggml, k);
                tern_ggml_quantize_row_q8_0(g_a, g_q_tern, k);
                expect_last_error_clear("tern_ggml_quantize_row_q8_0");
                expect_bytes("Q8_0 CPU from_float vs tern_ggml_quantize_row_q8_0", A_NAMES[kind],
                             k, g_q_ggml, g_q_tern, (size_t)blocks * Q8_BYTES, Q8_BYTES);
                ref(g_a, g_q_ggml, k);
                tern_ggml_quantize_row_q8_0_ref(g_a, g_q_tern, k);
                expect_bytes("Q8_0 from_float_ref vs tern_ggml_quantize_row_q8_0_ref",
                             A_NAMES[kind], k, g_q_ggml, g_q_tern, (size_t)blocks * Q8_BYTES,
                             Q8_BYTES);
            }
        }
        for (int rep = 0; rep < 32; rep++) {
            gen_nonfinite_acts(g_a, k, rep);
            cpu(g_a, g_q_ggml, k);
            tern_ggml_quantize_row_q8_0(g_a, g_q_tern, k);
            expect_bytes("Q8_0 CPU from_float vs tern_ggml_quantize_row_q8_0", "non-finite", k,
                         g_q_ggml, g_q_tern, (size_t)blocks * Q8_BYTES, Q8_BYTES);
        }
    }
}

int main(void) {
    ggml_cpu_init();
    check_traits();
    check_q8_0();
    for (int t = 0; t < 2; t++) check_weights(&TYPES[t]);
    printf("q_conformance: %ld checks, %ld failures\n", g_checks, g_failures);
    return g_failures == 0 ? 0 : 1;
}
