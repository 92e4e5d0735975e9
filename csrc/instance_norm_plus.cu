// CUDA kernels around csrc/instance_norm_plus.h: plane statistics (one block per plane, two passes),
// per-sample coefficients (one thread per sample), and the apply pass (grid-stride, ELU fused).
#include <cuda_runtime.h>

#include "block_reduce.cuh"
#include "instance_norm_plus.h"
#include "ops_cuda.h"

namespace ncsn {

constexpr int kStatThreads = 256;

template <typename T>
__global__ void stats_kernel(const T* __restrict__ x, float* mu, float* rstd, int64_t channels, int64_t hw,
                             bool channels_last) {
  __shared__ float shared[32];
  const int64_t plane = blockIdx.x;  // n * channels + c
  const int64_t nn = plane / channels, c = plane % channels;
  const int64_t base = channels_last ? nn * hw * channels + c : plane * hw;
  const int64_t stride = channels_last ? channels : 1;
  float s = 0.f;
  for (int64_t p = threadIdx.x; p < hw; p += blockDim.x) s += load_as_float(x, base + p * stride);
  const float mean = block_sum(s, shared) / static_cast<float>(hw);
  float ss = 0.f;
  for (int64_t p = threadIdx.x; p < hw; p += blockDim.x) {
    const float d = load_as_float(x, base + p * stride) - mean;
    ss += d * d;
  }
  const float var = block_sum(ss, shared) / static_cast<float>(hw);
  if (threadIdx.x == 0) {
    mu[plane] = mean;
    rstd[plane] = rsqrtf(var + kNormEps);
  }
}

__global__ void coef_kernel(const float* mu, int64_t n, int64_t channels, const float* alpha, int64_t param_stride,
                            float* am) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  instance_norm_plus_coefs(mu + i * channels, channels, alpha + i * param_stride, am + i * channels);
}

template <typename T>
__global__ void apply_kernel(const T* __restrict__ x, T* __restrict__ out, const float* mu, const float* rstd,
                             const float* am, const float* gamma, const float* beta, int64_t param_stride,
                             int64_t total, int64_t channels, int64_t hw, bool channels_last, bool apply_elu) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = channels_last ? i % channels : (i / hw) % channels;
    const int64_t nn = i / (hw * channels), k = nn * channels + c, pk = nn * param_stride + c;
    store_from_float(out, i,
                     instance_norm_plus_apply(load_as_float(x, i), mu[k], rstd[k], am[k], gamma[pk], beta[pk],
                                              apply_elu));
  }
}

template <typename T>
static int run(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* gamma,
               const float* alpha, const float* beta, int64_t param_stride, bool apply_elu, float* work,
               cudaStream_t s) {
  float *mu = work, *rstd = work + n * channels, *am = work + 2 * n * channels;
  stats_kernel<<<static_cast<unsigned>(n * channels), kStatThreads, 0, s>>>(x, mu, rstd, channels, hw, channels_last);
  coef_kernel<<<static_cast<unsigned>((n + 127) / 128), 128, 0, s>>>(mu, n, channels, alpha, param_stride, am);
  const int64_t total = n * channels * hw;
  apply_kernel<<<stride_blocks(total), kStrideThreads, 0, s>>>(
      x, out, mu, rstd, am, gamma, beta, param_stride, total, channels, hw, channels_last, apply_elu);
  return static_cast<int>(cudaGetLastError());
}

int instance_norm_plus_cuda(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                            bool channels_last, const float* gamma, const float* alpha, const float* beta,
                            int64_t param_stride, bool apply_elu, float* work, uintptr_t stream) {
  if (n == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32:
      return run(static_cast<const float*>(x), static_cast<float*>(out), n, channels, hw, channels_last, gamma, alpha,
                 beta, param_stride, apply_elu, work, s);
    case kFloat16:
      return run(static_cast<const Half*>(x), static_cast<Half*>(out), n, channels, hw, channels_last, gamma, alpha,
                 beta, param_stride, apply_elu, work, s);
    case kBFloat16:
      return run(static_cast<const BFloat16*>(x), static_cast<BFloat16*>(out), n, channels, hw, channels_last, gamma,
                 alpha, beta, param_stride, apply_elu, work, s);
    default:
      return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace ncsn
