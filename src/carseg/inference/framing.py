"""Framing a cut-out: one alpha per car, the box around a car plus a margin, a region of interest, placing the car
on a canvas, scaling a picture down to a number of pixels, and a backdrop image scaled to cover a frame."""
from typing import Iterator, List, Optional, Tuple

import cv2
import numpy as np

Box = Tuple[int, int, int, int]  # x0, y0, x1, y1 (x1, y1 exclusive); may reach outside the photo
Margin = Tuple[float, bool]      # (value, True when it is a percentage of the car's box)
Roi = Tuple[Margin, Margin, Margin, Margin]  # x0, y0, x1, y1: pixels, or (True) % of the photo's width / height
Position = Tuple[float, float]   # where a picture sits in the space a canvas leaves around it: 0 left/top, 1 right/bottom
CENTRE: Position = (0.5, 0.5)


def _regions(mask: np.ndarray, min_area: float) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Labels and stats of the connected regions of ``mask > 0``, and the labels of those covering at least
    ``min_area`` of the photo, largest first."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0).astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    return labels, stats, [i + 1 for i in np.argsort(-areas, kind="stable") if areas[i] >= min_area * mask.size]


def split_instances(alpha: np.ndarray, min_area: float) -> Iterator[np.ndarray]:
    """One alpha per connected region of ``alpha > 0`` covering at least ``min_area`` of the photo, largest first;
    made one at a time, so only one full-size alpha is alive while its picture is made."""
    labels, _, keep = _regions(alpha, min_area)
    return (np.where(labels == label, alpha, np.float32(0)) for label in keep)


def region_sizes(mask: np.ndarray, min_area: float) -> List[Tuple[int, int]]:
    """The (width, height) of the box around each region ``split_instances`` would make of ``mask``, largest first."""
    _, stats, keep = _regions(mask, min_area)
    return [(int(stats[label, cv2.CC_STAT_WIDTH]), int(stats[label, cv2.CC_STAT_HEIGHT])) for label in keep]


def margins(width: int, height: int, margin: Margin) -> Tuple[int, int]:
    """What ``margin`` (pixels, or % of the box's width and height) adds on each side of a width x height box."""
    value, percent = margin
    return (round(width * value / 100), round(height * value / 100)) if percent else (round(value), round(value))


def car_box(alpha: np.ndarray, margin: Margin) -> Optional[Box]:
    """The box around ``alpha > 0`` grown by the margin (pixels, or % of the box's width and height); None if empty."""
    points = cv2.findNonZero((alpha > 0).astype(np.uint8))
    if points is None:
        return None
    x, y, w, h = cv2.boundingRect(points)
    mx, my = margins(w, h, margin)
    return x - mx, y - my, x + w + mx, y + h + my


def crop(image: np.ndarray, box: Box) -> np.ndarray:
    """``image[box]``, zero-padded where the box reaches outside the image."""
    x0, y0, x1, y1 = box
    height, width = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0, *image.shape[2:]), image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0: sy1 - y0, sx0 - x0: sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def fit(image: np.ndarray, canvas: Tuple[int, int], share: float = 1.0, position: Position = CENTRE) -> np.ndarray:
    """``image`` scaled to fit inside ``share`` of ``canvas`` (width, height), placed at ``position``, zero around it."""
    width, height = canvas
    return place(image, canvas, share * min(width / image.shape[1], height / image.shape[0]), position)


def place(image: np.ndarray, canvas: Tuple[int, int], scale: float, position: Position = CENTRE) -> np.ndarray:
    """``image`` scaled by ``scale`` (it must then fit) on a zero ``canvas`` (width, height), at ``position`` of the
    space left around it (``CENTRE``: centred)."""
    width, height = canvas
    new_w = min(width, max(1, round(image.shape[1] * scale)))
    new_h = min(height, max(1, round(image.shape[0] * scale)))
    if (new_w, new_h) != image.shape[1::-1]:
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    out = np.zeros((height, width, *image.shape[2:]), image.dtype)
    x0, y0 = int((width - new_w) * position[0]), int((height - new_h) * position[1])
    out[y0: y0 + new_h, x0: x0 + new_w] = image
    return out


def shrink(image: np.ndarray, max_pixels: float) -> np.ndarray:
    """``image`` scaled down, keeping its shape, to at most ``max_pixels`` pixels (as it is when it has fewer)."""
    height, width = image.shape[:2]
    if width * height <= max_pixels:
        return image
    factor = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * factor)), max(1, int(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def roi_box(roi: Roi, width: int, height: int) -> Box:
    """A region of interest in pixels of a ``width`` x ``height`` photo, within it (maybe empty)."""
    (x0, y0, x1, y1) = (round(value * side / 100) if percent else round(value)
                        for (value, percent), side in zip(roi, (width, height, width, height)))
    x0, x1 = min(max(x0, 0), width), min(max(x1, 0), width)
    y0, y1 = min(max(y0, 0), height), min(max(y1, 0), height)
    return x0, y0, max(x0, x1), max(y0, y1)


def keep_inside(image: np.ndarray, box: Box) -> np.ndarray:
    """``image`` with everything outside ``box`` set to zero (in place)."""
    x0, y0, x1, y1 = box
    image[:y0] = 0
    image[y1:] = 0
    image[:, :x0] = 0
    image[:, x1:] = 0
    return image


def cover(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``image`` scaled to cover ``size`` (width, height) and centre-cropped to it."""
    width, height = size
    scale = max(width / image.shape[1], height / image.shape[0])
    new_w, new_h = max(width, round(image.shape[1] * scale)), max(height, round(image.shape[0] * scale))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    scaled = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    x0, y0 = (new_w - width) // 2, (new_h - height) // 2
    return scaled[y0: y0 + height, x0: x0 + width]
