"""The real Carvana development set: 216 studio photos of 30 cars (1918x1280) with Kaggle's GIF masks, from two
public repositories that hold a few cars each. Six cars are held out for validation (the studio figure)."""
import re
from typing import List

import numpy as np

from carseg.data.sources import Sample
from carseg.data.sources.git_blobs import GitBlobs
from carseg.data.sources.masks import binary_mask

REPOS = {
    "senetals/carvana-unet-workshop": ("9c759dd1ae2b4344e2702d1dcc87fbd071f996b2", "carvana_small", "/images/", "/masks/"),
    "TomorrowlandD/Pytorch-UNet": (
        "b551a5658f3fc4e37dffddc48f5fc02ca29242bd",
        "exp01_unet_final_bilinear_full5088_e5_bs1_lr1e-5_scale0.5_noamp_workers2/selected_original_data",
        "/imgs/", "/masks/",
    ),
}
LICENCE = "Kaggle Carvana Image Masking Challenge data: non-commercial research use; never redistribute"
KIND = "studio"
# The validation cars of configs/real.yml (prepare_dataset.py --datapath data/real, random state 42): comparable figures.
VALID_CARS = frozenset({"0de66245f268", "0ee135a3cccc", "36a3f7f77e85", "430f0cb5666c", "8d5423cb763c", "a078586ccdee"})
_VIEW = re.compile(r"([0-9a-f]{12})_([0-9]{2})\.jpg$")


def samples(blobs: GitBlobs) -> List[Sample]:
    """Every ``<carid>_<NN>.jpg`` with its ``_mask.gif``."""
    _, folder, images, masks = REPOS[blobs.repo]
    found = []
    for path in blobs.list(folder):
        match = _VIEW.search(path)
        if images in path and match:
            car, view = match.groups()
            mask = path.replace(images, masks)[: -len(".jpg")] + "_mask.gif"
            found.append(Sample(f"carvana.{car}_{view}", path, (mask,), KIND, "valid" if car in VALID_CARS else "train"))
    return found


def mask(files: List[bytes]) -> np.ndarray:
    return binary_mask(files[0], lambda values: values > 0)
