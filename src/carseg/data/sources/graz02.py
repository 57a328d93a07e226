"""Graz-02 cars with INRIA's IG02 masks: 420 street and parking photos (640x480), one ``.mask.K.png`` per car
(1 = visible car, 2 = its hidden part). Validation (the street figure): IG02's test photos that hold exactly one car."""
from collections import defaultdict
from typing import List

import numpy as np

from carseg.data.sources import Sample
from carseg.data.sources.git_blobs import GitBlobs
from carseg.data.sources.masks import binary_mask

REPO = "ivanvig/FCN-car-segmentation"
COMMIT = "056de3686c280f5d1a4b04454256c9f463729934"  # not HEAD: the data was deleted later
LICENCE = "Graz-02 (Opelt et al., PAMI 2006) with IG02 annotations (Marszalek & Schmid, CVPR 2007): research use, cite, never redistribute"
FOLDER = "data/ig02-cars"
VISIBLE = 1


def samples(blobs: GitBlobs) -> List[Sample]:
    """Every ``carsgraz_NNN.image.png`` with all its per-car masks (the combined ``.mask.png`` is not used)."""
    test = set(dict(blobs.read([f"{FOLDER}/cars_test.txt"]))[f"{FOLDER}/cars_test.txt"].decode().split())
    masks = defaultdict(list)
    images = []
    for path in blobs.list(f"{FOLDER}/cars"):
        name = path.rsplit("/", 1)[1]
        if name.startswith("carsgraz_") and name.endswith(".image.png"):
            images.append(path)
        elif name.startswith("carsgraz_") and name.count(".") == 3 and ".mask." in name:
            masks[name.split(".")[0]].append(path)
    found = []
    for path in images:
        stem = path.rsplit("/", 1)[1].split(".")[0]  # carsgraz_NNN
        if masks[stem]:
            one_car_test = stem in test and len(masks[stem]) == 1
            found.append(Sample(f"graz02.{stem.replace('_', '')}_0", path, tuple(sorted(masks[stem])), "street",
                                "valid" if one_car_test else "train"))
    return found


def mask(files: List[bytes]) -> np.ndarray:
    """The union of the cars' visible parts."""
    return np.maximum.reduce([binary_mask(data, lambda values: values == VISIBLE) for data in files])
