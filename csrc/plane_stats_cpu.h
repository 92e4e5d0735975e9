// Per-(sample, channel) mean and biased variance of x (n, channels, hw), NCHW or NHWC, for the CPU norms: in
// double, over d = x - pivot (the plane's first value, so |mean(d)| is a few std at most and E[d^2] - E[d]^2
// does not cancel), 8 independent accumulators (no serial add chain); the loops compiled per ISA (cpu_isa.h).
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"
#include "cpu_isa.h"

namespace ncsn {

// Mean and variance of one plane (count contiguous values).
template <typename T>
NCSN_CPU_INLINE void plane_stats_body(const T* x, int64_t count, double* mean, double* var) {
  const float pivot = load_as_float(x, 0);
  double s[8] = {0}, ss[8] = {0};
  int64_t p = 0;
  for (; p + 8 <= count; p += 8)
    for (int k = 0; k < 8; ++k) {
      const double d = load_as_float(x, p + k) - pivot;
      s[k] += d;
      ss[k] += d * d;
    }
  for (; p < count; ++p) {
    const double d = load_as_float(x, p) - pivot;
    s[0] += d;
    ss[0] += d * d;
  }
  double sum = 0, sumsq = 0;
  for (int k = 0; k < 8; ++k) {
    sum += s[k];
    sumsq += ss[k];
  }
  const double md = sum / static_cast<double>(count);
  const double v = sumsq / static_cast<double>(count) - md * md;
  *mean = pivot + md;
  *var = v > 0 ? v : 0;
}

// Per-channel sums of d = x - pivot_c over one sample's hw pixel rows (NHWC), vectorised across channels.
template <typename T>
NCSN_CPU_INLINE void pixel_stats_body(const T* x, int64_t hw, int64_t channels, const float* pivot, double* s,
                                      double* ss) {
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t c = 0; c < channels; ++c) {
      const double d = load_as_float(x, p * channels + c) - pivot[c];
      s[c] += d;
      ss[c] += d * d;
    }
}

NCSN_CPU_VARIANTS(plane_stats, (const T* x, int64_t count, double* mean, double* var), (x, count, mean, var),
                  plane_stats_body, template <typename T>)
NCSN_CPU_VARIANTS(pixel_stats, (const T* x, int64_t hw, int64_t channels, const float* pivot, double* s, double* ss),
                  (x, hw, channels, pivot, s, ss), pixel_stats_body, template <typename T>)

template <typename T>
static void channel_stats(const T* x, int64_t n, int64_t channels, int64_t hw, bool channels_last, double* mean,
                          double* var) {
  if (!channels_last) {
#pragma omp parallel for schedule(static)
    for (int64_t plane = 0; plane < n * channels; ++plane) plane_stats(x + plane * hw, hw, mean + plane, var + plane);
  } else {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      std::vector<double> s(channels, 0.0), ss(channels, 0.0);
      std::vector<float> pivot(channels);
      const T* xi = x + i * hw * channels;
      for (int64_t c = 0; c < channels; ++c) pivot[c] = load_as_float(xi, c);
      pixel_stats(xi, hw, channels, pivot.data(), s.data(), ss.data());
      for (int64_t c = 0; c < channels; ++c) {
        const double md = s[c] / static_cast<double>(hw);
        const double v = ss[c] / static_cast<double>(hw) - md * md;
        mean[i * channels + c] = pivot[c] + md;
        var[i * channels + c] = v > 0 ? v : 0;
      }
    }
  }
}

}  // namespace ncsn
