"""The full-resolution mask work where the model runs (issue 25): network-resolution probabilities -> the photo's
size (upsampling, guided filter), the threshold and the sums the confidence needs, in torch on the model's device.
On a GPU the host then only decodes, composes, encodes and writes.

The same steps as ``carseg.inference.guided_filter`` and ``carseg.inference.refinement`` (OpenCV on the CPU), in
device-agnostic torch: ``tests/test_device_refinement.py`` runs them on CPU tensors and holds them to the OpenCV
path (maps within 0.002; OpenCV's ``INTER_AREA`` shrink is written out as two matrix products, as no torch resize
gives its pixels).
"""
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from carseg.errors import CarsegError
from carseg.inference.cutout import binarize
from carseg.inference.guided_filter import EPS, RADIUS, SUBSAMPLE
from carseg.inference.refinement import Refinement


@dataclass
class Refined:
    """One photo's probabilities refined to its size where the model ran: what the host needs of them (4.9 MB for a
    1918x1280 photo instead of a 9.8 MB float map; to a worker process through ``carseg.inference.shared_slots``)."""

    maps: np.ndarray  # 2 x H x W uint8: the 0/255 mask (probability > threshold), and round(255 x probability)
    prob_sum: float   # the sum of the probabilities, before rounding
    kept_sum: float   # ... over the mask
    threshold: float  # the mask's (the refinement's)

    @property
    def hard(self) -> np.ndarray:
        """The 0/255 mask at the threshold (H x W uint8, a view: copy it before changing it)."""
        return self.maps[0]

    @property
    def shape(self) -> Tuple[int, int]:
        return self.maps.shape[1:]

    def probabilities(self) -> np.ndarray:
        """The probabilities (float32 H x W), to 1/255."""
        return self.maps[1].astype(np.float32) * np.float32(1 / 255)

    def mask(self, threshold: float) -> np.ndarray:
        """The 0/255 mask at ``threshold``: ``hard`` at the map's own, else from the rounded probabilities (a request
        to the service may ask for another threshold)."""
        return self.hard if threshold == self.threshold else binarize(self.probabilities(), threshold)

    def confidence(self, kept: np.ndarray) -> float:
        """``carseg.inference.confidence.confidence`` of the cut-out's mask ``kept`` (from ``mask``, with regions
        cleared: other cars, outside the region of interest): the exact sums, corrected by the rounded probabilities
        of the pixels where ``kept`` and ``hard`` differ."""
        count = np.count_nonzero(kept)
        kept_sum = self.kept_sum
        if not np.may_share_memory(kept, self.maps):  # not the mask itself
            prob8, hard, kept = self.maps[1], self.hard > 0, kept > 0
            gained, lost = prob8[kept & ~hard].sum(dtype=np.float64), prob8[hard & ~kept].sum(dtype=np.float64)
            kept_sum += float(gained - lost) / 255
        total = self.prob_sum + count
        return 0.0 if count == 0 or total == 0 else 2 * max(0.0, kept_sum) / total


REFINE_ON = ("auto", "device", "workers")  # --refine-on: where the full-resolution mask work runs


def on_device(refine_on: str, device: str) -> bool:
    """Whether ``refine_on`` (``REFINE_ON``) puts the full-resolution mask work where the model runs on ``device``:
    ``device``, or ``auto`` on a GPU; ``workers`` keeps it in the processes or threads that finish the photos."""
    if refine_on not in REFINE_ON:
        raise CarsegError(f"--refine-on {refine_on}: choose one of {', '.join(REFINE_ON)}")
    return refine_on == "device" or (refine_on == "auto" and device != "cpu")


def _reflect(x: torch.Tensor, radius: int) -> torch.Tensor:
    """``x`` (N x C x H x W) padded by ``radius`` as OpenCV's ``BORDER_REFLECT`` (``cba|abc``; torch's ``reflect``
    is ``BORDER_REFLECT_101``), ``radius`` at most the side."""
    for dim in (2, 3):
        size = x.shape[dim]
        index = torch.cat([torch.arange(radius - 1, -1, -1), torch.arange(size),
                           torch.arange(size - 1, size - 1 - radius, -1)])
        x = x.index_select(dim, index.clamp(0, size - 1).to(x.device))
    return x


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean over (2 ``radius`` + 1)^2 pixels around each pixel of ``x`` (N x C x H x W), borders reflected:
    ``cv2.boxFilter`` with ``BORDER_REFLECT``."""
    return F.avg_pool2d(_reflect(x, radius), 2 * radius + 1, stride=1)


@lru_cache(maxsize=16)
def _area_weights(size: int, small: int, device: torch.device) -> torch.Tensor:
    """``small`` x ``size``: each small pixel's share of every source pixel, as OpenCV's ``INTER_AREA`` shrinks."""
    scale = size / small
    start = torch.arange(small, dtype=torch.float64)[:, None] * scale
    pixel = torch.arange(size, dtype=torch.float64)[None, :]
    overlap = (torch.minimum(pixel + 1, start + scale) - torch.maximum(pixel, start)).clamp(min=0)
    return (overlap / scale).float().to(device)


def area_resize(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``x`` (... x H x W float) shrunk to ``hw`` as ``cv2.resize(..., INTER_AREA)`` does at any scale (torch's
    ``area`` mode, adaptive pooling, is off by up to 38 grey levels where the scale is not whole): two matrix
    products."""
    return _area_weights(x.shape[-2], hw[0], x.device) @ x @ _area_weights(x.shape[-1], hw[1], x.device).T


