"""Build the Cython extensions of fasttsne (metadata lives in pyproject.toml)."""

import os
import shutil
import subprocess
import sysconfig
import tempfile
import warnings
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

_OPENMP_PROBE = """
#include <omp.h>
int main(void) { return omp_get_max_threads() > 0 ? 0 : 1; }
"""


def _openmp_flag():
    """Return ``-fopenmp`` when the C compiler accepts it, else ``None``."""
    compiler = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    compiler = compiler.split()[0]
    if shutil.which(compiler) is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "probe.c"
        source.write_text(_OPENMP_PROBE)
        result = subprocess.run(
            [compiler, "-fopenmp", str(source), "-o", str(Path(tmp) / "probe")],
            capture_output=True,
            check=False,
        )
    return "-fopenmp" if result.returncode == 0 else None


def _extensions():
    """One extension per ``fasttsne/_cython/*.pyx``, OpenMP when available."""
    flag = _openmp_flag()
    if flag is None:
        warnings.warn(
            "The C compiler does not support OpenMP: fasttsne is built serially "
            "(n_jobs has no effect; tests/_cython/test_openmp.py fails unless "
            "FASTTSNE_ALLOW_SERIAL=1).",
            stacklevel=1,
        )
    compile_args = ["-O3"] + ([flag] if flag else [])
    link_args = [flag] if flag else []
    extensions = []
    for pyx in sorted(Path("fasttsne/_cython").glob("*.pyx")):
        extensions.append(
            Extension(
                f"fasttsne._cython.{pyx.stem}",
                [str(pyx)],
                include_dirs=[np.get_include()],
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
                extra_compile_args=compile_args,
                extra_link_args=link_args,
            )
        )
    return extensions


class _BuildExt(build_ext):
    """``build_ext`` that forbids contracting ``a * b + c`` into an FMA.

    The kernels promise NumPy's bits (``descent_step_2d``) or the same bits
    on every platform; an FMA rounds once where NumPy rounds twice, and
    clang (``-ffp-contract=on``) and GCC on aarch64 contract by default.
    The flag is GCC's and clang's, so MSVC, which does not contract without
    ``/fp:fast``, is left alone.
    """

    def build_extensions(self):
        if self.compiler.compiler_type != "msvc":
            for extension in self.extensions:
                # A new list: the extensions share one compile_args list.
                extension.extra_compile_args = [
                    *extension.extra_compile_args,
                    "-ffp-contract=off",
                ]
        super().build_extensions()


def _directives():
    """Cython directives for every module; FASTTSNE_CYTHON_DEBUG=1 turns checks on."""
    debug = os.environ.get("FASTTSNE_CYTHON_DEBUG", "0") == "1"
    return {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": False,
        "initializedcheck": debug,
        "cdivision": not debug,
    }


setup(
    ext_modules=cythonize(_extensions(), compiler_directives=_directives()),
    cmdclass={"build_ext": _BuildExt},
)
