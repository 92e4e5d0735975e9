// CPU loops (OpenMP) around csrc/instance_norm_plus.h, for NCHW and NHWC (channels_last) storage.
#include <vector>

#include "cpu_isa.h"
#include "instance_norm_plus.h"
#include "plane_stats_cpu.h"
#include "ops_cpu.h"

namespace ncsn {

// One plane (NCHW: hw contiguous values of one channel) or one pixel row (NHWC: `channels` values), the ELU
// decided outside the loop; compiled per ISA (cpu_isa.h): the ELU's polynomial is most of the work.
template <typename T>
NCSN_CPU_INLINE void plane_body(const T* x, T* out, int64_t hw, float m, float r, float a, float g, float b,
                                bool apply_elu) {
  if (apply_elu)
    for (int64_t p = 0; p < hw; ++p)
      store_from_float(out, p, instance_norm_plus_affine<true>(load_as_float(x, p), m, r, a, g, b));
  else
    for (int64_t p = 0; p < hw; ++p)
      store_from_float(out, p, instance_norm_plus_affine<false>(load_as_float(x, p), m, r, a, g, b));
}

template <typename T>
NCSN_CPU_INLINE void pixel_body(const T* x, T* out, int64_t channels, const float* m, const float* r, const float* a,
                       const float* g, const float* b, bool apply_elu) {
  if (apply_elu)
    for (int64_t c = 0; c < channels; ++c)
      store_from_float(out, c, instance_norm_plus_affine<true>(load_as_float(x, c), m[c], r[c], a[c], g[c], b[c]));
  else
    for (int64_t c = 0; c < channels; ++c)
      store_from_float(out, c, instance_norm_plus_affine<false>(load_as_float(x, c), m[c], r[c], a[c], g[c], b[c]));
}

NCSN_CPU_VARIANTS(apply_plane, (const T* x, T* out, int64_t hw, float m, float r, float a, float g, float b, bool elu),
                  (x, out, hw, m, r, a, g, b, elu), plane_body, template <typename T>)
NCSN_CPU_VARIANTS(apply_pixel,
                  (const T* x, T* out, int64_t channels, const float* m, const float* r, const float* a,
                   const float* g, const float* b, bool elu),
                  (x, out, channels, m, r, a, g, b, elu), pixel_body, template <typename T>)

template <typename T>
static void apply(const T* x, T* out, int64_t n, int64_t channels, int64_t hw, bool channels_last, const float* mu,
                  const float* rstd, const float* am, const float* gamma, const float* beta, int64_t param_stride,
                  bool apply_elu) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) {
      const int64_t c = plane % channels, prow = (plane / channels) * param_stride;
      apply_plane(x + plane * hw, out + plane * hw, hw, mu[plane], rstd[plane], am[plane], gamma[prow + c],
                  beta[prow + c], apply_elu);
    }
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t pix = 0; pix < n * hw; ++pix) {
      const int64_t i = pix / hw, k = i * channels;
      apply_pixel(x + pix * channels, out + pix * channels, channels, mu + k, rstd + k, am + k,
                  gamma + i * param_stride, beta + i * param_stride, apply_elu);
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
  std::vector<double> var(n * channels);
  channel_stats(x, n, channels, hw, channels_last, mu.data(), var.data());  // plane_stats_cpu.h
  for (int64_t k = 0; k < n * channels; ++k) rstd[k] = static_cast<float>(1.0 / sqrt(var[k] + kNormEps));
  for (int64_t i = 0; i < n; ++i)
    instance_norm_plus_coefs(&mu[i * channels], channels, alpha + i * param_stride, &am[i * channels]);
  for (int64_t k = 0; k < n * channels; ++k) mu32[k] = static_cast<float>(mu[k]);
  // Apply: one affine map per plane, ELU fused (a compile-time choice, so the loops vectorise).
  apply(x, out, n, channels, hw, channels_last, mu32.data(), rstd.data(), am.data(), gamma, beta, param_stride,
        apply_elu);
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
