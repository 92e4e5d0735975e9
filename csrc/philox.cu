// CUDA kernel around csrc/philox.h: one thread per group of 4 elements of one sample.
#include <cuda_runtime.h>

#include "ops_cuda.h"
#include "philox.h"

namespace ncsn {

template <bool kWords>
__global__ void philox_kernel(void* out, const int64_t* __restrict__ ids, int64_t numel, const int64_t* seed_p,
                              const int64_t* step_p) {
  const int64_t row = blockIdx.y;
  const int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e0 = 4 * q;
  if (e0 >= numel) return;
  const Words4 w = noise_words(static_cast<uint64_t>(*seed_p), static_cast<uint64_t>(ids[row]),
                               static_cast<uint32_t>(*step_p), static_cast<uint32_t>(q));
  if (kWords) {
    int64_t* o = static_cast<int64_t*>(out) + row * numel;
    for (int k = 0; k < 4 && e0 + k < numel; ++k) o[e0 + k] = static_cast<int64_t>(w.w[k]);
  } else {
    float z[4];
    words_to_normal4(w, z);
    float* o = static_cast<float*>(out) + row * numel;
    for (int k = 0; k < 4 && e0 + k < numel; ++k) o[e0 + k] = z[k];
  }
}

int philox_cuda(void* out, const int64_t* ids, int64_t n, int64_t numel, const int64_t* seed, const int64_t* step,
                bool words, uintptr_t stream) {
  if (n == 0 || numel == 0) return 0;
  const int threads = 256;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  for (int64_t r0 = 0; r0 < n; r0 += kMaxGridY) {  // sample r0 + blockIdx.y
    const int64_t rows = n - r0 < kMaxGridY ? n - r0 : kMaxGridY;
    const dim3 grid(static_cast<unsigned>(((numel + 3) / 4 + threads - 1) / threads), static_cast<unsigned>(rows));
    if (words)
      philox_kernel<true><<<grid, threads, 0, s>>>(static_cast<int64_t*>(out) + r0 * numel, ids + r0, numel, seed,
                                                   step);
    else
      philox_kernel<false><<<grid, threads, 0, s>>>(static_cast<float*>(out) + r0 * numel, ids + r0, numel, seed,
                                                    step);
  }
  return static_cast<int>(cudaGetLastError());
}

const char* cuda_error_string(int err) { return cudaGetErrorString(static_cast<cudaError_t>(err)); }

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error of a machine without a driver
    return 0;
  }
  return count;
}

}  // namespace ncsn
