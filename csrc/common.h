// Shared by every kernel, host (g++) and device (nvcc): the inline macro and 16-bit float loads.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define NCSN_HD __host__ __device__ __forceinline__
#else
#define NCSN_HD inline
#endif

namespace ncsn {

// Element type codes shared with the Python side (ncsn_fast/ops/_backends.py: DTYPE_CODES).
enum DType : int { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

NCSN_HD float bits_to_float(uint32_t bits) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(bits);
#else
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
#endif
}

NCSN_HD uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}

// a * b + c. On the GPU one rounding (fused), as written explicitly so that the pairing does not depend on the
// compiler's contraction (the Triton kernels use tl.fma the same way); on the CPU two roundings, every product and
// sum rounded as written (the build turns contraction off: the same bits on every vector unit).
NCSN_HD float mul_add(float a, float b, float c) {
#if defined(__CUDA_ARCH__)
  return __fmaf_rn(a, b, c);
#else
  return a * b + c;
#endif
}

NCSN_HD float bf16_to_float(uint16_t h) { return bits_to_float(static_cast<uint32_t>(h) << 16); }

// IEEE half -> float, exact (normals, subnormals, inf, nan).
NCSN_HD float fp16_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
  if (exp == 0x1Fu) return bits_to_float(sign | 0x7F800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return bits_to_float(sign);
    exp = 113;  // normalise the subnormal: value = man * 2^-24
    while ((man & 0x400u) == 0) { man <<= 1; --exp; }
    return bits_to_float(sign | (exp << 23) | ((man & 0x3FFu) << 13));
  }
  return bits_to_float(sign | ((exp + 112) << 23) | (man << 13));
}

// float -> 16-bit with round-to-nearest-even (nan stays nan).
NCSN_HD uint16_t float_to_bf16(float f) {
  const uint32_t b = float_to_bits(f);
  if ((b & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((b >> 16) | 0x40u);
  return static_cast<uint16_t>((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}

NCSN_HD uint16_t float_to_fp16(float f) {
  const uint32_t b = float_to_bits(f);
  const uint32_t sign = (b >> 16) & 0x8000u;
  const uint32_t abs = b & 0x7FFFFFFFu;
  if (abs > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // nan
  if (abs >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // rounds to inf
  if (abs < 0x38800000u) {  // subnormal half (or zero): value / 2^-24, rounded to nearest even
    const float scaled = bits_to_float(abs) * 16777216.0f;  // exact: multiply by 2^24
    uint32_t m = static_cast<uint32_t>(scaled);
    const float rem = scaled - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  const uint32_t r = abs + 0xFFFu + ((abs >> 13) & 1u) - (112u << 23);
  return static_cast<uint16_t>(sign | (r >> 13));
}

template <typename T> NCSN_HD float load_as_float(const T* p, int64_t i);
template <> NCSN_HD float load_as_float<float>(const float* p, int64_t i) { return p[i]; }

struct Half { uint16_t bits; };
struct BFloat16 { uint16_t bits; };
template <> NCSN_HD float load_as_float<Half>(const Half* p, int64_t i) { return fp16_to_float(p[i].bits); }
template <> NCSN_HD float load_as_float<BFloat16>(const BFloat16* p, int64_t i) { return bf16_to_float(p[i].bits); }

NCSN_HD void store_from_float(float* p, int64_t i, float v) { p[i] = v; }
NCSN_HD void store_from_float(Half* p, int64_t i, float v) { p[i].bits = float_to_fp16(v); }
NCSN_HD void store_from_float(BFloat16* p, int64_t i, float v) { p[i].bits = float_to_bf16(v); }

}  // namespace ncsn
