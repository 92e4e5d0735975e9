// Instance norm++ written once for the CPU loops and the CUDA kernels:
//   out = gamma_c ((x - mu_nc) rstd_nc + alpha_c m_nc) + beta_c   [then ELU]
// with mu, rstd the per-plane mean and 1/sqrt(biased var + eps), m_nc the plane means standardised across
// channels (unbiased variance). Applied as A (x - mu) + B with A = gamma rstd, B = gamma alpha m + beta.
#pragma once
#include <cmath>

#include "common.h"

namespace ncsn {

constexpr float kNormEps = 1e-5f;

// Per sample: from the plane means mu[0..C) and rstd, the coefficients A, B of each channel.
// gamma/alpha/beta point at this sample's row (conditional) or the shared row (unconditional).
template <typename M>
NCSN_HD void instance_norm_plus_coefs(const M* mu, const float* rstd, int64_t channels, const float* gamma,
                                      const float* alpha, const float* beta, float* A, float* B) {
  double mean = 0.0;
  for (int64_t c = 0; c < channels; ++c) mean += mu[c];
  mean /= static_cast<double>(channels);
  double ss = 0.0;
  for (int64_t c = 0; c < channels; ++c) ss += (mu[c] - mean) * (mu[c] - mean);
  const double var = ss / static_cast<double>(channels - 1);  // unbiased, as torch.var
  const float inv = static_cast<float>(1.0 / sqrt(var + kNormEps));
  for (int64_t c = 0; c < channels; ++c) {
    const float m_hat = static_cast<float>(mu[c] - mean) * inv;
    A[c] = gamma[c] * rstd[c];
    B[c] = gamma[c] * (alpha[c] * m_hat) + beta[c];
  }
}

NCSN_HD float elu(float v) { return v > 0.f ? v : expm1f(v); }

NCSN_HD float instance_norm_plus_apply(float x, float mu, float A, float B, bool apply_elu) {
  const float y = A * (x - mu) + B;
  return apply_elu ? elu(y) : y;
}

}  // namespace ncsn
