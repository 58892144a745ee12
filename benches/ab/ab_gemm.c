/* A/B of two builds of libtern in one process: `ab_gemm LIB_A LIB_B [ROUNDS] [THREADS]`.
 *
 * Both shared libraries are dlopen'ed side by side (RTLD_LOCAL: each keeps its own symbols) and
 * run the same tern_gemm calls on the same inputs, interleaved round by round with the order
 * alternating, so that drift of the machine's speed falls on both equally. Each round times
 * every case once per library (best of a few calls); the report is the median over rounds of
 * the per-round ratio B/A (< 1: B is faster), and the outputs of A and B are compared bit for
 * bit (a refactor must not change a bit).
 *
 * Shapes: the BitNet-b1.58-2B-4T projections (2560 → 2560, 2560 → 6912, 6912 → 2560), formats
 * I2_S, TL2, TQ1_0 and TQ2_0 (absmean: one scale), and TQ2_0, Q2_0 and Q1_0 quantized by ggml's
 * reference quantizers (the per-block scales of ggml's files: names ending in "r"), 1 and 128
 * tokens, TERN_COMPAT_DEFAULT and, for the ggml formats, TERN_COMPAT_GGML. AB_FORMATS (a
 * comma-separated list of those names) runs only those formats. */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tern.h"

typedef tern_status (*ctx_create_fn)(const tern_context_options *, tern_context **);
typedef void (*ctx_destroy_fn)(tern_context *);
typedef tern_status (*from_f32_fn)(const tern_context *, const tern_layout *, const float *,
                                   int64_t, int64_t, const tern_quant_options *,
                                   tern_quant_stats *, tern_matrix **);
typedef void (*matrix_destroy_fn)(tern_matrix *);
typedef tern_status (*gemm_fn)(const tern_context *, const tern_matrix *, const float *, int64_t,
                               int64_t, float *, int64_t, const tern_gemm_options *);
typedef const char *(*last_error_fn)(void);

struct lib {
    const char *path;
    ctx_create_fn ctx_create;
    ctx_destroy_fn ctx_destroy;
    from_f32_fn from_f32;
    matrix_destroy_fn matrix_destroy;
    gemm_fn gemm;
    last_error_fn last_error;
    tern_context *ctx;
};

static void *sym(void *h, const char *path, const char *name) {
    void *p = dlsym(h, name);
    if (!p) {
        fprintf(stderr, "ab_gemm: %s has no %s\n", path, name);
        exit(2);
    }
    return p;
}

static void load(struct lib *l, const char *path, int threads) {
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        fprintf(stderr, "ab_gemm: %s\n", dlerror());
        exit(2);
    }
    l->path = path;
    l->ctx_create = (ctx_create_fn)sym(h, path, "tern_context_create");
    l->ctx_destroy = (ctx_destroy_fn)sym(h, path, "tern_context_destroy");
    l->from_f32 = (from_f32_fn)sym(h, path, "tern_matrix_from_f32");
    l->matrix_destroy = (matrix_destroy_fn)sym(h, path, "tern_matrix_destroy");
    l->gemm = (gemm_fn)sym(h, path, "tern_gemm");
    l->last_error = (last_error_fn)sym(h, path, "tern_last_error_message");
    tern_context_options o = TERN_CONTEXT_OPTIONS_INIT;
    o.n_threads = threads;
    if (l->ctx_create(&o, &l->ctx) != TERN_STATUS_OK) {
        fprintf(stderr, "ab_gemm: %s: %s\n", path, l->last_error());
        exit(2);
    }
}

