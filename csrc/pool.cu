// CUDA 5x5 CRP pooling around csrc/pool.h: one thread per output element (grid-stride), NCHW or NHWC
// through the index arithmetic; the 25 reads of neighbouring threads overlap and are served by L1/L2.
#include <cuda_runtime.h>

#include "ops_cuda.h"
#include "pool.h"

namespace ncsn {

template <bool kMax, typename T>
__global__ void pool5x5_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t total, int64_t channels,
                               int64_t height, int64_t width, bool channels_last) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t nn, c, oh, ow, base, sh, sw;
    if (channels_last) {
      c = i % channels;
      ow = (i / channels) % width;
      oh = (i / (channels * width)) % height;
      nn = i / (channels * width * height);
      base = nn * height * width * channels + c;
      sh = width * channels;
      sw = channels;
    } else {
      ow = i % width;
      oh = (i / width) % height;
      const int64_t plane = i / (width * height);
      base = plane * height * width;
      sh = width;
      sw = 1;
      (void)nn;
      (void)c;
    }
    store_from_float(out, i, pool5x5_at<kMax>(x, base, sh, sw, height, width, oh, ow));
  }
}

template <typename T>
static int launch(const void* x, void* out, bool is_max, int64_t n, int64_t channels, int64_t height, int64_t width,
                  bool channels_last, cudaStream_t s) {
  const int64_t total = n * channels * height * width;
  const unsigned blocks = stride_blocks(total);
  if (is_max)
    pool5x5_kernel<true><<<blocks, kStrideThreads, 0, s>>>(
        static_cast<const T*>(x), static_cast<T*>(out), total, channels, height, width, channels_last);
  else
    pool5x5_kernel<false><<<blocks, kStrideThreads, 0, s>>>(
        static_cast<const T*>(x), static_cast<T*>(out), total, channels, height, width, channels_last);
  return static_cast<int>(cudaGetLastError());
}

int pool5x5_cuda(const void* x, void* out, int dtype, bool is_max, int64_t n, int64_t channels, int64_t height,
                 int64_t width, bool channels_last, uintptr_t stream) {
  if (n * channels * height * width == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  switch (dtype) {
    case kFloat32: return launch<float>(x, out, is_max, n, channels, height, width, channels_last, s);
    case kFloat16: return launch<Half>(x, out, is_max, n, channels, height, width, channels_last, s);
    case kBFloat16: return launch<BFloat16>(x, out, is_max, n, channels, height, width, channels_last, s);
    default: return static_cast<int>(cudaErrorInvalidValue);
  }
}

}  // namespace ncsn
