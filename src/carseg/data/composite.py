"""Copy-paste augmentation: studio cars cut out with their masks and pasted onto the training photo (a street or
video frame) at varied scale, position, lighting and blur, partly occluded or cut by the frame's edge.

``PasteCars`` is an albumentations transform, listed in a config's ``train_augmentations`` after the resize (so
it pastes at the training size). It teaches that walls, hedges and sky are background and that a car can be any
size anywhere; the photo's own car pixels stay labelled (its mask and the pasted car's are united).
"""
import random
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import albumentations as A
import cv2
import numpy as np
import pandas as pd

from carseg.data.images import image_size, read_image, read_mask
from carseg.errors import CarsegError

Cutout = Tuple[np.ndarray, np.ndarray]  # RGB uint8 crop, float32 alpha in [0, 1]


class PasteCars(A.DualTransform):
    """Paste one car from ``cars_csv`` (rows of ``kinds``, image,mask[,kind] columns) onto the sample.

    ``width``: the pasted car's width as a fraction of the frame's, drawn log-uniformly (small cars are as common
    as large ones). ``bank_size``: cars decoded (at ``bank_long_side`` px) and kept per loader worker.
    """

    def __init__(self, cars_csv: str, kinds: Sequence[str] = ("studio",), width: Tuple[float, float] = (0.1, 1.0),
                 bank_size: int = 64, bank_long_side: int = 640, occlude: float = 0.3, motion_blur: float = 0.3,
                 shadow: float = 0.6, p: float = 0.5):
        super().__init__(p=p)
        frame = pd.read_csv(cars_csv)
        if "kind" in frame.columns:
            frame = frame[frame["kind"].isin(list(kinds))]
        if frame.empty:
            raise CarsegError(f"{cars_csv}: no rows of kinds {list(kinds)} to cut cars from; check PasteCars.kinds")
        self.cars_csv, self.kinds = cars_csv, tuple(kinds)
        self.pairs: List[Tuple[str, str]] = list(zip(frame["image"], frame["mask"]))
        self.width, self.bank_size, self.bank_long_side = tuple(width), bank_size, bank_long_side
        self.occlude, self.motion_blur, self.shadow = occlude, motion_blur, shadow

    @property
    def targets_as_params(self) -> List[str]:
        return ["image", "mask"]

    @cached_property
    def _bank(self) -> List[Cutout]:
        """Cars cut to their bounding box; built on first use in each worker (a random subset of ``bank_size``)."""
        picked = random.sample(self.pairs, min(self.bank_size, len(self.pairs)))
        return [self._cut(Path(image), Path(mask)) for image, mask in picked]

    def _cut(self, image_path: Path, mask_path: Path) -> Cutout:
        image = read_image(image_path, target_hw=(self.bank_long_side // 2, self.bank_long_side), full_hw=image_size(image_path))
        alpha = read_mask(mask_path, out_hw=image.shape[:2], soft=True).astype(np.float32)
        ys, xs = np.nonzero(alpha > 0)
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        return np.ascontiguousarray(image[top:bottom, left:right]), np.ascontiguousarray(alpha[top:bottom, left:right])

    def get_params_dependent_on_data(self, params: Dict[str, Any], data: Dict[str, Any]) -> Dict[str, Any]:
        image, mask = data["image"], data["mask"]
        car, alpha = random.choice(self._bank)
        height, width = image.shape[:2]
        scale = np.exp(random.uniform(*np.log(self.width))) * width / car.shape[1]
        scale = min(scale, 1.2 * height / car.shape[0])
        size = (max(2, round(car.shape[1] * scale)), max(2, round(car.shape[0] * scale)))
        car = cv2.resize(car, size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        if random.random() < 0.5:
            car, alpha = car[:, ::-1], alpha[:, ::-1]
        car = _relight(car)
        if random.random() < self.motion_blur:
            car, alpha = _motion_blur(car, alpha)
        # Where the car lands: its centre anywhere across (partly out of frame), its wheels in the lower part.
        cx = random.uniform(-0.15, 1.15) * width
        bottom = random.uniform(0.45, 1.1) * height
        left, top = int(cx - size[0] / 2), int(bottom - size[1])
        out_image = image.copy()
        out_mask = mask.astype(np.float32, copy=True)
        if random.random() < self.shadow:
            _contact_shadow(out_image, alpha, left, top)
        _blend(out_image, out_mask, car, alpha, left, top)
        if random.random() < self.occlude:
            _occlude(out_image, out_mask, image, mask, left, top, size)
        return {"composite_image": out_image, "composite_mask": out_mask.astype(mask.dtype) if mask.dtype != np.uint8 else
                (out_mask > 0.5).astype(np.uint8)}

    def apply(self, img: np.ndarray, composite_image: np.ndarray = None, **params) -> np.ndarray:
        return composite_image

    def apply_to_mask(self, mask: np.ndarray, composite_mask: np.ndarray = None, **params) -> np.ndarray:
        return composite_mask

    def get_transform_init_args_names(self) -> Tuple[str, ...]:
        return ("cars_csv", "kinds", "width", "bank_size", "bank_long_side", "occlude", "motion_blur", "shadow")


def _window(shape: Tuple[int, int], left: int, top: int, size: Tuple[int, int]):
    """Slices of the frame and of a pasted piece where the piece at (left, top) overlaps the frame."""
    height, width = shape
    x0, y0, x1, y1 = max(left, 0), max(top, 0), min(left + size[0], width), min(top + size[1], height)
    if x0 >= x1 or y0 >= y1:
        return None
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def _blend(image: np.ndarray, mask: np.ndarray, car: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    window = _window(image.shape[:2], left, top, (car.shape[1], car.shape[0]))
    if window is None:
        return
    frame, piece = window
    a = alpha[piece][..., None]
    image[frame] = (image[frame] * (1 - a) + car[piece] * a).astype(np.uint8)
    mask[frame] = np.maximum(mask[frame], alpha[piece])


def _relight(car: np.ndarray) -> np.ndarray:
    """Per-channel gain and a gamma: the studio's even light looks like daylight, dusk or shade."""
    gain = random.uniform(0.6, 1.15) * np.array([random.uniform(0.9, 1.1) for _ in range(3)])
    gamma = random.uniform(0.75, 1.35)
    lut = np.clip(255 * (np.arange(256)[:, None] / 255) ** gamma * gain, 0, 255).astype(np.uint8)
    return np.stack([lut[car[..., c], c] for c in range(3)], axis=-1)


def _motion_blur(car: np.ndarray, alpha: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """A moving car: a horizontal box blur of the car and its alpha together (premultiplied)."""
    length = random.randint(3, max(4, car.shape[1] // 25))
    kernel = np.full((1, length), 1.0 / length, np.float32)
    premultiplied = cv2.filter2D(car.astype(np.float32) * alpha[..., None], -1, kernel)
    blurred_alpha = cv2.filter2D(alpha, -1, kernel)
    colour = premultiplied / np.maximum(blurred_alpha, 1e-3)[..., None]
    return np.clip(colour, 0, 255).astype(np.uint8), blurred_alpha


def _contact_shadow(image: np.ndarray, alpha: np.ndarray, left: int, top: int) -> None:
    """Darken a soft band under the car's lower part: shadows on the road belong to the background."""
    height = alpha.shape[0]
    band = np.zeros_like(alpha)
    band[int(height * 0.75):] = alpha[int(height * 0.75):]
    band = cv2.GaussianBlur(band, (0, 0), max(1.0, alpha.shape[1] / 40))
    shift = max(1, height // 12)
    band = np.roll(band, shift, axis=0)
    band[:shift] = 0
    window = _window(image.shape[:2], left, top, (alpha.shape[1], alpha.shape[0]))
    if window is not None:
        frame, piece = window
        image[frame] = (image[frame] * (1 - 0.6 * np.clip(band[piece], 0, 1))[..., None]).astype(np.uint8)


def _occlude(image: np.ndarray, mask: np.ndarray, background: np.ndarray, background_mask: np.ndarray,
             left: int, top: int, size: Tuple[int, int]) -> None:
    """Something in front of the pasted car: a vertical or bottom band of it shows the original frame again."""
    width, height = size
    if random.random() < 0.5:  # a post, a person, another object: a vertical band
        band = max(2, int(width * random.uniform(0.08, 0.3)))
        x = left + random.randint(0, max(0, width - band))
        box = (x, top, band, height)
    else:  # a low wall, a hedge, a parked car's bonnet: the bottom of the car
        band = max(2, int(height * random.uniform(0.15, 0.4)))
        box = (left, top + height - band, width, band)
    window = _window(image.shape[:2], box[0], box[1], (box[2], box[3]))
    if window is not None:
        frame, _ = window
        image[frame] = background[frame]
        mask[frame] = background_mask[frame]
