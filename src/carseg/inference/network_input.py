"""The network input's resize and pad, exactly as validation's albumentations transforms do them
(``carseg.data.transforms.resize_longest`` and a bottom/right ``PadIfNeeded`` to the stride), in OpenCV alone: the
inference commands import no albumentations (~0.5 s of their start-up). ``tests/test_network_input.py`` holds the two
to the same pixels."""
import cv2
import numpy as np


def fit_longest(image: np.ndarray, max_size: int) -> np.ndarray:
    """``image`` scaled (up or down) so its longest side is ``max_size``, by area (``A.LongestMaxSize``'s sizes:
    each side times the scale, rounded)."""
    height, width = image.shape[:2]
    scale = max_size / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if size == (width, height):
        return image
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def pad_to_multiple(image: np.ndarray, divisor: int) -> np.ndarray:
    """``image`` padded with black at the bottom and right up to multiples of ``divisor`` (the network's stride)."""
    height, width = image.shape[:2]
    bottom, right = -height % divisor, -width % divisor
    if not bottom and not right:
        return image
    return cv2.copyMakeBorder(image, 0, bottom, 0, right, cv2.BORDER_CONSTANT, value=0)
