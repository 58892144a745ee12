/* ggml_conformance.c: tern's TQ1_0 / TQ2_0 / Q8_K functions against the REAL ggml type traits.
 *
 *   1. traits: block sizes, type sizes, vec_dot_type = Q8_K, nrows = 1.
 *   2. weight quantization: for many row lengths k = 256·n and data kinds (normal at several
 *      scales including f16-subnormal and f16-underflowing scales, exactly ternary data, all-zero
 *      and -0.0 blocks, negative-only data, ties at exactly 0.5·d, mixed block scales), the bytes
 *      of ggml's from_float (CPU), from_float_ref (base) and ggml_quantize_chunk equal those of
 *      tern_ggml_quantize_row_*, tern_ggml_quantize_* (chunk) and tern_quantize(TERN_QUANT_GGML_REF).
 *   3. dequantization: ggml to_float == tern_ggml_dequantize_row_* == tern_dequantize, bitwise,
 *      on quantized data and on random bytes (raw tier; every TQ1_0 byte value, TQ2_0 code 3).
 *   4. Q8_K: ggml's from_float (CPU) and from_float_ref == tern_ggml_quantize_row_q8_K: d (bits),
 *      qs, and bsums (not for all-zero blocks, whose bsums ggml leaves untouched: there only d
 *      and qs are compared, and tern must leave its bsums untouched too). Includes exact ties of
 *      iscale·x and "f32-rounded ties" (see rounded_tie).
 *   5. vec_dot, exact inputs: bitwise equal to ggml's AVX2 vec_dot and to the exact value.
 *   6. the vec_dot contract: k = 0, block pointers at odd addresses.
 *   7. vec_dot, general random inputs: within 1e-6 of Σ|w·a| (relative) of ggml.
 *
 * Exits 0 when every check passes; prints the first failures with the bytes that differ.
 */
#include "common.h"

/* Row lengths: k = 256·n. */
static const int SIZES[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 32, 64, 100};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
#define MAX_BLOCKS 100
#define MAX_K (MAX_BLOCKS * QK)

/* ---- weight data --------------------------------------------------------------------------- */

enum {
    W_NORMAL_1,
    W_NORMAL_002,
    W_NORMAL_300,
    W_NORMAL_1E5,    /* block absmax ~4e-5: f16 d is subnormal */
    W_NORMAL_1E9,    /* block absmax ~4e-9: f16 d underflows to 0, ternary from the f32 d */
    W_TERNARY,       /* ternary × one scale, as BitNet converters write */
    W_TERNARY_BLOCK, /* ternary × a random scale per block */
    W_NEGATIVE,
    W_TIES_POW2,     /* ±0.5·d exactly, d a power of two: x·(1/d) is exactly ±0.5 */
    W_TIES_ANY,      /* ±0.5·d and its float neighbours, d arbitrary */
    W_ZERO_BLOCKS,   /* all-zero and all -0.0 blocks between normal ones */
    W_UNIFORM,
    W_SPARSE,
    W_MIXED_SCALES,  /* each block at 10^U(-6, 3) */
    W_KINDS
};
static const char *W_NAMES[W_KINDS] = {
    "normal(1)",   "normal(0.02)",   "normal(300)", "normal(1e-5)", "normal(1e-9)",
    "ternary",     "ternary/block",  "negative",    "ties pow2",    "ties any",
    "zero blocks", "uniform",        "sparse",      "mixed scales"};

