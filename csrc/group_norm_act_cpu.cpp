// CPU loops (OpenMP) around csrc/group_norm_act.h, for NCHW and NHWC (channels_last) storage.
//
// Statistics per (sample, channel) in double with a pivot (the plane's first value), then combined per group
// exactly: var_g = mean_c(var_c) + mean_c((mu_c - mu_g)^2), so nothing cancels in float.
#include <cmath>
#include <vector>

#include "group_norm_act.h"
#include "ops_cpu.h"

namespace ncsn {

template <typename T>
static void channel_stats(const T* x, int64_t n, int64_t channels, int64_t hw, bool channels_last, double* mean,
                          double* var) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t base = plane * hw;
      const float pivot = load_as_float(x, base);
      double s[8] = {0}, ss[8] = {0};
      int64_t p = 0;
      for (; p + 8 <= hw; p += 8)
        for (int k = 0; k < 8; ++k) {
          const double d = load_as_float(x, base + p + k) - pivot;
          s[k] += d;
          ss[k] += d * d;
        }
      for (; p < hw; ++p) {
        const double d = load_as_float(x, base + p) - pivot;
        s[0] += d;
        ss[0] += d * d;
      }
      double sum = 0, sumsq = 0;
      for (int k = 0; k < 8; ++k) {
        sum += s[k];
        sumsq += ss[k];
      }
      const double md = sum / static_cast<double>(hw);
      const double v = sumsq / static_cast<double>(hw) - md * md;
      mean[plane] = pivot + md;
      var[plane] = v > 0 ? v : 0;
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> s(channels, 0.0), ss(channels, 0.0);
      std::vector<float> pivot(channels);
      const int64_t base = i * hw * channels;
      for (int64_t c = 0; c < channels; ++c) pivot[c] = load_as_float(x, base + c);
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t c = 0; c < channels; ++c) {  // independent per channel: vectorises across c
          const double d = load_as_float(x, base + p * channels + c) - pivot[c];
          s[c] += d;
          ss[c] += d * d;
        }
      for (int64_t c = 0; c < channels; ++c) {
        const double md = s[c] / static_cast<double>(hw);
        const double v = ss[c] / static_cast<double>(hw) - md * md;
        mean[i * channels + c] = pivot[c] + md;
        var[i * channels + c] = v > 0 ? v : 0;
      }
    }
  }
}

template <bool kSilu, typename T>
static void apply(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* m,
                  const float* s, const float* bias) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t base = plane * hw;
      const float mm = m[plane], sc = s[plane], b = bias[plane % channels];
      for (int64_t p = 0; p < hw; ++p)
        store_from_float(out, base + p, group_norm_act_apply<kSilu>(load_as_float(x, base + p), mm, sc, b));
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t pix = 0; pix < n * hw; ++pix) {
      const int64_t i = pix / hw, base = pix * channels;
      const float *mm = m + i * channels, *sc = s + i * channels;
      for (int64_t c = 0; c < channels; ++c)
        store_from_float(out, base + c, group_norm_act_apply<kSilu>(load_as_float(x, base + c), mm[c], sc[c],
                                                                    bias[c]));
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
  if (apply_silu)
    apply<true>(x, out, n, channels, hw, channels_last, m.data(), s.data(), bias);
  else
    apply<false>(x, out, n, channels, hw, channels_last, m.data(), s.data(), bias);
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
