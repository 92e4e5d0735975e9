// CUDA kernel around csrc/langevin_step.h: one thread per group of 4 elements; warp-reduced statistics.
#include <cuda_runtime.h>

#include "langevin_step.h"
#include "ops_cuda.h"

namespace ncsn {

template <typename H>
__global__ void langevin_step_kernel(float* __restrict__ x, const H* __restrict__ h, const int64_t* __restrict__ ids,
                                     int64_t channels, int64_t hw, bool channels_last, const int64_t* seed_p,
                                     const int64_t* step_p, const float* coefs, float* stats) {
  const int64_t row = blockIdx.y;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = (channels * hw + 3) / 4;
  float sums[2] = {0.f, 0.f};
  if (q < groups) {
    const float g = coefs[0] * coefs[1], b = coefs[2];
    langevin_group(x, h, row, q, channels, hw, channels_last, static_cast<uint64_t>(*seed_p),
                   static_cast<uint64_t>(ids[row]), static_cast<uint32_t>(*step_p), g, b, sums);
  }
  if (stats) {
    for (int off = 16; off > 0; off >>= 1) {
      sums[0] += __shfl_down_sync(0xffffffffu, sums[0], off);
      sums[1] += __shfl_down_sync(0xffffffffu, sums[1], off);
    }
    if ((threadIdx.x & 31) == 0) {
      atomicAdd(stats + 2 * row, sums[0]);
      atomicAdd(stats + 2 * row + 1, sums[1]);
    }
  }
}

template <typename H>
static void launch_rows(float* x, const void* h, const int64_t* ids, int64_t n, int64_t channels, int64_t hw,
                        bool channels_last, const int64_t* seed, const int64_t* step, const float* coefs, float* stats,
                        cudaStream_t s) {
  const int64_t numel = channels * hw, groups = (numel + 3) / 4;
  const int threads = 256;  // a multiple of the warp size: the statistics reduce per warp
  for (int64_t r0 = 0; r0 < n; r0 += kMaxGridY) {  // sample r0 + blockIdx.y; each sample is contiguous
    const int64_t rows = n - r0 < kMaxGridY ? n - r0 : kMaxGridY;
    const dim3 grid(static_cast<unsigned>((groups + threads - 1) / threads), static_cast<unsigned>(rows));
    langevin_step_kernel<<<grid, threads, 0, s>>>(x + r0 * numel, static_cast<const H*>(h) + r0 * numel, ids + r0,
                                                  channels, hw, channels_last, seed, step, coefs,
                                                  stats ? stats + 2 * r0 : nullptr);
  }
}

int langevin_step_cuda(float* x, const void* h, int h_dtype, const int64_t* ids, int64_t n, int64_t channels,
                       int64_t hw, bool channels_last, const int64_t* seed, const int64_t* step, const float* coefs,
                       float* stats, uintptr_t stream) {
  if (n == 0 || channels * hw == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (h_dtype) {
    case kFloat32:
      launch_rows<float>(x, h, ids, n, channels, hw, channels_last, seed, step, coefs, stats, s);
      break;
    case kFloat16:
      launch_rows<Half>(x, h, ids, n, channels, hw, channels_last, seed, step, coefs, stats, s);
      break;
    case kBFloat16:
      launch_rows<BFloat16>(x, h, ids, n, channels, hw, channels_last, seed, step, coefs, stats, s);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace ncsn
