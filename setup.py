"""Builds ncsn_fast._C: C++ kernels for the CPU (OpenMP) and, when nvcc is found, the CUDA kernels
(sm_80, sm_90 and PTX for newer cards), bound with pybind11 without libtorch, so one build serves any
torch version and the CUDA part compiles on a machine without a GPU.

Knobs: NCSN_FAST_CUDA=0 skips CUDA, =1 requires it; CUDA_HOME points at the toolkit (default: from nvcc);
NCSN_FAST_BUILD_JOBS caps the parallel C++ compiles (default: one per CPU; the nvcc runs are one per CPU).
"""

import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

HERE = Path(__file__).parent.resolve()
CSRC = HERE / "csrc"
HEADERS = sorted(str(p.relative_to(HERE)) for p in [*CSRC.glob("*.h"), *CSRC.glob("*.cuh")])
CUDA_SOURCES = sorted(CSRC.glob("*.cu"))
ARCH_FLAGS = ["-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
              "-gencode", "arch=compute_90,code=compute_90"]


def find_cuda():
    """(nvcc path, CUDA home) or None; NCSN_FAST_CUDA=0 disables, =1 makes a missing nvcc an error."""
    want = os.environ.get("NCSN_FAST_CUDA", "auto")
    if want == "0":
        return None
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH")
    nvcc = str(Path(home) / "bin" / "nvcc") if home else shutil.which("nvcc")
    if not nvcc or not Path(nvcc).exists():
        if want == "1":
            raise RuntimeError("NCSN_FAST_CUDA=1 but nvcc was not found (set CUDA_HOME)")
        return None
    if not home:
        home = str(Path(os.path.realpath(nvcc)).parent.parent)
        if not (Path(home) / "include" / "cuda_runtime.h").exists():
            home = "/usr/local/cuda"
    return nvcc, home


class BuildExt(build_ext):
    """Compiles csrc/*.cu with nvcc into objects linked into the extension (with the static CUDA runtime)."""

    def build_extensions(self):
        cuda = find_cuda()
        for ext in self.extensions:
            if cuda is None:
                continue
            nvcc, home = cuda
            out_dir = Path(self.build_temp) / "cuda"
            out_dir.mkdir(parents=True, exist_ok=True)
            objects = [str(out_dir / (src.stem + ".o")) for src in CUDA_SOURCES]
            cmds = [[nvcc, "-c", str(src), "-o", obj, "-O3", "-std=c++17", f"-I{CSRC}", "-Xcompiler", "-fPIC",
                     "--expt-relaxed-constexpr", *ARCH_FLAGS] for src, obj in zip(CUDA_SOURCES, objects)]
            for cmd in cmds:
                print(" ".join(cmd))
            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # one nvcc per CPU
                list(pool.map(lambda cmd: subprocess.run(cmd, check=True), cmds))
            lib_dir = next((d for d in (Path(home) / "lib64", Path(home) / "lib")
                            if (d / "libcudart_static.a").exists()), Path(home) / "lib64")
            ext.extra_objects += objects
            ext.define_macros.append(("NCSN_WITH_CUDA", "1"))
            ext.include_dirs.append(str(Path(home) / "include"))
            ext.library_dirs.append(str(lib_dir))
            ext.libraries += ["cudart_static", "dl", "rt", "pthread"]
        super().build_extensions()


ext = Pybind11Extension(
    "ncsn_fast._C",
    sources=sorted(str(p.relative_to(HERE)) for p in CSRC.glob("*.cpp")),
    include_dirs=[str(CSRC)],
    depends=HEADERS + [str(p.relative_to(HERE)) for p in CUDA_SOURCES],
    # -ffp-contract=off: no FMA contraction, so results do not depend on the CPU; -fno-trapping-math (FP
    # exceptions are never trapped in Python) lets GCC vectorise selects such as the ELU's; -fno-math-errno (errno
    # is never read) lets it vectorise sqrt, as the normals' Box-Muller needs (normals_cpu.h).
    extra_compile_args=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-trapping-math", "-fno-math-errno"],
    extra_link_args=["-fopenmp"],
    cxx_std=17,
)

ParallelCompile("NCSN_FAST_BUILD_JOBS").install()  # the C++ sources one compiler per CPU (NCSN_FAST_BUILD_JOBS caps)
setup(ext_modules=[ext], cmdclass={"build_ext": BuildExt})
