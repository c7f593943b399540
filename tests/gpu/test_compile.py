"""Every kernel compiles for an H100/H200 (sm_90), on a machine without a GPU.

The interpreter runs a kernel's Python, not Triton's compiler: tile shapes,
layouts and the dtypes of the operations are only checked by compiling. The
triton wheel ships ptxas, so the kernels are lowered to a cubin here, at the
launchers' device tiles, in a subprocess without ``TRITON_INTERPRET``.
"""

import os
import subprocess
import sys

import pytest

nvidia = pytest.importorskip("triton.backends.nvidia.compiler")


def test_kernels_compile_for_sm90_without_spills():
    """All configurations compile, and none spills registers to memory."""
    environment = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    try:
        nvidia.get_ptxas(90).path
    except Exception as exc:  # pylint: disable=broad-except
        pytest.skip(f"no ptxas in this triton: {exc}")
    result = subprocess.run(
        [sys.executable, "-m", "tests.gpu._compile_kernels", "90"],
        capture_output=True,
        text=True,
        env=environment,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert len(lines) >= 13
    for line in lines:
        assert line.endswith(" 0 bytes spilled"), line
