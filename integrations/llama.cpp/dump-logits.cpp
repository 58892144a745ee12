// Writes a model's next-token logits for a fixed token sequence, for comparing two llama.cpp
// builds (stock and CPU_TERN) on the same GGUF.
//
//   dump-logits MODEL.gguf OUT.f32 [threads]
//
// Decodes PROMPT tokens in one batch with logits for every position (the batched mat-mul path,
// several tokens per MUL_MAT), then GEN more tokens one at a time (the one-token path). The
// tokens are a fixed pseudo-random sequence, so no tokenizer is involved. OUT holds
// (PROMPT + GEN) rows of n_vocab f32 logits.

#include "llama.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

static constexpr int PROMPT = 48;
static constexpr int GEN    = 8;

int main(int argc, char ** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf OUT.f32 [threads]\n", argv[0]);
        return 2;
    }
    const int n_threads = argc > 3 ? atoi(argv[3]) : 2;

    llama_backend_init();
    llama_model_params mp    = llama_model_default_params();
    llama_model *      model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "dump-logits: cannot load %s\n", argv[1]);
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx                 = PROMPT + GEN;
    cp.n_batch               = PROMPT;
    cp.n_ubatch              = PROMPT;
    cp.n_threads             = n_threads;
    cp.n_threads_batch       = n_threads;
    llama_context * ctx      = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "dump-logits: cannot create a context\n");
        return 1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    std::vector<llama_token> tokens(PROMPT + GEN);
    uint32_t                 state = 12345;
    for (auto & t : tokens) {
        state = state * 1664525u + 1013904223u;
        t     = 3 + (llama_token) ((state >> 8) % (uint32_t) (n_vocab - 3));  // past <unk>, <s>, </s>
    }

    FILE * out = fopen(argv[2], "wb");
    if (!out) {
        fprintf(stderr, "dump-logits: cannot write %s\n", argv[2]);
        return 1;
    }
    llama_batch batch = llama_batch_init(PROMPT, 0, 1);
    auto        run   = [&](int first, int n) {
        batch.n_tokens = n;
        for (int i = 0; i < n; i++) {
            batch.token[i]     = tokens[first + i];
            batch.pos[i]       = first + i;
            batch.n_seq_id[i]  = 1;
            batch.seq_id[i][0] = 0;
            batch.logits[i]    = 1;
        }
        if (llama_decode(ctx, batch) != 0) {
            fprintf(stderr, "dump-logits: llama_decode failed\n");
            exit(1);
        }
        for (int i = 0; i < n; i++) {
            fwrite(llama_get_logits_ith(ctx, i), sizeof(float), n_vocab, out);
        }
    };
    run(0, PROMPT);
    for (int g = 0; g < GEN; g++) {
        run(PROMPT + g, 1);
    }
    fclose(out);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