static void gen_weights(int kind, float *x, int64_t k) {
    const double ternary_scale = 0.0173;
    for (int64_t b = 0; b < k / QK; b++) {
        float *xb = x + b * QK;
        double block_scale = exp(rand_sym() * 3.0);
        double d = ldexp(1.0, (int)rand_below(8) - 4);
        double mixed = pow(10.0, -6.0 + 9.0 * rand_uniform());
        for (int i = 0; i < QK; i++) {
            double v;
            switch (kind) {
            case W_NORMAL_1: v = rand_normal(); break;
            case W_NORMAL_002: v = 0.02 * rand_normal(); break;
            case W_NORMAL_300: v = 300.0 * rand_normal(); break;
            case W_NORMAL_1E5: v = 1e-5 * rand_normal(); break;
            case W_NORMAL_1E9: v = 1e-9 * rand_normal(); break;
            case W_TERNARY: v = ternary_scale * (double)((int)rand_below(3) - 1); break;
            case W_TERNARY_BLOCK: v = block_scale * (double)((int)rand_below(3) - 1); break;
            case W_NEGATIVE: v = -fabs(rand_normal()); break;
            case W_TIES_POW2: v = d * 0.5 * (double)((int)rand_below(3) - 1); break;
            case W_TIES_ANY: v = block_scale * 0.5 * (double)((int)rand_below(3) - 1); break;
            case W_ZERO_BLOCKS: v = (b % 3 == 0) ? 0.0 : (b % 3 == 1) ? -0.0 : rand_normal(); break;
            case W_UNIFORM: v = rand_sym(); break;
            case W_SPARSE: v = rand_uniform() < 0.9 ? 0.0 : rand_normal(); break;
            default: v = mixed * rand_normal();
            }
            xb[i] = (float)v;
        }
        if (kind == W_TIES_POW2 || kind == W_TIES_ANY) {
            /* The block's absmax is the full scale, so 0.5·scale is a tie of x/d. */
            double s = kind == W_TIES_POW2 ? d : block_scale;
            xb[rand_below(QK)] = (float)(rand_u64() & 1 ? s : -s);
            if (kind == W_TIES_ANY) {
                /* float neighbours of the ties: lroundf sees x·id just above/below 0.5 */
                float dmax = 0;
                for (int i = 0; i < QK; i++) dmax = fmaxf(dmax, fabsf(xb[i]));
                for (int j = 0; j < 24; j++) {
                    float h = 0.5f * dmax;
                    float t = (j % 3 == 0) ? nextafterf(h, 0) : (j % 3 == 1) ? nextafterf(h, dmax) : h;
                    int at = (int)rand_below(QK);
                    if (fabsf(xb[at]) != dmax) xb[at] = (j & 1) ? -t : t;
                }
            }
        }
    }
}

/* ---- Q8_K data ----------------------------------------------------------------------------- */

enum {
    A_NORMAL_1,
    A_NORMAL_1E3,
    A_NORMAL_BIG,
    A_TIES_NEGMAX,  /* max = -127·2^e: iscale = 2^-e and iscale·x = j + 0.5 exactly */
    A_TIES_POSMAX,  /* max = +127·2^e: iscale = -2^-e */
    A_ZERO_BLOCKS,  /* all-zero / all -0.0 blocks: d = 0, qs = 0, bsums untouched */
    A_FIRST_MAX,    /* +a and -a both present: the first one sets the sign of d */
    A_ROUNDED_TIES, /* fl(iscale·x) = j + 0.5 while the exact product is not (see below) */
    A_KINDS
};
static const char *A_NAMES[A_KINDS] = {"normal(1)", "normal(1e-3)", "normal(1e3)", "ties -max",
                                       "ties +max", "zero blocks", "first max",  "rounded ties"};

/* Values x with fl(iscale·x) == j + 0.5 exactly (so round-half-even decides) although the exact
 * product iscale·x is not j + 0.5. A quantizer evaluating iscale·x + 1.5·2^23 with one fused
 * multiply-add would round these the other way about half of the time; ggml's reference rounds
 * the f32 product. */
static long g_rounded_ties = 0;
static float rounded_tie(float iscale, float amax) {
    for (int tries = 0; tries < 200; tries++) {
        int j = (int)rand_below(250) - 125;
        float x = (float)(((double)j + 0.5) / (double)iscale);
        for (int step = -3; step <= 3; step++) {
            float c = x;
            for (int s = 0; s < abs(step); s++) c = nextafterf(c, step < 0 ? -INFINITY : INFINITY);
            volatile float prod = iscale * c; /* f32 rounding, never fused */
            if (prod == (float)j + 0.5f && (double)iscale * (double)c != (double)j + 0.5 &&
                fabsf(c) < amax) {
                g_rounded_ties++;
                return c;
            }
        }
    }
    return 0.0f;
}

static void gen_acts(int kind, float *x, int64_t k) {
    for (int64_t b = 0; b < k / QK; b++) {
        float *xb = x + b * QK;
        int e = (int)rand_below(12) - 6;
        double unit = ldexp(1.0, e);
        for (int i = 0; i < QK; i++) {
            double v;
            switch (kind) {
            case A_NORMAL_1: v = rand_normal(); break;
            case A_NORMAL_1E3: v = 1e-3 * rand_normal(); break;
            case A_NORMAL_BIG: v = 1e3 * rand_normal(); break;
            case A_TIES_NEGMAX:
            case A_TIES_POSMAX: v = unit * ((double)((int)rand_below(253) - 126) + 0.5); break;
            case A_ZERO_BLOCKS: v = (b % 3 == 0) ? 0.0 : (b % 3 == 1) ? -0.0 : rand_normal(); break;
            case A_FIRST_MAX: v = rand_sym(); break;
            default: v = 0; break;
            }
            xb[i] = (float)v;
        }
        if (kind == A_TIES_NEGMAX || kind == A_TIES_POSMAX) {
            xb[rand_below(QK)] = (float)((kind == A_TIES_NEGMAX ? -127.0 : 127.0) * unit);
        } else if (kind == A_FIRST_MAX) {
            size_t i = rand_below(QK - 1), j = i + 1 + rand_below(QK - 1 - i);
            float a = 1.5f;
            xb[i] = (rand_u64() & 1) ? a : -a;
            xb[j] = -xb[i];
        } else if (kind == A_ROUNDED_TIES) {
            float max = (float)((1.0 + rand_uniform()) * unit * ((rand_u64() & 1) ? 1 : -1));
            float iscale = -127.f / max;
            for (int i = 0; i < QK; i++) xb[i] = rounded_tie(iscale, fabsf(max));
            xb[rand_below(QK)] = max;
        }
    }
}