static void check(struct lib *l, tern_status st, const char *what) {
    if (st != TERN_STATUS_OK) {
        fprintf(stderr, "ab_gemm: %s: %s: %s\n", l->path, what, l->last_error());
        exit(2);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

struct shape { int64_t rows, cols; };
struct fmt { const char *name; int32_t format; int ggml; int ggml_ref; };

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Whether `name` is an item of the comma-separated `list`. */
static int listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (strncmp(p, name, n) == 0 && (p[n] == ',' || p[n] == 0)) return 1;
    return 0;
}

/* Best of `reps` calls, in seconds. */
static double time_gemm(struct lib *l, tern_matrix *m, const float *x, int64_t n, float *y,
                        const tern_gemm_options *o, int reps) {
    double best = 1e30;
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        check(l, l->gemm(l->ctx, m, x, n, 0, y, 0, o), "tern_gemm");
        double t = now() - t0;
        if (t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: ab_gemm LIB_A LIB_B [ROUNDS] [THREADS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 7;
    int threads = argc > 4 ? atoi(argv[4]) : 0;
    struct lib libs[2];
    load(&libs[0], argv[1], threads);
    load(&libs[1], argv[2], threads);
    const struct shape shapes[] = {{2560, 2560}, {6912, 2560}, {2560, 6912}};
    const struct fmt fmts[] = {
        {"I2_S", TERN_FORMAT_I2_S, 0, 0},   {"TL2", TERN_FORMAT_TL2, 0, 0},
        {"TQ1_0", TERN_FORMAT_TQ1_0, 0, 0}, {"TQ2_0", TERN_FORMAT_TQ2_0, 0, 0},
        {"TQ1_0", TERN_FORMAT_TQ1_0, 1, 0}, {"TQ2_0", TERN_FORMAT_TQ2_0, 1, 0},
        {"TQ2_0r", TERN_FORMAT_TQ2_0, 0, 1}, {"TQ2_0r", TERN_FORMAT_TQ2_0, 1, 1},
        {"Q2_0r", TERN_FORMAT_Q2_0, 0, 1},   {"Q2_0r", TERN_FORMAT_Q2_0, 1, 1},
        {"Q1_0r", TERN_FORMAT_Q1_0, 0, 1},   {"Q1_0r", TERN_FORMAT_Q1_0, 1, 1}};
    const int64_t tokens[] = {1, 128};
    enum { NS = 3, NF = 12, NT = 2, NC = NS * NF * NT };
    const char *only = getenv("AB_FORMATS");
    static double ratio[NC][64];
    double total[2][NC] = {{0}};
    int differs = 0;
    if (rounds > 64) rounds = 64;
    for (int s = 0; s < NS; s++) {
        const struct shape sh = shapes[s];
        float *w = malloc(sizeof(float) * sh.rows * sh.cols);
        float *x = malloc(sizeof(float) * 128 * sh.cols);
        float *ya = malloc(sizeof(float) * 128 * sh.rows);
        float *yb = malloc(sizeof(float) * 128 * sh.rows);
        for (int64_t i = 0; i < sh.rows * sh.cols; i++) w[i] = frand();
        for (int64_t i = 0; i < 128 * sh.cols; i++) x[i] = frand();
        for (int f = 0; f < NF; f++) {
            if (only && !listed(only, fmts[f].name)) continue;
            tern_matrix *m[2];
            tern_layout lay = TERN_LAYOUT_INIT(fmts[f].format);
            tern_quant_options q = TERN_QUANT_OPTIONS_INIT;
            q.method = fmts[f].ggml_ref ? TERN_QUANT_GGML_REF : TERN_QUANT_ABSMEAN;
            for (int l = 0; l < 2; l++)
                check(&libs[l], libs[l].from_f32(libs[l].ctx, &lay, w, sh.rows, sh.cols, &q,
                                                 NULL, &m[l]),
                      "tern_matrix_from_f32");
            tern_gemm_options o = TERN_GEMM_OPTIONS_INIT;
            o.compat = fmts[f].ggml ? TERN_COMPAT_GGML : TERN_COMPAT_DEFAULT;
            for (int t = 0; t < NT; t++) {
                int64_t n = tokens[t];
                int c = (s * NF + f) * NT + t;
                int reps = n == 1 ? 20 : 3;
                for (int r = 0; r < rounds; r++) {
                    double ta, tb;
                    if (r % 2 == 0) {
                        ta = time_gemm(&libs[0], m[0], x, n, ya, &o, reps);
                        tb = time_gemm(&libs[1], m[1], x, n, yb, &o, reps);
                    } else {
                        tb = time_gemm(&libs[1], m[1], x, n, yb, &o, reps);
                        ta = time_gemm(&libs[0], m[0], x, n, ya, &o, reps);
                    }
                    ratio[c][r] = tb / ta;
                    total[0][c] += ta, total[1][c] += tb;
                }
                if (memcmp(ya, yb, sizeof(float) * n * sh.rows) != 0) {
                    differs = 1;
                    printf("OUTPUTS DIFFER: %s %s %lldx%lld n=%lld\n", fmts[f].name,
                           fmts[f].ggml ? "ggml" : "default", (long long)sh.rows,
                           (long long)sh.cols, (long long)n);
                }
                qsort(ratio[c], rounds, sizeof(double), cmp_double);
                printf("%-6s %-7s %5lldx%-5lld n=%-4lld A %9.1f us  B %9.1f us  B/A median %.3f "
                       "[min %.3f max %.3f]\n",
                       fmts[f].name, fmts[f].ggml ? "ggml" : "default", (long long)sh.rows,
                       (long long)sh.cols, (long long)n, 1e6 * total[0][c] / rounds,
                       1e6 * total[1][c] / rounds, ratio[c][rounds / 2], ratio[c][0],
                       ratio[c][rounds - 1]);
                fflush(stdout);
            }
            for (int l = 0; l < 2; l++) libs[l].matrix_destroy(m[l]);
        }
        free(w), free(x), free(ya), free(yb);
    }
    for (int l = 0; l < 2; l++) libs[l].ctx_destroy(libs[l].ctx);
    printf(differs ? "ab_gemm: outputs differ\n" : "ab_gemm: outputs bitwise equal\n");
    return differs;
}
