"""Build script. Today the package is pure Python; the fused-op extension `ncsn_fast._C`
(C++ for the CPU, CUDA when nvcc is found, bound with pybind11 without libtorch) hooks in here."""

from setuptools import setup

ext_modules: list = []  # filled by the fused-ops build (csrc/)

setup(ext_modules=ext_modules)
