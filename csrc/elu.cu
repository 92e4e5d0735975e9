// CUDA ELU (alpha 1) over a dense buffer: grid-stride, expm1f for x <= 0 (accurate near 0).
#include <cuda_runtime.h>

#include "common.h"
#include "ops_cuda.h"

namespace ncsn {

template <typename T>
__global__ void elu_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t numel) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = load_as_float(x, i);
    store_from_float(out, i, (v > 0.f || v != v) ? v : expm1f(v));
  }
}

template <typename T>
static int launch(const void* x, void* out, int64_t numel, cudaStream_t s) {
  elu_kernel<<<stride_blocks(numel), kStrideThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(out), numel);
  return static_cast<int>(cudaGetLastError());
}

int elu_cuda(const void* x, void* out, int dtype, int64_t numel, uintptr_t stream) {
  if (numel == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32: return launch<float>(x, out, numel, s);
    case kFloat16: return launch<Half>(x, out, numel, s);
    case kBFloat16: return launch<BFloat16>(x, out, numel, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace ncsn
