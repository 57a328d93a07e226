"""Phone photos as they come: HEIC and AVIF read, colour profiles kept, EXIF kept only on request and the location
only when asked for too. Every file is made here: HEIC by pillow-heif, AVIF and the rest by Pillow, Display P3 by
tests/profiles.py."""
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import ExifTags, Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.data.colour import is_srgb, rgb_profile, to_srgb
from carseg.data.exif import kept_exif
from carseg.data.images import ENCODE_PARAMS, decode_photo, encode_image

from conftest import red_car_photo
from profiles import display_p3

P3 = display_p3()
BIG = display_p3("Display P3, tabulated curves", curve_points=16384)  # ~98 KB: over one JPEG segment
SAVE = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP", "avif": "AVIF", "heic": "HEIF", "tiff": "TIFF"}
MAKE, TAKEN, LATITUDE = "PhoneMaker", "2026:05:01 10:00:00", (52.0, 31.0, 12.5)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return (a & b).sum() / max((a | b).sum(), 1)


def phone_exif(orientation: int = 1) -> Image.Exif:
    """A phone's EXIF: maker, time taken, where (GPS) and the orientation."""
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = MAKE
    exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] = TAKEN
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef], gps[ExifTags.GPS.GPSLatitude] = "N", LATITUDE
    return exif


def save(path: Path, pixels: np.ndarray, profile: bytes = None, orientation: int = 1) -> Path:
    """``pixels`` as the upright photo: stored turned a quarter left with orientation 6 (turn right to show)."""
    stored = np.ascontiguousarray(np.rot90(pixels, 1)) if orientation == 6 else pixels
    extra = {"icc_profile": profile} if profile else {}
    exif = phone_exif(orientation).tobytes()
    Image.fromarray(stored).save(path, SAVE[path.suffix[1:]], exif=exif, quality=95, **extra)
    return path


def run(call, folder: Path, out: Path, model: Path, *flags: str) -> None:
    result = call(car_segmentation, folder, out, model, "--quiet", "--workers", "0", *flags)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("suffix", sorted(SAVE))
def test_every_format_is_read_upright_with_its_profile(suffix, tmp_path):
    photo = red_car_photo(60, 90)[0]
    data = save(tmp_path / f"car.{suffix}", photo, P3, orientation=6).read_bytes()
    read = decode_photo(data)
    assert read.pixels.shape == photo.shape and read.pixels.flags.writeable
    assert np.abs(read.pixels.astype(int) - photo).mean() < 4  # lossy formats differ a little, a turned photo a lot
    assert read.profile == P3
    assert (read.exif is not None) == (suffix != "tiff")  # a TIFF's EXIF is its tags: not carried


