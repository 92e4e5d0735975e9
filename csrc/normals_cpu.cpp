// normals_block (normals_cpu.h) compiled three times: for AVX-512, for AVX2 and for the baseline x86-64 (or any
// other CPU), the widest this CPU runs picked once. On the project's AMD EPYC: 2.4 ms per 256 x 3 x 32 x 32
// normals with AVX-512 against 5.2 ms for the C library's scalar logf / sincosf; the baseline build of the same
// code is slower than the C library (no 64-bit vector multiply), so it only serves CPUs without AVX2.
#include "normals_cpu.h"

#include <cstdlib>
#include <cstring>

namespace ncsn {

namespace {

using BlockFn = void (*)(uint64_t, uint64_t, uint32_t, uint32_t, float*);

void block_baseline(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float* z) {
  normals_block_impl(seed, sample, step, q0, z);
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2"))) void block_avx2(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0,
                                                float* z) {
  normals_block_impl(seed, sample, step, q0, z);
}

__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw"))) void block_avx512(uint64_t seed, uint64_t sample,
                                                                               uint32_t step, uint32_t q0,
                                                                               float* z) {
  normals_block_impl(seed, sample, step, q0, z);
}
#endif

struct Choice {
  BlockFn fn;
  const char* isa;
};

Choice choose() {
  // NCSN_FAST_CPU_ISA=avx2 | baseline caps the choice (tests compare the variants' bits).
  const char* cap = std::getenv("NCSN_FAST_CPU_ISA");
  const bool no512 = cap && (std::strcmp(cap, "avx2") == 0 || std::strcmp(cap, "baseline") == 0);
  const bool no256 = cap && std::strcmp(cap, "baseline") == 0;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!no512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return {block_avx512, "avx512"};
  if (!no256 && __builtin_cpu_supports("avx2")) return {block_avx2, "avx2"};
#else
  (void)no512;
  (void)no256;
#endif
  return {block_baseline, "baseline"};
}

const Choice& chosen() {
  static const Choice c = choose();
  return c;
}

}  // namespace

void normals_block(uint64_t seed, uint64_t sample, uint32_t step, uint32_t q0, float z[4 * kNormalBlock]) {
  chosen().fn(seed, sample, step, q0, z);
}

const char* normals_block_isa() { return chosen().isa; }

}  // namespace ncsn