/* Prints a section's summary line prefixed with ok / FAIL (failures recorded since `before`). */
#define SUMMARY(before, ...)                                                                    \
    do {                                                                                        \
        printf("%s ", g_failures == (before) ? "ok  " : "FAIL");                                \
        printf(__VA_ARGS__);                                                                    \
    } while (0)

/* ---- 1. traits ----------------------------------------------------------------------------- */

static void check_traits(void) {
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        const struct ggml_type_traits *b = ggml_get_type_traits(tt->type);
        const struct ggml_type_traits_cpu *c = ggml_get_type_traits_cpu(tt->type);
        EXPECT(b->blck_size == QK && b->type_size == tt->block_bytes && b->is_quantized,
               "%s: blck_size %lld type_size %zu", tt->name, (long long)b->blck_size, b->type_size);
        EXPECT(b->to_float && b->from_float_ref && c->from_float && c->vec_dot, "%s: traits", tt->name);
        EXPECT(c->vec_dot_type == GGML_TYPE_Q8_K && c->nrows == 1, "%s: vec_dot_type %d nrows %lld",
               tt->name, (int)c->vec_dot_type, (long long)c->nrows);
        printf("ggml %s: \"%s\", blck_size %lld, type_size %zu, vec_dot_type %s, nrows %lld\n",
               tt->name, b->type_name, (long long)b->blck_size, b->type_size,
               ggml_type_name(c->vec_dot_type), (long long)c->nrows);
    }
    EXPECT(ggml_type_size(GGML_TYPE_Q8_K) == Q8K_BYTES, "Q8_K size %zu", ggml_type_size(GGML_TYPE_Q8_K));
    EXPECT(ggml_get_type_traits_cpu(GGML_TYPE_Q8_K)->from_float != NULL, "Q8_K from_float");
}

/* ---- 2 + 3. weight quantization and dequantization ----------------------------------------- */

