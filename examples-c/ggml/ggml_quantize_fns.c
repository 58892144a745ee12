/* ggml_quantize_fns.c: port of ggml's tests/test-quantize-fns.cpp for TQ1_0 and TQ2_0, run over
 * tern's functions, with ggml's own numbers on the same data printed beside them.
 *
 * Same data and metric as ggml: test_size = 32·128 = 4096 floats, x_i = 0.1 + 2·cos(i + offset)
 * (offset 0 for the weights, 1 for the second operand), "rmse" = sqrt(Σ diff²) / n. Checks, with
 * ggml's thresholds for ternary types:
 *   1. total quantization error  metric(x, to_float(from_float(x)))                  < 0.01
 *   2. reference error           metric(to_float(from_float(x)), to_float(ref(x)))   < 0.0001
 *   3. dot product error         |vec_dot(from_float(x), q8_K(x2)) - Σ x·x2| / n      < 0.15
 * where, for tern: from_float = tern_ggml_quantize_row_*, to_float = tern_ggml_dequantize_row_*,
 * the Q8_K quantizer = tern_ggml_quantize_row_q8_K, vec_dot = tern_ggml_vec_dot_*_q8_K, and the
 * reference is checked twice: against tern's checked tern_quantize(TERN_QUANT_GGML_REF), and
 * against ggml's real from_float_ref (the function test-quantize-fns compares with).
 */
#include "common.h"

#define TEST_SIZE (32 * 128)
#define MAX_QUANTIZATION_REFERENCE_ERROR 0.0001f
#define MAX_QUANTIZATION_TOTAL_ERROR_TERNARY 0.01f
#define MAX_DOT_PRODUCT_ERROR_TERNARY 0.15f

/* ggml: dst[i] = 0.1 + 2*cos(i + offset), with i converted to float as in the C++ source. */
static void generate_data(float offset, size_t n, float *dst) {
    for (size_t i = 0; i < n; i++) dst[i] = (float)(0.1 + 2 * cos((double)((float)i + offset)));
}

/* ggml's array_rmse: sqrt(Σ diff²) / n (not a true RMSE; kept as is for the same thresholds). */
static float array_rmse(const float *a1, const float *a2, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        double diff = a1[i] - a2[i];
        sum += diff * diff;
    }
    return sqrtf((float)sum) / (float)n;
}

static float dot_product(const float *a1, const float *a2, size_t n) {
    double sum = 0;
    for (size_t i = 0; i < n; i++) sum += a1[i] * a2[i];
    return (float)sum;
}

/* The three measures, as in test-quantize-fns.cpp, over a pair of trait rows. */
static float total_error(const struct ggml_type_traits *qfns, const struct ggml_type_traits_cpu *qfns_cpu,
                         const float *x) {
    static uint8_t q[2 * TEST_SIZE];
    static float out[TEST_SIZE];
    qfns_cpu->from_float(x, q, TEST_SIZE);
    qfns->to_float(q, out, TEST_SIZE);
    return array_rmse(x, out, TEST_SIZE);
}

static float reference_error(const struct ggml_type_traits *qfns, const struct ggml_type_traits_cpu *qfns_cpu,
                             const struct ggml_type_traits *ref, const float *x) {
    static uint8_t q[2 * TEST_SIZE];
    static float out[TEST_SIZE], out_ref[TEST_SIZE];
    qfns_cpu->from_float(x, q, TEST_SIZE);
    qfns->to_float(q, out, TEST_SIZE);
    ref->from_float_ref(x, q, TEST_SIZE);
    ref->to_float(q, out_ref, TEST_SIZE);
    return array_rmse(out, out_ref, TEST_SIZE);
}

static float dot_product_error(const struct ggml_type_traits_cpu *qfns_cpu,
                               const struct ggml_type_traits_cpu *vdot, const float *x1, const float *x2) {
    static uint8_t q1[2 * TEST_SIZE], q2[2 * TEST_SIZE];
    qfns_cpu->from_float(x1, q1, TEST_SIZE);
    vdot->from_float(x2, q2, TEST_SIZE);
    float result = INFINITY;
    qfns_cpu->vec_dot(TEST_SIZE, &result, 0, q1, 0, q2, 0, 1);
    const float dot_ref = dot_product(x1, x2, TEST_SIZE);
    return fabsf(result - dot_ref) / TEST_SIZE;
}

