"""Image and mask reading and writing: photos with the colour profile and EXIF they carry (JPEG, PNG, WebP, TIFF,
BMP, HEIC/HEIF, AVIF), fast reduced-size JPEG decoding, strict binary masks, and cut-outs encoded by OpenCV with the
profile and EXIF passed through (``carseg.data.colour`` says which pixels the network sees)."""
import io
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Tuple

import cv2
import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from carseg.data.colour import rgb_profile, to_srgb
from carseg.data.storage import contents, readable, write_atomic
from carseg.errors import CarsegError

# Every Image.open in carseg reads HEIC/HEIF (pillow-heif; AVIF is Pillow's own): registered here, once
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

ENCODE_PARAMS = {
    # PNG level 1: ~3x faster than the default level and ~10% larger files. The "Up" row filter
    # instead of libpng trying all five per row: a 1918x1280 RGBA cut-out encodes ~1.7x faster, ~8% smaller.
    "png": [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP],
    "jpg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    "webp": [cv2.IMWRITE_WEBP_QUALITY, 95],
    # speed 9 (of 0-10): a 1918x1280 RGBA cut-out in ~72 ms, 8% larger than at 8 (~111 ms), 5x faster than 6
    **({"avif": [cv2.IMWRITE_AVIF_QUALITY, 90, cv2.IMWRITE_AVIF_SPEED, 9]} if cv2.haveImageWriter(".avif") else {}),
}
# The longest side each format's encoder takes (WebP: 14 bits; OpenCV's JPEG writer: 65500) or, for AVIF, that
# libavif's decoders read by default; PNG has no such limit
MAX_SIDE = {"webp": 16383, "jpg": 65500, "avif": 32768}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".heif", ".avif")
MASK_SUFFIXES = (".gif", ".png", ".bmp", ".tif", ".tiff")
# Decoded by Pillow: OpenCV has no HEIF decoder, and its AVIF decoder neither turns the photo by its orientation nor
# returns its profile
PILLOW_DECODES = ("HEIF", "AVIF")

# libjpeg decodes straight to 1/2, 1/4 or 1/8 scale, skipping most of the IDCT work:
# a 1918x1280 JPEG decodes ~4x faster at 1/4. OpenCV exposes it as these flags.
_REDUCED_COLOR = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2,
                  4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def reduction_factor(full_hw: Tuple[int, int], target_hw: Tuple[int, int]) -> int:
    """Largest JPEG scale factor (1, 2, 4, 8) that still decodes at least ``target_hw``.

    Sides are compared long-to-long and short-to-short, so an EXIF rotation cannot fool it.
    """
    scale = min(max(full_hw) / max(target_hw), min(full_hw) / min(target_hw))
    for factor in (8, 4, 2):
        if scale >= factor:
            return factor
    return 1


def image_size(path: Path) -> Tuple[int, int]:
    """(height, width) of an image read from its header only (a file, or a stored one's bytes: carseg.data.storage)."""
    try:
        with Image.open(readable(path)) as img:
            width, height = img.size
    except Image.DecompressionBombError:
        raise CarsegError(f"{path}: over {2 * Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels, more than any photo "
                          "(a decompression bomb?); replace or remove the file") from None
    except Exception as exc:  # PIL raises many types for broken files
        raise CarsegError(f"{path}: cannot read image header ({exc}); replace or remove the file") from exc
    return height, width


def check_pixels(path: Path, max_megapixels: float) -> Tuple[int, int]:
    """The photo's (height, width) from its header; a photo over ``max_megapixels`` is refused before anything
    decodes it (a 36 KB PNG can hold 300 megapixels, 7.8 GB once decoded)."""
    height, width = image_size(path)
    if height * width > max_megapixels * 1e6:
        raise CarsegError(f"{path}: {width}x{height} is {height * width / 1e6:.1f} megapixels, over --max-megapixels "
                          f"{max_megapixels:g}; raise the limit if the photo is real, or remove it")
    return height, width


@dataclass(frozen=True)
class Photo:
    """A decoded photo and what its cut-outs carry from it."""

    pixels: np.ndarray               # uint8 RGB as stored (in ``profile``), EXIF orientation applied, alpha dropped
    profile: Optional[bytes] = None  # its ICC profile for RGB pixels (carseg.data.colour.rgb_profile); None: sRGB
    exif: Optional[bytes] = None     # its EXIF as stored (carseg.data.exif.kept_exif says what of it goes on)