static void check_weights(void) {
    float *x = xmalloc(sizeof(float) * MAX_K);
    float *g_out = xmalloc(sizeof(float) * MAX_K), *t_out = xmalloc(sizeof(float) * MAX_K);
    float *c_out = xmalloc(sizeof(float) * MAX_K);
    const size_t max_bytes = MAX_BLOCKS * 66;
    uint8_t *g_ff = xmalloc(max_bytes), *g_ref = xmalloc(max_bytes), *g_chunk = xmalloc(max_bytes);
    uint8_t *t_row = xmalloc(max_bytes), *t_chunk = xmalloc(max_bytes), *t_api = xmalloc(max_bytes);
    long cases = 0, before = g_failures;
    char what[160];

    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        const struct ggml_type_traits *b = ggml_get_type_traits(tt->type);
        const struct ggml_type_traits_cpu *c = ggml_get_type_traits_cpu(tt->type);
        tern_layout layout = TERN_LAYOUT_INIT(tt->format);
        tern_quant_options qo = TERN_QUANT_OPTIONS_INIT;
        qo.method = TERN_QUANT_GGML_REF;
        for (int kind = 0; kind < W_KINDS; kind++) {
            for (int si = 0; si < N_SIZES; si++) {
                const int64_t n = SIZES[si], k = n * QK;
                const size_t bytes = (size_t)n * tt->block_bytes;
                gen_weights(kind, x, k);
                memset(g_ff, 0xAA, bytes), memset(g_ref, 0xAB, bytes), memset(g_chunk, 0xAC, bytes);
                memset(t_row, 0x55, bytes), memset(t_chunk, 0x56, bytes), memset(t_api, 0x57, bytes);

                c->from_float(x, g_ff, k);
                b->from_float_ref(x, g_ref, k);
                size_t g_ret = ggml_quantize_chunk(tt->type, x, g_chunk, 0, n, QK, NULL);
                tt->quantize_row(x, t_row, k);
                size_t t_ret = tt->quantize_chunk(x, t_chunk, n, QK, NULL);
                /* checked API: one row of k, or n rows of 256, alternately */
                int64_t rows = (si & 1) ? n : 1, cols = k / rows;
                tern_status st = tern_quantize(NULL, &layout, x, rows, cols, &qo, t_api, bytes, NULL);

                snprintf(what, sizeof what, "%s %s k=%lld", tt->name, W_NAMES[kind], (long long)k);
                EXPECT_BYTES("ggml from_float_ref vs from_float (ggml itself)", g_ff, g_ref, bytes,
                             tt->block_bytes);
                EXPECT_BYTES("ggml_quantize_chunk vs from_float (ggml itself)", g_ff, g_chunk, bytes,
                             tt->block_bytes);
                EXPECT(first_diff(g_ff, t_row, bytes) < 0, "%s: tern_ggml_quantize_row", what);
                if (first_diff(g_ff, t_row, bytes) >= 0)
                    report_bytes("quantize_row", g_ff, t_row, bytes, tt->block_bytes);
                EXPECT(first_diff(g_chunk, t_chunk, bytes) < 0 && g_ret == t_ret && t_ret == bytes,
                       "%s: chunk quantizer (ggml %zu, tern %zu bytes)", what, g_ret, t_ret);
                EXPECT(st == TERN_STATUS_OK, "%s: tern_quantize(%lld x %lld): %s %s", what,
                       (long long)rows, (long long)cols, tern_status_name(st),
                       tern_last_error_message() ? tern_last_error_message() : "");
                if (st == TERN_STATUS_OK) {
                    EXPECT(first_diff(g_ff, t_api, bytes) < 0, "%s: tern_quantize GGML_REF", what);
                    if (first_diff(g_ff, t_api, bytes) >= 0)
                        report_bytes("tern_quantize", g_ff, t_api, bytes, tt->block_bytes);
                }

                /* dequantize ggml's bytes three ways */
                memset(g_out, 0xAA, sizeof(float) * k), memset(t_out, 0x55, sizeof(float) * k);
                memset(c_out, 0x66, sizeof(float) * k);
                b->to_float(g_ff, g_out, k);
                tt->dequantize_row(g_ff, t_out, k);
                st = tern_dequantize(&layout, g_ff, bytes, rows, cols, c_out);
                EXPECT(memcmp(g_out, t_out, sizeof(float) * k) == 0, "%s: tern_ggml_dequantize_row",
                       what);
                EXPECT(st == TERN_STATUS_OK && memcmp(g_out, c_out, sizeof(float) * k) == 0,
                       "%s: tern_dequantize (%s)", what, tern_status_name(st));
                cases++;
            }
        }
    }
    SUMMARY(before, "weights: %ld (type, data, size) cases: ggml from_float == from_float_ref == "
            "quantize_chunk == tern (row, chunk, tern_quantize); to_float == tern (raw, checked)\n",
            cases);
    free(x), free(g_out), free(t_out), free(c_out);
    free(g_ff), free(g_ref), free(g_chunk), free(t_row), free(t_chunk), free(t_api);
}

/* Random bytes (raw tier): every TQ1_0 byte value decodes in ggml; TQ2_0 code 3 means +2. With
 * `valid`, only bytes an encoder writes (TQ1_0: ceil(v·256/243), with the pad trit 0 in qh;
 * TQ2_0: codes 0..2). The scale is a random finite f16. The checked tern_dequantize must either
 * reject the data (invalid encoding / code 3) or agree bitwise. */
static void random_tq_bytes(const tq_type *tt, uint8_t *q, int64_t n, int pow2_scale, int valid) {
    for (int64_t b = 0; b < n; b++) {
        uint8_t *qb = q + b * tt->block_bytes;
        for (size_t i = 0; i + 2 < tt->block_bytes; i++) {
            unsigned v = (unsigned)rand_u64();
            if (valid && tt->type == GGML_TYPE_TQ1_0) {
                v = i < 48 ? v % 243 : 3 * (v % 81);
                v = (v * 256 + 242) / 243;
            } else if (valid) {
                for (int l = 0; l < 4; l++)
                    if (((v >> (2 * l)) & 3) == 3) v ^= 1u << (2 * l); /* 3 -> 2 */
            }
            qb[i] = (uint8_t)v;
        }
        float d = pow2_scale ? (float)ldexp(1.0, (int)rand_below(3) - 1) : (float)(0.05 * rand_normal());
        ggml_fp16_t h = ggml_fp32_to_fp16(d);
        memcpy(qb + tt->block_bytes - 2, &h, 2);
    }
}

