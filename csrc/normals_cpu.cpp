// normals_block (normals_cpu.h) compiled three times (cpu_isa.h): for AVX-512, for AVX2 and for the baseline
// x86-64 (or any other CPU), the widest this CPU runs picked once. On the project's AMD EPYC: 2.4 ms per
// 256 x 3 x 32 x 32 normals with AVX-512 against 5.2 ms for the C library's scalar logf / sincosf; the baseline build of the same
// code is slower than the C library (no 64-bit vector multiply), so it only serves CPUs without AVX2.
#include "normals_cpu.h"

#include "cpu_isa.h"

namespace ncsn {

namespace {

NCSN_CPU_INLINE void block_body(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float* z) {
  normals_block_impl(seed, sample, step, q0, z);
}

NCSN_CPU_VARIANTS(block, (uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float* z),
                  (seed, sample, step, q0, z), block_body)

}  // namespace

void normals_block(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float z[4 * kNormalBlock]) {
  block(seed, sample, step, q0, z);
}

const char* normals_block_isa() { return isa_name(cpu_isa()); }

}  // namespace ncsn
