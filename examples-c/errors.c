/* errors.c: every error path of every checked tern_* function, through the C ABI.
 *
 * For each failing call it checks:
 *   - the exact status;
 *   - tern_last_error_message() is non-NULL and non-empty (and, where the contract says so,
 *     names the parameter or the required size);
 *   - outputs are untouched: buffers are pre-filled with a sentinel byte and compared after,
 *     and handle out-params are NULL.
 * For each successful call it checks that tern_last_error_message() is NULL.
 * Also: tern_status_name for every status and unknown values, header/library versions, and
 * that every TERN_*_INIT macro sets struct_size to the struct's size. (tests/ffi_contract.rs
 * is the exhaustive list of error cases; this file checks them through a real C compiler.)
 *
 * Exits 0 if every check passed, 1 otherwise (all failures are printed).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tern.h"

/* A small valid I2_S matrix: x86 blocks are 128 elements, so cols = 128 is the smallest. */
#define M 4
#define K 128
#define SENTINEL 0xA5

static int failures = 0;
static int checks = 0;

static void failf(int line, const char *what, const char *why) {
    failures++;
    fprintf(stderr, "errors.c:%d: FAIL: %s\n    %s\n", line, what, why);
}

/* Checks status + last error of a call that just returned `got`. `needle` (nullable) must occur
 * in the message of a failing call. */
static void expect(int line, const char *what, tern_status got, tern_status want, const char *needle) {
    char why[512];
    const char *msg = tern_last_error_message();
    checks++;
    if (got != want) {
        snprintf(why, sizeof why, "status %s (%d), expected %s; message: %s", tern_status_name(got),
                 (int)got, tern_status_name(want), msg ? msg : "(NULL)");
        failf(line, what, why);
        return;
    }
    if (want == TERN_STATUS_OK) {
        if (msg != NULL) {
            snprintf(why, sizeof why, "succeeded but tern_last_error_message() = \"%s\"", msg);
            failf(line, what, why);
        }
        return;
    }
    if (msg == NULL || msg[0] == '\0') {
        failf(line, what, "failed but tern_last_error_message() is NULL or empty");
        return;
    }
    if (needle && !strstr(msg, needle)) {
        snprintf(why, sizeof why, "message \"%s\" does not mention \"%s\"", msg, needle);
        failf(line, what, why);
    }
}
#define EXPECT(want, call) expect(__LINE__, #call, (call), (want), NULL)
#define EXPECT_MSG(want, needle, call) expect(__LINE__, #call, (call), (want), (needle))

static void check_true(int line, const char *what, int cond) {
    checks++;
    if (!cond) failf(line, what, "condition is false");
}
#define CHECK_TRUE(cond) check_true(__LINE__, #cond, (cond))

/* Sentinel-filled output buffers. */
static void fill(void *p, size_t n) { memset(p, SENTINEL, n); }
static int is_untouched(const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != SENTINEL) return 0;
    return 1;
}
#define CHECK_UNTOUCHED(p, n) check_true(__LINE__, "output untouched: " #p, is_untouched((p), (n)))

/* A pointer one byte past `p`: misaligned for every type wider than a byte. Returned as void *
 * so it converts to float * / int32_t * without a cast. */
static void *misaligned(void *p) { return (char *)p + 1; }

/* Byte buffers with room for a misaligned view. */
static _Alignas(64) unsigned char raw_a[4096 + 64];
static _Alignas(64) unsigned char raw_b[4096 + 64];

/* A pointer value that is not NULL, to check that handle out-params are reset to NULL. */
static int dummy_object;
#define NOT_NULL_CTX ((tern_context *)(void *)&dummy_object)
#define NOT_NULL_MATRIX ((tern_matrix *)(void *)&dummy_object)

/* ----------------------------------------------------------------------------------------- */

static void test_versions_and_names(void) {
    CHECK_TRUE(tern_version() == TERN_VERSION_NUMBER);
    CHECK_TRUE(TERN_VERSION_NUMBER ==
               ((TERN_VERSION_MAJOR << 16) | (TERN_VERSION_MINOR << 8) | TERN_VERSION_PATCH));
    CHECK_TRUE(tern_version_string() != NULL);
    CHECK_TRUE(tern_version_string() && strcmp(tern_version_string(), TERN_VERSION_STRING) == 0);
    char s[64];
    snprintf(s, sizeof s, "%d.%d.%d", TERN_VERSION_MAJOR, TERN_VERSION_MINOR, TERN_VERSION_PATCH);
    CHECK_TRUE(strcmp(s, TERN_VERSION_STRING) == 0);

    static const struct {
        int32_t value;
        const char *name;
    } names[] = {
        {TERN_STATUS_OK, "TERN_STATUS_OK"},
        {TERN_STATUS_NULL_POINTER, "TERN_STATUS_NULL_POINTER"},
        {TERN_STATUS_INVALID_ARGUMENT, "TERN_STATUS_INVALID_ARGUMENT"},
        {TERN_STATUS_MISALIGNED, "TERN_STATUS_MISALIGNED"},
        {TERN_STATUS_BUFFER_TOO_SMALL, "TERN_STATUS_BUFFER_TOO_SMALL"},
        {TERN_STATUS_UNSUPPORTED, "TERN_STATUS_UNSUPPORTED"},
        {TERN_STATUS_NO_DEVICE, "TERN_STATUS_NO_DEVICE"},
        {TERN_STATUS_CUDA_ERROR, "TERN_STATUS_CUDA_ERROR"},
        {TERN_STATUS_OUT_OF_MEMORY, "TERN_STATUS_OUT_OF_MEMORY"},
        {TERN_STATUS_PANIC, "TERN_STATUS_PANIC"},
        {TERN_STATUS_INTERNAL, "TERN_STATUS_INTERNAL"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *got = tern_status_name(names[i].value);
        checks++;
        if (!got || strcmp(got, names[i].name) != 0) {
            char why[256];
            snprintf(why, sizeof why, "tern_status_name(%d) = \"%s\", expected \"%s\"",
                     (int)names[i].value, got ? got : "(NULL)", names[i].name);
            failf(__LINE__, "tern_status_name", why);
        }
    }
    const int32_t unknown[] = {-1, 11, 1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        const char *got = tern_status_name(unknown[i]);
        checks++;
        if (!got || strcmp(got, "TERN_STATUS_UNKNOWN") != 0) {
            char why[256];
            snprintf(why, sizeof why, "tern_status_name(%d) = \"%s\", expected TERN_STATUS_UNKNOWN",
                     (int)unknown[i], got ? got : "(NULL)");
            failf(__LINE__, "tern_status_name (unknown value)", why);
        }
    }
}

static void test_context(void) {
    tern_context *ctx;
    tern_context_options o;

    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_context_create(NULL, NULL));

    o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
    o.struct_size = 0;
    ctx = NOT_NULL_CTX;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_context_create(&o, &ctx));
    CHECK_TRUE(ctx == NULL);
    o.struct_size = sizeof o - 1;
    ctx = NOT_NULL_CTX;
    EXPECT(TERN_STATUS_INVALID_ARGUMENT, tern_context_create(&o, &ctx));
    CHECK_TRUE(ctx == NULL);

    const int32_t bad_isa[] = {-1, 10, 99, INT32_MAX};
    for (size_t i = 0; i < sizeof bad_isa / sizeof bad_isa[0]; i++) {
        o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
        o.max_isa = bad_isa[i];
        ctx = NOT_NULL_CTX;
        EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "max_isa", tern_context_create(&o, &ctx));
        CHECK_TRUE(ctx == NULL);
    }
    /* An ISA of the other CPU family is never available. */
    o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
#if defined(__x86_64__) || defined(__i386__)
    o.max_isa = TERN_ISA_NEON;
#else
    o.max_isa = TERN_ISA_AVX2;
