// Declarations of the CPU kernels: raw pointers and sizes only (no torch), bound in bindings.cpp.
#pragma once
#include <cstdint>

namespace ncsn {

void philox_words_cpu(uint32_t* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                      uint32_t step);
void philox_normal_cpu(float* out, const int64_t* sample_ids, int64_t n, int64_t numel, uint64_t seed,
                       uint32_t step);

}  // namespace ncsn
