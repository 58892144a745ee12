// ggml-level test of the CPU_TERN extra buffer type, against ggml's own CPU mat-mul.
//
// test-backend-ops cannot do this at the pinned commit: it skips the CPU backend when that is the
// only device ("Skipping CPU backend"), and it allocates every tensor in the backend's default
// buffer type, never in an extra one. This program uses only ggml's public API:
//   * finds CPU_TERN among the CPU device's extra buffer types (ggml_backend_dev_get_extra_bufts);
//   * for TQ1_0, TQ2_0, Q2_0 and Q1_0 and a range of shapes (K = 64·n / 128·n not multiples of
//     256 too), token counts, thread counts, a broadcast src1 and a src1 with padded rows: puts
//     the same quantized weight in a plain CPU buffer and in CPU_TERN, runs MUL_MAT on both, and
//     compares; Q2_0 also with code-3 weights (+2d: valid data ggml's quantizer never writes);
//   * the same for MUL_MAT_ID (mixture-of-experts: a 3-D weight, one matrix per expert, and the
//     experts each token uses), for several expert counts, used counts, token counts and thread
//     counts, src1 with one row per token (broadcast to every slot) or one per slot, random or
//     repeated expert choices;
//   * checks what supports_op() must decline, that the buffer does not hold the weight's bytes,
//     and that a weight written in two set_tensor pieces is converted once complete.
//
// Tolerances. tern (TERN_COMPAT_GGML) quantizes activations to ggml's vec_dot_type (Q8_K for the
// TQ types, Q8_0 for Q2_0/Q1_0) exactly as ggml does and forms the same per-block integer sums;
// what remains is float rounding in the block scales and the block sum. So each output is
// checked against the exact (f64) dot of the weight with ggml's own activation blocks:
// |tern − exact| ≤ 1e-6 · B · S, S = Σ_k |w_k·x_k|, B = K / (activation block: 256 or 32) (a few
// f32 ulps of S per block; tern adds the f32 block terms in ggml's order, about B roundings).
// ggml's AVX2 TQ kernels round more (lane partials; measured up to 2.9e-6 · S from the exact dot
// for one block and 48 tokens, while tern stays within 8e-8 · S), so tern vs ggml is checked at
// 1e-5 · B · S. On x86 ggml runs Q2_0 through its generic C loop, whose order tern's follows, so
// there every Q2_0 output must equal ggml's bitwise (checked); Q1_0 has an AVX2 kernel (its own
// order). The count of bitwise equal outputs is printed. A wrong row, token or scale shows up as
// an error of order S.
// Usage: test-tern-buft   (exit status 0 = pass; prints one line per case)

#include "ggml-alloc.h"
#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "ggml.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

static int g_failures = 0;

#define CHECK(cond, ...)                      \
    do {                                      \
        if (!(cond)) {                        \
            fprintf(stderr, "FAIL: " __VA_ARGS__); \
            fprintf(stderr, "\n");            \
            g_failures++;                     \
        }                                     \
    } while (0)

static ggml_backend_buffer_type_t find_tern_buft(ggml_backend_dev_t dev) {
    auto get_extra = (ggml_backend_dev_get_extra_bufts_t) ggml_backend_reg_get_proc_address(
        ggml_backend_dev_backend_reg(dev), "ggml_backend_dev_get_extra_bufts");
    if (!get_extra) {
        return nullptr;
    }
    for (ggml_backend_buffer_type_t * b = get_extra(dev); b && *b; b++) {
        if (strcmp(ggml_backend_buft_name(*b), "CPU_TERN") == 0) {
            return *b;
        }
    }
    return nullptr;
}

struct mm_case {
    ggml_type type;
    int64_t   rows, cols, tokens, batch;  // batch: src1's third dimension (broadcast over W)
    int64_t   row_pad;                    // extra floats after each src1 row (nb1 > cols·4)
    int       threads;
    bool      split_set;                  // write the TERN weight in two set_tensor pieces
    bool      code3 = false;              // Q2_0: some codes set to 3 (+2d)
};

// The largest |error| of tern's outputs against the exact dot and against ggml's, as fractions
// of the allowed bounds (see the top of the file), and how many outputs equal ggml's bitwise.
struct errors {
    double  exact = 0.0, ggml = 0.0;
    int64_t equal = 0, total = 0;
};