def read_photo(path: Path, target_hw: Optional[Tuple[int, int]] = None,
               full_hw: Optional[Tuple[int, int]] = None) -> Photo:
    """Read a photo with its profile and EXIF (16-bit scaled to 8).

    With ``target_hw`` (and the file's ``full_hw``), JPEGs are decoded at the smallest
    libjpeg scale that is still at least ``target_hw`` in both sides.
    """
    reduction = 1
    if target_hw is not None and full_hw is not None and Path(path).suffix.lower() in (".jpg", ".jpeg"):
        reduction = reduction_factor(full_hw, target_hw)
    try:
        data = contents(path)
    except OSError as exc:
        raise CarsegError(f"{path}: cannot read file ({exc.strerror}); check that it exists and is readable") from exc
    photo = decode_photo(data, reduction)
    if photo is None:
        raise CarsegError(f"{path}: not a readable image (empty, corrupt or unsupported format); replace or remove it")
    return photo


def brightness(pixels: np.ndarray) -> np.ndarray:
    """An RGB photo's brightness (H x W uint8), as OpenCV's grey conversion gives it: the guided filter's guide."""
    return cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)


def read_brightness(path: Path) -> np.ndarray:
    """A photo's ``brightness`` (EXIF orientation applied), from its file. A JPEG is decoded straight to grey
    (libjpeg's luma: 2.2 ms for 1918x1280 against 7.4 for colour then grey, the same within rounding)."""
    if Path(path).suffix.lower() in (".jpg", ".jpeg"):
        try:
            grey = cv2.imdecode(np.frombuffer(contents(path), np.uint8), cv2.IMREAD_GRAYSCALE)
        except (OSError, cv2.error):
            grey = None  # read_photo says what is wrong, in one line
        if grey is not None:
            return grey
    return brightness(read_photo(path).pixels)


def read_image(path: Path, target_hw: Optional[Tuple[int, int]] = None, full_hw: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """Read an image as uint8 sRGB (``read_photo``'s pixels converted from its profile, if another)."""
    photo = read_photo(path, target_hw, full_hw)
    return to_srgb(photo.pixels, photo.profile)


def decode_photo(data: bytes, reduction: int = 1) -> Optional[Photo]:
    """Encoded file bytes -> ``Photo``, or None if no decoder can read them. HEIF and AVIF are decoded by Pillow,
    the others by OpenCV (``reduction``: a JPEG's 1/2, 1/4 or 1/8 scale); the profile and EXIF come from Pillow's
    reading of the header."""
    try:
        with Image.open(io.BytesIO(data)) as img:  # the header only
            info = img.info
            pixels = np.array(ImageOps.exif_transpose(img).convert("RGB")) if img.format in PILLOW_DECODES else None
    except Exception:  # PIL raises many types for data it cannot read: OpenCV may still decode it, without metadata
        info, pixels = {}, None
    if pixels is None:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), _REDUCED_COLOR[reduction]) if data else None
        if image is None:
            return None
        pixels = cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)
    return Photo(pixels, rgb_profile(info.get("icc_profile")), info.get("exif") or None)


def read_mask(path: Path, out_hw: Optional[Tuple[int, int]] = None, soft: bool = False) -> np.ndarray:
    """Read a binary mask (GIF/PNG/...) as uint8 {0, 1}; reject anything that is not two-valued.

    Stays inside PIL until the mask is small: the binary check uses PIL's histogram of the
    (palette) values, and with ``out_hw`` the mask is resized (nearest) before it becomes a
    NumPy array. Masks are read every epoch, and this halves their cost.

    ``soft`` (with ``out_hw``): float32 in [0, 1], each pixel the car's share of its area at full
    resolution (box filter), so a low-resolution target keeps where inside a pixel the edge runs.
    """
    try:
        with Image.open(path) as img:
            if img.mode not in ("P", "L"):
                img = img.convert("L")
            gray = _palette_gray(img) if img.mode == "P" else np.arange(256, dtype=np.uint8)
            used = np.asarray(img.histogram()[:256]) > 0
            resize = out_hw is not None and img.size != (out_hw[1], out_hw[0])
            if resize and not soft:
                img = img.resize((out_hw[1], out_hw[0]), Image.NEAREST)
            pixels = np.asarray(img)
    except Exception as exc:
        raise CarsegError(f"{path}: not a readable mask image ({exc}); replace or remove it") from exc
    values = set(gray[used].tolist())
    if not (values <= {0, 255} or values <= {0, 1}):
        raise CarsegError(
            f"{path}: mask is not binary (values {sorted(values)[:6]}...); masks must hold only 0 and 255 (or 0 and 1), "
            "save them losslessly (GIF/PNG, not JPEG)"
        )
    if soft and resize:
        binary = cv2.LUT(pixels, (gray > 0).astype(np.uint8)).astype(np.float32)  # float: no rounding to 1/255
        return cv2.resize(binary, (out_hw[1], out_hw[0]), interpolation=cv2.INTER_AREA)
    return cv2.LUT(pixels, (gray > 0).astype(np.uint8))


