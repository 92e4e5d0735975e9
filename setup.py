"""Builds ncsn_fast._C: C++ kernels for the CPU (OpenMP), bound with pybind11 without libtorch, so one
build serves any torch version. (CUDA sources in csrc/*.cu are compiled by nvcc when it is found.)"""

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

cpu = Pybind11Extension(
    "ncsn_fast._C",
    sources=["csrc/bindings.cpp", "csrc/philox_cpu.cpp", "csrc/langevin_step_cpu.cpp",
             "csrc/instance_norm_plus_cpu.cpp"],
    include_dirs=["csrc"],
    depends=["csrc/common.h", "csrc/philox.h", "csrc/langevin_step.h", "csrc/instance_norm_plus.h",
             "csrc/ops_cpu.h"],
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off"],
    extra_link_args=["-fopenmp"],
    cxx_std=17,
)

setup(ext_modules=[cpu], cmdclass={"build_ext": build_ext})