#endif
    ctx = NOT_NULL_CTX;
    EXPECT(TERN_STATUS_UNSUPPORTED, tern_context_create(&o, &ctx));
    CHECK_TRUE(ctx == NULL);

    const int32_t bad_threads[] = {-1, 1025, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_threads / sizeof bad_threads[0]; i++) {
        o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
        o.n_threads = bad_threads[i];
        ctx = NOT_NULL_CTX;
        EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n_threads", tern_context_create(&o, &ctx));
        CHECK_TRUE(ctx == NULL);
    }
    EXPECT_MSG(TERN_STATUS_MISALIGNED, "opts", tern_context_create(misaligned(raw_a), &ctx));

    /* A struct from a newer header: unknown trailing fields must be zero. */
    struct {
        tern_context_options o;
        uint64_t future_field;
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
    newer.o.struct_size = sizeof newer;
    newer.o.n_threads = 1;
    newer.future_field = 1;
    ctx = NOT_NULL_CTX;
    EXPECT(TERN_STATUS_UNSUPPORTED, tern_context_create(&newer.o, &ctx));
    CHECK_TRUE(ctx == NULL);
    newer.future_field = 0;
    ctx = NULL;
    EXPECT(TERN_STATUS_OK, tern_context_create(&newer.o, &ctx));
    CHECK_TRUE(ctx != NULL);
    tern_context_destroy(ctx);

    /* Success paths, and destroy(NULL) is a no-op. */
    ctx = NULL;
    EXPECT(TERN_STATUS_OK, tern_context_create(NULL, &ctx));
    CHECK_TRUE(ctx != NULL);
    tern_context_destroy(ctx);
    o = (tern_context_options)TERN_CONTEXT_OPTIONS_INIT;
    o.max_isa = TERN_ISA_SCALAR;
    o.n_threads = 2;
    ctx = NULL;
    EXPECT(TERN_STATUS_OK, tern_context_create(&o, &ctx));
    CHECK_TRUE(ctx != NULL);
    tern_context_destroy(ctx);
    tern_context_destroy(NULL);

    /* Kernel names: NULL + last error for unknown formats. */
    const int32_t bad_formats[] = {0, -1, 8, 99};
    for (size_t i = 0; i < sizeof bad_formats / sizeof bad_formats[0]; i++) {
        const char *name = tern_context_kernel_name(NULL, bad_formats[i]);
        CHECK_TRUE(name == NULL);
        const char *msg = tern_last_error_message();
        CHECK_TRUE(msg != NULL && msg[0] != '\0');
    }
    const char *name = tern_context_kernel_name(NULL, TERN_FORMAT_I2_S);
    CHECK_TRUE(name != NULL && name[0] != '\0');
    CHECK_TRUE(tern_last_error_message() == NULL);
}

/* Layout variants every layout-taking function must reject, with the expected status. */
typedef struct {
    tern_layout layout;
    tern_status status;
    const char *what;
} bad_layout;

static size_t bad_layouts(bad_layout *out) {
    size_t n = 0;
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.struct_size = 0;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "struct_size 0"};
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.struct_size = sizeof l - 1;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "struct_size too small"};
    l = (tern_layout)TERN_LAYOUT_INIT(0);
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "format 0"};
    l = (tern_layout)TERN_LAYOUT_INIT(99);
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "format 99"};
    l = (tern_layout)TERN_LAYOUT_INIT(-1);
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "format -1"};
    /* Formats this build does not implement yet (tern_packed_size says UNSUPPORTED for a shape
     * every format can hold) must be UNSUPPORTED everywhere. Implemented ones are skipped. */
    static const struct {
        int32_t format;
        const char *what;
    } formats[] = {
        {TERN_FORMAT_TL1, "TL1 (not implemented)"},
        {TERN_FORMAT_TL2, "TL2 (not implemented)"},
        {TERN_FORMAT_TQ1_0, "TQ1_0 (not implemented)"},
        {TERN_FORMAT_TQ2_0, "TQ2_0 (not implemented)"},
    };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        size_t size;
        l = (tern_layout)TERN_LAYOUT_INIT(formats[i].format);
        if (tern_packed_size(&l, 256, 768, &size) == TERN_STATUS_UNSUPPORTED)
            out[n++] = (bad_layout){l, TERN_STATUS_UNSUPPORTED, formats[i].what};
    }
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.variant = 2;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "I2_S variant 2"};
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.variant = 0xFFFFFFFFu;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "I2_S variant 0xffffffff"};
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.tile_rows = 128;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "I2_S with tile_rows"};
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.tile_k = 64;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "I2_S with tile_k"};
    l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    l.simd_rows = 32;
    out[n++] = (bad_layout){l, TERN_STATUS_INVALID_ARGUMENT, "I2_S with simd_rows"};
    return n;
}

/* Shapes every (rows, cols) function must reject for I2_S x86. */
static const struct {
    int64_t rows, cols;
} bad_shapes[] = {
    {0, K}, {-1, K}, {M, 0}, {M, -128}, {INT64_MIN, K},
    {M, 100},                    /* not a multiple of the 128-element block */
    {M, 64},                     /* a multiple of the ARM block only */
    {M, ((int64_t)1 << 22) + 128}, /* more than the largest supported cols */
    {INT64_MAX, K},              /* rows * cols overflows */
};
#define N_BAD_SHAPES (sizeof bad_shapes / sizeof bad_shapes[0])

static void test_packed_size(void) {
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    size_t size;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "layout", tern_packed_size(NULL, M, K, &size));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_packed_size(&l, M, K, NULL));
    EXPECT_MSG(TERN_STATUS_MISALIGNED, "out", tern_packed_size(&l, M, K, misaligned(raw_a)));
    EXPECT_MSG(TERN_STATUS_MISALIGNED, "layout", tern_packed_size(misaligned(raw_a), M, K, &size));
    for (size_t i = 0; i < N_BAD_SHAPES; i++) {
        fill(&size, sizeof size);
        EXPECT(TERN_STATUS_INVALID_ARGUMENT,
               tern_packed_size(&l, bad_shapes[i].rows, bad_shapes[i].cols, &size));
        CHECK_UNTOUCHED(&size, sizeof size);
    }
    bad_layout bad[32];
    size_t nb = bad_layouts(bad);
    for (size_t i = 0; i < nb; i++) {
        fill(&size, sizeof size);
        expect(__LINE__, bad[i].what, tern_packed_size(&bad[i].layout, M, K, &size), bad[i].status,
               NULL);
        CHECK_UNTOUCHED(&size, sizeof size);
    }
    EXPECT(TERN_STATUS_OK, tern_packed_size(&l, M, K, &size));
    CHECK_TRUE(size == M * K / 4 + 32);
    /* The ARM variant takes 64-element blocks. */
    l.variant = TERN_I2S_ARM64;
    EXPECT(TERN_STATUS_OK, tern_packed_size(&l, M, 64, &size));
    CHECK_TRUE(size == M * 64 / 4 + 32);
    /* A layout struct from a newer header with zeroed unknown fields is accepted. */
    struct {
        tern_layout l;
        uint32_t future[3];
    } newer;
    memset(&newer, 0, sizeof newer);
    newer.l = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    newer.l.struct_size = sizeof newer;
    EXPECT(TERN_STATUS_OK, tern_packed_size(&newer.l, M, K, &size));
    newer.future[1] = 7;
    EXPECT(TERN_STATUS_UNSUPPORTED, tern_packed_size(&newer.l, M, K, &size));
}

/* Quantization options every quantizing function must reject (for I2_S). */
static size_t bad_quant_options(tern_quant_options *out, const char **what) {
    size_t n = 0;
    tern_quant_options o = TERN_QUANT_OPTIONS_INIT;
    o.struct_size = 0;
    what[n] = "struct_size 0", out[n++] = o;
    o = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    o.struct_size = sizeof o - 1;
    what[n] = "struct_size too small", out[n++] = o;
    o = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    o.method = 99;
    what[n] = "method 99", out[n++] = o;
    o.method = -1;
    what[n] = "method -1", out[n++] = o;
    o.method = TERN_QUANT_ABSMEAN_ROW;
    what[n] = "per-row scales into I2_S", out[n++] = o;
    o.method = TERN_QUANT_ABSMEAN_GROUP;
    o.group_size = 128;
    what[n] = "per-group scales into I2_S", out[n++] = o;
    o = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    o.method = TERN_QUANT_GGML_REF;
    what[n] = "GGML_REF into I2_S", out[n++] = o;
    o = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    o.group_size = 64;
    what[n] = "group_size without ABSMEAN_GROUP", out[n++] = o;
    o = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    o.eps = 0.0f;
    what[n] = "eps 0", out[n++] = o;
    o.eps = -1e-5f;
    what[n] = "eps < 0", out[n++] = o;
    o.eps = NAN;
    what[n] = "eps NaN", out[n++] = o;
    o.eps = INFINITY;
    what[n] = "eps inf", out[n++] = o;
    return n;
}

