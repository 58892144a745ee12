// ggml CPU extra buffer type "CPU_TERN": TQ1_0 / TQ2_0 / Q2_0 / Q1_0 weights run through tern.
//
// Compiled inside ggml-cpu (the patch in this folder adds it under -DGGML_TERN=ON), next to
// CPU_REPACK, AMX and KleidiAI, which plug in the same way (ggml-cpu/traits.h):
//   * llama.cpp asks supports_op() for each weight's MUL_MAT (2-D weights) or MUL_MAT_ID (3-D
//     mixture-of-experts weights, one matrix per expert); where it says yes, the weight is
//     allocated in this buffer type and loaded through set_tensor(), which turns the ggml bytes
//     into tern_matrix objects (tern's own kernel layout), one per expert. The buffer keeps only
//     a small slot per such tensor (get_alloc_size), so the original bytes are not held twice.
//   * At compute time ggml's threads each call compute_forward() with params->ith / nth; every
//     thread runs tern_gemm on its own range of output rows, with a tern context of one thread
//     (tern starts and spins no threads of its own) and TERN_COMPAT_GGML (activations quantized
//     to ggml's vec_dot_type for the weight, Q8_K for TQ1_0/TQ2_0 and Q8_0 for Q2_0/Q1_0, as ggml
//     does, block sums in ggml's order: the outputs are ggml's to float rounding).
//   * The ggml bytes of all four types are tern formats as they are (TERN_FORMAT_TQ1_0/TQ2_0/
//     Q2_0/Q1_0 are byte-identical to ggml's blocks): tern_matrix_create reads them directly.
// Whatever tern does not run is declined in supports_op() and stays on ggml's own CPU code.
//
// GGML_TERN_STATS=1 in the environment prints, at exit, how many mat-muls (MUL_MAT and
// MUL_MAT_ID ops) tern ran and the time they took (thread 0's wall time inside compute_forward,
// summed over calls), one-token calls apart from multi-token ones.

#include "ggml-backend-impl.h"
#include "ggml-cpu.h"
#include "ggml-impl.h"
#include "traits.h"
#include "tern.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

ggml_backend_buffer_type_t ggml_backend_cpu_tern_buffer_type(void);

namespace ggml::cpu::tern {

// tern's panel kernels compute 64 rows at a time: row ranges that start on a multiple of 64
// keep every thread on whole panels.
static constexpr int64_t ROW_ALIGN = 64;

// What slot a converted weight keeps in the buffer: tensor->data must be a distinct non-NULL
// address inside the buffer, but nothing reads it.
static constexpr size_t SLOT_BYTES = TENSOR_ALIGNMENT;

static const tern_context * single_thread_context() {
    static tern_context * ctx = [] {
        tern_context_options o = TERN_CONTEXT_OPTIONS_INIT;
        o.n_threads            = 1;  // the caller's thread only: ggml owns the threads
        tern_context *       c = nullptr;
        if (tern_context_create(&o, &c) != TERN_STATUS_OK) {
            GGML_LOG_WARN("%s: tern_context_create failed (%s); CPU_TERN disabled\n", __func__,
                          tern_last_error_message());
            return (tern_context *) nullptr;
        }
        return c;
    }();
    return ctx;
}

// Calls with one token (generation) and with several (prompt batches) apart: their costs differ.
struct op_stats {
    bool enabled = std::getenv("GGML_TERN_STATS") != nullptr;

    struct bucket {
        std::atomic<uint64_t> calls{ 0 };
        std::atomic<uint64_t> tokens{ 0 };
        std::atomic<uint64_t> ns{ 0 };
    } one, many;

    void add(uint64_t tokens, uint64_t ns) {
        bucket & b = tokens == 1 ? one : many;
        b.calls++;
        b.tokens += tokens;
        b.ns += ns;
    }

