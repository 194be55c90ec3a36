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
    reid_iterations: int  # Re-ID training iterations of every experiment (notebooks 4 to 6)
    per_id_counts: tuple  # images per identity compared in the ablation (plus augment_per_id)
    filter_taus: tuple  # filter thresholds whose filtered augmentation trains a Re-ID model
    identity_cosines: tuple  # identity-filter thresholds (Re-ID cosine to the reference), the same
    generator_stage2_steps: int  # fine-tuning steps of the tiny generator on the train split (stage 2)


PROFILES = {
    "smoke": Profile("smoke", gallery_size=4, augment_gallery_size=8, augment_per_id=2, sample_steps=2, tsne_per_set=40,
                     reid_iterations=20, per_id_counts=(1,), filter_taus=(0.6,), identity_cosines=(0.0,),
                     generator_stage2_steps=4),
    # quick: 4 images per identity and 10 DDIM steps; short Re-ID runs (about 80 s each with one thread, two side by
    # side on 2 CPU cores), because notebooks 4 to 6 train 60 of them (runs shared between notebooks train once);
    # 400 generator fine-tuning steps (12 min; 1,200 keep more identity but take 36 min, see the README)
    "quick": Profile("quick", gallery_size=12, augment_gallery_size=512, augment_per_id=4, sample_steps=10, tsne_per_set=600,
                     reid_iterations=400, per_id_counts=(2,), filter_taus=(0.3, 0.6), identity_cosines=(0.5,),
                     generator_stage2_steps=400),
    "full": Profile("full", gallery_size=24, augment_gallery_size=2048, augment_per_id=15, sample_steps=25, tsne_per_set=1500,
                    reid_iterations=1000, per_id_counts=(1, 5, 10),
                    filter_taus=(0.15, 0.3, 0.45, 0.6, 0.75, 0.9), identity_cosines=(0.3, 0.5, 0.7),
                    generator_stage2_steps=1200),
}


def profile_settings(name: str) -> Profile:
    """The profile called ``name``, or a clear error naming the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}: use one of {sorted(PROFILES)}")
    return PROFILES[name]
