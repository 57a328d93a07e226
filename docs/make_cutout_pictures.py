#!/usr/bin/env python
"""docs/cutout_options.png: one panel per cut-out option, from generated photos (never Carvana ones).
The probability map stands in for a model's: the generator's true mask, blurred to a network's 4x coarser grid
and refined on the photo by the guided filter as Predictor.upsample does (the built-in model knows studio
photos, not the generator's cluttered scenes).   .venv/bin/python docs/make_cutout_pictures.py"""
from pathlib import Path
from typing import List, Tuple

import cv2
import numpy as np

from carseg.data.images import write_image_atomic
from carseg.data.synthetic import render
from carseg.inference.cutout import CutoutOptions, compose
from carseg.inference.guided_filter import guided_filter

SIZE = (960, 640)
PANEL_H = 300


def checker(shape: Tuple[int, int]) -> np.ndarray:
    y, x = np.indices(shape)
    return np.where(((y // 16 + x // 16) % 2)[..., None] == 0, 200, 245).astype(np.uint8).repeat(3, axis=2)


def flat(picture: np.ndarray) -> np.ndarray:
    """RGBA over a checkerboard; RGB as is."""
    if picture.shape[2] == 3:
        return picture
    alpha = picture[..., 3:].astype(np.float32) / 255
    return (picture[..., :3] * alpha + checker(picture.shape[:2]) * (1 - alpha)).astype(np.uint8)


def panel(picture: np.ndarray, title: str) -> np.ndarray:
    scaled = cv2.resize(picture, (round(picture.shape[1] * PANEL_H / picture.shape[0]), PANEL_H), interpolation=cv2.INTER_AREA)
    out = cv2.copyMakeBorder(scaled, 34, 6, 6, 6, cv2.BORDER_CONSTANT, value=(255, 255, 255))
    cv2.putText(out, title, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def zoom(picture: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A 60x40 piece of the car's edge, 5x, nearest: the edge's pixels."""
    ys, xs = np.nonzero(alpha[..., 3] > 0) if alpha.ndim == 3 else np.nonzero(alpha)
    y, x = int(ys.min()) + 4, int(xs[ys == ys.min()].mean())
    return cv2.resize(picture[y - 20: y + 20, x - 30: x + 30], (300, 200), interpolation=cv2.INTER_NEAREST)


def main() -> None:
    photo, mask = render(7, "test", 0, 2, 8, SIZE)
    left, right = render(7, "test", 1, 1, 8, (480, 640)), render(7, "test", 2, 3, 8, (480, 640))
    two, two_mask = np.concatenate([left[0], right[0]], axis=1), np.concatenate([left[1], right[1]], axis=1)
    backdrop = cv2.resize(render(3, "test", 5, 0, 8, (320, 240))[0], (320, 240))
    backdrop[:] = cv2.GaussianBlur(np.linspace(250, 150, 240)[:, None, None].repeat(320, 1).repeat(3, 2).astype(np.uint8), (0, 0), 3)
    prob = lambda image, truth: guided_filter(image, cv2.GaussianBlur(truth.astype(np.float32), (0, 0), 2))
    full, full_two = prob(photo, mask), prob(two, two_mask)
    cut = lambda options, image=photo, p=full: compose(image, p, options, 0.5)
    white = (255, 255, 255)
    hard, soft = cut(CutoutOptions(background=white))[0], cut(CutoutOptions(background=white, alpha="soft"))[0]
    panels: List[np.ndarray] = [
        panel(photo, "generated photo"),
        panel(zoom(hard, cut(CutoutOptions())[0]), "--alpha hard (edge, 5x)"),
        panel(zoom(soft, cut(CutoutOptions())[0]), "--alpha soft (edge, 5x)"),
        panel(flat(cut(CutoutOptions(alpha="soft", crop=(5, True)))[0]), "--crop 5%"),
        panel(cut(CutoutOptions(alpha="soft", canvas=(800, 600), background=backdrop, shadow=True))[0],
              "--canvas 800x600 --background IMG --shadow"),
        panel(two, "generated photo, two cars"),
        *(panel(p, f"--instances: NAME_{i}.png") for i, p in enumerate(
            cut(CutoutOptions(alpha="soft", instances=True, canvas=(400, 300), background=white, shadow=True), two, full_two), 1)),
    ]
    rows = [panels[:3], panels[3:5], panels[5:]]
    width = max(sum(p.shape[1] for p in row) for row in rows)
    lines = [cv2.copyMakeBorder(np.concatenate(row, axis=1), 0, 0, 0, width - sum(p.shape[1] for p in row),
                                cv2.BORDER_CONSTANT, value=(255, 255, 255)) for row in rows]
    write_image_atomic(Path(__file__).with_name("cutout_options.png"), np.concatenate(lines, axis=0), "png")


if __name__ == "__main__":
    main()