def _palette_gray(img: Image.Image) -> np.ndarray:
    """Gray value of each of the 256 palette indices, as PIL's ``convert("L")`` computes it."""
    rgb = np.zeros((256, 3), np.uint32)
    palette = np.asarray(img.getpalette() or [], np.uint32).reshape(-1, 3)[:256]
    rgb[: len(palette)] = palette
    return ((rgb[:, 0] * 19595 + rgb[:, 1] * 38470 + rgb[:, 2] * 7471 + 0x8000) >> 16).astype(np.uint8)


def write_image_atomic(path: Path, image: np.ndarray, fmt: str, in_place: bool = False,
                       profile: Optional[bytes] = None, exif: Optional[bytes] = None) -> None:
    """Encode, write to a hidden temporary name and rename: an interrupted run leaves no broken file.

    ``in_place``, ``profile`` and ``exif``: as in :func:`encode_image`.
    """
    encoded = encode_image(image, fmt, in_place, profile, exif)
    if encoded is None:
        raise CarsegError(f"{path}: could not encode as {fmt}")
    write_atomic(path, encoded)


def encode_image(image: np.ndarray, fmt: str, in_place: bool = False, profile: Optional[bytes] = None,
                 exif: Optional[bytes] = None) -> Optional[bytes]:
    """RGB, RGBA or grey uint8 -> file bytes in ``fmt`` (``ENCODE_PARAMS``), or None if OpenCV cannot encode it.
    ``in_place`` converts RGB(A) to OpenCV's BGR(A) inside ``image`` (no copy; the caller's array changes).
    ``profile`` (ICC) and ``exif`` (TIFF data, ``kept_exif``'s) go into the file: PNG iCCP and eXIf chunks, JPEG
    APP2 and APP1 segments, WebP and AVIF metadata; without them the bytes are those of a plain ``cv2.imencode``."""
    if image.ndim == 3:
        code = cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR
        image = cv2.cvtColor(image, code, dst=image) if in_place else cv2.cvtColor(image, code)
    metadata = {cv2.IMAGE_METADATA_ICCP: profile if fmt != "jpg" else None, cv2.IMAGE_METADATA_EXIF: exif}
    metadata = {kind: np.frombuffer(data, np.uint8) for kind, data in metadata.items() if data}
    if metadata:
        ok, encoded = cv2.imencodeWithMetadata(f".{fmt}", image, list(metadata), list(metadata.values()),
                                               ENCODE_PARAMS[fmt])
    else:
        ok, encoded = cv2.imencode(f".{fmt}", image, ENCODE_PARAMS[fmt])
    if not ok:
        return None
    return _with_icc_segments(encoded.tobytes(), profile) if fmt == "jpg" and profile else encoded.tobytes()


ICC_SEGMENT = 65519  # profile bytes in one JPEG APP2 segment: 65535 less its length, ICC_PROFILE\0 and numbering


def _with_icc_segments(jpeg: bytes, profile: bytes) -> bytes:
    """``jpeg`` with ``profile`` as the ICC's numbered APP2 segments, after its JFIF and EXIF segments. (OpenCV
    writes one segment: a profile of over 64 KB makes it fail.)"""
    chunks = [profile[i:i + ICC_SEGMENT] for i in range(0, len(profile), ICC_SEGMENT)]
    segments = b"".join(b"\xff\xe2" + struct.pack(">H12sBB", 16 + len(chunk), b"ICC_PROFILE\0", number, len(chunks))
                        + chunk for number, chunk in enumerate(chunks, 1))
    position = 2  # after SOI
    while jpeg[position + 1] in (0xE0, 0xE1):  # APP0 (JFIF), APP1 (EXIF)
        position += 2 + struct.unpack_from(">H", jpeg, position + 2)[0]
    return jpeg[:position] + segments + jpeg[position:]
