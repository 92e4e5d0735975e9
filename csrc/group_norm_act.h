// GroupNorm with the SiLU that follows it (NCSN++'s act(GroupNorm(x + e))), written once for the CPU loops and
// the CUDA kernels:
//   out = act(w_c (x + e_nc - mu_ng) rstd_ng + b_c),   act = SiLU or none,
// with mu, rstd the mean and 1/sqrt(biased var + eps) of group g's (x + e) over its channels and pixels, and e
// an optional per-(sample, channel) bias added before the norm (the block's embedding projection). Applied per
// element as (x - m_nc) s_nc + b_c with m_nc = mu_ng - e_nc and s_nc = w_c rstd_ng: the difference is taken
// before the scaling, as in the reference (the folded A x + B cancels terms |x / std| times larger).
#pragma once
#include <cmath>

#include "common.h"
#include "instance_norm_plus.h"

namespace ncsn {

// SiLU y sigmoid(y) in pure arithmetic (vectorises): e = exp(-|y|) in (0, 1] from expm1_nonpositive, then
// sigmoid = 1 / (1 + e) for y >= 0 and e / (1 + e) below, so nothing overflows; nan stays nan.
NCSN_HD float silu(float y) {
  const float a = y < 0.f ? y : -y;  // -|y| (nan: nan)
  const float e = expm1_nonpositive(a != a ? 0.f : a) + 1.0f;
  const float s = (y >= 0.f ? 1.0f : e) / (1.0f + e);
  return (y != y) ? y : y * s;
}

template <bool kSilu>
NCSN_HD float group_norm_act_apply(float x, float m, float s, float b) {
  const float y = (x - m) * s + b;
  return kSilu ? silu(y) : y;
}

}  // namespace ncsn
