// tern_cuda_emu.h: runs tern's CUDA kernels (cuda/tern_kernels.cu) as host C++, for tests on
// machines without a GPU. Include it before the kernel source with TERN_CUDA_EMU defined.
//
// Model: a launch runs its blocks one after another on the calling OS thread. Inside a block,
// every CUDA thread is a fiber (ucontext) with its own stack; fibers switch only at
// synchronization points, so the kernel code runs unchanged:
//   - __syncthreads(): a barrier over the live (not yet returned) threads of the block;
//   - warp collectives (__shfl_*_sync, the mma.sync emulation): a barrier over the live lanes
//     of the warp, with each lane's operand published in a per-warp slot (double-buffered by
//     barrier generation, so one barrier per collective suffices);
//   - a collective that can never complete (e.g. lanes of one warp waiting in different
//     barriers) is reported as a deadlock and aborts.
// __shared__ variables become `static thread_local`: one instance per OS thread, shared by the
// fibers of the block that runs there (blocks run one at a time), so concurrent launches from
// different test threads stay independent.
//
// Arithmetic is emulated bit-exactly: __dp4a (signed bytes, int32 wrap), mma.sync
// m16n8k32.row.col.s32.s8.s8.s32 with the PTX ISA fragment layout ("Matrix Fragments for
// mma.m16n8k32": g = lane>>2, t = lane&3; A: a0 row g k 4t..4t+3, a1 row g+8, a2 row g k 16+4t,
// a3 row g+8 k 16+4t; B: b0 col g k 4t.., b1 col g k 16+4t..; C/D: c0,c1 row g cols 2t,2t+1,
// c2,c3 row g+8), and the IEEE round-to-nearest float intrinsics the kernels use
// (__fadd_rn, __fmul_rn, __fdiv_rn; compile with -ffp-contract=off).
#pragma once
#ifndef TERN_CUDA_EMU
#error "define TERN_CUDA_EMU before including tern_cuda_emu.h"
#endif

#include <ucontext.h>

#include <math.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static thread_local
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    dim3() = default;
    dim3(unsigned x_, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) int4 {
    int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned x, y;
};

