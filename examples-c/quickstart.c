/* quickstart.c: quantize one f32 layer to ternary (I2_S), multiply tokens with it, and check the
 * result against a plain f32 computation.
 *
 *   1. a random 2560 x 2560 f32 weight matrix (fixed-seed PRNG, N(0, 0.02^2));
 *   2. tern_matrix_from_f32 with default options (BitNet b1.58 absmean, one scale per tensor);
 *   3. tern_gemm for 1 and 8 tokens;
 *   4. reference: the same weights quantized with tern_quantize and expanded back to floats with
 *      tern_dequantize, multiplied in double precision here. The only difference left is tern's
 *      int8 quantization of the activations, so the relative RMS error must stay small (< 2%).
 *
 * Exits 0 on success, 1 on an error or an out-of-bound result.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern.h"

#define ROWS 2560 /* outputs (M) */
#define COLS 2560 /* inputs (K) */
#define MAX_TOKENS 8
#define MAX_REL_RMS 0.02 /* int8 activation rounding gives about 0.5-1% */

/* Prints the failing call with its status and message, then jumps to the cleanup label. */
#define CHECK(call)                                                                             \
    do {                                                                                        \
        tern_status st_ = (call);                                                               \
        if (st_ != TERN_STATUS_OK) {                                                            \
            const char *msg_ = tern_last_error_message();                                       \
            fprintf(stderr, "%s:%d: %s failed: %s: %s\n", __FILE__, __LINE__, #call,           \
                    tern_status_name(st_), msg_ ? msg_ : "(no message)");                       \
            goto done;                                                                          \
        }                                                                                       \
    } while (0)

/* xorshift64*: small, fixed-seed, identical everywhere. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static double rand_uniform(void) { /* (0, 1) */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return ((double)((rng_state * 0x2545F4914F6CDD1Dull) >> 11) + 0.5) / 9007199254740992.0;
}
static double rand_normal(void) { /* Box-Muller */
    const double two_pi = 6.283185307179586;
    return sqrt(-2.0 * log(rand_uniform())) * cos(two_pi * rand_uniform());
}