static void check_random_bytes_dequant(void) {
    const int64_t n = 16, k = n * QK;
    uint8_t *q = xmalloc((size_t)n * 66);
    float *g = xmalloc(sizeof(float) * k), *r = xmalloc(sizeof(float) * k), *c = xmalloc(sizeof(float) * k);
    long accepted = 0, rejected = 0, before = g_failures;
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        tern_layout layout = TERN_LAYOUT_INIT(tt->format);
        for (int rep = 0; rep < 50; rep++) {
            random_tq_bytes(tt, q, n, 0, rep & 1);
            ggml_get_type_traits(tt->type)->to_float(q, g, k);
            tt->dequantize_row(q, r, k);
            EXPECT(memcmp(g, r, sizeof(float) * k) == 0, "%s random bytes: raw dequantize", tt->name);
            tern_status st = tern_dequantize(&layout, q, (size_t)n * tt->block_bytes, 1, k, c);
            if (st == TERN_STATUS_OK) {
                accepted++;
                EXPECT(memcmp(g, c, sizeof(float) * k) == 0, "%s random bytes: tern_dequantize", tt->name);
            } else {
                rejected++;
                EXPECT(st == TERN_STATUS_INVALID_ARGUMENT, "%s: %s", tt->name, tern_status_name(st));
            }
        }
    }
    EXPECT(accepted == 50 && rejected == 50, "valid random blocks accepted: %ld, rejected %ld",
           accepted, rejected);
    SUMMARY(before, "random TQ bytes: raw dequantize == ggml to_float; tern_dequantize: %ld "
            "valid-encoding cases identical, %ld with invalid bytes rejected\n",
            accepted, rejected);
    free(q), free(g), free(r), free(c);
}

/* ---- 4. Q8_K ------------------------------------------------------------------------------- */

static void check_q8k(void) {
    float *x = xmalloc(sizeof(float) * MAX_K);
    const size_t max_bytes = (size_t)MAX_BLOCKS * Q8K_BYTES;
    uint8_t *g = xmalloc(max_bytes), *gr = xmalloc(max_bytes), *tq = xmalloc(max_bytes);
    const struct ggml_type_traits *base = ggml_get_type_traits(GGML_TYPE_Q8_K);
    long blocks = 0, zero_blocks = 0, ggml_untouched = 0, before = g_failures;
    for (int kind = 0; kind < A_KINDS; kind++) {
        for (int si = 0; si < N_SIZES; si++) {
            const int64_t n = SIZES[si], k = n * QK;
            gen_acts(kind, x, k);
            memset(g, 0xAA, (size_t)n * Q8K_BYTES), memset(gr, 0xAB, (size_t)n * Q8K_BYTES);
            memset(tq, 0x55, (size_t)n * Q8K_BYTES);
            ggml_q8k(x, g, k);
            if (base->from_float_ref) base->from_float_ref(x, gr, k);
            tern_ggml_quantize_row_q8_K(x, tq, k);
            for (int64_t b = 0; b < n; b++) {
                const uint8_t *gb = g + b * Q8K_BYTES, *rb = gr + b * Q8K_BYTES, *tb = tq + b * Q8K_BYTES;
                int zero = q8k_d(gb) == 0.0f;
                EXPECT(f32_bits(q8k_d(gb)) == f32_bits(q8k_d(tb)), "Q8_K %s k=%lld block %lld: d ggml %a tern %a",
                       A_NAMES[kind], (long long)k, (long long)b, q8k_d(gb), q8k_d(tb));
                long qd = first_diff(gb + 4, tb + 4, QK);
                EXPECT(qd < 0, "Q8_K %s k=%lld block %lld: qs[%ld] ggml %d tern %d (x = %a, d = %a)",
                       A_NAMES[kind], (long long)k, (long long)b, qd, qd < 0 ? 0 : (int8_t)gb[4 + qd],
                       qd < 0 ? 0 : (int8_t)tb[4 + qd], qd < 0 ? 0.0 : (double)x[b * QK + qd], q8k_d(gb));
                if (base->from_float_ref)
                    EXPECT(memcmp(gb, rb, zero ? 4 + QK : Q8K_BYTES) == 0,
                           "Q8_K from_float vs from_float_ref (ggml itself) block %lld", (long long)b);
                if (zero) {
                    /* ggml leaves bsums as they were; tern documents the same. */
                    uint8_t ff[32];
                    memset(ff, 0x55, 32);
                    EXPECT(memcmp(tb + Q8K_BSUMS_OFF, ff, 32) == 0, "Q8_K zero block: tern wrote bsums");
                    memset(ff, 0xAA, 32);
                    ggml_untouched += memcmp(gb + Q8K_BSUMS_OFF, ff, 32) == 0;
                    zero_blocks++;
                } else {
                    EXPECT(memcmp(gb + Q8K_BSUMS_OFF, tb + Q8K_BSUMS_OFF, 32) == 0,
                           "Q8_K %s k=%lld block %lld: bsums", A_NAMES[kind], (long long)k, (long long)b);
                }
                blocks++;
            }
        }
    }
    EXPECT(zero_blocks > 0, "no all-zero Q8_K block was tested");
    EXPECT(g_rounded_ties > 50000, "only %ld rounded ties generated", g_rounded_ties);
    SUMMARY(before, "Q8_K: %ld blocks (%d data kinds, %ld f32-rounded ties) identical to ggml (d, "
            "qs, bsums); %ld all-zero blocks (d = 0, qs = 0; bsums left untouched by tern, and by "
            "ggml in %ld of them)\n",
            blocks, A_KINDS, g_rounded_ties, zero_blocks, ggml_untouched);
    free(x), free(g), free(gr), free(tq);
}

