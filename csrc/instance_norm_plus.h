// Instance norm++ written once for the CPU loops and the CUDA kernels:
//   out = gamma_c ((x - mu_nc) rstd_nc + alpha_c m_nc) + beta_c   [then ELU]
// with mu, rstd the per-plane mean and 1/sqrt(biased var + eps), m_nc the plane means standardised across
// channels (unbiased variance). Applied per element as gamma (rstd (x - mu) + am) + beta with am = alpha m:
// in this, the reference's order, the cancellation happens before the scaling by gamma (the folded form
// A x + B cancels terms gamma times larger and loses accuracy when gamma is large).
#pragma once
#include <cmath>

#include "common.h"

namespace ncsn {

constexpr float kNormEps = 1e-5f;

// Per sample: from the plane means mu[0..C), am[c] = alpha_c m_nc. alpha points at this sample's row
// (conditional) or the shared row (unconditional).
template <typename M>
NCSN_HD void instance_norm_plus_coefs(const M* mu, int64_t channels, const float* alpha, float* am) {
  double mean = 0.0;
  for (int64_t c = 0; c < channels; ++c) mean += mu[c];
  mean /= static_cast<double>(channels);
  double ss = 0.0;
  for (int64_t c = 0; c < channels; ++c) ss += (mu[c] - mean) * (mu[c] - mean);
  const double var = ss / static_cast<double>(channels - 1);  // unbiased, as torch.var
  const float inv = static_cast<float>(1.0 / sqrt(var + kNormEps));
  for (int64_t c = 0; c < channels; ++c) am[c] = alpha[c] * (static_cast<float>(mu[c] - mean) * inv);
}

// expm1(x) for x <= 0 in pure arithmetic (no libm call), so that loops around it vectorise: Cody-Waite
// reduction x = n ln2 + r, |r| <= ln2/2, Cephes' expf polynomial, and 2^n (p r^2 + r) + (2^n - 1), which
// keeps the relative accuracy near 0. Max error ~2 ulp of |expm1(x)| + 1 ulp of 1.
NCSN_HD float expm1_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x;                                 // 2^n must stay a normal float
  const int n = static_cast<int>(x * 1.44269504088896341f - 0.5f);  // round(x / ln2) for x <= 0
  const float fn = static_cast<float>(n);
  const float r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;  // x - n ln2 in two parts
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float t = bits_to_float(static_cast<uint32_t>(n + 127) << 23);  // 2^n
  return t * (p * r * r + r) + (t - 1.0f);
}

// Branch-free so that loops around it vectorise: expm1 of the negative part plus the rest, each selected on the
// same comparison (GCC if-converts this form for AVX2 / AVX-512; a final select between v and expm1(v) it left
// as a branch). Exact: v > 0 gives 0 + v (expm1_nonpositive(0) is exactly 0), v <= 0 gives expm1(v) + 0; nan
// stays nan, -inf gives -1.
NCSN_HD float elu(float v) {
  const float neg = v < 0.f ? v : 0.f, rest = v < 0.f ? 0.f : v;
  return expm1_nonpositive(neg) + rest;
}

template <bool kElu>
NCSN_HD float instance_norm_plus_affine(float x, float mu, float rstd, float am, float gamma, float beta) {
  const float y = gamma * ((x - mu) * rstd + am) + beta;
  return kElu ? elu(y) : y;
}

NCSN_HD float instance_norm_plus_apply(float x, float mu, float rstd, float am, float gamma, float beta,
                                       bool apply_elu) {
  return apply_elu ? instance_norm_plus_affine<true>(x, mu, rstd, am, gamma, beta)
                   : instance_norm_plus_affine<false>(x, mu, rstd, am, gamma, beta);
}

}  // namespace ncsn