// Checks `worst` (see the top of the file) and prints the case's line.
static void report(const std::string & name, ggml_type type, const errors & worst) {
    CHECK(worst.exact <= 1.0, "%s: tern vs exact: %.3g x the allowed bound", name.c_str(), worst.exact);
    CHECK(worst.ggml <= 1.0, "%s: tern vs ggml: %.3g x the allowed bound", name.c_str(), worst.ggml);
#if defined(__x86_64__)
    CHECK(type != GGML_TYPE_Q2_0 || worst.equal == worst.total,
          "%s: only %lld of %lld outputs equal ggml's (its generic Q2_0 loop, tern's order)", name.c_str(),
          (long long) worst.equal, (long long) worst.total);
#endif
    printf("%-76s max error of the bound: vs exact %.3f, vs ggml %.3f; %lld/%lld equal to ggml's\n", name.c_str(),
           worst.exact, worst.ggml, (long long) worst.equal, (long long) worst.total);
}

// One output row: `w` the weight's `rows` x K (dequantized), `x` the activation row, `got`
// tern's outputs, `ref` ggml's.
static void check_row(ggml_type type, const float * w, int64_t rows, int64_t K, const float * x, const float * got,
                      const float * ref, errors & worst) {
    // The exact dot on ggml's own activation blocks (its from_float for the type's vec_dot_type):
    // Q8_K (f32 d, 256 int8, 16 int16 sums) or Q8_0 (f16 d, 32 int8).
    const ggml_type      vt       = ggml_get_type_traits_cpu(type)->vec_dot_type;
    const int64_t        qk       = ggml_blck_size(vt);
    const int64_t        n_blocks = K / qk;
    const size_t         q8_row   = ggml_row_size(vt, K);
    const size_t         q8_block = q8_row / n_blocks;
    const size_t         qs_at    = vt == GGML_TYPE_Q8_K ? sizeof(float) : sizeof(ggml_fp16_t);
    std::vector<uint8_t> q8(q8_row);
    ggml_get_type_traits_cpu(vt)->from_float(x, q8.data(), K);
    for (int64_t r = 0; r < rows; r++) {
        double s = 0.0, exact = 0.0;
        for (int64_t k = 0; k < K; k++) {
            s += std::fabs((double) w[r * K + k] * x[k]);
        }
        for (int64_t blk = 0; blk < n_blocks; blk++) {
            const uint8_t * qb = &q8[blk * q8_block];
            float           d;
            if (vt == GGML_TYPE_Q8_K) {
                memcpy(&d, qb, sizeof(float));
            } else {
                ggml_fp16_t h;
                memcpy(&h, qb, sizeof(h));
                d = ggml_fp16_to_fp32(h);
            }
            double dot = 0.0;
            for (int64_t j = 0; j < qk; j++) {
                dot += (double) w[r * K + blk * qk + j] * (int8_t) qb[qs_at + j];
            }
            exact += dot * d;
        }
        const double bound = (double) n_blocks * s + 1e-30;
        worst.exact        = std::max(worst.exact, std::fabs(got[r] - exact) / (1e-6 * bound));
        worst.ggml         = std::max(worst.ggml, std::fabs((double) ref[r] - got[r]) / (1e-5 * bound));
        worst.equal += got[r] == ref[r];
        worst.total++;
    }
}

// Sets about one code in eight of every Q2_0 block in `q` to 3 (+2d). A block: f16 d, then 16
// bytes of four 2-bit codes.
static void set_code3(std::vector<uint8_t> & q, std::mt19937 & rng) {
    const size_t block = sizeof(ggml_fp16_t) + 16;
    for (size_t b = 0; b + block <= q.size(); b += block) {
        for (size_t j = 0; j < 16; j++) {
            for (int f = 0; f < 4; f++) {
                if (rng() % 8 == 0) {
                    q[b + sizeof(ggml_fp16_t) + j] |= (uint8_t) (3u << (2 * f));
                }
            }
        }
    }
}

