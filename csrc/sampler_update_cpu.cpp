// CPU loop (OpenMP over samples) around csrc/sampler_update.h.
#include "ops_cpu.h"
#include "sampler_update.h"

namespace ncsn {

template <typename H>
static void run(float* x, float* p, const H* h, const int64_t* ids, int64_t n, int64_t channels, int64_t hw,
                bool channels_last, uint64_t seed, uint32_t step, const float* coefs, const float* mult) {
  const int64_t groups = (channels * hw + 3) / 4;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const UpdateCoefs k = update_coefs(coefs, mult + 2 * row);
    for (int64_t q = 0; q < groups; ++q)
      sampler_update_group(x, p, h, row, q, channels, hw, channels_last, seed, static_cast<uint64_t>(ids[row]), step,
                           k);
  }
}

void sampler_update_cpu(float* x, float* p, const void* h, int h_dtype, const int64_t* ids, int64_t n,
                        int64_t channels, int64_t hw, bool channels_last, uint64_t seed, uint32_t step,
                        const float* coefs, const float* mult) {
  switch (h_dtype) {
    case kFloat32: run(x, p, static_cast<const float*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, mult); break;
    case kFloat16: run(x, p, static_cast<const Half*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, mult); break;
    case kBFloat16: run(x, p, static_cast<const BFloat16*>(h), ids, n, channels, hw, channels_last, seed, step, coefs, mult); break;
    default: break;
  }
}

}  // namespace ncsn
