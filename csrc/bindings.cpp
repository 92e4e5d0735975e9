// ncsn_fast._C: the only file that touches pybind11. Arguments are data pointers (as integers), sizes and
// scalars; the Python side (ncsn_fast/ops) checks dtypes, shapes and devices before calling.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "normals_cpu.h"
#include "ops_cpu.h"
#ifdef NCSN_WITH_CUDA
#include "ops_cuda.h"
#endif

namespace py = pybind11;

template <typename T>
static T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

#ifdef NCSN_WITH_CUDA
static void check(int err, const char* what) {
  if (err != 0) throw std::runtime_error(std::string(what) + ": CUDA error " + std::to_string(err) + " (" +
                                         ncsn::cuda_error_string(err) + ")");
}
#endif

PYBIND11_MODULE(_C, m) {
  m.doc() = "ncsn_fast kernels for the CPU (and CUDA when built with nvcc); raw pointers, no libtorch";
  m.def("philox_words_cpu", [](uintptr_t out, uintptr_t ids, int64_t n, int64_t numel, uint64_t seed, uint32_t step) {
    py::gil_scoped_release nogil;
    ncsn::philox_words_cpu(ptr<uint32_t>(out), ptr<const int64_t>(ids), n, numel, seed, step);
  });
  m.def("normals_isa", []() { return std::string(ncsn::normals_block_isa()); });
  m.def("philox_normal_cpu", [](uintptr_t out, uintptr_t ids, int64_t n, int64_t numel, uint64_t seed, uint32_t step) {
    py::gil_scoped_release nogil;
    ncsn::philox_normal_cpu(ptr<float>(out), ptr<const int64_t>(ids), n, numel, seed, step);
  });
  m.def("sampler_update_cpu", [](uintptr_t x, uintptr_t p, uintptr_t h, int h_dtype, uintptr_t ids, int64_t n,
                                 int64_t channels, int64_t hw, bool channels_last, uint64_t seed, uint32_t step,
                                 uintptr_t coefs, uintptr_t mult) {
    py::gil_scoped_release nogil;
    ncsn::sampler_update_cpu(ptr<float>(x), ptr<float>(p), ptr<const void>(h), h_dtype, ptr<const int64_t>(ids), n,
                             channels, hw, channels_last, seed, step, ptr<const float>(coefs), ptr<const float>(mult));
  });
  m.def("instance_norm_plus_cpu", [](uintptr_t x, uintptr_t out, int dtype, int64_t n, int64_t channels, int64_t hw,
                                     bool channels_last, uintptr_t gamma, uintptr_t alpha, uintptr_t beta,
                                     int64_t param_stride, bool apply_elu, uintptr_t mu, uintptr_t rstd) {
    py::gil_scoped_release nogil;
    ncsn::instance_norm_plus_cpu(ptr<const void>(x), ptr<void>(out), dtype, n, channels, hw, channels_last,
                                 ptr<const float>(gamma), ptr<const float>(alpha), ptr<const float>(beta), param_stride,
                                 apply_elu, ptr<float>(mu), ptr<float>(rstd));
  });
  m.def("pool5x5_cpu", [](uintptr_t x, uintptr_t out, int dtype, bool is_max, int64_t n, int64_t channels,
                          int64_t height, int64_t width, bool channels_last) {
    py::gil_scoped_release nogil;
    ncsn::pool5x5_cpu(ptr<const void>(x), ptr<void>(out), dtype, is_max, n, channels, height, width, channels_last);
  });
  m.def("group_norm_act_cpu", [](uintptr_t x, uintptr_t out, int dtype, int64_t n, int64_t channels, int64_t hw,
                                 bool channels_last, int64_t groups, float eps, uintptr_t weight, uintptr_t bias,
                                 uintptr_t add, bool apply_silu) {
    py::gil_scoped_release nogil;
    ncsn::group_norm_act_cpu(ptr<const void>(x), ptr<void>(out), dtype, n, channels, hw, channels_last, groups, eps,
                             ptr<const float>(weight), ptr<const float>(bias), ptr<const float>(add), apply_silu);
  });
  m.def("elu_cpu", [](uintptr_t x, uintptr_t out, int dtype, int64_t numel) {
    py::gil_scoped_release nogil;
    ncsn::elu_cpu(ptr<const void>(x), ptr<void>(out), dtype, numel);
  });
  m.def("winograd_weights_cpu", [](uintptr_t w, uintptr_t u, int64_t co, int64_t ci) {
    py::gil_scoped_release nogil;
    ncsn::winograd_weights_cpu(ptr<const float>(w), ptr<float>(u), co, ci);
  });
  m.def("conv3x3_winograd_cpu", [](uintptr_t x, uintptr_t u, uintptr_t bias, uintptr_t residual, float divisor,
                                   bool apply_elu,
                                   uintptr_t out, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                                   int64_t dilation) {
    py::gil_scoped_release nogil;
    ncsn::conv3x3_winograd_cpu(ptr<const float>(x), ptr<const float>(u), ptr<const float>(bias),
                               ptr<const float>(residual), divisor, apply_elu, ptr<float>(out), n, h, w, ci, co,
                               dilation);
  });

#ifdef NCSN_WITH_CUDA
  m.def("has_cuda", []() { return true; });
  m.def("cuda_device_count", []() { return ncsn::cuda_device_count(); });
  m.def("philox_cuda", [](uintptr_t out, uintptr_t ids, int64_t n, int64_t numel, uintptr_t seed, uintptr_t step,
                          bool words, uintptr_t stream) {
    check(ncsn::philox_cuda(ptr<void>(out), ptr<const int64_t>(ids), n, numel, ptr<const int64_t>(seed),
                            ptr<const int64_t>(step), words, stream),
          "philox_cuda");
  });
  m.def("sampler_update_cuda", [](uintptr_t x, uintptr_t p, uintptr_t h, int h_dtype, uintptr_t ids, int64_t n,
                                  int64_t channels, int64_t hw, bool channels_last, uintptr_t seed, uintptr_t step,
                                  uintptr_t coefs, uintptr_t mult, uintptr_t stream) {
    check(ncsn::sampler_update_cuda(ptr<float>(x), ptr<float>(p), ptr<const void>(h), h_dtype, ptr<const int64_t>(ids),
                                    n, channels, hw, channels_last, ptr<const int64_t>(seed), ptr<const int64_t>(step),
                                    ptr<const float>(coefs), ptr<const float>(mult), stream),
          "sampler_update_cuda");
  });
  m.def("instance_norm_plus_cuda", [](uintptr_t x, uintptr_t out, int dtype, int64_t n, int64_t channels,
                                      int64_t hw, bool channels_last, uintptr_t gamma, uintptr_t alpha,
                                      uintptr_t beta, int64_t param_stride, bool apply_elu, uintptr_t work,
                                      uintptr_t stream) {
    check(ncsn::instance_norm_plus_cuda(ptr<const void>(x), ptr<void>(out), dtype, n, channels, hw, channels_last,
                                        ptr<const float>(gamma), ptr<const float>(alpha), ptr<const float>(beta),
                                        param_stride, apply_elu, ptr<float>(work), stream),
          "instance_norm_plus_cuda");
  });
  m.def("pool5x5_cuda", [](uintptr_t x, uintptr_t out, int dtype, bool is_max, int64_t n, int64_t channels,
                           int64_t height, int64_t width, bool channels_last, uintptr_t stream) {
    check(ncsn::pool5x5_cuda(ptr<const void>(x), ptr<void>(out), dtype, is_max, n, channels, height, width,
                             channels_last, stream),
          "pool5x5_cuda");
  });
  m.def("group_norm_act_cuda", [](uintptr_t x, uintptr_t out, int dtype, int64_t n, int64_t channels, int64_t hw,
                                  bool channels_last, int64_t groups, float eps, uintptr_t weight, uintptr_t bias,
                                  uintptr_t add, bool apply_silu, uintptr_t work, uintptr_t stream) {
    check(ncsn::group_norm_act_cuda(ptr<const void>(x), ptr<void>(out), dtype, n, channels, hw, channels_last, groups,
                                    eps, ptr<const float>(weight), ptr<const float>(bias), ptr<const float>(add),
                                    apply_silu, ptr<float>(work), stream),
          "group_norm_act_cuda");
  });
  m.def("elu_cuda", [](uintptr_t x, uintptr_t out, int dtype, int64_t numel, uintptr_t stream) {
    check(ncsn::elu_cuda(ptr<const void>(x), ptr<void>(out), dtype, numel, stream), "elu_cuda");
  });
#else
  m.def("has_cuda", []() { return false; });
#endif
}