// Runs one case and prints its max error as a fraction of the allowed bound.
static void run_case(ggml_backend_t backend, ggml_backend_dev_t dev, ggml_backend_buffer_type_t tern_buft,
                     const mm_case & c, std::mt19937 & rng) {
    const int64_t M = c.rows, K = c.cols, N = c.tokens, B = c.batch;
    std::normal_distribution<float> nd(0.0f, 1.0f);

    std::vector<float> wf(M * K);
    for (auto & v : wf) {
        v = nd(rng);
    }
    std::vector<uint8_t> wq(ggml_row_size(c.type, K) * M);
    ggml_quantize_chunk(c.type, wf.data(), wq.data(), 0, M, K, nullptr);
    if (c.code3) {
        set_code3(wq, rng);
    }
    std::vector<float> wd(M * K);  // the dequantized weight, for the error bound
    ggml_get_type_traits(c.type)->to_float(wq.data(), wd.data(), M * K);

    const int64_t      xrow = K + c.row_pad;
    std::vector<float> xf(xrow * N * B);
    for (auto & v : xf) {
        v = nd(rng);
    }

    ggml_init_params ip = { ggml_tensor_overhead() * 16 + ggml_graph_overhead() * 2, nullptr, true };
    ggml_context *   wctx_ref  = ggml_init(ip);
    ggml_context *   wctx_tern = ggml_init(ip);
    ggml_context *   ctx       = ggml_init(ip);

    ggml_tensor * w_ref  = ggml_new_tensor_2d(wctx_ref, c.type, K, M);
    ggml_tensor * w_tern = ggml_new_tensor_2d(wctx_tern, c.type, K, M);
    ggml_set_name(w_tern, "w_tern");
    ggml_tensor * x_full = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, xrow, N, B);
    ggml_tensor * x      = c.row_pad ? ggml_view_3d(ctx, x_full, K, N, B, x_full->nb[1], x_full->nb[2], 0) : x_full;
    ggml_tensor * y_ref  = ggml_mul_mat(ctx, w_ref, x);
    ggml_tensor * y_tern = ggml_mul_mat(ctx, w_tern, x);
    // A src1 whose tokens are not contiguous rows (N > 1): tern must decline it.
    ggml_tensor * xt     = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, N, K);
    ggml_tensor * y_decl = ggml_mul_mat(ctx, w_tern, ggml_transpose(ctx, xt));

    ggml_backend_buffer_t buf_ref  = ggml_backend_alloc_ctx_tensors_from_buft(wctx_ref, ggml_backend_cpu_buffer_type());
    ggml_backend_buffer_t buf_tern = ggml_backend_alloc_ctx_tensors_from_buft(wctx_tern, tern_buft);
    ggml_backend_buffer_t buf_x    = ggml_backend_alloc_ctx_tensors(ctx, backend);
    const std::string     name = std::string(ggml_type_name(c.type)) + " " + std::to_string(M) + "x" +
                             std::to_string(K) + " tokens=" + std::to_string(N) + " batch=" + std::to_string(B) +
                             " pad=" + std::to_string(c.row_pad) + " threads=" + std::to_string(c.threads) +
                             (c.split_set ? " split-set" : "") + (c.code3 ? " code3" : "");
    CHECK(buf_ref && buf_tern && buf_x, "%s: buffer allocation failed", name.c_str());
    if (!(buf_ref && buf_tern && buf_x)) {
        return;
    }
    CHECK(ggml_backend_buffer_get_size(buf_tern) < ggml_nbytes(w_tern),
          "%s: CPU_TERN buffer holds %zu bytes for a %zu-byte weight", name.c_str(),
          ggml_backend_buffer_get_size(buf_tern), ggml_nbytes(w_tern));

    ggml_backend_tensor_set(w_ref, wq.data(), 0, wq.size());
    if (c.split_set) {
        const size_t half = wq.size() / 2;
        ggml_backend_tensor_set(w_tern, wq.data(), 0, half);
        ggml_backend_tensor_set(w_tern, wq.data() + half, half, wq.size() - half);
    } else {
        ggml_backend_tensor_set(w_tern, wq.data(), 0, wq.size());
    }
    ggml_backend_tensor_set(x_full, xf.data(), 0, xf.size() * sizeof(float));

    CHECK(ggml_backend_dev_supports_op(dev, y_tern), "%s: CPU_TERN declined a plain f32 mat-mul", name.c_str());
    // (With one token the transposed view is an ordinary contiguous row, rightly accepted.)
    CHECK(N == 1 || !ggml_backend_dev_supports_op(dev, y_decl), "%s: CPU_TERN accepted a transposed src1",
          name.c_str());

    ggml_backend_cpu_set_n_threads(backend, c.threads);
    for (ggml_tensor * y : { y_ref, y_tern }) {
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, y);
        CHECK(ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS, "%s: compute failed", name.c_str());
    }

    std::vector<float> a(M * N * B), b(M * N * B);
    ggml_backend_tensor_get(y_ref, a.data(), 0, a.size() * sizeof(float));
    ggml_backend_tensor_get(y_tern, b.data(), 0, b.size() * sizeof(float));
    errors worst;
    for (int64_t bt = 0; bt < B; bt++) {
        for (int64_t t = 0; t < N; t++) {
            const size_t i = (bt * N + t) * M;
            check_row(c.type, wd.data(), M, K, &xf[(bt * N + t) * xrow], &b[i], &a[i], worst);
        }
    }
    report(name, c.type, worst);

    ggml_backend_buffer_free(buf_ref);
    ggml_backend_buffer_free(buf_tern);
    ggml_backend_buffer_free(buf_x);
    ggml_free(wctx_ref);
    ggml_free(wctx_tern);
    ggml_free(ctx);
}

