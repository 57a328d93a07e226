"""Network-resolution probabilities to the photo's size: what the per-photo step needs of a Predictor, without its
model, so that worker processes can hold it (``carseg.inference.streaming``)."""
from dataclasses import dataclass

import cv2
import numpy as np

from carseg.errors import CarsegError
from carseg.inference.guided_filter import guided_filter

REFINE = ("guided", "none")  # full-resolution edges: follow the photo's edges (guided filter), or bilinear only


@dataclass(frozen=True)
class Refinement:
    """How probabilities reach full size (``refine``) and where the mask starts (``threshold``)."""

    refine: str = "guided"
    threshold: float = 0.5

    def __post_init__(self) -> None:
        if self.refine not in REFINE:
            raise CarsegError(f"--refine {self.refine}: choose one of {', '.join(REFINE)}")

    def upsample(self, prob: np.ndarray, photo: np.ndarray) -> np.ndarray:
        """A network-resolution probability map at the resolution of ``photo`` (RGB or grey), its edges refined on
        the photo's own when ``refine`` is ``guided``."""
        # Upsample probabilities, not the thresholded mask: smooth full-resolution edges.
        if self.refine == "guided":
            return guided_filter(photo, prob)
        return cv2.resize(prob, (photo.shape[1], photo.shape[0]), interpolation=cv2.INTER_LINEAR)
