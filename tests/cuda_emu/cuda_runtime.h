// A CPU stand-in for the part of CUDA that csrc/*.cu use, so that the CUDA kernels and their launchers run in
// tests on a machine without a GPU (tests/test_cuda_emulated.py compiles them with g++ against this header,
// after rewriting each `kernel<<<grid, block, smem, stream>>>(args)` into `cuda_emu::launch(grid, block, ...)`).
//
// Each CUDA thread of a block is a fiber (ucontext) on one OS thread; blocks run one after another. A fiber
// runs until it exits or reaches a barrier: __syncthreads waits for every live thread of the block, a warp
// shuffle for every live lane of its warp (two barriers: write, then read). A barrier that can never be
// released (threads of one block or warp waiting at different barriers) aborts with a message, as it is
// undefined behaviour on a GPU. Shared memory is a function-local static: blocks never run concurrently.
// What it does not model: memory races between blocks, warp-synchronous code without a shuffle, timing.
#pragma once

#include <ucontext.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};

typedef void* cudaStream_t;
enum cudaError_t { cudaSuccess = 0, cudaErrorInvalidValue = 1, cudaErrorInvalidConfiguration = 9 };

namespace cuda_emu {

enum State { kRunnable, kAtBlockBarrier, kAtWarpBarrier, kDone };

struct Fiber {
  ucontext_t ctx;
  State state = kRunnable;
  dim3 tid;
  unsigned linear = 0;
};

inline dim3 block_idx, block_dim, grid_dim;
inline cudaError_t last_error = cudaSuccess;
inline ucontext_t scheduler;
inline Fiber* current = nullptr;
inline std::vector<double> shuffle_slots;
inline void (*fiber_body)(void*) = nullptr;
inline void* fiber_arg = nullptr;
constexpr size_t kStack = 64 * 1024;
#ifndef CUDA_EMU_MAX_GRID_Y
#define CUDA_EMU_MAX_GRID_Y 65535  // CUDA's limit on gridDim.y and gridDim.z
#endif

inline void yield(State s) {
  current->state = s;
  swapcontext(&current->ctx, &scheduler);
}

inline void fiber_entry() {
  fiber_body(fiber_arg);
  current->state = kDone;  // returning resumes the scheduler (uc_link)
}

template <typename F>
void trampoline(void* f) {
  (*static_cast<F*>(f))();
}

// Runs the kernel body f for every thread of every block of the grid.
template <typename F>
void launch(dim3 grid, dim3 block, F&& f) {
  const unsigned threads = block.x * block.y * block.z;
  if (threads == 0 || threads > 1024 || grid.x == 0 || grid.y == 0 || grid.z == 0 ||
      grid.y > CUDA_EMU_MAX_GRID_Y || grid.z > CUDA_EMU_MAX_GRID_Y) {
    last_error = cudaErrorInvalidConfiguration;
    return;
  }
  grid_dim = grid;
  block_dim = block;
  std::vector<Fiber> fibers(threads);
  std::vector<std::vector<char>> stacks(threads, std::vector<char>(kStack));
  shuffle_slots.assign(threads, 0.0);
  fiber_body = &trampoline<std::remove_reference_t<F>>;
  fiber_arg = static_cast<void*>(&f);
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        block_idx = dim3(bx, by, bz);
        for (unsigned t = 0; t < threads; ++t) {
          Fiber& fb = fibers[t];
          fb.state = kRunnable;
          fb.linear = t;
          fb.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
          getcontext(&fb.ctx);
          fb.ctx.uc_stack.ss_sp = stacks[t].data();
          fb.ctx.uc_stack.ss_size = kStack;
          fb.ctx.uc_link = &scheduler;
          makecontext(&fb.ctx, fiber_entry, 0);
        }
        for (;;) {
          for (Fiber& fb : fibers) {
            if (fb.state != kRunnable) continue;
            current = &fb;
            swapcontext(&scheduler, &fb.ctx);
          }
          // Every fiber is done or waiting: release the barriers whose threads have all arrived.
          bool all_done = true, released = false, block_ready = true, any_block = false;
          for (Fiber& fb : fibers) {
            if (fb.state != kDone) all_done = false;
            if (fb.state == kAtBlockBarrier) any_block = true;
            if (fb.state == kRunnable || fb.state == kAtWarpBarrier) block_ready = false;
          }
          if (all_done) break;
          if (any_block && block_ready) {
            for (Fiber& fb : fibers)
              if (fb.state == kAtBlockBarrier) fb.state = kRunnable;
            released = true;
          }
          for (unsigned w = 0; w * 32 < threads; ++w) {
            bool any = false, ready = true;
            for (unsigned t = w * 32; t < threads && t < w * 32 + 32; ++t) {
              if (fibers[t].state == kAtWarpBarrier) any = true;
              else if (fibers[t].state != kDone) ready = false;
            }
            if (any && ready) {
              for (unsigned t = w * 32; t < threads && t < w * 32 + 32; ++t)
                if (fibers[t].state == kAtWarpBarrier) fibers[t].state = kRunnable;
              released = true;
            }
          }
          if (!released) {
            std::fprintf(stderr, "cuda_emu: deadlock in block (%u, %u, %u): threads wait at different barriers\n",
                         bx, by, bz);
            std::abort();
          }
        }
      }
}

}  // namespace cuda_emu

#define blockIdx (::cuda_emu::block_idx)
#define threadIdx (::cuda_emu::current->tid)
#define blockDim (::cuda_emu::block_dim)
#define gridDim (::cuda_emu::grid_dim)

inline void __syncthreads() { cuda_emu::yield(cuda_emu::kAtBlockBarrier); }

template <typename T>
T __shfl_down_sync(unsigned /*mask*/, T v, unsigned delta) {
  const unsigned me = cuda_emu::current->linear, lane = me & 31;
  cuda_emu::shuffle_slots[me] = static_cast<double>(v);
  cuda_emu::yield(cuda_emu::kAtWarpBarrier);
  const unsigned src = me + delta;
  const T out = (lane + delta < 32 && src < cuda_emu::shuffle_slots.size())
                    ? static_cast<T>(cuda_emu::shuffle_slots[src]) : v;
  cuda_emu::yield(cuda_emu::kAtWarpBarrier);  // nobody overwrites a slot before every lane has read
  return out;
}

inline float atomicAdd(float* p, float v) {
  const float old = *p;
  *p = old + v;
  return old;
}

inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

inline cudaError_t cudaGetLastError() {
  const cudaError_t e = cuda_emu::last_error;
  cuda_emu::last_error = cudaSuccess;
  return e;
}
inline const char* cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "emulated launch error"; }
inline cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