static void test_quantize(const float *w) {
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    const size_t need = M * K / 4 + 32;
    unsigned char dst[M * K / 4 + 64];
    tern_quant_stats stats;
    char needle[32];
    snprintf(needle, sizeof needle, "%zu", need);

#define QUANT_FAILS(status, needle_, ...)                                                       \
    do {                                                                                        \
        fill(dst, sizeof dst);                                                                  \
        fill(&stats, sizeof stats);                                                             \
        stats.struct_size = sizeof stats;                                                       \
        EXPECT_MSG(status, needle_, tern_quantize(__VA_ARGS__));                                \
        CHECK_UNTOUCHED(dst, sizeof dst);                                                       \
        CHECK_UNTOUCHED((char *)&stats + sizeof(uint32_t), sizeof stats - sizeof(uint32_t));    \
    } while (0)

    QUANT_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, NULL, w, M, K, NULL, dst, need, &stats);
    QUANT_FAILS(TERN_STATUS_NULL_POINTER, "src", NULL, &l, NULL, M, K, NULL, dst, need, &stats);
    QUANT_FAILS(TERN_STATUS_NULL_POINTER, "dst", NULL, &l, w, M, K, NULL, NULL, need, &stats);
    QUANT_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, NULL, &l, w, M, K, NULL, dst, need - 1, &stats);
    QUANT_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, NULL, &l, w, M, K, NULL, dst, 0, &stats);
    memcpy(raw_a + 1, w, sizeof(float) * M * K);
    QUANT_FAILS(TERN_STATUS_MISALIGNED, "src", NULL, &l, misaligned(raw_a), M, K, NULL, dst, need,
                &stats);
    QUANT_FAILS(TERN_STATUS_MISALIGNED, "stats", NULL, &l, w, M, K, NULL, dst, need,
                misaligned(raw_b));
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        QUANT_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, w, bad_shapes[i].rows,
                    bad_shapes[i].cols, NULL, dst, sizeof dst, &stats);
    bad_layout bad[32];
    size_t nb = bad_layouts(bad);
    for (size_t i = 0; i < nb; i++) {
        fill(dst, sizeof dst);
        expect(__LINE__, bad[i].what,
               tern_quantize(NULL, &bad[i].layout, w, M, K, NULL, dst, sizeof dst, NULL),
               bad[i].status, NULL);
        CHECK_UNTOUCHED(dst, sizeof dst);
    }
    tern_quant_options opts[32];
    const char *what[32];
    size_t no = bad_quant_options(opts, what);
    for (size_t i = 0; i < no; i++) {
        fill(dst, sizeof dst);
        expect(__LINE__, what[i], tern_quantize(NULL, &l, w, M, K, &opts[i], dst, sizeof dst, NULL),
               TERN_STATUS_INVALID_ARGUMENT, NULL);
        CHECK_UNTOUCHED(dst, sizeof dst);
    }
    /* stats with a struct_size below the first version */
    fill(dst, sizeof dst);
    fill(&stats, sizeof stats);
    stats.struct_size = 4;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "stats", tern_quantize(NULL, &l, w, M, K, NULL, dst, need, &stats));
    CHECK_UNTOUCHED(dst, sizeof dst);
    CHECK_UNTOUCHED((char *)&stats + sizeof(uint32_t), sizeof stats - sizeof(uint32_t));
    /* non-finite weights */
    float *wbad = malloc(sizeof(float) * M * K);
    const float specials[] = {NAN, INFINITY, -INFINITY};
    for (size_t s = 0; s < 3; s++) {
        memcpy(wbad, w, sizeof(float) * M * K);
        wbad[M * K / 2 + 3] = specials[s];
        QUANT_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, wbad, M, K, NULL, dst, need, &stats);
    }
    free(wbad);

    /* Success: exactly `need` bytes written, the rest untouched; stats filled. */
    fill(dst, sizeof dst);
    stats = (tern_quant_stats)TERN_QUANT_STATS_INIT;
    EXPECT(TERN_STATUS_OK, tern_quantize(NULL, &l, w, M, K, NULL, dst, sizeof dst, &stats));
    CHECK_UNTOUCHED(dst + need, sizeof dst - need);
    CHECK_TRUE(stats.struct_size == sizeof stats);
    CHECK_TRUE(stats.sparsity >= 0.0 && stats.sparsity <= 1.0);
    CHECK_TRUE(stats.scale_max > 0.0f);
    /* A stats struct from a newer header: bytes past ours are never written. */
    struct {
        tern_quant_stats s;
        unsigned char future[16];
    } newer;
    fill(&newer, sizeof newer);
    newer.s.struct_size = sizeof newer;
    EXPECT(TERN_STATUS_OK, tern_quantize(NULL, &l, w, M, K, NULL, dst, need, &newer.s));
    CHECK_UNTOUCHED(newer.future, sizeof newer.future);
    CHECK_TRUE(newer.s.struct_size == sizeof newer);
#undef QUANT_FAILS
}

static void test_pack_unpack_dequantize(const int8_t *tern, unsigned char *packed, size_t need) {
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    unsigned char dst[M * K / 4 + 64];
    float scale = 0.5f;
    char needle[32];
    snprintf(needle, sizeof needle, "%zu", need);

    /* --- tern_pack --- */
#define PACK_FAILS(status, needle_, ...)                                                        \
    do {                                                                                        \
        fill(dst, sizeof dst);                                                                  \
        EXPECT_MSG(status, needle_, tern_pack(__VA_ARGS__));                                    \
        CHECK_UNTOUCHED(dst, sizeof dst);                                                       \
    } while (0)
    PACK_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, tern, &scale, 1, M, K, dst, need);
    PACK_FAILS(TERN_STATUS_NULL_POINTER, "ternary", &l, NULL, &scale, 1, M, K, dst, need);
    PACK_FAILS(TERN_STATUS_NULL_POINTER, "scales", &l, tern, NULL, 1, M, K, dst, need);
    PACK_FAILS(TERN_STATUS_NULL_POINTER, "dst", &l, tern, &scale, 1, M, K, NULL, need);
    PACK_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, &l, tern, &scale, 1, M, K, dst, need - 1);
    PACK_FAILS(TERN_STATUS_MISALIGNED, "scales", &l, tern, misaligned(raw_a), 1, M, K, dst, need);
    PACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_scales", &l, tern, &scale, 0, M, K, dst, need);
    float two[2] = {0.5f, 0.5f};
    PACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_scales", &l, tern, two, 2, M, K, dst, need);
    const float bad_scales[] = {-0.5f, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < 4; i++)
        PACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, tern, &bad_scales[i], 1, M, K, dst, need);
    int8_t *tbad = malloc(M * K);
    const int8_t bad_values[] = {2, -2, 127, -128};
    for (size_t i = 0; i < 4; i++) {
        memcpy(tbad, tern, M * K);
        tbad[M * K - 1] = bad_values[i];
        PACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, "ternary", &l, tbad, &scale, 1, M, K, dst, need);
    }
    free(tbad);
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        PACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, tern, &scale, 1, bad_shapes[i].rows,
                   bad_shapes[i].cols, dst, sizeof dst);
    bad_layout bad[32];
    size_t nb = bad_layouts(bad);
    for (size_t i = 0; i < nb; i++) {
        fill(dst, sizeof dst);
        expect(__LINE__, bad[i].what, tern_pack(&bad[i].layout, tern, &scale, 1, M, K, dst, sizeof dst),
               bad[i].status, NULL);
        CHECK_UNTOUCHED(dst, sizeof dst);
    }
    fill(dst, sizeof dst);
    EXPECT(TERN_STATUS_OK, tern_pack(&l, tern, &scale, 1, M, K, dst, sizeof dst));
    CHECK_UNTOUCHED(dst + need, sizeof dst - need);
    CHECK_TRUE(memcmp(dst, packed, need) == 0); /* packed was made by tern_pack with scale 0.5 */