def guided_filter(gray: torch.Tensor, prob: torch.Tensor, radius: int = RADIUS, eps: float = EPS,
                  subsample: int = SUBSAMPLE) -> torch.Tensor:
    """``carseg.inference.guided_filter.guided_filter`` in torch, for N photos of one size at once: ``prob`` (N x h x
    w float, any resolution) filtered with ``gray`` (the photos' brightness, N x H x W uint8, on the same device)
    into N x H x W maps in [0, 1]."""
    height, width = gray.shape[1:]
    small = (max(1, height // subsample), max(1, width // subsample))
    guide = gray.float()
    small_gray = area_resize(guide, small).round_()[:, None]  # OpenCV shrinks uint8 into uint8
    p = prob.float()
    if p.shape[2] > small[1]:
        small_prob = area_resize(p, small)[:, None]
    else:
        small_prob = F.interpolate(p[:, None], size=small, mode="bilinear", align_corners=False)
    r = min(max(1, radius // subsample), *small)  # the reflection reaches at most across the map
    mean_i, mean_p = box_mean(small_gray, r), box_mean(small_prob, r)
    var_i = box_mean(small_gray * small_gray, r) - mean_i * mean_i
    a = (box_mean(small_gray * small_prob, r) - mean_i * mean_p) / (var_i + eps * 255 ** 2)  # brightness in 0-255
    b = mean_p - a * mean_i
    coefficients = F.interpolate(torch.cat([box_mean(a, r), box_mean(b, r)], 1), size=(height, width),
                                 mode="bilinear", align_corners=False)
    return torch.addcmul(coefficients[:, 1], coefficients[:, 0], guide).clamp_(0.0, 1.0)


def upsample(refinement: Refinement, prob: torch.Tensor, gray: torch.Tensor) -> torch.Tensor:
    """``Refinement.upsample`` in torch for N photos of one size: ``prob`` (N x h x w) at the size of ``gray``
    (N x H x W uint8, the photos' brightness), along the photos' edges with ``guided``, bilinear with ``none``."""
    if refinement.refine == "guided":
        return guided_filter(gray, prob)
    return F.interpolate(prob.float()[:, None], size=tuple(gray.shape[1:]), mode="bilinear", align_corners=False)[:, 0]


def refine(refinement: Refinement, probs: Sequence[torch.Tensor], guides: Sequence[np.ndarray]) -> List[Refined]:
    """Each of ``probs`` (network resolution, on the model's device) refined to the size of its photo's brightness
    (``guides``, host H x W uint8), thresholded and summed there: photos of one size together, in one pass of each
    step; only the two uint8 maps come to the host."""
    refined: List[Optional[Refined]] = [None] * len(probs)
    groups: Dict[tuple, List[int]] = {}
    for index, (prob, guide) in enumerate(zip(probs, guides)):
        groups.setdefault((tuple(prob.shape), guide.shape), []).append(index)
    for members in groups.values():
        device = probs[members[0]].device
        # gathered by torch (no GIL held, unlike np.stack), into pinned memory on CUDA: no staging copy on the way
        gray = torch.empty((len(members), *guides[members[0]].shape), dtype=torch.uint8,
                           pin_memory=device.type == "cuda")
        for row, index in zip(gray, members):
            row.copy_(torch.from_numpy(guides[index]))
        full = upsample(refinement, torch.stack([probs[i] for i in members]), gray.to(device, non_blocking=True))
        mask = full > refinement.threshold
        sums = torch.stack([full.sum((1, 2), dtype=torch.float64),
                            full.masked_fill(~mask, 0).sum((1, 2), dtype=torch.float64)], 1).cpu().numpy()
        maps = torch.stack([mask.to(torch.uint8).mul_(255), full.mul_(255).add_(0.5).to(torch.uint8)], 1).cpu().numpy()
        for index, photo_maps, (prob_sum, kept_sum) in zip(members, maps, sums):
            refined[index] = Refined(photo_maps, float(prob_sum), float(kept_sum), refinement.threshold)
    return refined  # type: ignore[return-value]
