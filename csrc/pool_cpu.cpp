// CPU (OpenMP) 5x5 CRP pooling around csrc/pool.h. NCHW: one plane per task. NHWC (channels_last), average:
// one output row of one sample per task, the window walked with the channel loop innermost (contiguous, so it
// vectorises); the per-channel order of visits is the same as in NCHW. NHWC max: separable, per sample (a 5-wide
// max along each row, then a 5-tall max of those rows: 8 comparisons per value instead of 24, compiled per ISA);
// exact, as max is, and a NaN anywhere in the window still gives NaN (both passes keep it).
#include <limits>
#include <vector>

#include "cpu_isa.h"
#include "ops_cpu.h"
#include "pool.h"

namespace ncsn {

// max_nan (pool.h) without short-circuits, so that GCC if-converts and vectorises it: v replaces acc when larger
// or NaN; a NaN acc stays (nothing is larger than it).
NCSN_CPU_INLINE float max_nan_vec(float acc, float v) { return ((v > acc) | (v != v)) ? v : acc; }

// One sample's rows (height x width x channels) -> their 5-wide maxima, in float.
template <typename T>
NCSN_CPU_INLINE void row_max_body(const T* x, float* out, int64_t height, int64_t width, int64_t channels) {
  for (int64_t h = 0; h < height; ++h)
    for (int64_t w = 0; w < width; ++w) {
      const int64_t w0 = w - kPoolPad < 0 ? 0 : w - kPoolPad;
      const int64_t w1 = w + kPoolPad + 1 > width ? width : w + kPoolPad + 1;
      const T* row = x + h * width * channels;
      float* o = out + (h * width + w) * channels;
      for (int64_t c = 0; c < channels; ++c) o[c] = load_as_float(row, w0 * channels + c);
      for (int64_t k = w0 + 1; k < w1; ++k)
        for (int64_t c = 0; c < channels; ++c) o[c] = max_nan_vec(o[c], load_as_float(row, k * channels + c));
    }
}

// The 5-tall maxima of one sample's row maxima -> its output (acc: one row of scratch; the loops over a row
// innermost, so they vectorise).
template <typename T>
NCSN_CPU_INLINE void col_max_body(const float* rows, T* out, float* acc, int64_t height, int64_t row_len) {
  for (int64_t h = 0; h < height; ++h) {
    const int64_t h0 = h - kPoolPad < 0 ? 0 : h - kPoolPad;
    const int64_t h1 = h + kPoolPad + 1 > height ? height : h + kPoolPad + 1;
    for (int64_t p = 0; p < row_len; ++p) acc[p] = rows[h0 * row_len + p];
    for (int64_t k = h0 + 1; k < h1; ++k)
      for (int64_t p = 0; p < row_len; ++p) acc[p] = max_nan_vec(acc[p], rows[k * row_len + p]);
    for (int64_t p = 0; p < row_len; ++p) store_from_float(out, h * row_len + p, acc[p]);
  }
}

NCSN_CPU_VARIANTS(row_max, (const T* x, float* out, int64_t height, int64_t width, int64_t channels),
                  (x, out, height, width, channels), row_max_body, template <typename T>)
NCSN_CPU_VARIANTS(col_max, (const float* rows, T* out, float* acc, int64_t height, int64_t row_len),
                  (rows, out, acc, height, row_len), col_max_body, template <typename T>)

template <typename T>
static void max_nhwc(const T* x, T* out, int64_t n, int64_t channels, int64_t height, int64_t width) {
  const int64_t plane = height * width * channels;
#pragma omp parallel
  {
    std::vector<float> rows(plane), acc(width * channels);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      row_max(x + i * plane, rows.data(), height, width, channels);
      col_max(rows.data(), out + i * plane, acc.data(), height, width * channels);
    }
  }
}

