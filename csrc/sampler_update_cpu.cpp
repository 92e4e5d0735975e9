// CPU loop (OpenMP over samples) around csrc/sampler_update.h, its normals a block at a time (normals_cpu.h).
#include "normals_cpu.h"
#include "ops_cpu.h"
#include "sampler_update.h"

namespace ncsn {

template <typename H>
static void run(float* x, float* p, const H* h, const int64_t* ids, int64_t n, int64_t channels, int64_t hw,
                bool channels_last, uint64_t seed, uint32_t step, const float* coefs, const float* mult) {
  const int64_t numel = channels * hw, block = 4 * kNormalBlock;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < n; ++row) {
    const UpdateCoefs k = update_coefs(coefs, mult + 2 * row);
    float z[4 * kNormalBlock];
    for (int64_t e0 = 0; e0 < numel; e0 += block) {
      normals_block(seed, static_cast<uint64_t>(ids[row]), step, static_cast<uint32_t>(e0 >> 2), z);
      const int64_t end = e0 + block < numel ? e0 + block : numel;
      for (int64_t e = e0; e < end; ++e) {
        const float hv = load_as_float(h, row * numel + h_offset(e, channels, hw, channels_last));
        sampler_update_element(x + row * numel + e, p + row * numel + e, hv, z[e - e0], k);
      }
    }
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
