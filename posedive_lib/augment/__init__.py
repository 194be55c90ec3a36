"""Augmentation: the target condition gallery, per-identity generation (resumable) and filtering."""