/* ---- 5. vec_dot on exact inputs ------------------------------------------------------------ */

/* Inputs on which every float operation of every vec_dot implementation is exact, so the
 * result cannot depend on the order or grouping of the float additions (ggml's AVX2 kernel
 * keeps 8 partial sums per block in an 8-lane vector, scales each lane by d, accumulates lanes
 * over blocks and adds them at the end; the generic one adds one f32 per block in block order):
 *
 *   weights:     every block's absmax is ±2^e_w (e_w ∈ {-1, 0, 1}), so fp16(d_w) = 2^e_w exactly
 *                and the ternary values are x/d_w rounded;
 *   activations: every block's element of largest magnitude is ±127·2^e_a (e_a ∈ {-2, -1, 0}),
 *                so Q8_K's iscale = -127/max = ∓2^-e_a and d = 1/iscale = ∓2^e_a exactly (both
 *                signs of d occur), and qs = nearest_int(iscale·x) with an exact product.
 *
 * Then d_w·d_act is a power of two in [2^-3, 2^1], each block's integer dot S_b (|S_b| ≤ 256·127
 * < 2^15, also any lane's partial of it) times it is exact, and every partial sum is an integer
 * multiple of 2^-3 of magnitude ≤ n_blocks·32512·2 < 2^24·2^-3 for n_blocks ≤ 32: representable
 * in f32, so every addition is exact too (FMA or not). Both results must then equal the exact
 * value bitwise. Some blocks are all-zero (weights d = 0 or activations d = 0). */
static void gen_exact(float *w, float *a, int64_t k) {
    for (int64_t b = 0; b < k / QK; b++) {
        float *wb = w + b * QK, *ab = a + b * QK;
        int zero_w = rand_below(10) == 0, zero_a = rand_below(10) == 0;
        double dw = ldexp(1.0, (int)rand_below(3) - 1), ua = ldexp(1.0, -(int)rand_below(3));
        for (int i = 0; i < QK; i++) {
            wb[i] = zero_w ? 0.0f : (float)(dw * 0.999 * rand_sym());
            ab[i] = zero_a ? 0.0f : (float)(ua * 126.5 * rand_sym());
        }
        if (!zero_w) wb[rand_below(QK)] = (float)((rand_u64() & 1) ? dw : -dw);
        if (!zero_a) ab[rand_below(QK)] = (float)((rand_u64() & 1) ? 127 * ua : -127 * ua);
    }
}

