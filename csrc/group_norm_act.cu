// CUDA kernels around csrc/group_norm_act.h: group statistics (one block per (sample, group), two passes over
// x + e) and the apply pass (grid-stride, SiLU fused).
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "group_norm_act.h"
#include "ops_cuda.h"

namespace ncsn {

constexpr int kGroupThreads = 256;

// Element k of group (nn, g): channel c = g * cpg + k / hw, pixel k % hw (NCHW: the group is one contiguous
// run), or pixel k / cpg, channel g * cpg + k % cpg (NHWC).
template <typename T>
__device__ __forceinline__ float group_value(const T* x, const float* add, int64_t nn, int64_t g, int64_t k,
                                             int64_t channels, int64_t hw, int64_t cpg, bool channels_last) {
  const int64_t c = g * cpg + (channels_last ? k % cpg : k / hw);
  const int64_t i = channels_last ? (nn * hw + k / cpg) * channels + c : (nn * channels + g * cpg) * hw + k;
  return load_as_float(x, i) + (add ? add[nn * channels + c] : 0.f);
}

template <typename T>
__global__ void group_stats_kernel(const T* __restrict__ x, const float* add, float* mu, float* rstd,
                                   int64_t channels, int64_t hw, int64_t groups, float eps, bool channels_last) {
  __shared__ float shared[32];
  const int64_t ng = blockIdx.x, nn = ng / groups, g = ng % groups, cpg = channels / groups, count = cpg * hw;
  float s = 0.f;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x)
    s += group_value(x, add, nn, g, k, channels, hw, cpg, channels_last);
  const float mean = block_sum(s, shared) / static_cast<float>(count);
  float ss = 0.f;
  for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const float d = group_value(x, add, nn, g, k, channels, hw, cpg, channels_last) - mean;
    ss += d * d;
  }
  const float var = block_sum(ss, shared) / static_cast<float>(count);
  if (threadIdx.x == 0) {
    mu[ng] = mean;
    rstd[ng] = rsqrtf(var + eps);
  }
}

template <typename T>
__global__ void group_apply_kernel(const T* __restrict__ x, T* __restrict__ out, const float* mu, const float* rstd,
                                   const float* weight, const float* bias, const float* add, int64_t total,
                                   int64_t channels, int64_t hw, int64_t groups, bool channels_last,
                                   bool apply_silu) {
  const int64_t cpg = channels / groups;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = channels_last ? i % channels : (i / hw) % channels;
    const int64_t nn = i / (hw * channels), ng = nn * groups + c / cpg;
    const float m = mu[ng] - (add ? add[nn * channels + c] : 0.f), s = weight[c] * rstd[ng];
    const float v = load_as_float(x, i);
    store_from_float(out, i, apply_silu ? group_norm_act_apply<true>(v, m, s, bias[c])
                                        : group_norm_act_apply<false>(v, m, s, bias[c]));
  }
}

template <typename T>
static int run(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, int64_t groups,
               float eps, const float* weight, const float* bias, const float* add, bool apply_silu, float* work,
               cudaStream_t s) {
  float *mu = work, *rstd = work + n * groups;
  group_stats_kernel<<<static_cast<unsigned>(n * groups), kGroupThreads, 0, s>>>(x, add, mu, rstd, channels, hw,
                                                                                 groups, eps, channels_last);
  const int64_t total = n * channels * hw;
  group_apply_kernel<<<stride_blocks(total), kStrideThreads, 0, s>>>(
      x, out, mu, rstd, weight, bias, add, total, channels, hw, groups, channels_last, apply_silu);
  return static_cast<int>(cudaGetLastError());
}

int group_norm_act_cuda(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                        bool channels_last, int64_t groups, float eps, const float* weight, const float* bias,
                        const float* add, bool apply_silu, float* work, uintptr_t stream) {
  if (n == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32:
      return run(static_cast<const float*>(x), static_cast<float*>(out), n, channels, hw, channels_last, groups, eps,
                 weight, bias, add, apply_silu, work, s);
    case kFloat16:
      return run(static_cast<const Half*>(x), static_cast<Half*>(out), n, channels, hw, channels_last, groups, eps,
                 weight, bias, add, apply_silu, work, s);
    case kBFloat16:
      return run(static_cast<const BFloat16*>(x), static_cast<BFloat16*>(out), n, channels, hw, channels_last, groups,
                 eps, weight, bias, add, apply_silu, work, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace ncsn
