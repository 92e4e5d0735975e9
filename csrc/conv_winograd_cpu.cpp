// CPU 3x3 convolution (stride 1, padding = dilation, any dilation) by Winograd's F(4x4, 3x3) (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016), float32, NHWC (channels_last), with the bias, an
// optional residual add, an optional division (NCSN++'s skip rescaling by sqrt 2) and an optional ELU fused into the
// output transform:
//   out = [ELU of] (conv3x3(x, w, dilation) + bias [+ residual]) / divisor
// A 4x4 output tile takes 36 products per (input, output) channel pair instead of 144: 4x fewer multiplications
// than the direct convolution oneDNN runs, for ~10x its rounding error (still ~1e-6 of the output's scale).
// A dilated convolution is d*d undilated ones on the interleaved sub-grids of its output, so the tiles are laid
// on those sub-grids (rows oh = ph + d (4 t + m)) and gather their input at the same stride.
//
// Per thread, a block of g.block tiles at a time, in cache: the input transform V = B^T d B (per channel, 8 channels
// per vector), then for each of the 36 tile positions one small GEMM M = V (tiles x ci) U (ci x co) with U the
// transformed weights (a register-blocked 6 x 16 micro-kernel), then the output transform A^T M A + bias (+ the
// residual), stored. U is packed in panels of 16 output channels (36 x ceil(co / 16) x ci x 16, zeros past co),
// so that the micro-kernel reads its panel in order: unpacked, the rows it reads lay co floats apart, which a
// 32 KiB 8-way L1 maps to co / 16 times fewer sets (4 of 64 at co = 256), and the panel missed L1 at every row
// ((8, 256, 16, 16) -> 256: 7.4 -> 5.7 ms packed; (8, 512, 8, 8) -> 256: 7.8 -> 3.6 ms with the blocks below).
// The loops are compiled per ISA (cpu_isa.h) with GCC's vector extension, as wide as the ISA's registers (8 floats
// with AVX2 / AVX-512, 4 on the baseline x86-64 and other CPUs: wider generic vectors than the registers live on
// the stack, which ran SSE2 13x slower), without FMA contraction (the build's -ffp-contract=off): every ISA
// computes the same bits (element-wise operations, in the same order, whatever the width).
#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>
#include <unistd.h>

#include "cpu_isa.h"
#include "ops_cpu.h"

