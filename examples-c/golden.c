/* golden.c: reproduce bitnet.cpp's I2_S results bit for bit, through the C API only.
 *
 * Data: tests/data/{inputs,i2s} (see tests/data/README.md), produced by running the real
 * microsoft/BitNet code. For every case and every instruction set this CPU offers it checks:
 *   - packed bytes: tern_quantize with TERN_QUANT_PRESCALED (bitnet.cpp quantize_i2_s) in both
 *     the x86 (128-element blocks) and ARM (64-element blocks) layouts; the first M*K/4 + 4 bytes
 *     (codes + f32 scale) must equal the golden file (the remaining 28 bytes are not written by
 *     bitnet.cpp);
 *   - activations: tern_quantize_activations int8 codes, scales and sums for the "current"
 *     (TERN_COMPAT_BITNET_CPP) and "legacy" (TERN_COMPAT_BITNET_CPP_LEGACY) quantizers;
 *   - outputs: tern_gemm on matrices made both ways (tern_matrix_create from the golden bytes,
 *     tern_matrix_from_f32) against out_current_f32 / out_legacy_f32, compared as bytes.
 * edge_overflow4x4096: bitnet.cpp's x86 kernel wraps its int16 accumulators there, so its
 * outputs are wrong by design; they are skipped and tern's output is checked against the exact
 * values instead (its packed bytes and activations are still compared).
 *
 * usage: golden [DIR]   DIR holds i2s/ and inputs/ (default: compiled-in TERN_GOLDEN_DIR)
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern.h"

#ifndef TERN_GOLDEN_DIR
#define TERN_GOLDEN_DIR "tests/data"
#endif

typedef struct {
    const char *name;    /* prefix of i2s/<name>.* result files */
    int64_t m, k, t;     /* rows, cols, tokens */
    const char *weights; /* inputs/<weights>.weights_f32.bin */
    const char *acts;    /* inputs/<acts> */
    int has_packed;      /* i2s/<name>.i2s_{x86,arm}_packed.bin exist */
    int overflow;        /* bitnet.cpp's outputs are wrapped: skip them */
} golden_case;

static const golden_case cases[] = {
    {"s256x256", 256, 256, 1, "s256x256", "s256x256.acts_f32.bin", 1, 0},
    {"s256x256_t8", 256, 256, 8, "s256x256", "s256x256.acts8_f32.bin", 0, 0},
    {"s320x3200", 320, 3200, 1, "s320x3200", "s320x3200.acts_f32.bin", 1, 0},
    {"s64x6912", 64, 6912, 1, "s64x6912", "s64x6912.acts_f32.bin", 1, 0},
    {"s256x1536", 256, 1536, 1, "s256x1536", "s256x1536.acts_f32.bin", 1, 0},
    {"edge_ties256", 256, 256, 1, "s256x256", "edge_ties256.acts_f32.bin", 0, 0},
    {"edge_overflow4x4096", 4, 4096, 1, "edge_overflow4x4096", "edge_overflow4x4096.acts_f32.bin", 1, 1},
};

static const char *dir = TERN_GOLDEN_DIR;
static int failures = 0;
static int checks = 0;

static void fail(const char *fmt_case, const char *what, const char *detail) {
    failures++;
    fprintf(stderr, "  FAIL %s: %s: %s\n", fmt_case, what, detail);
}

/* Reads <dir>/<sub>/<file> and checks it has exactly `want` bytes. NULL (and a failure) if not. */
static void *load(const char *sub, const char *file, size_t want) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, file);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(path, "open", "cannot open file");
        return NULL;
    }
    void *buf = malloc(want + 1);
    size_t got = buf ? fread(buf, 1, want + 1, f) : 0;
    fclose(f);
    if (got != want) {
        char detail[128];
        snprintf(detail, sizeof detail, "%zu bytes, expected %zu", got, want);
        fail(path, "size", detail);
        free(buf);
        return NULL;
    }
    return buf;
}