static void check_vec_dot_exact(void) {
    const int64_t max_k = 32 * QK;
    float *w = xmalloc(sizeof(float) * max_k), *a = xmalloc(sizeof(float) * max_k);
    uint8_t *wq = xmalloc(32 * 66), *aq = xmalloc(32 * Q8K_BYTES), *taq = xmalloc(32 * Q8K_BYTES);
    long n_dots = 0, before = g_failures;
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        const struct ggml_type_traits_cpu *c = ggml_get_type_traits_cpu(tt->type);
        for (int n = 1; n <= 32; n += (n < 16 ? 1 : 16)) {
            for (int rep = 0; rep < 20; rep++) {
                const int64_t k = (int64_t)n * QK;
                gen_exact(w, a, k);
                c->from_float(w, wq, k);
                memset(aq, 0, (size_t)n * Q8K_BYTES);
                ggml_q8k(a, aq, k);
                memcpy(taq, aq, (size_t)n * Q8K_BYTES);
                tern_ggml_quantize_row_q8_K(a, taq, k); /* identical bytes (checked above) */
                for (int64_t b = 0; b < n; b++) {
                    float dw = tq_d(wq + b * tt->block_bytes, tt->block_bytes), da = q8k_d(aq + b * Q8K_BYTES);
                    EXPECT(dw == 0 || dw == 0.5f || dw == 1 || dw == 2, "exact setup: d_w = %a", dw);
                    EXPECT(da == 0 || fabsf(da) == 1 || fabsf(da) == 0.5f || fabsf(da) == 0.25f,
                           "exact setup: d_act = %a", da);
                }
                float g = NAN, r = NAN;
                c->vec_dot((int)k, &g, 0, wq, 0, aq, 0, 1);
                tt->vec_dot((int)k, &r, 0, wq, 0, taq, 0, 1);
                double exact = exact_dot(tt, wq, aq, k, NULL);
                EXPECT(f32_bits(g) == f32_bits(r) && (double)r == exact,
                       "%s exact vec_dot k=%lld: ggml %a tern %a exact %a", tt->name, (long long)k, g, r,
                       exact);
                n_dots++;
            }
            /* Random bytes (raw tier): every TQ1_0 byte value, TQ2_0 code 3 (= +2), pow2 d.
             * |S_b| ≤ 256·2·127 < 2^16 here, so the exactness bound above holds for n ≤ 16. */
            for (int rep = 0; rep < (n <= 16 ? 10 : 0); rep++) {
                const int64_t k = (int64_t)n * QK;
                gen_exact(w, a, k);
                random_tq_bytes(tt, wq, n, 1, rep & 1);
                memset(aq, 0, (size_t)n * Q8K_BYTES);
                ggml_q8k(a, aq, k);
                float g = NAN, r = NAN;
                c->vec_dot((int)k, &g, 0, wq, 0, aq, 0, 1);
                tt->vec_dot((int)k, &r, 0, wq, 0, aq, 0, 1);
                double exact = exact_dot(tt, wq, aq, k, NULL);
                EXPECT(f32_bits(g) == f32_bits(r) && (double)r == exact,
                       "%s random-byte vec_dot k=%lld: ggml %a tern %a exact %a", tt->name, (long long)k,
                       g, r, exact);
                n_dots++;
            }
        }
    }
    SUMMARY(before, "vec_dot, exact inputs: %ld dot products (k = 256..8192, incl. random TQ "
            "bytes) bitwise equal to ggml's and to the exact value\n",
            n_dots);
    free(w), free(a), free(wq), free(aq), free(taq);
}

/* ---- 5b. contract details: k = 0, unaligned block pointers --------------------------------- */

/* mul_mat may call from_float with k = 0 (a thread with no blocks), and ggml guarantees no more
 * than 2-byte (TQ) / 4-byte (Q8_K) alignment of block pointers: tern must not care. */
static void check_contract(void) {
    const int64_t n = 5, k = n * QK;
    const long before = g_failures;
    float *x = xmalloc(sizeof(float) * k), *a = xmalloc(sizeof(float) * k);
    float *d1 = xmalloc(sizeof(float) * k), *d2 = xmalloc(sizeof(float) * k);
    uint8_t *w_al = xmalloc(n * 66), *w_un = xmalloc(n * 66 + 1), *a_al = xmalloc(n * Q8K_BYTES);
    uint8_t *a_un = xmalloc(n * Q8K_BYTES + 3), guard[16];
    gen_weights(W_NORMAL_1, x, k);
    gen_acts(A_NORMAL_1, a, k);
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        /* k = 0 writes nothing; vec_dot over 0 elements is 0 */
        memset(guard, 0x5A, sizeof guard);
        tt->quantize_row(x, guard, 0);
        tern_ggml_quantize_row_q8_K(a, guard, 0);
        EXPECT(guard[0] == 0x5A && guard[15] == 0x5A, "%s: k = 0 wrote output", tt->name);
        float s = NAN, g = NAN;
        tt->vec_dot(0, &s, 0, w_al, 0, a_al, 0, 1);
        ggml_get_type_traits_cpu(tt->type)->vec_dot(0, &g, 0, w_al, 0, a_al, 0, 1);
        EXPECT(s == 0.0f && f32_bits(s) == f32_bits(g), "%s: vec_dot(n = 0) = %g, ggml %g", tt->name, s, g);
        /* odd addresses for every block pointer */
        tt->quantize_row(x, w_al, k);
        tt->quantize_row(x, w_un + 1, k);
        tern_ggml_quantize_row_q8_K(a, a_al, k);
        tern_ggml_quantize_row_q8_K(a, a_un + 3, k);
        EXPECT(memcmp(w_al, w_un + 1, (size_t)n * tt->block_bytes) == 0, "%s: unaligned quantize", tt->name);
        EXPECT(memcmp(a_al, a_un + 3, (size_t)n * Q8K_BYTES) == 0, "Q8_K: unaligned quantize");
        tt->dequantize_row(w_al, d1, k);
        tt->dequantize_row(w_un + 1, d2, k);
        EXPECT(memcmp(d1, d2, sizeof(float) * k) == 0, "%s: unaligned dequantize", tt->name);
        float s1 = NAN, s2 = NAN;
        tt->vec_dot((int)k, &s1, 0, w_al, 0, a_al, 0, 1);
        tt->vec_dot((int)k, &s2, 0, w_un + 1, 0, a_un + 3, 0, 1);
        EXPECT(f32_bits(s1) == f32_bits(s2), "%s: unaligned vec_dot %a vs %a", tt->name, s1, s2);
    }
    SUMMARY(before, "contract: k = 0 writes nothing, vec_dot(n = 0) = 0 like ggml; block pointers at "
                    "odd addresses give the same results\n");
    free(x), free(a), free(d1), free(d2), free(w_al), free(w_un), free(a_al), free(a_un);
}

