/* common.h: shared helpers of the ggml conformance tests in examples-c/ggml/.
 *
 * These tests link the REAL ggml (the prebuilt libggml of `pip install libggml-python`: CPU
 * backend, x86-64 AVX2/FMA/F16C build) next to tern, and compare tern's ggml-compatible functions
 * with ggml's own type traits:
 *   ggml_get_type_traits(T)     -> to_float, from_float_ref        (ggml-base)
 *   ggml_get_type_traits_cpu(T) -> from_float, vec_dot, vec_dot_type (ggml-cpu, the SIMD kernels
 *                                  a llama.cpp build actually runs)
 *   ggml_quantize_chunk         -> the chunk quantizer llama-quantize uses
 */
#ifndef TERN_GGML_COMMON_H
#define TERN_GGML_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml-cpu.h"
#include "ggml.h"
#include "tern.h"

#define QK 256             /* ggml QK_K: elements per TQ1_0/TQ2_0/Q8_K block */
#define Q8K_BYTES 292      /* sizeof(block_q8_K): f32 d, int8 qs[256], int16 bsums[16] */
#define Q8K_BSUMS_OFF 260  /* offset of bsums inside a Q8_K block */

/* One of the two ternary types, with tern's functions for it, held in ggml's own function-pointer
 * types: the initializers below are the compile-time check (-Werror) that tern's declarations
 * fit ggml's trait slots, as a fork's patched trait rows need. */
typedef struct {
    const char *name;
    enum ggml_type type;
    int32_t format; /* TERN_FORMAT_TQ1_0 / TQ2_0 */
    size_t block_bytes;
    ggml_from_float_t quantize_row;
    ggml_to_float_t dequantize_row;
    ggml_vec_dot_t vec_dot;
    size_t (*quantize_chunk)(const float *, void *, int64_t, int64_t, const float *);
} tq_type;

static const tq_type TQ_TYPES[2] = {
    {"TQ1_0", GGML_TYPE_TQ1_0, TERN_FORMAT_TQ1_0, 54, tern_ggml_quantize_row_tq1_0,
     tern_ggml_dequantize_row_tq1_0, tern_ggml_vec_dot_tq1_0_q8_K, tern_ggml_quantize_tq1_0},
    {"TQ2_0", GGML_TYPE_TQ2_0, TERN_FORMAT_TQ2_0, 66, tern_ggml_quantize_row_tq2_0,
     tern_ggml_dequantize_row_tq2_0, tern_ggml_vec_dot_tq2_0_q8_K, tern_ggml_quantize_tq2_0},
};

/* ---- failures ------------------------------------------------------------------------------ */

static long g_checks = 0, g_failures = 0;

/* Records one check; prints the first 40 failures (with printf-style details). */
#define EXPECT(cond, ...)                                                                       \
    do {                                                                                        \
        g_checks++;                                                                             \
        if (!(cond)) {                                                                          \
            if (g_failures++ < 40) {                                                            \
                fprintf(stderr, "%s:%d: FAILED %s: ", __FILE__, __LINE__, #cond);               \
                fprintf(stderr, __VA_ARGS__);                                                   \
                fputc('\n', stderr);                                                            \
            }                                                                                   \
        }                                                                                       \
    } while (0)

static inline void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return p;
}

/* Index of the first differing byte, or -1. */
static inline long first_diff(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) return (long)i;
    }
    return -1;
}

/* Prints `what`'s first mismatch: byte offset, block, and 8 bytes of both buffers around it. */
static inline void report_bytes(const char *what, const void *want, const void *got, size_t n,
                         size_t block_bytes) {
    long i = first_diff(want, got, n);
    if (i < 0) return;
    const unsigned char *x = want, *y = got;
    size_t from = (size_t)i & ~(size_t)7;
    fprintf(stderr, "  %s: first difference at byte %ld (block %zu, offset %zu)\n    ggml:", what,
            i, (size_t)i / block_bytes, (size_t)i % block_bytes);
    for (size_t k = from; k < from + 8 && k < n; k++) fprintf(stderr, " %02x", x[k]);
    fprintf(stderr, "\n    tern:");
    for (size_t k = from; k < from + 8 && k < n; k++) fprintf(stderr, " %02x", y[k]);
    fputc('\n', stderr);
}

