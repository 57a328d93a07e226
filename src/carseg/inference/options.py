"""The cut-out options' one schema. Each field of ``CutoutOptions`` carries its help, allowed values and text parser;
from them come ``bin/car_segmentation.py``'s flags (``add_arguments``), the service's query parameters
(``carseg.serve.options``) and both sides' checks. A new option is one new field here (and its use in ``compose``).

Names: the field and query parameter ``shadow_strength`` is the flag ``--shadow-strength``. Messages name the flag
and what it accepts, as one ``CarsegError`` line.
"""
import argparse
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, List, Mapping, Optional, Tuple, Union

import numpy as np

from carseg.data.images import ENCODE_PARAMS, MAX_SIDE, read_image
from carseg.errors import CarsegError, one_line
from carseg.inference.framing import CENTRE, Margin, Position, Roi, margins
from carseg.inference.subject import SUBJECTS

Background = Union[str, Tuple[int, int, int], np.ndarray]  # "transparent", (R, G, B) or an RGB uint8 image
ALPHA = ("soft", "hard")
COLOURS = "use transparent, white or R,G,B with values 0-255"


def flag(name: str) -> str:
    """``shadow_strength`` -> ``--shadow-strength``."""
    return "--" + name.replace("_", "-")


def spell(name: str, value: Any, query: bool = False) -> str:
    """An option and its value as the user wrote them: ``--shadow-strength 2``, or ``shadow_strength=2`` in a query."""
    return f"{name}={value}" if query else f"{flag(name)} {value}"


def _colour(text: str) -> Optional[Background]:
    """``transparent``, ``white`` or ``R,G,B`` (0-255 each) as a background; None for any other text."""
    if text in ("transparent", "white"):
        return text if text == "transparent" else (255, 255, 255)
    parts = text.split(",")
    if len(parts) == 3 and all(p.strip().isdigit() for p in parts):
        rgb = tuple(int(p) for p in parts)
        if all(0 <= v <= 255 for v in rgb):
            return rgb
    return None


def parse_colour(text: str) -> Background:
    """A background the service takes as text: a colour only (a picture comes as an upload, never a server path)."""
    colour = _colour(text)
    if colour is None:
        raise CarsegError(f"--background {text}: not a colour; {COLOURS} (a picture: upload it as the multipart field "
                          "'background')")
    return colour


def parse_background(text: str) -> Background:
    """``transparent``, ``white``, ``R,G,B`` (0-255 each) or the path of an image (read now, so a bad file
    fails before any photo is processed)."""
    colour = _colour(text)
    if colour is not None:
        return colour
    allowed = f"{COLOURS}, or a readable image file"
    if len(text.split(",")) > 1 or not Path(text).is_file():
        raise CarsegError(f"--background {text}: not a colour and no such file; {allowed}")
    try:
        return read_image(Path(text))
    except CarsegError as exc:
        raise CarsegError(f"--background {text}: {one_line(exc).removeprefix(text + ': ')}; {allowed}") from None


def _length(text: str) -> Optional[Margin]:
    """``40``/``40px`` (whole pixels) or ``5%``, 0 or more; None for anything else."""
    percent = text.endswith("%")
    try:
        value = float(text[:-1] if percent else text.removesuffix("px"))
    except ValueError:
        return None
    return (value, percent) if 0 <= value < 1e5 and (percent or value.is_integer()) else None


def parse_crop(text: str) -> Margin:
    """``MARGIN``: pixels (``40``) or a percentage of the car's box (``5%``), 0 or more."""
    margin = _length(text)
    if margin is None:
        raise CarsegError(f"--crop {text}: give a margin in pixels (e.g. 40) or in % of the car's size (e.g. 5%), 0 or more")
    return margin


def parse_roi(text: str) -> Roi:
    """``X0 Y0 X1 Y1`` (spaces or commas), each in pixels (``40``, ``40px``) or % of the photo (``50%``)."""
    corners = [_length(part) for part in text.replace(",", " ").split()]
    if len(corners) != 4 or None in corners or any(p and v > 100 for v, p in corners) or not all(
            corners[i][1] != corners[i + 2][1] or corners[i][0] < corners[i + 2][0] for i in (0, 1)):
        raise CarsegError(f"--roi {text}: give the region's left, top, right and bottom edges in pixels or % of the "
                          "photo, e.g. '0% 0% 50% 100%' (its left half) or '40px 20px 900px 600px'")
    return tuple(corners)  # type: ignore[return-value]