/* ---- 6. vec_dot on general data ------------------------------------------------------------ */

/* Random data: the integer block sums agree (checked exactly above), but the f32 additions run
 * in a different order: tern (like ggml's generic C kernel) adds f32(S_b)·d_b per block in block
 * order, ggml's AVX2 kernel scales and accumulates 8 lane partials per block. The error of
 * either is bounded by a few ulps of Σ|w·a| (not of |result|, which cancellation can make ~0),
 * so the difference is checked relative to that. */
#define VEC_DOT_REL_TOL 1e-6

static void check_vec_dot_general(void) {
    float *w = xmalloc(sizeof(float) * MAX_K), *a = xmalloc(sizeof(float) * MAX_K);
    uint8_t *wq = xmalloc(MAX_BLOCKS * 66), *aq = xmalloc((size_t)MAX_BLOCKS * Q8K_BYTES);
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        const struct ggml_type_traits_cpu *c = ggml_get_type_traits_cpu(tt->type);
        double worst_tern = 0, worst_ggml = 0, worst_diff = 0, worst_plain = 0;
        long n_dots = 0, bitwise = 0, before = g_failures;
        for (int kind = 0; kind < W_KINDS; kind++) {
            for (int si = 0; si < N_SIZES; si++) {
                const int64_t n = SIZES[si], k = n * QK;
                gen_weights(kind, w, k);
                gen_acts(kind % A_KINDS, a, k);
                c->from_float(w, wq, k);
                ggml_q8k(a, aq, k);
                float g = NAN, r = NAN;
                c->vec_dot((int)k, &g, 0, wq, 0, aq, 0, 1);
                tt->vec_dot((int)k, &r, 0, wq, 0, aq, 0, 1);
                double abs_terms;
                double exact = exact_dot(tt, wq, aq, k, &abs_terms);
                double scale = abs_terms > 0 ? abs_terms : 1;
                double e_t = fabs((double)r - exact) / scale, e_g = fabs((double)g - exact) / scale;
                double e_d = fabs((double)r - (double)g) / scale;
                worst_tern = fmax(worst_tern, e_t), worst_ggml = fmax(worst_ggml, e_g);
                worst_diff = fmax(worst_diff, e_d);
                if (exact != 0) worst_plain = fmax(worst_plain, fabs((double)r - (double)g) / fabs(exact));
                bitwise += f32_bits(g) == f32_bits(r);
                EXPECT(e_d <= VEC_DOT_REL_TOL && isfinite(r),
                       "%s vec_dot %s/%s k=%lld: ggml %.9g tern %.9g (|diff|/sum|w*a| = %.3g)", tt->name,
                       W_NAMES[kind], A_NAMES[kind % A_KINDS], (long long)k, g, r, e_d);
                n_dots++;
            }
        }
        SUMMARY(before, "%s vec_dot, general data: %ld dot products, %ld bitwise equal to ggml; "
                "max |diff|/sum|w*a|: tern vs ggml %.3g (limit %.0e), tern vs exact %.3g, ggml "
                "vs exact %.3g; max |tern - ggml|/|exact| %.3g (not checked: cancellation)\n",
                tt->name, n_dots, bitwise, worst_diff, VEC_DOT_REL_TOL, worst_tern, worst_ggml,
                worst_plain);
    }
    free(w), free(a), free(wq), free(aq);
}

int main(void) {
    ggml_cpu_init();
    printf("tern %s; ggml CPU: AVX2 %d, FMA %d, F16C %d, AVX512 %d\n", tern_version_string(),
           ggml_cpu_has_avx2(), ggml_cpu_has_fma(), ggml_cpu_has_f16c(), ggml_cpu_has_avx512());
    check_traits();
    check_weights();
    check_random_bytes_dequant();
    check_q8k();
    check_vec_dot_exact();
    check_contract();
    check_vec_dot_general();
    return finish("ggml_conformance");
}