/* Compares two byte buffers, counting one check. */
#define EXPECT_BYTES(what, want, got, n, block_bytes)                                           \
    do {                                                                                        \
        int same_ = memcmp((want), (got), (n)) == 0;                                            \
        EXPECT(same_, "%s", (what));                                                            \
        if (!same_ && g_failures <= 40) report_bytes((what), (want), (got), (n), (block_bytes)); \
    } while (0)

static inline uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static inline float q8k_d(const uint8_t *block) {
    float d;
    memcpy(&d, block, 4);
    return d;
}

static inline float tq_d(const uint8_t *block, size_t block_bytes) {
    uint16_t h;
    memcpy(&h, block + block_bytes - 2, 2);
    return ggml_fp16_to_fp32(h);
}

/* ---- random numbers (splitmix64; fixed seeds, identical everywhere) ------------------------- */

static uint64_t g_rng = 0x243F6A8885A308D3ull;

static inline uint64_t rand_u64(void) {
    uint64_t z = (g_rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static inline double rand_uniform(void) { /* (0, 1) */
    return ((double)(rand_u64() >> 11) + 0.5) / 9007199254740992.0;
}
static inline double rand_sym(void) { /* (-1, 1) */
    return 2.0 * rand_uniform() - 1.0;
}
static inline size_t rand_below(size_t n) {
    return (size_t)(rand_u64() % n);
}
static inline double rand_normal(void) { /* Box-Muller */
    return sqrt(-2.0 * log(rand_uniform())) * cos(6.283185307179586 * rand_uniform());
}

/* ---- ggml ---------------------------------------------------------------------------------- */

/* Quantizes k floats to Q8_K with ggml's CPU from_float (what mul_mat uses for src1). */
static inline void ggml_q8k(const float *x, void *y, int64_t k) {
    ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float(x, y, k);
}

/* Exact reference of one TQ row · Q8_K row, in double: every product w·q is exact, and so is
 * every partial sum for the sizes used here. Also returns Σ_e |w_e·q_e·d_act|, the classic scale
 * of float rounding error in a dot product (|fl(Σ) − Σ| ≤ γ_n·Σ|terms| whatever the grouping),
 * used for relative tolerances: |result| itself can be ~0 by cancellation, and ggml's AVX2
 * kernels round per 8-lane partial sums, whose magnitudes exceed |S_b·d_b|. */
static inline double exact_dot(const tq_type *tt, const uint8_t *wq, const uint8_t *aq, int64_t k,
                        double *abs_terms) {
    float w[QK];
    double total = 0, abs_total = 0;
    for (int64_t b = 0; b < k / QK; b++) {
        const uint8_t *wb = wq + b * tt->block_bytes, *ab = aq + b * Q8K_BYTES;
        ggml_get_type_traits(tt->type)->to_float(wb, w, QK); /* (t-1)·d_w, exact */
        double s = 0, s_abs = 0;
        for (int e = 0; e < QK; e++) {
            double p = (double)w[e] * (double)(int8_t)ab[4 + e];
            s += p;
            s_abs += fabs(p);
        }
        total += s * (double)q8k_d(ab);
        abs_total += s_abs * fabs((double)q8k_d(ab));
    }
    if (abs_terms) *abs_terms = abs_total;
    return total;
}

static inline int finish(const char *name) {
    printf("%s: %ld checks, %ld failed\n", name, g_checks, g_failures);
    if (g_failures) {
        printf("%s: FAILED\n", name);
        return 1;
    }
    printf("%s: passed\n", name);
    return 0;
}

#endif
