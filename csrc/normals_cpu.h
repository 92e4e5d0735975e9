// CPU only: the noise stream's normals (philox.h) for a block of groups at a time, written so that the compiler
// vectorises it (with AVX2 or AVX-512: normals_cpu.cpp picks at run time). The scalar path calls the C library's logf / cosf / sinf once per element, which no compiler
// vectorises (on the project's CPU that was 3.3 of the 4.4 ms to draw 256 x 3 x 32 x 32 normals). Here Philox
// runs over arrays (structure of arrays), and Box-Muller takes log and sin / cos as polynomials in double
// precision (errors ~1e-15), rounded to float32 where the scalar path rounds: logf(u) to float, then
// r = sqrtf(-2 logf(u)), theta = u' 2 pi and its cos / sin in float, z = r cos(theta). So the normals are those
// of the scalar path with correctly rounded log / cos / sin: within a float32 ulp of every other backend.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "philox.h"

#include "cpu_isa.h"  // NCSN_CPU_INLINE: the helpers are compiled inside each ISA's variant

namespace ncsn {

constexpr int kNormalBlock = 32;  // groups of 4 elements per block: 128 normals (32 measured faster than 16, as fast as 64)

NCSN_CPU_INLINE uint64_t double_bits(double x) {
  uint64_t b;
  std::memcpy(&b, &x, sizeof b);
  return b;
}

NCSN_CPU_INLINE double bits_double(uint64_t b) {
  double x;
  std::memcpy(&x, &b, sizeof x);
  return x;
}

// log(x) for a normal positive double: x = 2^e m, m in [sqrt(1/2), sqrt(2)), log m = 2 atanh((m - 1) / (m + 1)).
NCSN_CPU_INLINE double log_poly(double x) {
  const uint64_t b = double_bits(x);
  // e + 1023 as a double without an int64 -> double conversion: the bits of 2^52 + (e + 1023), minus 2^52
  double e = bits_double(0x4330000000000000ULL | ((b >> 52) & 0x7ffULL)) - 4503599627370496.0 - 1023.0;
  double m = bits_double((b & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL);  // [1, 2)
  const bool big = m > 1.4142135623730951;
  m = big ? m * 0.5 : m;
  e = big ? e + 1.0 : e;
  const double s = (m - 1.0) / (m + 1.0), s2 = s * s;  // |s| <= 0.1716: the series to s^15 is exact to 1e-15
  double p = 1.0 / 15;
  p = p * s2 + 1.0 / 13;
  p = p * s2 + 1.0 / 11;
  p = p * s2 + 1.0 / 9;
  p = p * s2 + 1.0 / 7;
  p = p * s2 + 1.0 / 5;
  p = p * s2 + 1.0 / 3;
  p = p * s2 + 1.0;
  return e * 0.6931471805599453 + 2.0 * s * p;
}

// cos and sin of t in [0, 2 pi]: t = k pi/2 + r with |r| <= pi/4, Taylor polynomials to r^16 / r^15.
NCSN_CPU_INLINE void sincos_poly(double t, double* sin_t, double* cos_t) {
  const int32_t k = static_cast<int32_t>(t * 0.6366197723675814 + 0.5);  // round(t / (pi/2)), t >= 0
  const double kd = static_cast<double>(k);
  const double r = (t - kd * 1.5707963267948966) - kd * 6.123233995736766e-17;  // pi/2 in two parts
  const double r2 = r * r;
  double sp = -1.0 / 1307674368000.0;
  sp = sp * r2 + 1.0 / 6227020800.0;
  sp = sp * r2 - 1.0 / 39916800.0;
  sp = sp * r2 + 1.0 / 362880.0;
  sp = sp * r2 - 1.0 / 5040.0;
  sp = sp * r2 + 1.0 / 120.0;
  sp = sp * r2 - 1.0 / 6.0;
  const double sr = r + r * r2 * sp;
  double cp = 1.0 / 20922789888000.0;
  cp = cp * r2 - 1.0 / 87178291200.0;
  cp = cp * r2 + 1.0 / 479001600.0;
  cp = cp * r2 - 1.0 / 3628800.0;
  cp = cp * r2 + 1.0 / 40320.0;
  cp = cp * r2 - 1.0 / 720.0;
  cp = cp * r2 + 1.0 / 24.0;
  cp = cp * r2 - 0.5;
  const double cr = 1.0 + r2 * cp;
  const int32_t q = k & 3;  // the quadrant: rotate (sin r, cos r) by q quarter turns
  const double s1 = (q & 1) ? cr : sr, c1 = (q & 1) ? sr : cr;
  *sin_t = (q & 2) ? -s1 : s1;
  *cos_t = ((q + 1) & 2) ? -c1 : c1;
}

// Philox4x32-10 (philox.h) of groups q0 .. q0 + kNormalBlock - 1 of one sample, as four word arrays.
NCSN_CPU_INLINE void philox_block(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, uint32_t w[4][kNormalBlock]) {
  uint32_t c0[kNormalBlock], c1[kNormalBlock], c2[kNormalBlock], c3[kNormalBlock];
  for (int j = 0; j < kNormalBlock; ++j) {
    c0[j] = q0 + static_cast<uint32_t>(j);
    c1[j] = static_cast<uint32_t>(sample);
    c2[j] = static_cast<uint32_t>(sample >> 32);
    c3[j] = step;
  }
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int j = 0; j < kNormalBlock; ++j) {
      const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0[j];
      const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c2[j];
      const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1[j] ^ k0;
      const uint32_t n2 = static_cast<uint32_t>(p0 >> 32) ^ c3[j] ^ k1;
      c1[j] = static_cast<uint32_t>(p1);
      c3[j] = static_cast<uint32_t>(p0);
      c0[j] = n0;
      c2[j] = n2;
    }
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  for (int j = 0; j < kNormalBlock; ++j) {
    w[0][j] = c0[j];
    w[1][j] = c1[j];
    w[2][j] = c2[j];
    w[3][j] = c3[j];
  }
}

// The 4 * kNormalBlock normals of groups q0 .. q0 + kNormalBlock - 1 of one sample, in element order.
NCSN_CPU_INLINE void normals_block_impl(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float z[4 * kNormalBlock]) {
  uint32_t w[4][kNormalBlock];
  philox_block(seed, sample, step, q0, w);
  for (int p = 0; p < 2; ++p) {
    float za[kNormalBlock], zb[kNormalBlock];
    for (int j = 0; j < kNormalBlock; ++j) {
      const float log_u = static_cast<float>(log_poly(static_cast<double>(word_to_uniform(w[2 * p][j]))));
      const float r = std::sqrt(-2.0f * log_u);
      const float theta = word_to_uniform(w[2 * p + 1][j]) * kTwoPi;
      double s, c;
      sincos_poly(static_cast<double>(theta), &s, &c);
      za[j] = r * static_cast<float>(c);
      zb[j] = r * static_cast<float>(s);
    }
    for (int j = 0; j < kNormalBlock; ++j) {
      z[4 * j + 2 * p] = za[j];
      z[4 * j + 2 * p + 1] = zb[j];
    }
  }
}

// normals_block_impl compiled for the widest vector unit this CPU has (AVX-512, AVX2, or the baseline),
// chosen once at run time (normals_cpu.cpp). Every variant does the same IEEE operations (no FMA contraction), so
// the normals are the same bits whichever runs.
void normals_block(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float z[4 * kNormalBlock]);
const char* normals_block_isa();

}  // namespace ncsn