def test_every_format_gives_the_mask_of_the_same_pixels_in_png(call, tmp_path, oracle_model):
    """HEIC, AVIF, JPEG, WebP and TIFF from phones (Display P3, turned by their EXIF) are cut out as the PNG of the
    same pixels, and each cut-out carries its photo's profile."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photo, truth = red_car_photo(240, 360)
    save(folder / "reference.png", photo)
    for suffix in SAVE:
        save(folder / f"phone_{suffix}.{suffix}", photo, P3, orientation=6)
    run(call, folder, out, oracle_model, "--save-mask")
    reference = np.asarray(Image.open(out / "reference_mask.png"))
    assert iou(reference, truth) > 0.97
    for suffix in SAVE:
        mask = np.asarray(Image.open(out / f"phone_{suffix}_mask.png"))
        assert mask.shape == truth.shape and iou(mask, reference) >= 0.99, suffix
        with Image.open(out / f"phone_{suffix}.png") as cut:
            assert cut.info.get("icc_profile") == P3, suffix
    with Image.open(out / "reference.png") as cut:
        assert "icc_profile" not in cut.info  # none in, none out


def two_colours() -> np.ndarray:
    """Blue ground, pure red left and a brick red right whose red minus blue is 0.47 as stored, 0.56 once converted
    from Display P3 to sRGB: the oracle (car where red - blue > 0.5) says which pixels the network saw."""
    photo = np.zeros((120, 240, 3), np.uint8)
    photo[:] = (30, 60, 200)
    photo[30:90, 20:100] = (255, 0, 0)
    photo[30:90, 140:220] = (200, 90, 80)
    return photo


def test_the_network_sees_srgb_and_the_cut_out_keeps_the_photo(call, tmp_path, oracle_model):
    photo = two_colours()
    assert (to_srgb(photo, P3)[60, 180] == (216, 81, 74)).all()  # LittleCMS: known answer for this profile
    for name, profile in (("tagged", P3), ("untagged", None)):
        folder = tmp_path / name
        folder.mkdir()
        save(folder / "car.png", photo, profile)
        run(call, folder, tmp_path / f"out_{name}", oracle_model, "--subject", "all", "--save-mask")
    tagged, untagged = (np.asarray(Image.open(tmp_path / f"out_{name}" / "car_mask.png")) > 0
                        for name in ("tagged", "untagged"))
    assert tagged[40:80, 30:90].all() and untagged[40:80, 30:90].all() and not tagged[:20].any()
    assert tagged[40:80, 150:210].all() and not untagged[40:80, 150:210].any()  # P3 pixels seen as sRGB
    with Image.open(tmp_path / "out_tagged" / "car.png") as cut:
        assert cut.info["icc_profile"] == P3
        assert (np.asarray(cut)[40:80, 150:210] == (200, 90, 80, 255)).all()  # as stored: looks like the photo


def test_a_background_colour_is_meant_in_srgb(call, tmp_path, oracle_model):
    for name, profile, green in (("p3", P3, (117, 251, 76)), ("plain", None, (0, 255, 0))):
        folder = tmp_path / name
        folder.mkdir()
        save(folder / "car.jpg", red_car_photo(120, 180)[0], profile)
        run(call, folder, tmp_path / f"out_{name}", oracle_model, "--background", "0,255,0")
        with Image.open(tmp_path / f"out_{name}" / "car.png") as cut:
            assert cut.mode == "RGB" and cut.info.get("icc_profile") == profile
            assert np.abs(np.asarray(cut)[:10, :10].astype(int) - green).max() <= 1, name  # sRGB's green in P3


def exif_of(path: Path) -> Image.Exif:
    with Image.open(path) as picture:
        assert picture.info["icc_profile"] == P3  # the profile always goes on
        return picture.getexif()


def test_by_default_no_exif_and_so_no_location(call, tmp_path, oracle_model):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    save(folder / "phone.jpg", red_car_photo(120, 180)[0], P3, orientation=6)
    run(call, folder, out, oracle_model)
    assert dict(exif_of(out / "phone.png")) == {}
    with Image.open(out / "phone.png") as cut:
        assert "exif" not in cut.info and cut.size == (180, 120)


@pytest.mark.parametrize("fmt", sorted(ENCODE_PARAMS))
def test_keep_metadata_keeps_the_exif_without_the_location(call, tmp_path, oracle_model, fmt):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    save(folder / "phone.heic", red_car_photo(120, 180)[0], P3, orientation=6)
    run(call, folder, out, oracle_model, "--keep-metadata", "--format", fmt, "--background", "white")
    exif = exif_of(out / f"phone.{fmt}")
    assert exif[ExifTags.Base.Make] == MAKE and exif[ExifTags.Base.Orientation] == 1  # turned already
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == TAKEN
    assert ExifTags.IFD.GPSInfo not in exif and exif.get_ifd(ExifTags.IFD.GPSInfo) == {}


def test_keep_location_keeps_it(call, tmp_path, oracle_model):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    save(folder / "phone.avif", red_car_photo(120, 180)[0], P3)
    run(call, folder, out, oracle_model, "--keep-metadata", "--keep-location")
    assert exif_of(out / "phone.png").get_ifd(ExifTags.IFD.GPSInfo)[ExifTags.GPS.GPSLatitude] == LATITUDE


def test_kept_exif():
    stored = phone_exif(orientation=8).tobytes()
    assert kept_exif(stored, keep=False, location=True) is None and kept_exif(None, keep=True) is None
    kept = Image.Exif()
    kept.load(kept_exif(stored, keep=True))
    assert set(kept) == {ExifTags.Base.Make, ExifTags.Base.Orientation, ExifTags.IFD.Exif}  # no GPS IFD
    assert kept[ExifTags.Base.Orientation] == 1 and kept.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == TAKEN
    assert kept_exif(stored[:6] + b"not TIFF data", keep=True) is None  # unreadable: dropped, the photo goes on


@pytest.mark.parametrize("fmt", sorted(ENCODE_PARAMS))
@pytest.mark.parametrize("profile", [P3, BIG], ids=["P3", "98 KB"])
def test_the_output_carries_the_profile_bytes(fmt, profile):
    picture = np.zeros((40, 60, 3 if fmt == "jpg" else 4), np.uint8)
    with Image.open(io.BytesIO(encode_image(picture, fmt, profile=profile))) as written:
        assert written.info["icc_profile"] == profile
    assert decode_photo(encode_image(picture, fmt, profile=profile)).profile == profile


def test_without_a_profile_or_exif_the_bytes_are_opencv_s_own():
    """The default path (PNG, no profile) is the plain ``cv2.imencode`` it was: no extra chunk, no extra time."""
    import cv2

    picture = np.dstack([red_car_photo(64, 96)[0], np.full((64, 96), 255, np.uint8)])
    plain = cv2.imencode(".png", cv2.cvtColor(picture, cv2.COLOR_RGBA2BGRA), ENCODE_PARAMS["png"])[1].tobytes()
    assert encode_image(picture, "png") == plain
    assert b"iCCP" not in plain and b"iCCP" in encode_image(picture, "png", profile=P3)


def test_profiles_that_cannot_be_kept_are_dropped_and_the_photo_read(tmp_path):
    """A broken profile, a grey one on a grey JPEG, or sRGB itself: the pixels are taken as sRGB, unconverted."""
    photo = red_car_photo(40, 60)[0]
    buffer = io.BytesIO()
    Image.fromarray(photo).save(buffer, "JPEG", icc_profile=b"not a profile", quality=95)
    broken = decode_photo(buffer.getvalue())
    assert broken.profile is None and broken.pixels.shape == photo.shape
    grey = io.BytesIO()
    Image.fromarray(photo).convert("L").save(grey, "JPEG", icc_profile=P3[:16] + b"GRAY" + P3[20:])
    assert decode_photo(grey.getvalue()).profile is None
    assert rgb_profile(P3) == P3 and not is_srgb(P3)
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    assert is_srgb(srgb) and to_srgb(photo, srgb) is photo  # no conversion for sRGB's own profile