/* Byte comparison with a readable first difference. `elem` 1 = bytes, 4 = f32, 'i' = int32. */
static void compare(const char *cname, const char *what, const void *got, const void *want,
                    size_t n_bytes, int elem) {
    checks++;
    if (memcmp(got, want, n_bytes) == 0) return;
    const unsigned char *g = got, *w = want;
    size_t i = 0;
    while (g[i] == w[i]) i++;
    char detail[256];
    int differ = 0;
    for (size_t j = 0; j < n_bytes; j++) differ += g[j] != w[j];
    if (elem == 4) {
        float a, b;
        size_t e = i / 4;
        memcpy(&a, g + 4 * e, 4);
        memcpy(&b, w + 4 * e, 4);
        snprintf(detail, sizeof detail, "%d byte(s) differ; first at float [%zu]: %.9g vs golden %.9g",
                 differ, e, (double)a, (double)b);
    } else if (elem == 'i') {
        int32_t a, b;
        size_t e = i / 4;
        memcpy(&a, g + 4 * e, 4);
        memcpy(&b, w + 4 * e, 4);
        snprintf(detail, sizeof detail, "%d byte(s) differ; first at int32 [%zu]: %d vs golden %d",
                 differ, e, (int)a, (int)b);
    } else {
        snprintf(detail, sizeof detail, "%d byte(s) differ; first at byte %zu: 0x%02x vs golden 0x%02x",
                 differ, i, g[i], w[i]);
    }
    fail(cname, what, detail);
}

static int ok_status(const char *cname, const char *what, tern_status st) {
    checks++;
    if (st == TERN_STATUS_OK) return 1;
    char detail[512];
    const char *msg = tern_last_error_message();
    snprintf(detail, sizeof detail, "%s: %s", tern_status_name(st), msg ? msg : "(no message)");
    fail(cname, what, detail);
    return 0;
}

/* Instruction sets to try; those this CPU lacks are skipped (tern_context_create UNSUPPORTED). */
static const struct {
    int32_t isa;
    const char *name;
} isas[] = {
    {TERN_ISA_SCALAR, "scalar"}, {TERN_ISA_AVX2, "avx2"},       {TERN_ISA_AVX512, "avx512"},
    {TERN_ISA_AVX512VNNI, "avx512vnni"}, {TERN_ISA_NEON, "neon"}, {TERN_ISA_DOTPROD, "dotprod"},
    {TERN_ISA_I8MM, "i8mm"}, {TERN_ISA_AVXVNNI, "avxvnni"}, {TERN_ISA_AVX512VBMI, "avx512vbmi"},
};
#define N_ISAS (sizeof isas / sizeof isas[0])