def parse_position(text: str) -> Position:
    """``center``, ``X%`` (both axes) or ``X% Y%``: where the car sits in the space around it, 0-100% each."""
    if text.strip().lower() in ("center", "centre"):
        return CENTRE
    parts = [_length(part) for part in text.replace(",", " ").split()]
    if not 1 <= len(parts) <= 2 or not all(part and part[1] and part[0] <= 100 for part in parts):
        raise CarsegError(f"--position {text}: give X% Y% of the space around the car (0% 0%: top left, 100% 100%: "
                          "bottom right) or center")
    return (parts[0][0] / 100, parts[-1][0] / 100)


def parse_canvas(text: str) -> Tuple[int, int]:
    """``WxH`` in pixels, e.g. ``1600x1200``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        width = height = 0
    if not (0 < width <= 20000 and 0 < height <= 20000):
        raise CarsegError(f"--canvas {text}: give WIDTHxHEIGHT in pixels, e.g. 1600x1200 (1-20000 each)")
    return width, height


@dataclass(frozen=True)
class Option:
    """One option: its name, the type of its value as typed (``bool``: a flag without a value on the command line),
    default, help and checks."""

    name: str
    kind: type
    default: Any
    help: str
    choices: Tuple[str, ...] = ()
    bounds: Optional[Tuple[float, float]] = None      # inclusive
    parse: Optional[Callable[[str], Any]] = None       # text -> value, or a CarsegError naming the flag
    query_parse: Optional[Callable[[str], Any]] = None  # the service's parser, where it must differ (no files)
    metavar: Optional[str] = None

    def check(self, value: Any) -> None:
        """A one-line ``CarsegError`` for a value outside ``choices`` or ``bounds`` (None: the option is not given)."""
        if value is None:
            return
        if self.choices and value not in self.choices:
            raise CarsegError(f"{spell(self.name, value)}: choose one of {', '.join(self.choices)}")
        if self.bounds is not None and not self.bounds[0] <= value <= self.bounds[1]:
            raise CarsegError(f"{spell(self.name, value)}: must be in [{self.bounds[0]:g}, {self.bounds[1]:g}]")

    def value(self, typed: Any, query: bool = False) -> Any:
        """The value as typed (text for an option with a parser), parsed: ``query`` by the service's parser."""
        parse = (self.query_parse or self.parse) if query else self.parse
        return typed if typed is None or parse is None else parse(typed)


def _option(kind: type, default: Any, help: str, **checks: Any) -> Any:
    """A ``CutoutOptions`` field and its ``Option`` (named after the field in ``CUTOUT_OPTIONS``)."""
    return field(default=default, metadata={"option": Option("", kind, default, help, **checks)})


