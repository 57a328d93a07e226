"""remove.bg's request parameters (https://www.remove.bg/api) mapped onto carseg's cut-out options (the one schema,
``carseg.inference.options.CutoutOptions``). What carseg cannot do is a 400 naming the parameter and what to send
instead, never ignored."""
import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional, Tuple

from PIL import ImageColor

from carseg.inference.options import CutoutOptions
from carseg.serve.options import query_value
from carseg.serve.photos import ServeError

SIZES: Dict[str, Optional[float]] = {  # megapixels of the answer at most (None: the photo's, within --max-megapixels)
    "preview": 0.25, "small": 0.25, "regular": 0.25, "medium": 1.5, "hd": 4.0, "full": 25.0, "4k": 25.0,
    "50MP": 50.0, "auto": None}
TYPES = ("auto", "car")  # what carseg cuts out; remove.bg's others are refused
OTHER_TYPES = ("person", "product", "animal", "graphic", "transportation")
FORMATS = ("auto", "png", "jpg", "webp", "zip")
CHANNELS = ("rgba", "alpha")
SOURCES = ("image_file", "image_file_b64", "image_url")
FIELDS = SOURCES + ("size", "type", "format", "roi", "crop", "crop_margin", "scale", "position", "channels",
                    "add_shadow", "semitransparency", "bg_color", "bg_image_file", "bg_image_url")
FILES = ("image_file", "bg_image_file")  # the fields that are uploads
MAX_MARGIN = ((50.0, True), (500.0, False))  # remove.bg's largest crop_margin: 50% or 500 px
Colour = Tuple[int, int, int]


def invalid(name: str, value: str, what: str, code: str = "invalid_parameter") -> ServeError:
    """400: ``name=value: what`` (the value cut at 40 characters)."""
    shown = value if len(value) <= 40 else f"{value[:40]}... ({len(value)} characters)"
    return ServeError(400, f"{name}={shown}: {what}", code)


def choice(fields: Mapping[str, str], name: str, default: str, allowed: Tuple[str, ...]) -> str:
    value = fields.get(name, default)
    if value not in allowed:
        raise invalid(name, value, f"choose one of {', '.join(allowed)}")
    return value


def flag(fields: Mapping[str, str], name: str) -> bool:
    value = fields.get(name, "false").lower()
    if value not in ("true", "false", "1", "0"):
        raise invalid(name, value, "give true or false")
    return value in ("true", "1")


