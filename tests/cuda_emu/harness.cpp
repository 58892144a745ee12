// Host build of cuda/tern_kernels.cu under the emulation header (cuda/tern_cuda_emu.h), loaded
// by tests/cuda_emu.rs with dlopen. One entry point runs any kernel over a grid, with the same
// parameter struct the driver path passes (src/cuda/plan.rs).
#define TERN_CUDA_EMU 1
#include "../../cuda/tern_kernels.cu"

// Kernel ids: src/cuda/plan.rs `Kernel`.
extern "C" int tern_emu_launch(int kernel, const unsigned grid[3], const unsigned block[3], const void *params) {
    const TernCudaParams p = *(const TernCudaParams *)params;
    const dim3 g(grid[0], grid[1], grid[2]), b(block[0], block[1], block[2]);
    switch (kernel) {
        case 0: tern_emu::launch(g, b, tern_quantize_act, p); return 0;
        case 1: tern_emu::launch(g, b, tern_gemv, p); return 0;
        case 2: tern_emu::launch(g, b, tern_gemm_mma, p); return 0;
        default: return -1;
    }
}

// sizeof(TernCudaParams), checked against the Rust mirror.
extern "C" unsigned tern_emu_params_size(void) { return (unsigned)sizeof(TernCudaParams); }