    ~op_stats() {
        if (enabled) {
            fprintf(stderr,
                    "ggml-tern: %llu mul_mat calls through tern (thread 0 wall time): %llu one-token calls %.3f ms, "
                    "%llu multi-token calls (%llu token rows) %.3f ms\n",
                    (unsigned long long) (one.calls + many.calls), (unsigned long long) one.calls.load(),
                    one.ns.load() / 1e6, (unsigned long long) many.calls.load(),
                    (unsigned long long) many.tokens.load(), many.ns.load() / 1e6);
        }
    }
};

static op_stats g_stats;

// The tern format holding a ggml type's blocks byte for byte, or -1 where there is none.
static int tern_format_of(ggml_type t) {
    switch (t) {
        case GGML_TYPE_TQ1_0: return TERN_FORMAT_TQ1_0;
        case GGML_TYPE_TQ2_0: return TERN_FORMAT_TQ2_0;
        case GGML_TYPE_Q2_0:  return TERN_FORMAT_Q2_0;
        case GGML_TYPE_Q1_0:  return TERN_FORMAT_Q1_0;
        default:              return -1;
    }
}

// A weight this buffer type converts: TQ1_0/TQ2_0/Q2_0/Q1_0, contiguous (as every GGUF weight
// is), 2-D (a MUL_MAT weight) or 3-D (ne[2] experts of a MUL_MAT_ID, each a contiguous [ne1, ne0]
// slice), rows of whole blocks (as ggml itself requires: 256 / 64 / 128 weights).
static bool is_tern_weight(const ggml_tensor * t) {
    return tern_format_of(t->type) >= 0 && (ggml_n_dims(t) == 2 || ggml_n_dims(t) == 3) &&
           ggml_is_contiguous(t) && t->view_src == nullptr && t->ne[0] % ggml_blck_size(t->type) == 0;
}

static bool in_tern_buffer(const ggml_tensor * t) {
    return t->buffer && t->buffer->buft == ggml_backend_cpu_tern_buffer_type();
}

// f32 activations whose tokens are contiguous rows (any row stride) and f32 output rows, as
// tern_gemm reads and writes them.
static bool f32_rows(const ggml_tensor * op, const ggml_tensor * x) {
    return x->type == GGML_TYPE_F32 && op->type == GGML_TYPE_F32 && x->nb[0] == sizeof(float) &&
           x->nb[1] % sizeof(float) == 0 && x->nb[2] % sizeof(float) == 0 && x->nb[3] % sizeof(float) == 0 &&
           op->nb[0] == sizeof(float) && op->nb[1] % sizeof(float) == 0 && op->nb[2] % sizeof(float) == 0 &&
           op->nb[3] % sizeof(float) == 0 && (!x->buffer || ggml_backend_buft_is_host(x->buffer->buft));
}

// A MUL_MAT or MUL_MAT_ID that tern_gemm computes as ggml would. MUL_MAT: a converted 2-D
// weight times src1 (which may have more dimensions, broadcast over the weight). MUL_MAT_ID: a
// converted 3-D weight, src1 [K, ne11, n_tokens], ids I32 [n_expert_used, n_tokens].
static bool runs_in_tern(const ggml_tensor * op) {
    const ggml_tensor * w = op->src[0];
    const ggml_tensor * x = op->src[1];
    if (!in_tern_buffer(w) || !is_tern_weight(w) || x->ne[0] != w->ne[0] || !f32_rows(op, x)) {
        return false;
    }
    if (op->op == GGML_OP_MUL_MAT) {
        return w->ne[2] == 1;  // ggml would broadcast a 3-D weight over src1's batches
    }
    const ggml_tensor * ids = op->src[2];
    return op->op == GGML_OP_MUL_MAT_ID && ids && ids->type == GGML_TYPE_I32 && x->ne[3] == 1 &&
           ids->ne[1] == x->ne[2] && x->ne[1] > 0 && ids->ne[0] % x->ne[1] == 0 && op->ne[0] == w->ne[1] &&
           op->ne[1] == ids->ne[0] && op->ne[2] == ids->ne[1] &&
           (!ids->buffer || ggml_backend_buft_is_host(ids->buffer->buft));
}

// MUL_MAT_ID's per-thread scratch (in ggml's wdata): the (token, slot) pairs grouped by expert,
// as n_expert + 1 group bounds and n_expert_used * n_tokens pair indices; a cache-line multiple,
// so that the threads' parts do not share a line.
static size_t id_scratch_bytes(const ggml_tensor * op) {
    const int64_t n_expert = op->src[0]->ne[2];
    const int64_t n_pairs  = op->src[2]->ne[0] * op->src[2]->ne[1];
    return GGML_PAD((size_t) (n_expert + 1 + n_pairs) * sizeof(int64_t), 64);
}

// One per converted weight, in tensor->extra.
struct tensor_traits : ggml::cpu::tensor_traits {
    // One matrix per expert (ne[2] of them; a 2-D weight has one).
    std::vector<tern_matrix *> matrices;
    // Bytes of a weight written in several set_tensor pieces, until the last piece arrives.
    std::vector<uint8_t>       pending;
    size_t                     pending_bytes = 0;

