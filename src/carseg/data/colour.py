"""Colour profiles: the ICC profile a photo's pixels are in, and LittleCMS conversions to and from sRGB.

The choice, made here for every command: the network sees sRGB, as it was trained (its photos carried no profile,
i.e. sRGB), so a photo in another space (a phone's Display P3) is converted to sRGB for the forward pass only. The
cut-out keeps the photo's pixels as stored and carries its profile, so it looks like the photo in any viewer; colours
given for it (``--background R,G,B``, a background picture) are meant in sRGB and converted into the photo's space.
A profile LittleCMS cannot read, or one not for RGB pixels (grey, CMYK), is dropped: those pixels are taken as sRGB.
"""
import io
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
from PIL import Image, ImageCms

SRGB = ImageCms.createProfile("sRGB")
INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC  # what matrix/curve profiles (all a camera writes) define
# every combination of 8 levels per channel: a profile that moves none of them by more than 1 is sRGB in effect
_GRID = np.stack(np.meshgrid(*[np.linspace(0, 255, 8).astype(np.uint8)] * 3, indexing="ij"), -1).reshape(1, -1, 3)


@lru_cache(maxsize=16)
def _profile(data: bytes) -> Optional[ImageCms.ImageCmsProfile]:
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(data))
    except (OSError, ImageCms.PyCMSError, TypeError, ValueError):
        return None
    return profile if profile.profile.xcolor_space == "RGB " else None


def rgb_profile(data: Optional[bytes]) -> Optional[bytes]:
    """``data`` when LittleCMS reads it as a profile for RGB pixels, else None."""
    return data if data and _profile(data) is not None else None


@lru_cache(maxsize=16)
def _to_srgb(data: bytes) -> Optional[ImageCms.ImageCmsTransform]:
    """``data``'s profile to sRGB; None when it is sRGB in effect (no level on the grid moves by more than 1)."""
    transform = ImageCms.buildTransform(_profile(data), SRGB, "RGB", "RGB", INTENT)
    moved = np.asarray(ImageCms.applyTransform(Image.fromarray(_GRID), transform)).astype(np.int16) - _GRID
    return transform if np.abs(moved).max() > 1 else None


@lru_cache(maxsize=16)
def _from_srgb(data: bytes) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(SRGB, _profile(data), "RGB", "RGB", INTENT)


def is_srgb(profile: Optional[bytes]) -> bool:
    """Whether pixels in ``profile`` (an ``rgb_profile``; None: none) are sRGB in effect."""
    return profile is None or _to_srgb(profile) is None


def _convert(pixels: np.ndarray, transform: ImageCms.ImageCmsTransform) -> np.ndarray:
    return np.array(ImageCms.applyTransform(Image.fromarray(pixels), transform))  # writable, as OpenCV's arrays


def to_srgb(pixels: np.ndarray, profile: Optional[bytes]) -> np.ndarray:
    """RGB uint8 pixels in ``profile`` (an ``rgb_profile``) as sRGB; ``pixels`` themselves when already sRGB."""
    return pixels if is_srgb(profile) else _convert(pixels, _to_srgb(profile))


def from_srgb(pixels: np.ndarray, profile: Optional[bytes]) -> np.ndarray:
    """RGB uint8 sRGB pixels in ``profile``'s space; ``pixels`` themselves when it is sRGB."""
    return pixels if is_srgb(profile) else _convert(pixels, _from_srgb(profile))


def colour_from_srgb(rgb: Tuple[int, int, int], profile: Optional[bytes]) -> Tuple[int, int, int]:
    """One sRGB colour in ``profile``'s space."""
    return tuple(int(v) for v in from_srgb(np.array([[rgb]], np.uint8), profile)[0, 0])
