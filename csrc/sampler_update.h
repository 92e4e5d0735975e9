// One fused step of a fixed-step sampler (ncsn_fast/ops/sampler_update.py), x and p in place:
//   x' = ((a_x x + g h) + a_p p) + b z,   p' = (p_x x + p_h h) + p_p p,   g = a_h m_h, b = a_z m_z
// with z drawn from the noise stream (philox.h), each sum a mul_add (common.h): on the GPU
// x' = fma(b, z, fma(a_p, p, fma(g, h, a_x x))), so annealed Langevin's row {1, g, 0, b} is fma(b, z, fma(g, h, x)).
// A row that keeps p ((p_x, p_h, p_p) = (0, 0, 1)) does not write it, and reads it only if a_p != 0: annealed
// Langevin's rows then move x, h and x' alone. Written once for the CPU loop (sampler_update_cpu.cpp) and the CUDA
// kernel (sampler_update.cu).
#pragma once
#include "common.h"
#include "philox.h"

namespace ncsn {

// Offset of logical element e = c * hw + p of one sample in its h storage (NCHW, or NHWC if channels_last).
NCSN_HD int64_t h_offset(int64_t e, int64_t channels, int64_t hw, bool channels_last) {
  return channels_last ? (e % hw) * channels + e / hw : e;
}

// The row's coefficients with the sample's multipliers applied. coefs = {a_x, a_h, a_p, a_z, p_x, p_h, p_p, c}.
struct UpdateCoefs {
  float a_x, g, a_p, b, p_x, p_h, p_p;
  bool read_p, write_p;
};

NCSN_HD UpdateCoefs update_coefs(const float* coefs, const float* mult_row) {
  const bool keep_p = coefs[4] == 0.f && coefs[5] == 0.f && coefs[6] == 1.f;
  return UpdateCoefs{coefs[0], coefs[1] * mult_row[0], coefs[2], coefs[3] * mult_row[1],
                     coefs[4], coefs[5], coefs[6], coefs[2] != 0.f || !keep_p, !keep_p};
}

NCSN_HD void sampler_update_element(float* xp, float* pp, float h, float z, const UpdateCoefs& k) {
  const float x = *xp, p = k.read_p ? *pp : 0.f;
  *xp = mul_add(k.b, z, mul_add(k.a_p, p, mul_add(k.g, h, k.a_x * x)));
  if (k.write_p) *pp = mul_add(k.p_p, p, mul_add(k.p_h, h, k.p_x * x));
}

// The update of the 4 elements of group q of sample row `row`.
template <typename H>
NCSN_HD void sampler_update_group(float* x, float* p, const H* h, int64_t row, int64_t q, int64_t channels,
                                  int64_t hw, bool channels_last, uint64_t seed, uint64_t sample, uint32_t step,
                                  const UpdateCoefs& k) {
  const int64_t numel = channels * hw;
  float z[4];
  words_to_normal4(noise_words(seed, sample, step, static_cast<uint32_t>(q)), z);
  for (int j = 0; j < 4; ++j) {
    const int64_t e = 4 * q + j;
    if (e >= numel) break;
    const float hv = load_as_float(h, row * numel + h_offset(e, channels, hw, channels_last));
    sampler_update_element(x + row * numel + e, p + row * numel + e, hv, z[j], k);
  }
}

}  // namespace ncsn
