// The widest x86 vector ISA this CPU runs (AVX-512, AVX2 or the baseline x86-64 / any other CPU), chosen once,
// for the CPU loops compiled once per ISA (NCSN_CPU_VARIANTS). NCSN_FAST_CPU_ISA=avx2 | baseline caps the
// choice (tests/test_cpu_isa.py compares the variants' bits). The loops use no FMA contraction
// (-ffp-contract=off) and only correctly rounded operations, so every variant computes the same bits.
#pragma once
#include <cstdlib>
#include <cstring>

// Forced inline, for the bodies NCSN_CPU_VARIANTS builds per ISA (and what they call that is not inline already):
// a plain inline function may be compiled once, for the baseline, and called from every variant.
#if defined(__GNUC__)
#define NCSN_CPU_INLINE inline __attribute__((always_inline))
#else
#define NCSN_CPU_INLINE inline
#endif

namespace ncsn {

enum class Isa { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

inline Isa choose_isa() {
  const char* cap = std::getenv("NCSN_FAST_CPU_ISA");
  const bool no512 = cap && (std::strcmp(cap, "avx2") == 0 || std::strcmp(cap, "baseline") == 0);
  const bool no256 = cap && std::strcmp(cap, "baseline") == 0;
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  if (!no512 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw"))
    return Isa::kAvx512;
  if (!no256 && __builtin_cpu_supports("avx2")) return Isa::kAvx2;
#else
  (void)no512;
  (void)no256;
#endif
  return Isa::kBaseline;
}

inline Isa cpu_isa() {
  static const Isa isa = choose_isa();
  return isa;
}

inline const char* isa_name(Isa isa) {
  return isa == Isa::kAvx512 ? "avx512" : isa == Isa::kAvx2 ? "avx2" : "baseline";
}

}  // namespace ncsn

// NCSN_CPU_VARIANTS(name, (params), (args), body[, template header]): functions name_baseline, name_avx2 and
// name_avx512 that each call body(args), declared NCSN_CPU_INLINE so that it is compiled inside each for its
// ISA, and name(params) calling the one cpu_isa() picked (template parameters, if any, must be deducible from
// the arguments). Call them from OpenMP loops as plain functions.
#if defined(__x86_64__) && defined(__GNUC__)
#define NCSN_TARGET_AVX2 __attribute__((target("avx2")))
#define NCSN_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define NCSN_CPU_VARIANTS(name, params, args, body, ...) \
  NCSN_CPU_VARIANTS_BY_WIDTH(name, params, args, body, body, __VA_ARGS__)
// NCSN_CPU_VARIANTS_BY_WIDTH(name, (params), (args), narrow, wide[, template header]): the same, with body
// `narrow` on the baseline and other CPUs and `wide` with AVX2 and AVX-512, for loops whose vectors must fit the
// registers (4 floats narrow, 8 wide: GCC keeps wider generic vectors than the registers on the stack).
#define NCSN_CPU_VARIANTS_BY_WIDTH(name, params, args, narrow, wide, ...) \
  __VA_ARGS__ static void name##_baseline params { narrow args; }          \
  __VA_ARGS__ NCSN_TARGET_AVX2 static void name##_avx2 params {            \
    wide args;                                                             \
  }                                                                        \
  __VA_ARGS__ NCSN_TARGET_AVX512 static void name##_avx512 params {        \
    wide args;                                                             \
  }                                                                        \
  __VA_ARGS__ static void name params {                                    \
    switch (::ncsn::cpu_isa()) {                                           \
      case ::ncsn::Isa::kAvx512: name##_avx512 args; break;                \
      case ::ncsn::Isa::kAvx2: name##_avx2 args; break;                    \
      default: name##_baseline args;                                       \
    }                                                                      \
  }
#else
#define NCSN_CPU_VARIANTS(name, params, args, body, ...) \
  __VA_ARGS__ static void name params { body args; }
#define NCSN_CPU_VARIANTS_BY_WIDTH(name, params, args, narrow, wide, ...) \
  __VA_ARGS__ static void name params { narrow args; }
#endif
