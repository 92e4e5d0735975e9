// CPU loops (OpenMP) around csrc/instance_norm_plus.h, for NCHW and NHWC (channels_last) storage.
#include <vector>

#include "instance_norm_plus.h"
#include "ops_cpu.h"

namespace ncsn {

template <typename T>
static void run(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* gamma,
                const float* alpha, const float* beta, int64_t param_stride, bool apply_elu, float* mu_out,
                float* rstd_out) {
  // mu stays in double until the coefficients: m_nc amplifies its rounding by 1 / std_c(mu).
  std::vector<double> mu(n * channels);
  std::vector<float> mu32(n * channels), rstd(n * channels), A(n * channels), B(n * channels);
  // Statistics: two passes (mean, then centred sum of squares) in double.
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t base = plane * hw;
      double s = 0.0;
      for (int64_t p = 0; p < hw; ++p) s += load_as_float(x, base + p);
      const double m = s / static_cast<double>(hw);
      double ss = 0.0;
      for (int64_t p = 0; p < hw; ++p) {
        const double d = load_as_float(x, base + p) - m;
        ss += d * d;
      }
      mu[plane] = m;
      rstd[plane] = static_cast<float>(1.0 / sqrt(ss / static_cast<double>(hw) + kNormEps));
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> s(channels, 0.0), ss(channels, 0.0);
      const int64_t base = i * hw * channels;
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t c = 0; c < channels; ++c) s[c] += load_as_float(x, base + p * channels + c);
      for (int64_t c = 0; c < channels; ++c) s[c] /= static_cast<double>(hw);
      for (int64_t p = 0; p < hw; ++p)
        for (int64_t c = 0; c < channels; ++c) {
          const double d = load_as_float(x, base + p * channels + c) - s[c];
          ss[c] += d * d;
        }
      for (int64_t c = 0; c < channels; ++c) {
        mu[i * channels + c] = s[c];
        rstd[i * channels + c] = static_cast<float>(1.0 / sqrt(ss[c] / static_cast<double>(hw) + kNormEps));
      }
    }
  }
  for (int64_t i = 0; i < n; ++i)
    instance_norm_plus_coefs(&mu[i * channels], &rstd[i * channels], channels, gamma + i * param_stride,
                             alpha + i * param_stride, beta + i * param_stride, &A[i * channels], &B[i * channels]);
  for (int64_t k = 0; k < n * channels; ++k) mu32[k] = static_cast<float>(mu[k]);
  // Apply: one affine map per plane, ELU fused.
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t base = plane * hw;
      for (int64_t p = 0; p < hw; ++p)
        store_from_float(out, base + p,
                         instance_norm_plus_apply(load_as_float(x, base + p), mu32[plane], A[plane], B[plane], apply_elu));
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t pix = 0; pix < n * hw; ++pix) {
      const int64_t i = pix / hw, base = pix * channels;
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t k = i * channels + c;
        store_from_float(out, base + c, instance_norm_plus_apply(load_as_float(x, base + c), mu32[k], A[k], B[k], apply_elu));
      }
    }
  }
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
