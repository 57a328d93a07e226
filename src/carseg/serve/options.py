"""The query parameters of ``POST /api/remove``: the folder command's cut-out options, validated by pydantic.

Names are ``CutoutOptions``' (``--shadow-strength`` -> ``shadow_strength``); text options go through the same
``parse_*`` helpers as the command line. A background picture comes as an upload (multipart field ``background``),
never as a path on the server.
"""
from typing import Dict, List, Literal, Optional, get_args, get_origin

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from carseg.errors import CarsegError, one_line
from carseg.inference.cutout import ALPHA, CutoutOptions, parse_background, parse_canvas, parse_crop
from carseg.inference.subject import SUBJECTS

COLOURS = "use transparent, white or R,G,B with values 0-255 (a picture: upload it as the multipart field 'background')"
DEFAULTS = CutoutOptions()


def _check(parse, text: Optional[str]) -> Optional[str]:
    """Run a ``parse_*`` helper for its check; its one-line message without the command line's ``--name TEXT: ``."""
    try:
        parse(text) if text is not None else None
    except CarsegError as exc:
        raise ValueError(one_line(exc).split(": ", 1)[-1]) from None
    return text


class RemoveOptions(BaseModel):
    """What to send back; an unknown parameter or value is answered with 422 and what is allowed."""

    model_config = ConfigDict(extra="forbid")

    background: str = Field("transparent", description="transparent, white or R,G,B (0-255 each)")
    alpha: Literal[ALPHA] = Field(DEFAULTS.alpha, description="soft: matte following the photo's edges; hard: 0/1")
    crop: Optional[str] = Field(None, description="crop tight to the car plus a margin: pixels (40) or % of its size (5%)")
    canvas: Optional[str] = Field(None, description="fit the car, centred, on a WIDTHxHEIGHT canvas, e.g. 1600x1200")
    shadow: bool = Field(False, description="a soft contact shadow under the car")
    shadow_strength: float = Field(DEFAULTS.shadow_strength, ge=0, le=1, description="the shadow's darkest opacity")
    shadow_softness: float = Field(DEFAULTS.shadow_softness, ge=0, le=1, description="its blur, share of the car's width")
    instances: bool = Field(False, description="one cut-out per car, largest first, as a ZIP of NAME_1.png, NAME_2.png, ...")
    instances_min_area: float = Field(DEFAULTS.instances_min_area, ge=0, le=1, description="smallest car, share of the photo")
    subject: Literal[SUBJECTS] = Field(DEFAULTS.subject, description="main: only the photo's car, not those parked "
                                       "behind it; all: every car in one picture")
    threshold: Optional[float] = Field(None, ge=0, le=1, description="probability threshold (default: the model's)")
    format: Literal["png", "jpg", "webp"] = Field("png", description="image format of the answer")
    mask: bool = Field(False, description="send the mask (grey PNG, 0/255) instead of the cut-out")

    @field_validator("background")
    @classmethod
    def _background(cls, text: str) -> str:
        if text not in ("transparent", "white") and text.count(",") != 2:
            raise ValueError(COLOURS)  # parse_background would read a file of that name
        try:
            parse_background(text)
        except CarsegError:
            raise ValueError(COLOURS) from None
        return text

    @field_validator("crop", "canvas")
    @classmethod
    def _crop_canvas(cls, text: Optional[str], info: ValidationInfo) -> Optional[str]:
        return _check(parse_crop if info.field_name == "crop" else parse_canvas, text)

    @model_validator(mode="after")
    def _transparency(self) -> "RemoveOptions":
        if self.format == "jpg" and self.background == "transparent" and not self.mask:
            raise ValueError("format=jpg has no transparency; use format=png or webp, or background=white or R,G,B")
        return self

    def cutout(self, picture: Optional[np.ndarray] = None) -> CutoutOptions:
        """These options as ``compose`` takes them; ``picture``: an uploaded background (RGB) instead of the colour."""
        return CutoutOptions(
            background=parse_background(self.background) if picture is None else picture, alpha=self.alpha,
            crop=None if self.crop is None else parse_crop(self.crop),
            canvas=None if self.canvas is None else parse_canvas(self.canvas), shadow=self.shadow,
            shadow_strength=self.shadow_strength, shadow_softness=self.shadow_softness, instances=self.instances,
            instances_min_area=self.instances_min_area, subject=self.subject)


def allowed_values() -> Dict[str, List[str]]:
    """The values each option with a fixed set of them allows (for 422 answers)."""
    return {name: list(get_args(field.annotation)) for name, field in RemoveOptions.model_fields.items()
            if get_origin(field.annotation) is Literal}
