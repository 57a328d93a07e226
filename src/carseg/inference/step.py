"""The per-photo step after the forward pass, the same in every command (folder, service, evaluation, Predictor):
network-resolution probabilities -> the photo's full-size mask -> its cut-out picture(s), with the confidence."""
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Callable, List, Optional, Union

import numpy as np

from carseg.data.colour import colour_from_srgb, from_srgb, is_srgb
from carseg.inference.confidence import confidence
from carseg.inference.cutout import car_mask, compose
from carseg.inference.device_refinement import Refined
from carseg.inference.framing import region_sizes
from carseg.inference.options import CutoutOptions, OutputLimits
from carseg.inference.refinement import Refinement

if TYPE_CHECKING:
    from carseg.inference.predictor import Predictor


@dataclass
class Cut:
    """One photo's cut-out, as every command makes it (``cut_out``)."""

    prob: Optional[np.ndarray]  # float32 probabilities at the photo's size (None: refined on the device, not needed)
    hard: np.ndarray    # uint8 0/255: the car(s) the cut-out keeps (the main car with ``subject="main"``)
    confidence: float   # carseg.inference.confidence: how far to trust it, in [0, 1]
    pictures: List[np.ndarray] = field(default_factory=list)  # compose's: one, or one per car with ``instances``

    @property
    def car_fraction(self) -> float:
        """The share of the photo's pixels in the cut-out."""
        return np.count_nonzero(self.hard) / self.hard.size


def cut_out(predictor: Union["Predictor", Refinement], photo: np.ndarray, prob: Union[np.ndarray, Refined],
            options: CutoutOptions = CutoutOptions(), threshold: Optional[float] = None, pictures: bool = True,
            limits: Optional[OutputLimits] = None, checkpoint: Callable[[], None] = lambda: None,
            profile: Optional[bytes] = None) -> Cut:
    """``prob`` (from ``Predictor.forward``, or ``Predictor.refined``'s at full size already) at the size of ``photo``
    (RGB, or grey without ``pictures``), the mask at ``threshold`` (default: the model's), its confidence and, with
    ``pictures``, the composed cut-out(s).
    ``limits``: the cars found are checked against them before any picture is made (``OutputLimits.check_cars``);
    ``checkpoint`` runs between the steps and may raise to stop the work (a request that was answered meanwhile).
    ``profile``: the ICC profile ``photo`` is in (None: sRGB); the pictures keep its pixels, and the background
    (meant in sRGB) is converted into its space (``carseg.data.colour``). ``predictor``: a Predictor, or only its
    ``Refinement`` (what a worker process holds)."""
    threshold = predictor.threshold if threshold is None else threshold
    if isinstance(prob, Refined):  # at full size already: refined where the model ran; float only where needed
        full = prob.probabilities() if options.alpha == "soft" or not pictures else None
        hard = car_mask(None, options, threshold, prob.mask(threshold))
    else:
        full = predictor.upsample(prob, photo)
        checkpoint()
        hard = car_mask(full, options, threshold)
    if pictures and limits is not None and options.instances:  # one picture per car: count them first
        limits.check_cars(region_sizes(hard, options.instances_min_area), options, photo.shape[1], photo.shape[0])
    checkpoint()
    score = prob.confidence(hard) if isinstance(prob, Refined) else confidence(full, hard)
    checkpoint()
    if not pictures:
        return Cut(full, hard, score)
    return Cut(full, hard, score, compose(photo, full, background_in(options, profile), threshold, hard))


def background_in(options: CutoutOptions, profile: Optional[bytes]) -> CutoutOptions:
    """``options`` with its background colour or picture (sRGB) in ``profile``'s space."""
    if is_srgb(profile) or isinstance(options.background, str):
        return options
    if isinstance(options.background, np.ndarray):
        return replace(options, background=from_srgb(options.background, profile))
    return replace(options, background=colour_from_srgb(options.background, profile))
