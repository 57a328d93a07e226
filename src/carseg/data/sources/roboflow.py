"""The Roboflow "car-segmentation" export (480x360, stretched; mask value 8 = car). Only its own photos are used:
every ``IMG_20201123_*`` file (reserved: carseg is judged on that set) and every CamVid frame it repeats are dropped.
Roboflow's augmented copies of one photo share a group; a fixed fifth of the groups validates (the street figure)."""
import re
import zlib
from typing import List

import numpy as np

from carseg.data.sources import Sample
from carseg.data.sources.git_blobs import GitBlobs
from carseg.data.sources.masks import binary_mask

REPO = "bzdmr0/Car-Segmentation-by-Encoders-Internship-Task"
COMMIT = "8b9df3b5092c66cd3a8dd8ce1ff93e3934676492"
LICENCE = "Roboflow car-segmentation export, CC BY 4.0"
FOLDER = "car-segmentation-dataset"
CAR = 8
_DROP = re.compile(r"IMG_20201123_|(^|/)(0001TP|0006R0|0016E5|Seq05VD)_")
_EXPORT = re.compile(r"_(png|jpg|jpeg)\.rf\.[0-9a-f]+$")


def _group(stem: str) -> str:
    """The photo a Roboflow file was made from: its name before ``_png.rf.<hash>``, without ``_`` (the group separator)."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", _EXPORT.sub("", stem)).strip("-")


def samples(blobs: GitBlobs) -> List[Sample]:
    found, views = [], {}
    for path in blobs.list(FOLDER):
        if "/images/" not in path or not path.endswith(".png") or _DROP.search(path):
            continue
        group = _group(path.rsplit("/", 1)[1][: -len(".png")])
        views[group] = views.get(group, -1) + 1
        split = "valid" if zlib.crc32(group.encode()) % 5 == 0 else "train"
        found.append(Sample(f"roboflow.{group}_{views[group]}", path, (path.replace("/images/", "/masks/"),), "street", split))
    return found


def mask(files: List[bytes]) -> np.ndarray:
    return binary_mask(files[0], lambda values: values == CAR)
