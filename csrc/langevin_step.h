// One Langevin update, x <- x + (a c) h + b z, with z drawn from the noise stream (philox.h).
// Written once for the CPU loop (langevin_step_cpu.cpp) and the CUDA kernel (langevin_step.cu).
#pragma once
#include "common.h"
#include "philox.h"

namespace ncsn {

// coefs = {a, c, b}: step size alpha, score scale c (1/sigma for NCSNv2, 1 for NCSN), noise scale b.
// Evaluated as (x + g h) + b z with g = a c, the op order of the reference.
NCSN_HD float langevin_update(float x, float h, float g, float b, float z) {
  const float gh = g * h;
  const float bz = b * z;
  return (x + gh) + bz;
}

// Offset of logical element e = c * hw + p of one sample in its h storage (NCHW, or NHWC if channels_last).
NCSN_HD int64_t h_offset(int64_t e, int64_t channels, int64_t hw, bool channels_last) {
  return channels_last ? (e % hw) * channels + e / hw : e;
}

// The update of the 4 elements of group q of sample row `row`; adds sum h^2 and sum z^2 to sums[0..1].
template <typename H>
NCSN_HD void langevin_group(float* x, const H* h, int64_t row, int64_t q, int64_t channels, int64_t hw,
                            bool channels_last, uint64_t seed, uint64_t sample, uint32_t step, float g, float b,
                            float sums[2]) {
  const int64_t numel = channels * hw;
  float z[4];
  words_to_normal4(noise_words(seed, sample, step, static_cast<uint32_t>(q)), z);
  for (int k = 0; k < 4; ++k) {
    const int64_t e = 4 * q + k;
    if (e >= numel) break;
    const float hv = load_as_float(h, row * numel + h_offset(e, channels, hw, channels_last));
    float* xp = x + row * numel + e;
    *xp = langevin_update(*xp, hv, g, b, z[k]);
    sums[0] += hv * hv;
    sums[1] += z[k] * z[k];
  }
}

}  // namespace ncsn
