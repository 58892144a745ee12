/* ggml_mul_mat.c: tern_gemm(TERN_COMPAT_GGML) on a TQ1_0 / TQ2_0 matrix against ggml's mul_mat.
 *
 * For each type and shape (M weight rows, K columns, N tokens):
 *   weights   W (M x K, f32) -> ggml_quantize_chunk -> TQ bytes -> tern_matrix_create;
 *   reference 1: "mul_mat by hand" as ggml's CPU backend computes it: every token quantized with
 *                ggml's Q8_K from_float, then y[t][r] = ggml vec_dot(row r, token t);
 *   reference 2: a real ggml graph, ggml_mul_mat(W, X) computed by ggml_graph_compute_with_ctx
 *                with 2 threads (must equal reference 1 bitwise: same kernels);
 *   tern:        tern_gemm(ctx = NULL, all cores, compat = TERN_COMPAT_GGML) on the f32 tokens.
 * tern_gemm must also equal tern_ggml_vec_dot_* per (row, token) bitwise (same block-order sum).
 * General random data: |tern - ggml| <= 1e-6 · Σ_k |w·a| for every output (see
 * ggml_conformance.c for why the scale is Σ|w·a|). Exact-arithmetic data (block scales powers of
 * two, as in ggml_conformance.c's gen_exact): bitwise equal, and equal to the exact value.
 */
#include "common.h"

#define REL_TOL 1e-6

typedef struct {
    int64_t m, k, n;
} shape;

static const shape SHAPES[] = {
    {16, 256, 1}, {16, 256, 9}, {7, 512, 3}, {64, 1024, 5}, {33, 2560, 8}, {128, 4096, 2},
};
#define N_SHAPES ((int)(sizeof SHAPES / sizeof SHAPES[0]))

/* Exact-arithmetic data: see gen_exact in ggml_conformance.c (K <= 32·256 keeps it exact). */
static void gen_exact_rows(float *w, int64_t rows, int64_t k, int weights) {
    for (int64_t i = 0; i < rows * k / QK; i++) {
        float *b = w + i * QK;
        if (weights) {
            double d = ldexp(1.0, (int)rand_below(3) - 1);
            for (int j = 0; j < QK; j++) b[j] = (float)(d * 0.999 * rand_sym());
            b[rand_below(QK)] = (float)((rand_u64() & 1) ? d : -d);
        } else {
            double u = ldexp(1.0, -(int)rand_below(3));
            for (int j = 0; j < QK; j++) b[j] = (float)(u * 126.5 * rand_sym());
            b[rand_below(QK)] = (float)((rand_u64() & 1) ? 127 * u : -127 * u);
        }
    }
}

/* y = ggml_mul_mat(W, X) with a real ggml graph (CPU backend, plain context memory). */
static int ggml_graph_mul_mat(const tq_type *tt, const uint8_t *wq, const float *x, shape s, float *y) {
    const size_t w_bytes = (size_t)s.m * (size_t)(s.k / QK) * tt->block_bytes;
    const size_t mem = 3 * ggml_tensor_overhead() + ggml_graph_overhead() + w_bytes +
                       sizeof(float) * (size_t)(s.k * s.n + s.m * s.n) +
                       (size_t)(s.k / QK) * Q8K_BYTES * (size_t)s.n + (4 << 20);
    struct ggml_init_params params = {mem, NULL, false};
    struct ggml_context *ctx = ggml_init(params);
    if (!ctx) return 0;
    struct ggml_tensor *a = ggml_new_tensor_2d(ctx, tt->type, s.k, s.m);
    struct ggml_tensor *b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, s.k, s.n);
    memcpy(a->data, wq, w_bytes);
    memcpy(b->data, x, sizeof(float) * (size_t)(s.k * s.n));
    struct ggml_tensor *c = ggml_mul_mat(ctx, a, b); /* [M, N]: c[t][r] = row r · token t */
    struct ggml_cgraph *gf = ggml_new_graph(ctx);
    ggml_build_forward_expand(gf, c);
    int ok = ggml_graph_compute_with_ctx(ctx, gf, 2) == GGML_STATUS_SUCCESS;
    if (ok) memcpy(y, c->data, sizeof(float) * (size_t)(s.m * s.n));
    ggml_free(ctx);
    return ok;
}