static void run_case(const golden_case *c, tern_context *const *ctxs) {
    const size_t mk = (size_t)(c->m * c->k), code_bytes = mk / 4;
    const size_t golden_len = code_bytes + 32, meaningful = code_bytes + 4;
    const size_t n_out = (size_t)(c->t * c->m);
    char file[256];
    int before = failures;
    const int32_t variants[2] = {TERN_I2S_X86, TERN_I2S_ARM64};
    const char *vname[2] = {"x86", "arm"};
    unsigned char *golden_packed[2] = {NULL, NULL}, *ours[2] = {NULL, NULL};
    float *out_golden[2] = {NULL, NULL}, *y = malloc(sizeof(float) * n_out);

    printf("%s (M=%lld K=%lld T=%lld)\n", c->name, (long long)c->m, (long long)c->k, (long long)c->t);
    snprintf(file, sizeof file, "%s.weights_f32.bin", c->weights);
    float *w = load("inputs", file, sizeof(float) * mk);
    float *x = load("inputs", c->acts, sizeof(float) * (size_t)(c->t * c->k));
    if (!w || !x || !y) goto done;

    /* 1. packed bytes, both layouts */
    tern_quant_options qo = TERN_QUANT_OPTIONS_INIT;
    qo.method = TERN_QUANT_PRESCALED;
    for (int v = 0; v < 2; v++) {
        tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
        l.variant = (uint32_t)variants[v];
        size_t size = 0;
        if (!ok_status(c->name, "tern_packed_size", tern_packed_size(&l, c->m, c->k, &size))) goto done;
        checks++;
        if (size != golden_len) {
            fail(c->name, "tern_packed_size", "differs from M*K/4 + 32");
            goto done;
        }
        ours[v] = malloc(size);
        if (!ok_status(c->name, "tern_quantize PRESCALED",
                       tern_quantize(NULL, &l, w, c->m, c->k, &qo, ours[v], size, NULL)))
            goto done;
        if (c->has_packed) {
            snprintf(file, sizeof file, "%s.i2s_%s_packed.bin", c->name, vname[v]);
            golden_packed[v] = load("i2s", file, golden_len);
            if (!golden_packed[v]) goto done;
            char what[64];
            snprintf(what, sizeof what, "packed bytes (%s layout)", vname[v]);
            compare(c->name, what, ours[v], golden_packed[v], meaningful, 1);
        }
    }
    if (c->has_packed) printf("  packed bytes x86 + arm layouts: compared\n");

    /* 2. activations, current and legacy quantizers */
    const int32_t compat[2] = {TERN_COMPAT_BITNET_CPP, TERN_COMPAT_BITNET_CPP_LEGACY};
    const char *cname[2] = {"current", "legacy"};
    int8_t *q = malloc((size_t)(c->t * c->k));
    float *scales = malloc(sizeof(float) * (size_t)c->t);
    int32_t *sums = malloc(sizeof(int32_t) * (size_t)c->t);
    for (int a = 0; a < 2 && q && scales && sums; a++) {
        char what[64];
        if (!ok_status(c->name, "tern_quantize_activations",
                       tern_quantize_activations(NULL, x, c->t, c->k, 0, compat[a], q, scales, sums)))
            continue;
        snprintf(file, sizeof file, "%s.act_%s_i8.bin", c->name, cname[a]);
        int8_t *gq = load("i2s", file, (size_t)(c->t * c->k));
        snprintf(file, sizeof file, "%s.act_%s_scale_sum.bin", c->name, cname[a]);
        unsigned char *gss = load("i2s", file, 8 * (size_t)c->t);
        if (gq && gss) {
            snprintf(what, sizeof what, "%s int8 activations", cname[a]);
            compare(c->name, what, q, gq, (size_t)(c->t * c->k), 1);
            snprintf(what, sizeof what, "%s activation scales", cname[a]);
            compare(c->name, what, scales, gss, 4 * (size_t)c->t, 4);
            snprintf(what, sizeof what, "%s activation sums", cname[a]);
            compare(c->name, what, sums, gss + 4 * c->t, 4 * (size_t)c->t, 'i');
        }
        free(gq);
        free(gss);
    }
    free(q);
    free(scales);
    free(sums);
    printf("  activations current + legacy: compared\n");

    /* 3. outputs, for every ISA, both layouts, both ways of making the matrix */
    if (c->overflow) {
        printf("  bitnet.cpp outputs SKIPPED: its x86 kernel wraps int16 accumulators on this case\n"
               "  (golden raw dots are wrong by design); checking tern against the exact values\n");
    } else {
        for (int a = 0; a < 2; a++) {
            snprintf(file, sizeof file, "%s.out_%s_f32.bin", c->name, cname[a]);
            out_golden[a] = load("i2s", file, sizeof(float) * n_out);
            if (!out_golden[a]) goto done;
        }
    }
    /* Exact answer of edge_overflow4x4096: rows +1 / -1 / half +1 / half +1 against all-ones
     * activations with w_scale 0.25: [1024, -1024, 512, 512]. */
    static const float overflow_exact[4] = {1024.0f, -1024.0f, 512.0f, 512.0f};
    float *default_want = NULL, *default_buf = NULL;
    if (!c->overflow && strcmp(c->name, "edge_ties256") != 0) {
        default_want = out_golden[0];
    } else if (!c->overflow) {
        float *dots = load("i2s", "edge_ties256.rawdot_legacy_f32.bin", sizeof(float) * n_out);
        unsigned char *ss = load("i2s", "edge_ties256.act_legacy_scale_sum.bin", 8);
        default_buf = malloc(sizeof(float) * n_out);
        if (dots && ss && default_buf && ours[0]) {
            float s, w_scale;
            int32_t sum;
            memcpy(&s, ss, 4);
            memcpy(&sum, ss + 4, 4);
            memcpy(&w_scale, ours[0] + code_bytes, 4);
            for (size_t r = 0; r < n_out; r++) default_buf[r] = (float)((int32_t)dots[r] - sum) * (w_scale / s);
            default_want = default_buf;
        } else {
            fail(c->name, "TERN_COMPAT_DEFAULT", "cannot build the expected output");
        }
        free(dots);
        free(ss);
    }
    int ran = 0;
    for (size_t i = 0; i < N_ISAS; i++) {
        if (!ctxs[i]) continue;
        for (int v = 0; v < 2; v++) {
            tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
            l.variant = (uint32_t)variants[v];
            tern_matrix *mats[2] = {NULL, NULL};
            const unsigned char *src = golden_packed[v] ? golden_packed[v] : ours[v];
            if (!ok_status(c->name, "tern_matrix_create",
                           tern_matrix_create(ctxs[i], &l, src, golden_len, c->m, c->k, &mats[0])) ||
                !ok_status(c->name, "tern_matrix_from_f32",
                           tern_matrix_from_f32(ctxs[i], &l, w, c->m, c->k, &qo, NULL, &mats[1]))) {
                tern_matrix_destroy(mats[0]);
                tern_matrix_destroy(mats[1]);
                continue;
            }
            for (int mi = 0; mi < 2; mi++) {
                for (int a = 0; a < 2; a++) {
                    char what[160];
                    snprintf(what, sizeof what, "out_%s (isa %s, %s layout, %s)", cname[a], isas[i].name,
                             vname[v], mi == 0 ? "tern_matrix_create" : "tern_matrix_from_f32");
                    tern_gemm_options go = TERN_GEMM_OPTIONS_INIT;
                    go.compat = compat[a];
                    memset(y, 0xA5, sizeof(float) * n_out);
                    if (!ok_status(c->name, what, tern_gemm(ctxs[i], mats[mi], x, c->t, 0, y, 0, &go)))
                        continue;
                    if (!c->overflow) {
                        compare(c->name, what, y, out_golden[a], sizeof(float) * n_out, 4);
                    } else {
                        for (int r = 0; r < 4; r++) {
                            checks++;
                            if (fabsf(y[r] - overflow_exact[r]) > 1e-4f * fabsf(overflow_exact[r])) {
                                char detail[128];
                                snprintf(detail, sizeof detail, "row %d: %.9g, exact %.9g", r,
                                         (double)y[r], (double)overflow_exact[r]);
                                fail(c->name, what, detail);
                            }
                        }
                    }
                }
            }
            /* TERN_COMPAT_DEFAULT rounds half to even with the current epilogue: it equals
             * bitnet.cpp's current output wherever no product is an exact .5 tie (every random
             * case), and on edge_ties256 it equals the current epilogue applied to the legacy
             * (half-to-even) raw dots. */
            if (default_want) {
                char what[160];
                snprintf(what, sizeof what, "TERN_COMPAT_DEFAULT (isa %s, %s layout)", isas[i].name, vname[v]);
                tern_gemm_options go = TERN_GEMM_OPTIONS_INIT;
                memset(y, 0xA5, sizeof(float) * n_out);
                if (ok_status(c->name, what, tern_gemm(ctxs[i], mats[0], x, c->t, 0, y, 0, &go)))
                    compare(c->name, what, y, default_want, sizeof(float) * n_out, 4);
            }
            ran++;
            tern_matrix_destroy(mats[0]);
            tern_matrix_destroy(mats[1]);
        }
    }
    printf("  outputs current + legacy%s: %d isa/layout combination(s) compared\n",
           default_want ? " + default" : "", ran);
    free(default_buf);

done:
    printf("  %s\n", failures == before ? "ok" : "FAILED");
    for (int v = 0; v < 2; v++) {
        free(golden_packed[v]);
        free(ours[v]);
        free(out_golden[v]);
    }
    free(w);
    free(x);
    free(y);
}

int main(int argc, char **argv) {
    if (argc > 1) dir = argv[1];
    printf("golden vectors from %s\n", dir);
    tern_context *ctxs[N_ISAS] = {NULL};
    printf("instruction sets:");
    for (size_t i = 0; i < N_ISAS; i++) {
        tern_context_options o = TERN_CONTEXT_OPTIONS_INIT;
        o.max_isa = isas[i].isa;
        tern_status st = tern_context_create(&o, &ctxs[i]);
        if (st == TERN_STATUS_OK) {
            printf(" %s", isas[i].name);
        } else if (st != TERN_STATUS_UNSUPPORTED) {
            fprintf(stderr, "\ntern_context_create(%s): %s: %s\n", isas[i].name, tern_status_name(st),
                    tern_last_error_message());
            failures++;
        }
    }
    printf("\n");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) run_case(&cases[c], ctxs);
    for (size_t i = 0; i < N_ISAS; i++) tern_context_destroy(ctxs[i]);

    if (failures) {
        fprintf(stderr, "golden: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("golden: all %d checks passed\n", checks);
    return 0;
}