namespace ncsn {

namespace {

constexpr int kT = 6;            // input tile side (4 outputs + 2)
constexpr int kM = 4;            // output tile side
constexpr int kXi = kT * kT;     // 36 tile positions
constexpr int kRows = 6;         // micro-kernel: 6 tiles x 2 vectors of output channels
constexpr int kPanel = 16;       // output channels per panel of the packed U

// L floats: Vec<L>::a in registers, Vec<L>::u for unaligned loads and stores, Vec<L>::i the matching integers.
template <int L>
struct Vec;
template <>
struct Vec<8> {
  typedef float a __attribute__((vector_size(32)));
  typedef float u __attribute__((vector_size(32), aligned(4)));
  typedef int i __attribute__((vector_size(32)));
};
template <>
struct Vec<4> {
  typedef float a __attribute__((vector_size(16)));
  typedef float u __attribute__((vector_size(16), aligned(4)));
  typedef int i __attribute__((vector_size(16)));
};

// D doubles, and D floats to convert them to (the weight transform).
template <int D>
struct DVec;
template <>
struct DVec<4> {
  typedef double d __attribute__((vector_size(32)));
  typedef float f __attribute__((vector_size(16)));
};
template <>
struct DVec<2> {
  typedef double d __attribute__((vector_size(16)));
  typedef float f __attribute__((vector_size(8)));
};

template <int L>
NCSN_CPU_INLINE typename Vec<L>::a load(const float* p) {
  return static_cast<typename Vec<L>::a>(*reinterpret_cast<const typename Vec<L>::u*>(p));
}

template <int L>
NCSN_CPU_INLINE void store(float* p, typename Vec<L>::a v) {
  *reinterpret_cast<typename Vec<L>::u*>(p) = v;
}

constexpr float kBT[kT][kT] = {{4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
                               {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
constexpr float kAT[kM][kT] = {{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};
constexpr double kG[kT][3] = {{1.0 / 4, 0, 0},           {-1.0 / 6, -1.0 / 6, -1.0 / 6}, {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                              {1.0 / 24, 1.0 / 12, 1.0 / 6}, {1.0 / 24, -1.0 / 12, 1.0 / 6}, {0, 0, 1}};

// dst[i] = sum_j C[i][j] src[j * stride], the zero coefficients skipped (the loops unroll: decided at compile time).
template <int R, int K, class V>
NCSN_CPU_INLINE void combine(const float (&c)[R][K], const V* src, int stride, V* dst, int dst_stride) {
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i) {
    V acc = {};
#pragma GCC unroll 8
    for (int j = 0; j < K; ++j) {
      if (c[i][j] == 0.f) continue;
      if (c[i][j] == 1.f)
        acc += src[j * stride];
      else if (c[i][j] == -1.f)
        acc -= src[j * stride];
      else
        acc += c[i][j] * src[j * stride];
    }
    dst[i * dst_stride] = acc;
  }
}

struct Geometry {
  int64_t n, h, w, ci, co, d;
  int64_t block;   // tiles per block (a multiple of kRows)
  int64_t th, tw;  // tiles per sub-grid column / row: ceil(ceil(h / d) / 4)
  int64_t tiles;   // n * d * d * th * tw
  int64_t panels;  // ceil(co / kPanel)
};

// Tile t -> its sample and the image coordinates of its first output (row, column); the step between its rows
// and columns is d.
NCSN_CPU_INLINE void tile_origin(const Geometry& g, int64_t t, int64_t* i, int64_t* oh, int64_t* ow) {
  const int64_t tw = t % g.tw;
  t /= g.tw;
  const int64_t pw = t % g.d;
  t /= g.d;
  const int64_t th = t % g.th;
  t /= g.th;
  const int64_t ph = t % g.d;
  *i = t / g.d;
  *oh = ph + g.d * kM * th;
  *ow = pw + g.d * kM * tw;
}

// V[xi][b][c] for the block's tiles: B^T d B of each tile's 6x6 input window (zeros outside the image).
template <int L>
NCSN_CPU_INLINE void input_transform(const Geometry& g, const float* x, int64_t t0, int nb, float* v) {
  typedef typename Vec<L>::a V;
  const V zero = {};
  for (int b = 0; b < nb; ++b) {
    int64_t i, oh, ow;
    tile_origin(g, t0 + b, &i, &oh, &ow);
    const float* xi = x + i * g.h * g.w * g.ci;
    for (int64_t c = 0; c < g.ci; c += L) {
      V d[kXi], tmp[kXi], out[kXi];
      for (int u = 0; u < kT; ++u) {
        const int64_t ih = oh + g.d * (u - 1);
        for (int s = 0; s < kT; ++s) {
          const int64_t iw = ow + g.d * (s - 1);
          d[u * kT + s] = (ih >= 0 && ih < g.h && iw >= 0 && iw < g.w) ? load<L>(xi + (ih * g.w + iw) * g.ci + c)
                                                                       : zero;
        }
      }
      for (int s = 0; s < kT; ++s) combine(kBT, d + s, kT, tmp + s, kT);    // columns: B^T d
      for (int u = 0; u < kT; ++u) combine(kBT, tmp + u * kT, 1, out + u * kT, 1);  // rows: (B^T d) B
      for (int xi_ = 0; xi_ < kXi; ++xi_)
        store<L>(v + (static_cast<int64_t>(xi_) * g.block + b) * g.ci + c, out[xi_]);
    }
  }
}

// M[xi][b][o..o+L kV) = sum_c V[xi][b][c] U[xi][c][o..] for the block's tiles, kV vectors of output channels at a
// time (nb rounded up to kRows: the extra rows hold stale values, computed and never stored).
template <int L, int kV>
NCSN_CPU_INLINE void multiply_cols(const Geometry& g, const float* vx, const float* ux, int groups, int64_t o,
                                   int64_t mo, int64_t mstride, float* mx) {
  for (int r0 = 0; r0 < groups * kRows; r0 += kRows) {
    typename Vec<L>::a acc[kRows][kV];
    for (int r = 0; r < kRows; ++r)
      for (int j = 0; j < kV; ++j) acc[r][j] = typename Vec<L>::a{};
    const float* vr = vx + r0 * g.ci;
    const float* uk = ux + (o / kPanel) * g.ci * kPanel + o % kPanel;  // (o, o + L kV) lies in one panel
    for (int64_t k = 0; k < g.ci; ++k, uk += kPanel) {
      __builtin_prefetch(uk + g.ci * kPanel);  // the next panel's row k (U streams from memory): NCSNv2 ngf 128 ~10 %
      typename Vec<L>::a bk[kV];
      for (int j = 0; j < kV; ++j) bk[j] = load<L>(uk + L * j);
#pragma GCC unroll 6
      for (int r = 0; r < kRows; ++r) {
        const float a = vr[r * g.ci + k];
        for (int j = 0; j < kV; ++j) acc[r][j] += a * bk[j];
      }
    }
    for (int r = 0; r < kRows; ++r)
      for (int j = 0; j < kV; ++j) store<L>(mx + (r0 + r) * mstride + mo + L * j, acc[r][j]);
  }
}

// ... for the output channels [o0, o1); M holds those only (row stride o1 - o0).
template <int L>
NCSN_CPU_INLINE void multiply(const Geometry& g, const float* v, const float* u, int nb, int64_t o0, int64_t o1,
                              float* m) {
  const int groups = (nb + kRows - 1) / kRows;
  const int64_t mstride = o1 - o0;
  for (int xi_ = 0; xi_ < kXi; ++xi_) {
    const float* vx = v + static_cast<int64_t>(xi_) * g.block * g.ci;
    const float* ux = u + static_cast<int64_t>(xi_) * g.panels * g.ci * kPanel;
    float* mx = m + static_cast<int64_t>(xi_) * g.block * mstride;
    int64_t o = o0;
    for (; o + 2 * L <= o1; o += 2 * L) multiply_cols<L, 2>(g, vx, ux, groups, o, o - o0, mstride, mx);
    for (; o < o1; o += L) multiply_cols<L, 1>(g, vx, ux, groups, o, o - o0, mstride, mx);  // a width of 2 L k + L
  }
}

// The ELU of L values in place: instance_norm_plus.h's elu() written for the vector type, the same operations in
// the same order (so the same bits as the elu op), branch-free.
template <class V, class I>
NCSN_CPU_INLINE void elu_vec(V* v) {
  const V zero = {};
  const V neg = *v < zero ? *v : zero, rest = *v < zero ? zero : *v;
  const V lo = zero - 87.0f;
  const V x = neg < lo ? lo : neg;                                         // 2^n must stay a normal float
  const I n = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, I);  // round(x / ln2) for x <= 0
  const V fn = __builtin_convertvector(n, V);
  const V r = (x - fn * 0.693359375f) + fn * 2.12194440e-4f;             // x - n ln2 in two parts
  V p = zero + 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  V t;  // 2^n
  const I bits = (n + 127) << 23;
  std::memcpy(&t, &bits, sizeof t);
  *v = (t * (p * r * r + r) + (t - 1.0f)) + rest;
}

// out = [ELU of] (A^T M A + bias [+ residual]) / divisor for the block's tiles, stored where inside the image.
template <int L, bool kElu>
NCSN_CPU_INLINE void output_transform(const Geometry& g, const float* m, const float* bias, const float* residual,
                                      float divisor, int64_t t0, int nb, int64_t o0, int64_t o1, float* out) {
  const bool divide = divisor != 1.f;
  const int64_t mstride = o1 - o0;
  for (int b = 0; b < nb; ++b) {
    int64_t i, oh, ow;
    tile_origin(g, t0 + b, &i, &oh, &ow);
    const int64_t base = i * g.h * g.w * g.co;
    for (int64_t o = o0; o < o1; o += L) {
      typedef typename Vec<L>::a V;
      V mm[kXi], tmp[kM * kT], y[kM * kM];
      for (int xi_ = 0; xi_ < kXi; ++xi_)
        mm[xi_] = load<L>(m + (static_cast<int64_t>(xi_) * g.block + b) * mstride + o - o0);
      for (int s = 0; s < kT; ++s) combine(kAT, mm + s, kT, tmp + s, kT);     // columns: A^T M (4 x 6)
      for (int r = 0; r < kM; ++r) combine(kAT, tmp + r * kT, 1, y + r * kM, 1);  // rows: (A^T M) A (4 x 4)
      const V bv = bias ? load<L>(bias + o) : V{};
      for (int r = 0; r < kM; ++r) {
        const int64_t h = oh + g.d * r;
        if (h >= g.h) break;
        for (int s = 0; s < kM; ++s) {
          const int64_t w = ow + g.d * s;
          if (w >= g.w) break;
          const int64_t at = base + (h * g.w + w) * g.co + o;
          V val = y[r * kM + s] + bv;
          if (residual) val += load<L>(residual + at);
          if (divide) val /= divisor;
          if (kElu) elu_vec<V, typename Vec<L>::i>(&val);
          store<L>(out + at, val);
        }
      }
    }
  }
}

template <int L>
NCSN_CPU_INLINE void block_body(const Geometry& g, const float* x, const float* u, const float* bias,
                                const float* residual, float divisor, bool apply_elu, float* out, int64_t t0,
                                int nb, int64_t o0, int64_t o1, float* v, float* m) {
  input_transform<L>(g, x, t0, nb, v);
  multiply<L>(g, v, u, nb, o0, o1, m);
  if (apply_elu)
    output_transform<L, true>(g, m, bias, residual, divisor, t0, nb, o0, o1, out);
  else
    output_transform<L, false>(g, m, bias, residual, divisor, t0, nb, o0, o1, out);
}

NCSN_CPU_VARIANTS_BY_WIDTH(run_block,
                           (const Geometry& g, const float* x, const float* u, const float* bias,
                            const float* residual, float divisor, bool apply_elu, float* out, int64_t t0, int nb,
                            int64_t o0, int64_t o1, float* v, float* m),
                           (g, x, u, bias, residual, divisor, apply_elu, out, t0, nb, o0, o1, v, m), block_body<4>,
                           block_body<8>)

// U[xi][p][c][j] = (G w[p 16 + j][c] G^T)[xi] for the panel p, every input channel c: in double, rounded once,
// zeros past co. D output channels at a time in vectors of doubles (the same operations, in the same order, as
// one at a time: the same bits), the input channel outermost: each of the 36 streams is written in order, a cache
// line per (c, xi). One channel at a time in scalar doubles took 0.5 s for NCSNv2 ngf 128's 113 MiB of weights.
template <int D>
NCSN_CPU_INLINE void transform_panel_body(const float* w, float* u, int64_t co, int64_t ci, int64_t panels,
                                          int64_t p) {
  typedef typename DVec<D>::d DV;
  typedef typename DVec<D>::f FV;
  const int64_t stride = panels * ci * kPanel;  // between the 36 streams
  const int64_t live = std::min<int64_t>(kPanel, co - p * kPanel);
  for (int64_t c = 0; c < ci; ++c) {
    float k[9][kPanel];  // the panel's kernels at input channel c, transposed (zeros past co)
    for (int j = 0; j < kPanel; ++j)
      for (int t = 0; t < 9; ++t) k[t][j] = j < live ? w[((p * kPanel + j) * ci + c) * 9 + t] : 0.f;
    float* uc = u + (p * ci + c) * kPanel;
    for (int q = 0; q < kPanel; q += D) {
      DV kk[9];
      for (int t = 0; t < 9; ++t) {
        FV f;
        std::memcpy(&f, &k[t][q], sizeof f);
        kk[t] = __builtin_convertvector(f, DV);
      }
      DV gk[kT][3];
      for (int a = 0; a < kT; ++a)
        for (int i = 0; i < 3; ++i) gk[a][i] = kG[a][0] * kk[i] + kG[a][1] * kk[3 + i] + kG[a][2] * kk[6 + i];
      for (int a = 0; a < kT; ++a)
        for (int s = 0; s < kT; ++s) {
          const FV val = __builtin_convertvector(gk[a][0] * kG[s][0] + gk[a][1] * kG[s][1] + gk[a][2] * kG[s][2], FV);
          std::memcpy(uc + (a * kT + s) * stride + q, &val, sizeof val);
        }
    }
    for (int j = static_cast<int>(live); j < kPanel; ++j)  // +0, as the reference pads (the products give -0)
      for (int xi_ = 0; xi_ < kXi; ++xi_) uc[xi_ * stride + j] = 0.f;
  }
}

NCSN_CPU_VARIANTS_BY_WIDTH(transform_panel,
                           (const float* w, float* u, int64_t co, int64_t ci, int64_t panels, int64_t p),
                           (w, u, co, ci, panels, p), transform_panel_body<2>, transform_panel_body<4>)

// The L2 cache's size per core (glibc's sysconf), 512 KiB where unknown.
int64_t l2_bytes() {
#ifdef _SC_LEVEL2_CACHE_SIZE
  static const int64_t size = sysconf(_SC_LEVEL2_CACHE_SIZE) > 0 ? sysconf(_SC_LEVEL2_CACHE_SIZE) : 512 << 10;
#else
  static const int64_t size = 512 << 10;
#endif
  return size;
}

}  // namespace

void winograd_weights_cpu(const float* w, float* u, int64_t co, int64_t ci) {
  const int64_t panels = (co + kPanel - 1) / kPanel;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < panels; ++p) transform_panel(w, u, co, ci, panels, p);
}

void conv3x3_winograd_cpu(const float* x, const float* u, const float* bias, const float* residual, float divisor,
                          bool apply_elu, float* out, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                          int64_t dilation) {
  Geometry g{n, h, w, ci, co, dilation, 0, 0, 0, 0, (co + kPanel - 1) / kPanel};
  g.th = ((h + dilation - 1) / dilation + kM - 1) / kM;
  g.tw = ((w + dilation - 1) / dilation + kM - 1) / kM;
  g.tiles = n * dilation * dilation * g.th * g.tw;
  // A block of tiles writes V and M (36 block (ci + co) floats) and reads them back, and reads U (36 ci co floats)
  // for 72 block ci co flops. Blocks sized to keep V and M in a quarter of the L2 cache (6 tiles at 64 channels
  // and more with 512 KiB; the rest of L2 holds the streams of U, x and out): NCSNv2 ngf 32 b64 409 -> 340 ms,
  // NCSN++ b8 758 -> 674 ms against fixed sizes of 24-96 tiles, whose V and M spilled L2 (8 to 12 rounds each,
  // in turns in one process). U is then read once per 6 tiles, from L3 where it fits (9.4 MiB at 256 channels);
  // where it is larger (over 16 MiB: 512 -> 256 channels, 18.9 MiB) a block takes at least 36 tiles (all of them,
  // where fewer: (8, 512, 8, 8) -> 256 ran 1.4x slower in blocks of 6). At least two blocks per thread where there
  // are tiles enough; where there are not, the output channels are split between threads instead (each reads its
  // part of U once; the input transform is repeated per part). Parts are whole panels of U. Neither the blocks
  // nor the parts change what is computed per tile and channel: the same bits.
  const int64_t threads = omp_get_max_threads();
  const int64_t fit = std::max<int64_t>(kRows, l2_bytes() / 4 / (kXi * 4 * (ci + co)) / kRows * kRows);
  const int64_t least = int64_t{kXi} * 4 * ci * co > (int64_t{16} << 20) ? 36 : kRows;
  const int64_t share = (g.tiles + 2 * threads - 1) / (2 * threads);
  const int64_t all = (g.tiles + kRows - 1) / kRows * kRows;
  g.block = std::min(all, std::max(least, std::min<int64_t>(fit, (share + kRows - 1) / kRows * kRows)));
  const int64_t blocks = (g.tiles + g.block - 1) / g.block;
  int64_t parts = 1;
  while (blocks * parts < 2 * threads && co % (16 * parts * 2) == 0) parts *= 2;
  const int64_t width = co / parts;
#pragma omp parallel
  {
    std::vector<float> v(static_cast<size_t>(kXi) * g.block * ci), m(static_cast<size_t>(kXi) * g.block * width);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < blocks * parts; ++task) {
      const int64_t t0 = (task / parts) * g.block, o0 = (task % parts) * width;
      const int nb = static_cast<int>(std::min<int64_t>(g.block, g.tiles - t0));
      run_block(g, x, u, bias, residual, divisor, apply_elu, out, t0, nb, o0, o0 + width, v.data(), m.data());
    }
  }
}

}  // namespace ncsn
