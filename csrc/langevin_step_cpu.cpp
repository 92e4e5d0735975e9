// CPU loop (OpenMP over samples) around csrc/langevin_step.h.
#include "langevin_step.h"
#include "ops_cpu.h"

namespace ncsn {

template <typename H>
static void run(float* x, const H* h, const int64_t* ids, int64_t n, int64_t channels, int64_t hw,
                bool channels_last, uint64_t seed, uint32_t step, const float* coefs, float* stats) {
  const float g = coefs[0] * coefs[1], b = coefs[2];
  const int64_t groups = (channels * hw + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    float sums[2] = {0.f, 0.f};
    for (int64_t q = 0; q < groups; ++q)
      langevin_group(x, h, row, q, channels, hw, channels_last, seed, static_cast<uint64_t>(ids[row]), step, g, b,
                     sums);
    if (stats) {
      stats[2 * row] = sums[0];
      stats[2 * row + 1] = sums[1];
    }
  }
}

void langevin_step_cpu(float* x, const void* h, int h_dtype, const int64_t* ids, int64_t n, int64_t channels,
                       int64_t hw, bool channels_last, uint64_t seed, uint32_t step, const float* coefs,
                       float* stats) {
  switch (h_dtype) {
    case kFloat32: run(x, static_cast<const float*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, stats); break;
    case kFloat16: run(x, static_cast<const Half*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, stats); break;
    case kBFloat16: run(x, static_cast<const BFloat16*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, stats); break;
    default: break;
  }
}

}  // namespace ncsn
