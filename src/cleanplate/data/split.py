"""The documented split of ../shared/data: what trains the shipped model and what is held out.

Held out (never seen in training): two people (one VideoMatte240K, one P3M), all alphamatting.com
objects (their licence is unstated, so they may never train the shipped model anyway), and six
backgrounds. Training may only use subjects and backgrounds whose licence permits it.
"""

from __future__ import annotations

HOLDOUT_SUBJECTS = ("vm_valid_00011", "p3m_p_0a78cf02")
HOLDOUT_SUBJECT_PREFIXES = ("am_",)
HOLDOUT_BACKGROUNDS = (
    "kodak_kodim08",
    "kodak_kodim23",
    "opencv_aloeL",
    "opencv_graf1",
    "pxhere_499582_landscape_water",
    "skimage_brick",
)
# Licences that may train a model we ship (see manifest.json). Anything else is eval-only.
SHIPPABLE_LICENSE_PREFIXES = ("MIT", "CC0", "Apache", "public domain", "unrestricted")


def is_holdout_subject(subject_id: str) -> bool:
    return subject_id in HOLDOUT_SUBJECTS or subject_id.startswith(HOLDOUT_SUBJECT_PREFIXES)


def is_holdout_background(stem: str) -> bool:
    return stem in HOLDOUT_BACKGROUNDS


def license_allows_training(license_text: str) -> bool:
    return license_text.strip().startswith(SHIPPABLE_LICENSE_PREFIXES)