struct id_case {
    ggml_type type;
    int64_t   rows, cols, n_expert, n_used, tokens;
    bool      per_slot_x;  // src1 has one row per (slot, token), as for ffn_down; else one per token
    bool      same_ids;    // every token uses experts 0..n_used-1 in slot order (one run per expert)
    int       threads;
    bool      split_set;
    bool      code3 = false;
};

// MUL_MAT_ID: dst[e, t] = W[ids[e, t]] · src1 row (e % ne11, t), through ggml and through tern.
static void run_id_case(ggml_backend_t backend, ggml_backend_dev_t dev, ggml_backend_buffer_type_t tern_buft,
                        const id_case & c, std::mt19937 & rng) {
    const int64_t M = c.rows, K = c.cols, E = c.n_expert, U = c.n_used, N = c.tokens;
    const int64_t X = c.per_slot_x ? U : 1;  // src1's ne[1]
    std::normal_distribution<float> nd(0.0f, 1.0f);

    std::vector<float> wf(M * K * E);
    for (auto & v : wf) {
        v = nd(rng);
    }
    std::vector<uint8_t> wq(ggml_row_size(c.type, K) * M * E);
    ggml_quantize_chunk(c.type, wf.data(), wq.data(), 0, M * E, K, nullptr);
    if (c.code3) {
        set_code3(wq, rng);
    }
    std::vector<float> wd(M * K * E);
    ggml_get_type_traits(c.type)->to_float(wq.data(), wd.data(), M * K * E);

    std::vector<float> xf(K * X * N);
    for (auto & v : xf) {
        v = nd(rng);
    }
    // Each token picks U distinct experts (a top-k choice), in random slot order.
    std::vector<int32_t> idv(U * N);
    for (int64_t t = 0; t < N; t++) {
        std::vector<int32_t> all(E);
        for (int64_t a = 0; a < E; a++) {
            all[a] = (int32_t) a;
        }
        if (!c.same_ids) {
            std::shuffle(all.begin(), all.end(), rng);
        }
        std::copy(all.begin(), all.begin() + U, &idv[t * U]);
    }

    ggml_init_params ip = { ggml_tensor_overhead() * 16 + ggml_graph_overhead() * 2, nullptr, true };
    ggml_context *   wctx_ref  = ggml_init(ip);
    ggml_context *   wctx_tern = ggml_init(ip);
    ggml_context *   ctx       = ggml_init(ip);

    ggml_tensor * w_ref  = ggml_new_tensor_3d(wctx_ref, c.type, K, M, E);
    ggml_tensor * w_tern = ggml_new_tensor_3d(wctx_tern, c.type, K, M, E);
    ggml_set_name(w_tern, "w_tern_exps");
    ggml_tensor * x      = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, X, N);
    ggml_tensor * ids    = ggml_new_tensor_2d(ctx, GGML_TYPE_I32, U, N);
    ggml_tensor * y_ref  = ggml_mul_mat_id(ctx, w_ref, x, ids);
    ggml_tensor * y_tern = ggml_mul_mat_id(ctx, w_tern, x, ids);
    // A plain MUL_MAT of the 3-D weight (ggml broadcasts it over src1's batches): declined.
    ggml_tensor * xb     = ggml_new_tensor_3d(ctx, GGML_TYPE_F32, K, 2, E);
    ggml_tensor * y_decl = ggml_mul_mat(ctx, w_tern, xb);

    ggml_backend_buffer_t buf_ref  = ggml_backend_alloc_ctx_tensors_from_buft(wctx_ref, ggml_backend_cpu_buffer_type());
    ggml_backend_buffer_t buf_tern = ggml_backend_alloc_ctx_tensors_from_buft(wctx_tern, tern_buft);
    ggml_backend_buffer_t buf_x    = ggml_backend_alloc_ctx_tensors(ctx, backend);
    const std::string     name = std::string("MUL_MAT_ID ") + ggml_type_name(c.type) + " " + std::to_string(M) + "x" +
                             std::to_string(K) + " experts=" + std::to_string(U) + "/" + std::to_string(E) +
                             " tokens=" + std::to_string(N) + (c.per_slot_x ? " x-per-slot" : "") +
                             (c.same_ids ? " same-ids" : "") + " threads=" + std::to_string(c.threads) +
                             (c.split_set ? " split-set" : "") + (c.code3 ? " code3" : "");
    CHECK(buf_ref && buf_tern && buf_x, "%s: buffer allocation failed", name.c_str());
    if (!(buf_ref && buf_tern && buf_x)) {
        return;
    }
    CHECK(ggml_backend_buffer_get_size(buf_tern) < ggml_nbytes(w_tern),
          "%s: CPU_TERN buffer holds %zu bytes for a %zu-byte weight", name.c_str(),
          ggml_backend_buffer_get_size(buf_tern), ggml_nbytes(w_tern));

    ggml_backend_tensor_set(w_ref, wq.data(), 0, wq.size());
    if (c.split_set) {
        // Pieces that do not end on an expert's boundary.
        const size_t cut = wq.size() / 2 + ggml_row_size(c.type, K);
        ggml_backend_tensor_set(w_tern, wq.data(), 0, cut);
        ggml_backend_tensor_set(w_tern, wq.data() + cut, cut, wq.size() - cut);
    } else {
        ggml_backend_tensor_set(w_tern, wq.data(), 0, wq.size());
    }
    ggml_backend_tensor_set(x, xf.data(), 0, xf.size() * sizeof(float));
    ggml_backend_tensor_set(ids, idv.data(), 0, idv.size() * sizeof(int32_t));

    CHECK(ggml_backend_dev_supports_op(dev, y_tern), "%s: CPU_TERN declined a MUL_MAT_ID", name.c_str());
    CHECK(!ggml_backend_dev_supports_op(dev, y_decl), "%s: CPU_TERN accepted a MUL_MAT of a 3-D weight", name.c_str());

    ggml_backend_cpu_set_n_threads(backend, c.threads);
    for (ggml_tensor * y : { y_ref, y_tern }) {
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, y);
        CHECK(ggml_backend_graph_compute(backend, gf) == GGML_STATUS_SUCCESS, "%s: compute failed", name.c_str());
    }

    std::vector<float> a(M * U * N), b(M * U * N);
    ggml_backend_tensor_get(y_ref, a.data(), 0, a.size() * sizeof(float));
    ggml_backend_tensor_get(y_tern, b.data(), 0, b.size() * sizeof(float));
    errors worst;
    for (int64_t t = 0; t < N; t++) {
        for (int64_t e = 0; e < U; e++) {
            const int64_t i = (t * U + e) * M;
            check_row(c.type, &wd[idv[t * U + e] * M * K], M, K, &xf[(t * X + e % X) * K], &b[i], &a[i], worst);
        }
    }
    report(name, c.type, worst);

    ggml_backend_buffer_free(buf_ref);
    ggml_backend_buffer_free(buf_tern);
    ggml_backend_buffer_free(buf_x);
    ggml_free(wctx_ref);
    ggml_free(wctx_tern);
    ggml_free(ctx);
}