#undef PACK_FAILS

    /* Corrupt copies of `packed`: a code 3, and bad scales. */
    unsigned char corrupt[4][M * K / 4 + 32];
    for (int c = 0; c < 4; c++) memcpy(corrupt[c], packed, need);
    corrupt[0][5] |= 0x03; /* code 3 in the low 2 bits of byte 5 */
    const float cscale[3] = {NAN, -1.0f, INFINITY};
    for (int c = 1; c < 4; c++) memcpy(corrupt[c] + M * K / 4, &cscale[c - 1], sizeof(float));

    /* --- tern_unpack --- */
    int8_t tout[M * K];
    float sout[4];
#define UNPACK_FAILS(status, needle_, ...)                                                      \
    do {                                                                                        \
        fill(tout, sizeof tout);                                                                \
        fill(sout, sizeof sout);                                                                \
        EXPECT_MSG(status, needle_, tern_unpack(__VA_ARGS__));                                  \
        CHECK_UNTOUCHED(tout, sizeof tout);                                                     \
        CHECK_UNTOUCHED(sout, sizeof sout);                                                     \
    } while (0)
    UNPACK_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, packed, need, M, K, tout, sout, 1);
    UNPACK_FAILS(TERN_STATUS_NULL_POINTER, "src", &l, NULL, need, M, K, tout, sout, 1);
    UNPACK_FAILS(TERN_STATUS_NULL_POINTER, "ternary", &l, packed, need, M, K, NULL, sout, 1);
    UNPACK_FAILS(TERN_STATUS_NULL_POINTER, "scales", &l, packed, need, M, K, tout, NULL, 1);
    UNPACK_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, &l, packed, need - 1, M, K, tout, sout, 1);
    UNPACK_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, "n_scales", &l, packed, need, M, K, tout, sout, 0);
    UNPACK_FAILS(TERN_STATUS_MISALIGNED, "scales", &l, packed, need, M, K, tout, misaligned(raw_a), 1);
    for (int c = 0; c < 4; c++)
        UNPACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, corrupt[c], need, M, K, tout, sout, 1);
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        UNPACK_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, packed, need, bad_shapes[i].rows,
                     bad_shapes[i].cols, tout, sout, 1);
    for (size_t i = 0; i < nb; i++) {
        fill(tout, sizeof tout);
        expect(__LINE__, bad[i].what, tern_unpack(&bad[i].layout, packed, need, M, K, tout, sout, 1),
               bad[i].status, NULL);
        CHECK_UNTOUCHED(tout, sizeof tout);
    }
    /* Success with room for more scales than the format has: only the first is written. */
    fill(sout, sizeof sout);
    EXPECT(TERN_STATUS_OK, tern_unpack(&l, packed, need, M, K, tout, sout, 4));
    CHECK_TRUE(sout[0] == 0.5f);
    CHECK_UNTOUCHED(&sout[1], 3 * sizeof(float));
    CHECK_TRUE(memcmp(tout, tern, M * K) == 0);
#undef UNPACK_FAILS

    /* --- tern_dequantize --- */
    float fout[M * K];
#define DEQ_FAILS(status, needle_, ...)                                                         \
    do {                                                                                        \
        fill(fout, sizeof fout);                                                                \
        EXPECT_MSG(status, needle_, tern_dequantize(__VA_ARGS__));                              \
        CHECK_UNTOUCHED(fout, sizeof fout);                                                     \
    } while (0)
    DEQ_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, packed, need, M, K, fout);
    DEQ_FAILS(TERN_STATUS_NULL_POINTER, "src", &l, NULL, need, M, K, fout);
    DEQ_FAILS(TERN_STATUS_NULL_POINTER, "dst", &l, packed, need, M, K, NULL);
    DEQ_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, &l, packed, need - 1, M, K, fout);
    DEQ_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, &l, packed, 0, M, K, fout);
    DEQ_FAILS(TERN_STATUS_MISALIGNED, "dst", &l, packed, need, M, K, misaligned(raw_a));
    for (int c = 0; c < 4; c++) DEQ_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, corrupt[c], need, M, K, fout);
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        DEQ_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, &l, packed, need, bad_shapes[i].rows,
                  bad_shapes[i].cols, fout);
    for (size_t i = 0; i < nb; i++) {
        fill(fout, sizeof fout);
        expect(__LINE__, bad[i].what, tern_dequantize(&bad[i].layout, packed, need, M, K, fout),
               bad[i].status, NULL);
        CHECK_UNTOUCHED(fout, sizeof fout);
    }
    EXPECT(TERN_STATUS_OK, tern_dequantize(&l, packed, need, M, K, fout));
    int same = 1;
    for (int i = 0; i < M * K; i++) same &= fout[i] == 0.5f * (float)tern[i];
    CHECK_TRUE(same);
#undef DEQ_FAILS
}

static void test_quantize_activations(const float *x) {
    int8_t q[2 * K];
    float scales[2];
    int32_t sums[2];
#define ACT_FAILS(status, needle_, ...)                                                         \
    do {                                                                                        \
        fill(q, sizeof q);                                                                      \
        fill(scales, sizeof scales);                                                            \
        fill(sums, sizeof sums);                                                                \
        EXPECT_MSG(status, needle_, tern_quantize_activations(__VA_ARGS__));                    \
        CHECK_UNTOUCHED(q, sizeof q);                                                           \
        CHECK_UNTOUCHED(scales, sizeof scales);                                                 \
        CHECK_UNTOUCHED(sums, sizeof sums);                                                     \
    } while (0)
    ACT_FAILS(TERN_STATUS_NULL_POINTER, "x", NULL, NULL, 2, K, 0, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_NULL_POINTER, "q", NULL, x, 2, K, 0, 0, NULL, scales, sums);
    ACT_FAILS(TERN_STATUS_NULL_POINTER, "scales", NULL, x, 2, K, 0, 0, q, NULL, sums);
    memcpy(raw_a + 1, x, sizeof(float) * 2 * K);
    ACT_FAILS(TERN_STATUS_MISALIGNED, "x", NULL, misaligned(raw_a), 2, K, 0, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_MISALIGNED, "scales", NULL, x, 2, K, 0, 0, q, misaligned(raw_b), sums);
    ACT_FAILS(TERN_STATUS_MISALIGNED, "sums", NULL, x, 2, K, 0, 0, q, scales, misaligned(raw_b));
    const int64_t bad_n[] = {0, -1, INT64_MIN};
    for (size_t i = 0; i < 3; i++)
        ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_tokens", NULL, x, bad_n[i], K, 0, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, x, 2, 0, 0, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, x, 2, -K, 0, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "x_stride", NULL, x, 2, K, -1, 0, q, scales, sums);
    ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "x_stride", NULL, x, 2, K, K - 1, 0, q, scales, sums);
    const int32_t bad_compat[] = {-1, 4, 99, INT32_MAX};
    for (size_t i = 0; i < 4; i++)
        ACT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "compat", NULL, x, 2, K, 0, bad_compat[i], q, scales, sums);
    /* TERN_COMPAT_GGML quantizes per 256-block (Q8_K), not per token. */
    ACT_FAILS(TERN_STATUS_UNSUPPORTED, "Q8_K", NULL, x, 2, K, 0, TERN_COMPAT_GGML, q, scales, sums);
    /* Success; sums is optional. */
    EXPECT(TERN_STATUS_OK, tern_quantize_activations(NULL, x, 2, K, 0, TERN_COMPAT_BITNET_CPP, q, scales, sums));
    EXPECT(TERN_STATUS_OK, tern_quantize_activations(NULL, x, 2, K, K, TERN_COMPAT_DEFAULT, q, scales, NULL));
#undef ACT_FAILS
}