template <bool kMax, typename T>
static void run(const T* x, T* out, int64_t n, int64_t channels, int64_t height, int64_t width, bool channels_last) {
  const float fill = kMax ? -std::numeric_limits<float>::infinity() : 0.f;  // neutral: max(-inf, v), 0 + v
  if (!channels_last) {
    // Per plane: a float copy with 2 neutral columns each side, then per output row the window's rows and
    // 5 shifts, each a loop over the whole row (vectorises). Per output element the visits are in
    // PyTorch's order (row by row, left to right); the added neutral values change nothing (0 + v = v).
    const int64_t pw = width + 2 * kPoolPad;
#pragma omp parallel
    {
      std::vector<float> pad(height * pw), acc(width);
#pragma omp for schedule(static)
      for (int64_t plane = 0; plane < n * channels; ++plane) {
        const int64_t base = plane * height * width;
        for (int64_t h = 0; h < height; ++h) {
          float* r = pad.data() + h * pw;
          for (int64_t k = 0; k < kPoolPad; ++k) r[k] = r[pw - 1 - k] = fill;
          for (int64_t w = 0; w < width; ++w) r[kPoolPad + w] = load_as_float(x, base + h * width + w);
        }
        for (int64_t oh = 0; oh < height; ++oh) {
          const int64_t h0 = oh - kPoolPad < 0 ? 0 : oh - kPoolPad;
          const int64_t h1 = oh + kPoolPad + 1 > height ? height : oh + kPoolPad + 1;
          float* a = acc.data();
          for (int64_t w = 0; w < width; ++w) a[w] = fill;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t dw = 0; dw < kPoolK; ++dw) {
              const float* r = pad.data() + h * pw + dw;
              if (kMax)
                for (int64_t w = 0; w < width; ++w) a[w] = max_nan(a[w], r[w]);
              else
                for (int64_t w = 0; w < width; ++w) a[w] += r[w];
            }
          for (int64_t w = 0; w < width; ++w)
            store_from_float(out, base + oh * width + w, kMax ? a[w] : a[w] / static_cast<float>(kPoolK * kPoolK));
        }
      }
    }
    return;
  }
  if (kMax) return max_nhwc(x, out, n, channels, height, width);
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n * height; ++row) {
    const int64_t i = row / height, oh = row % height;
    const int64_t h0 = oh - kPoolPad < 0 ? 0 : oh - kPoolPad;
    const int64_t h1 = oh + kPoolPad + 1 > height ? height : oh + kPoolPad + 1;
    std::vector<float> acc(channels);
    for (int64_t ow = 0; ow < width; ++ow) {
      const int64_t w0 = ow - kPoolPad < 0 ? 0 : ow - kPoolPad;
      const int64_t w1 = ow + kPoolPad + 1 > width ? width : ow + kPoolPad + 1;
      for (int64_t c = 0; c < channels; ++c) acc[c] = kMax ? -std::numeric_limits<float>::infinity() : 0.f;
      for (int64_t h = h0; h < h1; ++h)
        for (int64_t w = w0; w < w1; ++w) {
          const int64_t base = ((i * height + h) * width + w) * channels;
          for (int64_t c = 0; c < channels; ++c) {
            const float v = load_as_float(x, base + c);
            if (kMax)
              acc[c] = max_nan(acc[c], v);
            else
              acc[c] += v;
          }
        }
      const int64_t obase = ((i * height + oh) * width + ow) * channels;
      for (int64_t c = 0; c < channels; ++c)
        store_from_float(out, obase + c, kMax ? acc[c] : acc[c] / static_cast<float>(kPoolK * kPoolK));
    }
  }
}

template <typename T>
static void dispatch(const void* x, void* out, bool is_max, int64_t n, int64_t channels, int64_t height,
                     int64_t width, bool channels_last) {
  if (is_max)
    run<true>(static_cast<const T*>(x), static_cast<T*>(out), n, channels, height, width, channels_last);
  else
    run<false>(static_cast<const T*>(x), static_cast<T*>(out), n, channels, height, width, channels_last);
}

void pool5x5_cpu(const void* x, void* out, int dtype, bool is_max, int64_t n, int64_t channels, int64_t height,
                 int64_t width, bool channels_last) {
  switch (dtype) {
    case kFloat32: dispatch<float>(x, out, is_max, n, channels, height, width, channels_last); break;
    case kFloat16: dispatch<Half>(x, out, is_max, n, channels, height, width, channels_last); break;
    case kBFloat16: dispatch<BFloat16>(x, out, is_max, n, channels, height, width, channels_last); break;
  }
}

}  // namespace ncsn
