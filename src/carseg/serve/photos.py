"""Request bodies to photos and cut-outs to response bodies; every unusable upload becomes a ``ServeError``."""
import io
import zipfile
from typing import Dict, Optional, Tuple

import numpy as np
from PIL import Image

from carseg.data.images import Photo, decode_photo, encode_image

MEDIA_TYPES = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp", "avif": "image/avif",
               "zip": "application/zip"}

PHOTOS = "JPEG, PNG, WebP, HEIC, AVIF, BMP or TIFF"  # what the service decodes


class ServeError(Exception):
    """A request the service cannot serve: the HTTP status and one line naming the problem and what to do."""

    def __init__(self, status: int, message: str, code: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.code = code  # the remove.bg API's error code (``carseg.serve.errors.CODES``' by status if None)


def check_header(data: bytes, max_pixels: int) -> Tuple[int, int]:
    """The photo's width and height from its header; an empty body, a non-image, a photo over ``max_pixels`` or a
    truncated JPEG is refused before anything decodes it."""
    if not data:
        raise ServeError(400, "empty upload: send a photo (JPEG, PNG, HEIC, ...) as the body or as the multipart field 'file'")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            fmt, scan_start = img.format, img.tile[0][2] if img.tile else 0
    except Image.DecompressionBombError:
        raise ServeError(413, f"too many pixels: the limit is {max_pixels} (--max-megapixels); send a smaller photo",
                         "resolution_too_high") from None
    except Exception:  # PIL raises many types for data it cannot identify
        raise ServeError(415, f"not an image: send a {PHOTOS} photo") from None
    if width * height > max_pixels:
        raise ServeError(413, f"too many pixels: {width}x{height} = {width * height} is over the limit of {max_pixels} "
                              "(--max-megapixels); send a smaller photo", "resolution_too_high")
    # JPEG entropy-coded data cannot contain FF D9 (a 0xFF byte there is followed by 00 or a restart marker), so a
    # complete JPEG has its end-of-image marker after the first scan starts; a truncated one has none there.
    if fmt == "JPEG" and data.find(b"\xff\xd9", scan_start) < 0:
        raise ServeError(400, "truncated JPEG: the upload ends before the image does; send the whole file")
    return width, height


def decode(data: bytes) -> Photo:
    """An uploaded photo (``check_header`` passed) with its profile and EXIF, EXIF orientation applied (as the folder
    command reads files); what the decoder cannot read is the client's problem, said in one plain sentence."""
    try:
        photo = decode_photo(data)
    except Exception:  # OpenCV's decoders raise cv2.error (and others) for data they refuse
        photo = None
    if photo is None:
        raise ServeError(400, f"corrupt or unsupported image: it could not be decoded; send a {PHOTOS} photo")
    return photo


def encode(image: np.ndarray, fmt: str, profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> bytes:
    """RGB, RGBA or grey uint8 -> file bytes with ``profile`` and ``exif`` (``encode_image``; converts ``image`` to
    OpenCV's channel order in place); the sizes a format refuses are refused before any work (``OutputLimits``), so a
    failure here is the service's own."""
    encoded = encode_image(image, fmt, True, profile, exif)
    if encoded is None:
        raise RuntimeError(f"OpenCV could not encode a {image.shape[1]}x{image.shape[0]} picture as {fmt}")
    return encoded


def zip_files(files: Dict[str, bytes]) -> bytes:
    """``files`` (name: bytes) in one ZIP, stored: the pictures in it are compressed already."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()