static void test_matrix(const float *w, const unsigned char *packed, size_t need,
                        const unsigned char *corrupt_code) {
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    tern_matrix *m;
    char needle[32];
    snprintf(needle, sizeof needle, "%zu", need);

    /* --- tern_matrix_create --- */
#define CREATE_FAILS(status, needle_, ...)                                                      \
    do {                                                                                        \
        m = NOT_NULL_MATRIX;                                                                    \
        EXPECT_MSG(status, needle_, tern_matrix_create(__VA_ARGS__, &m));                      \
        check_true(__LINE__, "handle reset to NULL", m == NULL);                               \
    } while (0)
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_matrix_create(NULL, &l, packed, need, M, K, NULL));
    CREATE_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, NULL, packed, need, M, K);
    CREATE_FAILS(TERN_STATUS_NULL_POINTER, "packed", NULL, &l, NULL, need, M, K);
    CREATE_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, NULL, &l, packed, need - 1, M, K);
    CREATE_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, needle, NULL, &l, packed, 0, M, K);
    CREATE_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, corrupt_code, need, M, K);
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        CREATE_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, packed, need, bad_shapes[i].rows,
                     bad_shapes[i].cols);
    bad_layout bad[32];
    size_t nb = bad_layouts(bad);
    for (size_t i = 0; i < nb; i++) {
        m = NOT_NULL_MATRIX;
        expect(__LINE__, bad[i].what, tern_matrix_create(NULL, &bad[i].layout, packed, need, M, K, &m),
               bad[i].status, NULL);
        CHECK_TRUE(m == NULL);
    }
#undef CREATE_FAILS

    /* --- tern_matrix_from_f32 --- */
    tern_quant_stats stats;
#define FROM_F32_FAILS(status, needle_, ...)                                                    \
    do {                                                                                        \
        m = NOT_NULL_MATRIX;                                                                    \
        fill(&stats, sizeof stats);                                                             \
        stats.struct_size = sizeof stats;                                                       \
        EXPECT_MSG(status, needle_, tern_matrix_from_f32(__VA_ARGS__, &m));                    \
        check_true(__LINE__, "handle reset to NULL", m == NULL);                               \
        CHECK_UNTOUCHED((char *)&stats + sizeof(uint32_t), sizeof stats - sizeof(uint32_t));    \
    } while (0)
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_matrix_from_f32(NULL, &l, w, M, K, NULL, NULL, NULL));
    FROM_F32_FAILS(TERN_STATUS_NULL_POINTER, "layout", NULL, NULL, w, M, K, NULL, &stats);
    FROM_F32_FAILS(TERN_STATUS_NULL_POINTER, "w", NULL, &l, NULL, M, K, NULL, &stats);
    memcpy(raw_a + 1, w, sizeof(float) * M * K);
    FROM_F32_FAILS(TERN_STATUS_MISALIGNED, "w", NULL, &l, misaligned(raw_a), M, K, NULL, &stats);
    for (size_t i = 0; i < N_BAD_SHAPES; i++)
        FROM_F32_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, w, bad_shapes[i].rows,
                       bad_shapes[i].cols, NULL, &stats);
    for (size_t i = 0; i < nb; i++) {
        m = NOT_NULL_MATRIX;
        expect(__LINE__, bad[i].what, tern_matrix_from_f32(NULL, &bad[i].layout, w, M, K, NULL, NULL, &m),
               bad[i].status, NULL);
        CHECK_TRUE(m == NULL);
    }
    tern_quant_options opts[32];
    const char *what[32];
    size_t no = bad_quant_options(opts, what);
    for (size_t i = 0; i < no; i++) {
        m = NOT_NULL_MATRIX;
        expect(__LINE__, what[i], tern_matrix_from_f32(NULL, &l, w, M, K, &opts[i], NULL, &m),
               TERN_STATUS_INVALID_ARGUMENT, NULL);
        CHECK_TRUE(m == NULL);
    }
    {
        tern_quant_stats small;
        fill(&small, sizeof small);
        small.struct_size = 4;
        m = NOT_NULL_MATRIX;
        EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "stats", tern_matrix_from_f32(NULL, &l, w, M, K, NULL, &small, &m));
        CHECK_TRUE(m == NULL);
        CHECK_UNTOUCHED((char *)&small + sizeof(uint32_t), sizeof small - sizeof(uint32_t));
    }
    float *wbad = malloc(sizeof(float) * M * K);
    memcpy(wbad, w, sizeof(float) * M * K);
    wbad[7] = NAN;
    FROM_F32_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, &l, wbad, M, K, NULL, &stats);
    free(wbad);
#undef FROM_F32_FAILS

    /* Successful constructors. */
    tern_matrix *mp = NULL, *mf = NULL;
    EXPECT(TERN_STATUS_OK, tern_matrix_create(NULL, &l, packed, need + 7, M, K, &mp)); /* longer is fine */
    stats = (tern_quant_stats)TERN_QUANT_STATS_INIT;
    EXPECT(TERN_STATUS_OK, tern_matrix_from_f32(NULL, &l, w, M, K, NULL, &stats, &mf));
    CHECK_TRUE(mp != NULL && mf != NULL);
    if (!mp || !mf) {
        tern_matrix_destroy(mp);
        tern_matrix_destroy(mf);
        return;
    }

    /* --- tern_matrix_info --- */
    tern_matrix_properties p;
    fill(&p, sizeof p);
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "matrix", tern_matrix_info(NULL, &p));
    CHECK_UNTOUCHED(&p, sizeof p);
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "info", tern_matrix_info(mp, NULL));
    EXPECT_MSG(TERN_STATUS_MISALIGNED, "info", tern_matrix_info(mp, misaligned(raw_a)));
    fill(&p, sizeof p);
    p.struct_size = 0;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_matrix_info(mp, &p));
    CHECK_UNTOUCHED((char *)&p + sizeof(uint32_t), sizeof p - sizeof(uint32_t));
    p.struct_size = sizeof p - 1;
    EXPECT(TERN_STATUS_INVALID_ARGUMENT, tern_matrix_info(mp, &p));
    CHECK_UNTOUCHED((char *)&p + sizeof(uint32_t), sizeof p - sizeof(uint32_t));
    p = (tern_matrix_properties)TERN_MATRIX_PROPERTIES_INIT;
    EXPECT(TERN_STATUS_OK, tern_matrix_info(mp, &p));
    CHECK_TRUE(p.struct_size == sizeof p);
    CHECK_TRUE(p.format == TERN_FORMAT_I2_S && p.variant == TERN_I2S_X86);
    CHECK_TRUE(p.rows == M && p.cols == K && p.packed_bytes == need);
    CHECK_TRUE(p.scale == 0.5f);
    CHECK_TRUE(p.kernel_name != NULL && p.kernel_name[0] != '\0');
    struct {
        tern_matrix_properties p;
        unsigned char future[16];
    } newer;
    fill(&newer, sizeof newer);
    newer.p.struct_size = sizeof newer;
    EXPECT(TERN_STATUS_OK, tern_matrix_info(mp, &newer.p));
    CHECK_UNTOUCHED(newer.future, sizeof newer.future);
    CHECK_TRUE(newer.p.rows == M);

    /* --- tern_gemm --- */
    float x[2 * 2 * K]; /* room for stride 2K */
    for (int i = 0; i < 2 * 2 * K; i++) x[i] = (float)((i * 37) % 17) - 8.0f;
    float y[2 * 2 * M];
    tern_gemm_options go;
