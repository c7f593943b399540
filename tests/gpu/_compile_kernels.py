"""Compile every Triton kernel for NVIDIA GPUs, without a GPU (a test helper).

Run as ``python -m tests.gpu._compile_kernels ARCH`` with ``TRITON_INTERPRET``
unset: Triton lowers each kernel, at the tile configurations that
``fasttsne.gpu._launchers`` uses on a device, through its IRs to PTX and a
cubin for compute capability ARCH (90: H100/H200) with the ptxas that ships
in the triton wheel. This checks what the interpreter does not: power-of-two
tiles, layouts, dtypes of every operation, register allocation. Prints one
line per kernel: its name, configuration, registers and spilled bytes.
"""

import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.backends.nvidia import compiler as nvidia_compiler
from triton.compiler import ASTSource

from fasttsne.gpu import _kernels

# (kernel, pointer dtypes by argument, integer arguments, constexprs, num_warps):
# the tiles that fasttsne.gpu._launchers chooses on a device.
_F32, _F64 = "*fp32", "*fp64"
CONFIGS = [
    (
        "_exact_repulsion_kernel",
        {"rows_ptr": _F32, "cols_ptr": _F32, "force_ptr": _F32, "sum_w_ptr": _F32},
        ["n_rows", "n_cols"],
        {
            "N_DIMS": 2,
            "SKIP_SELF": True,
            "UNIT_DOF": True,
            "BLOCK_M": 128,
            "BLOCK_N": 32,
        },
        8,
    ),
    (
        "_exact_repulsion_kernel",
        {"rows_ptr": _F32, "cols_ptr": _F32, "force_ptr": _F32, "sum_w_ptr": _F32},
        ["n_rows", "n_cols"],
        {
            "N_DIMS": 3,
            "SKIP_SELF": False,
            "UNIT_DOF": False,
            "BLOCK_M": 16,
            "BLOCK_N": 32,
        },
        4,
    ),
    (
        "_exact_repulsion_kernel",
        {"rows_ptr": _F64, "cols_ptr": _F64, "force_ptr": _F64, "sum_w_ptr": _F64},
        ["n_rows", "n_cols"],
        {
            "N_DIMS": 1,
            "SKIP_SELF": True,
            "UNIT_DOF": False,
            "BLOCK_M": 64,
            "BLOCK_N": 16,
        },
        4,
    ),
    (
        "_attraction_kernel",
        {
            "indptr_ptr": "*i32",
            "indices_ptr": "*i32",
            "p_ptr": _F32,
            "rows_ptr": _F32,
            "cols_ptr": _F32,
            "force_ptr": _F32,
            "kl_ptr": _F32,
        },
        ["n_rows"],
        {
            "N_DIMS": 2,
            "COMPUTE_ERROR": True,
            "BLOCK_M": 32,
            "BLOCK_K": 16,
        },
        4,
    ),
    (
        "_attraction_kernel",
        {
            "indptr_ptr": "*i64",
            "indices_ptr": "*i64",
            "p_ptr": _F64,
            "rows_ptr": _F64,
            "cols_ptr": _F64,
            "force_ptr": _F64,
            "kl_ptr": _F64,
        },
        ["n_rows"],
        {
            "N_DIMS": 3,
            "COMPUTE_ERROR": False,
            "BLOCK_M": 32,
            "BLOCK_K": 16,
        },
        4,
    ),
    (
        "_partial_sum_kernel",
        {"values_ptr": _F32, "sums_ptr": _F64},
        ["n_values"],
        {"BLOCK": 1024, "N_STEPS": 8},
        4,
    ),
    (
        "_box_index_kernel",
        {"points_ptr": _F64, "boxes_ptr": "*i32", "geometry_ptr": _F64},
        ["n_points", "n_boxes0", "n_boxes1"],
        {"N_DIMS": 2, "BLOCK": 128},
        4,
    ),
    (
        "_spread_kernel",
        {
            "points_ptr": _F64,
            "box_starts_ptr": "*i32",
            "charges_ptr": _F64,
            "geometry_ptr": _F64,
        },
        ["n_boxes", "n_boxes1", "n_nodes1", "plane"],
        {"N_DIMS": 2, "P": 3, "NODES": 16, "BLOCK_B": 8, "BLOCK_P": 16},
        4,
    ),
    (
        "_spread_kernel",
        {
            "points_ptr": _F64,
            "box_starts_ptr": "*i32",
            "charges_ptr": _F64,
            "geometry_ptr": _F64,
        },
        ["n_boxes", "n_boxes1", "n_nodes1", "plane"],
        {"N_DIMS": 1, "P": 5, "NODES": 8, "BLOCK_B": 16, "BLOCK_P": 16},
        4,
    ),
    (
        "_interpolate_kernel",
        {
            "points_ptr": _F64,
            "boxes_ptr": "*i32",
            "order_ptr": "*i64",
            "potentials_ptr": _F64,
            "self_table_ptr": _F64,
            "force_ptr": _F64,
            "z_ptr": _F64,
            "geometry_ptr": _F64,
        },
        ["n_points", "n_boxes1", "n_nodes1", "plane"],
        {"N_DIMS": 2, "P": 3, "P_PAD": 4, "BLOCK": 32},
        4,
    ),
    (
        "_interpolate_kernel",
        {
            "points_ptr": _F64,
            "boxes_ptr": "*i32",
            "order_ptr": "*i64",
            "potentials_ptr": _F64,
            "self_table_ptr": _F64,
            "force_ptr": _F64,
            "z_ptr": _F64,
            "geometry_ptr": _F64,
        },
        ["n_points", "n_boxes1", "n_nodes1", "plane"],
        {"N_DIMS": 1, "P": 12, "P_PAD": 16, "BLOCK": 4},
        4,
    ),
    (
        "_knn_kernel",
        {"queries_ptr": _F32, "refs_ptr": _F32, "keys_ptr": "*i64"},
        [
            "n_queries",
            "n_refs",
            "n_features",
            "stride_q_point",
            "stride_q_feature",
            "stride_r_point",
            "stride_r_feature",
        ],
        {"SKIP_SELF": True, "K_PAD": 128, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_F": 1},
        4,
    ),
    (
        "_knn_kernel",
        {"queries_ptr": _F64, "refs_ptr": _F64, "keys_ptr": "*i64"},
        [
            "n_queries",
            "n_refs",
            "n_features",
            "stride_q_point",
            "stride_q_feature",
            "stride_r_point",
            "stride_r_feature",
        ],
        {"SKIP_SELF": False, "K_PAD": 16, "BLOCK_M": 16, "BLOCK_N": 64, "BLOCK_F": 1},
        4,
    ),
]


def _signature(kernel, pointers, integers, constexprs):
    """Triton's signature dict: every argument of the kernel, in order."""
    signature = {}
    for name in kernel.arg_names:
        if name in constexprs:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
        elif name in integers:
            signature[name] = "i32"
        elif name == "params_ptr":
            signature[name] = _F64
        else:
            raise KeyError(f"{kernel.__name__}: no type for argument {name!r}")
    return signature


def _gpu_name(arch):
    """ptxas' name of the architecture Triton compiles for (sm_90a on Hopper)."""
    return f"sm_{arch}a" if arch == 90 else f"sm_{arch}"


def _resources(ptx, arch):
    """(registers, spilled bytes) from ptxas' verbose report of the PTX."""
    ptxas = nvidia_compiler.get_ptxas(arch).path
    with tempfile.NamedTemporaryFile("w", suffix=".ptx") as source:
        source.write(ptx)
        source.flush()
        report = subprocess.run(
            [
                ptxas,
                "-v",
                f"--gpu-name={_gpu_name(arch)}",
                source.name,
                "-o",
                "/dev/null",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stderr
    registers = int(re.search(r"Used (\d+) registers", report).group(1))
    spills = sum(int(n) for n in re.findall(r"(\d+) bytes spill", report))
    return registers, spills


def main(arch):
    """Compile every configuration for ``sm_{arch}``; print their resources."""
    for name, pointers, integers, constexprs, num_warps in CONFIGS:
        kernel = getattr(_kernels, name)
        source = ASTSource(
            kernel, _signature(kernel, pointers, integers, constexprs), constexprs
        )
        compiled = triton.compile(
            source,
            target=GPUTarget("cuda", arch, 32),
            options={"num_warps": num_warps},
        )
        assert compiled.asm["cubin"]
        registers, spills = _resources(compiled.asm["ptx"], arch)
        dtype = next(iter(pointers.values()))
        print(
            f"{name} {dtype} {constexprs} warps={num_warps}: "
            f"{registers} registers, {spills} bytes spilled"
        )


if __name__ == "__main__":
    main(int(sys.argv[1]))
