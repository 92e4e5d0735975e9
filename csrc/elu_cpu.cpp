// CPU (OpenMP) ELU (alpha 1) over a dense buffer, with the branch-free elu() of instance_norm_plus.h: its
// polynomial expm1 vectorises (built per ISA, cpu_isa.h), where PyTorch's CPU ELU runs ~50x slower than a ReLU
// of the same size.
#include "cpu_isa.h"
#include "instance_norm_plus.h"
#include "ops_cpu.h"

namespace ncsn {

template <typename T>
NCSN_CPU_INLINE void chunk_body(const T* x, T* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) store_from_float(out, i, elu(load_as_float(x, i)));
}

NCSN_CPU_VARIANTS(chunk, (const T* x, T* out, int64_t count), (x, out, count), chunk_body, template <typename T>)

template <typename T>
static void run(const T* x, T* out, int64_t numel) {
  constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for schedule(static)
  for (int64_t start = 0; start < numel; start += kChunk)
    chunk(x + start, out + start, start + kChunk < numel ? kChunk : numel - start);
}

void elu_cpu(const void* x, void* out, int dtype, int64_t numel) {
  switch (dtype) {
    case kFloat32: run(static_cast<const float*>(x), static_cast<float*>(out), numel); break;
    case kFloat16: run(static_cast<const Half*>(x), static_cast<Half*>(out), numel); break;
    case kBFloat16: run(static_cast<const BFloat16*>(x), static_cast<BFloat16*>(out), numel); break;
  }
}

}  // namespace ncsn