    ~tensor_traits() override { destroy(matrices); }

    static void destroy(std::vector<tern_matrix *> & ms) {
        for (tern_matrix * m : ms) {
            tern_matrix_destroy(m);
        }
        ms.clear();
    }

    bool work_size(int n_threads, const ggml_tensor * op, size_t & size) override {
        // MUL_MAT needs none: tern_gemm quantizes the activations into its own per-thread scratch.
        size = op->op == GGML_OP_MUL_MAT_ID ? (size_t) n_threads * id_scratch_bytes(op) : 0;
        return true;
    }

    bool compute_forward(ggml_compute_params * params, ggml_tensor * op) override {
        if (op->op != GGML_OP_MUL_MAT && op->op != GGML_OP_MUL_MAT_ID) {
            return false;
        }
        // ggml runs an extra buffer's op here even where supports_op() declined it (a graph
        // computed without the scheduler), and cannot fall back: its own kernel would read the
        // weight's empty slot.
        if (!runs_in_tern(op)) {
            GGML_ABORT("CPU_TERN: '%s' (%s %s x %s) is not a mat-mul tern can run", op->name, ggml_op_name(op->op),
                       ggml_type_name(op->src[0]->type), ggml_type_name(op->src[1]->type));
        }
        if (matrices.empty()) {
            GGML_ABORT("CPU_TERN: weight '%s' was never loaded (no set_tensor before compute)", op->src[0]->name);
        }
        const int64_t rows = op->ne[0];

        // Thread ith computes output rows [r0, r1) of every token: the threads write disjoint
        // parts of dst and need no barrier.
        const int64_t blocks = (rows + ROW_ALIGN - 1) / ROW_ALIGN;
        const int64_t r0     = std::min(rows, blocks * params->ith / params->nth * ROW_ALIGN);
        const int64_t r1     = std::min(rows, blocks * (params->ith + 1) / params->nth * ROW_ALIGN);
        if (r0 >= r1) {
            return true;
        }
        const auto t0 = g_stats.enabled && params->ith == 0 ? std::chrono::steady_clock::now()
                                                            : std::chrono::steady_clock::time_point{};

        tern_gemm_options go = TERN_GEMM_OPTIONS_INIT;
        go.compat            = TERN_COMPAT_GGML;
        go.row_begin         = r0;
        go.row_end           = r1;
        int64_t tokens;
        if (op->op == GGML_OP_MUL_MAT) {
            mul_mat(op, go);
            tokens = op->src[1]->ne[1] * op->src[1]->ne[2] * op->src[1]->ne[3];
        } else {
            mul_mat_id(params, op, go);
            tokens = op->src[2]->ne[1];
        }
        if (g_stats.enabled && params->ith == 0) {
            g_stats.add((uint64_t) tokens, (uint64_t) std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::steady_clock::now() - t0)
                                               .count());
        }
        return true;
    }

    static void gemm(const ggml_tensor * op, const tern_matrix * m, const float * x, int64_t n, int64_t x_stride,
                     float * y, int64_t y_stride, const tern_gemm_options & go) {
        if (tern_gemm(single_thread_context(), m, x, n, x_stride, y, y_stride, &go) != TERN_STATUS_OK) {
            // runs_in_tern() admitted only what tern_gemm accepts; no fallback (above).
            GGML_ABORT("CPU_TERN: tern_gemm failed on '%s': %s", op->name, tern_last_error_message());
        }
    }

