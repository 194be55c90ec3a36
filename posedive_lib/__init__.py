"""Pose-dIVE reproducibility library: body models, rendering, data, generator, augmentation, Re-ID."""
from .cpu_kernels import pin_cpu_kernels

__version__ = "0.1.0"
pin_cpu_kernels()  # before numpy loads and torch runs anything (see cpu_kernels.py)
