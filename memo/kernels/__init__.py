"""Kernel interpolation and kernel ridge regression at full-MNIST scale (trials/kernel.py).

Modules: ``build`` (kernel blocks, K built into one Fortran-ordered array, K·V on the fly),
``solve`` (in-place Cholesky, mixed-precision refinement, preconditioned CG; many right-hand
sides at once), ``group`` (points that share one K and one factor), ``memory`` (the estimate
before allocating, the machine's free memory).
"""

from memo.kernels.build import KERNELS, build_lower, cross, kernel_block, matvec
from memo.kernels.group import solve_group
from memo.kernels.memory import available_bytes, choose, device_bytes, needed_bytes
from memo.kernels.solve import NotPositiveDefinite, Solution, cholesky_many, fit

__all__ = [
    "KERNELS",
    "NotPositiveDefinite",
    "Solution",
    "available_bytes",
    "build_lower",
    "cholesky_many",
    "choose",
    "cross",
    "device_bytes",
    "kernel_block",
    "matvec",
    "needed_bytes",
    "fit",
    "solve_group",
]
