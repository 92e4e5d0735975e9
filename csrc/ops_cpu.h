// Declarations of the CPU kernels: raw pointers and sizes only (no torch), bound in bindings.cpp.
#pragma once
#include <cstdint>

namespace ncsn {

void philox_words_cpu(uint32_t* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                      uint32_t step);
void philox_normal_cpu(float* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                       uint32_t step);

// x, p (n, channels*hw) float32 updated in place (sampler_update.h); h of dtype code h_dtype (common.h), NCHW or
// NHWC;
// coefs float[8] = {a_x, a_h, a_p, a_z, p_x, p_h, p_p, c}; mult (n, 2) per-sample {m_h, m_z}.
void sampler_update_cpu(float* x, float* p, const void* h, int h_dtype, const int64_t* ids, int64_t n,
                        int64_t channels, int64_t hw, bool channels_last, uint64_t seed, uint32_t step,
                        const float* coefs, const float* mult);

// out = instance norm++ of x (n, channels, hw) [+ ELU], same dtype code and layout as x; gamma/alpha/beta
// float32 rows of `channels`, row i at i * param_stride (0: shared). mu/rstd (n, channels) outputs or null.
void instance_norm_plus_cpu(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                            bool channels_last, const float* gamma, const float* alpha, const float* beta,
                            int64_t param_stride, bool apply_elu, float* mu, float* rstd);

// out = 5x5 stride-1 pad-2 max (is_max) or average (/25) pooling of x (n, channels, height, width), NCHW or
// NHWC, same dtype code and layout as x.
void pool5x5_cpu(const void* x, void* out, int dtype, bool is_max, int64_t n, int64_t channels, int64_t height,
                 int64_t width, bool channels_last);

// out = [SiLU of] GroupNorm(x + add) (group_norm_act.h), same dtype code and layout as x; weight/bias float32
// (channels,); add float32 (n, channels) or null.
void group_norm_act_cpu(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                        bool channels_last, int64_t groups, float eps, const float* weight, const float* bias,
                        const float* add, bool apply_silu);

// out = ELU(x) (alpha 1) over numel elements of dtype code `dtype`.
void elu_cpu(const void* x, void* out, int dtype, int64_t numel);

// Winograd F(4x4, 3x3) convolution (conv_winograd_cpu.cpp), float32. u (36, ceil(co / 16), ci, 16) from w
// (co, ci, 3, 3), every element written (zeros past co):
void winograd_weights_cpu(const float* w, float* u, int64_t co, int64_t ci);
// out (n, h, w, co) NHWC = [ELU of] (conv3x3(x (n, h, w, ci) NHWC, padding = dilation) + bias [+ residual (NHWC,
// or null)]) / divisor; ci % 8 == 0, co % 8 == 0; bias (co,) or null.
void conv3x3_winograd_cpu(const float* x, const float* u, const float* bias, const float* residual, float divisor,
                          bool apply_elu, float* out, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co, int64_t dilation);

}  // namespace ncsn