#define GEMM_FAILS(status, needle_, ...)                                                        \
    do {                                                                                        \
        fill(y, sizeof y);                                                                      \
        EXPECT_MSG(status, needle_, tern_gemm(__VA_ARGS__));                                    \
        CHECK_UNTOUCHED(y, sizeof y);                                                           \
    } while (0)
    GEMM_FAILS(TERN_STATUS_NULL_POINTER, "matrix", NULL, NULL, x, 2, 0, y, 0, NULL);
    GEMM_FAILS(TERN_STATUS_NULL_POINTER, "x", NULL, mp, NULL, 2, 0, y, 0, NULL);
    GEMM_FAILS(TERN_STATUS_NULL_POINTER, "y", NULL, mp, x, 2, 0, NULL, 0, NULL);
    memcpy(raw_a + 1, x, sizeof x);
    GEMM_FAILS(TERN_STATUS_MISALIGNED, "x", NULL, mp, misaligned(raw_a), 2, 0, y, 0, NULL);
    /* misaligned y: check the sentinel in the misaligned buffer itself */
    fill(raw_b, sizeof raw_b);
    EXPECT_MSG(TERN_STATUS_MISALIGNED, "y", tern_gemm(NULL, mp, x, 2, 0, misaligned(raw_b), 0, NULL));
    CHECK_UNTOUCHED(raw_b, sizeof raw_b);
    for (size_t i = 0; i < 3; i++) {
        const int64_t bad_n[] = {0, -1, INT64_MIN};
        GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_tokens", NULL, mp, x, bad_n[i], 0, y, 0, NULL);
    }
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "x_stride", NULL, mp, x, 2, -1, y, 0, NULL);
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "x_stride", NULL, mp, x, 2, K - 1, y, 0, NULL);
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "y_stride", NULL, mp, x, 2, 0, y, -1, NULL);
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "y_stride", NULL, mp, x, 2, 0, y, M - 1, NULL);
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.struct_size = 0;
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "struct_size", NULL, mp, x, 2, 0, y, 0, &go);
    go.struct_size = sizeof go - 1;
    GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, NULL, NULL, mp, x, 2, 0, y, 0, &go);
    GEMM_FAILS(TERN_STATUS_MISALIGNED, "opts", NULL, mp, x, 2, 0, y, 0, misaligned(raw_a));
    const int32_t bad_compat[] = {-1, 4, 99, INT32_MIN};
    for (size_t i = 0; i < 4; i++) {
        go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
        go.compat = bad_compat[i];
        GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "compat", NULL, mp, x, 2, 0, y, 0, &go);
    }
    /* TERN_COMPAT_GGML is ggml's TQ arithmetic: an I2_S matrix refuses it. */
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.compat = TERN_COMPAT_GGML;
    GEMM_FAILS(TERN_STATUS_UNSUPPORTED, "TERN_COMPAT_GGML", NULL, mp, x, 2, 0, y, 0, &go);
    /* Bad row ranges (row_end 0 means "all rows"). */
    const int64_t bad_ranges[][2] = {
        {-1, 0}, {-1, 2}, {M, 0}, {2, 2}, {3, 1}, {0, M + 1}, {0, -1}, {INT64_MIN, 1}, {0, INT64_MAX},
    };
    for (size_t i = 0; i < sizeof bad_ranges / sizeof bad_ranges[0]; i++) {
        go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
        go.row_begin = bad_ranges[i][0];
        go.row_end = bad_ranges[i][1];
        GEMM_FAILS(TERN_STATUS_INVALID_ARGUMENT, "row", NULL, mp, x, 2, 0, y, 0, &go);
    }
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.bias = misaligned(raw_a);
    GEMM_FAILS(TERN_STATUS_MISALIGNED, "bias", NULL, mp, x, 2, 0, y, 0, &go);
    struct {
        tern_gemm_options o;
        uint64_t future;
    } newer_go;
    memset(&newer_go, 0, sizeof newer_go);
    newer_go.o = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    newer_go.o.struct_size = sizeof newer_go;
    newer_go.future = 1;
    GEMM_FAILS(TERN_STATUS_UNSUPPORTED, NULL, NULL, mp, x, 2, 0, y, 0, &newer_go.o);
    newer_go.future = 0;
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mp, x, 2, 0, y, 0, &newer_go.o));
#undef GEMM_FAILS

    /* Success: full, then a row slice with strides; only the slice may be written. */
    float full[2 * M];
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mp, x, 2, 0, full, 0, NULL));
    float full_f[2 * M];
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mf, x, 2, 0, full_f, 0, NULL));
    fill(y, sizeof y);
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.row_begin = 1;
    go.row_end = 3;
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mp, x, 2, 2 * K, y, 2 * M, &go));
    {
        int ok = 1; /* rows outside [1, 3) and the stride padding stay untouched */
        for (int t = 0; t < 2; t++)
            for (int r = 0; r < 2 * M; r++)
                if (r < 1 || r >= 3) ok &= is_untouched(&y[t * 2 * M + r], sizeof(float));
        CHECK_TRUE(ok);
    }
    /* The slice equals the full computation of the same tokens. */
    float xs[2 * K], ys[2 * M];
    memcpy(xs, x, K * sizeof(float));
    memcpy(xs + K, x + 2 * K, K * sizeof(float));
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mp, xs, 2, 0, ys, 0, NULL));
    CHECK_TRUE(memcmp(&y[1], &ys[1], 2 * sizeof(float)) == 0);
    CHECK_TRUE(memcmp(&y[2 * M + 1], &ys[M + 1], 2 * sizeof(float)) == 0);
    /* Bias is added to every token's row. */
    float bias[M] = {1.0f, -2.0f, 0.25f, 100.0f};
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.bias = bias;
    float yb[2 * M];
    EXPECT(TERN_STATUS_OK, tern_gemm(NULL, mp, x, 2, 0, yb, 0, &go));
    {
        int ok = 1;
        for (int t = 0; t < 2; t++)
            for (int r = 0; r < M; r++) ok &= fabsf(yb[t * M + r] - (full[t * M + r] + bias[r])) <= 1e-4f * (1.0f + fabsf(yb[t * M + r]));
        CHECK_TRUE(ok);
    }

    /* --- tern_gemm_i8 --- */
    int8_t q[2 * K];
    float sc[2];
    int32_t su[2];
    EXPECT(TERN_STATUS_OK, tern_quantize_activations(NULL, x, 2, K, 0, TERN_COMPAT_DEFAULT, q, sc, su));
#define GEMM_I8_FAILS(status, needle_, ...)                                                     \
    do {                                                                                        \
        fill(y, sizeof y);                                                                      \
        EXPECT_MSG(status, needle_, tern_gemm_i8(__VA_ARGS__));                                 \
        CHECK_UNTOUCHED(y, sizeof y);                                                           \
    } while (0)
    GEMM_I8_FAILS(TERN_STATUS_NULL_POINTER, "matrix", NULL, NULL, q, sc, su, 2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_NULL_POINTER, "q", NULL, mp, NULL, sc, su, 2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_NULL_POINTER, "scales", NULL, mp, q, NULL, su, 2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_NULL_POINTER, "sums", NULL, mp, q, sc, NULL, 2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_NULL_POINTER, "y", NULL, mp, q, sc, su, 2, 0, NULL, 0, NULL);
    memcpy(raw_a + 1, sc, sizeof sc);
    GEMM_I8_FAILS(TERN_STATUS_MISALIGNED, "scales", NULL, mp, q, misaligned(raw_a), su, 2, 0, y, 0, NULL);
    memcpy(raw_a + 1, su, sizeof su);
    GEMM_I8_FAILS(TERN_STATUS_MISALIGNED, "sums", NULL, mp, q, sc, misaligned(raw_a), 2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_tokens", NULL, mp, q, sc, su, 0, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "n_tokens", NULL, mp, q, sc, su, -2, 0, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "q_stride", NULL, mp, q, sc, su, 2, K - 1, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "q_stride", NULL, mp, q, sc, su, 2, -1, y, 0, NULL);
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "y_stride", NULL, mp, q, sc, su, 2, 0, y, M - 1, NULL);
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.compat = 42;
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "compat", NULL, mp, q, sc, su, 2, 0, y, 0, &go);
    go = (tern_gemm_options)TERN_GEMM_OPTIONS_INIT;
    go.row_begin = 3;
    go.row_end = 2;
    GEMM_I8_FAILS(TERN_STATUS_INVALID_ARGUMENT, "row", NULL, mp, q, sc, su, 2, 0, y, 0, &go);
    /* Same activations, same epilogue: tern_gemm_i8 == tern_gemm bit for bit. */
    float yi[2 * M];
    EXPECT(TERN_STATUS_OK, tern_gemm_i8(NULL, mp, q, sc, su, 2, 0, yi, 0, NULL));
    CHECK_TRUE(memcmp(yi, full, sizeof yi) == 0);
#undef GEMM_I8_FAILS

    tern_matrix_destroy(mp);
    tern_matrix_destroy(mf);
    tern_matrix_destroy(NULL);
}