@dataclass(frozen=True)
class CutoutOptions:
    """What a cut-out looks like; the defaults give an RGBA picture of the whole photo, alpha = the mask."""

    background: Background = _option(
        str, "transparent", "transparent, white, R,G,B (sRGB, 0-255 each) or a picture behind the car, scaled to "
        "cover it (command line: an image file; service: the multipart field 'background')",
        parse=parse_background, query_parse=parse_colour, metavar="COLOUR|IMAGE")
    alpha: str = _option(str, "hard", "edges: hard (0/1: scores best against 0/1 masks) or soft (matte following the "
                         "photo's edges, decontaminated: no rim of the old background)", choices=ALPHA)
    crop: Optional[Margin] = _option(str, None, "crop tight to the car plus a margin: pixels (40) or % of its size (5%)",
                                     parse=parse_crop, metavar="MARGIN")
    canvas: Optional[Tuple[int, int]] = _option(
        str, None, "fit the car on a WIDTHxHEIGHT canvas, e.g. 1600x1200 (margin: crop's, default 5%; centred unless "
        "position)",
        parse=parse_canvas, metavar="WxH")
    scale: Optional[float] = _option(
        float, None, "the car's box (plus crop's margin, if given) fills this share of the canvas (--canvas's, or "
        "the photo's size without it) in width or height, 0.01-1 (default with canvas: all of it, margin 5%)", bounds=(0.01, 1.0), metavar="S")
    position: Optional[Position] = _option(
        str, None, "where the car sits on the canvas (--canvas's, or the photo's size: there at its own size without "
        "scale): X% Y% of the space around it (0% 0%: top left) or center (the default)",
        parse=parse_position, metavar="'X% Y%'")
    roi: Optional[Roi] = _option(str, None, "cut out only what lies in this region of the photo: left, top, right, "
                                 "bottom in pixels or % of the photo, e.g. '0% 0% 50% 100%' (its left half)",
                                 parse=parse_roi, metavar="'X0 Y0 X1 Y1'")
    megapixels: Optional[float] = _option(float, None, "scale each picture down to at most this many megapixels, "
                                          "keeping its shape (e.g. 0.25; never enlarged)", bounds=(0.01, 1000.0),
                                          metavar="MP")
    shadow: bool = _option(bool, False, "a soft contact shadow under the car")
    shadow_strength: float = _option(float, 0.5, "the shadow's darkest opacity, 0-1", bounds=(0.0, 1.0), metavar="S")
    shadow_softness: float = _option(float, 0.03, "the shadow's blur as a share of the car's width, 0-1",
                                     bounds=(0.0, 1.0), metavar="S")
    instances: bool = _option(bool, False, "one cut-out per car, largest first: NAME_1.png, NAME_2.png, ... (the "
                              "service answers a ZIP of them)")
    instances_min_area: float = _option(float, 0.01, "with instances: smallest car, as a share of the photo",
                                        bounds=(0.0, 1.0), metavar="A")
    subject: str = _option(str, "main", "main: only the photo's car, not those parked behind it; all: every car in "
                           "one picture", choices=SUBJECTS)
    keep_metadata: bool = _option(bool, False, "keep the photo's EXIF (camera, date, ...; orientation set to 1) in "
                                  "the cut-out, without its location unless keep-location too (the colour profile is "
                                  "always kept)")
    keep_location: bool = _option(bool, False, "with keep-metadata: keep the location (GPS) in the EXIF too")

    def __post_init__(self) -> None:
        for option in CUTOUT_OPTIONS:
            option.check(getattr(self, option.name))


