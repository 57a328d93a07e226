"""Decode a source's mask file and map its values (class index, palette index) to a 0/255 car mask."""
import io
from typing import Callable

import numpy as np
from PIL import Image

from carseg.errors import CarsegError


def binary_mask(data: bytes, is_car: Callable[[np.ndarray], np.ndarray], channel: int = -1) -> np.ndarray:
    """``is_car(values)`` over the decoded pixels (palette indices kept as indices; ``channel`` picks one of RGB(A))."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            values = np.asarray(img if img.mode in ("P", "L", "I", "1") else img.convert("RGBA"))
    except Exception as exc:
        raise CarsegError(f"mask file not readable ({exc}); clone the source repository again") from exc
    if values.ndim == 3:
        values = values[..., channel]
    return np.where(is_car(values), 255, 0).astype(np.uint8)
