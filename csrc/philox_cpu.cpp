// CPU loops (OpenMP) around csrc/philox.h: raw words and normals of the noise stream.
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
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    float z[4];
    for (int64_t e = 0; e < numel; e += 4) {
      words_to_normal4(noise_words(seed, static_cast<uint64_t>(sample_ids[i]), step, static_cast<uint32_t>(e >> 2)), z);
      for (int k = 0; k < 4 && e + k < numel; ++k) out[i * numel + e + k] = z[k];
    }
  }
}

}  // namespace ncsn
