// CPU loop (OpenMP over samples) around csrc/langevin_step.h, its normals a block at a time (normals_cpu.h).
#include "langevin_step.h"
#include "normals_cpu.h"
#include "ops_cpu.h"

namespace ncsn {

template <typename H>
static void run(float* x, const H* h, const int64_t* ids, int64_t n, int64_t channels, int64_t hw,
                bool channels_last, uint64_t seed, uint32_t step, const float* coefs, float* stats) {
  const float g = coefs[0] * coefs[1], b = coefs[2];
  const int64_t numel = channels * hw, block = 4 * kNormalBlock;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    float sums[2] = {0.f, 0.f};
    float z[4 * kNormalBlock];
    float* xr = x + row * numel;
    const H* hr = h + row * numel;
    for (int64_t e0 = 0; e0 < numel; e0 += block) {
      normals_block(seed, static_cast<uint64_t>(ids[row]), step, static_cast<uint32_t>(e0 >> 2), z);
      const int64_t end = e0 + block < numel ? e0 + block : numel;
      for (int64_t e = e0; e < end; ++e) {
        const float hv = load_as_float(hr, h_offset(e, channels, hw, channels_last));
        xr[e] = langevin_update(xr[e], hv, g, b, z[e - e0]);
        sums[0] += hv * hv;
        sums[1] += z[e - e0] * z[e - e0];
      }
    }
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
