"""Run sizes of the embedded default: smoke (seconds, for tests), quick (minutes on a laptop CPU), full."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    gallery_size: int  # condition-gallery samples drawn for the overview figure
    augment_gallery_size: int  # target conditions the augmentation draws from
    augment_per_id: int  # generated images per identity (the paper's best: 15)
    sample_steps: int  # DDIM steps when generating the augmentation
    tsne_per_set: int  # images per set in the pose t-SNE


PROFILES = {
    "smoke": Profile("smoke", gallery_size=4, augment_gallery_size=8, augment_per_id=2, sample_steps=2, tsne_per_set=40),
    # quick: 6 images per identity and 10 DDIM steps keep the chain near 30 minutes on 2 CPU cores
    "quick": Profile("quick", gallery_size=12, augment_gallery_size=512, augment_per_id=6, sample_steps=10, tsne_per_set=600),
    "full": Profile("full", gallery_size=24, augment_gallery_size=2048, augment_per_id=15, sample_steps=25, tsne_per_set=1500),
}
