// Declarations of the CUDA launchers: raw device pointers, sizes and a cudaStream_t passed as an integer.
// Each returns a cudaError_t as int (0 = success); ncsn_cuda_error_string turns it into text.
#pragma once
#include <cstdint>

namespace ncsn {

// Launchers that put the batch on the grid's y axis launch at most this many rows at a time (CUDA's limit
// on gridDim.y); a test build lowers it to exercise the chunking.
#ifndef NCSN_MAX_GRID_Y
#define NCSN_MAX_GRID_Y 65535
#endif
constexpr int64_t kMaxGridY = NCSN_MAX_GRID_Y;

// Grid-stride launchers start at most this many blocks and let each thread loop over the rest (a test build
// lowers it so that the loops run several times).
#ifndef NCSN_MAX_STRIDE_BLOCKS
#define NCSN_MAX_STRIDE_BLOCKS (65535 * 8)
#endif
constexpr int64_t kMaxStrideBlocks = NCSN_MAX_STRIDE_BLOCKS;
constexpr int kStrideThreads = 256;

// Blocks of kStrideThreads for a grid-stride loop over `total` elements: one element per thread, at most
// kMaxStrideBlocks.
inline unsigned stride_blocks(int64_t total) {
  const int64_t blocks = (total + kStrideThreads - 1) / kStrideThreads;
  return static_cast<unsigned>(blocks < kMaxStrideBlocks ? blocks : kMaxStrideBlocks);
}

const char* cuda_error_string(int err);
int cuda_device_count();

// out (n, numel): float32 normals, or int64 words when `words`; seed/step: device int64[1].
int philox_cuda(void* out, const int64_t* ids, int64_t n, int64_t numel, const int64_t* seed, const int64_t* step,
                bool words, uintptr_t stream);

// x, p (n, channels*hw) float32 in place (sampler_update.h); h dtype code (common.h), NCHW or NHWC; coefs device
// float[8]; mult device float (n, 2).
int sampler_update_cuda(float* x, float* p, const void* h, int h_dtype, const int64_t* ids, int64_t n,
                        int64_t channels, int64_t hw, bool channels_last, const int64_t* seed, const int64_t* step,
                        const float* coefs, const float* mult, uintptr_t stream);

// out = instance norm++ of x [+ ELU]; work: device float scratch of 3 * n * channels.
int instance_norm_plus_cuda(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                            bool channels_last, const float* gamma, const float* alpha, const float* beta,
                            int64_t param_stride, bool apply_elu, float* work, uintptr_t stream);

// out = 5x5 stride-1 pad-2 max (is_max) or average (/25) pooling of x, NCHW or NHWC.
int pool5x5_cuda(const void* x, void* out, int dtype, bool is_max, int64_t n, int64_t channels, int64_t height,
                 int64_t width, bool channels_last, uintptr_t stream);

// out = [SiLU of] GroupNorm(x + add) (group_norm_act.h); work: device float scratch of 2 * n * groups.
int group_norm_act_cuda(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                        bool channels_last, int64_t groups, float eps, const float* weight, const float* bias,
                        const float* add, bool apply_silu, float* work, uintptr_t stream);

// out = ELU(x) (alpha 1) over numel elements.
int elu_cuda(const void* x, void* out, int dtype, int64_t numel, uintptr_t stream);

}  // namespace ncsn
