// CPU loops (OpenMP) around csrc/group_norm_act.h, for NCHW and NHWC (channels_last) storage.
//
// Statistics per (sample, channel) in double (plane_stats_cpu.h), then combined per group exactly:
// var_g = mean_c(var_c) + mean_c((mu_c - mu_g)^2), so nothing cancels in float.
#include <cmath>
#include <vector>

#include "cpu_isa.h"
#include "group_norm_act.h"
#include "plane_stats_cpu.h"
#include "ops_cpu.h"

namespace ncsn {

// One plane (NCHW: count contiguous values of one channel) or one pixel row (NHWC: `channels` values), SiLU or
// not decided outside the loop; compiled per ISA (cpu_isa.h): the SiLU's polynomial is most of the work.
template <typename T>
NCSN_CPU_INLINE void plane_body(const T* x, T* out, int64_t count, float m, float s, float b, bool apply_silu) {
  if (apply_silu)
    for (int64_t p = 0; p < count; ++p)
      store_from_float(out, p, group_norm_act_apply<true>(load_as_float(x, p), m, s, b));
  else
    for (int64_t p = 0; p < count; ++p)
      store_from_float(out, p, group_norm_act_apply<false>(load_as_float(x, p), m, s, b));
}

template <typename T>
NCSN_CPU_INLINE void pixel_body(const T* x, T* out, int64_t channels, const float* m, const float* s, const float* b,
                       bool apply_silu) {
  if (apply_silu)
    for (int64_t c = 0; c < channels; ++c)
      store_from_float(out, c, group_norm_act_apply<true>(load_as_float(x, c), m[c], s[c], b[c]));
  else
    for (int64_t c = 0; c < channels; ++c)
      store_from_float(out, c, group_norm_act_apply<false>(load_as_float(x, c), m[c], s[c], b[c]));
}

NCSN_CPU_VARIANTS(apply_plane, (const T* x, T* out, int64_t count, float m, float s, float b, bool silu),
                  (x, out, count, m, s, b, silu), plane_body, template <typename T>)
NCSN_CPU_VARIANTS(apply_pixel,
                  (const T* x, T* out, int64_t channels, const float* m, const float* s, const float* b, bool silu),
                  (x, out, channels, m, s, b, silu), pixel_body, template <typename T>)

template <typename T>
static void apply(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* m,
                  const float* s, const float* bias, bool apply_silu) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane)
      apply_plane(x + plane * hw, out + plane * hw, hw, m[plane], s[plane], bias[plane % channels], apply_silu);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t pix = 0; pix < n * hw; ++pix) {
      const int64_t i = pix / hw;
      apply_pixel(x + pix * channels, out + pix * channels, channels, m + i * channels, s + i * channels, bias,
                  apply_silu);
    }
  }
}

template <typename T>
static void run(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, int64_t groups,
                float eps, const float* weight, const float* bias, const float* add, bool apply_silu) {
  const int64_t cpg = channels / groups;
  std::vector<double> mean(n * channels), var(n * channels);
  channel_stats(x, n, channels, hw, channels_last, mean.data(), var.data());
  std::vector<float> m(n * channels), s(n * channels);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t c0 = i * channels + g * cpg;
      double mu = 0, v = 0;
      for (int64_t c = 0; c < cpg; ++c) mu += mean[c0 + c] + (add ? add[c0 + c] : 0.0);
      mu /= static_cast<double>(cpg);
      for (int64_t c = 0; c < cpg; ++c) {
        const double d = mean[c0 + c] + (add ? add[c0 + c] : 0.0) - mu;
        v += var[c0 + c] + d * d;
      }
      const double rstd = 1.0 / std::sqrt(v / static_cast<double>(cpg) + eps);
      for (int64_t c = 0; c < cpg; ++c) {
        m[c0 + c] = static_cast<float>(mu - (add ? add[c0 + c] : 0.0));
        s[c0 + c] = static_cast<float>(weight[g * cpg + c] * rstd);
      }
    }
  apply(x, out, n, channels, hw, channels_last, m.data(), s.data(), bias, apply_silu);
}

void group_norm_act_cpu(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                        bool channels_last, int64_t groups, float eps, const float* weight, const float* bias,
                        const float* add, bool apply_silu) {
  switch (dtype) {
    case kFloat32:
      run(static_cast<const float*>(x), static_cast<float*>(out), n, channels, hw, channels_last, groups, eps, weight,
          bias, add, apply_silu);
      break;
    case kFloat16:
      run(static_cast<const Half*>(x), static_cast<Half*>(out), n, channels, hw, channels_last, groups, eps, weight,
          bias, add, apply_silu);
      break;
    case kBFloat16:
      run(static_cast<const BFloat16*>(x), static_cast<BFloat16*>(out), n, channels, hw, channels_last, groups, eps,
          weight, bias, add, apply_silu);
      break;
    default: break;
  }
}

}  // namespace ncsn