int main() {
    ggml_backend_dev_t dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
    if (!dev) {
        fprintf(stderr, "FAIL: no CPU device\n");
        return 1;
    }
    ggml_backend_buffer_type_t tern_buft = find_tern_buft(dev);
    if (!tern_buft) {
        fprintf(stderr, "FAIL: the CPU device has no CPU_TERN extra buffer type (not a -DGGML_TERN=ON build?)\n");
        return 1;
    }
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);

    std::mt19937         rng(42);
    std::vector<mm_case> cases;
    const ggml_type types[] = { GGML_TYPE_TQ1_0, GGML_TYPE_TQ2_0, GGML_TYPE_Q2_0, GGML_TYPE_Q1_0 };
    for (ggml_type type : types) {
        // rows: under one 64-row panel, not a multiple of 64, BitNet's shapes (640 = kv, 2560)
        cases.push_back({ type, 64, 256, 1, 1, 0, 1, false });
        cases.push_back({ type, 512, 256, 48, 1, 0, 2, false });  // one block, many tokens
        cases.push_back({ type, 100, 512, 3, 1, 0, 2, false });
        cases.push_back({ type, 64, 768, 5, 1, 0, 3, false });  // more threads than panels
        cases.push_back({ type, 640, 2560, 1, 1, 0, 2, false });
        cases.push_back({ type, 640, 2560, 33, 1, 0, 2, false });
        cases.push_back({ type, 2560, 2560, 1, 1, 0, 1, false });
        cases.push_back({ type, 256, 6912, 17, 1, 0, 2, false });  // ffn_down's K
        cases.push_back({ type, 192, 512, 7, 3, 0, 2, false });    // src1 batch broadcast
        cases.push_back({ type, 128, 512, 4, 1, 9, 2, false });    // padded src1 rows
        cases.push_back({ type, 128, 1024, 2, 1, 0, 2, true });    // weight set in two pieces
    }
    // K = 64·n / 128·n that is not a multiple of 256, down to one block; Q2_0's code 3.
    cases.push_back({ GGML_TYPE_Q2_0, 100, 320, 5, 1, 0, 2, false });
    cases.push_back({ GGML_TYPE_Q2_0, 64, 64, 3, 1, 0, 1, false });
    cases.push_back({ GGML_TYPE_Q2_0, 192, 832, 17, 2, 0, 3, false });
    cases.push_back({ GGML_TYPE_Q1_0, 100, 384, 5, 1, 0, 2, false });
    cases.push_back({ GGML_TYPE_Q1_0, 64, 128, 3, 1, 0, 1, false });
    cases.push_back({ GGML_TYPE_Q1_0, 192, 1152, 17, 2, 0, 3, false });
    cases.push_back({ GGML_TYPE_Q2_0, 128, 320, 9, 1, 0, 2, false, true });
    cases.push_back({ GGML_TYPE_Q2_0, 640, 2560, 33, 1, 0, 2, false, true });
    cases.push_back({ GGML_TYPE_Q2_0, 256, 6912, 1, 1, 0, 1, true, true });
    for (const auto & c : cases) {
        run_case(backend, dev, tern_buft, c, rng);
    }

    std::vector<id_case> id_cases;
    for (ggml_type type : types) {
        // rows, cols, experts, used, tokens, x per slot, same ids, threads, split set
        id_cases.push_back({ type, 64, 256, 4, 2, 1, false, false, 1, false });    // one token (generation)
        id_cases.push_back({ type, 128, 512, 8, 2, 5, false, false, 2, false });
        id_cases.push_back({ type, 100, 768, 8, 3, 7, true, false, 3, false });    // ffn_down-like src1
        id_cases.push_back({ type, 192, 256, 32, 8, 33, false, false, 2, false }); // some experts unused
        id_cases.push_back({ type, 64, 512, 2, 1, 16, false, false, 3, false });   // long same-slot runs
        id_cases.push_back({ type, 128, 256, 6, 4, 9, true, true, 2, false });     // one run per expert
        id_cases.push_back({ type, 128, 512, 4, 2, 3, false, false, 2, true });    // weight in two pieces
    }
    id_cases.push_back({ GGML_TYPE_Q2_0, 128, 320, 8, 2, 5, false, false, 2, false });
    id_cases.push_back({ GGML_TYPE_Q1_0, 100, 384, 8, 3, 7, true, false, 3, false });
    id_cases.push_back({ GGML_TYPE_Q2_0, 128, 448, 6, 2, 9, true, false, 2, true, true });
    for (const auto & c : id_cases) {
        run_id_case(backend, dev, tern_buft, c, rng);
    }
    ggml_backend_free(backend);
    if (g_failures) {
        fprintf(stderr, "test-tern-buft: %d failure(s)\n", g_failures);
        return 1;
    }
    printf("test-tern-buft: all %zu cases pass\n", cases.size() + id_cases.size());
    return 0;
}