namespace tern_emu {

enum State { READY, WAIT_BLOCK, WAIT_WARP, DONE };

struct Fiber {
    ucontext_t ctx;
    dim3 tid;
    unsigned linear = 0;
    State state = READY;
};

// Operands a lane publishes for a warp collective: up to 12 words (mma: a[4], b[2]).
constexpr int SLOT_WORDS = 12;
constexpr size_t STACK_BYTES = 256 * 1024;

struct Warp {
    int live = 0;
    int arrived = 0;
    unsigned gen = 0;
    uint32_t slot[2][32][SLOT_WORDS];
};

struct Block {
    std::vector<Fiber> fibers;
    std::vector<Warp> warps;
    ucontext_t sched;
    dim3 bid, bdim, gdim;
    int live = 0;
    int block_arrived = 0;
    std::function<void()> body;
};

inline thread_local Block *g_block = nullptr;
// Fiber stacks, kept per OS thread across launches (allocated uninitialized, touched lazily).
inline thread_local std::vector<std::unique_ptr<char[]>> g_stacks;
inline thread_local Fiber *g_fiber = nullptr;

[[noreturn]] inline void fail(const char *what) {
    std::fprintf(stderr, "tern_cuda_emu: %s\n", what);
    std::abort();
}

inline void yield() {
    Fiber *f = g_fiber;
    if (swapcontext(&f->ctx, &g_block->sched) != 0) fail("swapcontext failed");
}

inline void fiber_entry() {
    g_block->body();
    Fiber *f = g_fiber;
    f->state = DONE;
    // Returning resumes uc_link (the scheduler).
}

inline unsigned lane_of(const Fiber *f) { return f->linear % 32; }
inline unsigned warp_of(const Fiber *f) { return f->linear / 32; }

inline void syncthreads() {
    g_fiber->state = WAIT_BLOCK;
    g_block->block_arrived++;
    yield();
}

// Publishes `n` words for this lane, waits for the whole warp, returns the slot set to read.
inline uint32_t (*warp_exchange(const uint32_t *words, int n))[SLOT_WORDS] {
    Fiber *f = g_fiber;
    Warp &w = g_block->warps[warp_of(f)];
    unsigned buf = w.gen & 1;
    std::memcpy(w.slot[buf][lane_of(f)], words, sizeof(uint32_t) * n);
    f->state = WAIT_WARP;
    w.arrived++;
    yield();
    return w.slot[buf];
}

// Releases barriers whose participants have all arrived; returns whether anything is ready.
inline bool release(Block &b) {
    if (b.block_arrived > 0 && b.block_arrived == b.live) {
        for (Fiber &f : b.fibers)
            if (f.state == WAIT_BLOCK) f.state = READY;
        b.block_arrived = 0;
    }
    for (size_t wi = 0; wi < b.warps.size(); wi++) {
        Warp &w = b.warps[wi];
        if (w.arrived > 0 && w.arrived == w.live) {
            for (size_t i = wi * 32; i < b.fibers.size() && i < wi * 32 + 32; i++)
                if (b.fibers[i].state == WAIT_WARP) b.fibers[i].state = READY;
            w.arrived = 0;
            w.gen++;
        }
    }
    for (const Fiber &f : b.fibers)
        if (f.state == READY) return true;
    return false;
}

inline void run_block(Block &b) {
    unsigned n = b.bdim.x * b.bdim.y * b.bdim.z;
    b.fibers.assign(n, Fiber{});
    b.warps.assign((n + 31) / 32, Warp{});
    if (g_stacks.size() < n) g_stacks.resize(n);
    for (unsigned i = 0; i < n; i++) {
        Fiber &f = b.fibers[i];
        f.linear = i;
        f.tid = dim3(i % b.bdim.x, (i / b.bdim.x) % b.bdim.y, i / (b.bdim.x * b.bdim.y));
        b.warps[i / 32].live++;
        if (!g_stacks[i]) g_stacks[i].reset(new char[STACK_BYTES]);
        if (getcontext(&f.ctx) != 0) fail("getcontext failed");
        f.ctx.uc_stack.ss_sp = g_stacks[i].get();
        f.ctx.uc_stack.ss_size = STACK_BYTES;
        f.ctx.uc_link = &b.sched;
        makecontext(&f.ctx, fiber_entry, 0);
    }
    b.live = (int)n;
    b.block_arrived = 0;
    while (b.live > 0) {
        bool ran = false;
        for (unsigned i = 0; i < n; i++) {
            Fiber &f = b.fibers[i];
            if (f.state != READY) continue;
            ran = true;
            g_fiber = &f;
            if (swapcontext(&b.sched, &f.ctx) != 0) fail("swapcontext failed");
            g_fiber = nullptr;
            if (f.state == DONE) {
                b.live--;
                b.warps[i / 32].live--;
            }
            release(b);
        }
        if (!ran && b.live > 0 && !release(b))
            fail("deadlock: threads wait in barriers or warp collectives that can never complete");
    }
}

// Runs `kernel(args...)` over the grid. Blocks run in order on this OS thread.
template <typename Kernel, typename... Args>
void launch(dim3 grid, dim3 block, Kernel kernel, Args... args) {
    Block *saved = g_block;
    Block b;
    b.gdim = grid;
    b.bdim = block;
    b.body = [&]() { kernel(args...); };
    g_block = &b;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                b.bid = dim3(x, y, z);
                run_block(b);
            }
    g_block = saved;
}

}  // namespace tern_emu

#define threadIdx (tern_emu::g_fiber->tid)
#define blockIdx (tern_emu::g_block->bid)
#define blockDim (tern_emu::g_block->bdim)
#define gridDim (tern_emu::g_block->gdim)