static double seconds(void) {
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
    int ok = 0;
    tern_context *ctx = NULL;
    tern_matrix *matrix = NULL;
    float *w = malloc(sizeof(float) * ROWS * COLS);
    float *w_deq = malloc(sizeof(float) * ROWS * COLS);
    float *x = malloc(sizeof(float) * MAX_TOKENS * COLS);
    float *y = malloc(sizeof(float) * MAX_TOKENS * ROWS);
    void *packed = NULL;
    size_t packed_len = 0;
    if (!w || !w_deq || !x || !y) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    printf("tern %s (header %s), cpu features 0x%llx\n", tern_version_string(),
           TERN_VERSION_STRING, (unsigned long long)tern_cpu_features());
    if (tern_version() != TERN_VERSION_NUMBER) {
        fprintf(stderr, "library version 0x%06x != header version 0x%06x\n",
                (unsigned)tern_version(), (unsigned)TERN_VERSION_NUMBER);
        goto done;
    }

    for (size_t i = 0; i < (size_t)ROWS * COLS; i++) w[i] = (float)(0.02 * rand_normal());
    for (size_t i = 0; i < (size_t)MAX_TOKENS * COLS; i++) x[i] = (float)rand_normal();

    /* A context is optional (NULL = process-wide default); one is created here to show how. */
    tern_context_options copts = TERN_CONTEXT_OPTIONS_INIT;
    CHECK(tern_context_create(&copts, &ctx));

    /* Quantize the layer into a matrix handle. */
    tern_layout layout = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    tern_quant_stats stats = TERN_QUANT_STATS_INIT;
    double t0 = seconds();
    CHECK(tern_matrix_from_f32(ctx, &layout, w, ROWS, COLS, NULL, &stats, &matrix));
    double t_quant = seconds() - t0;

    tern_matrix_properties props = TERN_MATRIX_PROPERTIES_INIT;
    CHECK(tern_matrix_info(matrix, &props));
    printf("matrix %lld x %lld, kernel %s, quantized in %.1f ms\n", (long long)props.rows,
           (long long)props.cols, props.kernel_name, 1e3 * t_quant);
    printf("  packed %zu bytes (f32: %zu bytes), %.3f bits/weight, %.1fx smaller than f32, "
           "%.1fx than f16\n",
           props.packed_bytes, sizeof(float) * ROWS * COLS, stats.bits_per_weight,
           stats.compression_vs_f32, stats.compression_vs_f16);
    printf("  sparsity %.2f%% zeros, scale %g, quantization RMSE %.3g (weights' std 0.02)\n",
           100.0 * stats.sparsity, (double)props.scale, stats.rmse);

    /* Reference weights: the same quantization as a packed buffer, expanded back to floats. */
    CHECK(tern_packed_size(&layout, ROWS, COLS, &packed_len));
    if (packed_len != props.packed_bytes) {
        fprintf(stderr, "tern_packed_size %zu != matrix packed_bytes %zu\n", packed_len,
                props.packed_bytes);
        goto done;
    }
    packed = malloc(packed_len);
    if (!packed) goto done;
    CHECK(tern_quantize(ctx, &layout, w, ROWS, COLS, NULL, packed, packed_len, NULL));
    CHECK(tern_dequantize(&layout, packed, packed_len, ROWS, COLS, w_deq));

    const int64_t token_counts[2] = {1, MAX_TOKENS};
    for (int c = 0; c < 2; c++) {
        const int64_t n = token_counts[c];
        tern_gemm_options gopts = TERN_GEMM_OPTIONS_INIT; /* compat = TERN_COMPAT_DEFAULT */
        t0 = seconds();
        CHECK(tern_gemm(ctx, matrix, x, n, 0, y, 0, &gopts));
        double t_gemm = seconds() - t0;

        /* err: vs dequantized weights (what tern computes up to activation rounding);
         * err_f32: vs the original f32 weights (the ternarization itself, informative only). */
        double err2 = 0, ref2 = 0, max_abs = 0, err_f32 = 0, ref_f32 = 0;
        for (int64_t t = 0; t < n; t++) {
            const float *xt = x + t * COLS;
            for (int64_t r = 0; r < ROWS; r++) {
                double ref = 0, ref_orig = 0;
                const float *wr = w_deq + r * COLS, *wo = w + r * COLS;
                for (int64_t k = 0; k < COLS; k++) {
                    ref += (double)wr[k] * xt[k];
                    ref_orig += (double)wo[k] * xt[k];
                }
                double d = (double)y[t * ROWS + r] - ref;
                err2 += d * d;
                ref2 += ref * ref;
                if (fabs(d) > max_abs) max_abs = fabs(d);
                err_f32 += ((double)y[t * ROWS + r] - ref_orig) * ((double)y[t * ROWS + r] - ref_orig);
                ref_f32 += ref_orig * ref_orig;
            }
        }
        double rel = sqrt(err2 / ref2);
        printf("gemm %lld token(s): %.2f ms; vs dequantized-weight f32 reference: max |err| %.3g, "
               "relative RMS %.3f%%; vs original f32 weights: relative RMS %.1f%%\n",
               (long long)n, 1e3 * t_gemm, max_abs, 100.0 * rel, 100.0 * sqrt(err_f32 / ref_f32));
        if (!(rel < MAX_REL_RMS)) {
            fprintf(stderr, "FAIL: relative RMS error %.3f%% exceeds %.1f%%\n", 100.0 * rel,
                    100.0 * MAX_REL_RMS);
            goto done;
        }
    }
    if (tern_last_error_message() != NULL) {
        fprintf(stderr, "FAIL: last error set after successful calls\n");
        goto done;
    }
    ok = 1;
    printf("quickstart: OK\n");

done:
    tern_matrix_destroy(matrix);
    tern_context_destroy(ctx);
    free(packed);
    free(w);
    free(w_deq);
    free(x);
    free(y);
    return ok ? 0 : 1;
}
