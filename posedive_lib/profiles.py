"""Run sizes of the embedded default: smoke (seconds, for tests), quick (minutes on a laptop CPU), full."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    gallery_size: int  # condition-gallery samples drawn for the overview figure


PROFILES = {
    "smoke": Profile("smoke", gallery_size=4),
    "quick": Profile("quick", gallery_size=12),
    "full": Profile("full", gallery_size=24),
}
