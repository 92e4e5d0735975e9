// CPU loops (OpenMP) around csrc/instance_norm_plus.h, for NCHW and NHWC (channels_last) storage.
#include <vector>

#include "instance_norm_plus.h"
#include "ops_cpu.h"

namespace ncsn {

template <bool kElu, typename T>
static void apply(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* mu,
                  const float* rstd, const float* am, const float* gamma, const float* beta, int64_t param_stride) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t base = plane * hw, c = plane % channels, prow = (plane / channels) * param_stride;
      const float m = mu[plane], r = rstd[plane], a = am[plane], g = gamma[prow + c], b = beta[prow + c];
      for (int64_t p = 0; p < hw; ++p)
        store_from_float(out, base + p, instance_norm_plus_affine<kElu>(load_as_float(x, base + p), m, r, a, g, b));
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t pix = 0; pix < n * hw; ++pix) {
      const int64_t i = pix / hw, base = pix * channels;
      const float *g = gamma + i * param_stride, *b = beta + i * param_stride;
      const float *m = mu + i * channels, *r = rstd + i * channels, *a = am + i * channels;
      for (int64_t c = 0; c < channels; ++c)
        store_from_float(out, base + c, instance_norm_plus_affine<kElu>(load_as_float(x, base + c), m[c], r[c], a[c],
                                                                        g[c], b[c]));
    }
  }
}

template <typename T>
static void run(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* gamma,
                const float* alpha, const float* beta, int64_t param_stride, bool apply_elu, float* mu_out,
                float* rstd_out) {
  // mu stays in double until the coefficients: m_nc amplifies its rounding by 1 / std_c(mu).
  std::vector<double> mu(n * channels);
  std::vector<float> mu32(n * channels), rstd(n * channels), am(n * channels);
  // Statistics: one pass over d = x - pivot (the plane's first value, so |mean(d)| is a few std at most
  // and E[d^2] - E[d]^2 does not cancel) with 8 independent double accumulators (no serial add chain).
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
      const double var = sumsq / static_cast<double>(hw) - md * md;
      mu[plane] = pivot + md;
      rstd[plane] = static_cast<float>(1.0 / sqrt((var > 0 ? var : 0) + kNormEps));
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
        const double var = ss[c] / static_cast<double>(hw) - md * md;
        mu[i * channels + c] = pivot[c] + md;
        rstd[i * channels + c] = static_cast<float>(1.0 / sqrt((var > 0 ? var : 0) + kNormEps));
      }
    }
  }
  for (int64_t i = 0; i < n; ++i)
    instance_norm_plus_coefs(&mu[i * channels], channels, alpha + i * param_stride, &am[i * channels]);
  for (int64_t k = 0; k < n * channels; ++k) mu32[k] = static_cast<float>(mu[k]);
  // Apply: one affine map per plane, ELU fused (a compile-time choice, so the loops vectorise).
  if (apply_elu)
    apply<true>(x, out, n, channels, hw, channels_last, mu32.data(), rstd.data(), am.data(), gamma, beta, param_stride);
  else
    apply<false>(x, out, n, channels, hw, channels_last, mu32.data(), rstd.data(), am.data(), gamma, beta, param_stride);
  if (mu_out)
    for (int64_t k = 0; k < n * channels; ++k) {
      mu_out[k] = mu32[k];
      rstd_out[k] = rstd[k];
    }
}

void instance_norm_plus_cpu(const void* x, void* out, int dtype, int64_t n, int64_t channels, int64_t hw,
                            bool channels_last, const float* gamma, const float* alpha, const float* beta,
                            int64_t param_stride, bool apply_elu, float* mu, float* rstd) {
  switch (dtype) {
    case kFloat32:
      run(static_cast<const float*>(x), static_cast<float*>(out), n, channels, hw, channels_last, gamma, alpha, beta,
          param_stride, apply_elu, mu, rstd);
      break;
    case kFloat16:
      run(static_cast<const Half*>(x), static_cast<Half*>(out), n, channels, hw, channels_last, gamma, alpha, beta,
          param_stride, apply_elu, mu, rstd);
      break;
    case kBFloat16:
      run(static_cast<const BFloat16*>(x), static_cast<BFloat16*>(out), n, channels, hw, channels_last, gamma, alpha,
          beta, param_stride, apply_elu, mu, rstd);
      break;
    default: break;
  }
}

}  // namespace ncsn