    void mul_mat(const ggml_tensor * op, const tern_gemm_options & go) const {
        const ggml_tensor * src1 = op->src[1];
        for (int64_t i3 = 0; i3 < src1->ne[3]; i3++) {
            for (int64_t i2 = 0; i2 < src1->ne[2]; i2++) {
                const float * x =
                    (const float *) ((const char *) src1->data + i2 * src1->nb[2] + i3 * src1->nb[3]);
                float * y = (float *) ((char *) op->data + i2 * op->nb[2] + i3 * op->nb[3]);
                gemm(op, matrices[0], x, src1->ne[1], src1->nb[1] / sizeof(float), y, op->nb[1] / sizeof(float), go);
            }
        }
    }

    // dst row (e, t) = expert ids[e, t] times src1 row (e % ne11, t). Each thread groups the
    // pairs by expert itself (a counting sort of n_expert_used * n_tokens ids: no barrier, no
    // shared state), then per expert calls tern_gemm on runs of its pairs whose src1 rows and
    // dst rows are each evenly spaced (one call for a run, e.g. consecutive tokens in the same
    // slot), one token per call otherwise.
    // A faster version would (1) copy each expert's src1 rows into one block of wdata and take
    // its outputs in another, scattering them afterwards, so that every expert is one
    // tern_gemm call whatever the ids; (2) quantize each src1 row to Q8_K / Q8_0 once, split over the
    // threads before a barrier, rather than once per (expert, thread) inside tern_gemm: that
    // needs a tern entry point taking ggml's Q8_K / Q8_0 blocks (tern_gemm_i8 takes one scale
    // per token, not one per 256 / 32 values).
    void mul_mat_id(const ggml_compute_params * params, const ggml_tensor * op, const tern_gemm_options & go) const {
        const ggml_tensor * src1     = op->src[1];
        const ggml_tensor * ids      = op->src[2];
        const int64_t       n_expert = (int64_t) matrices.size();
        const int64_t       n_used   = ids->ne[0];
        const int64_t       n_tokens = ids->ne[1];
        const size_t        scratch  = id_scratch_bytes(op);
        GGML_ASSERT(params->wsize >= (size_t) params->nth * scratch);

        // After the fill below, expert a's pairs are pairs[end[a - 1] .. end[a]) (end[-1] = 0),
        // each p = t * n_used + e, in increasing p.
        int64_t * end   = (int64_t *) ((char *) params->wdata + params->ith * scratch);
        int64_t * pairs = end + n_expert + 1;
        std::fill(end, end + n_expert + 1, 0);
        auto expert_of = [&](int64_t p) {
            const int32_t a = *(const int32_t *) ((const char *) ids->data + (p / n_used) * ids->nb[1] +
                                                  (p % n_used) * ids->nb[0]);
            if (a < 0 || a >= n_expert) {
                GGML_ABORT("CPU_TERN: '%s': expert id %d out of range [0, %lld)", op->name, a, (long long) n_expert);
            }
            return a;
        };
        for (int64_t p = 0; p < n_used * n_tokens; p++) {
            end[expert_of(p) + 1]++;
        }
        for (int64_t a = 0; a < n_expert; a++) {
            end[a + 1] += end[a];  // end[a] = where expert a's pairs start
        }
        for (int64_t p = 0; p < n_used * n_tokens; p++) {
            pairs[end[expert_of(p)]++] = p;  // leaves end[a] at the start of expert a + 1's pairs
        }

        auto x_of = [&](int64_t p) {
            return (const char *) src1->data + (p % n_used % src1->ne[1]) * src1->nb[1] + (p / n_used) * src1->nb[2];
        };
        auto y_of = [&](int64_t p) { return (char *) op->data + (p % n_used) * op->nb[1] + (p / n_used) * op->nb[2]; };
        const ptrdiff_t x_row = src1->ne[0] * sizeof(float), y_row = op->ne[0] * sizeof(float);
        for (int64_t a = 0; a < n_expert; a++) {
            for (int64_t i = a == 0 ? 0 : end[a - 1]; i < end[a];) {
                const char * x  = x_of(pairs[i]);
                char *       y  = y_of(pairs[i]);
                int64_t      n  = 1;
                ptrdiff_t    xs = 0, ys = 0;
                if (i + 1 < end[a]) {
                    xs = x_of(pairs[i + 1]) - x;
                    ys = y_of(pairs[i + 1]) - y;
                    // Strides of at least a row: rows that neither overlap nor repeat.
                    if (xs >= x_row && ys >= y_row) {
                        while (i + n < end[a] && x_of(pairs[i + n]) - x_of(pairs[i + n - 1]) == xs &&
                               y_of(pairs[i + n]) - y_of(pairs[i + n - 1]) == ys) {
                            n++;
                        }
                    }
                }
                gemm(op, matrices[a], (const float *) x, n, n > 1 ? xs / (ptrdiff_t) sizeof(float) : 0, (float *) y,
                     n > 1 ? ys / (ptrdiff_t) sizeof(float) : 0, go);
                i += n;
            }
        }
    }