def parse_bg_color(text: str) -> Colour:
    """A hex colour (``81d4fa``, ``#fff``; 8 digits only if opaque: ``...ff``) or a CSS colour name (``green``)."""
    digits = text.strip().removeprefix("#")
    if re.fullmatch(r"[0-9a-fA-F]{3}", digits):
        digits = "".join(c * 2 for c in digits)
    if re.fullmatch(r"[0-9a-fA-F]{6}([fF]{2})?", digits):
        return tuple(int(digits[i: i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    if re.fullmatch(r"[0-9a-fA-F]{8}", digits):
        raise invalid("bg_color", text, "a see-through background is not made; give an opaque colour (alpha ff)")
    if re.fullmatch(r"[a-zA-Z]+", text.strip()) and text.strip().lower() in ImageColor.colormap:
        return ImageColor.getrgb(text.strip().lower())[:3]  # type: ignore[return-value]
    raise invalid("bg_color", text, "give a hex colour (81d4fa, fff) or a colour name (white, green)")


def parse_margin(text: str) -> Tuple[float, bool]:
    """remove.bg's ``crop_margin``: one, two or four margins (px or %); carseg takes one for every side."""
    parts = text.replace(",", " ").split()
    try:
        margins = {query_value("crop", part) for part in parts}
    except ValueError:
        raise invalid("crop_margin", text, "give a margin in px or % of the car's size, e.g. 30px or 10%") from None
    if len(parts) not in (1, 2, 4) or len(margins) != 1:
        raise invalid("crop_margin", text, "carseg takes one margin for all four sides; give one value, e.g. 10%",
                      "unsupported_parameter")
    margin = margins.pop()
    if margin[0] > next(value for value, percent in MAX_MARGIN if percent == margin[1]):
        raise invalid("crop_margin", text, "at most 50% or 500px")
    return margin


def parse_scale(text: str) -> Optional[float]:
    """``original`` or ``10%``-``100%`` -> None or the car's share of the frame."""
    if text == "original":
        return None
    match = re.fullmatch(r"(\d+(\.\d+)?)%", text)
    if not match or not 10 <= float(match[1]) <= 100:
        raise invalid("scale", text, "give original or 10% to 100%")
    return float(match[1]) / 100


@dataclass(frozen=True)
class RemoveBgOptions:
    """One remove.bg request's parameters in carseg's terms."""

    cutout: CutoutOptions       # always on a transparent background: the background is put behind it afterwards
    background: Optional[Colour]  # bg_color, or white for a JPEG without one (a picture comes as bg_image_*)
    format: str                 # png, jpg, webp or zip (auto resolved)
    channels: str               # rgba or alpha
    source: str                 # which of SOURCES holds the photo
    background_source: Optional[str]  # bg_image_file or bg_image_url

    @property
    def limits_format(self) -> str:
        """The format whose size limits bind the answer (a ZIP's colour picture is a JPEG)."""
        return "jpg" if self.format == "zip" else self.format


def removebg_options(fields: Mapping[str, str], files: Mapping[str, bytes]) -> RemoveBgOptions:
    """``fields`` (text parameters) and ``files`` (uploads) of a remove.bg request -> ``RemoveBgOptions``, or a 400
    naming the parameter."""
    unknown = sorted((set(fields) | set(files)) - set(FIELDS))
    if unknown:
        raise ServeError(400, f"unknown parameter {unknown[0][:40]}: the remove.bg parameters are "
                              f"{', '.join(FIELDS)}", "unknown_parameter")
    given = [name for name in SOURCES if name in fields or name in files]
    if len(given) != 1:
        raise ServeError(400, ("no image: send it as image_file (an upload), image_file_b64 or image_url" if not given
                               else f"{' and '.join(given)}: give the image once"), "missing_source")
    kind = choice(fields, "type", "auto", TYPES + OTHER_TYPES)
    if kind not in TYPES:
        raise invalid("type", kind, "carseg cuts out cars; send type=car or auto", "unsupported_type")
    if flag(fields, "semitransparency"):
        raise invalid("semitransparency", "true", "carseg's cut-outs keep car windows opaque; send "
                      "semitransparency=false or leave it out", "unsupported_parameter")
    size = choice(fields, "size", "auto", tuple(SIZES))
    fmt = choice(fields, "format", "auto", FORMATS)
    channels = choice(fields, "channels", "rgba", CHANNELS)
    backgrounds = [name for name in ("bg_color", "bg_image_file", "bg_image_url") if name in fields or name in files]
    if len(backgrounds) > 1 or (backgrounds and channels == "alpha"):
        raise ServeError(400, f"{' and '.join(backgrounds + ['channels=alpha'] * (channels == 'alpha'))}: give one",
                         "invalid_parameter")
    if channels == "alpha" and fmt == "zip":
        raise invalid("format", "zip", "a ZIP holds the colour picture and the alpha already; leave channels=alpha out")
    colour = parse_bg_color(fields["bg_color"]) if "bg_color" in fields else None
    crop = parse_margin(fields.get("crop_margin", "0")) if flag(fields, "crop") else None
    scale = parse_scale(fields.get("scale", "original"))
    position = fields.get("position", "original")
    if position == "original":
        if scale is not None and "position" in fields:
            raise invalid("position", position, "carseg places a scaled car by position; send center or X% Y%",
                          "unsupported_parameter")
        placed = None
    else:
        try:
            placed = query_value("position", position)
        except ValueError:
            raise invalid("position", position, "give original, center, X% or X% Y%") from None
    if crop is not None and (scale is not None or placed is not None):
        raise ServeError(400, f"crop=true with {'scale' if scale is not None else 'position'}: the answer is the car's "
                              "box, with no room to scale or move it; send one of them", "unsupported_parameter")
    try:
        roi = query_value("roi", fields["roi"]) if "roi" in fields else None
    except ValueError as exc:
        raise invalid("roi", fields["roi"], str(exc)) from None
    if fmt == "auto":  # remove.bg: PNG when the answer has transparent regions, else JPG (the alpha: PNG)
        fmt = "png" if channels == "alpha" or not backgrounds else "jpg"
    if fmt == "jpg" and channels == "rgba" and not backgrounds:
        colour = (255, 255, 255)  # remove.bg's JPG without a background: on white
    cutout = CutoutOptions(crop=crop, scale=scale, position=placed, roi=roi, megapixels=SIZES[size],
                           shadow=flag(fields, "add_shadow"))
    background_source = next((name for name in backgrounds if name != "bg_color"), None)
    return RemoveBgOptions(cutout, colour, fmt, channels, given[0], background_source)