CUTOUT_OPTIONS: Tuple[Option, ...] = tuple(replace(f.metadata["option"], name=f.name) for f in fields(CutoutOptions))
FORMAT = Option("format", str, "png", "image format of the pictures", choices=tuple(ENCODE_PARAMS))
OPTIONS = CUTOUT_OPTIONS + (FORMAT,)  # what the command line and the service both take


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``OPTIONS`` as flags; text values stay text until ``cutout_options`` parses them (one line for a bad one)."""
    for option in OPTIONS:
        help = option.help.replace("%", "%%") + ("" if option.default in (None, False) else " (default: %(default)s)")
        if option.kind is bool:
            parser.add_argument(flag(option.name), action="store_true", help=help)
        else:
            parser.add_argument(flag(option.name), type=option.kind, default=option.default,
                                choices=option.choices or None, metavar=option.metavar, help=help)


def cutout_options(values: Mapping[str, Any], query: bool = False, picture: Optional[np.ndarray] = None) -> CutoutOptions:
    """``CutoutOptions`` from the flags' values or the query parameters (``query``: the service's parsers);
    ``picture``: an uploaded background (RGB) instead of the ``background`` value."""
    parsed = {option.name: option.value(values[option.name], query) for option in CUTOUT_OPTIONS}
    if parsed["keep_location"] and not parsed["keep_metadata"]:
        name = lambda option: spell(option, "true", query) if query else flag(option)
        keep = name("keep_metadata")
        raise CarsegError(f"{name('keep_location')}: the location is kept only in the EXIF that {keep} keeps; add {keep}")
    _check_framing(parsed, query)
    return CutoutOptions(**(parsed if picture is None else {**parsed, "background": picture}))


def _check_framing(parsed: Mapping[str, Any], query: bool) -> None:
    """Without a canvas, ``crop`` makes the picture the car's box, where ``scale`` and ``position`` have no room: a
    one-line ``CarsegError``."""
    given = (lambda option: option) if query else flag
    moved = next((name for name in ("scale", "position") if parsed[name] is not None), None)
    if parsed["crop"] is not None and parsed["canvas"] is None and moved:
        raise CarsegError(f"{given(moved)} with {given('crop')}: the picture is the car's box, with no room around it; "
                          f"add {given('canvas')} or leave {given('crop')} out")


def check_format(fmt: str, background: Background, query: bool = False) -> None:
    """A JPEG has no transparency: a one-line ``CarsegError`` for ``jpg`` on a transparent background."""
    if fmt == "jpg" and isinstance(background, str):
        raise CarsegError(f"{spell('format', 'jpg', query)} has no transparency; use {spell('format', 'png', query)} "
                          f"or webp, or {spell('background', 'white', query)} or R,G,B")


class TooLarge(CarsegError):
    """A cut-out over ``OutputLimits`` (the service answers 413)."""


ANSWER_PHOTOS = 2  # the pictures made of one photo hold at most this many times --max-megapixels in all


@dataclass(frozen=True)
class OutputLimits:
    """How large the pictures made of one photo may grow, so that memory and time stay bounded whatever the options:
    one picture at most ``max_pixels`` (crop margins, canvas) and no larger than its format takes, with
    ``instances`` at most ``max_instances`` pictures holding ``ANSWER_PHOTOS * max_pixels`` in all. ``check`` runs
    before any work (from the photo's header), ``check_cars`` once the cars are known, before any picture is made."""

    max_pixels: int      # --max-megapixels
    max_instances: int   # --max-instances
    query: bool = False  # messages spell the options as the service's query parameters

    def _spell(self, name: str, value: Any) -> str:
        return spell(name, value, self.query)

    def _over(self, pixels: int, factor: int = 1) -> str:
        limit = f"{factor} x --max-megapixels" if factor > 1 else "--max-megapixels"
        return f"{pixels / 1e6:.1f} megapixels, over the limit of {factor * self.max_pixels / 1e6:g} ({limit})"

    def check(self, options: CutoutOptions, fmt: str, width: int, height: int) -> None:
        """A one-line ``TooLarge`` when a picture of a ``width`` x ``height`` photo could pass the limits."""
        size = (width, height)
        if options.crop is not None:  # the car's box is at most the photo
            value, percent = options.crop
            mx, my = margins(width, height, options.crop)
            size = (width + 2 * mx, height + 2 * my)
            if size[0] * size[1] > self.max_pixels:
                raise TooLarge(f"{self._spell('crop', f'{value:g}' + '%' * percent)}: the cut-out of a {width}x{height}"
                               f" photo could grow to {size[0]}x{size[1]} = {self._over(size[0] * size[1])}; give a "
                               "smaller margin")
        if options.canvas is not None:
            size = options.canvas
            if size[0] * size[1] > self.max_pixels:
                raise TooLarge(f"{self._spell('canvas', '{}x{}'.format(*size))}: {self._over(size[0] * size[1])}; give "
                               "a smaller canvas")
        if max(size) > MAX_SIDE.get(fmt, max(size)):
            raise TooLarge(f"{self._spell('format', fmt)}: takes at most {MAX_SIDE[fmt]} pixels a side, the cut-out "
                           f"could be {size[0]}x{size[1]}; use {self._spell('format', 'png')}")

    def check_cars(self, cars: List[Tuple[int, int]], options: CutoutOptions, width: int, height: int) -> None:
        """With ``instances``: a one-line ``TooLarge`` for more than ``max_instances`` cars, or pictures of them
        (``cars``: the width and height of each car's box) over the limit in all."""
        if not options.instances:
            return
        if len(cars) > self.max_instances:
            least = self._spell("instances_min_area", options.instances_min_area)
            name = "instances_min_area" if self.query else flag("instances_min_area")
            raise TooLarge(f"{len(cars)} cars of at least {least} of the photo, over --max-instances "
                           f"{self.max_instances}; raise {name} or send a photo with fewer cars")
        if options.canvas is not None:
            pixels, hint = len(cars) * options.canvas[0] * options.canvas[1], "give a smaller canvas"
        elif options.crop is not None:
            pixels = sum((w + 2 * mx) * (h + 2 * my) for w, h in cars for mx, my in [margins(w, h, options.crop)])
            hint = "give a smaller margin"
        else:
            pixels, hint = len(cars) * width * height, f"{self._spell('crop', '5%')} cuts each car out in its own box"
        if pixels > ANSWER_PHOTOS * self.max_pixels:
            raise TooLarge(f"{len(cars)} cut-outs holding {self._over(pixels, ANSWER_PHOTOS)}; {hint}")