inline void __syncthreads() { tern_emu::syncthreads(); }

// Only full-warp masks are used by the kernels; the mask is checked against the live lanes.
inline int __shfl_xor_sync(unsigned mask, int v, int lane_mask) {
    if (mask != 0xffffffffu) tern_emu::fail("__shfl_xor_sync: only full-warp masks are emulated");
    uint32_t w = (uint32_t)v;
    auto slots = tern_emu::warp_exchange(&w, 1);
    unsigned src = (tern_emu::lane_of(tern_emu::g_fiber) ^ (unsigned)lane_mask) & 31;
    return (int)slots[src][0];
}
inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask) {
    uint32_t w;
    std::memcpy(&w, &v, 4);
    int r = __shfl_xor_sync(mask, (int)w, lane_mask);
    float f;
    std::memcpy(&f, &r, 4);
    return f;
}
inline int __shfl_sync(unsigned mask, int v, int src_lane) {
    if (mask != 0xffffffffu) tern_emu::fail("__shfl_sync: only full-warp masks are emulated");
    uint32_t w = (uint32_t)v;
    auto slots = tern_emu::warp_exchange(&w, 1);
    return (int)slots[src_lane & 31][0];
}
inline float __shfl_sync(unsigned mask, float v, int src_lane) {
    uint32_t w;
    std::memcpy(&w, &v, 4);
    int r = __shfl_sync(mask, (int)w, src_lane);
    float f;
    std::memcpy(&f, &r, 4);
    return f;
}

// __dp4a(int, int, int): four signed byte products added to c, int32 wrap-around.
inline int __dp4a(int a, int b, int c) {
    uint32_t acc = (uint32_t)c;
    for (int i = 0; i < 4; i++) {
        int x = (int8_t)(uint8_t)((uint32_t)a >> (8 * i));
        int y = (int8_t)(uint8_t)((uint32_t)b >> (8 * i));
        acc += (uint32_t)(x * y);
    }
    return (int)acc;
}

inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __int2float_rn(int v) { return (float)v; }
inline float __uint_as_float(unsigned v) {
    float f;
    std::memcpy(&f, &v, 4);
    return f;
}
inline unsigned __float_as_uint(float f) {
    unsigned v;
    std::memcpy(&v, &f, 4);
    return v;
}
inline int __float2int_rn(float f) { return (int)std::nearbyint(f); }  // default mode: to even
// fabsf, fmaxf, fminf, rintf (to even in the default mode), roundf (half away): <math.h>.

// mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {d0..d3}, {a0..a3}, {b0, b1}, {c0..c3}
inline void tern_emu_mma_m16n8k32_s8(int d[4], const unsigned a[4], const unsigned b[2], const int c[4]) {
    uint32_t mine[6] = {a[0], a[1], a[2], a[3], b[0], b[1]};
    auto slots = tern_emu::warp_exchange(mine, 6);
    auto byte = [](uint32_t w, int i) { return (int)(int8_t)(uint8_t)(w >> (8 * i)); };
    // A[row][k] and B[k][col] rebuilt from the lanes' fragments.
    auto A = [&](int row, int k) {
        int g = row % 8, hi = row / 8, kh = k / 16, t = (k % 16) / 4;
        return byte(slots[g * 4 + t][hi + 2 * kh], k % 4);
    };
    auto B = [&](int k, int col) {
        int kh = k / 16, t = (k % 16) / 4;
        return byte(slots[col * 4 + t][4 + kh], k % 4);
    };
    unsigned lane = tern_emu::lane_of(tern_emu::g_fiber);
    int g = (int)lane >> 2, t = (int)lane & 3;
    for (int i = 0; i < 4; i++) {
        int row = g + 8 * (i / 2), col = 2 * t + (i & 1);
        uint32_t acc = (uint32_t)c[i];
        for (int k = 0; k < 32; k++) acc += (uint32_t)(A(row, k) * B(k, col));
        d[i] = (int)acc;
    }
}