    // Builds the matrices (one per expert) from the complete ggml bytes of `tensor`.
    void convert(const ggml_tensor * tensor, const void * data, size_t size) {
        tern_layout layout = TERN_LAYOUT_INIT(tern_format_of(tensor->type));
        const int64_t              n_expert = tensor->ne[2];
        const size_t               bytes    = size / n_expert;  // contiguous: each expert one slice
        std::vector<tern_matrix *> ms;
        for (int64_t a = 0; a < n_expert; a++) {
            tern_matrix * m = nullptr;
            if (tern_matrix_create(single_thread_context(), &layout, (const uint8_t *) data + a * bytes, bytes,
                                   tensor->ne[1], tensor->ne[0], &m) != TERN_STATUS_OK) {
                // set_tensor returns nothing, and the weight's bytes are not kept: no way back.
                GGML_ABORT("CPU_TERN: cannot load '%s' (expert %lld) into tern: %s", tensor->name, (long long) a,
                           tern_last_error_message());
            }
            ms.push_back(m);
        }
        destroy(matrices);
        matrices = std::move(ms);
    }
};

// The buffer: a small host allocation (slots for converted weights, full room for anything
// else placed here) plus ownership of the tensor_traits of its weights.
struct buffer_context {
    void *                                      data = nullptr;
    size_t                                      size = 0;
    std::vector<std::unique_ptr<tensor_traits>> traits;

    ~buffer_context() { ggml_aligned_free(data, size); }
};

static buffer_context * ctx_of(ggml_backend_buffer_t buffer) {
    return (buffer_context *) buffer->context;
}

static void free_buffer(ggml_backend_buffer_t buffer) {
    delete ctx_of(buffer);
}

static void * get_base(ggml_backend_buffer_t buffer) {
    return ctx_of(buffer)->data;
}

static ggml_status init_tensor(ggml_backend_buffer_t buffer, ggml_tensor * tensor) {
    if (is_tern_weight(tensor)) {
        ctx_of(buffer)->traits.push_back(std::make_unique<tensor_traits>());
        tensor->extra = ctx_of(buffer)->traits.back().get();
    }
    return GGML_STATUS_SUCCESS;
}

static tensor_traits * traits_of(const ggml_tensor * tensor) {
    return is_tern_weight(tensor) ? (tensor_traits *) tensor->extra : nullptr;
}

static void set_tensor(ggml_backend_buffer_t, ggml_tensor * tensor, const void * data, size_t offset, size_t size) {
    tensor_traits * tt = traits_of(tensor);
    if (tt == nullptr) {
        memcpy((char *) tensor->data + offset, data, size);
        return;
    }
    const size_t total = ggml_nbytes(tensor);
    if (offset == 0 && size == total) {
        tt->convert(tensor, data, size);  // the loader's case: one call with the whole weight
        return;
    }
    // Pieces (ggml_backend_tensor_set with an offset): gather them, convert once all are in.
    if (tt->pending.empty()) {
        tt->pending.resize(total);
        tt->pending_bytes = 0;
    }
    memcpy(tt->pending.data() + offset, data, size);
    tt->pending_bytes += size;
    if (tt->pending_bytes >= total) {
        tt->convert(tensor, tt->pending.data(), total);
        std::vector<uint8_t>().swap(tt->pending);
    }
}