/* Every versioned struct's INIT macro sets struct_size = sizeof, as the library expects. */
static void test_init_macros(void) {
    tern_context_options co = TERN_CONTEXT_OPTIONS_INIT;
    tern_layout la = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    tern_quant_options qo = TERN_QUANT_OPTIONS_INIT;
    tern_convert_options cv = TERN_CONVERT_OPTIONS_INIT;
    tern_quant_stats qs = TERN_QUANT_STATS_INIT;
    tern_gemm_options go = TERN_GEMM_OPTIONS_INIT;
    tern_matrix_properties mp = TERN_MATRIX_PROPERTIES_INIT;
    tern_gguf_open_options oo = TERN_GGUF_OPEN_OPTIONS_INIT;
    tern_gguf_writer_options wo = TERN_GGUF_WRITER_OPTIONS_INIT;
    tern_gguf_properties gp = TERN_GGUF_PROPERTIES_INIT;
    tern_gguf_tensor gt = TERN_GGUF_TENSOR_INIT;
    tern_gguf_kv gk = TERN_GGUF_KV_INIT;
    tern_cuda_gemm_options cg = TERN_CUDA_GEMM_OPTIONS_INIT;
    CHECK_TRUE(co.struct_size == sizeof co);
    CHECK_TRUE(la.struct_size == sizeof la && la.format == TERN_FORMAT_I2_S);
    CHECK_TRUE(qo.struct_size == sizeof qo && qo.eps == 1e-5f);
    CHECK_TRUE(cv.struct_size == sizeof cv);
    CHECK_TRUE(qs.struct_size == sizeof qs);
    CHECK_TRUE(go.struct_size == sizeof go);
    CHECK_TRUE(mp.struct_size == sizeof mp);
    CHECK_TRUE(oo.struct_size == sizeof oo);
    CHECK_TRUE(wo.struct_size == sizeof wo);
    CHECK_TRUE(gp.struct_size == sizeof gp);
    CHECK_TRUE(gt.struct_size == sizeof gt);
    CHECK_TRUE(gk.struct_size == sizeof gk);
    CHECK_TRUE(cg.struct_size == sizeof cg);
}

static void test_convert_and_ternarize(const unsigned char *packed, size_t need, const float *w) {
    tern_layout from = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    tern_layout to = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    to.variant = TERN_I2S_ARM64;
    unsigned char dst[M * K / 4 + 64];
    tern_convert_options co = TERN_CONVERT_OPTIONS_INIT;

    /* --- tern_convert --- */
#define CONVERT_FAILS(status, needle_, ...)                                                     \
    do {                                                                                        \
        fill(dst, sizeof dst);                                                                  \
        EXPECT_MSG(status, needle_, tern_convert(__VA_ARGS__));                                 \
        CHECK_UNTOUCHED(dst, sizeof dst);                                                       \
    } while (0)
    CONVERT_FAILS(TERN_STATUS_NULL_POINTER, "from", NULL, packed, need, &to, dst, need, M, K, NULL);
    CONVERT_FAILS(TERN_STATUS_NULL_POINTER, "src", &from, NULL, need, &to, dst, need, M, K, NULL);
    CONVERT_FAILS(TERN_STATUS_NULL_POINTER, "to", &from, packed, need, NULL, dst, need, M, K, NULL);
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "dst", tern_convert(&from, packed, need, &to, NULL, need, M, K, NULL));
    CONVERT_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, "src_len", &from, packed, need - 1, &to, dst, need, M, K, NULL);
    CONVERT_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, "dst_len", &from, packed, need, &to, dst, need - 1, M, K, NULL);
    CONVERT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "cols", &from, packed, need, &to, dst, need, M, 100, NULL);
    co.struct_size = 0;
    CONVERT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "struct_size", &from, packed, need, &to, dst, need, M, K, &co);
    co = (tern_convert_options)TERN_CONVERT_OPTIONS_INIT;
    co.allow_rounding = 2;
    CONVERT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "allow_rounding", &from, packed, need, &to, dst, need, M, K, &co);
    to.format = 99;
    CONVERT_FAILS(TERN_STATUS_INVALID_ARGUMENT, "format", &from, packed, need, &to, dst, need, M, K, NULL);
    to = (tern_layout)TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    to.variant = TERN_I2S_ARM64;
    co = (tern_convert_options)TERN_CONVERT_OPTIONS_INIT;
    EXPECT(TERN_STATUS_OK, tern_convert(&from, packed, need, &to, dst, sizeof dst, M, K, &co));
#undef CONVERT_FAILS

    /* --- tern_ternarize --- */
    int8_t t[M * K];
    float s[M];
    size_t count;
    tern_quant_options qo = TERN_QUANT_OPTIONS_INIT;
#define TERNARIZE_FAILS(status, needle_, ...)                                                   \
    do {                                                                                        \
        fill(t, sizeof t);                                                                      \
        fill(s, sizeof s);                                                                      \
        fill(&count, sizeof count);                                                             \
        EXPECT_MSG(status, needle_, tern_ternarize(__VA_ARGS__));                               \
        CHECK_UNTOUCHED(t, sizeof t);                                                           \
        CHECK_UNTOUCHED(s, sizeof s);                                                           \
        CHECK_UNTOUCHED(&count, sizeof count);                                                  \
    } while (0)
    TERNARIZE_FAILS(TERN_STATUS_NULL_POINTER, "src", NULL, NULL, M, K, t, s, M, &count);
    TERNARIZE_FAILS(TERN_STATUS_NULL_POINTER, "ternary", NULL, w, M, K, NULL, s, M, &count);
    TERNARIZE_FAILS(TERN_STATUS_NULL_POINTER, "scales", NULL, w, M, K, t, NULL, M, &count);
    TERNARIZE_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, "n_scales", NULL, w, M, K, t, s, 0, &count);
    TERNARIZE_FAILS(TERN_STATUS_INVALID_ARGUMENT, "rows", NULL, w, 0, K, t, s, M, &count);
    qo.struct_size = 0;
    TERNARIZE_FAILS(TERN_STATUS_INVALID_ARGUMENT, "struct_size", &qo, w, M, K, t, s, M, &count);
    qo = (tern_quant_options)TERN_QUANT_OPTIONS_INIT;
    qo.method = 99;
    TERNARIZE_FAILS(TERN_STATUS_INVALID_ARGUMENT, "method", &qo, w, M, K, t, s, M, &count);
    qo.method = TERN_QUANT_ABSMEAN_ROW; /* M scales, one short */
    TERNARIZE_FAILS(TERN_STATUS_BUFFER_TOO_SMALL, "n_scales", &qo, w, M, K, t, s, M - 1, &count);
    EXPECT(TERN_STATUS_OK, tern_ternarize(&qo, w, M, K, t, s, M, &count));
    CHECK_TRUE(count == M);
#undef TERNARIZE_FAILS
}

