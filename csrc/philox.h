// The noise stream, written once for the host (g++) and the device (nvcc): Philox4x32-10 keyed by the
// 64-bit seed, counter (element / 4, sample low, sample high, step), Box-Muller to float32 normals.
// Bit-identical words to ncsn_fast/ops/philox.py (PyTorch reference) and ncsn_fast/kernels/philox.py.
#pragma once
#include <cmath>
#include <cstdint>

#include "common.h"

namespace ncsn {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;  // round multipliers
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // Weyl key increments
constexpr float kTwoPi = 6.283185307179586f;

struct Words4 {
  uint32_t w[4];
};

NCSN_HD Words4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0;
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return Words4{{c0, c1, c2, c3}};
}

// The 4 words of block `block` (elements 4*block .. 4*block+3) of one sample at one step.
NCSN_HD Words4 noise_words(uint64_t seed, uint64_t sample, uint32_t step, uint32_t block) {
  return philox4x32_10(block, static_cast<uint32_t>(sample), static_cast<uint32_t>(sample >> 32), step,
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// 24 random bits centred in their interval: a float32 in (0, 1), never 0.
NCSN_HD float word_to_uniform(uint32_t w) {
  return (static_cast<float>(w >> 8) + 0.5f) * (1.0f / 16777216.0f);
}

// Four standard normals from one block's words (Box-Muller on the pairs (w0, w1) and (w2, w3)).
NCSN_HD void words_to_normal4(const Words4& w, float z[4]) {
  for (int p = 0; p < 2; ++p) {
    const float r = sqrtf(-2.0f * logf(word_to_uniform(w.w[2 * p])));
    const float theta = word_to_uniform(w.w[2 * p + 1]) * kTwoPi;
    z[2 * p] = r * cosf(theta);
    z[2 * p + 1] = r * sinf(theta);
  }
}

}  // namespace ncsn