static void get_tensor(ggml_backend_buffer_t, const ggml_tensor * tensor, void * data, size_t offset, size_t size) {
    if (traits_of(tensor) != nullptr) {
        // The ggml bytes were not kept (that is the point of this buffer type).
        GGML_ABORT("CPU_TERN: '%s' lives in tern's layout; its ggml bytes cannot be read back", tensor->name);
    }
    memcpy(data, (const char *) tensor->data + offset, size);
}

static void memset_tensor(ggml_backend_buffer_t, ggml_tensor * tensor, uint8_t value, size_t offset, size_t size) {
    if (traits_of(tensor) != nullptr) {
        GGML_ABORT("CPU_TERN: '%s' lives in tern's layout; it cannot be memset", tensor->name);
    }
    memset((char *) tensor->data + offset, value, size);
}

static void clear(ggml_backend_buffer_t buffer, uint8_t value) {
    memset(ctx_of(buffer)->data, value, buffer->size);
}

static void reset(ggml_backend_buffer_t buffer) {
    ctx_of(buffer)->traits.clear();
}

static const ggml_backend_buffer_i buffer_interface = {
    /* .free_buffer   = */ free_buffer,
    /* .get_base      = */ get_base,
    /* .init_tensor   = */ init_tensor,
    /* .memset_tensor = */ memset_tensor,
    /* .set_tensor    = */ set_tensor,
    /* .get_tensor    = */ get_tensor,
    /* .set_tensor_2d = */ nullptr,
    /* .get_tensor_2d = */ nullptr,
    /* .cpy_tensor    = */ nullptr,
    /* .clear         = */ clear,
    /* .reset         = */ reset,
};

static const char * get_name(ggml_backend_buffer_type_t) {
    return "CPU_TERN";
}

static ggml_backend_buffer_t alloc_buffer(ggml_backend_buffer_type_t buft, size_t size) {
    auto * ctx = new buffer_context();
    ctx->data  = ggml_aligned_malloc(size);
    ctx->size  = size;
    if (ctx->data == nullptr) {
        delete ctx;
        GGML_LOG_ERROR("%s: failed to allocate %zu bytes\n", __func__, size);
        return nullptr;
    }
    return ggml_backend_buffer_init(buft, buffer_interface, ctx, size);
}

static size_t get_alignment(ggml_backend_buffer_type_t) {
    return TENSOR_ALIGNMENT;
}

static size_t get_alloc_size(ggml_backend_buffer_type_t, const ggml_tensor * tensor) {
    return is_tern_weight(tensor) ? SLOT_BYTES : ggml_nbytes(tensor);
}

class extra_buffer_type : ggml::cpu::extra_buffer_type {
    bool supports_op(ggml_backend_dev_t, const ggml_tensor * op) override {
        return runs_in_tern(op);
    }

    ggml::cpu::tensor_traits * get_tensor_traits(const ggml_tensor * op) override {
        if ((op->op == GGML_OP_MUL_MAT || op->op == GGML_OP_MUL_MAT_ID) && in_tern_buffer(op->src[0])) {
            return traits_of(op->src[0]);
        }
        return nullptr;
    }
};

}  // namespace ggml::cpu::tern

ggml_backend_buffer_type_t ggml_backend_cpu_tern_buffer_type(void) {
    static ggml_backend_buffer_type buft = {
        /* .iface   = */ {
            /* .get_name       = */ ggml::cpu::tern::get_name,
            /* .alloc_buffer   = */ ggml::cpu::tern::alloc_buffer,
            /* .get_alignment  = */ ggml::cpu::tern::get_alignment,
            /* .get_max_size   = */ nullptr,  // SIZE_MAX
            /* .get_alloc_size = */ ggml::cpu::tern::get_alloc_size,
            /* .is_host        = */ nullptr,  // tensor->data of a converted weight is not its bytes
        },
        /* .device  = */ ggml_backend_reg_dev_get(ggml_backend_cpu_reg(), 0),
        /* .context = */ new ggml::cpu::tern::extra_buffer_type(),
    };
    // Without a tern context (tern_context_create failed) the type is not registered, and
    // every TQ weight stays on ggml's own kernels.
    return ggml::cpu::tern::single_thread_context() ? &buft : nullptr;
}