static void run(const tq_type *tt, shape s, int exact) {
    const struct ggml_type_traits_cpu *c = ggml_get_type_traits_cpu(tt->type);
    const int64_t nb = s.k / QK;
    const size_t row_bytes = (size_t)nb * tt->block_bytes, q8_row = (size_t)nb * Q8K_BYTES;
    float *w = xmalloc(sizeof(float) * (size_t)(s.m * s.k));
    float *x = xmalloc(sizeof(float) * (size_t)(s.n * s.k));
    uint8_t *wq = xmalloc(row_bytes * (size_t)s.m), *xq = xmalloc(q8_row * (size_t)s.n);
    float *y_vd = xmalloc(sizeof(float) * (size_t)(s.m * s.n));
    float *y_graph = xmalloc(sizeof(float) * (size_t)(s.m * s.n));
    float *y_tern = xmalloc(sizeof(float) * (size_t)(s.m * s.n));
    tern_matrix *mat = NULL;
    const long before = g_failures;

    if (exact) {
        gen_exact_rows(w, s.m, s.k, 1);
        gen_exact_rows(x, s.n, s.k, 0);
    } else {
        for (int64_t i = 0; i < s.m * s.k; i++) w[i] = (float)(0.02 * rand_normal());
        for (int64_t i = 0; i < s.n * s.k; i++) x[i] = (float)rand_normal();
    }
    size_t written = ggml_quantize_chunk(tt->type, w, wq, 0, s.m, s.k, NULL);
    EXPECT(written == row_bytes * (size_t)s.m, "ggml_quantize_chunk wrote %zu bytes", written);

    /* reference 1: ggml's vec_dot per (row, token) on ggml's Q8_K activations */
    for (int64_t t = 0; t < s.n; t++) ggml_q8k(x + t * s.k, xq + (size_t)t * q8_row, s.k);
    for (int64_t t = 0; t < s.n; t++)
        for (int64_t r = 0; r < s.m; r++)
            c->vec_dot((int)s.k, &y_vd[t * s.m + r], 0, wq + (size_t)r * row_bytes, 0,
                       xq + (size_t)t * q8_row, 0, 1);
    /* reference 2: a real ggml graph */
    int graph_ok = ggml_graph_mul_mat(tt, wq, x, s, y_graph);
    EXPECT(graph_ok, "ggml graph compute failed");
    graph_ok = graph_ok && memcmp(y_graph, y_vd, sizeof(float) * (size_t)(s.m * s.n)) == 0;
    EXPECT(graph_ok, "%s: ggml graph mul_mat != ggml vec_dot loop (harness assumption)", tt->name);

    /* tern */
    tern_layout layout = TERN_LAYOUT_INIT(tt->format);
    tern_gemm_options go = TERN_GEMM_OPTIONS_INIT;
    go.compat = TERN_COMPAT_GGML;
    tern_status st = tern_matrix_create(NULL, &layout, wq, row_bytes * (size_t)s.m, s.m, s.k, &mat);
    EXPECT(st == TERN_STATUS_OK, "tern_matrix_create: %s %s", tern_status_name(st),
           tern_last_error_message() ? tern_last_error_message() : "");
    if (st == TERN_STATUS_OK) {
        st = tern_gemm(NULL, mat, x, s.n, 0, y_tern, 0, &go);
        EXPECT(st == TERN_STATUS_OK, "tern_gemm: %s %s", tern_status_name(st),
               tern_last_error_message() ? tern_last_error_message() : "");
    }
    if (st == TERN_STATUS_OK) {
        double worst = 0;
        long bitwise = 0;
        for (int64_t t = 0; t < s.n; t++) {
            for (int64_t r = 0; r < s.m; r++) {
                float g = y_vd[t * s.m + r], v = y_tern[t * s.m + r], own = NAN;
                /* tern_gemm sums like tern's own vec_dot (block order): bitwise */
                tt->vec_dot((int)s.k, &own, 0, wq + (size_t)r * row_bytes, 0, xq + (size_t)t * q8_row, 0, 1);
                EXPECT(f32_bits(own) == f32_bits(v), "%s: tern_gemm %a != tern vec_dot %a (token %lld row %lld)",
                       tt->name, v, own, (long long)t, (long long)r);
                double abs_terms;
                double e = exact_dot(tt, wq + (size_t)r * row_bytes, xq + (size_t)t * q8_row, s.k, &abs_terms);
                double rel = fabs((double)v - (double)g) / (abs_terms > 0 ? abs_terms : 1);
                worst = fmax(worst, rel);
                bitwise += f32_bits(g) == f32_bits(v);
                if (exact)
                    EXPECT(f32_bits(g) == f32_bits(v) && (double)v == e,
                           "%s exact %lldx%lld, token %lld row %lld: ggml %a tern %a exact %a", tt->name,
                           (long long)s.m, (long long)s.k, (long long)t, (long long)r, g, v, e);
                else
                    EXPECT(rel <= REL_TOL, "%s %lldx%lld, token %lld row %lld: ggml %.9g tern %.9g (%.3g)",
                           tt->name, (long long)s.m, (long long)s.k, (long long)t, (long long)r, g, v, rel);
            }
        }
        printf("%s %s %-7s M=%-4lld K=%-5lld N=%lld: %4lld outputs, %4ld bitwise equal to ggml, max "
               "|tern - ggml|/sum|w*a| = %.3g%s\n",
               g_failures == before ? "ok  " : "FAIL", tt->name, exact ? "exact" : "random", (long long)s.m, (long long)s.k, (long long)s.n,
               (long long)(s.m * s.n), bitwise, worst, graph_ok ? "; ggml graph == vec_dot loop" : "");
    }
    tern_matrix_destroy(mat);
    free(w), free(x), free(wq), free(xq), free(y_vd), free(y_graph), free(y_tern);
}

int main(void) {
    ggml_cpu_init();
    for (int t = 0; t < 2; t++) {
        for (int i = 0; i < N_SHAPES; i++) run(&TQ_TYPES[t], SHAPES[i], 0);
        for (int i = 0; i < N_SHAPES; i++)
            if (SHAPES[i].k <= 32 * QK) run(&TQ_TYPES[t], SHAPES[i], 1);
    }
    return finish("ggml_mul_mat");
}
