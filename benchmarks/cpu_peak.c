// The float32 arithmetic ceiling of the Winograd products' micro-kernel shape (6 rows x 2 vectors of 8 output
// channels, 12 accumulators) on registers alone, with multiply-then-add as csrc/ builds it (-ffp-contract=off)
// or with FMA, on every OpenMP thread. No memory traffic: what the products could reach with their data in L1.
//   gcc -O3 -mavx2 -ffp-contract=off -fopenmp benchmarks/cpu_peak.c -o /tmp/peak && OMP_NUM_THREADS=2 /tmp/peak
//   gcc -O3 -mavx2 -mfma -ffp-contract=fast -fopenmp benchmarks/cpu_peak.c -o /tmp/peak_fma && OMP_NUM_THREADS=2 /tmp/peak_fma
#include <omp.h>
#include <stdio.h>
#include <time.h>

typedef float V __attribute__((vector_size(32)));

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
  const long iters = 200000000 / 12;
  double best = 1e9;
  for (int rep = 0; rep < 5; ++rep) {
    const double t = now();
#pragma omp parallel
    {
      V acc[12], b0 = {1, 1, 1, 1, 1, 1, 1, 1}, b1 = b0 * 0.999999f;
      const float a[6] = {1e-7f, 2e-7f, 3e-7f, 4e-7f, 5e-7f, 6e-7f};
      for (int i = 0; i < 12; ++i) acc[i] = (V){0};
      for (long k = 0; k < iters; ++k) {
#pragma GCC unroll 6
        for (int r = 0; r < 6; ++r) {
          acc[2 * r] += a[r] * b0;
          acc[2 * r + 1] += a[r] * b1;
        }
        __asm__ volatile("" : "+x"(b0), "+x"(b1));  // a new B each step, as the kernel loads one
      }
      float s = 0;
      for (int i = 0; i < 12; ++i) s += acc[i][0];
      if (s == 1234.5f) printf("%f\n", s);  // keep the loop
    }
    const double dt = now() - t;
    if (dt < best) best = dt;
  }
  const int threads = omp_get_max_threads();
  printf("%d threads: %.1f GFLOP/s (fastest of 5)\n", threads, threads * iters * 12.0 * 8 * 2 / best / 1e9);
  return 0;
}
