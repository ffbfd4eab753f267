"""Synthetic training samples: a subject composited over a background, with a perturbed plate.

Sample ``i`` is a pure function of ``(seed, i)``, so a resumed run sees exactly the samples it
would have seen, whatever the number of loader workers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..data import perturb
from ..data.procedural import procedural_subject
from ..data.split import is_holdout_background, is_holdout_subject, license_allows_training
from ..data.subjects import (
    Subject,
    list_backgrounds,
    list_subject_ids,
    load_background,
    load_subject,
    manifest_info,
)

DARK = (0.1, 0.45)  # a dark camouflage blob's share of the background's light; cast shadows keep 50-85 %
DARK_OWN = (0.1, 0.85)  # the same with the subject's own texture: overlaps the shadows' range, texture tells them apart


@dataclass
class Mix:
    """Probabilities of each kind of sample and of each augmentation."""

    real: float = 0.6
    procedural: float = 0.3
    empty: float = 0.1
    second_subject: float = 0.15
    shadow: float = 0.3
    background_change: float = 0.25
    colour_jitter: float = 0.5
    levels: tuple[float, float, float] = (0.35, 0.35, 0.3)  # low, medium, high plate drift
    photo_texture: float = 0.0  # share of procedural subjects textured with photo crops
    large: float = 0.0  # share of subjects placed large (up to 1.5x the frame height)
    structure: float = 0.0  # share of procedural subjects with leaves, fur, lattices or photo outlines
    plate_texture: float = 0.0  # share of procedural subjects textured with crops of this sample's own plate
    camouflage: float = 0.0  # share of subjects with a blob of the background's own colours inside (alpha kept)
    volume: float = 0.0  # share of procedural subjects with a hair volume or a canopy of leaves (partial coverage)
    volume_colour: float = 0.0  # share of those volumes in a colour of their own, unlike the body's
    camouflage_dark: float = 0.0  # share of camouflage blobs painted as the background at DARK of its light
    dark_own_texture: float = 0.0  # share of those dark blobs keeping the subject's own texture (at DARK_OWN)


def load_training_pool(
    gt_dir: str | Path,
    background_dirs: list[str | Path],
    *,
    long_side: int = 768,
    include_holdout: bool = False,
    require_license: bool = True,
) -> tuple[list[Subject], list[np.ndarray], list[str]]:
    """Subjects and backgrounds allowed to train; also the list of sources used (for the model card)."""
    infos = manifest_info(Path(gt_dir))
    subjects, sources = [], []
    for sid in list_subject_ids(gt_dir):
        info = infos.get(sid, {})
        if not include_holdout and is_holdout_subject(sid):
            continue
        if require_license and infos and not license_allows_training(str(info.get("license", ""))):
            continue
        subjects.append(load_subject(gt_dir, sid, long_side=long_side, info=info))
        sources.append(f"subject {sid} ({info.get('dataset', '?')}, {info.get('license', '?')})")
    backgrounds = []
    for folder in background_dirs:
        for path in list_backgrounds(folder):
            if not include_holdout and is_holdout_background(path.stem):
                continue
            backgrounds.append(load_background(path, long_side=long_side))
            sources.append(f"background {path.name}")
    return subjects, backgrounds, sources


def make_sample(
    rng: np.random.Generator, subjects: list[Subject], backgrounds: list[np.ndarray], size: tuple[int, int], mix: Mix
) -> dict[str, np.ndarray]:
    """One (src, plate, alpha, foreground) sample of ``size`` = (h, w), float32 in [0, 1]."""
    h, w = size
    bg = perturb.cover_crop(backgrounds[rng.integers(len(backgrounds))], h, w, rng, zoom=rng.uniform(1.0, 1.6))
    if rng.random() < mix.colour_jitter:
        bg = perturb.colour_jitter(bg, rng, 0.1)
    premult = np.zeros((h, w, 3), np.float32)
    pha = np.zeros((h, w), np.float32)
    kind = rng.choice(3, p=[mix.real, mix.procedural, mix.empty])
    n_subjects = 0 if kind == 2 else 1 + int(rng.random() < mix.second_subject)
    for _ in range(n_subjects):
        if kind == 0 and subjects:
            subject = subjects[rng.integers(len(subjects))]
        else:
            # Textures cut from the very background behind the subject: only the plate tells them apart.
            own = mix.plate_texture and rng.random() < mix.plate_texture
            subject = procedural_subject(
                rng,
                size=int(max(h, w) * rng.uniform(0.5, 1.0)),
                photos=[bg] if own else backgrounds,
                photo_p=mix.photo_texture,
                structure_p=mix.structure,
                volume_p=mix.volume,
                volume_colour_p=mix.volume_colour,
            )
        frac = (0.8, 1.5) if mix.large and rng.random() < mix.large else (0.4, 1.1)
        f, a = perturb.place_subject(subject, h, w, rng, height_frac=frac)
        if rng.random() < mix.colour_jitter:
            f = perturb.colour_jitter(f, rng)
        if mix.camouflage and rng.random() < mix.camouflage:  # no draw at 0: older configs keep their samples
            dark = mix.camouflage_dark and rng.random() < mix.camouflage_dark  # no draw at 0 (older configs)
            own = dark and mix.dark_own_texture and rng.random() < mix.dark_own_texture  # no draw at 0
            shade = float(rng.uniform(*(DARK_OWN if own else DARK))) if dark else None
            f = perturb.camouflage(f, a, bg, rng, shade=shade, own_texture=bool(own))
        # Later subjects go in front of earlier ones ("over" in premultiplied colour).
        premult = f * a[..., None] + premult * (1 - a[..., None])
        pha = a + pha * (1 - a)
    fgr = np.where(pha[..., None] > 0, premult / np.maximum(pha, 1e-6)[..., None], 0).astype(np.float32)
    scene = bg
    if n_subjects and rng.random() < mix.shadow:
        scene = perturb.cast_shadow(scene, pha, rng)
    if rng.random() < mix.background_change:
        scene = perturb.background_change(scene, rng)
    src = perturb.composite(fgr, pha, scene)
    src = perturb.photometric(src, rng, perturb.DRIFT["low"])
    level = perturb.LEVELS[rng.choice(3, p=list(mix.levels))]
    plate = perturb.perturb_plate(bg, rng, level)
    return {"src": src, "bgr": plate, "pha": pha, "fgr": fgr}


def to_tensors(sample: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    out = {}
    for key, arr in sample.items():
        t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
        out[key] = t.unsqueeze(0) if t.ndim == 2 else t.permute(2, 0, 1)
    return out


class SyntheticMatting(Dataset):
    def __init__(
        self,
        subjects: list[Subject],
        backgrounds: list[np.ndarray],
        size: tuple[int, int],
        *,
        seed: int = 0,
        length: int = 10**9,
        mix: Mix | None = None,
    ) -> None:
        self.subjects, self.backgrounds, self.size = subjects, backgrounds, size
        self.seed, self.length, self.mix = seed, length, mix or Mix()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        return to_tensors(make_sample(rng, self.subjects, self.backgrounds, self.size, self.mix))