/* The GGUF writer and reader: one error case per function, then a round trip. */
static void test_gguf(const unsigned char *packed, size_t need) {
    const char *path = "tern_errors_c.gguf";
    tern_gguf_writer *w;
    tern_gguf_writer_options wo = TERN_GGUF_WRITER_OPTIONS_INIT;
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    int64_t dims[2] = {4, 2};
    float f[8] = {0};

    wo.struct_size = 0;
    w = (tern_gguf_writer *)(void *)&dummy_object;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_gguf_writer_create(&wo, &w));
    CHECK_TRUE(w == NULL);
    wo = (tern_gguf_writer_options)TERN_GGUF_WRITER_OPTIONS_INIT;
    wo.alignment = 3;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "alignment", tern_gguf_writer_create(&wo, &w));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_gguf_writer_create(NULL, NULL));
    EXPECT(TERN_STATUS_OK, tern_gguf_writer_create(NULL, &w));
    if (!w) return;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "writer", tern_gguf_writer_add_string(NULL, "k", "v"));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "value", tern_gguf_writer_add_string(w, "k", NULL));
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "value_type", tern_gguf_writer_add_int(w, "k", TERN_GGUF_TYPE_STRING, 1));
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "value_type", tern_gguf_writer_add_float(w, "k", TERN_GGUF_TYPE_UINT32, 1.0));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "data", tern_gguf_writer_add_array(w, "k", TERN_GGUF_TYPE_INT32, NULL, 3));
    const char *strs[2] = {"a", NULL};
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "values[1]", tern_gguf_writer_add_string_array(w, "k", strs, 2));
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n_dims", tern_gguf_writer_add_tensor(w, "t", 0, dims, 0, f, sizeof f));
    EXPECT_MSG(TERN_STATUS_BUFFER_TOO_SMALL, "packed_len", tern_gguf_writer_add_ternary(w, "m", &l, packed, need - 1, M, K));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "path", tern_gguf_writer_write(w, NULL));
    EXPECT(TERN_STATUS_INVALID_ARGUMENT, tern_gguf_writer_write(w, "no-such-dir/x.gguf"));
    EXPECT(TERN_STATUS_OK, tern_gguf_writer_add_string(w, "general.architecture", "bitnet"));
    EXPECT(TERN_STATUS_OK, tern_gguf_writer_add_int(w, "n", TERN_GGUF_TYPE_UINT32, 7));
    EXPECT(TERN_STATUS_OK, tern_gguf_writer_add_ternary(w, "m", &l, packed, need, M, K));
    EXPECT(TERN_STATUS_OK, tern_gguf_writer_write(w, path));
    tern_gguf_writer_destroy(w);

    uint64_t size;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n_dims", tern_gguf_tensor_size(0, TERN_GGUF_DIALECT_AUTO, dims, 0, &size));
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "dialect", tern_gguf_tensor_size(0, 99, dims, 2, &size));

    tern_gguf *g = (tern_gguf *)(void *)&dummy_object;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "path", tern_gguf_open(NULL, &g));
    CHECK_TRUE(g == NULL);
    EXPECT(TERN_STATUS_INVALID_ARGUMENT, tern_gguf_open("no-such-dir/x.gguf", &g));
    tern_gguf_open_options oo = TERN_GGUF_OPEN_OPTIONS_INIT;
    oo.struct_size = 0;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_gguf_open_with_options(path, &oo, &g));
    oo = (tern_gguf_open_options)TERN_GGUF_OPEN_OPTIONS_INIT;
    oo.dialect = 9;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "dialect", tern_gguf_open_with_options(path, &oo, &g));
    CHECK_TRUE(g == NULL);
    EXPECT(TERN_STATUS_OK, tern_gguf_open(path, &g));
    if (!g) return;

    tern_gguf_properties gp;
    fill(&gp, sizeof gp);
    gp.struct_size = 0;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_gguf_info(g, &gp));
    CHECK_UNTOUCHED((char *)&gp + sizeof(uint32_t), sizeof gp - sizeof(uint32_t));
    size_t n;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "out", tern_gguf_tensor_count(g, NULL));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "gguf", tern_gguf_kv_count(NULL, &n));
    tern_gguf_tensor gt;
    fill(&gt, sizeof gt);
    gt.struct_size = sizeof gt;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "index", tern_gguf_tensor_info(g, 99, &gt));
    CHECK_UNTOUCHED((char *)&gt + sizeof(uint32_t), sizeof gt - sizeof(uint32_t));
    tern_gguf_kv gk;
    fill(&gk, sizeof gk);
    gk.struct_size = 4;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "struct_size", tern_gguf_kv_info(g, 0, &gk));
    CHECK_UNTOUCHED((char *)&gk + sizeof(uint32_t), sizeof gk - sizeof(uint32_t));
    int64_t idx;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "name", tern_gguf_find_tensor(g, NULL, &idx));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "key", tern_gguf_find_kv(g, NULL, &idx));
    const char *str;
    fill(&str, sizeof str);
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "missing", tern_gguf_get_string(g, "missing", &str, NULL));
    CHECK_UNTOUCHED(&str, sizeof str);
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "general.architecture", tern_gguf_get_int(g, "general.architecture", &idx));
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "value", tern_gguf_get_int(g, "n", NULL));
    double dv;
    fill(&dv, sizeof dv);
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n", tern_gguf_get_float(g, "n", &dv));
    CHECK_UNTOUCHED(&dv, sizeof dv);
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n", tern_gguf_get_array_string(g, "n", 0, &str, NULL));
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "n", tern_gguf_get_array_int(g, "n", 0, &idx));
    tern_matrix *m = NOT_NULL_MATRIX;
    EXPECT_MSG(TERN_STATUS_NULL_POINTER, "name", tern_matrix_from_gguf(NULL, g, NULL, &m));
    CHECK_TRUE(m == NULL);
    tern_layout bad = TERN_LAYOUT_INIT(TERN_FORMAT_TQ1_0);
    m = NOT_NULL_MATRIX;
    EXPECT_MSG(TERN_STATUS_INVALID_ARGUMENT, "layout", tern_matrix_from_gguf_layout(NULL, g, "m", &bad, &m));
    CHECK_TRUE(m == NULL);
    EXPECT(TERN_STATUS_OK, tern_matrix_from_gguf(NULL, g, "m", &m));
    tern_matrix_destroy(m);
    tern_gguf_close(g);
    remove(path);
}

/* Without a CUDA driver and GPU every tern_cuda_* call is NO_DEVICE (handles still reset to
 * NULL); with one, the NULL checks answer. */
static void test_cuda(void) {
    int gpu = tern_cuda_available();
    tern_cuda_matrix *cm = (tern_cuda_matrix *)(void *)&dummy_object;
    EXPECT(gpu ? TERN_STATUS_NULL_POINTER : TERN_STATUS_NO_DEVICE, tern_cuda_matrix_upload(NULL, NULL, 0, &cm));
    CHECK_TRUE(cm == NULL);
    float dev;
    EXPECT(gpu ? TERN_STATUS_NULL_POINTER : TERN_STATUS_NO_DEVICE,
           tern_cuda_gemm(NULL, &dev, TERN_DTYPE_F32, 1, &dev, TERN_DTYPE_F32, NULL));
    tern_cuda_gemm_options o = TERN_CUDA_GEMM_OPTIONS_INIT;
    EXPECT(gpu ? TERN_STATUS_NULL_POINTER : TERN_STATUS_NO_DEVICE,
           tern_cuda_gemm_ex(NULL, &dev, TERN_DTYPE_F32, 1, &dev, TERN_DTYPE_F32, NULL, &o));
}

int main(void) {
    /* Deterministic test data: ternary values, a packed buffer of them with scale 0.5, and
     * floats that quantize to something non-trivial. */
    static int8_t tern[M * K];
    static float w[M * K];
    static float x[2 * K];
    for (int i = 0; i < M * K; i++) {
        tern[i] = (int8_t)((i * 7 + i / 5) % 3 - 1);
        w[i] = 0.02f * (float)((i * 13) % 11 - 5);
    }
    for (int i = 0; i < 2 * K; i++) x[i] = (float)((i * 29) % 23) - 11.0f;
    tern_layout l = TERN_LAYOUT_INIT(TERN_FORMAT_I2_S);
    size_t need = 0;
    static unsigned char packed[M * K / 4 + 64];
    float scale = 0.5f;
    if (tern_packed_size(&l, M, K, &need) != TERN_STATUS_OK || need != M * K / 4 + 32 ||
        tern_pack(&l, tern, &scale, 1, M, K, packed, sizeof packed) != TERN_STATUS_OK) {
        fprintf(stderr, "setup failed: %s\n", tern_last_error_message());
        return 1;
    }
    static unsigned char corrupt_code[M * K / 4 + 32];
    memcpy(corrupt_code, packed, need);
    corrupt_code[M * K / 4 - 1] |= 0xC0; /* code 3 in the top bits of the last code byte */

    test_versions_and_names();
    test_context();
    test_packed_size();
    test_quantize(w);
    test_pack_unpack_dequantize(tern, packed, need);
    test_quantize_activations(x);
    test_matrix(w, packed, need, corrupt_code);
    test_init_macros();
    test_convert_and_ternarize(packed, need, w);
    test_gguf(packed, need);
    test_cuda();

    if (failures) {
        fprintf(stderr, "errors: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("errors: all %d checks passed\n", checks);
    return 0;
}
