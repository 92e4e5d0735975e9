// 5x5, stride 1, padding 2 pooling of the RefineNets' chained residual pooling (CRP): max (NCSNv2) and
// average with the padding counted (NCSN v1, PyTorch's count_include_pad=True, so always / 25).
// The window is visited row by row, left to right, as PyTorch's kernels do: the average sums in the same
// order (bit-identical to it in float32), and the max is exact either way; a NaN anywhere in the window
// gives NaN, as in PyTorch. No indices are computed.
#pragma once
#include "common.h"

namespace ncsn {

constexpr int kPoolK = 5, kPoolPad = 2;

NCSN_HD bool is_nan(float v) { return v != v; }

// max that propagates NaN: the running value once NaN stays NaN, a NaN value replaces it.
NCSN_HD float max_nan(float acc, float v) { return (is_nan(acc) || (!is_nan(v) && !(v > acc))) ? acc : v; }

// One output value at (oh, ow) of a plane whose element (h, w) lives at base + h * sh + w * sw.
template <bool kMax, typename T>
NCSN_HD float pool5x5_at(const T* x, int64_t base, int64_t sh, int64_t sw, int64_t height, int64_t width,
                         int64_t oh, int64_t ow) {
  const int64_t h0 = oh - kPoolPad < 0 ? 0 : oh - kPoolPad;
  const int64_t h1 = oh + kPoolPad + 1 > height ? height : oh + kPoolPad + 1;
  const int64_t w0 = ow - kPoolPad < 0 ? 0 : ow - kPoolPad;
  const int64_t w1 = ow + kPoolPad + 1 > width ? width : ow + kPoolPad + 1;
  float acc = kMax ? bits_to_float(0xFF800000u) : 0.f;  // -inf
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) {
      const float v = load_as_float(x, base + h * sh + w * sw);
      if (kMax) {
        acc = max_nan(acc, v);
      } else {
        acc += v;
      }
    }
  return kMax ? acc : acc / static_cast<float>(kPoolK * kPoolK);
}

}  // namespace ncsn
