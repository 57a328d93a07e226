"""Albumentations pipelines: pre (resize + pad), train augmentation (from the config), post (normalize)."""
from typing import Sequence, Tuple, Union

import albumentations as A
import cv2
from albumentations.pytorch import ToTensorV2

from carseg.metadata import IMAGENET_MEAN, IMAGENET_STD

ImageSize = Union[int, Sequence[int]]


def as_hw(image_size: ImageSize) -> Tuple[int, int]:
    """``256`` -> (256, 256); ``[256, 384]`` -> (256, 384) as (height, width)."""
    if isinstance(image_size, int):
        return image_size, image_size
    height, width = image_size
    return int(height), int(width)


def resize_longest(max_size: int, soft_masks: bool = False) -> A.LongestMaxSize:
    """Scale so the longest side is ``max_size``; INTER_AREA keeps thin edges when shrinking.

    Masks are resized nearest (they stay binary), or by area when ``soft_masks`` (float coverage).
    """
    return A.LongestMaxSize(max_size=max_size, interpolation=cv2.INTER_AREA,
                            mask_interpolation=cv2.INTER_AREA if soft_masks else cv2.INTER_NEAREST)


def pre_transforms(image_size: ImageSize, soft_masks: bool = False) -> A.Compose:
    """Resize to fit inside ``image_size`` (the longest side to its longest side when the photo's shape allows) and
    pad (black, bottom/right) to exactly it: photos of any shape (3:2 studio, 4:3 phone, 16:9 video) batch together.

    Padding sits at the bottom/right so the predictor can undo it with a plain crop.
    """
    height, width = as_hw(image_size)
    return A.Compose([
        fit_inside(image_size, soft_masks),
        A.PadIfNeeded(min_height=height, min_width=width, position="top_left",
                      border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
    ])


def fit_inside(image_size: ImageSize, soft_masks: bool = False) -> A.LongestMaxSize:
    """The resize of :func:`pre_transforms`, alone: what ``bin/prepare_dataset.py --cache`` stores, so a cached
    photo goes through it unchanged (it already fits) and the pipeline's input is the same array."""
    return A.LongestMaxSize(max_size_hw=as_hw(image_size), interpolation=cv2.INTER_AREA,
                            mask_interpolation=cv2.INTER_AREA if soft_masks else cv2.INTER_NEAREST)


def post_transforms(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> A.Compose:
    """Normalize and convert to CHW tensors."""
    return A.Compose([A.Normalize(mean=tuple(mean), std=tuple(std)), ToTensorV2()])


def compose(pre: A.Compose, augment: Sequence[A.BasicTransform], post: A.Compose) -> A.Compose:
    """One pipeline: pre, then the augmentations (empty for validation), then post."""
    return A.Compose([pre, *augment, post])
