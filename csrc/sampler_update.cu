// CUDA kernel around csrc/sampler_update.h: one thread per group of 4 elements, the batch on grid y.
#include <cuda_runtime.h>

#include "ops_cuda.h"
#include "sampler_update.h"

namespace ncsn {

template <typename H>
__global__ void sampler_update_kernel(float* __restrict__ x, float* __restrict__ p, const H* __restrict__ h,
                                      const int64_t* __restrict__ ids, int64_t channels, int64_t hw,
                                      bool channels_last, const int64_t* seed_p, const int64_t* step_p,
                                      const float* coefs, const float* mult) {
  const int64_t row = blockIdx.y;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t groups = (channels * hw + 3) / 4;
  if (q >= groups) return;
  const UpdateCoefs k = update_coefs(coefs, mult + 2 * row);
  sampler_update_group(x, p, h, row, q, channels, hw, channels_last, static_cast<uint64_t>(*seed_p),
                       static_cast<uint64_t>(ids[row]), static_cast<uint32_t>(*step_p), k);
}

template <typename H>
static void launch_rows(float* x, float* p, const void* h, const int64_t* ids, int64_t n, int64_t channels,
                        int64_t hw, bool channels_last, const int64_t* seed, const int64_t* step, const float* coefs,
                        const float* mult, cudaStream_t s) {
  const int64_t numel = channels * hw, groups = (numel + 3) / 4;
  const int threads = 256;
  for (int64_t r0 = 0; r0 < n; r0 += kMaxGridY) {  // sample r0 + blockIdx.y; each sample is contiguous
    const int64_t rows = n - r0 < kMaxGridY ? n - r0 : kMaxGridY;
    const dim3 grid(static_cast<unsigned>((groups + threads - 1) / threads), static_cast<unsigned>(rows));
    sampler_update_kernel<<<grid, threads, 0, s>>>(x + r0 * numel, p + r0 * numel,
                                                   static_cast<const H*>(h) + r0 * numel, ids + r0, channels, hw,
                                                   channels_last, seed, step, coefs, mult + 2 * r0);
  }
}

int sampler_update_cuda(float* x, float* p, const void* h, int h_dtype, const int64_t* ids, int64_t n,
                        int64_t channels, int64_t hw, bool channels_last, const int64_t* seed, const int64_t* step,
                        const float* coefs, const float* mult, uintptr_t stream) {
  if (n == 0 || channels * hw == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (h_dtype) {
    case kFloat32:
      launch_rows<float>(x, p, h, ids, n, channels, hw, channels_last, seed, step, coefs, mult, s);
      break;
    case kFloat16:
      launch_rows<Half>(x, p, h, ids, n, channels, hw, channels_last, seed, step, coefs, mult, s);
      break;
    case kBFloat16:
      launch_rows<BFloat16>(x, p, h, ids, n, channels, hw, channels_last, seed, step, coefs, mult, s);
      break;
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
  return static_cast<int>(cudaGetLastError());
}

}  // namespace ncsn
