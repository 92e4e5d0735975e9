// CPU loops (OpenMP) around csrc/philox.h: raw words and normals (normals_cpu.h) of the noise stream.
#include "normals_cpu.h"
#include "ops_cpu.h"
#include "philox.h"

namespace ncsn {

void philox_words_cpu(uint32_t* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                      uint32_t step) {
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t e = 0; e < numel; e += 4) {
      const Words4 w = noise_words(seed, static_cast<uint64_t>(sample_ids[i]), step, static_cast<uint32_t>(e >> 2));
      for (int k = 0; k < 4 && e + k < numel; ++k) out[i * numel + e + k] = w.w[k];
    }
  }
}

void philox_normal_cpu(float* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                       uint32_t step) {
  const int64_t block = 4 * kNormalBlock;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float z[4 * kNormalBlock];
    for (int64_t e0 = 0; e0 < numel; e0 += block) {
      normals_block(seed, static_cast<uint64_t>(sample_ids[i]), step, static_cast<uint32_t>(e0 >> 2), z);
      const int64_t end = e0 + block < numel ? e0 + block : numel;
      for (int64_t e = e0; e < end; ++e) out[i * numel + e] = z[e - e0];
    }
  }
}

}  // namespace ncsn
