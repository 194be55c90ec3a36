"""Pose-dIVE reproducibility library: body models, rendering, data, generator, augmentation, Re-ID."""
__version__ = "0.1.0"