/* tern's checked API as a from_float_ref: tern_quantize(TERN_QUANT_GGML_REF), one row. */
static int32_t g_format;
static void tern_api_quantize(const float *x, void *y, int64_t k) {
    tern_layout layout = TERN_LAYOUT_INIT(g_format);
    tern_quant_options qo = TERN_QUANT_OPTIONS_INIT;
    qo.method = TERN_QUANT_GGML_REF;
    size_t len = 0;
    if (tern_packed_size(&layout, 1, k, &len) != TERN_STATUS_OK ||
        tern_quantize(NULL, &layout, x, 1, k, &qo, y, len, NULL) != TERN_STATUS_OK) {
        fprintf(stderr, "tern_quantize failed: %s\n", tern_last_error_message());
        exit(1);
    }
}

int main(void) {
    ggml_cpu_init();
    static float x1[TEST_SIZE], x2[TEST_SIZE];
    generate_data(0.0f, TEST_SIZE, x1);
    generate_data(1.0f, TEST_SIZE, x2);

    printf("test-quantize-fns port, %d values, thresholds: total %.4f, reference %.4f, dot %.2f\n",
           TEST_SIZE, MAX_QUANTIZATION_TOTAL_ERROR_TERNARY, MAX_QUANTIZATION_REFERENCE_ERROR,
           MAX_DOT_PRODUCT_ERROR_TERNARY);
    printf("%-6s %-5s %12s %14s %14s %12s\n", "type", "impl", "total err", "ref err (tern)",
           "ref err (ggml)", "dot err");
    for (int t = 0; t < 2; t++) {
        const tq_type *tt = &TQ_TYPES[t];
        const struct ggml_type_traits *gb = ggml_get_type_traits(tt->type);
        const struct ggml_type_traits_cpu *gc = ggml_get_type_traits_cpu(tt->type);
        g_format = tt->format;
        /* tern's functions in ggml's own trait structs, as a fork's patched rows hold them. */
        const struct ggml_type_traits tern_base = {
            .type_name = gb->type_name, .blck_size = QK, .type_size = tt->block_bytes,
            .is_quantized = true, .to_float = tt->dequantize_row, .from_float_ref = tern_api_quantize};
        const struct ggml_type_traits_cpu tern_cpu = {
            .from_float = tt->quantize_row, .vec_dot = tt->vec_dot, .vec_dot_type = GGML_TYPE_Q8_K,
            .nrows = 1};
        const struct ggml_type_traits_cpu tern_q8k = {.from_float = tern_ggml_quantize_row_q8_K};

        const float t_total = total_error(&tern_base, &tern_cpu, x1);
        const float t_ref_tern = reference_error(&tern_base, &tern_cpu, &tern_base, x1);
        const float t_ref_ggml = reference_error(&tern_base, &tern_cpu, gb, x1);
        const float t_dot = dot_product_error(&tern_cpu, &tern_q8k, x1, x2);
        const float g_total = total_error(gb, gc, x1);
        const float g_ref = reference_error(gb, gc, gb, x1);
        const float g_dot = dot_product_error(gc, ggml_get_type_traits_cpu(gc->vec_dot_type), x1, x2);
        printf("%-6s %-5s %12.6f %14.6f %14.6f %12.6f\n", tt->name, "tern", t_total, t_ref_tern,
               t_ref_ggml, t_dot);
        printf("%-6s %-5s %12.6f %14s %14.6f %12.6f\n", tt->name, "ggml", g_total, "-", g_ref, g_dot);

        EXPECT(t_total < MAX_QUANTIZATION_TOTAL_ERROR_TERNARY, "%s total error %f", tt->name, t_total);
        EXPECT(t_ref_tern < MAX_QUANTIZATION_REFERENCE_ERROR, "%s reference error (tern) %f", tt->name,
               t_ref_tern);
        EXPECT(t_ref_ggml < MAX_QUANTIZATION_REFERENCE_ERROR, "%s reference error (ggml) %f", tt->name,
               t_ref_ggml);
        EXPECT(t_dot < MAX_DOT_PRODUCT_ERROR_TERNARY, "%s dot product error %f", tt->name, t_dot);
        /* Same decisions as ggml: same quantization error; the dot error may differ only by the
         * f32 summation order of the final sum. */
        EXPECT(t_total == g_total, "%s total error: tern %.9g ggml %.9g", tt->name, t_total, g_total);
        EXPECT(fabsf(t_dot - g_dot) <= 1e-6f * g_dot, "%s dot error: tern %.9g ggml %.9g", tt->name,
               t_dot, g_dot);
    }
    return finish("ggml_quantize_fns");
}
