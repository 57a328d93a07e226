"""The error overlay drawn for training previews and ``bin/evaluate.py --overlays``: right, added, missed."""
from typing import Sequence, Tuple

import cv2
import numpy as np

# Tint colours (RGB): what the model got right, what it added, what it missed.
TRUE_POSITIVE, FALSE_POSITIVE, FALSE_NEGATIVE = (0, 200, 0), (230, 0, 0), (0, 90, 255)
LEGEND: Sequence[Tuple[str, Tuple[int, int, int]]] = (("TP", TRUE_POSITIVE), ("FP", FALSE_POSITIVE), ("FN", FALSE_NEGATIVE))


def overlay(photo: np.ndarray, pred: np.ndarray, truth: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """The RGB photo in grey, tinted green/red/blue where ``pred`` is right/added/missed against ``truth``,
    the true background dimmed. Grey first, so the photo's own greens and reds cannot pass for the tints."""
    grey = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY).astype(np.float32)[..., None]
    case = pred.astype(bool).astype(np.uint8) * 2 + truth.astype(bool)  # 0 background, 1 missed, 2 added, 3 right
    keep = np.float32([0.6, 1 - alpha, 1 - alpha, 1 - alpha])
    tint = alpha * np.float32([(0, 0, 0), FALSE_NEGATIVE, FALSE_POSITIVE, TRUE_POSITIVE])
    return (grey * keep[case][..., None] + tint[case]).round().astype(np.uint8)


def put_legend(strip: np.ndarray, x: int, labels: Sequence[Tuple[str, Tuple[int, int, int]]], scale: float,
               thickness: int) -> int:
    """Write coloured ``labels`` left to right on ``strip`` from ``x``; returns the x after the last one."""
    for text, colour in labels:
        cv2.putText(strip, text, (x, strip.shape[0] - 6), cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
        x += cv2.getTextSize(text + "  ", cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)[0][0]
    return x


def captioned(picture: np.ndarray, text: str) -> np.ndarray:
    """A black strip with ``text`` and the colour legend above ``picture``."""
    scale = max(0.4, picture.shape[1] / 1400)
    strip = np.zeros((int(28 * scale) + 8, picture.shape[1], 3), np.uint8)
    put_legend(strip, 6, [(text, (255, 255, 255)), *LEGEND], scale, max(1, round(scale * 1.5)))
    return np.vstack([strip, picture])
